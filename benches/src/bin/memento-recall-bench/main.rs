//! `memento-recall-bench`: recall@k of the default search on adversarial distributions (issue 13,
//! item 4), against float64 brute force, beside the exact float32 scan.
//!
//! ```text
//! memento-recall-bench [--n 5000] [--nq 100] [--k 10] [--sets a,b,...] [--metrics cosine,dot,l2]
//! ```
//!
//! Each set is `n` seeded vectors (the crate's generator) stored in a fresh store, closed and
//! reopened (so the int8 copies are on disk), then `nq` queries from the query seed:
//!
//! - `gaussian-384`: unit Gaussian vectors, dimension 384 (the ordinary case);
//! - `dominant-16`: N(0, 1) in dimension 16 with coordinate 0 set to 1000 (a constant feature of
//!   non-normalised data: the issue's case);
//! - `dominant-384`: the same in dimension 384 with the constant 300;
//! - `heavy-tail-64`: each coordinate a Cauchy sample (a ratio of two Gaussians), dimension 64;
//! - `tiny-norm-64`: Gaussian directions with norms log-uniform from 1e-12 to 1 (under dot the
//!   tiny vectors all quantize to the same few codes), dimension 64;
//! - `duplicates-64`: 50 distinct Gaussian vectors each stored `n / 50` times, dimension 64.
//!
//! Recall counts a returned hit as right when its float64 distance is no greater than the k-th
//! smallest float64 distance (plus 1e-6 of its magnitude), so exact ties (duplicates) are not
//! penalised by the order they come in. Prints one Markdown table on stdout: per set and metric,
//! the recall of the default search (`ScanMode::Auto`) and of `ScanMode::Exact`, and the median
//! query time of each.

use std::time::{Duration, Instant};

use memento::{Durability, Engine, Metric, Record, ScanMode, SearchOptions, WriteBatch};
use memento_benches::args::{Args, BoxResult};
use memento_benches::{ms, percentile, Rng, DATA_SEED, QUERY_SEED};

const USAGE: &str = "usage: memento-recall-bench [--n 5000] [--nq 100] [--k 10] [--sets a,b,...] [--metrics cosine,dot,l2]";

const SETS: [&str; 6] = ["gaussian-384", "dominant-16", "dominant-384", "heavy-tail-64", "tiny-norm-64", "duplicates-64"];

/// The dimension of a set.
fn dim_of(set: &str) -> usize {
    set.rsplit('-').next().and_then(|d| d.parse().ok()).unwrap_or(64)
}

/// `n` vectors of the set from `seed`, flattened.
fn vectors(set: &str, n: usize, seed: u64) -> Vec<f32> {
    let dim = dim_of(set);
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n * dim);
    match set {
        "gaussian-384" => return rng.unit_vectors(n, dim),
        "dominant-16" | "dominant-384" => {
            let constant = if dim == 16 { 1000.0 } else { 300.0 };
            for _ in 0..n {
                out.push(constant);
                out.extend((1..dim).map(|_| rng.gaussian()));
            }
        }
        "heavy-tail-64" => {
            for _ in 0..n * dim {
                let (a, b) = (rng.gaussian(), rng.gaussian());
                out.push(if b == 0.0 { a } else { a / b });
            }
        }
        "tiny-norm-64" => {
            for _ in 0..n {
                let start = out.len();
                rng.push_unit_vector(dim, &mut out);
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let scale = 10f64.powf(-12.0 * u) as f32;
                out[start..].iter_mut().for_each(|x| *x *= scale);
            }
        }
        "duplicates-64" => {
            let distinct = rng.unit_vectors(50, dim);
            for i in 0..n {
                out.extend_from_slice(&distinct[(i % 50) * dim..(i % 50 + 1) * dim]);
            }
        }
        other => panic!("unknown set {other}"),
    }
    out
}

/// The engine's distance in float64: 1 − cosine, −dot, squared L2.
fn distance(metric: Metric, q: &[f32], v: &[f32]) -> f64 {
    let dot: f64 = q.iter().zip(v).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
    match metric {
        Metric::Dot => -dot,
        Metric::L2 => q.iter().zip(v).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum(),
        _ => {
            let nq = q.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
            let nv = v.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
            1.0 - dot / (nq * nv)
        }
    }
}

/// Recall and timings of one set under one metric.
struct Row {
    recall_auto: f64,
    recall_exact: f64,
    p50_auto: Duration,
    p50_exact: Duration,
}

fn measure(set: &str, metric: Metric, n: usize, nq: usize, k: usize) -> BoxResult<Row> {
    let dim = dim_of(set);
    let data = vectors(set, n, DATA_SEED);
    let queries = vectors(set, nq, QUERY_SEED);
    let dir = tempfile::tempdir()?;
    {
        let e = Engine::builder(dir.path()).dimension(dim).metric(metric).durability(Durability::Buffered).open()?;
        for (c, chunk) in data.chunks(1000 * dim).enumerate() {
            let mut b = WriteBatch::new();
            for (j, v) in chunk.chunks_exact(dim).enumerate() {
                b.add(Record::new(format!("{}", c * 1000 + j), v.to_vec()));
            }
            e.write(b)?;
        }
        e.close()?;
    }
    let e = Engine::open(dir.path())?;
    let mut row = Row { recall_auto: 0.0, recall_exact: 0.0, p50_auto: Duration::ZERO, p50_exact: Duration::ZERO };
    let (mut t_auto, mut t_exact) = (Vec::new(), Vec::new());
    let (mut right_auto, mut right_exact) = (0usize, 0usize);
    for q in queries.chunks_exact(dim) {
        let mut truth: Vec<f64> = data.chunks_exact(dim).map(|v| distance(metric, q, v)).collect();
        let exact_of = |id: &str| truth[id.parse::<usize>().expect("ids are row numbers")];
        let mut sorted = truth.clone();
        sorted.sort_by(f64::total_cmp);
        let kth = sorted[k.min(n) - 1];
        let limit = kth + 1e-6 * kth.abs().max(1e-300);
        for (mode, times, right) in [(ScanMode::Auto, &mut t_auto, &mut right_auto), (ScanMode::Exact, &mut t_exact, &mut right_exact)] {
            let t = Instant::now();
            let hits = e.search_with(q, &SearchOptions::new(k).mode(mode))?;
            times.push(t.elapsed());
            *right += hits.iter().filter(|h| exact_of(&h.id) <= limit).count();
        }
        truth.clear();
    }
    e.close()?;
    row.recall_auto = right_auto as f64 / (nq * k.min(n)) as f64;
    row.recall_exact = right_exact as f64 / (nq * k.min(n)) as f64;
    row.p50_auto = percentile(&mut t_auto, 50.0);
    row.p50_exact = percentile(&mut t_exact, 50.0);
    Ok(row)
}

fn main() -> BoxResult<()> {
    let args = Args::parse(std::env::args().skip(1), USAGE)?;
    args.check_known(&["n", "nq", "k", "sets", "metrics"])?;
    let n = args.num("n", 5000)?;
    let nq = args.num("nq", 100)?;
    let k = args.num("k", 10)?;
    let sets = args.list("sets", &SETS.join(","));
    let metrics = args.list("metrics", "cosine,dot,l2");
    println!("recall@{k} against float64 brute force, {n} vectors, {nq} queries\n");
    println!("| set | metric | default search recall | exact scan recall | default p50 ms | exact p50 ms |");
    println!("|---|---|---:|---:|---:|---:|");
    for set in &sets {
        for m in &metrics {
            let metric = match m.as_str() {
                "cosine" => Metric::Cosine,
                "dot" => Metric::Dot,
                "l2" => Metric::L2,
                other => return Err(format!("unknown metric {other}").into()),
            };
            let r = measure(set, metric, n, nq, k)?;
            println!("| {set} | {m} | {:.3} | {:.3} | {:.2} | {:.2} |", r.recall_auto, r.recall_exact, ms(r.p50_auto), ms(r.p50_exact));
        }
    }
    Ok(())
}
