//! Readers beside a writer (FORMAT.md §4.4): read-only engines, in this process and in other
//! processes, follow a store that a writer process commits to, checkpoints, and is killed
//! with SIGKILL and restarted in; every answer a reader gives must be a state that existed.
//!
//! The writer commits one transaction per step `i`: it upserts `r{i}` (vector `[i, 1, 0, 0]`
//! under l2, metadata `{"i": i}`, text `t{i}`) and deletes `r{i-5}`. So every committed state
//! holds a window of consecutive records `r{j-4} ..= r{j}` (fewer at the start), and any
//! other set of records (a torn transaction, a mix of two commits, a vector of another record)
//! is a state that never existed. The writer and the reader processes are this test binary,
//! re-executed with `MEMENTO_READERS_WRITER` or `MEMENTO_READERS_READER` set to the store.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memento::{Engine, Error, Filter, Metadata, Metric, Record, WriteBatch};

const WRITER_ENV: &str = "MEMENTO_READERS_WRITER";
const READER_ENV: &str = "MEMENTO_READERS_READER";
const SECS_ENV: &str = "MEMENTO_READERS_SECS";
const WINDOW: u64 = 5;

fn open_writer(path: &Path) -> Engine {
    // Small pages and a small WAL limit: a checkpoint, and a WAL rotation, every few dozen
    // commits, so that readers cross many of them.
    Engine::builder(path).dimension(4).metric(Metric::L2).page_size(8192).wal_limit(16 << 10).open().expect("reader test")
}

fn step(engine: &Engine, i: u64) {
    let mut m = Metadata::new();
    m.insert("i".into(), i.into());
    let mut b = WriteBatch::new();
    b.upsert(Record::new(format!("r{i}"), vec![i as f32, 1.0, 0.0, 0.0]).with_text(format!("t{i}")).with_metadata(m));
    if i >= WINDOW {
        b.delete(format!("r{}", i - WINDOW));
    }
    engine.write(b).expect("reader test");
}

/// The index of the newest record, from what the store holds (to resume after a kill).
fn newest(engine: &Engine) -> Option<u64> {
    engine.iter().map(|r| r.expect("reader test").id[1..].parse::<u64>().expect("reader test")).max()
}

/// Checks one answer: the records a reader returned form a window of a committed state, each
/// with its own vector, text and metadata. Returns the window's newest index.
fn check_window(recs: &[Record]) -> Option<u64> {
    let mut idx: Vec<u64> = recs.iter().map(|r| r.id[1..].parse().expect("reader test")).collect();
    idx.sort_unstable();
    let newest = *idx.last()?;
    let want: Vec<u64> = (newest.saturating_sub(WINDOW - 1)..=newest).collect();
    assert_eq!(idx, want, "a reader saw records {idx:?}: not the state after any commit");
    for r in recs {
        let i: u64 = r.id[1..].parse().expect("reader test");
        assert_eq!(r.vector, vec![i as f32, 1.0, 0.0, 0.0], "{}: another record's vector", r.id);
        assert_eq!(r.text.as_deref(), Some(format!("t{i}").as_str()));
        assert_eq!(r.metadata.as_ref().and_then(|m| m.get("i")).and_then(|v| v.as_u64()), Some(i));
    }
    Some(newest)
}

/// Reads with `reader` until `deadline`, checking every answer; returns how many were checked.
fn read_and_check(reader: &Engine, deadline: Instant) -> u64 {
    let all = Filter::from_json_str("{}").expect("reader test");
    let (mut checked, mut seen, mut last_lsn) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        let recs = reader.get_where(&all, None).expect("reader test");
        if let Some(newest) = check_window(&recs) {
            assert!(newest >= seen, "a reader went back in time: {newest} after {seen}");
            seen = newest;
            // A search at another moment: a later state, never an earlier one, and the hit's
            // distance is its own vector's.
            let hits = reader.search(&[newest as f32, 1.0, 0.0, 0.0], 1, None).expect("reader test");
            let k: u64 = hits[0].id[1..].parse().expect("reader test");
            assert!(k >= newest, "search answered from an older state ({k} < {newest})");
            assert_eq!(hits[0].distance, ((k - newest) as f32).powi(2));
            let lsn = reader.stats().last_lsn;
            assert!(lsn >= last_lsn, "the snapshot went back from LSN {last_lsn} to {lsn}");
            last_lsn = lsn;
        }
        checked += 1;
    }
    checked
}

/// The writer process: commits step after step until killed (or for a minute).
#[test]
fn readers_writer_child() {
    let Ok(path) = std::env::var(WRITER_ENV) else { return };
    let engine = open_writer(Path::new(&path));
    let mut i = newest(&engine).map_or(0, |n| n + 1);
    let end = Instant::now() + Duration::from_secs(60);
    println!("WRITER: from {i}");
    while Instant::now() < end {
        step(&engine, i);
        if i.is_multiple_of(97) {
            engine.checkpoint().expect("reader test");
        }
        i += 1;
    }
}

/// A reader process: checks answers for `MEMENTO_READERS_SECS` seconds.
#[test]
fn readers_reader_child() {
    let Ok(path) = std::env::var(READER_ENV) else { return };
    let secs: u64 = std::env::var(SECS_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let reader = Engine::open_read_only(&path).expect("reader test");
    let checked = read_and_check(&reader, Instant::now() + Duration::from_secs(secs));
    println!("READER: checked {checked}");
}

fn child(env: &str, path: &Path, test: &str, secs: u64) -> std::process::Child {
    Command::new(std::env::current_exe().expect("reader test"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, path)
        .env(SECS_ENV, secs.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("reader test")
}

#[test]
fn readers_in_threads_and_processes_see_only_committed_states() {
    if std::env::var(WRITER_ENV).is_ok() || std::env::var(READER_ENV).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().expect("reader test");
    let path = tmp.path().join("s");
    {
        let e = open_writer(&path);
        step(&e, 0);
        e.close().expect("reader test");
    }
    let secs = 4;
    let mut writer = child(WRITER_ENV, &path, "readers_writer_child", secs);
    let readers: Vec<_> = (0..2).map(|_| child(READER_ENV, &path, "readers_reader_child", secs)).collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || read_and_check(&Engine::open_read_only(&path).expect("reader test"), deadline))
        })
        .collect();
    // Kill the writer with SIGKILL twice, restarting it each time (it resumes after the newest
    // record it finds).
    let mut kills = 0;
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1200));
        writer.kill().expect("reader test");
        writer.wait().expect("reader test");
        kills += 1;
        writer = child(WRITER_ENV, &path, "readers_writer_child", secs);
    }
    let in_threads: u64 = threads.into_iter().map(|t| t.join().expect("a reader thread failed")).sum();
    let mut in_processes = 0;
    for r in readers {
        let out = r.wait_with_output().expect("reader test");
        assert!(out.status.success(), "a reader process failed: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        // libtest prints "test readers_reader_child ... " before the child's own line.
        let count = text.split("READER: checked ").nth(1).and_then(|t| t.split_whitespace().next()).unwrap_or_else(|| panic!("no count from a reader: {text}"));
        in_processes += count.parse::<u64>().expect("reader test");
    }
    writer.kill().expect("reader test");
    let out = BufReader::new(writer.stdout.take().expect("reader test")).lines().count();
    writer.wait().expect("reader test");
    assert!(out > 0);
    assert_eq!(kills, 2);
    assert!(in_threads > 20 && in_processes > 20, "answers checked: {in_threads} in threads, {in_processes} in processes");
    // The store is whole, and a writer opens it after all this.
    let e = Engine::open(&path).expect("reader test");
    e.check_integrity().expect("reader test");
    check_window(&e.iter().map(|r| r.expect("reader test")).collect::<Vec<_>>()).expect("reader test");
    println!("readers: {in_threads} answers checked in threads, {in_processes} in processes, {kills} writer kills");
}

#[test]
fn a_reader_follows_a_writer_in_the_same_process() {
    let tmp = tempfile::tempdir().expect("reader test");
    let path = tmp.path().join("s");
    let writer = open_writer(&path);
    let reader = Engine::open_read_only(&path).expect("reader test");
    assert!(reader.is_read_only() && !writer.is_read_only());
    assert_eq!(reader.count(), 0);
    for i in 0..300 {
        step(&writer, i);
        // Every commit is visible at the reader's next read, across checkpoints and WAL
        // rotations (every few dozen commits here).
        assert_eq!(reader.count(), (i + 1).min(WINDOW));
        if i.is_multiple_of(37) {
            let recs: Vec<Record> = reader.iter().map(|r| r.expect("reader test")).collect();
            assert_eq!(check_window(&recs), Some(i));
            assert_eq!(reader.get(&format!("r{i}")).expect("reader test").expect("reader test").vector[0], i as f32);
        }
        if i.is_multiple_of(50) {
            writer.checkpoint().expect("reader test");
        }
    }
    let s = reader.stats();
    assert!(s.read_only && s.last_lsn == writer.stats().last_lsn, "{s:?}");
    assert!(s.checkpoint_lsn > 0);
    // The writer closes; the reader keeps answering, from the closed store.
    writer.close().expect("reader test");
    assert_eq!(reader.search(&[299.0, 1.0, 0.0, 0.0], 1, None).expect("reader test")[0].id, "r299");
    // Another writer opens it while the reader is open, and writes.
    let writer = open_writer(&path);
    step(&writer, 300);
    assert_eq!(reader.get("r300").expect("reader test").expect("reader test").text.as_deref(), Some("t300"));
    drop(writer);
}

#[test]
fn a_reader_refuses_every_write() {
    let tmp = tempfile::tempdir().expect("reader test");
    let path = tmp.path().join("s");
    let writer = open_writer(&path);
    step(&writer, 0);
    let reader = Engine::builder(&path).read_only().open().expect("reader test");
    let read_only = |r: memento::Result<()>| matches!(r, Err(Error::ReadOnly { .. }));
    assert!(read_only(reader.add(Record::new("x", vec![0.0; 4])).map(drop)));
    assert!(read_only(reader.upsert(Record::new("x", vec![0.0; 4])).map(drop)));
    assert!(read_only(reader.delete("r0").map(drop)));
    assert!(read_only(reader.delete_where(&Filter::from_json_str("{}").expect("reader test")).map(drop)));
    assert!(read_only(reader.update_metadata("r0", None)));
    assert!(read_only(reader.checkpoint()));
    assert!(read_only(reader.sync()));
    let err = reader.add(Record::new("x", vec![0.0; 4])).expect_err("refused");
    assert!(err.to_string().contains("read-only"), "{err}");
    // Nothing was written: the writer's store is as it was, and closing the reader writes nothing.
    let before = std::fs::metadata(path.join("memento.vec")).expect("reader test").len();
    reader.close().expect("reader test");
    assert_eq!(std::fs::metadata(path.join("memento.vec")).expect("reader test").len(), before);
    assert_eq!(writer.count(), 1);
    // A second writer is still refused at once, naming the holder.
    assert!(matches!(Engine::open(&path), Err(Error::Locked { .. })));
}

#[test]
fn a_reader_needs_a_store() {
    let tmp = tempfile::tempdir().expect("reader test");
    let err = Engine::open_read_only(tmp.path().join("none")).expect_err("refused");
    assert!(err.to_string().contains("there is no store"), "{err}");
    assert!(!tmp.path().join("none").exists(), "a reader creates nothing");
    // And it checks the options it is given against the store.
    let path = tmp.path().join("s");
    open_writer(&path).close().expect("reader test");
    assert!(matches!(Engine::builder(&path).read_only().dimension(5).open(), Err(Error::Incompatible { .. })));
}
