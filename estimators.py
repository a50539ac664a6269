"""Estimators of sampled data, once: scores, goodness of fit, autocorrelation, finite-size scaling.

Pure numpy. `centred_rmse` (the score: energies are compared up to a constant), `level_counts`
(energies binned on the exact levels), `chi_square_test` (goodness of fit against an exact law),
`integrated_autocorr_time` (Sokal's windowed tau_int), `binder_cumulant`, `jackknife` and the
crossing of two curves (`crossing`, `linear_root`). `ising.py` re-exports them under their old
spelling (`ising.centred_rmse`), which users' code and the shipped weights' tests use.
"""
from __future__ import annotations

import numpy as np


# ----------------------------------------------------------------------------- statistics
def rmse(pred, true) -> float:
    """Root mean square of pred - true (float64)."""
    d = np.asarray(pred, np.float64) - np.asarray(true, np.float64)
    return float(np.sqrt(np.mean(d * d)))


def centred_rmse(pred, true) -> float:
    """The score: RMSE after centring predictions and truths by their own means, i.e. the
    spread of the error (a causal model knows E = -(1/beta) log p only up to log Z / beta)."""
    d = np.asarray(pred, np.float64) - np.asarray(true, np.float64)
    return float(np.sqrt(np.mean((d - d.mean()) ** 2)))


def level_counts(energies, levels, weights=None):
    """Energies binned on the exact levels (sorted float64 (K,)): (counts float64 (K,), strays),
    strays the number of energies that are no level (the exact law calls them impossible).
    Energies are multiples of 1/2, exact in float32, so a level is matched to 1e-6."""
    e, levels = np.asarray(energies, np.float64), np.asarray(levels, np.float64)
    idx = np.clip(np.searchsorted(levels, e - 1e-6), 0, len(levels) - 1)
    hit = np.abs(levels[idx] - e) < 1e-6
    w = None if weights is None else np.asarray(weights, np.float64)[hit]
    return np.bincount(idx[hit], weights=w, minlength=len(levels)).astype(np.float64), int((~hit).sum())

def chi_square_test(observed, expected_probs, min_expected: float = 5.0):
    """Pearson goodness of fit of counts against probabilities; bins with expected count
    below min_expected are pooled with their neighbours (from the low end up, the remaining
    tail joins the last bin). Returns (chi2, dof, p_value)."""
    from scipy.stats import chi2 as chi2_dist

    observed = np.asarray(observed, np.float64)
    expected = np.asarray(expected_probs, np.float64) * observed.sum()
    obs_bins, exp_bins, o_acc, e_acc = [], [], 0.0, 0.0
    for o, e in zip(observed, expected):
        o_acc += o
        e_acc += e
        if e_acc >= min_expected:
            obs_bins.append(o_acc)
            exp_bins.append(e_acc)
            o_acc = e_acc = 0.0
    if obs_bins:
        obs_bins[-1] += o_acc
        exp_bins[-1] += e_acc
    o, e = np.array(obs_bins), np.array(exp_bins)
    stat = float(((o - e) ** 2 / e).sum())
    dof = max(len(o) - 1, 1)
    return stat, dof, float(chi2_dist.sf(stat, dof))


def integrated_autocorr_time(series, c: float = 5.0) -> float:
    """tau_int (in steps of the series) of (n_chains, T) or (T,) series.

    tau = 1 + 2 sum_{t=1}^{W} rho(t), rho averaged over chains (each centred on its own mean),
    window W the smallest with W >= c tau(W) (Sokal's automatic windowing). ~1 for
    independent steps.
    """
    x = np.asarray(series, np.float64)
    if x.ndim == 1:
        x = x[None]
    x = x - x.mean(axis=1, keepdims=True)
    T = x.shape[1]
    if T < 4 or not np.any(x):
        return 1.0
    f = np.fft.rfft(x, n=2 * T, axis=1)
    acf = np.fft.irfft(f * np.conj(f), axis=1)[:, :T].sum(axis=0) / np.arange(T, 0, -1)
    if acf[0] <= 0:
        return 1.0
    taus = 2 * np.cumsum(acf / acf[0]) - 1
    for W in range(1, T):
        if W >= c * taus[W]:
            return float(max(taus[W], 1e-9))
    return float(taus[-1])


# ----------------------------------------------------------------------------- finite-size scaling
# Estimators for phase_diagram.py: the Binder cumulant, the leave-one-out jackknife over
# independent samples (there: one per Monte Carlo chain), and where two curves cross.
def binder_cumulant(m2, m4, components: int = 1):
    """U4 = 1 - n <m^4> / ((n + 2) <m^2>^2) from the moments <m^2>, <m^4> (arrays broadcast, float64) of an
    order parameter with n = `components` real components (<m^4> the mean of |m|^4).

    n = 1 (Ising): 1 - <m^4> / (3 <m^2>^2). The factor makes a Gaussian m (the disordered phase of a
    large lattice: <|m|^4> = (1 + 2/n) <|m|^2>^2) give 0 for every n, and a frozen |m| = m0 gives
    2/(n + 2): 2/3 for Ising, 1/2 for the complex (n = 2) order parameter of the q-state Potts model.
    At the critical point it tends to a universal value (2D Ising, periodic squares: 0.6107).
    """
    m2, m4 = np.asarray(m2, np.float64), np.asarray(m4, np.float64)
    n = float(components)
    return 1.0 - n * m4 / ((n + 2.0) * m2 * m2)


def jackknife(samples, statistic):
    """Leave-one-out jackknife over the first axis of `samples` (K, ...), K >= 2 independent
    samples (e.g. per-chain time averages of several observables, last axis the observable).

    statistic(mean) maps a mean over the first axis (...) to a number or an array. Returns
    (statistic of the full mean, standard error, replicates (K, ...)): replicate k is the
    statistic of the mean without sample k, and se^2 = (K-1)/K sum_k (rep_k - mean rep)^2
    (for a mean itself this is exactly std(ddof=1)/sqrt(K)).
    """
    x = np.asarray(samples, np.float64)
    k = len(x)
    if k < 2:
        raise ValueError(f"the jackknife needs at least 2 samples, got {k}")
    full = np.asarray(statistic(x.mean(axis=0)), np.float64)
    reps = np.array([statistic(r) for r in (x.sum(axis=0) - x) / (k - 1)], np.float64)
    err = np.sqrt((k - 1) / k * ((reps - reps.mean(axis=0)) ** 2).sum(axis=0))
    return full, err, reps


def linear_root(x, d, i: int) -> float:
    """Zero of the straight line through (x[i], d[i]) and (x[i+1], d[i+1]) (d[i] != d[i+1])."""
    x0, x1, d0, d1 = float(x[i]), float(x[i + 1]), float(d[i]), float(d[i + 1])
    return x0 + d0 * (x1 - x0) / (d0 - d1)


def parabola_peak(x, y) -> float:
    """x of the maximum of y (n,) sampled on increasing x (n,): the vertex of the parabola through the
    largest value and its two neighbours (the grid's own x at an end), e.g. where C peaks."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    i = int(np.argmax(y))
    if i == 0 or i == len(y) - 1:
        return float(x[i])
    a, b, _ = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)
    return float(-b / (2 * a))


def crossing(x, y1, y2, err=None, direction: int = 0):
    """Where the curves y1(x) and y2(x), sampled on increasing x (n,), cross: (x_c, i) with the
    difference d = y2 - y1 changing sign between x[i] and x[i+1] (d[i] d[i+1] <= 0, not both 0)
    and x_c the zero of its linear interpolation there (`linear_root`); None if d never changes sign.
    direction +1: only where d rises (d[i] < d[i+1]), -1: only where it falls, 0: either.

    Noise makes spurious sign changes where the curves run together (for U4: deep in either
    phase, where a noise-level d next to a clearly nonzero one can look like a big jump: there
    the direction is the wrong one); of several, the most significant is taken, the largest
    |d[i+1] - d[i]| / sqrt(err[i]^2 + err[i+1]^2) with err (n,) the standard error of d, or the
    largest |d[i+1] - d[i]| without.
    """
    x = np.asarray(x, np.float64)
    d = np.asarray(y2, np.float64) - np.asarray(y1, np.float64)
    if np.any(np.diff(x) <= 0):
        raise ValueError("crossing: x must increase")
    i = np.nonzero((d[:-1] * d[1:] <= 0) & (d[:-1] != d[1:]) & (direction * (d[1:] - d[:-1]) >= 0))[0]
    if len(i) == 0:
        return None
    jump = np.abs(d[i + 1] - d[i])
    if err is not None:
        e = np.asarray(err, np.float64)
        jump = jump / np.maximum(np.hypot(e[i], e[i + 1]), 1e-300)
    best = int(i[np.argmax(jump)])
    return linear_root(x, d, best), best
