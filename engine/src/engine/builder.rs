//! [`EngineBuilder`]: the options of an open or a create, consumed by [`EngineBuilder::open`]
//! (which runs the steps in `open.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use memento_format::superblock::Metric;

use super::{Durability, Engine};
use crate::embed::{Embedder, OnnxOptions};
use crate::error::Result;
use crate::storage::Storage;

/// Options for opening or creating a store. Consumed by [`EngineBuilder::open`].
#[must_use]
pub struct EngineBuilder {
    /// The storage, or the directory to open it on (at `open`, so that opening a missing store
    /// without `create` leaves nothing behind).
    pub(super) storage: std::result::Result<Arc<dyn Storage>, PathBuf>,
    pub(super) dimension: Option<usize>,
    pub(super) metric: Option<Metric>,
    pub(super) durability: Durability,
    pub(super) page_size: u32,
    pub(super) wal_limit: u64,
    pub(super) create: bool,
    pub(super) search_threads: usize,
    pub(super) embedder: Option<EmbedderSource>,
    pub(super) cache_entries: usize,
    pub(super) disk_cache_entries: usize,
    pub(super) group_access: bool,
    pub(super) read_only: bool,
    pub(super) close_checkpoint_min: u64,
    pub(super) auto_compact: Option<super::compact::CompactPolicy>,
    pub(super) graph: Option<crate::graph::GraphParams>,
}

/// Where the builder gets its embedding model.
pub(super) enum EmbedderSource {
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
    /// A store this open creates is shared with the owner's group: its directory `0770` and its
    /// files `0660`, so that the group's processes can read it (and write it). Default false:
    /// a new store is private to its owner (`0700` / `0600`), since it holds the user's text.
    /// An existing store keeps its modes (its files take their mode from its directory).
    pub fn group_access(mut self, yes: bool) -> Self {
        self.group_access = yes;
        self
    }
    /// Open the store read-only, beside the process that writes it, in as many processes as
    /// needed (FORMAT.md §4.4): no lock is taken and no file of the store is written. The
    /// engine answers from a consistent snapshot, every commit up to one LSN, and moves to
    /// the latest commit by itself before each read or search (one SQLite read of the mirror's
    /// header when nothing changed; the new commits when some did). Writes and checkpoints
    /// fail with [`Error::ReadOnly`](crate::Error::ReadOnly); the store must exist; the
    /// persisted embedding cache is not used (texts are embedded through the in-memory one).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
    /// At close (and drop), the WAL is folded into the vector file only when it holds more
    /// than this many bytes (default 4 MiB); a smaller one stays as it is (synced), and the
    /// next open replays it, which is cheap. So a program that opens a store, writes a little
    /// and closes it, again and again, adds about what it writes, not a checkpoint's pages
    /// each time. 0: always checkpoint at close.
    pub fn close_checkpoint_min(mut self, bytes: u64) -> Self {
        self.close_checkpoint_min = bytes;
        self
    }
    /// When a commit or a checkpoint leaves deleted or replaced records making up at least
    /// `policy.dead_fraction` of the store's vectors (checkpointed or not), and at least
    /// `policy.min_dead` of them, the store is compacted right after it ([`Engine::compact`]),
    /// and at close if it is due then. Default:
    /// [`CompactPolicy::default`] (40% and 256); `None` turns it off.
    pub fn auto_compact(mut self, policy: Option<super::compact::CompactPolicy>) -> Self {
        self.auto_compact = policy;
        self
    }
    /// The graph index (FORMAT.md §7): how it is built and searched
    /// ([`crate::graph::GraphParams`]; default [`crate::graph::GraphParams::default`]). `None`
    /// builds none: every search scans (a graph file already in the store is left alone).
    pub fn graph(mut self, params: Option<crate::graph::GraphParams>) -> Self {
        self.graph = params;
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

impl EngineBuilder {
    pub(super) fn with(storage: std::result::Result<Arc<dyn Storage>, PathBuf>) -> Self {
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
            group_access: false,
            read_only: false,
            close_checkpoint_min: 4 << 20,
            auto_compact: Some(super::compact::CompactPolicy::default()),
            graph: Some(crate::graph::GraphParams::default()),
        }
    }
}
