# Herald's one task runner. Every target installs what it needs first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The BigQuery emulator lives in its own environment: its dependencies are many and not ours.
BQ_VENV := .venv-bq
BQ_STAMP := $(BQ_VENV)/.installed
BQ_PINS := bqemulator==1.4.0 duckdb==1.5.5 duckdb-extension-spatial==1.5.5 numpy==2.3.5
AS_OF ?= 2026-11-22
DEMO_DB := data/demo.duckdb

.PHONY: install run test lint format docs bench demo-data clean postgres redis harfbuzz chromium

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

run: $(STAMP) $(DEMO_DB) harfbuzz
	$(PY) run.py run --all --as-of $(AS_OF) --out out

$(BQ_STAMP): Makefile
	@test -x $(BQ_VENV)/bin/python || $(PYTHON) -m venv $(BQ_VENV)
	$(BQ_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BQ_VENV)/bin/python -m pip install --quiet $(BQ_PINS)
	@# DuckDB cannot download its spatial extension offline: place the wheel's copy where it looks.
	$(BQ_VENV)/bin/python -c "import duckdb, duckdb_extension_spatial as s, pathlib, shutil; \
	  v = duckdb.__version__; p = duckdb.connect().execute('PRAGMA platform').fetchone()[0]; \
	  src = pathlib.Path(s.__file__).parent / 'extensions' / f'v{v}' / 'spatial.duckdb_extension'; \
	  dst = pathlib.Path.home() / '.duckdb' / 'extensions' / f'v{v}' / p; dst.mkdir(parents=True, exist_ok=True); \
	  shutil.copy(src, dst)"
	@touch $(BQ_STAMP)

# WeasyPrint subsets the fonts it embeds with HarfBuzz when the library is there (in C, about
# half a second per PDF faster than its fallback); Debian ships it apart from HarfBuzz itself.
harfbuzz:
	@ldconfig -p 2>/dev/null | grep -q libharfbuzz-subset.so.0 || \
	  { echo "installing HarfBuzz's subsetter for WeasyPrint"; \
	    apt-get install -y -q libharfbuzz-subset0 || { apt-get update -q && apt-get install -y -q libharfbuzz-subset0; }; }

postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  { echo "installing PostgreSQL for the tests"; apt-get update -q && apt-get install -y -q postgresql; }

redis:
	@command -v redis-server >/dev/null || \
	  { echo "installing Redis for the tests"; apt-get update -q && apt-get install -y -q redis-server; }

# The archive's browser tests drive Debian's Chromium through Playwright (which cannot download its own).
chromium:
	@test -x /usr/bin/chromium || \
	  { echo "installing Chromium for the browser tests"; apt-get update -q && apt-get install -y -q chromium; }

test: $(STAMP) $(BQ_STAMP) postgres redis harfbuzz chromium
	HERALD_BQEMULATOR=$(CURDIR)/$(BQ_VENV)/bin/bqemulator $(PY) -m pytest

# Writes bench/results.md (about 15 minutes); `make bench BENCH_ARGS=--quick` is a smoke run at demo size.
bench: $(STAMP) harfbuzz
	$(PY) -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: $(STAMP)
	$(PY) -m reports.config.reference README.md

clean:
	rm -rf out data/demo.duckdb .pytest_cache
