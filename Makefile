# Every target uses the virtual environment in .venv (created by `make install`).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install test test-fast data bench demo reproduce clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -r requirements.txt
	touch $@

# The whole suite, slow statistical checks included (this is what CI runs).
test: install
	$(PY) -m pytest -q

# Everything but the tests marked slow.
test-fast: install
	$(PY) -m pytest -q -m "not slow"

# Speed figures: each script prints its figures and ratios against a baseline run in the same process.
bench: install
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_datasets.py
