//! Times k-NN searches of an existing store one query at a time, as the Python package's
//! `search` runs them, and prints one JSON object on stdout.
//!
//! ```text
//! memento-search-timer STORE QUERIES K MODE EF THREADS REPS
//! ```
//!
//! - `STORE`: a store directory, opened read-only (a reader, FORMAT.md §4.4) with the builder's
//!   defaults, as `memento.Engine(STORE, read_only=True)` opens it.
//! - `QUERIES`: raw little-endian float32 rows of the store's dimension.
//! - `MODE`: `auto` (the planner: the graph index when it is used) or `exact`.
//! - `EF`, `THREADS`: a number, or `-` for the engine's default.
//! - `REPS`: passes over the queries (after one untimed pass).
//!
//! Prints `{"n_queries", "reps", "p50_us", "mean_us", "min_us", "ids"}`, where `ids` are the
//! first query's results (to check that Python got the same answer).

use std::time::{Duration, Instant};

use memento::{Engine, ScanMode, SearchOptions};
use serde_json::json;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn opt(s: &str) -> Res<Option<usize>> {
    Ok(if s == "-" { None } else { Some(s.parse()?) })
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store, queries, k, mode, ef, threads, reps] = args.as_slice() else {
        return Err("usage: memento-search-timer STORE QUERIES K MODE EF THREADS REPS".into());
    };
    let engine = Engine::builder(store).create(false).read_only().open()?;
    let dim = engine.dimension();
    let bytes = std::fs::read(queries)?;
    let flat: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if flat.is_empty() || flat.len() % dim != 0 {
        return Err(format!("{queries}: not a whole number of {dim}-float rows").into());
    }
    let mut o = SearchOptions::new(k.parse()?);
    o.mode = match mode.as_str() {
        "auto" => ScanMode::Auto,
        "exact" => ScanMode::Exact,
        other => return Err(format!("unknown mode {other:?}").into()),
    };
    o.ef = opt(ef)?;
    o.threads = opt(threads)?;
    let reps: usize = reps.parse()?;
    let mut first = Vec::new();
    for q in flat.chunks_exact(dim) {
        let hits = engine.search_with(q, &o)?;
        if first.is_empty() {
            first = hits.into_iter().map(|h| h.id).collect();
        }
    }
    let mut lat: Vec<Duration> = Vec::with_capacity(reps * flat.len() / dim);
    for _ in 0..reps {
        for q in flat.chunks_exact(dim) {
            let t = Instant::now();
            let hits = engine.search_with(q, &o)?;
            lat.push(t.elapsed());
            std::hint::black_box(hits);
        }
    }
    lat.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let total: Duration = lat.iter().sum();
    println!(
        "{}",
        json!({
            "n_queries": flat.len() / dim,
            "reps": reps,
            "p50_us": us(lat[lat.len() / 2]),
            "mean_us": us(total) / lat.len() as f64,
            "min_us": us(lat[0]),
            "ids": first,
        })
    );
    engine.close()?;
    Ok(())
}
