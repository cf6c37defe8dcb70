"""The differential test's parts (test_differential.py): the random workload (hypothesis
strategies of operations over a raw-vector store), how each front end runs an operation, and
how two outcomes are compared.

An operation's *outcome* is ``("ok", value)`` or ``("err", class name)``. The CLI's errors are
mapped to the Python class names by their message (``cli_error_class``): the CLI prints the
engine's own message (``memento::Error``'s Display), or its own words for what it checks
before calling the engine.

Comparison rule for search results (``same_hits``): the same number of hits; distances equal
position by position within ``TOL`` (relative to their size; non-finite ones equal exactly);
ids equal as *sets* within each run of distances that are equal within ``TOL`` (the engines
agree on ties by insertion order only where they compute bit-identical distances, and float32
sums in another order differ in the last bit), and the last run may differ in its members (a
tie across the k-th place can be cut on either side). Records are compared exactly (id, text,
metadata as canonical JSON), vectors within ``TOL``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

import memento

TOL = 1e-4

# ------------------------------------------------------------------------------------------
# The workload

#: Ids: a small pool (so that adds collide and deletes hit), unicode, a NUL, spaces, a leading
#: dash, the longest allowed (1,024 bytes), one byte too long, and the empty id.
IDS = ["a", "b", "c", "d", "e", "ü-1", "日本", "sp ace", "-dash", "k\x00nul", "x" * 1024, "y" * 1025, ""]
COMMON_IDS = IDS[:6]
KEYS = ["g", "s", "n", "f", "b", "é", "k\x00"]

ints = st.integers(-3, 3)
hostile_floats = st.sampled_from([math.nan, math.inf, -math.inf, 1e30, 3e38, -3e38, 1e-40, 0.5, -0.0])

scalar_values = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**70, -(2**70)]),
    st.sampled_from([0.5, -1.5, 1e300, 1e-300, 2.0]),
    st.booleans(),
    st.sampled_from(["", "x", "y", "é", "日本", "a\x00b"]),
)
meta_values = st.one_of(
    scalar_values,
    st.none(),
    st.lists(scalar_values, max_size=2),
    st.dictionaries(st.sampled_from(["p", "q"]), scalar_values, max_size=2),
)
metadatas = st.one_of(st.none(), st.dictionaries(st.sampled_from(KEYS), meta_values, max_size=3))
texts = st.sampled_from([None, "alpha", "beta gamma", "gamma", "日本語", ""])


def vectors(dim: int):
    """Mostly small integer coordinates (exact distances, so real ties); some hostile ones
    (NaN, infinities, huge, subnormal), zero vectors, and the wrong dimension."""
    return st.one_of(
        st.lists(ints, min_size=dim, max_size=dim),
        st.lists(ints, min_size=dim, max_size=dim),
        st.lists(ints, min_size=dim, max_size=dim),
        st.lists(st.one_of(ints, hostile_floats), min_size=dim, max_size=dim),
        st.just([0] * dim),
        st.lists(ints, min_size=dim + 1, max_size=dim + 1),
    )


def scalars_for_filter():
    return st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 2**63, 2**70]), st.booleans(), st.sampled_from(["x", "y", "", "é"]))


def conditions():
    """A condition on one key: a bare scalar, or one or two operators (and some invalid)."""
    s = scalars_for_filter()
    op = st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]), s),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(s, min_size=1, max_size=3)),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.just([])),  # invalid: an empty list
        st.tuples(st.sampled_from(["$not", "$regex"]), s),  # invalid: not an operator
        st.tuples(st.sampled_from(["$gt", "$eq"]), st.sampled_from([None, [1], {"a": 1}])),  # invalid operands
    )
    return st.one_of(s, st.lists(op, min_size=1, max_size=2).map(dict))


def filters():
    leaf = st.one_of(
        st.dictionaries(st.sampled_from(KEYS[:6]), conditions(), min_size=1, max_size=2),
        st.sampled_from(["a", "gamma", "日本", ""]).map(lambda t: {"$contains": t}),
        st.sampled_from(["a", "gamma"]).map(lambda t: {"$not_contains": t}),
        st.just({}),
    )
    tree = st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.tuples(st.sampled_from(["$and", "$or"]), st.lists(inner, min_size=1, max_size=3)).map(lambda t: {t[0]: t[1]}),
            inner.map(lambda f: {"$not": f}),  # not in the language: an InvalidFilterError
            st.just({"$and": []}),  # invalid: an empty list
        ),
        max_leaves=5,
    )
    deep = st.sampled_from([63, 64, 70]).map(_nested)  # around the nesting limit
    return st.one_of(tree, tree, tree, deep)


def _nested(depth: int) -> dict:
    f: dict = {"g": 1}
    for _ in range(depth - 1):
        f = {"$and": [f]}
    return f


def ops(dim: int, ids=st.sampled_from(IDS), common=st.sampled_from(COMMON_IDS)):
    """One operation as a tuple ("name", args...)."""
    id_ = st.one_of(common, common, ids)
    batch = st.integers(1, 4).flatmap(
        lambda n: st.tuples(st.lists(id_, min_size=n, max_size=n), st.lists(vectors(dim), min_size=n, max_size=n), st.lists(metadatas, min_size=n, max_size=n), st.lists(texts, min_size=n, max_size=n))
    )
    return st.one_of(
        batch.map(lambda b: ("add", *b)),
        batch.map(lambda b: ("add", *b)),
        batch.map(lambda b: ("upsert", *b)),
        batch.map(lambda b: ("upsert", *b)),
        st.lists(id_, min_size=1, max_size=3).map(lambda i: ("delete", i)),
        filters().map(lambda f: ("delete_where", f)),
        st.tuples(id_, metadatas).map(lambda t: ("update_meta", *t)),
        st.lists(id_, min_size=1, max_size=3).map(lambda i: ("get", i)),
        st.tuples(filters(), st.one_of(st.none(), st.integers(1, 4))).map(lambda t: ("get_where", *t)),
        st.tuples(vectors(dim), st.integers(1, 12), st.one_of(st.none(), filters())).map(lambda t: ("search", *t)),
        st.tuples(vectors(dim), st.integers(1, 12), st.one_of(st.none(), filters())).map(lambda t: ("search", *t)),
        st.just(("count",)),
        st.just(("reopen",)),
    )


@st.composite
def workloads(draw, max_ops: int):
    """A store (dimension 2 to 8, a metric) and a list of operations on it."""
    dim = draw(st.integers(2, 8))
    metric = draw(st.sampled_from(["cosine", "dot", "l2"]))
    return dim, metric, draw(st.lists(ops(dim), min_size=1, max_size=max_ops))


# ------------------------------------------------------------------------------------------
# Running an operation through the Python API (either engine)


def _canon_meta(m) -> str:
    return json.dumps(m, sort_keys=True, ensure_ascii=False)


def record_value(r) -> tuple:
    return (r.id, r.text, _canon_meta(r.metadata), tuple(float(x) for x in r.vector))


def hits_value(hits) -> list[tuple[str, float]]:
    return [(h.id, float(h.distance)) for h in hits]


def outcome_of(fn):
    """Runs ``fn``: ("ok", its value) or ("err", the exception's class name). A Rust panic, or
    an exception that is not a MementoError, is an outcome of its own class too (so the two
    engines must at least fail alike), and ``typed_errors`` lists them for the test."""
    try:
        return ("ok", fn())
    except BaseException as e:  # noqa: BLE001 - a PanicException derives from BaseException
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        name = type(e).__name__
        if not isinstance(e, memento.MementoError):
            name = f"untyped:{name}"
        return ("err", name)


class ApiStore:
    """A store behind the Python API: RustEngine or PythonEngine."""

    def __init__(self, cls, path: Path, dim: int, metric: str):
        self.cls, self.path, self.dim, self.metric = cls, path, dim, metric
        self.e = cls(str(path), dimension=dim, metric=metric, model=None)

    def run(self, op):
        name, args = op[0], op[1:]
        e = self.e
        if name in ("add", "upsert"):
            ids, vecs, metas, txts = args
            return outcome_of(lambda: getattr(e, name)(list(ids), np.asarray(vecs, dtype=np.float64) if _rect(vecs) else vecs, texts=list(txts), metadatas=list(metas)))
        if name == "delete":
            return outcome_of(lambda: e.delete(list(args[0])))
        if name == "delete_where":
            return outcome_of(lambda: e.delete(where=args[0]))
        if name == "update_meta":
            return outcome_of(lambda: e.update(args[0], metadatas=args[1]))
        if name == "get":
            return outcome_of(lambda: [record_value(r) for r in e.get(list(args[0]))])
        if name == "get_where":
            return outcome_of(lambda: [record_value(r) for r in e.get(where=args[0], limit=args[1])])
        if name == "search":
            q, k, where = args
            return outcome_of(lambda: hits_value(e.search(q, k, where)))
        if name == "count":
            return outcome_of(e.count)
        if name == "reopen":
            e.close()
            self.e = self.cls(str(self.path), model=None)
            return ("ok", None)
        raise ValueError(name)

    def contents(self):
        return [record_value(r) for r in self.e.get()]

    def close(self):
        self.e.close()


def _rect(vecs) -> bool:
    return len({len(v) for v in vecs}) == 1


# ------------------------------------------------------------------------------------------
# Comparing outcomes


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


def same_records(a: list[tuple], b: list[tuple]) -> str | None:
    if len(a) != len(b):
        return f"{len(a)} records vs {len(b)}"
    for i, (x, y) in enumerate(zip(a, b)):
        if x[:3] != y[:3]:
            return f"record {i}: {x[:3]!r} vs {y[:3]!r}"
        if len(x[3]) != len(y[3]) or not all(_close(p, q) for p, q in zip(x[3], y[3])):
            return f"record {i} ({x[0]!r}): vector {x[3]} vs {y[3]}"
    return None


def same_hits(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> str | None:
    """None if the two hit lists agree by the rule in the module's docstring, else why not."""
    if len(a) != len(b):
        return f"{len(a)} hits vs {len(b)}: {a} vs {b}"
    for i, ((_, da), (_, db)) in enumerate(zip(a, b)):
        if not _close(da, db):
            return f"rank {i}: distance {da} vs {db}: {a} vs {b}"
    runs: list[list[int]] = []
    for i, (_, d) in enumerate(a):
        if runs and _close(a[runs[-1][0]][1], d):
            runs[-1].append(i)
        else:
            runs.append([i])
    for run in runs[:-1]:
        if {a[i][0] for i in run} != {b[i][0] for i in run}:
            return f"ranks {run[0]}..{run[-1]}: ids {[a[i][0] for i in run]} vs {[b[i][0] for i in run]}"
    if len({x for x, _ in a}) != len(a) or len({x for x, _ in b}) != len(b):
        return f"an id is returned twice: {a} vs {b}"
    return None


def compare(op, x, y) -> str | None:
    """None if outcomes ``x`` and ``y`` of ``op`` agree, else a description."""
    if x[0] != y[0] or (x[0] == "err" and x[1] != y[1]):
        return f"{x} vs {y}"
    if x[0] == "err":
        return None
    name = op[0]
    if name in ("get", "get_where"):
        return same_records(x[1], y[1])
    if name == "search":
        return same_hits(x[1], y[1])
    return None if x[1] == y[1] else f"{x[1]!r} vs {y[1]!r}"


# ------------------------------------------------------------------------------------------
# The CLI


def cli_error_class(stderr: str, status: int) -> str:
    """The Python error class a CLI error corresponds to, from the message it prints."""
    s = stderr.lower()
    table = [
        ("dimensions but the store holds", "DimensionMismatchError"),
        ("the vector is not valid", "InvalidVectorError"),
        ("of the vector", "InvalidVectorError"),  # "element i of the vector ... out of the range of a 32-bit float"
        ("zero vector has no direction", "InvalidVectorError"),
        ("the filter is not valid", "InvalidFilterError"),
        ("--where is not a valid filter", "InvalidFilterError"),
        ("no record has the id", "NotFoundError"),
        ("no records have the ids", "NotFoundError"),
        ("already exists", "DuplicateIdError"),
        ("is given a second time", "DuplicateIdError"),
        ("invalid argument", "InvalidArgumentError"),
        ("an id is 1 to 1,024 bytes", "InvalidArgumentError"),
        ("metadata", "InvalidArgumentError"),
    ]
    for needle, cls in table:
        if needle in s:
            return cls
    return f"cli-exit-{status}:{stderr.strip()[:200]}"


def _json_num(x: float):
    """A vector element as the CLI reads it: JSON has no NaN or infinity, so an infinity is
    written as a number beyond float32 (which the CLI refuses as such); NaN cannot be written."""
    if math.isinf(x):
        return "1e39" if x > 0 else "-1e39"
    if float(x).is_integer() and abs(x) < 2**53:
        return str(int(x))
    return repr(float(x))


def vector_json(v) -> str | None:
    if any(isinstance(x, float) and math.isnan(x) for x in v):
        return None
    return "[" + ", ".join(_json_num(x) for x in v) + "]"


def cli_expressible(op) -> bool:
    """Whether the CLI can be given this operation: no NaN (JSON has none), no NUL in a
    command-line argument (an id given as an argument), and a meaning the CLI has (its `add`
    replaces, so only `upsert` is run; reopening is what every command does)."""
    name = op[0]
    if name in ("add", "reopen"):
        return False
    if name == "upsert":
        return all(vector_json(v) is not None for v in op[2])
    if name in ("delete", "get"):
        return all("\x00" not in i and i != "" for i in op[1])
    if name == "update_meta":
        return "\x00" not in op[1] and op[1] != ""
    if name == "search":
        return vector_json(op[1]) is not None
    return True


class CliStore:
    """A store behind the `memento` command line: one process per operation."""

    def __init__(self, exe: Path, path: Path, dim: int, metric: str):
        self.exe, self.path = exe, path
        r = self._run("init", "--dimension", str(dim), "--metric", metric)
        assert r[0] == "ok", f"memento init failed: {r}"

    def _run(self, *args: str, stdin: str | None = None):
        p = subprocess.run([str(self.exe), "--store", str(self.path), "--json", *args], input=stdin, capture_output=True, text=True, timeout=60)
        if p.returncode == 0:
            out = p.stdout.strip()
            return ("ok", json.loads(out) if out else None)
        assert "panicked" not in p.stderr, f"the CLI panicked: {p.stderr}"
        return ("err", cli_error_class(p.stderr, p.returncode))

    def run(self, op):
        name, args = op[0], op[1:]
        if name == "upsert":
            ids, vecs, metas, txts = args
            lines = []
            for i, v, m, t in zip(ids, vecs, metas, txts):
                fields = [f'"id": {json.dumps(i)}', f'"vector": {vector_json(v)}']
                if m is not None:
                    fields.append(f'"metadata": {json.dumps(m, ensure_ascii=False)}')
                if t is not None:
                    fields.append(f'"text": {json.dumps(t, ensure_ascii=False)}')
                lines.append("{" + ", ".join(fields) + "}")
            with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            try:
                r = self._run("add", "--format", "jsonl", "-f", f.name)
            finally:
                os.unlink(f.name)
            return ("ok", None) if r[0] == "ok" else r
        if name == "delete":
            r = self._run("delete", "--missing-ok", "--", *args[0])
            return ("ok", r[1]["deleted"]) if r[0] == "ok" else r
        if name == "delete_where":
            r = self._run("delete", "--where", json.dumps(args[0], ensure_ascii=False))
            return ("ok", r[1]["deleted"]) if r[0] == "ok" else r
        if name == "update_meta":
            id_, meta = args
            extra = ["--clear-meta"] if meta is None else ["--meta", json.dumps(meta, ensure_ascii=False)]
            r = self._run("update", *extra, "--", id_)
            return ("ok", None) if r[0] == "ok" else r
        if name == "get":
            r = self._run("get", "--vector", "--", *args[0])
            return ("ok", [_cli_record(x) for x in r[1]]) if r[0] == "ok" else r
        if name == "get_where":
            where, limit = args
            extra = [] if limit is None else ["--limit", str(limit)]
            r = self._run("get", "--vector", "--where", json.dumps(where, ensure_ascii=False), *extra)
            return ("ok", [_cli_record(x) for x in r[1]]) if r[0] == "ok" else r
        if name == "search":
            q, k, where = args
            extra = [] if where is None else ["--where", json.dumps(where, ensure_ascii=False)]
            r = self._run("search", "-k", str(k), *extra, "--", vector_json(q))
            return ("ok", [(h["id"], _num(h["distance"])) for h in r[1]]) if r[0] == "ok" else r
        if name == "count":
            r = self._run("stats")
            return ("ok", r[1]["records"]) if r[0] == "ok" else r
        raise ValueError(name)

    def contents(self):
        r = self._run("get", "--vector", "--where", "{}")
        assert r[0] == "ok", r
        return [_cli_record(x) for x in r[1]]


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _cli_record(x: dict) -> tuple:
    return (x["id"], x["text"], _canon_meta(x["metadata"]), tuple(_num(v) for v in x["vector"]))


def _f32_bits(v) -> tuple:
    return tuple(np.asarray(v, dtype=np.float64).astype(np.float32).view(np.uint32).tolist())


def _conflicting_repeat(op) -> int | None:
    """The index of the first record of an upsert that gives an earlier record's id with
    something different (its text, its metadata, or a vector that differs as float32 bits)."""
    first: dict[str, tuple] = {}
    for j, (i, v, m, t) in enumerate(zip(*op[1:])):
        rec = (t, _canon_meta(m), _f32_bits(v))
        if first.setdefault(i, rec) != rec:
            return j
    return None


def cli_refusal(op, cls, dim: int, metric: str):
    """What the CLI refuses by design where the engines accept: an input file that gives one id
    twice with something different is refused whole (DuplicateIdError), where an engine's upsert
    lets the last one win; the same record twice is stored once, as the engines store it.

    The CLI checks an input as the engine checks a batch (every id, then record by record) and
    a record's repeat after the record itself, so an error the engine finds in the records up to
    the conflicting one comes first. That is found by giving those records (and the later ids,
    with harmless records) to engine ``cls`` on a scratch store: an upsert's verdict does not
    depend on what the store holds. None if the CLI takes the input."""
    if op[0] != "upsert":
        return None
    j = _conflicting_repeat(op)
    if j is None:
        return None
    ids, vecs, metas, txts = op[1:]
    rest = len(ids) - j - 1
    unit = [1] + [0] * (dim - 1)
    probe = ("upsert", ids, list(vecs[: j + 1]) + [unit] * rest, list(metas[: j + 1]) + [None] * rest, list(txts[: j + 1]) + [None] * rest)
    base = Path(tempfile.mkdtemp(prefix="memento-diff-probe-"))
    try:
        scratch = ApiStore(cls, base / "s", dim, metric)
        try:
            verdict = scratch.run(probe)
        finally:
            scratch.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return verdict if verdict[0] == "err" else ("err", "DuplicateIdError")


def api_expectation_for_cli(op, outcome):
    """What the CLI should answer where the Python API's answer has another shape: `get` of
    ids fails with NotFoundError if one is missing (the API skips missing ids)."""
    if op[0] == "get" and outcome[0] == "ok":
        found = {r[0] for r in outcome[1]}
        if any(i not in found for i in op[1]):
            return ("err", "NotFoundError")
    return outcome
