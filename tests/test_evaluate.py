"""evaluate.py: exact distributions, scores, leaderboard and plots (pure parts)."""
import json

import numpy as np
import pytest

import evaluate as ev


def _enumerated_distribution(n_x, n_y, beta, model):
    """Brute force over all 2**(n_x n_y) states, energies written out bond by bond."""
    n = n_x * n_y
    states = 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) - 1
    s = states.reshape(-1, n_x, n_y)
    energy = np.zeros(len(s))
    for x in range(n_x):
        for y in range(n_y):
            right = s[:, x, (y + 1) % n_y]
            down = s[:, (x + 1) % n_x, y]
            energy -= s[:, x, y] * (right + down)
            if model == "ISING2":
                down_right = s[:, (x + 1) % n_x, (y + 1) % n_y]
                up_right = s[:, (x - 1) % n_x, (y + 1) % n_y]
                energy -= 0.5 * s[:, x, y] * (down_right + up_right)
    values, inverse = np.unique(energy, return_inverse=True)
    weights = np.bincount(inverse, np.exp(-beta * (energy - energy.min())))
    return values, weights / weights.sum()


@pytest.mark.parametrize("shape", [(4, 4), (3, 4), (2, 6), (5, 3)])
@pytest.mark.parametrize("model", ["ISING1", "ISING2"])
@pytest.mark.parametrize("beta", [0.0, 0.25, 0.7])
def test_exact_distribution_matches_enumeration(shape, model, beta):
    e, p = ev.exact_energy_distribution(*shape, beta, model)
    e_ref, p_ref = _enumerated_distribution(*shape, beta, model)
    ref = dict(zip(e_ref, p_ref))
    assert set(e) <= set(e_ref)
    assert p.sum() == pytest.approx(1.0)
    assert max(abs(ref[k] - v) for k, v in zip(e, p)) < 1e-12
    missing = [ref[k] for k in set(e_ref) - set(e)]  # only probabilities below round-off are dropped
    assert not missing or max(missing) < 1e-12


def test_exact_mean_energy_limits():
    # beta = 0: every state equally likely, <E> = 0; large beta: the ground state, -2N.
    assert ev.exact_mean_energy(4, 4, 0.0) == pytest.approx(0.0, abs=1e-10)
    assert ev.exact_mean_energy(4, 4, 5.0) == pytest.approx(-32.0, abs=1e-6)
    assert ev.exact_mean_energy(4, 4, 5.0, "ISING2") == pytest.approx(-48.0, abs=1e-6)


def test_chi_square_accepts_the_true_law_and_rejects_a_wrong_one():
    e, p = ev.exact_energy_distribution(4, 4, 0.3)
    rng = np.random.default_rng(0)
    counts = rng.multinomial(20_000, p)
    assert ev.chi_square_test(counts, p)[2] > 1e-3
    _, p_wrong = ev.exact_energy_distribution(4, 4, 0.35)
    assert ev.chi_square_test(counts, p_wrong)[2] < 1e-6


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
