"""The pseudo-likelihood baseline (inverse_ising.py): exact recovery of the couplings from the
exact Boltzmann law, the fit as a Hamiltonian source, and one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import hamiltonian
import inverse_ising
import hamiltonians
import ising
from conftest import user_error

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, beta", [("ISING1", 0.3), ("ISING2", 0.2)])
def test_the_fit_recovers_the_couplings_of_the_exact_distribution(name, beta):
    """Pseudo-likelihood is consistent: fed every state of 4 x 4 weighted by its exact Boltzmann
    probability (the infinite-data limit), it returns the true couplings and zero field."""
    states = ising.all_states(4, 4)
    log_w = -beta * ising.energy(states, name)
    p = np.exp(log_w - log_w.max())
    counts = inverse_ising.feature_counts(states, p / p.sum())
    truth = [*ising.true_couplings(name).values(), 0.0]
    np.testing.assert_allclose(inverse_ising.fit(counts, beta), truth, atol=1e-9)
    np.testing.assert_allclose(inverse_ising.fit(counts, beta, spin_flip=True), truth, atol=1e-9)


def test_a_wrong_beta_gives_proportionally_wrong_couplings():
    """The fit measures beta J: told beta twice too small, it reports couplings twice too large."""
    states = ising.all_states(4, 4)
    p = np.exp(-0.3 * ising.energy(states, "ISING1"))
    theta = inverse_ising.fit(inverse_ising.feature_counts(states, p / p.sum()), 0.15)
    np.testing.assert_allclose(theta[:2], 2.0, atol=1e-9)


def _write(path, grids, beta=0.3, hamiltonian_name="ISING1"):
    with h5py.File(path, "w") as f:
        f["ising_grids"] = np.asarray(grids, np.int8)
        f["beta"] = np.full(len(grids), beta)
        f.attrs.update(hamiltonian=hamiltonian_name, n_x=grids.shape[1], n_y=grids.shape[2])
    return path


def test_the_fit_is_a_hamiltonian_source(tmp_path):
    """Sampled 6 x 6 ISING2 lattices: fitted couplings within 4 error bars of the truth, and the JSON
    read back by hamiltonians.resolve expands (hamiltonian.py) into exactly the fitted couplings."""
    from sampler import Sampler

    sampler = Sampler(6, 6, "ISING2", [0.2], 2000, seed=3)
    sampler.burn(200)
    grids = np.asarray(sampler.produce(4, 5)[0])[:, :2000].reshape(-1, 6, 6)
    data = _write(tmp_path / "train.hdf5", grids, beta=0.2, hamiltonian_name="ISING2")
    out = tmp_path / "fit.json"
    assert inverse_ising.main(["--train_path", str(data), "--out", str(out), "--blocks", "4"]) == 0
    rep = __import__("json").loads(out.read_text())
    for n, t in ising.true_couplings("ISING2").items():
        assert abs(rep["couplings"][n] - t) < 4 * rep["errors"][n] + 1e-12, (n, rep["couplings"][n], rep["errors"][n])
    table = hamiltonians.resolve(str(out))
    assert table.trained_on == "ISING2"
    s = hamiltonian.summary(ising.coupling_classes(table.array))
    for n in ising.PAIR_NAMES:
        assert s[n] == pytest.approx(rep["couplings"][n], abs=1e-12)
    assert s["further_pairs_total_abs"] < 1e-12 and s["many_spin_total_abs"] < 1e-12
    assert s["odd_total_abs"] == pytest.approx(abs(rep["couplings"]["field"]), abs=1e-12)



def test_the_teacher_fit_recovers_the_five_numbers_and_is_a_hamiltonian_source(tmp_path, monkeypatch):
    """`inverse_ising.py --teacher RUN` on an ISING2 file: a teacher whose energies are the true ones plus a
    constant, noise of 0.3 per lattice and an 8-spin term (a stand-in for the further terms a trained
    teacher carries, which a network student copies) gives ISING2's couplings within 4 error bars, and
    a JSON that hamiltonians.resolve reads as exactly those pairs. Power: the same energies times 1.01 (a
    teacher at a slightly wrong beta) are refused by the same check."""
    rng = np.random.default_rng(2)
    grids = rng.choice(np.array([-1, 1], np.int8), size=(20000, 6, 6))
    data = _write(tmp_path / "train.hdf5", grids, beta=0.2, hamiltonian_name="ISING2")
    plaquettes = (grids * np.roll(grids, 1, axis=1) * np.roll(grids, 1, axis=2)
                  * np.roll(grids, (1, 1), axis=(1, 2))).sum(axis=(1, 2))
    true = ising.energy(grids, "ISING2") + 0.05 * plaquettes

    def fitted(scale, *flags):
        monkeypatch.setattr(inverse_ising, "teacher_energies", lambda teacher, g, system=None:
                            scale * true - 40.0 + rng.normal(0, 0.3, len(g)))
        out = tmp_path / f"student_{scale}{''.join(flags)}.json"
        assert inverse_ising.main(["--train_path", str(data), "--teacher", "RUN", "--out", str(out), *flags]) == 0
        return out, json.loads(out.read_text())

    def within(rep):
        return all(abs(rep["couplings"][n] - t) <= 4 * rep["errors"][n] for n, t in rep["truth"].items())

    out, rep = fitted(1.0)
    assert rep["kind"] == inverse_ising.TEACHER_PAIRS_KIND and rep["teacher"] == "RUN" and within(rep), rep
    assert max(rep["errors"].values()) < 2e-3
    assert "teacher RUN" in out.with_suffix(".md").read_text()
    s = hamiltonian.summary(ising.coupling_classes(hamiltonians.resolve(str(out)).array))
    for n in ising.PAIR_NAMES:
        assert s[n] == pytest.approx(rep["couplings"][n], abs=1e-12)
    assert s["many_spin_total_abs"] < 1e-12
    assert not within(fitted(1.01)[1])
    flip = fitted(1.0, "--spin_flip")[1]                 # the symmetry imposed: no field, the rest as before
    assert flip["spin_flip"] and flip["couplings"]["field"] == 0.0 and within(flip), flip


def test_the_shipped_teacher_gives_the_committed_five_numbers(tmp_path):
    """results/inverse_ising/teacher_ISING1_Flip_...: the shipped ISING1 joint model, asked again on 4,000
    fresh 8 x 8 lattices at beta 0.25, gives the committed couplings within 5 of this sample's block errors
    (the committed ones come from 200,000), and the committed JSON is an ISING1 Hamiltonian source.
    Power: couplings 1% off (a teacher at a slightly wrong beta) are outside those errors."""
    from sampler import Sampler

    name = "2D_GRU_1L_1H_Bi_Joint_hid64_Cosine"
    committed = ROOT / "results" / "inverse_ising" / f"teacher_ISING1_Flip_from_{name}.json"
    sampler = Sampler(8, 8, "ISING1", [0.25], 400, seed=5)
    sampler.burn(200)
    grids = np.asarray(sampler.produce(10, 5)[0])[:, :400].reshape(-1, 8, 8)
    data = _write(tmp_path / "train.hdf5", grids, beta=0.25)
    rep = inverse_ising.teacher_fit(data, ROOT / "weights" / "probability" / name, blocks=8, spin_flip=True)
    shipped = json.loads(committed.read_text())["couplings"]
    for n in ising.PAIR_NAMES:
        assert abs(rep["couplings"][n] - shipped[n]) < 5 * rep["errors"][n], (n, rep["couplings"][n], rep["errors"][n])
    assert abs(1.01 * shipped["J_horizontal"] - rep["couplings"]["J_horizontal"]) > 5 * rep["errors"]["J_horizontal"]
    assert hamiltonians.resolve(str(committed)).trained_on == "ISING1"


def _cli(*args):
    return subprocess.run([sys.executable, "inverse_ising.py", *args], cwd=ROOT, capture_output=True, text=True)


def test_bad_inputs_get_one_line(tmp_path):
    grids = np.ones((8, 4, 4))
    multi = tmp_path / "multi.hdf5"
    with h5py.File(multi, "w") as f:
        f["ising_grids"] = grids.astype(np.int8)
        f["beta"] = np.array([0.1, 0.2] * 4)
    few = _write(tmp_path / "few.hdf5", grids)
    # exit 2 and one line naming what is at fault (conftest `user_error`): a missing file, one of
    # several betas, too few lattices for the blocks, fewer than 2 blocks
    for args, named in ((["--train_path", str(tmp_path / "none.hdf5")], "none.hdf5"),
                        (["--train_path", str(multi)], multi.name),
                        (["--train_path", str(few), "--blocks", "10"], few.name),
                        (["--train_path", str(few), "--blocks", "1"], "--blocks"),
                        (["--train_path", str(few), "--spin_flip", "--per_bond"], "--spin_flip")):
        r = _cli(*args, "--out", str(tmp_path / "x.json"))
        user_error(r.returncode, r.stderr, named)
    assert not (tmp_path / "x.json").exists()
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a coupling fit"):
        hamiltonians.resolve(str(bad))
