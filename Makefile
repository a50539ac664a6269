# Every target uses the virtual environment in .venv (created by `make install`).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install test test-fast data data-demo data-ising2 data-potts data-ea bench demo reproduce reproduce-reference headline weights thermo transfer phase phase-critical inverse-ising phase-learned potts potts-weights spin-glass-learned clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -r requirements.txt
	touch $@

# The whole suite, slow statistical checks included (this is what CI runs), in TEST_WORKERS processes
# (pytest-xdist); a test file stays in one process, so its module fixtures (tiny trained runs) are made
# once, but for the long independent ones tests/conftest.py spreads (SPREAD).
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist loadgroup
test: install
	$(PY) -m pytest -q $(XDIST)

# Everything but the tests marked slow.
test-fast: install
	$(PY) -m pytest -q $(XDIST) -m "not slow"

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

data-potts: install
	$(PY) data_files.py --data_dir data/potts3 --q 3

data-ising2: install
	$(PY) data_files.py --data_dir data/ising2 --hamiltonian ISING2

# the spin-glass set: one ±J instance (disorder seed 0), train/val/test 8 x 8 at T = 2, eval 8 x 8 and
# 12 x 12 from T = 3 to 0.2 with replica exchange (data_files.py)
data-ea: install
	$(PY) data_files.py --data_dir data/ea --hamiltonian EA

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

# The best sequence model's recipe, three seeds (results/headline/: leaderboard and the seeds' spread).
headline: install data
	$(PY) train_all.py --profile headline --jobs 2 --out results/headline --images results/headline

# The shipped weights: every model weights/ holds, trained by the commands the README lists, then
# exported as weights and hyper-parameters only. Runs go to runs/weights/ (and runs/cpu/,
# runs/headline/ from the targets above); finished runs are kept, so it can be resumed.
W = runs/weights
ISING2_FILES = --train_path data/ising2/train_data.hdf5 --test_path data/ising2/test_data.hdf5 \
    --val_paths data/ising2/val_data_beta_dot25.hdf5 data/ising2/val_data_beta_dot125.hdf5 data/ising2/val_data_beta_dot5.hdf5
JOINT2 = 2D_GRU_1L_1H_Bi_Joint_hid64_Cosine_ISING2
EDNN = --architecture ednn --max_epochs 40 --limit_train_batches 782 --threads 1 --output_dir $(W)
weights: install data data-ising2 reproduce headline potts-weights
	test -f $(W)/probability/GRU_1L_1H_hid128_Cosine/metrics.json || $(PY) probability_trainer.py --hidden_size 128 \
	    --lr 1e-3 --lr_schedule cosine --max_epochs 40 --patience 6 --threads 1 --output_dir $(W)
	test -f $(W)/energy/EDNN_F1_C1_hid16x2/metrics.json || $(PY) energy_trainer.py $(EDNN)
	test -f $(W)/energy/EDNN_F1_C1_hid16x2_E80/metrics.json || $(PY) energy_trainer.py $(EDNN) --max_epochs 80 \
	    --lr_decay 0.9 --patience 80 --run_name EDNN_F1_C1_hid16x2_E80
	test -f $(W)/energy/EDNN_F1_C1_hid16x2_ISING2/metrics.json || $(PY) energy_trainer.py $(EDNN) $(ISING2_FILES) \
	    --run_name EDNN_F1_C1_hid16x2_ISING2
	test -f $(W)/energy/EDNN_F1_C1_hid16x2_Centred_from_GRU_1L_1H_hid128_Cosine/metrics.json || $(PY) energy_trainer.py \
	    $(EDNN) --teacher $(W)/probability/GRU_1L_1H_hid128_Cosine
	$(PY) evaluate.py export $(W)/probability/GRU_1L_1H_hid128_Cosine $(W)/energy/EDNN_F1_C1_hid16x2 \
	    $(W)/energy/EDNN_F1_C1_hid16x2_E80 $(W)/energy/EDNN_F1_C1_hid16x2_ISING2 \
	    $(W)/energy/EDNN_F1_C1_hid16x2_Centred_from_GRU_1L_1H_hid128_Cosine \
	    runs/cpu/energy/2D_GRU_1L_1H_Bi_Attn_hid64 runs/cpu/probability/GRU_1L_1H_hid64 \
	    runs/headline/seed1/probability/2D_GRU_1L_1H_Bi_Joint_hid64_Cosine --to weights
	test -f $(W)/energy/EDNN_F1_C1_hid16x2_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine/metrics.json || $(PY) energy_trainer.py \
	    $(EDNN) --teacher weights/probability/2D_GRU_1L_1H_Bi_Joint_hid64_Cosine
	test -f $(W)/energy/EDNN_F1_C1_hid16x2_Flip_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine/metrics.json || $(PY) energy_trainer.py \
	    $(EDNN) --spin_flip --teacher weights/probability/2D_GRU_1L_1H_Bi_Joint_hid64_Cosine
	$(PY) evaluate.py export $(W)/energy/EDNN_F1_C1_hid16x2_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine \
	    $(W)/energy/EDNN_F1_C1_hid16x2_Flip_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine --to weights
	test -f $(W)/probability/$(JOINT2)/metrics.json || $(PY) probability_trainer.py --two_d --bidirectional --joint \
	    --hidden_size 64 --lr 5e-3 --lr_schedule cosine --gradient_clip_val 1.0 --max_epochs 15 --batch_size 512 \
	    --limit_val_batches 10 --precision 32-true --threads 1 --seed 1 $(ISING2_FILES) --output_dir $(W) --run_name $(JOINT2)
	$(PY) evaluate.py export $(W)/probability/$(JOINT2) --to weights
	test -f $(W)/energy/EDNN_F1_C1_hid16x2_Flip_ISING2_from_$(JOINT2)/metrics.json || $(PY) energy_trainer.py $(EDNN) \
	    $(ISING2_FILES) --spin_flip --teacher weights/probability/$(JOINT2) --run_name EDNN_F1_C1_hid16x2_Flip_ISING2_from_$(JOINT2)
	$(PY) evaluate.py export $(W)/energy/EDNN_F1_C1_hid16x2_Flip_ISING2_from_$(JOINT2) --to weights
	$(PY) evaluate.py --runs weights --out results/weights --images results/weights

# Thermodynamics from the shipped causal model's samples (results/thermo/, images/thermodynamics_*.png).
thermo: install
	$(PY) thermodynamics.py --run weights/probability/GRU_1L_1H_hid128_Cosine --n_samples 1000000 --seed 1 \
	    --betas 0.1 0.125 0.15 0.175 0.2 0.225 0.25 0.275 0.3 0.325 0.35 0.375 0.4 --out results/thermo --images images

# The shipped extensive models and the causal model that teaches one, on 16 x 16 ... 64 x 64 lattices
# (results/transfer/, images/transfer_plot.png).
transfer: install
	$(PY) transfer.py --runs weights/energy/EDNN_F1_C1_hid16x2 weights/energy/EDNN_F1_C1_hid16x2_E80 \
	    weights/energy/EDNN_F1_C1_hid16x2_ISING2 \
	    weights/energy/EDNN_F1_C1_hid16x2_Centred_from_GRU_1L_1H_hid128_Cosine weights/probability/GRU_1L_1H_hid128_Cosine \
	    --sizes 16 32 64 --out results/transfer --images images

# The phase transition of ISING1 from exact sampling: U, C, |m|, chi, Binder U4 on 16, 32, 64 and T_c
# from the U4 crossings, beside Kaufman and Onsager (results/phase/, images/phase_ISING1.png; ~12 min on one core).
phase: install
	$(PY) phase_diagram.py --hamiltonian ISING1 --algorithm checkerboard --out results/phase --images images

# Critical points with cluster updates (self-learning Monte Carlo for the learned tables) and crossings of the
# reweighted Binder cumulants (results/phase/critical/; each run resumable: a killed run continues).
# --workers 2: two processes, one per core. ISING1 on 64, 128, 256 to 0.008% (18 min on the idle 2-core machine),
# ISING2 the same (37 min in one process); POTTS3 and the learned Hamiltonians on 32, 64, 128 (20-45 min each in
# one process; the learned Potts ones by SLMC, 24-60 min).
CRIT = --chains 32 --sweeps 2000 --burn_in 300 --workers 2 --out results/phase/critical --images results/phase/critical
phase-critical: install
	$(PY) phase_diagram.py --hamiltonian ISING1 --sizes 64 128 256 --betas 0.4400 0.4403 0.4406 0.4409 0.4412 $(CRIT)
	$(PY) phase_diagram.py --hamiltonian ISING2 --sizes 64 128 256 --betas 0.2622 0.26245 0.2627 0.26295 0.2632 $(CRIT)
	$(PY) phase_diagram.py --hamiltonian POTTS3 --sizes 32 64 128 --betas 1.0000 1.0025 1.0050 1.0075 1.0100 $(CRIT)
	$(PY) phase_diagram.py --hamiltonian weights/energy/EDNN_F1_C1_hid16x2 --sizes 32 64 128 \
	    --betas 0.4390 0.43975 0.4405 0.44125 0.4420 $(CRIT)
	$(PY) phase_diagram.py --hamiltonian weights/energy/EDNN_F1_C1_hid16x2_Flip_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine \
	    --sizes 32 64 128 --betas 0.4378 0.43855 0.4393 0.44005 0.4408 $(CRIT)
	$(PY) phase_diagram.py --hamiltonian weights/energy/EDNN_F1_C1_hid16x2_Flip_ISING2_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine_ISING2 \
	    --sizes 32 64 128 --betas 0.2613 0.26155 0.2618 0.26205 0.2623 $(CRIT) --chains 96
	$(PY) phase_diagram.py --hamiltonian weights/energy/EDNN_F1_C1_hid16x2_ISING2 --sizes 32 64 128 \
	    --betas 0.2622 0.26245 0.2627 0.26295 0.2632 $(CRIT) --chains 64
	$(PY) phase_diagram.py --hamiltonian results/inverse_ising/teacher_ISING1_Flip_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine.json \
	    --sizes 32 64 128 --betas 0.4397 0.44005 0.4404 0.44075 0.4411 $(CRIT)
	$(PY) phase_diagram.py --hamiltonian results/inverse_ising/teacher_ISING2_Flip_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine_ISING2.json \
	    --sizes 32 64 128 --betas 0.2613 0.26155 0.2618 0.26205 0.2623 $(CRIT)
	for h in EDNN_F1_C1_hid16x2_Q3 EDNN_F1_C1_hid16x2_Flip_Q3 EDNN_F1_C1_hid16x2_Centred_Flip_Q3_from_$(POTTS_JOINT); do \
	    $(PY) phase_diagram.py --hamiltonian weights/energy/$$h --sizes 32 64 128 \
	    --betas 1.0000 1.0025 1.0050 1.0075 1.0100 $(CRIT) || exit 1; done
	$(PY) phase_diagram.py --overview --out results/phase/critical

# The physicist's baseline: pair couplings fitted to the training lattices by pseudo-likelihood
# (results/inverse_ising/; seconds); then the same five numbers, label-free, fitted by least squares to
# the energies the shipped joint models (the teachers) give those lattices, with the symmetry s -> -s
# (9 min each beside other jobs: the teacher's energies of 200,000 lattices).
inverse-ising: install data data-ising2
	$(PY) inverse_ising.py
	$(PY) inverse_ising.py --train_path data/ising2/train_data.hdf5
	$(PY) inverse_ising.py --spin_flip --teacher weights/probability/2D_GRU_1L_1H_Bi_Joint_hid64_Cosine
	$(PY) inverse_ising.py --spin_flip --train_path data/ising2/train_data.hdf5 \
	    --teacher weights/probability/2D_GRU_1L_1H_Bi_Joint_hid64_Cosine_ISING2

# The learned Hamiltonians simulated on 16, 32, 64 over ISING1's and ISING2's grids: the shipped
# EDNNs and the pseudo-likelihood fits, beside the true Hamiltonians through their own tables with
# the same seed (results/phase/, images/phase_*.png; ~15 min each on one core, as fast as `make phase`); then the
# supervised EDNN and the same trained longer over ISING1's grid by SLMC on 32 and 64, their U/N against Kaufman's
# (results/phase/kaufman/; ~13 min each).
LEARNED = weights/energy/EDNN_F1_C1_hid16x2 weights/energy/EDNN_F1_C1_hid16x2_Centred_from_GRU_1L_1H_hid128_Cosine \
    weights/energy/EDNN_F1_C1_hid16x2_Flip_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine \
    weights/energy/EDNN_F1_C1_hid16x2_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine \
    results/inverse_ising/pseudo_likelihood_ISING1.json weights/energy/EDNN_F1_C1_hid16x2_ISING2 \
    weights/energy/EDNN_F1_C1_hid16x2_Flip_ISING2_from_2D_GRU_1L_1H_Bi_Joint_hid64_Cosine_ISING2 \
    results/inverse_ising/pseudo_likelihood_ISING2.json
phase-learned: install inverse-ising
	for h in $(LEARNED); do $(PY) phase_diagram.py --hamiltonian $$h --algorithm checkerboard --out results/phase --images images || exit 1; done
	for h in ISING1 ISING2; do $(PY) phase_diagram.py --hamiltonian $$h --as_table --algorithm checkerboard --out results/phase --images images || exit 1; done
	$(PY) phase_diagram.py --overview --out results/phase
	for h in EDNN_F1_C1_hid16x2 EDNN_F1_C1_hid16x2_E80; do $(PY) phase_diagram.py --hamiltonian weights/energy/$$h \
	    --sizes 32 64 --chains 48 --sweeps 2000 --burn_in 300 --workers 2 --out results/phase/kaufman \
	    --images results/phase/kaufman || exit 1; done
	for h in weights/energy/EDNN_F1_C1_hid16x2_E80 "ISING1 --as_table"; do $(PY) phase_diagram.py --hamiltonian $$h \
	    --sizes 32 64 --betas 0.435 0.44 0.445 0.45 0.455 --chains 96 --sweeps 2000 --burn_in 300 --seed 1 \
	    --out results/phase/kaufman/seed1 --images results/phase/kaufman/seed1 || exit 1; done
	$(PY) phase_diagram.py --hamiltonian weights/energy/EDNN_F1_C1_hid16x2_E80 --sizes 8 64 --betas 0.44 0.445 \
	    --chains 96 --sweeps 6000 --burn_in 300 --seed 2 --workers 2 --out results/phase/kaufman/seed2 \
	    --images results/phase/kaufman/seed2

# The 3-state Potts model through the pipeline, from the shipped models (weights/, trained on 8 x 8 at beta 0.8 by
# `make potts-weights`): the supervised EDNN's energies on 16 ... 64 (results/potts/transfer/), free energies from
# the causal model's samples (results/potts/thermo/), the transition of POTTS3 itself (results/phase/POTTS3.*;
# ~15 min on one core), and the learned Potts Hamiltonians (supervised, and label-free taught by the causal model
# or, state-permutation symmetric, by the joint conditional model) simulated on 16 and 32 beside POTTS3 through
# its table with local updates (results/phase/potts_16_32/; 10-45 min a run). About 2 hours on 2 cores; their
# critical points by self-learning Monte Carlo on 32 ... 128 are in `make phase-critical`.
POTTS_FILES = --train_path data/potts3/train_data.hdf5 --test_path data/potts3/test_data.hdf5 \
    --val_paths data/potts3/val_data_beta_dot8.hdf5 data/potts3/val_data_beta_dot4.hdf5 data/potts3/val_data_beta_1dot6.hdf5
PP = results/phase/potts_16_32
POTTS_EDNN = --architecture ednn --max_epochs 60 --limit_train_batches 782 --lr 0.02 --lr_decay 0.92 --patience 10 \
    --threads 1 $(POTTS_FILES) --output_dir runs/potts
POTTS_JOINT = 2D_GRU_1L_1H_Bi_Joint_hid64_Cosine_Q3
POTTS_CAUSAL = GRU_1L_1H_hid64_Cosine_Q3
POTTS_LEARNED = EDNN_F1_C1_hid16x2_Q3 EDNN_F1_C1_hid16x2_Centred_Q3_from_$(POTTS_CAUSAL) \
    EDNN_F1_C1_hid16x2_Centred_Flip_Q3_from_$(POTTS_JOINT)
potts: install data-potts
	$(PY) transfer.py --runs weights/energy/EDNN_F1_C1_hid16x2_Q3 --sizes 16 32 64 --out results/potts/transfer --images results/potts
	$(PY) thermodynamics.py --run weights/probability/$(POTTS_CAUSAL) --n_samples 1000000 --seed 1 \
	    --betas 0.4 0.6 0.8 0.9 1.0 --out results/potts/thermo --images results/potts
	$(PY) phase_diagram.py --hamiltonian POTTS3 --algorithm checkerboard --out results/phase --images images
	$(PY) phase_diagram.py --hamiltonian POTTS3 --as_table --algorithm checkerboard --sizes 16 32 --out $(PP) --images $(PP)
	for h in $(POTTS_LEARNED); do \
	    $(PY) phase_diagram.py --hamiltonian weights/energy/$$h --algorithm checkerboard --sizes 16 32 --out $(PP) --images $(PP) || exit 1; done

# The six Potts models of weights/ retrained (runs/potts/; about 2 h 20 min on 2 cores, deterministic for their seeds
# on one CPU) and exported: the supervised EDNN (and the same with the symmetry under permutations of the states
# imposed), the causal model, its label-free student, the joint conditional model and its state-permutation
# symmetric student.
potts-weights: install data-potts
	test -f runs/potts/energy/EDNN_F1_C1_hid16x2_Q3/metrics.json || $(PY) energy_trainer.py $(POTTS_EDNN)
	test -f runs/potts/energy/EDNN_F1_C1_hid16x2_Flip_Q3/metrics.json || $(PY) energy_trainer.py $(POTTS_EDNN) --spin_flip
	test -f runs/potts/probability/$(POTTS_CAUSAL)/metrics.json || $(PY) probability_trainer.py --hidden_size 64 \
	    --lr 3e-3 --lr_schedule cosine --gradient_clip_val 1.0 --max_epochs 20 --batch_size 512 --limit_val_batches 10 \
	    --precision 32-true --threads 1 --seed 0 $(POTTS_FILES) --output_dir runs/potts
	test -f runs/potts/energy/EDNN_F1_C1_hid16x2_Centred_Q3_from_$(POTTS_CAUSAL)/metrics.json || $(PY) energy_trainer.py \
	    $(POTTS_EDNN) --teacher runs/potts/probability/$(POTTS_CAUSAL)
	test -f runs/potts/probability/$(POTTS_JOINT)/metrics.json || $(PY) probability_trainer.py --two_d --bidirectional --joint \
	    --hidden_size 64 --lr 5e-3 --lr_schedule cosine --gradient_clip_val 1.0 --max_epochs 15 --batch_size 512 \
	    --limit_val_batches 10 --precision 32-true --threads 1 --seed 1 $(POTTS_FILES) --output_dir runs/potts
	test -f runs/potts/energy/EDNN_F1_C1_hid16x2_Centred_Flip_Q3_from_$(POTTS_JOINT)/metrics.json || $(PY) energy_trainer.py \
	    $(POTTS_EDNN) --spin_flip --teacher runs/potts/probability/$(POTTS_JOINT)
	$(PY) evaluate.py export runs/potts/probability/$(POTTS_CAUSAL) runs/potts/probability/$(POTTS_JOINT) \
	    $(addprefix runs/potts/energy/,$(POTTS_LEARNED) EDNN_F1_C1_hid16x2_Flip_Q3) --to weights

# The 8 x 8 spin-glass instance learned from its lattices at T = 2 (results/spin_glass_learned/; about an hour
# on 2 cores): the causal model (scores, thermodynamics against the transfer matrix), the joint conditional
# model and a supervised energy model, the label-free students (one coupling per bond fitted to each teacher's energies, inverse_ising.py
# --teacher), and the fits simulated with replica exchange beside the planted instance.
EA_FILES = --train_path data/ea/train_data.hdf5 --test_path data/ea/test_data.hdf5 --val_paths data/ea/val_data_beta_dot5.hdf5
SGL = results/spin_glass_learned
EA_TEACHERS = GRU_1L_1H_hid128_Cosine 2D_GRU_1L_1H_Bi_Joint_hid64_Cosine
spin-glass-learned: install data-ea
	test -f runs/ea/probability/GRU_1L_1H_hid128_Cosine/metrics.json || $(PY) probability_trainer.py $(EA_FILES) \
	    --hidden_size 128 --lr 2e-3 --lr_schedule cosine --max_epochs 6 --batch_size 256 --threads 1 --output_dir runs/ea
	test -f runs/ea/probability/2D_GRU_1L_1H_Bi_Joint_hid64_Cosine/metrics.json || $(PY) probability_trainer.py $(EA_FILES) \
	    --two_d --bidirectional --joint --hidden_size 64 --lr 5e-3 --lr_schedule cosine --gradient_clip_val 1.0 --max_epochs 4 \
	    --batch_size 512 --limit_val_batches 10 --precision 32-true --threads 1 --seed 1 --output_dir runs/ea
	test -f runs/ea/energy/GRU_1L_1H_hid64_Cosine/metrics.json || $(PY) energy_trainer.py $(EA_FILES) \
	    --hidden_size 64 --lr 2e-3 --lr_schedule cosine --max_epochs 2 --batch_size 256 --threads 1 --output_dir runs/ea
	$(PY) evaluate.py --runs runs/ea --eval_path data/ea/eval_data.hdf5 --out $(SGL) --images $(SGL)
	$(PY) thermodynamics.py --run runs/ea/probability/GRU_1L_1H_hid128_Cosine --n_samples 200000 \
	    --mc_path data/ea/test_data.hdf5 --out $(SGL)/thermo
	for t in $(EA_TEACHERS); do $(PY) inverse_ising.py --train_path data/ea/train_data.hdf5 --teacher runs/ea/probability/$$t \
	    --out $(SGL)/student_from_$$t.json || exit 1; done
	$(PY) $(SGL)/simulate.py $(SGL)/simulated results/inverse_ising/pseudo_likelihood_per_bond_EA_8x8_seed0.npz \
	    $(foreach t,$(EA_TEACHERS),$(SGL)/student_from_$(t).npz)

clean:
	rm -rf runs results/demo data/demo
