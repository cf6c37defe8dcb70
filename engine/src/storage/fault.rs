//! [`FaultStorage`]: a [`Storage`] that makes one chosen I/O call fail, for the fault tests and
//! the fuzzer. Every mutating call (a write, `set_len`, `sync_all`, `sync_data`, `rename`,
//! `sync_dir`) counts down a [`FaultPlan`]; the one that reaches zero fails with EIO or ENOSPC
//! (a short write first lets half of its bytes through), and with [`FaultPlan::once`] false so
//! does every mutating call after it. Reads, `map` and `remove` never fail.
//!
//! Test code only: compiled with the crate's `test-util` feature (and in its unit tests).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::{LockError, Mapping, Storage, StorageFile, StoreLock};

/// How the chosen call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `EIO`.
    Eio,
    /// `ENOSPC`.
    Enospc,
    /// Half of the bytes of a write reach the file, then `EIO`.
    ShortWrite,
}

/// Which call fails, and what has happened so far. Shared by the storage and its files.
#[derive(Debug)]
pub struct FaultPlan {
    countdown: AtomicU64,
    kind: FaultKind,
    once: bool,
    armed: AtomicBool,
    injected: AtomicU64,
}

impl FaultPlan {
    /// The `n`-th mutating call fails (`n` = 0: none does); with `once`, only that one.
    pub fn new(n: u64, kind: FaultKind, once: bool) -> Arc<FaultPlan> {
        Arc::new(FaultPlan { countdown: AtomicU64::new(n), kind, once, armed: AtomicBool::new(n > 0), injected: AtomicU64::new(0) })
    }

    /// From now on every call works (the disk was fixed).
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    /// Whether a call has failed.
    pub fn fired(&self) -> bool {
        self.injected() > 0
    }

    /// How many calls have failed.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Whether this call fails, and with what.
    fn hit(&self) -> Option<io::Error> {
        if !self.armed.load(Ordering::SeqCst) {
            return None;
        }
        let before = self.countdown.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| Some(c.saturating_sub(1))).unwrap_or(0);
        if before == 1 || (before == 0 && !self.once) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            Some(match self.kind {
                FaultKind::Enospc => io::Error::from_raw_os_error(28),
                FaultKind::Eio | FaultKind::ShortWrite => io::Error::from_raw_os_error(5),
            })
        } else {
            None
        }
    }
}

/// A [`Storage`] whose calls fail as its [`FaultPlan`] says; everything else is `inner`'s.
pub struct FaultStorage {
    inner: Arc<dyn Storage>,
    plan: Arc<FaultPlan>,
}

impl FaultStorage {
    /// `inner` with the faults of `plan`.
    pub fn new(inner: Arc<dyn Storage>, plan: Arc<FaultPlan>) -> FaultStorage {
        FaultStorage { inner, plan }
    }
}

struct FaultFile {
    inner: Arc<dyn StorageFile>,
    plan: Arc<FaultPlan>,
}

impl StorageFile for FaultFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        match self.plan.hit() {
            Some(e) => {
                if self.plan.kind == FaultKind::ShortWrite && buf.len() > 1 {
                    self.inner.write_all_at(&buf[..buf.len() / 2], offset)?;
                }
                Err(e)
            }
            None => self.inner.write_all_at(buf, offset),
        }
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.plan.hit().map_or_else(|| self.inner.set_len(len), Err)
    }
    fn sync_all(&self) -> io::Result<()> {
        self.plan.hit().map_or_else(|| self.inner.sync_all(), Err)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.plan.hit().map_or_else(|| self.inner.sync_data(), Err)
    }
    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping> {
        self.inner.map(offset, len)
    }
}

impl Storage for FaultStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let inner = self.inner.open(name, create)?;
        Ok(Arc::new(FaultFile { inner, plan: Arc::clone(&self.plan) }))
    }
    fn exists(&self, name: &str) -> io::Result<bool> {
        self.inner.exists(name)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.plan.hit().map_or_else(|| self.inner.rename(from, to), Err)
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.plan.hit().map_or_else(|| self.inner.sync_dir(), Err)
    }
    fn lock(&self) -> Result<Box<dyn StoreLock>, LockError> {
        self.inner.lock()
    }
    fn dir_path(&self) -> Option<&std::path::Path> {
        self.inner.dir_path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    #[test]
    fn the_nth_mutating_call_fails_once_or_forever() {
        for once in [true, false] {
            let plan = FaultPlan::new(3, FaultKind::Enospc, once);
            let st = FaultStorage::new(Arc::new(MemStorage::new()), Arc::clone(&plan));
            let f = st.open("f", true).expect("open");
            f.write_all_at(b"ab", 0).expect("1st");
            f.sync_data().expect("2nd");
            assert_eq!(f.write_all_at(b"cd", 2).expect_err("3rd").raw_os_error(), Some(28));
            let mut buf = [0u8; 2];
            f.read_exact_at(&mut buf, 0).expect("reads never fail");
            assert_eq!(f.sync_all().is_err(), !once);
            assert_eq!(plan.injected(), if once { 1 } else { 2 });
            plan.disarm();
            f.sync_all().expect("disarmed");
        }
    }

    #[test]
    fn a_short_write_lets_half_through() {
        let plan = FaultPlan::new(1, FaultKind::ShortWrite, true);
        let mem = MemStorage::new();
        let st = FaultStorage::new(Arc::new(mem.clone()), plan);
        st.open("f", true).expect("open").write_all_at(b"abcd", 0).expect_err("short");
        assert_eq!(mem.read_file("f").as_deref(), Some(&b"ab"[..]));
    }
}
