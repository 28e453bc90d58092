#!/usr/bin/env python3
"""onnxruntime-python baseline for benches/embed.rs: the same graph, texts, batches and threads.

    python benches/ort_python.py --model-dir DIR --texts texts.json --points points.json

A worker: it opens one session per graph, then reads requests from stdin, one JSON object a line,
{"point": i, "seconds": s}, measures point i for s seconds and answers with one line,
{"sentences_per_s": x}. The bench interleaves these with its own measurements of the same point,
so that a burst of load on a shared machine hits both sides alike. End of input ends the worker.

Each point is {"variant", "graph", "length", "batch"}. Work per batch matches tandem's embed():
tokenize (tokenizers, truncation at max_length, padding to the batch's longest text), run the
session, L2-normalize the pooled output. Session settings match tandem's sessions
(--disable-optimizers takes tandem's list of ONNX Runtime optimizers it turns off on the CPU;
--device cuda:N runs the CUDA provider with TF32 off, as tandem does).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--points", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N")
    ap.add_argument(
        "--disable-optimizers",
        default="",
        help="semicolon-separated ONNX Runtime optimizers to turn off, as tandem's CPU sessions do",
    )
    args = ap.parse_args()
    with open(os.path.join(args.model_dir, "manifest.json")) as f:
        max_length = json.load(f)["max_length"]
    with open(args.texts) as f:
        texts = json.load(f)
    with open(args.points) as f:
        points = json.load(f)
    tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    pad_id = tok.token_to_id("[PAD]") or 0
    if args.device == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        device_id = int(args.device.split(":")[1])
        providers = [("CUDAExecutionProvider", {"device_id": device_id, "use_tf32": 0})]
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            sys.exit(f"this onnxruntime ({ort.__file__}) has no CUDAExecutionProvider")
    sessions = {}
    for p in points:
        if p["graph"] not in sessions:
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if args.disable_optimizers:
                so.add_session_config_entry("optimization.disable_specified_optimizers", args.disable_optimizers)
            sessions[p["graph"]] = ort.InferenceSession(
                os.path.join(args.model_dir, p["graph"]), so, providers=providers
            )
            got = sessions[p["graph"]].get_providers()
            if args.device != "cpu" and got[0] != "CUDAExecutionProvider":
                sys.exit(f"{p['graph']}: CUDA did not load ({got})")

    def measure(p, seconds):
        sess = sessions[p["graph"]]
        needs_tt = any(i.name == "token_type_ids" for i in sess.get_inputs())
        pool = texts[p["length"]]
        b = p["batch"]
        batches = [pool[i : i + b] for i in range(0, len(pool) - b + 1, b)]

        def run(batch):
            encs = tok.encode_batch(batch)
            width = max(len(e.ids) for e in encs)
            ids = np.full((len(encs), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(encs), width), dtype=np.int64)
            for r, e in enumerate(encs):
                ids[r, : len(e.ids)] = e.ids
                mask[r, : len(e.ids)] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if needs_tt:
                feed["token_type_ids"] = np.zeros_like(ids)
            e = sess.run(["sentence_embedding"], feed)[0]
            return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

        for batch in batches[:3]:
            run(batch)
        n, k, start = 0, 0, time.perf_counter()
        while True:
            run(batches[k % len(batches)])
            n += b
            k += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds and k >= 4:
                return n / elapsed

    print(json.dumps({"ready": len(points)}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        rate = measure(points[req["point"]], float(req["seconds"]))
        print(json.dumps({"sentences_per_s": rate}), flush=True)


if __name__ == "__main__":
    main()
