"""Train an energy model (`energy_models.EnergyModel`) on Ising lattices.

    python energy_trainer.py --bidirectional --attention --two_d        # the full extended model
    python energy_trainer.py --help                                     # every flag and its default

Beta, lattice size and Ising model come from the training file's metadata and are stored
in the checkpoint. Output: runs/energy/<config name>/ with best.ckpt, metrics.json and
TensorBoard logs (see trainer_common.py).
"""
from __future__ import annotations

from trainer_common import build_parser, run

FAMILY = "energy"


def main(argv=None):
    parser = build_parser(FAMILY, __doc__.split("\n\n")[0])
    return run(FAMILY, "energy_models:EnergyModel", parser, argv)


if __name__ == "__main__":
    main()
