//! `memento._native`: the native module of the Python package (pybindings/SPEC.md).
//!
//! It only converts types and maps errors; the Python layer (`memento`) shapes the API. Every
//! call that does I/O, embeds or searches runs with the GIL released ([`Python::detach`]), and
//! every entry point runs under [`catch_unwind`], so that a panic becomes
//! `memento.errors.MementoError("internal error: ...")` instead of crossing into Python.
//!
//! Vectors come in as 2-D float32 C-contiguous numpy arrays, borrowed without copying through
//! numpy's borrow checker ([`PyReadonlyArray2`]): the borrow guard and the array object it
//! holds stay alive for the whole call, GIL released or not, so the memory cannot be freed or
//! borrowed mutably by Rust code meanwhile. Python code writing into the same array from
//! another thread during the call is a data race we do not (cannot) prevent: rust-numpy's
//! documented position is that such unchecked code is its author's responsibility, the same
//! contract numpy's own GIL-releasing functions have.

mod convert;
mod embedder;
mod engine;
mod errors;
mod functions;

use embedder::NativeEmbedder;
use engine::NativeEngine;
use functions::{_panic, content_id, default_model_dir, default_recall_mode, keyword_query, limits, min_page_size, peek, provision, stop_words};
use pyo3::prelude::*;

/// Memento's native module: NativeEngine, NativeEmbedder, default_model_dir, content_id, peek.
#[pymodule(name = "_native")]
mod native {
    #[pymodule_export]
    use super::{
        _panic, content_id, default_model_dir, default_recall_mode, keyword_query, limits, min_page_size, peek, provision, stop_words, NativeEmbedder,
        NativeEngine,
    };
    use pyo3::prelude::*;
    use pyo3::types::PyModule;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = m.py();
        super::errors::ERRORS.get_or_try_init(py, || py.import("memento.errors").map(Bound::unbind))?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        Ok(())
    }
}
