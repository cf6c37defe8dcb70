//! Metadata merge ([`memento::merge_metadata`], [`WriteBatch::merge_metadata`],
//! [`Engine::merge_metadata`]): planned by the engine under its writer lock against the record's
//! metadata as of that point of the batch, committed as an ordinary metadata update.

use std::path::Path;
use std::sync::Arc;

use memento::{merge_metadata, Engine, Error, Metadata, Metric, Record, WriteBatch};
use serde_json::{json, Value};

fn meta(v: Value) -> Metadata {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn create(path: &Path) -> Engine {
    Engine::builder(path).dimension(2).metric(Metric::L2).open().expect("create")
}

fn metadata_of(e: &Engine, id: &str) -> Option<Value> {
    e.get(id).expect("get").expect("present").metadata.map(Value::Object)
}

#[test]
fn the_function_sets_replaces_and_removes_keys() {
    let old = meta(json!({"a": 1, "b": "x", "c": [1, 2]}));
    let patch = meta(json!({"b": "y", "c": null, "d": {"e": true}, "missing": null}));
    assert_eq!(Value::Object(merge_metadata(Some(&old), &patch)), json!({"a": 1, "b": "y", "d": {"e": true}}));
    // No old metadata: the patch without its nulls; always an object, possibly empty.
    assert_eq!(Value::Object(merge_metadata(None, &patch)), json!({"b": "y", "d": {"e": true}}));
    assert_eq!(Value::Object(merge_metadata(None, &meta(json!({"x": null})))), json!({}));
    assert_eq!(Value::Object(merge_metadata(Some(&old), &Metadata::new())), json!({"a": 1, "b": "x", "c": [1, 2]}));
}

#[test]
fn merge_adds_replaces_and_removes_keys_and_keeps_vector_and_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path());
    e.add(Record::new("r", vec![1.0, 2.0]).with_text("a text").with_metadata(meta(json!({"keep": 1, "change": "old", "drop": true})))).expect("add");
    e.merge_metadata("r", meta(json!({"change": "new", "drop": null, "add": [1, 2]}))).expect("merge");
    let r = e.get("r").expect("get").expect("present");
    assert_eq!(r.metadata.map(Value::Object), Some(json!({"keep": 1, "change": "new", "add": [1, 2]})));
    assert_eq!(r.vector, vec![1.0, 2.0]);
    assert_eq!(r.text.as_deref(), Some("a text"));
    // Filters see the merged metadata.
    let f = memento::Filter::from_json_str(r#"{"change": "new"}"#).expect("filter");
    assert_eq!(e.get_where(&f, None).expect("get_where").len(), 1);
    e.check_integrity().expect("integrity");
}

#[test]
fn merge_into_a_record_without_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path());
    e.add(Record::new("r", vec![1.0, 0.0])).expect("add");
    e.add(Record::new("s", vec![0.0, 1.0])).expect("add");
    e.merge_metadata("r", meta(json!({"k": "v", "gone": null}))).expect("merge");
    assert_eq!(metadata_of(&e, "r"), Some(json!({"k": "v"})));
    // Only nulls: the metadata becomes an empty object, as the merge function says.
    e.merge_metadata("s", meta(json!({"gone": null}))).expect("merge");
    assert_eq!(metadata_of(&e, "s"), Some(json!({})));
}

#[test]
fn merge_sees_the_earlier_operations_of_its_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path());
    e.add(Record::new("r", vec![1.0, 0.0]).with_metadata(meta(json!({"stored": 1})))).expect("add");
    e.add(Record::new("u", vec![0.0, 1.0]).with_metadata(meta(json!({"stored": 1})))).expect("add");
    e.add(Record::new("n", vec![1.0, 1.0]).with_metadata(meta(json!({"stored": 1})))).expect("add");

    let mut b = WriteBatch::new();
    // After a replacement of the metadata, then after another merge.
    b.update_metadata("r", Some(meta(json!({"replaced": 1, "x": 0}))))
        .merge_metadata("r", meta(json!({"first": 1, "x": null})))
        .merge_metadata("r", meta(json!({"second": 2, "first": "again"})));
    // After an upsert of the record in the same batch (a new slot).
    b.upsert(Record::new("u", vec![0.5, 0.5]).with_metadata(meta(json!({"upserted": true})))).merge_metadata("u", meta(json!({"merged": true})));
    // After a removal of the metadata in the same batch.
    b.update_metadata("n", None).merge_metadata("n", meta(json!({"only": 1})));
    // A record added by the same batch.
    b.add(Record::new("new", vec![2.0, 0.0])).merge_metadata("new", meta(json!({"fresh": 1})));
    let info = e.write(b).expect("write");
    assert_eq!((info.written, info.deleted), (2, 1));

    assert_eq!(metadata_of(&e, "r"), Some(json!({"replaced": 1, "first": "again", "second": 2})));
    assert_eq!(metadata_of(&e, "u"), Some(json!({"upserted": true, "merged": true})));
    assert_eq!(e.get("u").expect("get").expect("present").vector, vec![0.5, 0.5]);
    assert_eq!(metadata_of(&e, "n"), Some(json!({"only": 1})));
    assert_eq!(metadata_of(&e, "new"), Some(json!({"fresh": 1})));
    e.check_integrity().expect("integrity");
}

#[test]
fn merge_of_a_missing_record_is_not_found_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path());
    e.add(Record::new("r", vec![1.0, 0.0]).with_metadata(meta(json!({"k": 1})))).expect("add");
    assert!(matches!(e.merge_metadata("nope", meta(json!({"k": 2}))), Err(Error::NotFound { id }) if id == "nope"));
    // In a batch, the whole batch is refused: the other operations are not written.
    let mut b = WriteBatch::new();
    b.merge_metadata("r", meta(json!({"k": 2}))).add(Record::new("s", vec![0.0, 1.0])).merge_metadata("nope", meta(json!({"k": 3})));
    assert!(matches!(e.write(b), Err(Error::NotFound { id }) if id == "nope"));
    // A record deleted earlier in the batch is missing too.
    let mut b = WriteBatch::new();
    b.delete("r").merge_metadata("r", meta(json!({"k": 4})));
    assert!(matches!(e.write(b), Err(Error::NotFound { id }) if id == "r"));
    assert_eq!(e.count(), 1);
    assert_eq!(metadata_of(&e, "r"), Some(json!({"k": 1})));
    assert!(!e.contains("s").expect("contains"));
    // check_write plans the same way.
    let mut b = WriteBatch::new();
    b.merge_metadata("nope", Metadata::new());
    assert!(matches!(e.check_write(b), Err(Error::NotFound { .. })));
    let mut b = WriteBatch::new();
    b.merge_metadata("r", meta(json!({"k": 5})));
    e.check_write(b).expect("check_write");
    assert_eq!(metadata_of(&e, "r"), Some(json!({"k": 1})));
    e.check_integrity().expect("integrity");
}

#[test]
fn merged_metadata_is_checked_like_any_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path());
    e.add(Record::new("r", vec![1.0, 0.0]).with_metadata(meta(json!({"k": 1})))).expect("add");
    // A NUL in a key, an integer beyond i64: a bad argument, whether or not the record exists.
    for id in ["r", "nope"] {
        assert!(matches!(e.merge_metadata(id, meta(json!({"a\0b": 1}))), Err(Error::InvalidArgument { .. })), "{id}");
        assert!(matches!(e.merge_metadata(id, meta(json!({"big": u64::MAX}))), Err(Error::InvalidArgument { .. })), "{id}");
    }
    // An id no record can have.
    assert!(matches!(e.merge_metadata("", Metadata::new()), Err(Error::InvalidArgument { .. })));
    assert_eq!(metadata_of(&e, "r"), Some(json!({"k": 1})));
}

#[test]
fn merges_survive_reopening_and_the_mirror_agrees() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let e = create(dir.path());
        e.add(Record::new("r", vec![1.0, 0.0]).with_metadata(meta(json!({"a": 1, "b": 2})))).expect("add");
        e.merge_metadata("r", meta(json!({"b": null, "c": 3}))).expect("merge");
        e.merge_metadata("r", meta(json!({"d": 4}))).expect("merge");
        // Not closed: the merges are replayed from the WAL at the next open.
        e.abandon();
    }
    let e = Engine::open(dir.path()).expect("reopen");
    assert_eq!(metadata_of(&e, "r"), Some(json!({"a": 1, "c": 3, "d": 4})));
    e.check_integrity().expect("integrity");
    // After a checkpoint and a clean close too.
    e.merge_metadata("r", meta(json!({"a": null}))).expect("merge");
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    assert_eq!(metadata_of(&e, "r"), Some(json!({"c": 3, "d": 4})));
    e.check_integrity().expect("integrity");
}

#[test]
fn concurrent_merges_lose_no_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Arc::new(create(dir.path()));
    e.add(Record::new("r", vec![1.0, 0.0]).with_metadata(meta(json!({"base": true})))).expect("add");
    let threads = 4;
    let per_thread = 25;
    std::thread::scope(|s| {
        for t in 0..threads {
            let e = Arc::clone(&e);
            s.spawn(move || {
                for i in 0..per_thread {
                    let mut patch = Metadata::new();
                    patch.insert(format!("t{t}-{i}"), json!(i));
                    e.merge_metadata("r", patch).expect("merge");
                }
            });
        }
    });
    let m = e.get("r").expect("get").expect("present").metadata.expect("metadata");
    assert_eq!(m.len(), 1 + threads * per_thread, "every key of every merge is there");
    assert_eq!(m["base"], json!(true));
    e.check_integrity().expect("integrity");
}
