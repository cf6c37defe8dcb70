//! The graph alone, over int8 copies held in vectors: recall against brute force, the file
//! written and read back, damage found.

use std::sync::Arc;

use memento_format::superblock::Metric;

use super::file::{self, Binding, MappedGraph, Unusable};
use super::mem::MemGraph;
use super::walk::{self, Cand};
use super::{with_visited, GraphParams, NodeRef, Nodes, Probe, View, GRAPH_FILE};
use crate::error::Result;
use crate::kernels::{self, QuantParams};
use crate::storage::{MemStorage, Storage};

const DIM: usize = 32;
const QCAP: usize = 100;

/// Int8 copies of clustered unit vectors, numbered as quantized pages of `QCAP` would number
/// them, the last page partial.
struct VecNodes {
    codes: Vec<i8>,
    params: Vec<QuantParams>,
    vectors: Vec<f32>,
}

fn rng(seed: &mut u64) -> f32 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

impl VecNodes {
    fn new(n: usize, seed: u64) -> VecNodes {
        let mut s = seed;
        let centers: Vec<Vec<f32>> = (0..20).map(|_| (0..DIM).map(|_| rng(&mut s)).collect()).collect();
        let mut vectors = Vec::with_capacity(n * DIM);
        for i in 0..n {
            let c = &centers[i % centers.len()];
            let mut v: Vec<f32> = c.iter().map(|x| x + 0.35 * rng(&mut s)).collect();
            kernels::normalize(&mut v);
            vectors.extend_from_slice(&v);
        }
        let mut codes = vec![0i8; n * DIM];
        let params = vectors.chunks_exact(DIM).zip(codes.chunks_exact_mut(DIM)).map(|(v, c)| kernels::quantize_vector(v, c)).collect();
        VecNodes { codes, params, vectors }
    }
    fn len(&self) -> usize {
        self.params.len()
    }
}

impl Nodes for VecNodes {
    fn qcap(&self) -> usize {
        QCAP
    }
    fn node_bound(&self) -> u64 {
        self.len() as u64
    }
    fn node(&self, n: u32) -> Result<Option<NodeRef<'_>>> {
        let i = n as usize;
        Ok((i < self.len()).then(|| NodeRef { codes: &self.codes[i * DIM..(i + 1) * DIM], params: self.params[i], slot: i as u64 }))
    }
}

fn build(nodes: &VecNodes, threads: usize) -> MemGraph {
    let mut g = MemGraph::new(Metric::Cosine, &GraphParams { m: 8, ef_construction: 64, ..GraphParams::default() });
    // In two batches, as the builder inserts them.
    for bound in [nodes.len() as u64 / 3, nodes.len() as u64] {
        let p = g.prepare(nodes, bound).expect("prepare");
        g.insert_all(nodes, &p, threads).expect("insert");
        g.finish(bound, p.len());
    }
    g
}

fn exact(nodes: &VecNodes, q: &[f32], k: usize) -> Vec<u32> {
    let mut d: Vec<(f32, u32)> = nodes.vectors.chunks_exact(DIM).enumerate().map(|(i, v)| (1.0 - kernels::dot(q, v), i as u32)).collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    d.into_iter().take(k).map(|x| x.1).collect()
}

fn recall(view: &dyn View, nodes: &VecNodes, ef: usize) -> f64 {
    let queries = VecNodes::new(50, 99);
    let mut hit = 0;
    for q in queries.vectors.chunks_exact(DIM) {
        let probe = Probe::new(Metric::Cosine, q);
        let found = with_visited(|v| walk::search(view, nodes, &probe, ef, usize::MAX, v, walk::Admit::Below(u64::MAX))).expect("search");
        let want = exact(nodes, q, 10);
        hit += found.iter().take(10).filter(|c| want.contains(&c.id)).count();
    }
    hit as f64 / 500.0
}

#[test]
fn graph_search_finds_the_true_neighbours() {
    let nodes = VecNodes::new(3000, 7);
    let g = build(&nodes, 2);
    assert_eq!(g.covered, 3000);
    // The walk's own order (int8 distances, no float32 rescoring) on tight clusters.
    let r = recall(&g, &nodes, 64);
    assert!(r >= 0.75, "recall@10 {r} at ef 64");
    assert!(recall(&g, &nodes, 200) >= r, "a wider walk finds no fewer");
}

#[test]
fn a_walk_never_returns_what_admit_refuses() {
    let nodes = VecNodes::new(1500, 3);
    let g = build(&nodes, 1);
    let probe = Probe::new(Metric::Cosine, &nodes.vectors[..DIM]);
    let found = with_visited(|v| walk::search(&g, &nodes, &probe, 50, usize::MAX, v, walk::Admit::Slots(&|n, _| n % 2 == 1))).expect("search");
    assert_eq!(found.len(), 50, "the walk passes through refused nodes to find admitted ones");
    assert!(found.iter().all(|c| c.id % 2 == 1));
    // Admitting every node below a number.
    let found = with_visited(|v| walk::search(&g, &nodes, &probe, 50, usize::MAX, v, walk::Admit::Below(700))).expect("search");
    assert_eq!(found.len(), 50);
    assert!(found.iter().all(|c| c.id < 700));
}

fn binding(nodes: &VecNodes) -> Binding {
    Binding {
        store_uuid: [1; 16],
        vec_salt: 42,
        dimension: DIM as u32,
        metric: Metric::Cosine,
        page_size: 8192,
        qcap: QCAP as u32,
        vec_sequence: 3,
        sealed_nodes: nodes.len().div_ceil(QCAP) as u64 * QCAP as u64,
    }
}

#[test]
fn the_file_holds_the_same_graph() {
    let nodes = VecNodes::new(2500, 11);
    let g = build(&nodes, 2);
    let storage = MemStorage::new();
    let bind = binding(&nodes);
    file::write(&storage, &g, &bind, 77, None).expect("write");
    let m = MappedGraph::open(&storage, &bind).unwrap_or_else(|e| panic!("open: {e:?}"));
    assert_eq!(m.header.node_bound, 2500);
    assert_eq!(recall(m.as_ref(), &nodes, 64), recall(&g, &nodes, 64), "same lists, same answers");
    // Read back into memory, the graph goes on growing.
    let mut back = MemGraph::new(Metric::Cosine, &GraphParams { m: 8, ..GraphParams::default() });
    file::to_mem(&m, &mut back).expect("to_mem");
    assert_eq!(recall(&back, &nodes, 64), recall(&g, &nodes, 64));
}

#[test]
fn a_file_restricted_to_sealed_nodes_drops_the_others() {
    let nodes = VecNodes::new(1000, 5);
    let g = build(&nodes, 1);
    let storage = MemStorage::new();
    let mut bind = binding(&nodes);
    bind.sealed_nodes = 600;
    file::write(&storage, &g, &bind, 1, None).expect("write");
    let m = MappedGraph::open(&storage, &bind).unwrap_or_else(|e| panic!("open: {e:?}"));
    assert_eq!(m.header.node_bound, 600);
    let mut out = Vec::new();
    for n in 0..600 {
        m.neighbors(0, n, &mut out).expect("a level-0 record");
        assert!(out.iter().all(|&x| x < 600), "node {n} links {out:?}");
    }
    let probe = Probe::new(Metric::Cosine, &nodes.vectors[..DIM]);
    let found = with_visited(|v| walk::search(m.as_ref(), &nodes, &probe, 20, usize::MAX, v, walk::Admit::Below(u64::MAX))).expect("search");
    assert!(!found.is_empty() && found.iter().all(|c| c.id < 600));
}

#[test]
fn damage_and_staleness_are_told_apart() {
    let nodes = VecNodes::new(800, 9);
    let g = build(&nodes, 1);
    let storage = MemStorage::new();
    let bind = binding(&nodes);
    assert!(matches!(MappedGraph::open(&storage, &bind), Err(Unusable::Missing)));
    file::write(&storage, &g, &bind, 5, None).expect("write");
    let other = Binding { vec_salt: 43, ..bind.clone() };
    assert!(matches!(MappedGraph::open(&storage, &other), Err(Unusable::Stale(_))));
    let fewer = Binding { sealed_nodes: 100, ..bind.clone() };
    assert!(matches!(MappedGraph::open(&storage, &fewer), Err(Unusable::Damaged(_))));

    // A flipped bit in a level page: the header opens, the walk that reads the page fails with
    // Corrupted, and the graph says it is damaged.
    let f = storage.open(GRAPH_FILE, false).expect("open");
    let mut b = [0u8; 1];
    let at = 8192 + 64 + 4 * 3;
    f.read_exact_at(&mut b, at).expect("read");
    b[0] ^= 0x10;
    f.write_all_at(&b, at).expect("write");
    let m: Arc<MappedGraph> = MappedGraph::open(&storage, &bind).unwrap_or_else(|e| panic!("open: {e:?}"));
    let mut out = Vec::new();
    assert!(matches!(m.neighbors(0, 0, &mut out), Err(crate::Error::Corrupted { .. })));
    assert!(m.damage().is_some());

    // A damaged header.
    let mut h = [0u8; 1];
    f.read_exact_at(&mut h, 70).expect("read");
    h[0] ^= 1;
    f.write_all_at(&h, 70).expect("write");
    assert!(matches!(MappedGraph::open(&storage, &bind), Err(Unusable::Damaged(_))));
}

#[test]
fn nearly_every_node_is_reachable_from_the_entry() {
    let nodes = VecNodes::new(3000, 21);
    let g = build(&nodes, 1);
    let (top, entry) = g.entry().expect("entry");
    let mut node = entry;
    for l in (1..=top).rev() {
        node = g.record(l, node).expect("record").1;
    }
    let mut seen = vec![false; 3000];
    let mut stack = vec![node];
    seen[node as usize] = true;
    let mut out = Vec::new();
    while let Some(n) = stack.pop() {
        g.neighbors(0, n, &mut out).expect("neighbors");
        for &x in &out {
            if !seen[x as usize] {
                seen[x as usize] = true;
                stack.push(x);
            }
        }
    }
    // HNSW's heuristic can leave a node with no link to it (each neighbour preferred its old
    // links); the builder's forced link makes that rare, not impossible.
    let unreachable = seen.iter().filter(|s| !**s).count();
    assert!(unreachable <= 3, "{unreachable} nodes of 3000 cannot be reached at level 0");
}

/// The one-byte generations wrap every 255 walks: a mark left by an old walk is never taken
/// for one of the current walk, before, at and after the wrap.
#[test]
fn visited_marks_survive_the_generation_wrap() {
    let mut v = super::Visited::new();
    for walk in 0..1000u32 {
        v.reset(64);
        // Every walk marks every number: a generation reused without clearing shows at once.
        for n in 0..64 {
            assert!(v.insert(n), "walk {walk}: {n} taken for visited");
            assert!(!v.insert(n), "walk {walk}: {n} new twice");
        }
        assert!(!v.insert(64), "out of range is never new");
    }
}

/// Every record's words, level by level.
fn all_records(g: &MemGraph) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    let mut words = Vec::new();
    for level in 0..g.levels() {
        for rec in 0..g.records(level) as u32 {
            g.record_words(level, rec, &mut words);
            out.push(words.clone());
        }
    }
    out
}

/// The packed copy of the int8 copies ([`super::packed`]) changes where a build reads them,
/// not what it reads: one thread builds the same graph with it as without it, whether it is
/// taken from the start, part way (copying the nodes already in), or dropped part way.
#[test]
fn a_packed_build_makes_the_same_graph() {
    let nodes = VecNodes::new(2000, 13);
    let plain = build(&nodes, 1);
    for switch in [[Some(DIM), Some(DIM), Some(DIM)], [None, Some(DIM), Some(DIM)], [Some(DIM), None, Some(DIM)]] {
        let mut g = MemGraph::new(Metric::Cosine, &GraphParams { m: 8, ef_construction: 64, ..GraphParams::default() });
        for (bound, pack) in [nodes.len() as u64 / 3, nodes.len() as u64 / 2, nodes.len() as u64].into_iter().zip(switch) {
            match pack {
                Some(dim) => g.pack(&nodes, dim).expect("pack"),
                None => g.unpack(),
            }
            assert_eq!(g.packed(), pack.is_some());
            let p = g.prepare(&nodes, bound).expect("prepare");
            g.insert_all(&nodes, &p, 1).expect("insert");
            g.finish(bound, p.len());
        }
        assert!(all_records(&g) == all_records(&plain), "packing {switch:?} changed the graph");
    }
}

/// The pool walk of insertions and the two-heap walk of searches find the same nodes when
/// every node may be returned, at every ef.
#[test]
fn the_pool_walk_finds_what_the_heap_walk_finds() {
    let nodes = VecNodes::new(2500, 17);
    let g = build(&nodes, 2);
    let queries = VecNodes::new(40, 5);
    let mut differ = 0;
    for q in queries.vectors.chunks_exact(DIM) {
        let probe = Probe::new(Metric::Cosine, q);
        let score = |n: u32| nodes.codes(n).map(|c| c.map(|(c, p)| probe.distance_to(c, &p)));
        for ef in [1, 10, 64, 300] {
            let entry = Cand { d: score(5).expect("score").expect("a vector"), id: 5 };
            let heap = with_visited(|v| {
                v.reset(2500);
                walk::search_level(&g, 0, &[entry], ef, v, usize::MAX, &|_| {}, &mut |n| Ok(score(n)?.map(|d| (d, true))))
            })
            .expect("heap walk");
            let pool = with_visited(|v| {
                v.reset(2500);
                walk::search_level_pool(&g, 0, &[entry], ef, v, &|_| {}, &mut |n| score(n))
            })
            .expect("pool walk");
            assert_eq!(pool.len(), heap.len(), "ef {ef}");
            assert!(pool.windows(2).all(|w| w[0] <= w[1]), "closest first");
            differ += usize::from(pool != heap);
        }
    }
    assert_eq!(differ, 0, "of 160 walks, {differ} differ");
}
