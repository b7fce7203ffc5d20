# Sealmark. Quick start: `make run`, `make test`. Everything installs into ./.venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/sealmark/v1/*.proto)

.PHONY: run test unit integration bench proto proto-check lint clean venv softhsm

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Sealmark needs Python 3.11+")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/sealmark serve --seed-demo

# SoftHSM2 is the PKCS#11 token the HSM tests sign with (apt-get installs it when missing).
softhsm:
	@bash scripts/ensure-softhsm.sh

test: $(STAMP) softhsm
	$(PY) -m pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP) softhsm
	$(PY) -m pytest tests/integration tests/e2e $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/sealmark bench $(BENCH)

proto: $(STAMP)
	$(PY) -m sealmark.protogen .

lint: $(STAMP)
	$(VENV)/bin/ruff check sealmark issuer aggregator verifier audit tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
