# Every target uses the virtual environment in .venv (created by `make install`).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install test test-fast data data-demo bench demo reproduce reproduce-reference clean

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

# ---------------------------------------------------------------------------- data
# `make data` writes the standard files that are missing into DATA_DIR (names, betas, sizes,
# seeds and how they were chosen: data_files.py); an existing file is kept, delete it to remake
# it. Sizes (lattices per beta) can be set, e.g. `make data DATA_DIR=data/small N_TRAIN=50000`;
# unset ones take data_files.py's defaults. `make data-demo`: smaller files, same names, data/demo/.
DATA_DIR ?= data
SIZE_FLAGS = $(if $(N_TRAIN),--n_train $(N_TRAIN)) $(if $(N_VAL),--n_val $(N_VAL)) \
             $(if $(N_TEST),--n_test $(N_TEST)) $(if $(N_EVAL),--n_eval $(N_EVAL))

data: install
	$(PY) data_files.py --data_dir $(DATA_DIR) $(SIZE_FLAGS)

data-demo: install
	$(PY) data_files.py --data_dir data/demo --n_train 20000 --n_val 4000 --n_test 4000 --n_eval 1000

# Speed figures: each script prints its figures and ratios against a baseline run in the same process.
bench: install
	$(PY) benchmarks/bench_sampler.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_datasets.py

# ---------------------------------------------------------------------------- results
# The README's first command: small data, the full extended energy model and the original
# probability model trained briefly (two trainers at once), evaluated; prints the leaderboard.
# Images go to results/demo/ so that the committed images/ (from `make reproduce`) stay.
demo: install data-demo
	$(PY) train_all.py --profile demo --jobs 2 --out results/demo --images results/demo

# Every combination (energy, probability) x (plain, attention) x (1D, 2D) x (uni, bi), plus the
# site energy head on the full extended model, on the CPU profile (17 runs in about 28 minutes on 2 cores);
# finished runs are skipped, so it can be resumed. Then the leaderboard (results/cpu/), the images
# and the notebooks, executed in place with the outputs of this run.
reproduce: install data
	$(PY) train_all.py --profile cpu --jobs 2 --out results/cpu --images images
	$(PY) -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=3600 \
	    "notebooks/Consistency Checks.ipynb" "notebooks/Model Evaluation.ipynb" "notebooks/Attention Visualization.ipynb"

# The reference's own settings (hidden 512, lr 1e-4, early stopping): for a machine with a GPU.
reproduce-reference: install data
	$(PY) train_all.py --profile reference --out results/reference --images results/reference \
	    --accelerator auto

clean:
	rm -rf runs results/demo data/demo
