"""Memory scopes (issue 18, mem0's ``user_id`` / ``agent_id`` / ``run_id``), on both engines.

``remember`` stores each given scope as a top-level string metadata key of the same name
(merged into the memory's metadata; a conflicting value is refused), and ``recall``,
``keyword_search``, ``search``, ``get`` and ``delete`` given a scope see only its records (an
``$eq`` condition ANDed with ``where``).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import raises_memento

import memento

# ------------------------------------------------------------------------------------------
# On a raw-vector store (no model): the reads and deletes


ROWS = [
    ("a1", "alice likes green tea", {"user_id": "alice", "agent_id": "x", "n": 1}),
    ("a2", "alice plays chess on sundays", {"user_id": "alice", "agent_id": "y", "run_id": "r1"}),
    ("b1", "bob likes green tea too", {"user_id": "bob", "agent_id": "x"}),
    ("b2", "bob runs marathons", {"user_id": "bob", "run_id": "r1"}),
    ("n1", "nobody's green tea", None),
    ("z1", "a user id that is a number", {"user_id": 7}),
]


@pytest.fixture
def raw_db(open_engine):
    db = open_engine(dimension=3)
    rng = np.random.default_rng(7)
    db.add([r[0] for r in ROWS], rng.standard_normal((len(ROWS), 3)).astype(np.float32), texts=[r[1] for r in ROWS], metadatas=[r[2] for r in ROWS])
    return db


def _ids(xs):
    return sorted(x.id for x in xs)


def test_get_scoped(raw_db):
    assert _ids(raw_db.get(user_id="alice")) == ["a1", "a2"]
    assert _ids(raw_db.get(user_id="bob", agent_id="x")) == ["b1"]
    assert _ids(raw_db.get(run_id="r1")) == ["a2", "b2"]
    assert _ids(raw_db.get(where={"n": 1}, user_id="alice")) == ["a1"]
    assert raw_db.get(where={"n": 1}, user_id="bob") == []
    assert _ids(raw_db.get(["a1", "b1", "zz"], user_id="alice")) == ["a1"]
    assert raw_db.get("b1", user_id="alice") is None
    assert raw_db.get("b1", user_id="bob").id == "b1"
    assert raw_db.get(user_id="7") == []  # the number 7 is not the string "7"
    assert len(raw_db.get(user_id="alice", limit=1)) == 1


def test_search_scoped(raw_db):
    q = np.ones(3, dtype=np.float32)
    assert _ids(raw_db.search(q, k=10, user_id="bob")) == ["b1", "b2"]
    assert _ids(raw_db.search(q, k=10, user_id="bob", where={"run_id": "r1"})) == ["b2"]
    assert _ids(raw_db.search(q, k=1, user_id="alice", agent_id="y")) == ["a2"]
    rows = raw_db.search(np.ones((2, 3), dtype=np.float32), k=10, agent_id="x")
    assert [_ids(r) for r in rows] == [["a1", "b1"], ["a1", "b1"]]


def test_keyword_search_scoped(raw_db):
    assert _ids(raw_db.keyword_search("green tea")) == ["a1", "b1", "n1"]
    assert _ids(raw_db.keyword_search("green tea", user_id="alice")) == ["a1"]
    assert _ids(raw_db.keyword_search("green tea", user_id="bob", where={"agent_id": "x"})) == ["b1"]
    assert raw_db.keyword_search("green tea", run_id="r1") == []
    assert _ids(raw_db.recall("green tea", mode="keyword", agent_id="x")) == ["a1", "b1"]


def test_delete_scoped(raw_db):
    assert raw_db.delete(["a1", "b1"], user_id="bob") == 1
    assert "a1" in raw_db and "b1" not in raw_db
    assert raw_db.delete(user_id="alice", run_id="r1") == 1
    assert raw_db.delete(where={"run_id": "r1"}, user_id="alice") == 0
    assert raw_db.delete(user_id="alice") == 1
    assert _ids(raw_db.get()) == ["b2", "n1", "z1"]
    with raises_memento(memento.InvalidArgumentError):
        raw_db.delete()


@pytest.mark.parametrize("bad", ["", 7, 1.5, True, ["alice"], {"id": "alice"}, b"alice"])
@pytest.mark.parametrize("scope", ["user_id", "agent_id", "run_id"])
def test_bad_scopes_are_refused(raw_db, scope, bad):
    q = np.ones(3, dtype=np.float32)
    calls = [
        lambda: raw_db.get(**{scope: bad}),
        lambda: raw_db.get("a1", **{scope: bad}),
        lambda: raw_db.search(q, **{scope: bad}),
        lambda: raw_db.keyword_search("tea", **{scope: bad}),
        lambda: raw_db.recall("tea", mode="keyword", **{scope: bad}),
        lambda: raw_db.recall("tea", **{scope: bad}),  # refused before NoModelError
        lambda: raw_db.delete(**{scope: bad}),
        lambda: raw_db.delete("a1", **{scope: bad}),
        lambda: raw_db.remember("tea", **{scope: bad}),  # refused before NoModelError
    ]
    for call in calls:
        with raises_memento(memento.InvalidArgumentError, match=scope):
            call()
    assert raw_db.count() == len(ROWS)


def test_a_bad_where_is_named_as_without_a_scope(raw_db):
    with raises_memento(memento.InvalidFilterError):
        raw_db.get(where={"n": {"$bad": 1}}, user_id="alice")
    with raises_memento(memento.InvalidFilterError):
        raw_db.keyword_search("tea", where=[1], user_id="alice")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# remember and recall, with the default model


@pytest.fixture
def text_db(engine_cls, default_model, tmp_path):
    db = engine_cls(str(tmp_path / "text"))
    yield db
    db.close()


def test_remember_stores_the_scopes(text_db):
    a = text_db.remember("I am allergic to peanuts", user_id="alice")
    b = text_db.remember("I love peanut butter", {"kind": "food"}, user_id="bob", agent_id="chef", run_id="r9")
    ids = text_db.remember(["tea at five", "coffee at nine"], [None, {"user_id": "carol", "x": 1}], ["t", "c"], user_id="carol")
    assert ids == ["t", "c"]
    assert text_db.get(a).metadata == {"user_id": "alice"}
    assert text_db.get(b).metadata == {"kind": "food", "user_id": "bob", "agent_id": "chef", "run_id": "r9"}
    assert text_db.get("t").metadata == {"user_id": "carol"}
    assert text_db.get("c").metadata == {"user_id": "carol", "x": 1}


def test_remember_refuses_a_conflicting_scope(text_db):
    with raises_memento(memento.InvalidArgumentError, match="user_id"):
        text_db.remember("hello", {"user_id": "bob"}, user_id="alice")
    with raises_memento(memento.InvalidArgumentError, match="agent_id"):
        text_db.remember(["a", "b"], [None, {"agent_id": 3}], agent_id="3")
    assert text_db.count() == 0
    # The metadata given is not changed.
    meta = {"user_id": "alice"}
    text_db.remember("hello", meta, user_id="alice", run_id="r")
    assert meta == {"user_id": "alice"}


def test_recall_scoped(text_db):
    text_db.remember(["I am allergic to peanuts", "My favourite food is pizza"], ids=["a-allergy", "a-food"], user_id="alice")
    text_db.remember(["I am allergic to cats", "My favourite food is sushi"], ids=["b-allergy", "b-food"], user_id="bob", agent_id="helper")
    text_db.remember("peanuts and allergies in general", ids="shared")
    for mode in ("vector", "keyword", "hybrid"):
        hits = text_db.recall("what am I allergic to?", k=10, mode=mode, user_id="alice")
        assert {h.id for h in hits} <= {"a-allergy", "a-food"} and hits, mode
        assert hits[0].id == "a-allergy", mode
        hits = text_db.recall("allergic", k=10, mode=mode, user_id="bob", agent_id="helper")
        assert {h.id for h in hits} <= {"b-allergy", "b-food"} and hits[0].id == "b-allergy", mode
        assert text_db.recall("allergic", mode=mode, user_id="bob", agent_id="other") == []
        hits = text_db.recall("food", mode=mode, user_id="alice", where={"$contains": "pizza"})
        assert [h.id for h in hits] == ["a-food"], mode
    assert {h.id for h in text_db.recall("allergic", k=10)} >= {"a-allergy", "b-allergy", "shared"}
    q = text_db.embed("allergies")
    assert {h.id for h in text_db.search(q, k=10, user_id="alice")} == {"a-allergy", "a-food"}
    assert {m.id for m in text_db.get(user_id="bob")} == {"b-allergy", "b-food"}
    assert text_db.delete(user_id="bob") == 2
    assert text_db.recall("allergic", mode="keyword", user_id="bob") == []
    assert {m.id for m in text_db.get()} == {"a-allergy", "a-food", "shared"}
