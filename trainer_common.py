"""The training run that `energy_trainer.py` and `probability_trainer.py` share: `run`.

`run` is the whole pipeline, top to bottom, one named step each:

    flags (`trainer_flags.settle`: files and flags checked at once, before torch is imported; the
      architecture, sequence model or extensive model, chosen once)
    -> data (`prepare_data`): the training file's beta, lattice size, Hamiltonian and q (2 for
       Ising spins ±1, q > 2 for the states of a q-state Potts model, whose runs are named
       ..._Q<q>) and, for a spin-glass instance, its couplings, which the model records as its
       hyper-parameter `instance` (every file of the run must hold that instance; the extensive
       model cannot represent one and is refused); the data module (the files' energies, or a teacher's with --teacher); every file
       opened and checked as the loaders will read it (same size, Hamiltonian and q as the training
       file), before anything is written: a wrong file, run or folder is one line `<prog>: error:
       ...`, exit status 2
    -> model (`build_model`): its class and hyper-parameters (the model checks them; its
       ValueError is the flag error)
    -> the Trainer (`build_trainer`; Lightning's refusal of a flag is a flag error), then the run
       directory (`open_run_directory`)
    -> fit (`fit`): early stopping and best.ckpt on the main validation loss (`val/loss`; the
       other validation files are logged as `val_beta_<beta>/loss`), last.ckpt to resume
    -> test (`test`) with best.ckpt
    -> metrics.json (`run_metrics`, `write_metrics`: written last, atomically: a run with
       metrics.json is finished).

Run directory `<output_dir>/<family>/<config name>/`: best.ckpt, metrics.json, TensorBoard logs
(`tensorboard/version_N`). While a run trains, last.ckpt holds its whole state (weights, Adam,
epoch and step, early-stopping and best-checkpoint state). Lightning does all of it:
ModelCheckpoint(save_last=True) writes last.ckpt after every validation, a second one every
`--checkpoint_minutes` of training, OnExceptionCheckpoint on Ctrl-C / SIGTERM (Lightning writes
checkpoints atomically), and `Trainer.fit(ckpt_path=last.ckpt)` continues to the same epochs.
Rerunning the same command resumes (or `--resume`; `--no-resume` starts afresh). A finished run
has no last.ckpt.

Nothing saved is lost by a rerun: a last.ckpt that cannot be resumed (saved with other
hyper-parameters, e.g. another --hidden_size under the same --run_name, or unreadable) stops the
run in one line before any training and stays byte for byte; a finished run (metrics.json) is
refused unless `--overwrite`, which clears its folder first (metrics.json first of all); one
trainer at a time per run directory (an flock on `<run>/.lock`, which the OS releases when the
process ends, however it ends); `--run_name` is one folder name inside `--output_dir`.

Two small pieces are our own: the interruption checkpoint stays on disk
(Lightning's removes its file at the end of every fit and test), and without a progress bar each
epoch prints one line. Checkpoints are read with weights_only=True: one holding anything but
tensors and plain values is refused unread.

Precision: `--precision auto` (the default) trains in bf16-mixed where the hardware computes bf16
natively (CPUs with AVX512-BF16 or AMX, GPUs with bf16) and in float32 elsewhere; the extensive
model always in float32. Energies, log-probabilities and losses are summed in float32 either way.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import data_files
from checks import UserError, check_output_dir, write_json
from model_registry import class_name
from trainer_flags import (  # noqa: F401 (resolve_precision: the trainers' API here too)
    Architecture,
    architecture,
    build_parser,
    fail,
    resolve_precision,
    run_directory,
    settle,
)

MAIN_MONITOR = "val/loss"


def main(family: str, doc: str, argv=None) -> dict | None:
    """A trainer's entry point: its flags (description: the first paragraph of `doc`), then `run`."""
    return run(family, build_parser(family, doc.split("\n\n")[0]), argv)


def run(family: str, parser: argparse.ArgumentParser, argv=None) -> dict | None:
    """Flags -> data -> model -> fit -> test -> metrics.json. Returns the metrics on rank 0."""
    args = settle(parser, parser.parse_args(argv))  # before the heavy imports: errors and --help come back at once
    arch = architecture(args)
    data = prepare_data(parser, args, family)
    model = build_model(parser, args, arch, family, data)
    # the run directory before the Trainer: its refusals (locked, finished, a last.ckpt that does not
    # fit) come before Lightning's lines about the hardware, so they are the only line
    opened = open_run_directory(parser, args, run_directory(args, family, data.target, data.q), model)
    try:
        try:
            training = build_trainer(parser, args, arch, opened.folder)
        except SystemExit:  # Lightning refused a flag: nothing left where nothing was
            _remove(opened.new_root)
            raise
        training.resume_from, training.new_root = opened.resume_from, opened.new_root
        fit_record = fit(parser, args, training, model, data)
        test(parser, training, model, data)
        if not training.trainer.is_global_zero:
            return None
        metrics = run_metrics(args, family, arch, data, model, training, fit_record, argv)
        print(f"run directory: {training.folder}\nmetrics: {write_metrics(training.folder, metrics)}")
        return metrics
    finally:
        _unlock(opened)


# ----------------------------------------------------------------------------- data
@dataclass
class Data:
    module: object  # the LightningDataModule: the files' energies, or a teacher's (TeacherDataModule)
    meta: dict  # the training file's metadata (data_files.read_metadata)
    beta: float  # --beta, or the training file's
    q: int  # 2: Ising spins ±1; q > 2: the states 0..q-1 of a q-state Potts model
    hamiltonian: str  # ISING1, ISING2, POTTS<q>, EA
    target: str  # "absolute", or "centred" for a causal teacher's labels (E up to a constant)
    instance: dict | None = None  # a spin-glass instance's couplings (`hamiltonians.instance_attrs`), else None


def prepare_data(parser: argparse.ArgumentParser, args: argparse.Namespace, family: str) -> Data:
    """The data module and what the training file says. Every file is opened as the loaders will
    read it (keys, shapes, values, lattice size, Hamiltonian and q) before anything is written,
    so a wrong file costs seconds, not a training run."""
    from pytorch_datasets import IsingDataModule

    files = dict(train_path=args.train_path, val_paths=args.val_paths, test_path=args.test_path,
                 batch_size=args.batch_size, num_workers=args.num_workers, in_memory=args.in_memory, seed=args.seed)
    try:
        if getattr(args, "teacher", None):
            from teacher import TeacherDataModule, load_teacher

            teacher, target = load_teacher(args.teacher)
            module = TeacherDataModule(teacher, **files)
        else:
            module, target = IsingDataModule(family, args.two_d, **files), "absolute"
        meta = module.check_files()
        check_output_dir("--output_dir", args.output_dir)
    except UserError as err:
        fail(parser, str(err))
    beta = args.beta if args.beta is not None else meta["beta"]
    if beta is None:
        parser.error(f"{args.train_path} holds several betas {meta['betas']}; pass --beta explicitly")
    return Data(module, meta, float(beta), meta["q"], data_files.file_hamiltonian(meta), target,
                training_instance(parser, args))


def training_instance(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict | None:
    """The spin-glass instance the training file holds (its couplings, which the model records as its
    hyper-parameter `instance`), or None for a system of any lattice size. The extensive model is
    refused on an instance: its tile network is one function of a window, the same at every site, so
    it cannot hold a coupling per bond (`disorder_ednn.py` is the extensive model that reads them)."""
    import hamiltonians
    try:
        system = data_files.file_system(args.train_path, data_files.read_metadata(args.train_path))
    except UserError as err:
        fail(parser, str(err))
    instance = None if system is None else hamiltonians.instance_attrs(system)
    if instance is not None and getattr(args, "architecture", "rnn") == "ednn":
        fail(parser, f"--architecture ednn: {args.train_path} holds the spin-glass instance {system.label}, a "
                     "coupling per bond, which the extensive model's translation-invariant tile cannot represent; "
                     "train a sequence model (--architecture rnn) or the extensive model that reads the couplings, "
                     "disorder_ednn.py")
    return instance


# ----------------------------------------------------------------------------- model
def build_model(parser: argparse.ArgumentParser, args: argparse.Namespace, arch: Architecture, family: str,
                data: Data):
    """The model of this architecture and family, its hyper-parameters from the flags and the data;
    the model checks them, and its ValueError is the flag error."""
    import lightning.pytorch as pl
    import torch

    from model_registry import model_class

    hparams = {**arch.hparams(args, family, data.target), "beta": data.beta, "n_x": data.meta["n_x"],
               "n_y": data.meta["n_y"], "hamiltonian": data.hamiltonian, "q": data.q}
    if data.instance is not None:  # a spin-glass instance: the run records its couplings (and only then)
        hparams["instance"] = data.instance
    if args.threads:
        torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed, workers=True, verbose=False)  # a flag error after this stays one line
    cls = model_class(class_name(family, arch.name))
    try:
        check_model_size(parser, args, cls, hparams, data.meta.get("n_lattices"))
        model = cls(**hparams)
    except ValueError as err:
        parser.error(str(err))
    model.val_names = list(data.module.val_names)
    return model


TRAINING_BYTES_PER_PARAMETER = 16  # float32 weight, gradient and Adam's two moments


def check_model_size(parser: argparse.ArgumentParser, args: argparse.Namespace, cls, hparams: dict,
                     n_lattices: int | None = None) -> None:
    """Refuse, in one line, a model whose training state alone exceeds the memory this machine has
    left (e.g. --hidden_size 100000000): built first on torch's meta device, which counts the
    parameters without allocating them, so the refusal costs milliseconds instead of an OOM kill.
    Then a batch's activations, from below (one 2-byte value per lattice site, hidden unit, layer,
    direction and snake is kept for the backward pass, whatever the model): e.g. 512 lattices of
    1000 x 1000 sites at hidden size 512 need over 500 GB."""
    import torch

    from runs import available_memory

    try:
        with torch.device("meta"):
            n_params = sum(p.numel() for p in cls(**hparams).parameters())
    except (RuntimeError, NotImplementedError, TypeError):  # a model that cannot be built there is not measured
        return
    need, free = n_params * TRAINING_BYTES_PER_PARAMETER, available_memory()
    if free is not None and need > free:
        fail(parser, f"--hidden_size {args.hidden_size} --num_layers {args.num_layers}: the model would have "
                     f"{n_params:.3g} parameters, {need / 1e9:.3g} GB to train (weights, gradients and Adam's two "
                     f"moments, 4 bytes each) but {free / 1e9:.3g} GB of memory is available; choose a smaller "
                     "--hidden_size or --num_layers")
    batch = min(args.batch_size, n_lattices or args.batch_size)  # a file smaller than a batch is one batch
    copies = (hparams.get("num_layers") or 1) * (2 if hparams.get("bidirectional") else 1) * (2 if hparams.get("two_d") else 1)
    activations = batch * hparams["n_x"] * hparams["n_y"] * hparams["hidden_size"] * copies * 2
    if free is not None and activations > free:
        fail(parser, f"--batch_size {args.batch_size} --hidden_size {args.hidden_size} on {hparams['n_x']} x "
                     f"{hparams['n_y']} lattices: a batch keeps at least {activations / 1e9:.3g} GB of activations for "
                     f"the backward pass but {free / 1e9:.3g} GB of memory is available; choose a smaller --batch_size "
                     "or --hidden_size")


# ----------------------------------------------------------------------------- trainer and run directory
@dataclass
class Training:
    trainer: object  # lightning.pytorch.Trainer
    folder: Path  # the run directory
    best: object  # ModelCheckpoint of best.ckpt (and last.ckpt)
    stopping: object  # EarlyStopping
    timer: object  # Timer: the fit's training time
    precision: str
    resume_from: str | None = None  # last.ckpt when the run continues
    new_root: Path | None = None  # the outermost folder this run creates, removed if a user error stops it


@dataclass
class RunDirectory:
    folder: Path  # the run directory
    new_root: Path | None  # the outermost folder this run created, or None
    resume_from: str | None  # last.ckpt when the run continues
    lock: int | None  # the open, flock-ed <folder>/.lock, held while this process trains there


def build_trainer(parser: argparse.ArgumentParser, args: argparse.Namespace, arch: Architecture,
                  folder: Path) -> Training:
    """The Trainer with its checkpoints, early stopping and timer, built before the run directory
    is made, so that Lightning's refusal of a flag leaves nothing behind."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, Timer
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    KeepOnInterrupt, EpochLine = _callback_classes()
    precision = arch.precision(args)
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
    return Training(trainer, folder, best, stopping, timer, precision)


def check_cpu_devices(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """On the CPU a device is a process: Lightning would start 99 DDP processes for --devices 99
    (and wait for them); more than the machine's cores is refused in one line."""
    import torch

    count = len(args.devices) if isinstance(args.devices, list) else args.devices
    on_cpu = args.accelerator == "cpu" or (args.accelerator == "auto" and not torch.cuda.is_available())
    cores = os.cpu_count() or 1
    if on_cpu and isinstance(count, int) and count > cores:
        fail(parser, f"--devices {args.devices}: {count} processes on the CPU but this machine has {cores} cores; "
                     f"choose --devices {cores} or fewer (or a GPU accelerator)")


def open_run_directory(parser: argparse.ArgumentParser, args: argparse.Namespace, folder: Path,
                       model) -> RunDirectory:
    """Create the run directory and take its lock (one trainer per folder); refuse a finished run
    unless --overwrite (which clears it); note what the run continues from (its last.ckpt, unless
    --no-resume removes it), checked against `model` before any training, and the folders this
    call creates. Only the main process locks and clears: the other DDP ranks (`_launched_rank`)
    run this same command inside the main one's run. A refusal leaves nothing where nothing was."""
    last, new_root, main = folder / "last.ckpt", _first_missing(folder), _launched_rank() == 0
    check_cpu_devices(parser, args)
    if args.resume and not last.is_file():
        parser.error(f"--resume: {last} does not exist (the run finished or never started); drop --resume")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        fail(parser, f"--output_dir {args.output_dir}: cannot create {folder} ({err.strerror or err})")
    # refused: the folder is another trainer's (it may have just made it), left alone
    lock = lock_run_directory(parser, folder) if main else None
    try:
        if main:
            if (folder / "metrics.json").exists():
                if not args.overwrite:
                    fail(parser, f"{folder} is a finished run (it has metrics.json); pass --overwrite to train it "
                                 "again from scratch (its folder is cleared), or choose another --run_name or "
                                 "--output_dir")
                clear_run_directory(folder)
            if args.resume is False:
                last.unlink(missing_ok=True)
        if last.is_file():
            check_resumable(parser, last, model)
    except SystemExit:
        _remove(new_root)
        _unlock(RunDirectory(folder, new_root, None, lock))
        raise
    return RunDirectory(folder, new_root, str(last) if last.is_file() else None, lock)


def _launched_rank() -> int:
    """This process's rank among the copies of the command a launcher started (Lightning's DDP
    launcher: LOCAL_RANK and NODE_RANK; torchrun: RANK; SLURM: SLURM_PROCID); 0 for the main one."""
    for var in ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK"):
        value = os.environ.get(var, "0")
        if value.isdigit() and int(value) != 0:
            return int(value)
    return 0


LOCK_NAME = ".lock"
KEEP_WHEN_CLEARING = (LOCK_NAME, "train.log")  # our own lock; train_all.py's log, open while this run writes it


def lock_run_directory(parser: argparse.ArgumentParser, folder: Path) -> int | None:
    """flock <folder>/.lock for this process's life: a second trainer on the same folder is refused
    in one line. The OS drops the lock when the process ends, however it ends, so a killed run
    leaves no stale lock (the empty file stays, and is reused). A file system without flock
    (some network ones) runs unlocked."""
    import fcntl

    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        fail(parser, f"cannot create the lock file {path} ({err.strerror or err}); choose another --output_dir")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        fail(parser, f"{folder} is in use by another trainer (process {holder}); wait for it to end, or choose another "
                     "--run_name or --output_dir")
    except OSError:                                   # no flock here (ENOLCK, EOPNOTSUPP): run without it
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _unlock(opened: RunDirectory) -> None:
    """Release the run directory's lock (a process that ends releases it anyway; tests run several
    trainers in one process). The file stays: removing it could let two processes lock two files."""
    if opened.lock is not None:
        os.close(opened.lock)
        opened.lock = None


def clear_run_directory(folder: Path) -> None:
    """Empty a finished run's folder for --overwrite: metrics.json first, so a kill midway leaves an
    unfinished run (trained afresh by the next command), never an old metrics.json beside new
    checkpoints; the lock and train_all.py's open log stay."""
    import shutil

    (folder / "metrics.json").unlink(missing_ok=True)
    for p in folder.iterdir():
        if p.name in KEEP_WHEN_CLEARING:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    print(f"--overwrite: cleared the finished run in {folder}")


def check_resumable(parser: argparse.ArgumentParser, last: Path, model) -> None:
    """The run continues from `last` only if it is a plain checkpoint of this very model (its
    hyper-parameters and its weights' names and shapes): checked before any training, so a
    rerun with other flags (e.g. another --hidden_size and the same --run_name) stops in one line
    and last.ckpt, the run's saved progress, is left as it was."""
    from runs import load_checkpoint

    keep = f"{last} is kept as it is: rerun with the flags it was saved with, or pass --no-resume to discard it"
    try:
        ckpt = load_checkpoint(last)
    except UserError as err:
        fail(parser, f"{err}; {keep}")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        fail(parser, f"{last} is not a trainer's checkpoint (no state_dict); {keep}")
    saved = ckpt.get("hyper_parameters") or {}
    changed = [f"{k} {saved[k]!r} there, {v!r} now" for k, v in model.hparams.items()
               if k in saved and saved[k] != v]
    if changed:
        fail(parser, f"{last} was saved by a run with other hyper-parameters ({'; '.join(changed)}); {keep}")
    try:
        model.load_state_dict(ckpt["state_dict"])   # the fit loads it again: this only proves that it fits
    except RuntimeError as err:
        reason = " ".join(str(err).split())[:300]
        fail(parser, f"{last} does not fit this model ({reason}); {keep}")


# ----------------------------------------------------------------------------- fit and test
def fit(parser: argparse.ArgumentParser, args: argparse.Namespace, training: Training, model, data: Data) -> dict:
    """Trainer.fit (continuing from last.ckpt where there is one); returns the fit's own record,
    read before test() restores the callbacks' state from best.ckpt."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from runs import checkpoint_error

    trainer, last = training.trainer, training.folder / "last.ckpt"
    if training.resume_from:
        print(f"resuming from {training.resume_from}")
    try:  # weights_only: a checkpoint holding anything but tensors and plain values is refused unread
        with warnings.catch_warnings():
            # a fresh run: Lightning, seeing the on-interrupt checkpoint callback, looks for a last.ckpt
            # to resume from and says twice that there is none; that is what a fresh run expects
            if not training.resume_from:
                warnings.filterwarnings("ignore", message=r".*\.fit\(ckpt_path=None\)` was called without a model")
                warnings.filterwarnings("ignore", message=r'.*\.fit\(ckpt_path="last"\) is set, but there is no last')
            trainer.fit(model, datamodule=data.module, ckpt_path=training.resume_from, weights_only=True)
    except SIGTERMException:
        raise SystemExit(f"interrupted: state saved in {last}; run the same command again to resume")
    except pickle.UnpicklingError as err:
        _remove(training.new_root)
        fail(parser, str(checkpoint_error(last, err)))
    except UserError as err:  # e.g. a bad spin in a part of a file the checks did not read
        _remove(training.new_root)
        fail(parser, str(err))
    best, seconds = training.best, training.timer.time_elapsed("train")
    samples = trainer.global_step * args.batch_size * trainer.world_size
    return {"best_checkpoint": str(Path(best.best_model_path).resolve()) if best.best_model_path else None,
            "best_val_loss": float(best.best_model_score) if best.best_model_score is not None else None,
            "epochs": trainer.current_epoch, "global_steps": trainer.global_step,
            "stopped_early": bool(training.stopping.stopped_epoch), "train_time_s": seconds, "train_samples": samples,
            "train_samples_per_s": samples / seconds if seconds else None}


def test(parser: argparse.ArgumentParser, training: Training, model, data: Data) -> None:
    """Trainer.test with best.ckpt: the model's `test_results`."""
    trainer = training.trainer
    try:
        trainer.test(model, datamodule=data.module, ckpt_path=training.best.best_model_path or None,
                     verbose=trainer.is_global_zero, weights_only=True)
    except UserError as err:
        _remove(training.new_root)
        fail(parser, str(err))


# ----------------------------------------------------------------------------- metrics.json
def run_metrics(args: argparse.Namespace, family: str, arch: Architecture, data: Data, model, training: Training,
                fit_record: dict, argv) -> dict:
    """What metrics.json records: the model's class and configuration, the data, the test metrics,
    the fit, the versions and the command."""
    import lightning.pytorch as pl
    import torch

    trainer = training.trainer
    return {
        "family": family, "class": class_name(family, arch.name), "config_name": training.folder.name,
        "config": {**model.hparams, "architecture": arch.name,
                   "teacher": getattr(args, "teacher", None), "batch_size": args.batch_size,
                   "max_epochs": args.max_epochs, "patience": args.patience, "seed": args.seed,
                   "gradient_clip_val": args.gradient_clip_val, "precision": training.precision,
                   "strategy": args.strategy, "world_size": trainer.world_size, "threads": torch.get_num_threads()},
        "data": {"train_path": args.train_path, "val_paths": list(args.val_paths), "test_path": args.test_path,
                 "val_names": model.val_names, "train_lattices_in_file": data.meta["n_lattices"],
                 "test_fingerprint": data_files.fingerprint(args.test_path)},
        **{f"test_{k}": v for k, v in model.test_results.items()},
        **fit_record,
        "versions": {"torch": torch.__version__, "lightning": pl.__version__, "python": sys.version.split()[0]},
        "resumed_from": training.resume_from,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }


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
    path = write_json(folder / "metrics.json", metrics)  # a diverged run's NaN loss: null, valid JSON
    (folder / "last.ckpt").unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------- our two callbacks
def _callback_classes():
    from lightning.pytorch.callbacks import Callback, OnExceptionCheckpoint

    class KeepOnInterrupt(OnExceptionCheckpoint):
        """Lightning's OnExceptionCheckpoint, during fit only, and kept on disk: Lightning's
        removes its file at every teardown, which would delete last.ckpt at the end of each fit."""

        started = False

        def on_train_start(self, trainer, pl_module):
            self.started = True

        def on_exception(self, trainer, *args, **kwargs):
            # only once training has started: an exception while the fit restores last.ckpt (or
            # before) would otherwise replace the run's saved progress with a fresh model
            if trainer.state.fn == "fit" and self.started:
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

