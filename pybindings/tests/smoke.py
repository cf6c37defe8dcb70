"""Smoke test of an installed wheel (``make wheel-smoke`` runs it in a fresh venv holding only the
wheel and its PyPI dependencies): import memento, check that the native engine is the one in
use, create a raw-vector store in a temporary directory, add and search, reopen; then, if the
default model is provisioned (``make setup``), remember and recall with it. Prints one summary
line; exits non-zero on any failure.

With ``--readme README.md``, also runs that README's first Python example (the quickstart) in a
temporary directory and requires it to print exactly what the README shows after it.

Usage: python pybindings/tests/smoke.py [--require-model] [--readme README.md]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path


def model_dir() -> Path:
    if os.environ.get("MEMENTO_MODEL_DIR"):
        return Path(os.environ["MEMENTO_MODEL_DIR"])
    if os.environ.get("MEMENTO_CACHE_DIR"):
        base = Path(os.environ["MEMENTO_CACHE_DIR"])
    elif os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"]) / "memento"
    else:
        base = Path.home() / ".cache" / "memento"
    return base / "models" / "all-minilm-l6-v2"


def readme_example(readme: Path) -> str:
    """Runs the first Python example of ``readme`` as a user pastes it, in a new directory, and
    checks it prints what the README shows after it."""
    import re
    import subprocess

    m = re.search(r"```python\n(?P<code>.*?)```\n\nprints\n\n```text\n(?P<out>.*?)```\n", readme.read_text(), re.S)
    if m is None:
        raise SystemExit(f"{readme} has no Python example followed by what it prints")
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([sys.executable, "-c", m["code"]], cwd=d, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or r.stdout != m["out"]:
        raise SystemExit(f"the README example failed or printed\n{r.stdout}{r.stderr}\ninstead of\n{m['out']}")
    return f"{readme.name}'s first Python example prints what it shows"


def main() -> int:
    t0 = time.perf_counter()
    require_model = "--require-model" in sys.argv[1:]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import memento
        import memento._native as native
    for w in caught:  # the fallback warning would mean the native module is missing
        if "memento" in str(w.filename) or "native" in str(w.message).lower():
            raise SystemExit(f"importing memento warned: {w.message}")
    import numpy as np

    parts = [f"memento {getattr(memento, '__version__', native.__version__)} from {Path(memento.__file__).parent}"]
    with tempfile.TemporaryDirectory(prefix="memento-smoke-") as tmp:
        path = os.path.join(tmp, "raw")
        rng = np.random.default_rng(1)
        data = rng.standard_normal((1000, 64)).astype(np.float32)
        with memento.Engine(path, dimension=64, metric="cosine", model=None) as e:
            if type(e).__name__ != "RustEngine":
                raise SystemExit(f"memento.Engine gave {type(e).__name__}, not the native RustEngine")
            e.add([f"v{i}" for i in range(1000)], data, metadatas=[{"i": i, "odd": i % 2 == 1} for i in range(1000)])
            hits = e.search(data[123], k=3)
            assert hits[0].id == "v123" and abs(hits[0].distance) < 1e-5, hits
            assert all(h.metadata["odd"] for h in e.search(data[124], k=5, where={"odd": True}))
            batch = e.search(data[:4], k=1)
            assert [r[0].id for r in batch] == ["v0", "v1", "v2", "v3"], batch
            assert e.delete("v5") == 1
        with memento.Engine(path, model=None) as e:
            assert e.count() == 999 and e.get("v5") is None
            np.testing.assert_allclose(e.get("v7").vector, data[7] / np.linalg.norm(data[7]), atol=1e-6)
        try:
            memento.Engine(path, dimension=65, model=None)
            raise AssertionError("a wrong dimension was accepted")
        except memento.IncompatibleError:
            pass
        parts.append("raw store: add/search/filter/delete/reopen ok")

        md = model_dir()
        if (md / "memento-model.json").is_file():
            with memento.Engine(os.path.join(tmp, "text")) as e:
                texts = [
                    "The meeting moved to Thursday at 10.",
                    "Sourdough needs a lively starter.",
                    "The train leaves from platform 4.",
                ]
                ids = [e.remember(t) for t in texts]
                assert ids == [memento.content_id(t) for t in texts]
                top = e.recall("when is the meeting?", k=1)[0]
                assert top.id == ids[0], top
            parts.append(f"text store: remember/recall ok (model {md})")
        elif require_model:
            raise SystemExit(f"the default model is not provisioned at {md}: run `make setup`")
        else:
            parts.append(f"text store: skipped, no model at {md}")
    if "--readme" in sys.argv[1:]:
        parts.append(readme_example(Path(sys.argv[sys.argv.index("--readme") + 1])))
    print(f"smoke OK in {time.perf_counter() - t0:.2f} s: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        print("smoke FAILED", file=sys.stderr)
        sys.exit(1)
