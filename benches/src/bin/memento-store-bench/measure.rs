//! The four measurements of issue 16, each adding rows to the report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memento::{CompactInfo, Durability, Engine};
use memento_benches::args::BoxResult;
use memento_benches::{ms, percentile};

use crate::child::{run_compact, run_first_answer, Running};
use crate::memory::Rss;
use crate::store::{self, disk_usage, search_median};

/// What every measurement needs.
pub struct Ctx {
    /// Where the stores go.
    pub root: PathBuf,
    /// The complete base store (`n` records, closed), never written by a measurement but
    /// `first_answer`'s idle writer.
    pub base: PathBuf,
    /// Records in the base store, `v0` to `v{n-1}`.
    pub n: usize,
    /// The vectors' dimension.
    pub dim: usize,
    /// Child processes per open → first answer variant.
    pub runs: usize,
    /// Timed passes over the queries per latency median.
    pub rounds: usize,
    /// How long the reader searches while the writer ingests (the store grows meanwhile, by
    /// what the writer commits, and the reader scans that too: a short window keeps the
    /// growth small, a long one takes in more of the writer's checkpoints).
    pub ingest_window: Duration,
    /// The query vectors of every latency median, flattened.
    pub queries: Vec<f32>,
}

/// One line of the report: the figure, its value, the target and whether it was met.
pub struct Row(pub String, pub String, pub String);

fn verdict(target: &str, met: bool) -> String {
    format!("{target} {}", if met { "✅" } else { "❌" })
}

/// MiB from KiB.
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// 1. A fresh process's open of the base store and its first k = 10 answer, with the store's
///    writer open in another process and with none; page cache warm (an untimed run first).
pub fn first_answer(ctx: &Ctx, rows: &mut Vec<Row>) -> BoxResult<()> {
    for holder in [true, false] {
        let writer = if holder { Some(Running::start(&["writer-hold", "--dir", &ctx.base.to_string_lossy()])?) } else { None };
        run_first_answer(&ctx.base, ctx.dim)?;
        let (mut open, mut first, mut second, mut total) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ctx.runs {
            let [o, s, s2] = run_first_answer(&ctx.base, ctx.dim)?;
            open.push(o);
            first.push(s);
            second.push(s2);
            total.push(o + s);
        }
        if let Some(w) = writer {
            w.stop()?;
        }
        let med = |v: &mut Vec<Duration>| percentile(v, 50.0);
        let t = med(&mut total);
        let who = if holder { "a writer process holding the store" } else { "no writer" };
        rows.push(Row(
            format!("open → first answer, {who}: median of {} processes (open + first search; a second search)", ctx.runs),
            format!(
                "**{:.1} ms** ({:.1} + {:.1}; {:.1}) [max {:.1}]",
                ms(t),
                ms(med(&mut open)),
                ms(med(&mut first)),
                ms(med(&mut second)),
                ms(percentile(&mut total, 100.0))
            ),
            verdict("< 50 ms", t < Duration::from_millis(50)),
        ));
    }
    Ok(())
}

/// 2. A reader's k = 10 search latency (one search thread) on a copy of the base store, idle,
///    then while another process ingests into it as fast as it can.
pub fn reader_under_ingest(ctx: &Ctx, rows: &mut Vec<Row>) -> BoxResult<()> {
    let dir = ctx.root.join("follow");
    store::copy(&ctx.base, &dir)?;
    let reader = Engine::builder(&dir).read_only().search_threads(1).open()?;
    let (idle, idle_searches) = search_median(&reader, &ctx.queries, ctx.dim, ctx.rounds, Duration::ZERO, true)?;
    let writer = Running::start(&["ingest", "--dir", &dir.to_string_lossy(), "--dim", &ctx.dim.to_string()])?;
    let before = reader.count();
    let t = Instant::now();
    let (busy, busy_searches) = search_median(&reader, &ctx.queries, ctx.dim, 1, ctx.ingest_window, false)?;
    let window = t.elapsed();
    let after = reader.count();
    let out = writer.stop()?;
    drop(reader);
    let mut words = out.split_whitespace();
    let added: f64 = words.next().ok_or("ingest printed nothing")?.parse()?;
    let secs: f64 = words.next().ok_or("ingest printed no time")?.parse()?;
    let ratio = busy.as_secs_f64() / idle.as_secs_f64();
    // A scan's time is about proportional to the vectors scanned: the store's mean size over
    // the window against its size when idle.
    let growth = (before + after) as f64 / 2.0 / before as f64;
    rows.push(Row(
        format!("reader search, k = 10, 1 thread: median idle ({idle_searches} searches) / while a process ingests ({busy_searches}) (ratio)"),
        format!("{:.2} / {:.2} ms (**{ratio:.2}×**; {:.2}× per vector scanned, the store {growth:.2}× larger on average)", ms(idle), ms(busy), ratio / growth),
        verdict("≤ 1.5×", ratio <= 1.5),
    ));
    rows.push(Row(
        "… the writer meanwhile: `Sync`, batches of 1,000, vectors/s; records the reader saw added during its searches".into(),
        format!(
            "{:.0} vectors/s ({added:.0} in {secs:.1} s); {} added in the {:.1} s of searches ({before} → {after})",
            added / secs,
            after - before,
            window.as_secs_f64()
        ),
        String::new(),
    ));
    store::remove(&dir)
}

/// What [`compaction`] saw.
pub struct Compacted {
    /// What `compact()` returned.
    pub info: CompactInfo,
    /// The compacting process's memory just after its open, before `compact()`, and the
    /// peaks during it.
    pub before: Rss,
    /// See `before`.
    pub peak: Rss,
    /// How many times the sampler read the figures.
    pub samples: usize,
    /// The directory's size on disk after the close, and each file's.
    pub disk: (u64, Vec<(String, u64)>),
    /// The median search latency on the compacted store, when asked for.
    pub search: Option<Duration>,
    /// The deletes, the checkpoint and the close before the compaction.
    pub delete_secs: f64,
}

/// A copy of the base store with `v{i}` deleted for every `i` with `gone(i)` (then a
/// checkpoint and a close), compacted once by `compact()` in a child process with automatic
/// compaction off (so the call timed is the only compaction) while a sampler watches its
/// memory. Then measured on disk and, with `search`, reopened and searched; the copy is
/// removed after.
fn compaction(ctx: &Ctx, name: &str, gone: &dyn Fn(usize) -> bool, search: bool) -> BoxResult<Compacted> {
    let dir = ctx.root.join(name);
    store::copy(&ctx.base, &dir)?;
    let open = |d: &Path| Engine::builder(d).create(false).auto_compact(None).durability(Durability::Buffered).search_threads(1).open();
    let engine = open(&dir)?;
    let t = Instant::now();
    let deleted = store::delete(&engine, ctx.n, gone)?;
    engine.checkpoint()?;
    engine.close()?;
    let delete_secs = t.elapsed().as_secs_f64();
    eprintln!("  {name}: {deleted} deleted and checkpointed in {delete_secs:.1} s; compacting");
    let (info, before, peak, samples) = run_compact(&dir)?;
    let disk = disk_usage(&dir)?;
    let search = if search {
        let engine = open(&dir)?;
        let (m, _) = search_median(&engine, &ctx.queries, ctx.dim, ctx.rounds, Duration::ZERO, true)?;
        engine.close()?;
        Some(m)
    } else {
        None
    };
    store::remove(&dir)?;
    Ok(Compacted { info, before, peak, samples, disk, search, delete_secs })
}

fn files(disk: &(u64, Vec<(String, u64)>)) -> String {
    disk.1.iter().map(|(f, b)| format!("{f} {:.1}", *b as f64 / 1e6)).collect::<Vec<_>>().join(", ")
}

/// A compaction's time and throughput: live vectors written per second, and slots (live and
/// dropped) read per second, since it reads every slot of the old file.
fn throughput(i: &CompactInfo) -> String {
    let secs = i.duration.as_secs_f64();
    format!(
        "**{secs:.2} s**; {:.0}/s ({:.0}/s); {} / {}; {:.1} → {:.1} MB",
        i.live as f64 / secs,
        (i.live + i.dropped) as f64 / secs,
        i.live,
        i.dropped,
        i.bytes_before as f64 / 1e6,
        i.bytes_after as f64 / 1e6
    )
}

fn memory_rows(c: &Compacted, what: &str, rows: &mut Vec<Row>) {
    let d = |peak: u64, before: u64| mib(peak.saturating_sub(before));
    let anon = d(c.peak.anon, c.before.anon);
    rows.push(Row(
        format!("compaction {what}: peak RssAnon increase (heap; {} samples ~1 ms apart), after open → peak", c.samples),
        format!("**{anon:.1} MiB** ({:.1} → {:.1} MiB)", mib(c.before.anon), mib(c.peak.anon)),
        verdict("< 64 MiB", anon < 64.0),
    ));
    rows.push(Row(
        format!("compaction {what}: peak RssFile / VmRSS increase (mapped store pages: page cache)"),
        format!("{:.1} / {:.1} MiB", d(c.peak.file, c.before.file), d(c.peak.vm_rss, c.before.vm_rss)),
        String::new(),
    ));
}

/// 3 and 4. The base store with 90% deleted, compacted, against a fresh store of the same
///    live records; then with 10% deleted, for the memory of a compaction that rewrites most
///    of the file.
pub fn compactions(ctx: &Ctx, rows: &mut Vec<Row>) -> BoxResult<()> {
    let fresh_dir = ctx.root.join("fresh-every-tenth");
    store::remove(&fresh_dir)?;
    eprintln!("building the fresh store of every tenth record");
    store::build(&fresh_dir, ctx.n, ctx.dim, &|i| i % 10 == 0)?;
    let fresh_disk = disk_usage(&fresh_dir)?;
    let engine = Engine::builder(&fresh_dir).create(false).search_threads(1).open()?;
    let (fresh_search, _) = search_median(&engine, &ctx.queries, ctx.dim, ctx.rounds, Duration::ZERO, true)?;
    engine.close()?;
    store::remove(&fresh_dir)?;

    let c = compaction(ctx, "compact-90", &|i| i % 10 != 0, true)?;
    let i = c.info;
    rows.push(Row(
        "compaction, 90% deleted: seconds; live vectors/s (slots read/s); live / dropped; vector file before → after".into(),
        throughput(&i),
        String::new(),
    ));
    rows.push(Row("… deleting (batches of 10,000, `Buffered`), the checkpoint and close before it".into(), format!("{:.1} s", c.delete_secs), String::new()));
    let size = c.disk.0 as f64 / fresh_disk.0 as f64;
    rows.push(Row(
        "store on disk after compaction and close / a fresh store of the same live records (ratio)".into(),
        format!("{:.1} / {:.1} MB (**{size:.3}×**)", c.disk.0 as f64 / 1e6, fresh_disk.0 as f64 / 1e6),
        verdict("≤ 1.15×", size <= 1.15),
    ));
    rows.push(Row("… files of each, MB".into(), format!("compacted: {}; fresh: {}", files(&c.disk), files(&fresh_disk)), String::new()));
    let compacted_search = c.search.ok_or("no search measured")?;
    let lat = compacted_search.as_secs_f64() / fresh_search.as_secs_f64();
    rows.push(Row(
        "search k = 10, 1 thread, median: compacted / fresh (ratio)".into(),
        format!("{:.2} / {:.2} ms (**{lat:.2}×**)", ms(compacted_search), ms(fresh_search)),
        verdict("≤ 1.15×", lat <= 1.15),
    ));
    memory_rows(&c, "90% deleted", rows);

    let c = compaction(ctx, "compact-10", &|i| i % 10 == 0, false)?;
    let i = c.info;
    rows.push(Row(
        "compaction, 10% deleted: seconds; live vectors/s (slots read/s); live / dropped; vector file before → after".into(),
        throughput(&i),
        String::new(),
    ));
    memory_rows(&c, "10% deleted", rows);
    Ok(())
}
