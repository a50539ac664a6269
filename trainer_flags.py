"""The trainers' flags: their definition, their architecture, and their checks.

`build_parser` defines the flags both trainers share (the energy trainer adds its heads, losses
and the extensive model). `settle` turns what was parsed into the settled flags of one run, a new
namespace (the parsed one is left as it was): the validation files (`--val_paths`, or the
reference's three flags, or the standard files) and the defaults of the architecture, checked at
once (exit 2, one line) before torch is imported, so that errors and `--help` come back at once.

The architecture is chosen once, from `--architecture` (the probability trainer has only the
sequence models): an `Architecture` holds everything that differs between the sequence models
("rnn") and the extensive model ("ednn"): the defaults of its flags, the flags it refuses, its
hyper-parameters, its run name and its precision. The models check the values of their own
hyper-parameters (one place for both the CLI and the API).

The reference's flag names work beside ours: `--train_datapath` / `--test_datapath` (aliases of
`--train_path` / `--test_path`), `--main_val_datapath`, `--val_2_datapath`, `--val_3_datapath` (the
three validation files, main first, each defaulting to the standard one), `--lstm` (= `--cell
lstm`), `--input_size 1` and `--output_size 1` (the only values).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import data_files
from checks import HelpFormatter, non_negative_int, positive_float, positive_int, seed_int
from runs import config_name

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
    p = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
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
    g.add_argument("--overwrite", action="store_true", help="train a finished run (one with metrics.json) again "
                   "from scratch, clearing its folder first (without it, a finished run is refused, never retrained "
                   "in place)")

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


# ----------------------------------------------------------------------------- the architecture
class Architecture:
    """What the flags of a run mean for one kind of model: the defaults of its flags, the flags
    it refuses, its hyper-parameters (hence its run name) and its precision."""

    name = "?"  # --architecture
    defaults: dict = {}

    def refusal(self, args: argparse.Namespace) -> str | None:
        """Why these flags do not fit this architecture, or None."""
        raise NotImplementedError

    def hparams(self, args: argparse.Namespace, family: str, target: str = "absolute") -> dict:
        """The model's hyper-parameters that come from the flags (the data adds beta, size, Hamiltonian, q)."""
        raise NotImplementedError

    def precision(self, args: argparse.Namespace) -> str:
        return resolve_precision(args.precision, args.accelerator)


class SequenceArchitecture(Architecture):
    """The sequence models (`energy_models`, `probability_models`)."""

    name = "rnn"
    # flags whose default depends on the architecture: the reference's settings
    defaults = dict(lr=1e-4, hidden_size=512, num_layers=1, loss="l1", batch_size=512)

    def refusal(self, args: argparse.Namespace) -> str | None:
        if getattr(args, "teacher", None):
            return "--teacher trains the extensive model: add --architecture ednn"
        if getattr(args, "lr_decay", None) is not None:
            return ("--lr_decay is the extensive model's schedule (--architecture ednn); the sequence models "
                    "take --lr_schedule")
        if getattr(args, "spin_flip", False):
            return "--spin_flip is the extensive model's symmetry: add --architecture ednn"
        return None

    def hparams(self, args: argparse.Namespace, family: str, target: str = "absolute") -> dict:
        hp = dict(cell=args.cell, hidden_size=args.hidden_size, num_layers=args.num_layers,
                  bidirectional=args.bidirectional, attention=args.attention, n_heads=args.n_heads, two_d=args.two_d,
                  lr=args.lr, lr_schedule=args.lr_schedule)
        if family == "energy":
            hp.update(energy_head=args.energy_head, loss=args.loss)
        elif args.joint:
            hp.update(joint=True)
        return hp


class ExtensiveArchitecture(Architecture):
    """The extensive model (`ednn`, `--architecture ednn`), trained on the files' energies or a
    teacher's (`--teacher`, whose kind sets the target: "absolute" or "centred")."""

    name = "ednn"
    # its measured recipe (ednn.py)
    defaults = dict(lr=0.1, hidden_size=16, num_layers=2, loss="mse", batch_size=128, lr_decay=0.8)
    # the sequence models' flags, and the value that means "not given"
    SEQUENCE_FLAGS = dict(bidirectional=False, attention=False, two_d=False, joint=False, cell="gru", n_heads=1,
                          energy_head="logsigmoid", lr_schedule="constant")

    def refusal(self, args: argparse.Namespace) -> str | None:
        given = [f"--{k}" for k, unset in self.SEQUENCE_FLAGS.items() if getattr(args, k, unset) != unset]
        return f"{', '.join(given)} apply to the sequence models (--architecture rnn), not to ednn" if given else None

    def hparams(self, args: argparse.Namespace, family: str, target: str = "absolute") -> dict:
        return dict(focus=args.focus, context=args.context, hidden_size=args.hidden_size, num_layers=args.num_layers,
                    loss=args.loss, lr=args.lr, lr_decay=args.lr_decay, spin_flip=args.spin_flip, target=target)

    def precision(self, args: argparse.Namespace) -> str:
        # thousands of tile energies summed to a per-site accuracy of ~1e-4: bf16's 8 significant
        # bits would cost more than that, and its small convolutions gain nothing
        return "32-true" if args.precision == "auto" else resolve_precision(args.precision, args.accelerator)


ARCHITECTURES = {a.name: a for a in (SequenceArchitecture(), ExtensiveArchitecture())}


def architecture(args: argparse.Namespace) -> Architecture:
    """The architecture the flags ask for (the probability trainer has no --architecture: "rnn")."""
    return ARCHITECTURES[getattr(args, "architecture", "rnn")]


# ----------------------------------------------------------------------------- settling and checking
def settle(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The settled flags of one run (a new namespace): the validation files and the architecture's
    defaults filled in; exit 2 with one line on missing files and bad trainer flags."""
    args = argparse.Namespace(**{**vars(apply_defaults(args)), "val_paths": validation_files(parser, args)})
    for path in [args.train_path, *args.val_paths, args.test_path]:
        if not Path(path).is_file():
            fail(parser, data_files.missing_file_message(path))
    for flag in ("input_size", "output_size"):
        if getattr(args, flag) != 1:
            parser.error(f"--{flag} must be 1 (one spin per sequence step, one output per site); "
                         f"got {getattr(args, flag)}")
    if args.max_epochs < 1 and args.max_epochs != -1:
        parser.error("--max_epochs must be >= 1 (or -1 for no limit)")
    if args.run_name is not None:
        check_run_name(parser, args.run_name)
    cores = os.cpu_count() or 1
    if args.num_workers > 4 * cores:  # each worker is a process: 100000 of them would fork-bomb the machine
        fail(parser, f"--num_workers {args.num_workers}: at most {4 * cores} (4 per CPU core, {cores} cores here); each "
                     "worker is a process reading the files, and 0 reads in the trainer itself")
    refusal = architecture(args).refusal(args)
    if refusal:
        parser.error(refusal)
    return args


def check_run_name(parser: argparse.ArgumentParser, name: str) -> None:
    """--run_name is one folder name: a path (`../../x`, `/tmp/x`, `a/b`) would put the run, and the
    files a rerun clears, outside <output_dir>/<family>/."""
    if name in ("", ".", "..") or "/" in name or os.sep in name or "\0" in name or len(name.encode()) > 255:
        fail(parser, f"--run_name {name!r}: give one folder name (no '/', '.' or '..', at most 255 bytes); the run "
                     "goes to <output_dir>/<family>/<run_name>, never outside --output_dir")


def validation_files(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list:
    """--val_paths, or the reference's three flags (each defaulting to its standard file), or the
    standard files."""
    slots = [getattr(args, flag) for flag in VAL_SLOTS]
    if any(slots) and args.val_paths is not None:
        parser.error(f"--val_paths and --{'/--'.join(VAL_SLOTS)} both set the validation files; use one or the other")
    if any(slots):
        return [given or default for given, default in zip(slots, data_files.val_paths())]
    return list(args.val_paths) if args.val_paths is not None else data_files.val_paths()


def apply_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """The flags with the architecture's defaults where none was given (a new namespace)."""
    defaults = architecture(args).defaults
    return argparse.Namespace(**{**vars(args), **{k: v for k, v in defaults.items() if getattr(args, k, v) is None}})


def fail(parser: argparse.ArgumentParser, message: str):
    """A mistake in what the flags name (a file, a run, a folder), not in their syntax: one line
    `<prog>: error: <message>` and exit status 2, without the usage text of `parser.error`."""
    parser.exit(2, f"{parser.prog}: error: {message}\n")


def run_directory(args: argparse.Namespace, family: str, target: str = "absolute", q: int = 2) -> Path:
    """<output_dir>/<family>/<name>: --run_name, or the configuration's name (+ _Q<q> for Potts data,
    + _from_<teacher>)."""
    if args.run_name:
        return Path(args.output_dir) / family / args.run_name
    teacher = getattr(args, "teacher", None)
    name = config_name({**architecture(args).hparams(args, family, target), "q": q})
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
