"""Train an energy model (`energy_models.EnergyModel`) on Ising lattices.

    python energy_trainer.py --bidirectional --attention --two_d        # the full extended model
    python energy_trainer.py --help                                     # every flag and its default
    python energy_trainer.py --train_datapath data/train_data.hdf5 --lstm   # the reference's flag names work too

Beta, lattice size and Ising model come from the training file's metadata and are stored
in the checkpoint. Output: runs/energy/<config name>/ with best.ckpt, metrics.json and
TensorBoard logs (the pipeline: trainer_common.py; the flags: trainer_flags.py).
"""
import trainer_common


def main(argv=None):
    return trainer_common.main("energy", __doc__, argv)


if __name__ == "__main__":
    main()
