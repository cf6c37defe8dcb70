"""Changing a text changes its meaning (issue 13, item 3), in both engines.

In a text store a record's vector is the embedding of its text, so ``update(id, texts=...)``
embeds the new text (through the embedding cache) and replaces the vector, keeping the
metadata; ``remember(new_text, ids=id)`` then finds the stored text equal and keeps that right
vector. Removing a text (``texts=None``) is refused there: the vector needs one. In a
raw-vector store only the text changes (None removes it). Both engines, the real default model.
"""

from __future__ import annotations

import numpy as np
import pytest

import memento
from helpers import raises_memento

FACTS = {
    "alice": "Alice lives in Lyon.",
    "bob": "Bob plays the cello in an orchestra.",
    "carol": "Carol grows tomatoes in her garden.",
    "dave": "Dave repairs old motorcycles.",
}


def _top(db, question: str) -> str:
    return db.recall(question, k=1)[0].id


@pytest.fixture
def text_store(open_engine, default_model):
    db = open_engine(model="default")
    for i, t in FACTS.items():
        db.remember(t, ids=i, metadatas={"who": i})
    assert _top(db, "Who lives in Lyon?") == "alice"
    return db


def test_update_text_re_embeds(text_store):
    db = text_store
    lyon_vector = db.get("alice").vector.copy()
    lyon_before = db.recall("Who lives in Lyon?", k=1)[0]
    db.update("alice", texts="Alice lives in Marseille.")
    m = db.get("alice")
    assert m.text == "Alice lives in Marseille." and m.metadata == {"who": "alice"}
    np.testing.assert_allclose(m.vector, db.embed("Alice lives in Marseille."), atol=1e-5)
    assert not np.allclose(m.vector, lyon_vector, atol=1e-3), "the vector is still the old text's"
    hit = db.recall("Who lives in Marseille?", k=1)[0]
    assert hit.id == "alice" and hit.text == "Alice lives in Marseille."
    # Ranked by its new meaning: "Lyon" is no longer what it is about.
    lyon = {h.id: h for h in db.recall("Who lives in Lyon?", k=len(FACTS))}
    assert lyon["alice"].distance > lyon_before.distance + 0.05
    assert lyon["alice"].distance == pytest.approx(1 - float(db.embed("Who lives in Lyon?") @ m.vector), abs=1e-4)
    assert db.count() == len(FACTS)
    # remember() with the same text and id keeps the (right) vector; the store reopens the same.
    assert db.remember("Alice lives in Marseille.", ids="alice") == "alice"
    np.testing.assert_allclose(db.get("alice").vector, m.vector, atol=1e-6)
    path = db.path
    db.close()
    db2 = type(db)(path, model="default")
    try:
        assert _top(db2, "Who lives in Marseille?") == "alice"
        np.testing.assert_allclose(db2.get("alice").vector, m.vector, atol=1e-6)
        db2._core.check_integrity()
    finally:
        db2.close()


def test_update_text_and_metadata_together(text_store):
    db = text_store
    assert _top(db, "Who teaches mathematics?") != "bob"
    db.update(["alice", "bob"], texts=["Alice lives in Marseille.", "Bob teaches mathematics at a school."], metadatas=[{"n": 1}, None])
    assert db.get("alice").metadata == {"n": 1} and db.get("bob").metadata is None
    assert _top(db, "Who lives in Marseille?") == "alice"
    assert _top(db, "Who teaches mathematics?") == "bob"


def test_remember_a_new_text_under_an_id_re_embeds(text_store):
    db = text_store
    db.remember("Alice lives in Marseille.", ids="alice")
    assert _top(db, "Who lives in Marseille?") == "alice"
    assert db.get("alice").text == "Alice lives in Marseille."


def test_removing_a_text_in_a_text_store_is_refused(text_store):
    db = text_store
    before = db.get("alice")
    with raises_memento(memento.InvalidArgumentError, match="cannot be removed"):
        db.update("alice", texts=None)
    after = db.get("alice")
    assert after.text == before.text and np.array_equal(after.vector, before.vector)


def test_update_text_of_a_missing_id(text_store):
    with raises_memento(memento.NotFoundError):
        text_store.update("nobody", texts="Nobody lives here.")
    assert text_store.count() == len(FACTS)


def test_raw_vector_store_only_changes_the_text(open_engine):
    db = open_engine(dimension=2, metric="l2")
    db.add("a", [1.0, 2.0], texts="old")
    db.update("a", texts="new")
    assert db.get("a").text == "new" and db.get("a").vector.tolist() == [1.0, 2.0]
    db.update("a", texts=None)
    assert db.get("a").text is None and db.get("a").vector.tolist() == [1.0, 2.0]


def test_text_store_opened_without_its_model_cannot_change_a_text(open_engine, default_model, store_path):
    db = open_engine(store_path, model="default")
    db.remember("Alice lives in Lyon.", ids="alice")
    db.close()
    db = open_engine(store_path, model=None)
    with raises_memento(memento.NoModelError):
        db.update("alice", texts="Alice lives in Marseille.")
    assert db.get("alice").text == "Alice lives in Lyon."


def test_no_model_error_tells_a_python_user_what_to_do(open_engine):
    """Issue 13, item 9: the message named a Rust builder method (EngineBuilder::model) that
    does not exist, and no Python parameter."""
    db = open_engine(dimension=2)
    for call in (lambda: db.remember("x"), lambda: db.recall("x"), lambda: db.add("x", texts="x"), lambda: db.embed("x")):
        with raises_memento(memento.NoModelError) as info:
            call()
        msg = str(info.value)
        assert 'model="default"' in msg and "EngineBuilder" not in msg and "::" not in msg, msg
