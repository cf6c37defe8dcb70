//! Writes and reads Memento stores with the Rust library, for the Python package's interop test.
//!
//! Subcommands (every one prints one JSON object on stdout):
//! - `write-raw DIR`: a cosine store of dimension 8 with 40 records (texts, metadata), a few
//!   deleted, one upserted, one with its metadata updated; closed (checkpointed).
//! - `write-text DIR`: a text store with the default model; remembers the texts given on stdin
//!   (one per line) with metadata `{"line": n}`; prints their ids.
//! - `dump DIR [MODEL]`: opens the store (with the default model if MODEL is `default`), prints
//!   dimension, metric, model, count, every record (iteration order) and the top 5 of a query
//!   vector (`QUERY` in the environment: comma-separated floats, else the first record's
//!   vector), and of a recall of `RECALL` (text) when the model is loaded.
//! - `append DIR ID v1,v2,...`: adds one record (text "from rust") and closes.

use std::io::BufRead;

use memento::{Engine, Memory, Metadata, Metric, Record, WriteBatch};
use serde_json::{json, Value};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn meta(v: Value) -> Metadata {
    v.as_object().cloned().unwrap_or_default()
}

fn raw_vector(i: usize) -> Vec<f32> {
    (0..8).map(|j| ((i * 7 + j * 3) % 11) as f32 - 5.0 + 0.25 * (j as f32)).collect()
}

fn write_raw(dir: &str) -> Res<Value> {
    let e = Engine::builder(dir).dimension(8).metric(Metric::Cosine).open()?;
    let mut b = WriteBatch::new();
    for i in 0..40 {
        b.add(Record::new(format!("r{i}"), raw_vector(i)).with_text(format!("record number {i}")).with_metadata(meta(json!({
            "i": i, "even": i % 2 == 0, "name": format!("n{}", i % 5), "score": i as f64 / 4.0,
        }))));
    }
    e.write(b)?;
    for i in [3, 17, 29] {
        e.delete(&format!("r{i}"))?;
    }
    e.upsert(Record::new("r5", raw_vector(100)).with_text("replaced in rust"))?;
    e.update_metadata("r6", Some(meta(json!({"updated": true, "nested": {"a": [1, 2]}}))))?;
    e.add(Record::new("ünïcode-id", raw_vector(7)))?;
    let count = e.count();
    e.close()?;
    Ok(json!({"count": count}))
}

fn write_text(dir: &str) -> Res<Value> {
    let e = Engine::builder(dir).default_model().open()?;
    let texts: Vec<String> = std::io::stdin().lock().lines().collect::<Result<_, _>>()?;
    let mems = texts.iter().enumerate().map(|(n, t)| Memory::new(t.as_str()).with_metadata(meta(json!({"line": n})))).collect();
    let ids = e.remember_batch(mems, None)?;
    let count = e.count();
    e.close()?;
    Ok(json!({"ids": ids, "count": count}))
}

fn hits(h: Vec<memento::SearchHit>) -> Value {
    Value::Array(h.into_iter().map(|h| json!({"id": h.id, "distance": h.distance, "text": h.text, "metadata": h.metadata})).collect())
}

fn dump(dir: &str, model: Option<&str>) -> Res<Value> {
    let mut b = Engine::builder(dir).create(false);
    if model == Some("default") {
        b = b.default_model();
    }
    let e = b.open()?;
    let mut records = Vec::new();
    for r in e.iter() {
        let r = r?;
        records.push(json!({"id": r.id, "vector": r.vector, "text": r.text, "metadata": r.metadata}));
    }
    let query: Vec<f32> = match std::env::var("QUERY") {
        Ok(q) => q.split(',').map(|x| x.trim().parse::<f32>()).collect::<Result<_, _>>()?,
        Err(_) => records.first().and_then(|r| serde_json::from_value(r["vector"].clone()).ok()).unwrap_or_else(|| vec![1.0; e.dimension()]),
    };
    let search = hits(e.search(&query, 5, None)?);
    let recall = match (std::env::var("RECALL"), e.embedder().is_some()) {
        (Ok(q), true) => hits(e.recall(&q, 3, None)?),
        _ => Value::Null,
    };
    let out = json!({
        "dimension": e.dimension(), "metric": e.metric().name(), "model": e.model().map(|m| m.id.clone()),
        "count": e.count(), "records": records, "search": search, "recall": recall,
    });
    e.close()?;
    Ok(out)
}

fn append(dir: &str, id: &str, v: &str) -> Res<Value> {
    let v: Vec<f32> = v.split(',').map(|x| x.trim().parse::<f32>()).collect::<Result<_, _>>()?;
    let e = Engine::open(dir)?;
    e.add(Record::new(id, v).with_text("from rust"))?;
    let count = e.count();
    e.close()?;
    Ok(json!({"count": count}))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let r = match a(0) {
        "write-raw" => write_raw(a(1)),
        "write-text" => write_text(a(1)),
        "dump" => dump(a(1), args.get(2).map(String::as_str)),
        "append" => append(a(1), a(2), a(3)),
        _ => Err("usage: memento-rust-writer write-raw|write-text|dump|append DIR ...".into()),
    };
    match r {
        Ok(v) => println!("{v}"),
        Err(e) => {
            println!("{}", json!({"error": e.to_string()}));
            std::process::exit(1);
        }
    }
}
