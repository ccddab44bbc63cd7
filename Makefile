# Every target sets up .venv on first use: pip install -c constraints.txt -e ".[dev,ray]".
# constraints.txt pins torch==2.13.0, which pip takes as the local CPU wheel where one lies on
# disk (no multi-GB CUDA download); pyproject.toml itself keeps ranges.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run demo test test-fast lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,ray]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)  ## the quick start's main job: the wheel bandit benchmark
	$(VENV)/bin/ivi-rl bandit experiments/default.toml

demo: $(STAMP)  ## IVI regression demo with the Wasserstein check
	$(VENV)/bin/ivi-rl demo

test: $(STAMP)  ## the whole suite, slow learning checks included (what CI runs)
	$(PY) -m pytest

test-fast: $(STAMP)  ## skip the tests marked slow
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) -m experiments.bench_step

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
