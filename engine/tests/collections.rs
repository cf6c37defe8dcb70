//! A directory of collections (FORMAT.md §8): the operations, the names, the errors, leftovers
//! after a crash, a collection held open by another process, and a kill -9 loop over a process
//! that creates, renames, deletes and writes collections.
//!
//! The second process is this test binary itself, re-executed with `MEMENTO_COLL_CHILD` set to
//! the root: the `collections_child` test then does what `MEMENTO_COLL_CHILD_MODE` says (`hold`:
//! open the collection `held`, report, sleep until killed; `churn`: create, write, rename and
//! delete collections until killed). In a normal run it does nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use common::child::Killed;
use memento::{check_collection_name, Collections, Durability, Engine, Error, Metric, Record};

/// One test at a time: a child spawned by one test briefly holds copies of this process's file
/// descriptors (between `fork` and `exec`), including a store's `flock`ed `LOCK`.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

const CHILD_ENV: &str = "MEMENTO_COLL_CHILD";
const MODE_ENV: &str = "MEMENTO_COLL_CHILD_MODE";
const TAG: &str = "MEMENTO-COLL-CHILD:";

fn dim3(b: memento::EngineBuilder) -> memento::EngineBuilder {
    b.dimension(3)
}

#[test]
fn operations() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let c = Collections::open(&root).unwrap();
    assert_eq!(std::fs::read_to_string(root.join("memento.collections")).unwrap(), "memento collections 1\n");
    assert!(c.list().unwrap().is_empty());

    let a = c.create("alpha", dim3).unwrap();
    a.add(Record::new("x", vec![1.0, 0.0, 0.0])).unwrap();
    a.add(Record::new("y", vec![0.0, 1.0, 0.0])).unwrap();
    a.close().unwrap();
    let b = c.create("beta", |b| b.dimension(4).metric(Metric::L2)).unwrap();
    b.close().unwrap();
    assert!(matches!(c.create("alpha", dim3), Err(Error::CollectionExists { name }) if name == "alpha"));
    assert!(matches!(c.get("gamma"), Err(Error::CollectionNotFound { name }) if name == "gamma"));

    let list = c.list().unwrap();
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    let alpha = list[0].store.as_ref().unwrap();
    assert_eq!((alpha.dimension, alpha.metric, alpha.model.is_none()), (3, Metric::Cosine, true));
    assert_eq!((list[0].count, list[1].count), (Some(2), Some(0)));
    let beta = list[1].store.as_ref().unwrap();
    assert_eq!((beta.dimension, beta.metric), (4, Metric::L2));

    // Each collection is an ordinary store with its own contents.
    let a = c.get("alpha").unwrap();
    assert_eq!(a.count(), 2);
    a.check_integrity().unwrap();
    a.close().unwrap();
    assert_eq!(Engine::open(root.join("alpha")).unwrap().count(), 2);

    // get_or_create: the existing one, then a new one.
    let a = c.get_or_create("alpha", dim3).unwrap();
    assert_eq!(a.count(), 2);
    a.close().unwrap();
    let g = c.get_or_create("gamma", |b| b.dimension(5)).unwrap();
    assert_eq!(g.dimension(), 5);
    g.close().unwrap();

    c.rename("alpha", "delta").unwrap();
    assert!(!root.join("alpha").exists());
    assert_eq!(c.get("delta").unwrap().count(), 2);
    assert!(matches!(c.rename("delta", "beta"), Err(Error::CollectionExists { name }) if name == "beta"));
    assert!(matches!(c.rename("alpha", "omega"), Err(Error::CollectionNotFound { .. })));

    c.delete("beta").unwrap();
    assert!(!root.join("beta").exists(), "deleting frees the space: the directory is gone");
    assert!(matches!(c.delete("beta"), Err(Error::CollectionNotFound { .. })));
    let names: Vec<String> = c.list().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["delta", "gamma"]);
    // Reopening the root finds the same.
    assert_eq!(Collections::open(&root).unwrap().names().unwrap().len(), 2);
    assert!(c.leftovers().unwrap().is_empty());
    // A failed create leaves nothing behind.
    assert!(matches!(c.create("nodim", |b| b), Err(Error::InvalidArgument { .. })));
    assert!(!root.join("nodim").exists());
    assert!(c.leftovers().unwrap().is_empty());
}

#[test]
fn names() {
    for ok in ["abc", "my-collection_1.v2", "A1B", "0.1.2", "1.2.3.4.5", &"a".repeat(512)] {
        check_collection_name(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    for bad in ["ab", "", &"a".repeat(513), ".abc", "abc.", "-abc", "abc_", "a..b", "a b c", "a/bc", "ab\u{e9}", "192.168.0.1", "1.2.3.4"] {
        assert!(matches!(check_collection_name(bad), Err(Error::InvalidArgument { .. })), "{bad:?} accepted");
    }
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(dir.path()).unwrap();
    for op in [c.create("..", dim3).map(drop), c.get("x/y").map(drop), c.delete("a"), c.rename("abc", "a..b")] {
        assert!(matches!(op, Err(Error::InvalidArgument { .. })), "{op:?}");
    }
    assert!(!dir.path().join("..").join("memento.vec").exists());
}

#[test]
fn stores_and_roots_are_not_confused() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    Engine::builder(&store).dimension(3).open().unwrap().close().unwrap();
    let e = Collections::open(&store).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("is a store"), "{e}");
    assert!(!store.join("memento.collections").exists());
    assert!(Collections::open_existing(&store).unwrap_err().to_string().contains("is a store"));

    let root = dir.path().join("root");
    Collections::open(&root).unwrap();
    for e in [Engine::builder(&root).dimension(3).open().map(drop), Engine::open(&root).map(drop), Engine::open_read_only(&root).map(drop)] {
        let e = e.unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("directory of collections"), "{e}");
    }
    assert!(!root.join("memento.vec").exists() && !root.join("LOCK").exists());

    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    assert!(Collections::open_existing(&plain).unwrap_err().to_string().contains("not a directory of collections"));
    assert!(Collections::open_existing(dir.path().join("missing")).unwrap_err().to_string().contains("does not exist"));
    std::fs::write(plain.join("memento.collections"), "memento collections 7\n").unwrap();
    assert!(matches!(Collections::open_existing(&plain), Err(Error::Incompatible { .. })));
}

#[test]
fn leftovers_of_a_crash_are_removed() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let c = Collections::open(root).unwrap();
    c.create("kept", dim3).unwrap().close().unwrap();
    // What a create killed before its rename and a delete killed after its rename leave.
    Engine::builder(root.join(".half.new-4242")).dimension(3).open().unwrap().close().unwrap();
    std::fs::create_dir(root.join(".deleted-gone-4242-17")).unwrap();
    std::fs::write(root.join(".deleted-gone-4242-17").join("memento.vec"), b"x").unwrap();
    std::fs::write(root.join(".memento.collections.new-4242"), b"memento").unwrap();
    assert_eq!(c.leftovers().unwrap().len(), 3);
    assert_eq!(c.names().unwrap(), ["kept"]);
    let c = Collections::open(root).unwrap();
    assert!(c.leftovers().unwrap().is_empty());
    let mut entries: Vec<String> = std::fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    entries.sort();
    assert_eq!(entries, ["CATALOG.lock", "kept", "memento.collections"]);
}

#[test]
fn an_open_collection_is_in_use() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(dir.path()).unwrap();
    let held = c.create("held", dim3).unwrap();
    let me = std::process::id();
    assert!(matches!(c.delete("held"), Err(Error::CollectionInUse { name, pid }) if name == "held" && pid == me));
    assert!(matches!(c.rename("held", "other"), Err(Error::CollectionInUse { pid, .. }) if pid == me));
    held.close().unwrap();
    c.rename("held", "other").unwrap();
    c.delete("other").unwrap();
    assert!(c.list().unwrap().is_empty());
}

/// Child mode only (does nothing unless `MEMENTO_COLL_CHILD` is set).
#[test]
fn collections_child() {
    let Ok(root) = std::env::var(CHILD_ENV) else { return };
    let mode = std::env::var(MODE_ENV).unwrap_or_default();
    let c = Collections::open(&root).expect("child: open the root");
    if mode == "hold" {
        let e = c.get("held").expect("child: open the collection");
        e.add(Record::new("child", vec![1.0, 2.0, 3.0])).expect("child: add");
        println!("{TAG} OPENED pid={}", std::process::id());
        std::thread::sleep(Duration::from_secs(60));
        e.abandon();
        std::process::exit(3);
    }
    churn(&c);
}

/// Creates, writes, renames and deletes collections `col0` .. `col4` at random, until killed.
fn churn(c: &Collections) {
    let mut x = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    println!("{TAG} STARTED");
    for i in 0u64.. {
        let name = format!("col{}", next(5));
        let other = format!("col{}", next(5));
        match next(4) {
            0 | 1 => {
                let e = c.get_or_create(&name, |b| b.dimension(3).durability(Durability::Sync).wal_limit(4096)).expect("child: get_or_create");
                for j in 0..5 {
                    e.upsert(Record::new(format!("r{}", next(20)), vec![j as f32, 1.0, i as f32]).with_text("t")).expect("child: upsert");
                }
                e.close().expect("child: close");
            }
            2 => match c.rename(&name, &other) {
                Ok(()) | Err(Error::CollectionNotFound { .. } | Error::CollectionExists { .. }) => {}
                Err(e) => panic!("child: rename: {e}"),
            },
            _ => match c.delete(&name) {
                Ok(()) | Err(Error::CollectionNotFound { .. }) => {}
                Err(e) => panic!("child: delete: {e}"),
            },
        }
    }
}

fn spawn_child(root: &Path, mode: &str) -> (Killed, std::sync::mpsc::Receiver<String>) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "collections_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, root)
        .env(MODE_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = Killed(cmd.spawn().unwrap());
    let rx = child.tagged_lines(TAG);
    (child, rx)
}

#[test]
fn a_collection_open_in_another_process_is_in_use() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(dir.path()).unwrap();
    c.create("held", dim3).unwrap().close().unwrap();
    let (mut child, rx) = spawn_child(dir.path(), "hold");
    let line = rx.recv_timeout(Duration::from_secs(30)).expect("the child reports");
    let pid: u32 = line.strip_prefix("OPENED pid=").unwrap().parse().unwrap();
    assert_eq!(pid, child.0.id());
    assert!(matches!(c.delete("held"), Err(Error::CollectionInUse { pid: p, .. }) if p == pid));
    assert!(matches!(c.rename("held", "moved"), Err(Error::CollectionInUse { pid: p, .. }) if p == pid));
    assert!(dir.path().join("held").join("memento.vec").exists());
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    c.rename("held", "moved").unwrap();
    let e = c.get("moved").unwrap();
    assert_eq!(e.count(), 1);
    e.close().unwrap();
    c.delete("moved").unwrap();
    assert!(c.list().unwrap().is_empty());
}

#[test]
fn kill_loop() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    Collections::open(root).unwrap();
    let rounds: u64 = std::env::var("MEMENTO_KILL_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut seen = 0;
    for round in 0..rounds {
        let (mut child, rx) = spawn_child(root, "churn");
        rx.recv_timeout(Duration::from_secs(30)).expect("the child starts");
        std::thread::sleep(Duration::from_millis(30 + (round * 37) % 170));
        child.0.kill().unwrap();
        child.0.wait().unwrap();

        let c = Collections::open(root).unwrap();
        assert!(c.leftovers().unwrap().is_empty(), "round {round}");
        for info in c.list().unwrap() {
            let store = info.store.unwrap_or_else(|e| panic!("round {round}: {} is half made: {e}", info.name));
            assert_eq!(store.dimension, 3);
            let e = c.get(&info.name).unwrap_or_else(|e| panic!("round {round}: {}: {e}", info.name));
            e.check_integrity().unwrap_or_else(|err| panic!("round {round}: {}: {err}", info.name));
            e.close().unwrap();
            seen += 1;
        }
    }
    assert!(seen > 0, "the children never made a collection");
}
