# Vigie — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit fuzz bench bench-guard bench-export bench-audit install dev clean

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

# Not part of `make test` (which runs the same fuzzers with bounded examples): the upstream
# client against h11 and raw requests through vigie, long (FUZZ_EXAMPLES each).
FUZZ_EXAMPLES ?= 5000
fuzz: dev
	VIGIE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) scripts/test-services.sh $(BIN)/pytest -q tests/upstream_fuzz

# Not part of `make test`: wrk against nginx, a naive proxy and vigie (~4 min), then the
# guard's cost per request (memory and Redis) and the RSS of a 1 GB export through vigie.
bench: $(VENV)/.installed-dev
	scripts/bench-tools.sh
	$(BIN)/python bench/run.py
	scripts/test-services.sh $(MAKE) --no-print-directory bench-guard
	$(BIN)/python bench/export_rss.py

bench-guard: $(VENV)/.installed-dev
	$(BIN)/python bench/guard_bench.py --redis "$${VIGIE_TEST_REDIS:-redis://127.0.0.1:6379/14}"

bench-export: $(VENV)/.installed-dev
	$(BIN)/python bench/export_rss.py

# Generates a 10-million-line audit log once (~7 min, 5.6 GB in /tmp), then times
# `vigie audit exposed` over it.
bench-audit: $(VENV)/.installed-dev
	$(BIN)/python bench/audit_bench.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
