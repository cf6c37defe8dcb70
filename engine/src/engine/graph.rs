//! The engine's side of the graph index (FORMAT.md §7): the binding of a graph file to the
//! vector file, the writer's background builder, and searches through the graph with the tail
//! (nodes the graph does not cover yet) scanned.

use std::borrow::Cow;
use std::sync::Arc;

use parking_lot::RwLock;

use super::state::{Source, State};
use super::Engine;
use crate::error::{Error, Result};
use crate::graph::builder::{Estimate, GraphIndex};
use crate::graph::file::{self, Binding, MappedGraph, Unusable};
use crate::graph::mem::MemGraph;
use crate::graph::{walk, with_visited, GraphParams, Nodes, Probe, View};
use crate::index::quantized::BoundQuery;
use crate::index::{FlatIndex, QuantBlock, SearchPlan, SlotHit, TopK, VectorIndex, VectorSource};
use crate::kernels;
use crate::slots::SlotBitmap;
use crate::storage::Storage;

/// Nodes inserted per batch of the builder: the batch holds the state's read lock, so a
/// commit waits for at most one batch (about 50 ms on two cores).
const BATCH: u64 = 384;
/// From this many nodes to insert on, the builder packs the nodes' int8 copies
/// ([`crate::graph::packed`]) until it has caught up.
const PACK_BACKLOG: u64 = 4096;

/// The binding of the current vector file (FORMAT.md §7.2).
pub(super) fn binding(st: &State) -> Binding {
    let sb = st.vf.superblock();
    Binding {
        store_uuid: sb.store_uuid,
        vec_salt: sb.file_salt,
        dimension: sb.dimension,
        metric: sb.metric,
        page_size: sb.page_size,
        qcap: st.vf.capacities().1 as u32,
        vec_sequence: sb.sequence,
        sealed_nodes: st.vf.sealed_nodes(),
    }
}

/// Open the graph file for the current vector file: `Ok(None)` when there is none or it is
/// stale, `Err(why)` when it is damaged (a finding; it will be rebuilt).
pub(super) fn open_graph(storage: &dyn Storage, st: &State) -> std::result::Result<Option<Arc<MappedGraph>>, String> {
    if !st.vf.is_quantized() {
        return Ok(None);
    }
    match MappedGraph::open(storage, &binding(st)) {
        Ok(g) => Ok(Some(g)),
        Err(Unusable::Missing) | Err(Unusable::Stale(_)) => Ok(None),
        Err(Unusable::Damaged(why)) => Err(format!("the graph file {}: {why}", crate::graph::GRAPH_FILE)),
    }
}

/// The writer's background builder: waits for commits, inserts the new nodes, writes the file.
pub(super) fn run_builder(gi: Arc<GraphIndex>, state: Arc<RwLock<State>>, storage: Arc<dyn Storage>, dim: usize, threads: usize) {
    while let Some(persist) = gi.wait_for_work() {
        if let Err(e) = builder_pass(&gi, &state, storage.as_ref(), dim, threads, persist) {
            *gi.problem.lock() = Some(format!("building the graph failed: {e}"));
        }
    }
}

/// Insert every node not yet in the graph, batch by batch, then write the file if due.
fn builder_pass(gi: &GraphIndex, state: &RwLock<State>, storage: &dyn Storage, dim: usize, threads: usize, persist: bool) -> Result<()> {
    let generation = gi.generation();
    loop {
        if gi.stopped() || gi.generation() != generation {
            return Ok(());
        }
        let st = state.read();
        if !st.vf.is_quantized() {
            return Ok(());
        }
        let src = Source { st: &st, dim };
        let bound = Nodes::node_bound(&src);
        let (prepared, end) = {
            let mut mem = gi.mem.write();
            if mem.as_ref().is_some_and(|g| g.generation != gi.generation()) {
                *mem = None;
            }
            if mem.is_none() {
                // A store below the threshold gets a graph only when build_index asks.
                if VectorSource::len(&src) < gi.params.min_vectors && !persist {
                    return Ok(());
                }
                *mem = Some(start_graph(gi, &st)?);
            }
            let Some(g) = mem.as_mut() else { return Ok(()) };
            if g.covered >= bound {
                // Caught up: the packed copy's memory goes back.
                g.unpack();
                break;
            }
            if bound - g.covered >= PACK_BACKLOG {
                g.pack(&src, dim)?;
            }
            let end = bound.min(g.covered + BATCH);
            (g.prepare(&src, end)?, end)
        };
        if let Some(g) = gi.mem.read().as_ref() {
            g.insert_all(&src, &prepared, gi.threads(threads))?;
        }
        drop(st);
        if let Some(g) = gi.mem.write().as_mut() {
            g.finish(end, prepared.len());
        }
    }
    persist_if_due(gi, state, storage, persist)
}

/// The builder's first graph: the file's, copied into memory, or a new one.
pub(super) fn start_graph(gi: &GraphIndex, st: &State) -> Result<MemGraph> {
    let metric = st.vf.superblock().metric;
    let salt = st.vf.superblock().file_salt;
    let fresh = |m: u16, m0: Option<u16>| {
        let mut g = MemGraph::new(metric, &GraphParams { m, ..gi.params });
        g.m0 = m0.unwrap_or(g.m0);
        g.generation = gi.generation();
        g
    };
    let mapped = gi.mapped.read().clone();
    if let Some(m) = mapped.filter(|m| m.damage().is_none() && m.header.vec_salt == salt) {
        let mut from_file = fresh(m.header.m, Some(m.header.m0));
        if file::to_mem(&m, &mut from_file).is_ok() {
            return Ok(from_file);
        }
    }
    Ok(fresh(gi.params.m, None))
}

/// Write the graph file when the sealed nodes the graph covers have grown by a tenth since the
/// file (or on request), then map the new file.
pub(super) fn persist_if_due(gi: &GraphIndex, state: &RwLock<State>, storage: &dyn Storage, forced: bool) -> Result<()> {
    let (bind, mem) = {
        let st = state.read();
        // A compaction marks the numbering renumbered under the state's write lock and drops
        // the old graph only after: read under the state, a graph of the current generation
        // agrees with the binding; an older one must not be written bound to the new file.
        (binding(&st), gi.mem.read())
    };
    let Some(g) = mem.as_ref().filter(|g| g.generation == gi.generation()) else { return Ok(()) };
    let file_bound = gi.mapped.read().as_ref().filter(|m| m.damage().is_none()).map_or(0, |m| m.header.node_bound);
    let can = g.covered.min(bind.sealed_nodes);
    if can <= file_bound || (!forced && file_bound > 0 && can < file_bound + file_bound / 10) {
        return Ok(());
    }
    let est = measure(gi, state, bind.dimension as usize, g)?;
    *gi.estimate.lock() = est;
    let salt = crate::wal::random_u64() as u32;
    file::write(storage, g, &bind, salt, est)?;
    drop(mem);
    match MappedGraph::open(storage, &bind) {
        Ok(m) => *gi.mapped.write() = Some(m),
        Err(e) => return Err(Error::invalid(format!("the graph file just written does not open: {e:?}"))),
    }
    Ok(())
}

/// The vectors of a source from one slot on: the graph's tail, scanned.
struct Tail<'a> {
    src: &'a Source<'a>,
    first_slot: u64,
    first_block: usize,
    first_qblock: usize,
    len: usize,
}

impl VectorSource for Tail<'_> {
    fn dim(&self) -> usize {
        self.src.dim()
    }
    fn len(&self) -> usize {
        self.len
    }
    fn blocks(&self) -> usize {
        self.src.blocks() - self.first_block
    }
    fn block(&self, i: usize) -> Result<crate::index::Block<'_>> {
        self.src.block(i + self.first_block)
    }
    fn quant_blocks(&self) -> usize {
        self.src.quant_blocks() - self.first_qblock
    }
    fn quant_block(&self, i: usize) -> Result<QuantBlock<'_>> {
        self.src.quant_block(i + self.first_qblock)
    }
    fn vector(&self, slot: u64) -> Result<Option<Cow<'_, [f32]>>> {
        if slot < self.first_slot {
            return Ok(None);
        }
        self.src.vector(slot)
    }
    fn is_dead(&self, slot: u64) -> bool {
        slot < self.first_slot || VectorSource::is_dead(self.src, slot)
    }
}

/// The first float32 block holding a slot at or above `slot` (blocks are in slot order).
fn first_block_from(src: &Source<'_>, slot: u64) -> Result<usize> {
    let (mut lo, mut hi) = (0, src.blocks());
    while lo < hi {
        let mid = (lo + hi) / 2;
        let (slots, _) = src.block(mid)?;
        if slots.last().is_some_and(|&s| s < slot) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Recall the automatic plan requires of a graph (FORMAT.md §7.6).
pub(super) const MIN_AUTO_RECALL: f32 = 0.9;
/// Queries of a recall measurement.
const SAMPLE: u64 = 64;

/// The answers through `view` (covering nodes below `covered`) merged with the exact answers
/// of the tail: `None` when the walk met a damaged page (the caller scans).
#[allow(clippy::too_many_arguments)]
fn answer(
    view: &dyn View,
    covered: u64,
    src: &Source<'_>,
    metric: memento_format::superblock::Metric,
    plan: &SearchPlan,
    queries: &[f32],
    candidates: Option<&[u64]>,
    ef: usize,
) -> Result<Option<Vec<Vec<SlotHit>>>> {
    use crate::index::ScanMode;
    let dim = src.dim;
    let k = plan.k;
    // A walk keeps at most the graph's nodes, whatever k and ef ask.
    let ef = ef.max(k).min(covered.max(1) as usize);
    let allowed = candidates.map(SlotBitmap::from_slots);
    let budget = if candidates.is_some() { (ef * 64).max(20_000) } else { usize::MAX };
    let by_slot = |node: u32, slot: u64| u64::from(node) < covered && !src.st.dead.contains(slot) && allowed.as_ref().is_none_or(|b| b.contains(slot));
    // With nothing deleted and no filter, every node the graph covers may be returned: the
    // walk reads no slots.
    let admit = if allowed.is_none() && src.st.dead.len() == 0 { walk::Admit::Below(covered) } else { walk::Admit::Slots(&by_slot) };
    let tail = tail_hits(src, plan, queries, candidates, covered)?;
    let mut out = Vec::with_capacity(queries.len() / dim);
    for (qi, q) in queries.chunks_exact(dim).enumerate() {
        let bq = BoundQuery::new(q);
        let probe = Probe { metric, q: bq.quant.clone() };
        let found = match with_visited(|v| walk::search(view, src, &probe, ef, budget, v, admit)) {
            Ok(f) => f,
            // A damaged graph page: the mapped graph records it and is not used again.
            Err(Error::Corrupted { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut top = TopK::new(k);
        rescore(src, metric, q, &bq, k, &found, &mut top)?;
        if let Some(t) = tail.as_ref().and_then(|t| t.get(qi)) {
            t.iter().for_each(|h| top.offer(h.slot, h.distance));
        }
        let hits = top.into_sorted();
        // A filter the walk could not satisfy: the exact answer from its records.
        if let Some(c) = candidates.filter(|c| hits.len() < k && c.len() > hits.len()) {
            let mut p = *plan;
            p.mode = ScanMode::Exact;
            out.push(FlatIndex.search(src, &p, q, Some(c))?.pop().unwrap_or_default());
            continue;
        }
        out.push(hits);
    }
    Ok(Some(out))
}

/// Score in float32 every candidate of a walk that may be among the `k` best: each one's int8
/// distance comes with a proven interval ([`BoundQuery::interval`]); those whose lower end lies
/// above the `k`-th smallest upper end cannot be, whatever the int8 copies' error. So the
/// answer is the exact top `k` of the candidates the walk found, with exact distances.
fn rescore(
    src: &Source<'_>,
    metric: memento_format::superblock::Metric,
    q: &[f32],
    bq: &BoundQuery,
    k: usize,
    found: &[walk::Cand],
    top: &mut TopK,
) -> Result<()> {
    let mut iv: Vec<(f64, f64, u64)> = Vec::with_capacity(found.len());
    for c in found {
        let Some(node) = src.node(c.id)? else { continue };
        let raw = kernels::kernels().dot_u8i8(&bq.quant.codes, node.codes);
        let (lo, hi) = bq.interval(metric, raw, &node.params);
        iv.push((lo, hi, node.slot));
    }
    let mut his: Vec<f64> = iv.iter().map(|x| x.1).collect();
    let bound = if his.len() >= k && k > 0 { *his.select_nth_unstable_by(k - 1, f64::total_cmp).1 } else { f64::INFINITY };
    // Find every vector to score first and ask the cache for all of them, then score: their
    // page lookups and loads overlap instead of each waiting on memory in turn.
    let mut vecs = Vec::with_capacity(iv.len());
    for &(lo, _, slot) in &iv {
        if lo <= bound {
            if let Some(v) = src.vector(slot)? {
                kernels::prefetch(&v);
                vecs.push((slot, v));
            }
        }
    }
    for (slot, v) in vecs {
        top.offer(slot, kernels::distance(metric, q, &v));
    }
    Ok(())
}

/// The exact answers among the nodes the graph does not cover (`None` when there are none).
fn tail_hits(src: &Source<'_>, plan: &SearchPlan, queries: &[f32], candidates: Option<&[u64]>, covered: u64) -> Result<Option<Vec<Vec<SlotHit>>>> {
    let bound = Nodes::node_bound(src);
    let mut first = None;
    for n in covered..bound {
        if let Some(r) = src.node(u32::try_from(n).map_err(|_| Error::invalid("node number overflows"))?)? {
            first = Some(r.slot);
            break;
        }
    }
    let Some(first_slot) = first else { return Ok(None) };
    let tail = Tail {
        src,
        first_slot,
        first_block: first_block_from(src, first_slot)?,
        first_qblock: (covered / src.qcap() as u64) as usize,
        len: (bound - covered) as usize,
    };
    let cands: Option<Vec<u64>> = candidates.map(|c| c.iter().copied().filter(|&s| s >= first_slot).collect());
    if cands.as_ref().is_some_and(Vec::is_empty) {
        return Ok(None);
    }
    let mut p = *plan;
    if p.mode == crate::index::ScanMode::Graph {
        p.mode = crate::index::ScanMode::Auto;
    }
    Ok(Some(FlatIndex.search(&tail, &p, queries, cands.as_deref())?))
}

/// What a recall measurement walks: a graph, the nodes it covers, and a check that it still
/// matches the state (no compaction renumbered the nodes since).
struct Measured<'a> {
    view: &'a dyn View,
    covered: u64,
    current: &'a dyn Fn(&State) -> bool,
}

/// recall@k of a graph (with the tail, as searches see it) against the exact answers, over
/// `sample` stored vectors spread evenly over its nodes (FORMAT.md §7.6). Takes the state's
/// read lock one query at a time. `None` when the graph went stale or met damage.
fn measure_view(
    m: &Measured<'_>,
    state: &RwLock<State>,
    dim: usize,
    metric: memento_format::superblock::Metric,
    k: usize,
    ef: usize,
    sample: u64,
) -> Result<Option<Estimate>> {
    use crate::index::ScanMode;
    let plan =
        |mode| SearchPlan { metric, k, mode, threads: 1, oversample: crate::index::DEFAULT_OVERSAMPLE, parallel_min_bytes: crate::index::PARALLEL_MIN_BYTES };
    let step = (m.covered / sample.max(1)).max(1);
    let (mut found, mut total, mut n_queries) = (0usize, 0usize, 0u32);
    for n in (0..m.covered).step_by(step as usize) {
        let st = state.read();
        if !(m.current)(&st) {
            return Ok(None);
        }
        let src = Source { st: &st, dim };
        let Some(node) = src.node(n as u32)? else { continue };
        if st.dead.contains(node.slot) {
            continue;
        }
        let Some(q) = src.vector(node.slot)?.map(|v| v.into_owned()) else { continue };
        let Some(got) = answer(m.view, m.covered, &src, metric, &plan(ScanMode::Graph), &q, None, ef)? else { return Ok(None) };
        let want = FlatIndex.search(&src, &plan(ScanMode::Quantized), &q, None)?;
        let want: std::collections::HashSet<u64> = want.iter().flatten().map(|h| h.slot).collect();
        found += got.iter().flatten().filter(|h| want.contains(&h.slot)).count();
        total += want.len();
        n_queries += 1;
    }
    Ok((total > 0).then(|| Estimate { recall: found as f32 / total as f32, sample: n_queries, ef: ef as u32 }))
}

/// The builder's measurement of its graph before it writes the file.
fn measure(gi: &GraphIndex, state: &RwLock<State>, dim: usize, g: &MemGraph) -> Result<Option<Estimate>> {
    let current = |_: &State| gi.generation() == g.generation;
    let m = Measured { view: g, covered: g.covered, current: &current };
    measure_view(&m, state, dim, g.metric, 10, gi.params.ef_search, SAMPLE)
}

/// What [`Engine::graph_info`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphInfo {
    /// Whether the engine has a graph index at all (`EngineBuilder::graph(None)` turns it off).
    pub enabled: bool,
    /// Vectors (deleted ones included) in the graph in use.
    pub nodes: u64,
    /// Vectors it does not cover yet (the tail, scanned).
    pub tail: u64,
    /// Vectors in the graph file (0 without a usable file).
    pub file_nodes: u64,
    /// The last measured recall@10 (FORMAT.md §7.6), if any.
    pub estimate: Option<Estimate>,
    /// Whether [`crate::ScanMode::Auto`] uses the graph on this store now.
    pub used_by_auto: bool,
    /// The parameters.
    pub params: crate::graph::GraphParams,
    /// A damaged graph file, or the builder's last failure.
    pub problem: Option<String>,
}

impl Engine {
    /// Search through the graph when the plan says so: `None` when the graph is not to be
    /// used (the caller scans).
    pub(super) fn search_graph(
        &self,
        src: &Source<'_>,
        plan: &SearchPlan,
        queries: &[f32],
        candidates: Option<&[u64]>,
        ef: Option<usize>,
    ) -> Result<Option<Vec<Vec<SlotHit>>>> {
        use crate::index::ScanMode;
        let n = VectorSource::len(src);
        match plan.mode {
            ScanMode::Exact | ScanMode::Quantized => return Ok(None),
            ScanMode::Auto if n < self.graph.params.min_vectors => return Ok(None),
            // A selective filter is answered exactly by scoring its records.
            ScanMode::Auto if candidates.is_some_and(|c| c.len() * crate::index::DIRECT_FRACTION <= n) => return Ok(None),
            // A graph that was not measured good enough: exact scans (FORMAT.md §7.6).
            ScanMode::Auto if self.graph.estimate.lock().is_none_or(|e| e.recall < MIN_AUTO_RECALL) => return Ok(None),
            _ => {}
        }
        if !src.st.vf.is_quantized() {
            return Ok(None);
        }
        let mem = self.graph.mem.read();
        let mapped = self.graph.mapped.read().clone();
        let Some((view, covered)) = self.graph_view(src.st, &mem, &mapped) else { return Ok(None) };
        answer(view, covered, src, self.metric, plan, queries, candidates, ef.unwrap_or(self.graph.params.ef_search))
    }

    /// The graph in use: the writer's in memory (of the current numbering), else the mapped
    /// file (of the current vector file), with the nodes it covers.
    fn graph_view<'a>(&self, st: &State, mem: &'a Option<MemGraph>, mapped: &'a Option<Arc<MappedGraph>>) -> Option<(&'a dyn View, u64)> {
        let generation = self.graph.generation();
        if let Some(g) = mem.as_ref().filter(|g| g.covered > 0 && g.generation == generation) {
            return Some((g, g.covered));
        }
        let salt = st.vf.superblock().file_salt;
        match mapped.as_deref() {
            Some(m) if m.damage().is_none() && m.header.node_count > 0 && m.header.vec_salt == salt => Some((m, m.header.node_bound)),
            _ => None,
        }
    }

    /// The graph index's state: what it covers, its measured recall, whether automatic
    /// searches use it, and any problem with it.
    pub fn graph_info(&self) -> Result<GraphInfo> {
        self.process.check()?;
        let _pin = self.pin()?;
        let st = self.state.read();
        let src = Source { st: &st, dim: self.dim };
        let mem = self.graph.mem.read();
        let mapped = self.graph.mapped.read().clone();
        let salt = st.vf.superblock().file_salt;
        let file = mapped.as_ref().filter(|m| m.damage().is_none() && m.header.vec_salt == salt);
        let generation = self.graph.generation();
        // Vectors, not node numbers (partial quantized pages leave numbers unused).
        let nodes = match mem.as_ref().filter(|g| g.covered > 0 && g.generation == generation) {
            Some(g) => g.node_count,
            None => file.map_or(0, |m| m.header.node_count),
        };
        let estimate = *self.graph.estimate.lock();
        let n = VectorSource::len(&src);
        Ok(GraphInfo {
            enabled: self.graph_enabled,
            nodes,
            tail: (n as u64).saturating_sub(nodes),
            file_nodes: file.map_or(0, |m| m.header.node_count),
            estimate,
            used_by_auto: nodes > 0 && n >= self.graph.params.min_vectors && estimate.is_some_and(|e| e.recall >= MIN_AUTO_RECALL),
            params: self.graph.params,
            problem: mapped.as_ref().and_then(|m| m.damage().map(str::to_owned)).or_else(|| self.graph.problem.lock().clone()),
        })
    }

    /// Measure the graph's recall@`k` now: `sample` stored vectors (spread evenly over the
    /// graph's nodes) are searched through the graph at `ef` (the engine's default if `None`)
    /// and exactly, and the fraction of the exact answers found is returned with the number
    /// of queries. `None` when the store has no usable graph. Works in a reader too.
    pub fn estimate_recall(&self, k: usize, sample: usize, ef: Option<usize>) -> Result<Option<Estimate>> {
        self.process.check()?;
        let _pin = self.pin()?;
        let mem = self.graph.mem.read();
        let mapped = self.graph.mapped.read().clone();
        let (view, covered) = {
            let st = self.state.read();
            match self.graph_view(&st, &mem, &mapped) {
                Some(v) => v,
                None => return Ok(None),
            }
        };
        let generation = self.graph.generation();
        let salt = self.state.read().vf.superblock().file_salt;
        let current = |st: &State| self.graph.generation() == generation && st.vf.superblock().file_salt == salt;
        let m = Measured { view, covered, current: &current };
        measure_view(&m, &self.state, self.dim, self.metric, k.max(1), ef.unwrap_or(self.graph.params.ef_search), sample as u64)
    }

    /// Bring the graph up to every committed vector, using every core, and write its file
    /// (after a checkpoint, so that it covers them all). Returns when done. A store below
    /// [`crate::graph::GraphParams::min_vectors`] gets a graph too.
    pub fn build_index(&self) -> Result<()> {
        self.process.check()?;
        if self.writer.is_none() {
            return Err(Error::ReadOnly { path: self.dir.clone() });
        }
        // The graph is off (EngineBuilder::graph(None)), or its thread could not start.
        if self.graph_thread.lock().is_none() {
            return Ok(());
        }
        self.checkpoint()?;
        // The builder starts the graph itself, below the threshold too, when asked to write
        // the file: this thread takes none of the graph's locks (see the lock order).
        self.graph.request_persist();
        self.graph.wait_idle();
        match self.graph.problem.lock().take() {
            Some(p) => Err(Error::invalid(p)),
            None => Ok(()),
        }
    }
}
