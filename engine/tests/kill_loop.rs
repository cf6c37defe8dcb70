//! The kill -9 loop: a writer process is killed with SIGKILL at random moments, again and
//! again, on the same store; after every kill `memento-inspect verify` must find no error (only
//! warnings for what the engine repairs at open), and the store must open, pass `check_integrity`, and
//! hold exactly the state after the last acknowledged step or the one in flight.
//!
//! The writer is this test binary itself, re-executed with `MEMENTO_KILL_CHILD` set to the
//! store's path (the `kill_child` test then writes until killed; in a normal run it does
//! nothing). It opens the store on disk (`Engine::builder`, real files, the real SQLite mirror),
//! reads what it holds, and runs a seeded workload from step `MEMENTO_KILL_NEXT` on: adds,
//! upserts, deletes, metadata and text updates, multi-op batches (some refused as a whole),
//! explicit checkpoints (one in three of them a compaction), and, with a 6 KiB WAL limit and 8 KiB pages, an automatic checkpoint
//! and WAL rotation every few dozen commits. Each step `n` is a pure function of the seed, `n`
//! and the state before it, so the harness rebuilds the same operations from its own model.
//!
//! The child reports on stdout, flushing each line: `B n` before step `n` (`B n ckpt` when it
//! computed from the WAL size that the commit will run an automatic checkpoint), `A n µs` once
//! the call returned (acknowledged; with how long the step took), `CS n` / `CE n` around an
//! explicit checkpoint. The harness kills it at a seeded random moment (after some
//! acknowledgements, or aimed inside a commit or a checkpoint: after its first line, plus a
//! random part of how long such steps have been taking), reads every line the child wrote, and so
//! knows where the kill landed. It then checks the store, and the next iteration's child
//! resumes from the state found, so damage could accumulate. Durability modes rotate between
//! iterations; under kill -9 every mode keeps every acknowledged commit (FORMAT.md §5).
//!
//! `MEMENTO_KILL_ITERATIONS` (default 300) and `MEMENTO_SEED` (printed on failure) change the
//! run; `make soak` runs 10,000 iterations.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::child::Killed;

use memento::storage::sim::Rng;
use memento::{Durability, Engine, Error, Metadata, Metric};

const CHILD_ENV: &str = "MEMENTO_KILL_CHILD";
const SEED_ENV: &str = "MEMENTO_KILL_SEED";
const NEXT_ENV: &str = "MEMENTO_KILL_NEXT";
const MODE_ENV: &str = "MEMENTO_KILL_DURABILITY";
const TAG: &str = "KILL-CHILD:";
const DEFAULT_SEED: u64 = 0x6B11_1000_0009;

const DIM: usize = 8;
const PAGE_SIZE: u32 = 8192;
const WAL_LIMIT: u64 = 6 << 10;
const IDS: u64 = 60;
/// Iterations on one store before a fresh one is made (the vector file only grows).
const PER_STORE: u64 = 30;

fn base_seed() -> u64 {
    common::seed_from_env(DEFAULT_SEED)
}

// ---------------------------------------------------------------------------------------------
// The model and the workload (shared by the child and the harness)

use common::model::{apply, issue, Model, Op, Rec};

#[derive(Debug, Clone)]
enum Step {
    Checkpoint,
    /// The ops, and whether a single op is sent as its own call rather than a batch.
    Commit(Vec<Op>, bool),
}

/// The state after `step` from `m` (a refused batch changes nothing).
fn after(m: &Model, step: &Step) -> Model {
    let mut next = m.clone();
    if let Step::Commit(ops, _) = step {
        if ops.iter().try_for_each(|op| apply(&mut next, op)).is_err() {
            return m.clone();
        }
    }
    next
}

fn gen_rec(rng: &mut Rng, n: u64) -> Rec {
    let vector = (0..DIM).map(|_| (rng.below(64) as f32 - 32.0) / 4.0).collect();
    let text = rng.chance(3, 4).then(|| format!("step {n}: {}", "kill nine ".repeat(1 + rng.below(12) as usize)));
    let metadata = rng.chance(2, 3).then(|| gen_meta(rng, n));
    Rec { vector, text, metadata }
}

fn gen_meta(rng: &mut Rng, n: u64) -> Metadata {
    let mut m = Metadata::new();
    m.insert("step".into(), n.into());
    m.insert("tag".into(), ["x", "y", "z"][rng.below(3) as usize].into());
    if rng.chance(1, 2) {
        m.insert("score".into(), (rng.below(1000) as i64 - 500).into());
    }
    m
}

/// Whether the explicit checkpoint of step `n` is a compaction (FORMAT.md §4.5): one in three,
/// so that kills aimed inside an explicit checkpoint land inside compactions too.
fn compacts(n: u64) -> bool {
    n.is_multiple_of(3)
}

/// Step `n` of the workload of `seed`, from the state `m` before it.
fn gen_step(seed: u64, n: u64, m: &Model) -> Step {
    let mut rng = Rng::new(seed ^ n.wrapping_mul(0x2545_F491_4F6C_DD1D));
    if rng.chance(1, 15) {
        return Step::Checkpoint;
    }
    let count = if rng.chance(1, 2) { 1 } else { 2 + rng.below(6) };
    let mut view = m.clone();
    let mut ops = Vec::new();
    for i in 0..count {
        let id = format!("id{}", rng.below(IDS));
        let op = match rng.below(100) {
            0..30 => Op::Add(if view.contains_key(&id) { format!("{id}.{n}.{i}") } else { id }, gen_rec(&mut rng, n)),
            30..55 => Op::Upsert(id, gen_rec(&mut rng, n)),
            55..75 => Op::Delete(id),
            _ if !view.contains_key(&id) => Op::Upsert(id, gen_rec(&mut rng, n)),
            75..88 => Op::Meta(id, rng.chance(5, 6).then(|| gen_meta(&mut rng, n))),
            _ => Op::Text(id, rng.chance(5, 6).then(|| format!("text of step {n}"))),
        };
        apply(&mut view, &op).expect("generated ops are valid");
        ops.push(op);
    }
    // Now and then a batch that the engine must refuse as a whole.
    if count > 1 && rng.chance(1, 10) {
        match view.keys().next() {
            Some(id) => ops.push(Op::Add(id.clone(), gen_rec(&mut rng, n))),
            None => ops.push(Op::Text("no-such-id".into(), None)),
        }
    }
    let single = ops.len() == 1 && rng.chance(2, 3);
    Step::Commit(ops, single)
}

fn contents(e: &Engine) -> Model {
    common::model::contents(e).unwrap_or_else(|err| panic!("reading the store: {err}"))
}

/// Bytes the commit of `ops` adds to the WAL (FORMAT.md §3.1, §3.2): each record is a 24-byte
/// header and its payload, padded to 8; the commit record is 48 bytes. 0 if nothing changes.
fn wal_bytes(m: &Model, ops: &[Op]) -> u64 {
    let rec = |payload: usize| (24 + payload).div_ceil(8) as u64 * 8;
    let meta_len = |meta: &Option<Metadata>| meta.as_ref().map_or(0, |x| serde_json::to_string(x).expect("json").len());
    let put = |id: &str, r: &Rec| rec(24 + id.len() + r.text.as_ref().map_or(0, String::len) + meta_len(&r.metadata) + 4 * DIM);
    let mut view = m.clone();
    let mut total = 0;
    for op in ops {
        total += match op {
            Op::Add(id, r) => put(id, r),
            Op::Upsert(id, r) => put(id, r) + if view.contains_key(id) { rec(16 + id.len()) } else { 0 },
            Op::Delete(id) => {
                if view.contains_key(id) {
                    rec(16 + id.len())
                } else {
                    0
                }
            }
            Op::Meta(_, meta) => rec(24 + meta_len(meta)),
            Op::Text(_, t) => rec(24 + t.as_ref().map_or(0, String::len)),
        };
        let _ = apply(&mut view, op);
    }
    if total == 0 {
        0
    } else {
        total + 48
    }
}

// ---------------------------------------------------------------------------------------------
// The child

fn durability_of(name: &str) -> Durability {
    match name {
        "sync" => Durability::Sync,
        "group" => Durability::GroupCommit,
        "buffered" => Durability::Buffered,
        other => panic!("unknown durability {other}"),
    }
}

/// Child mode only (does nothing unless `MEMENTO_KILL_CHILD` is set).
#[test]
fn kill_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let seed: u64 = var(SEED_ENV).parse().expect("seed");
    let mut n: u64 = var(NEXT_ENV).parse().expect("next step");
    let durability = durability_of(&var(MODE_ENV));
    // The graph builder runs too (from a small store on), so kills land inside its inserts
    // and its writes of the graph file (FORMAT.md §7.3).
    let graph = memento::graph::GraphParams { m: 6, ef_construction: 32, ef_search: 32, min_vectors: 64 };
    let engine = Engine::builder(&path).create(false).durability(durability).wal_limit(WAL_LIMIT).graph(Some(graph)).open().expect("child: open");
    let mut model = contents(&engine);
    let mut out = std::io::stdout().lock();
    let mut say = |s: String| {
        writeln!(out, "{TAG} {s}").expect("child: stdout");
        out.flush().expect("child: flush");
    };
    say("READY".into());
    loop {
        let step = gen_step(seed, n, &model);
        let t = Instant::now();
        match &step {
            Step::Checkpoint => {
                say(format!("CS {n}"));
                if compacts(n) {
                    engine.compact().expect("child: compaction");
                } else {
                    engine.checkpoint().expect("child: checkpoint");
                }
                say(format!("CE {n}"));
            }
            Step::Commit(ops, single) => {
                let bytes = wal_bytes(&model, ops);
                let mut view = model.clone();
                let refused = ops.iter().try_for_each(|op| apply(&mut view, op)).is_err();
                let stats = engine.stats();
                let ckpt = !refused && bytes > 0 && stats.wal_bytes + bytes > WAL_LIMIT;
                say(format!("B {n}{}", if ckpt { " ckpt" } else { "" }));
                let r = issue(&engine, ops, *single);
                match (&r, refused) {
                    (Ok(()), false) | (Err(Error::DuplicateId { .. } | Error::NotFound { .. }), true) => {}
                    _ => panic!("child: step {n} (refused: {refused}) returned {r:?}"),
                }
                let did = engine.stats().checkpoint_lsn != stats.checkpoint_lsn;
                if did != ckpt {
                    say(format!("MISPREDICT {n} predicted {ckpt} wal {} + {bytes}", stats.wal_bytes));
                }
            }
        }
        let micros = t.elapsed().as_micros();
        model = after(&model, &step);
        say(format!("A {n} {micros}"));
        n += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// The harness

/// When to kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// After this many acknowledgements, then a delay.
    AfterAcks(u64),
    /// As the n-th explicit checkpoint starts.
    AtExplicitCheckpoint(u64),
    /// As the n-th commit that will run an automatic checkpoint starts.
    AtAutoCheckpoint(u64),
    /// As the commit after this many acknowledgements starts.
    AtCommit(u64),
}

/// Where the last line the child wrote before dying says it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Landed {
    /// Inside a commit (after `B n`, before `A n`).
    Commit,
    /// Inside a commit that runs an automatic checkpoint.
    AutoCheckpoint,
    /// Inside an explicit checkpoint.
    ExplicitCheckpoint,
    /// Between steps (after `A n`, `CE n` or `READY`).
    Between,
    /// Before the child reported it had opened the store.
    Opening,
}

#[derive(Debug, Default)]
struct Figures {
    iterations: u64,
    steps: u64,
    /// (where, whether the in-flight step's effect is in the store) → kills.
    landed: BTreeMap<(Landed, &'static str), u64>,
    by_mode: BTreeMap<&'static str, u64>,
    plans: BTreeMap<&'static str, u64>,
    /// Disk evidence, read before reopening: pages of an unfinished checkpoint past the
    /// sealed prefix, a leftover `memento.wal.new`, a WAL one generation behind the superblock
    /// (regenerated at open), a torn WAL tail dropped.
    unfinished_checkpoint_pages: u64,
    wal_new_left: u64,
    /// Kills that left a compaction's `memento.vec.new` (killed while it was written).
    vec_new_left: u64,
    wal_regenerated: u64,
    torn_tail: u64,
    /// The mirror's `applied_lsn` behind the log's last commit: killed between the WAL write
    /// and the mirror update (recovery replays the rest into it).
    mirror_behind: u64,
    mirror_rebuilt: u64,
    auto_checkpoints_predicted: u64,
}

/// The mirror's `applied_lsn`, read without changing anything (a read-only connection does
/// not checkpoint SQLite's WAL when it closes).
fn mirror_applied_lsn(path: &Path) -> Option<u64> {
    let c = rusqlite::Connection::open_with_flags(path.join(memento::files::MIRROR), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    let lsn: i64 = c.query_row("SELECT applied_lsn FROM meta WHERE one = 0", [], |r| r.get(0)).ok()?;
    u64::try_from(lsn).ok()
}

fn wal_generation(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path.join(memento::files::WAL)).ok()?;
    Some(u64::from_le_bytes(bytes.get(16..24)?.try_into().ok()?))
}

fn spawn_child(path: &Path, seed: u64, next: u64, mode: &str) -> (Killed, mpsc::Receiver<String>) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut c = Command::new(exe);
    c.args(["--exact", "kill_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .env(SEED_ENV, seed.to_string())
        .env(NEXT_ENV, next.to_string())
        .env(MODE_ENV, mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = Killed(c.spawn().expect("spawn the writer"));
    let rx = child.tagged_lines(TAG);
    (child, rx)
}

/// How long steps take in the child, in µs (moving averages).
#[derive(Debug, Clone, Copy, Default)]
struct Estimates {
    commit: f64,
    auto: f64,
    explicit: f64,
}

/// What the child's lines said.
#[derive(Debug)]
struct Report {
    est: Estimates,
    last_ack: Option<u64>,
    landed: Landed,
    acks: u64,
    auto_ckpt_starts: u64,
}

impl Report {
    fn take(&mut self, line: &str, next: u64, ctx: &str) {
        let mut it = line.split(' ');
        let (word, num) = (it.next().unwrap_or(""), it.next().and_then(|s| s.parse::<u64>().ok()));
        match (word, num) {
            ("READY", None) => self.landed = Landed::Between,
            ("A", Some(n)) => {
                if let Some(us) = it.next().and_then(|s| s.parse::<f64>().ok()) {
                    // Moving averages of how long each kind of step takes, to aim the kills.
                    let e = match self.landed {
                        Landed::AutoCheckpoint => &mut self.est.auto,
                        Landed::ExplicitCheckpoint => &mut self.est.explicit,
                        _ => &mut self.est.commit,
                    };
                    *e = if *e == 0.0 { us } else { 0.8 * *e + 0.2 * us };
                }
                let want = self.last_ack.map_or(next, |a| a + 1);
                assert_eq!(n, want, "{ctx}: acknowledgements out of order");
                self.last_ack = Some(n);
                self.acks += 1;
                self.landed = Landed::Between;
            }
            ("B", Some(_)) => {
                let auto = it.next() == Some("ckpt");
                self.auto_ckpt_starts += u64::from(auto);
                self.landed = if auto { Landed::AutoCheckpoint } else { Landed::Commit };
            }
            ("CS", Some(_)) => self.landed = Landed::ExplicitCheckpoint,
            ("CE", Some(_)) => {}
            _ => panic!("{ctx}: the child reported {line:?}"),
        }
    }
}

#[test]
fn kill_loop() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let seed = base_seed();
    let iterations: u64 = std::env::var("MEMENTO_KILL_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut fig = Figures::default();
    let root = tempfile::tempdir().expect("tempdir");
    let mut path = root.path().join("store-0");
    let mut model = Model::new();
    let mut next = 1u64;
    let mut vec_len_before = 0u64;
    let mut est = Estimates::default();
    // Each iteration's child uses the next durability mode (see `durability_of`).
    let modes = ["sync", "group", "buffered"];
    for it in 0..iterations {
        if it % PER_STORE == 0 {
            if it > 0 {
                std::fs::remove_dir_all(&path).expect("remove the last store");
            }
            path = root.path().join(format!("store-{it}"));
            Engine::builder(&path).dimension(DIM).metric(Metric::L2).page_size(PAGE_SIZE).open().expect("create").close().expect("close");
            model = Model::new();
            next = 1;
            vec_len_before = 0;
        }
        let mode_name = modes[(it % 3) as usize];
        let ctx = format!("iteration {it} ({mode_name}, resuming at step {next}; rerun with MEMENTO_SEED={seed:#x})");
        let plan = match rng.below(20) {
            0..7 => Plan::AfterAcks(rng.below(40)),
            7..11 => Plan::AtExplicitCheckpoint(1),
            11..16 => Plan::AtAutoCheckpoint(1),
            _ => Plan::AtCommit(rng.below(30)),
        };
        // After the trigger, a delay: up to 2 ms for AfterAcks; otherwise a random part of
        // how long that kind of step has been taking, so that the kill lands inside it.
        let cap = match plan {
            Plan::AfterAcks(_) => 2000.0,
            Plan::AtExplicitCheckpoint(_) => est.explicit,
            Plan::AtAutoCheckpoint(_) => est.auto,
            // A third of a commit: mostly before its WAL write has finished.
            Plan::AtCommit(_) => est.commit / 3.0,
        };
        let delay = Duration::from_micros(rng.below((cap as u64).max(100)));
        *fig.plans
            .entry(match plan {
                Plan::AfterAcks(_) => "after some acknowledgements + up to 2 ms",
                Plan::AtExplicitCheckpoint(_) => "inside an explicit checkpoint (aimed)",
                Plan::AtAutoCheckpoint(_) => "inside a commit that checkpoints (aimed)",
                Plan::AtCommit(_) => "inside a commit (aimed)",
            })
            .or_default() += 1;

        let (mut child, rx) = spawn_child(&path, seed, next, mode_name);
        let mut rep = Report { est, last_ack: None, landed: Landed::Opening, acks: 0, auto_ckpt_starts: 0 };
        let (mut explicit, mut auto) = (0u64, 0u64);
        loop {
            let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| panic!("{ctx}: the child went silent ({e})"));
            rep.take(&line, next, &ctx);
            explicit += u64::from(line.starts_with("CS "));
            auto += u64::from(line.ends_with(" ckpt"));
            let fire = match plan {
                Plan::AfterAcks(k) => rep.acks >= k && (rep.landed != Landed::Opening),
                Plan::AtExplicitCheckpoint(k) => explicit >= k,
                Plan::AtAutoCheckpoint(k) => auto >= k,
                Plan::AtCommit(k) => rep.acks >= k && line.starts_with("B "),
            };
            // A plan whose trigger does not come soon falls back to a kill anyway.
            if fire || rep.acks >= 400 {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                break;
            }
        }
        child.0.kill().expect("kill -9");
        let status = child.0.wait().expect("wait for the child");
        assert_eq!(status.signal(), Some(9), "{ctx}: the child was not killed by SIGKILL but ended with {status:?}");
        // Every line the child wrote before it died.
        for line in rx.iter() {
            rep.take(&line, next, &ctx);
        }
        fig.auto_checkpoints_predicted += rep.auto_ckpt_starts;
        est = rep.est;

        // Disk evidence, before recovery touches anything.
        let vec_len = std::fs::metadata(path.join(memento::files::VECTORS)).expect("the vector file").len();
        let wal_new = path.join(format!("{}.new", memento::files::WAL)).exists();
        let vec_new = path.join(format!("{}.new", memento::files::VECTORS)).exists();
        let gen_before = wal_generation(&path);
        let mirror_lsn = mirror_applied_lsn(&path);
        // memento-inspect reads whatever the kill left (mid-checkpoint, mid-compaction) and
        // finds nothing the engine would not repair at open: warnings, never an error.
        let report = memento::inspect::Inspector::open(&path).and_then(|i| i.verify()).unwrap_or_else(|e| panic!("{ctx}: inspect after kill -9: {e}"));
        let errors: Vec<String> =
            report.findings.iter().filter(|f| f.severity == memento::inspect::Severity::Error).map(|f| format!("{}: {}", f.kind, f.message)).collect();
        assert!(errors.is_empty(), "{ctx}: memento-inspect verify after kill -9: {errors:?}");

        let engine = Engine::open(&path).unwrap_or_else(|e| panic!("{ctx}: open after kill -9: {e}"));
        engine.check_integrity().unwrap_or_else(|e| panic!("{ctx}: integrity after kill -9: {e}"));
        // The graph file is replaced only by rename: a kill leaves the old one or the new one,
        // never a damaged one.
        let graph = engine.graph_info().unwrap_or_else(|e| panic!("{ctx}: graph info: {e}"));
        assert!(graph.problem.is_none(), "{ctx}: the graph file after kill -9: {:?}", graph.problem);
        let got = contents(&engine);
        assert_eq!(got.len() as u64, engine.count(), "{ctx}: count");
        common::model::check_keywords(&engine, &got).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        // The harness's own model up to the last acknowledged step, and the step in flight.
        let last = rep.last_ack.unwrap_or(next - 1);
        for n in next..=last {
            model = after(&model, &gen_step(seed, n, &model));
        }
        let in_flight = after(&model, &gen_step(seed, last + 1, &model));
        let (applied, resume) = if got == model && got != in_flight {
            ("not applied", last + 1)
        } else if got == in_flight && got != model {
            ("applied", last + 2)
        } else if got == model {
            ("no change to tell", last + 2)
        } else {
            let which: Vec<&str> = [("last acknowledged", &model), ("in flight", &in_flight)].iter().filter(|(_, m)| **m == got).map(|(w, _)| *w).collect();
            panic!(
                "{ctx}: after kill -9 (landed {:?}, last acknowledged step {last}) the store holds {} records, neither the state after step {last} ({} records) nor after step {} ({} records) {which:?}",
                rep.landed,
                got.len(),
                model.len(),
                last + 1,
                in_flight.len()
            );
        };
        let stats = engine.stats();
        if vec_len > stats.vector_file_bytes && vec_len > vec_len_before {
            fig.unfinished_checkpoint_pages += 1;
        }
        fig.wal_new_left += u64::from(wal_new);
        fig.vec_new_left += u64::from(vec_new);
        if gen_before.is_some() && gen_before != wal_generation(&path) {
            fig.wal_regenerated += 1;
        }
        if mirror_lsn.is_some_and(|m| m < stats.last_lsn) {
            fig.mirror_behind += 1;
        }
        fig.torn_tail += stats.recovery.iter().filter(|r| r.contains("torn WAL tail")).count() as u64;
        fig.mirror_rebuilt += stats.recovery.iter().filter(|r| r.contains("rebuilt the mirror")).count() as u64;
        *fig.landed.entry((rep.landed, applied)).or_default() += 1;
        *fig.by_mode.entry(mode_name).or_default() += 1;
        fig.iterations += 1;
        fig.steps += resume - next;
        model = got;
        next = resume;
        // Mostly leave the store as recovery made it; now and then close it (a checkpoint).
        if rng.chance(1, 8) {
            engine.close().expect("close");
        } else {
            engine.abandon();
        }
        vec_len_before = std::fs::metadata(path.join(memento::files::VECTORS)).expect("the vector file").len();
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("kill -9 loop, seed {seed:#x}: {} iterations in {secs:.1} s, {} steps acknowledged or recovered", fig.iterations, fig.steps);
    eprintln!("  durability modes: {:?}", fig.by_mode);
    eprintln!("  kill plans: {:?}", fig.plans);
    for ((landed, applied), n) in &fig.landed {
        eprintln!("  landed {landed:?}, in-flight step {applied}: {n}");
    }
    eprintln!(
        "  disk evidence: {} kills left pages of an unfinished checkpoint past the sealed prefix, {} a memento.wal.new, {} a compaction's memento.vec.new, {} a WAL one generation behind (regenerated at open), {} a torn WAL tail, {} a mirror behind the log (killed between the WAL write and the mirror update); {} mirror rebuilds; {} commits started an automatic checkpoint",
        fig.unfinished_checkpoint_pages, fig.wal_new_left, fig.vec_new_left, fig.wal_regenerated, fig.torn_tail, fig.mirror_behind, fig.mirror_rebuilt, fig.auto_checkpoints_predicted
    );
    // The kills must really land inside the interesting windows.
    let count = |l: Landed| fig.landed.iter().filter(|((x, _), _)| *x == l).map(|(_, n)| n).sum::<u64>();
    let in_ckpt = count(Landed::AutoCheckpoint) + count(Landed::ExplicitCheckpoint);
    let in_commit = count(Landed::Commit) + count(Landed::AutoCheckpoint);
    if iterations >= 300 {
        assert!(in_ckpt >= iterations / 10, "only {in_ckpt} of {iterations} kills landed inside a checkpoint");
        assert!(in_commit >= iterations / 10, "only {in_commit} of {iterations} kills landed inside a commit");
        assert!(fig.unfinished_checkpoint_pages > 0, "no kill interrupted a checkpoint after it had written pages");
        assert!(fig.mirror_behind > 0, "no kill landed between a WAL write and its mirror update");
    }
}
