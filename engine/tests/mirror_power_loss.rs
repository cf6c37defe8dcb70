//! The mirror's own files under power loss. The power-loss simulation (`power_loss.rs`) runs on
//! `SimStorage`, where the mirror is an in-memory SQLite database rebuilt at every open, so it
//! never sees the mirror's files. This test does, on real files: a writer runs a seeded
//! workload (adds, upserts, deletes, text and metadata updates, checkpoints, a compaction),
//! and after every commit the store directory is copied as it is on disk. A power loss can
//! leave the log (vector file and WAL) at one commit and the mirror (SQLite in WAL mode, which
//! syncs on its own schedule) at another, earlier or later, with its WAL's last frames torn.
//! So each image pairs the log of commit `i` with the mirror of commit `j` for every `j` near
//! `i` (before and after it, across checkpoints and the compaction), with the mirror's WAL
//! whole or cut at a random byte. Every image must open, pass `check_integrity` (which compares
//! the mirror row by row with the log), hold exactly the state after commit `i` (ids, vectors,
//! text, metadata, the metadata filters and the keyword searches the mirror answers), and memento-inspect must read
//! it first and report, never fail.
//!
//! `MEMENTO_SEED` changes the seed (printed on failure).

use std::collections::BTreeMap;
use std::path::Path;

use memento::inspect::Inspector;
use memento::storage::sim::Rng;
use memento::{Engine, Filter, Metadata, Metric, Record, WriteBatch};

const DIM: usize = 4;
const COMMITS: u64 = 48;
/// How far the mirror's commit may be from the log's, each way.
const SPREAD: u64 = 4;

type Model = BTreeMap<String, (Vec<f32>, Option<String>, Option<Metadata>)>;

mod common;

fn open(path: &Path) -> Engine {
    // Small pages and WAL limit: automatic checkpoints, and WAL generations, every few commits.
    Engine::builder(path).dimension(DIM).metric(Metric::L2).page_size(8192).wal_limit(4 << 10).auto_compact(None).open().expect("mirror power loss")
}

fn meta(n: u64, rng: &mut Rng) -> Metadata {
    let mut m = Metadata::new();
    m.insert("n".into(), n.into());
    m.insert("even".into(), n.is_multiple_of(2).into());
    m.insert("tag".into(), ["a", "b", "c"][rng.below(3) as usize].into());
    m
}

/// One commit: a batch of a few random operations on ids `k0..k29`, applied to `model` too.
fn commit(e: &Engine, n: u64, rng: &mut Rng, model: &mut Model) {
    let mut b = WriteBatch::new();
    let mut next = model.clone();
    for _ in 0..1 + rng.below(4) {
        let id = format!("k{}", rng.below(30));
        let vector: Vec<f32> = (0..DIM).map(|_| rng.below(1000) as f32 / 100.0).collect();
        match rng.below(5) {
            0 | 1 => {
                let (text, m) = (Some(format!("text {n} of {id}")), Some(meta(n, rng)));
                b.upsert(Record::new(id.clone(), vector.clone()).with_text(text.clone().unwrap_or_default()).with_metadata(m.clone().unwrap_or_default()));
                next.insert(id, (vector, text, m));
            }
            2 if next.contains_key(&id) => {
                b.delete(id.clone());
                next.remove(&id);
            }
            3 if next.contains_key(&id) => {
                let m = meta(n, rng);
                b.update_metadata(id.clone(), Some(m.clone()));
                if let Some(r) = next.get_mut(&id) {
                    r.2 = Some(m);
                }
            }
            4 if next.contains_key(&id) => {
                let t = format!("updated {n}");
                b.update_text(id.clone(), Some(t.clone()));
                if let Some(r) = next.get_mut(&id) {
                    r.1 = Some(t);
                }
            }
            _ => {
                b.upsert(Record::new(id.clone(), vector.clone()));
                next.insert(id, (vector, None, None));
            }
        }
    }
    e.write(b).expect("mirror power loss: commit");
    *model = next;
}

fn contents(e: &Engine) -> Model {
    e.iter()
        .map(|r| {
            let r = r.expect("mirror power loss: iter");
            (r.id, (r.vector, r.text, r.metadata))
        })
        .collect()
}

/// Copies the store's files (not SQLite's shared-memory index, which is rebuilt from the WAL).
fn copy_files(from: &Path, to: &Path, which: &dyn Fn(&str) -> bool) {
    std::fs::create_dir_all(to).expect("mirror power loss: mkdir");
    for f in std::fs::read_dir(from).expect("mirror power loss: read_dir") {
        let f = f.expect("mirror power loss: entry");
        let name = f.file_name().to_string_lossy().into_owned();
        if !name.ends_with("-shm") && which(&name) {
            std::fs::copy(f.path(), to.join(&name)).expect("mirror power loss: copy");
        }
    }
}

fn is_mirror(name: &str) -> bool {
    name.starts_with(memento::files::MIRROR)
}

#[test]
fn the_mirror_at_any_nearby_commit_with_a_torn_wal_recovers_to_the_log() {
    let seed = common::seed_from_env(0x0051_C0FF_EE00);
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().expect("mirror power loss: tempdir");
    let live = tmp.path().join("live");
    let snaps = tmp.path().join("snaps");
    let e = open(&live);
    let mut model = Model::new();
    let mut models = vec![model.clone()];
    copy_files(&live, &snaps.join("0"), &|_| true);
    let (mut checkpoints, mut compactions) = (0, 0);
    for n in 1..=COMMITS {
        commit(&e, n, &mut rng, &mut model);
        if n.is_multiple_of(9) {
            e.checkpoint().expect("mirror power loss: checkpoint");
            checkpoints += 1;
        }
        if n == COMMITS / 2 {
            e.compact().expect("mirror power loss: compact");
            compactions += 1;
        }
        models.push(model.clone());
        copy_files(&live, &snaps.join(n.to_string()), &|_| true);
    }
    e.close().expect("mirror power loss: close");

    let filter = Filter::from_json_str(r#"{"$and": [{"even": true}, {"tag": {"$in": ["a", "b"]}}]}"#).expect("filter");
    let (mut images, mut torn, mut behind, mut ahead, mut rebuilt) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for i in 0..=COMMITS {
        for j in i.saturating_sub(SPREAD)..=(i + SPREAD).min(COMMITS) {
            for tear in [false, true] {
                let img = tmp.path().join("img");
                let _ = std::fs::remove_dir_all(&img);
                copy_files(&snaps.join(i.to_string()), &img, &|n| !is_mirror(n));
                copy_files(&snaps.join(j.to_string()), &img, &is_mirror);
                let wal = img.join(format!("{}-wal", memento::files::MIRROR));
                let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                if tear {
                    if wal_len == 0 {
                        continue;
                    }
                    let cut = rng.below(wal_len);
                    std::fs::OpenOptions::new().write(true).open(&wal).and_then(|f| f.set_len(cut)).expect("mirror power loss: tear");
                    torn += 1;
                }
                let ctx = format!("log at commit {i}, mirror at commit {j}{} (MEMENTO_SEED={seed:#x})", if tear { ", its WAL torn" } else { "" });
                Inspector::open(&img).and_then(|insp| insp.verify()).unwrap_or_else(|e| panic!("{ctx}: memento-inspect verify failed: {e}"));
                let e = Engine::open(&img).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
                e.check_integrity().unwrap_or_else(|e| panic!("{ctx}: integrity: {e}"));
                let want = &models[i as usize];
                assert_eq!(&contents(&e), want, "{ctx}: the records");
                let mut got: Vec<String> = e.get_where(&filter, None).expect("get_where").into_iter().map(|r| r.id).collect();
                got.sort();
                let expect: Vec<String> = want
                    .iter()
                    .filter(|(_, r)| {
                        r.2.as_ref().is_some_and(|m| m.get("even") == Some(&true.into()) && ["a", "b"].iter().any(|t| m.get("tag") == Some(&(*t).into())))
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                assert_eq!(got, expect, "{ctx}: the filter's answer");
                // The full-text index, in the same mirror transactions: each text finds its record.
                for (id, (_, text, _)) in want.iter().filter(|(_, r)| r.1.is_some()).take(16) {
                    let text = text.as_deref().unwrap_or_default();
                    let hits = e.keyword_search(text, &memento::SearchOptions::new(want.len()).ids_only()).expect("keyword search");
                    assert!(memento::fts_query(text).is_none() || hits.iter().any(|h| &h.id == id), "{ctx}: a keyword search for {text:?} misses {id:?}");
                    assert!(hits.iter().all(|h| want.get(&h.id).is_some_and(|r| r.1.is_some())), "{ctx}: a keyword search found a record without text");
                }
                rebuilt += e.stats().recovery.iter().any(|r| r.contains("mirror")) as u64;
                e.close().expect("close");
                images += 1;
                behind += (j < i) as u64;
                ahead += (j > i) as u64;
            }
        }
    }
    println!(
        "mirror power loss: {COMMITS} commits, {checkpoints} checkpoints, {compactions} compaction; {images} images ({behind} with the mirror behind the log, {ahead} ahead of it, {torn} with its WAL torn), {rebuilt} rebuilt the mirror"
    );
    assert!(images > 400 && behind > 100 && ahead > 100 && torn > 100, "{images} images, {behind} behind, {ahead} ahead, {torn} torn");
}
