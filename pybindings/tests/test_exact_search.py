"""``exact=True`` and the default search agree, on both engines, on issue 13's case: 5,000
vectors of dimension 16, N(0, 1) with column 0 set to 1000, where the Rust engine's int8 scan used
to miss most true neighbours (recall@10 0.08 under l2). Both also match a float64 numpy brute
force, up to float32 near-ties."""

from __future__ import annotations

import numpy as np
import pytest


def _brute(data: np.ndarray, q: np.ndarray, metric: str, k: int) -> list[int]:
    x, y = data.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        y = y / np.linalg.norm(y)
        d = 1.0 - x @ y
    elif metric == "dot":
        d = -(x @ y)
    else:
        d = ((x - y) ** 2).sum(axis=1)
    return [int(i) for i in np.argsort(d, kind="stable")[:k]]


@pytest.mark.parametrize("metric", ["l2", "dot", "cosine"])
def test_default_search_equals_exact_on_a_dominant_coordinate(open_engine, metric):
    rng = np.random.default_rng(13)
    data = rng.standard_normal((5000, 16)).astype(np.float32)
    data[:, 0] = 1000.0
    queries = rng.standard_normal((10, 16)).astype(np.float32)
    queries[:, 0] = 1000.0
    e = open_engine(dimension=16, metric=metric)
    e.add([f"r{i}" for i in range(5000)], data)
    default = e.search(queries, k=10)
    exact = e.search(queries, k=10, exact=True)
    assert [[h.id for h in row] for row in default] == [[h.id for h in row] for row in exact]
    arrays = e.search_arrays(queries, k=10, exact=True)
    assert [list(r) for r in arrays.ids] == [[h.id for h in row] for row in exact]
    found = 0
    for q, row in zip(queries, default):
        want = {f"r{i}" for i in _brute(data, q, metric, 10)}
        found += len(want & {h.id for h in row})
    # The property is default == exact (above). Against a float64 brute force, float32 itself
    # swaps near-ties: under cosine every vector here is within ~1e-6 of the same direction, so
    # the float32 scan (either engine) finds 94 of 100 (the quantized scan before the fix: 5).
    floor = 0.9 if metric == "cosine" else 0.95
    assert found / 100 >= floor, found
