//! [`MemStorage`]: an in-memory directory, for tests and Miri.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{LockError, Mapping, Storage, StorageFile, StoreLock};

/// The contents of one in-memory file, shared by every handle opened on it.
type FileData = Arc<RwLock<Vec<u8>>>;

/// A [`Storage`] kept entirely in memory.
///
/// Cloning is cheap and gives another handle on the same directory. Files
/// behave like POSIX files: an open handle keeps referring to the same data
/// after the file is renamed, replaced or removed. Syncs are no-ops that
/// succeed; [`map`](StorageFile::map) returns a snapshot copy.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<String, FileData>,
    locked: bool,
}

impl MemStorage {
    /// An empty in-memory directory.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Names of all files, sorted.
    pub fn file_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.state.lock().files.keys().cloned().collect();
        names.sort();
        names
    }

    /// A copy of a file's contents, or `None` if it does not exist.
    pub fn read_file(&self, name: &str) -> Option<Vec<u8>> {
        let data = self.state.lock().files.get(name).cloned()?;
        let copy = data.read().clone();
        Some(copy)
    }

    /// Replace a file's contents with `bytes`, creating the file if missing.
    /// An existing file is overwritten in place, so handles already open on it
    /// see the new contents (like an outside program rewriting the file).
    pub fn write_file(&self, name: &str, bytes: &[u8]) {
        let data = self.state.lock().files.entry(name.to_owned()).or_default().clone();
        *data.write() = bytes.to_vec();
    }
}

impl Storage for MemStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.state.lock();
        let data = match state.files.get(name) {
            Some(data) => data.clone(),
            None if create => state.files.entry(name.to_owned()).or_default().clone(),
            None => return Err(not_found(name)),
        };
        Ok(Arc::new(MemFile { data }))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        Ok(self.state.lock().files.contains_key(name))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.state.lock().files.remove(name);
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.state.lock();
        let data = state.files.remove(from).ok_or_else(|| not_found(from))?;
        state.files.insert(to.to_owned(), data);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }

    fn lock(&self) -> Result<Box<dyn StoreLock>, LockError> {
        let mut state = self.state.lock();
        if state.locked {
            return Err(LockError::Held { pid: std::process::id() });
        }
        state.locked = true;
        Ok(Box::new(MemLock { state: Arc::clone(&self.state) }))
    }

    fn dir_path(&self) -> Option<&Path> {
        None
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file named {name:?}"))
}

/// The held lock of a [`MemStorage`]; dropping it releases the lock.
struct MemLock {
    state: Arc<Mutex<State>>,
}

impl StoreLock for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        self.state.lock().locked = false;
    }
}

/// One open file of a [`MemStorage`].
struct MemFile {
    data: FileData,
}

/// `offset + len` as an in-memory index, or an `InvalidInput` error if it does
/// not fit.
fn end_of(offset: u64, len: usize) -> io::Result<usize> {
    usize::try_from(offset).ok().and_then(|o| o.checked_add(len)).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file offset out of range"))
}

impl StorageFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.data.read().len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let data = self.data.read();
        let src = end_of(offset, buf.len())
            .ok()
            .and_then(|end| data.get(end - buf.len()..end))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "failed to fill whole buffer"))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = end_of(offset, buf.len())?;
        let mut data = self.data.write();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[end - buf.len()..end].copy_from_slice(buf);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = end_of(len, 0)?;
        self.data.write().resize(len, 0);
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping> {
        let data = self.data.read();
        let (offset, len) = super::check_map_range(offset, len, data.len() as u64)?;
        Ok(Arc::new(data[offset..offset + len].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_storage_contract() {
        super::super::contract::check(&|| Box::new(MemStorage::new()));
        assert_eq!(MemStorage::new().dir_path(), None);
    }

    #[test]
    fn read_past_end_is_eof() {
        let st = MemStorage::new();
        let f = st.open("f", true).expect("open");
        f.write_all_at(b"abc", 0).expect("write");
        let mut buf = [0u8; 4];
        let e = f.read_exact_at(&mut buf, 0).expect_err("past end");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = f.read_exact_at(&mut buf[..1], 3).expect_err("at end");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = f.read_exact_at(&mut buf[..1], u64::MAX).expect_err("huge offset");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        // Empty reads at the end are fine, as with real files.
        f.read_exact_at(&mut [], 3).expect("empty read");
    }

    #[test]
    fn map_checks_length_and_is_a_snapshot() {
        let st = MemStorage::new();
        let f = st.open("f", true).expect("open");
        assert!((*f.map(0, 0).expect("empty map")).as_ref().is_empty());
        f.write_all_at(b"0123456789", 0).expect("write");
        let m = f.map(0, 4).expect("map");
        assert_eq!((*m).as_ref(), b"0123");
        let e = f.map(0, 11).err().expect("too long");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        f.write_all_at(b"X", 0).expect("overwrite");
        assert_eq!((*m).as_ref(), b"0123");
    }

    #[test]
    fn rename_replaces_target_and_keeps_handles() {
        let st = MemStorage::new();
        let a = st.open("a", true).expect("open a");
        a.write_all_at(b"new", 0).expect("write");
        let old_b = st.open("b", true).expect("open b");
        old_b.write_all_at(b"old!", 0).expect("write");
        st.rename("a", "b").expect("rename");
        assert!(!st.exists("a").expect("exists"));
        assert_eq!(st.file_names(), vec!["b".to_owned()]);
        let b = st.open("b", false).expect("open b");
        assert_eq!(b.len().expect("len"), 3);
        // The handle opened as "a" now writes to "b"; the replaced file lives on
        // for its old handle.
        a.write_all_at(b"N", 0).expect("write via old handle");
        assert_eq!(st.read_file("b"), Some(b"New".to_vec()));
        assert_eq!(old_b.len().expect("len"), 4);
        let e = st.rename("a", "c").expect_err("missing source");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        st.rename("b", "b").expect("rename onto itself");
        assert_eq!(st.read_file("b"), Some(b"New".to_vec()));
    }

    #[test]
    fn remove_missing_is_ok() {
        let st = MemStorage::new();
        st.remove("nope").expect("remove missing");
        let f = st.open("f", true).expect("open");
        st.remove("f").expect("remove");
        assert!(!st.exists("f").expect("exists"));
        // An open handle on a removed file keeps working.
        f.write_all_at(b"x", 0).expect("write to unlinked");
        assert_eq!(st.read_file("f"), None);
    }

    #[test]
    fn helpers_read_and_write_files() {
        let st = MemStorage::new();
        st.write_file("z", b"zz");
        st.write_file("y", b"y");
        assert_eq!(st.file_names(), vec!["y".to_owned(), "z".to_owned()]);
        let f = st.open("z", false).expect("open");
        st.write_file("z", b"damaged");
        let mut buf = [0u8; 7];
        f.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(&buf, b"damaged");
        assert_eq!(st.read_file("missing"), None);
    }

    #[test]
    fn lock_is_exclusive_until_dropped() {
        let st = MemStorage::new();
        let guard = st.lock().expect("first lock");
        match st.clone().lock() {
            Err(LockError::Held { pid }) => assert_eq!(pid, std::process::id()),
            _ => panic!("expected Held"),
        }
        // A different in-memory directory has its own lock.
        let other = MemStorage::new();
        drop(other.lock().expect("other storage"));
        drop(guard);
        drop(st.lock().expect("lock after release"));
    }
}
