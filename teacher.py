"""Label-free training, the paper's pipeline: a trained probability model labels the lattices.

    python energy_trainer.py --architecture ednn --teacher runs/probability/GRU_1L_1H_hid128

A probability model trained on Monte Carlo lattices (no energies) assigns each lattice an
energy: the causal model E_q = -(1/beta) log q(s), which is the energy up to the constant
(1/beta) log Z, so the student is trained on batch-centred labels (target "centred"); the
conditional model gives absolute energies from its local fields (target "absolute"): the
teacher's `absolute_energy`. The student, an extensive model, then carries what the teacher
learned on small lattices to any size. No `true_energies` are read: the training and
validation labels come from the teacher, and the test metrics compare with the exact energies
of the test lattices (`ising.energy`; `potts.energy` for Potts files, whose teacher must be a
Potts model of the same q), which is scoring, not training.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from checks import UserError
from data_files import dataset, open_h5, read_metadata
from pytorch_datasets import IsingDataModule, ProbabilityDataset
from runs import load_probability_model, predict
from sequence_blocks import exact_energy


def load_teacher(run_dir):
    """(probability model in eval mode, the student's target: "absolute" or "centred")."""
    model, _ = load_probability_model(run_dir, "--teacher")
    return model, "absolute" if model.absolute_energy else "centred"


class TeacherDataModule(IsingDataModule):
    """IsingDataModule whose energies are the teacher's (train and validation) or the exact ones
    (test): items (grids int8 (n_x, n_y), energy float32), read from `ising_grids` only."""

    def __init__(self, teacher, **kwargs):
        super().__init__(family="energy", two_d=False, **kwargs)
        self.teacher = teacher
        self._labelled = {}

    def check_files(self) -> dict:
        """As IsingDataModule's (lattices only: no energies are read), and the teacher must have
        been trained on lattices of the training file's size and Hamiltonian: it labels them."""
        train = super().check_files()
        hp = self.teacher.hparams
        q, teacher_q = train["q"], int(hp.get("q", 2))  # a checkpoint without q is Ising
        if q != teacher_q:
            kind = lambda q: "Ising" if q == 2 else f"q = {q} Potts"  # noqa: E731
            raise UserError(f"--teacher: the teacher was trained on {kind(teacher_q)} lattices but {self.train_path} "
                            f"holds {kind(q)} lattices; use a teacher of the same model")
        if (int(hp.n_x), int(hp.n_y)) != (train["n_x"], train["n_y"]):
            raise UserError(f"--teacher: the teacher was trained on {hp.n_x} x {hp.n_y} lattices but {self.train_path} "
                            f"holds {train['n_x']} x {train['n_y']}; it labels lattices of its own size only")
        if train["hamiltonian"] is not None and train["hamiltonian"] != hp.hamiltonian:
            raise UserError(f"--teacher: the teacher was trained on {hp.hamiltonian} lattices but {self.train_path} "
                            f"holds {train['hamiltonian']}; use a teacher of the same Hamiltonian")
        return train

    def _check_dataset(self, path) -> None:
        ProbabilityDataset(path)  # the lattices alone

    def _loader(self, path, shuffle=False) -> DataLoader:
        key = (str(path), path == self.test_path)
        if key not in self._labelled:
            with open_h5(path) as f:
                grids = dataset(f, "ising_grids")[()]
            hamiltonian = read_metadata(path)["hamiltonian"] or self.teacher.hparams.hamiltonian
            q = int(self.teacher.hparams.get("q", 2))
            labels = exact_energy(grids, hamiltonian, q) if key[1] else predict(self.teacher, grids, batch_size=4096)
            self._labelled[key] = TensorDataset(torch.as_tensor(grids),
                                                torch.as_tensor(np.asarray(labels), dtype=torch.float32))
        kw = self.loader_kwargs
        return DataLoader(self._labelled[key], batch_size=kw["batch_size"], shuffle=shuffle,
                          generator=torch.Generator().manual_seed(kw["seed"]) if shuffle else None)
