//! `memento::inspect` against the engine's own verdicts, on the golden v2 fixture damaged in
//! many ways (every byte of both superblocks and of the WAL flipped, the WAL cut at every third byte,
//! the vector file cut, a sample of page bytes flipped): the inspector never panics; when the
//! engine refuses to open a copy, `verify` has an error about the vector file or the WAL; when
//! `verify` finds no such error, the engine opens the copy and its integrity check passes.
//! Then the graph file (FORMAT.md §7), on a store built with one: clean, a page byte flipped, the
//! header damaged, the file cut, a stale file put back after a compaction. Its damage is a
//! finding of the graph alone, and the engine still answers right.

use std::path::{Path, PathBuf};

use memento::graph::{GraphParams, GRAPH_FILE};
use memento::inspect::{Finding, FindingKind, GraphStatus, Inspector, Severity, VerifyReport};
use memento::{Engine, Metric, Record, ScanMode, SearchOptions, WriteBatch};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../format-spec/fixtures/v2/cosine-d4")
}

/// The fixture with a mirror (opened once by the engine, then dropped without a checkpoint, so
/// the vector file and the WAL are as shipped).
fn base() -> (tempfile::TempDir, Vec<u8>, Vec<u8>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let vec = std::fs::read(fixture_dir().join("memento.vec")).expect("fixture vec");
    let wal = std::fs::read(fixture_dir().join("memento.wal")).expect("fixture wal");
    std::fs::write(tmp.path().join("memento.vec"), &vec).expect("write");
    std::fs::write(tmp.path().join("memento.wal"), &wal).expect("write");
    Engine::open(tmp.path()).expect("the fixture opens").abandon();
    (tmp, vec, wal)
}

/// A copy of `base` with the given vector file and WAL bytes.
fn damaged(base: &Path, vec: &[u8], wal: &[u8]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in ["memento.mirror.sqlite", "memento.mirror.sqlite-wal"] {
        if base.join(name).exists() {
            std::fs::copy(base.join(name), tmp.path().join(name)).expect("copy the mirror");
        }
    }
    std::fs::write(tmp.path().join("memento.vec"), vec).expect("write");
    std::fs::write(tmp.path().join("memento.wal"), wal).expect("write");
    tmp
}

fn log_errors(r: &VerifyReport) -> Vec<String> {
    r.findings.iter().filter(|f| f.severity == Severity::Error && !f.kind.in_derived_file()).map(|f| format!("{}: {}", f.kind, f.message)).collect()
}

/// Inspect a damaged copy with every command, then compare `verify` with the engine.
fn judge(dir: &Path, what: &str) {
    let insp = Inspector::open(dir).expect("open the inspector");
    insp.superblocks().expect("superblocks");
    insp.pages().expect("pages");
    insp.wal().expect("wal");
    let _ = insp.dump("a");
    let report = insp.verify().expect("verify");
    let errors = log_errors(&report);
    match Engine::open(dir) {
        Ok(e) => {
            if errors.is_empty() {
                if let Err(x) = e.check_integrity() {
                    panic!("{what}: verify found nothing wrong with the log, but check_integrity says {x}");
                }
            }
            e.abandon();
        }
        Err(x) => assert!(!errors.is_empty(), "{what}: the engine refuses to open ({x}) but verify finds no error in the log: {:?}", report.findings),
    }
}

#[test]
fn the_fixture_verifies_clean() {
    let (b, _, _) = base();
    let r = Inspector::open(b.path()).expect("open").verify().expect("verify");
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.live_records, 18);
}

#[test]
fn every_superblock_byte_flipped() {
    let (b, vec, wal) = base();
    for at in (0..512).chain(4096..4096 + 512) {
        let mut v = vec.clone();
        v[at] ^= 0x10;
        let d = damaged(b.path(), &v, &wal);
        judge(d.path(), &format!("superblock byte {at} flipped"));
        let r = Inspector::open(d.path()).expect("open").verify().expect("verify");
        assert!(r.findings.iter().any(|f| f.kind.area() == "superblock"), "superblock byte {at} flipped unnoticed: {:?}", r.findings);
    }
}

#[test]
fn every_wal_byte_flipped_and_every_cut() {
    let (b, vec, wal) = base();
    for at in 0..wal.len() {
        let mut w = wal.clone();
        w[at] ^= 0x01;
        let d = damaged(b.path(), &vec, &w);
        judge(d.path(), &format!("WAL byte {at} flipped"));
    }
    for cut in (0..wal.len()).step_by(3) {
        let d = damaged(b.path(), &vec, &wal[..cut]);
        judge(d.path(), &format!("WAL cut at {cut}"));
        if cut >= 64 {
            // A cut WAL is a torn tail at worst; the mirror is then ahead of the log.
            let r = Inspector::open(d.path()).expect("open").verify().expect("verify");
            assert!(log_errors(&r).is_empty(), "WAL cut at {cut}: {:?}", r.findings);
        }
    }
}

#[test]
fn vector_file_cut_and_page_bytes_flipped() {
    let (b, vec, wal) = base();
    for cut in (0..vec.len()).step_by(509) {
        let d = damaged(b.path(), &vec[..cut], &wal);
        judge(d.path(), &format!("vector file cut at {cut}"));
    }
    for at in (8192..vec.len()).step_by(97) {
        let mut v = vec.clone();
        v[at] ^= 0x04;
        let d = damaged(b.path(), &v, &wal);
        judge(d.path(), &format!("vector file byte {at} flipped"));
    }
}

#[test]
fn garbage_files_are_findings() {
    let (b, vec, wal) = base();
    let noise: Vec<u8> = (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for (v, w, what) in [(&noise[..], &wal[..], "garbage vector file"), (&vec[..], &noise[..], "garbage WAL"), (&[][..], &[][..], "empty files")] {
        let d = damaged(b.path(), v, w);
        judge(d.path(), what);
        let r = Inspector::open(d.path()).expect("open").verify().expect("verify");
        assert!(!r.is_ok(), "{what}");
    }
    let d = damaged(b.path(), &vec, &wal);
    std::fs::write(d.path().join("memento.mirror.sqlite"), &noise).expect("write");
    let r = Inspector::open(d.path()).expect("open").verify().expect("verify");
    assert!(r.findings.iter().any(|f| f.kind == FindingKind::MirrorDamaged), "{:?}", r.findings);
}

/// `Engine::check_integrity` runs the inspector's checks, so on a store the engine has open,
/// `verify` (from outside, through the files) and `check_integrity` (inside, through the
/// engine's storage and mirror connection) find the same damage: the integrity check fails
/// exactly when `verify` has an error that concerns what the engine serves, and names the kind
/// of the first such error.
fn same_verdict(dir: &Path, what: &str) -> bool {
    let Ok(e) = Engine::open(dir) else { return false };
    let inside = e.check_integrity();
    let outside = Inspector::open(dir).expect("open the inspector").verify().expect("verify");
    let first = outside.findings.iter().find(|f| f.severity == Severity::Error && !f.kind.only_redundancy_lost());
    match (&inside, first) {
        (Ok(()), None) => {}
        (Err(memento::Error::Corrupted { reason, .. }), Some(f)) => {
            assert!(reason.ends_with(&format!("({})", f.kind)), "{what}: check_integrity says {reason}, verify's first error is {f:?}")
        }
        (Err(memento::Error::Mirror { .. }), Some(f)) => {
            assert!(matches!(f.kind, FindingKind::MirrorDamaged | FindingKind::MirrorUnreadable), "{what}: {inside:?} against {f:?}")
        }
        _ => panic!("{what}: check_integrity gave {inside:?}, verify's findings are {:?}", outside.findings),
    }
    e.abandon();
    inside.is_err()
}

#[test]
fn check_integrity_and_verify_find_the_same_damage() {
    let (b, vec, wal) = base();
    let mut found = 0;
    for at in (8192..vec.len()).step_by(61) {
        let mut v = vec.clone();
        v[at] ^= 0x10;
        let d = damaged(b.path(), &v, &wal);
        found += usize::from(same_verdict(d.path(), &format!("vector file byte {at} flipped")));
    }
    // Mirror damage that opening does not repair: a row swapped for another (the count still
    // agrees), and a metadata index row removed.
    for (sql, what) in [
        ("UPDATE records SET text = 'not what the log says' WHERE slot = (SELECT MIN(slot) FROM records)", "a mirror row's text changed"),
        ("DELETE FROM field_values WHERE slot = (SELECT MIN(slot) FROM field_values)", "a metadata index row removed"),
    ] {
        let d = damaged(b.path(), &vec, &wal);
        let c = rusqlite::Connection::open(d.path().join("memento.mirror.sqlite")).expect("open the mirror");
        c.execute(sql, []).expect(what);
        drop(c);
        found += usize::from(same_verdict(d.path(), what));
    }
    assert!(found >= 10, "only {found} damaged copies failed the integrity check: the test damages too little");
}

#[test]
fn the_inspector_reads_through_any_storage() {
    use memento::storage::MemStorage;
    use std::sync::Arc;
    let mem = MemStorage::new();
    let e = Engine::builder_with_storage(Arc::new(mem.clone())).dimension(4).open().expect("create");
    e.add(memento::Record::new("a", vec![1.0, 2.0, 3.0, 4.0])).expect("add");
    e.check_integrity().expect("a sound store");
    let r = Inspector::over(Arc::new(mem.clone())).verify().expect("verify");
    assert!(r.is_ok() && r.live_records == 1, "{:?}", r.findings);
    assert!(r.findings.iter().any(|f| f.kind == FindingKind::MirrorNotCompared), "{:?}", r.findings);
    e.abandon();
}

const GRAPH_DIM: usize = 24;
const GRAPH_PAGE: u64 = 8192;
const GRAPH_RECORDS: u64 = 1500;

/// Clustered vectors: neighbour structure a graph can learn (as in `tests/graph.rs`).
fn graph_vector(i: u64) -> Vec<f32> {
    let h = |x: u64| ((x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
    let c = i % 37;
    (0..GRAPH_DIM as u64).map(|j| h(c * 1000 + j) + 0.3 * h(i * 7919 + j * 104_729 + 1)).collect()
}

fn open_graph_store(path: &Path) -> Engine {
    let params = GraphParams { m: 8, ef_construction: 64, ef_search: 48, min_vectors: 500 };
    Engine::builder(path)
        .dimension(GRAPH_DIM)
        .metric(Metric::Cosine)
        .page_size(GRAPH_PAGE as u32)
        .graph(Some(params))
        .auto_compact(None)
        .open()
        .expect("open the store with a graph")
}

/// A store of 1,500 vectors whose graph file is written (`build_index`); the engine is returned
/// open, for the caller to go on or close.
fn graph_store() -> (tempfile::TempDir, PathBuf, Engine) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    let e = open_graph_store(&path);
    let mut b = WriteBatch::new();
    for i in 0..GRAPH_RECORDS {
        b.add(Record::new(i.to_string(), graph_vector(i)));
    }
    e.write(b).expect("write");
    e.build_index().expect("build the graph");
    assert!(path.join(GRAPH_FILE).exists(), "build_index writes the graph file");
    (tmp, path, e)
}

fn graph_findings(r: &VerifyReport) -> Vec<&Finding> {
    r.findings.iter().filter(|f| f.kind.area() == "graph").collect()
}

fn graph_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path.join(GRAPH_FILE)).expect("read the graph file")
}

/// `verify` of a store whose graph file is damaged: graph findings only (errors, saying the file
/// is derived and rebuilt), none about the log; the status says damaged. Returns the graph
/// findings' messages.
fn graph_damage(path: &Path, what: &str) -> Vec<String> {
    let r = Inspector::open(path).expect("open the inspector").verify().expect("verify");
    assert!(log_errors(&r).is_empty(), "{what}: graph damage reported as damage of the log: {:?}", r.findings);
    assert!(r.findings.iter().all(|f| f.kind.area() == "graph"), "{what}: {:?}", r.findings);
    let g = graph_findings(&r);
    assert!(!g.is_empty() && g.iter().all(|f| f.kind == FindingKind::GraphDamaged && f.severity == Severity::Error), "{what}: {:?}", r.findings);
    for f in &g {
        assert_eq!(f.file, GRAPH_FILE);
        assert!(f.message.contains("no record is lost") && f.message.contains("rebuilds it"), "{what}: {}", f.message);
    }
    assert_eq!(r.graph.as_ref().map(|g| &g.status), Some(&GraphStatus::Damaged), "{what}");
    assert!(!r.is_ok(), "{what}");
    // The same findings from the graph command.
    let gr = Inspector::open(path).expect("open the inspector").graph().expect("graph");
    assert_eq!(gr.findings.len(), g.len(), "{what}: {:?}", gr.findings);
    g.iter().map(|f| f.message.clone()).collect()
}

/// The engine, opened on the store as it is, answers right: a stored vector's nearest record
/// is its own, through the graph (when usable) or the scans.
fn answers_right(path: &Path, ids: &[u64], what: &str) {
    let e = open_graph_store(path);
    for &i in ids {
        for mode in [ScanMode::Graph, ScanMode::Auto, ScanMode::Exact] {
            let hits = e.search_with(&graph_vector(i), &SearchOptions::new(1).mode(mode)).expect("search");
            assert_eq!(hits.first().map(|h| h.id.clone()), Some(i.to_string()), "{what}: record {i}, {mode:?}");
        }
    }
    e.close().expect("close");
}

#[test]
fn a_store_with_a_graph_verifies_clean() {
    let (_tmp, path, e) = graph_store();
    let (e_nodes, e_recall) = {
        let info = e.graph_info().expect("graph info");
        (info.nodes, info.estimate.map(|x| x.recall))
    };
    e.close().expect("close");
    let r = Inspector::open(&path).expect("open").verify().expect("verify");
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let g = r.graph.clone().expect("the graph file is checked");
    assert_eq!(g.status, GraphStatus::Usable);
    let h = g.header.clone().expect("its header decodes");
    assert!(h.node_bound >= GRAPH_RECORDS && h.node_count == GRAPH_RECORDS, "{h:?}");
    assert_eq!(h.node_count, e_nodes, "the inspector and the engine agree on the vectors in the graph");
    assert_eq!((h.m, h.m0, h.ef_construction), (8, 16, 64));
    if let Some(recall) = e_recall {
        assert_eq!(h.est_recall, recall.clamp(0.0, 1.0), "the recall the writer measured is in the header");
    }
    assert_eq!(g.pages_checked, h.page_count - 1, "every level page is checked");
    assert_eq!(g.records_checked, h.levels.iter().map(|l| u64::from(l.records)).sum::<u64>(), "every record is checked");
    assert_eq!(g.file_len, h.page_count * GRAPH_PAGE);
    assert!(h.levels.len() >= 2, "1,500 nodes with m = 8 have upper levels: {:?}", h.levels);
    let gr = Inspector::open(&path).expect("open").graph().expect("graph");
    assert_eq!(gr.graph.as_ref(), Some(&g));
    assert!(gr.findings.is_empty());
    let (qcap, sealed) = gr.vector_file.expect("the vector file's numbering");
    assert_eq!(qcap, h.qcap);
    assert!(h.node_bound <= sealed);
    answers_right(&path, &[0, 417, 999, 1499], "a clean store");

    // Without its graph file a store is complete: nothing to report.
    std::fs::remove_file(path.join(GRAPH_FILE)).expect("remove the graph file");
    let r = Inspector::open(&path).expect("open").verify().expect("verify");
    assert!(r.findings.is_empty() && r.graph.is_none(), "{:?}", r.findings);
}

#[test]
fn a_flipped_byte_in_a_graph_page_is_a_graph_finding() {
    let (_tmp, path, e) = graph_store();
    e.close().expect("close");
    let clean = graph_bytes(&path);
    let top = memento_format::graph::GraphHeader::decode(&clean).expect("header");
    let last_page = top.page_count - 1;
    // A byte in the first level-0 page, and one in the last page (the top level).
    for page in [1, last_page] {
        let mut b = clean.clone();
        b[(page * GRAPH_PAGE) as usize + 100] ^= 0x40;
        std::fs::write(path.join(GRAPH_FILE), &b).expect("write");
        let what = format!("graph page {page} flipped");
        let msgs = graph_damage(&path, &what);
        assert!(msgs.iter().any(|m| m.contains(&format!("graph page {page} "))), "{what}: {msgs:?}");
        answers_right(&path, &[3, 800, 1200], &what);
        // Opening the engine may have rebuilt the file: damage the clean one again.
        std::fs::write(path.join(GRAPH_FILE), &clean).expect("restore");
    }
}

#[test]
fn a_damaged_graph_header_is_a_graph_finding() {
    let (_tmp, path, e) = graph_store();
    e.close().expect("close");
    let clean = graph_bytes(&path);
    // node_bound, the magic, a reserved byte, the checksum itself.
    for at in [70usize, 0, 400, 509] {
        let mut b = clean.clone();
        b[at] ^= 0x01;
        std::fs::write(path.join(GRAPH_FILE), &b).expect("write");
        let what = format!("graph header byte {at} flipped");
        let msgs = graph_damage(&path, &what);
        assert!(msgs.iter().any(|m| m.contains("graph header")), "{what}: {msgs:?}");
        answers_right(&path, &[5, 700], &what);
        std::fs::write(path.join(GRAPH_FILE), &clean).expect("restore");
    }
}

#[test]
fn a_truncated_graph_file_is_a_graph_finding() {
    let (_tmp, path, e) = graph_store();
    e.close().expect("close");
    let clean = graph_bytes(&path);
    for cut in [clean.len() - 100, clean.len() - GRAPH_PAGE as usize, GRAPH_PAGE as usize, 300, 0] {
        std::fs::write(path.join(GRAPH_FILE), &clean[..cut]).expect("write");
        let what = format!("graph file cut at {cut}");
        let msgs = graph_damage(&path, &what);
        assert!(msgs.iter().any(|m| m.contains("truncated")), "{what}: {msgs:?}");
        answers_right(&path, &[9, 1400], &what);
        std::fs::write(path.join(GRAPH_FILE), &clean).expect("restore");
    }
}

#[test]
fn a_stale_graph_file_is_a_note_not_damage() {
    let (_tmp, path, e) = graph_store();
    let old = graph_bytes(&path);
    let mut b = WriteBatch::new();
    for i in (0..GRAPH_RECORDS).filter(|i| i % 2 == 0) {
        b.delete(i.to_string());
    }
    e.write(b).expect("delete half");
    e.compact().expect("compact");
    e.close().expect("close");
    // The graph of the generation before the compaction, put back.
    std::fs::write(path.join(GRAPH_FILE), &old).expect("put the old graph back");
    let r = Inspector::open(&path).expect("open").verify().expect("verify");
    assert!(r.is_ok(), "a stale graph is not damage: {:?}", r.findings);
    assert!(r.findings.iter().all(|f| f.kind == FindingKind::GraphStale && f.severity == Severity::Warning), "{:?}", r.findings);
    assert_eq!(graph_findings(&r).len(), 1, "{:?}", r.findings);
    assert!(matches!(r.graph.as_ref().map(|g| &g.status), Some(GraphStatus::Stale(_))), "{:?}", r.graph);
    assert_eq!(r.live_records, GRAPH_RECORDS / 2);
    answers_right(&path, &[1, 777, 1499], "a stale graph");
    // The engine's own check agrees: a stale graph is no error.
    let e = open_graph_store(&path);
    e.check_integrity().expect("a stale graph passes the integrity check");
    e.close().expect("close");
}
