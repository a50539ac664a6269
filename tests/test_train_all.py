"""train_all.py: which runs a profile holds, the trainer commands and folders, and the scheduler
(finished runs skipped, at most --jobs trainers at once, failures reported) with a stand-in
trainer, so nothing is trained here (tests/test_end_to_end.py trains for real)."""
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

import data_files
import evaluate as ev
import train_all as ta
from checks import UserError, main_guard


def test_profiles_hold_every_combination_once():
    cpu = ta.combinations("cpu")
    keys = {tuple(sorted(s.items())) for s in cpu}
    assert len(cpu) == len(keys) == 17  # 2 families x 2^3 flags, plus the site head
    assert sum(s.get("energy_head") == "site" for s in cpu) == 1
    assert ta.combinations("demo") == [
        {"family": "energy", "attention": True, "two_d": True, "bidirectional": True},
        {"family": "probability", "attention": False, "two_d": False, "bidirectional": False},
    ]


@pytest.mark.parametrize("spec, extra, name", [
    ({"family": "energy", "attention": True, "two_d": True, "bidirectional": True}, [], "2D_GRU_1L_1H_Bi_Attn_hid64"),
    ({"family": "energy", "attention": True, "two_d": True, "bidirectional": True, "energy_head": "site"}, [],
     "2D_GRU_1L_1H_Bi_Attn_hid64_Site"),
    ({"family": "probability", "attention": False, "two_d": False, "bidirectional": False}, [], "GRU_1L_1H_hid64"),
    # flags passed through to the trainer name the folder too, and the last --hidden_size wins
    ({"family": "probability", "attention": False, "two_d": False, "bidirectional": True},
     ["--num_layers", "2", "--hidden_size", "512"], "GRU_2L_1H_Bi"),
])
def test_trainer_command_and_its_folder(spec, extra, name):
    profile = {**ta.PROFILES["cpu"], "runs": "r", "data_dir": "d"}
    args = ta.trainer_args(spec, profile, extra)
    assert args[args.index("--train_path") + 1] == data_files.path("train", "d")
    assert args[args.index("--val_paths") + 1:args.index("--test_path")] == data_files.val_paths("d")
    assert args[args.index("--limit_train_batches") + 1] == "250"
    assert ("--bidirectional" if spec["bidirectional"] else "--no-bidirectional") in args
    assert ta.run_dir(spec["family"], args) == Path("r") / spec["family"] / name


def test_a_bad_trainer_flag_stops_before_training(capsys):
    with pytest.raises(SystemExit):
        ta.run_dir("energy", ta.trainer_args(ta.combinations("demo")[0], ta.PROFILES["demo"], ["--no_such_flag"]))
    assert "energy_trainer.py: error: unrecognized arguments: --no_such_flag" in capsys.readouterr().err


@pytest.fixture()
def standard_files(tmp_path):
    """Empty stand-ins for the standard data files (the scheduler only checks that they exist)."""
    data = tmp_path / "data"
    data.mkdir()
    for role in data_files.STANDARD:
        Path(data_files.path(role, data)).touch()
    return {"data_dir": str(data), "runs": str(tmp_path / "runs")}


def test_skips_finished_runs_and_runs_jobs_at_once(standard_files, monkeypatch):
    dirs = [ta.run_dir(s["family"], ta.trainer_args(s, {**ta.PROFILES["cpu"], **standard_files}))
            for s in ta.combinations("cpu")]
    for d in dirs[3:4]:  # one finished run: 16 left, pairs for the barrier below
        d.mkdir(parents=True)
        (d / "metrics.json").write_text("{}")
    # Every stand-in trainer waits until `jobs` of them run at once: fewer at a time would time
    # out the barrier; more are caught by the count.
    jobs, lock, active, seen = 2, threading.Lock(), [0], []
    barrier = threading.Barrier(jobs, timeout=20)

    def fake_trainer(cmd, log_path):
        with lock:
            active[0] += 1
            seen.append((cmd, log_path, active[0]))
        barrier.wait()
        with lock:
            active[0] -= 1
        return 0

    monkeypatch.setattr(ta, "run_trainer", fake_trainer)
    assert ta.train_all("cpu", overrides=standard_files, jobs=jobs) == dirs
    assert len(seen) == 16 and max(n for _, _, n in seen) == jobs
    trained = {Path(log).parent for _, log, _ in seen}
    assert trained == set(dirs) - {dirs[3]}
    assert all(cmd[cmd.index("--threads") + 1] == "1" and log.name == "train.log" for cmd, log, _ in seen)


def test_failures_are_reported_after_the_others(standard_files, monkeypatch, capsys):
    calls = []

    def fake_trainer(cmd, log_path):
        calls.append(log_path)
        return 3 if "--attention" in cmd else 0  # the demo's energy model fails

    monkeypatch.setattr(ta, "run_trainer", fake_trainer)
    with pytest.raises(UserError, match=r"1 run\(s\) failed: .*2D_GRU_1L_1H_Bi_Attn_hid32"):
        ta.train_all("demo", overrides=standard_files, jobs=1)
    assert calls == [None, None]  # one at a time, output to the terminal
    assert "FAILED (exit 3)" in capsys.readouterr().out


def test_missing_data_file_is_one_line_and_nothing_trains(standard_files, monkeypatch, capsys):
    monkeypatch.setattr(ta, "run_trainer", lambda cmd, log: pytest.fail("trained without data"))
    Path(data_files.path("val_5", standard_files["data_dir"])).unlink()
    assert main_guard(ta.main, ["--profile", "demo", "--data_dir", standard_files["data_dir"]]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: " + data_files.missing_file_message(data_files.path("val_5", standard_files["data_dir"]))
    # the evaluation file is checked before training too
    Path(data_files.path("eval", standard_files["data_dir"])).unlink()
    assert main_guard(ta.main, ["--profile", "demo", "--data_dir", standard_files["data_dir"]]) == 2
    assert "eval_data.hdf5 not found" in capsys.readouterr().err


def test_an_unfinished_run_is_run_again_to_resume(standard_files, monkeypatch, capsys):
    """An interrupted run (last.ckpt, no metrics.json) gets the same command again: the trainer
    then continues it from last.ckpt (tests/test_trainers.py kills and resumes a real run)."""
    specs = ta.combinations("demo")
    dirs = [ta.run_dir(s["family"], ta.trainer_args(s, {**ta.PROFILES["demo"], **standard_files})) for s in specs]
    dirs[0].mkdir(parents=True)
    (dirs[0] / "last.ckpt").write_bytes(b"")
    dirs[1].mkdir(parents=True)
    (dirs[1] / "metrics.json").write_text("{}")
    calls = []
    monkeypatch.setattr(ta, "run_trainer", lambda cmd, log: calls.append(cmd) or 0)
    ta.train_all("demo", overrides=standard_files, jobs=1)
    expected = ta.trainer_args(specs[0], {**ta.PROFILES["demo"], **standard_files})
    assert len(calls) == 1 and calls[0][2:] == expected
    out = capsys.readouterr().out
    assert "resuming from last.ckpt" in out and "finished already, skipping" in out


def test_every_path_is_the_users_whatever_folder_the_trainers_run_in(standard_files, monkeypatch, tmp_path):
    """Relative --runs, --data_dir, --out and --images mean folders of the user's working folder: the
    trainers get them absolute (they run in the user's folder, so extra relative flags work too)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ta, "check_files", lambda data_dir, eval_path: calls.append(("check", data_dir, eval_path)))
    monkeypatch.setattr(ev, "check_draw_size", lambda n, path: None)
    monkeypatch.setattr(ev, "run_report", lambda *a: calls.append(("report", *a)) or 0)
    monkeypatch.setattr(ta, "run_trainer", lambda cmd, log: calls.append(("train", cmd)) or 0)
    calls = []
    assert main_guard(ta.main, ["--profile", "demo", "--data_dir", "data", "--runs", "myruns", "--out", "res",
                                "--images", "img"]) == 0
    _, data_dir, eval_path = calls[0]
    assert data_dir == str(tmp_path / "data") and eval_path == data_files.path("eval", tmp_path / "data")
    for _, cmd in (c for c in calls if c[0] == "train"):
        for flag in ("--train_path", "--test_path", "--output_dir"):
            assert Path(cmd[cmd.index(flag) + 1]).is_absolute(), (flag, cmd)
        assert cmd[cmd.index("--output_dir") + 1] == str(tmp_path / "myruns")
    assert calls[-1][1:4] == (str(tmp_path / "myruns"), eval_path, str(tmp_path / "res"))
    assert calls[-1][4] == str(tmp_path / "img")


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_running_trainer_and_starts_no_other(standard_files, monkeypatch, tmp_path, capsys,
                                                               signum, status):
    """SIGTERM / SIGINT to train_all reach the running trainer (which saves last.ckpt and ends),
    wait for it, start no queued run, and end in one line with exit status 143 / 130."""
    started = tmp_path / "started"
    stand_in = "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\n'); time.sleep(120)"
    monkeypatch.setattr(ta, "trainer_command", lambda family, args: [sys.executable, "-c", stand_in, str(started)])
    monkeypatch.setattr(ta, "check_files", lambda *a: None)
    monkeypatch.setattr(ev, "check_draw_size", lambda n, path: None)
    monkeypatch.setattr(ev, "run_report", lambda *a: pytest.fail("evaluated after a signal"))

    def send():
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(os.getpid(), signum)

    threading.Thread(target=send, daemon=True).start()
    t0 = time.monotonic()
    code = main_guard(ta.main, ["--profile", "demo", "--data_dir", standard_files["data_dir"], "--runs",
                                standard_files["runs"], "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == status and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    pids = [int(p) for p in started.read_text().split()]
    assert len(pids) == 1 and time.monotonic() - t0 < 60  # the second run never started
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)                             # ended and reaped
