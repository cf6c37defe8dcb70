//! The scan kernels against the memory they stream, in one process: how close each
//! instruction set's block kernels (`dots` over float32, `dots_u8i8` over int8 codes) come to
//! the rate at which one core can fetch the same buffer.
//!
//! The reference is the **lines** read of `bandwidth.rs` on the very buffer the kernel scans:
//! one load per 64-byte line, nothing else, the fetch rate of the memory system. Every method is
//! timed `--reps` times, interleaved (one pass of each in turn), after one untimed pass, so that
//! a busy neighbour or a frequency change touches every method alike; the report gives each
//! method's median and its share of the matching lines median.
//!
//! This is the measurement the kernel choice per CPU family is made from (BENCHMARKS.md, "The
//! exact scan on this AMD EPYC").

use std::hint::black_box;
use std::time::Instant;

use memento::kernels::{kernels_for, quantize_vector, Isa, Kernels};
use memento_benches::{Rng, DATA_SEED, DIM, QUERY_SEED};
use serde_json::{json, Value};

use memento_benches::args::{Args, BoxResult};

use crate::bandwidth::median;

/// One thing timed: a line read of one of the buffers, or a kernel of one table.
#[derive(Clone, Copy)]
enum Method {
    LinesF32,
    LinesI8,
    Dots(&'static Kernels),
    DotsU8i8(&'static Kernels),
}

impl Method {
    fn name(self) -> String {
        match self {
            Method::LinesF32 => "lines_f32".into(),
            Method::LinesI8 => "lines_i8".into(),
            Method::Dots(k) => format!("dots_{}", k.isa.name()),
            Method::DotsU8i8(k) => format!("dots_u8i8_{}_{}", k.isa.name(), k.int8_impl()),
        }
    }

    /// The lines method this one is compared with.
    fn reference(self) -> Option<&'static str> {
        match self {
            Method::Dots(_) => Some("lines_f32"),
            Method::DotsU8i8(_) => Some("lines_i8"),
            _ => None,
        }
    }
}

struct Data {
    vectors: Vec<f32>,
    codes: Vec<i8>,
    query: Vec<f32>,
    query_codes: Vec<u8>,
    out_f32: Vec<f32>,
    out_i32: Vec<i32>,
}

impl Data {
    fn new(n: usize) -> Data {
        let vectors = Rng::new(DATA_SEED).unit_vectors(n, DIM);
        let mut codes = vec![0i8; vectors.len()];
        for (v, c) in vectors.chunks_exact(DIM).zip(codes.chunks_exact_mut(DIM)) {
            quantize_vector(v, c);
        }
        let query = Rng::new(QUERY_SEED).unit_vectors(1, DIM);
        let query_codes = memento::kernels::quantize_query(&query).codes;
        Data { vectors, codes, query, query_codes, out_f32: vec![0.0; n], out_i32: vec![0; n] }
    }

    /// Run a method once; returns the bytes it streamed.
    fn run(&mut self, m: Method) -> usize {
        match m {
            Method::LinesF32 => {
                black_box(self.vectors.iter().step_by(16).fold(0u32, |a, x| a.wrapping_add(x.to_bits())));
                size_of_val(self.vectors.as_slice())
            }
            Method::LinesI8 => {
                black_box(self.codes.iter().step_by(64).fold(0u32, |a, &x| a.wrapping_add(x as u8 as u32)));
                self.codes.len()
            }
            Method::Dots(k) => {
                k.dots(black_box(&self.query), black_box(&self.vectors), &mut self.out_f32);
                black_box(&self.out_f32);
                size_of_val(self.vectors.as_slice())
            }
            Method::DotsU8i8(k) => {
                k.dots_u8i8(black_box(&self.query_codes), black_box(&self.codes), &mut self.out_i32);
                black_box(&self.out_i32);
                self.codes.len()
            }
        }
    }
}

/// `kernels [--n 1000000] [--reps 15]`: prints one JSON document.
pub fn run(args: &Args) -> BoxResult<()> {
    args.check_known(&["n", "reps"])?;
    let n = args.num("n", 1_000_000)?.max(1);
    let reps = args.num("reps", 15)?.max(1);
    eprintln!("kernels: {n} × {DIM} vectors ({:.2} GiB float32), {reps} interleaved reps", (n * DIM * 4) as f64 / (1u64 << 30) as f64);
    let mut data = Data::new(n);
    let tables: Vec<&'static Kernels> = Isa::ALL.into_iter().filter_map(kernels_for).collect();
    let mut methods = vec![Method::LinesF32, Method::LinesI8];
    methods.extend(tables.iter().map(|&k| Method::Dots(k)));
    methods.extend(tables.iter().map(|&k| Method::DotsU8i8(k)));
    for &m in &methods {
        data.run(m);
    }
    let mut rates = vec![Vec::with_capacity(reps); methods.len()];
    for _ in 0..reps {
        for (i, &m) in methods.iter().enumerate() {
            let t = Instant::now();
            let bytes = data.run(m);
            rates[i].push(bytes as f64 / 1e9 / t.elapsed().as_secs_f64());
        }
    }
    let medians: Vec<(String, f64)> = methods.iter().zip(&rates).map(|(m, r)| (m.name(), median(r))).collect();
    let of = |name: &str| medians.iter().find(|(n, _)| n == name).map_or(f64::NAN, |x| x.1);
    let mut report = serde_json::Map::new();
    for ((m, r), (name, med)) in methods.iter().zip(&rates).zip(&medians) {
        let share = m.reference().map(|r| med / of(r));
        match share {
            Some(s) => eprintln!("kernels: {name:<28} {med:6.1} GB/s median, {:5.1}% of {}", 100.0 * s, m.reference().unwrap_or_default()),
            None => eprintln!("kernels: {name:<28} {med:6.1} GB/s median"),
        }
        report.insert(name.clone(), json!({"median_gbps": med, "share_of_lines": share, "reps_gbps": r}));
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()));
    let doc: Value = json!({"n": n, "dim": DIM, "reps": reps, "cpu": cpu, "chosen": memento::kernels::kernels().isa.name(), "methods": report});
    println!("{doc}");
    Ok(())
}
