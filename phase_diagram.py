"""The phase transition of a Hamiltonian from exact sampling: T_c from Binder crossings.

    python phase_diagram.py --hamiltonian ISING1 --sizes 16 32 64 --out results/phase --images images
    python phase_diagram.py --hamiltonian weights/energy/EDNN_F1_C1_hid16x2 --sizes 8 16 --sweeps 4000
    python phase_diagram.py --hamiltonian POTTS3          # the 3-state Potts model

For each square lattice L x L (N = L^2 sites, periodic) and each beta, `sampler.Sampler` runs K
independent chains (--chains), all started ordered (every spin +1: a random start quenched below
T_c can stay stuck in stripe states for very long times), burn_in sweeps discarded, then
samples `thin` sweeps apart for --sweeps sweeps. With e = E/N and m = (1/N) sum_i s_i, each chain k
gives its time averages a_k = (<e>, <e^2>, <|m|>, <m^2>, <m^4>)_k: one independent sample each.
From their mean A over the chains (= the average over all samples):
    U/N     = <e>
    C/N     = beta^2 N (<e^2> - <e>^2)       (C = beta^2 Var E, k_B = 1)
    <|m|>
    chi/N   = beta N (<m^2> - <|m|>^2)       (chi = beta (<M^2> - <|M|>^2), M = N m; the |m| form
                                              because <m> = 0 on a finite lattice at every T)
    U4      = 1 - <m^4> / (3 <m^2>^2)        (Binder cumulant: 0 disordered, 2/3 ordered)
Error bars come from the spread between chains only, so they hold whatever the autocorrelation
within a chain: the standard error std_k(a_k)/sqrt(K) for U and <|m|>, the leave-one-out
jackknife over chains for the nonlinear C, chi and U4 (`estimators.jackknife`).

At T_c the U4 curves of all sizes cross (U4 is scale invariant there, 0.6107 for 2D Ising); below,
larger lattices order more (U4 -> 2/3), above they order less (U4 -> 0). The crossing of each pair
of consecutive sizes is where the difference d(beta) = U4_L2 - U4_L1 changes sign between two grid
points, the zero of its linear interpolation (`estimators.crossing`: of the sign changes from - to +,
the most significant; noise makes others where the curves run together). That chord is biased where
d is curved (concave near T_c: the chord's zero lies at too large a beta), so the crossing reported
is found on reweighted curves instead (`reweighting.py`: the samples of the betas around the chord's
interval whose energy histograms overlap, pooled by multi-histogram reweighting into U4(beta) of each
size, the root by brentq); the chord stays beside it, and is the estimate only where no neighbouring
runs overlap. Its error is a jackknife over chains: chain k left out of both sizes at once (the sizes'
chains are independent, so the pairs are i.i.d.), the whole procedure redone. With three or more
sizes the crossings are extrapolated, T(L1, L2) = T_inf + a L1^-(1/nu + omega) (`finite_size`), and
|T_c - T_inf| is the finite-size systematic still in T_c. The combined estimate T_c is the crossing of the two
largest sizes, not a mean over pairs: crossings drift with L (corrections to scaling, ~L^-(1/nu +
omega)), and the smaller pairs, with smaller error bars, would pull a weighted mean towards their
bias. T = 1/beta, T_err = beta_err / beta^2 (from the jackknife of T itself).

Updates (--algorithm): cluster updates by default where the Hamiltonian allows them (`cluster.py`):
Swendsen-Wang for ISING1, ISING2 and POTTS<q>, self-learning Monte Carlo for a learned table, Ising or Potts
(Swendsen-Wang proposals from its pair couplings and field, accepted by its full energy; --proposal fitted refits
them by least squares to the table's energies on each block's burn-in chains), else the local kernel. A run
keeps every finished (size, beta block) in <out>/<name>.partial/ until its report is written: rerun a
killed run with the same command and it samples only what is missing. The blocks are independent (each
has its own seed), so --workers N samples them in N processes, largest first, with the same report.

Critical slowing down of local updates: the integrated autocorrelation time of |m| (tau_int, `estimators.integrated_autocorr_time`,
in sweeps, reported per row) grows ~L^2 at T_c: in the default ISING1 run at beta = 0.44,
tau_int(|m|) = 26 (16x16), 100 (32x32), 422 (64x64) sweeps. Defaults: 20,000 sweeps (47 tau at 64x64)
after 4,000 burn-in sweeps (9.5 tau); --thin measured per beta block, a third
of the smallest tau_int(|m|) of the block on the last 1,024 burn-in sweeps (so the reported tau is
resolved; thinning costs no accuracy here, only saves measuring). Rows whose tau makes
these too short are listed under "warnings". Betas run in blocks of about 2^18 chain-sites per
Sampler (64 chains of 64x64, one block of 640 chains at 16x16): larger batches fall out of the cache
(measured 4e7 against 1.5e8 spin updates/s at 64x64). Exact finite-lattice U/N, C/N of the
Hamiltonian a run was trained on (ISING1; Kaufman's log Z, `ising.kaufman_moments`) are in its rows.

The spin glass (--hamiltonian EA) has its own report, `spin_glass_report.py` (2D has no transition to
cross): one ±J instance per size (--disorder_seed), or a disorder average over --instances K of them
(seeds S ... S + K - 1, all in one compiled program), against each instance's exact transfer matrix:
    python phase_diagram.py --hamiltonian EA --disorder_seed 0 --sizes 8 12 --out results/spin_glass
    python phase_diagram.py --hamiltonian EA --disorder_seed 0 --instances 16 --sizes 8 12

The q-state Potts model (POTTS<q>, `potts.py`): the order parameter is |m| of the Z_q magnetisation
m = (1/N) sum_i exp(2 pi i s_i / q) (`potts.zq_magnetisation`), two real components, so U4 = 1 - <|m|^4> /
(2 <|m|^2>^2) (`estimators.binder_cumulant`: 0 disordered, 1/2 ordered); chains start in the ground
state (all sites 0), and the exact reference is the infinite lattice's beta_c = ln(1 + sqrt q)
(Baxter); U4 at the crossing is that of the q-state universality class.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np

import estimators
import hamiltonians
import ising
import reweighting
import spin_glass_report
from spin_glass_report import EA_BURN_IN, EA_CHAINS, EA_EXACT_MAX, EA_SWEEPS, EA_THIN
from checks import (HelpFormatter, UserError, atomic_path, check_output_dir, check_output_file, main_guard,
                    non_negative_int, positive_float, positive_int, seed_int, write_json)

TC_EXACT = 2.0 / math.log(1.0 + math.sqrt(2.0))        # Onsager: 2.269185
DEFAULT_SIZES, DEFAULT_CHAINS, DEFAULT_SWEEPS, DEFAULT_BURN_IN = (16, 32, 64), 32, 20_000, 4_000
PILOT_SWEEPS = 1024        # last burn-in sweeps on which --thin is measured
BLOCK_SPINS = 1 << 18      # chains x sites per Sampler (see the docstring)
ISING1_BETAS = (0.1, 0.2, 0.3, 0.36, 0.4, 0.42, 0.43, 0.435, 0.44, 0.445, 0.45, 0.455, 0.46, 0.47, 0.48,
                0.5, 0.53, 0.57, 0.62, 0.7)
MEASURED_BETA_C = {"ISING2": 0.2684}   # no exact value: this script's U4 crossing of 16 and 32, centres the default grid


def exact_beta_c(hamiltonian: str):
    """beta_c of the infinite lattice where it is known exactly (ISING1, POTTS<q>), else None."""
    h = hamiltonians.builtin(hamiltonian)
    return None if h is None else h.beta_c


def default_betas(hamiltonian: str) -> list[float]:
    """ISING1's grid (dense around beta_c = 0.4407, reaching 0.1 and 0.7), scaled to the beta_c of the Hamiltonian."""
    bc = exact_beta_c(hamiltonian) or MEASURED_BETA_C[hamiltonian]
    return [round(b * bc / ising.BETA_C_ISING1, 4) for b in ISING1_BETAS]


def check_settings(sizes, betas, chains, hamiltonian=None):
    """Sorted distinct sizes and betas; UserError for settings that cannot give a crossing, or sizes the
    Hamiltonian's lattice cannot tile (a table's focus)."""
    sizes, betas = sorted(set(int(s) for s in sizes)), sorted(set(float(b) for b in betas))
    if len(sizes) < 2:
        raise UserError(f"--sizes {' '.join(map(str, sizes))}: a crossing needs at least 2 different sizes")
    if sizes[0] < 2:
        raise UserError("--sizes must be at least 2 (a 1-wide periodic lattice couples a spin to itself)")
    if hamiltonian is not None:
        from sampler import MAX_BETA, validate        # JAX: only when something is sampled
        if betas and betas[-1] > MAX_BETA:
            raise UserError(f"--betas {betas[-1]:g} is above {MAX_BETA:g}, where exp(-beta dE) is 0 in float32 for every "
                            "energy step above 0.01 and the chains freeze; give smaller betas")
        for s in sizes:
            try:
                validate(hamiltonian, s, s, [1.0], 1)
            except ValueError as err:
                raise UserError(f"--sizes {s}: {err}") from None
    if len(betas) < 2 or not all(0 < b < math.inf for b in betas):
        raise UserError("--betas: give at least 2 different positive inverse temperatures")
    if chains < 2:
        raise UserError(f"--chains {chains}: the error bars come from the spread between chains; use at least 2")
    return sizes, betas


def _seed(seed: int, size: int, block: int) -> int:
    """A 64-bit seed per (size, beta block): the Sampler keys its streams by chain index, which repeats."""
    a, b = np.random.SeedSequence([seed, size, block]).generate_state(2, np.uint32)
    return int(a) | int(b) << 32


def beta_blocks(n_betas: int, chains: int, n_sites: int) -> list[np.ndarray]:
    """Indices of the betas run together: about BLOCK_SPINS chain-sites per Sampler, >= 64 chains."""
    per = max(1, -(-64 // chains), BLOCK_SPINS // (chains * n_sites))
    return np.array_split(np.arange(n_betas), -(-n_betas // per))


def _series(sampler, n: int, thin: int, bar):
    """n samples `thin` sweeps apart: (m float64 (n, K, nb), the Hamiltonian's order parameter; E float32 (n, K, nb))."""
    R, S, nb = sampler.n_real, sampler.S, len(sampler.betas)
    out_m, out_e = [], []
    for spins, e in sampler.stream(n, thin):
        now = len(spins)
        out_m.append(sampler.hamiltonian.order_parameter(spins[..., None]).reshape(now, -1, nb))
        out_e.append(e.reshape(now, -1, nb))
        bar.update(now * thin * R * S)
    return np.concatenate(out_m), np.concatenate(out_e)


def sample_block(size, hamiltonian, betas, chains, sweeps, burn_in, thin, seed, bar, algorithm="checkerboard",
                 proposal="closed_form"):
    """One Sampler: `chains` chains at each of `betas` (nb,); proposal "fitted": self-learning Monte Carlo's
    proposal refitted to the block's own chains (`Sampler.learn_proposal`) on sampler.FIT_SWEEPS sweeps
    taken from the burn-in, before the pilot. Returns a dict: avg, the per-chain time
    averages float64 (K, nb, 5) of e, e^2, |m|, m^2, m^4; tau_m, tau_e, tau_int of |m| and of E in sweeps
    (nb,); thin, the thinning used; m, E, the series float32 (nb, K, n) kept for the reweighting."""
    from sampler import FIT_SWEEPS, Sampler

    s = Sampler(size, size, hamiltonian, betas, chains, seed, algorithm=algorithm)
    s.order()                                                  # ordered start, all +1 (Potts: all 0)
    R, S, nb = s.n_real, s.S, len(betas)
    pilot = min(PILOT_SWEEPS, burn_in) if thin is None else 0
    fit = FIT_SWEEPS if proposal == "fitted" else 0            # its sweeps come out of the burn-in
    for k in range(0, burn_in - pilot - fit, 1000):            # in pieces, so the bar moves
        n = min(1000, burn_in - pilot - fit - k)
        s.burn(n)
        bar.update(n * R * S)
    if fit:
        s.learn_proposal()
        bar.update(fit * R * S)
    if thin is None:
        thin = 1
        if pilot >= 16:
            m = _series(s, pilot, 1, bar)[0]
            thin = max(1, int(min(estimators.integrated_autocorr_time(np.abs(m[:, :, b]).T) for b in range(nb)) // 3))
    thin = max(1, min(thin, sweeps // 2))
    m, E = _series(s, sweeps // thin, thin, bar)
    e = E.astype(np.float64) / S
    avg = np.stack([e.mean(0), (e * e).mean(0), np.abs(m).mean(0), (m * m).mean(0), (m ** 4).mean(0)], axis=-1)
    tau_m = np.array([thin * estimators.integrated_autocorr_time(np.abs(m[:, :, b]).T) for b in range(nb)])
    tau_e = np.array([thin * estimators.integrated_autocorr_time(e[:, :, b].T) for b in range(nb)])
    return {"avg": avg, "tau_m": tau_m, "tau_e": tau_e, "thin": np.array(thin),
            "m": np.ascontiguousarray(m.transpose(2, 1, 0), np.float32), "E": np.ascontiguousarray(E.transpose(2, 1, 0))}


def row(avg, beta: float, size: int, components: int = 1) -> tuple[dict, np.ndarray]:
    """The row of one (L, beta) from the per-chain averages (K, 5); also U4's jackknife replicates (K,).
    components: of the order parameter (`estimators.binder_cumulant`)."""
    S, K = size * size, len(avg)
    c, c_err, _ = estimators.jackknife(avg, lambda v: beta ** 2 * S * (v[1] - v[0] ** 2))
    chi, chi_err, _ = estimators.jackknife(avg, lambda v: beta * S * (v[3] - v[2] ** 2))
    u4, u4_err, reps = estimators.jackknife(avg, lambda v: estimators.binder_cumulant(v[3], v[4], components))
    mean, se = avg.mean(0), avg.std(0, ddof=1) / math.sqrt(K)
    return {"L": size, "beta": beta, "T": 1.0 / beta, "U_per_site": mean[0], "U_err": se[0],
            "C_per_site": float(c), "C_err": float(c_err), "abs_m": mean[2], "abs_m_err": se[2],
            "chi_per_site": float(chi), "chi_err": float(chi_err), "binder": float(u4), "binder_err": float(u4_err)}, reps


def crossing_of(betas, u1, u2, reps1, reps2, sizes) -> dict:
    """The U4 crossing of two sizes: beta, T, their jackknife errors over chains (chain k left out of both)."""
    d_reps = reps2 - reps1                                      # (K, nb)
    k = len(d_reps)
    d_err = np.sqrt((k - 1) / k * ((d_reps - d_reps.mean(0)) ** 2).sum(0))
    found = estimators.crossing(betas, u1, u2, d_err, direction=+1)     # the larger lattice orders more at large beta
    if found is None:
        return {"sizes": list(sizes), "beta": None, "beta_err": None, "T": None, "T_err": None,
                "note": "U4 of the two sizes does not cross on this beta grid"}
    bc, i = found
    b_reps = np.array([estimators.linear_root(betas, d, i) for d in d_reps])
    jk = lambda r: math.sqrt((k - 1) / k * ((r - r.mean()) ** 2).sum())   # noqa: E731
    return {"sizes": list(sizes), "beta": bc, "beta_err": jk(b_reps), "T": 1.0 / bc, "T_err": jk(1.0 / b_reps),
            "bracket": [betas[i], betas[i + 1]], "binder_at_crossing": float(np.interp(bc, betas, u2))}


def resolve(source, as_table=False):
    """The Hamiltonian `--hamiltonian` names (a run directory through the run layer); UserError otherwise."""
    def learned(path):
        from runs import learned_hamiltonian          # torch: only for a run
        return learned_hamiltonian(path)
    try:
        return hamiltonians.resolve(source, as_table, learned)
    except ValueError as err:
        raise UserError(str(err)) from None


def default_algorithm(hamiltonian, size: int) -> str:
    """Cluster updates where the Hamiltonian's lattice serves them (far shorter autocorrelation near T_c),
    else its own first update (checkerboard; heat bath for Potts)."""
    from lattices import lattice
    algorithms = lattice(hamiltonian, size, size, False).algorithms
    return "cluster" if "cluster" in algorithms else algorithms[0]


def _block_key(**settings) -> str:
    """What a kept block was sampled with: a rerun reuses it only when every setting is the same."""
    return json.dumps(settings, sort_keys=True, default=str)


def _load_block(path: Path, key: str):
    """A finished block a killed run left in its --resume folder, or None (missing, other settings, unreadable)."""
    try:
        with np.load(path) as f:
            if str(f["key"]) != key:
                return None
            return {k: f[k] for k in ("avg", "tau_m", "tau_e", "thin", "m", "E")}
    except (OSError, KeyError, ValueError):
        return None


def _save_block(path: Path, key: str, block: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, key=key, **block)


class _QueueBar:
    """A worker's progress bar: its counts go to the parent's bar through a queue."""
    queue = None

    def update(self, n):
        self.queue.put(n)


def _worker_init(queue):
    _QueueBar.queue = queue


def _block(args, path, key, algorithm, bar=None, proposal="closed_form"):
    """`sample_block(*args)`, kept in the resume folder (path, None: none) as soon as it is done, so that a
    killed run keeps it; bar None: a worker process's (`_QueueBar`)."""
    block = sample_block(*args, _QueueBar() if bar is None else bar, algorithm, proposal)
    if path is not None:
        _save_block(path, key, block)
    return block


def _sample_in_processes(jobs, kept, missing, cost, workers, algorithm, bar, proposal="closed_form"):
    """Sample the blocks `missing` (indices into jobs) in `workers` processes, largest first (so the last to
    finish are small), filling kept. Every block has its own seed, so the report is the same for any number
    of processes. Spawned, not forked: JAX's threads do not survive a fork."""
    import gc
    import multiprocessing
    import queue as queues
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    counts, others = ctx.Queue(), set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(min(workers, len(missing)), mp_context=ctx, initializer=_worker_init,
                               initargs=(counts,))
    running = {pool.submit(_block, *jobs[j], algorithm, proposal=proposal): j for j in sorted(missing, key=lambda j: -cost[j])}
    try:
        while running:
            done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            try:
                while True:
                    bar.update(counts.get_nowait())
            except queues.Empty:
                pass
            for f in done:
                kept[running.pop(f)] = f.result()
    except BaseException:                     # Ctrl-C, SIGTERM, a worker's error: stop the others now
        for process in set(multiprocessing.active_children()) - others:
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        counts.close()
        del pool, counts                      # their semaphores released now: a stopped run exits without finalizers
        gc.collect()


ENERGY_RESOLUTION = 1e-3   # a table's float energies pooled to this: each sample's weight moves by < 1e-5 near T_c


def reweighted_crossing(betas, blocks_a, blocks_b, chord, components: int = 1) -> dict | None:
    """The U4 crossing of two sizes on their reweighted curves (`reweighting.crossing`), from the runs
    of the betas around the chord's bracket whose energy histograms overlap; None where they do not
    (the chord is then the estimate). blocks_x: (energies, m) float (nb, K, n) of one size."""
    if chord["beta"] is None:
        return None
    try:
        h = [reweighting.Histograms.around(betas, E, m, L * L, chord["bracket"], components=components,
                                           resolution=None if np.all(E == np.round(E)) else ENERGY_RESOLUTION)
             for (E, m), L in ((blocks_a, chord["sizes"][0]), (blocks_b, chord["sizes"][1]))]
    except ValueError:
        return None
    return reweighting.crossing(h[0], h[1], near=chord["beta"])


def phase_diagram(source="ISING1", sizes=DEFAULT_SIZES, betas=None, chains=DEFAULT_CHAINS, sweeps=DEFAULT_SWEEPS,
                  burn_in=DEFAULT_BURN_IN, thin=None, seed=0, progress=True, command=None, as_table=False,
                  resolved=None, algorithm=None, resume=None, workers=1, proposal="closed_form") -> dict:
    """Sample every (size, beta) and return the report (the JSON); UserError for bad settings.
    resolved: `resolve(source, as_table)` where the caller has it already. algorithm: the sampler's
    update (None: `default_algorithm`). resume: a folder where every finished (size, beta block) is kept
    (L<L>_<j>.npz, with the settings it was sampled with), so that a killed run, rerun, samples only what
    is missing; the caller removes it once the report is written. workers: processes sampling the blocks
    in parallel (the report does not depend on it; they are spawned, so a script calling this with
    workers > 1 needs the usual `if __name__ == "__main__":` guard). proposal: self-learning Monte Carlo's
    (a learned Hamiltonian under --algorithm cluster), "closed_form" or "fitted" (`sample_block`)."""
    from tqdm.auto import tqdm

    hamiltonian = resolve(source, as_table) if resolved is None else resolved
    trained_on, name = hamiltonian.trained_on, hamiltonian.label
    sizes, betas = check_settings(sizes, default_betas(trained_on) if betas is None else betas, chains, hamiltonian)
    algorithm = algorithm or default_algorithm(hamiltonian, sizes[0])
    components = hamiltonian.order_components
    nb, exact = len(betas), trained_on == "ISING1"
    plan = [(L, blk) for L in sizes for blk in beta_blocks(nb, chains, L * L)]
    cost = [(burn_in + sweeps) * chains * len(blk) * L * L for L, blk in plan]       # spin updates per block
    rows, reps, warnings, series = [], {}, [], {L: [None] * nb for L in sizes}
    jobs = []                                   # per block: sample_block's arguments, where it is kept, its settings
    for j, (L, blk) in enumerate(plan):
        block_betas, block_seed = [betas[i] for i in blk], _seed(seed, L, j)
        key = _block_key(hamiltonian=str(source), as_table=as_table, L=L, betas=block_betas, chains=chains,
                         sweeps=sweeps, burn_in=burn_in, thin=thin, seed=block_seed, algorithm=algorithm,
                         **({"proposal": proposal} if proposal != "closed_form" else {}))
        jobs.append(((L, hamiltonian, block_betas, chains, sweeps, burn_in, thin, block_seed),
                     None if resume is None else Path(resume) / f"L{L}_{j}.npz", key))
    with tqdm(total=sum(cost), unit="flip", unit_scale=True, disable=None if progress else True, desc=name) as bar:
        kept = [None if path is None else _load_block(path, key) for _, path, key in jobs]
        missing = [j for j, b in enumerate(kept) if b is None]
        bar.update(sum(cost) - sum(cost[j] for j in missing))
        if workers > 1 and len(missing) > 1:
            bar.set_description(f"{name} ({min(workers, len(missing))} processes)")
            _sample_in_processes(jobs, kept, missing, cost, workers, algorithm, bar, proposal)
            bar.update(bar.total - bar.n)
            missing = []
        for j in missing:
            L, blk = plan[j]
            bar.set_description(f"{name} L={L} beta {betas[blk[0]]:g}-{betas[blk[-1]]:g}")
            done = bar.n
            kept[j] = _block(*jobs[j], algorithm, bar, proposal)
            bar.update(done + cost[j] - bar.n)
        for (L, blk), b in zip(plan, kept):
            th = int(b["thin"])
            for q, i in enumerate(blk):
                r, reps[L, i] = row(b["avg"][:, q], betas[i], L, components)
                tau_m = float(b["tau_m"][q])
                r.update(tau_int_abs_m=tau_m, tau_int_E=float(b["tau_e"][q]), thin=th)
                series[L][i] = (b["E"][q], b["m"][q])
                if exact:
                    e_mean, e_var = ising.kaufman_moments(L, L, betas[i])
                    r.update(U_exact_per_site=e_mean / L ** 2, C_exact_per_site=betas[i] ** 2 * e_var / L ** 2)
                if burn_in < 10 * tau_m or sweeps < 50 * tau_m:
                    warnings.append(f"L={L} beta={betas[i]:g}: tau_int(|m|) = {tau_m:.0f} sweeps against "
                                    f"{burn_in} burn-in and {sweeps} sweeps (want >= 10 and 50 tau)")
                rows.append(r)
    rows.sort(key=lambda r: (r["L"], r["beta"]))
    u4 = {L: np.array([r["binder"] for r in rows if r["L"] == L]) for L in sizes}
    rp = {L: np.stack([reps[L, i] for i in range(nb)], axis=1) for L in sizes}
    # blocks of one size may thin differently (thin is measured per block): the reweighting takes the first
    # n samples of every beta, n the fewest any beta of the size has (each still an equilibrium sample)
    n_min = {L: min(series[L][i][0].shape[-1] for i in range(nb)) for L in sizes}
    stacked = {L: tuple(np.stack([series[L][i][k][..., :n_min[L]] for i in range(nb)]) for k in (0, 1))
               for L in sizes}
    crossings = []
    for a, b in zip(sizes, sizes[1:]):
        chord = crossing_of(betas, u4[a], u4[b], rp[a], rp[b], (a, b))
        found = reweighted_crossing(betas, stacked[a], stacked[b], chord, components)
        if found is not None and found["beta"] is not None:
            crossings.append({**found, "chord": {k: chord[k] for k in ("beta", "beta_err", "T", "T_err")}})
        else:
            crossings.append({**chord, "method": "chord between grid points (the runs' energy histograms around "
                                                 "it do not overlap: no reweighting)"})
    best = crossings[-1]
    report = {"hamiltonian": str(source), "name": name, "trained_on": trained_on, "sizes": sizes, "betas": betas,
              "chains": chains, "sweeps": sweeps, "burn_in": burn_in, "thin": "measured" if thin is None else thin,
              "algorithm": algorithm, **({"proposal": proposal} if proposal != "closed_form" else {}),
              "seed": seed, "command": command, "rows": rows, "crossings": crossings,
              "tc": best["T"], "tc_err": best["T_err"], "beta_c": best["beta"], "beta_c_err": best["beta_err"],
              "tc_method": f"U4 crossing of the two largest sizes, {sizes[-2]} and {sizes[-1]} ({best['method']}); "
                           "errors: jackknife over chains", "warnings": warnings}
    found = [c for c in crossings if c["T"] is not None]
    if len(found) >= 2 and hamiltonian.crossing_exponent is not None:
        fs = reweighting.extrapolate([c["sizes"][0] for c in found], [c["T"] for c in found],
                                     [c["T_err"] for c in found], hamiltonian.crossing_exponent)
        report["finite_size"] = {**fs, "note": "T(L1, L2) = T_inf + a L1^-exponent fitted to the crossings of "
                                 "consecutive sizes; systematic: |T_c - T_inf|, the finite-size correction left in T_c"}
    if exact:
        report.update(tc_exact=TC_EXACT, beta_c_exact=ising.BETA_C_ISING1,
                      exact_values_of="ISING1 (finite lattice, Kaufman 1949)")
    elif exact_beta_c(trained_on) is not None:
        bc = exact_beta_c(trained_on)
        report.update(tc_exact=1.0 / bc, beta_c_exact=bc,
                      exact_values_of=f"{trained_on}: beta_c = ln(1 + sqrt q) of the infinite lattice (Baxter 1973)")
    return report


def plot(report: dict, path) -> None:
    """U4 against T per size (full range and around the crossing), <|m|>, U/N, C/N (exact lines where known), chi/N."""
    from plotting import plt, save_figure

    fig, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    panels = [("binder", "Binder cumulant U4"), ("binder", "U4 near the crossing"), ("abs_m", "<|m|>"),
              ("U_per_site", "U / N"), ("C_per_site", "C / N"), ("chi_per_site", "χ / N")]
    errs = {"binder": "binder_err", "abs_m": "abs_m_err", "U_per_site": "U_err", "C_per_site": "C_err",
            "chi_per_site": "chi_err"}
    fine = 1 / np.geomspace(1 / max(report["betas"]), 1 / min(report["betas"]), 200)   # even in log T
    for n, (ax, (key, title)) in enumerate(zip(axes.ravel(), panels)):
        for L in report["sizes"]:
            rs = [r for r in report["rows"] if r["L"] == L]
            line = ax.errorbar([r["T"] for r in rs], [r[key] for r in rs], yerr=[r[errs[key]] for r in rs],
                               fmt="o-", ms=3, lw=0.8, capsize=2, label=f"L = {L}")
            if report["trained_on"] == "ISING1" and key in ("U_per_site", "C_per_site"):
                mom = np.array([ising.kaufman_moments(L, L, b) for b in fine])
                ax.plot(1 / fine, mom[:, 0] / L ** 2 if key == "U_per_site" else fine ** 2 * mom[:, 1] / L ** 2,
                        "-", color=line[0].get_color(), lw=0.6, alpha=0.6)
        if "tc_exact" in report:
            ax.axvline(report["tc_exact"], color="k", ls=":", lw=1, label="exact T_c (infinite lattice)")
        if report["tc"] is not None and key == "binder":
            ax.axvspan(report["tc"] - report["tc_err"], report["tc"] + report["tc_err"], color="C3", alpha=0.25)
            ax.axvline(report["tc"], color="C3", lw=1, label=f"crossing T = {report['tc']:.4f}")
            if n == 1:
                ax.set_xlim(report["tc"] * 0.97, report["tc"] * 1.03)
                ax.set_ylim(0.45, 0.7)
        if n != 1:                                   # log T: both phases and the transition in view
            ax.set_xscale("log")
            ax.set_xticks([t for t in (0.5, 1, 1.5, 2, 3, 5, 10, 20, 50) if 0.9 / max(report["betas"]) <= t
                           <= 1.1 / min(report["betas"])], minor=False)
            ax.xaxis.set_major_formatter("{x:g}")
            ax.xaxis.set_minor_formatter("")
        ax.set_xlabel("T")
        ax.set_title(title)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{report['name']}: T_c = {report['tc'] or float('nan'):.4f} ± {report['tc_err'] or 0:.4f}")
    save_figure(fig, path)


def _pm(value: float, err: float) -> str:
    """value ± err, both to the decimal of err's second significant digit."""
    d = min(8, max(0, 1 - math.floor(math.log10(err)))) if err > 0 else 4
    return f"{value:.{d}f} ± {err:.{d}f}"


def markdown(report: dict) -> str:
    """The summary and the table of rows."""
    ex_tc, ex = "tc_exact" in report, "U_exact_per_site" in report["rows"][0]
    lines = [f"# Phase diagram of {report['hamiltonian']}", "",
             f"sizes {report['sizes']}, {len(report['betas'])} betas, {report['chains']} chains each, "
             f"{report['sweeps']} sweeps after {report['burn_in']} burn-in, thin {report['thin']}, "
             f"{report.get('algorithm', 'checkerboard')} updates"
             + (f" ({report['proposal']} proposal)" if "proposal" in report else "") + f", seed {report['seed']}",
             "", "| sizes | T crossing (reweighted) | T chord |", "|---|---|---|"]
    for c in report["crossings"]:
        chord = c.get("chord", c)
        lines.append(f"| {c['sizes'][0]}, {c['sizes'][1]} | " + ("no crossing | |" if c["beta"] is None else
                     (f"{c['T']:.5f} ± {c['T_err']:.5f} | " if "chord" in c else "| ")
                     + (f"{chord['T']:.5f} ± {chord['T_err']:.5f} |" if chord["T"] is not None else "|")))
    if report["tc"] is not None:
        lines += ["", f"T_c = {report['tc']:.5f} ± {report['tc_err']:.5f} ({report['tc_method']})"
                  + (f"; exact {report['tc_exact']:.6f}, off by {report['tc'] / report['tc_exact'] - 1:+.3%}" if ex_tc else "")]
    if "finite_size" in report:
        fs = report["finite_size"]
        lines += ["", f"Extrapolated T_inf = {fs['T_inf']:.5f} ± {fs['T_inf_err']:.5f} (L^-{fs['exponent']:g}, chi2 "
                  f"{fs['chi2']:.2f} for {fs['dof']} dof); finite-size systematic in T_c: {fs['systematic']:.5f}"]
    lines += ["", "| L | β | U/N | " + ("U/N exact | " if ex else "") + "C/N | " + ("C/N exact | " if ex else "")
              + "⟨\\|m\\|⟩ | χ/N | U4 | τ(\\|m\\|) |", "|---" * (8 + 2 * ex) + "|"]
    for r in report["rows"]:
        lines.append(f"| {r['L']} | {r['beta']:g} | {_pm(r['U_per_site'], r['U_err'])} | "
                     + (f"{r['U_exact_per_site']:.6f} | " if ex else "") + f"{_pm(r['C_per_site'], r['C_err'])} | "
                     + (f"{r['C_exact_per_site']:.5f} | " if ex else "") + f"{_pm(r['abs_m'], r['abs_m_err'])} | "
                     f"{_pm(r['chi_per_site'], r['chi_err'])} | {_pm(r['binder'], r['binder_err'])} | "
                     f"{r['tau_int_abs_m']:.1f} |")
    return "\n".join(lines + [f"\nwarning: {w}" for w in report["warnings"]]) + "\n"


REPORT_KEYS = {"hamiltonian", "name", "trained_on", "sizes", "tc", "tc_err", "rows"}


def read_report(path):
    """The phase report (this script's JSON) at path, or None for a file that is not one."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    ok = isinstance(report, dict) and REPORT_KEYS <= set(report) and isinstance(report["rows"], list) and report["rows"]
    return report if ok else None


def same_hamiltonian(a: str, b: str) -> bool:
    """Two spellings of --hamiltonian for the same source: equal, or paths to the same file or folder."""
    if str(a) == str(b):
        return True
    try:
        return Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


def check_outputs(out, images, name: str, source: str) -> list[Path]:
    """The files a run writes (<out>/<name>.json, .md, <images>/phase_<name>.png), checked before any
    work: UserError for a path that cannot take them, or for a report of another Hamiltonian with the
    same name in --out (a rerun of the same --hamiltonian replaces its own)."""
    check_output_dir("--out", out)
    check_output_dir("--images", images)
    paths = [Path(out) / f"{name}.json", Path(out) / f"{name}.md", Path(images) / f"phase_{name}.png"]
    for flag, path in zip(("--out", "--out", "--images"), paths):
        check_output_file(flag, path, inputs=(source,))
    if paths[0].exists():
        old = read_report(paths[0])
        if old is None:
            raise UserError(f"--out {out}: {paths[0].name} there is not a phase report of this script; move it or "
                            "choose another --out")
        if not same_hamiltonian(old["hamiltonian"], source):
            raise UserError(f"--out {out} holds {paths[0].name}, the report of {old['hamiltonian']}; the report of "
                            f"{source} has the same name and would replace it: move it or choose another --out")
    return paths


def overview(folder) -> str:
    """One row per report in folder: T_c beside the true Hamiltonian's (its run through its table, same
    seed, when present; else its built-in run) and the exact one, and on the largest size, against the
    exact values of ISING1 where the report has them, the largest |U/N - exact| and the peak of C/N.
    JSON files that are not phase reports are skipped, said in one line on stderr; UserError for a
    folder that does not exist or holds no report."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--out {folder}: no such folder of phase reports; give the --out of earlier runs")
    reports, skipped = {}, []
    for p in sorted(folder.glob("*.json")):
        r = read_report(p)
        if r is None:
            skipped.append(p.name)
        else:
            reports[p.stem] = r
    if not reports:
        raise UserError(f"--out {folder} holds no phase reports (<name>.json of phase_diagram.py)"
                        + (f"; {', '.join(skipped)} are not phase reports" if skipped else ""))
    if skipped:
        print(f"skipped {', '.join(skipped)} in {folder}: not phase reports", file=sys.stderr)
    lines = ["| Hamiltonian | trained on | T_c | true Hamiltonian's T_c | difference | against exact | largest size: "
             "max \\|U/N − exact\\| | C/N peak β (exact) |", "|---" * 8 + "|"]
    for name, r in reports.items():
        true = name == r["trained_on"] or name == f"{r['trained_on']}_table"
        ref = None if true else reports.get(f"{r['trained_on']}_table") or reports.get(r["trained_on"])
        tc, diff, ref_tc = "—", "—", "—"
        if r["tc"] is not None:
            tc = _pm(r["tc"], r["tc_err"])
            if ref is not None and ref["tc"] is not None:
                d = r["tc"] / ref["tc"] - 1
                e = math.hypot(r["tc_err"] / ref["tc"], ref["tc_err"] * r["tc"] / ref["tc"] ** 2)
                diff, ref_tc = f"{d:+.3%} ± {e:.3%}", f"{_pm(ref['tc'], ref['tc_err'])} ({ref['name']})"
        vs_exact = f"{r['tc'] / r['tc_exact'] - 1:+.3%}" if r["tc"] is not None and "tc_exact" in r else "—"
        big = [row for row in r["rows"] if row["L"] == max(r["sizes"])]
        exact = "U_exact_per_site" in big[0]
        known = "_Centred" not in r["name"]        # a run trained on centred energies: E known up to a constant
        du = f"{max(abs(row['U_per_site'] - row['U_exact_per_site']) for row in big):.1e}" if exact and known else "—"
        b = [row["beta"] for row in big]
        peak = f"{estimators.parabola_peak(b, [row['C_per_site'] for row in big]):.4f}" + (
            f" ({estimators.parabola_peak(b, [row['C_exact_per_site'] for row in big]):.4f})" if exact else "")
        lines.append(f"| {r['name']} | {r['trained_on']} | {tc} | {ref_tc} | {diff} | {vs_exact} | {du} "
                     f"(L = {max(r['sizes'])}) | {peak} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from sampler import FIT_SWEEPS, PROPOSALS
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description="T_c of a Hamiltonian (ISING1, ISING2 or an extensive model's run) from "
                                "Binder-cumulant crossings of exact sampling (cluster or local updates) on several "
                                "lattice sizes.",
                                formatter_class=HelpFormatter)
    p.add_argument("--hamiltonian", default="ISING1", help="ISING1, ISING2, POTTS<q>, a run directory of the extensive model "
                   "or a coupling fit (inverse_ising.py); --as_table: a built-in one through its table")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=None,
                   help=f"lattice sides L (default {' '.join(map(str, DEFAULT_SIZES))}; EA: 8 12)")
    p.add_argument("--betas", type=positive_float, nargs="+", default=None,
                   help="inverse temperatures (default: a grid dense around the Hamiltonian's beta_c, 0.1 x ... 1.6 x it)")
    p.add_argument("--chains", type=positive_int, default=None,
                   help=f"independent chains per (size, beta) (default {DEFAULT_CHAINS}; EA: replica pairs, {EA_CHAINS})")
    p.add_argument("--sweeps", type=positive_int, default=None,
                   help=f"measured sweeps per chain (default {DEFAULT_SWEEPS}; EA {EA_SWEEPS})")
    p.add_argument("--burn_in", type=non_negative_int, default=None,
                   help=f"sweeps discarded first (default {DEFAULT_BURN_IN}; EA {EA_BURN_IN})")
    p.add_argument("--thin", type=positive_int, default=None,
                   help=f"sweeps between measurements (default: a third of tau_int(|m|), measured per beta block; "
                        f"EA {EA_THIN})")
    p.add_argument("--disorder_seed", type=non_negative_int, default=0,
                   help="EA: the seed of the standard ±J instance of every size (spin_glass.standard_instance)")
    p.add_argument("--instances", type=positive_int, default=None,
                   help="EA: a disorder average over this many ±J instances, disorder seeds S ... S + K - 1 "
                        "(S = --disorder_seed), sampled in one program (default 1: one instance)")
    p.add_argument("--swap_every", type=positive_int, default=1, help="EA: replica exchange every K sweeps")
    p.add_argument("--exact_max", type=positive_int, default=EA_EXACT_MAX,
                   help="EA: exact U/N, C/N and ground state for sizes up to this (the transfer matrix: at most 14)")
    p.add_argument("--algorithm", default=None,
                   help="the sampler's update: checkerboard, single or cluster (Swendsen-Wang) (default: cluster where "
                        "the Hamiltonian allows it, else checkerboard; Potts: heat bath)")
    p.add_argument("--proposal", choices=PROPOSALS, default="closed_form",
                   help="self-learning Monte Carlo's cluster proposal for a learned Hamiltonian under --algorithm "
                        "cluster: closed_form, the table's own pair couplings and field; fitted, those refitted by "
                        f"least squares to the table's energies on {FIT_SWEEPS} burn-in sweeps of each "
                        "beta block (accepted more often where the table has large many-spin or odd terms; an "
                        "extra compilation per block)")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed")
    p.add_argument("--workers", type=positive_int, default=1, help="processes sampling (size, beta) blocks in "
                   "parallel, one per core: the same report, sooner")
    p.add_argument("--as_table", action="store_true", help="sample a built-in Hamiltonian through its table, as a "
                   "learned one is (same seed and --algorithm checkerboard: the same random numbers, so the two runs' "
                   "difference is precise)")
    p.add_argument("--out", default=None, help="folder for <name>.json and <name>.md (default results/phase; EA: "
                   "results/spin_glass, <name> EA_seed<S>, EA_seeds<S>-<S+K-1>) (<name>: the "
                   "built-in Hamiltonian, a run directory's last folder, a fit's file stem; a rerun of the same "
                   "--hamiltonian replaces its report, a report there of another Hamiltonian with the same name is "
                   "refused)")
    p.add_argument("--images", default="images", help="folder for phase_<name>.png")
    p.add_argument("--progress_bar", default=True, action=argparse.BooleanOptionalAction,
                   help="progress bar (only on a terminal)")
    p.add_argument("--overview", action="store_true", help="run nothing: write <out>/overview.md, a table of the "
                   "reports in --out beside their true Hamiltonians' (T_c, U/N, the peak of C/N)")
    args = p.parse_args(argv)
    if args.instances is not None and args.hamiltonian != "EA":
        raise UserError(f"--instances {args.instances}: a disorder average is over instances of the spin glass; "
                        "use it with --hamiltonian EA")
    if args.out is None:
        args.out = "results/spin_glass" if args.hamiltonian == "EA" else "results/phase"
    if args.overview:
        if not Path(args.out).is_dir():
            raise UserError(f"--out {args.out}: no such folder of phase reports; give the --out of earlier runs")
        target = check_output_file("--out", Path(args.out) / "overview.md")
        text = overview(args.out)
        with atomic_path(target) as tmp:
            tmp.write_text(text)
        print(text, end="")
        return 0
    if args.hamiltonian == "EA":
        if args.algorithm not in (None, "checkerboard"):
            raise UserError(f"--algorithm {args.algorithm}: the spin glass is sampled by checkerboard sweeps with "
                            "replica exchange (couplings of both signs have no cluster update); drop --algorithm")
        return spin_glass_report.spin_glass_main(args, argv, Path(__file__).name)
    for key, default in (("sizes", list(DEFAULT_SIZES)), ("chains", DEFAULT_CHAINS), ("sweeps", DEFAULT_SWEEPS),
                         ("burn_in", DEFAULT_BURN_IN)):
        if getattr(args, key) is None:
            setattr(args, key, default)
    if args.sweeps < 2 * (args.thin or 1):
        raise UserError(f"--sweeps {args.sweeps}: measure at least 2 samples per chain (>= 2 x --thin sweeps)")
    check_output_dir("--out", args.out)
    check_output_dir("--images", args.images)
    hamiltonian = resolve(args.hamiltonian, args.as_table)
    json_path, md_path, png_path = check_outputs(args.out, args.images, hamiltonian.label, args.hamiltonian)
    if args.algorithm is not None:
        from lattices import lattice
        from metropolis import ALGORITHMS
        if args.algorithm not in ALGORITHMS:
            raise UserError(f"--algorithm {args.algorithm}: unknown; use one of {', '.join(ALGORITHMS)}")
        try:
            lattice(hamiltonian, 4, 4, False).check_algorithm(args.algorithm)
        except ValueError as err:
            raise UserError(f"--algorithm {args.algorithm}: {err}") from None
    if args.proposal != "closed_form":
        from lattices import lattice
        from sampler import check_proposal
        try:
            lat = lattice(hamiltonian, args.sizes[0], args.sizes[0], False)
            check_proposal(lat, args.algorithm or default_algorithm(hamiltonian, args.sizes[0]), args.proposal)
        except ValueError as err:
            raise UserError(str(err)) from None
    resume = Path(args.out) / f"{hamiltonian.label}.partial"       # finished blocks of a killed run
    report = phase_diagram(args.hamiltonian, args.sizes, args.betas, args.chains, args.sweeps, args.burn_in, args.thin,
                           args.seed, args.progress_bar, shlex.join([Path(__file__).name, *argv]), args.as_table,
                           resolved=hamiltonian, algorithm=args.algorithm, resume=resume, workers=args.workers,
                           proposal=args.proposal)
    name = report["name"]
    plot(report, png_path)
    write_json(json_path, report)
    with atomic_path(md_path) as tmp:
        tmp.write_text(markdown(report))
    shutil.rmtree(resume, ignore_errors=True)
    for c in report["crossings"]:
        print(f"U4 crossing L = {c['sizes'][0]}, {c['sizes'][1]}: " + ("none" if c["beta"] is None else
              f"beta {c['beta']:.5f} ± {c['beta_err']:.5f}, T {c['T']:.5f} ± {c['T_err']:.5f}"))
    if report["tc"] is not None:
        print(f"T_c = {report['tc']:.5f} ± {report['tc_err']:.5f}" + (f" (exact {report['tc_exact']:.6f})" if "tc_exact" in report
                                                                       else ""))
    print(f"wrote {Path(args.out) / (name + '.json')}, {Path(args.out) / (name + '.md')}, "
          f"{Path(args.images) / f'phase_{name}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
