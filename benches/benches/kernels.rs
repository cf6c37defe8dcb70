//! Criterion benchmarks of the distance kernels (`memento::kernels`), 384-d, for every
//! instruction set this CPU supports (the benchmark id is `{group}/{isa}/{size}`):
//!
//! - `kernels_dot_384/{isa}`: one dot product, both vectors in L1;
//! - `kernels_dots_384/{isa}/{1k,100k,1M}`: one query against 1,000, 100,000 or 1,000,000
//!   contiguous vectors (1.5 MB, 154 MB or 1.5 GB of f32): the hot loop of exact search;
//! - `kernels_l2sqs_384/{isa}/100k`: the same for squared distances;
//! - `kernels_dots_multi8_384/{isa}/{1k,100k,1M}`: 8 queries against the same vectors in one
//!   pass;
//! - `kernels_dots_u8i8_384/{isa}-{int8 impl}/{1k,100k,1M}`: one quantized query against i8
//!   code vectors (384 kB, 38 MB or 384 MB);
//! - `kernels_quantize_384/{format_scalar,quantize_vector}`: quantizing one vector.
//!
//! Throughput is in bytes of vectors (or codes) streamed per call; the queries stay in cache.
//! 1k fits in L2 (the compute ceiling); 100k × 384 f32 is larger than most caches but fits some
//! very large L3s (260 MiB on the 2-core VM these kernels were tuned on), so the 1M sizes are
//! the ones that measure memory bandwidth. The 1M sets repeat the 100k set ten times (only the
//! bytes matter), which keeps set-up short.
//!
//! `cargo bench -p memento-benches --bench kernels` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use memento::kernels::{kernels_for, quantize_query, quantize_vector, Isa, Kernels};
use memento_benches::{Rng, DATA_SEED, DIM, QUERY_SEED};

/// Vectors in the smaller block.
const N_SMALL: usize = 100_000;
/// How many times the larger block repeats the smaller one.
const REPEAT: usize = 10;
/// Queries of the multi-query kernel.
const NQ: usize = 8;

/// The data shared by every benchmark.
struct Data {
    /// `REPEAT · N_SMALL` unit vectors; the first `N_SMALL` are the small block.
    vectors: Vec<f32>,
    /// Their i8 codes.
    codes: Vec<i8>,
    /// `NQ` unit queries.
    queries: Vec<f32>,
}

impl Data {
    fn new() -> Data {
        let small = Rng::new(DATA_SEED).unit_vectors(N_SMALL, DIM);
        let mut small_codes = vec![0i8; small.len()];
        for (v, c) in small.chunks_exact(DIM).zip(small_codes.chunks_exact_mut(DIM)) {
            quantize_vector(v, c);
        }
        Data { vectors: small.repeat(REPEAT), codes: small_codes.repeat(REPEAT), queries: Rng::new(QUERY_SEED).unit_vectors(NQ, DIM) }
    }

    /// The first `n` vectors.
    fn vectors(&self, n: usize) -> &[f32] {
        &self.vectors[..n * DIM]
    }

    /// The codes of the first `n` vectors.
    fn codes(&self, n: usize) -> &[i8] {
        &self.codes[..n * DIM]
    }

    fn query(&self) -> &[f32] {
        &self.queries[..DIM]
    }
}

/// The kernels of every supported instruction set.
fn tables() -> Vec<&'static Kernels> {
    Isa::ALL.into_iter().filter_map(kernels_for).collect()
}

/// The block sizes (in vectors), with their labels.
const SIZES: [(&str, usize); 3] = [("1k", 1_000), ("100k", N_SMALL), ("1M", N_SMALL * REPEAT)];

fn dot_384(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group("kernels_dot_384");
    g.throughput(Throughput::Bytes((2 * DIM * 4) as u64));
    let (q, v) = (d.query(), d.vectors(1));
    for k in tables() {
        g.bench_function(BenchmarkId::from_parameter(k.isa), |b| b.iter(|| k.dot(black_box(q), black_box(v))));
    }
    g.finish();
}

fn dots_384(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group("kernels_dots_384");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for (label, n) in SIZES {
        g.throughput(Throughput::Bytes((n * DIM * 4) as u64));
        let mut out = vec![0f32; n];
        for k in tables() {
            g.bench_function(BenchmarkId::new(k.isa.name(), label), |b| b.iter(|| k.dots(black_box(d.query()), black_box(d.vectors(n)), &mut out)));
        }
    }
    g.finish();
}

fn l2sqs_384(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group("kernels_l2sqs_384");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes((N_SMALL * DIM * 4) as u64));
    let mut out = vec![0f32; N_SMALL];
    for k in tables() {
        g.bench_function(BenchmarkId::new(k.isa.name(), "100k"), |b| b.iter(|| k.l2sqs(black_box(d.query()), black_box(d.vectors(N_SMALL)), &mut out)));
    }
    g.finish();
}

fn dots_multi8_384(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group("kernels_dots_multi8_384");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for (label, n) in SIZES {
        g.throughput(Throughput::Bytes((n * DIM * 4) as u64));
        let mut out = vec![0f32; NQ * n];
        for k in tables() {
            g.bench_function(BenchmarkId::new(k.isa.name(), label), |b| b.iter(|| k.dots_multi(DIM, black_box(&d.queries), black_box(d.vectors(n)), &mut out)));
        }
    }
    g.finish();
}

fn dots_u8i8_384(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group("kernels_dots_u8i8_384");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    let q = quantize_query(d.query());
    for (label, n) in SIZES {
        g.throughput(Throughput::Bytes((n * DIM) as u64));
        let mut out = vec![0i32; n];
        for k in tables() {
            g.bench_function(BenchmarkId::new(format!("{}-{}", k.isa.name(), k.int8_impl()), label), |b| {
                b.iter(|| k.dots_u8i8(black_box(&q.codes), black_box(d.codes(n)), &mut out))
            });
        }
    }
    g.finish();
}

/// Quantizing one 384-d vector (done for every vector written): the format crate's scalar
/// definition against `quantize_vector` (AVX2 where the CPU has it, bit-identical).
fn quantize_384(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group("kernels_quantize_384");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    let v = d.query();
    let mut codes = vec![0i8; DIM];
    g.bench_function("format_scalar", |b| b.iter(|| memento_format::page::quantize(black_box(v), &mut codes)));
    g.bench_function("quantize_vector", |b| b.iter(|| quantize_vector(black_box(v), &mut codes)));
    g.finish();
}

/// Runs every group (what `criterion_group!`/`criterion_main!` would generate, written out so
/// each item carries documentation).
fn main() {
    let mut c = Criterion::default().configure_from_args();
    let d = Data::new();
    dot_384(&mut c, &d);
    dots_384(&mut c, &d);
    l2sqs_384(&mut c, &d);
    dots_multi8_384(&mut c, &d);
    dots_u8i8_384(&mut c, &d);
    quantize_384(&mut c, &d);
    c.final_summary();
}
