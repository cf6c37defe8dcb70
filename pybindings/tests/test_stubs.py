"""The type stubs match the modules, as installed (the wheel's files, not the source tree).

mypy's ``stubtest`` compares what a type checker reads of ``memento`` and ``memento_core`` (the
``.pyi`` stubs, ``memento/_native.pyi`` for the native module, else the ``.py`` sources) with the
modules at run time: every name both ways, ``__all__``, each class's members, each function's
parameters (names, kinds, defaults), abstract methods, properties. It must pass, but for the
entries of ``stubtest_allowlist.txt`` beside this file, each with its reason.

What stubtest does not check is kept here: the typed package's files are in the wheel, the
native stub has what pybindings/SPEC.md names, and ``import memento`` exposes only public
names.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import types
from pathlib import Path

import memento

PKG = Path(memento.__file__).resolve().parent
ALLOWLIST = Path(__file__).resolve().parent / "stubtest_allowlist.txt"


def test_stubtest_passes(tmp_path):
    # Run from an empty directory, so that mypy reads the installed packages (PEP 561: py.typed)
    # and no configuration file or source tree of the repository; MYPYPATH would add one.
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    cmd = [sys.executable, "-m", "mypy.stubtest", "memento", "memento_core", "--allowlist", str(ALLOWLIST)]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"stubtest found differences between the stubs and the modules:\n{r.stdout}{r.stderr}"


def test_typed_package_files():
    assert (PKG / "py.typed").is_file(), "memento/py.typed is missing from the installed package"
    assert (PKG / "_native.pyi").is_file(), "memento/_native.pyi is missing from the installed package"
    import memento_core

    core = Path(memento_core.__file__).resolve().parent
    assert (core / "__init__.pyi").is_file() or (core / "py.typed").is_file(), "memento_core has neither a stub nor py.typed"


def declared(body: list[ast.stmt]) -> set[str]:
    """The names a module or class body of a stub defines."""
    out: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Assign):
            out |= {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.add(node.target.id)
    return out


def test_native_stub_covers_the_native_classes():
    """The native classes the SPEC names are in the stub with the SPEC's members (stubtest holds
    the stub to the module; this holds both to the SPEC)."""
    tree = ast.parse((PKG / "_native.pyi").read_text())
    decl = declared(tree.body)
    for name in ("NativeEngine", "NativeEmbedder", "default_model_dir", "content_id", "__version__"):
        assert name in decl, name
    engine = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "NativeEngine")
    eng = declared(engine.body)
    for m in ("dimension", "metric", "model_id", "path", "closed", "write", "add_arrays", "delete", "delete_where", "get", "get_where",
              "search", "search_arrays", "remember", "recall", "embed", "count", "checkpoint", "stats", "close",
              "build_index", "graph_info", "estimate_recall"):
        assert m in eng, f"NativeEngine.{m}"


def test_the_package_namespace_holds_only_its_public_names():
    # `import memento` exposed memento.os, memento.threading, memento.warnings, memento.Any,
    # memento.TYPE_CHECKING and memento.annotations: names a user could come to rely on.
    stray = sorted(
        n
        for n, v in vars(memento).items()
        if not n.startswith("_") and n not in memento.__all__ and not (isinstance(v, types.ModuleType) and v.__name__.startswith("memento."))
    )
    assert stray == [], f"memento's namespace holds names outside __all__: {stray}"
