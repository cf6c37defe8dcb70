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

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

mod embedder;
mod errors;
mod functions;

use embedder::NativeEmbedder;
use errors::{guard, invalid, FResult, Fail};
use functions::{_panic, content_id, default_model_dir, limits, min_page_size, peek};
use memento::embed::OnnxOptions;
use memento::{Durability, Engine, Error, Filter, Memory, Metadata, Metric, Record, ScanMode, SearchHit, SearchOptions, WriteBatch};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

fn parse_metric(s: &str) -> FResult<Metric> {
    match s.to_ascii_lowercase().as_str() {
        "cosine" => Ok(Metric::Cosine),
        "dot" | "ip" => Ok(Metric::Dot),
        "l2" | "euclidean" => Ok(Metric::L2),
        _ => Err(invalid(format!("unknown metric {s:?}; use \"cosine\", \"dot\" or \"l2\""))),
    }
}

fn parse_durability(s: &str) -> FResult<Durability> {
    match s.to_ascii_lowercase().as_str() {
        "sync" => Ok(Durability::Sync),
        "group" | "group_commit" => Ok(Durability::GroupCommit),
        "buffered" => Ok(Durability::Buffered),
        _ => Err(invalid(format!("unknown durability {s:?}; use \"sync\", \"group\" or \"buffered\""))),
    }
}

/// Metadata from its JSON text: an object, or `null` for none.
fn parse_metadata(json: Option<&str>) -> FResult<Option<Metadata>> {
    let Some(text) = json else { return Ok(None) };
    memento::limits::check_json_text(text, "metadata").map_err(invalid)?;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => Ok(Some(m)),
        Ok(serde_json::Value::Null) => Ok(None),
        Ok(other) => Err(invalid(format!("metadata must be a JSON object, not {other}"))),
        Err(e) => Err(invalid(format!("metadata is not valid JSON ({e})"))),
    }
}

fn metadata_json(m: Option<Metadata>) -> Option<String> {
    m.map(|m| serde_json::Value::Object(m).to_string())
}

fn parse_filter(json: Option<&str>) -> FResult<Option<Filter>> {
    json.map(Filter::from_json_str).transpose().map_err(Fail::Engine)
}

fn to_count(n: i64, what: &str) -> FResult<usize> {
    usize::try_from(n).map_err(|_| invalid(format!("{what} must be 0 or more, not {n}")))
}

/// Borrows a 2-D float32 C-contiguous array (no copy); anything else is refused with
/// `InvalidArgumentError` (the Python layer converts before calling).
fn borrow_matrix<'py>(obj: &Bound<'py, PyAny>, what: &str) -> FResult<PyReadonlyArray2<'py, f32>> {
    let arr = obj.cast::<PyArray2<f32>>().map_err(|_| {
        let got = match obj.cast::<numpy::PyUntypedArray>() {
            Ok(a) => format!("a {}-D array of {}", a.ndim(), a.dtype()),
            Err(_) => format!("a {}", obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())),
        };
        invalid(format!("{what} must be a 2-D numpy array of float32, not {got}"))
    })?;
    if !arr.is_c_contiguous() {
        return Err(invalid(format!("{what} must be C-contiguous (use numpy.ascontiguousarray)")));
    }
    arr.try_readonly().map_err(|e| invalid(format!("{what} cannot be borrowed: {e}")))
}

/// A 1-D vector: a float32 numpy array (any strides) or a sequence of floats.
fn extract_vector(obj: &Bound<'_, PyAny>) -> FResult<Vec<f32>> {
    if let Ok(a) = obj.cast::<PyArray1<f32>>() {
        let ro = a.try_readonly().map_err(|e| invalid(format!("the vector cannot be borrowed: {e}")))?;
        return Ok(ro.as_array().to_vec());
    }
    if obj.cast::<numpy::PyUntypedArray>().is_ok() {
        return Err(invalid("a vector must be a 1-D numpy array of float32"));
    }
    obj.extract::<Vec<f32>>().map_err(|_| invalid("a vector must be a 1-D numpy array of float32 or a sequence of floats"))
}

fn hit_tuples<'py>(py: Python<'py>, lists: Vec<Vec<SearchHit>>) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for hits in lists {
        let inner = PyList::empty(py);
        for h in hits {
            inner.append((h.id, h.distance, h.text, metadata_json(h.metadata)))?;
        }
        out.append(inner)?;
    }
    Ok(out)
}

fn record_tuple<'py>(py: Python<'py>, r: Record) -> PyResult<Bound<'py, PyTuple>> {
    let v = r.vector.into_pyarray(py);
    PyTuple::new(py, [r.id.into_pyobject(py)?.into_any(), v.into_any(), r.text.into_pyobject(py)?, metadata_json(r.metadata).into_pyobject(py)?])
}

fn matrix<'py>(py: Python<'py>, rows: Vec<Vec<f32>>, dim: usize) -> FResult<Bound<'py, PyArray2<f32>>> {
    let n = rows.len();
    let mut flat = Vec::with_capacity(n * dim);
    for r in rows {
        if r.len() != dim {
            return Err(Fail::Engine(Error::Model { reason: format!("the model returned a {}-dimensional vector, not {dim}", r.len()) }));
        }
        flat.extend_from_slice(&r);
    }
    Ok(flat.into_pyarray(py).reshape([n, dim])?)
}

/// An open store. Holds the engine behind a lock: every call takes it shared (with the GIL
/// released) and `close` takes it exclusively, so a close waits for the calls in flight and
/// later calls find `None` and raise `ClosedError`.
///
/// Every call first checks that it runs in the process that opened the engine
/// ([`NativeEngine::check_process`]), before taking that lock: in a forked child the lock may
/// be held forever (by a parent thread that does not exist there), and the engine must not be
/// used (`ForkedProcessError`; issue 13, item 1).
#[pyclass(module = "memento._native", name = "NativeEngine", frozen)]
struct NativeEngine {
    inner: RwLock<Option<Engine>>,
    closed: AtomicBool,
    dim: usize,
    metric: Metric,
    model_id: Option<String>,
    path: String,
    /// The process that opened the engine.
    opener: u32,
}

impl NativeEngine {
    /// `ForkedProcessError` unless this is the process that opened the engine. Takes no lock.
    fn check_process(&self) -> FResult<()> {
        let current = std::process::id();
        if current == self.opener {
            Ok(())
        } else {
            Err(Fail::Engine(Error::ForkedProcess { opener: self.opener, current }))
        }
    }

    /// Runs `f` on the engine with the GIL released: `ForkedProcessError` in a forked child
    /// (checked before the lock), `ClosedError` once closed.
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&Engine) -> FResult<T> + Send) -> FResult<T> {
        self.check_process()?;
        py.detach(|| {
            let g = self.inner.read();
            match g.as_ref() {
                Some(e) => f(e),
                None => Err(Fail::Engine(Error::Closed)),
            }
        })
    }

    /// The records of `add_arrays` as one batch, given to `then` (a write, or its check).
    #[allow(clippy::too_many_arguments)]
    fn arrays_batch(
        &self,
        py: Python<'_>,
        ids: Vec<String>,
        vectors: &Bound<'_, PyAny>,
        texts: Option<Vec<Option<String>>>,
        metadatas_json: Option<Vec<Option<String>>>,
        upsert: bool,
        then: impl FnOnce(&Engine, WriteBatch) -> Result<(), Error> + Send,
    ) -> PyResult<()> {
        guard(py, || {
            let arr = borrow_matrix(vectors, "vectors")?;
            let shape = arr.shape();
            let (n, d) = (shape[0], shape[1]);
            if n != ids.len() {
                return Err(invalid(format!("{} ids for {n} vectors", ids.len())));
            }
            check_len("texts", texts.as_ref().map(Vec::len), n)?;
            check_len("metadatas", metadatas_json.as_ref().map(Vec::len), n)?;
            if n == 0 {
                return Ok(());
            }
            // Each row's length is checked by the engine, in its order (ids first).
            let flat = arr.as_slice().map_err(|e| invalid(format!("vectors: {e}")))?;
            self.with(py, move |e| {
                let mut batch = WriteBatch::new();
                let mut texts = texts.map(Vec::into_iter);
                let mut metas = metadatas_json.map(Vec::into_iter);
                for (id, row) in ids.into_iter().zip(flat.chunks_exact(d)) {
                    let mut r = Record::new(id, row.to_vec());
                    r.text = texts.as_mut().and_then(Iterator::next).flatten();
                    let metadata = parse_metadata(metas.as_mut().and_then(Iterator::next).flatten().as_deref());
                    let bad_metadata = match metadata {
                        Ok(m) => {
                            r.metadata = m;
                            None
                        }
                        Err(err) => Some(err),
                    };
                    if upsert {
                        batch.upsert(r);
                    } else {
                        batch.add(r);
                    }
                    if let Some(err) = bad_metadata {
                        // The engine checks record by record (its id, then its vector, then its
                        // metadata): what it would refuse up to this record comes first.
                        e.check_write(batch)?;
                        return Err(err);
                    }
                }
                then(e, batch)?;
                Ok(())
            })
        })
    }

    fn check_dim(&self, got: usize) -> FResult<()> {
        if got == self.dim {
            Ok(())
        } else {
            Err(Fail::Engine(Error::DimensionMismatch { expected: self.dim, got }))
        }
    }
}

/// One parsed operation of `write`.
enum WriteOp {
    Put { upsert: bool, id: String, vector: Option<Vec<f32>>, text: Option<String>, metadata: Option<String> },
    Delete(String),
    Metadata(String, Option<String>),
    Text(String, Option<String>),
}

fn parse_op(item: &Bound<'_, PyAny>) -> FResult<WriteOp> {
    let t = item.cast::<PyTuple>().map_err(|_| invalid("each operation of write() is a tuple"))?;
    let kind: String = t.get_item(0).and_then(|k| k.extract()).map_err(|_| invalid("an operation's first item is its name, a str"))?;
    let arity = t.len();
    let want = |n: usize| -> FResult<()> {
        if arity == n {
            Ok(())
        } else {
            Err(invalid(format!("a {kind:?} operation has {n} items, not {arity}")))
        }
    };
    let s = |i: usize, what: &str| -> FResult<String> { t.get_item(i).and_then(|v| v.extract()).map_err(|_| invalid(format!("the {what} must be a str"))) };
    let opt_s = |i: usize, what: &str| -> FResult<Option<String>> {
        t.get_item(i).and_then(|v| v.extract()).map_err(|_| invalid(format!("the {what} must be a str or None")))
    };
    match kind.as_str() {
        "add" | "upsert" => {
            want(5)?;
            let v = t.get_item(2)?;
            let vector = if v.is_none() { None } else { Some(extract_vector(&v)?) };
            Ok(WriteOp::Put { upsert: kind == "upsert", id: s(1, "id")?, vector, text: opt_s(3, "text")?, metadata: opt_s(4, "metadata JSON")? })
        }
        "delete" => {
            want(2)?;
            Ok(WriteOp::Delete(s(1, "id")?))
        }
        "update_metadata" => {
            want(3)?;
            Ok(WriteOp::Metadata(s(1, "id")?, opt_s(2, "metadata JSON")?))
        }
        "update_text" => {
            want(3)?;
            Ok(WriteOp::Text(s(1, "id")?, opt_s(2, "text")?))
        }
        other => Err(invalid(format!("unknown write operation {other:?}"))),
    }
}

/// Builds the batch of `write` (GIL released). A record given without a vector is a
/// [`Record::from_text`]: the engine embeds it inside the write, through its embedding cache.
fn build_batch(ops: Vec<WriteOp>) -> FResult<WriteBatch> {
    let mut batch = WriteBatch::new();
    for op in ops {
        match op {
            WriteOp::Put { upsert, id, vector, text, metadata } => {
                let mut r = match (vector, text) {
                    (Some(v), text) => Record { text, ..Record::new(id, v) },
                    (None, Some(t)) => Record::from_text(id, t),
                    (None, None) => return Err(invalid(format!("the record {id:?} has neither a vector nor a text to embed"))),
                };
                r.metadata = parse_metadata(metadata.as_deref())?;
                if upsert {
                    batch.upsert(r);
                } else {
                    batch.add(r);
                }
            }
            WriteOp::Delete(id) => {
                batch.delete(id);
            }
            WriteOp::Metadata(id, m) => {
                batch.update_metadata(id, parse_metadata(m.as_deref())?);
            }
            WriteOp::Text(id, t) => {
                batch.update_text(id, t);
            }
        }
    }
    Ok(batch)
}

fn check_len(what: &str, got: Option<usize>, n: usize) -> FResult<()> {
    match got {
        Some(g) if g != n => Err(invalid(format!("{g} {what} for {n} ids"))),
        _ => Ok(()),
    }
}

#[pymethods]
impl NativeEngine {
    #[new]
    #[pyo3(signature = (path, dim, metric, model, durability, create = true, page_size = None))]
    #[allow(clippy::too_many_arguments, reason = "one argument per open option")]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        dim: Option<i64>,
        metric: Option<&str>,
        model: Option<&str>,
        durability: Option<&str>,
        create: bool,
        page_size: Option<u32>,
    ) -> PyResult<Self> {
        guard(py, || {
            let mut b = Engine::builder(&path).create(create);
            if let Some(ps) = page_size {
                b = b.page_size(ps);
            }
            if let Some(d) = dim {
                let d = to_count(d, "the dimension")?;
                if d == 0 {
                    return Err(invalid("the dimension must be 1 or more"));
                }
                b = b.dimension(d);
            }
            if let Some(m) = metric {
                b = b.metric(parse_metric(m)?);
            }
            if let Some(d) = durability {
                b = b.durability(parse_durability(d)?);
            }
            b = match model {
                None => b,
                Some("default") => b.default_model(),
                Some(dir) => b.model_dir(dir, OnnxOptions::default()),
            };
            let engine = py.detach(|| b.open())?;
            Ok(NativeEngine {
                dim: engine.dimension(),
                metric: engine.metric(),
                model_id: engine.model().map(|m| m.id.clone()),
                path: engine.path().display().to_string(),
                inner: RwLock::new(Some(engine)),
                closed: AtomicBool::new(false),
                opener: std::process::id(),
            })
        })
    }

    /// The vector dimension.
    #[getter]
    fn dimension(&self) -> usize {
        self.dim
    }

    /// "cosine", "dot" or "l2".
    #[getter]
    fn metric(&self) -> &'static str {
        self.metric.name()
    }

    /// The store's model id; None for a raw-vector store.
    #[getter]
    fn model_id(&self) -> Option<String> {
        self.model_id.clone()
    }

    /// The store directory.
    #[getter]
    fn path(&self) -> String {
        self.path.clone()
    }

    /// Whether close() was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Commits the operations as one transaction, all or nothing.
    fn write(&self, py: Python<'_>, ops: &Bound<'_, PyAny>) -> PyResult<()> {
        guard(py, || {
            let mut parsed = Vec::new();
            for item in ops.try_iter().map_err(|_| invalid("write() takes a list of operations"))? {
                parsed.push(parse_op(&item?)?);
            }
            self.with(py, |e| {
                let batch = build_batch(parsed)?;
                e.write(batch)?;
                Ok(())
            })
        })
    }

    /// Adds (or upserts) n records from an (n, dim) float32 C-contiguous array, borrowed.
    #[pyo3(signature = (ids, vectors, texts, metadatas_json, upsert))]
    fn add_arrays(
        &self,
        py: Python<'_>,
        ids: Vec<String>,
        vectors: &Bound<'_, PyAny>,
        texts: Option<Vec<Option<String>>>,
        metadatas_json: Option<Vec<Option<String>>>,
        upsert: bool,
    ) -> PyResult<()> {
        self.arrays_batch(py, ids, vectors, texts, metadatas_json, upsert, |e, batch| e.write(batch).map(drop))
    }

    /// Checks what `add_arrays` with these arguments would, writes nothing, and raises the
    /// error the write would raise first (`Engine::check_write`).
    #[pyo3(signature = (ids, vectors, texts, metadatas_json, upsert))]
    fn check_arrays(
        &self,
        py: Python<'_>,
        ids: Vec<String>,
        vectors: &Bound<'_, PyAny>,
        texts: Option<Vec<Option<String>>>,
        metadatas_json: Option<Vec<Option<String>>>,
        upsert: bool,
    ) -> PyResult<()> {
        self.arrays_batch(py, ids, vectors, texts, metadatas_json, upsert, Engine::check_write)
    }

    /// Deletes these ids in one commit; returns how many existed.
    fn delete(&self, py: Python<'_>, ids: Vec<String>) -> PyResult<usize> {
        guard(py, || {
            if ids.is_empty() {
                return self.with(py, |_| Ok(0));
            }
            self.with(py, |e| {
                let mut b = WriteBatch::new();
                for id in ids {
                    b.delete(id);
                }
                Ok(e.write(b)?.deleted)
            })
        })
    }

    /// Deletes every record matching the filter; returns how many.
    fn delete_where(&self, py: Python<'_>, where_json: &str) -> PyResult<usize> {
        guard(py, || {
            let f = Filter::from_json_str(where_json)?;
            self.with(py, |e| Ok(e.delete_where(&f)?))
        })
    }

    /// The records with these ids, in order: (id, vector, text, metadata_json) or None.
    fn get<'py>(&self, py: Python<'py>, ids: Vec<String>) -> PyResult<Bound<'py, PyList>> {
        guard(py, || {
            let recs = self.with(py, |e| ids.iter().map(|id| e.get(id).map_err(Fail::Engine)).collect::<FResult<Vec<_>>>())?;
            let out = PyList::empty(py);
            for r in recs {
                match r {
                    Some(r) => out.append(record_tuple(py, r)?)?,
                    None => out.append(py.None())?,
                }
            }
            Ok(out)
        })
    }

    /// The records matching the filter, in insertion order, at most `limit`.
    #[pyo3(signature = (where_json, limit = None))]
    fn get_where<'py>(&self, py: Python<'py>, where_json: &str, limit: Option<i64>) -> PyResult<Bound<'py, PyList>> {
        guard(py, || {
            let f = Filter::from_json_str(where_json)?;
            let limit = limit.map(|l| to_count(l, "limit")).transpose()?;
            let recs = self.with(py, |e| Ok(e.get_where(&f, limit)?))?;
            let out = PyList::empty(py);
            for r in recs {
                out.append(record_tuple(py, r)?)?;
            }
            Ok(out)
        })
    }

    /// The k nearest records to each row of an (n, dim) float32 C-contiguous array, borrowed.
    #[pyo3(signature = (queries, k, where_json = None, exact = false))]
    fn search<'py>(&self, py: Python<'py>, queries: &Bound<'py, PyAny>, k: i64, where_json: Option<&str>, exact: bool) -> PyResult<Bound<'py, PyList>> {
        guard(py, || {
            let arr = borrow_matrix(queries, "queries")?;
            let k = to_count(k, "k")?;
            let filter = parse_filter(where_json)?;
            let shape = arr.shape();
            let (n, d) = (shape[0], shape[1]);
            // The engine takes the queries flat, so it cannot see rows of the wrong length that
            // add up to a multiple of its dimension: the shape is checked here.
            self.check_dim(d)?;
            if n == 0 {
                return self.with(py, |_| Ok(())).map(|()| PyList::empty(py));
            }
            let flat = arr.as_slice().map_err(|e| invalid(format!("queries: {e}")))?;
            let hits = self.with(py, |e| {
                let mut o = SearchOptions::new(k);
                o.filter = filter.as_ref();
                if exact {
                    o = o.mode(ScanMode::Exact);
                }
                Ok(e.search_batch(flat, &o)?)
            })?;
            Ok(hit_tuples(py, hits)?)
        })
    }

    /// Stores texts (embedded in one batch) and returns their ids (content ids when None).
    #[pyo3(signature = (texts, metadatas_json = None, ids = None))]
    fn remember<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        metadatas_json: Option<Vec<Option<String>>>,
        ids: Option<Vec<Option<String>>>,
    ) -> PyResult<Bound<'py, PyList>> {
        guard(py, || {
            let n = texts.len();
            check_len("metadatas", metadatas_json.as_ref().map(Vec::len), n)?;
            check_len("ids", ids.as_ref().map(Vec::len), n)?;
            let out = self.with(py, move |e| {
                let mut metas = metadatas_json.map(Vec::into_iter);
                let mut idents = ids.map(Vec::into_iter);
                let mut mems = Vec::with_capacity(n);
                for t in texts {
                    let mut m = Memory::new(t);
                    m.metadata = parse_metadata(metas.as_mut().and_then(Iterator::next).flatten().as_deref())?;
                    m.id = idents.as_mut().and_then(Iterator::next).flatten();
                    mems.push(m);
                }
                Ok(e.remember_batch(mems, None)?)
            })?;
            Ok(PyList::new(py, out)?)
        })
    }

    /// The k stored texts closest in meaning to each query text.
    #[pyo3(signature = (texts, k, where_json = None))]
    fn recall<'py>(&self, py: Python<'py>, texts: Vec<String>, k: i64, where_json: Option<&str>) -> PyResult<Bound<'py, PyList>> {
        guard(py, || {
            let k = to_count(k, "k")?;
            let filter = parse_filter(where_json)?;
            let hits = self.with(py, |e| {
                let qs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let mut o = SearchOptions::new(k);
                o.filter = filter.as_ref();
                Ok(e.recall_batch(&qs, &o)?)
            })?;
            Ok(hit_tuples(py, hits)?)
        })
    }

    /// The vectors of texts under the store's model, an (n, dim) float32 array, through the
    /// engine's embedding cache (the misses embedded as one batch).
    fn embed<'py>(&self, py: Python<'py>, texts: Vec<String>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        guard(py, || {
            let dim = self.dim;
            let rows = self.with(py, |e| {
                if texts.is_empty() {
                    // No model needed to embed nothing, but text calls need one.
                    e.embedder().ok_or(Error::NoModel)?;
                    return Ok(Vec::new());
                }
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                Ok(e.embed_batch(&refs)?.into_iter().map(|x| x.vector).collect())
            })?;
            matrix(py, rows, dim)
        })
    }

    /// Live records.
    fn count(&self, py: Python<'_>) -> PyResult<u64> {
        guard(py, || self.with(py, |e| Ok(e.count())))
    }

    /// Checks every page, the mirror, and that they agree (`CorruptedError` naming the first
    /// disagreement): what `memento-inspect verify` checks of an open store.
    fn check_integrity(&self, py: Python<'_>) -> PyResult<()> {
        guard(py, || self.with(py, |e| Ok(e.check_integrity()?)))
    }

    /// Writes everything since the last checkpoint into the vector file.
    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        guard(py, || self.with(py, |e| Ok(e.checkpoint()?)))
    }

    /// Figures about the store and its embedding cache.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(py, || {
            let (s, c) = self.with(py, |e| Ok((e.stats(), e.cache_stats())))?;
            let d = PyDict::new(py);
            d.set_item("count", s.count)?;
            d.set_item("slots", s.slots)?;
            d.set_item("deleted", s.deleted)?;
            d.set_item("dimension", s.dimension)?;
            d.set_item("metric", s.metric.name())?;
            d.set_item("pages", s.pages)?;
            d.set_item("vector_file_bytes", s.vector_file_bytes)?;
            d.set_item("wal_bytes", s.wal_bytes)?;
            d.set_item("checkpoint_lsn", s.checkpoint_lsn)?;
            d.set_item("last_lsn", s.last_lsn)?;
            d.set_item("pending_vectors", s.pending_vectors)?;
            d.set_item("recovery", s.recovery)?;
            match s.model {
                Some(m) => {
                    let md = PyDict::new(py);
                    md.set_item("id", m.id)?;
                    md.set_item("dimension", m.dim)?;
                    md.set_item("sha256", memento::embed::hex(&m.hash))?;
                    d.set_item("model", md)?;
                }
                None => d.set_item("model", py.None())?,
            }
            let cd = PyDict::new(py);
            cd.set_item("memory_entries", c.memory_entries)?;
            cd.set_item("memory_hits", c.memory_hits)?;
            cd.set_item("disk_hits", c.disk_hits)?;
            cd.set_item("inferred", c.inferred)?;
            d.set_item("embedding_cache", cd)?;
            Ok(d)
        })
    }

    /// Checkpoints and closes; waits for calls in flight. Idempotent. In a forked child:
    /// `ForkedProcessError`, and the engine stays as it is (the parent's).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        guard(py, || {
            self.check_process()?;
            self.closed.store(true, Ordering::Release);
            let engine = py.detach(|| self.inner.write().take());
            match engine {
                Some(e) => py.detach(|| e.close()).map_err(Fail::Engine),
                None => Ok(()),
            }
        })
    }

    fn __repr__(&self) -> String {
        let state = if self.closed.load(Ordering::Acquire) { ", closed" } else { "" };
        match &self.model_id {
            Some(m) => format!("NativeEngine({:?}, dim={}, metric={:?}, model={m:?}{state})", self.path, self.dim, self.metric.name()),
            None => format!("NativeEngine({:?}, dim={}, metric={:?}{state})", self.path, self.dim, self.metric.name()),
        }
    }
}

impl Drop for NativeEngine {
    /// A store dropped without `close()` (garbage collected) is still closed, which checkpoints:
    /// with the GIL released when the interpreter can be attached to (not during shutdown).
    fn drop(&mut self) {
        if let Some(engine) = self.inner.get_mut().take() {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                let mut engine = Some(engine);
                Python::try_attach(|py| py.detach(|| drop(engine.take())));
                drop(engine);
            }));
        }
    }
}

/// Memento's native module: NativeEngine, NativeEmbedder, default_model_dir, content_id, peek.
#[pymodule(name = "_native")]
mod native {
    #[pymodule_export]
    use super::{_panic, content_id, default_model_dir, limits, min_page_size, peek, NativeEmbedder, NativeEngine};
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
