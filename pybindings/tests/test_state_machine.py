"""A hypothesis state machine: random sequences of add, upsert, delete (by ids and by filter),
get, search, count, checkpoint and close + reopen, run against each engine and checked step by
step against a plain dict model of the store.

The model keeps, per id, the vector (normalised under cosine, as the engines store it), the
text and the metadata, and the insertion order (an upsert moves a record to the end), so that
search results can be checked against a brute-force reference including the order of exact
ties (by insertion). Vectors have small integer coordinates: under l2 and dot every distance is
computed exactly in float32, so ties are real ties and must be broken by insertion order.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

import memento
from helpers import raises_memento, ref_distances

DIM = 4
IDS = ["a", "b", "c", "d", "e", "f", "g", "h", "ü-1", "id with spaces", "x" * 200]
TEXTS = [None, "alpha", "beta gamma", "gamma"]
METAS = [None, {"g": 0}, {"g": 1}, {"g": 1, "s": "x"}, {"g": 2, "tags": ["t"]}]

coords = st.integers(min_value=-3, max_value=3)
vectors = st.lists(coords, min_size=DIM, max_size=DIM).filter(lambda v: any(v))  # no zero vector (cosine)
records = st.lists(
    st.tuples(st.sampled_from(IDS), vectors, st.sampled_from(TEXTS), st.sampled_from(METAS)),
    min_size=1,
    max_size=5,
    unique_by=lambda r: r[0],
)


class StoreMachine(RuleBasedStateMachine):
    engine_cls = None  # set per engine by make_machine

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="memento-sm-")
        self.path = os.path.join(self.dir, "store")
        self.model: dict[str, tuple[np.ndarray, str | None, dict | None]] = {}
        self.order: list[str] = []
        self.e = None
        self.metric = "l2"

    # ----------------------------------------------------------------------------------
    def _stored(self, v) -> np.ndarray:
        v = np.asarray(v, dtype=np.float32)
        if self.metric == "cosine":
            v = (v / np.linalg.norm(v.astype(np.float64))).astype(np.float32)
        return v

    def _put(self, rid, v, text, meta):
        if rid in self.model:
            self.order.remove(rid)
        self.model[rid] = (self._stored(v), text, meta)
        self.order.append(rid)

    def _remove(self, rid):
        del self.model[rid]
        self.order.remove(rid)

    def _reference(self, q, k, keep=None):
        ids = [i for i in self.order if keep is None or keep(i)]
        if not ids:
            return []
        st_ = np.stack([self.model[i][0] for i in ids])
        d = ref_distances(self.metric, st_, np.asarray(q, dtype=np.float64))
        order = sorted(range(len(ids)), key=lambda j: (round(float(d[j]), 5), j))[:k]
        return [(ids[j], float(d[j])) for j in order]

    def _check_hits(self, hits, expected):
        assert len(hits) == len(expected), (hits, expected)
        for h, (eid, ed) in zip(hits, expected):
            assert isinstance(h, memento.SearchResult)
            assert abs(h.distance - ed) <= 1e-5, (hits, expected)
            assert h.id in self.model
            _, text, meta = self.model[h.id]
            assert h.text == text and h.metadata == meta
        if self.metric != "cosine":
            # exact distances: equal ones are ties, broken by insertion order
            assert [h.id for h in hits] == [eid for eid, _ in expected], (hits, expected)

    # ----------------------------------------------------------------------------------
    @initialize(metric=st.sampled_from(["cosine", "l2", "dot"]), durability=st.sampled_from(["sync", "buffered"]))
    def open_store(self, metric, durability):
        self.metric = metric
        self.e = self.engine_cls(self.path, dimension=DIM, metric=metric, model=None, durability=durability)

    @rule(recs=records, as_numpy=st.booleans())
    def add(self, recs, as_numpy):
        ids = [r[0] for r in recs]
        vecs = np.array([r[1] for r in recs], dtype=np.float32) if as_numpy else [[float(x) for x in r[1]] for r in recs]
        texts = [r[2] for r in recs]
        metas = [r[3] for r in recs]
        if any(i in self.model for i in ids):
            with raises_memento(memento.DuplicateIdError):
                self.e.add(ids, vecs, texts=texts, metadatas=metas)
            return
        if len(recs) == 1 and not as_numpy:
            self.e.add(ids[0], vecs[0], texts=texts[0], metadatas=metas[0])
        else:
            self.e.add(ids, vecs, texts=texts, metadatas=metas)
        for r in recs:
            self._put(*r)

    @rule(recs=records)
    def upsert(self, recs):
        self.e.upsert([r[0] for r in recs], np.array([r[1] for r in recs], dtype=np.float32), texts=[r[2] for r in recs], metadatas=[r[3] for r in recs])
        for r in recs:
            self._put(*r)

    @rule(ids=st.lists(st.sampled_from(IDS), max_size=4))
    def delete(self, ids):
        n = self.e.delete(ids)
        gone = {i for i in ids if i in self.model}
        assert n == len(gone)
        for i in gone:
            self._remove(i)

    @rule(g=st.integers(0, 2))
    def delete_where(self, g):
        n = self.e.delete(where={"g": g})
        gone = [i for i in self.order if (self.model[i][2] or {}).get("g") == g]
        assert n == len(gone)
        for i in gone:
            self._remove(i)

    @rule(ids=st.lists(st.sampled_from(IDS), max_size=5))
    def get(self, ids):
        got = self.e.get(ids)
        want = [i for i in ids if i in self.model]
        assert [m.id for m in got] == want
        for m in got:
            v, text, meta = self.model[m.id]
            assert isinstance(m, memento.Memory) and m.vector.dtype == np.float32
            np.testing.assert_allclose(m.vector, v, atol=1e-6)
            assert m.text == text and m.metadata == meta

    @rule(rid=st.sampled_from(IDS))
    def get_one(self, rid):
        m = self.e.get(rid)
        if rid not in self.model:
            assert m is None
        else:
            np.testing.assert_allclose(m.vector, self.model[rid][0], atol=1e-6)

    @rule(g=st.integers(0, 2))
    def get_where(self, g):
        got = self.e.get(where={"g": {"$gte": g}})
        assert [m.id for m in got] == [i for i in self.order if (self.model[i][2] or {}).get("g", -1) >= g]

    @precondition(lambda self: len(self.model) > 0)
    @rule(data=st.data())
    def search_stored(self, data):
        rid = data.draw(st.sampled_from(sorted(self.model)))
        v = self.model[rid][0]
        top = self.e.search(v, k=1)
        assert len(top) == 1
        if self.metric in ("cosine", "l2"):
            # the vector itself is at distance 0, so the top hit is at distance 0 and stores
            # the same vector (the first such one in insertion order)
            assert abs(top[0].distance) <= 1e-5
            np.testing.assert_allclose(self.model[top[0].id][0], v, atol=1e-5)
        self._check_hits(top, self._reference(v, 1))
        self._check_hits(self.e.search(v, k=3), self._reference(v, 3))

    @rule(q=vectors, k=st.integers(1, 12))
    def search_any(self, q, k):
        self._check_hits(self.e.search([float(x) for x in q], k=k), self._reference(q, k))

    @rule(qs=st.lists(vectors, min_size=1, max_size=3), k=st.integers(1, 4), g=st.integers(0, 2))
    def search_batch_filtered(self, qs, k, g):
        where = {"$or": [{"g": g}, {"$contains": "gamma"}]}

        def keep(i):
            _, text, meta = self.model[i]
            return (meta or {}).get("g") == g or (text is not None and "gamma" in text)

        res = self.e.search(np.array(qs, dtype=np.float32), k=k, where=where)
        assert len(res) == len(qs)
        for hits, q in zip(res, qs):
            self._check_hits(hits, self._reference(q, k, keep))

    @rule()
    def checkpoint(self):
        self.e.checkpoint()

    @rule()
    def reopen(self):
        self.e.close()
        self.e = self.engine_cls(self.path, model=None)
        assert self.e.dimension == DIM and self.e.metric == self.metric

    @invariant()
    def count_matches(self):
        if self.e is not None:
            assert self.e.count() == len(self.model)

    def teardown(self):
        try:
            if self.e is not None:
                # a final reopen: everything must have been durable
                self.e.close()
                e = self.engine_cls(self.path, model=None)
                try:
                    assert e.count() == len(self.model)
                    assert [m.id for m in e.get()] == self.order
                finally:
                    e.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def make_machine(cls):
    return type(f"StoreMachine_{cls.__name__}", (StoreMachine,), {"engine_cls": cls})


MACHINE_SETTINGS = settings(
    max_examples=int(os.environ.get("MEMENTO_SM_EXAMPLES", "100")),
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_state_machine(engine_cls):
    run_state_machine_as_test(make_machine(engine_cls), settings=MACHINE_SETTINGS)


def test_state_machine_catches_a_wrong_model():
    """The machine is not vacuous: an engine that forgets deletes fails it."""
    import memento as m

    base = m.PythonEngine

    class Forgetful(base):  # type: ignore[misc, valid-type]
        def delete(self, ids=None, where=None):
            return 0 if ids else base.delete(self, ids=ids, where=where)

    with pytest.raises(AssertionError):
        run_state_machine_as_test(make_machine(Forgetful), settings=settings(MACHINE_SETTINGS, max_examples=50, phases=[Phase.generate]))
