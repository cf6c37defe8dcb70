//! [`Engine`]: one open store. The engine is a stack of parts, each in its own file, that
//! call downwards only:
//!
//! | file | what |
//! |---|---|
//! | `builder.rs` | [`EngineBuilder`], the options of an open or a create |
//! | `open.rs` | opening: lock, create, recovery, the v1 upgrade, the mirror, the model, in named steps |
//! | `create.rs` | a new store's superblock and its option checks |
//! | `text.rs` | text: the embedding model and its caches, `remember` / `recall` |
//! | `write.rs` | the write path: plan → WAL append → durable wait → apply |
//! | `plan.rs` | planning a batch into WAL operations |
//! | `check.rs` | the per-record checks a write makes (shared with `check_record`) |
//! | `checkpoint.rs` | checkpoints (the WAL folded into the vector file) |
//! | `compact.rs` | compaction: the vector file rewritten with its live records only |
//! | `search.rs`, `read.rs` | searches, reads by id or filter, the iterator, the figures |
//! | `integrity.rs` | [`Engine::check_integrity`] (the inspector's checks, on the open store) |
//! | `group.rs` | group commit: one `fdatasync` for many waiting commits |
//! | `follow.rs` | a read-only engine: a snapshot of a store another process writes, moved to its latest commit before each read (FORMAT.md §4.4) |
//! | `mirror_access.rs` | the engine's side of the SQLite mirror: open, rebuild, read with a retry |
//! | `state.rs` | the in-memory state and applying a committed transaction to it |
//! | `poison.rs` | refusing writes after a failed write or fsync |
//! | `process.rs` | the opener's process id, and what a forked child must not drop |
//!
//! `follow.rs` sits beside `open.rs` (a reader's open) and below the reads (its `pin`).
//! `open.rs` and `write.rs` sit above `checkpoint.rs`, `group.rs` and `mirror_access.rs`,
//! which sit above `state.rs`, `poison.rs` and `process.rs`; nothing calls upwards.
//!
//! # Lock order
//! A thread that holds several of the engine's locks took them in this order, and takes no
//! earlier one while it holds a later one:
//!
//! 1. `writer` (the one writer: planning, the WAL append, checkpoints, `stats`);
//! 2. `state` (read by searches and reads; written only by a writer applying a commit or a
//!    checkpoint);
//! 3. `mirror` (taken with `state` held, read or write, so the mirror always mirrors it);
//! 4. `graph.mem`, then `graph.mapped` (the graph index: a search takes them under `state`).
//!    The one exception to this order: the builder thread holds `graph.mem` for reading while
//!    it measures and writes the graph file, taking `state` for reading a moment per query.
//!    That cannot deadlock because nothing waits for `graph.mem` for writing while it holds
//!    `state`: only the builder itself takes it so (to grow the graph), and a compaction drops
//!    a stale graph after it has released `state`;
//! 5. `group` (the group commit's counters; never held across an fsync);
//! 6. leaves, held alone or last, never while taking another: `poisoned`, `recovery`,
//!    `emb_cache`, `disk_cache`, the graph builder's controls and `graph.estimate`.
//!
//! A read-only engine has no `writer`; its reads take `read_gate`, then `follow`, then
//! `state` and `mirror` as above.
//!
//! Embedding runs before the writer lock is taken, so a slow model never blocks readers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use memento_format::superblock::Metric;
use parking_lot::{Mutex, RwLock};

use crate::embed::{Embedder, EmbeddingCache, ModelIdentity};
use crate::error::{Error, Result};
use crate::index::FlatIndex;
use crate::mirror::Mirror;
use crate::storage::{Storage, StoreLock};

mod builder;
mod check;
mod checkpoint;
mod compact;
mod create;
mod follow;
mod graph;
mod group;
mod integrity;
mod keyword;
mod mirror_access;
mod open;
mod plan;
mod poison;
pub(crate) mod process;
mod read;
mod search;
mod state;
mod text;
mod types;
mod write;

pub use builder::EngineBuilder;
pub use check::{check_id, check_metadata};
pub use compact::{CompactInfo, CompactPolicy};
pub use graph::GraphInfo;
use group::GroupCommit;
pub use keyword::HYBRID_CANDIDATES;
use poison::Poison;
use process::{OwnedByOpener, ProcessGuard};
pub use read::RecordIter;
use state::{State, Writer};
pub use text::{CacheStats, Embedding, Memory, EMBEDDING_CACHE_FILE};
pub use types::{CommitInfo, Durability, Fusion, RecallMode, Record, SearchHit, SearchOptions, Stats, WriteBatch, DEFAULT_K, DEFAULT_RECALL_MODE, RRF_K};

/// Metadata of a record: a JSON object.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// `patch` merged into `old`: a copy of `old` (an empty object when `None`) in which each key of
/// `patch` replaces the old value, or is removed when the patch's value is JSON `null`. The
/// result is always an object, possibly empty. The semantics of
/// [`WriteBatch::merge_metadata`] and [`Engine::merge_metadata`] (and of the command line's
/// `memento update --merge`), for a front end that wants to show what a merge will store.
///
/// ```
/// use memento::{merge_metadata, Metadata};
/// use serde_json::{from_value, json, Value};
/// let old: Metadata = from_value(json!({"lang": "en", "draft": true}))?;
/// let patch: Metadata = from_value(json!({"lang": "fr", "draft": null, "year": 2024}))?;
/// assert_eq!(Value::Object(merge_metadata(Some(&old), &patch)), json!({"lang": "fr", "year": 2024}));
/// assert_eq!(Value::Object(merge_metadata(None, &patch)), json!({"lang": "fr", "year": 2024}));
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn merge_metadata(old: Option<&Metadata>, patch: &Metadata) -> Metadata {
    let mut merged = old.cloned().unwrap_or_default();
    for (k, v) in patch {
        if v.is_null() {
            merged.remove(k);
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    merged
}

/// File name of the SQLite mirror.
pub const MIRROR_FILE: &str = "memento.mirror.sqlite";

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
    /// The one writer's side: `None` in an engine opened read-only.
    writer: Option<Mutex<Writer>>,
    /// A read-only engine's hold on the files it follows (FORMAT.md §4.4); `None` in a writer.
    follow: Option<Mutex<follow::Follow>>,
    /// Taken by every read of a read-only engine for its length: the mirror's read
    /// transaction that pins the snapshot is one per connection.
    read_gate: Mutex<()>,
    state: Arc<RwLock<State>>,
    /// The graph index: the writer's graph in memory, the mapped file, the builder's controls.
    graph: Arc<crate::graph::builder::GraphIndex>,
    /// Whether the graph index is on (`EngineBuilder::graph`).
    graph_enabled: bool,
    /// The writer's graph builder thread (joined at close; never in a forked child).
    graph_thread: OwnedByOpener<Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// Dropped only in the opener: closing SQLite in a forked child could checkpoint or
    /// remove the `-wal` file the parent still uses.
    mirror: OwnedByOpener<Mutex<Mirror>>,
    group: GroupCommit,
    poisoned: Poison,
    closed: AtomicBool,
    index: FlatIndex,
    search_threads: usize,
    /// At close, the WAL is checkpointed only past this many bytes.
    close_checkpoint_min: u64,
    auto_compact: Option<CompactPolicy>,
    /// What recovery did at open, then every rebuild of a damaged mirror and every failed
    /// automatic compaction since.
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
    _lock: Option<Box<dyn StoreLock>>,
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

    /// Open the store in directory `path` read-only, beside the process that writes it (if
    /// any): see [`EngineBuilder::read_only`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Engine> {
        Engine::builder(path).read_only().open()
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
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        self.stop_graph_builder();
        let mut w = writer.lock();
        if self.poisoned.is_set() {
            return Ok(());
        }
        // Commits check the policy themselves; this catches a store that was opened already
        // past it (written with the policy off, or before it existed) and took no commit.
        self.compact_if_due(&mut w);
        // A version-1 file is upgraded by its next checkpoint: that is this one.
        let upgrade_due = !self.state.read().vf.is_quantized();
        let closed = if w.wal.end > self.close_checkpoint_min || upgrade_due {
            self.checkpoint_locked(&mut w)
        } else {
            // A small WAL stays: the next open replays it. It is synced, so that a closed store
            // holds every commit whatever the durability mode.
            w.wal.file.sync_data().map_err(|e| self.poisoned.record(Error::io("syncing the WAL at close", e)))
        };
        // The graph of the sealed vectors, when it has grown past its file: the next open
        // then scans only what came since. It is derived: a failure costs the next open speed.
        if closed.is_ok() {
            if let Err(e) = graph::persist_if_due(&self.graph, &self.state, self.storage.as_ref(), false) {
                self.recovery.lock().push(format!("the graph file could not be written at close: {e}"));
            }
        }
        closed
    }

    /// Stop the graph builder and wait for it (it finishes the batch it is inserting).
    fn stop_graph_builder(&self) {
        self.graph.stop();
        if let Some(h) = self.graph_thread.lock().take() {
            let _ = h.join();
        }
    }

    /// The writer's side, locked; [`Error::ReadOnly`] in an engine opened read-only.
    fn writer(&self) -> Result<parking_lot::MutexGuard<'_, Writer>> {
        self.writer.as_ref().map(Mutex::lock).ok_or_else(|| Error::ReadOnly { path: self.dir.clone() })
    }

    /// Whether this engine was opened read-only ([`EngineBuilder::read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.writer.is_none()
    }

    /// Drop the engine without checkpointing or syncing anything, as if the process had died
    /// at this point (what was written to the OS stays written). For crash tests.
    #[doc(hidden)]
    pub fn abandon(self) {
        self.closed.store(true, Ordering::SeqCst);
        self.stop_graph_builder();
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
