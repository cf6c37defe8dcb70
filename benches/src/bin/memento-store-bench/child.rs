//! The other processes of a measurement: this binary run again with a hidden subcommand, so a
//! reader and a writer really are separate processes (FORMAT.md §4.4), as in production, and a
//! reader's open is timed in a process that has never touched the store.
//!
//! A child that runs until told to stop (`writer-hold`, `ingest`) prints `ready` on stdout once
//! its writer is open and stops when its stdin reaches end of file (the parent drops the
//! pipe), so that nothing is left behind even if the parent dies.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memento::{CompactInfo, Engine, Record, WriteBatch};
use memento_benches::args::{Args, BoxResult};
use memento_benches::Rng;

use crate::memory::{Rss, Sampler};
use crate::store::queries;

/// Vectors per commit of the `ingest` child: the harness's ingest batch, a commit per 1,000.
const INGEST_BATCH: usize = memento_benches::BATCH;

/// A running child that waits for its stdin to close.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Running {
    /// Starts `memento-store-bench <args>` and waits for its `ready` line.
    pub fn start(args: &[&str]) -> BoxResult<Running> {
        let mut child = Command::new(std::env::current_exe()?).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or("the child has no stdout")?);
        let mut r = Running { child, stdin, stdout };
        let mut line = String::new();
        r.stdout.read_line(&mut line)?;
        if line.trim() != "ready" {
            let status = r.child.wait()?;
            return Err(format!("{args:?} did not start ({status}): {line:?}").into());
        }
        Ok(r)
    }

    /// Closes the child's stdin, waits for it to exit and returns the rest of its stdout.
    pub fn stop(mut self) -> BoxResult<String> {
        drop(self.stdin.take());
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest)?;
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("a child process failed ({status})").into());
        }
        Ok(rest)
    }
}

/// A flag set when stdin reaches end of file (read on a thread of its own).
fn stop_on_stdin_eof() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        flag.store(true, Ordering::SeqCst);
    });
    stop
}

fn ready() -> BoxResult<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    Ok(())
}

/// `writer-hold --dir D`: the store's writer, open and idle (with its lock, as an application
/// that has the store open) until stdin closes.
pub fn writer_hold(args: &Args) -> BoxResult<()> {
    args.check_known(&["dir"])?;
    let engine = Engine::builder(args.required("dir")?).create(false).auto_compact(None).open()?;
    ready()?;
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    engine.close()?;
    Ok(())
}

/// `first-answer --dir D --dim N`: a fresh process's time from before `open_read_only` to its
/// first k = 10 result, then a second search of the same query; prints the three durations
/// in nanoseconds. The query is made before the clock starts.
pub fn first_answer(args: &Args) -> BoxResult<()> {
    args.check_known(&["dir", "dim"])?;
    let dir = args.required("dir")?;
    let query = queries(1, args.num("dim", 384)?);
    let t0 = Instant::now();
    let engine = Engine::open_read_only(dir)?;
    let t1 = Instant::now();
    let hits = engine.search(&query, 10, None)?;
    let t2 = Instant::now();
    engine.search(&query, 10, None)?;
    let t3 = Instant::now();
    if hits.len() != 10 {
        return Err(format!("the first search returned {} hits", hits.len()).into());
    }
    println!("{} {} {}", (t1 - t0).as_nanos(), (t2 - t1).as_nanos(), (t3 - t2).as_nanos());
    Ok(())
}

/// The three timings of one `first-answer` child: open, first search, second search.
pub fn run_first_answer(dir: &Path, dim: usize) -> BoxResult<[Duration; 3]> {
    let out = Command::new(std::env::current_exe()?).args(["first-answer", "--dir", &dir.to_string_lossy(), "--dim", &dim.to_string()]).output()?;
    if !out.status.success() {
        return Err(format!("first-answer failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let ns: Vec<u64> = text.split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
    match ns[..] {
        [a, b, c] => Ok([Duration::from_nanos(a), Duration::from_nanos(b), Duration::from_nanos(c)]),
        _ => Err(format!("first-answer printed {text:?}").into()),
    }
}

/// `ingest --dir D --dim N`: the store's writer, adding batches of [`INGEST_BATCH`] new
/// records as fast as it can under the default durability (`Sync`) and automatic
/// checkpoints, until stdin closes; then prints the records added and the seconds spent
/// writing. The vectors cycle through a pool made before `ready`, so generating them costs
/// the writer nothing.
pub fn ingest(args: &Args) -> BoxResult<()> {
    args.check_known(&["dir", "dim"])?;
    let dim = args.num("dim", 384)?;
    let engine = Engine::builder(args.required("dir")?).create(false).open()?;
    let pool = Rng::new(0x696e_6765_7374).unit_vectors(16 * INGEST_BATCH, dim);
    let stop = stop_on_stdin_eof();
    ready()?;
    let started = Instant::now();
    let mut added = 0usize;
    let mut vectors = pool.chunks_exact(dim).cycle();
    while !stop.load(Ordering::SeqCst) {
        let mut batch = WriteBatch::new();
        for j in 0..INGEST_BATCH {
            batch.add(Record::new(format!("ingest{}", added + j), vectors.next().ok_or("empty pool")?.to_vec()));
        }
        engine.write(batch)?;
        added += INGEST_BATCH;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{added} {secs}");
    engine.close()?;
    Ok(())
}

/// `compact --dir D`: opens the store as its writer with automatic compaction off, runs
/// `compact()` once while a [`Sampler`] watches this process's memory, and prints the
/// [`CompactInfo`] and the memory before and at its peak. In a process of its own, so that
/// "before" is the resident set of an engine just opened, and no heap that earlier work in
/// the process freed (and the allocator kept) can hide the compaction's buffers.
pub fn compact(args: &Args) -> BoxResult<()> {
    args.check_known(&["dir"])?;
    let engine = Engine::builder(args.required("dir")?).create(false).auto_compact(None).open()?;
    let before = Rss::now();
    let sampler = Sampler::start();
    let i = engine.compact()?;
    let (peak, samples) = sampler.finish();
    engine.close()?;
    let n = [i.live, i.dropped, i.bytes_before, i.bytes_after, i.duration.as_nanos() as u64];
    let mem = [before.vm_rss, before.anon, before.file, peak.vm_rss, peak.anon, peak.file, samples as u64];
    println!("{}", n.iter().chain(&mem).map(u64::to_string).collect::<Vec<_>>().join(" "));
    Ok(())
}

/// What a `compact` child printed: the compaction, the memory before it and at its peak, and
/// the number of samples.
pub fn run_compact(dir: &Path) -> BoxResult<(CompactInfo, Rss, Rss, usize)> {
    let out = Command::new(std::env::current_exe()?).args(["compact", "--dir", &dir.to_string_lossy()]).output()?;
    if !out.status.success() {
        return Err(format!("compact failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text.split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
    let [live, dropped, bytes_before, bytes_after, nanos, b_rss, b_anon, b_file, p_rss, p_anon, p_file, samples] = v[..] else {
        return Err(format!("compact printed {text:?}").into());
    };
    let info = CompactInfo { live, dropped, bytes_before, bytes_after, duration: Duration::from_nanos(nanos) };
    let before = Rss { vm_rss: b_rss, anon: b_anon, file: b_file };
    let peak = Rss { vm_rss: p_rss, anon: p_anon, file: p_file };
    Ok((info, before, peak, samples as usize))
}
