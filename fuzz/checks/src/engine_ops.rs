//! The structured target: an operation list with an injected I/O fault, against a model.

use std::collections::BTreeMap;
use std::sync::Arc;

use memento::storage::{FaultKind, FaultPlan, FaultStorage, MemStorage, Storage};
use memento::{Durability, Engine, Error, Metadata, Metric, Record, WriteBatch};

use crate::Bytes;

const DIM: usize = 4;
/// Operations per input, at most (more input bytes are ignored).
const MAX_OPS: usize = 48;

/// One stored record, as the model sees it.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    vector: Vec<u32>,
    text: Option<String>,
    metadata: Option<Metadata>,
}

type Model = BTreeMap<String, Row>;

/// One operation of a batch.
#[derive(Clone, Debug)]
enum Op {
    Add(String, Vec<f32>, Option<Metadata>),
    Upsert(String, Vec<f32>, Option<Metadata>),
    Delete(String),
    UpdateMetadata(String, Option<Metadata>),
    UpdateText(String, Option<String>),
}

/// What the input asks for next.
enum Step {
    Write(Vec<Op>),
    Checkpoint,
    Reopen,
    Crash,
}

fn id(b: &mut Bytes<'_>) -> String {
    format!("r{}", b.u8() % 12)
}

fn vector(b: &mut Bytes<'_>) -> Vec<f32> {
    // Small exact values, never all zero (the metric is L2, so zero would be fine too).
    (0..DIM).map(|i| f32::from(b.u8() % 17) - 8.0 + if i == 0 { 0.5 } else { 0.0 }).collect()
}

fn metadata(b: &mut Bytes<'_>) -> Option<Metadata> {
    match b.u8() % 3 {
        0 => None,
        n => {
            let mut m = Metadata::new();
            m.insert("k".into(), serde_json::Value::from(u64::from(b.u8())));
            if n == 2 {
                m.insert("tag".into(), serde_json::Value::from(format!("t{}", b.u8() % 4)));
            }
            Some(m)
        }
    }
}

fn op(b: &mut Bytes<'_>) -> Op {
    match b.u8() % 5 {
        0 => Op::Add(id(b), vector(b), metadata(b)),
        1 => Op::Upsert(id(b), vector(b), metadata(b)),
        2 => Op::Delete(id(b)),
        3 => Op::UpdateMetadata(id(b), metadata(b)),
        _ => {
            let i = id(b);
            let t = (b.u8() % 2 == 1).then(|| format!("text {}", b.u8()));
            Op::UpdateText(i, t)
        }
    }
}

fn step(b: &mut Bytes<'_>) -> Step {
    match b.u8() % 16 {
        0..=7 => Step::Write(vec![op(b)]),
        8..=11 => {
            let n = 2 + usize::from(b.u8() % 4);
            Step::Write((0..n).map(|_| op(b)).collect())
        }
        12 | 13 => Step::Checkpoint,
        14 => Step::Reopen,
        _ => Step::Crash,
    }
}

/// Applies a batch to the model, all or nothing, with the engine's rules: `add` of a stored id
/// fails the batch (DuplicateId), an update of a missing id fails it (NotFound), a delete of a
/// missing id does nothing. Returns whether the batch is valid.
fn apply(m: &mut Model, ops: &[Op]) -> bool {
    let mut next = m.clone();
    for o in ops {
        match o {
            Op::Add(id, v, md) => {
                if next.contains_key(id) {
                    return false;
                }
                next.insert(id.clone(), Row { vector: bits(v), text: None, metadata: md.clone() });
            }
            Op::Upsert(id, v, md) => {
                next.insert(id.clone(), Row { vector: bits(v), text: None, metadata: md.clone() });
            }
            Op::Delete(id) => {
                next.remove(id);
            }
            Op::UpdateMetadata(id, md) => match next.get_mut(id) {
                Some(r) => r.metadata = md.clone(),
                None => return false,
            },
            Op::UpdateText(id, t) => match next.get_mut(id) {
                Some(r) => r.text = t.clone(),
                None => return false,
            },
        }
    }
    *m = next;
    true
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn batch(ops: &[Op]) -> WriteBatch {
    let mut wb = WriteBatch::new();
    for o in ops {
        match o.clone() {
            Op::Add(id, v, md) => wb.add(with_md(Record::new(id, v), md)),
            Op::Upsert(id, v, md) => wb.upsert(with_md(Record::new(id, v), md)),
            Op::Delete(id) => wb.delete(id),
            Op::UpdateMetadata(id, md) => wb.update_metadata(id, md),
            Op::UpdateText(id, t) => wb.update_text(id, t),
        };
    }
    wb
}

fn with_md(r: Record, md: Option<Metadata>) -> Record {
    match md {
        Some(m) => r.with_metadata(m),
        None => r,
    }
}

fn contents(e: &Engine) -> Model {
    e.iter()
        .map(|r| r.expect("reading every record of a store that opened"))
        .map(|r| (r.id, Row { vector: bits(&r.vector), text: r.text, metadata: r.metadata }))
        .collect()
}

fn open(storage: Arc<dyn Storage>) -> memento::Result<Engine> {
    Engine::builder_with_storage(storage).dimension(DIM).metric(Metric::L2).page_size(8192).wal_limit(3072).durability(Durability::Sync).open()
}

/// Reopens the store without faults, checks it, and returns its contents, which must be
/// `acked` or, if a commit failed, possibly `acked` plus that commit.
fn recover(mem: &MemStorage, acked: &Model, in_doubt: Option<&Model>) -> Model {
    let e = open(Arc::new(mem.clone())).unwrap_or_else(|err| panic!("the store does not reopen after a fault: {err}"));
    e.check_integrity().unwrap_or_else(|err| panic!("integrity check after reopening: {err}"));
    let got = contents(&e);
    assert!(got == *acked || in_doubt == Some(&got), "after reopening, the store is neither the acknowledged state nor that plus the failed commit");
    e.close().unwrap_or_else(|err| panic!("closing a clean store: {err}"));
    got
}

/// What one run of [`engine_ops`] did.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpsReport {
    /// Operations run.
    pub steps: usize,
    /// Commits acknowledged.
    pub commits: usize,
    /// Whether the injected fault fired.
    pub fault_fired: bool,
    /// Reopens after a fault or a crash, each checked against the model.
    pub recoveries: usize,
}

/// Runs the operation list the input describes; see the crate docs for the properties.
pub fn engine_ops(data: &[u8]) {
    engine_ops_report(data);
}

/// [`engine_ops`], returning what it did.
pub fn engine_ops_report(data: &[u8]) -> OpsReport {
    let mut report = OpsReport::default();
    let mut b = Bytes::new(data);
    let countdown = u64::from(b.u16() % 400);
    let kind = match b.u8() % 3 {
        0 => FaultKind::Eio,
        1 => FaultKind::Enospc,
        _ => FaultKind::ShortWrite,
    };
    let forever = b.u8().is_multiple_of(2);
    let faults = FaultPlan::new(countdown, kind, !forever);
    let mem = MemStorage::new();
    open(Arc::new(mem.clone())).expect("creating a store in memory").close().expect("closing a new store");
    let faulty = || -> Arc<dyn Storage> { Arc::new(FaultStorage::new(Arc::new(mem.clone()), Arc::clone(&faults))) };

    let mut model = Model::new();
    let mut engine = None;
    for _ in 0..MAX_OPS {
        if b.is_empty() {
            break;
        }
        report.steps += 1;
        let e = match engine.take() {
            Some(e) => e,
            None => match open(faulty()) {
                Ok(e) => e,
                Err(err) => {
                    assert!(faults.fired(), "opening failed without a fault: {err}");
                    assert!(matches!(err, Error::Io { .. } | Error::Poisoned { .. }), "opening under a fault must fail with an I/O error, got {err}");
                    faults.disarm();
                    report.recoveries += 1;
                    model = recover(&mem, &model, None);
                    continue;
                }
            },
        };
        match step(&mut b) {
            Step::Write(ops) => {
                let mut next = model.clone();
                let valid = apply(&mut next, &ops);
                match e.write(batch(&ops)) {
                    Ok(_) => {
                        assert!(valid, "the engine accepted a batch the model refuses: {ops:?}");
                        model = next;
                        report.commits += 1;
                        engine = Some(e);
                    }
                    Err(Error::Io { .. } | Error::Poisoned { .. }) if faults.fired() => {
                        // Sticky: nothing more is written, even once I/O works again. One
                        // fault per run: from here on I/O works.
                        faults.disarm();
                        let again = e.write(batch(&[Op::Upsert("late".into(), vec![1.0; DIM], None)]));
                        assert!(matches!(again, Err(Error::Poisoned { .. })), "after a failed commit, writes must be refused: {again:?}");
                        e.abandon();
                        report.recoveries += 1;
                        model = recover(&mem, &model, valid.then_some(&next));
                    }
                    Err(err) => {
                        assert!(!valid, "the engine refused a valid batch: {err} ({ops:?})");
                        assert!(matches!(err, Error::DuplicateId { .. } | Error::NotFound { .. }), "a refused batch must say why: {err}");
                        engine = Some(e);
                    }
                }
            }
            Step::Checkpoint => match e.checkpoint() {
                Ok(()) => engine = Some(e),
                Err(err) => {
                    assert!(faults.fired(), "checkpoint failed without a fault: {err}");
                    assert!(matches!(err, Error::Io { .. } | Error::Poisoned { .. }), "a failed checkpoint must be an I/O error: {err}");
                    e.abandon();
                    faults.disarm();
                    report.recoveries += 1;
                    model = recover(&mem, &model, None);
                }
            },
            Step::Reopen => {
                if let Err(err) = e.close() {
                    assert!(faults.fired(), "close failed without a fault: {err}");
                    faults.disarm();
                    report.recoveries += 1;
                    model = recover(&mem, &model, None);
                }
            }
            Step::Crash => {
                e.abandon();
                report.recoveries += 1;
            }
        }
    }
    if let Some(e) = engine {
        e.abandon();
    }
    faults.disarm();
    recover(&mem, &model, None);
    report.fault_fired = faults.fired();
    report
}
