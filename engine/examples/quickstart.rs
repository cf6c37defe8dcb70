//! The main job, for now: open (or create) the embedded default store, make sure it holds
//! 20,000 vectors with text and metadata, and answer a few nearest-neighbour queries with and
//! without filters. Run it twice: the second run reuses the store.
//!
//! The store lives in `$MEMENTO_HOME`, else `$XDG_DATA_HOME/memento/default`, else
//! `~/.local/share/memento/default`.

use std::path::PathBuf;
use std::time::Instant;

use memento::{Durability, Engine, Filter, Metadata, Record, WriteBatch};

const DIM: usize = 384;
const N: usize = 20_000;

fn default_store() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMENTO_HOME") {
        return PathBuf::from(p);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("memento").join("default")
}

/// A deterministic unit-ish vector for item `i`: a mix of eight "topics" plus noise.
fn vector(i: usize) -> Vec<f32> {
    let mut s = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let topic = i % 8;
    (0..DIM)
        .map(|d| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let noise = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            noise + if d % 8 == topic { 2.0 } else { 0.0 }
        })
        .collect()
}

const TOPICS: [&str; 8] = ["astronomy", "baking", "chess", "databases", "economics", "football", "geology", "harmony"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = default_store();
    let t = Instant::now();
    let engine = Engine::builder(&path).dimension(DIM).durability(Durability::Sync).open()?;
    println!("opened {} in {:.1} ms ({} records)", path.display(), t.elapsed().as_secs_f64() * 1e3, engine.count());
    if engine.count() < N as u64 {
        let t = Instant::now();
        for start in (0..N).step_by(1000) {
            let mut b = WriteBatch::new();
            for i in start..start + 1000 {
                let mut m = Metadata::new();
                m.insert("topic".into(), TOPICS[i % 8].into());
                m.insert("n".into(), i.into());
                b.upsert(Record::new(format!("item-{i}"), vector(i)).with_text(format!("note {i} about {}", TOPICS[i % 8])).with_metadata(m));
            }
            engine.write(b)?;
        }
        let secs = t.elapsed().as_secs_f64();
        println!("stored {N} vectors of {DIM} dimensions in {:.2} s ({:.0} vectors/s, one fsync per 1,000)", secs, N as f64 / secs);
    }
    for (q, filter) in [
        (3usize, None),
        (3, Some(r#"{"n": {"$lt": 100}}"#)),
        (12_345, Some(r#"{"$and": [{"topic": {"$in": ["chess", "geology"]}}, {"$contains": "note 1"}]}"#)),
    ] {
        let f = filter.map(Filter::from_json_str).transpose()?;
        let t = Instant::now();
        let hits = engine.search(&vector(q), 3, f.as_ref())?;
        println!("\nnearest to item-{q}{}: ({:.2} ms)", filter.map(|f| format!(" where {f}")).unwrap_or_default(), t.elapsed().as_secs_f64() * 1e3);
        for h in hits {
            println!("  {:<12} distance {:.4}  {:?}", h.id, h.distance, h.text.unwrap_or_default());
        }
    }
    let s = engine.stats();
    println!("\n{} records, {} pages ({} MB) checkpointed, WAL {} KB", s.count, s.pages, s.vector_file_bytes >> 20, s.wal_bytes >> 10);
    engine.close()?;
    Ok(())
}
