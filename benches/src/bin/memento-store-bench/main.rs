//! `memento-store-bench`: issue 16's figures about a large store on disk, printed as a Markdown
//! table (progress goes to stderr).
//!
//! ```text
//! memento-store-bench [--n 1000000] [--dim 384] [--quick] [--dir DIR] [--runs 11] [--rounds 2]
//!     [--ingest-secs 3]
//! ```
//!
//! The data are the crate's seeded unit Gaussian vectors (`DATA_SEED`, record `v{i}` the
//! `i`-th), in a cosine store under `target/bench-data/store-bench/` (or `--dir`) on real disk.
//! The base store of `n` records is built once and reused while its completion marker is there;
//! each measurement that writes works on a copy, removed after it. The page cache is warm
//! throughout (nothing is evicted; each timed series has an untimed run first).
//!
//! 1. A reader's open → first answer: a fresh process per run (`first-answer`) opens the base
//!    store read-only and searches once (k = 10, the engine's default threads), with the store's
//!    writer open in another process (`writer-hold`) and with none.
//! 2. A reader's search latency (one thread) idle, then while another process (`ingest`)
//!    writes batches of 1,000 new vectors into the same store (a copy) as fast as it can.
//! 3. Compaction with 90% deleted, against a fresh store of the same live records: time,
//!    throughput, size on disk, search latency.
//! 4. The memory a compaction adds (90% and 10% deleted), sampled from `/proc/self/status` in
//!    the process that compacts (`compact`), which does nothing else.
//!
//! `writer-hold`, `first-answer`, `ingest` and `compact` are this binary's own child processes.

mod child;
mod measure;
mod memory;
mod store;

use std::path::PathBuf;

use memento_benches::args::{Args, BoxResult};

use measure::{Ctx, Row};

const USAGE: &str = "usage: memento-store-bench [--n 1000000] [--dim 384] [--quick] [--dir DIR] [--runs 11] [--rounds 2]
      [--ingest-secs 3]
  --quick: n = 100,000. The store goes under DIR (default target/bench-data/store-bench).";

/// The CPU's model name from `/proc/cpuinfo`.
fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with("model name"));
    line.and_then(|l| l.split(':').nth(1)).map_or_else(|| "unknown".into(), |m| m.trim().to_string())
}

/// The 1-minute load average (the machine is shared: other work skews the figures).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(str::to_string)).unwrap_or_default()
}

fn run(args: &Args, quick: bool) -> BoxResult<()> {
    args.check_known(&["n", "dim", "dir", "runs", "rounds", "ingest-secs"])?;
    let load_before = load_average();
    let n = args.num("n", if quick { 100_000 } else { 1_000_000 })?;
    let dim = args.num("dim", memento_benches::DIM)?;
    let root = PathBuf::from(args.get("dir").unwrap_or("target/bench-data/store-bench"));
    std::fs::create_dir_all(&root)?;
    let base = store::ensure_base(&root, n, dim)?;
    let ctx = Ctx {
        root,
        base,
        n,
        dim,
        runs: args.num("runs", 11)?.max(1),
        rounds: args.num("rounds", 2)?.max(1),
        ingest_window: std::time::Duration::from_secs(args.num("ingest-secs", 3)? as u64),
        queries: store::queries(store::QUERIES, dim),
    };
    let mut rows = Vec::new();
    eprintln!("1. open → first answer");
    measure::first_answer(&ctx, &mut rows)?;
    eprintln!("2. reader search while a process ingests");
    measure::reader_under_ingest(&ctx, &mut rows)?;
    eprintln!("3, 4. compactions");
    measure::compactions(&ctx, &mut rows)?;

    let cmd: Vec<String> = std::env::args().collect();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!("`{}`: {n} × {dim} seeded unit vectors, cosine, store on disk in {}, page cache warm", cmd.join(" "), ctx.root.display());
    println!("{cores} cores, {}; load average {load_before} at the start, {} at the end\n", cpu_model(), load_average());
    println!("| figure | value | target |\n|---|---|---|");
    for Row(figure, value, target) in rows {
        println!("| {figure} | {value} | {target} |");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut raw: Vec<String> = std::env::args().skip(1).collect();
    let cmd = if raw.first().is_some_and(|a| !a.starts_with("--")) { raw.remove(0) } else { "run".to_string() };
    // `--quick` is the one option without a value.
    let quick = raw.iter().any(|a| a == "--quick");
    raw.retain(|a| a != "--quick");
    let result = Args::parse(raw.into_iter(), USAGE).and_then(|args| match cmd.as_str() {
        "run" => run(&args, quick),
        "writer-hold" => child::writer_hold(&args),
        "first-answer" => child::first_answer(&args),
        "ingest" => child::ingest(&args),
        "compact" => child::compact(&args),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown subcommand {cmd:?}\n{USAGE}").into()),
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memento-store-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
