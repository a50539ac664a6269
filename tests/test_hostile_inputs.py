"""A user's mistakes on the data and analysis commands: one line on stderr, exit status 2, no traceback,
and nothing written or destroyed; SIGINT and SIGTERM end a writer with one line, exit 130 and 143, and
no temporary file; a killed writer's temporary file is removed by the next one.

Tiny inputs only (4 x 4 lattices, 8 samples, burn-in 4): every refusal comes before any sampling or fit."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import consistency
import generate_ising as gi
import hamiltonian
import hamiltonians
import inverse_ising
import ising
import phase_diagram as pd
from checks import UserError, check_output_file
from conftest import run_cli, user_error

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "weights" / "energy" / "EDNN_F1_C1_hid16x2"
TINY = ["--n_x", "4", "--n_y", "4", "--n_samples", "8", "--burn_in", "4", "--no_progress"]


_cli = run_cli


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _fit(path, **couplings) -> Path:
    """A coupling fit's JSON (ISING1's couplings unless given), as inverse_ising.py writes it."""
    c = {**{n: (1.0 if n in ("J_horizontal", "J_vertical") else 0.0) for n in ising.PAIR_NAMES}, "field": 0.0,
         **couplings}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"kind": "pseudo_likelihood", "trained_on": "ISING1", "couplings": c}))
    return Path(path)


@pytest.fixture
def data(ising_file, tmp_path):
    """A private copy of a tiny ISING1 file (the tests may try to destroy it)."""
    path = tmp_path / "data.hdf5"
    shutil.copy(ising_file("hostile.hdf5", n_samples=8, burn_in=4), path)
    return path


# ------------------------------------------------------------------ 1. an output that is an input
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(data, tmp_path, capsys):
    fit, run = _fit(tmp_path / "fit.json"), tmp_path / "RUN"
    shutil.copytree(RUN, run)
    cases = [(inverse_ising.main, ["--train_path", data, "--out", data, "--blocks", 2], "--out", data, False),
             (gi.main, [*TINY, "--hamiltonian", fit, "--filename", fit], "--filename", fit, True),
             (hamiltonian.main, [run, "--json", run / "metrics.json"], "--json", run / "metrics.json", False),
             (hamiltonian.main, [run, "--json", run / "best.ckpt"], "--json", run / "best.ckpt", False),
             (consistency.main, [data, "--out", data], "--out", data, False)]
    for main, argv, flag, victim, usage in cases:
        before = _digest(victim)
        code, err = _cli(main, argv, capsys)
        user_error(code, err, flag, "input", usage=usage)
        assert _digest(victim) == before
    link = tmp_path / "link.hdf5"                       # the input under another name
    link.symlink_to(data)
    user_error(*_cli(inverse_ising.main, ["--train_path", data, "--out", link, "--blocks", 2], capsys), "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RUN", "data.hdf5", "fit.json", "link.hdf5"]


# ------------------------------------------------------------------ 1, 4. outputs that cannot take a file
def _hostile_output(kind, tmp_path) -> Path:
    if kind == "folder":
        (tmp_path / "folder").mkdir()
        return tmp_path / "folder"
    if kind == "pipe":
        os.mkfifo(tmp_path / "pipe")
        return tmp_path / "pipe"
    if kind == "read-only":
        (tmp_path / "ro.out").write_text("keep me")
        os.chmod(tmp_path / "ro.out", 0o444)
        return tmp_path / "ro.out"
    if kind == "symlink loop":
        (tmp_path / "loop").symlink_to("loop")
        return tmp_path / "loop" / "x.out"
    if kind == "parent is a file":
        (tmp_path / "afile").write_text("")
        return tmp_path / "afile" / "x.out"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["folder", "pipe", "read-only", "symlink loop", "parent is a file"])
def test_an_output_that_cannot_take_a_file_is_one_line(kind, data, tmp_path, capsys):
    out = _hostile_output(kind, tmp_path)
    before = sorted(os.listdir(tmp_path))
    for main, argv, usage in ((gi.main, [*TINY, "--filename", out], True),
                              (inverse_ising.main, ["--train_path", data, "--out", out, "--blocks", 2], False),
                              (hamiltonian.main, ["ISING1", "--json", out], False),
                              (consistency.main, [data, "--out", out], False)):
        code, err = _cli(main, argv, capsys)
        user_error(code, err, usage=usage)
        assert sorted(os.listdir(tmp_path)) == before
    if kind == "read-only":
        assert (tmp_path / "ro.out").read_text() == "keep me"
    if kind == "pipe":
        assert (tmp_path / "pipe").is_fifo()


def test_a_device_is_no_output_file():
    with pytest.raises(UserError, match="not a regular file"):
        check_output_file("--filename", "/dev/null")
    with pytest.raises(UserError, match="give a file name"):
        check_output_file("--out", "")


# ------------------------------------------------------------------ 2. signals, stale temporaries, disk space
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_generator_in_one_line_without_its_temporary_file(tmp_path, signum, status):
    proc = subprocess.Popen([sys.executable, str(ROOT / "generate_ising.py"), "--n_x", "64", "--n_y", "64",
                             "--n_samples", "2000000", "--n_chains", "64", "--burn_in", "0", "--thin", "1",
                             "--filename", "big.hdf5", "--no_progress"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        start = time.time()
        while not list(tmp_path.glob(".big.tmp-*.hdf5")):
            assert proc.poll() is None and time.time() - start < 60, "no temporary file appeared"
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signum)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == status and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_temporary_file_is_removed_by_the_next_run(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".data.tmp-{dead.pid}.hdf5"
    stale.write_bytes(b"half a file")
    alive = tmp_path / f".data.tmp-{os.getppid()}.hdf5"      # a writer still at work: left alone
    alive.write_bytes(b"in progress")
    capsys.readouterr()
    assert gi.main([*TINY, "--filename", str(tmp_path / "data.hdf5")]) == 0
    err = capsys.readouterr().err
    assert not stale.exists() and alive.exists() and str(stale) in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "data.hdf5"]


def test_a_request_larger_than_the_free_disk_is_refused(tmp_path, capsys):
    code, err = _cli(gi.main, ["--n_x", "256", "--n_y", "256", "--n_samples", str(10 ** 9), "--filename",
                               tmp_path / "huge.hdf5"], capsys)
    assert "GB free" in user_error(code, err, "--filename", usage=True)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 3. values that are not finite
@pytest.mark.parametrize("value", [float("nan"), 1e300, float("-inf")])
def test_a_fit_with_a_coupling_that_is_not_finite_or_huge_is_refused(tmp_path, capsys, value):
    fit = _fit(tmp_path / "bad.json", J_vertical=value)
    with pytest.raises(ValueError, match="J_vertical"):
        hamiltonians.fitted_table(fit)
    code, err = _cli(gi.main, [*TINY, "--hamiltonian", fit, "--filename", tmp_path / "out.hdf5"], capsys)
    user_error(code, err, fit, "J_vertical", usage=True)
    assert sorted(tmp_path.iterdir()) == [fit]


@pytest.mark.parametrize("beta", ["1e39", "2e4", "inf", "nan"])
def test_a_beta_beyond_the_bound_is_refused(tmp_path, capsys, beta):
    code, err = _cli(gi.main, [*TINY, "--beta", beta, "--filename", tmp_path / "out.hdf5"], capsys)
    user_error(code, err, "beta", usage=True)
    code, err = _cli(pd.main, ["--sizes", "4", "6", "--betas", "0.3", beta, "--out", tmp_path, "--images", tmp_path],
                     capsys)
    user_error(code, err, "--betas", usage=beta in ("inf", "nan"))
    assert list(tmp_path.iterdir()) == []


def test_the_fit_refuses_lattices_that_are_not_spins(data, tmp_path, capsys):
    with h5py.File(data, "r+") as f:
        grids = f["ising_grids"][()]
        grids[3, 1, 2] = 0
        del f["ising_grids"]
        f["ising_grids"] = grids
    code, err = _cli(inverse_ising.main, ["--train_path", data, "--out", tmp_path / "fit.json", "--blocks", 2], capsys)
    user_error(code, err, data, "±1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.hdf5"]


# ------------------------------------------------------------------ 4, 5. the phase diagram's outputs
def _report(folder, name, source):
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"L": 4, "beta": b, "U_per_site": -1.0, "C_per_site": 1.0} for b in (0.3, 0.4, 0.5)]
    (folder / f"{name}.json").write_text(json.dumps({"hamiltonian": source, "name": name, "trained_on": "ISING1",
                                                     "sizes": [2, 4], "tc": None, "tc_err": None, "rows": rows}))


def test_the_overview_refuses_a_missing_or_empty_folder_and_skips_other_json(tmp_path, capsys):
    code, err = _cli(pd.main, ["--overview", "--out", tmp_path / "TYPO"], capsys)
    user_error(code, err, "TYPO")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "other.json").write_text('{"a": 1}')
    (tmp_path / "broken.json").write_text('{"a"')
    user_error(*_cli(pd.main, ["--overview", "--out", tmp_path], capsys), "no phase reports")
    _report(tmp_path, "learned", "runs/learned")
    code, err = _cli(pd.main, ["--overview", "--out", tmp_path], capsys)
    assert code == 0 and "Traceback" not in err and len(err.splitlines()) == 1 and "other.json" in err, err
    assert "| learned | ISING1 |" in (tmp_path / "overview.md").read_text()
    (tmp_path / "overview.md").unlink()
    (tmp_path / "overview.md").mkdir()
    user_error(*_cli(pd.main, ["--overview", "--out", tmp_path], capsys), "overview.md")


def test_a_report_of_another_hamiltonian_with_the_same_name_is_refused(tmp_path, capsys, monkeypatch):
    a, b = _fit(tmp_path / "a" / "fit.json"), _fit(tmp_path / "b" / "fit.json", J_horizontal=0.5)
    out = tmp_path / "out"
    _report(out, "fit", str(a))
    before = _digest(out / "fit.json")
    code, err = _cli(pd.main, ["--hamiltonian", b, "--sizes", "2", "4", "--betas", "0.3", "0.5", "--chains", "2",
                               "--sweeps", "4", "--burn_in", "0", "--out", out, "--images", out], capsys)
    user_error(code, err, "--out", a, b)
    assert _digest(out / "fit.json") == before and sorted(p.name for p in out.iterdir()) == ["fit.json"]
    monkeypatch.chdir(tmp_path)                         # a rerun of the same fit, spelled another way, replaces it
    assert [p.name for p in pd.check_outputs(out, out, "fit", "a/fit.json")] == ["fit.json", "fit.md", "phase_fit.png"]
    (out / "fit.json").write_text("not a report")
    user_error(*_cli(pd.main, ["--hamiltonian", a, "--out", out, "--images", out], capsys), "not a phase report")


def test_ctrl_c_of_the_phase_diagram_is_one_line_and_writes_nothing(tmp_path, capsys):
    timer = threading.Timer(2.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        code, err = _cli(pd.main, ["--sizes", "32", "64", "--betas", "0.3", "0.5", "--sweeps", "1000000", "--burn_in",
                                   "0", "--no-progress_bar", "--out", tmp_path / "out", "--images", tmp_path / "img"],
                         capsys)
    finally:
        timer.cancel()
    assert code == 130 and "Traceback" not in err and len(err.splitlines()) == 1 and "SIGINT" in err, err
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


# ------------------------------------------------------------------ 6. every command line has --help
def test_consistency_has_a_command_line(data, tmp_path, capsys):
    r = subprocess.run([sys.executable, str(ROOT / "consistency.py"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: consistency.py" in r.stdout and "--images" in r.stdout, r.stderr
    assert consistency.main([str(data), "--out", str(tmp_path / "c.md")]) == 0
    assert "chi2" in capsys.readouterr().out and "| data.hdf5 | 0.25 |" in (tmp_path / "c.md").read_text()
    user_error(*_cli(consistency.main, [tmp_path / "missing.hdf5"], capsys), "missing.hdf5")
