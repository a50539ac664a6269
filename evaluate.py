"""Evaluate trained runs: score them, write the leaderboard, draw the predictions and attention plots.

    python evaluate.py --runs runs --eval_path data/eval_data.hdf5 --out results --images images

The reference protocol: N_EVAL = 32,000 lattices drawn uniformly WITH replacement (seed 0) from
the evaluation file, which spans beta = 0.125 ... 0.44 although every model was trained at
beta = 0.25. Predictions and true energies are each centred by their own mean (the probability
route knows E = -(1/beta) log p only up to the constant log Z / beta) and the RMSE of the
difference is the score:

    rmse_centred = sqrt(mean(((pred - mean(pred)) - (true - mean(true)))^2))

Also reported: the same errors restricted to the lattices of each beta (the global centring is
kept, so a constant offset is the only freedom), and for models that predict absolute energies
(energy models and the bidirectional, local-field probability model) the uncentred RMSE.

A run is a folder `<runs>/<family>/<config>/` with metrics.json and a checkpoint, as the trainers
write it. `train_all.py` trains every combination and then calls `report`;
`python evaluate.py train-all ...` is the same as `python train_all.py ...`, and
`python evaluate.py transfer ...` as `python transfer.py ...` (scores on larger lattices).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

import data_files
from plotting import atomic_path, hide_unused, markdown_table, plt, save_figure

N_EVAL = 32_000
EVAL_SEED = 0


# -------------------- Scores -----------------------------------------------------------
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
    """grids int8 (n, n_x, n_y) ±1, energies float64 (n,), betas float64 (n,) of the protocol's draw."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(data_files.missing_file_message(path))
    with h5py.File(path, "r") as f:
        idx = eval_indices(f["ising_grids"].shape[0], n, seed)
        uniq, inv = np.unique(idx, return_inverse=True)  # h5py wants increasing indices
        grids = f["ising_grids"][uniq][inv]
        energies = f["true_energies"][uniq][inv].astype(np.float64)
        betas = f["beta"][uniq][inv].astype(np.float64)
    return grids, energies, betas


# -------------------- Runs: discover, load, predict, score -----------------------------
# Published RMSE, keyed by (family, attention, two_d, bidirectional); GRU cells, reference head.
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
FLAG_KEYS = ("cell", "bidirectional", "attention", "two_d", "energy_head", "hidden_size", "focus", "context", "target")


def reference_rmse(row: dict):
    """The published RMSE of the same combination (reference head, GRU), or None."""
    if row.get("focus") is not None:  # the extensive model has no published counterpart
        return None
    if row.get("energy_head", "prob") not in (None, "prob") or str(row.get("cell") or "gru") != "gru":
        return None
    key = (row["family"], bool(row.get("attention")), bool(row.get("two_d")), bool(row.get("bidirectional")))
    return REFERENCE_RMSE.get(key)


@dataclass
class Run:
    family: str  # "energy" | "probability"
    name: str  # config name, e.g. 2D_GRU_1L_1H_Bi_Attn
    dir: Path
    checkpoint: Path
    metrics: dict = field(default_factory=dict)
    group: str = ""  # folders between the runs root and <family>, e.g. "32-true_seed1"

    @property
    def label(self) -> str:
        return "/".join(p for p in (self.group, self.family, self.name) if p)


def find_runs(root) -> list[Run]:
    """Every `<root>/[<group>/...]<family>/<config>/` holding metrics.json and a checkpoint."""
    root, runs = Path(root), []
    for metrics_path in sorted(root.rglob("metrics.json")):
        run_dir = metrics_path.parent
        family = run_dir.parent.name
        if family not in ("energy", "probability"):
            continue
        metrics = json.loads(metrics_path.read_text())
        ckpt = run_dir / metrics["best_checkpoint"] if metrics.get("best_checkpoint") else None
        if ckpt is None or not ckpt.exists():  # a moved run folder: its own checkpoint
            found = sorted(run_dir.rglob("*.ckpt"))
            if not found:
                continue
            ckpt = found[0]
        group = run_dir.parent.parent.relative_to(root).as_posix()
        runs.append(Run(family, run_dir.name, run_dir, ckpt, metrics, "" if group == "." else group))
    return runs


def load_model(run: Run):
    """The run's LightningModule from its checkpoint alone, on the CPU, in eval mode."""
    config = run.metrics.get("config", {})
    if config.get("architecture") == "ednn" or "focus" in config:  # the extensive model's hyper-parameter
        from ednn import EDNNEnergyModel as cls
    elif run.family == "energy":
        from energy_models import EnergyModel as cls
    else:
        from probability_models import ProbabilityModel as cls
    model = cls.load_from_checkpoint(str(run.checkpoint), map_location="cpu")
    model.eval()
    return model


def export_weights(run_dir, dest_root="weights") -> Path:
    """Copy a run into `<dest_root>/<family>/<config>/` as a few hundred kB: best.ckpt with the
    weights and hyper-parameters only (no optimiser state, loops or callbacks), and metrics.json
    pointing at it. `load_model`, `find_runs` and `load_from_checkpoint` read it as a run."""
    import torch

    run_dir = Path(run_dir)
    ckpt = torch.load(run_dir / "best.ckpt", map_location="cpu", weights_only=False)
    dest = Path(dest_root) / run_dir.parent.name / run_dir.name
    dest.mkdir(parents=True, exist_ok=True)
    keep = {k: ckpt[k] for k in ("state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch", "global_step")
            if k in ckpt}
    with atomic_path(dest / "best.ckpt") as tmp:
        torch.save(keep, tmp)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["best_checkpoint"] = "best.ckpt"  # relative: the folder can move
    with atomic_path(dest / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    return dest


def predict(model, grids: np.ndarray, batch_size: int = 2048, return_attention: bool = False):
    """Energies float64 (N,) of grids (N, n_x, n_y) ±1 through model.predict_energy; with
    return_attention also {"rows"[, "cols"]: (L_q, L_k) attention weights summed over the grids}."""
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


def predicts_absolute_energy(model, family: str) -> bool:
    """Energy regressors and the bidirectional (local-field) probability model predict E itself;
    the causal probability model knows E only up to log Z."""
    if getattr(model.hparams, "target", "absolute") == "centred":  # trained on labels known up to a constant
        return False
    return family == "energy" or bool(getattr(model.hparams, "bidirectional", False))


def score_run(run: Run, grids, energies, betas, model=None) -> dict:
    """One leaderboard row; "_pred" (predictions) and "_run" are kept out of the written files."""
    model = model if model is not None else load_model(run)
    t0 = time.perf_counter()
    pred = predict(model, grids)
    seconds = time.perf_counter() - t0
    err = centred(pred) - centred(energies)
    per_beta = {f"{b:.4g}": float(np.sqrt(np.mean(err[betas == b] ** 2))) for b in np.unique(betas)}
    hp = dict(model.hparams)
    return {
        **{k: hp.get(k) for k in FLAG_KEYS},
        "run": run.label,
        "family": run.family,
        "config": run.name,
        "rmse_centred": centred_rmse(pred, energies),
        "rmse_raw": rmse(pred, energies) if predicts_absolute_energy(model, run.family) else None,
        "rmse_per_beta": per_beta,
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "test_rmse_centred": run.metrics.get("test_rmse_centred"),
        "epochs": run.metrics.get("epochs"),
        "train_time_s": run.metrics.get("train_time_s"),
        "predict_seconds": seconds,
        "_pred": pred,
        "_run": run,
    }


def evaluate_runs(runs_root, eval_path, n: int = N_EVAL, seed: int = EVAL_SEED, progress=True):
    """Score every run under runs_root; rows sorted by centred RMSE. Returns (rows, eval set)."""
    runs = find_runs(runs_root)
    if not runs:
        raise FileNotFoundError(
            f"no finished runs under {runs_root} (a run is <family>/<config>/metrics.json + *.ckpt); "
            "train with energy_trainer.py / probability_trainer.py or `make demo`"
        )
    grids, energies, betas = load_eval_set(eval_path, n, seed)
    with h5py.File(eval_path, "r") as f:
        hamiltonian = str(f.attrs.get("model", "ISING1"))
    trained_on = {r.label: r.metrics.get("config", {}).get("model", "ISING1") for r in runs}
    for r in runs:  # an ISING2 model scored on ISING1 lattices would be a meaningless row
        if trained_on[r.label] != hamiltonian:
            print(f"skipping {r.label}: trained on {trained_on[r.label]}, {eval_path} is {hamiltonian}", file=sys.stderr)
    runs = [r for r in runs if trained_on[r.label] == hamiltonian]
    if not runs:
        raise FileNotFoundError(f"no run under {runs_root} was trained on {hamiltonian}, the model of {eval_path}")
    if progress:
        from tqdm import tqdm

        runs = tqdm(runs, desc="evaluating runs", unit="run")
    rows = sorted((score_run(run, grids, energies, betas) for run in runs), key=lambda r: r["rmse_centred"])
    return rows, (grids, energies, betas)


def describe(row: dict) -> str:
    """Readable model description like the reference table's ("Energy GRU + Attention + 2D")."""
    if row.get("focus") is not None:
        label_free = " (label-free, centred)" if row.get("target") == "centred" else ""
        return f"Energy EDNN, focus {row['focus']}, context {row['context']}{label_free}"
    parts = [("Energy " if row["family"] == "energy" else "Probability ") + str(row.get("cell") or "gru").upper()]
    parts += [label for key, label in (("attention", "Attention"), ("two_d", "2D"), ("bidirectional", "Bidirectional"))
              if row.get(key)]
    if row.get("energy_head") == "site":
        parts.append("site head")
    return " + ".join(parts)


def select(rows: list[dict], family: str, **flags):
    """The first (best) row of `family` whose flags match (missing flags count as False/default)."""
    wanted = {"attention": False, "two_d": False, "bidirectional": False, "focus": None, **flags}  # no EDNN
    if family == "energy":
        wanted.setdefault("energy_head", "prob")
    for r in rows:
        if r["family"] == family and all(
            (r.get(k) or False) == v if isinstance(v, bool) else r.get(k) == v for k, v in wanted.items()
        ):
            return r
    return None


# -------------------- Leaderboard ------------------------------------------------------
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


CSV_COLUMNS = ("run", "family", "config", "rmse_centred", "rmse_raw", "n_params", "hidden_size", "epochs",
               "train_time_s", "rmse_per_beta")


def write_leaderboard(rows: list[dict], out_dir) -> dict:
    """leaderboard.md (the table), .json (every field of every row), .csv (the main columns)."""
    out = Path(out_dir)
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    paths = {"md": out / "leaderboard.md", "csv": out / "leaderboard.csv", "json": out / "leaderboard.json"}
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(leaderboard_markdown(rows))
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(clean, indent=2))
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in clean:
            w.writerow({**{c: r.get(c) for c in CSV_COLUMNS}, "rmse_per_beta": json.dumps(r["rmse_per_beta"])})
    return paths


# -------------------- Plots ------------------------------------------------------------
def error_by_energy(pred: np.ndarray, true: np.ndarray, min_count: int = 5):
    """Centred error grouped by centred true energy: (x, mean, std) over values seen >= min_count times."""
    x = centred(true)
    err = centred(pred) - x
    uniq, inv, counts = np.unique(np.round(x, 6), return_inverse=True, return_counts=True)
    mean = np.bincount(inv, err) / counts
    std = np.sqrt(np.maximum(np.bincount(inv, err**2) / counts - mean**2, 0.0))
    ok = counts >= min_count
    return uniq[ok], mean[ok], std[ok]


def plot_predictions(curves: dict, true: np.ndarray, path, title: str | None = None) -> None:
    """curves: {label: predicted energies (N,)}; x = centred truth, y = centred error, ±2σ band."""
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
    save_figure(fig, path)


def attention_map(attn: dict, n_x: int, n_y: int, query=(3, 4)) -> np.ndarray:
    """Attention weights of the query site `query` (row, col) over the lattice: float (n_x, n_y).

    attn: {"rows": (L_q, L_k) summed weights, optionally "cols": ...} indexed by sequence positions
    of the snake through rows / columns. 2D models: the mean of the two maps in grid space.
    """
    from pytorch_datasets import flat_to_grid, grid_to_flat

    maps = []
    for order, w in attn.items():
        w = np.asarray(w)
        # causal models never query from their last position: take the one before
        q = min(grid_to_flat(query[0], query[1], n_x, n_y, order), w.shape[0] - 1)
        grid = np.zeros((n_x, n_y))
        grid[flat_to_grid(np.arange(w.shape[1]), n_x, n_y, order)] = w[q]
        maps.append(grid)
    return np.mean(maps, axis=0)


def plot_attention(maps: dict, path, query=(3, 4)) -> None:
    """maps: {title: (n_x, n_y) array}, up to 4 panels in a 2 x 2 grid with a shared colour bar."""
    fig, axes = plt.subplots(2, 2, figsize=(8, 7.5))
    vmax = max(float(np.max(m)) for m in maps.values()) if maps else 1.0
    im = None
    for ax, (title, m) in zip(axes.flat, maps.items()):
        im = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=vmax)
        ax.plot(query[1], query[0], "x", color="red", ms=12, mew=3)
        ax.set_title(title)
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(m.shape[0]))
    hide_unused(axes, len(maps))
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="attention weight (summed over batch)")
    save_figure(fig, path)


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
        _, attn = predict(load_model(row["_run"]), grids[:batch], batch_size=batch, return_attention=True)
        if attn:
            n_x, n_y = grids.shape[1:]
            maps[f"{title}{' (Bi)' if row.get('bidirectional') else ''}"] = attention_map(attn, n_x, n_y, query)
    return maps


# -------------------- The whole report and the command line ----------------------------
def report(runs_root, eval_path, out_dir, images_dir="images", n: int = N_EVAL, seed: int = EVAL_SEED) -> dict:
    """Evaluate every run, write leaderboard.{md,csv,json} to out_dir and the two images.

    The predictions plot compares the best full extended energy model with the best original
    (causal, 1D) probability model, as the reference's figure did."""
    rows, (grids, energies, _) = evaluate_runs(runs_root, eval_path, n, seed)
    paths = write_leaderboard(rows, out_dir)
    extended = select(rows, "energy", attention=True, two_d=True, bidirectional=True)
    original = select(rows, "probability")
    curves = {f"{name} Model ({describe(row)})": row["_pred"]
              for name, row in (("Extended", extended), ("Original", original)) if row}
    if curves:
        paths["predictions_plot"] = Path(images_dir) / "predictions_plot.png"
        plot_predictions(curves, energies, paths["predictions_plot"])
    maps = attention_maps(rows, grids)
    if maps:
        paths["attention_plot"] = Path(images_dir) / "attention_plot.png"
        plot_attention(maps, paths["attention_plot"])
    return {"rows": rows, "paths": paths}


def _positive_int(text: str) -> int:
    if int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return int(text)


def add_report_flags(p: argparse.ArgumentParser) -> None:
    """The flags of `report` besides its folders (train_all.py shares them)."""
    p.add_argument("--images", default="images", help="where predictions_plot.png and attention_plot.png go")
    p.add_argument("--n", type=_positive_int, default=N_EVAL, help="lattices drawn (with replacement) for the score")
    p.add_argument("--seed", type=int, default=EVAL_SEED, help="seed of the evaluation draw")


def run_report(runs_root, eval_path, out_dir, images_dir, n: int, seed: int) -> int:
    """`report` for the command line: prints the leaderboard and the files written; a user error
    (no runs, a missing or unreadable file) is one line on stderr and exit status 1."""
    try:
        result = report(runs_root, eval_path, out_dir, images_dir, n, seed)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(leaderboard_markdown(result["rows"]))
    for path in result["paths"].values():
        print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train-all"]:  # `python evaluate.py train-all ...` is train_all.py's command line
        import train_all

        return train_all.main(argv[1:], prog="evaluate.py train-all")
    if argv[:1] == ["export"]:  # python evaluate.py export RUN_DIR [RUN_DIR ...] [--to weights]
        p = argparse.ArgumentParser(prog="evaluate.py export", description="Copy runs as weights and "
                                    "hyper-parameters only (a few hundred kB each) into <to>/<family>/<config>/.")
        p.add_argument("runs", nargs="+", help="run directories holding best.ckpt and metrics.json")
        p.add_argument("--to", default="weights", help="destination folder")
        args = p.parse_args(argv[1:])
        for run in args.runs:
            if not (Path(run) / "best.ckpt").is_file() or not (Path(run) / "metrics.json").is_file():
                p.error(f"{run}: not a finished run directory (best.ckpt and metrics.json)")
            print(f"wrote {export_weights(run, args.to)}")
        return 0
    if argv[:1] == ["transfer"]:  # `python evaluate.py transfer ...` is transfer.py's command line
        import transfer

        return transfer.main(argv[1:], prog="evaluate.py transfer")
    p = argparse.ArgumentParser(
        description="Score trained runs on the evaluation set (reference protocol: 32,000 lattices drawn "
        "with replacement, centred RMSE), write the leaderboard and the images. "
        "`evaluate.py train-all ...` (= train_all.py) first trains every combination of a profile; "
        "`evaluate.py transfer ...` (= transfer.py) scores the runs on larger lattices.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--runs", default="runs", help="folder of runs (<family>/<config>/)")
    p.add_argument("--eval_path", default=data_files.path("eval"), help="evaluation file")
    p.add_argument("--out", default="results", help="where leaderboard.{md,csv,json} go")
    add_report_flags(p)
    args = p.parse_args(argv)
    return run_report(args.runs, args.eval_path, args.out, args.images, args.n, args.seed)


if __name__ == "__main__":
    sys.exit(main())
