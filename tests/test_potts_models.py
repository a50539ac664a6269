"""The sequence models and the EDNN on the q-state Potts model (hyper-parameter q > 2).

The Ising tests in test_models.py / test_ednn.py, translated: leak tests for the categorical
causal and conditional models, normalisation of the causal model over every lattice, exact
conditionals (planted beta n_k(i), potts.neighbour_counts; exact causal ones by enumeration) give
the Potts energy up to a constant, one-hot inputs, checkpoints with q (and Ising ones without),
and the configurations a Potts model refuses.
"""
import itertools
import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import potts
from ednn import EDNNEnergyModel
from energy_models import EnergyModel
from ising import snake_permutation
from probability_models import ProbabilityModel
from sequence_blocks import grids_to_sequences, sequences_to_grids

H, Q = 8, 3
POTTS = dict(q=Q, hamiltonian=f"POTTS{Q}")


def random_states(b, n_x, n_y, q=Q, seed=0):
    return torch.randint(0, q, (b, n_x, n_y), generator=torch.Generator().manual_seed(seed))


def random_seq(b, length, seed=0):
    return random_states(b, 1, length, seed=seed).reshape(b, length, 1).float()


def true_energy(grids):
    return torch.as_tensor(potts.energy(np.asarray(grids)), dtype=torch.float64)


def _batch_for(model, grids):
    """What pytorch_datasets gives for a Potts file: states, targets = states[1:] (class indices)."""
    rows, cols = grids_to_sequences(grids, "rows"), grids_to_sequences(grids, "cols")
    if model.family == "energy":
        e = true_energy(grids).float()[:, None]
        return (rows, cols, e) if model.hparams.two_d else (rows, e)
    if model.hparams.two_d:
        return rows[:, :-1], cols[:, :-1], torch.stack([rows[:, 1:], cols[:, 1:]], dim=1)
    return rows[:, :-1], rows[:, 1:]


# ------------------------------------------------------------------------------ leak tests
CONFIGS = [dict(cell=cell, attention=attention, num_layers=layers, two_d=two_d) for cell, attention, layers, two_d
           in itertools.product(("gru", "lstm"), (False, True), (1, 2), (False, True))]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_categorical_causal_model_never_sees_the_future(cfg):
    torch.manual_seed(0)
    model = ProbabilityModel(hidden_size=H, n_heads=2 if cfg["attention"] else 1, **POTTS, **cfg).eval()
    length = 20
    seq = random_seq(3, length, seed=1)
    for order in model.orders:
        z, _ = model.logits(seq, order)  # z[:, j] are the q logits of s_{j+1}, from s_0..s_j
        assert z.shape == (3, length - 1, Q)
        for t in (1, 7, 13, length - 1):
            changed = seq.clone()
            changed[:, t:] = random_seq(3, length - t, seed=t)
            changed[:, t] = (seq[:, t] + 1) % Q  # s_t itself changes
            z2, _ = model.logits(changed, order)
            torch.testing.assert_close(z2[:, :t], z[:, :t], rtol=0, atol=1e-6)
            if t < length - 1:  # the test can fail: later predictions do move
                assert (z2[:, t:] - z[:, t:]).abs().max() > 1e-4


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_categorical_conditional_model_never_sees_its_own_state(cfg):
    torch.manual_seed(0)
    model = ProbabilityModel(hidden_size=H, bidirectional=True, n_heads=2 if cfg["attention"] else 1, **POTTS,
                             **cfg).eval()
    length = 16
    seq = random_seq(3, length, seed=2)
    for order in model.orders:
        z, _ = model.logits(seq, order)
        assert z.shape == (3, length, Q)
        for i in (0, 5, 11, length - 1):
            changed = seq.clone()
            changed[:, i] = (changed[:, i] + 1) % Q
            z2, _ = model.logits(changed, order)
            torch.testing.assert_close(z2[:, i], z[:, i], rtol=0, atol=1e-6)
            others = torch.arange(length) != i
            assert (z2[:, others] - z[:, others]).abs().max() > 1e-4


def test_joint_potts_model_never_sees_its_own_state():
    torch.manual_seed(0)
    n_x, n_y = 3, 4
    model = ProbabilityModel(hidden_size=H, bidirectional=True, two_d=True, joint=True, n_x=n_x, n_y=n_y, **POTTS)
    grids = random_states(3, n_x, n_y, seed=3)
    seqs = lambda g: {o: grids_to_sequences(g, o) for o in ("rows", "cols")}  # noqa: E731
    z, _ = model.joint_logits(seqs(grids), (n_x, n_y))
    assert z.shape == (3, n_x * n_y, Q)
    rows_sites = sequences_to_grids(torch.arange(n_x * n_y)[None], n_x, n_y)[0]  # rows position of each site
    for x, y in itertools.product(range(n_x), range(n_y)):
        changed = grids.clone()
        changed[:, x, y] = (changed[:, x, y] + 1) % Q
        z2, _ = model.joint_logits(seqs(changed), (n_x, n_y))
        k = int(rows_sites[x, y])
        torch.testing.assert_close(z2[:, k], z[:, k], rtol=0, atol=1e-6)
        assert (z2 - z).abs().max() > 1e-4


# ------------------------------------------------------------------------------ a normalised distribution
@pytest.mark.parametrize("attention, order", [(False, "rows"), (True, "cols")])
def test_causal_model_is_normalised_over_every_lattice_and_samples_its_own_log_q(attention, order):
    """sum over all q^6 lattices of q(lattice) = 1 (the categorical conditionals each sum to 1,
    the first site 1/q), and `sample` draws states 0..q-1 with the log q that `log_prob` gives."""
    torch.manual_seed(0)
    n_x, n_y = 2, 3
    model = ProbabilityModel(hidden_size=H, attention=attention, two_d=True, n_x=n_x, n_y=n_y, **POTTS).eval()
    with torch.no_grad():
        log_q = model.log_prob(torch.as_tensor(potts.all_states(n_x, n_y, Q)), order).double()
        assert len(log_q) == Q ** 6
        assert torch.logsumexp(log_q, 0).item() == pytest.approx(0.0, abs=1e-5)
        z, _ = model.logits(random_seq(4, 6), order)
        torch.testing.assert_close(z.softmax(-1).sum(-1), torch.ones(4, 5))
        grids, sampled = model.sample(50, seed=1, order=order)
        assert grids.dtype == np.int8 and grids.shape == (50, n_x, n_y) and set(np.unique(grids)) <= {0, 1, 2}
        np.testing.assert_allclose(model.log_prob(torch.as_tensor(grids), order).double().numpy(), sampled,
                                   rtol=1e-5, atol=1e-5)


def test_potts_loss_is_the_negative_log_likelihood():
    torch.manual_seed(0)
    model = ProbabilityModel(hidden_size=H, beta=0.5, **POTTS)
    grids = random_states(3, 4, 4)
    loss, _, _ = model.per_sample_loss(_batch_for(model, grids))
    # E = -(1/beta)(-log q + sum log p) and loss = -(sum log p)/(L-1)
    torch.testing.assert_close(model.predict_energy(grids), (loss * 15 + math.log(Q)) / 0.5)
    torch.testing.assert_close(model.log_prob(grids), -(loss * 15 + math.log(Q)))


# ------------------------------------------------------------------------------ exact conditionals
def grids_to_sequences_q(values, order):
    """(B, n_x, n_y, q) per-site vectors -> (B, L, q) in snake order."""
    return torch.stack([grids_to_sequences(values[..., k], order)[..., 0] for k in range(values.shape[-1])], dim=-1)


def _exact_conditional_logits(shape, beta, gauge_seed=None):
    """A stand-in for model.logits: beta n_k(i) (+ a random constant per site and lattice, which
    the softmax and the energy must ignore), in the snake order asked for."""
    def logits(seq, order, need_weights=False):
        g = sequences_to_grids(seq, *shape, order).numpy()
        z = beta * torch.as_tensor(potts.neighbour_counts(g, Q))  # (B, n_x, n_y, q)
        z = grids_to_sequences_q(z, order)
        if gauge_seed is not None:
            gen = torch.Generator().manual_seed(gauge_seed)
            z = z + torch.randn(z.shape[:-1], generator=gen, dtype=z.dtype)[..., None]
        return z, None

    return logits


@pytest.mark.parametrize("shape", [(4, 4), (5, 7)])
@pytest.mark.parametrize("joint", [False, True])
def test_exact_conditional_logits_give_the_potts_energy_up_to_2N_over_q(shape, joint):
    """Planted logits beta n_k(i) + c_i: E_model = E + 2N/q for rows, columns and the 2D mean
    (and the joint model, each branch giving its share), whatever the per-site constants c_i."""
    beta = 0.7
    grids = random_states(10, *shape, seed=4)
    const = 2 * shape[0] * shape[1] / Q
    model = ProbabilityModel(hidden_size=H, bidirectional=True, two_d=True, joint=joint, beta=beta, n_x=shape[0],
                             n_y=shape[1], **POTTS)
    assert not model.absolute_energy  # E up to a constant: scored centred
    if joint:
        exact = _exact_conditional_logits(shape, beta, gauge_seed=1)
        share = {"rows": 0.3, "cols": 0.7}
        model.logits = lambda seq, order, need_weights=False: (share[order] * exact(seq, order)[0], None)
    else:
        model.logits = _exact_conditional_logits(shape, beta, gauge_seed=1)
    pred = model.predict_energy(grids).double()
    torch.testing.assert_close(pred - true_energy(grids), torch.full((10,), const, dtype=torch.float64),
                               rtol=1e-5, atol=1e-4)
    # the pseudo-likelihood loss of the exact conditionals is that of the Potts law itself
    loss, e, _ = model.per_sample_loss(_batch_for(model, grids), with_energies=True)
    n = torch.as_tensor(potts.neighbour_counts(grids.numpy(), Q))
    log_p = torch.log_softmax(beta * n, -1).gather(-1, grids.long()[..., None])[..., 0]
    torch.testing.assert_close(loss.double(), -log_p.mean(dim=(1, 2)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(e.double(), pred, rtol=1e-5, atol=1e-4)


def _exact_causal_branch(n_x, n_y, beta, order):
    """(a branch giving the exact logits log p(s_{t+1} = k | s_0..s_t) by enumeration, log Z, p(s_0))."""
    length = n_x * n_y
    states = potts.all_states(1, length, Q).reshape(-1, length)  # flat digit t = s_t (least significant first)
    grids = np.empty_like(states)
    grids[:, snake_permutation(n_x, n_y, order)] = states
    log_w = -beta * potts.energy(grids.reshape(-1, n_x, n_y))
    log_m = log_w.reshape((Q,) * length).transpose()  # axis t = s_t
    marginals = [log_m]
    for _ in range(length - 1):  # log sum over the last site: the marginal of the prefix
        marginals.append(np.logaddexp.reduce(marginals[-1], axis=-1))
    marginals = marginals[::-1]  # marginals[t]: (q,)*(t+1), the law of s_0..s_t (unnormalised)
    log_z = float(np.logaddexp.reduce(log_w))

    class Exact(torch.nn.Module):
        def forward(self, x, need_weights=False):
            s = x[..., 0].long().numpy()
            out = [marginals[t + 1][tuple(s[:, : t + 1].T)] for t in range(length - 1)]  # (B, q) each
            return torch.as_tensor(np.stack(out, axis=1)), None

    return Exact(), log_z, marginals[0] - log_z


def test_exact_autoregressive_potts_conditionals_give_energies_up_to_log_z():
    """3 x 3, q = 3, all 19683 lattices: with its conditionals set to the exact ones (unnormalised
    log marginals: the softmax normalises them), the causal model gives E + (1/beta) log Z, for
    rows, columns and 2D; and p(s_0) = 1/q exactly, as the model assumes."""
    n_x = n_y = 3
    beta = 0.8
    grids = random_states(40, n_x, n_y, seed=5)
    model = ProbabilityModel(hidden_size=H, two_d=True, beta=beta, n_x=n_x, n_y=n_y, **POTTS)
    for order in ("rows", "cols"):
        branch, log_z, log_p0 = _exact_causal_branch(n_x, n_y, beta, order)
        np.testing.assert_allclose(log_p0, [-math.log(Q)] * Q)
        model.branches[order] = branch
        seq = grids_to_sequences(grids, order)
        torch.testing.assert_close(model._order_energy(seq, order)[0] - true_energy(grids),
                                   torch.full((40,), log_z / beta, dtype=torch.float64))
    pred = model.predict_energy(grids).double()
    torch.testing.assert_close(pred - true_energy(grids), torch.full((40,), log_z / beta, dtype=torch.float64),
                               rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------------------ energy models and EDNN
@pytest.mark.parametrize("cls, kwargs", [
    (EnergyModel, dict()), (EnergyModel, dict(two_d=True, attention=True, bidirectional=True, energy_head="site")),
    (ProbabilityModel, dict(two_d=True, bidirectional=True, joint=True)), (EDNNEnergyModel, dict()),
])
def test_one_hot_models_predict_and_train_a_step(cls, kwargs):
    torch.manual_seed(0)
    model = cls(hidden_size=H, n_x=4, n_y=4, **POTTS, **kwargs)
    grids = random_states(6, 4, 4)
    e = model.predict_energy(grids)
    assert e.shape == (6,) and e.dtype == torch.float32 and torch.isfinite(e).all()
    torch.testing.assert_close(model.predict_energy(grids.to(torch.int8)), e)  # int states of any dtype
    loss, _, _ = model.per_sample_loss(_batch_for(model, grids) if cls is not EDNNEnergyModel
                                       else (grids_to_sequences(grids), true_energy(grids).float()[:, None]))
    loss.mean().backward()
    assert torch.isfinite(loss).all() and any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with pytest.raises((RuntimeError, IndexError)):
        model.predict_energy(grids * 2 - 1)  # Ising spins: -1 is no Potts state


def test_logsigmoid_head_is_the_categorical_log_probability():
    torch.manual_seed(0)
    model = EnergyModel(hidden_size=H, beta=0.5, **POTTS)
    grids = random_states(5, 4, 4)
    seq = grids_to_sequences(grids)
    a, _ = model.site_outputs(seq)
    assert a.shape == (5, 16, Q)
    expected = torch.log_softmax(a, -1).gather(-1, seq.long()).sum(dim=(1, 2)) / 0.5
    torch.testing.assert_close(model.predict_energy(grids), expected)
    assert torch.all(model.predict_energy(grids) <= 0)


def test_ednn_reads_one_hot_windows():
    """The first layer sees q channels: the tile energy is the network on the one-hot periodic window."""
    torch.manual_seed(0)
    model = EDNNEnergyModel(hidden_size=H, **POTTS)
    assert model.tile_net[0].in_channels == Q
    grids = random_states(4, 4, 4)
    one_hot = torch.nn.functional.one_hot(grids, Q).permute(0, 3, 1, 2).float()
    padded = one_hot[..., [3, 0, 1, 2, 3, 0], :][..., [3, 0, 1, 2, 3, 0]]
    windows = padded.unfold(2, 3, 1).unfold(3, 3, 1)  # (B, q, 4, 4, 3, 3)
    expected = torch.stack([model.tile_net(windows[:, :, x, y])[:, 0, 0, 0] for x in range(4) for y in range(4)], 1)
    torch.testing.assert_close(model.predict_energy(grids), expected.sum(1))
    # translation invariance, extensivity (2 x 2 copies of a lattice: 4 times its energy)
    torch.testing.assert_close(model.predict_energy(torch.roll(grids, (1, 2), (1, 2))), model.predict_energy(grids))
    torch.testing.assert_close(model.predict_energy(grids.repeat(1, 2, 2)), 4 * model.predict_energy(grids))


# ------------------------------------------------------------------------------ checkpoints, configurations
@pytest.mark.parametrize("cls, kwargs", [(ProbabilityModel, dict()), (ProbabilityModel, dict(bidirectional=True)),
                                         (EnergyModel, dict(two_d=True)), (EDNNEnergyModel, dict())])
def test_potts_checkpoint_round_trip(tmp_path, cls, kwargs):
    torch.manual_seed(0)
    model = cls(hidden_size=H, n_x=4, n_y=4, lr=3e-3, **POTTS, **kwargs)
    grids = random_states(16, 4, 4)
    batch = (_batch_for(model, grids) if cls is not EDNNEnergyModel
             else (grids_to_sequences(grids), true_energy(grids).float()[:, None]))
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, DataLoader(TensorDataset(*batch), batch_size=8))
    trainer.save_checkpoint(tmp_path / "potts.ckpt")
    loaded = cls.load_from_checkpoint(tmp_path / "potts.ckpt", map_location="cpu")
    assert loaded.hparams.q == Q and loaded.q == Q and loaded.hparams.hamiltonian == "POTTS3"
    torch.testing.assert_close(loaded.predict_energy(grids), model.predict_energy(grids))


@pytest.mark.parametrize("cls", [ProbabilityModel, EnergyModel, EDNNEnergyModel])
def test_ising_checkpoints_without_q_still_load(tmp_path, cls):
    """A checkpoint written before q existed has no q in its hyper-parameters: it is an Ising model."""
    torch.manual_seed(0)
    model = cls(hidden_size=H, n_x=4, n_y=4)
    path = tmp_path / "old.ckpt"
    hparams = {k: v for k, v in model.hparams.items() if k != "q"}
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams,
                "pytorch-lightning_version": pl.__version__}, path)
    loaded = cls.load_from_checkpoint(path, map_location="cpu")
    assert loaded.q == 2
    spins = random_states(3, 4, 4, q=2) * 2 - 1
    torch.testing.assert_close(loaded.predict_energy(spins), model.predict_energy(spins))


@pytest.mark.parametrize("kwargs, message", [
    (dict(q=3), r"q = 3 is the Potts model: hamiltonian must be 'POTTS3' \(got 'ISING1'\)"),
    (dict(q=4, hamiltonian="POTTS3"), "hamiltonian must be 'POTTS4'"),
    (dict(q=1), r"q must be an integer in 2 \.\.\. 127"),
    (dict(q=2, hamiltonian="POTTS2"), "hamiltonian must be one of ISING1, ISING2"),
])
def test_bad_potts_configurations(kwargs, message):
    for cls in (ProbabilityModel, EnergyModel, EDNNEnergyModel):
        with pytest.raises(ValueError, match=message):
            cls(**kwargs)


@pytest.mark.parametrize("q", [3, 4])
def test_potts_spin_flip_makes_the_energy_blind_to_relabelling_the_states(q):
    """spin_flip for Potts: E(pi(s)) = E(s) for every permutation pi of the q states, on lattices of any
    size and in the window table (no preferred state); without it a random network prefers some."""
    torch.manual_seed(0)
    kw = dict(q=q, hamiltonian=f"POTTS{q}", hidden_size=8)
    sym, plain = EDNNEnergyModel(spin_flip=True, **kw).eval(), EDNNEnergyModel(**kw).eval()
    grids = random_states(5, 4, 6, q=q)
    with torch.no_grad():
        e_sym, e_plain = sym.predict_energy(grids), plain.predict_energy(grids)
        for perm in itertools.permutations(range(q)):
            relabelled = torch.as_tensor(perm)[grids.long()]
            torch.testing.assert_close(sym.predict_energy(relabelled), e_sym, rtol=0, atol=1e-5)
        shifted = (grids + 1) % q
        assert (plain.predict_energy(shifted) - e_plain).abs().max() > 1e-3
    if q == 3:
        table = sym.window_table().numpy()
        digits = np.arange(q ** 9)[:, None] // q ** np.arange(9) % q          # the table's windows
        for perm in itertools.permutations(range(q)):
            index = (np.asarray(perm)[digits] * q ** np.arange(9)).sum(1)
            np.testing.assert_allclose(table[index], table, rtol=0, atol=1e-5)


def test_potts_ednn_window_table_is_its_energy_function():
    """The one-hot EDNN's q^9 window energies reproduce its predictions on any lattice (the table the
    sampler runs as a learned Potts Hamiltonian), and other windows are refused."""
    torch.manual_seed(0)
    model = EDNNEnergyModel(hidden_size=8, num_layers=2, **POTTS).eval()
    table = potts.PottsTable.of(model.window_table().numpy(), Q, "tiny")
    grids = np.random.default_rng(0).integers(0, Q, (6, 5, 7))
    with torch.no_grad():
        pred = model.predict_energy(torch.as_tensor(grids)).double().numpy()
    np.testing.assert_allclose(potts.table_energy(grids, table), pred, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="focus 1, context 1"):
        EDNNEnergyModel(hidden_size=8, context=2, **POTTS).window_table()
