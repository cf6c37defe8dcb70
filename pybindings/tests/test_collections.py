"""``memento.Client``: a directory of collections (FORMAT.md §8), over both engines, and the same
directory read by the Rust side (the native module's engine, the ``memento`` binary)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import memento
from memento._collections import check_collection_name

REPO = Path(__file__).resolve().parents[2]


def test_operations(engine_cls, tmp_path):
    root = tmp_path / "root"
    client = memento.Client(root, engine=engine_cls)
    assert (root / "memento.collections").read_text() == "memento collections 1\n"
    assert client.list_collections() == []

    with client.create_collection("alpha", dimension=3) as a:
        assert isinstance(a, engine_cls) and isinstance(a, memento.Engine)
        a.add(["x", "y"], np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    client.create_collection("beta", dimension=4, metric="l2").close()
    with pytest.raises(memento.CollectionExistsError) as e:
        client.create_collection("alpha", dimension=3)
    assert e.value.name == "alpha"
    with pytest.raises(memento.CollectionNotFoundError) as e:
        client.get_collection("gamma")
    assert e.value.name == "gamma" and isinstance(e.value, KeyError)

    infos = client.list_collections()
    assert [i.name for i in infos] == ["alpha", "beta"]
    assert (infos[0].dimension, infos[0].metric, infos[0].model, infos[0].count) == (3, "cosine", None, 2)
    assert (infos[1].dimension, infos[1].metric, infos[1].count) == (4, "l2", 0)

    with client.get_collection("alpha") as a:
        assert a.count() == 2
        # Open for writing: delete and rename are refused.
        with pytest.raises(memento.CollectionInUseError) as e:
            client.delete_collection("alpha")
        assert e.value.pid == os.getpid() and e.value.name == "alpha"
        with pytest.raises(memento.CollectionInUseError):
            client.rename_collection("alpha", "delta")
    with client.get_or_create_collection("alpha", dimension=3) as a:
        assert a.count() == 2
    with client.get_or_create_collection("gamma", dimension=5) as g:
        assert g.dimension == 5

    client.rename_collection("alpha", "delta")
    assert not (root / "alpha").exists()
    with client.get_collection("delta") as d:
        assert d.count() == 2
    with pytest.raises(memento.CollectionExistsError):
        client.rename_collection("delta", "beta")
    with pytest.raises(memento.CollectionNotFoundError):
        client.rename_collection("alpha", "omega")
    client.delete_collection("beta")
    assert not (root / "beta").exists()
    with pytest.raises(memento.CollectionNotFoundError):
        client.delete_collection("beta")
    assert [i.name for i in memento.Client(root, engine=engine_cls).list_collections()] == ["delta", "gamma"]
    # A failed create leaves nothing behind.
    with pytest.raises(memento.InvalidArgumentError):
        client.create_collection("nodim", model=None)
    assert not (root / "nodim").exists() and client.leftovers() == []


@pytest.mark.parametrize("name", ["abc", "my-collection_1.v2", "A1B", "0.1.2", "1.2.3.4.5", "a" * 512])
def test_valid_names(name):
    assert check_collection_name(name) == name


@pytest.mark.parametrize("name", ["ab", "", "a" * 513, ".abc", "abc.", "-abc", "abc_", "a..b", "a b c", "a/bc", "ab\u00e9", "192.168.0.1", 7])
def test_invalid_names(name, tmp_path):
    with pytest.raises(memento.InvalidArgumentError):
        check_collection_name(name)
    client = memento.Client(tmp_path, engine=memento.PythonEngine)
    with pytest.raises(memento.InvalidArgumentError):
        client.get_collection(name)


def test_stores_and_roots_are_not_confused(engine_cls, tmp_path):
    store = tmp_path / "store"
    engine_cls(store, dimension=3).close()
    with pytest.raises(memento.InvalidArgumentError, match="is a store"):
        memento.Client(store, engine=engine_cls)
    assert not (store / "memento.collections").exists()
    root = tmp_path / "root"
    memento.Client(root, engine=engine_cls)
    with pytest.raises(memento.InvalidArgumentError, match="directory of collections"):
        engine_cls(root, dimension=3)
    assert not (root / "memento.vec").exists() and not (root / "LOCK").exists()
    (tmp_path / "newer").mkdir()
    (tmp_path / "newer" / "memento.collections").write_text("memento collections 9\n")
    with pytest.raises(memento.IncompatibleError):
        memento.Client(tmp_path / "newer")


def test_leftovers_of_a_crash_are_removed(engine_cls, tmp_path):
    client = memento.Client(tmp_path, engine=engine_cls)
    client.create_collection("kept", dimension=3).close()
    engine_cls(tmp_path / ".half.new-4242", dimension=3).close()
    (tmp_path / ".deleted-gone-4242-17").mkdir()
    (tmp_path / ".deleted-gone-4242-17" / "memento.vec").write_bytes(b"x")
    (tmp_path / ".memento.collections.new-4242").write_bytes(b"memento")
    assert len(client.leftovers()) == 3
    assert [i.name for i in client.list_collections()] == ["kept"]
    client = memento.Client(tmp_path, engine=engine_cls)
    assert client.leftovers() == []
    assert sorted(os.listdir(tmp_path)) == ["CATALOG.lock", "kept", "memento.collections"]


_HOLD = """
import sys, time, memento
e = memento.Client(sys.argv[1], engine=getattr(memento, sys.argv[2])).get_collection("held")
print("OPENED", flush=True)
time.sleep(60)
"""


def test_a_collection_open_in_another_process_is_in_use(engine_cls, tmp_path):
    client = memento.Client(tmp_path, engine=engine_cls)
    client.create_collection("held", dimension=3).close()
    child = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path), engine_cls.__name__], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "OPENED"
        with pytest.raises(memento.CollectionInUseError) as e:
            client.delete_collection("held")
        assert e.value.pid == child.pid
        with pytest.raises(memento.CollectionInUseError):
            client.rename_collection("held", "moved")
    finally:
        child.kill()
        child.wait()
    client.rename_collection("held", "moved")
    client.delete_collection("moved")
    assert client.list_collections() == []


def test_a_text_collection(engine_cls, tmp_path, default_model):
    client = memento.Client(tmp_path, engine=engine_cls)
    with client.get_or_create_collection("notes") as notes:
        notes.remember("The meeting moved to Thursday at 10.")
        assert "Thursday" in notes.recall("when is the meeting?", k=1)[0].text
    (info,) = client.list_collections()
    assert (info.name, info.dimension, info.model, info.count) == ("notes", 384, "all-minilm-l6-v2", 1)


# ------------------------------------------------------------------------------------------
# The same directory from the Rust side


def _memento_bin() -> Path:
    if os.environ.get("MEMENTO_BIN"):
        return Path(os.environ["MEMENTO_BIN"])
    for p in (REPO / "target" / "debug" / "memento", REPO / "target" / "release" / "memento"):
        if p.is_file() and os.access(p, os.X_OK):
            return p
    pytest.fail("no `memento` binary in target/debug or target/release: run `cargo build -p memento-cli --bin memento`", pytrace=False)


def _cli(*args: str) -> str:
    r = subprocess.run([str(_memento_bin()), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_root_made_by_python_is_read_by_the_cli(tmp_path):
    client = memento.Client(tmp_path, engine=memento.RustEngine)
    with client.create_collection("vecs", dimension=3, metric="l2") as v:
        v.add(["a"], np.array([[1, 2, 3]], dtype=np.float32))
    (tmp_path / ".half.new-1").mkdir()
    listed = json.loads(_cli("--store", str(tmp_path), "--json", "collections", "list"))
    assert [(c["name"], c["dimension"], c["metric"], c["count"]) for c in listed] == [("vecs", 3, "l2", 1)]
    hits = json.loads(_cli("--store", str(tmp_path), "--collection", "vecs", "--json", "search", "[1, 2, 3]"))
    assert hits[0]["id"] == "a"
    _cli("--store", str(tmp_path), "collections", "rename", "vecs", "renamed")
    assert [i.name for i in client.list_collections()] == ["renamed"]
    assert not (tmp_path / ".half.new-1").exists(), "the CLI removed the leftover"


def test_a_root_made_by_the_cli_is_read_by_python(tmp_path):
    _cli("--store", str(tmp_path), "collections", "create", "made-by-cli", "--dimension", "2")
    _cli("--store", str(tmp_path), "--collection", "made-by-cli", "add", "--id", "p", "--vector", "[0.5, 1]")
    client = memento.Client(tmp_path, engine=memento.RustEngine)
    (info,) = client.list_collections()
    assert (info.name, info.dimension, info.engine, info.count) == ("made-by-cli", 2, "rust", 1)
    with client.get_collection("made-by-cli") as e:
        assert e.get("p") is not None
    client.delete_collection("made-by-cli")
    assert json.loads(_cli("--store", str(tmp_path), "--json", "collections", "list")) == []


_CHURN = """
import random, sys, memento
import numpy as np
client = memento.Client(sys.argv[1], engine=getattr(memento, sys.argv[2]))
rng = random.Random()
print("STARTED", flush=True)
while True:
    name, other = f"col{rng.randrange(4)}", f"col{rng.randrange(4)}"
    op = rng.randrange(4)
    try:
        if op < 2:
            with client.get_or_create_collection(name, dimension=3) as e:
                e.upsert([f"r{rng.randrange(20)}"], np.array([[1, 2, rng.random()]], dtype=np.float32))
        elif op == 2:
            client.rename_collection(name, other)
        else:
            client.delete_collection(name)
    except (memento.CollectionNotFoundError, memento.CollectionExistsError):
        pass
"""


def test_killed_while_creating_renaming_and_deleting(engine_cls, tmp_path):
    import random
    import time

    rng = random.Random(7)
    seen = 0
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", _CHURN, str(tmp_path), engine_cls.__name__], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "STARTED"
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            child.kill()
            child.wait()
        client = memento.Client(tmp_path, engine=engine_cls)
        assert client.leftovers() == []
        for info in client.list_collections():
            assert info.error is None and info.dimension == 3, info
            with client.get_collection(info.name) as e:
                e.check_integrity()
            seen += 1
    assert seen > 0
