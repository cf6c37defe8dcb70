//! In a text store the vector is a function of the text (issue 13, item 3): changing a text
//! (`update_text`, `WriteBatch::update_text`) embeds the new one, so recall ranks the record by
//! what it says now. With the real model (provisioned by `make setup`; these tests fail, not
//! skip, without it).

use std::sync::{Arc, OnceLock};

use memento::embed::{self, OnnxEmbedder, OnnxOptions};
use memento::{Engine, Error, Memory, Metadata, Record, WriteBatch};

fn embedder() -> Arc<OnnxEmbedder> {
    static E: OnceLock<Arc<OnnxEmbedder>> = OnceLock::new();
    Arc::clone(E.get_or_init(|| {
        let dir = embed::model_dir(embed::DEFAULT_MODEL);
        let e = OnnxEmbedder::load(&dir, &OnnxOptions::default()).unwrap_or_else(|e| panic!("the default model must be provisioned (make setup): {e}"));
        Arc::new(e)
    }))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn meta(k: &str, v: &str) -> Metadata {
    let mut m = Metadata::new();
    m.insert(k.into(), v.into());
    m
}

const OLD: &str = "Alice lives in Lyon";
const NEW: &str = "Alice lives in Marseille.";

fn store(dir: &std::path::Path) -> Engine {
    let e = Engine::builder(dir).embedder(embedder()).open().expect("open");
    e.remember_batch(
        vec![
            Memory::new(OLD).with_id("alice").with_metadata(meta("who", "alice")),
            Memory::new("Bob plays chess on Sundays.").with_id("bob"),
            Memory::new("The train to Paris leaves at noon.").with_id("train"),
        ],
        None,
    )
    .expect("remember");
    e
}

/// The stored vector is the new text's, and recall's distance is computed from it.
fn assert_embedded_as(e: &Engine, id: &str, text: &str) {
    let r = e.get(id).expect("get").expect("present");
    assert_eq!(r.text.as_deref(), Some(text));
    let want = e.embed(text).expect("embed").vector;
    let c = cosine(&r.vector, &want);
    assert!(c > 0.9999, "the stored vector of {id:?} is not the embedding of {text:?} (cosine {c})");
    let q = e.embed("Marseille").expect("embed").vector;
    let hit = e.recall("Marseille", 3, None).expect("recall").into_iter().find(|h| h.id == id).expect("in the top 3");
    let d = 1.0 - cosine(&q, &want);
    assert!((hit.distance - d).abs() < 2e-3, "recall ranks {id:?} at {} but its new text is at {d}", hit.distance);
}

#[test]
fn update_text_embeds_the_new_text_and_keeps_the_metadata() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = store(dir.path());
    let old_vector = e.get("alice").expect("get").expect("alice").vector;
    e.update_text("alice", Some(NEW.into())).expect("update_text");
    let r = e.get("alice").expect("get").expect("alice");
    assert!(cosine(&r.vector, &old_vector) < 0.999, "the vector did not change");
    assert_eq!(r.metadata, Some(meta("who", "alice")), "the metadata is kept");
    assert_embedded_as(&e, "alice", NEW);
    let hits = e.recall("Which city is by the Mediterranean?", 3, None).expect("recall");
    assert_eq!(hits[0].id, "alice", "{hits:?}");
    // remember with the same text under the same id now has nothing to do: the vector is right.
    e.remember_batch(vec![Memory::new(NEW).with_id("alice")], None).expect("remember");
    assert_embedded_as(&e, "alice", NEW);
    // And it survives a reopen (the WAL's replacement, then the checkpoint's).
    e.close().expect("close");
    let e = Engine::builder(dir.path()).embedder(embedder()).open().expect("reopen");
    assert_embedded_as(&e, "alice", NEW);
    assert_eq!(e.count(), 3);
    e.check_integrity().expect("intact");
}

#[test]
fn a_batch_update_text_embeds_too_with_the_batchs_own_metadata() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = store(dir.path());
    let mut b = WriteBatch::new();
    b.update_metadata("alice", Some(meta("who", "alice-2")));
    b.update_text("alice", Some(NEW.into()));
    b.update_text("bob", Some("Bob moved to Marseille.".into()));
    b.update_metadata("bob", Some(meta("who", "bob")));
    e.write(b).expect("write");
    assert_embedded_as(&e, "alice", NEW);
    assert_embedded_as(&e, "bob", "Bob moved to Marseille.");
    assert_eq!(e.get("alice").expect("get").expect("alice").metadata, Some(meta("who", "alice-2")));
    assert_eq!(e.get("bob").expect("get").expect("bob").metadata, Some(meta("who", "bob")));
    // A record added in the same batch and then given a new text.
    let mut b = WriteBatch::new();
    b.add(Record::new("carol", e.embed("Carol").expect("embed").vector).with_text("Carol").with_metadata(meta("who", "carol")));
    b.update_text("carol", Some("Carol sails out of Marseille.".into()));
    e.write(b).expect("write");
    assert_embedded_as(&e, "carol", "Carol sails out of Marseille.");
    assert_eq!(e.get("carol").expect("get").expect("carol").metadata, Some(meta("who", "carol")));
    assert_eq!(e.count(), 4);
    e.check_integrity().expect("intact");
}

#[test]
fn a_metadata_merge_after_a_text_update_in_the_same_batch_merges_into_the_kept_metadata() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = store(dir.path());
    let mut patch = meta("city", "Marseille");
    patch.insert("who".into(), serde_json::Value::Null);
    patch.insert("n".into(), 1.into());
    let mut b = WriteBatch::new();
    // The text update replaces the record (a new slot) keeping its metadata; the merge is made
    // against that.
    b.update_text("alice", Some(NEW.into())).merge_metadata("alice", patch);
    e.write(b).expect("write");
    assert_embedded_as(&e, "alice", NEW);
    let mut want = meta("city", "Marseille");
    want.insert("n".into(), 1.into());
    assert_eq!(e.get("alice").expect("get").expect("alice").metadata, Some(want.clone()));
    // A merge alone embeds nothing, and needs no model.
    e.close().expect("close");
    let e = Engine::open(dir.path()).expect("open without the model");
    e.merge_metadata("alice", meta("n", "2")).expect("merge needs no model");
    want.insert("n".into(), "2".into());
    assert_eq!(e.get("alice").expect("get").expect("alice").metadata, Some(want));
    e.check_integrity().expect("intact");
}

#[test]
fn removing_the_text_of_a_text_store_record_is_refused_and_a_missing_id_is_not_found() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = store(dir.path());
    match e.update_text("alice", None) {
        Err(Error::InvalidArgument { reason }) => assert!(reason.contains("text store"), "{reason}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(matches!(e.update_text("nobody", Some(NEW.into())), Err(Error::NotFound { .. })));
    assert_eq!(e.get("alice").expect("get").expect("alice").text.as_deref(), Some(OLD), "nothing was written");
}

#[test]
fn a_text_store_opened_without_its_model_cannot_change_a_text() {
    let dir = tempfile::tempdir().expect("tmp");
    store(dir.path()).close().expect("close");
    let e = Engine::open(dir.path()).expect("open without the model");
    assert!(matches!(e.update_text("alice", Some(NEW.into())), Err(Error::NoModel)));
    e.update_metadata("alice", Some(meta("k", "v"))).expect("metadata needs no model");
}

#[test]
fn a_raw_vector_store_keeps_the_vector_when_the_text_changes() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).dimension(2).open().expect("open");
    e.add(Record::new("a", vec![1.0, 0.0]).with_text("one")).expect("add");
    e.update_text("a", Some("two".into())).expect("update");
    e.update_text("a", None).expect("removing a text is fine without a model");
    let r = e.get("a").expect("get").expect("a");
    assert_eq!((r.text, r.vector), (None, vec![1.0, 0.0]));
}
