# modelbus: `make run` starts everything on the embedded default; `make test` runs the whole suite.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[embedded,dev,wandb]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/modelbus up --demo --port $${PORT:-8000}

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/pip install -q -e ".[embedded,dev,wandb,bench]"
	$(BIN)/python -m tests.benchmarks.run

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check schemas producers consumers api infra

clean:
	rm -rf $(VENV) .modelbus .pytest_cache
