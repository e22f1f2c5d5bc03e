"""Argument checks shared by the verbs: argparse types and readers of user-given files.

Each one turns an expected mistake (a missing file, a truncated JSON, an output folder that is a
file) into one :class:`~imcpnn.errors.ConfigError` line naming the argument and the fix, so the
CLI prints ``imcpnn <verb>: error: ...`` and exits with 2 before any simulation starts.
Only light imports at module level: ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from imcpnn.errors import ConfigError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


class _CornerNames:
    """The corner names of :class:`imcpnn.spice.Corner`, as argparse ``choices``. The enum is
    imported only when argparse first needs the names (to check a value or print a verb's help),
    so that building the parser stays light."""

    def __iter__(self):
        from imcpnn.spice import Corner

        return iter([c.value for c in Corner])

    def __contains__(self, value: object) -> bool:
        return value in list(self)


def add_corner_argument(parser: argparse.ArgumentParser, default: str | None, help: str) -> None:
    """``--corner``: a sky130 process corner of :class:`imcpnn.spice.Corner` (any case); ``help``
    may use ``%(choices)s`` and ``%(default)s``."""
    parser.add_argument("--corner", type=lambda text: text.strip().lower(), choices=_CornerNames(),
                        metavar="CORNER", default=default, help=help)


def layer_widths(text: str, option: str = "--random") -> tuple[int, ...]:
    """Comma-separated layer widths, at least two (inputs and outputs), each >= 1; else ConfigError.

    (Checked in the verb, not as an argparse type: ``main`` returns 2 for it, as scripts expect.)"""
    parts = [p.strip() for p in text.split(",")]
    try:
        widths = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: give comma-separated integers (the layer widths), "
                          "e.g. 5,5 or 5,5,5") from None
    if len(widths) < 2:
        raise ConfigError(f"{option} {text!r} gives 1 layer width: give at least 2 sizes (inputs and "
                          f"outputs), e.g. {widths[0]},{widths[0]} or 5,5,5")
    if min(widths) < 1:
        raise ConfigError(f"{option} {text!r}: every layer width must be a positive integer, e.g. 5,5,5")
    return widths


def prepare_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create the output folder (with its parents) and check it can be written; returns it."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} {out} is an existing file, not a folder: give a folder path "
                          "(it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{option} {out}: cannot create the folder ({err.strerror or err}); "
                          "give a path in a writable place") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {out}: the folder is not writable; give a path in a writable place")
    return out
