//! Parsing a filter's JSON into its tree, every term checked (operators, operand types, the
//! number of terms).

use serde_json::Value;

use super::{invalid, kind, CmpOp, Node, Num, Scalar, MAX_TERMS};
use crate::error::Result;

/// State of one parse: counts terms against [`MAX_TERMS`].
pub(super) struct Parser {
    pub(super) terms: usize,
}

impl Parser {
    pub(super) fn count(&mut self, n: usize) -> Result<()> {
        self.terms = self.terms.saturating_add(n);
        if self.terms > MAX_TERMS {
            return Err(invalid(format!("the filter holds more than {MAX_TERMS} conditions and list values")));
        }
        Ok(())
    }

    pub(super) fn filter(&mut self, value: &Value) -> Result<Node> {
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

    pub(super) fn top_operator(&mut self, op: &str, v: &Value) -> Result<Node> {
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
            "$matches" | "$not_matches" => {
                let query = match v {
                    Value::String(s) => crate::mirror::fts_all_query(s).ok_or_else(|| invalid(format!("{op} needs a string with a word in it")))?,
                    _ => return Err(invalid(format!("{op} needs a string of words, not {}", kind(v)))),
                };
                self.count(1)?;
                Ok(Node::Matches { query, negated: op == "$not_matches" })
            }
            _ if CmpOp::from_name(op).is_some() || op == "$in" || op == "$nin" => {
                Err(invalid(format!("{op} must be applied to a metadata key, as in {{\"key\": {{\"{op}\": ...}}}}")))
            }
            _ => Err(invalid(format!("unknown operator {op}"))),
        }
    }

    pub(super) fn field(&mut self, key: &str, v: &Value) -> Result<Node> {
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

    pub(super) fn condition(&mut self, key: &str, op: &str, operand: &Value) -> Result<Node> {
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
pub(super) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Array(list) if list.is_empty() => "an empty list",
        _ => kind(v),
    }
}

/// Converts an operand; on failure, says what it was.
pub(super) fn scalar(v: &Value) -> std::result::Result<Scalar, &'static str> {
    match v {
        Value::String(s) => Ok(Scalar::Str(s.clone())),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Number(n) => Num::from_json(n).map(Scalar::Num).ok_or("a number out of range"),
        _ => Err(kind(v)),
    }
}

pub(super) fn and_of(mut parts: Vec<Node>) -> Node {
    parts.retain(|p| *p != Node::All);
    match parts.len() {
        0 => Node::All,
        1 => parts.pop().unwrap_or(Node::All),
        _ => Node::And(parts),
    }
}

pub(super) fn or_of(mut parts: Vec<Node>) -> Node {
    if parts.contains(&Node::All) {
        return Node::All;
    }
    match parts.len() {
        1 => parts.pop().unwrap_or(Node::All),
        _ => Node::Or(parts),
    }
}
