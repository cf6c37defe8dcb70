//! Power-loss simulation at every sync point.
//!
//! Each workload runs once on a [`SimStorage`], which records after every mutating call what a
//! power loss at that moment would start from (the durable image of each file and of the
//! directory, and the changes made since). Crash points: right after every sync call, and one
//! random call between every two syncs. At each, several images a power loss could leave are
//! built (only what was synced; everything, as a kill -9 leaves it; random ones: a random
//! subset of the unsynced writes, the last possibly torn, a random prefix of the unsynced
//! directory operations), and each is first read by `memento-inspect verify` (which must report,
//! never fail), then opened with `Engine::builder_with_storage`. It must open,
//! pass `check_integrity`, and hold exactly the state after some commit `j` with
//! `required ≤ j ≤ acknowledged + 1`: every commit acknowledged before the crash is there
//! (under `Buffered`, every one made durable by a checkpoint or `sync()`; FORMAT.md §5), and no
//! commit is half there. The recovered store must then take a new commit and keep it through a
//! second power loss (recovery's own repairs are durable).
//!
//! `MEMENTO_SEED` changes the seed (printed on failure), `MEMENTO_POWER_IMAGES` the number of
//! random images per crash point (default 3; `make soak` runs many more).

use std::io;
use std::sync::Arc;
use std::time::Instant;

mod common;

use memento::storage::sim::{CrashImage, CrashState, OpKind, Rng};
use memento::storage::{LockError, Mapping, SimStorage, Storage, StorageFile, StoreLock};
use memento::{Durability, Engine, Error, Metadata, Metric};

const DEFAULT_SEED: u64 = 0x005E_ED0F_90E5;

fn base_seed() -> u64 {
    common::seed_from_env(DEFAULT_SEED)
}

fn images_per_point() -> u64 {
    std::env::var("MEMENTO_POWER_IMAGES").ok().and_then(|s| s.parse().ok()).unwrap_or(3)
}

// ---------------------------------------------------------------------------------------------
// The model

use common::model::{apply, contents, issue, record, Model, Op, Rec};

// ---------------------------------------------------------------------------------------------
// Workloads

#[derive(Debug, Clone, Copy)]
struct Workload {
    name: &'static str,
    durability: Durability,
    dim: usize,
    page_size: u32,
    wal_limit: u64,
    commits: usize,
    ids: u64,
    /// Out of 100: adds, upserts, deletes, metadata updates, text updates (the rest).
    mix: [u64; 4],
    max_batch: u64,
    /// Longest text, in bytes.
    text_len: u64,
    /// An explicit checkpoint (or, under `Buffered`, a `sync()`) every this many commits.
    every: usize,
}

const WORKLOADS: [Workload; 4] = [
    // Mostly adds and upserts in batches, explicit checkpoints.
    Workload {
        name: "ingest",
        durability: Durability::Sync,
        dim: 16,
        page_size: 8192,
        wal_limit: 24 << 10,
        commits: 76,
        ids: 120,
        mix: [55, 30, 10, 3],
        max_batch: 8,
        text_len: 60,
        every: 12,
    },
    // Deletes, updates of metadata and text, replacements; automatic checkpoints.
    Workload {
        name: "churn",
        durability: Durability::GroupCommit,
        dim: 8,
        page_size: 8192,
        wal_limit: 6 << 10,
        commits: 90,
        ids: 30,
        mix: [15, 20, 25, 20],
        max_batch: 5,
        text_len: 40,
        every: 0,
    },
    // A tiny WAL limit: a checkpoint and WAL rotation every few commits; Buffered with syncs.
    Workload {
        name: "rotation",
        durability: Durability::Buffered,
        dim: 8,
        page_size: 8192,
        wal_limit: 2 << 10,
        commits: 140,
        ids: 40,
        mix: [35, 25, 20, 10],
        max_batch: 4,
        text_len: 30,
        every: 9,
    },
    // Long texts (record pages spanning several page units) and metadata.
    Workload {
        name: "text",
        durability: Durability::Sync,
        dim: 4,
        page_size: 8192,
        wal_limit: 96 << 10,
        commits: 64,
        ids: 25,
        mix: [30, 30, 10, 15],
        max_batch: 3,
        text_len: 20_000,
        every: 15,
    },
];

fn gen_rec(rng: &mut Rng, w: &Workload, tag: u64) -> Rec {
    let vector = (0..w.dim).map(|_| (rng.below(64) as f32 - 32.0) / 8.0).collect();
    let text = rng.chance(4, 5).then(|| {
        let n = 1 + rng.below(w.text_len) as usize;
        let word = ["memento ", "vector ", "durable ", "crash ", "fsync ", "ö "][rng.below(6) as usize];
        let mut t = format!("[{tag}] ");
        while t.len() < n {
            t.push_str(word);
        }
        t
    });
    let metadata = rng.chance(2, 3).then(|| gen_meta(rng, tag));
    Rec { vector, text, metadata }
}

fn gen_meta(rng: &mut Rng, tag: u64) -> Metadata {
    let mut m = Metadata::new();
    m.insert("n".into(), (rng.below(100) as i64 - 50).into());
    m.insert("tag".into(), ["a", "b", "c"][rng.below(3) as usize].into());
    m.insert("gen".into(), tag.into());
    if rng.chance(1, 3) {
        m.insert("flag".into(), rng.chance(1, 2).into());
    }
    m
}

/// One batch for the model `m`: valid, or (rarely) deliberately refused by the engine.
fn gen_batch(rng: &mut Rng, w: &Workload, m: &Model, tag: u64) -> Vec<Op> {
    let n = 1 + rng.below(w.max_batch);
    let mut view = m.clone();
    let mut ops = Vec::new();
    for _ in 0..n {
        let id = format!("k{}", rng.below(w.ids));
        let roll = rng.below(100);
        let [a, u, d, md] = w.mix;
        let op = if roll < a {
            Op::Add(if view.contains_key(&id) { format!("{id}-{tag}-{}", ops.len()) } else { id }, gen_rec(rng, w, tag))
        } else if roll < a + u {
            Op::Upsert(id, gen_rec(rng, w, tag))
        } else if roll < a + u + d {
            Op::Delete(id)
        } else if !view.contains_key(&id) {
            Op::Upsert(id, gen_rec(rng, w, tag))
        } else if roll < a + u + d + md {
            Op::Meta(id, rng.chance(4, 5).then(|| gen_meta(rng, tag)))
        } else {
            Op::Text(id, rng.chance(4, 5).then(|| format!("text {tag}")))
        };
        apply(&mut view, &op).expect("generated ops are valid");
        ops.push(op);
    }
    // One batch in 15 ends with an operation the engine must refuse: nothing of it may appear.
    if rng.chance(1, 15) {
        if let Some(id) = view.keys().next().cloned() {
            ops.push(Op::Add(id, gen_rec(rng, w, tag)));
        } else {
            ops.push(Op::Meta("missing".into(), None));
        }
    }
    ops
}

fn builder(w: &Workload, storage: Arc<dyn Storage>, durability: Durability) -> memento::EngineBuilder {
    // The graph builder runs from a small store on, in the background: its writes of the graph
    // file (FORMAT.md §7.3) are among the calls a power loss cuts.
    let graph = memento::graph::GraphParams { m: 6, ef_construction: 24, ef_search: 24, min_vectors: 32 };
    Engine::builder_with_storage(storage)
        .dimension(w.dim)
        .metric(Metric::L2)
        .page_size(w.page_size)
        .wal_limit(w.wal_limit)
        .durability(durability)
        .graph(Some(graph))
}

/// What one clean run of a workload did, with the crash state after every mutating call.
struct Run {
    /// `models[j]`: the state after commit `j` (0: the new, empty store).
    models: Vec<Model>,
    /// `acked_at[j]`: mutating calls made when commit `j` had returned.
    acked_at: Vec<u64>,
    /// (calls made, last commit made durable): after each checkpoint or `sync()` returned.
    durable_at: Vec<(u64, usize)>,
    kinds: Vec<OpKind>,
    captures: Vec<CrashState>,
    checkpoints: u64,
    refused: usize,
}

fn run_workload(w: &Workload, seed: u64, storage: &dyn Fn(SimStorage) -> Arc<dyn Storage>) -> Run {
    let sim = SimStorage::new();
    sim.capture(true);
    let mut rng = Rng::new(seed);
    let engine = builder(w, storage(sim.clone()), w.durability).open().expect("create the store");
    let mut run = Run {
        models: vec![Model::new()],
        acked_at: vec![sim.op_count()],
        durable_at: vec![(sim.op_count(), 0)],
        kinds: Vec::new(),
        captures: Vec::new(),
        checkpoints: 0,
        refused: 0,
    };
    let mut ckpt_lsn = engine.stats().checkpoint_lsn;
    let mut tag = 0;
    while run.models.len() <= w.commits {
        tag += 1;
        let mut m = run.models.last().expect("a model").clone();
        let ops = gen_batch(&mut rng, w, &m, tag);
        let ok = ops.iter().try_for_each(|op| apply(&mut m, op)).is_ok();
        let single = rng.chance(1, 2);
        match (issue(&engine, &ops, single), ok) {
            (Ok(()), true) => {}
            (Err(Error::DuplicateId { .. } | Error::NotFound { .. }), false) => {
                run.refused += 1;
                continue;
            }
            (r, ok) => panic!("{}: batch {tag} (valid: {ok}) returned {r:?}", w.name),
        }
        run.models.push(m);
        let j = run.models.len() - 1;
        run.acked_at.push(sim.op_count());
        let now = engine.stats().checkpoint_lsn;
        if now != ckpt_lsn {
            // The commit ran an automatic checkpoint, which made everything before it durable.
            ckpt_lsn = now;
            run.checkpoints += 1;
            run.durable_at.push((sim.op_count(), j));
        }
        if w.every > 0 && j.is_multiple_of(w.every) {
            if w.durability == Durability::Buffered && !j.is_multiple_of(2 * w.every) {
                engine.sync().expect("sync");
            } else if (j / w.every).is_multiple_of(3) {
                // One explicit checkpoint in three is a compaction (FORMAT.md §4.5): crash
                // images inside its steps too.
                engine.compact().expect("compaction");
                ckpt_lsn = engine.stats().checkpoint_lsn;
                run.checkpoints += 1;
            } else {
                engine.checkpoint().expect("checkpoint");
                ckpt_lsn = engine.stats().checkpoint_lsn;
                run.checkpoints += 1;
            }
            run.durable_at.push((sim.op_count(), j));
        }
    }
    engine.close().expect("close");
    run.checkpoints += 1;
    run.durable_at.push((sim.op_count(), run.models.len() - 1));
    run.kinds = sim.op_kinds();
    run.captures = sim.take_captures();
    assert_eq!(run.captures.len(), run.kinds.len());
    run
}

// ---------------------------------------------------------------------------------------------
// Crash points and checks

/// Mutating call numbers to crash after: every sync, and one random call between each two.
fn crash_points(kinds: &[OpKind], rng: &mut Rng) -> Vec<(u64, bool)> {
    let syncs: Vec<u64> = kinds.iter().enumerate().filter(|(_, k)| k.is_sync()).map(|(i, _)| i as u64 + 1).collect();
    let mut out = Vec::new();
    let mut prev = 0;
    for &s in &syncs {
        if s > prev + 1 {
            out.push((prev + 1 + rng.below(s - prev - 1), false));
        }
        out.push((s, true));
        prev = s;
    }
    out
}

#[derive(Debug, Default)]
struct Tally {
    images: u64,
    torn: u64,
    lost_writes: u64,
    undone_dir_ops: u64,
    /// Images holding the in-flight commit, exactly the acknowledged state, or less (only
    /// allowed for what `Buffered` had not made durable).
    in_flight: u64,
    exact: u64,
    older: u64,
    second_crashes: u64,
    /// Images `memento-inspect verify` read (every one, before the engine opened it).
    inspected: u64,
    /// Images holding a graph file the reopened engine uses.
    graphs: u64,
}

/// Opens one image and checks it; returns the commit it holds.
#[allow(clippy::too_many_arguments)]
fn check_image(
    w: &Workload,
    img: &CrashImage,
    run: &Run,
    required: usize,
    acked: usize,
    upper: usize,
    second: bool,
    tally: &mut Tally,
) -> Result<usize, String> {
    // memento-inspect reads the image as the power loss left it (a copy: it must not see what
    // recovery repairs) and reports findings, never fails or panics.
    memento::inspect::Inspector::over(Arc::new(SimStorage::from_image(img))).verify().map_err(|e| format!("memento-inspect verify failed: {e}"))?;
    tally.inspected += 1;
    let sim = SimStorage::from_image(img);
    let engine = builder(w, Arc::new(sim.clone()), Durability::Sync).open().map_err(|e| format!("open failed: {e}"))?;
    engine.check_integrity().map_err(|e| format!("integrity: {e}"))?;
    // A graph file is written whole and renamed: a power loss leaves an old one, a new one or
    // none, never a damaged one.
    let graph = engine.graph_info().map_err(|e| format!("graph info: {e}"))?;
    if let Some(p) = graph.problem {
        return Err(format!("the graph file after a power loss: {p}"));
    }
    tally.graphs += u64::from(graph.file_nodes > 0);
    let got = contents(&engine)?;
    let Some(j) = (required..=upper).find(|&j| run.models[j] == got) else {
        let anywhere: Vec<usize> = (0..run.models.len()).filter(|&j| run.models[j] == got).collect();
        return Err(format!(
            "the store holds {} records, which is the state after none of commits {required}..={upper} (it matches commits {anywhere:?})",
            got.len()
        ));
    };
    common::model::check_keywords(&engine, &got)?;
    tally.images += 1;
    tally.torn += img.torn as u64;
    tally.lost_writes += img.lost as u64;
    tally.undone_dir_ops += img.dir_lost as u64;
    match j {
        j if j > acked => tally.in_flight += 1,
        j if j == acked => tally.exact += 1,
        _ => tally.older += 1,
    }
    if second {
        // The recovered store takes a commit, and keeps it (and all it recovered) through a
        // second power loss: whatever recovery repaired was made durable.
        let probe = Rec { vector: vec![0.5; w.dim], text: Some("after recovery".into()), metadata: None };
        engine.upsert(record("probe-after-recovery", &probe)).map_err(|e| format!("a commit after recovery: {e}"))?;
        let after = sim.crash_state().durable_image();
        engine.abandon();
        let again =
            builder(w, Arc::new(SimStorage::from_image(&after)), Durability::Sync).open().map_err(|e| format!("second power loss: open failed: {e}"))?;
        again.check_integrity().map_err(|e| format!("second power loss: integrity: {e}"))?;
        let mut want = run.models[j].clone();
        want.insert("probe-after-recovery".into(), probe);
        if contents(&again)? != want {
            return Err(format!("second power loss: the state is not commit {j} plus the commit made after recovery"));
        }
        again.abandon();
        tally.second_crashes += 1;
    } else {
        engine.abandon();
    }
    Ok(j)
}

/// Runs every crash point of `w`; `Err` describes the first violation.
fn check_workload(w: &Workload, seed: u64, images: u64, storage: &dyn Fn(SimStorage) -> Arc<dyn Storage>) -> Result<(Tally, Run, usize), String> {
    let run = run_workload(w, seed, storage);
    let mut rng = Rng::new(seed ^ 0x00C4_A511);
    let points = crash_points(&run.kinds, &mut rng);
    let mut tally = Tally::default();
    for &(op, after_sync) in &points {
        let cs = &run.captures[op as usize - 1];
        assert_eq!(cs.op, op);
        let acked = run.acked_at.iter().rposition(|&a| a <= op).unwrap_or(0);
        let durable = run.durable_at.iter().filter(|d| d.0 <= op).map(|d| d.1).max().unwrap_or(0);
        let required = if w.durability == Durability::Buffered { durable } else { acked };
        let upper = (acked + 1).min(run.models.len() - 1);
        let mut candidates: Vec<(String, CrashImage, usize)> =
            vec![("durable only".into(), cs.durable_image(), required), ("everything written (kill -9)".into(), cs.live_image(), acked)];
        for i in 0..images {
            let s = seed ^ (op << 20) ^ i;
            candidates.push((format!("random image seed {s:#x}"), cs.image(s), required));
        }
        for (i, (what, img, req)) in candidates.iter().enumerate() {
            check_image(w, img, &run, *req, acked, upper, i == 2, &mut tally).map_err(|e| {
                format!(
                    "workload {} (seed {seed:#x}): crash after mutating call {op} ({:?}{}), image: {what} (kept {} / lost {} unsynced writes, {} torn; kept {} / lost {} directory operations); {} commits acknowledged, {} required: {e}",
                    w.name,
                    run.kinds[op as usize - 1],
                    if after_sync { ", a sync point" } else { ", between syncs" },
                    img.kept,
                    img.lost,
                    img.torn,
                    img.dir_kept,
                    img.dir_lost,
                    acked,
                    req,
                )
            })?;
        }
    }
    let syncs = points.iter().filter(|p| p.1).count();
    Ok((tally, run, syncs))
}

fn run_and_report(w: &Workload) {
    let seed = base_seed() ^ w.name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let t = Instant::now();
    let images = images_per_point();
    let (tally, run, syncs) = check_workload(w, seed, images, &|s| Arc::new(s)).unwrap_or_else(|e| panic!("{e}\nrerun with MEMENTO_SEED={:#x}", base_seed()));
    eprintln!(
        "power-loss {}: {:?}, {} commits ({} refused batches), {} checkpoints, {} mutating calls, {syncs} sync points, {} crash points, {} images ({} random per point): {} hold the in-flight commit, {} exactly the acknowledged state, {} less (lost unsynced Buffered commits); {} torn writes, {} unsynced writes lost, {} directory operations undone; {} second power losses after recovery; {} verified by memento-inspect; {} with a graph file in use; {:.1} s",
        w.name,
        w.durability,
        run.models.len() - 1,
        run.refused,
        run.checkpoints,
        run.kinds.len(),
        crash_points(&run.kinds, &mut Rng::new(seed ^ 0x00C4_A511)).len(),
        tally.images,
        images,
        tally.in_flight,
        tally.exact,
        tally.older,
        tally.torn,
        tally.lost_writes,
        tally.undone_dir_ops,
        tally.second_crashes,
        tally.inspected,
        tally.graphs,
        t.elapsed().as_secs_f64()
    );
    // The simulation must bite: writes lost and torn, renames undone, and (the workloads have
    // checkpoints) more than a hundred sync points.
    assert!(syncs >= 100, "{}: only {syncs} sync points", w.name);
    assert!(run.checkpoints >= 4, "{}: only {} checkpoints", w.name, run.checkpoints);
    assert!(tally.torn > 0 && tally.lost_writes > 0 && tally.undone_dir_ops > 0, "{}: the crash images were too kind: {tally:?}", w.name);
    assert!(tally.graphs > 0, "{}: no crash image held a graph file: the builder never wrote one", w.name);
    if w.durability == Durability::Buffered {
        assert!(tally.older > 0, "{}: no image lost an acknowledged but unsynced Buffered commit", w.name);
    } else {
        assert_eq!(tally.older, 0);
    }
}

#[test]
fn power_loss_ingest_with_checkpoints() {
    run_and_report(&WORKLOADS[0]);
}

#[test]
fn power_loss_churn_of_deletes_and_updates() {
    run_and_report(&WORKLOADS[1]);
}

#[test]
fn power_loss_rotation_buffered() {
    run_and_report(&WORKLOADS[2]);
}

#[test]
fn power_loss_long_texts_and_metadata() {
    run_and_report(&WORKLOADS[3]);
}

// ---------------------------------------------------------------------------------------------
// The checker can fail: a storage whose file syncs do nothing loses acknowledged commits.

struct LyingStorage(SimStorage);
struct LyingFile(Arc<dyn StorageFile>);

impl StorageFile for LyingFile {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping> {
        self.0.map(offset, len)
    }
}

impl Storage for LyingStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(LyingFile(self.0.open(name, create)?)))
    }
    fn exists(&self, name: &str) -> io::Result<bool> {
        self.0.exists(name)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.0.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.0.rename(from, to)
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.0.sync_dir()
    }
    fn lock(&self) -> Result<Box<dyn StoreLock>, LockError> {
        self.0.lock()
    }
    fn dir_path(&self) -> Option<&std::path::Path> {
        None
    }
}

#[test]
fn the_checker_catches_a_storage_that_skips_fsync() {
    let mut w = WORKLOADS[0];
    w.commits = 25;
    let err = match check_workload(&w, base_seed(), 2, &|s| Arc::new(LyingStorage(s))) {
        Ok(_) => panic!("a storage whose fsyncs do nothing passed the power-loss check"),
        Err(e) => e,
    };
    eprintln!("as expected: {err}");
}
