# The two commands a newcomer runs:
#   make demo   sets up .venv and runs examples/fraud_detection.yaml locally (no servers)
#   make test   sets up .venv with the dev tools and runs ruff, mypy and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test setup setup-dev lint services

# Root installs directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet -e .

setup-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"

examples/data/transactions.csv: | setup
	$(BIN)/workbench datasets fraud examples/data/transactions.csv

demo: setup examples/data/transactions.csv
	$(BIN)/workbench run examples/fraud_detection.yaml

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The test suite starts its own servers (and tmux); it needs their programs installed.
services:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server (the tests start their own on a free port)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }
	@command -v ip >/dev/null 2>&1 || { \
		echo "installing iproute2 (the multi-host test builds its hosts with ip netns)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq iproute2; }
	@command -v tmux >/dev/null 2>&1 || { \
		echo "installing tmux (the terminal UI's end-to-end test runs it in a tmux pane)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq tmux; }
	@test -x /usr/bin/chromium || { \
		echo "installing chromium (the notebooks' browser test drives it through Playwright)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

test: lint services
	$(BIN)/pytest -q
