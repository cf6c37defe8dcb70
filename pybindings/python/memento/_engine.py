"""The public API of both engines over a *core*: the native ``NativeEngine`` (Rust) or the pure-
Python ``PythonCore``, which have the same low-level interface (:class:`Core`, as SPEC.md
specifies ``memento._native.NativeEngine``).

Everything user-facing is done here, once for both engines: argument checking and conversion
(ids, vectors to C-contiguous float32 arrays, metadata to JSON, filters to JSON, k), results
to dataclasses, the closed check. So the two engines accept and refuse exactly the same
inputs; the cores only store, search and embed.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, NoReturn, Protocol, overload

import numpy as np
import numpy.typing as npt

from . import base
from ._filter import compile_filter, filter_json
from ._keyword import check_fusion
from ._limits import MAX_ID_BYTES as MAX_ID_BYTES
from ._limits import MAX_METADATA_BYTES, depth_error, metadata_len_error
from ._store import MAX_EF
from .base import (
    DEFAULT_ALPHA,
    DEFAULT_K,
    DEFAULT_RECALL_MODE,
    DEFAULT_RRF_K,
    RECALL_MODES,
    SCOPES,
    UNSET,
    GraphArg,
    Ids,
    Metadatas,
    SearchArrays,
    Texts,
    Unset,
    VectorsArg,
    Where,
)
from .errors import ClosedError, DimensionMismatchError, ForkedProcessError, InvalidArgumentError, _forked_message
from .types import Memory, SearchResult, score_of
from .vector_ops import as_batch

__all__ = ["Core", "Engine", "MAX_ID_BYTES"]

#: k is capped at this (no store holds more records).
_MAX_K: Final = 2**40

Hit = tuple[str, float, "str | None", "str | None"]
#: A hit of keyword search or hybrid recall: (id, distance, score, text, metadata JSON).
ScoredHit = tuple[str, float, float, "str | None", "str | None"]
Row = tuple[str, npt.NDArray[np.float32], "str | None", "str | None"]


class Core(Protocol):
    """The low-level engine interface (``memento._native.NativeEngine``; see SPEC.md)."""

    @property
    def dimension(self) -> int: ...
    @property
    def metric(self) -> str: ...
    @property
    def model_id(self) -> str | None: ...
    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def write(self, ops: list[tuple[Any, ...]]) -> None: ...
    def add_arrays(
        self, ids: list[str], vectors: npt.NDArray[np.float32], texts: list[str | None] | None, metadatas_json: list[str | None] | None, upsert: bool
    ) -> None: ...
    def check_arrays(
        self, ids: list[str], vectors: npt.NDArray[np.float32], texts: list[str | None] | None, metadatas_json: list[str | None] | None, upsert: bool
    ) -> None: ...
    def delete(self, ids: list[str]) -> int: ...
    def delete_where(self, where_json: str) -> int: ...
    def get(self, ids: list[str]) -> list[Row | None]: ...
    def get_where(self, where_json: str, limit: int | None) -> list[Row]: ...
    def search(
        self, queries: npt.NDArray[np.float32], k: int, where_json: str | None, exact: bool = False, threads: int | None = None, ef: int | None = None
    ) -> list[list[Hit]]: ...
    def search_arrays(
        self, queries: npt.NDArray[np.float32], k: int, where_json: str | None, exact: bool = False, threads: int | None = None, ef: int | None = None
    ) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.float32], npt.NDArray[np.int64] | None]: ...
    def remember(self, texts: list[str], metadatas_json: list[str | None] | None, ids: list[str | None] | None) -> list[str]: ...
    def recall(
        self, texts: list[str], k: int, where_json: str | None, exact: bool = False, threads: int | None = None, ef: int | None = None
    ) -> list[list[Hit]]: ...
    def keyword_search(self, texts: list[str], k: int, where_json: str | None) -> list[list[ScoredHit]]: ...
    def hybrid_recall(
        self,
        texts: list[str],
        k: int,
        where_json: str | None,
        exact: bool,
        threads: int | None,
        ef: int | None,
        fusion: str,
        param: float,
    ) -> list[list[ScoredHit]]: ...
    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]: ...
    def build_index(self) -> None: ...
    def graph_info(self) -> dict[str, Any]: ...
    def estimate_recall(self, k: int = 10, sample: int = 64, ef: int | None = None) -> dict[str, Any] | None: ...
    def count(self) -> int: ...
    def checkpoint(self) -> None: ...
    def compact(self) -> dict[str, Any]: ...
    def check_integrity(self) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


# ------------------------------------------------------------------------------------------
# Argument conversion


def _bad(msg: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"Invalid argument: {msg}.")


def _utf8_ok(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_id(i: object, *, write: bool) -> str:
    if not isinstance(i, str):
        raise _bad(f"an id must be a string, not {type(i).__name__}")
    if not _utf8_ok(i):
        raise _bad(f"the id {i!r} is not valid Unicode (it holds a lone surrogate)")
    if write:
        n = len(i.encode("utf-8"))
        if n == 0 or n > MAX_ID_BYTES:
            shown = i if len(i) <= 64 else i[:64] + "…"
            raise _bad(f"an id must be 1 to {MAX_ID_BYTES} bytes long, and {shown!r} is {n}")
    return i


def _to_list(x: object, name: str) -> list[Any]:
    """A sequence argument as a list (1-D numpy arrays included); InvalidArgumentError otherwise."""
    if isinstance(x, np.ndarray):
        if x.ndim != 1:
            raise _bad(f"{name} must be a 1-D sequence, not a {x.ndim}-D array")
        return list(x.tolist())
    if isinstance(x, (str, bytes, bytearray, Mapping, set, frozenset)) or not isinstance(x, Iterable):
        raise _bad(f"{name} must be a list, not {type(x).__name__}")
    return list(x)


def ids_arg(ids: object, *, write: bool, name: str = "ids") -> tuple[list[str], bool]:
    """Ids as a list, and whether one id (a str) was given."""
    if isinstance(ids, str):
        return [_check_id(ids, write=write)], True
    if ids is None:
        raise _bad(f"{name} must be a string or a list of strings, not None")
    return [_check_id(i, write=write) for i in _to_list(ids, name)], False


def _per_id(value: object, n: int, single: bool, name: str, one: type | tuple[type, ...]) -> list[Any] | None:
    """``texts`` / ``metadatas``: one value (with one id) or a list of ``n``; None: none."""
    if value is None:
        return None
    if isinstance(value, one) and (single or not isinstance(value, (list, tuple))):
        if not single and n != 1:
            raise _bad(f"{name} must be a list with one entry per id ({n} ids), not one {type(value).__name__}")
        return [value]
    vals = _to_list(value, name)
    if len(vals) != n:
        raise _bad(f"there are {n} ids but {len(vals)} {name}")
    return vals


def _text(t: object, name: str = "text") -> str | None:
    if t is None:
        return None
    if not isinstance(t, str):
        raise _bad(f"a {name} must be a string, not {type(t).__name__}")
    if not _utf8_ok(t):
        raise _bad(f"a {name} is not valid Unicode (it holds a lone surrogate)")
    return t


def metadata_json(m: object) -> str | None:
    """One metadata dict as JSON text (None stays None); InvalidArgumentError if it is not a
    JSON object with string keys, free of NUL in keys, NaN and infinities."""
    if m is None:
        return None
    if not isinstance(m, Mapping):
        raise _bad(f"metadata must be a dict (a JSON object), not {type(m).__name__}")
    for k in m:
        if not isinstance(k, str):
            raise _bad(f"metadata keys must be strings, not {type(k).__name__} ({k!r})")
        if "\0" in k:
            raise _bad(f"metadata key {k!r} contains a NUL character")
    try:
        s = json.dumps(m if isinstance(m, dict) else dict(m), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise _bad(f"metadata cannot be stored as JSON ({e})") from None
    except RecursionError:
        # Far deeper than the limit (json.dumps recurses once per level).
        raise _bad(depth_error("metadata")) from None
    if not _utf8_ok(s):
        raise _bad("metadata holds a string that is not valid Unicode (a lone surrogate)")
    if 4 * len(s) > MAX_METADATA_BYTES:
        # Measured as the engines store it: compact JSON.
        bad = metadata_len_error(json.dumps(m if isinstance(m, dict) else dict(m), allow_nan=False, ensure_ascii=False, separators=(",", ":")))
        if bad is not None:
            raise _bad(bad)
    return s


def merge_metadata(old: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> dict[str, Any]:
    """``update(..., merge=True)``'s rule (the Rust engine's ``memento::merge_metadata``): a copy
    of ``old`` (or an empty dict) where each key of ``patch`` replaces the old value and a None
    value removes the key."""
    out = dict(old or {})
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def _metadatas_json(metas: list[Any] | None) -> tuple[list[str | None] | None, tuple[int, InvalidArgumentError] | None]:
    """``metadata_json`` of each; at the first that fails, stops and returns its index and error
    beside the ones before it (so that the caller can raise the errors in the engine's order)."""
    if metas is None:
        return None, None
    out: list[str | None] = []
    for j, m in enumerate(metas):
        try:
            out.append(metadata_json(m))
        except InvalidArgumentError as e:
            return out, (j, e)
    return out, None


def _first_row_of_another_length(vectors: object, dim: int) -> int | None:
    """For a list of rows of different lengths (which no array can hold), the first row whose
    length is not ``dim``; None for anything else (an array, equal rows: as_batch judges those)."""
    if not isinstance(vectors, (list, tuple)) or len(vectors) < 2:
        return None
    lengths = []
    for r in vectors:
        if isinstance(r, (str, bytes)) or not hasattr(r, "__len__"):
            return None
        lengths.append(len(r))
    if len(set(lengths)) == 1:
        return None
    return next(i for i, n in enumerate(lengths) if n != dim)


def _metadata_obj(s: str | None) -> dict[str, Any] | None:
    if s is None:
        return None
    v = json.loads(s)
    return v if isinstance(v, dict) else None


def k_arg(k: object) -> int:
    """``k`` as a positive int (InvalidArgumentError otherwise), capped at 2**40."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise _bad(f"k must be a positive integer, not {type(k).__name__}")
    k = int(k)
    if k <= 0:
        raise _bad(f"k must be at least 1, not {k}")
    return min(k, _MAX_K)


def threads_arg(threads: object) -> int | None:
    """``threads`` as None (the engine's default: one per core) or a positive int
    (InvalidArgumentError otherwise)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise _bad(f"threads must be None or a positive integer, not {threads!r}")
    return int(threads)


def ef_arg(ef: object) -> int | None:
    """``ef`` as None (the engine's ``ef_search``) or a positive int up to 1,048,576
    (InvalidArgumentError otherwise)."""
    if ef is None:
        return None
    if isinstance(ef, bool) or not isinstance(ef, (int, np.integer)) or not (1 <= ef <= MAX_EF):
        raise _bad(f"ef must be None or an integer from 1 to {MAX_EF:,}, not {ef!r}")
    return int(ef)


def count_arg(n: object, name: str) -> int:
    """A positive count (``sample`` of estimate_recall) as an int, capped at 2**40
    (InvalidArgumentError otherwise)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise _bad(f"{name} must be a positive integer, not {n!r}")
    return min(int(n), _MAX_K)


def exact_arg(exact: object) -> bool:
    """``exact`` as a bool (InvalidArgumentError otherwise)."""
    if not isinstance(exact, (bool, np.bool_)):
        raise _bad(f"exact must be True or False, not {exact!r}")
    return bool(exact)


def where_arg(where: object) -> str | None:
    """A filter as JSON text (None: no filter). Validated by the engine's parser later; here
    only its type and JSON-ness (InvalidFilterError)."""
    if where is None:
        return None
    return filter_json(where)


def scope_arg(user_id: object, agent_id: object, run_id: object) -> dict[str, str]:
    """The memory scopes given (``user_id``, ``agent_id``, ``run_id``; None: not given) by name;
    InvalidArgumentError unless each given one is a non-empty string."""
    out: dict[str, str] = {}
    for name, v in zip(SCOPES, (user_id, agent_id, run_id)):
        if v is None:
            continue
        if not isinstance(v, str) or not v:
            raise _bad(f"{name} must be None or a non-empty string, not {v!r}")
        if not _utf8_ok(v):
            raise _bad(f"{name} is not valid Unicode (it holds a lone surrogate)")
        out[name] = v
    return out


def scoped_where(where: object, scope: Mapping[str, str]) -> Any:
    """``where`` with an ``$eq`` condition per scope ANDed to it (``where`` itself when no
    scope is given). ``where`` is checked first (InvalidFilterError), so that its faults are
    named as they would be without a scope."""
    if not scope:
        return where
    conds: list[dict[str, Any]] = [{name: {"$eq": v}} for name, v in scope.items()]
    if where is not None:
        where_arg(where)
        compile_filter(where)
        return {"$and": [where, *conds]}
    return conds[0] if len(conds) == 1 else {"$and": conds}


def scoped_metadata(m: object, scope: Mapping[str, str]) -> object:
    """One memory's metadata with the scopes merged in (a copy); InvalidArgumentError when it
    holds a scope's key with another value. Anything not a mapping is returned as it is (for
    ``metadata_json`` to refuse)."""
    if not scope:
        return m
    if m is None:
        return dict(scope)
    if not isinstance(m, Mapping):
        return m
    for name, v in scope.items():
        if name in m and m[name] != v:
            raise _bad(f"the metadata's {name} is {m[name]!r}, but {name}={v!r} was given")
    return {**m, **scope}


def recall_mode_arg(mode: object, fusion: object, rrf_k: object, alpha: object) -> tuple[str, str, float]:
    """``recall``'s ``mode`` and fusion options checked: (mode, fusion, the fusion's
    parameter); InvalidArgumentError with the reason otherwise."""
    if not isinstance(mode, str) or mode not in RECALL_MODES:
        raise _bad(f"mode must be one of {', '.join(repr(m) for m in RECALL_MODES)}, not {mode!r}")
    try:
        f, param = check_fusion(fusion, rrf_k, alpha)
    except ValueError as e:
        raise _bad(str(e)) from None
    return mode, f, param


def _texts_list(texts: object, name: str = "texts", item: str = "text") -> tuple[list[str], bool]:
    """The argument ``name`` (one string, or a sequence of them, each an ``item``) as a list,
    and whether it was one string."""
    if isinstance(texts, str):
        return [_text(texts, item) or ""], True
    if texts is None:
        raise _bad(f"{name} must be a string or a list of strings, not None")
    out: list[str] = []
    for t in _to_list(texts, name):
        if t is None:
            raise _bad(f"a {item} must be a string, not None")
        out.append(_text(t, item) or "")
    return out, False


def _frozen(v: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    if v.flags.writeable:
        try:
            v.setflags(write=False)
        except ValueError:
            v = v.copy()
            v.setflags(write=False)
    return v


# ------------------------------------------------------------------------------------------
# The engine


class Engine(base.Engine):
    """A Memento store, open: ``memento.Engine(path, ...)``. See :mod:`memento.base` for every
    method, and the README's table of operations for the same calls in Rust and the command line.

    ``memento.Engine(...)`` returns a :class:`memento.RustEngine` (the native engine), or a
    :class:`memento.PythonEngine` when the native module cannot be imported (with one
    RuntimeWarning) or ``MEMENTO_RUST=0``; both are subclasses of this class, so
    ``isinstance(db, memento.Engine)`` holds for either and ``memento.Engine`` is the type to
    annotate with. A subclass of your own opens the engine :func:`memento.backend` names.

    Args:
        path: The store directory (created if missing, with ``create=True``).
        dimension: The vector dimension. Needed to create a raw-vector store; checked against an
            existing store (IncompatibleError if it differs).
        metric: "cosine", "dot" or "l2"; None: the store's, or cosine for a new store.
        model: "default" (the default): an existing store opens with its own model (none for a
            raw-vector store); a new one gets the default model (all-MiniLM-L6-v2, 384
            dimensions) when ``dimension`` is None, and no model when it is given. None: no
            model (text calls raise NoModelError). A directory: that model (any BERT-style ONNX
            model with a ``memento-model.json`` manifest).
        durability: "sync" (default; each commit is fsynced before it returns), "group" (the
            same guarantee, one fsync shared by concurrent commits) or "buffered" (commits
            survive a process crash; a power loss may lose those since the last checkpoint).
        create: Create the store if it does not exist (else InvalidArgumentError).
        page_size: The page size of a new store in bytes, a power of two from 8 KiB to 16 MiB
            (None: 64 KiB, which holds up to 16,352 dimensions; a larger dimension needs a
            larger page, which the error names). See the README's "Limits".
        read_only: Open the store read-only, beside the process that writes it (any number of
            readers, in any processes): no lock is taken and nothing is written; every read
            and search answers from the latest commit (the engine follows the writer by
            itself), and writes raise ReadOnlyError. The store must exist.
        group_access: A store this call creates is shared with the owner's group (directory
            0770, files 0660) instead of private to its owner (0700, 0600).
        graph: The graph index (HNSW) the Rust engine builds in the background and searches
            through (see :meth:`search`): None for the default one, False for none (every
            search scans), or a dict of some of ``m`` (neighbours per node, 2 to 512; 16),
            ``ef_construction`` (candidates kept while linking a node; 200), ``ef_search``
            (candidates kept by a search's walk; 64) and ``min_vectors`` (the graph is built,
            and used by default, from this many vectors on; 20,000). The Python engine takes
            the same values (checked alike) and has no graph.

    The engine is a context manager: ``with memento.Engine(path) as db: ...`` closes it.
    """

    _core: Core
    _kind: str = "?"
    #: ``Engine(...)``'s signature, ``__init__``'s (set below the class: ``__new__`` takes any
    #: arguments, only to pick the class).
    __signature__: ClassVar[inspect.Signature]

    def __new__(cls, *args: Any, **kwargs: Any) -> Engine:
        # ``memento.Engine(...)`` itself: the engine the environment allows. A subclass (RustEngine,
        # PythonEngine, or a user's) is itself.
        if cls is Engine:
            cls = _default_class()
        return super().__new__(cls)

    def __init__(
        self,
        path: str | os.PathLike[str],
        dimension: int | None = None,
        metric: str | None = None,
        model: str | os.PathLike[str] | None = "default",
        durability: str = "sync",
        *,
        create: bool = True,
        page_size: int | None = None,
        read_only: bool = False,
        group_access: bool = False,
        graph: GraphArg = None,
    ) -> None:
        core, kind = self._open_core(path, dimension, metric, model, durability, create, page_size, read_only, group_access, graph)
        #: The process that opened the engine: a forked child gets ForkedProcessError.
        self._opener_pid = os.getpid()
        self._core = core
        self._kind = kind
        self._dimension = int(core.dimension)
        self._metric = str(core.metric)
        self._path = str(core.path)
        mid = core.model_id
        self._model_id = None if mid is None else str(mid)

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
        """Opens the core: the engine :func:`memento.backend` names (RustEngine and PythonEngine
        override this with their own)."""
        return _default_class()._open_core(path, dimension, metric, model, durability, create, page_size, read_only, group_access, graph)

    # ---------------------------------------------------------------- properties

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def path(self) -> str:
        return self._path

    @property
    def model_id(self) -> str | None:
        return self._model_id

    @property
    def closed(self) -> bool:
        return bool(self._core.closed)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        model = f", model={self._model_id!r}" if self._model_id else ""
        return f"{type(self).__name__}({self._path!r}, dimension={self._dimension}, metric={self._metric!r}{model}, {state})"

    def _check_process(self) -> None:
        """ForkedProcessError unless this is the process that opened the engine (first in
        every operation, before the core is touched: a forked child must not use it)."""
        current = os.getpid()
        if current != self._opener_pid:
            raise ForkedProcessError(_forked_message(self._opener_pid, current), opener_pid=self._opener_pid, current_pid=current)

    def _check_open(self) -> None:
        self._check_process()
        if self._core.closed:
            raise ClosedError("The engine is closed.")

    # ---------------------------------------------------------------- writes

    def _put(self, ids: Ids, vectors: VectorsArg | None, texts: Texts, metadatas: Metadatas, upsert: bool) -> None:
        self._check_open()
        id_list, single = ids_arg(ids, write=True)
        n = len(id_list)
        text_list = _per_id(texts, n, single, "texts", str)
        if text_list is not None:
            text_list = [_text(t) for t in text_list]
        meta_list = _per_id(metadatas, n, single, "metadatas", Mapping)
        metas_json, bad_meta = _metadatas_json(meta_list)
        if vectors is not None:
            bad_row = _first_row_of_another_length(vectors, self._dimension)
            if bad_row is not None:
                if len(vectors) != n:
                    raise _bad(f"there are {n} ids but {len(vectors)} vectors")
                self._refuse_from(bad_row, bad_meta, id_list, vectors, text_list, metas_json, upsert)
            batch, one = as_batch(vectors, self._dimension)
            if single and batch.shape[0] != 1:
                raise _bad(f"one id but {batch.shape[0]} vectors")
            if not single and one and n != 1:
                raise _bad(f"{n} ids but one 1-D vector; give a 2-D array with one row per id")
            if batch.shape[0] != n:
                raise _bad(f"there are {n} ids but {batch.shape[0]} vectors")
            if n == 0:
                return
            if bad_meta is not None:
                self._refuse_from(None, bad_meta, id_list, batch, text_list, metas_json, upsert)
            self._core.add_arrays(id_list, batch, text_list, metas_json, upsert)
            return
        if bad_meta is not None:
            raise bad_meta[1]
        if n == 0:
            return
        if text_list is None:
            raise _bad("give vectors, or texts to embed with the engine's model")
        for i, t in zip(id_list, text_list):
            if t is None:
                raise _bad(f"the record {i!r} has neither a vector nor a text to embed")
        op = "upsert" if upsert else "add"
        mj: list[str | None] = metas_json if metas_json is not None else [None] * n
        self._core.write([(op, i, None, t, m) for i, t, m in zip(id_list, text_list, mj)])

    def _refuse_from(
        self,
        bad_row: int | None,
        bad_meta: tuple[int, InvalidArgumentError] | None,
        ids: list[str],
        rows: Any,
        texts: list[str | None] | None,
        metas_json: list[str | None] | None,
        upsert: bool,
    ) -> NoReturn:
        """Raises what the engine, checking a batch record by record (its id, then its vector,
        then its metadata), finds first in a batch with a fault the core cannot be given: a row
        not of the store's dimension among rows of different lengths (``bad_row``), or
        metadata that is not JSON the engines take (``bad_meta``). The records before the first
        fault are checked by the core (check_arrays), then that fault is raised."""
        stop = min(i for i in (bad_row, None if bad_meta is None else bad_meta[0]) if i is not None)
        # The record of a bad metadata is checked with its vector, without its metadata.
        meta_first = bad_row is None or stop < bad_row
        upto = stop + 1 if meta_first else stop
        if upto > 0:
            batch, _ = as_batch(rows[:upto], self._dimension)
            mj = None if metas_json is None else metas_json[:stop] + [None] * (upto - stop)
            tl = None if texts is None else texts[:upto]
            self._core.check_arrays(ids[:upto], batch, tl, mj, upsert)
        if meta_first:
            assert bad_meta is not None
            raise bad_meta[1]
        got = len(rows[stop])
        raise DimensionMismatchError(
            f"The vector has {got} dimensions but the store holds {self._dimension}-dimensional vectors.", expected=self._dimension, got=got
        )

    def add(self, ids: Ids, vectors: VectorsArg | None = None, texts: Texts = None, metadatas: Metadatas = None) -> None:
        self._put(ids, vectors, texts, metadatas, upsert=False)

    def upsert(self, ids: Ids, vectors: VectorsArg | None = None, texts: Texts = None, metadatas: Metadatas = None) -> None:
        self._put(ids, vectors, texts, metadatas, upsert=True)

    def update(self, ids: Ids, *, texts: Texts | Unset = UNSET, metadatas: Metadatas | Unset = UNSET, merge: bool = False) -> None:
        self._check_open()
        id_list, single = ids_arg(ids, write=True)
        n = len(id_list)
        if not isinstance(merge, bool):
            raise _bad(f"merge must be True or False, not {merge!r}")
        if merge and (metadatas is None or isinstance(metadatas, Unset)):
            raise _bad("merge=True merges the given metadatas into the records' own: give metadatas (a dict, or one per id)")
        ops: list[tuple[Any, ...]] = []
        if not isinstance(texts, Unset):
            tl = [None] * n if texts is None else _per_id(texts, n, single, "texts", str)
            assert tl is not None
            ops.extend(("update_text", i, _text(t)) for i, t in zip(id_list, tl))
        if not isinstance(metadatas, Unset):
            ml = [None] * n if metadatas is None else _per_id(metadatas, n, single, "metadatas", Mapping)
            assert ml is not None
            if merge:
                # A None entry is an empty patch (the id must still exist).
                ops.extend(("merge_metadata", i, metadata_json({} if m is None else m)) for i, m in zip(id_list, ml))
            else:
                ops.extend(("update_metadata", i, metadata_json(m)) for i, m in zip(id_list, ml))
        if ops:
            self._core.write(ops)

    def delete(
        self, ids: Ids | None = None, where: Where | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> int:
        self._check_open()
        scope = scope_arg(user_id, agent_id, run_id)
        if ids is None and where is None and not scope:
            raise _bad("delete needs ids, a where filter (or a user_id, agent_id or run_id), or both")
        where = scoped_where(where, scope)
        if ids is None:
            return int(self._core.delete_where(where_arg(where) or "{}"))
        id_list, _ = ids_arg(ids, write=True)
        if where is not None:
            pred = compile_filter(where)
            if pred is not None:
                rows = self._core.get(id_list)
                id_list = [r[0] for r in rows if r is not None and pred(r[2], _metadata_obj(r[3]))]
        if not id_list:
            return 0
        return int(self._core.delete(id_list))

    # ---------------------------------------------------------------- reads

    def _memory(self, row: Row) -> Memory:
        return Memory(row[0], row[2], _metadata_obj(row[3]), _frozen(row[1]))

    @overload
    def get(  # type: ignore[overload-overlap]  # a str is a Sequence[str]: one id, one Memory
        self,
        ids: str,
        where: Where | None = None,
        limit: int | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> Memory | None: ...

    @overload
    def get(
        self,
        ids: Sequence[str] | None = None,
        where: Where | None = None,
        limit: int | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[Memory]: ...

    def get(
        self,
        ids: Ids | None = None,
        where: Where | None = None,
        limit: int | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> Memory | None | list[Memory]:
        self._check_open()
        where = scoped_where(where, scope_arg(user_id, agent_id, run_id))
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
                raise _bad(f"limit must be None or a non-negative integer, not {limit!r}")
            limit = int(limit)
        if ids is None:
            rows = self._core.get_where(where_arg(where) or "{}", limit)
            return [self._memory(r) for r in rows]
        id_list, single = ids_arg(ids, write=False)
        pred = compile_filter(where) if where is not None else None
        out: list[Memory] = []
        for r in self._core.get(id_list) if id_list else []:
            if r is None:
                continue
            m = self._memory(r)
            if pred is None or pred(m.text, m.metadata):
                out.append(m)
        if single:
            return out[0] if out else None
        return out if limit is None else out[:limit]

    def _scored_results(self, hits: list[list[ScoredHit]]) -> list[list[SearchResult]]:
        return [[SearchResult(h[0], float(h[2]), float(h[1]), h[3], _metadata_obj(h[4])) for h in row] for row in hits]

    def _results(self, hits: list[list[Hit]]) -> list[list[SearchResult]]:
        metric = self._metric
        return [[SearchResult(h[0], score_of(metric, float(h[1])), float(h[1]), h[2], _metadata_obj(h[3])) for h in row] for row in hits]

    @overload
    def search(
        self, queries: Sequence[float], k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None, ef: int | None = None, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> list[SearchResult]: ...

    @overload
    def search(
        self, queries: Sequence[Sequence[float]], k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None, ef: int | None = None, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> list[list[SearchResult]]: ...

    @overload
    def search(
        self, queries: npt.NDArray[Any], k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None, ef: int | None = None, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> list[Any]: ...

    def search(
        self, queries: VectorsArg, k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None, ef: int | None = None, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> list[Any]:
        self._check_open()
        kk, ex, th, e = k_arg(k), exact_arg(exact), threads_arg(threads), ef_arg(ef)
        where = scoped_where(where, scope_arg(user_id, agent_id, run_id))
        # The filter is checked before the queries, as the Rust library and the CLI do, so that
        # a call wrong in both ways fails with the same error everywhere.
        wj = where_arg(where)
        if wj is not None:
            compile_filter(where)
        batch, single = as_batch(queries, self._dimension, name="queries")
        if batch.shape[0] == 0:
            return []
        res = self._results(self._core.search(batch, kk, wj, ex, th, e))
        return res[0] if single else res

    def search_arrays(
        self, queries: VectorsArg, k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None, ef: int | None = None
    ) -> SearchArrays:
        self._check_open()
        kk, ex, th, e = k_arg(k), exact_arg(exact), threads_arg(threads), ef_arg(ef)
        wj = where_arg(where)
        if wj is not None:
            compile_filter(where)  # before the queries, as in search
        batch, _ = as_batch(queries, self._dimension, name="queries")
        # The core makes the arrays (the Rust engine natively: no Python object per hit).
        id_array, dist, keys = self._core.search_arrays(batch, kk, wj, ex, th, e)
        score = (np.float32(1.0) - dist) if self._metric == "cosine" else -dist
        return SearchArrays(id_array, dist, score.astype(np.float32, copy=False), keys)

    # ---------------------------------------------------------------- the graph index

    def build_index(self) -> None:
        self._check_open()
        self._core.build_index()

    def graph_info(self) -> dict[str, Any]:
        self._check_open()
        return dict(self._core.graph_info())

    def estimate_recall(self, k: int = DEFAULT_K, sample: int = 64, ef: int | None = None) -> dict[str, Any] | None:
        self._check_open()
        kk, n, e = k_arg(k), count_arg(sample, "sample"), ef_arg(ef)
        est = self._core.estimate_recall(kk, n, e)
        return None if est is None else dict(est)

    def count(self) -> int:
        self._check_open()
        return int(self._core.count())

    def stats(self) -> dict[str, Any]:
        self._check_open()
        s = dict(self._core.stats())
        s.setdefault("engine", self._kind)
        return s

    def checkpoint(self) -> None:
        self._check_open()
        self._core.checkpoint()

    def compact(self) -> dict[str, Any]:
        self._check_open()
        return dict(self._core.compact())

    def check_integrity(self) -> None:
        self._check_open()
        self._core.check_integrity()

    def close(self) -> None:
        self._check_process()
        self._core.close()

    # ---------------------------------------------------------------- text

    @overload
    def remember(  # type: ignore[overload-overlap]  # a str is a Sequence[str]
        self, texts: str, metadatas: Mapping[str, Any] | None = None, ids: str | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> str: ...

    @overload
    def remember(
        self,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str | None] | None = None,
        *,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> list[str]: ...

    def remember(
        self, texts: str | Sequence[str], metadatas: Any = None, ids: Any = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> str | list[str]:
        self._check_open()
        scope = scope_arg(user_id, agent_id, run_id)
        text_list, single = _texts_list(texts, "texts")
        n = len(text_list)
        metas = _per_id(metadatas, n, single, "metadatas", Mapping)
        if scope:
            metas = [scoped_metadata(m, scope) for m in (metas if metas is not None else [None] * n)]
        metas_json = None if metas is None else [metadata_json(m) for m in metas]
        id_list: list[str | None] | None = None
        if ids is not None:
            raw = _per_id(ids, n, single, "ids", str)
            assert raw is not None
            id_list = [None if i is None else _check_id(i, write=True) for i in raw]
        if n == 0:
            return []
        out = [str(i) for i in self._core.remember(text_list, metas_json, id_list)]
        return out[0] if single else out

    @overload
    def recall(  # type: ignore[overload-overlap]  # a str is a Sequence[str]
        self,
        queries: str,
        k: int = DEFAULT_K,
        where: Where | None = None,
        *,
        mode: str = DEFAULT_RECALL_MODE, fusion: str = "rrf", rrf_k: float = DEFAULT_RRF_K, alpha: float = DEFAULT_ALPHA,
        exact: bool = False, threads: int | None = None, ef: int | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> list[SearchResult]: ...

    @overload
    def recall(
        self,
        queries: Sequence[str],
        k: int = DEFAULT_K,
        where: Where | None = None,
        *,
        mode: str = DEFAULT_RECALL_MODE, fusion: str = "rrf", rrf_k: float = DEFAULT_RRF_K, alpha: float = DEFAULT_ALPHA,
        exact: bool = False, threads: int | None = None, ef: int | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> list[list[SearchResult]]: ...

    def recall(
        self,
        queries: str | Sequence[str],
        k: int = DEFAULT_K,
        where: Where | None = None,
        *,
        mode: str = DEFAULT_RECALL_MODE, fusion: str = "rrf", rrf_k: float = DEFAULT_RRF_K, alpha: float = DEFAULT_ALPHA,
        exact: bool = False, threads: int | None = None, ef: int | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> list[Any]:
        self._check_open()
        kk, ex, th, e = k_arg(k), exact_arg(exact), threads_arg(threads), ef_arg(ef)
        m, f, param = recall_mode_arg(mode, fusion, rrf_k, alpha)
        where = scoped_where(where, scope_arg(user_id, agent_id, run_id))
        text_list, single = _texts_list(queries, "queries", "query")
        wj = where_arg(where)
        if wj is not None and m != "vector":
            compile_filter(where)
        if not text_list:
            return []
        if m == "vector":
            res = self._results(self._core.recall(text_list, kk, wj, ex, th, e))
        elif m == "keyword":
            res = self._scored_results(self._core.keyword_search(text_list, kk, wj))
        else:
            res = self._scored_results(self._core.hybrid_recall(text_list, kk, wj, ex, th, e, f, param))
        return res[0] if single else res

    @overload
    def keyword_search(  # type: ignore[overload-overlap]  # a str is a Sequence[str]
        self, queries: str, k: int = DEFAULT_K, where: Where | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> list[SearchResult]: ...

    @overload
    def keyword_search(
        self, queries: Sequence[str], k: int = DEFAULT_K, where: Where | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> list[list[SearchResult]]: ...

    def keyword_search(
        self, queries: str | Sequence[str], k: int = DEFAULT_K, where: Where | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> list[Any]:
        self._check_open()
        kk = k_arg(k)
        where = scoped_where(where, scope_arg(user_id, agent_id, run_id))
        text_list, single = _texts_list(queries, "queries", "query")
        wj = where_arg(where)
        if wj is not None:
            compile_filter(where)
        if not text_list:
            return []
        res = self._scored_results(self._core.keyword_search(text_list, kk, wj))
        return res[0] if single else res

    @overload
    def embed(self, texts: str) -> npt.NDArray[np.float32]: ...

    @overload
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...

    def embed(self, texts: str | Sequence[str]) -> npt.NDArray[np.float32]:
        self._check_open()
        text_list, single = _texts_list(texts, "texts")
        if not text_list:
            return np.zeros((0, self._dimension), dtype=np.float32)
        m = np.asarray(self._core.embed(text_list), dtype=np.float32)
        return m[0].copy() if single else m


# ``memento.Engine(...)``'s signature is ``__init__``'s (``__new__`` only picks the class), for
# help(), IDEs and inspect.signature.
Engine.__signature__ = inspect.signature(Engine.__init__).replace(
    parameters=list(inspect.signature(Engine.__init__).parameters.values())[1:], return_annotation=inspect.Signature.empty
)


def _default_class() -> type[Engine]:
    """RustEngine, or PythonEngine when the native module cannot be imported (warning once) or
    ``MEMENTO_RUST=0``."""
    from . import using_rust

    if using_rust():
        from ._rust import RustEngine

        return RustEngine
    from ._pure import PythonEngine

    return PythonEngine
