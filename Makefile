# infinidata: `make demo` runs the main job, `make test` runs every test. Both set up .venv
# (from the package index) on first use; nothing needs installing by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-stamp
BUILD := build
SRC := $(wildcard src/core/*.c src/core/*.h src/python/*.c src/python/*.h python/infinidata/*) meson.build pyproject.toml
ROWS ?=
# Extra pytest arguments for test-py and sanitize. Tests named there (a path under tests/ or a
# .py file, node ids included) run alone; otherwise the whole of tests/python runs, with any -k
# or other options applied to it: `make test-py PYTEST_ARGS=tests/python/test_format.py`.
PYTEST_ARGS ?=
PYTEST_PATHS = $(if $(filter tests/% %.py,$(PYTEST_ARGS)),,tests/python)

.PHONY: all build demo test test-c test-py bench bench-lists bench-ops bench-torch bench-io bench-quick bench-scale probe clean sanitize tsan fuzz soak

all: build

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "numpy>=2.0" "meson-python>=0.15" "meson>=1.1" ninja pytest hypothesis tqdm
	# optional dependencies, so the tests of their integrations run (torch: the CPU build)
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q pyarrow pandas datasets
	touch $@

$(BUILD)/.installed: $(STAMP) $(SRC)
	$(PY) -m pip install -q --no-build-isolation --no-deps -Cbuild-dir=$(BUILD)/py .
	touch $@

build: $(BUILD)/.installed

demo: build
	$(PY) examples/demo.py $(if $(ROWS),--rows $(ROWS),)

MESON := PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/meson
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# The C tests always run under AddressSanitizer + UndefinedBehaviorSanitizer (leaks included).
$(BUILD)/c/build.ninja: $(STAMP) meson.build tests/c/meson.build
	rm -rf $(BUILD)/c
	$(MESON) setup $(BUILD)/c --buildtype=debugoptimized -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fno-omit-frame-pointer

test-c: $(BUILD)/c/build.ninja
	$(SAN_ENV) $(MESON) test -C $(BUILD)/c --print-errorlogs

# The whole pytest suite against an ASan+UBSan build of the extension (runtime preloaded).
# PYTHONPATH is absolute: the suite's subprocesses (run from other directories) import the
# sanitized package too, and need no normal build (`make sanitize` works in a fresh clone).
sanitize: test-c
	$(MESON) compile -C $(BUILD)/c
	rm -rf $(BUILD)/asan-pkg && mkdir -p $(BUILD)/asan-pkg/infinidata
	cp python/infinidata/*.py python/infinidata/*.pyi $(BUILD)/asan-pkg/infinidata/
	cp $(BUILD)/c/_infinidata*.so $(BUILD)/asan-pkg/infinidata/
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	PYTHONPATH=$(CURDIR)/$(BUILD)/asan-pkg $(PY) -m pytest $(PYTEST_PATHS) -q -p no:cacheprovider $(PYTEST_ARGS)

# ThreadSanitizer over the C tests of the batch iterator, reference counting and the threaded
# text encoding pipeline (test_store).
tsan: $(STAMP)
	rm -rf $(BUILD)/tsan
	$(MESON) setup $(BUILD)/tsan --buildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false
	TSAN_OPTIONS=halt_on_error=1 $(MESON) test -C $(BUILD)/tsan --print-errorlogs test_batch test_view test_tmp test_writer test_sort test_store

test-py: build
	$(PY) -m pytest $(PYTEST_PATHS) -q $(PYTEST_ARGS)

test: test-c test-py

bench: build $(BUILD)/limits
	$(PY) bench/run.py
	$(PY) bench/torch_bench.py
	$(PY) bench/writes.py
	$(PY) bench/io_parquet.py
	$(PY) bench/lists_bench.py

# A shuffled pass over a list column (Ragged and padded) vs fixed-width columns of the same
# bytes and HF datasets' Sequence(int32) (bench/lists_bench.py, ~1-2 minutes; results in
# bench/results/lists.{md,json})
bench-lists: build
	$(PY) bench/lists_bench.py $(LISTS_ARGS)

# Parquet import (~218 MB in 4 files) against pyarrow.parquet.read_table and HF from_parquet
bench-io: build
	$(PY) bench/io_parquet.py

# infinidata.torch against DataLoader over np.memmap, HF datasets and MosaicML streaming
# Dataset operations (sort, shard, split, filter, map) vs HF datasets on 10M rows (bench/ops_bench.py)
bench-ops: build
	$(PY) bench/ops_bench.py $(OPS_ARGS)

bench-torch: build
	$(PY) bench/torch_bench.py

# Larger than memory (bench/scale.py): a table of SCALE x RAM (default 1.2; SCALE=0.05 for a
# try) of 4 KiB rows, built, shuffled, read shuffled and contiguous from a cold page cache (every
# row checked) next to the probe's disk limits; needs SCALE x RAM of free disk in the temp area
# (INFINIDATA_TMPDIR, else ./.infinidata_tmp) and root to drop the page cache. Results in
# bench/results/scale-latest.{md,json}. Not part of make test.
SCALE ?= 1.2
SCALE_ARGS ?=
bench-scale: build $(BUILD)/limits
	$(PY) bench/scale.py --scale $(SCALE) $(SCALE_ARGS)

# The probe (bench/limits.c): what this machine can do at best (memcpy, random gather, shuffle,
# sequential file write, random 4 KiB O_DIRECT reads at queue depths 1-64, sequential O_DIRECT
# read). `make probe` runs every test (a 4 GiB scratch file in PROBE_DIR, removed after) and
# writes bench/results/probe.json; `build/limits TEST [options]` runs one (see the file's head).
PROBE_DIR ?= $(or $(TMPDIR),/tmp)
$(BUILD)/limits: bench/limits.c
	@mkdir -p $(BUILD)
	$(CC) -O2 -std=c11 -Wall -Wextra -pthread bench/limits.c -o $@

probe: $(BUILD)/limits
	@mkdir -p bench/results
	$(BUILD)/limits all --dir $(PROBE_DIR) > bench/results/probe.json.tmp
	mv bench/results/probe.json.tmp bench/results/probe.json
	cat bench/results/probe.json

bench-quick: build
	$(PY) bench/run.py --quick

clean:
	rm -rf $(BUILD) .infinidata_tmp

# libFuzzer over the loader (tests/fuzz/fuzz_load.c) and over one store image
# (tests/fuzz/fuzz_store.c), each for FUZZ_SECONDS, side by side (one core each), with ASan
# and UBSan. Built with clang straight over src/core (clang is installed if missing). Seeds
# come from tests/fuzz/corpus (tests/fuzz/make_seeds.py) and tests/fuzz/regressions; what the
# fuzzer finds goes to build/fuzz/work-*; a crashing input lands in build/fuzz/crash-* (keep it
# under tests/fuzz/regressions/<harness>/ once fixed: `make test` replays those).
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer -D_GNU_SOURCE -std=c11 -Wall -Wextra -Isrc/core
fuzz:
	@command -v clang >/dev/null || { apt-get update && apt-get install -y clang; }
	@mkdir -p $(BUILD)/fuzz/work-load $(BUILD)/fuzz/work-store
	rm -f $(BUILD)/fuzz/fuzz_load $(BUILD)/fuzz/fuzz_store
	clang $(FUZZ_CFLAGS) tests/fuzz/fuzz_load.c src/core/*.c -o $(BUILD)/fuzz/fuzz_load -lpthread & p1=$$!; \
	clang $(FUZZ_CFLAGS) tests/fuzz/fuzz_store.c src/core/*.c -o $(BUILD)/fuzz/fuzz_store -lpthread & p2=$$!; \
	wait $$p1 && wait $$p2
	@for h in load store; do \
		ASAN_OPTIONS=detect_leaks=1:malloc_context_size=10 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(BUILD)/fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -timeout=30 -print_final_stats=1 -dict=tests/fuzz/dtypes.dict \
			-artifact_prefix=$(BUILD)/fuzz/crash-$$h- $(BUILD)/fuzz/work-$$h tests/fuzz/corpus/$$h \
			$$(ls -d tests/fuzz/regressions/$$h 2>/dev/null) > $(BUILD)/fuzz/$$h.log 2>&1 & \
		eval pid_$$h=$$!; \
	done; fail=0; wait $$pid_load || fail=1; wait $$pid_store || fail=1; \
	for h in load store; do \
		echo "== fuzz_$$h ($(FUZZ_SECONDS) s)"; \
		grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::peak_rss' $(BUILD)/fuzz/$$h.log; \
		if grep -qE 'ERROR: |runtime error|^==[0-9]+==' $(BUILD)/fuzz/$$h.log; then fail=1; tail -60 $(BUILD)/fuzz/$$h.log; fi; \
	done; exit $$fail

# A long run of the model-based test (tests/python/test_model.py): hundreds of random programs.
soak: build
	INFINIDATA_SOAK=1 $(PY) -m pytest tests/python/test_model.py -q $(PYTEST_ARGS)
