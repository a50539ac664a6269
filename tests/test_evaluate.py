"""evaluate.py: scores, leaderboard and plots (pure parts)."""
import json

import numpy as np
import pytest

import evaluate as ev


def test_centred_rmse_by_hand():
    pred = np.array([1.0, 2.0, 6.0])
    true = np.array([11.0, 13.0, 15.0])
    # centred: pred -> [-2, -1, 3], true -> [-2, 0, 2]; differences [0, -1, 1]
    assert ev.centred_rmse(pred, true) == pytest.approx(np.sqrt(2 / 3))
    assert ev.rmse(pred, true) == pytest.approx(np.sqrt((100 + 121 + 81) / 3))
    assert ev.centred_rmse(true + 7.5, true) == pytest.approx(0.0, abs=1e-12)


def test_eval_indices_fixed_seed_with_replacement():
    a = ev.eval_indices(100, 1000, seed=3)
    b = ev.eval_indices(100, 1000, seed=3)
    assert np.array_equal(a, b)
    assert a.min() >= 0 and a.max() < 100
    assert len(np.unique(a)) < len(a)  # 1000 draws from 100: repeats, i.e. with replacement
    assert not np.array_equal(a, ev.eval_indices(100, 1000, seed=4))


def test_error_by_energy_groups_by_true_value():
    true = np.array([0.0, 0.0, 4.0, 4.0, 4.0, 8.0])
    pred = true + np.array([1.0, 3.0, 0.0, 0.0, 6.0, 0.0])
    x, mean, std = ev.error_by_energy(pred, true, min_count=2)
    # centring shifts both by their means; the offset of the errors is mean(err) = 10/6
    off = 10 / 6
    assert np.allclose(x, np.array([0.0, 4.0]) - true.mean())
    assert np.allclose(mean, [2.0 - off, 2.0 - off])
    assert np.allclose(std, [1.0, np.std([0.0, 0.0, 6.0])])


def test_leaderboard_and_plots_written(tmp_path):
    rows = [
        {"run": "energy/a", "family": "energy", "config": "a", "attention": True, "two_d": True, "bidirectional": True,
         "cell": "gru", "energy_head": "prob", "rmse_centred": 1.5, "rmse_raw": 2.0, "rmse_per_beta": {"0.25": 1.0},
         "n_params": 1234, "_pred": np.zeros(3)},
        {"run": "probability/b", "family": "probability", "config": "b", "cell": "gru", "rmse_centred": 3.0,
         "rmse_raw": None, "rmse_per_beta": {"0.25": 3.0}, "n_params": 99, "_pred": np.zeros(3)},
    ]
    paths = ev.write_leaderboard(rows, tmp_path)
    md = paths["md"].read_text()
    assert "Energy GRU + Attention + 2D + Bidirectional" in md and "| 1.5 | 7.79 | 2 |" in md and "| — |" in md
    data = json.loads(paths["json"].read_text())
    assert [r["run"] for r in data] == ["energy/a", "probability/b"] and "_pred" not in data[0]
    assert "energy/a" in paths["csv"].read_text()
    assert ev.select(rows, "energy", attention=True, two_d=True, bidirectional=True)["run"] == "energy/a"
    assert ev.select(rows, "probability")["run"] == "probability/b"
    assert ev.select(rows, "energy") is None

    true = np.repeat(np.arange(-8.0, 9.0, 4.0), 20)
    ev.plot_predictions({"model": true + np.random.default_rng(0).normal(size=true.size)}, true, tmp_path / "p.png")
    ev.plot_attention({"a": np.eye(8), "b": np.ones((8, 8))}, tmp_path / "a.png")
    for name in ("p.png", "a.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
