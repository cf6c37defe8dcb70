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
//! string. Numbers compare numerically whatever their JSON spelling (`1 == 1.0`);
//! integers that do not fit in an `i64` are compared as the nearest `f64`, as
//! SQLite does. Strings compare by their UTF-8 bytes (`"B" < "a"`). A key may not
//! begin with `$` (those are operators; an unknown operator is an error naming
//! it) and may not contain the NUL character (U+0000). A filter may be nested at
//! most [`MAX_DEPTH`] levels deep and hold at most [`MAX_TERMS`] conditions and
//! list values in all.
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
//! The filter is evaluated in two ways that agree exactly: [`Filter::matches`]
//! evaluates it in Rust, and `Filter::to_sql` turns it into an SQL expression
//! over the SQLite mirror's `records` table, using SQLite's JSON functions.
//! That agreement assumes the stored metadata was written by `serde_json` from
//! a `serde_json::Map` (so it has no duplicate keys: SQLite would see the first
//! of two equal keys, `serde_json` the last) and that no metadata key contains
//! U+0000 (SQLite's JSON path lookup treats an escaped NUL in an object key as
//! the end of the key, so the key `"a\u0000"` would be found under `"a"`).

use std::cmp::Ordering;

use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};

/// How deeply `$and` and `$or` may be nested.
pub const MAX_DEPTH: usize = 64;

/// How many conditions and `$in`/`$nin` list values a filter may hold in all.
pub const MAX_TERMS: usize = 4096;

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

    /// The SQL operator of an ordering comparison (`$eq`/`$ne` use `=`).
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq | CmpOp::Ne => "=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
        }
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

    fn to_sql(self) -> SqlValue {
        match self {
            Num::Int(i) => SqlValue::Integer(i),
            Num::Float(f) => SqlValue::Real(f),
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

    fn filter(&mut self, value: &Value, depth: usize) -> Result<Node> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!("the filter is nested more than {MAX_DEPTH} levels deep")));
        }
        let Value::Object(map) = value else {
            return Err(invalid(format!("a filter must be a JSON object, not {}", kind(value))));
        };
        let mut parts = Vec::with_capacity(map.len());
        for (key, v) in map {
            if key.starts_with('$') {
                parts.push(self.top_operator(key, v, depth)?);
            } else {
                parts.push(self.field(key, v)?);
            }
        }
        Ok(and_of(parts))
    }

    fn top_operator(&mut self, op: &str, v: &Value, depth: usize) -> Result<Node> {
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
                    children.push(self.filter(item, depth + 1)?);
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
            let value = scalar(operand).map_err(|what| invalid(format!("{op} on {key:?} needs a string, a number or a boolean, not {what}")))?;
            if matches!(value, Scalar::Bool(_)) && !matches!(cmp, CmpOp::Eq | CmpOp::Ne) {
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
        let node = Parser { terms: 0 }.filter(value, 0)?;
        Ok(Filter { node })
    }

    /// Parses a filter from JSON text.
    pub fn from_json_str(s: &str) -> Result<Filter> {
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

    /// Evaluates the filter on a record: the reference semantics, which
    /// `to_sql` reproduces exactly.
    pub fn matches(&self, text: Option<&str>, metadata: Option<&Map<String, Value>>) -> bool {
        eval(&self.node, text, metadata)
    }

    /// An SQL boolean expression over the `text` and `metadata` columns of the
    /// mirror's `records` table, with `?` placeholders, and the values to bind
    /// to them in order. The expression is never NULL.
    pub(crate) fn to_sql(&self) -> (String, Vec<SqlValue>) {
        let mut sql = String::new();
        let mut params = Vec::new();
        write_sql(&self.node, &mut sql, &mut params);
        (sql, params)
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

/// The JSON path of a top-level key, in the form SQLite's JSON functions accept:
/// `$."key"`, with `"` and `\` escaped by a backslash. (Keys never hold NUL,
/// which SQLite's path parser would take for the end of the path.)
fn json_path(key: &str) -> String {
    let mut path = String::with_capacity(key.len() + 4);
    path.push_str("$.\"");
    for c in key.chars() {
        if c == '"' || c == '\\' {
            path.push('\\');
        }
        path.push(c);
    }
    path.push('"');
    path
}

/// The SQL types (`json_type` names) of a JSON scalar type.
const NUMBER_TYPES: &str = "('integer', 'real')";

fn write_sql(node: &Node, sql: &mut String, params: &mut Vec<SqlValue>) {
    match node {
        Node::All => sql.push('1'),
        Node::And(children) => write_balanced(children, " AND ", sql, params),
        Node::Or(children) => write_balanced(children, " OR ", sql, params),
        Node::Cmp { key, op, value } => {
            let path = json_path(key);
            if *op == CmpOp::Ne {
                sql.push_str("(NOT ");
                write_cmp(&path, CmpOp::Eq, value, sql, params);
                sql.push(')');
            } else {
                write_cmp(&path, *op, value, sql, params);
            }
        }
        Node::In { key, negated, values } => {
            let path = json_path(key);
            if *negated {
                sql.push_str("(NOT ");
            }
            write_in(&path, values, sql, params);
            if *negated {
                sql.push(')');
            }
        }
        Node::Contains { needle, negated } => {
            if *negated {
                sql.push_str("(text IS NULL OR instr(text, ?) = 0)");
            } else {
                sql.push_str("(text IS NOT NULL AND instr(text, ?) > 0)");
            }
            params.push(SqlValue::Text(needle.clone()));
        }
    }
}

/// Writes `(a AND b AND ...)` as a balanced tree, so that SQLite's expression
/// depth grows with the logarithm of the number of children, not linearly.
fn write_balanced(children: &[Node], joiner: &str, sql: &mut String, params: &mut Vec<SqlValue>) {
    match children {
        [] => sql.push('1'),
        [only] => write_sql(only, sql, params),
        _ => {
            let (left, right) = children.split_at(children.len() / 2);
            sql.push('(');
            write_balanced(left, joiner, sql, params);
            sql.push_str(joiner);
            write_balanced(right, joiner, sql, params);
            sql.push(')');
        }
    }
}

/// Writes a comparison that is never NULL: the type test comes first and is
/// 0 or 1 (`IS`, or `ifnull(...)`), and once it holds the value is not NULL.
fn write_cmp(path: &str, op: CmpOp, value: &Scalar, sql: &mut String, params: &mut Vec<SqlValue>) {
    match value {
        Scalar::Bool(b) => {
            // Only $eq reaches here for booleans ($ne is NOT $eq; parsing rejects the rest).
            sql.push_str(if *b { "(json_type(metadata, ?) IS 'true')" } else { "(json_type(metadata, ?) IS 'false')" });
            params.push(SqlValue::Text(path.to_owned()));
        }
        Scalar::Str(s) => {
            sql.push_str("(json_type(metadata, ?) IS 'text' AND json_extract(metadata, ?) ");
            sql.push_str(op.sql());
            sql.push_str(" ? COLLATE BINARY)");
            params.push(SqlValue::Text(path.to_owned()));
            params.push(SqlValue::Text(path.to_owned()));
            params.push(SqlValue::Text(s.clone()));
        }
        Scalar::Num(n) => {
            sql.push_str("(ifnull(json_type(metadata, ?), '') IN ");
            sql.push_str(NUMBER_TYPES);
            sql.push_str(" AND json_extract(metadata, ?) ");
            sql.push_str(op.sql());
            sql.push_str(" ?)");
            params.push(SqlValue::Text(path.to_owned()));
            params.push(SqlValue::Text(path.to_owned()));
            params.push(n.to_sql());
        }
    }
}

/// Writes `$in` as an OR of one test per operand type present in the list.
fn write_in(path: &str, values: &[Scalar], sql: &mut String, params: &mut Vec<SqlValue>) {
    let strings: Vec<&String> = values.iter().filter_map(|v| if let Scalar::Str(s) = v { Some(s) } else { None }).collect();
    let numbers: Vec<Num> = values.iter().filter_map(|v| if let Scalar::Num(n) = v { Some(*n) } else { None }).collect();
    let has_true = values.contains(&Scalar::Bool(true));
    let has_false = values.contains(&Scalar::Bool(false));

    let mut first = true;
    sql.push('(');
    let mut sep = |sql: &mut String| {
        if !first {
            sql.push_str(" OR ");
        }
        first = false;
    };
    if !strings.is_empty() {
        sep(sql);
        sql.push_str("(json_type(metadata, ?) IS 'text' AND json_extract(metadata, ?) COLLATE BINARY IN (");
        params.push(SqlValue::Text(path.to_owned()));
        params.push(SqlValue::Text(path.to_owned()));
        for (i, s) in strings.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
            params.push(SqlValue::Text((*s).clone()));
        }
        sql.push_str("))");
    }
    if !numbers.is_empty() {
        sep(sql);
        sql.push_str("(ifnull(json_type(metadata, ?), '') IN ");
        sql.push_str(NUMBER_TYPES);
        sql.push_str(" AND json_extract(metadata, ?) IN (");
        params.push(SqlValue::Text(path.to_owned()));
        params.push(SqlValue::Text(path.to_owned()));
        for (i, n) in numbers.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
            params.push(n.to_sql());
        }
        sql.push_str("))");
    }
    if has_true || has_false {
        sep(sql);
        sql.push_str(match (has_true, has_false) {
            (true, true) => "(ifnull(json_type(metadata, ?), '') IN ('true', 'false'))",
            (true, false) => "(json_type(metadata, ?) IS 'true')",
            _ => "(json_type(metadata, ?) IS 'false')",
        });
        params.push(SqlValue::Text(path.to_owned()));
    }
    sql.push(')');
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
        assert!(m(&parse(json!({"n": u64::MAX})), json!({"n": 1.8446744073709552e19})));
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
        assert_eq!(f.to_sql(), ("1".to_owned(), vec![]));
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
        let mut deep = json!({"a": 1});
        for _ in 0..MAX_DEPTH {
            deep = json!({"$and": [deep]});
        }
        parse(deep.clone());
        let deeper = json!({"$or": [deep]});
        assert!(parse_err(deeper).contains("nested"));
        let many: Vec<Value> = (0..MAX_TERMS).map(Value::from).collect();
        parse(json!({"a": {"$in": many}}));
        let too_many: Vec<Value> = (0..=MAX_TERMS).map(Value::from).collect();
        assert!(parse_err(json!({"a": {"$in": too_many}})).contains("more than"));
    }

    #[test]
    fn json_paths() {
        assert_eq!(json_path("a"), r#"$."a""#);
        assert_eq!(json_path(r#"a"b\c"#), r#"$."a\"b\\c""#);
        assert_eq!(json_path("a.b c"), r#"$."a.b c""#);
        assert_eq!(json_path(""), r#"$."""#);
    }

    /// Evaluates `to_sql` in SQLite on one record and compares with `matches`.
    fn sql_matches(f: &Filter, text: Option<&str>, meta: Option<&Map<String, Value>>) -> bool {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let (expr, mut params) = f.to_sql();
        // The record's two values come first in the text, so they are the first parameters.
        let sql = format!("WITH r(text, metadata) AS (SELECT ?, ?) SELECT {expr} FROM r");
        params.insert(0, meta.map_or(SqlValue::Null, |m| SqlValue::Text(Value::Object(m.clone()).to_string())));
        params.insert(0, text.map_or(SqlValue::Null, |t| SqlValue::Text(t.to_owned())));
        let v: rusqlite::types::Value =
            conn.query_row(&sql, rusqlite::params_from_iter(params), |r| r.get(0)).unwrap_or_else(|e| panic!("{}: {e}", &sql[..sql.len().min(300)]));
        match v {
            SqlValue::Integer(0) => false,
            SqlValue::Integer(1) => true,
            other => panic!("{} gave {other:?}", &sql[..sql.len().min(300)]),
        }
    }

    #[test]
    fn sql_agrees_on_awkward_keys_and_values() {
        let keys = ["a.b", "a\"b", "a\\b", "a b", "é", "😀", "", "$x", "a\nb", "\\\"", "k\u{1f}"];
        for key in keys {
            let meta = md(json!({ key: "v", "other": 1 }));
            for filter in
                [json!({ key: "v" }), json!({ key: {"$ne": "v"} }), json!({ key: {"$in": ["w", "v"]} }), json!({ key: {"$nin": ["v"]} }), json!({ key: 1 })]
            {
                // Keys starting with '$' cannot be filtered on; skip those.
                let Ok(f) = Filter::parse(&filter) else {
                    continue;
                };
                assert_eq!(sql_matches(&f, None, Some(&meta)), f.matches(None, Some(&meta)), "{key:?} {filter}");
                assert_eq!(sql_matches(&f, None, None), f.matches(None, None), "{key:?} {filter}");
            }
            let f = parse(json!({ "other": 1 }));
            assert!(sql_matches(&f, None, Some(&meta)));
        }
        // Strings with NUL and non-ASCII, in values and documents.
        let meta = md(json!({"s": "x\u{0}y", "t": "ü"}));
        for filter in [
            json!({"s": "x\u{0}y"}),
            json!({"s": "x"}),
            json!({"s": {"$lt": "x\u{0}z"}}),
            json!({"s": {"$gt": "x"}}),
            json!({"t": {"$gt": "z"}}),
            json!({"$contains": "\u{0}c"}),
            json!({"$contains": "\u{0}x"}),
            json!({"$not_contains": "b\u{0}"}),
        ] {
            let f = parse(filter.clone());
            assert_eq!(sql_matches(&f, Some("ab\u{0}cd"), Some(&meta)), f.matches(Some("ab\u{0}cd"), Some(&meta)), "{filter}");
        }
        // Numbers at the edges.
        for value in [json!(i64::MAX), json!(i64::MIN), json!(u64::MAX), json!(9_007_199_254_740_993_i64), json!(0.1), json!(-0.0), json!(1e300)] {
            let meta = md(json!({ "n": value }));
            for op in ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"] {
                for operand in
                    [json!(i64::MAX), json!(u64::MAX), json!(9.223372036854776e18), json!(9_007_199_254_740_992.0), json!(0), json!(0.1), json!(1e300)]
                {
                    let filter = json!({"n": { op: operand }});
                    let f = parse(filter.clone());
                    assert_eq!(sql_matches(&f, None, Some(&meta)), f.matches(None, Some(&meta)), "{filter} on {value}");
                }
            }
        }
        // Non-scalar metadata values.
        for value in [json!(null), json!([1]), json!({"x": 1}), json!(true), json!(false)] {
            let meta = md(json!({ "k": value }));
            for filter in [
                json!({"k": 1}),
                json!({"k": {"$ne": 1}}),
                json!({"k": {"$in": [1, "1", true]}}),
                json!({"k": {"$nin": [false]}}),
                json!({"k": true}),
                json!({"k": {"$ne": false}}),
            ] {
                let f = parse(filter.clone());
                assert_eq!(sql_matches(&f, None, Some(&meta)), f.matches(None, Some(&meta)), "{filter} on {value}");
            }
        }
    }

    #[test]
    fn wide_filters_stay_within_sqlite_expression_depth() {
        let many: Vec<Value> = (0..3000).map(|i| json!({ format!("k{i}"): i })).collect();
        let f = parse(json!({"$or": many}));
        let meta = md(json!({"k2999": 2999}));
        assert!(sql_matches(&f, None, Some(&meta)));
        let and: Vec<Value> = (0..3000).map(|i| json!({ "k": {"$ne": i} })).collect();
        let f = parse(json!({"$and": and}));
        assert!(sql_matches(&f, None, Some(&meta)));
    }

    /// Why the engine must refuse metadata keys containing U+0000: SQLite's
    /// JSON lookup compares escaped object keys up to the first NUL, so it
    /// finds the key "a\u0000" under the path `$."a"`, where `matches` does not.
    /// If this test starts failing, SQLite has fixed it.
    #[test]
    fn sqlite_stops_object_keys_at_nul() {
        let meta = md(json!({"a\u{0}": 1}));
        let f = parse(json!({"a": 1}));
        assert!(!f.matches(None, Some(&meta)));
        assert!(sql_matches(&f, None, Some(&meta)));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Any key without NUL and not starting with '$' is found by its JSON path,
        /// and only by it.
        #[test]
        fn json_paths_find_exactly_their_key(
            key in "[^\u{0}$][^\u{0}]{0,6}|",
            other in "[^\u{0}]{0,6}",
            value in proptest::prelude::any::<i64>(),
        ) {
            let f = parse(json!({ key.clone(): value }));
            for meta in [json!({ key.clone(): value }), json!({ other.clone(): value }), json!({ other.clone(): value, key.clone(): value })] {
                let meta = md(meta);
                proptest::prop_assert_eq!(sql_matches(&f, None, Some(&meta)), f.matches(None, Some(&meta)), "{:?} {:?}", key, meta);
            }
            let own = md(json!({ key.clone(): value }));
            proptest::prop_assert!(sql_matches(&f, None, Some(&own)));
        }
    }
}
