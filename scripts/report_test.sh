#!/usr/bin/env bash
# `tandem train --report` end to end in a real browser: trains small models on slices of the demo
# datasets (multiclass TREC, binary SMS spam, multi-label Reuters, regression VADER, so every
# chart kind appears), opens each report in headless Chromium and fails unless the page's own
# self-check reports every expected chart drawn with its data, no script or console error and no
# blocked load; saves a screenshot of each under target/report-test/. Also checks the
# `--log-format json` events and that logs carry no progress-bar escapes when stderr is a file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA="${TANDEM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}/data"
OUT=target/report-test

fail() { echo "report test FAILED: $*" >&2; exit 1; }

if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    echo "installing Debian's chromium"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
command -v chromium >/dev/null || fail "chromium is not installed"
for f in trec sms_spam reuters vader; do
    [ -s "$DATA/$f.jsonl" ] || fail "$DATA/$f.jsonl missing (run scripts/setup.sh)"
done

cargo build --quiet --bin tandem
BIN=./target/debug/tandem
rm -rf "$OUT"
mkdir -p "$OUT"
head -n 600 "$DATA/trec.jsonl" >"$OUT/trec.jsonl"
head -n 600 "$DATA/sms_spam.jsonl" >"$OUT/sms_spam.jsonl"
awk 'NR % 3 == 1' "$DATA/reuters.jsonl" >"$OUT/reuters.jsonl"   # ~720 rows, ~50 grain
awk 'NR % 40 == 1' "$DATA/vader.jsonl" >"$OUT/vader.jsonl"      # ~590 rows over all sources

# name, expected charts (space-separated), then the train arguments.
train() {
    local name=$1 charts=$2
    shift 2
    echo "$charts" >"$OUT/$name.expected"
    if ! "$BIN" train --out "$OUT/$name.bundle" --report "$OUT/$name.html" --seed 1 "$@" \
        2>"$OUT/$name.log"; then
        cat "$OUT/$name.log" >&2
        fail "$name: training failed"
    fi
    # stderr is a file here: no bars, so no carriage returns or terminal escapes.
    if grep -q $'\r\|\x1b\[' "$OUT/$name.log"; then
        fail "$name: progress-bar output in a non-terminal log"
    fi
}

echo "== training four small models with --report"
# Stage 1 trains on self-supervised targets by default (no task metric, so no metric chart);
# reuters's stage 1 trains on the labels, which draws one.
printf '[metadata]\nstage1_targets = ["labels"]\n' >"$OUT/stage1-labels.toml"
train trec "loss-stage1 loss-stage2 metric-stage2 confusion-label per-class-label reliability-label" \
    --data "$OUT/trec.jsonl" --label-field label --task multiclass --mode two_stage --report-by fine \
    --log-format json
train sms "loss-heads metric-heads confusion-label per-class-label reliability-label threshold-label" \
    --data "$OUT/sms_spam.jsonl" --label-field label --task binary --mode embedding_only
train reuters "loss-stage1 metric-stage1 loss-stage2 metric-stage2 per-label-labels reliability-labels threshold-labels" \
    --data "$OUT/reuters.jsonl" --label-field labels --task multilabel --mode two_stage \
    --config "$OUT/stage1-labels.toml"
train vader "loss-joint metric-joint scatter-rating" \
    --data "$OUT/vader.jsonl" --label-field rating --task regression --mode joint --report-by source

echo "== JSON log events"
python3 - "$OUT/trec.log" <<'EOF'
import json, sys
events = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
kinds = [e["event"] for e in events]
assert kinds[0] == "embed" and kinds[-1] == "done", kinds
epochs = [e for e in events if e["event"] == "epoch"]
assert {e["stage"] for e in epochs} == {"stage1", "stage2"}, epochs[:2]
assert all(e["metric"] is not None for e in epochs if e["stage"] == "stage2"), epochs
for e in epochs:
    for k in ("stage", "epoch", "epochs", "train_loss", "valid_loss", "metric", "lr", "elapsed"):
        assert k in e, (k, e)
    # Stage 1 trains on self-supervised targets by default: no task metric there.
    if e["stage"] == "stage1" and e["metric"] is None:
        continue
    assert 0.0 <= e["metric"] <= 1.0 and e["metric_name"] == "macro-F1", e
done = events[-1]
assert done["command"] == "train" and 0.0 < done["metrics"]["macro_f1"] <= 1.0, done
assert done["report"].endswith("trec.html"), done
print(f"json log: {len(events)} events, {len(epochs)} epochs")
EOF

# Headless Chromium with a throwaway profile and no name resolution at all: the page must need
# nothing but itself.
browse() {
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --host-resolver-rules="MAP * ~NOTFOUND" --user-data-dir="$OUT/chromium-profile" \
        --enable-logging=stderr --v=0 "$@"
}

echo "== opening each report in headless Chromium"
passed=0
for name in trec sms reuters vader; do
    page="file://$PWD/$OUT/$name.html"
    browse --virtual-time-budget=10000 --dump-dom "$page" >"$OUT/$name.dom" 2>"$OUT/$name.chromium.log" \
        || fail "$name: chromium --dump-dom failed (see $OUT/$name.chromium.log)"
    if grep -E ':CONSOLE|Uncaught|Refused to' "$OUT/$name.chromium.log"; then
        fail "$name: the page logged to the console or had a load refused"
    fi
    python3 - "$OUT/$name.dom" "$OUT/$name.expected" <<'EOF' || fail "$name: self-check failed"
import html, json, re, sys
dom = open(sys.argv[1]).read()
expected = open(sys.argv[2]).read().split()
m = re.search(r'<div id="report-check"([^>]*)>(.*?)</div>', dom, re.S)
assert m, "no #report-check element: the self-check script did not run"
attrs, body = m.group(1), json.loads(html.unescape(m.group(2)))
status = re.search(r'data-status="(\w+)"', attrs)
assert status and status.group(1) == "ok", body
charts = re.findall(r'<figure class="plot" data-plot="([^"]+)"', dom)
assert charts == expected, f"charts {charts}, expected {expected}"
assert body["plots"] == len(expected) and not body["problems"] and not body["errors"], body
print(f"{sys.argv[1]}: {len(charts)} charts drawn, no errors")
EOF
    browse --screenshot="$OUT/$name.png" --window-size=1400,4000 "$page" \
        >/dev/null 2>>"$OUT/$name.chromium.log" || fail "$name: screenshot failed"
    [ -s "$OUT/$name.png" ] || fail "$name: empty screenshot"
    passed=$((passed + 1))
done
echo "screenshots: $OUT/*.png"
echo "report: $passed passed, 0 failed"
