//! Shared helpers for the Memento benchmarks: seeded data generation, store building and
//! percentile arithmetic. Used by the `memento-benches` harness binary and by the criterion
//! benches in `benches/engine.rs`.
//!
//! Everything here is deterministic: the same seed gives the same vectors on every machine.

pub mod args;

use std::path::Path;
use std::time::{Duration, Instant};

use memento::{Durability, Engine, Metric, Record, WriteBatch};

/// The dimension used by every benchmark.
pub const DIM: usize = 384;

/// Records per [`WriteBatch`] in the ingest benchmarks.
pub const BATCH: usize = 1_000;

/// Seed of the stored vectors.
pub const DATA_SEED: u64 = 0x6d65_6d65_6e74_6f01;

/// Seed of the query vectors (distinct from [`DATA_SEED`], so queries are not stored vectors).
pub const QUERY_SEED: u64 = 0x7175_6572_7921_0002;

/// A small, fast, seeded generator (SplitMix64) with a Gaussian sampler (Box–Muller).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
    spare: Option<f32>,
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed, spare: None }
    }

    /// The next 64 random bits (SplitMix64).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform float in (0, 1].
    fn unit_open0(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// A standard normal sample.
    pub fn gaussian(&mut self) -> f32 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let u1 = self.unit_open0();
        let u2 = self.unit_open0();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        self.spare = Some((r * t.sin()) as f32);
        (r * t.cos()) as f32
    }

    /// Append one Gaussian vector of `dim` elements scaled to unit length.
    pub fn push_unit_vector(&mut self, dim: usize, out: &mut Vec<f32>) {
        let start = out.len();
        out.extend((0..dim).map(|_| self.gaussian()));
        let v = &mut out[start..];
        let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
        let inv = if norm > 0.0 { (1.0 / norm) as f32 } else { 1.0 };
        v.iter_mut().for_each(|x| *x *= inv);
    }

    /// `n` unit vectors of `dim` elements, flattened.
    pub fn unit_vectors(&mut self, n: usize, dim: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            self.push_unit_vector(dim, &mut out);
        }
        out
    }
}

/// One [`WriteBatch`] adding records `"v{first}"`, `"v{first+1}"`, … from `vectors`
/// (`dim` floats each, no text or metadata).
pub fn batch_from(first: usize, vectors: &[f32], dim: usize) -> WriteBatch {
    let mut b = WriteBatch::new();
    for (j, v) in vectors.chunks_exact(dim).enumerate() {
        b.add(Record::new(format!("v{}", first + j), v.to_vec()));
    }
    b
}

/// Open (creating) a cosine store of dimension [`DIM`] with the given durability.
pub fn open_store(dir: &Path, durability: Durability) -> memento::Result<Engine> {
    Engine::builder(dir).dimension(DIM).metric(Metric::Cosine).durability(durability).open()
}

/// Timings of [`build_store`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildTimes {
    /// Sum of the `Engine::write` calls (vector generation excluded).
    pub write: Duration,
    /// The time of those writes that ran an automatic checkpoint (included in `write`).
    pub checkpointing_writes: Duration,
    /// Automatic checkpoints seen during the writes.
    pub auto_checkpoints: usize,
    /// The final `close()` (which checkpoints).
    pub close: Duration,
}

/// Build a closed (checkpointed) store of `n` vectors from [`DATA_SEED`] in `dir`, writing
/// batches of [`BATCH`] under [`Durability::Buffered`]. Vectors are generated batch by batch, so
/// memory stays small whatever `n` is. `progress` is called after each batch with the count.
pub fn build_store(dir: &Path, n: usize, mode: Durability, progress: &mut dyn FnMut(usize)) -> memento::Result<BuildTimes> {
    let engine = open_store(dir, mode)?;
    let mut rng = Rng::new(DATA_SEED);
    let mut buf = Vec::with_capacity(BATCH * DIM);
    let mut done = 0;
    let mut times = BuildTimes::default();
    while done < n {
        let m = BATCH.min(n - done);
        buf.clear();
        for _ in 0..m {
            rng.push_unit_vector(DIM, &mut buf);
        }
        let batch = batch_from(done, &buf, DIM);
        let before = engine.stats().pending_vectors;
        let t = Instant::now();
        engine.write(batch)?;
        let d = t.elapsed();
        times.write += d;
        if engine.stats().pending_vectors < before {
            times.auto_checkpoints += 1;
            times.checkpointing_writes += d;
        }
        done += m;
        progress(done);
    }
    let t = Instant::now();
    engine.close()?;
    times.close = t.elapsed();
    Ok(times)
}

/// The nearest-rank percentile `p` (0 to 100) of `samples` (sorted here). Zero when empty.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Milliseconds as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_unit_and_deterministic() {
        let a = Rng::new(1).unit_vectors(3, DIM);
        let b = Rng::new(1).unit_vectors(3, DIM);
        assert_eq!(a, b);
        for v in a.chunks_exact(DIM) {
            let n: f32 = v.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn percentile_nearest_rank() {
        let mut s: Vec<Duration> = (1..=10).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut s, 50.0), Duration::from_millis(5));
        assert_eq!(percentile(&mut s, 90.0), Duration::from_millis(9));
        assert_eq!(percentile(&mut s, 100.0), Duration::from_millis(10));
        assert_eq!(percentile(&mut s, 0.0), Duration::from_millis(1));
    }
}
