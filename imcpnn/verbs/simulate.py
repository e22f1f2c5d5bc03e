"""``imcpnn simulate``: run a network testbench in ngspice -> spike-time CSV + membrane plot."""

from __future__ import annotations

import argparse

SUMMARY = "simulate the sky130 network (netlist or weights + inputs) -> spike times CSV + plot"

DESCRIPTION = """\
Run the RC-Spike network on sky130 with ngspice and measure every neuron's spike time.

Either give weights (--weights W.npz or --random 5,5,5) and inputs (--inputs, normalized spike
times, (n_samples, n_in)); samples are batched (--batch-size per ngspice run, batches in
parallel, results cached). Or give a netlist written by `imcpnn netlist` (--netlist DIR/batch_0.cir
with its DIR/mapping.json): it is run as is. Writes OUT/spikes.csv (sample, layer, neuron,
t_spike_s, t_spike normalized to the firing window, spiked) and OUT/membranes.png.

The batches run in a local process pool (--workers) or, with --executor dask, on a Dask
cluster: a local one, or the running one at --scheduler (see docs/distributed.md); the results
are cached on this machine either way.

Example:
  imcpnn simulate --random 5,5,5 --samples 10 --out runs/sim
  imcpnn simulate --netlist runs/net/batch_0.cir --out runs/sim_net
  imcpnn simulate --random 5,5,5 --samples 200 --batch-size 20 --executor dask --scheduler tcp://head:8786 --out runs/sim
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from imcpnn.verbs.netlist import add_shared_arguments

    source = parser.add_mutually_exclusive_group(required=True)
    from imcpnn.verbs._common import add_executor_arguments

    source.add_argument("--netlist", help="a batch_<k>.cir written by `imcpnn netlist` (mapping.json beside it)")
    add_shared_arguments(parser, source)
    add_executor_arguments(parser)


def read_netlist(path_text: str) -> tuple[str, dict, int, tuple[int, ...]]:
    """(deck text, mapping dict, n_samples, widths) of a netlist written by `imcpnn netlist`,
    checked: the mapping.json beside it and the deck's first line (widths, sample count)."""
    import json
    import math
    import re
    from pathlib import Path

    from imcpnn.errors import ConfigError, ResultsError

    path = Path(path_text)
    mapping_path = path.parent / "mapping.json"
    fix = "write them again with `imcpnn netlist ... --out DIR`"
    if not path.is_file() or not mapping_path.is_file():
        raise ConfigError(f"--netlist needs {path} and {mapping_path} (written by `imcpnn netlist`)")
    try:
        mapping = json.loads(mapping_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResultsError(f"{mapping_path} is not valid JSON (truncated or corrupt: {err}); {fix}") from None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ResultsError(f"{path} cannot be read as a text netlist ({err}); {fix}") from None
    widths = mapping.get("widths") if isinstance(mapping, dict) else None
    if not (isinstance(widths, list) and len(widths) >= 2
            and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)):
        raise ResultsError(f"{mapping_path} lacks 'widths' (a list of >= 2 positive integers) or holds "
                           f"a wrong one ({widths!r}); {fix}")
    t_phase = mapping.get("t_phase_s")
    if not (isinstance(t_phase, (int, float)) and not isinstance(t_phase, bool) and math.isfinite(t_phase)
            and t_phase > 0):
        raise ResultsError(f"{mapping_path}: 't_phase_s' must be a number of seconds > 0, got {t_phase!r}; {fix}")
    head = text.split("\n", 1)[0].strip()
    match = re.fullmatch(r"\* imcpnn RC-Spike testbench: widths \(([\d, ]+)\), (\d+) samples, .*", head)
    if match is None:
        raise ResultsError(f"{path}: the first line must be the header `imcpnn netlist` writes ('* imcpnn "
                           f"RC-Spike testbench: widths (...), N samples, ...'), found {head[:60]!r}; "
                           f"restore it or {fix}")
    deck_widths = tuple(int(w) for w in match.group(1).replace(" ", "").split(",") if w)
    if deck_widths != tuple(widths):
        raise ResultsError(f"{path} is for widths {deck_widths} but {mapping_path} for {tuple(widths)}: "
                           f"they come from different runs; {fix}")
    n_samples = int(match.group(2))
    if n_samples < 1:
        raise ResultsError(f"{path}: the header says {n_samples} samples; {fix}")
    return text, mapping, n_samples, tuple(widths)


def _run_netlist(args: argparse.Namespace, netlist, executor):
    import numpy as np

    from imcpnn.circuits.simulate.measure import spice_spike_table
    from imcpnn.circuits.netlist.network import NetworkDeck, PhaseSchedule, network_saves
    from imcpnn.circuits.simulate.run import network_sim
    from imcpnn.spice import Corner, run_many

    text, mapping, n_samples, widths = netlist
    schedule = PhaseSchedule(t_phase_s=mapping["t_phase_s"])
    deck = NetworkDeck(text, network_saves(widths), schedule.t_stop_s(n_samples, len(widths) - 1),
                       schedule.t_step_max_s, n_samples, widths, mapping.get("netlist_kind", "schematic"))
    sim = network_sim(deck, Corner.parse(args.corner), 27.0, schedule.trtol)
    plot = run_many([sim], executor=executor, max_workers=1, cache_dir=args.cache_dir, progress=False)[0].plot("tran")
    time_s = np.asarray(plot[plot.names[0]])
    traces = {n: np.asarray(plot[n]) for n in deck.saves}
    return spice_spike_table(time_s, traces, widths, n_samples, schedule), time_s, traces, widths


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from imcpnn.circuits.simulate.run import simulate_network
    from imcpnn.verbs._common import check_executor_arguments, open_executor, prepare_out_dir
    from imcpnn.verbs.netlist import load_problem

    out = Path(args.out)
    check_executor_arguments(args)
    if args.netlist:
        netlist = read_netlist(args.netlist)
        prepare_out_dir(out)
        with open_executor(args) as executor:
            spikes, time_s, traces, widths = _run_netlist(args, netlist, executor)
    else:
        network, weights, t_in, char, scales = load_problem(args)
        with open_executor(args) as executor:
            res = simulate_network(weights, t_in, char, scales, network=network, corner=args.corner,
                                   batch_size=args.batch_size, keep_traces=True, cache_dir=args.cache_dir,
                                   executor=executor, max_workers=args.workers)  # fmt: skip
        spikes, (time_s, traces), widths = res.spikes, res.traces[0], network.widths
    spikes.to_csv(out / "spikes.csv", index=False)
    fig = Figure(figsize=(9, 2.5 * (len(widths) - 1)))  # no pyplot, no backend switch
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(widths) - 1, 1, squeeze=False)
    for l, ax in enumerate(axes[:, 0]):
        for i in range(widths[l + 1]):
            ax.plot(np.asarray(time_s) * 1e6, traces[f"v(m{l}_{i})"], lw=0.8, label=f"neuron {i}")
        ax.set(title=f"layer {l} membranes (first batch)", xlabel="t (us)", ylabel="V (V)")
        ax.legend(fontsize=6, ncol=5)
    fig.tight_layout()
    fig.savefig(out / "membranes.png", dpi=110)
    print(spikes.groupby("layer").spiked.mean().rename("fraction spiked").to_string())
    print(f"wrote {out / 'spikes.csv'} and {out / 'membranes.png'}")
    return 0
