//! Keyword and hybrid search through the engine, on stores of vectors with texts (no model):
//! answers, filters, both fusions computed by hand, writes reflected, and the full-text index
//! rebuilt with the mirror (deleted, or damaged) and seen by a reader in another engine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use memento::{Engine, Filter, Fusion, Metadata, Metric, Record, SearchHit, SearchOptions, WriteBatch};
use serde_json::json;

const TEXTS: [(&str, &str, [f32; 2], &str); 6] = [
    ("close", "generator.close() raises GeneratorExit inside the generator", [1.0, 0.0], "gen"),
    ("send", "send() resumes the generator and sends a value into it", [0.9, 0.1], "gen"),
    ("gil", "the global interpreter lock lets one thread run Python bytecode", [0.0, 1.0], "threads"),
    ("next", "next() retrieves the next item from an iterator", [0.8, 0.2], "iter"),
    ("gzip", "compress a file with gzip", [0.1, 0.9], "files"),
    ("none", "", [0.5, 0.5], "files"),
];

fn store(dir: &Path) -> Engine {
    let e = Engine::builder(dir).dimension(2).metric(Metric::Cosine).open().unwrap();
    let mut b = WriteBatch::new();
    for (id, text, v, module) in TEXTS {
        let mut m = Metadata::new();
        m.insert("module".into(), json!(module));
        let r = Record::new(id, v.to_vec()).with_metadata(m);
        b.add(if text.is_empty() { r } else { r.with_text(text) });
    }
    e.write(b).unwrap();
    e
}

fn ids(hits: &[SearchHit]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

#[test]
fn keyword_search_ranks_by_bm25_with_filters_and_any_input() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path());
    let hits = e.keyword_search("What happens when a generator is closed?", &SearchOptions::new(10)).unwrap();
    // "closed" stems to "close": only the first text has both words.
    assert_eq!(ids(&hits)[..2], ["close", "send"]);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score) && hits.iter().all(|h| h.score > 0.0 && h.distance == -h.score));
    assert_eq!(hits[0].text.as_deref(), Some(TEXTS[0].1));
    assert_eq!(hits[0].metadata.as_ref().and_then(|m| m.get("module")), Some(&json!("gen")));
    // A filter applies before the k best are taken.
    let f = Filter::from_json_str(r#"{"module": {"$ne": "gen"}}"#).unwrap();
    assert_eq!(ids(&e.keyword_search("the next generator", &SearchOptions::new(1).filter(&f)).unwrap()), ["next"]);
    // No word, only punctuation, FTS5 syntax: answers, never errors.
    for q in ["", "?!", "\"", "NEAR(x", "a* AND -b:c ^d", "(((", "📦"] {
        e.keyword_search(q, &SearchOptions::new(3)).unwrap_or_else(|err| panic!("{q:?}: {err}"));
    }
    assert!(e.keyword_search("", &SearchOptions::new(3)).unwrap().is_empty());
    // ids_only leaves out the text and metadata.
    let h = e.keyword_search("gzip", &SearchOptions::new(3).ids_only()).unwrap();
    assert_eq!((ids(&h), h[0].text.is_none(), h[0].metadata.is_none()), (vec!["gzip"], true, true));
    assert!(e.keyword_search("gzip", &SearchOptions::new(0)).unwrap().is_empty());
}

#[test]
fn hybrid_search_fuses_both_rankings() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path());
    // Vector ranking of [0, 1] (cosine): gil, gzip, none, next, send, close.
    // Keyword ranking of "compress the interpreter lock": gzip ("compress") and gil (two words).
    let q = [0.0f32, 1.0];
    let rrf = e.search_hybrid(&q, "compress the interpreter lock", &SearchOptions::new(3), Fusion::Rrf { k: 60.0 }).unwrap();
    let kw = e.keyword_search("compress the interpreter lock", &SearchOptions::new(10)).unwrap();
    assert_eq!(ids(&kw), ["gil", "gzip"]);
    // gil: 1/61 + 1/61; gzip: 1/62 + 1/62; none: 1/63.
    assert_eq!(ids(&rrf), ["gil", "gzip", "none"]);
    assert!((f64::from(rrf[0].score) - 2.0 / 61.0).abs() < 1e-6 && (f64::from(rrf[2].score) - 1.0 / 63.0).abs() < 1e-6);
    // Each hit's distance is its vector distance.
    let exact = e.search(&q, 6, None).unwrap();
    for h in &rrf {
        let want = exact.iter().find(|x| x.id == h.id).unwrap().distance;
        assert!((h.distance - want).abs() < 1e-6, "{}: {} vs {want}", h.id, h.distance);
    }
    // Weighted, all on the keyword side: the keyword order, then the rest by id. Min-max
    // normalisation gives the last keyword candidate 0, like the records it did not find.
    let w = e.search_hybrid(&q, "the next generator", &SearchOptions::new(6), Fusion::Weighted { alpha: 0.0 }).unwrap();
    let kw = e.keyword_search("the next generator", &SearchOptions::new(6)).unwrap();
    assert_eq!(kw.len(), 3);
    assert_eq!(ids(&w)[..2], ids(&kw)[..2]);
    assert_eq!((w[0].score, w[1].score < 1.0), (1.0, true));
    assert!(w[2..].iter().all(|h| h.score == 0.0));
    assert_eq!(ids(&w)[2..], ["gil", "gzip", "none", "send"]);
    // A hit only the keyword side found gets its true vector distance: "close" is last by vector.
    let only_kw = e.search_hybrid(&q, "GeneratorExit", &SearchOptions::new(1), Fusion::Weighted { alpha: 0.0 }).unwrap();
    assert_eq!(ids(&only_kw), ["close"]);
    assert!((only_kw[0].distance - 1.0).abs() < 1e-6);
    // A filter applies to both sides.
    let f = Filter::from_json_str(r#"{"module": "files"}"#).unwrap();
    let filtered = e.search_hybrid(&q, "interpreter lock", &SearchOptions::new(5).filter(&f), Fusion::default()).unwrap();
    assert_eq!(ids(&filtered), ["gzip", "none"]);
    // Bad fusion constants and a wrong dimension are refused.
    for bad in [Fusion::Rrf { k: 0.0 }, Fusion::Rrf { k: f64::NAN }, Fusion::Weighted { alpha: 1.5 }, Fusion::Weighted { alpha: f64::NAN }] {
        assert!(matches!(e.search_hybrid(&q, "x", &SearchOptions::new(1), bad), Err(memento::Error::InvalidArgument { .. })), "{bad:?}");
    }
    assert!(matches!(e.search_hybrid(&[1.0], "x", &SearchOptions::new(1), Fusion::default()), Err(memento::Error::DimensionMismatch { .. })));
    // A text query without a model.
    assert!(matches!(e.recall_hybrid("x", &SearchOptions::new(1), Fusion::default()), Err(memento::Error::NoModel)));
}

#[test]
fn writes_reach_the_index_and_it_survives_reopen_rebuild_and_damage() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path());
    let mut b = WriteBatch::new();
    b.update_text("gzip", Some("decompress a bz2 archive".into())).delete("gil").upsert(Record::new("lock", vec![0.0, 1.0]).with_text("a lock for threads"));
    e.write(b).unwrap();
    let kw = |e: &Engine, q: &str| -> Vec<String> { e.keyword_search(q, &SearchOptions::new(10)).unwrap().into_iter().map(|h| h.id).collect() };
    assert!(kw(&e, "gzip").is_empty());
    assert_eq!(kw(&e, "archives"), ["gzip"]);
    assert_eq!(kw(&e, "lock"), ["lock"]);
    e.checkpoint().unwrap();
    e.close().unwrap();

    // Reopened; then with the mirror deleted (rebuilt from the vector file and the log).
    let e = Engine::open(dir.path()).unwrap();
    assert_eq!(kw(&e, "lock"), ["lock"]);
    e.close().unwrap();
    for f in [memento::files::MIRROR.to_owned(), format!("{}-wal", memento::files::MIRROR), format!("{}-shm", memento::files::MIRROR)] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    let e = Engine::open(dir.path()).unwrap();
    assert_eq!(kw(&e, "archives"), ["gzip"]);
    e.check_integrity().unwrap();

    // A reader in another engine sees the writer's commits in its keyword searches.
    let reader = Engine::open_read_only(dir.path()).unwrap();
    e.upsert(Record::new("new", vec![1.0, 1.0]).with_text("a fresh archive")).unwrap();
    let mut got = kw(&reader, "archive");
    got.sort();
    assert_eq!(got, ["gzip", "new"]);
    drop(reader);
    e.close().unwrap();

    // The full-text index made to disagree with the texts, through the trailer-writing VFS
    // (so every page is sound and only the index is wrong): the inspector reports it, the
    // engine's own check too, and the inspector's repair rebuilds the mirror.
    {
        let vfs = memento::mirror_vfs().unwrap();
        let c = rusqlite::Connection::open_with_flags_and_vfs(dir.path().join(memento::files::MIRROR), rusqlite::OpenFlags::default(), vfs).unwrap();
        let (slot, text): (i64, String) = c.query_row("SELECT slot, text FROM records WHERE id = 'lock'", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        c.execute("INSERT INTO records_fts (records_fts, rowid, text) VALUES ('delete', ?1, ?2)", rusqlite::params![slot, text]).unwrap();
        c.execute("INSERT INTO records_fts (rowid, text) VALUES (?1, 'an unrelated text')", [slot]).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let report = memento::inspect::Inspector::open(dir.path()).unwrap().verify().unwrap();
    let errors: Vec<String> = report.findings.iter().filter(|f| f.severity == memento::inspect::Severity::Error).map(|f| f.message.clone()).collect();
    assert!(errors.iter().any(|m| m.contains("full-text index")), "{:?}", report.findings);
    let e = Engine::open(dir.path()).unwrap();
    assert_eq!(kw(&e, "unrelated"), ["lock"], "the damaged index answers as it is until it is found");
    assert!(e.check_integrity().unwrap_err().to_string().contains("full-text index"));
    e.close().unwrap();
    memento::inspect::rebuild_mirror(dir.path()).unwrap();
    let e = Engine::open(dir.path()).unwrap();
    e.check_integrity().unwrap();
    assert!(kw(&e, "unrelated").is_empty());
    assert_eq!(kw(&e, "lock"), ["lock"]);
}
