//! Times filtered search on a store of 100,000 records of 384 dimensions, each with a text and
//! the metadata `{"cat": "c{i % 100}", "n": i, "tag": i % 2 == 0, "group": "g{i % 10}"}` (1% of
//! the texts hold an "x"): first the ingest, in batches of 1,000 (`Durability::Sync`), then
//! `search(q, 10, filter)` for filters of several selectivities, with the median and the 90th
//! percentile of repeated queries. Selection, scoring and fetching the rows are all included.
//!
//! `cargo run --release -p memento-core --example filtered_search [-- DIR]` (default: a temporary
//! directory, removed at the end).

use std::time::{Duration, Instant};

use memento::{Durability, Engine, Filter, Metadata, Record, WriteBatch};
use serde_json::json;

const DIM: usize = 384;
const N: usize = 100_000;
const BATCH: usize = 1_000;
const RUNS: usize = 31;

/// A deterministic pseudo-random vector (xorshift).
fn vector(seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..DIM)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let path = std::env::args_os().nth(1).map_or_else(|| tmp.path().join("store"), Into::into);
    let engine = Engine::builder(&path).dimension(DIM).durability(Durability::Sync).open()?;

    let mut batches = Vec::new();
    let t = Instant::now();
    for start in (0..N).step_by(BATCH) {
        let mut b = WriteBatch::new();
        for i in start..start + BATCH {
            let text = if i % 100 == 42 { format!("document {i} with an x") } else { format!("document {i}") };
            let meta: Metadata = match json!({"cat": format!("c{}", i % 100), "n": i, "tag": i % 2 == 0, "group": format!("g{}", i % 10)}) {
                serde_json::Value::Object(m) => m,
                _ => unreachable!("an object literal"),
            };
            b.add(Record::new(format!("doc-{i:06}"), vector(i as u64)).with_text(text).with_metadata(meta));
        }
        let tb = Instant::now();
        engine.write(b)?;
        batches.push(tb.elapsed());
    }
    let total: Duration = batches.iter().sum();
    let wall = t.elapsed();
    println!(
        "ingest of {N} records in batches of {BATCH}: writes {:.0} ms ({:.0} records/s), batch median {:.2} ms, p90 {:.2} ms (with building the batches: {:.0} ms)",
        ms(total),
        N as f64 / total.as_secs_f64(),
        ms(percentile(&mut batches, 0.5)),
        ms(percentile(&mut batches, 0.9)),
        ms(wall)
    );

    let cases: Vec<(&str, Option<serde_json::Value>)> = vec![
        ("no filter", None),
        ("1%", Some(json!({"cat": "c7"}))),
        ("2%", Some(json!({"cat": {"$in": ["c1", "c2"]}}))),
        ("1%, range", Some(json!({"n": {"$gte": 500, "$lt": 1500}}))),
        ("0% (10% and 50%)", Some(json!({"$and": [{"group": "g3"}, {"tag": true}]}))),
        ("10% (10% and 50%)", Some(json!({"$and": [{"group": "g4"}, {"tag": true}]}))),
        ("99%", Some(json!({"cat": {"$ne": "c7"}}))),
        ("1%, text", Some(json!({"$contains": "x"}))),
        ("1% (1% and 99.99%)", Some(json!({"$and": [{"cat": "c7"}, {"n": {"$gt": 5}}]}))),
        ("11% (or)", Some(json!({"$or": [{"cat": "c7"}, {"group": "g3"}]}))),
    ];
    println!("| filter | selects | search k=10: median | p90 |");
    println!("|---|---|---|---|");
    for (label, fv) in cases {
        let filter = fv.as_ref().map(Filter::parse).transpose()?;
        let mut times = Vec::with_capacity(RUNS);
        for r in 0..=RUNS {
            let q = vector(1_000_000 + r as u64);
            let t = Instant::now();
            let hits = engine.search(&q, 10, filter.as_ref())?;
            if r > 0 {
                times.push(t.elapsed()); // the first query warms up (page CRCs, caches)
            }
            assert!(hits.len() == 10 || label.starts_with("0%"), "{label}: {} hits", hits.len());
        }
        let shown = fv.map_or_else(|| "-".to_owned(), |v| format!("`{v}`"));
        println!("| {shown} | {label} | {:.3} ms | {:.3} ms |", ms(percentile(&mut times, 0.5)), ms(percentile(&mut times, 0.9)));
    }
    engine.close()?;
    Ok(())
}
