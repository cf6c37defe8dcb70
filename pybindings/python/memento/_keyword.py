"""Keyword search and hybrid recall, the parts both engines share exactly: the query text made
into an SQLite FTS5 query (:func:`fts_query`), and the fusion of a vector ranking with a keyword
ranking (:func:`fuse`). The Rust engine implements the same rules (the native module's
``keyword_query`` is held to :func:`fts_query` by the test suite).

Keyword search is BM25 over the records' texts (SQLite FTS5, tokenizer :data:`FTS_TOKENIZER`):
a hit's score is ``-bm25`` (larger is better) and its distance ``-score``; hits come by score
descending, then id ascending.
"""

from __future__ import annotations

import math
import numbers
import sqlite3
import string
import threading
from collections.abc import Sequence
from typing import Final

__all__ = [
    "STOP_WORDS",
    "FTS_TOKENIZER",
    "HYBRID_CANDIDATES",
    "DEFAULT_RRF_K",
    "DEFAULT_ALPHA",
    "FUSIONS",
    "tokens",
    "fts_query",
    "fts_all_query",
    "text_matches",
    "fuse",
    "fuse_rrf",
    "fuse_weighted",
    "keyword_order",
    "check_fusion",
]

#: The tokenizer of the FTS5 tables over the records' texts (both engines).
FTS_TOKENIZER: Final = "porter unicode61 remove_diacritics 2"

#: Each side of a hybrid recall takes its best ``max(k, HYBRID_CANDIDATES)`` candidates.
HYBRID_CANDIDATES: Final = 50

#: Reciprocal rank fusion's constant: ``1 / (rrf_k + rank)``.
DEFAULT_RRF_K: Final = 60.0
#: Weighted fusion's weight of the vector side.
DEFAULT_ALPHA: Final = 0.5
#: The fusions of a hybrid recall.
FUSIONS: Final = ("rrf", "weighted")

#: English stop words, dropped from a keyword query unless nothing else is left. The Rust
#: engine holds the identical list (the test suite compares them through the native module).
STOP_WORDS: Final = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves
    out over own same she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves
    """.split()
)


def is_separator(c: str) -> bool:
    """Whether ``c`` separates the words of a keyword query: an ASCII character other than a
    letter or a digit, or white space (``str.isspace``, which outside ASCII is the same set as
    Unicode's White_Space that the Rust engine uses)."""
    return (c.isascii() and not c.isalnum()) or c.isspace()


#: ASCII upper case to lower case, and nothing else.
_ASCII_LOWER: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_lower(word: str) -> str:
    """``word`` with its ASCII letters lower-cased (how stop words and repeats are compared)."""
    return word.translate(_ASCII_LOWER)


def tokens(text: str) -> list[str]:
    """The maximal runs of characters that are not separators (:func:`is_separator`), in order.
    The rule needs no Unicode table that differs between Python's and Rust's versions, so both
    engines cut any text the same way; FTS5's tokenizer then cuts a word further where it sees
    fit (matching its pieces as a phrase)."""
    out: list[str] = []
    start = -1
    for i, c in enumerate(text):
        if not is_separator(c):
            if start < 0:
                start = i
        elif start >= 0:
            out.append(text[start:i])
            start = -1
    if start >= 0:
        out.append(text[start:])
    return out


def _terms(text: str) -> list[str]:
    """The quoted words of a query text (:func:`fts_query`'s rule)."""
    toks = tokens(text)
    kept = [t for t in toks if ascii_lower(t) not in STOP_WORDS] or toks
    seen: set[str] = set()
    out: list[str] = []
    for t in kept:
        low = ascii_lower(t)
        if low in seen:
            continue
        seen.add(low)
        out.append(f'"{t}"')
    return out


def fts_query(text: str) -> str:
    """The FTS5 query of a keyword search for ``text``: its tokens (:func:`tokens`) without the
    stop words (all of them kept when only stop words are there), without repeats (the first
    kept), both compared with ASCII letters lower-cased (:func:`ascii_lower`), each in double
    quotes, joined by ``" OR "``. ``""`` when the text has no token (the search then finds
    nothing). The same as the Rust engine's ``memento::fts_query``.

    >>> fts_query('Closing the generators: "gen.close()"!')
    '"Closing" OR "generators" OR "gen" OR "close"'
    """
    return " OR ".join(_terms(text))


def fts_all_query(text: str) -> str:
    """The FTS5 query of a ``$matches`` filter condition: :func:`fts_query`'s words joined by
    ``" AND "`` (a record must hold every one); ``""`` when the text has no word. The same as the
    Rust engine's ``memento::fts_all_query``."""
    return " AND ".join(_terms(text))


_ONE_LOCK: Final = threading.Lock()
_ONE: sqlite3.Connection | None = None


def text_matches(text: str, query: str) -> bool:
    """Whether one text matches an FTS5 query, tokenized as the full-text index tokenizes: a
    ``$matches`` condition on one record (the Rust engine's reference evaluator does the same, in
    an in-memory database)."""
    global _ONE
    with _ONE_LOCK:
        if _ONE is None:
            c = sqlite3.connect(":memory:", check_same_thread=False)
            c.execute(f"CREATE VIRTUAL TABLE one USING fts5(text, tokenize = '{FTS_TOKENIZER}')")
            _ONE = c
        _ONE.execute("INSERT INTO one (rowid, text) VALUES (1, ?)", (text,))
        try:
            (n,) = _ONE.execute("SELECT count(*) FROM one WHERE one MATCH ?", (query,)).fetchone()
        finally:
            _ONE.execute("DELETE FROM one")
        return bool(n)


def keyword_order(hits: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """(id, score) pairs by score descending, then id ascending."""
    return sorted(hits, key=lambda h: (-h[1], h[0]))


def _top(fused: dict[str, float], k: int) -> list[tuple[str, float]]:
    return sorted(fused.items(), key=lambda h: (-h[1], h[0]))[:k]


def fuse_rrf(vector: Sequence[str], keyword: Sequence[str], k: int, rrf_k: float = DEFAULT_RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: ``fused(d)`` is the sum over the rankings where ``d`` appears of
    ``1 / (rrf_k + rank)`` (rank from 1), in float64. The best ``k`` (id, fused) pairs, fused
    descending, then id ascending. ``vector`` and ``keyword``: the two rankings' ids, best
    first."""
    fused: dict[str, float] = {}
    for ranking in (vector, keyword):
        for rank, i in enumerate(ranking, start=1):
            fused[i] = fused.get(i, 0.0) + 1.0 / (rrf_k + float(rank))
    return _top(fused, k)


def _min_max(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return [1.0] * len(scores)
    return [(s - lo) / (hi - lo) for s in scores]


def fuse_weighted(
    vector: Sequence[tuple[str, float]], keyword: Sequence[tuple[str, float]], k: int, alpha: float = DEFAULT_ALPHA
) -> list[tuple[str, float]]:
    """Weighted fusion: each ranking's scores min-max normalised over its candidates
    (``(s - min) / (max - min)``, or 1.0 for all when ``max == min``), then ``fused = alpha * v
    + (1 - alpha) * kw``, a missing side contributing 0, in float64. The best ``k`` (id, fused)
    pairs, fused descending, then id ascending. ``vector`` and ``keyword``: (id, score) pairs
    (larger is better)."""
    v = dict(zip((i for i, _ in vector), _min_max([float(s) for _, s in vector])))
    kw = dict(zip((i for i, _ in keyword), _min_max([float(s) for _, s in keyword])))
    fused: dict[str, float] = {}
    for i in list(v) + [i for i in kw if i not in v]:
        fused[i] = alpha * v.get(i, 0.0) + (1.0 - alpha) * kw.get(i, 0.0)
    return _top(fused, k)


def fuse(
    fusion: str, param: float, vector: Sequence[tuple[str, float]], keyword: Sequence[tuple[str, float]], k: int
) -> list[tuple[str, float]]:
    """:func:`fuse_rrf` (``param`` is ``rrf_k``) or :func:`fuse_weighted` (``param`` is
    ``alpha``) of two rankings of (id, score) pairs, best first."""
    if fusion == "rrf":
        return fuse_rrf([i for i, _ in vector], [i for i, _ in keyword], k, param)
    if fusion == "weighted":
        return fuse_weighted(vector, keyword, k, param)
    raise ValueError(f"unknown fusion {fusion!r}")


def _real(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_fusion(fusion: object, rrf_k: object, alpha: object) -> tuple[str, float]:
    """The fusion and its parameter (``rrf_k`` for "rrf", ``alpha`` for "weighted"); ValueError
    with the reason when ``fusion`` is not one of :data:`FUSIONS`, ``rrf_k`` not a finite number
    above 0 or ``alpha`` not a finite number from 0 to 1 (both are checked, whatever the
    fusion)."""
    if not isinstance(fusion, str) or fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(repr(f) for f in FUSIONS)}, not {fusion!r}")
    if not _real(rrf_k) or not math.isfinite(float(rrf_k)) or float(rrf_k) <= 0:  # type: ignore[arg-type]
        raise ValueError(f"rrf_k must be a finite number above 0, not {rrf_k!r}")
    if not _real(alpha) or not math.isfinite(float(alpha)) or not (0.0 <= float(alpha) <= 1.0):  # type: ignore[arg-type]
        raise ValueError(f"alpha must be a finite number from 0 to 1, not {alpha!r}")
    return fusion, float(rrf_k if fusion == "rrf" else alpha)  # type: ignore[arg-type]
