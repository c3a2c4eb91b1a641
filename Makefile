# infinidata: `make demo` runs the main job, `make test` runs every test. Both set up .venv
# (from the package index) on first use; nothing needs installing by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-stamp
BUILD := build
SRC := $(wildcard src/core/*.c src/core/*.h src/python/*.c src/python/*.h python/infinidata/*) meson.build pyproject.toml
ROWS ?=
PYTEST_ARGS ?=

.PHONY: all build demo test test-c test-py bench bench-quick clean sanitize tsan

all: build

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "numpy>=2.0" "meson-python>=0.15" "meson>=1.1" ninja pytest hypothesis
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
sanitize: test-c
	$(MESON) compile -C $(BUILD)/c
	rm -rf $(BUILD)/asan-pkg && mkdir -p $(BUILD)/asan-pkg/infinidata
	cp python/infinidata/*.py python/infinidata/*.pyi $(BUILD)/asan-pkg/infinidata/
	cp $(BUILD)/c/_infinidata*.so $(BUILD)/asan-pkg/infinidata/
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	PYTHONPATH=$(BUILD)/asan-pkg $(PY) -m pytest tests/python -q -p no:cacheprovider $(PYTEST_ARGS)

# ThreadSanitizer over the C tests of the batch iterator and reference counting.
tsan: $(STAMP)
	rm -rf $(BUILD)/tsan
	$(MESON) setup $(BUILD)/tsan --buildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false
	TSAN_OPTIONS=halt_on_error=1 $(MESON) test -C $(BUILD)/tsan --print-errorlogs test_batch test_view

test-py: build
	$(PY) -m pytest tests/python -q $(PYTEST_ARGS)

test: test-c test-py

bench: build
	$(PY) bench/run.py

bench-quick: build
	$(PY) bench/run.py --quick

clean:
	rm -rf $(BUILD) .infinidata_tmp
