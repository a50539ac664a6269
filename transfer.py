"""Size transfer: energies of lattices larger than any a model was trained on.

    python transfer.py --runs weights --sizes 16 32 64 [--betas 0.2 0.3 0.4 0.44]
    python transfer.py --runs runs --sizes 16 32 --n 100 --out results/transfer
    python transfer.py --runs weights/energy/EDNN_F1_C1_hid16x2 weights/energy/EDNN_F1_C1_hid16x2_ISING2   # some runs
    python transfer.py --runs runs/energy/EDNN_F1_C1_hid16x2_Q3 --sizes 16 32 64   # a q = 3 Potts run

For each Hamiltonian among the runs, each size L and the betas, `generate_ising.py` writes (or a
previous call left) `<data_dir>/<hamiltonian>_<L>x<L>_<n>_b<betas>.hdf5` with n lattices per beta
and their true energies (`ising.energy`, or `potts.energy` for a Potts run). Every run
predicts their energies through its own `predict_energy` (sequence models included: they read a
sequence of any length, which is not the same as knowing the energy of a wider lattice; an
extensive model is skipped at sizes its tiles do not cover), and
the scores are per site, so that sizes compare:
    per-site RMSE          sqrt(mean (E_pred - E)^2) / L^2        (models of absolute energies)
    per-site centred RMSE  the same after centring both by their means, per (size, beta)
    U/N shift              (<d> - beta Cov(d, E)) / L^2, d = E_pred - E   (models of absolute energies)
The U/N shift is what the model's own energy, simulated as a Hamiltonian at the same beta, does to
U/N, to first order in d: d/dt of <E + t d>_{beta, E + t d} at t = 0 (Boltzmann weights of E + t d).
Near T_c the covariance term dominates (C/N is large), so an energy error far below 1e-3 per site can
move U/N by 1e-3. Its error is the standard error of the mean of d_i - beta (d_i - <d>)(E_i - <E>),
with the file's lattices taken as independent (they are thinned by the energy's tau_int).
The rows go to `<out>/transfer.{md,csv,json}` and a plot of the centred figure against L.

The q-state Potts model: a run trained on POTTS<q> lattices (its hyper-parameter `hamiltonian`)
is scored on POTTS<q> lattices of the larger sizes, drawn by the Potts sampler. Without --betas,
Ising runs are scored at DEFAULT_BETAS (0.2 0.3 0.4 0.44, up to ISING1's beta_c = 0.4407) and
Potts runs at POTTS_BETA_FACTORS times beta_c(q) = ln(1 + sqrt q), to 0.1: 0.6 0.8 1.0 1.2 1.4
for q = 3 (beta_c 1.005: three betas in the disordered phase, up to the transition, two in the
ordered one); --betas sets the betas of every run. The table gets a Hamiltonian column when a
Potts run is among the rows (Ising-only tables are unchanged).
A progress bar over the (run, size) pairs shows on a terminal (`--no-progress_bar` hides it).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from checks import HelpFormatter, UserError, check_output_dir, main_guard, positive_float, positive_int
from checks import atomic_path
from data_files import dataset, open_h5, read_metadata
from ising import centred_rmse, rmse
from plotting import plt, save_figure
from potts import Potts, beta_c
from runs import find_runs, lattice_problem, load_model, predict

DEFAULT_BETAS = (0.2, 0.3, 0.4, 0.44)            # Ising runs: up to beta_c = 0.4407 (ISING1)
POTTS_BETA_FACTORS = (0.6, 0.8, 1.0, 1.2, 1.4)   # Potts runs: these times beta_c(q), to 0.1
ATTENTION_BUDGET = 2**24  # floats of one attention matrix batch: B L^2 at most


def default_betas(hamiltonian: str) -> tuple:
    """The betas a run of `hamiltonian` is scored at without --betas: DEFAULT_BETAS for Ising;
    for "POTTS<q>" POTTS_BETA_FACTORS x beta_c(q), rounded to 0.1 (q = 3: 0.6 0.8 1.0 1.2 1.4)."""
    potts = Potts.from_name(hamiltonian)
    if potts is None:
        return DEFAULT_BETAS
    return tuple(round(f * beta_c(potts.q), 1) for f in POTTS_BETA_FACTORS)


def transfer_path(hamiltonian: str, size: int, betas, n: int, data_dir) -> Path:
    """Where `transfer_file` keeps the lattices of one Hamiltonian and size at `betas`, n per beta."""
    return Path(data_dir) / f"{hamiltonian}_{size}x{size}_{n}_b{'-'.join(f'{b:g}' for b in betas)}.hdf5"


def transfer_file(hamiltonian: str, size: int, betas, n: int, data_dir) -> Path:
    """The lattices of one Hamiltonian and size at `betas`, n per beta: reused when a file with
    these betas exists, else written by the sampler (its seed depends on the size only);
    any built-in name (POTTS<q> too) is sampled as itself."""
    path = transfer_path(hamiltonian, size, betas, n, data_dir)
    if not path.is_file():
        from sampler import generate                  # JAX: only when something is sampled

        path.parent.mkdir(parents=True, exist_ok=True)
        generate(path, hamiltonian=hamiltonian, n_x=size, n_y=size, betas=tuple(betas), n_samples=n,
                 random_seed=1000 + size, progress=False)
    return path


def batch_size(model, size: int) -> int:
    """Lattices per forward pass: small enough that attention's (L^2 x L^2) weights fit."""
    if getattr(model.hparams, "attention", False):
        return max(1, ATTENTION_BUDGET // size**4)
    return 512 if size <= 32 else 64


def u_shift(pred: np.ndarray, true: np.ndarray, beta: float) -> tuple[float, float]:
    """(U shift, its standard error) of a model's energies pred against the true ones, float (n,) of
    lattices drawn at beta: <d> - beta Cov(d, E), d = pred - true (the module's docstring)."""
    d = np.asarray(pred, np.float64) - true
    g = d - beta * (d - d.mean()) * (true - true.mean())
    return float(g.mean()), float(g.std(ddof=1) / np.sqrt(len(g)))


def score(pred: np.ndarray, true: np.ndarray, betas: np.ndarray, n_sites: int, absolute: bool) -> dict:
    """Per-site RMSE (raw for absolute models; centred within each beta) and, for absolute models, the
    first-order U/N shift with its error, per beta."""
    out = {}
    for b in np.unique(betas):
        m = betas == b
        shift, err = (x / n_sites for x in u_shift(pred[m], true[m], float(b))) if absolute else (None, None)
        out[f"{b:.4g}"] = {"rmse_per_site_centred": centred_rmse(pred[m], true[m]) / n_sites,
                           "rmse_per_site": rmse(pred[m], true[m]) / n_sites if absolute else None,
                           "energy_std_per_site": float(true[m].std()) / n_sites,
                           "u_shift_per_site": shift, "u_shift_err": err}
    return out


def read_lattices(path, hamiltonian=None):
    """(grids, true energies float64, betas) of a lattices file; one-line errors for a broken one,
    or for one of another Hamiltonian than `hamiltonian` (if given: "ISING1", "POTTS3", ...)."""
    with open_h5(path) as f:
        grids, true, beta = (dataset(f, k)[()] for k in ("ising_grids", "true_energies", "beta"))
    found = read_metadata(path)["hamiltonian"]
    if hamiltonian is not None and found not in (None, hamiltonian):
        raise UserError(f"{path} holds {found} lattices, not {hamiltonian} ones; remove it and run again")
    return grids, true.astype(np.float64), beta


def transfer(runs_root, sizes, betas=None, n: int = 200, data_dir="data/transfer", progress=True,
             progress_bar=True) -> list:
    """One row per (run, size, beta) of the runs under `runs_root` (a folder or a run, or a list of
    them). Every run is scored on lattices of the Hamiltonian it was trained on (Ising or
    Potts), at `betas`, or where None at `default_betas` of its Hamiltonian; a size a run cannot
    read (an extensive model whose tiles do not cover it) is skipped with a line on stderr. `progress`: a line per (run, size); `progress_bar`: a bar
    over the (run, size) pairs, on a terminal only."""
    from tqdm.auto import tqdm

    roots = [runs_root] if isinstance(runs_root, (str, Path)) else list(runs_root)
    runs = [run for root in roots for run in find_runs(root)]
    if not runs:
        raise UserError(f"no runs (folders with metrics.json and best.ckpt) under {' '.join(map(str, roots))}")
    pairs, skipped = [], []
    for run in runs:
        for size in sizes:
            problem = lattice_problem(run.metrics.get("config", {}), size, size)
            if problem:
                skipped.append(f"skipping {run.label} at {size}x{size}: {problem}")
            else:
                pairs.append((run, size))
    if not pairs:
        raise UserError(f"no run under {' '.join(map(str, roots))} can read lattices of the sizes {' '.join(map(str, sizes))}"
                        + (f" ({skipped[0].split(': ', 1)[1]})" if len(skipped) == 1 else ""))
    for line in skipped:
        print(line, file=sys.stderr)
    rows, model, loaded = [], None, None
    with tqdm(pairs, desc="transfer", unit="pair", disable=None if progress and progress_bar else True) as bar:
        for run, size in bar:
            bar.set_postfix_str(f"{run.label} {size}x{size}", refresh=True)
            if loaded is not run:  # the pairs of a run are consecutive: one load each
                model, loaded = load_model(run), run
            kind = str(model.hparams.hamiltonian)
            run_betas = default_betas(kind) if betas is None else tuple(betas)
            grids, true, beta = read_lattices(transfer_file(kind, size, run_betas, n, data_dir), kind)
            t0 = time.perf_counter()
            pred = predict(model, grids, batch_size=batch_size(model, size))
            per_beta = score(pred, true, beta, size * size, model.absolute_energy)
            if progress:
                worst = max(v["rmse_per_site_centred"] for v in per_beta.values())
                bar.write(f"{run.label} {size}x{size}: centred per-site RMSE <= {worst:.3g} "
                          f"({time.perf_counter() - t0:.0f} s)", file=sys.stdout)
                sys.stdout.flush()
            for b, values in per_beta.items():
                rows.append({"run": run.label, "hamiltonian": kind, "trained_on": f"{model.hparams.n_x}x{model.hparams.n_y}",
                             "size": size, "beta": float(b), **values})
    return rows


def markdown(rows: list) -> str:
    """The rows as a table; with a Hamiltonian column (and its beta_c) when a Potts run is among them."""
    named = any(Potts.from_name(r["hamiltonian"]) for r in rows)
    column = " Hamiltonian |" if named else ""
    lines = [f"| Run |{column} Size | β | per-site RMSE (centred) | per-site RMSE (raw) | energy std per site | "
             "U/N shift (first order) |", "|---|" + ("---|" if named else "") + "---|---|---|---|---|---|"]
    for r in rows:
        raw = "—" if r["rmse_per_site"] is None else f"{r['rmse_per_site']:.2e}"
        shift = "—" if r.get("u_shift_per_site") is None else f"{r['u_shift_per_site']:+.1e} ± {r['u_shift_err']:.0e}"
        potts = Potts.from_name(r["hamiltonian"])
        ham = ""
        if named:
            ham = f" {r['hamiltonian']}{f' (β_c {beta_c(potts.q):.4g})' if potts else ''} |"
        lines.append(f"| `{r['run']}` |{ham} {r['size']} | {r['beta']:g} | {r['rmse_per_site_centred']:.2e} | {raw} | "
                     f"{r['energy_std_per_site']:.3f} | {shift} |")
    return "\n".join(lines) + "\n"


def write(rows: list, out_dir, images_dir) -> list[Path]:
    out = Path(out_dir)
    paths = [out / "transfer.md", out / "transfer.json", out / "transfer.csv", Path(images_dir) / "transfer_plot.png"]
    with atomic_path(paths[0]) as tmp:
        tmp.write_text(markdown(rows))
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(json.dumps(rows, indent=2))
    with atomic_path(paths[2]) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    betas = sorted({r["beta"] for r in rows})
    fig, axes = plt.subplots(1, len(betas), figsize=(3.6 * len(betas), 3.4), sharey=True, squeeze=False,
                             constrained_layout=True)
    for ax, b in zip(axes[0], betas):
        for run in dict.fromkeys(r["run"] for r in rows):
            pts = sorted((r["size"], r["rmse_per_site_centred"]) for r in rows if r["run"] == run and r["beta"] == b)
            ax.plot(*zip(*pts), "o-", ms=4, label=run)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("lattice side L")
        ax.set_title(f"β = {b:g}")
    axes[0, 0].set_ylabel("per-site RMSE, centred")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), fontsize=7)   # below the panels
    save_figure(fig, paths[3])
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Energies of larger lattices than the training ones: "
                                "per-site RMSE of every run per size and beta.",
                                formatter_class=HelpFormatter)
    p.add_argument("--runs", nargs="+", default=["runs"], help="folders of runs (<family>/<config>/), or runs")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[16, 32, 64], help="lattice sides L (L x L)")
    p.add_argument("--betas", type=positive_float, nargs="+", default=argparse.SUPPRESS,
                   help="inverse temperatures of every run (default: 0.2 0.3 0.4 0.44 for Ising runs, "
                   f"{' '.join(map(str, POTTS_BETA_FACTORS))} x beta_c(q) to 0.1 for POTTS<q> runs: "
                   f"{' '.join(f'{b:g}' for b in default_betas('POTTS3'))} for q = 3)")
    p.add_argument("--n", type=positive_int, default=200, help="lattices per size and beta")
    p.add_argument("--data_dir", default="data/transfer", help="where the lattices are written and reused")
    p.add_argument("--out", default="results/transfer", help="where transfer.{md,csv,json} go")
    p.add_argument("--images", default=None, help="where transfer_plot.png goes (default: --out)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--progress_bar", default=True, action=argparse.BooleanOptionalAction,
                   help="progress bar over the (run, size) pairs (only on a terminal)")
    args = p.parse_args(argv)
    if min(args.sizes) < 2 or args.n < 2:
        p.error("--sizes and --n must be >= 2")
    for flag, folder in (("--data_dir", args.data_dir), ("--out", args.out), ("--images", args.images or args.out)):
        check_output_dir(flag, folder)  # before the sampling and scoring, not after
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = transfer(args.runs, args.sizes, getattr(args, "betas", None), args.n, args.data_dir,
                    progress_bar=args.progress_bar)
    print(markdown(rows))
    for path in write(rows, args.out, args.images or args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
