//! The fork guard: an engine belongs to the process that opened it.
//!
//! A forked child inherits the engine's memory, its open files (the WAL, the vector file, the
//! SQLite connections) and the `flock` on `LOCK` (the lock belongs to the open file
//! description, which the child shares), but not its threads, so locks held by other threads at
//! the fork stay held forever, ONNX Runtime's thread pool is gone, and SQLite's POSIX locks are
//! not inherited. A child that writes through the inherited engine interleaves its WAL appends
//! with the parent's and loses the parent's commits (issue 13, item 1). So every operation
//! checks the process id before it takes any lock ([`ProcessGuard::check`]), and dropping an
//! engine in a child closes nothing that could write ([`OwnedByOpener`]).

use crate::error::{Error, Result};

/// The process that opened the engine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessGuard {
    opener: u32,
}

impl ProcessGuard {
    /// The current process.
    pub(crate) fn new() -> Self {
        ProcessGuard { opener: std::process::id() }
    }

    /// Whether the current process is the opener (one `getpid`).
    pub(crate) fn in_opener(self) -> bool {
        std::process::id() == self.opener
    }

    /// [`Error::ForkedProcess`] unless the current process is the opener. Takes no lock, so it
    /// is safe to call first thing in a forked child.
    pub(crate) fn check(self) -> Result<()> {
        let current = std::process::id();
        if current == self.opener {
            Ok(())
        } else {
            Err(Error::ForkedProcess { opener: self.opener, current })
        }
    }
}

/// A value dropped only in the process that made it: in a forked child it is leaked instead, so
/// that its destructor (closing a SQLite connection, which may checkpoint or delete a `-wal`
/// file; releasing an ONNX Runtime session, whose threads do not exist in the child) never
/// runs there. Dereferences to the value.
pub(crate) struct OwnedByOpener<T> {
    value: Option<T>,
    guard: ProcessGuard,
}

impl<T> OwnedByOpener<T> {
    pub(crate) fn new(value: T, guard: ProcessGuard) -> Self {
        OwnedByOpener { value: Some(value), guard }
    }
}

impl<T> std::ops::Deref for OwnedByOpener<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.value {
            Some(v) => v,
            // `value` is taken only in `drop`.
            None => unreachable!("an OwnedByOpener is used after its drop"),
        }
    }
}

impl<T> std::ops::DerefMut for OwnedByOpener<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.value {
            Some(v) => v,
            None => unreachable!("an OwnedByOpener is used after its drop"),
        }
    }
}

impl<T> Drop for OwnedByOpener<T> {
    fn drop(&mut self) {
        if let Some(v) = self.value.take() {
            if !self.guard.in_opener() {
                std::mem::forget(v);
            }
        }
    }
}
