# Build, test and install the C library. The Rust side builds with cargo; this file is for C
# hosts: `make install PREFIX=/opt/tandem` (DESTDIR for staging), then
# `cc app.c $(pkg-config --cflags --libs tandem)` with PKG_CONFIG_PATH=/opt/tandem/lib/pkgconfig,
# or find_package(tandem) and tandem::tandem in CMake with CMAKE_PREFIX_PATH=/opt/tandem.
# `make uninstall PREFIX=/opt/tandem` removes what install put there.

PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
CC ?= cc
CXX ?= c++
VALGRIND ?= valgrind
BUILD := target/release
OUT := target/c
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
VERSION_MAJOR := $(word 1,$(subst ., ,$(VERSION)))
VERSION_MINOR := $(word 2,$(subst ., ,$(VERSION)))
# The shared library's SONAME (set by build.rs) and the installed chain:
# libtandem.so -> libtandem.so.MAJOR -> libtandem.so.VERSION.
SONAME := libtandem.so.$(VERSION_MAJOR)
REALNAME := libtandem.so.$(VERSION)
POINTER_BITS := $(shell getconf LONG_BIT)
bindir = $(PREFIX)/bin
includedir = $(PREFIX)/include
libdir = $(PREFIX)/lib
cmakedir = $(libdir)/cmake/tandem
# What a static link of libtandem.a needs (from `rustc --print native-static-libs`).
NATIVE_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
# The same as a CMake list, for tandem::tandem_static.
NATIVE_LIBS_CMAKE := $(subst $() ,;,$(patsubst -l%,%,$(NATIVE_LIBS)))
CFLAGS_TEST := -std=c11 -Wall -Wextra -Werror -pedantic -g -O1 -Iinclude
LINK_TEST := -L$(BUILD) -ltandem -Wl,-rpath,$(CURDIR)/$(BUILD) -lm
VALGRIND_FLAGS := --leak-check=full --errors-for-leak-kinds=definite,possible \
	--error-exitcode=1 --suppressions=tests/c/valgrind.supp --quiet

.PHONY: all lib bin install uninstall test-c test-c-valgrind test-install examples clean-c \
	soak soak-smoke soak-valgrind

all: lib

# build.rs also links libtandem.so.MAJOR to libtandem.so in target/release: programs linked
# there look for the SONAME at run time. Made here too, so that `make` never depends on it.
lib:
	$(CARGO) build --release --lib
	ln -sf libtandem.so $(BUILD)/$(SONAME)

# The CLI, installed as bin/tandem.
bin:
	$(CARGO) build --release --bin tandem

$(OUT):
	mkdir -p $(OUT)

$(OUT)/test_api: tests/c/test_api.c tests/c/check.h tests/c/data.h include/tandem.h lib | $(OUT)
	$(CC) $(CFLAGS_TEST) $< $(LINK_TEST) -o $@

$(OUT)/test_concurrency: tests/c/test_concurrency.c tests/c/check.h tests/c/data.h include/tandem.h lib | $(OUT)
	$(CC) $(CFLAGS_TEST) -pthread $< $(LINK_TEST) -o $@

$(OUT)/soak: tests/c/soak.c tests/c/check.h tests/c/data.h include/tandem.h lib | $(OUT)
	$(CC) $(CFLAGS_TEST) -pthread $< $(LINK_TEST) -o $@

# The header must also be valid C++17.
$(OUT)/header_cpp.o: tests/c/header_cpp.cpp include/tandem.h | $(OUT)
	$(CXX) -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -c $< -o $@

$(OUT)/classify: examples/c/classify.c include/tandem.h lib | $(OUT)
	$(CC) -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude $< $(LINK_TEST) -o $@

# The complete example of docs/guide.md (tests/docs.rs checks the guide quotes it verbatim).
$(OUT)/hello: examples/c/hello.c include/tandem.h lib | $(OUT)
	$(CC) -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude $< $(LINK_TEST) -o $@

# Loads a bundle and classifies (from the cache, or from a `tandem pack` directory: tests/pack.rs).
$(OUT)/predict: examples/c/predict.c include/tandem.h lib | $(OUT)
	$(CC) -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude $< $(LINK_TEST) -o $@

# C tests: the API test natively and under valgrind, the concurrency test natively (valgrind
# serializes threads, which would defeat it), the header as C++, and the C examples (predict on
# the bundle hello saved).
test-c: $(OUT)/test_api $(OUT)/test_concurrency $(OUT)/header_cpp.o $(OUT)/classify $(OUT)/hello \
		$(OUT)/predict
	$(OUT)/test_api
	$(OUT)/test_concurrency
	$(OUT)/classify
	cd $(OUT) && ./hello && ./predict hello-bundle "you billed me two times"

test-c-valgrind: $(OUT)/test_api
	TANDEM_TEST_BACKBONE=$${TANDEM_TEST_BACKBONE:-$${TANDEM_HOME:-$${XDG_CACHE_HOME:-$$HOME/.cache}/tandem}/models/tiny-random-bert} \
		$(VALGRIND) $(VALGRIND_FLAGS) $(OUT)/test_api

examples: $(OUT)/classify $(OUT)/hello $(OUT)/predict

# Soak runs (tests/c/soak.c; scripts/soak.sh runs `soak` and summarizes it): 8 threads predict
# while the main thread hot-swaps two bundles SOAK_SWAPS times on the default backbone (graph
# SOAK_VARIANT), and SOAK_PREDICTIONS predictions through the C ABI on the tiny test backbone with
# VmRSS sampled every 50,000 and bounded after warm-up. soak-smoke is the same at CI size;
# soak-valgrind runs both parts small under valgrind (which serializes threads) on the tiny one.
SOAK_SWAPS ?= 1000
SOAK_PREDICTIONS ?= 1000000
SOAK_VARIANT ?= fp32
TINY_BACKBONE = $${TANDEM_TEST_BACKBONE:-$${TANDEM_HOME:-$${XDG_CACHE_HOME:-$$HOME/.cache}/tandem}/models/tiny-random-bert}

soak: $(OUT)/soak
	TANDEM_TEST_BACKBONE= $(OUT)/soak swaps --swaps $(SOAK_SWAPS) --variant $(SOAK_VARIANT)
	$(OUT)/soak rss --backbone "$(TINY_BACKBONE)" --predictions $(SOAK_PREDICTIONS)

soak-smoke: $(OUT)/soak
	TANDEM_TEST_BACKBONE= $(OUT)/soak swaps --swaps 100 --variant $(SOAK_VARIANT)
	$(OUT)/soak rss --backbone "$(TINY_BACKBONE)" --predictions 50000 --sample-every 5000 \
		--warmup 10000

# RSS under valgrind measures valgrind too, so only leaks and errors count there.
soak-valgrind: $(OUT)/soak
	$(VALGRIND) $(VALGRIND_FLAGS) $(OUT)/soak swaps --backbone "$(TINY_BACKBONE)" --swaps 20 \
		--train 120
	$(VALGRIND) $(VALGRIND_FLAGS) $(OUT)/soak rss --backbone "$(TINY_BACKBONE)" \
		--predictions 5000 --sample-every 1000 --warmup 1000 --train 120 --no-rss-bound

# Installs the CLI, the headers (tandem.h and the C++ binding tandem.hpp), the shared library as
# a versioned chain, the static library, tandem.pc and the CMake package (tandem::tandem,
# tandem::tandem_static). tandem.pc names no rpath: a program linked against a prefix outside
# the loader's path runs with LD_LIBRARY_PATH=PREFIX/lib or its own -Wl,-rpath.
install: lib bin
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(includedir) $(DESTDIR)$(libdir)/pkgconfig \
		$(DESTDIR)$(cmakedir)
	install -m 755 $(BUILD)/tandem $(DESTDIR)$(bindir)/tandem
	install -m 644 include/tandem.h bindings/cpp/tandem.hpp $(DESTDIR)$(includedir)/
	install -m 755 $(BUILD)/libtandem.so $(DESTDIR)$(libdir)/$(REALNAME)
	ln -sf $(REALNAME) $(DESTDIR)$(libdir)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(libdir)/libtandem.so
	install -m 644 $(BUILD)/libtandem.a $(DESTDIR)$(libdir)/libtandem.a
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@NATIVE_LIBS@|$(NATIVE_LIBS)|' \
		tandem.pc.in > $(DESTDIR)$(libdir)/pkgconfig/tandem.pc
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@SONAME@|$(SONAME)|' \
		-e 's|@NATIVE_LIBS_CMAKE@|$(NATIVE_LIBS_CMAKE)|' \
		cmake/tandemConfig.cmake.in > $(DESTDIR)$(cmakedir)/tandemConfig.cmake
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|' \
		-e 's|@VERSION_MINOR@|$(VERSION_MINOR)|' -e 's|@POINTER_BITS@|$(POINTER_BITS)|' \
		-e 's|@POINTER_BYTES@|$(shell expr $(POINTER_BITS) / 8)|' \
		cmake/tandemConfigVersion.cmake.in > $(DESTDIR)$(cmakedir)/tandemConfigVersion.cmake

uninstall:
	rm -f $(DESTDIR)$(bindir)/tandem $(DESTDIR)$(includedir)/tandem.h \
		$(DESTDIR)$(includedir)/tandem.hpp $(DESTDIR)$(libdir)/libtandem.so \
		$(DESTDIR)$(libdir)/$(SONAME) $(DESTDIR)$(libdir)/$(REALNAME) \
		$(DESTDIR)$(libdir)/libtandem.a $(DESTDIR)$(libdir)/pkgconfig/tandem.pc \
		$(DESTDIR)$(cmakedir)/tandemConfig.cmake $(DESTDIR)$(cmakedir)/tandemConfigVersion.cmake
	rmdir $(DESTDIR)$(cmakedir) 2>/dev/null || true

# scripts/install_test.sh: installs into a scratch prefix outside the checkout and builds the C
# example with pkg-config (shared and static), the C++ examples with CMake's
# find_package(tandem) and the Go example with -tags tandem_system, from copies outside the
# checkout, and runs them; also checks the SONAME chain, DESTDIR staging and uninstall.
test-install:
	scripts/install_test.sh

clean-c:
	rm -rf $(OUT)
