"""evaluate.py: the protocol's scores by hand, the eval draw, the leaderboard, the plots, the CLI's errors;
plotting.py's atomic writes."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import evaluate as ev
from checks import UserError
import ising
import runs
import plotting

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def test_centred_rmse_by_hand():
    pred = np.array([1.0, 2.0, 6.0])
    true = np.array([11.0, 13.0, 15.0])
    # centred: pred -> [-2, -1, 3], true -> [-2, 0, 2]; differences [0, -1, 1]
    assert ising.centred_rmse(pred, true) == pytest.approx(np.sqrt(2 / 3))
    assert ising.rmse(pred, true) == pytest.approx(np.sqrt((100 + 121 + 81) / 3))
    assert ising.centred_rmse(true + 7.5, true) == pytest.approx(0.0, abs=1e-12)


def test_eval_indices_fixed_seed_with_replacement():
    a = ev.eval_indices(100, 1000, seed=3)
    assert np.array_equal(a, ev.eval_indices(100, 1000, seed=3))
    assert a.min() >= 0 and a.max() < 100
    assert len(np.unique(a)) < len(a)  # 1000 draws from 100: repeats, i.e. with replacement
    assert not np.array_equal(a, ev.eval_indices(100, 1000, seed=4))


def test_load_eval_set_rows_of_the_draw(ising_file):
    path = ising_file("eval.hdf5", betas=(0.2, 0.4), n_samples=50)
    grids, energies, betas = ev.load_eval_set(path, n=300, seed=5)
    idx = ev.eval_indices(100, 300, seed=5)
    with h5py.File(path, "r") as f:  # the draw's rows, in the draw's order, repeats included
        assert np.array_equal(grids, f["ising_grids"][:][idx])
        assert np.array_equal(energies, f["true_energies"][:][idx])
        assert np.array_equal(betas, f["beta"][:][idx])


def test_runs_of_another_hamiltonian_are_not_scored(ising_file, tmp_path, capsys):
    """An ISING2 model on ISING1 lattices would give a meaningless row: it is skipped, by name."""
    path = ising_file("eval.hdf5", betas=(0.2, 0.4), n_samples=50)  # ISING1
    run = tmp_path / "runs" / "energy" / "EDNN_ISING2"
    run.mkdir(parents=True)
    (run / "best.ckpt").write_bytes(b"")  # never loaded: the check reads metrics.json only
    (run / "metrics.json").write_text(json.dumps({"best_checkpoint": "best.ckpt", "config": {"hamiltonian": "ISING2"}}))
    with pytest.raises(UserError, match="no run .* was trained on ISING1"):
        ev.evaluate_runs(tmp_path / "runs", path, n=10, progress=False)
    assert capsys.readouterr().err == ""  # when nothing is left to score, the error alone says why


def test_find_runs_in_groups_of_runs(tmp_path):
    """Runs sit at <root>/<family>/<config> or one group deeper (train_all --profile parity): the
    group is part of the label, so runs of the same configuration stay apart."""
    for rel in ("energy/A", "bf16_seed0/energy/A", "fp32_seed0/probability/B", "misc/notes/C"):
        d = tmp_path / rel
        d.mkdir(parents=True)
        (d / "best.ckpt").write_bytes(b"")
        (d / "metrics.json").write_text(json.dumps({"best_checkpoint": "best.ckpt"}))
    labels = sorted(r.label for r in runs.find_runs(tmp_path))
    assert labels == ["bf16_seed0/energy/A", "energy/A", "fp32_seed0/probability/B"]


def test_load_eval_set_missing_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"eval_data.hdf5 not found; create it with: make data"):
        ev.load_eval_set(tmp_path / "eval_data.hdf5")


def test_error_by_energy_groups_by_true_value():
    true = np.array([0.0, 0.0, 4.0, 4.0, 4.0, 8.0])
    pred = true + np.array([1.0, 3.0, 0.0, 0.0, 6.0, 0.0])
    x, mean, std = ev.error_by_energy(pred, true, min_count=2)
    # centring shifts both by their means; the offset of the errors is mean(err) = 10/6
    off = 10 / 6
    assert np.allclose(x, np.array([0.0, 4.0]) - true.mean())
    assert np.allclose(mean, [2.0 - off, 2.0 - off])
    assert np.allclose(std, [1.0, np.std([0.0, 0.0, 6.0])])


def test_attention_map_follows_the_snake_by_hand():
    # 2 x 3 lattice, rows snake: positions 0 1 2 -> (0,0) (0,1) (0,2); 3 4 5 -> (1,2) (1,1) (1,0)
    w = np.zeros((6, 6))
    w[4] = np.arange(6.0)  # the query (1, 1) is position 4
    assert np.array_equal(ev.attention_map({"rows": w}, 2, 3, query=(1, 1)), [[0, 1, 2], [5, 4, 3]])
    # columns snake: positions 0 1 -> (0,0) (1,0); 2 3 -> (1,1) (0,1); 4 5 -> (0,2) (1,2); query (1, 1) is 2
    w_cols = np.zeros((6, 6))
    w_cols[2] = np.arange(6.0)
    both = ev.attention_map({"rows": w, "cols": w_cols}, 2, 3, query=(1, 1))
    assert np.array_equal(both, ([[0, 1, 2], [5, 4, 3]] + np.array([[0, 3, 4], [1, 2, 5]])) / 2)
    # a causal model has no query row for its last position (1, 0) = 5: the one before it is shown
    causal = np.zeros((5, 5))
    causal[4] = np.arange(1.0, 6.0)
    assert np.array_equal(ev.attention_map({"rows": causal}, 2, 3, query=(1, 0)), [[1, 2, 3], [0, 5, 4]])


def _rows():
    return [
        {"run": "energy/a", "family": "energy", "config": "a", "attention": True, "two_d": True, "bidirectional": True,
         "cell": "gru", "energy_head": "logsigmoid", "rmse_centred": 1.5, "rmse_raw": 2.0, "rmse_per_beta": {"0.25": 1.0},
         "n_params": 1234, "_pred": np.zeros(3)},
        {"run": "energy/s", "family": "energy", "config": "s", "attention": True, "two_d": True, "bidirectional": True,
         "cell": "gru", "energy_head": "site", "rmse_centred": 2.5, "rmse_raw": 2.5, "rmse_per_beta": {"0.25": 2.5},
         "n_params": 1234, "_pred": np.zeros(3)},
        {"run": "probability/b", "family": "probability", "config": "b", "cell": "gru", "rmse_centred": 3.0,
         "rmse_raw": None, "rmse_per_beta": {"0.25": 3.0}, "n_params": 99, "_pred": np.zeros(3)},
    ]


def test_leaderboard_files(tmp_path):
    rows = _rows()
    paths = ev.write_leaderboard(rows, tmp_path / "out")
    md = paths["md"].read_text().splitlines()
    assert md[2] == "| Energy GRU + Attention + 2D + Bidirectional | `energy/a` | 1.5 | 7.79 | 2 | 1,234 |"
    assert md[3].startswith("| Energy GRU + Attention + 2D + Bidirectional + site head | `energy/s` | 2.5 | — |")
    assert md[4] == "| Probability GRU | `probability/b` | 3 | 19.9 | — | 99 |"
    data = json.loads(paths["json"].read_text())
    assert [r["run"] for r in data] == ["energy/a", "energy/s", "probability/b"] and "_pred" not in data[0]
    csv_lines = paths["csv"].read_text().splitlines()
    assert csv_lines[0].startswith("run,family,config,rmse_centred,rmse_raw") and csv_lines[1].startswith("energy/a,")
    assert not list((tmp_path / "out").glob("*.tmp*"))
    assert "| energy/a | 1 |" in ev.per_beta_markdown(rows)


def test_select_matches_flags_and_defaults():
    rows = _rows()
    full = dict(attention=True, two_d=True, bidirectional=True)
    assert ev.select(rows, "energy", **full)["run"] == "energy/a"  # the reference head by default
    assert ev.select(rows, "energy", **full, energy_head="site")["run"] == "energy/s"
    assert ev.select(rows, "probability")["run"] == "probability/b"
    assert ev.select(rows, "energy") is None  # the plain energy model is not among the rows


def test_the_extensive_model_is_named_and_has_no_published_figure():
    row = {"family": "energy", "focus": 1, "context": 1, "target": "centred"}
    assert ev.describe(row) == "Energy EDNN, focus 1, context 1 (label-free, centred)"
    assert ev.reference_rmse(row) is None  # not the plain energy GRU's 15.8
    assert ev.select([{**row, "run": "energy/e"}], "energy") is None
    assert ev.reference_rmse({"family": "energy"}) == 15.8


def test_plots_written(tmp_path):
    true = np.repeat(np.arange(-8.0, 9.0, 4.0), 20)
    ev.plot_predictions({"model": true + np.random.default_rng(0).normal(size=true.size)}, true, tmp_path / "p.png")
    ev.plot_attention({"a": np.eye(8), "b": np.ones((8, 8))}, tmp_path / "sub" / "a.png")
    for path in (tmp_path / "p.png", tmp_path / "sub" / "a.png"):
        data = path.read_bytes()
        assert data[:8] == PNG and len(data) > 5000


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "table.md"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with plotting.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]
    with plotting.atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_markdown_table():
    table = plotting.markdown_table([{"a": 1, "b": 0.123456}, {"a": "x"}])
    assert table == "| a | b |\n|---|---|\n| 1 | 0.1235 |\n| x |  |\n"
    assert plotting.markdown_table([]) == "_(nothing)_\n"


@pytest.mark.parametrize("args, message", [
    ([], "no finished runs"),
    (["--n", "0"], "--n: must be a positive integer"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--runs", str(tmp_path), "--out", str(tmp_path),
                           "--eval_path", str(tmp_path / "missing.hdf5"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "leaderboard.md").exists()


def test_seed_spread_groups_runs_that_differ_only_by_seed(tmp_path):
    def row(group, config, value):
        return {"family": "energy", "config": config, "rmse_centred": value,
                "_run": runs.Run("energy", config, tmp_path, tmp_path / "best.ckpt", {}, group)}

    rows = [row("seed0", "A", 0.3), row("seed1", "A", 0.5), row("seed2", "A", 0.4), row("", "B", 1.0),
            row("bf16-mixed_seed0", "A", 2.0), row("bf16-mixed_seed1", "A", 4.0)]
    spread = {s["runs"]: s for s in ev.seed_spread(rows)}
    assert set(spread) == {"energy/A", "bf16-mixed/energy/A"}  # B has no second seed
    a = spread["energy/A"]
    assert a["n_seeds"] == 3 and a["mean"] == pytest.approx(0.4) and a["std"] == pytest.approx(0.1)
    assert (a["min"], a["max"]) == (0.3, 0.5) and a["max_over_mean"] == pytest.approx(1.25)
    assert spread["bf16-mixed/energy/A"]["mean"] == pytest.approx(3.0)
    assert "0.4 ± 0.1" in ev.seed_spread_markdown([a])


# -------------------- the q-state Potts model ------------------------------------------
def _fake_run(root, name, hamiltonian, q=None):
    """A run folder the Hamiltonian check reads (metrics.json only; its checkpoint is never loaded)."""
    run = root / "energy" / name
    run.mkdir(parents=True)
    (run / "best.ckpt").write_bytes(b"")
    config = {"hamiltonian": hamiltonian, "n_x": 4, "n_y": 4, **({"q": q} if q else {})}
    (run / "metrics.json").write_text(json.dumps({"best_checkpoint": "best.ckpt", "config": config}))
    return run


@pytest.mark.parametrize("run_model, file_model, message", [
    ("POTTS3", "ISING1", "no run under {root} was trained on ISING1, the Hamiltonian of {path} (the runs were trained "
                         "on POTTS3); score POTTS3 runs on a POTTS3 file, e.g. --eval_path data/potts3/eval_data.hdf5"),
    ("ISING1", "POTTS3", "no run under {root} was trained on POTTS3, the Hamiltonian of {path} (the runs were trained "
                         "on ISING1)"),
    ("POTTS3", "POTTS4", "was trained on POTTS4, the Hamiltonian of {path} (the runs were trained on POTTS3); score "
                         "POTTS3 runs on a POTTS3 file"),
])
def test_potts_and_ising_runs_and_files_that_do_not_match_are_one_line(ising_file, potts_file, tmp_path, capsys,
                                                                       run_model, file_model, message):
    from checks import main_guard

    q = {"POTTS3": 3, "POTTS4": 4}
    path = potts_file("eval.hdf5", q=q[file_model], n_samples=16) if file_model in q else ising_file("eval.hdf5")
    root = tmp_path / "runs"
    _fake_run(root, f"EDNN_{run_model}", run_model, q.get(run_model))
    assert main_guard(ev.main, ["--runs", str(root), "--eval_path", str(path), "--out", str(tmp_path / "out"),
                                "--images", str(tmp_path / "img")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message.format(root=root, path=path) in err
    assert not (tmp_path / "out").exists()


def test_a_potts_run_is_scored_on_a_potts_file_against_potts_energies(potts_file, tmp_path, capsys):
    """A tiny supervised EDNN on 4 x 4 q = 3 lattices: its row scores potts.energy of the drawn
    lattices, says q and has no published figure; an Ising run beside it is skipped, by name."""
    import energy_trainer
    import potts

    files = [potts_file(name, n_samples=n, seed=s, beta=0.8) for name, n, s in (("train.hdf5", 128, 1),
                                                                                 ("val.hdf5", 32, 2))]
    root = tmp_path / "runs"
    energy_trainer.main(["--train_path", str(files[0]), "--val_paths", str(files[1]), "--test_path", str(files[1]),
                         "--architecture", "ednn", "--hidden_size", "8", "--max_epochs", "1", "--batch_size", "32",
                         "--accelerator", "cpu", "--no-progress_bar", "--output_dir", str(root)])
    _fake_run(root, "EDNN_ISING1", "ISING1")
    eval_path = potts_file("eval.hdf5", n_samples=50, seed=3, beta=0.6)
    capsys.readouterr()
    rows, (grids, energies, betas) = ev.evaluate_runs(root, eval_path, n=200, progress=False)
    assert "skipping energy/EDNN_ISING1: trained on ISING1" in capsys.readouterr().err
    (row,) = rows
    assert row["config"] == "EDNN_F1_C1_hid8x2_Q3" and row["q"] == 3
    assert grids.min() >= 0 and grids.max() <= 2
    np.testing.assert_array_equal(energies, potts.energy(grids))            # the file's energies are Potts ones
    assert row["rmse_centred"] == pytest.approx(ising.centred_rmse(row["_pred"], potts.energy(grids)))
    assert row["rmse_raw"] == pytest.approx(ising.rmse(row["_pred"], potts.energy(grids)))
    assert ev.describe(row) == "Energy EDNN, focus 1, context 1, q = 3 Potts" and ev.reference_rmse(row) is None
    paths = ev.write_leaderboard(rows, tmp_path / "out")
    assert "| Energy EDNN, focus 1, context 1, q = 3 Potts | `energy/EDNN_F1_C1_hid8x2_Q3` |" in paths["md"].read_text()
    assert json.loads(paths["json"].read_text())[0]["q"] == 3
    # the states check of runs.predict: Ising spins to a Potts model, Potts states to an Ising model
    model = runs.load_model(row["_run"])
    with pytest.raises(ValueError, match=r"a q = 3 Potts model reads the states 0 ... 2; these lattices hold -1 ... 1"):
        runs.predict(model, 2 * (grids[:4] > 0) - 1)
    from ednn import EDNNEnergyModel

    with pytest.raises(ValueError, match=r"an Ising model reads spins ±1; these lattices hold 0 ... 2"):
        runs.predict(EDNNEnergyModel(hidden_size=4, n_x=4, n_y=4), grids[:4])


def test_describe_a_potts_sequence_model():
    row = {"family": "probability", "cell": "gru", "two_d": True, "bidirectional": True, "q": 3}
    assert ev.describe(row) == "Probability GRU + 2D + Bidirectional, q = 3 Potts"
    assert ev.reference_rmse(row) is None and ev.reference_rmse({**row, "q": 2}) is None  # (2D Bi: none either)
    assert ev.reference_rmse({"family": "probability", "q": 3}) is None
    assert ev.reference_rmse({"family": "probability"}) == 19.9
