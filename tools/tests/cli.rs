//! The `memento` binary run as a user runs it, on stores in temporary directories.
//! `MEMENTO_HOME` always points into a temporary directory, so the real default store is never
//! touched. Text stores use the real default model (provisioned by `make setup`).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;
use memento::Engine;
use serde_json::Value;

/// A temporary home for one test: the default store is `home/default`, other stores beside it.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home { dir: tempfile::tempdir().unwrap() }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn default_store(&self) -> PathBuf {
        self.path("default")
    }
    /// `memento ARGS` with the default store in this home.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = assert_cmd::cargo::cargo_bin_cmd!("memento");
        c.env("MEMENTO_HOME", self.default_store()).env_remove("COLUMNS").current_dir(self.dir.path()).args(args);
        c
    }
    /// `memento --store STORE ARGS`.
    fn on(&self, store: &str, args: &[&str]) -> Command {
        let mut c = self.cmd(&["--store", store]);
        c.args(args);
        c
    }
    fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).unwrap();
        p
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(mut c: Command) -> Run {
    let out = c.output().unwrap();
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8(out.stdout).unwrap(), stderr: String::from_utf8(out.stderr).unwrap() }
}

/// Runs and expects status 0 with nothing on stderr; returns stdout.
fn ok(c: Command) -> String {
    let r = run(c);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.stderr, "", "stderr of a successful run");
    r.stdout
}

/// Runs and expects `code`, with exactly one line on stderr starting with `error: `.
fn fails(c: Command, code: i32) -> String {
    let r = run(c);
    assert_eq!(r.code, code, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.starts_with("error: "), "stderr: {}", r.stderr);
    if code == 1 {
        assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    }
    r.stderr
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not one JSON document ({e}): {s}"))
}

#[test]
fn raw_vector_store_init_add_search_get_update_delete_stats_checkpoint() {
    let h = Home::new();
    let out = ok(h.on("v", &["init", "--dimension", "3", "--metric", "l2"]));
    assert!(out.contains("created a raw-vector store (3 dimensions, l2)"), "{out}");
    fails(h.on("v", &["init", "--dimension", "3"]), 1);

    ok(h.on("v", &["add", "--id", "a", "--vector", "[1, 0, 0]", "--meta", r#"{"k": "x"}"#, "the first"]));
    let file = h.write(
        "more.jsonl",
        "{\"id\": \"b\", \"vector\": [0, 1, 0], \"text\": \"the second\"}\n\n{\"id\": \"c\", \"vector\": [0, 0, 1], \"metadata\": {\"k\": \"y\"}}\n",
    );
    let summary = json(&ok(h.on("v", &["add", "--json", "--file", file.to_str().unwrap()])));
    assert_eq!((summary["new"].as_u64(), summary["records"].as_u64(), summary["embedded"].as_u64()), (Some(2), Some(2), Some(0)));
    // The same file again changes nothing.
    let again = json(&ok(h.on("v", &["--json", "add", "-f", file.to_str().unwrap()])));
    assert_eq!((again["unchanged"].as_u64(), again["commits"].as_u64()), (Some(2), Some(0)));

    let table = ok(h.on("v", &["search", "[1, 0.1, 0]", "-k", "2"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("distance") && lines[0].contains("id"), "{table}");
    assert!(lines[1].trim_start().starts_with("1  0.0100") && lines[1].contains(" a ") && lines[1].contains(r#"{"k":"x"}"#), "{table}");
    assert_eq!(lines[2].trim(), "the first");
    let hits = json(&ok(h.on("v", &["search", "[1, 0.1, 0]", "-k", "2", "--json"])));
    assert_eq!(hits.as_array().unwrap().len(), 2);
    assert_eq!(hits[0]["id"], "a");
    assert_eq!(hits[1]["id"], "b");
    assert_eq!(hits[0]["rank"], 1);
    assert!((hits[1]["distance"].as_f64().unwrap() - 1.81).abs() < 1e-6);
    let filtered = json(&ok(h.on("v", &["search", "[1, 0, 0]", "--where", r#"{"k": "y"}"#, "--json"])));
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_eq!(filtered[0]["id"], "c");

    let got = json(&ok(h.on("v", &["get", "a", "c", "--vector", "--json"])));
    assert_eq!(got[0]["vector"], serde_json::json!([1.0, 0.0, 0.0]));
    assert_eq!(got[0]["text"], "the first");
    assert_eq!(got[1]["metadata"]["k"], "y");
    let text = ok(h.on("v", &["get", "b"]));
    assert!(text.contains("id        b") && text.contains("text      the second") && text.contains("3 dimensions"), "{text}");

    let out = ok(h.on("v", &["update", "a", "--text", "the first, again", "--meta", r#"{"z": 1, "k": null}"#, "--merge"]));
    assert!(out.contains("updated a: text (the vector is kept), metadata"), "{out}");
    let a = json(&ok(h.on("v", &["get", "a", "--json", "--vector"])));
    assert_eq!(a[0]["text"], "the first, again");
    assert_eq!(a[0]["metadata"], serde_json::json!({"z": 1}));
    assert_eq!(a[0]["vector"], serde_json::json!([1.0, 0.0, 0.0]));
    ok(h.on("v", &["update", "a", "--clear-meta"]));
    assert_eq!(json(&ok(h.on("v", &["get", "a", "--json"])))[0]["metadata"], Value::Null);

    // A missing id deletes nothing unless --missing-ok.
    let err = fails(h.on("v", &["delete", "b", "nope"]), 1);
    assert!(err.contains("nothing was deleted") && err.contains("\"nope\""), "{err}");
    // An id no record can have is a bad argument even with --missing-ok: nothing is deleted.
    let long = "y".repeat(1025);
    let err = fails(h.on("v", &["delete", "b", &long, "--missing-ok"]), 1);
    assert!(err.contains("1 to 1024 bytes"), "{err}");
    assert!(ok(h.on("v", &["delete", "b", "nope", "--missing-ok"])).contains("deleted 1 record (1 not found)"));
    assert_eq!(json(&ok(h.on("v", &["delete", "--where", r#"{"k": "y"}"#, "--json"])))["deleted"], 1);

    let stats = json(&ok(h.on("v", &["stats", "--json"])));
    assert_eq!(stats["records"], 1);
    assert_eq!(stats["deleted"], 2);
    assert_eq!(stats["dimension"], 3);
    assert_eq!(stats["metric"], "l2");
    assert_eq!(stats["model"], Value::Null);
    assert!(stats["vector_file_bytes"].as_u64().unwrap() > 0 && stats["pages"].as_u64().unwrap() > 0);
    let text = ok(h.on("v", &["stats"]));
    for field in ["records          1 (2 deleted", "model            none", "WAL", "vector file", "mirror"] {
        assert!(text.contains(field), "{field} in {text}");
    }
    // A closed store keeps a small WAL (FORMAT.md: replayed at open), so the first checkpoint
    // has the commits to write, and a second one nothing.
    assert!(ok(h.on("v", &["checkpoint"])).contains("vectors written to the vector file"));
    assert!(ok(h.on("v", &["checkpoint"])).contains("nothing to do"));
    let cp = json(&ok(h.on("v", &["checkpoint", "--json"])));
    assert_eq!(cp["vectors_written"], 0);
}

#[test]
fn text_store_remember_and_recall_with_the_real_model() {
    let h = Home::new();
    let out = ok(h.on("t", &["remember", "The meeting moved to Thursday at 10.", "Buy oat milk and bread.", "The cat sleeps on the warm laptop."]));
    assert!(out.contains("remembered 3 texts") && out.contains("3 new") && out.contains("3 embedded"), "{out}");

    let table = ok(h.on("t", &["recall", "when", "is", "the", "meeting?", "-k", "2"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("score"), "{table}");
    assert_eq!(lines[2].trim(), "The meeting moved to Thursday at 10.", "{table}");
    let hits = json(&ok(h.on("t", &["recall", "groceries to buy", "--json"])));
    assert_eq!(hits.as_array().unwrap().len(), 3);
    assert_eq!(hits[0]["text"], "Buy oat milk and bread.");
    assert_eq!(hits[0]["id"].as_str().unwrap(), Engine::content_id("Buy oat milk and bread."));
    // The default mode is hybrid: the score is the fused one (found by both sides here:
    // 1/61 + 1/61), the distance the vector distance.
    let score = hits[0]["score"].as_f64().unwrap();
    assert!((score - 2.0 / 61.0).abs() < 1e-6 && hits[0]["distance"].as_f64().unwrap() < 0.7, "{hits}");
    // By meaning only, the score is the cosine similarity.
    let hits = json(&ok(h.on("t", &["recall", "--mode", "vector", "groceries to buy", "--json"])));
    let score = hits[0]["score"].as_f64().unwrap();
    assert!((score - (1.0 - hits[0]["distance"].as_f64().unwrap())).abs() < 1e-6 && score > 0.3, "{hits}");

    // The same text again: stored once, embedded once.
    let again = json(&ok(h.on("t", &["remember", "--json", "Buy oat milk and bread."])));
    assert_eq!((again["unchanged"].as_u64(), again["embedded"].as_u64(), again["commits"].as_u64()), (Some(1), Some(0), Some(0)));
    let single = ok(h.on("t", &["remember", "Buy oat milk and bread."]));
    assert_eq!(single.trim(), format!("remembered {} (unchanged)", Engine::content_id("Buy oat milk and bread.")));
    // New metadata for a stored text is written without embedding it again.
    let tagged = json(&ok(h.on("t", &["remember", "--json", "--meta", r#"{"list": "shopping"}"#, "Buy oat milk and bread."])));
    assert_eq!((tagged["updated"].as_u64(), tagged["embedded"].as_u64()), (Some(1), Some(0)));
    let only = json(&ok(h.on("t", &["recall", "something to eat", "--where", r#"{"list": "shopping"}"#, "--json"])));
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["metadata"]["list"], "shopping");
    let contains = json(&ok(h.on("t", &["recall", "animals", "--where", r#"{"$contains": "laptop"}"#, "--json"])));
    assert_eq!(contains[0]["text"], "The cat sleeps on the warm laptop.");

    // A new text for an id is embedded again: the vector follows the text.
    ok(h.on("t", &["remember", "--id", "note", "The dentist appointment is on Monday."]));
    let out = ok(h.on("t", &["update", "note", "--text", "Pay the electricity bill."]));
    assert!(out.contains("text (embedded again)"), "{out}");
    let top = json(&ok(h.on("t", &["recall", "invoice for power", "-k", "1", "--json"])));
    assert_eq!(top[0]["id"], "note");

    let stats = json(&ok(h.on("t", &["stats", "--json"])));
    assert_eq!(stats["model"]["id"], "all-minilm-l6-v2");
    assert_eq!(stats["model"]["dimension"], 384);
    assert_eq!(stats["records"], 4);
    assert_eq!(stats["metric"], "cosine");

    // Vectors go to `add`, not `remember`; text cannot go to a raw-vector store.
    let vec384 = format!("[{}]", vec!["0.5"; 384].join(","));
    let f = h.write("v.jsonl", &format!("{{\"id\": \"v\", \"vector\": {vec384}}}\n"));
    let err = fails(h.on("t", &["remember", "--file", f.to_str().unwrap()]), 1);
    assert!(err.contains("v.jsonl:1") && err.contains("memento add"), "{err}");
    ok(h.on("r", &["init", "--dimension", "2"]));
    let err = fails(h.on("r", &["recall", "anything"]), 1);
    assert!(err.contains("raw-vector store"), "{err}");
}

/// Floats of every kind an `f32` can be (finite): tiny, subnormal, huge, negative, with long
/// shortest representations. A fixed xorshift, so a failure reproduces.
fn awkward_floats(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let x = match s % 4 {
            0 => f32::from_bits((s >> 16) as u32),
            1 => ((s >> 11) as f64 / (1u64 << 53) as f64) as f32 * 2.0 - 1.0,
            2 => f32::from_bits(((s >> 20) as u32) & 0x007f_ffff),
            _ => (1.0 / ((s >> 40) as f64 + 1.0)) as f32,
        };
        // Finite, and small enough that a 16-float vector stays under the norm limit of the dot
        // and l2 metrics (1e18, `memento::limits`).
        if x.is_finite() && x.abs() <= 1e16 {
            out.push(x);
        }
    }
    out
}

fn vector_text(v: &[f32]) -> String {
    format!("[{}]", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","))
}

fn records_by_id(dir: &Path) -> Vec<memento::Record> {
    let e = Engine::open(dir).unwrap();
    let mut all: Vec<memento::Record> = e.iter().map(|r| r.unwrap()).collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    e.close().unwrap();
    all
}

fn assert_same_bits(a: &[memento::Record], b: &[memento::Record]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((&x.id, &x.text, &x.metadata), (&y.id, &y.text, &y.metadata));
        let xb: Vec<u32> = x.vector.iter().map(|f| f.to_bits()).collect();
        let yb: Vec<u32> = y.vector.iter().map(|f| f.to_bits()).collect();
        assert_eq!(xb, yb, "vector of {}", x.id);
    }
}

#[test]
fn export_then_import_is_exact() {
    let h = Home::new();
    // A raw-vector store (L2 keeps vectors as given) of awkward floats.
    ok(h.on("a", &["init", "--dimension", "16", "--metric", "l2"]));
    let floats = awkward_floats(16 * 300, 0x9e37_79b9_7f4a_7c15);
    let mut jsonl = String::new();
    for (i, v) in floats.chunks(16).enumerate() {
        let meta = if i % 3 == 0 {
            format!(r#", "metadata": {{"i": {i}, "name": "r\u00e9cord \"{i}\"", "f": 0.1, "nested": {{"l": [1, null]}}}}"#)
        } else {
            String::new()
        };
        let text = if i % 2 == 0 { format!(r#", "text": "line\nbreak {i} ✓""#) } else { String::new() };
        jsonl.push_str(&format!("{{\"id\": \"r{i:04}\", \"vector\": {}{meta}{text}}}\n", vector_text(v)));
    }
    let input = h.write("in.jsonl", &jsonl);
    ok(h.on("a", &["add", "--file", input.to_str().unwrap(), "--batch", "128"]));
    // What was stored is exactly what was written.
    let a = records_by_id(&h.path("a"));
    for (i, r) in a.iter().enumerate() {
        let want: Vec<u32> = floats[i * 16..(i + 1) * 16].iter().map(|f| f.to_bits()).collect();
        assert_eq!(r.vector.iter().map(|f| f.to_bits()).collect::<Vec<_>>(), want, "{}", r.id);
    }

    let export = ok(h.on("a", &["export"]));
    let header = json(export.lines().next().unwrap());
    assert_eq!(
        (header["memento_export"].as_u64(), header["dimension"].as_u64(), header["metric"].as_str(), header["count"].as_u64()),
        (Some(1), Some(16), Some("l2"), Some(300))
    );
    assert_eq!(export.lines().count(), 301);
    let file = h.write("a.jsonl", &export);
    // Import creates the store from the header.
    let out = ok(h.on("b", &["import", file.to_str().unwrap()]));
    assert!(out.contains("imported 300 records") && out.contains("300 new"), "{out}");
    assert_same_bits(&a, &records_by_id(&h.path("b")));
    assert_eq!(ok(h.on("b", &["export"])), export, "a second export is the same text");
    // Importing again changes nothing; --out writes a file.
    let again = json(&ok(h.on("b", &["import", "--json", file.to_str().unwrap()])));
    assert_eq!((again["unchanged"].as_u64(), again["commits"].as_u64()), (Some(300), Some(0)));
    assert!(ok(h.on("b", &["export", "--out", "b.jsonl"])).contains("exported 300 records to b.jsonl"));
    assert_eq!(std::fs::read_to_string(h.path("b.jsonl")).unwrap(), export);
    // A filtered export.
    let some = ok(h.on("a", &["export", "--where", r#"{"i": {"$lt": 30}}"#]));
    assert_eq!(json(some.lines().next().unwrap())["count"], 10);

    // A raw-vector cosine store: vectors are normalised when stored.
    ok(h.on("cos", &["init", "--dimension", "16"]));
    ok(h.on("cos", &["add", "--file", input.to_str().unwrap()]));
    let cos_export = h.write("cos.jsonl", &ok(h.on("cos", &["export"])));
    ok(h.on("cos2", &["import", cos_export.to_str().unwrap()]));
    // The stored vectors are of unit length, which normalising leaves alone: bit for bit.
    assert_same_bits(&records_by_id(&h.path("cos")), &records_by_id(&h.path("cos2")));
    // A second import finds every record as the store keeps it.
    let again = json(&ok(h.on("cos2", &["import", "--json", cos_export.to_str().unwrap()])));
    assert_eq!((again["unchanged"].as_u64(), again["commits"].as_u64()), (Some(300), Some(0)));

    // A text store (cosine, vectors normalised by the model) through the default store.
    let texts = ["Rust has no garbage collector.", "Tea is brewed with hot water.", "The train leaves at noon from platform 4."];
    ok(h.cmd(&["remember", texts[0], texts[1], texts[2], "--meta", r#"{"src": "t"}"#]));
    let export = ok(h.cmd(&["export"]));
    let header = json(export.lines().next().unwrap());
    assert_eq!(header["model"]["id"], "all-minilm-l6-v2");
    assert_eq!(header["metric"], "cosine");
    let file = h.write("t.jsonl", &export);
    ok(h.on("c", &["import", file.to_str().unwrap()]));
    assert_same_bits(&records_by_id(&h.default_store()), &records_by_id(&h.path("c")));
    // The imported store is a text store with the same model: it answers questions.
    let hits = json(&ok(h.on("c", &["recall", "a hot drink", "-k", "1", "--json"])));
    assert_eq!(hits[0]["text"], texts[1]);
    // An export of one model does not go into a store of another kind.
    let err = fails(h.on("b", &["import", file.to_str().unwrap()]), 1);
    assert!(err.contains("384-dimensional") && err.contains("raw-vector store (16 dimensions, l2)"), "{err}");
}

#[test]
fn exit_codes_and_error_messages() {
    let h = Home::new();
    ok(h.on("v", &["init", "-d", "2"]));
    assert!(ok(h.cmd(&["--help"])).contains("remember"));
    ok(h.cmd(&["recall", "--help"]));
    // Usage errors: 2.
    let r = run(h.on("v", &["search"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(run(h.on("v", &["nosuchcommand"])).code, 2);
    assert_eq!(run(h.on("v", &["search", "[1, 0]", "-k", "0"])).code, 2);
    let err = fails(h.on("v", &["search", "[1, 0]", "--where", "{not json"]), 2);
    assert!(err.contains("--where is not a valid filter") && err.contains("not valid JSON"), "{err}");
    let err = fails(h.on("v", &["get", "--where", r#"{"$bogus": 1}"#]), 2);
    assert!(err.contains("unknown operator"), "{err}");
    let err = fails(h.on("v", &["search", "[1, \"x\"]"]), 2);
    assert!(err.contains("VECTOR"), "{err}");
    fails(h.on("v", &["add", "--id", "a", "--vector", "[1, 0]", "--meta", "[1]"]), 2);
    fails(h.on("v", &["add", "--id", "a", "one", "two"]), 2);
    // Errors: 1, one readable line.
    let err = fails(h.on("v", &["get", "missing"]), 1);
    assert_eq!(err.trim(), "error: no record has the id \"missing\"");
    let err = fails(h.on("v", &["search", "[1, 0, 0]"]), 1);
    assert!(err.contains("3 dimensions but the store holds 2-dimensional"), "{err}");
    let err = fails(h.on("v", &["add", "--id", "z", "--vector", "[0, 0]"]), 1);
    assert!(err.contains("zero vector"), "{err}");
    let err = fails(h.on("nowhere", &["stats"]), 1);
    assert!(err.contains("there is no store at nowhere") && err.contains("init"), "{err}");
    assert!(!h.path("nowhere").join("memento.vec").exists());
    let bad = h.write("bad.jsonl", "{\"id\": \"a\", \"vector\": [1, 0]}\n{\"id\": \"b\", \"vector\": [1, 0\n");
    let err = fails(h.on("v", &["add", "--file", bad.to_str().unwrap()]), 1);
    assert!(err.contains("bad.jsonl:2: not valid JSON"), "{err}");
    // Nothing of a bad file is stored: it is checked whole first.
    assert_eq!(json(&ok(h.on("v", &["stats", "--json"])))["records"], 0);
    let err = fails(h.on("v", &["import", "missing-file.jsonl"]), 1);
    assert!(err.contains("cannot read missing-file.jsonl"), "{err}");
    // --verbose prints the causes, each on its own line.
    let r = run(h.on("v", &["--verbose", "import", "missing-file.jsonl"]));
    assert_eq!(r.code, 1);
    assert!(r.stderr.lines().count() >= 2 && r.stderr.contains("caused by:"), "{}", r.stderr);
}

#[test]
fn broken_pipe_ends_quietly() {
    let h = Home::new();
    ok(h.on("v", &["init", "-d", "64", "--metric", "dot"]));
    let mut jsonl = String::new();
    for (i, v) in awkward_floats(64 * 3000, 7).chunks(64).enumerate() {
        jsonl.push_str(&format!("{{\"id\": \"{i}\", \"vector\": {}}}\n", vector_text(v)));
    }
    let f = h.write("many.jsonl", &jsonl);
    ok(h.on("v", &["add", "--file", f.to_str().unwrap()]));
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin!("memento"))
        .env("MEMENTO_HOME", h.default_store())
        .current_dir(h.dir.path())
        .args(["--store", "v", "export"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    // The reader is gone (like `memento export | head -1`).
    let out = child.wait_with_output().unwrap();
    assert!(first.contains("memento_export"), "{first}");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn a_second_writer_is_refused_and_readers_read_beside_the_writer() {
    let h = Home::new();
    ok(h.on("v", &["init", "-d", "2"]));
    let held = Engine::open(h.path("v")).unwrap();
    held.add(memento::Record::new("held", vec![3.0, 4.0])).unwrap();
    // A writer is refused at once, naming the holder.
    let err = fails(h.on("v", &["add", "--id", "a", "--vector", "[1, 2]"]), 1);
    assert!(err.contains(&format!("already open by process {}", std::process::id())), "{err}");
    assert!(err.contains("One process writes a store at a time"), "{err}");
    // Reading commands open it read-only beside the writer, and see its commits.
    let stats = ok(h.on("v", &["--json", "stats"]));
    assert!(stats.contains(r#""records":1"#) && stats.contains(r#""read_only":true"#), "{stats}");
    assert!(ok(h.on("v", &["get", "held"])).contains("held"));
    assert!(ok(h.on("v", &["search", "-k", "1", "[3, 4]"])).contains("held"));
    assert!(ok(h.on("v", &["export"])).contains(r#""id":"held""#));
    held.add(memento::Record::new("later", vec![1.0, 0.0])).unwrap();
    assert!(ok(h.on("v", &["search", "-k", "1", "[1, 0]"])).contains("later"));
    held.close().unwrap();
    ok(h.on("v", &["add", "--id", "a", "--vector", "[1, 2]"]));
}

#[test]
fn csv_and_stdin_input() {
    let h = Home::new();
    ok(h.on("v", &["init", "-d", "2", "--metric", "dot"]));
    let csv = h
        .write("in.csv", "id,vector,text,lang\r\np,\"[1, 0]\",\"plain, with a comma\",en\nq,\"[0, 1]\",\"two\nlines and \"\"quotes\"\"\",\nr,\"[1, 1]\",,fr\n");
    let s = json(&ok(h.on("v", &["add", "--json", "--file", csv.to_str().unwrap()])));
    assert_eq!(s["new"], 3);
    let got = json(&ok(h.on("v", &["get", "p", "q", "r", "--json"])));
    assert_eq!(got[0]["text"], "plain, with a comma");
    assert_eq!(got[0]["metadata"], serde_json::json!({"lang": "en"}));
    assert_eq!(got[1]["text"], "two\nlines and \"quotes\"");
    assert_eq!(got[1]["metadata"], Value::Null);
    assert_eq!(got[2]["text"], Value::Null);
    assert_eq!(got[2]["metadata"]["lang"], "fr");
    let bad = h.write("bad.csv", "id,vector\ns,\"[1, 0]\",extra\n");
    assert!(fails(h.on("v", &["add", "-f", bad.to_str().unwrap()]), 1).contains("bad.csv:2: 3 fields where the header has 2"));

    // JSONL on stdin (recognised by its first character).
    let mut c = h.on("v", &["add", "--json"]);
    c.write_stdin("{\"id\": \"s\", \"vector\": [2, 2]}\n");
    assert_eq!(json(&ok(c))["new"], 1);
    // Texts on stdin, one per line, into a text store; a whole input as one text.
    let mut c = h.on("t", &["remember"]);
    c.write_stdin("Water boils at 100 degrees.\n\nIce melts at 0 degrees.\n");
    assert!(ok(c).contains("remembered 2 texts"));
    let mut c = h.on("t", &["remember", "--format", "text", "--file", "-", "--meta", r#"{"kind": "poem"}"#]);
    c.write_stdin("Roses are red,\nviolets are blue.\n");
    ok(c);
    let hits = json(&ok(h.on("t", &["recall", "flowers", "-k", "1", "--json"])));
    assert_eq!(hits[0]["text"], "Roses are red,\nviolets are blue.");
    assert_eq!(hits[0]["metadata"]["kind"], "poem");
    // A CSV of texts into a text store.
    let notes = h.write("notes.csv", "id,text,topic\nn1,Call the plumber about the leak,home\n");
    ok(h.on("t", &["remember", "--file", notes.to_str().unwrap()]));
    assert_eq!(json(&ok(h.on("t", &["get", "n1", "--json"])))[0]["metadata"]["topic"], "home");
}

#[test]
fn the_default_store_is_made_on_first_use_under_memento_home() {
    let h = Home::new();
    assert!(!h.default_store().exists());
    let out = ok(h.cmd(&["remember", "The default store needs no options."]));
    assert!(out.contains("(new, embedded)"), "{out}");
    assert!(h.default_store().join("memento.vec").is_file());
    let stats = json(&ok(h.cmd(&["stats", "--json"])));
    assert_eq!(stats["store"], h.default_store().to_str().unwrap());
    assert_eq!(stats["records"], 1);
    assert_eq!(stats["model"]["id"], "all-minilm-l6-v2");
    let hits = json(&ok(h.cmd(&["recall", "options", "--json"])));
    assert_eq!(hits[0]["text"], "The default store needs no options.");
    // --store picks another one; the default is left alone.
    ok(h.on("other", &["init", "-d", "2"]));
    assert_eq!(json(&ok(h.cmd(&["stats", "--json"])))["records"], 1);
}

#[test]
fn stdout_write_errors_other_than_a_closed_pipe_are_reported() {
    // /dev/full fails every write with ENOSPC.
    let full = Path::new("/dev/full");
    if !full.exists() {
        return;
    }
    let h = Home::new();
    ok(h.on("v", &["init", "-d", "2"]));
    let out = StdCommand::new(assert_cmd::cargo::cargo_bin!("memento"))
        .env("MEMENTO_HOME", h.default_store())
        .current_dir(h.dir.path())
        .args(["--store", "v", "stats"])
        .stdout(std::fs::OpenOptions::new().write(true).open(full).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains("No space left"), "{err}");
}

/// Issue 13, item 2, as the issue gives it: a 300-record store with metadata {"i": i}, closed,
/// one byte of the mirror's second half XOR 0x10. `get --where`, `search --where` and
/// `delete --where` give the whole answer (100 records), the delete removes exactly those, and
/// the next commands work (no rebuild-mirror needed).
#[test]
fn a_flipped_mirror_byte_is_rebuilt_not_used() {
    let h = Home::new();
    let src = h.path("src");
    {
        let e = Engine::builder(&src).dimension(3).open().unwrap();
        for i in 0..300usize {
            let meta = serde_json::json!({"i": i});
            let serde_json::Value::Object(m) = meta else { unreachable!() };
            e.add(memento::Record::new(format!("r{i}"), vec![1.0, (i % 7) as f32, (i % 3) as f32]).with_metadata(m)).unwrap();
        }
        e.close().unwrap();
    }
    let mirror = std::fs::read(src.join(memento::MIRROR_FILE)).unwrap();
    let filter = r#"{"i": {"$lt": 100}}"#;
    for (n, at) in (mirror.len() / 2..mirror.len()).step_by(mirror.len() / 10).enumerate() {
        let name = format!("s{n}");
        let dir = h.path(&name);
        std::fs::create_dir(&dir).unwrap();
        for f in std::fs::read_dir(&src).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
        }
        let mut bytes = mirror.clone();
        bytes[at] ^= 0x10;
        std::fs::write(dir.join(memento::MIRROR_FILE), &bytes).unwrap();
        let got = json(&ok(h.on(&name, &["get", "--where", filter, "--json"])));
        assert_eq!(got.as_array().unwrap().len(), 100, "get --where after a flip at {at}");
        let hits = json(&ok(h.on(&name, &["search", "[1, 1, 1]", "-k", "300", "--where", filter, "--json"])));
        assert_eq!(hits.as_array().unwrap().len(), 100, "search --where after a flip at {at}");
        assert_eq!(json(&ok(h.on(&name, &["delete", "--where", filter, "--json"])))["deleted"], 100, "delete --where after a flip at {at}");
        assert_eq!(json(&ok(h.on(&name, &["stats", "--json"])))["records"], 200);
        assert_eq!(json(&ok(h.on(&name, &["get", "--where", r#"{"i": {"$gte": 0}}"#, "--json"]))).as_array().unwrap().len(), 200);
        // A flip in a page no command reads (the `fields` table itself: look-ups use its
        // index) is still there, and the integrity check, which reads every page, reports it
        // as mirror damage; anything else must be clean.
        match Engine::open(&dir).unwrap().check_integrity() {
            Ok(()) => {}
            Err(e @ memento::Error::Mirror { kind: memento::MirrorErrorKind::Damaged, .. }) if e.to_string().contains("checksum") => {}
            Err(e) => panic!("after a flip at {at}: {e}"),
        }
    }
}

/// Issue 13, item 8: a dimension beyond what the default 64 KiB page holds is reachable with
/// `init --page-size`, and the error without it names the page size it needs.
#[test]
fn init_takes_a_page_size_for_a_large_dimension() {
    let h = Home::new();
    let err = fails(h.on("big", &["init", "--dimension", "16353"]), 1);
    assert!(err.contains("needs a page of at least 131072 bytes"), "{err}");
    ok(h.on("big", &["init", "--dimension", "16353", "--page-size", "131072"]));
    let stats = json(&ok(h.on("big", &["--json", "stats"])));
    assert_eq!(stats["dimension"], 16353, "{stats}");
    let err = fails(h.on("odd", &["init", "--dimension", "4", "--page-size", "10000"]), 1);
    assert!(err.contains("not a power of two"), "{err}");
}

/// A raw-vector l2 store in `h` named `v` with 15 records `r0`..`r14` at `[i, 0]`.
fn fifteen_records(h: &Home) {
    ok(h.on("v", &["init", "--dimension", "2", "--metric", "l2"]));
    let records: String = (0..15).map(|i| format!("{{\"id\": \"r{i}\", \"vector\": [{i}, 0]}}\n")).collect();
    let file = h.write("many.jsonl", &records);
    ok(h.on("v", &["add", "--file", file.to_str().unwrap()]));
}

#[test]
fn search_returns_default_k_results_with_the_engines_score() {
    let h = Home::new();
    fifteen_records(&h);
    // -k defaults to the engine's DEFAULT_K.
    assert_eq!(memento::DEFAULT_K, 10);
    let hits = json(&ok(h.on("v", &["search", "[3, 0]", "--json"])));
    assert_eq!(hits.as_array().unwrap().len(), memento::DEFAULT_K);
    assert_eq!(hits[0]["id"], "r3");
    // The score is the engine's: minus the distance under l2.
    for hit in hits.as_array().unwrap() {
        assert_eq!(hit["score"].as_f64().unwrap(), -hit["distance"].as_f64().unwrap(), "{hit}");
    }
    assert_eq!(hits[1]["score"].as_f64().unwrap(), -1.0);
}

#[test]
fn search_and_recall_take_a_thread_count() {
    let h = Home::new();
    fifteen_records(&h);
    // --threads changes how the search runs, not what it finds; with --exact too.
    let one = ok(h.on("v", &["search", "[3, 0]", "--json", "--threads", "1"]));
    assert_eq!(json(&one)[0]["id"], "r3");
    assert_eq!(ok(h.on("v", &["search", "[3, 0]", "--json", "--threads", "2"])), one);
    assert_eq!(ok(h.on("v", &["search", "[3, 0]", "--json", "--threads", "2", "--exact"])), one);
    assert_eq!(ok(h.on("v", &["search", "[3, 0]", "--threads", "1"])), ok(h.on("v", &["search", "[3, 0]", "--threads", "2"])));
    // A thread count is a whole number from 1 up.
    for bad in ["0", "two", "1.5"] {
        let err = fails(h.on("v", &["search", "[3, 0]", "--threads", bad]), 2);
        assert!(err.contains("--threads"), "{err}");
    }

    ok(h.on("t", &["remember", "Tea is a hot drink.", "Ice cream is cold.", "The bus leaves at nine."]));
    let one = ok(h.on("t", &["recall", "something warm to drink", "--json", "--threads", "1"]));
    assert_eq!(ok(h.on("t", &["recall", "something warm to drink", "--json", "--threads", "2"])), one);
    assert_eq!(ok(h.on("t", &["recall", "something warm to drink", "--json", "--threads", "2", "--exact"])), one);
    assert_eq!(json(&one)[0]["text"], "Tea is a hot drink.");
    fails(h.on("t", &["recall", "tea", "--threads", "0"]), 2);
}

#[test]
fn update_merge_is_the_engines_merge_and_reports_as_before() {
    let h = Home::new();
    ok(h.on("v", &["init", "--dimension", "2"]));
    ok(h.on("v", &["add", "--id", "n1", "--vector", "[1, 0]", "--meta", r#"{"topic": "admin"}"#]));
    ok(h.on("v", &["add", "--id", "n2", "--vector", "[0, 1]"]));
    // As the README's transcript shows it.
    assert_eq!(ok(h.on("v", &["update", "n1", "--meta", r#"{"done": true}"#, "--merge"])), "updated n1: metadata\n");
    assert_eq!(json(&ok(h.on("v", &["get", "n1", "--json"])))[0]["metadata"], serde_json::json!({"topic": "admin", "done": true}));
    // The same merge again changes nothing.
    assert_eq!(ok(h.on("v", &["update", "n1", "--meta", r#"{"done": true}"#, "--merge"])), "n1 is unchanged\n");
    // A null removes a key; merging into no metadata gives an object, possibly empty.
    let out = json(&ok(h.on("v", &["update", "n1", "--meta", r#"{"topic": null}"#, "--merge", "--json"])));
    assert_eq!(out, serde_json::json!({"id": "n1", "text_changed": false, "metadata_changed": true, "embedded": false}));
    assert_eq!(json(&ok(h.on("v", &["get", "n1", "--json"])))[0]["metadata"], serde_json::json!({"done": true}));
    assert_eq!(ok(h.on("v", &["update", "n2", "--meta", r#"{"gone": null}"#, "--merge"])), "updated n2: metadata\n");
    assert_eq!(json(&ok(h.on("v", &["get", "n2", "--json"])))[0]["metadata"], serde_json::json!({}));
    // A missing record is not found, and a patch no record could hold is a usage error.
    assert!(fails(h.on("v", &["update", "nope", "--meta", r#"{"a": 1}"#, "--merge"]), 1).contains("nope"));
    fails(h.on("v", &["update", "n1", "--meta", r#"{"big": 18446744073709551615}"#, "--merge"]), 2);
    assert_eq!(json(&ok(h.on("v", &["get", "n1", "--json"])))[0]["metadata"], serde_json::json!({"done": true}));
}

#[test]
fn compact_gives_the_space_of_deleted_records_back() {
    let h = Home::new();
    ok(h.on("v", &["init", "-d", "2", "--metric", "l2", "--page-size", "8192"]));
    let lines: String = (0..2000).map(|i| format!("{{\"id\": \"r{i}\", \"vector\": [{i}, 1]}}\n")).collect();
    let file = h.path("in.jsonl");
    std::fs::write(&file, lines).unwrap();
    ok(h.on("v", &["add", "--file", file.to_str().unwrap()]));
    // 500 dead of 2,000: under the 40% at which a store compacts by itself (FORMAT.md §4.5).
    let ids: Vec<String> = (0..2000).filter(|i| i % 4 != 0).take(500).map(|i| format!("r{i}")).collect();
    let mut args = vec!["delete"];
    args.extend(ids.iter().map(String::as_str));
    ok(h.on("v", &args));
    let out = ok(h.on("v", &["compact"]));
    assert!(out.starts_with("compacted: 1500 live records kept, 500 deleted or replaced dropped"), "{out}");
    let json = ok(h.on("v", &["--json", "compact"]));
    assert!(json.contains(r#""live":1500"#) && json.contains(r#""dropped":0"#), "{json}");
    let stats = ok(h.on("v", &["--json", "stats"]));
    assert!(stats.contains(r#""records":1500"#) && stats.contains(r#""deleted":0"#), "{stats}");
    assert!(ok(h.on("v", &["search", "-k", "1", "[1000, 1]"])).contains("r1000"));
}

/// A raw-vector cosine store in `h` named `g` with `n` records `r0`.. of dimension 8, spread
/// around a few directions (pseudo-random, the same every run).
fn spread_records(h: &Home, n: usize) {
    ok(h.on("g", &["init", "--dimension", "8"]));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f64 / (1u64 << 24) as f64 - 0.5
    };
    let records: String = (0..n)
        .map(|i| {
            let v: Vec<String> = (0..8).map(|j| format!("{:.4}", if j == i % 4 { 1.0 } else { 0.0 } + 0.3 * next())).collect();
            format!("{{\"id\": \"r{i}\", \"vector\": [{}]}}\n", v.join(", "))
        })
        .collect();
    let file = h.write("spread.jsonl", &records);
    ok(h.on("g", &["add", "--file", file.to_str().unwrap()]));
}

#[test]
fn search_and_recall_take_ef() {
    let h = Home::new();
    fifteen_records(&h);
    // A store this small is scanned, not searched through a graph: --ef changes nothing.
    let one = ok(h.on("v", &["search", "[3, 0]", "--json"]));
    assert_eq!(ok(h.on("v", &["search", "[3, 0]", "--json", "--ef", "1"])), one);
    assert_eq!(ok(h.on("v", &["search", "[3, 0]", "--json", "--ef", "500", "--exact", "--threads", "1"])), one);
    // --ef is a whole number from 1 up, for recall too (refused before the model loads).
    for bad in ["0", "-3", "many", "2.5"] {
        let opt = format!("--ef={bad}");
        let err = fails(h.on("v", &["search", "[3, 0]", &opt]), 2);
        assert!(err.contains("--ef") && err.contains("not a whole number from 1 up"), "{err}");
        let err = fails(h.on("v", &["recall", "tea", &opt]), 2);
        assert!(err.contains("--ef"), "{err}");
    }
    for cmd in ["search", "recall"] {
        let help = ok(h.cmd(&["help", cmd]));
        assert!(help.contains("--ef <N>") && help.contains("--exact"), "{help}");
    }
}

#[test]
fn stats_shows_the_graph_and_index_build_builds_it() {
    let h = Home::new();
    spread_records(&h, 1000);
    // Below the graph's 20,000 vectors nothing is built by itself, and searches scan.
    let text = ok(h.on("g", &["stats"]));
    assert!(text.contains("graph index      none yet (1000 vectors, all scanned)"), "{text}");
    assert!(text.contains("graph searches   not used by searches without --exact (below 20000 vectors"), "{text}");
    let stats = json(&ok(h.on("g", &["stats", "--json"])));
    let g = &stats["graph"];
    assert_eq!((g["nodes"].as_u64(), g["tail"].as_u64(), g["file_nodes"].as_u64()), (Some(0), Some(1000), Some(0)), "{g}");
    assert_eq!((g["estimate"].clone(), g["used_by_auto"].clone(), g["problem"].clone()), (Value::Null, Value::Bool(false), Value::Null), "{g}");
    assert_eq!(g["params"], serde_json::json!({"m": 16, "ef_construction": 200, "ef_search": 64, "min_vectors": 20000}));
    assert!(g.get("measured").is_none(), "{g}");
    // --recall without a graph: nothing to measure.
    assert!(ok(h.on("g", &["stats", "--recall"])).contains("graph recall     no graph to measure"));
    assert_eq!(json(&ok(h.on("g", &["stats", "--recall", "--json"])))["graph"]["measured"], Value::Null);
    // --sample and --ef go with --recall, and are whole numbers from 1 up.
    fails(h.on("g", &["stats", "--sample", "8"]), 2);
    fails(h.on("g", &["stats", "--ef", "8"]), 2);
    fails(h.on("g", &["stats", "--recall", "--sample", "0"]), 2);

    // `index build` builds a graph for a store of any size, writes its file and measures it.
    // (Nodes are numbered by place in the quantized blocks, so they cover at least the 1,000
    // vectors: a block's unused places count too.)
    let out = ok(h.on("g", &["index", "build"]));
    assert!(out.starts_with("graph index built in ") && out.contains(" vectors, its file holds ") && out.contains("; recall "), "{out}");
    let built = json(&ok(h.on("g", &["--json", "index", "build"])));
    let nodes = built["nodes"].as_u64().unwrap();
    assert!(built["seconds"].as_f64().unwrap() >= 0.0 && nodes >= 1000 && built["file_nodes"] == nodes, "{built}");
    let stats = json(&ok(h.on("g", &["stats", "--json"])));
    let g = &stats["graph"];
    assert_eq!((g["nodes"].as_u64(), g["tail"].as_u64(), g["file_nodes"].as_u64()), (Some(nodes), Some(0), Some(nodes)), "{g}");
    let est = &g["estimate"];
    assert!(est["recall"].as_f64().unwrap() > 0.5 && est["sample"].as_u64().unwrap() > 0 && est["ef"] == 64, "{est}");
    // Still below 20,000 vectors: the scans answer searches without --exact.
    assert_eq!(g["used_by_auto"], false);
    let text = ok(h.on("g", &["stats"]));
    let covered = format!("graph index      {nodes} vectors in the graph, 0 in the tail (scanned); its file holds {nodes}");
    for line in [covered.as_str(), "graph recall     ", ", last measured"] {
        assert!(text.contains(line), "{line} in {text}");
    }
    // Measured now, at the --ef and --sample given.
    let measured = json(&ok(h.on("g", &["stats", "--recall", "--sample", "8", "--ef", "100", "--json"])))["graph"]["measured"].clone();
    assert!(measured["sample"].as_u64().unwrap() <= 8 && measured["ef"] == 100 && measured["recall"].as_f64().unwrap() > 0.5, "{measured}");
    assert!(ok(h.on("g", &["stats", "--recall", "--sample", "4"])).contains(", measured now"));
    // A search with --ef still finds the nearest record.
    let hits = json(&ok(h.on("g", &["search", "[1, 0, 0, 0, 0, 0, 0, 0]", "-k", "3", "--ef", "16", "--json"])));
    assert_eq!(hits.as_array().unwrap().len(), 3);
    // `index build` on a missing store says how to make one.
    let err = fails(h.on("nope", &["index", "build"]), 1);
    assert!(err.contains("there is no store"), "{err}");
}

#[test]
fn index_build_takes_m_and_ef_construction() {
    let h = Home::new();
    spread_records(&h, 600);
    let built = json(&ok(h.on("g", &["--json", "index", "build", "--m", "8", "--ef-construction", "40"])));
    assert_eq!((built["params"]["m"].as_u64(), built["params"]["ef_construction"].as_u64()), (Some(8), Some(40)), "{built}");
    assert!(built["nodes"].as_u64().unwrap() >= 600 && built["estimate"]["recall"].as_f64().unwrap() > 0.5, "{built}");
    // The file holds a graph of that shape (level 0 keeps 2m).
    let mut c = assert_cmd::cargo::cargo_bin_cmd!("memento-inspect");
    let out = c.arg("--store").arg(h.path("g")).args(["--json", "graph"]).output().unwrap();
    let g: Value = serde_json::from_slice(&out.stdout).unwrap();
    let header = &g["graph"]["header"];
    assert_eq!((header["m"].as_u64(), header["m0"].as_u64(), header["ef_construction"].as_u64()), (Some(8), Some(16), Some(40)), "{g:#}");
    // Out of range: a clear error, nothing built.
    let err = fails(h.on("g", &["index", "build", "--m", "1"]), 1);
    assert!(err.contains("graph m must be from 2 to 512"), "{err}");
    fails(h.on("g", &["index", "build", "--ef-construction", "0"]), 2);
}
