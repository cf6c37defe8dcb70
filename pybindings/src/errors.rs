//! From `memento::Error` (and a panic) to the exception classes of `memento.errors`: the class
//! by kind, the message, and the error's fields as attributes.

use std::panic::{catch_unwind, AssertUnwindSafe};

use memento::Error;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyModule, PyType};

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

/// The `memento.errors` class for an engine error (SPEC.md's mapping).
fn class_name(e: &Error) -> &'static str {
    match e {
        Error::DimensionMismatch { .. } => "DimensionMismatchError",
        Error::InvalidVector { .. } => "InvalidVectorError",
        Error::InvalidArgument { .. } => "InvalidArgumentError",
        Error::InvalidFilter { .. } => "InvalidFilterError",
        Error::NotFound { .. } => "NotFoundError",
        Error::DuplicateId { .. } => "DuplicateIdError",
        Error::Corrupted { .. } | Error::Mirror { .. } => "CorruptedError",
        Error::Incompatible { .. } => "IncompatibleError",
        Error::Locked { .. } => "LockedError",
        Error::Io { .. } => "MementoIOError",
        Error::Poisoned { .. } => "PoisonedError",
        Error::Closed => "ClosedError",
        Error::Model { .. } => "ModelError",
        Error::ModelMismatch { .. } => "ModelMismatchError",
        Error::NoModel => "NoModelError",
        Error::ForkedProcess { .. } => "ForkedProcessError",
        _ => "MementoError",
    }
}

/// An exception of the class `name` of `memento.errors` (falling back to `MementoError`, then
/// to `RuntimeError` if the module lacks it) with message `msg`.
pub(crate) fn raise(py: Python<'_>, name: &str, msg: String) -> PyErr {
    let class = ERRORS.get(py).and_then(|m| {
        let m = m.bind(py);
        [name, "MementoError"].iter().find_map(|n| m.getattr(*n).ok().and_then(|c| c.cast_into::<PyType>().ok()))
    });
    match class {
        Some(c) => PyErr::from_type(c, msg),
        None => pyo3::exceptions::PyRuntimeError::new_err(msg),
    }
}

/// A Python exception for an engine error, with the error's fields as attributes where useful
/// (`expected`/`got`, `id`, `file`/`offset`, `path`/`pid`).
fn engine_err(py: Python<'_>, e: Error) -> PyErr {
    let err = raise(py, class_name(&e), message(&e));
    let value = err.value(py);
    // Attributes are extras: failing to set one must not hide the error itself.
    let _ = match &e {
        Error::DimensionMismatch { expected, got } => value.setattr("expected", expected).and_then(|()| value.setattr("got", got)),
        Error::NotFound { id } | Error::DuplicateId { id, .. } => value.setattr("id", id),
        Error::Corrupted { file, offset, .. } => value.setattr("file", file.display().to_string()).and_then(|()| value.setattr("offset", offset)),
        Error::Locked { path, pid } => value.setattr("path", path.display().to_string()).and_then(|()| value.setattr("pid", pid)),
        Error::ForkedProcess { opener, current } => value.setattr("opener_pid", opener).and_then(|()| value.setattr("current_pid", current)),
        // MementoIOError is an OSError too: give it the errno a handler may look at.
        Error::Io { source, .. } => source.raw_os_error().map_or(Ok(()), |n| value.setattr("errno", n)),
        _ => Ok(()),
    };
    err
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
