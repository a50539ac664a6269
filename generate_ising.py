"""Sample a lattice model and stream the lattices to HDF5: the command line of `sampler.py`.

    python generate_ising.py --beta 0.25 --n_samples 100000 --filename data/my_data.hdf5
    python generate_ising.py --hamiltonian ISING2 --beta_min 0.1 --beta_max 0.6 --n_beta_samples 11 ...
    python generate_ising.py --hamiltonian weights/energy/EDNN_F1_C1_hid16x2 --beta 0.44 --n_x 32 --n_y 32 ...
    python generate_ising.py --q 3 --beta 0.8 ...          # the q-state Potts model, as --hamiltonian POTTS3

`--hamiltonian` is anything `hamiltonians.resolve` takes: ISING1, ISING2, POTTS<q>, a run directory
of the extensive model (its learned energy function is exactly a table of window energies, sampled
from exp(-beta E_learned) on any lattice it tiles; `true_energies` then hold the learned energies and
the attributes say energy_function = "table" and trained_on) or a coupling fit's JSON. The sweeps
are `metropolis.py`'s (compiled JAX, all chains and betas at once, exact detailed balance); the file
layout, burn-in, thinning and sample order are `sampler.py`'s (a seed gives the same file on any machine).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

import hamiltonians
from checks import UserError, main_guard
from sampler import (ALGORITHMS, DEFAULT_BURN_IN, DEFAULT_TOTAL_CHAINS, FIT_SWEEPS, PROPOSALS,  # noqa: F401 (API)
                     Sampler, generate, validate)

__all__ = ["generate", "main", "validate", "Sampler"]

HELP_DEFAULTS = """
Defaults: --thin is ceil(tau_int), the integrated autocorrelation time of the energy, at the slowest beta of the run, measured on the last
256 burn-in sweeps of all chains (attributes thin_sweeps, tau_int_sweeps). Slower observables (the order
parameter near T_c) leave successive stored samples of a chain correlated: the file records, per beta,
tau_int of its stored energies and order parameters and its effective_samples (what a mean over its
lattices is worth); thin more (--thin) for independent samples. --burn_in 1000 sweeps is
10x the equilibration time at every beta (8x8) and ~200 tau_int at the critical point; --n_chains
about 4096 in total, where the throughput saturates on 2 cores. Measured values and how they were
chosen: benchmarks/README.md. Checkerboard acceptance: c(beta) min(1, exp(-beta dE)), x 0.9 at
dE = 0 (exact detailed balance, ergodic at every beta: metropolis.acceptance_scale); --algorithm
single is the reference's random-site plain Metropolis. Sample order: index = (t * n_chains +
chain) * n_betas + beta_index, so any prefix [:n] covers all betas evenly.
"""


def resolve(source: str, instance=None):
    """The Hamiltonian `--hamiltonian` names (a run directory through the run layer, which needs torch;
    EA: the instance of `instance`, the keywords of `hamiltonians.spin_glass_instance`)."""
    def learned(path):
        from runs import learned_hamiltonian
        return learned_hamiltonian(path)
    return hamiltonians.resolve(source, learned=learned, instance=instance)


def build_parser():
    p = argparse.ArgumentParser(
        description="Sample 2D lattice models (Ising, Potts, a learned Hamiltonian; periodic) with a compiled "
                    "JAX sampler and stream them to an HDF5 file (written atomically).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=HELP_DEFAULTS)
    p.add_argument("--n_x", type=int, default=8, help="rows (default 8)")
    p.add_argument("--n_y", type=int, default=8, help="columns (default 8)")
    p.add_argument("--beta", type=float, default=0.25, help="inverse temperature, if no beta range (default 0.25; at most 1e4: beyond, the chains freeze)")
    p.add_argument("--n_beta_samples", type=int, default=None,
                   help="number of betas: linspace(beta_min, beta_max, n_beta_samples); overrides --beta")
    p.add_argument("--beta_min", type=float, default=None, help="smallest beta of the range")
    p.add_argument("--beta_max", type=float, default=None, help="largest beta of the range")
    p.add_argument("--random_seed", type=int, default=11, help="seed; same seed and flags give an identical file (default 11)")
    p.add_argument("--hamiltonian", "--model", default="ISING1", metavar="ISING1|ISING2|POTTS<q>|RUN_DIR",
                   help="Hamiltonian: a built-in one, a run of the extensive model, whose learned energy "
                        "function is sampled exactly, or a coupling fit's JSON (inverse_ising.py) (default ISING1; --model is the reference's spelling)")
    p.add_argument("--q", type=int, default=None, metavar="Q",
                   help="the Q-state Potts model: the same as --hamiltonian POTTS<Q> (E = -sum of delta(s_i, s_j) "
                        "over bonds, heat-bath updates; lattices hold the states 0..Q-1)")
    p.add_argument("--disorder_seed", type=int, default=0,
                   help="--hamiltonian EA: the seed of the standard ±J instance of --n_x x --n_y (default 0)")
    p.add_argument("--couplings", default=None, metavar="FILE.npz",
                   help="--hamiltonian EA: any real couplings instead, arrays J_h and J_v (n_x, n_y) of an .npz file")
    p.add_argument("--swap_every", type=int, default=0, metavar="K",
                   help="replica exchange: every K sweeps, chains at neighbouring betas swap configurations by the "
                        "exact rule (default 0: off); a range of betas is then spaced geometrically, which keeps "
                        "the swap rates of neighbours comparable; the file records each pair's acceptance")
    p.add_argument("--n_samples", type=int, default=10000, help="stored lattices per beta (default 10000)")
    p.add_argument("--burn_in", type=int, default=None, help=f"sweeps discarded first (default {DEFAULT_BURN_IN})")
    p.add_argument("--thin", type=int, default=None, help="sweeps between stored samples (default: measured tau_int)")
    p.add_argument("--n_chains", type=int, default=None,
                   help=f"independent chains per beta (default: about {DEFAULT_TOTAL_CHAINS} in total, at most n_samples)")
    p.add_argument("--algorithm", choices=ALGORITHMS, default="checkerboard",
                   help="checkerboard (sublattice) updates; 'single': the reference's random-site single-spin flips; "
                        "'cluster': Swendsen-Wang (ISING1, ISING2, POTTS<q>) or, on a learned table (Ising or "
                        "Potts), self-learning Monte Carlo (cluster.py); a file's acceptance_rate is then the fraction "
                        "of spins changed per sweep")
    p.add_argument("--proposal", choices=PROPOSALS, default="closed_form",
                   help="self-learning Monte Carlo's cluster proposal (--algorithm cluster on a learned Hamiltonian): "
                        "closed_form, the table's own pair couplings and field; fitted, those refitted by least squares "
                        f"to the table's energies on {FIT_SWEEPS} burn-in sweeps (accepted more often where "
                        "the table has large many-spin or odd terms)")
    p.add_argument("--filename", default="training_data.hdf5", help="output HDF5 file, replaced atomically if it exists (default training_data.hdf5); "
                   "refused before any work: a folder, device, pipe, read-only file, the --hamiltonian it samples, "
                   "or more lattices than the free disk space holds")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    return p


def main(argv=None):
    """The command line; argv defaults to sys.argv[1:].  The file records the command as
    `generate_ising.py <argv>`, also when another program (data_files.py) calls main(argv)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ranged = args.n_beta_samples is not None
        if ranged != (args.beta_min is not None) or ranged != (args.beta_max is not None):
            raise ValueError("--n_beta_samples needs --beta_min and --beta_max" if ranged else
                             "--beta_min/--beta_max need --n_beta_samples")
        if ranged and args.n_beta_samples < 1:
            raise ValueError(f"--n_beta_samples must be >= 1 (got {args.n_beta_samples})")
        if ranged and args.beta_min > args.beta_max:
            raise ValueError(f"--beta_min {args.beta_min} > --beta_max {args.beta_max}: swap them")
        if args.swap_every < 0 or (args.swap_every and not (ranged and args.n_beta_samples >= 2)):
            raise ValueError(f"--swap_every {args.swap_every}: replica exchange swaps between betas; give K > 0 "
                             "and a range of at least 2 (--n_beta_samples, --beta_min, --beta_max)")
        if args.swap_every and args.beta_min <= 0:
            raise ValueError(f"--beta_min {args.beta_min}: a geometric ladder for --swap_every needs beta_min > 0")
        spacing = np.geomspace if args.swap_every else np.linspace
        betas = spacing(args.beta_min, args.beta_max, args.n_beta_samples) if ranged else np.array([args.beta])
        if args.q is not None and args.hamiltonian != "ISING1":
            raise ValueError(f"--q samples the Potts model: drop --hamiltonian {args.hamiltonian}")
        hamiltonian = resolve(args.hamiltonian if args.q is None else f"POTTS{args.q}",
                              dict(n_x=args.n_x, n_y=args.n_y, disorder_seed=args.disorder_seed, couplings=args.couplings))
        validate(hamiltonian, args.n_x, args.n_y, betas, args.n_samples, args.n_chains, args.burn_in,
                 args.thin, args.algorithm, args.filename, args.random_seed, args.proposal)
    except (ValueError, UserError) as e:
        parser.error(str(e))
    path = generate(args.filename, hamiltonian=hamiltonian, n_x=args.n_x, n_y=args.n_y, betas=betas,
                    n_samples=args.n_samples, n_chains=args.n_chains, burn_in=args.burn_in, thin=args.thin,
                    random_seed=args.random_seed, algorithm=args.algorithm, progress=not args.no_progress,
                    swap_every=args.swap_every, proposal=args.proposal,
                    command=shlex.join([Path(__file__).name, *argv]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
