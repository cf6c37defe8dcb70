//! The engine's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the engine. Messages are whole sentences.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A vector's length is not the store's dimension.
    DimensionMismatch {
        /// The store's dimension.
        expected: usize,
        /// The length that was given.
        got: usize,
    },
    /// A vector holds NaN or an infinity, or is all zeros under the cosine metric.
    InvalidVector {
        /// What is wrong with it.
        reason: String,
    },
    /// An argument other than a vector is not acceptable (an empty id, metadata
    /// that is not a JSON object, an option out of range, ...).
    InvalidArgument {
        /// What is wrong with it.
        reason: String,
    },
    /// A filter is not well formed.
    InvalidFilter {
        /// What is wrong with it.
        reason: String,
    },
    /// No record has this id.
    NotFound {
        /// The id that was asked for.
        id: String,
    },
    /// `add` was given an id that is already stored, or that an earlier record of the same
    /// batch has.
    DuplicateId {
        /// The id.
        id: String,
        /// Whether the id is given twice in the batch (rather than stored already).
        in_batch: bool,
    },
    /// A file's content is damaged or is not what the store expects.
    Corrupted {
        /// The file.
        file: PathBuf,
        /// Byte offset of the damage in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The store was written by a newer, incompatible version of Memento, or
    /// its options conflict with the ones asked for at open.
    Incompatible {
        /// What does not match.
        reason: String,
    },
    /// Another process (or another open engine in this one) holds the store.
    Locked {
        /// The store directory.
        path: PathBuf,
        /// The holder's process id, 0 if unknown.
        pid: u32,
    },
    /// An operating-system I/O error.
    Io {
        /// What the engine was doing.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// The SQLite mirror failed; `kind` says how (damage, which the engine repairs by
    /// rebuilding the mirror from the log, is [`MirrorErrorKind::Damaged`]).
    Mirror {
        /// What kind of failure it is.
        kind: MirrorErrorKind,
        /// What failed, in words (for [`MirrorErrorKind::Damaged`], what is damaged).
        detail: String,
        /// SQLite's own error, where SQLite reported one ([`std::error::Error::source`] returns
        /// it). Boxed to keep every `Result` of the crate small.
        source: Option<Box<rusqlite::Error>>,
    },
    /// An earlier write or fsync failed, so the state on disk is uncertain.
    /// Nothing more is written until the store is closed and reopened (which
    /// recovers to the last durable commit).
    Poisoned {
        /// The first failure.
        cause: String,
    },
    /// A write (or a checkpoint) on an engine opened read-only
    /// ([`crate::EngineBuilder::read_only`]): only the process that holds the store writes it.
    ReadOnly {
        /// The store directory.
        path: PathBuf,
    },
    /// The embedding model or the ONNX Runtime library is missing, unusable or failed; the
    /// message says how to fix it.
    Model {
        /// What is wrong.
        reason: String,
    },
    /// The store was written with another embedding model than the one given, or a vector
    /// comes from another model than the store's.
    ModelMismatch {
        /// The store's model (an empty id: a raw-vector store, which has none). Boxed, as is
        /// `given`, to keep every `Result` of the crate small.
        store: Box<crate::embed::ModelIdentity>,
        /// The model that was given.
        given: Box<crate::embed::ModelIdentity>,
    },
    /// A text operation on an engine opened without an embedding model.
    NoModel,
    /// The engine was closed.
    Closed,
    /// The engine was opened by another process: this one is a `fork()` of it. Nothing works
    /// through an inherited engine (its other threads, locks and SQLite connections did not
    /// survive the fork, and a write would interleave with the parent's); open the store in
    /// the process that uses it.
    ForkedProcess {
        /// The process that opened the engine.
        opener: u32,
        /// The current process.
        current: u32,
    },
    /// No collection of this name in the collections directory ([`crate::Collections`]).
    CollectionNotFound {
        /// The name.
        name: String,
    },
    /// A collection of this name exists already.
    CollectionExists {
        /// The name.
        name: String,
    },
    /// The collection is open for writing by a process (this one or another), so it cannot be
    /// deleted or renamed.
    CollectionInUse {
        /// The name.
        name: String,
        /// The holder's process id, 0 if unknown.
        pid: u32,
    },
}

/// The kinds of [`Error::Mirror`]: what callers tell apart (the engine: damage to repair; the
/// Python binding: the exception class).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MirrorErrorKind {
    /// The mirror file is damaged (SQLite reports corruption, a page fails its trailer check,
    /// `integrity_check` fails), is not a Memento mirror, or has an older schema. The mirror is
    /// derived state: the engine deletes it and rebuilds it from the log, at open or at the read
    /// that met the damage.
    Damaged,
    /// The mirror file was written by a newer version of Memento (its schema version is newer
    /// than this version reads). It is refused, not rebuilt.
    NewerSchema,
    /// SQLite failed without damage: an I/O error, a full disk, a busy or read-only database, a
    /// statement it refused, a checkpoint it could not finish.
    Sqlite,
    /// The mirror could not be set up: the SQLite VFS that checks its page trailers could not be
    /// registered, or the store's path cannot be given to SQLite.
    Setup,
    /// The mirror holds what the engine never writes (metadata that is not a JSON object, a
    /// text that is not text) or lacks a record the engine changes, though SQLite reports no
    /// damage.
    Inconsistent,
    /// The engine asked the mirror for what it cannot do (a slot or LSN beyond what SQLite's
    /// integers hold, a change before the mirror has a header): a bug.
    Internal,
}

/// `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// [`Error::Io`]: `source`, while doing `context` (a phrase: "reading the WAL").
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidArgument { reason: reason.into() }
    }
    pub(crate) fn mirror(kind: MirrorErrorKind, detail: impl Into<String>) -> Self {
        Error::Mirror { kind, detail: detail.into(), source: None }
    }
    pub(crate) fn corrupted(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupted { file: file.into(), offset, reason: reason.into() }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::DimensionMismatch { expected, got } => {
                write!(f, "The vector has {got} dimensions but the store holds {expected}-dimensional vectors.")
            }
            Error::InvalidVector { reason } => write!(f, "The vector is not valid: {reason}."),
            Error::InvalidArgument { reason } => write!(f, "Invalid argument: {reason}."),
            Error::InvalidFilter { reason } => write!(f, "The filter is not valid: {reason}."),
            Error::NotFound { id } => write!(f, "No record has the id {id:?}."),
            Error::DuplicateId { id, in_batch: false } => write!(f, "A record with the id {id:?} already exists; use upsert to replace it."),
            Error::DuplicateId { id, in_batch: true } => {
                write!(f, "The id {id:?} is given twice in one batch; give each new record its own id (or upsert the second to replace the first).")
            }
            Error::Corrupted { file, offset, reason } => {
                write!(f, "{} is corrupted at byte offset {offset}: {reason}.", file.display())
            }
            Error::Incompatible { reason } => write!(f, "The store cannot be opened this way: {reason}."),
            Error::Locked { path, pid } => {
                if *pid == 0 {
                    write!(f, "The store {} is already open by another process.", path.display())
                } else {
                    write!(f, "The store {} is already open by process {pid}.", path.display())
                }
            }
            Error::Io { context, source } => write!(f, "I/O error while {context}: {source}."),
            Error::Mirror { kind: MirrorErrorKind::Damaged, detail, .. } => {
                write!(f, "The SQLite mirror failed: the mirror database is damaged: {detail}.")
            }
            Error::Mirror { detail, .. } => write!(f, "The SQLite mirror failed: {detail}."),
            Error::ReadOnly { path } => write!(
                f,
                "The store {} is open read-only here: writes go through the process that opens it for writing.",
                path.display()
            ),
            Error::Poisoned { cause } => write!(f, "The store refuses writes after an earlier I/O failure ({cause}); close and reopen it to recover."),
            Error::Model { reason } => write!(f, "Embedding model problem: {reason}."),
            Error::ModelMismatch { store, given } => {
                let (store, given) = (describe_model(store), describe_model(given));
                write!(f, "The store was written with the embedding model {store}, not {given}; vectors of different models cannot be mixed.")
            }
            Error::NoModel => write!(
                f,
                "This engine was opened without an embedding model; open it with one (EngineBuilder::default_model, EngineBuilder::model_dir or EngineBuilder::embedder) to store or search text."
            ),
            Error::Closed => write!(f, "The engine is closed."),
            Error::ForkedProcess { opener, current } => write!(
                f,
                "This engine was opened by process {opener}; process {current} (a fork of it) cannot use it: open the store in the process that uses it (a forked child should open it itself, after the parent closes it, or use multiprocessing's \"spawn\" start method)."
            ),
            Error::CollectionNotFound { name } => write!(f, "There is no collection named {name:?}."),
            Error::CollectionExists { name } => write!(f, "A collection named {name:?} already exists."),
            Error::CollectionInUse { name, pid } => {
                if *pid == 0 {
                    write!(f, "The collection {name:?} is in use: a process has it open; close it first.")
                } else {
                    write!(f, "The collection {name:?} is in use: process {pid} has it open; close it first.")
                }
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Mirror { source: Some(source), .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// A model as messages name it ([`Error::ModelMismatch`]'s): its id, dimension and the start of
/// its hash; "none" for the empty identity of a raw-vector store. Public for front ends that
/// give the two identities of a mismatch as fields (the Python binding).
pub fn describe_model(m: &crate::embed::ModelIdentity) -> String {
    if m.id.is_empty() {
        "none (a raw-vector store)".into()
    } else {
        let hash: String = m.hash[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("{} ({}-d, sha256 {hash}…)", m.id, m.dim)
    }
}
