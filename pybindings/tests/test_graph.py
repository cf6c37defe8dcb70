"""The graph index (HNSW, FORMAT.md §7) from Python: ``graph=`` at open, ``build_index``,
``graph_info``, ``estimate_recall``, and a search's ``ef``; ``search_arrays`` made natively.

Both engines take the same calls and refuse the same arguments. The Python engine has no graph:
``build_index`` does nothing, ``graph_info`` says so, ``estimate_recall`` is None, ``ef`` changes
nothing. The store: 2,000 vectors of dimension 32 around 20 centres, with a graph built from
500 vectors on, so that the default search walks it once its recall is measured good enough.
"""

from __future__ import annotations

import numpy as np
import pytest

import memento
from memento.errors import InvalidArgumentError, MementoError, ReadOnlyError

GRAPH = dict(m=8, ef_construction=64, ef_search=48, min_vectors=500)
N, DIM = 2000, 32
INFO_KEYS = {"nodes", "tail", "file_nodes", "estimate", "used_by_auto", "params", "problem"}


def clustered(n: int = N, dim: int = DIM, seed: int = 5) -> np.ndarray:
    """``n`` vectors around 20 random centres (spread 0.3 around unit-length centres)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return x.astype(np.float32)


def brute(data: np.ndarray, queries: np.ndarray, k: int) -> list[list[int]]:
    """The true top k under cosine, in float64 (ties by row, as insertion order)."""
    x = data.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = queries.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d = 1.0 - q @ x.T
    return [[int(i) for i in np.argsort(row, kind="stable")[:k]] for row in d]


@pytest.fixture
def graph_store(open_engine):
    """A cosine store of the clustered vectors (ids ``"0"`` to ``"1999"``) with ``GRAPH``, its
    graph built."""
    data = clustered()
    db = open_engine(dimension=DIM, graph=GRAPH)
    db.add([str(i) for i in range(N)], data)
    db.build_index()
    return db, data


def test_build_index_covers_every_vector_and_measures_the_graph(engine_kind, graph_store):
    db, _ = graph_store
    info = db.graph_info()
    assert set(info) == INFO_KEYS, info
    assert info["params"] == GRAPH
    assert isinstance(info["used_by_auto"], bool)
    if engine_kind == "python":
        assert info["nodes"] == 0 and info["file_nodes"] == 0 and info["estimate"] is None and not info["used_by_auto"]
        assert info["problem"] == "the fallback engine has no graph index"
        assert info["tail"] == N
        assert db.estimate_recall() is None
        return
    assert info["nodes"] >= N and info["tail"] == 0 and info["file_nodes"] >= N, info
    assert info["problem"] is None
    est = info["estimate"]
    assert set(est) == {"recall", "sample", "ef"} and 0.0 <= est["recall"] <= 1.0 and est["sample"] > 0 and est["ef"] == GRAPH["ef_search"], est
    # Clustered data: the graph finds nearly everything, so the default plan walks it.
    assert est["recall"] >= 0.9 and info["used_by_auto"], info
    now = db.estimate_recall(k=10, sample=32)
    assert now is not None and now["sample"] <= 32 and now["ef"] == GRAPH["ef_search"] and now["recall"] >= 0.9, now
    wide = db.estimate_recall(k=5, sample=16, ef=200)
    assert wide is not None and wide["ef"] == 200 and wide["recall"] >= 0.9, wide


def test_default_search_returns_k_and_exact_is_brute_force(graph_store):
    db, data = graph_store
    queries = clustered(8, seed=9)
    want = brute(data, queries, 10)
    default = db.search(queries, k=10)
    assert [len(row) for row in default] == [10] * 8
    # Through the graph the answer is approximate; here it is nearly the true one.
    found = sum(len({int(h.id) for h in row} & set(w)) for row, w in zip(default, want))
    assert found / 80 >= 0.9, found
    exact = db.search(queries, k=10, exact=True)
    assert [[int(h.id) for h in row] for row in exact] == want
    for row in exact:
        assert all(a.distance <= b.distance for a, b in zip(row, row[1:]))


def test_ef_is_taken_by_search_search_arrays_and_estimate_recall(graph_store):
    db, data = graph_store
    q = clustered(3, seed=11)
    want = brute(data, q, 10)
    for ef in (1, 10, 48, 400, np.int64(64)):
        got = db.search(q, k=10, ef=ef)
        assert [len(row) for row in got] == [10, 10, 10], ef
        arrays = db.search_arrays(q, k=10, ef=ef)
        assert arrays.ids == [[h.id for h in row] for row in got], ef
    # A wide beam finds the true top 10.
    wide = db.search(q, k=10, ef=1000)
    assert sum(len({int(h.id) for h in row} & set(w)) for row, w in zip(wide, want)) >= 29
    assert db.search(q[0], k=3, ef=2, exact=True) == db.search(q[0], k=3, exact=True)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "8", True, 2**21])
def test_ef_must_be_a_positive_integer(open_engine, bad):
    db = open_engine(dimension=2)
    db.add("a", [1.0, 0.0])
    for call in (
        lambda: db.search([1.0, 0.0], ef=bad),
        lambda: db.search_arrays([1.0, 0.0], ef=bad),
        lambda: db.recall("a question", ef=bad),
        lambda: db.estimate_recall(ef=bad),
    ):
        with pytest.raises(InvalidArgumentError, match="ef"):
            call()


@pytest.mark.parametrize("args", [dict(k=0), dict(k=-3), dict(sample=0), dict(sample=1.5), dict(k="10")])
def test_estimate_recall_checks_k_and_sample(open_engine, args):
    db = open_engine(dimension=2)
    with pytest.raises(InvalidArgumentError, match="k|sample"):
        db.estimate_recall(**args)


@pytest.mark.parametrize(
    "graph, match",
    [
        ("yes", "graph must be"),
        (1, "graph must be"),
        (dict(m=1), "graph\\['m'\\]"),
        (dict(m=513), "graph\\['m'\\]"),
        (dict(m=True), "graph\\['m'\\]"),
        (dict(ef_search=0), "ef_search"),
        (dict(ef_construction=2.5), "ef_construction"),
        (dict(min_vectors=-1), "min_vectors"),
        (dict(ef=64), "no parameter 'ef'"),
    ],
)
def test_graph_arguments_are_checked_alike(engine_cls, tmp_path, graph, match):
    with pytest.raises(InvalidArgumentError, match=match):
        engine_cls(str(tmp_path / "s"), dimension=4, model=None, graph=graph)
    assert not (tmp_path / "s").exists()


def test_graph_false_and_partial_dicts(open_engine, engine_kind):
    data = clustered(600)
    off = open_engine(dimension=DIM, graph=False)
    off.add([f"r{i}" for i in range(600)], data)
    off.build_index()  # nothing to build
    info = off.graph_info()
    assert info["nodes"] == 0 and not info["used_by_auto"] and info["estimate"] is None
    assert off.estimate_recall() is None
    assert len(off.search(data[0], k=5, ef=8)) == 5
    partial = open_engine(dimension=DIM, graph={"ef_search": 20, "min_vectors": np.int32(100)})
    assert partial.graph_info()["params"] == {"m": 16, "ef_construction": 200, "ef_search": 20, "min_vectors": 100}
    default = open_engine(dimension=DIM)
    assert default.graph_info()["params"] == {"m": 16, "ef_construction": 200, "ef_search": 64, "min_vectors": 20_000}


def test_graph_defaults_are_the_engines(open_both):
    from memento._store import GRAPH_DEFAULTS

    # The Python layer fills a partial dict (and the Python engine's graph_info) with these.
    assert open_both["rust"](dimension=4).graph_info()["params"] == GRAPH_DEFAULTS


def test_search_arrays_match_search(graph_store, engine_kind):
    db, _ = graph_store
    q = clustered(5, seed=21)
    for kw in (dict(), dict(exact=True), dict(ef=100), dict(where=None, threads=1)):
        res = db.search(q, k=7, **kw)
        arr = db.search_arrays(q, k=7, **kw)
        assert arr.id_array.shape == (5, 7) and arr.id_array.dtype.kind == "U", arr.id_array.dtype
        assert arr.id_array.dtype.itemsize == 4 * max(len(h.id) for row in res for h in row)
        assert arr.distances.dtype == np.float32 and arr.scores.dtype == np.float32
        assert arr.ids == [[h.id for h in row] for row in res]
        np.testing.assert_array_equal(arr.id_array, np.array([[h.id for h in row] for row in res]))
        np.testing.assert_allclose(arr.distances, [[h.distance for h in row] for row in res], rtol=0, atol=0)
        np.testing.assert_allclose(arr.scores, [[h.score for h in row] for row in res], rtol=1e-6, atol=1e-6)
        # Every id is a decimal integer: the keys are there too.
        assert arr.keys is not None and arr.keys.dtype == np.int64
        np.testing.assert_array_equal(arr.keys, [[int(h.id) for h in row] for row in res])
    # Unpacking as the named tuple it was.
    ids, dist, scores = db.search_arrays(q[0], k=3)
    assert ids == [[h.id for h in db.search(q[0], k=3)]] and dist.shape == scores.shape == (1, 3)


def test_search_arrays_pad_short_lists_and_keep_string_ids(open_engine):
    db = open_engine(dimension=2, metric="l2")
    db.add(["a", "bb", "ccc", "007", "12"], np.array([[0, 0], [1, 0], [2, 0], [3, 0], [4, 0]], dtype=np.float32))
    db.add(["ünï"], np.array([[5, 0]], dtype=np.float32), metadatas=[{"odd": True}])
    arr = db.search_arrays([[0.0, 0.0], [5.0, 0.0]], k=3)
    assert arr.id_array.dtype == np.dtype("<U3") and arr.id_array.tolist() == [["a", "bb", "ccc"], ["ünï", "12", "007"]]
    assert arr.keys is None  # "a" is not a number ("007" would not be one either)
    np.testing.assert_array_equal(arr.distances, np.array([[0, 1, 4], [0, 1, 4]], dtype=np.float32))
    np.testing.assert_array_equal(arr.scores, -arr.distances)
    # A filter matching one record: the row is padded ("" ids, NaN distances and scores).
    one = db.search_arrays([[0.0, 0.0], [1.0, 0.0]], k=3, where={"odd": True})
    assert one.id_array.shape == (2, 1) and one.ids == [["ünï"], ["ünï"]]
    numeric = db.search_arrays([[3.4, 0.0]], k=2, where={"odd": {"$ne": True}})
    assert numeric.ids == [["007", "12"]] and numeric.keys is None  # a leading zero is not a key
    db.delete(["a", "bb", "ccc", "007", "ünï"])
    db.add(["3", "40"], np.array([[6, 0], [7, 0]], dtype=np.float32))
    keyed = db.search_arrays([[4.0, 0.0], [7.0, 0.0]], k=5)
    assert keyed.distances.shape == (2, 3) and keyed.keys is not None
    np.testing.assert_array_equal(keyed.keys, [[12, 3, 40], [40, 3, 12]])
    # No queries, k beyond the store, an empty store.
    empty = db.search_arrays(np.zeros((0, 2), dtype=np.float32), k=4)
    assert empty.id_array.shape == (0, 0) and empty.distances.shape == (0, 0) and empty.ids == []
    db.delete(["3", "40", "12"])
    none = db.search_arrays([[1.0, 0.0]], k=4)
    assert none.ids == [[]] and none.distances.shape == (1, 0)


def test_graph_calls_after_close_and_in_a_reader(open_engine, engine_kind, tmp_path):
    path = tmp_path / "shared"
    db = open_engine(path, dimension=DIM, graph=GRAPH)
    db.add([str(i) for i in range(600)], clustered(600))
    db.build_index()
    reader = open_engine(path, read_only=True, graph=GRAPH)
    with pytest.raises(ReadOnlyError):
        reader.build_index()
    info = reader.graph_info()
    assert set(info) == INFO_KEYS
    if engine_kind == "rust":
        # A reader uses the graph file the writer wrote, and can measure it.
        assert info["nodes"] >= 600 and info["file_nodes"] >= 600, info
        est = reader.estimate_recall(sample=8)
        assert est is not None and est["sample"] <= 8
    assert len(reader.search(clustered(1, seed=3)[0], k=4)) == 4
    db.close()
    for call in (db.build_index, db.graph_info, db.estimate_recall):
        with pytest.raises(memento.ClosedError):
            call()


def test_native_errors_do_not_panic_into_python(open_both):
    db = open_both["rust"](dimension=DIM, graph=GRAPH)
    db.add([str(i) for i in range(600)], clustered(600))
    db.build_index()
    # Bad values the Python layer never passes on still come back from the native module as
    # Memento errors, never as a panic.
    core = db._core
    for call in (
        lambda: core.search_arrays(np.zeros((1, DIM), dtype=np.float32), -1, None),
        lambda: core.search_arrays(np.zeros((1, DIM), dtype=np.float32), 3, None, False, None, -5),
        lambda: core.search_arrays(np.zeros((1, DIM + 1), dtype=np.float32), 3, None),
        lambda: core.search_arrays(np.zeros((1, DIM), dtype=np.float64), 3, None),
        lambda: core.estimate_recall(-1, 10, None),
        lambda: core.search(np.ones((1, DIM), dtype=np.float32), 3, '{"$bad": 1}', False, None, 10),
        lambda: type(core)(db.path + "-x", DIM, "cosine", None, "sync", True, None, False, False, {"m": "many"}),
        lambda: type(core)(db.path + "-y", DIM, "cosine", None, "sync", True, None, False, False, {"nope": 1}),
        lambda: type(core)(db.path + "-z", DIM, "cosine", None, "sync", True, None, False, False, [1, 2]),
    ):
        with pytest.raises(MementoError) as info:
            call()
        assert "internal error" not in str(info.value)


def test_a_k_beyond_the_store_returns_every_record_and_does_not_abort(graph_store, engine_kind):
    # The graph walk sizes its buffers by max(k, ef): a k of 2**40 ("everything") used to ask
    # for terabytes and abort the process. The native module caps k at the store's records.
    db, _ = graph_store
    q = clustered(1, seed=3)[0]
    assert len(db.search(q, k=2**40, exact=True)) == N
    got = db.search(q, k=2**40)
    assert N * 0.95 <= len(got) <= N and len({h.id for h in got}) == len(got)
    assert db.search_arrays(q, k=10**9).distances.shape[1] == len(got)
    est = db.estimate_recall(k=2**40, sample=2)
    assert est is None if engine_kind == "python" else 0.0 < est["recall"] <= 1.0
