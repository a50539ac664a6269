"""Swendsen-Wang (`--algorithm cluster`, cluster.py) against the Boltzmann law of every state.

Each sample is the last state of its own chain (as many chains as samples, 100 sweeps from a random
start), so the samples are independent; chi-square goodness of fit with the threshold ALPHA fixed here
in advance, on the histogram of states (3 x 3 Ising: 512 states) or of energy levels, against the law
enumerated over all states. Every law test has a power check: the same samples fail against a beta
off by 15 %. Also: the union-find labels against scipy's connected components, the refusals.
"""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import cluster
import generate_ising as gi
import ising
import potts
from estimators import chi_square_test

ROOT = Path(__file__).resolve().parents[1]
ALPHA = 1e-4          # chi-square p-value threshold, fixed before looking at any result
MIN_EXPECTED = 5.0    # bins with fewer expected counts are pooled
N = 20000             # independent samples (chains) per law
WRONG = 1.15          # the power check's beta factor


def sample(tmp_path, hamiltonian, n_x, n_y, beta, seed=3):
    """N independent samples of `--algorithm cluster`: (grids int8 (N, n_x, n_y), energies float64 (N,), attrs)."""
    path = gi.generate(tmp_path / "c.hdf5", hamiltonian=hamiltonian, n_x=n_x, n_y=n_y, betas=(beta,), n_samples=N,
                       n_chains=N, burn_in=100, thin=1, random_seed=seed, algorithm="cluster", progress=False)
    with h5py.File(path, "r") as f:
        return f["ising_grids"][()], f["true_energies"][()].astype(np.float64), dict(f.attrs)


def law_p(energies, exact_energies, beta):
    """p-value of sampled energies against the Boltzmann law of every state's energy (exact_energies (M,))."""
    levels, degeneracy = np.unique(exact_energies, return_counts=True)
    w = np.log(degeneracy) - beta * levels
    probs = np.exp(w - w.max())
    idx = np.searchsorted(levels, energies)
    assert np.all(np.isclose(levels[np.clip(idx, 0, len(levels) - 1)], energies)), "energy not an allowed level"
    return chi_square_test(np.bincount(idx, minlength=len(levels)), probs / probs.sum(), MIN_EXPECTED)[2]


def state_p(grids, beta, hamiltonian):
    """p-value of the sampled states of a 3 x 3 Ising lattice against the Boltzmann law of all 512."""
    states = ising.all_states(3, 3)
    e = ising.energy(states, hamiltonian)
    probs = np.exp(-beta * (e - e.min()))
    code = ((np.asarray(grids).reshape(len(grids), -1) > 0) * (1 << np.arange(9))).sum(axis=1)
    ref = ((states.reshape(512, -1) > 0) * (1 << np.arange(9))).sum(axis=1)
    order = np.argsort(ref)
    return chi_square_test(np.bincount(code, minlength=512), (probs / probs.sum())[order], MIN_EXPECTED)[2]


@pytest.mark.parametrize("hamiltonian", ["ISING1", "ISING2"])
def test_ising_3x3_states(tmp_path, hamiltonian):
    """Every one of the 512 states with its Boltzmann probability; power: rejected at 1.15 beta."""
    beta = 0.4
    grids, e, attrs = sample(tmp_path, hamiltonian, 3, 3, beta)
    np.testing.assert_array_equal(e, ising.energy(grids, hamiltonian))
    assert attrs["algorithm"] == "cluster"
    assert state_p(grids, beta, hamiltonian) > ALPHA
    assert state_p(grids, WRONG * beta, hamiltonian) < ALPHA


@pytest.mark.slow
@pytest.mark.parametrize("hamiltonian,beta", [("ISING1", 0.44), ("ISING2", 0.3)])
def test_ising_4x4_energies(tmp_path, hamiltonian, beta):
    """The energy law of all 2^16 states of 4 x 4 near each model's transition; power at 1.15 beta."""
    _, e, _ = sample(tmp_path, hamiltonian, 4, 4, beta)
    exact = ising.energy(ising.all_states(4, 4), hamiltonian)
    assert law_p(e, exact, beta) > ALPHA
    assert law_p(e, exact, WRONG * beta) < ALPHA


@pytest.mark.parametrize("n_x,n_y", [(3, 3), pytest.param(4, 4, marks=pytest.mark.slow)])
def test_potts3_energies(tmp_path, n_x, n_y):
    """POTTS3 near beta_c: the energy law of all 3^9 states (3 x 3; 4 x 4: the exact density of states
    of potts.py, itself tested against enumeration); power at 1.15 beta."""
    beta = 1.0
    grids, e, attrs = sample(tmp_path, "POTTS3", n_x, n_y, beta)
    np.testing.assert_array_equal(e, potts.energy(grids))
    assert attrs["algorithm"] == "swendsen-wang"
    if n_x * n_y == 9:
        exact = potts.energy(potts.all_states(3, 3, 3))
        assert law_p(e, exact, beta) > ALPHA
        assert law_p(e, exact, WRONG * beta) < ALPHA
    else:
        for b, ok in ((beta, True), (WRONG * beta, False)):
            levels, probs = potts.exact_energy_distribution(4, 4, 3, b)
            idx = np.searchsorted(levels, e)
            p = chi_square_test(np.bincount(idx, minlength=len(levels)), probs, MIN_EXPECTED)[2]
            assert (p > ALPHA) == ok, (b, p)


def test_labels_are_connected_components():
    """Union-find labels against scipy's connected components on random bonds (2 x 5: a pair coupled twice)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(0)
    for n_x, n_y, offsets in ((6, 7, [(0, 1), (1, 0), (1, 1), (-1, 1)]), (2, 5, [(0, 1), (1, 0)])):
        occ = rng.random((20, len(offsets), n_x, n_y)) < 0.45
        labels = cluster._union_find(occ, np.array(offsets, np.int64))
        for b in range(20):
            rows, cols = [], []
            for d, (dx, dy) in enumerate(offsets):
                x, y = np.nonzero(occ[b, d])
                rows += list(x * n_y + y)
                cols += list(((x + dx) % n_x) * n_y + (y + dy) % n_y)
            S = n_x * n_y
            _, ref = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(S, S)), directed=False)
            lab = labels[b].reshape(-1)
            np.testing.assert_array_equal(lab[:, None] == lab[None, :], ref[:, None] == ref[None, :])
            assert all(lab[i] == np.flatnonzero(lab == lab[i]).min() for i in range(S))   # the smallest index


def test_same_seed_same_samples(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.testing.assert_array_equal(sample(tmp_path / "a", "ISING2", 5, 3, 0.4, seed=9)[0],
                                  sample(tmp_path / "b", "ISING2", 5, 3, 0.4, seed=9)[0])


def antiferromagnetic_fit(tmp_path):
    """A coupling fit's JSON (inverse_ising.py's form) whose every pair coupling is antiferromagnetic."""
    path = tmp_path / "afm.json"
    path.write_text(json.dumps({"couplings": {"J_horizontal": -1.0, "J_vertical": -1.0, "J_diagonal": 0.0,
                                              "J_antidiagonal": 0.0, "field": 0.0}, "trained_on": "none"}))
    return str(path)


@pytest.mark.parametrize("hamiltonian", ["EA", "afm"])
def test_refusals_one_line_exit_2_no_file(tmp_path, hamiltonian):
    """A Hamiltonian the update cannot serve (the spin glass; a table without a ferromagnetic pair
    coupling to build clusters from): one line saying what to use, exit 2, no file."""
    out = tmp_path / "x.hdf5"
    source = antiferromagnetic_fit(tmp_path) if hamiltonian == "afm" else hamiltonian
    args = [sys.executable, str(ROOT / "generate_ising.py"), "--algorithm", "cluster", "--hamiltonian", source,
            "--n_samples", "10", "--filename", str(out), "--no_progress"]
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and not out.exists()
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("generate_ising.py: error:") and "use --algorithm checkerboard" in last, r.stderr


def test_fitted_proposal_refused_without_slmc(tmp_path):
    """--proposal fitted where there is no self-learning proposal to fit (ISING1's own Swendsen-Wang):
    one line saying so, exit 2, no file."""
    out = tmp_path / "x.hdf5"
    args = [sys.executable, str(ROOT / "generate_ising.py"), "--algorithm", "cluster", "--proposal", "fitted",
            "--n_samples", "10", "--filename", str(out), "--no_progress"]
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and not out.exists()
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("generate_ising.py: error: --proposal fitted: only self-learning") and "drop" in last, r.stderr
