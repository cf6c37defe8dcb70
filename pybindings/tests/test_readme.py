"""The Python examples of README.md and pybindings/README.md, run as a user would paste them: each
```python block in a fresh directory, twice (an example must survive a second run), and where a
```text block follows it (after a line "prints"), its output must be exactly that."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

READMES = [REPO / "README.md", REPO / "pybindings" / "README.md"]
BLOCK = re.compile(r"```python\n(?P<code>.*?)```\n(?:\nprints\n\n```text\n(?P<out>.*?)```\n)?", re.S)


def examples() -> list[tuple[str, str, str | None]]:
    found = []
    for readme in READMES:
        for i, m in enumerate(BLOCK.finditer(readme.read_text())):
            found.append((f"{readme.relative_to(REPO)}#{i + 1}", m["code"], m["out"]))
    return found


def test_every_readme_has_its_python_examples() -> None:
    names = [name for name, _, _ in examples()]
    assert any(n.startswith("README.md") for n in names) and any(n.startswith("pybindings") for n in names), names
    assert all(out is not None for _, _, out in examples()), "every Python example shows what it prints"


@pytest.mark.parametrize("name,code,out", examples(), ids=[e[0] for e in examples()])
def test_readme_example_runs_twice_and_prints_what_it_shows(name: str, code: str, out: str | None, tmp_path: Path, default_model: Path) -> None:
    for run in (1, 2):
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{name}, run {run}: {r.stderr[-3000:]}"
        if out is not None:
            assert r.stdout == out, f"{name}, run {run}: printed\n{r.stdout}\nbut the README shows\n{out}"


# ---------------------------------------------------------------------------------------------
# The command-line session of README.md, replayed.

CONSOLE = re.compile(r"```console\n(.*?)```\n", re.S)
FLOAT = re.compile(r"-?\d+\.\d+")


def session() -> list[tuple[str, str]]:
    """The README's console block as (command, expected output) pairs."""
    text = CONSOLE.search((REPO / "README.md").read_text())
    assert text is not None, "README.md has no console session"
    steps: list[tuple[str, list[str]]] = []
    for line in text[1].splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return [(cmd, "".join(l + "\n" for l in out)) for cmd, out in steps]


def stable(s: str) -> str:
    """Output without what changes from run to run: timings and rates."""
    s = re.sub(r" in \d+(\.\d+)? s", " in <t> s", s)
    return re.sub(r"\(\d+/s\)", "(<r>/s)", s)


def same_output(got: str, want: str) -> bool:
    """Equal but for timings, and for floats within 2e-4 (the last digit of a score can differ
    between SIMD kernels); a float must be shown with as many digits as printed."""
    got, want = stable(got), stable(want)
    if FLOAT.sub("<f>", got) != FLOAT.sub("<f>", want):
        return False
    pairs = list(zip(FLOAT.findall(got), FLOAT.findall(want)))
    return all(len(g) == len(w) for g, w in pairs) and all(abs(float(g) - float(w)) <= 2e-4 for g, w in pairs)


def test_the_readme_session_replays(tmp_path: Path, default_model: Path) -> None:
    binary = REPO / "target" / "release" / "memento"
    assert binary.is_file(), f"{binary} is missing: run `make setup`"
    env = dict(os.environ, MEMENTO_HOME=str(tmp_path / "default"), PATH=f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    steps = session()
    assert len(steps) >= 10, steps
    for cmd, want in steps:
        m = re.fullmatch(r"cat (\S+)", cmd)
        if m:  # the file the session shows is the file it uses
            (tmp_path / m[1]).write_text(want)
            continue
        r = subprocess.run(["bash", "-c", "{ " + cmd + "\n} 2>&1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert same_output(r.stdout, want), f"$ {cmd}\nprinted\n{r.stdout}\nbut README.md shows\n{want}"
