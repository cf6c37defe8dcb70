//! From `memento::Error` (and a panic) to the exception classes of `memento.errors`: the class
//! by kind, the message, and the error's fields as attributes.

use std::panic::{catch_unwind, AssertUnwindSafe};

use memento::{describe_model, Error, MirrorErrorKind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PyType};

/// `memento.errors`, imported when the module is initialised.
pub(crate) static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Why a call failed, before it becomes a Python exception (built with the GIL held).
pub(crate) enum Fail {
    /// An engine error, mapped by kind.
    Engine(Error),
    /// A Python exception already made.
    Py(PyErr),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Engine(e)
    }
}

impl From<PyErr> for Fail {
    fn from(e: PyErr) -> Self {
        Fail::Py(e)
    }
}

pub(crate) type FResult<T> = std::result::Result<T, Fail>;

/// The `memento.errors` class for an engine error (SPEC.md's mapping). Of the mirror's errors,
/// only damage is a `CorruptedError`; a newer schema is an `IncompatibleError`, an SQLite failure
/// a `MementoIOError` (as the pure-Python engine's SQLite failures are), the rest `MementoError`.
fn class_name(e: &Error) -> &'static str {
    match e {
        Error::DimensionMismatch { .. } => "DimensionMismatchError",
        Error::InvalidVector { .. } => "InvalidVectorError",
        Error::InvalidArgument { .. } => "InvalidArgumentError",
        Error::InvalidFilter { .. } => "InvalidFilterError",
        Error::NotFound { .. } => "NotFoundError",
        Error::DuplicateId { .. } => "DuplicateIdError",
        Error::Corrupted { .. } | Error::Mirror { kind: MirrorErrorKind::Damaged, .. } => "CorruptedError",
        Error::Incompatible { .. } | Error::Mirror { kind: MirrorErrorKind::NewerSchema, .. } => "IncompatibleError",
        Error::Locked { .. } => "LockedError",
        Error::Io { .. } | Error::Mirror { kind: MirrorErrorKind::Sqlite | MirrorErrorKind::Setup, .. } => "MementoIOError",
        Error::Poisoned { .. } => "PoisonedError",
        Error::ReadOnly { .. } => "ReadOnlyError",
        Error::Closed => "ClosedError",
        Error::Model { .. } => "ModelError",
        Error::ModelMismatch { .. } => "ModelMismatchError",
        Error::NoModel => "NoModelError",
        Error::ForkedProcess { .. } => "ForkedProcessError",
        Error::CollectionNotFound { .. } => "CollectionNotFoundError",
        Error::CollectionExists { .. } => "CollectionExistsError",
        Error::CollectionInUse { .. } => "CollectionInUseError",
        _ => "MementoError",
    }
}

/// The class `name` of `memento.errors`, or `MementoError` if the module lacks it; `None` if
/// the module is not loaded.
fn class<'py>(py: Python<'py>, name: &str) -> Option<Bound<'py, PyType>> {
    let m = ERRORS.get(py)?.bind(py);
    [name, "MementoError"].iter().find_map(|n| m.getattr(*n).ok().and_then(|c| c.cast_into::<PyType>().ok()))
}

/// An exception of the class `name` of `memento.errors` (falling back to `MementoError`, then
/// to `RuntimeError` if the module lacks it) with message `msg`.
pub(crate) fn raise(py: Python<'_>, name: &str, msg: String) -> PyErr {
    match class(py, name) {
        Some(c) => PyErr::from_type(c, msg),
        None => pyo3::exceptions::PyRuntimeError::new_err(msg),
    }
}

/// The fields of an engine error, as the keyword arguments of its class: the attributes the
/// class documents in `memento/errors.py` (the pure-Python engine gives the same ones).
fn fields<'py>(py: Python<'py>, e: &Error) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match e {
        Error::DimensionMismatch { expected, got } => {
            d.set_item("expected", expected)?;
            d.set_item("got", got)?;
        }
        Error::NotFound { id } => d.set_item("id", id)?,
        Error::DuplicateId { id, in_batch } => {
            d.set_item("id", id)?;
            d.set_item("in_batch", in_batch)?;
        }
        Error::Corrupted { file, offset, reason } => {
            d.set_item("file", file.display().to_string())?;
            d.set_item("offset", offset)?;
            d.set_item("reason", reason)?;
        }
        // The mirror's damage names no file or offset (SQLite does not say where).
        Error::Mirror { kind: MirrorErrorKind::Damaged, detail, .. } => d.set_item("reason", detail)?,
        Error::Locked { path, pid } => {
            d.set_item("path", path.display().to_string())?;
            d.set_item("pid", pid)?;
        }
        Error::ReadOnly { path } => {
            d.set_item("path", path.display().to_string())?;
        }
        Error::ModelMismatch { store, given } => {
            d.set_item("store", describe_model(store))?;
            d.set_item("given", describe_model(given))?;
        }
        Error::ForkedProcess { opener, current } => {
            d.set_item("opener_pid", opener)?;
            d.set_item("current_pid", current)?;
        }
        Error::CollectionNotFound { name } | Error::CollectionExists { name } => d.set_item("name", name)?,
        Error::CollectionInUse { name, pid } => {
            d.set_item("name", name)?;
            d.set_item("pid", pid)?;
        }
        // MementoIOError is an OSError too: give it the errno a handler may look at.
        Error::Io { source, .. } => {
            if let Some(n) = source.raw_os_error() {
                d.set_item("errno", n)?;
            }
        }
        _ => {}
    }
    Ok(d)
}

/// A Python exception for an engine error: its class built as `cls(message, **fields)`.
fn engine_err(py: Python<'_>, e: Error) -> PyErr {
    let (name, msg) = (class_name(&e), message(&e));
    let Some(cls) = class(py, name) else {
        return pyo3::exceptions::PyRuntimeError::new_err(msg);
    };
    match fields(py, &e).and_then(|kw| cls.call((msg.as_str(),), Some(&kw))) {
        Ok(exc) => PyErr::from_value(exc),
        // The fields are extras: failing to build them must not hide the error itself.
        Err(_) => PyErr::from_type(cls, msg),
    }
}

/// What a Python user reads for an engine error: the engine's message, except where that
/// names the Rust API (the missing model: the Rust message names `EngineBuilder` methods).
fn message(e: &Error) -> String {
    match e {
        Error::NoModel => NO_MODEL_MESSAGE.to_owned(),
        _ => e.to_string(),
    }
}

/// `NoModelError`'s message, the same as the pure-Python engine's (`memento._pure`).
const NO_MODEL_MESSAGE: &str = "This engine was opened without an embedding model; reopen the store with one \
     (model=\"default\" for the default model, or model=\"<a model directory>\") to store or search text.";

fn to_py(py: Python<'_>, f: Fail) -> PyErr {
    match f {
        Fail::Engine(e) => engine_err(py, e),
        Fail::Py(e) => e,
    }
}

pub(crate) fn invalid(reason: impl Into<String>) -> Fail {
    Fail::Engine(Error::InvalidArgument { reason: reason.into() })
}

/// Runs an entry point: a panic becomes `MementoError("internal error: ...")`.
pub(crate) fn guard<T>(py: Python<'_>, f: impl FnOnce() -> FResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(|e| to_py(py, e)),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            Err(raise(py, "MementoError", format!("internal error: {what}")))
        }
    }
}
