"""``update(ids, metadatas=..., merge=True)``: the patch is merged into each record's metadata
inside the commit (keys replace, None removes), the same rule as the Rust engine's
``merge_metadata`` and the command line's ``update --merge``; and ``search``/``recall``'s
``exact`` and ``threads``, which change how a search runs, never its answer."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import memento
from memento import InvalidArgumentError, NotFoundError


def test_merge_adds_replaces_and_removes_keys(open_engine):
    db = open_engine(dimension=2)
    db.add(["a", "b", "c"], [[1, 0], [0, 1], [1, 1]], metadatas=[{"x": 1, "y": 2}, None, {"k": "v"}])
    db.update("a", metadatas={"y": None, "z": [1, 2]}, merge=True)
    db.update("b", metadatas={"new": True}, merge=True)
    assert db.get("a").metadata == {"x": 1, "z": [1, 2]}
    assert db.get("b").metadata == {"new": True}
    # Several ids, one patch each, one commit; a None patch changes nothing but the id must exist.
    db.update(["a", "c"], metadatas=[{"x": 2}, None], merge=True)
    assert db.get("a").metadata == {"x": 2, "z": [1, 2]}
    assert db.get("c").metadata == {"k": "v"}
    # Without merge, the metadata is replaced, as before.
    db.update("a", metadatas={"only": 1})
    assert db.get("a").metadata == {"only": 1}
    # The vector and the order stay.
    assert [m.id for m in db.get()] == ["a", "b", "c"]
    np.testing.assert_array_equal(db.get("a").vector, np.array([1, 0], dtype=np.float32))


def test_merge_with_a_text_change_in_one_call(open_engine):
    db = open_engine(dimension=2)
    db.add("a", [1, 0], texts="old", metadatas={"x": 1})
    db.update("a", texts="new", metadatas={"y": 2}, merge=True)
    m = db.get("a")
    assert (m.text, m.metadata) == ("new", {"x": 1, "y": 2})


def test_merge_of_a_missing_id_writes_nothing(open_engine):
    db = open_engine(dimension=2)
    db.add("a", [1, 0], metadatas={"x": 1})
    with pytest.raises(NotFoundError) as info:
        db.update(["a", "nope"], metadatas=[{"x": 2}, {"x": 2}], merge=True)
    assert info.value.id == "nope"
    assert db.get("a").metadata == {"x": 1}


def test_merge_needs_metadatas_and_a_bool(open_engine):
    db = open_engine(dimension=2)
    db.add("a", [1, 0])
    with pytest.raises(InvalidArgumentError, match="merge=True"):
        db.update("a", texts="t", merge=True)
    with pytest.raises(InvalidArgumentError, match="merge"):
        db.update("a", metadatas={"x": 1}, merge="yes")
    with pytest.raises(InvalidArgumentError):
        db.update("a", metadatas={"x": float("nan")}, merge=True)


def test_merge_survives_reopening(engine_cls, tmp_path):
    path = tmp_path / "s"
    with engine_cls(path, dimension=2, model=None) as db:
        db.add("a", [1, 0], metadatas={"x": 1})
        db.update("a", metadatas={"y": 2}, merge=True)
    with engine_cls(path) as db:
        assert db.get("a").metadata == {"x": 1, "y": 2}
        db.check_integrity()


def test_concurrent_merges_lose_no_key(open_engine):
    # Each thread merges its own key into the same record: a read-modify-write outside the
    # commit would lose some of them.
    db = open_engine(dimension=2, durability="buffered")
    db.add("a", [1, 0], metadatas={})
    n_threads, per_thread = 4, 25

    def work(t: int) -> None:
        for i in range(per_thread):
            db.update("a", metadatas={f"t{t}-{i}": i}, merge=True)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(db.get("a").metadata) == n_threads * per_thread


def test_merge_is_the_same_on_both_engines(open_both):
    got = {}
    for kind, opener in open_both.items():
        db = opener(dimension=2)
        db.add(["a", "b"], [[1, 0], [0, 1]], metadatas=[{"x": 1, "nested": {"a": 1}}, None])
        db.update(["a", "b"], metadatas=[{"nested": {"b": 2}, "x": None}, {"y": "s"}], merge=True)
        got[kind] = [(m.id, m.metadata) for m in db.get()]
    assert got["rust"] == got["python"] == [("a", {"nested": {"b": 2}}), ("b", {"y": "s"})]


def test_exact_and_threads_change_no_answer(open_engine):
    rng = np.random.default_rng(7)
    db = open_engine(dimension=32)
    vecs = rng.standard_normal((5000, 32)).astype(np.float32)
    db.add([f"v{i}" for i in range(len(vecs))], vecs, metadatas=[{"even": i % 2 == 0} for i in range(len(vecs))])
    q = rng.standard_normal((3, 32)).astype(np.float32)
    base = [[r.id for r in row] for row in db.search(q, k=10)]
    for exact in (False, True):
        for threads in (None, 1, 2, 3):
            got = [[r.id for r in row] for row in db.search(q, k=10, exact=exact, threads=threads)]
            assert got == base, (exact, threads)
            arr = db.search_arrays(q, k=10, exact=exact, threads=threads)
            assert arr.ids == base
    filtered = db.search(q[0], where={"even": True}, threads=2, exact=True)
    assert len(filtered) == memento.DEFAULT_K and all(int(r.id[1:]) % 2 == 0 for r in filtered)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_threads_must_be_a_positive_integer(open_engine, bad):
    db = open_engine(dimension=2)
    db.add("a", [1, 0])
    with pytest.raises(InvalidArgumentError, match="threads"):
        db.search([1, 0], threads=bad)


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_exact_must_be_a_bool(open_engine, bad):
    db = open_engine(dimension=2)
    db.add("a", [1, 0])
    with pytest.raises(InvalidArgumentError, match="exact"):
        db.search([1, 0], exact=bad)


def test_search_returns_default_k(open_engine):
    db = open_engine(dimension=2)
    db.add([f"v{i}" for i in range(30)], np.ones((30, 2), dtype=np.float32))
    assert len(db.search([1, 0])) == memento.DEFAULT_K == 10


def test_recall_takes_the_search_options_and_plural_arguments(engine_cls, default_model, tmp_path):
    texts = ["The meeting moved to Thursday at 10.", "Buy oat milk and bread.", "The cat sleeps on the warm laptop."]
    with engine_cls(tmp_path / "t") as db:
        ids = db.remember(texts, metadatas=[{"n": i} for i in range(3)], ids=["m", "b", "c"])
        assert ids == ["m", "b", "c"]
        assert db.remember("Tea is ready.", {"n": 3}, "t") == "t"
        base = [r.id for r in db.recall("when is the meeting?")]
        assert len(base) == 4 and base[0] == "m"
        for exact in (False, True):
            for threads in (None, 1, 2):
                assert [r.id for r in db.recall("when is the meeting?", exact=exact, threads=threads)] == base
        two = db.recall(["when is the meeting?", "something to drink"], k=1, where={"n": {"$gte": 1}})
        assert [len(row) for row in two] == [1, 1] and all(row[0].metadata["n"] >= 1 for row in two)
        assert two[1][0].id == "t"  # "something to drink": the tea
        assert db.embed(["a", "b"]).shape == (2, 384) and db.embed("a").shape == (384,)


def test_a_rust_store_with_many_dead_records_compacts_itself(tmp_path):
    # FORMAT.md §4.5, "When": 40% of the slots dead and at least 256 of them. (The Python
    # engine's SQLite database reuses the pages deletes free, so it has no such trigger.)
    rng = np.random.default_rng(4)
    with memento.RustEngine(tmp_path / "s", dimension=8, model=None) as db:
        db.add([f"v{i}" for i in range(3000)], rng.standard_normal((3000, 8)).astype(np.float32))
        db.checkpoint()
        db.delete([f"v{i}" for i in range(1000)])
        db.checkpoint()
        assert db.stats()["deleted"] == 1000  # a third of the slots: under 40%
        db.delete([f"v{i}" for i in range(1000, 2000)])  # the commit that passes both
        assert db.stats()["deleted"] == 0 and db.count() == 1000
        db.check_integrity()


def test_compact_gives_space_back_and_keeps_the_live_records(engine_cls, tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "s"
    with engine_cls(path, dimension=32, model=None) as db:
        vecs = rng.standard_normal((1000, 32)).astype(np.float32)
        db.add([f"v{i}" for i in range(1000)], vecs, metadatas=[{"i": i} for i in range(1000)])
        # 200 dead: under the 256 at which the Rust engine compacts by itself (see the
        # previous test).
        db.delete([f"v{i}" for i in range(200)])
        db.checkpoint()
        live = [(m.id, m.metadata, m.vector.tolist()) for m in db.get()]
        hits = [r.id for r in db.search(vecs[50], k=10)]
        info = db.compact()
        assert info["live"] == 800 and info["dropped"] >= 200, info
        assert info["bytes_after"] < info["bytes_before"], info
        assert [(m.id, m.metadata, m.vector.tolist()) for m in db.get()] == live
        assert [r.id for r in db.search(vecs[50], k=10)] == hits
        assert db.stats()["deleted"] == 0
        db.add("after", vecs[7])
        db.check_integrity()
    with engine_cls(path) as db:
        assert db.count() == 801 and db.get("after") is not None
        with engine_cls(path, read_only=True) as reader:
            with pytest.raises(memento.ReadOnlyError):
                reader.compact()
