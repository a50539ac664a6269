"""Training throughput on CPU through the real path (IsingDataModule -> Lightning Trainer.fit),
float32 against bf16-mixed side by side.

For the full extended energy model (GRU + bidirectional + attention + 2D) and the original
probability model (causal GRU), at hidden sizes 64 (the CPU profile), 128 and 512: training
samples per second (data loading + forward + backward + Adam step; the first batch is a
discarded warm-up) under `--precision 32-true` and `bf16-mixed` (what `--precision auto`
picks on a CPU with native bf16), with the same weights and batches; the ratio bf16 / float32;
and, from the same data module, the loader's own samples per second (loader share = loader
time per batch / training step time).

    python benchmarks/bench_training.py                       # about 5 minutes on 2 cores
    python benchmarks/bench_training.py --hidden 128 --seconds 5 --precisions bf16-mixed
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 512], help="hidden sizes to measure")
    p.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"], help="Lightning precisions")
    p.add_argument("--batch_size", type=int, default=512, help="the reference's batch size")
    p.add_argument("--batches", type=int, default=24, help="at most this many timed batches per configuration")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="time budget per configuration (at least 2 timed batches are run)")
    p.add_argument("--n_x", type=int, default=8)
    p.add_argument("--n_y", type=int, default=8)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)

    warnings.filterwarnings("ignore")
    import lightning.pytorch as pl
    import torch

    import generate_ising
    from energy_models import EnergyModel
    from probability_models import ProbabilityModel
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    class BatchTimer(pl.Callback):
        """Per-batch wall time (since the previous batch ended: loading + step); stops the
        epoch when the time budget is spent."""

        def __init__(self, seconds, min_batches):
            self.seconds, self.min_batches = seconds, min_batches
            self.times, self.sizes = [], []

        def on_train_epoch_start(self, trainer, pl_module):
            self._last = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            now = time.perf_counter()
            self.times.append(now - self._last)
            self.sizes.append(int(batch[0].shape[0]))
            self._last = now
            timed = self.times[1:]
            if len(timed) >= self.min_batches and sum(timed) > self.seconds:
                trainer.should_stop = True

    configs = [
        ("extended energy (GRU+Bi+Attn+2D)", "energy", EnergyModel,
         dict(bidirectional=True, attention=True, two_d=True)),
        ("original probability (GRU)", "probability", ProbabilityModel, dict()),
    ]
    n_samples = args.batch_size * (args.batches + 2)
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").is_file() else set()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; native bf16: "
          f"{sorted(flags & {'avx512_bf16', 'amx_bf16'}) or 'no'}; lattice {args.n_x} x {args.n_y}, "
          f"batch {args.batch_size}; timing up to {args.batches} batches or {args.seconds:g} s per configuration")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_train.hdf5"
        t0 = time.perf_counter()
        generate_ising.generate(path, n_x=args.n_x, n_y=args.n_y, betas=(0.25,), n_samples=n_samples, burn_in=20,
                                progress=False)
        print(f"data: {n_samples} lattices generated in {time.perf_counter() - t0:.1f} s\n")
        for label, family, cls, kwargs in configs:
            for hidden in args.hidden:
                for precision in args.precisions:
                    rows.append((label, hidden, precision, *time_config(
                        args, pl, torch, path, family, cls, kwargs, hidden, precision, BatchTimer)))
                    r = rows[-1]
                    print(f"{label:34s} hidden {hidden:4d} {precision:10s}: {r[3]:8.1f} samples/s "
                          f"({r[4]:.3f} s/batch); loader {r[5]:10.0f} samples/s, {r[3] / r[5]:.2%} of a step",
                          flush=True)
    by = {r[:3]: r[3] for r in rows}
    if len(args.precisions) == 2:
        a, b = args.precisions
        print(f"\nsamples/s, {a} | {b} | ratio {b} / {a} (same run):")
        for label, *_ in configs:
            for h in args.hidden:
                if (label, h, a) in by and (label, h, b) in by:
                    print(f"  {label:34s} hidden {h:4d}: {by[(label, h, a)]:8.1f} | {by[(label, h, b)]:8.1f} | "
                          f"{by[(label, h, b)] / by[(label, h, a)]:.2f}x")
    return 0


def time_config(args, pl, torch, path, family, cls, kwargs, hidden, precision, timer_cls):
    """(train samples/s, s/batch, loader samples/s) of one configuration and precision; the same
    seed gives the same initial weights and batches for every precision."""
    from pytorch_datasets import IsingDataModule

    pl.seed_everything(0, verbose=False)
    dm = IsingDataModule(family=family, two_d=kwargs.get("two_d", False), train_path=path,
                         val_paths=(path,), test_path=path, batch_size=args.batch_size)
    model = cls(hidden_size=hidden, n_x=args.n_x, n_y=args.n_y, **kwargs)
    timer = timer_cls(args.seconds, min_batches=2)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=args.batches + 1,
                         limit_val_batches=0, logger=False, enable_checkpointing=False, precision=precision,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
    trainer.fit(model, datamodule=dm)
    timed, sizes = timer.times[1:], timer.sizes[1:]
    it = iter(dm.train_dataloader())   # the loader alone: same module, batch size and number of batches
    next(it)
    t0, n = time.perf_counter(), 0
    for _ in range(len(timed)):
        n += int(next(it)[0].shape[0])
    return sum(sizes) / sum(timed), sum(timed) / len(timed), n / (time.perf_counter() - t0)


if __name__ == "__main__":
    sys.exit(main())
