//! All file I/O of the engine goes through [`Storage`] and [`StorageFile`].
//!
//! Two implementations are always here: [`FsStorage`] (real files in a directory, positioned
//! I/O, `flock`, read-only `mmap`) and [`MemStorage`] (everything in memory, for tests and
//! the fault-injecting wrappers of the fault tests and the fuzzer). With the cargo feature
//! `test-util` (off by default; the engine's own tests, the fuzz checks turn it on) there are
//! two more, for tests only: `SimStorage` (module `sim`: in memory, with a durable image
//! beside the live one, for the power-loss simulation), and `FaultStorage` (module `fault`),
//! which wraps any of them and fails the I/O call a `FaultPlan` picks.
//!
//! Files are named by a plain file name (no directories): the engine's store is
//! one flat directory.

use std::io;
use std::sync::Arc;

#[cfg(any(test, feature = "test-util"))]
pub mod fault;
mod file;
mod memory;
#[cfg(any(test, feature = "test-util"))]
pub mod sim;

#[cfg(any(test, feature = "test-util"))]
pub use fault::{FaultKind, FaultPlan, FaultStorage};
pub(crate) use file::prepare_file;
pub use file::FsStorage;
pub use memory::MemStorage;
#[cfg(any(test, feature = "test-util"))]
pub use sim::SimStorage;

/// A read-only view of a range of a file, as of the moment it was taken. For
/// [`FsStorage`] this is a shared read-only memory map; for [`MemStorage`] an
/// immutable snapshot copy.
///
/// The bytes behind a `Mapping` never change while it lives: the engine only maps
/// the sealed pages of the vector file (page 1 up to the checkpoint), which are
/// never rewritten; the superblocks in page 0, rewritten by every checkpoint,
/// stay outside the mapping.
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
    /// Map `len` bytes from `offset` read-only. `offset` must be a multiple of
    /// [`MAP_ALIGN`], and `offset + len` must not exceed the file's length (the
    /// implementation checks both, so that no access can fault); otherwise the
    /// error is `InvalidInput`. `len == 0` gives an empty mapping.
    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping>;
}

/// Mapping offsets are multiples of this (the OS page size on every supported
/// platform divides it; vector-file pages are multiples of it).
pub const MAP_ALIGN: u64 = 4096;

/// Checks a mapping request against the file's length; returns the range as `usize`s.
pub(crate) fn check_map_range(offset: u64, len: u64, file_len: u64) -> io::Result<(usize, usize)> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
    if !offset.is_multiple_of(MAP_ALIGN) {
        return Err(bad(format!("cannot map from offset {offset}: not a multiple of {MAP_ALIGN}")));
    }
    match offset.checked_add(len) {
        Some(end) if end <= file_len => {}
        _ => return Err(bad(format!("cannot map {len} bytes from offset {offset} of a file that is only {file_len} bytes long"))),
    }
    let to_usize = |x: u64| usize::try_from(x).map_err(|_| bad(format!("cannot map {x} bytes: more than the address space")));
    Ok((to_usize(offset)?, to_usize(len)?))
}

/// An exclusive, process-wide hold on a store. Dropping it releases the lock.
pub trait StoreLock: Send + Sync {}

/// A directory of files.
pub trait Storage: Send + Sync {
    /// Open a file for reading and writing; with `create`, create it if missing.
    /// A missing file without `create` is `io::ErrorKind::NotFound`.
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Open an existing file for reading only; `None` if there is none. What the inspector
    /// reads through: it needs no write access and creates nothing. The default opens it as
    /// [`Storage::open`] does (storages without permissions, such as memory, lose nothing).
    fn open_read(&self, name: &str) -> io::Result<Option<Arc<dyn StorageFile>>> {
        match self.open(name, false) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
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

/// What every [`Storage`] must do; each implementation's tests run [`contract::check`] on it.
#[cfg(test)]
pub(crate) mod contract {
    use super::*;

    /// Run every contract check, each on a fresh storage from `make`.
    pub(crate) fn check(make: &dyn Fn() -> Box<dyn Storage>) {
        round_trip(make().as_ref());
        read_past_end(make().as_ref());
        set_len(make().as_ref());
        map_prefix(make().as_ref());
        rename(make().as_ref());
        remove(make().as_ref());
        lock(make().as_ref());
    }

    fn round_trip(st: &dyn Storage) {
        assert!(!st.exists("f").expect("exists"));
        let missing = st.open("f", false).err().expect("missing file");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let f = st.open("f", true).expect("open");
        assert!(st.exists("f").expect("exists"));
        assert!(f.is_empty().expect("len"));
        f.write_all_at(b"hello", 0).expect("write");
        f.write_all_at(b"world", 10).expect("write past end");
        assert_eq!(f.len().expect("len"), 15);
        let mut buf = [0xffu8; 15];
        f.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(&buf, b"hello\0\0\0\0\0world");
        let mut buf = [0u8; 3];
        f.read_exact_at(&mut buf, 11).expect("read");
        assert_eq!(&buf, b"orl");
        f.sync_data().expect("sync_data");
        f.sync_all().expect("sync_all");
        st.sync_dir().expect("sync_dir");
        let g = st.open("f", false).expect("reopen");
        let mut buf = [0u8; 5];
        g.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(&buf, b"hello");
    }

    fn read_past_end(st: &dyn Storage) {
        let f = st.open("f", true).expect("open");
        f.write_all_at(b"abc", 0).expect("write");
        let mut buf = [0u8; 4];
        assert_eq!(f.read_exact_at(&mut buf, 0).expect_err("past end").kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(f.read_exact_at(&mut buf[..1], 3).expect_err("at end").kind(), io::ErrorKind::UnexpectedEof);
        f.read_exact_at(&mut [], 3).expect("an empty read at the end");
    }

    fn set_len(st: &dyn Storage) {
        let f = st.open("f", true).expect("open");
        f.write_all_at(b"abcdef", 0).expect("write");
        f.set_len(3).expect("truncate");
        assert_eq!(f.len().expect("len"), 3);
        f.set_len(5).expect("extend");
        let mut buf = [0xffu8; 5];
        f.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(&buf, b"abc\0\0");
    }

    fn map_prefix(st: &dyn Storage) {
        let f = st.open("f", true).expect("open");
        assert!((*f.map(0, 0).expect("empty map")).as_ref().is_empty());
        f.write_all_at(b"0123456789", 0).expect("write");
        assert_eq!((*f.map(0, 4).expect("map")).as_ref(), b"0123");
        let m = f.map(0, 10).expect("map all");
        assert_eq!((*m).as_ref(), b"0123456789");
        assert_eq!(f.map(0, 11).err().expect("too long").kind(), io::ErrorKind::InvalidInput);
        // Appending past the mapped range leaves the mapping as it was.
        f.write_all_at(b"more", 10).expect("append");
        assert_eq!((*m).as_ref(), b"0123456789");
        // A range that starts past the first page.
        f.write_all_at(b"page two", MAP_ALIGN).expect("write");
        assert_eq!((*f.map(MAP_ALIGN, 8).expect("map page two")).as_ref(), b"page two");
        assert_eq!(f.map(MAP_ALIGN + 8, 0).err().expect("unaligned offset").kind(), io::ErrorKind::InvalidInput);
        assert_eq!(f.map(MAP_ALIGN, 9).err().expect("past the end").kind(), io::ErrorKind::InvalidInput);
        assert_eq!(f.map(u64::MAX - 4095, 8).err().expect("overflow").kind(), io::ErrorKind::InvalidInput);
    }

    fn rename(st: &dyn Storage) {
        let a = st.open("a", true).expect("open a");
        a.write_all_at(b"new", 0).expect("write");
        st.open("b", true).expect("open b").write_all_at(b"old!", 0).expect("write");
        st.rename("a", "b").expect("rename");
        assert!(!st.exists("a").expect("exists"));
        let b = st.open("b", false).expect("open b");
        assert_eq!(b.len().expect("len"), 3);
        // The handle opened as "a" still refers to the same file, now named "b".
        a.write_all_at(b"N", 0).expect("write via old handle");
        let mut buf = [0u8; 3];
        b.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(&buf, b"New");
        assert_eq!(st.rename("a", "c").expect_err("missing source").kind(), io::ErrorKind::NotFound);
    }

    fn remove(st: &dyn Storage) {
        st.remove("nope").expect("remove missing");
        st.open("f", true).expect("open");
        st.remove("f").expect("remove");
        assert!(!st.exists("f").expect("exists"));
    }

    fn lock(st: &dyn Storage) {
        let guard = st.lock().expect("first lock");
        match st.lock() {
            Err(LockError::Held { pid }) => assert_eq!(pid, std::process::id()),
            Err(LockError::Io(e)) => panic!("unexpected io error: {e}"),
            Ok(_) => panic!("second lock succeeded"),
        }
        drop(guard);
        drop(st.lock().expect("lock after release"));
    }
}
