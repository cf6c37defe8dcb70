//! [`FsStorage`]: the store's files in a real directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{LockError, Mapping, Storage, StorageFile, StoreLock};

/// Name of the lock file inside the store directory.
const LOCK_FILE: &str = "LOCK";

/// A [`Storage`] over a real directory: positioned I/O on `std::fs::File`,
/// `flock` for the store lock, read-only `mmap` for mappings.
#[derive(Debug, Clone)]
pub struct FsStorage {
    dir: PathBuf,
}

impl FsStorage {
    /// Use `dir` as the store directory, creating it (and missing parents) if it
    /// does not exist. Newly created directories are made durable by syncing
    /// their parent directories.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<FsStorage> {
        let dir = dir.into();
        // The directories create_dir_all is about to create, deepest first.
        let mut created = Vec::new();
        let mut cur: Option<&Path> = Some(&dir);
        while let Some(p) = cur {
            if p.as_os_str().is_empty() || p.try_exists()? {
                break;
            }
            created.push(p.to_path_buf());
            cur = p.parent();
        }
        std::fs::create_dir_all(&dir)?;
        // Shallowest first: each new entry becomes durable in its parent.
        for p in created.iter().rev() {
            let parent = match p.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            File::open(parent)?.sync_all()?;
        }
        Ok(FsStorage { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Storage for FsStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(true).create(create).open(self.path(name))?;
        Ok(Arc::new(FsFile { file }))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        self.path(name).try_exists()
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from), self.path(to))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn lock(&self) -> Result<Box<dyn StoreLock>, LockError> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(self.path(LOCK_FILE)).map_err(LockError::Io)?;
        // `flock`-based on Linux: the lock belongs to this open file
        // description, so a second open + try_lock conflicts even within the
        // same process, and the kernel drops it when the holder dies.
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder may be mid-write; an unreadable pid is reported as 0.
                let pid = match (&file).read_to_string(&mut text) {
                    Ok(_) => text.trim().parse().unwrap_or(0),
                    Err(_) => 0,
                };
                return Err(LockError::Held { pid });
            }
            Err(TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
        file.set_len(0).map_err(LockError::Io)?;
        file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0).map_err(LockError::Io)?;
        Ok(Box::new(FsLock { _file: file }))
    }

    fn dir_path(&self) -> Option<&Path> {
        Some(&self.dir)
    }
}

/// The held store lock: the open, `flock`ed `LOCK` file. Dropping it closes the
/// file, which releases the lock.
#[derive(Debug)]
struct FsLock {
    _file: File,
}

impl StoreLock for FsLock {}

/// One open file of an [`FsStorage`].
#[derive(Debug)]
struct FsFile {
    file: File,
}

impl StorageFile for FsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.file, buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn map(&self, len: u64) -> io::Result<Mapping> {
        let file_len = self.len()?;
        if len > file_len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("cannot map {len} bytes of a file that is only {file_len} bytes long")));
        }
        if len == 0 {
            return Ok(Arc::new(Vec::<u8>::new()));
        }
        let len =
            usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("cannot map {len} bytes: more than the address space")))?;
        Ok(Arc::new(FsMapping(map_prefix(&self.file, len)?)))
    }
}

/// Map the first `len` bytes of `file` read-only. `len` must be non-zero and at
/// most the file's length.
#[allow(unsafe_code, reason = "memory-mapping a file is unsafe; the invariants are upheld as explained below")]
fn map_prefix(file: &File, len: usize) -> io::Result<memmap2::Mmap> {
    // SAFETY: a mapping is undefined behaviour if the mapped bytes change or
    // vanish while it lives. The engine maps only the sealed prefix of the
    // vector file, which it never truncates or rewrites while a mapping exists;
    // the store's exclusive flock (`Storage::lock`) keeps other Memento
    // processes from writing the file; and the caller checked `len` against the
    // file's size, so no access is past end of file. Only an outside program
    // truncating the file could cause SIGBUS, which is documented as
    // unsupported.
    unsafe { memmap2::MmapOptions::new().len(len).map(file) }
}

/// A read-only memory map of a file prefix.
struct FsMapping(memmap2::Mmap);

impl AsRef<[u8]> for FsMapping {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, FsStorage) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let st = FsStorage::new(tmp.path().join("store")).expect("new");
        (tmp, st)
    }

    #[test]
    fn new_creates_nested_dirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a").join("b");
        let st = FsStorage::new(&dir).expect("new");
        assert!(dir.is_dir());
        assert_eq!(st.dir_path(), Some(dir.as_path()));
        // An existing directory is fine too.
        FsStorage::new(&dir).expect("new again");
    }

    #[test]
    fn write_read_round_trip() {
        let (_tmp, st) = store();
        assert!(!st.exists("f").expect("exists"));
        let missing = st.open("f", false).err().expect("missing file");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let f = st.open("f", true).expect("open");
        assert!(st.exists("f").expect("exists"));
        assert_eq!(f.len().expect("len"), 0);
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
        // Reopening sees the data.
        let g = st.open("f", false).expect("reopen");
        let mut buf = [0u8; 5];
        g.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(&buf, b"hello");
    }

    #[test]
    fn read_past_end_is_eof() {
        let (_tmp, st) = store();
        let f = st.open("f", true).expect("open");
        f.write_all_at(b"abc", 0).expect("write");
        let mut buf = [0u8; 4];
        let e = f.read_exact_at(&mut buf, 0).expect_err("past end");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = f.read_exact_at(&mut buf[..1], 3).expect_err("at end");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn set_len_truncates_and_extends() {
        let (_tmp, st) = store();
        let f = st.open("f", true).expect("open");
        f.write_all_at(b"abcdef", 0).expect("write");
        f.set_len(3).expect("truncate");
        assert_eq!(f.len().expect("len"), 3);
        f.set_len(5).expect("extend");
        let mut buf = [0xffu8; 5];
        f.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(&buf, b"abc\0\0");
    }

    #[test]
    fn map_checks_length_and_shows_content() {
        let (_tmp, st) = store();
        let f = st.open("f", true).expect("open");
        assert!((*f.map(0).expect("empty map")).as_ref().is_empty());
        f.write_all_at(b"0123456789", 0).expect("write");
        let m = f.map(4).expect("map");
        assert_eq!((*m).as_ref(), b"0123");
        let m = f.map(10).expect("map all");
        assert_eq!((*m).as_ref(), b"0123456789");
        let e = f.map(11).err().expect("too long");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Appending past the mapped prefix leaves the mapping intact.
        f.write_all_at(b"more", 10).expect("append");
        assert_eq!((*m).as_ref(), b"0123456789");
    }

    #[test]
    fn rename_replaces_target() {
        let (_tmp, st) = store();
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
        let e = st.rename("a", "c").expect_err("missing source");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn remove_missing_is_ok() {
        let (_tmp, st) = store();
        st.remove("nope").expect("remove missing");
        st.open("f", true).expect("open");
        st.remove("f").expect("remove");
        assert!(!st.exists("f").expect("exists"));
    }

    #[test]
    fn lock_conflicts_in_process_and_records_pid() {
        let (tmp, st) = store();
        let guard = st.lock().expect("first lock");
        let text = std::fs::read_to_string(tmp.path().join("store").join(LOCK_FILE)).expect("read LOCK");
        assert_eq!(text, format!("{}\n", std::process::id()));
        // The same storage, and a second storage on the same directory, conflict.
        let other = FsStorage::new(tmp.path().join("store")).expect("new");
        for s in [&st, &other] {
            match s.lock() {
                Err(LockError::Held { pid }) => assert_eq!(pid, std::process::id()),
                Err(LockError::Io(e)) => panic!("unexpected io error: {e}"),
                Ok(_) => panic!("second lock succeeded"),
            }
        }
        drop(guard);
        let guard = other.lock().expect("lock after release");
        drop(guard);
    }

    #[test]
    fn lock_reports_unparsable_pid_as_zero() {
        let (tmp, st) = store();
        let guard = st.lock().expect("lock");
        std::fs::write(tmp.path().join("store").join(LOCK_FILE), b"garbage").expect("overwrite LOCK");
        match st.lock() {
            Err(LockError::Held { pid }) => assert_eq!(pid, 0),
            _ => panic!("expected Held"),
        }
        drop(guard);
    }
}
