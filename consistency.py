"""Consistency checks of the data files against exact physics, and their plots.

Every model learns from these samples, so they are checked against exact results of the
finite periodic lattice (`ising.py`), never against the sampler itself:

- the energy histogram of each beta against the exact Boltzmann law P(E) (transfer
  matrix), with Pearson's chi-square test: a correlated sampler or a wrong Hamiltonian
  shows up as p ~ 0; p_mc calibrates the same statistic on draws from the exact law (the
  chi-square law's p is too small where a pooled bin expects few counts, a spin glass at low
  T), and bins = 1 says a beta's samples all fall in one bin (no test);
- the mean energy per beta against the exact <E>, in standard errors (a file's samples are
  `thin` sweeps apart, so nearly independent and the naive standard error holds);
- the sampler's own records: acceptance rate and integrated autocorrelation time per beta;
- the magnetisation m = mean spin (symmetric around 0 without a field).

Potts files (attribute q, states 0..q-1) are checked the same way against the exact results of
`potts.py`: P(E) and <E> from its transfer matrix, on the lattices it allows (8 x 8 q = 3 in
about 6 s; larger ones are a one-line ValueError that says so); the magnetisation is the Potts
order parameter m = (q max_k rho_k - 1) / (q - 1), in 0 ... 1; plots mark beta_c = ln(1 + sqrt q).

The notebook `Consistency Checks` shows these for the files of a data folder; the command line
prints them for given files, and with --images draws the plots:

    python consistency.py data/train_data.hdf5 data/val_data.hdf5
    python consistency.py data/train_data.hdf5 --images images --out results/consistency.md
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

import hamiltonians
from checks import HelpFormatter, UserError, atomic_path, check_output_dir, check_output_file, main_guard, positive_int
from data_files import open_h5, read_metadata
from estimators import chi_square_test, level_counts
from ising import BETA_C_ISING1
from plotting import hide_unused, markdown_table, plt, save_figure


def _exact_distribution(info: dict, beta: float):
    """(levels, P(E)) of a file's Hamiltonian at beta (`read_metadata` info); ValueError where none is exact."""
    h = hamiltonians.from_attrs(info)
    if h is None:
        raise ValueError(f"{info['hamiltonian']}: a learned Hamiltonian's file has no exact energy distribution")
    try:
        return h.exact_distribution(info["n_x"], info["n_y"], beta)
    except ValueError as err:
        raise ValueError(f"{info['hamiltonian']} lattices of {info['n_x']} x {info['n_y']}: {err}") from None


def critical_beta(path) -> float:
    """The infinite lattice's critical beta of a file's model (ISING1's, ln(1 + sqrt q) for Potts), else ISING1's."""
    h = hamiltonians.from_attrs(read_metadata(path))
    return (h.beta_c if h is not None else None) or BETA_C_ISING1


MC_DRAWS = 20_000   # multinomial draws behind `monte_carlo_p_value` (its resolution ~1/MC_DRAWS)


def _pooled_groups(expected: np.ndarray, min_expected: float = 5.0) -> np.ndarray:
    """The bin of each level, int (K,), as `estimators.chi_square_test` pools them (from the low end up
    until a bin expects min_expected, the remaining tail joining the last bin)."""
    group, g, acc = np.zeros(len(expected), int), 0, 0.0
    for k, e in enumerate(expected):
        group[k], acc = g, acc + e
        if acc >= min_expected:
            g, acc = g + 1, 0.0
    return np.minimum(group, max(g - 1, 0))


def monte_carlo_p_value(counts, probs, n_draws: int = MC_DRAWS, seed: int = 0) -> float:
    """The p-value of `chi_square_test`'s pooled Pearson statistic under the exact law itself: the
    fraction of n_draws multinomial samples of the same size (counts (K,) over the levels, probs (K,))
    whose statistic is at least the observed one, (1 + hits) / (1 + n_draws).  The chi-square law is
    only asymptotic: with a spin glass's few low-temperature levels a pooled bin expects ~5-10 counts
    and the asymptotic p is several times too small (an 8 x 8 file: 4e-5 where this gives 3e-4)."""
    counts, probs = np.asarray(counts, np.float64), np.asarray(probs, np.float64)
    n = int(round(counts.sum()))
    group = _pooled_groups(probs * n)
    expected = np.bincount(group, weights=probs * n)
    if len(expected) < 2:
        return 1.0                        # one bin: the statistic is 0 for every sample, no test
    draws = np.random.default_rng(seed).multinomial(n, probs / probs.sum(), size=n_draws)
    sims = np.add.reduceat(draws, np.r_[0, np.cumsum(np.bincount(group))[:-1]], axis=1)   # groups are runs
    stat = lambda o: ((o - expected) ** 2 / expected).sum(axis=-1)       # noqa: E731
    observed = stat(np.bincount(group, weights=counts, minlength=len(expected)))
    return float((1 + np.sum(stat(sims) >= observed * (1 - 1e-12))) / (1 + n_draws))


def _histogram_against_exact(sel: np.ndarray, info: dict, beta: float) -> dict:
    """Sampled energies float64 (n,) of one beta binned on the exact levels, chi-square and mean;
    p_value the chi-square law's, p_mc the exact law's own (`monte_carlo_p_value`), bins the pooled bins
    (1: every sample falls in one bin, no test)."""
    e_exact, p_exact = _exact_distribution(info, beta)
    counts, strays = level_counts(sel, e_exact)
    stat, dof, p = chi_square_test(counts, p_exact)
    return {
        "beta": beta, "n": int(len(sel)), "energies": e_exact, "exact_probs": p_exact, "counts": counts,
        # sampled energies the exact law calls (nearly) impossible
        "stray_samples": strays,
        "chi2": stat, "dof": dof, "p_value": p, "p_mc": monte_carlo_p_value(counts, p_exact),
        "bins": int(_pooled_groups(p_exact * len(sel)).max() + 1),
        "mean": float(sel.mean()), "sem": float(sel.std(ddof=1) / np.sqrt(len(sel))),
        "exact_mean": float((e_exact * p_exact).sum()),
        "exact_sd": float(np.sqrt((p_exact * (e_exact - (e_exact * p_exact).sum()) ** 2).sum())),
    }


def energy_histogram_check(path, max_samples: int = 200_000) -> list[dict]:
    """For every beta of an HDF5 data file: its sampled energy histogram against the exact one.

    Reads the first max_samples lattices (a fair sample: files interleave betas and chains).
    Returns one dict per beta: file, beta, n, energies (K,) exact levels, exact_probs (K,),
    counts (K,) observed, stray_samples, chi2, dof, p_value, mean, sem, exact_mean.
    """
    info = read_metadata(path)
    with open_h5(path) as f:
        n = min(f["true_energies"].shape[0], max_samples)
        energies = f["true_energies"][:n].astype(np.float64)
        betas = f["beta"][:n].astype(np.float64)
    return [{"file": str(path), **_histogram_against_exact(energies[np.isclose(betas, b)], info, b)}
            for b in info["betas"]]


def histogram_table(checks: list[dict]) -> list[dict]:
    """Rows for `plotting.markdown_table`: the chi-square test of each histogram."""
    keys = ("beta", "n", "chi2", "dof", "p_value", "p_mc", "bins", "stray_samples")
    return [{"file": Path(c["file"]).name, **{k: c[k] for k in keys}} for c in checks]


def _z(mean: float, exact: float, sem: float, exact_sem: float = 0.0) -> float:
    """(mean - exact) / sem; with sem = 0 (every sample in one state, e.g. a ground state at low T) the
    exact law's standard error exact_sem (its standard deviation / sqrt(n)) instead, and where that is 0
    too: 0 if the mean is the exact one, else infinite."""
    if sem > 0:
        return (mean - exact) / sem
    if exact_sem > 0:
        return (mean - exact) / exact_sem
    return 0.0 if abs(mean - exact) <= 1e-9 * max(1.0, abs(exact)) else float("inf")


def mean_energy_table(checks: list[dict]) -> list[dict]:
    """Rows for `plotting.markdown_table`: sampled <E> against the exact one; z in standard errors."""
    return [{"file": Path(c["file"]).name, "beta": c["beta"], "mean": c["mean"], "sem": c["sem"],
             "exact": c["exact_mean"],
             "z": _z(c["mean"], c["exact_mean"], c["sem"], c.get("exact_sd", 0.0) / np.sqrt(c["n"])),
             "chi2 p": c["p_value"], "p (MC)": c.get("p_mc", np.nan)}
            for c in checks]


def data_file_summary(path) -> dict:
    """One row about a data file: size, Hamiltonian, lattice, betas, sampler settings."""
    info = read_metadata(path)
    with open_h5(path) as f:
        a = f.attrs
        acc = np.atleast_1d(a.get("acceptance_rate", np.nan)).astype(float)
        betas = info["betas"]
        return {"file": Path(path).name, "n": int(f["ising_grids"].shape[0]), "hamiltonian": info["hamiltonian"],
                "lattice": f"{info['n_x']}x{info['n_y']}", "n_betas": len(betas),
                "betas": f"{min(betas):.3g}…{max(betas):.3g}" if len(betas) > 1 else f"{betas[0]:.3g}",
                "algorithm": str(a.get("algorithm", "?")), "chains": int(a.get("n_chains", -1)),
                "burn_in": int(a.get("burn_in_sweeps", -1)), "thin": int(a.get("thin_sweeps", -1)),
                "acceptance": f"{acc.min():.3f}…{acc.max():.3f}" if acc.size > 1 else f"{acc[0]:.3f}"}


def sampler_diagnostics(path) -> dict:
    """Acceptance rate and integrated autocorrelation time of the energy (sweeps) per beta, as
    recorded by the sampler in the file's attributes; thin is the spacing of stored samples,
    beta_c the model's critical beta (`critical_beta`)."""
    with open_h5(path) as f:
        a = f.attrs
        betas = np.atleast_1d(a["betas"]).astype(float)
        acc = np.atleast_1d(a["acceptance_rate"]).astype(float)
        tau = np.atleast_1d(a.get("tau_int_sweeps", np.full(len(betas), np.nan))).astype(float)
        thin = int(a["thin_sweeps"])
    table = [{"beta": b, "acceptance": ac, "tau_int (sweeps)": t, "thin (sweeps)": thin}
             for b, ac, t in zip(betas, acc, tau)]
    return {"betas": betas, "acceptance": acc, "tau_int": tau, "thin": thin, "table": table,
            "beta_c": critical_beta(path)}


def magnetisation_by_beta(path, max_samples: int = 200_000) -> dict:
    """{beta: per-site magnetisation m = mean spin, float64 (n,)} from a data file (a Potts file:
    the order parameter `potts.magnetisation`, 0 ... 1)."""
    states = hamiltonians.from_attrs({"q": read_metadata(path).get("q")})   # the order parameter depends on q alone
    with open_h5(path) as f:
        n = min(f["ising_grids"].shape[0], max_samples)
        grids = f["ising_grids"][:n]
        m = states.order_parameter(grids)
        betas = f["beta"][:n].astype(np.float64)
    return {float(b): m[betas == b] for b in np.unique(betas)}


def _chain_jackknife(per: np.ndarray, statistic) -> tuple[float, float]:
    """Leave-one-chain-out jackknife of statistic((<e>, <e^2>)) from per-chain sums per (K, 3) = (count,
    sum e, sum e^2): replicate k pools every chain but k (chains of unequal length weigh by their counts)."""
    total = per.sum(axis=0)
    full = float(statistic(total[1:] / total[0]))
    rest = total - per
    reps = np.array([statistic(r[1:] / r[0]) for r in rest])
    k = len(per)
    return full, float(np.sqrt((k - 1) / k * ((reps - reps.mean()) ** 2).sum()))


def moments_check(path, max_samples: int = 200_000) -> list[dict]:
    """U/N and C/N = beta^2 Var(E) / N per beta of a file against the exact ones of its Hamiltonian
    (`exact_moments`: a spin glass's transfer matrix, also where P(E) is out of reach, 12 x 12).
    Errors: jackknife over the file's chains (sample order: chain = (index // n_betas) mod n_chains), so
    they hold whatever the correlation along a chain.  One dict per beta: beta, n, U, U_err, U_exact, z_U,
    C, C_err, C_exact, z_C (z None where the error is 0: every sample in one state)."""
    info = read_metadata(path)
    h = hamiltonians.from_attrs(info)
    if h is None:
        raise ValueError(f"{info['hamiltonian']}: a learned Hamiltonian's file has no exact moments")
    nb, N = len(info["betas"]), info["n_x"] * info["n_y"]
    with open_h5(path) as f:
        n = min(f["true_energies"].shape[0], max_samples)
        e = f["true_energies"][:n].astype(np.float64) / N
        chains = int(f.attrs.get("n_chains", 1))
    idx = np.arange(n)
    out = []
    for b, beta in enumerate(info["betas"]):
        sel = idx % nb == b
        # a file without chains (or of one): its samples taken as independent
        chain = (idx[sel] // nb) % chains if chains > 1 else np.arange(sel.sum())
        chains_b = chains if chains > 1 else int(sel.sum())
        per = np.stack([np.bincount(chain, weights=w, minlength=chains_b) for w in (np.ones(sel.sum()), e[sel], e[sel] ** 2)],
                       axis=1)
        per = per[per[:, 0] > 0]                                          # per chain: count, sum e, sum e^2
        u, u_err = _chain_jackknife(per, lambda m: m[0])
        c, c_err = _chain_jackknife(per, lambda m: beta ** 2 * N * (m[1] - m[0] ** 2))
        mean, var = h.exact_moments(info["n_x"], info["n_y"], beta)
        row = {"file": str(path), "beta": beta, "n": int(sel.sum()), "U": float(u), "U_err": float(u_err),
               "U_exact": mean / N, "C": float(c), "C_err": float(c_err), "C_exact": beta ** 2 * var / N}
        row["z_U"] = (row["U"] - row["U_exact"]) / u_err if u_err > 0 else None
        row["z_C"] = (row["C"] - row["C_exact"]) / c_err if c_err > 0 else None
        out.append(row)
    return out


def moments_table(checks: list[dict]) -> list[dict]:
    """Rows for `plotting.markdown_table`: U/N and C/N against the exact ones, z in errors."""
    z = lambda v: "—" if v is None else v        # noqa: E731
    return [{"file": Path(c["file"]).name, "T": 1 / c["beta"], "U/N": c["U"], "±": c["U_err"], "exact U/N": c["U_exact"],
             "z U": z(c["z_U"]), "C/N": c["C"], "± ": c["C_err"], "exact C/N": c["C_exact"], "z C": z(c["z_C"])}
            for c in checks]


# ----------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------
def plot_moments(checks: list[dict], path) -> None:
    """U/N and C/N ± 2 errors against T with the exact values (line), and their deviations in errors."""
    T = np.array([1 / c["beta"] for c in checks])
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    for col, (key, label) in enumerate((("U", "U/N"), ("C", "C/N"))):
        ax, ax2 = axes[0, col], axes[1, col]
        order = np.argsort(T)
        ax.plot(T[order], np.array([c[f"{key}_exact"] for c in checks])[order], "k-", lw=1, label="exact (transfer matrix)")
        ax.errorbar(T, [c[key] for c in checks], yerr=[2 * c[f"{key}_err"] for c in checks], fmt="o", ms=3,
                    label="sampled ± 2 errors")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        z = [c[f"z_{key}"] for c in checks]
        ax2.axhline(0, color="k", lw=0.8)
        ax2.axhspan(-2, 2, color="0.85")
        ax2.plot([t for t, v in zip(T, z) if v is not None], [v for v in z if v is not None], "o", ms=3)
        ax2.set_ylabel("(sampled − exact) / error")
        ax2.set_xlabel("T")
    fig.suptitle(Path(checks[0]["file"]).name, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
def plot_energy_histograms(checks: list[dict], path, ncols: int = 3) -> None:
    """One panel per check: sampled frequencies (bars) against the exact P(E) (line)."""
    nrows = math.ceil(len(checks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.2 * nrows), squeeze=False)
    for ax, c in zip(axes.flat, checks):
        width = np.min(np.diff(c["energies"])) * 0.8 if len(c["energies"]) > 1 else 1.0
        ax.bar(c["energies"], c["counts"] / c["n"], width=width, alpha=0.6, label="sampled")
        ax.plot(c["energies"], c["exact_probs"], "k.-", lw=1, ms=3, label="exact")
        ax.set_title(f"{Path(c['file']).stem}  β={c['beta']:.3g}\n"
                     f"χ²/dof={c['chi2']:.0f}/{c['dof']}, p={c['p_value']:.2g}", fontsize=9)
        ax.set_xlabel("E")
        ax.set_ylabel("P(E)")
    hide_unused(axes, len(checks))
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_mean_energy(checks: list[dict], path) -> None:
    """Sampled <E> ± 2 SE per beta against the exact finite-lattice curve, and the deviation in SE."""
    b = np.array([c["beta"] for c in checks])
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    ax.plot(b, [c["exact_mean"] for c in checks], "k-", lw=1, label="exact (transfer matrix)")
    ax.errorbar(b, [c["mean"] for c in checks], yerr=[2 * c["sem"] for c in checks], fmt="o", ms=3,
                label="sampled ± 2 SE")
    ax.set_ylabel("<E>")
    ax.legend()
    ax2.axhline(0, color="k", lw=0.8)
    ax2.plot(b, [(c["mean"] - c["exact_mean"]) / c["sem"] for c in checks], "o", ms=3)
    ax2.axhspan(-2, 2, color="0.85")
    ax2.set_ylabel("(sampled − exact) / SE")
    ax2.set_xlabel("β")
    fig.tight_layout()
    save_figure(fig, path)


def plot_sampler_diagnostics(diag: dict, path) -> None:
    """Acceptance rate and tau_int against beta (from `sampler_diagnostics`), thin as a line."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax.plot(diag["betas"], diag["acceptance"], "o-", ms=3)
    ax.set_xlabel("β")
    ax.set_ylabel("Metropolis acceptance rate")
    ax2.plot(diag["betas"], diag["tau_int"], "o-", ms=3, label="τ_int of the energy")
    ax2.axhline(diag["thin"], color="k", ls="--", lw=1, label=f"thin = {diag['thin']} sweeps")
    ax2.set_xlabel("β")
    ax2.set_ylabel("sweeps")
    ax2.legend()
    for a in (ax, ax2):
        a.axvline(diag.get("beta_c", BETA_C_ISING1), color="0.6", ls=":", lw=1)
    fig.tight_layout()
    save_figure(fig, path)


def plot_magnetisation(mags: dict, path, n_hist: int = 4, beta_c: float = BETA_C_ISING1) -> None:
    """<|m|> against beta, and histograms of m at n_hist betas spread over the range; beta_c: the
    line (`critical_beta(path)` for a Potts file)."""
    betas = sorted(mags)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax.plot(betas, [np.abs(mags[b]).mean() for b in betas], "o-", ms=3)
    ax.axvline(beta_c, color="k", ls="--", lw=1, label="β_c (infinite lattice)")
    ax.set_xlabel("β")
    ax.set_ylabel("<|m|>")
    ax.legend()
    for b in [betas[i] for i in np.linspace(0, len(betas) - 1, min(n_hist, len(betas))).astype(int)]:
        ax2.hist(mags[b], bins=33, range=(-1.03, 1.03), histtype="step", density=True, label=f"β={b:.3g}")
    ax2.set_xlabel("m")
    ax2.set_ylabel("density")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


# ----------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------
def report(files, max_samples: int = 200_000, images=None) -> str:
    """The checks of each data file as Markdown (and, with images, its plots
    consistency_<file stem>_{energy,mean_energy,sampler,magnetisation}.png there)."""
    parts = ["# Consistency of the data files against exact physics", "", markdown_table([data_file_summary(f) for f in files])]
    for f in files:
        try:
            checks = energy_histogram_check(f, max_samples)
        except ValueError as err:
            raise UserError(f"{f}: no exact energy law to check against ({err})") from None
        diag = sampler_diagnostics(f)
        parts += [f"## {f}", "", "Energy histogram against the exact P(E):", "", markdown_table(histogram_table(checks)),
                  "Mean energy against the exact <E> (z in standard errors):", "", markdown_table(mean_energy_table(checks)),
                  "Sampler:", "", markdown_table(diag["table"])]
        if images is not None:
            stem = Path(images) / f"consistency_{Path(f).stem}"
            plot_energy_histograms(checks, f"{stem}_energy.png")
            plot_mean_energy(checks, f"{stem}_mean_energy.png")
            plot_sampler_diagnostics(diag, f"{stem}_sampler.png")
            plot_magnetisation(magnetisation_by_beta(f, max_samples), f"{stem}_magnetisation.png",
                               beta_c=critical_beta(f))
    return "\n".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Check data files of generate_ising.py against exact physics: the energy "
                                "histogram of each beta against the exact P(E) (chi-square), the mean energy "
                                "against the exact <E>, the sampler's acceptance rate and tau_int.",
                                formatter_class=HelpFormatter)
    p.add_argument("files", nargs="+", help="HDF5 data files (generate_ising.py) of a Hamiltonian with an exact law "
                   "(ISING1, ISING2, POTTS<q> on small lattices)")
    p.add_argument("--max_samples", type=positive_int, default=200_000, help="lattices read per file (its first ones)")
    p.add_argument("--images", default=None, help="folder for the plots consistency_<file>_*.png (default: no plots)")
    p.add_argument("--out", default=None, help="also write the Markdown report to this file")
    args = p.parse_args(argv)
    if args.out is not None:
        check_output_file("--out", args.out, inputs=args.files)
    if args.images is not None:
        check_output_dir("--images", args.images)
        for f in args.files:
            for kind in ("energy", "mean_energy", "sampler", "magnetisation"):
                check_output_file("--images", Path(args.images) / f"consistency_{Path(f).stem}_{kind}.png",
                                  inputs=args.files)
    text = report(args.files, args.max_samples, args.images)
    if args.out is not None:
        with atomic_path(args.out) as tmp:
            Path(tmp).write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
