"""One benchmark run as data: the JSON result every script in ``benchmarks/`` writes.

Why: a number quoted without its machine, versions, load and raw repeats cannot be judged or
re-made, and a hand-typed table drifts from what was measured. Every script therefore writes one
file ``<results dir>/<script>_<name>.json`` (default ``benchmarks/results/<script>_latest.json``)
through :class:`Recorder`, and ``benchmarks/tables.py`` builds the README's tables from those files.

Fields of a result file (the same for every script):

- ``script``, ``name``: which benchmark and which recorded run (``--name``, default ``latest``);
- ``timestamp``: when the run started, ISO 8601 with the local UTC offset;
- ``command``: the command line (``benchmarks/<script>.py`` and its arguments);
- ``git_commit`` (null outside a git checkout) and ``git_dirty`` (tracked files differ from it);
- ``machine``: cpus, processor, platform, python, numpy and imcpnn versions, and where the script
  uses them torch (its CPU threads, the GPU name where torch sees CUDA) and ngspice / sky130 models
  / PySpice versions (see :func:`machine`);
- ``load_average_before``, ``load_average_after``: ``os.getloadavg()`` (1, 5 and 15 min) at the
  start and at the end of the run (a run-folder record, which stores a run made earlier: the 1-min
  loads its runner measured, null where not given);
- ``wall_s``: wall time of the run (s);
- ``parameters``: the script's arguments;
- ``repeats``: every raw timing, ``{label: [seconds, ...]}`` (not only the median);
- ``results``: the script's full measurement; ``headline``: ``{column: value}``, the numbers and
  ratios the README's table shows for this run.

``demo_fidelity record`` stores a run made earlier: its ``wall_s`` and ``load_average_before`` are
the run's, given by hand (the 1-minute value alone, or null). The ``demo_fidelity`` files recorded
before this module hold the 1-minute value alone in both load fields and lack the other common
fields but ``name``, ``machine`` and ``wall_s``; :func:`load_1min` reads both load forms.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
#: Where results are kept (``--results-dir`` overrides it).
RESULTS_DIR = BENCHMARKS / "results"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that refuses a bad argument with one line on stderr and exit code 2 (no usage
    block, no traceback), so a mistyped benchmark command fails loudly and briefly."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def parser(script_file: str, doc: str | None) -> ArgumentParser:
    """The argument parser of the script at ``script_file``, its docstring as description."""
    return ArgumentParser(prog=Path(script_file).name, description=doc,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def result_name(text: str) -> str:
    """argparse type of ``--name``: letters, digits, ``.``, ``_``, ``-`` (it becomes a file name)."""
    if not _NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"invalid name {text!r}: use letters, digits, '.', '_' or '-' (not first)")
    return text


def results_dir(text: str) -> Path:
    """argparse type of ``--results-dir``: a folder, or a path where one can be made."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    return path


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def int_list(text: str) -> list[int]:
    """argparse type: comma-separated integers >= 1, e.g. ``100,300,1000``."""
    try:
        return [positive_int(part) for part in text.split(",")]
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None


def existing_file(text: str) -> Path:
    """argparse type: a file that exists."""
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return Path(text)


def existing_dir(text: str) -> Path:
    """argparse type: a folder that exists."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {text}")
    return Path(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--name`` and ``--results-dir``, the arguments every recording command has."""
    parser.add_argument("--name", type=result_name, default="latest",
                        help="name of this result: writes <results-dir>/<script>_<name>.json (default: latest)")
    parser.add_argument("--results-dir", type=results_dir, default=RESULTS_DIR,
                        help=f"folder of the JSON results (default: {RESULTS_DIR})")


def result_path(results_dir: Path, script: str, name: str) -> Path:
    """The file of result ``name`` of ``script``."""
    return Path(results_dir) / f"{script}_{name}.json"


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(BENCHMARKS), *args], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state() -> dict:
    """``git_commit`` (HEAD, or None outside a checkout or without git) and ``git_dirty``
    (whether tracked files differ from it; None where unknown)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def _processor() -> str:
    """The CPU model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(torch: bool = False, spice: bool = False) -> dict:
    """Facts of this machine and environment a measurement depends on.

    Always: cpus, processor, platform, python, numpy and imcpnn versions. ``torch``: its version,
    CPU threads, and the GPU name where torch sees CUDA (else None). ``spice``: ngspice version,
    sky130 model source and version, PySpice version (None where absent). A tool that cannot be
    found is recorded as None, not an error: the record must still be written.
    """
    import numpy

    import imcpnn

    info = {"cpus": os.cpu_count(), "processor": _processor(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": numpy.__version__,
            "imcpnn": imcpnn.__version__}
    if torch:
        import torch as _torch

        info["torch"] = _torch.__version__
        info["torch_threads"] = _torch.get_num_threads()
        info["gpu"] = _torch.cuda.get_device_name() if _torch.cuda.is_available() else None
    if spice:
        from imcpnn import ToolNotFoundError
        from imcpnn.spice import find_models, find_ngspice, pyspice_version

        try:
            info["ngspice"] = find_ngspice()[1]
        except ToolNotFoundError:
            info["ngspice"] = None
        try:
            models = find_models()
            info["sky130_models"] = f"{models.kind} {models.version}"
        except ToolNotFoundError:
            info["sky130_models"] = None
        info["pyspice"] = pyspice_version()
    return info


def machine_line(info: dict) -> str:
    """One printable line of :func:`machine`'s facts."""
    return "machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if v is not None)


def short_machine(info: dict | None) -> str:
    """The machine in a table cell: processor, cpus and GPU."""
    info = info or {}
    text = f"{info.get('processor', '?')}, {info.get('cpus', '?')} cpus"
    return text + (f", {info['gpu']}" if info.get("gpu") else "")


def load_1min(value) -> float | None:
    """The 1-minute load average of a ``load_average_*`` field (a triple, or the number alone)."""
    if value is None:
        return None
    return float(value[0]) if isinstance(value, (list, tuple)) else float(value)


def _plain(obj):
    """JSON fallback: numpy scalars and arrays as numbers and lists, paths and the rest as text."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


class Recorder:
    """One benchmark run: notes the load average, the clock and the command at the start;
    :meth:`write` adds the machine, the results and the load at the end and writes the file.

    ``args`` is the parsed namespace (its ``name`` and ``results_dir`` say where the file goes, the
    rest are the ``parameters``); ``argv`` the arguments it was parsed from.
    """

    def __init__(self, script_file: str, args: argparse.Namespace, argv: list[str]):
        self.script = Path(script_file).stem
        self.path = result_path(args.results_dir, self.script, args.name)
        self.name = args.name
        self.parameters = {k: v for k, v in vars(args).items() if k not in ("name", "results_dir")}
        self.command = shlex.join([f"benchmarks/{Path(script_file).name}", *argv])
        self.timestamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        self.load_before = list(os.getloadavg())
        self._start = time.perf_counter()

    def write(self, *, machine: dict, headline: dict, results, repeats: dict[str, list[float]],
              **extra) -> Path:
        """Write the result file atomically and return its path.

        ``extra`` adds script-specific top-level fields, or replaces common ones where the script
        knows better (``demo_fidelity record`` stores a run made earlier: its ``wall_s`` and
        ``load_average_before`` are given, not measured here).
        """
        from imcpnn.rundir import write_json_atomic

        data = {
            "script": self.script, "name": self.name, "timestamp": self.timestamp,
            "command": self.command, **git_state(), "machine": machine,
            "load_average_before": self.load_before,
            "load_average_after": list(os.getloadavg()),
            "wall_s": time.perf_counter() - self._start,
            "parameters": self.parameters, "repeats": repeats, "headline": headline,
            "results": results, **extra,
        }
        write_json_atomic(self.path, json.loads(json.dumps(data, default=_plain)))
        return self.path


def load(path: str | Path) -> dict:
    """A result file's data."""
    return json.loads(Path(path).read_text())


def replace_block(text: str, begin: str, end: str, body: str) -> str:
    """``text`` with the lines between the markers ``begin`` and ``end`` replaced by ``body``."""
    head, rest = text.split(begin, 1)
    return head + begin + "\n" + body + "\n" + end + rest.split(end, 1)[1]


def run_folder_cli(script_file: str, doc: str | None, argv: list[str], *, needs: str, what: str,
                   record, table, begin: str, end: str) -> int:
    """The command line of a script that records a finished run folder and prints README tables:

    ``record RUN_DIR [--name N] [--wall-s S] [--load-before L] [--load-after L] [--note TEXT]``
    stores the folder (``record(recorder, run_dir, wall_s, load_before, note, load_after)``: the
    run's wall time and load averages as whoever ran it measured them, None where not given, never
    the load of the moment of recording; the folder must hold ``needs``,
    written by ``what``), ``table [--readme FILE [--check]] [--results-dir DIR]`` prints
    ``table(results_dir)`` or rewrites the block between ``begin`` and ``end`` of FILE; with
    ``--check`` it writes nothing and returns 1 when that block differs from the results.
    """
    cli = parser(script_file, doc)
    sub = cli.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="store a finished run folder as benchmark data")
    rec.add_argument("run_dir", type=existing_dir)
    add_arguments(rec)
    rec.add_argument("--wall-s", type=float, default=None, help="wall time of the run (s)")
    rec.add_argument("--load-before", type=float, default=None, help="1-min load average before the run")
    rec.add_argument("--load-after", type=float, default=None, help="1-min load average just after the run")
    rec.add_argument("--note", default="", help="how it was run (e.g. what else ran beside it)")
    tab = sub.add_parser("table", help="print the README's tables from benchmarks/results")
    tab.add_argument("--readme", type=existing_file, default=None,
                     help="rewrite the block between this script's table markers of this file instead")
    tab.add_argument("--results-dir", type=results_dir, default=RESULTS_DIR,
                     help=f"folder of the JSON results (default: {RESULTS_DIR})")
    tab.add_argument("--check", action="store_true",
                     help="with --readme: write nothing; exit 1 if its block differs from the results")
    args = cli.parse_args(argv)
    if args.cmd == "record":
        if not (args.run_dir / needs).is_file():
            rec.error(f"{args.run_dir}/{needs} not found; run {what} first")
        print(record(Recorder(script_file, args, argv), args.run_dir, args.wall_s, args.load_before, args.note,
                     args.load_after))
    elif args.readme is None:
        if args.check:
            tab.error("--check needs --readme FILE, the README whose block to compare")
        print(table(args.results_dir))
    else:
        text = args.readme.read_text()
        if begin not in text or end not in text:
            tab.error(f"{args.readme} lacks the markers {begin} ... {end}")
        return update_readme(args.readme, text, replace_block(text, begin, end, table(args.results_dir)),
                             args.check, f"{Path(script_file).name} table --readme {args.readme}")
    return 0


def update_readme(path: Path, text: str, new: str, check: bool, fix: str) -> int:
    """Exit code of a table command: where the README ``path`` (now ``text``) would become ``new``,
    write it and say so, or with ``check`` write nothing and return 1 with one line naming the
    ``fix`` command; 0 otherwise."""
    if new == text:
        return 0
    if check:
        print(f"{path}: tables out of date; run {fix}", file=sys.stderr)
        return 1
    path.write_text(new)
    print(f"{path}: tables rewritten")
    return 0
