#!/usr/bin/env bash
# The soak runs at full size (`make soak`, tests/c/soak.c): 8 threads predict while the main
# thread hot-swaps two bundles 1,000 times on the default backbone, every prediction checked
# against the bundle its heads version names; then 1,000,000 predictions through the C ABI on
# the tiny test backbone with VmRSS sampled every 50,000 and bounded after warm-up. Sets up the
# cache first (a no-op when it is there), keeps the whole output in target/soak.log and ends
# with a summary. Minutes, not seconds; `make soak-smoke` (CI size) and `make soak-valgrind` are
# the small versions.
#
#   scripts/soak.sh                    # SOAK_SWAPS, SOAK_PREDICTIONS, SOAK_VARIANT=int8 resize it
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh >/dev/null
mkdir -p target
LOG=target/soak.log
args=()
for v in SOAK_SWAPS SOAK_PREDICTIONS SOAK_VARIANT; do
  if [ -n "${!v:-}" ]; then args+=("$v=${!v}"); fi
done
start=$SECONDS
status=0
make --no-print-directory soak "${args[@]}" 2>&1 | tee "$LOG" || status=$?
echo
echo "== soak summary ($((SECONDS - start)) s; full output in $LOG)"
grep -E '^soak (swaps|rss): [0-9]|^(MISMATCH|ERROR)|^soak: ' "$LOG" || true
grep -E '^ +[0-9]+ +-?[0-9]+ +[0-9]+$' "$LOG" | awk '{printf "  %s predictions: VmRSS %s KiB\n", $1, $2}'
if [ "$status" -ne 0 ]; then
  echo "soak: FAILED (make exited with $status)"
else
  echo "soak: passed"
fi
exit "$status"
