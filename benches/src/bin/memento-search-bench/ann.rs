//! `memento-search-bench ann`: Memento's graph index measured the way `benches/compare/ann.py`
//! measures hnswlib, FAISS HNSW and usearch.
//!
//! Ingests `--base` (record id = row number) into a fresh store under `--store` (removed first)
//! with the graph off, then times [`Engine::build_index`] (the graph built with every core, and
//! its file written); closes, reopens and times the first answer; then for each `ef` of
//! `--efs`, k-NN single-query latency on one search thread (p50, p99 after a warm-up) and
//! queries/s, with the ids returned; then the exact answer. Then, measured against the
//! engine's own exact answers:
//! - **filters**: record `i` carries `{"p": i % 100}`; the filters `p < 1`, `p < 10` and
//!   `p < 50` (1%, 10%, 50% of the records) with the automatic plan: results per query (k
//!   whenever k match), recall@k, p50;
//! - **churn**: 50% of the records replaced (upserted with the same vectors, so the true
//!   answers do not change; the old copies become deleted nodes the walks pass through), the
//!   graph caught up incrementally, and recall@k at the churn `ef` before and after.
//!
//! Writes one JSON document to `--out`. `--phase` runs one part on the store of an earlier
//! run: `build` (ingest, build, open → first answer), `sweep` (the ef sweep and the exact
//! answer: `benches/compare/ann.py` runs it several times, alternating with the peers'
//! sweeps), `rest` (filters, then churn, which replaces half the records); `all` (the
//! default) runs the three.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memento::graph::GraphParams;
use memento::{Durability, Engine, Metric, Record, ScanMode, SearchOptions, WriteBatch};
use memento_benches::args::{Args, BoxResult};
use memento_benches::{ms, percentile};
use serde_json::json;

use super::{read_f32_file, F32Chunks};
use crate::search::merge;

/// Untimed queries before each timed run (ann.py gives the peers 100).
const WARMUP: usize = 100;

fn params(args: &Args) -> BoxResult<GraphParams> {
    let d = GraphParams::default();
    Ok(GraphParams { m: args.num("m", usize::from(d.m))? as u16, ef_construction: args.num("ef-construction", d.ef_construction)?, ..d })
}

fn ingest(dir: &Path, base: &Path, dim: usize, p: GraphParams) -> BoxResult<usize> {
    let _ = std::fs::remove_dir_all(dir);
    // The graph stays off while ingesting (min_vectors out of reach), so that the build is
    // timed alone, as the peers' are.
    let off = GraphParams { min_vectors: usize::MAX, ..p };
    let engine = Engine::builder(dir).dimension(dim).metric(Metric::Cosine).durability(Durability::Buffered).graph(Some(off)).open()?;
    let (mut chunks, n) = F32Chunks::open(base, dim)?;
    let mut rows = Vec::new();
    let mut at = 0usize;
    while chunks.next_rows(5000, &mut rows)? > 0 {
        let mut b = WriteBatch::new();
        for v in rows.chunks_exact(dim) {
            b.add(Record::new(at.to_string(), v.to_vec()).with_metadata(meta(at)));
            at += 1;
        }
        engine.write(b)?;
    }
    engine.close()?;
    Ok(n)
}

fn meta(i: usize) -> memento::Metadata {
    let mut m = memento::Metadata::new();
    m.insert("p".into(), (i % 100).into());
    m
}

/// recall@k of `got` against `want` (lists of ids per query).
fn recall(got: &[Vec<u64>], want: &[Vec<u64>]) -> f64 {
    let (mut hit, mut total) = (0usize, 0usize);
    for (g, w) in got.iter().zip(want) {
        hit += g.iter().filter(|x| w.contains(x)).count();
        total += w.len();
    }
    hit as f64 / total.max(1) as f64
}

/// Filtered searches at 1%, 10% and 50% selectivity under the automatic plan.
fn filtered(engine: &Engine, queries: &[f32], dim: usize, k: usize) -> BoxResult<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for (pct, json) in [(1, r#"{"p": {"$lt": 1}}"#), (10, r#"{"p": {"$lt": 10}}"#), (50, r#"{"p": {"$lt": 50}}"#)] {
        let f = memento::Filter::from_json_str(json)?;
        let mut o = SearchOptions::new(k);
        o.filter = Some(&f);
        let (mut times, ids) = timed(engine, queries, dim, &o)?;
        o.mode = ScanMode::Exact;
        let (_, exact) = timed(engine, queries, dim, &o)?;
        times.sort_unstable();
        let short = ids.iter().filter(|r| r.len() < k).count();
        let r = recall(&ids, &exact);
        let p50 = ms(percentile(&mut times, 50.0));
        eprintln!("ann: filter {pct}%: recall {r:.4}, p50 {p50:.3} ms, {short} queries short of k");
        out.push(json!({"selectivity_pct": pct, "recall": r, "p50_ms": p50, "short_queries": short, "queries": ids.len()}));
    }
    Ok(out)
}

/// Replace half the records (same vectors), catch the graph up, and measure recall at `ef`
/// before and after.
fn churn(engine: &Engine, base: &Path, queries: &[f32], dim: usize, k: usize, ef: usize) -> BoxResult<serde_json::Value> {
    let mut o = SearchOptions::new(k);
    o.mode = ScanMode::Graph;
    o.ef = Some(ef);
    let (_, before) = timed(engine, queries, dim, &o)?;
    let mut x = SearchOptions::new(k);
    x.mode = ScanMode::Exact;
    let (_, exact) = timed(engine, queries, dim, &x)?;
    let (mut chunks, _) = F32Chunks::open(base, dim)?;
    let mut rows = Vec::new();
    let mut at = 0usize;
    let t = Instant::now();
    while chunks.next_rows(5000, &mut rows)? > 0 {
        let mut b = WriteBatch::new();
        for v in rows.chunks_exact(dim) {
            if at.is_multiple_of(2) {
                b.upsert(Record::new(at.to_string(), v.to_vec()).with_metadata(meta(at)));
            }
            at += 1;
        }
        engine.write(b)?;
    }
    engine.build_index()?;
    let took = t.elapsed();
    let (_, after) = timed(engine, queries, dim, &o)?;
    let (rb, ra) = (recall(&before, &exact), recall(&after, &exact));
    eprintln!("ann: churn (50% replaced, {:.1} s with the graph caught up): recall@{k} at ef {ef}: {rb:.4} fresh, {ra:.4} after", took.as_secs_f64());
    Ok(json!({"ef": ef, "replaced": at.div_ceil(2), "recall_fresh": rb, "recall_after": ra, "seconds": took.as_secs_f64()}))
}

fn ids_of(hits: &[memento::SearchHit]) -> Vec<u64> {
    hits.iter().filter_map(|h| h.id.parse().ok()).collect()
}

/// Single-query latencies and ids of `queries` under `opts`.
fn timed(engine: &Engine, queries: &[f32], dim: usize, opts: &SearchOptions<'_>) -> BoxResult<(Vec<Duration>, Vec<Vec<u64>>)> {
    for q in queries.chunks_exact(dim).cycle().take(WARMUP) {
        engine.search_with(q, opts)?;
    }
    let mut times = Vec::new();
    let mut ids = Vec::new();
    for q in queries.chunks_exact(dim) {
        let t = Instant::now();
        let hits = engine.search_with(q, opts)?;
        times.push(t.elapsed());
        ids.push(ids_of(&hits));
    }
    Ok((times, ids))
}

fn dir_bytes(dir: &Path, name: &str) -> u64 {
    std::fs::metadata(dir.join(name)).map_or(0, |m| m.len())
}

pub fn run(args: &Args) -> BoxResult<()> {
    args.check_known(&["base", "queries", "dim", "k", "m", "ef-construction", "efs", "store", "out", "nq", "churn-ef", "phase"])?;
    let dim = args.num("dim", 384)?;
    let k = args.num("k", 10)?;
    let base = PathBuf::from(args.required("base")?);
    let store = PathBuf::from(args.required("store")?);
    let out = PathBuf::from(args.required("out")?);
    let mut queries = read_f32_file(Path::new(args.required("queries")?), dim)?;
    let nq = args.num("nq", queries.len() / dim)?;
    queries.truncate(nq * dim);
    let efs: Vec<usize> = args.list("efs", "10,16,24,32,48,64,96,128,192,256").iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
    let p = params(args)?;
    let phase = args.get("phase").unwrap_or("all");
    let (build, sweep, rest) = match phase {
        "all" => (true, true, true),
        "build" => (true, false, false),
        "sweep" => (false, true, false),
        "rest" => (false, false, true),
        other => return Err(format!("--phase {other:?}: expected all, build, sweep or rest").into()),
    };
    let mut doc = json!({"engine": "memento", "m": p.m, "ef_construction": p.ef_construction, "phase": phase});
    if build {
        merge(&mut doc, build_phase(&store, &base, dim, k, p, &queries)?);
    }
    if !(sweep || rest) {
        std::fs::write(&out, serde_json::to_vec(&doc)?)?;
        return Ok(());
    }
    let engine = open(&store, p)?;
    if sweep {
        merge(&mut doc, sweep_phase(&engine, &queries, dim, k, &efs)?);
    }
    if rest {
        let filters = filtered(&engine, &queries[..dim * nq.min(200)], dim, k)?;
        let churn_ef = args.num("churn-ef", 32)?;
        // Last: it replaces half the records.
        let churned = churn(&engine, &base, &queries[..dim * nq.min(500)], dim, k, churn_ef)?;
        merge(&mut doc, json!({"filters": filters, "churn": churned}));
    }
    engine.close()?;
    std::fs::write(&out, serde_json::to_vec(&doc)?)?;
    Ok(())
}

/// The store of an earlier phase, its graph searched on one thread.
fn open(store: &Path, p: GraphParams) -> memento::Result<Engine> {
    Engine::builder(store).create(false).graph(Some(p)).search_threads(1).open()
}

/// Ingest, build the graph (timed), then time opening the store to its first answer.
fn build_phase(store: &Path, base: &Path, dim: usize, k: usize, p: GraphParams, queries: &[f32]) -> BoxResult<serde_json::Value> {
    eprintln!("ann: ingesting {}", base.display());
    let n = ingest(store, base, dim, p)?;
    let engine = open(store, p)?;
    eprintln!("ann: building the graph over {n} vectors");
    let t = Instant::now();
    engine.build_index()?;
    let build = t.elapsed();
    eprintln!("ann: built in {:.1} s ({:.0} vectors/s)", build.as_secs_f64(), n as f64 / build.as_secs_f64());
    engine.close()?;
    let index_bytes = dir_bytes(store, memento::graph::GRAPH_FILE);
    let store_bytes: u64 = std::fs::read_dir(store)?.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum();

    let t = Instant::now();
    let engine = open(store, p)?;
    let mut o = SearchOptions::new(k);
    o.mode = ScanMode::Graph;
    engine.search_with(&queries[..dim], &o)?;
    let first = t.elapsed();
    engine.close()?;
    Ok(json!({
        "n": n,
        "build_seconds": build.as_secs_f64(),
        "build_vectors_per_s": n as f64 / build.as_secs_f64(),
        "index_bytes": index_bytes,
        "store_bytes": store_bytes,
        "open_first_answer_ms": ms(first),
    }))
}

/// The ef sweep on one thread, then the exact answer of the first 200 queries.
fn sweep_phase(engine: &Engine, queries: &[f32], dim: usize, k: usize, efs: &[usize]) -> BoxResult<serde_json::Value> {
    let nq = queries.len() / dim;
    let mut runs = Vec::new();
    for &ef in efs {
        // Ids and distances only, as the peers return labels and distances.
        let mut o = SearchOptions::new(k).ids_only();
        o.mode = ScanMode::Graph;
        o.ef = Some(ef);
        let t = Instant::now();
        let (mut times, ids) = timed(engine, queries, dim, &o)?;
        let wall = t.elapsed();
        times.sort_unstable();
        let (p50, p99) = (ms(percentile(&mut times, 50.0)), ms(percentile(&mut times, 99.0)));
        let qps = nq as f64 / times.iter().sum::<Duration>().as_secs_f64();
        eprintln!("ann: ef {ef}: p50 {p50:.3} ms, p99 {p99:.3} ms, {qps:.0} q/s ({:.1} s)", wall.as_secs_f64());
        runs.push(json!({"ef": ef, "p50_ms": p50, "p99_ms": p99, "qps": qps, "ids": ids}));
    }
    let mut o = SearchOptions::new(k);
    o.mode = ScanMode::Quantized;
    let (mut times, ids) = timed(engine, &queries[..dim * nq.min(200)], dim, &o)?;
    times.sort_unstable();
    let exact = json!({"p50_ms": ms(percentile(&mut times, 50.0)), "ids": ids});
    Ok(json!({"runs": runs, "exact": exact}))
}
