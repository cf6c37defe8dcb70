//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/`: real superblocks,
//! pages and WAL files of a store built in memory through the engine, plus a few operation
//! lists, and the graph file of a store with a graph index. Run once when the format changes:
//! `cargo run -p memento-fuzz-checks --example make_seeds` (followed by target names, such as
//! `-- graph`, to write only those targets' seeds). The fuzzers grow the corpora from these;
//! `make fuzz-ci` merges what they find back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use memento::storage::MemStorage;
use memento::{files, Durability, Engine, Metadata, Metric, Record, WriteBatch};
use memento_format::superblock::{self, Superblock};
use memento_format::wal::WalHeader;

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("creating the corpus directory");
    dir
}

fn put(target: &str, name: &str, bytes: &[u8]) {
    if wanted(target) {
        std::fs::write(corpus(target).join(name), bytes).expect("writing a seed");
    }
}

/// The targets named on the command line, or all of them.
fn wanted(target: &str) -> bool {
    let named: Vec<String> = std::env::args().skip(1).collect();
    named.is_empty() || named.iter().any(|t| t == target)
}

/// A store with a graph index (FORMAT.md §7) built and written, in memory: its graph file.
fn graph_file() -> Vec<u8> {
    let mem = MemStorage::new();
    let params = memento::graph::GraphParams { m: 4, ef_construction: 16, ef_search: 16, min_vectors: 1 };
    let e = Engine::builder_with_storage(Arc::new(mem.clone()))
        .dimension(4)
        .metric(Metric::Cosine)
        .page_size(8192)
        .graph(Some(params))
        .open()
        .expect("creating a store in memory");
    let mut wb = WriteBatch::new();
    for i in 0..600u32 {
        let x = i as f32;
        wb.add(Record::new(format!("g{i}"), vec![(x * 0.37).sin(), (x * 0.11).cos(), 1.0 + (i % 7) as f32, (x * 0.05).sin()]));
    }
    e.write(wb).expect("add");
    e.build_index().expect("building the graph");
    e.close().expect("close");
    mem.read_file(memento::graph::GRAPH_FILE).expect("the graph file")
}

/// Graph seeds: the header (mode 0, and mode 4 which reseals it), each level page (mode 1 with
/// its salt, number, level, m, m0 and record count; mode 5 seals a page of those records), and
/// records (mode 2).
fn graph_seeds() {
    use memento_format::graph::GraphHeader;
    let g = graph_file();
    let h = GraphHeader::decode(&g).expect("the graph header");
    for mode in [0u8, 4] {
        let mut seed = vec![mode];
        seed.extend_from_slice(&g[..memento_format::graph::LEN]);
        put("graph", &format!("header-mode-{mode}"), &seed);
    }
    let ps = h.page_size as usize;
    for (level, info) in h.levels.iter().enumerate() {
        for p in 0..info.pages as usize {
            let page_no = info.first_page as usize + p;
            let page = &g[page_no * ps..(page_no + 1) * ps];
            let count = u32::from_le_bytes([page[20], page[21], page[22], page[23]]);
            for mode in [1u8, 4 | 1] {
                let mut seed = vec![mode];
                seed.extend_from_slice(&h.graph_salt.to_le_bytes());
                seed.push(page_no as u8);
                seed.push(level as u8);
                seed.extend_from_slice(&h.m.to_le_bytes());
                seed.extend_from_slice(&h.m0.to_le_bytes());
                seed.extend_from_slice(&(count as u16).to_le_bytes());
                if mode == 1 {
                    seed.extend_from_slice(page);
                } else {
                    seed.extend_from_slice(&page[memento_format::page::HEADER_LEN..]);
                }
                put("graph", &format!("page-{page_no}-mode-{mode}"), &seed);
            }
        }
    }
    // A record of level 0 and one of level 1, with the bounds the engine checks them with.
    for level in 0..h.levels.len().min(2) {
        let info = h.levels[level];
        let rl = h.record_len(level);
        let at = info.first_page as usize * ps + memento_format::page::HEADER_LEN;
        let (max, bound, down) = if level == 0 { (h.m0, h.node_bound as u32, 0) } else { (h.m, info.records, h.node_bound as u32) };
        let mut seed = vec![2u8, level as u8];
        seed.extend_from_slice(&max.to_le_bytes());
        seed.extend_from_slice(&bound.to_le_bytes());
        seed.extend_from_slice(&h.node_bound.to_le_bytes());
        seed.extend_from_slice(&down.to_le_bytes());
        seed.extend_from_slice(&g[at..at + rl]);
        put("graph", &format!("record-level-{level}"), &seed);
    }
}

/// A small store with every page type: vectors (and their int8 copies), records with text and
/// metadata, tombstones, a directory, and a WAL with puts, updates, deletes and commits.
fn store() -> MemStorage {
    let mem = MemStorage::new();
    let e = Engine::builder_with_storage(Arc::new(mem.clone()))
        .dimension(4)
        .metric(Metric::Cosine)
        .page_size(8192)
        .durability(Durability::Sync)
        .open()
        .expect("creating a store in memory");
    for i in 0..40u32 {
        let mut m = Metadata::new();
        m.insert("n".into(), i.into());
        let v = vec![1.0 + i as f32, 2.0, -(i as f32), 0.5];
        e.add(Record::new(format!("id{i}"), v).with_text(format!("text number {i}")).with_metadata(m)).expect("add");
    }
    for i in 0..10 {
        e.delete(&format!("id{i}")).expect("delete");
    }
    e.checkpoint().expect("checkpoint");
    let mut wb = WriteBatch::new();
    wb.upsert(Record::new("id20", vec![0.0, 1.0, 0.0, 0.0])).delete("id21").update_text("id22", Some("new text".into()));
    e.write(wb).expect("a batch");
    e.update_metadata("id23", None).expect("update");
    e.abandon();
    mem
}

fn main() {
    if wanted("graph") {
        graph_seeds();
    }
    if !["superblock", "page", "wal", "engine_ops"].iter().any(|t| wanted(t)) {
        println!("seeds written to {}", corpus("").display());
        return;
    }
    let mem = store();
    let vf = mem.read_file(files::VECTORS).expect("the vector file");
    let sb_a = &vf[..superblock::LEN];
    let sb_b = &vf[superblock::SLOT_B_OFFSET as usize..superblock::SLOT_B_OFFSET as usize + superblock::LEN];
    put("superblock", "slot-a", sb_a);
    put("superblock", "slot-b", sb_b);
    let sb = superblock::pick_current(Superblock::decode(sb_a), Superblock::decode(sb_b)).expect("a current superblock").0;

    // Page seeds: salt, page number, dimension, mode (1 = reseal), then the page.
    let ps = sb.page_size as usize;
    for p in 1..(vf.len() / ps) {
        let page = &vf[p * ps..(p + 1) * ps];
        let mut seed = Vec::new();
        seed.extend_from_slice(&sb.file_salt.to_le_bytes());
        seed.push(p as u8);
        seed.extend_from_slice(&(sb.dimension as u16 - 1).to_le_bytes());
        seed.push(0);
        seed.extend_from_slice(page);
        put("page", &format!("page-{p}"), &seed);
    }

    // WAL seeds: salt, dimension - 1, mode 0 (raw), then the WAL file.
    let w = mem.read_file(files::WAL).expect("the WAL");
    let h = WalHeader::decode(&w).expect("the WAL header");
    let mut seed = Vec::new();
    seed.extend_from_slice(&h.salt.to_le_bytes());
    seed.push(sb.dimension as u8 - 1);
    seed.push(0);
    seed.extend_from_slice(&w);
    put("wal", "wal-file", &seed);
    // Mode 1: records built from the bytes (each kind once).
    let mut built = vec![7, 0, 0, 0, 3, 1, 1, 0, 0, 0];
    for kind in 0u8..4 {
        built.extend_from_slice(&[kind, 5, 0, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c', 1, 2, b'h', b'i', 1, 1, b'{', 9, 0, 9, 0, 3]);
    }
    put("wal", "built-records", &built);

    // Operation lists: no fault, an early fault, a late fault (countdown, kind, forever, ops).
    for (name, head) in [("no-fault", [0u8, 0, 0, 0]), ("fault-early", [3, 0, 0, 1]), ("fault-late", [90, 0, 2, 0])] {
        let mut seed = head.to_vec();
        for i in 0u8..40 {
            seed.extend_from_slice(&[i.wrapping_mul(7), i % 5, i, i.wrapping_mul(3), 9, 1, 2, 3, i % 3, i]);
        }
        put("engine_ops", name, &seed);
    }
    println!("seeds written to {}", corpus("").display());
}
