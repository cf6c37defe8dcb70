"""The stated limits (issue 13, items 5, 7, 8 and the $gt message of 9): both engines enforce
each one the same way, with the same typed error and message naming it, and keep everything
within them exactly. ``memento._limits`` mirrors the Rust engine's ``memento::limits``."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from conftest import native_module
from memento import _limits
from memento.errors import InvalidArgumentError, InvalidFilterError, InvalidVectorError, MementoError

NORM_MSG = (
    "The vector is not valid: its Euclidean norm is {}, above the limit of 1e18 under the dot and l2 metrics "
    "(a larger one can overflow a distance)."
)
META_DEPTH_MSG = "Invalid argument: metadata nests at most 32 levels of objects and lists."
FILTER_DEPTH_MSG = "The filter is not valid: a filter nests at most 32 levels of objects and lists."


def test_the_python_limits_are_the_native_ones():
    native = native_module()
    got = native.limits()
    mine = {name: getattr(_limits, name) for name in got}
    assert mine == got
    for dim in [0, 1, 2, 2016, 2017, 4064, 4065, 8160, 8161, 16352, 16353, 32736, 32737, 65504, 65505, 65536, 65537]:
        assert _limits.min_page_size(dim) == native.min_page_size(dim), dim
    assert _limits.max_dimension(_limits.DEFAULT_PAGE_SIZE) == 16352


@pytest.mark.parametrize("metric", ["dot", "l2"])
def test_a_vector_whose_distance_could_overflow_is_refused_at_write_and_query(engine_cls, store_path, metric):
    with engine_cls(store_path, dimension=2, metric=metric) as db:
        with pytest.raises(InvalidVectorError):
            db.add(["a", "b"], [[3e38, -3e38], [1, 1]])
        # (float32(3e38) is 3.0000000054977558e38.)
        with pytest.raises(InvalidVectorError) as e:
            db.add("a", [3e38, -3e38])
        assert str(e.value) == NORM_MSG.format("4.2426406948942856e38")
        assert db.count() == 0
        # At the limit: every search answers with every record, at finite distances.
        db.add(["a", "b", "c"], [[1e18, 0], [1, 1], [-7e17, 7e17]])
        for q in ([2, 2], [1e18, 0], [-7e17, -7e17]):
            hits = db.search(q, k=10)
            assert sorted(h.id for h in hits) == ["a", "b", "c"], q
            assert all(np.isfinite(h.distance) for h in hits)
        with pytest.raises(InvalidVectorError) as e:
            db.search([3e38, -3e38], k=10)
        assert str(e.value) == NORM_MSG.format("4.2426406948942856e38")
        with pytest.raises(InvalidVectorError):
            db.upsert("d", [1e18, 1e18])
        assert db.count() == 3


def test_cosine_needs_only_finite_non_zero(engine_cls, store_path):
    with engine_cls(store_path, dimension=2, metric="cosine") as db:
        db.add(["a", "b"], [[3e38, -3e38], [1, 1]])
        assert len(db.search([3e38, 3e38], k=10)) == 2


def test_a_dimension_beyond_the_default_page_says_what_page_it_needs(engine_cls, tmp_path):
    for dim in (16353, 65536):
        with pytest.raises(InvalidArgumentError) as e:
            engine_cls(tmp_path / f"d{dim}", dimension=dim, metric="l2")
        need = _limits.min_page_size(dim)
        assert str(e.value) == (
            f"Invalid argument: dimension {dim} needs a page of at least {need} bytes, and the page size is 65536 "
            f"(which holds up to 16352 dimensions): pass page_size={need}."
        )
    with engine_cls(tmp_path / "ok", dimension=16352, metric="l2") as db:
        assert db.dimension == 16352
    with engine_cls(tmp_path / "big", dimension=16353, metric="l2", page_size=131072) as db:
        v = np.arange(16353, dtype=np.float32) % 7
        db.add("x", v)
        assert db.search(v, k=1)[0].id == "x"
    with engine_cls(tmp_path / "big", dimension=16353) as db:
        assert db.count() == 1
    for bad in (10000, 4096, 32 << 20):
        with pytest.raises(InvalidArgumentError) as e:
            engine_cls(tmp_path / f"p{bad}", dimension=4, page_size=bad)
        assert str(e.value) == f"Invalid argument: page size {bad} is not a power of two from 8 KiB to 16 MiB."
    with pytest.raises(InvalidArgumentError):
        engine_cls(tmp_path / "s", dimension=4, page_size="64k")
    with pytest.raises(InvalidArgumentError) as e:
        engine_cls(tmp_path / "too", dimension=65537)
    assert str(e.value) == "Invalid argument: dimension 65537 is outside 1 to 65,536."


def test_a_metadata_integer_beyond_64_bits_is_refused_naming_its_key(engine_cls, store_path):
    with engine_cls(store_path, dimension=2, metric="l2") as db:
        for big in (2**70, 2**63, -(2**63) - 1, 2**64 - 1):
            with pytest.raises(InvalidArgumentError) as e:
                db.add("x", [1, 0], metadatas={"small": 1, "big": big})
            assert str(e.value) == (
                f'Invalid argument: the integer {big} under the key "big" in metadata is outside the range of a 64-bit '
                "signed integer (-9223372036854775808 to 9223372036854775807); store a larger one as a string or a float."
            )
        assert db.count() == 0
        with pytest.raises(InvalidFilterError) as e:
            db.get(where={"big": {"$gte": 2**70}})
        assert "the integer 1180591620717411303424 under the key \"big\" in a filter" in str(e.value)
        # The edges of i64 are kept exactly and matched.
        db.add(["min", "max"], [[1, 0], [0, 1]], metadatas=[{"n": -(2**63)}, {"n": 2**63 - 1}])
        for rid, n in (("min", -(2**63)), ("max", 2**63 - 1)):
            got = db.get(where={"n": n})
            assert [m.id for m in got] == [rid]
            assert got[0].metadata == {"n": n} and type(got[0].metadata["n"]) is int


def _awkward_floats(n: int) -> list[float]:
    rng = random.Random(13)
    out = [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 0.1, 1 / 3, 2.0**-1074 * 3]
    while len(out) < n:
        out.append(struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0])
    return [f for f in out if np.isfinite(f)]


def test_metadata_floats_round_trip_bit_for_bit(engine_cls, store_path):
    floats = _awkward_floats(2000)
    with engine_cls(store_path, dimension=2, metric="l2") as db:
        db.add([f"r{i}" for i in range(len(floats))], np.ones((len(floats), 2), np.float32), metadatas=[{"f": f} for f in floats])
    with engine_cls(store_path) as db:
        got = {m.id: m.metadata["f"] for m in db.get([f"r{i}" for i in range(len(floats))])}
        for i, f in enumerate(floats):
            assert struct.pack("<d", got[f"r{i}"]) == struct.pack("<d", f), (i, f, got[f"r{i}"])
        # And each is found by equality.
        for i in range(0, len(floats), 97):
            assert f"r{i}" in [m.id for m in db.get(where={"f": floats[i]})]


def _nested(levels: int) -> dict:
    """Metadata nested ``levels`` levels: the object, then lists."""
    v: object = 1
    for _ in range(levels - 1):
        v = [v]
    return {"a": v}


def test_metadata_nests_at_most_32_levels(engine_cls, store_path):
    with engine_cls(store_path, dimension=2, metric="l2") as db:
        db.add("ok", [1, 0], metadatas=_nested(32))
        assert db.get("ok").metadata == _nested(32)
        for levels in (33, 200, 5000):
            with pytest.raises(InvalidArgumentError) as e:
                db.add("deep", [1, 0], metadatas=_nested(levels))
            assert str(e.value) == META_DEPTH_MSG, levels
            with pytest.raises(InvalidArgumentError) as e:
                db.update("ok", metadatas=_nested(levels))
            assert str(e.value) == META_DEPTH_MSG, levels
        assert db.count() == 1


def _deep_filter(levels: int) -> dict:
    f: dict = {"a": 1}
    for _ in range(levels):
        f = {"$and": [f]}
    return f


def test_a_filter_nests_at_most_32_levels(engine_cls, store_path):
    with engine_cls(store_path, dimension=2, metric="l2") as db:
        db.add("x", [1, 0], metadatas={"a": 1})
        assert [m.id for m in db.get(where=_deep_filter(15))] == ["x"]
        for levels in (16, 63, 64, 1000, 5000):
            for call in (lambda f: db.get(where=f), lambda f: db.search([1, 0], k=1, where=f), lambda f: db.delete(where=f)):
                with pytest.raises(InvalidFilterError) as e:
                    call(_deep_filter(levels))
                assert str(e.value) == FILTER_DEPTH_MSG, levels
        assert db.count() == 1


def test_an_ordering_operator_does_not_offer_booleans(engine_cls, store_path):
    with engine_cls(store_path, dimension=2, metric="l2") as db:
        for op in ("$gt", "$gte", "$lt", "$lte"):
            with pytest.raises(InvalidFilterError) as e:
                db.get(where={"a": {op: None}})
            assert str(e.value) == f'The filter is not valid: {op} on "a" needs a number or a string, not null.'
            with pytest.raises(InvalidFilterError) as e:
                db.get(where={"a": {op: True}})
            assert str(e.value) == f'The filter is not valid: {op} on "a" needs a number or a string, not a boolean.'
        with pytest.raises(InvalidFilterError) as e:
            db.get(where={"a": {"$eq": None}})
        assert str(e.value) == 'The filter is not valid: $eq on "a" needs a string, a number or a boolean, not null.'


def test_limit_errors_are_memento_errors(engine_cls, store_path):
    """Nothing too deep escapes as a bare RecursionError."""
    with engine_cls(store_path, dimension=2, metric="l2") as db:
        for bad in (lambda: db.add("d", [1, 0], metadatas=_nested(100_000)), lambda: db.get(where=_deep_filter(100_000))):
            with pytest.raises(MementoError):
                bad()



TEXT_MSG = "Invalid argument: a text is at most 805306368 bytes (768 MiB) of UTF-8, and this one is {}."
META_LEN_MSG = "Invalid argument: metadata is at most 67108864 bytes (64 MiB) as JSON, and this is {}."


def test_a_text_or_metadata_over_its_limit_is_refused_alike_and_the_largest_record_is_kept(engine_cls, tmp_path):
    # Before: the Rust engine took up to 1 GiB for a record, SQLite's mirror refuses a value over
    # 10^9 bytes, so a 10^9-byte text was committed to the WAL, then refused by the mirror, and
    # every later open of the store failed replaying it; the Python engine had no limit at all.
    path = str(tmp_path / "s")
    big = _limits.MAX_TEXT_BYTES
    with engine_cls(path, dimension=2, metric="l2") as db:
        db.add("small", [1, 0])
        with pytest.raises(InvalidArgumentError) as e:
            db.add("a", [0, 1], texts="x" * (big + 1))
        assert str(e.value) == TEXT_MSG.format(big + 1)
        with pytest.raises(InvalidArgumentError) as e:
            db.update("small", texts="é" * (big // 2 + 1))  # 2 bytes each in UTF-8
        assert str(e.value) == TEXT_MSG.format(big + 2)
        meta_over = {"k": "x" * (_limits.MAX_METADATA_BYTES - 7)}  # {"k":"…"} is 8 bytes more
        with pytest.raises(InvalidArgumentError) as e:
            db.add("a", [0, 1], metadatas=meta_over)
        assert str(e.value) == META_LEN_MSG.format(_limits.MAX_METADATA_BYTES + 1)
        with pytest.raises(InvalidArgumentError):
            db.update("small", metadatas=meta_over)
        assert db.count() == 1 and db.get("small").text is None and db.get("small").metadata is None
        # The largest text and the largest metadata in one record: stored, and the store opens.
        meta_max = {"k": "y" * (_limits.MAX_METADATA_BYTES - 8)}
        db.add("a", [0, 1], texts="x" * big, metadatas=meta_max)
        del meta_max
    with engine_cls(path) as db:
        r = db.get("a")
        assert len(r.text) == big and len(r.metadata["k"]) == _limits.MAX_METADATA_BYTES - 8
        assert db.count() == 2
