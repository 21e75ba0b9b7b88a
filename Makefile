# The commands people run. `make serve` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-fast lint install bench services

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the service on the embedded default: SQLite under ./var, in-process workers.
serve: $(STAMP)
	mkdir -p var
	$(BIN)/apexverify migrate
	$(BIN)/apexverify serve --init-demo

## Run the whole test suite (starts PostgreSQL/Redis when this machine has them, installs
## Debian's chromium for the dashboard's browser tests when it can). Two pytest-xdist workers:
## most tests wait on servers they start; the shared PostgreSQL/Redis tests stay on one.
test: $(STAMP)
	-@bash scripts/start-services.sh
	-@bash scripts/install-browser.sh
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

## The fast tier alone: the app in-process on fresh SQLite with fakes (no server process).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m fast

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

## Every benchmark (each also runs alone; figures go to docs/benchmarks.md).
bench: $(STAMP)
	$(BIN)/python bench/parse_upload.py
	$(BIN)/python bench/phone_offline.py
	$(BIN)/python bench/email_smtp.py
	$(BIN)/python bench/scaleout.py
	$(BIN)/python bench/scaleout_parse.py
	$(BIN)/python bench/lifecycle.py --rows 1000000 --load --lab 50000
	$(BIN)/python bench/xlsx_writers.py --rows 200000
