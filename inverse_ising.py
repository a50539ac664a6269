"""The physicist's baseline: couplings fitted to the training lattices by pseudo-likelihood (inverse Ising).

    python inverse_ising.py                                                  # data/train_data.hdf5
    python inverse_ising.py --train_path data/ising2/train_data.hdf5 --out results/inverse_ising/pseudo_likelihood_ISING2.json
    python phase_diagram.py --hamiltonian results/inverse_ising/pseudo_likelihood_ISING1.json   # simulate the fit
    python inverse_ising.py --train_path /tmp/ea.hdf5 --out /tmp/ea_fit.json   # a spin glass: one coupling per bond
    python generate_ising.py --hamiltonian EA --couplings /tmp/ea_fit.npz ...  # sample that fit
    python inverse_ising.py --train_path data/ea/train_data.hdf5 --teacher RUN  # label-free: a teacher's energies
    python inverse_ising.py --teacher weights/probability/2D_GRU_1L_1H_Bi_Joint_hid64_Cosine   # the same five numbers

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

One coupling per bond (a file of `--hamiltonian EA`, or --per_bond): the spin glass has no translation
invariance, so the fit has 2 N parameters, J_h[x, y] (the bond (x, y)-(x, y+1)) and J_v[x, y] (the bond
(x, y)-(x+1, y)), N = n_x n_y, and the local field of site i is h_i = sum over its four bonds b = (i, j)
of J_b s_j. The same pseudo-likelihood, sum_lattices sum_i log sigmoid(2 beta s_i h_i), is again a
logistic regression: site i's features are its four bond products s_i s_j (±1), so it depends on the
lattices only through how often each of the 16 sign patterns occurs at each site (`site_counts`,
(N, 16)). Each bond enters the conditionals of both its sites (the symmetric pseudo-likelihood); the
Hessian is the sum of one 4 x 4 block per site, and Newton's method (halving a step that would lower
the objective) converges from J = 0 in ~6 steps. No field by default: the EA Hamiltonian has none, so
its law is symmetric under the global flip s -> -s and every field's truth is 0; --field fits one per
site anyway (N more parameters, a fifth feature s_i, 32 patterns), which only adds variance, and
generate_ising.py --couplings does not read it. Sides of 2 are refused: there the two bonds of a pair
have the same product in every lattice, and only their sum is identifiable.
With --teacher RUN the same form (the five numbers; per bond for an EA file or with --per_bond) is
fitted to the energies a trained probability model gives the lattices, by least squares plus a
constant (the label-free student: no energy label, no pseudo-likelihood; `teacher_fit`, `per_bond`).
A network student copies whatever the teacher's energies hold (further pairs, many-spin terms);
this one keeps only the part of them that has the physicist's form.
Output: the couplings as an .npz (arrays J_h, J_v (n_x, n_y) float32: a Hamiltonian source,
`generate_ising.py --hamiltonian EA --couplings FIT.npz`) beside a JSON of the summary (rms error
against the couplings the file records, the fraction of signs right, the block error bars).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import data_files
import estimators
import hamiltonians
import ising
import spin_glass
from checks import (HelpFormatter, UserError, atomic_path, check_output_file, main_guard, positive_float, positive_int,
                    write_json)

KIND = "pseudo_likelihood"
TEACHER_KIND = "teacher_per_bond"     # the label-free student: a teacher's energies, least squares
TEACHER_PAIRS_KIND = "teacher"        # the same with the five numbers of NAMES
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


def fit(counts: np.ndarray, beta: float, steps: int = 50, tol: float = 1e-12, spin_flip: bool = False) -> np.ndarray:
    """(J_h, J_v, J_d, J_a, h) maximising sum_rows counts log sigmoid(2 beta ROWS . theta) (Newton);
    spin_flip: the symmetry s -> -s imposed, h = 0."""
    k = len(NAMES) - spin_flip
    x, w = ROWS[:, :k].astype(np.float64), np.zeros(k)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(x @ w))                        # 1 - sigmoid, the gradient's weight
        step = np.linalg.solve((x * (counts * p * (1.0 - p))[:, None]).T @ x, x.T @ (counts * p))
        w += step
        if np.max(np.abs(step)) < tol:
            break
    return np.append(w, [0.0] * spin_flip) / (2.0 * beta)


def read_lattices(train_path, blocks: int, max_lattices: int | None = None):
    """(metadata, grids int8 (N, n_x, n_y) ±1) of a single-beta Ising file, at least 2 lattices a block;
    UserError naming the file otherwise."""
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
    return meta, grids


def inverse_ising(train_path, blocks: int = 10, max_lattices: int | None = None, spin_flip: bool = False) -> dict:
    """The fit on every lattice of train_path (a single-beta file), with its block error bars
    (spin_flip: no field, `fit`)."""
    meta, grids = read_lattices(train_path, blocks, max_lattices)
    counts = [feature_counts(g) for g in np.array_split(grids, blocks)]
    try:
        theta = fit(np.sum(counts, axis=0), meta["beta"], spin_flip=spin_flip)
        per_block = np.array([fit(c, meta["beta"], spin_flip=spin_flip) for c in counts])
    except np.linalg.LinAlgError:
        theta = per_block = np.array([np.nan])
    if not np.all(np.isfinite(theta)) or not np.all(np.isfinite(per_block)):
        raise UserError(f"{train_path}: the pseudo-likelihood has no finite maximum on these lattices (too few "
                        "different neighbourhoods, e.g. every spin aligned); give lattices of a lower beta or more data")
    return five_numbers_report(KIND, train_path, meta, len(grids), blocks, spin_flip, theta, per_block)


def five_numbers_report(kind, train_path, meta, n_lattices, blocks, spin_flip, theta, per_block) -> dict:
    """The report of a fit of the five numbers of NAMES: theta (5,) on every lattice, per_block (blocks, 5)
    on each block alone (the error bars: their std / sqrt(blocks)), against the file's true couplings."""
    err = np.asarray(per_block).std(axis=0, ddof=1) / np.sqrt(blocks)
    truth = ising.true_couplings(meta["hamiltonian"]) if meta["hamiltonian"] in ising.HAMILTONIANS else {}
    return {"kind": kind, "train_path": str(train_path), "trained_on": meta["hamiltonian"], "beta": meta["beta"],
            "n_lattices": int(n_lattices), "n_x": meta["n_x"], "n_y": meta["n_y"], "blocks": blocks,
            "spin_flip": spin_flip, "couplings": {n: float(v) for n, v in zip(NAMES, theta)},
            "errors": {n: float(e) for n, e in zip(NAMES, err)},
            "truth": {**truth, "field": 0.0} if truth else None}


def markdown(report: dict) -> str:
    truth = report["truth"] or {}
    how = ("Pseudo-likelihood fit" if report.get("teacher") is None else
           f"Least-squares fit of the energies the teacher {report['teacher']} gives")
    lines = [f"{how} to {report['n_lattices']} lattices {report['n_x']} x {report['n_y']} "
             f"of {report['train_path']} (beta = {report['beta']:g}, {report['trained_on']}); "
             f"error bars from {report['blocks']} blocks", "",
             "| coupling (E = -J s_i s_j - h s_i) | fitted | truth | fitted / truth - 1 |", "|---|---|---|---|"]
    for n in NAMES:
        v, e, t = report["couplings"][n], report["errors"][n], truth.get(n, float("nan"))
        rel = f"{v / t - 1:+.2e}" if t else "—"
        value = "0 (imposed: --spin_flip)" if n == "field" and report.get("spin_flip") else f"{v:.6f} ± {e:.6f}"
        lines.append(f"| {n} | {value} | {t:g} | {rel} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- one coupling per bond
def site_bonds(n_x: int, n_y: int, field: bool = False) -> np.ndarray:
    """int (N, K): for site i = x n_y + y, the index into theta = (J_h.ravel(), J_v.ravel()[, field])
    (length 2 N [+ N]) of its bonds to the right (x, y+1): J_h[x, y], left (x, y-1): J_h[x, y-1],
    down (x+1, y): J_v[x, y], up (x-1, y): J_v[x-1, y]; K = 4, or 5 with the field's index 2 N + i."""
    x, y = np.divmod(np.arange(n_x * n_y), n_y)
    n = n_x * n_y
    cols = [x * n_y + y, x * n_y + (y - 1) % n_y, n + x * n_y + y, n + ((x - 1) % n_x) * n_y + y]
    return np.stack(cols + [2 * n + x * n_y + y] * field, axis=1)


def patterns(k: int) -> np.ndarray:
    """float (2^k, k) ±1: row p has +1 in column c where bit c of p is set (a site's feature signs)."""
    return np.where((np.arange(2 ** k)[:, None] >> np.arange(k)) & 1, 1.0, -1.0)


def site_counts(grids, field: bool = False, weights=None) -> np.ndarray:
    """(N, 2^K): how many lattices of grids (M, n_x, n_y) ±1 (each counted with its weight, default 1)
    have the feature pattern p at site i: the products s_i s_j with its right, left, down and up
    neighbours (K = 4), and s_i itself with `field` (K = 5), bit c of p set where feature c is +1.
    The per-bond pseudo-likelihood depends on the lattices only through these counts."""
    s = np.asarray(grids, np.int8)
    m, n_x, n_y = s.shape
    shifts = [(0, -1), (0, 1), (-1, 0), (1, 0)]          # np.roll by these brings the right, left, down, up neighbour to i
    features = [s * np.roll(s, shift, axis=(1, 2)) for shift in shifts] + [s] * field
    code = sum((f > 0).astype(np.int64) << c for c, f in enumerate(features)).reshape(m, -1)
    code += np.arange(n_x * n_y) << len(features)        # site i's patterns at i 2^K .. (i + 1) 2^K - 1
    w = None if weights is None else np.repeat(np.asarray(weights, np.float64), n_x * n_y)
    n_patterns = 2 ** len(features)
    return np.bincount(code.reshape(-1), weights=w, minlength=n_x * n_y * n_patterns).reshape(-1, n_patterns)


def fit_bonds(counts: np.ndarray, n_x: int, n_y: int, beta: float, steps: int = 100, tol: float = 1e-10):
    """theta (2 N [+ N],) = (J_h.ravel(), J_v.ravel()[, field]) maximising the pseudo-likelihood
    PL(a) = sum_(i, p) counts[i, p] log sigmoid(z_ip), z_ip = sum_c F[p, c] a[bonds[i, c]], a = 2 beta theta,
    F = patterns(K), bonds = site_bonds (K = 4, or 5 with a field: counts (N, 16) or (N, 32)).
    Concave; Newton's method from a = 0: gradient sum counts (1 - sigmoid(z)) F[p, c] into bond
    bonds[i, c], Hessian -sum counts sigmoid(z) (1 - sigmoid(z)) F[p, c] F[p, d] into (bonds[i, c],
    bonds[i, d]), a step halved while it would lower PL. Returns (theta, converged): not converged
    (the Newton steps did not fall below tol in units of 2 beta J) where PL has no finite maximum (e.g. a bond whose two spins agree
    in every lattice) or the Hessian is singular."""
    counts = np.asarray(counts, np.float64)
    k = int(np.log2(counts.shape[1]))
    bonds, F = site_bonds(n_x, n_y, field=k == 5), patterns(k)
    a = np.zeros((2 + (k == 5)) * n_x * n_y)

    def pl(a):
        return -(counts * np.logaddexp(0.0, -a[bonds] @ F.T)).sum()

    value = pl(a)
    for _ in range(steps):
        z = a[bonds] @ F.T                                # (N, 2^K)
        q = np.exp(-np.logaddexp(0.0, z))                 # 1 - sigmoid(z), without overflow
        grad = np.bincount(bonds.reshape(-1), weights=((counts * q) @ F).reshape(-1), minlength=a.size)
        blocks = np.einsum("ip,pc,pd->icd", counts * q * (1.0 - q), F, F)
        hess = np.zeros((a.size, a.size))
        np.add.at(hess, (bonds[:, :, None], bonds[:, None, :]), blocks)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return a / (2.0 * beta), False
        if not np.all(np.isfinite(step)):
            return a / (2.0 * beta), False
        t = 1.0
        while t > 1e-6 and pl(a + t * step) < value:
            t /= 2
        a = a + t * step
        value = pl(a)
        if np.max(np.abs(step)) < tol:                   # the full Newton step: no line search hides a divergence
            return a / (2.0 * beta), True
    return a / (2.0 * beta), False


def bond_products(grids, field: bool = False) -> np.ndarray:
    """float64 (M, 2 N [+ N]): per lattice of grids (M, n_x, n_y) ±1, the product s_i s_j of every bond in
    theta's order, J_h's bonds (x, y)-(x, y+1) then J_v's (x, y)-(x+1, y) (and s_i with a field)."""
    s = np.asarray(grids, np.float64)
    m = len(s)
    cols = [(s * np.roll(s, -1, axis=2)).reshape(m, -1), (s * np.roll(s, -1, axis=1)).reshape(m, -1)]
    return np.concatenate(cols + [s.reshape(m, -1)] * field, axis=1)


def normal_equations(grids, energies, field: bool = False, chunk: int = 8192, products=None):
    """(A, b) of the least squares E(s) ~ c - sum_b theta_b s_i s_j [- sum_i h_i s_i] over the lattices:
    A = X^T X, b = X^T E with X = [1, -bond_products] (M, 1 + 2 N [+ N]), accumulated in chunks so
    that 200,000 lattices of 8 x 8 never hold X at once. Sums over blocks of lattices add.
    products: another map from grids to the columns theta multiplies (`pair_sums`: the five numbers)."""
    products = products or (lambda g: bond_products(g, field))
    a = b = 0.0
    for i in range(0, len(grids), chunk):
        x = -products(grids[i:i + chunk])
        x = np.concatenate([np.ones((len(x), 1)), x], axis=1)
        e = np.asarray(energies[i:i + chunk], np.float64)
        a, b = a + x.T @ x, b + x.T @ e
    return a, b


def pair_sums(grids, field: bool = True) -> np.ndarray:
    """float64 (M, 5): per lattice of grids (M, n_x, n_y) ±1, the sum over sites of s_i s_(i+offset) for
    each pair class of ising.PAIR_NAMES (each bond once), and of s_i (without `field`: (M, 4)):
    E = -theta . pair_sums for NAMES."""
    s = np.asarray(grids, np.float64)
    cols = [(s * np.roll(s, (-dx, -dy), axis=(1, 2))).sum(axis=(1, 2)) for dx, dy in ising.PAIR_NAMES.values()]
    return np.stack(cols + [s.sum(axis=(1, 2))] * field, axis=1)


def block_fits(grids, energies, blocks: int, products) -> list:
    """[theta on every lattice, then theta on each of `blocks` disjoint blocks alone] of the least squares
    E ~ c - theta . products(grids) (`normal_equations`, `fit_energies`: None where singular)."""
    parts = [normal_equations(g, e, products=products)
             for g, e in zip(np.array_split(grids, blocks), np.array_split(energies, blocks))]
    return [fit_energies((sum(a for a, _ in parts), sum(b for _, b in parts)))] + [fit_energies(p) for p in parts]


def fit_energies(equations) -> np.ndarray | None:
    """theta (2 N [+ N],) of `normal_equations` (the constant c dropped: a label-free energy is known only
    up to one), or None where they are singular (a bond whose product is the same in every lattice)."""
    a, b = equations
    try:
        solution = np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return None
    return solution[1:] if np.all(np.isfinite(solution)) else None


def teacher_energies(teacher, grids, system=None) -> np.ndarray:
    """float64 (M,): the energies a trained probability model (run directory) gives the lattices:
    -(1/beta) log q(s) + const for the causal model, its absolute energy for a conditional one (`teacher.py`).
    Checked like a student's teacher: of the lattices' size and Hamiltonian (runs.check_grids), and, where
    the file records its system (`data_files.file_system`), that the teacher learned the same one: a
    teacher of another spin-glass instance of the same size would label these lattices with its energy."""
    from runs import load_probability_model, predict, read_run     # torch only where a teacher is asked for

    model, _ = load_probability_model(teacher, "--teacher")
    learned = read_run(teacher).system
    if system is not None and learned is not None and not hamiltonians.same_system(learned, system):
        raise UserError(f"--teacher {teacher}: it learned {learned.label}, these lattices are of {system.label}; "
                        "a teacher labels lattices of its own system only")
    hp = model.hparams
    if (int(hp.n_x), int(hp.n_y)) != grids.shape[1:]:
        raise UserError(f"--teacher {teacher}: trained on {hp.n_x} x {hp.n_y} lattices, these are "
                        f"{grids.shape[1]} x {grids.shape[2]}; it labels lattices of its own size only")
    return np.asarray(predict(model, grids, batch_size=4096), np.float64)


def teacher_fit(train_path, teacher, blocks: int = 10, max_lattices: int | None = None, spin_flip: bool = False) -> dict:
    """The label-free five numbers: (J_h, J_v, J_d, J_a, h) and a constant fitted by least squares to the
    energies the teacher (a run directory of a probability model trained on these lattices) gives every
    lattice of train_path, with block error bars; the report of `inverse_ising`, kind TEACHER_PAIRS_KIND.
    The teacher knows the energy up to a constant; the fit keeps the projection of its energies on the
    form a physicist writes down, and so drops the further pairs and many-spin terms a network student
    would copy from it. spin_flip: the symmetry s -> -s imposed, no field (a teacher's odd terms dropped;
    on a large lattice near T_c even h ~ 1e-4 orders it, beta h M ~ 1)."""
    meta, grids = read_lattices(train_path, blocks, max_lattices)
    energies = teacher_energies(teacher, grids, data_files.file_system(train_path, meta))
    thetas = block_fits(grids, energies, blocks, lambda lattices: pair_sums(lattices, not spin_flip))
    if any(t is None for t in thetas):
        raise UserError(f"{train_path}: the least squares have no unique solution on these lattices (a pair class "
                        "whose sum is the same in every lattice of a block); give more lattices or fewer --blocks")
    thetas = [np.append(t, [0.0] * spin_flip) for t in thetas]
    report = five_numbers_report(TEACHER_PAIRS_KIND, train_path, meta, len(grids), blocks, spin_flip, thetas[0],
                                 thetas[1:])
    return {"kind": report["kind"], "teacher": str(teacher), **report}


def planted_couplings(meta: dict, n_x: int, n_y: int):
    """(J_h, J_v) float64 (n_x, n_y) a file records (an EA file's instance; ISING1: every bond 1), else None;
    UserError where the recorded instance does not fit the lattices or holds no finite couplings."""
    if meta.get("hamiltonian") == "ISING1":
        return np.ones((n_x, n_y)), np.ones((n_x, n_y))
    if meta.get("hamiltonian") != "EA":
        return None
    try:
        h = hamiltonians.from_attrs(meta)
    except (KeyError, ValueError, TypeError) as err:
        raise UserError(f"{meta['path']}: attribute hamiltonian = EA but no valid couplings J_h, J_v "
                        f"({type(err).__name__}: {err})") from None
    if (h.n_x, h.n_y) != (n_x, n_y):
        raise UserError(f"{meta['path']}: its couplings are of a {h.n_x} x {h.n_y} instance but its lattices "
                        f"are {n_x} x {n_y}")
    return h.J_h_array, h.J_v_array


EXACT_T = (0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 2.5, 3.0)
EXACT_MAX_SIDE = 10          # the shorter side up to which the exact comparison runs (rows of 2^10 states: seconds)


def heat_capacity_peak(J_h, J_v, t_min: float = 0.3, t_max: float = 3.0, step: float = 0.05) -> float:
    """The temperature of the exact C/N maximum of an instance on [t_min, t_max]: the grid's largest
    C = beta^2 Var E, refined by the parabola through it and its two neighbours (spin_glass.moments)."""
    ts = np.arange(t_min, t_max + step / 2, step)
    return estimators.parabola_peak(ts, [spin_glass.moments(J_h, J_v, 1.0 / t)[1] / t ** 2 for t in ts])


def exact_comparison(fit, truth, temperatures=EXACT_T) -> dict:
    """The fitted instance against the planted one, exactly (transfer matrix, `spin_glass`); fit and
    truth are (J_h, J_v), float (n_x, n_y) each. Per temperature T = 1/beta, per site (N = n_x n_y):
      u_exact   = <E_true>_true / N, the planted instance's internal energy;
      u_fit     = <E_fit>_fit / N, the fit's own energy in its own Boltzmann law (what simulating the fit reports);
      u_cross   = <E_true>_fit / N, the true energy of the fit's law (its samples judged by the planted
                  Hamiltonian): -d/dl log Z(l) at l = 0, Z(l) = sum_s exp(-beta E_fit(s) - l E_true(s)), i.e.
                  `log_z` of the couplings beta J_fit + l J_true at beta 1, by 5-point differences.
    And the ground states: e0_exact = min E_true / N, e0_fit_true = E_true of the fit's ground state / N:
    the slope of min_s [E_fit(s) + eps E_true(s)] in eps (`ground_state`, eps = 1e-7: among states within
    ~eps sum|J| of the fit's minimum, the lowest true energy)."""
    fit = [np.asarray(a, np.float64) for a in fit]
    truth = [np.asarray(a, np.float64) for a in truth]
    n = fit[0].size
    rows = []
    for T in temperatures:
        beta = 1.0 / T
        h = 1e-4

        def f(l):
            return spin_glass.log_z(*(beta * a + l * b for a, b in zip(fit, truth)), 1.0)
        cross = -(-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)
        rows.append({"T": T, "u_exact": spin_glass.moments(*truth, beta)[0] / n,
                     "u_fit": spin_glass.moments(*fit, beta)[0] / n, "u_cross": cross / n})
    t_fit, t_exact = heat_capacity_peak(*fit), heat_capacity_peak(*truth)
    eps = 1e-7
    e0_fit = spin_glass.ground_state(*fit)[0]
    e0_cross = (spin_glass.ground_state(*(a + eps * b for a, b in zip(fit, truth)))[0] - e0_fit) / eps
    e0 = spin_glass.ground_state(*truth)[0]
    return {"rows": rows, "max_abs_du_fit": max(abs(r["u_fit"] - r["u_exact"]) for r in rows),
            "max_abs_du_cross": max(abs(r["u_cross"] - r["u_exact"]) for r in rows),
            "c_peak_T_exact": t_exact, "c_peak_T_fit": t_fit, "c_peak_rel_error": abs(t_fit / t_exact - 1),
            "e0_exact": e0 / n, "e0_fit_own": e0_fit / n, "e0_fit_true": e0_cross / n,
            "e0_rel_error": abs(e0_cross - e0) / abs(e0), "e0_own_rel_error": abs(e0_fit - e0) / abs(e0)}


def per_bond(train_path, blocks: int = 10, max_lattices: int | None = None, field: bool = False, exact_T=EXACT_T,
             teacher=None):
    """The per-bond fit on every lattice of train_path, with its block error bars: (report dict,
    arrays {J_h, J_v[, field]} float32 (n_x, n_y) of the fit). Where the file records its couplings and
    the shorter side is at most EXACT_MAX_SIDE, the report's "exact" compares the fit's couplings (as
    written, float32, no field) with them at the temperatures exact_T (`exact_comparison`; none: skipped).

    teacher (a run directory of a probability model trained on these lattices): the label-free student.
    Instead of the pseudo-likelihood, the couplings are the least-squares fit of the teacher's energies
    of the lattices (`normal_equations`): the teacher knows the energy up to a constant, the form (one
    coupling per bond) is the EA Hamiltonian's own, and the fit averages the teacher's error per lattice
    over 2 N parameters only. The Hamiltonian it gives is the planted one's kind, so the sampler runs it
    exactly (`generate_ising.py --hamiltonian EA --couplings FIT.npz`)."""
    meta, grids = read_lattices(train_path, blocks, max_lattices)
    meta["path"] = str(train_path)
    m, n_x, n_y = grids.shape
    beta = meta["beta"]
    if min(n_x, n_y) < 3:
        raise UserError(f"{train_path}: lattices of {n_x} x {n_y}; the per-bond fit needs sides >= 3 (on a side "
                        "of 2 the two bonds of a pair always carry the same product, only their sum is defined)")
    if not (np.isfinite(beta) and beta > 0):
        raise UserError(f"{train_path}: beta = {beta}; the fit needs a finite beta > 0")
    truth = planted_couplings(meta, n_x, n_y)
    if teacher is None:
        parts = [site_counts(g, field) for g in np.array_split(grids, blocks)]
        fits = [fit_bonds(np.sum(parts, axis=0), n_x, n_y, beta)] + [fit_bonds(c, n_x, n_y, beta) for c in parts]
        thetas = [t if ok else None for t, ok in fits]
    else:
        energies = teacher_energies(teacher, grids, data_files.file_system(train_path, meta))
        thetas = block_fits(grids, energies, blocks, lambda lattices: bond_products(lattices, field))
    if any(t is None for t in thetas) or np.abs(thetas[1:]).max() > hamiltonians.MAX_COUPLING:
        raise UserError(f"{train_path}: the fit has no finite solution on these lattices (a bond whose spins agree, "
                        "or disagree, in every lattice of a block); give more lattices, a lower beta or fewer --blocks")
    theta, per_block = thetas[0], np.array(thetas[1:])
    err = per_block.std(axis=0, ddof=1) / np.sqrt(blocks)
    n = n_x * n_y
    arrays = {"J_h": theta[:n].reshape(n_x, n_y), "J_v": theta[n:2 * n].reshape(n_x, n_y)}
    if field:
        arrays["field"] = theta[2 * n:].reshape(n_x, n_y)
    fitted = theta[:2 * n]
    report = {"kind": f"{KIND}_per_bond" if teacher is None else TEACHER_KIND, "teacher": teacher and str(teacher),
              "train_path": str(train_path), "trained_on": meta["hamiltonian"],
              "disorder_seed": meta.get("disorder_seed"), "beta": beta, "n_lattices": int(m), "n_x": n_x,
              "n_y": n_y, "blocks": blocks, "field": field,
              "error_bar_rms": float(np.sqrt(np.mean(err[:2 * n] ** 2))),
              "error_bar_max": float(err[:2 * n].max()),
              "mean_abs_coupling": float(np.abs(fitted).mean())}
    if field:
        report["field_rms"] = float(np.sqrt(np.mean(theta[2 * n:] ** 2)))
        report["field_error_bar_rms"] = float(np.sqrt(np.mean(err[2 * n:] ** 2)))
    if truth is not None:
        planted = np.concatenate([truth[0].ravel(), truth[1].ravel()])
        dev = fitted - planted
        report.update(rms_error=float(np.sqrt(np.mean(dev ** 2))), max_abs_error=float(np.abs(dev).max()),
                      mean_error=float(dev.mean()), signs_right=float(np.mean(np.sign(fitted) == np.sign(planted))),
                      n_signs_wrong=int(np.sum(np.sign(fitted) != np.sign(planted))),
                      max_error_in_error_bars=float(np.max(np.abs(dev) / err[:2 * n])),
                      rms_error_by_row={k: np.sqrt(np.mean(d.reshape(n_x, n_y) ** 2, axis=1)).tolist()
                                        for k, d in (("J_h", dev[:n]), ("J_v", dev[n:]))})
        if exact_T and min(n_x, n_y) <= EXACT_MAX_SIDE:
            written = [arrays[k].astype(np.float32) for k in ("J_h", "J_v")]
            report["exact"] = exact_comparison(written, truth, exact_T)
    report["errors"] = {"J_h": err[:n].reshape(n_x, n_y).tolist(), "J_v": err[n:2 * n].reshape(n_x, n_y).tolist()}
    return report, {k: v.astype(np.float32) for k, v in arrays.items()}


def markdown_per_bond(report: dict) -> str:
    how = ("pseudo-likelihood fit" if report.get("teacher") is None else
           f"least-squares fit of the energies the teacher {report['teacher']} gives")
    lines = [f"Per-bond {how} to {report['n_lattices']} lattices {report['n_x']} x {report['n_y']} "
             f"of {report['train_path']} (beta = {report['beta']:g}, {report['trained_on']}); error bars from "
             f"{report['blocks']} blocks", "", "| quantity | value |", "|---|---|"]
    for key in ("mean_abs_coupling", "error_bar_rms", "error_bar_max", "rms_error", "max_abs_error", "mean_error",
                "signs_right", "n_signs_wrong", "max_error_in_error_bars", "field_rms", "field_error_bar_rms"):
        if key in report:
            lines.append(f"| {key} | {report[key]:.6g} |")
    if "rms_error_by_row" in report:
        rows = report["rms_error_by_row"]
        lines += ["", "rms error by row x (J_h: the bonds (x, y)-(x, y+1); J_v: (x, y)-(x+1, y), the last row's wrap "
                  "around the torus)", "", "| x | " + " | ".join(str(x) for x in range(len(rows["J_h"]))) + " |",
                  "|---|" + "---|" * len(rows["J_h"])]
        lines += [f"| {k} | " + " | ".join(f"{v:.3f}" for v in rows[k]) + " |" for k in ("J_h", "J_v")]
    if "exact" in report:
        ex = report["exact"]
        lines += ["", "Exact (transfer matrix): U/N of the planted instance, of the fit in its own energy, and the "
                  "planted energy averaged over the fit's Boltzmann law", "",
                  "| T | U/N exact | U/N fit | fit - exact | <E_true>_fit/N | - exact |", "|---|---|---|---|---|---|"]
        for r in ex["rows"]:
            lines.append(f"| {r['T']:g} | {r['u_exact']:.5f} | {r['u_fit']:.5f} | {r['u_fit'] - r['u_exact']:+.5f} | "
                         f"{r['u_cross']:.5f} | {r['u_cross'] - r['u_exact']:+.5f} |")
        lines += ["", f"C/N maximum: exact at T = {ex['c_peak_T_exact']:.4f}, the fit's own at "
                  f"{ex['c_peak_T_fit']:.4f} ({ex['c_peak_rel_error']:.2%} off)"]
        lines += ["", f"ground state E_0/N: exact {ex['e0_exact']:.5f}; the fit's own {ex['e0_fit_own']:.5f} "
                  f"({ex['e0_own_rel_error']:.2%} off); the planted energy of the fit's ground state "
                  f"{ex['e0_fit_true']:.5f} ({ex['e0_rel_error']:.2%} off)"]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--train_path", default=data_files.path("train"), help="lattices of one beta (generate_ising.py)")
    p.add_argument("--out", default=None, help="JSON to write, its .md beside it, and the per-bond fit's .npz "
                   "(default: results/inverse_ising/pseudo_likelihood_<Hamiltonian of the file>.json, "
                   "pseudo_likelihood_per_bond_<instance>.json; with --teacher, teacher[_per_bond]_..._from_<teacher>.json)"
                   "%(default).0s")
    p.add_argument("--blocks", type=positive_int, default=10, help="disjoint blocks of lattices for the error bars")
    p.add_argument("--max_lattices", type=positive_int, default=None, help="use only the first this many lattices")
    p.add_argument("--per_bond", action="store_true", help="one coupling per bond (J_h, J_v per site, written as an "
                   ".npz): the default for a spin-glass file (hamiltonian EA)")
    p.add_argument("--spin_flip", action="store_true", help="the five numbers: impose the symmetry s -> -s, no "
                   "field (as the label-free EDNN students' --spin_flip; per bond there is none unless --field)")
    p.add_argument("--field", action="store_true", help="per bond: fit a field per site too (off by default: the EA "
                   "model has none, and generate_ising.py --couplings does not read it)")
    p.add_argument("--teacher", default=None, metavar="RUN", help="label-free: fit the couplings (the five numbers, "
                   "or per bond) to the energies a trained probability model (a run directory of probability_trainer.py, "
                   "trained on these lattices) gives them, by least squares, instead of the pseudo-likelihood")
    p.add_argument("--exact_T", type=positive_float, nargs="*", default=list(EXACT_T), metavar="T",
                   help="per bond, where the file records its couplings and the shorter side is <= "
                   f"{EXACT_MAX_SIDE}: exact U/N of the fit and of the planted instance at these temperatures, and "
                   "their ground states (give --exact_T alone to skip)")
    args = p.parse_args(argv)
    if args.blocks < 2:
        raise UserError("--blocks: the error bars need at least 2 blocks")
    meta = data_files.check_data_file(args.train_path)
    bonds = args.per_bond or args.field or meta.get("hamiltonian") == "EA"
    if args.spin_flip and bonds:
        raise UserError("--spin_flip drops the field of the five-number fit; a per-bond fit has none unless --field")
    suffixes = (".json", ".md", ".npz") if bonds else (".json", ".md")

    def check_out(out):
        """Every file written (the JSON, its .md, the .npz per bond), before any work where --out is given."""
        out = Path(out)
        if out.suffix in suffixes[1:]:
            raise UserError(f"--out {out}: the JSON's name; the {' and '.join(suffixes[1:])} go beside it")
        for suffix in suffixes:
            check_output_file("--out", out if suffix == ".json" else out.with_suffix(suffix), inputs=(args.train_path,))
        return out

    if args.out is not None:
        check_out(args.out)
    if bonds:
        report, arrays = per_bond(args.train_path, args.blocks, args.max_lattices, args.field, args.exact_T, args.teacher)
        seed = report["disorder_seed"]
        label = f"{report['trained_on']}_{report['n_x']}x{report['n_y']}" + ("" if seed in (None, -1) else f"_seed{seed}")
        if args.teacher is not None:
            label += f"_from_{Path(args.teacher).resolve().name}"
        out = check_out(args.out or f"results/inverse_ising/{report['kind']}_{label}.json")
        with atomic_path(out.with_suffix(".npz")) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        text = markdown_per_bond(report)
        report = {**report, "couplings": str(out.with_suffix(".npz"))}
    else:
        if args.teacher is None:
            report = inverse_ising(args.train_path, args.blocks, args.max_lattices, args.spin_flip)
        else:
            report = teacher_fit(args.train_path, args.teacher, args.blocks, args.max_lattices, args.spin_flip)
        label = (f"{report['kind']}_{report['trained_on']}" + "_Flip" * args.spin_flip
                 + ("" if args.teacher is None else f"_from_{Path(args.teacher).resolve().name}"))
        out = check_out(args.out or f"results/inverse_ising/{label}.json")
        text = markdown(report)
    write_json(out, {**report, "source": str(out)})
    with atomic_path(out.with_suffix(".md")) as tmp:
        Path(tmp).write_text(text + "\n")
    print(text)
    print(f"\nwrote {', '.join(str(out.with_suffix(x)) for x in suffixes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
