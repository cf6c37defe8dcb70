//! The Rust column of the README's table of operations ("One API") names real calls: every
//! method it lists is called here, on a real text store with the default model (provisioned by
//! `make setup`; this test fails, not skips, without it), and every call made here is in the
//! table. The Python column is checked by `pybindings/tests/test_api_table.py`.

use std::collections::BTreeSet;

use memento::{Engine, Filter, Memory, Metadata, Record, ScanMode, SearchOptions, WriteBatch, DEFAULT_K};

/// The method names of the Rust column, by row.
fn rust_column() -> Vec<(String, BTreeSet<String>)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let start = readme.find("## One API").expect("the README has a section \"One API\"");
    let end = readme[start + 1..].find("\n## ").map_or(readme.len(), |i| start + 1 + i);
    let mut rows = Vec::new();
    for line in readme[start..end].lines() {
        if !line.starts_with("| ") || line.starts_with("| Operation") {
            continue;
        }
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 4, "a row of the table: {line}");
        let mut names = BTreeSet::new();
        for code in cells[1].split('`').skip(1).step_by(2) {
            let mut rest = code;
            while let Some(open) = rest.find('(') {
                let name = rest[..open].rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("");
                assert!(!name.is_empty(), "a call without a name in {code:?}");
                names.insert(name.to_string());
                rest = &rest[open + 1..];
            }
        }
        rows.push((cells[0].to_string(), names));
    }
    rows
}

fn meta(k: &str, v: &str) -> Metadata {
    let mut m = Metadata::new();
    m.insert(k.into(), v.into());
    m
}

#[test]
fn the_rust_column_is_what_the_engine_offers() {
    let mut called = BTreeSet::new();
    let mut call = |name: &str| {
        called.insert(name.to_string());
    };
    let dir = tempfile::tempdir().expect("api table call");

    // open
    let engine = Engine::builder(dir.path().join("s"))
        .group_access(false)
        .dimension(384)
        .metric(memento::Metric::Cosine)
        .default_model()
        .open()
        .expect("the default model must be provisioned (make setup)");
    ["builder", "group_access", "dimension", "metric", "default_model", "open"].into_iter().for_each(&mut call);
    let v = engine.embed("a vector from a text").expect("api table call").vector;
    call("embed");
    let vs = engine.embed_batch(&["one", "two"]).expect("api table call");
    call("embed_batch");
    assert_eq!(vs.len(), 2);

    // writes
    engine.add(Record::new("a", v.clone()).with_text("a vector from a text").with_metadata(meta("k", "x"))).expect("api table call");
    call("add");
    engine.upsert(Record::new("b", vs[0].vector.clone()).with_text("one")).expect("api table call");
    call("upsert");
    let mut batch = WriteBatch::new();
    batch.upsert(Record::new("c", vs[1].vector.clone()).with_text("two"));
    batch.merge_metadata("a", meta("m", "y"));
    engine.write(batch).expect("api table call");
    call("write");
    engine.update_metadata("b", Some(meta("k", "z"))).expect("api table call");
    call("update_metadata");
    engine.merge_metadata("b", meta("n", "1")).expect("api table call");
    call("merge_metadata");
    engine.update_text("c", Some("two, said again".into())).expect("api table call");
    call("update_text");
    let id = engine.remember("The meeting moved to Thursday at 10.", Some(meta("kind", "calendar"))).expect("api table call");
    call("remember");
    engine.remember_batch(vec![Memory::new("Buy oat milk and bread."), Memory::new("The cat sleeps on the warm laptop.")], None).expect("api table call");
    call("remember_batch");

    // reads
    assert_eq!(
        engine.get("a").expect("api table call").expect("api table call").metadata,
        Some({
            let mut m = meta("k", "x");
            m.insert("m".into(), "y".into());
            m
        })
    );
    call("get");
    let f = Filter::from_json_str(r#"{"k": "z"}"#).expect("api table call");
    assert_eq!(engine.get_where(&f, Some(10)).expect("api table call").len(), 1);
    call("get_where");
    assert!(engine.contains("c").expect("api table call"));
    call("contains");
    assert_eq!(engine.iter().count(), 6);
    call("iter");
    assert_eq!(engine.count(), 6);
    call("count");
    assert_eq!(engine.stats().count, 6);
    call("stats");

    // search
    let hits = engine.search(&v, DEFAULT_K, None).expect("api table call");
    call("search");
    assert_eq!((hits.len(), hits[0].id.as_str()), (6, "a"));
    assert!((hits[0].score - (1.0 - hits[0].distance)).abs() < 1e-6);
    let opts = SearchOptions::default().filter(&f).mode(ScanMode::Exact).threads(1);
    assert_eq!(engine.search_with(&v, &opts).expect("api table call").len(), 1);
    call("search_with");
    let both: Vec<f32> = v.iter().chain(vs[0].vector.iter()).copied().collect();
    assert_eq!(engine.search_batch(&both, &SearchOptions::new(1)).expect("api table call").len(), 2);
    call("search_batch");
    assert_eq!(engine.recall("when is the meeting?", 1, None).expect("api table call")[0].id, id);
    call("recall");
    assert_eq!(engine.recall_with("when is the meeting?", &SearchOptions::new(1).threads(2)).expect("api table call")[0].id, id);
    call("recall_with");
    assert_eq!(engine.recall_batch(&["when is the meeting?", "milk"], &SearchOptions::default()).expect("api table call").len(), 2);
    call("recall_batch");
    let by_mode = engine.recall_by(&["when is the meeting?"], &SearchOptions::new(1), memento::RecallMode::Vector).expect("api table call");
    assert_eq!(by_mode[0][0].id, id);
    call("recall_by");
    assert_eq!(engine.recall_hybrid("the meeting", &SearchOptions::new(1), memento::Fusion::default()).expect("api table call")[0].id, id);
    call("recall_hybrid");
    assert_eq!(engine.keyword_search("Thursday", &SearchOptions::new(1)).expect("api table call")[0].id, id);
    call("keyword_search");

    // a reader beside the writer
    let reader = Engine::builder(dir.path().join("s")).read_only().open().expect("api table call");
    call("read_only");
    assert_eq!(reader.count(), 6);

    // the rest
    engine.delete("c").expect("api table call");
    call("delete");
    assert_eq!(engine.delete_where(&f).expect("api table call"), 1);
    call("delete_where");
    engine.checkpoint().expect("api table call");
    call("checkpoint");
    assert_eq!(engine.compact().expect("api table call").live, engine.count());
    call("compact");
    engine.check_integrity().expect("api table call");
    call("check_integrity");
    engine.close().expect("api table call");
    call("close");

    let listed: BTreeSet<String> = rust_column().into_iter().flat_map(|(_, names)| names).collect();
    let not_called: Vec<_> = listed.difference(&called).collect();
    let not_listed: Vec<_> = called.difference(&listed).collect();
    assert!(not_called.is_empty(), "the README's Rust column lists calls this test does not make: {not_called:?}");
    assert!(not_listed.is_empty(), "calls missing from the README's Rust column: {not_listed:?}");
}

#[test]
fn the_table_has_a_row_per_operation() {
    let ops: Vec<String> = rust_column().into_iter().map(|(op, _)| op).collect();
    for op in ["open", "add", "upsert", "update", "delete", "get", "search", "remember", "recall", "embed", "count", "close"] {
        assert!(ops.iter().any(|o| o == op), "no row {op} in {ops:?}");
    }
}
