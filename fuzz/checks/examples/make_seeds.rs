//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/`: real superblocks,
//! pages and WAL files of a store built in memory through the engine, plus a few operation
//! lists. Run once when the format changes: `cargo run -p memento-fuzz-checks --example make_seeds`.
//! The fuzzers grow the corpora from these; `make fuzz-ci` merges what they find back.

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
    std::fs::write(corpus(target).join(name), bytes).expect("writing a seed");
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
