"""Extensive deep neural network (EDNN): the lattice energy as a sum of tile energies.

After Mills, Ryczko, Luchak, Domurad, Beeler & Tamblyn, "Extensive deep neural networks for
transferring small scale learning to large scale systems", Chem. Sci. 10, 4129 (2019).

The model. The periodic n_x x n_y lattice is cut into (n_x/f) x (n_y/f) focus tiles of
f x f sites. Each tile is read with a context margin of c sites on every side, a window of
(f + 2c) x (f + 2c) spins that wraps around the periodic boundaries; ONE network (shared
weights) maps every window to a tile energy e_T, and E = sum_T e_T.

Why what it learns on 8 x 8 holds on 64 x 64. A Hamiltonian whose interactions reach r
sites (Chebyshev distance: r = 1 for ISING1 and for ISING2's diagonal bonds) is a sum of
site terms, E = sum_i eps_i, each depending only on the spins within r of site i
(ISING1: eps_i = -s_i (s_down(i) + s_right(i))). Grouping the sites by tile,

    E = sum_T sum_{i in T} eps_i = sum_T e(window_T)        whenever c >= r,

and e is a single function: the same for every tile (translation invariance) and for every
lattice size (it never sees n_x, n_y). Periodic boundaries change nothing, since the window
reads the wrapped spins, exactly the ones the boundary bonds couple, even on lattices smaller
than the window. So nothing size-specific is left to learn: a network that fits e on small
lattices is exact on all of them. What does not carry over for free:
- errors add up. A tile error d_T sums over N_T = n_x n_y / f^2 tiles: its mean grows like
  N_T, its fluctuations like sqrt(N_T). The error per site is the figure that transfers,
  and it is bounded by the mean tile error per site.
- beta and size change how often each window occurs, not e. Windows rare in training (large
  ordered patches at large beta) are where a fit extrapolates; at beta = 0.25 on 8 x 8 every
  3 x 3 window (512 of them) occurs many times in the training set.
- e is fixed only up to terms that cancel in every sum over tiles (g(window) minus g of the
  window one tile over); they are harmless.

Implementation: periodic padding by c, then Conv2d(1, hidden, kernel f + 2c, stride f) is
the tile network's first layer applied to every tile at once (output n_x/f x n_y/f), 1 x 1
convolutions are the rest of the MLP, and a sum over tiles gives E.

The q-state Potts model (`q` > 2; q = 2, the default, is the Ising model): the network reads a
window as q one-hot channels (Conv2d(q, hidden, ...)): a state is a category, not a number. All
of the above holds unchanged (nearest-neighbour bonds, c = 1 suffices). `spin_flip`, the global
symmetry of a Hamiltonian without a field, is for Potts every permutation of the q states (q!
of them: 6 for q = 3): the tile energy is averaged over the windows with their channels permuted,
so no state is preferred, exactly. `window_table` is then a `potts.PottsTable` of q^9 entries
(focus 1, context 1).

Targets. "absolute": the loss compares E_pred with E. "centred": for labels known only up to
an additive constant (e.g. -(1/beta) log p of a causal teacher = E + (1/beta) log Z),
it compares batch-centred predictions with batch-centred labels; the model then fixes E up to
a constant per tile, so score it centred, and keep one lattice size per batch (the unknown
constant is extensive).
"""
from __future__ import annotations

import itertools
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from checks import check_choice, check_positive_int, check_positive_number
from lattice_module import LatticeModule
from sequence_blocks import check_lattice_model, input_channels, sequences_to_grids

LOSSES = ("l1", "mse")
MAX_TABLE_SPINS = 16  # window_table: 2^16 windows at most
TARGETS = ("absolute", "centred")


def periodic_pad(x: torch.Tensor, c: int) -> torch.Tensor:
    """x (..., n_x, n_y) -> (..., n_x + 2c, n_y + 2c), wrapped around; any c >= 0, even c > n."""
    n_x, n_y = x.shape[-2:]
    rows = torch.arange(-c, n_x + c, device=x.device) % n_x
    cols = torch.arange(-c, n_y + c, device=x.device) % n_y
    return x[..., rows, :][..., cols]


class EDNNEnergyModel(LatticeModule):
    """Energy as a sum of tile energies; see the module docstring.

    Hyper-parameters (plain values, saved in the checkpoint): focus f, context c, hidden_size
    and num_layers (width and number of hidden layers of the tile network), loss (l1|mse),
    target (absolute|centred), lr (Adam) and lr_decay (learning rate x lr_decay after every
    epoch), beta, n_x, n_y, hamiltonian: the training data's (kept for the record and to read the
    datasets' snake sequences; prediction works at any beta and on any size divisible by f),
    spin_flip (the tile energy symmetric under s -> -s; Potts: under every permutation of the states),
    q (2: Ising, the default; > 2: Potts, hamiltonian "POTTS<q>").

    The defaults (lr 0.1, x lr_decay 0.8 after every epoch; the trainer adds batch 128) are the
    recipe measured in results/transfer/README.md. The labels are sums over tiles, so the fit is
    an ill-conditioned regression: a large learning rate makes progress on errors that barely
    show on small lattices, and its decay lets the fit settle.
    """

    family = "energy"
    architecture = "ednn"  # energy_trainer.py --architecture ednn

    def __init__(
        self,
        focus: int = 1,
        context: int = 1,
        hidden_size: int = 16,
        num_layers: int = 2,
        loss: str = "mse",
        target: str = "absolute",
        lr: float = 0.1,
        lr_decay: float = 0.8,
        beta: float = 0.25,
        n_x: int = 8,
        n_y: int = 8,
        hamiltonian: str = "ISING1",
        spin_flip: bool = False,
        q: int = 2,
    ):
        super().__init__()
        for name, value, minimum in (("focus", focus, 1), ("context", context, 0), ("hidden_size", hidden_size, 1),
                                     ("num_layers", num_layers, 1), ("n_x", n_x, 1), ("n_y", n_y, 1)):
            check_positive_int(name, value, minimum)
        if n_x % focus or n_y % focus:
            raise ValueError(f"the training lattice {n_x} x {n_y} must be tiled by focus {focus}: "
                             f"choose a focus that divides both sizes")
        check_choice("loss", loss, LOSSES)
        check_choice("target", target, TARGETS)
        check_positive_number("lr", lr)
        check_positive_number("beta", beta)
        if isinstance(lr_decay, bool) or not (isinstance(lr_decay, numbers.Real) and 0 < lr_decay <= 1):
            raise ValueError(f"lr_decay must be in (0, 1] (1 = constant learning rate), got {lr_decay!r}")
        check_lattice_model(hamiltonian, q)
        self.save_hyperparameters()
        layers = [nn.Conv2d(input_channels(self.q), hidden_size, focus + 2 * context, stride=focus), nn.SiLU()]
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(hidden_size, hidden_size, 1), nn.SiLU()]
        layers.append(nn.Conv2d(hidden_size, 1, 1))
        self.tile_net = nn.Sequential(*layers)

    def _tiles(self, windows: torch.Tensor) -> torch.Tensor:
        """The tile network on windows (B, C, ...) (C = 1 for Ising, q one-hot channels for Potts);
        spin_flip: averaged with the flipped windows (Ising), or over the windows with their states
        permuted in every way (Potts), so that E is exactly invariant under the symmetry of a
        Hamiltonian without a field (Ising: no odd terms; Potts: no preferred state)."""
        if not self.hparams.get("spin_flip", False):
            return self.tile_net(windows)
        if self.q == 2:
            return 0.5 * (self.tile_net(windows) + self.tile_net(-windows))
        # one pass per ordering of the one-hot channels (faster on CPU than one q!-times larger batch)
        return torch.stack([self.tile_net(windows[:, list(p)]) for p in itertools.permutations(range(self.q))]).mean(0)

    @property
    def absolute_energy(self) -> bool:
        """Trained on absolute energies, or (target "centred") on energies known up to a constant."""
        return self.hparams.target == "absolute"

    # -- energies -------------------------------------------------------------------------
    def tile_energies(self, grids) -> torch.Tensor:
        """grids (B, n_x, n_y) ±1 (Potts: states 0..q-1), any dtype, n_x and n_y multiples of focus ->
        float32 (B, n_x/f, n_y/f)."""
        grids = torch.as_tensor(grids, device=self.device)
        f = self.hparams.focus
        if grids.dim() != 3 or grids.shape[1] % f or grids.shape[2] % f or min(grids.shape[1:]) < 1:
            raise ValueError(f"grids must have shape (B, n_x, n_y) with n_x and n_y multiples of focus {f}, "
                             f"got {tuple(grids.shape)}")
        if self.q == 2:
            channels = grids.to(torch.float32).unsqueeze(1)  # (B, 1, n_x, n_y)
        else:
            channels = F.one_hot(grids.long(), self.q).permute(0, 3, 1, 2).to(torch.float32)  # (B, q, n_x, n_y)
        return self._tiles(periodic_pad(channels, self.hparams.context)).squeeze(1)

    @torch.no_grad()
    def window_table(self, max_spins: int = MAX_TABLE_SPINS) -> torch.Tensor:
        """The energy function as a table Hamiltonian (`ising.table_energy`): float64 (2^(w*w),),
        the tile network on every w x w window, w = focus + 2 context, bit k of the index the
        spin at window position (k // w, k % w) (1 for +1). ValueError beyond `max_spins` spins.
        Potts (q > 2, focus 1 and context 1 only): float64 (q^9,), index sum_k s_k q^k over the window's
        states in the same order (`potts.PottsTable`)."""
        w = self.hparams.focus + 2 * self.hparams.context
        if self.q > 2:
            if (self.hparams.focus, self.hparams.context) != (1, 1) or self.q ** 9 > 2 ** 20:
                raise ValueError(f"a Potts model is tabulated for focus 1, context 1 and q^9 <= 2^20 windows only "
                                 f"(got focus {self.hparams.focus}, context {self.hparams.context}, q = {self.q})")
            k = torch.arange(self.q ** 9, device=self.device)
            digits = k[:, None] // self.q ** torch.arange(9, device=self.device) % self.q          # (q^9, 9)
            one_hot = F.one_hot(digits, self.q).permute(0, 2, 1).reshape(-1, self.q, 3, 3).float()
            return torch.cat([self._tiles(chunk).reshape(-1) for chunk in one_hot.split(8192)]).double()
        if w * w > max_spins:
            raise ValueError(f"a {w} x {w} window has {w * w} spins: too many to tabulate (at most {max_spins}, "
                             f"2^{max_spins} entries); the table needs focus + 2 context <= {int(max_spins ** 0.5)}")
        k = torch.arange(2 ** (w * w), device=self.device)
        windows = (2 * ((k[:, None] >> torch.arange(w * w, device=self.device)) & 1) - 1).float().view(-1, 1, w, w)
        return torch.cat([self._tiles(chunk).reshape(-1) for chunk in windows.split(8192)]).double()

    def predict_energy(self, grids, return_attention: bool = False):
        """grids (B, n_x, n_y) ±1 (Potts: states), any size tiled by focus -> energies float32 (B,) (+ {} with
        `return_attention`: there is no attention). Current grad mode, as the base class."""
        energy = self.tile_energies(grids).sum(dim=(1, 2))
        return (energy, {}) if return_attention else energy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The energy models' signature: x (B, L, 1) rows snake of the training lattice -> (B, 1)."""
        return self.predict_energy(self.batch_grids(x)).unsqueeze(-1)

    def batch_grids(self, x: torch.Tensor) -> torch.Tensor:
        """A batch's lattices: a floating (B, n_x*n_y, 1) tensor is the training lattice's rows
        snake (what the energy datasets give) and is unfolded; anything else is taken as grids
        (B, n_x', n_y') of any size (e.g. int8 lattices labelled by a teacher)."""
        hp = self.hparams
        if x.is_floating_point() and x.dim() == 3 and tuple(x.shape[1:]) == (hp.n_x * hp.n_y, 1):
            return sequences_to_grids(x, hp.n_x, hp.n_y)
        return x

    # -- training -------------------------------------------------------------------------
    def per_sample_loss(self, batch, with_energies: bool = True):
        """batch (X, E[, beta]), X as in `batch_grids` -> (loss (B,), predicted E (B,), label (B,))."""
        pred = self.predict_energy(self.batch_grids(batch[0]))
        label = batch[1].reshape(-1).to(device=pred.device, dtype=pred.dtype)
        if label.shape != pred.shape:
            raise ValueError(f"batch must be (lattices, energies[, betas]) with one energy per lattice; got "
                             f"{tuple(batch[1].shape)} labels for {pred.shape[0]} lattices (2D datasets do not apply)")
        p, t = pred, label
        if self.hparams.target == "centred":
            p, t = pred - pred.mean(), label - label.mean()
        loss_fn = F.l1_loss if self.hparams.loss == "l1" else F.mse_loss
        return loss_fn(p, t, reduction="none"), pred, label

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.hparams.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": decay, "interval": "epoch"}}

