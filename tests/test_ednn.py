"""ednn.py: tiling, periodic windows, translation invariance, transfer to larger lattices,
checkpoints, the two kinds of batches and bad hyper-parameters."""
import h5py
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ising
import ednn
from ednn import EDNNEnergyModel
from pytorch_datasets import EnergyDataset
from runs import config_name
from sequence_blocks import grids_to_sequences


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: extra threads only wait for each other (10x slower on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_grids(n, n_x, n_y, seed=0):
    """int8 (n, n_x, n_y) uniformly random ±1: every window occurs, at every size."""
    rng = np.random.default_rng(seed)
    return torch.as_tensor(rng.choice(np.array([-1, 1], np.int8), size=(n, n_x, n_y)))


def model(**kw):
    torch.manual_seed(kw.pop("seed", 0))
    return EDNNEnergyModel(**{"hidden_size": 8, "num_layers": 2, **kw})


@pytest.mark.parametrize("focus, context, size", [(1, 1, (5, 7)), (2, 1, (6, 4)), (2, 0, (4, 4)), (1, 3, (2, 3))])
def test_tile_energy_is_the_network_on_the_periodic_window(focus, context, size):
    # each tile's window cut out by explicit modular indexing, fed to the network without
    # padding: the conv's stride, alignment and wrap-around must reproduce it tile by tile
    m = model(focus=focus, context=context, n_x=4, n_y=4)
    g = random_grids(3, *size)
    with torch.no_grad():
        tiles = m.tile_energies(g)
        assert tiles.shape == (3, size[0] // focus, size[1] // focus)
        w = focus + 2 * context
        for tx in range(size[0] // focus):
            for ty in range(size[1] // focus):
                rows = (tx * focus - context + np.arange(w)) % size[0]
                cols = (ty * focus - context + np.arange(w)) % size[1]
                window = g[:, rows][:, :, cols].float().unsqueeze(1)
                torch.testing.assert_close(m.tile_net(window).reshape(3), tiles[:, tx, ty])
        torch.testing.assert_close(m.predict_energy(g), tiles.sum(dim=(1, 2)))
        assert m.predict_energy(g).dtype == torch.float32


def test_translation_invariance():
    g = random_grids(4, 8, 6)
    m1 = model(focus=1, context=2)
    m2 = model(focus=2, context=1)
    with torch.no_grad():
        e1, e2 = m1.predict_energy(g), m2.predict_energy(g)
        for dx, dy in [(1, 0), (0, 1), (3, 5), (7, 2)]:
            torch.testing.assert_close(m1.predict_energy(torch.roll(g, (dx, dy), dims=(1, 2))), e1)
        for dx, dy in [(2, 0), (0, 4), (6, 2)]:
            torch.testing.assert_close(m2.predict_energy(torch.roll(g, (dx, dy), dims=(1, 2))), e2)
        # focus 2 tiles the lattice: a shift by one site regroups the sites (an untrained
        # network then gives another energy), which is why only multiples of f are symmetries
        assert not torch.allclose(m2.predict_energy(torch.roll(g, 1, dims=1)), e2)


@pytest.mark.parametrize("focus, size", [(1, (1, 1)), (1, (3, 17)), (1, (64, 64)), (2, (2, 2)), (2, (10, 24))])
def test_runs_on_other_sizes_and_is_extensive(focus, size):
    # A periodic lattice repeated k_x x k_y times shows every window of the original k_x k_y
    # times, so the energy must scale exactly; zero padding or a size-aware model would not.
    m = model(focus=focus, context=2, n_x=8, n_y=8)
    g = random_grids(3, *size)
    with torch.no_grad():
        e = m.predict_energy(g)
        assert e.shape == (3,) and torch.isfinite(e).all()
        torch.testing.assert_close(m.predict_energy(g.repeat(1, 2, 3)), 6 * e, rtol=1e-5, atol=1e-4)


def zero_padded(x, c):
    """The broken model's padding: zeros instead of the spins across the boundary."""
    return F.pad(x, (c, c, c, c))


def fit_and_transfer(model_name, steps=200):
    """Fit exact energies of random 4 x 4 and 6 x 6 lattices; per-site RMSE on 12 x 12."""
    m = model(hidden_size=16, num_layers=1, hamiltonian=model_name)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    data = [random_grids(256, n, n, seed=n) for n in (4, 6)]
    labels = [torch.as_tensor(ising.energy(g.numpy(), model_name), dtype=torch.float32) for g in data]
    for step in range(steps):
        k = step % 2
        loss, _, _ = m.per_sample_loss((data[k], labels[k]))
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    test = random_grids(256, 12, 12, seed=12)
    with torch.no_grad():
        err = m.predict_energy(test).double().numpy() - ising.energy(test.numpy(), model_name)
    return float(np.sqrt(np.mean(err**2))) / 144


@pytest.mark.parametrize("model_name", ising.HAMILTONIANS)
def test_small_lattice_fit_transfers_to_12x12(model_name, monkeypatch):
    # measured: 0.0040 (ISING1) and 0.0062 (ISING2) per site; with zero padding 0.047 and 0.057
    assert fit_and_transfer(model_name) < 0.015
    # the same recipe with zero padding cannot see the bonds across the boundary: it fails
    monkeypatch.setattr(ednn, "periodic_pad", zero_padded)
    assert fit_and_transfer(model_name) > 0.03


def test_both_batch_kinds_and_forward(ising_file):
    path = ising_file("ednn.hdf5", n_samples=32, n_x=4, n_y=6)
    x, energy = EnergyDataset(path)[np.arange(32)]  # rows snake (32, 24, 1), (32, 1)
    with h5py.File(path) as f:
        grids = torch.as_tensor(f["ising_grids"][:32])
    m = model(n_x=4, n_y=6)
    loss_seq, pred_seq, label = m.per_sample_loss((x, energy))
    loss_grid, pred_grid, _ = m.per_sample_loss((grids, energy))
    torch.testing.assert_close(pred_seq, pred_grid)
    torch.testing.assert_close(loss_seq, loss_grid)
    torch.testing.assert_close(label, torch.as_tensor(ising.energy(grids.numpy()), dtype=torch.float32))
    torch.testing.assert_close(m(grids_to_sequences(grids)), pred_grid.unsqueeze(-1))


def test_centred_target_ignores_a_constant_in_the_labels():
    g = random_grids(16, 4, 4)
    e = torch.as_tensor(ising.energy(g.numpy()), dtype=torch.float32)
    centred, absolute = model(target="centred"), model(target="absolute")
    torch.testing.assert_close(centred.per_sample_loss((g, e + 100.0))[0], centred.per_sample_loss((g, e))[0])
    assert not torch.allclose(absolute.per_sample_loss((g, e + 100.0))[0], absolute.per_sample_loss((g, e))[0])


def test_checkpoint_round_trip_and_test_metrics(tmp_path):
    g = random_grids(64, 6, 6)
    e = torch.as_tensor(ising.energy(g.numpy(), "ISING2"), dtype=torch.float32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(g, e), batch_size=16)
    m = model(focus=2, context=1, hidden_size=6, num_layers=3, loss="l1", target="centred", lr=2e-3,
              lr_decay=0.5, beta=0.3, n_x=6, n_y=6, hamiltonian="ISING2")
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", devices=1)
    trainer.fit(m, loader)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(2e-3 * 0.5**2)  # decayed per epoch
    trainer.test(m, loader, verbose=False)
    with torch.no_grad():
        d = (m.predict_energy(g) - e).double()
    assert m.test_results["rmse"] == pytest.approx(float(d.pow(2).mean().sqrt()), rel=1e-6)
    path = tmp_path / "ednn.ckpt"
    trainer.save_checkpoint(path)
    loaded = EDNNEnergyModel.load_from_checkpoint(path, map_location="cpu")
    assert dict(loaded.hparams) == dict(m.hparams)
    big = random_grids(4, 16, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict_energy(big), m.predict_energy(big))


@pytest.mark.parametrize("kwargs, message", [
    (dict(focus=0), "focus must be a positive integer"),
    (dict(focus=1.5), "focus must be a positive integer"),
    (dict(hidden_size="16"), "hidden_size must be a positive integer"),
    (dict(num_layers=True), "num_layers must be a positive integer"),
    (dict(context=-1), "context must be an integer >= 0"),
    (dict(hidden_size=0), "hidden_size"),
    (dict(num_layers=0), "num_layers"),
    (dict(focus=3, n_x=8), "must be tiled by focus 3"),
    (dict(loss="l2"), "loss must be one of"),
    (dict(target="centered"), "target must be one of"),
    (dict(lr=0.0), "lr must be a positive number"),
    (dict(lr="fast"), "lr must be a positive number"),
    (dict(beta=float("nan")), "beta must be a positive number"),
    (dict(lr_decay=1.5), "lr_decay must be in"),
    (dict(hamiltonian="ISING3"), "hamiltonian must be one of ISING1, ISING2"),
])
def test_bad_hyper_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EDNNEnergyModel(**kwargs)


def test_bad_inputs():
    m = model(focus=2)
    with pytest.raises(ValueError, match="multiples of focus 2"):
        m.predict_energy(random_grids(2, 6, 5))
    with pytest.raises(ValueError, match="multiples of focus"):
        m.predict_energy(torch.ones(6, 6))
    g = random_grids(4, 4, 4)
    with pytest.raises(ValueError, match="one energy per lattice"):
        m.per_sample_loss((g, torch.zeros(4, 2)))


def test_config_name():
    assert config_name(dict(model(focus=2, context=1, hidden_size=16).hparams)) == "EDNN_F2_C1_hid16x2"
    assert config_name({**model().hparams, "loss": "l1", "target": "centred"}) == "EDNN_F1_C1_hid8x2_L1_Centred"
    assert config_name({**model().hparams, "target": "centred", "spin_flip": True}) == "EDNN_F1_C1_hid8x2_Centred_Flip"


@pytest.mark.parametrize("focus, context", [(1, 1), (2, 1)])
def test_spin_flip_makes_the_energy_even(focus, context):
    """spin_flip: E(-s) = E(s) on every lattice and the table has no odd term (no field); without it a
    random network is not even."""
    grids = random_grids(6, 8, 8)
    sym, plain = model(focus=focus, context=context, spin_flip=True), model(focus=focus, context=context)
    torch.testing.assert_close(sym.predict_energy(grids), sym.predict_energy(-grids), rtol=0, atol=1e-5)
    assert (plain.predict_energy(grids) - plain.predict_energy(-grids)).abs().max() > 1e-3
    table = sym.window_table().numpy()
    np.testing.assert_array_equal(table, table[::-1])          # index 2^n - 1 - p is the flipped window
    odd = [v for s, v in ising.coupling_classes(table, focus, context).items() if len(s) % 2]
    assert max(map(abs, odd), default=0.0) < 1e-12
