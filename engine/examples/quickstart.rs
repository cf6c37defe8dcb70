//! The main job: the embedded default store with the default model. It remembers a real text
//! corpus (a JSONL file of `{"text", "metadata"}` lines: `make run` passes the prose paragraphs
//! of the Python standard library's docstrings, made by `tools/corpus/docstrings.py`), then
//! answers a few questions by meaning, one of them filtered. A second run finds every text
//! already stored (ids are derived from the text) and embeds nothing.
//!
//! The store lives in `$MEMENTO_HOME`, else `$XDG_DATA_HOME/memento/default`, else
//! `~/.local/share/memento/default`. The model is the provisioned default
//! (`memento::embed::model_dir`), installed by `make setup`.
//!
//! Usage: `cargo run --release --example quickstart -- CORPUS.jsonl`

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use memento::{Engine, Error, Filter, Memory, Metadata};

fn default_store() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMENTO_HOME") {
        return PathBuf::from(p);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("memento").join("default")
}

fn read_corpus(path: &str) -> Result<Vec<Memory>, Box<dyn std::error::Error>> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read the corpus {path}: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| format!("{path}:{}: {e}", n + 1))?;
        let text = v["text"].as_str().ok_or_else(|| format!("{path}:{}: no \"text\"", n + 1))?;
        let metadata: Option<Metadata> = v.get("metadata").and_then(|m| m.as_object()).cloned();
        out.push(Memory { id: None, text: text.to_owned(), metadata });
    }
    Ok(out)
}

fn show(hits: &[memento::SearchHit]) {
    for h in hits {
        let module = h.metadata.as_ref().and_then(|m| m.get("module")).and_then(|m| m.as_str()).unwrap_or("?");
        let text = h.text.as_deref().unwrap_or("");
        let short: String = text.chars().take(110).collect();
        println!("    {:.3}  [{module}] {short}{}", 1.0 - h.distance, if text.chars().count() > 110 { "…" } else { "" });
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let corpus = std::env::args().nth(1).ok_or("usage: quickstart CORPUS.jsonl")?;
    let path = default_store();
    let engine = match Engine::builder(&path).default_model().open() {
        Err(Error::ModelMismatch { store, .. }) if store.starts_with("none") => {
            return Err(format!(
                "{} holds a raw-vector store from an older main job; move it away (or set MEMENTO_HOME) to make a text store there",
                path.display()
            )
            .into())
        }
        r => r?,
    };
    let model = engine.model().map(|m| m.id.clone()).unwrap_or_default();
    println!("opened {} with the model {model} in {:.0} ms ({} records)", path.display(), start.elapsed().as_secs_f64() * 1e3, engine.count());

    let memories = read_corpus(&corpus)?;
    let total = memories.len();
    let new: Vec<Memory> = memories.into_iter().filter(|m| !engine.contains(&Engine::content_id(&m.text)).unwrap_or(false)).collect();
    println!("corpus: {total} texts from {corpus}; {} not stored yet", new.len());
    if !new.is_empty() {
        let t = Instant::now();
        let n_new = new.len();
        let mut done = 0;
        let mut it = new.into_iter().peekable();
        while it.peek().is_some() {
            // One commit (one fsync) per chunk, so an interrupted run keeps what it embedded.
            let chunk: Vec<Memory> = it.by_ref().take(1024).collect();
            let len = chunk.len();
            let mut progress = |d: usize, _: usize| {
                let rate = (done + d) as f64 / t.elapsed().as_secs_f64().max(1e-9);
                eprint!("\r  embedding and storing {}/{n_new} texts ({rate:.0} texts/s)   ", done + d);
                let _ = std::io::stderr().flush();
            };
            engine.remember_batch(chunk, Some(&mut progress))?;
            done += len;
        }
        let secs = t.elapsed().as_secs_f64();
        eprintln!();
        println!("stored {n_new} texts in {secs:.1} s ({:.0} texts/s, one commit per 1,024)", n_new as f64 / secs);
    }

    let questions = [
        "How do I parse command-line options?",
        "compress a file with gzip",
        "What happens when a generator is closed?",
        "send an email through an SMTP server",
    ];
    for q in questions {
        let t = Instant::now();
        let hits = engine.recall(q, 3, None)?;
        println!("\n{q}  ({:.1} ms)", t.elapsed().as_secs_f64() * 1e3);
        show(&hits);
    }
    let only_json = Filter::from_json_str(r#"{"module": "json"}"#)?;
    let q = "write an object to a file in a readable, indented way";
    let t = Instant::now();
    let hits = engine.recall(q, 3, Some(&only_json))?;
    println!("\n{q}  where module = json  ({:.1} ms)", t.elapsed().as_secs_f64() * 1e3);
    show(&hits);
    let c = engine.cache_stats();
    println!("\n{} records; {} texts embedded by this run; done in {:.1} s", engine.count(), c.inferred, start.elapsed().as_secs_f64());
    engine.close()?;
    Ok(())
}
