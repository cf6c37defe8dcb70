//! The graph index (FORMAT.md §7): an HNSW graph over the int8 copies of the vectors.
//!
//! - [`GraphParams`]: M, efConstruction, ef at search time, when the graph is used.
//! - [`Nodes`]: where a walk reads a node's int8 copy and slot (the store's quantized pages
//!   and pending blocks, numbered as §7.1 says).
//! - [`View`]: a graph to walk: the writer's in-memory one ([`mem::MemGraph`], which grows as
//!   nodes are inserted) or a mapped file ([`file::MappedGraph`]).
//! - [`walk`]: the search of one level (a beam of `ef` candidates) and of the whole graph,
//!   with the final candidates rescored in float32.
//! - [`mem`]: insertion (with every core) and the neighbour-selection heuristic.
//! - [`packed`]: the nodes' int8 copies packed node by node while a large build runs.
//! - [`file`]: writing the file, and reading it mapped, verified page by page.
//! - [`builder`]: the writer's background thread that keeps the graph up with the commits and
//!   writes the file.

use memento_format::superblock::Metric;

use crate::error::Result;
use crate::kernels::{self, QuantParams, QuantQuery};

pub(crate) mod builder;
pub use builder::Estimate;
pub(crate) mod file;
pub(crate) mod mem;
pub(crate) mod packed;
pub(crate) mod walk;

/// File name of the graph file.
pub const GRAPH_FILE: &str = "memento.graph";

/// How the graph is built and searched. Defaults chosen from measurements (BENCHMARKS.md,
/// "Approximate search").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphParams {
    /// Neighbours per node at levels 1 and up (HNSW's M). Level 0 keeps `2 × m`.
    pub m: u16,
    /// Candidates kept while choosing a new node's neighbours.
    pub ef_construction: usize,
    /// Candidates kept at search time (at least k).
    pub ef_search: usize,
    /// The graph is built, and used by [`crate::ScanMode::Auto`], from this many vectors on;
    /// below, the scans are as fast.
    pub min_vectors: usize,
}

impl Default for GraphParams {
    fn default() -> Self {
        GraphParams { m: 16, ef_construction: 200, ef_search: 64, min_vectors: DEFAULT_MIN_VECTORS }
    }
}

/// Default of [`GraphParams::min_vectors`].
pub const DEFAULT_MIN_VECTORS: usize = 20_000;

impl GraphParams {
    /// Check the parameters: `m` from 2 to 512 (level 0 keeps `2m`, at most the format's 1,024),
    /// `ef_construction` and `ef_search` from 1 to 2²⁰.
    pub fn check(&self) -> crate::error::Result<()> {
        const EF_MAX: usize = 1 << 20;
        if !(2..=512).contains(&self.m) {
            return Err(crate::error::Error::invalid(format!("graph m must be from 2 to 512, not {}", self.m)));
        }
        for (name, v) in [("ef_construction", self.ef_construction), ("ef_search", self.ef_search)] {
            if !(1..=EF_MAX).contains(&v) {
                return Err(crate::error::Error::invalid(format!("graph {name} must be from 1 to {EF_MAX}, not {v}")));
            }
        }
        Ok(())
    }

    /// Neighbours per node at level 0.
    pub fn m0(&self) -> u16 {
        self.m.saturating_mul(2)
    }
}

/// One node's int8 copy.
#[derive(Clone, Copy)]
pub(crate) struct NodeRef<'a> {
    pub codes: &'a [i8],
    pub params: QuantParams,
    pub slot: u64,
}

/// Where the nodes' int8 copies are. Node `n` is entry `n % qcap` of quantized block
/// `n / qcap` (FORMAT.md §7.1).
pub(crate) trait Nodes: Sync {
    /// Nodes per quantized block.
    fn qcap(&self) -> usize;
    /// One past the highest node number that may hold a vector.
    fn node_bound(&self) -> u64;
    /// The node's int8 copy and slot; `None` for a number that holds no vector.
    fn node(&self, n: u32) -> Result<Option<NodeRef<'_>>>;
    /// Ask the cache for what [`Nodes::node`] will read of `n` (a hint: may do nothing).
    fn prefetch(&self, _n: u32) {}
    /// The node's int8 copy without its slot, for the builder's distances (which need no
    /// slot): may skip reading what [`Nodes::node`] reads only to find the slot. A number that
    /// holds no vector may give `None` or codes of zeros (a sound graph never links one).
    fn codes(&self, n: u32) -> Result<Option<(&[i8], QuantParams)>> {
        Ok(self.node(n)?.map(|r| (r.codes, r.params)))
    }
}

/// A graph to walk. Record numbers at level 0 are node numbers.
pub(crate) trait View: Sync {
    /// The top level and the entry record there; `None` for an empty graph.
    fn entry(&self) -> Option<(usize, u32)>;
    /// Numbers a walk may meet are below this (the size of its visited set).
    fn node_bound(&self) -> u64;
    /// The neighbours of a record at `level`, into `out` (cleared first).
    fn neighbors(&self, level: usize, rec: u32, out: &mut Vec<u32>) -> Result<()>;
    /// Ask the cache for what [`View::neighbors`] will read of a record (a hint: may do nothing).
    fn prefetch_list(&self, _level: usize, _rec: u32) {}
    /// The node of a record at `level` and its record at the level below (both the record
    /// itself at level 0).
    fn record(&self, level: usize, rec: u32) -> Result<(u32, u32)>;
}

/// A query (or a stored vector taken as one) prepared for int8 distances.
pub(crate) struct Probe {
    pub metric: Metric,
    pub q: QuantQuery,
}

impl Probe {
    #[cfg(test)]
    pub(crate) fn new(metric: Metric, query: &[f32]) -> Probe {
        Probe { metric, q: kernels::quantize_query(query) }
    }

    /// Reuse this probe for a stored int8 copy.
    pub(crate) fn set_codes(&mut self, codes: &[i8], params: &QuantParams) {
        self.q.codes.clear();
        self.q.codes.extend(codes.iter().map(|&c| (c as u8) ^ 0x80));
        self.q.scale = params.scale;
        self.q.sq_norm = params.sq_norm;
    }

    /// Approximate distance of a node (smaller is closer).
    #[inline]
    pub(crate) fn distance(&self, n: &NodeRef<'_>) -> f32 {
        self.distance_to(n.codes, &n.params)
    }

    /// Approximate distance of an int8 copy (smaller is closer).
    #[inline]
    pub(crate) fn distance_to(&self, codes: &[i8], params: &QuantParams) -> f32 {
        let raw = kernels::kernels().dot_u8i8(&self.q.codes, codes);
        let d = kernels::approx_distance(self.metric, &self.q, raw, params);
        if d.is_nan() {
            f32::INFINITY
        } else {
            d
        }
    }
}

/// A node's level: `⌊−ln(u) / ln(m)⌋`, `u` in (0, 1] from a hash of its slot (so a rebuild
/// gives every node the level it had), capped below the format's 16 levels.
pub(crate) fn level_of(slot: u64, m: u16) -> usize {
    // SplitMix64: a well-mixed 64-bit hash.
    let mut z = slot.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let l = (-u.ln() / f64::from(m.max(2)).ln()).floor();
    (l as usize).min(memento_format::graph::MAX_LEVELS - 1)
}

/// A visited set over node (or record) numbers, reused across walks: a one-byte generation
/// number per entry, so clearing it is one increment (and a rewrite of every mark once in 255
/// walks). One byte keeps the marks of a million nodes in a megabyte, near the core: the mark
/// check was the walk's hottest load with four-byte marks.
pub(crate) struct Visited {
    marks: Vec<u8>,
    gen: u8,
}

impl Visited {
    pub(crate) fn new() -> Visited {
        Visited { marks: Vec::new(), gen: 0 }
    }
    /// Start a new walk over numbers below `bound`.
    pub(crate) fn reset(&mut self, bound: usize) {
        if self.marks.len() < bound {
            self.marks.resize(bound, 0);
        }
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.marks.fill(0);
            self.gen = 1;
        }
    }
    /// Mark `n`; false if it was already marked (or out of range).
    #[inline]
    pub(crate) fn insert(&mut self, n: u32) -> bool {
        let gen = self.gen;
        self.marks.get_mut(n as usize).is_some_and(|m| std::mem::replace(m, gen) != gen)
    }
}

thread_local! {
    static VISITED: std::cell::RefCell<Visited> = std::cell::RefCell::new(Visited::new());
}

/// Run `f` with this thread's visited set.
pub(crate) fn with_visited<T>(f: impl FnOnce(&mut Visited) -> T) -> T {
    VISITED.with(|v| match v.try_borrow_mut() {
        Ok(mut v) => f(&mut v),
        // Re-entered on this thread (a walk inside a walk): use a private set.
        Err(_) => f(&mut Visited::new()),
    })
}

#[cfg(test)]
mod tests;
