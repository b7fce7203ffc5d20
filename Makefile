# Sealmark. Quick start: `make run`, `make test`. Everything installs into ./.venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/sealmark/v1/*.proto)

.PHONY: run test unit integration fuzz bench proto proto-check lint clean venv softhsm chromium

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

# Debian's Chromium and ChromeDriver drive the consumer page tests (tests/e2e/test_verify_page.py);
# apt-get installs them when /usr/bin/chromium or /usr/bin/chromedriver is missing, with a CJK
# font so that screenshots of the Chinese page are readable (root, or sudo; no prompt).
CHROMIUM_PACKAGES := chromium chromium-driver fonts-wqy-zenhei
CHROMIUM_BIN ?= /usr/bin/chromium
CHROMEDRIVER_BIN ?= /usr/bin/chromedriver
chromium:
	@if [ -x $(CHROMIUM_BIN) ] && [ -x $(CHROMEDRIVER_BIN) ]; then \
	  echo "chromium: $$($(CHROMEDRIVER_BIN) --version | cut -d' ' -f1-2) present"; \
	else \
	  command -v apt-get >/dev/null || { echo "chromium: missing and no apt-get; install chromium and chromium-driver by hand" >&2; exit 1; }; \
	  SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  echo "chromium: missing; running: $$SUDO apt-get update && $$SUDO apt-get install -y $(CHROMIUM_PACKAGES)"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null \
	    && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(CHROMIUM_PACKAGES) </dev/null \
	    || { echo "chromium: apt-get failed; install $(CHROMIUM_PACKAGES) by hand" >&2; exit 1; }; \
	  [ -x $(CHROMIUM_BIN) ] && [ -x $(CHROMEDRIVER_BIN) ] \
	    || { echo "chromium: installed, but $(CHROMIUM_BIN) or $(CHROMEDRIVER_BIN) is still missing" >&2; exit 1; }; \
	fi

test: $(STAMP) softhsm chromium
	$(PY) -m pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP) softhsm chromium
	$(PY) -m pytest tests/integration tests/e2e $(PYTEST_ARGS)

# Every RPC with every field and every hostile mutation (make test runs a bounded draw);
# SEALMARK_FUZZ_SEED=<n> draws other random values where the run draws any.
fuzz: $(STAMP)
	SEALMARK_FUZZ=long $(PY) -m pytest -s tests/e2e/test_fuzz_rpcs.py tests/e2e/test_hostile_operations.py $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/sealmark bench $(BENCH)

proto: $(STAMP)
	$(PY) -m sealmark.protogen .

lint: $(STAMP)
	$(VENV)/bin/ruff check sealmark sealmark_app issuer aggregator verifier audit tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
