"""``imcpnn demo``: the whole flow on the embedded default (Iris, 5-5-5, sky130 tt, 50 samples)."""

from __future__ import annotations

import argparse

from imcpnn.verbs import validate

SUMMARY = "the end-to-end demo: characterize, train both models, SPICE, scale searches, report"

DESCRIPTION = """\
Run everything on the embedded default, the paper's circuit experiment: Iris (4 features + a
bias input), a 5-5-5 RC-Spike network, sky130 tt at 27 C, 50 test samples. Stages:
characterize (DC sweeps, discharger design bias, circuit terms from a testbench transient) ->
trace fit -> train (top-down, bottom-up, trace-fitted) -> map weights to gate biases ->
current-scale searches on held-out training samples in ngspice -> test samples in ngspice ->
report (DIR/report.html, DIR/summary.json, with the protocol and the error budget).

It is `imcpnn validate` with the default configuration; the options below make a reduced run.
Each stage is saved when it finishes: if interrupted, rerun the same command to resume.
Almost all of the time is ngspice (about 13 minutes on an idle 2-core machine from an empty
cache; --executor dask spreads it over a cluster, see `imcpnn validate --help`).

With --post-layout the SPICE side is the netlist extracted from the generated sky130 layout
(needs magic, netgen-lvs and PDK_ROOT, see `imcpnn validate --help`), and the report shows the
schematic vs post-layout spike times and the recovered vs extracted membrane capacitance.

Examples:
  imcpnn demo --out runs/demo
  imcpnn demo --out runs/demo_quick --n-test 10 --epochs 30 --coarse
  PDK_ROOT=~/.ciel imcpnn demo --out runs/demo_post_layout --post-layout
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    validate.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return validate.run(args)
