# Gongping — two commands: `make run` starts the whole product, `make test` checks it.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint typecheck pytest openapi bench faults load clean migration

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/gongping run

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# The suite runs on SQLite; with GONGPING_TEST_DATABASE_URL set (CI) it runs again on PostgreSQL, without the
# tests that touch no database (marker pure: the client generators among them) and without the Chromium tests
# (marker browser: what they check is the browser's side), so those run once. The fuzzing (marker fuzz) then runs
# on PostgreSQL only, where a server error is likelier (column ranges, locks).
pytest: $(DEV_STAMP)
	@if [ -n "$$GONGPING_TEST_DATABASE_URL" ]; then \
		env -u GONGPING_TEST_DATABASE_URL $(BIN)/pytest -m "not fuzz" && \
		echo "=== again on PostgreSQL ===" && \
		$(BIN)/pytest -m "not pure and not browser"; \
	else \
		$(BIN)/pytest; \
	fi

test: lint typecheck pytest

openapi: $(DEV_STAMP)
	$(BIN)/gongping openapi

bench: $(DEV_STAMP)
	$(BIN)/python -m bench.run_all

# Fault injection (tests/faults): kill -9 workers mid-task, stop Redis, restart PostgreSQL. The tests start their
# own throwaway PostgreSQL cluster and redis-server on other ports (needs PostgreSQL's server binaries and
# redis-server, and root or the postgres user); the machine's shared services are never touched.
faults: $(DEV_STAMP)
	GONGPING_FAULTS=1 $(BIN)/pytest tests/faults -v

# The 60 s traffic mix (80% QR scans, 10% complaints with photos, 10% staff case views) against uvicorn ×2.
load: $(DEV_STAMP)
	$(BIN)/python -m bench.run_all --only bench_load_mix

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

# A new migration from the models' changes: make migration m="what changed"
migration: $(DEV_STAMP)
	$(BIN)/python -c "import sys; from alembic import command; from backend.migrate import alembic_config; \
	command.revision(alembic_config(), message=sys.argv[1], autogenerate=True)" "$(m)"
	$(BIN)/ruff format -q backend/migrations/versions
