//! `memento-inspect` run as a user runs it, on stores built with the Engine API in temporary
//! directories: a clean store verifies; each kind of damage, made on a copy, is found with the
//! expected finding kinds and exit status 1; `rebuild-mirror` repairs the mirror; every command's
//! `--json` parses; the tool works while another process has the store open.
//!
//! The process holding a store open is this test binary itself, re-executed with
//! `MEMENTO_INSPECT_CHILD` set to the store's path (see `hold_child`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use memento::{Engine, Metadata, Metric, Record, WriteBatch};
use serde_json::Value;

const DIM: usize = 8;
const PAGE: u64 = 8192;
const CHILD_ENV: &str = "MEMENTO_INSPECT_CHILD";

/// One test at a time: a child process forked by one test briefly holds copies of this
/// process's descriptors, among them the `flock`ed LOCK of a store another test has open.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn vector(i: usize) -> Vec<f32> {
    (0..DIM).map(|j| ((i * 7 + j * 3) % 11) as f32 + 0.5).collect()
}

fn meta(i: usize) -> Metadata {
    let mut m = Metadata::new();
    m.insert("n".into(), (i as u64).into());
    m.insert("kind".into(), if i.is_multiple_of(2) { "even" } else { "odd" }.into());
    m
}

fn record(i: usize) -> Record {
    Record::new(format!("doc-{i}"), vector(i)).with_text(format!("text number {i}")).with_metadata(meta(i))
}

/// A store with three checkpoints (adds; deletes, upserts and metadata updates; more adds), then
/// commits only in the WAL (adds, a delete, updates), left as by a crash.
fn build_store(dir: &Path) {
    let e = Engine::builder(dir).dimension(DIM).metric(Metric::Cosine).page_size(PAGE as u32).open().expect("create");
    let mut b = WriteBatch::new();
    for i in 0..300 {
        b.add(record(i));
    }
    e.write(b).expect("add 300");
    e.checkpoint().expect("checkpoint 1");
    for i in (0..300).step_by(7) {
        e.delete(&format!("doc-{i}")).expect("delete");
    }
    for i in (1..300usize).step_by(11).filter(|i| !i.is_multiple_of(7)) {
        e.update_metadata(&format!("doc-{i}"), Some(meta(i + 1000))).expect("update metadata");
    }
    e.upsert(record(5).with_text("replaced")).expect("upsert");
    e.update_text("doc-6", None).expect("update text");
    e.checkpoint().expect("checkpoint 2");
    let mut b = WriteBatch::new();
    for i in 300..400 {
        b.add(record(i));
    }
    e.write(b).expect("add 100");
    e.checkpoint().expect("checkpoint 3");
    for i in 400..410 {
        e.add(record(i)).expect("add in the WAL");
    }
    e.delete("doc-401").expect("delete in the WAL");
    e.update_metadata("doc-402", Some(meta(2402))).expect("update in the WAL");
    e.update_metadata("doc-300", None).expect("update of a sealed record in the WAL");
    e.abandon();
}

struct Store {
    _tmp: tempfile::TempDir,
    path: PathBuf,
}

fn new_store() -> Store {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("store");
    build_store(&path);
    Store { _tmp: tmp, path }
}

fn inspect(store: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("memento-inspect").expect("binary").arg("--store").arg(store).args(args).output().expect("run memento-inspect");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn inspect_json(store: &Path, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let (code, out, err) = inspect(store, &a);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: the output is not JSON ({e}): {out}\nstderr: {err}"));
    (code, v)
}

/// `verify --json`: exit status, and the kinds of its findings by severity.
fn verify(store: &Path) -> (i32, Vec<String>, Vec<String>, Value) {
    let (code, v) = inspect_json(store, &["verify"]);
    let kinds = |sev: &str| -> Vec<String> {
        v["findings"].as_array().expect("findings").iter().filter(|f| f["severity"] == sev).map(|f| f["kind"].as_str().expect("kind").to_string()).collect()
    };
    (code, kinds("error"), kinds("warning"), v)
}

fn file(store: &Path, name: &str) -> PathBuf {
    store.join(name)
}

fn flip(path: &Path, offset: u64) {
    let mut b = std::fs::read(path).expect("read");
    b[offset as usize] ^= 0x40;
    std::fs::write(path, b).expect("write");
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new().write(true).open(path).expect("open").set_len(len).expect("set_len");
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

/// Edits the mirror behind the engine's back, as a hand-edited file would be: through the
/// engine's VFS, so that the pages written keep valid trailers (FORMAT.md §6.1) and the edit
/// is what the inspector must find, not page damage.
fn sqlite3(db: &Path, sql: &str) {
    let vfs = memento::mirror_vfs().expect("the mirror's VFS");
    let c = rusqlite::Connection::open_with_flags_and_vfs(db, rusqlite::OpenFlags::default(), vfs).expect("opening the mirror with SQLite");
    c.execute_batch(sql).expect("editing the mirror");
}

/// Every file of the store with its bytes.
fn snapshot_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("read"))
        })
        .collect()
}

#[test]
fn a_clean_store_verifies_and_inspection_writes_nothing() {
    let _s = serial();
    let s = new_store();
    let before = snapshot_files(&s.path);
    let (code, errors, warnings, v) = verify(&s.path);
    assert_eq!(code, 0, "{v:#}");
    assert!(errors.is_empty(), "{v:#}");
    assert!(warnings.is_empty(), "{v:#}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["checked"]["live_records"], 400 - 43 + 10 - 1);
    assert!(v["checked"]["quantized_copies"].as_u64().expect("copies") >= 400);
    let (code, text, _) = inspect(&s.path, &["verify"]);
    assert_eq!(code, 0);
    assert!(text.contains("OK: 0 errors"), "{text}");
    for cmd in [&["superblock"][..], &["pages"], &["wal", "--verbose"], &["dump", "doc-3"], &["dump", "doc-405", "--full"]] {
        let (code, text, err) = inspect(&s.path, cmd);
        assert_eq!(code, 0, "{cmd:?}: {err}");
        assert!(!text.is_empty());
    }
    assert_eq!(snapshot_files(&s.path), before, "inspection changed the store's files");
}

#[test]
fn every_command_has_json_output_that_parses() {
    let _s = serial();
    let s = new_store();
    let (code, sb) = inspect_json(&s.path, &["superblock"]);
    assert_eq!(code, 0);
    assert_eq!(sb["copies"].as_array().expect("copies").len(), 2);
    assert_eq!(sb["copies"].as_array().expect("copies").iter().filter(|c| c["current"] == true).count(), 1);
    assert!(sb["copies"][0]["fields"]["page_count"].as_u64().is_some());
    let (code, pages) = inspect_json(&s.path, &["pages"]);
    assert_eq!(code, 0);
    let types: Vec<&str> = pages["pages"].as_array().expect("pages").iter().filter_map(|p| p["type"].as_str()).collect();
    for t in ["vector", "quantized", "record", "tombstone", "directory"] {
        assert!(types.contains(&t), "no {t} page: {types:?}");
    }
    assert!(pages["pages"].as_array().expect("pages").iter().all(|p| p["checksum"] == "ok"), "{pages:#}");
    let (code, wal) = inspect_json(&s.path, &["wal"]);
    assert_eq!(code, 0);
    assert_eq!(wal["transactions"].as_array().expect("txns").len(), 13);
    assert!(wal["tail"].is_null());
    let (code, dump) = inspect_json(&s.path, &["dump", "doc-402"]);
    assert_eq!(code, 0);
    assert_eq!(dump["metadata"]["n"], 2402);
    assert_eq!(dump["vector_at"]["in"], "wal");
    assert_eq!(dump["mirror"]["status"], "agrees");
    assert_eq!(dump["vector"].as_array().expect("vector").len(), DIM.min(8));
    let (code, dump) = inspect_json(&s.path, &["dump", "doc-12"]);
    assert_eq!(code, 0);
    assert_eq!(dump["vector_at"]["in"], "page");
    assert_eq!(dump["metadata"]["n"], 1012, "the update of checkpoint 2 applies");
    assert!(dump["quantized"]["page"].as_u64().is_some());
    let (code, v) = inspect_json(&s.path, &["verify"]);
    assert_eq!(code, 0);
    assert_eq!(v["lock"]["live"], false);
}

#[test]
fn dump_of_an_unknown_or_deleted_id_is_an_error() {
    let _s = serial();
    let s = new_store();
    for id in ["no-such-id", "doc-7", "doc-401"] {
        let (code, out, err) = inspect(&s.path, &["dump", id]);
        assert_eq!(code, 1, "{id}: {out}");
        assert!(err.starts_with("error: ") && err.contains(id), "{err}");
    }
    let (code, _, err) = inspect(Path::new("/nonexistent/store"), &["verify"]);
    assert_eq!(code, 1);
    assert!(err.contains("there is no store"), "{err}");
}

#[test]
fn a_store_that_is_a_regular_file_is_named_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("afile");
    std::fs::write(&file, "not a store").expect("write");
    for args in [&["verify"][..], &["superblock"], &["rebuild-mirror"]] {
        let (code, _, err) = inspect(&file, args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains("afile is a file, not a store directory"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "not a store");
}

#[test]
fn a_truncated_wal_is_a_torn_tail_and_the_mirror_is_then_ahead() {
    let _s = serial();
    let s = new_store();
    let wal = file(&s.path, "memento.wal");
    truncate(&wal, len(&wal) - 5);
    let (code, errors, warnings, v) = verify(&s.path);
    assert_eq!(code, 1, "{v:#}");
    assert!(warnings.contains(&"wal.torn_tail".to_string()), "{v:#}");
    assert_eq!(errors, vec!["mirror.ahead"], "{v:#}");
    let (_, w) = inspect_json(&s.path, &["wal"]);
    assert_eq!(w["tail"]["torn"], true);
    assert!(w["tail"]["bytes"].as_u64().expect("bytes") > 0);
    let (_, text, _) = inspect(&s.path, &["wal"]);
    assert!(text.contains("torn tail") && text.contains("recoverable"), "{text}");
}

#[test]
fn a_flipped_byte_early_in_the_wal_is_damage() {
    let _s = serial();
    let s = new_store();
    // Inside the first transaction's put record, which later commit records vouch for.
    flip(&file(&s.path, "memento.wal"), 64 + 40);
    let (code, errors, _, v) = verify(&s.path);
    assert_eq!(code, 1);
    assert!(errors.contains(&"wal.damaged".to_string()), "{v:#}");
}

#[test]
fn a_flipped_byte_in_a_page_is_a_checksum_error() {
    let _s = serial();
    let s = new_store();
    let (_, pages) = inspect_json(&s.path, &["pages"]);
    let p = pages["pages"].as_array().expect("pages").iter().find(|p| p["type"] == "vector").expect("a vector page").clone();
    flip(&file(&s.path, "memento.vec"), p["offset"].as_u64().expect("offset") + 1000);
    let (code, errors, _, v) = verify(&s.path);
    assert_eq!(code, 1);
    assert!(errors.contains(&"page.checksum".to_string()), "{v:#}");
    let f = v["findings"].as_array().expect("findings").iter().find(|f| f["kind"] == "page.checksum").expect("finding");
    assert_eq!(f["file"], "memento.vec");
    let (_, text, _) = inspect(&s.path, &["pages"]);
    assert!(text.contains("mismatch"), "{text}");
    // A record page too.
    let s = new_store();
    let (_, pages) = inspect_json(&s.path, &["pages"]);
    let p = pages["pages"].as_array().expect("pages").iter().find(|p| p["type"] == "record").expect("a record page").clone();
    flip(&file(&s.path, "memento.vec"), p["offset"].as_u64().expect("offset") + 100);
    let (code, errors, warnings, v) = verify(&s.path);
    assert_eq!(code, 1);
    assert!(errors.contains(&"page.checksum".to_string()), "{v:#}");
    assert!(warnings.contains(&"mirror.not_compared".to_string()), "{v:#}");
}

#[test]
fn flipped_superblock_bytes_are_found() {
    let _s = serial();
    let s = new_store();
    let vec = file(&s.path, "memento.vec");
    flip(&vec, 20); // copy A's sequence
    let (code, errors, _, v) = verify(&s.path);
    assert_eq!(code, 1);
    assert_eq!(errors, vec!["superblock.checksum"], "the store still opens from copy B: {v:#}");
    let (_, sb) = inspect_json(&s.path, &["superblock"]);
    assert_eq!(sb["copies"][0]["status"], "invalid");
    assert_eq!(sb["copies"][0]["crc"]["ok"], false);
    assert_eq!(sb["current"], "B");
    flip(&vec, 4096 + 20);
    let (code, errors, _, v) = verify(&s.path);
    assert_eq!(code, 1);
    assert!(errors.contains(&"superblock.none_valid".to_string()), "{v:#}");
    let (code, text, _) = inspect(&s.path, &["superblock"]);
    assert_eq!(code, 0);
    assert!(text.contains("MISMATCH"), "{text}");
}

#[test]
fn a_truncated_vector_file_is_found() {
    let _s = serial();
    let s = new_store();
    let vec = file(&s.path, "memento.vec");
    truncate(&vec, len(&vec) - 3 * PAGE - 100);
    let (code, errors, _, v) = verify(&s.path);
    assert_eq!(code, 1);
    assert!(errors.contains(&"vec.truncated".to_string()), "{v:#}");
    for cmd in ["superblock", "pages", "wal"] {
        assert_eq!(inspect_json(&s.path, &[cmd]).0, 0, "{cmd}");
    }
    // Even down to nothing but part of the header page.
    truncate(&vec, 600);
    let (code, errors, _, v) = verify(&s.path);
    assert_eq!(code, 1);
    assert!(errors.contains(&"superblock.invalid".to_string()) && errors.contains(&"vec.truncated".to_string()), "{v:#}");
}

#[test]
fn a_deleted_mirror_is_found_and_rebuilt() {
    let _s = serial();
    let s = new_store();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(file(&s.path, &format!("memento.mirror.sqlite{suffix}")));
    }
    let (code, errors, _, v) = verify(&s.path);
    assert_eq!(code, 1);
    assert_eq!(errors, vec!["mirror.missing"], "{v:#}");
    let (code, out, err) = inspect(&s.path, &["rebuild-mirror"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("OK: 0 errors"), "{out}");
    let (code, errors, warnings, v) = verify(&s.path);
    assert_eq!((code, errors.len(), warnings.len()), (0, 0, 0), "{v:#}");
    assert_eq!(v["checked"]["mirror"]["rows"], 400 - 43 + 10 - 1);
}

#[test]
fn a_garbage_mirror_is_found_and_rebuilt() {
    let _s = serial();
    let s = new_store();
    let m = file(&s.path, "memento.mirror.sqlite");
    let _ = std::fs::remove_file(file(&s.path, "memento.mirror.sqlite-wal"));
    std::fs::write(&m, b"this is not an SQLite database, just some garbage bytes ".repeat(100)).expect("write");
    let (code, errors, _, v) = verify(&s.path);
    assert_eq!(code, 1);
    assert_eq!(errors, vec!["mirror.damaged"], "{v:#}");
    let (code, v) = inspect_json(&s.path, &["rebuild-mirror"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["verify"]["ok"], true);
    assert!(v["moved_aside"].as_array().expect("moved").iter().any(|f| f == "memento.mirror.sqlite.old"));
    assert!(file(&s.path, "memento.mirror.sqlite.old").exists());
}

#[test]
fn a_mirror_missing_a_row_or_holding_an_extra_one_is_found() {
    let _s = serial();
    let s = new_store();
    let m = file(&s.path, "memento.mirror.sqlite");
    // Each change keeps the full-text index in step (as the mirror's own writes do), so that
    // only the row disagreements are found.
    let gone = "DELETE FROM field_values WHERE slot = (SELECT slot FROM records WHERE id = 'doc-20'); \
        INSERT INTO records_fts (records_fts, rowid, text) SELECT 'delete', slot, text FROM records WHERE id = 'doc-20'; \
        DELETE FROM records WHERE id = 'doc-20';";
    sqlite3(&m, gone);
    let (code, errors, _, v) = verify(&s.path);
    assert_eq!(code, 1);
    assert_eq!(errors, vec!["mirror.missing_row"], "{v:#}");
    assert!(v["findings"][0]["message"].as_str().expect("message").contains("doc-20"));
    sqlite3(
        &m,
        "INSERT INTO records (slot, id, text, metadata) VALUES (100000, 'ghost', NULL, NULL); \
         INSERT INTO records_fts (rowid, text) VALUES (100000, NULL); \
         INSERT INTO records_fts (records_fts, rowid, text) SELECT 'delete', slot, text FROM records WHERE id = 'doc-22'; \
         UPDATE records SET text = 'edited' WHERE id = 'doc-22'; \
         INSERT INTO records_fts (rowid, text) SELECT slot, text FROM records WHERE id = 'doc-22';",
    );
    let (code, mut errors, _, v) = verify(&s.path);
    assert_eq!(code, 1);
    errors.sort();
    assert_eq!(errors, vec!["mirror.extra_row", "mirror.missing_row", "mirror.row_differs"], "{v:#}");
    let (code, dump) = inspect_json(&s.path, &["dump", "doc-22"]);
    assert_eq!(code, 0);
    assert_eq!(dump["mirror"]["status"], "differs");
    let (code, out, err) = inspect(&s.path, &["rebuild-mirror"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, errors, _, v) = verify(&s.path);
    assert_eq!((code, errors.len()), (0, 0), "{v:#}");
}

#[test]
fn rebuild_mirror_refuses_a_damaged_log() {
    let _s = serial();
    let s = new_store();
    let (_, pages) = inspect_json(&s.path, &["pages"]);
    let p = pages["pages"].as_array().expect("pages").iter().find(|p| p["type"] == "tombstone").expect("a tombstone page").clone();
    flip(&file(&s.path, "memento.vec"), p["offset"].as_u64().expect("offset") + 70);
    let (code, _, err) = inspect(&s.path, &["rebuild-mirror"]);
    assert_eq!(code, 1);
    assert!(err.contains("page.checksum") && err.contains("cannot repair"), "{err}");
    assert!(file(&s.path, "memento.mirror.sqlite").exists(), "the mirror was left where it was");
}

/// Child mode only: with `MEMENTO_INSPECT_CHILD` set, open that store, write, say READY, and
/// hold it open until killed.
#[test]
fn hold_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let e = Engine::open(&path).expect("child open");
    for i in 1000..1005 {
        e.add(record(i)).expect("child add");
    }
    println!("READY {}", std::process::id());
    std::thread::sleep(Duration::from_secs(60));
    e.abandon();
}

#[test]
fn it_works_while_another_process_holds_the_store() {
    let _s = serial();
    let s = new_store();
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "hold_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &s.path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let pid = loop {
        let line = lines.next().expect("the child ended early").expect("read");
        // libtest may print "test hold_child ... " on the same line first.
        if let Some(at) = line.find("READY ") {
            break line[at + 6..].trim().parse::<u64>().expect("pid");
        }
    };
    let (code, errors, _, v) = verify(&s.path);
    let (rcode, rout, rerr) = inspect(&s.path, &["rebuild-mirror"]);
    let (dcode, dump) = inspect_json(&s.path, &["dump", "doc-1003"]);
    let (_, text, _) = inspect(&s.path, &["verify"]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 0, "{v:#}");
    assert!(errors.is_empty(), "{v:#}");
    assert_eq!(v["lock"]["live"], true);
    assert_eq!(v["lock"]["pid"], pid);
    assert_eq!(v["checked"]["live_records"], 400 - 43 + 10 - 1 + 5);
    assert!(text.contains("LIVE"), "{text}");
    assert_eq!(rcode, 1, "{rout}");
    assert!(rerr.contains("already open"), "{rerr}");
    assert_eq!(dcode, 0);
    assert_eq!(dump["mirror"]["status"], "agrees");
}

#[test]
fn help_documents_every_command_and_the_severities() {
    let (code, out, _) = inspect(Path::new("."), &["--help"]);
    assert_eq!(code, 0);
    for cmd in ["superblock", "pages", "wal", "graph", "verify", "rebuild-mirror", "dump"] {
        assert!(out.contains(cmd), "{cmd} missing from --help:\n{out}");
    }
    let (_, out, _) = inspect(Path::new("."), &["verify", "--help"]);
    assert!(out.contains("warning") && out.contains("error"), "{out}");
}

/// A store of `n` clustered vectors (dimension 24) whose graph file is written, closed.
fn graph_store(n: u64) -> Store {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("store");
    let params = memento::graph::GraphParams { m: 8, ef_construction: 64, ef_search: 48, min_vectors: 500 };
    let e = Engine::builder(&path).dimension(24).metric(Metric::Cosine).page_size(PAGE as u32).graph(Some(params)).open().expect("create");
    let h = |x: u64| ((x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
    let mut b = WriteBatch::new();
    for i in 0..n {
        b.add(Record::new(format!("doc-{i}"), (0..24u64).map(|j| h((i % 37) * 1000 + j) + 0.3 * h(i * 7919 + j * 104_729 + 1)).collect()));
    }
    e.write(b).expect("write");
    e.build_index().expect("build the graph");
    e.close().expect("close");
    Store { _tmp: tmp, path }
}

#[test]
fn the_graph_file_is_shown_and_its_damage_is_a_derived_error() {
    let _s = serial();
    let s = graph_store(1200);
    let (code, text, err) = inspect(&s.path, &["graph"]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("usable") && text.contains("m 8, m0 16, ef_construction 64") && text.contains("level"), "{text}");
    let (code, g) = inspect_json(&s.path, &["graph"]);
    assert_eq!(code, 0);
    assert_eq!(g["graph"]["status"], "usable", "{g:#}");
    assert_eq!(g["graph"]["header"]["node_count"], 1200, "{g:#}");
    let levels = g["graph"]["header"]["levels"].as_array().expect("levels").clone();
    assert_eq!(levels[0]["records"], g["graph"]["header"]["node_bound"]);
    let (code, errors, warnings, v) = verify(&s.path);
    assert_eq!(code, 0, "{v:#}");
    assert!(errors.is_empty() && warnings.is_empty(), "{v:#}");
    assert_eq!(v["checked"]["graph"]["status"], "usable");
    let (_, text, _) = inspect(&s.path, &["verify"]);
    assert!(text.contains("graph: ") && text.contains("OK: 0 errors"), "{text}");

    // A flipped byte in a level page: an error of the graph file alone, which loses nothing.
    flip(&file(&s.path, "memento.graph"), PAGE + 300);
    let (code, errors, _, v) = verify(&s.path);
    assert_eq!(code, 1);
    assert_eq!(errors, vec!["graph.damaged"], "{v:#}");
    assert_eq!(v["derived_only"], true);
    let f = v["findings"].as_array().expect("findings").iter().find(|f| f["kind"] == "graph.damaged").expect("finding").clone();
    assert_eq!(f["file"], "memento.graph");
    assert!(f["message"].as_str().expect("message").contains("graph page 1 "), "{f:#}");
    let (code, text, err) = inspect(&s.path, &["verify"]);
    assert_eq!(code, 1);
    assert!(text.contains("no record is lost") && err.contains("no record is lost"), "{text}\n{err}");
    let (code, text, _) = inspect(&s.path, &["graph"]);
    assert_eq!(code, 0, "graph shows; verify judges");
    assert!(text.contains("DAMAGED") && text.contains("graph.damaged"), "{text}");
}

/// `verify` over a directory of collections (FORMAT.md §8): every collection is verified, and
/// the leftovers of interrupted creates and deletes and foreign entries are warnings; a damaged
/// collection fails it. The other commands want one collection's directory.
#[test]
fn verify_over_a_directory_of_collections() {
    let _s = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let c = memento::Collections::open(&root).expect("open the root");
    c.create("clean", |b| b.dimension(3)).expect("create").close().expect("close");
    build_store(&tmp.path().join("built"));
    std::fs::rename(tmp.path().join("built"), root.join("built")).expect("move a store in");
    std::fs::create_dir(root.join(".half.new-77")).expect("a leftover create");
    std::fs::create_dir(root.join(".deleted-old-77-1")).expect("a leftover delete");
    std::fs::create_dir(root.join("a b")).expect("an entry that is not a collection");

    let (code, v) = inspect_json(&root, &["verify"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true);
    let names: Vec<&str> = v["collections"].as_array().expect("collections").iter().map(|c| c["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["built", "clean"]);
    assert_eq!(v["collections"][0]["report"]["ok"], true);
    let (_, direct) = inspect_json(&root.join("built"), &["verify"]);
    assert_eq!(v["collections"][0]["report"]["checked"], direct["checked"], "the same verification as of the store alone");
    let kinds: Vec<&str> = v["findings"].as_array().expect("findings").iter().map(|f| f["kind"].as_str().expect("kind")).collect();
    assert_eq!(
        kinds,
        [".deleted-old-77-1", ".half.new-77", "a b"].map(|e| if e.starts_with('.') { "collections.leftover" } else { "collections.not_a_collection" })
    );
    assert!(v["findings"].as_array().expect("findings").iter().all(|f| f["severity"] == "warning"));
    let (code, text, _) = inspect(&root, &["verify"]);
    assert_eq!(code, 0);
    assert!(text.contains("== collection built") && text.contains("== collection clean") && text.contains("collections.leftover"), "{text}");

    // Damage in one collection fails the whole verification, naming it.
    let vec_file = file(&root.join("built"), "memento.vec");
    flip(&vec_file, len(&vec_file) - 100);
    let (code, v) = inspect_json(&root, &["verify"]);
    assert_eq!(code, 1);
    assert_eq!(
        (v["ok"].as_bool(), v["collections"][0]["report"]["ok"].as_bool(), v["collections"][1]["report"]["ok"].as_bool()),
        (Some(false), Some(false), Some(true))
    );
    let (code, _, err) = inspect(&root, &["verify"]);
    assert_eq!(code, 1);
    assert!(err.contains("1 collection(s) damaged or unreadable: built"), "{err}");

    let (code, _, err) = inspect(&root, &["superblock"]);
    assert_eq!(code, 1);
    assert!(err.contains("is a directory of collections"), "{err}");
    let (code, _, _) = inspect(&root.join("clean"), &["superblock"]);
    assert_eq!(code, 0);
}
