//! An engine belongs to the process that opened it (issue 13, item 1): a forked child's
//! operations are refused with `Error::ForkedProcess`, dropping the inherited engine in the
//! child writes nothing (files byte-identical after the child exits), and the parent's writes
//! survive. One test per step, each forking from a test thread: the child only returns an exit
//! code through `_exit`, so nothing of the test harness runs in it.

#![allow(unsafe_code, reason = "fork, waitpid and _exit through libc")]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use memento::embed::{Embedder, ModelIdentity, Progress};
use memento::{Durability, Engine, Error, Filter, Memory, Metric, Record, SearchOptions, WriteBatch};

/// The tests of this file run one at a time: a fork in one test's thread would copy the other
/// tests' open descriptors (their `LOCK` files included) into its child, and a store whose
/// `LOCK` a live child still holds cannot be reopened until the child exits.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every file of the store directory: its length and a 64-bit FNV-1a hash of its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, (usize, u64)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        let bytes = std::fs::read(e.path()).expect("read");
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        out.insert(e.file_name().to_string_lossy().into_owned(), (bytes.len(), hash));
    }
    out
}

/// Runs `child` in a forked child and returns its exit status (the child `_exit`s with what
/// `child` returns, running nothing else).
fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: fork has no preconditions; the child runs `child` (which only calls the engine,
    // whose first step is the process check, takes no lock and never returns a borrowed lock
    // to the caller) and then `_exit`s without unwinding or running atexit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(99);
        // SAFETY: _exit ends the child at once; nothing is borrowed across it.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `status` is a valid pointer to an int; `pid` is our child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(status), "the child did not exit normally (status {status})");
    libc::WEXITSTATUS(status)
}

/// 0 if `r` is the fork error naming `parent` as the opener and another process as current.
fn forked<T>(r: memento::Result<T>, parent: u32, code: i32) -> i32 {
    match r {
        Err(Error::ForkedProcess { opener, current }) if opener == parent && current != parent => 0,
        _ => code,
    }
}

/// A deterministic 2-d "model", so that the text paths (and the persisted embedding cache) run
/// without the real one.
struct TinyModel(ModelIdentity);
impl Embedder for TinyModel {
    fn identity(&self) -> &ModelIdentity {
        &self.0
    }
    fn embed_batch(&self, texts: &[&str], _: Option<Progress<'_>>) -> memento::Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| vec![1.0, t.len() as f32]).collect())
    }
}

fn tiny_model() -> Arc<dyn Embedder> {
    Arc::new(TinyModel(ModelIdentity { id: "tiny-test-model".into(), dim: 2, hash: [3; 32] }))
}

#[test]
fn a_forked_childs_write_is_refused_and_the_parents_writes_survive() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tmp");
    let parent = std::process::id();
    let e = Engine::builder(dir.path()).dimension(2).metric(Metric::L2).open().expect("open");
    e.add(Record::new("base", vec![0.5, 0.5])).expect("add base");
    // The reproduction: the child adds through the parent's engine.
    let code = in_child(|| forked(e.add(Record::new("child", vec![1.0, 1.0])), parent, 1));
    assert_eq!(code, 0, "the child's add must fail with Error::ForkedProcess (exit 1: it succeeded)");
    e.add(Record::new("parent", vec![2.0, 2.0])).expect("add parent");
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    assert_eq!(e.count(), 2);
    assert_eq!(e.get("parent").expect("get").expect("parent is there").vector, vec![2.0, 2.0]);
    assert!(e.get("child").expect("get").is_none());
    e.check_integrity().expect("the store is intact");
}

#[test]
fn every_operation_is_refused_in_a_forked_child() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tmp");
    let parent = std::process::id();
    let e = Engine::builder(dir.path()).embedder(tiny_model()).metric(Metric::L2).durability(Durability::GroupCommit).open().expect("open");
    e.add(Record::new("a", vec![0.5, 0.5]).with_text("hello")).expect("add");
    e.recall("hello", 1, None).expect("recall");
    let code = in_child(|| {
        let f = Filter::from_json_str("{}").expect("filter");
        let mut b = WriteBatch::new();
        b.delete("a");
        let checks: Vec<i32> = vec![
            forked(e.add(Record::new("b", vec![1.0, 1.0])), parent, 10),
            forked(e.upsert(Record::new("a", vec![1.0, 1.0])), parent, 11),
            forked(e.delete("a"), parent, 12),
            forked(e.delete_where(&f), parent, 13),
            forked(e.update_metadata("a", None), parent, 14),
            forked(e.update_text("a", Some("x".into())), parent, 15),
            forked(e.write(b), parent, 16),
            forked(e.sync(), parent, 17),
            forked(e.checkpoint(), parent, 18),
            forked(e.get("a"), parent, 19),
            forked(e.get_where(&f, None), parent, 20),
            forked(e.contains("a"), parent, 21),
            forked(e.search(&[0.5, 0.5], 1, None), parent, 22),
            forked(e.search_batch(&[0.5, 0.5], &SearchOptions::new(1)), parent, 23),
            forked(e.check_integrity(), parent, 24),
            forked(e.iter().next().expect("one item"), parent, 25),
            forked(e.remember("hi", None), parent, 26),
            forked(e.remember_batch(vec![Memory::new("hi")], None), parent, 27),
            forked(e.recall("hello", 1, None), parent, 28),
            forked(e.embed("hello"), parent, 29),
        ];
        // The infallible getters cannot return the error: they panic with it, before any lock.
        let panics = |f: &dyn Fn()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
        if !panics(&|| {
            let _ = e.count();
        }) || !panics(&|| drop(e.stats()))
            || !panics(&|| {
                let _ = e.cache_stats();
            })
        {
            return 30;
        }
        checks.into_iter().find(|&c| c != 0).unwrap_or(0)
    });
    assert_eq!(code, 0, "exit code {code}: the operation numbered so was not refused with Error::ForkedProcess");
    // And the child's close: refused, and its drop (a leak) leaves the parent's engine working.
    let mut slot = Some(e);
    let code = in_child(|| slot.take().map_or(2, |e| forked(e.close(), parent, 1)));
    assert_eq!(code, 0, "close in the child must be refused");
    let e = slot.expect("the parent's engine is untouched by the child");
    e.add(Record::new("b", vec![1.0, 1.0])).expect("the parent still writes");
    e.close().expect("close");
}

#[test]
fn a_forked_childs_drop_writes_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).embedder(tiny_model()).metric(Metric::L2).open().expect("open");
    // Pending commits (a drop in the opener would checkpoint them), an open mirror and an
    // open persisted embedding cache (a query is cached there).
    for i in 0..20 {
        e.add(Record::new(format!("r{i}"), vec![i as f32, 1.0]).with_text(format!("text {i}"))).expect("add");
    }
    e.recall("a query", 3, None).expect("recall");
    let before = snapshot(dir.path());
    assert!(before.contains_key("memento.embeddings.sqlite"), "the embedding cache is open: {:?}", before.keys());
    let mut slot = Some(e);
    let code = in_child(|| {
        drop(slot.take());
        0
    });
    assert_eq!(code, 0);
    assert_eq!(snapshot(dir.path()), before, "the child's drop changed the store's files");
    // The parent's engine still holds everything, and its close checkpoints it.
    let e = slot.expect("the parent's engine");
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    assert_eq!(e.count(), 20);
    e.check_integrity().expect("intact");
}

#[test]
fn the_parent_keeps_its_lock_and_its_store_after_the_child_drops_its_copy() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).dimension(2).open().expect("open");
    e.add(Record::new("base", vec![0.5, 0.5])).expect("add");
    let code = in_child(|| {
        match Engine::open(dir.path()) {
            Err(Error::Locked { .. }) => {}
            _ => return 40,
        }
        0
    });
    assert_eq!(code, 0, "the store must stay locked against a second open in the child");
    // The child's copy of the lock file was closed when it exited: the parent still holds it.
    assert!(matches!(Engine::open(dir.path()), Err(Error::Locked { .. })), "the parent lost its lock");
    e.add(Record::new("after", vec![1.0, 0.5])).expect("the parent still writes");
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("reopen");
    assert_eq!(e.count(), 2);
    e.check_integrity().expect("intact");
}

/// A child that still holds the inherited engine (a `multiprocessing` worker that lives on)
/// must not keep the store locked once the parent has closed it: the `flock` belongs to the open
/// file description the child shares, so the parent's close unlocks explicitly.
#[test]
fn a_live_child_does_not_keep_the_store_locked_after_the_parent_closes() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).dimension(2).open().expect("open");
    e.add(Record::new("base", vec![0.5, 0.5])).expect("add");
    // The child waits on a pipe, holding its inherited copy of everything, until the parent has
    // closed and reopened the store.
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: as in `in_child`; the child only blocks on read(2) and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a valid one-byte buffer from our pipe's read end.
        unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
        // SAFETY: _exit ends the child at once.
        unsafe { libc::_exit(0) };
    }
    e.close().expect("close");
    let reopened = Engine::open(dir.path());
    // SAFETY: writing one byte from a valid buffer to our pipe's write end, then reaping the child.
    unsafe {
        libc::write(fds[1], b"x".as_ptr().cast(), 1);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    let e = reopened.expect("the parent reopens its store while the child still lives");
    assert_eq!(e.count(), 1);
}

/// The real model, loaded and run in the parent, is refused in a forked child (its ONNX Runtime
/// threads and the tokenizer's thread pool do not exist there; running it could hang), for
/// `embed_batch` and `tokenize` alike, and it still runs in the parent afterwards. The child
/// has 30 s before SIGALRM ends it, so a hang fails the test instead of stalling it.
#[test]
fn the_model_is_refused_in_a_forked_child_and_still_runs_in_the_parent() {
    let _s = serial();
    let dir = memento::embed::model_dir(memento::embed::DEFAULT_MODEL);
    let model =
        memento::embed::OnnxEmbedder::load(&dir, &Default::default()).unwrap_or_else(|e| panic!("the default model must be provisioned (make setup): {e}"));
    let texts = ["one text", "and another, longer text to make a batch"];
    let before = model.embed_batch(&texts, None).expect("embed in the parent");
    let parent = std::process::id();
    let code = in_child(|| {
        // SAFETY: alarm only arms a timer for this process.
        unsafe { libc::alarm(30) };
        forked(model.embed_batch(&texts, None), parent, 1) + forked(model.tokenize(&texts), parent, 2)
    });
    assert_eq!(code, 0, "the child's use of the model was not refused with ForkedProcess");
    assert_eq!(model.embed_batch(&texts, None).expect("embed in the parent after the fork"), before);
}
