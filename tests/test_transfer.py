"""transfer.py: runs scored on lattices larger than their training ones, per site."""
import json

import h5py
import numpy as np
import pytest

import energy_trainer
import runs
import transfer
from checks import main_guard
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
    assert main_guard(transfer.main, ["--runs", str(tmp_path / "none"), "--sizes", "4"]) == 2
    assert "no runs" in capsys.readouterr().err
    # exported as weights only: smaller, loads alone from its new folder, predicts the same
    run = runs.find_runs(tmp_path / "runs")[0]
    assert ev.main(["export", str(run.dir), "--to", str(tmp_path / "weights")]) == 0
    (exported,) = runs.find_runs(tmp_path / "weights")
    assert exported.checkpoint.stat().st_size < run.checkpoint.stat().st_size
    np.testing.assert_array_equal(runs.predict(runs.load_model(exported), grids), runs.predict(model, grids))
