"""The pure-Python engine: numpy + sqlite3 (+ onnxruntime and tokenizers for text), with the
API, results and errors of the Rust engine. Used when the native module cannot be imported or
``MEMENTO_RUST=0``, and always available as :class:`PythonEngine`.

A store is a directory holding:

* ``memento.python.sqlite``: one SQLite database in WAL mode: a ``meta`` table (format version,
  dimension, metric, the model's id, dimension and SHA-256), a ``records`` table (an
  insertion sequence, the id, the vector as little-endian float32, the text, the metadata as
  JSON), and ``records_fts``, the keyword index: an FTS5 table with the records as its
  external content, kept in step by triggers (format version 2; :mod:`memento._keyword`).
  Every write is one transaction, synced before it returns (``durability="sync"`` or
  ``"group"``: ``synchronous=FULL``; ``"buffered"``: ``synchronous=NORMAL``, which survives a
  process crash but maybe not a power loss).
* ``LOCK``: held with an exclusive ``flock`` while the store is open and holding the holder's
  pid, like the Rust engine's: a second opener gets :class:`~memento.errors.LockedError` at
  once.

This is not the Rust engine's format: each engine opens only its own stores (the other's is
refused with :class:`~memento.errors.IncompatibleError`).

The vectors are held in memory in one float32 matrix, in insertion order, and searched by brute
force (:mod:`memento.vector_ops`); texts and metadata are held in memory too, and filters are
evaluated on them (:mod:`memento._filter`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import numpy.typing as npt

from . import _limits
from . import vector_ops as vo
from ._embedder import ModelIdentity, PyEmbedder, model_dir
from ._engine import Core, Engine, merge_metadata
from ._fork import leak
from ._ids import content_id
from ._keyword import FTS_TOKENIZER, HYBRID_CANDIDATES, fts_query, fuse, keyword_order
from ._filter import Predicate, compile_filter_json
from ._store import (
    GRAPH_DEFAULTS,
    PY_STORE_FILE,
    RUST_VEC_FILE,
    StoreInfo,
    check_dim,
    check_durability,
    check_graph,
    fspath,
    refuse_collections_root,
    resolve_metric,
    resolve_model,
)
from .base import GraphArg, _hit_arrays
from .errors import (
    ClosedError,
    CorruptedError,
    DimensionMismatchError,
    DuplicateIdError,
    ForkedProcessError,
    IncompatibleError,
    InvalidArgumentError,
    InvalidVectorError,
    LockedError,
    MementoError,
    MementoIOError,
    ModelError,
    ModelMismatchError,
    NoModelError,
    NotFoundError,
    PoisonedError,
    ReadOnlyError,
    _forked_message,
    _NO_MODEL_MESSAGE,
)

__all__ = ["PythonEngine", "PythonCore", "content_id", "FORMAT_VERSION"]

#: The Python store's format version (the ``meta`` table's ``version``). Version 2 added the
#: keyword index (the FTS5 table ``records_fts`` over ``records`` and its triggers); a version 1
#: store gets it when first opened for writing.
FORMAT_VERSION: Final = 2
#: The keyword index: an external-content FTS5 table over ``records`` (its rowid is ``seq``),
#: kept in step by triggers in the same transaction as each write.
_FTS_TABLE: Final = "records_fts"
_FTS_SCHEMA: Final = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {_FTS_TABLE} USING fts5(text, content='records', content_rowid='seq', tokenize='{FTS_TOKENIZER}')",
    f"""CREATE TRIGGER IF NOT EXISTS {_FTS_TABLE}_ai AFTER INSERT ON records BEGIN
        INSERT INTO {_FTS_TABLE}(rowid, text) VALUES (new.seq, new.text);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS {_FTS_TABLE}_ad AFTER DELETE ON records BEGIN
        INSERT INTO {_FTS_TABLE}({_FTS_TABLE}, rowid, text) VALUES ('delete', old.seq, old.text);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS {_FTS_TABLE}_au AFTER UPDATE OF seq, text ON records BEGIN
        INSERT INTO {_FTS_TABLE}({_FTS_TABLE}, rowid, text) VALUES ('delete', old.seq, old.text);
        INSERT INTO {_FTS_TABLE}(rowid, text) VALUES (new.seq, new.text);
    END""",
)
#: A reader of a version 1 store (which it cannot change) keeps its keyword index in a
#: temporary table of its own connection, filled from the records each time it reads them.
_READER_FTS: Final = "temp.memento_reader_fts"
_FORMAT_NAME: Final = "memento-python"
_LOCK_FILE: Final = "LOCK"

_Hit = tuple[str, float, "str | None", "str | None"]
#: A hit of keyword search or hybrid recall: (id, distance, score, text, metadata JSON).
_ScoredHit = tuple[str, float, float, "str | None", "str | None"]
_Row = tuple[str, npt.NDArray[np.float32], "str | None", "str | None"]


# ------------------------------------------------------------------------------------------
# The lock


class _StoreLock:
    """An exclusive lock on ``dir/LOCK`` that records the holder's pid: ``flock`` (POSIX), or a
    byte-range lock far past the pid (Windows). Released when closed or when the process dies."""

    _WIN_OFFSET: Final = 1 << 30

    def __init__(self, directory: Path) -> None:
        self.path = directory / _LOCK_FILE
        try:
            _prepare_file(self.path)
            fd = os.open(self.path, os.O_RDWR)
        except OSError as e:
            raise MementoIOError(f"I/O error while taking the store's lock: {e}.") from None
        self._fh: IO[bytes] | None = os.fdopen(fd, "r+b", buffering=0)
        try:
            held = not self._try_lock()
        except OSError as e:
            self._fh.close()
            self._fh = None
            raise MementoIOError(f"I/O error while taking the store's lock: {e}.") from None
        if held:
            try:
                self._fh.seek(0)
                text = self._fh.read(64).decode("ascii", "replace").strip()
                pid = int(text) if text.isdigit() else 0
            except (OSError, ValueError):
                pid = 0
            self._fh.close()
            self._fh = None
            if pid:
                msg = f"The store {directory} is already open by process {pid}."
            else:
                msg = f"The store {directory} is already open by another process."
            raise LockedError(msg, path=str(directory), pid=pid)
        try:
            self._fh.seek(0)
            self._fh.truncate(0)
            self._fh.write(f"{os.getpid()}\n".encode())
        except OSError as e:
            self.release()
            raise MementoIOError(f"I/O error while taking the store's lock: {e}.") from None

    def _try_lock(self) -> bool:
        assert self._fh is not None
        if sys.platform == "win32":  # pragma: no cover - not run here
            import msvcrt

            self._fh.seek(self._WIN_OFFSET)
            try:
                msvcrt.locking(self._fh.fileno(), msvcrt.LK_NBLCK, 1)
            except OSError:
                return False
            return True
        import fcntl

        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()  # closing the file releases the lock
            except OSError:
                pass


# ------------------------------------------------------------------------------------------
# Embedders, shared by the engines of one process per model directory


_EMBEDDERS: dict[str, PyEmbedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    # A parent thread may have held the lock at the fork. (The embedders themselves reset
    # their ONNX Runtime sessions: memento._embedder.)
    global _EMBEDDERS_LOCK
    _EMBEDDERS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _embedder_for(model: str) -> PyEmbedder:
    d = model_dir() if model == "default" else Path(model)
    key = os.path.realpath(d)
    with _EMBEDDERS_LOCK:
        e = _EMBEDDERS.get(key)
        if e is not None:
            # Still the same model? (A manifest replaced on disk is another model.)
            try:
                same = e.manifest == type(e.manifest).load(d)
            except ModelError:
                same = False
            if same:
                return e
        e = PyEmbedder(d)
        _EMBEDDERS[key] = e
        return e


def _describe(m: ModelIdentity | None) -> str:
    return "none (a raw-vector store)" if m is None else m.describe()


# ------------------------------------------------------------------------------------------
# The core


def _make_dirs(directory: Path, mode: int) -> None:
    """Creates ``directory`` and its missing parents with ``mode`` exactly (whatever the umask):
    a store is private to its owner unless made for its group (FORMAT.md §4.4)."""
    missing = []
    p = directory
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=mode)
        except FileExistsError:
            continue
        os.chmod(d, mode)


def _prepare_file(path: Path) -> None:
    """Creates ``path`` empty if it is missing, with its directory's read and write bits
    (``0700`` → ``0600``): SQLite would make a database file world-readable."""
    mode = path.parent.stat().st_mode & 0o666
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return
    try:
        if hasattr(os, "fchmod"):  # POSIX: the umask may have taken bits away
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


class PythonCore:
    """The pure-Python engine's core: the interface of ``memento._native.NativeEngine`` (see
    SPEC.md), over SQLite and numpy. Thread-safe (one lock around every call).

    Args:
        path: The store directory (created with its parents when ``create``).
        dim: The dimension; needed to create a raw-vector store, checked otherwise.
        metric: "cosine", "dot", "l2", or None (the store's, cosine for a new one).
        model: None (no model), "default" (the store's model, see ``_store.resolve_model``), or
            a model directory.
        durability: "sync", "group" or "buffered".
        create: Create the store if it does not exist.
        page_size: The Rust engine's page size for a new store (None: 64 KiB). This engine has
            no pages, but it accepts and refuses the same sizes and dimensions
            (:func:`memento._limits.layout_error`), so that a program behaves alike on both.
        graph: The Rust engine's graph index parameters (see ``memento.Engine``): checked as
            the Rust engine checks them and reported by ``graph_info``, but this engine has no
            graph (it always scores every record in float32).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        dim: int | None = None,
        metric: str | None = None,
        model: str | os.PathLike[str] | None = "default",
        durability: str = "sync",
        create: bool = True,
        page_size: int | None = None,
        read_only: bool = False,
        group_access: bool = False,
        graph: GraphArg = None,
    ) -> None:
        #: The process that opened the store: every operation checks it first.
        self._opener_pid = os.getpid()
        self._closed = True
        self._lock_obj: _StoreLock | None = None
        self._conn: sqlite3.Connection | None = None
        self._mutex = threading.RLock()
        self._poisoned: str | None = None
        p = fspath(path)
        for name, flag in (("create", create), ("read_only", read_only), ("group_access", group_access)):
            if not isinstance(flag, bool):
                raise InvalidArgumentError(f"Invalid argument: {name} must be True or False, not {flag!r}.")
        self._read_only = read_only
        self._data_version: int | None = None
        #: Records deleted or replaced since this engine last compacted (compact()'s "dropped").
        self._dropped = 0
        dim = check_dim(dim)
        self._page_size = _limits.check_page_size(page_size)
        params = check_graph(graph)
        #: The graph parameters given (reported by graph_info; this engine has no graph).
        self._graph_params = dict(params) if isinstance(params, dict) else dict(GRAPH_DEFAULTS)
        durability = check_durability(durability)
        if metric is not None:
            vo.check_metric(metric)
        directory = Path(p)
        self._dir = directory
        refuse_collections_root(directory)
        db_path = directory / PY_STORE_FILE
        if (directory / RUST_VEC_FILE).exists():
            raise IncompatibleError(
                f"The store cannot be opened this way: {directory} holds a store of the Rust engine ({RUST_VEC_FILE}), "
                "which the Python engine cannot read; open it with memento.RustEngine."
            )
        if directory.exists() and not directory.is_dir():
            raise MementoIOError(f"I/O error while creating the store directory {directory}: it exists and is not a directory.")
        if not db_path.exists() and (not create or read_only):
            raise InvalidArgumentError(f"Invalid argument: there is no store at {directory}.")
        if not read_only:
            try:
                _make_dirs(directory, 0o770 if group_access else 0o700)
                _prepare_file(db_path)
            except OSError as e:
                raise MementoIOError(f"I/O error while creating the store directory {directory}: {e}.") from None
            # A reader takes no lock (FORMAT.md §4.4: readers beside one writer).
            self._lock_obj = _StoreLock(directory)
        try:
            self._open(db_path, dim, metric, model, durability, create)
        except BaseException:
            self._release()
            raise
        self._closed = False

    # ---------------------------------------------------------------- opening

    def _sql_error(self, e: sqlite3.Error, doing: str) -> MementoError:
        msg = str(e)
        if isinstance(e, sqlite3.DatabaseError) and ("malformed" in msg or "not a database" in msg or "corrupt" in msg):
            return _corrupted(self._dir / PY_STORE_FILE, msg)
        return MementoIOError(f"I/O error while {doing}: {msg}.")

    def _open(self, db_path: Path, dim: int | None, metric: str | None, model: Any, durability: str, create: bool) -> None:
        new = not db_path.exists() or db_path.stat().st_size == 0
        #: The keyword index's table (``_upgrade``).
        self._fts: str = _FTS_TABLE
        try:
            if self._read_only:
                conn = sqlite3.connect(f"{db_path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise self._sql_error(e, f"opening {db_path}") from None
        self._conn = conn
        try:
            if not self._read_only:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {'NORMAL' if durability == 'buffered' else 'FULL'}")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as e:
            raise self._sql_error(e, f"opening {db_path}") from None
        existing: StoreInfo | None = None
        stored_model: ModelIdentity | None = None
        if "meta" in tables:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("format") != _FORMAT_NAME:
                raise _corrupted(db_path, "it is not a store of the Python engine")
            try:
                version = int(meta.get("version", "0"))
                sdim = int(meta["dimension"])
                smetric = meta["metric"]
            except (KeyError, ValueError):
                raise _corrupted(db_path, "its meta table is incomplete") from None
            if version > FORMAT_VERSION:
                raise IncompatibleError(
                    f"The store cannot be opened this way: it was written in format version {version} of the Python engine, "
                    f"and this version reads up to {FORMAT_VERSION}."
                )
            if smetric not in vo.METRICS or "records" not in tables:
                raise _corrupted(db_path, "its meta table is not valid")
            if meta.get("model_id"):
                stored_model = ModelIdentity(meta["model_id"], int(meta.get("model_dim", sdim)), meta.get("model_sha256", ""))
            existing = StoreInfo(sdim, smetric, stored_model.id if stored_model else None)
        elif not create:
            raise InvalidArgumentError(f"Invalid argument: there is no store at {self._dir}.")
        model_spec = resolve_model(model, dim, existing)
        metric_res = resolve_metric(metric, existing)
        embedder = _embedder_for(model_spec) if model_spec is not None else None
        given = embedder.identity if embedder is not None else None
        if existing is None:
            if given is not None and dim is not None and dim != given.dim:
                raise InvalidArgumentError(f"Invalid argument: the model {given.id} makes {given.dim}-dimensional vectors, not {dim}.")
            if dim is None and given is None:
                raise InvalidArgumentError(f"Invalid argument: there is no store at {self._dir}; give a dimension or a model to create one.")
            sdim = dim if dim is not None else given.dim  # type: ignore[union-attr]
            bad_layout = _limits.layout_error(sdim, self._page_size if self._page_size is not None else _limits.DEFAULT_PAGE_SIZE)
            if bad_layout is not None:
                raise InvalidArgumentError(f"Invalid argument: {bad_layout}.")
            rows = {
                "format": _FORMAT_NAME,
                "version": str(FORMAT_VERSION),
                "dimension": str(sdim),
                "metric": metric_res,
                "model_id": given.id if given else "",
                "model_dim": str(given.dim if given else 0),
                "model_sha256": given.sha256 if given else "",
            }
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
                    "vector BLOB NOT NULL, text TEXT, metadata TEXT)"
                )
                for stmt in _FTS_SCHEMA:
                    conn.execute(stmt)
                conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(rows.items()))
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise self._sql_error(e, f"creating {db_path}") from None
            stored_model = given
            self._dim = sdim
            self._metric = metric_res
        else:
            if dim is not None and dim != existing.dimension:
                raise IncompatibleError(f"The store cannot be opened this way: the store holds {existing.dimension}-dimensional vectors, not {dim}.")
            if metric is not None and metric != existing.metric:
                raise IncompatibleError(f"The store cannot be opened this way: the store uses the {existing.metric} metric, not {metric}.")
            if given is not None and given != stored_model:
                store_desc = _describe(stored_model)
                given_desc = _describe(given)
                raise ModelMismatchError(
                    f"The store was written with the embedding model {store_desc}, not {given_desc}; vectors of different models cannot be mixed.",
                    store=store_desc,
                    given=given_desc,
                )
            self._dim = existing.dimension
            self._metric = existing.metric
            self._upgrade(conn, db_path, tables)
        self._model = stored_model
        self._embedder = embedder
        self._durability = durability
        self._load(new)

    def _upgrade(self, conn: sqlite3.Connection, db_path: Path, tables: set[str]) -> None:
        """A store of format version 1 (no keyword index), opened for writing, gets its keyword
        index, filled from the records (FTS5's 'rebuild'), and version 2, in one transaction.
        A reader leaves the file as it is and indexes the texts in its own temporary table
        (:data:`_READER_FTS`, filled in ``_load``)."""
        self._fts = _FTS_TABLE
        if _FTS_TABLE in tables:
            return
        if self._read_only:
            self._fts = _READER_FTS
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _FTS_SCHEMA:
                conn.execute(stmt)
            conn.execute(f"INSERT INTO {_FTS_TABLE}({_FTS_TABLE}) VALUES ('rebuild')")
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('version', ?)", (str(FORMAT_VERSION),))
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._sql_error(e, f"adding the keyword index to {db_path}") from None

    def _load_reader_fts(self) -> None:
        """A reader of a store without a keyword index: its temporary one, made again from the
        records."""
        assert self._conn is not None
        self._conn.execute(f"DROP TABLE IF EXISTS {_READER_FTS}")
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if _FTS_TABLE in tables:  # the writer has added the index meanwhile
            self._fts = _FTS_TABLE
            return
        self._conn.execute(f"CREATE VIRTUAL TABLE {_READER_FTS} USING fts5(text, tokenize='{FTS_TOKENIZER}')")
        self._conn.execute(f"INSERT INTO {_READER_FTS}(rowid, text) SELECT seq, text FROM main.records")
        self._fts = _READER_FTS

    def _load(self, new: bool) -> None:
        dim = self._dim
        self._ids: list[str | None] = []
        self._texts: list[str | None] = []
        self._metas: list[str | None] = []
        self._parsed: list[dict[str, Any] | None] = []
        self._row: dict[str, int] = {}
        cap = 1024
        self._vecs = np.zeros((cap, dim), dtype=np.float32)
        self._alive = np.zeros(cap, dtype=bool)
        self._n = 0
        if new:
            return
        assert self._conn is not None
        try:
            if self._fts != _FTS_TABLE:
                self._load_reader_fts()
            rows = self._conn.execute("SELECT id, vector, text, metadata FROM records ORDER BY seq").fetchall()
        except sqlite3.Error as e:
            raise self._sql_error(e, "reading the records") from None
        self._grow(len(rows))
        path = str(self._dir / PY_STORE_FILE)
        for i, (rid, blob, text, meta) in enumerate(rows):
            if not isinstance(blob, bytes) or len(blob) != 4 * dim:
                raise _corrupted(path, f"the vector of {rid!r} is not {dim} float32 values")
            self._vecs[i] = np.frombuffer(blob, dtype="<f4")
            self._ids.append(rid)
            self._texts.append(text)
            self._metas.append(meta)
            try:
                self._parsed.append(_parse_meta(meta))
            except ValueError:
                raise _corrupted(path, f"the metadata of {rid!r} is not a JSON object") from None
            self._row[rid] = i
        self._n = len(rows)
        self._alive[: self._n] = True

    def _grow(self, extra: int) -> None:
        need = self._n + extra
        cap = self._vecs.shape[0]
        if need <= cap:
            return
        new_cap = max(need, cap * 2)
        v = np.zeros((new_cap, self._dim), dtype=np.float32)
        v[: self._n] = self._vecs[: self._n]
        a = np.zeros(new_cap, dtype=bool)
        a[: self._n] = self._alive[: self._n]
        self._vecs, self._alive = v, a

    def _compact(self) -> None:
        """Drops deleted rows (keeping the order) once they outnumber the live ones."""
        dead = self._n - len(self._row)
        if dead <= 1024 or dead <= len(self._row):
            return
        keep = np.flatnonzero(self._alive[: self._n])
        self._vecs = np.ascontiguousarray(self._vecs[keep]) if keep.size else np.zeros((1024, self._dim), dtype=np.float32)
        self._alive = np.ones(self._vecs.shape[0], dtype=bool)
        self._alive[keep.size :] = False
        kl = keep.tolist()
        self._ids = [self._ids[i] for i in kl]
        self._texts = [self._texts[i] for i in kl]
        self._metas = [self._metas[i] for i in kl]
        self._parsed = [self._parsed[i] for i in kl]
        self._n = len(kl)
        self._row = {rid: i for i, rid in enumerate(self._ids) if rid is not None}

    def _leak_in_child(self) -> None:
        """In a forked child, collected: the SQLite connection and the model are leaked, never
        closed (see :mod:`memento._fork`); only the child's copy of the ``LOCK`` descriptor is
        closed, which releases nothing (the ``flock`` belongs to the open file description,
        which the parent's descriptor still holds)."""
        leak(getattr(self, "_conn", None))
        leak(getattr(self, "_embedder", None))
        lock, self._lock_obj = getattr(self, "_lock_obj", None), None
        if lock is not None:
            lock.release()

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        lock, self._lock_obj = self._lock_obj, None
        if lock is not None:
            lock.release()

    # ---------------------------------------------------------------- properties

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def model_id(self) -> str | None:
        return self._model.id if self._model else None

    @property
    def path(self) -> str:
        return str(self._dir)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_process(self) -> None:
        """ForkedProcessError unless this is the process that opened the store. First in every
        operation, before the mutex (which another parent thread may have held at the fork,
        and then holds forever in the child)."""
        current = os.getpid()
        if current != self._opener_pid:
            raise ForkedProcessError(_forked_message(self._opener_pid, current), opener_pid=self._opener_pid, current_pid=current)

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("The engine is closed.")
        if self._read_only:
            self._follow()

    def _follow(self) -> None:
        """A reader moves to the writer's latest commit: SQLite's ``data_version`` changes when
        another connection commits, and the records are then read again (one read
        transaction: a consistent state). Under the mutex."""
        assert self._conn is not None
        with self._mutex:
            try:
                version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
                if version != self._data_version:
                    self._load(False)
                    self._data_version = version
            except sqlite3.Error as e:
                raise self._sql_error(e, "following the store") from None

    def _check_writable(self) -> None:
        self._check()
        if self._read_only:
            raise ReadOnlyError(
                f"The store {self._dir} is open read-only here: writes go through the process that opens it for writing.",
                path=str(self._dir),
            )
        if self._poisoned is not None:
            raise PoisonedError(
                f"The store refuses writes after an earlier I/O failure ({self._poisoned}); close and reopen it to recover."
            )

    def _require_embedder(self) -> PyEmbedder:
        self._check()
        if self._embedder is None:
            raise NoModelError(_NO_MODEL_MESSAGE)
        return self._embedder

    # ---------------------------------------------------------------- writes

    def _commit(self, ops: list[tuple[Any, ...]], vectors: npt.NDArray[np.float32] | None) -> tuple[int, int]:
        """Plans and commits a batch, all or nothing.

        ``ops``: ("add" | "upsert", id, vector_index, text, metadata_json) where
        ``vector_index`` is a row of ``vectors`` (already validated and normalised), or
        ("delete", id), ("update_text", id, text), ("update_metadata", id, metadata_json),
        ("retext", id, vector_index, text): the record replaced by one with this text and vector
        and its metadata (last in insertion order, as the Rust engine does).
        Returns (records written, records deleted)."""
        plan, written, deleted = self._plan(ops)
        if not plan:
            return written, deleted
        self._apply(plan, vectors)
        return written, deleted

    def _plan(self, ops: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], int, int]:
        """The changes ``ops`` make to the store, checked against it (``_commit``'s ops; the
        first that fails raises): (the plan, records written, records deleted)."""
        self._check_writable()
        view: dict[str, bool] = {}

        def exists(i: str) -> bool:
            v = view.get(i)
            return (i in self._row) if v is None else v

        # The metadata of the ids this batch has written so far (for a retext).
        metas: dict[str, str | None] = {}

        def metadata_of(i: str) -> str | None:
            return metas[i] if i in metas else self._metas[self._row[i]]

        # Ids whose current record this batch put: an add of one is a duplicate within the batch.
        put_here: set[str] = set()

        plan: list[tuple[Any, ...]] = []
        written = deleted = 0
        for op in ops:
            kind, rid = op[0], op[1]
            if kind == "add" or kind == "upsert":
                if kind == "add" and exists(rid):
                    raise _duplicate(rid, rid in put_here)
                if exists(rid):
                    plan.append(("del", rid))
                    deleted += 1
                if op[4] is not None:
                    _check_meta_json(op[4])
                if op[3] is not None:
                    _check_text(op[3])
                plan.append(("put", rid, op[2], op[3], op[4]))
                view[rid] = True
                put_here.add(rid)
                metas[rid] = op[4]
                written += 1
            elif kind == "delete":
                if exists(rid):
                    plan.append(("del", rid))
                    view[rid] = False
                    put_here.discard(rid)
                    deleted += 1
            elif kind == "retext":
                _check_text(op[3])
                if not exists(rid):
                    raise NotFoundError(f"No record has the id {_rq(rid)}.", id=rid)
                meta = metadata_of(rid)
                plan.append(("del", rid))
                plan.append(("put", rid, op[2], op[3], meta))
                put_here.add(rid)
                metas[rid] = meta
                written += 1
            elif kind == "merge_metadata":
                # The patch first, then the store, then the merged metadata (as the Rust engine
                # plans it): keys of the patch replace the record's, a null removes one.
                _check_meta_json(op[2])
                if not exists(rid):
                    raise NotFoundError(f"No record has the id {_rq(rid)}.", id=rid)
                old = metadata_of(rid)
                merged = merge_metadata(None if old is None else json.loads(old), json.loads(op[2]))
                mj = json.dumps(merged, allow_nan=False, ensure_ascii=False)
                _check_meta_json(mj)
                metas[rid] = mj
                plan.append(("set_meta", rid, mj))
            elif kind in ("update_text", "update_metadata"):
                # The update's own arguments first, then the store (as the Rust engine plans).
                if kind == "update_metadata" and op[2] is not None:
                    _check_meta_json(op[2])
                elif kind == "update_text" and op[2] is not None:
                    _check_text(op[2])
                if not exists(rid):
                    raise NotFoundError(f"No record has the id {_rq(rid)}.", id=rid)
                if kind == "update_metadata" and op[2] is not None:
                    metas[rid] = op[2]
                elif kind == "update_metadata":
                    metas[rid] = None
                plan.append(("set_text" if kind == "update_text" else "set_meta", rid, op[2]))
            else:
                raise InvalidArgumentError(f"Invalid argument: unknown write operation {kind!r}.")
        return plan, written, deleted

    def _apply(self, plan: list[tuple[Any, ...]], vectors: npt.NDArray[np.float32] | None) -> None:
        """Commits a checked plan to the database, then to memory (all or nothing)."""
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            for p in plan:
                if p[0] == "put":
                    assert vectors is not None
                    conn.execute(
                        "INSERT INTO records (id, vector, text, metadata) VALUES (?, ?, ?, ?)",
                        (p[1], vo.to_bytes(vectors[p[2]]), p[3], p[4]),
                    )
                elif p[0] == "del":
                    conn.execute("DELETE FROM records WHERE id = ?", (p[1],))
                elif p[0] == "set_text":
                    conn.execute("UPDATE records SET text = ? WHERE id = ?", (p[2], p[1]))
                else:
                    conn.execute("UPDATE records SET metadata = ? WHERE id = ?", (p[2], p[1]))
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error as e2:
                self._poisoned = str(e2)
            raise self._sql_error(e, "committing a write") from None
        # Apply to memory (cannot fail).
        puts = sum(1 for p in plan if p[0] == "put")
        self._grow(puts)
        for p in plan:
            if p[0] == "put":
                assert vectors is not None
                r = self._n
                self._vecs[r] = vectors[p[2]]
                self._alive[r] = True
                self._ids.append(p[1])
                self._texts.append(p[3])
                self._metas.append(p[4])
                self._parsed.append(_parse_meta(p[4]))
                self._row[p[1]] = r
                self._n += 1
            elif p[0] == "del":
                r = self._row.pop(p[1])
                self._dropped += 1
                self._alive[r] = False
                self._ids[r] = None
                self._texts[r] = None
                self._metas[r] = None
                self._parsed[r] = None
            elif p[0] == "set_text":
                self._texts[self._row[p[1]]] = p[2]
            else:
                r = self._row[p[1]]
                self._metas[r] = p[2]
                self._parsed[r] = _parse_meta(p[2])
        self._compact()

    def _validated(self, vectors: npt.NDArray[np.float32], ops: list[tuple[Any, ...]]) -> npt.NDArray[np.float32]:
        """The vectors of ``ops`` checked in op order (so the first bad op's error is raised, as
        Rust plans a batch record by record: a duplicate id, its vector, its metadata and text)
        and prepared for storage."""
        if vectors.ndim != 2 or vectors.shape[1] != self._dim:
            got = int(vectors.shape[-1]) if vectors.ndim else 0
            raise DimensionMismatchError(
                f"The vector has {got} dimensions but the store holds {self._dim}-dimensional vectors.", expected=self._dim, got=got
            )
        finite: npt.NDArray[np.bool_] = np.asarray(np.isfinite(vectors).all(axis=1))
        if self._metric == "cosine":
            with np.errstate(over="ignore"):
                nonzero: npt.NDArray[np.bool_] = np.asarray((vectors != 0).any(axis=1))
        else:
            nonzero = np.ones(vectors.shape[0], dtype=bool)
        with np.errstate(over="ignore", invalid="ignore"):
            bounded = _limits.check_vector_norms(np.where(finite[:, None], vectors, 0), self._metric)
        if finite.all() and nonzero.all() and bounded.all():
            return vo.prepare(vectors, self._metric)
        # Report the first op that fails, in order, with duplicates checked first.
        seen: dict[str, bool] = {}
        put_here: set[str] = set()  # as in _plan
        for op in ops:
            kind, rid = op[0], op[1]
            if kind in ("add", "upsert"):
                present = seen.get(rid, rid in self._row)
                if kind == "add" and present:
                    raise _duplicate(rid, rid in put_here)
                vi = op[2]
                if not finite[vi]:
                    vo.check_finite(vectors[vi : vi + 1])
                if not nonzero[vi]:
                    raise InvalidVectorError("The vector is not valid: a zero vector has no direction, so it cannot be compared by cosine.")
                if not bounded[vi]:
                    raise _limits.norm_error(vectors[vi])
                # Then the rest of the record, as the Rust engine checks a batch record by record.
                if op[4] is not None:
                    _check_meta_json(op[4])
                if op[3] is not None:
                    _check_text(op[3])
                seen[rid] = True
                put_here.add(rid)
            elif kind == "delete":
                seen[rid] = False
                put_here.discard(rid)
            elif kind == "retext":
                put_here.add(rid)
        return vo.prepare(vectors, self._metric)  # unreachable in practice

    def add_arrays(
        self,
        ids: list[str],
        vectors: npt.NDArray[np.float32],
        texts: list[str | None] | None,
        metadatas_json: list[str | None] | None,
        upsert: bool,
    ) -> None:
        self._check_process()
        with self._mutex:
            ops = self._arrays_ops(ids, vectors, texts, metadatas_json, upsert)
            prepared = self._validated(vectors, ops)
            self._commit(ops, prepared)

    def check_arrays(
        self,
        ids: list[str],
        vectors: npt.NDArray[np.float32],
        texts: list[str | None] | None,
        metadatas_json: list[str | None] | None,
        upsert: bool,
    ) -> None:
        """Raises what ``add_arrays`` with these arguments would raise first; writes nothing."""
        self._check_process()
        with self._mutex:
            ops = self._arrays_ops(ids, vectors, texts, metadatas_json, upsert)
            self._validated(vectors, ops)
            self._plan(ops)

    def _arrays_ops(
        self,
        ids: list[str],
        vectors: npt.NDArray[np.float32],
        texts: list[str | None] | None,
        metadatas_json: list[str | None] | None,
        upsert: bool,
    ) -> list[tuple[Any, ...]]:
        """The write operations of ``add_arrays``' arguments, after checking their shapes."""
        self._check_writable()
        if not isinstance(vectors, np.ndarray) or vectors.dtype != np.float32 or vectors.ndim != 2 or not vectors.flags.c_contiguous:
            raise InvalidArgumentError("Invalid argument: vectors must be a 2-D C-contiguous float32 array.")
        n = len(ids)
        if vectors.shape[0] != n or (texts is not None and len(texts) != n) or (metadatas_json is not None and len(metadatas_json) != n):
            raise InvalidArgumentError("Invalid argument: ids, vectors, texts and metadatas must have the same length.")
        kind = "upsert" if upsert else "add"
        return [
            (kind, ids[i], i, texts[i] if texts is not None else None, metadatas_json[i] if metadatas_json is not None else None)
            for i in range(n)
        ]

    def write(self, ops: list[tuple[Any, ...]]) -> None:
        self._check_process()
        with self._mutex:
            self._check_writable()
            ops = self._retexts(ops)
            # Texts to embed: the add/upsert ops without a vector, and the text changes of a
            # text store (one batch, through the cache).
            to_embed = [i for i, op in enumerate(ops) if (op[0] in ("add", "upsert") and op[2] is None) or op[0] == "retext"]
            vec_rows: list[npt.NDArray[np.float32]] = []
            norm_ops: list[tuple[Any, ...]] = []
            embedded: npt.NDArray[np.float32] | None = None
            if to_embed:
                emb = self._require_embedder()
                texts = [ops[i][3] if ops[i][0] != "retext" else ops[i][2] for i in to_embed]
                if any(t is None for t in texts):
                    raise InvalidArgumentError("Invalid argument: a record without a vector needs a text to embed.")
                embedded = emb.embed_batch(texts)
            ei = 0
            for op in ops:
                if op[0] in ("add", "upsert") or op[0] == "retext":
                    if op[0] == "retext" or op[2] is None:
                        assert embedded is not None
                        v = embedded[ei]
                        ei += 1
                    else:
                        v = vo.as_vector(op[2], self._dim)
                    if op[0] == "retext":
                        norm_ops.append(("retext", op[1], len(vec_rows), op[2]))
                    else:
                        norm_ops.append((op[0], op[1], len(vec_rows), op[3], op[4]))
                    vec_rows.append(v)
                else:
                    norm_ops.append(tuple(op))
            vectors = np.ascontiguousarray(np.stack(vec_rows), dtype=np.float32) if vec_rows else None
            prepared = self._validated(vectors, norm_ops) if vectors is not None else None
            self._commit(norm_ops, prepared)

    def _retexts(self, ops: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """In a text store the vector is the embedding of the text: each ``update_text`` becomes
        a ``retext`` (embedded, then the record replaced), and removing a text is refused, as
        the Rust engine does (``WriteBatch::update_text``). A raw-vector store's stay as they are."""
        if self._model is None:
            return ops
        out: list[tuple[Any, ...]] = []
        for op in ops:
            if op[0] == "update_text":
                if op[2] is None:
                    raise InvalidArgumentError(
                        f"Invalid argument: the text of {_rq(op[1])} cannot be removed: in a text store a record's vector is the "
                        "embedding of its text (give it a new text, or delete the record)."
                    )
                out.append(("retext", op[1], op[2]))
            else:
                out.append(op)
        return out

    def delete(self, ids: list[str]) -> int:
        self._check_process()
        with self._mutex:
            return self._commit([("delete", i) for i in ids], None)[1]

    def delete_where(self, where_json: str) -> int:
        self._check_process()
        with self._mutex:
            self._check_writable()
            rows = self._matching(compile_filter_json(where_json))
            return self._commit([("delete", self._ids[r]) for r in rows.tolist()], None)[1]

    # ---------------------------------------------------------------- reads

    def _matching(self, pred: Predicate | None) -> npt.NDArray[np.intp]:
        """The live rows matching a filter, ascending (insertion order)."""
        live = np.flatnonzero(self._alive[: self._n])
        if pred is None:
            return live
        texts, parsed = self._texts, self._parsed
        return np.fromiter((r for r in live.tolist() if pred(texts[r], parsed[r])), dtype=np.intp)

    def _row_tuple(self, r: int) -> _Row:
        rid = self._ids[r]
        assert rid is not None
        return (rid, self._vecs[r].copy(), self._texts[r], self._metas[r])

    def get(self, ids: list[str]) -> list[_Row | None]:
        self._check_process()
        with self._mutex:
            self._check()
            out: list[_Row | None] = []
            for i in ids:
                r = self._row.get(i) if isinstance(i, str) else None
                out.append(None if r is None else self._row_tuple(r))
            return out

    def get_where(self, where_json: str, limit: int | None) -> list[_Row]:
        self._check_process()
        with self._mutex:
            self._check()
            rows = self._matching(compile_filter_json(where_json)).tolist()
            if limit is not None:
                rows = rows[:limit]
            return [self._row_tuple(r) for r in rows]

    def _search(self, queries: npt.NDArray[np.float32], k: int, where_json: str | None) -> list[list[_Hit]]:
        # The filter is checked first, then the queries' dimension, then their values: the Rust
        # engine's order, so that a call wrong in two ways fails with the same error.
        pred = compile_filter_json(where_json) if where_json is not None else None
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if q.ndim != 2 or q.shape[1] != self._dim:
            got = int(q.shape[-1])
            raise DimensionMismatchError(
                f"The vector has {got} dimensions but the store holds {self._dim}-dimensional vectors.", expected=self._dim, got=got
            )
        prepared = vo.prepare(q, self._metric)
        bounded = _limits.check_vector_norms(prepared, self._metric)
        if not bounded.all():
            raise _limits.norm_error(prepared[int(np.flatnonzero(~bounded)[0])])
        if pred is not None:
            cand: npt.NDArray[np.intp] | None = self._matching(pred)
        elif len(self._row) < self._n:
            cand = np.flatnonzero(self._alive[: self._n])
        else:
            cand = None
        res = vo.search(self._vecs[: self._n], prepared, k, self._metric, cand)
        out: list[list[_Hit]] = []
        for pos, dist in res:
            row: list[_Hit] = []
            for r, d in zip(pos.tolist(), dist.tolist()):
                rid = self._ids[r]
                assert rid is not None
                row.append((rid, d, self._texts[r], self._metas[r]))
            out.append(row)
        return out

    def search(
        self, queries: npt.NDArray[np.float32], k: int, where_json: str | None, exact: bool = False, threads: int | None = None, ef: int | None = None
    ) -> list[list[_Hit]]:
        # numpy scores every record in float32 on its own threads, and there is no graph to
        # walk: exact, threads and ef change nothing.
        self._check_process()
        with self._mutex:
            self._check()
            return self._search(queries, k, where_json)

    def search_arrays(
        self, queries: npt.NDArray[np.float32], k: int, where_json: str | None, exact: bool = False, threads: int | None = None, ef: int | None = None
    ) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.float32], npt.NDArray[np.int64] | None]:
        """``search`` as the native module's ``search_arrays`` returns it: (ids, distances, keys)."""
        hits = self.search(queries, k, where_json, exact, threads, ef) if len(queries) else []
        return _hit_arrays([[h[0] for h in row] for row in hits], [[h[1] for h in row] for row in hits])

    # ---------------------------------------------------------------- the graph index (none)

    def build_index(self) -> None:
        """Nothing to build: this engine has no graph (ReadOnlyError in a reader, as in Rust)."""
        self._check_process()
        with self._mutex:
            self._check_writable()

    def graph_info(self) -> dict[str, Any]:
        """No graph: every record is scanned (the tail is every record)."""
        self._check_process()
        with self._mutex:
            self._check()
            return {
                "nodes": 0,
                "tail": len(self._row),
                "file_nodes": 0,
                "estimate": None,
                "used_by_auto": False,
                "params": dict(self._graph_params),
                "problem": "the fallback engine has no graph index",
            }

    def estimate_recall(self, k: int = 10, sample: int = 64, ef: int | None = None) -> dict[str, Any] | None:
        """No graph to measure: None."""
        self._check_process()
        with self._mutex:
            self._check()
            return None

    def count(self) -> int:
        self._check_process()
        with self._mutex:
            self._check()
            return len(self._row)

    # ---------------------------------------------------------------- text

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self._check_process()
        emb = self._require_embedder()
        return emb.embed_batch(texts)

    def remember(self, texts: list[str], metadatas_json: list[str | None] | None, ids: list[str | None] | None) -> list[str]:
        self._check_process()
        with self._mutex:
            emb = self._require_embedder()
            self._check_writable()
            n = len(texts)
            metas = metadatas_json if metadatas_json is not None else [None] * n
            given = ids if ids is not None else [None] * n
            out = [g if g is not None else content_id(t) for g, t in zip(given, texts)]
            need: list[int] = []
            same_text: set[int] = set()
            for i in range(n):
                r = self._row.get(out[i])
                if given[i] is not None:
                    if r is not None and self._texts[r] == texts[i]:
                        same_text.add(i)
                    else:
                        need.append(i)
                elif r is None:
                    need.append(i)
            vecs = emb.embed_batch([texts[i] for i in need]) if need else np.zeros((0, self._dim), dtype=np.float32)
            vec_of = {i: j for j, i in enumerate(need)}
            ops: list[tuple[Any, ...]] = []
            for i in range(n):
                if i in vec_of:
                    ops.append(("upsert", out[i], vec_of[i], texts[i], metas[i]))
                elif i in same_text:
                    ops.append(("update_metadata", out[i], metas[i]))
                elif metas[i] is not None:
                    ops.append(("update_metadata", out[i], metas[i]))
            if ops:
                prepared = self._validated(np.ascontiguousarray(vecs, dtype=np.float32), ops) if need else None
                self._commit(ops, prepared)
            return out

    def recall(
        self, texts: list[str], k: int, where_json: str | None, exact: bool = False, threads: int | None = None, ef: int | None = None
    ) -> list[list[_Hit]]:
        self._check_process()
        emb = self._require_embedder()
        q = emb.embed_batch(texts)
        with self._mutex:
            self._check()
            return self._search(q, k, where_json)

    # ---------------------------------------------------------------- keyword search, hybrid recall

    def _keyword(self, text: str, k: int, pred: Predicate | None) -> list[tuple[int, float]]:
        """The best ``k`` (row, score) of a keyword search for ``text`` among the records
        ``pred`` keeps (all: None): score ``-bm25`` descending, then id ascending. Under the
        mutex."""
        query = fts_query(text)
        if not query or k <= 0:
            return []
        assert self._conn is not None
        fts = self._fts
        name = fts.split(".")[-1]
        sql = f"SELECT r.id, -bm25({name}) FROM {fts} JOIN main.records AS r ON r.seq = {name}.rowid WHERE {name} MATCH ?"
        if pred is None:
            # Ties by id: SQLite compares TEXT as UTF-8 bytes, which is code point order.
            sql += f" ORDER BY bm25({name}), r.id LIMIT {int(k)}"
        try:
            found = self._conn.execute(sql, (query,)).fetchall()
        except sqlite3.Error as e:
            raise self._sql_error(e, "searching the keyword index") from None
        out: list[tuple[int, float]] = []
        for rid, score in found:
            r = self._row.get(rid)
            if r is None:  # a reader: committed after this engine last read the records
                continue
            if pred is not None and not pred(self._texts[r], self._parsed[r]):
                continue
            out.append((r, float(score)))
        out = [(self._row[i], s) for i, s in keyword_order([(self._ids[r] or "", s) for r, s in out])]
        return out[:k]

    def _scored(self, r: int, distance: float, score: float) -> _ScoredHit:
        rid = self._ids[r]
        assert rid is not None
        return (rid, distance, score, self._texts[r], self._metas[r])

    def keyword_search(self, texts: list[str], k: int, where_json: str | None) -> list[list[_ScoredHit]]:
        """BM25 over the records' texts (the FTS5 index, :mod:`memento._keyword`'s query):
        per text, the best ``k`` hits (id, distance, score, text, metadata JSON) with score
        ``-bm25`` and distance ``-score``, score descending then id ascending; only the records
        matching ``where_json``. A text without a token finds nothing. Needs no model."""
        self._check_process()
        with self._mutex:
            self._check()
            pred = compile_filter_json(where_json) if where_json is not None else None
            return [[self._scored(r, -s, s) for r, s in self._keyword(t, k, pred)] for t in texts]

    def hybrid_recall(
        self,
        texts: list[str],
        k: int,
        where_json: str | None,
        exact: bool = False,
        threads: int | None = None,
        ef: int | None = None,
        fusion: str = "rrf",
        param: float = 60.0,
    ) -> list[list[_ScoredHit]]:
        """The vector ranking (``recall``) and the keyword ranking (``keyword_search``) of each
        text, each its best ``max(k, 50)``, fused (:func:`memento._keyword.fuse`: ``fusion``
        "rrf" with ``param`` as ``rrf_k``, or "weighted" with ``param`` as ``alpha``): the best
        ``k`` by fused score, then id; each hit's score is its fused score, its distance the
        vector distance between the query's embedding and the record's vector."""
        self._check_process()
        if fusion not in ("rrf", "weighted"):
            raise InvalidArgumentError(f"Invalid argument: unknown fusion {fusion!r}.")
        emb = self._require_embedder()
        q = emb.embed_batch(texts)
        n = max(k, HYBRID_CANDIDATES)
        with self._mutex:
            self._check()
            pred = compile_filter_json(where_json) if where_json is not None else None
            vector_hits = self._search(q, n, where_json)
            prepared = vo.prepare(np.atleast_2d(np.asarray(q, dtype=np.float32)), self._metric)
            out: list[list[_ScoredHit]] = []
            for qi, (text, vhits) in enumerate(zip(texts, vector_hits)):
                dist = {h[0]: float(h[1]) for h in vhits}
                kw = [(self._ids[r] or "", s) for r, s in self._keyword(text, n, pred)]
                vside = [(h[0], 1.0 - float(h[1]) if self._metric == "cosine" else -float(h[1])) for h in vhits]
                row: list[_ScoredHit] = []
                for rid, fused in fuse(fusion, param, vside, kw, k):
                    r = self._row[rid]
                    d = dist.get(rid)
                    if d is None:
                        d = float(vo.distances(self._vecs[r : r + 1], prepared[qi : qi + 1], self._metric)[0, 0])
                    row.append(self._scored(r, d, fused))
                out.append(row)
            return out

    # ---------------------------------------------------------------- housekeeping

    def compact(self) -> dict[str, Any]:
        """FTS5's 'optimize' of the keyword index, then VACUUM: SQLite rewrites the database
        without the pages of deleted rows (this engine deletes rows outright), after a
        checkpoint of its WAL; the in-memory arrays drop their deleted rows too."""
        self._check_process()
        with self._mutex:
            self._check_writable()
            assert self._conn is not None
            import time

            started = time.monotonic()
            path = self._dir / PY_STORE_FILE
            dropped, self._dropped = self._dropped, 0
            try:
                # The size before is the database's once its WAL is folded in (as the Rust
                # engine measures its vector file after its own first step, a checkpoint).
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                before = path.stat().st_size
                # The keyword index's segments merged into one (as the Rust engine does its
                # mirror's), then the file rewritten.
                self._conn.execute(f"INSERT INTO {_FTS_TABLE}({_FTS_TABLE}) VALUES ('optimize')")
                self._conn.execute("VACUUM")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as e:
                raise self._sql_error(e, "compacting") from None
            keep = np.flatnonzero(self._alive[: self._n]).tolist()
            self._vecs = np.ascontiguousarray(self._vecs[keep]) if keep else np.zeros((1024, self._dim), dtype=np.float32)
            self._alive = np.zeros(max(self._vecs.shape[0], 1), dtype=bool)
            self._alive[: len(keep)] = True
            self._ids = [self._ids[i] for i in keep]
            self._texts = [self._texts[i] for i in keep]
            self._metas = [self._metas[i] for i in keep]
            self._parsed = [self._parsed[i] for i in keep]
            self._n = len(keep)
            self._row = {rid: i for i, rid in enumerate(self._ids) if rid is not None}
            return {"live": len(keep), "dropped": dropped, "bytes_before": before, "bytes_after": path.stat().st_size, "seconds": time.monotonic() - started}

    def checkpoint(self) -> None:
        self._check_process()
        with self._mutex:
            self._check_writable()
            assert self._conn is not None
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as e:
                raise self._sql_error(e, "checkpointing") from None

    def check_integrity(self) -> None:
        """CorruptedError unless SQLite's own check passes and the records on disk are the
        ones held in memory, in the same order (what the Rust engine's check_integrity is to
        its files)."""
        self._check_process()
        with self._mutex:
            self._check()
            assert self._conn is not None
            path = str(self._dir / PY_STORE_FILE)
            try:
                verdict = self._conn.execute("PRAGMA integrity_check").fetchall()
                stored = self._conn.execute("SELECT id, vector, text, metadata FROM records ORDER BY seq").fetchall()
            except sqlite3.Error as e:
                raise self._sql_error(e, "checking the store") from None
            if verdict != [("ok",)]:
                reason = "; ".join(str(r[0]) for r in verdict)
                raise _corrupted(path, reason)
            if not self._read_only:
                # The keyword index against the records (FTS5's own check; it is a write
                # statement, which a read-only connection may not run).
                try:
                    self._conn.execute(f"INSERT INTO {_FTS_TABLE}({_FTS_TABLE}, rank) VALUES ('integrity-check', 1)")
                except sqlite3.DatabaseError as e:
                    raise _corrupted(path, f"the keyword index does not match the records ({e})") from None
            live = np.flatnonzero(self._alive[: self._n]).tolist()
            held = [(self._ids[r], vo.to_bytes(self._vecs[r]), self._texts[r], self._metas[r]) for r in live]
            if [tuple(row) for row in stored] != held:
                reason = f"the file holds {len(stored)} records that are not the {len(held)} the engine holds"
                raise _corrupted(path, reason)

    def stats(self) -> dict[str, Any]:
        self._check_process()
        with self._mutex:
            self._check()
            emb = self._embedder
            return {
                "engine": "python",
                "count": len(self._row),
                "rows": self._n,
                "deleted": self._n - len(self._row),
                "read_only": self._read_only,
                "dimension": self._dim,
                "metric": self._metric,
                "durability": self._durability,
                "model": None if self._model is None else {"id": self._model.id, "dimension": self._model.dim, "sha256": self._model.sha256},
                "embedding_cache": {
                    "memory_entries": 0 if emb is None else len(emb.cache),
                    "memory_hits": 0 if emb is None else emb.cache.hits,
                    "disk_hits": 0,
                    "inferred": 0 if emb is None else emb.inferred,
                },
            }

    def close(self) -> None:
        self._check_process()
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            try:
                if self._conn is not None and self._poisoned is None and not self._read_only:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            finally:
                self._release()
            # Free the memory now (the engine object may live on).
            self._vecs = np.zeros((0, self._dim), dtype=np.float32)
            self._alive = np.zeros(0, dtype=bool)
            self._ids, self._texts, self._metas, self._parsed, self._row = [], [], [], [], {}
            self._n = 0

    def __del__(self) -> None:
        try:
            if os.getpid() != getattr(self, "_opener_pid", os.getpid()):
                self._leak_in_child()
                return
            if not getattr(self, "_closed", True):
                self.close()
            else:
                self._release()
        except Exception:
            pass


def _rq(s: str) -> str:
    """A string quoted as Rust's ``{:?}`` shows it."""
    return json.dumps(s, ensure_ascii=False)


def _corrupted(path: str | os.PathLike[str], reason: str) -> CorruptedError:
    """The store's file is damaged: the Rust engine's ``Error::Corrupted`` message and fields
    (this engine does not locate the damage in the file: offset 0)."""
    return CorruptedError(f"{path} is corrupted at byte offset 0: {reason}.", file=str(path), offset=0, reason=reason)


def _duplicate(rid: str, in_batch: bool) -> DuplicateIdError:
    """``add`` of an id that is stored, or (``in_batch``) that an earlier record of the batch
    put: the Rust engine's ``Error::DuplicateId`` message and fields."""
    if in_batch:
        msg = f"The id {_rq(rid)} is given twice in one batch; give each new record its own id (or upsert the second to replace the first)."
    else:
        msg = f"A record with the id {_rq(rid)} already exists; use upsert to replace it."
    return DuplicateIdError(msg, id=rid, in_batch=in_batch)


def _parse_meta(s: str | None) -> dict[str, Any] | None:
    if s is None:
        return None
    v = json.loads(s)
    if not isinstance(v, dict):
        raise ValueError("metadata is not a JSON object")
    return v


def _check_text(text: str) -> None:
    bad = _limits.text_error(text)
    if bad is not None:
        raise InvalidArgumentError(f"Invalid argument: {bad}.")


def _check_meta_json(s: str) -> None:
    bad = _limits.json_text_error(s, "metadata")
    if bad is not None:
        raise InvalidArgumentError(f"Invalid argument: {bad}.")
    try:
        v = json.loads(s)
    except ValueError as e:
        raise InvalidArgumentError(f"Invalid argument: metadata is not valid JSON ({e}).") from None
    if not isinstance(v, dict):
        raise InvalidArgumentError("Invalid argument: metadata must be a JSON object.")
    if any("\0" in k for k in v):
        raise InvalidArgumentError("Invalid argument: a metadata key contains a NUL character.")


# ------------------------------------------------------------------------------------------
# The engine


class PythonEngine(Engine):
    """The pure-Python engine (numpy, sqlite3, and onnxruntime + tokenizers for text): the
    arguments of :class:`memento.Engine`, the methods, results and errors of
    :class:`memento.RustEngine` (see :mod:`memento.base`), in its own store format (a directory
    with ``memento.python.sqlite`` and ``LOCK``). Durability "group" is "sync" here (each
    write is synced before it returns); ``page_size`` is checked as the Rust engine checks it,
    though this engine has no pages; ``exact``, ``threads`` and ``ef`` change nothing (numpy
    scores every record in float32). It has no graph index: ``graph`` is checked and reported
    by :meth:`graph_info` but builds nothing, :meth:`build_index` does nothing,
    :meth:`graph_info` says there is no graph and :meth:`estimate_recall` returns None.
    """

    @classmethod
    def _open_core(
        cls,
        path: str | os.PathLike[str],
        dimension: int | None,
        metric: str | None,
        model: str | os.PathLike[str] | None,
        durability: str,
        create: bool,
        page_size: int | None,
        read_only: bool = False,
        group_access: bool = False,
        graph: GraphArg = None,
    ) -> tuple[Core, str]:
        return PythonCore(path, dimension, metric, model, durability, create, page_size, read_only, group_access, graph), "python"

