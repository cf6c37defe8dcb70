//! Reading a store's files without trusting them, and probing its lock.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use super::report::LockState;
use crate::error::{Error, Result};
use crate::storage::{Storage, StorageFile};

/// A file opened read-only through the store's [`Storage`], read with bounds-checked
/// positioned reads (never mapped, so a truncated file is a finding rather than a `SIGBUS`).
pub(super) struct RoFile {
    pub(super) file: Arc<dyn StorageFile>,
    pub(super) len: u64,
}

impl RoFile {
    /// `None` if the file does not exist.
    pub(super) fn open(storage: &dyn Storage, name: &str) -> Result<Option<RoFile>> {
        let file = storage.open_read(name).map_err(|e| Error::io(format!("opening {name} read-only"), e))?;
        let Some(file) = file else { return Ok(None) };
        let len = file.len().map_err(|e| Error::io(format!("reading the length of {name}"), e))?;
        Ok(Some(RoFile { file, len }))
    }

    /// `len` bytes at `offset`, or `None` if the file does not hold them all.
    pub(super) fn read(&self, offset: u64, len: u64) -> io::Result<Option<Vec<u8>>> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {}
            _ => return Ok(None),
        }
        let n = usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "read larger than memory"))?;
        let mut buf = vec![0u8; n];
        match self.file.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(Some(buf)),
            // The file shrank since its length was read.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Probe the store's lock without taking it where possible: on Linux `/proc/locks` tells
pub(super) fn lock_state(dir: &Path) -> LockState {
    let path = dir.join(crate::files::LOCK);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return LockState::Free,
        Err(e) => return LockState::Unknown(format!("cannot open {}: {e}", path.display())),
    };
    let mut text = String::new();
    let recorded = (&file).read_to_string(&mut text).ok().and_then(|_| text.trim().parse::<u32>().ok());
    #[cfg(target_os = "linux")]
    if let Some(held) = proc_locks_holder(&file) {
        return match held {
            Some(pid) => LockState::Held { pid: Some(pid) },
            None => LockState::Free,
        };
    }
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            LockState::Free
        }
        Err(std::fs::TryLockError::WouldBlock) => LockState::Held { pid: recorded },
        Err(std::fs::TryLockError::Error(e)) => LockState::Unknown(format!("cannot probe the lock: {e}")),
    }
}

/// From `/proc/locks`: `Some(Some(pid))` if a `flock` is held on this file's inode,
/// `Some(None)` if none is, `None` if `/proc/locks` cannot be read.
#[cfg(target_os = "linux")]
pub(super) fn proc_locks_holder(file: &File) -> Option<Option<u32>> {
    use std::os::unix::fs::MetadataExt;
    let ino = file.metadata().ok()?.ino();
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    for line in table.lines() {
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; waiters have "->" after the number.
        let words: Vec<&str> = line.split_whitespace().filter(|w| *w != "->").collect();
        if words.get(1) != Some(&"FLOCK") {
            continue;
        }
        let Some(dev_ino) = words.get(5) else { continue };
        if dev_ino.rsplit(':').next().and_then(|i| i.parse::<u64>().ok()) == Some(ino) {
            return Some(words.get(4).and_then(|p| p.parse().ok()).or(Some(0)));
        }
    }
    Some(None)
}
