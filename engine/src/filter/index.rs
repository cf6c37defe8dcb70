//! What a filter needs of the metadata index: the type codes and values it stores, and the
//! look-ups ([`SlotIndex`]) the mirror answers.

use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Value};

use super::{Num, Scalar};
use crate::error::Result;

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
    pub(super) fn index_value(&self) -> IndexValue {
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
    /// The slots whose text matches an FTS5 query (a `$matches` condition's), ascending.
    fn matching(&self, fts_query: &str) -> Result<Vec<u64>>;
    /// Every live slot.
    fn live(&self) -> Result<Vec<u64>>;
    /// A cheap upper bound on the number of live records.
    fn size_bound(&self) -> Result<u64>;
    /// Calls `f` with the slot, text and metadata of each live record among `slots`.
    fn for_each_record(&self, slots: &[u64], f: &mut RecordFn<'_>) -> Result<()>;
}

/// What [`SlotIndex::for_each_record`] calls: slot, text, metadata.
pub(crate) type RecordFn<'a> = dyn FnMut(u64, Option<&str>, Option<&Map<String, Value>>) + 'a;
