# The two commands a newcomer needs: `make run` and `make test`. `make setup` is shared and idempotent.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export WHATWUT_DATA_DIR ?= $(CURDIR)/data
# htmx and its SSE extension, from the npm registry pinned by package-lock.json (never a CDN).
VENDOR := src/whatwut/web/static/vendor

.PHONY: setup run test lint typecheck unit bench-inbox bench-webhooks clean

setup: $(BIN)/.installed $(VENDOR)/.installed

$(BIN)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user "uv==0.13.8" || $(PYTHON) -m pip install --quiet "uv==0.13.8"
	@PATH="$$HOME/.local/bin:$$PATH" uv sync --frozen --python $(PYTHON)
	@touch $@

$(VENDOR)/.installed: package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm is needed for the web UI's htmx (apt-get install npm)"; exit 1; }
	@npm ci --no-audit --no-fund --loglevel=error
	@mkdir -p $(VENDOR)
	@cp node_modules/htmx.org/dist/htmx.min.js node_modules/htmx-ext-sse/dist/sse.min.js $(VENDOR)/
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

bench-webhooks: setup
	$(BIN)/python bench/webhook_ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache node_modules $(VENDOR)
