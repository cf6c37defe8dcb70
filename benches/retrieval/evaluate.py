"""Retrieval quality of Memento's search modes on a labelled set (issue 18): keyword (SQLite FTS5
BM25), vector (the embedding model) and hybrid (the two rankings fused).

The set is a directory that ``make_set.py`` wrote (``corpus.jsonl``, ``queries.jsonl``; its
module docstring says how it is built), or is built first into ``--set DIR`` with
``--make-set``. The corpus goes into a fresh store of the Python package (``memento.Engine``: the
Rust engine, the default model; ``--engine python`` for the pure-Python one) with its own ids,
``remember`` called once per ``BATCH`` = 1,024 texts (one commit each). The model is found where
the package looks for it (``MEMENTO_CACHE_DIR`` and the rest, as provisioned by ``make setup``).

Then for each run of ``--modes`` (and ``--fusion``), every query is searched alone, ``k`` = 10:

- ``vector``: ``eng.recall([query], 10, mode="vector")``, by meaning only (``recall``'s default
  is now hybrid, chosen from these figures). Below 20,000 records the Rust engine answers it
  exactly (float32 scan, or the int8 scan with proven bounds), so these figures are the
  model's, not an approximate index's;
- ``keyword``: ``eng.recall([query], 10, mode="keyword")``;
- ``hybrid``: ``eng.recall([query], 10, mode="hybrid")`` with the engine's default fusion;
  ``hybrid:rrf:K`` adds ``fusion="rrf", rrf_k=K``, ``hybrid:weighted:A`` adds
  ``fusion="weighted", alpha=A`` (``hybrid:rrf`` / ``hybrid:weighted`` alone: that fusion with
  the engine's default parameter). ``--fusion rrf:60,weighted:0.5`` (``hybrid:`` may be left
  out) replaces a plain ``hybrid`` of ``--modes`` by those variants, for sweeps.

A run whose call raises ``TypeError`` (the engine's ``recall`` does not take the arguments yet),
``AttributeError`` or ``NotImplementedError`` (it takes them, without the search behind them)
is reported as NOT RUN with the error, in the table and the JSON, and the other runs go on; the
exit status is 1 only when no run ran.

Figures, per run, over all queries and per query kind, with ``rank`` the 1-based position of a
relevant document among the 10 results (binary relevance):

- recall@10: the share of a query's relevant documents in its top 10 (one relevant document:
  1 or 0, the hit rate), averaged over the queries;
- MRR@10: the mean of 1 / the rank of the first relevant document (0 when none is in the top 10);
- nDCG@10: DCG = sum over relevant results of 1 / log2(rank + 1), divided by the DCG of the
  ideal order (every relevant document first), averaged;
- latency: the median and 90th percentile (nearest rank) of the per-query call time, wall
  clock around the call. Query embeddings are computed (and cached by the engine) once before
  any run, and the first ``WARMUP`` queries of each run are searched once untimed, so that the
  runs are timed alike: the vector and hybrid times are a cached embedding plus the search.

Output: a markdown table on stdout; with ``--json FILE``, every figure, the set's manifest, the
ingest time, and each run's rank of the relevant document per query (null when not in the top
10), for comparing runs query by query.

Usage (``make bench-retrieval``: the full set)::

    python benches/retrieval/evaluate.py --set DIR [--make-set] [--modes vector,keyword,hybrid]
        [--fusion rrf:60,weighted:0.5] [--json FILE] [--store DIR] [--engine default|rust|python]
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_set  # noqa: E402

K = 10
BATCH = 1024
WARMUP = 10
MODES = ("vector", "keyword", "hybrid")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The set and the runs


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_set(directory: Path) -> tuple[list[dict], list[dict], dict]:
    """(corpus, queries, manifest) of a set directory; every relevant id must be in the corpus."""
    corpus = read_jsonl(directory / "corpus.jsonl")
    queries = read_jsonl(directory / "queries.jsonl")
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    ids = {d["id"] for d in corpus}
    missing = [q["qid"] for q in queries if not set(q["relevant"]) <= ids]
    if missing:
        raise ValueError(f"{len(missing)} queries have relevant ids missing from the corpus (first: {missing[0]})")
    return corpus, queries, manifest


@dataclass
class Run:
    """One search configuration: its name in the table and the keyword arguments of recall()."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def parse_run(spec: str) -> Run:
    """``vector``, ``keyword``, ``hybrid``, ``hybrid:rrf[:K]`` or ``hybrid:weighted[:ALPHA]``."""
    parts = spec.strip().split(":")
    mode = parts[0]
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} in {spec!r} (one of {', '.join(MODES)})")
    kwargs: dict[str, Any] = {"mode": mode}
    if len(parts) > 1:
        if mode != "hybrid" or parts[1] not in ("rrf", "weighted") or len(parts) > 3:
            raise ValueError(f"bad run {spec!r}: only hybrid takes a fusion, hybrid:rrf[:K] or hybrid:weighted[:ALPHA]")
        kwargs["fusion"] = parts[1]
        if len(parts) == 3:
            kwargs["rrf_k" if parts[1] == "rrf" else "alpha"] = float(parts[2])
    return Run(spec.strip(), kwargs)


def parse_runs(modes: str, fusion: str | None) -> list[Run]:
    """The runs of ``--modes``; ``--fusion`` variants replace a plain ``hybrid`` (or are added
    after the others when ``--modes`` has none)."""
    specs = [s.strip() for s in modes.split(",") if s.strip()]
    if fusion:
        variants = [v.strip() if v.strip().startswith("hybrid:") else "hybrid:" + v.strip() for v in fusion.split(",") if v.strip()]
        if "hybrid" in specs:
            at = specs.index("hybrid")
            specs[at : at + 1] = variants
        else:
            specs += variants
    runs = [parse_run(s) for s in specs]
    if len({r.name for r in runs}) != len(runs):
        raise ValueError(f"a run is named twice in {specs}")
    return runs


# --------------------------------------------------------------------------------------------
# Figures


def query_figures(ranked: list[str], relevant: set[str], k: int = K) -> tuple[float, float, float, int | None]:
    """(recall@k, reciprocal rank@k, nDCG@k, rank of the first relevant result or None) of one
    ranked list of ids, binary relevance."""
    top = ranked[:k]
    hits = [i + 1 for i, doc in enumerate(top) if doc in relevant]
    recall = len(hits) / len(relevant)
    rr = 1.0 / hits[0] if hits else 0.0
    dcg = sum(1.0 / math.log2(rank + 1) for rank in hits)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return recall, rr, dcg / ideal, hits[0] if hits else None


def nearest_rank(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def summarise(rows: list[tuple[str, float, float, float]]) -> dict[str, Any]:
    """Mean figures of (kind, recall, rr, ndcg) rows."""
    n = len(rows)
    return {
        "queries": n,
        "recall@10": sum(r[1] for r in rows) / n if n else float("nan"),
        "mrr@10": sum(r[2] for r in rows) / n if n else float("nan"),
        "ndcg@10": sum(r[3] for r in rows) / n if n else float("nan"),
    }


# --------------------------------------------------------------------------------------------
# The store and the searches


def open_engine(path: Path, engine: str):
    import memento

    cls = {"default": memento.Engine, "rust": memento.RustEngine, "python": memento.PythonEngine}[engine]
    return cls(str(path))


def has_modes(eng) -> bool:
    """Whether the engine's recall() takes ``mode=`` (the hybrid search API of issue 18)."""
    try:
        return "mode" in inspect.signature(eng.recall).parameters
    except (TypeError, ValueError):
        return False


def ingest(eng, corpus: list[dict], progress: Callable[..., None] = log) -> float:
    """Remembers every document under its id, BATCH texts per call; returns the seconds taken."""
    t0 = time.perf_counter()
    for start in range(0, len(corpus), BATCH):
        chunk = corpus[start : start + BATCH]
        eng.remember([d["text"] for d in chunk], metadatas=[{"source": d["source"]} for d in chunk], ids=[d["id"] for d in chunk])
        done = start + len(chunk)
        elapsed = time.perf_counter() - t0
        progress(f"  remembered {done:,} / {len(corpus):,} documents ({done / elapsed:.0f}/s)")
    return time.perf_counter() - t0


def run_queries(eng, run: Run, queries: list[dict], k: int = K) -> dict[str, Any]:
    """Every query of one run, one call each: figures overall and per kind, latencies, ranks.
    An engine without the run's search gives ``{"error": ...}`` instead."""
    try:
        for q in queries[:WARMUP]:
            eng.recall([q["query"]], k, **run.kwargs)
        rows, times, ranks = [], [], {}
        for q in queries:
            t0 = time.perf_counter()
            hits = eng.recall([q["query"]], k, **run.kwargs)[0]
            times.append(time.perf_counter() - t0)
            recall, rr, ndcg, rank = query_figures([h.id for h in hits], set(q["relevant"]), k)
            rows.append((q["kind"], recall, rr, ndcg))
            ranks[q["qid"]] = rank
    except (TypeError, AttributeError, NotImplementedError) as e:
        # The engine lacks the run's arguments (TypeError), or has them but not the native
        # search behind them yet.
        return {"run": run.name, "kwargs": run.kwargs, "error": f"{type(e).__name__}: {e}"}
    kinds = sorted({r[0] for r in rows}, key=lambda kind: (kind not in make_set.KINDS, kind))
    return {
        "run": run.name,
        "kwargs": run.kwargs,
        "all": summarise(rows),
        "by_kind": {kind: summarise([r for r in rows if r[0] == kind]) for kind in kinds},
        "latency_ms": {"p50": statistics.median(times) * 1e3, "p90": nearest_rank(times, 0.9) * 1e3},
        "ranks": ranks,
    }


def evaluate(
    set_dir: Path,
    runs: list[Run],
    store: Path | None = None,
    engine: str = "default",
    k: int = K,
    progress: Callable[..., None] = log,
) -> dict[str, Any]:
    """Loads the set, stores its corpus in a fresh store (``store``, which must not exist; a
    temporary directory, removed after, when None) and runs every run. Returns every figure."""
    import memento

    corpus, queries, manifest = load_set(set_dir)
    tmp = None
    if store is None:
        tmp = Path(tempfile.mkdtemp(prefix="memento-retrieval-"))
        store = tmp / "store"
    elif store.exists():
        raise FileExistsError(f"{store} exists: the evaluation needs a fresh store")
    try:
        with open_engine(store, engine) as eng:
            progress(f"{len(corpus):,} documents into {store} ({type(eng).__name__}, memento {memento.__version__})")
            ingest_s = ingest(eng, corpus, progress)
            # Every query embedded (and cached by the engine) before any run is timed.
            t0 = time.perf_counter()
            eng.embed([q["query"] for q in queries])
            embed_s = time.perf_counter() - t0
            results = []
            for run in runs:
                t0 = time.perf_counter()
                r = run_queries(eng, run, queries, k)
                if "error" in r:
                    progress(f"  {run.name}: NOT RUN: {r['error']}")
                else:
                    progress(f"  {run.name}: {len(queries)} queries in {time.perf_counter() - t0:.1f} s")
                results.append(r)
            api = has_modes(eng)
            engine_name = type(eng).__name__
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {
        "set": str(set_dir),
        "manifest": manifest,
        "documents": len(corpus),
        "queries": len(queries),
        "k": k,
        "engine": engine_name,
        "memento_version": memento.__version__,
        "recall_takes_mode": api,
        "ingest_seconds": ingest_s,
        "query_embed_seconds": embed_s,
        "runs": results,
    }


# --------------------------------------------------------------------------------------------
# The report


def table(result: dict[str, Any]) -> str:
    """The markdown table: one row per run and kind (all queries first)."""
    lines = [
        f"{result['queries']:,} queries over {result['documents']:,} documents, {result['engine']}, k = {result['k']}; "
        f"ingest {result['ingest_seconds']:.1f} s ({result['documents'] / result['ingest_seconds']:.0f} docs/s)",
        "",
        "| run | queries | n | recall@10 | MRR@10 | nDCG@10 | p50 ms | p90 ms |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in result["runs"]:
        if "error" in r:
            lines.append(f"| {r['run']} | NOT RUN: {r['error']} | | | | | | |")
            continue
        lat = r["latency_ms"]
        for label, s in [("all", r["all"]), *r["by_kind"].items()]:
            timing = f"{lat['p50']:.3f} | {lat['p90']:.3f}" if label == "all" else " | "
            lines.append(
                f"| {r['run']} | {label} | {s['queries']} | {s['recall@10']:.3f} | {s['mrr@10']:.3f} | {s['ndcg@10']:.3f} | {timing} |"
            )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", required=True, type=Path, help="the set's directory (make_set.py's --out)")
    ap.add_argument("--make-set", action="store_true", help="build the set into --set first (with the options below)")
    ap.add_argument("--limit-queries", type=int, metavar="N", help="with --make-set: make_set.py's --limit-queries")
    ap.add_argument("--sample", type=int, default=make_set.DEFAULT_SEED, metavar="SEED", help="with --make-set: make_set.py's --sample")
    ap.add_argument("--corpus-size", type=int, metavar="M", help="with --make-set: make_set.py's --corpus-size")
    ap.add_argument("--modes", default=",".join(MODES), help="runs, comma-separated: vector, keyword, hybrid, hybrid:rrf:K, hybrid:weighted:ALPHA")
    ap.add_argument("--fusion", help="hybrid variants replacing a plain hybrid, e.g. rrf:60,rrf:20,weighted:0.3,weighted:0.5")
    ap.add_argument("--engine", choices=["default", "rust", "python"], default="default", help="memento.Engine (default), RustEngine or PythonEngine")
    ap.add_argument("--store", type=Path, help="the store to create (must not exist) and keep; default: a temporary one")
    ap.add_argument("--json", type=Path, metavar="FILE", help="write every figure as JSON")
    args = ap.parse_args()

    runs = parse_runs(args.modes, args.fusion)
    if args.make_set:
        make_set.build(args.set, args.limit_queries, args.sample, args.corpus_size, log=log)
    result = evaluate(args.set, runs, args.store, args.engine)
    report = table(result)
    print(report)
    if not result["recall_takes_mode"] and any(r.kwargs.get("mode") for r in runs):
        print("\nThis engine's recall() takes no `mode` argument yet: the keyword and hybrid runs are NOT RUN.")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(result, report=report), indent=1) + "\n")
        log(f"figures -> {args.json}")
    return 0 if any("error" not in r for r in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
