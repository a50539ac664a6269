"""Run directories: their names, finding them, loading their models, exporting their weights.

A run is the folder a trainer writes, `<output_dir>/<family>/<config name>/`, holding
`best.ckpt` and `metrics.json`; metrics.json records the model's class (`"class":
"energy_models.EnergyModel"`), so loading a run is one lookup in `model_registry` (`load_model`),
and `<Class>.load_from_checkpoint(path)` alone works too (every hyper-parameter is in the
checkpoint). Checkpoints are read with weights_only=True (`load_checkpoint`): one holding any
Python object besides tensors and plain values is refused unread, in one line. `find_runs` finds runs under a folder, one group of folders deep or more
(e.g. `results/parity/32-true_seed1/energy/...`). `export_weights` copies a run as weights
and hyper-parameters only, a few hundred kB, the form `weights/` ships.

`predict` is the one loop that turns lattices into energies for every consumer (evaluation,
size transfer, teacher labels): batches through `model.predict_energy`, no gradients. A Potts
run (hyper-parameter q > 2, `Run.q`, hamiltonian "POTTS<q>") reads lattices of the states
0..q-1 and an Ising run spins ±1; `predict` refuses the other kind in one line (`check_grids`).
A run of a spin-glass instance (hamiltonian "EA") records its couplings (`config.instance`, also in
the checkpoint's hyper-parameters): `Run.system` is the instance itself, and its model reads the
lattices of that instance's size only.
"""
from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import ising
from potts import PottsTable
from checks import UserError
from checks import atomic_path, json_safe, write_json  # noqa: F401 (json_safe re-exported)
from model_registry import MODEL_CLASSES, model_class  # noqa: F401 (runs.model_class: the API)

FAMILIES = ("energy", "probability")


def config_name(hparams: dict) -> str:
    """Run name from the hyper-parameters, in the published style.

    Sequence models: [2D_]<CELL>_<layers>L_<heads>H[_Bi][_Attn][_Joint], then only non-default extras:
    _hid<hidden_size> (default 512), _Site (energy_head "site"), _MSE (loss "mse"), _Cosine
    (lr_schedule "cosine"). The extensive model: EDNN_F<focus>_C<context>_hid<width>x<layers>
    [_L1][_Centred][_Flip]. Either ends in _Q<q> for a q-state Potts model (q > 2).
    """
    potts = f"_Q{hparams['q']}" if hparams.get("q", 2) != 2 else ""
    if "focus" in hparams:
        name = f"EDNN_F{hparams['focus']}_C{hparams['context']}_hid{hparams['hidden_size']}x{hparams['num_layers']}"
        if hparams.get("loss", "mse") != "mse":
            name += f"_{str(hparams['loss']).upper()}"
        if hparams.get("target", "absolute") != "absolute":
            name += f"_{str(hparams['target']).capitalize()}"
        return name + ("_Flip" if hparams.get("spin_flip") else "") + potts
    parts = ["2D"] if hparams.get("two_d") else []
    parts += [str(hparams.get("cell", "gru")).upper(), f"{hparams.get('num_layers', 1)}L", f"{hparams.get('n_heads', 1)}H"]
    if hparams.get("bidirectional"):
        parts.append("Bi")
    if hparams.get("attention"):
        parts.append("Attn")
    if hparams.get("joint"):
        parts.append("Joint")
    if hparams.get("hidden_size", 512) != 512:
        parts.append(f"hid{hparams['hidden_size']}")
    if hparams.get("energy_head", "logsigmoid") != "logsigmoid":
        parts.append(str(hparams["energy_head"]).capitalize())
    if hparams.get("loss", "l1") != "l1":
        parts.append(str(hparams["loss"]).upper())
    if hparams.get("lr_schedule", "constant") != "constant":
        parts.append(str(hparams["lr_schedule"]).capitalize())
    return "_".join(parts) + potts


@dataclass
class Run:
    family: str  # "energy" | "probability"
    name: str  # config name, e.g. 2D_GRU_1L_1H_Bi_Attn
    dir: Path
    checkpoint: Path
    metrics: dict = field(default_factory=dict)
    group: str = ""  # folders between the runs root and <family>, e.g. "32-true_seed1"

    @property
    def label(self) -> str:
        return "/".join(p for p in (self.group, self.family, self.name) if p)

    @property
    def hamiltonian(self) -> str:
        return self.metrics.get("config", {}).get("hamiltonian", "ISING1")

    @property
    def q(self) -> int:
        """The Potts q of the training data (2: an Ising run, also runs from before q existed)."""
        return int(self.metrics.get("config", {}).get("q", 2))

    @property
    def system(self):
        """The Hamiltonian object the run was trained on (`hamiltonians.from_record` of its recorded
        hamiltonian, q and, for a spin-glass instance, couplings); a one-line UserError for a record
        that names none."""
        import hamiltonians

        config = self.metrics.get("config", {})
        try:
            return hamiltonians.from_record(self.hamiltonian, self.q, config.get("instance"))
        except ValueError as err:
            raise UserError(f"{self.dir / 'metrics.json'}: {err}") from None

    @property
    def lattice(self):
        """(n_x, n_y) of the training lattices, or None where metrics.json does not say."""
        config = self.metrics.get("config", {})
        return (int(config["n_x"]), int(config["n_y"])) if "n_x" in config and "n_y" in config else None


def read_run(run_dir, root=None) -> Run:
    """The run in `run_dir` (its metrics.json and best.ckpt); UserError if it is not one."""
    run_dir = Path(run_dir)
    metrics_path, ckpt = run_dir / "metrics.json", run_dir / "best.ckpt"
    if not metrics_path.is_file() or not ckpt.is_file():
        missing = " and ".join(p.name for p in (metrics_path, ckpt) if not p.is_file())
        raise UserError(f"{run_dir} is not a finished run: no {missing} there (a run directory is what "
                        "energy_trainer.py / probability_trainer.py write, e.g. runs/probability/GRU_1L_1H)")
    try:
        metrics = json.loads(metrics_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{metrics_path} is not valid JSON ({err}); the run did not finish cleanly: "
                        "train it again") from err
    if not isinstance(metrics, dict):
        raise UserError(f"{metrics_path} is not a trainer's metrics.json (a JSON object); train the run again")
    parent = run_dir.parent.parent  # the group: the folders between root and <family>, if any
    group = parent.relative_to(root).as_posix() if root is not None and parent.is_relative_to(root) else ""
    return Run(run_dir.parent.name, run_dir.name, run_dir, ckpt, metrics, "" if group == "." else group)


def find_runs(root) -> list[Run]:
    """Every `<root>/[<group>/...]<family>/<config>/` holding metrics.json and best.ckpt (root
    may also be a family folder or one run)."""
    root = Path(root)
    return [read_run(m.parent, root) for m in sorted(root.rglob("metrics.json"))
            if m.parent.parent.name in FAMILIES and (m.parent / "best.ckpt").is_file()]


def lattice_problem(hparams, n_x: int, n_y: int):
    """Why a model with these hyper-parameters cannot read n_x x n_y lattices, or None: the
    extensive model needs sizes its tiles cover; the sequence models read any length, except a model
    of one spin-glass instance (hyper-parameter `instance`), which reads that instance's lattice only."""
    hparams = dict(hparams)
    focus = hparams.get("focus")
    if focus and (n_x % int(focus) or n_y % int(focus)):
        return f"its tiles of focus {focus} do not cover a {n_x} x {n_y} lattice"
    if hparams.get("instance") and (int(n_x), int(n_y)) != (int(hparams["n_x"]), int(hparams["n_y"])):
        return (f"it learned one spin-glass instance of {hparams['n_x']} x {hparams['n_y']} sites, whose couplings "
                f"a {n_x} x {n_y} lattice does not have")
    return None


def load_model(run):
    """The run's LightningModule (a Run or a run directory) on the CPU, in eval mode, its class
    read from metrics.json."""
    run = run if isinstance(run, Run) else read_run(run)
    if "class" not in run.metrics:
        raise UserError(f"{run.dir / 'metrics.json'} does not name the model's class (written by an older "
                        "version of this repo); retrain the run")
    try:
        # weights_only: a checkpoint is tensors and plain values; unpickling anything else could run code
        model = model_class(run.metrics["class"]).load_from_checkpoint(str(run.checkpoint), map_location="cpu",
                                                                        weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:  # torch.load's errors
        raise checkpoint_error(run.checkpoint, err) from err
    return model.eval()


def load_checkpoint(path) -> dict:
    """The dict in a checkpoint file (tensors and plain values only, on the CPU); a one-line
    UserError for a file that is not a plain checkpoint or cannot be read."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise checkpoint_error(path, err) from err


def checkpoint_error(checkpoint, err: Exception) -> UserError:
    """A checkpoint torch cannot read (truncated, not a checkpoint, weights of another shape), or
    one holding Python objects besides tensors and plain values, which are refused unread."""
    text = str(err).strip()
    if isinstance(err, pickle.UnpicklingError) and "weights only" in text.lower():
        found = next((line.split("Unsupported global:")[1].split(" was ")[0].strip() for line in text.splitlines()
                      if "Unsupported global:" in line), "an object torch does not allow")
        return UserError(f"{checkpoint} is not a plain checkpoint: it holds {found}, not only weights and "
                         "hyper-parameters, and loading it could run code; refused (train or export the run again)")
    reason = text.splitlines()[0] if text else type(err).__name__
    return UserError(f"{checkpoint} cannot be loaded ({reason}); train or export the run again")


def load_probability_model(run_dir, what: str):
    """(probability model, its description) from a run directory, or a one-line UserError saying
    what the run is instead; `what` names the use in the message ("--teacher", "--run")."""
    run = read_run(run_dir)
    kind = describe_run(run)
    if run.metrics.get("class") != "probability_models.ProbabilityModel":
        raise UserError(f"{what} {run_dir}: this is a run of {kind}; it needs a probability model "
                        "(a run directory of probability_trainer.py)")
    return load_model(run), kind


def describe_run(run: Run) -> str:
    """'the energy model EDNN_F1_C1_hid16x2' and the like, for messages."""
    config = run.metrics.get("config", {})
    if run.family == "probability":
        kind = "conditional" if config.get("bidirectional") else "causal"
        return f"the {kind} probability model {run.name}"
    return f"the energy model {run.name}"


def learned_hamiltonian(source) -> "ising.Table | PottsTable":
    """A run of the extensive model as a table Hamiltonian (its tile network on every window,
    `EDNNEnergyModel.window_table`), named by the run directory and trained_on its data's Hamiltonian;
    UserError for any other run, or a window too large to tabulate. `hamiltonians.resolve` calls it
    for a `--hamiltonian RUN_DIR`."""
    run = read_run(source)
    if run.metrics.get("class") != "ednn.EDNNEnergyModel":
        raise UserError(f"{source}: this is {describe_run(run)}; only the extensive model (energy_trainer.py "
                        "--architecture ednn) is a function of a window that can be tabulated")
    model = load_model(run)
    try:
        values = model.window_table().numpy()
    except ValueError as err:
        raise UserError(f"{source}: {err}") from None
    trained_on = model.hparams.hamiltonian
    if model.q > 2:
        return PottsTable.of(values, model.q, str(source), trained_on=trained_on)
    return ising.Table.of(values, model.hparams.focus, model.hparams.context, str(source), trained_on=trained_on)


def export_weights(run_dir, dest_root="weights") -> Path:
    """Copy a run into `<dest_root>/<family>/<config>/` as a few hundred kB: best.ckpt with the
    weights and hyper-parameters only (no optimiser state, loops or callbacks), and metrics.json
    pointing at it. `load_model`, `find_runs` and `load_from_checkpoint` read it as a run."""
    import torch

    run = read_run(run_dir)
    ckpt = load_checkpoint(run.checkpoint)
    dest = Path(dest_root) / run.family / run.name
    keep = {k: ckpt[k] for k in ("state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch", "global_step")
            if k in ckpt}
    with atomic_path(dest / "best.ckpt") as tmp:
        torch.save(keep, tmp)
    write_json(dest / "metrics.json", {**run.metrics, "best_checkpoint": "best.ckpt"})  # relative: it can move
    return dest


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (Linux MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_grids(model, grids: np.ndarray) -> None:
    """ValueError unless grids hold what the model reads: spins ±1 (Ising, q = 2) or the states
    0..q-1 of a q-state Potts model (`model.q`), e.g. Potts lattices given to an Ising run; lattices
    of its own size for a model of a spin-glass instance (`check_lattice`)."""
    q, g = int(getattr(model, "q", 2)), np.asarray(grids)
    if not g.size:
        return
    if hasattr(model, "check_lattice") and g.ndim == 3:
        model.check_lattice(g.shape[1:])
    ok = ((g >= 0) & (g < q)).all() if q > 2 else (np.abs(g) == 1).all()
    if not ok:
        what = f"a q = {q} Potts model reads the states 0 ... {q - 1}" if q > 2 else "an Ising model reads spins ±1"
        raise ValueError(f"{what}; these lattices hold {g.min():g} ... {g.max():g} "
                         f"({'Ising spins?' if q > 2 else 'Potts states?'})")


def predict(model, grids: np.ndarray, batch_size: int = 2048, return_attention: bool = False):
    """Energies float64 (N,) of grids (N, n_x, n_y) through model.predict_energy: spins ±1 for an
    Ising model, states 0..q-1 for a Potts one (ValueError for the other kind, `check_grids`); with
    return_attention also {"rows"[, "cols"]: (L_q, L_k) attention weights summed over the grids}."""
    import torch

    out, attn_sum = [], None
    with torch.no_grad():
        for i in range(0, len(grids), batch_size):
            batch = np.asarray(grids[i : i + batch_size])
            check_grids(model, batch)
            g = torch.as_tensor(batch, dtype=torch.float32)
            if return_attention:
                e, attn = model.predict_energy(g, return_attention=True)
                s = {k: v.sum(0).double().numpy() for k, v in attn.items()}
                attn_sum = s if attn_sum is None else {k: attn_sum[k] + s[k] for k in s}
            else:
                e = model.predict_energy(g)
            out.append(e.double().cpu().numpy())
    energies = np.concatenate(out) if out else np.zeros(0)
    return (energies, attn_sum) if return_attention else energies
