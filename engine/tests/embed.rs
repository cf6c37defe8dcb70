//! The real embedding model (provisioned by `make setup`; these tests fail, not skip, without
//! it): golden vectors, batching, the optimised graph, and the text API on a store.

use std::sync::{Arc, OnceLock};

use memento::embed::{self, Embedder, ModelIdentity, OnnxEmbedder, OnnxOptions, Progress};
use memento::{Engine, Error, Filter, Fusion, Memory, Metadata, SearchOptions};

fn model_dir() -> std::path::PathBuf {
    embed::model_dir(embed::DEFAULT_MODEL)
}

/// One embedder for the whole test binary (ONNX Runtime loads once per process anyway).
fn embedder() -> Arc<OnnxEmbedder> {
    static E: OnceLock<Arc<OnnxEmbedder>> = OnceLock::new();
    Arc::clone(E.get_or_init(|| {
        let e = OnnxEmbedder::load(&model_dir(), &OnnxOptions::default()).unwrap_or_else(|e| panic!("the default model must be provisioned (make setup): {e}"));
        Arc::new(e)
    }))
}

struct Reference {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let json = include_str!("golden/reference_embeddings.json");
    let v: serde_json::Value = serde_json::from_str(json).expect("reference JSON");
    assert_eq!(v["max_tokens"], 256);
    v["sentences"]
        .as_array()
        .expect("sentences")
        .iter()
        .map(|s| Reference {
            text: s["text"].as_str().expect("text").to_owned(),
            ids: s["ids"].as_array().expect("ids").iter().map(|x| x.as_u64().expect("id") as u32).collect(),
            embedding: s["embedding"].as_array().expect("embedding").iter().map(|x| x.as_f64().expect("float") as f32).collect(),
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn tokenizer_matches_the_reference_ids_including_truncation_at_256() {
    let e = embedder();
    let refs = references();
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let encs = e.tokenize(&texts).expect("tokenize");
    for (r, enc) in refs.iter().zip(&encs) {
        assert_eq!(enc.get_ids(), &r.ids[..], "token ids of {:?}", &r.text[..r.text.len().min(40)]);
    }
    assert!(refs.iter().any(|r| r.ids.len() == 256), "the set has a text cut at 256 tokens");
    assert!(refs.iter().any(|r| r.ids.len() > 128 && r.ids.len() < 256), "the set has a text between 128 and 256 tokens");
}

#[test]
fn golden_embeddings_match_an_independent_fp32_forward_pass() {
    let e = embedder();
    let refs = references();
    let mut worst = 1.0f32;
    for r in &refs {
        let v = e.embed(&r.text).expect("embed");
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalised, got {norm}");
        let c = cosine(&v, &r.embedding);
        assert!(c >= 0.99, "cosine {c} for {:?}", &r.text[..r.text.len().min(40)]);
        worst = worst.min(c);
    }
    // sentence-transformers' published values for "hello world" (fp32 model); the int8 weights
    // move single elements by up to ~0.007.
    let hello = e.embed("hello world").expect("embed");
    let published = [-0.0345f32, 0.0310, 0.0067, 0.0261, -0.0394];
    for (i, (a, b)) in hello.iter().zip(published).enumerate() {
        assert!((a - b).abs() < 0.01, "element {i}: {a} vs published {b}");
    }
    eprintln!("worst cosine against the fp32 reference: {worst}");
}

#[test]
fn a_padded_sorted_batch_gives_the_same_vectors_as_one_text_at_a_time() {
    let e = embedder();
    let refs = references();
    let mut texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    texts.extend(["short", "a slightly longer sentence about databases", "short"]);
    let mut seen = Vec::new();
    let mut progress = |done: usize, all: usize| seen.push((done, all));
    let batch = e.embed_batch(&texts, Some(&mut progress as Progress<'_>)).expect("batch");
    assert_eq!(seen.last(), Some(&(texts.len(), texts.len())));
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    for (t, b) in texts.iter().zip(&batch) {
        let one = e.embed(t).expect("one");
        let diff = one.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "batch and single differ by {diff} for {:?}", &t[..t.len().min(30)]);
    }
    // A small batch size forces many batches; the result must not change.
    let small = OnnxEmbedder::load(&model_dir(), &OnnxOptions { batch_size: 2, batch_tokens: 300, ..OnnxOptions::default() }).expect("load");
    let again = small.embed_batch(&texts, None).expect("batch");
    for (a, b) in batch.iter().zip(&again) {
        assert!(cosine(a, b) > 0.99999);
    }
}

#[test]
fn the_optimised_graph_and_the_original_agree() {
    let m = embed::Manifest::load(&model_dir()).expect("manifest");
    let opt = m.optimized.as_ref().expect("provisioning writes an optimised graph");
    let fast = embedder();
    assert!(fast.graph_path().ends_with(&opt.file), "the optimised graph is what loads: {}", fast.graph_path().display());
    let plain = OnnxEmbedder::load(&model_dir(), &OnnxOptions { use_optimized: false, verify_hash: true, ..OnnxOptions::default() }).expect("load");
    assert!(plain.graph_path().ends_with(&m.model_file));
    assert_eq!(plain.identity(), fast.identity());
    for t in ["hello world", "The optimised copy must not change what a text means."] {
        let c = cosine(&fast.embed(t).expect("e"), &plain.embed(t).expect("e"));
        assert!(c > 0.9999, "cosine {c}");
    }
}

#[test]
fn a_missing_model_or_runtime_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    match OnnxEmbedder::load(dir.path(), &OnnxOptions::default()) {
        Err(Error::Model { reason }) => assert!(reason.contains("memento-model.json") && reason.contains("provision"), "{reason}"),
        other => panic!("expected Error::Model, got {other:?}"),
    }
    match embed::find_runtime_library(Some(&dir.path().join("libonnxruntime.so.9"))) {
        Err(Error::Model { reason }) => assert!(reason.contains("does not exist"), "{reason}"),
        other => panic!("expected Error::Model, got {other:?}"),
    }
}

/// Another model: deterministic vectors from a hash of the text. Only for the tests that a
/// store refuses a model it was not written with.
struct OtherModel(ModelIdentity);
impl Embedder for OtherModel {
    fn identity(&self) -> &ModelIdentity {
        &self.0
    }
    fn embed_batch(&self, texts: &[&str], _: Option<Progress<'_>>) -> memento::Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| (0..self.0.dim).map(|i| ((t.len() as u32 * 31 + i) % 17) as f32 + 1.0).collect()).collect())
    }
}

fn other_model(dim: u32) -> Arc<dyn Embedder> {
    Arc::new(OtherModel(ModelIdentity { id: "other-model".into(), dim, hash: [7; 32] }))
}

fn meta(k: &str, v: &str) -> Metadata {
    let mut m = Metadata::new();
    m.insert(k.into(), v.into());
    m
}

const FACTS: [(&str, &str); 8] = [
    ("The cat sleeps on the warm windowsill all afternoon.", "animals"),
    ("Dogs need a walk every morning and evening.", "animals"),
    ("The central bank raised interest rates by a quarter point.", "finance"),
    ("Stock markets fell sharply after the inflation report.", "finance"),
    ("Rust's borrow checker prevents data races at compile time.", "programming"),
    ("Python lists can hold values of different types.", "programming"),
    ("Bake the bread at 220 degrees for thirty minutes.", "cooking"),
    ("Simmer the tomato sauce slowly with garlic and basil.", "cooking"),
];

#[test]
fn remember_and_recall_by_meaning_with_filters() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).embedder(embedder()).open().expect("open");
    assert_eq!(e.dimension(), 384);
    assert_eq!(e.model().expect("model").id, embed::DEFAULT_MODEL);
    let memories: Vec<Memory> = FACTS.iter().map(|(t, topic)| Memory::new(*t).with_metadata(meta("topic", topic))).collect();
    let ids = e.remember_batch(memories, None).expect("remember");
    assert_eq!(ids.len(), 8);
    assert_eq!(ids[0], Engine::content_id(FACTS[0].0));
    assert_eq!(e.count(), 8);
    let hits = e.recall("a kitten napping in the sunshine", 2, None).expect("recall");
    assert_eq!(hits[0].text.as_deref(), Some(FACTS[0].0));
    let hits = e.recall("how do I write memory-safe concurrent code", 1, None).expect("recall");
    assert_eq!(hits[0].text.as_deref(), Some(FACTS[4].0));
    let cooking = Filter::from_json_str(r#"{"topic": "cooking"}"#).expect("filter");
    let hits = e.recall("money and the economy", 2, Some(&cooking)).expect("recall");
    assert!(hits.iter().all(|h| h.metadata.as_ref().expect("meta")["topic"] == "cooking"));
    let per_query = e.recall_batch(&["interest rates", "pasta sauce"], &SearchOptions::new(1)).expect("batch");
    assert_eq!(per_query[0][0].text.as_deref(), Some(FACTS[2].0));
    assert_eq!(per_query[1][0].text.as_deref(), Some(FACTS[7].0));
    e.close().expect("close");
}

#[test]
fn hybrid_recall_finds_a_rare_word_and_keeps_meaning() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).embedder(embedder()).open().expect("open");
    let mut memories: Vec<Memory> = FACTS.iter().map(|(t, topic)| Memory::new(*t).with_metadata(meta("topic", topic))).collect();
    memories.push(Memory::new("Error E0502 is reported when a value is borrowed mutably while also borrowed immutably.").with_id("e0502"));
    e.remember_batch(memories, None).expect("remember");
    // An error code is a word to BM25; both the keyword and the hybrid search put it first.
    let kw = e.keyword_search("what does E0502 mean", &SearchOptions::new(3)).expect("keyword");
    assert_eq!(kw.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["e0502"]);
    for fusion in [Fusion::default(), Fusion::Weighted { alpha: 0.5 }] {
        let hy = e.recall_hybrid("what does E0502 mean", &SearchOptions::new(3), fusion).expect("hybrid");
        assert_eq!(hy[0].id, "e0502", "{fusion:?}");
        assert!(hy.windows(2).all(|w| w[0].score >= w[1].score));
        // Each distance is the vector distance recall reports.
        let by_vector = e.recall("what does E0502 mean", 9, None).expect("recall");
        for h in &hy {
            let d = by_vector.iter().find(|v| v.id == h.id).expect("in recall").distance;
            assert!((h.distance - d).abs() < 1e-5, "{}: {} vs {d}", h.id, h.distance);
        }
    }
    // A paraphrase with no shared word is still found, by its meaning.
    let hy = e.recall_hybrid("a kitten napping in the sunshine", &SearchOptions::new(1), Fusion::default()).expect("hybrid");
    assert_eq!(hy[0].text.as_deref(), Some(FACTS[0].0));
    // Filters apply to both sides.
    let cooking = Filter::from_json_str(r#"{"topic": "cooking"}"#).expect("filter");
    let hy = e.recall_hybrid_batch(&["E0502", "bread"], &SearchOptions::new(2).filter(&cooking), Fusion::default()).expect("hybrid");
    assert!(hy.iter().flatten().all(|h| h.metadata.as_ref().is_some_and(|m| m["topic"] == "cooking")));
    assert_eq!(hy[1][0].text.as_deref(), Some(FACTS[6].0));
    e.close().expect("close");
}

#[test]
fn the_same_text_is_stored_once_and_embedded_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).embedder(embedder()).open().expect("open");
    let id = e.remember("Remember the milk.", None).expect("remember");
    let inferred = e.cache_stats().inferred;
    assert_eq!(inferred, 1);
    let again = e.remember("Remember the milk.", Some(meta("list", "shopping"))).expect("remember");
    assert_eq!(id, again);
    assert_eq!(e.count(), 1);
    assert_eq!(e.cache_stats().inferred, 1, "a stored text costs no inference");
    assert_eq!(e.get(&id).expect("get").expect("record").metadata, Some(meta("list", "shopping")));
    // An explicit id with a known text: embedded from the cache.
    e.remember_batch(vec![Memory::new("Remember the milk.").with_id("note-1")], None).expect("remember");
    assert_eq!(e.count(), 2);
    assert_eq!(e.cache_stats().inferred, 1);
    // Queries: the second time from memory.
    e.recall("what to buy", 1, None).expect("recall");
    e.recall("what to buy", 1, None).expect("recall");
    let s = e.cache_stats();
    assert_eq!(s.inferred, 2);
    assert!(s.memory_hits >= 2);
    e.close().expect("close");
    // After reopening, from the persisted cache.
    let e = Engine::builder(dir.path()).embedder(embedder()).open().expect("reopen");
    e.recall("what to buy", 1, None).expect("recall");
    let s = e.cache_stats();
    assert_eq!((s.disk_hits, s.inferred), (1, 0));
    // Remembering an explicit id with its unchanged text writes the metadata only.
    e.remember_batch(vec![Memory::new("Remember the milk.").with_id("note-1").with_metadata(meta("v", "2"))], None).expect("remember");
    assert_eq!(e.cache_stats().inferred, 0);
    assert_eq!(e.get("note-1").expect("get").expect("record").metadata, Some(meta("v", "2")));
    e.close().expect("close");
    // A damaged cache file is replaced, not an error.
    std::fs::write(
        dir.path().join(memento::files::EMBEDDING_CACHE),
        b"not a database at all, not even close......................................................................",
    )
    .expect("write");
    let _ = std::fs::remove_file(dir.path().join(format!("{}-wal", memento::files::EMBEDDING_CACHE)));
    let e = Engine::builder(dir.path()).embedder(embedder()).open().expect("reopen");
    assert_eq!(e.recall("what to buy", 1, None).expect("recall")[0].id, id);
    assert_eq!(e.cache_stats().inferred, 1);
}

#[test]
fn a_store_refuses_another_model_and_text_needs_a_model() {
    let dir = tempfile::tempdir().expect("tmp");
    Engine::builder(dir.path()).embedder(embedder()).open().expect("create").close().expect("close");
    // Another model, even of the same dimension.
    match Engine::builder(dir.path()).embedder(other_model(384)).open() {
        Err(Error::ModelMismatch { store, given }) => assert!(store.id == embed::DEFAULT_MODEL && given.id == "other-model", "{store:?} / {given:?}"),
        other => panic!("expected ModelMismatch, got {other:?}"),
    }
    // Without a model: vectors work, text does not.
    let e = Engine::open(dir.path()).expect("open");
    assert_eq!(e.model().expect("model").id, embed::DEFAULT_MODEL);
    assert!(matches!(e.remember("x", None), Err(Error::NoModel)));
    assert!(matches!(e.recall("x", 1, None), Err(Error::NoModel)));
    e.close().expect("close");
    // A vector of another model is refused by search_embedding.
    let e = Engine::builder(dir.path()).embedder(embedder()).open().expect("open");
    let foreign = memento::Embedding { model: other_model(384).identity().clone(), vector: vec![1.0; 384] };
    assert!(matches!(e.search_embedding(&foreign, &SearchOptions::new(1)), Err(Error::ModelMismatch { .. })));
    let own = e.embed("hello").expect("embed");
    assert!(e.search_embedding(&own, &SearchOptions::new(1)).expect("search").is_empty());
    e.close().expect("close");
    // A raw-vector store refuses a model.
    let raw = tempfile::tempdir().expect("tmp");
    Engine::builder(raw.path()).dimension(384).open().expect("create").close().expect("close");
    assert!(matches!(Engine::builder(raw.path()).embedder(embedder()).open(), Err(Error::ModelMismatch { .. })));
    // A model whose dimension is not the one asked for.
    let fresh = tempfile::tempdir().expect("tmp");
    assert!(matches!(Engine::builder(fresh.path().join("s")).dimension(128).embedder(embedder()).open(), Err(Error::InvalidArgument { .. })));
}

#[test]
fn the_model_loads_while_the_store_opens() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).model_dir(model_dir(), OnnxOptions::default()).open().expect("open");
    let id = e.remember("Loaded on a second thread.", None).expect("remember");
    assert_eq!(e.recall("second thread", 1, None).expect("recall")[0].id, id);
    e.close().expect("close");
    let bad = tempfile::tempdir().expect("tmp");
    match Engine::builder(dir.path()).model_dir(bad.path(), OnnxOptions::default()).open() {
        Err(Error::Model { .. }) => {}
        other => panic!("expected Error::Model, got {other:?}"),
    }
}

/// A new store whose dimension is not the model's is refused before anything is created.
#[test]
fn a_new_store_whose_dimension_is_not_the_models_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("store");
    let err = Engine::builder(&dir).embedder(embedder()).dimension(5).open().expect_err("refused");
    assert!(err.to_string().contains("makes 384-dimensional vectors, not 5"), "{err}");
    assert!(!dir.exists(), "the store directory was left behind");
}

/// A record given without a vector is embedded inside the write, through the engine's
/// embedding cache (the bindings' text-only puts go this way): the same vector as `embed`, one
/// inference per distinct text, and no model, no embedding.
#[test]
fn a_record_given_only_its_text_is_embedded_by_the_write_through_the_cache() {
    use memento::{Record, WriteBatch};
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).embedder(embedder()).open().expect("open");
    let before = e.cache_stats().inferred;
    let mut b = WriteBatch::new();
    b.add(Record::from_text("a", FACTS[0].0));
    b.upsert(Record::from_text("b", FACTS[1].0).with_metadata(meta("topic", "animals")));
    b.add(Record::from_text("c", FACTS[0].0));
    e.write(b).expect("write");
    assert_eq!(e.cache_stats().inferred - before, 2, "two distinct texts, one inference each");
    let want = e.embed(FACTS[0].0).expect("embed").vector;
    assert_eq!(e.cache_stats().inferred - before, 2, "the written text's vector is in the cache");
    for id in ["a", "c"] {
        let got = e.get(id).expect("get").expect("stored");
        assert_eq!(got.vector, want, "{id}");
        assert_eq!(got.text.as_deref(), Some(FACTS[0].0));
    }
    assert_eq!(e.recall("a kitten napping in the sunshine", 1, None).expect("recall")[0].id, "a");
    e.close().expect("close");
    let raw = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(raw.path()).dimension(384).open().expect("create");
    assert!(matches!(e.add(Record::from_text("x", "no model here")), Err(Error::NoModel)));
    assert_eq!(e.count(), 0);
    e.close().expect("close");
}
