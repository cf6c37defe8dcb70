"""The contract both engines implement: :class:`VectorIndex` (vectors, ids, metadata, search) and
:class:`Engine` (a vector index that also embeds text: ``remember`` / ``recall``).

These docstrings are the API reference. :class:`memento.RustEngine` (the native engine) and
:class:`memento.PythonEngine` (the pure-Python fallback) implement every method with the same
arguments, results and exceptions, so code written against this contract runs on either;
``isinstance(engine, memento.base.Engine)`` holds for both.

Conventions:

* **One or many**: every argument that names records or their parts is plural (``ids``,
  ``vectors``, ``texts``, ``metadatas``, ``queries``) and takes one item or a sequence of them;
  one item in gives one result out (``get("a")`` is a Memory or None, ``remember("text")`` an
  id, ``search(vector)`` one list of results), a sequence gives a list (one entry per item).
  A call with a sequence is one commit (writes) or one batched scan (searches). The Rust
  library spells the two forms as two methods (``remember`` / ``remember_batch``, ``search`` /
  ``search_batch``, and ``write(WriteBatch)`` for any mix of writes); the command line takes
  repeated arguments or a file. The README's table of operations lists every call in all three.
* **Ids** are non-empty strings (at most 1,024 bytes of UTF-8).
* **Vectors** go in as numpy arrays (1-D for one vector, 2-D ``(n, dimension)`` for several) or
  lists of floats. float32 C-contiguous arrays are passed to the Rust engine without a copy;
  other real dtypes and non-contiguous arrays are converted to float32. Arrays of strings or
  objects, ragged lists and arrays of more than 2 dimensions raise
  :class:`~memento.errors.InvalidArgumentError`; a wrong length raises
  :class:`~memento.errors.DimensionMismatchError`; NaN, infinities (also float64 values too
  large for float32) and, under cosine, all-zero vectors raise
  :class:`~memento.errors.InvalidVectorError`. Vectors come out as read-only float32 arrays.
* **Metadata** is a dict with string keys (no NUL character) and JSON values; it is stored as
  JSON and comes back as a new dict. Filters match its top-level keys.
* **Filters** (``where``) are Chroma's: ``{"key": value}``, ``{"key": {"$eq" | "$ne" | "$gt" |
  "$gte" | "$lt" | "$lte": value}}``, ``{"key": {"$in" | "$nin": [values]}}``, ``{"$and": [...]}``,
  ``{"$or": [...]}``. Values are strings, numbers and booleans, compared only with values of the
  same type; ``$ne`` and ``$nin`` match records that lack the key. A malformed filter raises
  :class:`~memento.errors.InvalidFilterError`.
* **Text conditions** live in the same filter: ``{"$contains": "s"}`` / ``{"$not_contains":
  "s"}`` match records whose text holds ``s`` as a case-sensitive substring (a plain scan of
  the texts, not a keyword index: ``"Rust"`` does not match "rust", ``"run"`` matches
  "running"); a record without text matches ``$not_contains`` and never ``$contains``. Chroma puts these in a
  separate ``where_document``; ranked keyword search is not here yet.
* **Writes** are atomic per call: one commit, all or nothing, durable when the call returns
  (under the default ``durability="sync"``).
* **Distances**: ``1 - cos`` (cosine), ``-dot`` (dot), squared Euclidean (l2); smaller is closer.
  Scores: ``1 - distance`` under cosine, ``-distance`` otherwise; larger is closer. Ties go by
  insertion order (an upsert re-inserts).
* **Closing**: after :meth:`VectorIndex.close`, every method raises
  :class:`~memento.errors.ClosedError` (the properties still answer). ``close`` is idempotent.
  Engines are context managers that close on exit.
* **One opener**: a second engine on the same directory, in this process or another, raises
  :class:`~memento.errors.LockedError` (with the holder's ``pid``) at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, NamedTuple, Optional, Self, Union, overload

import numpy as np
import numpy.typing as npt

from .errors import NotFoundError
from .types import Memory, SearchResult

__all__ = [
    "VectorIndex",
    "Engine",
    "SearchArrays",
    "Ids",
    "Where",
    "MetadataArg",
    "Metadatas",
    "Texts",
    "VectorsArg",
    "UNSET",
    "Unset",
    "DEFAULT_K",
]

#: The number of results ``search`` and ``recall`` return unless ``k`` is given (in Rust
#: ``memento::DEFAULT_K``, on the command line ``-k``).
DEFAULT_K: Final = 10

#: One id or several.
Ids = Union[str, Sequence[str]]
#: A filter (see the module documentation).
Where = Mapping[str, Any]
#: One record's metadata.
MetadataArg = Optional[Mapping[str, Any]]
#: One metadata (with one id) or one per id (with several); None for none.
Metadatas = Union[Mapping[str, Any], Sequence[Optional[Mapping[str, Any]]], None]
#: One text (with one id) or one per id (with several); None for none.
Texts = Union[str, Sequence[Optional[str]], None]
#: One vector (1-D) or several (2-D): a numpy array or (nested) lists of floats.
VectorsArg = Union[npt.NDArray[Any], Sequence[float], Sequence[Sequence[float]]]


class Unset:
    """The type of :data:`UNSET`: "leave this field as it is" (``update``)."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNSET"


#: Passed to :meth:`VectorIndex.update` for a field that is to stay as it is.
UNSET = Unset()


class SearchArrays(NamedTuple):
    """Search results as arrays (:meth:`VectorIndex.search_arrays`): for ``n`` queries, ``ids``
    is a list of ``n`` lists of ids (each as long as that query's results: ``k``, or fewer when
    fewer records match), ``distances`` and ``scores`` are ``(n, m)`` float32 arrays where ``m``
    is the longest list (``k`` whenever the store holds ``k`` matching records), padded with
    NaN past a shorter list."""

    ids: list[list[str]]
    distances: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]


class VectorIndex(ABC):
    """A store of vectors under string ids, with optional text and metadata, searched by
    brute force with optional filters. See the module documentation for the conventions
    (ids, vectors, metadata, filters, errors)."""

    # ---------------------------------------------------------------- properties

    @property
    @abstractmethod
    def dimension(self) -> int:
        """The length of the store's vectors."""

    @property
    @abstractmethod
    def metric(self) -> str:
        """The store's metric: "cosine", "dot" or "l2"."""

    @property
    @abstractmethod
    def path(self) -> str:
        """The store's directory."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""

    # ---------------------------------------------------------------- writes

    @abstractmethod
    def add(self, ids: Ids, vectors: VectorsArg | None = None, texts: Texts = None, metadatas: Metadatas = None) -> None:
        """Adds records; :class:`~memento.errors.DuplicateIdError` if an id is already stored
        (or given twice), and then nothing is written.

        Args:
            ids: One id, or a sequence of ids.
            vectors: With one id, one vector (1-D); with several, a 2-D array (or list of
                lists) with one row per id. None: the texts are embedded with the engine's
                model (:class:`~memento.errors.NoModelError` without one).
            texts: The document texts (one, or one per id; None entries for none). Stored, and
                matched by ``$contains``.
            metadatas: The metadata (one dict, or one per id; None entries for none).

        Raises:
            InvalidArgumentError: ids empty or not strings; lengths of ``ids``, ``vectors``,
                ``texts``, ``metadatas`` that differ; neither vectors nor texts; metadata that
                is not a JSON object.
            DimensionMismatchError, InvalidVectorError: see the module documentation.
            DuplicateIdError: an id exists already.
        """

    @abstractmethod
    def upsert(self, ids: Ids, vectors: VectorsArg | None = None, texts: Texts = None, metadatas: Metadatas = None) -> None:
        """Like :meth:`add`, but an existing id is replaced (vector, text and metadata; it then
        counts as inserted last). Given twice in one call, the last one wins."""

    @abstractmethod
    def update(self, ids: Ids, *, texts: Texts | Unset = UNSET, metadatas: Metadatas | Unset = UNSET, merge: bool = False) -> None:
        """Replaces the text and/or metadata of existing records; a field left :data:`UNSET` is
        not touched, None clears it. With ``merge=True`` each given metadata is merged into the
        record's own instead of replacing it: its keys replace the record's, a None value
        removes a key (planned inside the commit, so a concurrent update is never lost). In a text store (one with a model) a record's vector is the
        embedding of its text: a new text is embedded (through the cache) and the record
        replaced, keeping its metadata (it then comes last in insertion order, as after an
        upsert), and removing a text (None) is refused. In a raw-vector store the vectors and
        the order stay as they are.

        Raises:
            NotFoundError: an id is not stored (and nothing is written).
            InvalidArgumentError: ``texts=None`` in a text store; ``merge=True`` without
                ``metadatas``.
            NoModelError: a new text in a text store opened without its model.
        """

    @abstractmethod
    def delete(self, ids: Ids | None = None, where: Where | None = None) -> int:
        """Deletes records by id (missing ids are ignored), by filter, or both (the given ids
        that match the filter). Returns how many were deleted.

        Raises:
            InvalidArgumentError: neither ``ids`` nor ``where`` given.
        """

    # ---------------------------------------------------------------- reads

    @overload
    @abstractmethod
    def get(  # type: ignore[overload-overlap]  # a str is a Sequence[str]: one id, one Memory
        self, ids: str, where: Where | None = None, limit: int | None = None
    ) -> Memory | None: ...

    @overload
    @abstractmethod
    def get(self, ids: Sequence[str] | None = None, where: Where | None = None, limit: int | None = None) -> list[Memory]: ...

    @abstractmethod
    def get(self, ids: Ids | None = None, where: Where | None = None, limit: int | None = None) -> Memory | None | list[Memory]:
        """Reads records.

        * ``get("id")``: that record's :class:`~memento.types.Memory`, or None.
        * ``get(["a", "b", ...])``: the stored ones among them, in the order given (missing ids
          are skipped).
        * ``get(where={...})``: the records matching the filter, in insertion order.
        * ``get()``: every record, in insertion order.

        ``where`` with ids keeps only the ids that match; ``limit`` keeps the first ``limit``
        of a list.
        """

    @overload
    @abstractmethod
    def search(self, queries: Sequence[float], k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None) -> list[SearchResult]: ...

    @overload
    @abstractmethod
    def search(self, queries: Sequence[Sequence[float]], k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None) -> list[list[SearchResult]]: ...

    @overload
    @abstractmethod
    def search(self, queries: npt.NDArray[Any], k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None) -> list[Any]: ...

    @abstractmethod
    def search(self, queries: VectorsArg, k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None) -> list[Any]:
        """The ``k`` records nearest to each query, closest first (ties by insertion order).

        A 1-D query returns one ``list[SearchResult]``; a 2-D array of queries returns a list
        of such lists, one per row. With ``where``, only matching records are considered, so
        ``k`` results come back whenever at least ``k`` records match.

        The Rust engine scans an int8 copy of the vectors from 4,096 records on, with proven
        bounds on each distance, and rescores in float32 every record those bounds cannot rule
        out (falling back to the float32 scan where they rule out too few): the answer is the
        float32 scan's, whatever the data. ``exact=True`` asks for the float32 scan itself (the
        same answer; for checking, or when the int8 scan would fall back anyway). The Python
        engine always scores in float32 with numpy, so ``exact`` changes nothing there.
        ``threads``: how many threads scan (None: the engine's default, one per core; a store
        under 8 MiB of vectors is scanned on one); the answer does not depend on it.

        Raises:
            InvalidArgumentError: ``k`` is not a positive integer, or the queries are not
                numbers.
            DimensionMismatchError, InvalidVectorError: see the module documentation.
            InvalidFilterError: ``where`` is malformed.
        """

    def search_arrays(self, queries: VectorsArg, k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None) -> SearchArrays:
        """:meth:`search` with its results as arrays (see :class:`SearchArrays`): no result
        objects, no metadata decoding; for use as an index backend."""
        from .vector_ops import as_batch

        batch, _ = as_batch(queries, self.dimension, name="queries")
        lists: list[list[SearchResult]] = self.search(batch, k, where, exact=exact, threads=threads) if batch.shape[0] else []
        n, m = len(lists), max((len(r) for r in lists), default=0)
        dist = np.full((n, m), np.nan, dtype=np.float32)
        score = np.full((n, m), np.nan, dtype=np.float32)
        ids: list[list[str]] = []
        for i, row in enumerate(lists):
            ids.append([r.id for r in row])
            for j, r in enumerate(row):
                dist[i, j] = r.distance
                score[i, j] = r.score
        return SearchArrays(ids, dist, score)

    @abstractmethod
    def count(self) -> int:
        """The number of records."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Figures about the store (count, dimension, metric, model, and engine-specific ones)."""

    @abstractmethod
    def checkpoint(self) -> None:
        """Folds the write-ahead log into the store's main files now (it also happens by itself
        when the log grows, and at close past 4 MiB). Durability does not depend on it."""

    @abstractmethod
    def compact(self) -> dict[str, Any]:
        """Gives back the space of deleted and replaced records: the Rust engine rewrites its
        vector file with the live records only (FORMAT.md §4.5; writes wait meanwhile, reads
        and readers do not), the Python engine vacuums its database. Returns ``live``,
        ``dropped``, ``bytes_before``, ``bytes_after`` (the vector file, or the database) and
        ``seconds``.

        Raises:
            ReadOnlyError: the engine was opened read-only.
        """

    @abstractmethod
    def check_integrity(self) -> None:
        """Checks the store against itself: every checksum, and the SQLite mirror row by row
        against the log (the Rust engine; the Python engine checks its database's integrity
        and its rows against its vectors). For a full report use ``memento-inspect verify``.

        Raises:
            CorruptedError: damage, with the file and the offset where known.
        """

    @abstractmethod
    def close(self) -> None:
        """Makes every commit durable and closes the store, releasing its lock (the Rust engine
        checkpoints when its log holds more than 4 MiB, and otherwise leaves it for the next
        open to replay). Idempotent; afterwards every
        method raises :class:`~memento.errors.ClosedError`."""

    # ---------------------------------------------------------------- conveniences

    def __len__(self) -> int:
        """``len(engine)``: :meth:`count`."""
        return self.count()

    def __contains__(self, id: object) -> bool:
        """``"id" in engine``: whether a record has this id."""
        if not isinstance(id, str):
            return False
        return self.get(id) is not None

    def __getitem__(self, id: str) -> Memory:
        """``engine["id"]``: the record, or :class:`~memento.errors.NotFoundError` (a KeyError)."""
        m = self.get(id)
        if m is None:
            raise NotFoundError(f"No record has the id {id!r}.", id=id)
        return m

    def __iter__(self) -> Iterator[Memory]:
        """Every record, in insertion order (read at once: a snapshot)."""
        return iter(self.get())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class Engine(VectorIndex):
    """A :class:`VectorIndex` with an embedding model: texts in, meaning out.

    A store created with a model records the model's identity (id, dimension, file hash) and
    refuses any other (:class:`~memento.errors.ModelMismatchError`). Opened without a model, a
    text store still serves vectors, and text calls raise
    :class:`~memento.errors.NoModelError`.
    """

    @property
    @abstractmethod
    def model_id(self) -> str | None:
        """The id of the store's embedding model (such as "all-minilm-l6-v2"); None for a
        raw-vector store."""

    @overload
    @abstractmethod
    def remember(  # type: ignore[overload-overlap]  # a str is a Sequence[str]
        self, texts: str, metadatas: MetadataArg = None, ids: str | None = None
    ) -> str: ...

    @overload
    @abstractmethod
    def remember(
        self, texts: Sequence[str], metadatas: Sequence[MetadataArg] | None = None, ids: Sequence[str | None] | None = None
    ) -> list[str]: ...

    @abstractmethod
    def remember(self, texts: str | Sequence[str], metadatas: Any = None, ids: Any = None) -> str | list[str]:
        """Stores a text (embedded with the engine's model) and returns its id:
        ``remember("text", {"kind": "note"})``.

        Without an id, the id is the text's content id (:func:`memento.content_id`:
        ``"m-"`` and 32 hex digits of its SHA-256), so remembering the same text twice stores it
        once and embeds it once; given metadata then replaces the stored metadata. With an id,
        the record is replaced (without inference when its text is unchanged).

        A sequence of texts (with a sequence of metadatas and/or ids, or None) is stored in one
        commit, embedded in batches; the ids come back as a list.

        Raises:
            NoModelError: the engine has no model.
            ModelError: the model failed.
        """

    @overload
    @abstractmethod
    def recall(  # type: ignore[overload-overlap]  # a str is a Sequence[str]
        self, queries: str, k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None
    ) -> list[SearchResult]: ...

    @overload
    @abstractmethod
    def recall(
        self, queries: Sequence[str], k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None
    ) -> list[list[SearchResult]]: ...

    @abstractmethod
    def recall(
        self, queries: str | Sequence[str], k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None
    ) -> list[Any]:
        """The ``k`` stored records closest in meaning to the query text (see :meth:`search`,
        whose ``where``, ``exact`` and ``threads`` these are); a sequence of query texts gives
        one list per text. Query embeddings are cached.

        Raises:
            NoModelError: the engine has no model.
        """

    @overload
    @abstractmethod
    def embed(self, texts: str) -> npt.NDArray[np.float32]: ...

    @overload
    @abstractmethod
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...

    @abstractmethod
    def embed(self, texts: str | Sequence[str]) -> npt.NDArray[np.float32]:
        """The embedding of a text (1-D float32), or of several texts (2-D, one row each), with
        the engine's model (cached).

        Raises:
            NoModelError: the engine has no model.
        """
