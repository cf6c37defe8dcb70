//! `memento recall` and `memento search`: by meaning, by words, or both fused, and how hits
//! print.

use std::io::Write;

use anyhow::Result;
use memento::{Filter, Fusion, Metric, RecallMode, ScanMode, SearchHit, SearchOptions};

use super::commands::{scoped_filter, usage, Ctx};
use super::input;
use super::output::{hits_value, print_hits, print_json};
use super::store::{self, Need};
use super::{FusionArg, ModeArg, RecallArgs, SearchArgs};

/// The engine's search options of the command line's.
fn search_options<'a>(k: usize, filter: Option<&'a Filter>, exact: bool, threads: Option<usize>, ef: Option<usize>) -> SearchOptions<'a> {
    let mut o = SearchOptions::new(k);
    o.ef = ef;
    if let Some(f) = filter {
        o = o.filter(f);
    }
    if exact {
        o = o.mode(ScanMode::Exact);
    }
    if let Some(n) = threads {
        o = o.threads(n);
    }
    o
}

/// Prints hits; `metric` as [`print_hits`] takes it.
fn print_results(ctx: &Ctx, out: &mut dyn Write, hits: &[SearchHit], metric: Option<Metric>) -> Result<()> {
    if ctx.json {
        print_json(out, &hits_value(hits))
    } else {
        print_hits(out, hits, metric)
    }
}

pub fn recall(ctx: &Ctx, a: RecallArgs, out: &mut dyn Write) -> Result<()> {
    let filter = scoped_filter(a.filter.as_deref(), &a.scope)?;
    let query = a.query.join(" ");
    if query.trim().is_empty() {
        return Err(usage("the question is empty"));
    }
    let mode = recall_mode(a.mode, a.fusion, a.rrf_k, a.alpha)?;
    // A keyword search needs no model: any store with texts answers it.
    let engine = store::open_to_read(&ctx.store, if mode == RecallMode::Keyword { Need::Vectors } else { Need::Text })?;
    let opts = search_options(a.k, filter.as_ref(), a.exact, a.threads, a.ef);
    let hits = engine.recall_by(&[&query], &opts, mode).map_err(|e| store::explain(e, engine.path()))?.pop().unwrap_or_default();
    print_results(ctx, out, &hits, (mode == RecallMode::Vector).then(|| engine.metric()))?;
    store::close(engine)
}

/// The recall mode of the command line's options: `--mode` (the default mode when absent), and
/// for a hybrid search `--fusion` with `--rrf-k` or `--alpha`.
fn recall_mode(mode: Option<ModeArg>, fusion: FusionArg, rrf_k: f64, alpha: f64) -> Result<RecallMode> {
    let fused = match fusion {
        FusionArg::Rrf => Fusion::Rrf { k: rrf_k },
        FusionArg::Weighted => Fusion::Weighted { alpha },
    };
    fused.check().map_err(|e| usage(e.to_string()))?;
    Ok(match mode {
        None => match memento::DEFAULT_RECALL_MODE {
            RecallMode::Hybrid(_) => RecallMode::Hybrid(fused),
            m => m,
        },
        Some(ModeArg::Vector) => RecallMode::Vector,
        Some(ModeArg::Keyword) => RecallMode::Keyword,
        Some(ModeArg::Hybrid) => RecallMode::Hybrid(fused),
    })
}

pub fn search(ctx: &Ctx, a: SearchArgs, out: &mut dyn Write) -> Result<()> {
    let filter = scoped_filter(a.filter.as_deref(), &a.scope)?;
    let vector = match a.vector.as_deref() {
        Some(v) => {
            let raw = if v == "-" { input::read_stdin()? } else { v.to_owned() };
            Some(input::parse_vector(&raw).map_err(|e| usage(format!("VECTOR: {e}")))?)
        }
        None => None,
    };
    let engine = store::open_to_read(&ctx.store, Need::Vectors)?;
    let opts = search_options(a.k, filter.as_ref(), a.exact, a.threads, a.ef);
    let (hits, metric) = match (&vector, a.keyword.as_deref()) {
        (Some(v), None) => (engine.search_with(v, &opts), Some(engine.metric())),
        (None, Some(words)) => (engine.keyword_search(words, &opts), None),
        (Some(v), Some(words)) => (engine.search_hybrid(v, words, &opts, Fusion::default()), None),
        (None, None) => return Err(usage("give a VECTOR, --keyword TEXT, or both (a hybrid search)")),
    };
    let hits = hits.map_err(|e| store::explain(e, engine.path()))?;
    print_results(ctx, out, &hits, metric)?;
    store::close(engine)
}
