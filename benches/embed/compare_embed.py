"""Text embeddings: Memento's embedder (Rust, ONNX Runtime through ``ort``) vs the Python
``onnxruntime`` package running the same model file, side by side in one run.

Both sides run all-MiniLM-L6-v2 (int8 ONNX) from the model directory Memento uses
(``memento-embed-bench info``: ``$MEMENTO_MODEL_DIR`` or the provisioned copy), with the same
tokenizer.json, the same ONNX Runtime library (the Rust side is pointed at the Python package's
``libonnxruntime`` with ``MEMENTO_ORT_LIB`` unless that is set already), the same texts, and the
same intra-op thread counts. The Python side does what a Python user would: ``tokenizers`` with
padding to the batch's longest text and truncation at 256 tokens, ``InferenceSession.run``,
attention-masked mean pooling and L2 normalisation in numpy.

Measured, each in fresh processes, Rust and Python alternating:

1. **cold start**: process spawn to exit, for ``memento-embed-bench cold`` (open a 10k-record
   text store with the model loading on a second thread, embed one query, search, print the top
   hit) and for ``python -c`` importing numpy, onnxruntime and tokenizers, loading the tokenizer,
   creating the session, embedding the query (it has no store to search). Median of
   ``--cold-runs`` (each run a new query, so no cache can answer it);
2. **warm latency**: one short text at a time (distinct texts, no cache), p50 over ``--warm-n``
   texts, at 1 and 2 intra-op threads;
3. **batch throughput**: short texts (at most 32 tokens) and long ones (200+ tokens, cut at 256),
   on all cores. Memento: one ``embed_batch`` call (it sorts by length and pads per batch of 32).
   Python: batches of 32 in input order, each padded to its longest text (what most Python code
   does), and also sorted by length as Memento does;
4. **cache hit**: ``Engine::embed`` of a text already embedded (Rust only);
5. **memory**: VmRSS / VmHWM with the model loaded (Memento: and an empty store), one text
   embedded.

Then the issue's targets as PASS/FAIL lines with the ratios. The report is printed and written
to ``DATA_DIR/embed-report.md``; every figure to ``DATA_DIR/embed-results.json``.

Texts: sentences and paragraphs of the docstrings corpus of ``benches/compare/embed_corpus.py``
(its cached ``realtext/base.jsonl`` when ``make bench-compare`` has run, else collected again:
~25 s), cut into sentences of 8-20 words and at most 32 tokens (short), and runs of consecutive
paragraphs of one source of at least 200 tokens (long). The store holds 10,000 other sentences
of 6-40 words. Cached under ``DATA_DIR/embed/``.

Usage (``make bench-embed`` builds the binary and runs this)::

    python benches/embed/compare_embed.py [--quick] [--bin PATH] [--data-dir DIR] [--only cold,warm,batch,cache,rss]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORMAT_VERSION = 1
MAX_TOKENS = 256
SEED = 20_261_121
STORE_N = 10_000

# --------------------------------------------------------------------------------------------
# The Python side. Each measurement runs in a fresh process (``compare_embed.py worker ...``),
# like the Rust binary, so that one cannot warm the other's caches or allocator.

# The cold start as a Python program would do it, from the interpreter's start: nothing else is
# imported. argv: model, tokenizer, threads, query, optimised (1: the file is already optimised,
# skip the graph passes as Memento does).
PY_COLD = r"""
import sys, time
t0 = time.perf_counter()
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
t1 = time.perf_counter()
model, tokfile, threads, query, optimised = sys.argv[1:6]
tok = Tokenizer.from_file(tokfile)
tok.no_padding()
tok.enable_truncation(max_length=256)
t2 = time.perf_counter()
so = ort.SessionOptions()
so.intra_op_num_threads = int(threads)
if optimised == "1":
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
t3 = time.perf_counter()
enc = tok.encode(query)
ids = np.array([enc.ids], dtype=np.int64)
mask = np.array([enc.attention_mask], dtype=np.int64)
h = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
m = mask[:, :, None].astype(np.float32)
v = (h * m).sum(axis=1) / m.sum(axis=1)
v /= np.linalg.norm(v, axis=1, keepdims=True)
t4 = time.perf_counter()
import json
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "tokenizer_ms": (t2 - t1) * 1e3, "session_ms": (t3 - t2) * 1e3,
                  "first_embed_ms": (t4 - t3) * 1e3, "answered_ms": (t4 - t0) * 1e3, "v0": float(v[0, 0])}))
"""


class PyEmbedder:
    """The Python side's embedder: the model file in onnxruntime, the tokenizer in tokenizers."""

    def __init__(self, model: str, tokenizer: str, threads: int, spin: bool | str | None = None, optimised: bool = False):
        import numpy as np
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.np = np
        tok = Tokenizer.from_file(tokenizer)
        tok.no_padding()  # the file pads to a fixed 128 and truncates at 128: replace both
        tok.enable_truncation(max_length=MAX_TOKENS)
        self.tok = tok
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        if spin is not None:
            so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        if spin == "run":  # spin inside a Run, stop when it ends (no busy cores between calls)
            so.add_session_config_entry("session.force_spinning_stop", "1")
        if optimised:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        t = time.perf_counter()
        self.sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        self.session_ms = (time.perf_counter() - t) * 1e3

    def run(self, ids, mask):
        np = self.np
        h = self.sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        m = mask[:, :, None].astype(np.float32)
        v = (h * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v

    def embed_one(self, text: str):
        np = self.np
        e = self.tok.encode(text)
        return self.run(np.array([e.ids], dtype=np.int64), np.array([e.attention_mask], dtype=np.int64))

    def pad(self, encs):
        np = self.np
        n = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), n), dtype=np.int64)
        mask = np.zeros((len(encs), n), dtype=np.int64)
        for r, e in enumerate(encs):
            ids[r, : len(e.ids)] = e.ids
            mask[r, : len(e.ids)] = 1
        return ids, mask

    def embed_input_order(self, texts: list[str], batch: int):
        """Batches of ``batch`` texts in input order, each padded to its longest."""
        out = []
        for i in range(0, len(texts), batch):
            out.append(self.run(*self.pad(self.tok.encode_batch(texts[i : i + batch]))))
        return self.np.concatenate(out)

    def embed_sorted(self, texts: list[str], batch: int):
        """All texts tokenized, sorted by length (longest first), batches of ``batch``; rows back
        in input order (what Memento's embed_batch does)."""
        np = self.np
        encs = self.tok.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(encs[i].ids))
        out = np.empty((len(texts), 384), dtype=np.float32)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            out[idx] = self.run(*self.pad([encs[j] for j in idx]))
        return out


def memory_mib():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                fields[k] = int(v.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def pct(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (as the Rust side's)."""
    s = sorted(samples)
    if not s:
        return 0.0
    rank = math.ceil(p / 100 * len(s))
    return s[min(max(rank, 1), len(s)) - 1]


def summary_ms(samples_s: list[float]) -> dict:
    ms = [x * 1e3 for x in samples_s]
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p90_ms": pct(ms, 90), "p99_ms": pct(ms, 99), "min_ms": min(ms), "max_ms": max(ms),
            "mean_ms": sum(ms) / len(ms)}


def read_texts(path: str, n: int) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
                if len(out) == n:
                    break
    if len(out) < n:
        raise SystemExit(f"{path} holds {len(out)} texts, {n} are needed")
    return out


def worker(argv: list[str]):
    ap = argparse.ArgumentParser(prog="compare_embed.py worker")
    ap.add_argument("what", choices=["warm", "batch", "rss"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--spin", choices=["default", "0", "1", "run"], default="default",
                    help="pool threads spin: ORT's default (yes), 0, 1, or 'run': only during a Run (session.force_spinning_stop)")
    ap.add_argument("--optimised", action="store_true")
    ap.add_argument("--texts")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--batching", choices=["input-order", "sorted"], default="input-order")
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args(argv)
    spin = {"default": None, "0": False, "1": True, "run": "run"}[a.spin]
    if a.what == "rss":
        start = memory_mib()[0]
        e = PyEmbedder(a.model, a.tokenizer, a.threads, spin, a.optimised)
        loaded = memory_mib()
        e.embed_one("How much memory does the process use with the model loaded?")
        rss, hwm = memory_mib()
        after = None
        if a.texts:  # then one batch job, as in the batch measurement (input order, batches of 32)
            e.embed_input_order(read_texts(a.texts, a.n), a.batch)
            r, h = memory_mib()
            after = {"texts": a.n, "rss_mib": r, "hwm_mib": h}
        print(json.dumps({"start_rss_mib": start, "after_load_rss_mib": loaded[0], "after_load_hwm_mib": loaded[1], "rss_mib": rss, "hwm_mib": hwm,
                          "after_batch": after}))
        return
    e = PyEmbedder(a.model, a.tokenizer, a.threads, spin, a.optimised)
    if a.what == "warm":
        texts = read_texts(a.texts, a.warmup + a.n)
        for t in texts[: a.warmup]:
            e.embed_one(t)
        samples, tok = [], []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for t in texts[a.warmup :]:
            t0 = time.perf_counter()
            e.embed_one(t)
            samples.append(time.perf_counter() - t0)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        for t in texts[a.warmup :]:
            t0 = time.perf_counter()
            e.tok.encode(t)
            tok.append(time.perf_counter() - t0)
        lens = [len(x.ids) for x in e.tok.encode_batch(texts[a.warmup :])]
        print(json.dumps({"embed": summary_ms(samples), "tokenize_p50_ms": pct(tok, 50) * 1e3, "session_ms": e.session_ms,
                          "cpu_per_text_ms": cpu / len(samples) * 1e3, "cpu_per_wall": cpu / wall,
                          "tokens": {"mean": sum(lens) / len(lens), "min": min(lens), "max": max(lens)}}))
    else:
        texts = read_texts(a.texts, a.n)
        go = (lambda: e.embed_input_order(texts, a.batch)) if a.batching == "input-order" else (lambda: e.embed_sorted(texts, a.batch))
        if a.batching == "input-order":
            e.embed_input_order(texts[: a.batch], a.batch)
        else:
            e.embed_sorted(texts[: a.batch], a.batch)
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            go()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(json.dumps({"rep_ms": [x * 1e3 for x in times], "median_ms": med * 1e3, "texts_per_s": a.n / med,
                          "texts_per_s_each": [a.n / x for x in times]}))


# --------------------------------------------------------------------------------------------
# Texts


def _sentences(paragraph: str):
    for s in re.split(r"(?<=[.!?])\s+", paragraph):
        s = s.strip()
        if not s or not s[0].isupper() or s[-1] not in ".!?" or "--" in s or "==" in s or ">>>" in s:
            continue
        if sum(c.isalpha() or c == " " for c in s) / len(s) >= 0.9:  # prose, not code or tables
            yield s


def _source_paragraphs(data_dir: Path, log) -> list[dict]:
    base = data_dir / "realtext" / "base.jsonl"
    queries = data_dir / "realtext" / "queries.jsonl"
    if base.is_file():
        rows = []
        for path in (base, queries):
            if path.is_file():
                with open(path, encoding="utf-8") as f:
                    rows.extend(json.loads(line) for line in f if line.strip())
        log(f"texts: {len(rows)} paragraphs from {base.parent} (make bench-compare's corpus)")
        return rows
    sys.path.insert(0, str(REPO / "benches" / "compare"))
    import embed_corpus

    log("texts: collecting the docstrings corpus (embed_corpus.collect_texts, ~25 s)")
    rows, _ = embed_corpus.collect_texts()
    return rows


def prepare_texts(data_dir: Path, tokenizer: str, log) -> dict:
    """The texts files (one JSON string per line), made once and cached."""
    out = data_dir / "embed" / "texts"
    manifest = out / "manifest.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        if m.get("version") == FORMAT_VERSION and all((out / f"{k}.jsonl").is_file() for k in ("short", "long", "store", "queries")):
            return m
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer)
    tok.no_padding()
    tok.no_truncation()
    rows = _source_paragraphs(data_dir, log)
    rng = random.Random(SEED)

    # Sentences: short ones (8-20 words, <= 32 tokens) for the timed texts and the queries,
    # 6-40 words for the store; each sentence used once.
    seen: set[str] = set()
    sentences = []
    for r in rows:
        for s in _sentences(r["text"]):
            if s not in seen:
                seen.add(s)
                sentences.append(s)
    rng.shuffle(sentences)
    lens = [len(e.ids) for e in tok.encode_batch(sentences)]
    short, store = [], []
    for s, n in zip(sentences, lens):
        words = len(s.split())
        if 8 <= words <= 20 and n <= 32 and len(short) < 4_000:
            short.append(s)
        elif 6 <= words <= 40 and n <= 64 and len(store) < STORE_N:
            store.append(s)
    queries, short = short[:500], short[500:]

    # Long: consecutive paragraphs of one source joined until >= 200 tokens.
    long_texts = []
    cur, cur_src = [], None
    for r in rows:
        src = r.get("source", "").split(":", 1)[-1]
        if src != cur_src:
            cur, cur_src = [], src
        cur.append(r["text"])
        joined = " ".join(cur)
        if len(tok.encode(joined).ids) >= 200:
            long_texts.append(joined)
            cur = []
    rng.shuffle(long_texts)
    long_texts = long_texts[:1_000]

    if len(store) < STORE_N or len(short) < 1_000 or len(long_texts) < 256:
        raise SystemExit(f"texts: too few texts (store {len(store)}, short {len(short)}, long {len(long_texts)})")
    out.mkdir(parents=True, exist_ok=True)
    m = {"version": FORMAT_VERSION, "counts": {}, "sha256": {}}
    for name, texts in [("short", short), ("long", long_texts), ("store", store), ("queries", queries)]:
        body = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts)
        (out / f"{name}.jsonl").write_text(body, encoding="utf-8")
        m["counts"][name] = len(texts)
        m["sha256"][name] = hashlib.sha256(body.encode()).hexdigest()
        n_tok = [len(e.ids) for e in tok.encode_batch(texts[:1000])]
        m.setdefault("tokens", {})[name] = {"mean": sum(n_tok) / len(n_tok), "min": min(n_tok), "max": max(n_tok),
                                             "note": "first 1,000, before truncation at 256"}
    manifest.write_text(json.dumps(m, indent=1) + "\n")
    log(f"texts: {m['counts']} written to {out}")
    return m


# --------------------------------------------------------------------------------------------
# Driver


def default_bin() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return target / "release" / "memento-embed-bench"


def ort_library() -> str:
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    libs = sorted(p for p in capi.iterdir() if p.name.startswith("libonnxruntime.so") and "providers" not in p.name)
    if not libs:
        raise SystemExit(f"no libonnxruntime.so* in {capi}")
    return str(libs[-1])


def load_avg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


class Runner:
    def __init__(self, binary: Path, env: dict, log):
        self.bin = str(binary)
        self.env = env
        self.log = log

    def rust(self, *args, env=None) -> dict:
        return self._json([self.bin, *map(str, args)], env or self.env)

    def py(self, *args) -> dict:
        return self._json([sys.executable, str(Path(__file__).resolve()), "worker", *map(str, args)], self.env)

    def _json(self, cmd, env) -> dict:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:3])} … failed ({p.returncode}):\n{p.stderr[-3000:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    def timed(self, cmd, env) -> tuple[float, dict]:
        """Wall time from spawn to exit, and the JSON the process printed."""
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:2])} … failed ({p.returncode}):\n{p.stderr[-3000:]}")
        out = p.stdout.strip().splitlines()
        return wall, (json.loads(out[-1]) if out and out[-1].startswith("{") else {})


def ensure_store(run: Runner, data_dir: Path, texts_manifest: dict, threads: int, log) -> dict:
    store = data_dir / "embed" / "store-10k"
    stamp = data_dir / "embed" / "store-10k.json"
    # The store is rebuilt when the engine's sources change (git tree of engine/), so that the
    # cold start reads a store (and cache file) written by the engine being measured.
    engine_tree = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD:engine"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "engine"], capture_output=True, text=True).stdout.strip()
    want = {"version": FORMAT_VERSION, "texts_sha256": texts_manifest["sha256"]["store"], "n": STORE_N,
            "engine_tree": engine_tree + ("-dirty" if dirty else "")}
    if stamp.is_file() and store.is_dir():
        built = json.loads(stamp.read_text())
        if built.get("key") == want:
            return built
    shutil.rmtree(store, ignore_errors=True)
    log(f"store: building {STORE_N:,} records with memento-embed-bench build-store (remember_batch)")
    out = run.rust("build-store", "--store", store, "--n", STORE_N, "--texts", data_dir / "embed" / "texts" / "store.jsonl", "--threads", threads)
    built = {"key": want, "build": out}
    stamp.write_text(json.dumps(built, indent=1) + "\n")
    return built


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def measure_cold(run: Runner, info: dict, data_dir: Path, threads: int, runs: int, log) -> dict:
    """All cold variants, interleaved: every run executes each once, in a rotated order."""
    pristine = data_dir / "embed" / "store-10k"
    work = data_dir / "embed" / "cold-store"
    # A fresh copy per invocation: each cold run persists its query's vector in the store's
    # embedding cache, so queries are never repeated, and a later invocation starts clean.
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pristine, work)
    queries = read_texts(str(data_dir / "embed" / "texts" / "queries.jsonl"), 500)
    model, tokenizer, opt = info["model_file"], info["tokenizer_file"], info.get("optimized_file")
    search_env = {k: v for k, v in run.env.items() if k not in ("MEMENTO_ORT_LIB", "ORT_DYLIB_PATH")}
    search_env["VIRTUAL_ENV"] = sys.prefix

    def variants(i: int):
        q = lambda j: queries[(j * (runs + 1) + i) % len(queries)]  # noqa: E731  distinct per variant and run
        v = {
            "rust": ([run.bin, "cold", "--store", str(work), "--query", q(0), "--threads", str(threads)], run.env),
            "python": ([sys.executable, "-c", PY_COLD, model, tokenizer, str(threads), q(0), "0"], run.env),
            "rust-manual": ([run.bin, "cold", "--store", str(work), "--query", q(1), "--threads", str(threads), "--via", "manual"], run.env),
            "rust-runtime-search": ([run.bin, "cold", "--store", str(work), "--query", q(2), "--threads", str(threads)], search_env),
            "python-bare": ([sys.executable, "-c", "pass"], run.env),
        }
        if opt and info.get("optimized_onnxruntime") == info.get("python_onnxruntime"):
            v["python-optimised-file"] = ([sys.executable, "-c", PY_COLD, opt, tokenizer, str(threads), q(3), "1"], run.env)
        return v

    names = list(variants(0))
    res = {n: {"wall_s": [], "inside": []} for n in names}
    log(f"cold: {runs} runs of {len(names)} variants, interleaved (+1 untimed)")
    for i in range(runs + 1):
        v = variants(i)
        order = names[i % len(names):] + names[: i % len(names)]
        for n in order:
            wall, out = run.timed(*v[n])
            if i > 0:  # the first round warms the page cache
                res[n]["wall_s"].append(wall)
                res[n]["inside"].append(out)
    for n, r in res.items():
        r["wall_median_s"] = med(r["wall_s"])
        r["wall_min_s"] = min(r["wall_s"])
        r["wall_max_s"] = max(r["wall_s"])
        keys = sorted({k for o in r["inside"] for k, x in o.items() if isinstance(x, (int, float)) and not isinstance(x, bool)})
        r["inside_median"] = {k: med([o[k] for o in r["inside"] if k in o]) for k in keys}
        lt = [o["load_times"] for o in r["inside"] if "load_times" in o]
        if lt:
            r["inside_median"].update({f"load_{k}": med([x[k] for x in lt]) for k in lt[0]})
    res["rust"]["top_hit_example"] = res["rust"]["inside"][0].get("top")
    res["rust"]["query_example"] = res["rust"]["inside"][0].get("query")
    shutil.rmtree(work, ignore_errors=True)
    return res


def measure_warm(run: Runner, info: dict, data_dir: Path, n: int, rounds: int, log) -> dict:
    texts = data_dir / "embed" / "texts" / "short.jsonl"
    model, tok = info["model_file"], info["tokenizer_file"]
    common_py = ["--model", model, "--tokenizer", tok, "--texts", texts, "--n", n]
    common_rs = ["--texts", texts, "--n", n]
    configs = {
        "t1/rust": lambda: run.rust("warm", "--threads", 1, *common_rs),
        "t1/rust-model.onnx": lambda: run.rust("warm", "--threads", 1, "--optimized", 0, *common_rs),
        "t1/python": lambda: run.py("warm", "--threads", 1, *common_py),
        "t2/rust": lambda: run.rust("warm", "--threads", 2, *common_rs),
        "t2/rust-spin": lambda: run.rust("warm", "--threads", 2, "--spin", 1, *common_rs),
        "t2/python": lambda: run.py("warm", "--threads", 2, *common_py),
        "t2/python-nospin": lambda: run.py("warm", "--threads", 2, "--spin", 0, *common_py),
        "t2/python-spin-run": lambda: run.py("warm", "--threads", 2, "--spin", "run", *common_py),
    }
    names = list(configs)
    res = {k: [] for k in names}
    log(f"warm: {rounds} rounds of {len(names)} configurations, {n} texts each")
    for r in range(rounds):
        for k in names[r % len(names):] + names[: r % len(names)]:
            res[k].append(configs[k]())
    return {k: {"p50_ms": med([x["embed"]["p50_ms"] for x in v]), "p90_ms": med([x["embed"]["p90_ms"] for x in v]),
                "p50_each_ms": [x["embed"]["p50_ms"] for x in v], "tokenize_p50_ms": med([x["tokenize_p50_ms"] for x in v]),
                "cpu_per_text_ms": med([x["cpu_per_text_ms"] for x in v]),
                "tokens": v[0].get("tokens"), "runs": v} for k, v in res.items()}


def measure_batch(run: Runner, info: dict, data_dir: Path, threads: int, sizes: dict, rounds: int, log) -> dict:
    model, tok = info["model_file"], info["tokenizer_file"]
    out = {}
    for kind, (n, reps) in sizes.items():
        texts = data_dir / "embed" / "texts" / f"{kind}.jsonl"
        py = ["--model", model, "--tokenizer", tok, "--texts", texts, "--n", n, "--threads", threads, "--reps", reps]
        configs = {
            "rust": lambda: run.rust("batch", "--kind", kind, "--texts", texts, "--n", n, "--threads", threads, "--reps", reps),
            "python-input-order": lambda: run.py("batch", *py, "--batching", "input-order"),
            "python-sorted": lambda: run.py("batch", *py, "--batching", "sorted"),
            "python-sorted-nospin": lambda: run.py("batch", *py, "--batching", "sorted", "--spin", 0),
        }
        names = list(configs)
        res = {k: [] for k in names}
        log(f"batch {kind}: {rounds} rounds of {len(names)} configurations, {n} texts x {reps}")
        for r in range(rounds):
            for k in names[r % len(names):] + names[: r % len(names)]:
                res[k].append(configs[k]())
        out[kind] = {k: {"texts_per_s": med([x["texts_per_s"] for x in v]), "each": [x["texts_per_s"] for x in v],
                         "n": n, "tokens": v[0].get("tokens"), "runs": v} for k, v in res.items()}
    return out


def check_same_vectors(run: Runner, info: dict, data_dir: Path, log) -> dict:
    """Memento's vectors (its default graph, and model.onnx) against Python's for the same texts."""
    import numpy as np

    texts_file = data_dir / "embed" / "texts" / "long.jsonl"
    short_file = data_dir / "embed" / "texts" / "short.jsonl"
    texts = read_texts(str(short_file), 6) + read_texts(str(texts_file), 2)
    tmp = data_dir / "embed" / "check-texts.jsonl"
    tmp.write_text("".join(json.dumps(t) + "\n" for t in texts))
    e = PyEmbedder(info["model_file"], info["tokenizer_file"], 1)
    py = np.concatenate([e.embed_one(t) for t in texts])
    out = {}
    for name, extra in (("rust", []), ("rust-model.onnx", ["--optimized", 0])):
        r = run.rust("vectors", "--texts", tmp, "--n", len(texts), *extra)
        for mode in ("one_at_a_time", "batch"):
            v = np.array(r[mode], dtype=np.float32)
            out[f"{name}/{mode}"] = float((v * py).sum(axis=1).min())
    log(f"same vectors: min cosine Memento vs Python {min(out.values()):.6f}")
    return out


def measure_rss(run: Runner, info: dict, data_dir: Path, threads: int, rounds: int, long_n: int, log) -> dict:
    """Model loaded + one text; then (same process, measured after) one batch of long texts."""
    log(f"rss: {rounds} rounds")
    long_file = data_dir / "embed" / "texts" / "long.jsonl"
    rs, py = [], []
    for _ in range(rounds):
        rs.append(run.rust("rss", "--threads", threads, "--then-texts", long_file, "--then-n", long_n))
        py.append(run.py("rss", "--model", info["model_file"], "--tokenizer", info["tokenizer_file"], "--threads", threads,
                         "--texts", long_file, "--n", long_n))
    out = {}
    for name, runs in (("rust", rs), ("python", py)):
        out[name] = {"rss_mib": med([x["rss_mib"] for x in runs]), "hwm_mib": med([x["hwm_mib"] for x in runs]),
                     "after_batch_hwm_mib": med([x["after_batch"]["hwm_mib"] for x in runs]),
                     "after_batch_rss_mib": med([x["after_batch"]["rss_mib"] for x in runs]), "batch_texts": long_n, "runs": runs}
    return out


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(R: dict) -> tuple[str, list[str]]:
    lines, checks = [], []
    t = R["threads_all"]
    lines.append(f"Embedding benchmark, {R['when']}, commit {R['commit']}, {R['cores']} cores, load average {R['load_start']} at the start, "
                 f"{R['load_end']} at the end. ONNX Runtime {R['info']['runtime_version']} (one library for both: "
                 f"{R['ort_library']}), model {R['info']['model_file']} (sha256 {R['info']['model_sha256'][:12]}…).")
    lines.append("")
    lines.append("| measure | Memento (Rust) | Python onnxruntime | ratio | target | result |")
    lines.append("|---|---|---|---|---|---|")

    if "cold" in R:
        c = R["cold"]
        rw, pw = c["rust"]["wall_median_s"], c["python"]["wall_median_s"]
        ok = rw < 0.3 and pw / rw >= 1.5
        checks.append(f"{verdict(ok)} 1. cold start {rw:.3f} s (< 0.3 s: {rw < 0.3}), Python {pw:.3f} s, ratio {pw / rw:.2f}x (>= 1.5x: {pw / rw >= 1.5})")
        lines.append(f"| cold start, spawn to exit, {t} threads, median of {len(c['rust']['wall_s'])} | **{rw * 1e3:.0f} ms** "
                     f"(10k store opened, query embedded and searched) | {pw * 1e3:.0f} ms (import + session + first embedding) | "
                     f"{pw / rw:.2f}x | < 300 ms and >= 1.5x | {verdict(ok)} |")
    if "warm" in R:
        w = R["warm"]
        for th in (1, 2):
            r, p = w[f"t{th}/rust"]["p50_ms"], w[f"t{th}/python"]["p50_ms"]
            ok = r <= p
            checks.append(f"{verdict(ok)} 2. warm one short text, {th} thread(s), p50 {r:.2f} ms vs Python {p:.2f} ms ({p / r:.2f}x)")
            lines.append(f"| warm, one short text, {th} thread{'s' if th > 1 else ''}, p50 (median of {len(w[f't{th}/rust']['runs'])} runs) | "
                         f"**{r:.2f} ms** | {p:.2f} ms | {p / r:.2f}x | <= Python | {verdict(ok)} |")
    if "batch" in R:
        b = R["batch"]
        for kind, need in (("long", 1.0), ("short", 1.2)):
            if kind not in b:
                continue
            r, p, ps = b[kind]["rust"]["texts_per_s"], b[kind]["python-input-order"]["texts_per_s"], b[kind]["python-sorted"]["texts_per_s"]
            ok = r >= need * p
            checks.append(f"{verdict(ok)} 2. batch {kind}: {r:.1f} texts/s vs Python (input order) {p:.1f} ({r / p:.2f}x, need {need}x); "
                          f"Python sorted by length {ps:.1f} ({r / ps:.2f}x)")
            tk = b[kind]["rust"]["tokens"] or {}
            lines.append(f"| batch, {kind} texts ({b[kind]['rust']['n']} texts, {tk.get('mean', 0):.0f} tokens on average), {t} threads | "
                         f"**{r:.1f} texts/s** | {p:.1f} texts/s (batches of 32 in input order); {ps:.1f} sorted by length | "
                         f"{r / p:.2f}x; {r / ps:.2f}x | >= {need}x | {verdict(ok)} |")
    if "cache" in R:
        h = R["cache"]["memory_hit"]["p50_us"]
        ok = h < 40
        checks.append(f"{verdict(ok)} 3. cache hit p50 {h:.2f} us (< 40 us)")
        lines.append(f"| cache hit (`Engine::embed` of a text embedded before), p50 / p99 | **{h:.2f} µs** / "
                     f"{R['cache']['memory_hit']['p99_us']:.2f} µs | | | < 40 µs | {verdict(ok)} |")
    if "rss" in R:
        s = R["rss"]
        ok = s["rust"]["hwm_mib"] < 200
        checks.append(f"{verdict(ok)} 4. RSS {s['rust']['rss_mib']:.0f} MiB, peak {s['rust']['hwm_mib']:.0f} MiB (< 200 MB)")
        lines.append(f"| memory, model loaded + one text embedded: VmRSS / peak (VmHWM) | **{s['rust']['rss_mib']:.0f} / "
                     f"{s['rust']['hwm_mib']:.0f} MiB** (and an empty store) | {s['python']['rss_mib']:.0f} / {s['python']['hwm_mib']:.0f} MiB | "
                     f"{s['python']['hwm_mib'] / s['rust']['hwm_mib']:.2f}x | < 200 MB | {verdict(ok)} |")
        lines.append(f"| memory, then {s['rust']['batch_texts']} long texts embedded in one job: VmRSS / peak | {s['rust']['after_batch_rss_mib']:.0f} / "
                     f"{s['rust']['after_batch_hwm_mib']:.0f} MiB (its batching) | {s['python']['after_batch_rss_mib']:.0f} / "
                     f"{s['python']['after_batch_hwm_mib']:.0f} MiB (batches of 32) | "
                     f"{s['python']['after_batch_hwm_mib'] / s['rust']['after_batch_hwm_mib']:.2f}x | | |")

    if "cold" in R:
        c = R["cold"]
        lines += ["", "Cold start, every variant (spawn to exit, median, min-max; inside: medians of what each process reports):", "",
                  "| variant | wall median | min-max | inside the process |", "|---|---|---|---|"]
        desc = {
            "rust": "Memento: `cold` (EngineBuilder::model_dir, recall)",
            "rust-manual": "Memento: `cold --via manual` (load, then open, then embed, then search)",
            "rust-runtime-search": f"Memento: as `rust`, ONNX Runtime found by the engine (no MEMENTO_ORT_LIB): {R.get('ort_found', '?')}",
            "python": "Python: import + tokenizer + session (model.onnx) + first embedding",
            "python-optimised-file": "Python: the same with Memento's pre-optimised file (graph passes off)",
            "python-bare": "Python: `python -c pass` (interpreter start only)",
        }
        for n, r in c.items():
            inside = ", ".join(f"{k} {v:.1f}" for k, v in r["inside_median"].items() if k.endswith("_ms") and k not in ("drop_ms",))
            lines.append(f"| {desc.get(n, n)} | {r['wall_median_s'] * 1e3:.0f} ms | {r['wall_min_s'] * 1e3:.0f}-{r['wall_max_s'] * 1e3:.0f} ms | {inside} |")
    if "warm" in R:
        lines += ["", "Warm latency, one short text (distinct texts, no cache), every configuration:", "",
                  "| configuration | p50 | p90 | p50 of each run | CPU time per text (all threads) | tokenizer p50 |",
                  "|---|---|---|---|---|---|"]
        desc = {"rust": "Memento (default: pre-optimised graph, spinning during a run only)", "rust-model.onnx": "Memento loading model.onnx itself",
                "rust-spin": "Memento, pool threads spinning between runs too", "python": "Python (default: spinning)", "python-nospin": "Python, no spinning",
                "python-spin-run": "Python, spinning during a Run only (session.force_spinning_stop=1)"}
        for k, v in R["warm"].items():
            th, name = k.split("/")
            lines.append(f"| {th[1:]} thread(s): {desc.get(name, name)} | {v['p50_ms']:.2f} ms | {v['p90_ms']:.2f} ms | "
                         f"{', '.join(f'{x:.2f}' for x in v['p50_each_ms'])} | {v['cpu_per_text_ms']:.2f} ms | {v['tokenize_p50_ms'] * 1e3:.0f} µs |")
    if "batch" in R:
        opts = R["info"]["defaults"]
        lines += ["", f"Batch throughput, {t} threads (texts/s, median of runs; each run's figure). Memento: one `embed_batch` call, "
                  f"sorted by length, batches of up to {opts['batch_size']} texts and {opts['batch_tokens']:,} tokens, spinning during a run only. "
                  "Python: batches of 32, default session options (pool threads spin) unless said:", "",
                  "| texts | Memento embed_batch | Python, input order | Python, sorted by length | Python, sorted, no spinning |",
                  "|---|---|---|---|---|"]
        for kind, v in R["batch"].items():
            cell = lambda x: f"{x['texts_per_s']:.1f} ({', '.join(f'{y:.1f}' for y in x['each'])})"  # noqa: E731
            lines.append(f"| {kind} | {cell(v['rust'])} | {cell(v['python-input-order'])} | {cell(v['python-sorted'])} | "
                         f"{cell(v['python-sorted-nospin'])} |")
    if "cache" in R:
        cc = R["cache"]
        lines += ["", f"Cache: memory hit p50 {cc['memory_hit']['p50_us']:.2f} µs, p99 {cc['memory_hit']['p99_us']:.2f} µs, mean "
                  f"{cc['memory_hit']['mean_us']:.2f} µs ({cc['memory_hit']['n']:,} look-ups); persisted-cache hit after a reopen p50 "
                  f"{cc['persisted_hit_after_reopen']['p50_us']:.1f} µs; a miss (inference, 1 thread) p50 {cc['miss']['p50_ms']:.2f} ms."]
    sv = R.get("same_vectors")
    if sv:
        lines += ["", f"Same computation: the lowest cosine between Memento's and Python's vectors of 8 texts (6 short, 2 long; "
                  f"Memento one at a time and in a batch, with its pre-optimised graph and with model.onnx) is {min(sv.values()):.6f}."]
    lines += ["", "Targets:", ""] + [f"- {x}" for x in checks]
    return "\n".join(lines) + "\n", checks


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        return worker(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", type=Path, default=default_bin(), help="memento-embed-bench binary (default: %(default)s)")
    ap.add_argument("--data-dir", type=Path, default=REPO / "target" / "bench-data", help="texts, store and results (default: %(default)s)")
    ap.add_argument("--only", default="cold,warm,batch,cache,rss", help="comma-separated subset (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="fewer runs: 5 cold runs, 1 round, 100 warm texts, smaller batches")
    ap.add_argument("--cold-runs", type=int, default=None, help="timed cold runs per variant (default 11; --quick 5)")
    ap.add_argument("--rounds", type=int, default=None, help="warm/batch/rss rounds (default 3; --quick 1)")
    ap.add_argument("--warm-n", type=int, default=None, help="timed texts per warm run (default 200; --quick 100)")
    ap.add_argument("--short-n", type=int, default=None, help="short texts per batch run (default 512; --quick 256)")
    ap.add_argument("--long-n", type=int, default=None, help="long texts per batch run (default 128; --quick 64)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for cold, batch and rss (default: all cores, %(default)s)")
    a = ap.parse_args()
    q = a.quick
    cold_runs = a.cold_runs or (5 if q else 11)
    rounds = a.rounds or (1 if q else 3)
    warm_n = a.warm_n or (100 if q else 200)
    sizes = {"short": (a.short_n or (256 if q else 512), 2), "long": (a.long_n or (64 if q else 128), 1)}
    only = set(a.only.split(","))
    log = lambda s: print(f"[{time.strftime('%H:%M:%S')}] {s}", file=sys.stderr, flush=True)  # noqa: E731

    if not a.bin.is_file():
        raise SystemExit(f"{a.bin} is missing: cargo build --release -p memento-benches --bin memento-embed-bench (or make bench-embed)")
    import onnxruntime

    env = dict(os.environ)
    env.setdefault("MEMENTO_ORT_LIB", ort_library())
    run = Runner(a.bin, env, log)
    info = run.rust("info")
    info["python_onnxruntime"] = onnxruntime.__version__
    if info["runtime_version"] != onnxruntime.__version__:
        log(f"warning: the Rust side loads ONNX Runtime {info['runtime_version']}, Python has {onnxruntime.__version__}")
    a.data_dir.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    R = {"when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit, "cores": os.cpu_count(),
         "threads_all": a.threads, "load_start": load_avg(), "info": info, "ort_library": env["MEMENTO_ORT_LIB"],
         "python": platform.python_version(), "machine": platform.platform(),
         "settings": {"cold_runs": cold_runs, "rounds": rounds, "warm_n": warm_n, "batch_sizes": sizes}}
    texts = prepare_texts(a.data_dir, info["tokenizer_file"], log)
    R["texts"] = texts
    search_env = {k: v for k, v in env.items() if k not in ("MEMENTO_ORT_LIB", "ORT_DYLIB_PATH")}
    search_env["VIRTUAL_ENV"] = sys.prefix
    R["ort_found"] = run.rust("info", env=search_env)["runtime_library"]
    R["same_vectors"] = check_same_vectors(run, info, a.data_dir, log)
    if "cold" in only:
        R["store"] = ensure_store(run, a.data_dir, texts, a.threads, log)
        R["cold"] = measure_cold(run, info, a.data_dir, a.threads, cold_runs, log)
    if "warm" in only:
        R["warm"] = measure_warm(run, info, a.data_dir, warm_n, rounds, log)
    if "batch" in only:
        R["batch"] = measure_batch(run, info, a.data_dir, a.threads, sizes, rounds, log)
    if "cache" in only:
        log("cache: memento-embed-bench cache")
        R["cache"] = run.rust("cache", "--n", 100_000, "--texts", a.data_dir / "embed" / "texts" / "short.jsonl")
    if "rss" in only:
        R["rss"] = measure_rss(run, info, a.data_dir, a.threads, rounds, sizes["long"][0], log)
    R["load_end"] = load_avg()
    text, checks = report(R)
    R["checks"] = checks
    (a.data_dir / "embed-results.json").write_text(json.dumps(R, indent=1, default=str) + "\n")
    (a.data_dir / "embed-report.md").write_text(text)
    print(text)
    log(f"written {a.data_dir / 'embed-results.json'} and {a.data_dir / 'embed-report.md'}")


if __name__ == "__main__":
    main()
