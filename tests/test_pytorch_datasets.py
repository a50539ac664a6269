"""Tests for pytorch_datasets.py: snake orderings, items against the file, loaders, memory, errors.

Data files are made by the real generator (``generate_ising.generate``); bad files are
copies of real ones with one thing broken.
"""
import gc
import itertools
import pickle
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytorch_datasets as pdx  # noqa: E402
from pytorch_datasets import (  # noqa: E402
    EnergyDataset,
    EnergyDataset2D,
    IsingDataError,
    IsingDataModule,
    ProbabilityDataset,
    ProbabilityDataset2D,
    make_dataloader,
    read_metadata,
)
from ising import site_to_snake as grid_to_flat  # noqa: E402
from ising import snake_permutation  # noqa: E402
from ising import snake_to_site as flat_to_grid  # noqa: E402

ALL_CLASSES = [ProbabilityDataset, ProbabilityDataset2D, EnergyDataset, EnergyDataset2D]


# --------------------------------------------------------------------------------------
# Data through the real generator
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gen_file(ising_file):
    """``gen_file(name, **kwargs)``: a file from the real generator (conftest ``ising_file``),
    3 x 4 lattices and a short burn-in unless told otherwise (these tests check reading,
    not physics)."""

    def make(name="d.hdf5", **kwargs):
        opts = dict(n_x=3, n_y=4, betas=(0.25,), n_samples=40, burn_in=2, thin=1)
        opts.update(kwargs)
        return Path(ising_file(name, **opts))

    return make


@pytest.fixture(scope="module")
def small_file(gen_file):
    """3 x 4 ISING1 lattices at two betas (multi-beta: per-sample beta differs)."""
    return gen_file("small.hdf5", n_x=3, n_y=4, betas=(0.25, 0.5), n_samples=40)


def _rewrite(src: Path, dst: Path, **create_kwargs) -> Path:
    """Copy of ``src`` with every dataset re-created with ``create_kwargs`` (chunks, compression)."""
    with h5py.File(src, "r") as fi, h5py.File(dst, "w") as fo:
        for k, v in fi.attrs.items():
            fo.attrs[k] = v
        for key in fi:
            data = fi[key][()]
            kw = create_kwargs if np.ndim(data) >= 1 else {}
            if "chunks" in kw and kw["chunks"] is not True:
                kw = dict(kw, chunks=(min(kw["chunks"], len(data)),) + data.shape[1:])
            fo.create_dataset(key, data=data, **kw)
    return dst


# --------------------------------------------------------------------------------------
# Independent reference: snake flattening written as a plain loop
# --------------------------------------------------------------------------------------
def _snake_loop(grid: np.ndarray, order: str) -> np.ndarray:
    lines = grid if order == "rows" else grid.T
    out = []
    for i, line in enumerate(lines):
        out.extend(line if i % 2 == 0 else line[::-1])
    return np.array(out, dtype=np.float32)


def _expected_item(cls, grid, energy, beta, return_beta):
    rows, cols = _snake_loop(grid, "rows"), _snake_loop(grid, "cols")
    if cls is ProbabilityDataset:
        out = [rows[:-1, None], ((rows[1:] + 1) / 2)[:, None]]
    elif cls is ProbabilityDataset2D:
        y = np.stack([(rows[1:] + 1) / 2, (cols[1:] + 1) / 2])[:, :, None]
        out = [rows[:-1, None], cols[:-1, None], y]
    elif cls is EnergyDataset:
        out = [rows[:, None], np.array([energy], dtype=np.float32)]
    else:
        out = [rows[:, None], cols[:, None], np.array([energy], dtype=np.float32)]
    if return_beta:
        out.append(np.array([beta], dtype=np.float32))
    return out


# --------------------------------------------------------------------------------------
# Snake orderings
# --------------------------------------------------------------------------------------
def test_snake_3x4_hand_written():
    # grid values are the row-major flat indices:
    #  0  1  2  3
    #  4  5  6  7
    #  8  9 10 11
    assert snake_permutation(3, 4, "rows").tolist() == [0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11]
    assert snake_permutation(3, 4, "cols").tolist() == [0, 4, 8, 9, 5, 1, 2, 6, 10, 11, 7, 3]
    assert snake_permutation(3, 4).dtype == np.int64
    assert flat_to_grid(4, 3, 4, "rows") == (1, 3)
    assert flat_to_grid(7, 3, 4, "rows") == (1, 0)
    assert flat_to_grid(3, 3, 4, "cols") == (2, 1)
    assert flat_to_grid(5, 3, 4, "cols") == (0, 1)
    assert grid_to_flat(2, 3, 3, 4, "cols") == 9
    assert grid_to_flat(1, 1, 3, 4, "rows") == 6


def test_snake_4x4_hand_written():
    rows = [0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11, 15, 14, 13, 12]
    cols = [0, 4, 8, 12, 13, 9, 5, 1, 2, 6, 10, 14, 15, 11, 7, 3]
    assert snake_permutation(4, 4, "rows").tolist() == rows
    assert snake_permutation(4, 4, "cols").tolist() == cols
    grid = np.array([[1, -1, -1, 1], [1, 1, -1, -1], [-1, 1, 1, 1], [-1, -1, 1, -1]])
    seq = grid.reshape(-1)[snake_permutation(4, 4, "rows")]
    assert seq.tolist() == [1, -1, -1, 1, -1, -1, 1, 1, -1, 1, 1, 1, -1, 1, -1, -1]
    seq = grid.reshape(-1)[snake_permutation(4, 4, "cols")]
    assert seq.tolist() == [1, 1, -1, -1, -1, 1, 1, -1, -1, -1, 1, 1, -1, 1, -1, 1]


@pytest.mark.parametrize("n_x,n_y", [(1, 1), (1, 5), (5, 1), (2, 3), (3, 2), (5, 7), (8, 8)])
@pytest.mark.parametrize("order", ["rows", "cols"])
def test_snake_round_trips_and_adjacency(n_x, n_y, order):
    L = n_x * n_y
    perm = snake_permutation(n_x, n_y, order)
    assert sorted(perm.tolist()) == list(range(L))  # a permutation
    sites = [flat_to_grid(k, n_x, n_y, order) for k in range(L)]
    for k, (r, c) in enumerate(sites):
        assert 0 <= r < n_x and 0 <= c < n_y
        assert perm[k] == r * n_y + c
        assert grid_to_flat(r, c, n_x, n_y, order) == k
    # consecutive sequence positions are nearest neighbours on the lattice (a snake)
    for (r0, c0), (r1, c1) in zip(sites, sites[1:]):
        assert abs(r0 - r1) + abs(c0 - c1) == 1
    # vectorised forms agree with the scalar forms
    rr, cc = flat_to_grid(np.arange(L), n_x, n_y, order)
    assert list(zip(rr.tolist(), cc.tolist())) == sites
    assert grid_to_flat(rr, cc, n_x, n_y, order).tolist() == list(range(L))
    # the loop reference agrees
    grid = np.arange(L).reshape(n_x, n_y)
    assert np.array_equal(grid.reshape(-1)[perm], _snake_loop(grid, order))


def test_snake_bad_arguments():
    with pytest.raises(ValueError, match="order"):
        snake_permutation(3, 4, "diagonal")
    with pytest.raises(ValueError):
        flat_to_grid(12, 3, 4)
    with pytest.raises(ValueError):
        grid_to_flat(3, 0, 3, 4)


# --------------------------------------------------------------------------------------
# Items
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL_CLASSES)
@pytest.mark.parametrize("return_beta", [False, True])
def test_item_shapes_dtypes_values(small_file, cls, return_beta):
    ds = cls(small_file, return_beta=return_beta)
    L = 12
    n_seq = L - 1 if cls in (ProbabilityDataset, ProbabilityDataset2D) else L
    expected_shapes = {
        ProbabilityDataset: [(n_seq, 1), (n_seq, 1)],
        ProbabilityDataset2D: [(n_seq, 1), (n_seq, 1), (2, n_seq, 1)],
        EnergyDataset: [(n_seq, 1), (1,)],
        EnergyDataset2D: [(n_seq, 1), (n_seq, 1), (1,)],
    }[cls] + ([(1,)] if return_beta else [])
    item = ds[3]
    assert [tuple(t.shape) for t in item] == expected_shapes
    assert all(t.dtype == torch.float32 for t in item)
    batch = ds[[0, 5, 7]]
    assert [tuple(t.shape) for t in batch] == [(3,) + s for s in expected_shapes]
    n_x_parts = 2 if cls in (ProbabilityDataset2D, EnergyDataset2D) else 1
    for x in batch[:n_x_parts]:
        assert set(x.unique().tolist()) <= {-1.0, 1.0}
    if cls in (ProbabilityDataset, ProbabilityDataset2D):
        y = batch[n_x_parts]
        assert set(y.unique().tolist()) <= {0.0, 1.0}
    if return_beta:
        assert set(batch[-1].flatten().tolist()) <= {0.25, 0.5}
    assert len(ds) == 80


@pytest.mark.parametrize("cls", ALL_CLASSES)
@pytest.mark.parametrize("variant", ["slice", "loaded", "fancy", "in_memory", "chunked", "compressed"])
def test_items_equal_file_contents(small_file, tmp_path, cls, variant, monkeypatch):
    path = small_file
    kwargs = {}
    if variant in ("loaded", "fancy", "compressed"):  # every read takes the scattered-rows route
        monkeypatch.setattr(pdx, "SPAN_PER_ROW", 0)
    if variant in ("fancy", "compressed"):  # ... and h5py's fancy index, as for a file above the limit
        monkeypatch.setattr(pdx, "LOAD_MAX_BYTES", -1)
    if variant == "in_memory":
        kwargs["in_memory"] = True
    elif variant == "chunked":
        path = _rewrite(small_file, tmp_path / "chunked.hdf5", chunks=7)
    elif variant == "compressed":
        path = _rewrite(small_file, tmp_path / "gzip.hdf5", chunks=7, compression="gzip")
    ds = cls(path, return_beta=True, **kwargs)
    with h5py.File(small_file, "r") as f:
        grids, energies, betas = f["ising_grids"][()], f["true_energies"][()], f["beta"][()]
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(ds), size=25)  # with repeats, unsorted
    idx[:3] = [len(ds) - 1, 0, len(ds) - 1]
    batch = ds[idx]
    for pos, i in enumerate(idx):
        want = _expected_item(cls, grids[i], energies[i], betas[i], True)
        single = ds[int(i)]
        assert len(single) == len(want)
        for got_single, got_batch, w in zip(single, batch, want):
            np.testing.assert_array_equal(got_single.numpy(), w)
            np.testing.assert_array_equal(got_batch[pos].numpy(), w)
    # negative index like a sequence
    for a, b in zip(ds[-1], ds[len(ds) - 1]):
        assert torch.equal(a, b)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_reads_load_the_file_only_for_scattered_rows_of_small_files(small_file, monkeypatch):
    ds = EnergyDataset(small_file)
    ds[list(range(10, 20))]  # a short span: one slice
    assert ds._reader.arrays is None
    for batch_size in (7, 16, 80):  # a shuffled make_dataloader epoch reads slices only
        assert sum(len(b[0]) for b in make_dataloader(ds, batch_size, shuffle=True)) == len(ds)
    assert ds._reader.arrays is None
    ds[[0, 79]]  # scattered: the file (under LOAD_MAX_BYTES) is read into this process
    assert ds._reader.arrays is not None and len(ds._reader.arrays[0]) == len(ds)
    ds.close()
    monkeypatch.setattr(pdx, "LOAD_MAX_BYTES", -1)
    ds[[0, 79]]  # above the limit: read by fancy index, nothing kept
    assert ds._reader.arrays is None


def test_construction_is_lazy_and_picklable(small_file):
    ds = EnergyDataset2D(small_file, return_beta=True)
    assert ds._reader is None  # nothing open until the first read
    ds[0]
    assert ds._reader is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._reader is None
    for a, b, c in zip(clone[[1, 2]], ds[[1, 2]], ds[torch.tensor([1, 2])]):
        assert torch.equal(a, b) and torch.equal(b, c)
    with pytest.raises(TypeError):
        ds[[0.5]]


# --------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------
# Run in a fresh interpreter: this pytest process has JAX's threads running (the data
# files are made by the real generator), and forking a multithreaded process can deadlock.
_WORKER_CHECK = r"""
import sys
from collections import Counter
import torch
sys.path.insert(0, sys.argv[1])
import pytorch_datasets as pdx

def multiset(batches):
    return Counter(tuple(torch.cat([t.reshape(len(t), -1) for t in b], 1)[i].tolist())
                   for b in batches for i in range(len(b[0])))

path, context = sys.argv[2], sys.argv[3]
for route in sys.argv[4].split(","):
    pdx.LOAD_MAX_BYTES = -1 if route == "fancy" else 256 * 2**20  # forked workers inherit it
    for cls in (pdx.ProbabilityDataset2D, pdx.EnergyDataset):
        ds = cls(path, return_beta=True)
        ds[[0, len(ds) - 1]]  # the parent has a handle open (and the file loaded) before the workers start
        base = multiset(pdx.make_dataloader(ds, batch_size=16, num_workers=0))
        assert sum(base.values()) == len(ds)
        kw = dict(num_workers=2, persistent_workers=True, multiprocessing_context=context)
        if route == "block":
            loader = pdx.make_dataloader(ds, batch_size=16, shuffle=True, **kw)
        else:  # the plain way: scattered rows, default_collate
            loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, **kw)
        for epoch in range(2):  # two epochs through the same persistent workers
            batches = list(loader)
            assert all(type(t) is torch.Tensor for b in batches for t in b)
            assert multiset(batches) == base, (route, cls.__name__, epoch)
        print("ok", context, route, cls.__name__)
"""


@pytest.mark.parametrize("context,routes", [
    ("fork", "block,plain,fancy"), pytest.param("spawn", "block", marks=pytest.mark.slow),
])
def test_workers_give_the_same_samples(small_file, context, routes):
    run = subprocess.run([sys.executable, "-c", _WORKER_CHECK, str(ROOT), str(small_file), context, routes],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("ok ") == 2 * len(routes.split(",")), run.stdout


@pytest.mark.parametrize("n,batch,block_batches", [(77, 4, 2), (80, 4, 2), (16, 1, 1), (37, 16, 8), (913, 64, 8)])
def test_block_shuffle_sampler(n, batch, block_batches):
    def epochs(seed):
        sampler = pdx.BlockShuffleSampler(n, batch, seed, block_batches)
        return [list(sampler) for _ in range(3)]

    first = epochs(3)
    assert first == epochs(3)  # seeded: the same sequence of epochs
    assert first != epochs(4)
    assert len({tuple(order) for order in first}) == 3  # a new order every epoch
    block, short = batch * block_batches, n % batch
    full = n - n % block
    for order in first:
        assert sorted(order) == list(range(n)) and len(pdx.BlockShuffleSampler(n, batch)) == n
        for s in range(0, full, block):  # each run of `block` indices is one contiguous block
            run = sorted(order[s : s + block])
            assert run == list(range(run[0], run[0] + block)) and run[0] % block == 0
        assert sorted(order[full:]) == list(range(full, n))  # then the rows left over
        assert order[n - short :] == list(range(n - short, n))  # the last short batch in file order
        for s in range(0, n, batch):  # so every batch is read as one slice
            assert max(order[s : s + batch]) - min(order[s : s + batch]) < pdx.SPAN_PER_ROW * len(order[s : s + batch])


def test_ddp_splits_each_epoch_between_processes(small_file):
    # what Lightning does to make_dataloader under DDP: wrap its sampler (one wrapper per
    # process, same seed everywhere) and rebuild the loader around it
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
    from lightning.pytorch.utilities.data import _update_dataloader

    ds = EnergyDataset(small_file)
    seen = []
    for rank in (0, 1):
        loader = make_dataloader(ds, batch_size=16, shuffle=True, seed=5)
        sampler = DistributedSamplerWrapper(loader.sampler, num_replicas=2, rank=rank, shuffle=True)
        seen.append(list(sampler))
        batches = list(_update_dataloader(loader, sampler))
        assert [len(b[1]) for b in batches] == [16, 16, 8] and all(type(b) is tuple for b in batches)
    assert sorted(seen[0] + seen[1]) == list(range(len(ds)))  # every sample once per epoch


def _sample_bytes(batches):
    """Counter of samples, each as the bytes of all its tensors (exact, order-free)."""
    return Counter(b"".join(t[i].numpy().tobytes() for t in b) for b in batches for i in range(len(b[0])))


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_plain_dataloader_gives_the_same_items(small_file, cls):
    # the reference's way, DataLoader(ds, batch_size, shuffle) with default_collate, against make_dataloader
    ds = cls(small_file, return_beta=True)
    ours, plain = list(make_dataloader(ds, batch_size=16)), list(DataLoader(ds, batch_size=16))
    assert len(ours) == len(plain) == 5
    for a, b in zip(ours, plain):  # unshuffled: the same batches, tensor for tensor
        assert len(a) == len(b) == len(ds[0])
        for x, y in zip(a, b):
            assert x.dtype == y.dtype == torch.float32 and torch.equal(x, y)
    ours = list(make_dataloader(ds, batch_size=16, shuffle=True, seed=1))
    plain = list(DataLoader(ds, batch_size=16, shuffle=True))
    assert [[t.shape for t in b] for b in ours] == [[t.shape for t in b] for b in plain]
    everything = _sample_bytes([ds[list(range(len(ds)))]])
    assert _sample_bytes(ours) == _sample_bytes(plain) == everything and sum(everything.values()) == len(ds)


def test_shuffle_is_seeded(small_file):
    ds = EnergyDataset(small_file)
    first = lambda seed: torch.cat([b[1] for b in make_dataloader(ds, 16, shuffle=True, seed=seed)])
    a, b, c = first(3), first(3), first(4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert sorted(a.flatten().tolist()) == sorted(c.flatten().tolist())


# --------------------------------------------------------------------------------------
# Data module
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def split_files(gen_file):
    train = gen_file("train_data.hdf5", betas=(0.25,), n_samples=48, seed=1)
    vals = [
        gen_file("val_data_beta_dot25.hdf5", betas=(0.25,), n_samples=20, seed=2),
        gen_file("val_data_beta_dot125.hdf5", betas=(0.125,), n_samples=20, seed=3),
        gen_file("val_data_beta_dot5.hdf5", betas=(0.5,), n_samples=20, seed=4),
    ]
    test = gen_file("test_data.hdf5", betas=(0.25,), n_samples=24, seed=5)
    return train, vals, test


@pytest.mark.parametrize("family,two_d,cls", [
    ("energy", False, EnergyDataset), ("energy", True, EnergyDataset2D),
    ("probability", False, ProbabilityDataset), ("probability", True, ProbabilityDataset2D),
])
def test_data_module(split_files, family, two_d, cls):
    train, vals, test = split_files
    dm = IsingDataModule(family, two_d, train_path=train, val_paths=vals, test_path=test,
                         batch_size=16, return_beta=True, seed=7)
    assert dm.val_names == ["val", "val_beta_0.125", "val_beta_0.5"]
    assert isinstance(dm.train_dataloader().dataset, cls)
    train_batches = list(dm.train_dataloader())
    assert sum(len(b[0]) for b in train_batches) == 48
    assert len(train_batches[0]) == len(cls(train, return_beta=True)[0])
    vl = dm.val_dataloader()
    assert isinstance(vl, list) and len(vl) == 3
    assert [b[-1][0].item() for b in (next(iter(loader)) for loader in vl)] == [0.25, 0.125, 0.5]
    assert sum(len(b[0]) for b in dm.test_dataloader()) == 24
    # the same seed gives the same shuffled order; validation is not shuffled
    dm2 = IsingDataModule(family, two_d, train_path=train, val_paths=vals, test_path=test,
                          batch_size=16, return_beta=True, seed=7)
    for a, b in zip(train_batches, dm2.train_dataloader()):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    first_val = next(iter(vl[0]))
    for a, b in zip(first_val, cls(vals[0], return_beta=True)[list(range(16))]):
        assert torch.equal(a, b)


def test_read_metadata(split_files, small_file):
    train = split_files[0]
    meta = read_metadata(train)
    assert (meta["n_x"], meta["n_y"], meta["n_lattices"]) == (3, 4, 48)
    assert meta["beta"] == 0.25 and meta["betas"] == [0.25]
    assert meta["hamiltonian"] == "ISING1"
    multi = read_metadata(small_file)
    assert multi["beta"] is None and multi["betas"] == [0.25, 0.5]
    assert multi["n_lattices"] == 80


# --------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture(scope="module")
def big_file(gen_file):
    # 32 x 32 lattices, 1 KiB each: 120,000 of them make a 120 MiB file in a few seconds
    return gen_file("big.hdf5", n_x=32, n_y=32, betas=(0.25,), n_samples=120_000, burn_in=1, thin=1)


def _rss_growth(loader, max_batches=None):
    """(peak RSS growth in bytes, samples seen) over one pass of ``loader`` (or its first
    ``max_batches``), measured from before the first read (the dataset is already built)."""
    gc.collect()
    base = _rss_bytes()
    peak, seen = base, 0
    for batch in itertools.islice(loader, max_batches):
        seen += len(batch[0])
        peak = max(peak, _rss_bytes())
    return peak - base, seen


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")


@pytest.mark.slow
@needs_proc
@pytest.mark.parametrize("route", ["make_dataloader", "plain, file above LOAD_MAX_BYTES"])
def test_iterating_a_large_file_keeps_memory_bounded(big_file, route, monkeypatch):
    size = big_file.stat().st_size
    assert size > 100 * 2**20
    ds = EnergyDataset(big_file)
    assert size > 20 * len(pickle.dumps(ds))  # the file dwarfs the dataset's bookkeeping
    if route == "make_dataloader":  # shuffled blocks, one slice per batch
        loader = make_dataloader(ds, batch_size=512, shuffle=True, seed=0)
    else:  # scattered rows through h5py's fancy index
        monkeypatch.setattr(pdx, "LOAD_MAX_BYTES", size // 4)
        loader = DataLoader(ds, batch_size=512, shuffle=True)
    growth, seen = _rss_growth(loader)
    assert seen == len(ds)
    assert growth < size / 4, f"RSS grew by {growth / 2**20:.1f} MiB over a {size / 2**20:.0f} MiB file"


@pytest.mark.slow
@needs_proc
def test_rss_measurement_can_fail(big_file):
    # controls: the measurement above does see a file that becomes resident
    size = big_file.stat().st_size
    # 1) scattered rows of a file under LOAD_MAX_BYTES: the plain route reads it into memory
    assert size < pdx.LOAD_MAX_BYTES
    growth, _ = _rss_growth(DataLoader(EnergyDataset(big_file), batch_size=512, shuffle=True), max_batches=3)
    assert growth > 0.8 * size
    # 2) the grids held in memory
    gc.collect()
    base = _rss_bytes()
    ds = EnergyDataset(big_file, in_memory=True, validate="none")
    assert _rss_bytes() - base > 0.8 * size
    del ds


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------
def test_missing_file_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data"):
        EnergyDataset(tmp_path / "train_data.hdf5")
    with pytest.raises(FileNotFoundError, match=r"generate_ising\.py --filename .*mine\.hdf5"):
        ProbabilityDataset(tmp_path / "mine.hdf5")
    with pytest.raises(FileNotFoundError, match=r"make data .*--beta 0\.125 .*val_data_beta_dot125\.hdf5"):
        read_metadata(tmp_path / "val_data_beta_dot125.hdf5")
    dm = IsingDataModule(train_path=tmp_path / "train_data.hdf5")
    with pytest.raises(FileNotFoundError, match="make data"):
        dm.train_dataloader()


def test_not_an_hdf5_file(tmp_path):
    bad = tmp_path / "junk.hdf5"
    bad.write_text("not hdf5")
    with pytest.raises(IsingDataError, match="junk.hdf5"):
        EnergyDataset(bad)


def test_missing_key_lists_present_keys(small_file):
    with pytest.raises(IsingDataError, match=r"'grids'.*ising_grids.*true_energies"):
        ProbabilityDataset(small_file, data_key="grids")
    with pytest.raises(IsingDataError, match=r"'energies'.*true_energies"):
        EnergyDataset2D(small_file, energy_data_key="energies")


def _broken(src, dst, edit):
    """A copy of ``src`` with ``edit(h5py file)`` applied."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def test_wrong_rank_refused(small_file, tmp_path):
    def flatten(f):
        g = f["ising_grids"][()]
        del f["ising_grids"]
        f["ising_grids"] = g.reshape(len(g), -1)

    path = _broken(small_file, tmp_path / "rank.hdf5", flatten)
    with pytest.raises(IsingDataError, match=r"rank\.hdf5:ising_grids.*\(80, 12\)"):
        EnergyDataset(path)


@pytest.mark.parametrize("value", [0, 2, -3])
def test_non_pm1_spins_refused(small_file, tmp_path, value):
    def poke(row):
        def edit(f):
            f["ising_grids"][row, 1, 2] = value
        return edit

    # in the checked sample (row 0): refused at construction
    path = _broken(small_file, tmp_path / "spin0.hdf5", poke(0))
    with pytest.raises(IsingDataError, match=r"spin0\.hdf5:ising_grids lattice 0 .*\(1, 2\).*±1"):
        ProbabilityDataset(path)
    # outside the sample: "full" (and in_memory) refuse it at construction; "none" when read
    path = _broken(small_file, tmp_path / "spin40.hdf5", poke(40))
    with pytest.raises(IsingDataError, match=r"lattice 40 "):
        EnergyDataset(path, validate="full")
    with pytest.raises(IsingDataError, match=r"lattice 40 "):
        EnergyDataset(path, in_memory=True)
    ds = EnergyDataset(path, validate="none")
    ds[[0, 1, 2]]  # clean rows read fine
    with pytest.raises(IsingDataError, match=r"spin40\.hdf5:ising_grids lattice 40 "):
        ds[[3, 40, 5]]


def test_spin_sample_check_and_read_check(gen_file, tmp_path):
    # "sample" checks 8 evenly spaced blocks of 256 rows; with 3000 rows, row 300 is not
    # in them (blocks start at 0, 392, ...): construction passes, reading row 300 refuses
    src = gen_file("medium.hdf5", n_samples=3000)

    def edit(f):
        f["ising_grids"][300, 0, 0] = 0

    path = _broken(src, tmp_path / "late.hdf5", edit)
    ds = EnergyDataset2D(path)
    ds[list(range(0, 300))]
    with pytest.raises(IsingDataError, match=r"late\.hdf5:ising_grids lattice 300 "):
        list(make_dataloader(ds, batch_size=512))
    with pytest.raises(IsingDataError, match=r"lattice 300 "):
        EnergyDataset2D(path, validate="full")


def test_nan_energy_refused(small_file, tmp_path):
    def edit(f):
        f["true_energies"][17] = np.nan

    path = _broken(small_file, tmp_path / "nan.hdf5", edit)
    with pytest.raises(IsingDataError, match=r"nan\.hdf5:true_energies.*NaN"):
        EnergyDataset2D(path)
    ProbabilityDataset(path)  # the probability datasets do not read energies


def test_length_mismatch_refused(small_file, tmp_path):
    def shorten(f):
        e = f["true_energies"][()]
        del f["true_energies"]
        f["true_energies"] = e[:-3]

    path = _broken(small_file, tmp_path / "short.hdf5", shorten)
    with pytest.raises(IsingDataError, match=r"short\.hdf5:true_energies holds 77 .* 80 lattices"):
        EnergyDataset(path)

    def short_beta(f):
        b = f["beta"][()]
        del f["beta"]
        f["beta"] = b[:10]

    path = _broken(small_file, tmp_path / "beta.hdf5", short_beta)
    with pytest.raises(IsingDataError, match=r"beta\.hdf5:beta holds 10"):
        ProbabilityDataset(path, return_beta=True)


# --------------------------------------------------------------------------------------
# Potts files (attribute q, states 0..q-1): the same items with states for spins
# --------------------------------------------------------------------------------------
def _expected_potts_item(cls, grid, energy, beta):
    """As `_expected_item`, but a Potts target is the state itself (its class index)."""
    rows, cols = _snake_loop(grid, "rows"), _snake_loop(grid, "cols")
    out = {ProbabilityDataset: [rows[:-1, None], rows[1:, None]],
           ProbabilityDataset2D: [rows[:-1, None], cols[:-1, None], np.stack([rows[1:], cols[1:]])[:, :, None]],
           EnergyDataset: [rows[:, None], np.array([energy], dtype=np.float32)],
           EnergyDataset2D: [rows[:, None], cols[:, None], np.array([energy], dtype=np.float32)]}[cls]
    return out + [np.array([beta], dtype=np.float32)]


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_potts_items_carry_the_states(potts_file, cls):
    path = potts_file("items.hdf5", q=3, n_samples=30, n_x=3, n_y=4)
    ds = cls(path, return_beta=True)
    assert ds.q == 3
    with h5py.File(path, "r") as f:
        grids, energies, betas = f["ising_grids"][()], f["true_energies"][()], f["beta"][()]
    batch = ds[[4, 0, 29, 4]]
    for pos, i in enumerate([4, 0, 29, 4]):
        for got, want in zip(batch, _expected_potts_item(cls, grids[i], energies[i], betas[i])):
            assert got.dtype == torch.float32
            np.testing.assert_array_equal(got[pos].numpy(), want)
    assert set(batch[0].unique().tolist()) <= {0.0, 1.0, 2.0}


def test_potts_metadata_and_ising_files_unchanged(potts_file, small_file):
    meta = read_metadata(potts_file("meta.hdf5", q=4, n_samples=8))
    assert meta["q"] == 4 and isinstance(meta["q"], int) and meta["hamiltonian"] == "POTTS4"
    assert read_metadata(small_file)["q"] == 2 and ProbabilityDataset(small_file).q == 2  # Ising: q = 2


def test_a_file_without_q_is_ising(small_file, tmp_path):
    """Files written before every file carried q: no attribute q is Ising (q = 2)."""
    path = _broken(small_file, tmp_path / "no_q.hdf5", lambda f: f.attrs.pop("q", None))
    assert read_metadata(path)["q"] == 2 and ProbabilityDataset(path).q == 2


@pytest.mark.parametrize("value", [3, -1])
def test_potts_states_outside_0_to_q_minus_1_refused(potts_file, tmp_path, value):
    path = _broken(potts_file("good.hdf5", q=3, n_samples=40), tmp_path / "bad_state.hdf5",
                   lambda f: f["ising_grids"].__setitem__((0, 1, 2), value))
    with pytest.raises(IsingDataError, match=rf"bad_state\.hdf5:ising_grids lattice 0 holds {value} at site \(1, 2\); "
                                             r"states must be 0 \.\.\. 2 \(a q = 3 Potts file\)$"):
        EnergyDataset(path)
    ising_like = _broken(potts_file("good.hdf5", q=3, n_samples=40), tmp_path / "pm1.hdf5",
                         lambda f: f["ising_grids"].__setitem__(slice(None), 2 * (f["ising_grids"][()] % 2) - 1))
    with pytest.raises(IsingDataError, match="states must be 0"):
        ProbabilityDataset(ising_like)  # ±1 spins in a file that says it is Potts


@pytest.mark.parametrize("q", [1, "three", [3, 4]])
def test_bad_q_attribute_refused(potts_file, tmp_path, q):
    path = _broken(potts_file("good.hdf5", q=3, n_samples=40), tmp_path / "bad_q.hdf5",
                   lambda f: f.attrs.__setitem__("q", q))
    for read in (read_metadata, ProbabilityDataset):
        with pytest.raises(IsingDataError, match=r"bad_q\.hdf5: attribute q = .* is not a Potts model's number"):
            read(path)


def test_data_module_refuses_a_mix_of_models(potts_file, split_files):
    train, vals, test = split_files  # Ising, 3 x 4
    p3 = [potts_file(f"mix{k}.hdf5", q=3, n_samples=16, n_x=3, n_y=4, seed=k) for k in range(3)]
    p4 = potts_file("mix_q4.hdf5", q=4, n_samples=16, n_x=3, n_y=4)
    assert IsingDataModule("energy", train_path=p3[0], val_paths=p3[1:], test_path=p3[0]).check_files()["q"] == 3
    with pytest.raises(IsingDataError, match=r"mix_q4\.hdf5 holds q = 4 Potts lattices but the training file .*"
                                             r"q = 3 Potts lattices; use files of one model"):
        IsingDataModule("energy", train_path=p3[0], val_paths=[p3[1], p4], test_path=p3[2]).check_files()
    with pytest.raises(IsingDataError, match=r"holds Ising lattices but the training file .* q = 3 Potts lattices"):
        IsingDataModule("probability", train_path=p3[0], val_paths=p3[1:], test_path=test).check_files()
    with pytest.raises(IsingDataError, match=r"holds q = 3 Potts lattices but the training file .* Ising lattices"):
        IsingDataModule("probability", True, train_path=train, val_paths=[vals[0], p3[1]], test_path=test).check_files()
