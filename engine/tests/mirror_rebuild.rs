//! The SQLite mirror is derived state: whatever happens to it (deleted, garbage, an older copy,
//! another store's), reopening must give back exactly the same records, and the store must pass
//! `check_integrity`.
//!
//! Every scenario builds the same store in three sessions:
//! 1. records written, the store closed (a checkpoint): the mirror is copied as "early";
//! 2. more writes, an explicit checkpoint, more writes (in the WAL only), then a crash
//!    (`abandon`): the mirror is copied as "mid" (ahead of the checkpoint);
//! 3. more writes (deletes, upserts, updates of records of every phase), then a crash, so the
//!    last commits are only in the WAL.
//!
//! Then the mirror is damaged or replaced, the store is reopened, and everything is compared
//! with what the engine returned just before the final crash.

use std::fs;
use std::path::{Path, PathBuf};

use memento::{Durability, Engine, Filter, Metadata, Metric, Record, SearchHit, MIRROR_FILE};
use serde_json::json;

const DIM: usize = 3;
const SUFFIXES: [&str; 3] = ["", "-wal", "-shm"];

fn meta(v: serde_json::Value) -> Metadata {
    match v {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn vector(i: usize) -> Vec<f32> {
    vec![1.0 + (i % 7) as f32, (i % 5) as f32 - 2.0, (i * 3 % 11) as f32 * 0.5]
}

fn record(i: usize, variant: &str) -> Record {
    let mut r = Record::new(format!("r{i}-ü"), vector(i));
    if !i.is_multiple_of(4) {
        r = r.with_text(format!("{variant} text of record {i}{}", if i.is_multiple_of(3) { " with apples" } else { "" }));
    }
    if i % 6 == 5 {
        r = r.with_text(String::new());
    }
    if !i.is_multiple_of(5) {
        let group = ["a", "b", "c"][i % 3];
        r = r.with_metadata(meta(json!({"n": i, "group": group, "even": i.is_multiple_of(2), "f": i as f64 / 4.0, "v": variant})));
    } else if i.is_multiple_of(10) {
        r = r.with_metadata(Metadata::new());
    }
    r
}

fn builder(path: &Path) -> memento::EngineBuilder {
    Engine::builder(path).dimension(DIM).metric(Metric::Cosine).durability(Durability::Sync).page_size(8192)
}

/// Builds the store; returns the paths of the two mirror copies ("early", "mid").
fn build(path: &Path, copies: &Path, variant: &str) -> (PathBuf, PathBuf) {
    // Session 1.
    let e = builder(path).open().expect("create");
    for i in 0..60 {
        e.add(record(i, variant)).expect("add");
    }
    for i in (0..60).step_by(7) {
        assert!(e.delete(&format!("r{i}-ü")).expect("delete"));
    }
    for i in (1..60).step_by(9) {
        e.upsert(Record::new(format!("r{i}-ü"), vector(i + 100)).with_text(format!("{variant} upserted {i}"))).expect("upsert");
    }
    e.update_metadata("r2-ü", Some(meta(json!({"n": 1000, "group": "z"})))).expect("update metadata");
    e.close().expect("close");
    let early = copies.join("early");
    copy_mirror(path, &early);

    // Session 2.
    let e = builder(path).open().expect("open session 2");
    for i in 60..120 {
        e.add(record(i, variant)).expect("add");
    }
    let mut batch = memento::WriteBatch::new();
    batch.delete("r3-ü").delete("r61-ü").update_text("r4-ü", Some(format!("{variant} retexted apples"))).update_metadata("r5-ü", None);
    e.write(batch).expect("batch");
    e.checkpoint().expect("checkpoint");
    for i in 120..140 {
        e.add(record(i, variant)).expect("add");
    }
    e.update_metadata("r62-ü", Some(meta(json!({"n": -1, "group": "wal"})))).expect("update metadata");
    e.delete("r63-ü").expect("delete");
    e.abandon();
    let mid = copies.join("mid");
    copy_mirror(path, &mid);

    // Session 3.
    let e = builder(path).open().expect("open session 3");
    for i in 140..150 {
        e.add(record(i, variant)).expect("add");
    }
    e.delete("r121-ü").expect("delete");
    e.delete("r64-ü").expect("delete");
    e.delete("r6-ü").expect("delete");
    e.upsert(record(122, "re-upserted")).expect("upsert");
    e.upsert(record(65, "re-upserted")).expect("upsert");
    e.upsert(record(8, "re-upserted")).expect("upsert");
    e.update_text("r123-ü", None).expect("update text");
    e.update_metadata("r66-ü", Some(meta(json!({"group": "late", "n": 66})))).expect("update metadata");
    e.update_metadata("r9-ü", Some(meta(json!({"group": "late", "n": 9})))).expect("update metadata");
    let deleted = e.delete_where(&Filter::from_json_str(r#"{"$and": [{"group": "b"}, {"n": {"$lt": 40}}]}"#).expect("filter")).expect("delete_where");
    assert!(deleted > 0);
    e.add(record(1000, variant)).expect("add after delete_where");
    e.abandon();
    (early, mid)
}

fn copy_mirror(store: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for s in SUFFIXES {
        let name = format!("{MIRROR_FILE}{s}");
        let _ = fs::remove_file(to.join(&name));
        if store.join(&name).exists() {
            fs::copy(store.join(&name), to.join(&name)).expect("copy mirror");
        }
    }
}

fn remove_mirror(store: &Path) {
    for s in SUFFIXES {
        let p = store.join(format!("{MIRROR_FILE}{s}"));
        if p.exists() {
            fs::remove_file(p).expect("remove mirror file");
        }
    }
}

fn restore_mirror(store: &Path, from: &Path) {
    remove_mirror(store);
    copy_mirror(from, store);
}

/// What the engine shows: every record in order, and some searches.
#[derive(Debug, PartialEq)]
struct Snapshot {
    count: u64,
    records: Vec<Record>,
    searches: Vec<Vec<SearchHit>>,
}

fn queries() -> Vec<(Vec<f32>, usize, Option<Filter>)> {
    let f = |s: &str| Some(Filter::from_json_str(s).expect("filter"));
    vec![
        (vec![1.0, 0.0, 0.0], 10, None),
        (vec![0.0, -1.0, 2.0], 25, f(r#"{"group": {"$in": ["a", "late"]}}"#)),
        (vec![3.0, 1.0, -1.0], 8, f(r#"{"$contains": "apples"}"#)),
        (vec![1.0, 1.0, 1.0], 500, f(r#"{"n": {"$gte": 60}}"#)),
        (vec![-1.0, 2.0, 0.5], 5, f(r#"{"$or": [{"even": true}, {"$not_contains": "text"}]}"#)),
        (vec![0.5, 0.5, 0.0], 500, f(r#"{"v": "re-upserted"}"#)),
        (vec![0.5, 0.5, 0.0], 500, f(r#"{"group": "wal"}"#)),
    ]
}

fn snapshot(e: &Engine) -> Snapshot {
    Snapshot {
        count: e.count(),
        records: e.iter().collect::<memento::Result<Vec<_>>>().expect("iter"),
        searches: queries().iter().map(|(q, k, f)| e.search(q, *k, f.as_ref()).expect("search")).collect(),
    }
}

/// The expected state: the same store built without any damage, reopened normally.
fn expected(root: &Path) -> Snapshot {
    let path = root.join("reference");
    build(&path, &root.join("reference-copies"), "main");
    let e = builder(&path).open().expect("open the reference");
    e.check_integrity().expect("reference integrity");
    let s = snapshot(&e);
    e.close().expect("close");
    s
}

fn assert_same(e: &Engine, want: &Snapshot, what: &str) {
    e.check_integrity().unwrap_or_else(|err| panic!("{what}: check_integrity: {err}"));
    let got = snapshot(e);
    assert_eq!(got.count, want.count, "{what}: count");
    assert_eq!(got.count, got.records.len() as u64, "{what}: count vs iter");
    assert_eq!(got.records.len(), want.records.len(), "{what}: number of records");
    for (g, w) in got.records.iter().zip(&want.records) {
        assert_eq!(g, w, "{what}: record");
    }
    for (i, (g, w)) in got.searches.iter().zip(&want.searches).enumerate() {
        assert_eq!(g, w, "{what}: search {i}");
    }
    for w in &want.records {
        assert_eq!(e.get(&w.id).expect("get").as_ref(), Some(w), "{what}: get {:?}", w.id);
    }
    for gone in ["r0-ü", "r7-ü", "r3-ü", "r61-ü", "r63-ü", "r121-ü", "r64-ü", "r6-ü"] {
        assert_eq!(e.get(gone).expect("get"), None, "{what}: deleted record {gone:?} is back");
        assert!(!e.contains(gone).expect("contains"), "{what}: deleted record {gone:?} is back");
    }
    assert_eq!(e.stats().count, want.count);
}

fn mentions_rebuild(e: &Engine) -> bool {
    e.stats().recovery.iter().any(|r| r.contains("rebuilt the mirror"))
}

/// Reopens after the mirror was tampered with, checks everything, then checks again after a
/// clean close and reopen.
fn reopen_and_check(path: &Path, want: &Snapshot, what: &str, expect_rebuild: bool) {
    let e = Engine::open(path).unwrap_or_else(|err| panic!("{what}: reopening: {err}"));
    if expect_rebuild {
        assert!(mentions_rebuild(&e), "{what}: stats().recovery should mention the rebuild: {:?}", e.stats().recovery);
    }
    assert_same(&e, want, what);
    // Still usable.
    e.add(Record::new("after-reopen", vec![1.0, 2.0, 3.0]).with_text("after")).unwrap_or_else(|err| panic!("{what}: add: {err}"));
    assert!(e.delete("after-reopen").expect("delete"));
    e.close().unwrap_or_else(|err| panic!("{what}: close: {err}"));
    let e = Engine::open(path).unwrap_or_else(|err| panic!("{what}: second reopen: {err}"));
    assert!(!mentions_rebuild(&e), "{what}: the repaired mirror was rebuilt again: {:?}", e.stats().recovery);
    assert_same(&e, want, &format!("{what}, after a clean reopen"));
    e.close().expect("close");
}

fn setup(root: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let path = root.join(name);
    let (early, mid) = build(&path, &root.join(format!("{name}-copies")), "main");
    (path, early, mid)
}

#[test]
fn reference_store_reopens_without_a_rebuild() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, _, _) = setup(root.path(), "plain");
    let e = Engine::open(&path).expect("open");
    assert!(!mentions_rebuild(&e), "{:?}", e.stats().recovery);
    assert_same(&e, &want, "untouched mirror");
    e.close().expect("close");
    // The snapshot is not trivial.
    assert!(want.count > 100, "{}", want.count);
    assert!(want.searches.iter().all(|s| !s.is_empty()));
}

#[test]
fn a_deleted_mirror_is_rebuilt() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, _, _) = setup(root.path(), "deleted");
    remove_mirror(&path);
    reopen_and_check(&path, &want, "deleted mirror", true);
}

#[test]
fn a_deleted_mirror_of_a_store_never_checkpointed_is_rebuilt_from_the_wal() {
    let root = tempfile::tempdir().expect("tempdir");
    let path = root.path().join("store");
    let e = builder(&path).open().expect("create");
    for i in 0..30 {
        e.add(record(i, "wal-only")).expect("add");
    }
    e.delete("r1-ü").expect("delete");
    e.update_text("r2-ü", Some("changed".into())).expect("update");
    let want = snapshot(&e);
    assert_eq!(e.stats().checkpoint_lsn, 0);
    e.abandon();
    remove_mirror(&path);
    let e = Engine::open(&path).expect("reopen");
    e.check_integrity().expect("integrity");
    assert_eq!(snapshot(&e), want);
    e.close().expect("close");
}

/// Found by `memento-inspect`'s tests: a mirror whose header was current but which had lost a
/// row (or gained one) was used as it was at open, so `get` and filtered searches missed the
/// record until someone ran `check_integrity`. Open now compares the row count with the log's.
#[test]
fn a_mirror_missing_a_row_or_holding_an_extra_one_is_rebuilt_at_open() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    for (name, sql) in [
        ("missing-row", "DELETE FROM records WHERE slot = (SELECT max(slot) FROM records)"),
        ("extra-row", "INSERT INTO records (slot, id, text, metadata) VALUES (999999, 'ghost', NULL, NULL)"),
    ] {
        let (path, _, _) = setup(root.path(), name);
        let c = edit_mirror(&path.join(memento::files::MIRROR));
        assert_eq!(c.execute(sql, []).expect("edit the mirror"), 1);
        drop(c);
        reopen_and_check(&path, &want, name, true);
    }
}

#[test]
fn a_garbage_mirror_is_rebuilt() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, _, _) = setup(root.path(), "garbage");
    let len = fs::metadata(path.join(MIRROR_FILE)).map(|m| m.len()).unwrap_or(0).max(4096);
    let garbage: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    remove_mirror(&path);
    fs::write(path.join(MIRROR_FILE), &garbage).expect("write garbage");
    reopen_and_check(&path, &want, "garbage mirror", true);
}

#[test]
fn a_mirror_with_a_valid_header_and_garbage_pages_is_rebuilt() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, _, _) = setup(root.path(), "garbage-pages");
    let file = path.join(MIRROR_FILE);
    let mut bytes = fs::read(&file).expect("read mirror");
    assert!(bytes.len() > 4096, "the mirror is {} bytes", bytes.len());
    // Keep SQLite's 100-byte database header, scramble everything after it.
    for (i, b) in bytes.iter_mut().enumerate().skip(100) {
        *b = (i.wrapping_mul(2_654_435_761) >> 11) as u8;
    }
    for s in ["-wal", "-shm"] {
        let _ = fs::remove_file(path.join(format!("{MIRROR_FILE}{s}")));
    }
    fs::write(&file, &bytes).expect("write");
    reopen_and_check(&path, &want, "mirror with garbage pages", true);
}

#[test]
fn a_truncated_mirror_is_rebuilt() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, _, _) = setup(root.path(), "truncated");
    let file = path.join(MIRROR_FILE);
    let bytes = fs::read(&file).expect("read mirror");
    for s in ["-wal", "-shm"] {
        let _ = fs::remove_file(path.join(format!("{MIRROR_FILE}{s}")));
    }
    fs::write(&file, &bytes[..bytes.len() / 2]).expect("write");
    reopen_and_check(&path, &want, "truncated mirror", true);
}

#[test]
fn a_mirror_from_before_the_checkpoint_is_rebuilt() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, early, _) = setup(root.path(), "early");
    restore_mirror(&path, &early);
    reopen_and_check(&path, &want, "mirror from before the checkpoint", true);
}

#[test]
fn a_mirror_from_after_the_checkpoint_catches_up() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, _, mid) = setup(root.path(), "mid");
    restore_mirror(&path, &mid);
    // Rebuilding or replaying the WAL are both acceptable.
    reopen_and_check(&path, &want, "mirror from after the checkpoint", false);
}

#[test]
fn a_mirror_of_another_store_is_rebuilt() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, _, _) = setup(root.path(), "mine");
    // Another store built the same way (same ids, slots and LSNs) but with other texts and
    // metadata: only its store_uuid tells its mirror apart.
    let other = root.path().join("other");
    build(&other, &root.path().join("other-copies"), "OTHER");
    let e = Engine::open(&other).expect("open other");
    assert_eq!(e.stats().last_lsn, {
        let mine = Engine::open(&path).expect("open mine");
        let l = mine.stats().last_lsn;
        mine.abandon();
        l
    });
    e.abandon();
    restore_mirror(&path, &other);
    reopen_and_check(&path, &want, "mirror of another store", true);
}

#[test]
fn an_older_mirror_of_another_store_is_rebuilt() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, _, _) = setup(root.path(), "mine");
    let (_, _, other_mid) = {
        let other = root.path().join("other");
        let (a, b) = build(&other, &root.path().join("other-copies"), "OTHER");
        (other, a, b)
    };
    // Its applied LSN lies between this store's checkpoint and last LSN.
    restore_mirror(&path, &other_mid);
    reopen_and_check(&path, &want, "older mirror of another store", true);
}

/// A connection to a mirror file through the engine's VFS, so that what it writes keeps valid
/// page trailers (FORMAT.md §6.1): the edit is then a lie the engine must catch otherwise, not
/// page damage.
fn edit_mirror(file: &Path) -> rusqlite::Connection {
    let vfs = memento::mirror_vfs().expect("the mirror's VFS");
    rusqlite::Connection::open_with_flags_and_vfs(file, rusqlite::OpenFlags::default(), vfs).expect("open the mirror")
}

/// `applied_lsn` of a mirror file, read directly.
fn applied_lsn(mirror_dir: &Path) -> u64 {
    let c = rusqlite::Connection::open(mirror_dir.join(MIRROR_FILE)).expect("open the mirror copy");
    let lsn: i64 = c.query_row("SELECT applied_lsn FROM meta WHERE one = 0", [], |r| r.get(0)).expect("applied_lsn");
    u64::try_from(lsn).expect("non-negative")
}

#[test]
fn the_scenarios_copy_mirrors_from_where_they_claim() {
    let root = tempfile::tempdir().expect("tempdir");
    let (path, early, mid) = setup(root.path(), "lsns");
    let early_lsn = applied_lsn(&early);
    let mid_lsn = applied_lsn(&mid);
    let e = Engine::open(&path).expect("open");
    let st = e.stats();
    e.abandon();
    assert!(st.checkpoint_lsn > 0);
    assert!(early_lsn > 0 && early_lsn < st.checkpoint_lsn, "early mirror at {early_lsn}, checkpoint at {}", st.checkpoint_lsn);
    assert!(mid_lsn > st.checkpoint_lsn && mid_lsn < st.last_lsn, "mid mirror at {mid_lsn}, checkpoint {}, last {}", st.checkpoint_lsn, st.last_lsn);
}

#[test]
fn a_foreign_sqlite_database_is_replaced() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, _, _) = setup(root.path(), "foreign");
    remove_mirror(&path);
    {
        let c = rusqlite::Connection::open(path.join(MIRROR_FILE)).expect("create a foreign database");
        c.execute_batch("CREATE TABLE records (x); INSERT INTO records VALUES (1); CREATE TABLE meta (y);").expect("foreign schema");
    }
    reopen_and_check(&path, &want, "foreign SQLite database", true);
}

/// A mirror whose schema version is newer than this code's is refused rather than deleted
/// (the engine's deliberate choice: FORMAT.md §4.3 does not list this case among the rebuilds).
/// The refusal must leave the files alone, and once the mirror is removed the store opens.
#[test]
fn a_mirror_with_a_newer_schema_version_is_refused_and_left_alone() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, _, _) = setup(root.path(), "user-version");
    {
        let c = edit_mirror(&path.join(MIRROR_FILE));
        c.execute_batch("PRAGMA user_version = 99;").expect("set user_version");
    }
    let before = fs::read(path.join(MIRROR_FILE)).expect("read");
    match Engine::open(&path) {
        Err(e @ memento::Error::Mirror { kind: memento::MirrorErrorKind::NewerSchema, .. }) => assert!(e.to_string().contains("newer"), "{e}"),
        other => panic!("expected Error::Mirror for a newer mirror schema, got {other:?}"),
    }
    assert_eq!(fs::read(path.join(MIRROR_FILE)).expect("read"), before, "the refused mirror was modified");
    remove_mirror(&path);
    reopen_and_check(&path, &want, "mirror removed after a refused newer schema", true);
}

#[test]
fn a_mirror_with_an_older_unknown_schema_version_is_replaced() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, _, _) = setup(root.path(), "user-version-old");
    {
        let c = rusqlite::Connection::open(path.join(MIRROR_FILE)).expect("open the mirror");
        c.execute_batch("PRAGMA user_version = -3;").expect("set user_version");
    }
    reopen_and_check(&path, &want, "mirror with user_version -3", true);
}

/// A mirror written by the previous schema (version 1: no metadata index) is derived state of
/// an older layout: it is replaced and rebuilt, and filtered searches then use the new index.
#[test]
fn a_version_1_mirror_is_rebuilt() {
    let root = tempfile::tempdir().expect("tempdir");
    let want = expected(root.path());
    let (path, _, _) = setup(root.path(), "version-1");
    {
        let c = edit_mirror(&path.join(MIRROR_FILE));
        c.execute_batch("DROP TABLE field_values; DROP TABLE fields; PRAGMA user_version = 1;").expect("make it a version 1 mirror");
    }
    reopen_and_check(&path, &want, "version 1 mirror", true);
    let c = edit_mirror(&path.join(MIRROR_FILE));
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("user_version");
    assert_eq!(version, 4);
    let rows: i64 = c.query_row("SELECT count(*) FROM field_values", [], |r| r.get(0)).expect("count the index");
    assert!(rows > 100, "{rows}");
    let entries: i64 = c.query_row("SELECT count(*) FROM records_fts_docsize", [], |r| r.get(0)).expect("count the full-text index");
    let records: i64 = c.query_row("SELECT count(*) FROM records", [], |r| r.get(0)).expect("count the records");
    assert_eq!(entries, records);
}

/// A mirror ahead of the log: the WAL lost its tail (as after a power loss under `Buffered`),
/// but the mirror had applied those commits. The store recovers to the shorter log.
#[test]
fn a_mirror_ahead_of_the_log_is_rebuilt() {
    let root = tempfile::tempdir().expect("tempdir");
    let path = root.path().join("ahead");
    let e = builder(&path).durability(Durability::Buffered).open().expect("create");
    for i in 0..40 {
        e.add(record(i, "main")).expect("add");
    }
    e.checkpoint().expect("checkpoint");
    for i in 40..50 {
        e.add(record(i, "main")).expect("add");
    }
    e.delete("r41-ü").expect("delete");
    e.update_metadata("r1-ü", Some(meta(json!({"group": "before the cut"})))).expect("update");
    let want = snapshot(&e);
    let cut_lsn = e.stats().last_lsn;
    let wal_len = e.stats().wal_bytes;
    e.abandon();

    let e = builder(&path).durability(Durability::Buffered).open().expect("reopen");
    for i in 50..60 {
        e.add(record(i, "lost")).expect("add");
    }
    e.delete("r2-ü").expect("delete");
    e.delete("r42-ü").expect("delete");
    e.upsert(record(43, "lost")).expect("upsert");
    e.update_metadata("r1-ü", Some(meta(json!({"group": "after the cut"})))).expect("update");
    let wal_gen_before = e.stats().checkpoint_lsn;
    e.abandon();

    // Lose the WAL's tail.
    let wal = path.join(memento::files::WAL);
    let f = fs::OpenOptions::new().write(true).open(&wal).expect("open the WAL");
    assert!(f.metadata().expect("metadata").len() > wal_len);
    f.set_len(wal_len).expect("truncate the WAL");
    drop(f);

    let e = Engine::open(&path).expect("open after the lost tail");
    let st = e.stats();
    assert_eq!(st.checkpoint_lsn, wal_gen_before);
    assert_eq!(st.last_lsn, cut_lsn, "recovered to the cut");
    assert!(mentions_rebuild(&e), "the mirror was ahead of the log and must be rebuilt: {:?}", st.recovery);
    e.check_integrity().expect("integrity");
    let got = snapshot(&e);
    assert_eq!(got, want);
    for lost in ["r50-ü", "r55-ü"] {
        assert_eq!(e.get(lost).expect("get"), None);
    }
    assert!(e.get("r2-ü").expect("get").is_some());
    e.close().expect("close");
    let e = Engine::open(&path).expect("reopen after close");
    assert_eq!(snapshot(&e), want);
    e.close().expect("close");
}

/// A mirror that is valid SQLite, of this store, at the right LSN, with as many rows as the log
/// has live records, but lies (a row was swapped for another behind the engine's back, so open's
/// row count does not see it): `check_integrity` must notice.
#[test]
fn check_integrity_notices_a_mirror_missing_a_row() {
    let root = tempfile::tempdir().expect("tempdir");
    let (path, _, _) = setup(root.path(), "lying");
    {
        let c = edit_mirror(&path.join(MIRROR_FILE));
        // The full-text index kept in step, as the mirror's own writes keep it: only the rows lie.
        c.execute("INSERT INTO records_fts (records_fts, rowid, text) SELECT 'delete', slot, text FROM records WHERE id = ?1", ["r10-ü"]).expect("unindex");
        let n = c.execute("DELETE FROM records WHERE id = ?1", ["r10-ü"]).expect("delete a row");
        assert_eq!(n, 1);
        let n = c.execute("INSERT INTO records (slot, id, text, metadata) VALUES (999999, 'ghost', NULL, NULL)", []).expect("insert a row");
        assert_eq!(n, 1);
        c.execute("INSERT INTO records_fts (rowid, text) VALUES (999999, NULL)", []).expect("index");
    }
    let e = Engine::open(&path).expect("open");
    match e.check_integrity() {
        Err(memento::Error::Corrupted { .. }) => {}
        other => panic!("expected Corrupted from check_integrity, got {other:?}"),
    }
    e.abandon();
}

/// A metadata index that lost a row (behind the engine's back) would make filters miss that
/// record: `check_integrity` must notice.
#[test]
fn check_integrity_notices_a_metadata_index_missing_a_row() {
    let root = tempfile::tempdir().expect("tempdir");
    let (path, _, _) = setup(root.path(), "lying-index");
    {
        let c = edit_mirror(&path.join(MIRROR_FILE));
        let slot: i64 = c.query_row("SELECT slot FROM records WHERE id = ?1", ["r11-ü"], |r| r.get(0)).expect("slot of r11");
        let n = c.execute("DELETE FROM field_values WHERE slot = ?1", [slot]).expect("delete index rows");
        assert!(n > 0);
    }
    let e = Engine::open(&path).expect("open");
    match e.check_integrity() {
        Err(e @ memento::Error::Mirror { kind: memento::MirrorErrorKind::Damaged, .. }) => {
            let reason = e.to_string();
            assert!(reason.contains("damaged") && reason.contains("index"), "{reason}");
        }
        other => panic!("expected a damaged mirror from check_integrity, got {other:?}"),
    }
    e.abandon();
}
