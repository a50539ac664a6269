"""Data files: the standard data set named once, reading a file's metadata, and writing files
that appear whole or not at all.

The standard data set is what `make data` writes and the trainers and the evaluation read by
default:

    python data_files.py                         # write the missing files into data/
    python data_files.py --data_dir data/demo --n_train 20000 --n_val 4000 --n_test 4000 --n_eval 1000
    python data_files.py --data_dir data/ising2 --hamiltonian ISING2   # the same set for the other Hamiltonian
    python data_files.py --data_dir data/potts3 --q 3                  # the q-state Potts set (below)

Sizes (stored lattices per beta, 8 x 8 ISING1, 32 MB): train 200,000 at beta 0.25; validation
20,000 each at beta 0.25 (the main one), 0.125 and 0.5; test 20,000 at beta 0.25; eval 20 betas
linspace(0.125, 0.44) x 5,000, so that the centred energies E - mean(E) span about the published
eval file's range (how it was chosen: results/README.md); 0.44 is next to the critical point
0.4407. Every file has its own seed, so the files are independent samples.

The q-state Potts set (`--q Q`, beta_c = ln(1 + sqrt q): 1.005 for q = 3) has the same roles and
sizes at betas in the same relation to the transition: train, the main validation file and test at
beta 0.8 (disordered, 0.8 beta_c for q = 3), validation also at 0.4 and 1.6 (ordered), eval 20
betas linspace(0.4, 1.0) up to beta_c; file names say the beta (`POTTS_NAMES`).

The spin-glass set (`--hamiltonian EA`, `make data-ea`, data/ea/): one fixed ±J instance per lattice,
disorder seed 0 (`spin_glass.standard_instance`, recorded in every file), the same roles and sizes.
Train, validation and test on 8 x 8 at beta 0.5 (T = 2, above the specific heat's maximum C/N = 0.41
at T = 1.4 of this instance, exact by the transfer matrix); eval on 8 x 8 and 12 x 12 at 16 betas
geometric from T = 3 to T = 0.2 with replica exchange every sweep (`EA`), checked against the exact
P(E) (8 x 8, density of states) and U, C and the ground state (12 x 12, transfer matrix).

Also here, for every module that reads or writes files: `read_metadata` (a file's attributes,
lattice size, betas, Hamiltonian, q), `file_system` (the Hamiltonian object its attributes record,
a spin-glass instance with its couplings), `file_q` (states per site: 2 for an Ising file, spins ±1
in `ising_grids`, also a file without the attribute `q`; q > 2 for a Potts file, states 0..q-1,
`potts.py`), `require_file` (a missing file is one line that says how to make it), `open_h5` / `dataset` / `check_data_file` (an unreadable or incomplete file is one
line too). Files are written by `checks.atomic_path` / `checks.write_json` (a reader never sees a
half-written file).

Light on purpose (no torch, no JAX, h5py only when a file is read): the trainers import it for
their defaults and `--help` stays instant.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from checks import HelpFormatter, MissingFileError, UserError, check_output_dir, main_guard, positive_int

DATA_DIR = "data"
# role -> (file name, generate_ising.py flags other than size and file name, size flag)
STANDARD = {
    "train": ("train_data.hdf5", "--beta 0.25 --random_seed 11", "n_train"),
    "val": ("val_data_beta_dot25.hdf5", "--beta 0.25 --random_seed 12", "n_val"),
    "val_125": ("val_data_beta_dot125.hdf5", "--beta 0.125 --random_seed 13", "n_val"),
    "val_5": ("val_data_beta_dot5.hdf5", "--beta 0.5 --random_seed 14", "n_val"),
    "test": ("test_data.hdf5", "--beta 0.25 --random_seed 15", "n_test"),
    "eval": ("eval_data.hdf5", "--n_beta_samples 20 --beta_min 0.125 --beta_max 0.44 --random_seed 16", "n_eval"),
}
POTTS_FLAGS = {"train": "--beta 0.8 --random_seed 21", "val": "--beta 0.8 --random_seed 22",
               "val_125": "--beta 0.4 --random_seed 23", "val_5": "--beta 1.6 --random_seed 24",
               "test": "--beta 0.8 --random_seed 25",
               "eval": "--n_beta_samples 20 --beta_min 0.4 --beta_max 1.0 --random_seed 26"}
POTTS_NAMES = {"val": "val_data_beta_dot8.hdf5", "val_125": "val_data_beta_dot4.hdf5",
               "val_5": "val_data_beta_1dot6.hdf5"}
EA_LADDER = "--n_beta_samples 16 --beta_min 0.3333333333333333 --beta_max 5 --swap_every 1"   # T = 3 ... 0.2
EA = {  # role -> (file name, generate_ising.py flags other than size and file name, size flag)
    "train": ("train_data.hdf5", "--n_x 8 --n_y 8 --beta 0.5 --random_seed 31", "n_train"),
    "val": ("val_data_beta_dot5.hdf5", "--n_x 8 --n_y 8 --beta 0.5 --random_seed 32", "n_val"),
    "test": ("test_data.hdf5", "--n_x 8 --n_y 8 --beta 0.5 --random_seed 33", "n_test"),
    "eval": ("eval_data.hdf5", f"--n_x 8 --n_y 8 {EA_LADDER} --random_seed 34", "n_eval"),
    # 12 x 12 at T = 0.2: 4000 burn-in sweeps with swaps reach the ground state (results/spin_glass/README.md)
    "eval_12": ("eval_data_12x12.hdf5", f"--n_x 12 --n_y 12 {EA_LADDER} --burn_in 4000 --random_seed 35", "n_eval"),
}
EA_DISORDER_SEED = 0
SIZES = {"n_train": 200_000, "n_val": 20_000, "n_test": 20_000, "n_eval": 5_000}
LATTICE = "--n_x 8 --n_y 8"


def path(role: str, data_dir=DATA_DIR, q: int = 2) -> str:
    """The standard file of a role ("train", "val", "val_125", "val_5", "test", "eval"); q > 2: of the Potts set."""
    name = POTTS_NAMES.get(role, STANDARD[role][0]) if q > 2 else STANDARD[role][0]
    return str(Path(data_dir) / name)


def val_paths(data_dir=DATA_DIR, q: int = 2) -> list[str]:
    """The validation files, the main one (early stopping) first."""
    return [path(r, data_dir, q) for r in ("val", "val_125", "val_5")]


def command(role: str, data_dir=DATA_DIR, hamiltonian: str = "ISING1", q: int = 2, **sizes) -> list[str]:
    """generate_ising.py arguments that write the standard file of `role` (q > 2: the Potts set's)."""
    _, flags, size = STANDARD[role]
    n = sizes.get(size) or SIZES[size]
    model = ["--q", str(q), *POTTS_FLAGS[role].split()] if q > 2 else ["--hamiltonian", hamiltonian, *flags.split()]
    return [*LATTICE.split(), *model, "--n_samples", str(n), "--filename", path(role, data_dir, q)]


def ea_path(role: str, data_dir="data/ea") -> str:
    """The spin-glass set's file of a role ("train", "val", "test", "eval", "eval_12")."""
    return str(Path(data_dir) / EA[role][0])


def ea_command(role: str, data_dir="data/ea", **sizes) -> list[str]:
    """generate_ising.py arguments that write the spin-glass set's file of `role`."""
    name, flags, size = EA[role]
    n = sizes.get(size) or SIZES[size]
    return ["--hamiltonian", "EA", "--disorder_seed", str(EA_DISORDER_SEED), *flags.split(), "--n_samples", str(n),
            "--filename", ea_path(role, data_dir)]


def missing_file_message(file) -> str:
    """One line: which file is missing and the command that makes it."""
    file = Path(file)
    roles = [r for r, (name, _, _) in STANDARD.items() if name == file.name]
    if roles:
        how = f"make data (or python generate_ising.py {' '.join(command(roles[0], file.parent))})"
    else:
        how = f"python generate_ising.py --filename {file} (flags: python generate_ising.py --help)"
    return f"data file {file} not found; create it with: {how}"


def require_file(file) -> Path:
    """The path, if it is a file; else MissingFileError with `missing_file_message`."""
    file = Path(file)
    if not file.is_file():
        raise MissingFileError(missing_file_message(file))
    return file


# ----------------------------------------------------------------------------- reading metadata
class IsingDataError(UserError, ValueError):
    """A data file exists but cannot be used as it is (not HDF5, wrong key, shape, values)."""


def open_h5(path, **kwargs):
    """An existing HDF5 file opened for reading; one-line errors for a missing or unreadable one."""
    import h5py

    path = require_file(path)
    try:
        return h5py.File(path, "r", **kwargs)
    except OSError as err:
        raise IsingDataError(f"{path} is not a readable HDF5 file ({err})") from err


def dataset(f, key: str):
    """The dataset `key` of an open data file; a one-line IsingDataError when the file has none
    (or, for `ising_grids`, when it holds no (N, n_x, n_y) lattices)."""
    import h5py

    d = f.get(key)
    if not isinstance(d, h5py.Dataset):
        present = sorted(k for k in f.keys() if isinstance(f[k], h5py.Dataset))
        raise IsingDataError(f"{f.filename} has no dataset {key!r} (datasets present: {present}); "
                             "expected a data file written by generate_ising.py")
    if key == "ising_grids" and (d.ndim != 3 or d.shape[0] == 0):
        raise IsingDataError(f"{f.filename}:ising_grids has shape {d.shape}; expected (N, n_x, n_y) lattices, N > 0")
    return d


def check_data_file(path, keys=("ising_grids",)) -> dict:
    """`read_metadata(path)` of a file that holds the datasets `keys`: one-line errors for a
    missing, unreadable or incomplete file, before any work that would need it."""
    with open_h5(path) as f:
        for key in keys:
            dataset(f, key)
    return read_metadata(path)


def file_q(f) -> int:
    """An open data file's states per site: its attribute `q` (2: Ising spins ±1; q > 2: Potts
    states 0..q-1), 2 for a file without it (Ising); a one-line IsingDataError for a `q` that is
    no number of states."""
    if "q" not in f.attrs:
        return 2
    import potts

    q = _plain(f.attrs["q"])
    try:
        return potts.check_q(q)
    except (TypeError, ValueError) as err:
        raise IsingDataError(f"{f.filename}: attribute q = {q!r} is not a Potts model's number of states "
                             f"({err})") from None


def file_hamiltonian(meta: dict) -> str:
    """The Hamiltonian a file holds, from its metadata (`read_metadata`): its attribute
    `hamiltonian`, or for a file written without it the nearest-neighbour model of its q (ISING1,
    POTTS<q>)."""
    if meta.get("hamiltonian"):
        return meta["hamiltonian"]
    import potts

    return potts.Potts(meta["q"]).name if meta["q"] > 2 else "ISING1"


def file_system(path, meta: dict):
    """The Hamiltonian object a file's metadata records (`hamiltonians.from_attrs`), None for a learned
    table's file; a one-line IsingDataError for a spin-glass file whose couplings cannot be read."""
    import hamiltonians

    try:
        return hamiltonians.from_attrs(meta)
    except (KeyError, TypeError, ValueError) as err:
        raise IsingDataError(f"{path}: its attributes do not record a Hamiltonian ({type(err).__name__}: {err}); "
                             "expected a data file written by generate_ising.py") from None


def _plain(value):
    """HDF5 attribute -> plain Python value."""
    import numpy as np

    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype.kind in "SO" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_metadata(path) -> dict:
    """File attributes plus ``n_x``, ``n_y``, ``hamiltonian``, ``betas`` (list of floats), ``beta``
    (the single beta, or None for multi-beta files) and ``n_lattices`` (all betas together); a
    ``q`` (`file_q`: 2 for Ising, also where the file has no attribute ``q``; q > 2 for Potts).

    Works on files without attributes too (shapes and the ``beta`` dataset are used); files
    written before the attribute was named ``hamiltonian`` call it ``model``.
    """
    import numpy as np

    path = Path(path)
    with open_h5(path) as f:
        meta = {k: _plain(v) for k, v in f.attrs.items()}
        meta["q"] = file_q(f)
        grids = f.get("ising_grids")
        meta["n_lattices"] = None
        if grids is not None and grids.ndim == 3:
            meta.setdefault("n_x", int(grids.shape[1]))
            meta.setdefault("n_y", int(grids.shape[2]))
            meta["n_lattices"] = int(grids.shape[0])
        if "betas" in meta:
            betas = np.atleast_1d(np.asarray(meta["betas"], dtype=np.float64))
        else:
            betas = np.unique(f["beta"][()]) if "beta" in f else []  # 4 bytes a sample, read once
    meta["betas"] = [float(b) for b in betas]
    meta["beta"] = meta["betas"][0] if len(meta["betas"]) == 1 else None
    meta["hamiltonian"] = meta.get("hamiltonian", meta.pop("model", None))
    for key in ("n_x", "n_y"):
        if meta.get(key) is not None:
            meta[key] = int(meta[key])
    return meta


def fingerprint(path) -> str:
    """sha256 of a file's lattices (`ising_grids`), 16 hex digits: the same file regenerated by
    the same command on any machine has the same fingerprint (the sampler is deterministic)."""
    import hashlib

    import numpy as np

    with open_h5(path) as f:
        return hashlib.sha256(np.ascontiguousarray(f["ising_grids"][()]).tobytes()).hexdigest()[:16]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Write the standard data files that are missing "
                                "(existing files are kept; delete one to remake it).",
                                formatter_class=HelpFormatter)
    p.add_argument("--data_dir", default=DATA_DIR, help="folder for the files")
    p.add_argument("--hamiltonian", "--model", default="ISING1", choices=("ISING1", "ISING2", "EA"),
                   help="Hamiltonian (EA: the spin-glass set, above; use --data_dir data/ea)")
    p.add_argument("--q", type=int, default=2, help="the q-state Potts set for q > 2 (betas in the docstring); 2: Ising")
    for size, n in SIZES.items():
        p.add_argument(f"--{size}", type=positive_int, default=n, help="lattices per beta")
    args = p.parse_args(argv)
    sizes = {k: getattr(args, k) for k in SIZES}
    if args.q != 2:
        import potts

        try:
            potts.check_q(args.q)
        except ValueError as err:
            raise UserError(f"--q: {err}") from None
    if args.hamiltonian == "EA" and args.q != 2:
        raise UserError("--q: the spin-glass set (--hamiltonian EA) has Ising spins; drop --q")
    check_output_dir("--data_dir", args.data_dir)
    ea = args.hamiltonian == "EA"
    roles = EA if ea else STANDARD
    where = (lambda role: ea_path(role, args.data_dir)) if ea else (lambda role: path(role, args.data_dir, args.q))
    for role in roles:  # a kept file must be readable: a truncated one would fail the trainers later
        if Path(where(role)).exists():
            try:
                check_data_file(where(role), ("ising_grids", "true_energies", "beta"))
            except UserError as err:
                raise UserError(f"{err}; delete it and run again to remake it") from err
    import generate_ising  # JAX: only when something is written

    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    for role in roles:
        if Path(where(role)).is_file():
            print(f"kept {where(role)}")
            continue
        argv = ea_command(role, args.data_dir, **sizes) if ea else command(role, args.data_dir, args.hamiltonian,
                                                                             args.q, **sizes)
        if generate_ising.main(argv):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
