# raisim — set-up, demo and tests. A fresh machine needs only python3 (3.11), pip, make and gcc.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint format bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## demo: set up, then simulate one patient through ERRITI 21 d (CPU, shipped defaults)
demo: $(STAMP)
	$(VENV)/bin/raisim simulate configs/protocols/erriti_21d.yaml --out results/demo --force

## test: the fast test suite (what CI runs)
test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

## test-all: every test, slow ones included
test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check raisim tests benchmarks
	$(VENV)/bin/ruff format --check raisim tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format raisim tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/single_patient.py

clean:
	rm -rf results .pytest_cache
