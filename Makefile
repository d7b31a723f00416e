# Quick start: `make demo`, then `make test`. Both set up .venv from scratch when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= runs/demo

.PHONY: setup demo demo-quick test test-all clean

setup: $(STAMP)

# torch is pinned here to the CPU build these machines carry; the package itself asks for torch>=2.4,
# so GPU users keep the build they installed.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

# The toy world (built once, beside OUT) and the default study on it; `demo-quick` is the few-minute version.
demo: $(STAMP)
	$(BIN)/rmteach demo --out $(OUT)

demo-quick: $(STAMP)
	$(BIN)/rmteach demo --quick --out $(OUT)-quick

# The fast tier (about a minute on 2 cores): unit, pure and doctests, one end-to-end run of each command.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal -m "not slow"

# Everything (CI runs this): multi-process launches, servers, fuzzing, the browser, benchmarks in smoke mode.
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal

clean:
	rm -rf $(VENV) runs
