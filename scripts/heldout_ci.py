#!/usr/bin/env python3
"""How sure is a held-out comparison? A paired bootstrap of the default against scikit-learn
on the held-out sets' test splits (run after scripts/heldout.py, which leaves its models and
embeddings under target/heldout/).

    python3 scripts/heldout_ci.py [--resamples 2000] [--seed 0] [--tandem target/release/tandem]

For each held-out set, with all its training data (heldout.py's `all` row): the default's
bundle predicts the test split through `tandem predict` (the serving path), scikit-learn's
LogisticRegressionCV is refitted on the same embeddings exactly as heldout.py fits it, and the
test rows are resampled with replacement (the same rows for both) to give a 95% interval of
the macro-F1 difference, default minus scikit-learn. Writes docs/heldout_ci.json and the block
between the held-out-interval markers in docs/results.md. Nothing is hard-coded.
"""

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fewshot import sklearn_classifier, write_section  # noqa: E402
from heldout import FIELD  # noqa: E402
from results import ROOT, run  # noqa: E402

BEGIN = "<!-- heldout-ci:begin (scripts/heldout_ci.py writes this block) -->"
END = "<!-- heldout-ci:end -->"


def macro_f1(truth, pred, labels):
    import numpy as np

    f1s = []
    for c in labels:
        tp = int(np.sum((pred == c) & (truth == c)))
        fp = int(np.sum((pred == c) & (truth != c)))
        fn = int(np.sum((pred != c) & (truth == c)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(f1s))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "target", "release", "tandem"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results.md"))
    args = ap.parse_args()
    import numpy as np

    saved = json.load(open(os.path.join(ROOT, "docs", "heldout.json"), encoding="utf-8"))
    results = []
    for entry in saved["results"]:
        name = entry["name"]
        work = os.path.join(ROOT, "target", "heldout", name)
        model = os.path.join(work, "model-all-0")
        if not os.path.isdir(model):
            sys.exit(f"{model} is missing: run scripts/heldout.py first")
        with open(os.path.join(work, "pool.jsonl"), encoding="utf-8") as f:
            pool = [json.loads(l) for l in f if l.strip()]
        test_path = os.path.join(work, "test.jsonl")
        with open(test_path, encoding="utf-8") as f:
            test = [json.loads(l) for l in f if l.strip()]
        # heldout.py's `all` row: the whole pool, shuffled with its seed.
        idx = list(range(len(pool)))
        random.Random(saved["seed"]).shuffle(idx)
        x_pool = np.load(os.path.join(work, "pool.npy"))
        x_test = np.load(os.path.join(work, "test.npy"))
        sk = sklearn_classifier(x_pool[idx], [str(pool[i][FIELD]) for i in idx], 0)
        sk_pred = np.array(sk.predict(x_test))
        stdout, _ = run([args.tandem, "predict", "--model", model, test_path])
        rows = [json.loads(l) for l in stdout.splitlines() if l.strip()]
        ours = np.array([r["predictions"][0]["labels"][0] for r in rows])
        truth = np.array([str(r[FIELD]) for r in test])
        labels = sorted(set(truth))
        a, b = macro_f1(truth, ours, labels), macro_f1(truth, sk_pred, labels)
        rng = np.random.default_rng(args.seed)
        n = len(truth)
        diffs = []
        for _ in range(args.resamples):
            s = rng.integers(0, n, n)
            diffs.append(macro_f1(truth[s], ours[s], labels) - macro_f1(truth[s], sk_pred[s], labels))
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        agree = float(np.mean(ours == sk_pred))
        results.append({"name": name, "desc": entry["desc"], "n_test": n, "default": a, "sklearn": b,
                        "difference": a - b, "ci95": [float(lo), float(hi)], "agreement": agree,
                        "recipe": entry["sizes"]["all"]["recipes"][0]})
        print(f"[{name}] default {a:.4f} sklearn {b:.4f} difference {a - b:+.4f} "
              f"95% [{lo:+.4f}, {hi:+.4f}], same prediction on {agree:.1%}", flush=True)
    with open(os.path.join(ROOT, "docs", "heldout_ci.json"), "w") as f:
        json.dump({"seed": args.seed, "resamples": args.resamples, "results": results}, f, indent=1)
    lines = [BEGIN, "",
             f"Paired bootstrap ({args.resamples} resamples of the test rows, `python3 scripts/heldout_ci.py`) "
             "of the default against scikit-learn with all the training data: macro-F1 difference "
             "(default − scikit-learn) and its 95% interval.", "",
             "| held-out set | test texts | default (recipe) | scikit-learn | difference | 95% interval | same prediction |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['desc']} | {r['n_test']} | {r['default']:.3f} ({r['recipe']}) | {r['sklearn']:.3f} | "
                     f"{r['difference']:+.3f} | [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] | {r['agreement']:.1%} |")
    lines += ["", END]
    write_section(args.out, "\n".join(lines), BEGIN, END, "held-out interval")


if __name__ == "__main__":
    main()
