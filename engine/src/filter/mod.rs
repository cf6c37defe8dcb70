//! Chroma's filter language: metadata conditions and document-text conditions.
//!
//! A filter is a JSON object. Its grammar:
//!
//! * `{"key": scalar}` is shorthand for `{"key": {"$eq": scalar}}`.
//! * `{"key": {"$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte": scalar}}`.
//!   Several operators in one condition object (`{"age": {"$gte": 18, "$lt": 65}}`)
//!   are combined with AND.
//! * `{"key": {"$in" | "$nin": [scalar, ...]}}`, with a non-empty list.
//! * `{"$and": [filter, ...]}` and `{"$or": [filter, ...]}`, with non-empty lists.
//! * `{"$contains": "text"}` and `{"$not_contains": "text"}`: a case-sensitive
//!   substring test on the record's document text. The string must not be empty.
//! * `{"$matches": "words"}` and `{"$not_matches": "words"}`: the record's text holds every
//!   word (as keyword search sees words: stemmed, case and diacritics folded, stop words
//!   ignored; see [`crate::fts_query`]). The string must hold a word.
//! * Several entries in one object are combined with AND; the empty object `{}`
//!   matches every record.
//!
//! Scalars are strings, numbers and booleans. `null`, lists and objects are not
//! accepted as operands. `$gt`, `$gte`, `$lt` and `$lte` take a number or a
//! string. Numbers compare numerically whatever their JSON spelling (`1 == 1.0`).
//! An integer operand must fit an `i64` (as metadata integers must, see
//! [`crate::limits`]); a stored integer beyond it (written before that rule) is
//! compared as the nearest `f64`, as SQLite does. Strings compare by their UTF-8 bytes (`"B" < "a"`). A key may not
//! begin with `$` (those are operators; an unknown operator is an error naming
//! it) and may not contain the NUL character (U+0000). A filter may nest objects
//! and lists at most [`crate::limits::MAX_JSON_DEPTH`] levels deep (`{"a": 1}` is
//! one level, `{"$and": [{"a": 1}]}` three) and hold at most [`MAX_TERMS`]
//! conditions and list values in all.
//!
//! # Semantics on a record
//!
//! A record has an optional document text and optional metadata, a JSON object.
//! A key is looked up at the top level of the metadata only (`"a.b"` is a key
//! with a dot in it, not a path). A condition compares values of the same type
//! only: strings with strings, numbers with numbers, booleans with booleans (a
//! boolean is not a number: `true` is not `1`).
//!
//! * `$eq`, `$gt`, `$gte`, `$lt`, `$lte` and `$in` are true only if the key is
//!   present and its value has the operand's type and satisfies the comparison.
//!   A missing key, missing metadata, a `null`, a list, an object or a value of
//!   another type never satisfies them.
//! * `$ne` and `$nin` are exactly the negations of `$eq` and `$in` (MongoDB's
//!   semantics): "not equal" includes "absent" and "of another type". So
//!   `{"color": {"$ne": "red"}}` matches records without a `color` and records
//!   whose `color` is `7`.
//! * `$contains` is true if the record has a text that contains the string;
//!   `$not_contains` is its negation (it is true for a record without text).
//! * `$matches` is true if the record has a text that holds every word of the string, as the
//!   full-text index tokenizes it (SQLite FTS5, `porter unicode61 remove_diacritics 2`);
//!   `$not_matches` is its negation. On one record it is evaluated by that tokenizer in an
//!   in-memory database; over a store, by the mirror's full-text index.
//!
//! # Evaluation
//!
//! A filter is evaluated in two ways that agree exactly. [`Filter::matches`]
//! evaluates it on one record: it is the reference semantics. [`Filter::select`]
//! finds the matching slots of a whole store with look-ups in the mirror's
//! metadata index (the [`SlotIndex`] trait; the schema is in `mirror.rs`). A
//! metadata value is indexed under its key and its type, as an SQL value that
//! SQLite orders as [`compare`] does within that type ([`index_value`]); an
//! operand is looked up the same way. So `$eq` and `$in` read the slots holding
//! an equal value, ordering comparisons the slots within a range, ANDs
//! intersect, ORs unite, and `$ne`, `$nin` and `$not_contains` are the live
//! slots outside what they negate (kept as such until the end, so that an AND
//! just removes them). `$contains` scans the texts. Within an AND, the
//! comparisons on one key become one range, the conditions likely to select
//! fewer records run first, and once there are few candidates compared with
//! what the next condition would read, that condition and the rest are tested
//! on the candidates' records with the code of [`Filter::matches`] (see
//! [`VERIFY_RATIO`]). The index is built from the metadata as `serde_json`
//! parses it, which is also what `matches` sees, so the two agree on every
//! stored text, including duplicate keys and keys holding U+0000. The mirror's
//! property test holds `select` to `matches`.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};

mod index;
mod parse;
mod select;
#[cfg(test)]
mod tests;

pub(crate) use index::{index_value, Bound, IndexValue, RecordFn, SlotIndex};
use parse::{and_of, Parser};
use select::VERIFY_RATIO;

/// How many conditions and `$in`/`$nin` list values a filter may hold in all.
pub const MAX_TERMS: usize = crate::limits::MAX_FILTER_TERMS;

/// A parsed, validated filter.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    node: Node,
}

/// One node of a filter's tree.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    /// Matches every record (the empty object).
    All,
    /// All children match.
    And(Vec<Node>),
    /// Some child matches.
    Or(Vec<Node>),
    /// A comparison of a metadata value with a scalar.
    Cmp { key: String, op: CmpOp, value: Scalar },
    /// `$in` (or `$nin` when `negated`).
    In { key: String, negated: bool, values: Vec<Scalar> },
    /// `$contains` (or `$not_contains` when `negated`).
    Contains { needle: String, negated: bool },
    /// `$matches` (or `$not_matches` when `negated`): `query` is the FTS5 query of the words
    /// (`crate::mirror::fts_all_query`).
    Matches { query: String, negated: bool },
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    fn from_name(name: &str) -> Option<CmpOp> {
        Some(match name {
            "$eq" => CmpOp::Eq,
            "$ne" => CmpOp::Ne,
            "$gt" => CmpOp::Gt,
            "$gte" => CmpOp::Gte,
            "$lt" => CmpOp::Lt,
            "$lte" => CmpOp::Lte,
            _ => return None,
        })
    }
}

/// An operand.
#[derive(Clone, Debug, PartialEq)]
enum Scalar {
    Str(String),
    Num(Num),
    Bool(bool),
}

/// A number as both sides see it: an exact `i64`, or else an `f64`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn from_json(n: &Number) -> Option<Num> {
        if let Some(i) = n.as_i64() {
            Some(Num::Int(i))
        } else {
            n.as_f64().filter(|f| !f.is_nan()).map(Num::Float)
        }
    }

    /// Exact numeric comparison, as SQLite compares an INTEGER with a REAL.
    fn cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b),
            (Num::Int(a), Num::Float(b)) => cmp_int_float(a, b),
            (Num::Float(a), Num::Int(b)) => cmp_int_float(b, a).map(Ordering::reverse),
        }
    }
}

/// Compares an integer with a float exactly (no rounding of the integer).
fn cmp_int_float(i: i64, f: f64) -> Option<Ordering> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    // -2^63 <= t < 2^63, so the conversion is exact.
    let ti = t as i64;
    Some(match i.cmp(&ti) {
        Ordering::Equal => {
            if f > t {
                Ordering::Less
            } else if f < t {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    })
}

/// Compares a metadata value with an operand; `None` if the types differ.
fn compare(value: &Value, operand: &Scalar) -> Option<Ordering> {
    match (value, operand) {
        (Value::String(a), Scalar::Str(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Number(a), Scalar::Num(b)) => Num::from_json(a)?.cmp(*b),
        (Value::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidFilter { reason: reason.into() }
}

/// "a string", "a list", ... for error messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Filter {
    /// Parses and validates a filter (see the module documentation for the
    /// grammar). Errors are [`Error::InvalidFilter`].
    pub fn parse(value: &Value) -> Result<Filter> {
        crate::limits::check_json_value(value, "a filter").map_err(invalid)?;
        let node = Parser { terms: 0 }.filter(value)?;
        Ok(Filter { node })
    }

    /// Parses a filter from JSON text (checked first for what parsing would not refuse or would
    /// alter: nesting and integers beyond `i64`, see [`crate::limits::check_json_text`]).
    pub fn from_json_str(s: &str) -> Result<Filter> {
        crate::limits::check_json_text(s, "a filter").map_err(invalid)?;
        let value: Value = serde_json::from_str(s).map_err(|e| invalid(format!("the filter is not valid JSON ({e})")))?;
        Filter::parse(&value)
    }

    /// The filter that matches every record (the same as parsing `{}`).
    pub fn all() -> Filter {
        Filter { node: Node::All }
    }

    /// True if this filter matches every record, so it need not be evaluated.
    pub fn is_match_all(&self) -> bool {
        self.node == Node::All
    }

    /// The filter that matches the records both `self` and `other` match.
    pub fn and(self, other: Filter) -> Filter {
        Filter { node: and_of(vec![self.node, other.node]) }
    }

    /// Evaluates the filter on a record: the reference semantics, which the
    /// store's filtered search reproduces exactly with its metadata index.
    pub fn matches(&self, text: Option<&str>, metadata: Option<&Map<String, Value>>) -> bool {
        eval(&self.node, text, metadata)
    }

    /// The live slots whose records match the filter, ascending, found with the look-ups of
    /// `index` (see [`SlotIndex`] and the module documentation).
    pub(crate) fn select(&self, index: &dyn SlotIndex) -> Result<Vec<u64>> {
        self.select_with_ratio(index, VERIFY_RATIO)
    }
}

fn eval(node: &Node, text: Option<&str>, metadata: Option<&Map<String, Value>>) -> bool {
    match node {
        Node::All => true,
        Node::And(children) => children.iter().all(|c| eval(c, text, metadata)),
        Node::Or(children) => children.iter().any(|c| eval(c, text, metadata)),
        Node::Cmp { key, op, value } => {
            let ord = metadata.and_then(|m| m.get(key)).and_then(|v| compare(v, value));
            match op {
                CmpOp::Eq => ord == Some(Ordering::Equal),
                CmpOp::Ne => ord != Some(Ordering::Equal),
                CmpOp::Gt => ord == Some(Ordering::Greater),
                CmpOp::Gte => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                CmpOp::Lt => ord == Some(Ordering::Less),
                CmpOp::Lte => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
            }
        }
        Node::In { key, negated, values } => {
            let found = metadata.and_then(|m| m.get(key)).is_some_and(|v| values.iter().any(|s| compare(v, s) == Some(Ordering::Equal)));
            found != *negated
        }
        Node::Contains { needle, negated } => {
            let found = text.is_some_and(|t| t.contains(needle.as_str()));
            found != *negated
        }
        Node::Matches { query, negated } => {
            let found = text.is_some_and(|t| crate::mirror::text_matches(t, query));
            found != *negated
        }
    }
}
