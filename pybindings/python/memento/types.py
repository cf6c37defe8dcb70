"""The records and results both engines return: :class:`Memory` and :class:`SearchResult`.

Both are frozen, slotted dataclasses. Their vectors are read-only float32 numpy arrays (copy one
to modify it), and their metadata is a plain ``dict`` decoded from the stored JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Memory", "SearchResult", "Metadata", "score_of"]

#: Metadata of a record: a JSON object (keys are strings).
Metadata = dict[str, Any]


@dataclass(frozen=True, slots=True, eq=False)
class Memory:
    """A stored record.

    Attributes:
        id: The record's id (a non-empty string).
        text: Its document text, or None.
        metadata: Its metadata (a dict decoded from JSON), or None.
        vector: Its vector: a read-only 1-D float32 array. Under the cosine metric vectors are
            stored normalised, so this is the unit vector of what was added.

    Two memories are equal when their ids, texts, metadata and vectors are equal (the vectors
    element by element); a memory hashes by id and text.
    """

    id: str
    text: str | None
    metadata: Metadata | None
    vector: npt.NDArray[np.float32] = field(repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Memory):
            return NotImplemented
        return (
            self.id == other.id
            and self.text == other.text
            and self.metadata == other.metadata
            and np.array_equal(self.vector, other.vector)
        )

    def __hash__(self) -> int:
        return hash((self.id, self.text))

    def __repr__(self) -> str:
        dim = int(np.shape(self.vector)[0]) if np.ndim(self.vector) == 1 else np.shape(self.vector)
        return f"Memory(id={self.id!r}, text={self.text!r}, metadata={self.metadata!r}, vector=<{dim} float32>)"


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One result of ``search`` or ``recall``, closest first.

    Attributes:
        id: The record's id.
        score: Larger is closer: ``1 - distance`` (the cosine similarity) under cosine,
            ``-distance`` (the dot product) under dot, ``-distance`` (minus the squared
            Euclidean distance) under l2.
        distance: Smaller is closer: ``1 - cos`` under cosine (never below 0), ``-dot`` under
            dot, the squared Euclidean distance under l2. Computed in float32.
        text: The record's document text, or None.
        metadata: The record's metadata, or None.
    """

    id: str
    score: float
    distance: float
    text: str | None
    metadata: Metadata | None


def score_of(metric: str, distance: float) -> float:
    """The score of a distance under ``metric`` (see :class:`SearchResult`)."""
    return 1.0 - distance if metric == "cosine" else -distance
