//! Every limit of the engine's inputs, stated once: the Python engine mirrors these in
//! `memento/_limits.py` (a test holds the two to the same values, through the native module),
//! and README's "Limits" table states them for users.
//!
//! | what | limit |
//! |------|-------|
//! | dimension | 1 to [`MAX_DIMENSION`]; a vector must fit one page ([`min_page_size`]) |
//! | page size | a power of two, [`MIN_PAGE_SIZE`] to [`MAX_PAGE_SIZE`] ([`DEFAULT_PAGE_SIZE`] by default) |
//! | id | 1 to [`MAX_ID_BYTES`] bytes of UTF-8 |
//! | vector | finite; under dot and l2 a Euclidean norm of at most [`MAX_VECTOR_NORM`] |
//! | metadata, filter | JSON nested at most [`MAX_JSON_DEPTH`] levels; integers within `i64` |
//! | filter | at most [`MAX_FILTER_TERMS`] conditions and list values |
//! | text of a record | at most [`MAX_TEXT_BYTES`] (768 MiB) of UTF-8 |
//! | metadata of a record | at most [`MAX_METADATA_BYTES`] (64 MiB) as compact JSON |

use memento_format::page::{VectorLayout, HEADER_LEN};
use memento_format::superblock;
use serde_json::{Map, Number, Value};

/// The largest dimension (it also needs a page that holds one vector: [`min_page_size`]).
pub const MAX_DIMENSION: usize = superblock::MAX_DIMENSION as usize;
/// The smallest page size.
pub const MIN_PAGE_SIZE: u32 = superblock::MIN_PAGE_SIZE;
/// The largest page size.
pub const MAX_PAGE_SIZE: u32 = superblock::MAX_PAGE_SIZE;
/// The page size of a new store unless one is chosen.
pub const DEFAULT_PAGE_SIZE: u32 = 65_536;
/// The bytes of a vector page before its first vector (the header and one slot number,
/// aligned to 64): a page of `P` bytes holds a vector of dimension `d` if `4d + this ≤ P`.
pub const PAGE_OVERHEAD: usize = memento_format::align_up(HEADER_LEN + 8, 64);
/// The longest id, in bytes of UTF-8.
pub const MAX_ID_BYTES: usize = memento_format::wal::MAX_ID_LEN;
/// The largest WAL record (id, text, metadata and vector of one record, with its header).
pub const MAX_RECORD_BYTES: usize = memento_format::wal::MAX_RECORD_LEN;
/// The longest text of a record, in bytes of UTF-8 (768 MiB).
pub const MAX_TEXT_BYTES: usize = 768 << 20;
/// The longest metadata of a record, in bytes of compact JSON (64 MiB).
pub const MAX_METADATA_BYTES: usize = 64 << 20;
/// SQLite's largest string, blob or row (`SQLITE_MAX_LENGTH` as built): a record the mirror
/// cannot hold would be refused by it after the WAL committed it, and every open of the store
/// would then fail replaying it. Each limit above is checked on its own, at every write, so that
/// any record within them fits both the WAL and the mirror, whatever an update changes:
const SQLITE_MAX_LENGTH: usize = 1_000_000_000;
const _: () = {
    // A put's WAL record: its header and fixed part, the id, text, metadata and vector.
    let fixed = memento_format::wal::RECORD_HEADER_LEN + memento_format::wal::put::LEN;
    let largest = fixed + MAX_ID_BYTES + MAX_TEXT_BYTES + MAX_METADATA_BYTES + 4 * MAX_DIMENSION;
    assert!(largest + 8 <= MAX_RECORD_BYTES && largest + 4096 <= SQLITE_MAX_LENGTH);
};
/// How deeply a metadata object or a filter may nest objects and lists (`{"a": 1}` is 1 level,
/// `{"a": [1]}` 2, `{"$and": [{"a": 1}]}` 3).
pub const MAX_JSON_DEPTH: usize = 32;
/// How many conditions and `$in`/`$nin` list values a filter may hold in all.
pub const MAX_FILTER_TERMS: usize = 4096;
/// The largest Euclidean norm of a vector under the dot and l2 metrics: with it, `|a·b| ≤
/// 1e36` and `‖a − b‖² ≤ 4e36`, both finite in float32 (whose largest value is 3.4e38), so no
/// distance overflows.
pub const MAX_VECTOR_NORM: f64 = 1e18;

/// Whether `page_size` is a page size a store may have.
pub fn page_size_ok(page_size: u32) -> bool {
    page_size.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size)
}

/// The largest dimension a page of `page_size` bytes holds (0 if it is too small for any).
pub fn max_dimension(page_size: u32) -> usize {
    ((page_size as usize).saturating_sub(PAGE_OVERHEAD) / 4).min(MAX_DIMENSION)
}

/// The smallest page size that holds a vector of dimension `dim` (`None` if `dim` is outside 1
/// to [`MAX_DIMENSION`]).
pub fn min_page_size(dim: usize) -> Option<u32> {
    if dim == 0 || dim > MAX_DIMENSION {
        return None;
    }
    let need = (PAGE_OVERHEAD + 4 * dim).max(MIN_PAGE_SIZE as usize).next_power_of_two();
    let ps = u32::try_from(need).ok().filter(|&p| p <= MAX_PAGE_SIZE)?;
    debug_assert!(VectorLayout::new(dim, ps as usize).is_some());
    Some(ps)
}

/// Why a store of dimension `dim` cannot have pages of `page_size` bytes, if it cannot: the
/// message (the same in the Python engine) names the limit and the way out.
pub fn check_layout(dim: usize, page_size: u32) -> Result<(), String> {
    if dim == 0 || dim > MAX_DIMENSION {
        return Err(format!("dimension {dim} is outside 1 to 65,536"));
    }
    if !page_size_ok(page_size) {
        return Err(format!("page size {page_size} is not a power of two from 8 KiB to 16 MiB"));
    }
    match min_page_size(dim) {
        Some(need) if need > page_size => Err(format!(
            "dimension {dim} needs a page of at least {need} bytes, and the page size is {page_size} (which holds up to {} dimensions): pass page_size={need}",
            max_dimension(page_size)
        )),
        _ => Ok(()),
    }
}

/// Why a vector of the dot or l2 metric cannot be stored or searched with, if it cannot: its
/// Euclidean norm (computed in f64) exceeds [`MAX_VECTOR_NORM`].
pub fn check_vector_norm(v: &[f32]) -> Result<(), String> {
    let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    if norm > MAX_VECTOR_NORM {
        return Err(format!("its Euclidean norm is {norm:e}, above the limit of 1e18 under the dot and l2 metrics (a larger one can overflow a distance)"));
    }
    Ok(())
}

/// The checks of JSON text that parsing it does not make, and that must come before parsing:
/// it nests at most [`MAX_JSON_DEPTH`] levels (`what` names it: "metadata", "a filter"), and
/// every integer in it (a number without a fraction or exponent) fits an `i64`. The text need
/// not be valid JSON (the parser then says why not); the scan is lexical.
pub fn check_json_text(text: &str, what: &str) -> Result<(), String> {
    let b = text.as_bytes();
    // The innermost key before the current position that is not an operator, to name.
    let (mut i, mut depth, mut key): (usize, usize, Option<&str>) = (0, 0, None);
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i + 1;
                i = start;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let s = text.get(start..i.min(b.len()));
                i += 1;
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if b.get(j) == Some(&b':') && s.is_some_and(|s| !s.starts_with('$')) {
                    key = s;
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(format!("{what} nests at most {MAX_JSON_DEPTH} levels of objects and lists"));
                }
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    i += 1;
                }
                let tok = &text[start..i];
                let digits = tok.strip_prefix('-').unwrap_or(tok);
                if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) && tok.parse::<i64>().is_err() {
                    return Err(int_range_error(what, key, tok));
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// The same checks on parsed JSON (what a Rust caller builds): depth, and no integer above
/// `i64::MAX` (serde_json holds those exactly, as `u64`).
pub fn check_json_value(v: &Value, what: &str) -> Result<(), String> {
    check_value(v, what, 1, None)
}

/// [`check_json_value`] of a metadata object (a map, not a [`Value`]). A message names the
/// innermost key (not an operator) above the offending value.
pub fn check_metadata(m: &Map<String, Value>) -> Result<(), String> {
    for (k, v) in m {
        check_value(v, "metadata", 2, Some(k))?;
    }
    Ok(())
}

fn check_value(v: &Value, what: &str, depth: usize, key: Option<&str>) -> Result<(), String> {
    let nested = |v: &Value| matches!(v, Value::Array(_) | Value::Object(_));
    if nested(v) && depth > MAX_JSON_DEPTH {
        return Err(format!("{what} nests at most {MAX_JSON_DEPTH} levels of objects and lists"));
    }
    match v {
        Value::Number(n) if !int_ok(n) => Err(int_range_error(what, key, &n.to_string())),
        Value::Array(items) => items.iter().try_for_each(|x| check_value(x, what, depth + 1, key)),
        Value::Object(m) => m.iter().try_for_each(|(k, x)| check_value(x, what, depth + 1, if k.starts_with('$') { key } else { Some(k) })),
        _ => Ok(()),
    }
}

/// An integer that fits an `i64` (SQLite's INTEGER), or a float.
fn int_ok(n: &Number) -> bool {
    n.is_i64() || n.is_f64()
}

fn int_range_error(what: &str, key: Option<&str>, tok: &str) -> String {
    let shown: String = if tok.len() > 40 { format!("{}…", &tok[..40]) } else { tok.to_owned() };
    let at = key.map(|k| format!(" under the key {k:?}")).unwrap_or_default();
    format!("the integer {shown}{at} in {what} is outside the range of a 64-bit signed integer (-9223372036854775808 to 9223372036854775807); store a larger one as a string or a float")
}

/// Refuses a text longer than [`MAX_TEXT_BYTES`], naming the limit.
pub fn check_text(text: &str) -> Result<(), String> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(format!("a text is at most {MAX_TEXT_BYTES} bytes (768 MiB) of UTF-8, and this one is {}", text.len()));
    }
    Ok(())
}

/// Refuses metadata whose compact JSON is longer than [`MAX_METADATA_BYTES`], naming the limit.
pub fn check_metadata_len(json: &str) -> Result<(), String> {
    if json.len() > MAX_METADATA_BYTES {
        return Err(format!("metadata is at most {MAX_METADATA_BYTES} bytes (64 MiB) as JSON, and this is {}", json.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert_eq!(max_dimension(DEFAULT_PAGE_SIZE), 16_352);
        assert_eq!(min_page_size(16_352), Some(65_536));
        assert_eq!(min_page_size(16_353), Some(131_072));
        assert_eq!(min_page_size(1), Some(8192));
        assert_eq!(min_page_size(MAX_DIMENSION), Some(512 * 1024));
        assert_eq!(min_page_size(0), None);
        for dim in [1, 2, 100, 2016, 2017, 4000, 16_352, 16_353, 40_000, 65_536] {
            let ps = min_page_size(dim).expect("in range");
            assert!(VectorLayout::new(dim, ps as usize).is_some(), "{dim} fits {ps}");
            assert!(ps == MIN_PAGE_SIZE || VectorLayout::new(dim, ps as usize / 2).is_none(), "{dim} does not fit {}", ps / 2);
            assert!(max_dimension(ps) >= dim);
        }
        let e = check_layout(16_353, DEFAULT_PAGE_SIZE).expect_err("refused");
        assert!(e.contains("needs a page of at least 131072 bytes") && e.contains("page_size=131072"), "{e}");
    }

    #[test]
    fn json_text() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(check_json_text(&deep(MAX_JSON_DEPTH), "metadata").is_ok());
        let e = check_json_text(&deep(MAX_JSON_DEPTH + 1), "metadata").expect_err("refused");
        assert!(e.contains("metadata nests at most 32 levels"), "{e}");
        // Brackets and digits inside strings are not structure.
        assert!(check_json_text(&format!(r#"{{"a": "{}", "b": "9999999999999999999999"}}"#, "[".repeat(100)), "metadata").is_ok());
        assert!(check_json_text(r#"{"a\"[": 9223372036854775807, "b": -9223372036854775808, "c": 1e300, "d": 1.5}"#, "metadata").is_ok());
        let e = check_json_text(r#"{"x": 1, "big": 1180591620717411303424}"#, "metadata").expect_err("refused");
        assert!(e.contains("1180591620717411303424") && e.contains("\"big\"") && e.contains("64-bit"), "{e}");
        assert!(check_json_text("9223372036854775808", "a filter").is_err());
        assert!(check_json_text("-9223372036854775809", "a filter").is_err());
    }

    #[test]
    fn json_value() {
        let mut m = Map::new();
        m.insert("u".into(), Value::from(u64::MAX));
        assert!(check_metadata(&m).expect_err("refused").contains("\"u\""));
        m.insert("u".into(), Value::from(i64::MIN));
        assert!(check_metadata(&m).is_ok());
        let mut v = Value::from(1);
        for _ in 0..MAX_JSON_DEPTH {
            v = Value::Array(vec![v]);
        }
        assert!(check_json_value(&v, "a filter").is_ok());
        assert!(check_json_value(&Value::Array(vec![v]), "a filter").is_err());
    }

    #[test]
    fn norms() {
        assert!(check_vector_norm(&[1e18, 0.0]).is_ok());
        assert!(check_vector_norm(&[8e17, 8e17]).expect_err("refused").contains("1e18"));
        assert!(check_vector_norm(&[3e38, -3e38]).is_err());
    }

    #[test]
    fn a_nan_distance_ranks_last_instead_of_vanishing() {
        let mut top = crate::index::TopK::new(10);
        top.offer(0, f32::NAN);
        top.offer(1, 2.0);
        top.offer(2, f32::NEG_INFINITY);
        let slots: Vec<u64> = top.into_sorted().iter().map(|h| h.slot).collect();
        assert_eq!(slots, [2, 1, 0]);
    }
}
