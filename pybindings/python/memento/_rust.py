"""The Rust engine: :class:`RustEngine`, the public API (:mod:`memento._engine`) over
``memento._native.NativeEngine``.

The native module does the storage, search and embedding with the GIL released; this layer
settles the open arguments (the store's model and metric, read from its superblock), converts
inputs (vectors to C-contiguous float32 arrays, which the native module borrows without
copying; metadata and filters to JSON) and results (dataclasses, numpy vectors).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._engine import Core, CoreEngine
from ._limits import check_page_size
from ._store import PY_STORE_FILE, RUST_VEC_FILE, StoreInfo, check_dim, check_durability, fspath, resolve_metric, resolve_model
from .errors import IncompatibleError, InvalidArgumentError
from .vector_ops import check_metric

__all__ = ["RustEngine", "native"]


def native() -> Any:
    """The native module ``memento._native`` (ImportError, with the reason, if it cannot be
    loaded)."""
    try:
        from . import _native
    except ImportError as e:
        raise ImportError(
            f"the native module memento._native cannot be imported ({e}); build and install the wheel "
            "(`make wheel` in the Memento repository), or use memento.PythonEngine"
        ) from e
    return _native


class RustEngine(CoreEngine):
    """The Rust engine (``memento._native``): see :mod:`memento.base` for the API. Every call
    that does I/O, searches or embeds releases the GIL.

    Args:
        path: The store directory (created if missing, with ``create=True``).
        dim: The vector dimension. Needed to create a raw-vector store; checked against an
            existing store (IncompatibleError if it differs).
        metric: "cosine", "dot" or "l2"; None: the store's, or cosine for a new store.
        model: "default": the store's own model for an existing store (none for a raw-vector
            store); for a new store, the default model (all-MiniLM-L6-v2) when ``dim`` is None
            and none when a dimension is given. None: no model (text calls raise
            NoModelError). A path: that model directory.
        durability: "sync" (default; each commit is fsynced before it returns), "group" (the
            same guarantee, one fsync shared by concurrent commits) or "buffered" (commits
            survive a process crash; a power loss may lose those since the last checkpoint).
        create: Create the store if it does not exist (else InvalidArgumentError).
        page_size: The page size of a new store in bytes (None: 64 KiB, which holds up to
            16,352 dimensions): a power of two from 8 KiB to 16 MiB.

    Raises:
        ImportError: the native module is not available.
    """

    _kind = "rust"

    def __init__(
        self,
        path: str | os.PathLike[str],
        dim: int | None = None,
        metric: str | None = None,
        model: str | os.PathLike[str] | None = "default",
        durability: str = "sync",
        *,
        create: bool = True,
        page_size: int | None = None,
    ) -> None:
        mod = native()
        p = fspath(path)
        dim = check_dim(dim)
        page_size = check_page_size(page_size)
        durability = check_durability(durability)
        if metric is not None:
            check_metric(metric)
        if not isinstance(create, bool):
            raise InvalidArgumentError(f"Invalid argument: create must be True or False, not {create!r}.")
        d = Path(p)
        if (d / PY_STORE_FILE).exists() and not (d / RUST_VEC_FILE).exists():
            raise IncompatibleError(
                f"The store cannot be opened this way: {d} holds a store of the Python engine ({PY_STORE_FILE}), "
                "which the Rust engine cannot read; open it with memento.PythonEngine."
            )
        found = mod.peek(p)
        existing = None if found is None else StoreInfo(found["dimension"], found["metric"], found["model_id"])
        model_spec = resolve_model(model, dim, existing)
        metric_res = resolve_metric(metric, existing)
        core: Core = mod.NativeEngine(p, dim, metric_res, model_spec, durability, create, page_size)
        super().__init__(core)
