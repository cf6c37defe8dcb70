//! The graph file `memento.graph` (FORMAT.md §7): derived and optional, checked when present,
//! as the engine checks it (`graph::file::MappedGraph`) but every page and every record at once.
//!
//! A missing graph file is no finding. A graph of another generation of the vector file is
//! stale (`graph.stale`, a warning: the writer rebuilds it, as after every compaction). Anything
//! else wrong with it is `graph.damaged`: an error, since bytes that were fsynced changed, but
//! its message says what it is: a derived file, which no record depends on, not used by the
//! engine (searches scan) and rebuilt by the writer.

use memento_format::graph::{self, GraphHeader};
use memento_format::page::{PageType, HEADER_LEN};
use memento_format::superblock;

use super::files::RoFile;
use super::finding::{finding, Finding, FindingKind, Severity};
use super::log::Loaded;
use super::report::{GraphCheck, GraphStatus, LockState, PageRole};
use super::superblocks::hex;
use crate::error::{Error, Result};
use crate::graph::GRAPH_FILE;
use crate::storage::Storage;
use crate::vecfile::VEC_FILE;

/// What every damage finding ends with.
const REBUILT: &str = "the graph is derived from the vector file, so no record is lost: the engine does not use it (searches scan) and the writer rebuilds it";

/// What the vector file says a graph of it must be (FORMAT.md §7.2), as far as it could be read.
struct Bind {
    store_uuid: [u8; 16],
    file_salt: u32,
    sequence: u64,
    dimension: u32,
    metric: superblock::Metric,
    page_size: u32,
    quantized: bool,
    /// The quantized page capacity, if the dimension fits a page.
    qcap: Option<u32>,
    /// Nodes of the sealed quantized pages (pages × qcap), when the vector file's directory and
    /// pages were read without errors.
    sealed_nodes: Option<u64>,
}

impl Loaded {
    /// The vector file's side of the binding, from the current superblock and the pages read.
    fn graph_binding(&self) -> Option<Bind> {
        let sb = self.sb()?;
        let qcap = self.layouts.map(|(_, q)| q.capacity as u32);
        // When the vector file has errors of its own, its quantized pages are not counted: the
        // graph is not blamed for them.
        let vec_sound = !self.findings.iter().any(|f| f.severity == Severity::Error && f.file == VEC_FILE);
        let quant_pages = self.pages.iter().filter(|p| p.role == PageRole::Listed && p.page_type == Some(PageType::Quantized)).count() as u64;
        Some(Bind {
            store_uuid: sb.store_uuid,
            file_salt: sb.file_salt,
            sequence: sb.sequence,
            dimension: sb.dimension,
            metric: sb.metric,
            page_size: sb.page_size,
            quantized: sb.flags & superblock::FLAG_QUANTIZED != 0,
            qcap,
            sealed_nodes: qcap.filter(|_| vec_sound).map(|c| quant_pages * u64::from(c)),
        })
    }

    /// The quantized page capacity and the sealed nodes of the vector file, when known.
    pub(super) fn graph_capacity(&self) -> Option<(u32, u64)> {
        self.graph_binding().and_then(|b| Some((b.qcap?, b.sealed_nodes?)))
    }

    /// Check the graph file, if there is one: its header, its binding to the current vector
    /// file, every level page and every record (FORMAT.md §7.2). Adds the findings; returns
    /// what was read, `None` when there is no graph file.
    pub(super) fn check_graph(&mut self, storage: &dyn Storage, lock: &LockState) -> Result<Option<GraphCheck>> {
        let leftover = format!("{GRAPH_FILE}.new");
        // A live writer has one while it writes a new graph: only a store nobody has open can
        // have one left over.
        if !lock.is_live() && storage.exists(&leftover).map_err(|e| Error::io("looking for leftover files", e))? {
            self.findings.push(finding(
                FindingKind::StoreLeftover,
                GRAPH_FILE,
                None,
                format!("{leftover} was left by an interrupted write of the graph file; it was never used, and the writer's next graph file replaces it"),
            ));
        }
        let Some(gf) = RoFile::open(storage, GRAPH_FILE)? else { return Ok(None) };
        let bind = self.graph_binding();
        let mut out = GraphCheck { file_len: gf.len, header: None, status: GraphStatus::Damaged, pages_checked: 0, records_checked: 0 };
        let mut findings = Vec::new();
        let mut damaged = |at: Option<u64>, what: String| findings.push(finding(FindingKind::GraphDamaged, GRAPH_FILE, at, format!("{what}; {REBUILT}")));
        let Some(hb) = gf.read(0, graph::LEN as u64).map_err(|e| Error::io("reading the graph header", e))? else {
            damaged(Some(0), format!("the graph file is truncated: {} bytes, less than its {}-byte header", gf.len, graph::LEN));
            self.findings.extend(findings);
            return Ok(Some(out));
        };
        let h = match GraphHeader::decode(&hb) {
            Ok(h) => h,
            Err(d) => {
                damaged(Some(d.offset as u64), format!("the graph header does not decode: {}", d.reason));
                self.findings.extend(findings);
                return Ok(Some(out));
            }
        };
        let mut sound = true;
        let mut stale = None;
        match &bind {
            None => {}
            Some(b) if h.store_uuid != b.store_uuid => {
                damaged(
                    Some(graph::header::store_uuid.offset as u64),
                    format!("the graph file belongs to the store {}, not {}", hex(&h.store_uuid), hex(&b.store_uuid)),
                );
                sound = false;
            }
            Some(b) if !b.quantized => {
                stale = Some("the vector file holds no int8 copies yet (a version-1 file, upgraded by its next checkpoint)".to_string());
            }
            Some(b) if h.vec_salt != b.file_salt => {
                stale = Some(format!(
                    "the graph file indexes another generation of the vector file (its vec_salt is {:#010x}, the vector file's file_salt {:#010x}), as after a compaction",
                    h.vec_salt, b.file_salt
                ));
            }
            Some(b) => {
                let mut differs = Vec::new();
                if h.dimension != b.dimension {
                    differs.push(format!("dimension {} (the vector file's is {})", h.dimension, b.dimension));
                }
                if h.metric != b.metric {
                    differs.push(format!("metric {} (the vector file's is {})", h.metric.name(), b.metric.name()));
                }
                if h.page_size != b.page_size {
                    differs.push(format!("page size {} (the vector file's is {})", h.page_size, b.page_size));
                }
                if b.qcap.is_some_and(|q| q != h.qcap) {
                    differs.push(format!("node numbering by {} entries per quantized page (the vector file's pages hold {})", h.qcap, b.qcap.unwrap_or(0)));
                }
                if !differs.is_empty() {
                    damaged(Some(graph::header::dimension.offset as u64), format!("the graph file does not match the vector file: {}", differs.join(", ")));
                    sound = false;
                }
                // A live writer may have written this graph after the checkpoint that was read:
                // its nodes are then in pages this read did not see.
                let newer = lock.is_live() && h.vec_sequence > b.sequence;
                if let Some(n) = b.sealed_nodes.filter(|&n| !newer && h.node_bound > n) {
                    damaged(
                        Some(graph::header::node_bound.offset as u64),
                        format!("the graph file covers {} nodes but the vector file's sealed quantized pages hold {n}", h.node_bound),
                    );
                    sound = false;
                }
            }
        }
        let ps = u64::from(h.page_size);
        let need = h.page_count.saturating_mul(ps);
        if gf.len < need {
            damaged(Some(gf.len), format!("the graph file is truncated: {} bytes, its header needs {need} ({} pages of {ps} bytes)", gf.len, h.page_count));
            sound = false;
        }
        // Every level page and every record, with the bounds the engine checks them with.
        let cap = |n: u64| n.min(u64::from(u32::MAX)) as u32;
        let mut words: Vec<u32> = Vec::new();
        'levels: for (level, info) in h.levels.iter().enumerate() {
            let rl = h.record_len(level);
            let per = h.per_page(level);
            let (max, bound, down_bound) = if level == 0 {
                (h.m0, cap(h.node_bound), 0)
            } else {
                (h.m, info.records, if level == 1 { cap(h.node_bound) } else { h.levels[level - 1].records })
            };
            for p in 0..u64::from(info.pages) {
                let page_no = info.first_page + p;
                let at = page_no.saturating_mul(ps);
                let Some(bytes) = gf.read(at, ps).map_err(|e| Error::io("reading a graph page", e))? else { break 'levels };
                let first = p as usize * per;
                let expect = (info.records as usize).saturating_sub(first).min(per) as u32;
                if let Err(d) = graph::verify_level_page(&bytes, h.graph_salt, page_no, level, expect, rl) {
                    damaged(Some(at + d.offset as u64), format!("graph page {page_no} (level {level}): {}", d.reason));
                    sound = false;
                    continue;
                }
                out.pages_checked += 1;
                // One finding per page: its first bad record, and how many more it holds.
                let mut bad: Option<(u64, String)> = None;
                let mut more = 0usize;
                for i in 0..expect as usize {
                    let off = HEADER_LEN + i * rl;
                    words.clear();
                    words.extend(bytes[off..off + rl].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
                    if let Err(d) = graph::check_record(&words, level, max, bound, h.node_bound, down_bound) {
                        if bad.is_none() {
                            bad = Some((at + (off + d.offset) as u64, format!("record {} of level {level} (graph page {page_no}): {}", first + i, d.reason)));
                        } else {
                            more += 1;
                        }
                    }
                    out.records_checked += 1;
                }
                if let Some((off, what)) = bad {
                    let more = if more > 0 { format!(" (and {more} more records of this page)") } else { String::new() };
                    damaged(Some(off), format!("{what}{more}"));
                    sound = false;
                }
            }
        }
        self.findings.extend(findings);
        out.status = match (sound, stale, &bind) {
            (false, _, _) => GraphStatus::Damaged,
            (true, Some(why), _) => {
                self.findings.push(graph_stale(&why));
                GraphStatus::Stale(why)
            }
            (true, None, None) => GraphStatus::NotCompared,
            (true, None, Some(_)) => GraphStatus::Usable,
        };
        out.header = Some(h);
        Ok(Some(out))
    }
}

fn graph_stale(why: &str) -> Finding {
    finding(
        FindingKind::GraphStale,
        GRAPH_FILE,
        Some(graph::header::vec_salt.offset as u64),
        format!("{why}: the engine does not use it (searches scan), and the writer rebuilds it; nothing is lost"),
    )
}
