//! The workload that wrote the golden v1 fixture, and a model of what each transaction leaves.

#![allow(dead_code)]

use std::collections::BTreeMap;

use memento::{Engine, Metadata, Record, WriteBatch};
use serde_json::json;

/// Where the committed fixture lives.
pub fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../format-spec/fixtures/v1/cosine-d4")
}

pub const DIM: usize = 4;
pub const PAGE_SIZE: u32 = 8192;

pub enum Step {
    Batch(WriteBatch),
    Checkpoint,
}

fn meta(v: serde_json::Value) -> Metadata {
    v.as_object().cloned().expect("an object")
}

fn vector(i: usize) -> Vec<f32> {
    vec![i as f32 + 1.0, 2.0, 3.0 - (i % 3) as f32, 1.0 + (i % 5) as f32 * 0.25]
}

/// The steps: two checkpoints, then three transactions left only in the WAL.
pub fn workload() -> Vec<Step> {
    let ids: Vec<String> = ('a'..='t').map(|c| c.to_string()).collect();
    let rec = |i: usize| {
        Record::new(ids[i].clone(), vector(i))
            .with_text(format!("document {} about {}", ids[i], if i.is_multiple_of(2) { "apples" } else { "oranges" }))
            .with_metadata(meta(json!({"n": i, "tag": if i.is_multiple_of(3) { "x" } else { "y" }, "even": i.is_multiple_of(2)})))
    };
    let mut steps = Vec::new();
    let mut b = WriteBatch::new();
    for i in 0..12 {
        b.add(rec(i));
    }
    steps.push(Step::Batch(b));
    let mut b = WriteBatch::new();
    for i in 12..16 {
        b.add(rec(i));
    }
    steps.push(Step::Batch(b));
    steps.push(Step::Checkpoint);
    let mut b = WriteBatch::new();
    b.delete("b");
    b.upsert(Record::new("c", vec![-1.0, 0.5, 0.25, 2.0]).with_text("replaced c"));
    b.update_metadata("d", Some(meta(json!({"n": 300, "note": "updated"}))));
    b.update_text("e", None);
    steps.push(Step::Batch(b));
    let mut b = WriteBatch::new();
    b.add(Record::new("q", vector(16)).with_text("long ".repeat(4000)).with_metadata(meta(json!({"big": true}))));
    steps.push(Step::Batch(b));
    steps.push(Step::Checkpoint);
    let mut b = WriteBatch::new();
    b.add(rec(17));
    b.add(rec(18));
    b.delete("a");
    steps.push(Step::Batch(b));
    let mut b = WriteBatch::new();
    b.update_metadata("f", None);
    b.upsert(Record::new("g", vec![0.0, 0.0, 1.0, 0.0]).with_metadata(meta(json!({"tag": "z"}))));
    steps.push(Step::Batch(b));
    let mut b = WriteBatch::new();
    b.add(rec(19));
    steps.push(Step::Batch(b));
    steps
}

/// (vector normalised, text, metadata) by id.
pub type Model = BTreeMap<String, (Vec<f32>, Option<String>, Option<Metadata>)>;

pub fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Apply the workload through the engine, returning the model after each transaction and
/// whether a checkpoint followed it.
pub fn run(engine: &Engine) -> Vec<(Model, bool)> {
    let mut states: Vec<(Model, bool)> = vec![(Model::new(), false)];
    for step in workload() {
        match step {
            Step::Checkpoint => {
                engine.checkpoint().expect("checkpoint");
                if let Some(last) = states.last_mut() {
                    last.1 = true;
                }
            }
            Step::Batch(b) => {
                engine.write(b).expect("commit");
                states.push((snapshot(engine), false));
            }
        }
    }
    states
}

/// Everything in an engine, as a model.
pub fn snapshot(engine: &Engine) -> Model {
    engine
        .iter()
        .map(|r| {
            let r = r.expect("iterates");
            (r.id, (r.vector, r.text, r.metadata))
        })
        .collect()
}

/// Whether two models hold the same records (vectors within 1e-6).
pub fn same(a: &Model, b: &Model) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
            ka == kb && va.1 == vb.1 && va.2 == vb.2 && va.0.len() == vb.0.len() && va.0.iter().zip(&vb.0).all(|(x, y)| (x - y).abs() < 1e-6)
        })
}

/// The expected models: what each committed prefix of the workload leaves, computed without
/// the engine.
pub fn expected_states() -> Vec<Model> {
    let mut m = Model::new();
    let mut out = vec![m.clone()];
    let ids: Vec<String> = ('a'..='t').map(|c| c.to_string()).collect();
    let put = |m: &mut Model, i: usize| {
        m.insert(
            ids[i].clone(),
            (
                normalized(&vector(i)),
                Some(format!("document {} about {}", ids[i], if i.is_multiple_of(2) { "apples" } else { "oranges" })),
                Some(meta(json!({"n": i, "tag": if i.is_multiple_of(3) { "x" } else { "y" }, "even": i.is_multiple_of(2)}))),
            ),
        );
    };
    for i in 0..12 {
        put(&mut m, i);
    }
    out.push(m.clone());
    for i in 12..16 {
        put(&mut m, i);
    }
    out.push(m.clone());
    m.remove("b");
    m.insert("c".into(), (normalized(&[-1.0, 0.5, 0.25, 2.0]), Some("replaced c".into()), None));
    m.get_mut("d").expect("d").2 = Some(meta(json!({"n": 300, "note": "updated"})));
    m.get_mut("e").expect("e").1 = None;
    out.push(m.clone());
    m.insert("q".into(), (normalized(&vector(16)), Some("long ".repeat(4000)), Some(meta(json!({"big": true})))));
    out.push(m.clone());
    put(&mut m, 17);
    put(&mut m, 18);
    m.remove("a");
    out.push(m.clone());
    m.get_mut("f").expect("f").2 = None;
    m.insert("g".into(), (vec![0.0, 0.0, 1.0, 0.0], None, Some(meta(json!({"tag": "z"})))));
    out.push(m.clone());
    put(&mut m, 19);
    out.push(m);
    out
}

/// Index of the last state made durable by the last checkpoint of the workload.
pub const LAST_CHECKPOINTED_STATE: usize = 4;
