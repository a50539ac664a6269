"""Train a probability model (`probability_models.ProbabilityModel`) on Ising lattices.

    python probability_trainer.py                     # the original causal GRU model
    python probability_trainer.py --bidirectional     # conditional p(s_i | rest), pseudo-likelihood
    python probability_trainer.py --help              # every flag and its default
    python probability_trainer.py --main_val_datapath data/val_data_beta_dot25.hdf5 --test_datapath data/test_data.hdf5
                                                      # the reference's flag names work too

Beta, lattice size and Ising model come from the training file's metadata and are stored
in the checkpoint. Output: runs/probability/<config name>/ with best.ckpt, metrics.json and
TensorBoard logs (the pipeline: trainer_common.py; the flags: trainer_flags.py).
"""
import trainer_common


def main(argv=None):
    return trainer_common.main("probability", __doc__, argv)


if __name__ == "__main__":
    main()
