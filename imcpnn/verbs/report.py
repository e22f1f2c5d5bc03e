"""``imcpnn report``: redraw a validation report from its saved results (no simulation)."""

from __future__ import annotations

import argparse

SUMMARY = "re-render report.md / report.html of a validation or demo folder, without simulating"

DESCRIPTION = """\
Read a result folder written by `imcpnn validate` or `imcpnn demo` (summary.json, config.json,
tables/*.csv, characterization figures), redraw its figures and write report.md and the
self-contained report.html. Nothing is simulated or trained. A missing or corrupt file stops
with an error naming it, and no report is written.

Example:
  imcpnn report runs/demo
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="result folder of `imcpnn validate` / `imcpnn demo`")


def run(args: argparse.Namespace) -> int:
    from imcpnn.validation import render_report

    path = render_report(args.dir)
    print(f"wrote {path} and {path.with_suffix('.html')}")
    return 0
