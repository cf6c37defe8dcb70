"""Shared fixtures of the Python package's test suite.

Every engine-level test runs against both engines in one run: ``engine_kind`` is parametrised
over ``"rust"`` (``memento.RustEngine``, the native module) and ``"python"``
(``memento.PythonEngine``, the numpy + sqlite3 + onnxruntime fallback), using the classes
directly rather than ``memento.Engine(...)``, so that ``MEMENTO_RUST`` does not matter.

Nothing is skipped: when ``memento._native`` cannot be imported the ``rust`` parameters FAIL
(build and install the wheel first: ``make wheel``), and tests that need the default embedding
model fail with the command that provisions it (``make setup``) when it is absent.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parent
DEFAULT_MODEL = "all-minilm-l6-v2"
ENGINE_KINDS = ["rust", "python"]

if str(TESTS) not in sys.path:  # the helpers module beside this file
    sys.path.insert(0, str(TESTS))


# ------------------------------------------------------------------------------------------
# The engines


def native_module():
    """``memento._native``, or a test failure saying why it cannot be imported."""
    try:
        return importlib.import_module("memento._native")
    except Exception as e:  # ImportError, or an error while initialising the module
        pytest.fail(
            "the native module memento._native cannot be imported, so the Rust engine cannot be "
            f"tested: {type(e).__name__}: {e}\n(build and install the wheel: `make wheel`)\n"
            + "".join(traceback.format_exception_only(type(e), e)),
            pytrace=False,
        )


def engine_class(kind: str):
    """The engine class of ``kind``: ``memento.RustEngine`` or ``memento.PythonEngine``."""
    import memento

    if kind == "rust":
        native_module()
        return memento.RustEngine
    if kind == "python":
        return memento.PythonEngine
    raise ValueError(kind)


@pytest.fixture(params=ENGINE_KINDS)
def engine_kind(request) -> str:
    """``"rust"`` or ``"python"``: every test using it runs once per engine."""
    return request.param


@pytest.fixture
def engine_cls(engine_kind):
    """The engine class under test (RustEngine or PythonEngine)."""
    return engine_class(engine_kind)


@pytest.fixture
def store_path(tmp_path) -> Path:
    """A fresh store directory (not created yet: the engine creates it)."""
    return tmp_path / "store"


class Opener:
    """Opens engines of one class and closes whatever is still open at the end of the test."""

    def __init__(self, cls, base: Path):
        self.cls = cls
        self.base = base
        self.opened: list = []
        self.n = 0

    def new_path(self) -> Path:
        self.n += 1
        return self.base / f"store-{self.n}"

    def __call__(self, path: Path | str | None = None, **kw):
        if path is None:
            path = self.new_path()
        kw.setdefault("model", None)
        e = self.cls(str(path), **kw)
        self.opened.append(e)
        return e

    def close_all(self):
        for e in self.opened:
            try:
                e.close()
            except Exception:
                pass


@pytest.fixture
def open_engine(engine_cls, tmp_path):
    """``open_engine(path=None, **kw)``: an engine of the class under test, closed at teardown.
    ``model`` defaults to None (a raw-vector store); pass ``dimension=`` to create one."""
    o = Opener(engine_cls, tmp_path)
    yield o
    o.close_all()


@pytest.fixture
def open_both(tmp_path):
    """``open_both[kind](path=None, **kw)`` for ``kind`` in ("rust", "python")."""
    openers = {k: Opener(engine_class(k), tmp_path / k) for k in ENGINE_KINDS}
    for k in ENGINE_KINDS:
        (tmp_path / k).mkdir()
    yield openers
    for o in openers.values():
        o.close_all()


# ------------------------------------------------------------------------------------------
# The default embedding model (provisioned by `make setup` into ~/.cache/memento)


def default_model_dir() -> Path:
    """Where the Rust library looks for the default model (memento::embed::model_dir)."""
    if os.environ.get("MEMENTO_MODEL_DIR"):
        return Path(os.environ["MEMENTO_MODEL_DIR"])
    if os.environ.get("MEMENTO_CACHE_DIR"):
        cache = Path(os.environ["MEMENTO_CACHE_DIR"])
    elif os.environ.get("XDG_CACHE_HOME"):
        cache = Path(os.environ["XDG_CACHE_HOME"]) / "memento"
    else:
        cache = Path.home() / ".cache" / "memento"
    return cache / "models" / DEFAULT_MODEL


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The provisioned default model's directory; the test fails (not skips) without it."""
    d = default_model_dir()
    manifest = d / "memento-model.json"
    if not manifest.is_file():
        pytest.fail(
            f"the default embedding model is not provisioned: {manifest} is missing. "
            "Run `make setup` (memento model provision) first.",
            pytrace=False,
        )
    m = json.loads(manifest.read_text())
    for key in ("model_file", "tokenizer_file"):
        if not (d / m[key]).is_file():
            pytest.fail(f"the default model at {d} is incomplete ({m[key]} missing): run `make setup`", pytrace=False)
    return d


@pytest.fixture(scope="session")
def other_model(default_model, tmp_path_factory) -> Path:
    """A second model directory: the default model's files under another model id, so that a
    store made with one is a store of "another model" for the other."""
    d = tmp_path_factory.mktemp("other-model") / "other-minilm"
    d.mkdir()
    for f in default_model.iterdir():
        if f.name != "memento-model.json":
            (d / f.name).symlink_to(f)
    m = json.loads((default_model / "memento-model.json").read_text())
    m["id"] = "other-minilm"
    (d / "memento-model.json").write_text(json.dumps(m, indent=2))
    return d


# ------------------------------------------------------------------------------------------
# Data


@pytest.fixture
def rng():
    return np.random.default_rng(20_261_121)


def unit_rows(rng, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


@pytest.fixture(scope="session")
def scratch_dir():
    """A session-wide temporary directory (removed at the end)."""
    d = Path(tempfile.mkdtemp(prefix="memento-tests-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
