"""An extensive model that reads the disorder: the spin glass's energy from spins AND couplings.

The translation-invariant EDNN (`ednn.py`) cannot represent one instance of the 2D Edwards-Anderson
spin glass (`spin_glass.py`): its couplings change from bond to bond. `DisorderEDNN` gives the
shared tile network the couplings as input too. Per site (focus 1) it reads the (2c+1) x (2c+1)
periodic window around the site in three channels: the spins s, and J_h, J_v at every window site
(J_h[x, y] the bond (x, y)-(x, y+1), J_v[x, y] the bond (x, y)-(x+1, y)), and E = sum_i e(window_i).

Why it is exact in principle, for every instance and every size. With every bond counted once,
    E = sum_i eps_i,   eps_i = -s_i (J_h[i] s_right(i) + J_v[i] s_down(i)),
and eps_i is one function of the spins and couplings inside the 3 x 3 window of site i, the same
for every site, every instance and every lattice size: context c >= 1 suffices, as in `ednn.py`
(periodic padding wraps spins and couplings alike, so boundary bonds and sides of 2 are read as the
Hamiltonian counts them). For +-J couplings the inputs are finitely many, so an exact network exists:
with ReLU, J s_i s_j = -1 + (a+3) - 2 relu(a+1) + 2 relu(a-1) for a = J + s_i + s_j in {-3,-1,1,3}, six
hidden units in all (tests/test_disorder_ednn.py sets them by hand and checks the true energy). A
network fitted on 8 x 8 instances therefore holds for unseen instances and for 32 x 32, up to the
fit's error per window: per site, that is the figure that transfers (an error per tile adds up N times).
What does not transfer: couplings outside the training distribution. Trained on J = +-1, the network
has seen two values of each coupling input; eps_i is linear in J, but nothing makes the fitted e
linear in between, so Gaussian couplings are an extrapolation (measured: results/disorder_ednn/README.md).

Symmetries. Global spin flip (no field: E(s) = E(-s)) is exact: the tile energy is the average of the
network on (s, J) and (-s, J). The gauge symmetry (s_i -> g_i s_i, J_ij -> g_i g_j J_ij, E unchanged) enters
two ways: `gauge_transform` as data augmentation (for +-J a random gauge is a fresh instance with its
equilibrium lattice, so 190 training instances become a new one per step), or exactly, with
inputs="bonds": the network reads the bond variables u_ij = J_ij s_i s_j of the window (two channels,
u_h and u_v per site). Every gauge-invariant function of (s, J) is a function of u (take g = s), so
this loses nothing for the EA family, and the flip is exact too; eps_i = -(u_h[i] + u_v[i]) is then
linear, exact for any real couplings with 4 ReLU units (tested), and its fit extrapolates better.

Command line (argparse `--help`): `data` writes the instances' files with the repo's sampler, `train`
fits and saves weights.pt (a weights_only state dict), hparams.json and scores.json, `evaluate`
scores saved weights on every data set. Shapes: grids int8/float (B, n_x, n_y) +-1, couplings float
(n_x, n_y) shared by the batch or (B, n_x, n_y) per lattice, energies float32 (B,).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from checks import MissingFileError, UserError, main_guard, positive_float, positive_int, write_json
from ednn import periodic_pad

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU}
INPUTS = ("spins", "bonds")  # the window's spins and couplings, or its bond variables J_ij s_i s_j
# name -> (side, disorder seeds, couplings "pm" (+-J) or "gauss"): the sets `data` writes, a file per instance
DATA_SETS = {"test8": (8, range(10001, 10021), "pm"), "test32": (32, range(20001, 20005), "pm"),
             "gauss8": (8, range(30001, 30011), "gauss"), "gauss32": (32, range(40001, 40003), "gauss"),
             "train": (8, range(1, 201), "pm"), "train_gauss": (8, range(50001, 50201), "gauss")}
TRAIN_SETS = ("train", "train_gauss")  # sets a model may be trained on (`train --train_sets`)
N_VAL = 10  # the last N_VAL instances of a training set are held out for validation


class SizeError(UserError, ValueError):
    """Lattices and couplings of different shapes (one line through `checks.main_guard`)."""


class DisorderEDNN(nn.Module):
    """E = sum over sites of one network on the window of spins and couplings; see the module docstring.
    hidden_size, num_layers: width and depth of the tile network; context c: window 2c+1; spin_flip;
    activation: silu | relu."""

    def __init__(self, hidden_size: int = 32, num_layers: int = 2, context: int = 1, spin_flip: bool = True,
                 activation: str = "silu", inputs: str = "spins"):
        super().__init__()
        if inputs not in INPUTS or activation not in ACTIVATIONS:
            raise ValueError(f"inputs must be one of {INPUTS} and activation one of {tuple(ACTIVATIONS)}")
        self.hparams = dict(hidden_size=hidden_size, num_layers=num_layers, context=context, spin_flip=spin_flip,
                            activation=activation, inputs=inputs)
        act = ACTIVATIONS[activation]
        layers = [nn.Conv2d(3 if inputs == "spins" else 2, hidden_size, 2 * context + 1), act()]
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(hidden_size, hidden_size, 1), act()]
        self.net = nn.Sequential(*layers, nn.Conv2d(hidden_size, 1, 1))

    def site_energies(self, grids, J_h, J_v) -> torch.Tensor:
        """grids (B, n_x, n_y) +-1, J_h, J_v (n_x, n_y) or (B, n_x, n_y) -> float32 (B, n_x, n_y)."""
        s = torch.as_tensor(grids).to(torch.float32)
        J_h, J_v = (torch.as_tensor(J, dtype=torch.float32) for J in (J_h, J_v))
        if s.dim() != 3 or J_h.shape[-2:] != s.shape[-2:] or J_v.shape != J_h.shape or J_h.dim() not in (2, 3):
            raise SizeError(f"lattices {tuple(s.shape)} and couplings J_h {tuple(J_h.shape)}, J_v "
                            f"{tuple(J_v.shape)}: give lattices (B, n_x, n_y) and couplings of the same n_x x n_y")
        J = torch.stack(torch.broadcast_tensors(J_h, J_v), dim=-3).expand(s.shape[0], 2, *s.shape[-2:])
        c = self.hparams["context"]
        if self.hparams["inputs"] == "bonds":   # u = J_ij s_i s_j: invariant under the gauge and the flip
            u = J * s.unsqueeze(1) * torch.stack([s.roll(-1, dims=-1), s.roll(-1, dims=-2)], dim=1)
            return self.net(periodic_pad(u, c)).squeeze(1)
        pad = lambda spins: periodic_pad(torch.cat([spins.unsqueeze(1), J], dim=1), c)  # (B, 3, n_x+2c, n_y+2c)
        e = self.net(pad(s))
        if self.hparams["spin_flip"]:
            e = 0.5 * (e + self.net(pad(-s)))
        return e.squeeze(1)

    def forward(self, grids, J_h, J_v) -> torch.Tensor:
        """-> total energies float32 (B,)."""
        return self.site_energies(grids, J_h, J_v).sum(dim=(1, 2))


# ----------------------------------------------------------------------------- data
def instance(n: int, seed: int, kind: str = "pm"):
    """The n x n instance of a data set: +-J (`EdwardsAnderson.standard`) or Gaussian N(0, 1) couplings."""
    import spin_glass
    if kind == "pm":
        return spin_glass.EdwardsAnderson.standard(n, n, seed)
    rng = np.random.default_rng(seed)
    return spin_glass.EdwardsAnderson.of(rng.normal(size=(n, n)), rng.normal(size=(n, n)), seed=seed)


def gauge_transform(grids, couplings, g):
    """The gauge symmetry of the EA energy: s_i -> g_i s_i, J_ij -> g_i g_j J_ij. grids (B, n_x, n_y),
    couplings (B, 2, n_x, n_y) (J_h, J_v), g (B, n_x, n_y) +-1 -> (grids, couplings), the same energies."""
    g = g.to(couplings.dtype)
    right, down = torch.roll(g, -1, dims=-1), torch.roll(g, -1, dims=-2)
    return (grids * g).to(grids.dtype), couplings * torch.stack([g * right, g * down], dim=1)


def make_data(out, beta: float = 0.5, n_samples: int = 100, sets=None, n_train: int = 200) -> None:
    """One HDF5 file per instance, out/<set>/seed<S>.hdf5, by the repo's sampler (files already there are kept)."""
    import sampler
    for name in sets or DATA_SETS:
        n, seeds, kind = DATA_SETS[name]
        (Path(out) / name).mkdir(parents=True, exist_ok=True)
        for seed in list(seeds)[:n_train] if name in TRAIN_SETS else seeds:
            path = Path(out) / name / f"seed{seed}.hdf5"
            if not path.exists():
                sampler.generate(path, hamiltonian=instance(n, seed, kind), n_x=n, n_y=n, betas=(beta,),
                                 n_samples=n_samples, random_seed=seed, progress=False)
            print(path, flush=True)


def load(paths):
    """HDF5 files of EA instances -> grids int8 (N, n, n), couplings float32 (N, 2, n, n), energies float64 (N,);
    the labels are the file's true_energies, checked against `spin_glass.energy` of its couplings."""
    import h5py
    import hamiltonians
    grids, couplings, energies = [], [], []
    for path in paths:
        with h5py.File(path, "r") as f:
            h, g, e = hamiltonians.from_attrs(f.attrs), f["ising_grids"][:], f["true_energies"][:]
        if getattr(h, "name", None) != "EA" or not np.allclose(h.energy(g), e, atol=1e-4):
            raise UserError(f"{path}: not an EA file whose true_energies are its couplings' energies")
        grids.append(g)
        couplings.append(np.broadcast_to(np.stack([h.J_h_array, h.J_v_array]), (len(g), 2, *g.shape[1:])))
        energies.append(e)
    if not grids:
        raise MissingFileError("no data files: write them with `python disorder_ednn.py data --out DIR`")
    return (torch.from_numpy(np.concatenate(grids)), torch.from_numpy(np.concatenate(couplings).astype(np.float32)),
            torch.from_numpy(np.concatenate(energies).astype(np.float64)))


def set_files(data, name):
    files = sorted(Path(data, name).glob("seed*.hdf5"), key=lambda p: int(p.stem[4:]))
    if not files:
        raise MissingFileError(f"{Path(data, name)}: no seed*.hdf5 files; write them with "
                               f"`python disorder_ednn.py data --out {data}`")
    return files


@torch.no_grad()
def per_site_rmse(model, grids, couplings, energies, batch: int = 256) -> float:
    """sqrt(mean((E_pred - E)^2)) / (n_x n_y), float64 labels, batches of `batch` lattices."""
    pred = torch.cat([model(g, j[:, 0], j[:, 1]) for g, j in zip(grids.split(batch), couplings.split(batch))])
    return float(((pred.double() - energies) ** 2).mean().sqrt()) / grids[0].numel()


def load_model(folder) -> DisorderEDNN:
    """The model saved by `train` in folder (hparams.json, weights.pt)."""
    folder = Path(folder)
    for name in ("hparams.json", "weights.pt"):
        if not (folder / name).is_file():
            raise MissingFileError(f"{folder / name}: no such file; train with `python disorder_ednn.py train`")
    model = DisorderEDNN(**json.loads((folder / "hparams.json").read_text())["model"])
    model.load_state_dict(torch.load(folder / "weights.pt", weights_only=True))
    return model.eval()


def evaluate(model, data) -> dict:
    """Per-site RMSE on every test set present in `data`, and on the held-out instances of each training
    set present ("val" for "train", "val_gauss" for "train_gauss")."""
    scores = {}
    for name in (n for n in TRAIN_SETS if n == "train" or Path(data, n).is_dir()):
        scores[name.replace("train", "val")] = per_site_rmse(model, *load(set_files(data, name)[-N_VAL:]))
    for name in (n for n in DATA_SETS if n not in TRAIN_SETS and Path(data, n).is_dir()):
        scores[name] = per_site_rmse(model, *load(set_files(data, name)))
    return scores


def train(args) -> dict:
    """Adam on the MSE of the energy per site, learning rate cosine-decayed to 0 over the epochs."""
    torch.manual_seed(args.seed)
    train_files, val_files = [], []
    for name in args.train_sets:
        files = set_files(args.data, name)
        if len(files) <= N_VAL:
            raise UserError(f"{args.data}/{name} holds {len(files)} instances: need more than {N_VAL}")
        train_files, val_files = train_files + files[:-N_VAL], val_files + files[-N_VAL:]
    grids, couplings, energies = load(train_files)
    val = load(val_files)
    model = DisorderEDNN(args.hidden_size, args.num_layers, args.context, not args.no_spin_flip, args.activation,
                         args.inputs)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * -(-len(grids) // args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=steps, pct_start=0.02)
    start, sites = time.time(), grids[0].numel()
    for epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(grids)).split(args.batch_size):
            g, j = grids[idx], couplings[idx]
            if args.gauge_augment:  # a random gauge per lattice: a fresh +-J instance with its equilibrium lattice
                g, j = gauge_transform(g, j, torch.randint(0, 2, g.shape) * 2 - 1)
            loss = F.mse_loss(model(g, j[:, 0], j[:, 1]) / sites, (energies[idx] / sites).float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        print(f"epoch {epoch + 1}/{args.epochs}  train loss {loss.item():.2e}  val rmse/site "
              f"{per_site_rmse(model, *val):.2e}  {time.time() - start:.0f} s", flush=True)
    seconds = time.time() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "weights.pt")
    training = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    write_json(out / "hparams.json", {"model": model.hparams, "training": training,
                                      "n_train_lattices": len(grids), "train_seconds": round(seconds, 1)})
    scores = evaluate(model, args.data)
    write_json(out / "scores.json", {"per_site_rmse": scores, "train_seconds": round(seconds, 1)})
    return scores


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("data", help="write the instances' files with the repo's sampler")
    d.add_argument("--out", default="data/disorder_ednn")
    d.add_argument("--beta", type=positive_float, default=0.5)
    d.add_argument("--n_samples", type=positive_int, default=100, help="lattices per instance")
    d.add_argument("--n_train", type=positive_int, default=200, help="instances of each training set")
    d.add_argument("--sets", nargs="+", choices=DATA_SETS, default=None, help="the sets to write (default: all)")
    t = sub.add_parser("train", help="fit on DATA/train, save to OUT, score on every set")
    t.add_argument("--data", default="data/disorder_ednn")
    t.add_argument("--out", default="runs/disorder_ednn", help="folder for weights.pt, hparams.json, scores.json")
    for flag, kind, default in (("hidden_size", positive_int, 32), ("num_layers", positive_int, 2),
                                ("context", positive_int, 1), ("epochs", positive_int, 30),
                                ("batch_size", positive_int, 64), ("lr", positive_float, 3e-3), ("seed", int, 0)):
        t.add_argument(f"--{flag}", type=kind, default=default, help=f"default {default}")
    t.add_argument("--train_sets", nargs="+", choices=TRAIN_SETS, default=["train"],
                   help="train on these sets (+-J instances; train_gauss: Gaussian couplings), the last "
                   f"{N_VAL} instances of each held out")
    t.add_argument("--activation", choices=ACTIVATIONS, default="silu")
    t.add_argument("--inputs", choices=INPUTS, default="spins",
                   help="spins: spins and couplings (default); bonds: the bond variables J_ij s_i s_j (gauge invariant)")
    t.add_argument("--gauge_augment", action="store_true",
                   help="train on a random gauge transform of every lattice (gauge_transform), new at every step")
    t.add_argument("--no_spin_flip", action="store_true", help="do not average the tile energy over s and -s")
    e = sub.add_parser("evaluate", help="per-site RMSE of saved weights on every set of DATA")
    e.add_argument("--weights", default="weights/disorder_ednn/spins", help="a folder written by train")
    e.add_argument("--data", default="data/disorder_ednn")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.command == "data":
        make_data(args.out, args.beta, args.n_samples, sets=args.sets, n_train=args.n_train)
        return 0
    scores = train(args) if args.command == "train" else evaluate(load_model(args.weights), args.data)
    print("per-site RMSE: " + ", ".join(f"{k} {v:.2e}" for k, v in scores.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
