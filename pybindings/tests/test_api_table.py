"""The README's table of operations (section "One API") is the API's reference: every Python
signature in it is the package's, on both engines and on the abstract contract, and every option
in its command-line column is one `memento help` documents for that command.

Also the rest of the "one API" promise that lives in Python: ``memento.Engine`` is a class (the
base of both engines) that users can annotate with and check against, a wrong keyword names the
public method, and the defaults (k) are the ones the table states.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import memento
import memento.base

README = Path(__file__).resolve().parents[2] / "README.md"


def _table() -> list[tuple[str, str, str, str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index("## One API")
    end = text.index("\n## ", start + 1)
    rows = []
    for line in text[start:end].splitlines():
        if not line.startswith("| ") or line.startswith("| Operation") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"a row of the table has {len(cells)} cells, not 4: {line}"
        rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows


ROWS = _table()


def _calls(cell: str) -> list[str]:
    """The backticked calls of a cell: "name(params)"."""
    return re.findall(r"`([^`]+)`", cell)


def _render(sig: inspect.Signature) -> str:
    """A signature as the table writes it: names, defaults by repr, ``*`` before keyword-only."""
    out: list[str] = []
    star = False
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            out.append("*")
            star = True
        out.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(out)


def test_the_table_has_every_operation():
    ops = [r[0] for r in ROWS]
    for op in ("open", "add", "upsert", "update", "delete", "get", "search", "remember", "recall", "count", "close"):
        assert op in ops, f"the README's table has no row for {op}"


@pytest.mark.parametrize("owner", ["Engine", "RustEngine", "PythonEngine", "base.Engine"])
def test_python_column_is_the_signatures(owner):
    cls = memento.base.Engine if owner == "base.Engine" else getattr(memento, owner)
    checked = 0
    for op, _rust, py, _cli in ROWS:
        for call in _calls(py):
            m = re.fullmatch(r"(\w+)\((.*)\)", call)
            assert m, f"row {op}: {call!r} is not a call"
            name, params = m.groups()
            if name == "Engine":
                if owner == "base.Engine":
                    continue  # the abstract contract has no constructor
                sig = inspect.signature(cls)
            else:
                assert hasattr(cls, name), f"{owner} has no method {name} (row {op})"
                sig = inspect.signature(getattr(cls, name))
            assert _render(sig) == params, f"row {op}: the README says {name}({params}), {owner} has {name}({_render(sig)})"
            checked += 1
    assert checked >= 14


def test_the_table_states_the_default_k():
    assert memento.DEFAULT_K == 10
    for name in ("search", "recall", "search_arrays"):
        assert inspect.signature(getattr(memento.Engine, name)).parameters["k"].default == memento.DEFAULT_K


def _help(cmd: str) -> str:
    exe = shutil.which("memento") or str(Path.home() / ".cargo" / "bin" / "memento")
    assert Path(exe).exists(), "the memento command line is installed by make setup"
    out = subprocess.run([exe, "help", cmd], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_command_line_column_is_what_memento_help_documents():
    checked = 0
    for op, _rust, _py, cli in ROWS:
        for call in _calls(cli):
            words = call.split()
            if words[0].startswith("memento-"):
                continue  # another binary (memento-inspect): its own tests
            cmd = words[0]
            text = _help(cmd)
            for opt in (w for w in words[1:] if w.startswith("-")):
                assert re.search(rf"(^|[\s,]){re.escape(opt)}([\s=,<]|$)", text, re.M), f"row {op}: memento {cmd} has no option {opt}"
                checked += 1
    assert checked >= 20


def test_engine_is_a_class_both_engines_derive_from(tmp_path):
    assert isinstance(memento.Engine, type)
    assert issubclass(memento.RustEngine, memento.Engine) and issubclass(memento.PythonEngine, memento.Engine)

    def annotated(db: memento.Engine) -> int:
        return db.count()

    with memento.Engine(tmp_path / "s", dimension=2, model=None) as db:
        assert isinstance(db, memento.Engine) and isinstance(db, memento.base.Engine)
        assert type(db) is (memento.RustEngine if memento.using_rust() else memento.PythonEngine)
        assert annotated(db) == 0


def test_a_user_subclass_opens_the_default_engine(tmp_path):
    class Mine(memento.Engine):
        def remember_twice(self, text: str) -> str:
            self.remember(text)
            return self.remember(text)

    with Mine(tmp_path / "s", dimension=2, model=None) as db:
        assert isinstance(db, Mine) and db.stats()["engine"] == memento.backend()
        db.add("a", [1.0, 0.0])
        assert db.search([1.0, 0.0], k=1)[0].id == "a"


@pytest.mark.parametrize(
    "call, method",
    [
        (lambda db: db.update("a", text="new"), "update"),
        (lambda db: db.search([1.0, 0.0], n_results=3), "search"),
        (lambda db: db.remember("hello", metadata={"a": 1}), "remember"),
        (lambda db: db.get("a", include=["vectors"]), "get"),
    ],
)
def test_a_wrong_keyword_names_the_public_method(open_engine, call, method):
    db = open_engine(dimension=2)
    db.add("a", [1.0, 0.0])
    with pytest.raises(TypeError) as info:
        call(db)
    msg = str(info.value)
    assert msg.startswith(f"Engine.{method}()"), msg
    assert "Core" not in msg


def test_a_wrong_keyword_to_the_constructor_names_engine(tmp_path):
    with pytest.raises(TypeError, match=r"^Engine\.__init__\(\) got an unexpected keyword argument 'dim'"):
        memento.Engine(tmp_path / "s", dim=3, model=None)
