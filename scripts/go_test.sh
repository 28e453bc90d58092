#!/usr/bin/env bash
# The Go binding's checks: installs Go if missing (Debian's golang-go), sets up the cache and
# builds the release library (both no-ops when up to date), then gofmt, go vet and go test in
# bindings/go, then builds and runs the Go examples (examples/go, and examples/go/hello, the
# program docs/guide.md quotes) and checks what they print.
#
#   scripts/go_test.sh             # GO_TEST_RACE=1 also runs the tests under the race detector
#
# Standard library only: no Go module is downloaded (GOFLAGS=-mod=mod, GOTOOLCHAIN=local).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
say() { printf '== %s\n' "$*"; }

if ! command -v go >/dev/null; then
    say "installing Go (apt-get install golang-go)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null; then
        $sudo apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
    fi
fi
go version
# go.mod says 1.19 (Debian bookworm's Go); older toolchains fail with confusing errors.
minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "${minor:-0}" -lt 19 ] 2>/dev/null; then
    echo "error: Go 1.19 or newer is needed, found $(go env GOVERSION)" >&2
    exit 1
fi

say "setup (cache, models, demo data)"
scripts/setup.sh >/dev/null

if command -v cargo >/dev/null; then
    say "cargo build --release --lib"
    cargo build --release --lib --quiet
elif [ ! -f target/release/libtandem.so ]; then
    echo "error: target/release/libtandem.so is missing and cargo is not installed" >&2
    exit 1
fi

say "gofmt"
unformatted=$(gofmt -l bindings/go examples/go)
if [ -n "$unformatted" ]; then
    echo "error: not gofmt-clean:" >&2
    echo "$unformatted" >&2
    exit 1
fi

say "go vet + go test (bindings/go)"
(cd bindings/go && go vet ./... && go test -count=1 ./...)
if [ "${GO_TEST_RACE:-0}" = 1 ]; then
    say "go test -race (bindings/go)"
    (cd bindings/go && go test -count=1 -race ./...)
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# scripts/install_test.sh (make test-install) builds against a real install outside the
# checkout; here a tandem.pc naming this checkout's build checks that the tag compiles.
say "build with -tags tandem_system (flags from pkg-config)"
mkdir -p "$tmp/pkgconfig"
printf '%s\n' "Name: tandem" "Description: this checkout's build" "Version: 0" \
    "Cflags: -I$ROOT/include" "Libs: -L$ROOT/target/release -ltandem" > "$tmp/pkgconfig/tandem.pc"
(cd bindings/go && PKG_CONFIG_PATH="$tmp/pkgconfig" go build -tags tandem_system ./...)

say "Go example (examples/go)"
(cd examples/go && go vet ./... && go build -o "$tmp/tandem-go-demo" . && go build -o "$tmp/hello" ./hello)
"$tmp/tandem-go-demo" -bundle "$tmp/bundle" -epochs 12 \
    "WINNER!! You have been selected to receive a £900 prize reward! Call 09061701461 to claim" \
    "Sorry, I'll call you later, I'm in a meeting" | tee "$tmp/out.txt"
grep -q '^held-out metrics (n=120): accuracy' "$tmp/out.txt"
[ -f "$tmp/bundle/manifest.json" ]
# The prize text is spam and the apology is not (the example must really classify).
[ "$(grep -c '^    label = spam' "$tmp/out.txt")" = 1 ]
[ "$(grep -c '^    label = ham' "$tmp/out.txt")" = 1 ]

say "Go hello (examples/go/hello, quoted by docs/guide.md)"
# It saves hello-bundle in its working directory and must classify both texts as the C version does.
(cd "$tmp" && ./hello) | tee "$tmp/hello.txt"
grep -Eq '^billing +billing=[0-9.]+ technical=[0-9.]+  you billed me two times$' "$tmp/hello.txt"
grep -Eq "^technical +billing=[0-9.]+ technical=[0-9.]+  the app won't start$" "$tmp/hello.txt"
[ "$(wc -l < "$tmp/hello.txt")" -eq 2 ]
[ -f "$tmp/hello-bundle/manifest.json" ]
say "go: all checks passed"
