"""What `energy_trainer.py` and `probability_trainer.py` share: flags, checks, run wiring.

A run: parse flags -> check the data files and the trainer's own flags (fail at once, with
the command that makes a missing file) -> read beta, lattice size and Ising model from the
training file's metadata -> build the model (which checks its hyper-parameters: its
ValueError becomes the flag error) and `pytorch_datasets.IsingDataModule` ->
Lightning `Trainer.fit` (early stopping and best checkpoint on the main validation loss,
`val/loss`; the other validation sets logged as `val_beta_<beta>/loss`) -> `Trainer.test`
with the best checkpoint -> `metrics.json`.

Run directory: `<output_dir>/<family>/<config_name>/` holding `best.ckpt`, `metrics.json`
and the TensorBoard logs (`tensorboard/version_N`). While a run trains, `last.ckpt` holds its
whole state (weights, Adam, epoch and step, early-stopping and best-checkpoint state), written
atomically at every epoch end, every `--checkpoint_minutes` of training, and when the run is
interrupted (Ctrl-C, SIGTERM); a killed run continues from it when the same command is run
again (or with `--resume`) and reaches the same number of epochs. A finished run (its
`metrics.json` written, `last.ckpt` removed) is started afresh by a rerun.

Precision: `--precision auto` (the default) trains in bf16-mixed where the hardware computes
bf16 natively (CPUs with AVX512-BF16 or AMX, GPUs with bf16 support) and in float32 elsewhere;
energies, log-probabilities and losses are summed in float32 either way (see sequence_blocks).

The reference's flag names are accepted beside ours: `--train_datapath` / `--test_datapath`
(aliases of `--train_path` / `--test_path`), `--main_val_datapath`, `--val_2_datapath`,
`--val_3_datapath` (the three validation files, main first, each defaulting to the standard
one), `--lstm` (= `--cell lstm`), `--input_size 1` and `--output_size 1` (the only values).

Heavy imports (torch, lightning) happen inside `run`, so `--help`, missing files and the
trainer's own flag errors come back at once; a bad model hyper-parameter is reported once
the model class is imported (seconds).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import data_files

MAIN_MONITOR = "val/loss"
MODELS = {"energy": "energy_models:EnergyModel", "probability": "probability_models:ProbabilityModel",
          "ednn": "ednn:EDNNEnergyModel"}
# the reference's names of the three validation files, main first
VAL_SLOTS = ("main_val_datapath", "val_2_datapath", "val_3_datapath")


# ----------------------------------------------------------------------------- flags
def _int_or_float(text: str):
    """Lightning's limit_*_batches: an int is a number of batches, a float a fraction."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _devices(text: str):
    if text == "auto":
        return text
    if "," in text:
        return [int(t) for t in text.split(",") if t.strip()]
    return int(text)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser(family: str, description: str) -> argparse.ArgumentParser:
    """The flags both trainers share; the energy trainer adds --energy_head and --loss."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    bool_flag = dict(action=argparse.BooleanOptionalAction)
    _add_data_flags(p.add_argument_group("data"), bool_flag)
    _add_model_flags(p.add_argument_group("model"), bool_flag, family)

    g = p.add_argument_group("training")
    g.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: 1e-4, the reference's; "
                   "ednn: 0.1, decayed every epoch)%(default).0s")
    g.add_argument("--max_epochs", type=int, default=100, help="upper limit; early stopping usually ends sooner")
    g.add_argument("--patience", type=int, default=5, help="early stopping patience (epochs) on val/loss")
    g.add_argument("--seed", type=int, default=0, help="seeds torch, numpy, python and the shuffling")
    g.add_argument("--output_dir", default="runs", help="runs go to <output_dir>/%s/<config name>/" % family)
    g.add_argument("--run_name", default=None, help="run directory name (default: from the configuration, e.g. 2D_GRU_1L_1H_Bi_Attn)%(default).0s")
    g.add_argument("--progress_bar", default=True, help="tqdm progress bar", **bool_flag)
    g.add_argument("--resume", default=None, help="continue from the run directory's last.ckpt (default: "
                   "whenever an unfinished run left one; --no-resume starts afresh)%(default).0s", **bool_flag)
    g.add_argument("--checkpoint_minutes", type=float, default=10.0,
                   help="also save last.ckpt every this many minutes of training (besides every epoch end)")

    g = p.add_argument_group("lightning")
    g.add_argument("--accelerator", default="auto", help="cpu, gpu, auto, ...")
    g.add_argument("--devices", type=_devices, default="auto", help="auto, a number, or a comma list of ids")
    g.add_argument("--num_nodes", type=_positive_int, default=1, help="machines (multi-node DDP)")
    g.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, ...")
    g.add_argument("--precision", default="auto", help="auto (bf16-mixed where the hardware has native bf16, "
                   "else 32-true), 32-true, bf16-mixed, 16-mixed, ...")
    g.add_argument("--fast_dev_run", type=int, nargs="?", const=1, default=0,
                   help="run N (default 1) batches of train, val and test as a smoke test")
    g.add_argument("--limit_train_batches", type=_int_or_float, default=1.0, help="an int: batches per epoch; a float: fraction")
    g.add_argument("--limit_val_batches", type=_int_or_float, default=1.0, help="as --limit_train_batches")
    g.add_argument("--limit_test_batches", type=_int_or_float, default=1.0, help="as --limit_train_batches")
    g.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads per process (default: torch's choice); use 1 when several "
                   "processes share a few cores%(default).0s")
    g.add_argument("--log_every_n_steps", type=_positive_int, default=50, help="training-step logging interval")
    return p


def _add_data_flags(g, bool_flag: dict) -> None:
    g.add_argument("--train_path", "--train_datapath", default=data_files.path("train"), help="training HDF5 file "
                   "(beta, lattice size and Ising model are read from it)")
    g.add_argument("--val_paths", nargs="+", default=None, help="validation HDF5 files; the first is the main one "
                   "(early stopping, checkpointing), the others are logged as val_beta_<beta> (default: "
                   f"{' '.join(data_files.val_paths())})%(default).0s")
    for which, flag, default in zip(("main", "second", "third"), VAL_SLOTS, data_files.val_paths()):
        g.add_argument(f"--{flag}", default=None, help=f"the reference's flag for the {which} validation file "
                       f"(default: {default}); these three replace --val_paths%(default).0s")
    g.add_argument("--test_path", "--test_datapath", default=data_files.path("test"), help="test HDF5 file")
    g.add_argument("--batch_size", type=_positive_int, default=None, help="samples per batch (per process; "
                   "default: 512, the reference's; ednn: 128)%(default).0s")
    g.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes")
    g.add_argument("--in_memory", default=False, help="load the files into memory instead of reading lazily",
                   **bool_flag)
    g.add_argument("--beta", type=float, default=None,
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
                   help="bidirectional RNN" + (" (probability family: conditional model p(s_i | all other spins))"
                                                if family == "probability" else ""))
    g.add_argument("--attention", default=False, help="one multi-head attention layer after the RNN", **bool_flag)
    g.add_argument("--n_heads", type=int, default=1, help="attention heads (needs --attention; must "
                   "divide hidden_size, or 2 x hidden_size when bidirectional)")
    g.add_argument("--two_d", default=False, help="rows and columns snakes, energies averaged", **bool_flag)
    if family == "energy":
        g.add_argument("--energy_head", default="prob",
                       help="prob: reference head E = (1/beta) sum log sigmoid; site: sum of per-site energies")
        g.add_argument("--loss", default=None, help="loss on the energy: l1 or mse (default: l1; ednn: mse)%(default).0s")
        g.add_argument("--architecture", default="rnn", choices=("rnn", "ednn"), help="rnn: the sequence models "
                       "above; ednn: an extensive network, one small network per tile of the lattice, energies "
                       "summed (runs on any lattice size; ednn.py)")
        g.add_argument("--focus", type=int, default=1, help="ednn: tile side f")
        g.add_argument("--context", type=int, default=1, help="ednn: sites read around each tile (1 covers ISING1 "
                       "and ISING2's diagonal bonds)")
        g.add_argument("--lr_decay", type=float, default=0.8, help="ednn: learning rate factor after every epoch")
        g.add_argument("--teacher", default=None, help="ednn: train on the energies this probability run "
                       "assigns (runs/probability/<config>/) instead of the files' true_energies, which are then "
                       "not read (teacher.py)%(default).0s")


def config_name(hparams: dict) -> str:
    """Run name from the configuration, in the published style, e.g. `2D_GRU_1L_1H_Bi_Attn`.

    [2D_]<CELL>_<layers>L_<heads>H[_Bi][_Attn], then only non-default extras:
    _hid<hidden_size> (default 512), _Site (energy_head="site"), _MSE (loss="mse").
    """
    if hparams.get("architecture", "ednn" if "focus" in hparams else "rnn") == "ednn":  # it names itself
        from ednn import config_name as ednn_name

        return ednn_name(hparams)
    parts = ["2D"] if hparams.get("two_d") else []
    parts += [str(hparams.get("cell", "gru")).upper(), f"{hparams.get('num_layers', 1)}L", f"{hparams.get('n_heads', 1)}H"]
    if hparams.get("bidirectional"):
        parts.append("Bi")
    if hparams.get("attention"):
        parts.append("Attn")
    if hparams.get("hidden_size", 512) != 512:
        parts.append(f"hid{hparams['hidden_size']}")
    if hparams.get("energy_head", "prob") != "prob":
        parts.append(str(hparams["energy_head"]).capitalize())
    if hparams.get("loss", "l1") != "l1":
        parts.append(str(hparams["loss"]).upper())
    return "_".join(parts)


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Settle the validation files, then fail at once (exit 2, one line) on missing files and
    bad trainer flags. The model's hyper-parameters are checked by the model itself."""
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
            parser.error(data_files.missing_file_message(path))
    for flag in ("input_size", "output_size"):
        if getattr(args, flag) != 1:
            parser.error(f"--{flag} must be 1 (one spin per sequence step, one output per site); "
                         f"got {getattr(args, flag)}")
    if args.max_epochs < 1 and args.max_epochs != -1:
        parser.error("--max_epochs must be >= 1 (or -1 for no limit)")
    if args.patience < 0:
        parser.error("--patience must be >= 0")
    if args.num_workers < 0:
        parser.error("--num_workers must be >= 0")
    if not args.checkpoint_minutes > 0:
        parser.error("--checkpoint_minutes must be positive")
    ednn = apply_defaults(args)
    if ednn:
        rnn_only = [f"--{k}" for k in ("bidirectional", "attention", "two_d") if getattr(args, k)]
        rnn_only += [f"--{k}" for k, v in (("cell", "gru"), ("n_heads", 1), ("energy_head", "prob"))
                     if getattr(args, k) != v]
        if rnn_only:
            parser.error(f"{', '.join(rnn_only)} apply to the sequence models (--architecture rnn), not to ednn")
    elif getattr(args, "teacher", None):
        parser.error("--teacher trains the extensive model: add --architecture ednn")
    if getattr(args, "teacher", None) and not (Path(args.teacher) / "best.ckpt").is_file():
        parser.error(f"--teacher {args.teacher}: no best.ckpt there; give a run directory of probability_trainer.py")


def apply_defaults(args: argparse.Namespace) -> bool:
    """Fill the flags whose default depends on the architecture; True for ednn."""
    ednn = getattr(args, "architecture", "rnn") == "ednn"
    # ednn: the measured recipe (ednn.py); rnn: the reference's settings
    defaults = dict(lr=0.1, hidden_size=16, num_layers=2, loss="mse", batch_size=128) if ednn else \
        dict(lr=1e-4, hidden_size=512, num_layers=1, loss="l1", batch_size=512)
    for key, value in defaults.items():
        if getattr(args, key, value) is None:
            setattr(args, key, value)
    return ednn


def model_hparams(parser, args, family: str, meta: dict) -> dict:
    """Model hyper-parameters from the flags and the training file's metadata."""
    beta = args.beta if args.beta is not None else meta.get("beta")
    if beta is None:
        parser.error(f"{args.train_path} holds several betas {meta.get('betas')}; pass --beta explicitly")
    if meta.get("n_x") is None or meta.get("n_y") is None:
        parser.error(f"{args.train_path} does not say its lattice size (n_x, n_y)")
    hp = dict(
        cell=args.cell, hidden_size=args.hidden_size, num_layers=args.num_layers, bidirectional=args.bidirectional,
        attention=args.attention, n_heads=args.n_heads, two_d=args.two_d, lr=args.lr, beta=float(beta),
        n_x=int(meta["n_x"]), n_y=int(meta["n_y"]), model=str(meta.get("model") or "ISING1"),
    )
    if family == "energy" and args.architecture == "ednn":
        return dict(focus=args.focus, context=args.context, hidden_size=args.hidden_size, num_layers=args.num_layers,
                    loss=args.loss, target=teacher_target(args.teacher), lr=args.lr, lr_decay=args.lr_decay,
                    **{k: hp[k] for k in ("beta", "n_x", "n_y", "model")})
    if family == "energy":
        hp.update(energy_head=args.energy_head, loss=args.loss)
    return hp


def teacher_target(teacher_dir) -> str:
    """What the labels are: absolute energies (files, conditional teacher) or known up to a
    constant (causal teacher: E + (1/beta) log Z), read from the teacher's metrics.json."""
    if not teacher_dir:
        return "absolute"
    config = json.loads((Path(teacher_dir) / "metrics.json").read_text()).get("config", {}) \
        if (Path(teacher_dir) / "metrics.json").is_file() else {}
    return "absolute" if config.get("bidirectional") else "centred"


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
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    # the TensorBoard logs share the run directory with best.ckpt on purpose
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty")
    model, meta = build_model(parser, args, family)
    teacher = getattr(args, "teacher", None)
    datamodule = make_datamodule(family, args)
    model.val_names = list(datamodule.val_names)

    name = args.run_name or config_name(dict(model.hparams)) + (f"_from_{Path(teacher).name}" if teacher else "")
    run_dir = Path(args.output_dir) / family / name
    run_dir.mkdir(parents=True, exist_ok=True)
    resume_from = resume_checkpoint(parser, args, run_dir)
    # the extensive model sums thousands of tile energies to a per-site accuracy of ~1e-4: bf16's
    # 8 significant bits would cost more than that, and its small convolutions gain nothing
    ednn = getattr(args, "architecture", "rnn") == "ednn"
    precision = "32-true" if ednn and args.precision == "auto" else resolve_precision(args.precision, args.accelerator)
    checkpoint = ModelCheckpoint(dirpath=run_dir, filename="best", monitor=MAIN_MONITOR, mode="min", save_top_k=1,
                                 enable_version_counter=False, auto_insert_metric_name=False)
    stopping = EarlyStopping(monitor=MAIN_MONITOR, mode="min", patience=args.patience)
    clock, last = make_callbacks(run_dir / "last.ckpt", args.checkpoint_minutes, report=not args.progress_bar)
    trainer = pl.Trainer(
        accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy,
        precision=precision, max_epochs=args.max_epochs, fast_dev_run=args.fast_dev_run,
        limit_train_batches=args.limit_train_batches, limit_val_batches=args.limit_val_batches,
        limit_test_batches=args.limit_test_batches, log_every_n_steps=args.log_every_n_steps,
        logger=TensorBoardLogger(save_dir=str(run_dir), name="tensorboard"),
        callbacks=[checkpoint, stopping, clock, last], enable_progress_bar=args.progress_bar,
        deterministic=False,
    )
    if resume_from:
        print(f"resuming from {resume_from}")
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from)
    except SIGTERMException:
        raise SystemExit(f"interrupted: state saved in {run_dir / 'last.ckpt'}; run the same command again to resume")
    best = checkpoint.best_model_path or None
    summary = fit_summary(trainer, checkpoint, stopping, clock)  # before test(), which restores the
    # callbacks' state from best.ckpt (an early stop after it would read as none)
    trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=trainer.is_global_zero)
    if not trainer.is_global_zero:
        return None

    metrics = {
        "family": family,
        "config_name": name,
        "config": {**model.hparams, "architecture": getattr(model, "architecture", "rnn"), "teacher": teacher,
                   "batch_size": args.batch_size, "max_epochs": args.max_epochs,
                   "patience": args.patience, "seed": args.seed, "precision": precision,
                   "strategy": args.strategy, "world_size": trainer.world_size, "threads": torch.get_num_threads()},
        "data": {"train_path": args.train_path, "val_paths": list(args.val_paths), "test_path": args.test_path,
                 "val_names": model.val_names, "train_samples_in_file": meta.get("n_samples")},
        **{f"test_{k}": v for k, v in model.test_results.items()},
        **summary,
        "resumed_from": resume_from,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    print(f"run directory: {run_dir}\nmetrics: {write_metrics(run_dir, metrics)}")
    return metrics


def make_datamodule(family: str, args: argparse.Namespace):
    """The run's data: the HDF5 files' labels, or a teacher's energies with --teacher."""
    files = dict(train_path=args.train_path, val_paths=args.val_paths, test_path=args.test_path,
                 batch_size=args.batch_size, num_workers=args.num_workers, in_memory=args.in_memory, seed=args.seed)
    if getattr(args, "teacher", None):
        from teacher import TeacherDataModule, load_teacher

        return TeacherDataModule(load_teacher(args.teacher)[0], **files)
    from pytorch_datasets import IsingDataModule

    return IsingDataModule(family=family, two_d=args.two_d, **files)


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    """run_dir/metrics.json, atomically (never half-written: train_all reads it as "finished");
    the run's last.ckpt goes, since a finished run has nothing to resume."""
    path = run_dir / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    (run_dir / "last.ckpt").unlink(missing_ok=True)
    return path


def build_model(parser: argparse.ArgumentParser, args: argparse.Namespace, family: str):
    """(model, training file metadata). The model checks its own hyper-parameters: its
    ValueError becomes this flag error. Also sets the threads and seeds everything."""
    import importlib

    import lightning.pytorch as pl
    import torch

    from pytorch_datasets import read_metadata

    meta = read_metadata(args.train_path)
    hparams = model_hparams(parser, args, family, meta)
    if family == "probability":  # the test metrics compare with exact energies of the test lattices
        test_meta = read_metadata(args.test_path)
        if (test_meta.get("n_x"), test_meta.get("n_y")) != (hparams["n_x"], hparams["n_y"]):
            parser.error(f"{args.test_path} holds {test_meta.get('n_x')} x {test_meta.get('n_y')} lattices but the "
                         f"training file {hparams['n_x']} x {hparams['n_y']}; use a test file of the training size")
    if args.threads:
        torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed, workers=True)
    module, _, name = MODELS["ednn" if getattr(args, "architecture", "rnn") == "ednn" else family].partition(":")
    try:
        return getattr(importlib.import_module(module), name)(**hparams), meta
    except ValueError as err:
        parser.error(str(err))


def fit_summary(trainer, checkpoint, stopping, clock) -> dict:
    """What metrics.json says about the fit: best checkpoint, epochs, timing, versions."""
    import lightning.pytorch as pl
    import torch

    best, best_score = checkpoint.best_model_path, checkpoint.best_model_score
    samples = clock.samples * trainer.world_size
    return {
        "best_checkpoint": str(Path(best).resolve()) if best else None,
        "best_val_loss": float(best_score) if best_score is not None else None,
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "stopped_early": bool(stopping.stopped_epoch),
        "train_time_s": clock.seconds,
        "train_samples": samples,
        "train_samples_per_s": samples / clock.seconds if clock.seconds else None,
        "versions": {"torch": torch.__version__, "lightning": pl.__version__, "python": sys.version.split()[0]},
    }


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


def resume_checkpoint(parser, args, run_dir: Path) -> str | None:
    """The checkpoint to continue from, or None to start afresh (see the module docstring)."""
    last = run_dir / "last.ckpt"
    if args.resume and not last.is_file():
        parser.error(f"--resume: {last} does not exist (the run finished or never started); drop --resume")
    if args.resume is False or not last.is_file():
        last.unlink(missing_ok=True)
        return None
    if args.resume is None and (run_dir / "metrics.json").is_file() and \
            (run_dir / "metrics.json").stat().st_mtime > last.stat().st_mtime:
        return None  # a finished run that left a stale last.ckpt behind: start afresh
    return str(last)


def make_callbacks(last_path: Path, minutes: float, report: bool = False):
    """(clock, resume point): the first measures the wall time of the training epochs (data
    loading included, validation excluded) and the training samples this process saw, across
    resumptions (with `report`, it prints a line per epoch: the progress of a run without a
    progress bar, e.g. in a log file); the second writes the whole training state to `last_path`
    atomically at every epoch end, every `minutes` of training and on an interruption."""
    from lightning.pytorch.callbacks import Callback, Checkpoint

    class TrainClock(Callback):
        # Each training batch is charged the time since the previous batch ended (or since
        # the epoch / a validation run ended): data loading + step, nothing else.
        def __init__(self):
            self.seconds, self.samples, self._last = 0.0, 0, None

        def on_train_epoch_start(self, trainer, pl_module):
            self._last = time.perf_counter()

        def on_validation_end(self, trainer, pl_module):
            self._last = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            now = time.perf_counter()
            if self._last is not None:
                self.seconds += now - self._last
            self._last = now
            self.samples += int(batch[0].shape[0])

        def on_train_epoch_end(self, trainer, pl_module):
            if report and trainer.is_global_zero:
                loss = float(trainer.callback_metrics.get(MAIN_MONITOR, float("nan")))
                print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {MAIN_MONITOR} {loss:.5g}, "
                      f"{self.seconds / 60:.1f} min of training so far", flush=True)

        def state_dict(self):
            return {"seconds": self.seconds, "samples": self.samples}

        def load_state_dict(self, state):
            self.seconds, self.samples = state["seconds"], state["samples"]

    # A Checkpoint, so Lightning runs its epoch-end hook after EarlyStopping's and ModelCheckpoint's:
    # a plain Callback saved their state one epoch behind, and a resumed run forgot the last epoch's
    # validation loss (a worse epoch could then overwrite best.ckpt)
    class ResumePoint(Checkpoint):
        def __init__(self):
            self._saved = time.monotonic()

        def save(self, trainer):
            tmp = last_path.with_suffix(".ckpt.tmp")
            trainer.save_checkpoint(tmp, weights_only=False)
            if trainer.is_global_zero:
                os.replace(tmp, last_path)  # never a half-written last.ckpt
            self._saved = time.monotonic()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if time.monotonic() - self._saved > 60 * minutes:
                self.save(trainer)

        def on_train_epoch_end(self, trainer, pl_module):
            self.save(trainer)

        def on_exception(self, trainer, pl_module, exception):
            if isinstance(exception, (KeyboardInterrupt, SIGTERMException)) and trainer.state.fn == "fit":
                self.save(trainer)

    from lightning.pytorch.utilities.exceptions import SIGTERMException

    return TrainClock(), ResumePoint()
