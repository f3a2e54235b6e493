# raisim — set-up, demo and tests. A fresh machine needs only python3 (3.11), pip, make and gcc.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint format bench calibrate loo readme-tables validation clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## demo: set up, then the main job on the CPU: a small duration sweep (10/21/42 d x genotypes), and one patient in detail
## (patient 1 of seed 0, who completes the course; patient 0 has a grade >= 3 AE on day 3 and stops: --patient 0)
demo: $(STAMP)
	$(VENV)/bin/raisim sweep configs/sweeps/duration_demo.yaml --out results/demo_sweep --force
	$(VENV)/bin/raisim simulate configs/protocols/erriti_21d.yaml --patient 1 --out results/demo --force

## test: the layer contracts (import-linter, pyproject.toml), then the fast test suite (what CI runs) over
## TEST_WORKERS processes (pytest-xdist; CI has 2 cores), with runtime shape checks of raisim.core and raisim.engine
TEST_WORKERS ?= 2
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -m "not slow" -q -n $(TEST_WORKERS)

## test-all: every test, slow ones included
test-all: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n $(TEST_WORKERS)

lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check raisim tests benchmarks scripts
	$(VENV)/bin/ruff format --check raisim tests benchmarks scripts

format: $(STAMP)
	$(VENV)/bin/ruff format raisim tests benchmarks scripts

## calibrate: train the emulator on the full model (~1 h on 2 cores: design, refinement at posterior draws, validation), fit NUTS, check on the full model (~9 min), ship models/posterior/
calibrate: $(STAMP)
	$(VENV)/bin/raisim calibrate configs/calibration/default.yaml --out results/calibration --force --retrain
	$(PY) scripts/ship_posterior.py results/calibration
	$(PY) scripts/ppc_full_model.py
	$(PY) scripts/update_readme.py

## loo: leave-one-trial-out fits on the shipped emulator (trained on this model: after a model change run make calibrate first, or each fit retrains it); ships models/posterior/loo.csv and the README table
loo: $(STAMP)
	$(PY) scripts/loo.py
	$(PY) scripts/update_readme.py

## validation: run the tagged fact/validation tests and regenerate the README's validation table
validation: $(STAMP)
	$(PY) scripts/validation_table.py

## readme-tables: regenerate the README's tables from models/posterior/
readme-tables: $(STAMP)
	$(PY) scripts/update_readme.py

bench: $(STAMP)
	$(PY) benchmarks/single_patient.py
	$(PY) benchmarks/sweep_throughput.py --patients 512 --reference 200

clean:
	rm -rf results .pytest_cache
