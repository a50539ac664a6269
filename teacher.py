"""Label-free training, the paper's pipeline: a trained probability model labels the lattices.

    python energy_trainer.py --architecture ednn --teacher runs/probability/GRU_1L_1H_hid128

A probability model trained on Monte Carlo lattices (no energies) assigns each lattice an
energy: a causal model E_q = -(1/beta) log q(s), which is the energy up to the constant
(1/beta) log Z, so the student is trained on batch-centred labels (target "centred"); the
conditional model gives absolute energies from its local fields (target "absolute"). The
student, an extensive model, then carries what the teacher learned on small lattices to any
size. No `true_energies` are read: the training and validation labels come from the teacher,
and the test metrics compare with the exact energies of the test lattices (`ising.energy`),
which is scoring, not training.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import ising
from pytorch_datasets import IsingDataModule


def load_teacher(run_dir):
    """(probability model in eval mode, the student's target kind) from a run directory."""
    from probability_models import ProbabilityModel

    ckpt = Path(run_dir) / "best.ckpt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"--teacher {run_dir}: no best.ckpt there; give a run directory of "
                                "probability_trainer.py (runs/probability/<config>/)")
    model = ProbabilityModel.load_from_checkpoint(str(ckpt), map_location="cpu").eval()
    return model, "absolute" if model.hparams.bidirectional else "centred"


@torch.no_grad()
def teacher_energies(teacher, grids: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """grids int8 (N, n_x, n_y) -> the teacher's energies float32 (N,)."""
    out = [teacher.predict_energy(torch.as_tensor(grids[i:i + batch_size])).float()
           for i in range(0, len(grids), batch_size)]
    return torch.cat(out).numpy()


class TeacherDataModule(IsingDataModule):
    """IsingDataModule whose energies are the teacher's (train and validation) or the exact ones
    (test): items (grids int8 (n_x, n_y), energy float32), read from `ising_grids` only."""

    def __init__(self, teacher, **kwargs):
        super().__init__(family="energy", two_d=False, **kwargs)
        self.teacher = teacher
        self._labelled = {}

    def _loader(self, path, shuffle=False) -> DataLoader:
        key = (str(path), path == self.test_path)
        if key not in self._labelled:
            with h5py.File(path, "r") as f:
                grids = f["ising_grids"][()]
                kind = str(f.attrs.get("model", self.teacher.hparams.model))
            labels = ising.energy(grids, kind) if key[1] else teacher_energies(self.teacher, grids)
            self._labelled[key] = TensorDataset(torch.as_tensor(grids), torch.as_tensor(labels, dtype=torch.float32))
        kw = self.loader_kwargs
        return DataLoader(self._labelled[key], batch_size=kw["batch_size"], shuffle=shuffle,
                          generator=torch.Generator().manual_seed(kw["seed"]) if shuffle else None)
