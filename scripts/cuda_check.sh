#!/usr/bin/env bash
# The CUDA execution-provider checks, for a machine with an NVIDIA GPU:
#
#   scripts/setup_cuda.sh && scripts/cuda_check.sh [OUT]
#
# (or with TANDEM_ORT_LIB naming any CUDA build of libonnxruntime 1.31 and the CUDA libraries on
# the loader path).
# Runs, with TANDEM_EXPECT_CUDA=1 (CUDA must load; no test may fall back to the CPU):
#   1. `tandem doctor --device cuda`: every graph loads and embeds on the GPU;
#   2. tests/cuda.rs: reference parity of the fp32 and opt graphs on CUDA, CUDA = CPU,
#      batching, token embeddings, many threads, a missing GPU, ONNX heads and a bundle with a
#      fine-tuned top layer served on CUDA as on the CPU; and the CUDA tests in tests/errors.rs
#      (CUDA loads; the CPU-only int8 graph is refused on it);
#   3. `tandem train --device cuda` on the TREC demo set, timed, frozen and with the top 2 layers
#      fine-tuned (`--trainable-layers 2`);
#   4. the embed bench on CUDA (`TANDEM_BENCH_DEVICE=cuda`): tandem vs onnxruntime-python, both on
#      the GPU, and vs tandem on the CPU, at batch 1, 32 and 128.
# Logs and JSON go to OUT (default target/cuda-check). Needs scripts/setup.sh's cache, the CUDA
# runtime libraries (libcudart, libcublas, ...) on the loader path, and for step 4 a Python whose
# onnxruntime has CUDA (TANDEM_BENCH_PYTHON, default python3); setup_cuda.sh's env.sh sets all
# three.
#
# TANDEM_CUDA_BIN may name a folder with prebuilt `--features cuda` binaries (tandem, cuda,
# errors, embed: the CLI, the two test binaries and the bench), for a GPU machine without a Rust
# toolchain; otherwise cargo builds them. TANDEM_CUDA_STEPS picks steps (default "1 2 3 4").
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-target/cuda-check}
mkdir -p "$OUT"
env_sh=${TANDEM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}/ort-cuda/env.sh
# shellcheck source=/dev/null
if [ -z "${TANDEM_ORT_LIB:-}" ] && [ -f "$env_sh" ]; then source "$env_sh"; fi
: "${TANDEM_ORT_LIB:?set TANDEM_ORT_LIB to a CUDA build of libonnxruntime (scripts/setup_cuda.sh installs one)}"
export TANDEM_ORT_LIB TANDEM_EXPECT_CUDA=1
STEPS=${TANDEM_CUDA_STEPS:-1 2 3 4}
failed=()

if [ -n "${TANDEM_CUDA_BIN:-}" ]; then
    BIN=$TANDEM_CUDA_BIN
else
    BIN=target/cuda-check/bin
    mkdir -p "$BIN"
    cargo build --release --quiet --features cuda --bin tandem || exit 1
    cp target/release/tandem "$BIN/tandem"
    for t in cuda errors; do
        exe=$(cargo test --release --quiet --features cuda --test "$t" --no-run --message-format=json |
            python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("executable") and m.get("target", {}).get("kind") == ["test"]: print(m["executable"])')
        cp "$exe" "$BIN/$t"
    done
    exe=$(cargo bench --quiet --features cuda --bench embed --no-run --message-format=json |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("executable") and m.get("target", {}).get("kind") == ["bench"]: print(m["executable"])')
    cp "$exe" "$BIN/embed"
fi

step() { # name, command...: runs one step, its output teed to OUT/name.log
    local name=$1
    shift
    echo "== $name"
    if "$@" 2>&1 | tee "$OUT/$name.log"; then
        echo "== $name: ok"
    else
        echo "== $name: FAILED"
        failed+=("$name")
    fi
}

if [[ " $STEPS " == *" 1 "* ]]; then
    step doctor "$BIN/tandem" doctor --device cuda
    "$BIN/tandem" doctor --device cuda --json > "$OUT/doctor.json" 2>/dev/null
fi
if [[ " $STEPS " == *" 2 "* ]]; then
    step tests "$BIN/cuda" --test-threads 1 --nocapture
    step errors-test "$BIN/errors" cuda_where_it_cannot_run_is_an_error_not_a_cpu_fallback \
        the_cpu_int8_graph_is_refused_on_cuda
fi
if [[ " $STEPS " == *" 3 "* ]]; then
    data=${TANDEM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}/data
    model=$(mktemp -d)/trec
    train() {
        local t0=$SECONDS
        "$BIN/tandem" train --device cuda --no-cache --data "$data/trec.jsonl" --text-field text \
            --label-field label --task multiclass --mode two_stage --out "$model" --seed 0 --quiet &&
            "$BIN/tandem" eval --device cuda --model "$model" --data "$data/trec.jsonl" \
                --text-field text --label-field label --json > "$OUT/train-eval.json" &&
            echo "train + eval on CUDA: $((SECONDS - t0)) s wall" &&
            python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("accuracy", m["accuracy"], "macro_f1", m["macro_f1"])' "$OUT/train-eval.json"
    }
    step train train
    # The top 2 layers fine-tuned natively over the bottom graph run on CUDA, then served
    # there from the bundle's own graph.
    finetune() {
        local t0=$SECONDS
        "$BIN/tandem" train --device cuda --no-cache --trainable-layers 2 --data "$data/trec.jsonl" \
            --text-field text --label-field label --task multiclass --mode embedding_only \
            --out "$model-k2" --seed 0 --quiet &&
            "$BIN/tandem" eval --device cuda --model "$model-k2" --data "$data/trec.jsonl" \
                --text-field text --label-field label --json > "$OUT/finetune-eval.json" &&
            echo "fine-tune (K = 2) + eval on CUDA: $((SECONDS - t0)) s wall" &&
            python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("accuracy", m["accuracy"], "macro_f1", m["macro_f1"])' "$OUT/finetune-eval.json"
    }
    step finetune finetune
fi
if [[ " $STEPS " == *" 4 "* ]]; then
    bench() {
        TANDEM_BENCH_DEVICE=cuda TANDEM_BENCH_PYTHON=${TANDEM_BENCH_PYTHON:-python3} \
            TANDEM_BENCH_SECONDS=${TANDEM_BENCH_SECONDS:-0.5} TANDEM_BENCH_ROUNDS=${TANDEM_BENCH_ROUNDS:-3} \
            "$BIN/embed" --bench && cp target/bench/embed-cuda.json "$OUT/"
    }
    step bench bench
fi

if [ ${#failed[@]} -eq 0 ]; then
    echo "cuda_check: all steps passed"
else
    echo "cuda_check: FAILED: ${failed[*]}"
    exit 1
fi
