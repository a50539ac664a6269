"""Building blocks shared by `energy_models.py` and `probability_models.py`.

Everything here works on spin sequences: float tensors (B, L, 1) with values ±1, the
lattice read in snake order (see `pytorch_datasets.snake_permutation`). Nothing depends
on the lattice size, so a model trained on 8 x 8 runs on any other size.

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
- Log-space energies: `log_prob_observed`, `causal_energy`, `conditional_energy`,
  `log_prob_energy` (no products of probabilities, no clamping).
- `grids_to_sequences` / `sequences_to_grids`: lattice <-> snake sequence in torch.
- `check_choice`, `check_positive_int`, `check_positive_number`: the value checks of the
  models' hyper-parameters (one-line ValueErrors, which the trainers show as flag errors).
- `IsingSequenceModule`: the LightningModule base both families share (the one check of a
  configuration, Adam, logging, exact whole-test-set metrics across DDP ranks,
  `predict_energy`, and the plumbing of `forward`, the reference's call signature).
- `make_presets`: the reference's class names (`EnergyRNN`, `ProbabilityAttentionRNN2D`, ...)
  as subclasses that fix `attention` and `two_d`, built from one table.
"""
from __future__ import annotations

import math
import numbers
from functools import lru_cache

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler

RNN_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


# ----------------------------------------------------------------------------- snake order
@lru_cache(maxsize=64)
def _permutation(n_x: int, n_y: int, order: str) -> np.ndarray:
    from pytorch_datasets import snake_permutation  # the one definition of the snake order

    return np.asarray(snake_permutation(n_x, n_y, order=order), dtype=np.int64)


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


# ----------------------------------------------------------------------------- encoders
def _make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool) -> nn.RNNBase:
    return RNN_CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                           bidirectional=bidirectional)


class RNNEncoder(nn.Module):
    """x (B, L, 1) -> features (B, L, out_dim); see the module docstring for the modes."""

    def __init__(self, cell: str, hidden_size: int, num_layers: int, mode: str, bidirectional: bool = False):
        super().__init__()
        if mode not in ("full", "causal", "conditional"):
            raise ValueError(f"unknown encoder mode {mode!r}")
        self.mode = mode
        if mode == "full":
            self.rnn = _make_rnn(cell, 1, hidden_size, num_layers, bidirectional)
            self.out_dim = hidden_size * (2 if bidirectional else 1)
        elif mode == "causal":
            self.rnn = _make_rnn(cell, 1, hidden_size, num_layers, False)
            self.out_dim = hidden_size
        else:
            self.fwd = _make_rnn(cell, 1, hidden_size, num_layers, False)
            self.bwd = _make_rnn(cell, 1, hidden_size, num_layers, False)
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


def causal_energy(logits: torch.Tensor, spins: torch.Tensor, beta: float) -> torch.Tensor:
    """Energy from an autoregressive model, E = -(1/beta) log p(lattice).

    logits (B, L-1): logit of p(s_t=+1 | s_<t) for t = 1..L-1; spins (B, L) ±1.
    log p(s_0) = -log 2 exactly for a zero-field Ising model (spin-flip symmetry).
    Equals the true energy plus the constant (1/beta) log Z for exact conditionals.
    """
    logp = log_prob_observed(logits, spins[:, 1:]).sum(dim=1) - math.log(2.0)
    return -logp / beta


def conditional_energy(logits: torch.Tensor, spins: torch.Tensor, beta: float) -> torch.Tensor:
    """Energy from the conditionals p(s_i=+1 | all other spins) of a pairwise model.

    logit p(s_i=+1 | rest) = 2 beta h_i, so h_i = logit / (2 beta) and E = -1/2 sum_i s_i h_i
    (each bond counted once). logits, spins (B, L) -> (B,). Exact, no additive constant.
    """
    return -(wide(spins) * wide(logits)).sum(dim=1) / (4.0 * beta)  # >= float32 sum, as above


def log_prob_energy(logits: torch.Tensor, spins: torch.Tensor, beta: float) -> torch.Tensor:
    """The reference energy head: E = (1/beta) sum_t log sigmoid(s_t a_t) (always <= 0)."""
    return log_prob_observed(logits, spins).sum(dim=1) / beta


# ----------------------------------------------------------------------------- hyper-parameter checks
# one-line ValueErrors, for every model class (the trainers show them as flag errors)
def check_choice(name: str, value, options) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}; got {value!r}")


def check_positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be {'a positive integer' if minimum == 1 else f'an integer >= {minimum}'}, "
                         f"got {value!r}")


def check_positive_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


# ----------------------------------------------------------------------------- shared LightningModule
class IsingSequenceModule(pl.LightningModule):
    """What both families share: configuration check, optimiser, logging, test metrics,
    `predict_energy` and the plumbing of `forward`.

    Subclasses set `family` (and `choices` for their own enumerated hyper-parameters), call
    `save_hyperparameters()` then `check_hparams()` in `__init__`, and implement
    `energy_from_sequences(seqs, return_attention)`, `forward(*xs)` (the reference's call) and
    `per_sample_loss(batch, with_energies) -> (loss (B,), predicted E (B,), true E (B,))`
    (the energies may be None when `with_energies` is False).

    Logged: `train/loss`; for validation loader k, `<val_names[k]>/loss` (index 0 is the
    main one, `val/loss`); `test/loss`, `test/rmse`, `test/rmse_centred`. The test metrics
    are sums over every test sample reduced across processes (DDP padding duplicates are
    dropped), so they are the exact whole-test-set values; they also end up in
    `self.test_results`.
    """

    family = "?"
    # hyper-parameter -> its allowed values; subclasses add their own
    choices = {"cell": tuple(RNN_CELLS)}

    def __init__(self):
        super().__init__()
        self.val_names = ["val"]
        self.test_results: dict = {}
        self._test_sums = None
        self._test_seen = 0

    # -- configuration ----------------------------------------------------------------------
    def check_hparams(self) -> None:
        """Refuse a bad configuration with a one-line ValueError. The one check of the
        hyper-parameters: the trainers report its message as their flag error."""
        hp = self.hparams
        for name, options in self.choices.items():
            check_choice(name, hp[name], options)
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

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    # -- the prediction entry point ---------------------------------------------------------
    def predict_energy(self, grids: torch.Tensor, return_attention: bool = False):
        """grids (B, n_x, n_y) ±1, any dtype, any lattice size -> energies float32 (B,).

        With `return_attention=True` also returns {"rows": (B, L, L)[, "cols": ...]}
        attention weights indexed by sequence positions (query, key) of that snake order
        (empty dict for models without attention). Runs in the current grad mode; wrap in
        `torch.no_grad()` for inference.
        """
        grids = torch.as_tensor(grids).to(self.device)
        seqs = {order: grids_to_sequences(grids, order) for order in self.orders}
        energy, attn = self.energy_from_sequences(seqs, return_attention=return_attention)
        energy = energy.float()
        return (energy, attn) if return_attention else energy

    # -- forward: the reference's call signature ---------------------------------------------
    def forward_inputs(self, xs: tuple, whole_lattice: bool, hint: str = "see its forward") -> dict:
        """The sequences given to `forward` -> {"rows": x[, "cols": x_cols]}, checked.

        One float tensor (B, L, 1) ±1 for a 1D model, two (rows, columns snakes) for a 2D
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

    # -- steps ------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        per_sample, _, _ = self.per_sample_loss(batch, with_energies=False)
        loss = per_sample.mean()
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=per_sample.shape[0])
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        loss, _, _ = self.per_sample_loss(batch, with_energies=False)
        name = self.val_names[dataloader_idx] if dataloader_idx < len(self.val_names) else f"val_{dataloader_idx}"
        self.log(f"{name}/loss", loss.mean(), on_step=False, on_epoch=True, prog_bar=dataloader_idx == 0,
                 sync_dist=True, add_dataloader_idx=False, batch_size=loss.shape[0])

    def on_test_epoch_start(self):
        # n, sum loss, sum d, sum d^2 with d = predicted - true energy (float64 for exactness)
        self._test_sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        self._test_seen = 0

    def _unique_mask(self, n: int) -> torch.Tensor:
        """Drop the samples DistributedSampler repeats to pad the last ranks (no shuffle in
        test: rank r gets padded positions r, r + W, r + 2W, ..., positions >= N repeat)."""
        loaders = self.trainer.test_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        # the sampler that orders the samples: inside the batch sampler when there is one
        sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None) or getattr(loader, "sampler", None)
        mask = torch.ones(n, dtype=torch.bool, device=self.device)
        if isinstance(sampler, DistributedSampler) and not sampler.drop_last and not sampler.shuffle:
            pos = sampler.rank + (self._test_seen + torch.arange(n, device=self.device)) * sampler.num_replicas
            mask = pos < len(sampler.dataset)
        self._test_seen += n
        return mask

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        # float32 whatever the training precision: the test metrics are the model's own numbers,
        # the ones predict_energy and the evaluation compute
        with torch.autocast(self.device.type, enabled=False):
            loss, pred, true = self.per_sample_loss(batch, with_energies=True)
        keep = self._unique_mask(loss.shape[0])
        d = (pred.double() - true.double())[keep]
        self._test_sums += torch.stack(
            [keep.sum().double(), loss.double()[keep].sum(), d.sum(), (d * d).sum()]
        )

    def on_test_epoch_end(self):
        sums = self.trainer.strategy.reduce(self._test_sums, reduce_op="sum")
        n, loss_sum, d_sum, d2_sum = (float(v) for v in sums)
        if n == 0:
            return
        mean_d = d_sum / n
        results = {
            "test/loss": loss_sum / n,
            "test/rmse": (d2_sum / n) ** 0.5,
            # centring prediction and truth by their own means = removing the mean error
            "test/rmse_centred": max(d2_sum / n - mean_d * mean_d, 0.0) ** 0.5,
            "test/n_samples": n,
        }
        for key, value in results.items():
            self.log(key, value, sync_dist=False)  # already identical on every rank
        self.test_results = {k.split("/", 1)[1]: v for k, v in results.items()}


# ----------------------------------------------------------------------------- the reference's class names
# <family prefix><suffix> -> (attention, two_d), e.g. EnergyAttentionRNN2D. Every other
# hyper-parameter is a keyword argument, as for the configurable class.
PRESET_LAYOUTS = {
    "RNN": (False, False),
    "AttentionRNN": (True, False),
    "RNN2D": (False, True),
    "AttentionRNN2D": (True, True),
}


def make_presets(base: type, prefix: str) -> dict:
    """{name: class}: the reference's four class names of a family, subclasses of `base`
    that only set the default `attention` and `two_d` (table above). They are real classes:
    assigned to names of `base`'s module they import, pickle, and `load_from_checkpoint`."""
    presets = {}
    for suffix, (attention, two_d) in PRESET_LAYOUTS.items():
        name = prefix + suffix
        doc = (f"The reference's `{name}`: `{base.__name__}` with attention={attention}, two_d={two_d} "
               f"unless given; called as `{base.__name__}.forward` describes.")
        namespace = {"__init__": _preset_init(base, attention, two_d), "__doc__": doc,
                     "__module__": base.__module__, "__qualname__": name}
        presets[name] = type(name, (base,), namespace)
    return presets


def _preset_init(base: type, attention: bool, two_d: bool):
    # no super() here on purpose: Lightning then records the hyper-parameters of base's
    # __init__ alone, so a preset's checkpoint holds the same plain values as base's
    def __init__(self, **kwargs):
        base.__init__(self, **{"attention": attention, "two_d": two_d, **kwargs})

    return __init__
