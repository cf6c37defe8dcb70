//! The [`VectorIndex`] trait and the exact, flat implementation.
//!
//! An index answers "the k live slots closest to this query" over a [`VectorSource`]: the
//! store's sealed vector pages (memory-mapped) followed by the vectors written since the last
//! checkpoint. A filter arrives as a sorted list of candidate slots, already selected on the
//! mirror, so an index never returns fewer than k results when k live records match.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use memento_format::superblock::Metric;

use crate::error::Result;
use crate::kernels::distance;

/// Where an index reads vectors from.
pub trait VectorSource {
    /// Elements per vector.
    fn dim(&self) -> usize;
    /// Call `f` with successive blocks of (slots, vectors): `vectors` holds `slots.len() * dim`
    /// floats, and slots increase across and within blocks.
    fn for_each_block(&self, f: &mut dyn FnMut(&[u64], &[f32])) -> Result<()>;
    /// The vector of a slot, if the slot holds one.
    fn vector(&self, slot: u64) -> Result<Option<std::borrow::Cow<'_, [f32]>>>;
    /// Whether a slot was deleted.
    fn is_dead(&self, slot: u64) -> bool;
}

/// One result: a slot and its distance (smaller is closer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotHit {
    /// The slot.
    pub slot: u64,
    /// Its distance from the query under the store's metric.
    pub distance: f32,
}

/// Finds the nearest slots to a query.
pub trait VectorIndex: Send + Sync {
    /// A short name for diagnostics.
    fn name(&self) -> &'static str;
    /// The `k` nearest live slots to `query` (already normalised under cosine), closest first,
    /// ties broken by the lower slot. With `candidates` (sorted, deduplicated), only those slots
    /// are considered.
    fn search(&self, src: &dyn VectorSource, metric: Metric, query: &[f32], k: usize, candidates: Option<&[u64]>) -> Result<Vec<SlotHit>>;
}

/// Exact search: scores every live vector (or every candidate).
#[derive(Debug, Default, Clone, Copy)]
pub struct FlatIndex;

#[derive(PartialEq)]
struct Entry(f32, u64);
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // Max-heap on (distance, slot): the worst kept result is on top.
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// Keeps the k best (smallest distance, then smallest slot) without sorting everything.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k.min(4096) + 1) }
    }
    #[inline]
    pub(crate) fn push(&mut self, slot: u64, d: f32) {
        if self.heap.len() < self.k {
            self.heap.push(Entry(d, slot));
        } else if let Some(top) = self.heap.peek() {
            if Entry(d, slot) < *top {
                self.heap.pop();
                self.heap.push(Entry(d, slot));
            }
        }
    }
    pub(crate) fn into_sorted(self) -> Vec<SlotHit> {
        self.heap.into_sorted_vec().into_iter().map(|Entry(distance, slot)| SlotHit { slot, distance }).collect()
    }
}

impl VectorIndex for FlatIndex {
    fn name(&self) -> &'static str {
        "flat"
    }

    fn search(&self, src: &dyn VectorSource, metric: Metric, query: &[f32], k: usize, candidates: Option<&[u64]>) -> Result<Vec<SlotHit>> {
        let mut top = TopK::new(k);
        if k == 0 {
            return Ok(Vec::new());
        }
        let dim = src.dim();
        match candidates {
            Some(c) => {
                for &slot in c {
                    if src.is_dead(slot) {
                        continue;
                    }
                    if let Some(v) = src.vector(slot)? {
                        top.push(slot, distance(metric, query, &v));
                    }
                }
            }
            None => src.for_each_block(&mut |slots, vecs| {
                for (slot, v) in slots.iter().zip(vecs.chunks_exact(dim)) {
                    if !src.is_dead(*slot) {
                        top.push(*slot, distance(metric, query, v));
                    }
                }
            })?,
        }
        Ok(top.into_sorted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_smallest_with_slot_ties() {
        let mut t = TopK::new(3);
        for (s, d) in [(5, 0.5), (1, 0.1), (9, 0.5), (2, 0.9), (3, 0.5), (0, 0.7)] {
            t.push(s, d);
        }
        let got: Vec<(u64, f32)> = t.into_sorted().into_iter().map(|h| (h.slot, h.distance)).collect();
        assert_eq!(got, vec![(1, 0.1), (3, 0.5), (5, 0.5)]);
    }
}
