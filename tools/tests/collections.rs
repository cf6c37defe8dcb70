//! `memento --collection NAME ...` and `memento collections list|create|delete|rename`, run as a
//! user runs them. `MEMENTO_HOME` points into a temporary directory; text collections use the
//! real default model (provisioned by `make setup`).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use memento::{Collections, Engine, Error, Record};
use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn memento(home: &Path, args: &[&str]) -> Run {
    let mut c: Command = assert_cmd::cargo::cargo_bin_cmd!("memento");
    c.env("MEMENTO_HOME", home.join("default")).env_remove("COLUMNS").current_dir(home).args(args);
    let out = c.output().unwrap();
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8(out.stdout).unwrap(), stderr: String::from_utf8(out.stderr).unwrap() }
}

fn ok(home: &Path, args: &[&str]) -> String {
    let r = memento(home, args);
    assert_eq!(r.code, 0, "{args:?}\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.stderr, "", "{args:?}");
    r.stdout
}

fn fails(home: &Path, args: &[&str]) -> String {
    let r = memento(home, args);
    assert_eq!(r.code, 1, "{args:?}\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.starts_with("error: ") && r.stderr.lines().count() == 1, "{args:?}: {}", r.stderr);
    r.stderr
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not one JSON document ({e}): {s}"))
}

fn names(home: &Path, root: &str) -> Vec<String> {
    let list = json(&ok(home, &["--store", root, "--json", "collections", "list"]));
    list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn collections_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let root = home.join("root");
    let r = root.to_str().unwrap();
    assert_eq!(ok(home, &["--store", r, "--json", "collections", "list"]).trim(), "[]");
    assert!(ok(home, &["--store", r, "collections", "list"]).starts_with("no collections"));

    let made = json(&ok(home, &["--store", r, "--json", "collections", "create", "vecs", "--dimension", "3", "--metric", "l2"]));
    assert_eq!((made["collection"].as_str(), made["dimension"].as_u64(), made["metric"].as_str()), (Some("vecs"), Some(3), Some("l2")));
    assert!(made["model"].is_null());
    assert!(ok(home, &["--store", r, "collections", "create", "other", "-d", "2"]).contains("raw-vector collection"));
    assert!(fails(home, &["--store", r, "collections", "create", "vecs", "-d", "3"]).contains("already exists"));
    assert!(fails(home, &["--store", r, "collections", "create", "a..b", "-d", "3"]).contains("must not contain"));

    ok(home, &["--store", r, "--collection", "vecs", "add", "--id", "x", "--vector", "[1, 2, 3]"]);
    let hits = json(&ok(home, &["--store", r, "--collection", "vecs", "--json", "search", "[1, 2, 3]"]));
    assert_eq!(hits[0]["id"], "x");
    let list = json(&ok(home, &["--store", r, "--json", "collections", "list"]));
    assert_eq!(list[1]["name"], "vecs");
    assert_eq!((list[1]["dimension"].as_u64(), list[1]["count"].as_u64()), (Some(3), Some(1)));
    assert!(ok(home, &["--store", r, "collections", "list"]).contains("vecs\t1 records\t3 dimensions, l2, no model"));

    assert_eq!(json(&ok(home, &["--store", r, "--json", "collections", "rename", "vecs", "moved"]))["to"], "moved");
    assert_eq!(names(home, r), ["moved", "other"]);
    assert!(fails(home, &["--store", r, "collections", "rename", "vecs", "again"]).contains("no collection named \"vecs\""));
    assert_eq!(json(&ok(home, &["--store", r, "--json", "collections", "delete", "other"]))["deleted"], "other");
    assert!(!root.join("other").exists());
    assert_eq!(names(home, r), ["moved"]);
    // The same root, through the library.
    let e = Collections::open(&root).unwrap().get("moved").unwrap();
    assert_eq!(e.count(), 1);
    // Held open: delete and rename are refused.
    assert!(fails(home, &["--store", r, "collections", "delete", "moved"]).contains("is in use"));
    assert!(fails(home, &["--store", r, "collections", "rename", "moved", "again"]).contains("is in use"));
    e.close().unwrap();
    ok(home, &["--store", r, "collections", "delete", "moved"]);
    assert!(names(home, r).is_empty());
}

#[test]
fn the_collection_option() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let root = home.join("root");
    let r = root.to_str().unwrap();
    // Read commands need the collection.
    assert!(fails(home, &["--store", r, "--collection", "notes", "get", "x"]).contains("there is no collection \"notes\""));
    assert!(!root.exists(), "a read command creates nothing");
    // init creates it with its options.
    ok(home, &["--store", r, "--collection", "vecs", "init", "--dimension", "2"]);
    assert!(fails(home, &["--store", r, "--collection", "vecs", "init", "--dimension", "2"]).contains("already exists"));
    ok(home, &["--store", r, "--collection", "vecs", "add", "--id", "p", "--vector", "[0.5, 1]"]);
    let got = json(&ok(home, &["--store", r, "--collection", "vecs", "--json", "get", "p"]));
    assert_eq!(got[0]["id"], "p");
    ok(home, &["--store", r, "--collection", "vecs", "delete", "p"]);
    assert_eq!(Engine::open(root.join("vecs")).unwrap().count(), 0);
    // The root is not a store, and a store is not a root.
    assert!(fails(home, &["--store", r, "stats"]).contains("is a directory of collections"));
    let store = home.join("store");
    ok(home, &["--store", store.to_str().unwrap(), "init", "--dimension", "2"]);
    assert!(fails(home, &["--store", store.to_str().unwrap(), "--collection", "vecs", "add", "--id", "a", "--vector", "[1, 1]"]).contains("is a store"));
    assert!(fails(home, &["--store", r, "--collection", "1.2.3.4", "stats"]).contains("IPv4"));
}

#[test]
fn remember_creates_a_text_collection_in_the_default_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    ok(home, &["--collection", "notes", "remember", "The meeting moved to Thursday at 10."]);
    let root: PathBuf = home.join("default");
    assert!(root.join("memento.collections").is_file());
    let hits = json(&ok(home, &["--collection", "notes", "--json", "recall", "when is the meeting?"]));
    assert!(hits[0]["text"].as_str().unwrap().contains("Thursday"));
    let list = json(&ok(home, &["--json", "collections", "list"]));
    assert_eq!((list[0]["name"].as_str(), list[0]["model"].as_str(), list[0]["count"].as_u64()), (Some("notes"), Some("all-minilm-l6-v2"), Some(1)));
    // A raw-vector collection beside it, written through the library, listed by the binary.
    let c = Collections::open(&root).unwrap();
    let v = c.create("vectors", |b| b.dimension(2)).unwrap();
    v.add(Record::new("a", vec![1.0, 0.0])).unwrap();
    v.close().unwrap();
    assert!(matches!(c.delete("nothing"), Err(Error::CollectionNotFound { .. })));
    let list = json(&ok(home, &["--json", "collections", "list"]));
    assert_eq!(list.as_array().unwrap().len(), 2);
}
