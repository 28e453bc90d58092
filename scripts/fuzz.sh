#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted bytes (the targets in fuzz/, cargo-fuzz and
# libFuzzer on the stable toolchain; fuzz/README.md says what each one checks). Installs the
# pinned cargo-fuzz if needed, builds the targets (c_abi with AddressSanitizer, through
# RUSTC_BOOTSTRAP=1; the others without a sanitizer), then runs them one at a time and prints,
# per target, the executions, exec/s, coverage (cov: code edges, ft: features) and the result.
# Each run starts from the target's seeds (fuzz/seeds/<target>/) and regression inputs
# (fuzz/regressions/<target>/), and writes what it finds to a scratch corpus outside git
# (fuzz/corpus/<target>/, or $FUZZ_CORPUS/<target>/), so the repository never grows. A crash,
# panic, failed check, timeout (10 s per input) or out-of-memory (2 GB) fails the run; its input
# is saved under fuzz/artifacts/<target>/ (move it to fuzz/regressions/<target>/, see the
# README).
#
# Usage: scripts/fuzz.sh [--smoke] [--dev] [--runs N] [SECONDS] [TARGET...]
#   SECONDS   how long to fuzz each target (default 60; 5 with --smoke)
#   --smoke   the short mode for CI: a few seconds per target, seeds and regressions replayed
#   --runs N  stop each target after N executions instead (e.g. --runs 10000000)
#   --dev     unoptimized builds (minutes instead of ~10 per build, far fewer exec/s): for the
#             CI smoke, which only needs each target to build and run
#   TARGET    only these targets (default: all)
# Environment: FUZZ_CORPUS (scratch corpus root), FUZZ_NICE (niceness, default 10),
# FUZZ_ASAN=0 (build c_abi without AddressSanitizer).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_FUZZ_VERSION=0.13.2
TARGETS=(bundle bundle_arch backbone_manifest trainer_spec onnx_graph pooled_cache token_cache jsonl csv metadata c_abi)

seconds=""
runs=""
smoke=0
profile=()
selected=()
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) smoke=1 ;;
        --dev) profile=(--dev) ;;
        --runs) runs="$2"; shift ;;
        --runs=*) runs="${1#--runs=}" ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *)
            if [[ "$1" =~ ^[0-9]+$ ]]; then
                seconds="$1"
            elif [[ " ${TARGETS[*]} " == *" $1 "* ]]; then
                selected+=("$1")
            else
                echo "unknown target $1 (targets: ${TARGETS[*]})" >&2
                exit 2
            fi
            ;;
    esac
    shift
done
[ ${#selected[@]} -gt 0 ] || selected=("${TARGETS[@]}")
if [ -z "$seconds" ]; then
    if [ "$smoke" = 1 ]; then seconds=5; else seconds=60; fi
fi
fuzz="$PWD/fuzz"
corpus_root="$(realpath -m "${FUZZ_CORPUS:-$fuzz/corpus}")"
nice_level="${FUZZ_NICE:-10}"
asan="${FUZZ_ASAN:-1}"
# Unoptimized runs keep their logs apart, so a smoke run never clobbers a long run's.
if [ ${#profile[@]} -gt 0 ]; then logs="$fuzz/target/logs-dev"; else logs="$fuzz/target/logs"; fi
mkdir -p "$logs"

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# How each target is built: its sanitizer, and the target directory of that build (a build
# with other flags in the same directory would rebuild every dependency each time).
sanitizer_of() {
    if [ "$1" = c_abi ] && [ "$asan" = 1 ]; then echo address; else echo none; fi
}
# cargo fuzz with the build flags of target $1, run in fuzz/. RUSTC_BOOTSTRAP lets the stable
# compiler take -Zsanitizer; only the ASan build needs it.
cargo_fuzz() {
    local t="$1" cmd="$2"
    shift 2
    if [ "$(sanitizer_of "$t")" = address ]; then
        (cd "$fuzz" && RUSTC_BOOTSTRAP=1 nice -n "$nice_level" cargo fuzz "$cmd" \
            "${profile[@]}" --sanitizer address --target-dir "$fuzz/target/asan" "$@")
    else
        (cd "$fuzz" && nice -n "$nice_level" cargo fuzz "$cmd" "${profile[@]}" \
            --sanitizer none "$@")
    fi
}

echo "== building fuzz targets"
built_plain=0
for t in "${selected[@]}"; do
    if [ "$(sanitizer_of "$t")" = address ]; then
        cargo_fuzz "$t" build "$t"
    elif [ "$built_plain" = 0 ]; then
        # One build of the whole package makes every target's binary.
        cargo_fuzz "$t" build
        built_plain=1
    fi
done

# Scratch files of the cache targets (/dev/shm/tandem-fuzz-<target>-<pid>) of finished runs.
clean_scratch() {
    local d pid
    for d in /dev/shm/tandem-fuzz-"$1"-* "${TMPDIR:-/tmp}"/tandem-fuzz-"$1"-*; do
        [ -d "$d" ] || continue
        pid="${d##*-}"
        if ! kill -0 "$pid" 2>/dev/null; then rm -rf "$d"; fi
    done
}

stat_of() { # stat_of LOG NAME: a final libFuzzer statistic
    sed -n "s/^stat::$2: *//p" "$1" | tail -n 1
}

summary=()
failed=0
for t in "${selected[@]}"; do
    corpus="$corpus_root/$t"
    mkdir -p "$corpus" "$fuzz/artifacts/$t"
    dirs=("$corpus")
    for d in "$fuzz/seeds/$t" "$fuzz/regressions/$t"; do
        if [ -d "$d" ]; then dirs+=("$d"); fi
    done
    args=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    if [ -n "$runs" ]; then
        args+=(-runs="$runs")
        budget="$runs runs"
    else
        args+=(-max_total_time="$seconds")
        budget="$seconds s"
    fi
    if [ -f "$fuzz/dicts/$t.dict" ]; then args+=(-dict="$fuzz/dicts/$t.dict"); fi
    # Bundles grow past libFuzzer's default size limit (the largest seed) as tensors are added.
    if [ "$t" = bundle ]; then args+=(-max_len=16384); fi
    log="$logs/$t.log"
    echo "== fuzzing $t ($(sanitizer_of "$t") sanitizer, $budget); log: $log"
    start=$(date +%s)
    if cargo_fuzz "$t" run "$t" "${dirs[@]}" -- "${args[@]}" >"$log" 2>&1; then
        result=ok
    else
        result="FAILED (exit $?)"
        failed=1
    fi
    wall=$(( $(date +%s) - start ))
    clean_scratch "$t"
    execs=$(stat_of "$log" number_of_executed_units)
    rate=$(stat_of "$log" average_exec_per_sec)
    line=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$line")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$line")
    if [ "$result" = ok ] && [ "${execs:-0}" -eq 0 ]; then
        result="FAILED (no executions)"
        failed=1
    fi
    if [ "$result" != ok ]; then
        grep -E "panicked|ERROR: libFuzzer|SUMMARY|^==[0-9]+==ERROR|Test unit written" "$log" \
            | head -n 20 || true
        echo "   (full log: $log; crashing inputs: $fuzz/artifacts/$t/)"
    fi
    summary+=("$(printf '%-18s %12s %8s %9s %7s %8s  %s' "$t" "${execs:-?}" "${wall}s" \
        "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result")")
    echo "${summary[-1]}"
done

echo
printf '%-18s %12s %8s %9s %7s %8s  %s\n' target executions wall exec/s cov ft result
printf '%s\n' "${summary[@]}"
exit "$failed"
