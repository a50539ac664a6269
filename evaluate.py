"""Evaluate trained runs: the leaderboard, the predictions plot, the attention plot.

Also the physics consistency checks of the data files (exact finite-lattice energy
distributions by transfer matrix), so that the notebooks hold no logic of their own.

Reference protocol (SEED_FACTS): 32,000 lattices drawn with replacement (fixed seed) from
`data/eval_data.hdf5`; predictions and true energies are each centred by their own mean
(the probability route knows E only up to a constant) and the RMSE of the difference is
the score.

    python evaluate.py --runs runs --eval_path data/eval_data.hdf5 --out results
    python evaluate.py train-all --profile cpu     # train every combination, then evaluate
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ising import chi_square_test, exact_energy_distribution, exact_mean_energy

ROOT = Path(__file__).resolve().parent
N_EVAL = 32_000
EVAL_SEED = 0


def _file_info(f: h5py.File) -> dict:
    a = f.attrs
    return {"model": str(a["model"]), "n_x": int(a["n_x"]), "n_y": int(a["n_y"]),
            "betas": [float(b) for b in np.atleast_1d(a["betas"])]}


def energy_histogram_check(path, max_samples: int = 200_000) -> list[dict]:
    """For every beta of an HDF5 data file: sampled energy histogram against the exact one.

    Returns one dict per beta: beta, n, energies (K,), exact probs (K,), observed counts (K,),
    chi2, dof, p_value, mean ± standard error against the exact mean.
    """
    with h5py.File(path, "r") as f:
        info = _file_info(f)
        n = min(f["true_energies"].shape[0], max_samples)
        energies = f["true_energies"][:n].astype(np.float64)
        betas = f["beta"][:n].astype(np.float64)
    out = []
    for beta in info["betas"]:
        sel = energies[np.isclose(betas, beta)]
        e_exact, p_exact = exact_energy_distribution(info["n_x"], info["n_y"], beta, info["model"])
        # each sample's exact level (energies are multiples of 1/2, exact in float32)
        idx = np.clip(np.searchsorted(e_exact, sel), 0, len(e_exact) - 1)
        hit = np.isclose(e_exact[idx], sel)
        counts = np.bincount(idx[hit], minlength=len(e_exact)).astype(np.float64)
        stray = len(sel) - counts.sum()  # sampled energies the exact distribution calls (nearly) impossible
        stat, dof, p = chi_square_test(counts, p_exact)
        mean_exact = float((e_exact * p_exact).sum())
        out.append({
            "file": str(path), "beta": beta, "n": int(len(sel)), "energies": e_exact, "exact_probs": p_exact,
            "counts": counts, "stray_samples": int(stray), "chi2": stat, "dof": dof, "p_value": p,
            "mean": float(sel.mean()), "sem": float(sel.std(ddof=1) / np.sqrt(len(sel))), "exact_mean": mean_exact,
        })
    return out


def plot_energy_histograms(checks: list[dict], path, ncols: int = 3):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nrows = math.ceil(len(checks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.2 * nrows), squeeze=False)
    for ax, c in zip(axes.flat, checks):
        width = np.min(np.diff(c["energies"])) * 0.8 if len(c["energies"]) > 1 else 1.0
        ax.bar(c["energies"], c["counts"] / c["n"], width=width, alpha=0.6, label="sampled")
        ax.plot(c["energies"], c["exact_probs"], "k.-", lw=1, ms=3, label="exact")
        ax.set_title(f"{Path(c['file']).stem}  β={c['beta']:.3g}\nχ²/dof={c['chi2']:.0f}/{c['dof']}, p={c['p_value']:.2g}",
                     fontsize=9)
        ax.set_xlabel("E")
        ax.set_ylabel("P(E)")
    for ax in list(axes.flat)[len(checks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def magnetisation_by_beta(path, max_samples: int = 200_000) -> dict:
    """{beta: per-site magnetisation m = mean spin, float64 (n,)} from a data file."""
    with h5py.File(path, "r") as f:
        n = min(f["ising_grids"].shape[0], max_samples)
        m = f["ising_grids"][:n].astype(np.float64).mean(axis=(1, 2))
        betas = f["beta"][:n].astype(np.float64)
    return {float(b): m[betas == b] for b in np.unique(betas)}


def data_file_summary(path) -> dict:
    """One row about a data file: size, model, lattice, betas, sampler settings."""
    with h5py.File(path, "r") as f:
        info = _file_info(f)
        a = f.attrs
        acc = np.atleast_1d(a.get("acceptance_rate", np.nan)).astype(float)
        return {"file": Path(path).name, "n": int(f["ising_grids"].shape[0]), "model": info["model"],
                "lattice": f"{info['n_x']}x{info['n_y']}", "n_betas": len(info["betas"]),
                "betas": f"{min(info['betas']):.3g}…{max(info['betas']):.3g}" if len(info["betas"]) > 1
                else f"{info['betas'][0]:.3g}",
                "algorithm": str(a.get("algorithm", "?")), "chains": int(a.get("n_chains", -1)),
                "burn_in": int(a.get("burn_in_sweeps", -1)), "thin": int(a.get("thin_sweeps", -1)),
                "acceptance": f"{acc.min():.3f}…{acc.max():.3f}" if acc.size > 1 else f"{acc[0]:.3f}"}


def markdown_table(rows: list[dict]) -> str:
    """A list of flat dicts as a Markdown table (floats to 4 significant digits)."""
    if not rows:
        return "_(nothing)_\n"
    cols = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_mean_energy(checks: list[dict], path):
    """Sampled <E> ± 2 SE per beta against the exact finite-lattice curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = np.array([c["beta"] for c in checks])
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    ax.plot(b, [c["exact_mean"] for c in checks], "k-", lw=1, label="exact (transfer matrix)")
    ax.errorbar(b, [c["mean"] for c in checks], yerr=[2 * c["sem"] for c in checks], fmt="o", ms=3, label="sampled ± 2 SE")
    ax.set_ylabel("<E>")
    ax.legend()
    ax2.axhline(0, color="k", lw=0.8)
    ax2.plot(b, [(c["mean"] - c["exact_mean"]) / c["sem"] for c in checks], "o", ms=3)
    ax2.axhspan(-2, 2, color="0.85")
    ax2.set_ylabel("(sampled − exact) / SE")
    ax2.set_xlabel("β")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def sampler_diagnostics(path) -> dict:
    """Acceptance rate and integrated autocorrelation time of the energy (sweeps) per beta, as
    recorded by the sampler in the file's attributes; thin is the spacing of stored samples."""
    with h5py.File(path, "r") as f:
        a = f.attrs
        betas = np.atleast_1d(a["betas"]).astype(float)
        acc = np.atleast_1d(a["acceptance_rate"]).astype(float)
        tau = np.atleast_1d(a.get("tau_int_sweeps", np.full(len(betas), np.nan))).astype(float)
        thin = int(a["thin_sweeps"])
    table = [{"beta": b, "acceptance": ac, "tau_int (sweeps)": t, "thin (sweeps)": thin}
             for b, ac, t in zip(betas, acc, tau)]
    return {"betas": betas, "acceptance": acc, "tau_int": tau, "thin": thin, "table": table}


def plot_sampler_diagnostics(diag: dict, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        a.axvline(0.5 * np.log(1 + np.sqrt(2)), color="0.6", ls=":", lw=1)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_magnetisation(mags: dict, path, n_hist: int = 4):
    """<|m|> against beta, and histograms of m at a few betas."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    betas = sorted(mags)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax.plot(betas, [np.abs(mags[b]).mean() for b in betas], "o-", ms=3)
    ax.axvline(0.5 * np.log(1 + np.sqrt(2)), color="k", ls="--", lw=1, label="β_c (infinite lattice)")
    ax.set_xlabel("β")
    ax.set_ylabel("<|m|>")
    ax.legend()
    for b in [betas[i] for i in np.linspace(0, len(betas) - 1, min(n_hist, len(betas))).astype(int)]:
        ax2.hist(mags[b], bins=33, range=(-1.03, 1.03), histtype="step", density=True, label=f"β={b:.3g}")
    ax2.set_xlabel("m")
    ax2.set_ylabel("density")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


# ----------------------------------------------------------------------------------------
# Scores
# ----------------------------------------------------------------------------------------
def centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean()


def centred_rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """RMSE after centring predictions and truths by their own means (reference protocol)."""
    return float(np.sqrt(np.mean((centred(pred) - centred(true)) ** 2)))


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    d = np.asarray(pred, np.float64) - np.asarray(true, np.float64)
    return float(np.sqrt(np.mean(d**2)))


def eval_indices(n_total: int, n: int = N_EVAL, seed: int = EVAL_SEED) -> np.ndarray:
    """Reference protocol: n indices drawn uniformly WITH replacement, fixed seed."""
    return np.random.default_rng(seed).integers(0, n_total, size=n)


def load_eval_set(path, n: int = N_EVAL, seed: int = EVAL_SEED):
    """grids int8 (n, n_x, n_y), energies float64 (n,), betas float64 (n,) from an HDF5 file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found; make it with `make data` (or `python generate_ising.py "
            f"--beta_min ... --beta_max ... --n_beta_samples ... --filename {path}`)"
        )
    with h5py.File(path, "r") as f:
        total = f["ising_grids"].shape[0]
        idx = eval_indices(total, n, seed)
        uniq, inv = np.unique(idx, return_inverse=True)  # h5py wants increasing indices
        grids = f["ising_grids"][uniq][inv]
        energies = f["true_energies"][uniq][inv].astype(np.float64)
        betas = f["beta"][uniq][inv].astype(np.float64)
    return grids, energies, betas


# ----------------------------------------------------------------------------------------
# Runs: discover, load, predict
# ----------------------------------------------------------------------------------------
# Published RMSE (SEED_FACTS), keyed by (family, attention, two_d, bidirectional), GRU cells.
REFERENCE_RMSE = {
    ("energy", True, True, True): 7.79,
    ("energy", True, False, True): 11.26,
    ("energy", True, False, False): 12.7,
    ("energy", False, True, True): 12.72,
    ("energy", False, False, True): 13.6,
    ("energy", False, True, False): 14.2,
    ("energy", False, False, False): 15.8,
    ("probability", False, False, False): 19.9,
    ("probability", False, True, False): 20.03,
}


def reference_rmse(row: dict):
    """The published RMSE of the same combination (reference head, GRU), or None."""
    if row.get("energy_head", "prob") not in (None, "prob") or str(row.get("cell") or "gru") != "gru":
        return None
    key = (row["family"], bool(row.get("attention")), bool(row.get("two_d")), bool(row.get("bidirectional")))
    return REFERENCE_RMSE.get(key)


FLAG_KEYS = ("cell", "bidirectional", "attention", "two_d", "energy_head", "hidden_size")


@dataclass
class Run:
    family: str  # "energy" | "probability"
    name: str  # config name, e.g. 2D_GRU_1L_1H_Bi_Attn
    dir: Path
    checkpoint: Path
    metrics: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.family}/{self.name}"


def find_runs(root) -> list[Run]:
    """Every `<root>/<family>/<config>/` holding metrics.json and a checkpoint."""
    runs = []
    for metrics_path in sorted(Path(root).glob("*/*/metrics.json")):
        run_dir = metrics_path.parent
        family = run_dir.parent.name
        if family not in ("energy", "probability"):
            continue
        metrics = json.loads(metrics_path.read_text())
        ckpt = metrics.get("best_checkpoint")
        ckpt = Path(ckpt) if ckpt else None
        if ckpt is None or not ckpt.exists():
            found = sorted(run_dir.rglob("*.ckpt"))
            if not found:
                continue
            ckpt = found[0]
        runs.append(Run(family, run_dir.name, run_dir, ckpt, metrics))
    return runs


def load_model(run: Run):
    import torch  # noqa: F401  (heavy imports only where needed)

    if run.family == "energy":
        from energy_models import EnergyModel as cls
    else:
        from probability_models import ProbabilityModel as cls
    model = cls.load_from_checkpoint(str(run.checkpoint), map_location="cpu")
    model.eval()
    return model


def predict(model, grids: np.ndarray, batch_size: int = 2048, return_attention: bool = False):
    """Energies float64 (N,) for grids (N, n_x, n_y) ±1, through model.predict_energy."""
    import torch

    out, attn_sum = [], None
    with torch.no_grad():
        for i in range(0, len(grids), batch_size):
            g = torch.as_tensor(np.asarray(grids[i : i + batch_size]), dtype=torch.float32)
            if return_attention:
                e, attn = model.predict_energy(g, return_attention=True)
                s = {k: v.sum(0).double().numpy() for k, v in attn.items()}
                attn_sum = s if attn_sum is None else {k: attn_sum[k] + s[k] for k in s}
            else:
                e = model.predict_energy(g)
            out.append(e.double().cpu().numpy())
    energies = np.concatenate(out)
    return (energies, attn_sum) if return_attention else energies


def n_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def predicts_absolute_energy(model, family: str) -> bool:
    """Energy regressors and the bidirectional (local-field) probability model predict E itself;
    the causal probability model knows E only up to log Z."""
    return family == "energy" or bool(getattr(model.hparams, "bidirectional", False))


def score_run(run: Run, grids, energies, betas, model=None) -> dict:
    model = model if model is not None else load_model(run)
    t0 = time.perf_counter()
    pred = predict(model, grids)
    seconds = time.perf_counter() - t0
    err = centred(pred) - centred(energies)
    per_beta = {f"{b:.4g}": float(np.sqrt(np.mean(err[betas == b] ** 2))) for b in np.unique(betas)}
    absolute = predicts_absolute_energy(model, run.family)
    hp = dict(model.hparams)
    return {
        **{k: hp.get(k) for k in FLAG_KEYS},
        "run": run.label,
        "family": run.family,
        "config": run.name,
        "rmse_centred": centred_rmse(pred, energies),
        "rmse_raw": rmse(pred, energies) if absolute else None,
        "rmse_per_beta": per_beta,
        "n_params": n_parameters(model),
        "test_rmse_centred": run.metrics.get("test_rmse_centred"),
        "epochs": run.metrics.get("epochs"),
        "train_time_s": run.metrics.get("train_time_s"),
        "predict_seconds": seconds,
        "_pred": pred,
        "_run": run,
    }


def describe(row: dict) -> str:
    """Readable model description like the reference table's ("Energy GRU + Attention + 2D")."""
    parts = [("Energy " if row["family"] == "energy" else "Probability ") + str(row.get("cell") or "gru").upper()]
    parts += [label for key, label in (("attention", "Attention"), ("two_d", "2D"), ("bidirectional", "Bidirectional"))
              if row.get(key)]
    if row.get("energy_head") == "site":
        parts.append("site head")
    return " + ".join(parts)


def select(rows: list[dict], family: str, **flags):
    """The first (best) row of `family` whose flags match (missing flags count as False/default)."""
    defaults = {"attention": False, "two_d": False, "bidirectional": False}
    for r in rows:
        if r["family"] != family:
            continue
        wanted = {**defaults, **flags}
        if family == "energy":
            wanted.setdefault("energy_head", "prob")
        if all((r.get(k) or False) == v if isinstance(v, bool) else r.get(k) == v for k, v in wanted.items()):
            return r
    return None


def evaluate_runs(runs_root, eval_path, n: int = N_EVAL, seed: int = EVAL_SEED, progress=True):
    """Score every run under runs_root; rows sorted by centred RMSE. Returns (rows, eval set)."""
    runs = find_runs(runs_root)
    if not runs:
        raise FileNotFoundError(
            f"no finished runs under {runs_root} (a run is <family>/<config>/metrics.json + *.ckpt); "
            "train with energy_trainer.py / probability_trainer.py or `make demo`"
        )
    grids, energies, betas = load_eval_set(eval_path, n, seed)
    rows = []
    iterator = runs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(runs, desc="evaluating runs", unit="run")
    for run in iterator:
        rows.append(score_run(run, grids, energies, betas))
    rows.sort(key=lambda r: r["rmse_centred"])
    return rows, (grids, energies, betas)


def leaderboard_markdown(rows: list[dict]) -> str:
    lines = [
        "| Model | Run | RMSE (centred) | Reference RMSE | RMSE (raw) | Params |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        raw = "—" if r["rmse_raw"] is None else f"{r['rmse_raw']:.3g}"
        ref = reference_rmse(r)
        ref = "—" if ref is None else f"{ref:g}"
        lines.append(f"| {describe(r)} | `{r['run']}` | {r['rmse_centred']:.3g} | {ref} | {raw} | {r['n_params']:,} |")
    return "\n".join(lines) + "\n"


def per_beta_markdown(rows: list[dict]) -> str:
    """RMSE per beta (globally centred errors), one row per run."""
    table = [{"model": describe(r), "run": r["run"], **{f"β={b}": v for b, v in r["rmse_per_beta"].items()}}
             for r in rows]
    return markdown_table(table)


def write_leaderboard(rows: list[dict], out_dir) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    paths = {"md": out / "leaderboard.md", "csv": out / "leaderboard.csv", "json": out / "leaderboard.json"}
    _atomic_write_text(paths["md"], leaderboard_markdown(rows))
    _atomic_write_text(paths["json"], json.dumps(clean, indent=2))
    tmp = paths["csv"].with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        cols = ["run", "family", "config", "rmse_centred", "rmse_raw", "n_params", "hidden_size", "epochs", "train_time_s"]
        w = csv.DictWriter(fh, fieldnames=cols + ["rmse_per_beta"])
        w.writeheader()
        for r in clean:
            w.writerow({**{c: r.get(c) for c in cols}, "rmse_per_beta": json.dumps(r["rmse_per_beta"])})
    os.replace(tmp, paths["csv"])
    return paths


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------
def error_by_energy(pred: np.ndarray, true: np.ndarray, min_count: int = 5):
    """Centred error grouped by centred true energy: (x, mean, std) over values seen >= min_count times."""
    x = centred(true)
    err = centred(pred) - x
    keys = np.round(x, 6)
    uniq, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, err)
    sq = np.bincount(inv, err**2)
    mean = sums / counts
    std = np.sqrt(np.maximum(sq / counts - mean**2, 0.0))
    ok = counts >= min_count
    return uniq[ok], mean[ok], std[ok]


def plot_predictions(curves: dict, true: np.ndarray, path, title: str | None = None):
    """curves: {label: predicted energies (N,)}; x = centred truth, y = centred error, ±2σ band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, pred in curves.items():
        x, m, s = error_by_energy(pred, true)
        line = ax.plot(x, m, label=label)[0]
        ax.fill_between(x, m - 2 * s, m + 2 * s, color=line.get_color(), alpha=0.25)
    ax.axhline(0.0, color="k", ls="--", lw=1)
    ax.set_xlabel("true energy (centred)")
    ax.set_ylabel("predicted − true energy (centred)")
    ax.set_title(title or "Prediction error against energy (mean ± 2σ)")
    ax.legend()
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def attention_map(attn: dict, n_x: int, n_y: int, query=(3, 4)) -> np.ndarray:
    """Attention weights of the query site `query` (row, col) over the lattice: float (n_x, n_y).

    attn: {"rows": (L_q, L_k) summed weights, optionally "cols": ...} indexed by sequence positions
    of the snake through rows / columns. 2D models: the mean of the two maps in grid space.
    """
    from pytorch_datasets import grid_to_flat, flat_to_grid

    maps = []
    for order, w in attn.items():
        w = np.asarray(w)
        q = grid_to_flat(query[0], query[1], n_x, n_y, order)
        if q >= w.shape[0]:  # causal models whose last position is never a query
            q = w.shape[0] - 1
        grid = np.zeros((n_x, n_y))
        for k in range(w.shape[1]):
            r, c = flat_to_grid(k, n_x, n_y, order)
            grid[r, c] += w[q, k]
        maps.append(grid)
    return np.mean(maps, axis=0)


def plot_attention(maps: dict, path, query=(3, 4)):
    """maps: {title: (n_x, n_y) array}, up to 4 panels in a 2 x 2 grid with a shared colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(8, 7.5))
    vmax = max(float(np.max(m)) for m in maps.values()) if maps else 1.0
    im = None
    for ax, (title, m) in zip(axes.flat, maps.items()):
        im = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=vmax)
        ax.plot(query[1], query[0], "x", color="red", ms=12, mew=3)
        ax.set_title(title)
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(m.shape[0]))
    for ax in list(axes.flat)[len(maps):]:
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="attention weight (summed over batch)")
    _save_figure(fig, path)
    plt.close(fig)


def _save_figure(fig, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------
# The whole report: leaderboard + both images
# ----------------------------------------------------------------------------------------
ATTENTION_PANELS = (  # (title, family, two_d), as in the reference figure
    ("Energy 2D", "energy", True),
    ("Probability 2D", "probability", True),
    ("Energy", "energy", False),
    ("Probability", "probability", False),
)


def attention_maps(rows: list[dict], grids: np.ndarray, batch: int = 512, query=(3, 4)) -> dict:
    """{panel title: (n_x, n_y) summed attention of the query site} for the attention runs among rows."""
    maps = {}
    for title, family, two_d in ATTENTION_PANELS:
        # prefer the unidirectional preset (the reference's), else the bidirectional one
        row = select(rows, family, attention=True, two_d=two_d) or select(
            rows, family, attention=True, two_d=two_d, bidirectional=True
        )
        if row is None:
            continue
        model = load_model(row["_run"])
        _, attn = predict(model, grids[:batch], batch_size=batch, return_attention=True)
        if attn:
            n_x, n_y = grids.shape[1:]
            maps[f"{title}{' (Bi)' if row.get('bidirectional') else ''}"] = attention_map(attn, n_x, n_y, query)
    return maps


def report(runs_root, eval_path, out_dir, images_dir="images", n: int = N_EVAL, seed: int = EVAL_SEED) -> dict:
    """Evaluate every run, write leaderboard.{md,csv,json} to out_dir and the two images."""
    rows, (grids, energies, _) = evaluate_runs(runs_root, eval_path, n, seed)
    paths = write_leaderboard(rows, out_dir)
    curves = {}
    extended = select(rows, "energy", attention=True, two_d=True, bidirectional=True)
    original = select(rows, "probability")
    if extended:
        curves[f"Extended Model ({describe(extended)})"] = extended["_pred"]
    if original:
        curves[f"Original Model ({describe(original)})"] = original["_pred"]
    if curves:
        paths["predictions_plot"] = Path(images_dir) / "predictions_plot.png"
        plot_predictions(curves, energies, paths["predictions_plot"])
    maps = attention_maps(rows, grids)
    if maps:
        paths["attention_plot"] = Path(images_dir) / "attention_plot.png"
        plot_attention(maps, paths["attention_plot"])
    return {"rows": rows, "paths": paths}


# ----------------------------------------------------------------------------------------
# Training every combination (make demo / make reproduce)
# ----------------------------------------------------------------------------------------
def combinations(profile: str) -> list[dict]:
    """The runs of a profile: flags per run (family + booleans + head)."""
    if profile == "demo":  # the two models of the predictions plot
        return [
            {"family": "energy", "attention": True, "two_d": True, "bidirectional": True},
            {"family": "probability", "attention": False, "two_d": False, "bidirectional": False},
        ]
    runs = []
    for family in ("energy", "probability"):
        for two_d in (False, True):
            for attention in (False, True):
                for bidirectional in (False, True):
                    runs.append({"family": family, "attention": attention, "two_d": two_d, "bidirectional": bidirectional})
    runs.append({"family": "energy", "attention": True, "two_d": True, "bidirectional": True, "energy_head": "site"})
    return runs


# Training profiles. Sizes come from measured CPU throughput (one thread per trainer, two
# trainers at once; README "Benchmarks"): at hidden 32 the 17 runs cost about 3.9 s per batch
# of 512 together, so 2 epochs of 250 batches (256,000 samples seen per run) take about 30-40
# minutes on 2 cores (hidden 64 would double that). "extra" are further trainer flags.
PROFILES = {
    # make demo: small data (make data-demo), the two models of the predictions plot, minutes
    "demo": {"data_dir": "data/demo", "runs": "runs/demo", "hidden_size": 32, "max_epochs": 4,
             "patience": 4, "batch_size": 256, "lr": 3e-3, "extra": []},
    # make reproduce: every combination on 2 CPU cores
    "cpu": {"data_dir": "data", "runs": "runs/cpu", "hidden_size": 32, "max_epochs": 2,
            "patience": 2, "batch_size": 512, "lr": 3e-3, "extra": ["--limit_train_batches", "250"]},
    # the reference's own settings (hidden 512, lr 1e-4, batch 512, early stopping), for a GPU
    "reference": {"data_dir": "data", "runs": "runs/reference", "hidden_size": 512, "max_epochs": 100,
                  "patience": 5, "batch_size": 512, "lr": 1e-4, "extra": []},
}


def run_dir_for(runs_root, spec: dict, hidden_size: int) -> Path:
    from trainer_common import config_name

    hp = {"cell": "gru", "num_layers": 1, "n_heads": 1, "hidden_size": hidden_size, "energy_head": "prob", **spec}
    return Path(runs_root) / spec["family"] / config_name(hp)


def trainer_command(spec: dict, profile: dict, extra=()) -> list[str]:
    d = Path(profile["data_dir"])
    cmd = [sys.executable, str(ROOT / f"{spec['family']}_trainer.py"),
           "--train_path", str(d / "train_data.hdf5"),
           "--val_paths", *(str(d / f"val_data_beta_dot{s}.hdf5") for s in ("25", "125", "5")),
           "--test_path", str(d / "test_data.hdf5"),
           "--output_dir", str(profile["runs"]),
           "--hidden_size", str(profile["hidden_size"]), "--max_epochs", str(profile["max_epochs"]),
           "--patience", str(profile["patience"]), "--batch_size", str(profile["batch_size"]),
           "--lr", str(profile["lr"]), *profile.get("extra", [])]
    for flag in ("attention", "two_d", "bidirectional"):
        cmd.append(f"--{flag}" if spec.get(flag) else f"--no-{flag}")
    if spec["family"] == "energy":
        cmd += ["--energy_head", spec.get("energy_head", "prob")]
    return cmd + list(extra)


def train_all(profile_name: str, extra=(), overrides: dict | None = None, jobs: int = 1) -> list[Path]:
    """Train every run of a profile that has not finished yet (metrics.json present = finished).

    jobs > 1 runs that many trainers at once, each with one intra-op thread: the recurrent
    steps are too small to use two cores well, and two one-thread processes beat one
    two-thread process on a 2-core CPU (and do not thrash when the machine is busy).
    """
    profile = {**PROFILES[profile_name], **(overrides or {})}
    specs = combinations(profile_name)
    todo, done = [], []
    for i, spec in enumerate(specs, 1):
        run_dir = run_dir_for(profile["runs"], spec, profile["hidden_size"])
        done.append(run_dir)
        if (run_dir / "metrics.json").exists():
            print(f"[{i}/{len(specs)}] {run_dir} finished already, skipping", flush=True)
        else:
            todo.append((i, run_dir, trainer_command(spec, profile, extra)))
    env = dict(os.environ)
    if jobs > 1:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    running: list = []
    failed = []

    def reap(block: bool):
        for item in list(running):
            i, run_dir, proc, log, t0 = item
            if block or proc.poll() is not None:
                rc = proc.wait()
                log.close()
                running.remove(item)
                status = "done" if rc == 0 else f"FAILED (exit {rc}, log: {log.name})"
                print(f"[{i}/{len(specs)}] {run_dir.name} {status} in {time.perf_counter() - t0:.0f} s", flush=True)
                if rc:
                    failed.append(run_dir)
                if not block:
                    return

    for i, run_dir, cmd in todo:
        while len(running) >= max(1, jobs):
            reap(block=False)
            time.sleep(0.5)
        print(f"[{i}/{len(specs)}] {' '.join(cmd[1:])}", flush=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        if jobs > 1:  # interleaved output would be unreadable: each trainer logs to its run folder
            log = open(run_dir / "train.log", "w")
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        else:
            log = open(os.devnull, "w")
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        running.append((i, run_dir, proc, log, time.perf_counter()))
    while running:
        reap(block=True)
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) failed: {', '.join(str(f) for f in failed)}")
    return done


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description="Score trained runs on the evaluation set (reference protocol: 32,000 lattices drawn "
        "with replacement, centred RMSE), write the leaderboard and the images. "
        "`train-all` first trains every combination of a profile, skipping finished runs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("mode", nargs="?", choices=("evaluate", "train-all"), default="evaluate")
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu",
                   help="train-all: which runs and sizes; also sets the default --runs and data folder")
    p.add_argument("--runs", default=None, help="folder of runs (<family>/<config>/); default: the profile's")
    p.add_argument("--data_dir", default=None, help="folder with the HDF5 files; default: the profile's")
    p.add_argument("--eval_path", default=None, help="evaluation file; default: <data_dir>/eval_data.hdf5")
    p.add_argument("--out", default=None, help="where leaderboard.{md,csv,json} go; default: results/<profile>")
    p.add_argument("--images", default="images", help="where predictions_plot.png and attention_plot.png go")
    p.add_argument("--n", type=int, default=N_EVAL, help="lattices drawn (with replacement) for the score")
    p.add_argument("--seed", type=int, default=EVAL_SEED, help="seed of the evaluation draw")
    p.add_argument("--hidden_size", type=int, default=None, help="train-all: override the profile's hidden size")
    p.add_argument("--max_epochs", type=int, default=None, help="train-all: override the profile's epochs")
    p.add_argument("--jobs", type=int, default=1, help="train-all: trainers run at once (each one thread)")
    args, extra = p.parse_known_args(argv)
    if extra and args.mode != "train-all":
        p.error(f"unrecognised arguments: {' '.join(extra)}")
    if args.n <= 0:
        p.error("--n must be positive")
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    profile = dict(PROFILES[args.profile])
    for key in ("hidden_size", "max_epochs"):
        if getattr(args, key) is not None:
            profile[key] = getattr(args, key)
    if args.runs:
        profile["runs"] = args.runs
    if args.data_dir:
        profile["data_dir"] = args.data_dir
    eval_path = Path(args.eval_path or Path(profile["data_dir"]) / "eval_data.hdf5")
    out = Path(args.out or Path("results") / args.profile)
    try:
        if args.mode == "train-all":
            train_all(args.profile, extra, profile, jobs=args.jobs)
        result = report(profile["runs"], eval_path, out, args.images, args.n, args.seed)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(leaderboard_markdown(result["rows"]))
    for name, path in result["paths"].items():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
