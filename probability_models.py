"""Probability models: networks whose outputs are honest probabilities of spins.

`ProbabilityModel` is one configurable LightningModule; the reference's class names are
presets (`ProbabilityRNN`, `ProbabilityAttentionRNN`, `ProbabilityRNN2D`,
`ProbabilityAttentionRNN2D`, at the end of this file) that only change the defaults of
`attention` and `two_d`. All logits are logits of p(s = +1); every probability is handled in
log space (`logsigmoid`), never as a product.

Which formula each variant uses, and why:

- The causal model (`bidirectional=False`; the reference's "original model"): an
  autoregressive model of the snake sequence. A unidirectional GRU/LSTM reads s_0..s_t and
  predicts s_{t+1}; the optional attention layer is causally masked (query t sees keys
  <= t), so the logit for s_{t+1} depends on s_0..s_t only. The first spin is not predicted by the network:
  p(s_0 = ±1) = 1/2 exactly, by the spin-flip symmetry of a zero-field Ising model. Then
  log p(lattice) = -log 2 + sum_t log p(s_t | s_<t) is the model's exact log-likelihood, and
  since p = exp(-beta E) / Z,   E = -(1/beta) log p(lattice) - (1/beta) log Z,
  i.e. the energy up to a constant (we return -(1/beta) log p; evaluation centres it).
  Trained by maximum likelihood (BCE on every next spin).
- The conditional model (`bidirectional=True`). A model that sees "the other side" cannot
  be autoregressive, so it is a model of p(s_i | all other spins): a forward RNN stack gives
  the state after s_{i-1}, a separate backward stack the state after s_{i+1} (two
  independent stacks, so no layer ever mixes s_i back in), and a learned vector stands in
  at the ends. For a pairwise Hamiltonian E = -1/2 sum_i s_i h_i with local field
  h_i = sum_j J_ij s_j, the exact conditional is p(s_i=+1 | rest) = sigmoid(2 beta h_i), so
  the logit z_i estimates 2 beta h_i and   E = -1/2 sum_i s_i z_i / (2 beta)
  (no additive constant). Trained by pseudo-likelihood (BCE on every spin given the rest).
  Its attention must not see s_i either: queries are the conditional features of spin i,
  keys/values are a per-spin embedding (linear in s_j plus a sinusoidal position code,
  defined for any length) and the diagonal is masked, so query i never attends s_i.
- `two_d=True`: one branch on the rows snake, one on the columns snake (each a valid model
  of the same lattice), E = mean of the two energies; loss = mean of the two BCEs.
- `joint=True` (2D conditional only): one conditional per site, whose logit is the sum of the
  two branches' logits of that site, z_i = z_i^rows + z_i^cols; loss and energy on that sum.
  Each snake holds two of a site's four neighbours adjacent (left/right along the rows,
  up/down along the columns), and 2 beta h_i is a sum over neighbours, so each branch only has
  to learn the half of the field that lies next to it; with the mean of two separate models,
  each branch must find the neighbours n steps away along its snake on its own.

The q-state Potts model (hyper-parameter `q` > 2, files with the attribute q; q = 2, the
default, is everything above): the same networks read the states 0..q-1 as a one-hot (q input
channels) and give q logits a site, a categorical distribution: causal p(s_t | s_<t) with
p(s_0) = 1/q exactly (permuting the states leaves the Potts energy unchanged), conditional
p(s_i | rest) with exact logits beta n_k(i) + const (n_k(i): neighbours of i in state k), loss
the cross-entropy of the observed state; the energies are `sequence_blocks`' (its docstring
derives them): the causal one up to (1/beta) log Z as for Ising, the conditional one up to 2N/q
(logits carry a free constant per site), so a Potts conditional model is scored centred.

A spin-glass instance (hamiltonian "EA", hyper-parameter `instance`: its couplings J_h, J_v as the
data files record them): spins ±1, every formula above as for Ising (p(s_0 = ±1) = 1/2 still holds:
E(-s) = E(s) without a field; the conditional logit is 2 beta h_i with h_i = sum_j J_ij s_j), and
each branch reads a learned code of its snake position beside the spins (`sequence_blocks.SitePositions`),
since the couplings, hence the conditionals, differ from site to site. A position says nothing about
any spin, so the causal and conditional guarantees (no site reads itself or what follows) stand.

A causal model is a normalised distribution q over lattices with an exact log-likelihood, so
it is also a generator: `log_prob(grids)` gives log q, `sample(n, seed)` draws lattices spin by
spin with their log q (the RNN state carried along the snake); `thermodynamics.py` turns the
draws into free energies by importance sampling. The conditional model has neither.

Batches follow `pytorch_datasets`: (X, y[, beta]) with X = spins[:-1] (B, L-1, 1) ±1 and
y = spins[1:] in {0,1} (B, L-1, 1); 2D: (X_rows, X_cols, y[, beta]) with y (B, 2, L-1, 1).
The full sequence is cat(X[:, :1], 2y - 1).

Calling a model (the reference's signature; the same branches `predict_energy` runs):
- causal: `model(x)`, x = spins[:-1] (B, L-1, 1) -> logits (B, L-1, 1) of p(s_t=+1 | s_<t),
  t = 1..L-1; 2D `model(x_rows, x_cols)` -> logits stacked (B, 2, L-1, 1). So
  `nn.BCEWithLogitsLoss()(model(*batch[:-1]), batch[-1])` is the training loss.
  Potts: logits (B, L-1, q) (2D (B, 2, L-1, q)), y the target states (cross-entropy).
- conditional (`bidirectional=True`): `model(seq)`, seq = the WHOLE sequence (B, L, 1) ->
  logits (B, L, 1) of p(s_i=+1 | all other spins), target (seq + 1) / 2; 2D
  `model(seq_rows, seq_cols)` -> (B, 2, L, 1) (Potts: (B, L, q), (B, 2, L, q); the whole
  sequence is cat(x[:, :1], y)). Given spins[:-1] of its lattice (length
  n_x*n_y - 1) it raises a ValueError saying so. A joint model returns the same two branch
  logits, each in its own snake order; a site's logit is their sum (`joint_logits`).
- with attention: `(logits, weights)`, weights (B, Lq, Lk) over the inputs (causally masked,
  or with a zero diagonal); 2D: stacked (B, 2, Lq, Lk).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import ising
from sequence_blocks import (
    RNNEncoder,
    SelfAttention,
    SequenceModule,
    SitePositions,
    causal_energy,
    causal_mask,
    conditional_energy,
    diagonal_mask,
    encode_states,
    grids_to_sequences,
    input_channels,
    read_sites,
    sequences_to_grids,
    sinusoidal_encoding,
    site_inputs,
    site_log_probs,
)


@lru_cache(maxsize=64)
def _cols_position_of_rows(n_x: int, n_y: int) -> np.ndarray:
    """int64 (L,): the columns-snake position of the site at each rows-snake position."""
    site_in_cols = np.argsort(ising.snake_permutation(n_x, n_y, "cols"))
    return site_in_cols[ising.snake_permutation(n_x, n_y, "rows")]


class ProbabilityBranch(nn.Module):
    """One snake order.

    causal:      x = s_0..s_{L-2} (B, L-1, 1) -> logits of s_1..s_{L-1} (B, L-1)
    conditional: x = s_0..s_{L-1} (B, L, 1)   -> logits of every s_i given the others (B, L)
    Potts (q > 2): x holds the states, read as one-hot; logits (B, L-1, q) / (B, L, q).
    Also returns the attention weights (B, Lq, Lk) when asked, else None.
    """

    def __init__(self, cell, hidden_size, num_layers, conditional, attention, n_heads, q=2, n_sites=None):
        super().__init__()
        self.conditional, self.q = conditional, q
        self.positions = SitePositions(n_sites) if n_sites else None  # a model of an instance (sequence_blocks)
        self.encoder = RNNEncoder(cell, hidden_size, num_layers, mode="conditional" if conditional else "causal",
                                  input_size=site_inputs(q, n_sites))
        dim = self.encoder.out_dim
        self.attention = SelfAttention(dim, n_heads) if attention else None
        self.spin_embed = nn.Linear(input_channels(q), dim) if (attention and conditional) else None
        self.head = nn.Linear(dim, 1 if q == 2 else q)

    def forward(self, x, need_weights: bool = False):
        x = encode_states(x, self.q)
        feats = self.encoder(self.read(x))
        weights = None
        if self.attention is not None:
            length, dim = x.shape[1], feats.shape[-1]
            if self.conditional:
                kv = self.spin_embed(x) + sinusoidal_encoding(length, dim, device=x.device).to(feats.dtype)
                feats, weights = self.attention(feats, kv, diagonal_mask(length, x.device), need_weights)
            else:
                feats, weights = self.attention(feats, None, causal_mask(length, x.device), need_weights)
        z = self.head(feats)
        return (z.squeeze(-1) if self.q == 2 else z), weights

    def read(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """The encoder's input for encoded sites x (B, T, c) at snake positions start..start+T-1: x, and
        their position codes for a model of an instance. The conditional encoder flips the whole input,
        so its backward stack reads each site with its own position too."""
        return read_sites(self.positions, x, start)


class ProbabilityModel(SequenceModule):
    """Configurable probability model; see the module docstring for the formulas.

    Hyper-parameters (plain values, saved in the checkpoint): cell (gru|lstm), hidden_size,
    num_layers, bidirectional (False: causal; True: conditional p(s_i | rest)), attention,
    n_heads, two_d, joint (2D conditional: one logit per site, the sum of both snakes'), lr (Adam) and lr_schedule (constant|cosine), beta (of the training data:
    E = -(1/beta) log p), n_x, n_y, hamiltonian (used for the true energies in the test metrics),
    q (2: Ising, the default; > 2: the q-state Potts model, hamiltonian "POTTS<q>"), instance (a
    spin-glass instance's couplings, hamiltonian "EA": `hamiltonians.instance_attrs`; None otherwise).
    """

    family = "probability"

    @property
    def absolute_energy(self) -> bool:
        """The conditional Ising model's energy is absolute; the causal model's is E + (1/beta) log Z,
        a conditional Potts model's E + 2N/q (module docstring)."""
        return bool(self.hparams.bidirectional) and self.q == 2

    def __init__(
        self,
        cell: str = "gru",
        hidden_size: int = 512,
        num_layers: int = 1,
        bidirectional: bool = False,
        attention: bool = False,
        n_heads: int = 1,
        two_d: bool = False,
        joint: bool = False,
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
        if joint and not (two_d and bidirectional):
            raise ValueError("joint sums the two snakes' conditionals of a site: it needs the 2D conditional model "
                             "(two_d and bidirectional)")
        self.branches = nn.ModuleDict(
            {
                order: ProbabilityBranch(cell, hidden_size, num_layers, bidirectional, attention, n_heads, self.q,
                                         self.n_sites)
                for order in self.orders
            }
        )

    # -- conditionals ---------------------------------------------------------------------
    def logits(self, seq: torch.Tensor, order: str = "rows", need_weights: bool = False):
        """Full sequence seq (B, L, 1) ±1 -> (logits, weights).

        causal: logits (B, L-1) of p(s_t=+1 | s_<t) for t = 1..L-1; weights (B, L-1, L-1)
        over input positions 0..L-2. conditional: logits (B, L) of p(s_i=+1 | rest);
        weights (B, L, L) with a zero diagonal. Potts: seq holds the states, logits (B, ·, q).
        """
        branch = self.branches[order]
        return branch(seq if self.hparams.bidirectional else seq[:, :-1], need_weights=need_weights)

    def forward(self, *xs: torch.Tensor):
        """x = spins[:-1] (causal) or the whole sequence (conditional), (B, ·, 1) ±1, two of them
        for 2D -> logits (B, ·, 1) (2D (B, 2, ·, 1)) [, weights]; see the module docstring."""
        hint = ("bidirectional, it is the conditional model p(s_i | all other spins); from a ProbabilityDataset "
                f"batch (x, y): torch.cat([x[:, :1], {'2 * y - 1' if self.q == 2 else 'y'}], dim=1)")
        hint += " with y[:, 0] (rows) and y[:, 1] (columns)" if self.hparams.two_d else ""
        seqs = self.forward_inputs(xs, whole_lattice=self.hparams.bidirectional, hint=hint)
        logits, weights = [], {}
        for order, x in seqs.items():
            z, weights[order] = self.branches[order](x, need_weights=self.hparams.attention)
            logits.append(z.unsqueeze(-1) if self.q == 2 else z)  # (B, ·, 1) or (B, ·, q)
        return self.with_weights(self.stack_orders(logits), weights)

    def joint_logits(self, seqs: dict, shape, need_weights: bool = False):
        """A joint model's conditionals: seqs {"rows", "cols"} (B, L, 1) of an n_x x n_y lattice ->
        (logits (B, L) (Potts (B, L, q)) of p(s_i=+1 | rest) in rows snake order, the sum of both
        branches' logits of each site; attention weights per order)."""
        z_rows, w_rows = self.logits(seqs["rows"], "rows", need_weights)
        z_cols, w_cols = self.logits(seqs["cols"], "cols", need_weights)
        n_x, n_y = shape
        take = torch.as_tensor(_cols_position_of_rows(n_x, n_y), device=z_cols.device)
        return z_rows + z_cols[:, take], {"rows": w_rows, "cols": w_cols}

    def energy_from_sequences(self, seqs: dict, return_attention: bool = False, shape=None):
        """seqs {"rows": (B, L, 1)[, "cols": ...]} full snake sequences (of an n_x x n_y lattice,
        `shape`, default the training lattice) -> E (B,), attention."""
        if self.hparams.joint:
            z, w = self.joint_logits(seqs, shape or (self.hparams.n_x, self.hparams.n_y), return_attention)
            attn = {k: v for k, v in w.items() if v is not None}
            return conditional_energy(z, seqs["rows"].squeeze(-1), self.hparams.beta, self.q), attn
        energies, attn = [], {}
        for order in self.orders:
            e, _, w = self._order_energy(seqs[order], order, return_attention)
            energies.append(e)
            if w is not None:
                attn[order] = w
        return torch.stack(energies).mean(dim=0), attn

    def _order_energy(self, seq, order, need_weights=False):
        z, w = self.logits(seq, order, need_weights)
        spins = seq.squeeze(-1)
        beta = self.hparams.beta
        if self.hparams.bidirectional:
            return conditional_energy(z, spins, beta, self.q), z, w
        if w is not None:  # causal: pad to (B, L, L); the last spin is never an input
            w = F.pad(w, (0, 1, 0, 1))
        return causal_energy(z, spins, beta, self.q), z, w

    # -- the causal model as a distribution: log q and sampling ----------------------------
    def _check_causal(self, order: str) -> None:
        if self.hparams.bidirectional:
            raise ValueError("the conditional (bidirectional) model p(s_i | all other spins) is not a normalised "
                             "distribution over lattices: it has no log q and cannot be sampled spin by spin; "
                             "use a causal model (bidirectional=False)")
        if order not in self.orders:
            raise ValueError(f"order must be one of {self.orders} for this model, got {order!r}")

    def log_prob(self, grids: torch.Tensor, order: str = "rows") -> torch.Tensor:
        """grids (B, n_x, n_y) ±1 -> log q(lattice) float32 (B,) of the `order` branch (each branch of
        a 2D model is a normalised model on its own): log 1/2 + sum_t log q(s_t | s_<t)
        (Potts: states 0..q-1, log 1/q + ...)."""
        self._check_causal(order)
        seq = grids_to_sequences(torch.as_tensor(grids).to(self.device), order)
        z, _ = self.logits(seq, order)
        return site_log_probs(z, seq[:, 1:, 0], self.q).sum(dim=1) - math.log(float(self.q))

    @torch.no_grad()
    def sample(self, n: int, seed=None, order: str = "rows", batch_size: int = 8192, progress: bool = False):
        """Draw n lattices from the causal model -> (grids int8 (n, n_x, n_y) ±1, log_q float64 (n,)).

        Spin by spin along the `order` snake (for a 2D model: that branch, a normalised model on
        its own): s_0 = ±1 with probability 1/2, then s_{t+1} ~ q(. | s_<=t) (Potts: states
        0..q-1, s_0 uniform, each next state drawn from the q-way softmax). The RNN state is
        carried from spin to spin (one recurrent step per spin, no rerun of the prefix); with
        attention, the features of the spins drawn so far are the keys, exactly those the
        causal mask allows in training. log_q is the model's own log-probability of each draw.
        `progress`: a progress bar over the draws (on a terminal only).
        """
        from tqdm.auto import tqdm

        self._check_causal(order)
        if n < 1 or batch_size < 1:
            raise ValueError(f"n and batch_size must be positive, got {n} and {batch_size}")
        n_x, n_y = int(self.hparams.n_x), int(self.hparams.n_y)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed) if seed is not None else int(torch.seed()))
        was_training = self.training
        self.eval()
        grids, log_q = [], []
        with tqdm(total=n, unit="lattices", unit_scale=True, desc="sampling", disable=not progress or None) as bar:
            for start in range(0, n, batch_size):
                seq, lq = self._sample_sequences(self.branches[order], min(batch_size, n - start), n_x * n_y, gen)
                grids.append(sequences_to_grids(seq, n_x, n_y, order).to(torch.int8).cpu().numpy())
                log_q.append(lq.cpu().numpy())
                bar.update(len(lq))
        self.train(was_training)
        return np.concatenate(grids), np.concatenate(log_q)

    def _sample_sequences(self, branch, b: int, length: int, gen):
        """(sequences float32 (b, L) ±1 (Potts: states), log q float64 (b,)) drawn from a causal branch."""
        rnn, attention, q = branch.encoder.rnn, branch.attention, self.q
        if q == 2:
            spin = torch.where(torch.rand(b, generator=gen, device=self.device) < 0.5, -1.0, 1.0)
        else:
            spin = torch.randint(q, (b,), generator=gen, device=self.device).float()
        seq, state, keys = [spin], None, []
        log_q = torch.full((b,), -math.log(float(q)), dtype=torch.float64, device=self.device)
        for t in range(length - 1):
            feats, state = rnn(branch.read(encode_states(spin.view(b, 1, 1), q), t), state)  # (b, 1, D): read s_0..s_t
            if attention is not None:
                keys.append(feats)
                feats, _ = attention(feats, torch.cat(keys, dim=1))
            if q == 2:
                z = branch.head(feats).view(b).float()             # logit of q(s_{t+1} = +1 | s_<=t)
                spin = torch.where(torch.rand(b, generator=gen, device=self.device) < torch.sigmoid(z), 1.0, -1.0)
                log_q += F.logsigmoid(spin * z).double()
            else:
                log_p = torch.log_softmax(branch.head(feats).view(b, q).float(), dim=-1)  # log q(k | s_<=t)
                spin = torch.multinomial(log_p.exp(), 1, generator=gen).view(b).float()
                log_q += log_p.gather(1, spin.long()[:, None]).view(b).double()
            seq.append(spin)
        return torch.stack(seq, dim=1), log_q

    # -- training -------------------------------------------------------------------------
    def full_sequences(self, batch) -> dict:
        """Rebuild the full snake sequences (B, L, 1) ±1 (Potts: states) from a dataset batch,
        whose targets y are class indices: s = 2y - 1 for Ising, s = y for Potts."""
        spin = (lambda y: 2 * y - 1) if self.q == 2 else (lambda y: y)
        if self.hparams.two_d:
            x_rows, x_cols, y = batch[0], batch[1], batch[2]
            return {
                "rows": torch.cat([x_rows[:, :1], spin(y[:, 0])], dim=1),
                "cols": torch.cat([x_cols[:, :1], spin(y[:, 1])], dim=1),
            }
        x, y = batch[0], batch[1]
        return {"rows": torch.cat([x[:, :1], spin(y)], dim=1)}

    def site_nll(self, z: torch.Tensor, spins: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of the observed sites, per sample: z (B, T) Bernoulli logits and
        spins (B, T) ±1 (BCE, the Ising loss), or z (B, T, q) and states (cross-entropy) -> (B,)."""
        if self.q == 2:
            target = ((spins + 1) / 2).float()
            return F.binary_cross_entropy_with_logits(z.float(), target, reduction="none").mean(dim=1)
        return F.cross_entropy(z.float().transpose(1, 2), spins.long(), reduction="none").mean(dim=1)

    def per_sample_loss(self, batch, with_energies: bool = False):
        """-> (BCE per sample (B,), predicted E (B,) or None, true E (B,) or None).

        Causal: mean BCE of every next spin (negative log-likelihood / (L-1));
        bidirectional: mean BCE of every spin given the rest (pseudo-likelihood).
        Potts: the same with the q-way cross-entropy.
        """
        seqs = self.full_sequences(batch)
        if self.hparams.joint:
            z, _ = self.joint_logits(seqs, (self.hparams.n_x, self.hparams.n_y))
            spins = seqs["rows"].squeeze(-1)
            loss = self.site_nll(z, spins)
            if not with_energies:
                return loss, None, None
            return loss, conditional_energy(z, spins, self.hparams.beta, self.q), self.true_energies(seqs["rows"])
        losses, energies = [], []
        for order in self.orders:
            seq = seqs[order]
            energy, z, _ = self._order_energy(seq, order)
            spins = seq.squeeze(-1) if self.hparams.bidirectional else seq.squeeze(-1)[:, 1:]
            losses.append(self.site_nll(z, spins))
            energies.append(energy)
        loss = torch.stack(losses).mean(dim=0)
        if not with_energies:
            return loss, None, None
        return loss, torch.stack(energies).mean(dim=0), self.true_energies(seqs["rows"])

    def true_energies(self, rows_seq: torch.Tensor) -> torch.Tensor:
        """Exact energies of the lattices behind rows snake sequences (B, L, 1)."""
        n_x, n_y = self.hparams.n_x, self.hparams.n_y
        if rows_seq.shape[1] != n_x * n_y:
            raise ValueError(
                f"sequences of length {rows_seq.shape[1]} do not match the {n_x} x {n_y} lattice in the "
                "hyper-parameters; test on data of the training lattice size or use predict_energy"
            )
        grids = sequences_to_grids(rows_seq, n_x, n_y, "rows").detach().cpu().numpy()
        return torch.as_tensor(self.system.energy(grids), dtype=torch.float64,
                               device=rows_seq.device)


# ----------------------------------------------------------------------------- the reference's class names
# Each fixes the defaults of attention and two_d; every other hyper-parameter is a keyword, as for
# ProbabilityModel. They call ProbabilityModel.__init__ directly (not super()), so Lightning records
# the hyper-parameters of ProbabilityModel's signature alone: a preset's checkpoint holds the same values.
class ProbabilityRNN(ProbabilityModel):
    """The reference's `ProbabilityRNN` (its original model): causal GRU over the rows snake."""

    def __init__(self, **hparams):
        ProbabilityModel.__init__(self, **{"attention": False, "two_d": False, **hparams})


class ProbabilityAttentionRNN(ProbabilityModel):
    """The reference's `ProbabilityAttentionRNN`: GRU + masked attention; `model(x)` -> (logits, weights)."""

    def __init__(self, **hparams):
        ProbabilityModel.__init__(self, **{"attention": True, "two_d": False, **hparams})


class ProbabilityRNN2D(ProbabilityModel):
    """The reference's `ProbabilityRNN2D`: rows and columns snakes; `model(x_rows, x_cols)`."""

    def __init__(self, **hparams):
        ProbabilityModel.__init__(self, **{"attention": False, "two_d": True, **hparams})


class ProbabilityAttentionRNN2D(ProbabilityModel):
    """The reference's `ProbabilityAttentionRNN2D`: rows and columns snakes + masked attention."""

    def __init__(self, **hparams):
        ProbabilityModel.__init__(self, **{"attention": True, "two_d": True, **hparams})
