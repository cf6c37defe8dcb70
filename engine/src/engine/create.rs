//! A new store's superblock: the builder's options checked (dimension, page size, the model's
//! dimension and id) before anything is created on disk, so that a refused open leaves nothing
//! behind.

use std::path::Path;
use std::sync::Arc;

use memento_format::superblock::{Metric, Superblock};

use super::{text, EngineBuilder};
use crate::error::{Error, Result};
use crate::wal;

/// The superblock of the store `b` would create, after checking its options (the dimension,
/// the page size, the model's dimension and id); waits for the model if one is loading. `dir`
/// names the store in messages.
pub(super) fn new_superblock(b: &EngineBuilder, model_load: &mut Option<text::ModelLoad>, dir: &Path) -> Result<Superblock> {
    let model = match model_load.take() {
        Some(l) => {
            let e = l.wait()?;
            *model_load = Some(text::ModelLoad::Ready(Arc::clone(&e)));
            Some(e.identity().clone())
        }
        None => None,
    };
    if let (Some(m), Some(d)) = (&model, b.dimension) {
        if m.dim as usize != d {
            return Err(Error::invalid(format!("the model {} makes {}-dimensional vectors, not {d}", m.id, m.dim)));
        }
    }
    let dim = b
        .dimension
        .or(model.as_ref().map(|m| m.dim as usize))
        .ok_or_else(|| Error::invalid(format!("there is no store at {}; give a dimension or a model to create one", dir.display())))?;
    crate::limits::check_layout(dim, b.page_size).map_err(Error::invalid)?;
    let mut uuid = [0u8; 16];
    uuid[..8].copy_from_slice(&wal::random_u64().to_le_bytes());
    uuid[8..].copy_from_slice(&wal::random_u64().to_le_bytes());
    let mut sb = Superblock::new(uuid, wal::random_u64() as u32, dim as u32, b.metric.unwrap_or(Metric::Cosine), b.page_size);
    if let Some(m) = model {
        if m.id.is_empty() || m.id.len() > 64 {
            return Err(Error::invalid(format!("a model id must be 1 to 64 bytes, not {:?}", m.id)));
        }
        sb.model = m;
    }
    Ok(sb)
}
