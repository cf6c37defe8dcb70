//! Conversions between Python values and the engine's: options, metadata and filters as JSON,
//! numpy arrays borrowed as float32 rows, hits and records as tuples, and `write`'s operations
//! parsed into a batch.

use memento::graph::{Estimate, GraphParams};
use memento::{Durability, Error, Filter, GraphInfo, Metadata, Metric, Record, SearchHit, WriteBatch};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayDescr, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyTuple};

use crate::errors::{invalid, FResult, Fail};

pub(crate) fn parse_metric(s: &str) -> FResult<Metric> {
    match s.to_ascii_lowercase().as_str() {
        "cosine" => Ok(Metric::Cosine),
        "dot" | "ip" => Ok(Metric::Dot),
        "l2" | "euclidean" => Ok(Metric::L2),
        _ => Err(invalid(format!("unknown metric {s:?}; use \"cosine\", \"dot\" or \"l2\""))),
    }
}

pub(crate) fn parse_durability(s: &str) -> FResult<Durability> {
    match s.to_ascii_lowercase().as_str() {
        "sync" => Ok(Durability::Sync),
        "group" | "group_commit" => Ok(Durability::GroupCommit),
        "buffered" => Ok(Durability::Buffered),
        _ => Err(invalid(format!("unknown durability {s:?}; use \"sync\", \"group\" or \"buffered\""))),
    }
}

/// Metadata from its JSON text: an object, or `null` for none.
pub(crate) fn parse_metadata(json: Option<&str>) -> FResult<Option<Metadata>> {
    let Some(text) = json else { return Ok(None) };
    memento::limits::check_json_text(text, "metadata").map_err(invalid)?;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => Ok(Some(m)),
        Ok(serde_json::Value::Null) => Ok(None),
        Ok(other) => Err(invalid(format!("metadata must be a JSON object, not {other}"))),
        Err(e) => Err(invalid(format!("metadata is not valid JSON ({e})"))),
    }
}

pub(crate) fn metadata_json(m: Option<Metadata>) -> Option<String> {
    m.map(|m| serde_json::Value::Object(m).to_string())
}

pub(crate) fn parse_filter(json: Option<&str>) -> FResult<Option<Filter>> {
    json.map(Filter::from_json_str).transpose().map_err(Fail::Engine)
}

pub(crate) fn to_count(n: i64, what: &str) -> FResult<usize> {
    usize::try_from(n).map_err(|_| invalid(format!("{what} must be 0 or more, not {n}")))
}

/// Borrows a 2-D float32 C-contiguous array (no copy); anything else is refused with
/// `InvalidArgumentError` (the Python layer converts before calling).
pub(crate) fn borrow_matrix<'py>(obj: &Bound<'py, PyAny>, what: &str) -> FResult<PyReadonlyArray2<'py, f32>> {
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
pub(crate) fn extract_vector(obj: &Bound<'_, PyAny>) -> FResult<Vec<f32>> {
    if let Ok(a) = obj.cast::<PyArray1<f32>>() {
        let ro = a.try_readonly().map_err(|e| invalid(format!("the vector cannot be borrowed: {e}")))?;
        return Ok(ro.as_array().to_vec());
    }
    if obj.cast::<numpy::PyUntypedArray>().is_ok() {
        return Err(invalid("a vector must be a 1-D numpy array of float32"));
    }
    obj.extract::<Vec<f32>>().map_err(|_| invalid("a vector must be a 1-D numpy array of float32 or a sequence of floats"))
}

pub(crate) fn hit_tuples<'py>(py: Python<'py>, lists: Vec<Vec<SearchHit>>) -> PyResult<Bound<'py, PyList>> {
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

/// Result lists as lists of `(id, distance, score, text, metadata JSON)`: keyword and hybrid
/// hits, whose score is not a function of the distance.
pub(crate) fn scored_hit_tuples<'py>(py: Python<'py>, lists: Vec<Vec<SearchHit>>) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for hits in lists {
        let inner = PyList::empty(py);
        for h in hits {
            inner.append((h.id, h.distance, h.score, h.text, metadata_json(h.metadata)))?;
        }
        out.append(inner)?;
    }
    Ok(out)
}

/// The hits of `search_arrays`, flattened with the GIL released: `n` queries by `m` columns
/// (the longest list), each id as `width` UCS-4 code points (zero-padded, as numpy's `U`
/// dtype holds strings), distances padded with NaN, and the ids as integers when every one
/// is a decimal integer (see [`decimal_key`]), padded with -1.
pub(crate) struct HitArrays {
    n: usize,
    m: usize,
    width: usize,
    codes: Vec<u32>,
    distances: Vec<f32>,
    keys: Option<Vec<i64>>,
}

/// An id as an integer key: a non-negative decimal integer below 2^63 written the canonical
/// way (digits only, no leading zero), so that the key's decimal form is the id again.
fn decimal_key(id: &str) -> Option<i64> {
    let canonical = !id.is_empty() && id.len() <= 19 && id.bytes().all(|b| b.is_ascii_digit()) && (id == "0" || !id.starts_with('0'));
    if canonical {
        id.parse::<i64>().ok()
    } else {
        None
    }
}

impl HitArrays {
    /// Flattens the hits (no Python object made).
    pub(crate) fn new(lists: &[Vec<SearchHit>]) -> HitArrays {
        let n = lists.len();
        let m = lists.iter().map(Vec::len).max().unwrap_or(0);
        // numpy has no zero-width string dtype worth giving out: at least 1.
        let width = lists.iter().flatten().map(|h| h.id.chars().count()).max().unwrap_or(0).max(1);
        let mut codes = vec![0u32; n * m * width];
        let mut distances = vec![f32::NAN; n * m];
        let mut keys = Some(vec![-1i64; n * m]);
        for (i, hits) in lists.iter().enumerate() {
            for (j, h) in hits.iter().enumerate() {
                let cell = i * m + j;
                if let Some(slot) = codes.get_mut(cell * width..(cell + 1) * width) {
                    for (c, ch) in slot.iter_mut().zip(h.id.chars()) {
                        *c = u32::from(ch);
                    }
                }
                if let Some(d) = distances.get_mut(cell) {
                    *d = h.distance;
                }
                if let Some(ks) = keys.as_mut() {
                    match (decimal_key(&h.id), ks.get_mut(cell)) {
                        (Some(key), Some(k)) => *k = key,
                        _ => keys = None,
                    }
                }
            }
        }
        HitArrays { n, m, width, codes, distances, keys }
    }

    /// `(ids, distances, keys)`: an `(n, m)` array of dtype `U{width}` (a view of the code
    /// points, not a copy), an `(n, m)` float32 array, and an `(n, m)` int64 array or None.
    pub(crate) fn into_tuple(self, py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
        let HitArrays { n, m, width, codes, distances, keys } = self;
        let codes = codes.into_pyarray(py).reshape([n, m * width])?;
        // Native byte order, as the u32 code points were written.
        let dtype = PyArrayDescr::new(py, format!("U{width}"))?;
        let ids = codes.call_method1("view", (dtype,))?;
        let distances = distances.into_pyarray(py).reshape([n, m])?;
        let keys = match keys {
            Some(k) => k.into_pyarray(py).reshape([n, m])?.into_any(),
            None => py.None().into_bound(py),
        };
        PyTuple::new(py, [ids, distances.into_any(), keys])
    }
}

/// The graph parameters of `NativeEngine(graph=...)`: `None` (or True) for the engine's
/// default graph, False for none, or a dict of `m`, `ef_construction`, `ef_search` and
/// `min_vectors` (a key left out keeps its default). The Python layer checks the values'
/// ranges; here only their types.
pub(crate) fn parse_graph(graph: Option<&Bound<'_, PyAny>>) -> FResult<Option<Option<GraphParams>>> {
    let Some(g) = graph.filter(|g| !g.is_none()) else { return Ok(None) };
    if let Ok(b) = g.cast::<PyBool>() {
        return Ok(if b.is_true() { None } else { Some(None) });
    }
    let d = g.cast::<PyDict>().map_err(|_| invalid("graph must be None, False or a dict of m, ef_construction, ef_search and min_vectors"))?;
    let mut p = GraphParams::default();
    for (key, value) in d.iter() {
        let name: String = key.extract().map_err(|_| invalid("the keys of graph are strings"))?;
        let bad = |_| invalid(format!("graph[{name:?}] must be a non-negative integer, not {value}"));
        match name.as_str() {
            "m" => p.m = value.extract().map_err(bad)?,
            "ef_construction" => p.ef_construction = value.extract().map_err(bad)?,
            "ef_search" => p.ef_search = value.extract().map_err(bad)?,
            "min_vectors" => p.min_vectors = value.extract().map_err(bad)?,
            other => return Err(invalid(format!("graph has no parameter {other:?}; use m, ef_construction, ef_search and min_vectors"))),
        }
    }
    Ok(Some(Some(p)))
}

/// A recall estimate as a dict: `recall`, `sample` (queries measured), `ef`.
pub(crate) fn estimate_dict(py: Python<'_>, e: Option<Estimate>) -> PyResult<Bound<'_, PyAny>> {
    let Some(e) = e else { return Ok(py.None().into_bound(py)) };
    let d = PyDict::new(py);
    d.set_item("recall", f64::from(e.recall))?;
    d.set_item("sample", e.sample)?;
    d.set_item("ef", e.ef)?;
    Ok(d.into_any())
}

/// [`GraphInfo`] as a dict of its fields (`estimate` and `params` as dicts).
pub(crate) fn graph_info_dict(py: Python<'_>, g: GraphInfo) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("nodes", g.nodes)?;
    d.set_item("tail", g.tail)?;
    d.set_item("file_nodes", g.file_nodes)?;
    d.set_item("estimate", estimate_dict(py, g.estimate)?)?;
    d.set_item("used_by_auto", g.used_by_auto)?;
    let p = PyDict::new(py);
    p.set_item("m", g.params.m)?;
    p.set_item("ef_construction", g.params.ef_construction)?;
    p.set_item("ef_search", g.params.ef_search)?;
    p.set_item("min_vectors", g.params.min_vectors)?;
    d.set_item("params", p)?;
    d.set_item("problem", g.problem)?;
    Ok(d)
}

pub(crate) fn record_tuple<'py>(py: Python<'py>, r: Record) -> PyResult<Bound<'py, PyTuple>> {
    let v = r.vector.into_pyarray(py);
    PyTuple::new(py, [r.id.into_pyobject(py)?.into_any(), v.into_any(), r.text.into_pyobject(py)?, metadata_json(r.metadata).into_pyobject(py)?])
}

pub(crate) fn matrix<'py>(py: Python<'py>, rows: Vec<Vec<f32>>, dim: usize) -> FResult<Bound<'py, PyArray2<f32>>> {
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

/// One parsed operation of `write`.
pub(crate) enum WriteOp {
    Put {
        upsert: bool,
        id: String,
        vector: Option<Vec<f32>>,
        text: Option<String>,
        metadata: Option<String>,
    },
    Delete(String),
    Metadata(String, Option<String>),
    /// `update(..., merge=True)`: a patch merged into the record's metadata inside the commit.
    Merge(String, String),
    Text(String, Option<String>),
}

pub(crate) fn parse_op(item: &Bound<'_, PyAny>) -> FResult<WriteOp> {
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
        "merge_metadata" => {
            want(3)?;
            Ok(WriteOp::Merge(s(1, "id")?, s(2, "metadata JSON")?))
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
pub(crate) fn build_batch(ops: Vec<WriteOp>) -> FResult<WriteBatch> {
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
            WriteOp::Merge(id, m) => {
                batch.merge_metadata(id, parse_metadata(Some(&m))?.unwrap_or_default());
            }
            WriteOp::Text(id, t) => {
                batch.update_text(id, t);
            }
        }
    }
    Ok(batch)
}

pub(crate) fn check_len(what: &str, got: Option<usize>, n: usize) -> FResult<()> {
    match got {
        Some(g) if g != n => Err(invalid(format!("{g} {what} for {n} ids"))),
        _ => Ok(()),
    }
}
