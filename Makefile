# cask: a lazy task-graph engine for C.
#
#   make            the libraries, the cask command and the examples
#   make demo       install missing Debian packages, build, run the demo
#   make test       install missing Debian packages, build, run every test
#   make test-asan  the suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-tsan  the threaded tests under ThreadSanitizer
#   make fuzz       each libFuzzer target for FUZZ_SECONDS (default 60) seconds
#   make bench      the benchmarks against NumPy and Dask (bench/results.json)
#   make install    PREFIX=/usr/local DESTDIR=
#   make uninstall

VERSION   := 0.1.0
SOVERSION := 0
PREFIX    ?= /usr/local
DESTDIR   ?=
BUILD     ?= build
CC        ?= cc

# Debian packages the build, the tests, the demo and the bench need.
DEB_PKGS := build-essential pkg-config libjansson-dev libigraph-dev libzip-dev libcmocka-dev \
            graphviz librsvg2-bin libxml2-utils python3-numpy python3-dask libopenblas-dev clang \
            libclang-rt-14-dev binutils libopenmpi-dev openmpi-bin

WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS    ?= -O2 -g
SAN       ?=
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SAN) -fPIC -Iinclude $(BLAS_CFLAGS) $(IGRAPH_CFLAGS) $(MPI_CFLAGS) -pthread
# OpenBLAS (Debian's libopenblas-dev) for the arrays' block products; the
# fallbacks are its Debian paths, for the first run, before make deps.
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null || echo -I/usr/include/x86_64-linux-gnu/openblas-pthread)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -L/usr/lib/x86_64-linux-gnu/openblas-pthread -lopenblas)
IGRAPH_CFLAGS := $(shell pkg-config --cflags igraph 2>/dev/null || echo -I/usr/include/igraph)
# MPI (Debian's OpenMPI) for the mpi scheduler, when mpicc is there.
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
ifneq ($(MPI_LIBS),)
MPI_CFLAGS += -DCASK_HAVE_MPI
endif
LIBS      := $(shell pkg-config --libs jansson libzip igraph 2>/dev/null || echo -ljansson -lzip -ligraph) $(BLAS_LIBS) $(MPI_LIBS) -lpthread -lm

LIB_SRC := $(wildcard graph/*.c sched/*.c collections/*.c viz/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_SRC := $(wildcard cli/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
TESTS    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
# Fuzz targets (tests/fuzz/fuzz_NAME.c): replayed on their seeds and
# regression cases by make test (test_fuzz_NAME), fuzzed by make fuzz.
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
TESTS    += $(FUZZ_TARGETS:%=$(BUILD)/tests/test_fuzz_%)
# The cask command's objects with its main renamed, for the options target.
CLI_LIB  := $(filter-out $(BUILD)/obj/cli/main.o,$(CLI_OBJ)) $(BUILD)/obj/cli/main_lib.o
HEADERS  := $(wildcard include/cask/*.h)

STATIC := $(BUILD)/libcask.a
SHARED := $(BUILD)/libcask.so.$(VERSION)
CASK   := $(BUILD)/cask

.PHONY: all deps demo test test-run test-asan test-tsan fuzz bench install uninstall clean check-exports

all: $(STATIC) $(SHARED) $(CASK) $(EXAMPLES)

# Install what is missing, and nothing when all is there.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi

$(BUILD)/obj/%.o: %.c $(HEADERS) $(wildcard graph/*.h sched/*.h collections/*.h viz/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) $(SAN) -shared -Wl,-soname,libcask.so.$(SOVERSION) -o $@ $^ $(LIBS)
	ln -sf libcask.so.$(VERSION) $(BUILD)/libcask.so.$(SOVERSION)
	ln -sf libcask.so.$(VERSION) $(BUILD)/libcask.so

$(CASK): $(CLI_OBJ) $(STATIC)
	$(CC) $(SAN) -o $@ $(CLI_OBJ) $(STATIC) $(LIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/testutil.h $(STATIC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(STATIC) $(LIBS) -lcmocka

# The mpi scheduler's checks, run under mpirun by tests/run.sh.
ifneq ($(MPI_LIBS),)
TESTS += $(BUILD)/tests/mpi_check
endif
$(BUILD)/tests/mpi_check: tests/mpi/mpi_check.c tests/unit/testutil.h $(STATIC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(STATIC) $(LIBS) -lcmocka

$(BUILD)/obj/cli/main_lib.o: $(BUILD)/obj/cli/main.o
	objcopy --redefine-sym main=cask_cli_main $< $@

$(BUILD)/tests/test_fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(CLI_LIB) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< tests/fuzz/replay.c $(CLI_LIB) $(STATIC) $(LIBS)

# libFuzzer binaries: the library and the command built for coverage, with
# AddressSanitizer and UndefinedBehaviorSanitizer (clang).
FUZZ_SECONDS ?= 60
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
build/fuzz/bin/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(wildcard graph/*.c sched/*.c collections/*.c viz/*.c cli/*.c graph/*.h sched/*.h collections/*.h viz/*.h cli/*.h) $(HEADERS)
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang CFLAGS="-O1 -g" \
	  SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" build/fuzz/libcask.a $(CLI_LIB:$(BUILD)/%=build/fuzz/%)
	@mkdir -p $(dir $@)
	clang $(ALL_CFLAGS) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< \
	  $(CLI_LIB:$(BUILD)/%=build/fuzz/%) build/fuzz/libcask.a $(LIBS)

fuzz: deps $(FUZZ_TARGETS:%=build/fuzz/bin/fuzz_%)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh $(FUZZ_TARGETS)

demo: deps all
	@for e in $(BUILD)/examples/0[0-4]_*; do echo "== $$e"; $$e || exit 1; done

test: deps
	@$(MAKE) --no-print-directory test-run

test-run: all $(TESTS)
	@BUILD=$(BUILD) sh tests/run.sh

# The stress test runs 1,000,000 tasks here rather than 10,000,000: ASan's
# shadow memory and quarantine would need about 30 GB for the full size.
test-asan: deps
	@CASK_STRESS_TASKS=1000000 $(MAKE) --no-print-directory BUILD=build/asan CC=clang \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  CFLAGS="-O1 -g" test-run

$(BUILD)/bench/cask_bench: bench/cask_bench.c $(STATIC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LIBS)

# The native baseline: the same shapes as OpenMP tasks with depend clauses.
$(BUILD)/bench/omp_bench: bench/omp_bench.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) -O2 -fopenmp -o $@ $<

# ThreadSanitizer on the tests that run tasks on several threads.
# The hardening test's stress part runs 100,000 tasks here.
TSAN_TESTS := test_backends test_sync test_futures test_hardening
test-tsan: deps
	@$(MAKE) --no-print-directory BUILD=build/tsan CC=clang SAN="-fsanitize=thread" \
	  CFLAGS="-O1 -g" $(addprefix build/tsan/tests/,$(TSAN_TESTS))
	@BUILD=build/tsan ONLY="$(TSAN_TESTS)" TSAN_OPTIONS="halt_on_error=1" \
	  CASK_STRESS_TASKS=100000 sh tests/run.sh

bench: deps all $(BUILD)/bench/cask_bench $(BUILD)/bench/omp_bench
	@BUILD=$(BUILD) bench/run $(BENCH)

# Every symbol libcask.so exports starts with cask_.
check-exports: $(SHARED)
	@bad=$$(nm -D --defined-only $(SHARED) | awk '$$2 ~ /[TDBR]/ {print $$3}' | grep -v '^cask_' || true); \
	if [ -n "$$bad" ]; then echo "exported symbols without the cask_ prefix: $$bad"; exit 1; fi

$(BUILD)/cask.pc: Makefile
	@mkdir -p $(BUILD)
	printf 'prefix=%s\nexec_prefix=$${prefix}\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: cask\nDescription: lazy task-graph engine for C\nVersion: %s\nCflags: -I$${includedir}\nLibs: -L$${libdir} -lcask\nLibs.private: -lpthread -lm\nRequires.private: jansson openblas\n' \
	  '$(PREFIX)' '$(VERSION)' > $@

install: all $(BUILD)/cask.pc
	install -d $(DESTDIR)$(PREFIX)/include/cask $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(HEADERS) $(DESTDIR)$(PREFIX)/include/cask/
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libcask.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libcask.so.$(SOVERSION)
	ln -sf libcask.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libcask.so
	install -m 644 $(BUILD)/cask.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 755 $(CASK) $(DESTDIR)$(PREFIX)/bin/
	-[ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && ldconfig 2>/dev/null || true

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/include/cask/,$(notdir $(HEADERS)))
	-rmdir $(DESTDIR)$(PREFIX)/include/cask 2>/dev/null
	rm -f $(DESTDIR)$(PREFIX)/lib/libcask.a $(DESTDIR)$(PREFIX)/lib/libcask.so \
	      $(DESTDIR)$(PREFIX)/lib/libcask.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libcask.so.$(VERSION) \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/cask.pc $(DESTDIR)$(PREFIX)/bin/cask

clean:
	rm -rf build
