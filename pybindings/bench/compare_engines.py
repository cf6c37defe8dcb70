"""The Python package's two engines side by side, measured in one run: ``memento.RustEngine``
(the native module) against ``memento.PythonEngine`` (numpy + sqlite3 + Python onnxruntime),
both running the same model (the provisioned all-MiniLM-L6-v2) on the same texts and vectors.

Measured, each in fresh processes, Rust and Python alternating:

1. **cold start**: from spawning ``python -c`` to the first recall's answer being printed:
   ``import memento``, ``memento.Engine(path)`` on the 10k-text store made by (5) (the model
   loads), ``recall(query, k=5)``. The Python engine through the same factory with
   ``MEMENTO_RUST=0``. Median of ``--cold-runs``, a new query each run (no cache can answer);
2. **warm embed**: ``engine.embed(text)`` of one short text at a time (distinct texts, so
   no cache), p50 over ``--warm-n`` texts, after one warm-up text;
3. **cached embed**: ``engine.embed(text)`` of a text embedded just before, p50;
4. **memory**: VmRSS and its peak (VmHWM) of a process that opened the 10k-text store (model
   loaded) and answered one recall;
5. **ingest**: a new text store remembers 10,000 texts (``remember(list)``, batches of
   ``--batch`` texts, one commit each), texts/s; the model's load (the open) is not counted.
   Median of ``--ingest-runs`` runs per engine, alternating (the two are within a few percent
   of each other, so one run each would let the machine's drift decide);
6. **recall latency**: p50 of ``recall(query, k=10)`` over ``--recall-n`` distinct queries on
   the 10k-text store, and on a 100k-record store of the same model filled with ``add`` of
   precomputed vectors (the 10k texts' own vectors, and 90k near copies of them: each one plus
   Gaussian noise, normalised), so that the query is embedded by each engine and searched over
   100k records. The search alone (``search`` of the query's vector) is reported too, and the
   Python engine's recall once more with one ONNX Runtime session option set
   (``session.intra_op.allow_spinning = 0``, patched in by the worker: a variant, not the
   engine as shipped), to show what its threads' spinning costs when inference and the numpy
   scan alternate.

The seed's column (sentence-transformers + PyTorch) is quoted from issue 5, not measured.

Then the issue's targets as PASS/FAIL lines: the Rust engine's cold start at least 1.5x faster
than the Python engine's, its memory lower, its 10k-text ingest faster, its recall latency at
100k records at least 3x lower. Results go to ``DATA_DIR/python-engines.json`` and the table to
``DATA_DIR/python-engines.md``.

Texts: the prose paragraphs of the Python standard library's docstrings
(``target/corpus/stdlib-docstrings.jsonl``, made by ``tools/corpus/docstrings.py``): the first
10,000 are stored, the questions are cut from the others (the first 6-20 words of a sentence).

Usage::

    python pybindings/bench/compare_engines.py [--quick] [--corpus PATH] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KINDS = ("rust", "python")
SEED = {"cold_s": 10.0, "warm_ms": 7.0, "rss_mb": 500}

# ------------------------------------------------------------------------------------------
# Workers: each measurement in a fresh process (``compare_engines.py worker WHAT ...``).

COLD = r"""
import sys, time, json
t0 = time.perf_counter()
import memento
t1 = time.perf_counter()
e = memento.Engine(sys.argv[1])
t2 = time.perf_counter()
hits = e.recall(sys.argv[2], k=5)
t3 = time.perf_counter()
print(json.dumps({"engine": type(e).__name__, "import_ms": (t1 - t0) * 1e3, "open_ms": (t2 - t1) * 1e3,
                  "recall_ms": (t3 - t2) * 1e3, "inside_ms": (t3 - t0) * 1e3, "top": hits[0].id, "n": e.count()}), flush=True)
e.close()
"""


def memory_mib() -> tuple[float, float]:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                fields[k] = int(v.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    if not s:
        return float("nan")
    return s[min(max(math.ceil(p / 100 * len(s)), 1), len(s)) - 1]


def summary_ms(samples_s: list[float]) -> dict:
    ms = [x * 1e3 for x in samples_s]
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p90_ms": pct(ms, 90), "p99_ms": pct(ms, 99), "mean_ms": statistics.fmean(ms), "min_ms": min(ms)}


def _engine(kind: str, path: str, **kw):
    import memento

    if kind == "python-nospin":
        _onnxruntime_without_spinning()
    cls = memento.RustEngine if kind == "rust" else memento.PythonEngine
    return cls(path, **kw)


def _onnxruntime_without_spinning() -> None:
    """Every ONNX Runtime session made from now on has its intra-op threads' spinning off
    (``session.intra_op.allow_spinning = 0``): the Python engine as it would run with that
    one session option set, to see what the spinning costs when inference and numpy's
    scan alternate (a variant, not the engine as shipped)."""
    import onnxruntime as ort

    base = ort.SessionOptions

    class NoSpin(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.add_session_config_entry("session.intra_op.allow_spinning", "0")

    ort.SessionOptions = NoSpin


def worker(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["ingest", "warm", "rss", "recall", "build"])
    ap.add_argument("--engine", choices=KINDS + ("python-nospin",), required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--texts", help="JSON file: a list of texts")
    ap.add_argument("--vectors", help=".npy file of vectors (build)")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--k", type=int, default=10)
    a = ap.parse_args(argv)
    texts = json.loads(Path(a.texts).read_text()) if a.texts else []
    out: dict = {"engine": a.engine}
    if a.what == "ingest":
        if os.path.exists(a.store):
            shutil.rmtree(a.store)
        t = time.perf_counter()
        e = _engine(a.engine, a.store, model="default")
        out["open_s"] = time.perf_counter() - t
        t = time.perf_counter()
        batches = []
        for i in range(0, len(texts), a.batch):
            tb = time.perf_counter()
            e.remember([x["text"] for x in texts[i : i + a.batch]], metadatas=[x.get("metadata") for x in texts[i : i + a.batch]])
            batches.append(time.perf_counter() - tb)
        out["ingest_s"] = time.perf_counter() - t
        out["n"] = len(texts)
        out["count"] = e.count()
        out["texts_per_s"] = len(texts) / out["ingest_s"]
        out["batch_s"] = batches
        t = time.perf_counter()
        e.close()
        out["close_s"] = time.perf_counter() - t
        out["rss_mib"], out["hwm_mib"] = memory_mib()
    elif a.what == "build":
        import numpy as np

        if os.path.exists(a.store):
            shutil.rmtree(a.store)
        v = np.load(a.vectors)
        e = _engine(a.engine, a.store, model="default", durability="buffered")
        t = time.perf_counter()
        for s in range(0, len(v), 20_000):
            e.add([f"v{i}" for i in range(s, min(s + 20_000, len(v)))], v[s : s + 20_000], texts=[f"record {i}" for i in range(s, min(s + 20_000, len(v)))])
        out["add_s"] = time.perf_counter() - t
        out["count"] = e.count()
        e.close()
    elif a.what == "warm":
        e = _engine(a.engine, a.store, model="default")
        e.embed("a warm-up text that nobody asks again")
        lat = []
        for t_ in texts:
            t = time.perf_counter()
            e.embed(t_)
            lat.append(time.perf_counter() - t)
        out["warm"] = summary_ms(lat)
        hit = []
        for t_ in texts[:50]:
            for _ in range(20):
                t = time.perf_counter()
                e.embed(t_)
                hit.append(time.perf_counter() - t)
        out["cached"] = summary_ms(hit)
        out["cached"]["p50_us"] = out["cached"]["p50_ms"] * 1e3
        e.close()
    elif a.what == "rss":
        r0 = memory_mib()
        e = _engine(a.engine, a.store, model="default")
        e.recall(texts[0], k=10)
        out["start_rss_mib"] = r0[0]
        out["rss_mib"], out["hwm_mib"] = memory_mib()
        out["count"] = e.count()
        e.close()
    elif a.what == "recall":
        e = _engine(a.engine, a.store, model="default")
        e.recall("a warm-up question nobody asks again", k=a.k)
        lat, tops = [], []
        for q in texts:
            t = time.perf_counter()
            h = e.recall(q, k=a.k)
            lat.append(time.perf_counter() - t)
            tops.append([x.id for x in h])
        out["recall"] = summary_ms(lat)
        vecs = e.embed(texts)  # cached now: the search alone
        lat = []
        for v in vecs:
            t = time.perf_counter()
            e.search(v, k=a.k)
            lat.append(time.perf_counter() - t)
        out["search"] = summary_ms(lat)
        out["tops"] = tops
        out["count"] = e.count()
        e.close()
    print(json.dumps(out))


# ------------------------------------------------------------------------------------------
# The driver


class Runner:
    def __init__(self, log, python: str):
        self.log = log
        self.python = python

    def env(self, kind: str) -> dict:
        env = dict(os.environ)
        env.pop("MEMENTO_RUST", None)
        if kind.startswith("python"):
            env["MEMENTO_RUST"] = "0"
        return env

    def worker(self, what: str, kind: str, store: Path, *args) -> dict:
        cmd = [self.python, str(Path(__file__).resolve()), "worker", what, "--engine", kind, "--store", str(store), *map(str, args)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=self.env(kind))
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def cold(self, kind: str, store: Path, query: str) -> dict:
        t0 = time.perf_counter()
        p = subprocess.Popen([self.python, "-c", COLD, str(store), query], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env(kind))
        line = p.stdout.readline()
        wall = time.perf_counter() - t0
        _, err = p.communicate()
        if p.returncode != 0 or not line:
            raise RuntimeError(f"cold start ({kind}) failed:\n{err}")
        d = json.loads(line)
        d["wall_s"] = wall
        return d


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def prepare_texts(corpus: Path, n_store: int, n_queries: int) -> tuple[list[dict], list[str]]:
    rows = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    if len(rows) < n_store + 50:
        raise SystemExit(f"{corpus} has {len(rows)} texts; need more than {n_store}")
    store = rows[:n_store]
    seen = {r["text"] for r in store}
    queries: list[str] = []
    for r in rows[n_store:] + rows[:n_store]:
        for s in sentences(r["text"]):
            words = s.split()
            if len(words) < 6:
                continue
            q = " ".join(words[:20])
            if q not in seen:
                seen.add(q)
                queries.append(q)
            if len(queries) >= n_queries:
                return store, queries
    return store, queries


def near_copies(base, n: int, seed: int = 11):
    """``n`` vectors: ``base`` itself, then noisy copies of its rows, normalised (float32)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    out[: len(base)] = base
    for s in range(len(base), n, len(base)):
        m = min(len(base), n - s)
        v = base[:m] + rng.standard_normal((m, base.shape[1]), dtype=np.float32) * np.float32(0.03)
        out[s : s + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def load_avg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def faster(x: float, word: str = "faster", other: str = "slower") -> str:
    return f"{x:.2f}x {word}" if x >= 1 else f"{1 / x:.2f}x {other}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(R: dict) -> tuple[str, list[str]]:
    rs, py, ns = R["rust"], R["python"], R["python-nospin"]
    checks = []
    cold_ratio = py["cold_s"] / rs["cold_s"]
    checks.append(f"{verdict(cold_ratio >= 1.5)} cold start: Rust engine {rs['cold_s'] * 1e3:.0f} ms, Python engine {py['cold_s'] * 1e3:.0f} ms: {cold_ratio:.2f}x faster (target >= 1.5x)")
    mem_ok = rs["rss_mib"] < py["rss_mib"] and rs["hwm_mib"] < py["hwm_mib"]
    checks.append(f"{verdict(mem_ok)} memory: Rust engine {rs['rss_mib']:.0f} MiB (peak {rs['hwm_mib']:.0f}), Python engine {py['rss_mib']:.0f} MiB (peak {py['hwm_mib']:.0f}) (target: lower)")
    ing_ratio = rs["ingest_tps"] / py["ingest_tps"]
    noise = " (a margin within run-to-run noise: both engines run the same model on the same ONNX Runtime in the same batches)" if 0.9 < ing_ratio < 1.1 else ""
    checks.append(f"{verdict(ing_ratio > 1)} ingest of {R['n_store']:,} texts: Rust engine {rs['ingest_s']:.1f} s, Python engine {py['ingest_s']:.1f} s: {faster(ing_ratio)} (target: faster){noise}")
    rec_ratio = py["recall_100k_ms"] / rs["recall_100k_ms"]
    checks.append(f"{verdict(rec_ratio >= 3)} recall at {R['n_big']:,} records: Rust engine p50 {rs['recall_100k_ms']:.2f} ms, Python engine {py['recall_100k_ms']:.2f} ms: {rec_ratio:.2f}x lower (target >= 3x)")

    def row(what, r, p, ratio, seed, fmt):
        return f"| {what} | **{fmt(r)}** | {fmt(p)} | {ratio} | {seed} |"

    ms = lambda x: f"{x:.2f} ms"  # noqa: E731
    lines = [
        f"Python engines benchmark, {R['when']}, commit {R['commit']}, {R['cores']} cores ({R['cpu']}), Python {R['python_version']}, "
        f"load average {R['load_start']} at the start, {R['load_end']} at the end. Model all-MiniLM-L6-v2 (int8), both engines; "
        f"{R['n_store']:,} stdlib docstring paragraphs; {R['cold_runs']} cold runs, {R['warm_n']} warm texts, {R['recall_n']} recall queries.",
        "",
        "| measure | Rust engine (`RustEngine`) | Python engine (`PythonEngine`) | Rust vs Python | seed: sentence-transformers + PyTorch (issue 5, not measured) |",
        "|---|---|---|---|---|",
        row(f"cold start: spawn to the first recall answered ({R['n_store'] // 1000}k-text store), median", rs["cold_s"] * 1e3, py["cold_s"] * 1e3,
            faster(cold_ratio), "about 10 s", lambda x: f"{x:.0f} ms"),
        row("warm embed, one short text, p50", rs["warm_ms"], py["warm_ms"], f"{py['warm_ms'] / rs['warm_ms']:.2f}x", "about 7 ms", ms),
        row("cached embed (the same text again), p50", rs["cached_us"], py["cached_us"], f"{py['cached_us'] / rs['cached_us']:.1f}x", "–", lambda x: f"{x:.1f} µs"),
        row(f"memory: VmRSS (peak) with the model loaded and the {R['n_store'] // 1000}k store open, after one recall", (rs["rss_mib"], rs["hwm_mib"]), (py["rss_mib"], py["hwm_mib"]),
            f"{py['rss_mib'] / rs['rss_mib']:.2f}x less", "about 500 MB", lambda x: f"{x[0]:.0f} MiB ({x[1]:.0f})"),
        row(f"ingest: remember {R['n_store']:,} texts in batches of {R['batch']:,}, median of {R['ingest_runs']} runs", (rs["ingest_s"], rs["ingest_tps"], rs["ingest_each_s"]),
            (py["ingest_s"], py["ingest_tps"], py["ingest_each_s"]), faster(ing_ratio), "–",
            lambda x: f"{x[0]:.1f} s ({x[1]:.0f} texts/s; runs {', '.join(f'{y:.1f}' for y in x[2])} s)"),
        row(f"recall latency at {R['n_store'] // 1000}k records, k = 10, p50", rs["recall_10k_ms"], py["recall_10k_ms"], f"{py['recall_10k_ms'] / rs['recall_10k_ms']:.2f}x lower", "–", ms),
        row(f"recall latency at {R['n_big'] // 1000}k records, k = 10, p50", rs["recall_100k_ms"], py["recall_100k_ms"], f"{rec_ratio:.2f}x lower", "–", ms),
        row(f"  of which the search alone at {R['n_big'] // 1000}k, p50", rs["search_100k_ms"], py["search_100k_ms"], f"{py['search_100k_ms'] / rs['search_100k_ms']:.1f}x lower", "–", ms),
        "",
        "A variant, not the Python engine as shipped: with one ONNX Runtime session option set "
        "(`session.intra_op.allow_spinning = 0`), the Python engine's recall p50 is "
        f"{ns['recall_10k_ms']:.2f} ms at {R['n_store'] // 1000}k ({py['recall_10k_ms'] / ns['recall_10k_ms']:.2f}x faster than shipped; "
        f"Rust {ns['recall_10k_ms'] / rs['recall_10k_ms']:.2f}x lower) and {ns['recall_100k_ms']:.2f} ms at {R['n_big'] // 1000}k "
        f"({py['recall_100k_ms'] / ns['recall_100k_ms']:.2f}x faster; Rust {ns['recall_100k_ms'] / rs['recall_100k_ms']:.2f}x lower): "
        "ONNX Runtime's threads spin after each inference and slow numpy's scan that follows on 2 cores, and the other way round "
        "(the Rust engine's embedder stops spinning when a run ends).",
        "",
        "Cold start, inside the process (medians): "
        + "; ".join(f"{k} engine: import {R[k]['cold_inside']['import_ms']:.0f} ms, open {R[k]['cold_inside']['open_ms']:.0f} ms, first recall {R[k]['cold_inside']['recall_ms']:.0f} ms" for k in KINDS)
        + f". The Python interpreter alone starts in {R['bare_python_ms']:.0f} ms.",
        "",
        "Targets:",
        "",
    ] + [f"- {c}" for c in checks]
    return "\n".join(lines) + "\n", checks


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=REPO / "target" / "corpus" / "stdlib-docstrings.jsonl")
    ap.add_argument("--data-dir", type=Path, default=REPO / "target" / "bench-data")
    ap.add_argument("--python", default=sys.executable, help="the interpreter with memento installed (default: this one)")
    ap.add_argument("--quick", action="store_true", help="3 cold runs, 50 warm texts, 50 recall queries")
    ap.add_argument("--n-store", type=int, default=10_000)
    ap.add_argument("--n-big", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--ingest-runs", type=int, default=None, help="ingest runs per engine, alternating (default 3; --quick 1)")
    ap.add_argument("--cold-runs", type=int, default=None)
    ap.add_argument("--warm-n", type=int, default=None)
    ap.add_argument("--recall-n", type=int, default=None)
    a = ap.parse_args()
    cold_runs = a.cold_runs or (3 if a.quick else 7)
    warm_n = a.warm_n or (50 if a.quick else 200)
    recall_n = a.recall_n or (50 if a.quick else 200)
    a.ingest_runs = a.ingest_runs or (1 if a.quick else 3)
    if not a.corpus.is_file():  # what `make run` makes (tools/corpus/docstrings.py)
        print(f"making the corpus {a.corpus} with tools/corpus/docstrings.py", file=sys.stderr)
        subprocess.run([sys.executable, str(REPO / "tools" / "corpus" / "docstrings.py"), "--out", str(a.corpus)], check=True)
    work = a.data_dir / "python-engines"
    work.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True)  # noqa: E731
    run = Runner(log, a.python)

    store_texts, queries = prepare_texts(a.corpus, a.n_store, cold_runs * 2 + warm_n + 2 * recall_n + 10)
    tfile = work / "store-texts.json"
    tfile.write_text(json.dumps(store_texts))
    q_cold = queries[: cold_runs * 2]
    q_warm = queries[cold_runs * 2 : cold_runs * 2 + warm_n]
    q_rec10 = queries[cold_runs * 2 + warm_n : cold_runs * 2 + warm_n + recall_n]
    q_rec100 = queries[cold_runs * 2 + warm_n + recall_n : cold_runs * 2 + warm_n + 2 * recall_n]
    files = {}
    for name, qs in (("warm", q_warm), ("rec10", q_rec10), ("rec100", q_rec100), ("rss", queries[-5:])):
        files[name] = work / f"queries-{name}.json"
        files[name].write_text(json.dumps(qs))

    R: dict = {
        "when": datetime.datetime.now().isoformat(timespec="seconds"), "commit": git_commit(), "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(), "python_version": platform.python_version(), "load_start": load_avg(),
        "n_store": len(store_texts), "n_big": a.n_big, "batch": a.batch, "ingest_runs": a.ingest_runs, "cold_runs": cold_runs, "warm_n": warm_n, "recall_n": recall_n,
        "seed": SEED, "corpus": str(a.corpus), "raw": {},
    }
    stores = {k: work / f"{k}-10k" for k in KINDS}
    big = {k: work / f"{k}-100k" for k in KINDS}

    # 5. ingest (builds the 10k stores the rest uses), engines alternating, median of the runs
    for i in range(a.ingest_runs):
        for k in KINDS:
            log(f"ingest {len(store_texts):,} texts, {k} engine (run {i + 1}/{a.ingest_runs})")
            r = run.worker("ingest", k, stores[k], "--texts", tfile, "--batch", a.batch)
            R["raw"].setdefault(f"ingest/{k}", []).append(r)
            log(f"  {r['ingest_s']:.1f} s, {r['texts_per_s']:.0f} texts/s")
    # 1. cold start, alternating
    cold: dict = {k: [] for k in KINDS}
    for i in range(cold_runs):
        for j, k in enumerate(KINDS):
            cold[k].append(run.cold(k, stores[k], q_cold[2 * i + j]))
            want = "RustEngine" if k == "rust" else "PythonEngine"
            assert cold[k][-1]["engine"] == want, cold[k][-1]
        log(f"cold run {i + 1}/{cold_runs}: " + ", ".join(f"{k} {cold[k][-1]['wall_s'] * 1e3:.0f} ms" for k in KINDS))
    R["raw"]["cold"] = cold
    bare = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([a.python, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t)
    R["bare_python_ms"] = statistics.median(bare) * 1e3
    # 2, 3. warm and cached embeds
    for k in KINDS:
        log(f"warm embed, {k} engine")
        R["raw"][f"warm/{k}"] = run.worker("warm", k, work / f"{k}-warm", "--texts", files["warm"])
        shutil.rmtree(work / f"{k}-warm", ignore_errors=True)
    # 4. memory
    for k in KINDS:
        log(f"memory, {k} engine")
        R["raw"][f"rss/{k}"] = run.worker("rss", k, stores[k], "--texts", files["rss"])
    # 6. recall at 10k, then at 100k
    for k in KINDS + ("python-nospin",):
        log(f"recall at 10k, {k} engine")
        R["raw"][f"recall10k/{k}"] = run.worker("recall", k, stores[k.split("-")[0]], "--texts", files["rec10"])
    import numpy as np

    vecs_file = work / "vectors-100k.npy"
    log("the 10k texts' vectors (from the Rust engine's store)")
    code = (
        "import memento, numpy as np, sys\n"
        "e = memento.RustEngine(sys.argv[1], model='default')\n"
        "ms = e.get()\n"
        "np.save(sys.argv[2], np.stack([m.vector for m in ms]).astype(np.float32))\n"
        "e.close()\n"
    )
    subprocess.run([a.python, "-c", code, str(stores["rust"]), str(work / "vectors-10k.npy")], check=True)
    base = np.load(work / "vectors-10k.npy")
    np.save(vecs_file, near_copies(base, a.n_big))
    for k in KINDS:
        log(f"build the {a.n_big:,}-record store, {k} engine")
        R["raw"][f"build100k/{k}"] = run.worker("build", k, big[k], "--vectors", vecs_file)
        log(f"recall at {a.n_big:,}, {k} engine")
        R["raw"][f"recall100k/{k}"] = run.worker("recall", k, big[k], "--texts", files["rec100"])
    log(f"recall at {a.n_big:,}, python engine with ONNX Runtime's spinning off")
    R["raw"]["recall100k/python-nospin"] = run.worker("recall", "python-nospin", big["python"], "--texts", files["rec100"])
    # the two engines answer alike (same model, same vectors)
    same10 = statistics.fmean(float(r[0] == p[0]) for r, p in zip(R["raw"]["recall10k/rust"]["tops"], R["raw"]["recall10k/python"]["tops"]))
    same100 = statistics.fmean(float(r[0] == p[0]) for r, p in zip(R["raw"]["recall100k/rust"]["tops"], R["raw"]["recall100k/python"]["tops"]))
    R["same_top1_10k"], R["same_top1_100k"] = same10, same100

    for k in KINDS:
        med = lambda key: statistics.median(c[key] for c in cold[k])  # noqa: E731
        R[k] = {
            "cold_s": statistics.median(c["wall_s"] for c in cold[k]),
            "cold_inside": {x: med(x) for x in ("import_ms", "open_ms", "recall_ms", "inside_ms")},
            "warm_ms": R["raw"][f"warm/{k}"]["warm"]["p50_ms"],
            "cached_us": R["raw"][f"warm/{k}"]["cached"]["p50_us"],
            "rss_mib": R["raw"][f"rss/{k}"]["rss_mib"],
            "hwm_mib": R["raw"][f"rss/{k}"]["hwm_mib"],
            "ingest_s": statistics.median(r["ingest_s"] for r in R["raw"][f"ingest/{k}"]),
            "ingest_tps": len(store_texts) / statistics.median(r["ingest_s"] for r in R["raw"][f"ingest/{k}"]),
            "ingest_each_s": [r["ingest_s"] for r in R["raw"][f"ingest/{k}"]],
            "recall_10k_ms": R["raw"][f"recall10k/{k}"]["recall"]["p50_ms"],
            "recall_100k_ms": R["raw"][f"recall100k/{k}"]["recall"]["p50_ms"],
            "search_100k_ms": R["raw"][f"recall100k/{k}"]["search"]["p50_ms"],
            "search_10k_ms": R["raw"][f"recall10k/{k}"]["search"]["p50_ms"],
        }
    R["python-nospin"] = {f"recall_{n}_ms": R["raw"][f"recall{n}/python-nospin"]["recall"]["p50_ms"] for n in ("10k", "100k")}
    R["python-nospin"].update({f"search_{n}_ms": R["raw"][f"recall{n}/python-nospin"]["search"]["p50_ms"] for n in ("10k", "100k")})
    R["load_end"] = load_avg()
    md, checks = report(R)
    md += f"\nThe engines' top hit agrees on {same10:.0%} of the 10k queries and {same100:.0%} of the 100k ones.\n"
    (a.data_dir / "python-engines.json").write_text(json.dumps(R, indent=1))
    (a.data_dir / "python-engines.md").write_text(md)
    print(md)
    log(f"wrote {a.data_dir / 'python-engines.json'} and {a.data_dir / 'python-engines.md'}")
    return 0 if all(c.startswith("PASS") for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
