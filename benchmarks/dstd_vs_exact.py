"""DSTD (M = 10) vs the exact solver, and the DSTD layer vs its matrix-product floor: time per
forward+backward and peak memory of one RC-Spike layer.

Claims: (issue 3) >= 30x less time and >= 100x less memory than the exact solver at the largest
input-spike count; (issue 14) the DSTD layer within 2x of the two plain matrix products it contains.
Setup (method.md section 2): one layer of 1000 neurons, batch 100, sweeping the number of input
spikes. Four methods per point:
- ``dstd`` and ``exact``: the library's public ``imcpnn.pnn.spike_times`` (its inputs validated
  on every call, as a user calls it);
- ``layer``: the training hot path, ``imcpnn.pnn.RCSpikeDense`` in training mode (DSTD at
  ``--steps`` with a random grid offset per call, spike-time noise 0.01, no input validation);
- ``matmul``: the floor, DSTD's two matrix products alone with its shapes,
  (batch, M + 2, n_in) @ (n_in, n_out) twice (M + 2 grid points with a random offset), forward
  and backward by autograd.

Each (method, n_in) point runs in fresh subprocesses so that memory peaks do not mix:
- CPU memory: peak resident memory growth. A worker runs one tiny pass (torch's one-time set-up),
  resets the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``) after building its
  inputs, runs one forward+backward, and reports VmHWM - VmRSS(before) from /proc/self/status.
  This sees every torch allocation (tracemalloc does not). It runs with
  ``MALLOC_MMAP_THRESHOLD_=65536``: glibc's default threshold adapts up to 32 MiB and keeps freed
  blocks below it in the heap, which added 20-100 MiB of run-to-run slack to DSTD's peak
  (measured: 157-207 MiB over repeated identical runs, 132 MiB with the fixed threshold, every
  run); with it each tensor above 64 KiB is its own mapping, returned when freed.
- CPU time: a second worker with glibc's default allocator, as training runs: the fixed threshold
  makes every large tensor fresh pages, which slows the methods with many intermediate tensors
  (DSTD) more than the matmul floor and so would inflate their ratio.
- CUDA: one worker for both; memory is torch.cuda.max_memory_allocated() - memory_allocated()
  before (tensor bytes only).
Time: median of ``--repeats`` forward+backward passes after one warm-up (CUDA synchronized).

Example:
    .venv/bin/python benchmarks/dstd_vs_exact.py --n-in 100,300,1000,2000,3000 --out bench.json
Finished points are stored in ``--out`` and reused on a rerun with the same settings (resumable);
each point keeps its raw times and the load average before it ran. The result (every point, the
headline at the largest n_in: the ratios exact / DSTD and layer / matmul) is written to
``benchmarks/results/dstd_vs_exact_<--name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _record


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status (Linux needed for CPU memory)")


#: Version of the ``--out`` points file: 2 times the CPU points with glibc's default allocator
#: (format 1, no field, timed them under the memory worker's fixed mmap threshold; not reused).
POINTS_FORMAT = 2
#: The timed methods (the module docstring says what each one runs).
METHODS = ("dstd", "exact", "layer", "matmul")


def pass_function(method: str, t_in, w, steps: int, device: str):
    """One forward+backward of ``method`` on inputs (batch, n_in) and weights (n_in, n_out), as a
    function of no arguments (gradients are reset on every call)."""
    import torch

    from imcpnn.pnn import LayerPhysics, RCSpikeDense, spike_times

    if method in ("dstd", "exact"):
        is_dstd = method == "dstd"
        kwargs = dict(method=method, steps=steps if is_dstd else None, offset=0.37 / steps if is_dstd else None)

        def run():
            t_in.grad = w.grad = None
            spike_times(t_in, w, 2.8, -1.53, **kwargs).sum().backward()
        return run
    if method == "layer":
        layer = RCSpikeDense(w.shape[0], w.shape[1], LayerPhysics(train_steps=steps)).to(device).train()
        with torch.no_grad():
            layer.weight.copy_(w)
        gen = torch.Generator(device=device).manual_seed(1)

        def run():
            t_in.grad = layer.weight.grad = None
            layer(t_in, generator=gen).sum().backward()
        return run
    # the floor: DSTD's two products (beta * w and w), grid points along dim 1 as in imcpnn.pnn.dstd
    s_cum = torch.rand(t_in.shape[0], steps + 2, t_in.shape[1], device=device,
                       generator=torch.Generator(device=device).manual_seed(2)).requires_grad_(True)
    beta = torch.rand(w.shape, device=device, generator=torch.Generator(device=device).manual_seed(3))

    def run():
        s_cum.grad = w.grad = None
        ((s_cum @ (beta * w)).sum() + (s_cum @ w).sum()).backward()
    return run


def run_point(method: str, n_in: int, n_out: int, batch: int, steps: int, repeats: int, device: str,
              measure: str = "both") -> dict:
    """Worker: peak memory of one forward + backward of ``method`` (``measure`` "memory" or
    "both") and the times of ``repeats`` more after it ("time" or "both")."""
    import torch

    g = torch.Generator().manual_seed(0)
    t_in = torch.rand(batch, n_in, generator=g).to(device).requires_grad_(True)
    w = (torch.randn(n_in, n_out, generator=g) * (4 / n_in)).to(device).requires_grad_(True)
    one_pass = pass_function(method, t_in, w, steps, device)

    def step():
        one_pass()
        if device == "cuda":
            torch.cuda.synchronize()

    out = {}
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        out["peak_bytes"] = torch.cuda.max_memory_allocated() - before
    elif measure == "time":
        step()  # the warm-up
    else:
        # One tiny pass first: torch's one-time set-up (kernel dispatch, thread pools, BLAS
        # buffers) grows RSS by tens of MiB on the first call whatever the size; it is not the
        # method's memory and would otherwise be charged to whichever method a worker runs.
        pass_function(method, torch.rand(2, 8, requires_grad=True), torch.randn(8, 8, requires_grad=True),
                      steps, device)()
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _status_kib("VmRSS")
        step()
        out["peak_bytes"] = (_status_kib("VmHWM") - before) * 1024
    if measure == "memory":
        return out
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return out | {"time_s": statistics.median(times), "times_s": times, "repeats": repeats}


def measure_point(method: str, n_in: int, settings: dict) -> dict:
    """One point from fresh worker subprocesses: on the CPU a memory worker with a fixed mmap
    threshold and a time worker with glibc's default allocator (module docstring), on CUDA one
    worker; ``{"error": last stderr line}`` where a worker fails."""
    options = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    plan = [("both", {})] if settings["device"] == "cuda" else [
        ("memory", {"MALLOC_MMAP_THRESHOLD_": "65536"}), ("time", {})]
    point = {}
    for measure, env in plan:
        cmd = [sys.executable, __file__, "--worker", method, str(n_in), "--measure", measure, *options]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | env)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            return {"error": tail[0]}
        point |= json.loads(proc.stdout.strip().splitlines()[-1])
    return point


def headline(points: dict, n_in: int, device: str) -> dict:
    """The README's numbers at ``n_in``: time and memory of DSTD and the exact solver and their
    ratios, and the training layer's time over its matrix-product floor (where those points ran)."""
    d, e = points[f"dstd:{n_in}"], points[f"exact:{n_in}"]
    if "error" in d or "error" in e:
        return {"n_in": n_in, "device": device, "failed": f"{d.get('error', '')} {e.get('error', '')}".strip()}
    mib = 2.0 ** 20
    out = {"n_in": n_in, "device": device, "DSTD s": d["time_s"], "exact s": e["time_s"],
           "time exact / DSTD": e["time_s"] / d["time_s"], "DSTD MiB": d["peak_bytes"] / mib,
           "exact MiB": e["peak_bytes"] / mib, "memory exact / DSTD": e["peak_bytes"] / max(d["peak_bytes"], 1)}
    layer, floor = points.get(f"layer:{n_in}", {}), points.get(f"matmul:{n_in}", {})
    if "time_s" in layer and "time_s" in floor:
        out |= {"layer s": layer["time_s"], "matmul s": floor["time_s"],
                "layer / matmul": layer["time_s"] / floor["time_s"]}
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _record.parser(__file__, __doc__)
    parser.add_argument("--n-in", type=_record.int_list, default="100,300,1000,2000,3000",
                        help="comma-separated input spike counts to sweep")
    parser.add_argument("--n-out", type=_record.positive_int, default=1000, help="neurons in the layer")
    parser.add_argument("--batch", type=_record.positive_int, default=100, help="batch size")
    parser.add_argument("--steps", type=_record.positive_int, default=10, help="DSTD grid size M")
    parser.add_argument("--repeats", type=_record.positive_int, default=3,
                        help="timed repeats per point (median reported, every one recorded)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for results; finished points are reused")
    _record.add_arguments(parser)
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "N_IN"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=("memory", "time", "both"), default="both", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        method, n_in = args.worker[0], int(args.worker[1])
        print(json.dumps(run_point(method, n_in, args.n_out, args.batch, args.steps, args.repeats, args.device,
                                   args.measure)))
        return 0
    if args.out is not None and args.out.is_dir():
        parser.error(f"argument --out: {args.out} is a folder, not a JSON file")
    recorder = _record.Recorder(__file__, args, argv)

    from imcpnn.progress import progress_bar

    settings = {k: getattr(args, k) for k in ("n_out", "batch", "steps", "repeats", "device")}
    done = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    if done.get("settings") != settings or done.get("format") != POINTS_FORMAT:
        done = {"settings": settings, "format": POINTS_FORMAT, "points": {}}
    machine = _record.machine(torch=True)
    done["machine"] = machine
    n_ins = args.n_in
    jobs = [(m, n) for n in n_ins for m in METHODS]
    resumed = []
    for method, n_in in progress_bar(jobs, desc="points", unit="point"):  # plain lines in a log
        key = f"{method}:{n_in}"
        point = done["points"].get(key)
        if point is not None and ("error" in point or "times_s" in point):  # points from before raw times re-run
            resumed.append(key)
            continue
        load = list(os.getloadavg())
        done["points"][key] = measure_point(method, n_in, settings) | {"load_average_before": load}
        if args.out:
            args.out.write_text(json.dumps(done, indent=1))

    print(_record.machine_line(machine))
    print("settings:", json.dumps(settings))
    print(f"{'n_in':>6} {'dstd s':>9} {'exact s':>9} {'time x':>7} {'dstd MiB':>9} {'exact MiB':>10} {'mem x':>7} "
          f"{'layer s':>9} {'matmul s':>9} {'layer/mm':>8}")
    for n_in in n_ins:
        h = headline(done["points"], n_in, args.device)
        if "failed" in h:
            print(f"{n_in:>6} failed: {h['failed']}")
            continue
        floor = (f"{h['layer s']:>9.5f} {h['matmul s']:>9.5f} {h['layer / matmul']:>8.2f}" if "layer s" in h
                 else f"{'-':>9} {'-':>9} {'-':>8}")
        print(f"{n_in:>6} {h['DSTD s']:>9.5f} {h['exact s']:>9.5f} {h['time exact / DSTD']:>7.1f} "
              f"{h['DSTD MiB']:>9.1f} {h['exact MiB']:>10.1f} {h['memory exact / DSTD']:>7.1f} {floor}")
    points = {key: done["points"][key] for key in (f"{m}:{n}" for m, n in jobs)}
    path = recorder.write(
        machine=machine, headline=headline(points, max(n_ins), args.device),
        results={"settings": settings, "points": points, "resumed_points": resumed},
        repeats={key: p["times_s"] for key, p in points.items() if "times_s" in p})
    print(f"result: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
