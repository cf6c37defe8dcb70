//! I/O fault countdown: the Nth write, fsync, set_len or rename fails (EIO, ENOSPC, or a short
//! write), either once (every later call works again) or forever (every one after it fails too),
//! for every N until the workload completes. The error reaches
//! the caller typed, the engine refuses further writes (poisoned), and reopening shows the last
//! acknowledged commit (or the failed one, if its bytes happened to reach the file whole).

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memento::storage::{LockError, Mapping, MemStorage, Storage, StorageFile, StoreLock};
use memento::{Durability, Engine, Error, Metric, Record, WriteBatch};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Eio,
    Enospc,
    Short,
}

struct Faults {
    countdown: AtomicU64,
    kind: Kind,
    /// Only the Nth call fails; the ones after it work.
    once: bool,
    injected: AtomicU64,
}

impl Faults {
    /// Whether this operation fails: the Nth, and with `once` false every later one.
    fn hit(&self) -> Option<io::Error> {
        let before = self.countdown.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| Some(c.saturating_sub(1))).unwrap_or(0);
        if before == 1 || (before == 0 && !self.once) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            Some(match self.kind {
                Kind::Enospc => io::Error::from_raw_os_error(28),
                _ => io::Error::from_raw_os_error(5),
            })
        } else {
            None
        }
    }
}

struct FaultStorage {
    inner: MemStorage,
    faults: Arc<Faults>,
}

struct FaultFile {
    inner: Arc<dyn StorageFile>,
    faults: Arc<Faults>,
}

impl StorageFile for FaultFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if let Some(e) = self.faults.hit() {
            if matches!(self.faults.kind, Kind::Short) && buf.len() > 1 {
                self.inner.write_all_at(&buf[..buf.len() / 2], offset)?;
            }
            return Err(e);
        }
        self.inner.write_all_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        match self.faults.hit() {
            Some(e) => Err(e),
            None => self.inner.set_len(len),
        }
    }
    fn sync_all(&self) -> io::Result<()> {
        self.faults.hit().map_or(Ok(()), Err)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.faults.hit().map_or(Ok(()), Err)
    }
    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping> {
        self.inner.map(offset, len)
    }
}

impl Storage for FaultStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let inner = self.inner.open(name, create)?;
        Ok(Arc::new(FaultFile { inner, faults: Arc::clone(&self.faults) }))
    }
    fn exists(&self, name: &str) -> io::Result<bool> {
        self.inner.exists(name)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        match self.faults.hit() {
            Some(e) => Err(e),
            None => self.inner.rename(from, to),
        }
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.faults.hit().map_or(Ok(()), Err)
    }
    fn lock(&self) -> Result<Box<dyn StoreLock>, LockError> {
        self.inner.lock()
    }
    fn dir_path(&self) -> Option<&std::path::Path> {
        None
    }
}

type Model = BTreeMap<String, Vec<f32>>;

/// A workload of 30 batches with adds, upserts and deletes; the WAL limit is small so that
/// checkpoints (page writes, superblock, WAL rotation) happen several times.
fn batches() -> Vec<Vec<(String, Option<Vec<f32>>)>> {
    (0..30)
        .map(|b| {
            (0..5)
                .map(|i| {
                    let id = format!("r{}", (b * 3 + i) % 40);
                    if (b + i) % 4 == 3 {
                        (id, None)
                    } else {
                        (id, Some(vec![b as f32, i as f32, 1.0, (b * i) as f32]))
                    }
                })
                .collect()
        })
        .collect()
}

fn apply(m: &mut Model, batch: &[(String, Option<Vec<f32>>)]) {
    for (id, v) in batch {
        match v {
            Some(v) => m.insert(id.clone(), v.clone()),
            None => m.remove(id),
        };
    }
}

fn contents(e: &Engine) -> Model {
    e.iter().map(|r| r.expect("iterates")).map(|r| (r.id, r.vector)).collect()
}

fn run_with_fault(n: u64, kind: Kind, once: bool) -> (bool, u64) {
    let mem = MemStorage::new();
    let open = |s: Arc<dyn Storage>| {
        Engine::builder_with_storage(s).dimension(4).metric(Metric::L2).page_size(8192).wal_limit(2048).durability(Durability::Sync).open()
    };
    open(Arc::new(mem.clone())).expect("create").close().expect("close");
    let faults = Arc::new(Faults { countdown: AtomicU64::new(n), kind, once, injected: AtomicU64::new(0) });
    let mut acked = Model::new();
    let mut failed_batch = None;
    match open(Arc::new(FaultStorage { inner: mem.clone(), faults: Arc::clone(&faults) })) {
        Err(e) => assert!(matches!(e, Error::Io { .. }), "open under fault {n}: {e}"),
        Ok(engine) => {
            for batch in batches() {
                let mut wb = WriteBatch::new();
                for (id, v) in &batch {
                    match v {
                        Some(v) => wb.upsert(Record::new(id.clone(), v.clone())),
                        None => wb.delete(id.clone()),
                    };
                }
                match engine.write(wb) {
                    Ok(_) => apply(&mut acked, &batch),
                    Err(e) => {
                        assert!(matches!(e, Error::Io { .. }), "fault {n} ({kind:?}): the first failure must be an I/O error, got {e}");
                        failed_batch = Some(batch);
                        break;
                    }
                }
            }
            if failed_batch.is_some() {
                // Sticky: nothing more is written, with a typed error, even once I/O works.
                faults.countdown.store(u64::MAX, Ordering::SeqCst);
                let again = engine.add(Record::new("late", vec![1.0, 2.0, 3.0, 4.0]));
                assert!(matches!(again, Err(Error::Poisoned { .. })), "fault {n}: after a failure, writes must be refused: {again:?}");
                assert!(matches!(engine.checkpoint(), Err(Error::Poisoned { .. })));
                // Reads still work and show at least everything acknowledged.
                assert!(engine.count() >= acked.len() as u64 || failed_batch.is_some());
            }
            engine.abandon();
        }
    }
    let injected = faults.injected.load(Ordering::SeqCst);
    // Reopen without faults: the last acknowledged state, or that plus the failed batch.
    let engine = open(Arc::new(mem)).unwrap_or_else(|e| panic!("fault {n} ({kind:?}): reopening failed: {e}"));
    engine.check_integrity().unwrap_or_else(|e| panic!("fault {n} ({kind:?}): integrity: {e}"));
    let got = contents(&engine);
    let mut with_failed = acked.clone();
    if let Some(b) = &failed_batch {
        apply(&mut with_failed, b);
    }
    assert!(got == acked || got == with_failed, "fault {n} ({kind:?}): reopened state is neither the acknowledged one nor that plus the failed batch");
    engine.close().expect("close");
    (failed_batch.is_none() && injected == 0, injected)
}

#[test]
fn every_fault_position_of_the_workload() {
    for (kind, once) in [Kind::Eio, Kind::Enospc, Kind::Short].into_iter().flat_map(|k| [(k, false), (k, true)]) {
        let mut n = 1;
        let mut positions = 0;
        loop {
            let (clean, _) = run_with_fault(n, kind, once);
            if clean {
                break;
            }
            positions += 1;
            n += 1;
            assert!(n < 10_000, "the workload never completes");
        }
        assert!(positions > 100, "{kind:?}: only {positions} fault positions; the workload does too little I/O");
        let mode = if once { "once" } else { "forever" };
        eprintln!("{kind:?} {mode}: {positions} fault positions, each recovered");
    }
}
