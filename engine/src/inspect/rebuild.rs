//! The one repair: rebuilding the mirror.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::finding::Severity;
use super::report::RebuildReport;
use super::Inspector;
use crate::engine::MIRROR_FILE;
use crate::error::{Error, Result};
use crate::storage::{FsStorage, LockError, Storage, StorageFile, StoreLock};
use crate::vecfile::VEC_FILE;

/// Rebuild the store's SQLite mirror from its vector file and WAL: the one repair. Takes the
/// store's lock (so [`Error::Locked`] if another process has it open), refuses if the vector
/// file or the WAL has errors (a mirror rebuilt from them would not make the store sound),
/// moves the current mirror files aside (`memento.mirror.sqlite.old`, `-wal`, `-shm`), opens
/// the store with [`crate::Engine`] (which rebuilds a missing mirror and replays the WAL),
/// closes it, and verifies the result.
pub fn rebuild_mirror(dir: impl AsRef<Path>) -> Result<RebuildReport> {
    let dir = dir.as_ref();
    if !dir.join(VEC_FILE).is_file() {
        return Err(Error::invalid(format!("there is no store at {}", dir.display())));
    }
    let storage = FsStorage::new(dir).map_err(|e| Error::io("opening the store directory", e))?;
    let lock = storage.lock().map_err(|e| match e {
        LockError::Held { pid } => Error::Locked { path: dir.to_path_buf(), pid },
        LockError::Io(e) => Error::io("taking the store's lock", e),
    })?;
    // We hold the lock: nobody else changes the files while we look.
    let before = Inspector::over(Arc::new(FsStorage::existing(dir).map_err(|e| Error::io("opening the store directory", e))?));
    let l = before.load()?;
    if let Some(f) = l.findings.iter().find(|f| f.severity == Severity::Error) {
        return Err(Error::corrupted(
            dir.join(f.file),
            f.offset.unwrap_or(0),
            format!("{} ({}); the mirror is rebuilt from the vector file and the WAL, so rebuilding it cannot repair this", f.message, f.kind),
        ));
    }
    drop(l);
    let mut moved_aside = Vec::new();
    pub(super) fn io(what: &'static str) -> impl Fn(io::Error) -> Error {
        move |e| Error::io(format!("{what} the old mirror"), e)
    }
    for suffix in ["", "-wal", "-shm"] {
        let from = format!("{MIRROR_FILE}{suffix}");
        let to = format!("{MIRROR_FILE}.old{suffix}");
        storage.remove(&to).map_err(io("removing an earlier copy of"))?;
        if storage.exists(&from).map_err(io("looking for"))? {
            storage.rename(&from, &to).map_err(io("moving aside"))?;
            moved_aside.push(to);
        }
    }
    storage.sync_dir().map_err(io("syncing the directory after moving aside"))?;
    let held = Arc::new(HeldLock { inner: storage, lock: Mutex::new(Some(lock)) });
    let engine = crate::Engine::builder_with_storage(held).create(false).open()?;
    let recovery = engine.stats().recovery;
    engine.close()?;
    let verify = Inspector::open(dir)?.verify()?;
    Ok(RebuildReport { moved_aside, recovery, verify })
}

/// An [`FsStorage`] whose lock was taken before the engine opened it: the engine's own
/// `lock()` receives it, so that no other process can open the store in between.
pub(super) struct HeldLock {
    pub(super) inner: FsStorage,
    pub(super) lock: Mutex<Option<Box<dyn StoreLock>>>,
}

impl Storage for HeldLock {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        self.inner.open(name, create)
    }
    fn exists(&self, name: &str) -> io::Result<bool> {
        self.inner.exists(name)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.inner.sync_dir()
    }
    fn lock(&self) -> std::result::Result<Box<dyn StoreLock>, LockError> {
        let taken = self.lock.lock().map_or(None, |mut g| g.take());
        taken.ok_or(LockError::Held { pid: std::process::id() })
    }
    fn dir_path(&self) -> Option<&Path> {
        self.inner.dir_path()
    }
}
