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
# `make data` writes the files the trainers and the evaluation read by default (8x8 ISING1).
# Sizes (stored lattices per beta; about a minute on 2 cores): train 200,000 at beta 0.25;
# validation 20,000 each at beta 0.25 (main), 0.125 and 0.5; test 20,000 at beta 0.25;
# eval 20 betas linspace(0.125, 0.44) x 5,000 = 100,000.  The eval range was chosen so that
# its centred energies E - mean(E) span about -81 ... +65..75 on 8x8 like the published eval
# file (-82 ... +66).  Measured extremes (100,000 samples): 0.125 ... 0.44 gives -80.8 ... +67.2
# (seed 2) and -80.9 ... +75.1 (seed 16, the file below; 99.9th percentile +59); 0.05 ... 0.5
# gives -79 ... +81, 0.1 ... 0.42 gives -86 ... +70, 0 ... 0.5 gives -83 ... +97.  The lower end
# is the ground state (-128) minus the mean; 0.44 is next to the critical point 0.4407.
# `make data` takes about 35 s on 2 cores (mostly JAX start-up and compilation per file), 32 MB.
# Every file has its own seed, so the files are independent samples.
# Smaller variant for the demo (same names under data/demo/): `make data-demo`, or set the
# variables, e.g. `make data DATA_DIR=data/small N_TRAIN=50000`.
DATA_DIR   ?= data
MODEL      ?= ISING1
N_TRAIN    ?= 200000
N_VAL      ?= 20000
N_TEST     ?= 20000
N_EVAL     ?= 5000
EVAL_BETAS ?= 20
GEN         = $(PY) generate_ising.py --n_x 8 --n_y 8 --model $(MODEL)
DATA_FILES  = $(addprefix $(DATA_DIR)/,train_data.hdf5 val_data_beta_dot25.hdf5 val_data_beta_dot125.hdf5 \
              val_data_beta_dot5.hdf5 test_data.hdf5 eval_data.hdf5)

data: $(DATA_FILES)

data-demo:
	$(MAKE) data DATA_DIR=data/demo N_TRAIN=20000 N_VAL=4000 N_TEST=4000 N_EVAL=1000

$(DATA_DIR)/train_data.hdf5: generate_ising.py | install
	@mkdir -p $(@D)
	$(GEN) --beta 0.25 --n_samples $(N_TRAIN) --random_seed 11 --filename $@
$(DATA_DIR)/val_data_beta_dot25.hdf5: generate_ising.py | install
	@mkdir -p $(@D)
	$(GEN) --beta 0.25 --n_samples $(N_VAL) --random_seed 12 --filename $@
$(DATA_DIR)/val_data_beta_dot125.hdf5: generate_ising.py | install
	@mkdir -p $(@D)
	$(GEN) --beta 0.125 --n_samples $(N_VAL) --random_seed 13 --filename $@
$(DATA_DIR)/val_data_beta_dot5.hdf5: generate_ising.py | install
	@mkdir -p $(@D)
	$(GEN) --beta 0.5 --n_samples $(N_VAL) --random_seed 14 --filename $@
$(DATA_DIR)/test_data.hdf5: generate_ising.py | install
	@mkdir -p $(@D)
	$(GEN) --beta 0.25 --n_samples $(N_TEST) --random_seed 15 --filename $@
$(DATA_DIR)/eval_data.hdf5: generate_ising.py | install
	@mkdir -p $(@D)
	$(GEN) --n_beta_samples $(EVAL_BETAS) --beta_min 0.125 --beta_max 0.44 --n_samples $(N_EVAL) \
	    --random_seed 16 --filename $@

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
	$(PY) evaluate.py train-all --profile demo --jobs 2 --out results/demo --images results/demo

# Every combination (energy, probability) x (plain, attention) x (1D, 2D) x (uni, bi), plus the
# site energy head on the full extended model, on the CPU profile (about an hour on 2 cores);
# finished runs are skipped, so it can be resumed. Then the leaderboard (results/cpu/), the images
# and the notebooks, executed in place with the outputs of this run.
reproduce: install data
	$(PY) evaluate.py train-all --profile cpu --jobs 2 --out results/cpu --images images
	$(PY) -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=3600 \
	    "notebooks/Consistency Checks.ipynb" "notebooks/Model Evaluation.ipynb" "notebooks/Attention Visualization.ipynb"

# The reference's own settings (hidden 512, lr 1e-4, early stopping): for a machine with a GPU.
reproduce-reference: install data
	$(PY) evaluate.py train-all --profile reference --out results/reference --images results/reference \
	    --accelerator auto

clean:
	rm -rf runs results/demo data/demo
