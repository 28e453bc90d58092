#!/usr/bin/env bash
# What the head and multi-task options of issue 22 do (docs/results.md, "Head options:
# multi-sample dropout, residual blocks, task weights, Monte-Carlo dropout"). Each option is
# kept whatever it measures; this says whether it helps.
#
#   1. Heads, on TREC (6 classes) and SMS spam: `tandem compare --modes joint` at 10% and 100%
#      of the training split, 3 seeds, with the default config, with multi-sample dropout
#      ([head.stage] dropout_samples = 4), and with three hidden layers of 256 without and with
#      residual blocks ([head] residual).
#   2. Task weights, on TREC with two tasks (the coarse label and the fine one, 50 classes):
#      the fixed sum (default), learned uncertainty weights, and the inverse-variance weights
#      that `tandem inspect --task-weights` finds from a run's history; each task scored in
#      turn (compare scores the first label field).
#   3. Monte-Carlo dropout, on TREC and SMS spam: train joint heads on a stratified 80% (seed 0),
#      predict the other 20% once and with `--mc-samples 30`, and ask whether the spread says
#      more about which predictions are wrong than the confidence does (AUROC of each as an
#      error detector).
#
# Writes the compare outputs under $OUT (default docs/measurements/heads) and prints a summary.
# Needs scripts/setup.sh (models, data) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
TANDEM=${TANDEM:-target/release/tandem}
HOME_DIR=${TANDEM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}
DATA=$HOME_DIR/data
PY=${PY:-$HOME_DIR/venv/bin/python}
OUT=${OUT:-docs/measurements/heads}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

printf '' > "$WORK/default.toml"
printf '[head.stage]\ndropout_samples = 4\n' > "$WORK/msd4.toml"
printf '[head]\nhidden = [256, 256, 256]\n' > "$WORK/deep.toml"
printf '[head]\nhidden = [256, 256, 256]\nresidual = true\n' > "$WORK/residual.toml"

summary() { sed -n '/sample efficiency/,$p' | sed "s/\$/  ($1)/"; }

echo "== 1. heads (joint)"
for spec in trec:multiclass sms_spam:binary; do
  ds=${spec%%:*}
  task=${spec##*:}
  for cfg in default msd4 deep residual; do
    "$TANDEM" compare --data "$DATA/$ds.jsonl" --label-field label --task "$task" \
      --modes joint --config "$WORK/$cfg.toml" --seeds 3 --fractions 0.1,1 --quiet \
      --markdown "$OUT/$ds-joint-$cfg.md" | summary "$ds $cfg"
  done
done

echo "== 2. task weights (TREC coarse + fine, joint)"
"$TANDEM" train --data "$DATA/trec.jsonl" --label-field label --task multiclass \
  --label-field fine --task multiclass --mode joint --seed 0 --quiet --out "$WORK/two-tasks"
"$TANDEM" inspect "$WORK/two-tasks" --task-weights | tee "$OUT/trec-inverse-variance.toml"
printf '[loss]\nmultitask = "uncertainty"\n' > "$WORK/uncertainty.toml"
grep -v '^#' "$OUT/trec-inverse-variance.toml" > "$WORK/inverse.toml"
for first in label fine; do
  second=$([ "$first" = label ] && echo fine || echo label)
  for cfg in default uncertainty inverse; do
    "$TANDEM" compare --data "$DATA/trec.jsonl" --label-field "$first" --task multiclass \
      --label-field "$second" --task multiclass --modes joint --config "$WORK/$cfg.toml" \
      --seeds 3 --fractions 1 --quiet --markdown "$OUT/trec-$first-first-$cfg.md" > /dev/null
    # The row's test macro-F1 and accuracy.
    echo "scored: $first, $cfg: $(grep '^| joint ' "$OUT/trec-$first-first-$cfg.md" | cut -d'|' -f7-8)"
  done
done

echo "== 3. Monte-Carlo dropout (joint, 80/20 split, seed 0)"
for spec in trec:multiclass sms_spam:binary; do
  ds=${spec%%:*}
  task=${spec##*:}
  "$PY" - "$DATA/$ds.jsonl" "$WORK/$ds" <<'PY'
import json, random, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = defaultdict(list)
for r in rows:
    by[r["label"]].append(r)
train, test = [], []
rng = random.Random(0)
for label in sorted(by):
    group = by[label]
    rng.shuffle(group)
    k = round(len(group) * 0.2)
    test += group[:k]
    train += group[k:]
for name, part in (("train", train), ("test", test)):
    with open(f"{sys.argv[2]}-{name}.jsonl", "w") as f:
        for r in part:
            f.write(json.dumps({"text": r["text"], "label": r["label"]}) + "\n")
PY
  "$TANDEM" train --data "$WORK/$ds-train.jsonl" --label-field label --task "$task" \
    --mode joint --seed 0 --quiet --out "$WORK/$ds-model"
  "$TANDEM" predict --model "$WORK/$ds-model" "$WORK/$ds-test.jsonl" > "$WORK/$ds-plain.jsonl"
  "$TANDEM" predict --model "$WORK/$ds-model" --mc-samples 30 --mc-seed 0 \
    "$WORK/$ds-test.jsonl" > "$WORK/$ds-mc.jsonl"
  "$PY" - "$ds" "$WORK/$ds-test.jsonl" "$WORK/$ds-plain.jsonl" "$WORK/$ds-mc.jsonl" \
    "$WORK/$ds-model/manifest.json" <<'PY' | tee "$OUT/$ds-mc-dropout.txt"
import json, sys
ds, test, plain, mc, manifest = sys.argv[1:]
truth = [json.loads(l)["label"] for l in open(test)]
classes = json.load(open(manifest))["tasks"][0]["labels"]
def load(path):
    return [json.loads(l)["predictions"][0] for l in open(path)]
def auroc(score, positive):
    # Probability that a random positive (wrong prediction) scores above a random negative.
    pos = [s for s, p in zip(score, positive) if p]
    neg = [s for s, p in zip(score, positive) if not p]
    if not pos or not neg:
        return float("nan")
    pairs = sorted([(s, 1) for s in pos] + [(s, 0) for s in neg])
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mid = (i + j + 1) / 2
        rank_sum += sum(mid for k in range(i, j) if pairs[k][1])
        i = j
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
def macro_f1(pred):
    f = []
    for c in classes:
        tp = sum(p == c and t == c for p, t in zip(pred, truth))
        fp = sum(p == c and t != c for p, t in zip(pred, truth))
        fn = sum(p != c and t == c for p, t in zip(pred, truth))
        f.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f) / len(f)
out = {}
for name, rows in (("single pass", load(plain)), ("mean of 30 MC passes", load(mc))):
    # The model's decision (binary: on its tuned threshold), its probability and spread.
    pred = [r["labels"][0] for r in rows]
    top = [classes.index(p) for p in pred]
    wrong = [p != t for p, t in zip(pred, truth)]
    conf = [r["probabilities"][k] for r, k in zip(rows, top)]
    line = (f"{ds} {name}: macro-F1 {macro_f1(pred):.4f}, accuracy "
            f"{1 - sum(wrong) / len(wrong):.4f}, errors {sum(wrong)}/{len(wrong)}, "
            f"AUROC of 1 - confidence for the errors {auroc([-c for c in conf], wrong):.4f}")
    if "spread" in rows[0] and rows[0]["spread"]:
        sd = [r["spread"][k] for r, k in zip(rows, top)]
        mean_sd = [sum(r["spread"]) / len(r["spread"]) for r in rows]
        line += (f", AUROC of the top class's spread {auroc(sd, wrong):.4f}, of the mean spread "
                 f"{auroc(mean_sd, wrong):.4f}")
    print(line)
PY
done
