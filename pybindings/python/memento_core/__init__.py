"""The seed's native-module names, kept for the code that calls them: ``embed_text(text)`` and
``RustEmbedder``. Thin wrappers over :mod:`memento.embed` (the Rust embedder when the native
module is available, else the pure-Python one with the same model)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from memento.embed import Embedder, embed, load_embedder

__all__ = ["embed_text", "RustEmbedder"]


def embed_text(text: str) -> list[float]:
    """The embedding of ``text`` with the default model, as a list of floats."""
    return embed(text)


class RustEmbedder:
    """An embedding model: the default one (``model_dir=None``) or a model directory.

    Despite its (historical) name it runs on the Python embedder when the native module is not
    available; ``backend`` says which ("rust" or "python").
    """

    def __init__(self, model_dir: str | os.PathLike[str] | None = None, threads: int = 0) -> None:
        self._inner: Embedder = load_embedder(model_dir, threads)

    @property
    def backend(self) -> str:
        return str(getattr(self._inner, "backend", "python"))

    @property
    def model_id(self) -> str:
        """The model's id (such as "all-minilm-l6-v2")."""
        return self._inner.model_id

    @property
    def dimension(self) -> int:
        """The vector dimension."""
        return self._inner.dimension

    def embed(self, text: str) -> list[float]:
        """The embedding of one text, as a list of floats."""
        if not isinstance(text, str):
            from memento.errors import InvalidArgumentError

            raise InvalidArgumentError(f"Invalid argument: a text must be a string, not {type(text).__name__}.")
        return [float(x) for x in self._inner.embed_batch([text])[0]]

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The embeddings of several texts: a ``(len(texts), dimension)`` float32 array."""
        from memento.embed import _check_texts

        return np.asarray(self._inner.embed_batch(_check_texts(texts)), dtype=np.float32)

    def __repr__(self) -> str:
        return f"RustEmbedder(model_id={self.model_id!r}, dimension={self.dimension}, backend={self.backend!r})"
