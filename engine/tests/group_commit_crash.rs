//! Crashes with several concurrent `GroupCommit` writer threads (FORMAT.md §4.1, §5): every
//! acknowledged commit survives kill -9 and power loss, and no batch is ever half applied,
//! while several threads share one `fdatasync` and checkpoints run between them.
//!
//! **kill -9** (`group_commit_kill_loop`). The writer is this test binary, re-executed with
//! `MEMENTO_GROUP_CHILD` set to the store's path (the `group_commit_child` test then writes until
//! killed; in a normal run it does nothing). It opens the store on disk with
//! `Durability::GroupCommit` and a 6 KiB WAL limit (an automatic checkpoint every few dozen
//! commits, made by whichever writer crosses the limit while the others wait on the shared
//! fsync), and runs `THREADS` threads on one `Arc<Engine>`. Thread `t` owns the keys `t{t}-…`
//! and commits a seeded sequence of steps: single-op calls (`add`, `upsert`, `delete`,
//! `update_metadata`) and multi-op `WriteBatch`es (adds, upserts, deletes, metadata updates;
//! now and then one the engine must refuse as a whole). Step `n` of thread `t` is a pure
//! function of the seed, `t`, `n` and the thread's records before it, so the harness rebuilds
//! every thread's model on its own. The main thread of the child runs an explicit checkpoint
//! every few milliseconds (one in five a compaction).
//!
//! The child reports on stdout, one locked and flushed line at a time: `B t n` before step `n` of
//! thread `t`, `A t n lsn µs` once it was acknowledged (the commit's LSN when the call tells it,
//! else `-`), `CS k` / `CE k` around an explicit checkpoint; a panic in any thread prints
//! `FAIL …` and aborts. The harness kills the child with SIGKILL at a seeded moment: after some
//! acknowledgements, shortly after a `B` line (a random part of how long commits have been
//! taking: inside the shared fsync), when three or more threads are inside a commit at once, or
//! inside an explicit checkpoint. It reads every line the child wrote, so it knows for each
//! thread its last acknowledged step `a_t` and whether step `a_t + 1` was in flight. It then
//! opens the store, runs `check_integrity`, and requires for every thread that its records are
//! exactly its model after step `a_t`, or after `a_t + 1` if (and only if) a `B` was printed for
//! it; and that the store's last LSN is at least every acknowledged LSN. The next iteration's
//! child resumes every thread from the state found, so damage could accumulate; a new store every
//! `PER_STORE` iterations.
//!
//! **Power loss** (`group_commit_power_loss`). The same threads (every step sent as a
//! `WriteBatch`, so that every commit's LSN is known) run against one engine on a
//! [`SimStorage`] that records the crash state after every mutating call; its WAL `sync_data`
//! sleeps first, so that several commits wait for one leader's fsync. Each step is bracketed by
//! the sim's operation counter (read before the call and after it returned): a crash after call
//! `X` must keep every step acknowledged with the counter `≤ X` (the fsync that made it durable
//! is among the first `X` calls) and can hold no step begun at `≥ X`. At every sync call, and
//! one random call between each two, the durable image, the live image (a kill -9) and a random
//! image (unsynced writes partly lost, the last one torn) are opened: each must pass
//! `check_integrity`, hold for each thread a state of its sequence between those two bounds, and
//! be exactly the prefix of the global commit order up to its last LSN `L` (every thread holds
//! precisely its steps with LSN `≤ L`: no commit lost behind a later one that survived).
//!
//! `the_power_loss_checker_catches_a_wal_that_skips_fsync` shows that this check can fail: with a
//! WAL whose `sync_data` does nothing, it finds acknowledged commits lost.
//!
//! `MEMENTO_GROUP_KILLS` (default 500) sets the kill -9 iterations, `MEMENTO_GROUP_POWER_STEPS`
//! the steps per thread of the power-loss run (default 40), `MEMENTO_POWER_IMAGES` the random
//! images per crash point (default 1), `MEMENTO_SEED` the seed (printed on failure).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

mod common;

use common::child::Killed;

use common::model::{apply, batch, record, Model, Op, Rec};
use memento::storage::sim::{CrashImage, Rng};
use memento::storage::{LockError, Mapping, SimStorage, Storage, StorageFile, StoreLock};
use memento::{Durability, Engine, Error, Metadata, Metric};

const CHILD_ENV: &str = "MEMENTO_GROUP_CHILD";
const SEED_ENV: &str = "MEMENTO_GROUP_CHILD_SEED";
const NEXT_ENV: &str = "MEMENTO_GROUP_CHILD_NEXT";
const TAG: &str = "GROUP-CHILD:";
const DEFAULT_SEED: u64 = 0x6C0_11C0_0404;

const THREADS: usize = 4;
const DIM: usize = 8;
const PAGE_SIZE: u32 = 8192;
const WAL_LIMIT: u64 = 6 << 10;
/// Keys per thread.
const IDS: u64 = 16;
/// Kill -9 iterations on one store before a fresh one is made (the vector file only grows).
const PER_STORE: u64 = 25;

fn base_seed() -> u64 {
    common::seed_from_env(DEFAULT_SEED)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The workload of one thread (shared by the child, the harness and the power-loss run)

/// One step of a thread: its ops, and whether a single op is sent as its own call.
#[derive(Debug, Clone)]
struct Step {
    ops: Vec<Op>,
    single: bool,
}

fn gen_meta(rng: &mut Rng, t: usize, n: u64) -> Metadata {
    let mut m = Metadata::new();
    m.insert("thread".into(), (t as u64).into());
    m.insert("step".into(), n.into());
    if rng.chance(1, 2) {
        m.insert("tag".into(), ["p", "q", "r"][rng.below(3) as usize].into());
    }
    m
}

fn gen_rec(rng: &mut Rng, t: usize, n: u64) -> Rec {
    let vector = (0..DIM).map(|_| (rng.below(64) as f32 - 32.0) / 4.0).collect();
    let text = rng.chance(2, 3).then(|| format!("t{t} step {n}: {}", "group commit ".repeat(1 + rng.below(8) as usize)));
    let metadata = rng.chance(2, 3).then(|| gen_meta(rng, t, n));
    Rec { vector, text, metadata }
}

/// Step `n` of thread `t` of the workload of `seed`, from the thread's records `m`.
fn gen_step(seed: u64, t: usize, n: u64, m: &Model) -> Step {
    let mut rng = Rng::new(seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let count = if rng.chance(1, 2) { 1 } else { 2 + rng.below(5) };
    let mut view = m.clone();
    let mut ops = Vec::new();
    for i in 0..count {
        let id = format!("t{t}-k{}", rng.below(IDS));
        let op = match rng.below(100) {
            0..30 => Op::Add(if view.contains_key(&id) { format!("{id}.{n}.{i}") } else { id }, gen_rec(&mut rng, t, n)),
            30..55 => Op::Upsert(id, gen_rec(&mut rng, t, n)),
            55..78 => Op::Delete(id),
            _ if !view.contains_key(&id) => Op::Upsert(id, gen_rec(&mut rng, t, n)),
            _ => Op::Meta(id, rng.chance(5, 6).then(|| gen_meta(&mut rng, t, n))),
        };
        apply(&mut view, &op).expect("generated ops are valid");
        ops.push(op);
    }
    // Now and then a batch the engine must refuse as a whole: nothing of it may appear.
    if count > 1 && rng.chance(1, 10) {
        match view.keys().next() {
            Some(id) => ops.push(Op::Add(id.clone(), gen_rec(&mut rng, t, n))),
            None => ops.push(Op::Meta(format!("t{t}-missing"), None)),
        }
    }
    let single = ops.len() == 1 && rng.chance(2, 3);
    Step { ops, single }
}

/// The thread's records after `step` from `m`, and whether the engine must refuse the step.
fn after(m: &Model, step: &Step) -> (Model, bool) {
    let mut next = m.clone();
    if step.ops.iter().try_for_each(|op| apply(&mut next, op)).is_err() {
        return (m.clone(), true);
    }
    (next, false)
}

/// Sends a step (as one call for a single op when `step.single` and `singles`, else as one
/// batch); the commit's LSN when the call tells it (`None` too when nothing changed).
fn send(e: &Engine, step: &Step, singles: bool) -> memento::Result<Option<u64>> {
    if let ([op], true) = (step.ops.as_slice(), step.single && singles) {
        return match op {
            Op::Add(id, r) => e.add(record(id, r)).map(|i| i.lsn),
            Op::Upsert(id, r) => e.upsert(record(id, r)).map(|i| i.lsn),
            Op::Delete(id) => e.delete(id).map(|_| None),
            Op::Meta(id, m) => e.update_metadata(id, m.clone()).map(|()| None),
            Op::Text(id, t) => e.update_text(id, t.clone()).map(|()| None),
        };
    }
    e.write(batch(&step.ops)).map(|i| i.lsn)
}

/// Sends a step and checks the answer: `Ok` for a valid one, a refusal for one the model
/// refuses. Returns the records after it and the LSN.
fn run_step(e: &Engine, step: &Step, model: &Model, singles: bool, what: &str) -> (Model, Option<u64>) {
    let (next, refused) = after(model, step);
    let r = send(e, step, singles);
    match (r, refused) {
        (Ok(lsn), false) => (next, lsn),
        (Err(Error::DuplicateId { .. } | Error::NotFound { .. }), true) => (next, None),
        (r, _) => panic!("{what} (refused: {refused}) returned {r:?}"),
    }
}

/// What the store holds, split by thread (keys `t{t}-…`).
fn split(e: &Engine) -> Vec<Model> {
    let all = common::model::contents(e).unwrap_or_else(|err| panic!("reading the store: {err}"));
    let mut out = vec![Model::new(); THREADS];
    for (id, r) in all {
        let t = id.strip_prefix('t').and_then(|s| s.split_once('-')).and_then(|(t, _)| t.parse::<usize>().ok()).filter(|&t| t < THREADS);
        let t = t.unwrap_or_else(|| panic!("the store holds {id:?}, which no thread writes"));
        out[t].insert(id, r);
    }
    out
}

/// How two states differ, briefly (for failure messages).
fn diff(got: &Model, want: &Model) -> String {
    let mut out = Vec::new();
    for (id, r) in got {
        match want.get(id) {
            None => out.push(format!("{id} extra")),
            Some(w) if w != r => out.push(format!("{id} differs")),
            _ => {}
        }
    }
    out.extend(want.keys().filter(|id| !got.contains_key(*id)).map(|id| format!("{id} missing")));
    out.truncate(8);
    out.join(", ")
}

// ---------------------------------------------------------------------------------------------
// The child (kill -9)

/// One line to the harness: stdout locked for the line, then flushed.
fn say(args: fmt::Arguments) {
    let mut out = io::stdout().lock();
    writeln!(out, "{TAG} {args}").expect("child: stdout");
    out.flush().expect("child: flush");
}

fn child_writer(e: &Engine, seed: u64, t: usize, mut n: u64, mut model: Model) {
    loop {
        let step = gen_step(seed, t, n, &model);
        say(format_args!("B {t} {n}"));
        let started = Instant::now();
        let (next, lsn) = run_step(e, &step, &model, true, &format!("child: thread {t} step {n}"));
        let us = started.elapsed().as_micros();
        model = next;
        say(format_args!("A {t} {n} {} {us}", lsn.map_or_else(|| "-".to_string(), |l| l.to_string())));
        n += 1;
    }
}

/// Child mode only (does nothing unless `MEMENTO_GROUP_CHILD` is set).
#[test]
fn group_commit_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    // A failure in any thread reaches the harness as a line, and ends the child at once.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        say(format_args!("FAIL {}", info.to_string().replace('\n', " | ")));
        std::process::abort();
    }));
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let seed: u64 = var(SEED_ENV).parse().expect("seed");
    let next: Vec<u64> = var(NEXT_ENV).split(',').map(|s| s.parse().expect("next step")).collect();
    assert_eq!(next.len(), THREADS);
    let engine = Arc::new(Engine::builder(&path).create(false).durability(Durability::GroupCommit).wal_limit(WAL_LIMIT).open().expect("child: open"));
    let models = split(&engine);
    say(format_args!("READY"));
    for (t, model) in models.into_iter().enumerate() {
        let e = Arc::clone(&engine);
        let n = next[t];
        std::thread::spawn(move || child_writer(&e, seed, t, n, model));
    }
    let mut rng = Rng::new(seed ^ next.iter().fold(0u64, |h, n| h.wrapping_mul(31).wrapping_add(*n)) ^ 0xC0FF_EE00);
    for k in 1.. {
        std::thread::sleep(Duration::from_micros(1000 + rng.below(12_000)));
        let compaction = rng.chance(1, 5);
        say(format_args!("CS {k}{}", if compaction { " compact" } else { "" }));
        if compaction {
            engine.compact().expect("child: compaction");
        } else {
            engine.checkpoint().expect("child: checkpoint");
        }
        say(format_args!("CE {k}"));
    }
}

// ---------------------------------------------------------------------------------------------
// The harness (kill -9)

fn spawn_child(path: &Path, seed: u64, next: &[u64]) -> (Killed, mpsc::Receiver<String>) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut c = Command::new(exe);
    c.args(["--exact", "group_commit_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .env(SEED_ENV, seed.to_string())
        .env(NEXT_ENV, next.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = Killed(c.spawn().expect("spawn the writer"));
    let rx = child.tagged_lines(TAG);
    (child, rx)
}

/// When to kill.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// After this many acknowledgements (any threads), then up to 2 ms.
    AfterAcks(u64),
    /// Right after the k-th `B` line, then a random part of a commit's duration.
    AfterBegin(u64),
    /// As soon as this many threads are inside a commit at once, then a little.
    Crowd(usize),
    /// As the first explicit checkpoint starts, then up to 3 ms.
    Checkpoint,
}

/// What the child's lines said.
struct Lines {
    next: Vec<u64>,
    acked: Vec<Option<u64>>,
    flight: Vec<Option<u64>>,
    in_flight: usize,
    max_in_flight: usize,
    max_acked_lsn: Option<u64>,
    acks: u64,
    begins: u64,
    ready: bool,
    /// An explicit checkpoint started and not ended (and whether it is a compaction).
    checkpoint: Option<bool>,
    checkpoints: u64,
    /// Moving average of how long a commit takes, µs.
    commit_us: f64,
}

impl Lines {
    fn take(&mut self, line: &str, ctx: &str) {
        let f: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
        match (f[0], num(1), num(2)) {
            ("READY", None, None) => self.ready = true,
            ("B", Some(t), Some(n)) => {
                let t = t as usize;
                assert!(self.flight[t].is_none(), "{ctx}: thread {t} began step {n} with another in flight");
                assert_eq!(n, self.acked[t].map_or(self.next[t], |a| a + 1), "{ctx}: thread {t} began a step out of order");
                self.flight[t] = Some(n);
                self.in_flight += 1;
                self.max_in_flight = self.max_in_flight.max(self.in_flight);
                self.begins += 1;
            }
            ("A", Some(t), Some(n)) => {
                let t = t as usize;
                assert_eq!(self.flight[t], Some(n), "{ctx}: thread {t} acknowledged step {n} it had not begun");
                self.flight[t] = None;
                self.in_flight -= 1;
                self.acked[t] = Some(n);
                self.acks += 1;
                if let Some(lsn) = num(3) {
                    self.max_acked_lsn = self.max_acked_lsn.max(Some(lsn));
                }
                if let Some(us) = num(4) {
                    self.commit_us = if self.commit_us == 0.0 { us as f64 } else { 0.9 * self.commit_us + 0.1 * us as f64 };
                }
            }
            ("CS", Some(_), None) => {
                self.checkpoint = Some(f.get(2) == Some(&"compact"));
                self.checkpoints += 1;
            }
            ("CE", Some(_), None) => self.checkpoint = None,
            ("FAIL", ..) => panic!("{ctx}: the child failed: {line}"),
            _ => panic!("{ctx}: the child reported {line:?}"),
        }
    }
}

#[derive(Debug, Default)]
struct Figures {
    iterations: u64,
    acks: u64,
    /// Threads in flight at the kill → kills.
    in_flight_at_kill: BTreeMap<usize, u64>,
    /// In-flight steps found applied / not applied / without a visible effect.
    applied: u64,
    not_applied: u64,
    no_effect: u64,
    max_in_flight: usize,
    in_checkpoint: u64,
    in_compaction: u64,
    torn_tails: u64,
    checkpoints: u64,
    /// WAL generations the children started (checkpoints and compactions, explicit or not).
    generations: u64,
    /// Kills that left a `memento.wal.new` (inside a checkpoint's WAL rotation).
    wal_new_left: u64,
    plans: BTreeMap<&'static str, u64>,
}

/// The generation in the WAL's header (FORMAT.md §3).
fn wal_generation(path: &Path) -> u64 {
    let bytes = std::fs::read(path.join(memento::files::WAL)).expect("the WAL");
    u64::from_le_bytes(bytes.get(16..24).and_then(|b| b.try_into().ok()).expect("a WAL header"))
}

#[test]
fn group_commit_kill_loop() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let seed = base_seed();
    let iterations = env_u64("MEMENTO_GROUP_KILLS", 500);
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut fig = Figures::default();
    let root = tempfile::tempdir().expect("tempdir");
    let mut path = root.path().join("store-0");
    let mut models = vec![Model::new(); THREADS];
    let mut next = vec![1u64; THREADS];
    let mut commit_us = 0.0f64;
    for it in 0..iterations {
        if it % PER_STORE == 0 {
            if it > 0 {
                std::fs::remove_dir_all(&path).expect("remove the last store");
            }
            path = root.path().join(format!("store-{it}"));
            Engine::builder(&path).dimension(DIM).metric(Metric::L2).page_size(PAGE_SIZE).open().expect("create").close().expect("close");
            models = vec![Model::new(); THREADS];
            next = vec![1; THREADS];
        }
        let ctx = format!("iteration {it} (threads resuming at steps {next:?}; rerun with MEMENTO_SEED={seed:#x})");
        let plan = match rng.below(20) {
            0..5 => Plan::AfterAcks(rng.below(80)),
            5..12 => Plan::AfterBegin(1 + rng.below(80)),
            12..17 => Plan::Crowd(3 + rng.below(2) as usize),
            _ => Plan::Checkpoint,
        };
        let delay = Duration::from_micros(match plan {
            Plan::AfterAcks(_) => rng.below(2000),
            // Commits mostly wait for the shared fsync: a random part of how long they take.
            Plan::AfterBegin(_) => rng.below((commit_us as u64).max(200)),
            Plan::Crowd(_) => rng.below((commit_us as u64 / 2).max(100)),
            Plan::Checkpoint => rng.below(3000),
        });
        *fig.plans
            .entry(match plan {
                Plan::AfterAcks(_) => "after some acknowledgements + up to 2 ms",
                Plan::AfterBegin(_) => "after a B line + part of a commit",
                Plan::Crowd(_) => "with 3 or 4 threads inside a commit",
                Plan::Checkpoint => "inside an explicit checkpoint",
            })
            .or_default() += 1;

        let generation_before = wal_generation(&path);
        let (mut child, rx) = spawn_child(&path, seed, &next);
        let mut lines = Lines {
            next: next.clone(),
            acked: vec![None; THREADS],
            flight: vec![None; THREADS],
            in_flight: 0,
            max_in_flight: 0,
            max_acked_lsn: None,
            acks: 0,
            begins: 0,
            ready: false,
            checkpoint: None,
            checkpoints: 0,
            commit_us,
        };
        loop {
            let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| panic!("{ctx}: the child went silent ({e})"));
            lines.take(&line, &ctx);
            let fire = match plan {
                Plan::AfterAcks(k) => lines.ready && lines.acks >= k,
                Plan::AfterBegin(k) => lines.begins >= k && line.starts_with("B "),
                Plan::Crowd(c) => lines.in_flight >= c,
                Plan::Checkpoint => line.starts_with("CS "),
            };
            // A trigger that does not come soon falls back to a kill anyway.
            if fire || lines.acks >= 600 {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                break;
            }
        }
        child.0.kill().expect("kill -9");
        let status = child.0.wait().expect("wait for the child");
        // Every line the child wrote before it died.
        for line in rx.iter() {
            lines.take(&line, &ctx);
        }
        assert_eq!(status.signal(), Some(9), "{ctx}: the child was not killed by SIGKILL but ended with {status:?}");
        commit_us = lines.commit_us;
        // Disk evidence, before recovery touches anything.
        fig.generations += wal_generation(&path).saturating_sub(generation_before);
        fig.wal_new_left += u64::from(path.join(format!("{}.new", memento::files::WAL)).exists());

        let engine = Engine::open(&path).unwrap_or_else(|e| panic!("{ctx}: open after kill -9: {e}"));
        engine.check_integrity().unwrap_or_else(|e| panic!("{ctx}: integrity after kill -9: {e}"));
        let stats = engine.stats();
        if let Some(lsn) = lines.max_acked_lsn {
            assert!(stats.last_lsn >= lsn, "{ctx}: commit LSN {lsn} was acknowledged, the store recovered up to LSN {} only", stats.last_lsn);
        }
        let got = split(&engine);
        let flying: Vec<String> = (0..THREADS).filter_map(|t| lines.flight[t].map(|n| format!("t{t}:{n}"))).collect();
        for t in 0..THREADS {
            let last = lines.acked[t].unwrap_or(next[t] - 1);
            for n in next[t]..=last {
                models[t] = after(&models[t], &gen_step(seed, t, n, &models[t])).0;
            }
            let in_flight = lines.flight[t].map(|n| {
                assert_eq!(n, last + 1);
                after(&models[t], &gen_step(seed, t, n, &models[t])).0
            });
            if got[t] == models[t] {
                match &in_flight {
                    Some(m) if *m != models[t] => fig.not_applied += 1,
                    Some(_) => fig.no_effect += 1,
                    None => {}
                }
                next[t] = last + 1;
            } else if in_flight.as_ref() == Some(&got[t]) {
                fig.applied += 1;
                models[t] = got[t].clone();
                next[t] = last + 2;
            } else {
                panic!(
                    "{ctx}: after kill -9 (threads in flight {flying:?}, inside a checkpoint: {:?}), thread {t} (last acknowledged step {last}, step {} {}) holds {} records, not its state after step {last} ({} records; {}){}",
                    lines.checkpoint,
                    last + 1,
                    if in_flight.is_some() { "in flight" } else { "not begun" },
                    got[t].len(),
                    models[t].len(),
                    diff(&got[t], &models[t]),
                    in_flight.as_ref().map_or_else(String::new, |m| format!(" nor after step {} ({} records; {})", last + 1, m.len(), diff(&got[t], m)))
                );
            }
        }
        fig.iterations += 1;
        fig.acks += lines.acks;
        fig.checkpoints += lines.checkpoints;
        *fig.in_flight_at_kill.entry(lines.in_flight).or_default() += 1;
        fig.max_in_flight = fig.max_in_flight.max(lines.max_in_flight);
        match lines.checkpoint {
            Some(true) => fig.in_compaction += 1,
            Some(false) => fig.in_checkpoint += 1,
            None => {}
        }
        fig.torn_tails += stats.recovery.iter().filter(|r| r.contains("torn WAL tail")).count() as u64;
        // Mostly leave the store as recovery made it; now and then close it (a checkpoint).
        if rng.chance(1, 8) {
            engine.close().expect("close");
        } else {
            engine.abandon();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let inside: u64 = fig.in_flight_at_kill.iter().filter(|(k, _)| **k > 0).map(|(_, n)| n).sum();
    eprintln!(
        "group-commit kill -9 loop, seed {seed:#x}, {THREADS} threads: {} iterations in {secs:.1} s, {} commits acknowledged, {} WAL generations started by the children: {} explicit checkpoints or compactions started, the rest automatic checkpoints",
        fig.iterations, fig.acks, fig.generations, fig.checkpoints
    );
    eprintln!("  kill plans: {:?}", fig.plans);
    eprintln!(
        "  kills with some thread inside a commit: {inside}; threads in flight at the kill → kills: {:?}; most threads inside a commit at once: {}",
        fig.in_flight_at_kill, fig.max_in_flight
    );
    eprintln!(
        "  in-flight steps found applied: {}, not applied: {}, without a visible effect: {}; kills inside an explicit checkpoint: {}, inside a compaction: {}, leaving a memento.wal.new: {}; torn WAL tails dropped at open: {}",
        fig.applied, fig.not_applied, fig.no_effect, fig.in_checkpoint, fig.in_compaction, fig.wal_new_left, fig.torn_tails
    );
    // The kills must really land inside commits, with several threads waiting at once.
    if iterations >= 100 {
        assert!(inside >= iterations / 3, "only {inside} of {iterations} kills landed inside a commit");
        assert!(fig.in_flight_at_kill.keys().any(|&k| k >= 3), "no kill landed with 3 or more threads inside a commit");
        assert!(fig.applied > 0 && fig.not_applied > 0, "in-flight steps were never (or always) found applied: {fig:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Power loss: the threads on a SimStorage whose WAL fsync takes a while

/// A [`SimStorage`] whose WAL `sync_data` sleeps first (so that commits gather behind one
/// leader), and which counts the WAL's syncs.
struct SlowSync {
    sim: SimStorage,
    wal_syncs: Arc<AtomicU64>,
    /// The WAL's `sync_data` does nothing (to show that the checker can fail).
    lie: bool,
}

struct SlowFile {
    inner: Arc<dyn StorageFile>,
    wal_syncs: Option<Arc<AtomicU64>>,
    lie: bool,
}

impl StorageFile for SlowFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()
    }
    fn sync_data(&self) -> io::Result<()> {
        if let Some(n) = &self.wal_syncs {
            std::thread::sleep(Duration::from_micros(800));
            n.fetch_add(1, Ordering::Relaxed);
            if self.lie {
                return Ok(());
            }
        }
        self.inner.sync_data()
    }
    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping> {
        self.inner.map(offset, len)
    }
}

impl Storage for SlowSync {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let wal_syncs = (name == memento::files::WAL).then(|| Arc::clone(&self.wal_syncs));
        Ok(Arc::new(SlowFile { inner: self.sim.open(name, create)?, wal_syncs, lie: self.lie }))
    }
    fn exists(&self, name: &str) -> io::Result<bool> {
        self.sim.exists(name)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.sim.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.sim.rename(from, to)
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.sim.sync_dir()
    }
    fn lock(&self) -> Result<Box<dyn StoreLock>, LockError> {
        self.sim.lock()
    }
    fn dir_path(&self) -> Option<&Path> {
        None
    }
}

fn sim_builder(storage: Arc<dyn Storage>, durability: Durability) -> memento::EngineBuilder {
    Engine::builder_with_storage(storage).dimension(DIM).metric(Metric::L2).page_size(PAGE_SIZE).wal_limit(WAL_LIMIT).durability(durability)
}

/// One step of a thread in the power-loss run.
#[derive(Debug, Clone, Copy)]
struct Done {
    /// The sim's mutating calls before the call was made, and once it had returned.
    begin: u64,
    ack: u64,
    lsn: Option<u64>,
    started: Instant,
    ended: Instant,
}

/// Runs the threads on a sim, then checks the crash images (panics at the first violation). With
/// `lie`, the WAL's `sync_data` does nothing: the check must fail.
fn power_loss_run(seed: u64, steps: u64, images: u64, lie: bool) {
    let started = Instant::now();
    let sim = SimStorage::new();
    let wal_syncs = Arc::new(AtomicU64::new(0));
    let engine = Arc::new(
        sim_builder(Arc::new(SlowSync { sim: sim.clone(), wal_syncs: Arc::clone(&wal_syncs), lie }), Durability::GroupCommit).open().expect("create the store"),
    );
    sim.capture(true);
    // models[t][k]: thread t's records after its step k; done[t][k - 1]: step k.
    let mut checkpoints = 0u64;
    let (models, done): (Vec<Vec<Model>>, Vec<Vec<Done>>) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let e = Arc::clone(&engine);
                let sim = sim.clone();
                s.spawn(move || {
                    let mut models = vec![Model::new()];
                    let mut done = Vec::new();
                    for n in 1..=steps {
                        let m = models.last().expect("a model");
                        let step = gen_step(seed, t, n, m);
                        let (begin, started) = (sim.op_count(), Instant::now());
                        let (next, lsn) = run_step(&e, &step, m, false, &format!("power loss: thread {t} step {n}"));
                        let (ack, ended) = (sim.op_count(), Instant::now());
                        done.push(Done { begin, ack, lsn, started, ended });
                        models.push(next);
                    }
                    (models, done)
                })
            })
            .collect();
        // Explicit checkpoints between the commits.
        let mut rng = Rng::new(seed);
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_micros(2000 + rng.below(6000)));
            engine.checkpoint().expect("checkpoint");
            checkpoints += 1;
        }
        handles.into_iter().map(|h| h.join().expect("a writer thread")).unzip()
    });
    let kinds = sim.op_kinds();
    let captures = sim.take_captures();
    sim.capture(false);
    let ckpt_lsn = engine.stats().checkpoint_lsn;
    Arc::into_inner(engine).expect("the only handle").close().expect("close");
    let base = captures.first().map_or(0, |c| c.op - 1);
    let commits = done.iter().flatten().filter(|d| d.lsn.is_some()).count() as u64;
    // The most commits inside a call at once (an upper bound on the fsync's waiters).
    let mut edges: Vec<(Instant, i32)> = done.iter().flatten().filter(|d| d.lsn.is_some()).flat_map(|d| [(d.started, 1), (d.ended, -1)]).collect();
    edges.sort();
    let crowd = edges.iter().scan(0, |c, e| {
        *c += e.1;
        Some(*c)
    });
    let max_crowd = crowd.max().unwrap_or(0);

    // Crash points: every sync call, and one random call between each two (calls made since
    // capturing started: `base + 1 ..`).
    let mut rng = Rng::new(seed ^ 0x00C4_A511);
    let mut points = Vec::new();
    let mut prev = base;
    for (i, k) in kinds.iter().enumerate().skip(base as usize) {
        let op = i as u64 + 1;
        if k.is_sync() {
            if op > prev + 1 {
                points.push(prev + 1 + rng.below(op - prev - 1));
            }
            points.push(op);
            prev = op;
        }
    }
    let (mut opened, mut holding_unacked, mut lsn_exact) = (0u64, 0u64, 0u64);
    for &op in &points {
        let cs = &captures[(op - base - 1) as usize];
        assert_eq!(cs.op, op);
        let mut candidates: Vec<(String, CrashImage)> =
            vec![("durable only".into(), cs.durable_image()), ("everything written (kill -9)".into(), cs.live_image())];
        for i in 0..images {
            let s = seed ^ (op << 20) ^ i;
            candidates.push((format!("random image seed {s:#x}"), cs.image(s)));
        }
        for (what, img) in &candidates {
            let ctx = format!(
                "power loss (seed {seed:#x}; rerun with MEMENTO_SEED={:#x}): crash after mutating call {op} ({:?}), image: {what} (kept {} / lost {} unsynced writes, {} torn)",
                base_seed(),
                kinds[op as usize - 1],
                img.kept,
                img.lost,
                img.torn
            );
            let e = sim_builder(Arc::new(SimStorage::from_image(img)), Durability::Sync).open().unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
            e.check_integrity().unwrap_or_else(|e| panic!("{ctx}: integrity: {e}"));
            let last_lsn = e.stats().last_lsn;
            let got = split(&e);
            e.abandon();
            let mut unacked = false;
            for t in 0..THREADS {
                // Steps acknowledged by call `op` must be there; steps begun at or after it
                // cannot be.
                let required = done[t].iter().take_while(|d| d.ack <= op).count();
                // (A step that made no call, refused or without effect, has `begin == ack`.)
                let upper = done[t].iter().take_while(|d| d.begin < op).count().max(required);
                let Some(k) = (required..=upper).find(|&k| models[t][k] == got[t]) else {
                    let anywhere: Vec<usize> = (0..models[t].len()).filter(|&k| models[t][k] == got[t]).collect();
                    panic!(
                        "{ctx}: thread {t} holds {} records, its state after none of its steps {required}..={upper} (acknowledged ..= begun before the crash; it matches steps {anywhere:?}; vs step {required}: {})",
                        got[t].len(),
                        diff(&got[t], &models[t][required])
                    );
                };
                unacked |= models[t][k] != models[t][required];
                // The global order: exactly the thread's commits with LSN ≤ the last recovered.
                let j = done[t].iter().rposition(|d| d.lsn.is_some_and(|l| l <= last_lsn)).map_or(0, |i| i + 1);
                assert!(
                    models[t][j] == got[t],
                    "{ctx}: recovered up to LSN {last_lsn}, but thread {t} does not hold exactly its commits up to it (its step {j}; {}): a commit lost behind a later one, or one from past the log's end",
                    diff(&got[t], &models[t][j])
                );
            }
            opened += 1;
            lsn_exact += 1;
            holding_unacked += u64::from(unacked);
        }
    }
    let syncs = points.iter().filter(|&&p| kinds[p as usize - 1].is_sync()).count();
    let n_syncs = wal_syncs.load(Ordering::Relaxed);
    eprintln!(
        "group-commit power loss, seed {seed:#x}, {THREADS} threads × {steps} steps: {commits} commits, {n_syncs} WAL fsyncs ({:.2} commits per fsync), at most {max_crowd} commits inside a call at once, {checkpoints} explicit checkpoints (checkpoint LSN at the end {ckpt_lsn}); {} mutating calls, {syncs} sync points, {} crash points, {opened} images opened ({images} random per point), {holding_unacked} holding a commit not yet acknowledged, {lsn_exact} exactly the prefix of the log up to their last LSN; {:.1} s",
        commits as f64 / n_syncs.max(1) as f64,
        kinds.len() as u64 - base,
        points.len(),
        started.elapsed().as_secs_f64()
    );
    if lie {
        return;
    }
    assert!(syncs >= 50, "only {syncs} sync points");
    assert!(n_syncs < commits, "no fsync was shared: {n_syncs} WAL fsyncs for {commits} commits");
    assert!(holding_unacked > 0, "no image held a commit that was not yet acknowledged");
}

#[test]
fn group_commit_power_loss() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let seed = base_seed() ^ 0x0050_1055;
    power_loss_run(seed, env_u64("MEMENTO_GROUP_POWER_STEPS", 40), env_u64("MEMENTO_POWER_IMAGES", 1), false);
}

/// The power-loss checker can fail: with a WAL whose fsync does nothing, acknowledged commits
/// are lost.
#[test]
fn the_power_loss_checker_catches_a_wal_that_skips_fsync() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let seed = base_seed() ^ 0x0050_1055;
    let r = std::panic::catch_unwind(|| power_loss_run(seed, 15, 0, true));
    assert!(r.is_err(), "a WAL whose fsyncs do nothing passed the power-loss check");
    eprintln!("as expected, the check failed with a WAL whose fsyncs do nothing (the panic above)");
}
