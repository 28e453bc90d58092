#!/usr/bin/env bash
# Does distillation work? (docs/results.md, "Distillation from a larger backbone")
#
# TREC coarse, a stratified 80/20 split (seed 0; the 20% is the test set no model sees). The
# teacher: embedding-only heads on all-mpnet-base-v2 (768-d, 12 layers), trained on the 80%.
# The students: joint heads on the default all-MiniLM-L6-v2, 3 seeds each,
#   - on all of the 80%, without and with the teacher ([distill] weight 0.5, temperature 2);
#   - on 10% of it with labels, without the teacher, and with the teacher plus the other 90%
#     as unlabelled text (--unlabelled: the device's own texts, labels unknown).
# Prints test macro-F1 and accuracy (mean ± sd over seeds) per student; writes the table to
# $OUT (default docs/measurements/distill.md).
#
# Needs scripts/setup.sh (models, data) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
TANDEM=${TANDEM:-target/release/tandem}
HOME_DIR=${TANDEM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}
DATA=$HOME_DIR/data
OUT=${OUT:-docs/measurements/distill.md}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

python3 - "$DATA/trec.jsonl" "$WORK" <<'EOF'
import json, random, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
work = sys.argv[2]
by = defaultdict(list)
for i, r in enumerate(rows):
    by[r["label"]].append(i)
rng = random.Random(0)
train, test, small, rest = [], [], [], []
for label in sorted(by):
    idx = by[label][:]
    rng.shuffle(idx)
    k = round(len(idx) * 0.2)
    test += idx[:k]
    tr = idx[k:]
    train += tr
    s = max(2, round(len(tr) * 0.1))
    small += tr[:s]
    rest += tr[s:]
def write(name, idx, labelled=True):
    with open(f"{work}/{name}", "w") as f:
        for i in sorted(idx):
            r = rows[i] if labelled else {"text": rows[i]["text"]}
            f.write(json.dumps(r) + "\n")
write("train.jsonl", train)
write("test.jsonl", test)
write("small.jsonl", small)
write("rest.jsonl", rest, labelled=False)
print(f"train {len(train)}, test {len(test)}, 10%: {len(small)} labelled + {len(rest)} unlabelled")
EOF

printf 'mode = "joint"\n' > "$WORK/joint.toml"
echo "== teacher: embedding-only heads on all-mpnet-base-v2"
"$TANDEM" train --data "$WORK/train.jsonl" --label-field label --task multiclass \
  --mode embedding_only --backbone mpnet-base --quiet --out "$WORK/teacher"

score() { # score BUNDLE -> "macro_f1 accuracy" on the test set
  "$TANDEM" eval --model "$1" --data "$WORK/test.jsonl" --label-field label --json |
    python3 -c 'import json,sys; m=json.load(sys.stdin); t=m.get("tasks",{}).get("label",m); print(t["macro_f1"], t["accuracy"])'
}
echo "teacher $(score "$WORK/teacher")" | tee "$WORK/scores.txt"

for seed in 0 1 2; do
  run() { # run NAME ARGS...
    local name=$1
    shift
    "$TANDEM" train --label-field label --task multiclass --config "$WORK/joint.toml" \
      --seed "$seed" --quiet --out "$WORK/$name-$seed" "$@"
    echo "$name $(score "$WORK/$name-$seed")" | tee -a "$WORK/scores.txt"
  }
  run "all labels" --data "$WORK/train.jsonl"
  run "all labels + teacher" --data "$WORK/train.jsonl" --teacher "$WORK/teacher"
  run "10% labels" --data "$WORK/small.jsonl"
  run "10% labels + teacher + 90% unlabelled" --data "$WORK/small.jsonl" \
    --teacher "$WORK/teacher" --unlabelled "$WORK/rest.jsonl"
done

python3 - "$WORK/scores.txt" "$OUT" <<'EOF'
import statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    name, f1, acc = line.rsplit(" ", 2)
    runs[name].append((float(f1), float(acc)))
def cell(v):
    return f"{statistics.mean(v):.4f}" + (f" ± {statistics.stdev(v):.4f}" if len(v) > 1 else "")
lines = ["| model | runs | test macro-F1 | test accuracy |", "|---|---:|---:|---:|"]
for name, v in runs.items():
    lines.append(f"| {name} | {len(v)} | {cell([f for f, _ in v])} | {cell([a for _, a in v])} |")
table = "\n".join(lines)
print(table)
open(sys.argv[2], "w").write("# Distillation from all-mpnet-base-v2 into all-MiniLM-L6-v2 heads (TREC coarse)\n\n"
    "Written by `scripts/distill.sh`; students: joint heads, seeds 0, 1, 2; teacher: "
    "embedding-only heads on all-mpnet-base-v2; the 20% test split is seen by no model.\n\n" + table + "\n")
EOF
