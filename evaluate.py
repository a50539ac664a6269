"""Evaluate trained runs: score them, write the leaderboard, draw the predictions and attention plots.

    python evaluate.py --runs runs --eval_path data/eval_data.hdf5 --out results --images images

The reference protocol: N_EVAL = 32,000 lattices drawn uniformly WITH replacement (seed 0) from
the evaluation file, which spans beta = 0.125 ... 0.44 although every model was trained at
beta = 0.25. Predictions and true energies are each centred by their own mean (the probability
route knows E = -(1/beta) log p only up to the constant log Z / beta) and the RMSE of the
difference is the score:

    rmse_centred = sqrt(mean(((pred - mean(pred)) - (true - mean(true)))^2))

(`ising.centred_rmse`). Also reported: the same errors restricted to the lattices of each beta
(the global centring is kept, so a constant offset is the only freedom), and for models that
predict absolute energies (`model.absolute_energy`: energy models and the conditional
probability model) the uncentred RMSE.

A run is a folder `<runs>/<family>/<config>/` with metrics.json and best.ckpt, as the trainers
write it (`runs.py`). `train_all.py` trains every combination and then calls `report`.

An evaluation file with a NaN or infinite energy or beta among the drawn rows, or whose `betas`
attribute contradicts its beta dataset, is refused in one line; a run whose predictions are not
finite (it diverged) is named on stderr and left out of the leaderboard, which never holds NaN
(leaderboard.json is strict JSON). `--n` is bounded by the memory available for the draw.

Only runs trained on the evaluation file's Hamiltonian and lattice size are scored (the others are
skipped with a line on stderr; none left is a one-line error). The q-state Potts model: a Potts
file (attribute q, Hamiltonian "POTTS<q>", states 0..q-1) scores the runs trained on POTTS<q>,
against its own true energies (`potts.energy`, written by the sampler); an Ising run is never
scored on Potts lattices nor a Potts run on Ising ones or those of another q. Potts rows have no
published figure and say q in their description.

    python evaluate.py --runs runs --eval_path data/potts3/eval_data.hdf5 --out results/potts3

    python evaluate.py export runs/energy/EDNN_F1_C1_hid16x2 --to weights   # weights + hyper-parameters only
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

import data_files
from data_files import file_system
from checks import HelpFormatter, atomic_path
from checks import UserError, check_output_dir, main_guard, positive_int, seed_int
from ising import centred_rmse, rmse, site_to_snake, snake_to_site
from plotting import hide_unused, markdown_table, plt, save_figure
from hamiltonians import same_system
from potts import Potts
from runs import Run, export_weights, find_runs, json_safe, load_model, predict, read_run

N_EVAL = 32_000
EVAL_SEED = 0


def centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean()


def eval_indices(n_total: int, n: int = N_EVAL, seed: int = EVAL_SEED) -> np.ndarray:
    """Reference protocol: n indices drawn uniformly WITH replacement, fixed seed."""
    return np.random.default_rng(seed).integers(0, n_total, size=n)


EVAL_KEYS = ("ising_grids", "true_energies", "beta")


BYTES_PER_DRAW = 64  # besides its lattice: an index, its inverse, energy, beta, prediction (8 bytes each), spare


def check_draw_size(n: int, path) -> None:
    """--n lattices of the file's size must fit in the memory this machine has left (the draw is
    held whole, with replacement: a file's size does not bound it); a one-line UserError otherwise."""
    from runs import available_memory

    with data_files.open_h5(path) as f:
        grids = data_files.dataset(f, "ising_grids")
        row = grids.dtype.itemsize * int(np.prod(grids.shape[1:]))
    need, free = n * (row + BYTES_PER_DRAW), available_memory()
    if free is not None and need > free:
        raise UserError(f"--n {n}: {n} lattices of {path} take {need / 1e9:.3g} GB but {free / 1e9:.3g} GB of memory "
                        f"is available; choose a smaller --n (the reference protocol draws {N_EVAL})")


def load_eval_set(path, n: int = N_EVAL, seed: int = EVAL_SEED):
    """grids int8 (n, n_x, n_y) ±1 (a Potts file: states 0..q-1), energies float64 (n,), betas
    float64 (n,) of the protocol's draw. A file whose `betas` attribute contradicts its beta
    dataset, or whose drawn rows hold a NaN or infinite energy or beta, is a one-line UserError:
    one such row would make every score NaN."""
    from pytorch_datasets import check_betas

    check_draw_size(n, path)
    check_betas(path)
    with data_files.open_h5(path) as f:
        grids_d, energies_d, betas_d = (data_files.dataset(f, k) for k in EVAL_KEYS)
        idx = eval_indices(grids_d.shape[0], n, seed)
        uniq, inv = np.unique(idx, return_inverse=True)  # h5py wants increasing indices
        grids = grids_d[uniq][inv]
        energies = energies_d[uniq][inv].astype(np.float64)
        betas = betas_d[uniq][inv].astype(np.float64)
    for what, values in (("true_energies", energies), ("beta", betas)):
        bad = ~np.isfinite(values)
        if bad.any():
            raise UserError(f"{path}:{what} holds {values[bad][0]} in row {idx[np.argmax(bad)]} (and {bad.sum() - 1} "
                            "more drawn); a score needs finite values: regenerate the file")
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
FLAG_KEYS = ("cell", "bidirectional", "attention", "two_d", "joint", "energy_head", "hidden_size", "lr_schedule",
             "focus", "context", "target")


def reference_rmse(row: dict):
    """The published RMSE of the same combination (reference head, GRU), or None."""
    if row.get("focus") is not None or row.get("joint") or row.get("q", 2) > 2 or row.get("instance"):  # none published
        return None
    if row.get("energy_head", "logsigmoid") not in (None, "logsigmoid") or str(row.get("cell") or "gru") != "gru":
        return None
    key = (row["family"], bool(row.get("attention")), bool(row.get("two_d")), bool(row.get("bidirectional")))
    return REFERENCE_RMSE.get(key)


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
        "rmse_raw": rmse(pred, energies) if model.absolute_energy else None,
        "rmse_per_beta": per_beta,
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "test_rmse_centred": run.metrics.get("test_rmse_centred"),
        "epochs": run.metrics.get("epochs"),
        "train_time_s": run.metrics.get("train_time_s"),
        "predict_seconds": seconds,
        **({"q": model.q} if model.q > 2 else {}),  # Potts rows only: Ising rows stay as they were
        **({"instance": model.system.label} if model.hparams.get("instance") else {}),  # a spin glass's rows only
        "_pred": pred,
        "_run": run,
    }


def evaluate_runs(runs_root, eval_path, n: int = N_EVAL, seed: int = EVAL_SEED, progress=True):
    """Score every run under runs_root; rows sorted by centred RMSE. Returns (rows, eval set)."""
    runs = find_runs(runs_root)
    if not runs:
        raise UserError(f"no finished runs under {runs_root} (a run is <family>/<config>/metrics.json + best.ckpt); "
                        "train with energy_trainer.py / probability_trainer.py or `make demo`")
    meta = data_files.check_data_file(eval_path, EVAL_KEYS)
    hamiltonian, lattice = data_files.file_hamiltonian(meta), (meta["n_x"], meta["n_y"])
    # an ISING2 model scored on ISING1 lattices would be a meaningless row (a Potts model on Ising
    # lattices, or one of another q: not even states it reads), and so would a model scored on
    # lattices of another size than it learned (transfer.py scores runs on other sizes)
    skipped = {r.label: f"trained on {r.hamiltonian}, {eval_path} is {hamiltonian}" for r in runs
               if r.hamiltonian != hamiltonian}
    if len(skipped) == len(runs):
        trained = sorted({r.hamiltonian for r in runs})
        hint = next((f"; score {h} runs on a {h} file, e.g. --eval_path data/potts{p.q}/eval_data.hdf5 (python "
                     f"data_files.py --data_dir data/potts{p.q} --q {p.q})" for h in trained
                     if (p := Potts.from_name(h)) is not None), "")
        raise UserError(f"no run under {runs_root} was trained on {hamiltonian}, the Hamiltonian of {eval_path} "
                        f"(the runs were trained on {', '.join(trained)}){hint}")
    skipped.update({r.label: f"trained on {r.lattice[0]} x {r.lattice[1]} lattices, {eval_path} holds {lattice[0]} x "
                    f"{lattice[1]} (transfer.py scores runs on other sizes)" for r in runs
                    if r.label not in skipped and r.lattice not in (None, lattice)})
    if len(skipped) == len(runs):
        raise UserError(f"no run under {runs_root} was trained on {hamiltonian} lattices of {lattice[0]} x "
                        f"{lattice[1]}, those of {eval_path} (transfer.py scores runs on other sizes)")
    # a spin-glass file holds one instance: a run of another instance (other couplings) learned another energy
    system = file_system(eval_path, meta)
    skipped.update({r.label: f"trained on the instance {r.system.label}, {eval_path} holds {system.label} (other "
                    "couplings J_h, J_v)" for r in runs
                    if r.label not in skipped and system is not None and not same_system(r.system, system)})
    if len(skipped) == len(runs):
        raise UserError(f"no run under {runs_root} was trained on the spin-glass instance of {eval_path} "
                        f"({system.label}): its runs learned other couplings; score them on their own instance's file")
    for label, why in skipped.items():
        print(f"skipping {label}: {why}", file=sys.stderr)
    runs = [r for r in runs if r.label not in skipped]
    grids, energies, betas = load_eval_set(eval_path, n, seed)
    if progress:
        from tqdm import tqdm

        runs = tqdm(runs, desc="evaluating runs", unit="run", disable=None)  # on a terminal only
    rows = [score_run(run, grids, energies, betas) for run in runs]
    scored = sorted((r for r in rows if np.isfinite(r["rmse_centred"])), key=lambda r: r["rmse_centred"])
    if not scored:  # the error alone says why
        raise UserError(f"every run under {runs_root} predicts NaN or infinite energies on {eval_path} (they "
                        "diverged: train them again); nothing to score")
    for r in rows:  # a diverged model: its row would be NaN, and sort anywhere
        if not np.isfinite(r["rmse_centred"]):
            print(f"skipping {r['run']}: {int(np.sum(~np.isfinite(r['_pred'])))} of its {len(r['_pred'])} predicted "
                  "energies are NaN or infinite (the run diverged: train it again)", file=sys.stderr)
    return scored, (grids, energies, betas)


def describe(row: dict) -> str:
    """Readable model description like the reference table's ("Energy GRU + Attention + 2D");
    a Potts row ends in ", q = 3 Potts", a spin glass's in ", spin-glass instance EA_8x8_seed0"."""
    potts = f", q = {row['q']} Potts" if row.get("q", 2) > 2 else ""
    potts += f", spin-glass instance {row['instance']}" if row.get("instance") else ""
    if row.get("focus") is not None:
        label_free = " (label-free, centred)" if row.get("target") == "centred" else ""
        return f"Energy EDNN, focus {row['focus']}, context {row['context']}{label_free}{potts}"
    parts = [("Energy " if row["family"] == "energy" else "Probability ") + str(row.get("cell") or "gru").upper()]
    parts += [label for key, label in (("attention", "Attention"), ("two_d", "2D"), ("bidirectional", "Bidirectional"))
              if row.get(key)]
    if row.get("joint"):
        parts.append("joint")
    if row.get("energy_head") == "site":
        parts.append("site head")
    lr = f" ({row['lr_schedule']} lr)" if row.get("lr_schedule") not in (None, "constant") else ""
    return " + ".join(parts) + lr + potts


def select(rows: list[dict], family: str, **flags):
    """The first (best) row of `family` whose flags match (missing flags count as False/default)."""
    wanted = {"attention": False, "two_d": False, "bidirectional": False, "focus": None, **flags}  # no EDNN
    if family == "energy":
        wanted.setdefault("energy_head", "logsigmoid")
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
    clean = json_safe([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])  # no bare NaN
    paths = {"md": out / "leaderboard.md", "csv": out / "leaderboard.csv", "json": out / "leaderboard.json"}
    spread = seed_spread(rows)
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(leaderboard_markdown(rows) + (f"\nOver seeds:\n\n{seed_spread_markdown(spread)}" if spread else ""))
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(clean, indent=2, allow_nan=False))
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in clean:
            w.writerow({**{c: r.get(c) for c in CSV_COLUMNS}, "rmse_per_beta": json.dumps(r["rmse_per_beta"])})
    return paths


def seed_spread(rows: list[dict]) -> list[dict]:
    """Runs of one configuration that differ only by seed (groups like `seed1` or `bf16-mixed_seed1`):
    their centred RMSE as mean, standard deviation, min, max and max / mean. Empty if none repeat."""
    groups: dict = {}
    for r in rows:
        group = re.sub(r"(^|_)seed\d+$", "", r["_run"].group if "_run" in r else "")
        groups.setdefault("/".join(p for p in (group, r["family"], r["config"]) if p), []).append(r["rmse_centred"])
    return [{"runs": key, "n_seeds": len(v), "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)),
             "min": float(min(v)), "max": float(max(v)), "max_over_mean": float(max(v) / np.mean(v))}
            for key, v in groups.items() if len(v) > 1]


def seed_spread_markdown(spread: list[dict]) -> str:
    lines = ["| Runs | seeds | centred RMSE, mean ± std | min … max | max / mean |", "|---|---|---|---|---|"]
    lines += [f"| `{s['runs']}` | {s['n_seeds']} | {s['mean']:.3g} ± {s['std']:.2g} | {s['min']:.3g} … {s['max']:.3g} | "
              f"{s['max_over_mean']:.2f} |" for s in spread]
    return "\n".join(lines) + "\n"


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
    maps = []
    for order, w in attn.items():
        w = np.asarray(w)
        # causal models never query from their last position: take the one before
        q = min(site_to_snake(query[0], query[1], n_x, n_y, order), w.shape[0] - 1)
        grid = np.zeros((n_x, n_y))
        grid[snake_to_site(np.arange(w.shape[1]), n_x, n_y, order)] = w[q]
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
    query = (min(3, grids.shape[1] - 1), min(4, grids.shape[2] - 1))  # the reference's site, inside a smaller lattice
    maps = attention_maps(rows, grids, query=query)
    if maps:
        paths["attention_plot"] = Path(images_dir) / "attention_plot.png"
        plot_attention(maps, paths["attention_plot"], query=query)
    return {"rows": rows, "paths": paths}


def add_report_flags(p: argparse.ArgumentParser) -> None:
    """The flags of `report` besides its folders (train_all.py shares them)."""
    p.add_argument("--images", default="images", help="where predictions_plot.png and attention_plot.png go")
    p.add_argument("--n", type=positive_int, default=N_EVAL, help="lattices drawn (with replacement) for the score")
    p.add_argument("--seed", type=seed_int, default=EVAL_SEED, help="seed of the evaluation draw")


def run_report(runs_root, eval_path, out_dir, images_dir, n: int, seed: int) -> int:
    """`report` for the command line: prints the leaderboard and the files written."""
    check_output_dir("--out", out_dir)
    check_output_dir("--images", images_dir)
    result = report(runs_root, eval_path, out_dir, images_dir, n, seed)
    print(leaderboard_markdown(result["rows"]))
    spread = seed_spread(result["rows"])
    if spread:
        print(f"Over seeds:\n\n{seed_spread_markdown(spread)}")
    for path in result["paths"].values():
        print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["export"]:  # python evaluate.py export RUN_DIR [RUN_DIR ...] [--to weights]
        p = argparse.ArgumentParser(prog="evaluate.py export", description="Copy runs as weights and "
                                    "hyper-parameters only (a few hundred kB each) into <to>/<family>/<config>/.")
        p.add_argument("runs", nargs="+", help="run directories holding best.ckpt and metrics.json")
        p.add_argument("--to", default="weights", help="destination folder")
        args = p.parse_args(argv[1:])
        for run in args.runs:
            read_run(run)  # a one-line error for anything that is not a finished run, before writing
        check_output_dir("--to", args.to)
        for run in args.runs:
            print(f"wrote {export_weights(run, args.to)}")
        return 0
    p = argparse.ArgumentParser(
        description="Score trained runs on the evaluation set (reference protocol: 32,000 lattices drawn "
        "with replacement, centred RMSE), write the leaderboard and the images. "
        "`evaluate.py export RUN...` copies runs as weights and hyper-parameters only.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--runs", default="runs", help="folder of runs (<family>/<config>/)")
    p.add_argument("--eval_path", default=data_files.path("eval"), help="evaluation file")
    p.add_argument("--out", default="results", help="where leaderboard.{md,csv,json} go")
    add_report_flags(p)
    args = p.parse_args(argv)
    return run_report(args.runs, args.eval_path, args.out, args.images, args.n, args.seed)


if __name__ == "__main__":
    sys.exit(main_guard(main))
