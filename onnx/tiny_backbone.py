#!/usr/bin/env python3
"""Write a tiny, randomly initialized BERT as a test-fixture backbone.

    python onnx/tiny_backbone.py --out DIR --tokenizer models/all-MiniLM-L6-v2/tokenizer.json

Same tokenizer and graph shape as the plain transformers graph of all-MiniLM-L6-v2
(input_ids, attention_mask, token_type_ids in; last_hidden_state out, mean-pooled by tandem),
but 2 layers of width 32 with seeded random weights (numpy, seed 0; BERT's initialisation:
normal with std 0.02, zero biases, unit LayerNorm scales). Its embeddings mean nothing; it exists
so that tests which must run the whole C ABI under valgrind (where ONNX Runtime runs ~100x
slower) exercise exactly tandem's code paths in seconds, not many minutes. Every semantic check
runs on the real backbone instead.

Idempotent like export.py: an up-to-date DIR is left alone.
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_graph  # noqa: E402
import export  # noqa: E402  (shared helpers: sha256, idempotency, formats)

CONFIG = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
}


def recipe(tokenizer_path):
    h = hashlib.sha256()
    for path in (__file__, export.__file__, bert_graph.__file__):
        with open(path, "rb") as f:
            h.update(f.read())
    for pkg in export.TOOLING:
        h.update(f"{pkg}=={importlib.metadata.version(pkg)}\n".encode())
    h.update(export.sha256(tokenizer_path).encode())
    return h.hexdigest() + ":tiny"


def random_weights(config, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    d, ff = config["hidden_size"], config["intermediate_size"]

    def normal(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w = {
        "embeddings.word_embeddings.weight": normal(config["vocab_size"], d),
        "embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], d),
        "embeddings.token_type_embeddings.weight": normal(config["type_vocab_size"], d),
        "embeddings.LayerNorm.weight": np.ones(d, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(d, np.float32),
    }
    for i in range(config["num_hidden_layers"]):
        m = f"encoder.layer.{i}"
        for name, (n_out, n_in) in {
            "attention.self.query": (d, d),
            "attention.self.key": (d, d),
            "attention.self.value": (d, d),
            "attention.output.dense": (d, d),
            "intermediate.dense": (ff, d),
            "output.dense": (d, ff),
        }.items():
            w[f"{m}.{name}.weight"] = normal(n_out, n_in)
            w[f"{m}.{name}.bias"] = np.zeros(n_out, np.float32)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"{m}.{name}.weight"] = np.ones(d, np.float32)
            w[f"{m}.{name}.bias"] = np.zeros(d, np.float32)
    return w


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", required=True, help="the tokenizer.json to use (all-MiniLM-L6-v2's)")
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out)
    rec = recipe(args.tokenizer)
    if export.up_to_date(out_dir, rec):
        print(f"tiny backbone up to date: {out_dir}")
        return 0

    import onnx
    from tokenizers import Tokenizer

    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".tiny-", dir=parent)
    try:
        config = dict(CONFIG, vocab_size=Tokenizer.from_file(args.tokenizer).get_vocab_size())
        source = {"dir": work, "config": config, "weights": random_weights(config), "pooling": "mean", "normalize": True}
        onnx.save(bert_graph.build(source, library="transformers", name="tiny-random-bert"), os.path.join(work, "model.onnx"))
        shutil.copy(args.tokenizer, os.path.join(work, "tokenizer.json"))
        files = ["model.onnx", "tokenizer.json"]
        manifest = {
            "format": export.FORMAT,
            # The directory's name: bundles record it, and tandem_model_open finds it by it.
            "name": "tiny-random-bert",
            "description": "test fixture: random weights",
            "source": "random init (numpy, seed 0), all-MiniLM-L6-v2 tokenizer",
            "architecture": "bert",
            "dim": config["hidden_size"],
            "layers": config["num_hidden_layers"],
            "max_length": export.MAX_LENGTH,
            "pooling": "mean",
            "normalize": True,
            "inputs": ["input_ids", "attention_mask", "token_type_ids"],
            "graphs": {"fp32": "model.onnx"},
            "library": "transformers",
            "files": {n: export.sha256(os.path.join(work, n)) for n in files},
            "tooling": {pkg: importlib.metadata.version(pkg) for pkg in export.TOOLING},
            "recipe_sha256": rec,
        }
        with open(os.path.join(work, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.rename(work, out_dir)
    finally:
        if os.path.isdir(work):
            shutil.rmtree(work)
    print(f"tiny backbone written to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
