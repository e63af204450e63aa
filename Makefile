# The commands the README promises: `make serve`, `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AGENT_PORT ?= 9000

.PHONY: serve serve-dev demo test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.runtime

serve: $(VENV)/.runtime
	$(BIN)/trunkline serve

# Development mode: agents on ws:// and loopback addresses may take calls.
serve-dev: $(VENV)/.runtime
	$(BIN)/trunkline serve --dev

# The first call: a number for the example agent on ws://127.0.0.1:$(AGENT_PORT), then
# trunkline in development mode, listening on loopback only.
demo: $(VENV)/.runtime
	$(BIN)/trunkline quickstart --agent-url ws://127.0.0.1:$(AGENT_PORT)
	TRUNKLINE_SIP_HOST=127.0.0.1 $(BIN)/trunkline serve --dev --host 127.0.0.1

lint: $(VENV)/.test
	$(BIN)/ruff check trunkline tests benchmarks examples
	$(BIN)/ruff format --check trunkline tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q
