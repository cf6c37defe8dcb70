//! The graph file (FORMAT.md §7.2): written whole from the in-memory graph and renamed into
//! place, read mapped and verified page by page as walks touch it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memento_format::graph::{self, GraphHeader, LevelInfo, MAX_LEVELS};
use memento_format::page::HEADER_LEN;
use memento_format::superblock::Metric;

use super::mem::MemGraph;
use super::{View, GRAPH_FILE};
use crate::error::{Error, Result};
use crate::storage::{Mapping, Storage, StorageFile};

/// What ties a graph to the vector file generation whose nodes it numbers (FORMAT.md §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    pub store_uuid: [u8; 16],
    pub vec_salt: u32,
    pub dimension: u32,
    pub metric: Metric,
    pub page_size: u32,
    pub qcap: u32,
    /// The superblock whose sealed pages hold the nodes.
    pub vec_sequence: u64,
    /// Nodes of those sealed quantized pages (pages × qcap).
    pub sealed_nodes: u64,
}

/// The records of a graph restricted to the nodes below a bound, renumbered, as the file holds
/// them: one `Vec<u32>` of whole records per level, the entry, and the node count.
struct Snapshot {
    levels: Vec<Vec<u32>>,
    entry: u32,
    node_bound: u64,
}

/// The part of `g` that a file may hold: nodes below `bound` (sealed and inserted), edges to
/// other nodes dropped, upper records renumbered.
fn snapshot(g: &MemGraph, bound: u64) -> Snapshot {
    let bound = bound.min(g.covered).min(g.records(0) as u64);
    let m0 = usize::from(g.m0);
    let m = usize::from(g.m);
    let mut words = Vec::new();
    let mut l0 = Vec::with_capacity(bound as usize * (1 + m0));
    for n in 0..bound as u32 {
        g.record_words(0, n, &mut words);
        let cnt = (words[0] as usize).min(m0);
        let kept: Vec<u32> = words[1..1 + cnt].iter().copied().filter(|&x| u64::from(x) < bound).collect();
        l0.push(kept.len() as u32);
        l0.extend_from_slice(&kept);
        l0.resize(l0.len() + m0 - kept.len(), 0);
    }
    let mut levels = vec![l0];
    // Old record number → new, per level (level 0 keeps node numbers).
    let mut below: Option<HashMap<u32, u32>> = None;
    let (top, entry) = g.entry().unwrap_or((0, 0));
    let mut new_entry = (0usize, 0u32);
    for level in 1..g.levels() {
        let n = g.records(level);
        let mut map = HashMap::new();
        for r in 0..n as u32 {
            g.record_words(level, r, &mut words);
            if u64::from(words[0]) < bound {
                map.insert(r, map.len() as u32);
            }
        }
        if map.is_empty() {
            break;
        }
        let mut recs = Vec::with_capacity(map.len() * (3 + m));
        let mut order: Vec<(u32, u32)> = map.iter().map(|(&o, &n)| (n, o)).collect();
        order.sort_unstable();
        for (_, old) in order {
            g.record_words(level, old, &mut words);
            let down = match &below {
                None => words[1],
                Some(b) => b.get(&words[1]).copied().unwrap_or(0),
            };
            let cnt = (words[2] as usize).min(m);
            let kept: Vec<u32> = words[3..3 + cnt].iter().filter_map(|x| map.get(x).copied()).collect();
            recs.extend_from_slice(&[words[0], down, kept.len() as u32]);
            recs.extend_from_slice(&kept);
            recs.resize(recs.len() + m - kept.len(), 0);
        }
        new_entry = (level, if level == top { map.get(&entry).copied().unwrap_or(0) } else { 0 });
        levels.push(recs);
        below = Some(map);
    }
    if levels.len() == 1 {
        // Level 0 alone: the entry is the entry node if kept, else the first node with a list.
        let e = if top == 0 && u64::from(entry) < bound { entry } else { (0..bound as u32).find(|&n| levels[0][n as usize * (1 + m0)] > 0).unwrap_or(0) };
        new_entry = (0, e);
    }
    Snapshot { entry: new_entry.1, levels, node_bound: bound }
}

/// Write `g`'s nodes below `bind.sealed_nodes` as the graph file, atomically (`.new`, fsync,
/// rename, directory fsync). Returns the header written.
pub(crate) fn write(storage: &dyn Storage, g: &MemGraph, bind: &Binding, salt: u32, est: Option<super::builder::Estimate>) -> Result<GraphHeader> {
    let snap = snapshot(g, bind.sealed_nodes);
    let ps = bind.page_size as usize;
    let mut levels = Vec::new();
    let mut next = 1u64;
    for (l, recs) in snap.levels.iter().enumerate().take(MAX_LEVELS) {
        let rl = graph::record_len(l, g.m, g.m0);
        let records = recs.len() / (rl / 4);
        let per = graph::per_page(ps, rl);
        if per == 0 {
            return Err(Error::invalid(format!("a graph record of {rl} bytes does not fit a page of {ps}")));
        }
        let pages = records.div_ceil(per) as u32;
        levels.push(LevelInfo { first_page: next, records: records as u32, pages });
        next += u64::from(pages);
    }
    let h = GraphHeader {
        graph_salt: salt,
        store_uuid: bind.store_uuid,
        vec_salt: bind.vec_salt,
        dimension: bind.dimension,
        metric: bind.metric,
        page_size: bind.page_size,
        qcap: bind.qcap,
        m: g.m,
        m0: g.m0,
        ef_construction: g.ef_construction as u32,
        entry: snap.entry,
        node_bound: snap.node_bound,
        node_count: g.count_below(snap.node_bound),
        vec_sequence: bind.vec_sequence,
        page_count: next,
        levels,
        est_recall: est.map_or(0.0, |e| e.recall.clamp(0.0, 1.0)),
        est_sample: est.map_or(0, |e| e.sample),
        est_ef: est.map_or(0, |e| e.ef),
    };
    let tmp = format!("{GRAPH_FILE}.new");
    let io = |what: &str, e| Error::io(format!("{what} the new graph file"), e);
    let f = storage.open(&tmp, true).map_err(|e| io("creating", e))?;
    f.set_len(0).map_err(|e| io("truncating", e))?;
    let mut buf = vec![0u8; ps];
    buf[..graph::LEN].copy_from_slice(&h.encode());
    let mut out = PageWriter { file: f.as_ref(), buf: Vec::with_capacity(4 << 20), at: 0 };
    out.push(&buf)?;
    for (l, info) in h.levels.iter().enumerate() {
        let rl = h.record_len(l);
        let per = h.per_page(l);
        let bytes: Vec<u8> = snap.levels[l].iter().flat_map(|w| w.to_le_bytes()).collect();
        for p in 0..info.pages as usize {
            let recs = &bytes[p * per * rl..((p + 1) * per * rl).min(bytes.len())];
            buf.iter_mut().for_each(|b| *b = 0);
            graph::encode_level_page(&mut buf, info.first_page + p as u64, l, (recs.len() / rl) as u32, recs, h.vec_sequence, salt);
            out.push(&buf)?;
        }
    }
    out.flush()?;
    f.sync_all().map_err(|e| io("syncing", e))?;
    drop(f);
    storage.rename(&tmp, GRAPH_FILE).map_err(|e| io("renaming", e))?;
    storage.sync_dir().map_err(|e| io("syncing the directory of", e))?;
    Ok(h)
}

struct PageWriter<'a> {
    file: &'a dyn StorageFile,
    buf: Vec<u8>,
    at: u64,
}

impl PageWriter<'_> {
    fn push(&mut self, page: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(page);
        if self.buf.len() >= 4 << 20 {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        self.file.write_all_at(&self.buf, self.at).map_err(|e| Error::io("writing the graph file", e))?;
        self.at += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// Why a graph file is not used: missing, stale (another generation of the vector file), or
/// damaged. Only the last is a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unusable {
    Missing,
    Stale(String),
    Damaged(String),
}

/// A graph file, mapped read-only; each page verified the first time a walk reads it.
pub(crate) struct MappedGraph {
    pub(crate) header: GraphHeader,
    map: Mapping,
    verified: Vec<AtomicU64>,
    /// Set when a page or record failed its check: the graph is then not used.
    damaged: std::sync::OnceLock<String>,
}

impl MappedGraph {
    /// Open and check the header against the vector file; read nothing else.
    pub(crate) fn open(storage: &dyn Storage, bind: &Binding) -> std::result::Result<Arc<MappedGraph>, Unusable> {
        let f = match storage.open_read(GRAPH_FILE) {
            Ok(Some(f)) => f,
            Ok(None) => return Err(Unusable::Missing),
            Err(e) => return Err(Unusable::Damaged(format!("cannot open it: {e}"))),
        };
        let len = f.len().map_err(|e| Unusable::Damaged(format!("cannot read its length: {e}")))?;
        let mut hb = vec![0u8; graph::LEN];
        if len < graph::LEN as u64 {
            return Err(Unusable::Damaged(format!("it is truncated: {len} bytes")));
        }
        f.read_exact_at(&mut hb, 0).map_err(|e| Unusable::Damaged(format!("cannot read its header: {e}")))?;
        let h = GraphHeader::decode(&hb).map_err(|e| Unusable::Damaged(format!("its header is damaged: {e}")))?;
        if h.store_uuid != bind.store_uuid {
            return Err(Unusable::Damaged("it belongs to another store".into()));
        }
        if h.vec_salt != bind.vec_salt {
            return Err(Unusable::Stale("it indexes another generation of the vector file".into()));
        }
        if h.dimension != bind.dimension || h.metric != bind.metric || h.page_size != bind.page_size || h.qcap != bind.qcap {
            return Err(Unusable::Damaged("its dimension, metric, page size or node numbering differs from the vector file's".into()));
        }
        if h.node_bound > bind.sealed_nodes {
            return Err(Unusable::Damaged(format!("it covers {} nodes but the vector file's sealed pages hold {}", h.node_bound, bind.sealed_nodes)));
        }
        let ps = u64::from(h.page_size);
        let need = h.page_count.checked_mul(ps).ok_or_else(|| Unusable::Damaged("its page count overflows".into()))?;
        if len < need {
            return Err(Unusable::Damaged(format!("it is truncated: {len} bytes, its header needs {need}")));
        }
        let map = if h.page_count > 1 {
            f.map(ps, need - ps).map_err(|e| Unusable::Damaged(format!("cannot map it: {e}")))?
        } else {
            Arc::new(Vec::<u8>::new()) as Mapping
        };
        let verified = (0..(h.page_count as usize).div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        Ok(Arc::new(MappedGraph { header: h, map, verified, damaged: std::sync::OnceLock::new() }))
    }

    /// The recall its writer measured (FORMAT.md §7.6), if it measured one.
    pub(crate) fn estimate(&self) -> Option<super::builder::Estimate> {
        let h = &self.header;
        (h.est_sample > 0).then_some(super::builder::Estimate { recall: h.est_recall, sample: h.est_sample, ef: h.est_ef })
    }

    /// The damage found so far by walks, if any.
    pub(crate) fn damage(&self) -> Option<&str> {
        self.damaged.get().map(String::as_str)
    }

    fn damaged(&self, why: String) -> Error {
        let _ = self.damaged.set(why.clone());
        Error::corrupted(GRAPH_FILE, 0, why)
    }

    /// Where a record lies: its page's number and its offset in the file's mapping (unchecked;
    /// `None` for a level or record the header does not have).
    fn place(&self, level: usize, rec: u32) -> Option<(u64, usize)> {
        let h = &self.header;
        let info = h.levels.get(level).filter(|i| rec < i.records)?;
        let per = h.per_page(level);
        let page_no = info.first_page + u64::from(rec) / per as u64;
        let at = (page_no as usize).checked_sub(1)? * h.page_size as usize + HEADER_LEN + (rec as usize % per) * h.record_len(level);
        Some((page_no, at))
    }

    /// The words of record `rec` at `level`, its page verified.
    fn words(&self, level: usize, rec: u32) -> Result<&[u8]> {
        let h = &self.header;
        let (page_no, at) = self.place(level, rec).ok_or_else(|| self.damaged(format!("record {rec} of level {level} does not exist")))?;
        let ps = h.page_size as usize;
        let start = (page_no as usize - 1) * ps;
        let page = self.map.as_ref().as_ref().get(start..start + ps).ok_or_else(|| self.damaged(format!("page {page_no} lies outside the file")))?;
        let (w, bit) = (page_no as usize / 64, 1u64 << (page_no % 64));
        if self.verified.get(w).is_none_or(|a| a.load(Ordering::Relaxed) & bit == 0) {
            let info = &h.levels[level];
            let per = h.per_page(level);
            let first = (page_no - info.first_page) as usize * per;
            let expect = (info.records as usize - first).min(per) as u32;
            graph::verify_level_page(page, h.graph_salt, page_no, level, expect, h.record_len(level))
                .map_err(|e| self.damaged(format!("page {page_no}: {e}")))?;
            if let Some(a) = self.verified.get(w) {
                a.fetch_or(bit, Ordering::Relaxed);
            }
        }
        let rel = at - start;
        Ok(&page[rel..rel + h.record_len(level)])
    }

    fn checked(&self, level: usize, rec: u32, out: &mut Vec<u32>) -> Result<()> {
        let b = self.words(level, rec)?;
        out.clear();
        out.extend(b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        let h = &self.header;
        let (max, bound, down_bound) = if level == 0 {
            (h.m0, h.node_bound.min(u64::from(u32::MAX)) as u32, 0)
        } else {
            (h.m, h.levels[level].records, if level == 1 { h.node_bound.min(u64::from(u32::MAX)) as u32 } else { h.levels[level - 1].records })
        };
        graph::check_record(out, level, max, bound, h.node_bound, down_bound).map_err(|e| self.damaged(format!("record {rec} of level {level}: {}", e.reason)))
    }
}

impl View for MappedGraph {
    fn entry(&self) -> Option<(usize, u32)> {
        (self.header.node_count > 0).then(|| (self.header.max_level(), self.header.entry))
    }
    fn node_bound(&self) -> u64 {
        self.header.node_bound
    }
    fn neighbors(&self, level: usize, rec: u32, out: &mut Vec<u32>) -> Result<()> {
        self.checked(level, rec, out)?;
        let head = if level == 0 { 1 } else { 3 };
        let n = out[head - 1] as usize;
        out.truncate(head + n);
        out.drain(..head);
        Ok(())
    }
    fn prefetch_list(&self, level: usize, rec: u32) {
        if let Some(b) = self.place(level, rec).and_then(|(_, at)| self.map.as_ref().as_ref().get(at..at + self.header.record_len(level))) {
            crate::kernels::prefetch(b);
        }
    }
    fn record(&self, level: usize, rec: u32) -> Result<(u32, u32)> {
        if level == 0 {
            return Ok((rec, rec));
        }
        let b = self.words(level, rec)?;
        let word = |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        let (node, down) = (word(0), word(1));
        let h = &self.header;
        let down_bound = if level == 1 { h.node_bound } else { u64::from(h.levels[level - 1].records) };
        if u64::from(node) >= h.node_bound || u64::from(down) >= down_bound {
            return Err(self.damaged(format!("record {rec} of level {level} names a node or a lower record that does not exist")));
        }
        Ok((node, down))
    }
}

/// Copy a mapped graph into memory, for the writer to go on inserting into it.
pub(crate) fn to_mem(mg: &MappedGraph, g: &mut MemGraph) -> Result<()> {
    let h = &mg.header;
    let mut buf = Vec::new();
    let mut lists: Vec<Vec<(u32, u32, Vec<u32>)>> = Vec::new();
    for level in 0..h.levels.len() {
        let mut recs = Vec::with_capacity(h.levels[level].records as usize);
        for r in 0..h.levels[level].records {
            mg.checked(level, r, &mut buf)?;
            let head = if level == 0 { 1 } else { 3 };
            let (node, down) = if level == 0 { (r, r) } else { (buf[0], buf[1]) };
            recs.push((node, down, buf[head..head + buf[head - 1] as usize].to_vec()));
        }
        lists.push(recs);
    }
    g.load(h.node_bound, h.node_count, mg.entry(), lists);
    Ok(())
}
