"""Readers beside a writer, from Python (FORMAT.md §4.4): ``memento.Engine(path,
read_only=True)`` takes no lock and writes nothing, follows the writer's commits by itself, and
refuses writes with ReadOnlyError; on both engines. And the modes a new store is created with."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

import memento
from memento import InvalidArgumentError, LockedError, ReadOnlyError


def test_a_reader_follows_the_writer(engine_cls, tmp_path):
    path = tmp_path / "s"
    with engine_cls(path, dimension=2, model=None, metric="l2") as writer:
        writer.add("a", [1.0, 0.0], metadatas={"n": 1})
        with engine_cls(path, read_only=True) as reader:
            assert reader.count() == 1 and reader.get("a").metadata == {"n": 1}
            for i in range(20):
                writer.upsert(f"v{i}", [float(i), 1.0], texts=f"t{i}")
                assert reader.count() == i + 2
                assert reader.search([float(i), 1.0], k=1)[0].id == f"v{i}"
            writer.checkpoint()
            writer.delete("a")
            assert "a" not in reader and len(reader.get(where={"n": 1})) == 0
            assert reader.stats()["count"] == 20


def test_a_reader_refuses_writes_and_a_second_writer_is_refused(engine_cls, tmp_path):
    path = tmp_path / "s"
    with engine_cls(path, dimension=2, model=None) as writer:
        writer.add("a", [1.0, 0.0])
        reader = engine_cls(path, read_only=True)
        for call in (
            lambda: reader.add("b", [0.0, 1.0]),
            lambda: reader.upsert("a", [0.0, 1.0]),
            lambda: reader.update("a", metadatas={"x": 1}),
            lambda: reader.delete("a"),
            lambda: reader.checkpoint(),
        ):
            with pytest.raises(ReadOnlyError) as info:
                call()
            assert info.value.path == str(path) and "read-only" in str(info.value)
        with pytest.raises(LockedError):
            engine_cls(path)
        reader.close()
        assert writer.get("a") is not None and writer.count() == 1


def test_a_reader_needs_a_store_and_creates_nothing(engine_cls, tmp_path):
    with pytest.raises(InvalidArgumentError, match="no store"):
        engine_cls(tmp_path / "none", read_only=True)
    assert not (tmp_path / "none").exists()
    with pytest.raises(InvalidArgumentError, match="read_only"):
        engine_cls(tmp_path / "s", dimension=2, model=None, read_only="yes")


READER = textwrap.dedent(
    """
    import sys, time, memento
    cls = getattr(memento, sys.argv[1])
    seen = 0
    with cls(sys.argv[2], read_only=True) as r:
        deadline = time.monotonic() + 3
        checked = 0
        while time.monotonic() < deadline:
            ms = r.get()
            ids = sorted(int(m.id[1:]) for m in ms)
            if ids:
                # A window of consecutive records (the upsert and the delete of a step are two commits).
                assert ids == list(range(ids[-1] - len(ids) + 1, ids[-1] + 1)) and len(ids) <= 6, ids
                assert all(m.vector[0] == int(m.id[1:]) for m in ms)
                assert ids[-1] >= seen
                seen = ids[-1]
            checked += 1
    print(checked, seen)
    """
)


@pytest.mark.parametrize("kind", ["RustEngine", "PythonEngine"])
def test_reader_processes_see_only_committed_states(kind, tmp_path):
    path = tmp_path / "s"
    cls = getattr(memento, kind)
    writer = cls(path, dimension=2, model=None, metric="l2", durability="buffered")
    writer.upsert("r0", [0.0, 1.0])
    readers = [subprocess.Popen([sys.executable, "-c", READER, kind, str(path)], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    i = 1
    end = time.monotonic() + 3.2
    while time.monotonic() < end:
        writer.upsert(f"r{i}", [float(i), 1.0])
        if i >= 5:
            writer.delete(f"r{i - 5}")  # two commits: a reader may see 6 records for a moment
        if i % 50 == 0:
            writer.checkpoint()
        i += 1
    writer.close()
    for p in readers:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0, out
        checked, seen = map(int, out.split())
        assert checked > 10 and seen > 0, out


def _modes(d):
    return {f: stat.S_IMODE(os.stat(d / f).st_mode) for f in os.listdir(d)}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
@pytest.mark.parametrize("group, dir_mode, file_mode", [(False, 0o700, 0o600), (True, 0o770, 0o660)])
def test_a_new_store_is_private_unless_shared_with_the_group(engine_cls, tmp_path, group, dir_mode, file_mode):
    path = tmp_path / "a" / "s"
    with engine_cls(path, dimension=2, model=None, group_access=group) as db:
        db.add("a", [1.0, 0.0], texts="private words")
        modes = _modes(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == dir_mode
    assert modes and all(m == file_mode for m in modes.values()), {f: oct(m) for f, m in modes.items()}
