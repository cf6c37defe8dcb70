"""Vector maths of the pure-Python engine, and the input conversion both engines share.

Everything works on float32 numpy arrays, as the Rust engine does:

* **Conversion** (:func:`as_matrix`, :func:`as_batch`): lists, tuples and numpy arrays of any
  real dtype become C-contiguous float32 arrays (arrays that already are float32 and
  C-contiguous are used as they are, without a copy). Arrays of strings, objects, complex
  numbers, ragged lists and arrays of more than two dimensions are refused with
  :class:`~memento.errors.InvalidArgumentError`; a length other than the store's dimension is a
  :class:`~memento.errors.DimensionMismatchError`.
* **Validation** (:func:`check_finite`, :func:`prepare`): NaN and infinities are
  :class:`~memento.errors.InvalidVectorError` (naming the element, as the Rust engine does), so
  is a zero vector under cosine.
* **Normalisation** (:func:`normalize`): rows to unit L2 norm, computed in float32.
* **Distances** (:func:`distances`): ``1 - cos`` for cosine (on normalised vectors, clamped at
  0), ``-dot`` for dot, the squared Euclidean distance for l2. Smaller is closer.
* **Top k** (:func:`top_k`): the k smallest distances, ties broken by position (insertion
  order).
* **Bytes** (:func:`to_bytes`, :func:`from_bytes`): little-endian float32 blobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from .errors import DimensionMismatchError, InvalidArgumentError, InvalidVectorError

__all__ = [
    "METRICS",
    "Metric",
    "FloatMatrix",
    "FloatVector",
    "check_metric",
    "as_matrix",
    "as_vector",
    "as_batch",
    "check_finite",
    "normalize",
    "prepare",
    "distances",
    "top_k",
    "search",
    "to_bytes",
    "from_bytes",
    "to_list",
]

Metric = Literal["cosine", "dot", "l2"]
METRICS: Final[tuple[str, ...]] = ("cosine", "dot", "l2")

FloatMatrix = npt.NDArray[np.float32]
FloatVector = npt.NDArray[np.float32]

_LE_F32: Final = np.dtype("<f4")
#: Rows scored per block by the l2 distance (bounds the temporary memory).
_L2_BLOCK: Final = 8192


def check_metric(metric: object) -> Metric:
    """``metric`` if it names a metric ("cosine", "dot" or "l2"), else InvalidArgumentError."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise InvalidArgumentError(f"Invalid argument: the metric must be one of cosine, dot, l2, not {metric!r}.")
    return metric  # type: ignore[return-value]


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"an array of dtype {x.dtype} and shape {x.shape}"
    return f"a {type(x).__name__}"


def _to_array(x: object, name: str) -> npt.NDArray[Any]:
    """Any array-like as a numpy array of a real numeric dtype (not yet float32)."""
    if isinstance(x, (str, bytes, bytearray, memoryview)):
        raise InvalidArgumentError(f"Invalid argument: {name} must be numbers (a numpy array or a list of floats), not {_describe(x)}.")
    if isinstance(x, np.ndarray):
        a = x
    else:
        try:
            a = np.asarray(x)
        except (ValueError, TypeError, OverflowError) as e:  # ragged nested lists, ...
            raise InvalidArgumentError(f"Invalid argument: {name} cannot be read as an array of floats ({e}).") from None
    kind = a.dtype.kind
    if kind not in "fiub":
        what = {"O": "objects", "U": "strings", "S": "bytes", "c": "complex numbers", "V": "records", "M": "dates", "m": "time deltas"}
        raise InvalidArgumentError(
            f"Invalid argument: {name} must hold real numbers, not {what.get(kind, a.dtype.name)} "
            f"(dtype {a.dtype}); pass a float32 array or a list of floats."
        )
    return a


def _float32(a: npt.NDArray[Any]) -> FloatMatrix:
    """``a`` as C-contiguous native float32: no copy when it already is."""
    if a.dtype == np.float32 and a.dtype.isnative and a.flags.c_contiguous and a.flags.aligned:
        return a
    with np.errstate(over="ignore", invalid="ignore"):
        # A copy (np.ascontiguousarray would return an unaligned contiguous array as it is).
        return np.array(a, dtype=np.float32, order="C", copy=True)


def as_matrix(x: object, dim: int | None = None, *, name: str = "vectors") -> FloatMatrix:
    """``x`` (one vector or a batch, numpy or nested lists) as a 2-D C-contiguous float32 array:
    a 1-D input becomes one row. ``dim``: the expected row length (DimensionMismatchError
    otherwise). A float32 C-contiguous 2-D array is returned as it is (no copy)."""
    a = _to_array(x, name)
    if a.ndim == 1:
        a = a.reshape(1, -1)
    elif a.ndim != 2:
        raise InvalidArgumentError(f"Invalid argument: {name} must be a 1-D vector or a 2-D array of vectors, not {a.ndim}-D (shape {a.shape}).")
    if dim is not None and a.shape[1] != dim and a.shape[0] > 0:
        raise DimensionMismatchError(
            f"The vector has {a.shape[1]} dimensions but the store holds {dim}-dimensional vectors.", expected=dim, got=int(a.shape[1])
        )
    return _float32(a)


def as_vector(x: object, dim: int | None = None, *, name: str = "vector") -> FloatVector:
    """``x`` as one 1-D C-contiguous float32 vector (see :func:`as_matrix`)."""
    a = _to_array(x, name)
    if a.ndim != 1:
        raise InvalidArgumentError(f"Invalid argument: {name} must be a 1-D vector, not {a.ndim}-D (shape {a.shape}).")
    if dim is not None and a.shape[0] != dim:
        raise DimensionMismatchError(
            f"The vector has {a.shape[0]} dimensions but the store holds {dim}-dimensional vectors.", expected=dim, got=int(a.shape[0])
        )
    return _float32(a)


def as_batch(x: object, dim: int | None = None, *, name: str = "vectors") -> tuple[FloatMatrix, bool]:
    """``x`` as a 2-D float32 batch, and whether it was a single 1-D vector. An empty list is an
    empty batch of shape ``(0, dim)``."""
    if isinstance(x, (list, tuple)) and len(x) == 0:
        return np.zeros((0, dim or 0), dtype=np.float32), False
    a = _to_array(x, name)
    single = a.ndim == 1
    return as_matrix(a, dim, name=name), single


def check_finite(m: npt.NDArray[np.float32]) -> None:
    """InvalidVectorError if any element is NaN or infinite, naming the first (per row, as the
    Rust engine does: "element i is NaN")."""
    finite = np.isfinite(m)
    if finite.all():
        return
    bad = np.argwhere(~finite)[0]
    i = int(bad[-1])
    v = float(m[tuple(bad)])
    shown = "NaN" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    raise InvalidVectorError(f"The vector is not valid: element {i} is {shown}.")


UNIT_NORM_TOLERANCE = 2.0**-20


def normalize(m: npt.NDArray[np.float32]) -> FloatMatrix:
    """Rows scaled to unit L2 norm, as the Rust engine does it (the norm in float64, then each
    element times the float32 inverse; a row whose norm is within 2**-20 of 1 is kept as it is),
    so both engines store the same bits. InvalidVectorError
    for a zero row: it has no direction. Returns a new float32 array of the input's shape."""
    m2 = np.atleast_2d(m)
    norms = np.sqrt(np.einsum("ij,ij->i", m2, m2, dtype=np.float64))
    if not (norms > 0).all():
        raise InvalidVectorError("The vector is not valid: a zero vector has no direction, so it cannot be compared by cosine.")
    inv = 1.0 / norms
    f32 = np.finfo(np.float32)
    normal = (inv < float(f32.max)) & (inv > float(f32.tiny))
    with np.errstate(over="ignore", invalid="ignore"):
        res = m2 * inv.astype(np.float32)[:, None]
    if not normal.all():
        rows = ~normal
        res[rows] = (m2[rows].astype(np.float64) * inv[rows][:, None]).astype(np.float32)
    # Rows already of unit length (within 2**-20, UNIT_NORM_TOLERANCE in the Rust kernels) keep
    # their bits, so normalising twice changes nothing (export then import is exact).
    unit = np.abs(norms - 1.0) <= UNIT_NORM_TOLERANCE
    if unit.any():
        res[unit] = m2[unit]
    out: FloatMatrix = res.reshape(m.shape)
    return out


def prepare(m: npt.NDArray[np.float32], metric: str) -> FloatMatrix:
    """Validated vectors as the store keeps them and queries are scored: finite, and unit
    length under cosine. Returns a new array (the input is never modified)."""
    check_finite(m)
    if metric == "cosine":
        return normalize(m)
    return np.array(m, dtype=np.float32, copy=True)


def distances(stored: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], metric: str) -> FloatMatrix:
    """Distances ``(n_queries, n_stored)`` in float32. ``stored`` and ``queries`` are prepared
    vectors (:func:`prepare`): under cosine both are unit vectors."""
    q = np.atleast_2d(queries)
    with np.errstate(over="ignore", invalid="ignore"):
        if metric == "cosine":
            d = np.float32(1.0) - q @ stored.T
            np.maximum(d, np.float32(0.0), out=d)  # 1 - cos of unit vectors can round below 0
            return d
        if metric == "dot":
            return -(q @ stored.T)
        if metric == "l2":
            out = np.empty((q.shape[0], stored.shape[0]), dtype=np.float32)
            for i, qi in enumerate(q):
                for s in range(0, stored.shape[0], _L2_BLOCK):
                    diff = stored[s : s + _L2_BLOCK] - qi
                    out[i, s : s + _L2_BLOCK] = np.einsum("ij,ij->i", diff, diff, dtype=np.float32)
            return out
    raise InvalidArgumentError(f"Invalid argument: unknown metric {metric!r}.")


def top_k(d: npt.NDArray[np.float32], k: int, candidates: npt.NDArray[np.intp] | None = None) -> npt.NDArray[np.intp]:
    """Positions of the ``k`` smallest distances of the 1-D ``d``, closest first, ties by
    position (insertion order). ``candidates``: only these positions (ascending) compete."""
    if candidates is not None:
        sub = d[candidates]
        return candidates[top_k(sub, k)]
    n = d.shape[0]
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.intp)
    if k >= n:
        idx = np.arange(n, dtype=np.intp)
    else:
        part = np.argpartition(d, k - 1)[:k]
        kth = d[part].max()
        # Every position at or below the k-th distance: the ties at the boundary are then
        # settled by position, not by argpartition's arbitrary choice.
        idx = np.flatnonzero(d <= kth) if not np.isnan(kth) else np.arange(n, dtype=np.intp)
    order = np.lexsort((idx, d[idx]))
    return idx[order[:k]]


#: A filter keeping at most 1/16 of the records is searched by gathering them (as in Rust).
_DIRECT_FRACTION: Final = 16
#: Distances computed per block of queries: at most this many floats.
_BLOCK_FLOATS: Final = 1 << 22


def search(
    stored: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    k: int,
    metric: str,
    candidates: npt.NDArray[np.intp] | None = None,
) -> list[tuple[npt.NDArray[np.intp], FloatVector]]:
    """Brute-force search: for each prepared query, the positions of its ``k`` nearest stored
    vectors and their distances, closest first (ties by position). ``candidates``: the
    ascending positions that may be returned (a filter's matches, live rows); None for all."""
    q = np.atleast_2d(queries)
    empty = (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32))
    if k <= 0 or stored.shape[0] == 0 or (candidates is not None and candidates.size == 0):
        return [empty for _ in range(q.shape[0])]
    gather = candidates is not None and candidates.size * _DIRECT_FRACTION <= stored.shape[0]
    pool = stored[candidates] if gather else stored
    restrict = None if gather else candidates
    out: list[tuple[npt.NDArray[np.intp], FloatVector]] = []
    block = max(1, _BLOCK_FLOATS // max(pool.shape[0], 1))
    for s in range(0, q.shape[0], block):
        dm = distances(pool, q[s : s + block], metric)
        for row in dm:
            pos = top_k(row, k, restrict)
            dist = row[pos].astype(np.float32, copy=True)
            if gather:
                assert candidates is not None
                pos = candidates[pos]
            out.append((pos, dist))
    return out


def to_bytes(v: npt.NDArray[np.float32]) -> bytes:
    """A vector as little-endian float32 bytes."""
    return np.ascontiguousarray(v, dtype=_LE_F32).tobytes()


def from_bytes(b: bytes, dim: int | None = None) -> FloatVector:
    """A vector from little-endian float32 bytes (a new, native-endian, writable array)."""
    v = np.frombuffer(b, dtype=_LE_F32).astype(np.float32)
    if dim is not None and v.shape[0] != dim:
        raise ValueError(f"a stored vector has {v.shape[0]} elements, not {dim}")
    return v


def to_list(v: npt.NDArray[np.float32] | Sequence[float]) -> list[float]:
    """A vector as a list of Python floats."""
    return [float(x) for x in np.asarray(v, dtype=np.float32).ravel()]
