//! What the commands print: JSON values of records and hits, the result table, sizes.

use std::io::Write;

use anyhow::Result;
use memento::{Metadata, Metric, Record, SearchHit};
use serde_json::{json, Value};

/// An `f32` as a JSON number printed with the `f32`'s shortest representation (`0.1`, not the
/// `0.10000000149011612` of its `f64` widening). Parsing that text as an `f32` gives the same
/// bits back.
pub fn f32_value(x: f32) -> Value {
    // The shortest decimal of a finite f32 has at most 9 significant digits, so the f64 nearest
    // to it prints as the same digits.
    match x.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
        Some(n) => Value::Number(n),
        None => Value::Null,
    }
}

/// A vector as a JSON array of shortest `f32` representations.
pub fn vector_value(v: &[f32]) -> Value {
    Value::Array(v.iter().map(|&x| f32_value(x)).collect())
}

/// A record as JSON: `id`, `text`, `metadata`, and `vector` if asked for.
pub fn record_value(r: &Record, with_vector: bool) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("id".into(), Value::String(r.id.clone()));
    o.insert("text".into(), r.text.clone().map_or(Value::Null, Value::String));
    o.insert("metadata".into(), r.metadata.clone().map_or(Value::Null, Value::Object));
    if with_vector {
        o.insert("vector".into(), vector_value(&r.vector));
    }
    Value::Object(o)
}

/// Hits as a JSON array of `rank`, `id`, `score`, `distance`, `text`, `metadata` (the score is
/// the engine's, [`SearchHit::score`]: higher is closer).
pub fn hits_value(hits: &[SearchHit]) -> Value {
    Value::Array(
        hits.iter()
            .enumerate()
            .map(|(i, h)| {
                json!({
                    "rank": i + 1,
                    "id": h.id,
                    "score": f32_value(h.score),
                    "distance": f32_value(h.distance),
                    "text": h.text,
                    "metadata": h.metadata,
                })
            })
            .collect(),
    )
}

/// One JSON document on one line.
pub fn print_json(out: &mut dyn Write, v: &Value) -> Result<()> {
    write_json_line(out, v)
}

/// `v` as compact JSON and a newline. Serialised first, then written, so that a write error
/// stays an `io::Error` (serde_json's own error hides it from the error chain, and a closed
/// pipe must be recognised as one).
pub fn write_json_line(out: &mut dyn Write, v: &Value) -> Result<()> {
    let mut line = v.to_string();
    line.push('\n');
    out.write_all(line.as_bytes())?;
    Ok(())
}

/// The width to fit lines to: `$COLUMNS`, else 100.
pub fn width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|&c| c > 0).unwrap_or(100).max(40)
}

/// `s` on one line (runs of whitespace made one space), cut to `max` characters with `…`.
pub fn excerpt(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Metadata as compact JSON (`{"lang":"en"}`), or empty.
pub fn compact_metadata(m: Option<&Metadata>) -> String {
    m.map(|m| Value::Object(m.clone()).to_string()).unwrap_or_default()
}

/// The result table: per hit, a line with rank, score, id and metadata, and the text's
/// beginning indented under it. Vector hits under L2 show their distance (`metric` is then
/// `Some(L2)`); keyword and hybrid hits (`metric` `None`) their BM25 or fused score.
pub fn print_hits(out: &mut dyn Write, hits: &[SearchHit], metric: Option<Metric>) -> Result<()> {
    if hits.is_empty() {
        writeln!(out, "no results")?;
        return Ok(());
    }
    let w = width();
    let id_w = hits.iter().map(|h| h.id.chars().count()).max().unwrap_or(2).max(2);
    let label = if metric == Some(Metric::L2) { "distance" } else { "score" };
    let num_w = label.len().max(6);
    writeln!(out, "{:>3}  {label:<num_w$}  {:<id_w$}  metadata", "#", "id")?;
    for (i, h) in hits.iter().enumerate() {
        let shown = if metric == Some(Metric::L2) { h.distance } else { h.score };
        let head = format!("{:>3}  {:<num_w$.4}  {:<id_w$}", i + 1, shown, h.id);
        let meta = compact_metadata(h.metadata.as_ref());
        let room = w.saturating_sub(head.chars().count() + 2).max(10);
        if meta.is_empty() {
            writeln!(out, "{}", head.trim_end())?;
        } else {
            writeln!(out, "{head}  {}", excerpt(&meta, room))?;
        }
        if let Some(t) = &h.text {
            writeln!(out, "     {}", excerpt(t, w.saturating_sub(5)))?;
        }
    }
    Ok(())
}

/// A byte count for people: `812 B`, `4.1 kB`, `16.4 MB`.
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes < 1000 {
        format!("{bytes} B")
    } else if b < 1e6 {
        format!("{:.1} kB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.2} GB", b / 1e9)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_shortest_and_read_back_exactly() {
        for x in [0.1f32, 1.0 / 3.0, -1e-45, f32::MAX, f32::MIN_POSITIVE, 123456.79, 0.0, -0.0] {
            let s = f32_value(x).to_string();
            let back: f32 = s.parse().unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x} printed as {s}");
        }
        assert_eq!(f32_value(0.1).to_string(), "0.1");
    }

    #[test]
    fn excerpts_are_one_line_and_cut() {
        assert_eq!(excerpt("a\n  b\tc", 80), "a b c");
        assert_eq!(excerpt("abcdef", 4), "abc…");
        assert_eq!(excerpt("ééééé", 3), "éé…");
    }
}
