//! Model-based test of the engine: random sequences of writes, reads, searches, checkpoints,
//! clean reopens and crashes (`Engine::abandon`) are run against both the engine and a plain
//! in-memory reference model, and every observable result is compared.
//!
//! Runs on `MemStorage` (512 cases) and on `FsStorage` in a temporary directory (128 cases);
//! `MEMENTO_MODEL_SCALE=N` multiplies both for a longer soak run.

use std::collections::BTreeMap;
use std::sync::Arc;

use memento::storage::MemStorage;
use memento::{Durability, Engine, Error, Filter, Metadata, Metric, Record, ScanMode, SearchOptions, WriteBatch};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

/// Components generated per vector; a store of a larger dimension repeats them.
const GEN: usize = 4;
/// Store dimensions: mostly 4; 130 puts only 15 vectors in an 8 KiB page, so vector pages fill
/// and checkpoints cross page boundaries.
const DIMS: [usize; 3] = [4, 4, 130];
const IDS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
const TEXTS: [&str; 6] = ["hello", "world", "foo bar", "xyz", "", "zoo ö"];
const METRICS: [Metric; 3] = [Metric::Cosine, Metric::Dot, Metric::L2];
const DURABILITIES: [Durability; 3] = [Durability::Sync, Durability::Buffered, Durability::GroupCommit];
const WAL_LIMITS: [u64; 3] = [2048, 4096, 64 << 20];

fn filters() -> Vec<Value> {
    vec![
        json!({"n": {"$gte": 2}}),
        json!({"tag": {"$in": ["x", "y"]}}),
        json!({"$contains": "o"}),
        json!({"tag": {"$ne": "x"}}),
        json!({"$or": [{"n": {"$lt": 1}}, {"b": true}]}),
        json!({"$and": [{"n": {"$gt": 0}}, {"$not_contains": "foo"}]}),
        json!({}),
        json!({"tag": "z"}),
        json!({"n": {"$nin": [1, 3]}}),
        json!({"f": {"$lte": 0.5}}),
        json!({"b": false, "tag": {"$gte": "y"}}),
    ]
}

// ---------------------------------------------------------------------------------------------
// Operations

#[derive(Debug, Clone)]
struct Rec {
    id: usize,
    vector: [i8; GEN],
    text: Option<String>,
    metadata: Option<Metadata>,
}

#[derive(Debug, Clone)]
enum BOp {
    Add(Rec),
    Upsert(Rec),
    Delete(usize),
    UpdateMetadata(usize, Option<Metadata>),
    UpdateText(usize, Option<String>),
}

#[derive(Debug, Clone)]
enum Op {
    Single(BOp),
    DeleteWhere(usize),
    Batch(Vec<BOp>),
    Get(usize),
    Search { query: [i8; GEN], k: usize, filter: Option<usize> },
    Count,
    Sync,
    Checkpoint,
    Reopen,
    Crash,
}

#[derive(Debug, Clone, Copy)]
struct Setup {
    dim: usize,
    metric: Metric,
    durability: Durability,
    wal_limit: u64,
}

fn vec_s() -> impl Strategy<Value = [i8; GEN]> {
    prop_oneof![15 => prop::array::uniform4(-3i8..=3), 1 => Just([0i8; GEN])]
}

fn text_s() -> impl Strategy<Value = Option<String>> {
    prop_oneof![1 => Just(None), 3 => prop::sample::select(TEXTS.to_vec()).prop_map(|s| Some(s.to_string()))]
}

fn meta_s() -> impl Strategy<Value = Option<Metadata>> {
    let some = (
        prop::option::of(0i64..5),
        prop::option::of(prop::sample::select(vec!["x", "y", "z"])),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec![0.5f64, 2.5, -1.0])),
    )
        .prop_map(|(n, tag, b, f)| {
            let mut m = Metadata::new();
            if let Some(n) = n {
                m.insert("n".into(), json!(n));
            }
            if let Some(t) = tag {
                m.insert("tag".into(), json!(t));
            }
            if let Some(b) = b {
                m.insert("b".into(), json!(b));
            }
            if let Some(f) = f {
                m.insert("f".into(), json!(f));
            }
            Some(m)
        });
    prop_oneof![1 => Just(None), 5 => some]
}

fn rec_s() -> impl Strategy<Value = Rec> {
    (0..IDS.len(), vec_s(), text_s(), meta_s()).prop_map(|(id, vector, text, metadata)| Rec { id, vector, text, metadata })
}

fn bop_s() -> impl Strategy<Value = BOp> {
    prop_oneof![
        6 => rec_s().prop_map(BOp::Add),
        5 => rec_s().prop_map(BOp::Upsert),
        3 => (0..IDS.len()).prop_map(BOp::Delete),
        3 => (0..IDS.len(), meta_s()).prop_map(|(i, m)| BOp::UpdateMetadata(i, m)),
        2 => (0..IDS.len(), text_s()).prop_map(|(i, t)| BOp::UpdateText(i, t)),
    ]
}

fn op_s() -> impl Strategy<Value = Op> {
    let nf = filters().len();
    prop_oneof![
        19 => bop_s().prop_map(Op::Single),
        1 => (0..nf).prop_map(Op::DeleteWhere),
        3 => prop::collection::vec(bop_s(), 0..6).prop_map(Op::Batch),
        2 => (0..IDS.len()).prop_map(Op::Get),
        5 => (vec_s(), 0usize..10, prop::option::of(0..nf)).prop_map(|(query, k, filter)| Op::Search { query, k, filter }),
        1 => Just(Op::Count),
        1 => Just(Op::Sync),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

fn case_s() -> impl Strategy<Value = (Setup, Vec<Op>)> {
    let setup = (0..DIMS.len(), 0..3usize, 0..3usize, 0..3usize).prop_map(|(n, m, d, w)| Setup {
        dim: DIMS[n],
        metric: METRICS[m],
        durability: DURABILITIES[d],
        wal_limit: WAL_LIMITS[w],
    });
    (setup, prop::collection::vec(op_s(), 1..60))
}

// ---------------------------------------------------------------------------------------------
// The reference model

#[derive(Debug, Clone)]
struct MRec {
    vector: Vec<f32>,
    text: Option<String>,
    metadata: Option<Metadata>,
    /// Insertion order (the engine's slot order).
    seq: u64,
}

#[derive(Debug, Clone, Default)]
struct Model {
    recs: BTreeMap<String, MRec>,
    next_seq: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum Ek {
    Duplicate(String),
    NotFound(String),
    InvalidVector,
}

fn to_vec(v: &[i8; GEN], dim: usize) -> Vec<f32> {
    (0..dim).map(|j| f32::from(v[j % GEN])).collect()
}

fn vector_ok(metric: Metric, v: &[i8; GEN]) -> bool {
    metric != Metric::Cosine || v.iter().any(|&x| x != 0)
}

impl Model {
    /// Applies a batch all-or-nothing; returns (written, deleted) or the first error.
    fn apply(&mut self, s: &Setup, ops: &[BOp]) -> Result<(usize, usize), Ek> {
        let metric = s.metric;
        let mut t = self.clone();
        let (mut written, mut deleted) = (0, 0);
        for op in ops {
            match op {
                BOp::Add(r) => {
                    let id = IDS[r.id];
                    if t.recs.contains_key(id) {
                        return Err(Ek::Duplicate(id.to_string()));
                    }
                    if !vector_ok(metric, &r.vector) {
                        return Err(Ek::InvalidVector);
                    }
                    t.put(r, s.dim);
                    written += 1;
                }
                BOp::Upsert(r) => {
                    if !vector_ok(metric, &r.vector) {
                        return Err(Ek::InvalidVector);
                    }
                    if t.recs.remove(IDS[r.id]).is_some() {
                        deleted += 1;
                    }
                    t.put(r, s.dim);
                    written += 1;
                }
                BOp::Delete(i) => {
                    if t.recs.remove(IDS[*i]).is_some() {
                        deleted += 1;
                    }
                }
                BOp::UpdateMetadata(i, m) => match t.recs.get_mut(IDS[*i]) {
                    Some(r) => r.metadata = m.clone(),
                    None => return Err(Ek::NotFound(IDS[*i].to_string())),
                },
                BOp::UpdateText(i, x) => match t.recs.get_mut(IDS[*i]) {
                    Some(r) => r.text = x.clone(),
                    None => return Err(Ek::NotFound(IDS[*i].to_string())),
                },
            }
        }
        *self = t;
        Ok((written, deleted))
    }

    fn put(&mut self, r: &Rec, dim: usize) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.recs.insert(IDS[r.id].to_string(), MRec { vector: to_vec(&r.vector, dim), text: r.text.clone(), metadata: r.metadata.clone(), seq });
    }
}

fn record_of(r: &Rec, dim: usize) -> Record {
    Record { id: IDS[r.id].to_string(), vector: to_vec(&r.vector, dim), text: r.text.clone(), metadata: r.metadata.clone() }
}

fn add_to_batch(b: &mut WriteBatch, op: &BOp, dim: usize) {
    match op {
        BOp::Add(r) => b.add(record_of(r, dim)),
        BOp::Upsert(r) => b.upsert(record_of(r, dim)),
        BOp::Delete(i) => b.delete(IDS[*i]),
        BOp::UpdateMetadata(i, m) => b.update_metadata(IDS[*i], m.clone()),
        BOp::UpdateText(i, t) => b.update_text(IDS[*i], t.clone()),
    };
}

fn error_kind(e: &Error) -> Result<Ek, TestCaseError> {
    match e {
        Error::DuplicateId { id, .. } => Ok(Ek::Duplicate(id.clone())),
        Error::NotFound { id } => Ok(Ek::NotFound(id.clone())),
        Error::InvalidVector { .. } => Ok(Ek::InvalidVector),
        other => Err(TestCaseError::fail(format!("unexpected engine error: {other:?} ({other})"))),
    }
}

fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

fn model_distance(metric: Metric, q: &[f32], v: &[f32]) -> f64 {
    match metric {
        Metric::Cosine => 1.0 - dot64(q, v) / (dot64(q, q).sqrt() * dot64(v, v).sqrt()),
        Metric::Dot => -dot64(q, v),
        Metric::L2 => q.iter().zip(v).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum(),
    }
}

fn normalized(v: &[f32]) -> Vec<f64> {
    let n = dot64(v, v).sqrt();
    v.iter().map(|x| f64::from(*x) / n).collect()
}

// ---------------------------------------------------------------------------------------------
// Backends

enum Backend {
    Mem(MemStorage),
    Fs(tempfile::TempDir),
}

impl Backend {
    fn open(&self, s: &Setup) -> memento::Result<Engine> {
        let b = match self {
            Backend::Mem(m) => Engine::builder_with_storage(Arc::new(m.clone())),
            Backend::Fs(d) => Engine::builder(d.path().join("store")),
        };
        b.dimension(s.dim).metric(s.metric).durability(s.durability).page_size(8192).wal_limit(s.wal_limit).open()
    }
    fn reopen(&self, s: &Setup, n: usize) -> memento::Result<Engine> {
        // Alternate between checking the options and taking them from the store.
        let b = match self {
            Backend::Mem(m) => Engine::builder_with_storage(Arc::new(m.clone())),
            Backend::Fs(d) => Engine::builder(d.path().join("store")).create(false),
        };
        let b = if n.is_multiple_of(2) { b.dimension(s.dim).metric(s.metric) } else { b };
        b.durability(s.durability).wal_limit(s.wal_limit).open()
    }
}

// ---------------------------------------------------------------------------------------------
// Checks

fn check_get(engine: &Engine, model: &Model, metric: Metric, id: &str) -> Result<(), TestCaseError> {
    let got = engine.get(id).map_err(|e| TestCaseError::fail(format!("get({id:?}) failed: {e}")))?;
    let contains = engine.contains(id).map_err(|e| TestCaseError::fail(format!("contains({id:?}) failed: {e}")))?;
    match (model.recs.get(id), got) {
        (None, None) => prop_assert!(!contains, "contains({:?}) is true for a missing record", id),
        (None, Some(r)) => prop_assert!(false, "get({:?}) returned {:?} but the model has no such record", id, r),
        (Some(m), None) => prop_assert!(false, "get({:?}) returned None but the model has {:?}", id, m),
        (Some(m), Some(r)) => {
            prop_assert!(contains, "contains({:?}) is false for a live record", id);
            check_record(metric, id, m, &r)?;
        }
    }
    Ok(())
}

fn check_record(metric: Metric, id: &str, m: &MRec, r: &Record) -> Result<(), TestCaseError> {
    prop_assert_eq!(&r.id, id);
    prop_assert_eq!(&r.text, &m.text, "text of {:?}", id);
    prop_assert_eq!(&r.metadata, &m.metadata, "metadata of {:?}", id);
    let want: Vec<f64> = if metric == Metric::Cosine { normalized(&m.vector) } else { m.vector.iter().map(|&x| f64::from(x)).collect() };
    prop_assert_eq!(r.vector.len(), m.vector.len());
    for (g, w) in r.vector.iter().zip(&want) {
        prop_assert!((f64::from(*g) - w).abs() <= 1e-5, "vector of {:?}: got {:?}, want {:?}", id, r.vector, want);
    }
    Ok(())
}

/// Everything: integrity, counts, every id, and `iter` in insertion order.
fn full_check(engine: &Engine, model: &Model, s: &Setup, when: &str) -> Result<(), TestCaseError> {
    let metric = s.metric;
    if let Err(e) = engine.check_integrity() {
        prop_assert!(false, "check_integrity failed {}: {}", when, e);
    }
    prop_assert_eq!(engine.count(), model.recs.len() as u64, "count {}", when);
    let stats = engine.stats();
    prop_assert_eq!(stats.count, model.recs.len() as u64, "stats.count {}", when);
    prop_assert_eq!(stats.dimension, s.dim);
    prop_assert_eq!(stats.metric, metric);
    for id in IDS {
        check_get(engine, model, metric, id)?;
    }
    let mut by_seq: Vec<(&String, &MRec)> = model.recs.iter().collect();
    by_seq.sort_by_key(|(_, r)| r.seq);
    let mut n = 0;
    for item in engine.iter() {
        let r = item.map_err(|e| TestCaseError::fail(format!("iter failed {when}: {e}")))?;
        prop_assert!(n < by_seq.len(), "iter yields more records than the model has ({})", when);
        let (id, m) = by_seq[n];
        prop_assert_eq!(&r.id, id, "iter order {}", when);
        check_record(metric, id, m, &r)?;
        n += 1;
    }
    prop_assert_eq!(n, by_seq.len(), "iter yields too few records {}", when);
    Ok(())
}

fn check_search(engine: &Engine, model: &Model, s: &Setup, query: &[i8; GEN], k: usize, filter: Option<&Filter>) -> Result<(), TestCaseError> {
    // Every scan must give the exact answer: the quantized one rescores its candidates.
    for mode in [ScanMode::Auto, ScanMode::Exact, ScanMode::Quantized] {
        check_search_mode(engine, model, s, query, k, filter, mode)?;
    }
    Ok(())
}

fn check_search_mode(
    engine: &Engine,
    model: &Model,
    s: &Setup,
    query: &[i8; GEN],
    k: usize,
    filter: Option<&Filter>,
    mode: ScanMode,
) -> Result<(), TestCaseError> {
    let metric = s.metric;
    let q = to_vec(query, s.dim);
    let mut opts = SearchOptions::new(k).mode(mode);
    opts.filter = filter;
    let res = engine.search_with(&q, &opts);
    if !vector_ok(metric, query) {
        prop_assert!(matches!(res, Err(Error::InvalidVector { .. })), "a zero query under cosine gave {:?}", res);
        return Ok(());
    }
    let hits = res.map_err(|e| TestCaseError::fail(format!("search failed: {e}")))?;
    let matching: Vec<(&String, &MRec, f64)> = model
        .recs
        .iter()
        .filter(|(_, r)| filter.is_none_or(|f| f.matches(r.text.as_deref(), r.metadata.as_ref())))
        .map(|(id, r)| (id, r, model_distance(metric, &q, &r.vector)))
        .collect();
    let mut expected = matching.clone();
    expected.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.1.seq.cmp(&b.1.seq)));
    let want_len = k.min(matching.len());
    let describe = || {
        format!(
            "{mode:?} query {:?} k {} filter {:?}\n got: {:?}\n want (model order): {:?}",
            q,
            k,
            filter,
            hits.iter().map(|h| (h.id.as_str(), h.distance)).collect::<Vec<_>>(),
            expected.iter().map(|(id, r, d)| (id.as_str(), *d, r.seq)).collect::<Vec<_>>()
        )
    };
    prop_assert_eq!(hits.len(), want_len, "number of hits: {}", describe());
    let tol = |d: f64| 1e-4 * d.abs().max(1.0);
    let mut seen = std::collections::HashSet::new();
    let mut returned: Vec<&MRec> = Vec::new();
    for (i, h) in hits.iter().enumerate() {
        let Some(&(_, m, d)) = matching.iter().find(|(id, _, _)| **id == h.id) else {
            prop_assert!(false, "hit {:?} is not a live matching record: {}", h.id, describe());
            unreachable!()
        };
        prop_assert!(seen.insert(h.id.clone()), "hit {:?} returned twice: {}", h.id, describe());
        prop_assert!((f64::from(h.distance) - d).abs() <= tol(d), "distance of {:?}: {}", h.id, describe());
        prop_assert!((f64::from(h.distance) - expected[i].2).abs() <= tol(d), "distance at rank {}: {}", i, describe());
        prop_assert_eq!(&h.text, &m.text, "hit text");
        prop_assert_eq!(&h.metadata, &m.metadata, "hit metadata");
        if i > 0 {
            let prev = &hits[i - 1];
            prop_assert!(prev.distance <= h.distance, "hits not sorted by distance: {}", describe());
            if prev.distance == h.distance {
                prop_assert!(returned[i - 1].seq < m.seq, "equal distances not in insertion order: {}", describe());
            }
        }
        // Records with the very same vector have the very same distance: insertion order.
        for p in &returned {
            if p.vector == m.vector {
                prop_assert!(p.seq < m.seq, "identical vectors not in insertion order: {}", describe());
            }
        }
        returned.push(m);
    }
    if let Some(last) = returned.last() {
        let last_d = model_distance(metric, &q, &last.vector);
        for (id, m, d) in &matching {
            if seen.contains(id.as_str()) {
                continue;
            }
            prop_assert!(*d >= last_d - 1e-5, "{:?} (distance {}) is closer than a returned hit: {}", id, d, describe());
            if m.vector == last.vector {
                prop_assert!(m.seq > last.seq, "{:?} ties with the last hit and was inserted earlier, but was left out: {}", id, describe());
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The runner

fn run_case(backend: &Backend, setup: Setup, ops: &[Op]) -> Result<(), TestCaseError> {
    let filters: Vec<Filter> = filters().iter().map(|v| Filter::parse(v).expect("the test's filters are valid")).collect();
    let metric = setup.metric;
    let mut model = Model::default();
    let mut engine = Some(backend.open(&setup).map_err(|e| TestCaseError::fail(format!("create: {e}")))?);
    let mut reopens = 0;
    for (step, op) in ops.iter().enumerate() {
        let e = engine.as_ref().expect("engine is open");
        let at = format!("at step {step} ({op:?})");
        match op {
            Op::Single(bop) => {
                let want = model.apply(&setup, std::slice::from_ref(bop));
                match bop {
                    BOp::Add(r) => check_commit(e.add(record_of(r, setup.dim)), want, std::slice::from_ref(bop), &at)?,
                    BOp::Upsert(r) => check_commit(e.upsert(record_of(r, setup.dim)), want, std::slice::from_ref(bop), &at)?,
                    BOp::Delete(i) => {
                        let got = e.delete(IDS[*i]).map_err(|x| TestCaseError::fail(format!("delete {at}: {x}")))?;
                        prop_assert_eq!(got, want.expect("delete never fails").1 == 1, "delete's result {}", at);
                    }
                    BOp::UpdateMetadata(i, m) => check_unit(e.update_metadata(IDS[*i], m.clone()), want, &at)?,
                    BOp::UpdateText(i, t) => check_unit(e.update_text(IDS[*i], t.clone()), want, &at)?,
                }
            }
            Op::DeleteWhere(fi) => {
                let f = &filters[*fi];
                let doomed: Vec<BOp> = model
                    .recs
                    .iter()
                    .filter(|(_, r)| f.matches(r.text.as_deref(), r.metadata.as_ref()))
                    .map(|(id, _)| BOp::Delete(IDS.iter().position(|x| x == id).expect("known id")))
                    .collect();
                let want = model.apply(&setup, &doomed).expect("deletes never fail").1;
                let got = e.delete_where(f).map_err(|x| TestCaseError::fail(format!("delete_where {at}: {x}")))?;
                prop_assert_eq!(got, want, "delete_where count {}", at);
            }
            Op::Batch(bops) => {
                let mut b = WriteBatch::new();
                for x in bops {
                    add_to_batch(&mut b, x, setup.dim);
                }
                let want = model.apply(&setup, bops);
                check_commit(e.write(b), want, bops, &at)?;
            }
            Op::Get(i) => check_get(e, &model, metric, IDS[*i])?,
            Op::Search { query, k, filter } => check_search(e, &model, &setup, query, *k, filter.map(|i| &filters[i]))?,
            Op::Count => prop_assert_eq!(e.count(), model.recs.len() as u64, "count {}", at),
            Op::Sync => e.sync().map_err(|x| TestCaseError::fail(format!("sync {at}: {x}")))?,
            Op::Checkpoint => {
                e.checkpoint().map_err(|x| TestCaseError::fail(format!("checkpoint {at}: {x}")))?;
                prop_assert_eq!(e.stats().pending_vectors, 0, "pending vectors after a checkpoint {}", at);
            }
            Op::Reopen | Op::Crash => {
                let e = engine.take().expect("engine is open");
                if matches!(op, Op::Reopen) {
                    e.close().map_err(|x| TestCaseError::fail(format!("close {at}: {x}")))?;
                } else {
                    e.abandon();
                }
                reopens += 1;
                let e = backend.reopen(&setup, reopens).map_err(|x| TestCaseError::fail(format!("reopen {at}: {x}")))?;
                full_check(&e, &model, &setup, &format!("after reopening {at}"))?;
                engine = Some(e);
            }
        }
    }
    let e = engine.take().expect("engine is open");
    full_check(&e, &model, &setup, "at the end")?;
    e.close().map_err(|x| TestCaseError::fail(format!("final close: {x}")))?;
    let e = backend.reopen(&setup, 0).map_err(|x| TestCaseError::fail(format!("final reopen: {x}")))?;
    full_check(&e, &model, &setup, "after the final reopen")?;
    e.close().map_err(|x| TestCaseError::fail(format!("final close: {x}")))?;
    Ok(())
}

fn check_commit(got: memento::Result<memento::CommitInfo>, want: Result<(usize, usize), Ek>, bops: &[BOp], at: &str) -> Result<(), TestCaseError> {
    match (got, want) {
        (Ok(info), Ok((written, deleted))) => {
            prop_assert_eq!((info.written, info.deleted), (written, deleted), "commit info {}", at);
            let has_update = bops.iter().any(|o| matches!(o, BOp::UpdateMetadata(..) | BOp::UpdateText(..)));
            prop_assert_eq!(info.lsn.is_some(), written + deleted > 0 || has_update, "commit LSN {:?} {}", info.lsn, at);
        }
        (Err(e), Err(w)) => prop_assert_eq!(error_kind(&e)?, w, "error {}", at),
        (Ok(info), Err(w)) => prop_assert!(false, "expected {:?} but the commit succeeded ({:?}) {}", w, info, at),
        (Err(e), Ok(_)) => prop_assert!(false, "expected success but got {:?} {}", e, at),
    }
    Ok(())
}

fn check_unit(got: memento::Result<()>, want: Result<(usize, usize), Ek>, at: &str) -> Result<(), TestCaseError> {
    match (got, want) {
        (Ok(()), Ok(_)) => {}
        (Err(e), Err(w)) => prop_assert_eq!(error_kind(&e)?, w, "error {}", at),
        (Ok(()), Err(w)) => prop_assert!(false, "expected {:?} but the update succeeded {}", w, at),
        (Err(e), Ok(_)) => prop_assert!(false, "expected success but got {:?} {}", e, at),
    }
    Ok(())
}

/// `cases` test cases, times `MEMENTO_MODEL_SCALE` if set (for longer soak runs).
fn config(cases: u32) -> Config {
    let scale: u32 = std::env::var("MEMENTO_MODEL_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    Config { cases: cases.saturating_mul(scale.max(1)), failure_persistence: None, max_shrink_iters: 2000, ..Config::default() }
}

#[test]
fn model_mem_storage() {
    let mut runner = TestRunner::new(config(512));
    runner
        .run(&case_s(), |(setup, ops)| {
            let backend = Backend::Mem(MemStorage::new());
            run_case(&backend, setup, &ops)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn model_fs_storage() {
    let mut runner = TestRunner::new(config(128));
    runner
        .run(&case_s(), |(setup, ops)| {
            let backend = Backend::Fs(tempfile::tempdir().map_err(|e| TestCaseError::fail(format!("tempdir: {e}")))?);
            run_case(&backend, setup, &ops)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
