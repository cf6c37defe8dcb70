//! Issue 13, item 6: an input (a file of records, an export) is parsed and checked whole, by the
//! engine's own rules, before anything is written; a bad line is named and nothing is stored,
//! and no store is created. And the errors around opening a store (issue 13, item 9).

#![allow(clippy::unwrap_used)]

mod common;

use common::{fails, json, ok, records, run, Home};

/// `n` good records of a 3-d store as JSONL lines, then `last`.
fn jsonl_with_last(n: usize, last: &str) -> String {
    let mut s: String = (0..n).map(|i| format!("{{\"id\": \"r{i}\", \"vector\": [1, {i}, 0]}}\n")).collect();
    s.push_str(last);
    s.push('\n');
    s
}

const NUL_KEY: &str = r#"{"id": "bad", "vector": [1, 0, 0], "metadata": {"k\u0000": 1}}"#;

#[test]
fn a_bad_last_line_of_add_stores_nothing_and_is_named() {
    let h = Home::new();
    ok(h.on("v", &["init", "-d", "3"]));
    let big = h.write("big.jsonl", &jsonl_with_last(1500, NUL_KEY));
    for batch in ["1024", "7"] {
        let err = fails(h.on("v", &["add", "--batch", batch, "-f", big.to_str().unwrap()]));
        assert!(err.contains("big.jsonl:1501:") && err.contains("NUL"), "{err}");
        assert_eq!(records(&h, "v"), 0, "nothing of the file is stored (--batch {batch})");
    }
    // An id too long for the engine, on the last row of a CSV file.
    let mut csv = String::from("id,vector\n");
    for i in 0..30 {
        csv.push_str(&format!("c{i},\"[0, 1, {i}]\"\n"));
    }
    csv.push_str(&format!("{},\"[1, 1, 1]\"\n", "x".repeat(1025)));
    let file = h.write("ids.csv", &csv);
    let err = fails(h.on("v", &["add", "--batch", "4", "-f", file.to_str().unwrap()]));
    assert!(err.contains("ids.csv:32:") && err.contains("1 to 1024 bytes"), "{err}");
    assert_eq!(records(&h, "v"), 0);
    // --meta applies to every record, and is checked with them.
    let good = h.write("good.jsonl", &jsonl_with_last(3, r#"{"id": "last", "vector": [0, 0, 1]}"#));
    let err = fails(h.on("v", &["add", "--batch", "1", "--meta", r#"{"a\u0000": 1}"#, "-f", good.to_str().unwrap()]));
    assert!(err.contains("good.jsonl:1:") && err.contains("NUL"), "{err}");
    assert_eq!(records(&h, "v"), 0);
    // The good file goes in whole.
    ok(h.on("v", &["add", "--batch", "1", "-f", good.to_str().unwrap()]));
    assert_eq!(records(&h, "v"), 4);
}

#[test]
fn remember_with_a_bad_line_creates_no_store_and_stores_nothing() {
    let h = Home::new();
    let texts = "{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": \"three\"}\n{\"text\": \"four\", \"metadata\": {\"k\\u0000\": 1}}\n";
    let file = h.write("texts.jsonl", texts);
    let f = file.to_str().unwrap();
    let err = fails(h.on("new", &["remember", "--batch", "2", "-f", f]));
    assert!(err.contains("texts.jsonl:4:") && err.contains("NUL"), "{err}");
    assert_eq!(h.listing("new"), None, "no store is created");
    let err = fails(h.cmd(&["remember", "-f", f]));
    assert!(err.contains("texts.jsonl:4:"), "{err}");
    assert_eq!(h.listing("default"), None, "the default store is not created either");
    // An existing text store: nothing of the file is stored (before, two batches were).
    ok(h.on("t", &["init"]));
    fails(h.on("t", &["remember", "--batch", "2", "-f", f]));
    assert_eq!(records(&h, "t"), 0);
}

fn header(dimension: usize, count: usize) -> String {
    format!("{{\"memento_export\": 1, \"dimension\": {dimension}, \"metric\": \"cosine\", \"model\": null, \"count\": {count}}}\n")
}

#[test]
fn import_checks_the_whole_export_before_creating_the_store() {
    let h = Home::new();
    // A header claiming 4 dimensions over 3-d records.
    let e4 = h.write("e4.jsonl", &format!("{}{}", header(4, 1), "{\"id\": \"a\", \"vector\": [1, 2, 3]}\n"));
    let err = fails(h.on("i4", &["import", e4.to_str().unwrap()]));
    assert!(err.contains("e4.jsonl:2:") && err.contains("3 dimensions"), "{err}");
    assert_eq!(h.listing("i4"), None, "no store is left behind");
    // A header with dimension 0: not even a LOCK is left behind.
    let e0 = h.write("e0.jsonl", &format!("{}{}", header(0, 1), "{\"id\": \"a\", \"vector\": [1, 2, 3]}\n"));
    let err = fails(h.on("i0", &["import", e0.to_str().unwrap()]));
    assert!(err.contains("dimension 0"), "{err}");
    assert_eq!(h.listing("i0"), None);
    // A truncated export: the header counts 2 records, one is there.
    let cut = h.write("cut.jsonl", &format!("{}{}", header(3, 2), "{\"id\": \"a\", \"vector\": [1, 2, 3]}\n"));
    let err = fails(h.on("it", &["import", cut.to_str().unwrap()]));
    assert!(err.contains("cut.jsonl") && err.contains("2 records") && err.contains("holds 1"), "{err}");
    assert_eq!(h.listing("it"), None);
    ok(h.on("v", &["init", "-d", "3"]));
    fails(h.on("v", &["import", cut.to_str().unwrap()]));
    assert_eq!(records(&h, "v"), 0, "nothing of a truncated export is imported");
    // A bad last record: named, and nothing is imported.
    let bad = h.write("bad.jsonl", &format!("{}{}", header(3, 1501), jsonl_with_last(1500, NUL_KEY)));
    let err = fails(h.on("v", &["import", bad.to_str().unwrap()]));
    assert!(err.contains("bad.jsonl:1502:") && err.contains("NUL"), "{err}");
    assert_eq!(records(&h, "v"), 0);
    let err = fails(h.on("new", &["import", bad.to_str().unwrap()]));
    assert!(err.contains("bad.jsonl:1502:"), "{err}");
    assert_eq!(h.listing("new"), None);
    // A whole export imports.
    let whole = h.write("whole.jsonl", &format!("{}{}", header(3, 2), "{\"id\": \"a\", \"vector\": [1, 2, 3]}\n{\"id\": \"b\", \"vector\": [3, 2, 1]}\n"));
    ok(h.on("new", &["import", whole.to_str().unwrap()]));
    assert_eq!(records(&h, "new"), 2);
}

#[test]
fn an_id_given_twice_in_one_input_is_refused_with_both_places() {
    let h = Home::new();
    ok(h.on("v", &["init", "-d", "3"]));
    let dup = h.write("dup.jsonl", "{\"id\": \"a\", \"vector\": [1, 0, 0]}\n{\"id\": \"b\", \"vector\": [0, 1, 0]}\n{\"id\": \"a\", \"vector\": [0, 0, 1]}\n");
    let err = fails(h.on("v", &["add", "-f", dup.to_str().unwrap()]));
    assert!(err.contains("dup.jsonl:3:") && err.contains("dup.jsonl:1") && err.contains("\"a\""), "{err}");
    assert_eq!(records(&h, "v"), 0);
    // Across two files, each place is named by its file.
    let other = h.write("other.jsonl", "{\"id\": \"b\", \"vector\": [1, 1, 0]}\n");
    let only_b = h.write("b.jsonl", "{\"id\": \"b\", \"vector\": [0, 1, 0]}\n");
    let err = fails(h.on("v", &["add", "-f", only_b.to_str().unwrap(), "-f", other.to_str().unwrap()]));
    assert!(err.contains("other.jsonl:1:") && err.contains("b.jsonl:1"), "{err}");
    assert_eq!(records(&h, "v"), 0);
    // The very same record twice is one record.
    let twice = h.write("twice.jsonl", "{\"id\": \"a\", \"vector\": [1, 0, 0]}\n{\"id\": \"a\", \"vector\": [1, 0, 0]}\n");
    let s = json(&ok(h.on("v", &["add", "--json", "-f", twice.to_str().unwrap()])));
    assert_eq!((s["records"].as_u64(), s["new"].as_u64(), s["unchanged"].as_u64()), (Some(2), Some(1), Some(1)), "{s}");
    assert_eq!(records(&h, "v"), 1);
    // An export holding an id twice is refused too.
    let exp = h.write("exp.jsonl", &format!("{}{}", header(3, 2), "{\"id\": \"x\", \"vector\": [1, 2, 3]}\n{\"id\": \"x\", \"vector\": [3, 2, 1]}\n"));
    let err = fails(h.on("w", &["import", exp.to_str().unwrap()]));
    assert!(err.contains("exp.jsonl:3:") && err.contains("exp.jsonl:2"), "{err}");
    assert_eq!(h.listing("w"), None);
}

#[test]
fn a_store_that_is_a_regular_file_is_named_so() {
    let h = Home::new();
    let file = h.write("afile", "not a store");
    let export = h.write("e.jsonl", &format!("{}{}", header(3, 1), "{\"id\": \"a\", \"vector\": [1, 2, 3]}\n"));
    for args in [vec!["stats"], vec!["init", "-d", "3"], vec!["init"], vec!["import", export.to_str().unwrap()], vec!["remember", "hello"]] {
        let err = fails(h.on("afile", &args));
        assert!(err.contains("afile is a file, not a store directory"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a store");
}

#[test]
fn an_io_error_is_printed_with_its_cause_once() {
    let h = Home::new();
    h.write("afile", "not a directory");
    let err = fails(h.on("afile/sub", &["init", "-d", "3"]));
    assert_eq!(err.matches("os error").count(), 1, "{err}");
    let r = run(h.on("afile/sub", &["--verbose", "init", "-d", "3"]));
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.matches("os error").count(), 1, "{}", r.stderr);
}

#[test]
fn search_help_says_what_exact_does() {
    let h = Home::new();
    for cmd in ["search", "recall"] {
        let help = ok(h.cmd(&[cmd, "--help"]));
        let exact = help.split("--exact").nth(1).unwrap_or_default();
        assert!(exact.contains("float32") && exact.contains("same results"), "{help}");
    }
    // And it answers as the default does.
    ok(h.on("v", &["init", "-d", "2"]));
    ok(h.on("v", &["add", "--id", "a", "--vector", "[1, 0]"]));
    ok(h.on("v", &["add", "--id", "b", "--vector", "[0, 1]"]));
    let exact = ok(h.on("v", &["search", "--json", "--exact", "[1, 0.2]"]));
    assert_eq!(exact, ok(h.on("v", &["search", "--json", "[1, 0.2]"])));
    assert_eq!(json(&exact)[0]["id"], "a");
}

#[test]
fn an_empty_text_in_a_jsonl_file_is_refused_as_on_the_command_line() {
    let h = Home::new();
    ok(h.on("t", &["init"]));
    assert_eq!(run(h.on("t", &["remember", " "])).code, 2, "a blank text argument is a usage error");
    let file = h.write("empty.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"  \"}\n");
    let err = fails(h.on("t", &["remember", "-f", file.to_str().unwrap()]));
    assert!(err.contains("empty.jsonl:2:") && err.contains("empty"), "{err}");
    assert_eq!(records(&h, "t"), 0);
    // With a vector, the text is not embedded, and an empty one is kept as given.
    ok(h.on("v", &["init", "-d", "2"]));
    let with_vector = h.write("v.jsonl", "{\"id\": \"a\", \"text\": \"\", \"vector\": [1, 0]}\n");
    ok(h.on("v", &["add", "-f", with_vector.to_str().unwrap()]));
    assert_eq!(records(&h, "v"), 1);
}

#[test]
fn a_failed_init_leaves_no_directory_behind() {
    let h = Home::new();
    let err = fails(h.on("z0", &["init", "-d", "0"]));
    assert!(err.contains("dimension 0"), "{err}");
    assert_eq!(h.listing("z0"), None, "not even a LOCK");
    let err = fails(h.on("zm", &["init", "--model", "no-such-model"]));
    assert!(err.contains("no-such-model"), "{err}");
    assert_eq!(h.listing("zm"), None);
    let err = fails(h.on("zd", &["init", "-d", "70000"]));
    assert!(err.contains("65,536"), "{err}");
    assert_eq!(h.listing("zd"), None);
}

/// An integer beyond 64 bits in metadata is refused, as the engines refuse it, wherever the CLI
/// reads metadata: before, a JSON parse turned 2^70 into a float, stored rounded, and `update`
/// of a missing record with such metadata said "not found" where the engine says the argument
/// is bad.
#[test]
fn an_integer_beyond_64_bits_in_metadata_is_refused_not_rounded() {
    let h = Home::new();
    ok(h.on("v", &["init", "-d", "3"]));
    for big in ["1180591620717411303424", "9223372036854775808", "-9223372036854775809"] {
        let line = format!(r#"{{"id": "big", "vector": [1, 0, 0], "metadata": {{"n": {big}}}}}"#);
        let file = h.write("big.jsonl", &jsonl_with_last(2, &line));
        let err = fails(h.on("v", &["add", "-f", file.to_str().unwrap()]));
        assert!(err.contains("big.jsonl:3:") && err.contains("64-bit") && err.contains("\"n\""), "{err}");
        // An argument, refused as a bad --where is (status 2).
        let r = run(h.on("v", &["add", "--vector", "[1, 0, 0]", "--meta", &format!(r#"{{"n": {big}}}"#)]));
        assert!(r.code == 2 && r.stderr.contains("--meta: ") && r.stderr.contains("64-bit"), "{}", r.stderr);
        let csv = h.write("big.csv", &format!("id,vector,metadata\nc,\"[1, 0, 0]\",\"{{\"\"n\"\": {big}}}\"\n"));
        let err = fails(h.on("v", &["add", "-f", csv.to_str().unwrap()]));
        assert!(err.contains("big.csv:2:") && err.contains("64-bit"), "{err}");
        for id in ["r0", "missing"] {
            let r = run(h.on("v", &["update", "--meta", &format!(r#"{{"n": {big}}}"#), "--", id]));
            assert!(r.code == 2 && r.stderr.contains("64-bit") && !r.stderr.contains("no record"), "{id}: {}", r.stderr);
        }
        assert_eq!(records(&h, "v"), 0, "nothing stored");
    }
    // At the edges of i64 the integers are stored exactly.
    let edge = h.write("edge.jsonl", "{\"id\": \"max\", \"vector\": [1, 0, 0], \"metadata\": {\"n\": 9223372036854775807}}\n");
    ok(h.on("v", &["add", "-f", edge.to_str().unwrap()]));
    let got = json(&ok(h.on("v", &["--json", "get", "max"])));
    assert_eq!(got[0]["metadata"]["n"], serde_json::json!(i64::MAX), "{got}");
}
