"""What small writes cost on disk, and what dead records cost a search (issue 16's three
workloads), each beside a fresh store holding the same live records:

1. 100 ``memento add`` calls of one 4-d vector (the command line, one process each);
2. 200 Python cycles of open / add one 384-d vector / close;
3. 1,000 ids upserted 200 times (Python, batches of 1,000), then the search time of the store
   against a fresh store of the same 1,000 records (median of 2,000 queries, k = 10).

Usage: ``.venv/bin/python benches/compare/small_writes.py [--memento PATH]`` (``make
bench-small-writes``). Prints one line per workload: bytes on disk, the fresh store's, the
ratio; and the search times and their ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import memento


def size(d: Path) -> int:
    return sum(f.stat().st_size for f in d.iterdir() if f.is_file())


def cli_adds(exe: str, root: Path) -> tuple[int, int]:
    many, fresh = root / "cli-many", root / "cli-fresh"
    subprocess.run([exe, "--store", str(many), "init", "--dimension", "4"], check=True, capture_output=True)
    for i in range(100):
        subprocess.run([exe, "--store", str(many), "add", "--id", f"r{i}", "--vector", f"[{i + 1}, 1, 0, 0]"], check=True, capture_output=True)
    subprocess.run([exe, "--store", str(fresh), "init", "--dimension", "4"], check=True, capture_output=True)
    lines = "".join(f'{{"id": "r{i}", "vector": [{i + 1}, 1, 0, 0]}}\n' for i in range(100))
    (root / "in.jsonl").write_text(lines)
    subprocess.run([exe, "--store", str(fresh), "add", "--file", str(root / "in.jsonl")], check=True, capture_output=True)
    return size(many), size(fresh)


def python_cycles(root: Path, rng: np.random.Generator) -> tuple[int, int]:
    many, fresh = root / "py-many", root / "py-fresh"
    vecs = rng.standard_normal((200, 384)).astype(np.float32)
    for i in range(200):
        with memento.Engine(many, dimension=384, model=None) as db:
            db.add(f"r{i}", vecs[i])
    with memento.Engine(fresh, dimension=384, model=None) as db:
        db.add([f"r{i}" for i in range(200)], vecs)
    return size(many), size(fresh)


def search_ms(path: Path, queries: np.ndarray) -> float:
    with memento.Engine(path, read_only=False) as db:
        db.search(queries[0], k=10)
        times = []
        for q in queries:
            t = time.perf_counter()
            db.search(q, k=10)
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def upserts(root: Path, rng: np.random.Generator) -> tuple[int, int, float, float]:
    many, fresh = root / "up-many", root / "up-fresh"
    ids = [f"id{i}" for i in range(1000)]
    last = None
    with memento.Engine(many, dimension=384, model=None) as db:
        for _ in range(200):
            last = rng.standard_normal((1000, 384)).astype(np.float32)
            db.upsert(ids, last)
    with memento.Engine(fresh, dimension=384, model=None) as db:
        db.upsert(ids, last)
    queries = rng.standard_normal((2000, 384)).astype(np.float32)
    return size(many), size(fresh), search_ms(many, queries), search_ms(fresh, queries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--memento", default=shutil.which("memento") or str(Path.home() / ".cargo/bin/memento"))
    a = ap.parse_args()
    rng = np.random.default_rng(16)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        m, f = cli_adds(a.memento, root)
        print(f"100 memento add calls (4-d): {m:,} bytes; a fresh store of the same records {f:,}; ratio {m / f:.2f}")
        m, f = python_cycles(root, rng)
        print(f"200 Python open/add/close cycles (384-d): {m:,} bytes; fresh {f:,}; ratio {m / f:.2f}")
        m, f, sm, sf = upserts(root, rng)
        print(f"1,000 ids upserted 200 times (384-d): {m:,} bytes; fresh {f:,}; ratio {m / f:.2f}; search p50 {sm:.3f} ms against {sf:.3f} ms fresh, ratio {sm / sf:.2f}")
    print(f"(memento {memento.__version__}, engine {memento.backend()}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
