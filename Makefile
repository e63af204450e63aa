# The commands the README promises: `make serve`, `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AGENT_PORT ?= 9000

.PHONY: serve serve-dev demo test test-fallback lint

# The tests that run every function of trunkline/speedups.py, run again on the pure-Python
# twin of the C extension (TRUNKLINE_NO_SPEEDUPS=1): `make test` runs both.
FALLBACK_TESTS := tests/test_speedups.py tests/rtp tests/media tests/codecs \
	tests/gateway/test_agent_frame_reader.py \
	tests/gateway/test_agent_protocols.py tests/gateway/test_agent_personas.py \
	tests/gateway/test_media_stream_docs.py tests/gateway/test_slow_agent.py \
	tests/gateway/test_inbound_calls.py tests/gateway/test_agent_abuse.py \
	tests/gateway/test_carrier_streams.py tests/gateway/test_binary_media.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The editable install compiles the optional C extension (setup.py) into trunkline/.
$(VENV)/.runtime: pyproject.toml setup.py trunkline/_speedups.c | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml setup.py trunkline/_speedups.c | $(BIN)/python
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

# The suite runs on up to TEST_WORKERS pytest-xdist workers (one per core, `-n auto`, at most
# that many: the tests start daemons, Kamailio and Chromium of their own), except the tests
# marked real_time (tests/conftest.py), which then run alone, one after another: they hold
# latency limits or real time while loading every core. Every log lists the slowest tests.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -q --durations=25
XDIST := -n auto --maxprocesses $(TEST_WORKERS)

test: lint
	$(PYTEST) $(XDIST) -m "not real_time"
	$(PYTEST) -m real_time
	$(MAKE) test-fallback

test-fallback: $(VENV)/.test
	TRUNKLINE_NO_SPEEDUPS=1 $(PYTEST) $(XDIST) $(FALLBACK_TESTS)
