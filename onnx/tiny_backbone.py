#!/usr/bin/env python3
"""Export a tiny, randomly initialized BERT as a test-fixture backbone.

    python onnx/tiny_backbone.py --out DIR

Same tokenizer and graph shape as the plain transformers export of all-MiniLM-L6-v2
(input_ids, attention_mask, token_type_ids in; last_hidden_state out, mean-pooled by tandem),
but 2 layers of width 32 with seeded random weights. Its embeddings mean nothing; it exists so
that tests which must run the whole C ABI under valgrind (where ONNX Runtime runs ~100x
slower) exercise exactly tandem's code paths in seconds, not many minutes. Every semantic check
runs on the real backbone instead.

Idempotent like export.py: an up-to-date DIR is left alone.
"""

import argparse
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export  # noqa: E402  (shared helpers: sha256, tokenizer, optimum export, idempotency)

TOOLING = ("torch", "transformers", "optimum-onnx", "onnx")


def recipe():
    import hashlib

    h = hashlib.sha256()
    for path in (__file__, export.__file__):
        with open(path, "rb") as f:
            h.update(f.read())
    for pkg in TOOLING:
        h.update(f"{pkg}=={importlib.metadata.version(pkg)}\n".encode())
    return h.hexdigest() + ":tiny"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out)
    rec = recipe()
    if export.up_to_date(out_dir, rec):
        print(f"tiny backbone up to date: {out_dir}")
        return 0

    import torch
    from transformers import BertConfig, BertModel

    src = export.source_model_dir()
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".tiny-", dir=parent)
    try:
        with open(os.path.join(src, "config.json")) as f:
            real = json.load(f)
        config = BertConfig(
            vocab_size=real["vocab_size"],
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=real["max_position_embeddings"],
        )
        torch.manual_seed(0)
        model_dir = os.path.join(work, "hf")
        BertModel(config).eval().save_pretrained(model_dir)
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
            if os.path.exists(os.path.join(src, name)):
                shutil.copy(os.path.join(src, name), model_dir)
        raw = export.export_fp32(model_dir, work, "transformers")
        shutil.move(raw, os.path.join(work, "model.onnx"))
        shutil.rmtree(os.path.join(work, "raw"))
        shutil.rmtree(model_dir)
        export.write_tokenizer(src, os.path.join(work, "tokenizer.json"))
        files = ["model.onnx", "tokenizer.json"]
        manifest = {
            "format": export.FORMAT,
            "name": "tiny-random-bert (test fixture)",
            "source": "random init, seed 0, all-MiniLM-L6-v2 tokenizer",
            "architecture": "bert",
            "dim": config.hidden_size,
            "max_length": export.MAX_LENGTH,
            "pooling": "mean",
            "normalize": True,
            "graphs": {"fp32": "model.onnx"},
            "library": "transformers",
            "files": {n: export.sha256(os.path.join(work, n)) for n in files},
            "tooling": {pkg: importlib.metadata.version(pkg) for pkg in TOOLING},
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
