//! The multi-process stress test (issue 16): one writer process that adds, upserts, deletes,
//! checkpoints and compacts, SIGKILLed and restarted at random moments, and reader processes
//! (`READERS` of them, read-only engines, FORMAT.md §4.4) querying the store continuously.
//! Every answer a reader gives must be a state that existed.
//!
//! **The workload.** A store of `DIM`-dimensional l2 vectors with 8 KiB pages and a 16 KiB WAL
//! limit (an automatic checkpoint every few dozen commits), over a keyspace of `IDS` ids
//! (`k0` ..), so that upserts and deletes leave many dead slots and the store compacts itself
//! (the default `auto_compact` policy, FORMAT.md §4.5) besides the explicit compactions. Step
//! `n` is one `write(WriteBatch)` of one to four adds, upserts and deletes of distinct ids,
//! plus an upsert of the record `clock`; every record a step writes has the vector
//! [`vec_of`]`(id, n)`, the text `id@n` and the metadata `{"step": n}`. So the state after step
//! `n` is a map id → the step that wrote it ([`Model`]), a pure function of the seed and `n`
//! ([`replay`]: the ops of step `n` come from the seed, `n` and the state before it), and any
//! snapshot names its own step by its `clock` record. After some steps (seeded, [`action`])
//! the writer checkpoints (1 in 20) or compacts (1 in 40) explicitly.
//!
//! **The writer** is this test binary re-executed with `MEMENTO_STRESS_WRITER` set (the
//! `stress_writer_child` test). It opens the store (a stale lock would fail this at once), finds
//! the step its `clock` holds, checks the store equals the model of that step, and goes on with
//! the next step, under a durability mode that rotates across restarts. It appends to a log
//! file (one `write` per line) and prints to stdout: `R s µs` when it has opened the store at
//! step `s`, `B n` before step `n`'s commit, `A n lsn` once it is acknowledged (with its commit
//! LSN), `AC n` when the commit (or an explicit checkpoint) compacted the store by itself,
//! `KS n`/`KE n` around an explicit checkpoint and `CS n`/`CE n …` around an explicit
//! compaction, `N …` for each note its engine adds to `Stats::recovery` (what recovery did at
//! open, a mirror rebuilt), and `FAIL …` if it panics (an error from the engine: the parent
//! counts it, restarts the writer, and fails the test at the end).
//!
//! **The readers** (`stress_reader_child`) open `Engine::open_read_only` and loop: `stats`,
//! `get_where({})` (the whole state: it must equal the model of the step its clock names, ids
//! present and absent, each vector, text and metadata; that step must have been begun by the
//! writer, per the log; and the snapshot's LSN must be the acknowledged LSN of that step when
//! the log has it: between the LSNs `stats` gives before and after), then `get(random id)`
//! followed by `get("clock")`, and `search(random query, 5)` followed by `get("clock")`: the
//! record (or its absence), and the hits (each hit's id, distance and metadata, and that they
//! are a top 5 of the state), must be those of some state between the step seen before and the
//! one seen after. Snapshots never go back. A reader checks its answers itself (it replays the
//! model from the seed) and reports the figures; the one error it may meet is the documented
//! "the store's files kept changing" (`Error::Io` of kind `WouldBlock`, from
//! `engine/src/engine/follow.rs`), which it counts and retries; any other error, a panic or a
//! signal (SIGBUS) fails the test.
//!
//! **The parent** SIGKILLs the writer at seeded moments: after 0.3 to 1.5 s, or aimed inside an
//! explicit compaction (after its `CS` line, a random part of how long compactions take), or
//! inside a commit; it checks each restart resumes at the last acknowledged step or the one in
//! flight, and counts kills inside compactions (the last line `CS`) and the compactions'
//! `memento.vec.new` files left by kills. At the end it stops everything, checks every reader,
//! opens the store as a writer (`check_integrity`, the state of the last acknowledged step or
//! of the one in flight, no `memento.vec.new` left) and prints the figures.
//!
//! `MEMENTO_STRESS_SECS` (default 18) and `MEMENTO_SEED` change the run, e.g.
//! `MEMENTO_STRESS_SECS=120 cargo test --release -p memento-core --test stress -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::child::Killed;
use memento::storage::sim::Rng;
use memento::{Durability, Engine, Error, Filter, Metadata, Metric, Record, SearchHit, WriteBatch};

const WRITER_ENV: &str = "MEMENTO_STRESS_WRITER";
const READER_ENV: &str = "MEMENTO_STRESS_READER";
const LOG_ENV: &str = "MEMENTO_STRESS_LOG";
const SEED_ENV: &str = "MEMENTO_STRESS_SEED";
const MODE_ENV: &str = "MEMENTO_STRESS_MODE";
const CHILD_SECS_ENV: &str = "MEMENTO_STRESS_CHILD_SECS";
const TAG: &str = "STRESS:";
const DONE: &str = "STRESS-READER-DONE:";
const DEFAULT_SEED: u64 = 0x5713_E550_0016;
const DEFAULT_SECS: u64 = 18;

const DIM: usize = 4;
const PAGE_SIZE: u32 = 8192;
const WAL_LIMIT: u64 = 16 << 10;
const IDS: u64 = 200;
const READERS: usize = 4;
const K: usize = 5;
const CLOCK: &str = "clock";

// ---------------------------------------------------------------------------------------------
// The workload and its model (shared by the writer, the readers and the parent)

/// A state: each live id → the step that wrote it.
type Model = BTreeMap<String, u64>;

#[derive(Debug, Clone)]
enum Op {
    Add(String),
    Upsert(String),
    Delete(String),
}

fn env_u64(name: &str) -> Option<u64> {
    let s = std::env::var(name).ok()?;
    let s = s.trim();
    Some(s.strip_prefix("0x").map_or_else(|| s.parse(), |h| u64::from_str_radix(h, 16)).unwrap_or_else(|_| panic!("{name} must be a number")))
}

/// The vector step `step` writes for `id`: quarter integers in [-8, 8], so every l2 distance
/// to a query of the same kind is exact in f32, whatever the order of its sums.
fn vec_of(id: &str, step: u64) -> Vec<f32> {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut rng = Rng::new(h ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (0..DIM).map(|_| (rng.below(65) as f32 - 32.0) / 4.0).collect()
}

fn text_of(id: &str, step: u64) -> String {
    format!("{id}@{step}")
}

fn record_of(id: &str, step: u64) -> Record {
    let mut m = Metadata::new();
    m.insert("step".into(), step.into());
    Record::new(id, vec_of(id, step)).with_text(text_of(id, step)).with_metadata(m)
}

/// The ops of step `n` (`n` ≥ 1) from the state before it; the last one upserts the clock.
fn gen_step(seed: u64, n: u64, m: &Model) -> Vec<Op> {
    let mut rng = Rng::new(seed ^ n.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut used = BTreeSet::new();
    let mut ops = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let id = format!("k{}", rng.below(IDS));
        if !used.insert(id.clone()) {
            continue;
        }
        ops.push(if m.contains_key(&id) {
            if rng.chance(1, 2) {
                Op::Upsert(id)
            } else {
                Op::Delete(id)
            }
        } else {
            match rng.below(10) {
                0..7 => Op::Add(id),
                7..9 => Op::Upsert(id),
                // The delete of an id that is not there: a no-op in the batch.
                _ => Op::Delete(id),
            }
        });
    }
    ops.push(Op::Upsert(CLOCK.into()));
    ops
}

fn apply(m: &mut Model, n: u64, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Add(id) | Op::Upsert(id) => {
                m.insert(id.clone(), n);
            }
            Op::Delete(id) => {
                m.remove(id);
            }
        }
    }
}

/// What the writer does after step `n`'s commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Nothing,
    Checkpoint,
    Compact,
}

fn action(seed: u64, n: u64) -> Action {
    let mut rng = Rng::new((seed ^ 0xAC71_0000).wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    match rng.below(40) {
        0 => Action::Compact,
        1 | 2 => Action::Checkpoint,
        _ => Action::Nothing,
    }
}

/// The models of the steps, replayed from the seed as far as asked, keeping those from a
/// low-water mark on.
struct Replay {
    seed: u64,
    /// The newest model computed, and its step.
    step: u64,
    model: Model,
    /// The models kept: those of the steps from `low` on.
    low: u64,
    window: BTreeMap<u64, Model>,
}

impl Replay {
    fn new(seed: u64) -> Replay {
        let mut window = BTreeMap::new();
        window.insert(0, Model::new());
        Replay { seed, step: 0, model: Model::new(), low: 0, window }
    }
    /// The model after step `s`, if it is not below the low-water mark.
    fn at(&mut self, s: u64) -> Option<&Model> {
        while self.step < s {
            self.step += 1;
            let ops = gen_step(self.seed, self.step, &self.model);
            apply(&mut self.model, self.step, &ops);
            if self.step >= self.low {
                self.window.insert(self.step, self.model.clone());
            }
        }
        self.window.get(&s)
    }
    /// Forgets the models before step `s`.
    fn forget_before(&mut self, s: u64) {
        self.low = s;
        self.window = self.window.split_off(&s);
    }
}

fn replay(seed: u64, s: u64) -> Model {
    let mut r = Replay::new(seed);
    r.forget_before(s);
    r.at(s).cloned().expect("replay")
}

/// The step of a record's metadata, after checking that its vector and text are the ones that
/// step wrote for it.
fn step_of(r: &Record) -> Result<u64, String> {
    let s =
        r.metadata.as_ref().and_then(|m| m.get("step")).and_then(serde_json::Value::as_u64).ok_or_else(|| format!("{}: no step in {:?}", r.id, r.metadata))?;
    if r.vector != vec_of(&r.id, s) {
        return Err(format!("{}: the vector {:?} is not the one step {s} wrote ({:?})", r.id, r.vector, vec_of(&r.id, s)));
    }
    if r.text.as_deref() != Some(text_of(&r.id, s).as_str()) {
        return Err(format!("{}: the text {:?} is not the one step {s} wrote", r.id, r.text));
    }
    Ok(s)
}

/// The state a list of records shows.
fn observe(recs: &[Record]) -> Result<Model, String> {
    let mut m = Model::new();
    for r in recs {
        if m.insert(r.id.clone(), step_of(r)?).is_some() {
            return Err(format!("{} is returned twice", r.id));
        }
    }
    Ok(m)
}

/// The step a state's clock names (0: no step yet).
fn clock(m: &Model) -> u64 {
    m.get(CLOCK).copied().unwrap_or(0)
}

/// How `got` differs from `want`, in a few words.
fn diff(got: &Model, want: &Model) -> String {
    let mut out = Vec::new();
    for (id, s) in got {
        match want.get(id) {
            None => out.push(format!("{id}@{s} should be absent")),
            Some(w) if w != s => out.push(format!("{id}@{s} should be {id}@{w}")),
            _ => {}
        }
    }
    out.extend(want.iter().filter(|(id, _)| !got.contains_key(*id)).map(|(id, s)| format!("{id}@{s} is missing")));
    let n = out.len();
    out.truncate(8);
    format!("{n} differences: {}", out.join(", "))
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Whether `hits` is a valid answer of a top-`K` search for `q` in state `m`: each hit a
/// record of `m` with its own distance and metadata, in order, as many as `m` allows, and no
/// record left out that is closer than the last hit.
fn check_hits(m: &Model, q: &[f32], hits: &[SearchHit]) -> Result<(), String> {
    if hits.len() != K.min(m.len()) {
        return Err(format!("{} hits for {} records", hits.len(), m.len()));
    }
    let mut seen = BTreeSet::new();
    let mut prev = f32::NEG_INFINITY;
    for h in hits {
        let s = *m.get(&h.id).ok_or_else(|| format!("hit {} is not in the state", h.id))?;
        let d = l2(q, &vec_of(&h.id, s));
        if h.distance != d {
            return Err(format!("hit {} at distance {}, not {d} ({}@{s})", h.id, h.distance, h.id));
        }
        if h.metadata.as_ref().and_then(|x| x.get("step")).and_then(serde_json::Value::as_u64) != Some(s) {
            return Err(format!("hit {} with metadata {:?}, not step {s}", h.id, h.metadata));
        }
        if !seen.insert(h.id.as_str()) || d < prev {
            return Err(format!("hit {} repeated or out of order", h.id));
        }
        prev = d;
    }
    if let Some((id, s)) = m.iter().find(|(id, s)| !seen.contains(id.as_str()) && l2(q, &vec_of(id, **s)) < prev) {
        return Err(format!("{id}@{s} is closer than the last hit and was left out"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The writer's log

/// The writer's log as a reader (or the parent) reads it: the steps begun, and the LSNs of the
/// acknowledged ones.
#[derive(Default)]
struct Log {
    offset: u64,
    max_begun: u64,
    lsn: BTreeMap<u64, u64>,
}

impl Log {
    /// Reads the lines appended since the last time (a line not yet complete waits).
    fn refresh(&mut self, path: &Path) {
        let mut f = std::fs::File::open(path).expect("open the log");
        f.seek(SeekFrom::Start(self.offset)).expect("seek the log");
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).expect("read the log");
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else { return };
        self.offset += end as u64 + 1;
        for line in String::from_utf8_lossy(&buf[..end]).lines() {
            let mut w = line.split(' ');
            let (word, n, x) = (w.next(), w.next().and_then(|s| s.parse::<u64>().ok()), w.next().and_then(|s| s.parse::<u64>().ok()));
            match (word, n, x) {
                (Some("B"), Some(n), _) => self.max_begun = self.max_begun.max(n),
                (Some("A"), Some(n), Some(lsn)) => {
                    self.lsn.insert(n, lsn);
                }
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The writer

fn durability_of(name: &str) -> Durability {
    match name {
        "sync" => Durability::Sync,
        "group" => Durability::GroupCommit,
        "buffered" => Durability::Buffered,
        other => panic!("unknown durability {other}"),
    }
}

/// The state a store holds, checked record by record.
fn contents(e: &Engine) -> Model {
    let recs: Vec<Record> = e.iter().map(|r| r.expect("read the store")).collect();
    observe(&recs).unwrap_or_else(|err| panic!("the store holds a record no step wrote: {err}"))
}

/// Writer mode only (does nothing unless `MEMENTO_STRESS_WRITER` is set).
#[test]
fn stress_writer_child() {
    let Ok(path) = std::env::var(WRITER_ENV) else { return };
    let seed = env_u64(SEED_ENV).expect("the seed");
    let lifetime = Duration::from_secs(env_u64(CHILD_SECS_ENV).expect("the lifetime"));
    let log_path = std::env::var(LOG_ENV).expect("the log");
    let mode = std::env::var(MODE_ENV).expect("the durability");
    let mut log = std::fs::OpenOptions::new().append(true).open(&log_path).expect("writer: open the log");
    let mut out = std::io::stdout().lock();
    let mut say = |s: String| {
        // One write per line, so that a reader of the log never sees half a line (a kill
        // cannot cut a small write to a regular file in two).
        log.write_all(format!("{s}\n").as_bytes()).expect("writer: log");
        writeln!(out, "{TAG} {s}").expect("writer: stdout");
        out.flush().expect("writer: flush");
    };
    // A failure of the writer (a panic below: an error the engine returned) is reported on
    // stdout at once, before the parent's next kill can come while the panic unwinds.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        println!("{TAG} FAIL {}", info.to_string().replace('\n', " "));
        let _ = std::io::stdout().flush();
        default_hook(info);
    }));
    let t = Instant::now();
    // A stale lock of the killed writer would fail this at once (`Error::Locked`).
    let engine = Engine::builder(&path).create(false).durability(durability_of(&mode)).wal_limit(WAL_LIMIT).open().expect("writer: open");
    let opened = t.elapsed();
    let mut model = contents(&engine);
    let at = clock(&model);
    let want = replay(seed, at);
    assert!(model == want, "writer: the store at step {at} is not the state after it: {}", diff(&model, &want));
    say(format!("R {at} {}", opened.as_micros()));
    // What recovery did at this open (and, below, what the engine notes later: a mirror
    // rebuilt after damage, an automatic compaction that failed).
    let mut notes = 0;
    let mut note = |e: &Engine, say: &mut dyn FnMut(String)| {
        let r = e.stats().recovery;
        for n in &r[notes.min(r.len())..] {
            say(format!("N {}", n.replace('\n', " ")));
        }
        notes = r.len();
    };
    note(&engine, &mut say);
    let end = Instant::now() + lifetime;
    let mut n = at + 1;
    while Instant::now() < end {
        let ops = gen_step(seed, n, &model);
        let mut b = WriteBatch::new();
        for op in &ops {
            match op {
                Op::Add(id) => b.add(record_of(id, n)),
                Op::Upsert(id) => b.upsert(record_of(id, n)),
                Op::Delete(id) => b.delete(id.clone()),
            };
        }
        let dead = engine.stats().deleted;
        say(format!("B {n}"));
        let info = engine.write(b).unwrap_or_else(|e| panic!("writer: step {n}: {e}"));
        let lsn = info.lsn.unwrap_or_else(|| panic!("writer: step {n} committed nothing"));
        say(format!("A {n} {lsn}"));
        apply(&mut model, n, &ops);
        note(&engine, &mut say);
        // Dead slots only ever go down by a compaction.
        if engine.stats().deleted < dead {
            say(format!("AC {n}"));
        }
        match action(seed, n) {
            Action::Nothing => {}
            Action::Checkpoint => {
                let dead = engine.stats().deleted;
                say(format!("KS {n}"));
                engine.checkpoint().unwrap_or_else(|e| panic!("writer: checkpoint after step {n}: {e}"));
                say(format!("KE {n}"));
                if engine.stats().deleted < dead {
                    say(format!("AC {n}"));
                }
            }
            Action::Compact => {
                say(format!("CS {n}"));
                let c = engine.compact().unwrap_or_else(|e| panic!("writer: compaction after step {n}: {e}"));
                say(format!("CE {n} {} {} {} {}", c.duration.as_micros(), c.live, c.dropped, c.bytes_before - c.bytes_after));
            }
        }
        n += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// The readers

/// The one error a reader may give (follow.rs: the store kept changing between the steps of
/// a snapshot; try again).
fn documented(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::WouldBlock)
}

#[derive(Debug, Default)]
struct ReaderFigures {
    states: u64,
    gets: u64,
    searches: u64,
    lsn_checked: u64,
    busy: u64,
    other_errors: u64,
    inconsistent: u64,
    first_step: Option<u64>,
    last_step: u64,
}

struct Checker {
    seed: u64,
    replay: Replay,
    log: Log,
    log_path: PathBuf,
    fig: ReaderFigures,
    /// The newest step this reader has seen: no later answer may come from an older state.
    seen: u64,
    id: u64,
}

impl Checker {
    fn fail(&mut self, what: String) {
        self.fig.inconsistent += 1;
        if self.fig.inconsistent <= 10 {
            eprintln!("STRESS reader {} (seed {:#x}): INCONSISTENT: {what}", self.id, self.seed);
        }
    }

    /// A step a snapshot showed: not older than the last one seen, begun by the writer.
    fn step_seen(&mut self, s: u64, what: &str) -> bool {
        if s < self.seen {
            self.fail(format!("{what}: went back from step {} to step {s}", self.seen));
            return false;
        }
        if s > self.log.max_begun {
            self.log.refresh(&self.log_path);
            if s > self.log.max_begun {
                let max = self.log.max_begun;
                self.fail(format!("{what}: step {s}, which the writer never began (the log's last is {max})"));
                return false;
            }
        }
        self.seen = s;
        self.fig.first_step.get_or_insert(s);
        self.fig.last_step = s;
        true
    }

    /// A whole state (`get_where({})`), with the reader's LSN before and after it.
    fn state(&mut self, recs: &[Record], lsn_before: u64, lsn_after: u64) {
        self.fig.states += 1;
        let got = match observe(recs) {
            Ok(m) => m,
            Err(e) => return self.fail(format!("get_where: {e}")),
        };
        let s = clock(&got);
        if !self.step_seen(s, "get_where") {
            return;
        }
        let want = self.replay.at(s).expect("within the window");
        if got != *want {
            let d = diff(&got, want);
            return self.fail(format!("get_where at step {s} ({} records): not the state after step {s}: {d}", got.len()));
        }
        if s > 0 {
            if !self.log.lsn.contains_key(&s) {
                self.log.refresh(&self.log_path);
            }
            if let Some(&lsn) = self.log.lsn.get(&s) {
                self.fig.lsn_checked += 1;
                if !(lsn_before..=lsn_after).contains(&lsn) {
                    self.fail(format!("get_where at step {s}, whose commit LSN is {lsn}, between reader LSNs {lsn_before} and {lsn_after}"));
                }
            }
        }
        self.replay.forget_before(self.seen);
    }

    /// An answer that may come from any state from the step seen before to `after` (the step
    /// a read of the clock gave just after it): true if one of them explains it.
    fn some_state(&mut self, after: u64, what: &str, ok: impl Fn(&Model) -> Result<(), String>) {
        let before = self.seen;
        if !self.step_seen(after, what) {
            return;
        }
        let mut last = String::new();
        for s in before..=after {
            match ok(self.replay.at(s).expect("within the window")) {
                Ok(()) => {
                    self.replay.forget_before(self.seen);
                    return;
                }
                Err(e) => last = format!("at step {s}: {e}"),
            }
        }
        self.fail(format!("{what}: no state from step {before} to step {after} gives this answer (last: {last})"));
    }
}

/// Reader mode only (does nothing unless `MEMENTO_STRESS_READER` is set).
#[test]
fn stress_reader_child() {
    let Ok(path) = std::env::var(READER_ENV) else { return };
    let seed = env_u64(SEED_ENV).expect("the seed");
    let secs = env_u64(CHILD_SECS_ENV).expect("the duration");
    let id: u64 = std::env::var("MEMENTO_STRESS_READER_ID").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let log_path = PathBuf::from(std::env::var(LOG_ENV).expect("the log"));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut c = Checker { seed, replay: Replay::new(seed), log: Log::default(), log_path, fig: ReaderFigures::default(), seen: 0, id };
    let mut rng = Rng::new(seed ^ (id + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    // Counts a documented error and tells the loop to go on; any other is a failure.
    let bad = |e: Error, fig: &mut ReaderFigures, what: &str| {
        if documented(&e) {
            fig.busy += 1;
        } else {
            fig.other_errors += 1;
            if fig.other_errors <= 10 {
                eprintln!("STRESS reader {id}: ERROR in {what}: {e:?}");
            }
        }
    };
    let reader = loop {
        match Engine::open_read_only(&path) {
            Ok(r) => break r,
            Err(e) => bad(e, &mut c.fig, "open_read_only"),
        }
        assert!(Instant::now() < deadline, "reader {id}: could not open the store");
    };
    let all = Filter::from_json_str("{}").expect("filter");
    let clock_step = |r: &Engine| -> Result<Result<u64, String>, Error> { Ok(r.get(CLOCK)?.map_or(Ok(0), |rec| step_of(&rec))) };
    while Instant::now() < deadline {
        // 1. The whole state.
        let before = reader.stats().last_lsn;
        match reader.get_where(&all, None) {
            Ok(recs) => {
                let after = reader.stats().last_lsn;
                c.state(&recs, before, after);
            }
            Err(e) => bad(e, &mut c.fig, "get_where"),
        }
        // 2. One record, then the clock.
        let key = if rng.chance(1, 10) { CLOCK.to_string() } else { format!("k{}", rng.below(IDS)) };
        match reader.get(&key).and_then(|g| Ok((g, clock_step(&reader)?))) {
            Ok((g, Ok(after))) => {
                c.fig.gets += 1;
                let got = g.as_ref().map(step_of).transpose();
                c.some_state(after, &format!("get({key}) = {:?}", got), |m| match &got {
                    Err(e) => Err(e.clone()),
                    Ok(s) if m.get(&key) == s.as_ref() => Ok(()),
                    Ok(_) => Err(format!("{key} is {:?} there", m.get(&key))),
                });
            }
            Ok((_, Err(e))) => c.fail(format!("get(clock): {e}")),
            Err(e) => bad(e, &mut c.fig, "get"),
        }
        // 3. A search, then the clock.
        let q: Vec<f32> = (0..DIM).map(|_| (rng.below(65) as f32 - 32.0) / 4.0).collect();
        match reader.search(&q, K, None).and_then(|h| Ok((h, clock_step(&reader)?))) {
            Ok((hits, Ok(after))) => {
                c.fig.searches += 1;
                let ids: Vec<String> = hits.iter().map(|h| format!("{}:{}", h.id, h.distance)).collect();
                c.some_state(after, &format!("search({q:?}) = {ids:?}"), |m| check_hits(m, &q, &hits));
            }
            Ok((_, Err(e))) => c.fail(format!("get(clock): {e}")),
            Err(e) => bad(e, &mut c.fig, "search"),
        }
    }
    let f = &c.fig;
    println!(
        "{DONE} states={} gets={} searches={} lsn_checked={} busy={} other_errors={} inconsistent={} first_step={} last_step={}",
        f.states,
        f.gets,
        f.searches,
        f.lsn_checked,
        f.busy,
        f.other_errors,
        f.inconsistent,
        f.first_step.unwrap_or(0),
        f.last_step
    );
    std::io::stdout().flush().expect("stdout");
}

// ---------------------------------------------------------------------------------------------
// The parent

fn child(test: &str, envs: &[(&str, String)]) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("current_exe"));
    c.args(["--exact", test, "--nocapture", "--test-threads=1"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

fn spawn_writer(store: &Path, log: &Path, seed: u64, mode: &str, secs: u64) -> (Killed, mpsc::Receiver<String>) {
    let envs = [
        (WRITER_ENV, store.display().to_string()),
        (LOG_ENV, log.display().to_string()),
        (SEED_ENV, seed.to_string()),
        (MODE_ENV, mode.to_string()),
        (CHILD_SECS_ENV, secs.to_string()),
    ];
    let mut w = Killed(child("stress_writer_child", &envs).spawn().expect("spawn the writer"));
    let rx = w.tagged_lines(TAG);
    (w, rx)
}

/// What the writer's stdout gave.
enum Next {
    Line(String),
    Timeout,
    Ended,
}

/// When to kill the writer.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// This long after it reported it had opened the store.
    After(Duration),
    /// At its next explicit compaction, after a random part of how long they take.
    InCompaction,
    /// At a commit after this many acknowledgements, early in it.
    InCommit(u64),
}

#[derive(Debug, Default)]
struct Figures {
    kills: u64,
    restarts: u64,
    steps_acked: u64,
    /// Where the kills landed (by the last line the writer wrote).
    landed: BTreeMap<&'static str, u64>,
    plans: BTreeMap<&'static str, u64>,
    explicit_compactions: u64,
    auto_compactions: u64,
    explicit_checkpoints: u64,
    /// Kills whose last line was `CS` (inside an explicit compaction).
    compactions_interrupted: u64,
    /// Kills that left a compaction's `memento.vec.new` behind.
    vec_new_left: u64,
    /// Restarts that found the in-flight step committed.
    in_flight_committed: u64,
    max_open_us: u64,
    /// What the writer's engine noted in `Stats::recovery` (by their first words).
    recovery_notes: BTreeMap<String, u64>,
    /// The writer processes that ended by themselves (a panic: an error the writer met).
    writer_failures: Vec<String>,
}

/// What the parent follows of the writer's lines, across its restarts.
#[derive(Debug, Default)]
struct Progress {
    acked: u64,
    begun: u64,
    last_line: String,
    /// Moving averages in µs: a compaction, a step.
    compaction_us: f64,
    step_us: f64,
    last_ack_at: Option<Instant>,
    /// The step begun when the writer reported a failure.
    failed_in: Option<u64>,
}

impl Progress {
    fn take(&mut self, line: &str, fig: &mut Figures) {
        let mut w = line.split(' ');
        let word = w.next().unwrap_or("");
        let n = w.next().and_then(|s| s.parse::<u64>().ok());
        match (word, n) {
            ("R", Some(s)) => {
                // The restart resumes at the last acknowledged step or at the one in flight.
                assert!(
                    s == self.acked || (s == self.acked + 1 && self.begun == s),
                    "the writer restarted at step {s}, but the last acknowledged step is {} and the last begun {}",
                    self.acked,
                    self.begun
                );
                fig.in_flight_committed += u64::from(s > self.acked);
                if let Some(b) = self.failed_in.take() {
                    let held = if s == b { "is" } else { "is not" };
                    eprintln!("STRESS: the writer failed with step {b} the last begun; restarted at step {s}: step {b} {held} in the store");
                }
                self.acked = s;
                self.begun = self.begun.max(s);
                fig.max_open_us = fig.max_open_us.max(w.next().and_then(|x| x.parse().ok()).unwrap_or(0));
            }
            ("B", Some(n)) => {
                assert_eq!(n, self.acked + 1, "the writer began step {n} after step {}", self.acked);
                self.begun = n;
            }
            ("A", Some(n)) => {
                assert_eq!(n, self.begun, "acknowledgement of step {n} while step {} was begun", self.begun);
                self.acked = n;
                fig.steps_acked += 1;
                let now = Instant::now();
                if let Some(t) = self.last_ack_at.replace(now) {
                    let us = now.duration_since(t).as_micros() as f64;
                    self.step_us = if self.step_us == 0.0 { us } else { 0.9 * self.step_us + 0.1 * us };
                }
            }
            ("AC", Some(_)) => fig.auto_compactions += 1,
            ("KS", Some(_)) | ("CS", Some(_)) => {}
            ("N", _) => {
                let note = line[2..].to_string();
                if !note.starts_with("dropped") {
                    // A torn WAL tail after a kill is routine; the rest is worth a line.
                    eprintln!("STRESS: the writer's engine notes: {note}");
                }
                let key: String = note.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
                *fig.recovery_notes.entry(key).or_default() += 1;
                return;
            }
            ("KE", Some(_)) => fig.explicit_checkpoints += 1,
            ("CE", Some(_)) => {
                fig.explicit_compactions += 1;
                if let Some(us) = w.next().and_then(|x| x.parse::<f64>().ok()) {
                    self.compaction_us = if self.compaction_us == 0.0 { us } else { 0.8 * self.compaction_us + 0.2 * us };
                }
            }
            ("FAIL", _) => {
                eprintln!("STRESS: the writer failed: {line}");
                fig.writer_failures.push(line.to_string());
                self.failed_in = Some(self.begun);
                return;
            }
            _ => panic!("the writer reported {line:?}"),
        }
        self.last_line = line.to_string();
    }
}

#[test]
fn stress_one_writer_killed_and_four_readers() {
    if std::env::var(WRITER_ENV).is_ok() || std::env::var(READER_ENV).is_ok() {
        return;
    }
    let seed = env_u64("MEMENTO_SEED").unwrap_or(DEFAULT_SEED);
    let secs = env_u64("MEMENTO_STRESS_SECS").unwrap_or(DEFAULT_SECS);
    let ctx = format!("seed {seed:#x} (rerun with MEMENTO_SEED={seed:#x} MEMENTO_STRESS_SECS={secs})");
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let log = tmp.path().join("log");
    std::fs::write(&log, "").expect("create the log");
    Engine::builder(&store).dimension(DIM).metric(Metric::L2).page_size(PAGE_SIZE).wal_limit(WAL_LIMIT).open().expect("create").close().expect("close");

    let modes = ["sync", "group", "buffered"];
    let mut rng = Rng::new(seed);
    let mut fig = Figures::default();
    let mut prog = Progress::default();
    let (mut writer, mut rx) = spawn_writer(&store, &log, seed, modes[0], secs + 120);
    let readers: Vec<Killed> = (0..READERS)
        .map(|i| {
            let envs = [
                (READER_ENV, store.display().to_string()),
                (LOG_ENV, log.display().to_string()),
                (SEED_ENV, seed.to_string()),
                (CHILD_SECS_ENV, secs.to_string()),
                ("MEMENTO_STRESS_READER_ID", i.to_string()),
            ];
            Killed(child("stress_reader_child", &envs).spawn().expect("spawn a reader"))
        })
        .collect();
    let deadline = started + Duration::from_secs(secs);
    let next_line = |rx: &mpsc::Receiver<String>, until: Instant| -> Next {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(l) => Next::Line(l),
            Err(mpsc::RecvTimeoutError::Timeout) => Next::Timeout,
            Err(mpsc::RecvTimeoutError::Disconnected) => Next::Ended,
        }
    };
    while Instant::now() < deadline && fig.writer_failures.len() < 10 {
        let plan = match rng.below(10) {
            0..4 => Plan::After(Duration::from_millis(300 + rng.below(1200))),
            4..8 => Plan::InCompaction,
            _ => Plan::InCommit(5 + rng.below(100)),
        };
        *fig.plans
            .entry(match plan {
                Plan::After(_) => "after 0.3 to 1.5 s",
                Plan::InCompaction => "inside an explicit compaction (aimed)",
                Plan::InCommit(_) => "inside a commit (aimed)",
            })
            .or_default() += 1;
        // Wait for the writer to have opened the store, then for the plan's moment. A writer
        // that ends by itself (it failed: its stderr says how) is counted and restarted.
        let open_by = Instant::now() + Duration::from_secs(60);
        let mut ended = false;
        loop {
            match next_line(&rx, open_by) {
                Next::Line(line) => {
                    prog.take(&line, &mut fig);
                    if line.starts_with("R ") {
                        break;
                    }
                }
                Next::Timeout => panic!("{ctx}: the writer did not open the store within a minute"),
                Next::Ended => {
                    ended = true;
                    break;
                }
            }
        }
        let opened = Instant::now();
        let acked_at_open = prog.acked;
        // Every plan falls back to a kill after 3 s at most (or at the deadline).
        let fallback = (opened + Duration::from_secs(3)).min(deadline.max(opened + Duration::from_millis(300)));
        let mut delay = Duration::ZERO;
        while !ended {
            let until = match plan {
                Plan::After(d) => (opened + d).min(fallback),
                _ => fallback,
            };
            let line = match next_line(&rx, until) {
                Next::Line(line) => line,
                Next::Timeout => break,
                Next::Ended => {
                    ended = true;
                    break;
                }
            };
            prog.take(&line, &mut fig);
            let progressed = prog.acked >= acked_at_open + 5;
            match plan {
                Plan::InCompaction if progressed && line.starts_with("CS ") => {
                    delay = Duration::from_micros(rng.below((prog.compaction_us as u64).max(200)));
                    break;
                }
                Plan::InCommit(k) if prog.acked >= acked_at_open + k && line.starts_with("B ") => {
                    delay = Duration::from_micros(rng.below((prog.step_us as u64 / 2).max(100)));
                    break;
                }
                _ => {}
            }
        }
        if !ended {
            std::thread::sleep(delay);
            writer.0.kill().expect("kill -9 the writer");
        }
        let status = writer.0.wait().expect("wait for the writer");
        for line in rx.iter() {
            prog.take(&line, &mut fig);
        }
        if status.signal() != Some(9) {
            let what = format!("the writer ended by itself with {status:?} after the line {:?}", prog.last_line);
            eprintln!("STRESS {ctx}: {what}");
            fig.writer_failures.push(what);
            fig.restarts += 1;
            (writer, rx) = spawn_writer(&store, &log, seed, modes[(fig.restarts % 3) as usize], secs + 120);
            continue;
        }
        fig.kills += 1;
        let landed = match prog.last_line.split(' ').next().unwrap_or("") {
            "B" => "inside a commit",
            "CS" => "inside an explicit compaction",
            "KS" => "inside an explicit checkpoint",
            "R" | "A" | "AC" | "KE" | "CE" => "between steps",
            _ => "while opening",
        };
        *fig.landed.entry(landed).or_default() += 1;
        fig.compactions_interrupted += u64::from(landed == "inside an explicit compaction");
        fig.vec_new_left += u64::from(store.join(format!("{}.new", memento::files::VECTORS)).exists());
        if Instant::now() < deadline {
            // The restart (its open) proves the kill left no stale lock.
            fig.restarts += 1;
            (writer, rx) = spawn_writer(&store, &log, seed, modes[(fig.restarts % 3) as usize], secs + 120);
        }
    }
    drop(writer);

    // The readers.
    let mut totals = ReaderFigures::default();
    let mut per_reader = Vec::new();
    for (i, mut r) in readers.into_iter().enumerate() {
        let stdout = r.0.stdout.take().expect("piped stdout");
        let mut text = String::new();
        BufReader::new(stdout).read_to_string(&mut text).expect("a reader's output");
        let status = r.0.wait().expect("wait for a reader");
        assert!(status.success(), "{ctx}: reader {i} failed: {status:?} (signal {:?}; see its stderr): {text}", status.signal());
        let line = text.split(DONE).nth(1).unwrap_or_else(|| panic!("{ctx}: no figures from reader {i}: {text}"));
        let get = |k: &str| -> u64 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{ctx}: reader {i} gave no {k}: {line}"))
        };
        let f = ReaderFigures {
            states: get("states"),
            gets: get("gets"),
            searches: get("searches"),
            lsn_checked: get("lsn_checked"),
            busy: get("busy"),
            other_errors: get("other_errors"),
            inconsistent: get("inconsistent"),
            first_step: Some(get("first_step")),
            last_step: get("last_step"),
        };
        totals.states += f.states;
        totals.gets += f.gets;
        totals.searches += f.searches;
        totals.lsn_checked += f.lsn_checked;
        totals.busy += f.busy;
        totals.other_errors += f.other_errors;
        totals.inconsistent += f.inconsistent;
        per_reader.push(f);
    }

    // The store after it all: a writer opens it at once, it is whole, and it holds the state
    // of the last acknowledged step or of the one in flight.
    let t = Instant::now();
    let e = Engine::open(&store).unwrap_or_else(|err| panic!("{ctx}: open at the end: {err}"));
    let open_ms = t.elapsed().as_millis();
    e.check_integrity().unwrap_or_else(|err| panic!("{ctx}: integrity at the end: {err}"));
    let got = contents(&e);
    let acked = replay(seed, prog.acked);
    let final_step = if got == acked {
        prog.acked
    } else {
        assert!(prog.begun > prog.acked, "{ctx}: the store is not the state after step {}: {}", prog.acked, diff(&got, &acked));
        let in_flight = replay(seed, prog.begun);
        assert!(got == in_flight, "{ctx}: the store is neither the state after step {} nor after step {}: {}", prog.acked, prog.begun, diff(&got, &in_flight));
        prog.begun
    };
    let leftovers: Vec<String> = std::fs::read_dir(&store)
        .expect("list the store")
        .map(|d| d.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".new"))
        .collect();
    assert!(leftovers.is_empty(), "{ctx}: left after the open: {leftovers:?}");
    let stats = e.stats();
    e.close().expect("close");

    let elapsed = started.elapsed().as_secs_f64();
    let answers = totals.states + totals.gets + totals.searches;
    println!("stress, {ctx}: {elapsed:.1} s, {READERS} reader processes, final step {final_step} ({} records, {} slots)", stats.count, stats.slots);
    println!(
        "  reader answers checked: {answers} ({} whole states, {} gets, {} searches; {} snapshot LSNs checked against the writer's log)",
        totals.states, totals.gets, totals.searches, totals.lsn_checked
    );
    for (i, f) in per_reader.iter().enumerate() {
        println!(
            "    reader {i}: {} states, {} gets, {} searches, steps {} to {}, {} documented busy errors",
            f.states,
            f.gets,
            f.searches,
            f.first_step.unwrap_or(0),
            f.last_step,
            f.busy
        );
    }
    println!("  inconsistent answers: {}; reader errors: {} documented (busy), {} other", totals.inconsistent, totals.busy, totals.other_errors);
    println!(
        "  writer: {} steps acknowledged, {} kills (SIGKILL), {} restarts (max open {} ms), {} restarts found the in-flight step committed",
        fig.steps_acked,
        fig.kills,
        fig.restarts,
        fig.max_open_us / 1000,
        fig.in_flight_committed
    );
    println!("  kill plans: {:?}", fig.plans);
    println!("  kills landed: {:?}", fig.landed);
    println!(
        "  compactions completed: {} explicit + {} automatic; interrupted by a kill: {} (kills that left a memento.vec.new: {}); explicit checkpoints: {}",
        fig.explicit_compactions, fig.auto_compactions, fig.compactions_interrupted, fig.vec_new_left, fig.explicit_checkpoints
    );
    println!("  the writer's recovery notes: {:?}", fig.recovery_notes);
    println!("  final open as a writer: {open_ms} ms; writer processes that failed by themselves: {}", fig.writer_failures.len());

    assert!(fig.writer_failures.is_empty(), "{ctx}: {:?}", fig.writer_failures);
    assert_eq!(totals.inconsistent, 0, "{ctx}: readers gave answers that are no committed state (see their stderr)");
    assert_eq!(totals.other_errors, 0, "{ctx}: readers met errors other than the documented one (see their stderr)");
    for (i, f) in per_reader.iter().enumerate() {
        assert!(f.states + f.gets + f.searches > 100, "{ctx}: reader {i} checked only {} answers", f.states + f.gets + f.searches);
        assert!(f.last_step > f.first_step.unwrap_or(0), "{ctx}: reader {i} never saw the store change");
    }
    assert!(totals.lsn_checked > 0, "{ctx}: no snapshot LSN was checked against the log");
    assert!(fig.kills >= 3, "{ctx}: only {} kills", fig.kills);
    assert!(fig.explicit_compactions + fig.auto_compactions >= 1, "{ctx}: no compaction completed");
    assert!(fig.auto_compactions >= 1, "{ctx}: the store never compacted by itself");
}
