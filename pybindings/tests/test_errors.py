"""Errors end to end: an exception carries its fields as attributes, given by the engine that
raised it (the native module builds the exception with the Rust error's fields, the pure-Python
engine with its own: nothing is parsed from a message, so both engines must give them), and the
native engine's SQLite mirror errors map to a class by their kind: damage is a CorruptedError, a
mirror of a newer schema is an IncompatibleError (the pure-Python engine's newer format is too)."""

from __future__ import annotations

import os
import pickle
import sqlite3
import struct
import zlib
from pathlib import Path

import memento
from memento import errors as E
from helpers import raises_memento

DIM = 4
OK = [1.0, 0.0, 0.0, 0.0]
#: memento::MIRROR_FILE and memento::files::VEC of a Rust store, memento._store.PY_STORE_FILE of a
#: Python one.
RUST_MIRROR = "memento.mirror.sqlite"
RUST_VEC = "memento.vec"
PY_STORE = "memento.python.sqlite"


def _same_after_pickling(e: E.MementoError) -> None:
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is type(e) and str(e2) == str(e) and e2.__dict__ == e.__dict__


def test_a_class_parses_nothing_from_its_message():
    # The fields come from whoever raises the exception; a message alone gives none.
    e = E.LockedError("The store /s is already open by process 12.")
    assert (e.pid, e.path) == (None, None)
    d = E.DimensionMismatchError("The vector has 3 dimensions but the store holds 4-dimensional vectors.")
    assert (d.expected, d.got) == (None, None)
    c = E.CorruptedError("/s/f is corrupted at byte offset 7: bad.", file="/s/f", offset=7, reason="bad")
    assert (c.file, c.offset, c.reason) == ("/s/f", 7, "bad")


def test_dimension_mismatch_fields(open_engine, store_path):
    e = open_engine(store_path, dimension=DIM)
    with raises_memento(E.DimensionMismatchError) as info:
        e.add("a", [1.0, 0.0, 0.0])
    assert (info.value.expected, info.value.got) == (DIM, 3)
    with raises_memento(E.DimensionMismatchError) as info:
        e.search([1.0] * 6, k=1)
    assert (info.value.expected, info.value.got) == (DIM, 6)
    _same_after_pickling(info.value)


def test_locked_fields(open_engine, engine_cls, store_path):
    open_engine(store_path, dimension=DIM)
    with raises_memento(E.LockedError) as info:
        engine_cls(str(store_path), model=None)
    assert info.value.pid == os.getpid()
    assert Path(info.value.path) == store_path
    _same_after_pickling(info.value)


def test_id_fields(open_engine, store_path):
    e = open_engine(store_path, dimension=DIM)
    odd = 'a "quoted"\nid é'
    e.add(odd, OK)
    with raises_memento(E.DuplicateIdError) as info:
        e.add(odd, OK)
    assert (info.value.id, info.value.in_batch) == (odd, False)
    with raises_memento(E.DuplicateIdError) as info:
        e.add(["x", "x"], [OK, OK])
    assert (info.value.id, info.value.in_batch) == ("x", True)
    assert "given twice in one batch" in str(info.value)
    with raises_memento(E.NotFoundError) as info:
        e.update(odd + "!", metadatas={"k": 1})
    assert info.value.id == odd + "!"
    _same_after_pickling(info.value)


def _damage_the_store(engine_kind: str, path: Path) -> None:
    """Damage that each engine reports at open as Corrupted: both superblock copies of a Rust
    store's vector file (copy B is at 4096), a Python store's meta table."""
    if engine_kind == "rust":
        f = path / RUST_VEC
        b = bytearray(f.read_bytes())
        for copy in (0, 4096):
            b[copy + 100] ^= 0xFF
        f.write_bytes(b)
    else:
        c = sqlite3.connect(path / PY_STORE, isolation_level=None)
        c.execute("UPDATE meta SET value = 'something else' WHERE key = 'format'")
        c.close()


def test_corrupted_fields(open_engine, engine_cls, engine_kind, store_path):
    open_engine(store_path, dimension=DIM).close()
    _damage_the_store(engine_kind, store_path)
    with raises_memento(E.CorruptedError) as info:
        engine_cls(str(store_path), model=None)
    e = info.value
    assert Path(e.file) == store_path / (RUST_VEC if engine_kind == "rust" else PY_STORE)
    assert e.offset == 0
    assert e.reason and str(e) == f"{e.file} is corrupted at byte offset {e.offset}: {e.reason}."
    _same_after_pickling(e)


def test_model_mismatch_fields(open_engine, engine_cls, store_path, default_model):
    open_engine(store_path, dimension=384).close()
    with raises_memento(E.ModelMismatchError) as info:
        engine_cls(str(store_path), model=str(default_model))
    assert info.value.store == "none (a raw-vector store)"
    assert info.value.given.startswith("all-minilm-l6-v2 (384-d, sha256 ")
    assert f"the embedding model {info.value.store}, not {info.value.given};" in str(info.value)


# ------------------------------------------------------------------------------------------
# The Rust engine's SQLite mirror


def _edit_mirror(path: Path, sql: str) -> None:
    """Runs ``sql`` on a closed store's mirror with plain SQLite, then seals every page's
    trailer as the engine's VFS does (FORMAT.md §6.1: the page number, u32 LE, then the CRC-32
    of the page up to there), so that the edit is not mistaken for a page that fails its check."""
    c = sqlite3.connect(path, isolation_level=None)
    c.executescript(sql)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    b = bytearray(path.read_bytes())
    ps = 4096
    assert len(b) % ps == 0 and b[20] == 8, "a mirror has 4 KiB pages with 8 reserved bytes"
    for i in range(len(b) // ps):
        page = memoryview(b)[i * ps : (i + 1) * ps]
        struct.pack_into("<I", page, ps - 8, i + 1)
        struct.pack_into("<I", page, ps - 4, zlib.crc32(page[: ps - 4]))
    path.write_bytes(b)


def _rust_store_with_metadata(path: Path) -> None:
    e = memento.RustEngine(str(path), dimension=DIM, model=None)
    e.add([f"r{i}" for i in range(50)], [[1.0, float(i), 0.0, 0.0] for i in range(50)], metadatas=[{"i": i} for i in range(50)])
    e.close()


def test_a_damaged_mirror_is_a_corrupted_error(store_path):
    _rust_store_with_metadata(store_path)
    # A metadata index that lacks every row: SQLite finds nothing wrong, the engine's check does.
    _edit_mirror(store_path / RUST_MIRROR, "DELETE FROM field_values;")
    with memento.RustEngine(str(store_path), model=None) as e:
        with raises_memento(E.CorruptedError) as info:
            e._core.check_integrity()
    err = info.value
    assert "the mirror database is damaged" in str(err) and "metadata index" in err.reason, str(err)
    assert (err.file, err.offset) == (None, None)  # SQLite does not say where
    assert not isinstance(err, E.IncompatibleError)


def test_a_mirror_of_a_newer_schema_is_incompatible_not_corrupted(store_path):
    _rust_store_with_metadata(store_path)
    _edit_mirror(store_path / RUST_MIRROR, "PRAGMA user_version = 99;")
    before = (store_path / RUST_MIRROR).read_bytes()
    with raises_memento(E.IncompatibleError) as info:
        memento.RustEngine(str(store_path), model=None)
    assert not isinstance(info.value, E.CorruptedError)
    assert "newer version" in str(info.value), str(info.value)
    assert (store_path / RUST_MIRROR).read_bytes() == before, "a refused mirror is left alone"


def test_a_store_of_a_newer_format_is_incompatible_in_both_engines(open_engine, engine_cls, engine_kind, store_path):
    """The pure-Python engine's counterpart of the newer mirror: the same class."""
    if engine_kind == "rust":
        _rust_store_with_metadata(store_path)
        _edit_mirror(store_path / RUST_MIRROR, "PRAGMA user_version = 99;")
    else:
        open_engine(store_path, dimension=DIM).close()
        c = sqlite3.connect(store_path / PY_STORE, isolation_level=None)
        c.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
        c.close()
    with raises_memento(E.IncompatibleError):
        engine_cls(str(store_path), model=None)
