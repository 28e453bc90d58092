#!/usr/bin/env bash
# The main job: set up (idempotent), build, check the install, then train a question-type
# classifier on the TREC demo questions (the recipe chosen by validation within a minute), report
# its held-out validation metrics, and classify new questions.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
cargo build --release --quiet --bin tandem --example neighbours
T=./target/release/tandem
DATA=${TANDEM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}/data
$T doctor
echo
echo "== training a question-type classifier on TREC (6 classes; 20% held out for validation;"
echo "   the recipe chosen on it within --budget 60 seconds)"
$T train --data "$DATA/trec.jsonl" --text-field text --label-field label --task multiclass \
    --out target/demo/trec --seed 0 --budget 60
python3 - target/demo/trec/manifest.json <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(f"validation ({m['n_valid']} questions): accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}, "
      f"trained in {m['train_seconds']:.1f}s")
for c in m["per_class"]:
    print(f"  {c['label']:5s} precision {c['precision']:.3f} recall {c['recall']:.3f} f1 {c['f1']:.3f} (n={c['support']})")
PY
echo
echo "== predictions for new questions"
printf '%s\n' "Who invented the telephone?" "How many kilometres are in a mile?" \
    "What does CPU stand for?" "Where is the Eiffel Tower?" "Why do cats purr?" \
    "What is the best way to learn Rust?" > target/demo/questions.txt
$T predict --model target/demo/trec target/demo/questions.txt > target/demo/predictions.jsonl
python3 - target/demo/questions.txt target/demo/predictions.jsonl <<'PY'
import json, sys
questions = open(sys.argv[1]).read().splitlines()
for q, line in zip(questions, open(sys.argv[2])):
    p = json.loads(line)["predictions"][0]
    print(f"  {p['labels'][0]:5s} {max(p['probabilities']):.2f}  {q}")
PY
echo
echo "== nearest neighbours in embedding space"
./target/release/examples/neighbours --variant int8
