"""Checks of what a user gives, each defined once, and the one-line exit for a user's mistake.

- `check_choice`, `check_positive_int`, `check_positive_number`: one-line ValueErrors, used by
  the models for their hyper-parameters (the trainers show them as flag errors) and, through
  `positive_int` / `positive_float` / `non_negative_int` / `seed_int`, by every command line's
  argparse types.
- `check_output_dir`: a folder a command will write into, checked before any work (a file in
  its place, or a folder that cannot be written, is a one-line UserError).
- `UserError`: a mistake the user can fix (a missing or unreadable file, a run of the wrong
  kind, a lattice a model cannot read). `main_guard(main)` runs a script's `main` and turns a
  UserError into one line on stderr and exit status 2, no traceback; anything else is a bug and
  keeps its traceback.
- `atomic_path` / `write_json`: every file the repo writes appears whole or not at all.

No imports beyond the standard library: every layer may use it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import numbers
import os
import sys
from pathlib import Path


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


def check_output_dir(flag: str, folder) -> None:
    """UserError unless `folder` is, or can be created as, a folder this process can write in:
    checked before the work whose results go there, so a mistake costs nothing."""
    folder = Path(folder)
    for existing in (folder, *folder.parents):
        if existing.exists():
            if not existing.is_dir():
                raise UserError(f"{flag} {folder}: {existing} is a file, not a folder; choose another {flag}")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise UserError(f"{flag} {folder}: no permission to write in {existing}; choose another {flag}")
            return


def main_guard(main, argv=None) -> int:
    """Run a script's main(argv); a UserError becomes `error: <message>` on stderr and exit 2."""
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


# ----------------------------------------------------------------------------- writing files
@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name beside `path`; rename it to `path` when the block succeeds.

    A reader never sees a half-written file, and a failure leaves the old file (if any) as it
    was. The temporary name keeps the suffix, so writers that infer the format from it still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path, data) -> Path:
    """`data` as indented JSON at `path`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return Path(path)
