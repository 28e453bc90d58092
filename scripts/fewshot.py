#!/usr/bin/env python3
"""Few-shot curves on the demo datasets -> the few-shot section of docs/results.md (rerunnable by
anyone after scripts/setup.sh and `cargo build --release`).

    python3 scripts/fewshot.py [--datasets sms,trec,...] [--sizes 8,16,32,64,all] [--draws 5]
                               [--recipes default,linear,two_stage] [--seed 0] [--tandem target/release/tandem]

For each dataset: the seeded stratified 80/20 split of scripts/results.py (same seed, same
split). From the 80%, `size` examples per class (regression: per quintile of the target;
multi-label: per label set) are drawn, `--draws` times per size with different seeds; size `all`
is the whole 80%, once (seed 0). Each draw trains
  - tandem with no mode or head flags (`default`: the recipe chosen by validation within the
    default budget), with `--head linear` (`linear`) and with `--mode two_stage` (`two_stage`,
    the default before the recipe search), then `tandem eval` on the 20% test set, which no
    run ever sees;
  - scikit-learn on the same backbone embeddings (`tandem embed`, the same graph through the
    same cache): LogisticRegressionCV (Cs=10, stratified k-fold with k = min(5, the smallest
    class)), one per label for multi-label, RidgeCV (10 alphas) for regression.
It reports macro-F1 (RMSE for regression) on the test set, mean ± sd over the draws, and writes
docs/fewshot.json and the block between the few-shot markers in docs/results.md (the rest of
the file is left alone). Nothing is hard-coded: every number comes from this run.
"""

import argparse
import json
import os
import random
import statistics
import sys
import warnings
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import CACHE, DATASETS, ROOT, run, split, strata, write_jsonl  # noqa: E402

BEGIN = "<!-- fewshot:begin (scripts/fewshot.py writes this block) -->"
END = "<!-- fewshot:end -->"
RECIPES = {"default": [], "linear": ["--head", "linear"], "two_stage": ["--mode", "two_stage"]}


def stratum_keys(rows, field, task):
    """The stratum of each row: its class, label set, or target quintile."""
    if task != "regression":
        return [strata(r, field, task) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: float(rows[i][field]))
    keys = [None] * len(rows)
    for rank, i in enumerate(order):
        keys[i] = str(rank * 5 // len(rows))
    return keys


def draw(rows, keys, size, seed):
    """`size` rows per stratum (all of a smaller one), in a seeded order."""
    groups = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    rng = random.Random(seed)
    picked = []
    for k in sorted(groups):
        idx = list(groups[k])
        rng.shuffle(idx)
        picked += idx[:size]
    rng.shuffle(picked)
    return picked


def sklearn_classifier(x, y, seed):
    """LogisticRegressionCV (Cs=10, stratified k-fold, k = min(5, the smallest class)) fitted on
    `x`, `y`; plain LogisticRegression when a class has one example; None with one class."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    # scikit-learn 1.9 announces changes of LogisticRegressionCV's defaults; this uses today's.
    warnings.filterwarnings("ignore", category=FutureWarning)
    counts = [int((np.asarray(y) == c).sum()) for c in sorted(set(y))]
    k = min(5, min(counts))
    if len(counts) < 2:
        return None
    if k < 2:
        return LogisticRegression(max_iter=5000).fit(x, y)
    return LogisticRegressionCV(Cs=10, cv=k, max_iter=5000, random_state=seed).fit(x, y)


def sklearn_score(x_train, y_rows, x_test, test_rows, field, task, seed):
    import numpy as np
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import f1_score, mean_squared_error

    def classifier(x, y):
        return sklearn_classifier(x, y, seed)

    if task == "regression":
        y = np.array([float(r[field]) for r in y_rows])
        yt = np.array([float(r[field]) for r in test_rows])
        model = RidgeCV(alphas=np.logspace(-4, 4, 10)).fit(x_train, y)
        return float(np.sqrt(mean_squared_error(yt, model.predict(x_test))))
    if task == "multilabel":
        labels = sorted({l for r in y_rows + test_rows for l in r[field]})
        pred = np.zeros((len(test_rows), len(labels)), dtype=int)
        for j, l in enumerate(labels):
            y = [int(l in r[field]) for r in y_rows]
            m = classifier(x_train, y)
            pred[:, j] = m.predict(x_test) if m is not None else y[0]
        truth = np.array([[l in r[field] for l in labels] for r in test_rows], dtype=int)
        return float(f1_score(truth, pred, average="macro", zero_division=0))
    y = [str(r[field]) for r in y_rows]
    model = classifier(x_train, y)
    return float(f1_score([str(r[field]) for r in test_rows], model.predict(x_test), average="macro"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--sizes", default="8,16,32,64,all")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "target", "release", "tandem"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results.md"))
    ap.add_argument("--keep", action="store_true",
                    help="keep the rest of docs/fewshot.json (same seed and draws): the other recipes' "
                         "scores (their recipes are deterministic), and the datasets and sizes not rerun, "
                         "whose cells are marked")
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite the section from docs/fewshot.json (the last run) without running anything")
    args = ap.parse_args()
    if args.render_only:
        with open(os.path.join(ROOT, "docs", "fewshot.json")) as f:
            saved = json.load(f)
        args.seed, args.draws = saved["seed"], saved["draws"]
        recipes = [r for r in RECIPES if r in next(iter(saved["results"][0]["sizes"].values()))["scores"]]
        write_section(args.out, render(saved["results"], recipes, args))
        return
    if not os.path.exists(args.tandem):
        sys.exit(f"{args.tandem} not found: cargo build --release first")
    import numpy as np

    sizes = [s if s == "all" else int(s) for s in args.sizes.split(",")]
    recipes = args.recipes.split(",")
    saved = {}
    if args.keep:
        with open(os.path.join(ROOT, "docs", "fewshot.json")) as f:
            old = json.load(f)
        if (old["seed"], old["draws"]) != (args.seed, args.draws):
            sys.exit("--keep needs the seed and draws of docs/fewshot.json")
        saved = {e["name"]: e for e in old["results"]}
    results = []
    for name in args.datasets.split(","):
        fname, field, task, desc = DATASETS[name]
        with open(os.path.join(CACHE, "data", fname), encoding="utf-8") as f:
            rows = [json.loads(l) for l in f if l.strip()]
        tr, te = split(rows, field, task, args.seed)
        train_rows, test_rows = [rows[i] for i in tr], [rows[i] for i in te]
        work = os.path.join(ROOT, "target", "fewshot", name)
        os.makedirs(work, exist_ok=True)
        test_path = os.path.join(work, "test.jsonl")
        write_jsonl(test_path, test_rows)
        write_jsonl(os.path.join(work, "pool.jsonl"), train_rows)
        # Every training row's and test row's embedding once; draws index into them.
        run([args.tandem, "embed", os.path.join(work, "pool.jsonl"), "-o", os.path.join(work, "pool.npy")])
        run([args.tandem, "embed", test_path, "-o", os.path.join(work, "test.npy")])
        x_pool, x_test = np.load(os.path.join(work, "pool.npy")), np.load(os.path.join(work, "test.npy"))
        keys = stratum_keys(train_rows, field, task)
        metric = "rmse" if task == "regression" else "macro_f1"
        entry = {"name": name, "desc": desc, "task": task, "metric": metric, "n_test": len(test_rows),
                 "strata": len(set(keys)), "sizes": {}}
        print(f"[{name}] {len(set(keys))} strata, {len(test_rows)} test rows", flush=True)
        for size in sizes:
            scores = {r: [] for r in recipes + ["sklearn"]}
            seconds = {r: [] for r in recipes}
            chosen = []
            for d in range(1 if size == "all" else args.draws):
                if size == "all":
                    # Shuffled: the files are grouped (by class or source), and scikit-learn's
                    # k-fold splits in file order, so unshuffled folds would be domain shifts.
                    idx = list(range(len(train_rows)))
                    random.Random(args.seed).shuffle(idx)
                else:
                    idx = draw(train_rows, keys, size, args.seed * 1000 + size * 10 + d)
                picked = [train_rows[i] for i in idx]
                data = os.path.join(work, f"train-{size}-{d}.jsonl")
                write_jsonl(data, picked)
                scores["sklearn"].append(sklearn_score(x_pool[idx], picked, x_test, test_rows, field, task, d))
                for r in recipes:
                    out = os.path.join(work, f"model-{r}-{size}-{d}")
                    _, t = run([args.tandem, "train", "--data", data, "--label-field", field, "--task", task,
                                "--out", out, "--seed", str(d), "--quiet", *RECIPES[r]])
                    stdout, _ = run([args.tandem, "eval", "--model", out, "--data", test_path,
                                     "--label-field", field, "--json"])
                    scores[r].append(json.loads(stdout)[metric])
                    seconds[r].append(t)
                    if r == "default":
                        chosen.append(recipe_of(out))
            row = {"n_train": len(idx), "scores": scores, "train_seconds": seconds, "chosen": chosen}
            kept = saved.get(name, {}).get("sizes", {}).get(str(size))
            if kept is not None:
                for r in RECIPES:
                    if r not in recipes and r in kept["scores"]:
                        row["scores"][r] = kept["scores"][r]
                        row["train_seconds"][r] = kept["train_seconds"][r]
                if "chosen" in kept and "default" not in recipes:
                    row["chosen"] = kept["chosen"]
            entry["sizes"][str(size)] = row
            print(f"  {size}/class ({len(idx)} examples): " + ", ".join(
                f"{r} {statistics.mean(v):.3f} ± {statistics.stdev(v) if len(v) > 1 else 0:.3f}"
                for r, v in scores.items()), flush=True)
        results.append(entry)
    if saved:
        results = merge_kept(results, saved, recipes)
    shown = [r for r in RECIPES if r in recipes or (saved and r in next(iter(results[0]["sizes"].values()))["scores"])]
    with open(os.path.join(ROOT, "docs", "fewshot.json"), "w") as f:
        json.dump({"seed": args.seed, "draws": args.draws, "results": results}, f, indent=1)
    write_section(args.out, render(results, shown, args))


def merge_kept(results, saved, recipes):
    """The saved datasets and sizes that were not rerun, in their saved order, their rows
    marked with the recipes that were not rerun for them (`kept`)."""
    fresh = {e["name"]: e for e in results}
    merged = []
    for name, old in saved.items():
        new = fresh.pop(name, None)
        entry = dict(new or old)
        sizes = {}
        for size, row in old["sizes"].items():
            if new is not None and size in new["sizes"]:
                sizes[size] = new["sizes"][size]
            else:
                sizes[size] = dict(row, kept=sorted(set(row.get("kept", [])) | set(recipes)))
        if new is not None:
            sizes.update({k: v for k, v in new["sizes"].items() if k not in sizes})
        entry["sizes"] = sizes
        merged.append(entry)
    return merged + list(fresh.values())


def recipe_of(bundle):
    """The recipe a bundle was trained with, from its manifest."""
    with open(os.path.join(bundle, "manifest.json"), encoding="utf-8") as f:
        cfg = json.load(f)["training"]
    head = cfg["head"]["kind"]
    if cfg.get("backbone", {}).get("trainable_layers", 0) > 0:
        return "finetune"
    recipe = head if head in ("linear", "sequence") else cfg["mode"]
    if recipe == "two_stage" and cfg["unfreeze"]["at_epoch"] is not None:
        recipe = "two_stage_unfreeze"
    return recipe


def render(results, recipes, args):
    def cell(v):
        if len(v) == 1:
            return f"{v[0]:.3f}"
        return f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}"

    lines = [BEGIN, "", "## Few examples per class", "",
             f"`python3 scripts/fewshot.py` (seed {args.seed}, {args.draws} draws per size). From the seeded 80% "
             "training split of each dataset, n examples per class are drawn (regression: per quintile of "
             "the target; multi-label: per label set); each draw trains tandem and scikit-learn on the same "
             "backbone embeddings, and everything is scored on the 20% test split, which no run sees. "
             "Mean ± sd over the draws; `all` is the whole 80% (one run). `default` is `tandem train` with no "
             "mode or head flags (the recipe chosen by validation within the default 60 s budget, fine-tuning the "
             "backbone's top 2 layers among the candidates; `chose` counts what it chose); `linear` is `--head linear`; `two_stage` is `--mode two_stage`, the default before "
             "the recipe search; scikit-learn is `LogisticRegressionCV` (Cs=10, k-fold), one per label for "
             "multi-label, `RidgeCV` for regression. Higher is better except RMSE.", ""]
    for e in results:
        lines += [f"### {e['desc']} ({e['metric']}, {e['n_test']} test texts)", "",
                  "| per class | examples | " + " | ".join(recipes) + " | scikit-learn | chose |",
                  "|---:|---:|" + "---:|" * (len(recipes) + 1) + "---|"]
        for size, row in e["sizes"].items():
            kept = row.get("kept", [])
            cells = [cell(row["scores"][r]) + (" †" if r in kept else "") for r in recipes] + [
                cell(row["scores"]["sklearn"])]
            ch = row.get("chosen", [])
            chose = ", ".join(f"{r} ×{ch.count(r)}" for r in sorted(set(ch))) or "-"
            lines.append(f"| {size} | {row['n_train']} | " + " | ".join(cells) + f" | {chose} |")
        lines.append("")
    if any(row.get("kept") for e in results for row in e["sizes"].values()):
        lines += ["† Kept from an earlier run of this script (`--keep`), not rerun with the current build: "
                  "its search had no fine-tuning candidate (on a hold-out that comes last and does not fit "
                  "the default budget at these sizes) and tried every frozen recipe on small data, and its "
                  "linear recipe chose a regression's C by 5-fold cross-validation instead of leave-one-out.",
                  ""]
    lines += summary(results, recipes)
    lines.append(END)
    return "\n".join(lines) + "\n"


def summary(results, recipes):
    """Each recipe against scikit-learn: the mean difference over every dataset and size, and the
    worst one, in the direction of "better" (RMSE negated)."""
    out = []
    for r in recipes:
        gaps = []
        for e in results:
            sign = -1.0 if e["metric"] == "rmse" else 1.0
            for size, row in e["sizes"].items():
                d = sign * (statistics.mean(row["scores"][r]) - statistics.mean(row["scores"]["sklearn"]))
                gaps.append((d, e["name"], size))
        if not gaps:
            continue
        worst = min(gaps)
        better = sum(1 for g in gaps if g[0] >= 0)
        out.append(f"- `{r}` against scikit-learn: mean difference {statistics.mean(g[0] for g in gaps):+.3f} "
                   f"over {len(gaps)} dataset-size pairs (positive: tandem better; RMSE differences negated), at or above it in {better}; "
                   f"worst {worst[0]:+.3f} ({worst[1]}, {worst[2]} per class).")
    return out + [""]


def write_section(path, block, begin=BEGIN, end=END, what="few-shot"):
    """Replaces the block between the `begin` and `end` markers of `path` (or appends it)."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + block + ("\n\n" + tail if tail else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote the {what} section of {path}")


if __name__ == "__main__":
    main()
