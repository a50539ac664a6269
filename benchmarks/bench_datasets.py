"""Does data loading hold training back? Loader speed against a training step, in one run.

On one file written by the real generator (8 x 8 ISING1, 1,000,000 lattices: 64 MB of
grids, unless --n_samples or --file), shuffled passes at batch 512:

- make_dataloader            the trainers' loader, for ProbabilityDataset (the items of the
                             fastest model) and EnergyDataset2D (the largest items); also with
                             in_memory=True, as an upper bound
- plain DataLoader           DataLoader(ds, batch_size=512, shuffle=True): how the reference
                             fed its datasets (default_collate)
- reference-style loop       whole arrays in memory, the snake by a Python loop per sample,
                             default_collate: the published approach, the baseline of (b), (c)
- training step              forward + backward + Adam of the original causal probability GRU
                             (ProbabilityModel, hidden 32 and 64) at the same batch size, in
                             float32 and under bfloat16 autocast
- resident memory            peak RSS growth over a make_dataloader pass, against the file size
                             and the pickled dataset (its bookkeeping)

Targets: (a) loading a batch takes under 5% of the fastest training step; (b) make_dataloader
>= 10 x the reference-style loop; (c) the plain DataLoader >= 2 x that loop; (d) RSS grows by
under a quarter of a file that is over 20 x the bookkeeping. Slow routes are timed on their
first --slow_batches batches (their cost per sample is constant); the first batch of every pass
is a warm-up (file handles, the plain route's one-time load) and is not timed.

--baseline PATH/pytorch_datasets.py times the same loaders from another version of the module
(for example an older checkout) in the same run, with the ratios new / baseline.

    .venv/bin/python benchmarks/bench_datasets.py [--n_samples 1000000] [--file PATH] [--baseline PATH]
"""
import argparse
import gc
import importlib.util
import itertools
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytorch_datasets  # noqa: E402


class ReferenceStyleDataset(Dataset):
    """What the published code does: load the whole file, flatten one lattice per call with a
    Python loop, return tensors for default_collate. Items as ProbabilityDataset's."""

    def __init__(self, path):
        with h5py.File(path, "r") as f:
            self.grids = f["ising_grids"][()]

    def __len__(self):
        return len(self.grids)

    def __getitem__(self, i):
        seq = []
        for r, line in enumerate(self.grids[i].tolist()):
            seq.extend(line if r % 2 == 0 else line[::-1])
        spins = torch.tensor(seq, dtype=torch.float32).unsqueeze(-1)
        return spins[:-1], (spins[1:] + 1) / 2


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def rate(loader, max_batches=None):
    """Samples/s over one pass of ``loader`` (or its first max_batches), first batch untimed."""
    it = iter(loader)
    next(it)
    n, t0 = 0, time.perf_counter()
    for batch in itertools.islice(it, None if max_batches is None else max_batches - 1):
        n += len(batch[0])
    return n / (time.perf_counter() - t0)


def rss_growth(module, path, batch_size):
    """(peak RSS growth over a make_dataloader pass, pickled dataset size), in bytes."""
    ds = module.ProbabilityDataset(path)
    list(itertools.islice(module.make_dataloader(ds, batch_size, shuffle=True), 3))  # libraries' one-time set-up
    ds = module.ProbabilityDataset(path)
    gc.collect()
    base = peak = rss_bytes()
    for _ in module.make_dataloader(ds, batch_size, shuffle=True, seed=0):
        peak = max(peak, rss_bytes())
    return peak - base, len(pickle.dumps(ds))


def loader_rates(module, path, bs, slow_batches):
    """samples/s of each route of one version of pytorch_datasets."""
    prob, energy2d = module.ProbabilityDataset(path), module.EnergyDataset2D(path)
    out = {
        "make_dataloader, ProbabilityDataset": rate(module.make_dataloader(prob, bs, shuffle=True)),
        "make_dataloader, EnergyDataset2D": rate(module.make_dataloader(energy2d, bs, shuffle=True)),
        "plain DataLoader, ProbabilityDataset": rate(DataLoader(prob, batch_size=bs, shuffle=True), slow_batches),
        "plain DataLoader, EnergyDataset2D": rate(DataLoader(energy2d, batch_size=bs, shuffle=True), slow_batches),
    }
    mem = module.ProbabilityDataset(path, in_memory=True)
    out["make_dataloader, in_memory=True, ProbabilityDataset"] = rate(module.make_dataloader(mem, bs, shuffle=True))
    return out


def step_seconds(batch, hidden, bf16, steps=3):
    """Seconds per forward + backward + Adam step of the causal probability GRU on ``batch``."""
    from probability_models import ProbabilityModel

    torch.manual_seed(0)
    model = ProbabilityModel(hidden_size=hidden)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for _ in range(steps + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.per_sample_loss(batch)[0].mean()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def load_module(path):
    spec = importlib.util.spec_from_file_location("baseline_datasets", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # pickle finds its classes
    spec.loader.exec_module(module)
    return module


def make_file(n_samples, folder):
    path = Path(folder) / "bench.hdf5"
    t0 = time.perf_counter()
    # a child process: JAX is not wanted in this one. Reading speed does not depend on the
    # physics, so a short burn-in will do.
    subprocess.run([sys.executable, str(ROOT / "generate_ising.py"), "--n_x", "8", "--n_y", "8", "--beta", "0.25",
                    "--n_samples", str(n_samples), "--burn_in", "10", "--thin", "1", "--filename", str(path),
                    "--no_progress"], check=True, stdout=subprocess.DEVNULL)
    print(f"generated {n_samples:,} 8 x 8 lattices ({path.stat().st_size / 1e6:.0f} MB) in "
          f"{time.perf_counter() - t0:.1f} s")
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file", default=None, help="existing HDF5 file to read (default: generate one)")
    p.add_argument("--n_samples", type=int, default=1_000_000, help="lattices to generate")
    p.add_argument("--batch_size", type=int, default=512)
    p.add_argument("--slow_batches", type=int, default=60, help="batches timed on the slow routes")
    p.add_argument("--baseline", default=None, help="another pytorch_datasets.py to time in the same run")
    args = p.parse_args(argv)
    bs = args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.file) if args.file else make_file(args.n_samples, tmp)
        print(f"cpus {os.cpu_count()}, torch {torch.__version__} ({torch.get_num_threads()} threads), batch {bs}; "
              f"load average {os.getloadavg()[0]:.1f} (a shared machine: compare ratios)\n")
        versions = {"new": pytorch_datasets}
        if args.baseline:
            versions["baseline"] = load_module(args.baseline)
        # memory first, before anything else makes this process large
        memory = {name: rss_growth(m, path, bs) for name, m in versions.items()}
        rates = {name: loader_rates(m, path, bs, args.slow_batches) for name, m in versions.items()}
        reference = rate(DataLoader(ReferenceStyleDataset(path), batch_size=bs, shuffle=True), args.slow_batches)
        batch = next(iter(pytorch_datasets.make_dataloader(pytorch_datasets.ProbabilityDataset(path), bs)))
        steps = {(h, bf): step_seconds(batch, h, bf) for h in (32, 64) for bf in (False, True)}
        report(args, path, memory, rates, reference, steps)


def report(args, path, memory, rates, reference, steps):
    bs, size = args.batch_size, path.stat().st_size
    names = list(rates)
    print(f"{'samples/s':<52s}" + "".join(f"{n:>12s}" for n in names) + "   / reference loop" +
          ("   new / baseline" if len(names) > 1 else ""))
    for route in rates["new"]:
        values = [rates[n][route] for n in names]
        line = f"{route:<52s}" + "".join(f"{v:>12.3g}" for v in values) + f"   {values[0] / reference:>16.1f}"
        print(line + (f"   {values[0] / values[1]:>15.2f}" if len(values) > 1 else ""))
    print(f"{'reference-style loop (ProbabilityDataset items)':<52s}{reference:>12.3g}\n")
    print("training step at batch", bs, "(causal probability GRU, forward + backward + Adam):")
    load_s = bs / rates["new"]["make_dataloader, ProbabilityDataset"]
    for (hidden, bf16), s in steps.items():
        print(f"  hidden {hidden:>3d} {'bf16 autocast' if bf16 else 'float32      '}  {s * 1e3:8.1f} ms   "
              f"loading a batch: {100 * load_s / s:6.3f}% of it")
    print("\nresident memory over a make_dataloader pass (file", f"{size / 2**20:.0f} MiB):")
    for name, (growth, book) in memory.items():
        print(f"  {name:<10s} RSS +{growth / 2**20:6.1f} MiB ({growth / size:.3f} of the file); "
              f"bookkeeping {book:,} bytes (file / bookkeeping {size / book:,.0f})")
    fastest = min(steps.values())
    new = rates["new"]
    checks = [
        ("(a) loading a batch / fastest training step < 5%", load_s / fastest, load_s / fastest < 0.05),
        ("(b) make_dataloader / reference loop >= 10", new["make_dataloader, ProbabilityDataset"] / reference,
         new["make_dataloader, ProbabilityDataset"] >= 10 * reference),
        ("(c) plain DataLoader / reference loop >= 2", new["plain DataLoader, ProbabilityDataset"] / reference,
         new["plain DataLoader, ProbabilityDataset"] >= 2 * reference),
        ("(d) RSS growth / file < 0.25 (file > 20 x bookkeeping)", memory["new"][0] / size,
         memory["new"][0] < size / 4 and size > 20 * memory["new"][1]),
    ]
    print("\ntargets:")
    for label, value, ok in checks:
        print(f"  {label:<56s} {value:10.4g}   {'OK' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
