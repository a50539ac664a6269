"""Multi-histogram reweighting (Ferrenberg & Swendsen 1989) and Binder crossings on the reweighted curves.

Runs of one lattice size (N sites) at betas b_1 < ... < b_B, K independent chains of n samples each,
are pooled by energy level E (`np.unique`: exact for ISING1/Potts, whose energies are integers; a
learned Hamiltonian's float energies can be rounded with `resolution`). Each sample of beta j counts
1/g_j, g_j its statistical inefficiency (tau_int of E at beta j, `estimators.integrated_autocorr_time`,
which is already 1 + 2 sum_t rho(t)), so beta j contributes N_j/g_j effective samples; samples are
weighted, not thinned. With n(E) = sum_j H_j(E)/g_j the pooled weighted counts and f_j = -log Z_j,

    Omega(E) = n(E) / sum_j (N_j/g_j) exp(f_j - b_j E),      exp(-f_i) = sum_E Omega(E) exp(-b_i E),

solved as the minimum of the convex MBAR objective sum_E n(E) log sum_j (N_j/g_j) e^{f_j - b_j E}
- sum_j (N_j/g_j) f_j by Newton's method (f_1 = 0), in logsumexp. Then at any beta p(E) is proportional
to Omega(E) e^{-beta E}, and an observable o is averaged through its mean per level, sum_j sum_{x at E}
o_x / g_j over n(E) (exact: the law of a state given its energy does not depend on beta). The g_j
change the variance, not the expectation: any positive weights give a consistent estimate.

Error bars: a jackknife over chains of the whole procedure: chain k left out of every beta (and, for a
crossing, of both sizes), the free energies re-solved and the curve or root recomputed. They cover the
statistics; the reweighting's own bias (a ratio estimator, O(1/samples)) is small only where the runs'
energy histograms overlap. Overlap of neighbours j, j+1: the smaller of the fraction of beta j's
samples at or below the median energy of beta j+1 and the fraction of beta j+1's at or above beta j's
median (0.5 for identical histograms, ~Phi(-delta) for Gaussians delta standard deviations apart).
`Histograms` refuses betas with an overlap below MIN_OVERLAP (the free energies across the gap are then
undetermined); `overlapping_range` picks the betas around the crossing that overlap.

With one beta this is single-histogram reweighting (Ferrenberg & Swendsen 1988), trustworthy within
about 1/sigma_E of the run's beta.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

import estimators

MIN_OVERLAP = 0.01      # ~ 2.3 standard deviations between neighbouring Gaussian histograms


def logsumexp(x, axis=0, keepdims=False):
    """log sum exp over an axis; scipy's is ~20x slower on (20, 2e6) float64 arrays."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    out = np.log(np.exp(x - top).sum(axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis)


def overlaps(energies) -> np.ndarray:
    """Histogram overlap of neighbouring betas, float64 (B-1,), from energies (B, K, n) (see the module doc)."""
    e = [np.ravel(x) for x in energies]
    med = [np.median(x) for x in e]
    out = []
    for j in range(len(e) - 1):
        hot, cold = (j, j + 1) if med[j] >= med[j + 1] else (j + 1, j)      # the hotter run has more energy
        out.append(min(np.mean(e[hot] <= med[cold]), np.mean(e[cold] >= med[hot])))
    return np.array(out)


def overlapping_range(betas, energies, inside, min_overlap=MIN_OVERLAP) -> slice:
    """The largest run of consecutive betas whose neighbours overlap >= min_overlap and that contains the
    betas in `inside` (lo, hi) (e.g. the chord crossing's grid interval); energies (B, K, n)."""
    betas, ok = np.asarray(betas, np.float64), overlaps(energies) >= min_overlap
    lo, hi = np.searchsorted(betas, inside[0], "right") - 1, np.searchsorted(betas, inside[1], "left")
    lo, hi = max(int(lo), 0), min(int(hi), len(betas) - 1)
    if not ok[lo:hi].all():
        raise ValueError(f"betas {betas[lo]:g}..{betas[hi]:g} do not overlap: sample more betas between them")
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    while hi < len(betas) - 1 and ok[hi]:
        hi += 1
    return slice(lo, hi + 1)


def solve_free_energies(betas, levels, counts, n_eff, mean_e=None, tol=1e-10, max_iter=200) -> np.ndarray:
    """f_j = -log Z_j - (the same for beta_1) (B,) from the pooled weighted counts (M,) of the energy
    levels (M,) and the effective sample sizes (B,); Newton with backtracking on the MBAR objective.
    mean_e: the runs' mean energies (B,), for the start (thermodynamic integration, df/dbeta = <E>)."""
    a = np.log(n_eff)[:, None] - betas[:, None] * levels[None]           # (B, M)
    f = np.zeros(len(betas)) if mean_e is None else \
        np.concatenate([[0.0], np.cumsum(np.diff(betas) * (mean_e[1:] + mean_e[:-1]) / 2)])
    lse = logsumexp(a + f[:, None])
    now = counts @ lse - n_eff @ f
    for _ in range(max_iter):
        p = np.exp(a + f[:, None] - lse)                                # (B, M): which beta explains E
        grad = p @ counts - n_eff
        if np.max(np.abs(grad) / n_eff) < tol:
            return f
        hess = np.diag(p @ counts) - (p * counts) @ p.T
        step, t = np.concatenate([[0.0], np.linalg.solve(hess[1:, 1:], grad[1:])]), 1.0
        while True:                    # backtracking: Newton's full step can overshoot far from the minimum
            f_new = f - t * step
            lse_new = logsumexp(a + f_new[:, None])
            new = counts @ lse_new - n_eff @ f_new
            if new <= now + 1e-12 * abs(now) or t < 1e-6:
                break
            t /= 2
        f, lse, now = f_new, lse_new, new
    raise RuntimeError("free energies did not converge: do the runs' histograms overlap?")


class Fit:
    """Reweighted curves of one size (made by `Histograms.fit`): levels float64 (M,), log Omega(E) (M,)
    (-inf where no sample), the per-level means of |m|, m^2, m^4 (3, M), the free energies f (B,)."""

    def __init__(self, betas, levels, counts, obs, n_eff, n_sites, mean_e=None, components=1):
        self.f = solve_free_energies(betas, levels, counts, n_eff, mean_e)
        self.components = components
        a = np.log(n_eff)[:, None] + self.f[:, None] - betas[:, None] * levels[None]
        with np.errstate(divide="ignore", invalid="ignore"):
            self.log_omega = np.log(counts) - logsumexp(a, axis=0)         # -inf where no sample
            self.obs_mean = np.where(counts > 0, obs / counts, 0.0)        # (3, M)
        self.levels, self.n_sites = levels, n_sites

    def _p(self, beta):
        """p(E) at each beta: (T, M) for betas (T,)."""
        lw = self.log_omega[None] - np.asarray(beta, np.float64).reshape(-1, 1) * self.levels[None]
        return np.exp(lw - logsumexp(lw, axis=1, keepdims=True))

    def thermodynamics(self, beta) -> dict:
        """At betas (T,) (or a number): U (= <E>/N), C (= beta^2 Var E / N), abs_m, chi (= beta N (<m^2> -
        <|m|>^2)), binder (`estimators.binder_cumulant` of `components`), float64 (T,) each (numbers for a number)."""
        b = np.asarray(beta, np.float64)
        u, var, mom = [], [], []
        step = max(1, (1 << 22) // len(self.levels))                     # (T, M) in pieces of ~32 MB
        for part in np.array_split(b.reshape(-1), -(-b.size // step)):
            p = self._p(part)
            u.append(p @ self.levels)
            var.append((p * (self.levels[None] - u[-1][:, None]) ** 2).sum(1))   # centred: no cancellation
            mom.append(self.obs_mean @ p.T)
        u, var, (am, m2, m4) = np.concatenate(u), np.concatenate(var), np.concatenate(mom, axis=1)
        out = {"U": u / self.n_sites, "C": b.reshape(-1) ** 2 * var / self.n_sites, "abs_m": am,
               "chi": b.reshape(-1) * self.n_sites * (m2 - am ** 2), "binder": estimators.binder_cumulant(m2, m4, self.components)}
        return {k: (v if b.ndim else float(v[0])) for k, v in out.items()}

    def binder(self, beta):
        return self.thermodynamics(beta)["binder"]


class Histograms:
    """The runs of one lattice size, pooled by energy.

    betas: (B,) increasing; energies: float (B, K, n) total energy of each sample (K chains, n samples
    per chain; the sampler's (n, K, B) arrays transposed); m: float (B, K, n) order parameter, or None
    (then |m|, chi and U4 are NaN); n_sites: N; g: (B,) statistical inefficiencies, default tau_int of
    E per beta over its chains; resolution: energies rounded to multiples of it before pooling (None:
    exact values); components: of the order parameter (`estimators.binder_cumulant`: 2 for Potts' Z_q |m|).
    ValueError when neighbouring histograms overlap less than min_overlap.
    """

    def __init__(self, betas, energies, m=None, n_sites=1, g=None, resolution=None, min_overlap=MIN_OVERLAP,
                 components=1):
        self.components = components
        self.betas = np.asarray(betas, np.float64).reshape(-1)
        e = np.asarray(energies, np.float64)
        if e.ndim != 3 or len(e) != len(self.betas) or np.any(np.diff(self.betas) <= 0):
            raise ValueError("energies must be (B, K, n) for B increasing betas")
        self.shape, self.n_sites = e.shape, int(n_sites)
        self.overlap = overlaps(e)
        bad = np.nonzero(self.overlap < min_overlap)[0]
        if len(bad):
            j = bad[0]
            raise ValueError(f"energy histograms of beta {self.betas[j]:g} and {self.betas[j + 1]:g} overlap "
                             f"{self.overlap[j]:.2g} < {min_overlap:g}: reweighting across them is unreliable; "
                             "add betas between them or keep a range of betas that overlap (overlapping_range)")
        self.g = np.array([estimators.integrated_autocorr_time(x) for x in e]) if g is None else \
            np.broadcast_to(np.asarray(g, np.float64), self.betas.shape)
        self.g = np.maximum(self.g, 1.0)
        self.mean_e = e.mean(axis=(1, 2))
        if resolution:
            e = np.round(e / resolution) * resolution
        self.levels, self._idx = np.unique(e, return_inverse=True)
        self._idx = self._idx.reshape(e.shape)
        m = np.full(e.shape, np.nan) if m is None else np.asarray(m, np.float64)
        self._obs = np.stack([np.abs(m), m * m, m ** 4])                    # (3, B, K, n)

    @classmethod
    def around(cls, betas, energies, m, n_sites, inside, **kw) -> "Histograms":
        """Histograms of the overlapping run of betas containing `inside` (lo, hi) (`overlapping_range`),
        e.g. the chord crossing's grid interval: a whole grid (0.1 ... 0.7) never overlaps at 64 x 64."""
        keep = overlapping_range(betas, energies, inside, kw.get("min_overlap", MIN_OVERLAP))
        return cls(np.asarray(betas)[keep], np.asarray(energies)[keep], None if m is None else np.asarray(m)[keep],
                   n_sites, **kw)

    def fit(self, leave_out=None) -> Fit:
        """The reweighted curves from every chain, or without chain `leave_out` (at every beta)."""
        B, K, n = self.shape
        keep = np.ones(K, bool) if leave_out is None else np.arange(K) != leave_out
        w = np.broadcast_to((1.0 / self.g)[:, None, None], self.shape)[:, keep].ravel()
        idx, M = self._idx[:, keep].ravel(), len(self.levels)
        counts = np.bincount(idx, weights=w, minlength=M)
        obs = np.stack([np.bincount(idx, weights=w * o[:, keep].ravel(), minlength=M) for o in self._obs])
        return Fit(self.betas, self.levels, counts, obs, keep.sum() * n / self.g, self.n_sites, self.mean_e,
                   self.components)

    def jackknife(self, beta) -> tuple[dict, dict]:
        """thermodynamics(beta) of all chains and its jackknife standard errors over chains."""
        full = self.fit().thermodynamics(beta)
        reps = [self.fit(k).thermodynamics(beta) for k in range(self.shape[1])]
        return full, {key: _jk_err(np.array([r[key] for r in reps])) for key in full}


def _jk_err(reps):
    k = len(reps)
    return np.sqrt((k - 1) / k * ((reps - reps.mean(0)) ** 2).sum(0))


def _rising_root(f1, f2, lo, hi, near=None, n_grid=400):
    """A beta in [lo, hi] where U4 of f2 minus U4 of f1 goes from - to + (brentq on the reweighted
    difference): the one nearest `near`, else the steepest; NaN if none."""
    grid = np.linspace(lo, hi, n_grid)
    d = f2.binder(grid) - f1.binder(grid)
    i = np.nonzero((d[:-1] <= 0) & (d[1:] > 0))[0]
    if len(i) == 0:
        return math.nan
    i = i[np.argmin(np.abs(grid[i] - near))] if near is not None else i[np.argmax(d[i + 1] - d[i])]
    return brentq(lambda b: f2.binder(b) - f1.binder(b), grid[i], grid[i + 1], xtol=1e-13)


def crossing(h1: Histograms, h2: Histograms, near=None) -> dict:
    """Where U4 of the larger lattice h2 crosses U4 of h1 rising with beta, within both sampled ranges.

    near: pick the crossing nearest this beta (e.g. the chord's) when noise makes several. Errors: a
    jackknife over chains of the whole procedure (chain k out of every beta of both sizes: the sizes'
    chains are independent, so the pairs are i.i.d.). Keys: sizes, beta, beta_err, T, T_err, binder,
    binder_err (U4 at the crossing), range (the betas searched), method.
    """
    K = h1.shape[1]
    if h2.shape[1] != K:
        raise ValueError("the jackknife pairs chain k of both sizes: give both the same number of chains")
    lo, hi = max(h1.betas[0], h2.betas[0]), min(h1.betas[-1], h2.betas[-1])
    sizes = [int(round(math.sqrt(h.n_sites))) for h in (h1, h2)]
    f1, f2 = h1.fit(), h2.fit()
    beta = _rising_root(f1, f2, lo, hi, near)
    if math.isnan(beta):
        return {"sizes": sizes, "beta": None, "beta_err": None, "T": None, "T_err": None, "range": [lo, hi],
                "note": "the reweighted U4 curves do not cross in the sampled range"}
    reps, u_reps = np.empty(K), np.empty(K)
    for k in range(K):
        g1, g2 = h1.fit(k), h2.fit(k)
        reps[k] = _rising_root(g1, g2, lo, hi, beta)
        u_reps[k] = g2.binder(reps[k]) if not math.isnan(reps[k]) else math.nan
    return {"sizes": sizes, "beta": beta, "beta_err": float(_jk_err(reps)), "T": 1.0 / beta,
            "T_err": float(_jk_err(1.0 / reps)), "binder": f2.binder(beta), "binder_err": float(_jk_err(u_reps)),
            "range": [lo, hi], "method": "multi-histogram reweighting, brentq; jackknife over chains"}


def all_crossings(hists: dict, near=None) -> list[dict]:
    """crossing() of every pair of sizes (L1 < L2) of {L: Histograms}."""
    sizes = sorted(hists)
    return [crossing(hists[a], hists[b], near) for i, a in enumerate(sizes) for b in sizes[i + 1:]]


def extrapolate(L, T, T_err, exponent: float) -> dict:
    """Fit T(L) = T_inf + a L^-exponent to crossings T (n,) of the pairs (L, 2L), L (n,) the smaller size,
    by weighted least squares (weights 1/T_err^2; equal without). exponent: 1/nu + omega of the
    universality class (a Hamiltonian's `crossing_exponent`). Returns T_inf, T_inf_err (from the fit,
    statistics only), a, chi2, dof, exponent, and systematic = |T of the largest L - T_inf|, the size of the correction still in the last crossing."""
    L, T = np.asarray(L, np.float64), np.asarray(T, np.float64)
    if len(L) < 2:
        raise ValueError("the extrapolation needs crossings of at least 2 pairs of sizes")
    w = np.ones_like(T) if T_err is None else 1.0 / np.asarray(T_err, np.float64) ** 2
    X = np.stack([np.ones_like(L), L ** -exponent], axis=1)
    cov = np.linalg.inv(X.T @ (w[:, None] * X))
    t_inf, a = cov @ X.T @ (w * T)
    chi2 = float((w * (T - X @ [t_inf, a]) ** 2).sum())
    return {"T_inf": float(t_inf), "T_inf_err": float(math.sqrt(cov[0, 0])) if T_err is not None else None,
            "a": float(a), "chi2": chi2, "dof": len(L) - 2, "exponent": exponent,
            "systematic": float(abs(T[np.argmax(L)] - t_inf))}
