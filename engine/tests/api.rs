//! Scenario tests of the public API: typed errors, atomic batches, filtered search, iteration,
//! durability modes, concurrency, statistics, large and unusual values.

use std::path::Path;
use std::sync::Arc;

use memento::storage::MemStorage;
use memento::{Durability, Engine, Error, Filter, Metadata, Metric, Record, WriteBatch};
use serde_json::{json, Value};

fn meta(v: Value) -> Metadata {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn create(path: &Path, dim: usize, metric: Metric) -> Engine {
    Engine::builder(path).dimension(dim).metric(metric).open().expect("create")
}

fn filter(s: &str) -> Filter {
    Filter::from_json_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn ids(hits: &[memento::SearchHit]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// Typed errors

#[test]
fn dimension_mismatch_on_every_entry_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path(), 3, Metric::L2);
    let check = |r: memento::Result<()>, got: usize| match r {
        Err(Error::DimensionMismatch { expected, got: g }) => assert_eq!((expected, g), (3, got)),
        other => panic!("expected DimensionMismatch, got {other:?}"),
    };
    check(e.add(Record::new("a", vec![1.0, 2.0])).map(|_| ()), 2);
    check(e.upsert(Record::new("a", vec![1.0, 2.0, 3.0, 4.0])).map(|_| ()), 4);
    check(e.add(Record::new("a", vec![])).map(|_| ()), 0);
    check(e.search(&[1.0], 3, None).map(|_| ()), 1);
    let mut b = WriteBatch::new();
    b.add(Record::new("ok", vec![1.0, 2.0, 3.0])).add(Record::new("bad", vec![1.0]));
    check(e.write(b).map(|_| ()), 1);
    assert_eq!(e.count(), 0);
    assert_eq!(e.dimension(), 3);
    e.close().expect("close");
}

#[test]
fn invalid_vectors_are_refused_and_zero_is_only_refused_under_cosine() {
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = create(dir.path(), 3, metric);
        for bad in [vec![f32::NAN, 0.0, 1.0], vec![1.0, f32::INFINITY, 0.0], vec![1.0, 0.0, f32::NEG_INFINITY]] {
            assert!(matches!(e.add(Record::new("x", bad.clone())), Err(Error::InvalidVector { .. })), "{metric:?} add {bad:?}");
            assert!(matches!(e.upsert(Record::new("x", bad.clone())), Err(Error::InvalidVector { .. })), "{metric:?} upsert {bad:?}");
            assert!(matches!(e.search(&bad, 3, None), Err(Error::InvalidVector { .. })), "{metric:?} search {bad:?}");
        }
        let zero = vec![0.0, 0.0, 0.0];
        let r = e.add(Record::new("zero", zero.clone()));
        let q = e.search(&zero, 3, None);
        if metric == Metric::Cosine {
            assert!(matches!(r, Err(Error::InvalidVector { .. })), "cosine accepted a zero vector: {r:?}");
            assert!(matches!(q, Err(Error::InvalidVector { .. })), "cosine accepted a zero query: {q:?}");
            assert_eq!(e.count(), 0);
        } else {
            r.unwrap_or_else(|err| panic!("{metric:?} refused a zero vector: {err}"));
            let hits = q.unwrap_or_else(|err| panic!("{metric:?} refused a zero query: {err}"));
            assert_eq!(ids(&hits), vec!["zero"]);
            assert_eq!(hits[0].distance, 0.0);
            assert_eq!(e.get("zero").expect("get").expect("present").vector, zero);
        }
        e.close().expect("close");
    }
}

/// Under cosine, any finite vector that is not all zeros has a direction; the documented
/// refusals are NaN, infinities and all-zero vectors only. Very large or very small components
/// (whose squared norm overflows or underflows an f32) must still be accepted, normalised
/// correctly, and found.
#[test]
fn cosine_accepts_finite_nonzero_vectors_of_any_scale() {
    let e = Engine::builder_with_storage(Arc::new(MemStorage::new())).dimension(3).metric(Metric::Cosine).open().expect("create");
    let cases: [(&str, [f32; 3], [f32; 3]); 6] = [
        ("huge", [3e19, 4e19, 0.0], [0.6, 0.8, 0.0]),
        ("max", [f32::MAX, 0.0, 0.0], [1.0, 0.0, 0.0]),
        ("tiny", [0.0, 3e-30, 4e-30], [0.0, 0.6, 0.8]),
        ("subnormal", [0.0, 0.0, 1e-44], [0.0, 0.0, 1.0]),
        ("subnormal-norm", [3e-21, 0.0, 4e-21], [0.6, 0.0, 0.8]),
        ("plain", [1.0, 1.0, 0.0], [std::f32::consts::FRAC_1_SQRT_2, std::f32::consts::FRAC_1_SQRT_2, 0.0]),
    ];
    let mut failures = Vec::new();
    for (id, v, unit) in cases {
        match e.add(Record::new(id, v.to_vec())) {
            Ok(_) => {
                let got = e.get(id).expect("get").expect("present").vector;
                if !got.iter().zip(unit).all(|(a, b)| (a - b).abs() < 1e-5) {
                    failures.push(format!("{id} {v:?}: stored as {got:?}, want {unit:?}"));
                }
                match e.search(&v, 1, Some(&Filter::parse(&json!({})).expect("filter"))) {
                    Ok(h) if h.len() == 1 && h[0].distance.abs() < 1e-4 => {}
                    other => failures.push(format!("{id} {v:?}: searching for itself gave {other:?}")),
                }
            }
            Err(err) => failures.push(format!("{id} {v:?}: refused: {err}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn duplicate_id_leaves_the_original() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path(), 2, Metric::L2);
    e.add(Record::new("a", vec![1.0, 2.0]).with_text("first")).expect("add");
    match e.add(Record::new("a", vec![3.0, 4.0]).with_text("second")) {
        Err(Error::DuplicateId { id, in_batch: false }) => assert_eq!(id, "a"),
        other => panic!("expected DuplicateId, got {other:?}"),
    }
    let r = e.get("a").expect("get").expect("present");
    assert_eq!((r.vector, r.text.as_deref()), (vec![1.0, 2.0], Some("first")));
    // Twice in one batch.
    let mut b = WriteBatch::new();
    b.add(Record::new("b", vec![0.0, 1.0])).add(Record::new("b", vec![1.0, 0.0]));
    assert!(matches!(e.write(b), Err(Error::DuplicateId { id, in_batch: true }) if id == "b"));
    assert!(e.get("b").expect("get").is_none());
    // Add after delete in one batch is fine; add after upsert in one batch is a duplicate.
    let mut b = WriteBatch::new();
    b.delete("a").add(Record::new("a", vec![5.0, 5.0]));
    e.write(b).expect("delete then add");
    assert_eq!(e.get("a").expect("get").expect("present").vector, vec![5.0, 5.0]);
    let mut b = WriteBatch::new();
    b.upsert(Record::new("c", vec![1.0, 1.0])).add(Record::new("c", vec![2.0, 2.0]));
    assert!(matches!(e.write(b), Err(Error::DuplicateId { .. })));
    assert!(e.get("c").expect("get").is_none());
    assert_eq!(e.count(), 1);
    e.close().expect("close");
}

#[test]
fn updates_of_missing_records_are_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path(), 2, Metric::Dot);
    assert!(matches!(e.update_metadata("nope", None), Err(Error::NotFound { id }) if id == "nope"));
    assert!(matches!(e.update_text("nope", Some("t".into())), Err(Error::NotFound { id }) if id == "nope"));
    e.add(Record::new("gone", vec![1.0, 0.0])).expect("add");
    assert!(e.delete("gone").expect("delete"));
    assert!(!e.delete("gone").expect("delete again"), "deleting a missing record reports false");
    assert!(matches!(e.update_text("gone", None), Err(Error::NotFound { .. })));
    // An update after an add in the same batch finds it; after a delete it does not.
    let mut b = WriteBatch::new();
    b.add(Record::new("new", vec![0.0, 1.0])).update_text("new", Some("set in batch".into()));
    e.write(b).expect("add then update");
    assert_eq!(e.get("new").expect("get").expect("present").text.as_deref(), Some("set in batch"));
    let mut b = WriteBatch::new();
    b.delete("new").update_metadata("new", Some(Metadata::new()));
    assert!(matches!(e.write(b), Err(Error::NotFound { .. })));
    assert!(e.get("new").expect("get").is_some(), "the failed batch deleted its record");
    assert_eq!(e.stats().last_lsn, e.stats().last_lsn);
    e.close().expect("close");
}

#[test]
fn invalid_ids_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path(), 2, Metric::L2);
    let long = "x".repeat(1025);
    // 1,026 bytes of two-byte characters: the error message must not cut a character in two.
    let long_multibyte = "é".repeat(513);
    for bad in ["", long.as_str(), long_multibyte.as_str()] {
        assert!(matches!(e.add(Record::new(bad, vec![1.0, 2.0])), Err(Error::InvalidArgument { .. })), "add id of {} bytes", bad.len());
        assert!(matches!(e.upsert(Record::new(bad, vec![1.0, 2.0])), Err(Error::InvalidArgument { .. })), "upsert id of {} bytes", bad.len());
        assert!(matches!(e.delete(bad), Err(Error::InvalidArgument { .. })), "delete id of {} bytes", bad.len());
        assert!(matches!(e.update_text(bad, None), Err(Error::InvalidArgument { .. })), "update id of {} bytes", bad.len());
        assert_eq!(e.get(bad).expect("get of an impossible id"), None);
    }
    // The longest id is fine, in ASCII and in four-byte characters.
    let max = "y".repeat(1024);
    let max4 = "🦀".repeat(256);
    assert_eq!(max4.len(), 1024);
    e.add(Record::new(max.clone(), vec![1.0, 2.0])).expect("1024-byte id");
    e.add(Record::new(max4.clone(), vec![2.0, 1.0])).expect("1024-byte id of crabs");
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    assert!(e.get(&max).expect("get").is_some());
    assert!(e.get(&max4).expect("get").is_some());
    assert_eq!(e.count(), 2);
    e.check_integrity().expect("integrity");
    e.close().expect("close");
}

#[test]
fn invalid_filters_are_refused() {
    for bad in [
        "not json",
        "[1, 2]",
        "{\"n\": {\"$bogus\": 1}}",
        "{\"$bogus\": 1}",
        "{\"n\": {\"$in\": []}}",
        "{\"n\": {\"$in\": 3}}",
        "{\"n\": {\"$eq\": null}}",
        "{\"n\": {\"$eq\": [1]}}",
        "{\"n\": {\"$gt\": true}}",
        "{\"$and\": []}",
        "{\"$or\": {}}",
        "{\"$contains\": \"\"}",
        "{\"$contains\": 3}",
        "{\"a\\u0000b\": 1}",
        "null",
    ] {
        match Filter::from_json_str(bad) {
            Err(Error::InvalidFilter { reason }) => assert!(!reason.is_empty()),
            other => panic!("{bad}: expected InvalidFilter, got {other:?}"),
        }
    }
    // Too deep.
    let mut deep = json!({"n": 1});
    for _ in 0..100 {
        deep = json!({"$and": [deep]});
    }
    assert!(matches!(Filter::parse(&deep), Err(Error::InvalidFilter { .. })));
}

#[test]
fn incompatible_options_at_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    create(dir.path(), 4, Metric::Dot).close().expect("close");
    assert!(matches!(Engine::builder(dir.path()).dimension(5).open(), Err(Error::Incompatible { .. })));
    assert!(matches!(Engine::builder(dir.path()).metric(Metric::Cosine).open(), Err(Error::Incompatible { .. })));
    assert!(matches!(Engine::builder(dir.path()).dimension(4).metric(Metric::L2).open(), Err(Error::Incompatible { .. })));
    // The failed attempts released the lock and changed nothing.
    let e = Engine::builder(dir.path()).dimension(4).metric(Metric::Dot).open().expect("matching options");
    assert_eq!((e.dimension(), e.metric()), (4, Metric::Dot));
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("no options");
    assert_eq!((e.dimension(), e.metric()), (4, Metric::Dot));
    e.close().expect("close");
}

#[test]
fn invalid_creation_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(Engine::builder(dir.path().join("a")).open(), Err(Error::InvalidArgument { .. })), "no dimension");
    assert!(matches!(Engine::builder(dir.path().join("b")).dimension(0).open(), Err(Error::InvalidArgument { .. })), "dimension 0");
    assert!(matches!(Engine::builder(dir.path().join("c")).dimension(4).page_size(4096).open(), Err(Error::InvalidArgument { .. })), "page 4096");
    assert!(matches!(Engine::builder(dir.path().join("d")).dimension(4).page_size(10000).open(), Err(Error::InvalidArgument { .. })), "page 10000");
    assert!(
        matches!(Engine::builder(dir.path().join("e")).dimension(8192).page_size(8192).open(), Err(Error::InvalidArgument { .. })),
        "vector larger than a page"
    );
    // None of them left a store behind.
    for name in ["a", "b", "c", "d", "e"] {
        assert!(!dir.path().join(name).join(memento::files::VECTORS).exists(), "{name} left a vector file");
    }
}

#[test]
fn opening_a_missing_store_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    match Engine::open(&missing) {
        Err(Error::InvalidArgument { reason }) => assert!(reason.contains("no store"), "{reason}"),
        other => panic!("expected an error opening a missing store, got {other:?}"),
    }
    match Engine::builder(&missing).create(false).dimension(3).open() {
        Err(Error::InvalidArgument { .. }) => {}
        other => panic!("create(false) on a missing store: {other:?}"),
    }
    // An empty existing directory is not a store either.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    assert!(Engine::open(&empty).is_err());
    assert!(!empty.join(memento::files::VECTORS).exists());
}

/// `Engine::open` is documented as "creating nothing"; on a missing path it should leave no
/// directory (and no `LOCK` file) behind.
#[test]
fn opening_a_missing_store_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing").join("deeper");
    assert!(Engine::open(&missing).is_err());
    assert!(
        !missing.exists(),
        "Engine::open created {} (contents: {:?})",
        missing.display(),
        std::fs::read_dir(&missing).map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect::<Vec<_>>())
    );
    assert!(!dir.path().join("missing").exists(), "Engine::open created the parent directory");
}

// ---------------------------------------------------------------------------------------------
// Batches

#[test]
fn a_failed_batch_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path(), 3, Metric::Cosine);
    e.add(Record::new("keep", vec![1.0, 0.0, 0.0]).with_text("kept")).expect("add");
    let before = e.stats();
    let failing: Vec<(&str, WriteBatch)> = vec![
        ("NaN vector", {
            let mut b = WriteBatch::new();
            b.add(Record::new("n1", vec![1.0, 1.0, 1.0]))
                .delete("keep")
                .add(Record::new("n2", vec![f32::NAN, 1.0, 1.0]))
                .add(Record::new("n3", vec![0.0, 1.0, 1.0]));
            b
        }),
        ("zero vector under cosine", {
            let mut b = WriteBatch::new();
            b.upsert(Record::new("keep", vec![0.0, 1.0, 0.0]).with_text("replaced")).upsert(Record::new("z", vec![0.0, 0.0, 0.0]));
            b
        }),
        ("wrong dimension last", {
            let mut b = WriteBatch::new();
            b.update_text("keep", Some("changed".into())).add(Record::new("d", vec![1.0, 2.0]));
            b
        }),
        ("empty id", {
            let mut b = WriteBatch::new();
            b.add(Record::new("e1", vec![1.0, 2.0, 3.0])).add(Record::new("", vec![1.0, 2.0, 3.0]));
            b
        }),
        ("duplicate", {
            let mut b = WriteBatch::new();
            b.add(Record::new("d1", vec![1.0, 2.0, 3.0])).update_metadata("keep", Some(meta(json!({"x": 1})))).add(Record::new("keep", vec![1.0, 2.0, 3.0]));
            b
        }),
    ];
    for (what, b) in failing {
        assert!(e.write(b).is_err(), "{what}: the batch succeeded");
        assert_eq!(e.stats(), before, "{what}: stats changed");
        let k = e.get("keep").expect("get").expect("keep is still there");
        assert_eq!((k.text.as_deref(), k.metadata, k.vector), (Some("kept"), None, vec![1.0, 0.0, 0.0]), "{what}");
        for id in ["n1", "n2", "n3", "z", "d", "e1", "d1"] {
            assert!(e.get(id).expect("get").is_none(), "{what}: {id} was written");
        }
    }
    // Nothing reached the WAL either: a crash and reopen shows the same.
    e.abandon();
    let e = Engine::open(dir.path()).expect("reopen");
    assert_eq!(e.count(), 1);
    assert_eq!(e.stats().last_lsn, before.last_lsn);
    e.check_integrity().expect("integrity");
    e.close().expect("close");
}

#[test]
fn empty_and_no_op_batches_commit_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path(), 2, Metric::L2);
    let info = e.write(WriteBatch::new()).expect("empty batch");
    assert_eq!((info.lsn, info.written, info.deleted), (None, 0, 0));
    let mut b = WriteBatch::new();
    b.delete("nobody");
    let info = e.write(b).expect("delete of nobody");
    assert_eq!((info.lsn, info.written, info.deleted), (None, 0, 0));
    assert_eq!(e.stats().last_lsn, 0);
    let mut b = WriteBatch::new();
    b.add(Record::new("a", vec![1.0, 1.0])).upsert(Record::new("a", vec![2.0, 2.0])).delete("a").upsert(Record::new("b", vec![3.0, 3.0]));
    assert!(!b.is_empty());
    assert_eq!(b.len(), 4);
    let info = e.write(b).expect("batch");
    assert!(info.lsn.is_some());
    assert_eq!((info.written, info.deleted), (3, 2));
    assert_eq!(e.count(), 1);
    assert_eq!(e.stats().last_lsn, info.lsn.expect("lsn"));
    e.close().expect("close");
}

// ---------------------------------------------------------------------------------------------
// Search, delete_where, iteration

#[test]
fn hits_score_larger_is_closer_under_every_metric() {
    let q = [0.8f32, 0.6, 0.0];
    let vs = [[1.0f32, 0.0, 0.0], [0.0, 2.0, 0.5], [-1.0, 0.5, 3.0], [0.8, 0.6, 0.0]];
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = create(dir.path(), 3, metric);
        for (i, v) in vs.iter().enumerate() {
            e.add(Record::new(format!("r{i}"), v.to_vec())).expect("add");
        }
        let hits = e.search(&q, vs.len(), None).expect("search");
        assert_eq!(hits.len(), vs.len());
        for h in &hits {
            let v = &vs[h.id[1..].parse::<usize>().expect("index")];
            let dot: f32 = q.iter().zip(v).map(|(a, b)| a * b).sum();
            let norm = |x: &[f32]| x.iter().map(|a| a * a).sum::<f32>().sqrt();
            let l2: f32 = q.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum();
            // The definition (the Python package's score_of) ...
            let want = match metric {
                Metric::Cosine => 1.0 - h.distance,
                Metric::Dot | Metric::L2 => -h.distance,
            };
            assert_eq!(h.score.to_bits(), want.to_bits(), "{metric:?} {}", h.id);
            // ... which is the similarity itself: cosine, dot product, minus squared distance.
            let similarity = match metric {
                Metric::Cosine => dot / (norm(&q) * norm(v)),
                Metric::Dot => dot,
                Metric::L2 => -l2,
            };
            assert!((h.score - similarity).abs() < 1e-5, "{metric:?} {}: score {} for {similarity}", h.id, h.score);
        }
        // Closest first: scores never increase down the list.
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score), "{metric:?}: {hits:?}");
        assert_eq!(hits[0].id, if metric == Metric::Dot { "r1" } else { "r3" }, "{metric:?}");
        if metric == Metric::Cosine {
            // The same direction: a distance of (about) 0, never below, and a score of 1.
            assert!(hits[0].distance >= 0.0 && hits[0].score <= 1.0 && hits[0].score > 0.99999, "{hits:?}");
        }
        e.close().expect("close");
    }
}

#[test]
fn default_search_options_return_default_k_results() {
    use memento::{SearchOptions, DEFAULT_K};
    assert_eq!(DEFAULT_K, 10);
    let o = SearchOptions::default();
    assert_eq!(o.k, DEFAULT_K);
    assert!(o.filter.is_none() && o.threads.is_none() && o.mode == memento::ScanMode::Auto);
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path(), 2, Metric::L2);
    let mut b = WriteBatch::new();
    for i in 0..DEFAULT_K + 5 {
        b.add(Record::new(format!("r{i}"), vec![i as f32, 0.0]));
    }
    e.write(b).expect("write");
    assert_eq!(e.search_with(&[0.0, 0.0], &SearchOptions::default()).expect("search").len(), DEFAULT_K);
}

#[test]
fn filtered_search_returns_k_even_when_the_matches_are_the_farthest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Engine::builder(dir.path()).dimension(4).metric(Metric::L2).page_size(8192).open().expect("create");
    let mut b = WriteBatch::new();
    for i in 0..1500 {
        b.add(Record::new(format!("near{i}"), vec![i as f32 * 0.001, 0.0, 0.0, 0.0]).with_metadata(meta(json!({"kind": "near"}))));
    }
    e.write(b).expect("near batch");
    for i in 0..20 {
        e.add(
            Record::new(format!("far{i}"), vec![1000.0 + i as f32, 0.0, 0.0, 0.0])
                .with_metadata(meta(json!({"kind": "far", "i": i})))
                .with_text(format!("far away {i}")),
        )
        .expect("far");
        if i == 9 {
            e.checkpoint().expect("checkpoint between the far records");
        }
    }
    let far = filter(r#"{"kind": "far"}"#);
    let check = |e: &Engine| {
        let hits = e.search(&[0.0; 4], 10, Some(&far)).expect("search");
        assert_eq!(ids(&hits), (0..10).map(|i| format!("far{i}")).collect::<Vec<_>>());
        assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
        assert_eq!(hits[3].text.as_deref(), Some("far away 3"));
        assert_eq!(hits[3].metadata, Some(meta(json!({"kind": "far", "i": 3}))));
        let hits = e.search(&[0.0; 4], 30, Some(&far)).expect("search");
        assert_eq!(hits.len(), 20, "all 20 matches when k is larger");
        let hits = e.search(&[0.0; 4], 5, Some(&filter(r#"{"$contains": "away 1"}"#))).expect("search");
        assert_eq!(ids(&hits), vec!["far1", "far10", "far11", "far12", "far13"]);
        let none = e.search(&[0.0; 4], 5, Some(&filter(r#"{"kind": "nowhere"}"#))).expect("search");
        assert!(none.is_empty());
        assert!(e.search(&[0.0; 4], 0, None).expect("k = 0").is_empty());
        let all = e.search(&[0.0; 4], 5000, None).expect("k > count");
        assert_eq!(all.len(), 1520);
    };
    check(&e);
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    check(&e);
    // Deleted matches are not returned, and the next ones take their place.
    e.delete("far0").expect("delete");
    e.delete("far5").expect("delete");
    let hits = e.search(&[0.0; 4], 10, Some(&far)).expect("search");
    assert_eq!(ids(&hits), vec!["far1", "far2", "far3", "far4", "far6", "far7", "far8", "far9", "far10", "far11"]);
    e.close().expect("close");
}

#[test]
fn search_distances_and_ties() {
    let dir = tempfile::tempdir().expect("tempdir");
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let e = create(&dir.path().join(format!("{metric:?}")), 2, metric);
        e.add(Record::new("x", vec![2.0, 0.0])).expect("add");
        e.add(Record::new("y", vec![0.0, 3.0])).expect("add");
        e.add(Record::new("x-again", vec![2.0, 0.0])).expect("add");
        e.add(Record::new("x-first", vec![2.0, 0.0])).expect("add");
        e.upsert(Record::new("x", vec![2.0, 0.0])).expect("upsert moves x after the others");
        let hits = e.search(&[1.0, 0.0], 4, None).expect("search");
        let (want_d, y_d) = match metric {
            Metric::Cosine => (0.0, 1.0),
            Metric::Dot => (-2.0, -0.0),
            Metric::L2 => (1.0, 10.0),
        };
        assert_eq!(ids(&hits), vec!["x-again", "x-first", "x", "y"], "{metric:?}: ties in insertion order");
        for h in &hits[..3] {
            assert!((h.distance - want_d).abs() < 1e-6, "{metric:?}: {h:?}");
        }
        assert!((hits[3].distance - y_d).abs() < 1e-6, "{metric:?}: {:?}", hits[3]);
        e.close().expect("close");
    }
}

#[test]
fn delete_where_deletes_exactly_the_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path(), 2, Metric::L2);
    for i in 0..50 {
        let mut r = Record::new(format!("r{i}"), vec![i as f32, 1.0]).with_metadata(meta(json!({"i": i, "parity": if i % 2 == 0 { "even" } else { "odd" }})));
        if i % 3 == 0 {
            r = r.with_text("fizz");
        }
        e.add(r).expect("add");
    }
    e.checkpoint().expect("checkpoint");
    assert_eq!(e.delete_where(&filter(r#"{"parity": "odd", "i": {"$lt": 20}}"#)).expect("delete_where"), 10);
    assert_eq!(e.delete_where(&filter(r#"{"parity": "odd", "i": {"$lt": 20}}"#)).expect("again"), 0);
    assert_eq!(e.delete_where(&filter(r#"{"$contains": "fizz"}"#)).expect("fizz"), 17 - 3);
    assert_eq!(e.delete_where(&filter(r#"{"i": {"$gt": 1000}}"#)).expect("none"), 0);
    let remaining: Vec<String> = e.iter().map(|r| r.expect("iter").id).collect();
    let want: Vec<String> = (0..50).filter(|i| !(i % 2 == 1 && *i < 20) && i % 3 != 0).map(|i| format!("r{i}")).collect();
    assert_eq!(remaining, want);
    assert_eq!(e.count(), want.len() as u64);
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    assert_eq!(e.iter().map(|r| r.expect("iter").id).collect::<Vec<_>>(), want);
    assert_eq!(e.delete_where(&Filter::all()).expect("all"), want.len());
    assert_eq!(e.count(), 0);
    assert!(e.search(&[0.0, 0.0], 10, None).expect("search").is_empty());
    e.check_integrity().expect("integrity");
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    assert_eq!(e.count(), 0);
    assert_eq!(e.iter().count(), 0);
    e.close().expect("close");
}

#[test]
fn iter_returns_everything_in_insertion_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Engine::builder(dir.path()).dimension(3).metric(Metric::Dot).page_size(8192).open().expect("create");
    let mut want: Vec<String> = Vec::new();
    for i in 0..700 {
        e.add(Record::new(format!("id{i:04}"), vec![i as f32, 0.0, 1.0])).expect("add");
        want.push(format!("id{i:04}"));
        if i == 300 {
            e.checkpoint().expect("checkpoint");
        }
    }
    // Upserting moves a record to the end; deleting removes it.
    for i in [5, 400, 699, 0] {
        let id = format!("id{i:04}");
        e.upsert(Record::new(id.clone(), vec![-1.0, 0.0, 0.0])).expect("upsert");
        want.retain(|x| *x != id);
        want.push(id);
    }
    for i in [1, 256, 257, 512, 650] {
        let id = format!("id{i:04}");
        e.delete(&id).expect("delete");
        want.retain(|x| *x != id);
    }
    e.update_text("id0002", Some("updated in place".into())).expect("update keeps the position");
    let check = |e: &Engine| {
        let got: Vec<Record> = e.iter().collect::<memento::Result<_>>().expect("iter");
        assert_eq!(got.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), want);
        assert_eq!(got.len() as u64, e.count());
        let two = got.iter().find(|r| r.id == "id0002").expect("id0002");
        assert_eq!(two.text.as_deref(), Some("updated in place"));
        assert_eq!(two.vector, vec![2.0, 0.0, 1.0]);
        assert_eq!(got.last().expect("last").vector, vec![-1.0, 0.0, 0.0]);
    };
    check(&e);
    e.checkpoint().expect("checkpoint");
    check(&e);
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    check(&e);
    e.close().expect("close");
}

// ---------------------------------------------------------------------------------------------
// Durability, concurrency, statistics

#[test]
fn every_durability_mode_survives_close_and_crash() {
    for mode in [Durability::Sync, Durability::GroupCommit, Durability::Buffered] {
        for crash in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let e = Engine::builder(dir.path()).dimension(2).metric(Metric::L2).durability(mode).open().expect("create");
            for i in 0..50 {
                e.add(Record::new(format!("k{i}"), vec![i as f32, 0.0]).with_text(format!("t{i}"))).expect("add");
            }
            e.delete("k3").expect("delete");
            e.update_metadata("k4", Some(meta(json!({"mode": format!("{mode:?}")})))).expect("update");
            if mode == Durability::Buffered {
                e.sync().expect("sync");
                e.add(Record::new("after-sync", vec![0.5, 0.5])).expect("add after sync");
            }
            if crash {
                e.abandon();
            } else {
                e.close().expect("close");
            }
            let e = Engine::builder(dir.path()).durability(mode).open().expect("reopen");
            let extra = u64::from(mode == Durability::Buffered);
            assert_eq!(e.count(), 49 + extra, "{mode:?} crash={crash}");
            assert!(e.get("k3").expect("get").is_none());
            assert_eq!(e.get("k4").expect("get").expect("k4").metadata, Some(meta(json!({"mode": format!("{mode:?}")}))));
            assert_eq!(e.get("k49").expect("get").expect("k49").text.as_deref(), Some("t49"));
            e.check_integrity().expect("integrity");
            e.close().expect("close");
        }
    }
}

#[test]
fn group_commit_from_four_threads() {
    for crash in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Arc::new(Engine::builder(dir.path()).dimension(4).metric(Metric::Cosine).durability(Durability::GroupCommit).open().expect("create"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let e = Arc::clone(&e);
                std::thread::spawn(move || {
                    for i in 0..200 {
                        e.add(Record::new(format!("t{t}-{i}"), vec![1.0 + t as f32, i as f32, 1.0, 0.5]).with_metadata(meta(json!({"t": t, "i": i}))))
                            .expect("add");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let e = Arc::into_inner(e).expect("the only reference");
        assert_eq!(e.count(), 800);
        if crash {
            e.abandon();
        } else {
            e.close().expect("close");
        }
        let e = Engine::open(dir.path()).expect("reopen");
        assert_eq!(e.count(), 800, "crash={crash}");
        for t in 0..4 {
            for i in 0..200 {
                let r = e.get(&format!("t{t}-{i}")).expect("get").unwrap_or_else(|| panic!("t{t}-{i} is missing (crash={crash})"));
                assert_eq!(r.metadata, Some(meta(json!({"t": t, "i": i}))));
            }
        }
        assert_eq!(e.search(&[1.0, 0.0, 1.0, 0.5], 1000, Some(&filter(r#"{"t": 2}"#))).expect("search").len(), 200);
        e.check_integrity().expect("integrity");
        e.close().expect("close");
    }
}

#[test]
fn concurrent_readers_and_writers() {
    let e = Arc::new(Engine::builder_with_storage(Arc::new(MemStorage::new())).dimension(2).metric(Metric::L2).wal_limit(4096).open().expect("create"));
    let writer = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || {
            for i in 0..300 {
                e.add(Record::new(format!("w{i}"), vec![i as f32, 0.0])).expect("add");
                if i % 3 == 0 {
                    e.delete(&format!("w{}", i / 2)).expect("delete");
                }
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let e = Arc::clone(&e);
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let hits = e.search(&[10.0, 0.0], 5, None).expect("search");
                    assert!(hits.len() <= 5);
                    assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
                    let _ = e.iter().collect::<memento::Result<Vec<_>>>().expect("iter");
                }
            })
        })
        .collect();
    writer.join().expect("writer");
    for r in readers {
        r.join().expect("reader");
    }
    e.check_integrity().expect("integrity");
}

#[test]
fn count_and_stats_after_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Engine::builder(dir.path()).dimension(2).metric(Metric::L2).page_size(8192).open().expect("create");
    let s = e.stats();
    assert_eq!((s.count, s.slots, s.deleted, s.last_lsn, s.checkpoint_lsn, s.pending_vectors), (0, 0, 0, 0, 0, 0));
    assert_eq!((s.dimension, s.metric), (2, Metric::L2));
    for i in 0..10 {
        e.add(Record::new(format!("s{i}"), vec![i as f32, 0.0])).expect("add");
    }
    for i in 0..3 {
        assert!(e.delete(&format!("s{i}")).expect("delete"));
    }
    e.upsert(Record::new("s5", vec![0.0, 5.0])).expect("upsert existing");
    e.upsert(Record::new("s6", vec![0.0, 6.0])).expect("upsert existing");
    e.upsert(Record::new("new", vec![1.0, 1.0])).expect("upsert new");
    let check = |e: &Engine, pending: bool| {
        let s = e.stats();
        assert_eq!(e.count(), 8);
        assert_eq!((s.count, s.slots, s.deleted), (8, 13, 5), "{s:?}");
        assert_eq!(s.pending_vectors > 0, pending, "{s:?}");
        assert!(s.last_lsn >= s.checkpoint_lsn);
    };
    check(&e, true);
    let lsn = e.stats().last_lsn;
    e.checkpoint().expect("checkpoint");
    check(&e, false);
    let s = e.stats();
    assert_eq!(s.checkpoint_lsn, lsn);
    assert!(s.pages > 0 && s.vector_file_bytes > 0);
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    check(&e, false);
    assert!(e.stats().recovery.is_empty(), "{:?}", e.stats().recovery);
    assert_eq!(e.iter().count(), 8);
    e.close().expect("close");
}

// ---------------------------------------------------------------------------------------------
// Values

#[test]
fn large_text_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path(), 3, Metric::Cosine);
    let big: String = (0..(1 << 20)).map(|i| char::from(b'a' + (i % 26) as u8)).collect::<String>() + "THE-END";
    let big_unicode: String = "日本語テキスト🦀".repeat(45_000);
    assert!(big_unicode.len() > 1 << 20);
    e.add(Record::new("big", vec![1.0, 2.0, 3.0]).with_text(big.clone()).with_metadata(meta(json!({"blob": big_unicode.clone()})))).expect("add big");
    e.add(Record::new("small", vec![3.0, 2.0, 1.0]).with_text("small")).expect("add small");
    let check = |e: &Engine| {
        let r = e.get("big").expect("get").expect("big");
        assert_eq!(r.text.as_deref(), Some(big.as_str()));
        assert_eq!(r.metadata.as_ref().and_then(|m| m.get("blob")).and_then(Value::as_str), Some(big_unicode.as_str()));
        let hits = e.search(&[1.0, 2.0, 3.0], 1, Some(&filter(r#"{"$contains": "THE-END"}"#))).expect("search");
        assert_eq!(ids(&hits), vec!["big"]);
        assert_eq!(hits[0].text.as_ref().map(String::len), Some(big.len()));
        assert_eq!(e.get("small").expect("get").expect("small").text.as_deref(), Some("small"));
    };
    check(&e);
    e.checkpoint().expect("checkpoint");
    check(&e);
    e.update_text("big", Some(big.clone() + "!")).expect("update big text");
    e.update_text("big", Some(big.clone())).expect("update big text back");
    e.abandon();
    let e = Engine::open(dir.path()).expect("reopen after crash");
    check(&e);
    e.check_integrity().expect("integrity");
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    check(&e);
    e.check_integrity().expect("integrity");
    e.close().expect("close");
}

#[test]
fn unicode_ids_text_and_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path(), 2, Metric::L2);
    let ids_: Vec<&str> = vec![
        "日本語",
        "emoji 🎉🦀",
        "é",        // precomposed
        "e\u{301}", // decomposed: a different id
        "E\u{301}",
        "ß",
        "SS",
        "tab\there",
        "new\nline",
        "quote\"'`",
        "back\\slash",
        "percent%_like",
        "nul\u{0}inside",
        "\u{feff}bom",
        "\u{10ffff}",
        " ",
    ];
    for (i, id) in ids_.iter().enumerate() {
        let m = meta(json!({"名前": id, "ключ": i, "emoji🎉": "значение ✓", "quote\"key": "v\"", "dot.key": i % 2 == 0}));
        e.add(Record::new(*id, vec![i as f32, 0.0]).with_text(format!("текст {id} ✓")).with_metadata(m)).unwrap_or_else(|err| panic!("add {id:?}: {err}"));
    }
    let check = |e: &Engine| {
        assert_eq!(e.count(), ids_.len() as u64);
        for (i, id) in ids_.iter().enumerate() {
            let r = e.get(id).expect("get").unwrap_or_else(|| panic!("{id:?} is missing"));
            assert_eq!(r.id, *id);
            assert_eq!(r.vector, vec![i as f32, 0.0], "{id:?} got another record's vector");
            assert_eq!(r.text, Some(format!("текст {id} ✓")));
            assert_eq!(r.metadata.as_ref().and_then(|m| m.get("名前")), Some(&json!(id)));
        }
        assert_eq!(e.iter().map(|r| r.expect("iter").id).collect::<Vec<_>>(), ids_);
        for (i, id) in ids_.iter().enumerate() {
            let f = Filter::parse(&json!({"名前": id})).expect("filter");
            let hits = e.search(&[0.0, 0.0], 100, Some(&f)).expect("search");
            assert_eq!(ids(&hits), vec![*id], "filter on the unicode key for {id:?}");
            let f = Filter::parse(&json!({"$contains": format!("{id} ✓")})).expect("filter");
            let hits = e.search(&[0.0, 0.0], 100, Some(&f)).expect("search");
            assert!(ids(&hits).contains(id), "$contains for {id:?}");
            let _ = i;
        }
        let hits = e.search(&[0.0, 0.0], 100, Some(&filter(r#"{"quote\"key": "v\""}"#))).expect("search");
        assert_eq!(hits.len(), ids_.len());
        let hits = e.search(&[0.0, 0.0], 100, Some(&filter(r#"{"dot.key": true}"#))).expect("search");
        assert_eq!(hits.len(), ids_.len().div_ceil(2));
        assert!(e.get("e").expect("get").is_none());
        assert!(e.get("ss").expect("get").is_none());
    };
    check(&e);
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    check(&e);
    e.check_integrity().expect("integrity");
    // Deleting one of two look-alike ids leaves the other.
    assert!(e.delete("e\u{301}").expect("delete"));
    assert!(e.get("é").expect("get").is_some());
    assert!(e.delete("nul\u{0}inside").expect("delete"));
    assert!(e.get("nul").expect("get").is_none());
    assert!(e.get("nul\u{0}inside").expect("get").is_none());
    e.close().expect("close");
}

#[test]
fn metadata_values_of_every_json_type_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = create(dir.path(), 2, Metric::L2);
    let m = meta(json!({
        "string": "text",
        "empty_string": "",
        "int": 42,
        "negative": -7,
        "zero": 0,
        "i64_max": i64::MAX,
        "i64_min": i64::MIN,
        "float": 1.5,
        "neg_float": -2.25,
        "tiny": 5e-324,
        "huge": 1.7976931348623157e308,
        "float_int": 3.0,
        "true": true,
        "false": false,
        "null": null,
        "array": [1, "two", null, [3.5]],
        "object": {"nested": {"deep": [true]}},
    }));
    e.add(Record::new("all", vec![0.0, 0.0]).with_metadata(m.clone())).expect("add");
    e.add(Record::new("empty", vec![1.0, 0.0]).with_metadata(Metadata::new())).expect("add empty metadata");
    e.add(Record::new("none", vec![2.0, 0.0])).expect("add without metadata");
    e.add(Record::new("empty-text", vec![3.0, 0.0]).with_text("")).expect("add with empty text");
    let check = |e: &Engine| {
        let r = e.get("all").expect("get").expect("all");
        assert_eq!(r.metadata.as_ref(), Some(&m));
        let got = r.metadata.expect("metadata");
        assert_eq!(got.get("i64_min").and_then(Value::as_i64), Some(i64::MIN));
        assert_eq!(got.get("tiny").and_then(Value::as_f64), Some(5e-324));
        assert!(got.get("float_int").is_some_and(Value::is_f64));
        assert_eq!(e.get("empty").expect("get").expect("empty").metadata, Some(Metadata::new()), "empty metadata is not None");
        assert_eq!(e.get("none").expect("get").expect("none").metadata, None);
        assert_eq!(e.get("none").expect("get").expect("none").text, None);
        assert_eq!(e.get("empty-text").expect("get").expect("empty-text").text, Some(String::new()), "empty text is not None");
        let found = |f: &str| -> Vec<String> {
            let mut v: Vec<String> = e.search(&[0.0, 0.0], 10, Some(&filter(f))).expect("search").into_iter().map(|h| h.id).collect();
            v.sort();
            v
        };
        assert_eq!(found(r#"{"string": "text"}"#), vec!["all"]);
        assert_eq!(found(r#"{"empty_string": ""}"#), vec!["all"]);
        assert_eq!(found(r#"{"int": 42.0}"#), vec!["all"]);
        assert_eq!(found(r#"{"int": {"$gt": 41, "$lt": 42.5}}"#), vec!["all"]);
        assert_eq!(found(r#"{"negative": {"$lt": 0}}"#), vec!["all"]);
        assert_eq!(found(r#"{"i64_max": 9223372036854775807}"#), vec!["all"]);
        assert_eq!(found(r#"{"i64_min": {"$lte": -9223372036854775808}}"#), vec!["all"]);
        assert_eq!(found(r#"{"float": 1.5}"#), vec!["all"]);
        assert_eq!(found(r#"{"float_int": 3}"#), vec!["all"]);
        assert_eq!(found(r#"{"true": true}"#), vec!["all"]);
        assert_eq!(found(r#"{"false": false}"#), vec!["all"]);
        assert_eq!(found(r#"{"true": 1}"#), Vec::<String>::new(), "a boolean is not a number");
        assert_eq!(found(r#"{"null": {"$ne": 1}}"#), vec!["all", "empty", "empty-text", "none"]);
        assert_eq!(found(r#"{"array": {"$ne": 1}}"#), vec!["all", "empty", "empty-text", "none"]);
        assert_eq!(found(r#"{"array": 1}"#), Vec::<String>::new(), "a list never equals a scalar");
        assert_eq!(found(r#"{"object": {"$in": ["x", 1, true]}}"#), Vec::<String>::new());
        assert_eq!(found(r#"{"$not_contains": "x"}"#), vec!["all", "empty", "empty-text", "none"]);
        assert_eq!(found(r#"{"$contains": "x"}"#), Vec::<String>::new());
    };
    check(&e);
    e.checkpoint().expect("checkpoint");
    check(&e);
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    check(&e);
    // Updating to None and to empty.
    e.update_metadata("all", None).expect("remove metadata");
    e.update_metadata("none", Some(Metadata::new())).expect("empty metadata");
    e.update_text("empty-text", None).expect("remove text");
    assert_eq!(e.get("all").expect("get").expect("all").metadata, None);
    assert_eq!(e.get("none").expect("get").expect("none").metadata, Some(Metadata::new()));
    assert_eq!(e.get("empty-text").expect("get").expect("t").text, None);
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    assert_eq!(e.get("all").expect("get").expect("all").metadata, None);
    assert_eq!(e.get("none").expect("get").expect("none").metadata, Some(Metadata::new()));
    assert_eq!(e.get("empty-text").expect("get").expect("t").text, None);
    e.close().expect("close");
}

/// The mirror's SQL evaluation of filters must agree with `Filter::matches` on values of every
/// type, including numbers at the edges of i64 and f64.
#[test]
fn filter_results_agree_with_filter_matches() {
    let e = Engine::builder_with_storage(Arc::new(MemStorage::new())).dimension(1).metric(Metric::L2).open().expect("create");
    let values = vec![
        json!(0),
        json!(1),
        json!(-1),
        json!(1.0),
        json!(1.5),
        json!(-0.0),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(1.8446744073709552e19),
        json!(9007199254740993u64),
        json!(9.223372036854776e18),
        json!(1e300),
        json!(""),
        json!("a"),
        json!("B"),
        json!("é"),
        json!("1"),
        json!(true),
        json!(false),
        json!(null),
        json!([1]),
        json!({"a": 1}),
    ];
    let mut records: Vec<(String, Option<String>, Option<Metadata>)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        records.push((format!("v{i}"), Some(format!("text {v}")), Some(meta(json!({"k": v})))));
    }
    records.push(("no-meta".into(), None, None));
    // NUL inside text and string values (allowed: only keys may not hold it).
    records.push(("nul-text".into(), Some("abc\u{0}def".into()), Some(meta(json!({"k": "a\u{0}b"})))));
    records.push(("nul-only".into(), Some("\u{0}".into()), Some(meta(json!({"k": "\u{0}"})))));
    records.push(("empty-meta".into(), Some(String::new()), Some(Metadata::new())));
    records.push(("other-key".into(), Some("k".into()), Some(meta(json!({"other": 1})))));
    for (i, (id, text, m)) in records.iter().enumerate() {
        let mut r = Record::new(id.clone(), vec![i as f32]);
        r.text = text.clone();
        r.metadata = m.clone();
        e.add(r).expect("add");
    }
    let ops = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"];
    let operands: Vec<Value> = values.iter().filter(|v| !(v.is_null() || v.is_array() || v.is_object())).cloned().collect();
    let mut filters: Vec<Value> = Vec::new();
    for op in ops {
        for v in &operands {
            if matches!(op, "$gt" | "$gte" | "$lt" | "$lte") && v.is_boolean() {
                continue;
            }
            filters.push(json!({"k": {op: v}}));
        }
    }
    filters.push(json!({"k": {"$in": [1, "a", true]}}));
    filters.push(json!({"k": {"$nin": [1, "a", true]}}));
    filters.push(json!({"k": {"$in": [1.8446744073709552e19, -0.0]}}));
    filters.push(json!({"$contains": "1"}));
    filters.push(json!({"$contains": "def"}));
    filters.push(json!({"$contains": "\u{0}"}));
    filters.push(json!({"$not_contains": "def"}));
    filters.push(json!({"k": "a\u{0}b"}));
    filters.push(json!({"k": {"$gt": "a\u{0}"}}));
    filters.push(json!({"k": {"$lt": "a\u{0}c"}}));
    filters.push(json!({"k": {"$in": ["\u{0}", "a"]}}));
    filters.push(json!({"$not_contains": "\""}));
    filters.push(json!({"$or": [{"k": {"$gt": 0}}, {"other": 1}]}));
    filters.push(json!({"$and": [{"k": {"$gte": "a"}}, {"k": {"$lt": "é"}}]}));
    let mut failures = Vec::new();
    for fv in &filters {
        let f = Filter::parse(fv).unwrap_or_else(|err| panic!("{fv}: {err}"));
        let mut want: Vec<&str> = records.iter().filter(|(_, t, m)| f.matches(t.as_deref(), m.as_ref())).map(|(id, _, _)| id.as_str()).collect();
        want.sort_unstable();
        let hits = e.search(&[0.0], 1000, Some(&f)).expect("search");
        let mut got: Vec<&str> = ids(&hits);
        got.sort_unstable();
        if got != want {
            failures.push(format!("{fv}: mirror {got:?}, Filter::matches {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn search_with_a_huge_k_returns_everything() {
    let e = Engine::builder_with_storage(Arc::new(MemStorage::new())).dimension(2).metric(Metric::L2).open().expect("create");
    for i in 0..10 {
        e.add(Record::new(format!("k{i}"), vec![i as f32, 0.0]).with_metadata(meta(json!({"i": i})))).expect("add");
    }
    assert_eq!(e.search(&[0.0, 0.0], usize::MAX, None).expect("k = usize::MAX").len(), 10);
    assert_eq!(e.search(&[0.0, 0.0], usize::MAX, Some(&filter(r#"{"i": {"$lt": 4}}"#))).expect("filtered, k = usize::MAX").len(), 4);
    assert_eq!(e.search(&[0.0, 0.0], 1 << 40, None).expect("k = 2^40").len(), 10);
}

/// The largest `n` in 1..=65536 for which `make(n)` parses (binary search; parsing is monotone).
fn largest_that_parses(make: impl Fn(usize) -> Value) -> usize {
    let (mut lo, mut hi) = (1usize, 65_536usize);
    assert!(Filter::parse(&make(lo)).is_ok());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if Filter::parse(&make(mid)).is_ok() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Filters at the documented limits (nesting depth, number of terms) parse and evaluate.
#[test]
fn filters_at_the_limits_evaluate_on_the_mirror() {
    let e = Engine::builder_with_storage(Arc::new(MemStorage::new())).dimension(1).metric(Metric::L2).open().expect("create");
    for i in 0..50 {
        e.add(Record::new(format!("k{i}"), vec![i as f32]).with_metadata(meta(json!({"k": i, "s": format!("s{i}")}))).with_text(format!("t{i}"))).expect("add");
    }
    let records: Vec<Record> = e.iter().collect::<memento::Result<_>>().expect("iter");
    let check = |fv: &Value, what: &str| {
        let f = Filter::parse(fv).unwrap_or_else(|err| panic!("{what}: {err}"));
        let mut want: Vec<&str> = records.iter().filter(|r| f.matches(r.text.as_deref(), r.metadata.as_ref())).map(|r| r.id.as_str()).collect();
        want.sort_unstable();
        let hits = e.search(&[0.0], 100, Some(&f)).unwrap_or_else(|err| panic!("{what}: search: {err}"));
        let mut got = ids(&hits);
        got.sort_unstable();
        assert_eq!(got, want, "{what}");
        assert!(!want.is_empty(), "{what}: the test's filter matches nothing");
    };
    // The deepest nesting that parses, alternating $and / $or with two children each.
    let mut deepest = None;
    let mut f = json!({"k": {"$gte": 10}});
    for depth in 1..200 {
        f = if depth % 2 == 0 { json!({"$and": [f, {"$not_contains": format!("t{depth}")}]}) } else { json!({"$or": [f, {"s": format!("s{}", depth % 50)}]}) };
        if Filter::parse(&f).is_err() {
            break;
        }
        deepest = Some((depth, f.clone()));
    }
    let (depth, deep) = deepest.expect("some depth parses");
    // 2 levels of the condition and 2 per $and/$or: 15 of them make 32 (memento::limits).
    assert_eq!(depth, 15, "{depth} levels parse");
    check(&deep, &format!("nesting depth {depth}"));
    // The largest $in list that parses.
    let in_list = |n: usize| json!({"s": {"$in": (0..n).map(|i| format!("s{i}")).collect::<Vec<_>>()}});
    let n = largest_that_parses(in_list);
    let big_in = in_list(n);
    assert!(n >= 4000, "only {n} values parse");
    check(&big_in, &format!("$in with {n} values"));
    let nin = json!({"k": {"$nin": (0..n).map(|i| i + 3).collect::<Vec<_>>()}});
    check(&nin, "$nin");
    // As many separate conditions in one $or.
    let or_list = |n: usize| json!({"$or": (0..n).map(|i| json!({"k": {"$eq": i * 7}})).collect::<Vec<_>>()});
    let n = largest_that_parses(or_list);
    let big_or = or_list(n);
    assert!(n >= 4000, "only {n} conditions parse");
    check(&big_or, &format!("$or of {n} conditions"));
    let big_and = json!({"$and": (0..n).map(|i| json!({"k": {"$ne": i * 7 + 10000}})).collect::<Vec<_>>()});
    check(&big_and, "big $and");
}

/// The largest dimension that fits a page, and records whose text and metadata are just below,
/// at and above a page's size.
#[test]
fn page_size_boundaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Largest dimension for 8 KiB pages.
    let mut dim = 2048;
    let e = loop {
        match Engine::builder(dir.path().join(format!("dim{dim}"))).dimension(dim).metric(Metric::Dot).page_size(8192).open() {
            Ok(e) => break e,
            Err(Error::InvalidArgument { .. }) => dim -= 1,
            Err(err) => panic!("dimension {dim}: {err}"),
        }
    };
    assert!(dim > 1000, "only {dim} dimensions fit an 8 KiB page");
    let path = dir.path().join(format!("dim{dim}"));
    let v = |i: usize| -> Vec<f32> { (0..dim).map(|j| ((i * 31 + j) % 17) as f32 - 8.0).collect() };
    for i in 0..7 {
        e.add(Record::new(format!("v{i}"), v(i))).expect("add");
        if i == 3 {
            e.checkpoint().expect("checkpoint");
        }
    }
    e.close().expect("close");
    let e = Engine::open(&path).expect("reopen");
    e.check_integrity().expect("integrity");
    for i in 0..7 {
        assert_eq!(e.get(&format!("v{i}")).expect("get").expect("present").vector, v(i));
    }
    assert_eq!(e.search(&v(5), 1, None).expect("search")[0].id, "v5");
    e.close().expect("close");

    // Texts around the page size, each checkpointed on its own and all together.
    let path = dir.path().join("texts");
    let e = Engine::builder(&path).dimension(2).metric(Metric::L2).page_size(8192).open().expect("create");
    let mut want = Vec::new();
    for (n, base) in [8192usize, 16384, 4096].into_iter().enumerate() {
        for delta in [-120isize, -97, -96, -95, -64, -40, -33, -32, -31, -8, -1, 0, 1, 8] {
            let len = (base as isize + delta) as usize;
            let id = format!("t{base}{delta:+}");
            let text: String = (0..len).map(|i| char::from(b'a' + (i % 23) as u8)).collect();
            let r = Record::new(id.clone(), vec![len as f32, n as f32]).with_text(text);
            e.add(r.clone()).expect("add");
            if delta % 2 == 0 {
                e.checkpoint().expect("checkpoint");
            }
            want.push(r);
        }
    }
    let mut b = WriteBatch::new();
    for r in &want {
        b.update_metadata(r.id.clone(), Some(meta(json!({"pad": "x".repeat(8192 - 64 - 32 - r.id.len() - 11)}))));
    }
    e.write(b).expect("metadata of about a page each");
    let check = |e: &Engine| {
        e.check_integrity().expect("integrity");
        for r in &want {
            let got = e.get(&r.id).expect("get").unwrap_or_else(|| panic!("{} is missing", r.id));
            assert_eq!(got.text, r.text, "{}", r.id);
            assert_eq!(got.vector, r.vector, "{}", r.id);
            assert!(got.metadata.is_some(), "{}", r.id);
        }
        assert_eq!(e.iter().count(), want.len());
    };
    check(&e);
    e.checkpoint().expect("checkpoint");
    check(&e);
    e.close().expect("close");
    let e = Engine::open(&path).expect("reopen");
    check(&e);
    e.close().expect("close");
}

#[test]
fn group_commit_with_checkpoints_during_concurrent_commits() {
    for crash in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Arc::new(
            Engine::builder(dir.path())
                .dimension(4)
                .metric(Metric::L2)
                .durability(Durability::GroupCommit)
                .wal_limit(8192)
                .page_size(8192)
                .open()
                .expect("create"),
        );
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let e = Arc::clone(&e);
                std::thread::spawn(move || {
                    for i in 0..150 {
                        e.add(Record::new(format!("t{t}-{i}"), vec![t as f32, i as f32, 0.0, 1.0]).with_text("x".repeat(i))).expect("add");
                        if i % 7 == 6 {
                            e.delete(&format!("t{t}-{}", i - 1)).expect("delete");
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let e = Arc::into_inner(e).expect("the only reference");
        assert!(e.stats().checkpoint_lsn > 0, "no checkpoint happened");
        let want = e.count();
        if crash {
            e.abandon();
        } else {
            e.close().expect("close");
        }
        let e = Engine::open(dir.path()).expect("reopen");
        assert_eq!(e.count(), want);
        for t in 0..4 {
            for i in 0..150 {
                let deleted = i % 7 == 5;
                let r = e.get(&format!("t{t}-{i}")).expect("get");
                assert_eq!(r.is_none(), deleted, "t{t}-{i} (crash={crash})");
                if let Some(r) = r {
                    assert_eq!(r.text.map(|s| s.len()), Some(i));
                }
            }
        }
        e.check_integrity().expect("integrity");
        e.close().expect("close");
    }
}

/// Thousands of puts, updates and deletes with 8 KiB pages: several vector, record and
/// tombstone pages per checkpoint, over several checkpoints, then a crash in the middle of
/// the next round.
#[test]
fn many_pages_of_every_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || Engine::builder(dir.path()).dimension(8).metric(Metric::Cosine).page_size(8192).wal_limit(1 << 20).open().expect("open");
    let e = open();
    let mut live: std::collections::BTreeMap<String, (usize, Option<String>)> = std::collections::BTreeMap::new();
    let v = |i: usize| -> Vec<f32> { (0..8).map(|j| ((i * 7 + j * 3) % 11) as f32 + 1.0).collect() };
    for round in 0..4usize {
        let mut b = WriteBatch::new();
        for i in 0..1500 {
            let n = round * 1500 + i;
            let id = format!("p{n}");
            b.add(Record::new(id.clone(), v(n)).with_text(format!("round {round} item {i}")).with_metadata(meta(json!({"round": round, "i": i}))));
            live.insert(id, (n, Some(format!("round {round} item {i}"))));
        }
        e.write(b).expect("add round");
        // Delete most of the previous round and some of this one.
        let mut b = WriteBatch::new();
        let doomed: Vec<String> = live.iter().filter(|(_, (n, _))| (n % 10 != 0 && *n < round * 1500) || n % 13 == 0).map(|(id, _)| id.clone()).collect();
        for id in &doomed {
            b.delete(id.clone());
            live.remove(id);
        }
        e.write(b).expect("delete round");
        let mut b = WriteBatch::new();
        for (id, (n, text)) in live.iter_mut().filter(|(_, (n, _))| n % 3 == 0) {
            let t = format!("updated in round {round} ({n})");
            b.update_text(id.clone(), Some(t.clone()));
            *text = Some(t);
        }
        e.write(b).expect("update round");
        if round < 3 {
            e.checkpoint().expect("checkpoint");
        }
    }
    let check = |e: &Engine, what: &str| {
        e.check_integrity().unwrap_or_else(|err| panic!("{what}: {err}"));
        assert_eq!(e.count(), live.len() as u64, "{what}");
        let got: Vec<Record> = e.iter().collect::<memento::Result<_>>().expect("iter");
        let mut want: Vec<(&String, &(usize, Option<String>))> = live.iter().collect();
        want.sort_by_key(|(_, (n, _))| *n);
        assert_eq!(got.len(), want.len(), "{what}");
        for (g, (id, (n, text))) in got.iter().zip(want) {
            assert_eq!(&g.id, id, "{what}");
            assert_eq!(&g.text, text, "{what}: {id}");
            let mut norm = v(*n);
            let len = norm.iter().map(|x| x * x).sum::<f32>().sqrt();
            norm.iter_mut().for_each(|x| *x /= len);
            assert!(g.vector.iter().zip(&norm).all(|(a, b)| (a - b).abs() < 1e-6), "{what}: {id}");
        }
        let hits = e.search(&v(4500), 20, Some(&filter(r#"{"round": {"$gte": 2}}"#))).expect("search");
        assert_eq!(hits.len(), 20, "{what}");
    };
    check(&e, "before the crash");
    let st = e.stats();
    assert!(st.pages > 20, "{st:?}");
    e.abandon();
    let e = open();
    check(&e, "after the crash");
    e.close().expect("close");
    let e = open();
    check(&e, "after a clean reopen");
    e.close().expect("close");
}

/// The page size and WAL limit given when reopening an existing store do not change it.
#[test]
fn reopening_with_other_page_size_and_tiny_wal_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Engine::builder(dir.path()).dimension(3).metric(Metric::L2).page_size(8192).open().expect("create");
    for i in 0..20 {
        e.add(Record::new(format!("a{i}"), vec![i as f32, 0.0, 0.0])).expect("add");
    }
    e.close().expect("close");
    let e = Engine::builder(dir.path()).page_size(1 << 20).wal_limit(0).open().expect("reopen with another page size");
    for i in 20..60 {
        e.add(Record::new(format!("a{i}"), vec![i as f32, 0.0, 0.0])).expect("add with a zero WAL limit");
        assert_eq!(e.stats().pending_vectors, 0, "wal_limit 0 checkpoints after every commit");
    }
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    assert_eq!(e.count(), 60);
    e.check_integrity().expect("integrity");
    assert_eq!(e.search(&[59.0, 0.0, 0.0], 1, None).expect("search")[0].id, "a59");
    e.close().expect("close");
}

/// A `MemStorage` whose WAL fsyncs are slow (2 ms) and counted.
struct SlowWalSync {
    inner: MemStorage,
    syncs: Arc<std::sync::atomic::AtomicU64>,
}

struct SlowWalFile {
    inner: Arc<dyn memento::storage::StorageFile>,
    is_wal: bool,
    syncs: Arc<std::sync::atomic::AtomicU64>,
}

impl memento::storage::StorageFile for SlowWalFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.sync_data()
    }
    fn sync_data(&self) -> std::io::Result<()> {
        if self.is_wal {
            self.syncs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        self.inner.sync_data()
    }
    fn map(&self, offset: u64, len: u64) -> std::io::Result<memento::storage::Mapping> {
        self.inner.map(offset, len)
    }
}

impl memento::storage::Storage for SlowWalSync {
    fn open(&self, name: &str, create: bool) -> std::io::Result<Arc<dyn memento::storage::StorageFile>> {
        let inner = self.inner.open(name, create)?;
        Ok(Arc::new(SlowWalFile { inner, is_wal: name.starts_with(memento::files::WAL), syncs: Arc::clone(&self.syncs) }))
    }
    fn exists(&self, name: &str) -> std::io::Result<bool> {
        self.inner.exists(name)
    }
    fn remove(&self, name: &str) -> std::io::Result<()> {
        self.inner.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self) -> std::io::Result<()> {
        self.inner.sync_dir()
    }
    fn lock(&self) -> Result<Box<dyn memento::storage::StoreLock>, memento::storage::LockError> {
        self.inner.lock()
    }
    fn dir_path(&self) -> Option<&Path> {
        None
    }
}

/// `Durability::GroupCommit` promises "fewer fsyncs when many threads write at once": with
/// four threads committing and each WAL fsync taking 2 ms, one fsync should cover several
/// commits.
#[test]
fn group_commit_shares_fsyncs_between_threads() {
    let syncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let storage = Arc::new(SlowWalSync { inner: MemStorage::new(), syncs: Arc::clone(&syncs) });
    let e = Arc::new(Engine::builder_with_storage(storage).dimension(2).metric(Metric::L2).durability(Durability::GroupCommit).open().expect("create"));
    let before = syncs.load(std::sync::atomic::Ordering::SeqCst);
    let commits_per_thread = 100;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let e = Arc::clone(&e);
            std::thread::spawn(move || {
                for i in 0..commits_per_thread {
                    e.add(Record::new(format!("t{t}-{i}"), vec![t as f32, i as f32])).expect("add");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let wal_syncs = syncs.load(std::sync::atomic::Ordering::SeqCst) - before;
    let commits = 4 * commits_per_thread;
    assert_eq!(e.count(), commits);
    assert!(
        wal_syncs * 4 <= commits * 3,
        "GroupCommit issued {wal_syncs} WAL fsyncs for {commits} commits from 4 threads: each commit still gets its own fsync"
    );
}

/// How many WAL fsyncs each durability mode issues for single-threaded commits (FORMAT.md §5):
/// one per commit under `Sync` and `GroupCommit`, none under `Buffered` until `sync()`,
/// a checkpoint or close.
#[test]
fn wal_fsyncs_per_durability_mode() {
    for mode in [Durability::Sync, Durability::GroupCommit, Durability::Buffered] {
        let syncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mem = MemStorage::new();
        let storage = Arc::new(SlowWalSync { inner: mem.clone(), syncs: Arc::clone(&syncs) });
        let e = Engine::builder_with_storage(storage).dimension(2).metric(Metric::L2).durability(mode).open().expect("create");
        let count = || syncs.load(std::sync::atomic::Ordering::SeqCst);
        let before = count();
        for i in 0..20 {
            e.add(Record::new(format!("k{i}"), vec![i as f32, 0.0])).expect("add");
        }
        let n = count() - before;
        match mode {
            Durability::Buffered => {
                assert_eq!(n, 0, "Buffered fsynced the WAL during commits");
                e.sync().expect("sync");
                assert!(count() - before >= 1, "sync() did not fsync the WAL");
            }
            _ => assert_eq!(n, 20, "{mode:?}: one WAL fsync per commit"),
        }
        e.abandon();
        let e = Engine::builder_with_storage(Arc::new(mem)).open().expect("reopen");
        assert_eq!(e.count(), 20);
        e.close().expect("close");
    }
}

#[test]
fn metadata_keys_with_nul_are_refused() {
    let e = Engine::builder_with_storage(Arc::new(MemStorage::new())).dimension(2).metric(Metric::L2).open().expect("create");
    let bad = meta(json!({"ok": 1, "a\u{0}b": 2}));
    assert!(matches!(e.add(Record::new("x", vec![1.0, 0.0]).with_metadata(bad.clone())), Err(Error::InvalidArgument { .. })));
    e.add(Record::new("y", vec![1.0, 0.0])).expect("add");
    assert!(matches!(e.update_metadata("y", Some(bad)), Err(Error::InvalidArgument { .. })));
    assert_eq!(e.get("y").expect("get").expect("y").metadata, None);
    assert_eq!(e.count(), 1);
}

#[test]
fn dropping_an_engine_keeps_every_commit_and_releases_it() {
    // A small WAL is synced and left at drop (replayed at the next open); a large one, or any
    // with `close_checkpoint_min(0)`, is checkpointed.
    for min in [None, Some(0)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut b = Engine::builder(dir.path()).dimension(2).metric(Metric::L2).durability(Durability::Buffered);
        if let Some(m) = min {
            b = b.close_checkpoint_min(m);
        }
        let e = b.open().expect("create");
        for i in 0..10 {
            e.add(Record::new(format!("d{i}"), vec![i as f32, 1.0])).expect("add");
        }
        let last = e.stats().last_lsn;
        drop(e);
        let e = Engine::open(dir.path()).expect("reopen after drop");
        let st = e.stats();
        assert_eq!((st.last_lsn, st.count), (last, 10));
        let checkpointed = if min.is_some() { (last, 0) } else { (0, 10) };
        assert_eq!((st.checkpoint_lsn, st.pending_vectors), checkpointed, "{min:?}");
        assert_eq!(e.path(), dir.path());
        e.close().expect("close");
    }
    let mem = Engine::builder_with_storage(Arc::new(MemStorage::new())).dimension(2).open().expect("memory");
    assert_eq!(mem.path(), Path::new("<memory>"));
}

// ---------------------------------------------------------------------------------------------
// Search options: scans, threads, batches

/// A seeded store of `n` random vectors with a `cat` of `i % 100`, checkpointed part-way so
/// that both sealed pages and pending vectors are searched, with every 7th record deleted.
fn random_store(path: &Path, n: usize, dim: usize, metric: Metric) -> (Engine, Vec<Vec<f32>>) {
    let e = Engine::builder(path).dimension(dim).metric(metric).page_size(8192).durability(Durability::Buffered).open().expect("create");
    let mut x = 12345u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 2001) as f32 / 1000.0 - 1.0
    };
    let mut vs = Vec::new();
    let mut b = WriteBatch::new();
    for i in 0..n {
        let v: Vec<f32> = (0..dim).map(|_| next()).collect();
        b.add(Record::new(i.to_string(), v.clone()).with_metadata(meta(json!({"cat": format!("c{}", i % 100)}))));
        vs.push(v);
        if i == n * 2 / 3 {
            e.write(std::mem::take(&mut b)).expect("write");
            e.checkpoint().expect("checkpoint");
        }
    }
    e.write(b).expect("write");
    let mut d = WriteBatch::new();
    for i in (0..n).step_by(7) {
        d.delete(i.to_string());
    }
    e.write(d).expect("deletes");
    (e, vs)
}

#[test]
fn every_scan_mode_thread_count_and_batch_gives_the_same_answer() {
    use memento::{ScanMode, SearchOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let path = dir.path().join(metric.name());
        let (e, vs) = random_store(&path, 3000, 16, metric);
        let queries: Vec<f32> = vs.iter().skip(1).step_by(300).flatten().copied().collect();
        let nq = queries.len() / 16;
        let c7 = filter(r#"{"cat": "c7"}"#);
        let not_c7 = filter(r#"{"cat": {"$ne": "c7"}}"#);
        for f in [None, Some(&c7), Some(&not_c7)] {
            let mut base = SearchOptions::new(10).mode(ScanMode::Exact).threads(1);
            base.filter = f;
            let want: Vec<Vec<String>> = queries.chunks(16).map(|q| e.search_with(q, &base).expect("exact").into_iter().map(|h| h.id).collect()).collect();
            for w in &want {
                assert_eq!(w.len(), 10);
                assert!(w.iter().all(|id| id.parse::<usize>().expect("id") % 7 != 0), "a deleted record came back");
            }
            for mode in [ScanMode::Exact, ScanMode::Quantized, ScanMode::Auto] {
                for threads in [1, 2, 4] {
                    let o = SearchOptions { mode, threads: Some(threads), ..base };
                    let batch = e.search_batch(&queries, &o).expect("batch");
                    assert_eq!(batch.len(), nq);
                    for (i, q) in queries.chunks(16).enumerate() {
                        let one: Vec<String> = e.search_with(q, &o).expect("search").into_iter().map(|h| h.id).collect();
                        let b: Vec<String> = batch[i].iter().map(|h| h.id.clone()).collect();
                        assert_eq!(one, want[i], "{metric:?} {mode:?} {threads} threads, filter {f:?}");
                        assert_eq!(b, want[i], "batch: {metric:?} {mode:?} {threads} threads");
                    }
                }
            }
        }
        // A batch of the wrong length is a typed error.
        assert!(matches!(e.search_batch(&queries[..40], &SearchOptions::new(3)), Err(Error::InvalidArgument { .. })));
        assert!(matches!(e.search_batch(&queries[..15], &SearchOptions::new(3)), Err(Error::DimensionMismatch { expected: 16, got: 15 })));
        assert!(matches!(e.search_batch(&[], &SearchOptions::new(3)), Err(Error::DimensionMismatch { expected: 16, got: 0 })));
        e.close().expect("close");
    }
}

#[test]
fn get_where_returns_the_matching_records_in_insertion_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).dimension(2).open().expect("open");
    for i in 0..10u32 {
        let mut m = memento::Metadata::new();
        m.insert("even".into(), (i % 2 == 0).into());
        e.add(Record::new(format!("r{i}"), vec![1.0, i as f32]).with_metadata(m)).expect("add");
    }
    e.delete("r4").expect("delete");
    let f = Filter::from_json_str(r#"{"even": true}"#).expect("filter");
    let ids: Vec<String> = e.get_where(&f, None).expect("get").into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["r0", "r2", "r6", "r8"]);
    let two = e.get_where(&f, Some(2)).expect("get");
    assert_eq!(two.len(), 2);
    assert_eq!(two[1].vector, e.get("r2").expect("get").expect("r2").vector);
}

/// `peek` says what a store is without opening it (no lock taken: it works while the store is
/// open), and creates nothing where there is no store.
#[test]
fn peek_reads_a_stores_identity_without_opening_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).dimension(3).metric(memento::Metric::L2).page_size(32 * 1024).open().expect("open");
    e.add(memento::Record::new("a", vec![1.0, 2.0, 3.0])).expect("add");
    e.checkpoint().expect("checkpoint");
    let info = memento::peek(dir.path()).expect("peek while open");
    assert_eq!((info.dimension, info.metric, info.page_size, info.model.clone()), (3, memento::Metric::L2, 32 * 1024, None));
    assert_eq!((info.checkpoint_live_count, info.format_version), (1, memento_format::FORMAT_VERSION));
    e.close().expect("close");
    let missing = dir.path().join("nothing-here");
    let err = memento::peek(&missing).expect_err("no store");
    assert!(err.to_string().contains("there is no store at"), "{err}");
    assert!(!missing.exists(), "peek created something");
}
