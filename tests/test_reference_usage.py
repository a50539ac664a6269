"""What a user of the published reference types, end to end, on tiny files made by the real
generator (conftest `ising_file`): the reference's trainer flags -> best checkpoint -> one of
the reference's class names loaded from it -> dataset items through a plain
`torch.utils.data.DataLoader` -> `model(...)` -> the reference's loss (BCEWithLogitsLoss or
L1Loss), which must be finite and equal to the model's own training loss on that batch."""
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

import energy_trainer
import probability_trainer
from energy_models import EnergyAttentionRNN2D, EnergyRNN
from probability_models import ProbabilityAttentionRNN2D, ProbabilityRNN
from pytorch_datasets import EnergyDataset, EnergyDataset2D, ProbabilityDataset, ProbabilityDataset2D

L = 16  # 4 x 4 lattices
BATCH = 8
TRAINERS = {"energy": energy_trainer.main, "probability": probability_trainer.main}
# (family, extra reference flags, preset, dataset): 1D, 2D and attention presets of both families
CASES = {
    "ProbabilityRNN": ("probability", [], ProbabilityRNN, ProbabilityDataset),
    "ProbabilityAttentionRNN2D-lstm": ("probability", ["--lstm", "--attention", "--two_d"], ProbabilityAttentionRNN2D,
                                       ProbabilityDataset2D),
    "ProbabilityRNN-bidirectional": ("probability", ["--bidirectional"], ProbabilityRNN, ProbabilityDataset),
    "EnergyRNN": ("energy", [], EnergyRNN, EnergyDataset),
    "EnergyAttentionRNN2D-bidirectional": ("energy", ["--attention", "--two_d", "--bidirectional"],
                                           EnergyAttentionRNN2D, EnergyDataset2D),
}


@pytest.fixture(scope="module")
def files(ising_file):
    """The same tiny files as tests/test_trainers.py (the session cache makes them once)."""
    kw = dict(n_x=4, n_y=4, burn_in=20)
    return {
        "train": ising_file("train_data.hdf5", betas=(0.25,), n_samples=96, seed=1, **kw),
        "val": [ising_file("val_data_beta_dot25.hdf5", betas=(0.25,), n_samples=32, seed=2, **kw),
                ising_file("val_data_beta_dot125.hdf5", betas=(0.125,), n_samples=32, seed=3, **kw),
                ising_file("val_data_beta_dot5.hdf5", betas=(0.5,), n_samples=32, seed=4, **kw)],
        "test": ising_file("test_data.hdf5", betas=(0.25,), n_samples=37, seed=5, **kw),
    }


def _train_with_reference_flags(files, family, extra, out):
    """The reference's flags, spelled as its users spell them, plus our tiny-run limits."""
    val_main, val_2, val_3 = map(str, files["val"])
    argv = ["--train_datapath", str(files["train"]), "--main_val_datapath", val_main, "--val_2_datapath", val_2,
            "--val_3_datapath", val_3, "--test_datapath", str(files["test"]), "--num_workers", "0",
            "--input_size", "1", "--output_size", "1", "--hidden_size", "8", "--num_layers", "1", "--n_heads", "1",
            "--lr", "3e-3", "--batch_size", "16", "--max_epochs", "1", *extra,
            "--limit_train_batches", "2", "--limit_val_batches", "2", "--accelerator", "cpu", "--devices", "1",
            "--no-progress_bar", "--output_dir", str(out)]
    metrics = TRAINERS[family](argv)
    assert metrics["data"]["val_paths"] == [val_main, val_2, val_3]
    assert metrics["data"]["test_path"] == str(files["test"]) and metrics["data"]["train_path"] == str(files["train"])
    assert metrics["config"]["cell"] == ("lstm" if "--lstm" in extra else "gru")
    ckpt = Path(metrics["best_checkpoint"])
    assert ckpt.is_file() and (ckpt.parent / "metrics.json").is_file()
    return ckpt


def _one_shuffled_batch(dataset_cls, path):
    loader = DataLoader(dataset_cls(path), batch_size=BATCH, shuffle=True)
    return next(iter(loader))


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_flags_checkpoint_preset_plain_loader_and_loss(files, tmp_path, case):
    family, extra, preset, dataset_cls = CASES[case]
    ckpt = _train_with_reference_flags(files, family, extra, tmp_path)
    model = preset.load_from_checkpoint(ckpt, map_location="cpu")
    assert type(model) is preset
    hp = model.hparams
    assert (hp.attention, hp.two_d) == ("Attention" in preset.__name__, "2D" in preset.__name__)
    assert hp.bidirectional == ("--bidirectional" in extra) and (hp.n_x, hp.n_y, hp.beta) == (4, 4, 0.25)

    torch.manual_seed(0)
    batch = _one_shuffled_batch(dataset_cls, files["test"])
    inputs, target = list(batch[:-1]), batch[-1]
    if family == "probability" and hp.bidirectional:
        # the conditional model p(s_i | all other spins) refuses the causal input spins[:-1] ...
        with pytest.raises(ValueError, match=r"reads the whole lattice: pass the full snake sequence\(s\) \(B, 16"):
            model(*inputs)
        # ... and reads the whole sequence, rebuilt as the error message says, target every spin
        inputs = [torch.cat([inputs[0][:, :1], 2 * target - 1], dim=1)]
        target = (inputs[0] + 1) / 2
    out = model(*inputs)
    weights = None
    if hp.attention:
        out, weights = out
    n_out = (L if hp.bidirectional else L - 1) if family == "probability" else None
    if family == "probability":
        assert out.shape == ((BATCH, 2, n_out, 1) if hp.two_d else (BATCH, n_out, 1)) == target.shape
        reference_loss = nn.BCEWithLogitsLoss()(out, target)
    else:
        assert out.shape == (BATCH, 1) == target.shape
        reference_loss = nn.L1Loss()(out, target)
    if weights is not None:
        n_in = inputs[0].shape[1]
        assert weights.shape == ((BATCH, 2, n_in, n_in) if hp.two_d else (BATCH, n_in, n_in))
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))

    own_loss = model.per_sample_loss(batch)[0].mean()
    assert torch.isfinite(reference_loss)
    torch.testing.assert_close(reference_loss, own_loss.to(reference_loss.dtype), rtol=1e-5, atol=1e-6)
    # a reference training step (loss on model(x)) reaches every parameter
    reference_loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("preset", [EnergyRNN, EnergyAttentionRNN2D])
def test_energy_presets_refuse_the_reference_s_truncated_input(preset):
    """The reference fed energy models spins[:-1], dropping the last spin the energy depends on."""
    model = preset(hidden_size=8, n_x=4, n_y=4)
    x = torch.ones(2, L - 1, 1)
    with pytest.raises(ValueError, match=r"reads the whole lattice.*the energy depends on every spin"):
        model(*[x] * len(model.orders))
