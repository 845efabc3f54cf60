# Vigie — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit interop fuzz soak bench bench-guard bench-export bench-audit install dev clean lock sbom register

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# The locked versions first (hash-checked), then the project itself; a dependency added to
# pyproject.toml but not yet locked still installs (tests/deploy/test_lock.py then asks for
# `make lock`).
$(VENV)/.installed-dev: pyproject.toml requirements-dev.lock | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/vigie demo

lint: dev
	$(BIN)/ruff check src tests bench interop soak
	$(BIN)/hadolint Dockerfile

typecheck: dev
	$(BIN)/mypy

# Starts what the tests need (Redis, promtool), runs lint, types and every test.
test: dev
	scripts/test-services.sh $(MAKE) --no-print-directory lint typecheck unit

unit: dev
	$(BIN)/pytest -q

# Vigie against a real OpenID Connect server (oidc-provider, two realms, rotating keys):
# installs it with npm (Node 20+) into $(INTEROP_DIR), then runs the interop suite (~20 s).
INTEROP_DIR := build/interop

$(INTEROP_DIR)/.installed: interop/package.json interop/package-lock.json
	@command -v npm >/dev/null || { echo "make interop needs Node 20+ and npm" >&2; exit 1; }
	mkdir -p $(INTEROP_DIR)
	cp interop/package.json interop/package-lock.json $(INTEROP_DIR)/
	cd $(INTEROP_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

interop: dev $(INTEROP_DIR)/.installed
	VIGIE_INTEROP_DIR=$(INTEROP_DIR) $(BIN)/pytest -q interop

# The register of the example policies, for the DPO (tests/register checks it is up to date).
register: $(VENV)/.installed
	$(BIN)/vigie policy report policies --format md --output docs/register.md
	$(BIN)/vigie policy report policies --format html --output docs/register.html

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

# requirements.lock (the image) and requirements-dev.lock (CI, `make dev`): exact versions
# with hashes, resolved for Python 3.11 on Linux from pyproject.toml.
LOCK_FLAGS := --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
	--no-emit-find-links --no-emit-trusted-host
lock: $(VENV)/.installed-dev
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile $(LOCK_FLAGS) -o requirements.lock pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile $(LOCK_FLAGS) --extra dev -o requirements-dev.lock pyproject.toml

# CycloneDX SBOM of what the image contains: vigie and the locked runtime dependencies.
sbom: $(VENV)/.installed-dev
	mkdir -p build
	$(BIN)/cyclonedx-py requirements --pyproject pyproject.toml --mc-type application \
		--output-reproducible --of JSON -o build/sbom.cdx.json requirements.lock
	@echo "build/sbom.cdx.json"

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
