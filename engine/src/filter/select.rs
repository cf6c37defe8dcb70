//! Selecting the matching slots with the index's look-ups: conditions on one field become
//! ranges or `IN` lists, conjunctions start from their most selective part and verify the rest
//! on the records when that is cheaper, disjunctions unite.

use std::cmp::Ordering;

use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Value};

use super::index::{Bound, SlotIndex, TYPE_BOOL, TYPE_NUM, TYPE_STR};
use super::{eval, CmpOp, Filter, Node, Scalar};
use crate::error::{Error, Result};
use crate::slots;

/// When an AND has a set of candidates, a further condition is tested on the candidates'
/// records (read and evaluated with [`Filter::matches`]'s code) rather than looked up, if
/// looking it up would read more than this many slots per candidate: reading and parsing a
/// record costs about as much as reading this many slots from the index.
pub(crate) const VERIFY_RATIO: u64 = 16;

/// A set of live slots, kept as whichever side is cheaper to know: `Only(s)` is exactly `s`,
/// `AllBut(s)` is every live slot not in `s`. Negations (`$ne`, `$nin`, `$not_contains`) are
/// `AllBut` of the look-up they negate, so the live slots are read only when the whole
/// filter comes out as `AllBut`.
pub(super) enum Sel {
    Only(Vec<u64>),
    AllBut(Vec<u64>),
}

/// The evaluation of one filter: the index and the verification ratio (see [`VERIFY_RATIO`];
/// 0 tests every condition it can on the records, `u64::MAX` never does).
pub(super) struct Selector<'a> {
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
pub(super) struct Range<'a> {
    key: &'a str,
    ty: i64,
    lower: Option<(&'a Scalar, bool)>,
    upper: Option<(&'a Scalar, bool)>,
    nodes: Vec<&'a Node>,
}

/// Orders two operands of the same type (a number and a string never meet here).
pub(super) fn order(a: &Scalar, b: &Scalar) -> Ordering {
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
pub(super) enum Conjunct<'a> {
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
            Conjunct::Node(Node::Contains { .. } | Node::Matches { .. }) => 6,
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
pub(super) fn flatten<'a>(children: &'a [Node], out: &mut Vec<&'a Node>) {
    for c in children {
        match c {
            Node::And(grandchildren) => flatten(grandchildren, out),
            other => out.push(other),
        }
    }
}

/// The error for a look-up without a limit that says it went over its limit (it cannot).
pub(super) fn unlimited() -> Error {
    Error::mirror(crate::error::MirrorErrorKind::Internal, "a filter look-up without a limit reported too many slots")
}

/// Sets `only` to its intersection with `s`; true if that is empty.
pub(super) fn keep(only: &mut Option<Vec<u64>>, s: Vec<u64>) -> bool {
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
            Node::Matches { query, negated } => {
                let found = self.ix.matching(query)?;
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
