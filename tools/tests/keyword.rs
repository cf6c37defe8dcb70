//! `memento search --keyword`, `memento search VECTOR --keyword` and `memento recall --mode`,
//! run as a user would.

#![allow(clippy::unwrap_used)]

mod common;

use common::{hit_ids as ids, ok, run, Home};

#[test]
fn keyword_and_hybrid_searches_on_a_raw_vector_store_with_texts() {
    let h = Home::new();
    ok(h.on("v", &["init", "--dimension", "2"]));
    let file = h.write(
        "r.jsonl",
        concat!(
            "{\"id\": \"close\", \"vector\": [1, 0], \"text\": \"generator.close() raises GeneratorExit\", \"metadata\": {\"m\": \"gen\"}}\n",
            "{\"id\": \"gil\", \"vector\": [0, 1], \"text\": \"the global interpreter lock\", \"metadata\": {\"m\": \"threads\"}}\n",
            "{\"id\": \"gzip\", \"vector\": [0.1, 0.9], \"text\": \"compress a file with gzip\", \"metadata\": {\"m\": \"files\"}}\n",
        ),
    );
    ok(h.on("v", &["add", "--file", file.to_str().unwrap()]));
    // Words only: stemming ("closed" finds "close"), punctuation and FTS5 syntax are harmless.
    assert_eq!(ids(&ok(h.on("v", &["search", "--keyword", "what happens when a generator is closed?", "--json"]))), ["close"]);
    assert_eq!(ids(&ok(h.on("v", &["search", "--keyword", "NEAR(\"lock* AND", "--json"]))), ["gil"]);
    let table = ok(h.on("v", &["search", "--keyword", "gzip"]));
    assert!(table.lines().next().unwrap().contains("score") && table.contains("compress a file with gzip"), "{table}");
    assert_eq!(ok(h.on("v", &["search", "--keyword", "zebra"])).trim(), "no results");
    // A filter, and recall --mode keyword, which needs no model.
    assert_eq!(ids(&ok(h.on("v", &["search", "--keyword", "lock gzip", "--where", r#"{"m": "files"}"#, "--json"]))), ["gzip"]);
    assert_eq!(ids(&ok(h.on("v", &["recall", "--mode", "keyword", "interpreter", "--json"]))), ["gil"]);
    // Both: hybrid. The vector [0, 1] ranks gil, gzip, close; the words "compress" rank gzip.
    let both = ids(&ok(h.on("v", &["search", "[0, 1]", "--keyword", "compress", "--json"])));
    assert_eq!(both, ["gzip", "gil", "close"]);
    // Neither: a usage error.
    let r = run(h.on("v", &["search"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    // Bad fusion constants are usage errors.
    let r = run(h.on("v", &["recall", "--mode", "hybrid", "--fusion", "weighted", "--alpha", "2", "x"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("alpha"), "{}", r.stderr);
}

#[test]
fn recall_modes_with_the_real_model() {
    let h = Home::new();
    ok(h.on("t", &["remember", "Error E0502: cannot borrow as mutable because it is also borrowed as immutable.", "The cat sleeps on the warm laptop."]));
    for mode in ["vector", "keyword", "hybrid"] {
        let hits = ids(&ok(h.on("t", &["recall", "--mode", mode, "E0502", "-k", "1", "--json"])));
        assert_eq!(hits.len(), 1, "{mode}");
    }
    let kw = ok(h.on("t", &["recall", "--mode", "hybrid", "--fusion", "weighted", "--alpha", "0.2", "E0502", "-k", "1"]));
    assert!(kw.contains("E0502"), "{kw}");
}
