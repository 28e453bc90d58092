#!/usr/bin/env python3
"""Results on the demo datasets -> docs/results.md (rerunnable by anyone after scripts/setup.sh).

    python3 scripts/results.py [--datasets sms,trec,...] [--seed 0] [--tandem target/release/tandem]

For each dataset: a seeded stratified 80/20 split (written to target/results/<name>/), then
  - tandem in three modes (two_stage, embedding_only, joint), trained on the 80% (tandem holds out
    its own validation share of it) and evaluated on the 20%, with wall time;
  - scikit-learn LogisticRegression (Ridge for regression) on the same backbone embeddings
    (`tandem embed`, same graph, via the same embedding cache) and the same split.
The table reports macro-F1 (classification) or RMSE (regression) and each run's time. Then
  - sequence heads (`--head sequence`) in two_stage and embedding_only mode against the pooled
    heads of the same mode, on every dataset;
  - on TREC, a full fine-tune of the backbone in PyTorch (scripts/finetune_torch.py: 3 epochs,
    lr 5e-5, batch 32, max length 128) on the same split, against a sequence head trained end to
    end with `--no-cache` (token embedding included) in the same run.
Nothing is hard-coded: every number comes from this run. `--no-finetune` skips the fine-tune
(several minutes).
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("TANDEM_HOME") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tandem"
)

DATASETS = {
    # name: (file, label field, task, description)
    "sms": ("sms_spam.jsonl", "label", "binary", "SMS spam (binary, 13% spam)"),
    "trec": ("trec.jsonl", "label", "multiclass", "TREC questions, 6 coarse classes"),
    "bbc": ("bbc.jsonl", "label", "multiclass", "BBC news, 5 classes"),
    "vader": ("vader.jsonl", "rating", "regression", "VADER sentiment ratings in [-4, 4]"),
    "reuters": ("reuters.jsonl", "labels", "multilabel", "Reuters corn/grain (multi-label)"),
}
MODES = ["two_stage", "embedding_only", "joint"]
# Sequence heads (per-token vectors through attention pooling + convolutions) in these modes,
# each against the pooled head of the same mode.
SEQ_MODES = ["two_stage", "embedding_only"]
# The config of the pooled-vs-sequence comparison, for both head types (and the end-to-end
# run): label smoothing 0.1 and 12 epochs. Chosen on TREC *validation* macro-F1 over seeds 0-2
# (0.896 mean against 0.875 with the defaults; attention queries 4, more dropout or a lower LR
# did not help); 12 epochs keeps that and bounds the time.
SEQ_CONFIG = "[loss]\nlabel_smoothing = 0.1\n\n[head.stage]\nepochs = 12\n"
# A sequence head worse than the pooled head of its mode by more than this (in the metric's
# units: 0.005 = half a point of macro-F1) is called out in the docs.
SEQ_TOLERANCE = 0.005


def strata(row, field, task):
    v = row[field]
    if task == "multilabel":
        return ",".join(sorted(v))
    if task == "regression":
        return None
    return str(v)


def split(rows, field, task, seed):
    """Stratified 80/20 (regression: by quintile of the target)."""
    keys = [strata(r, field, task) for r in rows]
    if task == "regression":
        order = sorted(range(len(rows)), key=lambda i: float(rows[i][field]))
        keys = [None] * len(rows)
        for rank, i in enumerate(order):
            keys[i] = str(rank * 5 // len(rows))
    groups = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    rng = random.Random(seed)
    train, test = [], []
    for k in sorted(groups):
        idx = groups[k]
        rng.shuffle(idx)
        n = round(len(idx) * 0.2)
        if len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)
        test += idx[:n]
        train += idx[n:]
    return sorted(train), sorted(test)


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def run(cmd):
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{p.stderr}")
    return p.stdout, time.time() - t


def sklearn_baseline(tandem, work, field, task, train_rows, test_rows, seed):
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import f1_score, mean_squared_error
    from sklearn.multiclass import OneVsRestClassifier

    t0 = time.time()
    paths = {}
    for part in ("train", "test"):
        paths[part] = os.path.join(work, f"{part}.npy")
        run([tandem, "embed", os.path.join(work, f"{part}.jsonl"), "-o", paths[part]])
    xtr, xte = np.load(paths["train"]), np.load(paths["test"])
    t_embed = time.time() - t0
    t0 = time.time()
    if task == "regression":
        ytr = np.array([float(r[field]) for r in train_rows])
        yte = np.array([float(r[field]) for r in test_rows])
        model = Ridge(alpha=1.0).fit(xtr, ytr)
        score = float(np.sqrt(mean_squared_error(yte, model.predict(xte))))
    elif task == "multilabel":
        labels = sorted({l for r in train_rows + test_rows for l in r[field]})
        ytr = np.array([[l in r[field] for l in labels] for r in train_rows], dtype=int)
        yte = np.array([[l in r[field] for l in labels] for r in test_rows], dtype=int)
        model = OneVsRestClassifier(LogisticRegression(max_iter=2000, random_state=seed)).fit(xtr, ytr)
        score = float(f1_score(yte, model.predict(xte), average="macro", zero_division=0))
    else:
        ytr = [str(r[field]) for r in train_rows]
        yte = [str(r[field]) for r in test_rows]
        model = LogisticRegression(max_iter=2000, random_state=seed).fit(xtr, ytr)
        score = float(f1_score(yte, model.predict(xte), average="macro"))
    return score, time.time() - t0, t_embed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "target", "release", "tandem"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results.md"))
    ap.add_argument("--no-finetune", action="store_true", help="skip the PyTorch full fine-tune on TREC")
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite the markdown from the JSON of the last run (docs/results.json) without running anything (pass that run's --seed)")
    args = ap.parse_args()
    if args.render_only:
        with open(args.out.replace(".md", ".json")) as f:
            render(json.load(f), args)
        return
    if not os.path.exists(args.tandem):
        sys.exit(f"{args.tandem} not found: cargo build --release first")

    results = []
    for name in args.datasets.split(","):
        fname, field, task, desc = DATASETS[name]
        with open(os.path.join(CACHE, "data", fname), encoding="utf-8") as f:
            rows = [json.loads(l) for l in f if l.strip()]
        tr, te = split(rows, field, task, args.seed)
        work = os.path.join(ROOT, "target", "results", name)
        os.makedirs(work, exist_ok=True)
        train_rows, test_rows = [rows[i] for i in tr], [rows[i] for i in te]
        write_jsonl(os.path.join(work, "train.jsonl"), train_rows)
        write_jsonl(os.path.join(work, "test.jsonl"), test_rows)
        metric = "rmse" if task == "regression" else "macro_f1"
        print(f"[{name}] {len(train_rows)} train / {len(test_rows)} test", flush=True)
        sk, sk_fit, embed_time = sklearn_baseline(args.tandem, work, field, task, train_rows, test_rows, args.seed)
        entry = {"name": name, "desc": desc, "task": task, "metric": metric, "n_train": len(train_rows),
                 "n_test": len(test_rows), "sklearn": sk, "sklearn_fit_s": sk_fit, "embed_s": embed_time, "modes": {}}
        print(f"  sklearn {metric} {sk:.4f} (fit {sk_fit:.1f}s; embedding {embed_time:.1f}s)", flush=True)
        def train_eval(mode, head, extra=(), seq_config=False):
            tag = mode + ("-seqcmp" if seq_config else "") + ("-seq" if head == "sequence" else "")
            cfg = os.path.join(work, f"{tag}.toml")
            with open(cfg, "w") as f:
                f.write(f'mode = "{mode}"\n' + (SEQ_CONFIG if seq_config else ""))
            out = os.path.join(work, f"model-{tag}")
            _, train_s = run([args.tandem, "train", "--data", os.path.join(work, "train.jsonl"), "--text-field", "text",
                              "--label-field", field, "--task", task, "--out", out, "--config", cfg,
                              "--seed", str(args.seed), "--head", head, "--quiet", *extra])
            stdout, _ = run([args.tandem, "eval", "--model", out, "--data", os.path.join(work, "test.jsonl"),
                             "--text-field", "text", "--label-field", field, "--json"])
            m = json.loads(stdout)
            with open(os.path.join(out, "manifest.json")) as f:
                manifest = json.load(f)
            return {"score": m[metric], "train_s": train_s,
                    "fit_s": manifest["metrics"].get("train_seconds"),
                    "epochs": manifest["metrics"].get("epochs")}

        for mode in MODES:
            entry["modes"][mode] = train_eval(mode, "pooled")
            print(f"  {mode:15s} {metric} {entry['modes'][mode]['score']:.4f} (train {entry['modes'][mode]['train_s']:.1f}s)", flush=True)
        entry["sequence"], entry["pooled"] = {}, {}
        for mode in SEQ_MODES:
            entry["pooled"][mode] = train_eval(mode, "pooled", seq_config=True)
            r = train_eval(mode, "sequence", seq_config=True)
            entry["sequence"][mode] = r
            print(f"  {mode:15s} pooled {metric} {entry['pooled'][mode]['score']:.4f}, sequence head {r['score']:.4f} "
                  f"(fit {r['fit_s']:.1f}s, wall {r['train_s']:.1f}s)", flush=True)
        if name == "trec" and not args.no_finetune:
            # End to end: token embedding of the training texts included (no cache).
            e2e = train_eval("embedding_only", "sequence", ["--no-cache"], seq_config=True)
            print(f"  sequence head end to end (no cache): {metric} {e2e['score']:.4f} in {e2e['train_s']:.1f}s", flush=True)
            stdout, _ = run([os.path.join(CACHE, "venv", "bin", "python"), os.path.join(ROOT, "scripts", "finetune_torch.py"),
                             "--train", os.path.join(work, "train.jsonl"), "--test", os.path.join(work, "test.jsonl"),
                             "--label-field", field, "--seed", str(args.seed)])
            ft = json.loads(stdout)
            print(f"  full fine-tune (PyTorch): macro_f1 {ft['macro_f1']:.4f} in {ft['train_seconds']:.1f}s training", flush=True)
            entry["finetune"] = {"sequence_end_to_end": e2e, "torch": ft}
        results.append(entry)

    with open(args.out.replace(".md", ".json"), "w") as f:
        json.dump(results, f, indent=1)
    render(results, args)


def render(results, args):
    """Writes the markdown report for `results` (the run's JSON) to args.out."""
    lines = ["# Results on the demo datasets", "",
             f"Generated by `python3 scripts/results.py` (seed {args.seed}, stratified 80/20 split, "
             "backbone all-MiniLM-L6-v2 fp32, 2-core machine). Classification: macro-F1 on the 20% test "
             "split (higher is better). Regression: RMSE (lower is better). Times are wall-clock seconds "
             "of `tandem train` including feature extraction, with embeddings already in the cache; "
             "the scikit-learn baseline is fit on the same embeddings and split.", "",
             "| dataset | metric | scikit-learn | " + " | ".join(MODES) + " | best tandem vs sklearn |",
             "|---|---|---:|" + "---:|" * len(MODES) + "---|"]
    for e in results:
        lower = e["metric"] == "rmse"
        scores = {m: e["modes"][m]["score"] for m in MODES}
        best = min(scores.values()) if lower else max(scores.values())
        ok = best <= e["sklearn"] if lower else best >= e["sklearn"]
        cells = " | ".join(f"{scores[m]:.4f} ({e['modes'][m]['train_s']:.1f}s)" for m in MODES)
        lines.append(f"| {e['desc']} | {e['metric']} | {e['sklearn']:.4f} ({e['sklearn_fit_s']:.1f}s) | {cells} | "
                     f"{'matches or beats' if ok else 'WORSE'} ({best - e['sklearn']:+.4f}) |")
    lines += ["", "Each cell: score (training wall time).", "", "## What the numbers say", ""]
    wins = defaultdict(list)
    for e in results:
        lower = e["metric"] == "rmse"
        best_mode = (min if lower else max)(MODES, key=lambda m: e["modes"][m]["score"])
        wins[best_mode].append(e["name"])
    for m in MODES:
        lines.append(f"- Best mode on {len(wins[m])} of {len(results)} datasets: **{m}**"
                     + (f" ({', '.join(wins[m])})." if wins[m] else "."))
    def behind(e):
        two = e["modes"]["two_stage"]["score"]
        scores = [e["modes"][m]["score"] for m in MODES]
        return two > min(scores) if e["metric"] == "rmse" else two < max(scores)

    ts = results
    worse = [e["name"] for e in results if behind(e)]
    lines.append(f"- Two-stage is behind the best mode on {len(worse)} of {len(ts)} datasets"
                 + (f" ({', '.join(worse)})" if worse else "")
                 + ": on this data the claim that two-stage training generalizes better is "
                 + ("supported." if not worse else "not supported as a general rule."))
    faster = [e["name"] for e in results
              if e["modes"]["two_stage"]["train_s"] < min(e["modes"][m]["train_s"] for m in MODES if m != "two_stage")]
    lines.append(f"- Two-stage trained fastest (wall time) on {len(faster)} of {len(results)} datasets; it runs an extra "
                 "stage, so per-run time is not where it can win. `tandem compare` measures time to best "
                 "validation over several seeds.")
    lines.append("- Single seed: differences of about a point are within seed noise for the smaller datasets "
                 "(BBC has 444 test articles; Reuters has 431 test documents and only 69 corn-labelled documents in the whole set).")
    lines += sequence_section(results)
    tail = kept_by_hand(args.out)  # read before the file is truncated below
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n" + tail)
    print(f"wrote {args.out}")


# What follows this line in the results file was written by hand (other measurements, such as
# `tandem compare` over several seeds) and survives a regeneration.
HAND_MARKER = "<!-- Below this line: written by hand; scripts/results.py keeps it. -->"


def kept_by_hand(path):
    """The hand-written tail of the existing results file, marker included ("" if none)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return ""
    at = text.find(HAND_MARKER)
    return "" if at < 0 else "\n" + text[at:]


def sequence_section(results):
    """Markdown: pooled vs sequence heads per dataset, then the TREC fine-tune reference."""
    lines = ["", "## Sequence heads vs pooled heads", "",
             "Sequence heads (`--head sequence`, default `[head.sequence]`: one attention-pooling query and "
             "convolutions of widths 1, 3 and 5 with 128 channels over the frozen backbone's per-token vectors, "
             "joined with the sentence embedding) against pooled heads of the same mode, same split, seed and "
             "config: the defaults plus `loss.label_smoothing = 0.1` and `head.stage.epochs = 12` for both "
             "(chosen on TREC validation data, see `SEQ_CONFIG` in the script). "
             "Each cell: test score (training time in seconds, embeddings cached).", "",
             "| dataset | metric | " + " | ".join(f"{m} pooled | {m} sequence" for m in SEQ_MODES) + " |",
             "|---|---|" + "---:|---:|" * len(SEQ_MODES)]
    worse = []
    for e in results:
        lower = e["metric"] == "rmse"
        cells = []
        for m in SEQ_MODES:
            p, q = e["pooled"][m], e["sequence"][m]
            cells.append(f"{p['score']:.4f} ({p['fit_s']:.1f}s) | {q['score']:.4f} ({q['fit_s']:.1f}s)")
            delta = (q["score"] - p["score"]) if lower else (p["score"] - q["score"])
            if delta > SEQ_TOLERANCE:
                worse.append((e, m, p["score"], q["score"]))
        lines.append(f"| {e['desc']} | {e['metric']} | " + " | ".join(cells) + " |")
    lines += [""]
    better = [e["name"] for e in results
              if any(((e["sequence"][m]["score"] < e["pooled"][m]["score"]) if e["metric"] == "rmse"
                      else (e["sequence"][m]["score"] > e["pooled"][m]["score"])) for m in SEQ_MODES)]
    lines.append(f"- The sequence head beats the pooled head of the same mode on {len(better)} of {len(results)} "
                 "datasets" + (f" ({', '.join(better)})." if better else "."))
    if worse:
        for e, m, p, q in worse:
            lines.append(f"- **Worse on {e['name']} ({m})**: {e['metric']} {q:.4f} with a sequence head against "
                         f"{p:.4f} pooled, more than half a point. Use pooled heads there.")
    else:
        lines.append("- On no dataset is a sequence head worse than the pooled head of its mode by more than half a point.")
    # The same comparison against the best pooled head of ANY config in this report (the default
    # config's modes in the first table included): a config that suits pooled heads better must
    # not hide a loss.
    for e in results:
        lower = e["metric"] == "rmse"
        pick = min if lower else max
        pooled = [(e["modes"][m]["score"], f"{m}, default config") for m in MODES]
        pooled += [(e["pooled"][m]["score"], f"{m}, comparison config") for m in SEQ_MODES]
        best_p = pick(pooled, key=lambda t: t[0])
        best_q = pick((e["sequence"][m]["score"], m) for m in SEQ_MODES)
        delta = (best_q[0] - best_p[0]) if lower else (best_p[0] - best_q[0])
        if delta > SEQ_TOLERANCE:
            lines.append(f"- **Worse on {e['name']} than the best pooled head of any config**: the best sequence head "
                         f"({best_q[1]}) scores {e['metric']} {best_q[0]:.4f}, the pooled head ({best_p[1]}) "
                         f"{best_p[0]:.4f}, {abs(delta):.4f} apart. This comparison's config does not suit the pooled "
                         "head there; with the default config the pooled head is the better choice.")
    ft = next((e["finetune"] for e in results if "finetune" in e), None)
    if ft:
        s, t = ft["sequence_end_to_end"], ft["torch"]
        lines += ["", "## Against a full fine-tune (TREC coarse)", "",
                  "`scripts/finetune_torch.py` fine-tunes the whole backbone in PyTorch on the same split and machine "
                  f"(3 epochs, AdamW lr 5e-5, batch 32, max length 128, {t['threads']} threads, torch {t['torch_version']}). "
                  "The tandem run is `tandem train --mode embedding_only --head sequence --no-cache` with the "
                  "comparison's config: its time includes running the backbone over every training text for the "
                  "per-token vectors.", "",
                  "| approach | macro-F1 | accuracy | training time (s) |", "|---|---:|---:|---:|",
                  f"| full fine-tune, PyTorch | {t['macro_f1']:.4f} | {t['accuracy']:.4f} | {t['train_seconds']:.1f} |",
                  f"| tandem sequence head, embedding included | {s['score']:.4f} | | {s['train_s']:.1f} |",
                  f"| tandem pooled head (two_stage, default config), embeddings cached | {next(e for e in results if 'finetune' in e)['modes']['two_stage']['score']:.4f} | | "
                  f"{next(e for e in results if 'finetune' in e)['modes']['two_stage']['fit_s']:.1f} |", "",
                  f"- The sequence head takes {s['train_s'] / t['train_seconds']:.2f}x the fine-tune's training time "
                  f"({'within' if s['train_s'] * 5 <= t['train_seconds'] else 'NOT within'} the 1/5 bar) and reaches "
                  f"{s['score']:.4f} macro-F1 ({'meets' if s['score'] >= 0.90 else 'misses'} the 0.90 bar), "
                  f"{abs(t['macro_f1'] - s['score']):.4f} {'below' if s['score'] < t['macro_f1'] else 'above'} the fine-tune.",
                  "- Both runs share the machine with whatever else runs: the ratio is only meaningful on an otherwise "
                  "idle machine."]
    return lines


if __name__ == "__main__":
    main()
