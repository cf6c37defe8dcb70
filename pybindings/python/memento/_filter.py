"""Chroma's filter language for the pure-Python engine, with the Rust engine's exact semantics
(``engine/src/filter.rs``; the README's "Filters" paragraph).

Grammar (a filter is a JSON object):

* ``{"key": scalar}`` is ``{"key": {"$eq": scalar}}``.
* ``{"key": {"$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte": scalar}}``; several operators in one
  condition are combined with AND.
* ``{"key": {"$in" | "$nin": [scalar, ...]}}`` with a non-empty list.
* ``{"$and": [filter, ...]}``, ``{"$or": [filter, ...]}`` with non-empty lists.
* ``{"$contains": "text"}``, ``{"$not_contains": "text"}``: a case-sensitive substring test on the
  document text (non-empty string).
* ``{"$matches": "words"}``, ``{"$not_matches": "words"}``: the text holds every word, as keyword
  search sees words (SQLite FTS5's ``porter unicode61 remove_diacritics 2``, stop words ignored;
  :mod:`memento._keyword`); the string must hold a word.
* Several entries in one object are combined with AND; ``{}`` matches every record.

Scalars are strings, numbers and booleans. ``$gt``/``$gte``/``$lt``/``$lte`` take a number or a
string. A value matches an operand of its own type only (a boolean is not a number); numbers
compare numerically (an integer operand must fit an i64; a stored integer outside it, written
before that rule, compares as the nearest float), strings by their
UTF-8 bytes. ``$eq``, the orderings and ``$in`` need the key present with a value of the
operand's type; ``$ne`` and ``$nin`` are their exact negations, so they match records that lack
the key. ``$contains`` needs a text; ``$not_contains`` is its negation (true without a text).
At most 32 levels of objects and lists (``{"a": 1}`` is one, ``{"$and": [{"a": 1}]}`` three) and
4,096 conditions and list values in all (:mod:`memento._limits`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final, Union

from ._keyword import fts_all_query, text_matches
from ._limits import MAX_FILTER_TERMS as MAX_TERMS
from ._limits import depth_error, json_text_error
from .errors import InvalidFilterError

__all__ = ["Predicate", "compile_filter", "compile_filter_json", "filter_json", "MAX_TERMS"]

_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1

#: ``predicate(text, metadata) -> bool``.
Predicate = Callable[[Union[str, None], Union[Mapping[str, Any], None]], bool]

_CMP_OPS: Final = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")


def _invalid(reason: str) -> InvalidFilterError:
    return InvalidFilterError(f"The filter is not valid: {reason}.")


def filter_json(where: object) -> str:
    """The JSON text of a ``where`` filter (what the native module parses). InvalidFilterError
    if it is not a dict or cannot be written as JSON (NaN, infinities, non-JSON objects)."""
    if not isinstance(where, Mapping):
        raise _invalid(f"a filter must be a JSON object (a dict), not {_kind_py(where)}")
    try:
        return json.dumps(where, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise _invalid(f"it cannot be written as JSON ({e})") from None
    except RecursionError:
        # Far deeper than the limit (json.dumps recurses once per level).
        raise _invalid(depth_error("a filter")) from None


def _q(s: str) -> str:
    """A string quoted as Rust's ``{:?}`` shows it (close enough for messages)."""
    return json.dumps(s, ensure_ascii=False)


def _kind_py(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, Mapping):
        return "an object"
    return f"a {type(v).__name__}"


def _kind(v: object) -> str:
    """What a JSON value is, for messages (as filter.rs says it)."""
    return _kind_py(v)


def _describe(v: object) -> str:
    if isinstance(v, list) and not v:
        return "an empty list"
    return _kind(v)


# Typed scalars: (type tag, comparable value). Tags: 0 bool, 1 number, 2 string. Strings are
# compared as UTF-8 bytes (the same order as code points, except for lone surrogates).
_Scalar = tuple[int, Any]


def _num(v: int | float) -> int | float:
    if isinstance(v, int) and not (_I64_MIN <= v <= _I64_MAX):
        return float(v)
    return v


def _typed(v: object) -> _Scalar | None:
    """A metadata value as a typed scalar; None for null, lists, objects."""
    if isinstance(v, bool):
        return (0, v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and v != v:  # NaN never matches
            return None
        return (1, _num(v))
    if isinstance(v, str):
        return (2, v.encode("utf-8", "surrogatepass"))
    return None


def _scalar(v: object) -> _Scalar:
    """An operand as a typed scalar; raises a message naming what it is instead."""
    t = _typed(v)
    if t is None:
        raise _NotScalar(_kind(v))
    return t


class _NotScalar(Exception):
    pass


class _Parser:
    def __init__(self) -> None:
        self.terms = 0

    def count(self, n: int) -> None:
        self.terms += n
        if self.terms > MAX_TERMS:
            raise _invalid(f"the filter holds more than {MAX_TERMS} conditions and list values")

    def filter(self, value: object) -> Predicate | None:
        """None means "matches everything" (the depth is checked on the JSON text first)."""
        if not isinstance(value, dict):
            raise _invalid(f"a filter must be a JSON object, not {_kind(value)}")
        parts: list[Predicate | None] = []
        for key, v in value.items():
            if not isinstance(key, str):
                raise _invalid(f"the key {key!r} is not a string")
            if key.startswith("$"):
                parts.append(self.top_operator(key, v))
            else:
                parts.append(self.field(key, v))
        return _and(parts)

    def top_operator(self, op: str, v: object) -> Predicate | None:
        if op in ("$and", "$or"):
            if not isinstance(v, list) or not v:
                raise _invalid(f"{op} needs a non-empty list of filters, not {_describe(v)}")
            children: list[Predicate | None] = []
            for item in v:
                if not isinstance(item, dict):
                    raise _invalid(f"each element of {op} must be a filter (a JSON object), not {_kind(item)}")
                children.append(self.filter(item))
            return _and(children) if op == "$and" else _or(children)
        if op in ("$contains", "$not_contains"):
            if not isinstance(v, str):
                raise _invalid(f"{op} needs a non-empty string, not {_kind(v)}")
            if not v:
                raise _invalid(f"{op} needs a non-empty string")
            self.count(1)
            needle = v
            if op == "$contains":
                return lambda text, md: text is not None and needle in text
            return lambda text, md: text is None or needle not in text
        if op in ("$matches", "$not_matches"):
            if not isinstance(v, str):
                raise _invalid(f"{op} needs a string of words, not {_kind(v)}")
            query = fts_all_query(v)
            if not query:
                raise _invalid(f"{op} needs a string with a word in it")
            self.count(1)
            if op == "$matches":
                return lambda text, md: text is not None and text_matches(text, query)
            return lambda text, md: text is None or not text_matches(text, query)
        if op in _CMP_OPS or op in ("$in", "$nin"):
            raise _invalid(f'{op} must be applied to a metadata key, as in {{"key": {{"{op}": ...}}}}')
        raise _invalid(f"unknown operator {op}")

    def field(self, key: str, v: object) -> Predicate | None:
        if "\0" in key:
            raise _invalid(f"the metadata key {_q(key)} contains the NUL character")
        if isinstance(v, dict):
            if not v:
                raise _invalid(f"the condition on {_q(key)} is an empty object")
            parts: list[Predicate | None] = []
            for op, operand in v.items():
                parts.append(self.condition(key, op, operand))
            return _and(parts)
        if isinstance(v, list):
            raise _invalid(f"the value for {_q(key)} is a list; use $in to match any of several values")
        try:
            value = _scalar(v)
        except _NotScalar as e:
            raise _invalid(f"the value for {_q(key)} is {e}, which cannot be matched") from None
        self.count(1)
        return _cmp(key, "$eq", value)

    def condition(self, key: str, op: str, operand: object) -> Predicate | None:
        q = _q(key)
        if op in _CMP_OPS:
            allowed = "a string, a number or a boolean" if op in ("$eq", "$ne") else "a number or a string"
            try:
                value = _scalar(operand)
            except _NotScalar as e:
                raise _invalid(f"{op} on {q} needs {allowed}, not {e}") from None
            if value[0] == 0 and op not in ("$eq", "$ne"):
                raise _invalid(f"{op} on {q} needs a number or a string, not a boolean")
            self.count(1)
            return _cmp(key, op, value)
        if op in ("$in", "$nin"):
            if not isinstance(operand, list) or not operand:
                raise _invalid(f"{op} on {q} needs a non-empty list of values, not {_describe(operand)}")
            self.count(len(operand))
            values: list[_Scalar] = []
            for item in operand:
                try:
                    values.append(_scalar(item))
                except _NotScalar as e:
                    raise _invalid(f"the list of {op} on {q} may hold strings, numbers and booleans, not {e}") from None
            return _in(key, values, negated=op == "$nin")
        if op.startswith("$"):
            raise _invalid(f"unknown operator {op}")
        raise _invalid(f"the condition on {q} holds the key {_q(op)}, which is not an operator (nested metadata is not supported)")


def _and(parts: list[Predicate | None]) -> Predicate | None:
    ps = [p for p in parts if p is not None]
    if not ps:
        return None
    if len(ps) == 1:
        return ps[0]
    return lambda text, md: all(p(text, md) for p in ps)


def _or(parts: list[Predicate | None]) -> Predicate | None:
    if any(p is None for p in parts):
        return None
    ps = [p for p in parts if p is not None]
    if len(ps) == 1:
        return ps[0]
    return lambda text, md: any(p(text, md) for p in ps)


def _cmp(key: str, op: str, operand: _Scalar) -> Predicate:
    ty, want = operand

    def value(md: Mapping[str, Any] | None) -> Any:
        """The record's value if it is present and of the operand's type, else a sentinel."""
        if md is None or key not in md:
            return _MISSING
        t = _typed(md[key])
        if t is None or t[0] != ty:
            return _MISSING
        return t[1]

    if op == "$eq":
        return lambda text, md: (v := value(md)) is not _MISSING and v == want
    if op == "$ne":
        return lambda text, md: (v := value(md)) is _MISSING or v != want
    if op == "$gt":
        return lambda text, md: (v := value(md)) is not _MISSING and v > want
    if op == "$gte":
        return lambda text, md: (v := value(md)) is not _MISSING and v >= want
    if op == "$lt":
        return lambda text, md: (v := value(md)) is not _MISSING and v < want
    return lambda text, md: (v := value(md)) is not _MISSING and v <= want


def _in(key: str, values: list[_Scalar], negated: bool) -> Predicate:
    wanted: dict[int, list[Any]] = {}
    for ty, v in values:
        wanted.setdefault(ty, []).append(v)

    def found(md: Mapping[str, Any] | None) -> bool:
        if md is None or key not in md:
            return False
        t = _typed(md[key])
        if t is None:
            return False
        return any(t[1] == w for w in wanted.get(t[0], ()))

    if negated:
        return lambda text, md: not found(md)
    return lambda text, md: found(md)


class _Missing:
    __slots__ = ()


_MISSING: Final = _Missing()


def compile_filter_json(text: str) -> Predicate | None:
    """:func:`compile_filter` of a filter given as JSON text."""
    bad = json_text_error(text, "a filter")
    if bad is not None:
        raise _invalid(bad)
    try:
        value = json.loads(text)
    except ValueError as e:
        raise _invalid(f"the filter is not valid JSON ({e})") from None
    return _Parser().filter(value)


def compile_filter(where: object) -> Predicate | None:
    """Parses and validates a ``where`` filter (InvalidFilterError otherwise) and returns its
    predicate, or None when it matches every record (``{}``). The filter goes through JSON
    first, exactly as it does on its way to the Rust engine."""
    return compile_filter_json(filter_json(where))
