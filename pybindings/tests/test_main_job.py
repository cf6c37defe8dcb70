"""`make run`, the README's main job, on a small corpus with a temporary data directory: it
works in a store of its own (printed at the start), leaves the default store a person keeps
their notes in untouched, and a second run embeds nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import REPO

TEXTS = [
    ("Use argparse to parse command-line options and arguments.", "argparse"),
    ("gzip.open opens a gzip-compressed file in binary or text mode.", "gzip"),
    ("Closing a generator raises GeneratorExit inside it at the paused yield.", "builtins"),
    ("smtplib sends mail to any internet machine with an SMTP listener daemon.", "smtplib"),
    ("json.dump writes an object to a file; indent pretty-prints it.", "json"),
    ("json.loads parses a JSON document from a string.", "json"),
]


def make_run(corpus: Path, data_home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_DATA_HOME=str(data_home))
    env.pop("MEMENTO_HOME", None)
    return subprocess.run(
        # -o setup: the binaries and the model `make setup` made before this suite are used as they
        # are (no second `cargo install` from inside the tests).
        ["make", "--no-print-directory", "-o", "setup", "run", f"CORPUS={corpus}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_make_run_uses_its_own_store_and_leaves_the_default_store_alone(tmp_path: Path, default_model: Path) -> None:
    """(`default_model`: the run needs the model `make setup` provisioned; fails without it.)"""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t, "metadata": {"module": m}}) + "\n" for t, m in TEXTS))
    data = tmp_path / "data"
    default = data / "memento" / "default"
    own = data / "memento" / "stdlib-docs"
    default.mkdir(parents=True)
    (default / "notes.txt").write_text("a person's own notes")
    before = sorted(p.name for p in default.iterdir())

    first = make_run(corpus, data)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert f"The main job's store: {own}" in first.stdout
    assert f"remembered {len(TEXTS)} texts" in first.stdout and f"{len(TEXTS)} new" in first.stdout, first.stdout[-2000:]
    assert "json.dump writes an object" in first.stdout, "the filtered question finds the json text"
    assert (own / "memento.vec").is_file()
    assert sorted(p.name for p in default.iterdir()) == before, "the default store was touched"

    second = make_run(corpus, data)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "0 embedded" in second.stdout and f"{len(TEXTS)} unchanged" in second.stdout, second.stdout[-2000:]
    assert sorted(p.name for p in default.iterdir()) == before
