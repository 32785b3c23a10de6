# One task runner. `make test` is exactly what CI runs (.ci/run).
# Every target creates the virtual environment from pyproject.toml + uv.lock when needed.

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run worker api migrate test lint typecheck pytest install docs demo bench bench-api bench-holds bench-marketplace clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet --python $(PYTHON)
	@touch $@

install: $(VENV)/.installed

# Everything in the foreground: PostgreSQL, Temporal dev server + UI, worker, API. Ctrl-C stops all.
run: install
	$(BIN)/payouts run

# One part alone, to scale out against DATABASE_URL and TEMPORAL_ADDRESS.
worker: install
	$(BIN)/payouts worker

api: install
	$(BIN)/payouts api

migrate: install
	$(BIN)/payouts migrate

# Two pytest workers (pytest-xdist), each with its own PostgreSQL and Temporal: much of the suite
# waits on timers and processes, so two workers finish in about two thirds of the time on 2 cores.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/mkdocs build --strict --quiet --site-dir site
	$(BIN)/pytest -n 2 --dist worksteal

# The documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link or anchor fails.
docs: install
	$(BIN)/mkdocs build --strict --site-dir site

lint: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# With `make run` going: a small marketplace through the API (scripts/demo.py), to see in the UI.
demo: install
	$(BIN)/python scripts/demo.py

bench: install
	$(BIN)/python bench/ledger_throughput.py

# The API next to a minimal FastAPI app on the same PostgreSQL, with wrk; see bench/api.py.
bench-api: install
	$(BIN)/python bench/api.py $(ARGS)

# Order intake next to ledger_core's write rate (ARGS="--releases": the release of holds);
# on an embedded stack of its own; see bench/holds.py for flags.
bench-holds: install
	$(BIN)/python bench/holds.py $(ARGS)

# A month of a marketplace through the API, checked to the cent against a model. Full size takes
# about 35 minutes; smaller: make bench-marketplace ARGS="--sellers 50 --orders 2000" (see bench/month).
bench-marketplace: install
	$(BIN)/python -m bench.month $(ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache site
