//! Sets of slots: as sorted, deduplicated `Vec<u64>`s (the operations the filter evaluator
//! combines index look-ups with), and as a bitmap ([`SlotBitmap`]: the deleted slots, and a
//! filter's candidates during a scan).
//!
//! Every function takes sorted, deduplicated slices and returns a sorted, deduplicated vector.
//! When one operand is much smaller than the other, the larger one is searched (binary search
//! from the last position) instead of walked, so intersecting 1,000 slots with 100,000 costs
//! about 1,000 searches, and removing 1,000 slots from 100,000 copies the runs between them.

/// How much smaller one operand must be for searching the larger one to beat walking it.
const GALLOP_RATIO: usize = 16;

/// Sorts and deduplicates `v` (a no-op, checked in one pass, if it already is).
pub(crate) fn normalize(v: &mut Vec<u64>) {
    if !v.windows(2).all(|w| w[0] < w[1]) {
        v.sort_unstable();
        v.dedup();
    }
}

/// The slots in both `a` and `b`.
pub(crate) fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (small, big) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    if small.len().saturating_mul(GALLOP_RATIO) < big.len() {
        let mut rest = big;
        for &x in small {
            let i = rest.partition_point(|&y| y < x);
            if rest.get(i) == Some(&x) {
                out.push(x);
                rest = &rest[i + 1..];
            } else {
                rest = &rest[i..];
            }
        }
    } else {
        let (mut i, mut j) = (0, 0);
        while i < small.len() && j < big.len() {
            let (x, y) = (small[i], big[j]);
            if x < y {
                i += 1;
            } else if y < x {
                j += 1;
            } else {
                out.push(x);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The slots in `a` or `b`.
pub(crate) fn union(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x < y {
            out.push(x);
            i += 1;
        } else if y < x {
            out.push(y);
            j += 1;
        } else {
            out.push(x);
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The slots in any of `sets`, merged pairwise in rounds (each slot is copied about
/// log2(`sets.len()`) times).
pub(crate) fn union_all(mut sets: Vec<Vec<u64>>) -> Vec<u64> {
    while sets.len() > 1 {
        let mut next = Vec::with_capacity(sets.len().div_ceil(2));
        let mut it = sets.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => union(&a, &b),
                None => a,
            });
        }
        sets = next;
    }
    sets.pop().unwrap_or_default()
}

/// The slots in `a` and not in `b`.
pub(crate) fn difference(a: &[u64], b: &[u64]) -> Vec<u64> {
    if b.is_empty() {
        return a.to_vec();
    }
    let mut out = Vec::with_capacity(a.len());
    if b.len().saturating_mul(GALLOP_RATIO) < a.len() {
        // Copy the runs of `a` between the elements of `b`.
        let mut rest = a;
        for &x in b {
            let i = rest.partition_point(|&y| y < x);
            out.extend_from_slice(&rest[..i]);
            rest = if rest.get(i) == Some(&x) { &rest[i + 1..] } else { &rest[i..] };
        }
        out.extend_from_slice(rest);
    } else {
        let mut j = 0;
        for &x in a {
            while j < b.len() && b[j] < x {
                j += 1;
            }
            if b.get(j) != Some(&x) {
                out.push(x);
            }
        }
    }
    out
}

/// A set of slots, one bit each (slots are dense, from 0 up).
#[derive(Debug, Default, Clone)]
pub(crate) struct SlotBitmap {
    words: Vec<u64>,
    count: u64,
}

impl SlotBitmap {
    /// The set of `slots` (sorted or not).
    pub(crate) fn from_slots(slots: &[u64]) -> SlotBitmap {
        let mut b = SlotBitmap::default();
        if let Some(&max) = slots.iter().max() {
            b.words.reserve((max / 64 + 1) as usize);
        }
        for &s in slots {
            b.insert(s);
        }
        b
    }
    /// Add a slot.
    pub(crate) fn insert(&mut self, slot: u64) {
        let w = (slot / 64) as usize;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let b = 1u64 << (slot % 64);
        if self.words[w] & b == 0 {
            self.words[w] |= b;
            self.count += 1;
        }
    }
    /// Whether the slot is in the set.
    #[inline]
    pub(crate) fn contains(&self, slot: u64) -> bool {
        self.words.get((slot / 64) as usize).is_some_and(|w| w & (1u64 << (slot % 64)) != 0)
    }
    /// Number of slots in the set.
    pub(crate) fn len(&self) -> u64 {
        self.count
    }
    /// Whether any slot in `lo..=hi` is in the set.
    pub(crate) fn any_in(&self, lo: u64, hi: u64) -> bool {
        let (a, b) = ((lo / 64) as usize, (hi / 64) as usize);
        if a >= self.words.len() {
            return false;
        }
        let b = b.min(self.words.len() - 1);
        (a..=b).any(|i| {
            let mut w = self.words[i];
            if i == a {
                w &= u64::MAX << (lo % 64);
            }
            if i == (hi / 64) as usize && hi % 64 != 63 {
                w &= (1u64 << (hi % 64 + 1)) - 1;
            }
            w != 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn set() -> impl Strategy<Value = BTreeSet<u64>> {
        prop_oneof![
            prop::collection::btree_set(0u64..64, 0..40),
            prop::collection::btree_set(0u64..2000, 0..600),
            prop::collection::btree_set(0u64..2000, 0..8),
            Just((0..1500).collect()),
        ]
    }

    fn v(s: &BTreeSet<u64>) -> Vec<u64> {
        s.iter().copied().collect()
    }

    proptest! {
        #[test]
        fn ops_agree_with_btreeset(a in set(), b in set(), c in set()) {
            prop_assert_eq!(intersect(&v(&a), &v(&b)), v(&(&a & &b)));
            prop_assert_eq!(union(&v(&a), &v(&b)), v(&(&a | &b)));
            prop_assert_eq!(difference(&v(&a), &v(&b)), v(&(&a - &b)));
            prop_assert_eq!(difference(&v(&b), &v(&a)), v(&(&b - &a)));
            prop_assert_eq!(union_all(vec![v(&a), v(&b), v(&c)]), v(&(&(&a | &b) | &c)));
            let mut shuffled: Vec<u64> = v(&a).into_iter().rev().chain(v(&b)).collect();
            normalize(&mut shuffled);
            prop_assert_eq!(shuffled, v(&(&a | &b)));
        }
    }

    #[test]
    fn edges() {
        assert_eq!(union_all(vec![]), Vec::<u64>::new());
        assert_eq!(union_all(vec![vec![3]]), vec![3]);
        assert_eq!(intersect(&[], &[1, 2]), Vec::<u64>::new());
        assert_eq!(difference(&[1, 2], &[]), vec![1, 2]);
        assert_eq!(difference(&[], &[1]), Vec::<u64>::new());
        let big: Vec<u64> = (0..1000).collect();
        assert_eq!(intersect(&[5, 999, 1000], &big), vec![5, 999]);
        assert_eq!(difference(&big, &[0, 500, 999, 2000]).len(), 997);
    }

    #[test]
    fn slot_bitmap_ranges() {
        let b = SlotBitmap::from_slots(&[3, 64, 200]);
        assert!(b.contains(3) && b.contains(64) && b.contains(200) && !b.contains(4) && !b.contains(10_000));
        assert!(b.any_in(0, 3) && !b.any_in(4, 63) && b.any_in(4, 64) && b.any_in(65, 200) && !b.any_in(65, 199) && !b.any_in(201, 5000));
        assert!(b.any_in(0, u64::MAX / 2) && !SlotBitmap::from_slots(&[]).any_in(0, 100));
    }
}
