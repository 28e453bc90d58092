#!/usr/bin/env python3
"""Run a `tandem export` graph in stock ONNX Runtime and compare it with tandem's predictions.

    python scripts/check_export.py MODEL.onnx CASES.json [--tol 1e-4] [--min-agree 0.995]

CASES.json (written by tests/export.rs or scripts/export_parity.sh):
  {"texts": [...], "metadata": [[...], ...] (the raw features, as `tandem features --json`
   lists them; absent when the model reads none), "expected": {"<task output>": [[...], ...]},
   "labels": {"<task output>": [...] } (optional: tandem's predicted label index per text)}

Uses nothing of tandem: the tokenizer file beside the graph (Hugging Face `tokenizers`), the
graph's own metadata (`tandem.max_length`), onnx.checker with full checks, and onnxruntime.
The session turns off the graph optimizers the graph's `tandem.ort_disabled_optimizers` names
(what tandem's CPU sessions turn off), unless --all-optimizers: for the int8 graph that decides
whether the outputs are exactly tandem's or only nearly.
Prints one JSON line (max |difference| and label agreement per output) and exits 1 when an
output is off by more than --tol, or when fewer than --min-agree of the argmax labels agree.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer


def encode(tokenizer_path, texts, max_length):
    tok = Tokenizer.from_file(tokenizer_path)
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    enc = tok.encode_batch(texts)
    width = max(1, max(len(e.ids) for e in enc))
    pad = tok.token_to_id("[PAD]") or 0
    ids = np.full((len(texts), width), pad, dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=np.int64)
    for i, e in enumerate(enc):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    return ids, mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("cases")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--min-agree", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--all-optimizers", action="store_true")
    args = ap.parse_args()

    onnx.checker.check_model(args.model, full_check=True)
    meta = {p.key: p.value for p in onnx.load(args.model, load_external_data=False).metadata_props}
    max_length = int(meta["tandem.max_length"])
    tokenizer = os.path.join(os.path.dirname(os.path.abspath(args.model)), meta["tandem.tokenizer"])
    with open(args.cases) as f:
        cases = json.load(f)
    texts = cases["texts"]
    disabled = [] if args.all_optimizers else [
        o for o in meta.get("tandem.ort_disabled_optimizers", "").split(",") if o
    ]
    sess = ort.InferenceSession(
        args.model, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
    )
    names = [i.name for i in sess.get_inputs()]
    outputs = [o.name for o in sess.get_outputs()]
    got = {o: [] for o in outputs}
    # Batches of texts, as a host would run them: padding differs from tandem's own batches.
    for start in range(0, len(texts), args.batch):
        chunk = texts[start : start + args.batch]
        ids, mask = encode(tokenizer, chunk, max_length)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "metadata" in names:
            feed["metadata"] = np.asarray(cases["metadata"][start : start + args.batch], dtype=np.float32)
        for name, value in zip(outputs, sess.run(outputs, feed)):
            got[name].append(value)
    report = {"texts": len(texts), "outputs": {}}
    ok = True
    for name in outputs:
        have = np.concatenate(got[name])
        want = np.asarray(cases["expected"][name], dtype=np.float32)
        if have.shape != want.shape:
            print(f"{name}: shape {have.shape}, expected {want.shape}", file=sys.stderr)
            sys.exit(1)
        diff = float(np.max(np.abs(have - want))) if have.size else 0.0
        entry = {"max_abs_diff": diff}
        if name.endswith(".probabilities"):
            agree = float(np.mean(np.argmax(have, 1) == np.argmax(want, 1)))
            entry["argmax_agreement"] = agree
            if agree < args.min_agree:
                ok = False
        if diff > args.tol:
            ok = False
        report["outputs"][name] = entry
    report["ok"] = ok
    print(json.dumps(report))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
