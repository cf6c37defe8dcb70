//! [`SimStorage`]: an in-memory directory that simulates power loss.
//!
//! Like a real file system (and unlike [`MemStorage`](super::MemStorage)), it keeps two
//! images of everything:
//!
//! - the **live** image: what reads, lengths and mappings see (the page cache);
//! - the **durable** image: what survives a power loss. A file's contents become durable at
//!   its `sync_all` / `sync_data` (`sync_data` includes a grown or shrunk length, as the
//!   trait says); the directory's entries (creations, renames, removals) become durable at
//!   `sync_dir`, and never through a file's sync. A file's contents and its name are
//!   separate: a file created and fsynced, but whose directory entry was not synced, may be
//!   gone after a crash; a rename not followed by a directory sync may be undone.
//!
//! Every change since the last sync is recorded. [`SimStorage::crash_state`] (or the
//! captures of [`SimStorage::capture`]) takes the state a power loss would start from, and
//! [`CrashState::image`] turns it into the files found after the power comes back:
//!
//! - each file: its durable contents, then a random subset of its unsynced writes and
//!   length changes, applied in the order they were made (so overlapping writes keep their
//!   order), the last one kept possibly torn (a prefix of it: any length, or a multiple of
//!   512 or 4096 bytes — a sector or a page);
//! - the directory: its durable entries, then a random prefix of the unsynced directory
//!   operations (file systems journal them in order, so a later rename never survives
//!   without the earlier creation it depends on).
//!
//! [`SimStorage::from_image`] opens such an image as a new storage, to recover from it.
//! Mutating calls are numbered (from 1) so that a test can crash "right after the k-th sync"
//! or "between two syncs".
//!
//! Test code only: compiled with the crate's `test-util` feature (and in its unit tests).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{LockError, Mapping, Storage, StorageFile, StoreLock};

/// A small seeded random generator (SplitMix64), so crash images are reproducible from a
/// seed without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

/// One unsynced change to a file's contents.
#[derive(Debug)]
enum Change {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

/// One unsynced change to the directory.
#[derive(Debug, Clone)]
enum DirOp {
    Create { name: String, inode: usize },
    Rename { from: String, to: String },
    Remove { name: String },
}

impl DirOp {
    fn apply(&self, dir: &mut BTreeMap<String, usize>) {
        match self {
            DirOp::Create { name, inode } => {
                dir.insert(name.clone(), *inode);
            }
            DirOp::Rename { from, to } => {
                if let Some(i) = dir.remove(from) {
                    dir.insert(to.clone(), i);
                }
            }
            DirOp::Remove { name } => {
                dir.remove(name);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Inode {
    live: Vec<u8>,
    durable: Arc<Vec<u8>>,
    /// Changes since the last sync of this file, in order.
    pending: Vec<Arc<Change>>,
}

/// What a numbered mutating call was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// A file created by `open(.., true)`.
    Create,
    /// `write_all_at`.
    Write,
    /// `set_len`.
    SetLen,
    /// `rename`.
    Rename,
    /// `remove` of an existing file.
    Remove,
    /// `sync_all` or `sync_data`.
    SyncFile,
    /// `sync_dir`.
    SyncDir,
}

impl OpKind {
    /// Whether the call makes something durable.
    pub fn is_sync(self) -> bool {
        matches!(self, OpKind::SyncFile | OpKind::SyncDir)
    }
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    live_dir: BTreeMap<String, usize>,
    durable_dir: BTreeMap<String, usize>,
    dir_pending: Vec<DirOp>,
    locked: bool,
    /// Mutating calls so far.
    ops: u64,
    /// The kind of each mutating call (index `n - 1` for call `n`).
    kinds: Vec<OpKind>,
    capturing: bool,
    captures: Vec<CrashState>,
}

impl State {
    fn crash_state(&self) -> CrashState {
        CrashState {
            op: self.ops,
            durable_dir: self.durable_dir.clone(),
            dir_pending: self.dir_pending.clone(),
            files: self.inodes.iter().map(|i| (Arc::clone(&i.durable), i.pending.clone())).collect(),
        }
    }

    fn done(&mut self, kind: OpKind) {
        self.ops += 1;
        self.kinds.push(kind);
        if self.capturing {
            let c = self.crash_state();
            self.captures.push(c);
        }
    }

    fn new_inode(&mut self, data: Vec<u8>) -> usize {
        self.inodes.push(Inode { durable: Arc::new(data.clone()), live: data, pending: Vec::new() });
        self.inodes.len() - 1
    }
}

/// A [`Storage`] in memory that keeps a durable image beside the live one and can produce
/// what a power loss would leave (see the module documentation).
///
/// Cloning gives another handle on the same directory. Open handles keep referring to the
/// same file after it is renamed or removed, as on POSIX. [`map`](StorageFile::map) returns
/// a snapshot copy of the live image.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

impl SimStorage {
    /// An empty directory.
    pub fn new() -> SimStorage {
        SimStorage::default()
    }

    /// A directory holding exactly `image`'s files, all durable (the machine after the
    /// power came back).
    pub fn from_image(image: &CrashImage) -> SimStorage {
        let mut st = State::default();
        for (name, data) in &image.files {
            let i = st.new_inode(data.clone());
            st.live_dir.insert(name.clone(), i);
        }
        st.durable_dir = st.live_dir.clone();
        SimStorage { state: Arc::new(Mutex::new(st)) }
    }

    /// Mutating calls so far (creations, writes, length changes, renames, removals, syncs).
    pub fn op_count(&self) -> u64 {
        self.state.lock().ops
    }

    /// The kind of every mutating call so far, in order (call `n` at index `n - 1`).
    pub fn op_kinds(&self) -> Vec<OpKind> {
        self.state.lock().kinds.clone()
    }

    /// Sync calls so far (`sync_all`, `sync_data`, `sync_dir`).
    pub fn sync_count(&self) -> u64 {
        self.state.lock().kinds.iter().filter(|k| k.is_sync()).count() as u64
    }

    /// What a power loss now would start from.
    pub fn crash_state(&self) -> CrashState {
        self.state.lock().crash_state()
    }

    /// From now on (or no longer), record the [`CrashState`] after every mutating call.
    /// Cheap: durable images are shared, only the lists of unsynced changes are copied.
    pub fn capture(&self, on: bool) {
        self.state.lock().capturing = on;
    }

    /// The crash states recorded since the last call, in call order.
    pub fn take_captures(&self) -> Vec<CrashState> {
        std::mem::take(&mut self.state.lock().captures)
    }

    /// The live contents of every file, by name (what a process crash would leave).
    pub fn live_files(&self) -> BTreeMap<String, Vec<u8>> {
        let st = self.state.lock();
        st.live_dir.iter().map(|(n, &i)| (n.clone(), st.inodes[i].live.clone())).collect()
    }
}

impl Storage for SimStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut st = self.state.lock();
        let inode = match st.live_dir.get(name) {
            Some(&i) => i,
            None if create => {
                let i = st.new_inode(Vec::new());
                st.live_dir.insert(name.to_owned(), i);
                st.dir_pending.push(DirOp::Create { name: name.to_owned(), inode: i });
                st.done(OpKind::Create);
                i
            }
            None => return Err(io::Error::new(io::ErrorKind::NotFound, format!("no file named {name:?}"))),
        };
        Ok(Arc::new(SimFile { state: Arc::clone(&self.state), inode }))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        Ok(self.state.lock().live_dir.contains_key(name))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut st = self.state.lock();
        if st.live_dir.remove(name).is_some() {
            st.dir_pending.push(DirOp::Remove { name: name.to_owned() });
            st.done(OpKind::Remove);
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut st = self.state.lock();
        let i = st.live_dir.remove(from).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file named {from:?}")))?;
        st.live_dir.insert(to.to_owned(), i);
        st.dir_pending.push(DirOp::Rename { from: from.to_owned(), to: to.to_owned() });
        st.done(OpKind::Rename);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut st = self.state.lock();
        st.durable_dir = st.live_dir.clone();
        st.dir_pending.clear();
        st.done(OpKind::SyncDir);
        Ok(())
    }

    fn lock(&self) -> Result<Box<dyn StoreLock>, LockError> {
        let mut st = self.state.lock();
        if st.locked {
            return Err(LockError::Held { pid: std::process::id() });
        }
        st.locked = true;
        Ok(Box::new(SimLock { state: Arc::clone(&self.state) }))
    }

    fn dir_path(&self) -> Option<&Path> {
        None
    }
}

struct SimLock {
    state: Arc<Mutex<State>>,
}

impl StoreLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.state.lock().locked = false;
    }
}

struct SimFile {
    state: Arc<Mutex<State>>,
    inode: usize,
}

fn index(offset: u64, len: usize) -> io::Result<(usize, usize)> {
    let start = usize::try_from(offset).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset out of range"))?;
    let end = start.checked_add(len).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file offset out of range"))?;
    Ok((start, end))
}

fn write_into(data: &mut Vec<u8>, start: usize, bytes: &[u8]) {
    let end = start + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(bytes);
}

impl SimFile {
    fn sync(&self) -> io::Result<()> {
        let mut st = self.state.lock();
        let f = &mut st.inodes[self.inode];
        f.durable = Arc::new(f.live.clone());
        f.pending.clear();
        st.done(OpKind::SyncFile);
        Ok(())
    }
}

impl StorageFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state.lock().inodes[self.inode].live.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let st = self.state.lock();
        let data = &st.inodes[self.inode].live;
        let src = index(offset, buf.len())
            .ok()
            .and_then(|(s, e)| data.get(s..e))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "failed to fill whole buffer"))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let (start, _) = index(offset, buf.len())?;
        let mut st = self.state.lock();
        let f = &mut st.inodes[self.inode];
        write_into(&mut f.live, start, buf);
        f.pending.push(Arc::new(Change::Write { offset, data: buf.to_vec() }));
        st.done(OpKind::Write);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let (n, _) = index(len, 0)?;
        let mut st = self.state.lock();
        let f = &mut st.inodes[self.inode];
        f.live.resize(n, 0);
        f.pending.push(Arc::new(Change::SetLen(len)));
        st.done(OpKind::SetLen);
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping> {
        let st = self.state.lock();
        let data = &st.inodes[self.inode].live;
        let (offset, len) = super::check_map_range(offset, len, data.len() as u64)?;
        Ok(Arc::new(data[offset..offset + len].to_vec()))
    }
}

/// One file's durable contents and its unsynced changes.
type FileState = (Arc<Vec<u8>>, Vec<Arc<Change>>);

/// What a power loss at one moment starts from: the durable image of every file and of the
/// directory, and the changes made since each was last synced. Cheap to keep many of.
#[derive(Debug, Clone)]
pub struct CrashState {
    /// Mutating calls made before this moment.
    pub op: u64,
    durable_dir: BTreeMap<String, usize>,
    dir_pending: Vec<DirOp>,
    /// Per inode: durable contents and the unsynced changes.
    files: Vec<FileState>,
}

/// The files found after a power loss, and what of the unsynced changes made it.
#[derive(Debug, Clone, Default)]
pub struct CrashImage {
    /// Name → contents.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Unsynced file changes (of files present in the image) kept, whole or torn.
    pub kept: usize,
    /// Unsynced file changes lost.
    pub lost: usize,
    /// Writes kept torn: only a prefix of them reached the disk.
    pub torn: usize,
    /// Unsynced directory operations kept / lost.
    pub dir_kept: usize,
    /// See `dir_kept`.
    pub dir_lost: usize,
}

/// How much of the unsynced changes an image keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Nothing: the durable image alone.
    Nothing,
    /// Everything (what a process crash leaves).
    Everything,
    /// A random choice.
    Random,
}

impl CrashState {
    /// Unsynced file changes (over every file, named or not) and unsynced directory
    /// operations.
    pub fn unsynced(&self) -> (usize, usize) {
        (self.files.iter().map(|f| f.1.len()).sum(), self.dir_pending.len())
    }

    /// Only what was made durable survives.
    pub fn durable_image(&self) -> CrashImage {
        self.build(&mut Rng::new(0), Keep::Nothing)
    }

    /// Every change survives: the live image (what a process crash leaves).
    pub fn live_image(&self) -> CrashImage {
        self.build(&mut Rng::new(0), Keep::Everything)
    }

    /// A random image a power loss could leave, chosen by `seed`: the durable image, a random
    /// prefix of the unsynced directory operations, and per file a random subset of its
    /// unsynced changes in order, the last kept write possibly torn.
    pub fn image(&self, seed: u64) -> CrashImage {
        self.build(&mut Rng::new(seed), Keep::Random)
    }

    fn build(&self, rng: &mut Rng, keep: Keep) -> CrashImage {
        let mut out = CrashImage::default();
        let n_dir = self.dir_pending.len();
        let dir_keep = match keep {
            Keep::Nothing => 0,
            Keep::Everything => n_dir,
            Keep::Random => rng.below(n_dir as u64 + 1) as usize,
        };
        let mut dir = self.durable_dir.clone();
        for op in &self.dir_pending[..dir_keep] {
            op.apply(&mut dir);
        }
        out.dir_kept = dir_keep;
        out.dir_lost = n_dir - dir_keep;
        // One probability of keeping a change for the whole image, so that images range from
        // "almost nothing" to "almost everything".
        let p = rng.below(5);
        for (name, &i) in &dir {
            let (durable, pending) = &self.files[i];
            let mut data = durable.as_ref().clone();
            let kept: Vec<bool> = pending
                .iter()
                .map(|_| match keep {
                    Keep::Nothing => false,
                    Keep::Everything => true,
                    Keep::Random => rng.below(4) < p,
                })
                .collect();
            let last_write = pending.iter().zip(&kept).rposition(|(c, k)| *k && matches!(**c, Change::Write { .. }));
            let tear = keep == Keep::Random && last_write.is_some() && rng.chance(1, 2);
            for (j, (c, k)) in pending.iter().zip(&kept).enumerate() {
                if !k {
                    out.lost += 1;
                    continue;
                }
                out.kept += 1;
                match &**c {
                    Change::SetLen(len) => data.resize(*len as usize, 0),
                    Change::Write { offset, data: bytes } => {
                        let mut bytes = &bytes[..];
                        if tear && Some(j) == last_write {
                            let n = bytes.len() as u64;
                            let cut = match rng.below(3) {
                                0 => rng.below(n),
                                1 => rng.below(n.div_ceil(512)) * 512,
                                _ => rng.below(n.div_ceil(4096)) * 4096,
                            };
                            bytes = &bytes[..cut as usize];
                            out.torn += 1;
                        }
                        write_into(&mut data, *offset as usize, bytes);
                    }
                }
            }
            out.files.insert(name.clone(), data);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(st: &SimStorage, name: &str) -> Vec<u8> {
        let f = st.open(name, false).expect("open");
        let mut buf = vec![0u8; f.len().expect("len") as usize];
        f.read_exact_at(&mut buf, 0).expect("read");
        buf
    }

    #[test]
    fn keeps_the_storage_contract() {
        super::super::contract::check(&|| Box::new(SimStorage::new()));
        assert_eq!(SimStorage::new().dir_path(), None);
    }

    #[test]
    fn only_synced_contents_are_durable() {
        let st = SimStorage::new();
        let f = st.open("f", true).expect("open");
        f.write_all_at(b"hello", 0).expect("write");
        st.sync_dir().expect("sync dir");
        // Written, not synced: a crash may lose it.
        let c = st.crash_state();
        assert_eq!(c.unsynced(), (1, 0));
        assert_eq!(c.durable_image().files["f"], b"");
        assert_eq!(c.live_image().files["f"], b"hello");
        f.sync_data().expect("sync");
        f.write_all_at(b"J", 0).expect("overwrite");
        f.set_len(3).expect("truncate");
        let c = st.crash_state();
        assert_eq!(c.durable_image().files["f"], b"hello");
        assert_eq!(c.live_image().files["f"], b"Jel");
        // Every random image is the durable one plus some of the two changes, in order.
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            seen.insert(c.image(seed).files["f"].clone());
        }
        let allowed: std::collections::BTreeSet<Vec<u8>> = [&b"hello"[..], b"Jello", b"hel", b"Jel"].iter().map(|s| s.to_vec()).collect();
        assert!(seen.is_subset(&allowed), "{seen:?}");
        assert_eq!(seen.len(), 4, "every combination comes up: {seen:?}");
        // Reads and maps see the live image.
        assert_eq!(read_all(&st, "f"), b"Jel");
        assert_eq!((*f.map(0, 3).expect("map")).as_ref(), b"Jel");
    }

    #[test]
    fn directory_entries_need_a_directory_sync() {
        let st = SimStorage::new();
        let old = st.open("wal", true).expect("create");
        old.write_all_at(b"old", 0).expect("write");
        old.sync_all().expect("sync");
        st.sync_dir().expect("sync dir");
        let new = st.open("wal.new", true).expect("create");
        new.write_all_at(b"new", 0).expect("write");
        new.sync_all().expect("sync the new file");
        st.rename("wal.new", "wal").expect("rename");
        // The rename is not durable yet: the old file may come back under its name.
        let c = st.crash_state();
        assert_eq!(c.unsynced(), (0, 2));
        let d = c.durable_image();
        assert_eq!(d.files.keys().collect::<Vec<_>>(), ["wal"]);
        assert_eq!(d.files["wal"], b"old");
        let l = c.live_image();
        assert_eq!(l.files.keys().collect::<Vec<_>>(), ["wal"]);
        assert_eq!(l.files["wal"], b"new");
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..100 {
            let img = c.image(seed);
            outcomes.insert(img.files.iter().map(|(n, d)| format!("{n}={}", String::from_utf8_lossy(d))).collect::<Vec<_>>().join(","));
        }
        // Nothing, the creation only, or creation and rename: a prefix.
        let expect: std::collections::BTreeSet<String> = ["wal=old", "wal=old,wal.new=new", "wal=new"].iter().map(|s| s.to_string()).collect();
        assert_eq!(outcomes, expect);
        st.sync_dir().expect("sync dir");
        assert_eq!(st.crash_state().durable_image().files["wal"], b"new");
        // A file whose contents were synced but whose creation was not is gone.
        let lost = st.open("lost", true).expect("create");
        lost.write_all_at(b"x", 0).expect("write");
        lost.sync_all().expect("sync");
        assert!(!st.crash_state().durable_image().files.contains_key("lost"));
        st.remove("wal").expect("remove");
        assert!(st.crash_state().durable_image().files.contains_key("wal"), "a removal needs a directory sync too");
    }

    #[test]
    fn torn_writes_keep_a_prefix() {
        let st = SimStorage::new();
        let f = st.open("f", true).expect("create");
        st.sync_dir().expect("sync dir");
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
        f.write_all_at(&big, 0).expect("write");
        let c = st.crash_state();
        let (mut torn, mut aligned) = (0, 0);
        for seed in 0..300 {
            let img = c.image(seed);
            let d = &img.files["f"];
            assert_eq!(&big[..d.len()], &d[..], "an image holds a prefix of the write");
            if img.torn > 0 {
                torn += 1;
                assert!(d.len() < big.len());
                if d.len().is_multiple_of(512) {
                    aligned += 1;
                }
            }
        }
        assert!(torn > 30 && aligned > 10, "{torn} torn, {aligned} of them sector-aligned");
    }

    #[test]
    fn from_image_is_all_durable_and_captures_number_every_call() {
        let st = SimStorage::new();
        st.capture(true);
        let f = st.open("a", true).expect("create");
        f.write_all_at(b"abc", 0).expect("write");
        f.sync_data().expect("sync");
        st.sync_dir().expect("sync dir");
        assert_eq!(st.op_count(), 4);
        assert_eq!(st.sync_count(), 2);
        assert_eq!(st.op_kinds(), [OpKind::Create, OpKind::Write, OpKind::SyncFile, OpKind::SyncDir]);
        let caps = st.take_captures();
        assert_eq!(caps.iter().map(|c| c.op).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(caps[1].live_image().files["a"], b"abc");
        assert!(caps[1].durable_image().files.is_empty());
        let img = caps[3].durable_image();
        let back = SimStorage::from_image(&img);
        assert_eq!(back.crash_state().durable_image().files, img.files);
        assert_eq!(read_all(&back, "a"), b"abc");
        assert_eq!(back.op_count(), 0);
    }
}
