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
  separate ``where_document``. Ranked keyword search (BM25) is :meth:`Engine.keyword_search`.
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
from typing import Any, Final, Optional, Self, Union, overload

import numpy as np
import numpy.typing as npt

from ._keyword import DEFAULT_ALPHA as DEFAULT_ALPHA
from ._keyword import DEFAULT_RRF_K as DEFAULT_RRF_K
from ._keyword import HYBRID_CANDIDATES as HYBRID_CANDIDATES
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
    "GraphArg",
    "DEFAULT_RECALL_MODE",
    "RECALL_MODES",
    "DEFAULT_RRF_K",
    "DEFAULT_ALPHA",
    "HYBRID_CANDIDATES",
    "SCOPES",
]

#: The number of results ``search`` and ``recall`` return unless ``k`` is given (in Rust
#: ``memento::DEFAULT_K``, on the command line ``-k``).
DEFAULT_K: Final = 10

#: ``recall``'s modes: "vector" (by meaning: the query's embedding against the records'
#: vectors), "keyword" (BM25 over the records' texts: :meth:`Engine.keyword_search`) and
#: "hybrid" (the two rankings fused).
RECALL_MODES: Final = ("vector", "keyword", "hybrid")
#: The mode of ``recall`` unless ``mode`` is given: hybrid (reciprocal rank fusion), as in
#: Rust's ``memento::DEFAULT_RECALL_MODE`` and the command line. On the labelled retrieval set
#: of BENCHMARKS.md ("Retrieval quality") it finds the answer in the top 10 for 0.607 of the
#: queries where meaning alone finds 0.544 and words alone 0.557. A test holds it to the native
#: module's ``default_recall_mode()``.
DEFAULT_RECALL_MODE: Final = "hybrid"

#: The memory scopes (mem0's): keyword arguments of ``remember`` (stored as top-level string
#: metadata keys of the same names) and of the reads and deletes (each an ``$eq`` condition
#: ANDed with ``where``).
SCOPES: Final = ("user_id", "agent_id", "run_id")

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
#: The graph index of an engine (the constructor's ``graph``): None for the default one, False
#: for none, or a dict of some of ``m``, ``ef_construction``, ``ef_search`` and ``min_vectors``.
GraphArg = Union[Mapping[str, int], bool, None]


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


class SearchArrays:
    """Search results as arrays (:meth:`VectorIndex.search_arrays`), for ``n`` queries and ``m``
    the length of the longest result list (``k`` whenever the store holds ``k`` matching
    records):

    * ``id_array``: an ``(n, m)`` numpy array of fixed-width strings (dtype ``<U{w}``, ``w`` the
      longest id), ``""`` past a shorter list. The Rust engine makes it natively, with no Python
      object per hit.
    * ``distances`` and ``scores``: ``(n, m)`` float32 arrays, NaN past a shorter list.
    * ``keys``: when every id returned is a non-negative decimal integer written without a sign
      or leading zeros (``"0"``, ``"42"``, below 2**63), the ids as an ``(n, m)`` int64 array
      with -1 past a shorter list; None otherwise (decided per call, from the ids returned).
    * ``ids``: the ids as ``n`` lists of str, each as long as that query's results. Made from
      ``id_array`` when first read (one str per hit), so leave it unread to avoid the objects.

    For code written against the earlier named tuple, ``ids, distances, scores = result`` and
    ``result[0]`` to ``result[2]`` still work (they read ``ids``)."""

    __slots__ = ("id_array", "distances", "scores", "keys", "_ids")

    id_array: npt.NDArray[np.str_]
    distances: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    keys: npt.NDArray[np.int64] | None

    def __init__(
        self,
        id_array: npt.NDArray[np.str_],
        distances: npt.NDArray[np.float32],
        scores: npt.NDArray[np.float32],
        keys: npt.NDArray[np.int64] | None = None,
    ) -> None:
        self.id_array = id_array
        self.distances = distances
        self.scores = scores
        self.keys = keys
        self._ids: list[list[str]] | None = None

    @property
    def ids(self) -> list[list[str]]:
        """The ids as one list of str per query (made on first read)."""
        if self._ids is None:
            counts = np.count_nonzero(self.id_array != "", axis=1).tolist() if self.id_array.size else [0] * self.id_array.shape[0]
            self._ids = [row[:c].tolist() for row, c in zip(self.id_array, counts)]
        return self._ids

    def _fields_tuple(self) -> tuple[list[list[str]], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        return (self.ids, self.distances, self.scores)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._fields_tuple())

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> Any:
        return self._fields_tuple()[i]

    def __repr__(self) -> str:
        n, m = self.distances.shape
        keys = "" if self.keys is None else ", keys"
        return f"SearchArrays({n} queries × {m} results, ids {self.id_array.dtype}{keys})"


def _hit_arrays(ids: Sequence[Sequence[str]], distances: Sequence[Sequence[float]]) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.float32], npt.NDArray[np.int64] | None]:
    """``(id_array, distances, keys)`` of :class:`SearchArrays` from lists of ids and
    distances (one list per query): what the Rust engine's native ``search_arrays`` makes, for
    engines that have the lists already."""
    n, m = len(ids), max((len(r) for r in ids), default=0)
    width = max((len(i) for row in ids for i in row), default=0) or 1
    id_array = np.zeros((n, m), dtype=f"<U{width}")
    dist = np.full((n, m), np.nan, dtype=np.float32)
    keys: npt.NDArray[np.int64] | None = np.full((n, m), -1, dtype=np.int64)
    for i, (row, drow) in enumerate(zip(ids, distances)):
        if row:
            id_array[i, : len(row)] = row
            dist[i, : len(row)] = drow
        if keys is not None:
            for j, rid in enumerate(row):
                key = _decimal_key(rid)
                if key is None:
                    keys = None
                    break
                keys[i, j] = key
    return id_array, dist, keys


def _decimal_key(rid: str) -> int | None:
    """An id as an integer key (see :class:`SearchArrays`), or None."""
    if 0 < len(rid) <= 19 and rid.isascii() and rid.isdigit() and (rid == "0" or rid[0] != "0"):
        v = int(rid)
        return v if v < 2**63 else None
    return None


class VectorIndex(ABC):
    """A store of vectors under string ids, with optional text and metadata, searched by
    brute force or through a graph index (the Rust engine's, on large stores), with optional
    filters. See the module documentation for the conventions (ids, vectors, metadata,
    filters, errors)."""

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
    def delete(
        self, ids: Ids | None = None, where: Where | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> int:
        """Deletes records by id (missing ids are ignored), by filter, or both (the given ids
        that match the filter). Returns how many were deleted. ``user_id``, ``agent_id``,
        ``run_id``: only the records of these scopes (each an ``$eq`` condition on the metadata
        key of that name, ANDed with ``where``); a scope alone deletes all of its records.

        Raises:
            InvalidArgumentError: neither ``ids``, ``where`` nor a scope given; a scope that is
                not a non-empty string.
        """

    # ---------------------------------------------------------------- reads

    @overload
    @abstractmethod
    def get(  # type: ignore[overload-overlap]  # a str is a Sequence[str]: one id, one Memory
        self, ids: str, where: Where | None = None, limit: int | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> Memory | None: ...

    @overload
    @abstractmethod
    def get(
        self, ids: Sequence[str] | None = None, where: Where | None = None, limit: int | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> list[Memory]: ...

    @abstractmethod
    def get(
        self, ids: Ids | None = None, where: Where | None = None, limit: int | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> Memory | None | list[Memory]:
        """Reads records.

        * ``get("id")``: that record's :class:`~memento.types.Memory`, or None.
        * ``get(["a", "b", ...])``: the stored ones among them, in the order given (missing ids
          are skipped).
        * ``get(where={...})``: the records matching the filter, in insertion order.
        * ``get()``: every record, in insertion order.

        ``where`` with ids keeps only the ids that match; ``limit`` keeps the first ``limit``
        of a list. ``user_id``, ``agent_id``, ``run_id``: only the records of these scopes
        (each an ``$eq`` condition ANDed with ``where``).
        """

    @overload
    @abstractmethod
    def search(self, queries: Sequence[float], k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None, ef: int | None = None, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None) -> list[SearchResult]: ...

    @overload
    @abstractmethod
    def search(self, queries: Sequence[Sequence[float]], k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None, ef: int | None = None, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None) -> list[list[SearchResult]]: ...

    @overload
    @abstractmethod
    def search(self, queries: npt.NDArray[Any], k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None, ef: int | None = None, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None) -> list[Any]: ...

    @abstractmethod
    def search(self, queries: VectorsArg, k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None, ef: int | None = None, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None) -> list[Any]:
        """The ``k`` records nearest to each query, closest first (ties by insertion order).

        A 1-D query returns one ``list[SearchResult]``; a 2-D array of queries returns a list
        of such lists, one per row. With ``where``, only matching records are considered, so
        ``k`` results come back whenever at least ``k`` records match.

        The Rust engine plans each search. Below 4,096 records it scores every vector in
        float32. From there it scans an int8 copy of the vectors with proven bounds on each
        distance and rescores in float32 every record those bounds cannot rule out: the answer
        is the float32 scan's, whatever the data. From 20,000 vectors on (the graph's
        ``min_vectors``) it walks its graph index (HNSW) instead, once the graph's measured
        recall@10 is at least 0.9 (:meth:`graph_info` says whether it does): approximate, the
        distances returned exact, the records the graph does not cover yet scanned exactly.
        ``exact=True`` asks for the true top ``k`` (the float32 scan; for checking, or for a
        ground truth). ``ef``: how many candidates the graph walk keeps (None: the engine's
        ``ef_search``, 64 unless the constructor's ``graph`` says otherwise; at least ``k``);
        larger is slower and closer to exact. It changes nothing when no graph is walked. The
        Python engine has no graph and always scores in float32 with numpy, so ``exact`` and
        ``ef`` change nothing there. ``threads``: how many threads scan (None: the engine's
        default, one per core; a store under 8 MiB of vectors is scanned on one); the answer
        does not depend on it. ``user_id``, ``agent_id``, ``run_id``: only the records of these
        scopes (each an ``$eq`` condition on the metadata key of that name, ANDed with
        ``where``).

        Raises:
            InvalidArgumentError: ``k``, ``threads`` or ``ef`` is not a positive integer, or
                the queries are not numbers.
            DimensionMismatchError, InvalidVectorError: see the module documentation.
            InvalidFilterError: ``where`` is malformed.
        """

    def search_arrays(self, queries: VectorsArg, k: int = DEFAULT_K, where: Where | None = None, *, exact: bool = False, threads: int | None = None, ef: int | None = None) -> SearchArrays:
        """:meth:`search` with its results as arrays (see :class:`SearchArrays`): no result
        objects, no metadata decoding; for use as an index backend. The Rust engine makes the
        arrays natively, with no Python object per hit."""
        from .vector_ops import as_batch

        batch, _ = as_batch(queries, self.dimension, name="queries")
        lists: list[list[SearchResult]] = self.search(batch, k, where, exact=exact, threads=threads, ef=ef) if batch.shape[0] else []
        id_array, dist, keys = _hit_arrays([[r.id for r in row] for row in lists], [[r.distance for r in row] for row in lists])
        score = np.full(dist.shape, np.nan, dtype=np.float32)
        for i, row in enumerate(lists):
            score[i, : len(row)] = [r.score for r in row]
        return SearchArrays(id_array, dist, score, keys)

    # ---------------------------------------------------------------- the graph index

    @abstractmethod
    def build_index(self) -> None:
        """Brings the graph index up to every committed vector now, with every core, and writes
        its file (after a checkpoint); returns when done. The Rust engine otherwise builds it
        in the background as commits arrive, from ``min_vectors`` vectors on; this builds one
        for a smaller store too. The Python engine has no graph: nothing to do.

        Raises:
            ReadOnlyError: the engine was opened read-only.
        """

    @abstractmethod
    def graph_info(self) -> dict[str, Any]:
        """The graph index's state, as a dict:

        * ``nodes``: vectors (deleted ones included) the graph in use covers;
        * ``tail``: vectors it does not cover yet (scanned exactly by a search through it);
        * ``file_nodes``: nodes the graph's file covers (0 without a usable file);
        * ``estimate``: the last measured recall, a dict of ``recall`` (recall@10), ``sample``
          (queries measured) and ``ef``, or None;
        * ``used_by_auto``: whether a search without ``exact`` walks the graph on this store
          now;
        * ``params``: the graph's parameters (``m``, ``ef_construction``, ``ef_search``,
          ``min_vectors``);
        * ``problem``: a damaged graph file or the builder's last failure, else None.

        The Python engine has no graph: nodes 0, ``used_by_auto`` False, and a ``problem``
        saying so.
        """

    @abstractmethod
    def estimate_recall(self, k: int = DEFAULT_K, sample: int = 64, ef: int | None = None) -> dict[str, Any] | None:
        """Measures the graph's recall@``k`` now: ``sample`` stored vectors, spread over the
        graph, are searched through the graph (at ``ef``; None: the engine's) and exactly, and
        the fraction of the exact answers found is returned as a dict of ``recall``,
        ``sample`` (queries measured) and ``ef``. None when the store has no usable graph
        (always, in the Python engine).

        Raises:
            InvalidArgumentError: ``k`` or ``sample`` is not a positive integer, ``ef`` not None
                or a positive integer.
        """

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
        self, texts: str, metadatas: MetadataArg = None, ids: str | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> str: ...

    @overload
    @abstractmethod
    def remember(
        self,
        texts: Sequence[str],
        metadatas: Sequence[MetadataArg] | None = None,
        ids: Sequence[str | None] | None = None,
        *,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> list[str]: ...

    @abstractmethod
    def remember(
        self, texts: str | Sequence[str], metadatas: Any = None, ids: Any = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> str | list[str]:
        """Stores a text (embedded with the engine's model) and returns its id:
        ``remember("text", {"kind": "note"})``.

        Without an id, the id is the text's content id (:func:`memento.content_id`:
        ``"m-"`` and 32 hex digits of its SHA-256), so remembering the same text twice stores it
        once and embeds it once; given metadata then replaces the stored metadata. With an id,
        the record is replaced (without inference when its text is unchanged).

        A sequence of texts (with a sequence of metadatas and/or ids, or None) is stored in one
        commit, embedded in batches; the ids come back as a list.

        ``user_id``, ``agent_id``, ``run_id`` (mem0's memory scopes): stored in each memory's
        metadata under the keys of the same names (merged into the given metadata), so that
        :meth:`recall`, :meth:`keyword_search`, :meth:`search`, :meth:`get` and :meth:`delete`
        given the same scope find only these memories.

        Raises:
            NoModelError: the engine has no model.
            ModelError: the model failed.
            InvalidArgumentError: a scope is not a non-empty string, or a metadata holds a
                scope's key with another value than the one given.
        """

    @overload
    @abstractmethod
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
    @abstractmethod
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

    @abstractmethod
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
        """The ``k`` stored records closest in meaning to the query text (see :meth:`search`,
        whose ``where``, ``exact``, ``threads``, ``ef`` and scopes these are); a sequence of
        query texts gives one list per text. Query embeddings are cached.

        ``mode`` (default :data:`DEFAULT_RECALL_MODE`):

        * ``"vector"``: by meaning, the query's embedding against the records' vectors.
        * ``"keyword"``: :meth:`keyword_search` (BM25 over the texts; no model needed).
        * ``"hybrid"``: both rankings, each of its best ``max(k, 50)``
          (:data:`HYBRID_CANDIDATES`), fused by ``fusion``: ``"rrf"`` (reciprocal rank fusion,
          the sum of ``1 / (rrf_k + rank)`` over the rankings a record is in) or
          ``"weighted"`` (each ranking's scores min-max normalised over its candidates, 1.0
          for all when they are equal, then ``alpha * vector + (1 - alpha) * keyword``, a
          missing side counting 0). A hit's ``score`` is its fused score, its ``distance`` the
          vector distance between the query's embedding and the record's vector; hits by
          score descending, then id ascending.

        Raises:
            NoModelError: the engine has no model (modes "vector" and "hybrid").
            InvalidArgumentError: ``mode`` or ``fusion`` unknown, ``rrf_k`` not a finite number
                above 0, ``alpha`` not a finite number from 0 to 1.
        """

    @overload
    @abstractmethod
    def keyword_search(  # type: ignore[overload-overlap]  # a str is a Sequence[str]
        self, queries: str, k: int = DEFAULT_K, where: Where | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> list[SearchResult]: ...

    @overload
    @abstractmethod
    def keyword_search(
        self, queries: Sequence[str], k: int = DEFAULT_K, where: Where | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> list[list[SearchResult]]: ...

    @abstractmethod
    def keyword_search(
        self, queries: str | Sequence[str], k: int = DEFAULT_K, where: Where | None = None, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> list[Any]:
        """The ``k`` records whose texts best match the query's words: BM25 (SQLite FTS5,
        tokenizer ``porter unicode61 remove_diacritics 2``: words stemmed, case and diacritics
        ignored) over the records' texts. The query's words are its runs of letters and digits,
        English stop words left out (unless there is nothing else), any of them matching
        (``OR``); punctuation and FTS5's syntax in the query are only separators. A hit's
        ``score`` is ``-bm25`` (larger is better), its ``distance`` ``-score``; hits by score
        descending, then id ascending. A query without a word finds nothing. ``where`` and the
        scopes as in :meth:`search`. Works on any store with texts, with or without a model; a
        sequence of queries gives one list per query.
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
