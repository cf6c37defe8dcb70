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

use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::slots;

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

/// State of one parse: counts terms against [`MAX_TERMS`].
struct Parser {
    terms: usize,
}

impl Parser {
    fn count(&mut self, n: usize) -> Result<()> {
        self.terms = self.terms.saturating_add(n);
        if self.terms > MAX_TERMS {
            return Err(invalid(format!("the filter holds more than {MAX_TERMS} conditions and list values")));
        }
        Ok(())
    }

    fn filter(&mut self, value: &Value) -> Result<Node> {
        let Value::Object(map) = value else {
            return Err(invalid(format!("a filter must be a JSON object, not {}", kind(value))));
        };
        let mut parts = Vec::with_capacity(map.len());
        for (key, v) in map {
            if key.starts_with('$') {
                parts.push(self.top_operator(key, v)?);
            } else {
                parts.push(self.field(key, v)?);
            }
        }
        Ok(and_of(parts))
    }

    fn top_operator(&mut self, op: &str, v: &Value) -> Result<Node> {
        match op {
            "$and" | "$or" => {
                let list = match v {
                    Value::Array(list) if !list.is_empty() => list,
                    _ => return Err(invalid(format!("{op} needs a non-empty list of filters, not {}", describe(v)))),
                };
                let mut children = Vec::with_capacity(list.len());
                for item in list {
                    if !item.is_object() {
                        return Err(invalid(format!("each element of {op} must be a filter (a JSON object), not {}", kind(item))));
                    }
                    children.push(self.filter(item)?);
                }
                Ok(if op == "$and" { and_of(children) } else { or_of(children) })
            }
            "$contains" | "$not_contains" => {
                let needle = match v {
                    Value::String(s) if !s.is_empty() => s.clone(),
                    Value::String(_) => return Err(invalid(format!("{op} needs a non-empty string"))),
                    _ => return Err(invalid(format!("{op} needs a non-empty string, not {}", kind(v)))),
                };
                self.count(1)?;
                Ok(Node::Contains { needle, negated: op == "$not_contains" })
            }
            _ if CmpOp::from_name(op).is_some() || op == "$in" || op == "$nin" => {
                Err(invalid(format!("{op} must be applied to a metadata key, as in {{\"key\": {{\"{op}\": ...}}}}")))
            }
            _ => Err(invalid(format!("unknown operator {op}"))),
        }
    }

    fn field(&mut self, key: &str, v: &Value) -> Result<Node> {
        if key.contains('\0') {
            return Err(invalid(format!("the metadata key {key:?} contains the NUL character")));
        }
        match v {
            Value::Object(ops) => {
                if ops.is_empty() {
                    return Err(invalid(format!("the condition on {key:?} is an empty object")));
                }
                let mut parts = Vec::with_capacity(ops.len());
                for (op, operand) in ops {
                    parts.push(self.condition(key, op, operand)?);
                }
                Ok(and_of(parts))
            }
            Value::Array(_) => Err(invalid(format!("the value for {key:?} is a list; use $in to match any of several values"))),
            _ => {
                let value = scalar(v).map_err(|what| invalid(format!("the value for {key:?} is {what}, which cannot be matched")))?;
                self.count(1)?;
                Ok(Node::Cmp { key: key.to_owned(), op: CmpOp::Eq, value })
            }
        }
    }

    fn condition(&mut self, key: &str, op: &str, operand: &Value) -> Result<Node> {
        if let Some(cmp) = CmpOp::from_name(op) {
            let ordering = !matches!(cmp, CmpOp::Eq | CmpOp::Ne);
            let allowed = if ordering { "a number or a string" } else { "a string, a number or a boolean" };
            let value = scalar(operand).map_err(|what| invalid(format!("{op} on {key:?} needs {allowed}, not {what}")))?;
            if matches!(value, Scalar::Bool(_)) && ordering {
                return Err(invalid(format!("{op} on {key:?} needs a number or a string, not a boolean")));
            }
            self.count(1)?;
            return Ok(Node::Cmp { key: key.to_owned(), op: cmp, value });
        }
        match op {
            "$in" | "$nin" => {
                let list = match operand {
                    Value::Array(list) if !list.is_empty() => list,
                    _ => return Err(invalid(format!("{op} on {key:?} needs a non-empty list of values, not {}", describe(operand)))),
                };
                self.count(list.len())?;
                let values = list
                    .iter()
                    .map(|item| scalar(item).map_err(|what| invalid(format!("the list of {op} on {key:?} may hold strings, numbers and booleans, not {what}"))))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Node::In { key: key.to_owned(), negated: op == "$nin", values })
            }
            _ if op.starts_with('$') => Err(invalid(format!("unknown operator {op}"))),
            _ => Err(invalid(format!(
                "the condition on {key:?} holds the key {op:?}, which is not an operator \
                 (nested metadata is not supported)"
            ))),
        }
    }
}

/// Like [`kind`], but says "an empty list" for `[]`.
fn describe(v: &Value) -> &'static str {
    match v {
        Value::Array(list) if list.is_empty() => "an empty list",
        _ => kind(v),
    }
}

/// Converts an operand; on failure, says what it was.
fn scalar(v: &Value) -> std::result::Result<Scalar, &'static str> {
    match v {
        Value::String(s) => Ok(Scalar::Str(s.clone())),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Number(n) => Num::from_json(n).map(Scalar::Num).ok_or("a number out of range"),
        _ => Err(kind(v)),
    }
}

fn and_of(mut parts: Vec<Node>) -> Node {
    parts.retain(|p| *p != Node::All);
    match parts.len() {
        0 => Node::All,
        1 => parts.pop().unwrap_or(Node::All),
        _ => Node::And(parts),
    }
}

fn or_of(mut parts: Vec<Node>) -> Node {
    if parts.contains(&Node::All) {
        return Node::All;
    }
    match parts.len() {
        1 => parts.pop().unwrap_or(Node::All),
        _ => Node::Or(parts),
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
    }
}

/// The type code of a boolean in the metadata index; its value is 0 or 1.
pub(crate) const TYPE_BOOL: i64 = 0;
/// The type code of a number in the metadata index; its value is an INTEGER (an `i64`) or a
/// REAL (any other number, as [`Num`] sees it), which SQLite compares exactly.
pub(crate) const TYPE_NUM: i64 = 1;
/// The type code of a string in the metadata index; its value is TEXT, compared by bytes.
pub(crate) const TYPE_STR: i64 = 2;

/// How a metadata value or an operand appears in the mirror's metadata index: a type code
/// (`TYPE_*`) and a value that SQLite orders within that type as [`compare`] does.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct IndexValue {
    /// `TYPE_BOOL`, `TYPE_NUM` or `TYPE_STR`.
    pub(crate) ty: i64,
    /// The value: INTEGER 0/1, INTEGER or REAL, or TEXT.
    pub(crate) value: SqlValue,
}

impl Scalar {
    fn index_value(&self) -> IndexValue {
        match self {
            Scalar::Bool(b) => IndexValue { ty: TYPE_BOOL, value: SqlValue::Integer(i64::from(*b)) },
            Scalar::Num(Num::Int(i)) => IndexValue { ty: TYPE_NUM, value: SqlValue::Integer(*i) },
            Scalar::Num(Num::Float(f)) => IndexValue { ty: TYPE_NUM, value: SqlValue::Real(*f) },
            Scalar::Str(s) => IndexValue { ty: TYPE_STR, value: SqlValue::Text(s.clone()) },
        }
    }
}

/// How the metadata value `v` is indexed: `None` for `null`, lists and objects, which no
/// operator matches (and for a number that [`Num`] cannot represent, which none matches
/// either). A value and an operand with equal [`IndexValue`] types compare in SQLite as
/// [`compare`] compares them.
pub(crate) fn index_value(v: &Value) -> Option<IndexValue> {
    match v {
        Value::Bool(b) => Some(Scalar::Bool(*b).index_value()),
        Value::Number(n) => Num::from_json(n).map(|n| Scalar::Num(n).index_value()),
        Value::String(s) => Some(IndexValue { ty: TYPE_STR, value: SqlValue::Text(s.clone()) }),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// One end of a range look-up.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bound {
    /// The bound's value (a number or a string; the look-up's type tells which).
    pub(crate) value: SqlValue,
    /// Whether the bound itself is in the range.
    pub(crate) inclusive: bool,
}

/// The look-ups [`Filter::select`] is built from; the mirror answers them from its tables.
/// Every set of slots is sorted and deduplicated, and holds live slots only.
pub(crate) trait SlotIndex {
    /// The slots whose metadata holds `key` with a value of type `ty` equal to one of
    /// `values` (which are all of that type); `None` if there are more than `limit`.
    fn equal_any(&self, key: &str, ty: i64, values: &[SqlValue], limit: Option<usize>) -> Result<Option<Vec<u64>>>;
    /// The slots whose metadata holds `key` with a value of type `ty` within the bounds (at
    /// least one of which is given); `None` if there are more than `limit`.
    fn range(&self, key: &str, ty: i64, lower: Option<&Bound>, upper: Option<&Bound>, limit: Option<usize>) -> Result<Option<Vec<u64>>>;
    /// The slots whose text contains `needle`.
    fn containing(&self, needle: &str) -> Result<Vec<u64>>;
    /// Every live slot.
    fn live(&self) -> Result<Vec<u64>>;
    /// A cheap upper bound on the number of live records.
    fn size_bound(&self) -> Result<u64>;
    /// Calls `f` with the slot, text and metadata of each live record among `slots`.
    fn for_each_record(&self, slots: &[u64], f: &mut RecordFn<'_>) -> Result<()>;
}

/// What [`SlotIndex::for_each_record`] calls: slot, text, metadata.
pub(crate) type RecordFn<'a> = dyn FnMut(u64, Option<&str>, Option<&Map<String, Value>>) + 'a;

/// When an AND has a set of candidates, a further condition is tested on the candidates'
/// records (read and evaluated with [`Filter::matches`]'s code) rather than looked up, if
/// looking it up would read more than this many slots per candidate: reading and parsing a
/// record costs about as much as reading this many slots from the index.
pub(crate) const VERIFY_RATIO: u64 = 16;

/// A set of live slots, kept as whichever side is cheaper to know: `Only(s)` is exactly `s`,
/// `AllBut(s)` is every live slot not in `s`. Negations (`$ne`, `$nin`, `$not_contains`) are
/// `AllBut` of the look-up they negate, so the live slots are read only when the whole
/// filter comes out as `AllBut`.
enum Sel {
    Only(Vec<u64>),
    AllBut(Vec<u64>),
}

/// The evaluation of one filter: the index and the verification ratio (see [`VERIFY_RATIO`];
/// 0 tests every condition it can on the records, `u64::MAX` never does).
struct Selector<'a> {
    ix: &'a dyn SlotIndex,
    ratio: u64,
}

impl Filter {
    /// [`Filter::select`] with another verification ratio than [`VERIFY_RATIO`].
    pub(crate) fn select_with_ratio(&self, index: &dyn SlotIndex, ratio: u64) -> Result<Vec<u64>> {
        let sel = Selector { ix: index, ratio };
        match sel.node(&self.node)? {
            Sel::Only(s) => Ok(s),
            Sel::AllBut(s) => Ok(slots::difference(&index.live()?, &s)),
        }
    }
}

/// The tightest bounds on one key and one type (numbers or strings) that an AND of ordering
/// comparisons sets, and those comparisons.
struct Range<'a> {
    key: &'a str,
    ty: i64,
    lower: Option<(&'a Scalar, bool)>,
    upper: Option<(&'a Scalar, bool)>,
    nodes: Vec<&'a Node>,
}

/// Orders two operands of the same type (a number and a string never meet here).
fn order(a: &Scalar, b: &Scalar) -> Ordering {
    match (a, b) {
        (Scalar::Num(x), Scalar::Num(y)) => x.cmp(*y).unwrap_or(Ordering::Equal),
        (Scalar::Str(x), Scalar::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Scalar::Bool(x), Scalar::Bool(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

impl<'a> Range<'a> {
    /// Narrows the range by `node`, `{key: {op: value}}` with `op` one of `$gt`, `$gte`,
    /// `$lt`, `$lte`.
    fn narrow(&mut self, node: &'a Node, op: CmpOp, value: &'a Scalar) {
        self.nodes.push(node);
        let inclusive = matches!(op, CmpOp::Gte | CmpOp::Lte);
        let (bound, wanted) = if matches!(op, CmpOp::Gt | CmpOp::Gte) { (&mut self.lower, Ordering::Greater) } else { (&mut self.upper, Ordering::Less) };
        // A larger lower bound (a smaller upper bound) is tighter; at the same value, an
        // exclusive one is.
        let tighter = bound.is_none_or(|(v, inc)| {
            let o = order(value, v);
            o == wanted || (o == Ordering::Equal && inc && !inclusive)
        });
        if tighter {
            *bound = Some((value, inclusive));
        }
    }

    fn look_up(&self, ix: &dyn SlotIndex, limit: Option<usize>) -> Result<Option<Vec<u64>>> {
        let bound = |b: Option<(&Scalar, bool)>| b.map(|(v, inclusive)| Bound { value: v.index_value().value, inclusive });
        let (lower, upper) = (bound(self.lower), bound(self.upper));
        ix.range(self.key, self.ty, lower.as_ref(), upper.as_ref(), limit)
    }
}

/// One condition of an AND.
enum Conjunct<'a> {
    /// Ordering comparisons on one key, merged.
    Range(Range<'a>),
    /// Any other node (never an AND).
    Node(&'a Node),
}

impl Conjunct<'_> {
    /// The order in which an AND evaluates its conditions: those likely to select few records
    /// first (an equality on a string or a number, a list of values, a range bounded on both
    /// sides), then broader look-ups, negations, ORs, and text scans last.
    fn rank(&self) -> u8 {
        match self {
            Conjunct::Node(Node::Cmp { op: CmpOp::Eq, value: Scalar::Str(_) | Scalar::Num(_), .. }) => 0,
            Conjunct::Node(Node::In { negated: false, .. }) => 1,
            Conjunct::Range(r) if r.lower.is_some() && r.upper.is_some() => 2,
            Conjunct::Range(_) | Conjunct::Node(Node::Cmp { op: CmpOp::Eq, .. }) => 3,
            Conjunct::Node(Node::Cmp { .. } | Node::In { .. }) => 4,
            Conjunct::Node(Node::Or(_) | Node::And(_) | Node::All) => 5,
            Conjunct::Node(Node::Contains { .. }) => 6,
        }
    }

    /// Whether the record satisfies this condition.
    fn matches(&self, text: Option<&str>, metadata: Option<&Map<String, Value>>) -> bool {
        match self {
            Conjunct::Range(r) => r.nodes.iter().all(|n| eval(n, text, metadata)),
            Conjunct::Node(n) => eval(n, text, metadata),
        }
    }
}

/// The children of nested ANDs, as one list.
fn flatten<'a>(children: &'a [Node], out: &mut Vec<&'a Node>) {
    for c in children {
        match c {
            Node::And(grandchildren) => flatten(grandchildren, out),
            other => out.push(other),
        }
    }
}

/// The error for a look-up without a limit that says it went over its limit (it cannot).
fn unlimited() -> Error {
    Error::mirror(crate::error::MirrorErrorKind::Internal, "a filter look-up without a limit reported too many slots")
}

/// Sets `only` to its intersection with `s`; true if that is empty.
fn keep(only: &mut Option<Vec<u64>>, s: Vec<u64>) -> bool {
    *only = Some(match only.take() {
        None => s,
        Some(o) => slots::intersect(&o, &s),
    });
    only.as_ref().is_some_and(Vec::is_empty)
}

impl Selector<'_> {
    fn node(&self, node: &Node) -> Result<Sel> {
        Ok(match node {
            Node::All => Sel::AllBut(Vec::new()),
            Node::And(children) => self.and(children)?,
            Node::Or(children) => self.or(children)?,
            Node::Contains { needle, negated } => {
                let found = self.ix.containing(needle)?;
                if *negated {
                    Sel::AllBut(found)
                } else {
                    Sel::Only(found)
                }
            }
            Node::Cmp { .. } | Node::In { .. } => self.look_up(node, None)?.ok_or_else(unlimited)?,
        })
    }

    /// A comparison or `$in` by index look-up; `None` if it reads more than `limit` slots.
    fn look_up(&self, node: &Node, limit: Option<usize>) -> Result<Option<Sel>> {
        let (found, negated) = match node {
            Node::Cmp { key, op, value } => {
                let v = value.index_value();
                let bound = Bound { value: v.value, inclusive: matches!(op, CmpOp::Gte | CmpOp::Lte) };
                let found = match op {
                    CmpOp::Eq | CmpOp::Ne => self.ix.equal_any(key, v.ty, std::slice::from_ref(&bound.value), limit)?,
                    CmpOp::Gt | CmpOp::Gte => self.ix.range(key, v.ty, Some(&bound), None, limit)?,
                    CmpOp::Lt | CmpOp::Lte => self.ix.range(key, v.ty, None, Some(&bound), limit)?,
                };
                (found, *op == CmpOp::Ne)
            }
            Node::In { key, negated, values } => (self.look_up_in(key, values, limit)?, *negated),
            _ => return Ok(Some(self.node(node)?)),
        };
        Ok(found.map(|s| if negated { Sel::AllBut(s) } else { Sel::Only(s) }))
    }

    /// `$in`: one look-up per type present in the list.
    fn look_up_in(&self, key: &str, values: &[Scalar], limit: Option<usize>) -> Result<Option<Vec<u64>>> {
        let mut found = Vec::new();
        let mut left = limit;
        for ty in [TYPE_BOOL, TYPE_NUM, TYPE_STR] {
            let of_type: Vec<SqlValue> = values.iter().map(Scalar::index_value).filter(|v| v.ty == ty).map(|v| v.value).collect();
            if of_type.is_empty() {
                continue;
            }
            let Some(s) = self.ix.equal_any(key, ty, &of_type, left)? else {
                return Ok(None);
            };
            left = left.map(|l| l.saturating_sub(s.len()));
            found.push(s);
        }
        Ok(Some(slots::union_all(found)))
    }

    /// AND. The ordering comparisons on one key and type become one range look-up (`{"n":
    /// {"$gte": 500, "$lt": 1500}}` reads the slots between the bounds, not all those above
    /// 500). The conditions run in [`Conjunct::rank`] order, and evaluation stops at an empty
    /// set. Once there are candidates, a condition that would read many more slots than there
    /// are candidates (or scan the texts, or evaluate an OR, on a store many times larger) is
    /// tested on the candidates' records instead, with all the conditions after it.
    fn and(&self, children: &[Node]) -> Result<Sel> {
        let mut nodes = Vec::new();
        flatten(children, &mut nodes);
        let mut conjuncts: Vec<Conjunct<'_>> = Vec::new();
        for node in nodes {
            match node {
                Node::Cmp { key, op: op @ (CmpOp::Gt | CmpOp::Gte | CmpOp::Lt | CmpOp::Lte), value } => {
                    let ty = value.index_value().ty;
                    let found = conjuncts.iter_mut().find_map(|c| match c {
                        Conjunct::Range(r) if r.key == key && r.ty == ty => Some(r),
                        _ => None,
                    });
                    match found {
                        Some(r) => r.narrow(node, *op, value),
                        None => {
                            let mut r = Range { key, ty, lower: None, upper: None, nodes: Vec::new() };
                            r.narrow(node, *op, value);
                            conjuncts.push(Conjunct::Range(r));
                        }
                    }
                }
                other => conjuncts.push(Conjunct::Node(other)),
            }
        }
        conjuncts.sort_by_key(Conjunct::rank);

        // The intersection of the positive sets so far (None: no positive set yet), and the
        // sets to remove from it.
        let mut only: Option<Vec<u64>> = None;
        let mut but: Vec<Vec<u64>> = Vec::new();
        for (i, c) in conjuncts.iter().enumerate() {
            // With candidates, a limit on what a look-up may read (None: no candidates, no limit).
            let limit = only.as_ref().map(|o| usize::try_from((o.len() as u64).saturating_mul(self.ratio)).unwrap_or(usize::MAX));
            let sel = match (c, limit) {
                (Conjunct::Range(r), _) => r.look_up(self.ix, limit)?.map(Sel::Only),
                (Conjunct::Node(n @ (Node::Cmp { .. } | Node::In { .. })), _) => self.look_up(n, limit)?,
                (Conjunct::Node(n), None) => Some(self.node(n)?),
                // An OR or a text scan costs about as much as the store is large.
                (Conjunct::Node(n), Some(limit)) => {
                    if limit as u64 >= self.ix.size_bound()? {
                        Some(self.node(n)?)
                    } else {
                        None
                    }
                }
            };
            match sel {
                Some(Sel::Only(s)) => {
                    if keep(&mut only, s) {
                        return Ok(Sel::Only(Vec::new()));
                    }
                }
                Some(Sel::AllBut(s)) => but.push(s),
                None => {
                    let candidates = only.ok_or_else(unlimited)?;
                    let candidates = slots::difference(&candidates, &slots::union_all(but));
                    return self.verify(&candidates, &conjuncts[i..]).map(Sel::Only);
                }
            }
        }
        let excluded = slots::union_all(but);
        Ok(match only {
            Some(s) => Sel::Only(slots::difference(&s, &excluded)),
            None => Sel::AllBut(excluded),
        })
    }

    /// The candidates whose records satisfy all of `conjuncts`, in order.
    fn verify(&self, candidates: &[u64], conjuncts: &[Conjunct<'_>]) -> Result<Vec<u64>> {
        let mut kept = Vec::new();
        self.ix.for_each_record(candidates, &mut |slot, text, metadata| {
            if conjuncts.iter().all(|c| c.matches(text, metadata)) {
                kept.push(slot);
            }
        })?;
        slots::normalize(&mut kept);
        Ok(kept)
    }

    /// OR: the union of the positive sets, or, if some child is a negation, every live slot
    /// but those outside all of them.
    fn or(&self, children: &[Node]) -> Result<Sel> {
        let mut only: Vec<Vec<u64>> = Vec::new();
        // The intersection of the excluded sets (None: no negated child yet).
        let mut but: Option<Vec<u64>> = None;
        for c in children {
            match self.node(c)? {
                Sel::Only(s) => only.push(s),
                Sel::AllBut(s) => {
                    let b = match but.take() {
                        None => s,
                        Some(b) => slots::intersect(&b, &s),
                    };
                    if b.is_empty() {
                        return Ok(Sel::AllBut(b));
                    }
                    but = Some(b);
                }
            }
        }
        let found = slots::union_all(only);
        Ok(match but {
            None => Sel::Only(found),
            Some(b) => Sel::AllBut(slots::difference(&b, &found)),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Filter {
        Filter::parse(&v).unwrap_or_else(|e| panic!("{v} should parse: {e}"))
    }

    fn parse_err(v: Value) -> String {
        match Filter::parse(&v) {
            Ok(f) => panic!("{v} should not parse, got {f:?}"),
            Err(Error::InvalidFilter { reason }) => reason,
            Err(e) => panic!("{v}: wrong error kind {e:?}"),
        }
    }

    fn md(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn m(f: &Filter, meta: Value) -> bool {
        f.matches(None, Some(&md(meta)))
    }

    #[test]
    fn shorthand_is_eq() {
        assert_eq!(parse(json!({"a": 1})), parse(json!({"a": {"$eq": 1}})));
        assert_eq!(parse(json!({"a": "x"})), parse(json!({"a": {"$eq": "x"}})));
        assert_eq!(parse(json!({"a": true})), parse(json!({"a": {"$eq": true}})));
    }

    #[test]
    fn every_operator_parses_and_evaluates() {
        let rec = json!({"n": 5, "f": 2.5, "s": "m", "b": true});
        let cases: Vec<(Value, bool)> = vec![
            (json!({"n": {"$eq": 5}}), true),
            (json!({"n": {"$eq": 5.0}}), true),
            (json!({"f": {"$eq": 2.5}}), true),
            (json!({"n": {"$ne": 5}}), false),
            (json!({"n": {"$ne": 6}}), true),
            (json!({"n": {"$gt": 4}}), true),
            (json!({"n": {"$gt": 5}}), false),
            (json!({"n": {"$gte": 5}}), true),
            (json!({"n": {"$lt": 5.5}}), true),
            (json!({"n": {"$lte": 4.99}}), false),
            (json!({"s": {"$gt": "a"}}), true),
            (json!({"s": {"$lt": "a"}}), false),
            (json!({"s": {"$lte": "m"}}), true),
            (json!({"s": {"$gte": "n"}}), false),
            (json!({"n": {"$in": [1, 5]}}), true),
            (json!({"n": {"$in": ["5", true]}}), false),
            (json!({"n": {"$nin": [1, 2]}}), true),
            (json!({"n": {"$nin": [5]}}), false),
            (json!({"b": true}), true),
            (json!({"b": {"$ne": true}}), false),
            (json!({"b": {"$in": [false, true]}}), true),
            (json!({"b": 1}), false),
            (json!({"n": true}), false),
            (json!({"$and": [{"n": 5}, {"s": "m"}]}), true),
            (json!({"$and": [{"n": 5}, {"s": "x"}]}), false),
            (json!({"$or": [{"n": 6}, {"s": "m"}]}), true),
            (json!({"$or": [{"n": 6}, {"s": "x"}]}), false),
            (json!({"n": 5, "s": "m"}), true),
            (json!({"n": 5, "s": "x"}), false),
            (json!({"n": {"$gte": 5, "$lt": 6}}), true),
            (json!({"n": {"$gte": 5, "$lt": 5}}), false),
            (json!({}), true),
        ];
        for (filter, expected) in cases {
            let f = parse(filter.clone());
            assert_eq!(m(&f, rec.clone()), expected, "{filter}");
        }
    }

    #[test]
    fn absent_and_mismatched_types() {
        let f = parse(json!({"k": {"$ne": "red"}}));
        assert!(m(&f, json!({})));
        assert!(m(&f, json!({"k": 7})));
        assert!(m(&f, json!({"k": null})));
        assert!(!m(&f, json!({"k": "red"})));
        assert!(f.matches(None, None));
        let f = parse(json!({"k": {"$nin": ["red"]}}));
        assert!(f.matches(None, None));
        assert!(m(&f, json!({"k": ["red"]})));
        for op in ["$eq", "$gt", "$gte", "$lt", "$lte"] {
            let f = parse(json!({"k": {op: 1}}));
            assert!(!f.matches(None, None), "{op}");
            assert!(!m(&f, json!({"k": "1"})), "{op}");
            assert!(!m(&f, json!({"k": true})), "{op}");
            assert!(!m(&f, json!({"k": [1]})), "{op}");
            assert!(!m(&f, json!({"k": {"x": 1}})), "{op}");
            assert!(!m(&f, json!({"other": 1})), "{op}");
        }
        // Lookup is at the top level only.
        let f = parse(json!({"a.b": 1}));
        assert!(!m(&f, json!({"a": {"b": 1}})));
        assert!(m(&f, json!({"a.b": 1})));
    }

    #[test]
    fn numbers_compare_exactly() {
        assert!(m(&parse(json!({"n": 1})), json!({"n": 1.0})));
        let big = 9_007_199_254_740_993_i64; // 2^53 + 1, not an f64
        assert!(!m(&parse(json!({"n": 9_007_199_254_740_992.0})), json!({"n": big})));
        assert!(m(&parse(json!({"n": {"$gt": 9_007_199_254_740_992.0}})), json!({"n": big})));
        assert!(m(&parse(json!({"n": {"$lt": 1e19}})), json!({"n": i64::MAX})));
        assert!(m(&parse(json!({"n": {"$gt": -1e19}})), json!({"n": i64::MIN})));
        // An integer operand beyond i64 is refused (crate::limits); a stored one (written before
        // that rule) compares as the nearest f64.
        assert!(parse_err(json!({"n": u64::MAX})).contains("64-bit"));
        assert!(m(&parse(json!({"n": 1.8446744073709552e19})), json!({"n": u64::MAX})));
        assert!(m(&parse(json!({"n": -0.0})), json!({"n": 0})));
    }

    #[test]
    fn strings_compare_by_bytes() {
        assert!(m(&parse(json!({"s": {"$lt": "a"}})), json!({"s": "B"})));
        assert!(m(&parse(json!({"s": {"$gt": "z"}})), json!({"s": "é"})));
        assert!(m(&parse(json!({"s": {"$lt": "ab"}})), json!({"s": "a"})));
        assert!(!m(&parse(json!({"s": "A"})), json!({"s": "a"})));
    }

    #[test]
    fn contains() {
        let f = parse(json!({"$contains": "lo W"}));
        assert!(f.matches(Some("Hello World"), None));
        assert!(!f.matches(Some("hello world"), None));
        assert!(!f.matches(None, None));
        let f = parse(json!({"$not_contains": "lo W"}));
        assert!(!f.matches(Some("Hello World"), None));
        assert!(f.matches(Some("hello world"), None));
        assert!(f.matches(None, None));
    }

    #[test]
    fn empty_object_matches_everything() {
        let f = parse(json!({}));
        assert!(f.is_match_all());
        assert!(f.matches(None, None));
        assert_eq!(Filter::all(), f);
        assert!(parse(json!({"$or": [{}, {"a": 1}]})).is_match_all());
        assert!(parse(json!({"$and": [{}, {}]})).is_match_all());
        assert!(!parse(json!({"a": 1})).and(Filter::all()).is_match_all());
    }

    #[test]
    fn from_json_str() {
        let f = Filter::from_json_str(r#"{"a": {"$in": [1, "x"]}}"#).unwrap();
        assert_eq!(f, parse(json!({"a": {"$in": [1, "x"]}})));
        assert!(matches!(Filter::from_json_str("{"), Err(Error::InvalidFilter { .. })));
    }

    #[test]
    fn errors() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), "must be a JSON object"),
            (json!("a"), "must be a JSON object"),
            (json!(null), "must be a JSON object"),
            (json!({"a": null}), "null"),
            (json!({"a": [1]}), "use $in"),
            (json!({"a": {}}), "empty object"),
            (json!({"a": {"b": 1}}), "not an operator"),
            (json!({"a": {"$eq": null}}), "not null"),
            (json!({"a": {"$eq": [1]}}), "not a list"),
            (json!({"a": {"$ne": {"x": 1}}}), "not an object"),
            (json!({"a": {"$gt": true}}), "not a boolean"),
            (json!({"a": {"$lte": false}}), "not a boolean"),
            (json!({"a": {"$gte": null}}), "not null"),
            (json!({"a": {"$in": []}}), "non-empty list"),
            (json!({"a": {"$in": 1}}), "non-empty list"),
            (json!({"a": {"$nin": [1, null]}}), "not null"),
            (json!({"a": {"$in": [[1]]}}), "not a list"),
            (json!({"a": {"$regex": "x"}}), "unknown operator $regex"),
            (json!({"$foo": 1}), "unknown operator $foo"),
            (json!({"$eq": 1}), "must be applied to a metadata key"),
            (json!({"$in": [1]}), "must be applied to a metadata key"),
            (json!({"$and": []}), "non-empty list"),
            (json!({"$or": {}}), "non-empty list"),
            (json!({"$and": [1]}), "must be a filter"),
            (json!({"$or": [{"a": null}]}), "null"),
            (json!({"$contains": ""}), "non-empty string"),
            (json!({"$not_contains": 3}), "not a number"),
            (json!({"a\u{0}b": 1}), "NUL"),
        ];
        for (filter, needle) in cases {
            let reason = parse_err(filter.clone());
            assert!(reason.contains(needle), "{filter}: {reason:?} should contain {needle:?}");
            assert!(!reason.ends_with('.'), "{reason}");
        }
    }

    #[test]
    fn limits() {
        // {"a": 1} is one level and each $and adds two: 15 of them make 31 levels, 16 make 33.
        let mut deep = json!({"a": 1});
        for _ in 0..15 {
            deep = json!({"$and": [deep]});
        }
        parse(deep.clone());
        let deeper = json!({"$or": [deep.clone()]});
        assert_eq!(parse_err(deeper.clone()), "a filter nests at most 32 levels of objects and lists");
        // As text, too, and far deeper than serde_json's own recursion limit (128): the limit
        // is named, not "not valid JSON".
        let text = format!("{}{{\"a\": 1}}{}", "{\"$and\": [".repeat(600), "]}".repeat(600));
        let e = Filter::from_json_str(&text).expect_err("refused").to_string();
        assert!(e.contains("nests at most 32 levels"), "{e}");
        assert_eq!(Filter::from_json_str(&deeper.to_string()).expect_err("refused").to_string(), format!("The filter is not valid: {}.", parse_err(deeper)));
        let e = Filter::from_json_str(r#"{"a": {"$gte": 1180591620717411303424}}"#).expect_err("refused").to_string();
        assert!(e.contains("the integer 1180591620717411303424 under the key \"a\"") && e.contains("64-bit"), "{e}");
        assert!(parse_err(json!({"a": {"$in": [u64::MAX]}})).contains("64-bit"));
        let e = parse_err(json!({"a": {"$gt": null}}));
        assert!(e.contains("$gt on \"a\" needs a number or a string, not null"), "{e}");
        let many: Vec<Value> = (0..MAX_TERMS).map(Value::from).collect();
        parse(json!({"a": {"$in": many}}));
        let too_many: Vec<Value> = (0..=MAX_TERMS).map(Value::from).collect();
        assert!(parse_err(json!({"a": {"$in": too_many}})).contains("more than"));
    }
}
