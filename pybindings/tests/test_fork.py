"""An engine belongs to the process that opened it (issue 13, item 1), in both engines.

A forked child inherits the parent's open engine: its memory, its open files (and with them
the ``flock`` on ``LOCK``, which belongs to the shared open file description) and its SQLite
connections, but not its threads. Writing through it interleaved the child's commits with the
parent's and lost the parent's acknowledged write. Now every operation in a child raises
:class:`memento.ForkedProcessError` (``opener_pid``, ``current_pid``), and a child that drops the
engine, is garbage collected or exits normally leaves the parent's files byte for byte as they
were.

Each test forks for real: from the test process (the child only reports through a pipe and
``os._exit``\\ s, so nothing of pytest runs in it), through ``multiprocessing``'s "fork" context,
or from a separate Python process (for a child that exits normally, running ``atexit`` and the
garbage collector).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import memento
from conftest import engine_class

TIMEOUT_S = 120


# ------------------------------------------------------------------------------------------
# Helpers


def snapshot(path: Path) -> dict[str, str]:
    """Every file of the store directory and the SHA-256 of its bytes."""
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(Path(path).iterdir()) if f.is_file()}


def in_child(fn, timeout_s: float = TIMEOUT_S) -> str:
    """Runs ``fn()`` in a forked child and returns what it reported: "ok" when it returned None,
    else its return value or the exception it raised, as text. The child ends with ``_exit``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then _exit whatever happens
        try:
            os.close(r)
            try:
                out = fn()
                msg = "ok" if out is None else str(out)
            except BaseException as e:  # noqa: BLE001 - everything is reported to the parent
                msg = f"the child got {type(e).__name__}: {e}"
            os.write(w, msg.encode("utf-8", "replace"))
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout_s
    try:
        os.set_blocking(r, False)
        with os.fdopen(r, "rb") as f:
            while True:
                b = f.read(65536)
                if b == b"":
                    break
                if b is None:
                    if time.monotonic() > deadline:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                        return "the child hung"
                    time.sleep(0.01)
                    continue
                chunks.append(b)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "the child hung"
            time.sleep(0.01)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    return b"".join(chunks).decode("utf-8", "replace")


def forked(call, parent: int) -> str | None:
    """None if ``call()`` raises ForkedProcessError naming ``parent`` as the opener and this
    process as the current one; else what happened instead."""
    try:
        call()
    except memento.ForkedProcessError as e:
        if not isinstance(e, memento.MementoError):
            return "ForkedProcessError is not a MementoError"
        if e.opener_pid != parent or e.current_pid != os.getpid():
            return f"ForkedProcessError with opener_pid={e.opener_pid!r}, current_pid={e.current_pid!r} (want {parent}, {os.getpid()})"
        if str(parent) not in str(e) or "fork" not in str(e):
            return f"the message does not say what happened: {e}"
        return None
    except BaseException as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return "it succeeded"


def check_all(calls: dict, parent: int) -> str | None:
    """None if every call raises ForkedProcessError; else which did not, and how."""
    bad = {name: r for name, c in calls.items() if (r := forked(c, parent)) is not None}
    return None if not bad else json.dumps(bad, indent=1)


def ids_of(db) -> list[str]:
    return [m.id for m in db.get()]


def assert_intact(cls, path: Path, want: dict[str, list[float]]) -> None:
    """Reopened, the store holds exactly ``want`` (id -> vector) and passes its integrity check."""
    db = cls(str(path), model=None)
    try:
        got = {m.id: m.vector.tolist() for m in db.get()}
        assert got == want, f"the reopened store holds {got}, not {want}"
        assert db.count() == len(want)
        db._core.check_integrity()
    finally:
        db.close()


# ------------------------------------------------------------------------------------------
# The reproduction


def test_a_forked_childs_add_is_refused_and_the_parents_write_survives(engine_cls, store_path):
    parent = os.getpid()
    db = engine_cls(str(store_path), dimension=2, metric="l2", model=None)
    db.add("base", [0.5, 0.5])
    report = in_child(lambda: forked(lambda: db.add("child", [1.0, 1.0]), parent))
    db.add("parent", [2.0, 2.0])
    db.close()
    assert_intact(engine_cls, store_path, {"base": [0.5, 0.5], "parent": [2.0, 2.0]})
    assert report == "ok", f"the child's add was not refused with ForkedProcessError: {report}"


def test_the_parent_keeps_writing_between_children(engine_cls, store_path):
    parent = os.getpid()
    db = engine_cls(str(store_path), dimension=2, metric="l2", model=None, durability="group")
    want = {"base": [0.5, 0.5]}
    db.add("base", [0.5, 0.5])
    for round_ in range(3):
        before = snapshot(store_path)
        report = in_child(
            lambda: check_all(
                {
                    "add": lambda: db.add("child", [1.0, 1.0]),
                    "upsert": lambda: db.upsert("base", [9.0, 9.0]),
                    "delete": lambda: db.delete("base"),
                    "checkpoint": db.checkpoint,
                    "close": db.close,
                },
                parent,
            )
        )
        assert report == "ok", f"round {round_}: {report}"
        assert snapshot(store_path) == before, f"round {round_}: the child changed the store's files"
        for i in range(10):
            v = [float(round_), float(i)]
            db.add(f"p{round_}-{i}", v)
            want[f"p{round_}-{i}"] = v
        if round_ == 1:
            db.checkpoint()
    assert db.count() == len(want)
    db.close()
    assert_intact(engine_cls, store_path, want)


# ------------------------------------------------------------------------------------------
# Every operation


def test_every_public_method_raises_in_a_child(engine_cls, store_path, default_model):
    parent = os.getpid()
    db = engine_cls(str(store_path), model="default")
    a = db.remember("Alice lives in Lyon.", ids="a")
    db.remember("Bob plays the cello.", ids="b", metadatas={"n": 1})
    assert db.recall("Who lives in Lyon?", k=1)[0].id == a  # the model is loaded in the parent
    v = db.get("a").vector
    core = db._core
    calls = {
        "add": lambda: db.add("x", v),
        "add texts": lambda: db.add("x", texts="Carol sings."),
        "add none": lambda: db.add([], np.zeros((0, 384), dtype=np.float32)),
        "upsert": lambda: db.upsert("a", v),
        "update texts": lambda: db.update("a", texts="Alice lives in Paris."),
        "update metadatas": lambda: db.update("a", metadatas={"n": 2}),
        "update nothing": lambda: db.update("a"),
        "delete": lambda: db.delete("a"),
        "delete none": lambda: db.delete([]),
        "delete where": lambda: db.delete(where={"n": 1}),
        "get": lambda: db.get("a"),
        "get none": lambda: db.get([]),
        "get all": lambda: db.get(),
        "get where": lambda: db.get(where={"n": 1}, limit=1),
        "search": lambda: db.search(v, k=1),
        "search none": lambda: db.search(np.zeros((0, 384), dtype=np.float32)),
        "search exact": lambda: db.search(v, k=1, exact=True),
        "search_arrays": lambda: db.search_arrays(v, k=1),
        "remember": lambda: db.remember("Carol sings."),
        "remember none": lambda: db.remember([]),
        "recall": lambda: db.recall("Who lives in Lyon?"),
        "embed": lambda: db.embed("Carol sings."),
        "embed none": lambda: db.embed([]),
        "count": db.count,
        "len": lambda: len(db),
        "contains": lambda: "a" in db,
        "getitem": lambda: db["a"],
        "iter": lambda: list(db),
        "stats": db.stats,
        "checkpoint": db.checkpoint,
        # the core itself, below the shared front: native count/stats must not panic
        "core count": core.count,
        "core stats": core.stats,
        "core get": lambda: core.get(["a"]),
        "core write": lambda: core.write([("delete", "a")]),
        "core check_integrity": core.check_integrity,
        "close": db.close,
        "core close": core.close,
    }

    def child():
        report = check_all(calls, parent)
        if report is not None:
            return report
        if db.closed:
            return "close() in the child marked the parent's engine closed"
        # The context manager's exit closes: refused too.
        return forked(lambda: db.__exit__(None, None, None), parent)

    before = snapshot(store_path)
    report = in_child(child)
    assert report == "ok", f"in the child, these did not raise ForkedProcessError: {report}"
    assert snapshot(store_path) == before, "the child changed the store's files"
    # The parent's engine works on.
    db.remember("Carol sings.", ids="c")
    assert db.recall("Who sings?", k=1)[0].id == "c"
    assert db.count() == 3
    db.close()
    db = engine_cls(str(store_path), model="default")
    assert sorted(ids_of(db)) == ["a", "b", "c"]
    db._core.check_integrity()
    db.close()


def test_reading_in_a_child_raises(engine_cls, store_path):
    parent = os.getpid()
    db = engine_cls(str(store_path), dimension=2, metric="l2", model=None)
    db.add(["a", "b"], [[0.0, 1.0], [1.0, 0.0]])
    report = in_child(
        lambda: check_all(
            {"get": lambda: db.get("a"), "search": lambda: db.search([0.0, 1.0], k=1), "count": db.count, "stats": db.stats, "len": lambda: len(db)},
            parent,
        )
    )
    assert report == "ok", report
    assert db.get("a").vector.tolist() == [0.0, 1.0]
    db.close()


def test_the_error_is_typed_and_pickles():
    e = memento.ForkedProcessError("This engine was opened by process 10; process 11 (a fork of it) cannot use it.", opener_pid=10, current_pid=11)
    assert isinstance(e, memento.MementoError) and isinstance(e, memento.errors.ForkedProcessError)
    assert (e.opener_pid, e.current_pid) == (10, 11)
    import pickle

    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is memento.ForkedProcessError and (e2.opener_pid, e2.current_pid) == (10, 11) and str(e2) == str(e)
    assert "ForkedProcessError" in memento.__all__ and "ForkedProcessError" in memento.errors.__all__


def test_a_lock_held_by_a_parent_thread_at_the_fork_does_not_hang_the_child(tmp_path):
    """The pure engine's core lock, held by another thread when the parent forks, stays held
    forever in the child (which lacks that thread): the process check comes before it."""
    import threading

    parent = os.getpid()
    db = memento.PythonEngine(str(tmp_path / "s"), dimension=2, model=None)
    db.add("a", [0.5, 0.5])
    held, release = threading.Event(), threading.Event()

    def hold():
        with db._core._mutex:
            held.set()
            release.wait()

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    try:
        report = in_child(lambda: check_all({"count": db.count, "core count": db._core.count, "core close": db._core.close}, parent), timeout_s=20)
    finally:
        release.set()
        t.join()
    assert report == "ok", report
    db.close()


# ------------------------------------------------------------------------------------------
# The child opening the store itself


def test_the_child_cannot_open_the_store_the_parent_holds(engine_cls, store_path):
    parent = os.getpid()
    db = engine_cls(str(store_path), dimension=2, model=None)
    db.add("a", [0.5, 0.5])

    def child():
        try:
            engine_cls(str(store_path), model=None)
        except memento.LockedError as e:
            return None if e.pid == parent else f"LockedError naming pid {e.pid}, not the parent {parent}"
        except BaseException as e:  # noqa: BLE001
            return f"{type(e).__name__}: {e}"
        return "the child opened the store the parent holds"

    before = snapshot(store_path)
    assert in_child(child) == "ok"
    assert snapshot(store_path) == before
    db.close()


def test_a_child_opens_its_own_text_store(engine_cls, tmp_path, default_model):
    """The parent's model (an ONNX Runtime session whose threads the child lacks) is not reused
    by a store the child opens itself: the child embeds, without hanging."""
    db = engine_cls(str(tmp_path / "parent"), model="default")
    db.remember("Alice lives in Lyon.", ids="a")
    assert db.recall("Who lives in Lyon?", k=1)[0].id == "a"

    def child():
        own = engine_cls(str(tmp_path / "child"), model="default")
        own.remember("Bob plays the cello.", ids="b")
        own.remember("Alice lives in Lyon.", ids="a")
        hit = own.recall("Who plays music?", k=1)[0].id
        own.close()
        return None if hit == "b" else f"recall found {hit}"

    assert in_child(child) == "ok"
    assert db.recall("Who lives in Lyon?", k=1)[0].id == "a"
    db.close()


# ------------------------------------------------------------------------------------------
# multiprocessing (fork context): an ordinary user's program

_INHERITED = None


def _pool_touch(args):
    vector = args
    _INHERITED.add("worker", vector)  # raises ForkedProcessError, pickled back to the parent


def _pool_read(_):
    try:
        _INHERITED.search([0.5, 0.5], k=1)
    except memento.ForkedProcessError as e:
        return ("forked", e.opener_pid, e.current_pid, os.getpid())
    return ("read", None, None, os.getpid())


def test_a_fork_pool_worker_gets_the_error_and_the_store_stays_intact(engine_cls, store_path):
    global _INHERITED
    parent = os.getpid()
    db = engine_cls(str(store_path), dimension=2, metric="l2", model=None)
    db.add("base", [0.5, 0.5])
    before = snapshot(store_path)
    _INHERITED = db
    try:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(2) as pool:
            with pytest.raises(memento.ForkedProcessError) as info:
                pool.apply(_pool_touch, ([1.0, 1.0],))
            reads = pool.map(_pool_read, range(4))
            pool.close()
            pool.join()  # the workers exit normally (their finalisers run)
    finally:
        _INHERITED = None
    assert info.value.opener_pid == parent and info.value.current_pid != parent
    for kind, opener, current, worker in reads:
        assert (kind, opener, current) == ("forked", parent, worker)
    assert snapshot(store_path) == before, "a worker changed the store's files"
    db.add("parent", [2.0, 2.0])
    db.close()
    assert_intact(engine_cls, store_path, {"base": [0.5, 0.5], "parent": [2.0, 2.0]})


# ------------------------------------------------------------------------------------------
# A child that exits normally (atexit, garbage collection, interpreter shutdown)

NORMAL_EXIT = r"""
import gc, hashlib, json, os, sys
from pathlib import Path
import memento

kind, path, how, touch = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
cls = memento.RustEngine if kind == "rust" else memento.PythonEngine

def snapshot():
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(Path(path).iterdir()) if f.is_file()}

db = cls(path, dimension=2, metric="l2", model=None)
db.add("base", [0.5, 0.5])
db.add("more", [0.25, 0.75])  # the pure engine's -wal file now holds uncheckpointed frames
before = snapshot()
pid = os.fork()
if pid == 0:
    if touch == "add":
        try:
            db.add("child", [1.0, 1.0])
        except memento.ForkedProcessError:
            pass
    if how == "gc":      # the child drops the engine and collects it
        del db
        gc.collect()
    elif how == "with":  # the context manager's close raises; the exception ends the child
        with db:
            pass
    sys.exit(0)          # "exit": interpreter shutdown collects it
_, status = os.waitpid(pid, 0)
after = snapshot()
db.add("parent", [2.0, 2.0])
db.close()
db = cls(path, model=None)
print(json.dumps({
    "status": status,
    "changed": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)),
    "records": {m.id: m.vector.tolist() for m in db.get()},
}))
db._core.check_integrity()
db.close()
"""


@pytest.mark.parametrize("touch", ["add", "none"])
@pytest.mark.parametrize("how", ["exit", "gc", "with"])
def test_a_child_that_exits_normally_leaves_the_store_untouched(engine_kind, tmp_path, how, touch):
    """The child tries an add (refused) or touches nothing, then ends: by interpreter shutdown,
    after collecting the engine itself, or by the exception of ``with db:``'s close. Before the
    fix the pure engine's collected core checkpointed the parent's WAL (all three files
    changed) even when the child did nothing."""
    engine_class(engine_kind)  # the native module must import
    path = tmp_path / "store"
    env = dict(os.environ)
    env.pop("MEMENTO_RUST", None)
    r = subprocess.run([sys.executable, "-c", NORMAL_EXIT, engine_kind, str(path), how, touch], capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["changed"] == [], f"the child's exit changed these files of the parent's store: {out['changed']}"
    assert out["records"] == {"base": [0.5, 0.5], "more": [0.25, 0.75], "parent": [2.0, 2.0]}
    expected_status = 0 if how != "with" else 1 << 8  # an uncaught ForkedProcessError exits 1
    assert out["status"] == expected_status, r.stderr


def test_forked_messages_agree(open_both):
    """Both engines refuse a child with the same message (but for the pids)."""
    parent = os.getpid()
    msgs = {}
    for kind, opener in open_both.items():
        db = opener(dimension=2)

        def child(db=db):
            try:
                db.count()
            except memento.ForkedProcessError as e:
                return str(e).replace(str(os.getpid()), "<child>")
            return "no error"

        msgs[kind] = in_child(child).replace(str(parent), "<parent>")
    assert msgs["rust"] == msgs["python"], msgs
    assert "<parent>" in msgs["rust"] and "<child>" in msgs["rust"]
