"""Approximate k-NN search on graph indexes: Memento vs FAISS IndexHNSWFlat vs hnswlib vs usearch.

Measures, in one process run, as ann-benchmarks does:

1. the data sets, made or reused from ``DATA_DIR/ann/`` (``--data-dir``, default
   ``target/bench-data``, where compare.py keeps its data). Each is float32 unit vectors, 384
   per row: ``base.f32`` and ``queries.f32`` (raw little-endian, row-major; 1,000 queries, none
   of them in the base) and ``gt.npz``, the exact top 10 of each query by inner product,
   computed here in float64 from the float32 data.

   - ``realtext``: the real-text set of ``compare.py`` (``embed_corpus.py``: 24,026 + 300
     docstring paragraphs embedded with all-MiniLM-L6-v2, made or reused from ``DATA_DIR``).
     Queries: its 300 query texts plus ``REALTEXT_HELD_OUT`` = 700 base rows drawn with
     ``REALTEXT_SEED``, which are removed from the base (23,326 rows left). A query can still
     have an identical vector in the base (texts that differ only in letter case; 2 here).
   - ``synth-<n>`` (``synth-1m``, ``synth-100k``; ``--synth-n`` picks any size): synthetic
     vectors whose neighbour structure resembles the real embeddings (Gaussian noise does not:
     in 384 dimensions every point is about as far from a query as every other, and HNSW's
     recall@10 stays under 0.4 on it up to ef 128). Made from the realtext base, every step seeded:

     a. spherical k-means of the 23,326 realtext base vectors into ``SYNTH_CLUSTERS`` = 128
        clusters (float64, ``SYNTH_KMEANS_ITERS`` = 20 Lloyd iterations from ``SYNTH_CLUSTERS``
        distinct rows drawn with ``SYNTH_SEED``; an empty cluster is re-seeded with a drawn row);
     b. per cluster c, of its n_c members: the mean mu_c (not normalised), the top
        r_c = min(``SYNTH_RANK`` = 64, n_c - 1) principal directions v_ci with their variances
        l_ci (SVD of the centred members, variance = s^2 / (n_c - 1)), and an isotropic residual
        variance s2_c = (total variance of the cluster - sum of the l_ci) / 384, so that the model
        keeps each cluster's total variance;
     c. row i of chunk j (``SYNTH_CHUNK`` = 10,000 rows, generator ``default_rng([SYNTH_SEED, j])``):
        a cluster c drawn with probability n_c / 23,326, then
        x = mu_c + sum_i sqrt(l_ci) z_i v_ci + sqrt(s2_c) e with z ~ N(0, I_64), e ~ N(0, I_384),
        computed in float64, normalised to unit length, stored as float32. The queries are 1,000
        more rows from ``default_rng([SYNTH_SEED, SYNTH_QUERY_STREAM])``, a stream no base chunk
        uses, so none is a base row. Chunks are independent: ``synth-100k`` is the first 100,000
        rows of ``synth-1m``.

     128 clusters and 64 directions were chosen because, at the size of the realtext base, they
     give hnswlib (M 16, efConstruction 200) about the recall@10 curve it has on realtext
     (ef 16, 32, 64, 128: 0.93, 0.98, 0.995, 0.999 on both, against 0.08, 0.15, 0.24, 0.39 on
     Gaussian noise). The run prints a sanity figure for each set beside realtext and Gaussian
     noise, on the same number of base rows (``SANITY_ROWS``): the median over the queries of the
     10th-neighbour distance divided by the median distance to the base rows (1.0 for pure noise
     in high dimension, lower the more a query has real neighbours), and the median local
     intrinsic dimension (Levina-Bickel maximum-likelihood estimate from the 10 nearest
     distances). Here, on 23,326 rows: realtext 0.706 and 14.5, synth 0.736 and 28.7, Gaussian
     noise 0.911 and 132; synth-1m at full size 0.651. The synthetic set's intrinsic dimension
     is higher than the real one's (the residual is isotropic), its graph search about as hard.

2. the peers, each built from the base with M = 16, efConstruction = 200 on every core
   (``--build-threads``), inner product on the unit vectors:
   FAISS ``IndexHNSWFlat(384, 16, METRIC_INNER_PRODUCT)``, ``hnsw.efConstruction = 200``;
   hnswlib ``Index(space="ip")``, ``init_index(M=16, ef_construction=200)``,
   ``add_items(num_threads=...)``; usearch ``Index(metric="ip", dtype="f32", connectivity=16,
   expansion_add=200)``, ``add(threads=...)``. For each: build time and vectors/s; the index's
   bytes in memory (FAISS: its vectors, neighbour lists, offsets and levels; hnswlib: its
   ``index_file_size()``, the same layout as in memory; usearch: ``memory_usage``) and on disk
   (the file its own save writes), per vector, and the overhead per vector beyond the 1,536
   bytes of the float32 vector. Then, for each ef of the sweep (FAISS ``hnsw.efSearch``,
   hnswlib ``set_ef``, usearch ``expansion_search``; ``--efs``), on one thread
   (``faiss.omp_set_num_threads(1)``, ``set_num_threads(1)``, ``threads=1``): ``--warmup``
   (100) untimed queries, then the 1,000 queries one call each, k = 10; p50 and p99 of the
   per-call times (nearest rank), queries/s = 1,000 / the sum of the times. The times include
   the Python binding's call overhead (a few microseconds), which Memento, timed in Rust, has
   not. The sweeps run in ``--rounds`` (3) rounds after every engine of the set is built: in
   each round every engine runs its whole sweep, the first engine of a round moving one place
   each round, and each figure reported is the median over the rounds (recall from the first
   round's ids). On a shared machine a sweep run once lands in a quiet or a busy minute by
   chance; interleaved rounds give every engine the same minutes.

3. Memento, through ``memento-search-bench ann`` (the release binary of the benches crate), run
   in phases on one store (``--phase build``, then ``--phase sweep`` once per round, then
   ``--phase rest``)::

       memento-search-bench ann --base BASE.f32 --queries Q.f32 --dim 384 --k 10 --m 16
           --ef-construction 200 --efs 10,16,... --store DIR --out RESULT.json --phase PHASE

   It ingests the base (record id = row number), builds its graph on every core, and writes
   its build time, ``index_bytes`` (its graph file: the index beyond the vectors) and
   ``store_bytes`` (the whole store on disk), the time from opening the store to the first
   answer, and per ef the same single-thread p50, p99, queries/s and the returned ids (row
   numbers), plus an exact-scan run over some of the queries as a check; then filtered
   searches and the churn measurement (which replaces half the records, so it runs last). If
   the binary or its
   ``ann`` subcommand fails, Memento is skipped with the reason, and every target that needs it
   is a FAIL line.

4. recall@10 of every run, computed here from the returned ids the same way for every engine: the
   share of the 10 results that are true top-10 neighbours, a result whose exact score ties the
   10th best (within 1e-6) counting as one (realtext holds identical vectors).

Output: per set, the build and size table, the sweep table (engine, ef, recall@10, p50, p99,
queries/s on one thread), and a summary (per engine the lowest p50 among the efs that reach
recall@10 >= 0.95, and >= 0.99: no interpolation); then the issue's targets as PASS/FAIL lines
with ratios: Memento's p50 at recall >= 0.95 at most FAISS's and hnswlib's (0.99 reported), its
build throughput at least 2x hnswlib's, open -> first answer under 100 ms at 1M. The report is
printed and written to ``DATA_DIR/ann-report.md`` (``target/bench-data/ann-report.md``), every
figure (no ids) to ``ann-results.json`` beside it, and one plot per set, recall@10 against
queries/s on one thread (log scale), the Pareto frontier of each engine as ann-benchmarks draws
it, to ``benches/compare/plots/ann-<set>.png``.

Usage (``make bench-ann``: realtext and synth-1m; ``make bench-ann-quick``: realtext and
synth-100k)::

    python benches/compare/ann.py [--quick] [--sets realtext,synth-1m] [--synth-n N]
        [--engines faiss,hnswlib,usearch,memento] [--efs 10,16,...] [--build-threads N] [--rounds 3]
    python benches/compare/ann.py --sets synth-1m --data-only   # make the data sets only
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (sets OPENBLAS_CORETYPE before numpy loads, as compare.py does)
import embed_corpus  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

REPO = compare.REPO
DIM = 384
K = 10
M = 16
EF_CONSTRUCTION = 200
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
N_QUERIES = 1000
TIE_EPS = compare.TIE_EPS
RECALL_LEVELS = [0.95, 0.99]
OPEN_TARGET_MS = 100.0
BUILD_TARGET = 2.0

# Bump when a data set's recipe changes, so that cached files are rebuilt.
FORMAT_VERSION = 1
REALTEXT_HELD_OUT = 700
REALTEXT_SEED = 20_261_207
SYNTH_SEED = 38_400_128
SYNTH_CLUSTERS = 128
SYNTH_RANK = 64
SYNTH_KMEANS_ITERS = 20
SYNTH_CHUNK = 10_000
SYNTH_QUERY_STREAM = 1 << 40
SANITY_ROWS = 23_326  # the realtext base's size
GAUSS_SEED = 7

ENGINES = ["faiss", "hnswlib", "usearch", "memento"]
LABEL = {"faiss": "FAISS IndexHNSWFlat", "hnswlib": "hnswlib", "usearch": "usearch", "memento": "Memento"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


percentile = compare.percentile


def write_f32(path: Path, rows: np.ndarray):
    """Raw little-endian float32, written beside and renamed, so a file present is complete."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    np.ascontiguousarray(rows, dtype="<f4").tofile(tmp)
    tmp.replace(path)


def read_f32(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<f4").reshape(-1, DIM)


sha256_file = compare.embed_corpus.sha256_file


def read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Data sets


class DataSet:
    """A base, its queries and their exact top-k, all in memory."""

    def __init__(self, name: str, directory: Path, note: str, threads: int):
        self.name = name
        self.dir = directory
        self.base_path = directory / "base.f32"
        self.query_path = directory / "queries.f32"
        self.base = read_f32(self.base_path)
        self.queries = read_f32(self.query_path)
        self.n, self.nq = len(self.base), len(self.queries)
        self.note = note
        self.gt_ids, self.gt_kth = ground_truth(directory, self.base, self.queries, threads)


def ground_truth(directory: Path, base, queries, threads):
    """Exact top-K by inner product in float64, cached in gt.npz (rebuilt when older than the
    data files or made for other sizes)."""
    path = directory / "gt.npz"
    newest = max((directory / f).stat().st_mtime for f in ("base.f32", "queries.f32"))
    if path.exists() and path.stat().st_mtime >= newest:
        with np.load(path) as z:
            if int(z["n"]) == len(base) and z["ids"].shape == (len(queries), K):
                return z["ids"].astype(np.int64), z["kth"]
    t = time.perf_counter()
    with threadpool_limits(limits=threads):
        ids, kth = compare.exact_top_k(base, queries, K)
    tmp = directory / "gt.tmp.npz"
    np.savez(tmp, ids=ids.astype(np.int32), kth=kth, n=len(base))
    tmp.replace(path)
    log(f"  ground truth: exact top {K} of {len(queries)} queries over {len(base):,} rows in {time.perf_counter() - t:.1f} s")
    return ids, kth


def ensure_realtext(data_dir: Path) -> tuple[Path, str]:
    """compare.py's real-text set, with REALTEXT_HELD_OUT base rows moved to the queries."""
    src = embed_corpus.ensure(data_dir, log=log)
    out = data_dir / "ann" / "realtext"
    want = dict(format_version=FORMAT_VERSION, source_texts_sha256=src["texts_sha256"], held_out=REALTEXT_HELD_OUT,
                seed=REALTEXT_SEED)
    have = read_manifest(out / "manifest.json")
    if not (have and all(have.get(k) == v for k, v in want.items()) and (out / "base.f32").exists()
            and (out / "queries.f32").exists()):
        out.mkdir(parents=True, exist_ok=True)
        (out / "manifest.json").unlink(missing_ok=True)
        base = read_f32(Path(src["base"]))
        queries = read_f32(Path(src["queries"]))
        rng = np.random.default_rng(REALTEXT_SEED)
        held = np.sort(rng.choice(len(base), size=REALTEXT_HELD_OUT, replace=False))
        keep = np.ones(len(base), dtype=bool)
        keep[held] = False
        write_f32(out / "base.f32", base[keep])
        write_f32(out / "queries.f32", np.concatenate([queries, base[held]]))
        manifest = dict(want, n_base=int(keep.sum()), n_queries=len(queries) + len(held),
                        query_rows=f"the {len(queries)} queries of realtext/queries.f32, then rows of realtext/base.f32: "
                                   + ",".join(map(str, held.tolist())))
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        have = manifest
        log(f"realtext (ann): {have['n_base']:,} base rows, {have['n_queries']} queries written to {out}")
    srcs = ", ".join(f"{k} {v:,}" for k, v in src["sources"].items())
    note = (f"{have['n_base']:,} docstring paragraphs ({srcs}) embedded with all-MiniLM-L6-v2 int8 (compare.py's real-text "
            f"set, `embed_corpus.py`); queries: its {src['n_queries']} query paragraphs and {REALTEXT_HELD_OUT} base rows "
            f"drawn with seed {REALTEXT_SEED} and removed from the base.")
    return out, note


def spherical_kmeans(x64: np.ndarray, c: int, iters: int, rng) -> np.ndarray:
    """Cluster of each row: Lloyd iterations on the unit sphere from ``c`` drawn rows."""
    cent = x64[rng.choice(len(x64), size=c, replace=False)].copy()
    for _ in range(iters):
        assign = np.argmax(x64 @ cent.T, axis=1)
        sums = np.zeros_like(cent)
        np.add.at(sums, assign, x64)
        for empty in np.nonzero(np.bincount(assign, minlength=c) == 0)[0]:
            sums[empty] = x64[rng.integers(len(x64))]
        cent = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return np.argmax(x64 @ cent.T, axis=1)


def fit_synth_model(realtext_base: Path, out: Path, threads: int) -> dict:
    """The per-cluster low-rank Gaussians of the synthetic sets, cached in ``out``."""
    src_sha = sha256_file(realtext_base)
    key = dict(format_version=FORMAT_VERSION, source_sha256=src_sha, clusters=SYNTH_CLUSTERS, rank=SYNTH_RANK,
               iters=SYNTH_KMEANS_ITERS, seed=SYNTH_SEED)
    path = out / "synth-model.npz"
    have = read_manifest(out / "synth-model.json")
    if have == key and path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    t = time.perf_counter()
    x64 = read_f32(realtext_base).astype(np.float64)
    with threadpool_limits(limits=threads):
        assign = spherical_kmeans(x64, SYNTH_CLUSTERS, SYNTH_KMEANS_ITERS, np.random.default_rng(SYNTH_SEED))
        mean = np.zeros((SYNTH_CLUSTERS, DIM))
        dirs = np.zeros((SYNTH_CLUSTERS, SYNTH_RANK, DIM))
        sdev = np.zeros((SYNTH_CLUSTERS, SYNTH_RANK))  # sqrt of each direction's variance
        resid = np.zeros(SYNTH_CLUSTERS)  # isotropic residual variance per dimension
        kept = np.zeros(SYNTH_CLUSTERS)  # share of the cluster's variance in its directions
        count = np.bincount(assign, minlength=SYNTH_CLUSTERS)
        for c in range(SYNTH_CLUSTERS):
            members = x64[assign == c]
            mean[c] = members.mean(axis=0)
            if len(members) < 2:
                continue
            _, s, vt = np.linalg.svd(members - mean[c], full_matrices=False)
            var = s**2 / (len(members) - 1)
            r = min(SYNTH_RANK, len(var))
            dirs[c, :r] = vt[:r]
            sdev[c, :r] = np.sqrt(var[:r])
            resid[c] = (var.sum() - var[:r].sum()) / DIM
            kept[c] = var[:r].sum() / var.sum() if var.sum() > 0 else 1.0
    model = dict(mean=mean, dirs=dirs, sdev=sdev, resid=resid, weight=count / count.sum(), kept=kept, count=count)
    tmp = out / "synth-model.tmp.npz"
    np.savez(tmp, **model)
    tmp.replace(path)
    (out / "synth-model.json").write_text(json.dumps(key, indent=1) + "\n")
    log(f"synth: model fitted in {time.perf_counter() - t:.1f} s: {SYNTH_CLUSTERS} clusters of {count.min()}..{count.max()} "
        f"rows, the top {SYNTH_RANK} directions hold {np.average(kept, weights=count):.0%} of the within-cluster variance")
    return model


def synth_rows(model: dict, n: int, rng) -> np.ndarray:
    """n rows of the model from one generator, unit float32."""
    label = rng.choice(len(model["weight"]), size=n, p=model["weight"])
    z = rng.standard_normal((n, SYNTH_RANK))
    e = rng.standard_normal((n, DIM))
    x = model["mean"][label] + np.sqrt(model["resid"][label])[:, None] * e
    for c in np.unique(label):
        rows = np.nonzero(label == c)[0]
        x[rows] += (z[rows] * model["sdev"][c]) @ model["dirs"][c]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def set_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"synth-{n // 1_000_000}m"
    if n % 1000 == 0:
        return f"synth-{n // 1000}k"
    return f"synth-{n}"


def parse_synth(name: str) -> int | None:
    m = re.fullmatch(r"synth-(\d+)([km]?)", name)
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[m.group(2)]


def ensure_synth(data_dir: Path, n: int, realtext_dir: Path, threads: int) -> tuple[Path, str, dict]:
    root = data_dir / "ann"
    model = fit_synth_model(realtext_dir / "base.f32", root, threads)
    out = root / set_label(n)
    model_key = read_manifest(root / "synth-model.json")
    want = dict(format_version=FORMAT_VERSION, n=n, model=model_key, chunk=SYNTH_CHUNK, query_stream=SYNTH_QUERY_STREAM)
    have = read_manifest(out / "manifest.json")
    if not (have and all(have.get(k) == v for k, v in want.items()) and (out / "base.f32").exists()
            and (out / "base.f32").stat().st_size == n * DIM * 4):
        out.mkdir(parents=True, exist_ok=True)
        (out / "manifest.json").unlink(missing_ok=True)
        t = time.perf_counter()
        tmp = out / "base.f32.tmp"
        with threadpool_limits(limits=threads), open(tmp, "wb") as f:
            for j, start in enumerate(range(0, n, SYNTH_CHUNK)):
                rows = synth_rows(model, min(SYNTH_CHUNK, n - start), np.random.default_rng([SYNTH_SEED, j]))
                f.write(rows.astype("<f4").tobytes())
                if j % 20 == 19:
                    log(f"  synth: {start + len(rows):,} / {n:,} rows")
            write_f32(out / "queries.f32", synth_rows(model, N_QUERIES, np.random.default_rng([SYNTH_SEED, SYNTH_QUERY_STREAM])))
        tmp.replace(out / "base.f32")
        have = dict(want, n_queries=N_QUERIES, base_sha256=sha256_file(out / "base.f32"))
        (out / "manifest.json").write_text(json.dumps(have, indent=1) + "\n")
        log(f"synth: {n:,} rows written to {out} in {time.perf_counter() - t:.1f} s")
    kept = float(np.average(model["kept"], weights=model["count"]))
    note = (f"{n:,} synthetic rows: {SYNTH_CLUSTERS} spherical k-means clusters of the realtext base, each sampled as its mean "
            f"+ its top {SYNTH_RANK} principal directions ({kept:.0%} of the within-cluster variance) + an isotropic residual "
            f"carrying the rest, normalised (seed {SYNTH_SEED}; see the docstring of `ann.py`); {N_QUERIES} queries from "
            "another stream of the same model.")
    return out, note, dict(kept_variance=kept, cluster_rows=[int(model["count"].min()), int(model["count"].max())])


def neighbour_figures(base: np.ndarray, queries: np.ndarray) -> dict:
    """Median over the queries of d10 / median distance, and the median Levina-Bickel intrinsic
    dimension from the 10 nearest distances (Euclidean, on unit vectors)."""
    ratios, lids = [], []
    for start in range(0, len(queries), 250):
        s = queries[start : start + 250].astype(np.float64) @ base.astype(np.float64).T
        d = np.sqrt(np.maximum(2.0 - 2.0 * s, 0.0))
        near = np.sort(np.partition(d, K, axis=1)[:, :K], axis=1)
        ratios.append(near[:, K - 1] / np.median(d, axis=1))
        ok = near[:, 0] > 1e-6  # a query with a duplicate in the base has no defined estimate
        lids.append(-1.0 / np.mean(np.log(near[ok, : K - 1] / near[ok, K - 1 :]), axis=1))
    return dict(d10_over_median=float(np.median(np.concatenate(ratios))), lid=float(np.median(np.concatenate(lids))))


def sanity(sets: dict, threads: int) -> list[dict]:
    """The neighbour figures of each set on its first SANITY_ROWS rows, beside Gaussian noise."""
    rows = []
    with threadpool_limits(limits=threads):
        for name, ds in sets.items():
            m = min(SANITY_ROWS, ds.n)
            rows.append(dict(set=name, rows=m, **neighbour_figures(ds.base[:m], ds.queries)))
        rng = np.random.default_rng(GAUSS_SEED)
        g = rng.standard_normal((SANITY_ROWS + N_QUERIES, DIM)).astype(np.float32)
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        rows.append(dict(set="Gaussian noise", rows=SANITY_ROWS, **neighbour_figures(g[:SANITY_ROWS], g[SANITY_ROWS:])))
    for name, ds in sets.items():
        if ds.n > SANITY_ROWS:  # the full set, from its ground truth: d10 only
            with threadpool_limits(limits=threads):
                sample = ds.base[np.random.default_rng(GAUSS_SEED).choice(ds.n, size=SANITY_ROWS, replace=False)]
                med = np.median(np.sqrt(np.maximum(2 - 2 * ds.queries.astype(np.float64) @ sample.astype(np.float64).T, 0)), axis=1)
            d10 = np.sqrt(np.maximum(2 - 2 * ds.gt_kth, 0))
            rows.append(dict(set=name, rows=ds.n, d10_over_median=float(np.median(d10 / med)), lid=None))
    return rows


# --------------------------------------------------------------------------------------------
# Recall


def recall(ds: DataSet, ids) -> float:
    """Mean share of the K results that are true top-K neighbours, over the first len(ids)
    queries; a result whose exact score ties the K-th best (within TIE_EPS) counts; a repeated
    id counts once; -1 is no result."""
    nq = len(ids)
    got = np.full((nq, K), -1, dtype=np.int64)
    for qi, r in enumerate(ids):
        r = list(r)[:K]
        got[qi, : len(r)] = r
    valid = (got >= 0) & (got < ds.n)
    same = got[:, :, None] == got[:, None, :]
    repeat = np.any(np.tril(np.ones((K, K), dtype=bool), -1)[None] & same, axis=2)
    valid &= ~repeat
    hit = valid & np.any(got[:, :, None] == ds.gt_ids[:nq, None, :], axis=2)
    miss = np.argwhere(valid & ~hit)
    if len(miss):
        q, j = miss[:, 0], miss[:, 1]
        score = np.einsum("ij,ij->i", ds.queries[q].astype(np.float64), ds.base[got[q, j]].astype(np.float64))
        tie = score >= ds.gt_kth[q] - TIE_EPS
        hit[q[tie], j[tie]] = True
    return float(hit.sum()) / (K * nq)


# --------------------------------------------------------------------------------------------
# Engines. Each returns {"engine", "build_seconds", "build_vectors_per_s", "memory_bytes",
# "disk_bytes", "runs": [{"ef", "p50_ms", "p99_ms", "qps", "ids"}], ...}


def release_memory():
    """Give freed heap back to the system between engines (glibc), so one's pages do not count
    against the next."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def sweep(search_one, set_ef, queries, efs, warmup):
    runs = []
    for ef in efs:
        set_ef(ef)
        for q in queries[:warmup]:
            search_one(q)
        lat, ids = [], []
        for q in queries:
            t = time.perf_counter_ns()
            r = search_one(q)
            lat.append((time.perf_counter_ns() - t) / 1e6)
            ids.append(r)
        runs.append(dict(ef=ef, p50_ms=percentile(lat, 50), p99_ms=percentile(lat, 99), qps=len(lat) / (sum(lat) / 1e3),
                         ids=[np.asarray(r).tolist() for r in ids]))
    return runs


def median_runs(rounds: list[list[dict]]) -> list[dict]:
    """One run per ef from the rounds' runs of the same efs: the median of each figure, the
    first round's ids, and every round's p50."""
    out = []
    for per_ef in zip(*rounds):
        r = dict(per_ef[0])
        for key in ("p50_ms", "p99_ms", "qps"):
            r[key] = float(np.median([x[key] for x in per_ef]))
        r["p50_rounds_ms"] = [x["p50_ms"] for x in per_ef]
        out.append(r)
    return out


def bench_faiss(ds, args, work: Path):
    import faiss

    faiss.omp_set_num_threads(args.build_threads)
    index = faiss.IndexHNSWFlat(DIM, M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    t = time.perf_counter()
    index.add(ds.base)
    build = time.perf_counter() - t
    hnsw: Any = index.hnsw  # SWIG object: its vectors are not in faiss's type stubs
    memory = (ds.n * DIM * 4 + hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
              + hnsw.assign_probas.size() * 8 + hnsw.cum_nneighbor_per_level.size() * 4)
    path = work / "faiss.index"
    faiss.write_index(index, str(path))
    disk = path.stat().st_size
    path.unlink()
    def set_ef(ef):
        index.hnsw.efSearch = ef

    def run_sweep():
        faiss.omp_set_num_threads(1)
        with threadpool_limits(limits=1):
            runs = sweep(lambda q: index.search(q[None, :], K)[1][0], set_ef, ds.queries, args.efs, args.warmup)
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        return runs

    return dict(build_seconds=build, memory_bytes=memory, disk_bytes=disk,
                max_level=int(hnsw.max_level) if hasattr(hnsw, "max_level") else None), run_sweep, None


def bench_hnswlib(ds, args, work: Path):
    import hnswlib

    index = hnswlib.Index(space="ip", dim=DIM)
    index.init_index(max_elements=ds.n, ef_construction=EF_CONSTRUCTION, M=M, random_seed=100)
    t = time.perf_counter()
    index.add_items(ds.base, np.arange(ds.n), num_threads=args.build_threads)
    build = time.perf_counter() - t
    memory = index.index_file_size()
    path = work / "hnswlib.bin"
    index.save_index(str(path))
    disk = path.stat().st_size
    path.unlink()
    index.set_num_threads(1)

    def run_sweep():
        return sweep(lambda q: index.knn_query(q, k=K, num_threads=1)[0][0], index.set_ef, ds.queries, args.efs, args.warmup)

    return dict(build_seconds=build, memory_bytes=memory, disk_bytes=disk), run_sweep, None


def bench_usearch(ds, args, work: Path):
    from usearch.index import Index

    index = Index(ndim=DIM, metric="ip", dtype="f32", connectivity=M, expansion_add=EF_CONSTRUCTION)
    keys = np.arange(ds.n, dtype=np.uint64)
    t = time.perf_counter()
    index.add(keys, ds.base, threads=args.build_threads)
    build = time.perf_counter() - t
    memory = int(index.memory_usage)
    path = work / "usearch.usearch"
    index.save(str(path))
    disk = path.stat().st_size
    path.unlink()
    accel = index.hardware_acceleration

    def set_ef(ef):
        index.expansion_search = ef

    def run_sweep():
        return sweep(lambda q: index.search(q, K, threads=1).keys, set_ef, ds.queries, args.efs, args.warmup)

    return dict(build_seconds=build, memory_bytes=memory, disk_bytes=disk, hardware_acceleration=str(accel)), run_sweep, None


def bench_memento(ds, args, work: Path):
    """memento-search-bench ann in phases on one store: the result of its build phase, the sweep
    (a phase per call) and the rest (filters and churn, then the store is removed). The result
    is a dict with "error" when it could not run."""
    store = work / "memento-store"
    out = work / "memento-ann.json"
    shutil.rmtree(store, ignore_errors=True)
    cmd = [args.bin, "ann", "--base", ds.base_path, "--queries", ds.query_path, "--dim", DIM, "--k", K, "--m", M,
           "--ef-construction", EF_CONSTRUCTION, "--efs", ",".join(map(str, args.efs)), "--store", store, "--out", out]
    if not Path(args.bin).exists():
        return dict(error=f"{args.bin} not found (make bench-compare-build)"), None, None

    def phase(name: str) -> dict:
        """One phase's JSON document; raises RuntimeError with the reason when it fails."""
        out.unlink(missing_ok=True)
        full = [str(c) for c in cmd + ["--phase", name]]
        log("  " + " ".join(full))
        try:
            proc = subprocess.run(full, stdout=sys.stderr, stderr=sys.stderr)
        except OSError as e:
            raise RuntimeError(f"could not run {args.bin}: {e}") from e
        if proc.returncode != 0:
            raise RuntimeError(f"`memento-search-bench ann --phase {name}` exited with code {proc.returncode}")
        try:
            return json.loads(out.read_text())
        except (OSError, ValueError) as e:
            raise RuntimeError(f"`memento-search-bench ann --phase {name}` result unreadable: {e}") from e

    first_exact = {}

    def run_sweep():
        res = phase("sweep")
        runs = [dict(ef=int(r["ef"]), p50_ms=float(r["p50_ms"]), p99_ms=float(r["p99_ms"]), qps=float(r["qps"]), ids=r["ids"])
                for r in res["runs"]]
        if not runs:
            raise RuntimeError("`memento-search-bench ann` wrote no runs")
        if res.get("exact") and not first_exact:
            first_exact.update(p50_ms=float(res["exact"]["p50_ms"]), ids=res["exact"]["ids"])
        return runs

    def finish(r: dict):
        try:
            rest = phase("rest")
            r["filters"], r["churn"] = rest.get("filters"), rest.get("churn")
        finally:
            if first_exact:
                r["exact"] = dict(first_exact)
            if not args.keep_store:
                shutil.rmtree(store, ignore_errors=True)

    try:
        res = phase("build")
        r = dict(build_seconds=float(res["build_seconds"]), build_vectors_per_s=float(res["build_vectors_per_s"]),
                 memory_bytes=int(res["index_bytes"]), disk_bytes=int(res["store_bytes"]),
                 open_first_answer_ms=float(res["open_first_answer_ms"]), n_reported=int(res["n"]))
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        shutil.rmtree(store, ignore_errors=True)
        return dict(error=str(e)), None, None
    if r["n_reported"] != ds.n:
        r["note"] = f"the binary reports n = {r['n_reported']:,}, the base has {ds.n:,} rows"
    return r, run_sweep, finish


BENCH = {"faiss": bench_faiss, "hnswlib": bench_hnswlib, "usearch": bench_usearch, "memento": bench_memento}


# --------------------------------------------------------------------------------------------
# Report


def fmt(x, spec, none="—"):
    return none if x is None else format(x, spec)


def best_at(res: dict, level: float):
    """The run with the lowest p50 among those reaching recall >= level, or None."""
    ok = [r for r in res.get("runs", []) if r["recall"] >= level]
    return min(ok, key=lambda r: r["p50_ms"]) if ok else None


def pareto(runs):
    """ann-benchmarks' frontier: from the highest recall down, the runs faster than all above."""
    front, best = [], -1.0
    for r in sorted(runs, key=lambda r: (-r["recall"], -r["qps"])):
        if r["qps"] > best:
            front.append(r)
            best = r["qps"]
    return sorted(front, key=lambda r: r["recall"])


def graph_overhead(res: dict, raw: int) -> int:
    """Bytes of the index beyond the float32 vectors: a peer's file less the vectors, Memento's
    graph file (``index_bytes``; its vectors are the store's)."""
    return res["memory_bytes"] if res.get("engine") == "memento" else res["disk_bytes"] - raw


def set_tables(ds: DataSet, results: dict, threads: int) -> list[str]:
    raw = ds.n * DIM * 4
    out = [f"## {ds.name}: {ds.n:,} × {DIM}, {ds.nq:,} queries, k = {K}", "", ds.note, "",
           f"### Build (M = {M}, efConstruction = {EF_CONSTRUCTION}) and size", "",
           f"| engine | build s | vectors/s ({threads} threads) | index in memory B/vector | on disk B/vector | "
           "graph overhead B/vector | open → first answer ms |",
           "|---|---|---|---|---|---|---|"]
    for e, res in results.items():
        if "error" in res:
            out.append(f"| {LABEL[e]} | did not run: {res['error']} | | | | | |")
            continue
        memory = "—" if e == "memento" else f"{res['memory_bytes'] / ds.n:,.0f}"
        out.append(f"| {LABEL[e]} | {res['build_seconds']:.1f} | {res['build_vectors_per_s']:,.0f} | {memory} "
                   f"| {res['disk_bytes'] / ds.n:,.0f} | {graph_overhead(res, raw) / ds.n:,.0f} "
                   f"| {fmt(res.get('open_first_answer_ms'), '.1f')} |")
    out += ["", f"In memory: FAISS its arrays, hnswlib `index_file_size()` (its memory layout), usearch `memory_usage`. On disk: "
            "the file each peer's save writes (vectors and graph), Memento's whole store directory (vectors, their quantized "
            "copy, ids, the graph file). Graph overhead: beyond the "
            f"{DIM * 4:,} float32 bytes of each vector: a peer's file less the vectors, Memento's graph file (`index_bytes`).", "",
            "### Sweep: one query at a time, one thread", "",
            "| engine | ef | recall@10 | p50 ms | p99 ms | QPS (1 thread) |", "|---|---|---|---|---|---|"]
    for e, res in results.items():
        for r in res.get("runs", []):
            out.append(f"| {LABEL[e]} | {r['ef']} | {r['recall']:.4f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['qps']:,.0f} |")
        if res.get("exact"):
            x = res["exact"]
            out.append(f"| {LABEL[e]} exact scan ({len(x['ids'])} queries) | — | {x['recall']:.4f} | {x['p50_ms']:.3f} | — | — |")
    out += ["", "### Summary", "",
            "| engine | p50 ms at recall ≥ 0.95 (ef) | p50 ms at recall ≥ 0.99 (ef) | build vectors/s | graph overhead "
            "B/vector | total on disk B/vector |", "|---|---|---|---|---|---|"]
    for e, res in results.items():
        if "error" in res:
            out.append(f"| {LABEL[e]} | did not run | | | | |")
            continue
        cells = []
        for level in RECALL_LEVELS:
            b = best_at(res, level)
            cells.append(f"{b['p50_ms']:.3f} ({b['ef']})" if b else f"not reached (best {max(r['recall'] for r in res['runs']):.4f})")
        out.append(f"| {LABEL[e]} | {cells[0]} | {cells[1]} | {res['build_vectors_per_s']:,.0f} | "
                   f"{graph_overhead(res, raw) / ds.n:,.0f} | {res['disk_bytes'] / ds.n:,.0f} |")
    mem = results.get("memento", {})
    if mem.get("filters"):
        out += ["", "### Memento: filtered search (automatic plan) and churn", "",
                "| filter selectivity | queries | short of k | recall@10 (against the exact filtered answer) | p50 ms |",
                "|---|---|---|---|---|"]
        out += [f"| {f['selectivity_pct']}% | {f['queries']} | {f['short_queries']} | {f['recall']:.4f} | {f['p50_ms']:.3f} |"
                for f in mem["filters"]]
    if mem.get("churn"):
        c = mem["churn"]
        out += ["", f"Churn: {c['replaced']:,} records (50%) replaced and the graph caught up in {c['seconds']:.1f} s; recall@10 at "
                f"ef {c['ef']} against the engine's exact answers: {c['recall_fresh']:.4f} fresh, {c['recall_after']:.4f} after."]
    return out


def verdict(ok):
    return "PASS" if ok else "FAIL"


def targets(sets: dict, results: dict) -> list[str]:
    out = ["## Targets", ""]
    for name in sets:
        res = results[name]
        mem = res.get("memento")
        if mem is None or "error" in mem:
            why = "not selected (--engines)" if mem is None else mem["error"]
            out.append(f"- FAIL: {name}: Memento did not run: {why}")
            continue
        for level in RECALL_LEVELS:
            m = best_at(mem, level)
            for peer in ["faiss", "hnswlib", "usearch"]:
                p = res.get(peer)
                kind = "target" if level == 0.95 and peer != "usearch" else "info"
                if p is None or "error" in p:
                    if kind == "target":
                        out.append(f"- FAIL: {name}: {LABEL[peer]} did not run, nothing to compare with at recall ≥ {level}")
                    continue
                pb = best_at(p, level)
                if m is None:
                    line = (f"{name}: Memento does not reach recall@10 ≥ {level} (best "
                            f"{max(r['recall'] for r in mem['runs']):.4f} at ef ≤ {max(r['ef'] for r in mem['runs'])})")
                    ok = False
                elif pb is None:
                    line = (f"{name}: Memento p50 {m['p50_ms']:.3f} ms (ef {m['ef']}, recall {m['recall']:.4f}) at recall ≥ {level}; "
                            f"{LABEL[peer]} does not reach it (best {max(r['recall'] for r in p['runs']):.4f})")
                    ok = True
                else:
                    line = (f"{name}: p50 at recall@10 ≥ {level}, one thread: Memento {m['p50_ms']:.3f} ms (ef {m['ef']}, "
                            f"recall {m['recall']:.4f}) vs {LABEL[peer]} {pb['p50_ms']:.3f} ms (ef {pb['ef']}, recall "
                            f"{pb['recall']:.4f}): {LABEL[peer]}/Memento = {pb['p50_ms'] / m['p50_ms']:.2f}×; target ≥ 1.00×")
                    ok = m["p50_ms"] <= pb["p50_ms"]
                label = verdict(ok) if kind == "target" else f"info ({verdict(ok).lower()})"
                out.append(f"- {label}: {line}")
        h = res.get("hnswlib")
        if h is None or "error" in h:
            out.append(f"- FAIL: {name}: hnswlib did not run, no build throughput to compare with")
        else:
            ratio = mem["build_vectors_per_s"] / h["build_vectors_per_s"]
            out.append(f"- {verdict(ratio >= BUILD_TARGET)}: {name}: build throughput on every core: Memento "
                       f"{mem['build_vectors_per_s']:,.0f} vs hnswlib {h['build_vectors_per_s']:,.0f} vectors/s = {ratio:.2f}×; "
                       f"target ≥ {BUILD_TARGET:.0f}×")
        c = mem.get("churn")
        if c:
            drop = c["recall_fresh"] - c["recall_after"]
            out.append(f"- {verdict(drop <= 0.01)}: {name}: recall@10 after 50% churn {c['recall_after']:.4f} against "
                       f"{c['recall_fresh']:.4f} fresh (ef {c['ef']}); target: within 0.01")
        for f in mem.get("filters") or []:
            out.append(f"- {verdict(f['short_queries'] == 0)}: {name}: filter at {f['selectivity_pct']}%: {f['short_queries']} of "
                       f"{f['queries']} queries short of k (recall {f['recall']:.4f}, p50 {f['p50_ms']:.3f} ms); target: k every time")
        first = mem.get("open_first_answer_ms")
        if sets[name].n >= 1_000_000:
            out.append(f"- {verdict(first is not None and first < OPEN_TARGET_MS)}: {name}: open → first answer "
                       f"{fmt(first, '.1f')} ms; target < {OPEN_TARGET_MS:.0f} ms at 1M")
        else:
            out.append(f"- info: {name}: open → first answer {fmt(first, '.1f')} ms (the < {OPEN_TARGET_MS:.0f} ms target is "
                       "for 1M rows)")
    if not any(ds.n >= 1_000_000 for ds in sets.values()):
        out.append(f"- FAIL: open → first answer < {OPEN_TARGET_MS:.0f} ms at 1M: no 1M set was run (make bench-ann runs synth-1m)")
    return out


def plot(ds: DataSet, results: dict, path: Path, info: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    style = {"memento": ("C3", "o"), "faiss": ("C0", "s"), "hnswlib": ("C2", "^"), "usearch": ("C1", "D")}
    lo = 1.0
    for e, res in results.items():
        runs = res.get("runs")
        if not runs:
            continue
        color, marker = style[e]
        front = pareto(runs)
        ax.plot([r["recall"] for r in front], [r["qps"] for r in front], color=color, marker=marker, label=LABEL[e])
        others = [r for r in runs if r not in front]
        if others:
            ax.scatter([r["recall"] for r in others], [r["qps"] for r in others], color=color, marker=marker, alpha=0.3)
        lo = min(lo, min(r["recall"] for r in runs))
    ax.set_yscale("log")
    ax.set_xlim(max(0.0, lo - 0.02), 1.002)
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries/s, one thread (log scale)")
    ax.set_title(f"{ds.name}: {ds.n:,} × {DIM}, k = {K}, M = {M}, efConstruction = {EF_CONSTRUCTION}", fontsize=10)
    fig.text(0.01, 0.01, f"{info['cpu']}, {info['date']}, commit {info['commit']}", fontsize=7, color="0.4")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def versions():
    import hnswlib  # noqa: F401
    import matplotlib
    import usearch
    from importlib.metadata import version

    return dict(numpy=np.__version__, faiss=compare.faiss_version(), hnswlib=version("hnswlib"),
                usearch=usearch.__version__, matplotlib=matplotlib.__version__)


def run_set(ds: DataSet, engines: list[str], args) -> dict:
    """Build every engine's index, then run the sweeps in interleaved rounds (the module
    documentation, step 2), then each engine's finishing step; results per engine."""
    results, sweeps, finishers = {}, {}, {}
    for e in engines:
        log(f"  {LABEL[e]}: building on {args.build_threads} threads")
        release_memory()
        res, run_sweep, finish = BENCH[e](ds, args, ds.dir)
        res["engine"] = e
        if "error" not in res:
            res.setdefault("build_vectors_per_s", ds.n / res["build_seconds"])
            log(f"  {LABEL[e]}: build {res['build_seconds']:.1f} s ({res['build_vectors_per_s']:,.0f} vectors/s)")
            sweeps[e], finishers[e] = run_sweep, finish
        results[e] = res
    rounds = {e: [] for e in sweeps}
    for rnd in range(args.rounds):
        live = [e for e in sweeps if "error" not in results[e]]
        for e in live[rnd % max(len(live), 1):] + live[: rnd % max(len(live), 1)]:
            log(f"  round {rnd + 1}/{args.rounds}: {LABEL[e]}, ef {args.efs[0]}..{args.efs[-1]} on one thread")
            try:
                rounds[e].append(sweeps[e]())
            except RuntimeError as err:
                results[e] = dict(error=str(err), engine=e)
    for e, res in results.items():
        if "error" in res:
            log(f"  {LABEL[e]}: SKIPPED: {res['error']}")
            continue
        res["runs"] = median_runs(rounds[e])
        for r in res["runs"]:
            r["recall"] = recall(ds, r["ids"])
        if finishers.get(e):
            try:
                finishers[e](res)
            except RuntimeError as err:
                res["finish_error"] = str(err)
                log(f"  {LABEL[e]}: {err}")
        if res.get("exact"):
            res["exact"]["recall"] = recall(ds, res["exact"]["ids"])
        log(f"  {LABEL[e]}: " + ", ".join(f"ef {r['ef']}: {r['recall']:.3f} / {r['p50_ms']:.3f} ms" for r in res["runs"]))
    sweeps.clear()  # the peers' indexes go with their sweeps
    release_memory()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="realtext and synth-100k instead of synth-1m")
    ap.add_argument("--sets", default=None, help="comma-separated: realtext, synth-1m, synth-100k, synth-<N>[k|m]")
    ap.add_argument("--synth-n", type=int, default=None, help="size of the synthetic set (replaces synth-1m / synth-100k)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of %(default)s")
    ap.add_argument("--efs", default=",".join(map(str, EFS)), help="ef sweep (default %(default)s)")
    ap.add_argument("--warmup", type=int, default=100, help="untimed queries before each ef (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved sweep rounds, medians reported (default %(default)s)")
    ap.add_argument("--build-threads", type=int, default=os.cpu_count() or 1, help="build threads (default: every core, %(default)s)")
    ap.add_argument("--bin", type=Path, default=compare.default_bin(), help="memento-search-bench binary (default: %(default)s)")
    ap.add_argument("--data-dir", type=Path, default=REPO / "target" / "bench-data", help="cache of data sets (default: %(default)s)")
    ap.add_argument("--plots-dir", type=Path, default=Path(__file__).resolve().parent / "plots", help="PNG plots (default: %(default)s)")
    ap.add_argument("--keep-store", action="store_true", help="keep Memento's store after the run")
    ap.add_argument("--data-only", action="store_true", help="make (or check) the data sets, print the sanity figures, stop")
    args = ap.parse_args()
    args.efs = sorted({int(x) for x in args.efs.split(",")})
    engines = [e for e in args.engines.split(",") if e]
    for e in engines:
        if e not in ENGINES:
            raise SystemExit(f"ann: unknown engine {e!r} (one of {', '.join(ENGINES)})")
    names = args.sets.split(",") if args.sets else ["realtext", "synth-100k" if args.quick else "synth-1m"]
    if args.synth_n:
        names = [set_label(args.synth_n) if parse_synth(n) else n for n in names]
    for n in names:
        if n != "realtext" and not parse_synth(n):
            raise SystemExit(f"ann: unknown data set {n!r}")

    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    info = compare.machine_info()
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    vers = versions()
    header = (f"{info['date']}, commit `{info['commit']}`{' (uncommitted changes)' if info['dirty'] else ''}; {info['cpu']}, "
              f"{info['cores']} cores, {info['mem']}, Linux {info['kernel']}, Python {info['python']}; load average at start "
              f"{' '.join(info['loadavg'])}.")
    log(f"ann: {header}\nann: {vers}")

    realtext_dir, realtext_note = ensure_realtext(data_dir)
    sets, synth_info = {}, {}
    for name in names:
        if name == "realtext":
            directory, note = realtext_dir, realtext_note
        else:
            directory, note, synth_info[name] = ensure_synth(data_dir, parse_synth(name), realtext_dir, args.build_threads)
        sets[name] = DataSet(name, directory, note, args.build_threads)
        log(f"{name}: {sets[name].n:,} × {DIM}, {sets[name].nq} queries, ground truth ready")

    real = sets.get("realtext") or DataSet("realtext", realtext_dir, realtext_note, args.build_threads)
    figures = sanity(dict({"realtext": real}, **sets), args.build_threads)
    for f in figures:
        log(f"sanity: {f['set']} ({f['rows']:,} rows): 10th-neighbour / median distance {f['d10_over_median']:.3f}"
            + (f", intrinsic dimension {f['lid']:.1f}" if f["lid"] is not None else ""))

    if args.data_only:
        return
    results = {}
    for name, ds in sets.items():
        log(f"== {name}")
        results[name] = run_set(ds, engines, args)

    report = ["# Approximate k-NN (HNSW graphs): Memento vs FAISS IndexHNSWFlat vs hnswlib vs usearch", "", header + (
        f" Load average at end {' '.join(open('/proc/loadavg').read().split()[:3])}." if os.path.exists("/proc/loadavg") else ""),
        f"numpy {vers['numpy']}, faiss-cpu {vers['faiss']}, hnswlib {vers['hnswlib']} (built from source with -march=native), "
        f"usearch {vers['usearch']}"
        + "".join(f" ({a} kernels)" for a in sorted({r["usearch"]["hardware_acceleration"] for r in results.values()
                                                      if "hardware_acceleration" in r.get("usearch", {})}))
        + f", OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'auto')}. Builds on {args.build_threads} threads; "
        f"searches on one; {args.warmup} warm-up queries per ef; every engine's sweep run in {args.rounds} interleaved "
        "rounds after the builds, each figure the median over the rounds.", "",
        "## Data sets: is the neighbour structure like real embeddings'?", "",
        "| set | base rows used | 10th-neighbour / median distance | intrinsic dimension (MLE, k = 10) |", "|---|---|---|---|"]
    for f in figures:
        report.append(f"| {f['set']} | {f['rows']:,} | {f['d10_over_median']:.3f} | {fmt(f['lid'], '.1f', 'n/a')} |")
    report += ["", "Median over the queries. 1.0 would be noise in high dimension: the 10th neighbour as far as a typical row. "
               "The full-size rows use the exact ground truth for the 10th neighbour and 23,326 drawn rows for the median.", ""]
    for name, ds in sets.items():
        report += set_tables(ds, results[name], args.build_threads)
        png = args.plots_dir / f"ann-{name}.png"
        plot(ds, results[name], png, info)
        try:
            shown = png.relative_to(REPO)
        except ValueError:
            shown = png
        report += ["", f"Plot: `{shown}`.", ""]
    report += targets(sets, results)
    report += ["", f"Total run time {time.perf_counter() - started:.0f} s."]
    text = "\n".join(report)
    print(text)
    (data_dir / "ann-report.md").write_text(text + "\n")
    dump = dict(machine=info, versions=vers, args=dict(efs=args.efs, warmup=args.warmup, rounds=args.rounds, build_threads=args.build_threads,
                                                         m=M, ef_construction=EF_CONSTRUCTION, k=K),
                sanity=figures, synth=synth_info,
                sets={name: dict(n=ds.n, nq=ds.nq, note=ds.note,
                                 engines={e: {k: ([{kk: vv for kk, vv in r.items() if kk != "ids"} for r in v] if k == "runs" else
                                                  ({kk: vv for kk, vv in v.items() if kk != "ids"} if k == "exact" else v))
                                              for k, v in res.items()} for e, res in results[name].items()})
                      for name, ds in sets.items()})
    (data_dir / "ann-results.json").write_text(json.dumps(dump, indent=1) + "\n")
    log(f"ann: report written to {data_dir / 'ann-report.md'} and ann-results.json; plots in {args.plots_dir}")


if __name__ == "__main__":
    main()
