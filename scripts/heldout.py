#!/usr/bin/env python3
"""The default recipe on labelled data it was never tuned on -> the held-out section of
docs/results.md and docs/heldout.json (rerunnable after scripts/setup.sh and
`cargo build --release`).

    python3 scripts/heldout.py [--draws 5] [--seed 0] [--tandem target/release/tandem]

Two classification tasks that no tandem default was chosen on, derived from the VADER ground
truth (human sentiment ratings in [-4, 4]) in the cache:
  - snippets3: movie, Amazon and NYT snippets, three classes: negative (rating <= -0.5),
    neutral (between), positive (>= 0.5);
  - tweets2: tweets, binary: positive (rating > 0) or negative (< 0); ratings of exactly 0 are
    dropped.
Each gets the seeded stratified 80/20 split of scripts/results.py. Then, at 16 examples per
class (`--draws` seeded draws from the 80%) and with all of the 80%: `tandem train` with no mode
or head flags, scored by `tandem eval` on the 20% test split, against scikit-learn's
LogisticRegressionCV on the same backbone embeddings (as scripts/fewshot.py). The recipe each
run chose is recorded.
"""

import argparse
import json
import os
import random
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fewshot import draw, recipe_of, sklearn_score, stratum_keys, write_section  # noqa: E402
from results import CACHE, ROOT, run, split, write_jsonl  # noqa: E402

BEGIN = "<!-- heldout:begin (scripts/heldout.py writes this block) -->"
END = "<!-- heldout:end -->"
FIELD = "label"


def derive():
    """The two derived datasets, as {name: (description, rows)}."""
    with open(os.path.join(CACHE, "data", "vader.jsonl"), encoding="utf-8") as f:
        vader = [json.loads(l) for l in f if l.strip()]
    snippets, tweets = [], []
    for r in vader:
        x = float(r["rating"])
        if r["source"] == "tweets":
            if x != 0.0:
                tweets.append({"text": r["text"], FIELD: "positive" if x > 0 else "negative"})
        else:
            label = "negative" if x <= -0.5 else "positive" if x >= 0.5 else "neutral"
            snippets.append({"text": r["text"], FIELD: label})
    return {
        "snippets3": ("Review and editorial snippets, 3-way sentiment (derived from VADER)", snippets),
        "tweets2": ("Tweets, binary sentiment (derived from VADER)", tweets),
    }


def tandem_default(tandem, data, test_path, out, seed):
    """`tandem train` with no recipe flags, then `tandem eval`: (macro-F1, recipe, seconds)."""
    _, secs = run([tandem, "train", "--data", data, "--label-field", FIELD, "--task", "multiclass",
                   "--out", out, "--seed", str(seed), "--quiet"])
    stdout, _ = run([tandem, "eval", "--model", out, "--data", test_path, "--label-field", FIELD, "--json"])
    return json.loads(stdout)["macro_f1"], recipe_of(out), secs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "target", "release", "tandem"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results.md"))
    args = ap.parse_args()
    import numpy as np

    results = []
    for name, (desc, rows) in derive().items():
        tr, te = split(rows, FIELD, "multiclass", args.seed)
        train_rows, test_rows = [rows[i] for i in tr], [rows[i] for i in te]
        work = os.path.join(ROOT, "target", "heldout", name)
        os.makedirs(work, exist_ok=True)
        pool, test_path = os.path.join(work, "pool.jsonl"), os.path.join(work, "test.jsonl")
        write_jsonl(pool, train_rows)
        write_jsonl(test_path, test_rows)
        run([args.tandem, "embed", pool, "-o", os.path.join(work, "pool.npy")])
        run([args.tandem, "embed", test_path, "-o", os.path.join(work, "test.npy")])
        x_pool, x_test = np.load(os.path.join(work, "pool.npy")), np.load(os.path.join(work, "test.npy"))
        keys = stratum_keys(train_rows, FIELD, "multiclass")
        entry = {"name": name, "desc": desc, "n_pool": len(train_rows), "n_test": len(test_rows), "sizes": {}}
        print(f"[{name}] {len(train_rows)} train / {len(test_rows)} test", flush=True)
        plan = [("16", d) for d in range(args.draws)] + [("all", 0)]
        for size, d in plan:
            if size == "all":
                # Shuffled: the files are grouped (by class or source), and scikit-learn's
                # k-fold splits in file order, so unshuffled folds would be domain shifts.
                idx = list(range(len(train_rows)))
                random.Random(args.seed).shuffle(idx)
            else:
                idx = draw(train_rows, keys, int(size), args.seed * 1000 + int(size) * 10 + d)
            picked = [train_rows[i] for i in idx]
            data = os.path.join(work, f"train-{size}-{d}.jsonl")
            write_jsonl(data, picked)
            sk = sklearn_score(x_pool[idx], picked, x_test, test_rows, FIELD, "multiclass", d)
            f1, recipe, secs = tandem_default(args.tandem, data, test_path, os.path.join(work, f"model-{size}-{d}"), d)
            row = entry["sizes"].setdefault(size, {"n_train": len(idx), "default": [], "sklearn": [],
                                                   "recipes": [], "train_seconds": []})
            row["default"].append(f1)
            row["sklearn"].append(sk)
            row["recipes"].append(recipe)
            row["train_seconds"].append(secs)
            print(f"  {size} draw {d}: default {f1:.4f} ({recipe}, {secs:.1f}s), sklearn {sk:.4f}", flush=True)
        results.append(entry)
    with open(os.path.join(ROOT, "docs", "heldout.json"), "w") as f:
        json.dump({"seed": args.seed, "draws": args.draws, "results": results}, f, indent=1)
    write_section(args.out, render(results, args), BEGIN, END, "held-out")


def render(results, args):
    def cell(v):
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        return f"{statistics.mean(v):.3f} ± {sd:.3f}" if len(v) > 1 else f"{v[0]:.3f}"

    lines = [BEGIN, "", "## The default recipe on data it was never tuned on", "",
             f"`python3 scripts/heldout.py` (seed {args.seed}). Two tasks derived from the VADER ground "
             "truth, which no default was chosen on: review and editorial snippets in three sentiment classes "
             "(rating <= -0.5, between, >= 0.5) and tweets as positive or negative. The seeded 80/20 split; "
             f"16 examples per class ({args.draws} draws) and all of the 80%; `tandem train` with no mode or "
             "head flags against scikit-learn's `LogisticRegressionCV` on the same embeddings; macro-F1 on "
             "the 20% test split, which no run sees. `chose` counts the recipes the runs picked.", "",
             "| dataset | examples | tandem default | scikit-learn | difference | chose | train s |",
             "|---|---:|---:|---:|---:|---|---:|"]
    for e in results:
        for size, row in e["sizes"].items():
            diff = statistics.mean(row["default"]) - statistics.mean(row["sklearn"])
            chose = ", ".join(f"{r} ×{row['recipes'].count(r)}" for r in sorted(set(row["recipes"])))
            lines.append(f"| {e['name']} | {row['n_train']} ({size}{'/class' if size != 'all' else ''}) | "
                         f"{cell(row['default'])} | {cell(row['sklearn'])} | {diff:+.3f} | {chose} | "
                         f"{statistics.mean(row['train_seconds']):.1f} |")
    lines += ["", END]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
