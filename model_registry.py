"""Every model class a run can be made of, by name: the one registry of the models.

A run's metrics.json names its model's class as `module.Class` (`"class":
"energy_models.EnergyModel"`); the trainers pick the class from the family and `--architecture`
(`class_name`), and loading a run looks the name up (`model_class`). Light on purpose: the
classes are imported only when one is asked for, so the trainers' flags stay instant.
"""
from __future__ import annotations

import importlib

from checks import UserError

# `module.Class` -> (family, --architecture) of the trainer that makes it
MODEL_CLASSES = {
    "energy_models.EnergyModel": ("energy", "rnn"),
    "probability_models.ProbabilityModel": ("probability", "rnn"),
    "ednn.EDNNEnergyModel": ("energy", "ednn"),
}


def class_name(family: str, architecture: str = "rnn") -> str:
    """The `module.Class` a trainer of this family and architecture makes."""
    return next(name for name, made_by in MODEL_CLASSES.items() if made_by == (family, architecture))


def model_class(name: str):
    """The class named `module.Class` in MODEL_CLASSES; UserError for any other name."""
    if name not in MODEL_CLASSES:
        raise UserError(f"unknown model class {name!r}; runs are made by one of {', '.join(MODEL_CLASSES)}")
    module, _, cls = name.rpartition(".")
    return getattr(importlib.import_module(module), cls)
