"""Model (exact and DSTD) vs ngspice: time to compute the same 5-5-5 network on the same batch.

Claim measured: the PNN model is orders of magnitude faster than the transistor-level simulation
it stands for, which is what makes training against the model (and searching scales against few
SPICE runs) the economical design. Prints the machine, versions, median of N repeats for the
model paths, and the ratios side by side. ngspice runs once with an empty cache (it is the slow
side; a cached rerun would measure the cache). Every repeat's time is recorded in
``benchmarks/results/model_vs_ngspice_<--name>.json``.

Usage: .venv/bin/python benchmarks/model_vs_ngspice.py [--n-samples 10] [--repeats 20]
       [--characterization runs/char/characterization.json] [--name latest]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import _record


def characterization(path: str | None) -> dict:
    """The given characterization JSON, or a fresh one (cached by the SPICE layer)."""
    if path:
        return json.loads(Path(path).read_text())
    from imcpnn.circuits.characterization.sweeps import characterize

    return characterize(progress=False)[0]


def model_seconds(weights, t_in, e_plus, e_minus, e_dis, method, repeats) -> list[float]:
    """Wall time (s) of each of ``repeats`` forward passes through every layer with
    imcpnn.pnn.spike_times."""
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
    return times


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _record.parser(__file__, __doc__)
    parser.add_argument("--n-samples", type=_record.positive_int, default=10, help="batch of input samples")
    parser.add_argument("--repeats", type=_record.positive_int, default=20,
                        help="repeats of the model timings (median reported, every one recorded)")
    parser.add_argument("--characterization", type=_record.existing_file, default=None,
                        help="characterization.json to use")
    _record.add_arguments(parser)
    args = parser.parse_args(argv)
    recorder = _record.Recorder(__file__, args, argv)

    from imcpnn.circuits.netlist.network import Network, ParasiticEstimate
    from imcpnn.circuits.simulate.run import simulate_network

    char = characterization(args.characterization)
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-0.3, 0.6, (5, 5)), rng.uniform(-0.3, 0.6, (5, 5))]
    t_in = rng.uniform(0, 1, (args.n_samples, 5))
    t_in[:, 0] = 0.0
    e = (char["e_plus"], char["e_minus"], char["e_dis"])
    raw = {"model exact": model_seconds(weights, t_in, *e, "exact", args.repeats),
           "model DSTD (M = 30)": model_seconds(weights, t_in, *e, "dstd", args.repeats)}
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        simulate_network(weights, t_in, char, network=Network((5, 5, 5), parasitic=ParasiticEstimate()),
                         cache_dir=cache, progress=False, batch_size=args.n_samples)
        raw["ngspice (one batched run)"] = [time.perf_counter() - start]
    seconds = {path: statistics.median(times) for path, times in raw.items()}
    spice_s = seconds["ngspice (one batched run)"]

    machine = _record.machine(torch=True, spice=True)
    print(_record.machine_line(machine) + f", characterization ngspice {char.get('ngspice_version', '?')}")
    print(f"5-5-5 network, batch {args.n_samples}, float64; model: median of {args.repeats}")
    print(f"{'path':<28}{'seconds':>12}{'ngspice / path':>18}")
    for name, sec in seconds.items():
        print(f"{name:<28}{sec:>12.4g}{spice_s / sec:>18.3g}")
    headline = {"batch": args.n_samples, "exact s": seconds["model exact"],
                "DSTD s": seconds["model DSTD (M = 30)"], "ngspice s": spice_s,
                "ngspice / exact": spice_s / seconds["model exact"],
                "ngspice / DSTD": spice_s / seconds["model DSTD (M = 30)"]}
    path = recorder.write(machine=machine, headline=headline, repeats=raw,
                          results={"median_s": seconds, "characterization_ngspice": char.get("ngspice_version")})
    print(f"result: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
