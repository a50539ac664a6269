"""Shared fixtures: tiny Ising data files made through the real generator."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Files whose tests are spread over the worker processes one by one (`make test`: pytest-xdist
# --dist loadgroup): their tests are long and independent, so the file is not the suite's tail. Every
# other file keeps its tests in one process (one group), so its module fixtures are made once.
SPREAD = {"test_weights.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name not in SPREAD:
            item.add_marker(pytest.mark.xdist_group(item.path.name))


@pytest.fixture(scope="session")
def ising_file(tmp_path_factory):
    """Factory: make(name, betas=(0.25,), n_samples=64, n_x=4, n_y=4, hamiltonian="ISING1", seed=0, **kw) -> Path.

    Writes `<tmpdir>/<name>` with `generate_ising.generate` (n_samples per beta; extra keyword
    arguments such as n_chains, burn_in, thin, algorithm are passed through) and caches the
    file for the whole session: the same arguments return the same path without resampling.
    Treat the files as read-only.
    """
    import generate_ising

    root = tmp_path_factory.mktemp("ising_data")
    cache = {}

    def make(name="data.hdf5", betas=(0.25,), n_samples=64, n_x=4, n_y=4, hamiltonian="ISING1", seed=0, **kw):
        betas = tuple(float(b) for b in (betas if hasattr(betas, "__iter__") else (betas,)))
        key = (name, betas, int(n_samples), int(n_x), int(n_y), hamiltonian, int(seed), tuple(sorted(kw.items())))
        if key not in cache:
            sub = root / f"f{len(cache)}"
            sub.mkdir()
            cache[key] = generate_ising.generate(sub / name, hamiltonian=hamiltonian, n_x=n_x, n_y=n_y, betas=betas,
                                                 n_samples=n_samples, random_seed=seed, progress=False, **kw)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def potts_file(ising_file):
    """Factory: make(name, q=3, n_samples=64, n_x=4, n_y=4, beta=0.25, seed=0, states=None) -> Path.

    A q-state Potts file through the real generator (`ising_file` with hamiltonian potts.Potts(q),
    50 burn-in sweeps: these files test reading and training, not physics). `states` (an int array
    (N, n_x, n_y)) replaces the lattices of a copy, with true_energies recomputed by potts.energy,
    e.g. to plant a bad state. Cached like `ising_file`; treat as read-only.
    """
    import shutil

    import h5py
    import numpy as np

    import potts

    def make(name="potts.hdf5", q=3, n_samples=64, n_x=4, n_y=4, beta=0.25, seed=0, states=None):
        path = ising_file(name, betas=(beta,), n_samples=n_samples, n_x=n_x, n_y=n_y, hamiltonian=potts.Potts(q),
                          seed=seed, burn_in=50)
        if states is None:
            return path
        grids = np.asarray(states).astype(np.int8)
        planted = path.parent / f"planted_{abs(hash(grids.tobytes()))}_{name}"
        shutil.copy(path, planted)
        with h5py.File(planted, "r+") as f:
            for key in ("ising_grids", "true_energies", "beta"):
                del f[key]
            f["ising_grids"] = grids
            f["true_energies"] = potts.energy(grids).astype(np.float32)
            f["beta"] = np.full(len(grids), beta, np.float32)
        return planted

    return make


def run_cli(main, argv, capsys):
    """(exit status, stderr) of `checks.main_guard(main, argv)` (argv items made str), argparse's exits
    included; what earlier steps of the test wrote to stderr is dropped first.

    Test modules import it: `from conftest import run_cli`."""
    from checks import main_guard

    capsys.readouterr()
    try:
        code = main_guard(main, [str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def user_error(code, err, *names, usage=False) -> str:
    """The error line of a user's mistake, after checking what matters and not the wording: exit
    status 2, no traceback, exactly one line on stderr (besides argparse's usage text when `usage`),
    and that line names each of `names` (the flag, file or folder at fault; case ignored).

    Test modules import it: `from conftest import user_error`."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    if usage:
        lines = [line for line in lines if not line.startswith(("usage:", " "))]
    assert len(lines) == 1, err
    for name in names:
        assert str(name).lower() in lines[0].lower(), f"{name!r} not named in: {lines[0]}"
    return lines[0]


def assert_joint_never_reads_its_own_spin(model, grids, moved: float) -> None:
    """Leak check of a joint conditional model on grids (B, n_x, n_y) ±1: flipping the spin at rows-snake
    position k leaves logit k unchanged (to 1e-6) and moves some logit by more than `moved` (the check can fail)."""
    import torch

    from ising import snake_permutation
    from sequence_blocks import grids_to_sequences

    n_x, n_y = grids.shape[1:]
    seqs = lambda g: {o: grids_to_sequences(g, o) for o in ("rows", "cols")}  # noqa: E731
    z, _ = model.joint_logits(seqs(grids), (n_x, n_y))
    for k in range(n_x * n_y):                                   # k: rows snake position
        x, y = divmod(int(snake_permutation(n_x, n_y, "rows")[k]), n_y)
        flipped = grids.clone()
        flipped[:, x, y] = -flipped[:, x, y]
        z2, _ = model.joint_logits(seqs(flipped), (n_x, n_y))
        torch.testing.assert_close(z2[:, k], z[:, k], rtol=0, atol=1e-6)
        assert (z2 - z).abs().max() > moved
