"""Train every model combination of a profile, skipping finished runs, then evaluate them all.

    python train_all.py --profile demo --jobs 2 --out results/demo --images results/demo   # make demo
    python train_all.py --profile cpu --jobs 2 --out results/cpu                           # make reproduce
    python train_all.py --profile parity --jobs 2 --out results/parity                     # bf16 vs fp32
    python train_all.py --profile headline --jobs 2 --out results/headline                 # make headline
    python train_all.py --profile reference --accelerator auto                             # for a GPU

Flags this script does not know
(e.g. `--accelerator auto`, `--limit_train_batches 2`) go to every trainer, after the
profile's own, so they override them.

A run counts as finished when its folder holds metrics.json (the trainers write it last) and
is skipped; an unfinished one is started again with the same command, so the trainer continues
it from its last.ckpt: an interrupted `make reproduce` resumes where it stopped, inside runs as
well as between them. The folder is the one the trainer will write: its own parser reads the
command and names the configuration.

--jobs N runs N trainers at once, each with one intra-op thread (`--threads 1`): the
recurrent steps are too small to use two cores well, and two one-thread processes beat one
two-thread process on a 2-core CPU (and do not thrash when the machine is busy). Their
output then goes to `<run>/train.log` instead of the terminal, where it would interleave.

Paths (--runs, --data_dir, --eval_path, --out, --images) are the user's, relative to the working
folder; the trainers get them absolute and run in that same folder. Ctrl-C or SIGTERM stops the
running trainers too (each saves its last.ckpt and ends: the same command resumes them), starts
no queued one, and ends in one line, exit status 130 or 143.
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import data_files
import evaluate as ev
from checks import HelpFormatter, UserError, check_output_dir, main_guard, positive_int
from trainer_flags import apply_defaults, build_parser, run_directory

ROOT = Path(__file__).resolve().parent

# Training profiles; "extra" are further trainer flags. Sizes come from measured CPU
# throughput (one thread per trainer, two trainers at once; README "Benchmarks"): in float32 at
# hidden 32 the 17 runs took 23 minutes for 2 epochs of 250 batches (256,000 samples seen per
# run); bf16 (the trainers' default on CPUs with native bf16) buys hidden 64 at that budget.
PROFILES = {
    # make demo: small data (make data-demo), the two models of the predictions plot, minutes
    "demo": {"data_dir": "data/demo", "runs": "runs/demo", "hidden_size": 32, "max_epochs": 4,
             "patience": 4, "batch_size": 256, "lr": 3e-3, "extra": []},
    # make reproduce: every combination on 2 CPU cores
    "cpu": {"data_dir": "data", "runs": "runs/cpu", "hidden_size": 64, "max_epochs": 2,
            "patience": 2, "batch_size": 512, "lr": 3e-3, "extra": ["--limit_train_batches", "250"]},
    # bf16 against float32, two seeds each, for the two models that bound the speed-up (README)
    "parity": {"data_dir": "data", "runs": "runs/parity", "hidden_size": 64, "max_epochs": 2,
               "patience": 2, "batch_size": 512, "lr": 3e-3, "extra": ["--limit_train_batches", "250"]},
    # the best sequence model as a recipe: the joint conditional model (2D), cosine schedule, 15
    # epochs, three seeds (about 35 minutes each on one core); validation on 10 batches of each file
    "headline": {"data_dir": "data", "runs": "runs/headline", "hidden_size": 64, "max_epochs": 15,
                 "patience": 5, "batch_size": 512, "lr": 5e-3,
                 "extra": ["--joint", "--lr_schedule", "cosine", "--gradient_clip_val", "1.0", "--limit_val_batches", "10",
                           "--precision", "32-true"]},
    # the reference's own settings (hidden 512, lr 1e-4, batch 512, early stopping), for a GPU
    "reference": {"data_dir": "data", "runs": "runs/reference", "hidden_size": 512, "max_epochs": 100,
                  "patience": 5, "batch_size": 512, "lr": 1e-4, "extra": []},
}


def combinations(profile: str) -> list[dict]:
    """The runs of a profile: family and model flags per run.

    demo: the two models of the predictions plot. headline: the joint conditional model (2D) with seeds
    0, 1, 2, one subfolder per seed. parity: the full extended energy model and
    the causal probability model, each in bf16 and float32 with seeds 0 and 1 (8 runs, one
    subfolder per precision and seed). Otherwise every (energy, probability) x
    (1D, 2D) x (plain, attention) x (uni-, bidirectional), plus the site energy head on the
    full extended model: 17 runs."""
    if profile == "demo":
        return [
            {"family": "energy", "attention": True, "two_d": True, "bidirectional": True},
            {"family": "probability", "attention": False, "two_d": False, "bidirectional": False},
        ]
    if profile == "headline":
        return [{"family": "probability", "attention": False, "two_d": True, "bidirectional": True,
                 "subdir": f"seed{seed}", "flags": ["--seed", str(seed)]} for seed in (0, 1, 2)]
    if profile == "parity":
        models = [{"family": "energy", "attention": True, "two_d": True, "bidirectional": True},
                  {"family": "probability", "attention": False, "two_d": False, "bidirectional": False}]
        return [{**m, "subdir": f"{precision}_seed{seed}", "flags": ["--precision", precision, "--seed", str(seed)]}
                for precision in ("bf16-mixed", "32-true") for seed in (0, 1) for m in models]
    runs = [{"family": family, "attention": attention, "two_d": two_d, "bidirectional": bidirectional}
            for family in ("energy", "probability") for two_d in (False, True)
            for attention in (False, True) for bidirectional in (False, True)]
    runs.append({"family": "energy", "attention": True, "two_d": True, "bidirectional": True, "energy_head": "site"})
    return runs


def trainer_args(spec: dict, profile: dict, extra=()) -> list[str]:
    """The flags of `<family>_trainer.py` for one run of a profile; `extra` last, so it wins."""
    d = profile["data_dir"]
    args = ["--train_path", data_files.path("train", d), "--val_paths", *data_files.val_paths(d),
            "--test_path", data_files.path("test", d), "--output_dir", str(Path(profile["runs"]) / spec.get("subdir", ""))]
    for key in ("hidden_size", "max_epochs", "patience", "batch_size", "lr"):
        args += [f"--{key}", str(profile[key])]
    for flag in ("attention", "two_d", "bidirectional"):
        args.append(f"--{flag}" if spec.get(flag) else f"--no-{flag}")
    if spec["family"] == "energy":
        args += ["--energy_head", spec.get("energy_head", "logsigmoid")]
    return args + list(profile.get("extra", [])) + spec.get("flags", []) + list(extra)


def run_dir(family: str, args: list[str]) -> Path:
    """The folder the trainer writes for these flags, named by the trainer's own parser and
    `trainer_flags.run_directory` (a bad flag stops here, with the trainer's usage message,
    before anything is trained)."""
    parser = build_parser(family, "")
    parser.prog = f"{family}_trainer.py"
    return run_directory(apply_defaults(parser.parse_args(args)), family)


class Children:
    """The trainers running now. Each runs in its own session, so a Ctrl-C at the terminal reaches
    this process alone, which passes it on once, as SIGTERM (a second signal inside a trainer's
    checkpoint save could cut it short); once `stop` is called no new trainer starts."""

    def __init__(self):
        self.lock, self.running, self.stopped = threading.Lock(), set(), False

    def run(self, cmd: list[str], **kw) -> int:
        with self.lock:
            if self.stopped:
                return STOPPED
            proc = subprocess.Popen(cmd, start_new_session=True, **kw)
            self.running.add(proc)
        try:
            return proc.wait()
        finally:
            with self.lock:
                self.running.discard(proc)

    def stop(self, signum: int, grace_s: float = 120.0) -> None:
        """Send `signum` to every running trainer (each saves last.ckpt and ends), wait for them,
        and kill those still running after grace_s."""
        with self.lock:
            self.stopped = True
            running = list(self.running)
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)
        deadline = time.monotonic() + grace_s
        for proc in running:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


STOPPED = -signal.SIGTERM  # the exit status of a trainer that was never started because the run stopped
CHILDREN = Children()


def trainer_command(family: str, args: list[str]) -> list[str]:
    return [sys.executable, str(ROOT / f"{family}_trainer.py"), *args]


def run_trainer(cmd: list[str], log_path: Path | None) -> int:
    """Run one trainer to the end; its output to log_path, or to the terminal when None. Exit status.
    It runs in this process's working folder: every path train_all passes is absolute, and a
    relative path among the extra flags means what it means to the user."""
    if log_path is None:
        return CHILDREN.run(cmd)
    with open(log_path, "a") as log:  # a resumed run adds to the log of its first part
        return CHILDREN.run(cmd, stdout=log, stderr=subprocess.STDOUT)


def training_files(data_dir) -> list[str]:
    """The standard training, validation (main first) and test files of a data folder."""
    return [data_files.path("train", data_dir), *data_files.val_paths(data_dir), data_files.path("test", data_dir)]


def check_files(data_dir, eval_path) -> None:
    """Every file the profile reads, opened as the trainers and the evaluation will read it:
    a missing, unreadable or mismatched file is one line now, not a failure of every run later."""
    data_files.require_file(eval_path)
    files = training_files(data_dir)
    for path in files:
        data_files.require_file(path)
    from pytorch_datasets import IsingDataModule  # torch: only once the files are there

    IsingDataModule("energy", train_path=files[0], val_paths=files[1:-1], test_path=files[-1]).check_files()
    data_files.check_data_file(eval_path, ev.EVAL_KEYS)


def train_all(profile_name: str, extra=(), overrides: dict | None = None, jobs: int = 1) -> list[Path]:
    """Train every run of a profile that has not finished yet, `jobs` at a time.

    Returns the run folders of the whole profile. Raises FileNotFoundError before training if
    a data file is missing, and UserError naming the runs that failed after the others ended."""
    global CHILDREN
    CHILDREN = Children()  # this call's trainers (an earlier call may have been stopped)
    profile = {**PROFILES[profile_name], **(overrides or {})}
    for path in training_files(profile["data_dir"]):
        data_files.require_file(path)
    # several at once: one thread each, and a line per epoch in each run's train.log instead of a progress bar
    extra = ["--threads", "1", "--no-progress_bar", *extra] if jobs > 1 else list(extra)
    specs = combinations(profile_name)
    todo, dirs = [], []
    for i, spec in enumerate(specs, 1):
        args = trainer_args(spec, profile, extra)
        dirs.append(run_dir(spec["family"], args))
        if (dirs[-1] / "metrics.json").exists():
            print(f"[{i}/{len(specs)}] {dirs[-1]} finished already, skipping", flush=True)
        else:
            cmd = trainer_command(spec["family"], args)
            todo.append((f"[{i}/{len(specs)}]", dirs[-1], cmd))

    def train(tag: str, folder: Path, cmd: list[str]) -> bool:
        resuming = " (resuming from last.ckpt)" if (folder / "last.ckpt").is_file() else ""
        print(f"{tag} {' '.join(cmd[1:])}{resuming}", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "train.log" if jobs > 1 else None
        t0 = time.perf_counter()
        rc = run_trainer(cmd, log)
        if CHILDREN.stopped:  # stopped by a signal: the one line of main_guard says so
            return True
        status = "done" if rc == 0 else f"FAILED (exit {rc}{f', log: {log}' if log else ''})"
        print(f"{tag} {folder.name} {status} in {time.perf_counter() - t0:.0f} s", flush=True)
        return rc == 0

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(train, *job): job[1] for job in todo}
        failed = [futures[f] for f in as_completed(futures) if not f.result()]
    except KeyboardInterrupt:  # SIGINT or SIGTERM (main_guard): the running trainers save and end first
        pool.shutdown(wait=False, cancel_futures=True)
        CHILDREN.stop(signal.SIGTERM)  # a trainer's documented stop either way: last.ckpt saved, one line
        raise
    finally:  # queued runs never start
        pool.shutdown(wait=True, cancel_futures=True)
    if failed:
        where = "see their train.log" if jobs > 1 else "their output is above"
        raise UserError(f"{len(failed)} run(s) failed: {', '.join(str(f) for f in failed)} ({where})")
    return dirs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description="Train every combination of a profile (skipping finished runs), then score them all "
        "as evaluate.py does. Unknown flags go to every trainer.",
        formatter_class=HelpFormatter,
        allow_abbrev=False,  # a trainer flag must never be taken for an abbreviation of one of these
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu", help="which runs and sizes")
    p.add_argument("--runs", default=None, help="folder of runs; default: the profile's (runs/<profile>)")
    p.add_argument("--data_dir", default=None, help="folder of the standard data files; default: the profile's")
    p.add_argument("--eval_path", default=None, help="evaluation file; default: the one in the data folder")
    p.add_argument("--out", default=None, help="where leaderboard.{md,csv,json} go; default: results/<profile>")
    p.add_argument("--hidden_size", type=positive_int, default=None, help="override the profile's hidden size")
    p.add_argument("--max_epochs", type=positive_int, default=None, help="override the profile's epochs")
    p.add_argument("--jobs", type=positive_int, default=1, help="trainers run at once (each one thread)")
    ev.add_report_flags(p)
    args, extra = p.parse_known_args(argv)
    overrides = {k: getattr(args, k) for k in ("runs", "data_dir", "hidden_size", "max_epochs")
                 if getattr(args, k) is not None}
    profile = {**PROFILES[args.profile], **overrides}
    # every folder as the user means it (relative to their working folder), whichever folder a
    # trainer or a later step runs in
    for key in ("runs", "data_dir"):
        overrides[key] = profile[key] = str(Path(profile[key]).absolute())
    eval_path = str(Path(args.eval_path or data_files.path("eval", profile["data_dir"])).absolute())
    out = str(Path(args.out or Path("results") / args.profile).absolute())
    images = str(Path(args.images).absolute())
    # before hours of training, not after
    for flag, folder in (("--runs", profile["runs"]), ("--out", out), ("--images", images)):
        check_output_dir(flag, folder)
    check_files(profile["data_dir"], eval_path)
    ev.check_draw_size(args.n, eval_path)
    train_all(args.profile, extra, overrides, jobs=args.jobs)
    return ev.run_report(profile["runs"], eval_path, out, images, args.n, args.seed)


if __name__ == "__main__":
    sys.exit(main_guard(main))
