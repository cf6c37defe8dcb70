"""Every limit of the engines' inputs, mirroring the Rust engine's ``memento::limits``
(``engine/src/limits.rs``; ``test_limits.py`` holds these to the native module's values), with
the checks the Python engine makes of them, worded as the Rust engine words them. README's
"Limits" table states them for users.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgumentError, InvalidVectorError

__all__ = [
    "MAX_DIMENSION",
    "MIN_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "DEFAULT_PAGE_SIZE",
    "PAGE_OVERHEAD",
    "MAX_ID_BYTES",
    "MAX_RECORD_BYTES",
    "MAX_TEXT_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_FILTER_TERMS",
    "MAX_VECTOR_NORM",
    "I64_MIN",
    "I64_MAX",
    "page_size_ok",
    "max_dimension",
    "min_page_size",
    "check_page_size",
    "layout_error",
    "json_text_error",
    "depth_error",
    "check_vector_norms",
    "text_error",
    "metadata_len_error",
]

#: The largest dimension (it also needs a page that holds one vector: :func:`min_page_size`).
MAX_DIMENSION: Final = 65_536
#: The smallest page size.
MIN_PAGE_SIZE: Final = 8192
#: The largest page size.
MAX_PAGE_SIZE: Final = 16 << 20
#: The page size of a new store unless one is chosen.
DEFAULT_PAGE_SIZE: Final = 65_536
#: The bytes of a Rust vector page before its first vector (64-byte header and one 8-byte slot
#: number, aligned to 64): a page of P bytes holds a vector of dimension d if 4d + this <= P.
PAGE_OVERHEAD: Final = 128
#: The longest id, in bytes of UTF-8.
MAX_ID_BYTES: Final = 1024
#: The largest record of the Rust engine's WAL (id, text, metadata and vector, with a header).
MAX_RECORD_BYTES: Final = 1 << 30
#: The longest text of a record, in bytes of UTF-8 (768 MiB). With the metadata limit, any
#: record fits both the WAL and SQLite's largest row (10^9 bytes), whatever an update changes.
MAX_TEXT_BYTES: Final = 768 << 20
#: The longest metadata of a record, in bytes of compact JSON (64 MiB).
MAX_METADATA_BYTES: Final = 64 << 20
#: How deeply metadata and filters may nest objects and lists (``{"a": 1}`` is 1 level).
MAX_JSON_DEPTH: Final = 32
#: How many conditions and $in/$nin list values a filter may hold in all.
MAX_FILTER_TERMS: Final = 4096
#: The largest Euclidean norm of a vector under dot and l2 (no float32 distance overflows).
MAX_VECTOR_NORM: Final = 1e18
#: The integers metadata and filters may hold (SQLite's INTEGER).
I64_MIN: Final = -(2**63)
I64_MAX: Final = 2**63 - 1


def page_size_ok(page_size: int) -> bool:
    """Whether a store may have pages of ``page_size`` bytes."""
    return MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE and page_size & (page_size - 1) == 0


def max_dimension(page_size: int) -> int:
    """The largest dimension a page of ``page_size`` bytes holds (0 if none)."""
    return min(max(page_size - PAGE_OVERHEAD, 0) // 4, MAX_DIMENSION)


def min_page_size(dim: int) -> int | None:
    """The smallest page size that holds a vector of dimension ``dim`` (None outside 1 to 65,536)."""
    if not 1 <= dim <= MAX_DIMENSION:
        return None
    need = max(PAGE_OVERHEAD + 4 * dim, MIN_PAGE_SIZE)
    return 1 << (need - 1).bit_length()


def check_page_size(page_size: object) -> int | None:
    """``page_size`` if it is None or an int (InvalidArgumentError otherwise); its value is
    checked when a store is created (:func:`layout_error`)."""
    if page_size is None:
        return None
    if isinstance(page_size, bool) or not isinstance(page_size, (int, np.integer)):
        raise InvalidArgumentError(f"Invalid argument: page_size must be an integer, not {type(page_size).__name__}.")
    ps = int(page_size)
    if not 0 <= ps < 2**32:
        raise InvalidArgumentError(f"Invalid argument: page size {ps} is not a power of two from 8 KiB to 16 MiB.")
    return ps


def layout_error(dim: int, page_size: int) -> str | None:
    """Why a new store of dimension ``dim`` cannot have pages of ``page_size`` bytes (the Rust
    engine's message, without "Invalid argument: "), or None."""
    if not 1 <= dim <= MAX_DIMENSION:
        return f"dimension {dim} is outside 1 to 65,536"
    if not page_size_ok(page_size):
        return f"page size {page_size} is not a power of two from 8 KiB to 16 MiB"
    need = min_page_size(dim)
    if need is not None and need > page_size:
        return (
            f"dimension {dim} needs a page of at least {need} bytes, and the page size is {page_size} "
            f"(which holds up to {max_dimension(page_size)} dimensions): pass page_size={need}"
        )
    return None


def depth_error(what: str) -> str:
    """The message of JSON nested past :data:`MAX_JSON_DEPTH` (``what``: "metadata", "a filter")."""
    return f"{what} nests at most {MAX_JSON_DEPTH} levels of objects and lists"


# The lexical scan of limits.rs::check_json_text: a string (to its closing quote, or the end),
# perhaps followed by a colon (a key); a bracket; a number token; anything else is skipped.
_TOKEN: Final = re.compile(r'"((?:[^"\\]|\\.)*)(?:"|\\?$)([ \t\n\r\x0c]*:)?|([\[{])|([\]}])|([-0-9][-+.eE0-9]*)', re.DOTALL)
_DIGITS: Final = re.compile(r"-?[0-9]+")


def json_text_error(text: str, what: str) -> str | None:
    """Why JSON ``text`` (metadata or a filter) is refused before it is parsed, as the Rust
    engine's ``limits::check_json_text`` says it: nested deeper than :data:`MAX_JSON_DEPTH`, or
    an integer outside i64 (naming the innermost key above it that is not an operator)."""
    if "[" not in text and "{" not in text and not any(c.isdigit() for c in text):
        return None
    depth = 0
    key: str | None = None
    for m in _TOKEN.finditer(text):
        s, colon, opening, closing, number = m.groups()
        if opening:
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return depth_error(what)
        elif closing:
            depth = max(depth - 1, 0)
        elif number is not None:
            if _DIGITS.fullmatch(number) and not I64_MIN <= int(number) <= I64_MAX:
                shown = number if len(number) <= 40 else number[:40] + "…"
                at = f" under the key {_rust_debug(key)}" if key is not None else ""
                return (
                    f"the integer {shown}{at} in {what} is outside the range of a 64-bit signed integer "
                    "(-9223372036854775808 to 9223372036854775807); store a larger one as a string or a float"
                )
        elif colon is not None and not s.startswith("$"):
            key = s
    return None


def _rust_debug(raw: str) -> str:
    """A key as Rust's ``{:?}`` shows the raw (still escaped) JSON string text: the scan does not
    unescape, so neither does this; quotes around it."""
    return f'"{raw}"'


def _rust_exp(x: float) -> str:
    """``x`` as Rust's ``{:e}`` writes an f64 (shortest round-trip digits, ``4.2e38``)."""
    sign, digits, exp = Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits))
    e = exp + len(ds) - 1
    mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    return f"{'-' if sign else ''}{mant}e{e}"


def check_vector_norms(m: npt.NDArray[np.float32], metric: str) -> npt.NDArray[np.bool_]:
    """Which rows of a finite float32 matrix are within :data:`MAX_VECTOR_NORM` (all of them
    under cosine, which normalises). The decision is the Rust engine's: the squares summed in
    float64 in order, for the rows near the limit."""
    n = m.shape[0]
    if metric == "cosine" or n == 0:
        return np.ones(n, dtype=bool)
    sq = np.einsum("ij,ij->i", m, m, dtype=np.float64)
    limit = MAX_VECTOR_NORM * MAX_VECTOR_NORM
    ok: npt.NDArray[np.bool_] = sq <= limit * (1 - 1e-9)
    for i in np.flatnonzero(~ok).tolist():
        ok[i] = _norm(m[i]) <= MAX_VECTOR_NORM
    return ok


def _norm(row: npt.NDArray[np.float32]) -> float:
    s = 0.0
    for x in row.astype(np.float64).tolist():
        s += x * x
    return float(np.sqrt(s))


def norm_error(row: npt.NDArray[np.float32]) -> InvalidVectorError:
    """The error of a row above the limit (the Rust engine's message)."""
    return InvalidVectorError(
        f"The vector is not valid: its Euclidean norm is {_rust_exp(_norm(row))}, above the limit of 1e18 under "
        "the dot and l2 metrics (a larger one can overflow a distance)."
    )


def _utf8_len_over(s: str, limit: int) -> int | None:
    """The UTF-8 length of ``s`` if it is over ``limit``, else None (encoded only when its worst
    case, 4 bytes a character, could be over)."""
    if 4 * len(s) <= limit:
        return None
    n = len(s.encode("utf-8", "surrogatepass"))
    return n if n > limit else None


def text_error(text: str) -> str | None:
    """Why a record's text is over :data:`MAX_TEXT_BYTES` (worded as the Rust engine), else None."""
    n = _utf8_len_over(text, MAX_TEXT_BYTES)
    return None if n is None else f"a text is at most {MAX_TEXT_BYTES} bytes (768 MiB) of UTF-8, and this one is {n}"


def metadata_len_error(compact_json: str) -> str | None:
    """Why metadata (as compact JSON) is over :data:`MAX_METADATA_BYTES`, else None. The Rust
    engine measures serde_json's text, which may spell a float a few bytes differently."""
    n = _utf8_len_over(compact_json, MAX_METADATA_BYTES)
    return None if n is None else f"metadata is at most {MAX_METADATA_BYTES} bytes (64 MiB) as JSON, and this is {n}"
