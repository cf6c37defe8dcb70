//! The graph index through the engine (FORMAT.md §7): built, written, reopened mapped, extended
//! by new commits (the tail), deletes never returned, filters answered with k results, a
//! damaged file not used and rebuilt, a compaction renumbering the nodes, a reader using it.

use std::collections::HashSet;

use memento::graph::{GraphParams, GRAPH_FILE};
use memento::{Engine, Filter, Metadata, Metric, Record, ScanMode, SearchOptions, WriteBatch};

const DIM: usize = 24;

/// Clustered unit-ish vectors: neighbour structure a graph can learn (unlike pure noise).
fn vector(i: u64) -> Vec<f32> {
    let h = |x: u64| ((x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
    let c = i % 37;
    (0..DIM as u64).map(|j| h(c * 1000 + j) + 0.3 * h(i * 7919 + j * 104_729 + 1)).collect()
}

fn meta(i: u64) -> Metadata {
    let mut m = Metadata::new();
    m.insert("p".into(), (i % 100).into());
    m
}

fn params() -> GraphParams {
    GraphParams { m: 8, ef_construction: 64, ef_search: 48, min_vectors: 500 }
}

fn open(path: &std::path::Path) -> Engine {
    Engine::builder(path).dimension(DIM).metric(Metric::Cosine).page_size(8192).graph(Some(params())).auto_compact(None).open().expect("open")
}

fn fill(e: &Engine, from: u64, to: u64) {
    let mut b = WriteBatch::new();
    for i in from..to {
        b.add(Record::new(i.to_string(), vector(i)).with_metadata(meta(i)));
    }
    e.write(b).expect("write");
}

fn ids(e: &Engine, q: &[f32], k: usize, mode: ScanMode, filter: Option<&Filter>) -> Vec<String> {
    let mut o = SearchOptions::new(k);
    o.mode = mode;
    o.filter = filter;
    e.search_with(q, &o).expect("search").into_iter().map(|h| h.id).collect()
}

/// recall@10 of the graph against the exact scan over `n` queries (stored vectors, perturbed).
fn recall(e: &Engine, n: u64) -> f64 {
    let mut hit = 0;
    for i in 0..n {
        let q: Vec<f32> = vector(i * 13 + 5).iter().map(|x| x + 0.05).collect();
        let want: HashSet<String> = ids(e, &q, 10, ScanMode::Exact, None).into_iter().collect();
        hit += ids(e, &q, 10, ScanMode::Graph, None).iter().filter(|id| want.contains(*id)).count();
    }
    hit as f64 / (10 * n) as f64
}

#[test]
fn the_graph_is_built_written_reopened_and_extended() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    let e = open(&path);
    fill(&e, 0, 2000);
    e.build_index().expect("build");
    assert!(path.join(GRAPH_FILE).exists(), "build_index writes the file");
    let r = recall(&e, 40);
    assert!(r >= 0.9, "recall@10 {r}");
    e.close().expect("close");

    // Reopened: the file is mapped, nothing is rebuilt, the answers are as good.
    let e = open(&path);
    assert!(e.stats().recovery.is_empty(), "{:?}", e.stats().recovery);
    let r2 = recall(&e, 40);
    assert!(r2 >= 0.9, "recall@10 after reopen {r2}");

    // New commits are the graph's tail until the builder inserts them: found at once either way.
    fill(&e, 2000, 2300);
    for i in [2000u64, 2150, 2299] {
        assert_eq!(ids(&e, &vector(i), 1, ScanMode::Graph, None), vec![i.to_string()], "record {i}, just written");
    }
    e.build_index().expect("build again");
    for i in [2000u64, 2150, 2299] {
        assert_eq!(ids(&e, &vector(i), 1, ScanMode::Graph, None), vec![i.to_string()], "record {i}, in the graph");
    }
    // Auto plans the graph on a store of at least min_vectors.
    assert_eq!(ids(&e, &vector(7), 1, ScanMode::Auto, None), vec!["7".to_string()]);
    e.close().expect("close");
}

#[test]
fn deleted_and_replaced_records_are_never_returned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let e = open(&tmp.path().join("s"));
    fill(&e, 0, 1500);
    e.build_index().expect("build");
    let mut b = WriteBatch::new();
    for i in (0..1500u64).filter(|i| i % 3 == 0) {
        b.delete(i.to_string());
    }
    e.write(b).expect("delete");
    // Replaced with a far-away vector: the old one must not come back under the old id's place.
    let mut b = WriteBatch::new();
    for i in (0..1500u64).filter(|i| i % 3 == 1).take(100) {
        b.upsert(Record::new(i.to_string(), vector(i + 100_000)));
    }
    e.write(b).expect("upsert");
    for i in (0..1500u64).step_by(97) {
        let got = ids(&e, &vector(i), 10, ScanMode::Graph, None);
        assert_eq!(got.len(), 10);
        for id in &got {
            let n: u64 = id.parse().expect("id");
            assert!(!n.is_multiple_of(3) || n >= 1500, "deleted record {id} returned");
        }
    }
}

#[test]
fn filtered_searches_return_k_whenever_k_match() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let e = open(&tmp.path().join("s"));
    fill(&e, 0, 3000);
    e.build_index().expect("build");
    for (filter, label) in [(r#"{"p": 7}"#, "1%"), (r#"{"p": {"$lt": 10}}"#, "10%"), (r#"{"p": {"$lt": 50}}"#, "50%")] {
        let f = Filter::from_json_str(filter).expect("filter");
        for mode in [ScanMode::Auto, ScanMode::Graph] {
            for i in [3u64, 1234, 2999] {
                let got = ids(&e, &vector(i), 10, mode, Some(&f));
                assert_eq!(got.len(), 10, "{label} filter, {mode:?}: {got:?}");
                let exact: HashSet<String> = ids(&e, &vector(i), 10, ScanMode::Exact, Some(&f)).into_iter().collect();
                assert!(
                    got.iter().all(|id| exact.contains(id) || {
                        let n: u64 = id.parse().expect("id");
                        filter_holds(label, n)
                    }),
                    "{label}: a record outside the filter"
                );
            }
        }
    }
}

fn filter_holds(label: &str, n: u64) -> bool {
    let p = n % 100;
    match label {
        "1%" => p == 7,
        "10%" => p < 10,
        _ => p < 50,
    }
}

#[test]
fn a_damaged_graph_file_is_not_used_and_is_rebuilt() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    let e = open(&path);
    fill(&e, 0, 1200);
    e.build_index().expect("build");
    e.close().expect("close");
    // A flipped byte in the first level page.
    let gp = path.join(GRAPH_FILE);
    let mut bytes = std::fs::read(&gp).expect("read");
    bytes[8192 + 100] ^= 0x40;
    std::fs::write(&gp, &bytes).expect("write");
    let e = open(&path);
    // The walk meets the damage: the answer comes from the scan, right.
    for i in [0u64, 600, 1199] {
        assert_eq!(ids(&e, &vector(i), 1, ScanMode::Graph, None), vec![i.to_string()]);
    }
    e.build_index().expect("rebuild");
    e.close().expect("close");
    let e = open(&path);
    assert!(e.stats().recovery.is_empty());
    assert!(recall(&e, 20) >= 0.9);

    // A damaged header: a finding at open, noted, and the store still answers.
    let mut bytes = std::fs::read(&gp).expect("read");
    bytes[70] ^= 1;
    std::fs::write(&gp, &bytes).expect("write");
    drop(e);
    let e = open(&path);
    let rec = e.stats().recovery;
    assert!(rec.iter().any(|r| r.contains("graph")), "{rec:?}");
    assert_eq!(ids(&e, &vector(5), 1, ScanMode::Auto, None), vec!["5".to_string()]);
}

#[test]
fn a_compaction_renumbers_the_nodes_and_the_graph_follows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    let e = open(&path);
    fill(&e, 0, 2000);
    e.build_index().expect("build");
    let mut b = WriteBatch::new();
    for i in (0..2000u64).filter(|i| i % 2 == 0) {
        b.delete(i.to_string());
    }
    e.write(b).expect("delete");
    e.compact().expect("compact");
    for i in [1u64, 999, 1999] {
        assert_eq!(ids(&e, &vector(i), 1, ScanMode::Graph, None), vec![i.to_string()], "after the compaction");
    }
    e.build_index().expect("build after compaction");
    assert!(recall(&e, 30) >= 0.9);
    e.close().expect("close");
    let e = open(&path);
    assert!(e.stats().recovery.is_empty());
    assert_eq!(ids(&e, &vector(1001), 1, ScanMode::Graph, None), vec!["1001".to_string()]);
}

#[test]
fn a_reader_walks_the_writers_graph_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    let e = open(&path);
    fill(&e, 0, 1500);
    e.build_index().expect("build");
    let r = Engine::builder(&path).read_only().graph(Some(params())).open().expect("reader");
    assert_eq!(ids(&r, &vector(42), 1, ScanMode::Graph, None), vec!["42".to_string()]);
    fill(&e, 1500, 1600);
    // The reader's tail: written after the graph file.
    assert_eq!(ids(&r, &vector(1550), 1, ScanMode::Graph, None), vec!["1550".to_string()]);
}
