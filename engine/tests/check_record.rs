//! `Engine::check_record` and `Engine::check_memory` run exactly the checks a write runs (issue
//! 13, item 6): for each record, a check fails if and only if writing it fails, with the same
//! error; and a check writes nothing.

use std::sync::Arc;

use memento::storage::MemStorage;
use memento::{Engine, Memory, Metadata, Metric, Record, WriteBatch};
use serde_json::{json, Value};

fn meta(v: Value) -> Metadata {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn engine(dim: usize, metric: Metric) -> Engine {
    Engine::builder_with_storage(Arc::new(MemStorage::new())).dimension(dim).metric(metric).open().expect("create")
}

/// Records each good or bad in one way the write path knows.
fn records() -> Vec<Record> {
    let good = || Record::new("a", vec![1.0, 2.0]);
    let mut deep = json!(1);
    for _ in 0..10 {
        deep = json!({ "d": deep });
    }
    vec![
        good(),
        good().with_text("a text").with_metadata(meta(json!({"k": [1, {"x": null}], "n": -3.5}))),
        Record::new("", vec![1.0, 2.0]),
        Record::new("x".repeat(1024), vec![1.0, 2.0]),
        Record::new("x".repeat(1025), vec![1.0, 2.0]),
        Record::new("a", vec![1.0]),
        Record::new("a", vec![1.0, 2.0, 3.0]),
        Record::new("a", vec![f32::NAN, 1.0]),
        Record::new("a", vec![1.0, f32::INFINITY]),
        Record::new("a", vec![0.0, 0.0]),
        Record::new("a", vec![-0.0, 0.0]),
        good().with_metadata(meta(json!({"k\u{0}": 1}))),
        good().with_metadata(meta(json!({"ok": "v\u{0}"}))),
        good().with_metadata(meta(json!({ "deep": deep }))),
    ]
}

#[test]
fn check_record_fails_exactly_when_the_write_fails_and_writes_nothing() {
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let e = engine(2, metric);
        let mut bad = 0;
        for r in records() {
            let checked = e.check_record(&r).map_err(|e| e.to_string());
            assert_eq!(e.count(), 0, "a check wrote something");
            let written = e.upsert(r.clone()).map(drop).map_err(|e| e.to_string());
            assert_eq!(checked, written, "{metric:?}: {:?}", r.id.get(..20));
            let mut b = WriteBatch::new();
            b.add(Record::new("other", vec![1.0, 1.0])).add(r.clone());
            let batch = e.write(b).map(drop).map_err(|e| e.to_string());
            if checked.is_err() {
                bad += 1;
                // In a batch, a vector's error also names its record ("record 1 of the batch
                // (id ...): "); otherwise it is the same error.
                let batch = batch.map_err(|m| match (m.find("record 1 of the batch (id "), m.find("): ")) {
                    (Some(a), Some(b)) if b > a => format!("{}{}", &m[..a], &m[b + 3..]),
                    _ => m,
                });
                assert_eq!(batch, checked, "a batch fails for the same reason");
            }
            // Start again from an empty store.
            for id in [r.id.as_str(), "other"] {
                if !id.is_empty() && id.len() <= 1024 {
                    e.delete(id).expect("delete");
                }
            }
        }
        assert_eq!(bad, if metric == Metric::Cosine { 9 } else { 7 }, "{metric:?}");
    }
}

#[test]
fn check_memory_checks_the_id_and_the_metadata() {
    let e = engine(3, Metric::Cosine);
    assert!(e.check_memory(&Memory::new("a note")).is_ok());
    assert!(e.check_memory(&Memory::new("a note").with_id("n1").with_metadata(meta(json!({"k": 1})))).is_ok());
    let err = e.check_memory(&Memory::new("a note").with_metadata(meta(json!({"k\u{0}": 1})))).expect_err("a NUL in a key");
    assert!(err.to_string().contains("NUL"), "{err}");
    let err = e.check_memory(&Memory::new("a note").with_id("")).expect_err("an empty id");
    assert!(err.to_string().contains("1 to 1024 bytes"), "{err}");
    assert!(e.check_memory(&Memory::new("a note").with_id("x".repeat(1025))).is_err());
    assert_eq!(e.count(), 0);
}
