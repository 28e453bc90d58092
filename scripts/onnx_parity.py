#!/usr/bin/env python3
"""ONNX parity on every demo dataset's test split -> docs/onnx_parity.json and docs/results.md.

    ~/.cache/tandem/venv/bin/python scripts/onnx_parity.py [--datasets sms,trec,...]
        [--tandem target/release/tandem]

For each dataset, the seeded stratified 80/20 split of scripts/results.py, then:
  1. a joint model (metadata encoder + pooled head: every heads node type) trained on the 80%;
     on TREC also a sequence head (attention pooling, convolutions, transformer layer);
  2. `tandem predict` on the 20% with the native heads and with `--heads onnx`: the largest
     difference of any probability or value (the bar: 1e-5);
  3. `tandem export` (fp32) run by scripts/check_export.py in stock onnxruntime, with each test
     text's raw features from `tandem features --json`: the largest difference from `tandem
     predict` (the bar: 1e-4);
  4. `tandem export --variant int8` against the same bundle served on the int8 graph
     (`tandem predict --variant int8`): exactly (one text per run on both sides, since dynamic
     quantization scales each run's activations as a whole, and the graph optimizer tandem turns
     off turned off: the largest difference), and as a host would simply run it (32 texts per
     run, every optimizer, against tandem's own batching: the share of test texts whose top
     label agrees; the bar: 99.5%).
Nothing is hard-coded: every number comes from this run.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import CACHE, DATASETS, ROOT, run, split, write_jsonl  # noqa: E402

PY = sys.executable
BEGIN = "<!-- onnx:begin (scripts/onnx_parity.py writes this block) -->"
END = "<!-- onnx:end -->"


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def outputs(pred_lines, task_name, kind):
    """Rows of probabilities (or [value]) per text, from `tandem predict` JSONL."""
    rows = []
    for line in pred_lines:
        p = next(t for t in json.loads(line)["predictions"] if t["task"] == task_name)
        rows.append([p["value"]] if kind == "regression" else p["probabilities"])
    return rows


def max_diff(a, b):
    return max((abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)), default=0.0)


def features(tandem, texts):
    out = []
    for t in texts:
        # `-` drops one trailing newline: the one added here, so the text is read exactly.
        p = subprocess.run([tandem, "features", "--json", "-"], input=t + "\n", capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(p.stderr)
        out.append([f["value"] for f in json.loads(p.stdout)["features"]])
    return out


def check(model_onnx, cases, tol, min_agree, batch, extra):
    p = subprocess.run(
        [PY, os.path.join(ROOT, "scripts", "check_export.py"), model_onnx, cases,
         "--tol", str(tol), "--min-agree", str(min_agree), "--batch", str(batch), *extra],
        capture_output=True, text=True,
    )
    if not p.stdout.strip():
        sys.exit(p.stderr)
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--tandem", default=os.path.join(ROOT, "target", "release", "tandem"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "onnx_parity.json"))
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite the docs/results.md block from --out without running anything")
    args = ap.parse_args()
    if args.render_only:
        with open(args.out) as f:
            render(json.load(f)["results"])
        return
    tandem = args.tandem
    results = []
    for name in args.datasets.split(","):
        file, field, task, _ = DATASETS[name]
        rows = read_jsonl(os.path.join(CACHE, "data", file))
        tr, te = split(rows, field, task, 0)
        work = os.path.join(ROOT, "target", "onnx_parity", name)
        os.makedirs(work, exist_ok=True)
        write_jsonl(os.path.join(work, "train.jsonl"), [rows[i] for i in tr])
        test_rows = [rows[i] for i in te]
        write_jsonl(os.path.join(work, "test.jsonl"), test_rows)
        texts = [r["text"] for r in test_rows]
        t0 = time.time()
        feats = features(tandem, texts)
        recipes = [("joint", ["--mode", "joint"])]
        if name == "trec":
            cfg = os.path.join(work, "seq.toml")
            with open(cfg, "w") as f:
                f.write("[head.sequence]\ntransformer = true\n\n[head.stage]\nepochs = 6\n")
            recipes.append(("sequence", ["--mode", "joint", "--head", "sequence", "--config", cfg]))
        for recipe, flags in recipes:
            model = os.path.join(work, f"model-{recipe}")
            run([tandem, "train", "--data", os.path.join(work, "train.jsonl"), "--label-field", field,
                 "--task", task, "--out", model, "--seed", "0", *flags])
            test = os.path.join(work, "test.jsonl")
            native, _ = run([tandem, "predict", "--model", model, test])
            onnx, _ = run([tandem, "predict", "--model", model, "--heads", "onnx", test])
            # One text per run on both sides: the int8 graph quantizes each run's activations
            # with one scale, so a text's outputs depend on which texts share its run.
            int8, _ = run([tandem, "predict", "--model", model, "--variant", "int8", "--batch-size", "1", test])
            int8_batched, _ = run([tandem, "predict", "--model", model, "--variant", "int8", test])
            kind = task
            a = outputs(native.splitlines(), field, kind)
            b = outputs(onnx.splitlines(), field, kind)
            c = outputs(int8.splitlines(), field, kind)
            c32 = outputs(int8_batched.splitlines(), field, kind)
            out_name = f"{field}.value" if kind == "regression" else f"{field}.probabilities"
            entry = {"dataset": name, "recipe": recipe, "task": task, "test_texts": len(texts),
                     "heads_onnx_vs_native_max_abs_diff": max_diff(a, b)}
            # (name, graph, tandem's outputs, tolerance, label agreement, texts per run, flags):
            # fp32 as tandem runs it; int8 exactly (one text per run on both sides, the graph
            # optimizers tandem turns off turned off); int8 as a host would simply run it (32
            # texts per run in input order, every optimizer) against tandem's own batching.
            for key, variant, expected, tol, agree, batch, extra in (
                ("fp32", "fp32", a, 1e-4, 1.0, 32, []),
                ("int8", "int8", c, 1e-4, 0.995, 1, []),
                ("int8_host", "int8", c32, 10.0, 0.995, 32, ["--all-optimizers"]),
            ):
                graph = os.path.join(work, f"export-{recipe}-{variant}", "model.onnx")
                if not os.path.exists(graph) or key != "int8_host":
                    os.makedirs(os.path.dirname(graph), exist_ok=True)
                    run([tandem, "export", model, "--out", graph, "--variant", variant])
                cases = os.path.join(work, f"cases-{recipe}-{key}.json")
                with open(cases, "w") as f:
                    json.dump({"texts": texts, "metadata": feats, "expected": {out_name: expected}}, f)
                r = check(graph, cases, tol, agree, batch, extra)["outputs"][out_name]
                entry[f"export_{key}_max_abs_diff"] = r["max_abs_diff"]
                if "argmax_agreement" in r:
                    entry[f"export_{key}_label_agreement"] = r["argmax_agreement"]
                entry[f"export_{variant}_bytes"] = os.path.getsize(graph)
            entry["seconds"] = round(time.time() - t0, 1)
            print(json.dumps(entry), flush=True)
            results.append(entry)
    with open(args.out, "w") as f:
        json.dump({"results": results}, f, indent=1)
    render(results)


def render(results):
    """Prints the table and writes it into docs/results.md between the markers."""
    table = [
        "| dataset | recipe | test texts | heads: ONNX Runtime vs native | fp32 export vs `tandem predict` | int8 export vs int8 `predict`, per text | int8 as a host runs it: same top label |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for e in results:
        agree = e.get("export_int8_host_label_agreement")
        host = f"{100 * agree:.2f}%" if agree is not None else f"n/a (values within {e['export_int8_host_max_abs_diff']:.2f})"
        table.append(
            f"| {e['dataset']} | {e['recipe']} | {e['test_texts']} | {e['heads_onnx_vs_native_max_abs_diff']:.1e} "
            f"| {e['export_fp32_max_abs_diff']:.1e} | {e['export_int8_max_abs_diff']:.1e} | {host} |"
        )
    print("\n".join(table))
    block = "\n".join([
        BEGIN,
        "",
        "## ONNX parity on the demo datasets",
        "",
        "`scripts/onnx_parity.py`, on each demo dataset's test split (the 20% of the split above):",
        "a joint model (metadata encoder and pooled head) trained on the 80%, and on TREC a sequence",
        "head with the transformer layer; the largest difference of any probability or value between",
        "the heads run natively and through ONNX Runtime (`--heads onnx`); between `tandem predict`",
        "and the fp32 export run by stock onnxruntime from Python (`scripts/check_export.py`); and",
        "between the int8 bundle's predictions and the int8 export, one text per run on both sides",
        "with the graph optimizer tandem turns off turned off (the graph names it). The last column",
        "runs the int8 export as a host simply would (32 texts per run in input order, every",
        "optimizer) against `tandem predict`'s own batching: dynamic quantization scales each run's",
        "activations as a whole, so borderline texts can change label ([onnx.md](onnx.md)).",
        "",
        *table,
        "",
        END,
    ])
    path = os.path.join(ROOT, "docs", "results.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
