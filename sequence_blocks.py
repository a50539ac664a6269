"""Building blocks shared by `energy_models.py` and `probability_models.py`.

Everything here works on spin sequences: float tensors (B, L, 1) with values ±1, the
lattice read in snake order (`ising.snake_permutation`). Nothing depends
on the lattice size, so a model trained on 8 x 8 runs on any other size (except a model of one
spin-glass instance, which knows its sites' positions: `SitePositions`).

The q-state Potts model (`potts.py`, hyper-parameter q > 2; q = 2 is the Ising model and its
code path is unchanged) runs through the same code: its sequences hold the states 0..q-1
(B, L, 1), which the networks read as a one-hot (B, L, q) (`encode_states`: a state is a
category, not a number), and a site's distribution is categorical with logits (..., q) instead
of one Bernoulli logit (...). The log-space energies take q and generalise as follows:
- causal: log p(lattice) = log p(s_0) + sum_t log softmax(z_t)[s_t], with p(s_0) = 1/q exactly
  (the Potts energy is invariant under permuting the states, as the Ising one under s -> -s);
  E = -(1/beta) log p(lattice), up to (1/beta) log Z as for Ising.
- conditional: the exact law is p(s_i = k | rest) ∝ exp(beta n_k(i)), n_k(i) the neighbours of i
  in state k. Logits are fixed by the law only up to a constant per site, so the energy uses the
  gauge-free z_ik - mean_l z_il = beta (n_k(i) - 4/q) (sum_k n_k(i) = 4 neighbours), and since
  E = -sum_<ij> delta(s_i, s_j) = -1/2 sum_i n_{s_i}(i),
      E_model = -(1/(2 beta)) sum_i (z_{i,s_i} - mean_l z_il) = E + 2N/q:
  the energy up to a constant (N sites), no longer absolute as the Ising conditional's.
- the energy models' logsigmoid head: E = (1/beta) sum_t log softmax(a_t)[s_t] (q logits a site).

- `RNNEncoder`      GRU/LSTM over the sequence. Three modes:
    "full"         ordinary (optionally bidirectional) RNN: output t has read s_t
                   (and, bidirectional, every spin);
    "causal"       unidirectional: output t has read s_0 .. s_t only;
    "conditional"  two independent unidirectional stacks, output i = [fwd state after
                   s_{i-1}, bwd state after s_{i+1}]: it has read every spin except s_i.
                   The two directions are separate stacks on purpose: a multi-layer
                   `nn.GRU(bidirectional=True)` feeds both directions of layer k into
                   layer k+1, so its forward state before i would already know s_i.
- `SelfAttention`   one `nn.MultiheadAttention` with a residual connection and an optional
                    boolean mask; returns its weights (B, Lq, Lk) on request, for the plots.
- `causal_mask`, `diagonal_mask`, `sinusoidal_encoding` (length-agnostic positions).
- `SitePositions`: a learned code per snake position, read beside the spins by the models of a
  spin-glass instance (hyper-parameter `instance`: its couplings), whose conditionals differ from
  site to site; such a model reads the lattices of its instance only (`SequenceModule.check_lattice`).
- Log-space energies: `log_prob_observed`, `causal_energy`, `conditional_energy`,
  `log_prob_energy` (no products of probabilities, no clamping).
- `grids_to_sequences` / `sequences_to_grids`: lattice <-> snake sequence in torch.
- `encode_states`, `check_lattice_model` (q, Hamiltonian and instance agree), `exact_energy` (the
  true energy of grids of either model, for the test metrics and the teacher's test labels).
- `SequenceModule`: the sequence models' base, a `lattice_module.LatticeModule` (the steps,
  optimiser and schedule, logging and test metrics of every model) with the one check of a
  configuration, `predict_energy` through the snake sequences, and the plumbing of `forward`,
  the reference's call signature. `IsingSequenceModule` is its former name.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import hamiltonians
import ising
import potts
from checks import check_choice, check_positive_int, check_positive_number
from lattice_module import LR_SCHEDULES, LatticeModule

RNN_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


# ----------------------------------------------------------------------------- snake order
@lru_cache(maxsize=64)
def _permutation(n_x: int, n_y: int, order: str) -> np.ndarray:
    return ising.snake_permutation(n_x, n_y, order=order)


def grids_to_sequences(grids: torch.Tensor, order: str = "rows") -> torch.Tensor:
    """grids (B, n_x, n_y) ±1, any dtype -> float32 (B, L, 1) snake sequence, L = n_x*n_y."""
    if grids.dim() != 3:
        raise ValueError(f"grids must have shape (B, n_x, n_y), got {tuple(grids.shape)}")
    b, n_x, n_y = grids.shape
    perm = torch.as_tensor(_permutation(int(n_x), int(n_y), order), device=grids.device)
    return grids.reshape(b, -1)[:, perm].to(torch.float32).unsqueeze(-1)


def sequences_to_grids(seq: torch.Tensor, n_x: int, n_y: int, order: str = "rows") -> torch.Tensor:
    """Inverse of `grids_to_sequences`: seq (B, L) or (B, L, 1) -> (B, n_x, n_y)."""
    if seq.dim() == 3:
        seq = seq.squeeze(-1)
    if seq.shape[1] != n_x * n_y:
        raise ValueError(f"sequence length {seq.shape[1]} does not match a {n_x} x {n_y} lattice")
    perm = torch.as_tensor(_permutation(int(n_x), int(n_y), order), device=seq.device)
    flat = torch.empty_like(seq)
    flat[:, perm] = seq
    return flat.reshape(seq.shape[0], n_x, n_y)


# ----------------------------------------------------------------------------- Ising or Potts
def check_lattice_model(hamiltonian, q, instance=None) -> int:
    """q as an int (2: Ising, the default; > 2: Potts) after checking that the Hamiltonian is one of
    that model: ISING1 / ISING2 for q = 2, POTTS<q> (the generator's name, nearest neighbours)
    for q > 2, or a spin-glass instance (EA with `instance`, its couplings: `hamiltonians.instance_attrs`).
    ValueError otherwise."""
    q = potts.check_q(q)
    if instance is not None or (q == 2 and hamiltonian in hamiltonians.BUILT_IN
                                and hamiltonian not in ising.HAMILTONIANS):
        hamiltonians.from_record(hamiltonian, q, instance)       # an instance, or EA without one: says so
    elif q == 2:
        check_choice("hamiltonian", hamiltonian, ising.HAMILTONIANS)
    elif hamiltonian != potts.Potts(q).name:
        raise ValueError(f"q = {q} is the Potts model: hamiltonian must be {potts.Potts(q).name!r} (got "
                         f"{hamiltonian!r}); q = 2 is the Ising model (ISING1, ISING2)")
    return q


def exact_energy(grids: np.ndarray, hamiltonian: str = "ISING1", q: int = 2, instance=None) -> np.ndarray:
    """True energies float64 (B,) of grids (B, n_x, n_y) under a built-in Hamiltonian (ISING1,
    ISING2: spins ±1, q = 2; POTTS<q>: states 0..q-1; EA with its `instance`), the Hamiltonian
    object's own energy; ValueError for any other name."""
    try:
        system = hamiltonians.from_record(hamiltonian, q, instance)
    except ValueError:
        raise ValueError(f"no exact energy for the Hamiltonian {hamiltonian!r}: use one of "
                         f"{', '.join(hamiltonians.BUILT_IN)}") from None
    return np.asarray(system.energy(grids), dtype=np.float64)


def input_channels(q: int) -> int:
    """What a network reads per site: the spin itself (Ising) or a one-hot of the state (Potts)."""
    return 1 if q == 2 else q


def encode_states(x: torch.Tensor, q: int) -> torch.Tensor:
    """x (B, L, 1) -> the network's input: x itself (±1, q = 2), or the one-hot (B, L, q) of the
    Potts states 0..q-1 in x's float dtype (states are categories: no order, no distance)."""
    if q == 2:
        return x
    return F.one_hot(x[..., 0].long(), q).to(x.dtype if x.is_floating_point() else torch.float32)


# ----------------------------------------------------------------------------- positions
POSITION_DIM = 16


class SitePositions(nn.Module):
    """A learned code (POSITION_DIM) per snake position, appended to what a network reads at each site.

    Why: a model of a system bound to one lattice (a spin-glass instance: a coupling per bond) needs
    p(s_t | ...) to depend on WHERE t is, not only on the spins read so far; an RNN reading spins only
    would have to count its steps to know. A translation-invariant system (Ising, Potts) has no use for
    it, and its models have none (their checkpoints and any-size predictions are unchanged).
    A position is information about the lattice, never about a spin, so no model leaks through it.

    forward(x (B, T, c), start=0) -> (B, T, c + POSITION_DIM), x's sites at positions start .. start+T-1.
    """

    def __init__(self, n_sites: int):
        super().__init__()
        self.n_sites = int(n_sites)
        self.code = nn.Embedding(self.n_sites, POSITION_DIM)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        b, t = x.shape[:2]
        if start + t > self.n_sites:
            raise ValueError(f"a sequence of {start + t} sites, but this model knows the positions of its "
                             f"{self.n_sites} sites only (its instance's lattice)")
        code = self.code(torch.arange(start, start + t, device=x.device)).to(x.dtype)
        return torch.cat([x, code.expand(b, t, -1)], dim=-1)


def read_sites(positions, x: torch.Tensor, start: int = 0) -> torch.Tensor:
    """What a branch's network reads: x (B, T, c) itself, or with its positions appended (`SitePositions`)."""
    return x if positions is None else positions(x, start)


def site_inputs(q: int, n_sites) -> int:
    """Input channels of a branch's network: the spin or one-hot state, and the position code if any."""
    return input_channels(q) + (POSITION_DIM if n_sites else 0)


# ----------------------------------------------------------------------------- encoders
def _make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool) -> nn.RNNBase:
    return RNN_CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                           bidirectional=bidirectional)


class RNNEncoder(nn.Module):
    """x (B, L, input_size) -> features (B, L, out_dim); see the module docstring for the modes.
    input_size: 1 for Ising spins, q for one-hot Potts states (`encode_states`)."""

    def __init__(self, cell: str, hidden_size: int, num_layers: int, mode: str, bidirectional: bool = False,
                 input_size: int = 1):
        super().__init__()
        if mode not in ("full", "causal", "conditional"):
            raise ValueError(f"unknown encoder mode {mode!r}")
        self.mode = mode
        if mode == "full":
            self.rnn = _make_rnn(cell, input_size, hidden_size, num_layers, bidirectional)
            self.out_dim = hidden_size * (2 if bidirectional else 1)
        elif mode == "causal":
            self.rnn = _make_rnn(cell, input_size, hidden_size, num_layers, False)
            self.out_dim = hidden_size
        else:
            self.fwd = _make_rnn(cell, input_size, hidden_size, num_layers, False)
            self.bwd = _make_rnn(cell, input_size, hidden_size, num_layers, False)
            # States "before the first spin" / "after the last spin": learned vectors.
            self.fwd_start = nn.Parameter(torch.zeros(hidden_size))
            self.bwd_start = nn.Parameter(torch.zeros(hidden_size))
            self.out_dim = 2 * hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode != "conditional":
            return self.rnn(x)[0]
        b = x.shape[0]
        fwd = self.fwd(x)[0]  # fwd[:, t] has read s_0..s_t
        bwd = self.bwd(torch.flip(x, dims=[1]))[0].flip(dims=[1])  # bwd[:, t] has read s_t..s_{L-1}
        # shift: position i gets fwd[i-1] and bwd[i+1], so it never reads s_i
        before = torch.cat([self.fwd_start.expand(b, 1, -1), fwd[:, :-1]], dim=1)
        after = torch.cat([bwd[:, 1:], self.bwd_start.expand(b, 1, -1)], dim=1)
        return torch.cat([before, after], dim=-1)


# ----------------------------------------------------------------------------- attention
def causal_mask(length: int, device=None) -> torch.Tensor:
    """bool (L, L), True where query t may NOT attend key j (j > t)."""
    return torch.triu(torch.ones(length, length, dtype=torch.bool, device=device), diagonal=1)


def diagonal_mask(length: int, device=None) -> torch.Tensor:
    """bool (L, L), True on the diagonal: query i may not attend key i."""
    return torch.eye(length, dtype=torch.bool, device=device)


def sinusoidal_encoding(length: int, dim: int, device=None) -> torch.Tensor:
    """(L, dim) fixed sinusoidal position code (Vaswani et al.); defined for any L."""
    pos = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)
    i = torch.arange(0, dim, 2, dtype=torch.float32, device=device)
    freq = torch.exp(-math.log(10000.0) * i / dim)
    enc = torch.zeros(length, dim, device=device)
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return enc


class SelfAttention(nn.Module):
    """One multi-head attention layer with a residual connection.

    forward(query, key_value=None, mask=None, need_weights=False) -> (out, weights or None);
    out = query + attn(query, kv, kv). weights (B, Lq, Lk) averaged over heads.
    `mask` is boolean (Lq, Lk), True = not allowed. `n_heads` must divide `dim`.
    """

    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, n_heads, batch_first=True)

    def forward(self, query, key_value=None, mask=None, need_weights: bool = False):
        kv = query if key_value is None else key_value
        out, weights = self.attn(query, kv, kv, attn_mask=mask, need_weights=need_weights, average_attn_weights=True)
        return query + out, weights


# ----------------------------------------------------------------------------- log-space energies
def wide(t: torch.Tensor) -> torch.Tensor:
    """t in float32 at least (bf16/fp16 -> float32, float64 stays): the dtype energies are summed in."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def log_prob_observed(logits: torch.Tensor, spins: torch.Tensor) -> torch.Tensor:
    """log p(observed spin) for Bernoulli logits of p(s=+1): logsigmoid(s * z), >= float32. Shapes equal.

    At least float32, also under bf16 autocast: the energies sum L of these, and a bf16 sum over
    64 sites loses 0.1-0.4 in energy (8 significant bits)."""
    return F.logsigmoid(wide(spins) * wide(logits))


def log_prob_states(logits: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """log p(observed state) for categorical logits (..., q) and states (...) in 0..q-1 (any dtype):
    log softmax(logits)[state], >= float32 for the same reason as `log_prob_observed`."""
    return torch.log_softmax(wide(logits), dim=-1).gather(-1, states.long().unsqueeze(-1)).squeeze(-1)


def site_log_probs(logits: torch.Tensor, spins: torch.Tensor, q: int = 2) -> torch.Tensor:
    """log p of every observed site: Bernoulli logits (...) and spins ±1 (q = 2), or categorical
    logits (..., q) and Potts states (q > 2) -> (...), >= float32."""
    return log_prob_observed(logits, spins) if q == 2 else log_prob_states(logits, spins)


def causal_energy(logits: torch.Tensor, spins: torch.Tensor, beta: float, q: int = 2) -> torch.Tensor:
    """Energy from a causal (autoregressive) model, E = -(1/beta) log p(lattice).

    logits (B, L-1): logit of p(s_t=+1 | s_<t) for t = 1..L-1; spins (B, L) ±1.
    log p(s_0) = -log 2 exactly for a zero-field Ising model (spin-flip symmetry).
    Potts (q > 2): logits (B, L-1, q), spins (B, L) the states, log p(s_0) = -log q.
    Equals the true energy plus the constant (1/beta) log Z for exact conditionals.
    """
    logp = site_log_probs(logits, spins[:, 1:], q).sum(dim=1) - math.log(float(q))
    return -logp / beta


def conditional_energy(logits: torch.Tensor, spins: torch.Tensor, beta: float, q: int = 2) -> torch.Tensor:
    """Energy from the conditionals p(s_i=+1 | all other spins) of a pairwise model.

    logit p(s_i=+1 | rest) = 2 beta h_i, so h_i = logit / (2 beta) and E = -1/2 sum_i s_i h_i
    (each bond counted once). logits, spins (B, L) -> (B,). Exact, no additive constant.
    Potts (q > 2): logits (B, L, q), spins (B, L) the states; E = -(1/(2 beta)) sum_i
    (z_{i,s_i} - mean_k z_ik), the true energy plus 2N/q for exact conditionals (module docstring).
    """
    if q > 2:
        z = wide(logits)
        observed = z.gather(-1, spins.long().unsqueeze(-1)).squeeze(-1)
        return -(observed - z.mean(dim=-1)).sum(dim=1) / (2.0 * beta)
    return -(wide(spins) * wide(logits)).sum(dim=1) / (4.0 * beta)  # >= float32 sum, as above


def log_prob_energy(logits: torch.Tensor, spins: torch.Tensor, beta: float, q: int = 2) -> torch.Tensor:
    """The reference energy head: E = (1/beta) sum_t log sigmoid(s_t a_t) (always <= 0);
    Potts: (1/beta) sum_t log softmax(a_t)[s_t], logits a (B, L, q)."""
    return site_log_probs(logits, spins, q).sum(dim=1) / beta


# ----------------------------------------------------------------------------- the sequence models' base
class SequenceModule(LatticeModule):
    """What the sequence models share on top of `LatticeModule` (the steps, optimiser, logging
    and test metrics of every model): the one check of a configuration, the snake orders,
    `predict_energy` through `energy_from_sequences` and the plumbing of `forward`.

    Subclasses set `family` (and `choices` for their own enumerated hyper-parameters), call
    `save_hyperparameters()` then `check_hparams()` in `__init__`, and implement
    `energy_from_sequences(seqs, return_attention, shape)`, `forward(*xs)` (the reference's call)
    and `per_sample_loss(batch, with_energies) -> (loss (B,), predicted E (B,), true E (B,))`
    (the energies may be None when `with_energies` is False).
    """

    # hyper-parameter -> its allowed values; subclasses add their own
    choices = {"cell": tuple(RNN_CELLS), "lr_schedule": LR_SCHEDULES, "hamiltonian": ising.HAMILTONIANS}

    # -- configuration ----------------------------------------------------------------------
    def check_hparams(self) -> None:
        """Refuse a bad configuration with a one-line ValueError. The one check of the
        hyper-parameters: the trainers report its message as their flag error."""
        hp = self.hparams
        for name, options in self.choices.items():
            if name == "hamiltonian":  # and q: a Potts model's Hamiltonian is POTTS<q>; an instance's couplings
                check_lattice_model(hp[name], hp.get("q", 2), hp.get("instance"))
            else:
                check_choice(name, hp[name], options)
        bound = hamiltonians.lattice_of(self.system)
        if bound is not None and bound != (hp.n_x, hp.n_y):
            raise ValueError(f"the instance {self.system.label} is of the {bound[0]} x {bound[1]} lattice, but n_x, "
                             f"n_y = {hp.n_x}, {hp.n_y}")
        for name in ("hidden_size", "num_layers", "n_heads"):
            check_positive_int(name, hp[name])
        for name in ("beta", "lr"):
            check_positive_number(name, hp[name])
        if hp.n_heads != 1 and not hp.attention:
            raise ValueError(f"n_heads={hp.n_heads} has no effect without attention (--attention); "
                             "add attention or drop n_heads")
        dim = hp.hidden_size * (2 if hp.bidirectional else 1)
        if hp.attention and dim % hp.n_heads:
            raise ValueError(f"n_heads={hp.n_heads} must divide the attention dimension {dim} (hidden_size"
                             f"{' x 2, bidirectional' if hp.bidirectional else ''}); "
                             f"pick a divisor of {dim} or change hidden_size")

    @property
    def orders(self):
        return ("rows", "cols") if self.hparams.two_d else ("rows",)

    @property
    def system(self):
        """The Hamiltonian object the model was trained on (`hamiltonians.from_record` of its
        hyper-parameters hamiltonian, q and instance): its energy, exact values and lattice."""
        hp = self.hparams
        return hamiltonians.from_record(hp.hamiltonian, int(hp.get("q", 2)), hp.get("instance"))

    @property
    def n_sites(self):
        """Sites of the one lattice a model of an instance reads (its branches know their positions,
        `SitePositions`), None for a model of any lattice size."""
        return self.hparams.n_x * self.hparams.n_y if self.hparams.get("instance") else None

    def check_lattice(self, shape) -> None:
        """ValueError unless a model of an instance is given lattices of its own size (n_x, n_y)."""
        bound = hamiltonians.lattice_of(self.system) if self.hparams.get("instance") else None
        if bound is not None and tuple(int(n) for n in shape) != bound:
            raise ValueError(f"this model learned the {bound[0]} x {bound[1]} spin-glass instance "
                             f"{self.system.label}; it reads only its lattices, not {' x '.join(map(str, shape))}")

    # -- the prediction entry point ---------------------------------------------------------
    def predict_energy(self, grids: torch.Tensor, return_attention: bool = False):
        """grids (B, n_x, n_y) ±1 (Potts: states 0..q-1), any dtype, any lattice size (a model of
        an instance: its own, else ValueError) -> energies float32 (B,).

        With `return_attention=True` also returns {"rows": (B, L, L)[, "cols": ...]}
        attention weights indexed by sequence positions (query, key) of that snake order
        (empty dict for models without attention). Runs in the current grad mode; wrap in
        `torch.no_grad()` for inference.
        """
        grids = torch.as_tensor(grids).to(self.device)
        self.check_lattice(tuple(grids.shape[1:]))
        seqs = {order: grids_to_sequences(grids, order) for order in self.orders}
        energy, attn = self.energy_from_sequences(seqs, return_attention=return_attention, shape=tuple(grids.shape[1:]))
        energy = energy.float()
        return (energy, attn) if return_attention else energy

    # -- forward: the reference's call signature ---------------------------------------------
    def forward_inputs(self, xs: tuple, whole_lattice: bool, hint: str = "see its forward") -> dict:
        """The sequences given to `forward` -> {"rows": x[, "cols": x_cols]}, checked.

        One float tensor (B, L, 1) ±1 (Potts: the states) for a 1D model, two (rows, columns snakes) for a 2D
        one. A model that reads the whole lattice (`whole_lattice`) refuses length
        n_x*n_y - 1 of its training lattice: that is spins[:-1], the causal models' input.
        """
        name, n = type(self).__name__, len(self.orders)
        if len(xs) != n or any(x.dim() != 3 or x.shape[-1] != 1 or x.shape != xs[0].shape for x in xs):
            raise ValueError(f"{name} takes {'x_rows, x_cols' if n == 2 else 'x'}: {n} sequence(s) of shape "
                             f"(B, L, 1); got shapes {[tuple(x.shape) for x in xs]}")
        length = self.hparams.n_x * self.hparams.n_y
        if whole_lattice and xs[0].shape[1] == length - 1:
            raise ValueError(f"{name} reads the whole lattice: pass the full snake sequence(s) (B, {length}, 1), "
                             f"not spins[:-1] ({length - 1} spins); {hint}")
        return dict(zip(self.orders, xs))

    def stack_orders(self, per_order: list) -> torch.Tensor:
        """One tensor per snake order -> that tensor (1D model) or stacked on dim 1 (2D)."""
        return torch.stack(per_order, dim=1) if self.hparams.two_d else per_order[0]

    def with_weights(self, out: torch.Tensor, weights: dict):
        """`out`, and for a model with attention `(out, weights)` with the weights (B, Lq, Lk)
        of the single order, or stacked (B, 2, Lq, Lk) (rows, columns) for a 2D model."""
        if not self.hparams.attention:
            return out
        return out, self.stack_orders([weights[order] for order in self.orders])


IsingSequenceModule = SequenceModule  # the name this class had before LatticeModule
