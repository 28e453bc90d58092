#!/usr/bin/env python3
"""Fine-tuning the backbone's top layers on TREC coarse -> docs/finetune.json and the
"Fine-tuning the top layers" section of docs/results.md (rerunnable after scripts/setup.sh).

    ~/.cache/tandem/venv/bin/python scripts/finetune.py [--tandem target/release/tandem]
        [--layers 1,2,3] [--no-torch]

On the split of scripts/results.py (seeded stratified 80/20, written to target/finetune/trec/):
  - recipe: an embedding-only pooled head with the sequence head's label smoothing (0.1) and
    one of CANDIDATES (epochs, the layers' learning rate), chosen by tandem's own validation
    macro-F1 with K = 2 (never by the test set);
  - accuracy: `tandem train --trainable-layers K` with that recipe for each K (0 = the frozen
    backbone, same recipe) and the best frozen head of docs/results.md (an embedding-only
    sequence head with its config), each evaluated on the test 20%; K too is chosen by
    validation macro-F1;
  - time: `tandem train --trainable-layers 2 --no-cache` (every text through the bottom layers
    included) against scripts/finetune_torch.py's full fine-tune (3 epochs, lr 5e-5, batch 32),
    both whole processes, back to back in this run, with the K = 2 run's peak RSS;
  - speed: seconds per epoch per 1000 training texts of tandem's native top-2 training (its
    cached run's epochs, validation included) against scripts/topk_torch.py (PyTorch training
    the same two layers on cached hidden states, 2 threads).
With --sequence: sequence heads on the fine-tuned layers instead: K = 2 with the recipe chosen
above (docs/finetune.json) and `--head sequence`, at its epochs and at the frozen sequence head's
(12), the better on validation reported on test against the pooled K = 2 and the frozen
sequence head of docs/finetune.json -> docs/finetune_sequence.json and the "Sequence heads on
fine-tuned layers" section.
With --time [--rounds N]: only the time and speed bars, on this machine: N rounds (default 2)
of `tandem train --trainable-layers 2 --no-cache` with the recipe of docs/finetune.json and
scripts/finetune_torch.py's full fine-tune, back to back (which goes first alternates), then
scripts/topk_torch.py once; the paired ratio per round, their median, and the CPU they ran on
-> docs/finetune_time.json and the "Time and speed on this machine" section (the full run's
section keeps its own machine's numbers).
With --demo sms,vader,...: instead, K = 2 with the recipe chosen above (docs/finetune.json) on
those demo datasets, each on the split of scripts/results.py, against the best frozen head of
docs/results.json on the same split (the best of its pooled and sequence heads in every mode)
-> docs/finetune_demo.json and the "Fine-tuning on the demo datasets" section.
Nothing is hard-coded: every number comes from a run.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import results  # noqa: E402  (the split and the sequence head's config)
from fewshot import write_section  # noqa: E402

BASE = "mode = \"embedding_only\"\n\n[loss]\nlabel_smoothing = 0.1\n\n"
# The candidate recipes (epochs, the layers' learning rate): fewer epochs with a higher rate.
# One is chosen by tandem's validation macro-F1 with K = 2, then used for every K.
CANDIDATES = [(8, 1e-4), (5, 2e-4), (4, 3e-4)]


def recipe(epochs, lr):
    return BASE + f"[head.stage]\nepochs = {epochs}\n\n[backbone]\nlr = {lr}\n"
PYTHON = os.path.join(results.CACHE, "venv", "bin", "python")
START, END = "<!-- finetune:start -->", "<!-- finetune:end -->"
DEMO_START, DEMO_END = "<!-- finetune-demo:start -->", "<!-- finetune-demo:end -->"
SEQ_START, SEQ_END = "<!-- finetune-sequence:start -->", "<!-- finetune-sequence:end -->"
TIME_START, TIME_END = "<!-- finetune-time:start -->", "<!-- finetune-time:end -->"


def timed(cmd):
    """Runs cmd under GNU time: (stdout, stderr, wall seconds, peak RSS in MB)."""
    t = time.time()
    p = subprocess.run(["/usr/bin/time", "-f", "TIME_RSS_KB %M", *cmd], capture_output=True, text=True)
    wall = time.time() - t
    if p.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{p.stderr[-3000:]}")
    rss = int(re.findall(r"TIME_RSS_KB (\d+)", p.stderr)[-1]) / 1024
    return p.stdout, p.stderr, wall, rss


def train(args, work, name, config, extra):
    cfg = os.path.join(work, f"{name}.toml")
    with open(cfg, "w") as f:
        f.write(config)
    out = os.path.join(work, f"model-{name}")
    _, err, wall, rss = timed([args.tandem, "train", "--data", os.path.join(work, "train.jsonl"),
                               "--label-field", "label", "--task", "multiclass", "--out", out,
                               "--config", cfg, "--seed", "0", "--log-format", "json", *extra])
    epochs = [json.loads(l) for l in err.splitlines() if l.startswith("{") and '"epoch"' in l]
    epochs = [e for e in epochs if e.get("event") == "epoch" and e.get("stage") != "thresholds"]
    stdout, _ = results.run([args.tandem, "eval", "--model", out, "--data",
                             os.path.join(work, "test.jsonl"), "--label-field", "label", "--json"])
    int8 = None
    if os.path.exists(os.path.join(out, "backbone", "model.int8.onnx")):
        # The bundle's int8 graph: the fine-tuned layers re-quantized into the stock one.
        q, _ = results.run([args.tandem, "eval", "--model", out, "--data", os.path.join(work, "test.jsonl"),
                            "--label-field", "label", "--json", "--variant", "int8"])
        int8 = json.loads(q)["macro_f1"]
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    valid = manifest["metrics"].get("macro_f1")
    elapsed = [e["elapsed"] for e in epochs]
    per_epoch = [b - a for a, b in zip([0.0] + elapsed, elapsed)]
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out) for f in fs)
    return {"test_macro_f1": json.loads(stdout)["macro_f1"], "test_macro_f1_int8": int8, "valid_macro_f1": valid,
            "wall_seconds": wall, "peak_rss_mb": rss, "epoch_seconds": per_epoch,
            "n_train": manifest["metrics"].get("n_train"), "bundle_bytes": size}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "target", "release", "tandem"))
    ap.add_argument("--layers", default="1,2,3")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch runs")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results.md"))
    ap.add_argument("--demo", help="comma-separated demo datasets (see the module doc)")
    ap.add_argument("--sequence", action="store_true", help="sequence heads on K = 2 (see the module doc)")
    ap.add_argument("--time", action="store_true", help="only the time and speed bars (see the module doc)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of --time")
    ap.add_argument("--render-time", action="store_true",
                    help="only rewrite the --time section from docs/finetune_time.json")
    args = ap.parse_args()
    if args.render_time:
        with open(os.path.join(ROOT, "docs", "finetune_time.json")) as f:
            return render_time(json.load(f), args.out)
    if args.time:
        return time_bars(args)
    if args.demo:
        return demo(args)
    if args.sequence:
        return sequence(args)
    work = trec_split()
    out = {"runs": {}, "candidates": {}}
    out["runs"]["frozen sequence head"] = train(
        args, work, "sequence", 'mode = "embedding_only"\n' + results.SEQ_CONFIG, ["--head", "sequence"])
    # The first run fills the K = 2 split cache; the candidates then train on it.
    train(args, work, "k2-warm", recipe(*CANDIDATES[0]), ["--trainable-layers", "2"])
    for epochs, lr in CANDIDATES:
        r = train(args, work, f"k2-e{epochs}", recipe(epochs, lr), ["--trainable-layers", "2"])
        out["candidates"][f"{epochs} epochs, layer lr {lr:g}"] = r
        print(f"candidate {epochs} epochs, lr {lr:g}: {r}", file=sys.stderr)
    best = max(CANDIDATES, key=lambda c: out["candidates"][f"{c[0]} epochs, layer lr {c[1]:g}"]["valid_macro_f1"])
    chosen = recipe(*best)
    out["recipe"] = chosen
    out["recipe_name"] = f"{best[0]} epochs, layer lr {best[1]:g}"
    layers = [0] + [int(k) for k in args.layers.split(",")]
    for k in layers:
        if k == 2:
            out["runs"]["K=2"] = out["candidates"][out["recipe_name"]]
            continue
        # The first run of each K fills its split cache; the second is the cached one reported.
        train(args, work, f"k{k}-warm", chosen, ["--trainable-layers", str(k)])
        out["runs"][f"K={k}"] = train(args, work, f"k{k}", chosen, ["--trainable-layers", str(k)])
        print(f"K={k}: {out['runs'][f'K={k}']}", file=sys.stderr)
    tuned = {k: out["runs"][f"K={k}"] for k in layers if k > 0}
    best_k = max(tuned, key=lambda k: tuned[k]["valid_macro_f1"])
    out["chosen_layers"] = best_k

    if not args.no_torch:
        nc = train(args, work, "k2-nocache", chosen, ["--trainable-layers", "2", "--no-cache"])
        out["runs"]["K=2 --no-cache"] = nc
        out["torch_full_finetune"] = torch_full(work)
        out["torch_top2_cached"] = torch_top2(work)
    with open(os.path.join(ROOT, "docs", "finetune.json"), "w") as f:
        json.dump(out, f, indent=1)
    render(out, args.out)


def torch_full(work):
    """scripts/finetune_torch.py's full fine-tune on the split in `work`, timed as a whole process."""
    stdout, _, wall, rss = timed([PYTHON, os.path.join(ROOT, "scripts", "finetune_torch.py"),
                                  "--train", os.path.join(work, "train.jsonl"),
                                  "--test", os.path.join(work, "test.jsonl")])
    out = json.loads(stdout.strip().splitlines()[-1])
    out.update({"wall_seconds": wall, "peak_rss_mb": rss})
    return out


def torch_top2(work):
    """scripts/topk_torch.py: PyTorch training the top 2 layers on cached hidden states."""
    stdout, _, _, _ = timed([PYTHON, os.path.join(ROOT, "scripts", "topk_torch.py"),
                             "--train", os.path.join(work, "train.jsonl"), "--layers", "2"])
    return json.loads(stdout.strip().splitlines()[-1])


def trec_split():
    """Writes TREC's split (that of scripts/results.py) to target/finetune/trec/; returns the folder."""
    work = os.path.join(ROOT, "target", "finetune", "trec")
    os.makedirs(work, exist_ok=True)
    rows = [json.loads(l) for l in open(os.path.join(results.CACHE, "data", "trec.jsonl"), encoding="utf-8")]
    tr, te = results.split(rows, "label", "multiclass", 0)
    results.write_jsonl(os.path.join(work, "train.jsonl"), [rows[i] for i in tr])
    results.write_jsonl(os.path.join(work, "test.jsonl"), [rows[i] for i in te])
    return work


def best_frozen(entry):
    """The best frozen score of a docs/results.json entry and where it came from."""
    lower = entry["metric"] == "rmse"
    cands = [(v["score"], f"{mode} pooled") for mode, v in entry["modes"].items()]
    cands += [(v["score"], f"{mode} sequence") for mode, v in entry.get("sequence", {}).items()]
    return (min if lower else max)(cands)


def demo(args):
    with open(os.path.join(ROOT, "docs", "finetune.json")) as f:
        chosen = json.load(f)["recipe"]
    with open(os.path.join(ROOT, "docs", "results.json")) as f:
        frozen = {e["name"]: e for e in json.load(f)}
    out = []
    for name in args.demo.split(","):
        fname, field, task, desc = results.DATASETS[name]
        rows = [json.loads(l) for l in open(os.path.join(results.CACHE, "data", fname), encoding="utf-8") if l.strip()]
        tr, te = results.split(rows, field, task, 0)
        work = os.path.join(ROOT, "target", "finetune", name)
        os.makedirs(work, exist_ok=True)
        results.write_jsonl(os.path.join(work, "train.jsonl"), [rows[i] for i in tr])
        results.write_jsonl(os.path.join(work, "test.jsonl"), [rows[i] for i in te])
        cfg = os.path.join(work, "k2.toml")
        with open(cfg, "w") as f:
            f.write(chosen)
        model = os.path.join(work, "model-k2")
        _, _, wall, rss = timed([args.tandem, "train", "--data", os.path.join(work, "train.jsonl"),
                                 "--label-field", field, "--task", task, "--out", model, "--config", cfg,
                                 "--seed", "0", "--trainable-layers", "2", "--quiet"])
        stdout, _ = results.run([args.tandem, "eval", "--model", model, "--data",
                                 os.path.join(work, "test.jsonl"), "--label-field", field, "--json"])
        metric = "rmse" if task == "regression" else "macro_f1"
        score = json.loads(stdout)[metric]
        best, where = best_frozen(frozen[name])
        worse = (score - best) if metric == "rmse" else (best - score)
        out.append({"name": name, "desc": desc, "metric": metric, "k2": score, "best_frozen": best,
                    "best_frozen_is": where, "worse_by": worse, "wall_seconds": wall, "peak_rss_mb": rss})
        print(out[-1], file=sys.stderr)
    with open(os.path.join(ROOT, "docs", "finetune_demo.json"), "w") as f:
        json.dump(out, f, indent=1)
    lines = [DEMO_START, "### Fine-tuning on the demo datasets", "",
             "`scripts/finetune.py --demo ...`: K = 2 with the recipe chosen on TREC above (first "
             "run: the split cache cold, bottom layers included in the time), on each dataset's "
             "split of the tables above, against the best frozen head of "
             "`docs/results.json` on the same split (the best of the pooled and sequence heads in "
             "every mode; RMSE: lower is better).", "",
             "| dataset | metric | K = 2 | best frozen head | K = 2 worse by | wall (s) | peak RSS (MB) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for e in out:
        lines.append(f"| {e['desc']} | {e['metric']} | {e['k2']:.4f} | {e['best_frozen']:.4f} "
                     f"({e['best_frozen_is']}) | {e['worse_by']:+.4f} | {e['wall_seconds']:.1f} | "
                     f"{e['peak_rss_mb']:.0f} |")
    lines.append("")
    bad = [e["name"] for e in out if e["worse_by"] > 0.005]
    lines.append(f"- K = 2 is worse than the best frozen head by more than half a point on "
                 f"{len(bad)} of {len(out)} datasets{(' (' + ', '.join(bad) + ')') if bad else ''}.")
    lines.append(DEMO_END)
    write_section(args.out, "\n".join(lines), DEMO_START, DEMO_END, "fine-tuning demo")


def sequence(args):
    with open(os.path.join(ROOT, "docs", "finetune.json")) as f:
        before = json.load(f)
    work = trec_split()
    chosen = before["recipe"]
    epochs = int(re.search(r"epochs = (\d+)", chosen).group(1))
    seq_epochs = int(re.search(r"epochs = (\d+)", results.SEQ_CONFIG).group(1))
    out = {"recipe": chosen, "candidates": {}}
    # The first run fills the K = 2 split cache if it is cold.
    train(args, work, "k2-seq-warm", chosen, ["--trainable-layers", "2", "--head", "sequence"])
    for e in sorted({epochs, seq_epochs}):
        cfg = re.sub(r"epochs = \d+", f"epochs = {e}", chosen)
        r = train(args, work, f"k2-seq-e{e}", cfg, ["--trainable-layers", "2", "--head", "sequence"])
        out["candidates"][f"{e} epochs"] = r
        print(f"sequence K=2, {e} epochs: {r}", file=sys.stderr)
    out["chosen"] = max(out["candidates"], key=lambda k: out["candidates"][k]["valid_macro_f1"])
    # The pooled K = 2 again, in this run: the baseline of the time ratio.
    out["pooled"] = train(args, work, "k2-pooled", chosen, ["--trainable-layers", "2"])
    with open(os.path.join(ROOT, "docs", "finetune_sequence.json"), "w") as f:
        json.dump(out, f, indent=1)
    pooled, frozen = out["pooled"], before["runs"]["frozen sequence head"]
    lines = [SEQ_START, "### Sequence heads on fine-tuned layers", "",
             "`scripts/finetune.py --sequence` (raw numbers in `docs/finetune_sequence.json`): the "
             "split above, K = 2 with the recipe chosen above and `--head sequence` (the sequence "
             "encoder reads the top layer's token vectors, and its gradient trains the layers too), "
             f"at the recipe's {epochs} epochs and at the frozen sequence head's {seq_epochs}; the "
             "better on validation is the one compared; the pooled K = 2 ran again in the same run "
             "(the time ratio's baseline). The frozen sequence head's row is docs/finetune.json's "
             "(an earlier run of the same split).", "",
             "| run | valid macro-F1 | test macro-F1 | served int8: test macro-F1 | wall (s) | peak RSS (MB) |",
             "|---|---:|---:|---:|---:|---:|"]
    rows = [(f"K = 2, sequence head, {k}", r) for k, r in out["candidates"].items()]
    rows += [("K = 2, pooled head (same run)", pooled), ("frozen sequence head", frozen)]
    for name, r in rows:
        q = "" if r.get("test_macro_f1_int8") is None else f"{r['test_macro_f1_int8']:.4f}"
        lines.append(f"| {name} | {r['valid_macro_f1']:.4f} | {r['test_macro_f1']:.4f} | {q} | "
                     f"{r['wall_seconds']:.1f} | {r['peak_rss_mb']:.0f} |")
    best = out["candidates"][out["chosen"]]
    lines += ["", f"- Chosen by validation: {out['chosen']}, test macro-F1 {best['test_macro_f1']:.4f}: "
              f"{best['test_macro_f1'] - pooled['test_macro_f1']:+.4f} against the pooled K = 2, "
              f"{best['test_macro_f1'] - frozen['test_macro_f1']:+.4f} against the frozen sequence head; "
              f"{best['wall_seconds'] / pooled['wall_seconds']:.2f}x the pooled K = 2's wall time.",
              "- Single split, single seed.", SEQ_END]
    write_section(args.out, "\n".join(lines), SEQ_START, SEQ_END, "fine-tuning sequence heads")


def cpu():
    """The CPU's model name and the vector extensions that decide GEMM speed."""
    info = open("/proc/cpuinfo", encoding="utf-8").read()
    name = re.search(r"model name\s*:\s*(.*)", info)
    flags = set(re.search(r"flags\s*:\s*(.*)", info).group(1).split()) if "flags" in info else set()
    fam = re.search(r"cpu family\s*:\s*(\d+)", info)
    model = re.search(r"model\s*:\s*(\d+)", info)
    return {"model_name": name.group(1).strip() if name else "unknown",
            "family": int(fam.group(1)) if fam else None, "model": int(model.group(1)) if model else None,
            "cores": os.cpu_count(),
            "vector": [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]}


def time_bars(args):
    with open(os.path.join(ROOT, "docs", "finetune.json")) as f:
        chosen = json.load(f)["recipe"]
    work = trec_split()
    out = {"recipe": chosen, "cpu": cpu(), "rounds": []}

    def ours():
        return train(args, work, "k2-nocache", chosen, ["--trainable-layers", "2", "--no-cache"])
    for r in range(args.rounds):
        if r % 2 == 0:
            a = ours()
            b = torch_full(work)
        else:
            b = torch_full(work)
            a = ours()
        out["rounds"].append({"tandem": a, "torch": b, "ratio": a["wall_seconds"] / b["wall_seconds"]})
        print(f"round {r}: tandem {a['wall_seconds']:.1f} s, torch {b['wall_seconds']:.1f} s", file=sys.stderr)
    out["torch_top2_cached"] = torch_top2(work)
    with open(os.path.join(ROOT, "docs", "finetune_time.json"), "w") as f:
        json.dump(out, f, indent=1)
    render_time(out, args.out)


def render_time(out, path):
    c = out["cpu"]
    ratios = [r["ratio"] for r in out["rounds"]]
    med = statistics.median(ratios)
    with open(os.path.join(ROOT, "docs", "finetune.json")) as f:
        full = json.load(f)
    earlier = full["runs"]["K=2 --no-cache"]["wall_seconds"] / full["torch_full_finetune"]["wall_seconds"]
    lines = [TIME_START, "### Time and speed on this machine", "",
             "`scripts/finetune.py --time` (raw numbers in `docs/finetune_time.json`): the time and "
             "speed bars alone, rerun on the machine at hand, with the recipe chosen above: "
             f"{len(ratios)} rounds of `tandem train --trainable-layers 2 --no-cache` and the PyTorch "
             "full fine-tune, back to back (which goes first alternates), whole processes. CPU: "
             f"{c['model_name']} (family {c['family']}, model {c['model']}), {c['cores']} cores, "
             f"{', '.join(c['vector']) or 'no AVX'}. The full run above (docs/finetune.json) "
             f"measured the same bar at {earlier:.2f}x on the machine it ran on.", "",
             "| round | tandem K = 2 --no-cache (s) | test macro-F1 | PyTorch full fine-tune (s) | test macro-F1 | tandem / PyTorch |",
             "|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(out["rounds"]):
        a, b = r["tandem"], r["torch"]
        lines.append(f"| {i + 1} | {a['wall_seconds']:.1f} | {a['test_macro_f1']:.4f} | "
                     f"{b['wall_seconds']:.1f} | {b['macro_f1']:.4f} | {r['ratio']:.2f} |")
    lines.append("")
    lines.append(f"- Time: median ratio {med:.2f}x ({'within' if med <= 1 / 3 else 'outside'} the 1/3 bar"
                 f"{'' if all(x <= 1 / 3 for x in ratios) == (med <= 1 / 3) else '; not in every round'}).")
    t_now = statistics.median(r["tandem"]["wall_seconds"] for r in out["rounds"])
    p_now = statistics.median(r["torch"]["wall_seconds"] for r in out["rounds"])
    t_then = full["runs"]["K=2 --no-cache"]["wall_seconds"]
    p_then = full["torch_full_finetune"]["wall_seconds"]
    f_then = (full["runs"]["K=2 --no-cache"]["test_macro_f1"], full["torch_full_finetune"]["macro_f1"])
    same = all(abs(r["tandem"]["test_macro_f1"] - f_then[0]) < 5e-5
               and abs(r["torch"]["macro_f1"] - f_then[1]) < 5e-5 for r in out["rounds"])
    lines.append(f"- Against the full run: tandem {t_now / t_then:.1f}x its time there "
                 f"({t_now:.1f} s against {t_then:.1f} s), PyTorch {p_now / p_then:.1f}x "
                 f"({p_now:.1f} s against {p_then:.1f} s); test macro-F1 "
                 + ("the same to four places." if same else
                    f"{f_then[0]:.4f} and {f_then[1]:.4f} there."))
    rounds = [r["tandem"] for r in out["rounds"]]
    ours = statistics.median(s / r["n_train"] * 1000 for r in rounds for s in r["epoch_seconds"])
    tk = out["torch_top2_cached"]
    theirs = tk["median_epoch_seconds"] / tk["texts"] * 1000
    lines.append(f"- Speed: native training of the top 2 layers {ours:.2f} s per epoch per 1000 texts "
                 f"(median epoch of the runs above, validation included), PyTorch on the same layers "
                 f"and cached states {theirs:.2f} s ({theirs / ours:.2f}x tandem's time; 2 threads each).")
    lines.append(TIME_END)
    write_section(path, "\n".join(lines), TIME_START, TIME_END, "fine-tuning time")


def render(out, path):
    runs = out["runs"]
    cands = ", ".join(f"{name}: {r['valid_macro_f1']:.4f}" for name, r in out["candidates"].items())
    lines = [START, "## Fine-tuning the top layers (TREC coarse)", "",
             "`scripts/finetune.py` (rerunnable; raw numbers in `docs/finetune.json`): the split of "
             "the tables above; `tandem train --trainable-layers K` with one recipe for every K: an "
             "embedding-only pooled head, the sequence head's label smoothing 0.1, the other "
             "`[backbone]` defaults (weight decay 0.01, 10% warm-up), and of three candidates "
             f"(validation macro-F1 with K = 2: {cands}) the best on validation, "
             f"**{out['recipe_name']}**; K = 0 is the same recipe on the frozen backbone. Test "
             "macro-F1 on the held-out 20%; the recipe and K are chosen by tandem's validation "
             "macro-F1, never by the test set. Times are whole `tandem train` processes with the "
             "split cache warm (`--no-cache` below), which includes writing the bundle's fp32 and int8 "
             "graphs. `served int8` is the same bundle evaluated with `--variant int8`: its "
             "fine-tuned layers re-quantized into the stock int8 graph (K = 0 and the frozen head: the "
             "stock int8 graph under the same heads is not evaluated here).", "",
             "| run | valid macro-F1 | test macro-F1 | served int8: test macro-F1 | wall (s) | peak RSS (MB) | bundle (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in runs.items():
        v = "" if r["valid_macro_f1"] is None else f"{r['valid_macro_f1']:.4f}"
        q = "" if r.get("test_macro_f1_int8") is None else f"{r['test_macro_f1_int8']:.4f}"
        lines.append(f"| {name} | {v} | {r['test_macro_f1']:.4f} | {q} | {r['wall_seconds']:.1f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['bundle_bytes'] / 1e6:.1f} |")
    tf = out.get("torch_full_finetune")
    if tf:
        lines.append(f"| full fine-tune, PyTorch | | {tf['macro_f1']:.4f} | | {tf['wall_seconds']:.1f} | "
                     f"{tf['peak_rss_mb']:.0f} | |")
    lines.append("")
    k = out["chosen_layers"]
    best = runs[f"K={k}"]
    frozen = runs["frozen sequence head"]
    lines.append(f"- Chosen by validation: K = {k}, test macro-F1 {best['test_macro_f1']:.4f} "
                 f"({'meets' if best['test_macro_f1'] >= 0.925 else 'misses'} the 0.925 bar); the best "
                 f"frozen head {frozen['test_macro_f1']:.4f}; K = 0 (same recipe, frozen) "
                 f"{runs['K=0']['test_macro_f1']:.4f}.")
    k2 = runs.get("K=2")
    if k2:
        lines.append(f"- K = 2: test macro-F1 {k2['test_macro_f1']:.4f}, "
                     f"{k2['test_macro_f1'] - frozen['test_macro_f1']:+.4f} against the best frozen head; "
                     f"peak RSS {k2['peak_rss_mb']:.0f} MB "
                     f"({'under' if k2['peak_rss_mb'] < 1536 else 'over'} the 1.5 GB bar).")
    if tf:
        nc = runs["K=2 --no-cache"]
        ratio = nc["wall_seconds"] / tf["wall_seconds"]
        lines.append(f"- Time: `tandem train --trainable-layers 2 --no-cache` took {nc['wall_seconds']:.1f} s, "
                     f"{ratio:.2f}x the PyTorch full fine-tune's {tf['wall_seconds']:.1f} s in the same run "
                     f"({'within' if ratio <= 1 / 3 else 'outside'} the 1/3 bar).")
        tk = out["torch_top2_cached"]
        ours = statistics.median(k2["epoch_seconds"]) / k2["n_train"] * 1000
        theirs = tk["median_epoch_seconds"] / tk["texts"] * 1000
        lines.append(f"- Speed: native training of the top 2 layers on cached hidden states: "
                     f"{ours:.2f} s per epoch per 1000 texts (median epoch, its validation pass "
                     f"included), PyTorch on the same layers and cached states "
                     f"{theirs:.2f} s ({theirs / ours:.2f}x tandem's time; 2 threads each).")
    lines += ["- Single split, single seed; the machine is shared, so ratios matter more than seconds.",
              END]
    write_section(path, "\n".join(lines), START, END, "fine-tuning")


if __name__ == "__main__":
    main()
