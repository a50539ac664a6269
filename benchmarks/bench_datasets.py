"""How fast pytorch_datasets feeds training: samples/s of shuffled passes at batch 512.

Measured in one run, on one file written by the real generator (8 x 8 ISING1 unless
--file is given), for EnergyDataset2D (rows and columns sequences + energy):

- hdf5 (pread)           the default reader for files above MMAP_MAX_BYTES (memory map
                         below it), num_workers 0 and 2 (persistent workers; the
                         first pass, with worker start-up, and a second pass are reported)
- same, memory map       (large files) the whole file mapped: fastest, RSS grows by the file
- same, map released     (large files) the other bounded-RSS reader: the map's pages
                         dropped after every batch
- hdf5 (h5py reads)      read_raw=False: one h5py read of sorted indices per batch
- in-memory numpy        in_memory=True through the same loader (the baseline of the
                         target), num_workers 0 and 2
- plain numpy loop       the same gathers on preloaded arrays, no DataLoader
- reference-style        whole arrays in memory, one sample at a time, snake flattening by a
                         Python loop per sample, default collate (the published approach)
- model step (optional)  forward + backward + Adam of the default 2D energy GRU (hidden
                         512) on a 128-sample batch, to compare with the consumer's speed

Targets (issue 3): hdf5 >= 0.5 x in-memory and >= 20 x reference-style. Slow paths are
timed on a prefix of the pass (their rate per sample is constant); the prefix is printed.

    .venv/bin/python benchmarks/bench_datasets.py [--n_samples 3200000] [--file PATH]

(3,200,000 lattices is the published training-set size: a 230 MB file.)
"""
import argparse
import mmap
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytorch_datasets as pdx  # noqa: E402


class ReferenceStyleDataset(Dataset):
    """What the published code does: load the whole file, flatten one lattice per call
    with Python loops (rows, then columns), return tensors for default collate."""

    def __init__(self, path):
        import h5py

        with h5py.File(path, "r") as f:
            self.grids = f["ising_grids"][()]
            self.energies = f["true_energies"][()]

    def __len__(self):
        return len(self.grids)

    @staticmethod
    def _snake(lines):
        out = []
        for i, line in enumerate(lines):
            values = list(line)
            out.extend(values if i % 2 == 0 else values[::-1])
        return out

    def __getitem__(self, i):
        g = self.grids[i]
        rows = torch.tensor(self._snake(g), dtype=torch.float32).unsqueeze(-1)
        cols = torch.tensor(self._snake(g.T), dtype=torch.float32).unsqueeze(-1)
        return rows, cols, torch.tensor([self.energies[i]], dtype=torch.float32)


class ReleasedMapRows:
    """The other way to bound RSS (our earlier reader, kept here for comparison): a
    dataset's memory-map reader whose mapped pages are dropped (madvise DONTNEED) after
    every batch. Page-cache folios are mapped whole, so one batch of random rows maps
    most of the file, and the next batch faults it back in."""

    def __init__(self, mapped_rows, mm):
        self.rows, self.mm = mapped_rows, mm

    def read(self, idx):
        rows = self.rows.read(idx)  # a copy: the pages can go
        self.mm.madvise(mmap.MADV_DONTNEED)
        return rows


def time_loader(loader, max_batches=None):
    """(samples/s, samples seen, seconds) over one pass (or its first max_batches)."""
    n, t0 = 0, time.perf_counter()
    for b, batch in enumerate(loader):
        n += len(batch[0])
        if max_batches is not None and b + 1 >= max_batches:
            break
    dt = time.perf_counter() - t0
    return n / dt, n, dt


def numpy_loop(ds, batch_size, seed=0):
    """Same gathers on preloaded numpy arrays, no DataLoader, no file."""
    grids = ds._arrays[ds.grids_key].reshape(len(ds), -1)
    energies = ds._arrays[ds.energy_key]
    perm = np.concatenate([ds.perm_rows, ds.perm_cols])
    L = ds.seq_len
    order = np.random.default_rng(seed).permutation(len(ds))
    t0 = time.perf_counter()
    for s in range(0, len(ds), batch_size):
        idx = order[s : s + batch_size]
        seq = grids[idx][:, perm].astype(np.float32)
        out = (torch.from_numpy(np.ascontiguousarray(seq[:, :L, None])),
               torch.from_numpy(np.ascontiguousarray(seq[:, L:, None])),
               torch.from_numpy(energies[idx].reshape(-1, 1)))
    dt = time.perf_counter() - t0
    assert out[0].shape[1] == L
    return len(ds) / dt


def model_step_rate(batch, steps=2):
    """Samples/s of forward + backward + Adam of the default 2D energy model, or None."""
    try:
        from energy_models import EnergyModel

        model = EnergyModel(two_d=True)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        loss, _, _ = model.per_sample_loss(batch)  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            loss, _, _ = model.per_sample_loss(batch)
            loss.mean().backward()
            opt.step()
        return steps * len(batch[0]) / (time.perf_counter() - t0)
    except Exception as err:  # the model API is another module's; report, do not fail
        print(f"  (model step not measured: {err})")
        return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file", default=None, help="existing HDF5 file to read (default: generate one)")
    p.add_argument("--n_samples", type=int, default=600_000,
                   help="lattices to generate (default 600000: ~40 MiB, above the 32 MiB MMAP_MAX_BYTES, so "
                        "rows are read with pread as from a full-size training file)")
    p.add_argument("--batch_size", type=int, default=512, help="batch size (default 512)")
    p.add_argument("--workers", type=int, default=2, help="num_workers of the parallel run (default 2)")
    p.add_argument("--slow_batches", type=int, default=60,
                   help="batches timed for the slow paths (reference-style, h5py) (default 60)")
    p.add_argument("--repeats", type=int, default=2, help="passes of the two main paths, best kept (default 2)")
    p.add_argument("--no_model", action="store_true", help="skip timing the model training step")
    args = p.parse_args(argv)

    tmp = None
    if args.file is None:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "bench.hdf5"
        t0 = time.perf_counter()
        # In a child process: JAX's threads must not be running here when the loader forks
        # its workers. Reading speed does not depend on the physics: a short burn-in will do.
        subprocess.run([sys.executable, str(ROOT / "generate_ising.py"), "--n_x", "8", "--n_y", "8",
                        "--beta", "0.25", "--n_samples", str(args.n_samples), "--burn_in", "10",
                        "--thin", "1", "--filename", str(path), "--no_progress"], check=True)
        print(f"generated {path.stat().st_size / 2**20:.1f} MiB ({args.n_samples} 8x8 lattices) "
              f"in {time.perf_counter() - t0:.1f} s")
    else:
        path = Path(args.file)
    bs = args.batch_size
    print(f"file {path}  cpus {os.cpu_count()}  torch {torch.__version__}  batch {bs}")
    print("(shared machine: other jobs may be running; compare ratios, not absolute rates)\n")

    rates = {}

    def report(name, rate, n=None, dt=None):
        rates[name] = rate
        extra = f"  ({n} samples in {dt:.2f} s)" if n is not None else ""
        print(f"{name:<42s} {rate:>12,.0f} samples/s{extra}")

    ds = pdx.EnergyDataset2D(path)
    mem = pdx.EnergyDataset2D(path, in_memory=True, validate="none")
    # the two main contenders alternate, best of --repeats passes each: on a shared machine
    # the best pass is the one least disturbed by other jobs
    best = {"h5": (0,), "mem": (0,)}
    for _ in range(args.repeats):
        for key, d in (("h5", ds), ("mem", mem)):
            r = time_loader(pdx.make_dataloader(d, bs, shuffle=True, seed=0))
            best[key] = max(best[key], r)
    raw = type(ds._handles.readers[ds.grids_key]).__name__
    how = {"_PreadRows": "pread", "_MappedRows": "memory map"}.get(raw, "h5py")
    report(f"hdf5 {how}, workers 0 [best of {args.repeats}]", *best["h5"])
    if raw == "_PreadRows":
        # what bounding the resident memory costs: the same file through a memory map,
        # which makes the whole file resident
        limit, pdx.MMAP_MAX_BYTES = pdx.MMAP_MAX_BYTES, 1 << 62
        mapped = pdx.EnergyDataset2D(path)
        mapped[0]
        report("  same, memory map (RSS ~ file)", *time_loader(pdx.make_dataloader(mapped, bs, shuffle=True)))
        pdx.MMAP_MAX_BYTES = limit
        if hasattr(mmap, "MADV_DONTNEED"):
            # and the other way to bound it: the map, released after every batch
            readers = mapped._handles.readers
            readers[mapped.grids_key] = ReleasedMapRows(readers[mapped.grids_key], mapped._handles.map)
            report("  same, memory map released every batch",
                   *time_loader(pdx.make_dataloader(mapped, bs, shuffle=True)))
        mapped.close()
    else:
        print(f"  (file <= {pdx.MMAP_MAX_BYTES >> 20} MiB: memory-mapped, RSS grows by at most that)")
    loader = pdx.make_dataloader(ds, bs, shuffle=True, seed=0, num_workers=args.workers)
    r = time_loader(loader)
    report(f"hdf5 {how}, workers {args.workers}, pass 1", *r)
    r = time_loader(loader)
    report(f"hdf5 {how}, workers {args.workers}, pass 2", *r)
    del loader
    ds.close()
    loader = pdx.make_dataloader(mem, bs, shuffle=True, seed=0, num_workers=args.workers)
    time_loader(loader)
    report(f"in-memory numpy, workers {args.workers}, pass 2", *time_loader(loader))
    del loader

    ds_h5 = pdx.EnergyDataset2D(path, read_raw=False)
    r = time_loader(pdx.make_dataloader(ds_h5, bs, shuffle=True, seed=0), args.slow_batches)
    report(f"hdf5 h5py reads, workers 0 [{args.slow_batches} batches]", *r)

    report(f"in-memory numpy, same loader [best of {args.repeats}]", *best["mem"])
    report("plain numpy loop (no DataLoader)", numpy_loop(mem, bs))

    ref = ReferenceStyleDataset(path)
    r = time_loader(DataLoader(ref, batch_size=bs, shuffle=True), args.slow_batches)
    report(f"reference-style loop [{args.slow_batches} batches]", *r)

    model_rate = None
    if not args.no_model:
        # a 128-sample batch keeps this short on a small CPU; the rate per sample is what counts
        model_rate = model_step_rate(next(iter(pdx.make_dataloader(mem, min(bs, 128)))))
        if model_rate is not None:
            report("model: 2D energy GRU train step (CPU)", model_rate)

    h5 = rates[f"hdf5 {how}, workers 0 [best of {args.repeats}]"]
    h5w = rates[f"hdf5 {how}, workers {args.workers}, pass 2"]
    h5keep = rates.get("  same, memory map (RSS ~ file)")
    inmem = rates[f"in-memory numpy, same loader [best of {args.repeats}]"]
    refr = rates[f"reference-style loop [{args.slow_batches} batches]"]

    def ok(x, target):
        return "OK" if x >= target else "MISSED"

    print("\nratios (targets: hdf5 / in-memory >= 0.5, hdf5 / reference-style >= 20)")
    print(f"  hdf5 w0 / in-memory                   {h5 / inmem:8.2f}   {ok(h5 / inmem, 0.5)}")
    print(f"  hdf5 w0 / reference-style             {h5 / refr:8.1f}   {ok(h5 / refr, 20)}")
    if h5keep is not None:
        print(f"  hdf5 w0 memory map / in-memory        {h5keep / inmem:8.2f}   {ok(h5keep / inmem, 0.5)}")
        print(f"  hdf5 w0 memory map / reference        {h5keep / refr:8.1f}   {ok(h5keep / refr, 20)}")
    print(f"  hdf5 w{args.workers} / in-memory                   {h5w / inmem:8.2f}")
    print(f"  hdf5 w{args.workers} / in-memory w{args.workers}                {h5w / rates[f'in-memory numpy, workers {args.workers}, pass 2']:8.2f}")
    released = rates.get("  same, memory map released every batch")
    if released is not None:
        print(f"  hdf5 w0 / memory map released         {h5 / released:8.2f}   (both bound RSS)")
    print(f"  hdf5 w0 / plain numpy loop            {h5 / rates['plain numpy loop (no DataLoader)']:8.2f}")
    if model_rate is not None:
        print(f"  hdf5 w0 / model train step            {h5 / model_rate:8.1f}   "
              f"({'data loading is not the bottleneck' if h5 > 10 * model_rate else 'CHECK: loading near model speed'})")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
