"""Round trips through the public API, for both engines (RustEngine and PythonEngine), and the
two engines against each other on the same data."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import memento
from conftest import ENGINE_KINDS, unit_rows
from helpers import assert_same_hits, matches, raises_memento, ref_distances, ref_score, ref_topk

DIM = 8


def vec(*xs) -> list[float]:
    v = [0.0] * DIM
    for i, x in enumerate(xs):
        v[i] = float(x)
    return v


# ------------------------------------------------------------------------------------------
# Writes and reads


def test_add_one_and_get(open_engine):
    e = open_engine(dimension=DIM, metric="l2")
    assert e.count() == 0
    e.add("a", vec(1, 2, 3), texts="alpha", metadatas={"n": 1})
    assert e.count() == 1
    m = e.get("a")
    assert isinstance(m, memento.Memory)
    assert m.id == "a" and m.text == "alpha" and m.metadata == {"n": 1}
    assert isinstance(m.vector, np.ndarray) and m.vector.dtype == np.float32 and m.vector.shape == (DIM,)
    np.testing.assert_array_equal(m.vector, np.array(vec(1, 2, 3), dtype=np.float32))
    assert e.get("missing") is None


def test_add_many_numpy_and_lists(open_engine, rng):
    e = open_engine(dimension=DIM, metric="l2")
    a = rng.standard_normal((5, DIM)).astype(np.float32)
    e.add([f"n{i}" for i in range(5)], a)
    b = rng.standard_normal((3, DIM))  # float64: converted
    e.add(["f0", "f1", "f2"], b)
    lists = rng.standard_normal((2, DIM)).tolist()
    e.add(["l0", "l1"], lists, texts=["t0", None], metadatas=[None, {"k": "v"}])
    assert e.count() == 10
    got = e.get([f"n{i}" for i in range(5)])
    assert [m.id for m in got] == [f"n{i}" for i in range(5)]
    np.testing.assert_array_equal(np.stack([m.vector for m in got]), a)
    np.testing.assert_allclose(np.stack([m.vector for m in e.get(["f0", "f1", "f2"])]), b.astype(np.float32), rtol=0, atol=0)
    l0, l1 = e.get(["l0", "l1"])
    assert (l0.text, l0.metadata, l1.text, l1.metadata) == ("t0", None, None, {"k": "v"})
    np.testing.assert_array_equal(l1.vector, np.array(lists[1], dtype=np.float32))


def test_get_order_and_missing_ids(open_engine):
    e = open_engine(dimension=DIM, metric="l2")
    e.add(["a", "b", "c"], [vec(1), vec(2), vec(3)])
    assert [m.id for m in e.get(["c", "nope", "a"])] == ["c", "a"]  # given order, missing skipped
    assert e.get([]) == []
    assert [m.id for m in e.get()] == ["a", "b", "c"]  # everything, in insertion order


def test_add_duplicate_is_all_or_nothing(open_engine):
    e = open_engine(dimension=DIM, metric="l2")
    e.add("a", vec(1))
    with raises_memento(memento.DuplicateIdError):
        e.add(["b", "a", "c"], [vec(2), vec(3), vec(4)])
    assert e.count() == 1 and e.get("b") is None and e.get("c") is None
    np.testing.assert_array_equal(e.get("a").vector, np.array(vec(1), dtype=np.float32))


def test_upsert_replaces(open_engine):
    e = open_engine(dimension=DIM, metric="l2")
    e.add("a", vec(1), texts="old", metadatas={"v": 1})
    e.upsert("a", vec(0, 1), texts="new", metadatas={"v": 2})
    e.upsert(["b", "a"], [vec(0, 0, 1), vec(0, 0, 0, 1)])
    assert e.count() == 2
    a = e.get("a")
    np.testing.assert_array_equal(a.vector, np.array(vec(0, 0, 0, 1), dtype=np.float32))
    assert a.text is None and a.metadata is None  # an upsert replaces the whole record


def test_delete_by_ids_and_where(open_engine):
    e = open_engine(dimension=DIM, metric="l2")
    e.add([f"r{i}" for i in range(6)], [vec(i + 1) for i in range(6)], metadatas=[{"g": i % 3} for i in range(6)])
    assert e.delete("r0") == 1
    assert e.delete(["r1", "r1", "nope"]) == 1
    assert e.delete("r0") == 0
    assert e.count() == 4
    assert e.delete(where={"g": 2}) == 2  # r2, r5
    assert sorted(m.id for m in e.get()) == ["r3", "r4"]
    assert e.delete(where={"g": 2}) == 0


def test_metadata_round_trip(open_engine):
    e = open_engine(dimension=DIM, metric="l2")
    md = {"s": "héllo ✓", "i": -7, "f": 2.5, "b": True, "none": None, "list": [1, "x", False], "nested": {"a": {"b": [1.5]}}, "": "empty key"}
    text = "Une phrase en français, 日本語のテキスト, emoji 🦀, NUL-free."
    e.add("m", vec(1), texts=text, metadatas=md)
    m = e.get("m")
    assert m.metadata == md and m.text == text
    e.close()
    m = open_engine(e.path).get("m")
    assert m.metadata == md and m.text == text


def test_properties(open_engine, store_path):
    e = open_engine(store_path, dimension=DIM, metric="dot")
    assert e.dimension == DIM
    assert e.metric == "dot"
    assert os.path.samefile(str(e.path), str(store_path))


@pytest.mark.parametrize("durability", ["sync", "group", "buffered"])
def test_durability_modes(open_engine, store_path, durability):
    e = open_engine(store_path, dimension=DIM, metric="l2", durability=durability)
    e.add(["a", "b"], [vec(1), vec(2)])
    e.close()
    assert open_engine(store_path).count() == 2


# ------------------------------------------------------------------------------------------
# Search


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_search_1d_and_2d(open_engine, rng, metric):
    e = open_engine(dimension=DIM, metric=metric)
    data = rng.standard_normal((50, DIM)).astype(np.float32)
    ids = [f"v{i}" for i in range(50)]
    e.add(ids, data, texts=[f"text {i}" for i in range(50)], metadatas=[{"i": i} for i in range(50)])
    q = rng.standard_normal(DIM).astype(np.float32)
    hits = e.search(q, k=5)
    assert isinstance(hits, list) and len(hits) == 5
    assert all(isinstance(h, memento.SearchResult) for h in hits)
    assert_same_hits(hits, ref_topk(metric, ids, data, q, 8), tol=1e-5, k=5)
    for h in hits:
        i = int(h.id[1:])
        assert h.text == f"text {i}" and h.metadata == {"i": i}
        assert h.score == pytest.approx(ref_score(metric, h.distance), abs=1e-6)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    # the same query as a list, and as a 2-D batch of three (numpy and lists)
    assert [h.id for h in e.search(q.tolist(), k=5)] == [h.id for h in hits]
    qs = rng.standard_normal((3, DIM)).astype(np.float32)
    for batch in (qs, qs.tolist(), qs.astype(np.float64)):
        res = e.search(batch, k=4)
        assert isinstance(res, list) and len(res) == 3 and all(isinstance(r, list) for r in res)
        for r, qq in zip(res, qs):
            assert_same_hits(r, ref_topk(metric, ids, data, qq, 8), tol=1e-5, k=4)
    one = e.search(qs[:1], k=2)  # a (1, dim) batch is still a batch
    assert len(one) == 1 and len(one[0]) == 2


def test_search_k_larger_than_store_and_empty_store(open_engine):
    e = open_engine(dimension=DIM, metric="cosine")
    assert e.search(vec(1), k=3) == []
    e.add(["a", "b"], [vec(1), vec(1, 1)])
    hits = e.search(vec(1), k=10)
    assert [h.id for h in hits] == ["a", "b"]
    assert hits[0].distance == pytest.approx(0.0, abs=1e-6) and hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert hits[1].distance == pytest.approx(1 - 1 / np.sqrt(2), abs=1e-6)


def test_cosine_vectors_are_normalised(open_engine):
    e = open_engine(dimension=DIM, metric="cosine")
    e.add("a", vec(3, 4))
    np.testing.assert_allclose(e.get("a").vector, np.array(vec(0.6, 0.8), dtype=np.float32), atol=1e-7)


def test_default_k(open_engine):
    e = open_engine(dimension=DIM, metric="l2")
    e.add([f"{i}" for i in range(20)], [vec(i) for i in range(20)])
    assert len(e.search(vec(0))) == 10


WHERES = [
    {"color": "red"},
    {"color": {"$eq": "red"}},
    {"color": {"$ne": "red"}},
    {"size": {"$gt": 3}},
    {"size": {"$gte": 3, "$lt": 7}},
    {"size": {"$lte": 2.0}},
    {"color": {"$in": ["red", "blue"]}},
    {"color": {"$nin": ["red", "blue"]}},
    {"size": {"$in": [1, 5, 99]}},
    {"$and": [{"color": "red"}, {"size": {"$gt": 2}}]},
    {"$or": [{"color": "green"}, {"size": 0}]},
    {"$or": [{"$and": [{"color": "blue"}, {"flag": True}]}, {"$contains": "seven"}]},
    {"$contains": "e"},
    {"$contains": "seven"},
    {"$not_contains": "e"},
    {"$and": [{"$contains": "t"}, {"color": {"$nin": ["green"]}}]},
    {"flag": True},
    {"flag": {"$ne": True}},
    {"missing": {"$ne": 1}},
    {"missing": 1},
    {"color": "red", "flag": False},
    {},
]

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven"]


def filter_data(rng):
    colors = ["red", "blue", "green"]
    n = len(WORDS)
    data = rng.standard_normal((n, DIM)).astype(np.float32)
    ids = [f"w{i}" for i in range(n)]
    texts = [w if i != 4 else None for i, w in enumerate(WORDS)]
    metas = []
    for i in range(n):
        m = {"color": colors[i % 3], "size": i, "flag": i % 2 == 0}
        if i == 9:
            m = None
        elif i == 10:
            m = {"color": 7}  # another type: never equal to a string, always "not equal"
        metas.append(m)
    return ids, data, texts, metas


@pytest.mark.parametrize("where", WHERES, ids=[str(w) for w in WHERES])
def test_where_filters(open_engine, rng, where):
    e = open_engine(dimension=DIM, metric="l2")
    ids, data, texts, metas = filter_data(rng)
    e.add(ids, data, texts=texts, metadatas=metas)
    keep = [i for i in range(len(ids)) if matches(where, texts[i], metas[i])]
    # get(where=...): the matching records, in insertion order
    assert [m.id for m in e.get(where=where)] == [ids[i] for i in keep]
    # search(where=...): the nearest among the matching ones; k results whenever k match
    q = rng.standard_normal(DIM).astype(np.float32)
    hits = e.search(q, k=5, where=where)
    assert_same_hits(hits, ref_topk("l2", [ids[i] for i in keep], data[keep], q, 8) if keep else [], tol=1e-5, k=5)
    # delete(where=...)
    assert e.delete(where=where) == len(keep)
    assert e.count() == len(ids) - len(keep)


# ------------------------------------------------------------------------------------------
# Lifecycle


def test_context_manager_closes(engine_cls, store_path):
    with engine_cls(str(store_path), dimension=DIM, model=None) as e:
        assert isinstance(e, engine_cls)
        e.add("a", vec(1))
    with raises_memento(memento.ClosedError):
        e.count()
    # the lock went with it: the store opens again at once
    with engine_cls(str(store_path), model=None) as e2:
        assert e2.count() == 1


def test_context_manager_closes_on_exception(engine_cls, store_path):
    with pytest.raises(RuntimeError):
        with engine_cls(str(store_path), dimension=DIM, model=None) as e:
            e.add("a", vec(1))
            raise RuntimeError("boom")
    with engine_cls(str(store_path), model=None) as e2:
        assert e2.count() == 1


def test_close_is_idempotent(open_engine):
    e = open_engine(dimension=DIM)
    e.close()
    e.close()


def test_checkpoint_and_reopen(open_engine, store_path, rng):
    e = open_engine(store_path, dimension=DIM, metric="cosine")
    data = unit_rows(rng, 200, DIM)
    ids = [f"id-{i}" for i in range(200)]
    e.add(ids[:100], data[:100], metadatas=[{"i": i} for i in range(100)])
    e.checkpoint()
    e.add(ids[100:], data[100:], metadatas=[{"i": i} for i in range(100, 200)])
    e.delete(ids[:10])
    e.upsert("id-50", data[0], texts="moved")
    before = [(h.id, h.distance) for h in e.search(data[7], k=5)]
    e.close()
    e2 = open_engine(store_path)
    assert e2.dimension == DIM and e2.metric == "cosine"
    assert e2.count() == 190
    assert e2.get("id-3") is None
    m = e2.get("id-50")
    assert m.text == "moved" and m.metadata is None
    np.testing.assert_allclose(m.vector, data[0], atol=1e-6)
    after = [(h.id, h.distance) for h in e2.search(data[7], k=5)]
    assert [a[0] for a in after] == [b[0] for b in before]
    np.testing.assert_allclose([a[1] for a in after], [b[1] for b in before], atol=1e-6)


def test_reopen_without_close_after_checkpoint(engine_cls, store_path):
    # A second process opening after this one exits: everything acknowledged is there.
    code = textwrap.dedent(
        f"""
        import memento, sys
        cls = getattr(memento, {engine_cls.__name__!r})
        e = cls({str(store_path)!r}, dimension={DIM}, model=None)
        e.add(["a", "b"], [[1.0] * {DIM}, [2.0] * {DIM}])
        e.checkpoint()
        e.add("c", [3.0] * {DIM})
        import os
        os._exit(0)  # no close, no destructor
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with engine_cls(str(store_path), model=None) as e:
        assert e.count() == 3
        assert sorted(m.id for m in e.get()) == ["a", "b", "c"]


# ------------------------------------------------------------------------------------------
# Types


def test_result_types_are_frozen_dataclasses():
    for cls, fields in ((memento.Memory, ["id", "text", "metadata", "vector"]), (memento.SearchResult, ["id", "score", "distance", "text", "metadata"])):
        assert dataclasses.is_dataclass(cls)
        assert [f.name for f in dataclasses.fields(cls)] == fields
    r = memento.SearchResult(id="a", score=0.9, distance=0.1, text=None, metadata=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.id = "b"  # type: ignore[misc]
    assert not hasattr(r, "__dict__")  # slots


def test_engines_implement_the_abcs(engine_cls, open_engine):
    from memento import base

    assert issubclass(engine_cls, base.Engine) and issubclass(engine_cls, base.VectorIndex)
    e = open_engine(dimension=DIM)
    assert isinstance(e, base.Engine)
    for name in ("add", "upsert", "delete", "get", "search", "count", "close", "remember", "recall", "checkpoint", "__enter__", "__exit__"):
        assert callable(getattr(e, name)), name


def test_error_tree():
    names = [
        "DimensionMismatchError", "InvalidVectorError", "InvalidArgumentError", "InvalidFilterError", "NotFoundError",
        "DuplicateIdError", "CorruptedError", "IncompatibleError", "LockedError", "MementoIOError", "PoisonedError",
        "ClosedError", "ModelError", "ModelMismatchError", "NoModelError",
    ]
    assert issubclass(memento.MementoError, Exception)
    for n in names:
        cls = getattr(memento, n)
        assert issubclass(cls, memento.MementoError), n
        assert getattr(memento.errors, n) is cls
    assert issubclass(memento.InvalidArgumentError, ValueError)
    assert issubclass(memento.NotFoundError, KeyError)
    assert issubclass(memento.MementoIOError, OSError)


# ------------------------------------------------------------------------------------------
# The factory


def _factory_run(env_extra: dict, pre: str = "") -> subprocess.CompletedProcess:
    code = pre + textwrap.dedent(
        """
        import tempfile, warnings, os
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import memento
            d = tempfile.mkdtemp()
            e = memento.Engine(os.path.join(d, "s"), dimension=4, model=None)
            e.add("a", [1.0, 0.0, 0.0, 0.0])
            assert [h.id for h in e.search([1.0, 0.0, 0.0, 0.0], k=1)] == ["a"]
            e.close()
        print(type(e).__name__, len([x for x in w if "memento" in str(x.message).lower() or "native" in str(x.message).lower()]))
        """
    )
    env = dict(os.environ)
    env.pop("MEMENTO_RUST", None)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_factory_prefers_native():
    r = _factory_run({})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["RustEngine", "0"], r.stdout + r.stderr


def test_factory_memento_rust_0():
    r = _factory_run({"MEMENTO_RUST": "0"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "PythonEngine", r.stdout + r.stderr


def test_factory_falls_back_with_one_warning_without_native():
    block = textwrap.dedent(
        """
        import sys, importlib.abc
        class _NoNative(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "memento._native":
                    raise ImportError("no native module in this test")
                return None
        sys.meta_path.insert(0, _NoNative())
        """
    )
    r = _factory_run({}, pre=block)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["PythonEngine", "1"], r.stdout + r.stderr


def test_default_model_makes_a_text_store(engine_cls, tmp_path, default_model):
    # no dim, model left at its default ("default"): a text store with the default model
    with engine_cls(str(tmp_path / "s")) as e:
        assert e.dimension == 384
        i = e.remember("The cat sat on the mat.")
        assert [h.id for h in e.recall("a cat on a mat", k=1)] == [i]


def test_factory_dim_without_model_is_raw(tmp_path):
    with memento.Engine(str(tmp_path / "s"), dimension=3) as e:
        assert e.dimension == 3
        with raises_memento(memento.NoModelError):
            e.remember("text")


# ------------------------------------------------------------------------------------------
# Text: remember and recall with the real model

TEXTS = [
    "The meeting moved to Thursday at 10 in the large conference room.",
    "Rust's borrow checker enforces ownership rules at compile time.",
    "A good sourdough needs a lively starter and a long, cold proof.",
    "The train to Lyon leaves from platform 4 at 7:42.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "Remember to water the tomatoes every evening during the heatwave.",
]
QUESTIONS = [("when is the meeting?", 0), ("how do I bake bread?", 2), ("which platform does my train leave from?", 3), ("how do plants make food?", 4)]


def test_content_id():
    t = "The meeting moved to Thursday."
    assert memento.content_id(t) == "m-" + hashlib.sha256(t.encode()).hexdigest()[:32]
    assert memento.content_id("") == "m-" + hashlib.sha256(b"").hexdigest()[:32]


def test_remember_recall(open_engine, default_model):
    e = open_engine(model="default")
    assert e.dimension == 384
    ids = [e.remember(t, metadatas={"n": i}) for i, t in enumerate(TEXTS)]
    assert ids == [memento.content_id(t) for t in TEXTS]
    assert e.count() == len(TEXTS)
    assert e.remember(TEXTS[0]) == ids[0] and e.count() == len(TEXTS)  # stored once
    m = e.get(ids[0])
    assert m.text == TEXTS[0] and m.metadata == {"n": 0}
    assert m.vector.shape == (384,) and abs(float(np.linalg.norm(m.vector)) - 1) < 1e-4
    for q, want in QUESTIONS:
        hits = e.recall(q, k=3, mode="vector")  # by meaning only: the score is the cosine
        assert len(hits) == 3 and isinstance(hits[0], memento.SearchResult)
        assert hits[0].id == ids[want] and hits[0].text == TEXTS[want], (q, [h.text for h in hits])
        assert 0 < hits[0].score <= 1 and hits[0].score == pytest.approx(1 - hits[0].distance, abs=1e-6)
    assert len(e.recall(QUESTIONS[0][0])) == min(memento.DEFAULT_K, e.count()) > 5  # default k
    hits = e.recall("when is the meeting?", k=3, where={"n": {"$gte": 2}})
    assert all(h.metadata["n"] >= 2 for h in hits) and len(hits) == 3
    # an explicit id, and add() with texts and no vectors (embedded)
    assert e.remember("Tea is ready.", ids="tea") == "tea"
    e.add(["x1", "x2"], texts=["Cats purr when they are content.", "Compilers translate source code."])
    assert e.recall("felines", k=1)[0].id == "x1"
    e.upsert("x1", texts="Dogs bark at the postman.")
    assert e.get("x1").text == "Dogs bark at the postman."
    assert e.recall("a barking dog", k=1)[0].id == "x1"
    # a raw vector search works on a text store too
    q = e.get(ids[1]).vector
    assert e.search(q, k=1)[0].id == ids[1]
    e.close()
    e2 = open_engine(e.path, model="default")
    assert e2.count() == len(TEXTS) + 3
    assert e2.recall(QUESTIONS[1][0], k=1)[0].id == ids[QUESTIONS[1][1]]


def test_text_store_without_model_serves_vectors(open_engine, default_model, store_path):
    e = open_engine(store_path, model="default")
    i = e.remember(TEXTS[1])
    v = e.get(i).vector
    e.close()
    e2 = open_engine(store_path, model=None)
    assert e2.count() == 1 and e2.search(v, k=1)[0].id == i
    with raises_memento(memento.NoModelError):
        e2.recall("ownership")


def test_engines_agree_on_text(open_both, default_model):
    res = {}
    for kind in ENGINE_KINDS:
        e = open_both[kind](model="default")
        ids = [e.remember(t) for t in TEXTS]
        assert ids == [memento.content_id(t) for t in TEXTS]
        res[kind] = (ids, [[(h.id, h.distance) for h in e.recall(q, k=len(TEXTS))] for q, _ in QUESTIONS], np.stack([m.vector for m in e.get(ids)]))
    r, p = res["rust"], res["python"]
    assert r[0] == p[0]
    np.testing.assert_allclose(r[2], p[2], atol=2e-3)  # the same model file, maybe other kernels
    for hr, hp in zip(r[1], p[1]):
        assert [h[0] for h in hr[:2]] == [h[0] for h in hp[:2]]
        np.testing.assert_allclose([h[1] for h in hr], sorted(h[1] for h in hp), atol=2e-3)


def test_seed_names(default_model):
    import memento.embed
    import memento_core

    v = memento.embed.embed("hello world")
    assert isinstance(v, list) and len(v) == 384 and all(isinstance(x, float) for x in v)
    assert abs(sum(x * x for x in v) - 1) < 1e-3
    w = memento_core.embed_text("hello world")
    np.testing.assert_allclose(np.asarray(w, dtype=np.float32), np.asarray(v, dtype=np.float32), atol=2e-3)
    emb = memento_core.RustEmbedder()
    assert hasattr(emb, "embed")


# ------------------------------------------------------------------------------------------
# The two engines, same data, same answers


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_engines_agree_on_search(open_both, rng, metric):
    n, dim = 1500, 24
    data = unit_rows(rng, n, dim)  # distances of order 1, so that 1e-5 is float32 rounding
    ids = [f"doc-{i}" for i in range(n)]
    metas = [{"g": i % 7, "even": i % 2 == 0} for i in range(n)]
    texts = [f"document number {i}" for i in range(n)]
    queries = unit_rows(rng, 12, dim)
    out = {}
    for kind in ENGINE_KINDS:
        e = open_both[kind](dimension=dim, metric=metric)
        e.add(ids[:1000], data[:1000], texts=texts[:1000], metadatas=metas[:1000])
        for i in range(1000, n, 100):
            e.add(ids[i : i + 100], data[i : i + 100], texts=texts[i : i + 100], metadatas=metas[i : i + 100])
        e.delete([f"doc-{i}" for i in range(0, n, 11)])
        e.upsert("doc-5", data[6], texts="replaced")
        out[kind] = (
            e.search(queries, k=10),
            e.search(queries, k=10, where={"$or": [{"g": {"$in": [1, 2]}}, {"even": False}]}),
            e.search(queries[3], k=25, where={"$contains": "number 1"}),
            e.count(),
        )
    (r1, r2, r3, rc), (p1, p2, p3, pc) = out["rust"], out["python"]
    assert rc == pc
    for a, b in list(zip(r1, p1)) + list(zip(r2, p2)) + [(r3, p3)]:
        assert [h.id for h in a] == [h.id for h in b]
        np.testing.assert_allclose([h.distance for h in a], [h.distance for h in b], atol=1e-5, rtol=0)
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5, rtol=0)
        assert [(h.text, h.metadata) for h in a] == [(h.text, h.metadata) for h in b]
    # and the reference
    live = [i for i in range(n) if i % 11 != 0]
    vecs = {ids[i]: data[i] for i in live}
    vecs["doc-5"] = data[6]
    order = [ids[i] for i in live if i != 5] + ["doc-5"]  # an upsert goes to the end
    st = np.stack([vecs[i] for i in order])
    for qi, q in enumerate(queries):
        assert_same_hits(r1[qi], ref_topk(metric, order, st, q, 15), tol=1e-4, k=10)
    d = ref_distances(metric, data[:3], queries[0])
    assert np.all(np.isfinite(d))
