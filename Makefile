# Vigie — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit bench bench-guard bench-export bench-audit soak install dev clean

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
	$(BIN)/ruff check src tests bench soak
	$(BIN)/hadolint Dockerfile

typecheck: dev
	$(BIN)/mypy

# Starts what the tests need (Redis, promtool), runs lint, types and every test.
test: dev
	scripts/test-services.sh $(MAKE) --no-print-directory lint typecheck unit

unit: dev
	$(BIN)/pytest -q

# Not part of `make test`: wrk against nginx, a naive proxy and vigie (~4 min), then the
# guard's cost per request (memory and Redis) and the RSS of a 1 GB export through vigie.
bench: $(VENV)/.installed-dev
	scripts/bench-tools.sh
	$(BIN)/python bench/run.py
	scripts/test-services.sh $(MAKE) --no-print-directory bench-guard
	$(BIN)/python bench/export_rss.py

# Not part of `make test` (tests/soak runs 40 s of it): two replicas sharing Redis under mixed
# traffic for SOAK_SECONDS (default 30 minutes) while the upstream, Redis, the JWKS endpoint
# and a replica fail and come back; exits 1 naming any broken promise (docs/reliability.md).
soak: $(VENV)/.installed-dev
	scripts/test-services.sh env PYTHONPATH=. $(BIN)/python -m soak.run --seconds "$${SOAK_SECONDS:-1800}"

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
