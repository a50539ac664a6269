"""Training throughput on CPU, through the real path (IsingDataModule -> Lightning Trainer.fit).

For the full extended energy model (GRU + bidirectional + attention + 2D) and the original
probability model (causal GRU), at hidden sizes 128 and 512: training samples per second
(data loading + forward + backward + Adam step; the first batch is a discarded warm-up),
and, from the same data module and batch size in the same process, the data loader's own
samples per second, so the two can be compared (loader share = time the loader needs per
batch / time a training step takes).

    python benchmarks/bench_training.py                       # about 1-3 minutes on 2 cores
    python benchmarks/bench_training.py --hidden 128 --seconds 5
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
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 512], help="hidden sizes to measure")
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
    from pytorch_datasets import IsingDataModule

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
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; lattice {args.n_x} x {args.n_y}, "
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
                pl.seed_everything(0, verbose=False)
                dm = IsingDataModule(family=family, two_d=kwargs.get("two_d", False), train_path=path,
                                     val_paths=(path,), test_path=path, batch_size=args.batch_size)
                model = cls(hidden_size=hidden, n_x=args.n_x, n_y=args.n_y, **kwargs)
                timer = BatchTimer(args.seconds, min_batches=2)
                trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=args.batches + 1,
                                     limit_val_batches=0, logger=False, enable_checkpointing=False,
                                     enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
                trainer.fit(model, datamodule=dm)
                timed, sizes = timer.times[1:], timer.sizes[1:]
                train_rate = sum(sizes) / sum(timed)
                # the loader alone: same data module, same batch size, same number of batches (+ warm-up)
                loader = dm.train_dataloader()
                it = iter(loader)
                next(it)
                t0 = time.perf_counter()
                n = 0
                for _ in range(len(timed)):
                    n += int(next(it)[0].shape[0])
                load_rate = n / (time.perf_counter() - t0)
                rows.append((label, hidden, len(timed), sum(timed) / len(timed), train_rate, load_rate,
                             train_rate / load_rate))
                print(f"{label:34s} hidden {hidden:4d}: {train_rate:9.1f} samples/s train "
                      f"({sum(timed) / len(timed):.3f} s/batch over {len(timed)} batches); "
                      f"loader {load_rate:11.0f} samples/s; loader share of a step {train_rate / load_rate:.2%}",
                      flush=True)
    if len(rows) >= 2:
        print("\nratios (same run):")
        by = {(r[0], r[1]): r for r in rows}
        for label, *_ in configs:
            hs = [h for h in args.hidden if (label, h) in by]
            for a, b in zip(hs, hs[1:]):
                print(f"  {label}: hidden {a} is {by[(label, a)][4] / by[(label, b)][4]:.1f}x faster than hidden {b}")
        for h in args.hidden:
            e, o = by.get((configs[0][0], h)), by.get((configs[1][0], h))
            if e and o:
                print(f"  hidden {h}: the original probability model trains {o[4] / e[4]:.1f}x faster than the "
                      "extended energy model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
