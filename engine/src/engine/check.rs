//! What a write checks of each record it stores, in one place that the write path
//! (`Engine::plan`) and the public [`Engine::check_record`] / [`Engine::check_memory`] share, so
//! that a front end can check a whole input before its first commit with exactly the checks the
//! commits will make (and no second copy of them to drift).

use memento_format::wal::{Payload, MAX_ID_LEN, MAX_RECORD_LEN};

use memento_format::superblock::Metric;

use super::{Engine, Memory, Metadata, Record, WriteBatch};
use crate::error::{Error, Result};
use crate::kernels;

impl Engine {
    /// Validate a vector (taking it, so a written vector is normalised in place, not copied).
    pub(super) fn check_vector(&self, mut v: Vec<f32>) -> Result<Vec<f32>> {
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

    /// Checks `r` as writing it (with [`Engine::add`], [`Engine::upsert`] or in a
    /// [`super::WriteBatch`]) would, and writes nothing: the id (1 to 1,024 bytes), the vector
    /// (the store's dimension, finite, not all zeros under cosine, a norm of at most 1e18 under
    /// dot and l2), the metadata (serialisable,
    /// no NUL in a key, and the limits on metadata), the size of the record. `Ok` means a write
    /// of `r` fails for none of these reasons; what it cannot tell is the store's state at that
    /// write (an id that [`Engine::add`] finds taken, a closed or poisoned engine, an I/O error).
    pub fn check_record(&self, r: &Record) -> Result<()> {
        let v = self.check_vector(r.vector.clone())?;
        self.check_put(&r.id, r.text.as_deref(), r.metadata.as_ref(), &v).map(drop)
    }

    /// Checks `batch` as [`Engine::write`] would now, against the store as it is, and writes
    /// nothing: the same checks in the same order (every id, then each operation in turn: a
    /// taken id for an add, the vector, the metadata, a missing id for an update), so the first
    /// error is the one the write would return. A text update is not embedded (its text is
    /// checked as text). `Ok` means the write would fail for none of these reasons; another
    /// writer may still change the store in between.
    pub fn check_write(&self, batch: WriteBatch) -> Result<()> {
        self.process.check()?;
        let w = self.writer()?;
        self.poisoned.check()?;
        self.plan(&w, batch).map(drop)
    }

    /// Checks `m` as [`Engine::remember_batch`] would before storing it: its id (given, or
    /// derived from the text), its metadata and the size of the record it makes with a vector of
    /// the store's dimension. The vector itself comes from the model, so it is not checked here.
    pub fn check_memory(&self, m: &Memory) -> Result<()> {
        let derived;
        let id = match &m.id {
            Some(id) => id.as_str(),
            None => {
                derived = Engine::content_id(&m.text);
                derived.as_str()
            }
        };
        check_id(id)?;
        let json = m.metadata.as_ref().map(metadata_json).transpose()?;
        check_text(&m.text)?;
        let put = Payload::Put { slot: 0, id, text: Some(&m.text), metadata: json.as_deref(), vector: &[] };
        check_len(put.record_len() + self.dim * std::mem::size_of::<f32>())
    }

    /// The checks of a record to put other than of its vector (`vector` is the checked one):
    /// returns the metadata as it is stored (JSON text).
    pub(super) fn check_put(&self, id: &str, text: Option<&str>, metadata: Option<&Metadata>, vector: &[f32]) -> Result<Option<String>> {
        check_id(id)?;
        let json = metadata.map(metadata_json).transpose()?;
        text.map(check_text).transpose()?;
        let put = Payload::Put { slot: 0, id, text, metadata: json.as_deref(), vector: bytemuck::cast_slice(vector) };
        check_len(put.record_len())?;
        Ok(json)
    }
}

/// An id is 1 to [`MAX_ID_LEN`] bytes.
pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(Error::invalid(format!("an id must be 1 to {MAX_ID_LEN} bytes long, and {:?} is {}", truncate(id), id.len())));
    }
    Ok(())
}

/// Checks a metadata object as a write of it would (no NUL in a key, the limits of
/// [`crate::limits`]), and writes nothing: so that a front end can refuse bad metadata before it
/// looks anything up, as the engine's own update does.
pub fn check_metadata(m: &Metadata) -> Result<()> {
    metadata_json(m).map(drop)
}

/// The metadata validation: every check of a metadata object (of a put or of an update) is
/// here, and it returns the JSON text that is stored. Besides a NUL in a key, it refuses what
/// could not be stored and matched exactly ([`crate::limits`]): nesting deeper than
/// [`crate::limits::MAX_JSON_DEPTH`] levels, an integer outside `i64` (SQLite's INTEGER).
pub(super) fn metadata_json(m: &Metadata) -> Result<String> {
    if let Some(k) = m.keys().find(|k| k.contains('\0')) {
        return Err(Error::invalid(format!("metadata key {:?} contains a NUL character", truncate(k))));
    }
    crate::limits::check_metadata(m).map_err(Error::invalid)?;
    let json = serde_json::to_string(m).map_err(|e| Error::invalid(format!("metadata cannot be serialised: {e}")))?;
    crate::limits::check_metadata_len(&json).map_err(Error::invalid)?;
    Ok(json)
}

/// A record's text is within [`crate::limits::MAX_TEXT_BYTES`].
pub(super) fn check_text(text: &str) -> Result<()> {
    crate::limits::check_text(text).map_err(Error::invalid)
}

/// A WAL record of `len` bytes (before padding) fits [`MAX_RECORD_LEN`].
pub(super) fn check_len(len: usize) -> Result<()> {
    if memento_format::align_up(len, 8) > MAX_RECORD_LEN {
        return Err(Error::invalid("a record's text and metadata together exceed 1 GiB"));
    }
    Ok(())
}

/// A vector error of one record (or query) of several, with its position put in front.
pub(super) fn at_position(e: Error, what: &str) -> Error {
    match e {
        Error::InvalidVector { reason } => Error::InvalidVector { reason: format!("{what}: {reason}") },
        other => other,
    }
}

pub(super) fn truncate(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
