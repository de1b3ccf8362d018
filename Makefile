# earmark: two set-up commands for a fresh machine, `make demo` and `make test`.
# Everything installs into .venv. torch is pinned to 2.13.0 in pyproject.toml (CPU wheel here).

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
EARMARK := $(BIN)/earmark
DEMO_DIR ?= earmark-data/demo
DEMO_SPEAKERS ?= 40
DEMO_SEED ?= 7
DEMO_EPOCHS ?= 25
export EARMARK_DATA_DIR ?= earmark-data

.PHONY: install dev demo demo-data test lint bench gpu-wheels clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

lint: dev
	$(BIN)/ruff check app ml earmark tests bench migrations

test: dev lint
	$(BIN)/python -m pytest

demo-data: install
	@# A no-op when the folder already holds this data set; refused when an older earmark (another
	@# generator version) or other options made it.
	$(EARMARK) synth $(DEMO_DIR) --speakers $(DEMO_SPEAKERS) --seed $(DEMO_SEED) || { \
	  echo "make: $(DEMO_DIR) holds other demo data (other options, or an older earmark): remove it"; \
	  echo "      and the store in $(EARMARK_DATA_DIR) (its runs are of the old data), then run make demo again."; \
	  exit 1; }
	$(EARMARK) ingest $(DEMO_DIR)/speech_commands --name demo

# The whole loop: train and infer, project, analyze, flag the top cut-off finding, retrain on the
# corrected labels, then serve with the Compare page showing what changed.
demo: demo-data
	$(EARMARK) train --dataset demo --name baseline --epochs $(DEMO_EPOCHS)
	$(EARMARK) project --run baseline
	$(EARMARK) analyze --run baseline
	$(EARMARK) flag-finding --run baseline --top cutoff
	$(EARMARK) train --dataset demo --name retrained --epochs $(DEMO_EPOCHS) --apply-flags --cutoff-policy class
	$(EARMARK) project --run retrained
	$(EARMARK) analyze --run retrained
	$(EARMARK) serve --host 127.0.0.1 --port 8000

bench: dev
	$(BIN)/python bench/ingest.py

# Wheels the GPU machine lacks, into .whl/ (git-ignored), for bench/gpu_run.sh there.
gpu-wheels: install
	bench/gpu_wheels.sh

clean:
	rm -rf $(VENV) earmark-data .pytest_cache .ruff_cache
