#!/usr/bin/env python3
"""Fine-tuning the top layers on data no recipe was chosen on -> the "heldout-finetune" section
of docs/results.md and docs/heldout_finetune.json (after scripts/setup.sh, `cargo build
--release` and scripts/finetune.py, whose chosen recipe it reuses).

    python3 scripts/heldout_finetune.py [--datasets snippets3,tweets2] [--seed 0]

The two held-out tasks of scripts/heldout.py (derived from the VADER ground truth), with its
seeded 80/20 split and all of the 80% for training. Per task, scored by macro-F1 on the test
20%:
  - frozen heads: `tandem train` with no recipe flags (the recipe search), and the embedding-only
    sequence head of docs/results.md; the better of the two on test is "the best frozen head"
    (generous to the frozen side);
  - K = 2: `tandem train --trainable-layers 2` with the recipe docs/finetune.json chose on TREC's
    validation (nothing is tuned on these tasks);
  - full fine-tune: scripts/finetune_torch.py (PyTorch, every layer, 3 epochs).
It reports whether K = 2 beats the best frozen head on average, and how much of the gap between
the best frozen head and the full fine-tune it closes. About 25 minutes on 2 cores.
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fewshot import write_section  # noqa: E402
from heldout import FIELD, derive  # noqa: E402
from results import CACHE, ROOT, SEQ_CONFIG, run, split, write_jsonl  # noqa: E402

START, END = "<!-- heldout-finetune:start -->", "<!-- heldout-finetune:end -->"
PYTHON = os.path.join(CACHE, "venv", "bin", "python")


def train_eval(tandem, work, name, data, test, extra, config=None):
    """`tandem train` then `tandem eval`: (test macro-F1, train seconds)."""
    out = os.path.join(work, f"model-{name}")
    cmd = [tandem, "train", "--data", data, "--label-field", FIELD, "--task", "multiclass", "--out", out,
           "--seed", "0", "--quiet", *extra]
    if config:
        path = os.path.join(work, f"{name}.toml")
        with open(path, "w") as f:
            f.write(config)
        cmd += ["--config", path]
    _, secs = run(cmd)
    stdout, _ = run([tandem, "eval", "--model", out, "--data", test, "--label-field", FIELD, "--json"])
    return json.loads(stdout)["macro_f1"], secs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="snippets3,tweets2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "target", "release", "tandem"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results.md"))
    args = ap.parse_args()
    with open(os.path.join(ROOT, "docs", "finetune.json")) as f:
        recipe = json.load(f)["recipe"]
    out = []
    sets = derive()
    for name in args.datasets.split(","):
        desc, rows = sets[name]
        tr, te = split(rows, FIELD, "multiclass", args.seed)
        work = os.path.join(ROOT, "target", "heldout_finetune", name)
        os.makedirs(work, exist_ok=True)
        data, test = os.path.join(work, "train.jsonl"), os.path.join(work, "test.jsonl")
        write_jsonl(data, [rows[i] for i in tr])
        write_jsonl(test, [rows[i] for i in te])
        e = {"name": name, "desc": desc, "n_train": len(tr), "n_test": len(te)}
        e["default"], e["default_seconds"] = train_eval(args.tandem, work, "default", data, test, [])
        e["sequence"], e["sequence_seconds"] = train_eval(
            args.tandem, work, "sequence", data, test, ["--head", "sequence"],
            'mode = "embedding_only"\n' + SEQ_CONFIG)
        e["k2"], e["k2_seconds"] = train_eval(args.tandem, work, "k2", data, test,
                                              ["--trainable-layers", "2"], recipe)
        stdout, secs = run([PYTHON, os.path.join(ROOT, "scripts", "finetune_torch.py"),
                            "--train", data, "--test", test])
        e["full"] = json.loads(stdout.strip().splitlines()[-1])["macro_f1"]
        e["full_seconds"] = secs
        e["best_frozen"] = max(e["default"], e["sequence"])
        e["best_frozen_is"] = "default recipe" if e["default"] >= e["sequence"] else "sequence head"
        gap = e["full"] - e["best_frozen"]
        e["gap_closed"] = (e["k2"] - e["best_frozen"]) / gap if gap > 0 else None
        out.append(e)
        print(e, file=sys.stderr, flush=True)
    with open(os.path.join(ROOT, "docs", "heldout_finetune.json"), "w") as f:
        json.dump({"recipe": recipe, "results": out}, f, indent=1)

    lines = [START, "### Fine-tuning on the held-out tasks", "",
             "`scripts/heldout_finetune.py`: the held-out tasks above with all of their 80%, K = 2 "
             "with the recipe chosen on TREC's validation (nothing tuned on these tasks), against "
             "the frozen heads (the recipe search, and the embedding-only sequence head; the better "
             "on test is the best frozen head) and a PyTorch full fine-tune "
             "(`scripts/finetune_torch.py`, 3 epochs). Test macro-F1; seconds are whole processes (load-sensitive: they depend on what else runs).", "",
             "| task | train texts | default recipe | sequence head | K = 2 | full fine-tune | K = 2 - best frozen | gap closed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in out:
        closed = "" if e["gap_closed"] is None else f"{100 * e['gap_closed']:.0f}%"
        lines.append(f"| {e['name']} | {e['n_train']} | {e['default']:.4f} ({e['default_seconds']:.0f} s) | "
                     f"{e['sequence']:.4f} ({e['sequence_seconds']:.0f} s) | {e['k2']:.4f} ({e['k2_seconds']:.0f} s) | "
                     f"{e['full']:.4f} ({e['full_seconds']:.0f} s) | {e['k2'] - e['best_frozen']:+.4f} | {closed} |")
    mean = statistics.mean(e["k2"] - e["best_frozen"] for e in out)
    lines += ["", f"- K = 2 against the best frozen head, mean over the tasks: {mean:+.4f} macro-F1 "
              f"({'beats' if mean > 0 else 'does not beat'} it on average).",
              "- `gap closed`: (K = 2 - best frozen) / (full fine-tune - best frozen).", END]
    write_section(args.out, "\n".join(lines), START, END, "held-out fine-tuning")


if __name__ == "__main__":
    main()
