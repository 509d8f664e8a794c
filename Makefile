# Herald's one task runner. Every target installs what it needs first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
AS_OF ?= 2026-11-22
DEMO_DB := data/demo.duckdb

.PHONY: install run test lint format docs bench demo-data clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Herald needs $(PYTHON) on PATH (set PYTHON=...)"; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

$(DEMO_DB): | $(STAMP)
	$(PY) run.py demo-data --out $(DEMO_DB)

demo-data: $(DEMO_DB)

run: $(STAMP) $(DEMO_DB)
	$(PY) run.py run --all --as-of $(AS_OF) --out out

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/render.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: $(STAMP)
	$(PY) -m reports.reference README.md

clean:
	rm -rf out data/demo.duckdb .pytest_cache
