# One entry point for set-up, tests and the demo. Everything runs inside .venv, created on first use.
# TORCH picks the torch build: the default is the CPU wheel these machines carry; on a GPU machine use
# e.g. `make test TORCH=torch` (or install torch yourself into .venv first).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: venv test test-fast test-slow lint demo bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# Everything CI runs: lint, types, the fast suite and the full SD-1.5-size parity fixtures (~9 GB RAM).
test: lint
	$(BIN)/pytest -q -m "slow or not slow"

# Lint, types and the fast suite (tiny components, tiny parity fixtures): a few minutes.
test-fast: lint
	$(BIN)/pytest -q

# Only the full SD-1.5-size parity fixtures (depth 352 / 480, segmentation and referring 512), up to 9.2 GB RSS.
test-slow: venv
	$(BIN)/pytest -q -m slow

# The embedded default: synthetic scenes, a tiny VPD depth model trained on this CPU, a report.
demo: venv
	$(BIN)/vpd demo --out runs/demo

bench: venv
	$(BIN)/python benchmarks/backbone.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
