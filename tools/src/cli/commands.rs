//! The commands of `memento`, each over the `memento::Engine` API.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use memento::embed::{hex, model_dir, Manifest, DEFAULT_MODEL};
use memento::graph::Estimate;
use memento::{Engine, Error, Filter, GraphInfo, Memory, Metadata, Metric, Record, WriteBatch};
use serde_json::{json, Value};

use super::check::{self, Checked, State};
use super::input::{self, ExportHeader, InputRecord, Source, EXPORT_VERSION};
use super::output::{compact_metadata, f32_value, print_json, record_value, size, vector_value, write_json_line};
use super::progress::{duration, Progress};
use super::store::{self, Need, NewStore, StoreArg, Target};
use super::{AddArgs, DeleteArgs, ExportArgs, GetArgs, ImportArgs, IndexBuildArgs, IngestArgs, InitArgs, ScopeArgs, StatsArgs, UpdateArgs};
use crate::UsageError;

/// What every command gets.
pub struct Ctx {
    /// The store.
    pub store: StoreArg,
    /// `--json`.
    pub json: bool,
}

pub(super) fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

fn parse_filter(s: Option<&str>) -> Result<Option<Filter>> {
    s.map(|s| {
        Filter::from_json_str(s).map_err(|e| match e {
            Error::InvalidFilter { reason } => usage(format!("--where is not a valid filter: {reason}")),
            other => usage(format!("--where: {other}")),
        })
    })
    .transpose()
}

/// A store in a few words: `a text store (model all-minilm-l6-v2, 384 dimensions, cosine)`.
fn describe(engine: &Engine) -> String {
    match engine.model() {
        Some(m) => format!("a text store (model {}, {} dimensions, {})", m.id, engine.dimension(), engine.metric().name()),
        None => format!("a raw-vector store ({} dimensions, {})", engine.dimension(), engine.metric().name()),
    }
}

fn model_value(engine: &Engine) -> Value {
    engine.model().map_or(Value::Null, |m| json!({"id": m.id, "dimension": m.dim, "sha256": hex(&m.hash)}))
}

pub fn init(ctx: &Ctx, a: InitArgs, out: &mut dyn Write) -> Result<()> {
    let dir = &ctx.store.dir;
    store::refuse_non_directory(dir)?;
    if store::exists(dir) {
        bail!("a store exists already at {}", dir.display());
    }
    let model = a.dimension.is_none().then(|| model_dir(a.model.as_deref().unwrap_or(DEFAULT_MODEL)));
    let engine = NewStore::plan(dir, a.dimension, a.metric.into(), a.page_size, model.as_deref())?.group_access(a.group).create()?;
    if ctx.json {
        let v = json!({"store": dir.display().to_string(), "dimension": engine.dimension(), "metric": engine.metric().name(), "model": model_value(&engine)});
        print_json(out, &v)?;
    } else {
        writeln!(out, "created {} at {}", describe(&engine), dir.display())?;
    }
    store::close(engine)
}

/// The records given on the command line, in files, or on stdin; `vector` is `add --vector`.
/// Files are read by the passes over the [`Source`].
fn collect(args: &IngestArgs, vector: Option<&str>) -> Result<Source> {
    let meta = args.meta.as_deref().map(input::parse_metadata_arg).transpose().map_err(|e| usage(format!("--meta: {e}")))?;
    let vector = vector.map(input::parse_vector).transpose().map_err(|e| usage(format!("--vector: {e}")))?;
    if args.id.is_some() && (args.texts.len() > 1 || (args.texts.is_empty() && vector.is_none())) {
        return Err(usage("--id names the one record given on the command line: give one TEXT (or --vector)"));
    }
    if vector.is_some() && args.texts.len() > 1 {
        return Err(usage("--vector is the vector of one record: give at most one TEXT with it"));
    }
    if vector.is_some() && args.texts.is_empty() && args.id.is_none() {
        return Err(usage("a record with only a vector needs an --id"));
    }
    let mut recs = Vec::new();
    if let Some(v) = vector {
        recs.push(InputRecord {
            id: args.id.clone(),
            text: args.texts.first().cloned(),
            metadata: None,
            metadata_error: None,
            vector: Some(v),
            origin: "the command line".into(),
        });
    } else {
        for (i, t) in args.texts.iter().enumerate() {
            if t.trim().is_empty() {
                return Err(usage(format!("text argument {} is empty", i + 1)));
            }
            recs.push(InputRecord {
                id: args.id.clone(),
                text: Some(t.clone()),
                metadata: None,
                metadata_error: None,
                vector: None,
                origin: format!("text argument {}", i + 1),
            });
        }
    }
    let mut files = args.files.clone();
    if recs.is_empty() && files.is_empty() {
        if std::io::stdin().is_terminal() {
            return Err(usage("nothing to store: give TEXT arguments, --file FILE, or pipe records into stdin"));
        }
        files.push("-".into());
    }
    args.scope.scope().check().map_err(|e| usage(e.to_string()))?;
    Ok(Source::new(recs, &files, args.format, meta, args.scope.scope()))
}

/// What an ingest did.
struct Summary {
    records: usize,
    new: usize,
    updated: usize,
    unchanged: usize,
    embedded: u64,
    commits: usize,
    secs: f64,
    /// The first record's id and what became of it.
    first: Option<(String, State)>,
    /// Every record's id, for `--json`.
    ids: Vec<String>,
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Whether storing `r` would leave the stored record `old` as it is; `stored` is the vector
/// the store would keep of `r`'s (normalised under cosine).
fn same(old: &Record, r: &InputRecord, stored: Option<&[f32]>) -> bool {
    if old.text != r.text {
        return false;
    }
    match stored {
        Some(v) => old.metadata == r.metadata && same_bits(&old.vector, v),
        // A text under its content id keeps its metadata when none is given.
        None => (r.id.is_none() && r.metadata.is_none()) || old.metadata == r.metadata,
    }
}

/// What writing `r` under `id` does to `engine`'s store (the second pass's `classify`).
fn classify(engine: &Engine, id: &str, r: &InputRecord) -> Result<State> {
    let Some(old) = engine.get(id).map_err(|e| store::explain(e, engine.path()))? else {
        return Ok(State::New);
    };
    // What the store keeps of the vector: under cosine, the engine's own normalisation (which
    // leaves a vector of unit length as it is, so an export imports bit for bit).
    let normalised = match &r.vector {
        Some(v) if engine.metric() == Metric::Cosine => {
            let mut n = v.clone();
            memento::kernels::normalize(&mut n);
            Some(n)
        }
        _ => None,
    };
    let stored = normalised.as_deref().or(r.vector.as_deref());
    Ok(if same(&old, r, stored) { State::Unchanged } else { State::Updated })
}

/// The second pass over an input, into `target`: every record checked, and what writing each
/// does (an existing store is asked; in a new one every id is new).
fn check_input(target: &Target, src: &Source) -> Result<Checked> {
    match target {
        Target::Open(engine) => check::records(engine, engine.path(), src, |id, r| classify(engine, id, r)),
        Target::New(_) => check::records(target.checker(), target.dir(), src, |_, _| Ok(State::New)),
    }
}

/// The pass that writes: stores the records of `src` that `input` found to change something,
/// those with a vector as they are, texts through `remember_batch` (embedded unless stored
/// already), so a second run writes and embeds nothing. One commit per `batch` records; memory
/// holds one batch. `ids`: keep every id for the summary (`--json`).
fn ingest(engine: &Engine, src: &Source, mut input: Checked, batch: usize, label: &'static str, unit: &'static str, ids: bool) -> Result<Summary> {
    let start = Instant::now();
    let dir = engine.path().to_path_buf();
    let inferred_before = engine.cache_stats().inferred;
    let mut s = Summary { records: 0, new: 0, updated: 0, unchanged: 0, embedded: 0, commits: 0, secs: 0.0, first: None, ids: Vec::new() };
    let mut bar = Progress::new(label, unit, input.changed());
    let mut done = 0;
    let mut todo = Vec::with_capacity(batch.min(input.changed()));
    let mut write = |todo: &mut Vec<(String, InputRecord)>, s: &mut Summary| -> Result<()> {
        let mut writes = WriteBatch::new();
        let mut memories = Vec::new();
        for (id, r) in todo.drain(..) {
            match r.vector {
                Some(v) => {
                    let mut rec = Record::new(id, v);
                    rec.text = r.text;
                    rec.metadata = r.metadata;
                    writes.upsert(rec);
                }
                None => memories.push(Memory { id: r.id, text: r.text.unwrap_or_default(), metadata: r.metadata }),
            }
        }
        let n = writes.len() + memories.len();
        let failed = |e: Error| store::explain(e, &dir).context(format!("storing records {} to {} (the {done} before are stored)", done + 1, done + n));
        if !writes.is_empty() {
            engine.write(writes).map_err(failed)?;
            s.commits += 1;
        }
        if !memories.is_empty() {
            let base = done + n - memories.len();
            let mut report = |d: usize, _all: usize| bar.update(base + d);
            engine.remember_batch(memories, Some(&mut report)).map_err(failed)?;
            s.commits += 1;
        }
        done += n;
        bar.update(done);
        Ok(())
    };
    src.each(|place, r| {
        let Some((id, state)) = input.state(place, &r) else {
            bail!("{}: the input changed while it was being stored: this record is not the one checked (the records before it may be stored)", r.origin);
        };
        s.records += 1;
        match state {
            State::New => s.new += 1,
            State::Updated => s.updated += 1,
            State::Unchanged => s.unchanged += 1,
        }
        if s.first.is_none() {
            s.first = Some((id.clone(), state));
        }
        if ids {
            s.ids.push(id.clone());
        }
        if state != State::Unchanged {
            todo.push((id, r));
            if todo.len() == batch {
                write(&mut todo, &mut s)?;
            }
        }
        Ok(())
    })?;
    if !todo.is_empty() {
        write(&mut todo, &mut s)?;
    }
    if s.records != input.records() {
        bail!("the input changed while it was being stored: it held {} records when checked, {} now (the records read are stored)", input.records(), s.records);
    }
    bar.finish();
    s.embedded = engine.cache_stats().inferred - inferred_before;
    s.secs = start.elapsed().as_secs_f64();
    Ok(s)
}

/// The summary of an ingest.
fn print_summary(ctx: &Ctx, out: &mut dyn Write, verb: &str, unit: &str, s: &Summary) -> Result<()> {
    let word = |st: State| match st {
        State::New => "new",
        State::Updated => "updated",
        State::Unchanged => "unchanged",
    };
    if ctx.json {
        let v = json!({
            "records": s.records,
            "new": s.new,
            "updated": s.updated,
            "unchanged": s.unchanged,
            "embedded": s.embedded,
            "commits": s.commits,
            "seconds": (s.secs * 1000.0).round() / 1000.0,
            "ids": s.ids,
        });
        return print_json(out, &v);
    }
    if let (1, Some((id, st))) = (s.records, &s.first) {
        let embedded = if s.embedded > 0 { ", embedded" } else { "" };
        writeln!(out, "{verb} {id} ({}{embedded})", word(*st))?;
    } else {
        let rate = if s.embedded > 0 && s.secs > 0.0 { format!(" ({:.0}/s)", s.embedded as f64 / s.secs) } else { String::new() };
        writeln!(
            out,
            "{verb} {} {unit} in {}: {} new, {} updated, {} unchanged; {} embedded{rate}; {} commit{}",
            s.records,
            if s.secs < 10.0 { format!("{:.2} s", s.secs) } else { duration(s.secs) },
            s.new,
            s.updated,
            s.unchanged,
            s.embedded,
            s.commits,
            if s.commits == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}

pub fn remember(ctx: &Ctx, a: IngestArgs, out: &mut dyn Write) -> Result<()> {
    let mut src = collect(&a, None)?;
    let mut scan = check::scan(&mut src)?;
    if let Some(origin) = &scan.first_vector {
        bail!("{origin}: `remember` takes texts, and this record has a vector; use `memento add` for records with vectors");
    }
    let target = store::target(&ctx.store, Need::Text, true)?;
    scan.ids()?;
    let checked = check_input(&target, &src)?;
    let engine = target.into_engine()?;
    let s = ingest(&engine, &src, checked, a.batch, "remembering", "texts", ctx.json)?;
    store::close(engine)?;
    print_summary(ctx, out, "remembered", "texts", &s)
}

pub fn add(ctx: &Ctx, a: AddArgs, out: &mut dyn Write) -> Result<()> {
    let mut src = collect(&a.input, a.vector.as_deref())?;
    let mut scan = check::scan(&mut src)?;
    let target = if scan.any_text { store::target(&ctx.store, Need::Text, true)? } else { store::target(&ctx.store, Need::Vectors, false)? };
    scan.ids()?;
    let checked = check_input(&target, &src)?;
    let engine = target.into_engine()?;
    let s = ingest(&engine, &src, checked, a.input.batch, "adding", "records", ctx.json)?;
    store::close(engine)?;
    print_summary(ctx, out, "added", "records", &s)
}

/// `--where` narrowed to the scope's records.
pub(super) fn scoped_filter(filter: Option<&str>, scope: &ScopeArgs) -> Result<Option<Filter>> {
    let filter = parse_filter(filter)?;
    scope.scope().narrow(filter).map_err(|e| usage(e.to_string()))
}

fn print_records(ctx: &Ctx, out: &mut dyn Write, records: &[Record], with_vector: bool) -> Result<()> {
    if ctx.json {
        return print_json(out, &Value::Array(records.iter().map(|r| record_value(r, with_vector)).collect()));
    }
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "id        {}", r.id)?;
        if let Some(t) = &r.text {
            writeln!(out, "text      {}", t.replace('\n', "\n          "))?;
        }
        if r.metadata.is_some() {
            writeln!(out, "metadata  {}", compact_metadata(r.metadata.as_ref()))?;
        }
        if with_vector {
            writeln!(out, "vector    {}", vector_value(&r.vector))?;
        } else {
            writeln!(out, "vector    {} dimensions (--vector shows it)", r.vector.len())?;
        }
    }
    Ok(())
}

fn not_found(missing: &[String]) -> anyhow::Error {
    match missing {
        [one] => anyhow!("no record has the id {one:?}"),
        many => anyhow!("no records have the ids {}", many.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ")),
    }
}

pub fn get(ctx: &Ctx, a: GetArgs, out: &mut dyn Write) -> Result<()> {
    let filter = scoped_filter(a.filter.as_deref(), &a.scope)?;
    let engine = store::open_to_read(&ctx.store, Need::Vectors)?;
    let explain = |e| store::explain(e, engine.path());
    let records = match &filter {
        Some(f) => engine.get_where(f, a.limit).map_err(explain)?,
        None => {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for id in &a.ids {
                match engine.get(id).map_err(explain)? {
                    Some(r) => found.push(r),
                    None => missing.push(id.clone()),
                }
            }
            if !missing.is_empty() {
                return Err(not_found(&missing));
            }
            found
        }
    };
    if records.is_empty() && !ctx.json {
        writeln!(out, "no records match")?;
    } else {
        print_records(ctx, out, &records, a.vector)?;
    }
    store::close(engine)
}

pub fn delete(ctx: &Ctx, a: DeleteArgs, out: &mut dyn Write) -> Result<()> {
    let filter = scoped_filter(a.filter.as_deref(), &a.scope)?;
    let engine = store::open(&ctx.store, Need::Vectors, false)?;
    let explain = |e| store::explain(e, engine.path());
    let (deleted, missing) = match &filter {
        Some(f) => (engine.delete_where(f).map_err(explain)?, Vec::new()),
        None => {
            let mut b = WriteBatch::new();
            let mut missing = Vec::new();
            let mut seen = HashSet::new();
            // An id no record can have is a bad argument (as the engine's delete says), not a
            // missing record that --missing-ok would let pass.
            for id in &a.ids {
                memento::check_id(id).map_err(explain)?;
            }
            for id in &a.ids {
                if !seen.insert(id) {
                    continue;
                }
                if engine.contains(id).map_err(explain)? {
                    b.delete(id.clone());
                } else {
                    missing.push(id.clone());
                }
            }
            if !missing.is_empty() && !a.missing_ok {
                return Err(not_found(&missing).context("nothing was deleted"));
            }
            let n = if b.is_empty() { 0 } else { engine.write(b).map_err(explain)?.deleted };
            (n, missing)
        }
    };
    if ctx.json {
        print_json(out, &json!({"deleted": deleted, "missing": missing}))?;
    } else {
        let missing = if missing.is_empty() { String::new() } else { format!(" ({} not found)", missing.len()) };
        writeln!(out, "deleted {deleted} record{}{missing}", if deleted == 1 { "" } else { "s" })?;
    }
    store::close(engine)
}

pub fn update(ctx: &Ctx, a: UpdateArgs, out: &mut dyn Write) -> Result<()> {
    let meta = a.meta.as_deref().map(input::parse_metadata_arg).transpose().map_err(|e| usage(format!("--meta: {e}")))?;
    let mut engine = store::open(&ctx.store, Need::Vectors, false)?;
    // The arguments before the lookup, as the engine's update checks them: an id no record can
    // have, or metadata no record can hold, is a bad argument, not a missing record.
    memento::check_id(&a.id).map_err(|e| store::explain(e, engine.path()))?;
    if let Some(m) = &meta {
        memento::check_metadata(m).map_err(|e| store::explain(e, engine.path()))?;
    }
    let old = engine.get(&a.id).map_err(|e| store::explain(e, engine.path()))?.ok_or_else(|| not_found(std::slice::from_ref(&a.id)))?;
    let new_text = a.text.filter(|t| old.text.as_deref() != Some(t.as_str()));
    if new_text.is_some() && engine.model().is_some() {
        // The new text is embedded: reopen with the model.
        store::close(engine)?;
        engine = store::open(&ctx.store, Need::Text, false)?;
    }
    // What the metadata becomes, to report whether it changes; a merge computes it with the
    // engine's definition, and the engine makes the merge itself when it commits.
    let new_meta: Option<Metadata> = match &meta {
        _ if a.clear_meta => None,
        Some(m) if a.merge => Some(memento::merge_metadata(old.metadata.as_ref(), m)),
        Some(m) => Some(m.clone()),
        None => old.metadata.clone(),
    };
    let meta_changed = new_meta != old.metadata;
    let mut b = WriteBatch::new();
    let mut embedded = false;
    if let Some(t) = &new_text {
        // The engine embeds a text store's new text (the same path as the library's and
        // Python's update_text); a raw-vector store keeps the vector.
        b.update_text(a.id.clone(), Some(t.clone()));
        embedded = engine.model().is_some();
    }
    if meta_changed {
        match meta {
            // Merged by the engine, under its writer lock, into the metadata as it is then.
            Some(patch) if a.merge => b.merge_metadata(a.id.clone(), patch),
            _ => b.update_metadata(a.id.clone(), new_meta.clone()),
        };
    }
    if !b.is_empty() {
        engine.write(b).map_err(|e| store::explain(e, engine.path()))?;
    }
    if ctx.json {
        print_json(out, &json!({"id": a.id, "text_changed": new_text.is_some(), "metadata_changed": meta_changed, "embedded": embedded}))?;
    } else if new_text.is_none() && !meta_changed {
        writeln!(out, "{} is unchanged", a.id)?;
    } else {
        let mut what = Vec::new();
        if new_text.is_some() {
            what.push(if embedded { "text (embedded again)" } else { "text (the vector is kept)" });
        }
        if meta_changed {
            what.push("metadata");
        }
        writeln!(out, "updated {}: {}", a.id, what.join(", "))?;
    }
    store::close(engine)
}

/// Size of a file and of its SQLite companions (`-wal`, `-shm`); 0 if missing.
fn file_bytes(dir: &Path, name: &str) -> u64 {
    ["", "-wal", "-shm"].iter().filter_map(|s| std::fs::metadata(dir.join(format!("{name}{s}"))).ok()).map(|m| m.len()).sum()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()).unwrap_or(0)
}

/// An estimate of the graph's recall as JSON.
fn estimate_value(e: Option<&Estimate>) -> Value {
    e.map_or(Value::Null, |e| json!({"recall": f32_value(e.recall), "sample": e.sample, "ef": e.ef}))
}

/// The graph index's state as JSON (`stats --json`, `index build --json`).
fn graph_value(g: &GraphInfo, measured: Option<Value>) -> Value {
    let mut v = json!({
        "nodes": g.nodes,
        "tail": g.tail,
        "file_nodes": g.file_nodes,
        "estimate": estimate_value(g.estimate.as_ref()),
        "used_by_auto": g.used_by_auto,
        "params": {"m": g.params.m, "ef_construction": g.params.ef_construction, "ef_search": g.params.ef_search, "min_vectors": g.params.min_vectors},
        "problem": g.problem,
    });
    if let (Some(m), Value::Object(o)) = (measured, &mut v) {
        o.insert("measured".into(), m);
    }
    v
}

/// `0.984 at ef 64 (recall@10 over 64 queries)`.
fn estimate_text(e: &Estimate, k: usize) -> String {
    format!("{:.3} at ef {} (recall@{k} over {} queries)", e.recall, e.ef, e.sample)
}

/// The graph index's lines of `stats`: what it covers, its last measured recall, whether
/// searches without --exact walk it (and why not), and any problem.
fn print_graph(out: &mut dyn Write, g: &GraphInfo, records: u64, measured: Option<Option<Estimate>>) -> Result<()> {
    if g.nodes == 0 {
        writeln!(out, "graph index      none yet ({} vectors, all scanned)", g.tail)?;
    } else {
        writeln!(out, "graph index      {} vectors in the graph, {} in the tail (scanned); its file holds {}", g.nodes, g.tail, g.file_nodes)?;
    }
    match &g.estimate {
        Some(e) => writeln!(out, "graph recall     {}, last measured", estimate_text(e, memento::DEFAULT_K))?,
        None if g.nodes > 0 => writeln!(out, "graph recall     not measured yet")?,
        None => {}
    }
    if let Some(m) = measured {
        match m {
            Some(e) => writeln!(out, "graph recall     {}, measured now", estimate_text(&e, memento::DEFAULT_K))?,
            None => writeln!(out, "graph recall     no graph to measure")?,
        }
    }
    let why_not = if g.used_by_auto {
        String::new()
    } else if (records as usize) < g.params.min_vectors {
        format!(" (below {} vectors the scans are as fast)", g.params.min_vectors)
    } else if g.nodes == 0 {
        " (no graph yet: `memento index build` builds it now)".into()
    } else if g.estimate.is_none() {
        " (its recall is not measured yet)".into()
    } else {
        " (its measured recall is too low)".into()
    };
    let used = if g.used_by_auto { "used" } else { "not used" };
    writeln!(out, "graph searches   {used} by searches without --exact{why_not}")?;
    if let Some(p) = &g.problem {
        writeln!(out, "graph problem    {p}")?;
    }
    Ok(())
}

pub fn stats(ctx: &Ctx, a: StatsArgs, out: &mut dyn Write) -> Result<()> {
    let engine = store::open_to_read(&ctx.store, Need::Vectors)?;
    let graph = engine.graph_info().map_err(|e| store::explain(e, engine.path()))?;
    let measured =
        if a.recall { Some(engine.estimate_recall(memento::DEFAULT_K, a.sample, a.ef).map_err(|e| store::explain(e, engine.path()))?) } else { None };
    let st = engine.stats();
    let dir = engine.path().to_path_buf();
    let vec_bytes = file_bytes(&dir, memento::files::VECTORS);
    let wal_bytes = file_bytes(&dir, memento::files::WAL);
    let mirror_bytes = file_bytes(&dir, memento::files::MIRROR);
    let cache_bytes = file_bytes(&dir, memento::files::EMBEDDING_CACHE);
    let total = dir_bytes(&dir);
    if ctx.json {
        let v = json!({
            "store": dir.display().to_string(),
            "model": model_value(&engine),
            "dimension": st.dimension,
            "metric": st.metric.name(),
            "records": st.count,
            "deleted": st.deleted,
            "slots": st.slots,
            "pages": st.pages,
            "vector_file_bytes": vec_bytes,
            "wal_bytes": wal_bytes,
            "mirror_bytes": mirror_bytes,
            "embedding_cache_bytes": cache_bytes,
            "total_bytes": total,
            "checkpoint_lsn": st.checkpoint_lsn,
            "last_lsn": st.last_lsn,
            "pending_vectors": st.pending_vectors,
            "recovery": st.recovery,
            "read_only": st.read_only,
            "graph": graph_value(&graph, measured.map(|m| estimate_value(m.as_ref()))),
        });
        print_json(out, &v)?;
    } else {
        let model = match &st.model {
            Some(m) => format!("{} ({} dimensions, sha256 {}…)", m.id, m.dim, &hex(&m.hash)[..12]),
            None => "none (a raw-vector store)".into(),
        };
        writeln!(out, "store            {}", dir.display())?;
        writeln!(out, "model            {model}")?;
        writeln!(out, "vectors          {} dimensions, {}", st.dimension, st.metric.name())?;
        writeln!(out, "records          {} ({} deleted, {} slots used)", st.count, st.deleted, st.slots)?;
        writeln!(out, "vector file      {} ({} pages)", size(vec_bytes), st.pages)?;
        writeln!(
            out,
            "WAL              {} ({} vectors since the checkpoint at LSN {}; last LSN {})",
            size(wal_bytes),
            st.pending_vectors,
            st.checkpoint_lsn,
            st.last_lsn
        )?;
        writeln!(out, "mirror           {}", size(mirror_bytes))?;
        if cache_bytes > 0 {
            writeln!(out, "embedding cache  {}", size(cache_bytes))?;
        }
        writeln!(out, "on disk          {}", size(total))?;
        print_graph(out, &graph, st.count, measured)?;
        for r in &st.recovery {
            writeln!(out, "recovery         {r}")?;
        }
    }
    store::close(engine)
}

/// `memento index build`: the graph index brought up to every vector, its file written.
pub fn build_index(ctx: &Ctx, a: IndexBuildArgs, out: &mut dyn Write) -> Result<()> {
    let d = memento::graph::GraphParams::default();
    let params = memento::graph::GraphParams { m: a.m.unwrap_or(d.m), ef_construction: a.ef_construction.unwrap_or(d.ef_construction), ..d };
    let engine = store::open_with_graph(&ctx.store, params)?;
    let start = Instant::now();
    engine.build_index().map_err(|e| store::explain(e, engine.path()))?;
    let secs = start.elapsed().as_secs_f64();
    let g = engine.graph_info().map_err(|e| store::explain(e, engine.path()))?;
    if ctx.json {
        let mut v = graph_value(&g, None);
        if let Value::Object(o) = &mut v {
            o.insert("seconds".into(), json!(secs));
        }
        print_json(out, &v)?;
    } else {
        let recall = g.estimate.as_ref().map_or_else(String::new, |e| format!("; recall {}", estimate_text(e, memento::DEFAULT_K)));
        writeln!(out, "graph index built in {secs:.2} s: {} vectors, its file holds {}{recall}", g.nodes, g.file_nodes)?;
    }
    store::close(engine)
}

pub fn compact(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let engine = store::open(&ctx.store, Need::Vectors, false)?;
    let c = engine.compact().map_err(|e| store::explain(e, engine.path()))?;
    if ctx.json {
        print_json(
            out,
            &json!({"live": c.live, "dropped": c.dropped, "bytes_before": c.bytes_before, "bytes_after": c.bytes_after, "seconds": c.duration.as_secs_f64()}),
        )?;
    } else {
        writeln!(
            out,
            "compacted: {} live records kept, {} deleted or replaced dropped; vector file {} -> {} in {:.2} s",
            c.live,
            c.dropped,
            size(c.bytes_before),
            size(c.bytes_after),
            c.duration.as_secs_f64()
        )?;
    }
    store::close(engine)
}

pub fn checkpoint(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let engine = store::open(&ctx.store, Need::Vectors, false)?;
    let before = engine.stats();
    engine.checkpoint().map_err(|e| store::explain(e, engine.path()))?;
    let after = engine.stats();
    if ctx.json {
        print_json(
            out,
            &json!({"vectors_written": before.pending_vectors, "wal_bytes_before": before.wal_bytes, "wal_bytes_after": after.wal_bytes, "checkpoint_lsn": after.checkpoint_lsn}),
        )?;
    } else if before.checkpoint_lsn == after.checkpoint_lsn {
        writeln!(out, "nothing to do: every commit is in the vector file already (checkpoint at LSN {})", after.checkpoint_lsn)?;
    } else {
        writeln!(
            out,
            "checkpoint at LSN {}: {} vectors written to the vector file, WAL {} -> {}",
            after.checkpoint_lsn,
            before.pending_vectors,
            size(before.wal_bytes),
            size(after.wal_bytes)
        )?;
    }
    store::close(engine)
}

fn export_header(engine: &Engine, count: usize) -> Value {
    json!({
        "memento_export": EXPORT_VERSION,
        "dimension": engine.dimension(),
        "metric": engine.metric().name(),
        "model": model_value(engine),
        "count": count,
    })
}

pub fn export(ctx: &Ctx, a: ExportArgs, out: &mut dyn Write) -> Result<()> {
    let filter = parse_filter(a.filter.as_deref())?;
    let engine = store::open_to_read(&ctx.store, Need::Vectors)?;
    let explain = |e| store::explain(e, engine.path());
    let mut file = match &a.out {
        Some(p) => Some(BufWriter::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?)),
        None => None,
    };
    let w: &mut dyn Write = match file.as_mut() {
        Some(f) => f,
        None => out,
    };
    let mut n = 0usize;
    match &filter {
        Some(f) => {
            let records = engine.get_where(f, None).map_err(explain)?;
            write_json_line(w, &export_header(&engine, records.len()))?;
            for r in &records {
                write_json_line(w, &record_value(r, true))?;
                n += 1;
            }
        }
        None => {
            write_json_line(w, &export_header(&engine, engine.count() as usize))?;
            for r in engine.iter() {
                write_json_line(w, &record_value(&r.map_err(explain)?, true))?;
                n += 1;
            }
        }
    }
    w.flush()?;
    if let (Some(f), Some(p)) = (file, &a.out) {
        f.into_inner().map_err(|e| e.into_error())?.sync_all().with_context(|| format!("writing {}", p.display()))?;
        if ctx.json {
            print_json(out, &json!({"exported": n, "file": p.display().to_string()}))?;
        } else {
            writeln!(out, "exported {n} records to {}", p.display())?;
        }
    }
    store::close(engine)
}

/// The store to import into: open, or to be created as the header says (made only once the
/// whole export has been checked); an existing store must fit the header.
fn import_target(ctx: &Ctx, header: Option<&ExportHeader>) -> Result<Target> {
    let dir = &ctx.store.dir;
    let Some(h) = header else {
        return store::target(&ctx.store, Need::Vectors, false);
    };
    store::refuse_non_directory(dir)?;
    if !store::exists(dir) {
        let mdir = match &h.model {
            None => None,
            Some((id, sha)) => {
                let mdir = model_dir(id);
                let installed = Manifest::load(&mdir).map_err(|e| anyhow!("the export was made with the model {id}, which is not installed here: {e}"))?;
                if !sha.is_empty() && hex(&installed.identity().hash) != *sha {
                    bail!("the export was made with the model {id} of sha256 {sha}, but the one installed here has sha256 {}", hex(&installed.identity().hash));
                }
                Some(mdir)
            }
        };
        return Ok(Target::New(NewStore::plan(dir, Some(h.dimension), h.metric, None, mdir.as_deref())?));
    }
    let engine = store::open(&ctx.store, Need::Vectors, false)?;
    if engine.dimension() != h.dimension || engine.metric() != h.metric {
        bail!(
            "the export holds {}-dimensional vectors compared by {}, but the store at {} is {}",
            h.dimension,
            h.metric.name(),
            dir.display(),
            describe(&engine)
        );
    }
    let store_model = engine.model().map(|m| (m.id.clone(), hex(&m.hash)));
    let fits = match (&h.model, &store_model) {
        (None, None) => true,
        (Some((id, sha)), Some((sid, ssha))) => id == sid && (sha.is_empty() || sha == ssha),
        _ => false,
    };
    if !fits {
        let name = |m: &Option<(String, String)>| m.as_ref().map_or("no model".to_string(), |(id, _)| format!("the model {id}"));
        bail!(
            "the export was made with {}, but the store at {} has {}; vectors of different models cannot be mixed",
            name(&h.model),
            dir.display(),
            name(&store_model)
        );
    }
    Ok(Target::Open(engine))
}

pub fn import(ctx: &Ctx, a: ImportArgs, out: &mut dyn Write) -> Result<()> {
    let mut src = Source::export(&a.file);
    let mut scan = check::scan(&mut src)?;
    if let Some(expected) = src.header().and_then(|h| h.count) {
        if expected != scan.records as u64 {
            bail!(
                "{}: the header says the export holds {expected} records, but the file holds {}: it is incomplete (cut short?) or was edited; nothing was imported",
                input::input_name(&a.file),
                scan.records
            );
        }
    }
    let target = import_target(ctx, src.header())?;
    scan.ids()?;
    let checked = check_input(&target, &src)?;
    let engine = target.into_engine()?;
    let s = ingest(&engine, &src, checked, a.batch, "importing", "records", ctx.json)?;
    store::close(engine)?;
    print_summary(ctx, out, "imported", "records", &s)
}
