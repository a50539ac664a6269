"""Every command line's answer to a user's mistake: exit status 2, one line on stderr that names
the flag, file or folder at fault (argparse's usage text is allowed for flag errors), no
traceback, and nothing written where nothing was. The wording of the line is not tested
(conftest `user_error`), so a message can be reworded without failing a test.

The mistakes: missing, truncated, non-HDF5 and incomplete data files; run folders of the wrong
kind, or no run at all, or a broken one; lattices a model cannot read (another size, another
Hamiltonian, tiles that do not cover them); bad numbers in flags; a file where a folder goes.
Tiny files from the real generator (conftest `ising_file`), four tiny runs trained once for the
module; the commands are called in-process through `checks.main_guard` (what `sys.exit(main_guard(main))`
runs), and a few through the real scripts. Also: transfer.py's progress bar."""
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import lightning.pytorch  # noqa: F401  imported here, not in a test: its log handler must not keep a capsys stream
import pytest

import data_files
import energy_trainer
import evaluate as ev
import generate_ising
import probability_trainer
import thermodynamics as th
import train_all as ta
import transfer
from checks import main_guard
from conftest import user_error

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--hidden_size", "8", "--batch_size", "16", "--max_epochs", "1", "--limit_train_batches", "2",
        "--limit_val_batches", "2", "--accelerator", "cpu", "--devices", "1", "--no-progress_bar", "--lr", "3e-3",
        "--log_every_n_steps", "1"]  # a log line per step: the 2 batches are fewer than the default interval
N = 32  # lattices per file of the transfer tests (the name of a transfer file records it)


# ------------------------------------------------------------------------------ helpers
def cli(main, argv, capsys):
    """(exit status, stderr) of `sys.exit(main_guard(main))` with these arguments."""
    capsys.readouterr()
    try:
        code = main_guard(main, [str(a) for a in argv])
    except SystemExit as exc:  # argparse and the trainers' one-line errors
        code = exc.code
    return code, capsys.readouterr().err


def trainer_argv(files, out, **paths):
    paths = {"train_path": files["train"], "val_paths": files["val"], "test_path": files["test"], **paths}
    return [str(a) for k, v in paths.items() for a in (f"--{k}", v)] + FAST + ["--output_dir", str(out)]


def copy_run(run_dir, root):
    """A copy of a run at <root>/<family>/<name> (to break it without touching the original)."""
    dest = Path(root) / run_dir.parent.name / run_dir.name
    shutil.copytree(run_dir, dest)
    return dest


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def files(ising_file, tmp_path_factory):
    kw = dict(n_x=4, n_y=4, burn_in=20)
    f = {"train": ising_file("train_data.hdf5", betas=(0.25,), n_samples=96, seed=1, **kw),      # as test_trainers
         "val": ising_file("val_data_beta_dot25.hdf5", betas=(0.25,), n_samples=N, seed=2, **kw),
         "test": ising_file("test_data.hdf5", betas=(0.25,), n_samples=37, seed=5, **kw),
         "eval": ising_file("eval_data.hdf5", betas=(0.2, 0.3), n_samples=32, seed=6, **kw),
         "6x6": ising_file("six.hdf5", betas=(0.25,), n_samples=16, seed=7, n_x=6, n_y=6, burn_in=20),
         "5x5": ising_file("five.hdf5", betas=(0.25,), n_samples=N, seed=8, n_x=5, n_y=5, burn_in=20),
         "ising2": ising_file("ising2.hdf5", betas=(0.25,), n_samples=N, seed=9, hamiltonian="ISING2", **kw)}
    bad = tmp_path_factory.mktemp("bad_files")
    f["missing"] = bad / "missing.hdf5"
    f["truncated"] = bad / "truncated.hdf5"  # `head -c 1000 data/train_data.hdf5 > bad.hdf5`
    f["truncated"].write_bytes(Path(f["train"]).read_bytes()[:1000])
    f["text"] = bad / "notes.hdf5"
    f["text"].write_text("these are not lattices\n")
    for key in ("ising_grids", "true_energies", "beta"):
        f[f"no_{key}"] = bad / f"no_{key}.hdf5"
        shutil.copy(f["train"], f[f"no_{key}"])
        with h5py.File(f[f"no_{key}"], "a") as h5:
            del h5[key]
    return f


@pytest.fixture(scope="module")
def runs(files, tmp_path_factory):
    """Three ISING1 runs (energy, causal and conditional probability) under one root, and an
    ISING2 extensive model of focus 2 under another."""
    root = tmp_path_factory.mktemp("runs")
    argv = trainer_argv(files, root / "ising1")
    energy_trainer.main(argv)
    probability_trainer.main(argv)
    probability_trainer.main([*argv, "--bidirectional"])
    i2 = files["ising2"]
    energy_trainer.main([*trainer_argv(files, root / "ising2", train_path=i2, val_paths=i2, test_path=i2),
                         "--architecture", "ednn", "--focus", "2"])
    one = root / "ising1"
    return {"ising1": one, "ising2": root / "ising2", "energy": one / "energy" / "GRU_1L_1H_hid8",
            "causal": one / "probability" / "GRU_1L_1H_hid8", "conditional": one / "probability" / "GRU_1L_1H_Bi_hid8",
            "ednn": root / "ising2" / "energy" / "EDNN_F2_C1_hid8x2"}


BAD_FILES = ["missing", "truncated", "text", "no_ising_grids", "no_true_energies"]  # each named by its error


# ------------------------------------------------------------------------------ the trainers
@pytest.mark.parametrize("slot", ["train_path", "val_paths", "test_path"])
@pytest.mark.parametrize("kind", BAD_FILES)
def test_trainer_bad_data_file(files, tmp_path, capsys, slot, kind):
    """Before: a traceback for every broken validation or test file, and for a training file
    without a dataset; the run folder was left behind, for a broken test file after training."""
    argv = trainer_argv(files, tmp_path / "out", **{slot: files[kind]})
    user_error(*cli(energy_trainer.main, argv, capsys), files[kind].name)
    assert not (tmp_path / "out").exists()


def test_probability_trainer_test_file_without_lattices(files, tmp_path, capsys):
    argv = trainer_argv(files, tmp_path / "out", test_path=files["no_ising_grids"])
    user_error(*cli(probability_trainer.main, argv, capsys), files["no_ising_grids"].name)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("main", [energy_trainer.main, probability_trainer.main])
@pytest.mark.parametrize("slot", ["val_paths", "test_path"])
def test_trainer_file_of_another_lattice_size(files, tmp_path, capsys, main, slot):
    """Before: trained on (only the probability trainer refused a test file of another size)."""
    argv = trainer_argv(files, tmp_path / "out", **{slot: files["6x6"]})
    user_error(*cli(main, argv, capsys), files["6x6"].name)
    assert not (tmp_path / "out").exists()


def test_trainer_file_of_another_hamiltonian(files, tmp_path, capsys):
    argv = trainer_argv(files, tmp_path / "out", val_paths=files["ising2"])
    user_error(*cli(energy_trainer.main, argv, capsys), files["ising2"].name)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("teacher", ["energy", None, "root"])  # an energy run, an empty folder, a folder of runs
def test_ednn_teacher_of_the_wrong_kind(files, runs, tmp_path, capsys, teacher):
    folder = tmp_path if teacher is None else runs["ising1"] if teacher == "root" else runs[teacher]
    argv = [*trainer_argv(files, tmp_path / "out"), "--architecture", "ednn", "--teacher", folder]
    user_error(*cli(energy_trainer.main, argv, capsys), folder)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("data", ["5x5", "ising2"])  # a 4 x 4 ISING1 teacher
def test_ednn_teacher_of_another_lattice(files, runs, tmp_path, capsys, data):
    """Before: the student trained on what a 4 x 4 ISING1 teacher said about other lattices."""
    f = files[data]
    argv = [*trainer_argv(files, tmp_path / "out", train_path=f, val_paths=f, test_path=f), "--architecture", "ednn",
            "--teacher", str(runs["causal"])]
    user_error(*cli(energy_trainer.main, argv, capsys), "--teacher", f.name)
    assert not (tmp_path / "out").exists()


def test_ednn_teacher_training_file_without_lattices(files, runs, tmp_path, capsys):
    """Before: KeyError traceback once training started, run folder left behind."""
    argv = [*trainer_argv(files, tmp_path / "out", train_path=files["no_ising_grids"]), "--architecture", "ednn",
            "--teacher", runs["causal"]]
    user_error(*cli(energy_trainer.main, argv, capsys), files["no_ising_grids"].name)
    assert not (tmp_path / "out").exists()


def test_ednn_focus_that_does_not_tile_the_lattice(files, tmp_path, capsys):
    f = files["5x5"]
    argv = [*trainer_argv(files, tmp_path / "out", train_path=f, val_paths=f, test_path=f), "--architecture", "ednn",
            "--focus", "2"]
    user_error(*cli(energy_trainer.main, argv, capsys), "focus", usage=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, flag", [  # flag: what the line names (the model's checks name the hyper-parameter)
    (["--limit_train_batches", "-1"], "--limit_train_batches"),
    (["--limit_val_batches", "0"], "--limit_val_batches"),
    (["--limit_test_batches", "1.5"], "--limit_test_batches"),
    (["--fast_dev_run", "-1"], "--fast_dev_run"),
    (["--devices", "0"], "--devices"),
    (["--seed", "-1"], "--seed"),
    (["--max_epochs", "0"], "--max_epochs"),
    (["--batch_size", "0"], "--batch_size"),
    (["--num_layers", "0"], "num_layers"),
    (["--beta", "-0.5"], "--beta"),
    (["--architecture", "ednn", "--focus", "0"], "focus"),
    (["--architecture", "ednn", "--context", "-1"], "context"),
    (["--architecture", "ednn", "--lr_decay", "0"], "lr_decay"),
    (["--spin_flip"], "--spin_flip"),
])
def test_trainer_bad_numbers(files, tmp_path, capsys, flags, flag):
    """Before: --limit_*_batches, --fast_dev_run, --devices and --seed were Lightning's tracebacks."""
    user_error(*cli(energy_trainer.main, [*trainer_argv(files, tmp_path / "out"), *flags], capsys), flag, usage=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags", [["--accelerator", "foo"], ["--precision", "foo"], ["--strategy", "foo"]])
def test_trainer_flags_lightning_refuses(files, tmp_path, capsys, flags):
    """Before: a traceback, and an empty run folder left behind. The line names the setting and
    the value (Lightning words it, without the dashes)."""
    user_error(*cli(energy_trainer.main, [*trainer_argv(files, tmp_path / "out"), *flags], capsys), flags[0][2:], "foo",
               usage=True)
    assert not (tmp_path / "out").exists()


def test_trainer_output_dir_is_a_file(files, tmp_path, capsys):
    """Before: NotADirectoryError traceback."""
    afile = tmp_path / "afile"
    afile.write_text("")
    user_error(*cli(energy_trainer.main, trainer_argv(files, afile), capsys), "--output_dir", afile)
    assert afile.read_text() == "" and sorted(tmp_path.iterdir()) == [afile]


def test_resume_without_a_checkpoint_leaves_no_folder(files, tmp_path, capsys):
    """Before: the error came after the run folder was made."""
    argv = [*trainer_argv(files, tmp_path / "out"), "--resume"]
    user_error(*cli(probability_trainer.main, argv, capsys), "--resume", usage=True)
    assert not (tmp_path / "out").exists()


def test_trainer_script_with_a_truncated_file(files, tmp_path):
    """The real command line: exit status 2 and the one line, nothing else on stderr."""
    argv = trainer_argv(files, tmp_path / "out", val_paths=files["truncated"])
    proc = subprocess.run([sys.executable, "energy_trainer.py", *map(str, argv)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    user_error(proc.returncode, proc.stderr, files["truncated"])
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ runs: wrong kind, broken
def test_corrupt_checkpoint(runs, files, tmp_path, capsys):
    """Before: torch's RuntimeError traceback (evaluate and export)."""
    run = copy_run(runs["energy"], tmp_path / "broken")
    run.joinpath("best.ckpt").write_bytes(runs["energy"].joinpath("best.ckpt").read_bytes()[:3000])
    argv = ["--runs", tmp_path / "broken", "--eval_path", files["eval"], "--out", tmp_path / "res", "--images",
            tmp_path / "res", "--n", "10"]
    user_error(*cli(ev.main, argv, capsys), run / "best.ckpt")
    user_error(*cli(ev.main, ["export", run, "--to", tmp_path / "weights"], capsys), run / "best.ckpt")
    assert not (tmp_path / "res").exists() and not (tmp_path / "weights").exists()


def test_corrupt_metrics_json(runs, files, tmp_path, capsys):
    """Before: json.JSONDecodeError traceback."""
    run = copy_run(runs["causal"], tmp_path / "broken")
    run.joinpath("metrics.json").write_text('{"family": "probab')
    user_error(*cli(th.main, ["--run", run, "--n_samples", "100", "--out", tmp_path / "x"], capsys),
               run / "metrics.json")
    argv = ["--runs", tmp_path / "broken", "--sizes", "4", "--out", tmp_path / "x", "--data_dir", tmp_path / "x"]
    user_error(*cli(transfer.main, argv, capsys), run / "metrics.json")
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------ thermodynamics.py
@pytest.mark.parametrize("run", ["energy", "conditional", "ising1", None])  # ising1: the folder holding the runs
def test_thermodynamics_run_of_the_wrong_kind(runs, tmp_path, capsys, run):
    folder = tmp_path / "empty" if run is None else runs[run]
    argv = ["--run", folder, "--n_samples", "100", "--out", tmp_path / "x", "--no-progress_bar"]
    user_error(*cli(th.main, argv, capsys), folder)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("kind", [k for k in BAD_FILES if k != "no_true_energies"])
def test_thermodynamics_bad_mc_path(runs, files, tmp_path, capsys, kind):
    """Before: a missing --mc_path was ignored, one without lattices a KeyError traceback after
    the sampling; now all are refused before sampling."""
    argv = ["--run", runs["causal"], "--n_samples", "100", "--out", tmp_path / "x", "--mc_path", files[kind]]
    user_error(*cli(th.main, argv, capsys), files[kind].name)
    assert not (tmp_path / "x").exists()


def test_thermodynamics_out_is_a_file(runs, tmp_path, capsys):
    """Before: FileExistsError traceback after the sampling."""
    afile = tmp_path / "afile"
    afile.write_text("")
    argv = ["--run", runs["causal"], "--n_samples", "100", "--out", afile]
    user_error(*cli(th.main, argv, capsys), "--out", afile)
    assert sorted(tmp_path.iterdir()) == [afile]


@pytest.mark.parametrize("flags, usage", [
    (["--n_samples", "0"], True),
    (["--n_samples", "1"], True),
    (["--seed", "-1"], True),
    (["--betas", "0.2", "0"], True),
    (["--batch_size", "0"], True),
    (["--order", "cols"], False),  # the causal model reads only the rows snake
])
def test_thermodynamics_bad_flags(runs, tmp_path, capsys, flags, usage):
    argv = ["--run", runs["causal"], "--n_samples", "100", "--out", tmp_path / "x", *flags]
    user_error(*cli(th.main, argv, capsys), flags[0], usage=usage)
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------ evaluate.py
@pytest.mark.parametrize("kind", [*BAD_FILES, "no_beta"])
def test_evaluate_bad_eval_file(runs, files, tmp_path, capsys, kind):
    """Before: KeyError tracebacks for a file without one of the three datasets."""
    argv = ["--runs", runs["ising1"], "--eval_path", files[kind], "--out", tmp_path / "res", "--images",
            tmp_path / "res"]
    user_error(*cli(ev.main, argv, capsys), files[kind].name)
    assert not (tmp_path / "res").exists()


def test_evaluate_eval_file_of_another_size(runs, files, tmp_path, capsys):
    """Before: every 4 x 4 run was scored on 6 x 6 lattices, a leaderboard of meaningless rows."""
    argv = ["--runs", runs["ising1"], "--eval_path", files["6x6"], "--out", tmp_path / "res", "--images",
            tmp_path / "res"]
    user_error(*cli(ev.main, argv, capsys), files["6x6"].name)
    assert not (tmp_path / "res").exists()


def test_evaluate_runs_of_another_hamiltonian(runs, files, tmp_path, capsys):
    argv = ["--runs", runs["ising1"], "--eval_path", files["ising2"], "--out", tmp_path / "res", "--images",
            tmp_path / "res"]
    user_error(*cli(ev.main, argv, capsys), files["ising2"].name)
    assert not (tmp_path / "res").exists()


def test_evaluate_folder_without_runs(files, tmp_path, capsys):
    argv = ["--runs", tmp_path / "nothing", "--eval_path", files["eval"], "--out", tmp_path / "res", "--images",
            tmp_path / "res"]
    user_error(*cli(ev.main, argv, capsys), tmp_path / "nothing")
    assert not (tmp_path / "res").exists()


def test_evaluate_a_single_run_folder(runs, files, tmp_path, capsys):
    """--runs naming one run (not a folder of runs) scores it; before: a ValueError traceback."""
    argv = ["--runs", runs["energy"], "--eval_path", files["eval"], "--out", tmp_path / "res", "--images",
            tmp_path / "res", "--n", "50"]
    code, err = cli(ev.main, argv, capsys)
    assert code == 0 and err == ""  # no progress bar off a terminal
    board = json.loads((tmp_path / "res" / "leaderboard.json").read_text())
    assert [r["run"] for r in board] == ["energy/GRU_1L_1H_hid8"]


@pytest.mark.parametrize("flags, usage", [
    (["--out", "AFILE"], False),
    (["--images", "AFILE"], False),
    (["--n", "0"], True),
    (["--seed", "-1"], True),
])
def test_evaluate_bad_flags(runs, files, tmp_path, capsys, flags, usage):
    """Before: FileExistsError once everything was scored; numpy's ValueError for a negative seed."""
    afile = tmp_path / "AFILE"
    afile.write_text("")
    flags = [afile if f == "AFILE" else f for f in flags]
    argv = ["--runs", runs["ising1"], "--eval_path", files["eval"], "--out", tmp_path / "res", "--images",
            tmp_path / "res", *flags]
    user_error(*cli(ev.main, argv, capsys), flags[0], usage=usage)
    assert sorted(tmp_path.iterdir()) == [afile]


@pytest.mark.parametrize("what", ["nothing", "ising1", "to_file"])  # ising1: a folder of runs, not a run
def test_evaluate_export_errors(runs, tmp_path, capsys, what):
    """Before: `--to` a file was a NotADirectoryError traceback."""
    afile = tmp_path / "afile"
    afile.write_text("")
    run = {"nothing": tmp_path / "nothing", "ising1": runs["ising1"], "to_file": runs["energy"]}[what]
    to = afile if what == "to_file" else tmp_path / "weights"
    user_error(*cli(ev.main, ["export", run, "--to", to], capsys), *(["--to"] if what == "to_file" else [run]))
    assert sorted(tmp_path.iterdir()) == [afile]


def test_evaluate_export_script_not_a_run(tmp_path):
    proc = subprocess.run([sys.executable, "evaluate.py", "export", str(tmp_path), "--to", str(tmp_path / "w")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    user_error(proc.returncode, proc.stderr, tmp_path)
    assert not (tmp_path / "w").exists()


# ------------------------------------------------------------------------------ transfer.py
@pytest.fixture()
def lattices(files, tmp_path):
    """A transfer data folder holding the files the tests below need (none is sampled)."""
    d = tmp_path / "lattices"
    d.mkdir()
    for hamiltonian, size, key in (("ISING1", 4, "val"), ("ISING1", 5, "5x5"), ("ISING2", 4, "ising2")):
        shutil.copy(files[key], transfer.transfer_path(hamiltonian, size, [0.25], N, d))
    return d


def transfer_argv(root, lattices, out, *sizes, extra=()):
    return ["--runs", root, "--sizes", *(sizes or (4,)), "--betas", "0.25", "--n", N, "--data_dir", lattices,
            "--out", out, *extra]


def test_transfer_scores_each_run_on_its_own_hamiltonian(runs, lattices, tmp_path, capsys):
    """An ISING2 run and ISING1 runs together: each scored on lattices of its Hamiltonian; the
    extensive model of focus 2 skips 5 x 5 with a note (before: a ValueError traceback)."""
    both = tmp_path / "both"
    for run in ("energy", "causal", "ednn"):
        copy_run(runs[run], both)
    before = sorted(lattices.iterdir())
    code, err = cli(transfer.main, transfer_argv(both, lattices, tmp_path / "out", 4, 5), capsys)
    assert code == 0
    assert err.strip() == ("skipping energy/EDNN_F2_C1_hid8x2 at 5x5: its tiles of focus 2 do not cover a 5 x 5 "
                           "lattice")
    rows = json.loads((tmp_path / "out" / "transfer.json").read_text())
    assert {(r["run"], r["hamiltonian"], r["size"]) for r in rows} == {
        ("energy/EDNN_F2_C1_hid8x2", "ISING2", 4), ("energy/GRU_1L_1H_hid8", "ISING1", 4),
        ("energy/GRU_1L_1H_hid8", "ISING1", 5), ("probability/GRU_1L_1H_hid8", "ISING1", 4),
        ("probability/GRU_1L_1H_hid8", "ISING1", 5)}
    assert sorted(lattices.iterdir()) == before  # nothing was sampled


def test_transfer_no_run_reads_the_sizes(runs, lattices, tmp_path, capsys):
    user_error(*cli(transfer.main, transfer_argv(runs["ising2"], lattices, tmp_path / "out", 5), capsys), runs["ising2"])
    assert not (tmp_path / "out").exists()


def test_transfer_folder_without_runs(lattices, tmp_path, capsys):
    user_error(*cli(transfer.main, transfer_argv(tmp_path / "nothing", lattices, tmp_path / "out"), capsys),
               tmp_path / "nothing")
    assert not (tmp_path / "out").exists()


def test_transfer_broken_lattices_file(runs, files, lattices, tmp_path, capsys):
    """A reused lattices file that cannot be read: one line (before: h5py's KeyError for one
    without a dataset)."""
    broken = transfer.transfer_path("ISING1", 4, [0.25], N, lattices)
    shutil.copy(files["no_true_energies"], broken)
    user_error(*cli(transfer.main, transfer_argv(runs["ising1"], lattices, tmp_path / "out"), capsys), broken)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, usage", [
    (["--out", "AFILE"], False),
    (["--data_dir", "AFILE"], False),
    (["--images", "AFILE"], False),
    (["--sizes", "1"], True),
    (["--sizes", "0"], True),
    (["--n", "0"], True),
    (["--betas", "-1"], True),
])
def test_transfer_bad_flags(runs, lattices, tmp_path, capsys, flags, usage):
    """Before: a file as --data_dir or --out was a FileExistsError traceback (--out: after all the work)."""
    afile = tmp_path / "AFILE"
    afile.write_text("")
    flags = [afile if f == "AFILE" else f for f in flags]
    argv = transfer_argv(runs["ising1"], lattices, tmp_path / "out", extra=flags)
    user_error(*cli(transfer.main, argv, capsys), flags[0], usage=usage)
    assert sorted(tmp_path.iterdir()) == [afile, lattices]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("flag, shown", [([], True), (["--no-progress_bar"], False)])
def test_transfer_progress_bar(runs, lattices, tmp_path, monkeypatch, capsys, flag, shown):
    """A bar over the (run, size) pairs on a terminal, none with --no-progress_bar; the line per
    (run, size) on stdout either way."""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    argv = transfer_argv(runs["energy"], lattices, tmp_path / "out", 4, 5, extra=flag)
    assert transfer.main([str(a) for a in argv]) == 0
    assert ("transfer: 100%" in terminal.getvalue()) == shown and ("2/2" in terminal.getvalue()) == shown
    out = capsys.readouterr().out
    assert "energy/GRU_1L_1H_hid8 4x4: centred per-site RMSE" in out and "energy/GRU_1L_1H_hid8 5x5" in out


def test_transfer_no_progress_bar_off_a_terminal(runs, lattices, tmp_path, capsys):
    code, err = cli(transfer.main, transfer_argv(runs["energy"], lattices, tmp_path / "out"), capsys)
    assert code == 0 and err == ""


# ------------------------------------------------------------------------------ train_all.py
@pytest.fixture()
def standard(files, tmp_path):
    """A data folder of the standard file names, made of the tiny files."""
    d = tmp_path / "data"
    d.mkdir()
    for role, key in (("train", "train"), ("val", "val"), ("val_125", "val"), ("val_5", "val"), ("test", "test"),
                      ("eval", "eval")):
        shutil.copy(files[key], data_files.path(role, d))
    return d


@pytest.mark.parametrize("role, kind", [
    ("val_5", "truncated"),
    ("train", "no_true_energies"),
    ("test", "6x6"),
    ("eval", "truncated"),
    ("eval", "no_beta"),
])
def test_train_all_checks_every_file_before_training(files, standard, tmp_path, monkeypatch, capsys, role, kind):
    """Before: a broken training file failed every trainer with a traceback in turn (and left
    their folders); a broken evaluation file failed only after all the training."""
    monkeypatch.setattr(ta, "run_trainer", lambda cmd, log: pytest.fail("trained with a broken file"))
    shutil.copy(files[kind], data_files.path(role, standard))
    argv = ["--profile", "demo", "--data_dir", standard, "--runs", tmp_path / "runs", "--out", tmp_path / "res",
            "--images", tmp_path / "res"]
    user_error(*cli(ta.main, argv, capsys), data_files.path(role, standard))
    assert not (tmp_path / "runs").exists() and not (tmp_path / "res").exists()


def test_train_all_out_is_a_file(standard, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ta, "run_trainer", lambda cmd, log: pytest.fail("trained"))
    afile = tmp_path / "afile"
    afile.write_text("")
    argv = ["--profile", "demo", "--data_dir", standard, "--runs", tmp_path / "runs", "--out", afile, "--images",
            tmp_path / "res"]
    user_error(*cli(ta.main, argv, capsys), "--out", afile)
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------ data_files.py, generate_ising.py
def test_data_files_kept_file_that_is_broken(files, tmp_path, capsys):
    """Before: a truncated standard file was kept ("kept ...") and failed the trainers later."""
    d = tmp_path / "data"
    d.mkdir()
    shutil.copy(files["truncated"], data_files.path("train", d))
    user_error(*cli(data_files.main, ["--data_dir", d], capsys), data_files.path("train", d))
    assert sorted(d.iterdir()) == [Path(data_files.path("train", d))]


@pytest.mark.parametrize("flags, usage", [
    (["--data_dir", "AFILE"], False),
    (["--n_train", "0"], True),
    (["--q", "1"], False),
])
def test_data_files_bad_flags(tmp_path, capsys, flags, usage):
    """Before: a file as --data_dir was a FileExistsError traceback."""
    afile = tmp_path / "AFILE"
    afile.write_text("")
    user_error(*cli(data_files.main, [afile if f == "AFILE" else f for f in flags], capsys), flags[0], usage=usage)
    assert sorted(tmp_path.iterdir()) == [afile]


@pytest.mark.parametrize("flags, flag", [  # flag: what the line names (the sampler's check of β says "beta")
    (["--n_samples", "0"], "--n_samples"),
    (["--n_x", "1"], "--n_x"),
    (["--beta", "-1"], "beta"),
    (["--random_seed", "-1"], "--random_seed"),
    (["--filename", "NOWHERE"], "--filename"),
])
def test_generate_ising_bad_flags(tmp_path, capsys, flags, flag):
    flags = [str(tmp_path / "no" / "x.hdf5") if f == "NOWHERE" else f for f in flags]
    argv = ["--filename", tmp_path / "x.hdf5", *flags]
    user_error(*cli(generate_ising.main, argv, capsys), flag, usage=True)
    assert not list(tmp_path.iterdir())


def test_bad_spin_found_while_testing_leaves_no_run_folder(files, tmp_path, capsys):
    """A file whose flaw the up-front checks do not reach (they read a sample of the spins): the
    error while testing is one line, and the run folder this call made is removed."""
    big = tmp_path / "test_big.hdf5"
    with h5py.File(files["test"], "r") as src, h5py.File(big, "w") as dst:
        reps = -(-2600 // len(src["ising_grids"]))
        for key in ("ising_grids", "true_energies", "beta"):
            data = src[key][()]
            dst[key] = data.repeat(reps, axis=0)[:2600] if data.ndim == 3 else data.repeat(reps)[:2600]
        dst.attrs.update(src.attrs)
        dst["ising_grids"][300, 1, 2] = 0  # between the sampled blocks of rows 0-255 and 334-589
    argv = [*trainer_argv(files, tmp_path / "out", test_path=big), "--limit_test_batches", "20"]  # row 300: batch 19
    code, err = cli(energy_trainer.main, argv, capsys)
    assert code == 2 and "Traceback" not in err
    # the last line names the file and the lattice; above it, what Lightning prints while training
    assert "test_big.hdf5" in err.strip().splitlines()[-1] and "300" in err.strip().splitlines()[-1], err
    assert not (tmp_path / "out").exists()
