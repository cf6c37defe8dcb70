"""Text embeddings with the default model, outside any store (the seed's ``memento.embed``).

``embed(text)`` returns the text's vector as a list of floats; ``embed_batch(texts)`` a
``(n, dimension)`` float32 array. They use the Rust embedder (``memento._native``) when the
native module is available and ``MEMENTO_RUST`` is not 0, else the Python one (onnxruntime +
tokenizers, the same model files and the same pooling). The model loads on first use and stays
loaded; both keep an in-memory cache of recent texts.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ._embedder import EmbeddingCache, PyEmbedder, embed_through_cache
from ._fork import leak
from .errors import InvalidArgumentError

__all__ = ["embed", "embed_batch", "Embedder", "get_embedder", "load_embedder"]


class Embedder(Protocol):
    """What :func:`get_embedder` returns: a model that embeds texts."""

    @property
    def model_id(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class _NativeEmbedder:
    """``memento._native.NativeEmbedder`` with an in-memory cache of embeddings."""

    backend = "rust"

    def __init__(self, native: Any, model_dir: str | os.PathLike[str] | None = None, threads: int = 0, cache_entries: int = 10_000) -> None:
        d = None if model_dir is None or model_dir == "default" else os.fspath(model_dir)
        self._inner = native.NativeEmbedder(d, threads)
        self.cache = EmbeddingCache(cache_entries)

    @property
    def model_id(self) -> str:
        return str(self._inner.model_id)

    @property
    def dimension(self) -> int:
        return int(self._inner.dimension)

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return embed_through_cache(self.cache, self.dimension, texts, self._inner.embed)


class _PythonEmbedder(PyEmbedder):
    backend = "python"


def load_embedder(model_dir: str | os.PathLike[str] | None = None, threads: int = 0) -> Embedder:
    """A new embedder of a model directory (None: the default model): Rust when available, else
    Python. ModelError if the model is not provisioned (run ``make setup``)."""
    from . import _load_native, _rust_disabled

    native = None if _rust_disabled() else _load_native()
    if native is not None:
        return _NativeEmbedder(native, model_dir, threads)
    return _PythonEmbedder(model_dir, threads)


_default: Embedder | None = None
_default_key: tuple[str, bool] | None = None
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child gets its own default embedder on first use: the parent's (an ONNX Runtime
    session whose threads the child lacks) is leaked, neither run nor released there, and the
    lock, which a parent thread may have held at the fork, is new."""
    global _default, _default_key, _lock
    leak(_default)
    _default, _default_key, _lock = None, None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def get_embedder() -> Embedder:
    """The process's embedder of the default model (loaded on first use, then shared)."""
    global _default, _default_key
    from . import _rust_disabled
    from ._embedder import model_dir

    key = (str(model_dir()), _rust_disabled())
    with _lock:
        if _default is None or _default_key != key:
            _default = load_embedder(None)
            _default_key = key
        return _default


def _check_texts(texts: object) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InvalidArgumentError(f"Invalid argument: texts must be a list of strings, not {type(texts).__name__}.")
    out = list(texts)
    for t in out:
        if not isinstance(t, str):
            raise InvalidArgumentError(f"Invalid argument: a text must be a string, not {type(t).__name__}.")
    return out


def embed(text: str) -> list[float]:
    """The embedding of ``text`` with the default model, as a list of floats (384 for
    all-MiniLM-L6-v2, unit length)."""
    if not isinstance(text, str):
        raise InvalidArgumentError(f"Invalid argument: a text must be a string, not {type(text).__name__}.")
    return [float(x) for x in get_embedder().embed_batch([text])[0]]


def embed_batch(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """The embeddings of ``texts`` with the default model: a ``(len(texts), dimension)``
    float32 array."""
    return get_embedder().embed_batch(_check_texts(texts))
