"""SPICE throughput: model load vs simulation, and batching N DC points in one deck vs N runs.

Claims measured (median of --repeats, side by side, through the library's own ``run``/``run_many``):
1. loading the full sky130 ``.lib`` costs seconds per ngspice start; a minimal model set ~0.1 s;
2. N points in one deck (one ``.dc`` sweep) beat N separate ngspice runs by about N x start cost;
3. the optional PySpice backend (shared libngspice, no process start) vs batch mode.

Usage: .venv/bin/python benchmarks/spice_throughput.py [--points 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from imcpnn.spice import Dc, Op, Sim, find_models, find_ngspice, run, run_many
from imcpnn.spice import pyspice_version

NFET = "sky130_fd_pr__nfet_01v8"
CIRCUIT = f"vd d 0 {{vd}}\nvg g 0 1.2\nXM1 d g 0 0 {NFET} W=1 L=0.25 nf=1"


def _timed(fn, cache: Path, repeats: int) -> float:
    """Median wall time of ``fn()``; finished runs are dropped before each repeat (no cache hits)."""
    times = []
    for _ in range(repeats):
        shutil.rmtree(cache / "runs", ignore_errors=True)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=50, help="N, the DC points per batch")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per measurement (median reported)")
    args = ap.parse_args()
    n = args.points
    path, version = find_ngspice()
    models = find_models()
    print(f"machine: {platform.machine()} {platform.system()} {platform.release()}, {os.cpu_count()} cpus, "
          f"load avg {os.getloadavg()[0]:.1f}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, ngspice {version} ({path}), "
          f"models {models.kind} {models.version}, PySpice {pyspice_version()}")
    print(f"median of {args.repeats} repeats\n")
    cache = Path(tempfile.mkdtemp(prefix="imcpnn-bench-"))
    one = Sim(CIRCUIT.format(vd=1.3), (Op(),), devices=(NFET,))
    run(one, cache_dir=cache)  # builds the minimal model set once

    t_full = _timed(lambda: run(Sim(CIRCUIT.format(vd=1.3), (Op(),)), cache_dir=cache), cache, args.repeats)
    t_min = _timed(lambda: run(one, cache_dir=cache), cache, args.repeats)
    print("1. model load (one nfet .op, whole run: start + load + solve + read)")
    print(f"   full .lib: {t_full:8.3f} s   minimal set: {t_min:8.3f} s   ratio {t_full / t_min:6.1f}x")

    vds = np.linspace(0.0, 1.8, n)
    step = float(vds[1] - vds[0])
    batched = Sim(CIRCUIT.format(vd=0.0), (Dc("vd", 0.0, 1.8 + step / 2, step),), devices=(NFET,))
    separate = [Sim(CIRCUIT.format(vd=repr(float(v))), (Op(),), devices=(NFET,)) for v in vds]
    t_batch = _timed(lambda: run(batched, cache_dir=cache), cache, args.repeats)
    t_seq = _timed(lambda: [run(s, cache_dir=cache) for s in separate], cache, args.repeats)
    t_par = _timed(lambda: run_many(separate, cache_dir=cache, progress=False), cache, args.repeats)
    print(f"2. {n} DC points (minimal set)")
    print(f"   one deck: {t_batch:8.3f} s   {n} runs in sequence: {t_seq:8.3f} s   ratio {t_seq / t_batch:6.1f}x")
    print(f"   {' ' * 20}{n} runs, run_many ({os.cpu_count()} procs): {t_par:8.3f} s   ratio "
          f"{t_par / t_batch:6.1f}x")
    t_hit = _timed_cached(separate, cache)
    print(f"   {n} cached results re-read (resume): {t_hit:8.3f} s")

    if pyspice_version() is None:
        print("3. PySpice backend: not installed (pip install 'imcpnn[pyspice]')")
        return
    run(one, cache_dir=cache, backend="pyspice")  # starts the shared library once
    t_ps = _timed(lambda: [run(s, cache_dir=cache, backend="pyspice") for s in separate], cache, args.repeats)
    t_ps_full = _timed(lambda: run(Sim(CIRCUIT.format(vd=1.3), (Op(),)), cache_dir=cache, backend="pyspice"),
                       cache, args.repeats)
    print(f"3. PySpice shared library vs batch ({n} separate runs, minimal set; one full-.lib run)")
    print(f"   batch: {t_seq:8.3f} s   pyspice: {t_ps:8.3f} s   ratio {t_seq / t_ps:6.2f}x")
    print(f"   full .lib run  batch: {t_full:8.3f} s   pyspice: {t_ps_full:8.3f} s   ratio "
          f"{t_full / t_ps_full:6.2f}x")
    shutil.rmtree(cache, ignore_errors=True)


def _timed_cached(sims, cache: Path) -> float:
    t0 = time.perf_counter()
    for s in sims:
        assert run(s, cache_dir=cache).from_cache
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
