"""The store is killed and reopened under the Python API: a hypothesis state machine drives a
worker process that holds the engine (both engines), with random upserts, adds, deletes,
checkpoints and the whole bad-input table of ``test_bad_inputs.CASES``, and SIGKILLs the worker
at random moments: between commands, and while a write is in flight. After every kill a new
worker reopens the store, which must hold exactly the acknowledged state, or that plus the write
that was in flight (whole, never half), and every bad input must still raise its exception and
change nothing.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from test_bad_inputs import CASES, OK

DIM = 4
IDS = ["b", "c", "d", "e", "f", "g", "h", "ü-1"]  # never "a": the bad-input table needs it
CASE_IDS = [c[0] for c in CASES]

WORKER = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, sys.argv[3])
    import numpy as np
    import memento
    from test_bad_inputs import CASES, OK

    cases = {c[0]: c for c in CASES}
    e = getattr(memento, sys.argv[1])(sys.argv[2], dimension=4, metric="cosine", model=None, durability="sync")
    if e.get("a") is None:
        e.add("a", OK, texts="text a", metadatas={"a": 1})
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        try:
            r = None
            if op == "upsert":
                e.upsert(cmd["ids"], np.array(cmd["vectors"], dtype=np.float32))
            elif op == "add":
                e.add(cmd["ids"], np.array(cmd["vectors"], dtype=np.float32))
            elif op == "delete":
                r = e.delete(cmd["ids"])
            elif op == "checkpoint":
                e.checkpoint()
            elif op == "dump":
                r = {m.id: m.vector.tolist() for m in e.get()}
            elif op == "bad":
                _, action, expected = cases[cmd["case"]]
                try:
                    action(e)
                    r = {"raised": None}
                except Exception as x:
                    r = {"raised": type(x).__name__, "expected": isinstance(x, expected)}
            print(json.dumps({"ok": True, "result": r}), flush=True)
        except Exception as x:
            print(json.dumps({"ok": False, "error": type(x).__name__, "message": str(x)}), flush=True)
    """
)

coords = st.integers(min_value=-3, max_value=3)
vectors = st.lists(coords, min_size=DIM, max_size=DIM).filter(lambda v: any(v))
records = st.lists(st.tuples(st.sampled_from(IDS), vectors), min_size=1, max_size=4, unique_by=lambda r: r[0])

STATS = {"kills_idle": 0, "kills_in_flight": 0, "in_flight_applied": 0, "bad_inputs": 0, "writes": 0}


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return (v / np.linalg.norm(v)).astype(np.float32)


class Worker:
    def __init__(self, kind: str, path: str):
        tests = str(Path(__file__).parent)
        self.p = subprocess.Popen(
            [sys.executable, "-c", WORKER, kind, path, tests],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.p.stdout.readline()
        if not line.startswith('{"ready"'):
            self.p.kill()
            raise AssertionError(f"the worker did not start: {line!r} {self.p.stderr.read()}")

    def send(self, cmd: dict) -> None:
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()

    def call(self, cmd: dict):
        self.send(cmd)
        line = self.p.stdout.readline()
        assert line, f"the worker died: {self.p.stderr.read()}"
        return json.loads(line)

    def kill(self) -> None:
        self.p.kill()  # SIGKILL
        self.p.wait()
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass  # a pipe to a killed process may refuse its last flush


class KilledStoreMachine(RuleBasedStateMachine):
    kind = "RustEngine"  # set per engine by make_machine

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="memento-kill-")
        self.path = os.path.join(self.dir, "store")
        self.model: dict[str, np.ndarray] = {"a": unit(OK)}
        self.w = Worker(self.kind, self.path)

    def _ok(self, reply):
        assert reply["ok"], f"a valid call failed: {reply}"
        return reply["result"]

    def _dump(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=np.float32) for k, v in self._ok(self.w.call({"op": "dump"})).items()}

    @staticmethod
    def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
        return a.keys() == b.keys() and all(np.allclose(a[k], b[k], atol=1e-6) for k in a)

    def _restart(self) -> dict[str, np.ndarray]:
        self.w = Worker(self.kind, self.path)
        return self._dump()

    @staticmethod
    def _apply(model, cmd) -> dict[str, np.ndarray]:
        m = dict(model)
        if cmd["op"] in ("upsert", "add"):
            for i, v in zip(cmd["ids"], cmd["vectors"]):
                m[i] = unit(v)
        elif cmd["op"] == "delete":
            for i in cmd["ids"]:
                m.pop(i, None)
        return m

    def _write_cmd(self, op, recs):
        if op == "delete":
            return {"op": "delete", "ids": [r[0] for r in recs]}
        return {"op": op, "ids": [r[0] for r in recs], "vectors": [r[1] for r in recs]}

    @rule(recs=records)
    def upsert(self, recs):
        cmd = self._write_cmd("upsert", recs)
        self._ok(self.w.call(cmd))
        self.model = self._apply(self.model, cmd)
        STATS["writes"] += 1

    @rule(recs=records)
    def add(self, recs):
        cmd = self._write_cmd("add", recs)
        reply = self.w.call(cmd)
        if any(r[0] in self.model for r in recs):
            assert not reply["ok"] and reply["error"] == "DuplicateIdError", reply
        else:
            self._ok(reply)
            self.model = self._apply(self.model, cmd)
            STATS["writes"] += 1

    @rule(recs=records)
    def delete(self, recs):
        cmd = self._write_cmd("delete", recs)
        n = self._ok(self.w.call(cmd))
        assert n == sum(1 for r in recs if r[0] in self.model)
        self.model = self._apply(self.model, cmd)
        STATS["writes"] += 1

    @rule()
    def checkpoint(self):
        self._ok(self.w.call({"op": "checkpoint"}))

    @rule(case=st.sampled_from(CASE_IDS))
    def bad_input(self, case):
        r = self._ok(self.w.call({"op": "bad", "case": case}))
        assert r["raised"] is not None and r["expected"], f"{case}: {r}"
        STATS["bad_inputs"] += 1

    @rule()
    def kill_idle(self):
        self.w.kill()
        STATS["kills_idle"] += 1
        got = self._restart()
        assert self._same(got, self.model), "after a kill between commands the store is not the acknowledged state"

    @rule(op=st.sampled_from(["upsert", "delete"]), recs=records, delay_us=st.integers(0, 3000))
    def kill_in_flight(self, op, recs, delay_us):
        cmd = self._write_cmd(op, recs)
        self.w.send(cmd)
        time.sleep(delay_us / 1e6)
        self.w.kill()
        STATS["kills_in_flight"] += 1
        got = self._restart()
        after = self._apply(self.model, cmd)
        if self._same(got, after) and not self._same(got, self.model):
            STATS["in_flight_applied"] += 1
        assert self._same(got, self.model) or self._same(got, after), "after a kill during a write the store is neither the acknowledged state nor that plus the write"
        self.model = got

    @invariant()
    def matches_model(self):
        assert self._same(self._dump(), self.model)

    def teardown(self):
        try:
            self.w.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def make_machine(kind: str):
    return type(f"KilledStoreMachine_{kind}", (KilledStoreMachine,), {"kind": kind})


KILL_SETTINGS = settings(
    max_examples=int(os.environ.get("MEMENTO_KILL_EXAMPLES", "12")),
    stateful_step_count=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_killed_and_reopened(engine_cls):
    for k in STATS:
        STATS[k] = 0
    run_state_machine_as_test(make_machine(engine_cls.__name__), settings=KILL_SETTINGS)
    print(f"\n{engine_cls.__name__}: {STATS}")
    # The machine did what it is for: it killed workers, both between commands and mid-write,
    # and fed the bad inputs to reopened stores.
    assert STATS["kills_idle"] > 0 and STATS["kills_in_flight"] > 0 and STATS["bad_inputs"] > 0, STATS
