//! `memento-hybrid-bench`: what a keyword and a hybrid search cost beside a vector search, on the
//! same store and the same queries (BENCHMARKS.md, "Keyword and hybrid search").
//!
//! ```text
//! memento-hybrid-bench [--sizes 10000,100000] [--nq 300] [--k 10] [--corpus FILE] [--threads N]
//! ```
//!
//! For each size, a store of that many records is built in a temporary directory: unit Gaussian
//! vectors of dimension 384 (the embedding is not what is measured: a recall embeds its query
//! once whatever the mode) and texts, then closed and reopened. The texts are synthetic: words
//! drawn from a Zipf distribution (s = 1) over a 50,000-word vocabulary, 20 to 100 words each,
//! which gives posting lists of the lengths real text gives (the commonest words in almost every
//! record). Queries are 3 to 7 words drawn from the same distribution past its 100 commonest
//! words (the words a real query keeps once its stop words are dropped), and a query vector.
//! With `--corpus FILE` (JSON lines with a `text`, such as `make run`'s corpus), one more store
//! holds those real texts, queried with 3 to 7 consecutive words of a random text past its stop
//! words.
//!
//! Each query is timed alone (after 20 warm-up queries), as a vector search (`search_with`,
//! the default scan), a keyword search and a hybrid search (reciprocal rank fusion), the three
//! interleaved query by query so the machine's noise falls on all alike. Prints a table and,
//! last, one JSON document.

use std::io::BufRead;
use std::time::{Duration, Instant};

use memento::{Engine, Fusion, Metric, Record, SearchOptions, WriteBatch};
use memento_benches::args::{Args, BoxResult};
use memento_benches::{ms, percentile, Rng, DATA_SEED, DIM, QUERY_SEED};
use serde_json::json;

const USAGE: &str = "usage: memento-hybrid-bench [--sizes 10000,100000] [--nq 300] [--k 10] [--corpus FILE] [--threads N]";

/// The synthetic vocabulary's size.
const VOCAB: usize = 50_000;
/// Query words come from past this many commonest words.
const QUERY_SKIP: usize = 100;
const WARMUP: usize = 20;

/// Words drawn from a Zipf distribution with exponent 1 over [`VOCAB`] words.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new() -> Zipf {
        let mut cdf = Vec::with_capacity(VOCAB);
        let mut sum = 0.0;
        for r in 1..=VOCAB {
            sum += 1.0 / r as f64;
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    /// A word's rank (0 = commonest), at least `skip`.
    fn rank(&self, rng: &mut Rng, skip: usize) -> usize {
        loop {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let r = self.cdf.partition_point(|&c| c < u).min(VOCAB - 1);
            if r >= skip {
                return r;
            }
        }
    }
}

/// The word of a rank: letters only, from its number in base 20 over consonants and vowels
/// alternating, so that no two ranks give one word and stemming leaves them apart.
fn word(rank: usize) -> String {
    const C: &[u8] = b"bcdfghjklmnpqrstvwxz";
    const V: &[u8] = b"aeiou";
    let mut n = rank + 1;
    let mut w = String::new();
    while n > 0 {
        w.push(char::from(C[n % C.len()]));
        n /= C.len();
        w.push(char::from(V[n % V.len()]));
        n /= V.len();
    }
    w
}

fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// One query: its words and its vector.
struct Query {
    text: String,
    vector: Vec<f32>,
}

fn synthetic_texts(n: usize, zipf: &Zipf) -> Vec<String> {
    let mut rng = Rng::new(DATA_SEED ^ 0x7465_7874);
    (0..n).map(|_| (0..20 + below(&mut rng, 81)).map(|_| word(zipf.rank(&mut rng, 0))).collect::<Vec<_>>().join(" ")).collect()
}

fn synthetic_queries(nq: usize, zipf: &Zipf) -> Vec<Query> {
    let mut rng = Rng::new(QUERY_SEED);
    (0..nq)
        .map(|_| {
            let text = (0..3 + below(&mut rng, 5)).map(|_| word(zipf.rank(&mut rng, QUERY_SKIP))).collect::<Vec<_>>().join(" ");
            Query { text, vector: rng.unit_vectors(1, DIM) }
        })
        .collect()
}

fn corpus_queries(texts: &[String], nq: usize) -> Vec<Query> {
    let mut rng = Rng::new(QUERY_SEED);
    let mut out = Vec::with_capacity(nq);
    while out.len() < nq {
        let t = &texts[below(&mut rng, texts.len())];
        let words: Vec<&str> =
            t.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty() && !memento::STOP_WORDS.contains(&w.to_lowercase().as_str())).collect();
        if words.len() < 8 {
            continue;
        }
        let len = 3 + below(&mut rng, 5);
        let start = below(&mut rng, words.len() - len);
        out.push(Query { text: words[start..start + len].join(" "), vector: rng.unit_vectors(1, DIM) });
    }
    out
}

fn read_corpus(path: &str) -> BoxResult<Vec<String>> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        if let Some(t) = v.get("text").and_then(|t| t.as_str()) {
            out.push(t.to_owned());
        }
    }
    Ok(out)
}

/// A reopened store of `texts` with seeded vectors.
fn build(dir: &std::path::Path, texts: &[String]) -> BoxResult<Engine> {
    let e = Engine::builder(dir).dimension(DIM).metric(Metric::Cosine).durability(memento::Durability::Buffered).open()?;
    let mut rng = Rng::new(DATA_SEED);
    for (c, chunk) in texts.chunks(2_000).enumerate() {
        let mut b = WriteBatch::new();
        for (i, t) in chunk.iter().enumerate() {
            b.add(Record::new(format!("r{}", c * 2_000 + i), rng.unit_vectors(1, DIM)).with_text(t.clone()));
        }
        e.write(b)?;
    }
    e.close()?;
    Ok(Engine::open(dir)?)
}

/// Per-query times of the three searches, interleaved.
fn measure(e: &Engine, queries: &[Query], k: usize, threads: Option<usize>) -> BoxResult<[Vec<Duration>; 3]> {
    let mut opts = SearchOptions::new(k);
    opts.threads = threads;
    let mut times: [Vec<Duration>; 3] = Default::default();
    for (i, q) in queries.iter().enumerate() {
        let t = Instant::now();
        e.search_with(&q.vector, &opts)?;
        let v = t.elapsed();
        let t = Instant::now();
        e.keyword_search(&q.text, &opts)?;
        let kw = t.elapsed();
        let t = Instant::now();
        e.search_hybrid(&q.vector, &q.text, &opts, Fusion::default())?;
        let h = t.elapsed();
        if i >= WARMUP {
            times[0].push(v);
            times[1].push(kw);
            times[2].push(h);
        }
    }
    Ok(times)
}

fn main() -> BoxResult<()> {
    let args = Args::parse(std::env::args().skip(1), USAGE)?;
    args.check_known(&["sizes", "nq", "k", "corpus", "threads"])?;
    let sizes: Vec<usize> = args.list("sizes", "10000,100000").iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
    let nq = args.num("nq", 300)? + WARMUP;
    let k = args.num("k", 10)?;
    let threads = args.get("threads").map(str::parse).transpose()?;
    let zipf = Zipf::new();
    let mut sets: Vec<(String, Vec<String>, Vec<Query>)> =
        sizes.iter().map(|&n| (format!("synthetic {n}"), synthetic_texts(n, &zipf), synthetic_queries(nq, &zipf))).collect();
    if let Some(path) = args.get("corpus") {
        let texts = read_corpus(path)?;
        let queries = corpus_queries(&texts, nq);
        sets.push((format!("corpus {}", texts.len()), texts, queries));
    }
    let mut rows = Vec::new();
    println!("{:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}", "set", "vector p50", "p95", "keyword p50", "p95", "hybrid p50", "p95", "hyb/vec");
    for (name, texts, queries) in &sets {
        let dir = tempfile::tempdir()?;
        eprintln!("{name}: building the store");
        let e = build(dir.path(), texts)?;
        let [mut v, mut kw, mut h] = measure(&e, queries, k, threads)?;
        let (v50, v95, k50, k95, h50, h95) = (
            ms(percentile(&mut v, 50.0)),
            ms(percentile(&mut v, 95.0)),
            ms(percentile(&mut kw, 50.0)),
            ms(percentile(&mut kw, 95.0)),
            ms(percentile(&mut h, 50.0)),
            ms(percentile(&mut h, 95.0)),
        );
        println!("{name:<22} {v50:>10.3} {v95:>10.3} {k50:>11.3} {k95:>10.3} {h50:>10.3} {h95:>10.3} {:>8.2}×", h50 / v50);
        rows.push(json!({
            "set": name, "records": texts.len(), "queries": queries.len() - WARMUP, "k": k,
            "vector_ms": {"p50": v50, "p95": v95}, "keyword_ms": {"p50": k50, "p95": k95}, "hybrid_ms": {"p50": h50, "p95": h95},
        }));
        e.close()?;
    }
    println!("{}", json!({ "hybrid_bench": rows }));
    Ok(())
}
