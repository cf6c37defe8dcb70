"""The pure-Python embedder: Python ``onnxruntime`` and ``tokenizers`` running the same model
directory as the Rust engine, with the same tokenisation, pooling and normalisation, so both
engines put a text at (nearly) the same vector.

* Where models live: :func:`cache_dir` and :func:`model_dir` follow ``memento::embed``:
  ``$MEMENTO_MODEL_DIR`` (the default model's directory itself), else
  ``$MEMENTO_CACHE_DIR/models/<id>``, else ``$XDG_CACHE_HOME/memento/models/<id>``, else
  ``~/.cache/memento/models/<id>``. ``make setup`` (``memento model provision``) installs the
  default model there.
* A model directory holds ``memento-model.json`` (:class:`Manifest`), the ONNX graph
  (``model.onnx``; the optimised copy some provisioning adds is not used here) and
  ``tokenizer.json``.
* Embedding: the tokenizer's fixed padding is turned off and truncation set to the manifest's
  ``max_tokens`` (256: sentence-transformers' limit); texts are sorted by length and run in
  batches of at most 32 texts and 1,024 padded tokens, each padded to its longest text; token
  vectors are mean-pooled over the real tokens (attention mask) and L2-normalised.
* ``onnxruntime`` and ``tokenizers`` are imported when the first text is embedded, not before:
  opening a store and reading vectors costs neither.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from ._fork import leak
from .errors import InvalidArgumentError, MementoIOError, ModelError

__all__ = [
    "DEFAULT_MODEL",
    "MANIFEST_FILE",
    "PROVISION_HINT",
    "cache_dir",
    "model_dir",
    "resolve_model_dir",
    "Manifest",
    "ModelIdentity",
    "EmbeddingCache",
    "PyEmbedder",
]

#: The default model's id: sentence-transformers' all-MiniLM-L6-v2 (384 dimensions).
DEFAULT_MODEL: Final = "all-minilm-l6-v2"
#: The manifest's file name inside a model directory.
MANIFEST_FILE: Final = "memento-model.json"
#: What to run to install the default model (the Rust library's wording).
PROVISION_HINT: Final = (
    "install the default model and ONNX Runtime with `memento model provision` (the command line), `python -m memento model provision` (the Python package) or `make setup` (a checkout of the repository)"
)


def _env_path(name: str) -> Path | None:
    v = os.environ.get(name)
    return Path(v) if v else None


def cache_dir() -> Path:
    """Memento's cache directory: ``$MEMENTO_CACHE_DIR``, else ``$XDG_CACHE_HOME/memento``, else
    ``~/.cache/memento`` (``memento::embed::cache_dir``)."""
    p = _env_path("MEMENTO_CACHE_DIR")
    if p is not None:
        return p
    p = _env_path("XDG_CACHE_HOME")
    if p is not None:
        return p / "memento"
    home = _env_path("HOME") or Path(".")
    return home / ".cache" / "memento"


def model_dir(model_id: str = DEFAULT_MODEL) -> Path:
    """The directory of a provisioned model: ``$MEMENTO_MODEL_DIR`` for the default model, else
    ``cache_dir()/models/<id>`` (``memento::embed::model_dir``)."""
    if model_id == DEFAULT_MODEL:
        p = _env_path("MEMENTO_MODEL_DIR")
        if p is not None:
            return p
    return cache_dir() / "models" / model_id


def resolve_model_dir(model: str | os.PathLike[str] | None) -> Path:
    """A ``model`` argument as a directory: None or "default" is the default model's."""
    if model is None or model == "default":
        return model_dir(DEFAULT_MODEL)
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidArgumentError(f"Invalid argument: model must be None, \"default\" or a model directory, not {type(model).__name__}.")
    return Path(model)


class ModelIdentity(NamedTuple):
    """What a store records of its model: id, output dimension, SHA-256 of the ONNX file."""

    id: str
    dim: int
    sha256: str

    def describe(self) -> str:
        """As the Rust engine's messages show a model."""
        return f"{self.id} ({self.dim}-d, sha256 {self.sha256[:12]}…)"


@dataclass(frozen=True)
class Manifest:
    """A model directory's ``memento-model.json`` (the fields the Python embedder uses)."""

    id: str
    dimension: int
    pooling: str
    max_tokens: int
    normalize: bool
    model_file: str
    model_sha256: str
    tokenizer_file: str
    input_ids: str
    attention_mask: str
    token_type_ids: str | None
    output: str

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.id, self.dimension, self.model_sha256)

    @staticmethod
    def parse(text: str) -> Manifest:
        """Parses a manifest; ValueError saying what is wrong (the Rust checks)."""
        try:
            v = json.loads(text)
        except ValueError as e:
            raise ValueError(f"not JSON: {e}") from None
        if not isinstance(v, dict):
            raise ValueError("not a JSON object")

        def s(key: str, default: str | None = None) -> str:
            x = v.get(key, default)
            if not isinstance(x, str):
                if default is None:
                    raise ValueError(f'the string field "{key}" is missing')
                return default
            return x

        mid = s("id")
        if not (1 <= len(mid.encode()) <= 64):
            raise ValueError("the id must be 1 to 64 bytes")
        dim = v.get("dimension")
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
            raise ValueError('the number field "dimension" is missing')
        if not (1 <= dim <= 65_536):
            raise ValueError(f"dimension {dim} is outside 1 to 65,536")
        pooling = v.get("pooling") or "mean"
        if pooling not in ("mean", "cls"):
            raise ValueError(f'unknown pooling "{pooling}" (mean or cls)')
        max_tokens = v.get("max_tokens", 256)
        if not isinstance(max_tokens, int) or not (2 <= max_tokens <= 8192):
            raise ValueError(f"max_tokens {max_tokens} is outside 2 to 8,192")
        sha = s("model_sha256")
        if len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha):
            raise ValueError("model_sha256 must be 64 hex digits")
        inputs = v.get("inputs") if isinstance(v.get("inputs"), dict) else {}
        assert isinstance(inputs, dict)
        tt = inputs.get("token_type_ids", "token_type_ids")
        normalize = v.get("normalize", True)
        return Manifest(
            id=mid,
            dimension=dim,
            pooling=pooling,
            max_tokens=max_tokens,
            normalize=normalize if isinstance(normalize, bool) else True,
            model_file=s("model_file", "model.onnx"),
            model_sha256=sha.lower(),
            tokenizer_file=s("tokenizer_file", "tokenizer.json"),
            input_ids=inputs.get("input_ids") or "input_ids",
            attention_mask=inputs.get("attention_mask") or "attention_mask",
            token_type_ids=tt if isinstance(tt, str) else None,
            output=s("output", "last_hidden_state"),
        )

    @staticmethod
    def load(directory: str | os.PathLike[str]) -> Manifest:
        """Reads ``directory/memento-model.json``; ModelError if it is missing or invalid."""
        d = Path(directory)
        path = d / MANIFEST_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelError(f"Embedding model problem: there is no model at {d} ({MANIFEST_FILE} is missing); {PROVISION_HINT}.") from None
        except NotADirectoryError:
            raise ModelError(f"Embedding model problem: there is no model at {d} ({d} is not a directory); {PROVISION_HINT}.") from None
        except OSError as e:
            raise MementoIOError(f"I/O error while reading {path}: {e}.") from None
        try:
            return Manifest.parse(text)
        except ValueError as e:
            raise ModelError(f"Embedding model problem: {path} is not a valid model manifest: {e}.") from None


class EmbeddingCache:
    """A bounded LRU map from text to its (read-only) vector. Thread-safe."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = max(0, int(capacity))
        self._d: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._d)

    def get(self, text: str) -> npt.NDArray[np.float32] | None:
        with self._lock:
            v = self._d.get(text)
            if v is None:
                self.misses += 1
                return None
            self._d.move_to_end(text)
            self.hits += 1
            return v

    def put(self, text: str, v: npt.NDArray[np.float32]) -> None:
        if self.capacity == 0:
            return
        v = np.array(v, dtype=np.float32, copy=True)
        v.setflags(write=False)
        with self._lock:
            self._d[text] = v
            self._d.move_to_end(text)
            while len(self._d) > self.capacity:
                self._d.popitem(last=False)


def embed_through_cache(
    cache: EmbeddingCache,
    dimension: int,
    texts: Sequence[str],
    embed_uncached: Callable[[list[str]], Any],
) -> npt.NDArray[np.float32]:
    """``(len(texts), dimension)`` float32 vectors: cached ones from ``cache``, the others from
    ``embed_uncached`` (each distinct text once, in one call), then cached."""
    out = np.zeros((len(texts), dimension), dtype=np.float32)
    todo: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        v = cache.get(t)
        if v is not None:
            out[i] = v
        else:
            todo.setdefault(t, []).append(i)
    if todo:
        uniq = list(todo)
        vecs = np.asarray(embed_uncached(uniq), dtype=np.float32)
        for t, v in zip(uniq, vecs):
            out[todo[t]] = v
            cache.put(t, v)
    return out


def _import_runtime() -> tuple[Any, Any]:
    import importlib

    try:
        onnxruntime = importlib.import_module("onnxruntime")
        Tokenizer = importlib.import_module("tokenizers").Tokenizer
    except ImportError as e:
        raise ModelError(
            f"Embedding model problem: the Python engine embeds text with the onnxruntime and tokenizers packages, "
            f"which cannot be imported ({e}); install them with `pip install onnxruntime tokenizers`."
        ) from None
    return onnxruntime, Tokenizer


class PyEmbedder:
    """A sentence-embedding model directory run by Python ``onnxruntime`` and ``tokenizers``.

    The manifest is read at construction (ModelError if the model is not there); the tokenizer
    and the ONNX session load on the first call that needs them.

    Args:
        model_dir: The model directory; None or "default": the default model's
            (:func:`model_dir`).
        threads: ONNX Runtime's intra-op threads (0: its default, one per core).
        cache_entries: Texts kept in the in-memory LRU cache of embeddings (0: none).
        batch_size: Most texts per inference.
        batch_tokens: Most padded tokens (texts x length) per inference.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        threads: int = 0,
        cache_entries: int = 10_000,
        batch_size: int = 32,
        batch_tokens: int = 1024,
    ) -> None:
        self.directory = resolve_model_dir(model_dir)
        self.manifest = Manifest.load(self.directory)
        self.threads = int(threads)
        self.batch_size = max(1, int(batch_size))
        self.batch_tokens = max(int(batch_tokens), self.manifest.max_tokens)
        self.cache = EmbeddingCache(cache_entries)
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._session: Any = None
        self.inferred = 0
        _LIVE.add(self)

    def _after_fork_in_child(self) -> None:
        """In a forked child: the parent's ONNX Runtime session (whose thread pool's threads
        the child lacks) and tokenizer are leaked, never run or released there, and the next
        embedding loads the child's own; the locks, which a parent thread may have held at the
        fork, are new."""
        leak(self._session)
        leak(self._tokenizer)
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()
        self.cache._lock = threading.Lock()

    @property
    def identity(self) -> ModelIdentity:
        """The model's identity (recorded in the stores it writes)."""
        return self.manifest.identity

    @property
    def model_id(self) -> str:
        return self.manifest.id

    @property
    def dimension(self) -> int:
        return self.manifest.dimension

    def load(self) -> None:
        """Loads the tokenizer and the ONNX session now (otherwise the first embedding does)."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            ort, Tokenizer = _import_runtime()
            m = self.manifest
            tok_path = self.directory / m.tokenizer_file
            if not tok_path.is_file():
                raise ModelError(f"Embedding model problem: the tokenizer {tok_path} is missing; {PROVISION_HINT}.")
            graph = self.directory / m.model_file
            if not graph.is_file():
                raise ModelError(f"Embedding model problem: the model file {graph} is missing; {PROVISION_HINT}.")
            try:
                tok = Tokenizer.from_file(str(tok_path))
                # tokenizer.json files exported for fixed-size inputs pad every text to a fixed
                # length (all-MiniLM-L6-v2's: 128). Pad per batch instead; truncate at the
                # model's own limit, as sentence-transformers does.
                tok.no_padding()
                tok.enable_truncation(max_length=m.max_tokens, strategy="longest_first", direction="right")
            except Exception as e:
                raise ModelError(f"Embedding model problem: the tokenizer {tok_path} cannot be read: {e}.") from None
            try:
                so = ort.SessionOptions()
                if self.threads > 0:
                    so.intra_op_num_threads = self.threads
                so.log_severity_level = 3
                # Pool threads do not spin: spinning threads (even with force_spinning_stop) slowed
                # the numpy scan right after an embedding on 2 cores, and recall with it (p50 at
                # 10k records: 7.2 ms without spinning, 15.9 ms with; BENCHMARKS.md).
                so.add_session_config_entry("session.intra_op.allow_spinning", "0")
                session = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
            except Exception as e:
                raise ModelError(f"Embedding model problem: ONNX Runtime cannot load {graph}: {e}.") from None
            names = {i.name for i in session.get_inputs()}
            want = [m.input_ids, m.attention_mask] + ([m.token_type_ids] if m.token_type_ids else [])
            missing = [n for n in want if n not in names]
            if missing:
                raise ModelError(f"Embedding model problem: the model {graph} has no input {missing[0]!r} (it has {sorted(names)}).")
            self._tokenizer = tok
            self._session = session

    def _run(self, encs: Sequence[Any]) -> npt.NDArray[np.float32]:
        m = self.manifest
        b = len(encs)
        n = max(1, max(len(e.ids) for e in encs))
        ids = np.zeros((b, n), dtype=np.int64)
        types = np.zeros((b, n), dtype=np.int64)
        mask = np.zeros((b, n), dtype=np.int64)
        for r, e in enumerate(encs):
            k = len(e.ids)
            ids[r, :k] = e.ids
            types[r, :k] = e.type_ids
            mask[r, :k] = 1
        feeds = {m.input_ids: ids, m.attention_mask: mask}
        if m.token_type_ids:
            feeds[m.token_type_ids] = types
        try:
            (h,) = self._session.run([m.output], feeds)
        except Exception as e:
            raise ModelError(f"Embedding model problem: inference failed: {e}.") from None
        h = np.asarray(h, dtype=np.float32)
        if h.shape != (b, n, m.dimension):
            raise ModelError(f"Embedding model problem: the model returned shape {list(h.shape)}, expected [{b}, {n}, {m.dimension}].")
        if m.pooling == "cls":
            v = h[:, 0, :].copy()
        else:
            mk = mask[:, :, None].astype(np.float32)
            v = (h * mk).sum(axis=1) / np.maximum(mk.sum(axis=1), 1.0)
        v = v.astype(np.float32, copy=False)
        if m.normalize:
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            np.divide(v, norms, out=v, where=norms > 0)
        if not np.isfinite(v).all():
            raise ModelError("Embedding model problem: the model returned a vector that is not finite.")
        return v

    def embed_uncached(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeds texts with the model (no cache): ``(len(texts), dimension)`` float32."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        self.load()
        try:
            encs = self._tokenizer.encode_batch(list(texts))
        except Exception as e:
            raise ModelError(f"Embedding model problem: tokenizing failed: {e}.") from None
        order = sorted(range(len(encs)), key=lambda i: -len(encs[i].ids))
        i = 0
        while i < len(order):
            longest = max(1, len(encs[order[i]].ids))
            n = min(max(1, self.batch_tokens // longest), self.batch_size, len(order) - i)
            idx = order[i : i + n]
            out[idx] = self._run([encs[j] for j in idx])
            i += n
        self.inferred += len(texts)
        return out

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeds texts, each distinct text once, from the cache when it can:
        ``(len(texts), dimension)`` float32."""
        return embed_through_cache(self.cache, self.dimension, texts, self.embed_uncached)

    def embed(self, text: str) -> npt.NDArray[np.float32]:
        """Embeds one text: a 1-D float32 vector."""
        v: npt.NDArray[np.float32] = self.embed_batch([text])[0]
        return v


#: Every PyEmbedder of the process, reset in a forked child (PyEmbedder._after_fork_in_child).
_LIVE: weakref.WeakSet[PyEmbedder] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for e in list(_LIVE):
        e._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
