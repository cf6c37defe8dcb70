//! [`Engine`]: opening, recovery, writes, reads, search, checkpoints.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use memento_format::page::RecordEntry;
use memento_format::superblock::Metric;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::embed::{Embedder, EmbeddingCache, ModelIdentity, OnnxEmbedder, OnnxOptions};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::index::{FlatIndex, QuantBlock, ScanMode, SearchPlan, VectorIndex, VectorSource};
use crate::kernels;
use crate::mirror::{is_damage, Mirror, MirrorOp};
use crate::slots::SlotBitmap;
use crate::storage::{FsStorage, LockError, Storage, StorageFile, StoreLock};
use crate::vecfile::{self, Pending, PendingRecord, VecFile};
use crate::wal::{self, Op, Wal};

mod check;
mod create;
pub use check::{check_id, check_metadata};
use create::new_superblock;
pub(crate) mod process;
mod text;
use process::{OwnedByOpener, ProcessGuard};
pub use text::{CacheStats, Embedding, Memory, EMBEDDING_CACHE_FILE};

/// Metadata of a record: a JSON object.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// File name of the SQLite mirror.
pub const MIRROR_FILE: &str = "memento.mirror.sqlite";

/// When a commit is acknowledged, and so what survives a crash. See FORMAT.md §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Each commit writes the WAL and `fdatasync`s it before returning. Every acknowledged
    /// commit survives a process crash and a power loss. The default.
    #[default]
    Sync,
    /// Each commit writes the WAL, then waits for an `fdatasync` that may cover several
    /// concurrent commits (one thread syncs for all waiting ones). Same guarantee as `Sync`,
    /// with fewer fsyncs when many threads write at once. A commit is visible to readers
    /// slightly before it is acknowledged.
    GroupCommit,
    /// Each commit writes the WAL into the operating system's buffers and returns; the WAL is
    /// fsynced only at checkpoints, on [`Engine::sync`] and at close. Every acknowledged commit
    /// survives a process crash (kill -9); a power loss or kernel crash may lose the commits
    /// since the last checkpoint or sync, never more, and never leaves a corrupt store.
    Buffered,
}

/// A record: an id, its vector, and optional text and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The id: 1 to 1,024 bytes of UTF-8.
    pub id: String,
    /// The vector; under the cosine metric it is stored (and returned) normalised.
    pub vector: Vec<f32>,
    /// Document text.
    pub text: Option<String>,
    /// Metadata.
    pub metadata: Option<Metadata>,
}

impl Record {
    /// A record with no text and no metadata.
    pub fn new(id: impl Into<String>, vector: Vec<f32>) -> Self {
        Record { id: id.into(), vector, text: None, metadata: None }
    }
    /// With text.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
    /// With metadata.
    #[must_use]
    pub fn with_metadata(mut self, m: Metadata) -> Self {
        self.metadata = Some(m);
        self
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The record's id.
    pub id: String,
    /// Distance from the query, smaller is closer: `1 − cosine` under cosine, `−dot` under dot,
    /// the squared Euclidean distance under L2.
    pub distance: f32,
    /// The record's text.
    pub text: Option<String>,
    /// The record's metadata.
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Clone)]
enum BatchOp {
    Add(Record),
    Upsert(Record),
    Delete(String),
    Update {
        id: String,
        text: Option<Option<String>>,
        metadata: Option<Option<Metadata>>,
    },
    /// A text store's text update, embedded: the record is replaced (FORMAT.md's Update op
    /// carries no vector).
    Retext {
        id: String,
        text: String,
        vector: Vec<f32>,
    },
}

/// Several writes committed together: one WAL write, one fsync, all or nothing.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }
    /// Add a new record; the commit fails with [`Error::DuplicateId`] if the id exists.
    pub fn add(&mut self, r: Record) -> &mut Self {
        self.ops.push(BatchOp::Add(r));
        self
    }
    /// Insert or replace a record.
    pub fn upsert(&mut self, r: Record) -> &mut Self {
        self.ops.push(BatchOp::Upsert(r));
        self
    }
    /// Delete a record by id (nothing happens if there is none).
    pub fn delete(&mut self, id: impl Into<String>) -> &mut Self {
        self.ops.push(BatchOp::Delete(id.into()));
        self
    }
    /// Replace a record's metadata (`None` removes it) without touching its vector; the
    /// commit fails with [`Error::NotFound`] if there is no such record.
    pub fn update_metadata(&mut self, id: impl Into<String>, metadata: Option<Metadata>) -> &mut Self {
        self.ops.push(BatchOp::Update { id: id.into(), text: None, metadata: Some(metadata) });
        self
    }
    /// Replace a record's text. In a text store (one with a model) the vector is the text's:
    /// the commit embeds the new text (through the embedding cache, before the writer lock is
    /// taken) and replaces the record by one with the new text and vector, keeping its metadata
    /// (the record then comes last in insertion order, as after an upsert); removing the text
    /// (`None`) is refused there, since a text store's vector needs one. In a raw-vector store
    /// only the text changes (`None` removes it). The commit fails with [`Error::NotFound`] if
    /// there is no such record.
    pub fn update_text(&mut self, id: impl Into<String>, text: Option<String>) -> &mut Self {
        self.ops.push(BatchOp::Update { id: id.into(), text: Some(text), metadata: None });
        self
    }
    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    /// LSN of the commit record; `None` when the batch changed nothing.
    pub lsn: Option<u64>,
    /// Records added or replaced.
    pub written: usize,
    /// Records deleted (including ones replaced by upsert).
    pub deleted: usize,
}

/// How a search runs; see [`Engine::search_with`]. `SearchOptions::new(k)` gives the defaults.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct SearchOptions<'a> {
    /// Results per query.
    pub k: usize,
    /// Only records matching this filter.
    pub filter: Option<&'a Filter>,
    /// Which scan: [`ScanMode::Auto`] (default) uses the int8 copies on stores large enough
    /// for it to win, with proven bounds and float32 rescoring, [`ScanMode::Exact`] scores
    /// every vector in float32; every mode returns the same answer.
    pub mode: ScanMode,
    /// Threads for this search; `None`: the engine's setting
    /// ([`EngineBuilder::search_threads`]).
    pub threads: Option<usize>,
    /// No effect any more (the quantized scan keeps the candidates its bounds require).
    pub oversample: usize,
}

impl<'a> SearchOptions<'a> {
    /// `k` results, no filter, automatic scan, the engine's thread count.
    pub fn new(k: usize) -> Self {
        SearchOptions { k, filter: None, mode: ScanMode::Auto, threads: None, oversample: crate::index::DEFAULT_OVERSAMPLE }
    }
    /// Only records matching `f`.
    pub fn filter(mut self, f: &'a Filter) -> Self {
        self.filter = Some(f);
        self
    }
    /// The scan.
    pub fn mode(mut self, m: ScanMode) -> Self {
        self.mode = m;
        self
    }
    /// Threads for this search.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }
    /// No effect any more; see [`SearchOptions::oversample`](Self#structfield.oversample).
    pub fn oversample(mut self, n: usize) -> Self {
        self.oversample = n;
        self
    }
}

/// Figures about an open store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Live records.
    pub count: u64,
    /// Slots ever given out.
    pub slots: u64,
    /// Deleted slots.
    pub deleted: u64,
    /// Dimension.
    pub dimension: usize,
    /// Metric.
    pub metric: Metric,
    /// Page units in the vector file's checkpoint.
    pub pages: u64,
    /// Bytes of the vector file's checkpoint.
    pub vector_file_bytes: u64,
    /// Bytes in the WAL.
    pub wal_bytes: u64,
    /// LSN of the last checkpoint.
    pub checkpoint_lsn: u64,
    /// LSN of the last commit (0 if none).
    pub last_lsn: u64,
    /// Vectors written since the last checkpoint (held in memory and the WAL).
    pub pending_vectors: u64,
    /// What recovery did at open (a torn WAL tail dropped, a mirror rebuilt), then each
    /// rebuild of a mirror that a read found damaged.
    pub recovery: Vec<String>,
    /// The embedding model the store was created with; `None` for a raw-vector store.
    pub model: Option<ModelIdentity>,
}

/// Options for opening or creating a store. Consumed by [`EngineBuilder::open`].
#[must_use]
pub struct EngineBuilder {
    /// The storage, or the directory to open it on (at `open`, so that opening a missing store
    /// without `create` leaves nothing behind).
    storage: std::result::Result<Arc<dyn Storage>, PathBuf>,
    dimension: Option<usize>,
    metric: Option<Metric>,
    durability: Durability,
    page_size: u32,
    wal_limit: u64,
    create: bool,
    search_threads: usize,
    embedder: Option<EmbedderSource>,
    cache_entries: usize,
    disk_cache_entries: usize,
}

/// Where the builder gets its embedding model.
enum EmbedderSource {
    Ready(Arc<dyn Embedder>),
    /// Loaded on a second thread while the store opens.
    Load(PathBuf, OnnxOptions),
}

impl EngineBuilder {
    /// The embedding model for text ([`Engine::remember`], [`Engine::recall`]). A new store
    /// takes its dimension from the model and records the model's identity; an existing store
    /// must have been created with the same model ([`Error::ModelMismatch`] otherwise).
    pub fn embedder(mut self, e: Arc<dyn Embedder>) -> Self {
        self.embedder = Some(EmbedderSource::Ready(e));
        self
    }
    /// Like [`Self::embedder`] with an [`OnnxEmbedder`] loaded from a model directory. The
    /// model loads on a second thread while the store is opened and recovered.
    pub fn model_dir(mut self, dir: impl AsRef<Path>, opts: OnnxOptions) -> Self {
        self.embedder = Some(EmbedderSource::Load(dir.as_ref().to_path_buf(), opts));
        self
    }
    /// The default model ([`crate::embed::DEFAULT_MODEL`], as provisioned in
    /// [`crate::embed::model_dir`]) with default options.
    pub fn default_model(self) -> Self {
        self.model_dir(crate::embed::model_dir(crate::embed::DEFAULT_MODEL), OnnxOptions::default())
    }
    /// Entries of the in-memory embedding cache (default 10,000; 0 disables it) and of the
    /// cache persisted in the store directory (default 20,000; 0 disables it).
    pub fn embedding_cache(mut self, memory_entries: usize, persisted_entries: usize) -> Self {
        self.cache_entries = memory_entries;
        self.disk_cache_entries = persisted_entries;
        self
    }
    /// The vector dimension. Required to create a store; checked against the store otherwise.
    /// Default: none.
    pub fn dimension(mut self, d: usize) -> Self {
        self.dimension = Some(d);
        self
    }
    /// The metric. Used when creating (default cosine); checked against the store otherwise.
    pub fn metric(mut self, m: Metric) -> Self {
        self.metric = Some(m);
        self
    }
    /// The durability mode. Default [`Durability::Sync`].
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// Page size in bytes for a new store: a power of two from 8 KiB to 16 MiB. Default 64 KiB,
    /// which holds vectors of up to 16,352 dimensions ([`crate::limits::min_page_size`]).
    pub fn page_size(mut self, bytes: u32) -> Self {
        self.page_size = bytes;
        self
    }
    /// WAL size past which a commit triggers a checkpoint. Default 64 MiB. Everything written
    /// since the last checkpoint is also held in memory, so this bounds that memory too.
    pub fn wal_limit(mut self, bytes: u64) -> Self {
        self.wal_limit = bytes;
        self
    }
    /// Threads a search of a large store may use (0: one per core, the default). Stores below
    /// a few MiB of vectors are always scanned by the calling thread alone.
    pub fn search_threads(mut self, n: usize) -> Self {
        self.search_threads = n;
        self
    }
    /// Whether to create the store if it does not exist. Default true.
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }
    /// Open (recovering as needed) or create the store.
    pub fn open(self) -> Result<Engine> {
        Engine::open_with(self)
    }
}

struct Writer {
    wal: Wal,
    next_lsn: u64,
    next_slot: u64,
}

struct State {
    vf: VecFile,
    pending: Pending,
    /// Deleted slots.
    dead: SlotBitmap,
    live_count: u64,
    /// The commit LSN of the last transaction applied (the checkpoint's LSN if none since).
    last_lsn: u64,
}

/// A group commit's wait: WAL generation, end offset of the commit, and the WAL file.
type DurableWait = (u64, u64, Arc<dyn StorageFile>);

struct GroupState {
    generation: u64,
    written: u64,
    synced: u64,
    leader: bool,
}

/// An open store. `Send + Sync`: share it between threads behind an `Arc`. Writes are
/// serialised; searches and reads run concurrently with each other and with a commit's fsync.
///
/// Dropping an engine closes it (checkpoint included) and ignores errors; call
/// [`Engine::close`] to see them.
pub struct Engine {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    durability: Durability,
    wal_limit: u64,
    dim: usize,
    metric: Metric,
    store_uuid: [u8; 16],
    writer: Mutex<Writer>,
    state: RwLock<State>,
    /// Dropped only in the opener: closing SQLite in a forked child could checkpoint or
    /// remove the `-wal` file the parent still uses.
    mirror: OwnedByOpener<Mutex<Mirror>>,
    group: Mutex<GroupState>,
    group_cv: Condvar,
    poisoned: Mutex<Option<String>>,
    closed: AtomicBool,
    index: FlatIndex,
    search_threads: usize,
    /// What recovery did at open, then every rebuild of a damaged mirror since.
    recovery: Mutex<Vec<String>>,
    /// The store's model (superblock); empty id for a raw-vector store.
    model: ModelIdentity,
    /// Dropped only in the opener (an ONNX Runtime session's threads do not exist in a child).
    embedder: OwnedByOpener<Option<Arc<dyn Embedder>>>,
    emb_cache: Mutex<EmbeddingCache>,
    /// Dropped only in the opener (a SQLite connection, like the mirror's).
    disk_cache: OwnedByOpener<Mutex<text::DiskCacheSlot>>,
    /// The opener's process id: every operation checks it first ([`Error::ForkedProcess`]).
    process: ProcessGuard,
    /// Dropped in a child too: that closes the child's copy of the `LOCK` descriptor, and the
    /// `flock` stays held by the parent's (it belongs to the open file description).
    _lock: Box<dyn StoreLock>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("dir", &self.dir).field("dim", &self.dim).field("metric", &self.metric).finish_non_exhaustive()
    }
}

fn io_err(ctx: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(ctx, e)
}

impl Engine {
    /// Open the store in directory `path`, creating nothing: use [`Engine::builder`] with a
    /// dimension to create one.
    pub fn open(path: impl AsRef<Path>) -> Result<Engine> {
        Engine::builder(path).create(false).open()
    }

    /// A builder for the store in directory `path` (created if missing).
    pub fn builder(path: impl AsRef<Path>) -> EngineBuilder {
        EngineBuilder::with(Err(path.as_ref().to_path_buf()))
    }

    /// A builder over any [`Storage`] (for example [`crate::storage::MemStorage`]).
    pub fn builder_with_storage(storage: Arc<dyn Storage>) -> EngineBuilder {
        EngineBuilder::with(Ok(storage))
    }

    fn file_path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn open_with(mut b: EngineBuilder) -> Result<Engine> {
        let mut model_load = b.embedder.take().map(|src| match src {
            EmbedderSource::Ready(e) => text::ModelLoad::Ready(e),
            EmbedderSource::Load(dir, opts) => {
                text::ModelLoad::Loading(std::thread::spawn(move || OnnxEmbedder::load(&dir, &opts).map(|e| Arc::new(e) as Arc<dyn Embedder>)))
            }
        });
        // A new store's options are checked before anything is created on disk, so that a
        // refused open leaves nothing behind (not even the directory or its LOCK).
        let missing = match &b.storage {
            Ok(s) => !s.exists(vecfile::VEC_FILE).map_err(io_err("looking for the vector file"))?,
            Err(path) => !path.join(vecfile::VEC_FILE).exists(),
        };
        let mut new_store = None;
        if missing && b.create {
            new_store = Some(new_superblock(&b, &mut model_load, b.storage.as_ref().err().map_or(Path::new("<memory>"), PathBuf::as_path))?);
        }
        let storage = match &b.storage {
            Ok(s) => Arc::clone(s),
            Err(path) => {
                if !b.create && missing {
                    return Err(Error::invalid(format!("there is no store at {}", path.display())));
                }
                let s = FsStorage::new(path).map_err(|e| Error::io(format!("creating the store directory {}", path.display()), e))?;
                Arc::new(s) as Arc<dyn Storage>
            }
        };
        let dir = storage.dir_path().map_or_else(|| PathBuf::from("<memory>"), Path::to_path_buf);
        let lock = storage.lock().map_err(|e| match e {
            LockError::Held { pid } => Error::Locked { path: dir.clone(), pid },
            LockError::Io(e) => Error::io("taking the store's lock", e),
        })?;
        for leftover in [format!("{}.new", vecfile::VEC_FILE), format!("{}.new", wal::WAL_FILE)] {
            storage.remove(&leftover).map_err(io_err("removing a leftover temporary file"))?;
        }
        let vec_path = dir.join(vecfile::VEC_FILE);
        if !storage.exists(vecfile::VEC_FILE).map_err(io_err("looking for the vector file"))? {
            if !b.create {
                return Err(Error::invalid(format!("there is no store at {}", dir.display())));
            }
            if storage.exists(wal::WAL_FILE).map_err(io_err("looking for the WAL"))? {
                return Err(Error::corrupted(&vec_path, 0, "the vector file is missing but a WAL exists"));
            }
            // (Removed by another process since it was looked for: checked now.)
            let sb = match new_store.take() {
                Some(sb) => sb,
                None => new_superblock(&b, &mut model_load, &dir)?,
            };
            VecFile::create(storage.as_ref(), &sb)?;
        }
        let vf = VecFile::open(storage.as_ref(), vec_path)?;
        let sb = vf.sb.clone();
        let dim = sb.dimension as usize;
        if let Some(d) = b.dimension.filter(|&d| d != dim) {
            return Err(Error::Incompatible { reason: format!("the store holds {dim}-dimensional vectors, not {d}") });
        }
        if let Some(m) = b.metric.filter(|&m| m != sb.metric) {
            return Err(Error::Incompatible { reason: format!("the store uses the {} metric, not {}", sb.metric.name(), m.name()) });
        }
        let wal_path = dir.join(wal::WAL_FILE);
        let rec = wal::recover(storage.as_ref(), &wal_path, sb.wal_generation, sb.checkpoint_lsn + 1, sb.store_uuid, dim, true).map_err(|e| {
            // A WAL that does not continue the checkpoint in use, beside a damaged superblock
            // copy: the damaged copy held the newer checkpoint, which is what is lost.
            match (&vf.other_copy_damage, e) {
                (Some(damage), Error::Corrupted { file, reason, .. }) if file == wal_path => Error::corrupted(
                    &vf.path,
                    0,
                    format!(
                        "{damage}, and the other copy holds an older checkpoint (WAL generation {}, up to LSN {}) that the WAL does not continue ({reason}): the commits of the damaged copy's checkpoint are lost",
                        sb.wal_generation, sb.checkpoint_lsn
                    ),
                ),
                (_, e) => e,
            }
        })?;
        let mut recovery = Vec::new();
        if let Some((at, n, why)) = &rec.dropped_tail {
            recovery.push(format!("dropped {n} bytes of torn WAL tail at offset {at} ({why})"));
        }
        // Rebuild the in-memory state since the checkpoint.
        let mut dead = SlotBitmap::default();
        for (slot, _) in vf.tombstones()? {
            dead.insert(slot);
        }
        let mut state = State { vf, pending: Pending::default(), dead, live_count: sb.live_count, last_lsn: sb.checkpoint_lsn };
        if !state.vf.is_quantized() {
            // A version-1 file has no int8 copies: derive them now; the next checkpoint writes
            // them and upgrades the file (FORMAT.md §2.1).
            let qcap = state.vf.qlayout.capacity;
            for i in 0..state.vf.n_vector {
                let (_, h) = state.vf.page(state.vf.dir[i].page_no, 1)?;
                let (slots, vecs) = state.vf.vector_page(i)?;
                for (slot, v) in slots.iter().zip(vecs.chunks_exact(dim)) {
                    state.pending.push_quant(*slot, (h.min_lsn, h.max_lsn), v, qcap);
                }
            }
            if state.vf.n_vector > 0 {
                recovery.push(format!("derived the int8 copies of {} vectors of a version-1 file; the next checkpoint upgrades it to version 2", sb.next_slot));
            }
        }
        let mut next_slot = sb.next_slot;
        let mut last_lsn = sb.checkpoint_lsn;
        for t in &rec.txns {
            for op in &t.ops {
                if let Op::Put { slot, .. } = op {
                    if *slot != next_slot {
                        return Err(Error::corrupted(
                            &wal_path,
                            0,
                            format!("a put record of LSN range {}..{} uses slot {slot} where {next_slot} was next", t.first_lsn, t.commit_lsn),
                        ));
                    }
                    next_slot += 1;
                }
            }
            apply_to_state(&mut state, t.ops.clone(), t.first_lsn, dim);
            last_lsn = t.commit_lsn;
        }
        // The mirror. Damage found while it is brought up to date (a page that fails its
        // check, say) replaces it with a new file, filled the same way, once.
        let mut mirror = open_mirror(storage.as_ref(), &dir)?;
        let setup = |mirror: &mut Mirror, recovery: &mut Vec<String>| -> Result<()> {
            let hdr = mirror.header()?;
            let stale = match &hdr {
                None => Some("it is new".to_string()),
                Some(h) if h.store_uuid != sb.store_uuid => Some("it belongs to another store".into()),
                Some(h) if h.applied_lsn < sb.checkpoint_lsn => {
                    Some(format!("it stops at LSN {}, before the checkpoint at {}", h.applied_lsn, sb.checkpoint_lsn))
                }
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
            // restore of the wrong copy): its row count against the log's live count catches that
            // for the price of one COUNT. A changed row is left to `check_integrity`.
            let rows = mirror.count()?;
            if rows != state.live_count {
                recovery.push(format!("rebuilt the mirror from the vector file because it holds {rows} records where the log has {}", state.live_count));
                rebuild_mirror(mirror, &state.vf, sb.store_uuid, sb.checkpoint_lsn)?;
                replay(mirror)?;
            }
            Ok(())
        };
        if let Err(e) = setup(&mut mirror, &mut recovery) {
            if !is_damage(&e) {
                return Err(e);
            }
            recovery.push(format!("replaced the mirror because {e}"));
            drop(std::mem::replace(&mut mirror, Mirror::unusable()?));
            mirror = fresh_mirror(storage.as_ref(), &dir)?;
            setup(&mut mirror, &mut recovery)?;
        }
        let embedder = match model_load {
            Some(l) => {
                let e = l.wait()?;
                text::check_model(&sb.model, e.identity())?;
                Some(e)
            }
            None => None,
        };
        let wal_gen = rec.wal.header.generation;
        let wal_end = rec.wal.end;
        let process = ProcessGuard::new();
        let engine = Engine {
            storage,
            dir,
            durability: b.durability,
            wal_limit: b.wal_limit,
            dim,
            metric: sb.metric,
            store_uuid: sb.store_uuid,
            writer: Mutex::new(Writer { wal: rec.wal, next_lsn: last_lsn + 1, next_slot }),
            state: RwLock::new(state),
            mirror: OwnedByOpener::new(Mutex::new(mirror), process),
            group: Mutex::new(GroupState { generation: wal_gen, written: wal_end, synced: wal_end, leader: false }),
            group_cv: Condvar::new(),
            poisoned: Mutex::new(None),
            closed: AtomicBool::new(false),
            index: FlatIndex,
            search_threads: if b.search_threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { b.search_threads },
            recovery: Mutex::new(recovery),
            model: sb.model.clone(),
            embedder: OwnedByOpener::new(embedder, process),
            emb_cache: Mutex::new(EmbeddingCache::new(b.cache_entries)),
            disk_cache: OwnedByOpener::new(Mutex::new(text::DiskCacheSlot::new(b.disk_cache_entries)), process),
            process,
            _lock: lock,
        };
        Ok(engine)
    }

    /// The dimension of the store's vectors.
    pub fn dimension(&self) -> usize {
        self.dim
    }

    /// The store's metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The store's directory (`<memory>` for in-memory storage).
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn poison(&self, e: Error) -> Error {
        let mut p = self.poisoned.lock();
        if p.is_none() {
            *p = Some(e.to_string());
        }
        e
    }

    /// Runs a read on the mirror. If the mirror is damaged (a page fails its check, SQLite
    /// reports corruption), replaces it with one rebuilt from the vector file and the state
    /// since the checkpoint, and runs the read once more; damage again is an error. The
    /// answer of a read that met damage is never used. `st` is the state the mirror mirrors
    /// (a read or write lock held by the caller).
    fn read_mirror<T>(&self, st: &State, read: impl Fn(&Mirror) -> Result<T>) -> Result<T> {
        let mut m = self.mirror.lock();
        match read(&m) {
            Err(e) if is_damage(&e) => {
                self.replace_damaged_mirror(&mut m, st, &e)?;
                read(&m).map_err(|e| match e {
                    Error::Mirror { kind: kind @ crate::error::MirrorErrorKind::Damaged, detail, source } => {
                        Error::Mirror { kind, detail: format!("{detail} (again, in the mirror just rebuilt)"), source }
                    }
                    e => e,
                })
            }
            r => r,
        }
    }

    /// Replaces the damaged mirror `m` by a new file filled from `st` (see [`Engine::read_mirror`]).
    /// If that fails, `m` is left unusable (every read fails), never half filled.
    fn replace_damaged_mirror(&self, m: &mut Mirror, st: &State, damage: &Error) -> Result<()> {
        drop(std::mem::replace(m, Mirror::unusable()?));
        let mut fresh = fresh_mirror(self.storage.as_ref(), &self.dir)?;
        rebuild_from_state(&mut fresh, st, self.store_uuid)?;
        *m = fresh;
        self.recovery.lock().push(format!("rebuilt the mirror from the vector file and the WAL because {damage}"));
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        if let Some(cause) = self.poisoned.lock().clone() {
            return Err(Error::Poisoned { cause });
        }
        Ok(())
    }

    /// Validate a vector (taking it, so a written vector is normalised in place, not copied).
    fn check_vector(&self, mut v: Vec<f32>) -> Result<Vec<f32>> {
        if v.len() != self.dim {
            return Err(Error::DimensionMismatch { expected: self.dim, got: v.len() });
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidVector { reason: format!("element {i} is {}", v[i]) });
        }
        if self.metric == Metric::Cosine {
            if !kernels::normalize(&mut v) {
                return Err(Error::InvalidVector { reason: "a zero vector has no direction, so it cannot be compared by cosine".into() });
            }
        } else {
            crate::limits::check_vector_norm(&v).map_err(|reason| Error::InvalidVector { reason })?;
        }
        Ok(v)
    }

    /// Add a record; fails with [`Error::DuplicateId`] if its id exists.
    pub fn add(&self, r: Record) -> Result<CommitInfo> {
        let mut b = WriteBatch::new();
        b.add(r);
        self.write(b)
    }

    /// Insert or replace a record.
    pub fn upsert(&self, r: Record) -> Result<CommitInfo> {
        let mut b = WriteBatch::new();
        b.upsert(r);
        self.write(b)
    }

    /// Delete a record; returns whether it existed.
    pub fn delete(&self, id: &str) -> Result<bool> {
        let mut b = WriteBatch::new();
        b.delete(id);
        Ok(self.write(b)?.deleted > 0)
    }

    /// Delete every record matching `filter`; returns how many.
    pub fn delete_where(&self, filter: &Filter) -> Result<usize> {
        self.process.check()?;
        let mut w = self.writer.lock();
        // Planned only from a mirror that answered without damage (read_mirror).
        let rows = {
            let st = self.state.read();
            self.read_mirror(&st, |m| m.rows_by_slots(&m.filter_slots(filter)?))?
        };
        let mut b = WriteBatch::new();
        for r in rows.into_iter().flatten() {
            b.delete(r.id);
        }
        let (info, wait) = self.write_locked(&mut w, b)?;
        drop(w);
        self.finish_commit(wait)?;
        Ok(info.deleted)
    }

    /// Replace a record's metadata without touching its vector.
    pub fn update_metadata(&self, id: &str, metadata: Option<Metadata>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.update_metadata(id, metadata);
        self.write(b).map(|_| ())
    }

    /// Replace a record's text; in a text store, embed it and replace the vector too (see
    /// [`WriteBatch::update_text`]).
    pub fn update_text(&self, id: &str, text: Option<String>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.update_text(id, text);
        self.write(b).map(|_| ())
    }

    /// Commit a batch: validated as a whole, written as one WAL transaction with one fsync,
    /// applied all or nothing.
    pub fn write(&self, batch: WriteBatch) -> Result<CommitInfo> {
        self.process.check()?;
        // Text changes in a text store are embedded here, before the writer lock.
        let batch = self.embed_text_updates(batch)?;
        let mut w = self.writer.lock();
        let (info, wait) = self.write_locked(&mut w, batch)?;
        // Under group commit the writer lock is released before waiting for the fsync, so
        // that other threads can append their commits and share it.
        drop(w);
        self.finish_commit(wait)?;
        Ok(info)
    }

    fn finish_commit(&self, wait: Option<DurableWait>) -> Result<()> {
        match wait {
            Some((gen, end, file)) => self.wait_durable(gen, end, file.as_ref()),
            None => Ok(()),
        }
    }

    fn plan(&self, w: &Writer, batch: WriteBatch) -> Result<(Vec<Op>, u64, CommitInfo)> {
        let ids: Vec<&str> = {
            let mut seen = HashSet::new();
            batch
                .ops
                .iter()
                .map(|o| match o {
                    BatchOp::Add(r) | BatchOp::Upsert(r) => r.id.as_str(),
                    BatchOp::Delete(id) | BatchOp::Update { id, .. } | BatchOp::Retext { id, .. } => id.as_str(),
                })
                .filter(|id| seen.insert(*id))
                .collect()
        };
        for id in &ids {
            check::check_id(id)?;
        }
        let found = {
            let st = self.state.read();
            self.read_mirror(&st, |m| m.slots_of(&ids))?
        };
        let mut view: HashMap<String, Option<u64>> = ids.iter().map(|s| s.to_string()).zip(found).collect();
        let mut next_slot = w.next_slot;
        let several = batch.ops.len() > 1;
        // Ids whose current record was put by this batch: an add of one is a duplicate within
        // the batch, not of a stored record.
        let mut put_here: HashSet<String> = HashSet::new();
        // A vector's error names its record when the batch has several.
        let vector_of = |i: usize, id: &str, v: Vec<f32>| {
            self.check_vector(v).map_err(|e| if several { at_position(e, &format!("record {i} of the batch (id {:?})", truncate(id))) } else { e })
        };
        let mut ops = Vec::with_capacity(batch.ops.len());
        let mut info = CommitInfo { lsn: None, written: 0, deleted: 0 };
        for (i, op) in batch.ops.into_iter().enumerate() {
            match op {
                BatchOp::Add(mut r) => {
                    if view.get(&r.id).copied().flatten().is_some() {
                        let in_batch = put_here.contains(&r.id);
                        return Err(Error::DuplicateId { id: r.id, in_batch });
                    }
                    // The per-record checks, shared with `check_record` (check.rs).
                    let v = vector_of(i, &r.id, std::mem::take(&mut r.vector))?;
                    let metadata = self.check_put(&r.id, r.text.as_deref(), r.metadata.as_ref(), &v)?;
                    put_here.insert(r.id.clone());
                    view.insert(r.id.clone(), Some(next_slot));
                    ops.push(Op::Put { slot: next_slot, id: r.id, text: r.text, metadata, vector: v });
                    next_slot += 1;
                    info.written += 1;
                }
                BatchOp::Upsert(mut r) => {
                    // The per-record checks, shared with `check_record` (check.rs).
                    let v = vector_of(i, &r.id, std::mem::take(&mut r.vector))?;
                    let metadata = self.check_put(&r.id, r.text.as_deref(), r.metadata.as_ref(), &v)?;
                    if let Some(old) = view.get(&r.id).copied().flatten() {
                        ops.push(Op::Delete { slot: old, id: r.id.clone() });
                        info.deleted += 1;
                    }
                    put_here.insert(r.id.clone());
                    view.insert(r.id.clone(), Some(next_slot));
                    ops.push(Op::Put { slot: next_slot, id: r.id, text: r.text, metadata, vector: v });
                    next_slot += 1;
                    info.written += 1;
                }
                BatchOp::Delete(id) => {
                    put_here.remove(&id);
                    if let Some(old) = view.get(&id).copied().flatten() {
                        view.insert(id.clone(), None);
                        ops.push(Op::Delete { slot: old, id });
                        info.deleted += 1;
                    }
                }
                BatchOp::Update { id, text, metadata } => {
                    // The arguments first (an id no record can have, bad metadata): a bad
                    // argument, whether or not the record exists.
                    check::check_id(&id)?;
                    let metadata = match metadata {
                        None => None,
                        Some(None) => Some(None),
                        Some(Some(m)) => Some(Some(check::metadata_json(&m)?)),
                    };
                    if let Some(Some(t)) = &text {
                        check::check_text(t)?;
                    }
                    let Some(slot) = view.get(&id).copied().flatten() else {
                        return Err(Error::NotFound { id });
                    };
                    ops.push(Op::Update { slot, text, metadata });
                }
                BatchOp::Retext { id, text, vector } => {
                    check::check_id(&id)?;
                    check::check_text(&text)?;
                    let Some(old) = view.get(&id).copied().flatten() else {
                        return Err(Error::NotFound { id });
                    };
                    let v = vector_of(i, &id, vector)?;
                    // The record's metadata as of this point of the batch: set by an earlier op
                    // of the batch on its slot, else the stored one.
                    let earlier = ops.iter().rev().find_map(|o| match o {
                        Op::Put { slot, metadata, .. } if *slot == old => Some(metadata.clone()),
                        Op::Update { slot, metadata: Some(m), .. } if *slot == old => Some(m.clone()),
                        _ => None,
                    });
                    let metadata = match earlier {
                        Some(m) => m,
                        None => {
                            let st = self.state.read();
                            self.read_mirror(&st, |m| m.row_by_id(&id))?.and_then(|row| row.metadata)
                        }
                    };
                    ops.push(Op::Delete { slot: old, id: id.clone() });
                    info.deleted += 1;
                    put_here.insert(id.clone());
                    view.insert(id.clone(), Some(next_slot));
                    ops.push(Op::Put { slot: next_slot, id, text: Some(text), metadata, vector: v });
                    next_slot += 1;
                    info.written += 1;
                }
            }
        }
        // Puts were checked one by one (`check_put`); updates grow a record too.
        for o in &ops {
            check::check_len(o.encoded_len())?;
        }
        Ok((ops, next_slot, info))
    }

    /// Commit under the writer lock. Under group commit, returns what the caller must wait for
    /// (after releasing the lock) before acknowledging.
    fn write_locked(&self, w: &mut Writer, batch: WriteBatch) -> Result<(CommitInfo, Option<DurableWait>)> {
        self.check_writable()?;
        let (ops, next_slot, mut info) = self.plan(w, batch)?;
        if ops.is_empty() {
            return Ok((info, None));
        }
        let synced_through = match self.durability {
            Durability::GroupCommit => {
                let g = self.group.lock();
                if g.generation == w.wal.header.generation {
                    g.synced
                } else {
                    memento_format::wal::HEADER_LEN as u64
                }
            }
            _ => w.wal.synced,
        };
        let first = w.next_lsn;
        let (bytes, commit_lsn) = w.wal.encode_txn(first, &ops, synced_through);
        w.wal.append(&bytes).map_err(|e| self.poison(Error::io("appending to the WAL", e)))?;
        if self.durability == Durability::Sync {
            w.wal.file.sync_data().map_err(|e| self.poison(Error::io("syncing the WAL", e)))?;
            w.wal.synced = w.wal.end;
        }
        w.next_lsn = commit_lsn + 1;
        w.next_slot = next_slot;
        {
            let mut st = self.state.write();
            let mut m = self.mirror.lock();
            match m.apply(commit_lsn, &mirror_ops(&ops)) {
                Ok(_) => apply_to_state(&mut st, ops, first, self.dim),
                // The commit is in the WAL: a damaged mirror is rebuilt with it, not poisoned.
                Err(e) if is_damage(&e) => {
                    apply_to_state(&mut st, ops, first, self.dim);
                    self.replace_damaged_mirror(&mut m, &st, &e).map_err(|e| self.poison(e))?;
                }
                Err(e) => return Err(self.poison(e)),
            }
        }
        info.lsn = Some(commit_lsn);
        let wait = (self.durability == Durability::GroupCommit).then(|| {
            let mut g = self.group.lock();
            g.written = w.wal.end;
            (g.generation, w.wal.end, Arc::clone(&w.wal.file))
        });
        if w.wal.end > self.wal_limit {
            // A checkpoint makes everything before it durable, the waiters' commits included.
            self.checkpoint_locked(w)?;
        }
        Ok((info, wait))
    }

    fn wait_durable(&self, gen: u64, end: u64, file: &dyn StorageFile) -> Result<()> {
        let mut g = self.group.lock();
        loop {
            if g.generation != gen || g.synced >= end {
                return Ok(());
            }
            self.check_writable()?;
            if g.leader {
                self.group_cv.wait(&mut g);
                continue;
            }
            g.leader = true;
            let target = g.written;
            drop(g);
            let r = file.sync_data();
            g = self.group.lock();
            g.leader = false;
            self.group_cv.notify_all();
            match r {
                Ok(()) if g.generation == gen => g.synced = g.synced.max(target),
                Ok(()) => {}
                Err(e) => return Err(self.poison(Error::io("syncing the WAL", e))),
            }
        }
    }

    /// Make every acknowledged commit durable now (useful under [`Durability::Buffered`]).
    pub fn sync(&self) -> Result<()> {
        self.process.check()?;
        let mut w = self.writer.lock();
        self.check_writable()?;
        w.wal.file.sync_data().map_err(|e| self.poison(Error::io("syncing the WAL", e)))?;
        w.wal.synced = w.wal.end;
        let mut g = self.group.lock();
        if g.generation == w.wal.header.generation {
            g.synced = g.synced.max(w.wal.end);
        }
        self.group_cv.notify_all();
        Ok(())
    }

    /// Write everything since the last checkpoint into the vector file and start a new WAL
    /// (FORMAT.md §4.2). Runs by itself past the WAL limit and at close.
    pub fn checkpoint(&self) -> Result<()> {
        self.process.check()?;
        let mut w = self.writer.lock();
        self.checkpoint_locked(&mut w)
    }

    fn checkpoint_locked(&self, w: &mut Writer) -> Result<()> {
        self.check_writable()?;
        let last_lsn = w.next_lsn - 1;
        let (sb, dir, nv) = {
            // Only writers change the state, and we hold the writer lock: a read lock suffices
            // while the pages are written, so searches go on.
            let st = self.state.read();
            if st.pending.is_empty() {
                return Ok(());
            }
            st.vf.write_pages(&st.pending, w.next_slot, st.live_count, last_lsn).map_err(|e| self.poison(e))?
        };
        {
            let st = self.state.read();
            let mut m = self.mirror.lock();
            if let Err(e) = m.checkpoint() {
                if !is_damage(&e) {
                    return Err(self.poison(e));
                }
                self.replace_damaged_mirror(&mut m, &st, &e).map_err(|e| self.poison(e))?;
                m.checkpoint().map_err(|e| self.poison(e))?;
            }
        }
        {
            let mut st = self.state.write();
            st.vf.commit(sb, dir, nv).map_err(|e| self.poison(e))?;
            st.pending = Pending::default();
        }
        let gen = w.wal.header.generation + 1;
        w.wal = Wal::create(self.storage.as_ref(), gen, last_lsn + 1, self.store_uuid).map_err(|e| self.poison(e))?;
        let mut g = self.group.lock();
        g.generation = gen;
        g.written = w.wal.end;
        g.synced = w.wal.end;
        self.group_cv.notify_all();
        Ok(())
    }

    /// The `k` records nearest to `query`, closest first (ties by insertion order). With a
    /// filter, only matching records are considered, so `k` results come back whenever at
    /// least `k` records match. The same as [`Engine::search_with`] with default options.
    pub fn search(&self, query: &[f32], k: usize, filter: Option<&Filter>) -> Result<Vec<SearchHit>> {
        let mut o = SearchOptions::new(k);
        o.filter = filter;
        self.search_with(query, &o)
    }

    /// Search with options: the scan, the thread count, the oversampling of the quantized scan.
    pub fn search_with(&self, query: &[f32], opts: &SearchOptions<'_>) -> Result<Vec<SearchHit>> {
        Ok(self.search_batch(query, opts)?.pop().unwrap_or_default())
    }

    /// Several queries in one call (`queries` holds `n × dimension` floats, one query after
    /// another): each page is scored against every query while it is in cache. Returns one
    /// result list per query, in order.
    pub fn search_batch(&self, queries: &[f32], opts: &SearchOptions<'_>) -> Result<Vec<Vec<SearchHit>>> {
        self.process.check()?;
        if !queries.len().is_multiple_of(self.dim) || queries.is_empty() {
            if queries.len() < 2 * self.dim {
                return Err(Error::DimensionMismatch { expected: self.dim, got: queries.len() });
            }
            return Err(Error::invalid(format!("a batch of queries holds a multiple of {} floats, not {}", self.dim, queries.len())));
        }
        let mut qs = Vec::with_capacity(queries.len());
        let several = queries.len() > self.dim;
        for (i, q) in queries.chunks_exact(self.dim).enumerate() {
            let q = self.check_vector(q.to_vec()).map_err(|e| if several { at_position(e, &format!("query {i}")) } else { e })?;
            qs.extend_from_slice(&q);
        }
        let filter = opts.filter.filter(|f| !f.is_match_all());
        let plan = SearchPlan {
            metric: self.metric,
            k: opts.k,
            mode: opts.mode,
            threads: opts.threads.filter(|&t| t > 0).unwrap_or(self.search_threads),
            oversample: opts.oversample,
            parallel_min_bytes: crate::index::PARALLEL_MIN_BYTES,
        };
        let st = self.state.read();
        let candidates = filter.map(|f| self.read_mirror(&st, |m| m.filter_slots(f))).transpose()?;
        let src = Source { st: &st, dim: self.dim };
        let hits = self.index.search(&src, &plan, &qs, candidates.as_deref())?;
        let mut slots: Vec<u64> = hits.iter().flatten().map(|h| h.slot).collect();
        slots.sort_unstable();
        slots.dedup();
        let rows = self.read_mirror(&st, |m| m.rows_by_slots(&slots))?;
        let mut by_slot = HashMap::with_capacity(slots.len());
        for (slot, row) in slots.iter().zip(rows) {
            let row = row.ok_or_else(|| self.mirror_disagrees(*slot))?;
            by_slot.insert(*slot, row);
        }
        let mut out = Vec::with_capacity(hits.len());
        for list in hits {
            let mut res = Vec::with_capacity(list.len());
            for h in list {
                let row = &by_slot[&h.slot];
                // 1 − cos of two unit vectors can round a hair below 0; report it as 0.
                let distance = if self.metric == Metric::Cosine { h.distance.max(0.0) } else { h.distance };
                res.push(SearchHit { id: row.id.clone(), distance, text: row.text.clone(), metadata: parse_meta(row.metadata.clone())? });
            }
            out.push(res);
        }
        Ok(out)
    }

    fn mirror_disagrees(&self, slot: u64) -> Error {
        Error::corrupted(self.file_path(MIRROR_FILE), 0, format!("the mirror has no record for live slot {slot}"))
    }

    /// The record with this id, if any.
    pub fn get(&self, id: &str) -> Result<Option<Record>> {
        self.process.check()?;
        let st = self.state.read();
        let Some(row) = self.read_mirror(&st, |m| m.row_by_id(id))? else {
            return Ok(None);
        };
        let src = Source { st: &st, dim: self.dim };
        let v = src
            .vector(row.slot)?
            .ok_or_else(|| Error::corrupted(self.file_path(vecfile::VEC_FILE), 0, format!("no vector for slot {} of id {id:?}", row.slot)))?;
        Ok(Some(Record { id: row.id, vector: v.into_owned(), text: row.text, metadata: parse_meta(row.metadata)? }))
    }

    /// The records matching `filter`, in insertion order, at most `limit` of them.
    pub fn get_where(&self, filter: &Filter, limit: Option<usize>) -> Result<Vec<Record>> {
        self.process.check()?;
        let st = self.state.read();
        let rows = self.read_mirror(&st, |m| {
            let mut slots = m.filter_slots(filter)?;
            slots.sort_unstable();
            if let Some(n) = limit {
                slots.truncate(n);
            }
            m.rows_by_slots(&slots)
        })?;
        let src = Source { st: &st, dim: self.dim };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows.into_iter().flatten() {
            let v = src
                .vector(row.slot)?
                .ok_or_else(|| Error::corrupted(self.file_path(vecfile::VEC_FILE), 0, format!("no vector for slot {} of id {:?}", row.slot, row.id)))?;
            out.push(Record { id: row.id, vector: v.into_owned(), text: row.text, metadata: parse_meta(row.metadata)? });
        }
        Ok(out)
    }

    /// Whether a record has this id.
    pub fn contains(&self, id: &str) -> Result<bool> {
        self.process.check()?;
        let st = self.state.read();
        Ok(self.read_mirror(&st, |m| m.slot_of(id))?.is_some())
    }

    /// Number of live records.
    ///
    /// # Panics
    /// In a forked child (see [`Error::ForkedProcess`]), before taking any lock: the count has
    /// no error to return, and an inherited engine must not be used.
    pub fn count(&self) -> u64 {
        self.assert_opener();
        self.state.read().live_count
    }

    /// Panics with [`Error::ForkedProcess`]'s message in a forked child (for the operations
    /// that return no `Result`).
    fn assert_opener(&self) {
        if let Err(e) = self.process.check() {
            panic!("{e}");
        }
    }

    /// All records in insertion order, read in pages; records written or deleted while
    /// iterating may or may not be seen.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter { engine: self, after: None, buf: VecDeque::new(), done: false }
    }

    /// Figures about the store.
    ///
    /// # Panics
    /// In a forked child, like [`Engine::count`].
    pub fn stats(&self) -> Stats {
        self.assert_opener();
        let w = self.writer.lock();
        let st = self.state.read();
        Stats {
            count: st.live_count,
            slots: w.next_slot,
            deleted: st.dead.len(),
            dimension: self.dim,
            metric: self.metric,
            pages: st.vf.sb.page_count,
            vector_file_bytes: st.vf.sealed_len(),
            wal_bytes: w.wal.end,
            checkpoint_lsn: st.vf.sb.checkpoint_lsn,
            last_lsn: w.next_lsn - 1,
            pending_vectors: st.pending.n_vectors as u64,
            recovery: self.recovery.lock().clone(),
            model: (!self.model.id.is_empty()).then(|| self.model.clone()),
        }
    }

    /// Check everything: every page's checksum and structure, the mirror's own integrity, and
    /// that the mirror and the vector file agree both ways (the same live slots, a vector for
    /// each, the live count). Returns [`Error::Corrupted`] naming the first disagreement.
    pub fn check_integrity(&self) -> Result<()> {
        self.process.check()?;
        let st = self.state.read();
        st.vf.verify_all()?;
        let mut live: HashSet<u64> = HashSet::new();
        st.vf.for_each_record(&mut |e| {
            if let RecordEntry::Put { slot, .. } = e {
                live.insert(slot);
            }
        })?;
        for r in &st.pending.records {
            if let PendingRecord::Put { slot, .. } = r {
                live.insert(*slot);
            }
        }
        live.retain(|s| !st.dead.contains(*s));
        let mirror_path = self.file_path(MIRROR_FILE);
        let m = self.mirror.lock();
        m.integrity_check()?;
        let in_mirror = m.all_slots()?;
        drop(m);
        if in_mirror.len() != live.len() || in_mirror.iter().any(|s| !live.contains(s)) {
            let extra = in_mirror.iter().filter(|s| !live.contains(s)).count();
            let missing = live.len() + extra - in_mirror.len();
            return Err(Error::corrupted(
                mirror_path,
                0,
                format!("the mirror disagrees with the log: {extra} slots only in the mirror, {missing} only in the vector file and WAL"),
            ));
        }
        if live.len() as u64 != st.live_count {
            return Err(Error::corrupted(self.file_path(vecfile::VEC_FILE), 0, format!("{} live records but the count says {}", live.len(), st.live_count)));
        }
        let src = Source { st: &st, dim: self.dim };
        for &s in &in_mirror {
            if src.vector(s)?.is_none() {
                return Err(Error::corrupted(self.file_path(vecfile::VEC_FILE), 0, format!("live slot {s} has no vector")));
            }
        }
        self.check_quantized(&src)
    }

    /// The int8 copies hold exactly the slots of the vectors, in order, each the quantization
    /// of its vector (FORMAT.md §2.8: derived state, so it can be recomputed and compared).
    fn check_quantized(&self, src: &Source<'_>) -> Result<()> {
        let bad = |why: String| Error::corrupted(self.file_path(vecfile::VEC_FILE), 0, why);
        let (mut qb, mut qi) = (0usize, 0usize);
        let mut cur = if src.quant_blocks() > 0 { Some(src.quant_block(0)?) } else { None };
        let mut codes = vec![0i8; self.dim];
        for b in 0..src.blocks() {
            let (slots, vecs) = src.block(b)?;
            for (slot, v) in slots.iter().zip(vecs.chunks_exact(self.dim)) {
                while cur.as_ref().is_some_and(|q| qi == q.slots.len()) {
                    qb += 1;
                    qi = 0;
                    cur = if qb < src.quant_blocks() { Some(src.quant_block(qb)?) } else { None };
                }
                let q = cur.as_ref().ok_or_else(|| bad(format!("slot {slot} has no int8 copy")))?;
                if q.slots[qi] != *slot {
                    return Err(bad(format!("the int8 copies hold slot {} where the vectors hold slot {slot}", q.slots[qi])));
                }
                let p = memento_format::page::quantize(v, &mut codes);
                if p != q.params[qi] || codes[..] != q.codes[qi * self.dim..(qi + 1) * self.dim] {
                    return Err(bad(format!("the int8 copy of slot {slot} is not the quantization of its vector")));
                }
                qi += 1;
            }
        }
        if cur.as_ref().is_some_and(|q| qi < q.slots.len()) || qb + 1 < src.quant_blocks() {
            return Err(bad("the int8 copies hold slots that no vector page holds".into()));
        }
        Ok(())
    }

    /// Checkpoint and close. Errors are reported here; dropping the engine closes it too but
    /// ignores them. In a forked child: [`Error::ForkedProcess`], and the engine is dropped
    /// without touching the store.
    pub fn close(self) -> Result<()> {
        self.process.check()?;
        self.close_inner()
    }

    fn close_inner(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let mut w = self.writer.lock();
        if self.poisoned.lock().is_some() {
            return Ok(());
        }
        self.checkpoint_locked(&mut w)
    }

    /// Drop the engine without checkpointing or syncing anything, as if the process had died
    /// at this point (what was written to the OS stays written). For crash tests.
    #[doc(hidden)]
    pub fn abandon(self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl Drop for Engine {
    /// Closes (checkpointing) in the opener. In a forked child nothing is written: no
    /// checkpoint, and the SQLite connections and the model are leaked rather than closed
    /// ([`OwnedByOpener`]); the files' descriptors are closed, which releases nothing the
    /// parent holds.
    fn drop(&mut self) {
        if self.process.in_opener() {
            let _ = self.close_inner();
        }
    }
}

impl EngineBuilder {
    fn with(storage: std::result::Result<Arc<dyn Storage>, PathBuf>) -> Self {
        EngineBuilder {
            storage,
            dimension: None,
            metric: None,
            durability: Durability::Sync,
            page_size: crate::limits::DEFAULT_PAGE_SIZE,
            wal_limit: 64 << 20,
            create: true,
            search_threads: 0,
            embedder: None,
            cache_entries: 10_000,
            disk_cache_entries: 20_000,
        }
    }
}

/// A vector error of one record (or query) of several, with its position put in front.
fn at_position(e: Error, what: &str) -> Error {
    match e {
        Error::InvalidVector { reason } => Error::InvalidVector { reason: format!("{what}: {reason}") },
        other => other,
    }
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn parse_meta(m: Option<String>) -> Result<Option<Metadata>> {
    m.map(|s| serde_json::from_str::<Metadata>(&s).map_err(|e| crate::mirror::inconsistent(format!("stored metadata is not a JSON object: {e}")))).transpose()
}

fn mirror_ops(ops: &[Op]) -> Vec<MirrorOp<'_>> {
    ops.iter()
        .map(|op| match op {
            Op::Put { slot, id, text, metadata, .. } => MirrorOp::Put { slot: *slot, id, text: text.as_deref(), metadata: metadata.as_deref() },
            Op::Delete { slot, .. } => MirrorOp::Delete { slot: *slot },
            Op::Update { slot, text, metadata } => {
                MirrorOp::Update { slot: *slot, text: text.as_ref().map(|t| t.as_deref()), metadata: metadata.as_ref().map(|m| m.as_deref()) }
            }
        })
        .collect()
}

fn apply_to_state(st: &mut State, ops: Vec<Op>, first_lsn: u64, dim: usize) {
    // The commit record follows the ops (wal.rs `encode_txn`).
    st.last_lsn = first_lsn + ops.len() as u64;
    let capacity = st.vf.layout.capacity;
    let qcapacity = st.vf.qlayout.capacity;
    for (i, op) in ops.into_iter().enumerate() {
        let lsn = first_lsn + i as u64;
        match op {
            Op::Put { slot, id, text, metadata, vector } => {
                debug_assert_eq!(vector.len(), dim);
                st.pending.push_vector(slot, lsn, &vector, capacity, qcapacity);
                st.pending.records.push(PendingRecord::Put { slot, lsn, id, text, metadata });
                st.live_count += 1;
            }
            Op::Delete { slot, .. } => {
                st.pending.tombstones.push((slot, lsn));
                st.dead.insert(slot);
                st.live_count = st.live_count.saturating_sub(1);
            }
            Op::Update { slot, text, metadata } => st.pending.records.push(PendingRecord::Update { slot, lsn, text, metadata }),
        }
    }
}

fn open_mirror(storage: &dyn Storage, dir: &Path) -> Result<Mirror> {
    if storage.dir_path().is_none() {
        return Mirror::open_memory();
    }
    let path = dir.join(MIRROR_FILE);
    match Mirror::open_file_checked(&path)? {
        Ok(m) => Ok(m),
        Err(_damage) => {
            // Derived state: a mirror that is damaged or not a database is replaced and rebuilt.
            for suffix in ["", "-wal", "-shm"] {
                storage.remove(&format!("{MIRROR_FILE}{suffix}")).map_err(io_err("removing a damaged mirror"))?;
            }
            Mirror::open_file(&path)
        }
    }
}

/// A new, empty mirror in place of the old one (whose connection must be closed): its files
/// deleted, a new file created (in memory for a store without a directory).
fn fresh_mirror(storage: &dyn Storage, dir: &Path) -> Result<Mirror> {
    if storage.dir_path().is_none() {
        return Mirror::open_memory();
    }
    for suffix in ["", "-wal", "-shm"] {
        storage.remove(&format!("{MIRROR_FILE}{suffix}")).map_err(io_err("removing a damaged mirror"))?;
    }
    Mirror::open_file(&dir.join(MIRROR_FILE))
}

/// Fills an empty mirror with the live records of the state: the vector file's (as
/// [`rebuild_mirror`]), then the ones committed since the checkpoint (the WAL's transactions,
/// as the state holds them), all under the state's last commit LSN.
fn rebuild_from_state(m: &mut Mirror, st: &State, uuid: [u8; 16]) -> Result<()> {
    m.reset(uuid)?;
    if st.last_lsn == 0 {
        return Ok(());
    }
    fn op_of(e: RecordEntry<'_>) -> MirrorOp<'_> {
        match e {
            RecordEntry::Put { slot, id, text, metadata, .. } => MirrorOp::Put { slot, id, text, metadata },
            RecordEntry::Update { slot, text, metadata, .. } => MirrorOp::Update { slot, text, metadata },
        }
    }
    let mut ops: Vec<MirrorOp<'_>> = Vec::new();
    if st.vf.sb.checkpoint_lsn > 0 {
        st.vf.for_each_record(&mut |e| {
            if !st.dead.contains(e.slot()) {
                ops.push(op_of(e));
            }
        })?;
    }
    for r in &st.pending.records {
        let e = r.as_entry();
        if !st.dead.contains(e.slot()) {
            ops.push(op_of(e));
        }
    }
    m.apply(st.last_lsn, &ops)?;
    Ok(())
}

fn rebuild_mirror(m: &mut Mirror, vf: &VecFile, uuid: [u8; 16], checkpoint_lsn: u64) -> Result<()> {
    m.reset(uuid)?;
    if checkpoint_lsn == 0 {
        return Ok(());
    }
    let dead: HashSet<u64> = vf.tombstones()?.into_iter().map(|t| t.0).collect();
    let mut ops: Vec<MirrorOp<'_>> = Vec::new();
    vf.for_each_record(&mut |e| {
        if !dead.contains(&e.slot()) {
            ops.push(match e {
                RecordEntry::Put { slot, id, text, metadata, .. } => MirrorOp::Put { slot, id, text, metadata },
                RecordEntry::Update { slot, text, metadata, .. } => MirrorOp::Update { slot, text, metadata },
            });
        }
    })?;
    m.apply(checkpoint_lsn, &ops)?;
    Ok(())
}

struct Source<'a> {
    st: &'a State,
    dim: usize,
}

impl Source<'_> {
    /// Quantized pages in the vector file. A version-1 file has none: its sealed vectors'
    /// int8 copies are among the pending ones.
    fn sealed_quant_blocks(&self) -> usize {
        if self.st.vf.is_quantized() {
            self.st.vf.quant_dir.len()
        } else {
            0
        }
    }
}

impl VectorSource for Source<'_> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        // Every slot below the checkpoint's next_slot has a sealed vector.
        self.st.vf.sb.next_slot as usize + self.st.pending.n_vectors
    }
    fn blocks(&self) -> usize {
        self.st.vf.n_vector + self.st.pending.pages.len()
    }
    fn block(&self, i: usize) -> Result<crate::index::Block<'_>> {
        let n = self.st.vf.n_vector;
        if i < n {
            return self.st.vf.vector_page(i);
        }
        let p = &self.st.pending.pages[i - n];
        Ok((Cow::Borrowed(&p.slots), Cow::Borrowed(&p.vectors)))
    }
    fn quant_blocks(&self) -> usize {
        self.sealed_quant_blocks() + self.st.pending.quant.len()
    }
    fn quant_block(&self, i: usize) -> Result<QuantBlock<'_>> {
        let n = self.sealed_quant_blocks();
        if i < n {
            let (slots, params, codes) = self.st.vf.quant_page(i)?;
            return Ok(QuantBlock { slots, params, codes: Cow::Borrowed(codes) });
        }
        let p = &self.st.pending.quant[i - n];
        Ok(QuantBlock { slots: Cow::Borrowed(&p.slots), params: Cow::Borrowed(&p.params), codes: Cow::Borrowed(&p.codes) })
    }
    fn vector(&self, slot: u64) -> Result<Option<Cow<'_, [f32]>>> {
        if let Some(v) = self.st.pending.vector(slot, self.dim) {
            return Ok(Some(Cow::Borrowed(v)));
        }
        self.st.vf.vector(slot)
    }
    fn is_dead(&self, slot: u64) -> bool {
        self.st.dead.contains(slot)
    }
}

/// Iterator over all records; see [`Engine::iter`].
pub struct RecordIter<'a> {
    engine: &'a Engine,
    after: Option<u64>,
    buf: VecDeque<Record>,
    done: bool,
}

impl Iterator for RecordIter<'_> {
    type Item = Result<Record>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            let e = self.engine;
            if let Err(x) = e.process.check() {
                self.done = true;
                return Some(Err(x));
            }
            let st = e.state.read();
            let after = self.after;
            let rows = match e.read_mirror(&st, |m| m.rows_after(after, 256)) {
                Ok(r) => r,
                Err(x) => {
                    self.done = true;
                    return Some(Err(x));
                }
            };
            if rows.len() < 256 {
                self.done = true;
            }
            let src = Source { st: &st, dim: e.dim };
            for row in rows {
                self.after = Some(row.slot);
                let item = src
                    .vector(row.slot)
                    .and_then(|v| v.ok_or_else(|| e.mirror_disagrees(row.slot)))
                    .and_then(|v| Ok(Record { vector: v.into_owned(), id: row.id, text: row.text, metadata: parse_meta(row.metadata)? }));
                match item {
                    Ok(r) => self.buf.push_back(r),
                    Err(x) => {
                        self.done = true;
                        return Some(Err(x));
                    }
                }
            }
        }
        self.buf.pop_front().map(Ok)
    }
}
