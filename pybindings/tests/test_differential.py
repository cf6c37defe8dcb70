"""The differential test (issue 13): one random workload through the Rust engine
(``memento.RustEngine``), the pure-Python engine (``memento.PythonEngine``) and the ``memento``
command line, which must give the same answers, errors included.

The workload (``differential.workloads``) is a raw-vector store of dimension 2 to 8 under
cosine, dot or l2, and a list of operations: add and upsert of batches (duplicate ids within a
batch and across batches), delete by ids and by filter, metadata updates, get by ids, get by
filter with a limit, search with k and a filter, count, close and reopen. Values are hostile
on purpose: NaN, infinities, 3e38 and subnormal coordinates, zero vectors (under cosine),
vectors of the wrong dimension; metadata with integers beyond 64 bits, huge and tiny floats,
booleans, lists and objects, NUL in keys and strings; ids with unicode, a NUL, a leading dash,
1,024 and 1,025 bytes, the empty id; filters with every operator of the language (``$eq $ne $gt
$gte $lt $lte $in $nin $and $or $contains $not_contains``), invalid ones (``$not``, ``$regex``,
empty lists, null operands) and nesting around the depth limit.

Two legs, each with a fixed budget (``derandomize=True``, so CI runs the same examples):

* engines: every operation through both engines side by side, compared step by step, then
  both closed, reopened and their whole contents compared;
* CLI: a shorter workload through the Rust engine and the CLI (one process per operation,
  so fewer and shorter examples); operations the CLI cannot be given are left out
  (``differential.cli_expressible``). The engines leg makes the Rust engine and the Python
  engine agree, so the CLI is held to both.

The comparison rule for near-ties is in differential.py's docstring. The CLI binary is
``$MEMENTO_BIN`` if set, else ``target/release/memento`` (what ``make setup`` builds before
``make test-python``), else ``target/debug/memento``; the test fails when there is none or it
is older than the sources it is built from.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import differential as d
from conftest import REPO, engine_class

ENGINE_EXAMPLES = int(os.environ.get("DIFF_EXAMPLES", 120))
ENGINE_OPS = 30
CLI_EXAMPLES = int(os.environ.get("DIFF_CLI_EXAMPLES", 12))
CLI_OPS = 12

common = dict(derandomize=os.environ.get("DIFF_RANDOM") is None, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=False)


def _newest_source_mtime() -> float:
    newest = 0.0
    for sub in ("engine/src", "tools/src", "format-spec/src"):
        for p in (REPO / sub).rglob("*.rs"):
            newest = max(newest, p.stat().st_mtime)
    return newest


@pytest.fixture(scope="module")
def memento_cli() -> Path:
    """The `memento` binary; a test failure (not a skip) when there is none, or a stale one."""
    if os.environ.get("MEMENTO_BIN"):
        exe = Path(os.environ["MEMENTO_BIN"])
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            pytest.fail(f"MEMENTO_BIN={exe} is not an executable file", pytrace=False)
        return exe
    found = [p for p in (REPO / "target" / "release" / "memento", REPO / "target" / "debug" / "memento") if p.is_file() and os.access(p, os.X_OK)]
    if not found:
        pytest.fail("no `memento` binary in target/release or target/debug: run `make setup` (or `cargo build --release -p memento-cli --bin memento`)", pytrace=False)
    exe = found[0]
    if exe.stat().st_mtime < _newest_source_mtime():
        pytest.fail(f"{exe} is older than the sources: rebuild it (`cargo build --release -p memento-cli --bin memento`) or set MEMENTO_BIN", pytrace=False)
    return exe


def _report(step: int, op, what: str) -> str:
    return f"step {step}: {op!r}: {what}"


def _check_typed(step, op, outcome):
    assert not (outcome[0] == "err" and outcome[1].startswith("untyped:")), _report(step, op, f"an error that is not a MementoError: {outcome}")


@settings(max_examples=ENGINE_EXAMPLES, **common)
@given(d.workloads(ENGINE_OPS))
def test_rust_and_python_engines_agree(workload):
    dim, metric, ops = workload
    base = Path(tempfile.mkdtemp(prefix="memento-diff-"))
    stores = {}
    try:
        stores = {k: d.ApiStore(engine_class(k), base / k, dim, metric) for k in ("rust", "python")}
        for step, op in enumerate(ops):
            rust, python = stores["rust"].run(op), stores["python"].run(op)
            _check_typed(step, op, rust)
            _check_typed(step, op, python)
            diff = d.compare(op, rust, python)
            assert diff is None, _report(step, op, f"rust vs python: {diff}")
        for s in stores.values():
            s.run(("reopen",))
        diff = d.same_records(stores["rust"].contents(), stores["python"].contents())
        assert diff is None, f"after reopening, rust vs python: {diff}"
    finally:
        for s in stores.values():
            try:
                s.close()
            except Exception:
                pass
        shutil.rmtree(base, ignore_errors=True)


@settings(max_examples=CLI_EXAMPLES, **common)
@given(d.workloads(CLI_OPS))
def test_cli_agrees_with_the_engines(memento_cli, workload):
    dim, metric, ops = workload
    base = Path(tempfile.mkdtemp(prefix="memento-diff-cli-"))
    api = None
    try:
        api = d.ApiStore(engine_class("rust"), base / "api", dim, metric)
        cli = d.CliStore(memento_cli, base / "cli", dim, metric)
        for step, op in enumerate(o for o in ops if d.cli_expressible(o)):
            # Where the CLI refuses an input by design, the engine is not given it either.
            want = d.cli_refusal(op, engine_class("rust"), dim, metric) or d.api_expectation_for_cli(op, api.run(op))
            got = cli.run(op)
            diff = d.compare(op, want, got)
            assert diff is None, _report(step, op, f"engine vs CLI: {diff}")
        api.run(("reopen",))
        diff = d.same_records(api.contents(), cli.contents())
        assert diff is None, f"at the end, engine vs CLI: {diff}"
    finally:
        if api is not None:
            api.close()
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# The disagreements the random workload found, each as its minimal workload, run through both
# engines and (where it can be given) the CLI. RELIABILITY.md ("Differential test") lists them
# and what became of each.

FOUND = {
    # A search wrong in two ways (an invalid filter and a zero query under cosine): the Rust
    # engine checks the filter first and the Python engine checked the vector first. Fixed in
    # _pure.py (the filter, then the dimension, then the values).
    "filter-checked-before-query": (2, "cosine", [("search", [0, 0], 1, {"$not": {"$contains": "a"}})]),
    # A search wrong in two ways (a query of the wrong dimension and an invalid filter): the
    # Python API checked the query first (DimensionMismatchError), the Rust library and the CLI
    # the filter (InvalidFilterError). Fixed in the Python API (the filter first).
    "filter-checked-before-a-wrong-dimension-query": (2, "l2", [("search", [1, 0, 0], 1, {"$and": []})]),
    # An update of an id no record can have (1,025 bytes): the engines raise InvalidArgumentError,
    # the CLI looked the id up first and said NotFoundError. Fixed in the CLI (check_id first).
    "update-of-an-overlong-id": (4, "cosine", [("upsert", ["e"], [[1, 0, 0, 0]], [None], [None]), ("update_meta", "y" * 1025, None)]),
    # A delete of an id no record can have, with --missing-ok: the engines raise
    # InvalidArgumentError, the CLI deleted nothing and succeeded. Fixed in the CLI.
    "delete-of-an-overlong-id": (2, "cosine", [("upsert", ["a"], [[1, 0]], [None], [None]), ("delete", ["a", "y" * 1025])]),
    # An update of a missing record with metadata no record can hold (an integer beyond i64):
    # the Python API said InvalidArgumentError, the Rust library and the CLI NotFoundError (they
    # looked the id up first). Fixed in the engine (an update's arguments are checked before its
    # lookup) and the CLI (--meta checked as the engines check it, before the lookup).
    "update-of-a-missing-id-with-a-huge-integer": (2, "cosine", [("update_meta", "a", {"g": 2**63})]),
    # The same integers beyond 64 bits in a JSONL record: the CLI turned 2**70 into a float and
    # stored it, where the engines refuse it. Fixed in the CLI (the metadata's text is checked).
    "huge-integer-in-a-file": (2, "l2", [("upsert", ["a"], [[1, 0]], [{"n": 2**70}], [None]), ("upsert", ["b"], [[0, 1]], [{"n": -(2**63) - 1}], [None])]),
    # A batch with two bad records (a zero vector under cosine, then a metadata key with a NUL):
    # the Python API checked all metadata first (InvalidArgumentError), the Rust library and the
    # CLI record by record (InvalidVectorError). Fixed in the Python API: at the first bad
    # metadata it has the core check the records before it (check_arrays), as a write would.
    # One id twice in an upsert with different vectors: the engines let the last one win, the
    # CLI refuses an input file that gives an id twice with something different (by design: a
    # file cannot mean both). The test held the CLI to the engines; it now expects the refusal,
    # after any error the engines find in the records up to the repeat (cli_refusal).
    "one-id-twice-in-a-file": (5, "cosine", [("upsert", ["a", "a"], [[0, 0, 0, 0, 1], [0, 0, 0, 0, -1]], [None, None], ["alpha", ""])]),
    "one-id-twice-after-a-bad-record": (2, "cosine", [("upsert", ["b", "a", "a"], [[0, 0], [1, 0], [0, 1]], [None, None, None], [None, None, None])]),
    # An add of a new record with metadata no record can hold (an integer beyond i64), then a
    # NaN vector under a taken id: the Rust engine checks record by record (the metadata of the
    # first: InvalidArgumentError), the Python engine checked every vector and duplicate of the
    # batch before any metadata (DuplicateIdError). Fixed in _pure.py (found by a random run).
    "metadata-before-a-later-records-vector": (5, "dot", [("add", ["a"], [[0, 0, 0, 0, 0]], [None], [None]), ("add", ["b", "a"], [[0, 0, 0, 0, 0], [0, 0, 0, 0, float("nan")]], [{"g": 2**63}, None], [None, None])]),
    # A batch whose rows differ in length, the first of them a zero vector under cosine: the
    # Python API refused the list whole (InvalidArgumentError: not an array), the Rust library
    # and the CLI record by record (InvalidVectorError for the first). Fixed in the Python API:
    # the rows before the first of another length are checked, then DimensionMismatchError.
    "rows-of-different-lengths": (2, "cosine", [("upsert", ["a", "b"], [[0, 0], [0, 0, 0]], [None, None], [None, None]), ("upsert", ["a", "b"], [[1, 0], [0, 0, 0]], [None, None], [None, None])]),
    # A 1,025-byte id in a file, beside a vector element beyond float32: the CLI refused the
    # element while reading the file (InvalidVectorError) before any id was checked; the engines
    # check every id first (InvalidArgumentError). The CLI now reads it as an infinity and its
    # record check refuses it in the engine's order.
    "an-id-before-a-later-records-vector": (5, "cosine", [("upsert", ["a", "y" * 1025], [[0, 0, 0, 0, 1], [0, 0, 0, 0, float("inf")]], [None, None], [None, None])]),
    # Zero vectors under cosine, the last record with an integer beyond 64 bits: the CLI refused
    # the integer while reading the file (InvalidArgumentError), the engines the first record's
    # vector (InvalidVectorError). The CLI now keeps the metadata's fault for the record check.
    "a-vector-before-a-later-records-huge-integer": (3, "cosine", [("upsert", ["a", "b"], [[0, 0, 0], [1, 0, 0]], [None, {"g": 2**63}], [None, None])]),
    "batch-with-two-errors": (4, "cosine", [("upsert", ["c", "b"], [[0, 0, 0, 0], [0, 0, 0, 0]], [None, {"k\x00": None}], [None, "日本語"])]),
}


@pytest.mark.parametrize("name", sorted(FOUND))
def test_found_disagreements_stay_fixed(name, memento_cli, tmp_path):
    dim, metric, ops = FOUND[name]
    stores = {k: d.ApiStore(engine_class(k), tmp_path / k, dim, metric) for k in ("rust", "python")}
    cli = d.CliStore(memento_cli, tmp_path / "cli", dim, metric)
    try:
        for step, op in enumerate(ops):
            rust, python = stores["rust"].run(op), stores["python"].run(op)
            diff = d.compare(op, rust, python)
            assert diff is None, _report(step, op, f"rust vs python: {diff}")
            as_cli = ("upsert", *op[1:]) if op[0] == "add" else op
            if d.cli_expressible(as_cli):
                got = cli.run(as_cli)
                diff = d.compare(op, d.cli_refusal(op, engine_class("rust"), dim, metric) or d.api_expectation_for_cli(op, rust), got)
                assert diff is None, _report(step, op, f"engine vs CLI: {diff}")
    finally:
        for s in stores.values():
            s.close()
