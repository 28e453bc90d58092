#!/usr/bin/env bash
# What self-supervised stage-1 targets and an encoder pre-trained on unlabelled text do to the
# two-stage claims (docs/results.md, "Self-supervised stage-1 targets and pre-training on
# unlabelled text").
#
# For each demo dataset (TREC multiclass, SMS spam binary, BBC multiclass, Reuters multi-label,
# VADER regression; DATASETS="trec bbc" picks some): pre-trains a metadata encoder with
# `tandem pretrain` on the texts of the other four demo datasets (no labels, none of the
# dataset's own texts), then runs `tandem compare` on the same splits and seeds for
#   two_stage, stage 1 on the labels (the default until this measurement),
#   two_stage, stage 1 on the labels and masked features (TREC and SMS spam only),
#   two_stage, stage 1 on self-supervised targets alone (masked features, length, readability),
#   two_stage from the pre-trained encoder (--init-encoder: no stage 1),
#   joint, and joint from the pre-trained encoder,
#   embedding_only (BBC, Reuters, VADER; TREC's and SMS spam's are in the section before),
# each at 10%, 25% and 100% of the training split over 3 seeds. Writes every compare's
# Markdown under $OUT (default docs/measurements/stage1) and prints a summary line per run.
#
# Needs scripts/setup.sh (models, data) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
TANDEM=${TANDEM:-target/release/tandem}
HOME_DIR=${TANDEM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}
DATA=$HOME_DIR/data
OUT=${OUT:-docs/measurements/stage1}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
FRACTIONS=0.1,0.25,1

corpus() { # corpus OUT DATASET... : the texts of those datasets, one per line
  local out=$1
  shift
  python3 - "$out" "$@" <<'EOF'
import json, sys
out, files = sys.argv[1], sys.argv[2:]
with open(out, "w") as f:
    for path in files:
        for line in open(path):
            line = line.strip()
            if line:
                text = " ".join(json.loads(line)["text"].split())
                if text:
                    f.write(text + "\n")
EOF
}

DATASETS=${DATASETS:-trec sms_spam bbc reuters vader}
for ds in $DATASETS; do
  case $ds in
    trec) task=multiclass field=label runs="two_stage:labels two_stage:masked" ;;
    sms_spam) task=binary field=label runs="two_stage:labels two_stage:masked" ;;
    bbc) task=multiclass field=label runs="embedding_only,two_stage,joint:labels" ;;
    reuters) task=multilabel field=labels runs="embedding_only,two_stage,joint:labels" ;;
    vader) task=regression field=rating runs="embedding_only,two_stage,joint:labels" ;;
    *) echo "unknown dataset $ds" >&2; exit 2 ;;
  esac
  case $ds in
    trec | sms_spam) runs="$runs two_stage:selfsup two_stage:pretrained joint:labels joint:pretrained" ;;
    *) runs="$runs two_stage:selfsup two_stage,joint:pretrained" ;;
  esac
  others=()
  for o in trec sms_spam bbc reuters vader; do
    [ "$o" = "$ds" ] || others+=("$DATA/$o.jsonl")
  done
  corpus "$WORK/corpus-$ds.txt" "${others[@]}"
  echo "== $ds: pre-training on $(wc -l < "$WORK/corpus-$ds.txt") unlabelled texts"
  "$TANDEM" pretrain --data "$WORK/corpus-$ds.txt" --seed 0 --quiet \
    --targets masked_features,length,readability --out "$WORK/encoder-$ds"
  "$TANDEM" inspect "$WORK/encoder-$ds" | grep '^metrics' | tee "$OUT/$ds-encoder.txt"

  printf '[metadata]\nstage1_targets = ["labels"]\n' > "$WORK/labels.toml"
  printf '[metadata]\nstage1_targets = ["labels", "masked_features"]\n' > "$WORK/masked.toml"
  printf '[metadata]\nstage1_targets = ["masked_features", "length", "readability"]\n' > "$WORK/selfsup.toml"
  printf '[metadata]\ninit_encoder = "%s"\n' "$WORK/encoder-$ds" > "$WORK/pretrained.toml"
  for run in $runs; do
    modes=${run%%:*}
    cfg=${run##*:}
    echo "-- $ds $modes $cfg"
    # The file keeps the old name where one mode runs (two_stage-labels.md, ...).
    "$TANDEM" compare --data "$DATA/$ds.jsonl" --label-field "$field" --task "$task" \
      --modes "$modes" --config "$WORK/$cfg.toml" --seeds 3 --fractions "$FRACTIONS" \
      --quiet --markdown "$OUT/$ds-${modes//,/-}-$cfg.md" \
      | sed -n '/sample efficiency/,$p' | sed "s/\$/  ($cfg)/"
  done
done
