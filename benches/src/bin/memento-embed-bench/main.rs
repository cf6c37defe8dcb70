//! `memento-embed-bench`: the Rust side of the embedding benchmark
//! (`benches/embed/compare_embed.py`, `make bench-embed`).
//!
//! Each subcommand prints one JSON object on stdout (progress goes to stderr). The model is
//! the default one, from `memento::embed::model_dir(DEFAULT_MODEL)` (`$MEMENTO_MODEL_DIR`, else
//! the provisioned copy); ONNX Runtime is found as the engine finds it (`MEMENTO_ORT_LIB`, the
//! provisioned copy, an `onnxruntime` Python package).
//!
//! ```text
//! memento-embed-bench info
//! memento-embed-bench build-store --store DIR [--n 10000] [--texts FILE] [--threads 0]
//! memento-embed-bench cold --store DIR --query TEXT [--threads 0] [--k 5] [--via builder|manual]
//! memento-embed-bench warm [--threads 1] [--n 200] [--warmup 10] [--texts FILE] [--spin 0|1] [--optimized 0|1]
//! memento-embed-bench batch [--threads 0] [--kind short|long] [--n 512] [--reps 3] [--texts FILE]
//!     [--batch-size 32] [--batch-tokens N] [--spin 0|1] [--optimized 0|1] [--arena 0|1]
//! memento-embed-bench vectors --texts FILE [--n 8] [--optimized 0|1]
//! memento-embed-bench cache [--n 100000] [--distinct 64] [--texts FILE]
//! memento-embed-bench rss [--threads 0] [--then-texts FILE --then-n N]
//! ```
//!
//! - `build-store`: a new text store of `n` records (`remember_batch`, 1,000 at a time).
//! - `cold`: what a program does on its first query: open the store with the model loading on a
//!   second thread (`EngineBuilder::model_dir`), `recall(query, k)`. Times are from the start
//!   of `main`; the caller times the whole process from outside. `--via manual` loads the
//!   `OnnxEmbedder` first (to report its load times), then opens the store, then times the
//!   first embedding and the search separately.
//! - `warm`: one short text at a time through `Embedder::embed` (no cache), distinct texts.
//! - `batch`: texts/s of one `Embedder::embed_batch` call over `n` distinct texts.
//! - `cache`: `Engine::embed` of a text already embedded (memory cache hit), and of texts
//!   found in the persisted cache after a reopen.
//! - `vectors`: the vectors of the first `n` texts, one at a time and as one batch, so that
//!   the caller can check that both sides compute the same thing.
//! - `rss`: the process's resident memory with the model loaded, an empty store, one text
//!   embedded.
//!
//! `--texts FILE` (one JSON string, or object with `"text"`, per line) gives the texts; without
//! it they are generated from a seed (`texts.rs`).

mod texts;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memento::embed::{self, Embedder, LoadTimes, OnnxEmbedder, OnnxOptions, DEFAULT_MODEL};
use memento::{Engine, Memory};
use memento_benches::{ms, percentile};
use serde_json::{json, Value};

use texts::Kind;

use memento_benches::args::{Args, BoxResult};

const USAGE: &str = "usage:
  memento-embed-bench info
  memento-embed-bench build-store --store DIR [--n 10000] [--texts FILE] [--threads 0]
  memento-embed-bench cold --store DIR --query TEXT [--threads 0] [--k 5] [--via builder|manual]
  memento-embed-bench warm [--threads 1] [--n 200] [--warmup 10] [--texts FILE] [--spin 0|1] [--optimized 0|1]
  memento-embed-bench batch [--threads 0] [--kind short|long] [--n 512] [--reps 3] [--texts FILE]
      [--batch-size 32] [--batch-tokens N] [--spin 0|1] [--optimized 0|1] [--arena 0|1]
  memento-embed-bench vectors --texts FILE [--n 8] [--optimized 0|1]
  memento-embed-bench cache [--n 100000] [--distinct 64] [--texts FILE]
  memento-embed-bench rss [--threads 0] [--then-texts FILE --then-n N]";

/// Embedder options from `--threads`, `--spin`, `--optimized`, `--batch-size`,
/// `--batch-tokens`, `--arena`.
fn onnx_options(a: &Args, default_threads: usize) -> BoxResult<OnnxOptions> {
    let d = OnnxOptions::default();
    Ok(OnnxOptions {
        threads: a.num("threads", default_threads)?,
        spin: a.flag("spin", d.spin)?,
        use_optimized: a.flag("optimized", d.use_optimized)?,
        batch_size: a.num("batch-size", d.batch_size)?,
        batch_tokens: a.num("batch-tokens", d.batch_tokens)?,
        arena: a.flag("arena", d.arena)?,
        ..d
    })
}

fn model_dir() -> PathBuf {
    embed::model_dir(DEFAULT_MODEL)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The intra-op thread count an `OnnxOptions::threads` value means.
fn effective_threads(threads: usize) -> usize {
    if threads == 0 {
        cores()
    } else {
        threads
    }
}

fn options_json(o: &OnnxOptions) -> Value {
    json!({
        "threads": effective_threads(o.threads),
        "spin": o.spin,
        "use_optimized": o.use_optimized,
        "batch_size": o.batch_size,
        "batch_tokens": o.batch_tokens,
        "arena": o.arena,
    })
}

fn load_times_json(t: LoadTimes) -> Value {
    json!({"runtime_ms": t.runtime_ms, "session_ms": t.session_ms, "tokenizer_ms": t.tokenizer_ms})
}

/// Percentiles of per-call times, in milliseconds.
fn summary(samples: &mut [Duration]) -> Value {
    let n = samples.len();
    let total: Duration = samples.iter().sum();
    json!({
        "n": n,
        "p50_ms": ms(percentile(samples, 50.0)),
        "p90_ms": ms(percentile(samples, 90.0)),
        "p99_ms": ms(percentile(samples, 99.0)),
        "min_ms": ms(percentile(samples, 0.0)),
        "max_ms": ms(percentile(samples, 100.0)),
        "mean_ms": if n == 0 { 0.0 } else { ms(total) / n as f64 },
    })
}

fn load_embedder(opts: &OnnxOptions) -> BoxResult<OnnxEmbedder> {
    let dir = model_dir();
    OnnxEmbedder::load(&dir, opts).map_err(|e| format!("loading the model from {}: {e}", dir.display()).into())
}

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory_mib() -> BoxResult<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Ok((field("VmRSS:").ok_or("no VmRSS in /proc/self/status")?, field("VmHWM:").ok_or("no VmHWM in /proc/self/status")?))
}

/// CPU time of the whole process (every thread), user + system, from `/proc/self/stat` (in
/// USER_HZ ticks, 100 per second on Linux).
fn process_cpu() -> BoxResult<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("unexpected /proc/self/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = f.get(11).ok_or("no utime")?.parse::<u64>()? + f.get(12).ok_or("no stime")?.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

fn token_stats(e: &OnnxEmbedder, texts: &[&str]) -> BoxResult<Value> {
    let encs = e.tokenize(texts)?;
    let lens: Vec<usize> = encs.iter().map(|x| x.len()).collect();
    let total: usize = lens.iter().sum();
    Ok(json!({
        "mean": total as f64 / lens.len().max(1) as f64,
        "min": lens.iter().min().copied().unwrap_or(0),
        "max": lens.iter().max().copied().unwrap_or(0),
        "total": total,
    }))
}

fn info() -> BoxResult<Value> {
    let dir = model_dir();
    let manifest = embed::Manifest::load(&dir)?;
    let lib = embed::find_runtime_library(None)?;
    let version = embed::runtime_version(None)?;
    Ok(json!({
        "model_dir": dir,
        "model_file": dir.join(&manifest.model_file),
        "model_sha256": manifest.model_sha256,
        "tokenizer_file": dir.join(&manifest.tokenizer_file),
        "optimized_file": manifest.optimized.as_ref().map(|o| dir.join(&o.file)),
        "optimized_onnxruntime": manifest.optimized.as_ref().map(|o| o.onnxruntime.clone()),
        "max_tokens": manifest.max_tokens,
        "runtime_library": lib,
        "runtime_version": version,
        "cores": cores(),
        "defaults": options_json(&OnnxOptions::default()),
    }))
}

fn build_store(a: &Args) -> BoxResult<Value> {
    a.check_known(&["store", "n", "texts", "threads"])?;
    let dir = PathBuf::from(a.required("store")?);
    let n = a.num("n", 10_000)?;
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        return Err(format!("{} exists and is not empty; remove it first", dir.display()).into());
    }
    let texts = texts::load(a.get("texts"), Kind::Store, n)?;
    let opts = onnx_options(a, 0)?;
    let t0 = Instant::now();
    let engine = Engine::builder(&dir).model_dir(model_dir(), opts.clone()).open()?;
    let open = t0.elapsed();
    let mut embed_time = Duration::ZERO;
    let mut write_time = Duration::ZERO;
    let mut done = 0;
    for chunk in texts.chunks(1_000) {
        let memories: Vec<Memory> = chunk.iter().map(|t| Memory::new(t.as_str())).collect();
        let t = Instant::now();
        let mut embedded_at = None;
        let mut progress = |d: usize, all: usize| {
            if d == all {
                embedded_at = Some(Instant::now());
            }
        };
        engine.remember_batch(memories, Some(&mut progress))?;
        let end = Instant::now();
        let mid = embedded_at.unwrap_or(end);
        embed_time += mid - t;
        write_time += end - mid;
        done += chunk.len();
        eprintln!("build-store: {done}/{n} texts, {:.0} texts/s", done as f64 / (embed_time + write_time).as_secs_f64());
    }
    let t = Instant::now();
    let count = engine.count();
    engine.close()?;
    let close = t.elapsed();
    let total = t0.elapsed();
    Ok(json!({
        "store": dir,
        "n": n,
        "count": count,
        "options": options_json(&opts),
        "open_ms": ms(open),
        "embed_ms": ms(embed_time),
        "write_ms": ms(write_time),
        "close_ms": ms(close),
        "total_ms": ms(total),
        "texts_per_s": n as f64 / (embed_time + write_time).as_secs_f64(),
        "embed_texts_per_s": n as f64 / embed_time.as_secs_f64(),
    }))
}

fn cold(a: &Args, start: Instant) -> BoxResult<Value> {
    a.check_known(&["store", "query", "threads", "k", "via"])?;
    let dir = PathBuf::from(a.required("store")?);
    let query = a.required("query")?.to_owned();
    let k = a.num("k", 5)?;
    let opts = onnx_options(a, 0)?;
    let via = a.get("via").unwrap_or("builder");
    let mut out = json!({"via": via, "options": options_json(&opts), "query": query, "k": k});
    let (engine, hits) = match via {
        "builder" => {
            let t = Instant::now();
            let engine = Engine::builder(&dir).create(false).model_dir(model_dir(), opts).open()?;
            out["open_ms"] = json!(ms(t.elapsed()));
            let t = Instant::now();
            let hits = engine.recall(&query, k, None)?;
            out["recall_ms"] = json!(ms(t.elapsed()));
            (engine, hits)
        }
        "manual" => {
            let t = Instant::now();
            let e = Arc::new(load_embedder(&opts)?);
            out["model_load_ms"] = json!(ms(t.elapsed()));
            out["load_times"] = load_times_json(e.load_times());
            out["graph"] = json!(e.graph_path());
            let t = Instant::now();
            let engine = Engine::builder(&dir).create(false).embedder(e).open()?;
            out["open_ms"] = json!(ms(t.elapsed()));
            let t = Instant::now();
            engine.embed(&query)?;
            out["first_embed_ms"] = json!(ms(t.elapsed()));
            let t = Instant::now();
            let hits = engine.recall(&query, k, None)?;
            out["search_ms"] = json!(ms(t.elapsed()));
            (engine, hits)
        }
        _ => return Err(format!("--via {via:?}: builder or manual").into()),
    };
    out["answered_ms"] = json!(ms(start.elapsed()));
    out["count"] = json!(engine.count());
    out["cache"] = json!(format!("{:?}", engine.cache_stats()));
    out["top"] = match hits.first() {
        Some(h) => json!({"id": h.id, "distance": h.distance, "text": h.text}),
        None => Value::Null,
    };
    let t = Instant::now();
    drop(engine);
    out["drop_ms"] = json!(ms(t.elapsed()));
    out["before_exit_ms"] = json!(ms(start.elapsed()));
    Ok(out)
}

fn warm(a: &Args) -> BoxResult<Value> {
    a.check_known(&["threads", "n", "warmup", "texts", "spin", "optimized"])?;
    let n = a.num("n", 200)?;
    let warmup = a.num("warmup", 10)?;
    let opts = onnx_options(a, 1)?;
    let all = texts::load(a.get("texts"), Kind::Short, warmup + n)?;
    let e = load_embedder(&opts)?;
    for t in &all[..warmup] {
        e.embed(t)?;
    }
    let timed: Vec<&str> = all[warmup..].iter().map(String::as_str).collect();
    let mut samples = Vec::with_capacity(n);
    let (cpu0, wall0) = (process_cpu()?, Instant::now());
    for t in &timed {
        let t0 = Instant::now();
        let v = e.embed(t)?;
        samples.push(t0.elapsed());
        std::hint::black_box(v);
    }
    let (cpu, wall) = (process_cpu()? - cpu0, wall0.elapsed());
    // Where the time goes: the tokenizer alone on the same texts.
    let mut tok = Vec::with_capacity(n);
    for t in &timed {
        let t0 = Instant::now();
        std::hint::black_box(e.tokenize(&[t])?);
        tok.push(t0.elapsed());
    }
    Ok(json!({
        "options": options_json(&opts),
        "graph": e.graph_path(),
        "load_times": load_times_json(e.load_times()),
        "tokens": token_stats(&e, &timed)?,
        "embed": summary(&mut samples),
        "cpu_per_text_ms": ms(cpu) / n.max(1) as f64,
        "cpu_per_wall": cpu.as_secs_f64() / wall.as_secs_f64(),
        "tokenize_p50_ms": ms(percentile(&mut tok, 50.0)),
    }))
}

fn batch(a: &Args) -> BoxResult<Value> {
    a.check_known(&["threads", "kind", "n", "reps", "texts", "batch-size", "batch-tokens", "spin", "optimized", "arena"])?;
    let kind_name = a.get("kind").unwrap_or("short");
    let kind = Kind::parse(kind_name)?;
    let n = a.num("n", 512)?;
    let reps = a.num("reps", 3)?.max(1);
    let opts = onnx_options(a, 0)?;
    let all = texts::load(a.get("texts"), kind, n)?;
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let e = load_embedder(&opts)?;
    // Warm-up: one small batch.
    e.embed_batch(&refs[..refs.len().min(opts.batch_size)], None)?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        let v = e.embed_batch(&refs, None)?;
        times.push(t.elapsed());
        std::hint::black_box(v);
    }
    let rates: Vec<f64> = times.iter().map(|d| n as f64 / d.as_secs_f64()).collect();
    let best = percentile(&mut times.clone(), 0.0);
    let med = percentile(&mut times, 50.0);
    Ok(json!({
        "kind": kind_name,
        "n": n,
        "options": options_json(&opts),
        "graph": e.graph_path(),
        "batching": "sorted by length (longest first), batches of up to batch_size texts and batch_tokens padded tokens, each padded to its longest",
        "tokens": token_stats(&e, &refs)?,
        "rep_ms": times.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        "texts_per_s_each": rates,
        "median_ms": ms(med),
        "texts_per_s": n as f64 / med.as_secs_f64(),
        "best_texts_per_s": n as f64 / best.as_secs_f64(),
    }))
}

fn cache(a: &Args) -> BoxResult<Value> {
    a.check_known(&["n", "distinct", "texts"])?;
    let n = a.num("n", 100_000)?;
    let distinct = a.num("distinct", 64)?.max(1);
    let all = texts::load(a.get("texts"), Kind::Short, distinct)?;
    let e: Arc<OnnxEmbedder> = Arc::new(load_embedder(&OnnxOptions { threads: 1, ..OnnxOptions::default() })?);
    let tmp = tempfile::Builder::new().prefix("memento-embed-cache-").tempdir()?;
    let dir = tmp.path().join("store");
    let engine = Engine::builder(&dir).embedder(Arc::clone(&e) as Arc<dyn Embedder>).open()?;
    // Misses: inference, then the entry goes into both caches.
    let mut miss = Vec::with_capacity(distinct);
    for t in &all {
        let t0 = Instant::now();
        engine.embed(t)?;
        miss.push(t0.elapsed());
    }
    let mut hit = Vec::with_capacity(n);
    for i in 0..n {
        let t = &all[i % distinct];
        let t0 = Instant::now();
        let v = engine.embed(t)?;
        hit.push(t0.elapsed());
        std::hint::black_box(v);
    }
    let stats_after = format!("{:?}", engine.cache_stats());
    engine.close()?;
    // A new engine: the memory cache is empty, the persisted one has every text.
    let engine = Engine::builder(&dir).embedder(Arc::clone(&e) as Arc<dyn Embedder>).open()?;
    let mut disk = Vec::with_capacity(distinct);
    for t in &all {
        let t0 = Instant::now();
        engine.embed(t)?;
        disk.push(t0.elapsed());
    }
    let disk_stats = format!("{:?}", engine.cache_stats());
    engine.close()?;
    let to_us = |v: Value| -> Value {
        let mut o = serde_json::Map::new();
        if let Value::Object(m) = v {
            for (k, x) in m {
                match (k.strip_suffix("_ms"), x.as_f64()) {
                    (Some(base), Some(f)) => o.insert(format!("{base}_us"), json!(f * 1e3)),
                    _ => o.insert(k, x),
                };
            }
        }
        Value::Object(o)
    };
    Ok(json!({
        "what": "Engine::embed of a text already embedded (memory cache hit: key hash, LRU look-up, copy of the 384 floats)",
        "distinct_texts": distinct,
        "memory_hit": to_us(summary(&mut hit)),
        "miss": summary(&mut miss),
        "persisted_hit_after_reopen": to_us(summary(&mut disk)),
        "stats_after_hits": stats_after,
        "stats_after_reopen": disk_stats,
    }))
}

fn vectors(a: &Args) -> BoxResult<Value> {
    a.check_known(&["texts", "n", "optimized"])?;
    let n = a.num("n", 8)?;
    let opts = onnx_options(a, 1)?;
    let all = texts::load(Some(a.required("texts")?), Kind::Short, n)?;
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let e = load_embedder(&opts)?;
    let one: Vec<Vec<f32>> = refs.iter().map(|t| e.embed(t)).collect::<memento::Result<_>>()?;
    let batch = e.embed_batch(&refs, None)?;
    Ok(json!({"graph": e.graph_path(), "one_at_a_time": one, "batch": batch}))
}

fn rss(a: &Args) -> BoxResult<Value> {
    a.check_known(&["threads", "then-texts", "then-n", "batch-tokens", "arena"])?;
    let opts = onnx_options(a, 0)?;
    let then_n = a.num("then-n", 0)?;
    let then = match a.get("then-texts") {
        Some(f) if then_n > 0 => Some(texts::load(Some(f), Kind::Long, then_n)?),
        _ => None,
    };
    let (start_rss, _) = memory_mib()?;
    let tmp = tempfile::Builder::new().prefix("memento-embed-rss-").tempdir()?;
    let engine = Engine::builder(tmp.path().join("store")).model_dir(model_dir(), opts.clone()).open()?;
    let (loaded_rss, loaded_hwm) = memory_mib()?;
    engine.embed("How much memory does the process use with the model loaded?")?;
    let hits = engine.recall("an empty store answers nothing", 5, None)?;
    let (rss, hwm) = memory_mib()?;
    let count = engine.count();
    // Then, optionally, one batch of texts through the embedder (the figures above are
    // measured first, so they do not include it).
    let mut after_batch = Value::Null;
    if let (Some(texts), Some(e)) = (&then, engine.embedder()) {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        e.embed_batch(&refs, None)?;
        let (r, h) = memory_mib()?;
        after_batch = json!({"texts": refs.len(), "rss_mib": r, "hwm_mib": h});
    }
    engine.close()?;
    Ok(json!({
        "after_batch": after_batch,
        "options": options_json(&opts),
        "store_records": count,
        "recall_hits": hits.len(),
        "start_rss_mib": start_rss,
        "after_open_rss_mib": loaded_rss,
        "after_open_hwm_mib": loaded_hwm,
        "rss_mib": rss,
        "hwm_mib": hwm,
    }))
}

fn run(start: Instant) -> BoxResult<Value> {
    let mut raw = std::env::args().skip(1);
    let cmd = raw.next().ok_or(USAGE)?;
    let a = Args::parse(raw, USAGE)?;
    match cmd.as_str() {
        "info" => info(),
        "build-store" => build_store(&a),
        "cold" => cold(&a, start),
        "warm" => warm(&a),
        "batch" => batch(&a),
        "cache" => cache(&a),
        "vectors" => vectors(&a),
        "rss" => rss(&a),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            std::process::exit(0)
        }
        _ => Err(format!("unknown subcommand {cmd:?}\n{USAGE}").into()),
    }
}

fn main() {
    let start = Instant::now();
    match run(start) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("memento-embed-bench: {e}");
            std::process::exit(1);
        }
    }
}
