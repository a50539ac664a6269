"""The training run that `energy_trainer.py` and `probability_trainer.py` share: flags and `run`.

`run` is the whole pipeline, top to bottom:

    parse flags -> check files and flags (at once, before torch is imported)
    -> data: the training file's beta, lattice size, Hamiltonian and model (Ising, or q-state
       Potts: a file with the attribute q, whose q goes into the model's hyper-parameters and
       whose runs are named ..._Q<q>); the data module (the
       files' energies, or a teacher's with --teacher); every file opened and checked as the
       loaders will read it (same size, Hamiltonian and q as the training file), before anything
       is written: a wrong file, run or folder is one line `<prog>: error: ...`, exit status 2
    -> model: its class and hyper-parameters (the model checks them; its ValueError is the
       flag error)
    -> the Trainer (Lightning's refusal of a flag is a flag error), then the run directory
    -> Trainer.fit: early stopping and best.ckpt on the main validation loss (`val/loss`; the
       other validation files are logged as `val_beta_<beta>/loss`), last.ckpt to resume
    -> Trainer.test with best.ckpt -> metrics.json (written last, atomically: a run with
       metrics.json is finished).

Run directory `<output_dir>/<family>/<config name>/`: best.ckpt, metrics.json, TensorBoard logs
(`tensorboard/version_N`). While a run trains, last.ckpt holds its whole state (weights, Adam,
epoch and step, early-stopping and best-checkpoint state). Lightning does all of it:
ModelCheckpoint(save_last=True) writes last.ckpt after every validation, a second one every
`--checkpoint_minutes` of training, OnExceptionCheckpoint on Ctrl-C / SIGTERM (Lightning writes
checkpoints atomically), and `Trainer.fit(ckpt_path=last.ckpt)` continues to the same epochs.
Rerunning the same command resumes (or `--resume`; `--no-resume` starts afresh). A finished run
has no last.ckpt. Two small pieces are our own: the interruption checkpoint stays on disk
(Lightning's removes its file at the end of every fit and test), and without a progress bar each
epoch prints one line.

Precision: `--precision auto` (the default) trains in bf16-mixed where the hardware computes bf16
natively (CPUs with AVX512-BF16 or AMX, GPUs with bf16) and in float32 elsewhere; the extensive
model always in float32. Energies, log-probabilities and losses are summed in float32 either way.

The reference's flag names work beside ours: `--train_datapath` / `--test_datapath` (aliases of
`--train_path` / `--test_path`), `--main_val_datapath`, `--val_2_datapath`, `--val_3_datapath` (the
three validation files, main first, each defaulting to the standard one), `--lstm` (= `--cell
lstm`), `--input_size 1` and `--output_size 1` (the only values).
"""
from __future__ import annotations

import argparse
import pickle
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import data_files
from checks import UserError, check_output_dir, non_negative_int, positive_float, positive_int, seed_int, write_json
from runs import config_name

MAIN_MONITOR = "val/loss"
# (family, architecture) -> the model class (metrics.json records it)
CLASSES = {("energy", "rnn"): "energy_models.EnergyModel", ("probability", "rnn"): "probability_models.ProbabilityModel",
           ("energy", "ednn"): "ednn.EDNNEnergyModel"}
# the reference's names of the three validation files, main first
VAL_SLOTS = ("main_val_datapath", "val_2_datapath", "val_3_datapath")


# ----------------------------------------------------------------------------- flags
def _int_or_float(text: str):
    """Lightning's limit_*_batches: an int is a number of batches (>= 1), a float a fraction in (0, 1]."""
    try:
        value = int(text)
        ok = value >= 1
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            value = None
        ok = value is not None and 0 < value <= 1
    if not ok:
        raise argparse.ArgumentTypeError(f"must be a number of batches >= 1 or a fraction in (0, 1], got {text!r}")
    return value


def _devices(text: str):
    """auto, a number of devices (>= 1, or -1 for all), or a comma list of device ids."""
    if text == "auto":
        return text
    try:
        if "," in text:
            ids = [int(t) for t in text.split(",") if t.strip()]
            if ids and min(ids) >= 0:
                return ids
        elif int(text) >= 1 or int(text) == -1:
            return int(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"must be auto, a number of devices (>= 1, or -1 for all) or a comma list of "
                                     f"device ids, got {text!r}")


def build_parser(family: str, description: str) -> argparse.ArgumentParser:
    """The flags both trainers share; the energy trainer adds its heads, losses and the EDNN."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    bool_flag = dict(action=argparse.BooleanOptionalAction)
    _add_data_flags(p.add_argument_group("data"), bool_flag)
    _add_model_flags(p.add_argument_group("model"), bool_flag, family)

    g = p.add_argument_group("training")
    g.add_argument("--lr", type=positive_float, default=None, help="Adam learning rate (default: 1e-4, the "
                   "reference's; ednn: 0.1, decayed every epoch)%(default).0s")
    g.add_argument("--lr_schedule", default="constant", help="constant (the reference's) or cosine: a 2%% linear "
                   "warm-up, then a cosine decay to 0 at the last step of --max_epochs (sequence models)")
    g.add_argument("--gradient_clip_val", type=positive_float, default=None, help="clip the gradients' global "
                   "norm to this (default: no clipping, the reference's)%(default).0s")
    g.add_argument("--max_epochs", type=int, default=100, help="upper limit; early stopping usually ends sooner")
    g.add_argument("--patience", type=non_negative_int, default=5, help="early stopping patience (epochs) on val/loss")
    g.add_argument("--seed", type=seed_int, default=0, help="seeds torch, numpy, python and the shuffling")
    g.add_argument("--output_dir", default="runs", help="runs go to <output_dir>/%s/<config name>/" % family)
    g.add_argument("--run_name", default=None, help="run directory name (default: from the configuration, e.g. "
                   "2D_GRU_1L_1H_Bi_Attn)%(default).0s")
    g.add_argument("--progress_bar", default=True, help="tqdm progress bar (without: one line per epoch)", **bool_flag)
    g.add_argument("--resume", default=None, help="continue from the run directory's last.ckpt (default: "
                   "whenever an unfinished run left one; --no-resume starts afresh)%(default).0s", **bool_flag)
    g.add_argument("--checkpoint_minutes", type=positive_float, default=10.0,
                   help="also save last.ckpt every this many minutes of training (besides every epoch end)")

    g = p.add_argument_group("lightning")
    g.add_argument("--accelerator", default="auto", help="cpu, gpu, auto, ...")
    g.add_argument("--devices", type=_devices, default="auto", help="auto, a number, or a comma list of ids")
    g.add_argument("--num_nodes", type=positive_int, default=1, help="machines (multi-node DDP)")
    g.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, ...")
    g.add_argument("--precision", default="auto", help="auto (bf16-mixed where the hardware has native bf16, "
                   "else 32-true), 32-true, bf16-mixed, 16-mixed, ...")
    g.add_argument("--fast_dev_run", type=non_negative_int, nargs="?", const=1, default=0,
                   help="run N (default 1) batches of train, val and test as a smoke test")
    g.add_argument("--limit_train_batches", type=_int_or_float, default=1.0, help="an int: batches per epoch; a float: fraction")
    g.add_argument("--limit_val_batches", type=_int_or_float, default=1.0, help="as --limit_train_batches")
    g.add_argument("--limit_test_batches", type=_int_or_float, default=1.0, help="as --limit_train_batches")
    g.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads per process (default: torch's choice); use 1 when several "
                   "processes share a few cores%(default).0s")
    g.add_argument("--log_every_n_steps", type=positive_int, default=50, help="training-step logging interval")
    return p


def _add_data_flags(g, bool_flag: dict) -> None:
    g.add_argument("--train_path", "--train_datapath", default=data_files.path("train"), help="training HDF5 file "
                   "(beta, lattice size and Hamiltonian are read from it)")
    g.add_argument("--val_paths", nargs="+", default=None, help="validation HDF5 files; the first is the main one "
                   "(early stopping, checkpointing), the others are logged as val_beta_<beta> (default: "
                   f"{' '.join(data_files.val_paths())})%(default).0s")
    for which, flag, default in zip(("main", "second", "third"), VAL_SLOTS, data_files.val_paths()):
        g.add_argument(f"--{flag}", default=None, help=f"the reference's flag for the {which} validation file "
                       f"(default: {default}); these three replace --val_paths%(default).0s")
    g.add_argument("--test_path", "--test_datapath", default=data_files.path("test"), help="test HDF5 file")
    g.add_argument("--batch_size", type=positive_int, default=None, help="samples per batch (per process; "
                   "default: 512, the reference's; ednn: 128)%(default).0s")
    g.add_argument("--num_workers", type=non_negative_int, default=0, help="DataLoader worker processes")
    g.add_argument("--in_memory", default=False, help="load the files into memory instead of reading lazily",
                   **bool_flag)
    g.add_argument("--beta", type=positive_float, default=None,
                   help="inverse temperature used by the energy formulas "
                   "(default: the training file's beta)%(default).0s")


def _add_model_flags(g, bool_flag: dict, family: str) -> None:
    """Model flags; the model checks their values (one place for both the CLI and the API)."""
    g.add_argument("--cell", default="gru", help="recurrent cell: gru or lstm")
    g.add_argument("--lstm", dest="cell", action="store_const", const="lstm", default=argparse.SUPPRESS,
                   help="the reference's switch: same as --cell lstm")
    g.add_argument("--input_size", type=int, default=1, help="spins per sequence step (the reference's flag; only 1)")
    g.add_argument("--output_size", type=int, default=1, help="outputs per site (the reference's flag; only 1)")
    g.add_argument("--hidden_size", type=int, default=None, help="RNN hidden size (default: 512; ednn: width of "
                   "the tile network, 16)%(default).0s")
    g.add_argument("--num_layers", type=int, default=None, help="stacked RNN layers (default: 1; ednn: hidden "
                   "layers of the tile network, 2)%(default).0s")
    g.add_argument("--bidirectional", default=False, **bool_flag,
                   help="bidirectional RNN" + (" (probability family: the conditional model p(s_i | all other "
                                               "spins))" if family == "probability" else ""))
    g.add_argument("--attention", default=False, help="one multi-head attention layer after the RNN", **bool_flag)
    g.add_argument("--n_heads", type=int, default=1, help="attention heads (needs --attention; must "
                   "divide hidden_size, or 2 x hidden_size when bidirectional)")
    g.add_argument("--two_d", default=False, help="rows and columns snakes, energies averaged", **bool_flag)
    if family == "probability":
        g.add_argument("--joint", default=False, **bool_flag, help="with --two_d --bidirectional: one conditional "
                       "per site whose logit is the sum of the two snakes' logits (each snake supplies the "
                       "neighbours it holds adjacent)")
    if family == "energy":
        g.add_argument("--energy_head", default="logsigmoid", help="logsigmoid: the reference's head "
                       "E = (1/beta) sum log sigmoid; site: a sum of per-site energies")
        g.add_argument("--loss", default=None, help="loss on the energy: l1 or mse (default: l1; ednn: mse)%(default).0s")
        g.add_argument("--architecture", default="rnn", choices=("rnn", "ednn"), help="rnn: the sequence models "
                       "above; ednn: an extensive network, one small network per tile of the lattice, energies "
                       "summed (runs on any lattice size; ednn.py)")
        g.add_argument("--focus", type=int, default=1, help="ednn: tile side f")
        g.add_argument("--context", type=int, default=1, help="ednn: sites read around each tile (1 covers ISING1 "
                       "and ISING2's diagonal bonds)")
        g.add_argument("--spin_flip", default=False, help="ednn: tile energies symmetric under flipping every spin "
                       "(no field, no odd terms; Potts: under every permutation of the q states)", **bool_flag)
        g.add_argument("--lr_decay", type=float, default=None, help="ednn: learning rate factor after every epoch "
                       "(default 0.8)%(default).0s")
        g.add_argument("--teacher", default=None, help="ednn: train on the energies this probability run "
                       "assigns (runs/probability/<config>/) instead of the files' true_energies, which are then "
                       "not read (teacher.py)%(default).0s")


# ----------------------------------------------------------------------------- checks and names
def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Settle the validation files and the architecture's defaults, then fail at once (exit 2,
    one line) on missing files and bad trainer flags; the model checks its own hyper-parameters."""
    slots = [getattr(args, flag) for flag in VAL_SLOTS]
    if any(slots):
        if args.val_paths is not None:
            parser.error(f"--val_paths and --{'/--'.join(VAL_SLOTS)} both set the validation files; "
                         "use one or the other")
        args.val_paths = [given or default for given, default in zip(slots, data_files.val_paths())]
    elif args.val_paths is None:
        args.val_paths = data_files.val_paths()
    for path in [args.train_path, *args.val_paths, args.test_path]:
        if not Path(path).is_file():
            fail(parser, data_files.missing_file_message(path))
    for flag in ("input_size", "output_size"):
        if getattr(args, flag) != 1:
            parser.error(f"--{flag} must be 1 (one spin per sequence step, one output per site); "
                         f"got {getattr(args, flag)}")
    if args.max_epochs < 1 and args.max_epochs != -1:
        parser.error("--max_epochs must be >= 1 (or -1 for no limit)")
    if is_ednn(apply_defaults(args)):
        rnn_only = [f"--{k}" for k in ("bidirectional", "attention", "two_d", "joint") if getattr(args, k, False)]
        rnn_only += [f"--{k}" for k, v in (("cell", "gru"), ("n_heads", 1), ("energy_head", "logsigmoid"),
                                           ("lr_schedule", "constant")) if getattr(args, k) != v]
        if rnn_only:
            parser.error(f"{', '.join(rnn_only)} apply to the sequence models (--architecture rnn), not to ednn")
    elif getattr(args, "teacher", None):
        parser.error("--teacher trains the extensive model: add --architecture ednn")
    elif getattr(args, "lr_decay", None) is not None:
        parser.error("--lr_decay is the extensive model's schedule (--architecture ednn); the sequence models "
                     "take --lr_schedule")
    elif getattr(args, "spin_flip", False):
        parser.error("--spin_flip is the extensive model's symmetry: add --architecture ednn")


def fail(parser: argparse.ArgumentParser, message: str):
    """A mistake in what the flags name (a file, a run, a folder), not in their syntax: one line
    `<prog>: error: <message>` and exit status 2, without the usage text of `parser.error`."""
    parser.exit(2, f"{parser.prog}: error: {message}\n")


def is_ednn(args) -> bool:
    return getattr(args, "architecture", "rnn") == "ednn"


def apply_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the flags whose default depends on the architecture: the extensive model's measured
    recipe (ednn.py), or the reference's settings."""
    defaults = dict(lr=0.1, hidden_size=16, num_layers=2, loss="mse", batch_size=128, lr_decay=0.8) if is_ednn(args) \
        else dict(lr=1e-4, hidden_size=512, num_layers=1, loss="l1", batch_size=512)
    for key, value in defaults.items():
        if getattr(args, key, value) is None:
            setattr(args, key, value)
    return args


def architecture_hparams(args: argparse.Namespace, family: str) -> dict:
    """The model's hyper-parameters that come from the flags (the data adds beta, size, Hamiltonian)."""
    if is_ednn(args):
        return dict(focus=args.focus, context=args.context, hidden_size=args.hidden_size, num_layers=args.num_layers,
                    loss=args.loss, lr=args.lr, lr_decay=args.lr_decay, spin_flip=args.spin_flip)
    hp = dict(cell=args.cell, hidden_size=args.hidden_size, num_layers=args.num_layers, bidirectional=args.bidirectional,
              attention=args.attention, n_heads=args.n_heads, two_d=args.two_d, lr=args.lr, lr_schedule=args.lr_schedule)
    if family == "energy":
        hp.update(energy_head=args.energy_head, loss=args.loss)
    elif args.joint:
        hp.update(joint=True)
    return hp


def run_directory(args: argparse.Namespace, family: str, target: str = "absolute", q: int = 2) -> Path:
    """<output_dir>/<family>/<name>: --run_name, or the configuration's name (+ _Q<q> for Potts data,
    + _from_<teacher>)."""
    teacher = getattr(args, "teacher", None)
    if args.run_name:
        return Path(args.output_dir) / family / args.run_name
    name = config_name({**architecture_hparams(args, family), **({"target": target} if is_ednn(args) else {}),
                        "q": q})
    return Path(args.output_dir) / family / (name + (f"_from_{Path(teacher).name}" if teacher else ""))


def resolve_precision(precision: str, accelerator: str) -> str:
    """"auto" -> "bf16-mixed" where bf16 is native (GPU with bf16; CPU with AVX512-BF16 or AMX,
    measured 1.6-3.4x float32 here for the extended model, hidden 64-512), else "32-true";
    anything else is passed to Lightning as is."""
    if precision != "auto":
        return precision
    import torch

    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:  # not Linux: no cheap way to know, stay exact
        return "32-true"
    return "bf16-mixed" if flags & {"avx512_bf16", "amx_bf16"} else "32-true"


# ----------------------------------------------------------------------------- the run
def main(family: str, doc: str, argv=None) -> dict | None:
    """A trainer's entry point: its flags (description: the first paragraph of `doc`), then `run`."""
    return run(family, build_parser(family, doc.split("\n\n")[0]), argv)


def run(family: str, parser: argparse.ArgumentParser, argv=None) -> dict | None:
    """Parse, check, train, test, write metrics.json. Returns the metrics on rank 0."""
    args = parser.parse_args(argv)
    check_args(parser, args)  # before the heavy imports: errors and --help come back at once
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, Timer
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

    from potts import Potts
    from pytorch_datasets import IsingDataModule
    from runs import checkpoint_error, model_class

    KeepOnInterrupt, EpochLine = _callback_classes()

    # -- data: what the training file says, and where the labels come from; every file is opened
    # as the loaders will read it (keys, shapes, values, lattice size and Hamiltonian) before
    # anything is written, so a wrong file costs seconds, not a training run
    try:
        files = dict(train_path=args.train_path, val_paths=args.val_paths, test_path=args.test_path,
                     batch_size=args.batch_size, num_workers=args.num_workers, in_memory=args.in_memory,
                     seed=args.seed)
        teacher, target = (None, "absolute")
        if getattr(args, "teacher", None):
            from teacher import TeacherDataModule, load_teacher

            teacher, target = load_teacher(args.teacher)
            datamodule = TeacherDataModule(teacher, **files)
        else:
            datamodule = IsingDataModule(family, args.two_d, **files)
        meta = datamodule.check_files()
        check_output_dir("--output_dir", args.output_dir)
    except UserError as err:
        fail(parser, str(err))
    beta = args.beta if args.beta is not None else meta["beta"]
    if beta is None:
        parser.error(f"{args.train_path} holds several betas {meta['betas']}; pass --beta explicitly")
    q = meta["q"]  # 2: Ising spins ±1; q > 2: Potts states 0..q-1

    # -- model: its class and hyper-parameters; it checks them
    cls_name = CLASSES[family, getattr(args, "architecture", "rnn")]
    hparams = {**architecture_hparams(args, family), **({"target": target} if is_ednn(args) else {}),
               "beta": float(beta), "n_x": meta["n_x"], "n_y": meta["n_y"],
               "hamiltonian": meta["hamiltonian"] or ("ISING1" if q == 2 else Potts(q).name), "q": q}
    if args.threads:
        torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed, workers=True, verbose=False)  # a flag error after this stays one line
    try:
        model = model_class(cls_name)(**hparams)
    except ValueError as err:
        parser.error(str(err))
    model.val_names = list(datamodule.val_names)

    # -- the Trainer: checkpoints, early stopping, resuming (built before the run directory is
    # made, so that Lightning's refusal of a flag leaves nothing behind)
    folder = run_directory(args, family, target, q)
    last = folder / "last.ckpt"
    if args.resume and not last.is_file():
        parser.error(f"--resume: {last} does not exist (the run finished or never started); drop --resume")
    # the extensive model sums thousands of tile energies to a per-site accuracy of ~1e-4: bf16's
    # 8 significant bits would cost more than that, and its small convolutions gain nothing
    precision = "32-true" if is_ednn(args) and args.precision == "auto" else resolve_precision(args.precision,
                                                                                                args.accelerator)
    best = ModelCheckpoint(dirpath=folder, filename="best", monitor=MAIN_MONITOR, mode="min", save_top_k=1,
                           save_last=True, enable_version_counter=False, auto_insert_metric_name=False)
    timed = ModelCheckpoint(dirpath=folder, save_top_k=0, save_last=True, enable_version_counter=False,
                            train_time_interval=timedelta(minutes=args.checkpoint_minutes))
    stopping, timer = EarlyStopping(monitor=MAIN_MONITOR, mode="min", patience=args.patience), Timer()
    callbacks = [stopping, best, timed, KeepOnInterrupt(folder, "last"), timer]
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty")  # logs live there too
    try:
        trainer = pl.Trainer(
            accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy,
            precision=precision, max_epochs=args.max_epochs, fast_dev_run=args.fast_dev_run,
            gradient_clip_val=args.gradient_clip_val,
            limit_train_batches=args.limit_train_batches, limit_val_batches=args.limit_val_batches,
            limit_test_batches=args.limit_test_batches, log_every_n_steps=args.log_every_n_steps,
            logger=TensorBoardLogger(save_dir=str(folder), name="tensorboard"),
            callbacks=callbacks + ([] if args.progress_bar else [EpochLine(timer)]),
            enable_progress_bar=args.progress_bar,
        )
    except (ValueError, MisconfigurationException) as err:  # --accelerator, --strategy, --precision, --devices
        parser.error(f"Lightning refuses these flags: {err}")
    new_root = _first_missing(folder)  # what this call creates, removed again if a user error stops it
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        fail(parser, f"--output_dir {args.output_dir}: cannot create {folder} ({err.strerror or err})")
    if args.resume is False:
        last.unlink(missing_ok=True)
    resume_from = str(last) if last.is_file() else None

    # -- fit, then test the best checkpoint
    if resume_from:
        print(f"resuming from {resume_from}")
    try:  # weights_only: a checkpoint holding anything but tensors and plain values is refused unread
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    except SIGTERMException:
        raise SystemExit(f"interrupted: state saved in {last}; run the same command again to resume")
    except pickle.UnpicklingError as err:
        _remove(new_root)
        fail(parser, str(checkpoint_error(last, err)))
    except UserError as err:  # e.g. a bad spin in a part of a file the checks did not read
        _remove(new_root)
        fail(parser, str(err))
    # the fit's own record, before test() restores the callbacks' state from best.ckpt
    seconds = timer.time_elapsed("train")
    samples = trainer.global_step * args.batch_size * trainer.world_size
    fit = {"best_checkpoint": str(Path(best.best_model_path).resolve()) if best.best_model_path else None,
           "best_val_loss": float(best.best_model_score) if best.best_model_score is not None else None,
           "epochs": trainer.current_epoch, "global_steps": trainer.global_step,
           "stopped_early": bool(stopping.stopped_epoch), "train_time_s": seconds, "train_samples": samples,
           "train_samples_per_s": samples / seconds if seconds else None}
    try:
        trainer.test(model, datamodule=datamodule, ckpt_path=best.best_model_path or None,
                     verbose=trainer.is_global_zero, weights_only=True)
    except UserError as err:
        _remove(new_root)
        fail(parser, str(err))
    if not trainer.is_global_zero:
        return None

    # -- metrics.json
    metrics = {
        "family": family, "class": cls_name, "config_name": folder.name,
        "config": {**model.hparams, "architecture": getattr(model, "architecture", "rnn"),
                   "teacher": getattr(args, "teacher", None), "batch_size": args.batch_size,
                   "max_epochs": args.max_epochs, "patience": args.patience, "seed": args.seed,
                   "gradient_clip_val": args.gradient_clip_val, "precision": precision,
                   "strategy": args.strategy, "world_size": trainer.world_size, "threads": torch.get_num_threads()},
        "data": {"train_path": args.train_path, "val_paths": list(args.val_paths), "test_path": args.test_path,
                 "val_names": model.val_names, "train_lattices_in_file": meta["n_lattices"],
                 "test_fingerprint": data_files.fingerprint(args.test_path)},
        **{f"test_{k}": v for k, v in model.test_results.items()},
        **fit,
        "versions": {"torch": torch.__version__, "lightning": pl.__version__, "python": sys.version.split()[0]},
        "resumed_from": resume_from,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    print(f"run directory: {folder}\nmetrics: {write_metrics(folder, metrics)}")
    return metrics


def _first_missing(folder: Path):
    """The outermost folder of `folder` and its parents that does not exist yet, or None."""
    missing = None
    for p in (folder, *folder.parents):
        if p.exists():
            return missing
        missing = p
    return missing


def _remove(folder) -> None:
    """Remove a folder this run created (a failed run leaves nothing where nothing was)."""
    import shutil

    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def write_metrics(folder: Path, metrics: dict) -> Path:
    """folder/metrics.json, atomically (train_all reads it as "finished"); then the run's
    last.ckpt goes, since a finished run has nothing to resume."""
    path = write_json(folder / "metrics.json", metrics)
    (folder / "last.ckpt").unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------- our two callbacks
def _callback_classes():
    from lightning.pytorch.callbacks import Callback, OnExceptionCheckpoint

    class KeepOnInterrupt(OnExceptionCheckpoint):
        """Lightning's OnExceptionCheckpoint, during fit only, and kept on disk: Lightning's
        removes its file at every teardown, which would delete last.ckpt at the end of each fit."""

        def on_exception(self, trainer, *args, **kwargs):
            if trainer.state.fn == "fit":
                super().on_exception(trainer, *args, **kwargs)

        def teardown(self, *args, **kwargs):
            pass

    class EpochLine(Callback):
        """One line per epoch (validation loss, training minutes): the progress of a run
        without a progress bar, e.g. in a log file."""

        def __init__(self, timer):
            self.timer = timer

        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.is_global_zero:
                loss = float(trainer.callback_metrics.get(MAIN_MONITOR, float("nan")))
                print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {MAIN_MONITOR} {loss:.5g}, "
                      f"{self.timer.time_elapsed('train') / 60:.1f} min of training so far", flush=True)

    return KeepOnInterrupt, EpochLine

