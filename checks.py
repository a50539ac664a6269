"""Checks of what a user gives, each defined once, and the one-line exit for a user's mistake.

- `check_choice`, `check_positive_int`, `check_positive_number`: one-line ValueErrors, used by
  the models for their hyper-parameters (the trainers show them as flag errors) and, through
  `positive_int` / `positive_float` / `non_negative_int` / `seed_int`, by every command line's
  argparse types.
- `check_output_dir`: a folder a command will write into, checked before any work (a file in
  its place, or a folder that cannot be written, is a one-line UserError).
- `check_output_file`: the same for a file a command will write: refused before any work when
  it is one of the command's inputs (or lies inside an input folder, such as a run directory it
  reads), a folder, a device, a pipe or other non-regular file, a read-only file, or a path
  through a symlink loop or a file.
- `UserError`: a mistake the user can fix (a missing or unreadable file, a run of the wrong
  kind, a lattice a model cannot read). `main_guard(main)` runs a script's `main` and turns a
  UserError into one line on stderr and exit status 2, no traceback; Ctrl-C (SIGINT) and SIGTERM
  into one line and exit status 130 and 143, after the file being written is removed; anything
  else is a bug and keeps its traceback.
- `HelpFormatter`: every command line's --help, each flag's default shown once.
- `atomic_path` / `write_json`: every file the repo writes appears whole or not at all; the
  temporary file of a writer that was killed (SIGKILL cannot be caught) is removed by the next
  writer of the same file.

No imports beyond the standard library: every layer may use it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import numbers
import os
import re
import signal
import stat
import sys
from pathlib import Path

import numpy as np


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each flag's default, unless it has none (None) or its help says it already."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class UserError(Exception):
    """A mistake in what the user gave, with a message that says how to fix it."""


class MissingFileError(UserError, FileNotFoundError):
    """A file that should exist does not (the message says how to make it)."""


def check_choice(name: str, value, options) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}; got {value!r}")


def check_positive_int(name: str, value, minimum: int = 1) -> None:
    """An integer >= minimum (booleans and strings refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be {'a positive integer' if minimum == 1 else f'an integer >= {minimum}'}, "
                         f"got {value!r}")


def check_positive_number(name: str, value) -> None:
    """A finite real number > 0 (booleans and strings refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _arg_type(convert, check, what: str, **kw):
    """An argparse type: convert the text, then check it; a bad value is argparse's usage error."""
    def parse(text: str):
        try:
            value = convert(text)
            check("value", value, **kw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        return value
    return parse


positive_int = _arg_type(int, check_positive_int, "a positive integer")
non_negative_int = _arg_type(int, check_positive_int, "an integer >= 0", minimum=0)
positive_float = _arg_type(float, check_positive_number, "a positive number")


def _check_seed(name: str, value) -> None:
    check_positive_int(name, value, minimum=0)
    if value >= 2**32:
        raise ValueError(f"{name} must be below 2^32, got {value!r}")


seed_int = _arg_type(int, _check_seed, "an integer in [0, 2^32)")  # numpy's and Lightning's seed range


def check_output_dir(flag: str, folder, shown=None) -> None:
    """UserError unless `folder` is, or can be created as, a folder this process can write in:
    checked before the work whose results go there, so a mistake costs nothing. shown: what the
    message calls the flag's value (default: the folder)."""
    folder = Path(folder)
    shown = folder if shown is None else shown
    for existing in (folder, *folder.parents):
        if existing.exists():
            if not existing.is_dir():
                raise UserError(f"{flag} {shown}: {existing} is a file, not a folder; choose another {flag}")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise UserError(f"{flag} {shown}: no permission to write in {existing}; choose another {flag}")
            return


def _shown(path) -> str:
    return str(path) if str(path) else "''"


def check_output_file(flag: str, path, inputs=()) -> Path:
    """UserError unless `path` can take a file this command writes, checked before any work:

    - not one of `inputs`, the files and folders the command reads (resolved paths and the same
      inode compared; a path inside an input folder, e.g. RUN/metrics.json of a run it reads, is
      refused too: writing there would change the input);
    - no folder, device, pipe, socket or other non-regular file; no read-only file (an existing
      file is replaced atomically, never written through);
    - no symlink loop, and a parent that is, or can be created as, a writable folder (`check_output_dir`).

    Inputs that do not exist (e.g. a built-in Hamiltonian's name) are ignored. Returns the Path."""
    text, path = _shown(path), Path(path)
    if not str(path) or str(path) == "." or text.endswith(os.sep):
        raise UserError(f"{flag} {text}: give a file name, not a folder")
    try:
        target = path.resolve()
    except (RuntimeError, OSError) as err:           # a symlink loop (RuntimeError before Python 3.13)
        raise UserError(f"{flag} {text}: the path runs through a symbolic link loop ({err}); choose another {flag}") from None
    for given in inputs:
        if given is None or not str(given):
            continue
        source = Path(given)
        try:
            if not source.exists():
                continue
            inside = source.is_dir() and source.resolve() in (target, *target.parents)
            same = target == source.resolve() or (path.exists() and os.path.samefile(path, source))
        except (RuntimeError, OSError):
            continue
        if same or inside:
            where = "is" if same else "lies inside"
            raise UserError(f"{flag} {text} {where} the input {given}: writing it would destroy what this command "
                            f"reads; choose another {flag}")
    try:
        st = path.stat() if path.exists() else None
    except OSError as err:
        raise UserError(f"{flag} {text}: cannot be examined ({err.strerror}); choose another {flag}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise UserError(f"{flag} {text} is a folder; give a file name (e.g. {path / 'out'}{path.suffix})")
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{flag} {text} is not a regular file (a device, pipe or socket); give a file name")
        if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
            raise UserError(f"{flag} {text} is read-only; make it writable (chmod u+w) or choose another {flag}")
    check_output_dir(flag, target.parent, shown=text)
    return path


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every `finally` (atomic_path's cleanup) runs."""


def _interrupt(signum, frame):
    """The handler of SIGINT and SIGTERM inside `main_guard`: raise in the main thread."""
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


_pending: list = []      # an interruption swallowed inside a finaliser, raised again by SIGALRM


def _raise_pending(signum, frame):
    if _pending:
        raise _pending.pop()


def _redeliver(hook):
    """An unraisable hook: an interruption raised inside a finaliser or weakref callback is swallowed by
    Python, so it is raised again 50 ms later (SIGALRM), in the code that triggered the finaliser."""
    def handle(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _pending[:] = [type(unraisable.exc_value)()]
            signal.setitimer(signal.ITIMER_REAL, 0.05)
        else:
            hook(unraisable)
    return handle


def main_guard(main, argv=None) -> int:
    """Run a script's main(argv); a UserError becomes `error: <message>` on stderr and exit 2.

    SIGINT (Ctrl-C) and SIGTERM raise in the main thread, so the file being written is removed
    (`atomic_path`), then end with one line and exit status 130 and 143 (128 + the signal).
    Files finished before the signal are complete; none is half-written (a second signal during
    that cleanup can leave a temporary file, which the next writer of the same file removes).
    Run as a script (argv None), the process then ends at once (os._exit, after flushing): the
    interpreter's shutdown under device work still queued (JAX) can crash."""
    installed, hook = {}, sys.unraisablehook
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            installed[sig] = signal.signal(sig, _interrupt)
        installed[signal.SIGALRM] = signal.signal(signal.SIGALRM, _raise_pending)
        sys.unraisablehook = _redeliver(hook)
    except ValueError:                                   # not the main thread: leave the handlers alone
        pass
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        name, code = ("SIGTERM", 143) if isinstance(err, Terminated) else ("SIGINT (Ctrl-C)", 130)
        print(f"error: stopped by {name}; files written before are complete, the one in progress was removed",
              file=sys.stderr)
        if argv is None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    finally:
        if installed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _pending.clear()
        for sig, previous in installed.items():
            signal.signal(sig, previous)
        sys.unraisablehook = hook


# ----------------------------------------------------------------------------- writing files
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                   # PermissionError: another user's process
        return True
    return True


def remove_stale_temporaries(path) -> list[Path]:
    """Remove the temporary files `.NAME.tmp-PID.SUFFIX` of `path` whose process PID is gone (a
    writer killed by SIGKILL or a power cut cannot clean up), saying so in one line on stderr each.
    Returns the paths removed. (A PID of another machine on a shared folder looks dead here.)"""
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.stem}.tmp-") + r"(\d+)" + re.escape(path.suffix))
    removed = []
    try:
        candidates = list(path.parent.iterdir()) if path.parent.is_dir() else []
    except OSError:
        return removed
    for p in candidates:
        m = pattern.fullmatch(p.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            try:
                p.unlink()
            except OSError:
                continue
            print(f"removed {p}: a temporary file left by process {m.group(1)}, which was killed while writing "
                  f"{path.name}", file=sys.stderr)
            removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name beside `path`; rename it to `path` when the block succeeds.

    A reader never sees a half-written file, and a failure or an interruption (SIGINT, SIGTERM
    under `main_guard`) leaves the old file (if any) as it was and removes the temporary one; a
    temporary file of a killed writer of the same `path` is removed first (`remove_stale_temporaries`).
    The temporary name keeps the suffix, so writers that infer the format from it still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def json_safe(value):
    """`value` with every NaN or infinite float replaced by None (JSON has no NaN: a strict reader
    refuses the bare `NaN` Python writes), through dicts, lists and tuples."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value.item() if isinstance(value, np.generic) else value


def write_json(path, data) -> Path:
    """`data` as indented, strict JSON at `path` (NaN and infinities as null), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(json_safe(data), indent=2, default=str, allow_nan=False) + "\n")
    return Path(path)
