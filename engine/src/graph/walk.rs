//! Walking a graph: the beam search of one level (HNSW's SEARCH-LAYER) and the search of the
//! whole graph from its entry point, with int8 distances.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::{Nodes, Probe, View, Visited};
use crate::error::Result;

/// A record (or node) and its distance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cand {
    pub d: f32,
    pub id: u32,
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.d.total_cmp(&o.d).then(self.id.cmp(&o.id))
    }
}

/// What scoring a record gives a walk: its distance and whether it may be in the answer (a
/// deleted or filtered-out node is walked through, never returned). `None`: the number holds
/// no vector (never linked by a sound graph; skipped).
pub(crate) type Score = Option<(f32, bool)>;

/// The beam search of one level from `entries`: the `ef` closest admitted records, closest
/// first. Every record reached is expanded while it can still improve the answer; at most
/// `budget` records are scored (a filter that admits few nodes would otherwise walk the whole
/// graph; the caller falls back to a scan when the answer is short). `prefetch(n)` is called
/// for each new neighbour before any of them is scored.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_level<V: View + ?Sized>(
    view: &V,
    level: usize,
    entries: &[Cand],
    ef: usize,
    visited: &mut Visited,
    budget: usize,
    prefetch: &impl Fn(u32),
    score: &mut impl FnMut(u32) -> Result<Score>,
) -> Result<Vec<Cand>> {
    // No walk keeps more than the graph has (a huge k or ef must not allocate for it).
    let ef = ef.clamp(1, (view.node_bound() as usize).max(1));
    let mut cands: BinaryHeap<Reverse<Cand>> = BinaryHeap::with_capacity((ef * 4).min(4096));
    let mut best: BinaryHeap<Cand> = BinaryHeap::with_capacity((ef + 1).min(4096));
    let mut scored = 0usize;
    for &e in entries {
        if visited.insert(e.id) {
            cands.push(Reverse(e));
            if let Some((_, true)) = score(e.id)? {
                best.push(e);
            }
        }
    }
    while best.len() > ef {
        best.pop();
    }
    let mut nbrs = Vec::new();
    let mut fresh = Vec::new();
    while let Some(Reverse(c)) = cands.pop() {
        if best.len() >= ef && best.peek().is_some_and(|w| c.d > w.d) {
            break;
        }
        // The next candidate is likely the closest left: its list is fetched while this one's
        // neighbours are scored.
        if let Some(Reverse(next)) = cands.peek() {
            view.prefetch_list(level, next.id);
        }
        view.neighbors(level, c.id, &mut nbrs)?;
        unvisited(&nbrs, visited, &mut fresh, prefetch);
        for &n in &fresh {
            scored += 1;
            let Some((d, admitted)) = score(n)? else { continue };
            let worst = best.peek().map_or(f32::INFINITY, |w| w.d);
            if best.len() < ef || d < worst {
                cands.push(Reverse(Cand { d, id: n }));
                if admitted {
                    best.push(Cand { d, id: n });
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        if scored >= budget {
            break;
        }
    }
    Ok(best.into_sorted_vec())
}

/// The neighbours not yet visited, into `fresh` (marked visited now), found without a branch per
/// neighbour (whether one was visited is a coin toss to the branch predictor); then their int8
/// copies are asked for together, before any is scored.
fn unvisited(nbrs: &[u32], visited: &mut Visited, fresh: &mut Vec<u32>, prefetch: &impl Fn(u32)) {
    fresh.resize(nbrs.len(), 0);
    let mut k = 0;
    for &n in nbrs {
        fresh[k] = n;
        k += usize::from(visited.insert(n));
    }
    fresh.truncate(k);
    for &n in fresh.iter() {
        prefetch(n);
    }
}

/// [`search_level`] for a walk in which every node scored may be returned (an insertion's, or a
/// search's with nothing deleted and no filter):
/// one array of the `ef` closest so far, sorted, instead of two heaps. The node expanded next
/// is the closest not yet expanded, so the walk expands the same nodes in the same order as
/// `search_level` (a node that leaves the `ef` closest is one `search_level` would stop at),
/// with one binary search and a short move per accepted node in place of the heaps' pushes and
/// pops. `score(n)`: the distance of `n`, `None` when it holds no vector.
pub(crate) fn search_level_pool<V: View + ?Sized>(
    view: &V,
    level: usize,
    entries: &[Cand],
    ef: usize,
    visited: &mut Visited,
    prefetch: &impl Fn(u32),
    score: &mut impl FnMut(u32) -> Result<Option<f32>>,
) -> Result<Vec<Cand>> {
    let ef = ef.clamp(1, (view.node_bound() as usize).max(1));
    // The closest first; `expanded[i]` for `pool[i]`.
    let mut pool: Vec<Cand> = Vec::with_capacity(ef + 1);
    let mut expanded: Vec<bool> = Vec::with_capacity(ef + 1);
    let offer = |pool: &mut Vec<Cand>, expanded: &mut Vec<bool>, c: Cand| -> Option<usize> {
        if pool.len() >= ef && pool.last().is_some_and(|w| c >= *w) {
            return None;
        }
        let at = pool.partition_point(|x| *x < c);
        pool.insert(at, c);
        expanded.insert(at, false);
        pool.truncate(ef);
        expanded.truncate(ef);
        Some(at)
    };
    for &e in entries {
        if visited.insert(e.id) {
            offer(&mut pool, &mut expanded, e);
        }
    }
    let mut nbrs = Vec::new();
    let mut fresh = Vec::new();
    // Every node before `cur` is expanded.
    let mut cur = 0;
    while let Some(&c) = pool.get(cur) {
        expanded[cur] = true;
        if let Some(next) = pool.get(cur + 1) {
            view.prefetch_list(level, next.id);
        }
        view.neighbors(level, c.id, &mut nbrs)?;
        unvisited(&nbrs, visited, &mut fresh, prefetch);
        // The first unexpanded node at or after `cur + 1`, or an earlier place a closer
        // node went in.
        let mut lowest = usize::MAX;
        for &n in &fresh {
            let Some(d) = score(n)? else { continue };
            if let Some(at) = offer(&mut pool, &mut expanded, Cand { d, id: n }) {
                if at <= cur {
                    cur += 1;
                }
                lowest = lowest.min(at);
            }
        }
        cur = lowest.min(cur + 1);
        while expanded.get(cur) == Some(&true) {
            cur += 1;
        }
    }
    Ok(pool)
}

/// Which nodes a search may return.
#[derive(Clone, Copy)]
pub(crate) enum Admit<'a> {
    /// Every node below this number (the walk reads no slot, and passes no node at or above it).
    Below(u64),
    /// The nodes for which this is true of their number and slot (deletions, filters); the walk
    /// passes through the others.
    Slots(&'a dyn Fn(u32, u64) -> bool),
}

/// The search of a whole graph for `probe`: greedy from the entry point down the upper levels,
/// then the beam search of level 0 with `ef` candidates. Returns nodes with their approximate
/// distances, closest first; `admit` says which nodes may be returned.
pub(crate) fn search<V: View + ?Sized>(
    view: &V,
    nodes: &dyn Nodes,
    probe: &Probe,
    ef: usize,
    budget: usize,
    visited: &mut Visited,
    admit: Admit<'_>,
) -> Result<Vec<Cand>> {
    let Some((top, entry)) = view.entry() else { return Ok(Vec::new()) };
    let bound = view.node_bound() as usize;
    let upper = |level: usize| {
        move |rec: u32| -> Result<Score> {
            let node = view.record(level, rec)?.0;
            Ok(nodes.codes(node)?.map(|(c, p)| (probe.distance_to(c, &p), true)))
        }
    };
    let Some((d0, _)) = upper(top)(entry)? else { return Ok(Vec::new()) };
    let mut cur = Cand { d: d0, id: entry };
    for level in (1..=top).rev() {
        visited.reset(bound);
        let mut s = upper(level);
        if let Some(&b) = search_level(view, level, &[cur], 1, visited, usize::MAX, &|_| {}, &mut s)?.first() {
            cur = b;
        }
        cur.id = view.record(level, cur.id)?.1;
    }
    visited.reset(bound);
    match admit {
        Admit::Below(end) => {
            let mut s0 = |n: u32| -> Result<Option<f32>> {
                if u64::from(n) >= end {
                    return Ok(None);
                }
                Ok(nodes.codes(n)?.map(|(c, p)| probe.distance_to(c, &p)))
            };
            // The entry, reached through the upper levels, may be at or above `end`: then it
            // takes one place more, and leaves it.
            let above = u64::from(cur.id) >= end;
            let mut found = search_level_pool(view, 0, &[cur], ef + usize::from(above), visited, &|n| nodes.prefetch(n), &mut s0)?;
            if above {
                found.retain(|c| c.id != cur.id);
            }
            Ok(found)
        }
        Admit::Slots(admit) => {
            let mut s0 = |n: u32| -> Result<Score> { Ok(nodes.node(n)?.map(|r| (probe.distance(&r), admit(n, r.slot)))) };
            search_level(view, 0, &[cur], ef, visited, budget, &|n| nodes.prefetch(n), &mut s0)
        }
    }
}
