"""Reading Ising HDF5 files into tensors: snake orderings, four dataset classes, a data module.

File contract (written by ``generate_ising.py``): ``ising_grids`` int8 (N, n_x, n_y) with
values ±1, ``true_energies`` float32 (N,), ``beta`` float32 (N,) (or one value), plus file
attributes (``model``, ``n_x``, ``n_y``, ``betas``, ...).

Design, and why:
- Lazy. Constructing a dataset reads shapes, metadata and a small validation sample; the
  grids are read batch by batch. Each process opens its own file handle on first use
  (handles are never pickled and are re-opened after a fork), so DataLoader workers work
  with fork and spawn, with or without ``persistent_workers``.
- Fast. The DataLoader calls ``__getitems__(indices)`` with a whole batch, and the rows
  are fetched together. When the grids are stored without filters (contiguous, or chunked
  but uncompressed) they are read from the file's bytes: gathered from a read-only memory
  map for files up to ``MMAP_MAX_BYTES``, or one ``os.pread`` per row for larger files.
  Otherwise h5py reads the sorted unique indices in one call (h5py needs increasing
  indices) and the sort is undone afterwards (a shuffled batch from a compressed file
  then decompresses most chunks: slow, a fallback only). Energies and betas, 4 bytes a
  sample, are held in memory by each process that reads.
- Bounded memory. Mapped file pages count in RSS, so only files up to ``MMAP_MAX_BYTES``
  are mapped (RSS grows by at most that); beyond it only the batch being read is
  resident. pread costs ~1 us a row (measured), which is what separates large files
  from in-memory arrays in benchmarks/bench_datasets.py; ``in_memory=True`` loads the
  grids for small files.
- The snake (boustrophedon) flattening is a precomputed index permutation applied to the
  whole batch with one gather, not a Python loop per sample.
"""
from __future__ import annotations

import mmap
import os
import re
from collections.abc import Sequence
from itertools import repeat
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler
from torch.utils.data._utils.collate import default_collate

try:  # the data module is optional for users of the plain datasets
    import lightning.pytorch as pl

    _LightningDataModule = pl.LightningDataModule
except ImportError:  # pragma: no cover - lightning is in requirements.txt
    _LightningDataModule = object

__all__ = [
    "snake_permutation",
    "flat_to_grid",
    "grid_to_flat",
    "read_metadata",
    "IsingDataError",
    "ProbabilityDataset",
    "EnergyDataset",
    "EnergyDataset2D",
    "ProbabilityDataset2D",
    "collate_batched",
    "ArrayBatchSampler",
    "make_dataloader",
    "IsingDataModule",
]

# Files up to this size are read through a memory map (fastest; the map can make the whole
# file resident: page-cache folios are mapped whole, 512 KiB seen here); larger files are
# read row by row with pread, so the grids never become resident.
MMAP_MAX_BYTES = 32 * 2**20
# Rows per block when a whole dataset is checked (full validation, in-memory loading).
_CHECK_BLOCK_ROWS = 1 << 16


class IsingDataError(ValueError):
    """A data file exists but cannot be used as it is (wrong key, shape, values)."""


# --------------------------------------------------------------------------------------
# Snake orderings: pure functions
# --------------------------------------------------------------------------------------
def _check_order(order: str) -> None:
    if order not in ("rows", "cols"):
        raise ValueError(f"order must be 'rows' or 'cols', got {order!r}")


def snake_permutation(n_x: int, n_y: int, order: str = "rows") -> np.ndarray:
    """Index permutation of the snake (boustrophedon) walk over an (n_x, n_y) lattice.

    Returns int64 (L,), L = n_x * n_y, such that ``grid.reshape(-1)[perm]`` is the snake
    sequence. "rows": row 0 left->right, row 1 right->left, ...; "cols": column 0
    top->bottom, column 1 bottom->top, ...
    """
    _check_order(order)
    if n_x < 1 or n_y < 1:
        raise ValueError(f"lattice size must be positive, got {n_x} x {n_y}")
    idx = np.arange(n_x * n_y, dtype=np.int64).reshape(n_x, n_y)
    lines = idx if order == "rows" else idx.T.copy()  # one line per row / per column
    lines[1::2] = lines[1::2, ::-1]
    return lines.reshape(-1)


def flat_to_grid(k, n_x: int, n_y: int, order: str = "rows"):
    """(row, col) of snake-sequence position ``k`` (an int or an integer array)."""
    _check_order(order)
    k_arr = np.asarray(k)
    if np.any((k_arr < 0) | (k_arr >= n_x * n_y)):
        raise ValueError(f"sequence position {k} outside 0..{n_x * n_y - 1}")
    line_len = n_y if order == "rows" else n_x
    line, pos = np.divmod(k_arr, line_len)
    along = np.where(line % 2 == 0, pos, line_len - 1 - pos)
    row, col = (line, along) if order == "rows" else (along, line)
    if k_arr.ndim == 0:
        return int(row), int(col)
    return row, col


def grid_to_flat(row, col, n_x: int, n_y: int, order: str = "rows"):
    """Snake-sequence position of lattice site (row, col) (ints or integer arrays)."""
    _check_order(order)
    r, c = np.asarray(row), np.asarray(col)
    if np.any((r < 0) | (r >= n_x) | (c < 0) | (c >= n_y)):
        raise ValueError(f"site ({row}, {col}) outside the {n_x} x {n_y} lattice")
    if order == "rows":
        k = r * n_y + np.where(r % 2 == 0, c, n_y - 1 - c)
    else:
        k = c * n_x + np.where(c % 2 == 0, r, n_x - 1 - r)
    if k.ndim == 0:
        return int(k)
    return k


# --------------------------------------------------------------------------------------
# Files and metadata
# --------------------------------------------------------------------------------------
_MAKE_DATA_FILES = {
    "train_data.hdf5",
    "val_data_beta_dot25.hdf5",
    "val_data_beta_dot125.hdf5",
    "val_data_beta_dot5.hdf5",
    "test_data.hdf5",
    "eval_data.hdf5",
}


def _missing_file_error(path: Path) -> FileNotFoundError:
    beta = re.fullmatch(r".*beta_dot(\d+)\.hdf5", path.name)
    flags = f" --beta 0.{beta.group(1)}" if beta else ""
    how = f"python generate_ising.py --filename {path}{flags}"
    if path.name in _MAKE_DATA_FILES:
        how = f"make data, or {how}"
    return FileNotFoundError(
        f"data file {path} not found; create it with: {how} (other flags: python generate_ising.py --help)"
    )


def _open_h5(path: Path) -> h5py.File:
    if not path.is_file():
        raise _missing_file_error(path)
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise IsingDataError(f"{path} is not a readable HDF5 file ({err})") from err


def _get_dataset(f: h5py.File, key: str, path: Path) -> h5py.Dataset:
    if key not in f or not isinstance(f[key], h5py.Dataset):
        present = sorted(k for k in f.keys() if isinstance(f[k], h5py.Dataset))
        raise IsingDataError(
            f"{path} has no dataset {key!r}; datasets present: {present}. "
            "Pass the right key (data_key / grids_data_key / energy_data_key)."
        )
    return f[key]


def _plain(value):
    """HDF5 attribute -> plain Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype.kind in "SO" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_metadata(path) -> dict:
    """File attributes plus ``n_x``, ``n_y``, ``model``, ``betas`` (list of floats),
    ``beta`` (the single beta, or None for multi-beta files) and ``n_samples``.

    Works on files without attributes too (shapes and the ``beta`` dataset are used).
    """
    path = Path(path)
    with _open_h5(path) as f:
        meta = {k: _plain(v) for k, v in f.attrs.items()}
        grids = _get_dataset(f, "ising_grids", path) if "ising_grids" in f else None
        if grids is not None and grids.ndim == 3:
            meta.setdefault("n_x", int(grids.shape[1]))
            meta.setdefault("n_y", int(grids.shape[2]))
            meta["n_samples"] = int(grids.shape[0])
        else:
            meta.setdefault("n_samples", None)
        if "betas" in meta:
            betas = np.atleast_1d(np.asarray(meta["betas"], dtype=np.float64))
        elif "beta" in f:
            betas = np.unique(_read_in_blocks(f["beta"], np.unique))
        else:
            betas = np.array([], dtype=np.float64)
    meta["betas"] = [float(b) for b in betas]
    meta["beta"] = meta["betas"][0] if len(meta["betas"]) == 1 else None
    meta.setdefault("model", None)
    for key in ("n_x", "n_y"):
        if key in meta and meta[key] is not None:
            meta[key] = int(meta[key])
    return meta


def _read_in_blocks(dset: h5py.Dataset, reduce, block: int = _CHECK_BLOCK_ROWS) -> np.ndarray:
    """Apply ``reduce`` to each block of rows of ``dset``; concatenates the results."""
    if dset.ndim == 0:
        return np.atleast_1d(reduce(np.atleast_1d(dset[()])))
    parts = [reduce(dset[s : s + block]) for s in range(0, dset.shape[0], block)]
    return np.concatenate([np.atleast_1d(p) for p in parts]) if parts else np.array([])


# --------------------------------------------------------------------------------------
# Per-process readers
# --------------------------------------------------------------------------------------
class _RawRows:
    """Rows of an unfiltered HDF5 dataset read straight from the file's bytes.

    ``chunk_offsets[j]`` is the file offset of the j-th block of ``chunk_rows`` rows (one
    block for a contiguous dataset).
    """

    def __init__(self, dset: h5py.Dataset, chunk_offsets: np.ndarray, chunk_rows: int):
        self.dtype = dset.dtype
        self.row_shape = tuple(dset.shape[1:])
        self.row_bytes = int(dset.dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64)))
        self.chunk_offsets = chunk_offsets
        self.chunk_rows = int(chunk_rows)

    def offsets(self, idx: np.ndarray) -> np.ndarray:
        """File offset (bytes) of each row in ``idx``."""
        chunk, within = np.divmod(idx, self.chunk_rows)
        return self.chunk_offsets[chunk] + within * self.row_bytes

    def _rows(self, raw, n: int) -> np.ndarray:
        return np.frombuffer(raw, dtype=self.dtype).reshape((n,) + self.row_shape)


class _MappedRows(_RawRows):
    """Rows gathered from a read-only memory map of the whole file (files up to
    ``MMAP_MAX_BYTES``: every page the map touches counts in RSS and stays mapped)."""

    def __init__(self, mm: mmap.mmap, dset, chunk_offsets, chunk_rows):
        super().__init__(dset, chunk_offsets, chunk_rows)
        flat = np.frombuffer(mm, dtype=np.uint8)
        # overlapping view: element k holds file bytes k .. k + row_bytes - 1, so one fancy
        # index copies every row, wherever its chunk lies
        self._windows = np.lib.stride_tricks.as_strided(
            flat, shape=(flat.size - self.row_bytes + 1, self.row_bytes), strides=(1, 1), writeable=False
        )

    def read(self, idx: np.ndarray) -> np.ndarray:
        return self._rows(self._windows[self.offsets(idx)], len(idx))


class _PreadRows(_RawRows):
    """Rows read with one ``os.pread`` each (larger files): only the batch becomes
    resident, whatever the file size. ~1 us a row (measured).

    Why not a memory map released after every batch, the other way to bound RSS: the page
    cache holds large folios and a fault maps a whole one (512 KiB seen here), so one batch
    of random rows maps most of the file and the next batch faults it all back in. In
    benchmarks/bench_datasets.py that is as fast as pread on a 42 MiB file and 3x slower
    on a 230 MB one (the published training-set size).
    """

    def __init__(self, fd: int, path: Path, dset, chunk_offsets, chunk_rows):
        super().__init__(dset, chunk_offsets, chunk_rows)
        self.fd = fd
        self.path = path

    def read(self, idx: np.ndarray) -> np.ndarray:
        offsets = self.offsets(idx).tolist()
        n = len(offsets)
        raw = b"".join(map(os.pread, repeat(self.fd, n), repeat(self.row_bytes, n), offsets))
        if len(raw) != n * self.row_bytes:
            raise IsingDataError(f"{self.path}: short read (was the file truncated while in use?)")
        return self._rows(raw, n)


class _ArrayRows:
    """A small column (energies, betas: 4 bytes a sample) held in memory by each process."""

    def __init__(self, values: np.ndarray):
        self.values = values

    def read(self, idx: np.ndarray) -> np.ndarray:
        return self.values[idx]


def _chunk_layout(dset: h5py.Dataset):
    """(chunk_offsets, chunk_rows) when ``dset`` rows can be read from the raw file, else None."""
    try:
        if dset.is_virtual or dset.external or dset.ndim < 1 or dset.shape[0] == 0:
            return None
        if dset.id.get_create_plist().get_nfilters() != 0:
            return None
        if dset.dtype.kind not in "biuf":
            return None
        if dset.chunks is None:
            off = dset.id.get_offset()
            return None if off is None else (np.array([off], dtype=np.int64), dset.shape[0])
        if tuple(dset.chunks[1:]) != tuple(dset.shape[1:]):
            return None  # chunks split a row: not worth mapping
        chunk_rows = dset.chunks[0]
        n_chunks = -(-dset.shape[0] // chunk_rows)
        offsets = np.full(n_chunks, -1, dtype=np.int64)

        def visit(info):
            offsets[info.chunk_offset[0] // chunk_rows] = info.byte_offset

        if hasattr(dset.id, "chunk_iter"):
            dset.id.chunk_iter(visit)
        else:  # pragma: no cover - older HDF5
            for i in range(dset.id.get_num_chunks()):
                visit(dset.id.get_chunk_info(i))
        return None if np.any(offsets < 0) else (offsets, chunk_rows)
    except Exception:  # any doubt about the layout: let h5py read it
        return None


class _H5Rows:
    """Rows read through h5py: one call per batch on the sorted unique indices."""

    def __init__(self, dset: h5py.Dataset):
        self.dset = dset

    def read(self, idx: np.ndarray) -> np.ndarray:
        if len(idx) == 0:
            return np.empty((0,) + self.dset.shape[1:], dtype=self.dset.dtype)
        uniq, inverse = np.unique(idx, return_inverse=True)
        if uniq[-1] - uniq[0] + 1 == len(uniq):  # a contiguous range: one slice
            rows = self.dset[int(uniq[0]) : int(uniq[-1]) + 1]
        else:
            rows = self.dset[uniq]
        return rows if len(uniq) == len(idx) and np.all(inverse == np.arange(len(idx))) else rows[inverse]


class _Handles:
    """Everything a process needs to read one file; never pickled.

    The grids are read from the raw file when their layout allows it (memory map for
    files up to ``MMAP_MAX_BYTES``, pread beyond), else through h5py. Energies and betas
    are read whole into memory: 4 bytes a sample, and random access to them costs nothing.
    """

    def __init__(self, path: Path, grids_key: str, small_keys, raw: bool):
        self.pid = os.getpid()
        self.file = _open_h5(path)
        self.map = self.fd = None
        dset = self.file[grids_key]
        layout = _chunk_layout(dset) if raw else None
        reader = None
        if layout is not None:
            if path.stat().st_size <= MMAP_MAX_BYTES:
                with open(path, "rb") as fh:
                    self.map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                reader = _MappedRows(self.map, dset, *layout)
            else:
                self.fd = os.open(path, os.O_RDONLY)
                reader = _PreadRows(self.fd, path, dset, *layout)
            if not _same_rows(reader, _H5Rows(dset), dset.shape[0]):
                reader = None  # the raw layout is not what we think: stay safe
        self.readers = {grids_key: reader or _H5Rows(dset)}
        for key in small_keys:
            self.readers[key] = _ArrayRows(self.file[key][()].reshape(-1))

    def close(self) -> None:
        self.readers = {}
        if self.map is not None:
            try:
                self.map.close()
            except BufferError:  # pragma: no cover - a caller still holds a view
                pass
        if self.fd is not None:
            os.close(self.fd)
        self.file.close()


def _same_rows(a, b, n: int) -> bool:
    probe = np.unique(np.array([0, n // 3, n // 2, n - 1], dtype=np.int64))
    try:
        return np.array_equal(a.read(probe), b.read(probe), equal_nan=True)
    except Exception:
        return False


# --------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------
def _assemble(layout: tuple, seq: np.ndarray, energy, beta) -> tuple:
    """The item tuple of a batch, as tensors, from what was read.

    layout: (two_d, probability). seq: int8 (B, L) snake through rows, or (B, 2L) rows then
    columns for 2D items, values ±1. energy, beta: float32 (B,) or None.
    """
    two_d, probability = layout
    x = seq.astype(np.float32)
    L = x.shape[1] // 2 if two_d else x.shape[1]
    parts = [x[:, :L], x[:, L:]] if two_d else [x]
    if probability:
        out = [np.ascontiguousarray(p[:, :-1, None]) for p in parts]
        ys = [(p[:, 1:, None] + 1.0) * 0.5 for p in parts]  # ±1 -> {0, 1}
        out.append(np.stack(ys, axis=1) if two_d else ys[0])
    else:
        out = [np.ascontiguousarray(p[:, :, None]) for p in parts] + [energy.reshape(-1, 1)]
    if beta is not None:
        out.append(beta.reshape(-1, 1))
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in out)


class _Batch(Sequence):
    """Samples of one batch, returned by ``__getitems__``: what was read, assembled into
    the stacked item tuple ``.batch`` on first use.

    ``collate_batched`` passes ``.batch`` through with no copy; in a DataLoader worker it
    passes the raw batch instead, which is assembled in the main process as it arrives
    (``_WireBatch``). Any other collate function sees a sequence of per-sample tuples
    (slower, still correct).
    """

    def __init__(self, layout: tuple, raw: tuple):
        self.layout, self.raw, self._batch = layout, raw, None

    @property
    def batch(self) -> tuple:
        if self._batch is None:
            self._batch = _assemble(self.layout, *self.raw)
        return self._batch

    def __len__(self):
        return len(self.raw[0])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return tuple(t[i] for t in self.batch)


class _WireBatch:
    """A batch on its way from a DataLoader worker: pickles as the raw int8 sequences and
    float32 energies / betas, and unpickles (in the main process) as the tuple of tensors.

    Why: torch sends a worker's tensors through shared memory, passing a file descriptor
    over a socket for every batch, which cost ~0.9 ms a batch here: more than reading it.
    The raw batch is a quarter of the float32 tensors' size and goes through the pipe.
    (Measured, in-memory data, 2 workers: 3.0e5 samples/s through shared memory, 7.3e5
    with raw batches through the pipe.)
    """

    def __init__(self, batch: _Batch):
        self.layout, self.raw = batch.layout, batch.raw

    def __reduce__(self):
        return _assemble, (self.layout,) + tuple(self.raw)


def collate_batched(batch):
    """collate_fn for these datasets: passes a pre-stacked batch through, else default_collate."""
    if isinstance(batch, _Batch):
        if torch.utils.data.get_worker_info() is not None and batch._batch is None:
            return _WireBatch(batch)  # becomes batch.batch in the main process
        return batch.batch
    return default_collate(batch)


class _IsingDataset(Dataset):
    """Shared machinery: lazy per-process handles, validation, batched reads, snake gathers.

    ``validate``: "sample" (default) checks the spins of a few evenly spaced blocks of rows
    at construction; "full" checks every row (in blocks of 65536); "none" skips it. In every
    mode each batch read is checked too, so a bad spin is refused when it is reached. Energies
    and betas (4 bytes a sample) are always checked whole, in blocks.

    ``read_raw`` (default True): read the grids from the file's bytes when they are stored
    unfiltered (memory map up to ``MMAP_MAX_BYTES``, pread beyond); False: always through
    h5py. ``in_memory``: load the grids at construction (small files).
    """

    _two_d = False
    _probability = True

    @property
    def _layout(self) -> tuple:
        """What ``_assemble`` needs to build this dataset's items."""
        return self._two_d, self._probability

    def __init__(
        self,
        filepath,
        grids_key: str = "ising_grids",
        energy_key: str | None = None,
        return_beta: bool = False,
        in_memory: bool = False,
        validate: str = "sample",
        read_raw: bool = True,
    ):
        if validate not in ("sample", "full", "none"):
            raise ValueError(f"validate must be 'sample', 'full' or 'none', got {validate!r}")
        self.filepath = Path(filepath).resolve() if Path(filepath).exists() else Path(filepath)
        self.grids_key = grids_key
        self.energy_key = energy_key
        self.return_beta = bool(return_beta)
        self.in_memory = bool(in_memory)
        self.read_raw = bool(read_raw)
        self._handles = None
        self._arrays = None  # in-memory copies
        self._beta_const = None  # beta when the file has a single value
        self._beta_key = None
        path = self.filepath
        with _open_h5(path) as f:
            grids = _get_dataset(f, grids_key, path)
            if grids.ndim != 3:
                raise IsingDataError(
                    f"{path}:{grids_key} has shape {grids.shape}; expected (N, n_x, n_y) lattices"
                )
            if grids.dtype.kind not in "biuf":
                raise IsingDataError(f"{path}:{grids_key} has dtype {grids.dtype}; expected ±1 numbers")
            self.n, self.n_x, self.n_y = (int(s) for s in grids.shape)
            if self.n == 0:
                raise IsingDataError(f"{path}:{grids_key} holds no lattices")
            if validate == "full" or in_memory:
                for s in range(0, self.n, _CHECK_BLOCK_ROWS):
                    self._check_spins(grids[s : s + _CHECK_BLOCK_ROWS], s)
            elif validate == "sample":
                n_blocks, block = 8, 256
                for s in np.unique(np.linspace(0, max(self.n - block, 0), n_blocks).astype(np.int64)):
                    self._check_spins(grids[int(s) : int(s) + block], int(s))
            if energy_key is not None:
                energies = _get_dataset(f, energy_key, path)
                self._check_values(energies, energy_key, "energies")
            if self.return_beta:
                self._setup_beta(f, path)
            if in_memory:
                self._arrays = {grids_key: grids[()]}
                if energy_key is not None:
                    self._arrays[energy_key] = f[energy_key][()].reshape(self.n)
                if self._beta_key is not None:
                    self._arrays[self._beta_key] = f[self._beta_key][()].reshape(self.n)
        L = self.n_x * self.n_y
        self.seq_len = L
        self.perm_rows = snake_permutation(self.n_x, self.n_y, "rows")
        self.perm_cols = snake_permutation(self.n_x, self.n_y, "cols")
        # both orders in one gather when the item needs both
        self._perm = np.concatenate([self.perm_rows, self.perm_cols]) if self._two_d else self.perm_rows

    # ---- validation -------------------------------------------------------------------
    def _check_spins(self, block: np.ndarray, start: int) -> None:
        bad = (block != 1) & (block != -1)
        if np.any(bad):
            where = np.argwhere(bad)[0]
            i = start + int(where[0])
            raise IsingDataError(
                f"{self.filepath}:{self.grids_key} lattice {i} holds {block[tuple(where)]!r} at "
                f"site ({int(where[1])}, {int(where[2])}); spins must be ±1"
            )

    def _check_values(self, dset: h5py.Dataset, key: str, what: str) -> None:
        path = self.filepath
        if dset.ndim == 2 and dset.shape[1] == 1:
            pass
        elif dset.ndim != 1:
            raise IsingDataError(f"{path}:{key} has shape {dset.shape}; expected ({self.n},) {what}")
        if dset.shape[0] != self.n:
            raise IsingDataError(
                f"{path}:{key} holds {dset.shape[0]} {what} but {self.grids_key} holds "
                f"{self.n} lattices; they must have the same length"
            )
        if dset.dtype.kind not in "biuf":
            raise IsingDataError(f"{path}:{key} has dtype {dset.dtype}; expected numbers")
        finite = _read_in_blocks(dset, lambda a: np.all(np.isfinite(a)))
        if not np.all(finite):
            first = int(np.argmin(finite)) * _CHECK_BLOCK_ROWS
            raise IsingDataError(
                f"{path}:{key} holds NaN or infinite {what} (first in rows {first}.."
                f"{first + _CHECK_BLOCK_ROWS - 1}); regenerate the file"
            )

    def _setup_beta(self, f: h5py.File, path: Path) -> None:
        if "beta" in f and isinstance(f["beta"], h5py.Dataset):
            dset = f["beta"]
            if dset.size == 1:  # single-beta file written as one value
                self._beta_const = np.float32(np.asarray(dset[()]).reshape(-1)[0])
            else:
                self._check_values(dset, "beta", "betas")
                self._beta_key = "beta"
        else:
            betas = np.atleast_1d(f.attrs.get("betas", []))
            if len(betas) != 1:
                present = sorted(f.keys())
                raise IsingDataError(
                    f"{path} has no 'beta' dataset (datasets present: {present}) and its "
                    f"'betas' attribute is {list(betas)}; return_beta needs per-sample betas"
                )
            self._beta_const = np.float32(betas[0])
        if self._beta_const is not None and not np.isfinite(self._beta_const):
            raise IsingDataError(f"{path}: beta is {self._beta_const}; regenerate the file")

    # ---- per-process handles ----------------------------------------------------------
    def _readers(self):
        h = self._handles
        if h is None or h.pid != os.getpid():
            # first use in this process, or we were forked: open our own handle (the
            # parent's is left alone; it is not safe to share across processes)
            small = [k for k in (self.energy_key, self._beta_key) if k is not None]
            self._handles = h = _Handles(self.filepath, self.grids_key, small, self.read_raw)
        return h.readers

    def close(self) -> None:
        """Close this process's file handle (it is reopened on the next read)."""
        if self._handles is not None and self._handles.pid == os.getpid():
            self._handles.close()
        self._handles = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = None  # h5py handles and memory maps do not cross processes
        return state

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ---- reading ----------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n

    def _indices(self, indices) -> np.ndarray:
        if isinstance(indices, torch.Tensor):
            indices = indices.cpu().numpy()
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            if idx.size == 0:
                idx = idx.astype(np.int64)
            else:
                raise TypeError(f"indices must be integers, got {idx.dtype}")
        idx = idx.astype(np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + self.n, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError(f"index out of range for a dataset of {self.n} lattices")
        return idx

    def _read(self, key: str, idx: np.ndarray) -> np.ndarray:
        if self._arrays is not None:
            return self._arrays[key][idx]
        return self._readers()[key].read(idx)

    def _read_raw(self, indices) -> tuple:
        """(int8 snake sequences (B, L) or (B, 2L), energies (B,) or None, betas (B,) or None)."""
        idx = self._indices(indices)
        grids = self._read(self.grids_key, idx).reshape(len(idx), self.seq_len)
        if self._arrays is None and not np.all(np.abs(grids) == 1):
            # construction checked a sample only: refuse bad spins when they are reached
            bad = int(np.argmax(~np.all(np.abs(grids) == 1, axis=1)))
            self._check_spins(grids[bad : bad + 1].reshape(1, self.n_x, self.n_y), int(idx[bad]))
        seq = np.take(grids, self._perm, axis=1).astype(np.int8, copy=False)  # one gather for the batch
        energy = beta = None
        if not self._probability:
            energy = self._read(self.energy_key, idx).reshape(len(idx)).astype(np.float32)
        if self.return_beta:
            if self._beta_const is not None:
                beta = np.full(len(idx), self._beta_const, dtype=np.float32)
            else:
                beta = self._read(self._beta_key, idx).reshape(len(idx)).astype(np.float32)
        return seq, energy, beta

    def read_batch(self, indices) -> tuple:
        """Batched item for ``indices`` (ints): the item tuple with a leading batch dim."""
        return _assemble(self._layout, *self._read_raw(indices))

    def __getitems__(self, indices) -> _Batch:
        # torch's DataLoader calls this with the indices of a whole batch
        return _Batch(self._layout, self._read_raw(indices))

    def __getitem__(self, index):
        """One item for an int index; a batched item for a sequence / array of indices."""
        if isinstance(index, (int, np.integer)) or (
            isinstance(index, torch.Tensor) and index.ndim == 0
        ):
            return tuple(t[0] for t in self.read_batch([int(index)]))
        if isinstance(index, slice):
            return self.read_batch(np.arange(self.n)[index])
        return self.read_batch(index)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.filepath)!r}, n={self.n}, lattice={self.n_x}x{self.n_y}, "
            f"in_memory={self.in_memory}, return_beta={self.return_beta})"
        )


class ProbabilityDataset(_IsingDataset):
    """Item ``(X, y)``: X float32 (L-1, 1) = snake-rows spins[:-1] (±1), y float32 (L-1, 1) =
    spins[1:] mapped to {0, 1}; plus beta float32 (1,) when ``return_beta``."""

    _two_d, _probability = False, True

    def __init__(self, filepath, data_key="ising_grids", return_beta=False, in_memory=False, **kwargs):
        super().__init__(filepath, data_key, None, return_beta, in_memory, **kwargs)


class ProbabilityDataset2D(ProbabilityDataset):
    """Item ``(X_rows, X_cols, y)``: X_* float32 (L-1, 1) as in ProbabilityDataset through rows
    and through columns; y float32 (2, L-1, 1) = stack of the rows and columns targets."""

    _two_d = True


class EnergyDataset(_IsingDataset):
    """Item ``(X, energy)``: X float32 (L, 1) = the full snake-rows sequence, energy float32 (1,)."""

    _two_d, _probability = False, False

    def __init__(
        self,
        filepath,
        grids_data_key="ising_grids",
        energy_data_key="true_energies",
        return_beta=False,
        in_memory=False,
        **kwargs,
    ):
        super().__init__(filepath, grids_data_key, energy_data_key, return_beta, in_memory, **kwargs)


class EnergyDataset2D(EnergyDataset):
    """Item ``(X_rows, X_cols, energy)``: X_* float32 (L, 1) through rows and columns, energy (1,)."""

    _two_d = True


_DATASETS = {
    ("probability", False): ProbabilityDataset,
    ("probability", True): ProbabilityDataset2D,
    ("energy", False): EnergyDataset,
    ("energy", True): EnergyDataset2D,
}


class ArrayBatchSampler(BatchSampler):
    """A ``BatchSampler`` that yields each batch as one int64 array sliced from the epoch's
    order, instead of building it one index at a time (which took ~40% of an in-memory
    pass, measured). Any sampler works; ``RandomSampler`` and ``SequentialSampler`` get
    their order in one call. Lightning can swap the sampler (e.g. for DDP), as with
    ``BatchSampler``.
    """

    def _order(self) -> np.ndarray:
        s = self.sampler
        if type(s) is SequentialSampler:
            return np.arange(len(s.data_source), dtype=np.int64)
        if type(s) is RandomSampler and not s.replacement and s.num_samples == len(s.data_source):
            generator = s.generator
            if generator is None:  # as RandomSampler does: a fresh seed each epoch
                seed = int(torch.empty((), dtype=torch.int64).random_().item())
                generator = torch.Generator().manual_seed(seed)
            order = torch.randperm(len(s.data_source), generator=generator).numpy()
            # RandomSampler draws a second (empty-sliced) permutation per epoch: draw it too,
            # so that a seed gives the very batches of torch's BatchSampler, epoch after epoch
            torch.randperm(len(s.data_source), generator=generator)
            return order
        return np.fromiter(iter(s), dtype=np.int64)

    def __iter__(self):
        order = self._order()
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield order[start : start + self.batch_size]


def make_dataloader(
    dataset: _IsingDataset,
    batch_size: int = 512,
    shuffle: bool = False,
    num_workers: int = 0,
    seed: int = 0,
    persistent_workers: bool | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
    multiprocessing_context=None,
) -> DataLoader:
    """A DataLoader that reads one batch per call (``__getitems__`` + ``collate_batched``).

    ``shuffle`` draws its order from a generator seeded with ``seed``: the same seed gives
    the same sequence of epochs. Workers keep their file handles between epochs by default.
    """
    if persistent_workers is None:
        persistent_workers = num_workers > 0
    if shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(int(seed)))
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_sampler=ArrayBatchSampler(sampler, batch_size, drop_last),
        num_workers=num_workers,
        collate_fn=collate_batched,
        persistent_workers=persistent_workers and num_workers > 0,
        pin_memory=pin_memory,
        multiprocessing_context=multiprocessing_context if num_workers > 0 else None,
    )


# --------------------------------------------------------------------------------------
# Lightning data module
# --------------------------------------------------------------------------------------
class IsingDataModule(_LightningDataModule):
    """Train, validation (beta 0.25 main, 0.125, 0.5) and test loaders from file paths.

    ``val_dataloader()`` returns a list of loaders, index 0 the main one; their names for
    logging are ``val_names`` (["val", "val_beta_0.125", "val_beta_0.5"] for the default
    files, derived from each file's beta). The train loader shuffles with a generator
    seeded by ``seed``.
    """

    def __init__(
        self,
        family: str = "energy",
        two_d: bool = False,
        train_path="data/train_data.hdf5",
        val_paths=(
            "data/val_data_beta_dot25.hdf5",
            "data/val_data_beta_dot125.hdf5",
            "data/val_data_beta_dot5.hdf5",
        ),
        test_path="data/test_data.hdf5",
        batch_size: int = 512,
        num_workers: int = 0,
        in_memory: bool = False,
        return_beta: bool = False,
        seed: int = 0,
        persistent_workers: bool | None = None,
        pin_memory: bool = False,
    ):
        super().__init__()
        if family not in ("energy", "probability"):
            raise ValueError(f"family must be 'energy' or 'probability', got {family!r}")
        self.family, self.two_d = family, bool(two_d)
        self.dataset_class = _DATASETS[(family, self.two_d)]
        self.train_path = train_path
        self.val_paths = tuple(val_paths) if val_paths is not None else ()
        self.test_path = test_path
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.in_memory, self.return_beta, self.seed = bool(in_memory), bool(return_beta), int(seed)
        self.persistent_workers, self.pin_memory = persistent_workers, bool(pin_memory)
        self.train_set = None
        self.val_sets = None
        self.test_set = None
        self._val_names = None

    # metadata the models need (beta, lattice size, Ising model) without building datasets
    @property
    def train_metadata(self) -> dict:
        return read_metadata(self.train_path)

    @property
    def val_names(self) -> list:
        if self._val_names is None:
            names = []
            for i, p in enumerate(self.val_paths):
                if i == 0:
                    names.append("val")
                    continue
                beta = read_metadata(p)["beta"]
                names.append(f"val_beta_{beta:g}" if beta is not None else f"val_{Path(p).stem}")
            self._val_names = names
        return self._val_names

    def _dataset(self, path):
        return self.dataset_class(path, return_beta=self.return_beta, in_memory=self.in_memory)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self._dataset(self.train_path)
        if stage in (None, "fit", "validate") and self.val_sets is None:
            self.val_sets = [self._dataset(p) for p in self.val_paths]
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = self._dataset(self.test_path)

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return make_dataloader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            seed=self.seed,
            persistent_workers=self.persistent_workers,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> list:
        self.setup("validate")
        return [self._loader(ds, shuffle=False) for ds in self.val_sets]

    def test_dataloader(self) -> DataLoader:
        self.setup("test")
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
