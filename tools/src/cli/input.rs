//! Reading records to store: JSONL, CSV, one text per line, or a whole input as one text.
//!
//! Vectors are read exactly: each number's own text is parsed as an `f32` (correctly rounded),
//! never through an intermediate `f64`, so a vector written by `memento export` (the shortest
//! representation of each `f32`) comes back with the same bits.

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use memento::Metadata;
use serde_json::Value;

/// How an input is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line: `id`, `text`, `metadata` (an object), `vector` (an array of
    /// numbers); each optional, but a text or a vector is needed.
    Jsonl,
    /// Comma-separated values with a header row: columns `id`, `text`, `metadata` (a JSON
    /// object), `vector` (a JSON array); any other column becomes a metadata field (a string).
    Csv,
    /// One text per non-empty line.
    Lines,
    /// The whole input is one text.
    Text,
}

/// One record read from an input. `origin` says where it came from (`FILE:LINE`, `argument`).
#[derive(Debug, Clone, PartialEq)]
pub struct InputRecord {
    /// The id, if given (otherwise derived from the text).
    pub id: Option<String>,
    /// The text.
    pub text: Option<String>,
    /// The metadata.
    pub metadata: Option<Metadata>,
    /// Why the metadata's own text cannot be stored as written (an integer beyond 64 bits,
    /// which parsing turned into a float): reported when the record is checked, in the
    /// engine's order (after the record's id and vector), not while the input is read.
    pub metadata_error: Option<String>,
    /// The vector, if given.
    pub vector: Option<Vec<f32>>,
    /// Where it came from, for error messages.
    pub origin: String,
}

/// The format of a file: from its extension, else from its first character (`{`: JSONL, else
/// one text per line).
pub fn guess_format(path: Option<&Path>, content: &str) -> Format {
    let ext = path.and_then(|p| p.extension()).map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => Format::Csv,
        Some("jsonl" | "ndjson" | "json") => Format::Jsonl,
        Some("txt" | "text") => Format::Lines,
        _ if content.trim_start_matches('\u{feff}').trim_start().starts_with('{') => Format::Jsonl,
        _ => Format::Lines,
    }
}

/// Reads an input whole: a file, or stdin for `-`. Returns the text and the name used in
/// error messages.
pub fn read_input(path: &Path) -> Result<(String, String)> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading stdin")?;
        return Ok((s, "stdin".into()));
    }
    let s = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((s, path.display().to_string()))
}

/// Parses an input in the given format. `name` prefixes error messages (`name:line: ...`).
pub fn parse(content: &str, name: &str, format: Format) -> Result<Vec<InputRecord>> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    match format {
        Format::Jsonl => parse_jsonl(content, name),
        Format::Csv => parse_csv_records(content, name),
        Format::Lines => Ok(content
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| InputRecord {
                id: None,
                text: Some(l.to_owned()),
                metadata: None,
                metadata_error: None,
                vector: None,
                origin: format!("{name}:{}", n + 1),
            })
            .collect()),
        Format::Text => {
            let text = content.trim();
            if text.is_empty() {
                bail!("{name} is empty: there is no text to store");
            }
            Ok(vec![InputRecord { id: None, text: Some(text.to_owned()), metadata: None, metadata_error: None, vector: None, origin: name.to_owned() }])
        }
    }
}

fn parse_jsonl(content: &str, name: &str) -> Result<Vec<InputRecord>> {
    let mut out = Vec::new();
    for (n, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("{name}:{}", n + 1);
        out.push(parse_json_record(line, &origin)?);
    }
    Ok(out)
}

/// One JSONL line: an object with `id`, `text`, `metadata` and `vector`, all optional.
pub fn parse_json_record(line: &str, origin: &str) -> Result<InputRecord> {
    let value: Value = serde_json::from_str(line).map_err(|e| anyhow!("{origin}: not valid JSON ({e})"))?;
    let Value::Object(obj) = value else {
        bail!("{origin}: expected a JSON object with \"text\", \"id\", \"metadata\" or \"vector\"");
    };
    let mut rec = InputRecord { id: None, text: None, metadata: None, metadata_error: None, vector: None, origin: origin.to_owned() };
    for (key, v) in &obj {
        match key.as_str() {
            "id" => rec.id = id_value(v).map_err(|e| anyhow!("{origin}: {e}"))?,
            "text" => match v {
                Value::String(s) => rec.text = Some(s.clone()),
                Value::Null => {}
                _ => bail!("{origin}: \"text\" must be a string"),
            },
            "metadata" => match v {
                Value::Object(m) => {
                    // The metadata's own text (parsing has turned an integer beyond 64 bits into
                    // a float): refused as the engines refuse it, not stored rounded.
                    let raw = raw_field(line, "metadata").ok_or_else(|| anyhow!("{origin}: cannot find the \"metadata\" field's text"))?;
                    rec.metadata_error = memento::limits::check_json_text(raw, "metadata").err();
                    rec.metadata = Some(m.clone());
                }
                Value::Null => {}
                _ => bail!("{origin}: \"metadata\" must be a JSON object"),
            },
            "vector" => {
                if !v.is_null() {
                    let raw = raw_field(line, "vector").ok_or_else(|| anyhow!("{origin}: cannot find the \"vector\" field's text"))?;
                    rec.vector = Some(parse_vector(raw).map_err(|e| anyhow!("{origin}: {e}"))?);
                }
            }
            other => bail!("{origin}: unknown field {other:?} (a record has \"id\", \"text\", \"metadata\" and \"vector\")"),
        }
    }
    if rec.text.is_none() && rec.vector.is_none() {
        bail!("{origin}: the record has neither a \"text\" nor a \"vector\"");
    }
    // As for a text argument, a blank line of a text file, or an empty CSV cell: an empty text
    // is not embedded as if it were one.
    if rec.vector.is_none() && rec.text.as_deref().is_some_and(|t| t.trim().is_empty()) {
        bail!("{origin}: the \"text\" is empty, and the record has no \"vector\": there is nothing to embed");
    }
    Ok(rec)
}

/// A record's id as given (an empty one is refused with the rest, by the engine's id check).
fn id_value(v: &Value) -> std::result::Result<Option<String>, String> {
    match v {
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Value::Null => Ok(None),
        _ => Err("\"id\" must be a string (or an integer)".into()),
    }
}

/// A vector from its JSON text, `[0.25, -1e-3, ...]`, each element parsed from its own digits
/// as an `f32` (correctly rounded: the shortest representation of an `f32` gives it back
/// exactly). An element beyond the range of an `f32` becomes an infinity, which the engine's
/// vector check refuses like any other, in its order (the record's id before its vector).
pub fn parse_vector(raw: &str) -> std::result::Result<Vec<f32>, String> {
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("the vector is not valid JSON ({e})"))?;
    let Value::Array(items) = value else {
        return Err("the vector must be a JSON array of numbers".into());
    };
    if let Some(i) = items.iter().position(|x| !x.is_number()) {
        return Err(format!("element {i} of the vector is not a number"));
    }
    let inner = raw.trim().strip_prefix('[').and_then(|s| s.strip_suffix(']')).ok_or("the vector must be a JSON array of numbers")?;
    if inner.trim().is_empty() {
        return Err("the vector is empty".into());
    }
    // Valid JSON holding only numbers: the text between the brackets is numbers and commas.
    inner.split(',').enumerate().map(|(i, t)| t.trim().parse::<f32>().map_err(|e| format!("element {i} of the vector ({}): {e}", t.trim()))).collect()
}

/// The raw text of a top-level field of a JSON object (the last one, if repeated, as
/// serde_json keeps). The text must be valid JSON (checked before).
fn raw_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let b = json.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut found = None;
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b'}' => return found,
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = skip_string(b, i)?;
        let name: String = serde_json::from_str(json.get(i..key_end)?).ok()?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = skip_value(b, start)?;
        if name == key {
            found = Some(json.get(start..end)?);
        }
        i = end;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// `b[i]` is the opening quote; returns the index after the closing one.
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match b.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// Returns the index after the JSON value that starts at `i`.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match b.get(i)? {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            while !matches!(b.get(i), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')) {
                i += 1;
            }
            Some(i)
        }
    }
}

/// Rows of a CSV text (RFC 4180: quoted fields, `""` inside quotes, CRLF or LF), each with the
/// line it starts on.
pub fn parse_csv(content: &str, name: &str) -> Result<Vec<(usize, Vec<String>)>> {
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut chars = content.chars().peekable();
    let mut line = 1;
    let mut row_line = 1;
    let mut in_quotes = false;
    let mut quoted_field = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !quoted_field => {
                in_quotes = true;
                quoted_field = true;
            }
            '"' => bail!("{name}:{line}: a quote inside an unquoted field (quote the whole field and double the quote)"),
            ',' => {
                row.push(std::mem::take(&mut field));
                quoted_field = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                quoted_field = false;
                if !(row.len() == 1 && row[0].is_empty()) {
                    rows.push((row_line, std::mem::take(&mut row)));
                }
                row.clear();
                line += 1;
                row_line = line;
            }
            _ if quoted_field => bail!("{name}:{line}: text after a quoted field's closing quote"),
            _ => field.push(c),
        }
    }
    if in_quotes {
        bail!("{name}:{row_line}: a quoted field is not closed");
    }
    if !field.is_empty() || quoted_field || !row.is_empty() {
        row.push(field);
        rows.push((row_line, row));
    }
    Ok(rows)
}

fn parse_csv_records(content: &str, name: &str) -> Result<Vec<InputRecord>> {
    let mut rows = parse_csv(content, name)?.into_iter();
    let Some((_, header)) = rows.next() else {
        return Ok(Vec::new());
    };
    let header: Vec<String> = header.into_iter().map(|h| h.trim().to_owned()).collect();
    if !header.iter().any(|h| h == "text" || h == "vector") {
        bail!("{name}:1: the header row needs a \"text\" or a \"vector\" column (found: {})", header.join(", "));
    }
    for (i, h) in header.iter().enumerate() {
        if h.is_empty() {
            bail!("{name}:1: column {} has no name", i + 1);
        }
        if header[..i].contains(h) {
            bail!("{name}:1: the column {h:?} appears twice");
        }
    }
    let mut out = Vec::new();
    for (line, row) in rows {
        let origin = format!("{name}:{line}");
        if row.len() != header.len() {
            bail!("{origin}: {} fields where the header has {}", row.len(), header.len());
        }
        let mut rec = InputRecord { id: None, text: None, metadata: None, metadata_error: None, vector: None, origin: origin.clone() };
        let mut extra = Metadata::new();
        for (h, cell) in header.iter().zip(row) {
            if cell.is_empty() {
                continue;
            }
            match h.as_str() {
                "id" => rec.id = Some(cell),
                "text" => rec.text = Some(cell),
                "metadata" => match serde_json::from_str::<Value>(&cell) {
                    Ok(Value::Object(m)) => {
                        rec.metadata_error = memento::limits::check_json_text(&cell, "metadata").err();
                        rec.metadata = Some(m);
                    }
                    _ => bail!("{origin}: the \"metadata\" column must hold a JSON object"),
                },
                "vector" => rec.vector = Some(parse_vector(&cell).map_err(|e| anyhow!("{origin}: {e}"))?),
                other => {
                    extra.insert(other.to_owned(), Value::String(cell));
                }
            }
        }
        if !extra.is_empty() {
            let mut m = rec.metadata.take().unwrap_or_default();
            for (k, v) in extra {
                m.entry(k).or_insert(v);
            }
            rec.metadata = Some(m);
        }
        if rec.text.is_none() && rec.vector.is_none() {
            bail!("{origin}: the row has neither a text nor a vector");
        }
        out.push(rec);
    }
    Ok(out)
}

/// A JSON object given on the command line (`--meta`).
pub fn parse_metadata_arg(s: &str) -> std::result::Result<Metadata, String> {
    // Before parsing, which would turn an integer beyond 64 bits into a float.
    memento::limits::check_json_text(s, "metadata")?;
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("the metadata must be a JSON object, like '{{\"lang\": \"en\"}}', not {s}")),
        Err(e) => Err(format!("the metadata is not valid JSON ({e})")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_parsed_from_their_own_digits() {
        let v = parse_vector("[0.1, -1e-45, 3.4028235e38, 1E+2, -0]").unwrap();
        assert_eq!(v[0].to_bits(), 0.1f32.to_bits());
        assert_eq!(v[1].to_bits(), (-1e-45f32).to_bits());
        assert_eq!(v[2], f32::MAX);
        assert_eq!(v[3], 100.0);
        assert_eq!(v[4].to_bits(), (-0.0f32).to_bits());
        // Beyond float32: an infinity, for the engine's vector check to refuse in its order.
        assert_eq!(parse_vector("[1e39, -1e39]").unwrap(), vec![f32::INFINITY, f32::NEG_INFINITY]);
        assert!(parse_vector("[]").is_err());
        assert!(parse_vector("[1, \"a\"]").is_err());
        assert!(parse_vector("{}").is_err());
    }

    #[test]
    fn the_raw_field_is_the_top_level_one() {
        let line = r#"{"metadata": {"vector": [9]}, "text": "a \"vector\": [8]", "vector" : [1.5, 2] , "id": "x"}"#;
        assert_eq!(raw_field(line, "vector"), Some("[1.5, 2]"));
        let r = parse_json_record(line, "t:1").unwrap();
        assert_eq!(r.vector, Some(vec![1.5, 2.0]));
        assert_eq!(r.id.as_deref(), Some("x"));
        let nested = r#"{"vector": [1], "x": {"a": [1, {"b": "]"}]}}"#;
        assert!(parse_json_record(nested, "t:1").is_err(), "unknown field x");
        assert_eq!(raw_field(nested, "vector"), Some("[1]"));
    }

    #[test]
    fn jsonl_records_are_checked() {
        assert!(parse_json_record(r#"{"text": 3}"#, "t:1").is_err());
        assert!(parse_json_record(r#"{"id": "a"}"#, "t:1").is_err());
        assert!(parse_json_record(r#"{"text": "a", "metadata": [1]}"#, "t:1").is_err());
        assert!(parse_json_record("[1]", "t:1").is_err());
        let e = parse_json_record("{", "f.jsonl:7").unwrap_err().to_string();
        assert!(e.starts_with("f.jsonl:7: not valid JSON"), "{e}");
        assert_eq!(parse_json_record(r#"{"id": 7, "text": "a"}"#, "t:1").unwrap().id.as_deref(), Some("7"));
    }

    #[test]
    fn csv_quotes_newlines_and_extra_columns() {
        let csv = "id,text,lang\r\na,\"hello, \"\"world\"\"\",en\nb,\"two\nlines\",\n\nc,plain,fr";
        let recs = parse(csv, "f.csv", Format::Csv).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].text.as_deref(), Some("hello, \"world\""));
        assert_eq!(recs[0].metadata.as_ref().unwrap()["lang"], "en");
        assert_eq!(recs[1].text.as_deref(), Some("two\nlines"));
        assert!(recs[1].metadata.is_none());
        assert_eq!(recs[2].origin, "f.csv:6");
        assert!(parse("id,text\na,\"open", "f.csv", Format::Csv).is_err());
        assert!(parse("id,text\na,b,c", "f.csv", Format::Csv).is_err());
        assert!(parse("id,name\na,b", "f.csv", Format::Csv).is_err());
        let v = parse("id,vector\nv,\"[0.5, 1]\"", "f.csv", Format::Csv).unwrap();
        assert_eq!(v[0].vector, Some(vec![0.5, 1.0]));
    }

    #[test]
    fn formats_are_guessed() {
        assert_eq!(guess_format(Some(Path::new("a.CSV")), ""), Format::Csv);
        assert_eq!(guess_format(Some(Path::new("a.jsonl")), ""), Format::Jsonl);
        assert_eq!(guess_format(None, "  {\"text\": \"a\"}"), Format::Jsonl);
        assert_eq!(guess_format(None, "a note"), Format::Lines);
    }
}
