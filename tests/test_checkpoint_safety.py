"""A checkpoint is tensors and plain values: one holding any other Python object is refused unread.

Unpickling such an object can run code (its `__reduce__`), so every command that reads a run
loads checkpoints with `weights_only=True`. Here each run's best.ckpt (or last.ckpt, for a
resumed training) holds an object whose unpickling would write a marker file: every command
must leave no marker and stop with exit status 2 and one line naming the checkpoint.
"""
import importlib
import json
from pathlib import Path

import pytest
import torch

import runs
from checks import UserError, main_guard

CLASSES = {"energy": "energy_models.EnergyModel", "probability": "probability_models.ProbabilityModel",
           "ednn": "ednn.EDNNEnergyModel"}


class Payload:
    """Unpickled, it opens (creates) `marker` for writing: the stand-in for any code a file can run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def planted_run(root: Path, kind: str, marker: Path) -> Path:
    """<root>/<family>/<name>/ with a metrics.json of a 4 x 4 ISING1 run of `kind` and a best.ckpt
    holding a Payload besides its (empty) weights."""
    family = "probability" if kind == "probability" else "energy"
    run = root / family / ("EDNN_F1_C1_hid8x2" if kind == "ednn" else "GRU_1L_1H_hid8")
    run.mkdir(parents=True)
    config = {"hamiltonian": "ISING1", "n_x": 4, "n_y": 4, "beta": 0.25, **({"focus": 1, "context": 1} if kind == "ednn" else {})}
    (run / "metrics.json").write_text(json.dumps({"family": family, "class": CLASSES[kind], "config": config}))
    torch.save({"state_dict": {}, "hyper_parameters": {**config, "note": Payload(marker)}}, run / "best.ckpt")
    return run


def refused(main, argv, capsys, checkpoint: Path, marker: Path) -> None:
    """main(argv) stops with exit status 2, one error line naming `checkpoint` (argparse's usage
    text aside), and has not written `marker`."""
    capsys.readouterr()
    try:
        code = main_guard(main, [str(a) for a in argv])
    except SystemExit as exc:  # argparse and the trainers' one-line errors
        code = exc.code
    err = capsys.readouterr().err
    assert not marker.exists(), "the checkpoint's payload ran"
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("usage:", " "))]
    assert len(lines) == 1, err
    assert str(checkpoint) in lines[0] and "not a plain checkpoint" in lines[0], lines[0]


def test_load_model_refuses_a_checkpoint_with_objects(tmp_path):
    marker = tmp_path / "marker"
    run = planted_run(tmp_path / "runs", "energy", marker)
    with pytest.raises(UserError, match="not a plain checkpoint"):
        runs.load_model(run)
    with pytest.raises(UserError, match="not a plain checkpoint"):
        runs.load_checkpoint(run / "best.ckpt")
    assert not marker.exists()


COMMANDS = {  # name -> (kind of run, the script's module, its argv given the run, a scratch folder and a data file)
    "evaluate export": ("energy", "evaluate", lambda run, x, f: ["export", run, "--to", x / "weights"]),
    "evaluate leaderboard": ("energy", "evaluate", lambda run, x, f: [
        "--runs", run.parent.parent, "--eval_path", f, "--out", x / "res", "--images", x / "res", "--n", "10"]),
    "transfer": ("energy", "transfer", lambda run, x, f: [
        "--runs", run.parent.parent, "--sizes", "4", "--n", "8", "--out", x / "t", "--data_dir", x / "t",
        "--no-progress_bar"]),
    "thermodynamics": ("probability", "thermodynamics", lambda run, x, f: [
        "--run", run, "--n_samples", "100", "--out", x / "th", "--no-progress_bar"]),
    "hamiltonian": ("ednn", "hamiltonian", lambda run, x, f: [run]),
    "generate_ising": ("ednn", "generate_ising", lambda run, x, f: [
        "--hamiltonian", run, "--n_x", "4", "--n_y", "4", "--n_samples", "8", "--filename", x / "g.hdf5",
        "--no_progress"]),
    "phase_diagram": ("ednn", "phase_diagram", lambda run, x, f: [
        "--hamiltonian", run, "--sizes", "4", "--out", x / "p", "--images", x / "p", "--no-progress_bar"]),
    "energy_trainer --teacher": ("probability", "energy_trainer", lambda run, x, f: [
        "--architecture", "ednn", "--teacher", run, "--train_path", f, "--val_paths", f, "--test_path", f,
        "--output_dir", x / "out", "--accelerator", "cpu", "--no-progress_bar"]),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_commands_refuse_a_checkpoint_with_objects(command, ising_file, tmp_path, capsys):
    kind, module, argv = COMMANDS[command]
    main = importlib.import_module(module).main
    marker = tmp_path / "marker"
    run = planted_run(tmp_path / "runs", kind, marker)
    refused(main, argv(run, tmp_path / "x", ising_file()), capsys, run / "best.ckpt", marker)


def test_resuming_refuses_a_last_checkpoint_with_objects(ising_file, tmp_path, capsys):
    """The trainer resumes from last.ckpt (weights, optimiser, loops): the same rule holds there."""
    marker, data = tmp_path / "marker", ising_file()
    last = tmp_path / "out" / "energy" / "planted" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "epoch": 0, "global_step": 0, "loops": Payload(marker)}, last)
    argv = ["--train_path", data, "--val_paths", data, "--test_path", data, "--output_dir", tmp_path / "out",
            "--run_name", "planted", "--hidden_size", "8", "--accelerator", "cpu", "--devices", "1",
            "--no-progress_bar", "--resume"]
    refused(importlib.import_module("energy_trainer").main, argv, capsys, last, marker)
