//! `search`: build a store from a `.f32` file, reopen it, time k-NN queries, print JSON.
//!
//! Engine calls are confined to [`Searcher`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memento::{Durability, Engine, Filter, Metadata, Metric, Record, ScanMode, SearchHit, SearchOptions, WriteBatch};
use memento_benches::{ms, percentile, BATCH, DIM};
use serde_json::{json, Value};

use crate::{read_f32_file, Args, BoxResult, F32Chunks};

/// The category that the filtered-search case selects.
const FILTER_CAT: &str = "c7";

/// One way of running queries: a scan mode and a thread count.
#[derive(Debug, Clone)]
struct Variant {
    mode: ScanMode,
    threads: usize,
}

fn parse_mode(s: &str) -> BoxResult<ScanMode> {
    Ok(match s {
        "exact" => ScanMode::Exact,
        "quantized" => ScanMode::Quantized,
        "auto" => ScanMode::Auto,
        _ => return Err(format!("unknown mode {s:?} (exact, quantized, auto)").into()),
    })
}

fn mode_name(m: ScanMode) -> &'static str {
    match m {
        ScanMode::Exact => "exact",
        ScanMode::Quantized => "quantized",
        _ => "auto",
    }
}

/// The engine's search calls.
struct Searcher {
    engine: Engine,
}

impl Searcher {
    /// Open the store with a search pool of one thread per core; each variant sets its own
    /// thread count per call.
    fn open(dir: &Path) -> memento::Result<Searcher> {
        Ok(Searcher { engine: Engine::builder(dir).create(false).search_threads(0).open()? })
    }

    fn options<'a>(k: usize, v: &Variant, filter: Option<&'a Filter>) -> SearchOptions<'a> {
        let mut o = SearchOptions::new(k).mode(v.mode).threads(v.threads);
        if let Some(f) = filter {
            o = o.filter(f);
        }
        o
    }

    fn search(&self, q: &[f32], k: usize, v: &Variant, filter: Option<&Filter>) -> memento::Result<Vec<SearchHit>> {
        self.engine.search_with(q, &Self::options(k, v, filter))
    }

    fn search_batch(&self, queries: &[f32], k: usize, v: &Variant) -> memento::Result<Vec<Vec<SearchHit>>> {
        self.engine.search_batch(queries, &Self::options(k, v, None))
    }

    fn close(self) -> memento::Result<()> {
        self.engine.close()
    }
}

fn metadata_for(row: usize, filter_mod: usize) -> Metadata {
    let mut m = Metadata::new();
    m.insert("cat".into(), Value::String(format!("c{}", row % filter_mod)));
    m
}

/// Write every row of `base` into a new store in `dir` (ids = row numbers), then close it.
fn build(dir: &Path, base: &Path, filter_mod: Option<usize>) -> BoxResult<(usize, Duration)> {
    let (mut rows, n) = F32Chunks::open(base, DIM)?;
    let t = Instant::now();
    let engine = Engine::builder(dir).dimension(DIM).metric(Metric::Cosine).durability(Durability::Buffered).open()?;
    let mut buf = Vec::new();
    let mut done = 0;
    while done < n {
        let m = rows.next_rows(BATCH, &mut buf)?;
        if m == 0 {
            return Err(format!("{}: ended after {done} of {n} rows", base.display()).into());
        }
        let mut batch = WriteBatch::new();
        for (j, v) in buf.chunks_exact(DIM).enumerate() {
            let mut r = Record::new((done + j).to_string(), v.to_vec());
            if let Some(fm) = filter_mod {
                r = r.with_metadata(metadata_for(done + j, fm));
            }
            batch.add(r);
        }
        engine.write(batch)?;
        done += m;
        if done.is_multiple_of(100_000) || done == n {
            eprintln!("  memento: built {done} / {n}");
        }
    }
    engine.close()?;
    Ok((n, t.elapsed()))
}

fn row_ids(hits: &[SearchHit]) -> BoxResult<Vec<u64>> {
    hits.iter().map(|h| h.id.parse::<u64>().map_err(|e| format!("id {:?} is not a row number: {e}", h.id).into())).collect()
}

/// Latency figures of one-at-a-time queries.
fn latency_json(lat: &mut [Duration]) -> Value {
    let total: Duration = lat.iter().sum();
    json!({
        "p50_ms": ms(percentile(lat, 50.0)),
        "p99_ms": ms(percentile(lat, 99.0)),
        "mean_ms": ms(total) / lat.len().max(1) as f64,
        "min_ms": ms(percentile(lat, 0.0)),
        "seq_qps": lat.len() as f64 / total.as_secs_f64(),
    })
}

fn run_variant(s: &Searcher, queries: &[f32], k: usize, warmup: usize, v: &Variant) -> BoxResult<Value> {
    let name = mode_name(v.mode);
    let nq = queries.len() / DIM;
    for q in queries.chunks_exact(DIM).cycle().take(warmup) {
        s.search(q, k, v, None)?;
    }
    let mut lat = Vec::with_capacity(nq);
    let mut ids = Vec::with_capacity(nq);
    for q in queries.chunks_exact(DIM) {
        let t = Instant::now();
        let hits = s.search(q, k, v, None)?;
        lat.push(t.elapsed());
        ids.push(row_ids(&hits)?);
    }
    let mut out = json!({ "mode": name, "threads": v.threads, "nq": nq, "ids": ids });
    let lat_json = latency_json(&mut lat);
    eprintln!(
        "  memento {name} × {} threads: p50 {:.3} ms, p99 {:.3} ms",
        v.threads,
        lat_json["p50_ms"].as_f64().unwrap_or(0.0),
        lat_json["p99_ms"].as_f64().unwrap_or(0.0)
    );
    merge(&mut out, lat_json);
    // One untimed batch of a few queries first, then the whole set as one timed call.
    s.search_batch(&queries[..DIM * warmup.clamp(1, nq)], k, v)?;
    let t = Instant::now();
    let hits = s.search_batch(queries, k, v)?;
    let secs = t.elapsed().as_secs_f64();
    let batch_ids = hits.iter().map(|h| row_ids(h)).collect::<BoxResult<Vec<_>>>()?;
    let same = batch_ids == ids;
    eprintln!("  memento {name} × {} threads: batch {:.1} q/s", v.threads, nq as f64 / secs);
    merge(&mut out, json!({ "batch_qps": nq as f64 / secs, "batch_s": secs, "batch_same_ids": same }));
    if !same {
        merge(&mut out, json!({ "batch_ids": batch_ids }));
    }
    Ok(out)
}

/// The filtered case on one thread, with scan `mode`.
fn run_filtered(s: &Searcher, queries: &[f32], k: usize, warmup: usize, mode: ScanMode) -> BoxResult<Value> {
    let spec = json!({ "cat": FILTER_CAT });
    let filter = Filter::parse(&spec)?;
    let v = Variant { mode, threads: 1 };
    for q in queries.chunks_exact(DIM).cycle().take(warmup) {
        s.search(q, k, &v, Some(&filter))?;
    }
    let mut lat = Vec::new();
    let mut ids = Vec::new();
    for q in queries.chunks_exact(DIM) {
        let t = Instant::now();
        let hits = s.search(q, k, &v, Some(&filter))?;
        lat.push(t.elapsed());
        ids.push(row_ids(&hits)?);
    }
    let mut out = json!({ "filter": spec, "mode": mode_name(v.mode), "threads": v.threads, "ids": ids });
    let lat_json = latency_json(&mut lat);
    eprintln!(
        "  memento filtered {spec}, {}: p50 {:.3} ms, p99 {:.3} ms",
        mode_name(mode),
        lat_json["p50_ms"].as_f64().unwrap_or(0.0),
        lat_json["p99_ms"].as_f64().unwrap_or(0.0)
    );
    merge(&mut out, lat_json);
    Ok(out)
}

/// Add the fields of the object `from` to the object `into`.
pub(crate) fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

/// The `search` subcommand.
pub fn run(args: &Args) -> BoxResult<()> {
    args.check_known(&["base", "queries", "nq", "warmup", "k", "modes", "threads", "store-parent", "filter-mod", "store"])?;
    let base = PathBuf::from(args.required("base")?);
    let all_queries = read_f32_file(Path::new(args.required("queries")?), DIM)?;
    let nq = args.num("nq", 200)?.min(all_queries.len() / DIM);
    let queries = &all_queries[..nq * DIM];
    let warmup = args.num("warmup", 5)?;
    let k = args.num("k", 10)?;
    let filter_mod = match args.num("filter-mod", 0)? {
        0 => None,
        m => Some(m),
    };
    let mut variants = Vec::new();
    for mode in args.list("modes", "exact") {
        for t in args.list("threads", "1") {
            variants.push(Variant { mode: parse_mode(&mode)?, threads: t.parse().map_err(|e| format!("--threads {t:?}: {e}"))? });
        }
    }
    let parent = match args.get("store-parent") {
        Some(p) => PathBuf::from(p),
        None => base.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
    };
    let tmp = tempfile::Builder::new().prefix("memento-store-").tempdir_in(&parent)?;
    // `--store DIR`: kept, and reused when it exists (to compare two builds of the engine
    // on one store without building it twice).
    let dir = args.get("store").map_or_else(|| tmp.path().join("store"), PathBuf::from);
    let (n, build_time) = if dir.exists() {
        eprintln!("  memento: reusing the store {}", dir.display());
        (std::fs::metadata(&base)?.len() as usize / (4 * DIM), Duration::ZERO)
    } else {
        eprintln!("  memento: building a store from {}", base.display());
        build(&dir, &base, filter_mod)?
    };
    let t = Instant::now();
    let s = Searcher::open(&dir)?;
    let open_time = t.elapsed();

    let mut runs = Vec::new();
    for v in &variants {
        runs.push(run_variant(&s, queries, k, warmup, v)?);
    }
    // The filtered case under the default scan choice (what an application gets) and the
    // float32 scan.
    let mut filtered = Vec::new();
    if filter_mod.is_some() {
        for mode in [ScanMode::Auto, ScanMode::Exact] {
            filtered.push(run_filtered(&s, queries, k, warmup, mode)?);
        }
    }
    s.close()?;
    let store_bytes: u64 = std::fs::read_dir(&dir)?.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum();
    println!(
        "{}",
        json!({
            "engine": "memento",
            "n": n,
            "dim": DIM,
            "k": k,
            "nq": nq,
            "warmup": warmup,
            "build_s": build_time.as_secs_f64(),
            "open_ms": ms(open_time),
            "store_bytes": store_bytes,
            "filter_mod": filter_mod,
            "runs": runs,
            "filtered": filtered,
        })
    );
    Ok(())
}
