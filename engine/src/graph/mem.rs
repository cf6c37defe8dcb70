//! The writer's graph in memory, and inserting nodes into it with every core.
//!
//! Neighbour lists are arrays of atomics with the layout of the file's records (FORMAT.md §7.2):
//! a walk reads them without a lock (a list being rewritten may be read half old, half new:
//! every number in it is still a valid record), and a list is rewritten under its node's lock.
//! Arrays grow only between batches (`&mut self`), so a batch's threads and the searches share
//! them unchanged.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use memento_format::superblock::Metric;
use parking_lot::Mutex;

use super::packed::{Packed, PackedNodes};
use super::walk::{search_level_pool, Cand};
use super::{level_of, with_visited, GraphParams, Nodes, Probe, View, Visited};
use crate::error::{Error, Result};

/// Nodes a build thread takes at a time: few, so that the threads finish a batch together.
const CHUNK: usize = 4;

/// A graph held in memory (see the module documentation).
pub(crate) struct MemGraph {
    pub(crate) metric: Metric,
    pub(crate) m: u16,
    pub(crate) m0: u16,
    pub(crate) ef_construction: usize,
    /// Level 0: `1 + m0` words per node (count, neighbours).
    l0: Vec<AtomicU32>,
    /// Levels 1..: `3 + m` words per record (node, down, count, neighbours); `upper[l - 1]`.
    upper: Vec<Vec<AtomicU32>>,
    /// One lock per node, held while one of its lists is rewritten.
    locks: Vec<Mutex<()>>,
    /// Top level and entry record.
    entry: Mutex<Option<(usize, u32)>>,
    /// Nodes below this are inserted.
    pub(crate) covered: u64,
    /// Nodes inserted (deleted ones included).
    pub(crate) node_count: u64,
    /// One bit per node number that holds a vector (set as it is prepared).
    present: Vec<u64>,
    /// The numbering's generation ([`super::builder::GraphIndex::generation`]) it was built in.
    pub(crate) generation: u64,
    /// The nodes' int8 copies packed for a large build ([`MemGraph::pack`]).
    packed: Option<Packed>,
}

/// A node to insert and its records at levels 1 and up.
pub(crate) struct Prepared {
    node: u32,
    recs: Vec<u32>,
}

impl MemGraph {
    pub(crate) fn new(metric: Metric, p: &GraphParams) -> MemGraph {
        MemGraph {
            metric,
            m: p.m.max(2),
            m0: p.m0().max(2),
            ef_construction: p.ef_construction.max(1),
            l0: Vec::new(),
            upper: Vec::new(),
            locks: Vec::new(),
            entry: Mutex::new(None),
            covered: 0,
            node_count: 0,
            present: Vec::new(),
            generation: 0,
            packed: None,
        }
    }

    /// Keep a packed copy of the nodes' int8 copies ([`super::packed`]), which insertions then
    /// read instead of `nodes`: every node below [`MemGraph::covered`] is copied now, and
    /// [`MemGraph::prepare`] appends the new ones. Nothing to do when one is kept already.
    pub(crate) fn pack(&mut self, nodes: &dyn Nodes, dim: usize) -> Result<()> {
        if self.packed.is_some() {
            return Ok(());
        }
        let mut p = Packed::new(dim);
        p.reserve(self.covered as usize);
        for n in 0..self.covered as u32 {
            p.push(nodes.codes(n)?);
        }
        self.packed = Some(p);
        Ok(())
    }

    /// Drop the packed copy (its memory goes back).
    pub(crate) fn unpack(&mut self) {
        self.packed = None;
    }

    /// Whether insertions read a packed copy.
    #[cfg(test)]
    pub(crate) fn packed(&self) -> bool {
        self.packed.is_some()
    }

    fn stride(&self, level: usize) -> usize {
        if level == 0 {
            1 + usize::from(self.m0)
        } else {
            3 + usize::from(self.m)
        }
    }

    fn max_of(&self, level: usize) -> usize {
        usize::from(if level == 0 { self.m0 } else { self.m })
    }

    /// Records at `level`.
    pub(crate) fn records(&self, level: usize) -> usize {
        if level == 0 {
            self.l0.len() / self.stride(0)
        } else {
            self.upper.get(level - 1).map_or(0, |u| u.len() / self.stride(level))
        }
    }

    /// Levels (the top one plus one); 0 for an empty graph.
    pub(crate) fn levels(&self) -> usize {
        self.entry.lock().map_or(0, |(top, _)| top + 1)
    }

    fn words(&self, level: usize) -> &[AtomicU32] {
        if level == 0 {
            &self.l0
        } else {
            &self.upper[level - 1]
        }
    }

    /// A record's words, as u32s (a copy).
    pub(crate) fn record_words(&self, level: usize, rec: u32, out: &mut Vec<u32>) {
        let s = self.stride(level);
        out.clear();
        if let Some(w) = self.words(level).get(rec as usize * s..(rec as usize + 1) * s) {
            out.extend(w.iter().map(|a| a.load(Relaxed)));
        }
    }

    fn set_list(&self, level: usize, rec: u32, list: &[u32]) {
        let s = self.stride(level);
        let head = if level == 0 { 1 } else { 3 };
        let w = &self.words(level)[rec as usize * s..(rec as usize + 1) * s];
        let n = list.len().min(s - head);
        for (a, &v) in w[head..head + n].iter().zip(list) {
            a.store(v, Relaxed);
        }
        w[head - 1].store(n as u32, Relaxed);
    }

    /// Grow to hold nodes below `bound` and give each new node that holds a vector its level
    /// and its records above level 0. Returns the nodes to insert, in order.
    pub(crate) fn prepare(&mut self, nodes: &dyn Nodes, bound: u64) -> Result<Vec<Prepared>> {
        let from = self.covered;
        if bound <= from {
            return Ok(Vec::new());
        }
        let bound_u32 = u32::try_from(bound).map_err(|_| Error::invalid("a graph holds at most 2³² nodes"))?;
        let s0 = self.stride(0);
        self.l0.resize_with(bound as usize * s0, || AtomicU32::new(0));
        self.locks.resize_with(bound as usize, || Mutex::new(()));
        let mut out = Vec::new();
        // The packed copy holds exactly the nodes below `from` (else it is dropped, not trusted).
        if self.packed.as_ref().is_some_and(|p| p.len() as u64 != from) {
            self.packed = None;
        }
        if let Some(p) = &mut self.packed {
            p.reserve(bound as usize);
        }
        for n in from as u32..bound_u32 {
            let r = nodes.node(n)?;
            if let Some(p) = &mut self.packed {
                p.push(r.map(|r| (r.codes, r.params)));
            }
            let Some(r) = r else { continue };
            self.mark_present(n);
            let level = level_of(r.slot, self.m);
            let mut recs = Vec::with_capacity(level);
            for l in 1..=level {
                if self.upper.len() < l {
                    self.upper.push(Vec::new());
                }
                let s = self.stride(l);
                let rec = (self.upper[l - 1].len() / s) as u32;
                let down = if l == 1 { n } else { recs[l - 2] };
                self.upper[l - 1].extend((0..s).map(|_| AtomicU32::new(0)));
                let w = &self.upper[l - 1][rec as usize * s..];
                w[0].store(n, Relaxed);
                w[1].store(down, Relaxed);
                recs.push(rec);
            }
            out.push(Prepared { node: n, recs });
        }
        Ok(out)
    }

    /// Insert prepared nodes with `threads` threads (then [`MemGraph::finish`] counts them).
    pub(crate) fn insert_all(&self, nodes: &dyn Nodes, prepared: &[Prepared], threads: usize) -> Result<()> {
        match &self.packed {
            Some(packed) => self.insert_all_from(&PackedNodes { packed, inner: nodes }, prepared, threads),
            None => self.insert_all_from(nodes, prepared, threads),
        }
    }

    /// [`MemGraph::insert_all`] with the int8 copies from `nodes` (compiled for each kind, so
    /// that a packed copy is read without a call per node).
    fn insert_all_from<N: Nodes + ?Sized>(&self, nodes: &N, prepared: &[Prepared], threads: usize) -> Result<()> {
        let mut rest = prepared;
        // The first node of an empty graph becomes its entry, with no neighbours.
        if self.entry.lock().is_none() {
            if let Some((first, tail)) = rest.split_first() {
                let top = first.recs.len();
                *self.entry.lock() = Some((top, if top == 0 { first.node } else { first.recs[top - 1] }));
                rest = tail;
            }
        }
        let threads = threads.max(1).min(rest.len().max(1));
        let g = self;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let run = || -> Result<()> {
            let mut probe = Probe { metric: g.metric, q: Default::default() };
            let mut scratch = Scratch::default();
            with_visited(|visited| loop {
                // Small chunks, handed out in order, so that threads insert neighbouring
                // numbers at about the same time and each sees the others' nodes.
                let i = next.fetch_add(CHUNK, Relaxed);
                if i >= rest.len() {
                    return Ok(());
                }
                for p in &rest[i..(i + CHUNK).min(rest.len())] {
                    g.insert(nodes, p, &mut probe, visited, &mut scratch)?;
                }
            })
        };
        if threads == 1 {
            run()?;
        } else {
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads).map(|_| s.spawn(run)).collect();
                hs.into_iter().try_for_each(|h| h.join().unwrap_or_else(|_| Err(Error::invalid("a graph build thread panicked"))))
            })?;
        }
        Ok(())
    }

    fn mark_present(&mut self, n: u32) {
        let w = n as usize / 64;
        if self.present.len() <= w {
            self.present.resize(w + 1, 0);
        }
        self.present[w] |= 1 << (n % 64);
    }

    /// Node numbers below `bound` that hold a vector.
    pub(crate) fn count_below(&self, bound: u64) -> u64 {
        let full = (bound / 64) as usize;
        let mut c: u64 = self.present.iter().take(full).map(|w| u64::from(w.count_ones())).sum();
        if let Some(w) = self.present.get(full) {
            let rest = bound % 64;
            if rest > 0 {
                c += u64::from((w & ((1u64 << rest) - 1)).count_ones());
            }
        }
        c
    }

    /// Count `inserted` nodes more, and every node below `bound` as covered.
    pub(crate) fn finish(&mut self, bound: u64, inserted: usize) {
        self.node_count += inserted as u64;
        self.covered = self.covered.max(bound);
    }

    /// Load a graph's records (per level: node, down, neighbours), as read from a file.
    pub(crate) fn load(&mut self, bound: u64, count: u64, entry: Option<(usize, u32)>, levels: Vec<Vec<(u32, u32, Vec<u32>)>>) {
        let s0 = self.stride(0);
        self.l0 = (0..bound as usize * s0).map(|_| AtomicU32::new(0)).collect();
        self.locks = (0..bound as usize).map(|_| Mutex::new(())).collect();
        self.upper.clear();
        for (level, recs) in levels.into_iter().enumerate() {
            if level > 0 {
                let s = self.stride(level);
                self.upper.push((0..recs.len() * s).map(|_| AtomicU32::new(0)).collect());
                for (r, (node, down, _)) in recs.iter().enumerate() {
                    self.upper[level - 1][r * s].store(*node, Relaxed);
                    self.upper[level - 1][r * s + 1].store(*down, Relaxed);
                }
            }
            for (r, (_, _, list)) in recs.iter().enumerate() {
                self.set_list(level, r as u32, list);
            }
        }
        // A number holds a vector when it has links, is linked, or is the entry.
        self.present = vec![0; (bound as usize).div_ceil(64)];
        let s = self.stride(0);
        let mut held: Vec<u32> = Vec::new();
        for (n, w) in self.l0.chunks(s).enumerate() {
            let cnt = (w[0].load(Relaxed) as usize).min(s - 1);
            if cnt > 0 {
                held.push(n as u32);
            }
            held.extend(w[1..1 + cnt].iter().map(|a| a.load(Relaxed)).filter(|&x| u64::from(x) < bound));
        }
        if let Some((top, e)) = entry {
            let mut node = e;
            for l in (1..=top).rev() {
                node = self.upper.get(l - 1).and_then(|u| u.get(node as usize * self.stride(l) + 1)).map_or(node, |a| a.load(Relaxed));
            }
            held.push(node);
        }
        for n in held {
            self.mark_present(n);
        }
        *self.entry.lock() = entry;
        self.packed = None;
        self.covered = bound;
        self.node_count = count;
    }

    fn insert<N: Nodes + ?Sized>(&self, nodes: &N, p: &Prepared, probe: &mut Probe, visited: &mut Visited, sc: &mut Scratch) -> Result<()> {
        let Some((mc, mp)) = nodes.codes(p.node)? else { return Ok(()) };
        probe.set_codes(mc, &mp);
        let Some((top, entry)) = *self.entry.lock() else { return Ok(()) };
        let bound = self.records(0);
        let own = |level: usize| if level == 0 { p.node } else { p.recs[level - 1] };
        let mine = p.recs.len();
        let ep_node = self.record(top, entry)?.0;
        let Some((ec, ep)) = nodes.codes(ep_node)? else { return Ok(()) };
        let mut cur = Cand { d: probe.distance_to(ec, &ep), id: entry };
        for level in (mine + 1..=top).rev() {
            visited.reset(bound);
            let mut s = self.scorer(nodes, probe, level);
            if let Some(&b) = search_level_pool(self, level, &[cur], 1, visited, &|_| {}, &mut s)?.first() {
                cur = b;
            }
            cur.id = self.record(level, cur.id)?.1;
        }
        let mut eps = vec![cur];
        for level in (0..=mine.min(top)).rev() {
            visited.reset(bound);
            let mut s = self.scorer(nodes, probe, level);
            let prefetch = |n: u32| {
                if level == 0 {
                    nodes.prefetch(n);
                }
            };
            let mut found = search_level_pool(self, level, &eps, self.ef_construction, visited, &prefetch, &mut s)?;
            found.retain(|c| c.id != own(level));
            // A new node takes `m` neighbours at every level (as hnswlib does); level-0 lists
            // hold up to `m0` so that back links rarely push out the only link to a node.
            let chosen = self.select(nodes, level, &found, usize::from(self.m), sc)?;
            {
                let _g = self.locks[p.node as usize].lock();
                let mut list: Vec<u32> = chosen.iter().map(|c| c.id).collect();
                // A concurrent insertion that found this record above may have linked to it
                // already: keep those links while there is room.
                self.neighbors(level, own(level), &mut sc.list)?;
                for &x in &sc.list {
                    if list.len() < self.max_of(level) && !list.contains(&x) {
                        list.push(x);
                    }
                }
                self.set_list(level, own(level), &list);
            }
            let mut linked = false;
            for c in &chosen {
                linked |= self.link_back(nodes, level, c.id, own(level), c.d, sc)?;
            }
            // Every neighbour's heuristic may have preferred its old links: then the closest one
            // gives up its farthest link for this node, which would otherwise be unreachable.
            if let (false, Some(c)) = (linked, chosen.first()) {
                self.force_link(level, c.id, own(level), sc)?;
            }
            eps = found;
            if level > 0 {
                for c in &mut eps {
                    c.id = self.record(level, c.id)?.1;
                }
            }
        }
        if mine > top {
            let mut e = self.entry.lock();
            if e.is_none_or(|(t, _)| mine > t) {
                *e = Some((mine, p.recs[mine - 1]));
            }
        }
        Ok(())
    }

    fn scorer<'a, N: Nodes + ?Sized>(&'a self, nodes: &'a N, probe: &'a Probe, level: usize) -> impl FnMut(u32) -> Result<Option<f32>> + 'a {
        move |rec| {
            let node = if level == 0 { rec } else { self.record(level, rec)?.0 };
            Ok(nodes.codes(node)?.map(|(c, p)| probe.distance_to(c, &p)))
        }
    }

    /// HNSW's neighbour heuristic: from `cands` (closest first, distances to the new node), keep
    /// a candidate when it is closer to the new node than to every one already kept, up to `max`.
    fn select<N: Nodes + ?Sized>(&self, nodes: &N, level: usize, cands: &[Cand], max: usize, sc: &mut Scratch) -> Result<Vec<Cand>> {
        if cands.len() <= max {
            return Ok(cands.to_vec());
        }
        let mut kept: Vec<Cand> = Vec::with_capacity(max);
        sc.kept_nodes.clear();
        for c in cands {
            if kept.len() >= max {
                break;
            }
            let node = if level == 0 { c.id } else { self.record(level, c.id)?.0 };
            let Some((codes, params)) = nodes.codes(node)? else { continue };
            sc.probe.metric = self.metric;
            sc.probe.set_codes(codes, &params);
            let mut good = true;
            for &k in &sc.kept_nodes {
                if let Some((kc, kp)) = nodes.codes(k)? {
                    if sc.probe.distance_to(kc, &kp) < c.d {
                        good = false;
                        break;
                    }
                }
            }
            if good {
                kept.push(*c);
                sc.kept_nodes.push(node);
            }
        }
        Ok(kept)
    }

    /// Put `new` in the list of `rec` at `level` in place of its last (farthest) link.
    fn force_link(&self, level: usize, rec: u32, new: u32, sc: &mut Scratch) -> Result<()> {
        let node = if level == 0 { rec } else { self.record(level, rec)?.0 };
        let _g = self.locks.get(node as usize).map(|l| l.lock());
        self.neighbors(level, rec, &mut sc.list)?;
        if !sc.list.contains(&new) {
            if sc.list.len() >= self.max_of(level) {
                sc.list.pop();
            }
            sc.list.push(new);
            self.set_list(level, rec, &sc.list);
        }
        Ok(())
    }

    /// Add `new` (at distance `d`) to the list of `rec` at `level`, keeping its best by the
    /// heuristic when the list is full. Returns whether `new` is in the list.
    fn link_back<N: Nodes + ?Sized>(&self, nodes: &N, level: usize, rec: u32, new: u32, d: f32, sc: &mut Scratch) -> Result<bool> {
        let node = if level == 0 { rec } else { self.record(level, rec)?.0 };
        let _g = self.locks.get(node as usize).map(|l| l.lock());
        self.neighbors(level, rec, &mut sc.list)?;
        if sc.list.contains(&new) {
            return Ok(true);
        }
        let max = self.max_of(level);
        if sc.list.len() < max {
            sc.list.push(new);
            self.set_list(level, rec, &sc.list);
            return Ok(true);
        }
        let Some((rc, rp)) = nodes.codes(node)? else { return Ok(false) };
        let mut probe = std::mem::take(&mut sc.back);
        probe.metric = self.metric;
        probe.set_codes(rc, &rp);
        let mut cands = Vec::with_capacity(sc.list.len() + 1);
        cands.push(Cand { d, id: new });
        for &n in &sc.list {
            let nn = if level == 0 { n } else { self.record(level, n)?.0 };
            nodes.prefetch(nn);
        }
        for &n in &sc.list {
            let nn = if level == 0 { n } else { self.record(level, n)?.0 };
            if let Some((c, p)) = nodes.codes(nn)? {
                cands.push(Cand { d: probe.distance_to(c, &p), id: n });
            }
        }
        cands.sort_unstable();
        let chosen = self.select(nodes, level, &cands, max, sc)?;
        self.set_list(level, rec, &chosen.iter().map(|c| c.id).collect::<Vec<_>>());
        sc.back = probe;
        Ok(chosen.iter().any(|c| c.id == new))
    }
}

/// Per-thread buffers of an insertion.
#[derive(Default)]
struct Scratch {
    list: Vec<u32>,
    kept_nodes: Vec<u32>,
    /// The candidate being judged by the heuristic.
    probe: Probe,
    /// The node whose full list takes a back link.
    back: Probe,
}

impl Default for Probe {
    fn default() -> Self {
        Probe { metric: Metric::Cosine, q: Default::default() }
    }
}

impl View for MemGraph {
    fn entry(&self) -> Option<(usize, u32)> {
        *self.entry.lock()
    }
    fn node_bound(&self) -> u64 {
        self.records(0) as u64
    }
    fn neighbors(&self, level: usize, rec: u32, out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        let s = self.stride(level);
        let head = if level == 0 { 1 } else { 3 };
        let w = self
            .words(level)
            .get(rec as usize * s..(rec as usize + 1) * s)
            .ok_or_else(|| Error::invalid(format!("graph record {rec} of level {level} does not exist")))?;
        let n = (w[head - 1].load(Relaxed) as usize).min(s - head);
        out.extend(w[head..head + n].iter().map(|a| a.load(Relaxed)));
        Ok(())
    }
    fn prefetch_list(&self, level: usize, rec: u32) {
        let s = self.stride(level);
        if let Some(w) = self.words(level).get(rec as usize * s..(rec as usize + 1) * s) {
            crate::kernels::prefetch(w);
        }
    }
    fn record(&self, level: usize, rec: u32) -> Result<(u32, u32)> {
        if level == 0 {
            return Ok((rec, rec));
        }
        let s = self.stride(level);
        let w = self
            .words(level)
            .get(rec as usize * s..rec as usize * s + 2)
            .ok_or_else(|| Error::invalid(format!("graph record {rec} of level {level} does not exist")))?;
        Ok((w[0].load(Relaxed), w[1].load(Relaxed)))
    }
}
