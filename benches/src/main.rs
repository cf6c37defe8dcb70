//! `memento-benches`: the Memento benchmark harness.
//!
//! Measures, on the filesystem that holds the stores:
//! - **disk**: sequential write bandwidth with an `fdatasync` after every 1,536,000-byte chunk
//!   (one 1,000 × 384 float32 batch: the ceiling for fsync-per-batch ingest), and raw
//!   sequential bandwidth (8 MiB writes, one fsync at the end);
//! - **ingest**: 100,000 × 384 unit Gaussian vectors in batches of 1,000 under each durability
//!   mode, on a fresh cosine store;
//! - **open time**: `Engine::open` + first `count()` on a checkpointed 100k and 1M store;
//! - **exact search**: k = 10 latency over the 100k (and 1M) store.
//!
//! It prints each section as it runs, then a Markdown summary table with the machine, the
//! commit and the date.
//!
//! ```text
//! cargo run --release -p memento-benches -- [--quick] [--dir PATH]
//! ```
//!
//! `--quick` skips the 1M store. `--dir` picks the parent directory of the scratch directory
//! (default: `target/bench-tmp` in the workspace); the scratch directory is removed at the end.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use memento::{Durability, Engine, Metric};
use memento_benches::{batch_from, build_store, ms, open_store, percentile, Rng, BATCH, DATA_SEED, DIM, QUERY_SEED};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const MIB: u64 = 1 << 20;
/// Bytes of one batch's vector payload: 1,000 × 384 × 4.
const CHUNK_SYNC: usize = BATCH * DIM * 4;
const CHUNK_SEQ: usize = 8 << 20;
const DISK_TOTAL: u64 = 256 * MIB;
const DISK_REPS: usize = 5;
const N_INGEST: usize = 100_000;
const INGEST_REPS: usize = 5;
/// WAL limit of the extra "no automatic checkpoint" ingest run: above the ~160 MB the run writes.
const BIG_WAL_LIMIT: u64 = 1 << 30;
const N_BIG: usize = 1_000_000;
const OPEN_REPS: usize = 20;
const QUERIES: usize = 200;
const QUERIES_BIG: usize = 50;
const K: usize = 10;
const MIN_FREE_BIG: u64 = 5 << 30;

/// Command-line options.
struct Opts {
    quick: bool,
    dir: Option<PathBuf>,
}

fn parse_args() -> BoxResult<Opts> {
    let mut o = Opts { quick: false, dir: None };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--dir" => o.dir = Some(PathBuf::from(args.next().ok_or("--dir needs a path")?)),
            "-h" | "--help" => {
                println!("usage: memento-benches [--quick] [--dir PATH]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    Ok(o)
}

/// One row of the summary table.
struct Row {
    what: String,
    value: String,
    target: String,
}

fn row(rows: &mut Vec<Row>, what: impl Into<String>, value: impl Into<String>, target: impl Into<String>) {
    rows.push(Row { what: what.into(), value: value.into(), target: target.into() });
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// a. Disk

/// Write `total` bytes in `chunk`-byte writes; `fdatasync` after each chunk when `sync_each`,
/// else once at the end (`fsync`). Returns the time including the syncs.
fn disk_write(path: &Path, total: u64, chunk: usize, sync_each: bool) -> BoxResult<(u64, Duration)> {
    let mut buf = vec![0u8; chunk];
    let mut rng = Rng::new(42);
    for c in buf.chunks_mut(8) {
        let r = rng.next_u64().to_le_bytes();
        c.copy_from_slice(&r[..c.len()]);
    }
    let n_chunks = total.div_ceil(chunk as u64);
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
    let t0 = Instant::now();
    for _ in 0..n_chunks {
        f.write_all(&buf)?;
        if sync_each {
            f.sync_data()?;
        }
    }
    if !sync_each {
        f.sync_all()?;
    }
    let t = t0.elapsed();
    drop(f);
    std::fs::remove_file(path)?;
    Ok((n_chunks * chunk as u64, t))
}

/// Median MB/s over [`DISK_REPS`] runs.
fn disk_bench(dir: &Path, chunk: usize, sync_each: bool) -> BoxResult<f64> {
    let mut rates = Vec::new();
    for i in 0..DISK_REPS {
        let (bytes, t) = disk_write(&dir.join(format!("disk-{i}.bin")), DISK_TOTAL, chunk, sync_each)?;
        let r = mb_s(bytes, t);
        println!("    run {}: {:.1} MB in {:.3} s = {r:.1} MB/s", i + 1, bytes as f64 / 1e6, t.as_secs_f64());
        rates.push(r);
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

// ---------------------------------------------------------------------------------------------
// b. Ingest

struct Ingest {
    write_time: Duration,
    close_time: Duration,
    batch_p50: Duration,
    batch_max: Duration,
    auto_checkpoints: usize,
}

fn ingest(dir: &Path, mode: Durability, wal_limit: Option<u64>, data: &[f32]) -> BoxResult<Ingest> {
    let n = data.len() / DIM;
    // Build every batch before timing: the clock covers the engine, not our allocations.
    let batches: Vec<_> = data.chunks(BATCH * DIM).enumerate().map(|(i, c)| batch_from(i * BATCH, c, DIM)).collect();
    let engine = match wal_limit {
        None => open_store(dir, mode)?,
        Some(l) => Engine::builder(dir).dimension(DIM).metric(Metric::Cosine).durability(mode).wal_limit(l).open()?,
    };
    let mut lat = Vec::with_capacity(batches.len());
    let mut auto_checkpoints = 0;
    let mut pending_before = 0u64;
    let t0 = Instant::now();
    for b in batches {
        let t = Instant::now();
        engine.write(b)?;
        lat.push(t.elapsed());
        // Cheap (two uncontended locks); tells us when a write ran a checkpoint.
        let pending = engine.stats().pending_vectors;
        if pending < pending_before {
            auto_checkpoints += 1;
        }
        pending_before = pending;
    }
    let write_time = t0.elapsed();
    let count = engine.count();
    if count != n as u64 {
        return Err(format!("after ingest the store counts {count} records, expected {n}").into());
    }
    let t1 = Instant::now();
    engine.close()?;
    let close_time = t1.elapsed();
    let batch_max = lat.iter().copied().max().unwrap_or_default();
    let batch_p50 = percentile(&mut lat, 50.0);
    Ok(Ingest { write_time, close_time, batch_p50, batch_max, auto_checkpoints })
}

// ---------------------------------------------------------------------------------------------
// c. Open time

/// Median and p90 of `Engine::open` + first `count()` over [`OPEN_REPS`] opens.
fn open_times(dir: &Path, expect: u64) -> BoxResult<(Duration, Duration, Duration)> {
    let mut t = Vec::with_capacity(OPEN_REPS);
    for _ in 0..OPEN_REPS {
        let t0 = Instant::now();
        let e = Engine::open(dir)?;
        let c = e.count();
        t.push(t0.elapsed());
        if c != expect {
            return Err(format!("reopened store counts {c}, expected {expect}").into());
        }
        if !e.stats().recovery.is_empty() {
            println!("    note: recovery at open: {:?}", e.stats().recovery);
        }
        e.close()?;
    }
    let first = t[0];
    Ok((percentile(&mut t, 50.0), percentile(&mut t, 90.0), first))
}

// ---------------------------------------------------------------------------------------------
// d. Search

/// p50 and p99 of k = 10 exact search over `n_queries` queries (after one warm-up query).
fn search_times(dir: &Path, n_queries: usize) -> BoxResult<(Duration, Duration, Duration)> {
    let e = Engine::open(dir)?;
    let queries = Rng::new(QUERY_SEED).unit_vectors(n_queries + 1, DIM);
    let mut qs = queries.chunks_exact(DIM);
    let warm = qs.next().ok_or("no queries")?;
    let t0 = Instant::now();
    let hits = e.search(warm, K, None)?;
    let warm_t = t0.elapsed();
    if hits.len() != K {
        return Err(format!("search returned {} hits, expected {K}", hits.len()).into());
    }
    let mut t = Vec::with_capacity(n_queries);
    for q in qs {
        let t0 = Instant::now();
        let h = e.search(q, K, None)?;
        t.push(t0.elapsed());
        std::hint::black_box(h);
    }
    e.close()?;
    Ok((percentile(&mut t, 50.0), percentile(&mut t, 99.0), warm_t))
}

// ---------------------------------------------------------------------------------------------
// Machine facts

fn cmd_out(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

fn mem_total_gib() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: f64 = l.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.1} GiB", kb / (1024.0 * 1024.0)))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Free bytes on the filesystem holding `p` (from `df -Pk`).
fn free_bytes(p: &Path) -> Option<u64> {
    let s = cmd_out("df", &["-Pk", &p.to_string_lossy()])?;
    let kb: u64 = s.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()?;
    Some(kb * 1024)
}

fn commit() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.to_string_lossy();
    match cmd_out("git", &["-C", &root, "rev-parse", "--short", "HEAD"]) {
        Some(h) => {
            // `git diff --quiet` exits 1 when the working tree differs from HEAD; it writes nothing.
            let dirty = Command::new("git").args(["-C", &root, "diff", "--quiet", "HEAD", "--"]).status().map(|s| s.code() == Some(1)).unwrap_or(false);
            if dirty {
                format!("{h} (with uncommitted changes)")
            } else {
                h
            }
        }
        None => "unknown".into(),
    }
}

/// The 1, 5 and 15-minute load averages: other work on the machine skews every figure here.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_else(|_| "unknown".into())
}

fn du(p: &Path) -> u64 {
    std::fs::read_dir(p).map(|rd| rd.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------

fn main() -> BoxResult<()> {
    let opts = parse_args()?;
    let parent = match &opts.dir {
        Some(d) => d.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).join("target").join("bench-tmp"),
    };
    std::fs::create_dir_all(&parent)?;
    let scratch = tempfile::Builder::new().prefix("run-").tempdir_in(&parent)?;
    let root = scratch.path().to_path_buf();
    let fs_type = cmd_out("findmnt", &["-n", "-o", "FSTYPE,SOURCE", "--target", &root.to_string_lossy()])
        .or_else(|| cmd_out("stat", &["-f", "-c", "%T", &root.to_string_lossy()]))
        .unwrap_or_else(|| "unknown".into());
    let started = cmd_out("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).unwrap_or_else(|| "unknown".into());
    let commit = commit();
    let load_start = loadavg();
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("# Memento benchmarks{}", if opts.quick { " (--quick)" } else { "" });
    println!("scratch dir: {} (filesystem: {fs_type})", root.display());
    println!("commit {commit}, {started}; {nproc} CPUs, {}, {}; load average {load_start}", cpu_model(), mem_total_gib());
    let mut rows: Vec<Row> = Vec::new();
    let mut anomalies: Vec<String> = Vec::new();

    // a. Disk
    println!("\n## a. Disk (same filesystem as the stores)");
    println!(
        "  method: write {} MiB to a new file in {CHUNK_SYNC}-byte chunks (one 1,000 x {DIM} f32 batch), fdatasync after each chunk; median of {DISK_REPS} runs",
        DISK_TOTAL / MIB
    );
    let disk_sync = match disk_bench(&root, CHUNK_SYNC, true) {
        Ok(r) => {
            println!("  fsync-per-chunk: {r:.1} MB/s");
            row(&mut rows, "disk: 1.5 MB chunks + fdatasync each", format!("{r:.0} MB/s"), "");
            Some(r)
        }
        Err(e) => {
            anomalies.push(format!("disk fsync-per-chunk test failed: {e}"));
            None
        }
    };
    println!("  method: write {} MiB to a new file in 8 MiB chunks, one fsync at the end (included); median of {DISK_REPS} runs", DISK_TOTAL / MIB);
    let disk_seq = match disk_bench(&root, CHUNK_SEQ, false) {
        Ok(r) => {
            println!("  raw sequential: {r:.1} MB/s");
            row(&mut rows, "disk: 8 MiB chunks + one fsync", format!("{r:.0} MB/s"), "");
            Some(r)
        }
        Err(e) => {
            anomalies.push(format!("disk sequential test failed: {e}"));
            None
        }
    };

    // b. Ingest
    println!("\n## b. Ingest: {N_INGEST} x {DIM} unit Gaussian f32 (seed {DATA_SEED:#x}), batches of {BATCH}, fresh cosine store, default WAL limit (64 MiB)");
    let t = Instant::now();
    let data = Rng::new(DATA_SEED).unit_vectors(N_INGEST, DIM);
    println!("  generated the vectors in {:.1} s", t.elapsed().as_secs_f64());
    let payload = (N_INGEST * DIM * 4) as u64;
    let modes = [
        ("Sync", Durability::Sync, None),
        ("GroupCommit", Durability::GroupCommit, None),
        ("Buffered", Durability::Buffered, None),
        ("Sync, WAL limit 1 GiB", Durability::Sync, Some(BIG_WAL_LIMIT)),
    ];
    println!(
        "  {INGEST_REPS} rounds, modes interleaved (Sync, GroupCommit, Buffered, Sync with a 1 GiB WAL limit so no checkpoint runs during the writes, Sync, …), \
         each on a fresh store; the median round by write time is reported"
    );
    let mut results: Vec<Vec<Ingest>> = modes.iter().map(|_| Vec::new()).collect();
    let mut failed: Vec<bool> = vec![false; modes.len()];
    let mut store_100k: Option<PathBuf> = None;
    for round in 0..INGEST_REPS {
        for (mi, (name, mode, wal_limit)) in modes.iter().enumerate() {
            if failed[mi] {
                continue;
            }
            let dir = root.join(format!("ingest-{mi}-{round}"));
            match ingest(&dir, *mode, *wal_limit, &data) {
                Ok(r) => {
                    println!(
                        "    round {} {name:<21} writes {:.3} s ({:.0} vectors/s), close {:.3} s, batch p50 {:.2} ms, max {:.1} ms, {} automatic checkpoints, store {:.0} MB",
                        round + 1,
                        r.write_time.as_secs_f64(),
                        N_INGEST as f64 / r.write_time.as_secs_f64(),
                        r.close_time.as_secs_f64(),
                        ms(r.batch_p50),
                        ms(r.batch_max),
                        r.auto_checkpoints,
                        du(&dir) as f64 / 1e6
                    );
                    results[mi].push(r);
                    if *mode == Durability::Buffered && wal_limit.is_none() && store_100k.is_none() {
                        store_100k = Some(dir);
                    } else {
                        std::fs::remove_dir_all(&dir)?;
                    }
                }
                Err(e) => {
                    println!("    round {} {name}: FAILED: {e}", round + 1);
                    anomalies.push(format!("ingest under {name} failed: {e}"));
                    row(&mut rows, format!("ingest {name}"), "FAILED", "");
                    failed[mi] = true;
                }
            }
        }
    }
    for ((name, mode, wal_limit), mut rs) in modes.iter().zip(results) {
        if rs.is_empty() {
            continue;
        }
        rs.sort_by_key(|r| r.write_time);
        let (lo, hi) = (N_INGEST as f64 / rs[rs.len() - 1].write_time.as_secs_f64(), N_INGEST as f64 / rs[0].write_time.as_secs_f64());
        let r = &rs[rs.len() / 2];
        let vps = N_INGEST as f64 / r.write_time.as_secs_f64();
        let mbs = mb_s(payload, r.write_time);
        let total = r.write_time + r.close_time;
        let vps_total = N_INGEST as f64 / total.as_secs_f64();
        let ratio = disk_sync.map(|d| mbs / d * 100.0);
        let ratio_seq = disk_seq.map(|d| mbs / d * 100.0);
        let fmt_pct = |p: Option<f64>| p.map_or("n/a".to_string(), |p| format!("{p:.0}%"));
        println!(
            "  {name:<21} median: writes {:.3} s = {vps:.0} vectors/s (range {lo:.0}–{hi:.0}), {mbs:.1} MB/s = {} of the fsync-per-chunk disk, {} of raw sequential; \
             close {:.3} s; incl. close {vps_total:.0} vectors/s",
            r.write_time.as_secs_f64(),
            fmt_pct(ratio),
            fmt_pct(ratio_seq),
            r.close_time.as_secs_f64(),
        );
        // The 1 GiB-WAL run is a diagnostic (it defers all checkpoint work to close()); the
        // targets apply to the default configuration.
        let durable = *mode != Durability::Buffered && wal_limit.is_none();
        let met = |ok: bool| {
            if !durable {
                ""
            } else if ok {
                " ✅"
            } else {
                " ❌"
            }
        };
        row(
            &mut rows,
            format!("ingest {name}: vectors/s, writes only (range of {INGEST_REPS})"),
            format!("{vps:.0} ({lo:.0}–{hi:.0}){}", met(vps >= 100_000.0)),
            if durable { "≥ 100,000 vectors/s" } else { "" },
        );
        row(
            &mut rows,
            format!("ingest {name}: MB/s (% of fsync-per-chunk disk / % of raw seq.)"),
            format!("{mbs:.0} ({} / {}){}", fmt_pct(ratio), fmt_pct(ratio_seq), met(ratio.is_some_and(|p| p >= 50.0))),
            if durable { "≥ 50% of disk" } else { "" },
        );
        row(&mut rows, format!("ingest {name}: close() (final checkpoint)"), format!("{:.0} ms", ms(r.close_time)), "");
        row(&mut rows, format!("ingest {name}: vectors/s incl. close()"), format!("{vps_total:.0}"), "");
        row(
            &mut rows,
            format!("ingest {name}: batch latency p50 / max; auto checkpoints"),
            format!("{:.2} / {:.1} ms; {}", ms(r.batch_p50), ms(r.batch_max), r.auto_checkpoints),
            "",
        );
    }
    drop(data);

    // c. Open time
    println!("\n## c. Open time: Engine::open(dir) + first count(), {OPEN_REPS} opens each, closed in between (page cache warm)");
    let store_100k = match store_100k {
        Some(d) => Some(d),
        None => {
            let d = root.join("store-100k");
            println!("  building the 100k store (Buffered)…");
            build_store(&d, N_INGEST, Durability::Buffered, &mut |_| {})
                .map(|_| d)
                .map_err(|e| anomalies.push(format!("building the 100k store failed: {e}")))
                .ok()
        }
    };
    if let Some(d) = &store_100k {
        println!("  100k store: the closed store of the first Buffered ingest round, {:.0} MB", du(d) as f64 / 1e6);
        match open_times(d, N_INGEST as u64) {
            Ok((p50, p90, first)) => {
                println!("  100k: median {:.2} ms, p90 {:.2} ms (first open {:.2} ms)", ms(p50), ms(p90), ms(first));
                row(&mut rows, "open 100k: median / p90", format!("{:.2} / {:.2} ms", ms(p50), ms(p90)), "");
            }
            Err(e) => anomalies.push(format!("opening the 100k store failed: {e}")),
        }
    }
    let mut store_1m: Option<PathBuf> = None;
    if opts.quick {
        println!("  1M: skipped (--quick)");
        row(&mut rows, "open 1M: median / p90", "skipped (--quick)", "< 100 ms");
    } else {
        let free = free_bytes(&root);
        match free {
            Some(f) if f < MIN_FREE_BIG => {
                println!("  1M: skipped: only {:.1} GB free, need 5 GiB", f as f64 / 1e9);
                row(&mut rows, "open 1M: median / p90", "skipped (low disk space)", "< 100 ms");
            }
            _ => {
                let d = root.join("store-1m");
                println!("  building the 1M x {DIM} store (Sync: one fdatasync per batch of {BATCH}, automatic checkpoints included; then close)…");
                let t = Instant::now();
                let mut last_report = Instant::now();
                let built = build_store(&d, N_BIG, Durability::Sync, &mut |done| {
                    if last_report.elapsed() > Duration::from_secs(20) {
                        println!("    {done} written, {:.0} s", t.elapsed().as_secs_f64());
                        last_report = Instant::now();
                    }
                });
                match built {
                    Ok(bt) => {
                        let wall = t.elapsed();
                        let vps = N_BIG as f64 / bt.write.as_secs_f64();
                        println!(
                            "  built in {:.1} s wall (vector generation included), {:.0} MB on disk; engine writes {:.2} s = {vps:.0} vectors/s, \
                             of which {:.2} s in the {} writes that ran an automatic checkpoint; close {:.3} s",
                            wall.as_secs_f64(),
                            du(&d) as f64 / 1e6,
                            bt.write.as_secs_f64(),
                            bt.checkpointing_writes.as_secs_f64(),
                            bt.auto_checkpoints,
                            bt.close.as_secs_f64()
                        );
                        let met = if vps >= 100_000.0 { " ✅" } else { " ❌" };
                        let pct = |d: Option<f64>| d.map_or("n/a".to_string(), |d| format!("{:.0}%", mb_s((N_BIG * DIM * 4) as u64, bt.write) / d * 100.0));
                        row(
                            &mut rows,
                            "sustained durable ingest, 1M Sync (building the 1M store): vectors/s, checkpoints included",
                            format!(
                                "{vps:.0}{met} ({:.0}% of write time in {} auto checkpoints)",
                                bt.checkpointing_writes.as_secs_f64() / bt.write.as_secs_f64() * 100.0,
                                bt.auto_checkpoints
                            ),
                            "≥ 100,000 vectors/s",
                        );
                        row(
                            &mut rows,
                            "sustained durable ingest, 1M Sync: MB/s (% of fsync-per-chunk disk / % of raw seq.)",
                            format!("{:.0} ({} / {})", mb_s((N_BIG * DIM * 4) as u64, bt.write), pct(disk_sync), pct(disk_seq)),
                            "≥ 50% of disk",
                        );
                        match open_times(&d, N_BIG as u64) {
                            Ok((p50, p90, first)) => {
                                println!("  1M: median {:.2} ms, p90 {:.2} ms (first open {:.2} ms)", ms(p50), ms(p90), ms(first));
                                let met = if p50 < Duration::from_millis(100) { " ✅" } else { " ❌" };
                                row(&mut rows, "open 1M: median / p90", format!("{:.2} / {:.2} ms{met}", ms(p50), ms(p90)), "< 100 ms");
                            }
                            Err(e) => anomalies.push(format!("opening the 1M store failed: {e}")),
                        }
                        store_1m = Some(d);
                    }
                    Err(e) => {
                        println!("  1M: FAILED to build: {e}");
                        anomalies.push(format!("building the 1M store failed: {e}"));
                    }
                }
            }
        }
    }

    // d. Search
    println!("\n## d. Exact search, k = {K}, unit Gaussian queries (seed {QUERY_SEED:#x}), after one warm-up query");
    if let Some(d) = &store_100k {
        match search_times(d, QUERIES) {
            Ok((p50, p99, warm)) => {
                let gbs = (N_INGEST * DIM * 4) as f64 / 1e9 / p50.as_secs_f64();
                println!(
                    "  100k: {QUERIES} queries, p50 {:.2} ms, p99 {:.2} ms, scan {gbs:.2} GB/s at p50 (warm-up query {:.1} ms)",
                    ms(p50),
                    ms(p99),
                    ms(warm)
                );
                row(&mut rows, "search 100k k=10: p50 / p99", format!("{:.2} / {:.2} ms", ms(p50), ms(p99)), "recorded");
                row(&mut rows, "search 100k: scan rate at p50", format!("{gbs:.2} GB/s"), "");
            }
            Err(e) => anomalies.push(format!("searching the 100k store failed: {e}")),
        }
    }
    if let Some(d) = &store_1m {
        match search_times(d, QUERIES_BIG) {
            Ok((p50, p99, warm)) => {
                let gbs = (N_BIG * DIM * 4) as f64 / 1e9 / p50.as_secs_f64();
                println!(
                    "  1M: {QUERIES_BIG} queries, p50 {:.1} ms, p99 {:.1} ms, scan {gbs:.2} GB/s at p50 (warm-up query {:.1} ms)",
                    ms(p50),
                    ms(p99),
                    ms(warm)
                );
                row(&mut rows, "search 1M k=10: p50 / p99", format!("{:.1} / {:.1} ms", ms(p50), ms(p99)), "");
                row(&mut rows, "search 1M: scan rate at p50", format!("{gbs:.2} GB/s"), "");
            }
            Err(e) => anomalies.push(format!("searching the 1M store failed: {e}")),
        }
    }

    // Summary
    println!("\n## Summary\n");
    println!("- machine: {nproc} CPUs, {}, {} RAM, kernel {}", cpu_model(), mem_total_gib(), cmd_out("uname", &["-r"]).unwrap_or_default());
    println!("- filesystem of the stores: {fs_type} ({})", parent.display());
    println!("- memento commit: {commit}");
    println!("- date: {started}");
    println!("- mode: {}", if opts.quick { "--quick" } else { "full" });
    println!("- load average (1, 5, 15 min) at start: {load_start}; at end: {}\n", loadavg());
    let w0 = rows.iter().map(|r| r.what.chars().count()).max().unwrap_or(0).max(7);
    let w1 = rows.iter().map(|r| r.value.chars().count()).max().unwrap_or(0).max(6);
    let w2 = rows.iter().map(|r| r.target.chars().count()).max().unwrap_or(0).max(6);
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    println!("| {} | {} | {} |", pad("measure", w0), pad("result", w1), pad("target", w2));
    println!("|{}|{}|{}|", "-".repeat(w0 + 2), "-".repeat(w1 + 2), "-".repeat(w2 + 2));
    for r in &rows {
        println!("| {} | {} | {} |", pad(&r.what, w0), pad(&r.value, w1), pad(&r.target, w2));
    }
    if !anomalies.is_empty() {
        println!("\nAnomalies:");
        for a in &anomalies {
            println!("- {a}");
        }
    }
    let scratch_path = scratch.path().to_path_buf();
    scratch.close()?;
    println!("\n(removed {})", scratch_path.display());
    // Remove target/bench-tmp itself when we created it and it is now empty.
    if opts.dir.is_none() {
        let _ = std::fs::remove_dir(&parent);
    }
    Ok(())
}
