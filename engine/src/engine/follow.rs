//! A read-only engine: a reader in another process than the writer, following the store it
//! writes (FORMAT.md §4.4). It takes no lock and writes no file of the store. Its state is a
//! snapshot at one commit LSN `R`: the sealed pages of a superblock, the WAL's transactions up
//! to `R` over them, and the mirror read in a transaction whose `applied_lsn` is `R`.
//!
//! Every read and search first [pins](Engine::pin) the snapshot: it begins a mirror read
//! transaction, and if the mirror has moved on, moves the state to the same commit (the new
//! transactions of the same WAL, or a new snapshot after a checkpoint), then answers inside
//! that transaction and ends it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use memento_format::wal::{WalHeader, HEADER_LEN};
use parking_lot::{Mutex, MutexGuard};

use super::builder::EngineBuilder;
use super::open::{assemble, checkpoint_state, start_model_load, wait_for_model, Access};
use super::state::{apply_to_state, State};
use super::{Engine, MIRROR_FILE};
use crate::error::{Error, Result};
use crate::mirror::Mirror;
use crate::storage::{FsStorage, Storage, StorageFile};
use crate::vecfile::{self, VecFile};
use crate::wal::{self, WAL_FILE};

/// How many times a snapshot is tried before giving up: a checkpoint or a mirror rebuild
/// between its steps makes it start again (FORMAT.md §4.4), and either is over in
/// milliseconds.
const ATTEMPTS: u32 = 400;
/// The pause between two attempts that found the mirror being rebuilt or behind the checkpoint.
const PAUSE: Duration = Duration::from_millis(5);

/// How one attempt to pin a reader's snapshot ended.
enum Attempt {
    /// The mirror's read transaction is open at the state's commit.
    Pinned,
    /// A new snapshot was taken (a checkpoint came since the last one): try again now.
    Again,
    /// The mirror is being created or rebuilt: try again after a pause.
    Wait,
}

/// What a read-only engine holds of the files it follows.
pub(in crate::engine) struct Follow {
    /// The WAL of the snapshot's checkpoint, open read-only (a checkpoint renames a new one
    /// over it; this one stays readable).
    wal: Arc<dyn StorageFile>,
    salt: u32,
    /// The sequence of the snapshot's superblock.
    sb_sequence: u64,
    /// Where the next transaction begins in `wal`, and its first LSN.
    offset: u64,
    next_lsn: u64,
    /// The mirror file's identity when it was opened: a rebuilt mirror is a new file.
    mirror_id: Option<FileId>,
}

/// A file's device and inode.
type FileId = (u64, u64);

fn file_id(path: &Path) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// A read of a read-only engine in progress: the mirror's read transaction stays open (and
/// other reads of this engine wait) until it is dropped. Nothing for a writer.
pub(in crate::engine) struct Pin<'a> {
    engine: &'a Engine,
    gate: Option<MutexGuard<'a, ()>>,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        if self.gate.is_some() {
            // Ending a read transaction cannot lose anything; a failure leaves the connection
            // as SQLite left it, and the next pin begins again.
            let _ = self.engine.mirror.lock().end_read();
        }
    }
}

impl Engine {
    /// Opens a read-only engine (see [`EngineBuilder::read_only`]).
    pub(super) fn open_reader(mut b: EngineBuilder) -> Result<Engine> {
        let model_load = start_model_load(&mut b);
        let dir = match &b.storage {
            Err(path) => path.clone(),
            Ok(_) => return Err(Error::invalid("a read-only engine reads a store directory; it cannot be given a storage")),
        };
        let no_store = || Error::invalid(format!("there is no store at {}", dir.display()));
        let storage: Arc<dyn Storage> = Arc::new(FsStorage::existing(&dir).map_err(|_| no_store())?);
        if !storage.exists(vecfile::VEC_FILE).map_err(|e| Error::io("looking for the vector file", e))? {
            return Err(no_store());
        }
        let mut mirror = None;
        let (state, follow) = snapshot(storage.as_ref(), &dir, &mut mirror)?;
        let sb = state.vf.superblock().clone();
        let dim = sb.dimension as usize;
        if let Some(d) = b.dimension.filter(|&d| d != dim) {
            return Err(Error::Incompatible { reason: format!("the store holds {dim}-dimensional vectors, not {d}") });
        }
        if let Some(m) = b.metric.filter(|&m| m != sb.metric) {
            return Err(Error::Incompatible { reason: format!("the store uses the {} metric, not {}", sb.metric.name(), m.name()) });
        }
        let embedder = model_load.map(|l| wait_for_model(l, &sb.model)).transpose()?;
        let mirror = mirror.expect("a snapshot opens the mirror");
        Ok(assemble(b, storage, dir, Access::Reader(follow), &sb, state, mirror, embedder, Vec::new()))
    }

    /// Pins the snapshot for one read (see the module documentation): in a read-only engine,
    /// begins the mirror's read transaction and brings the state to its commit; nothing in a
    /// writer.
    pub(super) fn pin(&self) -> Result<Pin<'_>> {
        let Some(follow) = &self.follow else {
            return Ok(Pin { engine: self, gate: None });
        };
        let gate = self.read_gate.lock();
        for _ in 0..ATTEMPTS {
            match self.try_pin(follow)? {
                Attempt::Pinned => return Ok(Pin { engine: self, gate: Some(gate) }),
                // A new snapshot was just taken: pin it at once, before the next checkpoint
                // (a writer checkpointing every few milliseconds would otherwise outpace a
                // reader that paused here).
                Attempt::Again => {}
                Attempt::Wait => std::thread::sleep(PAUSE),
            }
        }
        Err(busy(&self.dir))
    }

    /// One attempt of [`Engine::pin`]: [`Attempt::Pinned`] with the mirror's read transaction
    /// open at the state's commit; otherwise no transaction is open and it must be tried again.
    fn try_pin(&self, follow: &Mutex<Follow>) -> Result<Attempt> {
        let mut f = follow.lock();
        let mirror_path = self.dir.join(MIRROR_FILE);
        let now = file_id(&mirror_path);
        if now.is_some() && now != f.mirror_id {
            // The writer replaced a damaged mirror: read the new file.
            *self.mirror.lock() = Mirror::open_read_only(&mirror_path, false)?;
            f.mirror_id = now;
        }
        let header = self.mirror.lock().begin_read();
        let applied = match header {
            Ok(Some(h)) if h.store_uuid == self.store_uuid => h.applied_lsn,
            // A mirror being created or rebuilt: not yet this store's, or not yet filled.
            Ok(_) => return self.end_read().map(|()| Attempt::Wait),
            Err(e) => {
                self.end_read()?;
                return Err(e);
            }
        };
        let last = self.state.read().last_lsn;
        if applied == last {
            return Ok(Attempt::Pinned);
        }
        let moved = match self.follow_wal(&mut f, applied) {
            Ok(moved) => moved,
            Err(e) => {
                self.end_read()?;
                return Err(e);
            }
        };
        if moved {
            return Ok(Attempt::Pinned);
        }
        // A checkpoint since the snapshot (or a mirror behind it): a new snapshot.
        self.end_read()?;
        let mut m = Some(std::mem::replace(&mut *self.mirror.lock(), Mirror::unusable()?));
        let taken = snapshot(self.storage.as_ref(), &self.dir, &mut m);
        // Whatever the snapshot did, the engine keeps a connection it can read with: the one it
        // had (or the snapshot's), or, when the snapshot dropped it (the file was being
        // replaced), none, and the next pin opens the file again. A failed snapshot leaves the
        // engine as it was, for the next read to try again.
        match m {
            Some(m) => *self.mirror.lock() = m,
            None => f.mirror_id = None,
        }
        let (state, fresh) = taken?;
        // The graph file as it is now, for this snapshot's vector file (FORMAT.md §7.4).
        match super::graph::open_graph(self.storage.as_ref(), &state) {
            Ok(g) => self.graph.set_mapped(g),
            Err(why) => {
                *self.graph.mapped.write() = None;
                *self.graph.problem.lock() = Some(why);
            }
        }
        *self.state.write() = state;
        *f = fresh;
        Ok(Attempt::Again)
    }

    fn end_read(&self) -> Result<()> {
        self.mirror.lock().end_read()
    }

    /// Moves the state forward to commit `to` by the new transactions of the WAL it holds, if
    /// the checkpoint is still the snapshot's; false when it is not (or the WAL does not reach
    /// `to`), and nothing changed.
    fn follow_wal(&self, f: &mut Follow, to: u64) -> Result<bool> {
        let last = self.state.read().last_lsn;
        if to < last {
            return Ok(false);
        }
        if current_sequence(self.storage.as_ref(), &self.dir)? != f.sb_sequence {
            return Ok(false);
        }
        let found = wal::follow(f.wal.as_ref(), f.salt, f.offset, f.next_lsn, self.dim, to)?;
        if !found.reached {
            return Ok(false);
        }
        let mut st = self.state.write();
        for t in found.txns {
            f.next_lsn = t.commit_lsn + 1;
            apply_to_state(&mut st, t.ops, t.first_lsn, self.dim);
        }
        f.offset = found.end;
        Ok(true)
    }

    /// The bytes of the WAL a read-only engine has read.
    pub(super) fn followed_wal_bytes(&self) -> u64 {
        self.follow.as_ref().map_or(0, |f| f.lock().offset)
    }
}

/// The store keeps changing under the reader (a mirror rebuilt for seconds, say).
fn busy(dir: &Path) -> Error {
    Error::io(
        format!("following the store {}", dir.display()),
        std::io::Error::new(std::io::ErrorKind::WouldBlock, "the store's files kept changing between the steps of a snapshot; try again"),
    )
}

/// The sequence of the store's current superblock (read as a reader reads it: two positioned
/// reads of page 0).
fn current_sequence(storage: &dyn Storage, dir: &Path) -> Result<u64> {
    let file = open_read(storage, vecfile::VEC_FILE, "the vector file")?;
    let len = file.len().map_err(|e| Error::io("reading the vector file's length", e))?;
    let cur = vecfile::current_superblock(&dir.join(vecfile::VEC_FILE), len, |b, off| file.read_exact_at(b, off))?;
    Ok(cur.sb.sequence)
}

fn open_read(storage: &dyn Storage, name: &str, what: &str) -> Result<Arc<dyn StorageFile>> {
    storage
        .open_read(name)
        .map_err(|e| Error::io(format!("opening {what}"), e))?
        .ok_or_else(|| Error::io(format!("opening {what}"), std::io::Error::from(std::io::ErrorKind::NotFound)))
}

/// Opens a snapshot (FORMAT.md §4.4, "Opening a snapshot"), trying again when a checkpoint or
/// a mirror rebuild comes between its steps. `mirror` is the reader's connection (opened here
/// if `None`, or if the file was replaced); it is left with no transaction open.
fn snapshot(storage: &dyn Storage, dir: &Path, mirror: &mut Option<Mirror>) -> Result<(State, Follow)> {
    let mirror_path = dir.join(MIRROR_FILE);
    for _ in 0..ATTEMPTS {
        if let Some(done) = try_snapshot(storage, dir, &mirror_path, mirror)? {
            return Ok(done);
        }
        std::thread::sleep(PAUSE);
    }
    Err(busy(dir))
}

fn try_snapshot(storage: &dyn Storage, dir: &Path, mirror_path: &Path, mirror: &mut Option<Mirror>) -> Result<Option<(State, Follow)>> {
    // 1. The current superblock, its sealed pages mapped, its directory read.
    let vf = VecFile::open_read_only(storage, dir.join(vecfile::VEC_FILE))?;
    let sb = vf.superblock().clone();
    // 2. The mirror, in a read transaction: its applied LSN is the snapshot's.
    let id = file_id(mirror_path);
    if id.is_none() {
        return Ok(None); // being replaced by the writer
    }
    let m = match mirror.take() {
        Some(m) if id == file_id(mirror_path) => m,
        _ => match Mirror::open_read_only(mirror_path, false) {
            Ok(m) => m,
            // Deleted between the look and the open: being replaced.
            Err(_) if file_id(mirror_path).is_none() => return Ok(None),
            Err(e) => return Err(e),
        },
    };
    let m = mirror.insert(m);
    let applied = match m.begin_read()? {
        Some(h) if h.store_uuid == sb.store_uuid && h.applied_lsn >= sb.checkpoint_lsn => h.applied_lsn,
        _ => {
            m.end_read()?;
            return Ok(None);
        }
    };
    let out = follow_from_checkpoint(storage, dir, vf, &sb, applied, id);
    m.end_read()?;
    out
}

/// Steps 3 and 4 of a snapshot: the WAL of the checkpoint, read up to `applied`, over the
/// checkpoint's state. `None` when the WAL is another generation or does not reach it.
fn follow_from_checkpoint(
    storage: &dyn Storage,
    dir: &Path,
    vf: VecFile,
    sb: &memento_format::superblock::Superblock,
    applied: u64,
    mirror_id: Option<FileId>,
) -> Result<Option<(State, Follow)>> {
    let wal_path: PathBuf = dir.join(WAL_FILE);
    let Some(file) = storage.open_read(WAL_FILE).map_err(|e| Error::io("opening the WAL", e))? else {
        return Ok(None);
    };
    let mut head = [0u8; HEADER_LEN];
    if file.read_exact_at(&mut head, 0).is_err() {
        return Ok(None); // being created
    }
    let header = WalHeader::decode(&head).map_err(|e| Error::corrupted(&wal_path, e.offset as u64, e.reason))?;
    if header.store_uuid != sb.store_uuid {
        return Err(Error::corrupted(&wal_path, 0, "the WAL belongs to another store"));
    }
    if header.generation != sb.wal_generation || header.start_lsn != sb.checkpoint_lsn + 1 {
        return Ok(None);
    }
    let dim = sb.dimension as usize;
    let found = wal::follow(file.as_ref(), header.salt, HEADER_LEN as u64, header.start_lsn, dim, applied)?;
    if !found.reached {
        return Ok(None);
    }
    let mut state = checkpoint_state(vf)?;
    if !state.vf.is_quantized() {
        // A version-1 file: its int8 copies live in memory, as a writer's would until its
        // next checkpoint writes them.
        state.vf.derive_int8_copies(&mut state.pending)?;
    }
    let mut next_lsn = header.start_lsn;
    for t in found.txns {
        next_lsn = t.commit_lsn + 1;
        apply_to_state(&mut state, t.ops, t.first_lsn, dim);
    }
    let follow = Follow { wal: file, salt: header.salt, sb_sequence: sb.sequence, offset: found.end, next_lsn, mirror_id };
    Ok(Some((state, follow)))
}
