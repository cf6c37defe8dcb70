"""``python -m memento``: the package's own commands. (A provisioning from nothing, in a fresh
venv holding only the wheel, is `make wheel-smoke`'s.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import memento


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memento", *args], capture_output=True, text=True, timeout=600)


def test_model_show_names_where_the_model_is_looked_for() -> None:
    r = run("model", "show")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == memento.default_model_dir()


def test_provisioning_again_checks_what_is_there_and_fetches_nothing(default_model: Path) -> None:
    r = run("model", "provision")
    assert r.returncode == 0, r.stderr
    assert f"the default model is installed in {default_model}" in r.stdout
    assert "fetching" not in r.stderr and "already installed, SHA-256 checks out" in r.stderr, r.stderr
    report = memento.provision()
    assert report["model_dir"] == str(default_model)
    assert not report["model_fetched"] and not report["runtime_fetched"], report


def test_a_bad_command_is_a_usage_error() -> None:
    r = run("model", "nope")
    assert r.returncode == 2 and "invalid choice" in r.stderr, r.stderr
