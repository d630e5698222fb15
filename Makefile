# Porcelain: each target builds .venv when it is missing, so a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

WEB_DIST := web/dist/index.html
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/build.mjs web/package.json web/package-lock.json

.PHONY: run test lint typecheck bench demo clean web

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The browser side (web/dist), rebuilt only when it is missing or older than its sources.
web: $(WEB_DIST)

$(WEB_DIST): $(WEB_SOURCES)
	cd web && npm ci && npm run build

run: $(STAMP) web
	$(BIN)/helpline serve

# The suite mostly waits on real processes, sockets and a browser, so two workers (pytest-xdist)
# halve its time on two cores; a file's tests stay together, so module fixtures start once.
TEST_WORKERS ?= 2

test: $(STAMP) web
	cd web && npm test
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check engine protocol replay tests bench examples
	$(BIN)/ruff format --check engine protocol replay tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

# The bench extra: the socket.io peer and the sweep's chart.
$(VENV)/.bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(VENV)/.bench

bench: $(VENV)/.bench
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache web/dist web/node_modules test-output

demo: $(STAMP)
	$(BIN)/python examples/demo.py
