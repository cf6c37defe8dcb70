"""What the Python package adds to one search: the same store and the same queries timed
through Python (``RustEngine.search`` and ``search_arrays``, one query at a time, k=10) and
through the Rust library (``memento::Engine::search_with``, by the tiny program
``pybindings/bench/search_timer``), the difference of the medians being the per-query overhead
of the Python layer (argument checks, the array borrow, the GIL release, the results made into
objects or arrays).

The store: ``--n`` vectors of dimension ``--dim`` (200,000 × 384 by default), drawn around
1,000 random centres (so that the graph index reaches its recall and the default plan walks
it), written through Python in batches of 10,000 with ``durability="buffered"``, then
``build_index()``. The queries: ``--queries`` new vectors from the same distribution. Both
sides open the store read-only (a reader, as ``memento.Engine(path, read_only=True)``) and
search with the default plan (``--modes auto``; add ``exact`` for the float32 scan) on one
thread; each side makes one untimed pass over the queries, then ``--reps`` timed passes.
The rounds alternate Rust and Python (``--rounds``), and the medians over rounds are printed.

The Rust side is built once per checkout, in release, into target/search-timer (its own
cargo project with the repository's Cargo.lock, as tests/test_interop.py builds its writer).
The store is kept in ``--dir`` (default target/bench-data/search-overhead) and reused when it
is already there with the same size.

Usage::

    .venv/bin/python pybindings/bench/search_overhead.py [--n 200000] [--dim 384] [--queries 200]
        [--reps 5] [--rounds 2] [--modes auto,exact] [--ef N] [--k 10] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import memento

REPO = Path(__file__).resolve().parents[2]
TIMER = Path(__file__).resolve().parent / "search_timer"
TARGET = REPO / "target" / "search-timer"
#: Results per query (--k).
K = 10


def build_timer() -> Path:
    """The Rust timer, built in release with the workspace's Cargo.lock (a no-op once built)."""
    cargo = shutil.which("cargo") or os.path.expanduser("~/.cargo/bin/cargo")
    project = TARGET / "project"
    (project / "src").mkdir(parents=True, exist_ok=True)
    manifest = (TIMER / "Cargo.toml").read_text().replace('path = "../../../engine"', f'path = "{(REPO / "engine").as_posix()}"')
    for path, text in (
        (project / "Cargo.toml", manifest),
        (project / "src" / "main.rs", (TIMER / "src" / "main.rs").read_text()),
        (project / "Cargo.lock", (REPO / "Cargo.lock").read_text()),
    ):
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    print("building the Rust timer (release) ...", file=sys.stderr)
    r = subprocess.run([cargo, "build", "--release", "--offline", "--quiet", "--manifest-path", str(project / "Cargo.toml")], env=env)
    if r.returncode != 0:
        sys.exit("building the Rust timer failed")
    return TARGET / "release" / "memento-search-timer"


def clustered(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    dim = centres.shape[1]
    x = centres[rng.integers(0, len(centres), n)] + (0.5 / np.sqrt(dim)) * rng.standard_normal((n, dim), dtype=np.float32)
    return x.astype(np.float32)


def make_store(path: Path, n: int, dim: int, seed: int) -> np.ndarray:
    """The store (reused when it holds ``n`` vectors of ``dim``); returns the queries' centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    stamp = path / "search-overhead.json"
    want = {"n": n, "dim": dim, "seed": seed}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return centres
    shutil.rmtree(path, ignore_errors=True)
    t = time.perf_counter()
    with memento.RustEngine(path, dimension=dim, model=None, durability="buffered") as db:
        for start in range(0, n, 10_000):
            m = min(10_000, n - start)
            db.add([str(i) for i in range(start, start + m)], clustered(rng, centres, m))
        wrote = time.perf_counter() - t
        t = time.perf_counter()
        db.build_index()
        built = time.perf_counter() - t
        info = db.graph_info()
    print(f"store: {n:,} × {dim} written in {wrote:.1f} s, graph built in {built:.1f} s: {info}", file=sys.stderr)
    stamp.write_text(json.dumps(want))
    return centres


def time_python(db: memento.Engine, queries: np.ndarray, method: str, mode: str, ef: int | None, reps: int) -> tuple[float, list[str]]:
    """p50 in µs of one query at a time through ``method``, and the first query's ids."""
    call = getattr(db, method)
    kw = {"k": K, "exact": mode == "exact", "threads": 1, "ef": ef}
    rows = list(queries)  # 1-D float32 rows, as an application holds them
    first = call(rows[0], **kw)
    for q in rows[1:]:
        call(q, **kw)
    lat = []
    for _ in range(reps):
        for q in rows:
            t = time.perf_counter_ns()
            call(q, **kw)
            lat.append(time.perf_counter_ns() - t)
    ids = first.ids[0] if method == "search_arrays" else [h.id for h in first]
    return statistics.median(lat) / 1000.0, ids


def time_rust(exe: Path, store: Path, qfile: Path, mode: str, ef: int | None, reps: int) -> tuple[float, list[str]]:
    out = subprocess.run([str(exe), str(store), str(qfile), str(K), mode, "-" if ef is None else str(ef), "1", str(reps)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"the Rust timer failed: {out.stderr}")
    r = json.loads(out.stdout)
    return float(r["p50_us"]), list(r["ids"])


def main() -> None:
    global K
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", default="auto")
    ap.add_argument("--ef", type=int, default=None)
    ap.add_argument("--k", type=int, default=K, help="results per query (10)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--dir", type=Path, default=REPO / "target" / "bench-data" / "search-overhead")
    a = ap.parse_args()
    if a.reps < 1 or a.rounds < 1 or a.queries < 1 or a.k < 1:
        sys.exit("--reps, --rounds, --queries and --k are 1 or more")
    K = a.k
    exe = build_timer()
    a.dir.mkdir(parents=True, exist_ok=True)
    store = a.dir / f"store-{a.n}x{a.dim}"
    centres = make_store(store, a.n, a.dim, a.seed)
    queries = clustered(np.random.default_rng(a.seed + 1), centres, a.queries)
    qfile = a.dir / "queries.f32"
    queries.astype("<f4").tofile(qfile)

    with memento.RustEngine(store, read_only=True) as db:
        info = db.graph_info()
    est = info["estimate"]
    print(
        f"store {a.n:,} × {a.dim}; graph: {info['nodes']:,} nodes, tail {info['tail']}, "
        f"recall@10 {est['recall'] if est else None} at ef {est['ef'] if est else None}; used by the default plan: {info['used_by_auto']}"
    )
    print(f"{a.queries} queries × {a.reps} reps × {a.rounds} rounds, k={K}, one thread, ef={a.ef or 'default'}; p50 per query in µs\n")
    print(f"{'mode':6} {'Rust search_with':>17} {'Python search':>14} {'overhead':>9} {'search_arrays':>14} {'overhead':>9}")
    for mode in a.modes.split(","):
        rust, py, arr = [], [], []
        for _ in range(a.rounds):
            r_us, r_ids = time_rust(exe, store, qfile, mode, a.ef, a.reps)
            rust.append(r_us)
            with memento.RustEngine(store, read_only=True) as db:
                p_us, p_ids = time_python(db, queries, "search", mode, a.ef, a.reps)
                s_us, s_ids = time_python(db, queries, "search_arrays", mode, a.ef, a.reps)
            py.append(p_us)
            arr.append(s_us)
            if not (r_ids == p_ids == s_ids):
                print(f"  note: the first query's answers differ: rust {r_ids}, python {p_ids}, arrays {s_ids}")
        r, p, s = (statistics.median(x) for x in (rust, py, arr))
        print(f"{mode:6} {r:17.1f} {p:14.1f} {p - r:+9.1f} {s:14.1f} {s - r:+9.1f}")
        print(f"       rounds: rust {[round(x, 1) for x in rust]}, search {[round(x, 1) for x in py]}, search_arrays {[round(x, 1) for x in arr]}")


if __name__ == "__main__":
    main()
