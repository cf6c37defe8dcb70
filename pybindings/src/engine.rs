//! [`NativeEngine`]: an open store, as the Python layer's `memento._native.NativeEngine`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use memento::embed::OnnxOptions;
use memento::{Engine, Error, Filter, Fusion, Memory, Metric, RecallMode, Record, ScanMode, SearchHit, SearchOptions, WriteBatch};
use numpy::{PyArray2, PyUntypedArrayMethods};
use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::convert::{
    borrow_matrix, build_batch, check_len, estimate_dict, graph_info_dict, hit_tuples, matrix, parse_durability, parse_filter, parse_graph, parse_metadata,
    parse_metric, parse_op, record_tuple, scored_hit_tuples, to_count, HitArrays,
};
use crate::errors::{guard, invalid, FResult, Fail};

/// An open store. Holds the engine behind a lock: every call takes it shared (with the GIL
/// released) and `close` takes it exclusively, so a close waits for the calls in flight and
/// later calls find `None` and raise `ClosedError`.
///
/// Every call first checks that it runs in the process that opened the engine
/// ([`NativeEngine::check_process`]), before taking that lock: in a forked child the lock may
/// be held forever (by a parent thread that does not exist there), and the engine must not be
/// used (`ForkedProcessError`; issue 13, item 1).
#[pyclass(module = "memento._native", name = "NativeEngine", frozen)]
pub(crate) struct NativeEngine {
    inner: RwLock<Option<Engine>>,
    closed: AtomicBool,
    dim: usize,
    metric: Metric,
    model_id: Option<String>,
    path: String,
    /// The process that opened the engine.
    opener: u32,
    /// Opened with `graph=False`: no graph index (and no builder to wait for).
    graph_off: bool,
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
                // Row i by its range, not chunks_exact(d): a (n, 0) array gives n empty rows, which
                // the engine refuses with DimensionMismatch (chunks_exact(0) would panic).
                for (i, id) in ids.into_iter().enumerate() {
                    let row = flat.get(i * d..(i + 1) * d).unwrap_or_default();
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

    /// The search of `search` and `search_arrays`: the arguments checked, the queries borrowed,
    /// the engine's hits given to `then` with the GIL still released.
    #[allow(clippy::too_many_arguments, reason = "one argument per search option")]
    fn search_hits<T: Send>(
        &self,
        py: Python<'_>,
        queries: &Bound<'_, PyAny>,
        k: i64,
        where_json: Option<&str>,
        exact: bool,
        threads: Option<i64>,
        ef: Option<i64>,
        ids_only: bool,
        then: impl FnOnce(Vec<Vec<SearchHit>>) -> T + Send,
    ) -> FResult<T> {
        let arr = borrow_matrix(queries, "queries")?;
        let k = to_count(k, "k")?;
        let threads = threads.map(|t| to_count(t, "threads")).transpose()?;
        let ef = ef.map(|t| to_count(t, "ef")).transpose()?;
        let filter = parse_filter(where_json)?;
        let shape = arr.shape();
        let (n, d) = (shape[0], shape[1]);
        // The engine takes the queries flat, so it cannot see rows of the wrong length that
        // add up to a multiple of its dimension: the shape is checked here.
        self.check_dim(d)?;
        if n == 0 {
            return self.with(py, |_| Ok(then(Vec::new())));
        }
        let flat = arr.as_slice().map_err(|e| invalid(format!("queries: {e}")))?;
        self.with(py, |e| {
            let mut o = options(walk_safe_k(e, k, exact), filter.as_ref(), exact, threads, ef);
            o.ids_only = ids_only;
            Ok(then(e.search_batch(flat, &o)?))
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

#[pymethods]
impl NativeEngine {
    #[new]
    #[pyo3(signature = (path, dim, metric, model, durability, create = true, page_size = None, read_only = false, group_access = false, graph = None))]
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
        read_only: bool,
        group_access: bool,
        graph: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        guard(py, || {
            let mut b = Engine::builder(&path).create(create).group_access(group_access);
            let graph = parse_graph(graph)?;
            let graph_off = matches!(graph, Some(None));
            if let Some(params) = graph {
                b = b.graph(params);
            }
            if read_only {
                b = b.read_only();
            }
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
                graph_off,
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
    #[pyo3(signature = (queries, k, where_json = None, exact = false, threads = None, ef = None))]
    #[allow(clippy::too_many_arguments, reason = "one argument per search option")]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: i64,
        where_json: Option<&str>,
        exact: bool,
        threads: Option<i64>,
        ef: Option<i64>,
    ) -> PyResult<Bound<'py, PyList>> {
        guard(py, || {
            let hits = self.search_hits(py, queries, k, where_json, exact, threads, ef, false, |hits| hits)?;
            Ok(hit_tuples(py, hits)?)
        })
    }

    /// `search` with its results as arrays, made without a Python object per hit:
    /// `(ids, distances, keys)`, for n queries and m the longest result list: `ids` an (n, m)
    /// array of numpy's fixed-width unicode (dtype `<U{longest id}`, "" past a shorter list),
    /// `distances` (n, m) float32 (NaN past a shorter list), `keys` (n, m) int64 (-1 past a
    /// shorter list) when every id returned is a non-negative decimal integer written without
    /// leading zeros, else None.
    #[pyo3(signature = (queries, k, where_json = None, exact = false, threads = None, ef = None))]
    #[allow(clippy::too_many_arguments, reason = "one argument per search option")]
    fn search_arrays<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: i64,
        where_json: Option<&str>,
        exact: bool,
        threads: Option<i64>,
        ef: Option<i64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        guard(py, || {
            // Flattened with the GIL released, then moved into numpy arrays without a copy.
            // Ids and distances only: no hit's text or metadata is read from the mirror.
            let arrays = self.search_hits(py, queries, k, where_json, exact, threads, ef, true, |hits| HitArrays::new(&hits))?;
            Ok(arrays.into_tuple(py)?)
        })
    }

    /// Brings the graph index up to every committed vector, with every core, and writes its
    /// file (memento::Engine::build_index). ReadOnlyError in a reader. With `graph=False`
    /// there is no graph to build: nothing is done (the engine would wait for a builder that
    /// was never started).
    fn build_index(&self, py: Python<'_>) -> PyResult<()> {
        let off = self.graph_off;
        guard(py, || {
            self.with(py, |e| {
                if !off {
                    e.build_index()?;
                } else if e.stats().read_only {
                    return Err(Fail::Engine(Error::ReadOnly { path: e.path().to_path_buf() }));
                }
                Ok(())
            })
        })
    }

    /// The graph index's state (memento::Engine::graph_info) as a dict.
    fn graph_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(py, || {
            let info = self.with(py, |e| Ok(e.graph_info()?))?;
            Ok(graph_info_dict(py, info)?)
        })
    }

    /// recall@k of the graph against the exact answers over `sample` stored vectors taken as
    /// queries, at `ef` (None: the engine's): a dict (`recall`, `sample`, `ef`), or None when
    /// the store has no usable graph.
    #[pyo3(signature = (k = 10, sample = 64, ef = None))]
    fn estimate_recall<'py>(&self, py: Python<'py>, k: i64, sample: i64, ef: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
        guard(py, || {
            let k = to_count(k, "k")?;
            let sample = to_count(sample, "sample")?;
            let ef = ef.map(|t| to_count(t, "ef")).transpose()?;
            let est = self.with(py, |e| Ok(e.estimate_recall(walk_safe_k(e, k, false), sample, ef)?))?;
            Ok(estimate_dict(py, est)?)
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
    #[pyo3(signature = (texts, k, where_json = None, exact = false, threads = None, ef = None))]
    #[allow(clippy::too_many_arguments, reason = "one argument per search option")]
    fn recall<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        k: i64,
        where_json: Option<&str>,
        exact: bool,
        threads: Option<i64>,
        ef: Option<i64>,
    ) -> PyResult<Bound<'py, PyList>> {
        guard(py, || {
            let hits = self.recall_by(py, &texts, k, where_json, exact, threads, ef, RecallMode::Vector)?;
            Ok(hit_tuples(py, hits)?)
        })
    }

    /// The best `k` keyword (BM25) matches of each text, as `(id, distance, score, text,
    /// metadata)` tuples (`Engine::keyword_search_batch`).
    fn keyword_search<'py>(&self, py: Python<'py>, texts: Vec<String>, k: i64, where_json: Option<&str>) -> PyResult<Bound<'py, PyList>> {
        guard(py, || {
            let k = to_count(k, "k")?;
            let filter = parse_filter(where_json)?;
            let hits = self.with(py, |e| {
                let qs: Vec<&str> = texts.iter().map(String::as_str).collect();
                Ok(e.keyword_search_batch(&qs, &options(k, filter.as_ref(), false, None, None))?)
            })?;
            Ok(scored_hit_tuples(py, hits)?)
        })
    }

    /// Hybrid recall of each text (`Engine::recall_hybrid_batch`): `fusion` is `"rrf"` (its
    /// constant `param`) or `"weighted"` (the vector weight `param`).
    #[allow(clippy::too_many_arguments, reason = "the Python layer's arguments, one for one")]
    fn hybrid_recall<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        k: i64,
        where_json: Option<&str>,
        exact: bool,
        threads: Option<i64>,
        ef: Option<i64>,
        fusion: &str,
        param: f64,
    ) -> PyResult<Bound<'py, PyList>> {
        guard(py, || {
            let fusion = match fusion {
                "rrf" => Fusion::Rrf { k: param },
                "weighted" => Fusion::Weighted { alpha: param },
                other => return Err(invalid(format!("fusion must be \"rrf\" or \"weighted\", not {other:?}"))),
            };
            let hits = self.recall_by(py, &texts, k, where_json, exact, threads, ef, RecallMode::Hybrid(fusion))?;
            Ok(scored_hit_tuples(py, hits)?)
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

    /// Rewrites the vector file with its live records only (memento::Engine::compact).
    fn compact<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(py, || {
            let c = self.with(py, |e| Ok(e.compact()?))?;
            let d = PyDict::new(py);
            d.set_item("live", c.live)?;
            d.set_item("dropped", c.dropped)?;
            d.set_item("bytes_before", c.bytes_before)?;
            d.set_item("bytes_after", c.bytes_after)?;
            d.set_item("seconds", c.duration.as_secs_f64())?;
            Ok(d)
        })
    }

    /// Figures about the store and its embedding cache.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(py, || {
            let (s, c) = self.with(py, |e| Ok((e.stats(), e.cache_stats())))?;
            let d = PyDict::new(py);
            d.set_item("count", s.count)?;
            d.set_item("slots", s.slots)?;
            d.set_item("deleted", s.deleted)?;
            d.set_item("read_only", s.read_only)?;
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

impl NativeEngine {
    /// `recall` and `hybrid_recall`: the arguments checked, then `Engine::recall_by` with the
    /// GIL released.
    #[allow(clippy::too_many_arguments, reason = "one argument per search option")]
    fn recall_by(
        &self,
        py: Python<'_>,
        texts: &[String],
        k: i64,
        where_json: Option<&str>,
        exact: bool,
        threads: Option<i64>,
        ef: Option<i64>,
        mode: RecallMode,
    ) -> FResult<Vec<Vec<SearchHit>>> {
        let k = to_count(k, "k")?;
        let threads = threads.map(|t| to_count(t, "threads")).transpose()?;
        let ef = ef.map(|t| to_count(t, "ef")).transpose()?;
        let filter = parse_filter(where_json)?;
        self.with(py, |e| {
            let qs: Vec<&str> = texts.iter().map(String::as_str).collect();
            Ok(e.recall_by(&qs, &options(walk_safe_k(e, k, exact), filter.as_ref(), exact, threads, ef), mode)?)
        })
    }
}

/// `k` for a search that may walk the graph index: the walk allocates buffers of a few times
/// `max(k, ef)` entries up front (memento's `graph::walk`), so that a `k` far beyond the store
/// (`k=2**40` for "every record") aborts the process when that allocation fails. Above 65,536,
/// `k` is capped at the live records (at least 65,536), which changes no answer: a search
/// returns at most every record. (A commit landing between the count and the search could add
/// records such a search then leaves out.)
fn walk_safe_k(e: &Engine, k: usize, exact: bool) -> usize {
    const FREE: usize = 1 << 16;
    if exact || k <= FREE {
        k
    } else {
        k.min(usize::try_from(e.count()).unwrap_or(usize::MAX).max(FREE))
    }
}

/// The search options of a `search` or `recall` call: `k`, the filter, the float32 scan when
/// `exact`, the thread count when given (else the engine's), and the graph walk's `ef` when
/// given (else the engine's).
fn options(k: usize, filter: Option<&Filter>, exact: bool, threads: Option<usize>, ef: Option<usize>) -> SearchOptions<'_> {
    let mut o = SearchOptions::new(k);
    o.filter = filter;
    o.ef = ef;
    if exact {
        o = o.mode(ScanMode::Exact);
    }
    if let Some(t) = threads {
        o = o.threads(t);
    }
    o
}
