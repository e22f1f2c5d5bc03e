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

Example:
  imcpnn simulate --random 5,5,5 --samples 10 --out runs/sim
  imcpnn simulate --netlist runs/net/batch_0.cir --out runs/sim_net
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from imcpnn.verbs.netlist import add_shared_arguments

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--netlist", help="a batch_<k>.cir written by `imcpnn netlist` (mapping.json beside it)")
    add_shared_arguments(parser, source)


def _run_netlist(args: argparse.Namespace):
    import json
    from pathlib import Path

    import numpy as np

    from imcpnn.circuits.measure import spike_table
    from imcpnn.circuits.network import NetworkDeck, PhaseSchedule, network_saves
    from imcpnn.circuits.simulate import network_sim
    from imcpnn.errors import ConfigError
    from imcpnn.spice import Corner, run

    path = Path(args.netlist)
    mapping_path = path.parent / "mapping.json"
    if not path.is_file() or not mapping_path.is_file():
        raise ConfigError(f"--netlist needs {path} and {mapping_path} (written by `imcpnn netlist`)")
    mapping = json.loads(mapping_path.read_text())
    text = path.read_text()
    head = text.splitlines()[0]
    n_samples = int(head.split(" samples")[0].rsplit(" ", 1)[1])
    widths = tuple(mapping["widths"])
    schedule = PhaseSchedule(t_phase_s=mapping["t_phase_s"])
    deck = NetworkDeck(text, network_saves(widths), schedule.t_stop_s(n_samples, len(widths) - 1),
                       schedule.t_step_max_s, n_samples, widths, mapping.get("netlist_kind", "schematic"))
    sim = network_sim(deck, Corner.parse(args.corner), 27.0, schedule.trtol)
    plot = run(sim, cache_dir=args.cache_dir).plot("tran")
    time_s = np.asarray(plot[plot.names[0]])
    traces = {n: np.asarray(plot[n]) for n in deck.saves}
    return spike_table(time_s, traces, widths, n_samples, schedule), time_s, traces, widths


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from imcpnn.circuits.simulate import simulate_network
    from imcpnn.verbs.netlist import load_problem

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.netlist:
        spikes, time_s, traces, widths = _run_netlist(args)
    else:
        network, weights, t_in, char, scales = load_problem(args)
        res = simulate_network(weights, t_in, char, scales, network=network, corner=args.corner,
                               batch_size=args.batch_size, keep_traces=True, cache_dir=args.cache_dir)  # fmt: skip
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
