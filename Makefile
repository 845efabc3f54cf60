# Vigie — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit bench install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/vigie demo

lint: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/hadolint Dockerfile

typecheck: dev
	$(BIN)/mypy

# Starts what the tests need (Redis, promtool), runs lint, types and every test.
test: dev
	scripts/test-services.sh $(MAKE) --no-print-directory lint typecheck unit

unit: dev
	$(BIN)/pytest -q

bench: $(VENV)/.installed-dev
	scripts/bench-tools.sh
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
