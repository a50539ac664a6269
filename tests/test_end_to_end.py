"""The user's whole path on tiny data: generate -> train (train_all.py, demo profile) -> evaluate ->
notebooks. The same code as `make demo`, with a 4 x 6 lattice, hidden size 8 and two batches."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import data_files
import evaluate as ev
import ising
import runs
import generate_ising as gi

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

N_X, N_Y = 4, 6
BETAS = {"train": (0.25,), "val": (0.25,), "val_125": (0.125,), "val_5": (0.5,), "test": (0.25,),
         "eval": (0.1, 0.3, 0.6)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = root / "data"
    data.mkdir()
    for seed, (role, betas) in enumerate(BETAS.items()):
        gi.generate(data_files.path(role, data), n_x=N_X, n_y=N_Y, betas=betas, n_samples=600, random_seed=seed,
                    progress=False)
    runs = root / "runs"
    cmd = [sys.executable, str(ROOT / "train_all.py"), "--profile", "demo", "--data_dir", str(data),
           "--runs", str(runs), "--out", str(root / "results"), "--images", str(root / "images"),
           "--hidden_size", "8", "--max_epochs", "1", "--n", "500",
           "--jobs", "2", "--limit_train_batches", "2", "--limit_val_batches", "2", "--batch_size", "64"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"root": root, "data": data, "runs": runs, "stdout": proc.stdout}


def test_train_all_then_evaluate_writes_everything(tiny):
    root = tiny["root"]
    found = runs.find_runs(tiny["runs"])
    assert sorted(r.family for r in found) == ["energy", "probability"]
    board = json.loads((root / "results" / "leaderboard.json").read_text())
    assert len(board) == 2
    # the leaderboard's centred RMSE is the protocol applied to the model's own predictions
    grids, energies, _ = ev.load_eval_set(data_files.path("eval", tiny["data"]), n=500)
    for run in found:
        pred = runs.predict(runs.load_model(run), grids)
        row = next(r for r in board if r["run"] == run.label)
        assert row["rmse_centred"] == pytest.approx(ising.centred_rmse(pred, energies), rel=1e-6)
        assert np.isfinite(row["rmse_centred"])
    for name in ("predictions_plot.png", "attention_plot.png"):
        assert (root / "images" / name).stat().st_size > 5000
    assert "RMSE (centred)" in tiny["stdout"]
    # rerunning skips finished runs
    cmd = [sys.executable, str(ROOT / "train_all.py"), "--profile", "demo", "--data_dir",
           str(tiny["data"]), "--runs", str(tiny["runs"]), "--out", str(root / "results2"),
           "--images", str(root / "images2"), "--hidden_size", "8", "--n", "200"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("finished already, skipping") == 2


@pytest.mark.parametrize("name", ["Consistency Checks", "Model Evaluation", "Attention Visualization", "Thermodynamics",
                                  "Phase Diagram"])
def test_notebook_runs_top_to_bottom(tiny, name, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    src = ROOT / "notebooks" / f"{name}.ipynb"
    work = tmp_path / "notebooks"
    work.mkdir()
    copy = work / src.name  # executed as a copy: the committed notebook is never overwritten
    shutil.copy(src, copy)
    book = nbformat.read(copy, as_version=4)
    env = {"WAL_DATA_DIR": str(tiny["data"]), "WAL_RUNS_DIR": str(tiny["runs"]),
           "WAL_RESULTS_DIR": str(tmp_path / "results"), "WAL_IMAGES_DIR": str(tmp_path / "images"),
           "WAL_THERMO_RUN": str(tiny["runs"] / "probability" / "GRU_1L_1H_hid8"), "WAL_THERMO_N": "2000", "WAL_PHASE_SWEEPS": "200"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert any((tmp_path / "images").glob("*.png"))
