"""Build the labelled retrieval-quality set (issue 18) from the running Python's standard library,
offline and deterministically: the same Python and the same options give the same files.

Two kinds of known-item queries, each with exactly one relevant document, the way
titles-as-queries sets are built:

- ``docstring``: for each public module, class, function and method of the standard library
  (every ``.py`` file under ``sysconfig.get_paths()["stdlib"]``, read in sorted order;
  ``site-packages``, ``dist-packages``, the test suites ``test``/``tests``/``idle_test``,
  ``idlelib`` and ``turtledemo`` skipped; a module, class or function is public when no part of
  its dotted name starts with ``_``; functions nested in functions are not looked at) whose
  docstring's first paragraph is a one-line summary and which has more paragraphs after it, at
  least one of them prose:

  * the QUERY is the summary, whitespace collapsed. A summary is one sentence (no ``.``, ``!``
    or ``?`` followed by more text), ``MIN_SUMMARY_WORDS`` = 4 to ``MAX_SUMMARY_WORDS`` = 40
    words, not ending in ``:``, ``,`` or ``;`` (it introduces what follows), at least 80%
    letters and spaces, and not a signature line (``name(...`` at its start, or ``->``);
  * the RELEVANT DOCUMENT is the rest of the docstring without the summary: the following
    paragraphs, whitespace collapsed, cut at a word boundary near ``BODY_CHARS`` = 800
    characters. "Prose" is the test of ``tools/corpus/docstrings.py`` (``paragraphs``).

- ``reference``: the sections of the language reference that ``help()`` shows
  (``pydoc_data.topics``, topics in sorted order): a section starts at a heading line
  underlined by a run of one of ``* = - ~ ^ #`` of the heading's length. The QUERY is the
  heading; the RELEVANT DOCUMENT is the section's text up to the next heading, collapsed and cut
  the same way; a section needs a prose paragraph. These queries are short titles, where the
  docstring ones are sentences; unlike the docstring kind, a section's text may repeat its
  heading (``The "if" statement is used for ...``), as text under a title does.

Then, in this order: a docstring query whose document contains its summary verbatim (ignoring
case and a final period) is dropped; of queries whose documents are the same text, the first
(in file order; docstrings before reference sections) is kept and the rest dropped; and every
query whose text occurs more than once (ignoring case, spacing and a final period; e.g.
``Return a string representation of the object.``) is dropped with all its copies, since the
others' documents would be equally right answers.

The corpus is every relevant document plus DISTRACTORS: the prose paragraphs of the standard
library's docstrings and of the language reference (``docstrings.stdlib_texts`` with the same
directories skipped, then ``docstrings.topic_texts``, first copy of each text kept), less every
paragraph of a docstring or section that gave a kept query (so that no distractor is a piece of
a labelled answer) and less any paragraph equal to a relevant document.

Subsets (``--limit-queries N``): the queries are drawn per kind with ``random.Random(SEED)``
(``--sample SEED``, default ``DEFAULT_SEED``), kinds in the order above, each kind getting an
equal share of N (a kind with fewer queries than its share gives the rest to the others), so
that the short reference kind is not a handful of queries in a small set. ``--corpus-size M``
then draws the distractors that fill the corpus up to M documents from the same generator
(default: every distractor). The corpus is written in an order shuffled by the same generator,
so that no mode gains from relevant documents being stored first (ties between equal scores
fall to the earlier record).

Output (``--out DIR``): ``corpus.jsonl`` (one ``{"id", "text", "source"}`` per document: ids
``doc:<module>:<qualname>``, ``ref:<topic>:<heading slug>``, ``para:<16 hex digits of the
text's SHA-256>`` for distractors; ``source`` the file and name, or ``pydoc_data.topics:<key>``),
``queries.jsonl`` (one ``{"qid", "query", "relevant": [ids], "kind"}`` per query) and
``manifest.json`` (Python version, options, counts). Counts are printed.

Usage::

    python benches/retrieval/make_set.py --out target/bench-data/retrieval/full
    python benches/retrieval/make_set.py --out DIR --limit-queries 300 --corpus-size 2500 [--sample SEED]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import itertools
import json
import os
import random
import re
import sys
import sysconfig
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The paragraph test and the distractor texts are the main job's (make run).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "corpus"))
import docstrings  # noqa: E402

# Bump when the recipe changes, so that a set on disk can be told from a set of another recipe.
FORMAT_VERSION = 1
BODY_CHARS = 800
MIN_SUMMARY_WORDS = 4
MAX_SUMMARY_WORDS = 40
DEFAULT_SEED = 20_261_218
# Beside site-packages and dist-packages, which docstrings.stdlib_texts always skips.
SKIP_DIRS = frozenset({"test", "tests", "idle_test", "idlelib", "turtledemo"})
KINDS = ("docstring", "reference")

# A sentence end followed by more text: the paragraph is more than one sentence.
SENTENCE_BREAK = re.compile(r"[.!?]\s+\S")
# A signature line: ``name(...`` at the start (``FileInput([files[, ...]]) ...``).
SIGNATURE = re.compile(r"^[\w.]+\s*\(")
# A heading of pydoc_data.topics: a line underlined by one character repeated.
HEADING = re.compile(r"^(\S[^\n]*)\n([*=\-~^#])\2+[ \t]*$", re.M)
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass
class Item:
    """One query with its one relevant document."""

    kind: str
    query: str
    doc_id: str
    body: str
    source: str
    # The prose paragraphs of the docstring or section it comes from: never distractors.
    own_paragraphs: frozenset[str]


def collapse(text: str) -> str:
    return " ".join(text.split())


def cut(text: str, limit: int = BODY_CHARS) -> str:
    """``text`` cut at the last word boundary before ``limit`` characters."""
    if len(text) <= limit:
        return text
    at = text.rfind(" ", 0, limit)
    return text[: at if at > limit // 2 else limit]


def is_summary(s: str) -> bool:
    """Whether a (collapsed) first paragraph is a one-sentence summary usable as a query."""
    words = s.split()
    if not MIN_SUMMARY_WORDS <= len(words) <= MAX_SUMMARY_WORDS:
        return False
    if SENTENCE_BREAK.search(s) or s.endswith((":", ",", ";")):
        return False
    if SIGNATURE.match(s) or "->" in s:
        return False
    return sum(c.isalpha() or c == " " for c in s) / len(s) >= 0.8


def has_prose(text: str) -> bool:
    return next(docstrings.paragraphs(text), None) is not None


def public_defs(tree: ast.Module):
    """(qualname, node) of the module's public classes and functions and of the public methods
    and nested classes of its public classes, in source order. Definitions under ``if``,
    ``try`` and the like count; those inside function bodies do not."""

    def walk(node: ast.AST, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if child.name.startswith("_"):
                    continue
                yield prefix + child.name, child
                if isinstance(child, ast.ClassDef):
                    yield from walk(child, prefix + child.name + ".")
            elif not isinstance(child, ast.Lambda):
                yield from walk(child, prefix)

    yield "", tree
    yield from walk(tree, "")


def docstring_items(stdlib: Path):
    """The ``docstring`` queries, before the drops, in file order."""
    for path in docstrings.py_files(stdlib, {"site-packages", "dist-packages", *SKIP_DIRS}):
        rel = path.relative_to(stdlib).as_posix()
        module = rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        if any(part.startswith("_") for part in module.split(".")):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for qualname, node in public_defs(tree):
            doc = ast.get_docstring(node)
            if not doc:
                continue
            paras = PARAGRAPH_BREAK.split(doc.strip())
            summary = collapse(paras[0])
            rest = "\n\n".join(paras[1:])
            if len(paras) < 2 or not is_summary(summary) or not has_prose(rest):
                continue
            name = f"{module}:{qualname}" if qualname else module
            yield Item(
                kind="docstring",
                query=summary,
                doc_id=f"doc:{name}",
                body=cut(collapse(rest)),
                source=f"stdlib:{rel}:{qualname}" if qualname else f"stdlib:{rel}",
                own_paragraphs=frozenset(docstrings.paragraphs(doc)),
            )


def reference_items():
    """The ``reference`` queries (section headings of pydoc_data.topics), before the drops."""
    from pydoc_data.topics import topics

    for key in sorted(topics):
        text = topics[key]
        # Headings whose underline is as long as the heading (a table's ``+====+`` rule is not).
        heads = [m for m in HEADING.finditer(text) if len(m.group(0).split("\n")[1].rstrip()) == len(m.group(1).rstrip())]
        for i, m in enumerate(heads):
            section = text[m.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            heading = collapse(m.group(1))
            if not has_prose(section):
                continue
            slug = re.sub(r"\W+", "-", heading.lower()).strip("-")
            yield Item(
                kind="reference",
                query=heading,
                doc_id=f"ref:{key}:{slug}",
                body=cut(collapse(section)),
                source=f"pydoc_data.topics:{key}",
                own_paragraphs=frozenset(docstrings.paragraphs(section)),
            )


def query_key(q: str) -> str:
    return collapse(q).lower().rstrip(".")


def kept_items(items: list[Item]) -> tuple[list[Item], dict[str, int]]:
    """The drops of the module docstring, in its order; returns the kept items and how many
    each rule dropped."""
    dropped: Counter[str] = Counter()
    out = []
    for it in items:
        if it.kind == "docstring" and query_key(it.query) in it.body.lower():
            dropped["summary in its document"] += 1
        else:
            out.append(it)
    seen_bodies: set[str] = set()
    items, out = out, []
    for it in items:
        if it.body in seen_bodies:
            dropped["same document as an earlier query"] += 1
        else:
            seen_bodies.add(it.body)
            out.append(it)
    counts = Counter(query_key(it.query) for it in out)
    items, out = out, []
    for it in items:
        if counts[query_key(it.query)] > 1:
            dropped["query text not unique"] += 1
        else:
            out.append(it)
    # Ids are unique by construction but for a name defined twice in one module (under if/else):
    # those keep their first definition's id with a suffix.
    ids: Counter[str] = Counter()
    for it in out:
        ids[it.doc_id] += 1
        if ids[it.doc_id] > 1:
            it.doc_id += f"#{ids[it.doc_id]}"
    return out, dict(dropped)


def distractor_pool(items: list[Item]) -> list[tuple[str, str]]:
    """(text, source) of every distractor paragraph, in file order, each text once."""
    excluded = set().union(*(it.own_paragraphs for it in items)) | {it.body for it in items}
    seen: set[str] = set()
    pool = []
    for text, source in itertools.chain(docstrings.stdlib_texts(SKIP_DIRS), docstrings.topic_texts()):
        if text in seen or text in excluded:
            continue
        seen.add(text)
        pool.append((text, source))
    return pool


def choose(items: list[Item], limit: int | None, rng: random.Random) -> list[Item]:
    """``limit`` items drawn per kind (equal shares, a short kind's leftover to the others), in
    their original order; all of them without a limit."""
    if limit is None or limit >= len(items):
        return list(items)
    by_kind = {k: [i for i, it in enumerate(items) if it.kind == k] for k in KINDS}
    quota: dict[str, int] = {}
    left, kinds = limit, sorted(KINDS, key=lambda k: len(by_kind[k]))  # the shortest first
    for n, k in enumerate(kinds):
        quota[k] = min(len(by_kind[k]), left // (len(kinds) - n))
        left -= quota[k]
    picked = []
    for k in KINDS:
        picked += rng.sample(by_kind[k], quota[k])
    return [items[i] for i in sorted(picked)]


def write_jsonl(path: Path, rows) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def build(out: Path, limit: int | None = None, seed: int = DEFAULT_SEED, corpus_size: int | None = None, log=print) -> dict:
    """Writes the set into ``out`` and returns its manifest (counts included)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    candidates = list(docstring_items(stdlib)) + list(reference_items())
    items, dropped = kept_items(candidates)
    pool = distractor_pool(items)

    rng = random.Random(seed)
    chosen = choose(items, limit, rng)
    n_distractors = len(pool) if corpus_size is None else max(0, min(len(pool), corpus_size - len(chosen)))
    distractors = [pool[i] for i in sorted(rng.sample(range(len(pool)), n_distractors))]

    corpus = [{"id": it.doc_id, "text": it.body, "source": it.source} for it in chosen]
    corpus += [{"id": "para:" + hashlib.sha256(t.encode()).hexdigest()[:16], "text": t, "source": s} for t, s in distractors]
    rng.shuffle(corpus)
    queries = [
        {"qid": f"q{n:05d}", "query": it.query, "relevant": [it.doc_id], "kind": it.kind} for n, it in enumerate(chosen)
    ]
    assert len({r["id"] for r in corpus}) == len(corpus), "document ids are not unique"

    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "corpus.jsonl", corpus)
    write_jsonl(out / "queries.jsonl", queries)
    by_kind = Counter(it.kind for it in chosen)
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "python": sys.version.split()[0],
        "stdlib": str(stdlib),
        "limit_queries": limit,
        "seed": seed,
        "corpus_size": corpus_size,
        "candidates": dict(Counter(it.kind for it in candidates)),
        "dropped": dropped,
        "available": dict(Counter(it.kind for it in items)),
        "distractor_pool": len(pool),
        "queries": {k: by_kind[k] for k in KINDS},
        "corpus": {"relevant": len(chosen), "distractors": len(distractors), "total": len(corpus)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log(
        f"Python {manifest['python']}: {sum(manifest['candidates'].values())} candidate queries "
        f"({', '.join(f'{k} {v}' for k, v in manifest['candidates'].items())}), dropped: "
        + (", ".join(f"{k} {v}" for k, v in dropped.items()) or "none")
    )
    log(
        f"{len(queries)} queries ({', '.join(f'{k} {by_kind[k]}' for k in KINDS)}; of "
        f"{', '.join(f'{k} {v}' for k, v in manifest['available'].items())} available), "
        f"{len(corpus)} documents ({len(chosen)} relevant, {len(distractors)} distractors of {len(pool)}) -> {out}"
    )
    return manifest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="directory to write corpus.jsonl, queries.jsonl and manifest.json into")
    ap.add_argument("--limit-queries", type=int, metavar="N", help="draw N queries (equal shares per kind); default: all")
    ap.add_argument("--sample", type=int, default=DEFAULT_SEED, metavar="SEED", help=f"seed of the draws (default {DEFAULT_SEED})")
    ap.add_argument("--corpus-size", type=int, metavar="M", help="fill the corpus with distractors up to M documents; default: every distractor")
    args = ap.parse_args()
    build(args.out, args.limit_queries, args.sample, args.corpus_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
