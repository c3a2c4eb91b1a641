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

.PHONY: all build demo test test-c test-py bench bench-quick clean sanitize

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

$(BUILD)/c/build.ninja: $(STAMP) meson.build tests/c/meson.build
	rm -rf $(BUILD)/c
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/meson setup $(BUILD)/c --buildtype=debugoptimized

test-c: $(BUILD)/c/build.ninja
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/meson test -C $(BUILD)/c --print-errorlogs

test-py: build
	$(PY) -m pytest tests/python -q $(PYTEST_ARGS)

test: test-c test-py

bench: build
	$(PY) bench/run.py

bench-quick: build
	$(PY) bench/run.py --quick

clean:
	rm -rf $(BUILD) .infinidata_tmp
