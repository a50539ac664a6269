"""The physicist's baseline: couplings fitted to the training lattices by pseudo-likelihood (inverse Ising).

    python inverse_ising.py                                                  # data/train_data.hdf5
    python inverse_ising.py --train_path data/ising2/train_data.hdf5 --out results/inverse_ising/pseudo_likelihood_ISING2.json
    python phase_diagram.py --hamiltonian results/inverse_ising/pseudo_likelihood_ISING1.json   # simulate the fit

No neural network and no energy label: it assumes the form a physicist would write down, pairs to
the eight neighbours and a field,

    E = -sum_i [J_h s_i s_(i+(0,1)) + J_v s_i s_(i+(1,0)) + J_d s_i s_(i+(1,1)) + J_a s_i s_(i+(-1,1)) + h s_i],

and fits its five numbers to the lattices of one beta. The likelihood itself needs Z; the
pseudo-likelihood (Besag) replaces p(s) by the product over sites of p(s_i | all other spins)
= sigmoid(2 beta s_i h_i), h_i = sum_k J_k n_ik + h, n_ik the sum of the two class-k neighbours of
site i: a logistic regression with features x_ik = s_i n_ik (and s_i), consistent as the number
of lattices grows. The features take 162 values (3^4 x 2), so the data enter only through how
often each occurs; the objective is concave, so Newton's method from J = 0 converges in a few steps.
Error bars: the spread of the fit over --blocks disjoint blocks of lattices, std / sqrt(blocks).

The JSON it writes is a Hamiltonian source wherever the repo takes one (phase_diagram.py,
hamiltonian.py, generate_ising.py --hamiltonian): `runs.energy_table` makes it a 3 x 3 window
table (`ising.pair_table`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import data_files
import ising
from checks import UserError, atomic_path, check_output_file, main_guard, positive_int, write_json

KIND = "pseudo_likelihood"
NAMES = (*ising.PAIR_NAMES, "field")


ROWS = np.array(np.meshgrid(*[[-2, 0, 2]] * 4, [-1, 1], indexing="ij")).reshape(len(NAMES), -1).T   # (162, 5)


def feature_counts(grids, weights=None) -> np.ndarray:
    """(162,): how many sites of grids (N, n_x, n_y) ±1 have each feature row of ROWS (each lattice
    counted with its weight, default 1), the
    row (s_i n_ik for the four pair classes, both neighbours of the class; s_i).  The
    pseudo-likelihood depends on the lattices only through these counts."""
    s = np.asarray(grids, np.int8)
    code = np.zeros(s.shape, np.int64)
    for k, (dx, dy) in enumerate(ising.PAIR_NAMES.values()):
        x = s * (np.roll(s, (-dx, -dy), axis=(1, 2)) + np.roll(s, (dx, dy), axis=(1, 2)))   # -2, 0, 2
        code = code * 3 + (x // 2 + 1)
    code = code * 2 + (s > 0)
    w = None if weights is None else np.repeat(np.asarray(weights, np.float64), s[0].size)
    return np.bincount(code.reshape(-1), weights=w, minlength=len(ROWS))


def fit(counts: np.ndarray, beta: float, steps: int = 50, tol: float = 1e-12) -> np.ndarray:
    """(J_h, J_v, J_d, J_a, h) maximising sum_rows counts log sigmoid(2 beta ROWS . theta) (Newton)."""
    x, w = ROWS.astype(np.float64), np.zeros(len(NAMES))
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(x @ w))                        # 1 - sigmoid, the gradient's weight
        step = np.linalg.solve((x * (counts * p * (1.0 - p))[:, None]).T @ x, x.T @ (counts * p))
        w += step
        if np.max(np.abs(step)) < tol:
            break
    return w / (2.0 * beta)


def inverse_ising(train_path, blocks: int = 10, max_lattices: int | None = None) -> dict:
    """The fit on every lattice of train_path (a single-beta file), with its block error bars."""
    meta = data_files.check_data_file(train_path)
    if meta["beta"] is None:
        raise UserError(f"{train_path} holds lattices at {len(meta['betas'])} betas; the fit needs one beta "
                        "(a training file of generate_ising.py --beta B)")
    if meta["q"] != 2:
        raise UserError(f"{train_path} holds q = {meta['q']} Potts states; the fit is of Ising spins ±1")
    with data_files.open_h5(train_path) as f:
        d = data_files.dataset(f, "ising_grids")
        grids = d[: max_lattices or len(d)]
    bad = np.flatnonzero(~np.isin(grids, (-1, 1)).all(axis=(1, 2)))
    if bad.size:
        values = sorted(set(np.unique(grids[bad[0]]).tolist()) - {-1, 1})
        raise UserError(f"{train_path}: {bad.size} lattice(s) hold values other than the spins ±1 (lattice {bad[0]} "
                        f"holds {values}); spins must be ±1")
    if len(grids) < 2 * blocks:
        raise UserError(f"{train_path}: {len(grids)} lattices are too few for {blocks} blocks; give --blocks 2 or more data")
    counts = [feature_counts(g) for g in np.array_split(grids, blocks)]
    try:
        theta = fit(np.sum(counts, axis=0), meta["beta"])
        per_block = np.array([fit(c, meta["beta"]) for c in counts])
    except np.linalg.LinAlgError:
        theta = per_block = np.array([np.nan])
    if not np.all(np.isfinite(theta)) or not np.all(np.isfinite(per_block)):
        raise UserError(f"{train_path}: the pseudo-likelihood has no finite maximum on these lattices (too few "
                        "different neighbourhoods, e.g. every spin aligned); give lattices of a lower beta or more data")
    err = per_block.std(axis=0, ddof=1) / np.sqrt(blocks)
    truth = ising.true_couplings(meta["hamiltonian"]) if meta["hamiltonian"] in ising.HAMILTONIANS else {}
    return {"kind": KIND, "train_path": str(train_path), "trained_on": meta["hamiltonian"], "beta": meta["beta"],
            "n_lattices": int(len(grids)), "n_x": meta["n_x"], "n_y": meta["n_y"], "blocks": blocks,
            "couplings": {n: float(v) for n, v in zip(NAMES, theta)},
            "errors": {n: float(e) for n, e in zip(NAMES, err)},
            "truth": {**truth, "field": 0.0} if truth else None}


def markdown(report: dict) -> str:
    truth = report["truth"] or {}
    lines = [f"Pseudo-likelihood fit to {report['n_lattices']} lattices {report['n_x']} x {report['n_y']} "
             f"of {report['train_path']} (beta = {report['beta']:g}, {report['trained_on']}); "
             f"error bars from {report['blocks']} blocks", "",
             "| coupling (E = -J s_i s_j - h s_i) | fitted | truth | fitted / truth - 1 |", "|---|---|---|---|"]
    for n in NAMES:
        v, e, t = report["couplings"][n], report["errors"][n], truth.get(n, float("nan"))
        rel = f"{v / t - 1:+.2e}" if t else "—"
        lines.append(f"| {n} | {v:.6f} ± {e:.6f} | {t:g} | {rel} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train_path", default=data_files.path("train"), help="lattices of one beta (generate_ising.py)")
    p.add_argument("--out", default=None, help="JSON to write (default: results/inverse_ising/pseudo_likelihood_"
                   "<Hamiltonian of the file>.json)%(default).0s")
    p.add_argument("--blocks", type=positive_int, default=10, help="disjoint blocks of lattices for the error bars")
    p.add_argument("--max_lattices", type=positive_int, default=None, help="use only the first this many lattices")
    args = p.parse_args(argv)
    if args.blocks < 2:
        raise UserError("--blocks: the error bars need at least 2 blocks")

    def check_out(out):
        """Both files written (the JSON and its .md), before any work where --out is given."""
        out = Path(out)
        if out.suffix == ".md":
            raise UserError(f"--out {out}: the JSON's name; the Markdown goes beside it as {out.with_suffix('.md')}")
        for path in (out, out.with_suffix(".md")):
            check_output_file("--out", path, inputs=(args.train_path,))
        return out

    if args.out is not None:
        check_out(args.out)
    report = inverse_ising(args.train_path, args.blocks, args.max_lattices)
    out = check_out(args.out or f"results/inverse_ising/{KIND}_{report['trained_on']}.json")
    write_json(out, {**report, "source": str(out)})
    with atomic_path(out.with_suffix(".md")) as tmp:
        Path(tmp).write_text(markdown(report) + "\n")
    print(markdown(report))
    print(f"\nwrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
