"""Reading Ising and Potts HDF5 files into tensors: four dataset classes, a loader and a data module.

File contract (written by ``generate_ising.py``): ``ising_grids`` int8 (N, n_x, n_y) ±1,
``true_energies`` float32 (N,), ``beta`` float32 (N,) (or one value), file attributes
(``hamiltonian``, ``n_x``, ``n_y``, ``betas``, ...; ``data_files.read_metadata`` reads them).
A Potts file (``potts.py``) has the same layout and the attribute ``q``: its ``ising_grids``
hold the states 0..q-1 (``ds.q``: q; 2 for an Ising file, spins ±1). Samples are interleaved over
betas and chains, so any contiguous block of rows is a fair sample of the whole file.

Items, all float32; "spins" is the snake sequence (L = n_x * n_y, `ising.snake_permutation`)
through the rows, or the columns for ``X_cols``; ``return_beta=True`` appends beta (1,):

    ProbabilityDataset     (X, y)                 X = spins[:-1] (L-1, 1) ±1, y = spins[1:] (L-1, 1) in {0, 1}
    ProbabilityDataset2D   (X_rows, X_cols, y)    y (2, L-1, 1): the rows and columns targets stacked
    EnergyDataset          (X, energy)            X = spins (L, 1), the whole lattice; energy (1,)
    EnergyDataset2D        (X_rows, X_cols, energy)

y is the class index of each target spin: (s + 1) / 2 for Ising spins, the state s itself for
Potts, whose X are the states 0..q-1 too (float32 like everything else: one item layout and
one code path for both; a model takes y.long() for its cross-entropy). So the full sequence is
cat(X[:, :1], 2y - 1) for Ising and cat(X[:, :1], y) for Potts.

Two ways to feed them, giving the same items (benchmarks/bench_datasets.py measures both):

    make_dataloader(ds, batch_size=512, shuffle=True, seed=0)   # fast: ~1e6 samples/s, one core
    DataLoader(ds, batch_size=512, shuffle=True)                # plain: ~1e5 samples/s at most

- Reads. A batch whose rows lie in a short span (at most ``SPAN_PER_ROW`` rows per row asked
  for) is read with one h5py slice: 4096 contiguous 8 x 8 rows cost ~0.1 ms, while h5py
  reads scattered rows at ~20 us each (measured). So for scattered batches (a plain shuffled
  DataLoader, DDP's sampler) each process reads the file into memory once, on the first such
  batch, when its grids are at most ``LOAD_MAX_BYTES``; larger files are read by fancy index.
- Order. ``make_dataloader(shuffle=True)`` visits contiguous blocks of ``BLOCK_BATCHES``
  batches in random order and shuffles within each block (``BlockShuffleSampler``): every
  batch is one slice, and batch compositions change from epoch to epoch.
- Collation. ``__getitems__`` builds the whole batch at once; ``make_dataloader`` passes it
  through, while default_collate splits it into samples and stacks them again (~9 us a
  sample, measured): that bounds the plain route.
- Lazy and worker-safe: construction reads shapes, attributes, a sample of the spins and
  the energies and betas (to check them; 4 bytes a sample, in blocks of at most 16 MiB, not
  kept). An uncompressed dataset that stores fewer bytes than its rows declare (a tiny file
  declaring 10^9 lattices, a file cut short) is refused at once; a file whose ``betas``
  attribute contradicts its ``beta`` dataset too (``check_betas``). Each process opens its
  own h5py handle on its first read (handles are never pickled; a forked process opens a new
  one), so DataLoader workers work with fork and spawn.
- Bounded memory: a slice read holds one span. Only scattered reads of files up to
  ``LOAD_MAX_BYTES``, and ``in_memory=True`` (everything read at construction), make a file
  resident.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

import data_files
from data_files import IsingDataError, dataset, file_q, file_system, open_h5, read_metadata
from ising import snake_permutation

SPAN_PER_ROW = 16  # a batch spanning at most this many rows per row it asks for is read as one slice
LOAD_MAX_BYTES = 256 * 2**20  # scattered reads load grids up to this size into the process
BLOCK_BATCHES = 8  # make_dataloader(shuffle=True) shuffles within blocks of this many batches
_CHECK_ROWS = 1 << 16  # rows per block when every spin is checked
_CHECK_BYTES = 1 << 24  # at most this much of a file is held at once by the checks (16 MiB)


def _stored_problem(dset: h5py.Dataset) -> str | None:
    """Why `dset` cannot hold the rows it declares, or None: an uncompressed dataset stores every
    byte of its rows, so one with less on disk (a tiny file declaring 10^9 lattices, a file cut
    short) would be read as its fill value, gigabytes of it, not as samples."""
    if dset.is_virtual or dset.id.get_create_plist().get_nfilters():
        return None  # virtual or compressed: its size on disk says nothing
    stored = dset.id.get_storage_size()
    if stored < dset.nbytes:
        return (f"declares {dset.shape[0]} rows ({dset.nbytes / 1e9:.3g} GB) but stores {stored / 1e9:.3g} GB of "
                "them: the file was cut short or never filled; regenerate it")
    return None


def _blocks(n: int, row_bytes: int, rows: int = _CHECK_ROWS):
    """(start, stop) of consecutive blocks of at most `rows` rows and about _CHECK_BYTES bytes."""
    step = max(1, min(rows, _CHECK_BYTES // max(row_bytes, 1)))
    return ((s, min(s + step, n)) for s in range(0, n, step))


def check_betas(path) -> None:
    """A file's `betas` attribute (where ``read_metadata`` reads the beta a run trains and is
    scored at) must name the betas its ``beta`` dataset holds, and those must be finite: a
    one-line IsingDataError otherwise. Read in blocks: 4 bytes a sample, never all at once."""
    with open_h5(path) as f:
        dset = f.get("beta")
        if not isinstance(dset, h5py.Dataset) or dset.dtype.kind not in "biuf" or not dset.size:
            return
        if dset.ndim and _stored_problem(dset):
            raise IsingDataError(f"{path}:beta {_stored_problem(dset)}")
        found = set()
        for lo, hi in _blocks(dset.shape[0], dset.dtype.itemsize * int(np.prod(dset.shape[1:], dtype=np.int64))):
            values = np.asarray(dset[lo:hi], dtype=np.float64).reshape(-1)
            bad = ~np.isfinite(values)
            if bad.any():
                raise IsingDataError(f"{path}:beta holds {values[bad][0]} (row {lo + int(np.argmax(bad))}); betas "
                                     "must be finite: regenerate the file")
            found.update(np.unique(values.astype(np.float32)).tolist())
        if "betas" not in f.attrs:
            return
        declared = {float(np.float32(b)) for b in np.atleast_1d(np.asarray(f.attrs["betas"], dtype=np.float64))}
    if declared != found:
        show = lambda v: ", ".join(f"{b:g}" for b in sorted(v)[:6]) + (" ..." if len(v) > 6 else "")  # noqa: E731
        raise IsingDataError(f"{path}: its 'betas' attribute says {show(declared)} but its beta dataset holds "
                             f"{show(found)}; the file contradicts itself: regenerate it")


# ----------------------------------------------------------------- reading rows
class _Reader:
    """One process's view of a file: its own h5py handle, and the columns themselves once
    a scattered batch has loaded them (files up to ``LOAD_MAX_BYTES``). Never pickled."""

    def __init__(self, path: Path, keys: list):
        self.pid = os.getpid()
        # no chunk cache: slices are read straight into the batch, as fast as through the
        # cache and ~8 MiB less resident memory (measured); a compressed file pays for it
        # with a decompression per read
        self.file = open_h5(path, rdcc_nbytes=0)
        self.dsets = [self.file[k] for k in keys]
        self.arrays = None

    def read(self, idx: np.ndarray) -> list:
        """The rows ``idx`` (int64 (B,), any order, repeats allowed) of every column."""
        lo, hi = (int(idx.min()), int(idx.max()) + 1) if len(idx) else (0, 0)
        if self.arrays is None and hi - lo <= SPAN_PER_ROW * len(idx):
            return [d[lo:hi][idx - lo] for d in self.dsets]  # one slice of the span
        if self.arrays is None and self.dsets[0].nbytes <= LOAD_MAX_BYTES:
            self.arrays = [d[()] for d in self.dsets]
        if self.arrays is not None:
            return [a[idx] for a in self.arrays]
        uniq, inverse = np.unique(idx, return_inverse=True)  # h5py wants increasing indices
        return [d[uniq][inverse] for d in self.dsets]

    def close(self) -> None:
        self.arrays = self.dsets = None
        self.file.close()


class _Batch(Sequence):
    """What ``__getitems__`` returns: the stacked item tensors (``.tensors``, what
    ``collate_batches`` passes through); indexing gives one sample's tuple, which is what
    default_collate takes apart and stacks again."""

    def __init__(self, tensors: tuple):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, i) -> tuple:
        return tuple(t[i] for t in self.tensors)


def collate_batches(batch):
    """collate_fn for these datasets: the batch already stacked, else default_collate."""
    return batch.tensors if isinstance(batch, _Batch) else default_collate(batch)


# --------------------------------------------------------------------- datasets
class _IsingDataset(Dataset):
    """Shared machinery: validation, per-process reader, batched reads, snake gathers.

    ``validate``: "sample" (default) checks the spins of 8 evenly spaced blocks of 256 rows
    at construction; "full" checks every row; "none" skips it. Every batch read is checked
    too, so a bad spin is refused when it is reached. Energies and betas are checked whole.
    ``in_memory``: read every column at construction (and check every spin).
    """

    _two_d = False
    _probability = True

    def __init__(self, filepath, grids_key="ising_grids", energy_key=None, return_beta=False,
                 in_memory=False, validate="sample"):
        if validate not in ("sample", "full", "none"):
            raise ValueError(f"validate must be 'sample', 'full' or 'none', got {validate!r}")
        self.filepath = Path(filepath).resolve() if Path(filepath).exists() else Path(filepath)
        self.grids_key, self.energy_key = grids_key, energy_key
        self.return_beta = bool(return_beta)
        self._beta_const = None  # beta of a file that stores one value
        self._reader = None
        with open_h5(self.filepath) as f:
            self.q = file_q(f)  # 2: Ising spins ±1; q > 2: Potts states 0..q-1
            self._check_grids(dataset(f, grids_key), "full" if in_memory else validate)
            self.keys = [grids_key]
            if energy_key is not None:
                self._check_values(dataset(f, energy_key), "energies")
                self.keys.append(energy_key)
            if self.return_beta:
                self._setup_beta(f)
            if in_memory:
                self._check_memory([f[k] for k in self.keys])
            self._arrays = [f[k][()] for k in self.keys] if in_memory else None
        # the snake orders the item needs, as one gather over the flattened grids
        orders = ("rows", "cols") if self._two_d else ("rows",)
        self._perm = np.concatenate([snake_permutation(self.n_x, self.n_y, o) for o in orders])

    # -- validation ----------------------------------------------------------------------
    def _check_grids(self, grids: h5py.Dataset, validate: str) -> None:
        where = f"{self.filepath}:{self.grids_key}"
        if grids.ndim != 3:
            raise IsingDataError(f"{where} has shape {grids.shape}; expected (N, n_x, n_y) lattices")
        if grids.dtype.kind not in "biuf":
            raise IsingDataError(f"{where} has dtype {grids.dtype}; expected {self._values} numbers")
        self.n, self.n_x, self.n_y = (int(s) for s in grids.shape)
        if self.n == 0:
            raise IsingDataError(f"{where} holds no lattices")
        problem = _stored_problem(grids)
        if problem:
            raise IsingDataError(f"{where} {problem}")
        if validate == "none":
            return
        row_bytes = grids.dtype.itemsize * self.n_x * self.n_y
        if validate == "full":
            for s, e in _blocks(self.n, row_bytes):
                self._check_spins(grids[s:e], range(s, self.n))
            return
        rows = max(1, min(256, _CHECK_BYTES // (8 * row_bytes)))  # 8 blocks of a sample, ~16 MiB in all
        for s in np.unique(np.linspace(0, max(self.n - rows, 0), 8).astype(np.int64)).tolist():
            self._check_spins(grids[s : s + rows], range(s, self.n))

    def _check_memory(self, dsets: list) -> None:
        """in_memory=True reads every column at once: refused in one line where that is more than
        the memory this machine has left (read lazily instead, the default)."""
        from runs import available_memory

        need, free = sum(d.nbytes for d in dsets), available_memory()
        if free is not None and need > free:
            raise IsingDataError(f"{self.filepath} is {need / 1e9:.3g} GB in memory but {free / 1e9:.3g} GB is "
                                 "available; drop --in_memory (the files are then read lazily, a batch at a time)")

    @property
    def _values(self) -> str:
        return "±1" if self.q == 2 else f"integer states 0 ... {self.q - 1}"

    def _check_spins(self, grids: np.ndarray, rows) -> None:
        """grids (B, n_x, n_y) of file rows ``rows``: refuse anything but ±1 (Ising) or 0..q-1 (Potts)."""
        if self.q == 2:
            bad = (grids != 1) & (grids != -1)
        else:
            bad = (grids < 0) | (grids >= self.q)
            if grids.dtype.kind == "f":
                bad |= grids != np.round(grids)  # also NaN
        if np.any(bad):
            i, r, c = np.argwhere(bad)[0].tolist()
            kind = ("spins must be ±1" if self.q == 2
                    else f"states must be 0 ... {self.q - 1} (a q = {self.q} Potts file)")
            raise IsingDataError(f"{self.filepath}:{self.grids_key} lattice {rows[i]} holds {grids[i, r, c].item()!r} "
                                 f"at site ({r}, {c}); {kind}")

    def _check_values(self, dset: h5py.Dataset, what: str) -> None:
        where = f"{self.filepath}:{dset.name.lstrip('/')}"
        if not (dset.ndim == 1 or (dset.ndim == 2 and dset.shape[1] == 1)):
            raise IsingDataError(f"{where} has shape {dset.shape}; expected ({self.n},) {what}")
        if dset.shape[0] != self.n:
            raise IsingDataError(f"{where} holds {dset.shape[0]} {what} but {self.grids_key} holds "
                                 f"{self.n} lattices; they must have the same length")
        if dset.dtype.kind not in "biuf":
            raise IsingDataError(f"{where} has dtype {dset.dtype}; expected numbers")
        problem = _stored_problem(dset)
        if problem:
            raise IsingDataError(f"{where} {problem}")
        for lo, hi in _blocks(dset.shape[0], dset.dtype.itemsize * (dset.shape[1] if dset.ndim == 2 else 1)):
            finite = np.isfinite(dset[lo:hi].reshape(-1))  # 4 bytes a sample, a block at a time
            if not np.all(finite):
                raise IsingDataError(f"{where} holds NaN or infinite {what} (first in row {lo + np.argmin(finite)}); "
                                     "regenerate the file")

    def _setup_beta(self, f: h5py.File) -> None:
        dset = f.get("beta")
        if isinstance(dset, h5py.Dataset) and dset.size > 1:  # per-sample betas, read with the grids
            self._check_values(dset, "betas")
            self.keys.append("beta")
            return
        # a single-beta file: one stored value, or the 'betas' attribute
        betas = np.ravel(dset[()]) if isinstance(dset, h5py.Dataset) else np.atleast_1d(f.attrs.get("betas", []))
        if len(betas) != 1:
            raise IsingDataError(f"{self.filepath} has no 'beta' dataset (datasets present: {sorted(f.keys())}) "
                                 f"and its 'betas' attribute is {list(betas)}; return_beta needs per-sample betas")
        self._beta_const = np.float32(betas[0])
        if not np.isfinite(self._beta_const):
            raise IsingDataError(f"{self.filepath}: beta is {self._beta_const}; regenerate the file")

    # -- per-process reader --------------------------------------------------------------
    def _columns(self, idx: np.ndarray) -> list:
        if self._arrays is not None:
            return [a[idx] for a in self._arrays]
        if self._reader is None or self._reader.pid != os.getpid():
            # first read in this process, or we were forked: open our own handle (the
            # parent's is left alone; h5py handles are not safe to share across processes)
            self._reader = _Reader(self.filepath, self.keys)
        return self._reader.read(idx)

    def close(self) -> None:
        """Close this process's file handle (it is reopened on the next read)."""
        if self._reader is not None and self._reader.pid == os.getpid():
            self._reader.close()
        self._reader = None

    def __getstate__(self):
        return {**self.__dict__, "_reader": None}  # h5py handles do not cross processes

    # -- items ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n

    def _indices(self, indices) -> np.ndarray:
        idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices).reshape(-1)
        if idx.dtype.kind not in "iu" and idx.size:
            raise TypeError(f"indices must be integers, got {idx.dtype}")
        idx = idx.astype(np.int64)
        idx = np.where(idx < 0, idx + self.n, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError(f"index out of range for a dataset of {self.n} lattices")
        return idx

    def read_batch(self, indices) -> tuple:
        """The item tuple of the rows ``indices``, each tensor with a leading batch dim."""
        idx = self._indices(indices)
        grids, *rest = self._columns(idx)
        self._check_spins(grids, idx)  # construction checked a sample: refuse bad spins when reached
        # numpy, not torch: torch splits ops over ~32k elements between threads, which cost
        # ~17 ms a batch instead of ~10 us on a busy 2-core machine (measured)
        seq = np.take(grids.reshape(len(idx), -1), self._perm, axis=1).astype(np.float32)
        parts = np.split(seq, 2, axis=1) if self._two_d else [seq]  # rows [, columns] (B, L)
        if self._probability:
            out = [p[:, :-1, None] for p in parts]
            # the class index of the target: ±1 -> {0, 1}; a Potts state is its own index
            targets = [(p[:, 1:, None] + 1) / 2 if self.q == 2 else p[:, 1:, None] for p in parts]
            out.append(np.stack(targets, axis=1) if self._two_d else targets[0])
        else:
            out = [p[:, :, None] for p in parts] + [rest.pop(0).reshape(-1, 1)]  # energy
        if self.return_beta:
            beta = rest[0] if self._beta_const is None else np.full(len(idx), self._beta_const)
            out.append(beta.reshape(-1, 1))
        return tuple(torch.from_numpy(np.ascontiguousarray(o, dtype=np.float32)) for o in out)

    def __getitems__(self, indices) -> _Batch:
        # torch's DataLoader calls this with the indices of a whole batch
        return _Batch(self.read_batch(indices))

    def __getitem__(self, index):
        """One item for an int index; the batched item tuple for a slice or a sequence of ints."""
        if isinstance(index, (int, np.integer)) or (isinstance(index, torch.Tensor) and index.ndim == 0):
            return tuple(t[0] for t in self.read_batch([int(index)]))
        return self.read_batch(np.arange(self.n)[index] if isinstance(index, slice) else index)


class ProbabilityDataset(_IsingDataset):
    """Items (X, y[, beta]): X = spins[:-1] (L-1, 1) ±1, y = spins[1:] (L-1, 1) in {0, 1}, snake through rows
    (Potts: X = states[:-1], y = states[1:], both 0..q-1)."""

    _two_d, _probability = False, True

    def __init__(self, filepath, data_key="ising_grids", return_beta=False, in_memory=False, **kwargs):
        super().__init__(filepath, data_key, None, return_beta, in_memory, **kwargs)


class ProbabilityDataset2D(ProbabilityDataset):
    """Items (X_rows, X_cols, y[, beta]): X_* (L-1, 1) through rows / columns, y (2, L-1, 1) both targets."""

    _two_d = True


class EnergyDataset(_IsingDataset):
    """Items (X, energy[, beta]): X = the whole snake-rows sequence (L, 1) ±1 (Potts: 0..q-1), energy (1,)."""

    _two_d, _probability = False, False

    def __init__(self, filepath, grids_data_key="ising_grids", energy_data_key="true_energies",
                 return_beta=False, in_memory=False, **kwargs):
        super().__init__(filepath, grids_data_key, energy_data_key, return_beta, in_memory, **kwargs)


class EnergyDataset2D(EnergyDataset):
    """Items (X_rows, X_cols, energy[, beta]): X_* (L, 1) through rows / columns, energy (1,)."""

    _two_d = True


_DATASETS = {
    ("probability", False): ProbabilityDataset,
    ("probability", True): ProbabilityDataset2D,
    ("energy", False): EnergyDataset,
    ("energy", True): EnergyDataset2D,
}


# ---------------------------------------------------------------------- loaders
class BlockShuffleSampler(Sampler):
    """Every index once per epoch, in batches that each lie in a short span of rows: blocks of
    ``block_batches`` batches of contiguous rows in random order, shuffled within each block;
    then the rows left over, shuffled, but for the last short batch, taken in file order (a
    few rows scattered over a block would be read as scattered rows).

    Seeded: the same seed gives the same sequence of epochs. Under DDP, Lightning wraps it
    in a distributed sampler that splits each epoch's order between the processes.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, block_batches: int = BLOCK_BATCHES):
        self.n, self.batch, self.block = int(n), int(batch_size), int(batch_size) * int(block_batches)
        self.rng = np.random.default_rng(int(seed))

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        rest, short = self.n - self.n % self.block, self.n % self.batch
        # one block at a time: an epoch's order as Python ints would be ~36 bytes a sample
        for start in (self.rng.permutation(rest // self.block) * self.block).tolist():
            yield from (start + self.rng.permutation(self.block)).tolist()
        yield from (rest + self.rng.permutation(self.n - short - rest)).tolist()
        yield from range(self.n - short, self.n)


def make_dataloader(dataset, batch_size=512, shuffle=False, num_workers=0, seed=0, persistent_workers=None,
                    drop_last=False, pin_memory=False, multiprocessing_context=None) -> DataLoader:
    """The fast route: a DataLoader that reads and collates one batch per call (see the
    module docstring). ``shuffle`` uses ``BlockShuffleSampler`` seeded with ``seed``.
    Workers keep their file handles between epochs by default."""
    block = BlockShuffleSampler(len(dataset), batch_size, seed) if shuffle else None
    workers = num_workers > 0
    return DataLoader(
        dataset, batch_size=batch_size, sampler=block, drop_last=drop_last, collate_fn=collate_batches,
        num_workers=num_workers, pin_memory=pin_memory,
        persistent_workers=workers and (persistent_workers is None or persistent_workers),
        multiprocessing_context=multiprocessing_context if workers else None,
    )


def check_same_instance(path, meta: dict, train_path, train: dict) -> None:
    """A spin-glass file holds lattices of one instance (its couplings J_h, J_v): every file of a run must
    hold the training file's, or the model would learn one instance and be validated on another; a
    one-line IsingDataError naming both files. Files of any other system pass (their names were compared)."""
    import hamiltonians

    a, b = file_system(path, meta), file_system(train_path, train)
    if a is None or b is None or (hamiltonians.lattice_of(a) is None and hamiltonians.lattice_of(b) is None):
        return
    if not hamiltonians.same_system(a, b):
        raise IsingDataError(f"{path} holds lattices of the spin-glass instance {a.label} but the training file "
                             f"{train_path} of {b.label} (their couplings J_h, J_v differ); use files of one instance")


# -------------------------------------------------------- lightning data module
class IsingDataModule(pl.LightningDataModule):
    """Train, validation (beta 0.25 main, 0.125, 0.5) and test loaders from file paths.

    ``val_dataloader()`` returns a list of loaders, index 0 the main one; their names for
    logging are ``val_names`` (["val", "val_beta_0.125", "val_beta_0.5"] for the default
    files, derived from each file's beta). The train loader shuffles (``make_dataloader``)
    with ``seed``.
    """

    def __init__(self, family="energy", two_d=False, train_path=data_files.path("train"),
                 val_paths=tuple(data_files.val_paths()), test_path=data_files.path("test"), batch_size=512,
                 num_workers=0, in_memory=False, return_beta=False, seed=0, persistent_workers=None,
                 pin_memory=False):
        super().__init__()
        if family not in ("energy", "probability"):
            raise ValueError(f"family must be 'energy' or 'probability', got {family!r}")
        self.family, self.two_d = family, bool(two_d)
        self.dataset_class = _DATASETS[(family, self.two_d)]
        self.train_path, self.val_paths, self.test_path = train_path, tuple(val_paths or ()), test_path
        self.dataset_kwargs = dict(return_beta=bool(return_beta), in_memory=bool(in_memory))
        self.loader_kwargs = dict(batch_size=int(batch_size), num_workers=int(num_workers), seed=int(seed),
                                  persistent_workers=persistent_workers, pin_memory=bool(pin_memory))

    @property
    def train_metadata(self) -> dict:
        """What the models need (beta, lattice size, Hamiltonian), without building datasets."""
        return read_metadata(self.train_path)

    @property
    def val_names(self) -> list:
        names = ["val"]
        for p in self.val_paths[1:]:
            beta = read_metadata(p)["beta"]
            names.append(f"val_beta_{beta:g}" if beta is not None else f"val_{Path(p).stem}")
        return names[: len(self.val_paths)]

    def check_files(self) -> dict:
        """Open every file as the loaders will (its datasets, shapes and values, a sample of the
        spins), and check that the validation and test files hold lattices of the training
        file's size, kind (Ising, or Potts of the same q), Hamiltonian and instance (a spin glass's
        couplings, `check_same_instance`): one-line
        IsingDataErrors before any training. Returns the training file's metadata."""
        paths = (self.train_path, *self.val_paths, self.test_path)
        for path in paths:  # their datasets first: read_metadata reads a whole beta column at once
            self._check_dataset(path)
            check_betas(path)
        train = read_metadata(self.train_path)
        kind = lambda m: "Ising" if m["q"] == 2 else f"q = {m['q']} Potts"  # noqa: E731
        for path in paths:
            meta = read_metadata(path)
            if meta["q"] != train["q"]:
                raise IsingDataError(f"{path} holds {kind(meta)} lattices but the training file {self.train_path} "
                                     f"{kind(train)} lattices; use files of one model")
            if (meta["n_x"], meta["n_y"]) != (train["n_x"], train["n_y"]):
                raise IsingDataError(f"{path} holds {meta['n_x']} x {meta['n_y']} lattices but the training file "
                                     f"{self.train_path} {train['n_x']} x {train['n_y']}; use validation and test "
                                     "files of the training size")
            if None not in (meta["hamiltonian"], train["hamiltonian"]) and meta["hamiltonian"] != train["hamiltonian"]:
                raise IsingDataError(f"{path} holds {meta['hamiltonian']} lattices but the training file "
                                     f"{self.train_path} {train['hamiltonian']}; use files of one Hamiltonian")
            check_same_instance(path, meta, self.train_path, train)
        return train

    def _check_dataset(self, path) -> None:
        self.dataset_class(path, return_beta=self.dataset_kwargs["return_beta"])

    def _loader(self, path, shuffle=False) -> DataLoader:
        return make_dataloader(self.dataset_class(path, **self.dataset_kwargs), shuffle=shuffle, **self.loader_kwargs)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_path, shuffle=True)

    def val_dataloader(self) -> list:
        return [self._loader(p) for p in self.val_paths]

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_path)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_path)
