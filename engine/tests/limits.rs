//! The stated limits (issue 13, items 5, 7 and 8; `memento::limits`): each is enforced with an
//! error that names it, and nothing at the limit is lost or altered.

use memento::limits::{self, MAX_JSON_DEPTH};
use memento::{Engine, Error, Filter, Metadata, Metric, Record};
use serde_json::{json, Value};

fn store(dir: &tempfile::TempDir, dim: usize, metric: Metric) -> Engine {
    Engine::builder(dir.path()).dimension(dim).metric(metric).open().expect("open")
}

#[test]
fn a_vector_whose_distances_could_overflow_is_refused_at_write_and_at_query() {
    for metric in [Metric::Dot, Metric::L2] {
        let dir = tempfile::tempdir().expect("tmp");
        let e = store(&dir, 2, metric);
        let err = e.add(Record::new("a", vec![3e38, -3e38])).expect_err("refused");
        assert!(matches!(err, Error::InvalidVector { .. }), "{err:?}");
        assert!(err.to_string().contains("above the limit of 1e18"), "{err}");
        assert_eq!(e.count(), 0);
        // At the limit: stored, and every search answers with every record, finite distances.
        e.add(Record::new("a", vec![1e18, 0.0])).expect("a norm of 1e18");
        e.add(Record::new("b", vec![1.0, 1.0])).expect("add");
        e.add(Record::new("c", vec![-7e17, 7e17])).expect("add");
        for q in [[2.0, 2.0], [1e18, 0.0], [-7e17, -7e17]] {
            let hits = e.search(&q, 10, None).expect("search");
            assert_eq!(hits.len(), 3, "{metric:?} {q:?}: {hits:?}");
            assert!(hits.iter().all(|h| h.distance.is_finite()), "{hits:?}");
        }
        let err = e.search(&[3e38, -3e38], 10, None).expect_err("refused");
        assert!(matches!(err, Error::InvalidVector { .. }) && err.to_string().contains("1e18"), "{err:?}");
    }
    // Cosine normalises, so only finite and non-zero matter.
    let dir = tempfile::tempdir().expect("tmp");
    let e = store(&dir, 2, Metric::Cosine);
    e.add(Record::new("a", vec![3e38, -3e38])).expect("cosine");
    e.add(Record::new("b", vec![1.0, 1.0])).expect("cosine");
    assert_eq!(e.search(&[3e38, 3e38], 10, None).expect("search").len(), 2);
}

#[test]
fn a_dimension_that_needs_a_larger_page_says_which_and_gets_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let err = Engine::builder(dir.path()).dimension(16_353).open().expect_err("refused");
    assert_eq!(
        err.to_string(),
        "Invalid argument: dimension 16353 needs a page of at least 131072 bytes, and the page size is 65536 \
         (which holds up to 16352 dimensions): pass page_size=131072."
    );
    Engine::builder(dir.path()).dimension(16_352).open().expect("the default page holds 16,352").close().expect("close");
    for (dim, page) in [(16_353, 131_072), (limits::MAX_DIMENSION, 512 * 1024)] {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(limits::min_page_size(dim), Some(page));
        let e = Engine::builder(dir.path()).dimension(dim).metric(Metric::L2).page_size(page).open().expect("open");
        let v: Vec<f32> = (0..dim).map(|i| (i % 7) as f32).collect();
        e.add(Record::new("x", v.clone())).expect("add");
        e.close().expect("close");
        let e = Engine::open(dir.path()).expect("reopen");
        assert_eq!(e.search(&v, 1, None).expect("search")[0].id, "x");
    }
    let err = Engine::builder(dir.path().join("big")).dimension(65_537).open().expect_err("refused");
    assert!(err.to_string().contains("outside 1 to 65,536"), "{err}");
}

fn nested(levels: usize) -> Value {
    // The metadata object is level 1; each list adds one.
    let mut v = json!(1);
    for _ in 1..levels {
        v = json!([v]);
    }
    v
}

fn meta(key: &str, v: Value) -> Metadata {
    let mut m = Metadata::new();
    m.insert(key.into(), v);
    m
}

#[test]
fn metadata_nests_at_most_the_stated_depth() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = store(&dir, 2, Metric::L2);
    e.add(Record::new("ok", vec![1.0, 0.0]).with_metadata(meta("a", nested(MAX_JSON_DEPTH)))).expect("32 levels");
    let err = e.add(Record::new("deep", vec![1.0, 0.0]).with_metadata(meta("a", nested(MAX_JSON_DEPTH + 1)))).expect_err("33 levels");
    assert_eq!(err.to_string(), "Invalid argument: metadata nests at most 32 levels of objects and lists.");
    assert_eq!(e.count(), 1);
}

#[test]
fn a_metadata_integer_beyond_i64_is_refused_naming_its_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = store(&dir, 2, Metric::L2);
    let err = e.add(Record::new("u", vec![1.0, 0.0]).with_metadata(meta("big", json!(u64::MAX)))).expect_err("refused");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("18446744073709551615 under the key \"big\"") && err.to_string().contains("64-bit"), "{err}");
    // At the edges of i64: stored and matched exactly.
    for (id, n) in [("min", i64::MIN), ("max", i64::MAX)] {
        e.add(Record::new(id, vec![1.0, 0.0]).with_metadata(meta("n", json!(n)))).expect("add");
        let f = Filter::from_json_str(&format!(r#"{{"n": {n}}}"#)).expect("filter");
        let got = e.get_where(&f, None).expect("get");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].metadata.as_ref().and_then(|m| m.get("n")), Some(&json!(n)));
    }
    // An update's metadata is an argument: refused as such whether or not the record exists
    // (it used to say NotFound for a missing id, where the Python API said InvalidArgument).
    for id in ["min", "missing"] {
        let err = e.update_metadata(id, Some(meta("big", json!(u64::MAX)))).expect_err("refused");
        assert!(matches!(err, Error::InvalidArgument { .. }), "{id}: {err:?}");
    }
    let err = e.update_metadata("missing", Some(meta("n", json!(1)))).expect_err("missing");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(memento::check_metadata(&meta("big", json!(u64::MAX))).is_err());
    memento::check_metadata(&meta("n", json!(i64::MAX))).expect("at the edge");
    let err = Filter::from_json_str(r#"{"n": 1180591620717411303424}"#).expect_err("refused");
    assert!(matches!(err, Error::InvalidFilter { .. }) && err.to_string().contains("64-bit"), "{err:?}");
}

#[test]
fn a_filter_too_deep_names_the_limit_not_json() {
    let text = |levels: usize| format!("{}{{\"a\": 1}}{}", "{\"$and\": [".repeat(levels), "]}".repeat(levels));
    Filter::from_json_str(&text(15)).expect("31 levels");
    for levels in [16, 63, 64, 1000, 100_000] {
        let err = Filter::from_json_str(&text(levels)).expect_err("too deep");
        assert_eq!(err.to_string(), "The filter is not valid: a filter nests at most 32 levels of objects and lists.", "{levels}");
    }
}

/// A new store's options are checked before anything is created: a refused open leaves no
/// directory and no LOCK behind (it left both, for the CLI and library users alike).
#[test]
fn a_refused_new_store_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().expect("tmp");
    type Open = fn(&std::path::Path) -> memento::Result<Engine>;
    let cases: [(&str, Open); 4] = [
        ("too large for the page", |p| Engine::builder(p).dimension(16_353).open()),
        ("dimension 0", |p| Engine::builder(p).dimension(0).open()),
        ("no dimension, no model", |p| Engine::builder(p).open()),
        ("a model that does not load", |p| Engine::builder(p).model_dir(p.with_extension("no-model"), Default::default()).open()),
    ];
    for (what, open) in cases {
        let dir = tmp.path().join(what.replace(' ', "-"));
        let err = open(&dir).expect_err(what);
        assert!(!dir.exists(), "{what}: {} was left behind ({err})", dir.display());
    }
    // Inside an existing empty directory, nothing is added to it either.
    let dir = tmp.path().join("empty");
    std::fs::create_dir(&dir).expect("mkdir");
    Engine::builder(&dir).dimension(16_353).open().expect_err("refused");
    assert_eq!(std::fs::read_dir(&dir).expect("read_dir").count(), 0, "a file was left in the empty directory");
}

/// A text or metadata beyond its limit is refused before the WAL is touched (a 10^9-byte text
/// was committed to the WAL, then refused by SQLite's mirror, and every later open failed
/// replaying it), on a put, an update and the CLI's whole-input check alike.
#[test]
fn a_text_or_metadata_beyond_its_limit_is_refused_before_the_wal() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = store(&dir, 2, Metric::L2);
    e.add(Record::new("small", vec![1.0, 0.0])).expect("add");
    let lsn = e.stats().last_lsn;
    let long = "x".repeat(limits::MAX_TEXT_BYTES + 1);
    let err = e.add(Record::new("a", vec![0.0, 1.0]).with_text(long.clone())).expect_err("refused");
    assert!(err.to_string().contains("a text is at most 805306368 bytes (768 MiB)"), "{err}");
    assert!(e.check_record(&Record::new("a", vec![0.0, 1.0]).with_text(long.clone())).is_err());
    let err = e.update_text("small", Some(long)).expect_err("refused");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    let big_meta = meta("k", json!("y".repeat(limits::MAX_METADATA_BYTES)));
    let err = e.update_metadata("small", Some(big_meta.clone())).expect_err("refused");
    assert!(err.to_string().contains("metadata is at most 67108864 bytes (64 MiB) as JSON"), "{err}");
    let mut r = Record::new("b", vec![0.0, 1.0]);
    r.metadata = Some(big_meta);
    e.add(r).expect_err("refused");
    assert_eq!(e.stats().last_lsn, lsn, "a refused write reached the WAL");
    e.close().expect("close");
    assert_eq!(Engine::open(dir.path()).expect("reopen").count(), 1);
}
