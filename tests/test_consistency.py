"""consistency.py: the checks pass on samples of the exact law and fail on a wrong one; the
file summaries match what the generator was asked for; the plots are written."""
import h5py
import numpy as np
import pytest

import consistency as cc
from ising import exact_energy_distribution

N_X, N_Y = 4, 4


def _synthetic_file(path, beta_label, energies, n_x=N_X, n_y=N_Y):
    """A data file whose stored energies are the given ones (grids are not read by the check)."""
    n = len(energies)
    with h5py.File(path, "w") as f:
        f.attrs.update(model="ISING1", n_x=n_x, n_y=n_y, betas=np.array([beta_label]))
        f["true_energies"] = np.asarray(energies, np.float32)
        f["beta"] = np.full(n, beta_label, np.float32)
        f["ising_grids"] = np.ones((n, n_x, n_y), np.int8)
    return path


def _exact_sample(beta, n, seed):
    e, p = exact_energy_distribution(N_X, N_Y, beta)
    return np.random.default_rng(seed).choice(e, size=n, p=p)


def test_samples_of_the_exact_law_pass(tmp_path):
    energies = _exact_sample(0.3, 20_000, seed=0)
    (c,) = cc.energy_histogram_check(_synthetic_file(tmp_path / "ok.hdf5", 0.3, energies))
    levels, counts = np.unique(energies, return_counts=True)
    assert np.array_equal(c["counts"][np.searchsorted(c["energies"], levels)], counts)  # binned on the right levels
    assert c["n"] == 20_000 and c["stray_samples"] == 0 and c["counts"].sum() == 20_000
    assert c["exact_probs"].sum() == pytest.approx(1.0)
    assert c["p_value"] > 1e-3
    assert abs(c["mean"] - c["exact_mean"]) < 4 * c["sem"]
    assert c["sem"] == pytest.approx(energies.std(ddof=1) / np.sqrt(len(energies)))


def test_samples_of_another_beta_fail(tmp_path):
    # drawn at beta 0.35 but labelled 0.3: the histogram test and the mean both see it
    energies = _exact_sample(0.35, 20_000, seed=1)
    (c,) = cc.energy_histogram_check(_synthetic_file(tmp_path / "wrong.hdf5", 0.3, energies))
    assert c["p_value"] < 1e-6
    assert abs(c["mean"] - c["exact_mean"]) > 5 * c["sem"]


def test_impossible_energies_are_counted_as_stray(tmp_path):
    # 4 x 4 ISING1 energies are multiples of 4 in -32 ... 32, never +-28 (one flip from a ground state costs 8)
    energies = np.concatenate([_exact_sample(0.3, 1000, seed=2), [-126.0, -28.0, 2.0]])
    (c,) = cc.energy_histogram_check(_synthetic_file(tmp_path / "stray.hdf5", 0.3, energies))
    assert c["stray_samples"] == 3 and c["counts"].sum() == 1000


def test_tables_by_hand():
    checks = [{"file": "/x/eval.hdf5", "beta": 0.3, "n": 10, "chi2": 2.0, "dof": 3, "p_value": 0.5, "p_mc": 0.4,
               "bins": 4, "stray_samples": 0, "mean": -20.0, "sem": 0.5, "exact_mean": -21.0, "exact_sd": 3.0}]
    assert cc.histogram_table(checks) == [{"file": "eval.hdf5", "beta": 0.3, "n": 10, "chi2": 2.0, "dof": 3,
                                           "p_value": 0.5, "p_mc": 0.4, "bins": 4, "stray_samples": 0}]
    assert cc.mean_energy_table(checks) == [{"file": "eval.hdf5", "beta": 0.3, "mean": -20.0, "sem": 0.5,
                                             "exact": -21.0, "z": 2.0, "chi2 p": 0.5, "p (MC)": 0.4}]
    # every sample in one state: z in the exact law's standard error
    checks[0].update(sem=0.0, mean=-21.3)
    assert cc.mean_energy_table(checks)[0]["z"] == pytest.approx(-0.3 / (3.0 / np.sqrt(10)))


def test_moments_against_exact_and_a_wrong_beta(tmp_path):
    """U/N and C/N with jackknife errors: exact-law samples within them, a 10 % wrong beta's far outside."""
    ok = cc.moments_check(_synthetic_file(tmp_path / "ok.hdf5", 0.3, _exact_sample(0.3, 20_000, seed=3)))[0]
    assert abs(ok["z_U"]) < 3 and abs(ok["z_C"]) < 3 and ok["n"] == 20_000
    e, p = exact_energy_distribution(N_X, N_Y, 0.3)
    assert ok["U_exact"] == pytest.approx((e * p).sum() / 16)
    bad = cc.moments_check(_synthetic_file(tmp_path / "bad.hdf5", 0.3, _exact_sample(0.33, 20_000, seed=4)))[0]
    assert abs(bad["z_U"]) > 5
    assert cc.moments_table([ok])[0]["exact U/N"] == ok["U_exact"]


SPARSE = np.array([0.835, 0.153, 0.0115, 0.0005])      # a ±J glass's levels at low T (8 x 8, beta 1.56)


def test_the_monte_carlo_p_value_is_calibrated_where_the_chi_square_law_is_not():
    """Draws of the exact law with a pooled bin expecting ~6 counts: p_mc is uniform (5 % below 0.05),
    the chi-square law's p is too small in the tail; a law with 3x the upper levels' weight fails."""
    from estimators import chi_square_test

    rng = np.random.default_rng(0)
    draws = rng.multinomial(500, SPARSE, size=300)
    p_mc = np.array([cc.monte_carlo_p_value(d, SPARSE, n_draws=2000, seed=k) for k, d in enumerate(draws)])
    assert 0.02 <= np.mean(p_mc < 0.05) <= 0.09
    # the 8 x 8 file of generate_ising.py's README example, seed 11, 500 samples at beta 1.56
    seen = np.array([406, 77, 16, 1])
    asymptotic = chi_square_test(seen, SPARSE)[2]
    assert asymptotic < 1e-4 and cc.monte_carlo_p_value(seen, SPARSE) > 3 * asymptotic
    heavy = SPARSE * [1, 3, 3, 3]
    assert cc.monte_carlo_p_value(rng.multinomial(500, heavy / heavy.sum()), SPARSE) < 1e-3
    assert cc.monte_carlo_p_value([500, 0, 0, 0], [1.0, 0, 0, 0]) == 1.0       # one bin: no test


def test_generated_file_summaries_and_plots(ising_file, tmp_path):
    betas = (0.2, 0.3, 0.45)
    path = ising_file("eval.hdf5", betas=betas, n_samples=400, seed=3)
    summary = cc.data_file_summary(path)
    assert (summary["n"], summary["lattice"], summary["n_betas"], summary["betas"]) == (1200, "4x4", 3, "0.2…0.45")
    checks = cc.energy_histogram_check(path)
    assert [c["beta"] for c in checks] == pytest.approx(betas) and [c["n"] for c in checks] == [400] * 3
    assert all(c["stray_samples"] == 0 for c in checks)  # the sampler's energies are all possible ones
    diag = cc.sampler_diagnostics(path)
    assert diag["betas"] == pytest.approx(betas) and len(diag["table"]) == 3
    assert np.all((diag["acceptance"] > 0) & (diag["acceptance"] < 1)) and diag["thin"] >= 1
    mags = cc.magnetisation_by_beta(path)
    assert sorted(mags) == pytest.approx(betas) and all(len(m) == 400 and np.all(np.abs(m) <= 1) for m in mags.values())

    cc.plot_energy_histograms(checks, tmp_path / "h.png")
    cc.plot_mean_energy(checks, tmp_path / "m.png")
    cc.plot_sampler_diagnostics(diag, tmp_path / "s.png")
    cc.plot_magnetisation(mags, tmp_path / "g.png")
    for name in ("h.png", "m.png", "s.png", "g.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


# ------------------------------------------------------------------------ the q-state Potts model
def _potts_file(path, beta, energies, n_x=N_X, n_y=N_Y, q=3):
    """A Potts data file (attribute q) whose stored energies are the given ones."""
    n = len(energies)
    with h5py.File(path, "w") as f:
        f.attrs.update(hamiltonian=f"POTTS{q}", q=q, n_x=n_x, n_y=n_y, betas=np.array([beta]))
        f["true_energies"] = np.asarray(energies, np.float32)
        f["beta"] = np.full(n, beta, np.float32)
        f["ising_grids"] = np.zeros((n, n_x, n_y), np.int8)
    return path


def _potts_sample(beta, n, seed):
    import potts

    e, p = potts.exact_energy_distribution(N_X, N_Y, 3, beta)
    return np.random.default_rng(seed).choice(e, size=n, p=p)


def test_potts_files_are_checked_against_the_potts_transfer_matrix(tmp_path):
    """The exact law of the file's q (never the Ising one): samples of it pass, of another beta fail."""
    import potts

    energies = _potts_sample(1.0, 20_000, seed=0)
    (c,) = cc.energy_histogram_check(_potts_file(tmp_path / "ok.hdf5", 1.0, energies))
    assert c["exact_mean"] == pytest.approx(potts.exact_mean_energy(N_X, N_Y, 3, 1.0), rel=1e-12)
    assert c["stray_samples"] == 0 and c["p_value"] > 1e-3 and abs(c["mean"] - c["exact_mean"]) < 4 * c["sem"]
    (c,) = cc.energy_histogram_check(_potts_file(tmp_path / "wrong.hdf5", 0.9, energies))
    assert c["p_value"] < 1e-6 and abs(c["mean"] - c["exact_mean"]) > 5 * c["sem"]
    with pytest.raises(ValueError, match=r"^POTTS3 lattices of 16 x 16: exact density of states") as err:
        cc.energy_histogram_check(_potts_file(tmp_path / "big.hdf5", 1.0, [-512.0], n_x=16, n_y=16))
    assert "\n" not in str(err.value)


def test_generated_potts_file_summaries_and_plots(potts_file, tmp_path):
    import potts

    path = potts_file("potts_eval.hdf5", n_samples=300, beta=1.2, seed=4)
    summary = cc.data_file_summary(path)
    assert (summary["hamiltonian"], summary["n"], summary["lattice"]) == ("POTTS3", 300, "4x4")
    (c,) = cc.energy_histogram_check(path)
    assert c["n"] == 300 and c["stray_samples"] == 0 and c["energies"].max() == 0.0  # Potts levels, -32 ... 0
    diag = cc.sampler_diagnostics(path)
    assert diag["beta_c"] == pytest.approx(potts.beta_c(3)) and cc.critical_beta(path) == diag["beta_c"]
    mags = cc.magnetisation_by_beta(path)
    with h5py.File(path, "r") as f:
        (m,) = mags.values()
        np.testing.assert_array_equal(m, potts.zq_magnetisation(f["ising_grids"][:], 3))   # order parameter, 0 ... 1
    cc.plot_energy_histograms([c], tmp_path / "h.png")
    cc.plot_sampler_diagnostics(diag, tmp_path / "s.png")
    cc.plot_magnetisation(mags, tmp_path / "g.png", beta_c=diag["beta_c"])
    for name in ("h.png", "s.png", "g.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
