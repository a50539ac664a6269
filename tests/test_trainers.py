"""Tests of energy_trainer.py, probability_trainer.py and trainer_common.py on tiny files
made by the real generator (conftest `ising_file`): end-to-end runs, metrics.json checked
against an independent recomputation from the best checkpoint, flags, errors, and a
2-process CPU DDP run (slow)."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import energy_trainer
import probability_trainer
from energy_models import EnergyModel
from ising import energy as ising_energy
from probability_models import ProbabilityModel
from runs import config_name

ROOT = Path(__file__).resolve().parents[1]
N_TEST = 37  # odd on purpose: DDP on 2 processes must not count a padded sample twice
FAST = ["--hidden_size", "8", "--batch_size", "16", "--max_epochs", "1", "--limit_train_batches", "2",
        "--limit_val_batches", "2", "--accelerator", "cpu", "--devices", "1", "--no-progress_bar", "--lr", "3e-3",
        "--log_every_n_steps", "1"]  # a log line per step: the 2 batches are fewer than the default interval


@pytest.fixture(scope="module")
def data(ising_file):
    kw = dict(n_x=4, n_y=4, burn_in=20)
    files = {
        "train": ising_file("train_data.hdf5", betas=(0.25,), n_samples=96, seed=1, **kw),
        "val": [ising_file("val_data_beta_dot25.hdf5", betas=(0.25,), n_samples=32, seed=2, **kw),
                ising_file("val_data_beta_dot125.hdf5", betas=(0.125,), n_samples=32, seed=3, **kw),
                ising_file("val_data_beta_dot5.hdf5", betas=(0.5,), n_samples=32, seed=4, **kw)],
        "test": ising_file("test_data.hdf5", betas=(0.25,), n_samples=N_TEST, seed=5, **kw),
    }
    files["args"] = ["--train_path", str(files["train"]), "--val_paths", *map(str, files["val"]),
                     "--test_path", str(files["test"])]
    return files


def _independent_metrics(ckpt, cls, test_path):
    """Test RMSE (raw, centred) recomputed from the checkpoint alone through predict_energy."""
    model = cls.load_from_checkpoint(ckpt, map_location="cpu").eval()
    with h5py.File(test_path, "r") as f:
        grids = f["ising_grids"][:]
    true = np.asarray(ising_energy(grids, model.hparams.hamiltonian), dtype=np.float64)
    with torch.no_grad():
        pred = model.predict_energy(torch.as_tensor(grids)).double().numpy()
    err = pred - true
    return float(np.sqrt(np.mean(err ** 2))), float(np.sqrt(np.mean((err - err.mean()) ** 2)))


def _check_metrics(run_dir, family, cls, test_path, world_size=1):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test_loss", "test_rmse", "test_rmse_centred", "test_n_samples", "best_checkpoint", "best_val_loss",
                "epochs", "train_time_s", "train_samples_per_s", "config", "config_name", "family"):
        assert key in metrics, key
    assert metrics["family"] == family and metrics["config_name"] == run_dir.name
    assert metrics["test_n_samples"] == N_TEST
    assert metrics["config"]["world_size"] == world_size
    assert metrics["config"]["beta"] == 0.25 and metrics["config"]["n_x"] == 4 and metrics["config"]["hamiltonian"] == "ISING1"
    ckpt = Path(metrics["best_checkpoint"])
    assert ckpt.parent == run_dir.resolve() and ckpt.is_file()
    rmse, rmse_centred = _independent_metrics(ckpt, cls, test_path)
    assert metrics["test_rmse"] == pytest.approx(rmse, rel=1e-4)
    assert metrics["test_rmse_centred"] == pytest.approx(rmse_centred, rel=1e-4)
    assert metrics["train_samples_per_s"] > 0 and np.isfinite(metrics["test_loss"])
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert [p.name for p in run_dir.glob("*.ckpt")] == ["best.ckpt"]  # a finished run leaves nothing to resume
    return metrics


def test_energy_trainer_end_to_end(data, tmp_path):
    out = tmp_path / "runs"
    energy_trainer.main([*data["args"], *FAST, "--output_dir", str(out), "--attention", "--two_d", "--bidirectional",
                         "--n_heads", "2", "--energy_head", "site", "--loss", "mse"])
    run_dir = out / "energy" / "2D_GRU_1L_2H_Bi_Attn_hid8_Site_MSE"
    metrics = _check_metrics(run_dir, "energy", EnergyModel, data["test"])
    assert metrics["config"]["energy_head"] == "site" and metrics["config"]["loss"] == "mse"
    assert metrics["data"]["val_names"] == ["val", "val_beta_0.125", "val_beta_0.5"]
    # test loss is the MSE, so it equals test_rmse squared
    assert metrics["test_loss"] == pytest.approx(metrics["test_rmse"] ** 2, rel=1e-4)


@pytest.mark.parametrize("extra, name", [([], "GRU_1L_1H_hid8"), (["--bidirectional", "--attention", "--cell", "lstm"],
                                                                  "LSTM_1L_1H_Bi_Attn_hid8")])
def test_probability_trainer_end_to_end(data, tmp_path, extra, name):
    out = tmp_path / "runs"
    probability_trainer.main([*data["args"], *FAST, "--output_dir", str(out), *extra])
    _check_metrics(out / "probability" / name, "probability", ProbabilityModel, data["test"])


def test_logged_validation_names(data, tmp_path):
    out = tmp_path / "runs"
    energy_trainer.main([*data["args"], *FAST, "--output_dir", str(out)])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((out / "energy" / "GRU_1L_1H_hid8" / "tensorboard").iterdir())))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val/loss", "val_beta_0.125/loss", "val_beta_0.5/loss", "test/rmse_centred"} <= tags


def test_early_stop_is_recorded(data, tmp_path):
    """A learning rate too small to move a float32 weight: the validation loss never improves, so
    patience 1 stops the run after its second epoch, and metrics.json says so (the test phase,
    which reloads best.ckpt from the first epoch, must not erase it)."""
    out = tmp_path / "runs"
    metrics = energy_trainer.main([*data["args"], *FAST, "--output_dir", str(out), "--max_epochs", "4",
                                   "--patience", "1", "--lr", "1e-20", "--precision", "32-true"])
    assert metrics["stopped_early"] is True and metrics["epochs"] == 2


def test_last_checkpoint_holds_the_last_epochs_stopping_state(data, tmp_path, monkeypatch, capsys):
    """last.ckpt (what a resumed run continues from) is written after early stopping and the best
    checkpoint have seen the epoch's validation loss, not one epoch behind them. Without a
    progress bar each epoch prints a line."""
    import trainer_common

    seen, write = {}, trainer_common.write_metrics

    def capture(run_dir, metrics):  # last.ckpt is removed once the run is done: read it first
        seen.update(torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=True)["callbacks"])
        return write(run_dir, metrics)

    monkeypatch.setattr(trainer_common, "write_metrics", capture)
    metrics = probability_trainer.main([*data["args"], *FAST, "--output_dir", str(tmp_path), "--max_epochs", "2"])
    stopping = next(v for k, v in seen.items() if k.startswith("EarlyStopping"))
    best = next(v for k, v in seen.items() if k.startswith("ModelCheckpoint"))
    assert float(stopping["best_score"]) == pytest.approx(metrics["best_val_loss"])
    assert float(best["best_model_score"]) == pytest.approx(metrics["best_val_loss"])
    out = capsys.readouterr().out
    assert "epoch 1/2: val/loss" in out and "epoch 2/2: val/loss" in out


def test_timed_checkpoints_write_last_ckpt_only(data, tmp_path, monkeypatch):
    """The timed checkpoint (every --checkpoint_minutes) and the epoch-end one share last.ckpt: never a
    last-v1.ckpt beside it, and a finished run keeps best.ckpt alone."""
    import trainer_common

    seen, write = [], trainer_common.write_metrics
    monkeypatch.setattr(trainer_common, "write_metrics",
                        lambda run_dir, metrics: seen.extend(p.name for p in run_dir.glob("*.ckpt")) or write(run_dir, metrics))
    argv = [*data["args"], *FAST, "--output_dir", str(tmp_path), "--max_epochs", "2", "--checkpoint_minutes", "1e-5"]
    probability_trainer.main(argv)
    assert sorted(seen) == ["best.ckpt", "last.ckpt"]
    assert [p.name for p in (tmp_path / "probability" / "GRU_1L_1H_hid8").glob("*.ckpt")] == ["best.ckpt"]


def test_fast_dev_run_writes_metrics(data, tmp_path):
    out = tmp_path / "runs"
    probability_trainer.main([*data["args"], "--hidden_size", "8", "--fast_dev_run", "--two_d", "--accelerator", "cpu",
                              "--output_dir", str(out), "--no-progress_bar"])
    metrics = json.loads((out / "probability" / "2D_GRU_1L_1H_hid8" / "metrics.json").read_text())
    assert metrics["best_checkpoint"] is None and np.isfinite(metrics["test_rmse_centred"])


def test_config_names():
    base = dict(cell="gru", num_layers=1, n_heads=1, hidden_size=512)
    assert config_name({**base, "two_d": True, "bidirectional": True}) == "2D_GRU_1L_1H_Bi"
    assert config_name({**base, "attention": True}) == "GRU_1L_1H_Attn"
    assert config_name({**base, "cell": "lstm", "num_layers": 2, "n_heads": 4, "attention": True, "two_d": True,
                        "bidirectional": True, "hidden_size": 64, "energy_head": "site",
                        "loss": "mse"}) == "2D_LSTM_2L_4H_Bi_Attn_hid64_Site_MSE"


# ------------------------------------------------------------------------------ flags and errors
def _error(main, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code != 0
    return capsys.readouterr().err


def test_missing_data_file_fails_at_once_with_the_command(data, tmp_path, capsys):
    args = [*data["args"], "--output_dir", str(tmp_path)]
    missing = str(tmp_path / "nowhere" / "test_data.hdf5")
    err = _error(energy_trainer.main, [*args, "--test_path", missing], capsys)
    assert missing in err and "make data" in err and "generate_ising.py" in err
    err = _error(probability_trainer.main, [*args, "--train_path", str(tmp_path / "mine.hdf5")], capsys)
    assert "mine.hdf5 not found" in err and "python generate_ising.py --filename" in err
    assert not (tmp_path / "energy").exists() and not (tmp_path / "probability").exists()


@pytest.mark.parametrize("argv, message", [
    (["--attention", "--n_heads", "3", "--hidden_size", "8"], "must divide the attention dimension 8"),
    (["--attention", "--bidirectional", "--n_heads", "3", "--hidden_size", "8"], "attention dimension 16"),
    (["--n_heads", "2"], "n_heads=2 has no effect without attention (--attention)"),
    (["--hidden_size", "0"], "must be a positive integer"),
    (["--lr", "-1"], "must be a positive number"),
    (["--cell", "rnn"], "cell must be one of gru, lstm; got 'rnn'"),
    (["--input_size", "2"], "--input_size must be 1"),
    (["--output_size", "3"], "--output_size must be 1"),
    (["--val_paths", "a.hdf5", "--val_2_datapath", "b.hdf5"], "use one or the other"),
    (["--patience", "-1"], "argument --patience: must be an integer >= 0"),
    (["extra_positional"], "unrecognized arguments"),
])
def test_bad_flags(data, argv, message, capsys):
    for main in (energy_trainer.main, probability_trainer.main):
        assert message in _error(main, [*data["args"], *argv], capsys)


def test_energy_only_flags_are_absent_from_the_probability_trainer(data, capsys):
    assert "unrecognized arguments: --energy_head" in _error(probability_trainer.main,
                                                             [*data["args"], "--energy_head", "site"], capsys)
    err = _error(energy_trainer.main, [*data["args"], "--energy_head", "logp"], capsys)
    assert "energy_head must be one of logsigmoid, site; got 'logp'" in err


def test_reference_validation_flags_fill_their_slot_and_default_the_others(data, tmp_path, capsys, monkeypatch):
    """--main_val_datapath / --val_2_datapath / --val_3_datapath set the validation files, main
    first; a slot not given is the standard file, here missing: the make-data message."""
    monkeypatch.chdir(tmp_path)  # no data/ folder here
    argv = ["--train_datapath", str(data["train"]), "--test_datapath", str(data["test"]),
            "--main_val_datapath", str(data["val"][0]), "--val_3_datapath", str(data["val"][2])]
    err = _error(probability_trainer.main, argv, capsys)
    assert "data file data/val_data_beta_dot125.hdf5 not found" in err and "make data" in err


def test_lstm_switch():
    from trainer_common import build_parser

    parser = build_parser("energy", "")
    assert parser.parse_args([]).cell == "gru" and parser.parse_args(["--lstm"]).cell == "lstm"
    assert parser.parse_args(["--cell", "lstm"]).cell == "lstm"


def test_multi_beta_training_file_needs_beta(ising_file, data, tmp_path, capsys):
    multi = ising_file("multi.hdf5", betas=(0.2, 0.4), n_samples=16, n_x=4, n_y=4, burn_in=20)
    argv = ["--train_path", str(multi), "--val_paths", *map(str, data["val"]), "--test_path", str(data["test"]),
            "--output_dir", str(tmp_path)]
    assert "holds several betas" in _error(energy_trainer.main, argv, capsys)


def test_help_shows_defaults_and_booleans():
    out = subprocess.run([sys.executable, str(ROOT / "energy_trainer.py"), "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for piece in ("--bidirectional, --no-bidirectional", "--attention, --no-attention", "--two_d, --no-two_d",
                  "--hidden_size HIDDEN_SIZE RNN hidden size (default: 512;",
                  "--lr LR Adam learning rate (default: 1e-4, the reference's;", "(per process; default: 512,",
                  "--num_layers NUM_LAYERS stacked RNN layers (default: 1;", "attention heads", "--architecture {rnn,ednn}",
                  "(default: data/train_data.hdf5)", "--strategy", "--precision", "--fast_dev_run", "--energy_head",
                  "--train_path TRAIN_PATH, --train_datapath TRAIN_PATH", "--test_path TEST_PATH, --test_datapath "
                  "TEST_PATH", "--lstm the reference's switch: same as --cell lstm", "--input_size INPUT_SIZE",
                  "--output_size OUTPUT_SIZE", "(default: data/val_data_beta_dot125.hdf5)"):
        assert piece in text, piece
    # one entry per option, aliases on the same line
    entries = [line.split()[0].rstrip(",") for line in out.stdout.splitlines() if line.startswith("  -")]
    assert len(entries) == len(set(entries)) and "--train_datapath" not in entries
    for flag in ("--main_val_datapath", "--val_2_datapath", "--val_3_datapath", "--val_paths", "--lstm", "--cell"):
        assert entries.count(flag) == 1, flag


def test_cli_error_exit_code(data, tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "probability_trainer.py"), "--train_path",
                          str(tmp_path / "absent.hdf5")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2 and "absent.hdf5 not found" in out.stderr


# ------------------------------------------------------------------------------ distributed
@pytest.mark.slow
def test_ddp_two_cpu_processes(data, tmp_path):
    """`--strategy ddp --devices 2 --accelerator cpu` runs; the test metrics cover every
    test sample exactly once (37 samples over 2 ranks) and match a single-process recomputation."""
    out = tmp_path / "runs"
    argv = [*data["args"], *FAST, "--output_dir", str(out), "--strategy", "ddp", "--attention"]
    argv[argv.index("--devices") + 1] = "2"
    proc = subprocess.run([sys.executable, str(ROOT / "energy_trainer.py"), *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_metrics(out / "energy" / "GRU_1L_1H_Attn_hid8", "energy", EnergyModel, data["test"], world_size=2)


def test_precision_auto_follows_the_hardware(monkeypatch, tmp_path):
    from trainer_common import resolve_precision

    assert resolve_precision("32-true", "cpu") == "32-true" and resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    native = bool({"avx512_bf16", "amx_bf16"} & set(Path("/proc/cpuinfo").read_text().split()))
    assert resolve_precision("auto", "cpu") == ("bf16-mixed" if native else "32-true")


def test_resume_flag_without_a_checkpoint_is_an_error(data, tmp_path, capsys):
    message = _error(probability_trainer.main, [*data["args"], *FAST, "--output_dir", str(tmp_path), "--resume"],
                     capsys)
    assert "--resume" in message and "last.ckpt" in message


@pytest.mark.slow
def test_a_killed_run_resumes_and_finishes(ising_file, data, tmp_path):
    """A real run is sent SIGTERM mid-epoch; the same command continues from last.ckpt and ends
    with as many epochs and optimiser steps as an uninterrupted run."""
    import signal
    import time

    train = ising_file("train_long.hdf5", betas=(0.25,), n_samples=3000, seed=7, n_x=4, n_y=4, burn_in=20)
    argv = [sys.executable, str(ROOT / "probability_trainer.py"), "--train_path", str(train), "--val_paths",
            str(data["val"][0]), "--test_path", str(data["test"]), "--hidden_size", "8", "--batch_size", "8",
            "--max_epochs", "2", "--accelerator", "cpu", "--devices", "1", "--no-progress_bar", "--threads", "1",
            "--checkpoint_minutes", "0.01", "--output_dir", str(tmp_path)]
    run_dir = tmp_path / "probability" / "GRU_1L_1H_hid8"
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "last.ckpt").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0 and "run the same command again to resume" in out, out[-2000:]
    assert not (run_dir / "metrics.json").exists()
    step = torch.load(run_dir / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < step < 2 * 375                                   # stopped part-way: 3000 / 8 = 375 batches an epoch
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from"] == str(run_dir / "last.ckpt")
    assert metrics["epochs"] == 2 and metrics["global_steps"] == 2 * 375
    assert not (run_dir / "last.ckpt").exists()                 # finished: nothing left to resume


def _without_true_energies(path, tmp_path):
    """A copy of a data file with no true_energies dataset: any read of it would fail."""
    import shutil

    copy = tmp_path / f"nolabels_{Path(path).name}"
    shutil.copy(path, copy)
    with h5py.File(copy, "a") as f:
        del f["true_energies"]
    return copy


def test_ednn_supervised_and_label_free_runs(data, tmp_path):
    """--architecture ednn trains the extensive model on the files' energies; with --teacher it
    trains on a probability run's energies and never reads true_energies (they are deleted
    from the training and validation files); the test metrics compare with exact energies."""
    out = str(tmp_path / "runs")
    common = ["--max_epochs", "1", "--batch_size", "16", "--accelerator", "cpu", "--devices", "1",
              "--no-progress_bar", "--output_dir", out]
    ednn = energy_trainer.main([*data["args"], *common, "--architecture", "ednn", "--hidden_size", "8"])
    assert ednn["config_name"] == "EDNN_F1_C1_hid8x2" and ednn["config"]["architecture"] == "ednn"
    probability_trainer.main([*data["args"], *common, "--hidden_size", "8"])
    teacher = tmp_path / "runs" / "probability" / "GRU_1L_1H_hid8"
    train, val = (_without_true_energies(p, tmp_path) for p in (data["train"], data["val"][0]))
    taught = energy_trainer.main(["--train_path", str(train), "--val_paths", str(val), "--test_path",
                                  str(data["test"]), *common, "--architecture", "ednn", "--hidden_size", "8",
                                  "--teacher", str(teacher)])
    assert taught["config"]["target"] == "centred" and taught["config"]["teacher"] == str(teacher)
    assert taught["config_name"] == "EDNN_F1_C1_hid8x2_Centred_from_GRU_1L_1H_hid8"
    run_dir = tmp_path / "runs" / "energy" / taught["config_name"]
    from ednn import EDNNEnergyModel

    model = EDNNEnergyModel.load_from_checkpoint(run_dir / "best.ckpt", map_location="cpu")
    with h5py.File(data["test"], "r") as f:
        grids = f["ising_grids"][:]
    with torch.no_grad():
        pred = model.predict_energy(torch.as_tensor(grids)).double().numpy()
    err = pred - ising_energy(grids)
    assert taught["test_rmse_centred"] == pytest.approx(float(np.std(err)), rel=1e-4)


@pytest.mark.parametrize("argv, message", [
    (["--architecture", "ednn", "--attention"], "--attention apply to the sequence models"),
    (["--teacher", "somewhere"], "add --architecture ednn"),
    (["--architecture", "ednn", "--teacher", "nowhere"], "nowhere is not a finished run"),
])
def test_ednn_flag_errors(data, argv, message, capsys):
    assert message in _error(energy_trainer.main, [*data["args"], *FAST, *argv], capsys)


# ------------------------------------------------------------------------------ Potts data
@pytest.fixture(scope="module")
def potts_data(potts_file):
    """Tiny q = 3 Potts files (conftest `potts_file`, random states) in the layout of `data`."""
    files = {"train": potts_file("train.hdf5", n_samples=64, seed=1),
             "val": [potts_file("val.hdf5", n_samples=32, seed=2)],
             "test": potts_file("test.hdf5", n_samples=N_TEST, seed=5)}
    files["args"] = ["--train_path", str(files["train"]), "--val_paths", *map(str, files["val"]),
                     "--test_path", str(files["test"])]
    return files


def test_potts_runs_end_to_end(potts_data, tmp_path):
    """A Potts file makes a Potts run: q in the hyper-parameters and the run's name, the test metrics
    against potts.energy, and load_from_checkpoint gives the model back; a causal Potts teacher
    labels an EDNN student (state-permutation symmetric: --spin_flip)."""
    import potts
    from ednn import EDNNEnergyModel

    out = tmp_path / "runs"
    common = [*potts_data["args"], "--max_epochs", "1", "--batch_size", "16", "--hidden_size", "8", "--accelerator",
              "cpu", "--devices", "1", "--no-progress_bar", "--output_dir", str(out)]
    with h5py.File(potts_data["test"], "r") as f:
        grids = f["ising_grids"][:]
    runs = {
        "causal": (probability_trainer.main(common), ProbabilityModel),
        "ednn": (energy_trainer.main([*common, "--architecture", "ednn"]), EDNNEnergyModel),
    }
    teacher = out / "probability" / "GRU_1L_1H_hid8_Q3"
    runs["taught"] = (energy_trainer.main([*common, "--architecture", "ednn", "--spin_flip", "--teacher", str(teacher)]),
                      EDNNEnergyModel)
    names = {"causal": "GRU_1L_1H_hid8_Q3", "ednn": "EDNN_F1_C1_hid8x2_Q3",
             "taught": "EDNN_F1_C1_hid8x2_Centred_Flip_Q3_from_GRU_1L_1H_hid8_Q3"}
    for key, (metrics, cls) in runs.items():
        assert metrics["config_name"] == names[key]
        assert metrics["config"]["q"] == 3 and metrics["config"]["hamiltonian"] == "POTTS3"
        assert metrics["test_n_samples"] == N_TEST
        model = cls.load_from_checkpoint(metrics["best_checkpoint"], map_location="cpu").eval()
        assert model.hparams.q == 3
        with torch.no_grad():
            err = model.predict_energy(torch.as_tensor(grids)).double().numpy() - potts.energy(grids)
        assert metrics["test_rmse_centred"] == pytest.approx(float(np.std(err)), rel=1e-4)


def _potts_error(main, argv, capsys):
    """The error of a run that must stop: one `<prog>: error: ...` line, no usage text."""
    capsys.readouterr()  # what earlier runs wrote (warnings)
    err = _error(main, argv, capsys)
    assert "usage:" not in err and len([line for line in err.splitlines() if ": error: " in line]) == 1, err
    return err


def test_potts_files_that_do_not_fit_are_one_line(potts_data, potts_file, data, tmp_path, capsys):
    args, out = potts_data["args"], ["--output_dir", str(tmp_path)]
    q4 = potts_file("val_q4.hdf5", q=4, n_samples=16)
    err = _potts_error(energy_trainer.main, [*args, "--val_paths", str(q4), *out], capsys)
    assert "val_q4.hdf5 holds q = 4 Potts lattices but the training file" in err and "q = 3 Potts" in err
    err = _potts_error(probability_trainer.main, [*args, "--test_path", str(data["test"]), *out], capsys)
    assert "holds Ising lattices but the training file" in err
    bad = potts_file("bad_state.hdf5", states=np.full((8, 4, 4), 3))
    err = _potts_error(probability_trainer.main, [*args, "--train_path", str(bad), *out], capsys)
    assert "bad_state.hdf5:ising_grids lattice 0 holds 3 at site (0, 0); states must be 0 ... 2" in err
    q2 = [potts_file(f"q2_{k}.hdf5", q=2, n_samples=16, seed=k) for k in range(2)]
    err = _potts_error(energy_trainer.main, ["--train_path", str(q2[0]), "--val_paths", str(q2[1]),
                                             "--test_path", str(q2[1]), *out], capsys)
    assert "spins must be ±1" in err  # q = 2 is the Ising model: spins ±1, not the states 0/1
    assert not (tmp_path / "energy").exists() and not (tmp_path / "probability").exists()


def test_an_ising_teacher_refuses_potts_data(potts_data, data, tmp_path, capsys):
    common = ["--max_epochs", "1", "--batch_size", "16", "--hidden_size", "8", "--accelerator", "cpu", "--devices", "1",
              "--no-progress_bar", "--output_dir", str(tmp_path)]
    probability_trainer.main([*data["args"], *common, "--limit_train_batches", "1", "--limit_val_batches", "1"])
    teacher = tmp_path / "probability" / "GRU_1L_1H_hid8"
    err = _potts_error(energy_trainer.main, [*potts_data["args"], *common, "--architecture", "ednn",
                                             "--teacher", str(teacher)], capsys)
    assert "the teacher was trained on Ising lattices but" in err and "holds q = 3 Potts lattices" in err
