//! Memento: an embedded vector database with a crash-safe storage format.
//!
//! The main types:
//! - [`Engine`]: an open store. [`Engine::builder`] creates or opens one with options
//!   ([`EngineBuilder`]: dimension, [`Metric`], [`Durability`], page size, WAL limit);
//!   [`Engine::open`] opens an existing one.
//! - [`Record`], [`WriteBatch`]: what is written. A batch is one commit and one fsync.
//! - [`Filter`]: Chroma's filter language (`$eq $ne $gt $gte $lt $lte $in $nin $and $or` on
//!   metadata, `$contains` / `$not_contains` on text), evaluated on the SQLite mirror before
//!   scoring.
//! - [`SearchHit`]: what [`Engine::search`] returns.
//! - [`Error`]: every failure, typed.
//! - [`storage`]: the I/O layer ([`storage::FsStorage`], [`storage::MemStorage`]).
//! - [`index::VectorIndex`]: how nearest neighbours are found ([`index::FlatIndex`]: exact).
//! - [`kernels`]: the distance kernels (f32 and int8, SIMD chosen at run time) and the int8
//!   quantization.
//!
//! The on-disk format is specified in `format-spec/FORMAT.md` and implemented by the
//! `memento-format` crate.
//!
//! ```
//! use memento::{Engine, Record, Filter, Metric};
//! let dir = tempfile::tempdir()?;
//! let engine = Engine::builder(dir.path()).dimension(3).metric(Metric::Cosine).open()?;
//! let mut meta = memento::Metadata::new();
//! meta.insert("topic".into(), "fruit".into());
//! engine.add(Record::new("apple", vec![1.0, 0.1, 0.0]).with_text("an apple").with_metadata(meta))?;
//! engine.add(Record::new("car", vec![0.0, 0.2, 1.0]).with_text("a car"))?;
//! let hits = engine.search(&[0.9, 0.2, 0.0], 1, None)?;
//! assert_eq!(hits[0].id, "apple");
//! let only_cars = Filter::from_json_str(r#"{"$contains": "car"}"#)?;
//! assert_eq!(engine.search(&[0.9, 0.2, 0.0], 5, Some(&only_cars))?[0].id, "car");
//! engine.close()?;
//! let reopened = Engine::open(dir.path())?;
//! assert_eq!(reopened.count(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// The Rust examples of the repository's README.md, compiled and run as doctests, so that they
/// cannot drift from the API (the Python ones run in `pybindings/tests/test_readme.py`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;

mod collections;
pub mod embed;
mod engine;
mod error;
mod filter;
pub mod graph;
pub mod index;
pub mod inspect;
pub mod kernels;
pub mod limits;
mod mirror;
mod peek;
mod scope;
mod slots;
pub mod storage;
mod vecfile;
mod wal;

pub use collections::{check_collection_name, CollectionInfo, Collections};
pub use engine::{
    check_id, check_metadata, merge_metadata, CacheStats, CommitInfo, CompactInfo, CompactPolicy, Durability, Embedding, Engine, EngineBuilder, Fusion,
    GraphInfo, Memory, Metadata, RecallMode, Record, RecordIter, SearchHit, SearchOptions, Stats, WriteBatch, DEFAULT_K, DEFAULT_RECALL_MODE,
    HYBRID_CANDIDATES, MIRROR_FILE, RRF_K,
};
pub use error::{describe_model, Error, MirrorErrorKind, Result};
pub use filter::Filter;
pub use index::ScanMode;
pub use memento_format::superblock::Metric;
pub use mirror::{fts_query, STOP_WORDS};
pub use peek::{peek, StoreInfo};
pub use scope::{Scope, SCOPE_KEYS};

/// Registers, once per process, the SQLite VFS that writes and checks the mirror's page
/// trailers (FORMAT.md §6.1) and returns its name: for tools and tests that open a mirror file
/// with SQLite themselves. A plain connection can read a mirror, but a page it writes has no
/// valid trailer, so the engine then treats the file as damaged and rebuilds it.
pub fn mirror_vfs() -> Result<&'static str> {
    mirror::vfs::register().map_err(|reason| Error::mirror(MirrorErrorKind::Setup, reason))?;
    mirror::vfs::VFS_NAME.to_str().map_err(|e| Error::mirror(MirrorErrorKind::Setup, e.to_string()))
}

/// File names inside a store directory.
pub mod files {
    pub use crate::engine::EMBEDDING_CACHE_FILE as EMBEDDING_CACHE;
    pub use crate::engine::MIRROR_FILE as MIRROR;
    pub use crate::vecfile::VEC_FILE as VECTORS;
    pub use crate::wal::WAL_FILE as WAL;
    /// The lock file.
    pub const LOCK: &str = "LOCK";
    /// A collections root's marker and catalog lock (FORMAT.md §8).
    pub use crate::collections::{CATALOG_LOCK_FILE as CATALOG_LOCK, MARKER_FILE as COLLECTIONS_MARKER};
}
