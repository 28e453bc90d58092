#!/usr/bin/env python3
"""Few-shot fine-tuning of the backbone's top layers -> docs/fewshot_finetune.json, a plot
(docs/fewshot_finetune.svg) and the "Few-shot: fine-tuning the top layers" section of
docs/results.md (rerunnable after scripts/setup.sh and `cargo build --release`).

    ~/.cache/tandem/venv/bin/python scripts/fewshot_finetune.py [--datasets sms,trec]
        [--sizes 8,16,32,64] [--draws 5] [--tandem target/release/tandem]

The draws of scripts/fewshot.py (same split, same per-class draws and seeds). Each draw trains
  - `linear`: `tandem train --head linear`, the best frozen head at these sizes in
    docs/fewshot.json (it ties or beats the recipe search there);
  - `K=2`: `tandem train --mode embedding_only --trainable-layers 2` with FINETUNE below;
  - `K=2 + contrastive`: the same after a contrastive warm-up of the layers (CONTRASTIVE);
  - scikit-learn logistic regression on the frozen embeddings (scripts/fewshot.py's);
then `tandem eval` on the 20% test set, which no run sees. Macro-F1, mean ± sd over the draws.
The plot is drawn with matplotlib when it is installed in the venv (`pip install matplotlib`).
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fewshot import draw, sklearn_score, stratum_keys, write_section  # noqa: E402
from results import CACHE, DATASETS, ROOT, run, split, write_jsonl  # noqa: E402

FINETUNE = 'mode = "embedding_only"\n\n[backbone]\ntrainable_layers = 2\nlr = 0.0002\n'
CONTRASTIVE = FINETUNE + "contrastive_epochs = 2\ncontrastive_pairs = 10\n"
RECIPES = {"linear": (None, ["--head", "linear"]), "K=2": (FINETUNE, []), "K=2 + contrastive": (CONTRASTIVE, [])}
BEGIN, END = "<!-- fewshot-finetune:start -->", "<!-- fewshot-finetune:end -->"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="sms,trec")
    ap.add_argument("--sizes", default="8,16,32,64")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "target", "release", "tandem"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results.md"))
    args = ap.parse_args()
    import numpy as np

    results = []
    for name in args.datasets.split(","):
        fname, field, task, desc = DATASETS[name]
        rows = [json.loads(l) for l in open(os.path.join(CACHE, "data", fname), encoding="utf-8") if l.strip()]
        tr, te = split(rows, field, task, 0)
        train_rows, test_rows = [rows[i] for i in tr], [rows[i] for i in te]
        work = os.path.join(ROOT, "target", "fewshot_finetune", name)
        os.makedirs(work, exist_ok=True)
        test_path = os.path.join(work, "test.jsonl")
        write_jsonl(test_path, test_rows)
        write_jsonl(os.path.join(work, "pool.jsonl"), train_rows)
        run([args.tandem, "embed", os.path.join(work, "pool.jsonl"), "-o", os.path.join(work, "pool.npy")])
        run([args.tandem, "embed", test_path, "-o", os.path.join(work, "test.npy")])
        x_pool, x_test = np.load(os.path.join(work, "pool.npy")), np.load(os.path.join(work, "test.npy"))
        keys = stratum_keys(train_rows, field, task)
        for r, (cfg, _) in RECIPES.items():
            if cfg:
                with open(os.path.join(work, f"{slug(r)}.toml"), "w") as f:
                    f.write(cfg)
        entry = {"name": name, "desc": desc, "sizes": {}}
        for size in [int(s) for s in args.sizes.split(",")]:
            scores = {r: [] for r in list(RECIPES) + ["sklearn"]}
            seconds = {r: [] for r in RECIPES}
            for d in range(args.draws):
                # scripts/fewshot.py's draw seeds (its --seed 0).
                idx = draw(train_rows, keys, size, size * 10 + d)
                picked = [train_rows[i] for i in idx]
                data = os.path.join(work, f"train-{size}-{d}.jsonl")
                write_jsonl(data, picked)
                scores["sklearn"].append(sklearn_score(x_pool[idx], picked, x_test, test_rows, field, task, d))
                for r, (cfg, extra) in RECIPES.items():
                    out = os.path.join(work, f"model-{slug(r)}-{size}-{d}")
                    conf = ["--config", os.path.join(work, f"{slug(r)}.toml")] if cfg else []
                    _, t = run([args.tandem, "train", "--data", data, "--label-field", field, "--task", task,
                                "--out", out, "--seed", str(d), "--quiet", *conf, *extra])
                    stdout, _ = run([args.tandem, "eval", "--model", out, "--data", test_path,
                                     "--label-field", field, "--json"])
                    scores[r].append(json.loads(stdout)["macro_f1"])
                    seconds[r].append(t)
            entry["sizes"][str(size)] = {"n_train": len(idx), "scores": scores, "train_seconds": seconds}
            print(f"[{name}] {size}/class: " + ", ".join(
                f"{r} {statistics.mean(v):.3f}" for r, v in scores.items()), flush=True)
        results.append(entry)
    with open(os.path.join(ROOT, "docs", "fewshot_finetune.json"), "w") as f:
        json.dump({"draws": args.draws, "finetune": FINETUNE, "contrastive": CONTRASTIVE, "results": results},
                  f, indent=1)
    plotted = plot(results)
    write_section(args.out, render(results, args.draws, plotted), BEGIN, END, "few-shot fine-tuning")


def slug(r):
    return r.replace(" ", "").replace("+", "-").replace("=", "")


def plot(results):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6))
    for ax, e in zip(axes if len(results) > 1 else [axes], results):
        sizes = sorted(int(s) for s in e["sizes"])
        for r in list(RECIPES) + ["sklearn"]:
            means = [statistics.mean(e["sizes"][str(s)]["scores"][r]) for s in sizes]
            sds = [statistics.stdev(e["sizes"][str(s)]["scores"][r]) for s in sizes]
            ax.errorbar(sizes, means, yerr=sds, marker="o", capsize=3, label=r)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel("labelled examples per class")
        ax.set_ylabel("test macro-F1")
        ax.set_title(e["desc"])
        ax.grid(alpha=0.3)
    axes_list = axes if len(results) > 1 else [axes]
    axes_list[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, "docs", "fewshot_finetune.svg"))
    return True


def render(results, draws, plotted):
    names = list(RECIPES) + ["sklearn"]
    lines = [BEGIN, "## Few-shot: fine-tuning the top layers", "",
             "`scripts/fewshot_finetune.py` (raw numbers in `docs/fewshot_finetune.json`): the draws "
             f"of the few-shot section ({draws} per size), test macro-F1 mean ± sd. `linear` is "
             "`--head linear` (the best frozen head at these sizes above); `K=2` fine-tunes the top "
             "two layers (layer lr 2e-4, embedding-only pooled head, default head stage); "
             "`K=2 + contrastive` first warms the layers up for 2 epochs on 10 same/different-class "
             "pairs per example; `sklearn` is logistic regression on the frozen embeddings.", ""]
    if plotted:
        lines += ["![few-shot curves](fewshot_finetune.svg)", ""]
    lines += ["| dataset | per class | " + " | ".join(names) + " |",
              "|---|---:|" + "---:|" * len(names)]
    for e in results:
        for s, row in e["sizes"].items():
            cells = [f"{statistics.mean(row['scores'][r]):.3f} ± {statistics.stdev(row['scores'][r]):.3f}"
                     for r in names]
            lines.append(f"| {e['name']} | {s} | " + " | ".join(cells) + " |")
    lines.append("")
    for e in results:
        wins = []
        for s, row in e["sizes"].items():
            c = statistics.mean(row["scores"]["K=2 + contrastive"])
            best = max(statistics.mean(row["scores"][r]) for r in ("linear", "sklearn"))
            wins.append(f"{s}: {c - best:+.3f}")
        lines.append(f"- {e['name']}: K=2 + contrastive against the better of `linear` and `sklearn`, "
                     f"per size: {', '.join(wins)}.")
    lines.append(END)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
