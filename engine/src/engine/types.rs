//! The public values of the engine's API: records, batches, options, hits, figures.

use memento_format::superblock::Metric;

use super::Metadata;
use crate::embed::ModelIdentity;
use crate::filter::Filter;
use crate::index::ScanMode;

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
    /// The vector; under the cosine metric it is stored (and returned) normalised. Empty, with a
    /// text, in a write: the embedding of the text ([`Record::from_text`]).
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

    /// A record whose vector is the embedding of `text` under the engine's model: the write
    /// embeds it (through the embedding cache, as one batch with the batch's other texts).
    /// [`Error::NoModel`](crate::Error::NoModel) on an engine without a model.
    pub fn from_text(id: impl Into<String>, text: impl Into<String>) -> Self {
        Record { id: id.into(), vector: Vec::new(), text: Some(text.into()), metadata: None }
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
    /// Distance from the query, smaller is closer: `1 − cosine` under cosine (never below 0),
    /// `−dot` under dot, the squared Euclidean distance under L2.
    pub distance: f32,
    /// Score, larger is closer: `1 − distance` (the cosine similarity) under cosine,
    /// `−distance` under dot (the dot product) and under L2 (minus the squared Euclidean
    /// distance). The same definition as the Python package's `SearchResult.score`, and what the
    /// `memento` command line prints.
    pub score: f32,
    /// The record's text.
    pub text: Option<String>,
    /// The record's metadata.
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Clone)]
pub(super) enum BatchOp {
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
    /// A metadata merge ([`WriteBatch::merge_metadata`]), resolved by the plan against the
    /// record's metadata as of its point in the batch.
    MergeMetadata {
        id: String,
        patch: Metadata,
    },
}

/// Several writes committed together: one WAL write, one fsync, all or nothing.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub(super) ops: Vec<BatchOp>,
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
    /// Merge `patch` into a record's metadata without touching its vector or text: each key of
    /// the patch replaces the record's value, and a JSON `null` removes the key (see
    /// [`merge_metadata`](crate::merge_metadata); a record without metadata merges into an empty
    /// object, and the result is always an object, possibly empty). The merge is made when the
    /// commit is planned, under the writer lock, against the record's metadata as of this point
    /// of the batch (as set by an earlier operation of the batch, else as stored): so no
    /// concurrent write in the same process is lost between the read and the write. The commit
    /// fails with [`Error::NotFound`] if there is no such record, and like
    /// [`update_metadata`](Self::update_metadata) if the patch or the merged metadata is not
    /// valid metadata (a NUL in a key, the limits of [`crate::limits`]).
    pub fn merge_metadata(&mut self, id: impl Into<String>, patch: Metadata) -> &mut Self {
        self.ops.push(BatchOp::MergeMetadata { id: id.into(), patch });
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

/// The default number of results of a search or a recall, in every front end: the `k` of
/// `SearchOptions::default()`, of the `memento` command line's `recall` and `search` (`-k`), and
/// of the Python package's `search` and `recall`.
pub const DEFAULT_K: usize = 10;

/// How a search runs; see [`Engine::search_with`]. `SearchOptions::new(k)` gives the defaults
/// with `k` results; `SearchOptions::default()` gives them with [`DEFAULT_K`](crate::DEFAULT_K).
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
    /// Candidates kept by a walk of the graph index (at least `k`); `None`: the engine's
    /// setting ([`crate::graph::GraphParams::ef_search`]). Larger is slower and closer to exact.
    pub ef: Option<usize>,
    /// Return ids, distances and scores only (`text` and `metadata` are `None`): what an index
    /// backend needs, without reading each hit's text and metadata from the mirror.
    pub ids_only: bool,
}

impl<'a> SearchOptions<'a> {
    /// `k` results, no filter, automatic scan, the engine's thread count.
    pub fn new(k: usize) -> Self {
        SearchOptions { k, filter: None, mode: ScanMode::Auto, threads: None, oversample: crate::index::DEFAULT_OVERSAMPLE, ef: None, ids_only: false }
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
    /// Ids, distances and scores only ([`SearchOptions::ids_only`]).
    pub fn ids_only(mut self) -> Self {
        self.ids_only = true;
        self
    }
    /// Candidates kept by a walk of the graph index ([`SearchOptions::ef`]).
    pub fn ef(mut self, ef: usize) -> Self {
        self.ef = Some(ef);
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

impl Default for SearchOptions<'_> {
    /// [`DEFAULT_K`](crate::DEFAULT_K) results, no filter, automatic scan, the engine's thread
    /// count.
    fn default() -> Self {
        SearchOptions::new(crate::DEFAULT_K)
    }
}

/// How a hybrid search fuses its keyword and vector rankings (see [`Engine::recall_hybrid`](crate::Engine::recall_hybrid)).
/// Each side brings its best `max(k, 50)` candidates; the fused list is ordered by fused score,
/// then by id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal rank fusion: a record scores `Σ 1 / (k + rank)` over the sides that found it
    /// (rank from 1). Only ranks count, so the two sides' scales do not matter. `k` > 0; the
    /// usual value, and the default, is [`RRF_K`].
    Rrf {
        /// The constant added to each rank: larger flattens the difference between ranks.
        k: f64,
    },
    /// A weighted sum of each side's scores, min-max normalised over that side's candidates (all
    /// 1 when they are equal): `alpha × vector + (1 − alpha) × keyword`, a side that did not
    /// find the record adding 0. `alpha` in [0, 1].
    Weighted {
        /// The vector side's weight.
        alpha: f64,
    },
}

/// What a text query is matched by ([`Engine::recall_by`](crate::Engine::recall_by)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RecallMode {
    /// By meaning: the query's embedding against the stored vectors.
    Vector,
    /// By words: BM25 over the full-text index ([`Engine::keyword_search`](crate::Engine::keyword_search)).
    Keyword,
    /// Both, fused ([`Engine::recall_hybrid`](crate::Engine::recall_hybrid)).
    Hybrid(Fusion),
}

/// The mode of `recall` where none is given: [`Engine::recall`](crate::Engine::recall), the
/// command line's `recall` and the Python package's. Hybrid with reciprocal rank fusion: on the
/// labelled retrieval set of BENCHMARKS.md ("Retrieval quality") it finds the answer in the top
/// 10 for 0.607 of the queries where meaning alone finds 0.544 and words alone 0.557, at a
/// cost below a millisecond at 10k records beside the query's embedding (about 2.6 ms).
pub const DEFAULT_RECALL_MODE: RecallMode = RecallMode::Hybrid(Fusion::Rrf { k: RRF_K });

/// Reciprocal rank fusion's usual constant ([`Fusion::Rrf`]).
pub const RRF_K: f64 = 60.0;

impl Default for Fusion {
    /// Reciprocal rank fusion with `k` = [`RRF_K`].
    fn default() -> Self {
        Fusion::Rrf { k: RRF_K }
    }
}

impl Fusion {
    /// An [`Error::InvalidArgument`](crate::Error) for a constant out of its range.
    pub fn check(self) -> crate::Result<()> {
        match self {
            Fusion::Rrf { k } if !(k.is_finite() && k > 0.0) => {
                Err(crate::Error::invalid(format!("the RRF constant must be a finite number above 0, not {k}")))
            }
            Fusion::Weighted { alpha } if !(0.0..=1.0).contains(&alpha) => {
                Err(crate::Error::invalid(format!("the vector weight alpha must be a number from 0 to 1, not {alpha}")))
            }
            _ => Ok(()),
        }
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
    /// rebuild of a mirror that a read found damaged and each automatic compaction that
    /// failed.
    pub recovery: Vec<String>,
    /// The embedding model the store was created with; `None` for a raw-vector store.
    pub model: Option<ModelIdentity>,
    /// Whether the engine was opened read-only ([`crate::EngineBuilder::read_only`]): then
    /// `last_lsn` is the commit its snapshot reaches, and `wal_bytes` how much of the WAL it
    /// has read.
    pub read_only: bool,
}
