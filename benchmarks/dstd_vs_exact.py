"""DSTD (M = 10) vs the exact solver: time per forward+backward and peak memory of one RC-Spike layer.

Claim (issue 3): >= 30x less time and >= 100x less memory at the largest input-spike count.
Setup (method.md section 2): one layer of 1000 neurons, batch 100, sweeping the number of input
spikes; both methods run through the library's own ``imcpnn.pnn._api.spike_times``.

Each (method, n_in) point runs in a fresh subprocess so that memory peaks do not mix:
- CPU: peak resident memory growth. The worker runs one tiny pass (torch's one-time set-up), resets
  the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``) after building its inputs, runs
  one forward+backward, and reports
  VmHWM - VmRSS(before) from /proc/self/status. This sees every torch allocation (tracemalloc does
  not). Workers run with ``MALLOC_MMAP_THRESHOLD_=65536``: glibc's default threshold adapts up to
  32 MiB and keeps freed blocks below it in the heap, which added 20-100 MiB of run-to-run slack
  to DSTD's peak (measured: 157-207 MiB over repeated identical runs, 132 MiB with the fixed
  threshold, every run); with it each tensor above 64 KiB is its own mapping, returned when freed.
- CUDA: torch.cuda.max_memory_allocated() - memory_allocated() before (tensor bytes only).
Time: median of ``--repeats`` forward+backward passes after one warm-up (CUDA synchronized).

Example:
    .venv/bin/python benchmarks/dstd_vs_exact.py --n-in 100,300,1000,2000,3000 --out bench.json
Finished points are stored in ``--out`` and reused on a rerun with the same settings (resumable).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status (Linux needed for CPU memory)")


def run_point(method: str, n_in: int, n_out: int, batch: int, steps: int, repeats: int, device: str) -> dict:
    """Worker: time and peak memory of spike_times(...) forward + backward for one configuration."""
    import torch

    from imcpnn.pnn import spike_times

    g = torch.Generator().manual_seed(0)
    t_in = torch.rand(batch, n_in, generator=g).to(device).requires_grad_(True)
    w = (torch.randn(n_in, n_out, generator=g) * (4 / n_in)).to(device).requires_grad_(True)
    is_dstd = method == "dstd"
    kwargs = dict(method=method, steps=steps if is_dstd else None, offset=0.37 / steps if is_dstd else None)

    def step():
        t_in.grad = w.grad = None
        spike_times(t_in, w, 2.8, -1.53, **kwargs).sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        peak_bytes = torch.cuda.max_memory_allocated() - before
    else:
        # One tiny pass first: torch's one-time set-up (kernel dispatch, thread pools, BLAS
        # buffers) grows RSS by tens of MiB on the first call whatever the size; it is not the
        # method's memory and would otherwise be charged to whichever method a worker runs.
        tiny = torch.rand(2, 8, requires_grad=True)
        spike_times(tiny, torch.randn(8, 8, requires_grad=True), 2.8, -1.53, **kwargs).sum().backward()
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _status_kib("VmRSS")
        step()
        peak_bytes = (_status_kib("VmHWM") - before) * 1024
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"time_s": statistics.median(times), "peak_bytes": peak_bytes, "repeats": repeats}


def machine_info(device: str) -> dict:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    info = {"cpu": cpu, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "device": device}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-in", default="100,300,1000,2000,3000", help="comma-separated input spike counts to sweep")
    parser.add_argument("--n-out", type=int, default=1000, help="neurons in the layer")
    parser.add_argument("--batch", type=int, default=100, help="batch size")
    parser.add_argument("--steps", type=int, default=10, help="DSTD grid size M")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per point (median reported)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for results; finished points are reused")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "N_IN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        method, n_in = args.worker[0], int(args.worker[1])
        print(json.dumps(run_point(method, n_in, args.n_out, args.batch, args.steps, args.repeats, args.device)))
        return 0

    from tqdm import tqdm

    settings = {k: getattr(args, k) for k in ("n_out", "batch", "steps", "repeats", "device")}
    done = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    if done.get("settings") != settings:
        done = {"settings": settings, "points": {}}
    done["machine"] = machine_info(args.device)
    n_ins = [int(n) for n in args.n_in.split(",")]
    jobs = [(m, n) for n in n_ins for m in ("dstd", "exact")]
    for method, n_in in tqdm(jobs, desc="points"):
        key = f"{method}:{n_in}"
        if key in done["points"]:
            continue
        cmd = [sys.executable, __file__, "--worker", method, str(n_in)] + [
            f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
        env = os.environ | {"MALLOC_MMAP_THRESHOLD_": "65536"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            done["points"][key] = {"error": tail[0]}
        else:
            done["points"][key] = json.loads(proc.stdout.strip().splitlines()[-1])
        if args.out:
            args.out.write_text(json.dumps(done, indent=1))

    print("machine:", json.dumps(done["machine"]))
    print("settings:", json.dumps(settings))
    print(f"{'n_in':>6} {'dstd s':>9} {'exact s':>9} {'time x':>7} {'dstd MiB':>9} {'exact MiB':>10} {'mem x':>7}")
    for n_in in n_ins:
        d, e = done["points"][f"dstd:{n_in}"], done["points"][f"exact:{n_in}"]
        if "error" in d or "error" in e:
            print(f"{n_in:>6} failed: {d.get('error', '')} {e.get('error', '')}")
            continue
        mib = 2.0 ** 20
        print(f"{n_in:>6} {d['time_s']:>9.4f} {e['time_s']:>9.4f} {e['time_s'] / d['time_s']:>7.1f} "
              f"{d['peak_bytes'] / mib:>9.1f} {e['peak_bytes'] / mib:>10.1f} "
              f"{e['peak_bytes'] / max(d['peak_bytes'], 1):>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
