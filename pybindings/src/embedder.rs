//! `NativeEmbedder`: an embedding model on its own, for `memento.embed`.

use std::path::PathBuf;
use std::sync::Arc;

use memento::embed::{Embedder, OnnxEmbedder, OnnxOptions, DEFAULT_MODEL};
use numpy::PyArray2;
use pyo3::prelude::*;

use crate::convert::{matrix, to_count};
use crate::errors::guard;

/// An embedding model on its own: the default model, or a model directory.
#[pyclass(module = "memento._native", name = "NativeEmbedder", frozen)]
pub(crate) struct NativeEmbedder {
    inner: Arc<OnnxEmbedder>,
}

#[pymethods]
impl NativeEmbedder {
    #[new]
    #[pyo3(signature = (model_dir = None, threads = 0))]
    fn new(py: Python<'_>, model_dir: Option<PathBuf>, threads: i64) -> PyResult<Self> {
        guard(py, || {
            let dir = model_dir.unwrap_or_else(|| memento::embed::model_dir(DEFAULT_MODEL));
            let opts = OnnxOptions { threads: to_count(threads, "threads")?, ..OnnxOptions::default() };
            let e = py.detach(|| OnnxEmbedder::load(&dir, &opts))?;
            Ok(NativeEmbedder { inner: Arc::new(e) })
        })
    }

    /// The model's id.
    #[getter]
    fn model_id(&self) -> String {
        self.inner.identity().id.clone()
    }

    /// The vector dimension.
    #[getter]
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    /// The vectors of texts, an (n, dim) float32 array.
    fn embed<'py>(&self, py: Python<'py>, texts: Vec<String>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        guard(py, || {
            let rows = py.detach(|| {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                if refs.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.inner.embed_batch(&refs, None)
                }
            })?;
            matrix(py, rows, self.inner.dimension())
        })
    }

    fn __repr__(&self) -> String {
        format!("NativeEmbedder({:?}, dim={})", self.inner.identity().id, self.inner.dimension())
    }
}
