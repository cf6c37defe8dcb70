//! Opening a store: [`Engine::open_with`] runs the steps below in order, each a function of
//! its own. Recovery is the middle of it: the vector file's checkpoint is the base, the WAL's
//! committed transactions are replayed over it in memory, and the mirror (derived state) is
//! brought up to the same point, rebuilt if it is stale or damaged (FORMAT.md §4.3).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use memento_format::superblock::Superblock;
use parking_lot::{Mutex, RwLock};

use super::builder::{EmbedderSource, EngineBuilder};
use super::create::new_superblock;
use super::follow::Follow;
use super::group::GroupCommit;
use super::mirror_access::{fresh_mirror, open_mirror, rebuild_mirror};
use super::poison::Poison;
use super::process::{OwnedByOpener, ProcessGuard};
use super::state::{apply_to_state, mirror_ops, State, Writer};
use super::text::{self, ModelLoad};
use super::{io_err, Engine};
use crate::embed::{Embedder, EmbeddingCache, ModelIdentity, OnnxEmbedder};
use crate::error::{Error, Result};
use crate::index::FlatIndex;
use crate::mirror::{is_damage, Mirror};
use crate::slots::SlotBitmap;
use crate::storage::{FsStorage, LockError, Storage, StoreLock};
use crate::vecfile::{self, Pending, VecFile};
use crate::wal::{self, Op, Recovered};

impl Engine {
    pub(super) fn open_with(mut b: EngineBuilder) -> Result<Engine> {
        if let Err(dir) = &b.storage {
            crate::collections::refuse_root(dir)?;
        }
        if let Some(g) = &b.graph {
            g.check()?;
        }
        if b.read_only {
            return Engine::open_reader(b);
        }
        let mut model_load = start_model_load(&mut b);
        let new_store = check_new_store(&b, &mut model_load)?;
        let storage = storage_of(&b)?;
        let dir = storage.dir_path().map_or_else(|| PathBuf::from("<memory>"), Path::to_path_buf);
        let lock = take_lock(storage.as_ref(), &dir)?;
        remove_leftovers(storage.as_ref())?;
        create_if_missing(&b, storage.as_ref(), &dir, new_store, &mut model_load)?;
        let vf = open_vector_file(&b, storage.as_ref(), &dir)?;
        let sb = vf.superblock().clone();
        let wal_path = dir.join(wal::WAL_FILE);
        let rec = recover_wal(storage.as_ref(), &wal_path, &vf)?;
        let mut recovery = Vec::new();
        if let Some((at, n, why)) = &rec.dropped_tail {
            recovery.push(format!("dropped {n} bytes of torn WAL tail at offset {at} ({why})"));
        }
        let mut state = checkpoint_state(vf)?;
        upgrade_version_1(&mut state, &mut recovery)?;
        let (next_slot, last_lsn) = replay_wal(&mut state, &rec, &wal_path)?;
        let mirror = bring_mirror_up_to_date(storage.as_ref(), &dir, &state, &rec, last_lsn, &mut recovery)?;
        let embedder = model_load.map(|l| wait_for_model(l, &sb.model)).transpose()?;
        let group = GroupCommit::new(rec.wal.header.generation, rec.wal.end);
        let writer = Writer { wal: rec.wal, next_lsn: last_lsn + 1, next_slot, compact_retry_at: 0 };
        Ok(assemble(b, storage, dir, Access::Writer(writer, lock, group), &sb, state, mirror, embedder, recovery))
    }
}

/// The embedding model starts loading (on a second thread, for a model directory) while the
/// store opens.
pub(super) fn start_model_load(b: &mut EngineBuilder) -> Option<ModelLoad> {
    b.embedder.take().map(|src| match src {
        EmbedderSource::Ready(e) => ModelLoad::Ready(e),
        EmbedderSource::Load(dir, opts) => {
            ModelLoad::Loading(std::thread::spawn(move || OnnxEmbedder::load(&dir, &opts).map(|e| Arc::new(e) as Arc<dyn Embedder>)))
        }
    })
}

/// A new store's options are checked before anything is created on disk, so that a refused
/// open leaves nothing behind (not even the directory or its LOCK). Returns the new store's
/// superblock when there is no store and the builder may create one.
fn check_new_store(b: &EngineBuilder, model_load: &mut Option<ModelLoad>) -> Result<Option<Superblock>> {
    let missing = match &b.storage {
        Ok(s) => !s.exists(vecfile::VEC_FILE).map_err(io_err("looking for the vector file"))?,
        Err(path) => !path.join(vecfile::VEC_FILE).exists(),
    };
    if !missing {
        return Ok(None);
    }
    if let Err(path) = &b.storage {
        if !b.create {
            return Err(Error::invalid(format!("there is no store at {}", path.display())));
        }
    }
    if !b.create {
        return Ok(None);
    }
    let shown = b.storage.as_ref().err().map_or(Path::new("<memory>"), PathBuf::as_path);
    new_superblock(b, model_load, shown).map(Some)
}

/// The builder's storage, or a file storage on its directory (created if missing).
fn storage_of(b: &EngineBuilder) -> Result<Arc<dyn Storage>> {
    match &b.storage {
        Ok(s) => Ok(Arc::clone(s)),
        Err(path) => {
            let s = FsStorage::with_access(path, b.group_access).map_err(|e| Error::io(format!("creating the store directory {}", path.display()), e))?;
            Ok(Arc::new(s) as Arc<dyn Storage>)
        }
    }
}

/// The store's lock: one engine per store ([`Error::Locked`] names the holder).
fn take_lock(storage: &dyn Storage, dir: &Path) -> Result<Box<dyn StoreLock>> {
    storage.lock().map_err(|e| match e {
        LockError::Held { pid } => Error::Locked { path: dir.to_path_buf(), pid },
        LockError::Io(e) => Error::io("taking the store's lock", e),
    })
}

/// The `.new` files an interrupted create, checkpoint or graph write left (never yet renamed
/// into place).
fn remove_leftovers(storage: &dyn Storage) -> Result<()> {
    for leftover in [format!("{}.new", vecfile::VEC_FILE), format!("{}.new", wal::WAL_FILE), format!("{}.new", crate::graph::GRAPH_FILE)] {
        storage.remove(&leftover).map_err(io_err("removing a leftover temporary file"))?;
    }
    Ok(())
}

/// Writes a new, empty vector file if there is none (and the builder may create one).
fn create_if_missing(b: &EngineBuilder, storage: &dyn Storage, dir: &Path, new_store: Option<Superblock>, model_load: &mut Option<ModelLoad>) -> Result<()> {
    if storage.exists(vecfile::VEC_FILE).map_err(io_err("looking for the vector file"))? {
        return Ok(());
    }
    if !b.create {
        return Err(Error::invalid(format!("there is no store at {}", dir.display())));
    }
    if storage.exists(wal::WAL_FILE).map_err(io_err("looking for the WAL"))? {
        return Err(Error::corrupted(dir.join(vecfile::VEC_FILE), 0, "the vector file is missing but a WAL exists"));
    }
    // (Removed by another process since it was looked for: checked now.)
    let sb = match new_store {
        Some(sb) => sb,
        None => new_superblock(b, model_load, dir)?,
    };
    VecFile::create(storage, &sb)
}

/// The vector file at its checkpoint, checked against the dimension and metric asked for.
fn open_vector_file(b: &EngineBuilder, storage: &dyn Storage, dir: &Path) -> Result<VecFile> {
    let vf = VecFile::open(storage, dir.join(vecfile::VEC_FILE))?;
    let sb = vf.superblock();
    let dim = sb.dimension as usize;
    if let Some(d) = b.dimension.filter(|&d| d != dim) {
        return Err(Error::Incompatible { reason: format!("the store holds {dim}-dimensional vectors, not {d}") });
    }
    if let Some(m) = b.metric.filter(|&m| m != sb.metric) {
        return Err(Error::Incompatible { reason: format!("the store uses the {} metric, not {}", sb.metric.name(), m.name()) });
    }
    Ok(vf)
}

/// The WAL's committed transactions after the checkpoint (a torn tail dropped).
fn recover_wal(storage: &dyn Storage, wal_path: &Path, vf: &VecFile) -> Result<Recovered> {
    let sb = vf.superblock();
    wal::recover(storage, wal_path, sb.wal_generation, sb.checkpoint_lsn + 1, sb.store_uuid, sb.dimension as usize, true).map_err(|e| {
        // A WAL that does not continue the checkpoint in use, beside a damaged superblock
        // copy: the damaged copy held the newer checkpoint, which is what is lost.
        match (vf.other_copy_damage(), e) {
            (Some(damage), Error::Corrupted { file, reason, .. }) if file == wal_path => Error::corrupted(
                vf.path(),
                0,
                format!(
                    "{damage}, and the other copy holds an older checkpoint (WAL generation {}, up to LSN {}) that the WAL does not continue ({reason}): the commits of the damaged copy's checkpoint are lost",
                    sb.wal_generation, sb.checkpoint_lsn
                ),
            ),
            (_, e) => e,
        }
    })
}

/// The in-memory state of the checkpoint: nothing pending, its deleted slots.
pub(super) fn checkpoint_state(vf: VecFile) -> Result<State> {
    let mut dead = SlotBitmap::default();
    for (slot, _) in vf.tombstones()? {
        dead.insert(slot);
    }
    let sb = vf.superblock();
    let (live_count, last_lsn) = (sb.live_count, sb.checkpoint_lsn);
    Ok(State { vf, pending: Pending::default(), dead, live_count, last_lsn })
}

/// A version-1 file has no int8 copies: derive them now; the next checkpoint writes them and
/// upgrades the file (FORMAT.md §2.1).
fn upgrade_version_1(state: &mut State, recovery: &mut Vec<String>) -> Result<()> {
    if state.vf.is_quantized() {
        return Ok(());
    }
    let n = state.vf.derive_int8_copies(&mut state.pending)?;
    if n > 0 {
        recovery.push(format!("derived the int8 copies of {n} vectors of a version-1 file; the next checkpoint upgrades it to version 2"));
    }
    Ok(())
}

/// Applies the WAL's transactions to the state; returns the next slot and the last LSN.
fn replay_wal(state: &mut State, rec: &Recovered, wal_path: &Path) -> Result<(u64, u64)> {
    let sb = state.vf.superblock();
    let dim = sb.dimension as usize;
    let (mut next_slot, mut last_lsn) = (sb.next_slot, sb.checkpoint_lsn);
    for t in &rec.txns {
        for op in &t.ops {
            if let Op::Put { slot, .. } = op {
                if *slot != next_slot {
                    return Err(Error::corrupted(
                        wal_path,
                        0,
                        format!("a put record of LSN range {}..{} uses slot {slot} where {next_slot} was next", t.first_lsn, t.commit_lsn),
                    ));
                }
                next_slot += 1;
            }
        }
        apply_to_state(state, t.ops.clone(), t.first_lsn, dim);
        last_lsn = t.commit_lsn;
    }
    Ok((next_slot, last_lsn))
}

/// The mirror, brought to the state's last commit. Damage found on the way (a page that fails
/// its check, say) replaces it with a new file, filled the same way, once.
fn bring_mirror_up_to_date(storage: &dyn Storage, dir: &Path, state: &State, rec: &Recovered, last_lsn: u64, recovery: &mut Vec<String>) -> Result<Mirror> {
    let mut mirror = open_mirror(storage, dir)?;
    if let Err(e) = update_mirror(&mut mirror, state, rec, last_lsn, recovery) {
        if !is_damage(&e) {
            return Err(e);
        }
        recovery.push(format!("replaced the mirror because {e}"));
        drop(std::mem::replace(&mut mirror, Mirror::unusable()?));
        mirror = fresh_mirror(storage, dir)?;
        update_mirror(&mut mirror, state, rec, last_lsn, recovery)?;
    }
    Ok(mirror)
}

/// Rebuilds a stale mirror from the vector file, replays the WAL into it (idempotent by LSN),
/// and rebuilds it once more if its row count still disagrees with the log's.
fn update_mirror(mirror: &mut Mirror, state: &State, rec: &Recovered, last_lsn: u64, recovery: &mut Vec<String>) -> Result<()> {
    let sb = state.vf.superblock();
    let hdr = mirror.header()?;
    let stale = match &hdr {
        None => Some("it is new".to_string()),
        Some(h) if h.store_uuid != sb.store_uuid => Some("it belongs to another store".into()),
        Some(h) if h.applied_lsn < sb.checkpoint_lsn => Some(format!("it stops at LSN {}, before the checkpoint at {}", h.applied_lsn, sb.checkpoint_lsn)),
        Some(h) if h.applied_lsn > last_lsn => Some(format!("it is ahead of the log (LSN {} > {last_lsn})", h.applied_lsn)),
        Some(_) => None,
    };
    if let Some(why) = stale {
        if hdr.is_some() || sb.checkpoint_lsn > 0 {
            recovery.push(format!("rebuilt the mirror from the vector file because {why}"));
        }
        rebuild_mirror(mirror, &state.vf, sb.store_uuid, sb.checkpoint_lsn)?;
    }
    // The WAL's transactions after the checkpoint (idempotent by LSN).
    let replay = |m: &mut Mirror| rec.txns.iter().try_for_each(|t| m.apply(t.commit_lsn, &mirror_ops(&t.ops)).map(drop));
    replay(mirror)?;
    // A mirror whose header is current can still have lost or gained rows (a hand edit, a
    // restore of the wrong copy): its row count against the log's live count catches that for
    // the price of one COUNT. A changed row is left to `check_integrity`.
    let rows = mirror.count()?;
    if rows != state.live_count {
        recovery.push(format!("rebuilt the mirror from the vector file because it holds {rows} records where the log has {}", state.live_count));
        rebuild_mirror(mirror, &state.vf, sb.store_uuid, sb.checkpoint_lsn)?;
        replay(mirror)?;
    }
    Ok(())
}

/// The model, loaded, checked to be the store's.
pub(super) fn wait_for_model(load: ModelLoad, store_model: &ModelIdentity) -> Result<Arc<dyn Embedder>> {
    let e = load.wait()?;
    text::check_model(store_model, e.identity())?;
    Ok(e)
}

/// How an engine holds its store: as its one writer, or as a reader following it.
pub(super) enum Access {
    Writer(Writer, Box<dyn StoreLock>, GroupCommit),
    Reader(Follow),
}

/// The open engine, from what the steps produced.
#[allow(clippy::too_many_arguments)]
pub(super) fn assemble(
    b: EngineBuilder,
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    access: Access,
    sb: &Superblock,
    state: State,
    mirror: Mirror,
    embedder: Option<Arc<dyn Embedder>>,
    recovery: Vec<String>,
) -> Engine {
    let process = ProcessGuard::new();
    let (writer, lock, group, follow) = match access {
        Access::Writer(w, lock, group) => (Some(Mutex::new(w)), Some(lock), group, None),
        Access::Reader(f) => (None, None, GroupCommit::new(0, 0), Some(Mutex::new(f))),
    };
    // A reader writes no file of the store: no persisted embedding cache.
    let disk_cache_entries = if writer.is_some() { b.disk_cache_entries } else { 0 };
    let mut recovery = recovery;
    let graph = Arc::new(crate::graph::builder::GraphIndex::new(b.graph.unwrap_or_default()));
    if b.graph.is_some() {
        match super::graph::open_graph(storage.as_ref(), &state) {
            Ok(g) => graph.set_mapped(g),
            // A damaged graph is derived state: the writer removes it (and its builder makes a
            // new one), as a damaged mirror is replaced at open; a reader only leaves it unused.
            Err(why) if writer.is_some() => {
                let removed = storage.remove(crate::graph::GRAPH_FILE).is_ok();
                recovery.push(format!("{why}: {}", if removed { "removed; the graph is rebuilt" } else { "it is not used, and is rebuilt" }));
            }
            Err(why) => {
                recovery.push(format!("{why}: it is not used"));
                *graph.problem.lock() = Some(why);
            }
        }
    }
    let state = Arc::new(RwLock::new(state));
    let search_threads = if b.search_threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { b.search_threads };
    let graph_thread = match (&writer, b.graph) {
        (Some(_), Some(_)) => {
            let (gi, st, sto) = (Arc::clone(&graph), Arc::clone(&state), Arc::clone(&storage));
            let dim = sb.dimension as usize;
            // Building uses every core, whatever the searches' thread count.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            std::thread::Builder::new().name("memento-graph".into()).spawn(move || super::graph::run_builder(gi, st, sto, dim, cores)).ok()
        }
        _ => None,
    };
    if graph_thread.is_some() {
        graph.wake();
    }
    Engine {
        storage,
        dir,
        durability: b.durability,
        wal_limit: b.wal_limit,
        dim: sb.dimension as usize,
        metric: sb.metric,
        store_uuid: sb.store_uuid,
        writer,
        follow,
        read_gate: Mutex::new(()),
        state,
        graph,
        graph_enabled: b.graph.is_some(),
        graph_thread: OwnedByOpener::new(Mutex::new(graph_thread), process),
        mirror: OwnedByOpener::new(Mutex::new(mirror), process),
        group,
        poisoned: Poison::default(),
        closed: AtomicBool::new(false),
        index: FlatIndex,
        close_checkpoint_min: b.close_checkpoint_min,
        auto_compact: b.auto_compact,
        search_threads,
        recovery: Mutex::new(recovery),
        model: sb.model.clone(),
        embedder: OwnedByOpener::new(embedder, process),
        emb_cache: Mutex::new(EmbeddingCache::new(b.cache_entries)),
        disk_cache: OwnedByOpener::new(Mutex::new(text::DiskCacheSlot::new(disk_cache_entries)), process),
        process,
        _lock: lock,
    }
}
