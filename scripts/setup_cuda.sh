#!/usr/bin/env bash
# Optional CUDA add-on to scripts/setup.sh, for machines with an NVIDIA GPU (driver for CUDA 13):
#
#   scripts/setup_cuda.sh                       # idempotent; needs scripts/setup.sh's cache
#   source ~/.cache/tandem/ort-cuda/env.sh      # then: tandem doctor --device cuda
#
# Installs, from PyPI only, into $CACHE/ort-cuda/py (pip --target; the pinned tooling venv is not
# touched):
#   onnxruntime-gpu   ONNX Runtime 1.31.x with the CUDA execution provider (CUDA 13 build)
#   nvidia-curand     a CUDA 13 runtime library that provider needs
#   cudart, cublas, cufft, cudnn (onnx/requirements-cuda-libs.txt), unless the venv already has
#                     them (PyTorch's CUDA build brings them with `scripts/setup.sh --baselines`)
# and writes env.sh, which points TANDEM_ORT_LIB at the CUDA build, puts the CUDA libraries on
# LD_LIBRARY_PATH, and sets TANDEM_BENCH_PYTHON to a Python whose onnxruntime has CUDA (the
# baseline of `TANDEM_BENCH_DEVICE=cuda cargo bench --bench embed` and scripts/cuda_check.sh).
# Without a GPU the libraries still load, and asking for CUDA fails with a clear error.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${TANDEM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}
VENV=$CACHE/venv
DEST=$CACHE/ort-cuda
REQ=$ROOT/onnx/requirements-cuda.txt
LIBS_REQ=$ROOT/onnx/requirements-cuda-libs.txt

say() { printf '[setup-cuda] %s\n' "$*"; }
die() { printf '[setup-cuda] error: %s\n' "$*" >&2; exit 1; }

[ -x "$VENV/bin/python" ] || die "no tooling venv in $VENV: run scripts/setup.sh first"

site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
reqs=("$REQ")
[ -d "$site/nvidia/cudnn" ] || reqs+=("$LIBS_REQ")
want=$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$DEST/.tandem-requirements" 2>/dev/null)" != "$want" ]; then
    say "installing $(basename -a "${reqs[@]}" | paste -sd' ') into $DEST/py"
    rm -rf "$DEST"
    mkdir -p "$DEST"
    # --no-deps: their Python dependencies (numpy, ...) are the venv's; the CUDA libraries the
    # venv already has are not fetched twice.
    # One pip run: a second --target run would skip the nvidia/ folder the first one made.
    args=()
    for r in "${reqs[@]}"; do args+=(-r "$r"); done
    "$VENV/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check \
        --no-deps --only-binary=:all: --target "$DEST/py" "${args[@]}"
    echo "$want" > "$DEST/.tandem-requirements"
else
    say "onnxruntime-gpu up to date"
fi

lib=$(ls "$DEST"/py/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | sort | tail -1)
[ -n "$lib" ] || die "libonnxruntime.so.1.* not found in $DEST/py/onnxruntime/capi"
[ -f "$(dirname "$lib")/libonnxruntime_providers_cuda.so" ] || die "the wheel has no CUDA provider"
libdirs=$(find "$DEST/py/nvidia" "$site/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
[ -n "$libdirs" ] || die "no CUDA runtime libraries found under $site/nvidia"

cat > "$DEST/python" <<EOF
#!/bin/sh
# The tooling venv's Python with the CUDA build of onnxruntime first on its path.
PYTHONPATH="$DEST/py\${PYTHONPATH:+:\$PYTHONPATH}" exec "$VENV/bin/python" "\$@"
EOF
chmod +x "$DEST/python"
cat > "$DEST/env.sh" <<EOF
# Source this to run tandem on CUDA: written by scripts/setup_cuda.sh.
export TANDEM_ORT_LIB="$lib"
export LD_LIBRARY_PATH="$libdirs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export TANDEM_BENCH_PYTHON="$DEST/python"
EOF
say "done: source $DEST/env.sh, then tandem doctor --device cuda (build with --features cuda)"
