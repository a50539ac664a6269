"""The trainers never destroy saved progress and never train where they must not: a resume that
cannot load last.ckpt stops in one line and leaves it byte for byte; a finished run is refused
(or cleared first with --overwrite); one trainer per run folder (a lock the OS drops when its
process dies); --run_name stays inside --output_dir; sizes are bounded with a reason; data files
that contradict themselves are refused. Tiny files and runs: every refusal comes before any fit."""
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import energy_trainer
import probability_trainer
from conftest import run_cli, user_error
from energy_models import EnergyModel

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--hidden_size", "8", "--batch_size", "16", "--max_epochs", "1", "--limit_train_batches", "2",
        "--limit_val_batches", "2", "--limit_test_batches", "2", "--accelerator", "cpu", "--devices", "1",
        "--no-progress_bar"]


@pytest.fixture(scope="module")
def data(ising_file):
    path = ising_file("safety.hdf5", n_samples=32, burn_in=4)
    return ["--train_path", str(path), "--val_paths", str(path), "--test_path", str(path)]


def _cli(main, argv, capsys):
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
        code = 0 if code is None or isinstance(code, dict) else code
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _saved_progress(folder: Path, hidden_size=8) -> Path:
    """A last.ckpt as an interrupted run of EnergyModel(hidden 8) on the 4 x 4 ISING1 file leaves it."""
    model = EnergyModel(hidden_size=hidden_size, beta=0.25, n_x=4, n_y=4, hamiltonian="ISING1", q=2)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), "epoch": 0,
                "global_step": 3}, folder / "last.ckpt")
    return folder / "last.ckpt"


# ------------------------------------------------------------------ 1. a failed resume keeps last.ckpt
def test_a_resume_with_other_flags_stops_and_keeps_last_ckpt(data, tmp_path, capsys):
    last = _saved_progress(tmp_path / "energy" / "mine")
    before = _digest(last)
    argv = [*data, *FAST, "--output_dir", tmp_path, "--run_name", "mine"]
    argv[argv.index("--hidden_size") + 1] = "16"
    line = user_error(*_cli(energy_trainer.main, argv, capsys), last, "hidden_size", "--no-resume")
    assert "8 there, 16 now" in line
    # same hyper-parameters, weights of another model: refused by their names and shapes
    ckpt = torch.load(last, weights_only=True)
    ckpt["state_dict"] = {f"other.{k}": v for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, last)
    before = _digest(last)
    argv[argv.index("--hidden_size") + 1] = "8"
    user_error(*_cli(energy_trainer.main, argv, capsys), last, "does not fit")
    last.write_bytes(b"not a checkpoint")                   # unreadable: refused too, never replaced
    before = _digest(last)
    user_error(*_cli(energy_trainer.main, argv, capsys), last, "--no-resume")
    assert _digest(last) == before
    assert sorted(p.name for p in last.parent.iterdir()) == [".lock", "last.ckpt"]


# ------------------------------------------------------------------ 2. a finished run is not retrained in place
def test_a_finished_run_is_refused_and_overwrite_trains_it_afresh(data, tmp_path, capsys):
    argv = [*data, *FAST, "--output_dir", str(tmp_path)]
    first = probability_trainer.main(argv)
    folder = tmp_path / "probability" / first["config_name"]
    kept = {p.name: _digest(p) for p in folder.iterdir() if p.is_file()}
    user_error(*_cli(probability_trainer.main, [*argv, "--seed", "1"], capsys), folder, "--overwrite")
    assert {p.name: _digest(p) for p in folder.iterdir() if p.is_file()} == kept
    second = probability_trainer.main([*argv, "--seed", "1", "--overwrite"])
    assert second["config"]["seed"] == 1 and json.loads((folder / "metrics.json").read_text())["config"]["seed"] == 1
    assert len(list((folder / "tensorboard").iterdir())) == 1  # the old run's logs went with it


def test_overwrite_removes_metrics_json_first(tmp_path, monkeypatch):
    """A kill while clearing leaves an unfinished run, never the old metrics.json beside new files."""
    import trainer_common

    folder = tmp_path / "run"
    (folder / "tensorboard").mkdir(parents=True)
    for name in ("metrics.json", "best.ckpt", "train.log", ".lock"):
        (folder / name).write_text(name)
    order = []
    real_unlink = Path.unlink
    monkeypatch.setattr(Path, "unlink", lambda self, *a, **k: order.append(self.name) or real_unlink(self, *a, **k))
    trainer_common.clear_run_directory(folder)
    assert order[0] == "metrics.json"
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "train.log"]


# ------------------------------------------------------------------ 3. one trainer per run folder
def test_a_second_trainer_on_the_same_folder_is_refused_and_a_dead_ones_lock_is_gone(data, tmp_path, capsys):
    folder = tmp_path / "energy" / "busy"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text("{}")          # finished: past the lock, the run is refused for that
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(folder / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode())\n"
        "print('locked', flush=True); time.sleep(120)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        argv = [*data, *FAST, "--output_dir", tmp_path, "--run_name", "busy"]
        line = user_error(*_cli(energy_trainer.main, argv, capsys), folder, "in use")
        assert str(holder.pid) in line
    finally:
        holder.kill()                                   # SIGKILL: no cleanup, the OS drops the lock
        holder.wait()
    user_error(*_cli(energy_trainer.main, argv, capsys), folder, "finished run")
    assert (folder / "metrics.json").read_text() == "{}"


# ------------------------------------------------------------------ 4. --run_name stays inside --output_dir
@pytest.mark.parametrize("name", ["../../x", "..", ".", "/tmp/abs", "a/b", ""])
def test_a_run_name_that_leaves_the_output_dir_is_refused(data, tmp_path, capsys, name):
    out = tmp_path / "out" / "deep"
    user_error(*_cli(energy_trainer.main, [*data, *FAST, "--output_dir", out, "--run_name", name], capsys),
               "--run_name")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 7. sizes bounded with a reason
def test_a_model_larger_than_the_memory_is_refused_before_it_is_built(data, tmp_path, capsys):
    line = user_error(*_cli(energy_trainer.main, [*data, *FAST, "--hidden_size", "100000000", "--output_dir",
                                                  tmp_path], capsys), "--hidden_size", "GB")
    assert "parameters" in line
    assert list(tmp_path.iterdir()) == []


def test_a_tiny_file_declaring_a_billion_lattices_is_refused_at_once(tmp_path, capsys):
    huge = tmp_path / "huge.hdf5"
    with h5py.File(huge, "w") as f:                     # a few kB on disk, 16 GB declared
        f.create_dataset("ising_grids", (10**9, 4, 4), np.int8, chunks=(1024, 4, 4), fillvalue=1)
        f.create_dataset("true_energies", (10**9,), np.float32, chunks=(4096,), fillvalue=-32)
        f.create_dataset("beta", (10**9,), np.float32, chunks=(4096,), fillvalue=0.25)
        f.attrs["betas"] = [0.25]
    t0 = time.perf_counter()
    argv = ["--train_path", huge, "--val_paths", huge, "--test_path", huge, *FAST, "--output_dir", tmp_path / "o"]
    user_error(*_cli(energy_trainer.main, argv, capsys), huge, "stores")
    assert time.perf_counter() - t0 < 30 and not (tmp_path / "o").exists()


# ------------------------------------------------------------------ 6. a file that contradicts itself
def test_a_betas_attribute_that_disagrees_with_the_beta_dataset_is_refused(ising_file, tmp_path, capsys):
    import shutil

    wrong = tmp_path / "wrong.hdf5"
    shutil.copy(ising_file("safety.hdf5", n_samples=32, burn_in=4), wrong)
    with h5py.File(wrong, "r+") as f:
        f.attrs["betas"] = [0.5]                       # the beta dataset says 0.25
    argv = ["--train_path", wrong, "--val_paths", wrong, "--test_path", wrong, *FAST, "--output_dir", tmp_path / "o"]
    user_error(*_cli(energy_trainer.main, argv, capsys), wrong, "betas")
    with h5py.File(wrong, "r+") as f:
        f.attrs["betas"] = [0.25]
        beta = f["beta"][()]
        beta[5] = np.nan
        f["beta"][...] = beta
    user_error(*_cli(probability_trainer.main, argv, capsys), wrong, "finite")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ an interrupted resume keeps its progress
def test_the_interrupt_checkpoint_is_written_only_once_training_started():
    """OnExceptionCheckpoint would save a fresh model over last.ckpt when the fit fails while restoring it."""
    import trainer_common

    keep, _ = trainer_common._callback_classes()
    callback = keep("unused", "last")
    saved = []
    callback._save = lambda *a: saved.append(a)       # never reached before on_train_start

    class Fit:
        class state:
            fn = "fit"

    import lightning.pytorch.callbacks as cb

    original = cb.OnExceptionCheckpoint.on_exception
    try:
        cb.OnExceptionCheckpoint.on_exception = lambda self, *a, **k: saved.append("saved")
        callback.on_exception(Fit(), None, RuntimeError("restore failed"))
        assert saved == []
        callback.on_train_start(Fit(), None)
        callback.on_exception(Fit(), None, KeyboardInterrupt())
        assert saved == ["saved"]
    finally:
        cb.OnExceptionCheckpoint.on_exception = original


# ------------------------------------------------------------------ 6, 7. the evaluation
EDNN = ROOT / "weights" / "energy" / "EDNN_F1_C1_hid16x2"  # 8 x 8 ISING1


@pytest.fixture
def eval_file(ising_file, tmp_path):
    import shutil

    path = tmp_path / "eval.hdf5"
    shutil.copy(ising_file("eval8.hdf5", betas=(0.2, 0.4), n_samples=16, n_x=8, n_y=8, burn_in=4), path)
    return path


def _evaluate(argv, capsys):
    import evaluate

    return run_cli(evaluate.main, argv, capsys)


@pytest.mark.parametrize("column, row", [("true_energies", 7), ("beta", 3)])
def test_an_eval_file_with_a_nan_energy_or_beta_is_refused(eval_file, tmp_path, capsys, column, row):
    import shutil

    shutil.copytree(EDNN, tmp_path / "runs" / "energy" / EDNN.name)
    with h5py.File(eval_file, "r+") as f:
        values = f[column][()]
        values[row] = np.nan
        f[column][...] = values
    code, err = _evaluate(["--runs", tmp_path / "runs", "--eval_path", eval_file, "--out", tmp_path / "res",
                           "--images", tmp_path / "res", "--n", "200"], capsys)
    user_error(code, err, eval_file)
    assert not (tmp_path / "res").exists()


def test_an_eval_file_whose_betas_attribute_disagrees_is_refused(eval_file, tmp_path, capsys):
    import shutil

    shutil.copytree(EDNN, tmp_path / "runs" / "energy" / EDNN.name)
    with h5py.File(eval_file, "r+") as f:
        f.attrs["betas"] = [0.2, 0.3]
    code, err = _evaluate(["--runs", tmp_path / "runs", "--eval_path", eval_file, "--out", tmp_path / "res",
                           "--images", tmp_path / "res", "--n", "20"], capsys)
    user_error(code, err, eval_file, "betas")


def test_an_evaluation_draw_larger_than_the_memory_is_refused(eval_file, tmp_path, capsys):
    import shutil

    shutil.copytree(EDNN, tmp_path / "runs" / "energy" / EDNN.name)
    code, err = _evaluate(["--runs", tmp_path / "runs", "--eval_path", eval_file, "--out", tmp_path / "res",
                           "--images", tmp_path / "res", "--n", str(10**14)], capsys)
    user_error(code, err, "--n", "GB")
    user_error(*_evaluate(["--eval_path", eval_file, "--n", "1e11"], capsys), "--n", usage=True)


def test_a_diverged_run_is_reported_and_never_a_nan_row(eval_file, tmp_path, capsys):
    import shutil

    good, bad = (tmp_path / "runs" / "energy" / name for name in ("EDNN_F1_C1_hid16x2", "EDNN_diverged"))
    shutil.copytree(EDNN, good)
    shutil.copytree(EDNN, bad)
    ckpt = torch.load(bad / "best.ckpt", weights_only=True)
    first = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    ckpt["state_dict"][first] = torch.full_like(ckpt["state_dict"][first], float("nan"))
    torch.save(ckpt, bad / "best.ckpt")
    code, err = _evaluate(["--runs", tmp_path / "runs", "--eval_path", eval_file, "--out", tmp_path / "res",
                           "--images", tmp_path / "res", "--n", "64"], capsys)
    assert code == 0 and "Traceback" not in err and "skipping energy/EDNN_diverged" in err, err
    text = (tmp_path / "res" / "leaderboard.json").read_text()
    rows = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in leaderboard.json"))
    assert [r["config"] for r in rows] == ["EDNN_F1_C1_hid16x2"]
    assert "nan" not in (tmp_path / "res" / "leaderboard.md").read_text().lower()
    shutil.rmtree(good)
    user_error(*_evaluate(["--runs", tmp_path / "runs", "--eval_path", eval_file, "--out", tmp_path / "res2",
                           "--images", tmp_path / "res2", "--n", "64"], capsys), "NaN")


@pytest.mark.parametrize("flag, value", [("--num_workers", "100000"), ("--devices", "99")])
def test_process_counts_beyond_the_machine_are_refused(data, tmp_path, capsys, flag, value):
    """Each DataLoader worker, and each CPU "device", is a process: 100000 would fork-bomb the machine."""
    argv = [*data, *FAST, "--output_dir", tmp_path]
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    user_error(*_cli(energy_trainer.main, argv, capsys), flag, "cores")
    assert list(tmp_path.iterdir()) == []


def test_a_batch_whose_activations_exceed_the_memory_is_refused(monkeypatch, capsys):
    """512 lattices of 1000 x 1000 sites at hidden size 512 keep over 500 GB for the backward pass."""
    import argparse

    import runs
    import trainer_common

    monkeypatch.setattr(runs, "available_memory", lambda: 64 * 10**9)
    parser = argparse.ArgumentParser(prog="energy_trainer.py")
    args = argparse.Namespace(hidden_size=512, num_layers=1, batch_size=512)
    hparams = dict(hidden_size=512, beta=0.25, n_x=1000, n_y=1000, hamiltonian="ISING1", q=2)
    with pytest.raises(SystemExit) as exc:
        trainer_common.check_model_size(parser, args, EnergyModel, hparams, n_lattices=20000)
    line = user_error(exc.value.code, capsys.readouterr().err, "--batch_size", "activations")
    assert "1000 x 1000" in line
    trainer_common.check_model_size(parser, args, EnergyModel, hparams, n_lattices=2)  # 2 lattices: 2 GB, fits
    trainer_common.check_model_size(parser, args, EnergyModel, {**hparams, "n_x": 8, "n_y": 8}, n_lattices=20000)
