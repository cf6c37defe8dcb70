//! Memory scopes on the command line: `--user-id`, `--agent-id`, `--run-id` stamp what is stored
//! and narrow what is read, searched and deleted.

#![allow(clippy::unwrap_used)]

mod common;

use common::{hit_ids, ok, run, Home};
use serde_json::Value;

/// The ids of a `--json` result list, sorted.
fn ids(out: &str) -> Vec<String> {
    let mut ids = hit_ids(out);
    ids.sort();
    ids
}

#[test]
fn scopes_stamp_writes_and_narrow_reads() {
    let h = Home::new();
    ok(h.on("s", &["init", "--dimension", "2"]));
    ok(h.on("s", &["add", "--id", "a1", "--vector", "[1, 0]", "--user-id", "alice", "--run-id", "r1", "alice likes tea"]));
    ok(h.on("s", &["add", "--id", "a2", "--vector", "[0.9, 0.1]", "--user-id", "alice", "--run-id", "r2", "alice likes jazz"]));
    ok(h.on("s", &["add", "--id", "b1", "--vector", "[1, 0]", "--user-id", "bob", "--meta", r#"{"topic": "drinks"}"#, "bob likes tea"]));
    // Stamped as metadata, beside --meta.
    let got: Value = serde_json::from_str(&ok(h.on("s", &["get", "b1", "--json"]))).unwrap();
    assert_eq!(got[0]["metadata"], serde_json::json!({"user_id": "bob", "topic": "drinks"}));
    // Reads, searches and keyword searches see only the scope.
    assert_eq!(ids(&ok(h.on("s", &["get", "--user-id", "alice", "--json"]))), ["a1", "a2"]);
    assert_eq!(ids(&ok(h.on("s", &["get", "--user-id", "alice", "--run-id", "r2", "--json"]))), ["a2"]);
    assert_eq!(ids(&ok(h.on("s", &["search", "[1, 0]", "--user-id", "bob", "--json"]))), ["b1"]);
    assert_eq!(ids(&ok(h.on("s", &["search", "--keyword", "tea", "--user-id", "alice", "--json"]))), ["a1"]);
    assert_eq!(ids(&ok(h.on("s", &["get", "--user-id", "alice", "--where", r#"{"run_id": "r1"}"#, "--json"]))), ["a1"]);
    // Metadata that contradicts the scope is refused, naming the record.
    let f = h.write("r.jsonl", "{\"id\": \"x\", \"vector\": [0, 1], \"metadata\": {\"user_id\": \"carol\"}}\n");
    let r = run(h.on("s", &["add", "--file", f.to_str().unwrap(), "--user-id", "alice"]));
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("r.jsonl:1") && r.stderr.contains("user_id"), "{}", r.stderr);
    let r = run(h.on("s", &["get", "--user-id", "", "--json"]));
    assert_ne!(r.code, 0);
    // Ids and a scope together are a usage error; a scoped delete takes only the scope.
    assert_eq!(run(h.on("s", &["get", "a1", "--user-id", "alice"])).code, 2);
    ok(h.on("s", &["delete", "--user-id", "alice", "--run-id", "r1"]));
    assert_eq!(ids(&ok(h.on("s", &["get", "--where", "{}", "--json"]))), ["a2", "b1"]);
}
