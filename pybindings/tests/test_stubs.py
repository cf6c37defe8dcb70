"""The type stubs match the modules, as installed (the wheel's files, not the source tree):

* ``memento/py.typed`` is there, and ``memento/_native.pyi`` (the native module has no source a
  type checker could read) and ``memento_core/__init__.pyi``;
* for every public module (``memento``, ``memento._native``, ``memento_core`` and the public
  submodules), what a type checker reads (the ``.pyi`` when there is one, else the ``.py``)
  names every public name of the module at run time, and every public name the stub declares
  exists at run time;
* for every class of a ``.pyi`` stub, its public members (methods, properties, attributes) are
  the run-time class's, both ways, and each non-overloaded function or method has the same
  parameter names as at run time (``inspect.signature``; PyO3 provides text signatures).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import types
from pathlib import Path

import pytest

import memento

PKG = Path(memento.__file__).resolve().parent
ALLOWED_DUNDERS = {"__version__", "__all__"}
MEMBER_DUNDERS = {"__enter__", "__exit__", "__iter__", "__len__", "__contains__", "__getitem__", "__call__"}


def public_modules() -> list[str]:
    mods = ["memento", "memento._native", "memento_core"]
    for f in sorted(PKG.iterdir()):
        if f.suffix in (".py", ".pyi") and not f.name.startswith("_"):
            name = f"memento.{f.stem}"
            if name not in mods:
                mods.append(name)
    return mods


def source_for(modname: str) -> Path:
    mod = importlib.import_module(modname)
    f = Path(mod.__file__)
    stem = f.name.split(".")[0]
    pyi = f.with_name(stem + ".pyi")
    if pyi.exists():
        return pyi
    assert f.suffix == ".py", f"{modname} ({f}) is compiled and has no .pyi stub beside it"
    return f


def is_overload(node) -> bool:
    return any((isinstance(d, ast.Name) and d.id == "overload") or (isinstance(d, ast.Attribute) and d.attr == "overload") for d in node.decorator_list)


def declared(body) -> dict[str, list[ast.AST]]:
    """Names a module or class body declares: defs, classes, assignments, annotated names,
    re-exports (``import x as x``, ``from m import x as x``, or any import in a .py)."""
    out: dict[str, list[ast.AST]] = {}

    def add(name, node):
        out.setdefault(name, []).append(node)

    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            add(node.name, node)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        add(n.id, node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            add(node.target.id, node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                add(a.asname or a.name.split(".")[0], node)
        elif isinstance(node, ast.If):  # TYPE_CHECKING / version branches
            for k, v in declared(node.body + node.orelse).items():
                for x in v:
                    add(k, x)
        elif isinstance(node, ast.Try):
            for k, v in declared(node.body + [s for h in node.handlers for s in h.body] + node.orelse + node.finalbody).items():
                for x in v:
                    add(k, x)
    return out


def stub_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                return list(ast.literal_eval(node.value))
    return None


def runtime_public(mod) -> set[str]:
    names = getattr(mod, "__all__", None)
    if names is not None:  # private hooks listed in __all__ (memento._native._panic) need no stub
        return {n for n in names if not n.startswith("_") or n in ALLOWED_DUNDERS}
    out = set()
    for n, v in vars(mod).items():
        if n.startswith("_") and n not in ALLOWED_DUNDERS:
            continue
        if isinstance(v, types.ModuleType):
            continue
        owner = getattr(v, "__module__", None)
        if owner is not None and owner != mod.__name__ and not (isinstance(v, type) or callable(v)):
            continue
        if owner is not None and owner not in (mod.__name__,) and (isinstance(v, type) or inspect.isfunction(v)):
            continue  # imported helpers (typing, dataclasses, ...) are not the module's own
        if n == "annotations":  # from __future__ import annotations
            continue
        out.add(n)
    return out


@pytest.mark.parametrize("modname", public_modules())
def test_module_names_match(modname):
    mod = importlib.import_module(modname)
    src = source_for(modname)
    tree = ast.parse(src.read_text(), str(src))
    decl = declared(tree.body)
    rt = runtime_public(mod)
    if hasattr(mod, "__all__"):
        missing_rt = [n for n in mod.__all__ if not hasattr(mod, n)]
        assert not missing_rt, f"{modname}.__all__ names what the module lacks: {missing_rt}"
    missing = sorted(n for n in rt if n not in decl)
    assert not missing, f"{src.name} does not declare these public names of {modname}: {missing}"
    if src.suffix == ".pyi":
        sall = stub_all(tree)
        stub_public = set(sall) if sall is not None else {
            n for n, nodes in decl.items()
            if (not n.startswith("_") or n in ALLOWED_DUNDERS) and n != "__all__"
            and not all(isinstance(x, (ast.Import, ast.ImportFrom)) and not _reexport(x, n) for x in nodes)
        }
        extra = sorted(n for n in stub_public if not hasattr(mod, n))
        assert not extra, f"{src.name} declares names {modname} does not have at run time: {extra}"
        if sall is not None and hasattr(mod, "__all__"):
            assert set(sall) == set(mod.__all__), f"__all__ differs: stub {sorted(set(sall) ^ set(mod.__all__))}"


def _reexport(node, name) -> bool:
    return any((a.asname or "") == name and a.asname == a.name.split(".")[-1] for a in node.names)


def stub_classes() -> list[tuple[str, str]]:
    out = []
    for modname in public_modules():
        try:
            src = source_for(modname)
        except BaseException:  # noqa: BLE001 - test_module_names_match reports it
            continue
        if src.suffix != ".pyi":
            continue
        tree = ast.parse(src.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                out.append((modname, node.name))
    return out


def class_node(modname, cls):
    tree = ast.parse(source_for(modname).read_text())
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)


def runtime_members(cls) -> set[str]:
    out = set()
    for n in list(vars(cls)) + list(vars(cls).get("__annotations__", {})):
        if (not n.startswith("_")) or n in MEMBER_DUNDERS:
            out.add(n)
    return out


@pytest.mark.parametrize("modname,clsname", stub_classes(), ids=[f"{m}.{c}" for m, c in stub_classes()])
def test_stub_class_members_match(modname, clsname):
    mod = importlib.import_module(modname)
    rt_cls = getattr(mod, clsname)
    node = class_node(modname, clsname)
    decl = {n for n in declared(node.body) if (not n.startswith("_")) or n in MEMBER_DUNDERS}
    rt = runtime_members(rt_cls)
    # members a stub may inherit from a stub base class in the same file
    bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
    inherited = set()
    for b in bases:
        try:
            inherited |= {n for n in declared(class_node(modname, b).body)}
        except StopIteration:
            pass
        rb = getattr(mod, b, None)
        if isinstance(rb, type):
            rt -= {n for n in runtime_members(rb)} - set(vars(rt_cls))
    assert not sorted(rt - decl - inherited), f"{clsname} in the stub lacks {sorted(rt - decl - inherited)}"
    extra = sorted(n for n in decl if not hasattr(rt_cls, n) and n not in vars(rt_cls).get("__annotations__", {}) and n not in _instance_attrs(rt_cls))
    assert not extra, f"{clsname} in the stub declares members it does not have: {extra}"
    # parameter names of what is not overloaded
    groups: dict[str, list] = {}
    for f in node.body:
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
            groups.setdefault(f.name, []).append(f)
    for name, defs in groups.items():
        if len(defs) != 1 or is_overload(defs[0]) or name.startswith("__") or not hasattr(rt_cls, name):
            continue
        if any(isinstance(d, ast.Name) and d.id in ("property", "staticmethod", "classmethod") or isinstance(d, ast.Attribute) for d in defs[0].decorator_list):
            continue
        _same_params(f"{clsname}.{name}", defs[0], getattr(rt_cls, name), method=True)


def _instance_attrs(cls) -> set[str]:
    out = set()
    for k in cls.__mro__:
        out |= set(getattr(k, "__annotations__", {}))
        out |= set(getattr(k, "__slots__", ()))
    return out


def _same_params(what, fdef, obj, method: bool):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError) as e:
        pytest.fail(f"{what}: no run-time signature to compare with the stub ({e}); give it a text_signature")
    rt = [p.name for p in sig.parameters.values() if p.name not in ("self", "cls", "$self", "$cls")]
    a = fdef.args
    st = [x.arg for x in a.posonlyargs + a.args + ([a.vararg] if a.vararg else []) + a.kwonlyargs + ([a.kwarg] if a.kwarg else [])]
    if method and st and st[0] in ("self", "cls"):
        st = st[1:]
    assert st == rt, f"{what}: the stub's parameters {st} are not the run-time ones {rt}"


@pytest.mark.parametrize("modname", public_modules())
def test_stub_function_signatures(modname):
    src = source_for(modname)
    if src.suffix != ".pyi":
        return
    mod = importlib.import_module(modname)
    tree = ast.parse(src.read_text())
    groups: dict[str, list] = {}
    for f in tree.body:
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
            groups.setdefault(f.name, []).append(f)
    for name, defs in groups.items():
        if len(defs) == 1 and not is_overload(defs[0]) and hasattr(mod, name):
            _same_params(f"{modname}.{name}", defs[0], getattr(mod, name), method=False)


def test_typed_package_files():
    assert (PKG / "py.typed").is_file(), "memento/py.typed is missing from the installed package"
    assert (PKG / "_native.pyi").is_file(), "memento/_native.pyi is missing from the installed package"
    import memento_core

    core = Path(memento_core.__file__).resolve().parent
    assert (core / "__init__.pyi").is_file() or (core / "py.typed").is_file(), "memento_core has neither a stub nor py.typed"


def test_native_stub_covers_the_native_classes():
    """The native classes the SPEC names are in the stub with the SPEC's members."""
    tree = ast.parse((PKG / "_native.pyi").read_text())
    decl = declared(tree.body)
    for name in ("NativeEngine", "NativeEmbedder", "default_model_dir", "content_id", "__version__"):
        assert name in decl, name
    eng = declared(class_node("memento._native", "NativeEngine").body)
    for m in ("dimension", "metric", "model_id", "path", "closed", "write", "add_arrays", "delete", "delete_where", "get", "get_where",
              "search", "remember", "recall", "embed", "count", "checkpoint", "stats", "close"):
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
