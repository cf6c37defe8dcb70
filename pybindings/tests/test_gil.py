"""The native module releases the GIL around searches and embeddings: while one thread runs a
long search (a 200,000 x 384 store, a batch of queries) or embeds a big batch of texts, another
Python thread keeps counting.

How it is measured: a counter thread increments a Python integer in a loop (it needs the GIL
for every step). Its rate alone is the baseline; its rate while the main thread is inside the
long call is compared with it. A call that holds the GIL stops the counter completely (rate
~0: a C function holding the GIL is never preempted); a call that releases it leaves the
counter its share of the CPU (the search and ONNX Runtime use every core, so the counter gets
less than its baseline, but far more than nothing). The threshold is 15% of the baseline; the
control (a C loop holding the GIL for ~1.5 s) must stay under 5% (it measures 1-3%: what the
counter gets while the GIL changes hands at the call's start and end).

The pure-Python engine is measured the same way, and what holds for it is asserted too. Its
search is a numpy matrix product (BLAS releases the GIL) followed by numpy and Python code that
holds it (the top-k selection, building the results); its embedder is Python onnxruntime
(``InferenceSession.run`` releases the GIL) after ``tokenizers`` (which releases it in its
batch encoding). Measured on the 2-core development box: the other thread ran at 55-70% of its
baseline during the Rust engine's big search and 35% during its embedding batch; at 55% and
30-40% during the Python engine's. So the pure engine does let other threads run for most of
a long call, and the same threshold is asserted for it; what it does with the GIL held
(argpartition over 200k distances, Python loops over the hits) is short next to the matrix
product and the inference.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from conftest import engine_class

MIN_SHARE = 0.15
CONTROL_MAX_SHARE = 0.05
N_BIG, DIM_BIG = 200_000, 384


class Counter:
    def __init__(self):
        self.n = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.n += 1

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def rate(self, seconds: float) -> float:
        c0, t0 = self.n, time.perf_counter()
        time.sleep(seconds)
        return (self.n - c0) / (time.perf_counter() - t0)


def progress_during(call, min_seconds: float):
    """(result, seconds the call took, counter rate during the call / baseline rate)."""
    with Counter() as c:
        time.sleep(0.05)
        base = c.rate(0.3)
        c0, t0 = c.n, time.perf_counter()
        result = call()
        t1, c1 = time.perf_counter(), c.n
    secs = t1 - t0
    assert secs >= min_seconds, f"the call took only {secs:.3f} s: too short to tell"
    return result, secs, ((c1 - c0) / secs) / base


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    """A 200k x 384 store per engine kind, built once for the module."""
    made = {}

    def get(kind):
        if kind not in made:
            path = tmp_path_factory.mktemp(f"gil-{kind}") / "big"
            rng = np.random.default_rng(7)
            e = engine_class(kind)(str(path), dimension=DIM_BIG, metric="cosine", model=None, durability="buffered")
            for s in range(0, N_BIG, 50_000):
                block = rng.standard_normal((50_000, DIM_BIG), dtype=np.float32)
                e.add([f"v{i}" for i in range(s, s + 50_000)], block)
            made[kind] = (e, rng)
        return made[kind]

    yield get
    for e, _ in made.values():
        e.close()


def calibrated_batch(e, rng, target_s: float):
    """A batch of queries whose search takes about ``target_s`` seconds."""
    n = 4
    while True:
        qs = rng.standard_normal((n, DIM_BIG), dtype=np.float32)
        t = time.perf_counter()
        e.search(qs, k=10)
        dt = time.perf_counter() - t
        if dt >= target_s / 4 or n >= 4096:
            return rng.standard_normal((max(1, int(n * target_s / max(dt, 1e-3))), DIM_BIG), dtype=np.float32)
        n *= 4


def _search_share(big_store, kind):
    e, rng = big_store(kind)
    assert e.count() == N_BIG
    qs = calibrated_batch(e, rng, 1.0)
    res, secs, share = progress_during(lambda: e.search(qs, k=10), 0.3)
    assert len(res) == len(qs) and all(len(r) == 10 for r in res)
    print(f"\n{kind} engine: search of {len(qs)} queries over {N_BIG:,} x {DIM_BIG}: {secs:.2f} s, the other thread ran at {share:.0%} of its baseline")
    return share


def test_the_measure_detects_a_held_gil():
    """The control: a C loop that holds the GIL (sum over a range) stops the counter."""
    n = 10**6
    t = time.perf_counter()
    sum(range(n))
    n = int(n * 1.5 / max(time.perf_counter() - t, 1e-4))
    _, secs, share = progress_during(lambda: sum(range(n)), 0.5)
    print(f"\ncontrol: sum(range({n:,})) {secs:.2f} s, the other thread ran at {share:.1%} of its baseline")
    assert share < CONTROL_MAX_SHARE


def test_rust_search_releases_the_gil(big_store):
    assert _search_share(big_store, "rust") >= MIN_SHARE


def test_python_search_lets_threads_run(big_store):
    assert _search_share(big_store, "python") >= MIN_SHARE


WORDS = (
    "the store keeps every vector in pages of a memory mapped file and a write ahead log makes each "
    "commit durable before it returns so that a crash at any moment loses nothing acknowledged while "
    "search scans the pages with simd kernels on every core and filters run on the sqlite mirror"
).split()


def long_texts(n: int, words: int = 100, seed: int = 3) -> list[str]:
    r = np.random.default_rng(seed)
    return [" ".join(r.choice(WORDS, size=words)) + f" ({i})" for i in range(n)]


def _embed_share(kind, tmp_path):
    e = engine_class(kind)(str(tmp_path / f"text-{kind}"), model="default")
    try:
        e.add(["warm"], texts=["warm up the model"])
        t = time.perf_counter()
        e.add(["probe"], texts=long_texts(8, seed=1)[:1])
        one = time.perf_counter() - t
        n = int(min(2000, max(8, 1.0 / max(one, 1e-3))))
        texts = long_texts(n)
        _, secs, share = progress_during(lambda: e.add([f"t{i}" for i in range(n)], texts=texts), 0.3)
        assert e.count() == n + 2
        print(f"\n{kind} engine: embedding {n} texts of 100 words: {secs:.2f} s, the other thread ran at {share:.0%} of its baseline")
        return share
    finally:
        e.close()


def test_rust_embedding_releases_the_gil(tmp_path, default_model):
    assert _embed_share("rust", tmp_path) >= MIN_SHARE


def test_python_embedding_lets_threads_run(tmp_path, default_model):
    assert _embed_share("python", tmp_path) >= MIN_SHARE
