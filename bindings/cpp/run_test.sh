#!/usr/bin/env bash
# Builds the C++ binding test and the C++ examples, then runs the test.
#
#   bindings/cpp/run_test.sh                 # build libtandem (cargo), the test and the examples; run the test
#   TANDEM_VALGRIND=1 bindings/cpp/run_test.sh   # also run the test under valgrind (if installed;
#                                                # slow: ~10+ minutes with the real backbone)
#   TANDEM_RUN_EXAMPLE=1 bindings/cpp/run_test.sh  # also run examples/cpp/classify on its default data
#                                                  # and examples/cpp/hello (docs/guide.md's program),
#                                                  # checking what hello prints
#
# Environment: CXX (default g++), TANDEM_SKIP_CARGO=1 (use the library already built),
# TANDEM_CPP_BUILD (output folder, default bindings/cpp/build), TANDEM_TREC (TREC JSONL path).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${TANDEM_CPP_BUILD:-$here/build}"
libdir="$root/target/release"
cxx="${CXX:-g++}"

if [[ "${TANDEM_SKIP_CARGO:-0}" != 1 ]]; then
  (cd "$root" && cargo build --release --lib)
fi

flags=(-std=c++17 -Wall -Wextra -Werror -pedantic -g -O1 -pthread
       -I"$root/include" -I"$here" -I"$root/examples/cpp")
link=(-L"$libdir" -ltandem -Wl,-rpath,"$libdir")

mkdir -p "$build"
echo "building $build/test, $build/classify and $build/hello with $cxx"
"$cxx" "${flags[@]}" "$here/test.cpp" -o "$build/test" "${link[@]}"
"$cxx" "${flags[@]}" "$root/examples/cpp/classify.cpp" -o "$build/classify" "${link[@]}"
"$cxx" "${flags[@]}" "$root/examples/cpp/hello.cpp" -o "$build/hello" "${link[@]}"

echo "running $build/test"
"$build/test"

if [[ "${TANDEM_VALGRIND:-0}" == 1 ]]; then
  if command -v valgrind >/dev/null 2>&1; then
    # The suppressions are two known false positives outside tandem and this binding (glibc's
    # loader and ONNX Runtime's self-memcpy), each explained in tests/c/valgrind.supp, shared with the C tests;
    # TANDEM_VALGRIND_SUPP=0 runs without them. Small mode keeps the run to minutes.
    supp=()
    if [[ "${TANDEM_VALGRIND_SUPP:-1}" != 0 ]]; then supp=(--suppressions="$root/tests/c/valgrind.supp"); fi
    echo "running $build/test under valgrind (small mode)"
    TANDEM_CPP_TEST_SMALL=1 valgrind --leak-check=full --errors-for-leak-kinds=definite,possible \
      --error-exitcode=1 --fair-sched=yes "${supp[@]}" "$build/test"
  else
    echo "TANDEM_VALGRIND=1 but valgrind is not installed: skipped" >&2
  fi
fi

if [[ "${TANDEM_RUN_EXAMPLE:-0}" == 1 ]]; then
  echo "running $build/classify"
  "$build/classify" --bundle "$build/classify-bundle"
  # The guide's complete program: it saves hello-bundle in its working directory and must
  # classify both texts as the C version does.
  echo "running $build/hello"
  (cd "$build" && ./hello) | tee "$build/hello.out"
  grep -Eq '^billing +billing=[0-9.]+ technical=[0-9.]+  you billed me two times$' "$build/hello.out"
  grep -Eq "^technical +billing=[0-9.]+ technical=[0-9.]+  the app won't start$" "$build/hello.out"
  [ "$(wc -l < "$build/hello.out")" -eq 2 ]
  [ -f "$build/hello-bundle/manifest.json" ]
fi
