"""Thermodynamics from a trained causal probability model.

The causal (original) model is a normalised distribution over lattices,
    q(s) = 1/2 prod_{t>=1} q(s_t | s_<t),
with an exact log-likelihood, so it is a sampler and an importance-sampling proposal for the
Boltzmann law p_beta(s) = exp(-beta E(s)) / Z(beta) (neural importance sampling, Nicoli et al.
2020; variational autoregressive networks, Wu, Wang & Zhang 2019). Here q was trained by maximum
likelihood on Monte Carlo data at one beta, and E(s) is the exact energy (`ising.energy`).

A causal Potts run (hyper-parameter q > 2, hamiltonian "POTTS<q>") enters in two places only:
E(s) = -sum_<ij> delta(s_i, s_j) is `potts.energy` of the states 0..q-1, and the model's first
site is uniform over the q states (the factor 1/2 above becomes 1/q, inside the log q that
`model.sample` returns). Nothing below uses more than a normalised proposal with full support and
an exact E, so every formula holds as it stands; the exact references are then `potts.exact_log_z`,
`exact_mean_energy` and `exact_heat_capacity` (a transfer matrix: 8 x 8 for q = 3 in seconds; on
a lattice it refuses the exact values are None, not an error). Ising runs are untouched by this.

A causal run of a spin-glass instance (hamiltonian "EA", its couplings recorded in the run): E(s)
is the instance's own energy and the exact references are its row transfer matrix's
(`spin_glass.EdwardsAnderson.exact_log_z`, `exact_moments`; rows of up to 14 sites). The system is
always the run's Hamiltonian object (`model.system`), whose methods give E and the exact values.

With N independent draws s_k ~ q and weights w_k = exp(-beta E(s_k) - log q(s_k)):
    Z = E_q[w]             ->  log Z ~ log mean(w);  F = -log Z / beta
    se(log Z) ~ std(w) / (mean(w) sqrt(N))                    (delta method)
    U = <E>_p = sum w E / sum w,    se(U)^2 ~ sum w^2 (E - U)^2 / (sum w)^2
    C = beta^2 (<E^2>_p - U^2)                                (standard error by bootstrap)
    ESS / N = (sum w)^2 / (N sum w^2)      (1: q = p; -> 0 as the weights degenerate)
The same draws serve every beta (the weights change, not the samples); where ESS/N < 0.01 the
estimates are meaningless and are reported as such. The variational free energy
    F_q = E_q[E + log q / beta] >= F   (at the training beta), with F_q - F = KL(q || p) / beta,
needs no weights. Everything is reported per site and beside the exact finite-lattice values
(`ising.exact_log_z`, `exact_mean_energy`, `exact_heat_capacity`).

    python thermodynamics.py --run runs/probability/GRU_1L_1H_hid128 --n_samples 100000 --out results/thermo
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

import hamiltonians
import ising
from checks import HelpFormatter, UserError, check_output_dir, main_guard, positive_float, positive_int, seed_int

MIN_ESS = 0.01


# ----------------------------------------------------------------------------- the Hamiltonian
# Every function below takes the system as a Hamiltonian object (a run's `model.system`: a spin-glass
# instance is one) or a built-in name (ISING1, ISING2, POTTS<q>), and asks the object, never its type.
def system_of(hamiltonian):
    """The Hamiltonian object: itself, or the built-in one a name names (`hamiltonians.resolve`)."""
    return hamiltonians.resolve(hamiltonian)


def states(hamiltonian) -> int:
    """q of the system: 2 for spins ±1 (Ising, a spin glass), q for POTTS<q>."""
    return system_of(hamiltonian).q


def lattice_energy(grids, hamiltonian) -> np.ndarray:
    """Exact energies of the system's lattices (spins ±1 or Potts states)."""
    return system_of(hamiltonian).energy(grids)


def exact_energy_distribution(n_x: int, n_y: int, beta: float, hamiltonian):
    """(levels, P(E)) of the finite lattice; ValueError where no exact method applies."""
    return system_of(hamiltonian).exact_distribution(n_x, n_y, beta)


def describe(hamiltonian):
    """A caption for a Potts run ("q = 3 Potts model (POTTS3)") or a spin-glass instance's ("spin-glass
    instance EA_8x8_seed0"); None for Ising, whose outputs carry none."""
    return hamiltonians.caption(system_of(hamiltonian))


def report_system(report: dict):
    """The system a thermo report was computed for: its `hamiltonian` and, for an instance, `instance`."""
    return hamiltonians.from_attrs({"hamiltonian": report["hamiltonian"], **(report.get("instance") or {})})


def _lattices(system) -> str:
    caption = hamiltonians.caption(system)
    return "Ising lattices" if caption is None else f"lattices of the {caption}"


# ----------------------------------------------------------------------------- estimators
def _logmeanexp(x: np.ndarray) -> float:
    m = x.max()
    return float(m + np.log(np.mean(np.exp(x - m))))


def estimates(energies, log_q, beta: float, n_sites: int, n_boot: int = 200, seed: int = 0) -> dict:
    """Importance-sampling estimates at `beta` from draws of q.

    energies, log_q: float64 (N,) exact energies and the model's log-probabilities of the draws.
    Returns per-site F, U, C with standard errors and ESS/N (None where ESS/N < MIN_ESS).
    """
    e = np.asarray(energies, np.float64)
    log_w = -beta * e - np.asarray(log_q, np.float64)
    w = np.exp(log_w - log_w.max())                      # weights up to a common factor
    n, sw = len(w), w.sum()
    ess = float(sw**2 / (n * (w * w).sum()))
    row = {"beta": float(beta), "ess_fraction": ess}
    if ess < MIN_ESS:
        return {**row, "F_per_site": None, "F_err": None, "U_per_site": None, "U_err": None,
                "C_per_site": None, "C_err": None, "note": f"ESS/N < {MIN_ESS}: no estimate"}
    log_z = _logmeanexp(log_w)
    se_log_z = float(w.std() / (w.mean() * math.sqrt(n)))
    p = w / sw
    u = float(p @ e)
    se_u = float(math.sqrt(((p * (e - u)) ** 2).sum()))
    c = beta**2 * float(p @ (e - u) ** 2)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):                              # bootstrap over draws for C's error
        idx = rng.integers(0, n, n)
        pb = w[idx] / w[idx].sum()
        ub = pb @ e[idx]
        boot.append(beta**2 * (pb @ (e[idx] - ub) ** 2))
    return {**row, "F_per_site": -log_z / beta / n_sites, "F_err": se_log_z / beta / n_sites,
            "U_per_site": u / n_sites, "U_err": se_u / n_sites,
            "C_per_site": c / n_sites, "C_err": float(np.std(boot)) / n_sites}


def exact_values(n_x: int, n_y: int, beta: float, hamiltonian) -> dict:
    """Exact finite-lattice F, U, C per site (None where no exact method applies), each from the
    system's own exact methods (`exact_moments`, `exact_log_z`): Kaufman's log Z for ISING1 at any
    size, a transfer matrix otherwise (rows of <= 10 sites; a spin-glass instance's, <= 14), which
    refuses, in a ValueError, what it cannot reach: then F alone is None (U and C may still be exact)."""
    s, h = n_x * n_y, system_of(hamiltonian)
    try:
        mean, var = h.exact_moments(n_x, n_y, beta)
    except ValueError:
        return {"F_exact_per_site": None, "U_exact_per_site": None, "C_exact_per_site": None}
    try:
        log_z = h.exact_log_z(n_x, n_y, beta)
    except ValueError:
        log_z = None
    return {"F_exact_per_site": None if log_z is None else -log_z / beta / s,
            "U_exact_per_site": mean / s, "C_exact_per_site": beta**2 * var / s}


def variational_free_energy(energies, log_q, beta: float, n_sites: int) -> tuple[float, float]:
    """F_q = <E + log q / beta>_q per site, with its standard error."""
    f = (np.asarray(energies, np.float64) + np.asarray(log_q, np.float64) / beta) / n_sites
    return float(f.mean()), float(f.std() / math.sqrt(len(f)))


def histogram_kl(energies, exact_e, exact_p, weights=None) -> float:
    """KL(h || P) in nats of the (optionally weighted) histogram h of sampled energies against
    the exact P(E); h lives on P's support, so the value is finite."""
    h, strays = ising.level_counts(energies, exact_e, weights)
    if strays:
        raise ValueError(f"{strays} sampled energies are not allowed levels of the exact distribution")
    h /= h.sum()
    nz = h > 0
    return float((h[nz] * np.log(h[nz] / exact_p[nz])).sum())


# ----------------------------------------------------------------------------- the report
def default_betas(beta_train: float) -> list[float]:
    """The training beta and a grid around it (+-0.1 in steps of 0.025)."""
    grid = beta_train + 0.025 * np.arange(-4, 5)
    return [round(float(b), 6) for b in grid if b > 0]


def thermodynamics(model, n_samples: int, betas=None, seed: int = 0, order: str = "rows",
                   batch_size: int = 8192, progress: bool = False) -> tuple[dict, dict]:
    """Sample the model and estimate F, U, C at every beta. Returns (report dict for
    thermo.json, arrays {"grids", "energies", "log_q"} for the plots)."""
    hp = model.hparams
    n_x, n_y, beta_train, kind = int(hp.n_x), int(hp.n_y), float(hp.beta), model.system
    s = n_x * n_y
    grids, log_q = model.sample(n_samples, seed=seed, order=order, batch_size=batch_size, progress=progress)
    e = lattice_energy(grids, kind)
    f_q, f_q_err = variational_free_energy(e, log_q, beta_train, s)
    rows = []
    for b in sorted(set(betas or default_betas(beta_train)) | {beta_train}):
        rows.append({**estimates(e, log_q, b, s, seed=seed), **exact_values(n_x, n_y, b, kind)})
    exact_f = exact_values(n_x, n_y, beta_train, kind)["F_exact_per_site"]
    report = {
        "beta_train": beta_train, "n_x": n_x, "n_y": n_y, "hamiltonian": kind.name, "n_samples": int(n_samples),
        "order": order, "seed": seed,
        "variational_F_per_site": f_q, "variational_F_err": f_q_err,
        # KL(q || p) = beta (F_q - F) for the whole lattice, in nats
        "kl_q_p_nats": None if exact_f is None else beta_train * s * (f_q - exact_f),
        "rows": rows,
    }
    instance = hamiltonians.instance_attrs(kind)
    if instance is not None:  # a spin-glass instance: its couplings, so the report names what it was computed for
        report["instance"] = instance
    try:
        ee, pp = exact_energy_distribution(n_x, n_y, beta_train, kind)
        lw = -beta_train * e - log_q
        report["energy_kl_nats"] = {"raw": histogram_kl(e, ee, pp),
                                    "reweighted": histogram_kl(e, ee, pp, np.exp(lw - lw.max()))}
    except ValueError:
        report["energy_kl_nats"] = None
    return report, {"grids": grids, "energies": e, "log_q": log_q}


# ----------------------------------------------------------------------------- plots
def plot_thermodynamics(report: dict, arrays: dict, images_dir, mc_grids=None, prefix: str = "thermodynamics"):
    """Two figures: F, U, C against beta beside the exact curves; the sampled energy histogram
    against the exact P(E) at the training beta (raw and reweighted) with a few sampled and
    Monte Carlo lattices; a Potts run's figures carry the Hamiltonian as a caption, and where the
    lattice has no exact values the exact curves are left out. Returns the paths written."""
    from plotting import plt, save_figure

    n_x, n_y, kind, bt = report["n_x"], report["n_y"], report_system(report), report["beta_train"]
    s, q, caption = n_x * n_y, states(kind), describe(kind)
    if caption:
        caption = f"{caption}, {n_x} × {n_y}, trained at β = {bt:g}"
    rows = [r for r in report["rows"] if r["F_per_site"] is not None]
    fine = [r["beta"] for r in report["rows"]]           # the exact values are in the rows already
    exact = report["rows"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    for ax, key, label in zip(axes, ("F", "U", "C"), ("free energy F / N", "internal energy U / N",
                                                       "heat capacity C / N")):
        values = [x[f"{key}_exact_per_site"] for x in exact]
        if any(v is not None for v in values):
            ax.plot(fine, [np.nan if v is None else v for v in values], "k-", lw=1, label="exact (finite lattice)")
        ax.errorbar([r["beta"] for r in rows], [r[f"{key}_per_site"] for r in rows],
                    yerr=[2 * r[f"{key}_err"] for r in rows], fmt="o", ms=4, capsize=3, label="model samples ±2σ")
        ax.axvline(bt, color="grey", ls=":", lw=1)
        ax.set_xlabel("β")
        ax.set_title(label)
    axes[0].legend(fontsize=8)
    if caption:
        fig.suptitle(caption)
    paths = [Path(images_dir) / f"{prefix}_estimates.png", Path(images_dir) / f"{prefix}_samples.png"]
    save_figure(fig, paths[0])

    e, log_q = arrays["energies"], arrays["log_q"]
    try:
        ee, pp = exact_energy_distribution(n_x, n_y, bt, kind)
    except ValueError:                                   # no exact P(E): the sampled levels only
        ee, pp = np.unique(e), None
    lw = -bt * e - log_q
    w = np.exp(lw - lw.max())
    raw = ising.level_counts(e, ee)[0] / len(e)
    rew = ising.level_counts(e, ee, w)[0] / w.sum()
    n_show = 4
    fig, axes = plt.subplots(2, 1 + n_show, figsize=(3 * (1 + n_show), 6), constrained_layout=True,
                             gridspec_kw={"width_ratios": [3] + [1] * n_show})
    gs = axes[0, 0].get_gridspec()
    for ax in axes[:, 0]:
        ax.remove()
    ax = fig.add_subplot(gs[:, 0])
    kl = report.get("energy_kl_nats")
    if pp is not None:
        ax.semilogy(ee / s, pp, "k-", lw=1.5, label="exact P(E)")
    ax.semilogy(ee / s, np.where(raw > 0, raw, np.nan), "o", ms=3,
                label=f"model samples (KL {kl['raw']:.2g})" if kl else "model samples")
    ax.semilogy(ee / s, np.where(rew > 0, rew, np.nan), "x", ms=4,
                label=f"reweighted (KL {kl['reweighted']:.2g})" if kl else "reweighted")
    ax.set_xlabel("E / N")
    ax.set_title(f"energies at the training β = {bt:g}, {len(e):,} samples")
    ax.legend(fontsize=8)
    for k in range(n_show):
        for r, (grids, name) in enumerate(((arrays["grids"], "model"), (mc_grids, "Monte Carlo"))):
            a = axes[r, 1 + k]
            a.set_xticks([])
            a.set_yticks([])
            if grids is not None and k < len(grids):
                a.imshow(grids[k], cmap="gray", vmin=-1 if q == 2 else 0, vmax=1 if q == 2 else q - 1)
                a.set_title(f"{name}, E = {lattice_energy(grids[k], kind):g}", fontsize=8)
    if caption:
        fig.suptitle(caption)
    save_figure(fig, paths[1])
    return paths


def _exact(value, spec: str) -> str:
    """An exact value for the table, a dash where there is none."""
    return "—" if value is None else format(value, spec)


def markdown_rows(report: dict) -> str:
    """The README table: beta, ESS/N, F error against exact (in standard errors), U, C; a Potts
    run's table has a caption line first, and a missing exact value is a dash."""
    caption = describe(report_system(report))
    lines = [] if caption is None else [f"{caption}, {report['n_x']} × {report['n_y']}, trained at "
                                        f"β = {report['beta_train']:g}", ""]
    lines += ["| β | ESS/N | F/N (model) | F/N exact | rel. error | U/N (model) | U/N exact | C/N (model) | "
              "C/N exact |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        if r["F_per_site"] is None:
            lines.append(f"| {r['beta']:g} | {r['ess_fraction']:.3g} | — (ESS/N < {MIN_ESS}) | | | | | | |")
            continue
        f_exact = r["F_exact_per_site"]
        rel = "—" if f_exact is None else f"{abs(r['F_per_site'] / f_exact - 1) if f_exact else float('nan'):.1e}"
        lines.append(f"| {r['beta']:g} | {r['ess_fraction']:.3f} | {r['F_per_site']:.6f} ± {r['F_err']:.1e} | "
                     f"{_exact(r['F_exact_per_site'], '.6f')} | {rel} | {r['U_per_site']:.4f} ± {r['U_err']:.4f} | "
                     f"{_exact(r['U_exact_per_site'], '.4f')} | {r['C_per_site']:.4f} ± {r['C_err']:.4f} | "
                     f"{_exact(r['C_exact_per_site'], '.4f')} |")
    return "\n".join(lines)


def holds_system(path, system) -> bool:
    """Whether a data file holds lattices of `system` (its attributes name the same Hamiltonian and, for a
    spin glass, the same couplings); a one-line UserError for a file that cannot be read."""
    from data_files import check_data_file, file_system

    found = file_system(path, check_data_file(path))
    return found is not None and hamiltonians.same_system(found, system)


def monte_carlo_lattices(path, shape, n: int = 8, q: int = 2):
    """The first n lattices of a Monte Carlo file if they have `shape` (n_x, n_y) and are of the
    model of `q` (2: Ising; a Potts q), else None (for the plot)."""
    from data_files import dataset, file_q, open_h5

    if path is None or not Path(path).is_file():
        return None
    with open_h5(path) as f:
        grids = dataset(f, "ising_grids")
        return grids[:n] if tuple(grids.shape[1:]) == tuple(shape) and file_q(f) == q else None


# ----------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Free energy, internal energy and heat capacity from a trained causal "
                                "probability model's own samples (importance sampling), beside the exact values.",
                                formatter_class=HelpFormatter)
    p.add_argument("--run", required=True, help="run directory of a causal probability model (holds best.ckpt)")
    p.add_argument("--n_samples", type=positive_int, default=100_000, help="lattices drawn from the model")
    p.add_argument("--betas", type=positive_float, nargs="+", default=None,
                   help="inverse temperatures (default: the training beta and a grid of ±0.1 around it)")
    p.add_argument("--order", choices=("rows", "cols"), default="rows", help="branch of a 2D model to sample")
    p.add_argument("--seed", type=seed_int, default=0, help="sampling seed")
    p.add_argument("--out", default=None, help="folder for thermo.json and the plots (default: the run directory)")
    p.add_argument("--images", default=None, help="folder for the plots (default: --out)")
    p.add_argument("--mc_path", default=None, help="Monte Carlo file to show lattices from, of the run's model "
                   "(default: the standard test file, data/potts<q>/'s for a Potts run, if present)")
    p.add_argument("--batch_size", type=positive_int, default=8192, help="lattices sampled at once")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--progress_bar", default=True, action=argparse.BooleanOptionalAction,
                   help="progress bar while sampling (only on a terminal)")
    args = p.parse_args(argv)
    if args.n_samples < 2:
        p.error("--n_samples must be >= 2")
    import torch

    from checks import atomic_path, write_json
    from data_files import check_data_file, ea_path, file_system, path as data_path
    from runs import load_probability_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model, kind = load_probability_model(args.run, "--run")
    if model.hparams.bidirectional:
        raise UserError(f"--run {args.run}: this is {kind}, which is not a normalised distribution over lattices; "
                        "thermodynamics needs a causal probability model (trained without --bidirectional)")
    if args.order not in model.orders:
        raise UserError(f"--order {args.order}: {kind} reads only the {' and '.join(model.orders)} snake")
    # everything that could stop the command after the sampling is checked before it
    out = Path(args.out or args.run)
    check_output_dir("--out", out)
    check_output_dir("--images", args.images or out)
    system = model.system
    q = system.q
    if args.mc_path:
        if not holds_system(args.mc_path, system):
            mc_system = file_system(args.mc_path, check_data_file(args.mc_path))
            shown = "a learned table's lattices" if mc_system is None else _lattices(mc_system)
            raise UserError(f"--mc_path {args.mc_path} holds {shown}, but --run {args.run} is a model "
                            f"of {_lattices(system)}: show lattices of the run's own model")
        mc_path = args.mc_path
    else:  # the standard test file of the run's own system, shown only if it is there
        standard = (data_path("test", "data" if q == 2 else f"data/potts{q}", q), ea_path("test"))
        mc_path = next((p for p in standard if Path(p).is_file() and holds_system(p, system)), None)
    report, arrays = thermodynamics(model, args.n_samples, args.betas, args.seed, args.order, args.batch_size,
                                    progress=args.progress_bar)
    report["run"] = str(args.run)
    mc = monte_carlo_lattices(mc_path, arrays["grids"].shape[1:], q=q)
    plot_thermodynamics(report, arrays, args.images or out, mc)
    write_json(out / "thermo.json", report)
    with atomic_path(out / "thermo.md") as tmp:
        tmp.write_text(markdown_rows(report) + "\n")
    print(markdown_rows(report))
    kl = "n/a" if report["kl_q_p_nats"] is None else f"{report['kl_q_p_nats']:.4g} nats"
    print(f"variational F/N {report['variational_F_per_site']:.6f}, KL(q||p) {kl}; wrote {out / 'thermo.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
