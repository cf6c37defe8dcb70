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

from ._engine import Core, Engine
from ._limits import check_page_size
from ._store import PY_STORE_FILE, RUST_VEC_FILE, StoreInfo, check_dim, check_durability, check_graph, fspath, resolve_metric, resolve_model
from .base import GraphArg
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


class RustEngine(Engine):
    """The Rust engine (``memento._native``), what ``memento.Engine(...)`` opens whenever the
    native module imports: the arguments of :class:`memento.Engine`, the methods of
    :mod:`memento.base`. Every call that does I/O, searches or embeds releases the GIL.

    Raises:
        ImportError: the native module is not available.
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
        mod = native()
        p = fspath(path)
        dimension = check_dim(dimension)
        page_size = check_page_size(page_size)
        durability = check_durability(durability)
        graph_params = check_graph(graph)
        if metric is not None:
            check_metric(metric)
        for name, flag in (("create", create), ("read_only", read_only), ("group_access", group_access)):
            if not isinstance(flag, bool):
                raise InvalidArgumentError(f"Invalid argument: {name} must be True or False, not {flag!r}.")
        d = Path(p)
        if (d / PY_STORE_FILE).exists() and not (d / RUST_VEC_FILE).exists():
            raise IncompatibleError(
                f"The store cannot be opened this way: {d} holds a store of the Python engine ({PY_STORE_FILE}), "
                "which the Rust engine cannot read; open it with memento.PythonEngine."
            )
        found = mod.peek(p)
        existing = None if found is None else StoreInfo(found["dimension"], found["metric"], found["model_id"])
        model_spec = resolve_model(model, dimension, existing)
        metric_res = resolve_metric(metric, existing)
        core: Core = mod.NativeEngine(p, dimension, metric_res, model_spec, durability, create, page_size, read_only, group_access, graph_params)
        return core, "rust"
