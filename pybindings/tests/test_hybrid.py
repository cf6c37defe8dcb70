"""Hybrid recall (issue 18): the vector ranking and the keyword ranking fused, by reciprocal
rank fusion or by weighted normalised scores, on both engines.

The fusion alone on hand-computed examples; ``recall``'s arguments checked before any work;
``recall(mode="hybrid")`` against the fusion recomputed here from the engine's own vector and
keyword rankings (with the default model, which `make setup` provisions); and the same
workload through both engines.
"""

from __future__ import annotations

import inspect
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ENGINE_KINDS, engine_class
from helpers import raises_memento
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import memento
from memento._keyword import HYBRID_CANDIDATES, fuse, fuse_rrf, fuse_weighted

#: Scores are computed in float64 by both engines; the Rust engine hands them over as float32
#: (its hits' score type), so they are compared to float32's precision. The order is decided
#: in float64 before that, so ids are compared exactly.
SCORE_TOL = 1e-6

# ------------------------------------------------------------------------------------------
# The fusion, by hand

VEC = [("a", 0.9), ("b", 0.5), ("c", 0.1)]  # vector side: (id, score), best first
KW = [("c", 4.0), ("d", 2.0)]  # keyword side


def test_rrf_by_hand():
    got = fuse_rrf([i for i, _ in VEC], [i for i, _ in KW], 10, 60.0)
    # a 1/61, b 1/62, c 1/63 + 1/61, d 1/62 (b and d tie: id ascending)
    assert got == [("c", 1 / 63 + 1 / 61), ("a", 1 / 61), ("b", 1 / 62), ("d", 1 / 62)]
    assert fuse("rrf", 60.0, VEC, KW, 2) == got[:2]
    got1 = fuse("rrf", 1.0, VEC, KW, 10)
    assert got1 == [("c", 0.25 + 0.5), ("a", 0.5), ("b", 1 / 3), ("d", 1 / 3)]


def test_weighted_by_hand():
    # vector normalised: a 1, b 0.5, c 0; keyword: c 1, d 0.
    assert fuse_weighted(VEC, KW, 10, 0.5) == [("a", 0.5), ("c", 0.5), ("b", 0.25), ("d", 0.0)]
    assert [i for i, _ in fuse("weighted", 1.0, VEC, KW, 10)] == ["a", "b", "c", "d"]
    assert fuse("weighted", 0.0, VEC, KW, 10) == [("c", 1.0), ("a", 0.0), ("b", 0.0), ("d", 0.0)]
    got = fuse("weighted", 0.25, VEC, KW, 3)
    assert got == [("c", 0.75), ("a", 0.25), ("b", 0.125)]


def test_weighted_equal_scores_normalise_to_one():
    assert fuse_weighted([("x", 0.3), ("y", 0.3)], [("y", 7.0)], 10, 0.5) == [("y", 1.0), ("x", 0.5)]
    assert fuse_weighted([], [("q", 1.0), ("p", 1.0)], 10, 0.5) == [("p", 0.5), ("q", 0.5)]
    assert fuse_weighted([], [], 10, 0.5) == []


# ------------------------------------------------------------------------------------------
# recall's arguments


@pytest.mark.parametrize(
    "kw, what",
    [
        ({"mode": "semantic"}, "mode"),
        ({"mode": None}, "mode"),
        ({"mode": "hybrid", "fusion": "sum"}, "fusion"),
        ({"fusion": None}, "fusion"),
        ({"rrf_k": 0}, "rrf_k"),
        ({"rrf_k": -1.0}, "rrf_k"),
        ({"rrf_k": float("nan")}, "rrf_k"),
        ({"rrf_k": float("inf")}, "rrf_k"),
        ({"rrf_k": "60"}, "rrf_k"),
        ({"rrf_k": True}, "rrf_k"),
        ({"alpha": -0.01}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"alpha": None}, "alpha"),
        ({"mode": "hybrid", "fusion": "weighted", "alpha": 2}, "alpha"),
    ],
)
def test_bad_recall_options_are_refused_before_any_work(open_engine, kw, what):
    db = open_engine(dimension=2)  # no model: the options are refused before NoModelError
    with raises_memento(memento.InvalidArgumentError, match=what):
        db.recall("query", **kw)


def test_good_recall_options_without_a_model(open_engine):
    db = open_engine(dimension=2)
    db.add("a", [1.0, 0.0], texts="red apples")
    for kw in ({"rrf_k": 1}, {"rrf_k": np.float64(0.5)}, {"alpha": 0}, {"alpha": 1}, {"alpha": np.float32(0.3)}, {"fusion": "weighted"}):
        assert [h.id for h in db.recall("apples", mode="keyword", **kw)] == ["a"]
    with raises_memento(memento.NoModelError):
        db.recall("apples", mode="hybrid", fusion="weighted")


def test_the_default_mode_is_one_constant():
    assert memento.DEFAULT_RECALL_MODE == memento.base.DEFAULT_RECALL_MODE == "hybrid"
    for cls in (memento.Engine, memento.base.Engine, memento.RustEngine, memento.PythonEngine):
        params = inspect.signature(cls.recall).parameters
        assert params["mode"].default == memento.DEFAULT_RECALL_MODE
        assert params["fusion"].default == "rrf" and params["rrf_k"].default == 60.0 and params["alpha"].default == 0.5


# ------------------------------------------------------------------------------------------
# Through the engines, with the default model

DOCS = {
    "gen": "generator.close() closes the generator and runs its finally blocks",
    "iter": "iterators yield values one at a time to a for loop",
    "ctx": "a context manager's __exit__ runs when the with block ends",
    "err": "the server answered with error code XJ4471 after the upgrade",
    "cat": "my cat sleeps on the warm windowsill all afternoon",
    "dog": "dogs enjoy long walks in the park",
    "soup": "a recipe for tomato soup with basil",
    "rust": "Rust's borrow checker enforces ownership at compile time",
    "none": "",
}
META = {"gen": {"lang": "py"}, "iter": {"lang": "py"}, "ctx": {"lang": "py"}, "rust": {"lang": "rust"}}
QUERIES = ["closing generators", "error XJ4471", "pets that sleep", "ownership rules", "the", "", "soup basil recipe"]


@pytest.fixture
def text_db(engine_cls, default_model, tmp_path):
    db = engine_cls(str(tmp_path / "text"))
    ids = list(DOCS)
    db.remember([DOCS[i] for i in ids], [META.get(i) for i in ids], ids)
    yield db
    db.close()


def _rrf(vec: list[str], kw: list[str], k: int, rrf_k: float) -> list[tuple[str, float]]:
    fused: dict[str, float] = {}
    for side in (vec, kw):
        for r, i in enumerate(side):
            fused[i] = fused.get(i, 0.0) + 1.0 / (rrf_k + r + 1)
    return sorted(fused.items(), key=lambda t: (-t[1], t[0]))[:k]


def _norm(side: list[tuple[str, float]]) -> dict[str, float]:
    if not side:
        return {}
    lo, hi = min(s for _, s in side), max(s for _, s in side)
    return {i: (1.0 if hi == lo else (s - lo) / (hi - lo)) for i, s in side}


def _weighted(vec: list[tuple[str, float]], kw: list[tuple[str, float]], k: int, alpha: float) -> list[tuple[str, float]]:
    v, w = _norm(vec), _norm(kw)
    fused = {i: alpha * v.get(i, 0.0) + (1 - alpha) * w.get(i, 0.0) for i in set(v) | set(w)}
    return sorted(fused.items(), key=lambda t: (-t[1], t[0]))[:k]


def _cos_distance(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return max(0.0, 1.0 - float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("k", [1, 3, 20])
@pytest.mark.parametrize("fusion, param", [("rrf", 60.0), ("rrf", 2.0), ("weighted", 0.5), ("weighted", 0.8), ("weighted", 0.0)])
def test_hybrid_is_the_fusion_of_the_two_rankings(text_db, k, fusion, param):
    n = max(k, HYBRID_CANDIDATES)
    for where in (None, {"lang": "py"}):
        for q in QUERIES:
            vec = text_db.recall(q, k=n, where=where, mode="vector")
            kw = text_db.keyword_search(q, k=n, where=where)
            if fusion == "rrf":
                want = _rrf([h.id for h in vec], [h.id for h in kw], k, param)
                got = text_db.recall(q, k=k, where=where, mode="hybrid", rrf_k=param)
            else:
                want = _weighted([(h.id, h.score) for h in vec], [(h.id, h.score) for h in kw], k, param)
                got = text_db.recall(q, k=k, where=where, mode="hybrid", fusion="weighted", alpha=param)
            assert [h.id for h in got] == [i for i, _ in want], f"query {q!r}, where {where}"
            for h, (_, s) in zip(got, want):
                assert math.isclose(h.score, s, rel_tol=SCORE_TOL, abs_tol=1e-12)
            # distance: the vector distance, also for the hits only the keyword side found
            qv = text_db.embed(q) if q else None
            vdist = {h.id: h.distance for h in vec}
            for h in got:
                assert h.text == DOCS[h.id] and h.metadata == META.get(h.id)
                if where is not None:
                    assert h.metadata == where
                if h.id in vdist:
                    assert h.distance == pytest.approx(vdist[h.id], abs=1e-6)
                else:
                    assert qv is not None
                    assert h.distance == pytest.approx(_cos_distance(qv, text_db.get(h.id).vector), abs=1e-4)


def test_hybrid_finds_the_exact_word_vector_search_misses(text_db):
    # The code XJ4471 means nothing to the model; the keyword side brings it up.
    assert text_db.recall("XJ4471", k=1, mode="keyword")[0].id == "err"
    for fusion in ("rrf", "weighted"):
        assert "err" in [h.id for h in text_db.recall("XJ4471", k=2, mode="hybrid", fusion=fusion)]


def test_hybrid_with_many_queries_and_options(text_db):
    # (A batch of texts is embedded padded to its longest: the same vectors to about 1e-6.)
    one = [[(h.id, h.score) for h in text_db.recall(q, k=4, mode="hybrid")] for q in QUERIES]
    for kw in ({}, {"exact": True, "threads": 1, "ef": 8}):
        many = text_db.recall(QUERIES, k=4, mode="hybrid", **kw)
        assert [[(h.id, h.score) for h in row] for row in many] == one
    assert text_db.recall([], mode="hybrid") == []
    # The default mode is the hybrid one (reciprocal rank fusion, k = 60).
    assert text_db.recall("closing generators", k=4) == text_db.recall("closing generators", k=4, mode="hybrid", fusion="rrf", rrf_k=60.0)


# ------------------------------------------------------------------------------------------
# The same workload through both engines


VOCAB = ["alpha", "beta", "generator", "generators", "closing", "cat", "cats", "sleeping", "soup", "tomato", "the", "of", "XJ4471", "café", "rust", "ownership"]
_text = st.lists(st.sampled_from(VOCAB), min_size=1, max_size=6).map(" ".join)


def _same_ranking(a, b, tol: float) -> None:
    """Same ids in the same order, but for near-ties (scores within ``tol``) that the two
    engines' floating point may order either way."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert abs(x.score - y.score) <= tol, (a, b)
        if x.id != y.id:
            other = next((z for z in b if z.id == x.id), None)
            assert other is not None and abs(other.score - x.score) <= 2 * tol, (a, b)


def test_both_engines_fuse_alike(default_model):
    _both_engines_fuse_alike()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(_text, min_size=1, max_size=12),
    queries=st.lists(_text, min_size=1, max_size=3),
    k=st.integers(1, 8),
    alpha=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
)
def _both_engines_fuse_alike(docs, queries, k, alpha):
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ENGINE_KINDS:
            db = engine_class(kind)(str(Path(tmp) / kind))
            try:
                db.remember(docs, ids=[f"d{i:02d}" for i in range(len(docs))])
                out[kind] = (
                    db.recall(queries, k=max(k, HYBRID_CANDIDATES), mode="vector"),
                    db.recall(queries, k=k, mode="hybrid"),
                    db.recall(queries, k=k, mode="hybrid", fusion="weighted", alpha=alpha),
                    db.keyword_search(queries, k=k),
                )
            finally:
                db.close()
    (rv, rr, rw, rk), (pv, pr, pw, pk) = out["rust"], out["python"]
    assert [[h.id for h in x] for x in rk] == [[h.id for h in x] for x in pk]
    # The two engines' embeddings differ in the last bits: where that reorders the vector
    # ranking itself, the fused one may differ too.
    assume([[h.id for h in x] for x in rv] == [[h.id for h in x] for x in pv])
    assert [[h.id for h in x] for x in rr] == [[h.id for h in x] for x in pr]
    for a, b in zip(rr, pr):
        for x, y in zip(a, b):
            assert x.score == pytest.approx(y.score, rel=SCORE_TOL)
            assert x.distance == pytest.approx(y.distance, abs=1e-4)
    for a, b in zip(rw, pw):
        _same_ranking(a, b, 1e-4)
