# The two commands a newcomer needs: `make run` and `make test`. `make setup` is shared and idempotent.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export WHATWUT_DATA_DIR ?= $(CURDIR)/data

.PHONY: setup run test lint typecheck unit bench-inbox clean

setup: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user "uv==0.13.8" || $(PYTHON) -m pip install --quiet "uv==0.13.8"
	@PATH="$$HOME/.local/bin:$$PATH" uv sync --frozen --python $(PYTHON)
	@touch $@

run: setup
	$(BIN)/whatwut serve --demo

lint: setup
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest

test: setup lint typecheck unit

bench-inbox: setup
	$(BIN)/python bench/inbox_queries.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
