//! All file I/O of the engine goes through [`Storage`] and [`StorageFile`].
//!
//! Two implementations exist: [`FsStorage`] (real files in a directory, positioned
//! I/O, `flock`, read-only `mmap`) and [`MemStorage`] (everything in memory, for
//! tests, Miri, and — later — power-loss simulation and I/O fault injection, which
//! wrap a `Storage` and decide what each call does).
//!
//! Files are named by a plain file name (no directories): the engine's store is
//! one flat directory.

use std::io;
use std::sync::Arc;

mod file;
mod memory;

pub use file::FsStorage;
pub use memory::MemStorage;

/// A read-only view of the first `len` bytes of a file, as of the moment it was
/// taken. For [`FsStorage`] this is a shared read-only memory map; for
/// [`MemStorage`] an immutable snapshot copy.
///
/// The bytes behind a `Mapping` never change while it lives: the engine only maps
/// the sealed (already checkpointed, never rewritten) prefix of the vector file.
pub type Mapping = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// One open file. All offsets are absolute byte offsets; there is no cursor.
pub trait StorageFile: Send + Sync {
    /// Current length of the file in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Fill `buf` from `offset`. Reading past the end is an
    /// `io::ErrorKind::UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Write all of `buf` at `offset`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Truncate or extend (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Make data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    /// Make data durable (`fdatasync`); metadata needed to read the data back
    /// (such as a grown length) is included.
    fn sync_data(&self) -> io::Result<()>;
    /// Map the first `len` bytes read-only. `len` must not exceed the file's
    /// length (the implementation checks, so that no access can fault).
    /// `len == 0` gives an empty mapping.
    fn map(&self, len: u64) -> io::Result<Mapping>;
}

/// An exclusive, process-wide hold on a store. Dropping it releases the lock.
pub trait StoreLock: Send + Sync {}

/// A directory of files.
pub trait Storage: Send + Sync {
    /// Open a file for reading and writing; with `create`, create it if missing.
    /// A missing file without `create` is `io::ErrorKind::NotFound`.
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Whether a file exists.
    fn exists(&self, name: &str) -> io::Result<bool>;
    /// Remove a file; removing a missing file is not an error.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Atomically replace `to` with `from`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Make the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// Take the store's exclusive writer lock without waiting.
    ///
    /// On contention returns `Err(LockError::Held { pid })` with the process id
    /// recorded by the holder (0 if unknown). The lock dies with its holder: no
    /// stale lock survives a crash.
    fn lock(&self) -> Result<Box<dyn StoreLock>, LockError>;
    /// The real directory behind this storage, if there is one (the SQLite
    /// mirror lives there). `None` for in-memory storage.
    fn dir_path(&self) -> Option<&std::path::Path>;
}

/// Why [`Storage::lock`] failed.
#[derive(Debug)]
pub enum LockError {
    /// Another holder (another process, or another open engine in this process).
    Held {
        /// Process id written by the holder, 0 if it could not be read.
        pid: u32,
    },
    /// The lock file could not be created or locked.
    Io(io::Error),
}
