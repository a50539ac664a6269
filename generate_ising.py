"""Sample the 2D Ising model and stream the lattices to HDF5: burn-in, thinning, the file, the CLI.

    python generate_ising.py --beta 0.25 --n_samples 100000 --filename data/my_data.hdf5
    python generate_ising.py --hamiltonian ISING2 --beta_min 0.1 --beta_max 0.6 --n_beta_samples 11 ...
    python generate_ising.py --hamiltonian weights/energy/EDNN_F1_C1_hid16x2 --beta 0.44 --n_x 32 --n_y 32 ...
    python generate_ising.py --q 3 --beta 0.8 ...          # the q-state Potts model (potts.py)

The sweeps are `metropolis.py`'s (compiled JAX, all chains and betas at once, exact detailed
balance). Here: burn-in from a random start, the integrated autocorrelation time of the energy
measured on the last burn-in sweeps, stored samples `thin` sweeps apart, and blocks streamed into
chunked HDF5 datasets while the next block is computed.

A learned Hamiltonian: `--hamiltonian RUN_DIR` names a run of the extensive model, whose energy
function is exactly a table of window energies (`runs.energy_table`); the sampler then draws from
exp(-beta E_learned) on any lattice the model tiles, and `true_energies` hold the learned energies
(attributes: hamiltonian = the run directory, energy_function = "table", trained_on = the
Hamiltonian of the run's training data).

The q-state Potts model: `--q Q` (E = -sum over bonds of delta(s_i, s_j), `potts.py`) is sampled by
heat-bath colour updates; `ising_grids` then hold the states 0..q-1, and the attributes say
hamiltonian = "POTTS<q>", q = q, algorithm = "heat-bath" (Ising files carry no `q`). A run of the one-hot
extensive model trained on Potts lattices is a table of q^9 window energies (`potts.PottsTable`):
`--hamiltonian RUN_DIR` samples it by heat bath on the table's colours (sides >= 3).

HDF5 layout (written under a temporary name, renamed when complete):
  ising_grids int8 (N, n_x, n_y) +-1; true_energies float32 (N,); beta float32 (N,);
  avg_E float32 (n_betas,) mean stored energy per beta; attributes hamiltonian, n_x, n_y, betas,
  n_chains, burn_in_sweeps, thin_sweeps, algorithm, random_seed, acceptance_rate (per beta),
  tau_int_sweeps (per beta, measured), n_samples_per_beta, versions (JSON), command.
  Sample order: index i = (t * n_chains + c) * n_betas + b  (beta b fastest, then chain c,
  then stored time t), so any prefix [:n] has every beta equally often (+-1) and draws its
  lattices from as many different chains as possible.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from pathlib import Path

import numpy as np

import jax

from checks import UserError, main_guard
from checks import atomic_path
from ising import HAMILTONIANS, Table, check_hamiltonian, integrated_autocorr_time
from potts import Potts, PottsTable
from metropolis import ALGORITHMS, Sampler

__all__ = ["generate", "main", "validate", "Sampler"]

DEFAULT_BURN_IN = 1000
DEFAULT_TOTAL_CHAINS = 4096
TRACE_SWEEPS = 256       # last burn-in sweeps, where tau_int and the acceptance rate are measured


# ------------------------------------------------------------------------------- writing
def _write_block(dsets, start, grids, energies, betas):
    """Append one block to the resizable datasets (a separate function so tests can interrupt it)."""
    stop = start + len(grids)
    for name, arr in zip(("ising_grids", "true_energies", "beta"), (grids, energies, betas)):
        dsets[name].resize(stop, axis=0)
        dsets[name][start:stop] = arr
    return stop


def validate(hamiltonian, n_x, n_y, betas, n_samples, n_chains=None, burn_in=None, thin=None,
             algorithm="checkerboard", filename=None, random_seed=0):
    """Raise ValueError with a message saying what to change for impossible settings; returns
    the betas as float64 (n_betas,).  hamiltonian: a built-in name, an `ising.Table` or a `potts.Potts`."""
    if isinstance(hamiltonian, (Potts, PottsTable)):
        if algorithm != "checkerboard":
            raise ValueError("the Potts model is sampled by heat-bath colour updates: drop --algorithm single")
        if isinstance(hamiltonian, PottsTable) and min(int(n_x), int(n_y)) < 3:
            raise ValueError(f"a learned Potts Hamiltonian's 3 x 3 windows need --n_x and --n_y >= 3 (got {n_x} x {n_y})")
    elif isinstance(hamiltonian, Table):
        if int(n_x) % hamiltonian.focus or int(n_y) % hamiltonian.focus:
            raise ValueError(f"a {n_x} x {n_y} lattice is not tiled by the tiles of {hamiltonian.name} (focus "
                             f"{hamiltonian.focus}): choose --n_x and --n_y multiples of {hamiltonian.focus}")
        if algorithm != "checkerboard":
            raise ValueError("a learned Hamiltonian is sampled by colour updates: use --algorithm checkerboard")
    else:
        check_hamiltonian(hamiltonian)
    if not 0 <= int(random_seed) < 2 ** 64:
        raise ValueError(f"--random_seed must be in [0, 2^64) (got {random_seed})")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if int(n_x) < 2 or int(n_y) < 2:
        raise ValueError(f"lattice {n_x}x{n_y} is too small: --n_x and --n_y must be at least 2 "
                         f"(a 1-wide periodic lattice couples a spin to itself)")
    betas = np.asarray(betas, np.float64).reshape(-1)
    if betas.size == 0:
        raise ValueError("no beta given: pass --beta or --n_beta_samples with --beta_min/--beta_max")
    if not np.all(np.isfinite(betas)) or np.any(betas < 0):
        raise ValueError(f"beta must be finite and >= 0 (got {betas.tolist()}); inverse temperatures are non-negative")
    for flag, value, least, what in (("--n_samples", n_samples, 1, "positive"), ("--n_chains", n_chains, 1, "positive"),
                                     ("--burn_in", burn_in, 0, ">= 0 sweeps"), ("--thin", thin, 1, ">= 1 sweep")):
        if value is not None and int(value) < least:
            raise ValueError(f"{flag} must be {what} (got {value})")
    if filename is not None:
        parent = Path(filename).resolve().parent
        if not parent.is_dir():
            raise ValueError(f"output folder {parent} does not exist: create it (mkdir -p {parent}) "
                             f"or choose another --filename")
        if Path(filename).is_dir():
            raise ValueError(f"--filename {filename} is a directory; give a file name")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"no permission to write in {parent}; choose another --filename")
    return betas


def _burn_in(sampler, burn_in, n_chains):
    """Burn-in sweeps; the last TRACE_SWEEPS (in equilibrium) record the energy after each sweep
    and the accepted flips, so production needs no per-sweep bookkeeping.  Returns (tau_int of
    the energy in sweeps, acceptance rate), float64 (n_betas,) each, NaN where not measured."""
    nb, n_tr = len(sampler.betas), min(TRACE_SWEEPS, burn_in)
    sampler.burn(burn_in - n_tr)
    tau, acc = np.full(nb, np.nan), np.full(nb, np.nan)
    if n_tr:
        es, flips = (np.asarray(x)[..., :sampler.n_real] for x in sampler.trace(n_tr))   # (n_tr, R), (R,)
        acc = flips.reshape(n_chains, nb).sum(0) / (float(n_chains) * n_tr * sampler.S)
        if n_tr >= 16:
            tau = np.array([integrated_autocorr_time(es[:, b::nb].T) for b in range(nb)])
    return tau, acc


def _stream(sampler, f, n_samples, thin, bar, block_bytes):
    """Produce n_samples per beta into the open HDF5 file f in the documented order; the next
    block is queued before one is written, so the device works while the host writes.  Returns
    the mean energy per beta, float64 (n_betas,)."""
    R, nb, n_x, n_y = sampler.n_real, len(sampler.betas), sampler.n_x, sampler.n_y
    N = n_samples * nb
    dsets = {"ising_grids": f.create_dataset("ising_grids", (0, n_x, n_y), np.int8, maxshape=(N, n_x, n_y),
                                             chunks=(max(1, min(N, (1 << 20) // sampler.S)), n_x, n_y))}
    for name in ("true_energies", "beta"):
        dsets[name] = f.create_dataset(name, (0,), np.float32, maxshape=(N,), chunks=(min(N, 1 << 16),))
    # time slices per produce call: a power of two (about block_bytes of spins), the remainder in
    # smaller powers of two, so only a handful of shapes is ever compiled
    per, n_slices = 1 << max(0, (block_bytes // (sampler.B * sampler.S)).bit_length() - 1), -(-N // R)
    rest = n_slices % per
    schedule = [per] * (n_slices // per) + [1 << k for k in range(rest.bit_length() - 1, -1, -1) if rest >> k & 1]
    beta_row = np.tile(sampler.betas.astype(np.float32), R // nb)                     # (R,)
    sum_e, written, pending = np.zeros(nb), 0, sampler.produce(schedule[0], thin)
    for k, n_now in enumerate(schedule):
        spins, en = pending
        if k + 1 < len(schedule):
            pending = sampler.produce(schedule[k + 1], thin)
        keep = min(n_now * R, N - written)
        spins = np.asarray(spins)[:, :R].reshape(n_now * R, n_x, n_y)[:keep]
        en = np.asarray(en)[:, :R].reshape(-1)[:keep]
        sum_e += np.bincount(np.arange(keep) % nb, weights=en, minlength=nb)
        written = _write_block(dsets, written, spins, en, np.tile(beta_row, n_now)[:keep])
        bar.update(keep)
    return sum_e / n_samples


def generate(filename, *, hamiltonian="ISING1", n_x=8, n_y=8, betas=(0.25,), n_samples=10000, n_chains=None,
             burn_in=None, thin=None, random_seed=11, algorithm="checkerboard", progress=True,
             command=None, block_bytes=1 << 25, trained_on=None):
    """Sample n_samples lattices per beta and write them atomically to `filename` (HDF5).

    n_chains: chains per beta (default: about 4096 chains in total, at most n_samples).
    burn_in: sweeps discarded from a random start (default 1000).
    thin: sweeps between stored samples (default: ceil of the largest integrated
    autocorrelation time of the energy, measured per beta on the last 256 burn-in sweeps;
    the acceptance rate is measured there too; with burn_in = 0 both are NaN and thin is 1).
    command: the attribute `command` (default: this process's command line).
    hamiltonian: "ISING1", "ISING2", an `ising.Table` (a learned Hamiltonian; its name, the run
    directory, goes into the attribute `hamiltonian`, and trained_on into `trained_on`) or a
    `potts.Potts` (states 0..q-1; attributes q and algorithm "heat-bath").
    Raises ValueError for impossible settings (see `validate`); writes nothing then, and on any
    failure or interruption removes its temporary file.  Returns the Path written.
    """
    import h5py
    import jaxlib
    from tqdm.auto import tqdm

    betas = validate(hamiltonian, n_x, n_y, betas, n_samples, n_chains, burn_in, thin, algorithm, filename, random_seed)
    n_x, n_y, n_samples, nb = int(n_x), int(n_y), int(n_samples), len(betas)
    n_chains = int(n_chains) if n_chains is not None else max(1, min(n_samples, -(-DEFAULT_TOTAL_CHAINS // nb)))
    burn_in = DEFAULT_BURN_IN if burn_in is None else int(burn_in)
    sampler = Sampler(n_x, n_y, hamiltonian, betas, n_chains, random_seed, algorithm)
    tau, acc = _burn_in(sampler, burn_in, n_chains)
    name = hamiltonian.name if isinstance(hamiltonian, (Table, Potts, PottsTable)) else hamiltonian
    if thin is None:
        thin = max(1, math.ceil(float(np.nanmax(tau)) - 1e-9)) if np.any(np.isfinite(tau)) else 1
    with atomic_path(filename) as tmp:
        with h5py.File(tmp, "w") as f, tqdm(total=n_samples * nb, unit="samples", unit_scale=True,
                                             disable=not progress, desc=f"{name} {n_x}x{n_y} {nb} beta(s)") as bar:
            f["avg_E"] = _stream(sampler, f, n_samples, int(thin), bar, block_bytes).astype(np.float32)
            if isinstance(hamiltonian, (Table, PottsTable)):
                f.attrs.update({"energy_function": "table", "trained_on": str(trained_on),
                                "table_focus": hamiltonian.focus, "table_context": hamiltonian.context})
            if isinstance(hamiltonian, (Potts, PottsTable)):
                f.attrs.update({"q": hamiltonian.q})
            f.attrs.update({"hamiltonian": name, "n_x": n_x, "n_y": n_y, "betas": betas, "n_chains": n_chains,
                            "burn_in_sweeps": burn_in, "thin_sweeps": int(thin),
                            "algorithm": "heat-bath" if isinstance(hamiltonian, (Potts, PottsTable)) else algorithm,
                            "random_seed": int(random_seed), "acceptance_rate": acc, "tau_int_sweeps": tau,
                            "n_samples_per_beta": n_samples,
                            "versions": json.dumps({"python": sys.version.split()[0], "jax": jax.__version__,
                                                    "jaxlib": jaxlib.__version__, "numpy": np.__version__,
                                                    "h5py": h5py.__version__}),
                            "command": shlex.join(sys.argv) if command is None else command,
                            "sample_order": "index = (t * n_chains + chain) * n_betas + beta_index"})
    return Path(filename)


# ------------------------------------------------------------------------------------ CLI
HELP_DEFAULTS = """
How the defaults were chosen (8x8, checkerboard, 512 chains per beta; reproduce with
`python benchmarks/bench_sampler.py --tau`).  Integrated autocorrelation time of the energy
tau_int = 1 + 2 sum_t rho(t), in sweeps:
  ISING1  beta 0.05: 1.3  0.125: 1.1  0.25: 1.2  0.35: 3.0  0.44: 5.2  0.5: 3.2  0.6: 1.7  1.0: 1.1
  ISING2  beta 0.05: 1.3  0.125: 1.3  0.2: 2.2   0.25: 4.2  0.3: 2.6   0.44: 1.2  1.0: 1.0
--thin (default: measured): ceil(tau_int) of the slowest beta of the run, measured on the fly
  on the last 256 burn-in sweeps of all chains (stored in the attributes thin_sweeps and
  tau_int_sweeps), so stored samples of one chain are at least tau_int sweeps apart
  (8x8 ISING1: thin 2 at beta 0.25, 5 for a range reaching 0.44).
--burn_in (default 1000 sweeps): from the random start the mean energy reaches its equilibrium
  value within about 100 sweeps at every beta above (and the exact finite-lattice value of
  Kaufman 1949 for ISING1); 1000 is 10x that and ~200 tau_int at the critical point.
--n_chains (default: about 4096 chains in total, never more than --n_samples): the sampler's
  throughput saturates around 4096 chains of 8x8 on 2 cores.
The acceptance rate per beta is measured on the same last 256 burn-in sweeps.
Checkerboard acceptance: c(beta) min(1, exp(-beta dE)), x 0.9 at dE = 0, with
c = 1 - exp(-20 beta)/2 (exact detailed balance; makes the sublattice updates ergodic at every
beta >= 0, see generate_ising.acceptance_scale).  --algorithm single uses plain Metropolis.
Sample order: index = (t * n_chains + chain) * n_betas + beta_index, so any prefix [:n]
covers all betas evenly and takes its lattices from as many chains as possible.
"""


def build_parser():
    p = argparse.ArgumentParser(
        description="Sample 2D Ising lattices (periodic, J=1) with a compiled JAX Metropolis sampler "
                    "and stream them to an HDF5 file (written atomically).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=HELP_DEFAULTS)
    p.add_argument("--n_x", type=int, default=8, help="rows (default 8)")
    p.add_argument("--n_y", type=int, default=8, help="columns (default 8)")
    p.add_argument("--beta", type=float, default=0.25, help="inverse temperature, if no beta range (default 0.25)")
    p.add_argument("--n_beta_samples", type=int, default=None,
                   help="number of betas: linspace(beta_min, beta_max, n_beta_samples); overrides --beta")
    p.add_argument("--beta_min", type=float, default=None, help="smallest beta of the range")
    p.add_argument("--beta_max", type=float, default=None, help="largest beta of the range")
    p.add_argument("--random_seed", type=int, default=11, help="seed; same seed and flags give an identical file (default 11)")
    p.add_argument("--hamiltonian", "--model", default="ISING1", metavar="ISING1|ISING2|RUN_DIR",
                   help="Hamiltonian: a built-in one, a run of the extensive model, whose learned energy "
                        "function is sampled exactly, or a coupling fit's JSON (inverse_ising.py) (default ISING1; --model is the reference's spelling)")
    p.add_argument("--q", type=int, default=None, metavar="Q",
                   help="sample the Q-state Potts model instead (E = -sum of delta(s_i, s_j) over bonds, "
                        "heat-bath updates; lattices hold the states 0..Q-1)")
    p.add_argument("--n_samples", type=int, default=10000, help="stored lattices per beta (default 10000)")
    p.add_argument("--burn_in", type=int, default=None, help=f"sweeps discarded first (default {DEFAULT_BURN_IN})")
    p.add_argument("--thin", type=int, default=None, help="sweeps between stored samples (default: measured tau_int)")
    p.add_argument("--n_chains", type=int, default=None,
                   help=f"independent chains per beta (default: about {DEFAULT_TOTAL_CHAINS} in total, at most n_samples)")
    p.add_argument("--algorithm", choices=ALGORITHMS, default="checkerboard",
                   help="checkerboard (sublattice) updates, or 'single': the reference's random-site single-spin flips")
    p.add_argument("--filename", default="training_data.hdf5", help="output HDF5 file (default training_data.hdf5)")
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
        betas = np.linspace(args.beta_min, args.beta_max, args.n_beta_samples) if ranged else np.array([args.beta])
        if args.q is not None:
            if args.hamiltonian != "ISING1":
                raise ValueError(f"--q samples the Potts model: drop --hamiltonian {args.hamiltonian}")
            hamiltonian, trained_on = Potts(args.q), None
        else:
            from runs import hamiltonian_source          # torch, only for a learned Hamiltonian

            hamiltonian, trained_on, _ = hamiltonian_source(args.hamiltonian)
            trained_on = None if args.hamiltonian in HAMILTONIANS else trained_on
        validate(hamiltonian, args.n_x, args.n_y, betas, args.n_samples, args.n_chains, args.burn_in,
                 args.thin, args.algorithm, args.filename, args.random_seed)
    except (ValueError, UserError) as e:
        parser.error(str(e))
    path = generate(args.filename, hamiltonian=hamiltonian, trained_on=trained_on, n_x=args.n_x, n_y=args.n_y, betas=betas,
                    n_samples=args.n_samples, n_chains=args.n_chains, burn_in=args.burn_in, thin=args.thin,
                    random_seed=args.random_seed, algorithm=args.algorithm, progress=not args.no_progress,
                    command=shlex.join([Path(__file__).name, *argv]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
