"""Tests of energy_models.py, probability_models.py and sequence_blocks.py.

Leak tests (no model may see what it predicts), energy formulas against exact results
(local fields and full enumeration from generate_ising), log-space numerics, presets,
arbitrary lattice sizes, the reference's call signatures (`model(...)`) and the checkpoint
round trip without data files.
"""
import itertools
import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import energy_models
from conftest import assert_joint_never_reads_its_own_spin
import probability_models
from energy_models import EnergyModel
from ising import energy as ising_energy
from ising import local_field
from probability_models import ProbabilityModel
from ising import snake_permutation
from sequence_blocks import (
    causal_energy,
    conditional_energy,
    grids_to_sequences,
    log_prob_energy,
    sequences_to_grids,
)

H = 8  # hidden size of the small test models


def random_grids(b, n_x, n_y, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (b, n_x, n_y), generator=g) * 2 - 1


def random_seq(b, length, seed=0):
    return random_grids(b, 1, length, seed).reshape(b, length, 1).float()


# ------------------------------------------------------------------------------ snake order
def test_sequences_follow_the_snake_permutation_and_invert():
    grids = random_grids(4, 5, 7)
    for order in ("rows", "cols"):
        seq = grids_to_sequences(grids, order)
        perm = snake_permutation(5, 7, order)
        assert seq.shape == (4, 35, 1) and seq.dtype == torch.float32
        np.testing.assert_array_equal(seq[..., 0].numpy(), grids.reshape(4, -1).numpy()[:, perm])
        assert torch.equal(sequences_to_grids(seq, 5, 7, order), grids.float())


# ------------------------------------------------------------------------------ leak tests
CAUSAL_CONFIGS = [
    dict(cell=cell, attention=attention, num_layers=layers, two_d=two_d)
    for cell, attention, layers, two_d in itertools.product(("gru", "lstm"), (False, True), (1, 2), (False, True))
]


@pytest.mark.parametrize("cfg", CAUSAL_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_causal_probability_model_never_sees_the_future(cfg):
    torch.manual_seed(0)
    model = ProbabilityModel(hidden_size=H, bidirectional=False, n_heads=2 if cfg["attention"] else 1, **cfg).eval()
    length = 20
    seq = random_seq(3, length, seed=1)
    for order in model.orders:
        z, _ = model.logits(seq, order)  # z[:, j] is the logit of s_{j+1}, from s_0..s_j
        assert z.shape == (3, length - 1)
        for t in (1, 7, 13, length - 1):
            changed = seq.clone()
            changed[:, t:] = random_seq(3, length - t, seed=t)  # new spins at positions >= t
            changed[:, t] = -seq[:, t]  # make sure s_t itself changes
            z2, _ = model.logits(changed, order)
            # predictions of s_1..s_t only read s_0..s_{t-1}: untouched
            torch.testing.assert_close(z2[:, :t], z[:, :t], rtol=0, atol=1e-6)
            if t < length - 1:  # the test can fail: later predictions do move
                assert (z2[:, t:] - z[:, t:]).abs().max() > 1e-4


@pytest.mark.parametrize("cfg", CAUSAL_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_bidirectional_probability_model_never_sees_its_own_spin(cfg):
    torch.manual_seed(0)
    model = ProbabilityModel(hidden_size=H, bidirectional=True, n_heads=2 if cfg["attention"] else 1, **cfg).eval()
    length = 16
    seq = random_seq(3, length, seed=2)
    for order in model.orders:
        z, _ = model.logits(seq, order)
        assert z.shape == (3, length)
        for i in (0, 5, 11, length - 1):
            flipped = seq.clone()
            flipped[:, i] = -flipped[:, i]
            z2, _ = model.logits(flipped, order)
            torch.testing.assert_close(z2[:, i], z[:, i], rtol=0, atol=1e-6)
            others = torch.ones(length, dtype=torch.bool)
            others[i] = False
            assert (z2[:, others] - z[:, others]).abs().max() > 1e-4  # it does read the spin elsewhere


def test_attention_masks():
    torch.manual_seed(0)
    seq = random_seq(2, 12, seed=3)
    causal = ProbabilityModel(hidden_size=H, attention=True, two_d=True).eval()
    _, w = causal.predict_energy(sequences_to_grids(seq, 3, 4), return_attention=True)
    assert set(w) == {"rows", "cols"}
    for weights in w.values():
        assert weights.shape == (2, 12, 12)
        inputs = weights[:, :11, :11]  # the last spin is never an input
        assert torch.all(torch.triu(inputs, diagonal=1) == 0)  # query t sees keys <= t only
        torch.testing.assert_close(inputs.sum(-1), torch.ones(2, 11))
        assert torch.all(weights[:, 11] == 0) and torch.all(weights[:, :, 11] == 0)

    cond = ProbabilityModel(hidden_size=H, attention=True, bidirectional=True, two_d=True).eval()
    _, w = cond.predict_energy(sequences_to_grids(seq, 3, 4), return_attention=True)
    for weights in w.values():
        assert weights.shape == (2, 12, 12)
        assert torch.all(torch.diagonal(weights, dim1=1, dim2=2) == 0)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 12))

    energy = EnergyModel(hidden_size=H, attention=True, bidirectional=True).eval()
    _, w = energy.predict_energy(sequences_to_grids(seq, 3, 4), return_attention=True)
    assert w["rows"].shape == (2, 12, 12)
    torch.testing.assert_close(w["rows"].sum(-1), torch.ones(2, 12))


# ------------------------------------------------------------------------------ energy formulas
@pytest.mark.parametrize("ising", ["ISING1", "ISING2"])
@pytest.mark.parametrize("shape", [(8, 8), (5, 7), (16, 16)])
def test_exact_conditionals_give_exact_energies(ising, shape):
    """logit p(s_i=+1 | rest) = 2 beta h_i fed to the bidirectional model's energy formula
    reproduces the Hamiltonian exactly, for rows, columns and the 2D mean."""
    beta = 0.3
    grids = random_grids(10, *shape, seed=4)
    true = torch.as_tensor(ising_energy(grids.numpy(), ising), dtype=torch.float64)
    h = torch.as_tensor(local_field(grids.numpy(), ising), dtype=torch.float64)
    for order in ("rows", "cols"):
        spins = grids_to_sequences(grids, order)[..., 0].double()
        logits = 2 * beta * grids_to_sequences(h, order)[..., 0].double()
        torch.testing.assert_close(conditional_energy(logits, spins, beta), true)

    # the same through the model: its conditionals replaced by the exact ones
    model = ProbabilityModel(hidden_size=H, bidirectional=True, two_d=True, beta=beta, n_x=shape[0], n_y=shape[1],
                             hamiltonian=ising)

    def exact_logits(seq, order, need_weights=False):
        g = sequences_to_grids(seq, *shape, order).numpy()
        return 2 * beta * grids_to_sequences(torch.as_tensor(local_field(g, ising)), order)[..., 0], None

    model.logits = exact_logits
    torch.testing.assert_close(model.predict_energy(grids).double(), true, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape", [(8, 8), (5, 7)])
def test_joint_conditionals_add_up_per_site(shape):
    """joint=True: the logit of a site is the sum of its rows and columns logits, wherever the two
    snakes put it. Branches that each give a share of the exact 2 beta h_i (0.3 and 0.7) must sum
    to the exact energy and to the exact conditionals' pseudo-likelihood loss."""
    beta, hamiltonian = 0.3, "ISING2"
    grids = random_grids(6, *shape, seed=5)
    true = torch.as_tensor(ising_energy(grids.numpy(), hamiltonian), dtype=torch.float64)
    h = torch.as_tensor(local_field(grids.numpy(), hamiltonian), dtype=torch.float64)
    model = ProbabilityModel(hidden_size=H, bidirectional=True, two_d=True, joint=True, beta=beta, n_x=shape[0],
                             n_y=shape[1], hamiltonian=hamiltonian)
    share = {"rows": 0.3, "cols": 0.7}

    def exact_share(seq, order, need_weights=False):
        g = sequences_to_grids(seq, *shape, order).numpy()
        return share[order] * 2 * beta * grids_to_sequences(torch.as_tensor(local_field(g, hamiltonian)), order)[..., 0], None

    model.logits = exact_share
    torch.testing.assert_close(model.predict_energy(grids).double(), true, rtol=1e-5, atol=1e-4)
    loss, pred, _ = model.per_sample_loss(_batch_for(model, grids), with_energies=True)
    z = 2 * beta * grids_to_sequences(h, "rows")[..., 0]
    target = (grids_to_sequences(grids, "rows")[..., 0] + 1) / 2
    exact_loss = nn.functional.binary_cross_entropy_with_logits(z, target.double(), reduction="none").mean(dim=1)
    torch.testing.assert_close(loss.double(), exact_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pred.double(), true, rtol=1e-5, atol=1e-4)


def test_joint_model_never_sees_its_own_spin():
    torch.manual_seed(0)
    n_x, n_y = 4, 5
    model = ProbabilityModel(hidden_size=H, bidirectional=True, two_d=True, joint=True, n_x=n_x, n_y=n_y).eval()
    assert_joint_never_reads_its_own_spin(model, random_grids(3, n_x, n_y, seed=3), moved=1e-4)
    with pytest.raises(ValueError, match="needs the 2D conditional model"):
        ProbabilityModel(two_d=True, joint=True)


def _exact_causal_logits(n_x, n_y, beta, order, ising="ISING1"):
    """Exact logit of p(s_{t+1}=+1 | s_0..s_t) for every prefix, by full enumeration.

    Returns (tables, log Z, log p(s_0 = -1, +1)); tables[t] float64 (2**(t+1),) is indexed
    by the prefix bits s_0..s_t (most significant first, bit = (s+1)/2)."""
    length = n_x * n_y
    bits = (np.arange(2 ** length)[:, None] >> np.arange(length - 1, -1, -1)) & 1  # sequences, s_0 first
    seqs = 2 * bits - 1
    grids = np.empty((2 ** length, length), dtype=np.int8)
    grids[:, snake_permutation(n_x, n_y, order)] = seqs
    log_w = -beta * np.asarray(ising_energy(grids.reshape(-1, n_x, n_y), ising), dtype=np.float64)
    log_m = log_w.reshape((2,) * length)  # axis k = s_k (0: -1, 1: +1)
    tables = []
    for t in range(length - 1, 0, -1):  # marginal over s_{t+1}.. ; logit of s_t given s_<t
        log_m = np.logaddexp.reduce(log_m, axis=-1) if log_m.ndim > t + 1 else log_m
        tables.append((log_m[..., 1] - log_m[..., 0]).reshape(-1))
    log_z = float(np.logaddexp.reduce(log_w))
    log_p0 = np.logaddexp.reduce(log_m.reshape(2, -1), axis=1) - log_z  # marginal of s_0
    return tables[::-1], log_z, log_p0


class _ExactCausalBranch(nn.Module):
    """Stands in for a causal branch: inputs s_0..s_{L-2} -> exact logits of s_1..s_{L-1}."""

    def __init__(self, tables):
        super().__init__()
        self.tables = [torch.as_tensor(t) for t in tables]

    def forward(self, x, need_weights=False):
        bits = (x[..., 0] > 0).long()
        out = []
        for t, table in enumerate(self.tables):  # table t: logit of s_{t+1} given s_0..s_t
            weights = 2 ** torch.arange(t, -1, -1)
            out.append(table[(bits[:, : t + 1] * weights).sum(1)])
        return torch.stack(out, dim=1), None


def test_exact_autoregressive_conditionals_give_energies_up_to_a_constant():
    """4 x 4 lattice, every one of the 65536 states: the causal model with its conditionals
    set to the exact Ising ones gives E + (1/beta) log Z, for rows, columns and 2D."""
    n_x = n_y = 4
    beta = 0.35
    grids = random_grids(64, n_x, n_y, seed=5)
    true = torch.as_tensor(ising_energy(grids.numpy(), "ISING1"), dtype=torch.float64)
    model = ProbabilityModel(hidden_size=H, two_d=True, beta=beta, n_x=n_x, n_y=n_y)
    for order in ("rows", "cols"):
        tables, log_z, log_p0 = _exact_causal_logits(n_x, n_y, beta, order)
        np.testing.assert_allclose(log_p0, [-math.log(2)] * 2)  # p(s_0) = 1/2, as the model assumes
        model.branches[order] = _ExactCausalBranch(tables)
        seq = grids_to_sequences(grids, order)[..., 0].double()
        z, _ = model.branches[order](seq[:, :-1, None])
        e = causal_energy(z, seq, beta)
        torch.testing.assert_close(e - true, torch.full_like(true, log_z / beta))
    # both orders give the same constant (the same log Z), so the 2D mean is E + const too
    pred = model.predict_energy(grids).double()
    torch.testing.assert_close(pred - true, torch.full_like(true, log_z / beta), rtol=1e-5, atol=1e-4)


def test_log_space_matches_float64_and_does_not_underflow_on_16x16():
    beta = 0.25
    g = torch.Generator().manual_seed(6)
    spins = (torch.randint(0, 2, (4, 256), generator=g) * 2 - 1).float()
    logits = (torch.rand(4, 256, generator=g) * 60 - 30).float()  # confident, often wrong
    s64, z64 = spins.double().numpy(), logits.double().numpy()
    log_sig = -np.logaddexp(0.0, -s64 * z64)  # float64 log sigmoid(s z)
    ref_causal = -(log_sig[:, 1:].sum(1) - math.log(2)) / beta
    ref_head = log_sig.sum(1) / beta
    got_causal = causal_energy(logits[:, 1:], spins, beta)
    got_head = log_prob_energy(logits, spins, beta)
    assert got_causal.dtype == torch.float32
    np.testing.assert_allclose(got_causal.numpy(), ref_causal, rtol=1e-5)
    np.testing.assert_allclose(got_head.numpy(), ref_head, rtol=1e-5)
    # what the reference did (a float32 product of probabilities) underflows here
    assert torch.all(torch.sigmoid(spins * logits).prod(dim=1) == 0)
    # and a real model on 16 x 16 gives finite energies
    for cls in (EnergyModel, ProbabilityModel):
        e = cls(hidden_size=H, two_d=True).predict_energy(random_grids(3, 16, 16))
        assert torch.isfinite(e).all()


def test_energy_heads():
    torch.manual_seed(0)
    grids = random_grids(5, 6, 6)
    prob = EnergyModel(hidden_size=H, energy_head="logsigmoid", beta=0.5)
    seq = grids_to_sequences(grids)
    a, _ = prob.site_outputs(seq)
    expected = torch.nn.functional.logsigmoid(seq[..., 0] * a).sum(1) / 0.5
    torch.testing.assert_close(prob.predict_energy(grids), expected)
    assert torch.all(prob.predict_energy(grids) <= 0)  # the reference head can never be positive

    site = EnergyModel(hidden_size=H, energy_head="site", two_d=True)
    with torch.no_grad():
        for branch in site.branches.values():
            branch.head.weight.zero_()
            branch.head.bias.fill_(0.75)  # +0.75 per site
    torch.testing.assert_close(site.predict_energy(grids), torch.full((5,), 0.75 * 36))


# ------------------------------------------------------------------------------ models and presets
# the reference's class names: <Energy|Probability><suffix> -> (attention, two_d)
PRESET_LAYOUTS = {"RNN": (False, False), "AttentionRNN": (True, False), "RNN2D": (False, True),
                  "AttentionRNN2D": (True, True)}
ALL_PRESETS = {prefix + suffix: getattr(module, prefix + suffix) for prefix, module in
               (("Energy", energy_models), ("Probability", probability_models)) for suffix in PRESET_LAYOUTS}


@pytest.mark.parametrize("name", sorted(ALL_PRESETS))
def test_every_preset_builds_runs_and_trains_a_step(name):
    cls = ALL_PRESETS[name]
    assert hasattr(energy_models, name) or hasattr(probability_models, name)
    attention = "Attention" in name
    two_d = "2D" in name
    for bidirectional in (False, True):
        model = cls(hidden_size=H, bidirectional=bidirectional)
        assert model.hparams.attention == attention and model.hparams.two_d == two_d
        grids = random_grids(4, 8, 8)
        e, w = model.predict_energy(grids, return_attention=True)
        assert e.shape == (4,) and e.dtype == torch.float32 and torch.isfinite(e).all()
        assert set(w) == (({"rows", "cols"} if two_d else {"rows"}) if attention else set())
        # a training batch in the dataset layout: loss is finite and has gradients
        loss, _, _ = model.per_sample_loss(_batch_for(model, grids))
        loss.mean().backward()
        assert loss.shape == (4,) and torch.isfinite(loss).all()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("module, base", [(energy_models, EnergyModel), (probability_models, ProbabilityModel)])
def test_presets_are_the_reference_names(module, base):
    for suffix, (attention, two_d) in PRESET_LAYOUTS.items():
        name = base.family.capitalize() + suffix
        cls = getattr(module, name)
        assert cls.__name__ == name and cls.__module__ == module.__name__
        assert issubclass(cls, base) and cls is not base
        model = cls(hidden_size=H, num_layers=2)
        assert (model.hparams.attention, model.hparams.two_d, model.hparams.num_layers) == (attention, two_d, 2)
        # a preset only changes defaults: its hyper-parameters are base's, so base rebuilds it
        assert dict(base(**model.hparams).hparams) == dict(model.hparams)


@pytest.mark.parametrize("name", sorted(ALL_PRESETS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_forward_is_the_reference_call_and_a_view_on_predict_energy(name, bidirectional):
    """model(x) / model(x_rows, x_cols) on the batch a dataset gives: the reference's shapes,
    weights with attention, and the same numbers as predict_energy / logits."""
    torch.manual_seed(0)
    model = ALL_PRESETS[name](hidden_size=H, bidirectional=bidirectional, n_x=4, n_y=4).eval()
    grids = random_grids(3, 4, 4, seed=7)
    seqs = [grids_to_sequences(grids, order) for order in model.orders]
    inputs = _batch_for(model, grids)[: len(seqs)]
    two_d, attention = model.hparams.two_d, model.hparams.attention
    if model.family == "probability" and bidirectional:
        with pytest.raises(ValueError, match=r"reads the whole lattice.*\(B, 16, 1\), not spins\[:-1\] \(15 spins\)"):
            model(*inputs)
        inputs = seqs  # the conditional model reads the whole sequence
    with torch.no_grad():
        out = model(*inputs)
        out, weights = out if attention else (out, None)
        if model.family == "energy":
            assert out.shape == (3, 1)
            torch.testing.assert_close(out[:, 0], model.predict_energy(grids))
        else:
            length = 16 if bidirectional else 15
            assert out.shape == ((3, 2, length, 1) if two_d else (3, length, 1))
            for k, order in enumerate(model.orders):
                z = out[:, k] if two_d else out
                torch.testing.assert_close(z[..., 0], model.logits(seqs[k], order)[0])
    if attention:
        n = inputs[0].shape[1]
        assert weights.shape == ((3, 2, n, n) if two_d else (3, n, n))
    with pytest.raises(ValueError, match="takes x_rows, x_cols" if two_d else "takes x:"):
        model(*inputs, *inputs) if not two_d else model(inputs[0])


def _batch_for(model, grids):
    """The batch `pytorch_datasets` would give for these grids (agreed layouts)."""
    rows, cols = grids_to_sequences(grids, "rows"), grids_to_sequences(grids, "cols")
    if model.family == "energy":
        e = torch.as_tensor(ising_energy(grids.numpy()), dtype=torch.float32)[:, None]
        return (rows, cols, e) if model.hparams.two_d else (rows, e)
    if model.hparams.two_d:
        y = torch.stack([(rows[:, 1:] + 1) / 2, (cols[:, 1:] + 1) / 2], dim=1)
        return rows[:, :-1], cols[:, :-1], y
    return rows[:, :-1], (rows[:, 1:] + 1) / 2


def test_probability_loss_is_the_negative_log_likelihood():
    torch.manual_seed(0)
    model = ProbabilityModel(hidden_size=H, beta=0.5)
    grids = random_grids(3, 4, 4)
    loss, pred, _ = model.per_sample_loss(_batch_for(model, grids), with_energies=False)
    energy = model.predict_energy(grids)
    # E = -(1/beta)(-log 2 + sum log p) and loss = -(sum log p)/(L-1)
    torch.testing.assert_close(energy, (loss * 15 + math.log(2)) / 0.5)


def test_any_lattice_size():
    for cls in (EnergyModel, ProbabilityModel):
        for bidirectional in (False, True):
            model = cls(hidden_size=H, attention=True, two_d=True, bidirectional=bidirectional, n_x=8, n_y=8)
            for shape in ((4, 4), (3, 9), (12, 12)):
                e, w = model.predict_energy(random_grids(2, *shape), return_attention=True)
                length = shape[0] * shape[1]
                assert e.shape == (2,) and w["cols"].shape == (2, length, length)


@pytest.mark.parametrize("kwargs, message", [
    (dict(attention=True, n_heads=3, hidden_size=8), "n_heads=3 must divide"),
    (dict(attention=True, n_heads=3, hidden_size=8, bidirectional=True), "n_heads=3 must divide"),
    (dict(cell="rnn"), "cell must be one of"),
    (dict(hidden_size=0), "hidden_size must be a positive integer"),
    (dict(beta=None), "beta must be a positive number"),
    (dict(lr=-1.0), "lr must be a positive number"),
    (dict(n_heads=2), "n_heads=2 has no effect without attention"),
])
def test_bad_configurations(kwargs, message):
    for cls in (EnergyModel, ProbabilityModel):
        with pytest.raises(ValueError, match=message):
            cls(**kwargs)
    with pytest.raises(ValueError, match="energy_head must be one of"):
        EnergyModel(energy_head="logp")
    with pytest.raises(ValueError, match="loss must be one of"):
        EnergyModel(loss="huber")


# ------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("name", ["EnergyAttentionRNN2D", "EnergyRNN", "ProbabilityAttentionRNN2D", "ProbabilityRNN"])
def test_checkpoint_round_trip_without_data_files(tmp_path, name, monkeypatch):
    cls = ALL_PRESETS[name]
    torch.manual_seed(0)
    model = cls(hidden_size=H, bidirectional=True, beta=0.4, n_x=4, n_y=4, hamiltonian="ISING2", lr=3e-3)
    grids = random_grids(16, 4, 4)
    batch = _batch_for(model, grids)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, DataLoader(TensorDataset(*batch), batch_size=8))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    monkeypatch.chdir(tmp_path)  # no data directory anywhere near
    for loader in (cls, energy_models.EnergyModel if name.startswith("Energy") else ProbabilityModel):
        loaded = loader.load_from_checkpoint(path, map_location="cpu")
        assert isinstance(loaded, loader)
        for key, value in dict(beta=0.4, n_x=4, n_y=4, hamiltonian="ISING2", bidirectional=True, hidden_size=H,
                               lr=3e-3).items():
            assert loaded.hparams[key] == value
        torch.testing.assert_close(loaded.predict_energy(grids), model.predict_energy(grids))


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from lattice_module import lr_factor

    total = 200  # 4 warm-up steps
    factors = [lr_factor(step, total) for step in range(total)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))  # then never rises
    assert factors[-1] == pytest.approx(0.0, abs=1e-12) and lr_factor(total + 5, total) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(4 + 97, total) == pytest.approx(0.5)  # half-way through the 196 decay steps: half the rate
