"""The standard data set, named once: what `make data` writes and the trainers and the
evaluation read by default.

    python data_files.py                         # write the missing files into data/
    python data_files.py --data_dir data/demo --n_train 20000 --n_val 4000 --n_test 4000 --n_eval 1000
    python data_files.py --data_dir data/ising2 --model ISING2   # the same set for the other Hamiltonian

Sizes (stored lattices per beta; 8 x 8 ISING1, about a minute on 2 cores, 32 MB): train
200,000 at beta 0.25; validation 20,000 each at beta 0.25 (the main one), 0.125 and 0.5; test
20,000 at beta 0.25; eval 20 betas linspace(0.125, 0.44) x 5,000. The eval range makes the
centred energies E - mean(E) span about -81 ... +75 on 8 x 8, like the published eval file's
-82 ... +66 (measured extremes of 100,000 samples: 0.125 ... 0.44 gives -80.9 ... +75.1 with
seed 16, the file below; 0.05 ... 0.5 gives -79 ... +81; 0 ... 0.5 gives -83 ... +97); 0.44
is next to the critical point 0.4407. Every file has its own seed, so the files are
independent samples.

Light on purpose (no torch, no JAX at import): the trainers import it for their defaults
and `--help` stays instant.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
SIZES = {"n_train": 200_000, "n_val": 20_000, "n_test": 20_000, "n_eval": 5_000}
LATTICE = "--n_x 8 --n_y 8"


def path(role: str, data_dir=DATA_DIR) -> str:
    """The standard file of a role ("train", "val", "val_125", "val_5", "test", "eval")."""
    return str(Path(data_dir) / STANDARD[role][0])


def val_paths(data_dir=DATA_DIR) -> list[str]:
    """The validation files, the main one (early stopping) first."""
    return [path(r, data_dir) for r in ("val", "val_125", "val_5")]


def command(role: str, data_dir=DATA_DIR, model: str = "ISING1", **sizes) -> list[str]:
    """generate_ising.py arguments that write the standard file of `role`."""
    name, flags, size = STANDARD[role]
    n = sizes.get(size) or SIZES[size]
    return [*LATTICE.split(), "--model", model, *flags.split(), "--n_samples", str(n),
            "--filename", path(role, data_dir)]


def missing_file_message(file) -> str:
    """One line: which file is missing and the command that makes it."""
    file = Path(file)
    roles = [r for r, (name, _, _) in STANDARD.items() if name == file.name]
    if roles:
        how = f"make data (or python generate_ising.py {' '.join(command(roles[0], file.parent))})"
    else:
        how = f"python generate_ising.py --filename {file} (flags: python generate_ising.py --help)"
    return f"data file {file} not found; create it with: {how}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Write the standard data files that are missing "
                                "(existing files are kept; delete one to remake it).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data_dir", default=DATA_DIR, help="folder for the files")
    p.add_argument("--model", default="ISING1", choices=("ISING1", "ISING2"), help="Hamiltonian")
    for size, n in SIZES.items():
        p.add_argument(f"--{size}", type=int, default=n, help="lattices per beta")
    args = p.parse_args(argv)
    sizes = {k: getattr(args, k) for k in SIZES}
    if min(sizes.values()) < 1:
        p.error("sizes must be positive")
    import generate_ising  # JAX: only when something is written

    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    for role in STANDARD:
        if Path(path(role, args.data_dir)).is_file():
            print(f"kept {path(role, args.data_dir)}")
            continue
        if generate_ising.main(command(role, args.data_dir, args.model, **sizes)):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
