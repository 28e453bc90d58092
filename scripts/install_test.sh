#!/usr/bin/env bash
# The install test (`make test-install`): `make install` into a scratch prefix outside the
# checkout, then builds the examples the way a host project would, from copies outside the
# checkout so that nothing resolves into it, and runs them:
#
#   C    examples/c/{classify,hello}.c with pkg-config, linked to libtandem.so (run with
#        LD_LIBRARY_PATH, as tandem.pc names no rpath) and classify.c to libtandem.a
#   C++  examples/cpp through CMake's find_package(tandem): tandem::tandem (CMake's build rpath)
#        and tandem::tandem_static, plus the package's version check
#   Go   examples/go with a copy of bindings/go, -tags tandem_system (flags from pkg-config)
#
# It also checks the installed files, the SONAME chain, bin/tandem --version, DESTDIR staging and
# `make uninstall`. Needs cc, c++, pkg-config, cmake, go and readelf (scripts/system_deps.sh),
# and the cache scripts/setup.sh fills (ONNX Runtime, the backbone, the SMS demo data).
#
#   scripts/install_test.sh        # TANDEM_KEEP_INSTALL_TEST=1 keeps the scratch directory
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CC=${CC:-cc}
say() { printf '== %s\n' "$*"; }
fail() {
    echo "error: $*" >&2
    exit 1
}

for tool in "$CC" pkg-config cmake go readelf ldd; do
    command -v "$tool" >/dev/null || fail "$tool is missing (scripts/system_deps.sh installs it)"
done

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
MAJOR=${VERSION%%.*}
SPAM="Free entry! Text WIN to 80086 to claim your prize"
HAM="see you at lunch"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tandem-install-test.XXXXXX")
tmp=$(cd "$tmp" && pwd -P)
case "$tmp/" in "$ROOT"/*) fail "the scratch directory $tmp is inside the checkout" ;; esac
if [ "${TANDEM_KEEP_INSTALL_TEST:-0}" = 1 ]; then
    echo "scratch directory (kept): $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
fi
prefix=$tmp/prefix

# The installed files, relative to the prefix, sorted.
expected_files() {
    printf '%s\n' bin/tandem include/tandem.h include/tandem.hpp \
        lib/cmake/tandem/tandemConfig.cmake lib/cmake/tandem/tandemConfigVersion.cmake \
        lib/libtandem.a lib/libtandem.so "lib/libtandem.so.$MAJOR" "lib/libtandem.so.$VERSION" \
        lib/pkgconfig/tandem.pc | LC_ALL=C sort
}
listing() { (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./||' | LC_ALL=C sort); }
# Runs a command with its output in the log $1, which is shown if it fails.
logged() {
    local log=$1
    shift
    "$@" >>"$log" 2>&1 || { cat "$log" >&2; fail "failed: $*"; }
}
# The dynamic section of the ELF file $1.
dynamic() { readelf -d "$1"; }
# Fails unless the ELF file $1 has no RPATH/RUNPATH naming the checkout.
not_into_checkout() {
    if grep -E 'R(UN)?PATH' <<<"$(dynamic "$1")" | grep -F "$ROOT" >/dev/null; then
        fail "$1 has an rpath into the checkout"
    fi
}
# Fails unless the dynamic loader resolves libtandem for $1 (in the current environment) to
# the installed library.
loads_installed() {
    local deps
    deps=$(ldd "$1")
    grep -qF "libtandem.so.$MAJOR => $prefix/lib/libtandem.so.$MAJOR " <<<"$deps" ||
        fail "$1 does not load $prefix/lib/libtandem.so.$MAJOR: $(grep libtandem <<<"$deps")"
}
# Checks what examples/{c,cpp,go}/hello printed (file $1): both texts, as make test-c checks.
hello_output() {
    grep -Eq '^billing +billing=[0-9.]+ technical=[0-9.]+  you billed me two times$' "$1" &&
        grep -Eq "^technical +billing=[0-9.]+ technical=[0-9.]+  the app won't start$" "$1" &&
        [ "$(wc -l <"$1")" -eq 2 ] || fail "$1 is not what hello prints"
}
# Checks what a classify example printed (file $1) for the texts $SPAM and $HAM.
classify_output() {
    grep -Fq "$SPAM" "$1" && grep -Fq "$HAM" "$1" || fail "$1 lacks the classified texts"
    grep -E '^spam ' "$1" | grep -F "$SPAM" >/dev/null || fail "$1: the prize text is not spam"
    grep -E '^ham ' "$1" | grep -F "$HAM" >/dev/null || fail "$1: the lunch text is not ham"
}

say "make install PREFIX=$prefix"
logged "$tmp/install.log" make --no-print-directory install PREFIX="$prefix"
diff <(expected_files) <(listing "$prefix") || fail "the installed files differ (> installed)"

say "the shared library's SONAME chain"
lib=$prefix/lib
[ "$(readlink "$lib/libtandem.so")" = "libtandem.so.$MAJOR" ] &&
    [ "$(readlink "$lib/libtandem.so.$MAJOR")" = "libtandem.so.$VERSION" ] &&
    [ -f "$lib/libtandem.so.$VERSION" ] && [ ! -L "$lib/libtandem.so.$VERSION" ] ||
    fail "not the chain libtandem.so -> libtandem.so.$MAJOR -> libtandem.so.$VERSION (a file)"
grep -F '(SONAME)' <<<"$(dynamic "$lib/libtandem.so.$VERSION")" | tee "$tmp/soname.txt"
grep -qF "[libtandem.so.$MAJOR]" "$tmp/soname.txt" || fail "the SONAME is not libtandem.so.$MAJOR"

say "tandem.pc"
# Only the installed prefix: no system directory, no checkout.
export PKG_CONFIG_LIBDIR=$prefix/lib/pkgconfig PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[ "$(pkg-config --modversion tandem)" = "$VERSION" ] || fail "tandem.pc's version is not $VERSION"
if grep -q rpath "$prefix/lib/pkgconfig/tandem.pc"; then fail "tandem.pc names an rpath"; fi
echo "cflags: $(pkg-config --cflags tandem); libs: $(pkg-config --libs tandem)"

say "bin/tandem --version"
"$prefix/bin/tandem" --version | tee "$tmp/version.txt"
grep -q "^tandem $VERSION" "$tmp/version.txt" || fail "bin/tandem --version is not $VERSION"

# Copies of the sources outside the checkout; tandem.hpp comes from the prefix.
src=$tmp/src
mkdir -p "$src/c" "$src/cpp" "$tmp/run-c" "$tmp/run-cpp" "$tmp/run-cpp-static" "$tmp/run-go"
cp examples/c/classify.c examples/c/hello.c "$src/c/"
cp examples/cpp/CMakeLists.txt examples/cpp/*.cpp examples/cpp/minijson.hpp "$src/cpp/"
cp -R bindings/go "$src/tandem-go"
cp -R examples/go "$src/go-example"
sed -i 's|^\(replace github.com/tandem-ai/tandem/bindings/go =>\) .*|\1 ../tandem-go|' \
    "$src/go-example/go.mod"
grep -q '=> ../tandem-go$' "$src/go-example/go.mod" || fail "examples/go's go.mod: no replace line"
if grep -rlF "$ROOT" "$src"; then fail "the copied sources name the checkout"; fi

say "C: pkg-config, shared and static (examples/c)"
cflags=(-std=c11 -Wall -Wextra -Werror -pedantic)
# shellcheck disable=SC2046 # pkg-config's output is meant to split into words
(
    cd "$src/c"
    "$CC" "${cflags[@]}" classify.c $(pkg-config --cflags --libs tandem) -o "$tmp/run-c/classify"
    "$CC" "${cflags[@]}" hello.c $(pkg-config --cflags --libs tandem) -o "$tmp/run-c/hello"
    "$CC" "${cflags[@]}" classify.c $(pkg-config --cflags tandem) "$prefix/lib/libtandem.a" \
        $(pkg-config --static --libs-only-other --libs-only-l tandem | sed 's/-ltandem//') \
        -o "$tmp/run-c/classify-static"
)
for exe in classify hello; do
    grep -qF "Shared library: [libtandem.so.$MAJOR]" <<<"$(dynamic "$tmp/run-c/$exe")" ||
        fail "$exe does not need libtandem.so.$MAJOR"
    if grep -qE 'R(UN)?PATH' <<<"$(dynamic "$tmp/run-c/$exe")"; then fail "$exe has an rpath"; fi
    LD_LIBRARY_PATH=$prefix/lib loads_installed "$tmp/run-c/$exe"
done
if grep -q libtandem <<<"$(dynamic "$tmp/run-c/classify-static")"; then
    fail "classify-static needs libtandem.so"
fi
(cd "$tmp/run-c" && LD_LIBRARY_PATH=$prefix/lib ./classify -- "$SPAM" "$HAM") |
    tee "$tmp/run-c/classify.out"
classify_output "$tmp/run-c/classify.out"
(cd "$tmp/run-c" && LD_LIBRARY_PATH=$prefix/lib ./hello) | tee "$tmp/run-c/hello.out"
hello_output "$tmp/run-c/hello.out"
(cd "$tmp/run-c" && ./classify-static -- "$SPAM" "$HAM") | tee "$tmp/run-c/classify-static.out"
classify_output "$tmp/run-c/classify-static.out"

say "C++: CMake find_package(tandem), tandem::tandem and tandem::tandem_static (examples/cpp)"
logged "$tmp/cmake.log" cmake -S "$src/cpp" -B "$tmp/build-cpp" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Release
logged "$tmp/cmake.log" cmake --build "$tmp/build-cpp" -j 2
logged "$tmp/cmake.log" cmake -S "$src/cpp" -B "$tmp/build-cpp-static" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release -DTANDEM_STATIC=ON
logged "$tmp/cmake.log" cmake --build "$tmp/build-cpp-static" -j 2 --target hello
for exe in hello classify; do
    not_into_checkout "$tmp/build-cpp/$exe"
    # No LD_LIBRARY_PATH: CMake gives build-tree binaries an rpath to the imported library.
    (unset LD_LIBRARY_PATH && loads_installed "$tmp/build-cpp/$exe")
done
if grep -q libtandem <<<"$(dynamic "$tmp/build-cpp-static/hello")"; then
    fail "the static C++ hello needs libtandem.so"
fi
(cd "$tmp/run-cpp" && env -u LD_LIBRARY_PATH "$tmp/build-cpp/hello") | tee "$tmp/run-cpp/hello.out"
hello_output "$tmp/run-cpp/hello.out"
(cd "$tmp/run-cpp-static" && "$tmp/build-cpp-static/hello") | tee "$tmp/run-cpp-static/hello.out"
hello_output "$tmp/run-cpp-static/hello.out"
(cd "$tmp/run-cpp" && logged "$tmp/run-cpp/classify.out" env -u LD_LIBRARY_PATH \
    "$tmp/build-cpp/classify" --bundle "$tmp/run-cpp/classify-bundle" --text "$SPAM" --text "$HAM")
grep -E '^  spam +p=' "$tmp/run-cpp/classify.out" | grep -F "$SPAM" >/dev/null ||
    fail "C++ classify: the prize text is not spam"
grep -E '^  ham +p=' "$tmp/run-cpp/classify.out" | grep -F "$HAM" >/dev/null ||
    fail "C++ classify: the lunch text is not ham"
echo "the C++ classify example classified both texts"

say "CMake: the package's version check"
mkdir -p "$src/cmake-version"
cat >"$src/cmake-version/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(tandem_version_check NONE)
find_package(tandem ${REQUEST} QUIET)
if(tandem_FOUND)
  message(STATUS "found=TRUE version=${tandem_VERSION}")
else()
  message(STATUS "found=FALSE")
endif()
CMAKE
minor=$(echo "$VERSION" | cut -d. -f2)
for case in "|TRUE" "$MAJOR.$minor|TRUE" "$VERSION|TRUE" "$MAJOR.$((minor + 1))|FALSE" \
    "$((MAJOR + 1))|FALSE"; do
    request=${case%|*} want=${case#*|}
    rm -rf "$tmp/build-version" "$tmp/version.log"
    logged "$tmp/version.log" cmake -S "$src/cmake-version" -B "$tmp/build-version" \
        -DCMAKE_PREFIX_PATH="$prefix" -DREQUEST="$request"
    grep -q "found=$want" "$tmp/version.log" ||
        fail "find_package(tandem $request) did not give found=$want"
    echo "find_package(tandem ${request:-}) -> found=$want"
done

say "Go: -tags tandem_system through pkg-config (examples/go with a copy of bindings/go)"
(
    cd "$src/go-example"
    export GOFLAGS=-mod=mod GOTOOLCHAIN=local GOPROXY=off
    unset CGO_CFLAGS CGO_CPPFLAGS CGO_LDFLAGS
    go build -tags tandem_system -o "$tmp/run-go/tandem-go-demo" .
    go build -tags tandem_system -o "$tmp/run-go/hello" ./hello
)
for exe in hello tandem-go-demo; do
    not_into_checkout "$tmp/run-go/$exe"
    LD_LIBRARY_PATH=$prefix/lib loads_installed "$tmp/run-go/$exe"
done
(cd "$tmp/run-go" && LD_LIBRARY_PATH=$prefix/lib ./hello) | tee "$tmp/run-go/hello.out"
hello_output "$tmp/run-go/hello.out"
# The texts and epochs of scripts/go_test.sh: the demo trains on a small sample.
go_spam="WINNER!! You have been selected to receive a £900 prize reward! Call 09061701461 to claim"
go_ham="Sorry, I'll call you later, I'm in a meeting"
(cd "$tmp/run-go" && LD_LIBRARY_PATH=$prefix/lib logged "$tmp/run-go/demo.out" ./tandem-go-demo \
    -bundle "$tmp/run-go/bundle" -epochs 12 "$go_spam" "$go_ham")
grep -A1 -F "$go_spam" "$tmp/run-go/demo.out" | grep '^    label = spam' >/dev/null ||
    fail "Go example: the prize text is not spam"
grep -A1 -F "$go_ham" "$tmp/run-go/demo.out" | grep '^    label = ham' >/dev/null ||
    fail "Go example: the meeting text is not ham"
echo "the Go example classified both texts"

say "DESTDIR staging and make uninstall"
stage=$tmp/stage
logged "$tmp/stage.log" make --no-print-directory install DESTDIR="$stage" PREFIX=/opt/tandem
[ "$(listing "$stage")" = "$(expected_files | sed 's|^|opt/tandem/|')" ] ||
    fail "make install DESTDIR=... put files elsewhere"
grep -qx 'prefix=/opt/tandem' "$stage/opt/tandem/lib/pkgconfig/tandem.pc" ||
    fail "tandem.pc under DESTDIR does not name the final prefix"
make --no-print-directory uninstall DESTDIR="$stage" PREFIX=/opt/tandem >/dev/null
[ -z "$(listing "$stage")" ] || fail "make uninstall (DESTDIR) left: $(listing "$stage")"
make --no-print-directory uninstall PREFIX="$prefix" >/dev/null
[ -z "$(listing "$prefix")" ] || fail "make uninstall left: $(listing "$prefix")"
say "install: all checks passed"
