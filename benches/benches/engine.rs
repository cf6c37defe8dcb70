//! Criterion benchmarks of the Memento engine (384-d, cosine):
//!
//! - `ingest_batch_1000/{Buffered,Sync}`: one 1,000-record [`memento::WriteBatch`] committed
//!   into a growing store (automatic checkpoints included, amortised);
//!   `ingest_batch_1000/Sync_commit_only`: the same with checkpoints run outside the timing;
//! - `search_k10/{f32,int8}_t{1,2}/{10000,100000,1000000}`: k = 10 search over a
//!   checkpointed store, float32 or quantized scan, one or two threads; `batch16_*`: 16 queries
//!   in one call;
//! - `open_100k`: `Engine::open` + `count()` + close of a checkpointed 100k store.
//!
//! Sample sizes are small so that `cargo bench -p memento-benches --bench engine` finishes in a
//! few minutes on two cores.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use memento::{Durability, Engine, Metric, ScanMode, SearchOptions};
use memento_benches::{batch_from, build_store, open_store, Rng, BATCH, DATA_SEED, DIM, QUERY_SEED};

/// One committed batch of 1,000 vectors per iteration.
///
/// `Buffered` and `Sync` use the default configuration, so the automatic checkpoint (every
/// ~43 batches with the default 64 MiB WAL limit) is included, amortised over the batches:
/// short runs (`--quick`) are noisy because a checkpoint may or may not fall among the few
/// measured batches. `Sync_commit_only` raises the WAL limit and runs the checkpoint every 32
/// batches outside the timed routine, so it measures the commit path alone.
fn ingest_batch_1000(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingest_batch_1000");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(BATCH as u64));
    // A pool of vectors reused round-robin; ids keep growing so every add is new.
    let pool = Rng::new(DATA_SEED).unit_vectors(10 * BATCH, DIM);
    let variants = [("Buffered", Durability::Buffered, false), ("Sync", Durability::Sync, false), ("Sync_commit_only", Durability::Sync, true)];
    for (name, mode, commit_only) in variants {
        let dir = tempfile::Builder::new().prefix("memento-bench-").tempdir_in(scratch_parent()).expect("temp dir");
        let engine = if commit_only {
            Engine::builder(dir.path()).dimension(DIM).metric(Metric::Cosine).durability(mode).wal_limit(1 << 30).open().expect("open store")
        } else {
            open_store(dir.path(), mode).expect("open store")
        };
        let mut next = 0usize;
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || {
                    if commit_only && engine.stats().pending_vectors >= 32 * BATCH as u64 {
                        engine.checkpoint().expect("checkpoint");
                    }
                    let k = (next / BATCH) % 10;
                    let batch = batch_from(next, &pool[k * BATCH * DIM..(k + 1) * BATCH * DIM], DIM);
                    next += BATCH;
                    batch
                },
                |batch| engine.write(batch).expect("write"),
                BatchSize::PerIteration,
            );
        });
        engine.close().expect("close");
    }
    g.finish();
}

/// k = 10 search at 10k, 100k and 1M vectors: the float32 scan and the quantized scan (int8 +
/// exact rescoring), on one thread and on two; at 100k also a batch of 16 queries in one call.
/// (Filtered search is measured by the comparison script, on a store with metadata.) Set `MEMENTO_BENCH_NO_1M=1` to skip the 1M store (it needs
/// ~2 GB of disk and ~15 s to build).
fn search_k10(c: &mut Criterion) {
    let mut g = c.benchmark_group("search_k10");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let queries = Rng::new(QUERY_SEED).unit_vectors(64, DIM);
    let mut sizes = vec![10_000usize, 100_000];
    if std::env::var_os("MEMENTO_BENCH_NO_1M").is_none() {
        sizes.push(1_000_000);
    }
    for n in sizes {
        let dir = tempfile::Builder::new().prefix("memento-bench-").tempdir_in(scratch_parent()).expect("temp dir");
        let _ = build_store(dir.path(), n, memento::Durability::Buffered, &mut |_| {}).expect("build store");
        let engine = Engine::open(dir.path()).expect("open store");
        g.throughput(Throughput::Bytes((n * DIM * 4) as u64));
        for (mode, name) in [(ScanMode::Exact, "f32"), (ScanMode::Quantized, "int8")] {
            for threads in [1usize, 2] {
                let o = SearchOptions::new(10).mode(mode).threads(threads);
                let mut i = 0usize;
                g.bench_function(BenchmarkId::new(format!("{name}_t{threads}"), n), |b| {
                    b.iter(|| {
                        let q = &queries[(i % 64) * DIM..(i % 64 + 1) * DIM];
                        i += 1;
                        black_box(engine.search_with(q, &o).expect("search"))
                    });
                });
            }
        }
        if n == 100_000 {
            g.throughput(Throughput::Elements(16));
            for (mode, name) in [(ScanMode::Exact, "f32"), (ScanMode::Quantized, "int8")] {
                let o = SearchOptions::new(10).mode(mode).threads(1);
                g.bench_function(BenchmarkId::new(format!("batch16_{name}_t1"), n), |b| {
                    b.iter(|| black_box(engine.search_batch(&queries[..16 * DIM], &o).expect("batch")));
                });
            }
        }
        engine.close().expect("close");
    }
    g.finish();
}

/// Open + count + close of a checkpointed 100k store.
fn open_100k(c: &mut Criterion) {
    let dir = tempfile::Builder::new().prefix("memento-bench-").tempdir_in(scratch_parent()).expect("temp dir");
    let _ = build_store(dir.path(), 100_000, memento::Durability::Buffered, &mut |_| {}).expect("build store");
    let mut g = c.benchmark_group("open");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.bench_function("open_100k", |b| {
        b.iter(|| {
            let e = Engine::open(dir.path()).expect("open");
            black_box(e.count());
            e.close().expect("close");
        });
    });
    g.finish();
}

/// Stores go under `target/bench-tmp` in the workspace: the same filesystem as the repository.
fn scratch_parent() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("bench-tmp");
    std::fs::create_dir_all(&p).expect("create target/bench-tmp");
    p
}

/// Runs every group (what `criterion_group!`/`criterion_main!` would generate, written out so
/// each item carries documentation).
fn main() {
    let mut c = Criterion::default().configure_from_args();
    ingest_batch_1000(&mut c);
    search_k10(&mut c);
    open_100k(&mut c);
    c.final_summary();
}
