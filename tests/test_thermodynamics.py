"""thermodynamics.py and ProbabilityModel.sample: exact sampling of the model's own q, and the
importance-sampling estimators against exact finite-lattice results.

The chi-square threshold ALPHA is fixed in advance; seeds are fixed, so outcomes reproduce."""
import json

import numpy as np
import pytest
import torch

import ising
import thermodynamics as th
from checks import main_guard
from conftest import user_error
from probability_models import ProbabilityModel
from sequence_blocks import grids_to_sequences

ALPHA = 1e-4
N_X = N_Y = 4


def _sharp_model(seed, **kw):
    """A small untrained causal model whose q is far from uniform (weights scaled up), so that a
    sampler drawing the wrong conditionals is easy to catch."""
    torch.manual_seed(seed)
    model = ProbabilityModel(hidden_size=8, beta=0.3, n_x=N_X, n_y=N_Y, **kw).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model


def _log_q_all_states(model, order="rows"):
    """log q of every 4 x 4 lattice (index k = ising.all_states order), by the full forward pass."""
    grids = torch.as_tensor(ising.all_states(N_X, N_Y))
    with torch.no_grad():
        return model.log_prob(grids, order=order).double().numpy()


def _state_index(grids):
    bits = (grids.reshape(len(grids), -1) > 0).astype(np.int64)
    return bits @ (1 << np.arange(N_X * N_Y))


@pytest.mark.parametrize("kw,order", [({}, "rows"), ({"attention": True}, "rows"), ({"two_d": True}, "cols")])
def test_sample_draws_exactly_from_the_models_own_q(kw, order):
    model = _sharp_model(0, **kw)
    log_q = _log_q_all_states(model, order)
    assert np.exp(log_q).sum() == pytest.approx(1.0, abs=1e-6)       # q is normalised
    grids, sampled_log_q = model.sample(100_000, seed=1, order=order)
    assert grids.dtype == np.int8 and grids.shape == (100_000, N_X, N_Y) and set(np.unique(grids)) == {-1, 1}
    idx = _state_index(grids)
    np.testing.assert_allclose(sampled_log_q, log_q[idx], atol=1e-4)  # the returned log q is the model's
    counts = np.bincount(idx, minlength=2 ** (N_X * N_Y))
    assert ising.chi_square_test(counts, np.exp(log_q) / np.exp(log_q).sum())[2] > ALPHA
    # the same test rejects the q of another model: it has the power to fail
    other = np.exp(_log_q_all_states(_sharp_model(7, **kw), order))
    assert ising.chi_square_test(counts, other / other.sum())[2] < 1e-6


def test_sample_is_reproducible_and_refuses_the_conditional_model():
    model = _sharp_model(0)
    a, la = model.sample(300, seed=5, batch_size=128)
    b, lb = model.sample(300, seed=5, batch_size=128)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, model.sample(300, seed=6)[0])
    with pytest.raises(ValueError, match="not a normalised"):
        ProbabilityModel(hidden_size=8, bidirectional=True, n_x=4, n_y=4).sample(10)
    with pytest.raises(ValueError, match="order"):
        model.sample(10, order="cols")


def _exact_draws(beta, n, seed, model="ISING1"):
    """Lattices drawn from the exact Boltzmann law of 4 x 4, with their exact log p."""
    states = ising.all_states(N_X, N_Y)
    e = ising.energy(states, model)
    log_p = -beta * e - ising.exact_log_z(N_X, N_Y, beta, model)
    idx = np.random.default_rng(seed).choice(len(states), size=n, p=np.exp(log_p) / np.exp(log_p).sum())
    return e[idx], log_p[idx]


def test_estimates_are_exact_when_q_is_the_boltzmann_law():
    e, log_q = _exact_draws(0.3, 20_000, 0)
    r = th.estimates(e, log_q, 0.3, N_X * N_Y)
    exact = th.exact_values(N_X, N_Y, 0.3, "ISING1")
    assert r["ess_fraction"] == pytest.approx(1.0)
    assert r["F_per_site"] == pytest.approx(exact["F_exact_per_site"], rel=1e-12)   # constant weights
    assert abs(r["U_per_site"] - exact["U_exact_per_site"]) < 3 * r["U_err"]
    assert abs(r["C_per_site"] - exact["C_exact_per_site"]) < 3 * r["C_err"]
    f_q, _ = th.variational_free_energy(e, log_q, 0.3, N_X * N_Y)
    assert f_q == pytest.approx(exact["F_exact_per_site"], rel=1e-12)                # KL(p || p) = 0


@pytest.mark.parametrize("model", ["ISING1", "ISING2"])
def test_reweighting_to_other_betas_covers_the_exact_values(model):
    """Draws at beta 0.3 reweighted to 0.2 ... 0.4: within 3 standard errors of exact; the
    error bars are honest (not huge): below 2 % of the value."""
    e, log_q = _exact_draws(0.3, 50_000, 1, model)
    for beta in (0.2, 0.25, 0.35, 0.4):
        r, x = th.estimates(e, log_q, beta, N_X * N_Y), th.exact_values(N_X, N_Y, beta, model)
        for key in ("F", "U", "C"):
            assert abs(r[f"{key}_per_site"] - x[f"{key}_exact_per_site"]) < 3 * r[f"{key}_err"], (beta, key)
            assert r[f"{key}_err"] < 0.02 * abs(x[f"{key}_exact_per_site"])


def test_degenerate_weights_are_reported_not_estimated():
    e, log_q = _exact_draws(0.1, 2000, 2)
    r = th.estimates(e, log_q, 3.0, N_X * N_Y)     # far colder: a handful of draws carry all weight
    assert r["ess_fraction"] < th.MIN_ESS and r["F_per_site"] is None and "ESS" in r["note"]


def test_histogram_kl():
    ee, pp = ising.exact_energy_distribution(N_X, N_Y, 0.3)
    e, _ = _exact_draws(0.3, 50_000, 3)
    assert th.histogram_kl(e, ee, pp) < 2e-3          # ~ (bins - 1) / (2 N) for exact draws
    e_hot, _ = _exact_draws(0.1, 50_000, 3)
    assert th.histogram_kl(e_hot, ee, pp) > 0.05
    with pytest.raises(ValueError, match="allowed level"):
        th.histogram_kl(np.array([1.0]), ee, pp)


@pytest.mark.slow
def test_cli_writes_thermo_json_and_plots(ising_file, potts_file, tmp_path, capsys):
    import probability_trainer

    kw = dict(n_x=N_X, n_y=N_Y, burn_in=20)
    train = ising_file("train_data.hdf5", betas=(0.3,), n_samples=256, seed=1, **kw)
    other = ising_file("val_data_beta_dot25.hdf5", betas=(0.3,), n_samples=64, seed=2, **kw)
    runs = {}
    for flags in ([], ["--bidirectional"]):
        probability_trainer.main(["--train_path", str(train), "--val_paths", str(other), "--test_path", str(other),
                                  "--hidden_size", "8", "--max_epochs", "1", "--batch_size", "64", "--lr", "3e-3",
                                  "--no-progress_bar", "--accelerator", "cpu", "--output_dir", str(tmp_path / "runs"),
                                  *flags])
    runs = sorted((tmp_path / "runs" / "probability").iterdir())       # GRU_1L_1H_Bi_hid8, GRU_1L_1H_hid8
    out = tmp_path / "thermo"
    assert th.main(["--run", str(runs[1]), "--n_samples", "3000", "--out", str(out), "--mc_path", str(train)]) == 0
    report = json.loads((out / "thermo.json").read_text())
    assert (out / "thermo.md").read_text().startswith("| β | ESS/N |")
    for key in ("beta_train", "n_x", "n_y", "hamiltonian", "n_samples", "variational_F_per_site", "rows"):
        assert key in report
    assert report["beta_train"] == pytest.approx(0.3) and report["n_samples"] == 3000
    row = next(r for r in report["rows"] if r["beta"] == pytest.approx(0.3))
    for key in ("beta", "F_per_site", "F_err", "F_exact_per_site", "U_per_site", "U_err", "U_exact_per_site",
                "C_per_site", "C_exact_per_site", "ess_fraction"):
        assert key in row
    # the variational bound: F_q >= F (up to its error), KL(q || p) >= 0
    assert report["variational_F_per_site"] > row["F_exact_per_site"] - 3 * report["variational_F_err"]
    for name in ("thermodynamics_estimates.png", "thermodynamics_samples.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    potts3 = potts_file("val.hdf5", n_samples=32, seed=2, beta=0.8)     # a Potts file for an Ising run
    # each a one-line error (conftest `user_error`) naming what is at fault: no run, a conditional
    # model (not normalised), a Potts file for an Ising run
    for argv, named in (([str(tmp_path)], tmp_path), ([str(runs[0])], runs[0]),
                        ([str(runs[1]), "--mc_path", str(potts3)], potts3.name)):
        code = main_guard(th.main, ["--run", *argv, "--n_samples", "100", "--out", str(tmp_path / "x")])
        user_error(code, capsys.readouterr().err, named)
        assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- the q-state Potts model
def _potts_model(seed, n_x=2, n_y=3, q=3, beta=0.5):
    """A tiny untrained causal q = 3 Potts model (any weights: importance sampling is exact in
    expectation for any proposal with full support)."""
    torch.manual_seed(seed)
    return ProbabilityModel(hidden_size=8, beta=beta, n_x=n_x, n_y=n_y, q=q, hamiltonian=f"POTTS{q}").eval()


def _enumerated(n_x, n_y, q, beta):
    """(log Z, U, C) of the whole lattice by summing over every state."""
    import potts

    log_w = -beta * potts.energy(potts.all_states(n_x, n_y, q))
    log_z = float(np.logaddexp.reduce(log_w))
    levels, p = potts.enumerated_distribution(n_x, n_y, q, beta)
    u = float(p @ levels)
    return log_z, u, beta**2 * float(p @ (levels - u) ** 2)


def test_potts_estimates_agree_with_enumeration():
    """2 x 3, q = 3 (729 states): the estimates of log Z, U, C from an untrained causal Potts
    model's draws lie within 3 standard errors of exact enumeration at three betas (ESS/N 0.64 ...
    0.02), with error bars below 5 % of the value (measured: within 1.0 standard errors, bars up
    to 3.5 %); the exact columns are potts.exact_* (which agree with enumeration)."""
    import potts

    n_x, n_y = 2, 3
    s = n_x * n_y
    model = _potts_model(0)
    report, arrays = th.thermodynamics(model, 40_000, betas=[0.25, 0.75], seed=3)
    assert report["hamiltonian"] == "POTTS3" and [r["beta"] for r in report["rows"]] == [0.25, 0.5, 0.75]
    grids = arrays["grids"]
    assert set(np.unique(grids)) == {0, 1, 2}
    np.testing.assert_array_equal(arrays["energies"], potts.energy(grids))           # the Potts energy
    with torch.no_grad():                                                            # log q is the model's
        np.testing.assert_allclose(arrays["log_q"][:500], model.log_prob(torch.as_tensor(grids[:500])).double(),
                                   atol=1e-4)
    for r in report["rows"]:
        b = r["beta"]
        log_z, u, c = _enumerated(n_x, n_y, 3, b)
        assert r["ess_fraction"] > th.MIN_ESS
        for key, value in (("F", -log_z / b / s), ("U", u / s), ("C", c / s)):
            assert abs(r[f"{key}_per_site"] - value) < 3 * r[f"{key}_err"], (b, key)
            assert r[f"{key}_err"] < 0.05 * abs(value), (b, key)
            assert r[f"{key}_exact_per_site"] == pytest.approx(value, rel=1e-9), (b, key)
        assert r["F_exact_per_site"] == pytest.approx(-potts.exact_log_z(n_x, n_y, 3, b) / b / s, rel=1e-12)
        assert r["U_exact_per_site"] == pytest.approx(potts.exact_mean_energy(n_x, n_y, 3, b) / s, rel=1e-12)
        assert r["C_exact_per_site"] == pytest.approx(potts.exact_heat_capacity(n_x, n_y, 3, b) / s, rel=1e-12)
    assert report["kl_q_p_nats"] > 0 and report["energy_kl_nats"]["reweighted"] < report["energy_kl_nats"]["raw"]
    assert th.markdown_rows(report).startswith("q = 3 Potts model (POTTS3), 2 × 3, trained at β = 0.5\n\n| β |")


def test_potts_lattice_without_exact_values_has_none():
    """A lattice the transfer matrix refuses has no exact values (None, a dash in the table), not an error."""
    assert set(th.exact_values(40, 40, 0.8, "POTTS3").values()) == {None}
    with pytest.raises(ValueError):
        th.exact_energy_distribution(40, 40, 0.8, "POTTS3")
    e, log_q = _exact_draws(0.3, 2000, 4)
    row = {**th.estimates(e, log_q, 0.3, 16), **th.exact_values(40, 40, 0.8, "POTTS3")}
    table = th.markdown_rows({"hamiltonian": "POTTS3", "n_x": 40, "n_y": 40, "beta_train": 0.8, "rows": [row]})
    assert table.splitlines()[-1].count("| — |") == 3


@pytest.mark.slow
def test_cli_on_a_potts_run(potts_file, ising_file, tmp_path, capsys):
    import potts
    import probability_trainer

    train = potts_file("train.hdf5", n_samples=64, seed=1, beta=0.8)
    other = potts_file("val.hdf5", n_samples=32, seed=2, beta=0.8)
    probability_trainer.main(["--train_path", str(train), "--val_paths", str(other), "--test_path", str(other),
                              "--hidden_size", "8", "--max_epochs", "1", "--batch_size", "16", "--no-progress_bar",
                              "--accelerator", "cpu", "--output_dir", str(tmp_path / "runs")])
    run = tmp_path / "runs" / "probability" / "GRU_1L_1H_hid8_Q3"
    out = tmp_path / "thermo"
    assert th.main(["--run", str(run), "--n_samples", "2000", "--out", str(out), "--mc_path", str(train)]) == 0
    report = json.loads((out / "thermo.json").read_text())
    assert report["hamiltonian"] == "POTTS3" and report["beta_train"] == pytest.approx(0.8)
    row = next(r for r in report["rows"] if r["beta"] == pytest.approx(0.8))
    assert row["U_exact_per_site"] == pytest.approx(potts.exact_mean_energy(4, 4, 3, 0.8) / 16, rel=1e-12)
    assert report["variational_F_per_site"] > row["F_exact_per_site"] - 3 * report["variational_F_err"]
    assert (out / "thermo.md").read_text().startswith("q = 3 Potts model (POTTS3), 4 × 4")
    for name in ("thermodynamics_estimates.png", "thermodynamics_samples.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ising = ising_file("val_data_beta_dot25.hdf5", betas=(0.3,), n_samples=64, seed=2, n_x=4, n_y=4, burn_in=20)
    capsys.readouterr()
    for argv, named in ((["--mc_path", str(ising)], ising.name),   # Ising lattices for a Potts run
                        (["--order", "cols"], "--order")):          # the causal model reads only the rows snake
        code = main_guard(th.main, ["--run", str(run), *argv, "--n_samples", "100", "--out", str(tmp_path / "x")])
        user_error(code, capsys.readouterr().err, named)
        assert not (tmp_path / "x").exists()
