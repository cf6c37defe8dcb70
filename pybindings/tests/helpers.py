"""Helpers shared by the tests: a reference filter evaluator, reference distances, and the
"typed exception, never a panic" check."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest


# ------------------------------------------------------------------------------------------
# Exceptions


def _is_panic(e: BaseException) -> bool:
    return type(e).__name__ == "PanicException" or "PanicException" in repr(type(e).__mro__)


@contextlib.contextmanager
def raises_memento(expected, match: str | None = None):
    """Like ``pytest.raises(expected)``, and also: the exception is a MementoError, it is not
    a Rust panic (pyo3's PanicException derives from BaseException, so it would escape a
    plain ``except Exception``), and its message is not empty."""
    import memento

    with pytest.raises(BaseException) as info:
        yield info
    e = info.value
    assert not _is_panic(e), f"a Rust panic reached Python: {e!r}"
    assert "PanicException" not in str(e), f"a Rust panic reached Python: {e!r}"
    assert isinstance(e, memento.MementoError), f"expected a MementoError subclass ({expected}), got {type(e).__mro__}: {e}"
    exp = expected if isinstance(expected, tuple) else (expected,)
    assert isinstance(e, exp), f"expected {[x.__name__ for x in exp]}, got {type(e).__name__}: {e}"
    assert str(e).strip(), f"{type(e).__name__} without a message"
    if match is not None:
        import re

        assert re.search(match, str(e), re.I), f"{str(e)!r} does not match {match!r}"


# ------------------------------------------------------------------------------------------
# Distances as the engines define them: 1 - cos (cosine), -dot (dot), squared L2 (l2).


def normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def ref_distances(metric: str, stored: np.ndarray, q: np.ndarray) -> np.ndarray:
    stored = np.asarray(stored, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if metric == "cosine":
        return 1.0 - normalise(stored) @ normalise(q)
    if metric == "dot":
        return -(stored @ q)
    if metric == "l2":
        d = stored - q
        return np.einsum("ij,ij->i", d, d)
    raise ValueError(metric)


def ref_score(metric: str, distance: float) -> float:
    return 1.0 - distance if metric == "cosine" else -distance


def ref_topk(metric: str, ids: list[str], stored: np.ndarray, q: np.ndarray, k: int) -> list[tuple[str, float]]:
    """Top k by distance; ties by position in ``ids`` (insertion order)."""
    if not ids:
        return []
    d = ref_distances(metric, stored, q)
    order = sorted(range(len(ids)), key=lambda i: (d[i], i))[:k]
    return [(ids[i], float(d[i])) for i in order]


def assert_same_hits(got, expected: list[tuple[str, float]], tol: float = 1e-4, k: int | None = None):
    """``got`` (SearchResults) against a reference list, tolerant to near-ties: distances
    equal within ``tol`` position by position, and ids equal wherever the reference's
    distance is not within ``2 tol`` of another candidate's. ``expected`` may run past ``k``
    (the number of results expected, default all of it), so that a near-tie across the k-th
    place is seen as one."""
    k = len(expected) if k is None else min(k, len(expected))
    gd = [r.distance for r in got]
    assert len(got) == k, f"{len(got)} results, expected {k}"
    for i, (r, (eid, ed)) in enumerate(zip(got, expected)):
        assert abs(r.distance - ed) <= tol, f"rank {i}: distance {r.distance} (id {r.id}), expected {ed} (id {eid}); got {gd}"
    for i, (eid, ed) in enumerate(expected[:k]):
        near = [j for j, (_, d) in enumerate(expected) if j != i and abs(d - ed) <= 2 * tol]
        if not near:
            assert got[i].id == eid, f"rank {i}: id {got[i].id}, expected {eid}"
    assert len({r.id for r in got}) == len(got), "an id is returned twice"


# ------------------------------------------------------------------------------------------
# Chroma's filter language, as memento::Filter defines it (engine/src/filter.rs): the
# reference the engines are held to.


def _typ(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    if isinstance(v, str):
        return "str"
    return None


def _cmp(op: str, have, want) -> bool:
    if _typ(have) is None or _typ(have) != _typ(want):
        return False
    if _typ(have) == "str":
        have, want = have.encode(), want.encode()
    if op == "$eq":
        return have == want
    if _typ(have) == "bool":
        return False
    return {"$gt": have > want, "$gte": have >= want, "$lt": have < want, "$lte": have <= want}[op]


def matches(where: dict, text: str | None, metadata: dict | None) -> bool:
    md = metadata or {}
    for key, cond in where.items():
        if key == "$and":
            if not all(matches(w, text, metadata) for w in cond):
                return False
        elif key == "$or":
            if not any(matches(w, text, metadata) for w in cond):
                return False
        elif key == "$contains":
            if not (text is not None and cond in text):
                return False
        elif key == "$not_contains":
            if text is not None and cond in text:
                return False
        else:
            conds = cond if isinstance(cond, dict) else {"$eq": cond}
            present = key in md
            v = md.get(key)
            for op, want in conds.items():
                if op == "$in":
                    ok = present and any(_cmp("$eq", v, w) for w in want)
                elif op == "$nin":
                    ok = not (present and any(_cmp("$eq", v, w) for w in want))
                elif op == "$ne":
                    ok = not (present and _cmp("$eq", v, want))
                else:
                    ok = present and _cmp(op, v, want)
                if not ok:
                    return False
    return True


def finite(x: float) -> bool:
    return math.isfinite(x)
