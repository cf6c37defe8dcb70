//! The golden fixtures (v1: an old file that must still open and upgrade; v2: the current
//! format), and what damage to the current one does: the WAL truncated at every byte, every
//! bit of both superblocks and of the WAL flipped, a sample of page bits flipped. Opening
//! returns a committed prefix or a `Corrupted` error — never a panic, never wrong data. And the
//! golden store with a graph file (FORMAT.md §7), which must open with its graph in use and
//! verify clean.

#[path = "golden/workload.rs"]
mod fixture;

use std::sync::Arc;

use fixture::{expected_states, fixture_dir, run, same, snapshot, Model, DIM, LAST_CHECKPOINTED_STATE, PAGE_SIZE};
use memento::storage::MemStorage;
use memento::{files, Engine, Error, Filter, Metric, ScanMode, SearchOptions};

fn fixture_bytes() -> (Vec<u8>, Vec<u8>) {
    fixture_bytes_of(memento_format::FORMAT_VERSION)
}

fn fixture_bytes_of(version: u32) -> (Vec<u8>, Vec<u8>) {
    let d = fixture_dir(version);
    let vec = std::fs::read(d.join(files::VECTORS)).expect("the committed fixture's vector file");
    let wal = std::fs::read(d.join(files::WAL)).expect("the committed fixture's WAL");
    (vec, wal)
}

fn mem_store(vec: &[u8], wal: &[u8]) -> MemStorage {
    let m = MemStorage::new();
    m.write_file(files::VECTORS, vec);
    m.write_file(files::WAL, wal);
    m
}

fn open(m: &MemStorage) -> memento::Result<Engine> {
    Engine::builder_with_storage(Arc::new(m.clone())).create(false).open()
}

/// Opening gave either `Corrupted` or a store whose content is one of the allowed states and
/// passes the integrity check. Returns the index of the state, if opened.
fn check_outcome(r: memento::Result<Engine>, states: &[Model], min_state: usize, what: &str) -> Option<usize> {
    match r {
        Err(Error::Corrupted { .. }) => None,
        Err(e) => panic!("{what}: unexpected error {e}"),
        Ok(engine) => {
            if let Err(e) = engine.check_integrity() {
                // Page damage is found by the integrity check (pages are verified lazily);
                // reads that touch the page fail the same way.
                assert!(matches!(e, Error::Corrupted { .. }), "{what}: integrity check gave {e}");
                assert!(
                    engine.iter().any(|r| r.is_err())
                        || engine.search(&[1.0; 4], 100, None).is_err()
                        || engine.search_with(&[1.0; 4], &SearchOptions::new(100).mode(ScanMode::Quantized)).is_err()
                        // The quantized scan reads the int8 copies only when k is small against
                        // the store (else the float32 scan answers): k = 1 makes it read them.
                        || engine.search_with(&[1.0; 4], &SearchOptions::new(1).mode(ScanMode::Quantized)).is_err(),
                    "{what}: damage found by the check but not by reads"
                );
                engine.abandon();
                return None;
            }
            let got = snapshot(&engine);
            engine.abandon();
            let i = states.iter().position(|s| same(s, &got));
            let i = i.unwrap_or_else(|| panic!("{what}: the store opened with a state that was never committed: {got:?}"));
            assert!(i >= min_state, "{what}: opened at state {i}, losing the checkpointed state {min_state}");
            Some(i)
        }
    }
}

#[test]
fn regenerate_or_check_the_fixture_workload() {
    // With MEMENTO_REGEN_FIXTURES=1 this rewrites the fixture (only when the format changes,
    // together with a version bump). Always: the workload, run now, gives the expected states.
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::builder(dir.path()).dimension(DIM).metric(Metric::Cosine).page_size(PAGE_SIZE).open().expect("create");
    let states = run(&engine);
    let want = expected_states();
    assert_eq!(states.len(), want.len());
    for (i, ((got, _), w)) in states.iter().zip(&want).enumerate() {
        assert!(same(got, w), "state {i} differs from the model");
    }
    assert!(states[LAST_CHECKPOINTED_STATE].1, "the fixture's last checkpoint follows state {LAST_CHECKPOINTED_STATE}");
    engine.abandon();
    if std::env::var_os("MEMENTO_REGEN_FIXTURES").is_some() {
        let out = fixture_dir(memento_format::FORMAT_VERSION);
        std::fs::create_dir_all(&out).expect("mkdir");
        for f in [files::VECTORS, files::WAL] {
            std::fs::copy(dir.path().join(f), out.join(f)).expect("copy fixture");
        }
    }
}

fn superblock_of(vec: &[u8]) -> memento_format::superblock::Superblock {
    let a = memento_format::superblock::Superblock::decode(vec);
    let b = memento_format::superblock::Superblock::decode(&vec[4096..]);
    memento_format::superblock::pick_current(a, b).expect("a valid superblock").0
}

/// Opens the fixture of `version` from a real directory and checks its content; returns the
/// engine and the directory.
fn open_fixture(version: u32) -> (Engine, tempfile::TempDir) {
    let (vec, wal) = fixture_bytes_of(version);
    // Decoded by the format codec alone.
    let sb = superblock_of(&vec);
    assert_eq!((sb.format_version, sb.min_reader_version, sb.dimension, sb.metric, sb.page_size), (version, version, 4, Metric::Cosine, 8192));
    let wh = memento_format::wal::WalHeader::decode(&wal).expect("a valid WAL header");
    assert_eq!(wh.store_uuid, sb.store_uuid);
    // Opened by the engine, from a real directory (the mirror is rebuilt: none is committed).
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(files::VECTORS), &vec).expect("copy");
    std::fs::write(dir.path().join(files::WAL), &wal).expect("copy");
    let engine = Engine::open(dir.path()).unwrap_or_else(|e| panic!("the v{version} fixture opens: {e}"));
    engine.check_integrity().expect("integrity");
    let want = expected_states();
    assert!(same(&snapshot(&engine), want.last().expect("states")), "fixture content differs from the workload");
    for mode in [ScanMode::Exact, ScanMode::Quantized] {
        let hits = engine.search_with(&[0.0, 0.0, 1.0, 0.0], &SearchOptions::new(1).mode(mode)).expect("search");
        assert_eq!(hits[0].id, "g");
        let f = Filter::from_json_str(r#"{"$and": [{"tag": "x"}, {"$contains": "apples"}]}"#).expect("filter");
        let ids: Vec<String> =
            engine.search_with(&[1.0, 1.0, 1.0, 1.0], &SearchOptions::new(20).filter(&f).mode(mode)).expect("search").into_iter().map(|h| h.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, vec!["m", "s"]);
    }
    (engine, dir)
}

#[test]
fn golden_v2_fixture_opens_with_its_content() {
    let (engine, _dir) = open_fixture(2);
    assert_eq!(engine.stats().recovery.len(), 1, "only the mirror is rebuilt: {:?}", engine.stats().recovery);
    engine.close().expect("close");
}

#[test]
fn golden_v1_fixture_opens_and_is_upgraded_by_its_next_checkpoint() {
    let (engine, dir) = open_fixture(1);
    let rec = engine.stats().recovery;
    assert!(rec.iter().any(|r| r.contains("version-1 file")), "{rec:?}");
    let want = snapshot(&engine);
    engine.close().expect("close");
    // The checkpoint at close wrote the int8 copies and a version-2 superblock.
    let sb = superblock_of(&std::fs::read(dir.path().join(files::VECTORS)).expect("read"));
    assert_eq!((sb.format_version, sb.min_reader_version), (2, 2));
    assert_ne!(sb.flags & memento_format::superblock::FLAG_QUANTIZED, 0);
    let engine = Engine::open(dir.path()).expect("reopen");
    assert!(engine.stats().recovery.is_empty(), "{:?}", engine.stats().recovery);
    engine.check_integrity().expect("integrity");
    assert!(same(&snapshot(&engine), &want));
    let hits = engine.search_with(&[0.0, 0.0, 1.0, 0.0], &SearchOptions::new(1).mode(ScanMode::Quantized)).expect("search");
    assert_eq!(hits[0].id, "g");
    engine.close().expect("close");
}

#[test]
fn wal_truncated_at_every_byte() {
    let (vec, wal) = fixture_bytes();
    let states = expected_states();
    let mut last = LAST_CHECKPOINTED_STATE;
    for cut in 0..=wal.len() {
        let m = mem_store(&vec, &wal[..cut]);
        let r = check_outcome(open(&m), &states, LAST_CHECKPOINTED_STATE, &format!("WAL cut at {cut}"));
        if cut < memento_format::wal::HEADER_LEN {
            assert!(r.is_none(), "a WAL without a whole header must be refused (cut {cut})");
            continue;
        }
        let i = r.unwrap_or_else(|| panic!("a WAL cut at {cut} must open as a committed prefix"));
        assert!(i >= last, "a longer WAL opened at an older state");
        last = i;
        // The torn tail was truncated: opening again gives the same state.
        let again = check_outcome(open(&m), &states, LAST_CHECKPOINTED_STATE, "reopen");
        assert_eq!(again, Some(i));
    }
    assert_eq!(last, states.len() - 1, "the whole WAL opens at the final state");
    eprintln!("WAL truncation: {} cut points, each opened as a committed prefix (or refused when the header was cut)", wal.len() + 1);
}

#[test]
fn every_bit_flip_in_both_superblocks() {
    let (vec, wal) = fixture_bytes();
    let states = expected_states();
    let mut refused = 0;
    for copy in [0usize, 4096] {
        for bit in 0..memento_format::superblock::LEN * 8 {
            let mut v = vec.clone();
            v[copy + bit / 8] ^= 1 << (bit % 8);
            let m = mem_store(&v, &wal);
            if check_outcome(open(&m), &states, LAST_CHECKPOINTED_STATE, &format!("superblock at {copy}, bit {bit}")).is_none() {
                refused += 1;
            }
        }
    }
    // Flipping the current copy falls back to the previous checkpoint, whose WAL generation is
    // gone: that is refused. Flipping the older copy changes nothing.
    assert_eq!(refused, memento_format::superblock::LEN * 8, "exactly the flips in the current copy are refused");
    eprintln!("superblock bit flips: {} (both copies), {refused} refused as Corrupted, the rest opened intact", 2 * memento_format::superblock::LEN * 8);
}

#[test]
fn every_bit_flip_in_the_wal() {
    let (vec, wal) = fixture_bytes();
    let states = expected_states();
    let (mut opened, mut refused) = (0, 0);
    for bit in 0..wal.len() * 8 {
        let mut w = wal.clone();
        w[bit / 8] ^= 1 << (bit % 8);
        let m = mem_store(&vec, &w);
        match check_outcome(open(&m), &states, LAST_CHECKPOINTED_STATE, &format!("WAL bit {bit}")) {
            Some(_) => opened += 1,
            None => refused += 1,
        }
    }
    assert!(opened > 0 && refused > 0, "opened {opened}, refused {refused}");
    eprintln!("WAL bit flips: {}, {opened} opened as a committed prefix, {refused} refused as Corrupted", wal.len() * 8);
}

#[test]
fn page_bit_flips_are_found_never_returned() {
    let (vec, wal) = fixture_bytes();
    let states = expected_states();
    let ps = PAGE_SIZE as usize;
    // The live pages: the current directory and every page it lists (older directories are
    // garbage that nothing reads).
    use memento_format::{page, superblock};
    let (sb, _) = superblock::pick_current(superblock::Superblock::decode(&vec), superblock::Superblock::decode(&vec[4096..])).expect("superblock");
    let dir_bytes = &vec[sb.dir_page as usize * ps..(sb.dir_page + u64::from(sb.dir_span)) as usize * ps];
    let h = page::verify(dir_bytes, sb.file_salt, sb.dir_page, ps).expect("directory");
    let mut live: Vec<(u64, u32)> = page::directory(dir_bytes, &h, sb.page_count).expect("entries").iter().map(|e| (e.page_no, e.span)).collect();
    live.push((sb.dir_page, sb.dir_span));
    let mut tried = 0;
    for (page_no, span) in live {
        let start = page_no as usize * ps * 8;
        // A sample of bits of every live page, header and body.
        for bit in (start..start + span as usize * ps * 8).step_by(61) {
            let mut v = vec.clone();
            v[bit / 8] ^= 1 << (bit % 8);
            let m = mem_store(&v, &wal);
            let r = check_outcome(open(&m), &states, LAST_CHECKPOINTED_STATE, &format!("page bit {bit}"));
            assert!(r.is_none(), "a flipped bit at byte {} of page {page_no} went unnoticed", bit / 8);
            tried += 1;
        }
    }
    assert!(tried > 1000);
    eprintln!("page bit flips: {tried} sampled over every live page, all found");
}

#[test]
fn truncated_vector_file_is_refused() {
    let (vec, wal) = fixture_bytes();
    for cut in [0, 100, 4096, 8192, vec.len() - 1] {
        let m = mem_store(&vec[..cut], &wal);
        assert!(matches!(open(&m), Err(Error::Corrupted { .. })), "cut at {cut}");
    }
}

// The golden store with a graph index (FORMAT.md §7): `fixtures/v2/graph-d8/`, written by
// `regenerate_or_check_the_graph_fixture` with MEMENTO_REGEN_FIXTURES=1. A change of the graph
// file's layout fails `golden_graph_fixture_opens_with_its_graph_in_use`.

const GRAPH_FIXTURE_DIM: usize = 8;
/// Records whose vectors the graph file covers (sealed), then records only in the WAL (the
/// graph's tail).
const GRAPH_FIXTURE_SEALED: u64 = 300;
const GRAPH_FIXTURE_TAIL: u64 = 20;
const GRAPH_FIXTURE_FILES: [&str; 3] = [files::VECTORS, files::WAL, memento::graph::GRAPH_FILE];

fn graph_fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../format-spec/fixtures/v2/graph-d8")
}

/// Clustered vectors, so that the graph has neighbourhoods to learn.
fn graph_fixture_vector(i: u64) -> Vec<f32> {
    let h = |x: u64| ((x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
    (0..GRAPH_FIXTURE_DIM as u64).map(|j| h((i % 11) * 1000 + j) + 0.3 * h(i * 7919 + j * 104_729 + 1)).collect()
}

fn open_graph_fixture(dir: &std::path::Path) -> Engine {
    let params = memento::graph::GraphParams { m: 8, ef_construction: 64, ef_search: 48, min_vectors: 100 };
    Engine::builder(dir).graph(Some(params)).auto_compact(None).open().expect("the graph fixture opens")
}

#[test]
fn regenerate_or_check_the_graph_fixture() {
    // With MEMENTO_REGEN_FIXTURES=1 this rewrites the graph fixture (when the graph file's
    // layout changes). Always: the store, built now, has a graph file that verifies clean.
    let dir = tempfile::tempdir().expect("tempdir");
    let params = memento::graph::GraphParams { m: 8, ef_construction: 64, ef_search: 48, min_vectors: 100 };
    let engine = Engine::builder(dir.path())
        .dimension(GRAPH_FIXTURE_DIM)
        .metric(Metric::Cosine)
        .page_size(PAGE_SIZE)
        .graph(Some(params))
        .auto_compact(None)
        .open()
        .expect("create");
    let mut b = memento::WriteBatch::new();
    for i in 0..GRAPH_FIXTURE_SEALED {
        b.add(memento::Record::new(format!("v{i}"), graph_fixture_vector(i)));
    }
    engine.write(b).expect("write");
    engine.build_index().expect("build the graph");
    for i in GRAPH_FIXTURE_SEALED..GRAPH_FIXTURE_SEALED + GRAPH_FIXTURE_TAIL {
        engine.add(memento::Record::new(format!("v{i}"), graph_fixture_vector(i))).expect("add to the WAL");
    }
    engine.abandon();
    let r = memento::inspect::Inspector::open(dir.path()).expect("inspect").verify().expect("verify");
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.graph.map(|g| g.status), Some(memento::inspect::GraphStatus::Usable));
    if std::env::var_os("MEMENTO_REGEN_FIXTURES").is_some() {
        let out = graph_fixture_dir();
        std::fs::create_dir_all(&out).expect("mkdir");
        for f in GRAPH_FIXTURE_FILES {
            std::fs::copy(dir.path().join(f), out.join(f)).expect("copy fixture");
        }
    }
}

#[test]
fn golden_graph_fixture_opens_with_its_graph_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in GRAPH_FIXTURE_FILES {
        std::fs::copy(graph_fixture_dir().join(f), dir.path().join(f)).expect("the committed graph fixture");
    }
    // Decoded by the format codec alone: the graph header, bound to the vector file.
    let vec = std::fs::read(dir.path().join(files::VECTORS)).expect("read");
    let sb = superblock_of(&vec);
    let graph = std::fs::read(dir.path().join(memento::graph::GRAPH_FILE)).expect("read");
    let h = memento_format::graph::GraphHeader::decode(&graph).expect("the graph header decodes");
    assert_eq!((h.store_uuid, h.vec_salt, h.dimension, h.metric, h.page_size), (sb.store_uuid, sb.file_salt, sb.dimension, sb.metric, sb.page_size));
    assert_eq!((h.m, h.m0, h.node_count), (8, 16, GRAPH_FIXTURE_SEALED));
    assert_eq!(graph.len() as u64, h.page_count * u64::from(h.page_size));
    // The inspector checks every page and record of it; only the mirror is missing (none is
    // committed: the engine rebuilds it at open).
    let r = memento::inspect::Inspector::open(dir.path()).expect("inspect").verify().expect("verify");
    let kinds: Vec<_> = r.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![memento::inspect::FindingKind::MirrorMissing], "{:?}", r.findings);
    let g = r.graph.expect("the graph is checked");
    assert_eq!(g.status, memento::inspect::GraphStatus::Usable);
    assert_eq!(g.pages_checked, h.page_count - 1);
    // Opened by the engine: the graph file is mapped and used (the WAL's records are its tail,
    // scanned until the builder inserts them).
    let engine = open_graph_fixture(dir.path());
    assert_eq!(engine.stats().recovery.len(), 1, "only the mirror is rebuilt: {:?}", engine.stats().recovery);
    let info = engine.graph_info().expect("graph info");
    assert!(info.nodes >= h.node_count && info.file_nodes == h.node_count && h.node_count > 0, "{info:?}");
    assert!(info.problem.is_none(), "{info:?}");
    for i in [0, 150, GRAPH_FIXTURE_SEALED - 1, GRAPH_FIXTURE_SEALED + GRAPH_FIXTURE_TAIL - 1] {
        for mode in [ScanMode::Graph, ScanMode::Exact] {
            let hits = engine.search_with(&graph_fixture_vector(i), &SearchOptions::new(1).mode(mode)).expect("search");
            assert_eq!(hits[0].id, format!("v{i}"), "{mode:?}");
        }
    }
    engine.check_integrity().expect("integrity");
    engine.close().expect("close");
    let r = memento::inspect::Inspector::open(dir.path()).expect("inspect").verify().expect("verify");
    assert!(r.findings.is_empty(), "{:?}", r.findings);
}

/// The golden directory of collections (FORMAT.md §8): made by `memento collections create` and
/// `memento --collection ... add` (two raw-vector collections, one with a record after its
/// checkpoint, in its WAL), stripped of what is derived or runtime only (the mirrors, the lock
/// files). Every later version must open it: list the same collections, read their records,
/// answer keyword searches and `$matches` filters from mirrors rebuilt at open, and verify
/// clean.
#[test]
fn golden_collections_fixture_opens_with_its_content() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../format-spec/fixtures/collections-v1");
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    copy_tree(&src, &root);
    let c = memento::Collections::open(&root).expect("the collections fixture opens");
    let names: Vec<String> = c.list().expect("list").into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["notes-l2", "vecs.cos"]);
    let notes = c.get("notes-l2").expect("get");
    assert_eq!((notes.dimension(), notes.metric()), (3, Metric::L2));
    let a = notes.get("a").expect("get").expect("a");
    assert_eq!(a.text.as_deref(), Some("generator.close() closes the generator"));
    assert_eq!(a.metadata.and_then(|m| m.get("user_id").cloned()), Some(serde_json::json!("alice")));
    assert_eq!(notes.get("c").expect("get").expect("c, in the WAL").text.as_deref(), Some("after the checkpoint"));
    let hits = notes.keyword_search("closing generators", &SearchOptions::new(3)).expect("keyword search");
    assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["a"]);
    let cafe = Filter::from_json_str(r#"{"$matches": "cafe"}"#).expect("filter");
    assert_eq!(notes.get_where(&cafe, None).expect("get_where").len(), 1);
    notes.check_integrity().expect("integrity");
    notes.close().expect("close");
    let vecs = c.get("vecs.cos").expect("get");
    assert_eq!((vecs.dimension(), vecs.metric(), vecs.count()), (4, Metric::Cosine, 1));
    vecs.close().expect("close");
    // Opened once by a writer (which made their mirrors), both are counted by readers.
    let counts: Vec<Option<u64>> = c.list().expect("list").into_iter().map(|i| i.count).collect();
    assert_eq!(counts, [Some(3), Some(1)]);
    let report = memento::inspect::verify_collections(&root).expect("verify");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.collections.len(), 2);
    for (name, r) in &report.collections {
        let r = r.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(r.findings.iter().all(|f| f.severity != memento::inspect::Severity::Error), "{name}: {:?}", r.findings);
    }
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}
