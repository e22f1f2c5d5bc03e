"""Argument checks shared by the verbs: argparse types, readers of user-given files, and the
executor options (``--executor local|dask``, ``--scheduler``, ``--workers``; :func:`open_executor`).

Each one turns an expected mistake (a missing file, a truncated JSON, an output folder that is a
file, a scheduler without the Dask executor) into one :class:`~imcpnn.errors.ConfigError` line
naming the argument and the fix, so the CLI prints ``imcpnn <verb>: error: ...`` and exits with 2
before any simulation starts. Only light imports at module level: ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
from pathlib import Path
from typing import Any, Iterator

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


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
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


#: Values of ``--executor``: where a verb's SPICE runs go.
EXECUTORS = ("local", "dask")


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """``--executor local|dask``, ``--scheduler ADDRESS`` and ``--workers N``: where the verb's
    batches of ngspice runs go (:func:`imcpnn.spice.run_many`); see :func:`open_executor`."""
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="local: a process pool on this machine (default); dask: a Dask cluster, a local one "
                             "(LocalCluster, one single-threaded worker per CPU or --workers) or the running one "
                             "at --scheduler (docs/distributed.md)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="address of a running Dask scheduler, e.g. tcp://head:8786 (needs --executor dask)")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="processes of the local pool or of the local Dask cluster (default: one per CPU); "
                             "a running cluster's size is its own")


def check_executor_arguments(args: argparse.Namespace) -> None:
    """Refuse contradictory executor options (ConfigError, one line): a scheduler without
    ``--executor dask``, or ``--workers`` for a running cluster."""
    if args.scheduler and args.executor != "dask":
        raise ConfigError(f"--scheduler {args.scheduler} needs --executor dask (the local pool has no scheduler): "
                          f"add --executor dask, or drop --scheduler to run here")
    if args.scheduler and args.workers is not None:
        raise ConfigError(f"--workers {args.workers} sizes a pool or cluster started here; a running cluster at "
                          f"--scheduler {args.scheduler} has its own workers: drop --workers")


@contextlib.contextmanager
def open_executor(args: argparse.Namespace) -> Iterator[Any]:
    """The executor the options name, closed on exit: None for ``--executor local`` (the
    verb's runs then use their own process pool of ``--workers``), else a ``distributed.Client``
    of the scheduler at ``--scheduler`` or of a LocalCluster of ``--workers`` processes on this
    machine (:func:`imcpnn.spice.dask_client`), closed (and a local cluster stopped) on exit."""
    check_executor_arguments(args)
    if args.executor == "local":
        yield None
        return
    from imcpnn.spice import dask_client

    client = dask_client(args.scheduler, args.workers)
    try:
        yield client
    finally:
        client.close()


def executor_label(args: argparse.Namespace, executor: Any) -> str:
    """How the runs were executed, for result files: ``local (N processes)``, ``dask LocalCluster
    (N workers)`` or ``dask tcp://HOST:PORT (N workers)``."""
    if executor is None:
        return f"local ({args.workers or os.cpu_count() or 1} processes)"
    return f"dask {args.scheduler or 'LocalCluster'} ({executor_width(executor)} workers)"


def executor_width(executor: Any, workers: int | None = None) -> int:
    """How many runs the executor runs at once: a Dask client's worker threads (at least 1), else
    ``workers`` (default: the CPU count)."""
    if executor is None:
        return workers or os.cpu_count() or 1
    return max(1, sum(executor.nthreads().values()))
