"""The experiment behind BENCHMARKS.md "What was tried for the recall target": cheaper ways to
run the default model for one query, timed with Python onnxruntime (2 threads, one text at a
time, p50) and compared by cosine with the shipped graph's vectors over 200 corpus paragraphs.

Variants of the provisioned model.onnx (int8 weights that ONNX Runtime dequantizes to fp32):
- ``dyn-all``: ``quantize_dynamic`` on every MatMul (activations to uint8, attention included);
- ``dyn-weights``: ``quantize_dynamic`` on the MatMuls with constant weights only, per channel;
- ``nbits-0`` / ``nbits-4``: the model's own int8 weights as ``MatMulNBits`` (8 bits, block 128),
  accuracy level 0 (fp32 compute) and 4 (int8 compute).

Needs the ``onnx`` package on top of the project's .venv (not a project dependency):

    .venv/bin/pip install onnx==1.19.1
    .venv/bin/python benches/embed/quant_experiment.py [--corpus target/corpus/stdlib-docstrings.jsonl]

Short questions are three fixed ones; long questions the first 50 paragraphs after the first 300.
Graphs go to target/bench-data/quant/.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[2]
SHORT = ["how do I open a file for reading", "Return the number of items in a container.", "parse command line options and arguments"]


def model_dir() -> Path:
    cache = os.environ.get("MEMENTO_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "memento")
    return Path(os.environ.get("MEMENTO_MODEL_DIR") or Path(cache) / "models" / "all-minilm-l6-v2")


def session(path: Path, threads: int = 2) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def basic_graph(src: Path, out: Path) -> None:
    """Constant folding only (the int8 weights become fp32), no contrib ops: what quantize_dynamic takes."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(out)
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])


def weight_matmuls(path: Path) -> list[str]:
    m = onnx.load(str(path))
    inits = {i.name for i in m.graph.initializer}
    return [n.name for n in m.graph.node if n.op_type == "MatMul" and n.input[1] in inits]


def nbits_graph(src: Path, out: Path, accuracy_level: int, block: int = 128) -> None:
    """Each int8 weight -> Cast -> Mul(scale per column) -> MatMul becomes one MatMulNBits with the
    same weights (uint8 = int8 + 128, zero point 128) and the column scale in every block."""
    m = onnx.load(str(src))
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    consumers = collections.defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
    drop, replace, added = set(), {}, []
    for w in list(g.initializer):
        if w.data_type != onnx.TensorProto.INT8:
            continue
        cast = consumers[w.name][0]
        mul = consumers[cast.output[0]][0]
        mms = consumers[mul.output[0]]
        if len(mms) != 1 or mms[0].op_type != "MatMul" or mms[0].input[1] != mul.output[0]:
            continue
        mm = mms[0]
        q = numpy_helper.to_array(w).astype(np.int16)
        k, n = q.shape
        scale_name = next(x for x in mul.input if x != cast.output[0])
        scale = numpy_helper.to_array(inits[scale_name]).reshape(-1).astype(np.float32)
        blocks = k // block
        added += [
            numpy_helper.from_array((q + 128).astype(np.uint8).T.reshape(n, blocks, block), w.name + "_nb"),
            numpy_helper.from_array(np.repeat(scale, blocks).astype(np.float32), w.name + "_nbs"),
        ]
        replace[id(mm)] = helper.make_node(
            "MatMulNBits", [mm.input[0], w.name + "_nb", w.name + "_nbs"], list(mm.output), domain="com.microsoft",
            name=mm.name + "_nbits", K=k, N=n, bits=8, block_size=block, accuracy_level=accuracy_level,
        )
        drop |= {id(cast), id(mul), id(mm)}
    nodes = [replace.get(id(n), n) for n in g.node if id(n) not in drop or id(n) in replace]
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(added)
    if not any(o.domain == "com.microsoft" for o in m.opset_import):
        m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(m, str(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=REPO / "target" / "corpus" / "stdlib-docstrings.jsonl")
    ap.add_argument("--out", type=Path, default=REPO / "target" / "bench-data" / "quant")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    d = model_dir()
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    paragraphs = [json.loads(line)["text"] for line in a.corpus.read_text().splitlines() if line.strip()]
    compare, questions = paragraphs[:200], paragraphs[300:350]

    def embed(s: ort.InferenceSession, text: str) -> np.ndarray:
        e = tok.encode(text)
        ids = np.array([e.ids], dtype=np.int64)
        mask = np.array([e.attention_mask], dtype=np.int64)
        h = s.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0][0]
        v = h.mean(0)
        return v / np.linalg.norm(v)

    def p50_ms(s: ort.InferenceSession, texts: list[str], repeat: int) -> float:
        for t in texts[:3]:
            embed(s, t)
        lat = []
        for t in texts * repeat:
            t0 = time.perf_counter()
            embed(s, t)
            lat.append(time.perf_counter() - t0)
        return float(np.median(lat) * 1e3)

    basic = a.out / "basic.onnx"
    basic_graph(d / "model.onnx", basic)
    graphs = {"shipped": d / "model.onnx"}
    graphs["dyn-all"] = a.out / "dyn-all.onnx"
    quantize_dynamic(str(basic), str(graphs["dyn-all"]), weight_type=QuantType.QInt8)
    graphs["dyn-weights"] = a.out / "dyn-weights.onnx"
    quantize_dynamic(str(basic), str(graphs["dyn-weights"]), weight_type=QuantType.QInt8, per_channel=True, nodes_to_quantize=weight_matmuls(basic))
    for level in (0, 4):
        graphs[f"nbits-{level}"] = a.out / f"nbits-{level}.onnx"
        nbits_graph(d / "model.onnx", graphs[f"nbits-{level}"], level)

    ref = session(graphs["shipped"])
    ref_vecs = [embed(ref, t) for t in compare]
    print("| graph | p50, three short questions | p50, 50 paragraph questions | cosine to shipped (min / median) |")
    print("|---|---|---|---|")
    for name, path in graphs.items():
        s = session(path)
        cos = [float(embed(s, t) @ r) for t, r in zip(compare, ref_vecs)]
        one = p50_ms(session(path, 1), SHORT, 30) if name == "shipped" else None
        short = f"{p50_ms(s, SHORT, 30):.2f} ms" + (f" ({one:.2f} ms on 1 thread)" if one else "")
        print(f"| {name} | {short} | {p50_ms(s, questions, 1):.2f} ms | {min(cos):.4f} / {float(np.median(cos)):.4f} |", flush=True)


if __name__ == "__main__":
    main()
