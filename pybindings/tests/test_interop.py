"""A store written by the Rust library opens through the Python package, and back.

The Rust side is a tiny separate cargo project, ``rust_writer/`` (a path dependency on the
``memento`` crate in ``engine/``), built by the session fixture under ``target/rust-writer``
with the workspace's Cargo.lock (a no-op once built; the first build takes 1-2 minutes). It writes a store, the package
opens it (``memento.RustEngine``, what ``memento.Engine`` returns), checks every record and a search against what
Rust reads, modifies it, closes it, and the Rust program reads it again and sees exactly what
the package saw; then Rust writes again and the package reopens. The same with a text store and
the default model (content ids, recall, the model identity).

The pure-Python engine keeps its own file format (``memento.python.sqlite``): it is not
expected to read a Rust store, and each engine must refuse the other's store with a typed error
instead of misreading it (the last tests).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import memento
from conftest import REPO, TESTS, engine_class
from helpers import raises_memento

WRITER = TESTS / "rust_writer"
QUERY = [0.5, -1.0, 2.0, 0.0, 1.0, 1.0, -0.5, 0.25]


@pytest.fixture(scope="session")
def rust_writer():
    """The writer, built with the workspace's own Cargo.lock (so the very crate versions the
    repo builds with, fetched by `make setup`): rust_writer/ is copied to
    target/rust-writer/project with the path to engine/ made absolute and the lock file beside
    it; the build is a no-op once done."""
    cargo = shutil.which("cargo") or str(os.path.expanduser("~/.cargo/bin/cargo"))
    if not os.path.exists(cargo):
        pytest.fail("cargo is needed to build pybindings/tests/rust_writer (install a Rust toolchain)", pytrace=False)
    target = REPO / "target" / "rust-writer"
    project = target / "project"
    (project / "src").mkdir(parents=True, exist_ok=True)
    manifest = (WRITER / "Cargo.toml").read_text().replace('path = "../../../engine"', f'path = "{(REPO / "engine").as_posix()}"')
    assert str(REPO / "engine") in manifest, "rust_writer/Cargo.toml no longer names ../../../engine"
    _write_if_changed(project / "Cargo.toml", manifest)
    _write_if_changed(project / "src" / "main.rs", (WRITER / "src" / "main.rs").read_text())
    lock = (REPO / "Cargo.lock").read_text()
    if not (project / ".lock-source").exists() or (project / ".lock-source").read_text() != lock:
        _write_if_changed(project / "Cargo.lock", lock)
        (project / ".lock-source").write_text(lock)
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    r = subprocess.run([cargo, "build", "--quiet", "--manifest-path", str(project / "Cargo.toml")], env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"building the Rust writer failed:\n{r.stderr}"
    exe = target / "debug" / "memento-rust-writer"
    assert exe.is_file(), exe
    return exe


def _write_if_changed(path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def RustEngine(*args, **kw):
    """The package's native engine (the class ``memento.Engine`` returns unless MEMENTO_RUST=0),
    used directly so that the environment does not matter."""
    return engine_class("rust")(*args, **kw)


def run_rust(exe, *args, stdin: str | None = None, env: dict | None = None) -> dict:
    r = subprocess.run([str(exe), *map(str, args)], input=stdin, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    out = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    assert r.returncode == 0, f"rust {args}: {out.get('error')} {r.stderr}"
    return out


def as_py(e) -> list[tuple]:
    """Every record as (id, vector bytes, text, metadata), in the engine's order."""
    return [(m.id, np.asarray(m.vector, dtype=np.float32).tobytes(), m.text, m.metadata) for m in e.get()]


def as_rust(dump: dict) -> list[tuple]:
    return [(r["id"], np.asarray(r["vector"], dtype=np.float32).tobytes(), r["text"], r["metadata"]) for r in dump["records"]]


def hits_py(hits) -> list[tuple]:
    return [(h.id, h.distance, h.text, h.metadata) for h in hits]


def assert_hits_equal(py, rust):
    assert [h[0] for h in py] == [h["id"] for h in rust]
    np.testing.assert_allclose([h[1] for h in py], [h["distance"] for h in rust], atol=1e-6, rtol=0)
    assert [(h[2], h[3]) for h in py] == [(h["text"], h["metadata"]) for h in rust]


def test_raw_store_round_trip(rust_writer, tmp_path):
    d = tmp_path / "store"
    assert run_rust(rust_writer, "write-raw", d)["count"] == 38
    before = run_rust(rust_writer, "dump", d, env={"QUERY": ",".join(map(str, QUERY))})

    # 1. the package opens what Rust wrote, and reads exactly what Rust reads
    with RustEngine(str(d), model=None) as e:
        assert type(e).__name__ == "RustEngine"
        assert (e.dimension, e.metric, e.count()) == (8, "cosine", 38)
        assert as_py(e) == as_rust(before)
        assert_hits_equal(hits_py(e.search(np.asarray(QUERY, dtype=np.float32), k=5)), before["search"])
        assert e.get("r5").text == "replaced in rust"
        assert e.get("r6").metadata == {"updated": True, "nested": {"a": [1, 2]}}
        assert e.get("r3") is None
        assert [m.id for m in e.get(where={"$and": [{"even": True}, {"name": {"$in": ["n0", "n2"]}}]})] == ["r0", "r2", "r10", "r12", "r20", "r22", "r30", "r32"]
        # 2. and modifies it: add, upsert, delete, delete by filter, a checkpoint in between
        e.add(["py-1", "py-2"], np.array([[1, 0, 0, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 0, 1, 0]], dtype=np.float32), texts=["from python", None], metadatas=[{"lang": "py"}, None])
        e.upsert("r0", QUERY, texts="r0 replaced from python", metadatas={"i": 0, "by": "python"})
        e.checkpoint()
        assert e.delete(["r1", "nope"]) == 1
        assert e.delete(where={"name": "n4"}) == 7  # r4 r9 r14 r19 r24 r34 r39 (r29 deleted in rust)
        e.add("py-3", [0.125] * 8)
        py_after = as_py(e)
        py_search = hits_py(e.search(QUERY, k=5))
        count = e.count()
    assert count == 38 + 2 - 1 - 7 + 1

    # 3. Rust reads what the package wrote
    after = run_rust(rust_writer, "dump", d, env={"QUERY": ",".join(map(str, QUERY))})
    assert after["count"] == count and (after["dimension"], after["metric"]) == (8, "cosine")
    assert as_rust(after) == py_after
    assert_hits_equal(py_search, after["search"])
    assert after["search"][0]["id"] == "r0" and after["search"][0]["distance"] == pytest.approx(0, abs=1e-6)

    # 4. Rust writes again, the package reopens
    assert run_rust(rust_writer, "append", d, "rust-2", "1,1,1,1,0,0,0,0")["count"] == count + 1
    with RustEngine(str(d), model=None) as e:
        assert e.count() == count + 1
        assert e.get("rust-2").text == "from rust"
        assert as_py(e)[:-1] == py_after


def test_store_created_by_the_package_opens_in_rust(rust_writer, tmp_path):
    d = tmp_path / "store"
    rng = np.random.default_rng(5)
    data = rng.standard_normal((300, 16)).astype(np.float32)
    with RustEngine(str(d), dimension=16, metric="l2", model=None) as e:
        e.add([f"p{i}" for i in range(300)], data, metadatas=[{"i": i} for i in range(300)])
        e.delete([f"p{i}" for i in range(0, 300, 3)])
        py = as_py(e)
        q = data[10]
        ps = hits_py(e.search(q, k=5))
    dump = run_rust(rust_writer, "dump", d, env={"QUERY": ",".join(repr(float(x)) for x in q)})
    assert (dump["dimension"], dump["metric"], dump["count"]) == (16, "l2", 200)
    assert as_rust(dump) == py
    assert_hits_equal(ps, dump["search"])
    assert dump["search"][0]["id"] == "p10"


TEXTS = [
    "The meeting moved to Thursday at 10 in the large conference room.",
    "Rust's borrow checker enforces ownership rules at compile time.",
    "A good sourdough needs a lively starter and a long, cold proof.",
    "The train to Lyon leaves from platform 4 at 7:42.",
]


def test_text_store_round_trip(rust_writer, tmp_path, default_model):
    d = tmp_path / "text"
    out = run_rust(rust_writer, "write-text", d, stdin="\n".join(TEXTS) + "\n")
    assert out["ids"] == [memento.content_id(t) for t in TEXTS]
    with RustEngine(str(d)) as e:  # no dim: the default model, which the store was made with
        assert type(e).__name__ == "RustEngine" and e.dimension == 384 and e.count() == 4
        assert e.recall("how do I bake bread?", k=1)[0].id == memento.content_id(TEXTS[2])
        assert e.get(memento.content_id(TEXTS[3])).metadata == {"line": 3}
        assert e.remember(TEXTS[0]) == out["ids"][0] and e.count() == 4  # already there: not again
        new = e.remember("Cats purr when they are content.", metadatas={"from": "python"})
        assert new == memento.content_id("Cats purr when they are content.")
    dump = run_rust(rust_writer, "dump", d, "default", env={"RECALL": "felines"})
    assert dump["model"] == "all-minilm-l6-v2" and dump["count"] == 5
    assert dump["recall"][0]["id"] == new and dump["recall"][0]["metadata"] == {"from": "python"}
    assert [r["id"] for r in dump["records"]] == out["ids"] + [new]


def test_python_engine_refuses_a_rust_store(rust_writer, tmp_path):
    d = tmp_path / "store"
    run_rust(rust_writer, "write-raw", d)
    with raises_memento(memento.IncompatibleError):
        engine_class("python")(str(d), model=None)
    # untouched: Rust still reads all of it
    assert run_rust(rust_writer, "dump", d)["count"] == 38


def test_rust_engine_refuses_a_python_store(tmp_path):
    d = tmp_path / "store"
    with engine_class("python")(str(d), dimension=4, model=None) as e:
        e.add("a", [1.0, 2.0, 3.0, 4.0])
    with raises_memento(memento.IncompatibleError):
        engine_class("rust")(str(d), model=None)
    with engine_class("python")(str(d), model=None) as e:
        assert e.count() == 1
