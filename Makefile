# The two commands a newcomer runs:
#   make demo   sets up .venv and runs examples/fraud_detection.yaml locally (no servers)
#   make test   sets up .venv with the dev tools and runs ruff, mypy and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test setup setup-dev lint

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

test: lint
	$(BIN)/pytest -q
