"""Settling an engine's open arguments before the store is opened: what is in the directory
already (a Rust store, as the native module's ``peek`` reads it, or a Python-engine store), and from that
the model, metric and dimension to open it with. Shared by both engines so that
``Engine(path, ...)`` means the same thing for each."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from ._embedder import DEFAULT_MODEL, MANIFEST_FILE, model_dir
from ._limits import MAX_DIMENSION as _MAX_DIMENSION
from .errors import InvalidArgumentError
from .vector_ops import check_metric

__all__ = [
    "RUST_VEC_FILE",
    "PY_STORE_FILE",
    "StoreInfo",
    "resolve_model",
    "resolve_metric",
    "check_dim",
    "check_durability",
    "DURABILITIES",
    "fspath",
    "refuse_collections_root",
    "COLLECTIONS_MARKER",
    "check_graph",
    "GRAPH_DEFAULTS",
    "MAX_EF",
]

#: The Rust engine's vector file (its presence means a Rust store).
RUST_VEC_FILE: Final = "memento.vec"
#: The Python engine's SQLite file (its presence means a Python-engine store).
PY_STORE_FILE: Final = "memento.python.sqlite"

#: Durability names, as NativeEngine takes them.
DURABILITIES: Final = ("sync", "group", "buffered")
_DURABILITY_ALIASES: Final = {"group_commit": "group", "groupcommit": "group"}

#: The graph index's parameters where the constructor's ``graph`` leaves them out: the Rust
#: engine's ``memento::graph::GraphParams::default()`` (tests/test_graph.py checks them against
#: the native module's).
GRAPH_DEFAULTS: Final = {"m": 16, "ef_construction": 200, "ef_search": 64, "min_vectors": 20_000}
#: The largest ``ef`` (a search's, ``ef_search``, ``ef_construction``): a walk keeps buffers of
#: a few times ``ef`` entries.
MAX_EF: Final = 1 << 20
#: ``m``'s range: level 0 keeps ``2 × m`` neighbours, at most 1,024 (FORMAT.md §7).
_GRAPH_M: Final = (2, 512)
#: ``min_vectors`` at most this (no store holds more vectors).
_MAX_MIN_VECTORS: Final = 1 << 40



@dataclass(frozen=True)
class StoreInfo:
    """What an existing store says about itself."""

    dimension: int
    metric: str
    model_id: str | None


#: The marker of a directory of collections (FORMAT.md §8), which is not a store.
COLLECTIONS_MARKER: Final = "memento.collections"


def refuse_collections_root(directory: os.PathLike[str] | str) -> None:
    """InvalidArgumentError if ``directory`` is a directory of collections: no engine opens or
    creates a store there (the Rust engine refuses it the same way)."""
    if os.path.exists(os.path.join(directory, COLLECTIONS_MARKER)):
        raise InvalidArgumentError(
            f"Invalid argument: {directory} is a directory of collections, not a store; open one of its collections "
            "(memento::Collections, memento.Client, the CLI's --collection)."
        )


def fspath(path: object) -> str:
    """A path argument as a string (InvalidArgumentError for anything else)."""
    if isinstance(path, bytes):
        return os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentError(f"Invalid argument: path must be a string or a path, not {type(path).__name__}.")
    p = os.fspath(path)
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if not p:
        raise InvalidArgumentError("Invalid argument: the store path is empty.")
    return p


def resolve_model(model: object, dim: int | None, existing: StoreInfo | None) -> str | None:
    """The model to open with: None (no model), "default", or a model directory.

    ``model="default"`` follows the store: an existing store opens with its own model (the
    default one, or the provisioned ``cache_dir()/models/<id>`` of another id; if that is not
    there, with the default model, which the engine then refuses with ModelMismatchError) or
    with none if it is a raw-vector store; a new store gets the default model when ``dim`` is
    None and no model when a dimension is given. None: no model. Anything else: that model
    directory (refused with ModelMismatchError by a store of another model or of none)."""
    if model is None:
        return None
    if isinstance(model, bytes) or not isinstance(model, (str, os.PathLike)):
        raise InvalidArgumentError(f'Invalid argument: model must be None, "default" or a model directory, not {type(model).__name__}.')
    m = os.fspath(model)
    if not m:
        raise InvalidArgumentError('Invalid argument: model must be None, "default" or a model directory, not an empty string.')
    if m != "default":
        return m
    if existing is not None:
        if existing.model_id is None:
            return None
        if existing.model_id == DEFAULT_MODEL:
            return "default"
        d = model_dir(existing.model_id)
        if (d / MANIFEST_FILE).is_file():
            return str(d)
        return "default"
    return "default" if dim is None else None


def resolve_metric(metric: object, existing: StoreInfo | None) -> str:
    """The metric to open with: the given one, else the store's, else cosine."""
    if metric is None:
        return existing.metric if existing is not None else "cosine"
    return check_metric(metric)


def check_dim(dim: object) -> int | None:
    """``dim`` if it is None or an integer from 1 to 65,536."""
    if dim is None:
        return None
    if isinstance(dim, bool) or not isinstance(dim, int):
        try:
            import numpy as np

            if isinstance(dim, np.integer):
                dim = int(dim)
            else:
                raise TypeError
        except TypeError:
            raise InvalidArgumentError(f"Invalid argument: dim must be an integer, not {type(dim).__name__}.") from None
    assert isinstance(dim, int)
    if not (1 <= dim <= _MAX_DIMENSION):
        raise InvalidArgumentError(f"Invalid argument: dimension {dim} is outside 1 to 65,536.")
    return dim


def check_durability(durability: object) -> str:
    """A durability name: "sync" (default), "group" (or "group_commit") or "buffered"."""
    if isinstance(durability, str):
        d = durability.lower()
        d = _DURABILITY_ALIASES.get(d, d)
        if d in DURABILITIES:
            return d
    raise InvalidArgumentError(f"Invalid argument: durability must be one of sync, group, buffered, not {durability!r}.")


def check_graph(graph: object) -> dict[str, int] | bool | None:
    """The constructor's ``graph``: None (or True) for the default graph index, False for none,
    or a mapping of some of ``m`` (2 to 512), ``ef_construction`` and ``ef_search`` (1 to
    1,048,576) and ``min_vectors`` (0 or more), returned complete with the defaults
    (:data:`GRAPH_DEFAULTS`). InvalidArgumentError for anything else."""
    if graph is None or graph is True:
        return None
    if graph is False:
        return False
    from collections.abc import Mapping

    if not isinstance(graph, Mapping):
        raise InvalidArgumentError(
            f"Invalid argument: graph must be None, False or a dict of m, ef_construction, ef_search and min_vectors, not {type(graph).__name__}."
        )
    out = dict(GRAPH_DEFAULTS)
    ranges = {"m": _GRAPH_M, "ef_construction": (1, MAX_EF), "ef_search": (1, MAX_EF), "min_vectors": (0, _MAX_MIN_VECTORS)}
    for key, value in graph.items():
        if key not in ranges:
            raise InvalidArgumentError(f"Invalid argument: graph has no parameter {key!r}; use m, ef_construction, ef_search and min_vectors.")
        lo, hi = ranges[key]
        if isinstance(value, bool) or not _is_int(value) or not (lo <= int(value) <= hi):
            raise InvalidArgumentError(f"Invalid argument: graph[{key!r}] must be an integer from {lo:,} to {hi:,}, not {value!r}.")
        out[key] = int(value)
    return out


def _is_int(v: object) -> bool:
    if isinstance(v, int):
        return True
    import numpy as np

    return isinstance(v, np.integer)
