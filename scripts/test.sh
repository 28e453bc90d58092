#!/usr/bin/env bash
# Every test: setup (idempotent), formatting and lints, Rust unit + integration tests (parity with
# the reference embeddings included), the dataset converters' Python tests, and the C ABI from
# C (natively and under valgrind), C++ and Go, with the examples and installed-prefix builds,
# a short soak (hot swaps under load, RSS over many predictions), a smoke run of every fuzz target,
# the `cuda` feature against ONNX Runtime's CUDA build (no GPU: CUDA must fail cleanly), and
# `tandem train --report` pages checked in headless Chromium.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# A one-shot CI build gains nothing from incremental state, and it costs ~1.5 GB of disk.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
scripts/setup.sh --tests --baselines
scripts/system_deps.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
# The shared library too (cargo test builds only the rlib): tests/pack.rs packs it.
cargo build --lib --quiet
cargo test --all-targets
cargo test --doc
echo "== dataset converter tests"
(cd scripts && python3 -m unittest -q test_datasets)
echo "== backbone graph builder tests (onnx/test_bert_graph.py, onnx/test_export.py)"
(cd onnx && "${TANDEM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}/venv/bin/python" -m unittest -q test_bert_graph test_export)
echo "== PyTorch reference scripts (full fine-tune, sequence-head prototype)"
(cd scripts && python3 -m unittest -q test_pyref)
echo "== CLI smoke test"
cargo build --quiet --bin tandem
./target/debug/tandem doctor >/dev/null
printf 'hello\n\nworld\n' | ./target/debug/tandem embed --variant int8 | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert [r["index"] for r in rows] == [0, 1, 2], rows
assert all(len(r["embedding"]) == 384 for r in rows)
print("cli: 3 passed, 0 failed")'
echo "== C tests (tests/c), C example, C++ header check"
make --no-print-directory test-c
echo "== C API test under valgrind"
make --no-print-directory test-c-valgrind
echo "== soak, CI size: 8 threads predicting through 100 hot swaps; RSS over 50,000 predictions"
# The full runs (1,000 swaps, 1,000,000 predictions) are scripts/soak.sh; docs/reliability.md.
make --no-print-directory soak-smoke
echo "== fuzz smoke: every target builds, replays its seeds and regressions, and fuzzes 5 s"
# Unoptimized and without ASan, to keep CI short; the long runs (10 million executions per
# target, c_abi under ASan) are scripts/fuzz.sh by hand: docs/reliability.md.
FUZZ_ASAN=0 scripts/fuzz.sh --smoke --dev
echo "== make install: the C (pkg-config), C++ (CMake find_package) and Go (pkg-config) examples against an installed prefix"
make --no-print-directory test-install
echo "== C++ binding (bindings/cpp)"
TANDEM_RUN_EXAMPLE=1 bindings/cpp/run_test.sh
echo "== Go binding (bindings/go)"
scripts/go_test.sh
echo "== the cuda feature, against ONNX Runtime's CUDA build (scripts/setup_cuda.sh)"
# No GPU here: every CUDA test checks that asking for CUDA is a clear error, never a CPU fallback.
# scripts/cuda_check.sh runs the same tests where a GPU is (TANDEM_EXPECT_CUDA=1).
scripts/setup_cuda.sh
cargo clippy --features cuda --all-targets --quiet -- -D warnings
(
    # shellcheck source=/dev/null
    source "${TANDEM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}/ort-cuda/env.sh"
    cargo test --features cuda --test cuda --test errors
)
echo "== training reports in headless Chromium (scripts/report_test.sh)"
scripts/report_test.sh
echo "all tests passed"
