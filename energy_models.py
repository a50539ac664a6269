"""Energy models: sequence regressors that predict the energy of a lattice.

`EnergyModel` is one configurable LightningModule; the reference's class names are presets
(`EnergyRNN`, `EnergyAttentionRNN`, `EnergyRNN2D`, `EnergyAttentionRNN2D`, at the end of this
file) that only change the defaults of `attention` and `two_d`.

Input: the FULL snake sequence of the lattice, x (B, L, 1) ±1 (the energy depends on every
spin, and a regressor has no information leak to worry about, so a bidirectional RNN and
unmasked attention are fine here). Network: GRU/LSTM (optionally bidirectional, `num_layers`
deep) -> optional one `nn.MultiheadAttention` layer (residual) -> linear -> a_t per site.

Energy heads (the formula each variant uses):
- `energy_head="logsigmoid"` (default, the reference's head): sigmoid(s_t a_t) is read as a
  probability of the observed spin s_t and E = (1/beta) sum_t log sigmoid(s_t a_t), computed
  with `logsigmoid` in log space (never a product of probabilities clamped at 1e-40). As in
  the reference this E can never be positive.
- `energy_head="site"` (our extension): E = sum_t a_t, an extensive sum of per-site
  energies that can take either sign.
- `two_d=True`: one branch on the rows snake and one on the columns snake, E = mean of the
  two. Loss: L1 (default) or MSE on the true energy.

Calling a model (the reference's signature, a view on the computation of `predict_energy`):
`model(x)`, x (B, L, 1) the whole rows snake -> energy (B, 1); 2D `model(x_rows, x_cols)`;
with attention `(energy, weights)`, weights (B, L, L) (2D: stacked (B, 2, L, L)). So
`nn.L1Loss()(model(*batch[:-1]), batch[-1])` on an `EnergyDataset(2D)` batch is the training
loss. The reference fed spins[:-1], dropping the last spin although the energy depends on
it; a sequence of n_x*n_y - 1 spins is refused with a clear error.

Any sequence length works, so a model trained on 8 x 8 can predict on other sizes via
`predict_energy(grids)`.

The q-state Potts model (`q` > 2; q = 2, the default, is the Ising model above): the sequences
hold the states 0..q-1, read as a one-hot (q input channels); the logsigmoid head becomes its
categorical form, E = (1/beta) sum_t log softmax(a_t)[s_t] with q outputs a site (still never
positive); the site head is unchanged (one output a site).

A spin-glass instance (hamiltonian "EA", hyper-parameter `instance`: its couplings J_h, J_v, as
the data files record them): spins ±1 as for Ising, and each branch also reads a learned code of
its snake position (`sequence_blocks.SitePositions`), since the couplings differ from bond to bond;
such a model reads the lattices of its own instance only (`predict_energy` refuses other sizes).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sequence_blocks import (
    RNNEncoder,
    SelfAttention,
    SequenceModule,
    SitePositions,
    encode_states,
    log_prob_energy,
    read_sites,
    site_inputs,
    wide,
)


class EnergyBranch(nn.Module):
    """One sequence direction: x (B, L, 1) -> per-site outputs a (B, L) (+ attention (B, L, L));
    Potts: x the states (read as one-hot), a (B, L, n_out), n_out = q for the logsigmoid head."""

    def __init__(self, cell, hidden_size, num_layers, bidirectional, attention, n_heads, q=2, n_out=1, n_sites=None):
        super().__init__()
        self.q = q
        self.positions = SitePositions(n_sites) if n_sites else None  # a model of an instance (sequence_blocks)
        self.encoder = RNNEncoder(cell, hidden_size, num_layers, mode="full", bidirectional=bidirectional,
                                  input_size=site_inputs(q, n_sites))
        dim = self.encoder.out_dim
        self.attention = SelfAttention(dim, n_heads) if attention else None
        self.head = nn.Linear(dim, n_out)

    def forward(self, x, need_weights: bool = False):
        feats = self.encoder(read_sites(self.positions, encode_states(x, self.q)))
        weights = None
        if self.attention is not None:
            feats, weights = self.attention(feats, need_weights=need_weights)
        a = self.head(feats)
        return (a.squeeze(-1) if a.shape[-1] == 1 else a), weights


class EnergyModel(SequenceModule):
    """Configurable energy regressor; see the module docstring.

    Hyper-parameters (all plain values, saved in the checkpoint): cell (gru|lstm),
    hidden_size, num_layers, bidirectional, attention, n_heads, two_d, energy_head
    (logsigmoid|site), loss (l1|mse), lr (Adam) and lr_schedule (constant|cosine), beta (of the
    training data, used by the logsigmoid head), n_x, n_y, hamiltonian (of the training data),
    q (2: Ising, the default; > 2: the q-state Potts model, hamiltonian "POTTS<q>"), instance (a
    spin-glass instance's couplings, hamiltonian "EA": `hamiltonians.instance_attrs`; None otherwise).
    """

    family = "energy"
    absolute_energy = True
    choices = {**SequenceModule.choices, "energy_head": ("logsigmoid", "site"), "loss": ("l1", "mse")}

    def __init__(
        self,
        cell: str = "gru",
        hidden_size: int = 512,
        num_layers: int = 1,
        bidirectional: bool = False,
        attention: bool = False,
        n_heads: int = 1,
        two_d: bool = False,
        energy_head: str = "logsigmoid",
        loss: str = "l1",
        lr: float = 1e-4,
        lr_schedule: str = "constant",
        beta: float = 0.25,
        n_x: int = 8,
        n_y: int = 8,
        hamiltonian: str = "ISING1",
        q: int = 2,
        instance: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.check_hparams()
        n_out = self.q if (self.q > 2 and energy_head == "logsigmoid") else 1  # q logits of a categorical
        self.branches = nn.ModuleDict(
            {
                order: EnergyBranch(cell, hidden_size, num_layers, bidirectional, attention, n_heads, self.q, n_out,
                                    self.n_sites)
                for order in self.orders
            }
        )

    # -- energies -------------------------------------------------------------------------
    def site_outputs(self, x: torch.Tensor, order: str = "rows", need_weights: bool = False):
        """x (B, L, 1) ±1 -> per-site outputs a (B, L) of the `order` branch (+ weights); Potts: (B, L, q)
        for the logsigmoid head."""
        return self.branches[order](x, need_weights=need_weights)

    def energy_from_sequences(self, seqs: dict, return_attention: bool = False, shape=None):
        """seqs {"rows": (B, L, 1)[, "cols": ...]} full snake sequences -> E (B,), attention.
        (shape, the lattice's, is not needed: each branch's energy is a sum along its own snake.)"""
        energies, attn = [], {}
        for order in self.orders:
            x = seqs[order]
            a, w = self.site_outputs(x, order, need_weights=return_attention)
            if self.hparams.energy_head == "logsigmoid":
                energies.append(log_prob_energy(a, x.squeeze(-1), self.hparams.beta, self.q))
            else:
                energies.append(wide(a).sum(dim=1))  # >= float32 sum, also under bf16 autocast
            if w is not None:
                attn[order] = w
        return torch.stack(energies).mean(dim=0), attn

    def forward(self, *xs: torch.Tensor):
        """x (B, L, 1) or x_rows, x_cols (2D): whole snake sequences ±1 (Potts: states) -> energy (B, 1),
        or (energy, weights) with attention; see the module docstring."""
        hint = "the energy depends on every spin (EnergyDataset items are whole sequences)"
        seqs = self.forward_inputs(xs, whole_lattice=True, hint=hint)
        energy, weights = self.energy_from_sequences(seqs, return_attention=self.hparams.attention)
        return self.with_weights(energy.unsqueeze(-1), weights)

    # -- training -------------------------------------------------------------------------
    def per_sample_loss(self, batch, with_energies: bool = True):
        """batch (X, E[, beta]) or (X_rows, X_cols, E[, beta]) -> (loss (B,), pred (B,), true (B,))."""
        n = len(self.orders)
        pred, _ = self.energy_from_sequences(self.forward_inputs(tuple(batch[:n]), whole_lattice=True))
        target = batch[n].reshape(-1).to(pred.dtype)
        if self.hparams.loss == "l1":
            loss = F.l1_loss(pred, target, reduction="none")
        else:
            loss = F.mse_loss(pred, target, reduction="none")
        return loss, pred, target


# ----------------------------------------------------------------------------- the reference's class names
# Each fixes the defaults of attention and two_d; every other hyper-parameter is a keyword, as for
# EnergyModel. They call EnergyModel.__init__ directly (not super()), so Lightning records the
# hyper-parameters of EnergyModel's signature alone and a preset's checkpoint holds the same values.
class EnergyRNN(EnergyModel):
    """The reference's `EnergyRNN`: GRU over the rows snake."""

    def __init__(self, **hparams):
        EnergyModel.__init__(self, **{"attention": False, "two_d": False, **hparams})


class EnergyAttentionRNN(EnergyModel):
    """The reference's `EnergyAttentionRNN`: GRU + attention; `model(x)` -> (energy, weights)."""

    def __init__(self, **hparams):
        EnergyModel.__init__(self, **{"attention": True, "two_d": False, **hparams})


class EnergyRNN2D(EnergyModel):
    """The reference's `EnergyRNN2D`: rows and columns snakes; `model(x_rows, x_cols)`."""

    def __init__(self, **hparams):
        EnergyModel.__init__(self, **{"attention": False, "two_d": True, **hparams})


class EnergyAttentionRNN2D(EnergyModel):
    """The reference's `EnergyAttentionRNN2D`: rows and columns snakes + attention."""

    def __init__(self, **hparams):
        EnergyModel.__init__(self, **{"attention": True, "two_d": True, **hparams})
