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
#   make clean      remove $(BUILD)
#   make check-layers  no file includes a header of a layer above its own
#
# Configuration: the flags of the libraries cask builds with (BLAS, igraph,
# MPI) are probed when make starts, and written with the compiler and its
# flags to $(BUILD)/config, which every object and program depends on: a
# change of any of them (MPI installed since the last build, another CC or
# CFLAGS) rebuilds everything, and nothing else does. The goals that install
# packages first (demo, test, test-asan, test-tsan, bench, fuzz) run `deps`,
# then a fresh make, so they probe only once the packages are there.
# Header dependencies come from the compiler (-MMD -MP).

VERSION   := 0.1.0
SOVERSION := 0
PREFIX    ?= /usr/local
DESTDIR   ?=
BUILD     ?= build
CC        ?= cc
LD        ?= ld

# Debian packages the build, the tests, the demo and the bench need.
DEB_PKGS := build-essential pkg-config libjansson-dev libigraph-dev libzip-dev libcmocka-dev \
            graphviz librsvg2-bin libxml2-utils python3-numpy python3-dask libopenblas-dev clang \
            libclang-rt-14-dev binutils libopenmpi-dev openmpi-bin libhdf5-dev python3-h5py \
            libtbb-dev

WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# The loops marked "#pragma omp simd" run in vector lanes (no OpenMP runtime);
# clang warns where it cannot (under ASan, say): a hint, not an error there.
SIMD      := -fopenmp-simd $(if $(findstring clang,$(shell $(CC) --version 2>/dev/null)),-Wno-pass-failed)
CFLAGS    ?= -O2 -g
SAN       ?=

# Goals that need no probe: they install packages and start a fresh make,
# or only remove files.
NOPROBE_GOALS := deps deps-list check-layers demo test test-asan test-tsan bench fuzz clean uninstall
ifneq ($(MAKECMDGOALS),)
ifeq ($(filter-out $(NOPROBE_GOALS),$(MAKECMDGOALS)),)
NOPROBE := 1
endif
endif

define newline


endef

ifndef NOPROBE
# OpenBLAS (Debian's libopenblas-dev) for the arrays' block products.
BLAS_CFLAGS   := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS     := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
IGRAPH_CFLAGS := $(shell pkg-config --cflags igraph 2>/dev/null)
# HDF5 (Debian's libhdf5-dev: the serial, thread-safe build) for HDF5 datasets.
HDF5_CFLAGS   := $(shell pkg-config --cflags hdf5-serial 2>/dev/null || echo -I/usr/include/hdf5/serial)
HDF5_LIBS     := $(shell pkg-config --libs hdf5-serial 2>/dev/null || echo -lhdf5_serial)
# MPI (Debian's OpenMPI) for the mpi scheduler, when mpicc is there.
MPI_CFLAGS    := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS      := $(shell mpicc --showme:link 2>/dev/null)
DEP_LIBS      := $(shell pkg-config --libs jansson libzip igraph 2>/dev/null || echo -ljansson -lzip -ligraph)
ifneq ($(MPI_LIBS),)
MPI_CFLAGS += -DCASK_HAVE_MPI
HAVE_MPI := 1
endif
LIBS := $(DEP_LIBS) $(HDF5_LIBS) $(BLAS_LIBS) $(MPI_LIBS) -lpthread -lm

# Everything a build depends on, one line per setting; rewritten only when
# it changes, so its date says when the configuration last changed.
CONFIG := CC=$(CC) $(shell $(CC) -dumpfullversion 2>/dev/null)|CFLAGS=$(CFLAGS)|SIMD=$(SIMD)|SAN=$(SAN)|BLAS=$(BLAS_CFLAGS) $(BLAS_LIBS)|IGRAPH=$(IGRAPH_CFLAGS)|HDF5=$(HDF5_CFLAGS) $(HDF5_LIBS)|MPI=$(MPI_CFLAGS) $(MPI_LIBS)|LIBS=$(LIBS)
ifneq ($(file < $(BUILD)/config),$(subst |,$(newline),$(CONFIG)))
$(shell mkdir -p $(BUILD))
$(file > $(BUILD)/config,$(subst |,$(newline),$(CONFIG)))
endif
endif

ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(SIMD) $(CFLAGS) $(SAN) -fPIC -Iinclude $(BLAS_CFLAGS) \
             $(IGRAPH_CFLAGS) $(HDF5_CFLAGS) $(MPI_CFLAGS) -pthread -MMD -MP

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
# The mpi scheduler's checks, run under mpirun by tests/run.sh.
ifdef HAVE_MPI
TESTS    += $(BUILD)/tests/mpi_check
endif
# The cask command's objects with its main renamed, for the options target.
CLI_LIB  := $(filter-out $(BUILD)/obj/cli/main.o,$(CLI_OBJ)) $(BUILD)/obj/cli/main_lib.o
HEADERS  := $(wildcard include/cask/*.h)

STATIC := $(BUILD)/libcask.a
SHARED := $(BUILD)/libcask.so.$(VERSION)
CASK   := $(BUILD)/cask
CONF   := $(BUILD)/config

.PHONY: all deps deps-list demo demo-run test test-run test-asan test-tsan tsan-run fuzz fuzz-run \
        bench bench-run install uninstall clean check-exports check-layers
.DELETE_ON_ERROR:
.SECONDARY: $(BUILD)/obj/tests/fuzz/replay.o

all: $(STATIC) $(SHARED) $(CASK) $(EXAMPLES)

# The packages deps installs (tests/fresh-machine.sh removes them).
deps-list:
	@echo $(DEB_PKGS)

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

$(BUILD)/obj/%.o: %.c $(CONF)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -c $< -o $@

# libcask.a holds one object, every file linked into it (ld -r): a program
# that uses any of the library links all of it, the library's start
# (collections/init.c, a constructor) included, as with libcask.so.
$(STATIC): $(LIB_OBJ)
	@rm -f $@
	$(LD) -r -o $(BUILD)/cask.o $^
	ar rcs $@ $(BUILD)/cask.o

$(SHARED): $(LIB_OBJ)
	$(CC) $(SAN) -shared -Wl,-soname,libcask.so.$(SOVERSION) -o $@ $^ $(LIBS)
	ln -sf libcask.so.$(VERSION) $(BUILD)/libcask.so.$(SOVERSION)
	ln -sf libcask.so.$(VERSION) $(BUILD)/libcask.so

$(CASK): $(CLI_OBJ) $(STATIC)
	$(CC) $(SAN) -o $@ $(CLI_OBJ) $(STATIC) $(LIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC) $(CONF)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(STATIC) $(CONF)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(STATIC) $(LIBS) -lcmocka

$(BUILD)/tests/mpi_check: tests/mpi/mpi_check.c $(STATIC) $(CONF)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(STATIC) $(LIBS) -lcmocka

$(BUILD)/obj/cli/main_lib.o: $(BUILD)/obj/cli/main.o
	objcopy --redefine-sym main=cask_cli_main $< $@

$(BUILD)/tests/test_fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/obj/tests/fuzz/replay.o $(CLI_LIB) $(STATIC) $(CONF)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/obj/tests/fuzz/replay.o $(CLI_LIB) $(STATIC) $(LIBS)

# libFuzzer binaries: the library and the command built for coverage, with
# AddressSanitizer and UndefinedBehaviorSanitizer (clang), in $(FUZZ_BUILD).
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
$(FUZZ_BUILD)/bin/fuzz_%: tests/fuzz/fuzz_%.c FORCE
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang CFLAGS="-O1 -g" \
	  SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" $(FUZZ_BUILD)/libcask.a \
	  $(CLI_LIB:$(BUILD)/%=$(FUZZ_BUILD)/%)
	@mkdir -p $(dir $@)
	clang $(ALL_CFLAGS) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< \
	  $(CLI_LIB:$(BUILD)/%=$(FUZZ_BUILD)/%) $(FUZZ_BUILD)/libcask.a $(LIBS)
FORCE:

# The goals that install packages first: deps, then a fresh make that
# probes what deps installed.
demo test test-asan test-tsan bench fuzz: deps
	@$(MAKE) --no-print-directory $@-run

demo-run: all
	@for e in $(filter $(BUILD)/examples/00_% $(BUILD)/examples/01_% $(BUILD)/examples/02_% \
	  $(BUILD)/examples/03_% $(BUILD)/examples/04_%,$(EXAMPLES)); do echo "== $$e"; $$e || exit 1; done

test-run: all $(TESTS)
	@BUILD=$(BUILD) sh tests/run.sh

# The stress test runs 1,000,000 tasks here rather than 10,000,000: ASan's
# shadow memory and quarantine would need about 30 GB for the full size.
test-asan-run:
	@CASK_STRESS_TASKS=1000000 $(MAKE) --no-print-directory BUILD=$(BUILD)/asan CC=clang \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  CFLAGS="-O1 -g" test-run

# ThreadSanitizer on the tests that run tasks on several threads.
# The hardening test's stress part runs 100,000 tasks here.
TSAN_TESTS := test_backends test_sync test_futures test_hardening test_budget test_hdf5 \
              test_cache test_pool test_bag test_processes
test-tsan-run:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/tsan CC=clang SAN="-fsanitize=thread" \
	  CFLAGS="-O1 -g" $(addprefix $(BUILD)/tsan/tests/,$(TSAN_TESTS))
	@BUILD=$(BUILD)/tsan ONLY="$(TSAN_TESTS)" TSAN_OPTIONS="halt_on_error=1" \
	  CASK_STRESS_TASKS=100000 sh tests/run.sh

fuzz-run: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/bin/fuzz_%)
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh $(FUZZ_TARGETS)

$(BUILD)/bench/cask_bench: bench/cask_bench.c $(STATIC) $(CONF)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LIBS)

# The native baseline: the same shapes as OpenMP tasks with depend clauses.
$(BUILD)/bench/omp_bench: bench/omp_bench.c $(CONF)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) -O2 -fopenmp -o $@ $<

# And oneTBB's flow graph (Debian's libtbb-dev), the same shapes on 2 threads.
$(BUILD)/bench/tbb_bench: bench/tbb_bench.cpp $(CONF)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -Wall -Wextra -Werror -O2 -o $@ $< -ltbb

bench-run: all $(BUILD)/bench/cask_bench $(BUILD)/bench/omp_bench $(BUILD)/bench/tbb_bench
	@BUILD=$(BUILD) bench/run $(BENCH)

# No file includes a header of a layer above its own (tests/check-layers.sh).
check-layers:
	@sh tests/check-layers.sh

# Every global symbol of libcask.so and of libcask.a starts with cask_
# (cask__ for the internal ones), so linking cask, statically or not,
# cannot clash with a program's own names.
check-exports: $(SHARED) $(STATIC)
	@bad=$$( { nm -D --defined-only $(SHARED); nm --defined-only $(STATIC); } | \
	  awk 'NF == 3 && $$2 ~ /[TDBRCGSV]/ {print $$3}' | grep -v '^cask_' | sort -u || true); \
	if [ -n "$$bad" ]; then echo "global symbols without the cask_ prefix:" $$bad; exit 1; fi

# pkg-config's file, written for the PREFIX of each install: the shared
# library by default, and with --static what libcask.a needs: the libraries
# it calls, by name (Debian's igraph.pc names static libraries that are not
# installed, so it cannot be a Requires.private).
install: all
	install -d $(DESTDIR)$(PREFIX)/include/cask $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(HEADERS) $(DESTDIR)$(PREFIX)/include/cask/
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libcask.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libcask.so.$(SOVERSION)
	ln -sf libcask.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libcask.so
	printf '%s\n' 'prefix=$(PREFIX)' 'exec_prefix=$${prefix}' 'libdir=$${prefix}/lib' \
	  'includedir=$${prefix}/include' '' 'Name: cask' 'Description: lazy task-graph engine for C' \
	  'Version: $(VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lcask' \
	  'Libs.private: $(strip $(LIBS))' \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/cask.pc
	install -m 755 $(CASK) $(DESTDIR)$(PREFIX)/bin/
	-[ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && ldconfig 2>/dev/null || true

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/include/cask/,$(notdir $(HEADERS)))
	-rmdir $(DESTDIR)$(PREFIX)/include/cask 2>/dev/null
	rm -f $(DESTDIR)$(PREFIX)/lib/libcask.a $(DESTDIR)$(PREFIX)/lib/libcask.so \
	      $(DESTDIR)$(PREFIX)/lib/libcask.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libcask.so.$(VERSION) \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/cask.pc $(DESTDIR)$(PREFIX)/bin/cask

clean:
	rm -rf $(BUILD)

-include $(wildcard $(BUILD)/obj/*/*.d $(BUILD)/obj/*/*/*.d $(BUILD)/tests/*.d $(BUILD)/examples/*.d $(BUILD)/bench/*.d)
