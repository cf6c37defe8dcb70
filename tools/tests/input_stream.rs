//! Issue 14, item 7: `add`/`remember --file` and `import` read their input in passes (checked
//! whole, then written a batch at a time) instead of holding it. What they store, and what they
//! refuse, is what they did when they held it.

#![allow(clippy::unwrap_used)]

mod common;

use common::{fails, json, ok, records, Home};

/// A float of the vector of record `i`, element `j`: awkward digits, exactly an f32's shortest
/// text.
fn element(i: usize, j: usize) -> f32 {
    let x = ((i * 7919 + j * 104_729) % 1_000_003) as f32;
    (x / 999_983.0 - 0.5) * 3.7e-3_f32.powi((j % 3) as i32)
}

fn vector_text(i: usize, dim: usize) -> String {
    let items: Vec<String> = (0..dim).map(|j| format!("{:?}", element(i, j))).collect();
    format!("[{}]", items.join(", "))
}

/// `n` records of `dim` dimensions as JSONL, each with an id and a little metadata.
fn jsonl(n: usize, dim: usize) -> String {
    (0..n).map(|i| format!("{{\"id\": \"r{i}\", \"vector\": {}, \"metadata\": {{\"i\": {i}}}}}\n", vector_text(i, dim))).collect()
}

#[test]
fn a_bad_line_late_in_a_big_file_writes_nothing() {
    let h = Home::new();
    ok(h.on("v", &["init", "-d", "8", "--metric", "dot"]));
    let good = jsonl(5000, 8);
    // Record 4,800 of 5,000 (line 4,800): five batches of 1,024 would have been committed
    // before it.
    let with_bad = |bad: &str| {
        let mut lines: Vec<&str> = good.lines().collect();
        lines[4799] = bad;
        lines.join("\n") + "\n"
    };
    let cases = [
        (r#"{"id": "bad", "vector": [1, 0, 0, 0, 0, 0, 0, 0], "metadata": {"k\u0000": 1}}"#, "NUL"),
        (r#"{"id": "bad", "vector": [1, 0, 0]}"#, "3 dimensions"),
        (r#"{"id": "bad", "vector": [1, 0, 0, 0, 0, 0, 0, 1e39]}"#, "element 7 is inf"),
        (r#"{"id": "", "vector": [1, 0, 0, 0, 0, 0, 0, 0]}"#, "1 to 1024 bytes"),
        (r#"{"id": "bad", "vector": [1, 0, 0, 0, 0, 0, 0, 0], "metadata": {"n": 18446744073709551616}}"#, "64-bit"),
        (r#"{"id": "r3", "vector": [1, 0, 0, 0, 0, 0, 0, 0]}"#, "big.jsonl:4), with something different"),
        (r#"{"id": "bad", "vector": [1, 0, 0, 0, 0, 0, 0, 0], "oops": 1}"#, "unknown field"),
        ("{not json", "not valid JSON"),
    ];
    for (bad, says) in cases {
        let file = h.write("big.jsonl", &with_bad(bad));
        let err = fails(h.on("v", &["add", "-f", file.to_str().unwrap()]));
        assert!(err.contains("big.jsonl:4800:") && err.contains(says), "{says}: {err}");
        assert_eq!(records(&h, "v"), 0, "nothing of the file is stored ({says})");
        // Into a store that does not exist: refused, and none is made.
        fails(h.on("new", &["add", "-f", file.to_str().unwrap()]));
        assert_eq!(h.listing("new"), None);
    }
    // A bad id late is named before a bad vector early: every id is checked first, as before.
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    lines[10] = r#"{"id": "early", "vector": [1, 0]}"#.into();
    lines[4900] = format!(r#"{{"id": "{}", "vector": [1, 0, 0, 0, 0, 0, 0, 0]}}"#, "x".repeat(1025));
    let file = h.write("ids.jsonl", &(lines.join("\n") + "\n"));
    let err = fails(h.on("v", &["add", "-f", file.to_str().unwrap()]));
    assert!(err.contains("ids.jsonl:4901:") && err.contains("1 to 1024 bytes"), "{err}");
    // Text that is not UTF-8 at the end of the file is named before a bad line at its start, as
    // when the file was read whole first.
    let mut bytes = with_bad("{not json").into_bytes();
    bytes.extend_from_slice(b"{\"id\": \"\xff\"}\n");
    let file = h.path("utf8.jsonl");
    std::fs::write(&file, bytes).unwrap();
    let err = fails(h.on("v", &["add", "-f", file.to_str().unwrap()]));
    assert!(err.contains("cannot read") && err.contains("UTF-8"), "{err}");
    // The same with an export into a new store: no store is made.
    let export = h.write("export.jsonl", &format!("{}{}", export_header(8, 5000), with_bad(r#"{"id": "bad", "vector": [1]}"#)));
    let err = fails(h.on("new", &["import", export.to_str().unwrap()]));
    assert!(err.contains("export.jsonl:4801:") && err.contains("1 dimensions"), "{err}");
    assert_eq!(h.listing("new"), None);
    assert_eq!(records(&h, "v"), 0);
}

fn export_header(dimension: usize, count: usize) -> String {
    format!("{{\"memento_export\": 1, \"dimension\": {dimension}, \"metric\": \"dot\", \"model\": null, \"count\": {count}}}\n")
}

#[test]
fn an_input_bigger_than_a_batch_is_written_a_batch_at_a_time() {
    let h = Home::new();
    ok(h.on("v", &["init", "-d", "16", "--metric", "dot"]));
    // 3,000 records, the 2,500th given twice (the very same record: stored once).
    let mut input = jsonl(3000, 16);
    let repeated = input.lines().nth(2499).unwrap().to_owned();
    input.push_str(&repeated);
    input.push('\n');
    let file = h.write("many.jsonl", &input);
    let s = json(&ok(h.on("v", &["add", "--json", "-f", file.to_str().unwrap()])));
    assert_eq!((s["records"].as_u64(), s["new"].as_u64(), s["unchanged"].as_u64(), s["commits"].as_u64()), (Some(3001), Some(3000), Some(1), Some(3)), "{s}");
    assert_eq!(s["ids"].as_array().unwrap().len(), 3001);
    assert_eq!(s["ids"][3000], "r2499");
    assert_eq!(records(&h, "v"), 3000);
    for i in [0, 1023, 1024, 2999] {
        let got = json(&ok(h.on("v", &["get", "--json", "--vector", &format!("r{i}")])));
        let v: Vec<f32> = got[0]["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let want: Vec<f32> = (0..16).map(|j| element(i, j)).collect();
        assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), "r{i}");
        assert_eq!(got[0]["metadata"]["i"], i);
    }
    // A second run changes nothing and commits nothing.
    let again = json(&ok(h.on("v", &["add", "--json", "-f", file.to_str().unwrap()])));
    assert_eq!((again["unchanged"].as_u64(), again["commits"].as_u64()), (Some(3001), Some(0)), "{again}");

    // An export read from stdin (copied aside, since it is read twice) into a new store, in
    // batches of 700, gives back the same export.
    let export = ok(h.on("v", &["export"]));
    let mut c = h.on("w", &["import", "--json", "--batch", "700", "-"]);
    c.write_stdin(export.clone());
    let s = json(&ok(c));
    assert_eq!((s["new"].as_u64(), s["commits"].as_u64()), (Some(3000), Some(5)), "{s}");
    assert_eq!(ok(h.on("w", &["export"])), export);

    // A CSV file bigger than a batch, with a --meta for every row.
    let mut csv = String::from("id,vector,lang\n");
    for i in 0..2100 {
        csv.push_str(&format!("c{i},\"{}\",en\n", vector_text(i, 16)));
    }
    let file = h.write("many.csv", &csv);
    let s = json(&ok(h.on("v", &["add", "--json", "--meta", r#"{"src": "csv"}"#, "-f", file.to_str().unwrap()])));
    assert_eq!((s["new"].as_u64(), s["commits"].as_u64()), (Some(2100), Some(3)), "{s}");
    let got = json(&ok(h.on("v", &["get", "--json", "c2099"])));
    assert_eq!(got[0]["metadata"], serde_json::json!({"lang": "en", "src": "csv"}));
}
