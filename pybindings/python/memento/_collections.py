"""``memento.Client``: named collections in one directory, each an ordinary store (FORMAT.md §8).

The same layout and protocol as the Rust ``memento::Collections`` (a root made by one is opened
by the other): the marker ``memento.collections``, the catalog lock ``CATALOG.lock`` (an
exclusive ``flock``) around create, delete and rename, one store per collection in
``<root>/<name>/``, a new store built under ``.<name>.new-<pid>`` and renamed into place, a
deleted one renamed to ``.deleted-<name>-<pid>-<nanos>`` before it is removed, and the leftovers
of a crash removed at the next open or operation.

::

    client = memento.Client("memento-data")
    notes = client.get_or_create_collection("notes")                 # a text store, default model
    vecs = client.create_collection("vectors", dimension=3, metric="l2")
    print([c.name for c in client.list_collections()])
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from ._store import COLLECTIONS_MARKER, PY_STORE_FILE, RUST_VEC_FILE, fspath
from .errors import (
    CollectionExistsError,
    CollectionInUseError,
    CollectionNotFoundError,
    IncompatibleError,
    InvalidArgumentError,
    MementoIOError,
)

__all__ = ["Client", "CollectionInfo", "check_collection_name"]

#: The marker's content: the layout version.
MARKER_TEXT: Final = "memento collections 1\n"
#: The catalog lock.
CATALOG_LOCK: Final = "CATALOG.lock"
#: Files whose presence makes a directory a store (either engine's).
_STORE_FILES: Final = (RUST_VEC_FILE, "memento.wal", "LOCK", PY_STORE_FILE)


def check_collection_name(name: object) -> str:
    """``name`` if it is a valid collection name (Chroma's rules: 3 to 512 characters of
    ``[A-Za-z0-9._-]``, starting and ending with a letter or digit, no ``..``, not an IPv4
    address), else InvalidArgumentError saying which rule it breaks."""
    if not isinstance(name, str):
        raise InvalidArgumentError(f"Invalid argument: a collection name must be a string, not {type(name).__name__}.")

    def bad(why: str) -> InvalidArgumentError:
        return InvalidArgumentError(f'Invalid argument: the collection name "{name}" {why}.')

    if not 3 <= len(name) <= 512:
        raise bad("must be 3 to 512 characters long")
    if not all(c.isascii() and (c.isalnum() or c in "._-") for c in name):
        raise bad("may hold only letters, digits, '.', '_' and '-'")
    if not (name[0].isalnum() and name[-1].isalnum()):
        raise bad("must start and end with a letter or a digit")
    if ".." in name:
        raise bad('must not contain ".."')
    parts = name.split(".")
    if len(parts) == 4 and all(p and p.isdigit() for p in parts):
        raise bad("must not be an IPv4 address")
    return name


def _is_leftover(entry: str) -> bool:
    return entry.startswith(".deleted-") or (entry.startswith(".") and ".new-" in entry)


def _io(what: str, e: OSError) -> MementoIOError:
    return MementoIOError(f"I/O error while {what}: {e}.", errno=e.errno)


def _sync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise _io(f"syncing the directory {d}", e) from None


@dataclass(frozen=True)
class CollectionInfo:
    """One collection as :meth:`Client.list_collections` finds it. ``dimension``, ``metric``,
    ``model`` (None: a raw-vector store) come from the store without opening it, ``count`` (live
    records) from a read-only look at it (None if that fails); all are None, and ``error`` says
    why, when the store cannot be read. ``engine``: "rust" or "python"."""

    name: str
    path: str
    dimension: int | None
    metric: str | None
    model: str | None
    count: int | None
    engine: str | None
    error: str | None = None


def _info(name: str, path: Path) -> CollectionInfo:
    if (path / RUST_VEC_FILE).exists():
        try:
            from . import _native
        except Exception as e:  # noqa: BLE001 - the native module is optional
            return CollectionInfo(name, str(path), None, None, None, None, "rust", f"the native module is not available: {e}")
        found = _native.peek(str(path))
        if found is None:
            return CollectionInfo(name, str(path), None, None, None, None, "rust", "its superblock cannot be read")
        count: int | None
        try:  # the count now (the superblock's is as of the last checkpoint), as a reader sees it
            from ._rust import RustEngine

            reader = RustEngine(str(path), model=None, create=False, read_only=True)
            try:
                count = int(reader.count())
            finally:
                reader.close()
        except Exception:  # noqa: BLE001 - a store a reader cannot open still lists
            count = None
        return CollectionInfo(name, str(path), int(found["dimension"]), str(found["metric"]), found["model_id"], count, "rust")
    db = path / PY_STORE_FILE
    if db.exists():
        try:
            conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                (count,) = conn.execute("SELECT COUNT(*) FROM records").fetchone()
            finally:
                conn.close()
            return CollectionInfo(name, str(path), int(meta["dimension"]), str(meta["metric"]), meta.get("model_id") or None, int(count), "python")
        except (sqlite3.Error, KeyError, ValueError) as e:
            return CollectionInfo(name, str(path), None, None, None, None, "python", f"its store cannot be read: {e}")
    return CollectionInfo(name, str(path), None, None, None, None, None, "there is no store in it")


class _Flock:
    """An exclusive ``flock`` on a file, created if missing (``blocking``: wait for it)."""

    def __init__(self, path: Path, blocking: bool) -> None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise _io(f"opening {path}", e) from None
        self._fh: IO[bytes] | None = os.fdopen(fd, "r+b", buffering=0)
        self.held_by: int | None = None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            text = self._fh.read(64).decode("ascii", "replace").strip()
            self.held_by = int(text) if text.isdigit() else 0
            self.release()
        except OSError as e:
            self.release()
            raise _io(f"locking {path}", e) from None

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> _Flock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Client:
    """A directory of collections (FORMAT.md §8), like Chroma's ``PersistentClient(path)``.

    Each collection is an ordinary store in ``path/<name>/`` with its own dimension, metric and
    model, opened as a :class:`memento.Engine` (``engine``: the engine class, by default
    ``memento.Engine``, which picks the Rust engine or the Python fallback). The directory is
    made a collections root if it is not one (a store directory is refused), and the leftovers
    of an interrupted create or delete are removed. Names follow Chroma's rules (3 to 512
    characters of ``[A-Za-z0-9._-]``, starting and ending with a letter or digit, no ``..``,
    not an IPv4 address; InvalidArgumentError otherwise).

    A process reading a collection (``read_only=True``) takes no lock, so deleting or renaming
    it cannot see that reader: close readers first.
    """

    def __init__(self, path: str | os.PathLike[str], *, engine: type | None = None) -> None:
        self._root = Path(fspath(path))
        if engine is None:
            from ._engine import Engine

            engine = Engine
        self._engine = engine
        root = self._root
        if not (root / COLLECTIONS_MARKER).exists():
            if root.is_dir() and any((root / f).exists() for f in _STORE_FILES):
                raise InvalidArgumentError(
                    f"Invalid argument: {root} is a store, not a directory of collections; give an empty or new directory for collections."
                )
            try:
                root.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as e:
                raise _io(f"creating the collections directory {root}", e) from None
            with self._catalog():
                if not (root / COLLECTIONS_MARKER).exists():
                    self._write_marker()
        self._check_marker()
        with self._catalog():
            self._remove_leftovers()

    # ---------------------------------------------------------------- the catalog

    @property
    def path(self) -> str:
        """The root directory."""
        return str(self._root)

    def _catalog(self) -> _Flock:
        return _Flock(self._root / CATALOG_LOCK, blocking=True)

    def _write_marker(self) -> None:
        tmp = self._root / f".{COLLECTIONS_MARKER}.new-{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, MARKER_TEXT.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self._root / COLLECTIONS_MARKER)
        except OSError as e:
            raise _io(f"writing the marker of {self._root}", e) from None
        _sync_dir(self._root)

    def _check_marker(self) -> None:
        marker = self._root / COLLECTIONS_MARKER
        try:
            text = marker.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise _io(f"reading {marker}", e) from None
        line = text.rstrip()
        if not line.startswith("memento collections "):
            raise InvalidArgumentError(f"Invalid argument: {marker} is not a collections marker.")
        version = line[len("memento collections ") :]
        if version != "1":
            raise IncompatibleError(
                f"The store cannot be opened this way: {self._root} is a directory of collections of layout version {version}, "
                "which this version of Memento does not read."
            )

    def leftovers(self) -> list[str]:
        """The leftovers of interrupted creates and deletes in the root, by name."""
        try:
            return sorted(e for e in os.listdir(self._root) if _is_leftover(e))
        except OSError as e:
            raise _io(f"listing {self._root}", e) from None

    def _remove_leftovers(self) -> None:
        found = self.leftovers()
        for entry in found:
            p = self._root / entry
            try:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                raise _io(f"removing the leftover {p}", e) from None
        if found:
            _sync_dir(self._root)

    def _path(self, name: object) -> Path:
        return self._root / check_collection_name(name)

    def _lock_store(self, name: str, path: Path) -> _Flock:
        lock = _Flock(path / "LOCK", blocking=False)
        if lock.held_by is not None:
            pid = lock.held_by
            who = f"process {pid} has it open" if pid else "a process has it open"
            raise CollectionInUseError(f'The collection "{name}" is in use: {who}; close it first.', name=name, pid=pid)
        return lock

    # ---------------------------------------------------------------- the operations

    def _open(self, path: Path, create: bool, kwargs: dict[str, Any]) -> Any:
        if "create" in kwargs:
            raise InvalidArgumentError("Invalid argument: create is not an option of a collection (use create_collection or get_collection).")
        return self._engine(path, create=create, **kwargs)

    def create_collection(self, name: str, **engine_kwargs: Any) -> Any:
        """Creates the collection ``name`` (``engine_kwargs``: those of :class:`memento.Engine`:
        ``dimension``, ``metric``, ``model``, ``durability``, ...) and returns it open.
        CollectionExistsError if it exists."""
        path = self._path(name)
        with self._catalog():
            self._remove_leftovers()
            if path.exists():
                raise CollectionExistsError(f'A collection named "{name}" already exists.', name=name)
            tmp = self._root / f".{name}.new-{os.getpid()}"
            try:
                self._open(tmp, True, engine_kwargs).close()
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            try:
                os.rename(tmp, path)
            except OSError as e:
                raise _io(f"renaming the new collection into place at {path}", e) from None
            _sync_dir(self._root)
            return self._open(path, False, engine_kwargs)

    def get_collection(self, name: str, **engine_kwargs: Any) -> Any:
        """Opens the collection ``name`` (``engine_kwargs`` as :class:`memento.Engine`'s, such as
        ``read_only=True``). CollectionNotFoundError if it does not exist."""
        path = self._path(name)
        if not path.is_dir():
            raise CollectionNotFoundError(f'There is no collection named "{name}".', name=name)
        return self._open(path, False, engine_kwargs)

    def get_or_create_collection(self, name: str, **engine_kwargs: Any) -> Any:
        """Opens the collection ``name``, creating it first if it does not exist."""
        if self._path(name).is_dir():
            return self.get_collection(name, **engine_kwargs)
        try:
            return self.create_collection(name, **engine_kwargs)
        except CollectionExistsError:
            return self.get_collection(name, **engine_kwargs)

    def list_collections(self) -> list[CollectionInfo]:
        """The collections, by name, each with what its store says of itself."""
        try:
            entries = sorted(os.listdir(self._root))
        except OSError as e:
            raise _io(f"listing {self._root}", e) from None
        out = []
        for entry in entries:
            try:
                check_collection_name(entry)
            except InvalidArgumentError:
                continue
            p = self._root / entry
            if p.is_dir():
                out.append(_info(entry, p))
        return out

    def delete_collection(self, name: str) -> None:
        """Deletes the collection ``name`` and frees its space. CollectionNotFoundError if it
        does not exist; CollectionInUseError if a process (this one or another) has it open for
        writing."""
        path = self._path(name)
        with self._catalog():
            self._remove_leftovers()
            if not path.is_dir():
                raise CollectionNotFoundError(f'There is no collection named "{name}".', name=name)
            with self._lock_store(name, path):
                gone = self._root / f".deleted-{name}-{os.getpid()}-{time.time_ns()}"
                try:
                    os.rename(path, gone)
                except OSError as e:
                    raise _io(f"renaming away the deleted collection {path}", e) from None
                _sync_dir(self._root)
                shutil.rmtree(gone, ignore_errors=True)

    def rename_collection(self, old: str, new: str) -> None:
        """Renames the collection ``old`` to ``new``. CollectionNotFoundError if ``old`` does not
        exist, CollectionExistsError if ``new`` does, CollectionInUseError if ``old`` is open for
        writing."""
        src, dst = self._path(old), self._path(new)
        with self._catalog():
            self._remove_leftovers()
            if not src.is_dir():
                raise CollectionNotFoundError(f'There is no collection named "{old}".', name=old)
            if dst.exists():
                raise CollectionExistsError(f'A collection named "{new}" already exists.', name=new)
            with self._lock_store(old, src):
                try:
                    os.rename(src, dst)
                except OSError as e:
                    raise _io(f"renaming the collection {src}", e) from None
                _sync_dir(self._root)

    def __repr__(self) -> str:
        return f"memento.Client({str(self._root)!r})"
