//! The [`VectorIndex`] trait and the exact, flat implementation.
//!
//! An index answers "the k live slots closest to each query" over a [`VectorSource`]: the
//! store's sealed vector pages (memory-mapped) followed by the vectors written since the last
//! checkpoint, and the int8 copies of the same vectors (FORMAT.md §2.8).
//!
//! [`FlatIndex`] scans everything (no graph, no clusters). It has two scans:
//! - **float32**: every live vector is scored with the SIMD kernels, a page at a time
//!   (against every query of a batch while the page is in cache), keeping the best k in a
//!   bounded heap;
//! - **quantized**: the int8 copies (a quarter of the bytes) are scored with integer SIMD. Each
//!   vector gets a proven interval that holds its float32 distance ([`quantized`]); the scan
//!   keeps every vector whose interval reaches below the k-th best upper end, and rescores
//!   those from the float32 vectors. The answer is exactly the float32 scan's (same slots, same
//!   distances, ties by the lower slot), whatever the data: where the intervals are too wide to
//!   prune (one coordinate much larger than the others), the query is answered by the float32
//!   scan instead.
//!
//! Large stores are scanned by several threads (contiguous page ranges, one heap each, merged).
//! A filter arrives as a sorted list of candidate slots, selected on the mirror: when it is a
//! small fraction of the store the candidates are scored directly, otherwise the scan skips
//! every slot not in it. Deleted slots are skipped by both; pages are never rewritten for that.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use memento_format::page::QuantEntry;
use memento_format::superblock::Metric;

use crate::error::Result;
use crate::kernels;
use crate::slots::SlotBitmap;

pub mod quantized;
use quantized::{BoundQuery, Candidates, Gave};

/// Where an index reads vectors from. Block `i` is a vector page (or the vectors of a future
/// one); slots increase across and within blocks.
pub trait VectorSource: Sync {
    /// Elements per vector.
    fn dim(&self) -> usize;
    /// Vectors held, deleted ones included.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of float32 blocks.
    fn blocks(&self) -> usize;
    /// Slots and vectors (`slots.len() * dim` floats) of block `i`.
    fn block(&self, i: usize) -> Result<Block<'_>>;
    /// Number of quantized blocks; 0 when the source has no int8 copies. When not 0, the
    /// quantized blocks hold exactly the slots of the float32 blocks.
    fn quant_blocks(&self) -> usize;
    /// Block `i` of the int8 copies.
    fn quant_block(&self, i: usize) -> Result<QuantBlock<'_>>;
    /// The vector of a slot, if the slot holds one.
    fn vector(&self, slot: u64) -> Result<Option<Cow<'_, [f32]>>>;
    /// Whether a slot was deleted.
    fn is_dead(&self, slot: u64) -> bool;
}

/// A block of float32 vectors: slots and `slots.len() * dim` floats, borrowed from the mapped
/// pages when they are aligned.
pub type Block<'a> = (Cow<'a, [u64]>, Cow<'a, [f32]>);

/// A block of int8 copies: slots, per-vector parameters, and `slots.len() * dim` codes.
#[derive(Debug)]
pub struct QuantBlock<'a> {
    /// Slots, increasing.
    pub slots: Cow<'a, [u64]>,
    /// Scale, code sum and squared norm of each vector.
    pub params: Cow<'a, [QuantEntry]>,
    /// The codes.
    pub codes: Cow<'a, [i8]>,
}

/// One result: a slot and its distance (smaller is closer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotHit {
    /// The slot.
    pub slot: u64,
    /// Its distance from the query under the store's metric.
    pub distance: f32,
}

/// Which scan answers a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanMode {
    /// The quantized scan on stores of [`QUANTIZED_MIN_VECTORS`] and more, the float32 scan
    /// otherwise. The default. Returns exactly what [`ScanMode::Exact`] returns.
    #[default]
    Auto,
    /// Score every vector in float32: always the true top k.
    Exact,
    /// The int8 scan whatever the store's size, with float32 rescoring of every vector its
    /// bounds cannot rule out (and the float32 scan for a query where they rule out too few):
    /// exactly what [`ScanMode::Exact`] returns.
    Quantized,
    /// The graph index whatever the store's size (when it has one; the scans otherwise):
    /// approximate, the distances returned exact.
    Graph,
}

/// How one search (of one or many queries) runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchPlan {
    /// The store's metric.
    pub metric: Metric,
    /// Results per query.
    pub k: usize,
    /// Which scan.
    pub mode: ScanMode,
    /// Threads a large scan may use (at least 1).
    pub threads: usize,
    /// No effect (kept for compatibility): the quantized scan used to keep `k × oversample`
    /// candidates, and missed neighbours beyond them; it now keeps what its bounds require.
    pub oversample: usize,
    /// A scan of fewer bytes than this runs on the calling thread alone
    /// ([`PARALLEL_MIN_BYTES`] by default).
    pub parallel_min_bytes: usize,
}

/// Finds the nearest slots to queries.
pub trait VectorIndex: Send + Sync {
    /// A short name for diagnostics.
    fn name(&self) -> &'static str;
    /// For each query of `queries` (`n × dim` floats, each already normalised under cosine),
    /// the `plan.k` nearest live slots, closest first, ties broken by the lower slot. With
    /// `candidates` (sorted, deduplicated), only those slots are considered.
    fn search(&self, src: &dyn VectorSource, plan: &SearchPlan, queries: &[f32], candidates: Option<&[u64]>) -> Result<Vec<Vec<SlotHit>>>;
}

/// Brute-force search (float32, or int8 with float32 rescoring): see the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlatIndex;

/// Below this many bytes to scan, one thread does it all (starting threads costs more).
pub const PARALLEL_MIN_BYTES: usize = 8 << 20;
/// `ScanMode::Auto` uses the quantized scan from this many vectors on.
pub const QUANTIZED_MIN_VECTORS: usize = 4096;
/// A filter whose candidates are at most this fraction (1/n) of the store is answered by
/// scoring the candidates directly instead of scanning.
pub const DIRECT_FRACTION: usize = 16;
/// The default of [`SearchPlan::oversample`], which no longer has an effect.
pub const DEFAULT_OVERSAMPLE: usize = 8;

#[derive(Clone, Copy, PartialEq)]
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

/// Keeps the k best (smallest distance, then smallest slot) without sorting everything: a
/// bounded max-heap, with the worst kept entry cached so that most candidates are refused by
/// one comparison.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
    worst: Entry,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k.min(4096) + 1), worst: Entry(f32::INFINITY, u64::MAX) }
    }
    #[inline]
    pub(crate) fn push(&mut self, slot: u64, d: f32) {
        let e = Entry(d, slot);
        if self.heap.len() < self.k {
            self.heap.push(e);
            if self.heap.len() == self.k {
                self.worst = self.heap.peek().copied().unwrap_or(self.worst);
            }
        } else if e < self.worst {
            // Replace the worst in place: one sift instead of a pop and a push.
            if let Some(mut top) = self.heap.peek_mut() {
                *top = e;
            }
            self.worst = self.heap.peek().copied().unwrap_or(self.worst);
        }
    }
    /// The one admission rule of every path (float32 scan, direct scoring, rescoring of the
    /// int8 scan's candidates), so that they all keep the same results.
    /// A NaN distance ranks last (as +inf) instead of being dropped: new vectors cannot make
    /// one (their norm is bounded, see [`crate::limits::MAX_VECTOR_NORM`]), but a store written
    /// before that limit may hold vectors whose distances overflow.
    #[inline]
    pub(crate) fn offer(&mut self, slot: u64, d: f32) {
        let d = if d.is_nan() { f32::INFINITY } else { d };
        if d <= self.bound() {
            self.push(slot, d);
        }
    }
    /// A distance above this cannot enter (equal ones may, by slot).
    #[inline]
    fn bound(&self) -> f32 {
        self.worst.0
    }
    fn merge(&mut self, other: TopK) {
        for e in other.heap {
            self.push(e.1, e.0);
        }
    }
    pub(crate) fn into_sorted(self) -> Vec<SlotHit> {
        self.heap.into_sorted_vec().into_iter().map(|Entry(distance, slot)| SlotHit { slot, distance }).collect()
    }
}

/// What a scan thread keeps: the filter, if any.
#[derive(Clone, Copy)]
struct Scope<'a> {
    src: &'a dyn VectorSource,
    allowed: Option<&'a SlotBitmap>,
}

impl Scope<'_> {
    #[inline]
    fn admits(&self, slot: u64) -> bool {
        !self.src.is_dead(slot) && self.allowed.is_none_or(|b| b.contains(slot))
    }
    fn block_admits_any(&self, slots: &[u64]) -> bool {
        match (self.allowed, slots.first(), slots.last()) {
            (Some(b), Some(&lo), Some(&hi)) => b.any_in(lo, hi),
            (_, None, _) => false,
            _ => true,
        }
    }
}

impl FlatIndex {
    /// Score candidates directly (a selective filter).
    fn direct(src: &dyn VectorSource, plan: &SearchPlan, queries: &[f32], candidates: &[u64]) -> Result<Vec<TopK>> {
        let dim = src.dim();
        let mut tops: Vec<TopK> = queries.chunks_exact(dim).map(|_| TopK::new(plan.k)).collect();
        for &slot in candidates {
            if src.is_dead(slot) {
                continue;
            }
            if let Some(v) = src.vector(slot)? {
                for (q, top) in queries.chunks_exact(dim).zip(&mut tops) {
                    top.offer(slot, kernels::distance(plan.metric, q, &v));
                }
            }
        }
        Ok(tops)
    }

    /// The float32 scan of blocks `range`.
    fn scan_exact(scope: Scope<'_>, plan: &SearchPlan, queries: &[f32], range: std::ops::Range<usize>) -> Result<Vec<TopK>> {
        let src = scope.src;
        let dim = src.dim();
        let nq = queries.len() / dim;
        let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(plan.k)).collect();
        let mut out: Vec<f32> = Vec::new();
        for i in range {
            let (slots, vecs) = src.block(i)?;
            if !scope.block_admits_any(&slots) {
                continue;
            }
            let n = slots.len();
            out.resize(n * nq, 0.0);
            if nq == 1 {
                kernels::distances(plan.metric, queries, &vecs, &mut out);
            } else {
                kernels::distances_multi(plan.metric, dim, queries, &vecs, &mut out);
            }
            for (qi, top) in tops.iter_mut().enumerate() {
                for (&slot, &d) in slots.iter().zip(&out[qi * n..(qi + 1) * n]) {
                    // Most vectors lose to the k-th best: one comparison refuses them.
                    if d <= top.bound() && scope.admits(slot) {
                        top.offer(slot, d);
                    }
                }
            }
        }
        Ok(tops)
    }

    /// The int8 scan of quantized blocks `range`: for each query, the candidates whose proven
    /// distance interval may reach the top k (see [`quantized`]).
    fn scan_quantized(scope: Scope<'_>, plan: &SearchPlan, queries: &[BoundQuery], gave: &Gave, range: std::ops::Range<usize>) -> Result<Vec<Candidates>> {
        let src = scope.src;
        let mut states: Vec<Candidates> = queries.iter().map(|_| Candidates::new(plan.k)).collect();
        let mut raw: Vec<i32> = Vec::new();
        for i in range {
            let b = src.quant_block(i)?;
            if !scope.block_admits_any(&b.slots) {
                continue;
            }
            raw.resize(b.slots.len(), 0);
            for (qi, (q, st)) in queries.iter().zip(&mut states).enumerate() {
                if st.overflow || gave.up(qi) {
                    continue;
                }
                kernels::dots_u8i8(&q.quant.codes, &b.codes, &mut raw);
                st.scanned += b.slots.len();
                for ((&slot, &r), p) in b.slots.iter().zip(&raw).zip(b.params.iter()) {
                    let (lo, hi) = q.interval(plan.metric, r, p);
                    // Most vectors are refused by one comparison, before the liveness check.
                    if lo <= st.threshold() && scope.admits(slot) {
                        st.offer(slot, lo, hi);
                    }
                }
                if st.overflow {
                    gave.give_up(qi);
                }
            }
        }
        for (qi, st) in states.iter_mut().enumerate() {
            if !st.overflow {
                st.prune();
            }
            if st.overflow {
                gave.give_up(qi);
            }
        }
        Ok(states)
    }

    /// Run `scan` over `0..blocks` on up to `threads` threads (contiguous ranges), folding the
    /// per-thread states of each query together with `merge`.
    fn parallel<T: Send>(
        threads: usize,
        blocks: usize,
        scan: &(dyn Fn(std::ops::Range<usize>) -> Result<Vec<T>> + Sync),
        merge: impl Fn(&mut T, T),
    ) -> Result<Vec<T>> {
        let threads = threads.clamp(1, blocks.max(1));
        if threads == 1 {
            return scan(0..blocks);
        }
        let per = blocks.div_ceil(threads);
        let parts: Vec<Result<Vec<T>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|t| s.spawn(move || scan(t * per..((t + 1) * per).min(blocks)))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        let mut parts = parts.into_iter();
        let mut acc = parts.next().unwrap_or_else(|| Ok(Vec::new()))?;
        for part in parts {
            for (a, p) in acc.iter_mut().zip(part?) {
                merge(a, p);
            }
        }
        Ok(acc)
    }

    /// The float32 scan of every block for `queries`, on as many threads as its size deserves.
    fn exact_all(scope: Scope<'_>, plan: &SearchPlan, queries: &[f32]) -> Result<Vec<TopK>> {
        let src = scope.src;
        let threads = if src.len().saturating_mul(4 * src.dim()) < plan.parallel_min_bytes { 1 } else { plan.threads };
        let scan = |r| Self::scan_exact(scope, plan, queries, r);
        Self::parallel(threads, src.blocks(), &scan, TopK::merge)
    }
}

impl VectorIndex for FlatIndex {
    fn name(&self) -> &'static str {
        "flat"
    }

    fn search(&self, src: &dyn VectorSource, plan: &SearchPlan, queries: &[f32], candidates: Option<&[u64]>) -> Result<Vec<Vec<SlotHit>>> {
        let dim = src.dim();
        let nq = queries.len() / dim.max(1);
        if plan.k == 0 || nq == 0 || src.is_empty() {
            return Ok(vec![Vec::new(); nq]);
        }
        if let Some(c) = candidates.filter(|c| c.len().saturating_mul(DIRECT_FRACTION) <= src.len()) {
            return Ok(Self::direct(src, plan, queries, c)?.into_iter().map(TopK::into_sorted).collect());
        }
        let bits = candidates.map(SlotBitmap::from_slots);
        let scope = Scope { src, allowed: bits.as_ref() };
        let quantized = src.quant_blocks() > 0
            // With k a large part of the store, nearly every vector is a candidate anyway.
            && plan.k.saturating_mul(quantized::FALLBACK_FRACTION) < src.len()
            && match plan.mode {
                ScanMode::Exact => false,
                ScanMode::Quantized => true,
                ScanMode::Auto | ScanMode::Graph => src.len() >= QUANTIZED_MIN_VECTORS,
            };
        if !quantized {
            return Ok(Self::exact_all(scope, plan, queries)?.into_iter().map(TopK::into_sorted).collect());
        }
        let bq: Vec<BoundQuery> = queries.chunks_exact(dim).map(BoundQuery::new).collect();
        let gave = Gave::new(nq);
        let threads = if src.len().saturating_mul(dim) < plan.parallel_min_bytes { 1 } else { plan.threads };
        let scan = |r| Self::scan_quantized(scope, plan, &bq, &gave, r);
        let states = Self::parallel(threads, src.quant_blocks(), &scan, Candidates::merge)?;
        let mut out: Vec<Option<Vec<SlotHit>>> = Vec::with_capacity(nq);
        let mut fallback: Vec<usize> = Vec::new();
        for (qi, (q, mut st)) in queries.chunks_exact(dim).zip(states).enumerate() {
            if st.overflow {
                fallback.push(qi);
                out.push(None);
                continue;
            }
            // Rescore every candidate in float32, in slot order (page order): the same kernel,
            // the same admission and the same ties rule as the float32 scan.
            st.cands.sort_unstable_by_key(|c| c.0);
            let mut exact = TopK::new(plan.k);
            for &(slot, _) in &st.cands {
                if let Some(v) = src.vector(slot)? {
                    exact.offer(slot, kernels::distance(plan.metric, q, &v));
                }
            }
            out.push(Some(exact.into_sorted()));
        }
        if !fallback.is_empty() {
            let qs: Vec<f32> = fallback.iter().flat_map(|&qi| queries[qi * dim..(qi + 1) * dim].iter().copied()).collect();
            for (qi, top) in fallback.into_iter().zip(Self::exact_all(scope, plan, &qs)?) {
                out[qi] = Some(top.into_sorted());
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
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

    #[test]
    fn top_k_merge_equals_one_heap() {
        let items: Vec<(u64, f32)> = (0..200u64).map(|i| (i, ((i * 7919) % 101) as f32 / 10.0)).collect();
        let mut one = TopK::new(10);
        let (mut a, mut b) = (TopK::new(10), TopK::new(10));
        for &(s, d) in &items {
            one.push(s, d);
            if s % 3 == 0 {
                a.push(s, d)
            } else {
                b.push(s, d)
            }
        }
        a.merge(b);
        assert_eq!(a.into_sorted(), one.into_sorted());
    }

    /// Vectors in blocks of 7 (float32) and 5 (int8), slots 0..n, some dead.
    struct Mem {
        dim: usize,
        vecs: Vec<f32>,
        params: Vec<QuantEntry>,
        codes: Vec<i8>,
        dead: Vec<bool>,
    }

    impl Mem {
        fn new(n: usize, dim: usize, seed: u64) -> Mem {
            let mut x = seed;
            let mut next = || {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            };
            let mut vecs: Vec<f32> = (0..n * dim).map(|_| next()).collect();
            for v in vecs.chunks_exact_mut(dim) {
                kernels::normalize(v);
            }
            let mut codes = vec![0i8; n * dim];
            let params = vecs.chunks_exact(dim).zip(codes.chunks_exact_mut(dim)).map(|(v, c)| memento_format::page::quantize(v, c)).collect();
            Mem { dim, vecs, params, codes, dead: (0..n).map(|i| i % 11 == 3).collect() }
        }
        fn from_vecs(vecs: Vec<f32>, dim: usize, dead_every: usize) -> Mem {
            let n = vecs.len() / dim;
            let mut codes = vec![0i8; n * dim];
            let params = vecs.chunks_exact(dim).zip(codes.chunks_exact_mut(dim)).map(|(v, c)| kernels::quantize_vector(v, c)).collect();
            Mem { dim, vecs, params, codes, dead: (0..n).map(|i| dead_every > 0 && i % dead_every == 1).collect() }
        }
        fn n(&self) -> usize {
            self.dead.len()
        }
    }

    impl VectorSource for Mem {
        fn dim(&self) -> usize {
            self.dim
        }
        fn len(&self) -> usize {
            self.n()
        }
        fn blocks(&self) -> usize {
            self.n().div_ceil(7)
        }
        fn block(&self, i: usize) -> Result<Block<'_>> {
            let r = i * 7..((i + 1) * 7).min(self.n());
            Ok((r.clone().map(|s| s as u64).collect(), Cow::Borrowed(&self.vecs[r.start * self.dim..r.end * self.dim])))
        }
        fn quant_blocks(&self) -> usize {
            self.n().div_ceil(5)
        }
        fn quant_block(&self, i: usize) -> Result<QuantBlock<'_>> {
            let r = i * 5..((i + 1) * 5).min(self.n());
            Ok(QuantBlock {
                slots: r.clone().map(|s| s as u64).collect(),
                params: Cow::Borrowed(&self.params[r.clone()]),
                codes: Cow::Borrowed(&self.codes[r.start * self.dim..r.end * self.dim]),
            })
        }
        fn vector(&self, slot: u64) -> Result<Option<Cow<'_, [f32]>>> {
            let s = slot as usize;
            Ok((s < self.n()).then(|| Cow::Borrowed(&self.vecs[s * self.dim..(s + 1) * self.dim])))
        }
        fn is_dead(&self, slot: u64) -> bool {
            self.dead[slot as usize]
        }
    }

    fn brute(m: &Mem, metric: Metric, q: &[f32], k: usize, allowed: Option<&[u64]>) -> Vec<SlotHit> {
        let mut all: Vec<SlotHit> = (0..m.n() as u64)
            .filter(|&s| !m.dead[s as usize] && allowed.is_none_or(|a| a.contains(&s)))
            .map(|s| SlotHit { slot: s, distance: kernels::distance(metric, q, &m.vecs[s as usize * m.dim..(s as usize + 1) * m.dim]) })
            .collect();
        all.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.slot.cmp(&b.slot)));
        all.truncate(k);
        all
    }

    #[test]
    fn every_scan_and_thread_count_gives_the_exact_answer() {
        let m = Mem::new(600, 24, 7);
        let queries = Mem::new(5, 24, 99).vecs;
        let every_third: Vec<u64> = (0..600).filter(|s| s % 3 == 0).collect();
        let few: Vec<u64> = vec![5, 17, 300, 301, 599];
        for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
            for mode in [ScanMode::Exact, ScanMode::Quantized, ScanMode::Auto] {
                for threads in [1, 2, 3, 200] {
                    for (cands, name) in [(None, "all"), (Some(&every_third[..]), "a third"), (Some(&few[..]), "five")] {
                        let plan = SearchPlan { metric, k: 10, mode, threads, oversample: 8, parallel_min_bytes: 0 };
                        let got = FlatIndex.search(&m, &plan, &queries, cands).expect("search");
                        assert_eq!(got.len(), 5);
                        for (q, hits) in queries.chunks_exact(24).zip(&got) {
                            let want = brute(&m, metric, q, 10, cands);
                            assert_eq!(
                                hits.iter().map(|h| h.slot).collect::<Vec<_>>(),
                                want.iter().map(|h| h.slot).collect::<Vec<_>>(),
                                "{metric:?} {mode:?} {threads} threads, {name}"
                            );
                            for (h, w) in hits.iter().zip(&want) {
                                assert!((h.distance - w.distance).abs() <= 1e-5, "{metric:?} {mode:?}: {h:?} vs {w:?}");
                            }
                        }
                    }
                }
            }
        }
        let plan = SearchPlan { metric: Metric::Cosine, k: 0, mode: ScanMode::Auto, threads: 2, oversample: 8, parallel_min_bytes: 0 };
        assert_eq!(FlatIndex.search(&m, &plan, &queries, None).expect("k = 0"), vec![Vec::new(); 5]);
    }

    /// Adversarial stores: a dominant coordinate, heavy tails, tiny norms mixed with normal
    /// ones, many exact duplicates. Values from a seed so that shrinking stays meaningful.
    fn adversarial(kind: u8, n: usize, dim: usize, seed: u64, metric: Metric) -> Vec<f32> {
        let mut x = seed | 1;
        let mut uni = move || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut gauss = move || {
            let (u, v) = (uni(), uni());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let mut v: Vec<f32> = (0..dim).map(|_| gauss() as f32).collect();
            match kind {
                0 => v[0] = 1000.0,
                1 => v.iter_mut().for_each(|c| *c = (f64::from(*c) / gauss().abs().max(1e-3)) as f32), // Cauchy-like
                2 if i % 2 == 0 => v.iter_mut().for_each(|c| *c *= 1e-30),
                3 => v = out[..dim.min(out.len())].iter().copied().chain(std::iter::repeat(0.5)).take(dim).collect(),
                _ => {}
            }
            if metric == Metric::Cosine && !kernels::normalize(&mut v) {
                v = vec![1.0; dim];
                kernels::normalize(&mut v);
            }
            out.extend(v);
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 48, ..Default::default() })]
        /// The default search and the forced int8 scan return exactly the float32 scan's
        /// answer (same slots, same distances, ties by slot) on adversarial stores, for each
        /// metric, k, thread count, with and without a filter.
        #[test]
        fn every_mode_equals_the_exact_scan_on_adversarial_data(
            kind in 0u8..5, metric_i in 0usize..3, dim in 1usize..40, n in 50usize..700,
            k in 1usize..30, threads in 1usize..4, filtered in proptest::bool::ANY, seed in proptest::prelude::any::<u64>(),
        ) {
            let metric = [Metric::L2, Metric::Dot, Metric::Cosine][metric_i];
            let m = Mem::from_vecs(adversarial(kind, n, dim, seed, metric), dim, 9);
            let queries = adversarial(kind, 3, dim, seed ^ 0x5555, metric);
            let cands: Vec<u64> = (0..n as u64).filter(|s| s % 3 != 0).collect();
            let cands = filtered.then_some(&cands[..]);
            let plan = |mode| SearchPlan { metric, k, mode, threads, oversample: 8, parallel_min_bytes: 0 };
            let want = FlatIndex.search(&m, &plan(ScanMode::Exact), &queries, cands).expect("exact");
            for mode in [ScanMode::Quantized, ScanMode::Auto] {
                let got = FlatIndex.search(&m, &plan(mode), &queries, cands).expect("search");
                proptest::prop_assert_eq!(&got, &want, "{:?} {:?} kind {}", metric, mode, kind);
            }
        }
    }
}
