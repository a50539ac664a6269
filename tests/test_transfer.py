"""transfer.py: runs scored on lattices larger than their training ones, per site."""
import json
import shutil

import h5py
import numpy as np
import pytest

import energy_trainer
import ising
import runs
import transfer
from checks import main_guard
from conftest import user_error
from ising import energy as ising_energy


def test_score_by_hand():
    true = np.array([10.0, 12.0, 20.0, 26.0])
    pred = true + np.array([1.0, 3.0, 0.0, 0.0])
    betas = np.array([0.2, 0.2, 0.3, 0.3])
    s = transfer.score(pred, true, betas, n_sites=4, absolute=True)
    assert s["0.2"]["rmse_per_site"] == pytest.approx(np.sqrt(5) / 4)        # errors 1, 3
    assert s["0.2"]["rmse_per_site_centred"] == pytest.approx(1.0 / 4)       # centred errors -1, 1
    assert s["0.3"]["rmse_per_site_centred"] == 0 and s["0.3"]["energy_std_per_site"] == pytest.approx(3 / 4)
    assert transfer.score(pred, true, betas, 4, absolute=False)["0.2"]["rmse_per_site"] is None
    assert transfer.score(pred, true, betas, 4, absolute=False)["0.2"]["u_shift_per_site"] is None
    # beta 0.2: d = 1, 3 around <d> = 2; E - <E> = -1, 1: <d> - beta Cov(d, E) = 2 - 0.2 * 1, per site / 4
    assert s["0.2"]["u_shift_per_site"] == pytest.approx((2 - 0.2 * 1.0) / 4)


@pytest.mark.parametrize("beta", [0.3, 0.44])
def test_u_shift_is_the_first_order_change_of_the_exact_u(beta):
    """A model E + eta E_diag (a 1% diagonal coupling), simulated at beta, has U'(beta) = U(beta) +
    eta dU/deta + O(eta^2); u_shift on lattices drawn exactly from E's Boltzmann law (4 x 4, all states)
    matches eta dU/deta of the enumerated U within 4 errors, and fails at 1.05 beta (power)."""
    states = ising.all_states(4, 4)
    E = ising_energy(states, "ISING1").astype(np.float64)
    diag = -(states * np.roll(states, (1, 1), axis=(1, 2))).sum((1, 2)).astype(np.float64)

    def U(H):
        w = np.exp(-beta * (H - H.min()))
        return (w * H).sum() / w.sum()
    eta, h = 0.01, 1e-5
    exact = eta * (U(E + h * diag) - U(E - h * diag)) / (2 * h)
    w = np.exp(-beta * (E - E.min()))
    idx = np.random.default_rng(0).choice(len(E), 200_000, p=w / w.sum())
    shift, err = transfer.u_shift(E[idx] + eta * diag[idx], E[idx], beta)
    assert abs(shift - exact) < 4 * err and err < 0.005 * abs(exact)
    assert abs(transfer.u_shift(E[idx] + eta * diag[idx], E[idx], 1.05 * beta)[0] - exact) > 8 * err


@pytest.mark.slow
def test_transfer_of_a_trained_ednn(ising_file, tmp_path, capsys):
    kw = dict(n_x=4, n_y=4, burn_in=20)
    files = [ising_file(name, betas=(0.3,), n_samples=n, seed=s, **kw)
             for name, n, s in (("train_data.hdf5", 2000, 1), ("val_data_beta_dot25.hdf5", 200, 2))]
    energy_trainer.main(["--train_path", str(files[0]), "--val_paths", str(files[1]), "--test_path", str(files[1]),
                         "--architecture", "ednn", "--max_epochs", "4", "--batch_size", "32", "--accelerator", "cpu",
                         "--no-progress_bar", "--output_dir", str(tmp_path / "runs")])
    argv = ["--runs", str(tmp_path / "runs"), "--sizes", "4", "8", "--betas", "0.2", "0.4", "--n", "40",
            "--data_dir", str(tmp_path / "lattices"), "--out", str(tmp_path / "out")]
    assert transfer.main(argv) == 0
    rows = json.loads((tmp_path / "out" / "transfer.json").read_text())
    assert [(r["size"], r["beta"]) for r in rows] == [(4, 0.2), (4, 0.4), (8, 0.2), (8, 0.4)]
    # recompute one row from the lattices file the command wrote
    path = transfer.transfer_file("ISING1", 8, [0.2, 0.4], 40, tmp_path / "lattices")
    with h5py.File(path, "r") as f:
        grids, beta = f["ising_grids"][:], f["beta"][:]
    import evaluate as ev

    model = runs.load_model(runs.find_runs(tmp_path / "runs")[0])
    err = runs.predict(model, grids)[beta == np.float32(0.4)] - ising_energy(grids[beta == np.float32(0.4)])
    assert rows[3]["rmse_per_site"] == pytest.approx(np.sqrt(np.mean(err**2)) / 64, rel=1e-5)
    assert rows[3]["rmse_per_site"] < 0.5                       # it learned something that carries over
    for name in ("transfer.md", "transfer.csv", "transfer_plot.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    capsys.readouterr()                                          # the training's log lines are not this command's
    code = main_guard(transfer.main, ["--runs", str(tmp_path / "none"), "--sizes", "4"])
    user_error(code, capsys.readouterr().err, tmp_path / "none")                # no runs there
    # exported as weights only: smaller, loads alone from its new folder, predicts the same
    run = runs.find_runs(tmp_path / "runs")[0]
    assert ev.main(["export", str(run.dir), "--to", str(tmp_path / "weights")]) == 0
    (exported,) = runs.find_runs(tmp_path / "weights")
    assert exported.checkpoint.stat().st_size < run.checkpoint.stat().st_size
    np.testing.assert_array_equal(runs.predict(runs.load_model(exported), grids), runs.predict(model, grids))


def test_default_betas_straddle_the_transition():
    """Ising runs keep their betas; a Potts run's are 0.6 ... 1.4 x beta_c(q), to 0.1, on both sides."""
    import potts

    assert transfer.default_betas("ISING1") == transfer.default_betas("ISING2") == (0.2, 0.3, 0.4, 0.44)
    assert transfer.default_betas("POTTS3") == (0.6, 0.8, 1.0, 1.2, 1.4)
    for q in (3, 4, 5):
        betas = transfer.default_betas(f"POTTS{q}")
        assert len(betas) == 5 and min(betas) < potts.beta_c(q) < max(betas)
        assert 2 <= sum(b > potts.beta_c(q) for b in betas) <= 3     # the 1.0 x beta_c one is on either side


def _potts_run(potts_file, tmp_path):
    """A tiny supervised EDNN trained for one epoch on 4 x 4 q = 3 lattices at beta 0.8."""
    files = [potts_file(name, n_samples=n, seed=s, beta=0.8)
             for name, n, s in (("train.hdf5", 256, 1), ("val.hdf5", 32, 2))]
    energy_trainer.main(["--train_path", str(files[0]), "--val_paths", str(files[1]), "--test_path", str(files[1]),
                         "--architecture", "ednn", "--hidden_size", "8", "--max_epochs", "1", "--batch_size", "32",
                         "--accelerator", "cpu", "--no-progress_bar", "--output_dir", str(tmp_path / "runs")])
    (run,) = runs.find_runs(tmp_path / "runs")
    assert run.name == "EDNN_F1_C1_hid8x2_Q3" and run.hamiltonian == "POTTS3" and run.q == 3
    return run


@pytest.mark.slow
def test_transfer_of_a_potts_run(potts_file, ising_file, tmp_path, capsys):
    """A Potts run is scored on Potts lattices of the larger sizes (the Potts sampler, states 0..2,
    true energies potts.energy) at the Potts default betas; the table names the Hamiltonian."""
    import potts

    run = _potts_run(potts_file, tmp_path)
    betas = transfer.default_betas("POTTS3")
    argv = ["--runs", str(run.dir), "--sizes", "4", "8", "--n", "6", "--data_dir", str(tmp_path / "lattices"),
            "--out", str(tmp_path / "out"), "--no-progress_bar"]
    assert transfer.main(argv) == 0
    out = capsys.readouterr().out
    assert "| Run | Hamiltonian | Size |" in out and "| POTTS3 (β_c 1.005) | 8 | 1.4 |" in out
    rows = json.loads((tmp_path / "out" / "transfer.json").read_text())
    assert [(r["size"], r["beta"]) for r in rows] == [(s, b) for s in (4, 8) for b in betas]
    assert {(r["run"], r["hamiltonian"], r["trained_on"]) for r in rows} == {(run.label, "POTTS3", "4x4")}
    path = transfer.transfer_file("POTTS3", 8, betas, 6, tmp_path / "lattices")
    assert path.name == "POTTS3_8x8_6_b0.6-0.8-1-1.2-1.4.hdf5"
    with h5py.File(path, "r") as f:
        grids, true, beta = f["ising_grids"][:], f["true_energies"][:], f["beta"][:]
        assert (f.attrs["q"], f.attrs["hamiltonian"]) == (3, "POTTS3")
    assert grids.shape == (30, 8, 8) and grids.min() >= 0 and grids.max() <= 2
    np.testing.assert_array_equal(true, potts.energy(grids))     # Potts energies, not Ising ones
    model = runs.load_model(run)
    for r in rows[5:]:                                            # recompute the 8 x 8 rows
        m = beta == np.float32(r["beta"])
        err = runs.predict(model, grids[m]) - potts.energy(grids[m])
        assert r["rmse_per_site"] == pytest.approx(np.sqrt(np.mean(err**2)) / 64, rel=1e-5)
        assert r["rmse_per_site_centred"] == pytest.approx(np.std(err) / 64, rel=1e-5, abs=1e-12)
    # a reused file of another Hamiltonian at a Potts run's path: one line, nothing scored
    reused = transfer.transfer_path("POTTS3", 16, betas, 6, tmp_path / "lattices")
    shutil.copy(ising_file("other.hdf5", betas=betas, n_samples=6, n_x=16, n_y=16), reused)
    code = main_guard(transfer.main, [*argv[:3], "16", *argv[5:]])
    user_error(code, capsys.readouterr().err, reused.name)
