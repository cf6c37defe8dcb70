"""Exact k-NN search: Memento vs numpy brute force vs FAISS IndexFlatIP vs sqlite-vec, one run.

Measures, in this order, in one process run:

1. the machine's memory read bandwidth, one core and all cores (``memento-search-bench
   bandwidth``);
2. the data sets, made or reused from the cache directory: ``gaussian-100k`` and
   ``gaussian-1m`` (unit Gaussian vectors from the benches crate's seeded generator, queries from
   a separate seed) and ``realtext`` (20k+ docstring paragraphs embedded with all-MiniLM-L6-v2,
   see ``embed_corpus.py``). Every engine reads the same ``.f32`` files;
3. per data set, each engine: k = 10 queries one at a time (p50, p99 after a warm-up) and as one
   batch (queries/s), at 1 and 2 threads where the engine has threads; recall@10 against an exact
   float64 ground truth computed here from the same float32 data;
4. the issue's targets, as PASS / FAIL lines with the ratios.

All vectors are unit length, so inner product, cosine similarity and Euclidean distance rank
alike: numpy and FAISS use the inner product, sqlite-vec its L2 distance (its fastest metric) and
Memento its cosine metric.

Usage (see BENCHMARKS.md; ``make bench-compare`` runs it with the right paths)::

    python benches/compare/compare.py [--quick] [--bin PATH] [--data-dir DIR] [--sets ...]
"""

from __future__ import annotations

import os


def _openblas_coretype():
    """OpenBLAS kernels for this CPU, chosen before numpy and faiss load their copies.

    faiss-cpu bundles OpenBLAS 0.3.15, which does not know recent Xeons and falls back to its
    SSE3 ("Prescott") kernels: FAISS's batch search (a BLAS sgemm) would then run far below what
    the CPU can do. Naming the core type gives FAISS its best. numpy's own OpenBLAS detects the
    same type by itself. An OPENBLAS_CORETYPE already set is left alone."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return
    if "avx512f" in flags and "avx512bw" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif "avx2" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"


_openblas_coretype()

import argparse  # noqa: E402  (after the environment is set for OpenBLAS)
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import embed_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DIM = 384
K = 10
THREADS = [1, 2]
N_QUERY_FILE = 1000
# Filtered-search case (target 4): record i has {"cat": "c{i % FILTER_MOD}"}, the filter selects
# cat == "c7", i.e. 1% of the records.
FILTER_MOD = 100
FILTER_CAT = 7
# Ties: a returned id counts as a true neighbour when its exact score is within this of the
# k-th best exact score (identical vectors, e.g. texts that differ only in letter case).
TIE_EPS = 1e-6


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def percentile(samples, p):
    """Nearest-rank percentile, as the Rust side computes it."""
    s = sorted(samples)
    if not s:
        return float("nan")
    rank = int(np.ceil(p / 100 * len(s)))
    return s[min(max(rank, 1), len(s)) - 1]


def l3_bytes():
    """Size of the last-level (L3) cache as the kernel reports it, or None."""
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for d in sorted(root.glob("index*")):
        try:
            if (d / "level").read_text().strip() == "3":
                size = (d / "size").read_text().strip()
                mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1], 1)
                return int(size.rstrip("KMG")) * mult
        except (OSError, ValueError):
            continue
    return None


# --------------------------------------------------------------------------------------------
# Data sets


class DataSet:
    def __init__(self, name, base_path, query_path, nq, note, filter_case=False):
        self.name = name
        self.base_path = Path(base_path)
        self.query_path = Path(query_path)
        self.base = np.fromfile(self.base_path, dtype="<f4").reshape(-1, DIM)
        self.queries = np.ascontiguousarray(np.fromfile(self.query_path, dtype="<f4").reshape(-1, DIM)[:nq])
        self.n = len(self.base)
        self.nq = len(self.queries)
        self.note = note
        self.filter_case = filter_case
        self.gt_ids, self.gt_kth = exact_top_k(self.base, self.queries, K)
        self.bytes = self.n * DIM * 4


def exact_top_k(base, queries, k, rows=None):
    """Exact top-k by inner product in float64: ids (row numbers of ``base``, or ``rows[...]``)
    and the k-th best score of each query."""
    q64 = queries.astype(np.float64)
    best_s = np.full((len(queries), 0), -np.inf)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    step = 100_000
    for start in range(0, len(base), step):
        s = q64 @ base[start : start + step].astype(np.float64).T
        idx = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k] if s.shape[1] > k else np.tile(np.arange(s.shape[1]), (len(s), 1))
        best_s = np.concatenate([best_s, np.take_along_axis(s, idx, axis=1)], axis=1)
        best_i = np.concatenate([best_i, idx + start], axis=1)
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(best_s, keep, axis=1)
        best_i = np.take_along_axis(best_i, keep, axis=1)
    if rows is not None:
        best_i = rows[best_i]
    return best_i, best_s[:, -1]


def recall_at_k(ds, ids):
    """Mean share of the k results that are true top-k neighbours (ties at the k-th score count)."""
    total = 0
    for qi, got in enumerate(ids):
        got = list(dict.fromkeys(int(x) for x in got))[:K]
        truth = set(ds.gt_ids[qi].tolist())
        ok = 0
        for r in got:
            if r in truth:
                ok += 1
            elif 0 <= r < ds.n and float(ds.queries[qi].astype(np.float64) @ ds.base[r].astype(np.float64)) >= ds.gt_kth[qi] - TIE_EPS:
                ok += 1
        total += ok
    return total / (K * len(ids))


def ensure_gaussian(bin_path, data_dir: Path, n: int) -> tuple[Path, Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    base = data_dir / f"gaussian-{n}.f32"
    queries = data_dir / f"gaussian-queries-{N_QUERY_FILE}.f32"
    for path, rows, seed in [(base, n, "data"), (queries, N_QUERY_FILE, "queries")]:
        if path.exists() and path.stat().st_size == rows * DIM * 4:
            continue
        log(f"data: generating {path.name} ({rows} × {DIM}, seed {seed})")
        run_json([bin_path, "gen", "--out", path, "--n", rows, "--seed", seed])
    return base, queries


def run_json(cmd):
    out = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    if out.returncode != 0:
        raise SystemExit(f"compare: {' '.join(map(str, cmd))} failed with exit code {out.returncode}")
    return json.loads(out.stdout)


# --------------------------------------------------------------------------------------------
# Engines. Each returns result rows:
#   {"engine", "mode", "threads", "p50_ms", "p99_ms", "batch_qps", "ids", "note"}


def time_single(search_one, queries, warmup):
    for q in queries[:warmup]:
        search_one(q)
    lat, ids = [], []
    for q in queries:
        t = time.perf_counter_ns()
        r = search_one(q)
        lat.append((time.perf_counter_ns() - t) / 1e6)
        ids.append(r)
    return lat, ids


def time_batch(search_batch, queries):
    t = time.perf_counter()
    ids = search_batch(queries)
    secs = time.perf_counter() - t
    return len(queries) / secs, ids


def row(engine, mode, threads, lat, batch_qps, ids, note="", **extra):
    return dict(engine=engine, mode=mode, threads=threads, p50_ms=percentile(lat, 50), p99_ms=percentile(lat, 99),
                batch_qps=batch_qps, ids=ids, note=note, **extra)


def bench_numpy(ds, warmup):
    base = ds.base

    def one(q):
        s = base @ q
        idx = np.argpartition(s, -K)[-K:]
        return idx[np.argsort(-s[idx])].tolist()

    def batch(qs):
        out = []
        for start in range(0, len(qs), 64):  # 64 queries at a time: a 64 × n score matrix
            s = qs[start : start + 64] @ base.T
            idx = np.argpartition(s, -K, axis=1)[:, -K:]
            order = np.argsort(-np.take_along_axis(s, idx, axis=1), axis=1)
            out.extend(np.take_along_axis(idx, order, axis=1).tolist())
        return out

    rows = []
    for t in THREADS:
        with threadpool_limits(limits=t, user_api="blas"):
            lat, ids = time_single(one, ds.queries, warmup)
            qps, bids = time_batch(batch, ds.queries)
        rows.append(row("numpy", "f32 matmul", t, lat, qps, ids, batch_ids=bids))
        log(f"  numpy × {t}: p50 {rows[-1]['p50_ms']:.3f} ms, batch {qps:.0f} q/s")
    return rows


def bench_faiss(ds, warmup):
    import faiss

    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(DIM)
    index.add(ds.base)
    build_s = time.perf_counter() - t0
    rows = []
    for t in THREADS:
        faiss.omp_set_num_threads(t)
        with threadpool_limits(limits=t):
            lat, ids = time_single(lambda q: index.search(q[None, :], K)[1][0].tolist(), ds.queries, warmup)
            qps, bids = time_batch(lambda qs: index.search(qs, K)[1].tolist(), ds.queries)
        rows.append(row("FAISS IndexFlatIP", "f32", t, lat, qps, ids, batch_ids=bids, build_s=build_s))
        log(f"  faiss × {t}: p50 {rows[-1]['p50_ms']:.3f} ms, batch {qps:.0f} q/s")
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return rows


def sqlite_connect():
    """A connection that can load extensions: the stdlib's if it was built with that, else
    pysqlite3 (pyenv and some distributions build Python's sqlite3 without it)."""
    import sqlite3

    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3.connect(":memory:"), sqlite3.sqlite_version
    import pysqlite3.dbapi2 as sqlite3b

    return sqlite3b.connect(":memory:"), sqlite3b.sqlite_version


def bench_sqlite_vec(ds, warmup, nq_limit):
    import sqlite_vec

    db, sqlite_version = sqlite_connect()
    db.enable_load_extension(True)
    sqlite_vec.load(db)
    db.enable_load_extension(False)
    # L2: sqlite-vec's default metric, and its fastest here (about 25% faster than cosine with
    # the PyPI build); on unit vectors it ranks as cosine does.
    db.execute(f"CREATE VIRTUAL TABLE vecs USING vec0(embedding float[{DIM}] distance_metric=l2)")
    t0 = time.perf_counter()
    step = 10_000
    for start in range(0, ds.n, step):
        chunk = ds.base[start : start + step]
        db.executemany("INSERT INTO vecs(rowid, embedding) VALUES (?, ?)",
                       ((start + i, v.tobytes()) for i, v in enumerate(chunk)))
    db.commit()
    build_s = time.perf_counter() - t0
    log(f"  sqlite-vec: {ds.n} rows inserted in {build_s:.1f} s")
    sql = "SELECT rowid FROM vecs WHERE embedding MATCH ? AND k = ? ORDER BY distance"

    def one(q):
        return [r[0] for r in db.execute(sql, (q.tobytes(), K))]

    queries = ds.queries[:nq_limit]
    lat, ids = time_single(one, queries, warmup)
    seq_qps = len(lat) / (sum(lat) / 1e3)
    note = "no batch call: q/s of one query after another"
    if len(queries) < ds.nq:
        note += f"; the first {len(queries)} of the {ds.nq} queries only (recall over those)"
    r = row("sqlite-vec", "vec0 f32 L2", 1, lat, seq_qps, ids, note=note,
            build_s=build_s, version=db.execute("SELECT vec_version()").fetchone()[0], sqlite=sqlite_version)
    log(f"  sqlite-vec × 1: p50 {r['p50_ms']:.3f} ms")
    db.close()
    return [r]


def bench_memento(ds, args, data_dir):
    cmd = [args.bin, "search", "--base", ds.base_path, "--queries", ds.query_path, "--nq", ds.nq,
           "--warmup", args.warmup, "--k", K, "--modes", "exact,quantized", "--threads", ",".join(map(str, THREADS)),
           "--store-parent", data_dir]
    if ds.filter_case:
        cmd += ["--filter-mod", FILTER_MOD]
    out = run_json(cmd)
    rows = []
    for r in out["runs"]:
        note = "" if r["batch_same_ids"] else "batch ids differ from one-at-a-time ids"
        rows.append(dict(engine="Memento", mode=r["mode"], threads=r["threads"], p50_ms=r["p50_ms"], p99_ms=r["p99_ms"],
                         batch_qps=r["batch_qps"], ids=r["ids"], batch_ids=r.get("batch_ids"), note=note))
    return rows, out


# --------------------------------------------------------------------------------------------
# Report


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def table(ds, rows, bw):
    l3 = l3_bytes()
    cache_note = ""
    if l3 and ds.bytes < l3:
        cache_note = (f" The vectors ({ds.bytes / 2**20:,.0f} MiB) fit in the {l3 / 2**20:,.0f} MiB L3 cache: a scan can run from "
                      "cache, above the DRAM bandwidth.")
    lines = [
        f"### {ds.name}: {ds.n:,} × {DIM}, {ds.nq} queries, k = {K}",
        "",
        ds.note + cache_note,
        "",
        "| engine | mode | threads | p50 ms | p99 ms | batch q/s | GB/s at p50 | % of bandwidth | recall@10 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes = {}  # note -> footnote number
    for r in rows:
        gbs = ds.bytes / 1e9 / (r["p50_ms"] / 1e3) if r["p50_ms"] else None
        ref = bw["single_core"]["gbps"] if r["threads"] == 1 else bw["all_core"]["gbps"]
        pct = f"{100 * gbs / ref:.0f}% of {'1-core' if r['threads'] == 1 else 'all-core'}" if gbs else "—"
        mark = ""
        if r.get("note"):
            mark = f" ({notes.setdefault(r['note'], len(notes) + 1)})"
        lines.append(
            f"| {r['engine']}{mark} | {r['mode']} | {r['threads']} | {fmt(r['p50_ms'], '.3f')} | {fmt(r['p99_ms'], '.3f')} "
            f"| {fmt(r['batch_qps'], ',.0f')} | {fmt(gbs, '.1f')} | {pct} | {fmt(r.get('recall'), '.4f')} |"
        )
    lines.append("")
    for n, i in notes.items():
        lines.append(f"({i}) {n}  ")
    if notes:
        lines.append("")
    lines.append(f"GB/s at p50 = {ds.n:,} × {DIM} × 4 bytes / p50 (the float32 data, whatever a mode actually reads).")
    return "\n".join(lines)


def find(rows, engine, mode=None, threads=None):
    for r in rows:
        if r["engine"] == engine and (mode is None or r["mode"] == mode) and (threads is None or r["threads"] == threads):
            if r.get("p50_ms") is not None:
                return r
    return None


def verdict(ok):
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def targets(results, bw, bw_set, filtered):
    """The issue's four targets, one line each, with the ratios."""
    out = ["## Targets", ""]
    single = bw["single_core"]["gbps"]

    def faiss_vs(ds_name, mode, t):
        res = results.get(ds_name)
        if res is None:
            return None, None, None
        ds, rows = res
        m = find(rows, "Memento", mode, t)
        f = find(rows, "FAISS IndexFlatIP", None, t)
        if m is None or f is None:
            return None, m, f
        return f["p50_ms"] / m["p50_ms"], m, f

    def faiss_best(ds_name, m, f, t):
        """A note when FAISS was faster with fewer threads than t (the same-thread ratio then
        flatters Memento)."""
        rows = results[ds_name][1]
        best = min((r for r in rows if r["engine"] == "FAISS IndexFlatIP" and r["threads"] <= t and r["p50_ms"]),
                   key=lambda r: r["p50_ms"])
        if best["p50_ms"] >= f["p50_ms"]:
            return ""
        return (f" [FAISS was faster on {best['threads']} thread: {best['p50_ms']:.3f} ms, "
                f"{best['p50_ms'] / m['p50_ms']:.2f}× against that]")

    # (1) float32 scan: ≥ 80% of single-core bandwidth on one thread, and ≥ FAISS at each thread count
    res = results.get("gaussian-100k")
    if res is None:
        out.append("1. n/a: gaussian-100k was not run")
    else:
        ds, rows = res
        m1 = find(rows, "Memento", "exact", 1)
        if m1 is None:
            out.append("1. n/a: Memento exact × 1 thread did not run")
        else:
            gbs = ds.bytes / 1e9 / (m1["p50_ms"] / 1e3)
            frac = gbs / single
            also = ""
            if bw_set is not None:
                cached = bw_set["single_core"]["gbps"]
                also = (f" (and {100 * gbs / cached:.0f}% of the {cached:.1f} GB/s one core reads from a buffer the size of the "
                        "set, which may stay in cache)")
            out.append(f"1a. {verdict(frac >= 0.8)}: Memento exact scan, 100k × 384, 1 thread: {gbs:.1f} GB/s at p50 = "
                       f"{100 * frac:.0f}% of the measured single-core DRAM bandwidth ({single:.1f} GB/s){also}; target ≥ 80%")
        for t in THREADS:
            ratio, m, f = faiss_vs("gaussian-100k", "exact", t)
            if ratio is None:
                out.append(f"1b. n/a: Memento exact or FAISS × {t} thread(s) did not run")
            else:
                out.append(f"1b. {verdict(ratio >= 1.0)}: Memento exact vs FAISS IndexFlatIP, 100k, {t} thread(s): p50 "
                           f"{m['p50_ms']:.3f} vs {f['p50_ms']:.3f} ms, FAISS/Memento = {ratio:.2f}×; target ≥ 1.00×"
                           + faiss_best("gaussian-100k", m, f, t))

    # (2) quantized with rescoring ≥ 2.5× FAISS, recall ≥ 0.999, on both sets
    for name in ["gaussian-100k", "realtext"]:
        for t in THREADS:
            ratio, m, f = faiss_vs(name, "quantized", t)
            if ratio is None:
                why = "the data set was not run" if name not in results else "Memento quantized or FAISS did not run"
                out.append(f"2. n/a: {name}, {t} thread(s): {why}")
                continue
            ok = ratio >= 2.5 and m["recall"] >= 0.999
            out.append(f"2. {verdict(ok)}: Memento quantized vs FAISS IndexFlatIP, {name}, {t} thread(s): p50 {m['p50_ms']:.3f} vs "
                       f"{f['p50_ms']:.3f} ms = {ratio:.2f}× (target ≥ 2.5×), recall@10 {m['recall']:.4f} (target ≥ 0.999)"
                       + faiss_best(name, m, f, t))

    # (3) 1M: 2 threads vs 1 thread ≥ 1.6×
    res = results.get("gaussian-1m")
    if res is None:
        out.append("3. n/a: gaussian-1m was not run")
    else:
        ds, rows = res
        for mode in ["exact", "quantized"]:
            m1, m2 = find(rows, "Memento", mode, 1), find(rows, "Memento", mode, 2)
            if m1 is None or m2 is None:
                out.append(f"3. n/a: Memento {mode} at 1M did not run at 1 and 2 threads")
                continue
            sp = m1["p50_ms"] / m2["p50_ms"]
            label = verdict(sp >= 1.6) if mode == "exact" else "info"
            out.append(f"3. {label}: Memento {mode}, 1M × 384, 2 threads vs 1: p50 {m1['p50_ms']:.2f} → {m2['p50_ms']:.2f} ms = "
                       f"{sp:.2f}× (target ≥ 1.6× for the exact scan)")

    # (4) filtered search
    if not filtered:
        out.append("4. n/a: the filtered case was not run")
    for f in filtered or []:
        ok = f["p50_ms"] < 2.0 and f["exact"]
        out.append(f"4. {verdict(ok)}: filter {{\"cat\": \"c{FILTER_CAT}\"}} ({f['matching']:,} of 100k records), scan {f['mode']}, "
                   f"{f['threads']} thread: p50 {f['p50_ms']:.3f} ms, p99 {f['p99_ms']:.3f} ms (target p50 < 2 ms); "
                   f"exactly the true top-{K} of the matching records for {f['n_exact']} of {f['nq']} queries")
    return "\n".join(out)


def check_filtered(ds, mem_out):
    """Each filtered run of Memento, with how many queries got exactly the true top-k of the
    matching records."""
    runs = mem_out.get("filtered") or []
    if not runs:
        return None
    rows = np.nonzero(np.arange(ds.n) % FILTER_MOD == FILTER_CAT)[0]
    truth, kth = exact_top_k(ds.base[rows], ds.queries, K, rows=rows)
    out = []
    for f in runs:
        n_exact = 0
        for qi, got in enumerate(f["ids"]):
            if got == truth[qi].tolist():
                n_exact += 1
                continue
            # Equal up to ties at the k-th score: k distinct matching records, each as good.
            q = ds.queries[qi].astype(np.float64)
            n_exact += len(got) == K and len(set(got)) == K and all(
                r % FILTER_MOD == FILTER_CAT and q @ ds.base[r].astype(np.float64) >= kth[qi] - TIE_EPS for r in got)
        out.append(dict(mode=f["mode"], threads=f["threads"], p50_ms=f["p50_ms"], p99_ms=f["p99_ms"], nq=len(f["ids"]),
                        n_exact=n_exact, exact=n_exact == len(f["ids"]), matching=len(rows)))
    return out


def machine_info():
    def sh(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), mem=mem, kernel=platform.release(), python=platform.python_version(),
                commit=sh("git", "-C", str(REPO), "rev-parse", "--short", "HEAD"),
                dirty=sh("git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no") not in ("", "unknown"),
                loadavg=open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else "unknown")


def faiss_version() -> str:
    """FAISS's version and the SIMD level it runs at."""
    import faiss

    level = "unknown"
    try:
        level = faiss.SIMDConfig.get_level_name()
    except AttributeError:
        pass
    return f"{faiss.__version__} (SIMD level {level})"


def versions():
    import onnxruntime
    import sqlite_vec

    return dict(numpy=np.__version__, faiss=faiss_version(), sqlite_vec=sqlite_vec.__version__,
                onnxruntime=onnxruntime.__version__, openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", "auto"))


def default_bin():
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return target / "release" / "memento-search-bench"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="skip the 1M set, 50 queries, 3 bandwidth reps")
    ap.add_argument("--bin", type=Path, default=default_bin(), help="memento-search-bench binary (default: %(default)s)")
    ap.add_argument("--data-dir", type=Path, default=REPO / "target" / "bench-data", help="cache of data sets (default: %(default)s)")
    ap.add_argument("--sets", default=None, help="comma-separated subset of gaussian-100k,realtext,gaussian-1m")
    ap.add_argument("--engines", default="numpy,faiss,sqlite-vec,memento", help="comma-separated subset (default: all)")
    ap.add_argument("--nq", type=int, default=None, help="timed queries per set (default 200, 50 at 1M; --quick 50, 20)")
    ap.add_argument("--sqlite-nq-1m", type=int, default=20, help="timed sqlite-vec queries on the 1M set (default %(default)s)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed queries first (default %(default)s)")
    ap.add_argument("--bandwidth-mib", type=int, default=1024, help="buffer per thread (default %(default)s)")
    args = ap.parse_args()

    if not args.bin.exists():
        raise SystemExit(f"compare: {args.bin} not found: build it with `cargo build --release -p memento-benches` or pass --bin")
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    sets = args.sets.split(",") if args.sets else (["gaussian-100k", "realtext"] + ([] if args.quick else ["gaussian-1m"]))
    engines = set(args.engines.split(","))
    nq = args.nq or (50 if args.quick else 200)
    nq_1m = args.nq or (20 if args.quick else 50)
    started = time.perf_counter()
    info = machine_info()
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    vers = versions()
    log(f"compare: {info}\ncompare: {vers}")

    log("bandwidth: measuring (DRAM, at the start)")
    reps = 3 if args.quick else 7
    bw_start = run_json([args.bin, "bandwidth", "--mib", args.bandwidth_mib, "--reps", reps])
    # The same at the size of the 100k set (which may fit in L3): what a scan of it can reach.
    bw_set = None
    if "gaussian-100k" in sets:
        set_mib = -(-100_000 * DIM * 4 // 2**20)
        threads = os.cpu_count() or 1
        log(f"bandwidth: again over {set_mib} MiB, the size of gaussian-100k")
        bw_set = run_json([args.bin, "bandwidth", "--mib", set_mib, "--all-core-mib", -(-set_mib // threads), "--reps", reps])

    results, filtered, raw = {}, None, {}
    for name in sets:
        log(f"== {name}")
        if name == "gaussian-100k" or name == "gaussian-1m":
            n = 100_000 if name == "gaussian-100k" else 1_000_000
            base, queries = ensure_gaussian(args.bin, data_dir, n)
            note = ("Unit Gaussian vectors (benches crate generator, seed `DATA_SEED`), queries from `QUERY_SEED`."
                    + (f" Memento's store also holds metadata `{{\"cat\": \"c{{i % {FILTER_MOD}}}\"}}` for the filtered case." if name == "gaussian-100k" else ""))
            ds = DataSet(name, base, queries, nq if n == 100_000 else nq_1m, note, filter_case=(name == "gaussian-100k"))
        elif name == "realtext":
            m = embed_corpus.ensure(data_dir, log=log)
            srcs = ", ".join(f"{k} {v:,}" for k, v in m["sources"].items())
            note = (f"{m['n_base']:,} docstring paragraphs (mean {m['mean_chars']:.0f} chars, {m['mean_tokens']:.0f} tokens) from: {srcs}; "
                    f"{m['n_queries']} other paragraphs as queries. Embedded with all-MiniLM-L6-v2 int8 (ONNX Runtime "
                    f"{m['onnxruntime']}) in {m['embed_s']:.0f} s ({m['texts_per_s']:.0f} texts/s, {m['threads']} threads), cached.")
            ds = DataSet(name, m["base"], m["queries"], nq, note)
        else:
            raise SystemExit(f"compare: unknown data set {name!r}")
        log(f"  {ds.n} × {DIM}, {ds.nq} queries; ground truth computed")
        rows = []
        if "numpy" in engines:
            rows += bench_numpy(ds, args.warmup)
        if "faiss" in engines:
            rows += bench_faiss(ds, args.warmup)
        if "sqlite-vec" in engines:
            big = ds.n > 500_000  # about a second per query: fewer of them
            rows += bench_sqlite_vec(ds, min(args.warmup, 2) if big else args.warmup, args.sqlite_nq_1m if big else ds.nq)
        if "memento" in engines:
            mrows, mout = bench_memento(ds, args, data_dir)
            rows += mrows
            raw[f"{name}/memento"] = {k: v for k, v in mout.items() if k not in ("runs", "filtered")}
            if ds.filter_case:
                filtered = check_filtered(ds, mout)
        for r in rows:
            r["recall"] = recall_at_k(ds, r["ids"]) if r.get("ids") else None
            if r.get("batch_ids") is not None:
                r["batch_recall"] = recall_at_k(ds, r["batch_ids"])
                if r["batch_recall"] < r["recall"] - 1e-9:
                    r["note"] = (r["note"] + "; " if r["note"] else "") + f"batch recall@10 {r['batch_recall']:.4f}"
        results[name] = (ds, rows)

    # DRAM bandwidth again at the end: other work on the machine only ever lowers it, so the
    # higher of the two (per single / all cores) is the reference.
    log("bandwidth: measuring (DRAM, at the end)")
    bw_end = run_json([args.bin, "bandwidth", "--mib", args.bandwidth_mib, "--reps", reps])
    bw = {key: max(bw_start[key], bw_end[key], key=lambda b: b["gbps"]) for key in ("single_core", "all_core")}

    report = [
        "# Exact k-NN: Memento vs numpy vs FAISS IndexFlatIP vs sqlite-vec",
        "",
        f"{info['date']}, commit `{info['commit']}`{' (uncommitted changes)' if info['dirty'] else ''}; {info['cpu']}, {info['cores']} cores, "
        f"{info['mem']}, Linux {info['kernel']}, Python {info['python']}; load average at start {' '.join(info['loadavg'])}, "
        f"at end {' '.join(open('/proc/loadavg').read().split()[:3])}.",
        f"numpy {vers['numpy']}, faiss-cpu {vers['faiss']}, sqlite-vec {vers['sqlite_vec']}, "
        f"OPENBLAS_CORETYPE={vers['openblas_coretype']}.",
        "",
        "## Memory read bandwidth",
        "",
        "| | threads | buffer | " + " | ".join(bw["single_core"]["methods"]) + " | used |",
        "|---|---|---|" + "---|" * len(bw["single_core"]["methods"]) + "---|",
    ]
    for key, who in [("single_core", "one core"), ("all_core", "all cores")]:
        for b_all, label in [(bw_start, "DRAM, start"), (bw_end, "DRAM, end"), (bw_set, "size of gaussian-100k")]:
            if b_all is None:
                continue
            b = b_all[key]
            cells = " | ".join(f"{v['median_gbps']:.1f}" for v in b["methods"].values())
            buf = f"{b['bytes'] / b['threads'] / 2**20:,.0f} MiB" + (" each" if b["threads"] > 1 else "")
            bold = "**" if b is bw[key] else ""
            report.append(f"| {who}, {label} | {b['threads']} | {buf} | {cells} | {bold}{b['gbps']:.1f} GB/s{bold} |")
    l3 = l3_bytes()
    report += ["", f"GB/s, median of {reps} reps per method; 'used' is the best method. DRAM is measured at the start and at "
               "the end of the run; the higher (bold) is the reference for the % columns below: one core for 1-thread rows, "
               "all cores otherwise." + (f" L3 cache: {l3 / 2**20:,.0f} MiB." if l3 else ""), ""]
    for name, (ds, rows) in results.items():
        report += [table(ds, rows, bw), ""]
    report.append(targets(results, bw, bw_set, filtered))
    report += ["", f"Total run time {time.perf_counter() - started:.0f} s."]
    text = "\n".join(report)
    print(text)
    (data_dir / "compare-report.md").write_text(text + "\n")
    dump = dict(machine=info, versions=vers, bandwidth=bw, bandwidth_start=bw_start, bandwidth_end=bw_end, bandwidth_set_size=bw_set, filtered=filtered, memento=raw,
                sets={n: dict(n=ds.n, nq=ds.nq, rows=[{k: v for k, v in r.items() if k not in ("ids", "batch_ids")} for r in rows])
                      for n, (ds, rows) in results.items()})
    (data_dir / "compare-results.json").write_text(json.dumps(dump, indent=1) + "\n")
    log(f"compare: report written to {data_dir / 'compare-report.md'} and compare-results.json")


if __name__ == "__main__":
    main()
