# qid - one GNU Makefile.
#
#   make            build build/qid
#   make check      install missing Debian packages (root only), build, run every test with prove
#   make check-slurm  the slurm/ scripts against a private one-node Slurm (installs slurm-wlm
#                   and munge as root with apt-get; skips where it cannot)
#   make check-hosts  a sweep across three network namespaces over TCP, one killed mid-run
#                   (root; skips where namespaces cannot be made)
#   make check-sanitize  every test again, built with ASan, UBSan and LeakSanitizer (build-san/)
#   make deps       install missing Debian packages with apt-get (root on Debian only; never
#                   when pkg-config already finds everything, never without root)
#   make demo       the embedded default end to end (docs/demo.md)
#   make bench      benchmarks
#   make bench-soak a job of 20,010 tiny tasks at 3 ranks: rank 0's memory, append time, reads (tools/soak.sh)
#   make fuzz       build the fuzz targets (clang + libFuzzer), FUZZ_SECONDS=N to run them
#   make install    PREFIX=/usr/local (DESTDIR honoured)
#   make clean
#
# On a cluster without pkg-config files, set the flags yourself, e.g.
#   make HDF5_CFLAGS=-I/opt/hdf5/include HDF5_LIBS='-L/opt/hdf5/lib -lhdf5'
# Variables: CC, CFLAGS, LDFLAGS, PKG_CONFIG, HDF5_PC, {HDF5,MPI,LAPACKE,BLAS,CJSON,ZIP,PCRE2,UTF8PROC}_{CFLAGS,LIBS}.
# User CFLAGS are added after the project's. CI (CI set in the environment) adds -Werror.

CC ?= cc
PKG_CONFIG ?= pkg-config
HDF5_PC ?= hdf5-openmpi
PREFIX ?= /usr/local
BUILD ?= build
PROVE ?= prove

# Flags from pkg-config unless given on the command line or in the environment.
define pc_default
ifeq ($$(origin $(1)_CFLAGS),undefined)
$(1)_CFLAGS := $$(shell $$(PKG_CONFIG) --cflags $(2) 2>/dev/null)
endif
ifeq ($$(origin $(1)_LIBS),undefined)
$(1)_LIBS := $$(shell $$(PKG_CONFIG) --libs $(2) 2>/dev/null)
endif
endef
$(eval $(call pc_default,HDF5,$(HDF5_PC)))
$(eval $(call pc_default,MPI,ompi-c))
$(eval $(call pc_default,LAPACKE,lapacke))
$(eval $(call pc_default,BLAS,openblas))
$(eval $(call pc_default,CJSON,libcjson))
$(eval $(call pc_default,ZIP,libzip))
$(eval $(call pc_default,PCRE2,libpcre2-8))
$(eval $(call pc_default,UTF8PROC,libutf8proc))

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
        -Wformat=2 -Wvla -Wno-unused-parameter -Wno-format-truncation
ifneq ($(CI),)
WARN += -Werror
endif
QID_VERSION := 0.1.0
GIT_REV := $(shell git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
BASE_CFLAGS := -std=c17 -O2 -g -fno-fast-math -fopenmp $(WARN) -D_POSIX_C_SOURCE=200809L \
               -DQID_VERSION='"$(QID_VERSION)"' -DQID_GIT_REV='"$(GIT_REV)"' -Iinclude
DEP_CFLAGS := $(HDF5_CFLAGS) $(MPI_CFLAGS) $(LAPACKE_CFLAGS) $(BLAS_CFLAGS) $(CJSON_CFLAGS) $(ZIP_CFLAGS) \
              $(PCRE2_CFLAGS) $(UTF8PROC_CFLAGS)
DEP_LIBS := -fopenmp $(HDF5_LIBS) $(MPI_LIBS) $(LAPACKE_LIBS) $(BLAS_LIBS) $(CJSON_LIBS) $(ZIP_LIBS) $(PCRE2_LIBS) \
            $(UTF8PROC_LIBS) -lm
ALL_CFLAGS = $(BASE_CFLAGS) $(DEP_CFLAGS) -DQID_CFLAGS='"$(strip $(CFLAGS))"' $(CFLAGS)

# src/<stage>/*.c; src/cli/main.c is the program's main, the rest is libqid.a
LIB_SRC := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
LIB := $(BUILD)/libqid.a
QID := $(BUILD)/qid

TEST_SRC := $(wildcard test/test_*.c)
TEST_BIN := $(TEST_SRC:test/test_%.c=$(BUILD)/test/%.t)
# test/slurm.t starts root daemons and may install Slurm: `make check-slurm` only;
# test/hosts.t makes network namespaces as root: `make check-hosts` only
SLURM_TEST := test/slurm.t
HOSTS_TEST := test/hosts.t
TEST_SCRIPTS := $(filter-out $(SLURM_TEST) $(HOSTS_TEST),$(wildcard test/*.t))
TAP_OBJ := $(BUILD)/test/tap.o

.PHONY: FORCE all check check-slurm check-hosts check-sanitize deps demo bench bench-soak benches fuzz install clean tests format-check
.DEFAULT_GOAL := all
# keep test objects between runs
.SECONDARY:

all: $(QID)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# version.o records the git revision: rebuild it when the revision changes.
$(BUILD)/gitrev: FORCE | $(BUILD)/obj
	@echo '$(GIT_REV)' | cmp -s - $@ || echo '$(GIT_REV)' > $@
$(BUILD)/obj/core/version.o: $(BUILD)/gitrev
FORCE:

$(LIB): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(QID): $(BUILD)/obj/cli/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(TAP_OBJ): test/tap.c test/tap.h | $(BUILD)/test
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/test/%.o: test/test_%.c | $(BUILD)/test
	$(CC) $(ALL_CFLAGS) -Itest -MMD -MP -c $< -o $@

$(BUILD)/test/%.t: $(BUILD)/test/%.o $(TAP_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(BUILD)/obj $(BUILD)/test:
	mkdir -p $@

# test/store_lock.t's LD_PRELOAD shim (a file system without flock); built
# without the project's CFLAGS so that it loads beside a sanitized qid too
NOFLOCK := $(BUILD)/test/noflock.so
$(NOFLOCK): test/noflock.c | $(BUILD)/test
	$(CC) -shared -fPIC -O2 $(WARN) -o $@ $< -ldl

tests: $(QID) $(TEST_BIN) $(NOFLOCK)

# `deps` runs first; the build then happens in a fresh make so pkg-config sees
# what was just installed.
check: deps
	@$(MAKE) --no-print-directory tests
	QID=$(QID) $(PROVE) --exec '' $(PROVE_FLAGS) $(TEST_BIN) $(TEST_SCRIPTS)

# Every test and qid built with AddressSanitizer, UBSan and LeakSanitizer in
# build-san/, then run as `make check` runs them (about 3x slower).
# allocator_may_return_null: error.t asks for 4 EiB on purpose to test qid's
# out-of-memory path; ASan would abort instead of returning NULL.
# Leaks are checked in the test programs, with test/sanitize.supp for the
# process-lifetime allocations of Open MPI and HDF5. The shell tests run qid
# under mpirun, where Open MPI's components leak from code it has already
# dlclose()d: LSan reports those frames as "<unknown module>", which no
# suppression can name, so there leaks are not checked (memory errors and
# undefined behaviour still are, and stop the test).
SAN_BUILD := build-san
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1
SAN_ENV := UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
           LSAN_OPTIONS=suppressions=$(CURDIR)/test/sanitize.supp:print_suppressions=0 \
           BUILD=$(SAN_BUILD) QID=$(SAN_BUILD)/qid
check-sanitize: deps
	@$(MAKE) --no-print-directory BUILD=$(SAN_BUILD) CFLAGS="$(CFLAGS) $(SAN_FLAGS)" \
	    LDFLAGS="$(LDFLAGS) -fsanitize=address,undefined" tests
	$(SAN_ENV) ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 $(PROVE) --exec '' $(PROVE_FLAGS) \
	    $(TEST_BIN:$(BUILD)/%=$(SAN_BUILD)/%)
	$(SAN_ENV) ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=0 $(PROVE) --exec '' $(PROVE_FLAGS) \
	    $(TEST_SCRIPTS)

# The slurm/ batch scripts against a real one-node Slurm that test/slurm.t
# starts and stops (tools/slurm-local.sh; as root with apt-get it installs
# slurm-wlm and munge first, elsewhere it skips). Not in `check`: it installs
# daemons a cluster user never needs and takes a minute or two.
check-slurm: deps
	@$(MAKE) --no-print-directory tests
	QID=$(QID) BUILD=$(BUILD) $(PROVE) --exec '' $(PROVE_FLAGS) $(SLURM_TEST)

# The demo's small sweep across three "hosts": network namespaces joined by
# a bridge, mpirun's daemons started through an agent that enters them
# (test/hosts.t). Root only (it skips otherwise, and where the kernel or a
# container does not allow namespaces); about a minute.
check-hosts: deps
	@$(MAKE) --no-print-directory tests
	QID=$(QID) $(PROVE) --exec '' $(PROVE_FLAGS) $(HOSTS_TEST)

deps:
	@PKG_CONFIG='$(PKG_CONFIG)' HDF5_PC='$(HDF5_PC)' sh tools/deps.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@sh tools/demo.sh $(QID)

BENCH_SRC := $(wildcard test/bench_*.c)
BENCH_BIN := $(BENCH_SRC:test/bench_%.c=$(BUILD)/bench/%)
$(BUILD)/bench/%: test/bench_%.c $(LIB) | $(BUILD)/bench
	$(CC) $(ALL_CFLAGS) -Itest -o $@ $^ $(LDFLAGS) $(DEP_LIBS)
$(BUILD)/bench:
	mkdir -p $@
benches: $(QID) $(BENCH_BIN)

bench: deps
	@$(MAKE) --no-print-directory benches
	@for b in $(BENCH_BIN); do $$b || exit 1; done

# Not part of `bench`: about 7 minutes on 2 cores (docs/benchmarks.md § Soak).
bench-soak: deps
	@$(MAKE) --no-print-directory all
	@sh tools/soak.sh $(QID)

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 0
FUZZ_TARGETS := $(patsubst test/fuzz/fuzz_%.c,$(BUILD)/fuzz/%,$(wildcard test/fuzz/fuzz_*.c))
$(BUILD)/fuzz/%: test/fuzz/fuzz_%.c $(LIB_SRC) | $(BUILD)/fuzz
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -std=c17 -D_POSIX_C_SOURCE=200809L \
	  -DQID_VERSION='"$(QID_VERSION)"' -DQID_GIT_REV='"$(GIT_REV)"' -DQID_CFLAGS='"fuzz"' -Iinclude \
	  $(DEP_CFLAGS) -o $@ $< $(LIB_SRC) $(DEP_LIBS)
$(BUILD)/fuzz:
	mkdir -p $@
fuzz: $(FUZZ_TARGETS)
	@for t in $(FUZZ_TARGETS); do \
	  name=$$(basename $$t); mkdir -p $(BUILD)/fuzz/corpus-$$name; \
	  if [ "$(FUZZ_SECONDS)" -gt 0 ]; then \
	    echo "fuzzing $$name for $(FUZZ_SECONDS)s"; \
	    $$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(BUILD)/fuzz/corpus-$$name test/fuzz/seeds-$$name || exit 1; \
	  fi; \
	done

install: $(QID)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/qid/hdf5-schema $(DESTDIR)$(PREFIX)/share/qid/jobs
	install -m 755 $(QID) $(DESTDIR)$(PREFIX)/bin/qid
	install -m 644 hdf5-schema/* $(DESTDIR)$(PREFIX)/share/qid/hdf5-schema/
	install -m 644 jobs/* $(DESTDIR)$(PREFIX)/share/qid/jobs/

format-check:
	clang-format --dry-run --Werror src/*/*.c src/*/*.h include/*.h test/*.c test/*.h test/fuzz/*.c

clean:
	rm -rf $(BUILD) $(SAN_BUILD)

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/cli/main.d $(TEST_BIN:.t=.d) $(TAP_OBJ:.o=.d)
