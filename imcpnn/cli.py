"""The ``imcpnn`` command: one verb per stage of the bottom-up flow, like ``git <verb>``.

Each verb lives in ``imcpnn/verbs/<verb>.py`` and provides ``SUMMARY`` (one line),
``DESCRIPTION`` (the long help, with examples), ``add_arguments(parser)`` and ``run(args) -> int``.
Heavy imports (torch, pandas, matplotlib) happen inside ``run`` so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from imcpnn import __version__
from imcpnn.errors import ImcpnnError

#: Verbs in the order a user meets them in the flow.
VERBS: tuple[str, ...] = ("doctor", "characterize", "netlist", "simulate", "layout", "train", "validate", "report", "demo",
                          "cache")

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

Housekeeping:
  imcpnn cache info | clean [--all]  the SPICE result cache: size, entries, leftovers of killed runs

Every verb has its own help: imcpnn <verb> --help
Long jobs cache finished work: after an interruption, rerun the same command to resume.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 1
    try:
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


if __name__ == "__main__":
    sys.exit(main())
