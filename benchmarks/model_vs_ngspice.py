"""Model (exact and DSTD) vs ngspice: time to compute the same 5-5-5 network on the same batch.

Claim measured: the PNN model is orders of magnitude faster than the transistor-level simulation
it stands for, which is what makes training against the model (and searching scales against few
SPICE runs) the economical design. Prints the machine, versions, median of N repeats for the
model paths, and the ratios side by side. ngspice runs once with an empty cache (it is the slow
side; a cached rerun would measure the cache).

Usage: .venv/bin/python benchmarks/model_vs_ngspice.py [--n-samples 10] [--repeats 20]
       [--characterization runs/char/characterization.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def characterization(path: str | None) -> dict:
    """The given characterization JSON, or a fresh one (cached by the SPICE layer)."""
    if path:
        return json.loads(Path(path).read_text())
    from imcpnn.circuits.characterization.sweeps import characterize

    return characterize(progress=False)[0]


def model_seconds(weights, t_in, e_plus, e_minus, e_dis, method, repeats) -> float:
    """Median wall time (s) of a forward pass through every layer with imcpnn.pnn.spike_times."""
    from imcpnn.pnn import spike_times

    ws = [torch.as_tensor(w) for w in weights]
    kwargs = {"steps": 30} if method == "dstd" else {}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        t = torch.as_tensor(t_in)
        with torch.no_grad():
            for w in ws:
                t = spike_times(t, w, e_plus, e_minus, method=method, e_dis=e_dis, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=10, help="batch of input samples")
    parser.add_argument("--repeats", type=int, default=20, help="repeats of the model timings")
    parser.add_argument("--characterization", default=None, help="characterization.json to use")
    args = parser.parse_args()

    from imcpnn.circuits.netlist.network import Network, ParasiticEstimate
    from imcpnn.circuits.simulate.run import simulate_network

    char = characterization(args.characterization)
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-0.3, 0.6, (5, 5)), rng.uniform(-0.3, 0.6, (5, 5))]
    t_in = rng.uniform(0, 1, (args.n_samples, 5))
    t_in[:, 0] = 0.0
    e = (char["e_plus"], char["e_minus"], char["e_dis"])
    exact_s = model_seconds(weights, t_in, *e, "exact", args.repeats)
    dstd_s = model_seconds(weights, t_in, *e, "dstd", args.repeats)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        simulate_network(weights, t_in, char, network=Network((5, 5, 5), parasitic=ParasiticEstimate()),
                         cache_dir=cache, progress=False, batch_size=args.n_samples)
        spice_s = time.perf_counter() - start

    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"python {platform.python_version()}, torch {torch.__version__}, ngspice "
          f"{char.get('ngspice_version', '?')}")
    print(f"5-5-5 network, batch {args.n_samples}, float64; model: median of {args.repeats}")
    print(f"{'path':<28}{'seconds':>12}{'ngspice / path':>18}")
    for name, sec in (("model exact", exact_s), ("model DSTD (M = 30)", dstd_s),
                      ("ngspice (one batched run)", spice_s)):
        print(f"{name:<28}{sec:>12.4g}{spice_s / sec:>18.3g}")


if __name__ == "__main__":
    main()
