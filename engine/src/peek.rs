//! What a store is, read from its superblock without opening it: no lock, no recovery, no
//! write, nothing created. The front ends ask this (the CLI for a store's model, the Python
//! package for its dimension, metric and model) instead of decoding bytes themselves or reading
//! an engine's error message.

use std::os::unix::fs::FileExt;
use std::path::Path;

use memento_format::superblock::Metric;

use crate::embed::ModelIdentity;
use crate::error::{Error, Result};
use crate::vecfile::{self, VEC_FILE};

/// A store's identity and shape, as its current superblock states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// The on-disk format version that wrote the superblock.
    pub format_version: u32,
    /// The store's UUID.
    pub store_uuid: [u8; 16],
    /// The vector dimension.
    pub dimension: usize,
    /// The metric.
    pub metric: Metric,
    /// The page size in bytes.
    pub page_size: u32,
    /// The embedding model; `None` for a raw-vector store.
    pub model: Option<ModelIdentity>,
    /// Live records as of the last checkpoint (commits after it are in the WAL, which this does
    /// not read).
    pub checkpoint_live_count: u64,
    /// The LSN of the last checkpoint.
    pub checkpoint_lsn: u64,
}

/// Reads the store in `dir` from its vector file's superblock (the newer valid copy), without
/// opening the store: works while another process holds it. Errors: no store there
/// ([`Error::InvalidArgument`]), both copies damaged ([`Error::Corrupted`]), a format this
/// version cannot read ([`Error::Incompatible`]), I/O.
pub fn peek(dir: impl AsRef<Path>) -> Result<StoreInfo> {
    let dir = dir.as_ref();
    let path = dir.join(VEC_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::invalid(format!("there is no store at {}", dir.display()))),
        Err(e) => return Err(Error::io(format!("opening {}", path.display()), e)),
    };
    let len = file.metadata().map_err(|e| Error::io(format!("reading the length of {}", path.display()), e))?.len();
    let sb = vecfile::current_superblock(&path, len, |b, off| file.read_exact_at(b, off))?.sb;
    Ok(StoreInfo {
        format_version: sb.format_version,
        store_uuid: sb.store_uuid,
        dimension: sb.dimension as usize,
        metric: sb.metric,
        page_size: sb.page_size,
        model: (!sb.model.id.is_empty()).then_some(sb.model),
        checkpoint_live_count: sb.live_count,
        checkpoint_lsn: sb.checkpoint_lsn,
    })
}
