//! The store lock across processes and within one.
//!
//! The second process is this test binary itself, re-executed with `MEMENTO_LOCK_CHILD` set to
//! the store's path: the `lock_child` test then opens the store and reports on stdout, and
//! `MEMENTO_LOCK_CHILD_MODE` says what it does next (`once`: exit; `hold`: write records, report,
//! and sleep until killed). In a normal run `lock_child` does nothing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use memento::{Durability, Engine, Error, Metric, Record};

/// The tests of this file run one at a time. A child process spawned by one test briefly holds
/// copies of all of this process's file descriptors (between `fork` and `exec`, before
/// close-on-exec applies), including the `flock`ed `LOCK` file of a store another test has open:
/// closing that store and reopening it at that moment would see `Locked` from ourselves.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

const CHILD_ENV: &str = "MEMENTO_LOCK_CHILD";
const MODE_ENV: &str = "MEMENTO_LOCK_CHILD_MODE";
/// Prefix of the lines the child writes, so they stand out from the test harness's output.
const TAG: &str = "MEMENTO-CHILD:";

/// Child mode only (does nothing unless `MEMENTO_LOCK_CHILD` is set).
#[test]
fn lock_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mode = std::env::var(MODE_ENV).unwrap_or_else(|_| "once".into());
    if let Some(durability) = mode.strip_prefix("write-") {
        write_until_killed(&path, durability);
        return;
    }
    match Engine::open(&path) {
        Ok(engine) => {
            if mode == "hold" {
                for i in 0..10 {
                    engine.add(Record::new(format!("child-{i}"), vec![1.0, i as f32, 0.5])).expect("child add");
                }
                println!("{TAG} OPENED pid={}", std::process::id());
                // Sleep until killed (with a generous upper bound so nothing lingers forever).
                std::thread::sleep(Duration::from_secs(120));
                println!("{TAG} TIMEOUT");
                engine.abandon();
                std::process::exit(3);
            }
            let n = engine.count();
            engine.close().expect("child close");
            println!("{TAG} OPENED count={n}");
        }
        Err(Error::Locked { pid, .. }) => println!("{TAG} LOCKED pid={pid}"),
        Err(e) => println!("{TAG} ERROR {e}"),
    }
}

/// Child mode `write-<durability>`: adds records `w0, w1, ...` one commit each, reporting each
/// acknowledged one, until killed. A small WAL limit makes checkpoints happen all the time.
fn write_until_killed(path: &str, durability: &str) {
    let durability = match durability {
        "sync" => Durability::Sync,
        "group" => Durability::GroupCommit,
        "buffered" => Durability::Buffered,
        other => panic!("unknown durability {other}"),
    };
    let engine = Engine::builder(path).durability(durability).wal_limit(8192).open().expect("child open");
    println!("{TAG} OPENED pid={}", std::process::id());
    for i in 0..1_000_000u32 {
        let r = Record::new(format!("w{i}"), vec![i as f32, 1.0, 2.0]).with_text(format!("written by the child, number {i}"));
        engine.add(r).expect("child add");
        if i % 10 == 3 {
            engine.update_text(&format!("w{}", i - 1), Some(format!("updated {i}"))).expect("child update");
        }
        println!("{TAG} ACK {i}");
    }
    engine.abandon();
}

fn child_command(path: &Path, mode: &str) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut c = Command::new(exe);
    c.args(["--exact", "lock_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .env(MODE_ENV, mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    c
}

/// The report in a line of the child's stdout. The harness may print `test lock_child ... ` on
/// the same line before it, so the tag is searched anywhere in the line.
fn after_tag(line: &str) -> Option<&str> {
    line.find(TAG).map(|i| &line[i + TAG.len()..])
}

/// Runs a `once` child to completion and returns its report line (without the tag).
fn run_child_once(path: &Path) -> String {
    let out = child_command(path, "once").output().expect("spawning the child");
    assert!(out.status.success(), "child failed: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stdout));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(after_tag).unwrap_or_else(|| panic!("no report from the child:\n{stdout}"));
    line.trim().to_string()
}

/// Kills the child on drop, so a failing assertion leaves no process behind.
struct Held(Child);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a `hold` child and waits for it to report that it holds the store.
fn spawn_holder(path: &Path) -> Held {
    let mut child = Held(child_command(path, "hold").spawn().expect("spawning the child"));
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(r) = after_tag(&line) {
                let _ = tx.send(r.trim().to_string());
            }
        }
    });
    let report = rx.recv_timeout(Duration::from_secs(60)).expect("the holding child did not report in time");
    assert_eq!(report, format!("OPENED pid={}", child.0.id()), "holding child");
    child
}

fn create_store(path: &Path) {
    let e = Engine::builder(path).dimension(3).metric(Metric::L2).open().expect("create");
    e.add(Record::new("parent-0", vec![0.0, 0.0, 1.0])).expect("add");
    e.close().expect("close");
}

#[test]
fn second_process_is_locked_out_while_this_one_holds_the_store() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    create_store(&path);

    let engine = Engine::open(&path).expect("open");
    let report = run_child_once(&path);
    assert_eq!(report, format!("LOCKED pid={}", std::process::id()), "the child must see our pid");
    // The store still works for the holder.
    engine.add(Record::new("parent-1", vec![1.0, 0.0, 0.0])).expect("add while holding");
    engine.close().expect("close");

    let report = run_child_once(&path);
    assert_eq!(report, "OPENED count=2", "after close the child opens the store");
    // And the child released it again when it closed.
    let engine = Engine::open(&path).expect("reopen after the child");
    assert_eq!(engine.count(), 2);
    engine.close().expect("close");
}

#[test]
fn lock_is_released_when_the_holder_is_killed() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    create_store(&path);

    let mut holder = spawn_holder(&path);
    let child_pid = holder.0.id();
    match Engine::open(&path) {
        Err(Error::Locked { pid, path: p }) => {
            assert_eq!(pid, child_pid, "Locked must name the holding process");
            assert_eq!(p, path);
        }
        other => panic!("expected Error::Locked while the child holds the store, got {other:?}"),
    }
    // Another process sees the same.
    assert_eq!(run_child_once(&path), format!("LOCKED pid={child_pid}"));

    // SIGKILL: no destructor runs in the child.
    holder.0.kill().expect("kill -9");
    let status = holder.0.wait().expect("wait");
    assert!(!status.success(), "the child was killed: {status:?}");

    // The lock died with its holder; the child's acknowledged commits survived.
    let deadline = Instant::now() + Duration::from_secs(10);
    let engine = loop {
        match Engine::open(&path) {
            Ok(e) => break e,
            Err(Error::Locked { .. }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("opening after the holder was killed: {e}"),
        }
    };
    assert_eq!(engine.count(), 11);
    for i in 0..10 {
        let r = engine.get(&format!("child-{i}")).expect("get").expect("the child's record survived");
        assert_eq!(r.vector, vec![1.0, i as f32, 0.5]);
    }
    engine.check_integrity().expect("integrity after the holder was killed");

    // Now we hold it: a new child is locked out and sees our pid.
    assert_eq!(run_child_once(&path), format!("LOCKED pid={}", std::process::id()));
    engine.close().expect("close");
    assert_eq!(run_child_once(&path), "OPENED count=11");
}

#[test]
fn second_engine_in_the_same_process_is_locked_out() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let first = Engine::builder(&path).dimension(3).open().expect("create");
    for attempt in [Engine::open(&path), Engine::builder(&path).dimension(3).open(), Engine::builder(&path).open()] {
        match attempt {
            Err(Error::Locked { pid, path: p }) => {
                assert_eq!(pid, std::process::id());
                assert_eq!(p, path);
                let msg = Error::Locked { pid, path: p }.to_string();
                assert!(msg.contains(&pid.to_string()), "{msg}");
            }
            other => panic!("expected Error::Locked, got {other:?}"),
        }
    }
    // The failed attempts did not disturb the holder.
    first.add(Record::new("x", vec![1.0, 2.0, 3.0])).expect("add");
    first.close().expect("close");
    let second = Engine::open(&path).expect("open after close");
    assert_eq!(second.count(), 1);
    // Dropping (not closing) releases the lock too.
    drop(second);
    let third = Engine::open(&path).expect("open after drop");
    // abandon (simulated crash) releases it as well.
    third.abandon();
    let fourth = Engine::open(&path).expect("open after abandon");
    assert_eq!(fourth.count(), 1);
    fourth.close().expect("close");
}

/// A real `kill -9` of a process in the middle of commits and checkpoints: every commit it had
/// acknowledged is there, nothing else is, and the store is intact.
#[test]
fn kill_during_writes_keeps_every_acknowledged_commit() {
    let _serial = serial();
    for durability in ["sync", "group", "buffered"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store");
        create_store(&path);
        let mut child = Held(child_command(&path, &format!("write-{durability}")).spawn().expect("spawn the writer"));
        let stdout = child.0.stdout.take().expect("piped stdout");
        let mut last_ack: Option<u32> = None;
        let mut opened = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read the child's stdout");
            let Some(report) = after_tag(&line) else { continue };
            let report = report.trim();
            if report.starts_with("OPENED") {
                opened = true;
            } else if let Some(n) = report.strip_prefix("ACK ") {
                let n: u32 = n.parse().expect("ack number");
                last_ack = Some(n);
                if n >= 400 {
                    child.0.kill().expect("kill -9");
                    break;
                }
            } else {
                panic!("unexpected report {report:?}");
            }
        }
        child.0.wait().expect("wait");
        assert!(opened, "{durability}: the child never opened the store");
        let last_ack = last_ack.expect("the child acknowledged nothing");

        let engine = Engine::open(&path).unwrap_or_else(|e| panic!("{durability}: open after kill -9: {e}"));
        engine.check_integrity().unwrap_or_else(|e| panic!("{durability}: integrity after kill -9: {e}"));
        // The records are a prefix w0..w(n-1), with n > last_ack.
        let n = (engine.count() - 1) as u32;
        assert!(n > last_ack, "{durability}: {n} records survived but {last_ack} had been acknowledged");
        for i in 0..n {
            let r = engine.get(&format!("w{i}")).expect("get").unwrap_or_else(|| panic!("{durability}: w{i} is missing ({n} records)"));
            assert_eq!(r.vector, vec![i as f32, 1.0, 2.0], "{durability}: w{i}");
            if i % 10 == 2 && i < last_ack {
                assert_eq!(r.text, Some(format!("updated {}", i + 1)), "{durability}: the update of w{i}");
            }
        }
        assert!(engine.get(&format!("w{n}")).expect("get").is_none());
        let ids: Vec<String> = engine.iter().map(|r| r.expect("iter").id).collect();
        assert_eq!(ids.len() as u64, engine.count());
        assert!(engine.stats().checkpoint_lsn > 0, "{durability}: no checkpoint happened in the child");
        engine.close().expect("close");
    }
}

/// The lock belongs to the directory, not to the path's spelling.
#[test]
fn other_spellings_of_the_path_are_locked_out_too() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let first = Engine::builder(&path).dimension(2).open().expect("create");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&path, &link).expect("symlink");
    for other in [path.join("."), dir.path().join("store/../store"), link.clone(), path.join("")] {
        match Engine::open(&other) {
            Err(Error::Locked { pid, .. }) => assert_eq!(pid, std::process::id(), "{}", other.display()),
            other_result => panic!("{}: expected Locked, got {other_result:?}", other.display()),
        }
    }
    // A different store in the same process is independent.
    let second = Engine::builder(dir.path().join("another")).dimension(2).open().expect("another store");
    second.close().expect("close");
    first.close().expect("close");
    let via_link = Engine::open(&link).expect("open through the symlink");
    via_link.close().expect("close");
}
