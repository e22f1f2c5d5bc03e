"""The ``imcpnn`` command: one verb per stage of the bottom-up flow, like ``git <verb>``.

Each verb lives in ``imcpnn/verbs/<verb>.py`` and provides ``SUMMARY`` (one line),
``DESCRIPTION`` (the long help, with examples), ``add_arguments(parser)`` and ``run(args) -> int``.
Heavy imports (torch, pandas, matplotlib) happen inside ``run`` so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import signal
import sys
import threading
import traceback
import warnings

from imcpnn import __version__
from imcpnn.errors import ImcpnnError

#: Verbs in the order a user meets them in the flow.
VERBS: tuple[str, ...] = ("doctor", "characterize", "netlist", "simulate", "layout", "train", "validate", "report", "demo",
                          "variation", "layer", "cache")

_EPILOG = """\
The flow, bottom up:
  imcpnn doctor                      what is installed (ngspice, sky130 models, torch, GPU)
  imcpnn characterize --out DIR      sky130 device sweeps -> lambda -> E_plus, E_minus, E_dis
  imcpnn netlist --random 5,5,5 --out DIR   weights -> sky130 network netlist + mapping JSON
  imcpnn simulate --random 5,5,5 --out DIR  network transient in ngspice -> spike-time CSV + plot
  imcpnn layout --cells inv,mim --out DIR    sky130 layout -> DRC, extraction, LVS, PNG
  imcpnn train --dataset iris --out DIR     train an RC-Spike PNN (DSTD, finite E) -> weights + curves
  imcpnn validate --out DIR          model vs SPICE: top-down vs bottom-up vs trace-fitted + report
  imcpnn report DIR                  redraw a validation report from saved results (no simulation)
  imcpnn demo --out DIR              everything on the default (Iris 5-5-5, sky130 tt) -> report.html
  imcpnn variation --out DIR         corners, temperature, SPICE Monte Carlo vs model, hardware-aware
  imcpnn layer --run DIR --columns 4 --out DIR   a trained MLP's first layer column by column in
                                     ngspice (local or --executor dask) vs the model -> layer.json

Housekeeping:
  imcpnn cache info | clean [--all]  the SPICE result cache: size, entries, leftovers of killed runs

Every verb has its own help: imcpnn <verb> --help
Long jobs cache finished work: after an interruption, rerun the same command to resume.
"""


#: Printed under the traceback of an unexpected exception.
BUG_REPORT = ("this is a bug in imcpnn, not a mistake in the command: please report it to the imcpnn "
              "maintainers (the project's issue tracker) with the command line, `imcpnn --version` and the "
              "traceback above")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``imcpnn <verb>: error: ...`` and where the help is (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="imcpnn",
        description="Physical neural networks for analog in-memory computing on sky130: "
        "characterize devices with ngspice, train RC-Spike PNNs, generate netlists and validate "
        "the model against SPICE.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"imcpnn {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>")
    for verb in VERBS:
        module = importlib.import_module(f"imcpnn.verbs.{verb}")
        p = sub.add_parser(
            verb,
            help=module.SUMMARY,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _parser=p)
    return parser


def _unrecognized(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    """The error for arguments ``parser`` (a verb's) does not know, naming its closest option."""
    message = f"unrecognized arguments: {' '.join(extra)}"
    known = [o for action in parser._actions for o in action.option_strings]
    for word in (w.split("=")[0] for w in extra if w.startswith("--")):
        close = difflib.get_close_matches(word, known, n=1, cutoff=0.75)
        if close:
            return f"{message}; did you mean {close[0]}?"
    return message


def _interrupt(signum, frame):
    """SIGTERM handler: stop like Ctrl-C, so the interrupted-run path (exit 130) handles it."""
    raise KeyboardInterrupt


def _note_printer(verb: str):
    """``warnings.showwarning`` for a verb: the project's notes as ``imcpnn <verb>: note: ...`` lines
    (no file:line and source line, which mean nothing to a user); other libraries' warnings as usual."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.split(".")[0] == "imcpnn":
            print(f"imcpnn {verb}: note: {message}", file=sys.stderr if file is None else file)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    """Run ``imcpnn <verb>``. Exit codes: 0 success, 2 a user mistake (one ``error:`` line; argparse's
    own errors exit with 2 too), 130 interrupted (Ctrl-C or SIGTERM), 1 a bug (traceback + a line
    saying so) or a verb's own failure report."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the verb's parser, which names the verb and its help
        verb_parser = getattr(args, "_parser", parser)
        verb_parser.error(_unrecognized(verb_parser, extra))
    if args.verb is None:
        parser.print_help()
        return 1
    handling = threading.current_thread() is threading.main_thread()  # signals: main thread only
    if handling:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _note_printer(args.verb)
            return int(args._run(args) or 0)
    except ImcpnnError as err:
        print(f"imcpnn {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\nimcpnn {args.verb}: interrupted. Finished work is kept (cached SPICE runs, "
            "checkpoints): rerun the same command to resume.",
            file=sys.stderr,
        )
        return 130
    except Exception:
        traceback.print_exc()
        print(f"imcpnn {args.verb}: internal error: {BUG_REPORT}", file=sys.stderr)
        return 1
    finally:
        if handling:  # None: a handler not installed from Python, the default stands for it
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


if __name__ == "__main__":
    sys.exit(main())
