"""reweighting.py against exact results: Kaufman's finite-lattice U/N, C/N between sampled betas (with a
power check at a wrong beta), enumerated |m|, chi, U4, Ferrenberg-Swendsen on exact histograms, and a
planted crossing of exactly known U4 curves that the reweighted root recovers without bias while the
chord between grid points is biased. Seeds are fixed; the tolerance (Z standard errors) is fixed in advance."""
import math
from functools import lru_cache

import numpy as np
import pytest
from scipy.optimize import brentq

import estimators
import ising
import reweighting as rw

Z = 4.0


def _sample(L, betas, chains, sweeps, seed):
    """The repo's sampler (ordered start, 500 burn-in sweeps, every sweep kept): energies, m (B, K, n)."""
    from sampler import Sampler

    s = Sampler(L, L, "ISING1", betas, chains, seed)
    s.order()
    s.burn(500)
    es, ms = [], []
    for spins, e in s.stream(sweeps, 1):
        es.append(e.reshape(len(e), chains, len(betas)))
        ms.append(spins.reshape(len(e), chains, len(betas), -1).mean(-1, dtype=np.float64))
    return np.concatenate(es).astype(np.float64).transpose(2, 1, 0), np.concatenate(ms).transpose(2, 1, 0)


@lru_cache(maxsize=None)
def _enumerated(L):
    """Every state of the L x L lattice: energies, m (2^(L^2),) (read-only, cached)."""
    s = ising.all_states(L, L)
    e, m = ising.energy(s).astype(np.float64), s.reshape(len(s), -1).mean(1, dtype=np.float64)
    e.flags.writeable = m.flags.writeable = False
    return e, m


def _boltzmann(e, beta):
    w = np.exp(-beta * (e - e.min()))
    return w / w.sum()


def _exact(L, beta):
    """U/N, C/N, <|m|>, chi/N, U4 by Boltzmann-weighting every state."""
    e, m = _enumerated(L)
    w = np.exp(-beta * (e - e.min()))
    w /= w.sum()
    u = w @ e
    return {"U": u / L ** 2, "C": beta ** 2 * (w @ (e - u) ** 2) / L ** 2, "abs_m": w @ np.abs(m),
            "chi": beta * L ** 2 * (w @ m ** 2 - (w @ np.abs(m)) ** 2),
            "binder": estimators.binder_cumulant(w @ m ** 2, w @ m ** 4)}


# ----------------------------------------------------------------------------- (a) against Kaufman
@pytest.fixture(scope="module")
def ising8():
    betas = [0.38, 0.41, 0.44, 0.47, 0.50]
    return rw.Histograms(betas, *_sample(8, betas, 16, 2000, seed=7), n_sites=64)


MIDS = np.array([0.395, 0.425, 0.455, 0.485])


def test_energy_and_heat_capacity_between_grid_points_match_kaufman(ising8):
    assert ising8.overlap.min() > 0.2 and np.all(ising8.g >= 1)
    val, err = ising8.jackknife(MIDS)
    exact = np.array([ising.kaufman_moments(8, 8, b) for b in MIDS])
    u_ex, c_ex = exact[:, 0] / 64, MIDS ** 2 * exact[:, 1] / 64
    assert np.all(err["U"] > 0) and np.all(err["U"] < 0.01) and np.all(err["C"] < 0.05)
    z_u, z_c = (val["U"] - u_ex) / err["U"], (val["C"] - c_ex) / err["C"]
    assert np.all(np.abs(z_u) < Z) and np.all(np.abs(z_c) < Z), (z_u, z_c)
    # power: the same curves against the exact values 0.01 off in beta are rejected at every point
    wrong = np.array([ising.kaufman_moments(8, 8, b + 0.01)[0] / 64 for b in MIDS])
    assert np.all(np.abs(val["U"] - wrong) / err["U"] > Z), (val["U"] - wrong) / err["U"]


def test_magnetisation_susceptibility_and_binder_match_enumeration():
    """4 x 4, independent samples of the enumerated law at 0.3 ... 0.6 (the sampler's own correlations are
    tested on 8 x 8 above), reweighted to the midpoints."""
    rng = np.random.default_rng(8)
    e, m = _enumerated(4)
    betas, mids = np.array([0.3, 0.4, 0.5, 0.6]), np.array([0.35, 0.45, 0.55])
    i = np.array([rng.choice(len(e), size=(16, 2000), p=_boltzmann(e, b)) for b in betas])
    val, err = rw.Histograms(betas, e[i], m[i], n_sites=16).jackknife(mids)
    for k, b in enumerate(mids):
        exact = _exact(4, b)
        for key in ("abs_m", "chi", "binder", "U", "C"):
            assert 0 < err[key][k] < 0.05 and abs(val[key][k] - exact[key]) < Z * err[key][k], (key, b, val, exact)


# ----------------------------------------------------------------------------- (c) exact histograms
def test_two_level_system_is_reweighted_exactly():
    eps = math.log(2.0)        # at beta 1 and 2 the Boltzmann ratios are 1/2 and 1/4: exact integer histograms
    e1, e2 = [0.0] * 100 + [eps] * 50, [0.0] * 120 + [eps] * 30
    h = rw.Histograms([1.0, 2.0], np.array([e1 * 2, e2 * 2]).reshape(2, 2, 150), g=1.0)
    fit = h.fit()
    assert fit.f[1] == pytest.approx(math.log(1.5 / 1.25), abs=1e-12)        # f = -log Z, Z = 1 + e^{-beta eps}
    for beta in (0.3, 1.5, 4.0):
        p = math.exp(-beta * eps) / (1 + math.exp(-beta * eps))
        th = fit.thermodynamics(beta)
        assert th["U"] == pytest.approx(eps * p, abs=1e-12)
        assert th["C"] == pytest.approx(beta ** 2 * eps ** 2 * p * (1 - p), abs=1e-12)
    # float energies (every value distinct: 600 levels) give the same law, and rounded back, the same numbers
    noisy = np.array([e1 * 2, e2 * 2]).reshape(2, 2, 150) + np.random.default_rng(0).normal(0, 1e-9, (2, 2, 150))
    exact = fit.thermodynamics(np.array([0.3, 1.5]))["U"]
    assert rw.Histograms([1.0, 2.0], noisy, g=1.0).fit().thermodynamics(np.array([0.3, 1.5]))["U"] == \
        pytest.approx(exact, abs=1e-8)
    rounded = rw.Histograms([1.0, 2.0], noisy, g=1.0, resolution=1e-6).fit()
    assert len(rounded.levels) == 2
    assert rounded.thermodynamics(np.array([0.3, 1.5]))["U"] == pytest.approx(exact, abs=1e-6)


def test_2x2_lattice_from_exact_histograms_equals_the_enumerated_law():
    e, m = _enumerated(2)                  # levels -8, 0, 8: at beta = ln(2)/8, ln(4)/8 integer weights per state
    betas = [math.log(2) / 8, math.log(4) / 8]
    mult = [np.rint(2 * 2.0 ** (-e / 8)).astype(int) * 41, np.rint(4 * 4.0 ** (-e / 8)).astype(int) * 17]
    assert [k.sum() for k in mult] == [1394, 1394]
    es = np.stack([np.repeat(e, k) for k in mult]).reshape(2, 2, 697)
    ms = np.stack([np.repeat(m, k) for k in mult]).reshape(2, 2, 697)
    fit = rw.Histograms(betas, es, ms, n_sites=4, g=1.0).fit()
    for beta in (0.05, 0.1, 0.2, 0.4):
        got, exact = fit.thermodynamics(beta), _exact(2, beta)
        for key in exact:
            assert got[key] == pytest.approx(exact[key], abs=1e-10), (key, beta)


def test_disjoint_histograms_are_refused_and_the_overlapping_range_is_found():
    rng = np.random.default_rng(0)
    e = np.stack([rng.normal(mu, 1.0, (2, 500)) for mu in (0.0, -1.0, -2.0, -50.0, -51.0)])   # gap after the 3rd
    with pytest.raises(ValueError, match="overlap"):
        rw.Histograms([1, 2, 3, 4, 5], e)
    assert rw.overlapping_range([1, 2, 3, 4, 5], e, (1.5, 2.5)) == slice(0, 3)
    with pytest.raises(ValueError, match="do not overlap"):
        rw.overlapping_range([1, 2, 3, 4, 5], e, (2.5, 4.5))
    h = rw.Histograms.around([1, 2, 3, 4, 5], e, None, 1, (4.2, 4.8), g=1.0)
    assert list(h.betas) == [4.0, 5.0] and np.isnan(h.fit().binder(4.5))


# ----------------------------------------------------------------------------- (b) a planted crossing
GRID = np.arange(0.30, 0.61, 0.05)     # coarse on purpose: the chord across 0.45..0.50 is visibly biased


def _iid(L, rng, chains=16, n=500):
    """Independent samples of the exact law of L x L at every GRID beta: Histograms with g = 1."""
    e, m = _enumerated(L)
    i = np.array([np.searchsorted(_cdf(L, b), rng.random((chains, n))) for b in GRID])
    return rw.Histograms(GRID, e[i], m[i], n_sites=L * L, g=1.0)


@lru_cache(maxsize=None)
def _cdf(L, beta):
    c = np.cumsum(_boltzmann(_enumerated(L)[0], beta))
    return c / c[-1]


def test_reweighted_crossing_is_unbiased_where_the_chord_is_not():
    planted = brentq(lambda b: _exact(4, b)["binder"] - _exact(2, b)["binder"], 0.4, 0.55, xtol=1e-14)
    rng = np.random.default_rng(11)
    roots, chords, errs = [], [], []
    for r in range(40):
        h2, h4 = _iid(2, rng), _iid(4, rng)
        f2, f4 = h2.fit(), h4.fit()
        if r < 12:             # the jackknife of the whole procedure on some replicas
            c = rw.crossing(h2, h4)
            roots.append(c["beta"])
            errs.append(c["beta_err"])
        else:
            roots.append(rw._rising_root(f2, f4, GRID[0], GRID[-1]))
        d = f4.binder(GRID) - f2.binder(GRID)                      # U4 at the grid points themselves
        chords.append(estimators.crossing(GRID, np.zeros_like(d), d, direction=+1)[0])
    roots, chords = np.array(roots), np.array(chords)
    se = roots.std(ddof=1) / math.sqrt(len(roots))
    assert abs(roots.mean() - planted) < Z * se, (roots.mean(), planted, se)
    # the chord on the same data: biased by ~+0.0066 (curvature), far beyond its own replica error
    assert (chords.mean() - planted) / (chords.std(ddof=1) / math.sqrt(len(chords))) > 3 * Z
    # the jackknife error bar describes the spread between replicas (within a factor 1.5: with 12 and 40
    # replicas each is known to ~10 %)
    assert 1 / 1.5 < math.sqrt(np.mean(np.square(errs))) / roots.std(ddof=1) < 1.5, (errs, roots.std(ddof=1))


def test_single_histogram_reweighting_is_the_one_beta_case():
    rng = np.random.default_rng(3)
    e, m = _enumerated(4)
    w = np.exp(-0.44 * (e - e.min()))
    i = rng.choice(len(e), size=(8, 4000), p=w / w.sum())
    h = rw.Histograms([0.44], e[i][None], m[i][None], n_sites=16, g=1.0)
    val, err = h.jackknife(np.array([0.42, 0.44, 0.46]))
    for k, b in enumerate((0.42, 0.44, 0.46)):
        exact = _exact(4, b)
        assert all(abs(val[key][k] - exact[key]) < Z * err[key][k] for key in ("U", "C", "binder")), (b, val, exact)


def test_all_pairs_and_the_finite_size_extrapolation():
    rng = np.random.default_rng(5)
    cs = rw.all_crossings({L: _iid(L, rng, chains=4, n=500) for L in (2, 3, 4)})
    assert [c["sizes"] for c in cs] == [[2, 3], [2, 4], [3, 4]] and all(c["beta"] is not None for c in cs)
    L = np.array([8.0, 16, 32, 64])
    T = 2.269 + 0.7 * L ** -2.75
    fit = rw.extrapolate(L, T, np.full(4, 1e-4), 2.75)
    assert fit["T_inf"] == pytest.approx(2.269, abs=1e-9) and fit["a"] == pytest.approx(0.7, abs=1e-6)
    assert fit["systematic"] == pytest.approx(0.7 * 64 ** -2.75) and fit["dof"] == 2 and fit["chi2"] < 1e-12
