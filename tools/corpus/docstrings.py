"""Prose paragraphs from the docstrings of Python's standard library: a real text corpus that
no one on this project wrote and that every machine with Python has.

A docstring (module, class, function) is cut into paragraphs (blank-line separated). A
paragraph is kept when it is prose: at least ``MIN_CHARS`` characters, not a doctest or
directive, at least 80% letters and spaces. Whitespace is collapsed, the text is cut at a word
boundary near ``MAX_CHARS``, and exact duplicates are dropped. Files are read in sorted order,
so the same Python gives the same list.

Used by the main job (``make run``: ``python3 tools/corpus/docstrings.py --out FILE``, one JSON
object ``{"text", "source"}`` per line) and by ``benches/compare/embed_corpus.py``.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import os
import re
import sys
import sysconfig
from pathlib import Path

MIN_CHARS = 60
MAX_CHARS = 500


def paragraphs(doc: str):
    """The prose paragraphs of one docstring, cleaned."""
    for para in re.split(r"\n\s*\n", doc):
        stripped = para.strip()
        if stripped.startswith((">>>", "..", "::")):
            continue
        text = " ".join(stripped.split())
        if len(text) < MIN_CHARS:
            continue
        prose = sum(c.isalpha() or c == " " for c in text) / len(text)
        if prose < 0.8:
            continue
        if len(text) > MAX_CHARS:
            cut = text.rfind(" ", 0, MAX_CHARS)
            text = text[: cut if cut > MIN_CHARS else MAX_CHARS]
        yield text


def docstrings(path: Path):
    """Module, class and function docstrings of one source file (none if it does not parse)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                yield doc


def py_files(root: Path, skip_dirs: set[str]):
    """``.py`` files under root, in sorted order, skipping the named directories."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs and d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield Path(dirpath) / name


def stdlib_texts(skip_dirs: set[str] = frozenset()):
    """(text, source) for every prose paragraph of the standard library's docstrings."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in py_files(stdlib, {"site-packages", "dist-packages", *skip_dirs}):
        rel = path.relative_to(stdlib).as_posix()
        for doc in docstrings(path):
            for text in paragraphs(doc):
                yield text, f"stdlib:{rel}"


def topic_texts():
    """(text, source) for the prose paragraphs of ``pydoc_data.topics``: the language reference
    text that ``help()`` shows."""
    from pydoc_data.topics import topics

    for key in sorted(topics):
        for text in paragraphs(topics[key]):
            yield text, f"pydoc_data.topics:{key}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="JSONL file to write (replaced atomically)")
    ap.add_argument("--no-tests", action="store_true", help="leave out the standard library's own test suite")
    args = ap.parse_args()
    skip = {"test", "tests", "idle_test"} if args.no_tests else set()
    seen: set[str] = set()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for text, source in itertools.chain(stdlib_texts(skip), topic_texts()):
            if text in seen:
                continue
            seen.add(text)
            if source.startswith("stdlib:"):
                module = source.removeprefix("stdlib:").removesuffix(".py").replace("/", ".").removesuffix(".__init__")
                meta = {"module": module.split(".")[0], "source": source}
            else:
                meta = {"module": "(language reference)", "source": source}
            f.write(json.dumps({"text": text, "metadata": meta}, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, out)
    print(f"{n} paragraphs from the docstrings and language reference of Python {sys.version.split()[0]} -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
