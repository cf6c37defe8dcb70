"""Keyword search (issue 18): BM25 over the records' texts with SQLite FTS5, on both engines.

The query rule (``memento._keyword.fts_query``) alone, against SQLite's FTS5 parser; the native
module's copy of it (``memento._native.keyword_query``) against it; ``keyword_search`` and
``recall(mode="keyword")`` on a small hand-made store through both engines (stemming, stop
words, FTS5 syntax in the query, diacritics, filters, writes and reopening reflected); the
same random workload through both engines giving the same answers; and the Python engine's
store format: the index added to a version 1 store, a reader of one, the integrity check.
"""

from __future__ import annotations

import json
import math
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ENGINE_KINDS, engine_class, native_module
from helpers import raises_memento
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import memento
from memento import _keyword
from memento._keyword import FTS_TOKENIZER, STOP_WORDS, fts_query, is_separator, tokens

# The list issue 18 gives, word for word.
ISSUE_STOP_WORDS = (
    "a about above after again against all am an and any are as at be because been before being below between both but by "
    "can did do does doing down during each few for from further had has have having he her here hers herself him himself "
    "his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other our ours "
    "ourselves out over own same she should so some such than that the their theirs them themselves then there these they "
    "this those through to too under until up very was we were what when where which while who whom why will with would "
    "you your yours yourself yourselves"
).split()


#: Scores are computed in float64 by both engines; the Rust engine hands them over as float32
#: (its hits' score type), so they are compared to float32's precision. The order is decided
#: in float64 before that, so ids are compared exactly.
SCORE_TOL = 1e-6

# ------------------------------------------------------------------------------------------
# The query rule


def test_stop_words_are_the_issues_list():
    assert len(ISSUE_STOP_WORDS) == len(set(ISSUE_STOP_WORDS)) == 125
    assert STOP_WORDS == frozenset(ISSUE_STOP_WORDS)


@pytest.mark.parametrize(
    "text, query",
    [
        ("closing generators", '"closing" OR "generators"'),
        ("What is the generator?", '"generator"'),
        ("the and of", '"the" OR "and" OR "of"'),  # only stop words: all kept
        ("", ""),
        ("  ...  !?", ""),
        ('"*NEAR( AND - : x', '"NEAR" OR "x"'),  # "AND" is the stop word "and"
        ("gen.close() closes", '"gen" OR "close" OR "closes"'),
        ("Café café CAFÉ naïve", '"Café" OR "CAFÉ" OR "naïve"'),  # repeats compared with ASCII letters folded, first kept
        ("the The THE", '"the"'),  # only stop words, repeated
        ("x2 3.14 _id_ a-b", '"x2" OR "3" OR "14" OR "id" OR "b"'),  # "_" and "-" separate; "a" is a stop word
        ("日本語のテキスト", '"日本語のテキスト"'),
        ("Ωmega² ½", '"Ωmega²" OR "½"'),
    ],
)
def test_fts_query(text, query):
    assert fts_query(text) == query


def test_tokens_are_runs_of_non_separators():
    assert tokens("a1 b_2 ,c--d e\u0301 l’été\u3000x") == ["a1", "b", "2", "c", "d", "e\u0301", "l’été", "x"]
    assert tokens("") == []


def _fts_table() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:")
    c.execute(f"CREATE VIRTUAL TABLE f USING fts5(text, tokenize='{FTS_TOKENIZER}')")
    c.executemany("INSERT INTO f(text) VALUES (?)", [("generator.close() closes the generator",), ("hello wörld",), (None,)])
    return c


_FTS = _fts_table()


@settings(max_examples=600, deadline=None)
@given(st.text(max_size=60) | st.text(alphabet='"*^():-+ .,NEARDONTAOR{}[]abc\'\\\u0301é日0', max_size=40))
def test_fts_query_is_always_a_query_fts5_takes(text):
    q = fts_query(text)
    if not q:
        assert all(is_separator(c) for c in text)
        return
    _FTS.execute("SELECT rowid, bm25(f) FROM f WHERE f MATCH ?", (q,)).fetchall()


def test_a_long_query_is_taken():
    words = " ".join(f"word{i}" for i in range(3000))
    _FTS.execute("SELECT rowid FROM f WHERE f MATCH ?", (fts_query(words),)).fetchall()


def _native_keyword_query():
    return native_module().keyword_query


def test_the_default_recall_mode_is_the_native_modules():
    from memento.base import DEFAULT_ALPHA, DEFAULT_RRF_K

    mode, fusion = native_module().default_recall_mode()
    assert mode == memento.DEFAULT_RECALL_MODE
    # A hybrid default fuses as recall's own defaults say.
    assert fusion is None or fusion in (("rrf", DEFAULT_RRF_K), ("weighted", DEFAULT_ALPHA))


def test_native_stop_words_are_the_packages():
    words = list(native_module().stop_words())
    assert len(words) == len(set(words)) and frozenset(words) == STOP_WORDS


@pytest.mark.parametrize(
    "text", ["", "closing generators", "the and of", '"*NEAR( AND - : x', "Café café CAFÉ naïve", "x2 3.14 _id_ a-b", "日本語", "İstanbul ΣΊΣΥΦΟΣ"]
)
def test_native_keyword_query_is_the_packages(text):
    assert _native_keyword_query()(text) == fts_query(text)


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
def test_native_keyword_query_is_the_packages_on_any_text(text):
    # Any text: the word rule needs no Unicode table, so even characters this Python's Unicode
    # database does not know (category Cn) cut the same way in both engines. Surrogates cannot
    # cross into Rust.
    kq = _native_keyword_query()
    assert kq(text) == fts_query(text), f"text {text!r}"


# ------------------------------------------------------------------------------------------
# keyword_search on a hand-made store

TEXTS = {
    "gen": "generator.close() closes the generator",
    "cafe": "Café au lait in the morning",
    "naive": "A naïve approach to résumé parsing",
    "rust": "Rust ownership and borrowing rules",
    "py": "Python generators yield values lazily",
    "none": None,
    "stop": "the of and",
    "sym": 'NEAR(a b) AND "quoted" - x:y *',
}
META = {"gen": {"lang": "py"}, "py": {"lang": "py"}, "rust": {"lang": "rust"}}


def _fill(db):
    ids = list(TEXTS)
    rng = np.random.default_rng(18)
    vecs = rng.standard_normal((len(ids), 4)).astype(np.float32)
    db.add(ids, vecs, texts=[TEXTS[i] for i in ids], metadatas=[META.get(i) for i in ids])


@pytest.fixture
def kw_db(open_engine):
    db = open_engine(dimension=4)
    _fill(db)
    return db


def _ids(hits):
    return [h.id for h in hits]


def test_stemming_finds_other_forms(kw_db):
    hits = kw_db.keyword_search("closing generators")
    assert _ids(hits)[:1] == ["gen"]
    assert set(_ids(hits)) == {"gen", "py"}
    for h in hits:
        assert h.score > 0 and h.distance == -h.score
        assert h.text == TEXTS[h.id] and h.metadata == META.get(h.id)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_stop_words_are_left_out(kw_db):
    # "the" is in many texts; the query's stop words do not count.
    assert _ids(kw_db.keyword_search("the rust")) == ["rust"]
    assert _ids(kw_db.keyword_search("what is the ownership of it")) == ["rust"]
    # Only stop words: they are searched for.
    assert "stop" in _ids(kw_db.keyword_search("the of"))


@pytest.mark.parametrize("query", ['"', "*", "NEAR(", "NEAR(a b)", "AND", "OR NOT", "-", ":", "x:y", '"quoted', "^a", "a*", "{a b}", "(", ")", "'", "\\"])
def test_query_syntax_never_errors(kw_db, query):
    hits = kw_db.keyword_search(query)
    assert isinstance(hits, list)
    for h in hits:
        assert h.id in TEXTS


def test_fts_words_in_the_query_are_words(kw_db):
    assert _ids(kw_db.keyword_search("NEAR")) == ["sym"]
    assert _ids(kw_db.keyword_search("quoted*")) == ["sym"]


@pytest.mark.parametrize(
    "where, want",
    [
        ({"$matches": "closing generator"}, ["gen"]),
        ({"$matches": "generators"}, ["gen", "py"]),
        ({"$matches": "generator lait"}, []),
        ({"$matches": "CAFE morning"}, ["cafe"]),
        ({"$matches": "the ownership of rules"}, ["rust"]),
        ({"$not_matches": "generator"}, ["cafe", "naive", "rust", "none", "stop", "sym"]),
        ({"$and": [{"$matches": "generator"}, {"lang": "py"}]}, ["gen", "py"]),
        ({"$or": [{"$matches": "borrowing"}, {"$contains": "lait"}]}, ["cafe", "rust"]),
        ({"$matches": 'NEAR( "quoted*'}, ["sym"]),
    ],
)
def test_matches_conditions_are_keyword_words(kw_db, where, want):
    # The same answer from the filter over the store, from search with the filter, and from
    # the reference evaluation on one record.
    assert sorted(m.id for m in kw_db.get(where=where)) == sorted(want)
    assert sorted(h.id for h in kw_db.search(np.ones(4, dtype=np.float32), k=20, where=where)) == sorted(want)


@pytest.mark.parametrize("where", [{"$matches": ""}, {"$matches": "?! ,"}, {"$matches": 3}, {"$not_matches": None}, {"$matches": ["a"]}])
def test_matches_needs_words(kw_db, where):
    with pytest.raises(memento.InvalidFilterError):
        kw_db.get(where=where)


def test_diacritics_and_case_are_ignored(kw_db):
    assert _ids(kw_db.keyword_search("cafe")) == ["cafe"]
    assert _ids(kw_db.keyword_search("CAFÉ")) == ["cafe"]
    assert _ids(kw_db.keyword_search("naive resume")) == ["naive"]
    assert _ids(kw_db.keyword_search("résumé")) == ["naive"]


@pytest.mark.parametrize("query", ["", "   ", "...!?", "— –"])
def test_a_query_without_words_finds_nothing(kw_db, query):
    assert kw_db.keyword_search(query) == []
    assert kw_db.keyword_search([query, "rust"])[0] == []


def test_where_filters_before_the_top_k(kw_db):
    assert _ids(kw_db.keyword_search("generators rust", k=1, where={"lang": "rust"})) == ["rust"]
    assert set(_ids(kw_db.keyword_search("generators", where={"lang": "py"}))) == {"gen", "py"}
    assert kw_db.keyword_search("generators", where={"lang": "none"}) == []
    assert _ids(kw_db.keyword_search("generators", where={"$contains": "yield"})) == ["py"]
    with raises_memento(memento.InvalidFilterError):
        kw_db.keyword_search("x", where={"lang": {"$bad": 1}})


def test_k_and_order(kw_db):
    kw_db.add(["z2", "z1", "z3"], np.ones((3, 4), dtype=np.float32), texts=["zebra", "zebra", "zebra"])
    # Equal scores: id ascending.
    assert _ids(kw_db.keyword_search("zebra")) == ["z1", "z2", "z3"]
    assert _ids(kw_db.keyword_search("zebra", k=2)) == ["z1", "z2"]
    with raises_memento(memento.InvalidArgumentError):
        kw_db.keyword_search("zebra", k=0)


def test_one_query_or_many(kw_db):
    many = kw_db.keyword_search(["rust", "cafe", ""])
    assert [_ids(r) for r in many] == [["rust"], ["cafe"], []]
    assert kw_db.keyword_search([]) == []
    with raises_memento(memento.InvalidArgumentError):
        kw_db.keyword_search(None)  # type: ignore[call-overload]
    with raises_memento(memento.InvalidArgumentError):
        kw_db.keyword_search(["ok", 3])  # type: ignore[list-item]


def test_recall_keyword_mode_is_keyword_search_without_a_model(kw_db):
    assert kw_db.model_id is None
    for q in ("closing generators", "cafe", "", "rust ownership"):
        assert kw_db.recall(q, mode="keyword") == kw_db.keyword_search(q)
        assert kw_db.recall(q, k=1, mode="keyword", where={"lang": "py"}) == kw_db.keyword_search(q, k=1, where={"lang": "py"})
    with raises_memento(memento.NoModelError):
        kw_db.recall("rust")
    with raises_memento(memento.NoModelError):
        kw_db.recall("rust", mode="hybrid")


def test_updates_and_deletes_are_reflected(kw_db):
    assert _ids(kw_db.keyword_search("ownership")) == ["rust"]
    kw_db.update("rust", texts="Zig comptime evaluation")
    assert kw_db.keyword_search("ownership") == []
    assert _ids(kw_db.keyword_search("comptime")) == ["rust"]
    kw_db.update("rust", texts=None)
    assert kw_db.keyword_search("comptime") == []
    kw_db.delete("cafe")
    assert kw_db.keyword_search("cafe") == []
    kw_db.upsert("naive", np.ones(4, dtype=np.float32), texts="brand new words")
    assert kw_db.keyword_search("naive") == []
    assert _ids(kw_db.keyword_search("brand")) == ["naive"]
    kw_db.add("fresh", np.ones(4, dtype=np.float32), texts="a fresh cafe")
    assert _ids(kw_db.keyword_search("cafe")) == ["fresh"]
    # Metadata changes keep the text's index.
    kw_db.update("fresh", metadatas={"lang": "fr"})
    assert _ids(kw_db.keyword_search("cafe", where={"lang": "fr"})) == ["fresh"]
    kw_db.delete(where={"lang": "fr"})
    assert kw_db.keyword_search("cafe") == []
    kw_db.check_integrity()


def test_after_reopen_and_compact(open_engine):
    db = open_engine(dimension=4)
    path = db.path
    _fill(db)
    db.delete("py")
    before = {q: db.keyword_search(q) for q in ("closing generators", "cafe", "rust ownership", "the of")}
    db.compact()
    assert {q: db.keyword_search(q) for q in before} == before
    assert _ids(db.keyword_search("generators")) == ["gen"]
    db.close()
    db = open_engine(path)
    assert _ids(db.keyword_search("generators")) == ["gen"]
    assert {q: db.keyword_search(q) for q in before} == before
    db.check_integrity()
    db.close()
    ro = open_engine(path, read_only=True)
    assert {q: ro.keyword_search(q) for q in before} == before


def test_closed_engine(open_engine):
    db = open_engine(dimension=2)
    db.close()
    with raises_memento(memento.ClosedError):
        db.keyword_search("x")


def test_scores_are_bm25(kw_db, tmp_path):
    """score = -bm25 as SQLite's FTS5 computes it over the same texts (an independent table
    in Python's own sqlite3)."""
    c = sqlite3.connect(":memory:")
    c.execute(f"CREATE VIRTUAL TABLE f USING fts5(id UNINDEXED, text, tokenize='{FTS_TOKENIZER}')")
    c.executemany("INSERT INTO f(id, text) VALUES (?, ?)", list(TEXTS.items()))
    for q in ("closing generators", "cafe rust", "the of", "python yield values"):
        want = c.execute("SELECT id, -bm25(f) FROM f WHERE f MATCH ? ORDER BY bm25(f), id", (fts_query(q),)).fetchall()
        got = kw_db.keyword_search(q)
        assert [h.id for h in got] == [w[0] for w in want]
        for h, (_, s) in zip(got, want):
            assert math.isclose(h.score, s, rel_tol=SCORE_TOL, abs_tol=1e-12)


# ------------------------------------------------------------------------------------------
# The same workload through both engines

VOCAB = ["alpha", "beta", "gamma", "delta", "closing", "closes", "generator", "generators", "the", "of", "café", "cafe", "Rust", "rusty", "ownership", "x1"]

_text = st.lists(st.sampled_from(VOCAB), min_size=0, max_size=8).map(" ".join)
_workload = st.tuples(
    st.lists(st.tuples(_text | st.none(), st.sampled_from(["a", "b", None])), min_size=1, max_size=25),
    st.lists(_text, min_size=1, max_size=4),
    st.integers(1, 12),
    st.lists(st.integers(0, 24), max_size=4),
)


def test_both_engines_answer_alike():
    if not hasattr(native_module().NativeEngine, "keyword_search"):
        pytest.fail("memento._native.NativeEngine has no keyword_search yet (issue 18: the native side)", pytrace=False)
    _both_engines_answer_alike()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_workload)
def _both_engines_answer_alike(work):
    docs, queries, k, deleted = work
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ENGINE_KINDS:
            db = engine_class(kind)(str(Path(tmp) / kind), dimension=3, model=None)
            try:
                ids = [f"d{i:02d}" for i in range(len(docs))]
                db.add(ids, np.ones((len(docs), 3), dtype=np.float32), texts=[t for t, _ in docs], metadatas=[None if g is None else {"g": g} for _, g in docs])
                db.delete([f"d{i:02d}" for i in deleted])
                out = []
                for where in (None, {"g": "a"}):
                    for r in db.keyword_search(queries, k=k, where=where):
                        out.append([(h.id, h.score) for h in r])
                results[kind] = out
            finally:
                db.close()
    r, p = results["rust"], results["python"]
    assert [[i for i, _ in row] for row in r] == [[i for i, _ in row] for row in p]
    for rr, pp in zip(r, p):
        for (_, a), (_, b) in zip(rr, pp):
            assert math.isclose(a, b, rel_tol=SCORE_TOL, abs_tol=1e-12)


def test_any_query_text_is_searched_alike():
    """Any query text (FTS5's syntax, marks, scripts, controls) is searched without an error by
    either engine, with the same answers."""
    if not hasattr(native_module().NativeEngine, "keyword_search"):
        pytest.fail("memento._native.NativeEngine has no keyword_search yet (issue 18: the native side)", pytrace=False)
    with tempfile.TemporaryDirectory() as tmp:
        dbs = {kind: engine_class(kind)(str(Path(tmp) / kind), dimension=4, model=None) for kind in ENGINE_KINDS}
        try:
            for db in dbs.values():
                _fill(db)

            @settings(max_examples=300, deadline=None)
            @given(st.text(st.characters(exclude_categories=("Cn", "Cs")), max_size=30) | st.text(alphabet='"*^():-+ .,NEARDONTAOR{}[]\'\\é', max_size=30))
            def check(q):
                got = {kind: [(h.id, h.score) for h in db.keyword_search(q, k=5)] for kind, db in dbs.items()}
                assert [i for i, _ in got["rust"]] == [i for i, _ in got["python"]], f"query {q!r}"

            check()
        finally:
            for db in dbs.values():
                db.close()


# ------------------------------------------------------------------------------------------
# The Python engine's store: format version 2, the index of a version 1 store


def _make_v1(path: Path) -> None:
    """A store as the Python engine wrote it before the keyword index: no FTS table, no
    triggers, version 1."""
    c = sqlite3.connect(str(path / "memento.python.sqlite"))
    for name in ("records_fts_ai", "records_fts_ad", "records_fts_au"):
        c.execute(f"DROP TRIGGER {name}")
    c.execute("DROP TABLE records_fts")
    c.execute("UPDATE meta SET value = '1' WHERE key = 'version'")
    c.commit()
    c.close()


def _meta(path: Path) -> dict[str, str]:
    c = sqlite3.connect(str(path / "memento.python.sqlite"))
    try:
        return dict(c.execute("SELECT key, value FROM meta").fetchall())
    finally:
        c.close()


def test_python_store_is_version_2_with_the_index(tmp_path):
    p = tmp_path / "s"
    with memento.PythonEngine(p, dimension=4, model=None) as db:
        _fill(db)
    assert _meta(p)["version"] == "2"
    c = sqlite3.connect(str(p / "memento.python.sqlite"))
    names = {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
    c.close()
    assert {"records_fts", "records_fts_ai", "records_fts_ad", "records_fts_au"} <= names


def test_a_version_1_store_gets_its_index_when_opened_for_writing(tmp_path):
    p = tmp_path / "s"
    with memento.PythonEngine(p, dimension=4, model=None) as db:
        _fill(db)
        want = db.keyword_search("closing generators cafe")
    _make_v1(p)
    # A reader leaves the file as it is and indexes the texts itself.
    with memento.PythonEngine(p, read_only=True) as ro:
        assert ro.keyword_search("closing generators cafe") == want
        ro.check_integrity()
    assert _meta(p)["version"] == "1"
    with memento.PythonEngine(p) as db:
        assert db.keyword_search("closing generators cafe") == want
        db.check_integrity()
        db.update("cafe", texts="tea")
        assert db.keyword_search("cafe") == []
    assert _meta(p)["version"] == "2"


def test_a_reader_of_a_version_1_store_follows_the_writer(tmp_path):
    p = tmp_path / "s"
    with memento.PythonEngine(p, dimension=4, model=None) as db:
        _fill(db)
    _make_v1(p)
    ro = memento.PythonEngine(p, read_only=True)
    try:
        assert _ids(ro.keyword_search("cafe")) == ["cafe"]
        with memento.PythonEngine(p) as db:  # upgrades the store
            db.add("tea", np.ones(4, dtype=np.float32), texts="cafe tea")
            assert set(_ids(ro.keyword_search("cafe"))) == {"cafe", "tea"}
            db.delete("cafe")
            assert _ids(ro.keyword_search("cafe")) == ["tea"]
    finally:
        ro.close()


def test_a_newer_store_is_refused(tmp_path):
    p = tmp_path / "s"
    with memento.PythonEngine(p, dimension=4, model=None):
        pass
    c = sqlite3.connect(str(p / "memento.python.sqlite"))
    c.execute("UPDATE meta SET value = '3' WHERE key = 'version'")
    c.commit()
    c.close()
    with raises_memento(memento.IncompatibleError):
        memento.PythonEngine(p)


def test_integrity_check_finds_a_stale_index(tmp_path):
    p = tmp_path / "s"
    with memento.PythonEngine(p, dimension=4, model=None) as db:
        _fill(db)
        db.check_integrity()
    # A text changed behind the index's back (the trigger dropped for it).
    c = sqlite3.connect(str(p / "memento.python.sqlite"))
    c.execute("DROP TRIGGER records_fts_au")
    c.execute("UPDATE records SET text = 'something else entirely' WHERE id = 'rust'")
    c.commit()
    c.close()
    with memento.PythonEngine(p) as db:
        with raises_memento(memento.CorruptedError, match="keyword index"):
            db.check_integrity()


def test_the_fallback_core_interface():
    """The core method the package calls (SPEC.md), on the fallback core directly."""
    with tempfile.TemporaryDirectory() as tmp:
        from memento._pure import PythonCore

        core = PythonCore(tmp + "/s", 2, None, None)
        try:
            core.add_arrays(["a", "b"], np.ones((2, 2), dtype=np.float32), ["red apples", None], [json.dumps({"c": 1}), None], False)
            (hits,) = core.keyword_search(["apple"], 5, None)
            assert [(h[0], h[3], h[4]) for h in hits] == [("a", "red apples", '{"c": 1}')]
            assert hits[0][1] == -hits[0][2]
            assert core.keyword_search(["apple", "pear"], 5, json.dumps({"c": 2})) == [[], []]
        finally:
            core.close()


def test_keyword_module_exports():
    assert _keyword.HYBRID_CANDIDATES == 50 and _keyword.DEFAULT_RRF_K == 60.0 and _keyword.DEFAULT_ALPHA == 0.5
