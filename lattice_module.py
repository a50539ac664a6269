"""The Lightning base of every model: lattices in, energies out, and how they are trained.

`LatticeModule` is what the sequence models (`sequence_blocks.SequenceModule` ->
`energy_models.EnergyModel`, `probability_models.ProbabilityModel`) and the extensive model
(`ednn.EDNNEnergyModel`) share:

- the training, validation and test steps around the model's own
  `per_sample_loss(batch, with_energies) -> (loss (B,), predicted E (B,), true E (B,))`;
- the optimiser: Adam at `lr`, and its learning-rate schedule (`lr_schedule`);
- logging: `train/loss`; for validation loader k, `<val_names[k]>/loss` (index 0 is the main
  one, `val/loss`); `test/loss`, `test/rmse`, `test/rmse_centred`, `test/n_samples`;
- the test metrics, computed once over every test sample, gathered across processes (DDP
  padding duplicates dropped), with `ising.rmse` and `ising.centred_rmse`, the evaluation's own
  definitions; they also end up in `self.test_results`;
- `q`: 2 for Ising spins ±1, q for the states 0..q-1 of a q-state Potts model.

A model implements `predict_energy(grids) -> float32 (B,)` (grids (B, n_x, n_y), the one
prediction entry point), `absolute_energy` (E itself, or E up to a constant) and
`per_sample_loss`; it may replace `configure_optimizers` (the extensive model decays its rate
every epoch).

Learning-rate schedules (`lr_schedule`): "constant" (the reference's), or "cosine": a linear
warm-up over the first WARMUP_FRACTION of the optimiser steps, then half a cosine from lr down
to 0 at the last step of `max_epochs` (Lightning's `estimated_stepping_batches`), stepped per
batch. A decaying rate lets a run settle into its minimum instead of oscillating around it,
which is what makes the result of a run reproducible from seed to seed (README).
"""
from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch.utils.data import DistributedSampler

import ising

LR_SCHEDULES = ("constant", "cosine")
WARMUP_FRACTION = 0.02


def lr_factor(step: int, total: int, warmup_fraction: float = WARMUP_FRACTION) -> float:
    """The cosine schedule's multiplier of lr for optimiser step `step` (0-based) of `total`: a
    linear warm-up (step + 1) / w over the first w = max(1, round(warmup_fraction * total)) steps,
    then 0.5 (1 + cos(pi (step + 1 - w) / (total - w))), which reaches 0 at the last step
    (step = total - 1) and stays there."""
    warmup = max(1, round(warmup_fraction * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step + 1 - warmup) / max(total - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class LatticeModule(pl.LightningModule):
    """The base of every model; see the module docstring.

    Subclasses set `family` ("energy" | "probability"), call `save_hyperparameters()` in
    `__init__`, and implement `predict_energy`, `absolute_energy` and `per_sample_loss`.
    """

    family = "?"

    def __init__(self):
        super().__init__()
        self.val_names = ["val"]  # the trainer sets one name per validation loader
        self.test_results: dict = {}
        self._test_parts: list = []
        self._test_seen = 0

    @property
    def q(self) -> int:
        """2 for an Ising model (also checkpoints from before q existed), q for a Potts model."""
        return int(self.hparams.get("q", 2))

    @property
    def absolute_energy(self) -> bool:
        """True if `predict_energy` is E itself, False if E plus an unknown constant."""
        raise NotImplementedError

    def predict_energy(self, grids, return_attention: bool = False):
        """grids (B, n_x, n_y) ±1 (Potts: states 0..q-1), any dtype -> energies float32 (B,)
        (+ the attention weights, a dict, with `return_attention`)."""
        raise NotImplementedError

    def configure_optimizers(self):
        """Adam at `lr`; with lr_schedule="cosine" its rate is lr x `lr_factor(step, total)`, stepped
        after every optimiser step, total = the fit's optimiser steps (`estimated_stepping_batches`:
        it respects max_epochs and limit_train_batches)."""
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        if self.hparams.get("lr_schedule", "constant") == "constant":
            return optimizer
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError("lr_schedule='cosine' needs a finite number of steps: set max_epochs")
        total = max(int(total), 1)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # -- steps ------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        per_sample, _, _ = self.per_sample_loss(batch, with_energies=False)
        loss = per_sample.mean()
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=per_sample.shape[0])
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        loss, _, _ = self.per_sample_loss(batch, with_energies=False)
        name = self.val_names[dataloader_idx] if dataloader_idx < len(self.val_names) else f"val_{dataloader_idx}"
        self.log(f"{name}/loss", loss.mean(), on_step=False, on_epoch=True, prog_bar=dataloader_idx == 0,
                 sync_dist=True, add_dataloader_idx=False, batch_size=loss.shape[0])

    def on_test_epoch_start(self):
        self._test_parts, self._test_seen = [], 0

    def _unique_mask(self, n: int) -> torch.Tensor:
        """Drop the samples DistributedSampler repeats to pad the last ranks (no shuffle in
        test: rank r gets padded positions r, r + W, r + 2W, ..., positions >= N repeat)."""
        loaders = self.trainer.test_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        # the sampler that orders the samples: inside the batch sampler when there is one
        sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None) or getattr(loader, "sampler", None)
        mask = torch.ones(n, dtype=torch.bool, device=self.device)
        if isinstance(sampler, DistributedSampler) and not sampler.drop_last and not sampler.shuffle:
            pos = sampler.rank + (self._test_seen + torch.arange(n, device=self.device)) * sampler.num_replicas
            mask = pos < len(sampler.dataset)
        self._test_seen += n
        return mask

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        # float32 whatever the training precision: the test metrics are the model's own numbers,
        # the ones predict_energy and the evaluation compute
        with torch.autocast(self.device.type, enabled=False):
            loss, pred, true = self.per_sample_loss(batch, with_energies=True)
        keep = self._unique_mask(loss.shape[0]).double()
        self._test_parts.append(torch.stack([loss.double(), pred.double(), true.double(), keep]))

    def on_test_epoch_end(self):
        parts = torch.cat(self._test_parts, dim=1) if self._test_parts else torch.zeros(4, 0, dtype=torch.float64)
        if self.trainer.world_size > 1:  # every rank holds as many samples (DistributedSampler pads)
            parts = self.all_gather(parts).transpose(0, 1).reshape(4, -1)
        loss, pred, true, keep = parts.cpu().numpy()
        keep = keep > 0.5
        if not keep.any():
            return
        results = {"test/loss": float(loss[keep].mean()), "test/rmse": ising.rmse(pred[keep], true[keep]),
                   "test/rmse_centred": ising.centred_rmse(pred[keep], true[keep]), "test/n_samples": int(keep.sum())}
        for key, value in results.items():
            self.log(key, float(value), sync_dist=False)  # already identical on every rank
        self.test_results = {k.split("/", 1)[1]: v for k, v in results.items()}
