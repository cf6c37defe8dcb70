//! A damaged mirror is rebuilt, not used (issue 13, item 2): SQLite does not checksum its
//! pages, so a flipped bit in an index page could read as a shorter, valid-looking answer.
//! The mirror's pages now carry trailers (FORMAT.md §6.1); a read that meets a bad page makes
//! the engine rebuild the mirror and answer from the rebuilt one.
//!
//! `cargo test -p memento-core --test mirror_damage -- --nocapture` prints the byte-flip figure.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::time::Instant;

use memento::{Engine, Filter, Metadata, Record, MIRROR_FILE};
use serde_json::{json, Value};

const DIM: usize = 3;

fn meta(v: Value) -> Metadata {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn vector(i: usize) -> Vec<f32> {
    vec![1.0 + (i % 7) as f32, (i % 5) as f32 - 2.0, (i * 3 % 11) as f32 * 0.5 + 0.1]
}

fn filter(v: Value) -> Filter {
    Filter::parse(&v).unwrap()
}

/// A closed store of `n` records with metadata {"i": i, "g": i % 3} and, for some, a text.
fn make_store(dir: &Path, n: usize) {
    let e = Engine::builder(dir).dimension(DIM).open().unwrap();
    for i in 0..n {
        let mut r = Record::new(format!("r{i}"), vector(i)).with_metadata(meta(json!({"i": i, "g": i % 3, "s": format!("s{}", i % 5)})));
        if i % 2 == 0 {
            r = r.with_text(format!("text of record {i}"));
        }
        e.add(r).unwrap();
    }
    e.close().unwrap();
    assert!(!dir.join(format!("{MIRROR_FILE}-wal")).exists() || fs::metadata(dir.join(format!("{MIRROR_FILE}-wal"))).unwrap().len() == 0);
}

fn ids(recs: &[Record]) -> Vec<String> {
    recs.iter().map(|r| r.id.clone()).collect()
}

fn mirror_rebuilt(e: &Engine) -> bool {
    e.stats().recovery.iter().any(|m| m.contains("mirror"))
}

/// The scenario, at many places of the file's second half: `get_where`, a filtered
/// search and `delete_where` give the full answers, the delete removes exactly the 100
/// matching records, and the store passes its integrity check after.
#[test]
fn a_flipped_byte_in_the_second_half_is_never_a_short_answer() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    make_store(&src, 300);
    let mirror = fs::read(src.join(MIRROR_FILE)).unwrap();
    let lt100 = filter(json!({"i": {"$lt": 100}}));
    let expected: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
    let (mut places, mut untouched) = (0, 0);
    for at in (mirror.len() / 2..mirror.len()).step_by(509) {
        let dir = base.path().join(format!("at{at}"));
        fs::create_dir(&dir).unwrap();
        for f in fs::read_dir(&src).unwrap() {
            let f = f.unwrap();
            fs::copy(f.path(), dir.join(f.file_name())).unwrap();
        }
        let mut bytes = mirror.clone();
        bytes[at] ^= 0x10;
        fs::write(dir.join(MIRROR_FILE), &bytes).unwrap();
        let e = Engine::open(&dir).unwrap();
        let got = e.get_where(&lt100, None).unwrap();
        assert_eq!(ids(&got), expected, "get_where after a flip at {at}");
        let hits = e.search(&vector(1), 300, Some(&lt100)).unwrap();
        let mut hit_ids: Vec<String> = hits.into_iter().map(|h| h.id).collect();
        hit_ids.sort_by_key(|id| id[1..].parse::<usize>().unwrap());
        assert_eq!(hit_ids, expected, "search after a flip at {at}");
        assert_eq!(e.delete_where(&lt100).unwrap(), 100, "delete_where after a flip at {at}");
        assert_eq!(e.count(), 200);
        assert!(e.get_where(&lt100, None).unwrap().is_empty());
        assert_eq!(e.get_where(&filter(json!({"i": {"$gte": 100}})), None).unwrap().len(), 200);
        // A flip in a page none of these reads or writes touched (a page of the freelist,
        // which the full-text index's segment merges leave): the answers were whole, and the
        // engine's check reports the damage, which the inspector's repair then removes.
        if let Err(err) = e.check_integrity() {
            assert!(matches!(err, memento::Error::Mirror { kind: memento::MirrorErrorKind::Damaged, .. }), "after a flip at {at}: {err:?}");
            e.close().unwrap();
            memento::inspect::rebuild_mirror(&dir).unwrap();
            untouched += 1;
        } else {
            e.close().unwrap();
        }
        // And again after a reopen: the WAL's delete and the rebuilt mirror agree.
        let e = Engine::open(&dir).unwrap();
        assert_eq!(e.count(), 200);
        assert_eq!(e.get_where(&filter(json!({})), None).unwrap().len(), 200);
        e.check_integrity().unwrap();
        e.close().unwrap();
        fs::remove_dir_all(&dir).unwrap();
        places += 1;
    }
    println!("{places} places, {untouched} of them in a page no read or write touched");
    assert!(places >= 10 && untouched < places / 2, "{places} places, {untouched} untouched");
}

/// A record as a query returns it, without its vector: id, text, metadata.
type Row = (String, Option<String>, Option<Metadata>);

/// One answer of every kind of query, for comparing.
#[derive(Debug, PartialEq)]
struct Answers {
    by_filter: Vec<Vec<Row>>,
    by_id: Vec<Option<(String, Option<String>)>>,
    contains: Vec<bool>,
    count: u64,
    search: Vec<Vec<String>>,
    all: Vec<String>,
}

fn filters() -> Vec<Filter> {
    [
        json!({"i": {"$lt": 20}}),
        json!({"g": 1}),
        json!({"s": {"$in": ["s0", "s3"]}, "i": {"$gte": 5}}),
        json!({"$contains": "record 1"}),
        json!({"$or": [{"g": 2}, {"i": 7}]}),
    ]
    .into_iter()
    .map(filter)
    .collect()
}

fn answers(e: &Engine, filters: &[Filter]) -> memento::Result<Answers> {
    let mut by_filter = Vec::new();
    let mut search = Vec::new();
    for f in filters {
        by_filter.push(e.get_where(f, None)?.into_iter().map(|r| (r.id, r.text, r.metadata)).collect());
        search.push(e.search(&vector(3), 50, Some(f))?.into_iter().map(|h| h.id).collect());
    }
    let mut by_id = Vec::new();
    let mut contains = Vec::new();
    for id in ["r0", "r7", "r39", "r40", "nope"] {
        by_id.push(e.get(id)?.map(|r| (r.id, r.text)));
        contains.push(e.contains(id)?);
    }
    let all = e.iter().map(|r| r.map(|r| r.id)).collect::<memento::Result<Vec<String>>>()?;
    Ok(Answers { by_filter, by_id, contains, count: e.count(), search, all })
}

/// The sweep's step between flipped offsets.
const STRIDE: usize = 7;

/// Every 7th byte of a small mirror, flipped in turn: every query answers exactly as on the
/// undamaged mirror (by itself, or after the engine rebuilt the mirror) or fails with an
/// error; never a different answer.
#[test]
fn byte_flip_sweep_never_gives_a_wrong_answer() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("store");
    make_store(&dir, 40);
    let fs_ = filters();
    let mirror = fs::read(dir.join(MIRROR_FILE)).unwrap();
    let truth = {
        let e = Engine::open(&dir).unwrap();
        let a = answers(&e, &fs_).unwrap();
        assert!(!mirror_rebuilt(&e));
        e.close().unwrap();
        a
    };
    assert_eq!(truth.count, 40);
    assert_eq!(fs::read(dir.join(MIRROR_FILE)).unwrap(), mirror, "a clean open and close left the mirror as it was");
    let started = Instant::now();
    let (mut correct, mut rebuilt, mut errors, mut wrong) = (0u64, 0u64, 0u64, Vec::new());
    // Every 7th offset (7 is coprime with the page size, so every position within a page and
    // within its trailer is met on some page): a full sweep takes minutes in a debug build.
    for at in (0..mirror.len()).step_by(STRIDE) {
        let mut bytes = mirror.clone();
        bytes[at] ^= 0x10;
        for suffix in ["-wal", "-shm"] {
            let _ = fs::remove_file(dir.join(format!("{MIRROR_FILE}{suffix}")));
        }
        fs::write(dir.join(MIRROR_FILE), &bytes).unwrap();
        let e = match Engine::open(&dir) {
            Ok(e) => e,
            Err(_) => {
                errors += 1;
                continue;
            }
        };
        match answers(&e, &fs_) {
            Ok(a) if a == truth => {
                if mirror_rebuilt(&e) {
                    rebuilt += 1;
                } else {
                    correct += 1;
                }
            }
            Ok(_) => wrong.push(at),
            Err(_) => errors += 1,
        }
        e.abandon();
    }
    println!(
        "byte-flip sweep over a {}-byte mirror (40 records), every {STRIDE}th offset XOR 0x10: {correct} correct, {rebuilt} correct after a rebuild, {errors} typed errors, {} wrong ({:.1} s)",
        mirror.len(),
        wrong.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(wrong.is_empty(), "wrong answers after a flip at offsets {wrong:?}");
    assert!(rebuilt > 0);
}

/// `memento-inspect verify` calls a flipped mirror page damage and says what the engine does
/// with it; the engine then does that: the first read rebuilds the mirror, after which verify
/// finds nothing wrong with it.
#[test]
fn verify_reports_what_the_engine_then_does() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("store");
    make_store(&dir, 300);
    // A byte of the records table's root page: a page every read of records uses (a page of
    // the file's second half may be a free one, which no read uses and verify rightly ignores).
    let root: i64 = {
        let vfs = memento::mirror_vfs().unwrap();
        let c = rusqlite::Connection::open_with_flags_and_vfs(dir.join(MIRROR_FILE), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY, vfs).unwrap();
        c.query_row("SELECT rootpage FROM sqlite_schema WHERE name = 'records'", [], |r| r.get(0)).unwrap()
    };
    let mut bytes = fs::read(dir.join(MIRROR_FILE)).unwrap();
    let at = (root as usize - 1) * 4096 + 200;
    bytes[at] ^= 0x10;
    fs::write(dir.join(MIRROR_FILE), &bytes).unwrap();
    let r = memento::inspect::Inspector::open(&dir).unwrap().verify().unwrap();
    let f = r.findings.iter().find(|f| f.kind == memento::inspect::FindingKind::MirrorDamaged).unwrap_or_else(|| panic!("{:?}", r.findings));
    assert!(f.message.contains("checksum") && f.message.contains("first read"), "{}", f.message);
    let e = Engine::open(&dir).unwrap();
    assert_eq!(e.get_where(&filter(json!({"i": {"$lt": 100}})), None).unwrap().len(), 100);
    assert!(mirror_rebuilt(&e), "{:?}", e.stats().recovery);
    e.close().unwrap();
    let r = memento::inspect::Inspector::open(&dir).unwrap().verify().unwrap();
    assert!(!r.findings.iter().any(|f| f.kind.area() == "mirror"), "{:?}", r.findings);
}

/// Writes on a mirror with a flipped byte: the write path's look-ups and the application of the
/// committed transaction to the mirror meet the damage too. The mirror is rebuilt (with the
/// commit), the engine is not poisoned, and every write is there, also after a reopen.
#[test]
fn writes_on_a_damaged_mirror_rebuild_it_and_are_kept() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    make_store(&src, 300);
    let mirror = fs::read(src.join(MIRROR_FILE)).unwrap();
    let all = filter(json!({}));
    let mut expected: Vec<String> = (0..300).filter(|&i| i != 7).map(|i| format!("r{i}")).collect();
    expected.push("new".into());
    let check = |e: &Engine, at: usize| {
        let got = e.get_where(&all, None).unwrap();
        assert_eq!(ids(&got), expected, "after a flip at {at}");
        assert_eq!(e.count(), 300);
        let five = e.get("r5").unwrap().unwrap();
        assert_eq!(five.metadata, Some(meta(json!({"i": 5, "changed": true}))), "after a flip at {at}");
        assert_eq!(ids(&e.get_where(&filter(json!({"changed": true})), None).unwrap()), ["r5"], "after a flip at {at}");
        assert_eq!(ids(&e.get_where(&filter(json!({"i": {"$gte": 1000}})), None).unwrap()), ["new"], "after a flip at {at}");
    };
    for at in (0..mirror.len()).step_by(1021) {
        let dir = base.path().join(format!("at{at}"));
        fs::create_dir(&dir).unwrap();
        for f in fs::read_dir(&src).unwrap() {
            let f = f.unwrap();
            fs::copy(f.path(), dir.join(f.file_name())).unwrap();
        }
        let mut bytes = mirror.clone();
        bytes[at] ^= 0x10;
        fs::write(dir.join(MIRROR_FILE), &bytes).unwrap();
        let e = Engine::open(&dir).unwrap();
        e.add(Record::new("new", vector(1)).with_metadata(meta(json!({"i": 1000})))).unwrap();
        e.update_metadata("r5", Some(meta(json!({"i": 5, "changed": true})))).unwrap();
        assert!(e.delete("r7").unwrap(), "after a flip at {at}");
        check(&e, at);
        e.close().unwrap();
        let e = Engine::open(&dir).unwrap();
        check(&e, at);
        e.close().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
