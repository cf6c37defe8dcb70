"""Bad inputs, each with the exception it must raise, for both engines. Every exception is a
subclass of memento.MementoError with a message, and no Rust panic ever reaches Python
(``helpers.raises_memento`` checks all three)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import memento
from helpers import raises_memento

DIM = 4
OK = [1.0, 2.0, 3.0, 4.0]
E = memento


class Obj:
    pass


# (case id, action on an open cosine store of dimension 4 holding "a", expected exception)
CASES = [
    # dtypes
    ("object-array", lambda e: e.add("x", np.array([None, 1, 2, 3], dtype=object)), E.InvalidArgumentError),
    ("object-array-2d", lambda e: e.add(["x"], np.array([[Obj(), 1, 2, 3]], dtype=object)), E.InvalidArgumentError),
    ("str-array", lambda e: e.add("x", np.array(["a", "b", "c", "d"])), E.InvalidArgumentError),
    ("bytes-array", lambda e: e.add("x", np.array([b"a", b"b", b"c", b"d"])), E.InvalidArgumentError),
    ("complex-array", lambda e: e.add("x", np.array([1, 2, 3, 4], dtype=np.complex64)), E.InvalidArgumentError),
    ("str-list", lambda e: e.add("x", ["a", "b", "c", "d"]), E.InvalidArgumentError),
    ("none-in-list", lambda e: e.add("x", [1.0, None, 3.0, 4.0]), E.InvalidArgumentError),
    ("vector-is-dict", lambda e: e.add("x", {"a": 1}), E.InvalidArgumentError),
    ("vector-is-str", lambda e: e.add("x", "1234"), E.InvalidArgumentError),
    ("search-str-array", lambda e: e.search(np.array(["a", "b", "c", "d"]), k=1), E.InvalidArgumentError),
    ("search-object-array", lambda e: e.search(np.array([None] * 4, dtype=object), k=1), E.InvalidArgumentError),
    # shapes and dimensions
    ("dim-short", lambda e: e.add("x", [1.0, 2.0, 3.0]), E.DimensionMismatchError),
    ("dim-long", lambda e: e.add("x", np.ones(5, dtype=np.float32)), E.DimensionMismatchError),
    ("dim-2d", lambda e: e.add(["x", "y"], np.ones((2, 5), dtype=np.float32)), E.DimensionMismatchError),
    ("dim-empty-vector", lambda e: e.add("x", []), (E.DimensionMismatchError, E.InvalidArgumentError)),
    ("search-dim", lambda e: e.search(np.ones(3, dtype=np.float32), k=1), E.DimensionMismatchError),
    ("search-dim-2d", lambda e: e.search(np.ones((2, 8), dtype=np.float32), k=1), E.DimensionMismatchError),
    ("search-3d", lambda e: e.search(np.ones((1, 1, 4), dtype=np.float32), k=1), E.InvalidArgumentError),
    ("add-3d", lambda e: e.add(["x"], np.ones((1, 1, 4), dtype=np.float32)), E.InvalidArgumentError),
    ("add-scalar", lambda e: e.add("x", np.float32(1.0)), (E.InvalidArgumentError, E.DimensionMismatchError)),
    ("ragged", lambda e: e.add(["x", "y"], [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]]), (E.InvalidArgumentError, E.DimensionMismatchError)),
    ("ragged-search", lambda e: e.search([[1.0, 2.0, 3.0, 4.0], [1.0]], k=1), (E.InvalidArgumentError, E.DimensionMismatchError)),
    ("ids-vectors-count", lambda e: e.add(["x", "y"], np.ones((3, 4), dtype=np.float32)), E.InvalidArgumentError),
    ("ids-texts-count", lambda e: e.add(["x", "y"], np.ones((2, 4), dtype=np.float32), texts=["t"]), E.InvalidArgumentError),
    ("ids-metadatas-count", lambda e: e.add(["x"], np.ones((1, 4), dtype=np.float32), metadatas=[{}, {}]), E.InvalidArgumentError),
    ("one-id-2d-vectors", lambda e: e.add("x", np.ones((2, 4), dtype=np.float32)), E.InvalidArgumentError),
    # values
    ("nan", lambda e: e.add("x", [1.0, float("nan"), 0.0, 0.0]), E.InvalidVectorError),
    ("inf", lambda e: e.add("x", np.array([1, np.inf, 0, 0], dtype=np.float32)), E.InvalidVectorError),
    ("-inf-in-batch", lambda e: e.add(["x", "y"], np.array([[1, 0, 0, 0], [0, -np.inf, 0, 0]], dtype=np.float32)), E.InvalidVectorError),
    ("float64-overflow", lambda e: e.add("x", np.array([1e300, 1, 1, 1], dtype=np.float64)), E.InvalidVectorError),
    ("zero-vector-cosine", lambda e: e.add("x", np.zeros(4, dtype=np.float32)), E.InvalidVectorError),
    ("nan-query", lambda e: e.search([float("nan")] * 4, k=1), E.InvalidVectorError),
    ("zero-query-cosine", lambda e: e.search(np.zeros(4), k=1), E.InvalidVectorError),
    ("nan-upsert", lambda e: e.upsert("a", [float("nan")] * 4), E.InvalidVectorError),
    # ids
    ("empty-id", lambda e: e.add("", OK), E.InvalidArgumentError),
    ("empty-id-in-batch", lambda e: e.add(["x", ""], [OK, OK]), E.InvalidArgumentError),
    ("id-too-long", lambda e: e.add("x" * 1025, OK), E.InvalidArgumentError),
    ("id-not-str", lambda e: e.add(123, OK), E.InvalidArgumentError),
    ("id-none-in-list", lambda e: e.add(["x", None], [OK, OK]), E.InvalidArgumentError),
    ("id-lone-surrogate", lambda e: e.add("\ud800", OK), E.InvalidArgumentError),
    ("duplicate-id", lambda e: e.add("a", OK), E.DuplicateIdError),
    ("duplicate-id-in-batch", lambda e: e.add(["x", "x"], [OK, OK]), E.DuplicateIdError),
    # texts and metadata
    ("metadata-not-dict", lambda e: e.add("x", OK, metadatas=[1, 2]), E.InvalidArgumentError),
    ("metadata-list-for-one", lambda e: e.add(["x"], [OK], metadatas=["not a dict"]), E.InvalidArgumentError),
    ("metadata-not-json", lambda e: e.add("x", OK, metadatas={"k": Obj()}), E.InvalidArgumentError),
    ("metadata-nan", lambda e: e.add("x", OK, metadatas={"k": float("nan")}), E.InvalidArgumentError),
    ("metadata-nul-key", lambda e: e.add("x", OK, metadatas={"a\0b": 1}), E.InvalidArgumentError),
    ("metadata-int-key", lambda e: e.add("x", OK, metadatas={1: 1}), E.InvalidArgumentError),
    ("text-not-str", lambda e: e.add("x", OK, texts=42), E.InvalidArgumentError),
    ("text-lone-surrogate", lambda e: e.add("x", OK, texts="a\udc00b"), E.InvalidArgumentError),
    ("nothing-to-add", lambda e: e.add("x"), E.InvalidArgumentError),
    # k
    ("k-zero", lambda e: e.search(OK, k=0), E.InvalidArgumentError),
    ("k-negative", lambda e: e.search(OK, k=-1), E.InvalidArgumentError),
    ("k-huge-negative", lambda e: e.search(OK, k=-(2**70)), E.InvalidArgumentError),
    ("k-not-int", lambda e: e.search(OK, k="3"), E.InvalidArgumentError),
    ("k-float", lambda e: e.search(OK, k=1.5), E.InvalidArgumentError),
    # filters
    ("where-unknown-op", lambda e: e.search(OK, k=1, where={"$foo": 1}), E.InvalidFilterError),
    ("where-unknown-cmp", lambda e: e.search(OK, k=1, where={"a": {"$like": "x"}}), E.InvalidFilterError),
    ("where-empty-in", lambda e: e.search(OK, k=1, where={"a": {"$in": []}}), E.InvalidFilterError),
    ("where-null", lambda e: e.search(OK, k=1, where={"a": None}), E.InvalidFilterError),
    ("where-list-operand", lambda e: e.search(OK, k=1, where={"a": {"$gt": [1]}}), E.InvalidFilterError),
    ("where-and-not-list", lambda e: e.search(OK, k=1, where={"$and": {"a": 1}}), E.InvalidFilterError),
    ("where-or-empty", lambda e: e.search(OK, k=1, where={"$or": []}), E.InvalidFilterError),
    ("where-empty-contains", lambda e: e.search(OK, k=1, where={"$contains": ""}), E.InvalidFilterError),
    ("where-contains-not-str", lambda e: e.search(OK, k=1, where={"$contains": 3}), E.InvalidFilterError),
    ("where-not-a-dict", lambda e: e.search(OK, k=1, where=["a"]), E.InvalidFilterError),
    ("where-not-json", lambda e: e.search(OK, k=1, where={"a": Obj()}), E.InvalidFilterError),
    ("where-too-deep", lambda e: e.search(OK, k=1, where=_deep(100)), E.InvalidFilterError),
    ("get-bad-where", lambda e: e.get(where={"$foo": 1}), E.InvalidFilterError),
    ("delete-bad-where", lambda e: e.delete(where={"a": {"$in": []}}), E.InvalidFilterError),
    # text without a model
    ("remember-no-model", lambda e: e.remember("some text"), E.NoModelError),
    ("recall-no-model", lambda e: e.recall("some text"), E.NoModelError),
    ("add-texts-no-model", lambda e: e.add("x", texts="some text"), E.NoModelError),
]


def _deep(n):
    w = {"a": 1}
    for _ in range(n):
        w = {"$and": [w]}
    return w


@pytest.mark.parametrize("action,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(open_engine, action, expected):
    e = open_engine(dimension=DIM, metric="cosine")
    e.add("a", OK, texts="text a", metadatas={"a": 1})
    with raises_memento(expected):
        action(e)
    # nothing was written, and the engine still works
    assert e.count() == 1
    assert e.get("x") is None
    assert [h.id for h in e.search(OK, k=5)] == ["a"]
    m = e.get("a")
    assert m.text == "text a" and m.metadata == {"a": 1}


def test_a_rust_panic_becomes_a_memento_error():
    """The native module's test hook panics inside Rust (with the GIL released, as an engine
    call does): Python sees MementoError("internal error: ..."), never pyo3's PanicException,
    and the module keeps working."""
    import memento._native as native

    with raises_memento(E.MementoError, match="internal error"):
        native._panic("deliberate panic for the test")
    assert native.content_id("x") == memento.content_id("x")


# ------------------------------------------------------------------------------------------
# Not errors


def test_unknown_ids_are_not_errors(open_engine):
    e = open_engine(dimension=DIM)
    e.add("a", OK)
    assert e.get("nope") is None
    assert e.get(["nope"]) == []
    assert e.delete("nope") == 0
    assert e.delete(["nope", "nada"]) == 0
    assert e.count() == 1


def test_zero_vector_is_fine_under_l2_and_dot(open_engine):
    for metric in ("l2", "dot"):
        e = open_engine(dimension=DIM, metric=metric)
        e.add("z", np.zeros(4, dtype=np.float32))
        assert [h.id for h in e.search(np.zeros(4), k=1)] == ["z"]


def _views(rng):
    base = rng.standard_normal((12, 8)).astype(np.float32)
    return {
        "column-stride": base[:6, ::2],  # (6, 4), rows not contiguous
        "row-stride": base[::2, :4],  # (6, 4), every other row
        "fortran": np.asfortranarray(base[:6, :4]),
        "reversed": base[:6, :4][::-1],
        "transposed": np.ascontiguousarray(base[:4, :6]).T,
        "big-endian": base[:6, :4].astype(">f4"),
        "float16": base[:6, :4].astype(np.float16),
        "int64": (base[:6, :4] * 10).astype(np.int64),
        "read-only": _readonly(base[:6, :4].copy()),
        "unaligned": _unaligned(base[:6, :4]),
    }


def _readonly(a):
    a.flags.writeable = False
    return a


def _unaligned(a):
    buf = np.zeros(a.size * 4 + 1, dtype=np.uint8)
    u = np.frombuffer(buf.data, dtype=np.float32, count=a.size, offset=1).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned
    return u


@pytest.mark.parametrize("view", ["column-stride", "row-stride", "fortran", "reversed", "transposed", "big-endian", "float16", "int64", "read-only", "unaligned"])
def test_non_contiguous_and_other_layouts_are_converted(open_engine, rng, view):
    """The Python layer converts what is not a C-contiguous float32 array (SPEC.md: "the
    Python layer converts lists / other dtypes before calling"): the result must be exactly
    the contiguous float32 copy's."""
    a = _views(rng)[view]
    want = np.ascontiguousarray(a, dtype=np.float32)
    e = open_engine(dimension=DIM, metric="l2")
    ids = [f"r{i}" for i in range(len(a))]
    e.add(ids, a)
    np.testing.assert_array_equal(np.stack([m.vector for m in e.get(ids)]), want)
    # queries too: a strided 1-D row and the 2-D view itself
    hits = e.search(a[2], k=1)
    assert hits[0].id == "r2" and hits[0].distance == pytest.approx(0.0, abs=1e-6)
    res = e.search(a, k=1)
    assert [r[0].id for r in res] == ids
    # the caller's array is untouched
    np.testing.assert_array_equal(np.ascontiguousarray(a, dtype=np.float32), want)


# ------------------------------------------------------------------------------------------
# Opening


OPEN_CASES = [
    ("no-dim-no-model", dict(model=None), E.InvalidArgumentError),
    ("dim-zero", dict(dimension=0, model=None), E.InvalidArgumentError),
    ("dim-negative", dict(dimension=-3, model=None), E.InvalidArgumentError),
    ("dim-huge", dict(dimension=70_000, model=None), E.InvalidArgumentError),
    ("dim-not-int", dict(dimension="4", model=None), E.InvalidArgumentError),
    ("bad-metric", dict(dimension=4, metric="manhattan", model=None), E.InvalidArgumentError),
    ("bad-durability", dict(dimension=4, model=None, durability="sometimes"), E.InvalidArgumentError),
    ("missing-model-dir", dict(model="/nonexistent/model/dir"), E.ModelError),
]


@pytest.mark.parametrize("kwargs,expected", [c[1:] for c in OPEN_CASES], ids=[c[0] for c in OPEN_CASES])
def test_bad_open(engine_cls, store_path, kwargs, expected):
    with raises_memento(expected):
        engine_cls(str(store_path), **kwargs)
    # and the lock is not left held: a good open works
    with engine_cls(str(store_path), dimension=DIM, model=None) as e:
        assert e.count() == 0


def test_open_on_a_file(engine_cls, tmp_path):
    f = tmp_path / "file"
    f.write_text("not a store")
    with raises_memento(E.MementoError):
        engine_cls(str(f), dimension=DIM, model=None)


def test_open_garbage_store(engine_cls, open_engine, store_path):
    e = open_engine(store_path, dimension=DIM, model=None)
    e.add("a", OK)
    e.close()
    for f in store_path.iterdir():
        if f.is_file() and f.name != "LOCK" and f.stat().st_size > 0:
            f.write_bytes(b"\xde\xad\xbe\xef" * 64)
    with raises_memento((E.CorruptedError, E.IncompatibleError)):
        engine_cls(str(store_path), model=None)


@pytest.mark.parametrize("kwargs", [dict(dimension=5), dict(metric="l2"), dict(dimension=5, metric="dot")])
def test_reopen_incompatible(open_engine, engine_cls, store_path, kwargs):
    open_engine(store_path, dimension=DIM, metric="cosine").close()
    with raises_memento(E.IncompatibleError):
        engine_cls(str(store_path), model=None, **{"dimension": DIM, **kwargs})


# ------------------------------------------------------------------------------------------
# A closed engine


CLOSED_CALLS = {
    "add": lambda e: e.add("x", OK),
    "upsert": lambda e: e.upsert("x", OK),
    "delete": lambda e: e.delete("a"),
    "delete-where": lambda e: e.delete(where={"a": 1}),
    "get": lambda e: e.get("a"),
    "get-where": lambda e: e.get(where={"a": 1}),
    "search": lambda e: e.search(OK, k=1),
    "count": lambda e: e.count(),
    "checkpoint": lambda e: e.checkpoint(),
    "remember": lambda e: e.remember("text"),
    "recall": lambda e: e.recall("text"),
}


@pytest.mark.parametrize("call", list(CLOSED_CALLS))
def test_closed_engine(open_engine, call):
    e = open_engine(dimension=DIM)
    e.add("a", OK, metadatas={"a": 1})
    e.close()
    with raises_memento(E.ClosedError):
        CLOSED_CALLS[call](e)
    e.close()  # still idempotent


def test_closed_via_context_manager_then_reenter(engine_cls, store_path):
    e = engine_cls(str(store_path), dimension=DIM, model=None)
    with e:
        pass
    with raises_memento(E.ClosedError):
        e.add("x", OK)


# ------------------------------------------------------------------------------------------
# A second writer


def test_second_writer_same_process(open_engine, engine_cls, store_path):
    e = open_engine(store_path, dimension=DIM)
    with raises_memento(E.LockedError, match=str(os.getpid())):
        engine_cls(str(store_path), model=None)
    e.add("a", OK)  # the first one is unaffected
    e.close()
    with engine_cls(str(store_path), model=None) as e2:
        assert e2.count() == 1


HOLDER = textwrap.dedent(
    """
    import sys, memento
    e = getattr(memento, sys.argv[1])(sys.argv[2], dimension=4, model=None)
    e.add("held", [1.0, 2.0, 3.0, 4.0])
    print("ready", flush=True)
    sys.stdin.readline()
    e.close()
    print("closed", flush=True)
    """
)


def _spawn_holder(engine_cls, path):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, engine_cls.__name__, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if line.strip() != "ready":
        p.kill()
        raise AssertionError(f"the holder did not start: {line!r} {p.stderr.read()}")
    return p


def test_second_writer_other_process(engine_cls, store_path):
    p = _spawn_holder(engine_cls, store_path)
    try:
        with raises_memento(E.LockedError, match=str(p.pid)):
            engine_cls(str(store_path), model=None)
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "closed"
        assert p.wait(timeout=60) == 0
        with engine_cls(str(store_path), model=None) as e:
            assert e.count() == 1 and e.get("held") is not None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_lock_dies_with_a_killed_holder(engine_cls, store_path):
    p = _spawn_holder(engine_cls, store_path)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=60)
    t = time.monotonic()
    with engine_cls(str(store_path), model=None) as e:  # no stale lock, no waiting
        assert e.count() == 1
    assert time.monotonic() - t < 5


def test_other_process_sees_locked(open_engine, engine_cls, store_path):
    open_engine(store_path, dimension=DIM)
    code = textwrap.dedent(
        f"""
        import memento
        try:
            memento.{engine_cls.__name__}({str(store_path)!r}, model=None)
            print("opened")
        except memento.LockedError as err:
            print("LockedError", isinstance(err, memento.MementoError))
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["LockedError", "True"], r.stdout + r.stderr


# ------------------------------------------------------------------------------------------
# Models


def test_text_store_with_another_model(open_engine, engine_cls, store_path, default_model, other_model):
    e = open_engine(store_path, model="default")
    e.remember("something to remember")
    e.close()
    with raises_memento(E.ModelMismatchError):
        engine_cls(str(store_path), model=str(other_model))
    # and the right model still opens it
    with engine_cls(str(store_path), model="default") as e2:
        assert e2.count() == 1


def test_raw_store_opened_with_a_model(open_engine, engine_cls, store_path, default_model):
    open_engine(store_path, dimension=384, model=None).close()
    # a model given explicitly (its directory) is refused: the store has none
    with raises_memento(E.ModelMismatchError):
        engine_cls(str(store_path), model=str(default_model))
    # model="default" (the default argument) follows the store: it opens as a raw-vector store
    with engine_cls(str(store_path), model="default") as e:
        assert e.model_id is None and e.dimension == 384
        with raises_memento(E.NoModelError):
            e.recall("anything")


def test_model_with_wrong_dimension(engine_cls, store_path, default_model):
    with raises_memento(E.InvalidArgumentError):
        engine_cls(str(store_path), dimension=16, model=str(default_model))


def test_bad_text_inputs_with_a_model(open_engine, default_model):
    e = open_engine(model="default")
    for call, expected in [
        (lambda: e.remember(42), E.InvalidArgumentError),
        (lambda: e.remember(None), E.InvalidArgumentError),
        (lambda: e.remember("ok", metadatas="not a dict"), E.InvalidArgumentError),
        (lambda: e.remember("ok", ids=""), E.InvalidArgumentError),
        (lambda: e.recall("q", k=0), E.InvalidArgumentError),
        (lambda: e.recall(["a list", None]), E.InvalidArgumentError),
        (lambda: e.recall(42), E.InvalidArgumentError),
        (lambda: e.recall("q", where={"$bad": 1}), E.InvalidFilterError),
        (lambda: e.remember("bad \ud800 text"), E.InvalidArgumentError),
    ]:
        with raises_memento(expected):
            call()
    assert e.count() == 0
    # the empty text is a text (it embeds to the [CLS][SEP] vector)
    i = e.remember("")
    assert i == memento.content_id("")


# ------------------------------------------------------------------------------------------
# Anything at all: a typed error or success, never another exception or a panic

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ids=junk, vectors=junk | st.builds(lambda n: np.full(n, 0.5), st.integers(0, 6)), texts=junk, metadatas=junk, q=junk, k=junk, where=junk)
def test_junk_never_panics(open_engine, ids, vectors, texts, metadatas, q, k, where):
    e = getattr(open_engine, "_junk_engine", None)
    if e is None:
        e = open_engine._junk_engine = open_engine(dimension=DIM, metric="cosine")
    for call in (
        lambda: e.add(ids, vectors, texts=texts, metadatas=metadatas),
        lambda: e.upsert(ids, vectors, texts=texts, metadatas=metadatas),
        lambda: e.search(q, k=k, where=where),
        lambda: e.get(ids),
        lambda: e.get(where=where),
        lambda: e.delete(ids),
        lambda: e.remember(texts, metadatas=metadatas),
    ):
        try:
            call()
        except memento.MementoError as err:
            assert str(err)
        except BaseException as err:  # noqa: BLE001 - anything else is the failure
            raise AssertionError(f"{type(err).__module__}.{type(err).__name__} is not a MementoError: {err!r}") from err
    e.count()


def test_native_add_arrays_with_rows_of_no_columns_is_a_dimension_error(tmp_path) -> None:
    """The native core's add_arrays, called directly with an (n, 0) array (the Python layer
    refuses its shape first): the engine's DimensionMismatch, not an internal error."""
    import memento._native as native

    e = native.NativeEngine(str(tmp_path / "s"), 3, "cosine", None, "sync")
    try:
        with pytest.raises(memento.DimensionMismatchError) as err:
            e.add_arrays(["a", "b"], np.zeros((2, 0), dtype=np.float32), None, None, False)
        assert (err.value.expected, err.value.got) == (3, 0)
        assert e.count() == 0
    finally:
        e.close()
