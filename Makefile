# Build, test and install the C library. The Rust side builds with cargo; this file is for C
# hosts: `make install PREFIX=/opt/tandem`, then `cc app.c $(pkg-config --cflags --libs tandem)`
# with PKG_CONFIG_PATH=/opt/tandem/lib/pkgconfig.

PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
CC ?= cc
CXX ?= c++
VALGRIND ?= valgrind
BUILD := target/release
OUT := target/c
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# What a static link of libtandem.a needs (from `rustc --print native-static-libs`).
NATIVE_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
CFLAGS_TEST := -std=c11 -Wall -Wextra -Werror -pedantic -g -O1 -Iinclude
LINK_TEST := -L$(BUILD) -ltandem -Wl,-rpath,$(CURDIR)/$(BUILD) -lm
VALGRIND_FLAGS := --leak-check=full --errors-for-leak-kinds=definite,possible \
	--error-exitcode=1 --suppressions=tests/c/valgrind.supp --quiet

.PHONY: all lib install uninstall test-c test-c-valgrind test-install examples clean-c \
	soak soak-smoke soak-valgrind

all: lib

lib:
	$(CARGO) build --release --lib

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

# C tests: the API test natively and under valgrind, the concurrency test natively (valgrind
# serializes threads, which would defeat it), the header as C++, and the C examples.
test-c: $(OUT)/test_api $(OUT)/test_concurrency $(OUT)/header_cpp.o $(OUT)/classify $(OUT)/hello
	$(OUT)/test_api
	$(OUT)/test_concurrency
	$(OUT)/classify
	cd $(OUT) && ./hello

test-c-valgrind: $(OUT)/test_api
	TANDEM_TEST_BACKBONE=$${TANDEM_TEST_BACKBONE:-$${TANDEM_HOME:-$${XDG_CACHE_HOME:-$$HOME/.cache}/tandem}/models/tiny-random-bert} \
		$(VALGRIND) $(VALGRIND_FLAGS) $(OUT)/test_api

examples: $(OUT)/classify $(OUT)/hello

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

install: lib
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/tandem.h $(DESTDIR)$(PREFIX)/include/tandem.h
	install -m 755 $(BUILD)/libtandem.so $(DESTDIR)$(PREFIX)/lib/libtandem.so
	install -m 644 $(BUILD)/libtandem.a $(DESTDIR)$(PREFIX)/lib/libtandem.a
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@NATIVE_LIBS@|$(NATIVE_LIBS)|' \
		tandem.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tandem.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/tandem.h $(DESTDIR)$(PREFIX)/lib/libtandem.so \
		$(DESTDIR)$(PREFIX)/lib/libtandem.a $(DESTDIR)$(PREFIX)/lib/pkgconfig/tandem.pc

# Installs into a scratch prefix and builds the C example exactly as a host app would: with
# pkg-config, shared and static, then runs both.
test-install: lib
	rm -rf $(OUT)/prefix && mkdir -p $(OUT)
	$(MAKE) --no-print-directory install PREFIX=$(CURDIR)/$(OUT)/prefix
	PKG_CONFIG_PATH=$(CURDIR)/$(OUT)/prefix/lib/pkgconfig sh -c \
		'$(CC) examples/c/classify.c $$(pkg-config --cflags --libs tandem) -o $(OUT)/classify-installed && \
		 $(CC) examples/c/classify.c $$(pkg-config --cflags tandem) $(CURDIR)/$(OUT)/prefix/lib/libtandem.a \
		   $$(pkg-config --static --libs-only-other --libs-only-l tandem | sed "s/-ltandem//") -o $(OUT)/classify-static'
	test "$$(PKG_CONFIG_PATH=$(CURDIR)/$(OUT)/prefix/lib/pkgconfig pkg-config --modversion tandem)" = "$(VERSION)"
	$(OUT)/classify-installed -- "Free entry! Text WIN to 80086 to claim your prize" "see you at lunch"
	$(OUT)/classify-static -- "Free entry! Text WIN to 80086 to claim your prize" "see you at lunch"

clean-c:
	rm -rf $(OUT)
