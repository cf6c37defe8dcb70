//! The stores the benchmark works on: built from the seeded vectors, copied, thinned by
//! deletes, measured on disk, and searched.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memento::{Durability, Engine, Metric, Record, WriteBatch};
use memento_benches::args::BoxResult;
use memento_benches::{percentile, Rng, DATA_SEED, QUERY_SEED};

/// Records per `WriteBatch` when building or deleting: large batches, so building the 1M store
/// is bounded by the engine's page writing, not by per-commit costs.
pub const WRITE_BATCH: usize = 10_000;

/// Queries of every latency measurement (from [`QUERY_SEED`], so not stored vectors).
pub const QUERIES: usize = 50;

/// `n` seeded query vectors of `dim` elements, flattened.
pub fn queries(n: usize, dim: usize) -> Vec<f32> {
    Rng::new(QUERY_SEED).unit_vectors(n, dim)
}

/// Builds a closed, checkpointed cosine store in `dir` (which must not exist) holding record
/// `v{i}` for every `i < n` with `keep(i)`, its vector being the `i`-th of [`DATA_SEED`]'s
/// stream: so a store of every tenth record has exactly the vectors that a 1M store thinned
/// to every tenth record keeps. Written `Buffered` (building is not what is measured; the
/// final checkpoint and close make it durable). Returns the time spent in the engine.
pub fn build(dir: &Path, n: usize, dim: usize, keep: &dyn Fn(usize) -> bool) -> BoxResult<Duration> {
    let engine = Engine::builder(dir).dimension(dim).metric(Metric::Cosine).durability(Durability::Buffered).auto_compact(None).open()?;
    let mut rng = Rng::new(DATA_SEED);
    let mut v = Vec::with_capacity(dim);
    let mut batch = WriteBatch::new();
    let mut spent = Duration::ZERO;
    for i in 0..n {
        v.clear();
        rng.push_unit_vector(dim, &mut v);
        if keep(i) {
            batch.add(Record::new(format!("v{i}"), v.clone()));
        }
        if batch.len() == WRITE_BATCH || (i + 1 == n && !batch.is_empty()) {
            let t = Instant::now();
            engine.write(std::mem::take(&mut batch))?;
            spent += t.elapsed();
            if (i + 1) % 100_000 < WRITE_BATCH {
                eprintln!("  built {} of {n}", i + 1);
            }
        }
    }
    let t = Instant::now();
    engine.checkpoint()?;
    engine.close()?;
    Ok(spent + t.elapsed())
}

/// The base store of `n` × `dim` under `root`, built once and reused: a marker file beside it,
/// written only after its close, says it is complete (an interrupted build is rebuilt).
pub fn ensure_base(root: &Path, n: usize, dim: usize) -> BoxResult<PathBuf> {
    let dir = root.join(format!("base-n{n}-d{dim}"));
    let marker = root.join(format!("base-n{n}-d{dim}.complete"));
    if marker.exists() && dir.join(memento::files::VECTORS).exists() {
        eprintln!("reusing the base store {}", dir.display());
        return Ok(dir);
    }
    remove(&dir)?;
    eprintln!("building the base store {} ({n} × {dim})", dir.display());
    let t = Instant::now();
    let spent = build(&dir, n, dim, &|_| true)?;
    eprintln!("  built in {:.1} s ({:.1} s in the engine)", t.elapsed().as_secs_f64(), spent.as_secs_f64());
    std::fs::write(&marker, format!("{n} records of dimension {dim}\n"))?;
    Ok(dir)
}

/// Removes a directory tree if it exists.
pub fn remove(dir: &Path) -> BoxResult<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("removing {}: {e}", dir.display()).into()),
        _ => Ok(()),
    }
}

/// A copy of a closed store (every file of its directory), replacing `dst`.
pub fn copy(src: &Path, dst: &Path) -> BoxResult<()> {
    remove(dst)?;
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dst.join(entry.file_name())).map_err(|e| format!("copying {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Bytes a directory's files take on disk (allocated blocks, not lengths), with each file's.
pub fn disk_usage(dir: &Path) -> BoxResult<(u64, Vec<(String, u64)>)> {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let m = entry.metadata()?;
        if m.is_file() {
            files.push((entry.file_name().to_string_lossy().into_owned(), m.blocks() * 512));
        }
    }
    files.sort();
    Ok((files.iter().map(|(_, b)| b).sum(), files))
}

/// Deletes `v{i}` for every `i < n` with `gone(i)`, [`WRITE_BATCH`] ids per commit.
pub fn delete(engine: &Engine, n: usize, gone: &dyn Fn(usize) -> bool) -> BoxResult<usize> {
    let mut batch = WriteBatch::new();
    let mut deleted = 0;
    for i in 0..n {
        if gone(i) {
            batch.delete(format!("v{i}"));
            deleted += 1;
        }
        if batch.len() == WRITE_BATCH || (i + 1 == n && !batch.is_empty()) {
            engine.write(std::mem::take(&mut batch))?;
        }
    }
    Ok(deleted)
}

/// Median latency of k = 10 searches and how many were timed: passes over `queries` until
/// `rounds` are done and `min` has passed, after one untimed pass with `warm` (the first
/// search of a store verifies each page's CRC once; that is not the steady state).
pub fn search_median(engine: &Engine, queries: &[f32], dim: usize, rounds: usize, min: Duration, warm: bool) -> BoxResult<(Duration, usize)> {
    if warm {
        for q in queries.chunks_exact(dim) {
            engine.search(q, 10, None)?;
        }
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut done = 0;
    while done < rounds || started.elapsed() < min {
        for q in queries.chunks_exact(dim) {
            let t = Instant::now();
            let hits = engine.search(q, 10, None)?;
            samples.push(t.elapsed());
            if hits.len() != 10 {
                return Err(format!("a search returned {} hits, not 10", hits.len()).into());
            }
        }
        done += 1;
    }
    Ok((percentile(&mut samples, 50.0), samples.len()))
}
