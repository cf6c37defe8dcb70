//! [`FsStorage`]: the store's files in a real directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read};
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
    /// A storage on the existing directory `dir`, for reading: nothing is created (see
    /// [`Storage::open_read`]). `NotFound` if `dir` is not a directory.
    pub fn existing(dir: impl Into<PathBuf>) -> io::Result<FsStorage> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{} is not a directory", dir.display())));
        }
        Ok(FsStorage { dir })
    }

    /// Use `dir` as the store directory, creating it (and missing parents) if it
    /// does not exist, private to its owner (`0700`; FORMAT.md §4.4). Newly created
    /// directories are made durable by syncing their parent directories.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<FsStorage> {
        Self::with_access(dir, false)
    }

    /// [`FsStorage::new`], with the directories it creates open to their group too when
    /// `group` (`0770`, files `0660`: [`crate::EngineBuilder::group_access`]). The files of a
    /// store take their mode from its directory ([`file_mode_for`]), so an existing store keeps
    /// its modes.
    pub fn with_access(dir: impl Into<PathBuf>, group: bool) -> io::Result<FsStorage> {
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
        create_dirs(&dir, if group { 0o770 } else { 0o700 })?;
        // Shallowest first: each new entry becomes durable in its parent.
        for p in created.iter().rev() {
            let parent = match p.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            sync_directory(parent)?;
        }
        Ok(FsStorage { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Storage for FsStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let path = self.path(name);
        let file = if create { create_or_open(&path)? } else { OpenOptions::new().read(true).write(true).open(&path)? };
        Ok(Arc::new(FsFile { file }))
    }

    fn open_read(&self, name: &str) -> io::Result<Option<Arc<dyn StorageFile>>> {
        match File::open(self.path(name)) {
            Ok(file) => Ok(Some(Arc::new(FsFile { file }))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
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
        sync_directory(&self.dir)
    }

    fn lock(&self) -> Result<Box<dyn StoreLock>, LockError> {
        let file = create_or_open(&self.path(LOCK_FILE)).map_err(LockError::Io)?;
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
        positioned::write_all_at(&file, format!("{}\n", std::process::id()).as_bytes(), 0).map_err(LockError::Io)?;
        Ok(Box::new(FsLock { file, locker: std::process::id() }))
    }

    fn dir_path(&self) -> Option<&Path> {
        Some(&self.dir)
    }
}

/// Makes the entries of `dir` (new files, renames) durable. On Unix that is an
/// fsync of the directory itself. Windows cannot open a directory as a file
/// without backup semantics, and NTFS journals its metadata, so there it is a
/// no-op.
fn sync_directory(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Positioned reads and writes that do not move a shared file cursor.
#[cfg(unix)]
mod positioned {
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileExt;

    pub(super) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
        file.read_exact_at(buf, offset)
    }

    pub(super) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }
}

/// Windows' `seek_read` / `seek_write` may transfer fewer bytes than asked (and
/// move the cursor, which nothing here relies on), so both loop until done.
/// Not run on this project's CI machines: only the Linux build is exercised.
#[cfg(windows)]
mod positioned {
    use std::fs::File;
    use std::io;
    use std::os::windows::fs::FileExt;

    pub(super) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match file.seek_read(buf, offset) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "failed to fill whole buffer")),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(super) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match file.seek_write(buf, offset) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "failed to write whole buffer")),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The held store lock: the open, `flock`ed `LOCK` file.
///
/// The `flock` belongs to the open file description, which a forked child shares: closing the
/// locker's descriptor alone would leave the store locked for as long as a child that inherited
/// it lives (a `multiprocessing` worker, say), so that the parent could not reopen its own
/// store. Dropping it in the locking process therefore unlocks explicitly, which releases the
/// lock for every copy of the descriptor; dropped in a forked child, it only closes the child's
/// copy and leaves the parent's lock alone.
#[derive(Debug)]
struct FsLock {
    file: File,
    /// The process that took the lock.
    locker: u32,
}

impl StoreLock for FsLock {}

impl Drop for FsLock {
    fn drop(&mut self) {
        if std::process::id() == self.locker {
            // An error leaves the lock to the close that follows, as before.
            let _ = self.file.unlock();
        }
    }
}

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
        positioned::read_exact_at(&self.file, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        positioned::write_all_at(&self.file, buf, offset)
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

    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping> {
        let (offset, len) = super::check_map_range(offset, len, self.len()?)?;
        if len == 0 {
            return Ok(Arc::new(Vec::<u8>::new()));
        }
        Ok(Arc::new(FsMapping(map_range(&self.file, offset as u64, len)?)))
    }
}

/// Map `len` bytes of `file` from `offset` read-only. `len` is non-zero,
/// `offset` page-aligned, and the range inside the file (checked by the caller).
#[allow(unsafe_code, reason = "memory-mapping a file is unsafe; the invariants are upheld as explained below")]
fn map_range(file: &File, offset: u64, len: usize) -> io::Result<memmap2::Mmap> {
    // SAFETY: a mapping is undefined behaviour if the mapped bytes change or
    // vanish while it lives (the slice it hands out promises they do not). The
    // engine maps only the sealed pages of the vector file, from page 1 to the
    // checkpoint's page count: the file is append-only, so those bytes are never
    // rewritten or truncated while a mapping exists (the superblocks, rewritten at
    // every checkpoint, lie in page 0, outside the mapping). The store's
    // exclusive flock (`Storage::lock`) keeps other Memento processes from
    // writing the file, and the caller checked the range against the file's
    // size, so no access is past the end of the file. Only an outside program
    // truncating or rewriting the file could break this (SIGBUS or changing
    // bytes), which the README documents as unsupported.
    unsafe { memmap2::MmapOptions::new().offset(offset).len(len).map(file) }
}

/// A read-only memory map of a file prefix.
struct FsMapping(memmap2::Mmap);

impl AsRef<[u8]> for FsMapping {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The mode of the files of a store whose directory has mode `dir_mode`: its read and write
/// bits, for the same classes (`0700` → `0600`, `0770` → `0660`, an older `0755` → `0644`).
pub(crate) fn file_mode_for(dir_mode: u32) -> u32 {
    dir_mode & 0o666
}

/// Opens `path` for reading and writing, creating it if it is missing with the mode its
/// directory calls for ([`file_mode_for`]), exactly (whatever the umask): a memory store holds
/// private text, so a new file is not world-readable unless its directory is. Also what the
/// SQLite files are created with before SQLite opens them ([`prepare_file`]).
pub(crate) fn create_or_open(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    match opts.open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mode = file_mode_for(std::fs::metadata(dir)?.permissions().mode());
        match OpenOptions::new().read(true).write(true).create_new(true).mode(mode).open(path) {
            Ok(file) => {
                // The umask may have taken group bits away; the directory's mode is the intent.
                if file.metadata()?.permissions().mode() & 0o777 != mode {
                    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
                }
                Ok(file)
            }
            // Created by someone else in between: open theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => opts.open(path),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        opts.create(true).open(path)
    }
}

/// Creates `path` (empty) if it is missing, with its store's file mode, so that SQLite, which
/// would create a database file world-readable, opens one that is not (its `-wal` and `-shm`
/// then take the database file's mode).
pub(crate) fn prepare_file(path: &Path) -> io::Result<()> {
    create_or_open(path).map(drop)
}

/// `create_dir_all` with `mode` (exactly, whatever the umask) on the directories it creates.
fn create_dirs(dir: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let mut missing = Vec::new();
        let mut cur = Some(dir);
        while let Some(p) = cur {
            if p.as_os_str().is_empty() || p.try_exists()? {
                break;
            }
            missing.push(p);
            cur = p.parent();
        }
        for p in missing.into_iter().rev() {
            match std::fs::DirBuilder::new().mode(mode).create(p) {
                Ok(()) => std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && p.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        std::fs::create_dir_all(dir)
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
    fn keeps_the_storage_contract() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let n = std::cell::Cell::new(0);
        super::super::contract::check(&|| {
            n.set(n.get() + 1);
            Box::new(FsStorage::new(tmp.path().join(format!("s{}", n.get()))).expect("new"))
        });
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
