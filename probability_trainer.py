"""Train a probability model (`probability_models.ProbabilityModel`) on Ising lattices.

    python probability_trainer.py                     # the original causal GRU model
    python probability_trainer.py --bidirectional     # conditional p(s_i | rest), pseudo-likelihood
    python probability_trainer.py --help              # every flag and its default

Beta, lattice size and Ising model come from the training file's metadata and are stored
in the checkpoint. Output: runs/probability/<config name>/ with best.ckpt, metrics.json and
TensorBoard logs (see trainer_common.py).
"""
from __future__ import annotations

from trainer_common import build_parser, run

FAMILY = "probability"


def main(argv=None):
    parser = build_parser(FAMILY, __doc__.split("\n\n")[0])
    return run(FAMILY, "probability_models:ProbabilityModel", parser, argv)


if __name__ == "__main__":
    main()
