#!/usr/bin/env bash
# Dropout on the fine-tuned layers, on or off: TREC coarse, K = 2, the recipe scripts/finetune.py
# chose (embedding-only pooled head, label smoothing 0.1, 5 epochs, layer lr 2e-4), seeds 0-2,
# `[backbone] dropout` 0 and 0.1. Prints one line per run: the validation macro-F1 tandem
# reports (the validation split follows the seed) and the test macro-F1 on the held-out 20%.
# Needs scripts/finetune.py to have run first (its split in target/finetune/trec) and
# `cargo build --release`. About 6 minutes on 2 idle cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tandem=$root/target/release/tandem
cd "$root/target/finetune/trec"
for seed in 0 1 2; do
    for d in 0.0 0.1; do
        printf 'mode = "embedding_only"\n\n[loss]\nlabel_smoothing = 0.1\n\n[head.stage]\nepochs = 5\n\n[backbone]\nlr = 0.0002\ndropout = %s\n' "$d" > "dropout-$d.toml"
        out=$(mktemp -d)
        v=$("$tandem" train --data train.jsonl --label-field label --task multiclass --out "$out/m" \
            --config "dropout-$d.toml" --seed "$seed" --trainable-layers 2 --quiet 2>&1 | tail -1 |
            grep -o "macro_f1 [0-9.]*")
        t=$("$tandem" eval --model "$out/m" --data test.jsonl --label-field label --json 2>/dev/null |
            python3 -c "import json,sys; print(round(json.load(sys.stdin)['macro_f1'], 4))")
        echo "seed $seed dropout $d: valid ${v#macro_f1 } test $t"
        rm -rf "$out"
    done
done
