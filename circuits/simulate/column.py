"""A crossbar layer simulated as independent column decks (the column decomposition).

**Assumption.** In the charge-domain crossbar each output neuron integrates only the current of
its own column of synapses, and in the testbench the input (spike) lines are ideal voltage
sources: nothing a column does reaches another column. A layer of N_out neurons is then N_out
independent decks, each one neuron with its n_in synapses (:func:`plan_columns`), which can run on
as many machines (``executor``, a Dask client included). Its limit: IR drop and capacitive
coupling along the shared lines (a real input driver with wire resistance, the supply and ground
rails) couple the columns; they need the whole array in one deck, and no column deck shows them.
The full-array deck and the column decks agree to within the transient's step control (tests:
tests/circuits/test_column_slow.py).

**Shared edges.** Every edge is a breakpoint of the transient, and every time point evaluates
every device of the deck: with n_in inputs at distinct times the cost grows about as n_in^2, with
shared edge times about as n_in (benchmarks/layer_columns.py records a 784-input column's cost).
Image inputs share their times (8-bit pixels: at most 256 distinct times per image, and the
background pixels do not spike at all), so a column deck drives all inputs whose spike trains are
identical from ONE edge source (:func:`share_edge_sources`): identical ideal sources to ground
hold their nodes at the same voltage at every instant, so joining the nodes changes no node
voltage and no device current, only which source supplies the current. The deck itself is
:func:`~imcpnn.circuits.netlist.network.network_deck`'s for a one-column network, so every change
to the network deck reaches the column decks.

**Cost.** One column deck holds ``batch_size`` samples back to back (3 T apart); the decks of
all columns and batches go through :func:`imcpnn.spice.run_many` in groups of
``columns_per_batch`` columns (:func:`run_columns`), each group's results returned as soon as it
is done, so that a caller can save them (resume) while the rest runs. ngspice parses and sets up
a deck once (for n_in in the hundreds this grows much faster than n_in: a profile shows ngspice
comparing the expanded device instances' names one by one) and then pays the transient per sample:
:class:`ColumnRun` reports both, and benchmarks/layer_columns.py measures them for 784 inputs.
"""

from __future__ import annotations

import dataclasses
import re
import resource
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from imcpnn.circuits.characterization.fit import Characterization
from imcpnn.circuits.netlist.network import (Network, NetworkDeck, PhaseSchedule, check_inputs, deck_lines,
                                             input_windows, network_deck, parse_pwl_source, pwl_sources)
from imcpnn.circuits.simulate.energy import supply_energy
from imcpnn.circuits.simulate.measure import membrane_table, spice_spike_table
from imcpnn.circuits.simulate.run import check_operating_point, map_network, network_sim
from imcpnn.circuits.simulate.weights import CurrentScales, switch_off_unmappable
from imcpnn.errors import ConfigError, NetlistError
from imcpnn.spice import Corner, run_many

#: Seconds a column deck may run per sample it holds (:func:`run_columns`' default timeout): a
#: 784-input deck takes about 10 min per sample on one loaded core, plus a minute of setup.
TIMEOUT_PER_SAMPLE_S = 1800.0
#: ngspice's own time for the analyses of a run (the rest of its elapsed time is parsing and setup).
_ANALYSIS_TIME = re.compile(r"Total analysis time \(seconds\) = ([0-9.eE+-]+)")
def count_pwl_sources(text: str) -> int:
    """How many PWL sources to ground (``V<name> <node> 0 PWL(...)``) a deck's ``text`` holds
    outside ``.subckt`` definitions."""
    return len(pwl_sources(text))


def share_edge_sources(deck: NetworkDeck) -> NetworkDeck:
    """``deck`` with every set of identical PWL sources to ground replaced by one.

    Sources ``V<a> <node_a> 0 PWL(...)`` with the same value text (the same points, which the
    network deck writes exactly) hold their nodes at the same voltage at every instant: the first
    of each set stays, the others are removed and their nodes renamed to its node on every line
    outside ``.subckt`` definitions (nodes are whole whitespace-separated tokens). The source
    that stays carries the current of the whole set, so its energy is the set's: the removed
    sources leave ``deck.supplies``, and their saved currents and node voltages ``deck.saves``.

    Raises NetlistError where a node to be joined is also driven by another source (never so in
    a deck of :func:`network_deck`).
    """
    lines = deck_lines(deck.text)
    first: dict[str, str] = {}  # value text -> node of the source that stays
    rename: dict[str, str] = {}
    removed: set[str] = set()
    for line, inside in lines:
        src = None if inside else parse_pwl_source(line)
        if src is None:
            continue
        if src.value in first:
            rename[src.node] = first[src.value]
            removed.add(src.name.lower())
        else:
            first[src.value] = src.node
    out = []
    for line, inside in lines:
        tokens = line.split()
        if inside or not tokens or tokens[0].startswith("*") or not any(t in rename for t in tokens):
            out.append(line)
        elif tokens[0].lower() not in removed:
            if tokens[0][:1] in "Vv" and tokens[1] in rename:
                raise NetlistError(f"cannot share the edge source of node {tokens[1]}: it is also driven by "
                                   f"{tokens[0]}")
            out.append(" ".join(rename.get(t, t) for t in tokens))
    gone = {f"i({name})" for name in removed} | {f"v({node})" for node in rename}
    return dataclasses.replace(deck, text="\n".join(out), saves=tuple(v for v in deck.saves if v not in gone),
                               supplies=tuple(s for s in deck.supplies if s.source.lower() not in removed))


def input_groups(t_in: np.ndarray, schedule: PhaseSchedule) -> list[tuple[int, ...]]:
    """Inputs whose spike trains over the samples of ``t_in`` (n_samples, n_in) are identical in a
    deck (same windows after the deck's rounding and no-spike rule, :func:`input_windows`), as
    sorted tuples of input indices, in the order of their first input. Inputs that never spike
    form one group. One edge source drives each group in a column deck, so a deck has
    ``len(input_groups(...))`` input sources (and as many complements)."""
    groups: dict[tuple, list[int]] = {}
    for j, windows in enumerate(input_windows(np.asarray(t_in, dtype=float), schedule)):
        groups.setdefault(tuple(windows), []).append(j)
    return [tuple(g) for g in groups.values()]


def column_network(network: Network) -> Network:
    """The one-column network of a single-layer ``network`` (widths (n_in, n_out) -> (n_in, 1)):
    the same cells, operating point and wire estimate. The membrane line crosses the same n_in
    synapses, so its capacitance is the layer's; the input line estimate of a one-column deck is
    shorter, but the ideal input sources drive it whatever it is. Raises ConfigError for a
    deeper network or a post-layout core (an extracted core is one whole array)."""
    if len(network.widths) != 2:
        raise ConfigError(f"column decks split one layer; network widths {network.widths} have "
                          f"{len(network.widths) - 1} layers: pass Network((n_in, n_out)) of the layer")
    if network.core is not None:
        raise ConfigError("a post-layout core is one extracted array and cannot be split into column decks; "
                          "use the schematic network (with parasitic=ParasiticEstimate() for wire estimates)")
    return dataclasses.replace(network, widths=(network.widths[0], 1))


@dataclass(frozen=True)
class ColumnPlan:
    """The decks of one column: one per batch of samples (``decks[b]`` holds samples
    ``b * batch_size`` onwards), each with its input edge sources shared."""

    column: int
    decks: tuple[NetworkDeck, ...]
    batch_size: int
    n_sources: tuple[int, ...]
    """Per deck, the PWL sources left after sharing (inputs and complements, plus the 4 phase signals)."""
    n_sources_unshared: tuple[int, ...]
    """Per deck, the PWL sources of the network deck before sharing."""


def plan_columns(network: Network, mapping: dict, t_in: np.ndarray, columns, schedule: PhaseSchedule = PhaseSchedule(),
                 batch_size: int = 1, save_membranes: bool = False, save_supplies: bool = True) -> list[ColumnPlan]:
    """Column decks of a single-layer ``network`` for the columns ``columns`` (indices).

    ``mapping``: :func:`~imcpnn.circuits.simulate.run.map_network` of the whole layer (its gate
    biases (n_in, n_out) and discharger bias); ``t_in`` (n_samples, n_in) normalized input times.
    Each column's deck is the network deck of :func:`column_network` with the column's gate
    biases, its identical input sources shared (:func:`share_edge_sources`); ``save_supplies``
    saves what the energy accounting needs (:func:`~imcpnn.circuits.simulate.energy.supply_energy`).
    """
    t_in = check_inputs(network, t_in)
    col_net = column_network(network)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be an integer >= 1")
    layer = mapping["layers"][0]
    vg_n, vg_p = np.asarray(layer["vg_n_v"]), np.asarray(layer["vg_p_v"])
    n_out = network.widths[1]
    if vg_n.shape != tuple(network.widths):
        raise ConfigError(f"the mapping's gate biases have shape {vg_n.shape}, the layer {tuple(network.widths)}: "
                          "map this very layer (map_network)")
    plans = []
    for c in columns:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < n_out:
            raise ConfigError(f"column {c!r} is not in the layer: give indices 0 ... {n_out - 1}")
        decks, shared, unshared = [], [], []
        for k in range(0, len(t_in), batch_size):
            deck = network_deck(col_net, [(vg_n[:, [c]], vg_p[:, [c]])], [layer["vg_dis_v"]],
                                t_in[k:k + batch_size], schedule, save_membranes, save_supplies)
            unshared.append(count_pwl_sources(deck.text))
            deck = share_edge_sources(deck)
            decks.append(deck)
            shared.append(count_pwl_sources(deck.text))
        plans.append(ColumnPlan(int(c), tuple(decks), batch_size, tuple(shared), tuple(unshared)))
    return plans


@dataclass(frozen=True)
class ColumnRun:
    """The result of one column over all samples.

    ``spikes``: the spike table (:func:`~imcpnn.circuits.simulate.measure.spice_spike_table`'s
    columns) with ``neuron`` = the column index in the layer; ``membranes``: its membrane table
    or None; ``energy``: the :func:`~imcpnn.circuits.simulate.energy.supply_energy` table of its
    decks (one row per sample, phase and supply group) or None.

    Cost: ``ngspice_s``, ngspice's own wall time for its decks, summed (as the runner measured it
    when they ran, cache hits included), of which ``analysis_s`` is the transient itself (the
    logs' "Total analysis time"; the rest is parsing and setting up the deck; None where a log
    lacks it); ``wall_s`` and ``cpu_s``, its share (1 / the group's columns) of its group's wall
    time and of the CPU time of the processes that ran it, ngspice included (None where they ran
    outside this process's own pool, e.g. on Dask); ``n_cached``, its decks served by the cache.
    """

    column: int
    spikes: pd.DataFrame
    membranes: pd.DataFrame | None
    energy: pd.DataFrame | None
    ngspice_s: float
    analysis_s: float | None
    wall_s: float
    cpu_s: float | None
    n_cached: int
    n_sources: tuple[int, ...]


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and of its waited-for descendants."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_columns(plans: list[ColumnPlan], char: Characterization, network: Network, *,
                schedule: PhaseSchedule = PhaseSchedule(), corner: str = "tt", temp_c: float = 27.0,
                columns_per_batch: int = 2, executor: Any = None, max_workers: int | None = None,
                cache_dir=None, progress: bool = True, timeout_s: float | None = None) -> Iterator[ColumnRun]:
    """Simulate column decks, ``columns_per_batch`` columns per :func:`imcpnn.spice.run_many`
    call, yielding each group's :class:`ColumnRun` s (in ``plans`` order) as soon as it is done.

    ``network``: the layer (its operating point must be ``char``'s, and ``corner``/``temp_c``
    the characterization's: :func:`~imcpnn.circuits.simulate.run.check_operating_point`);
    ``executor``: None (a local process pool of ``max_workers``), a ``concurrent.futures``
    executor, or a ``distributed.Client`` (the decks then run on its cluster; see
    :func:`imcpnn.spice.run_many`). Spike times are measured with the layer's supply.
    ``timeout_s``: the limit of one deck (None: :data:`TIMEOUT_PER_SAMPLE_S` per sample of the
    largest deck), past which ngspice is stopped and SpiceTimeoutError raised.
    """
    check_operating_point(network, char, corner, temp_c)
    if isinstance(columns_per_batch, bool) or not isinstance(columns_per_batch, int) or columns_per_batch < 1:
        raise ConfigError(f"columns_per_batch={columns_per_batch!r} must be an integer >= 1")
    corner_enum = Corner.parse(corner)
    if timeout_s is None:
        timeout_s = TIMEOUT_PER_SAMPLE_S * max((d.n_samples for p in plans for d in p.decks), default=1)
    for g in range(0, len(plans), columns_per_batch):
        group = plans[g:g + columns_per_batch]
        sims = [network_sim(deck, corner_enum, temp_c, schedule.trtol) for p in group for deck in p.decks]
        t0, cpu0 = time.perf_counter(), _cpu_s()
        results = iter(run_many(sims, executor=executor, max_workers=max_workers, cache_dir=cache_dir,
                                progress=progress, desc=f"columns {g + 1}-{g + len(group)} of {len(plans)}",
                                timeout_s=timeout_s))
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
        for plan in group:
            spikes, membranes, energy, ngspice_s, analysis, n_cached = [], [], [], 0.0, [], 0
            for b, deck in enumerate(plan.decks):
                res = next(results)
                ngspice_s += res.elapsed_s
                found = _ANALYSIS_TIME.search(res.log)
                analysis.append(float(found.group(1)) if found else None)
                n_cached += int(res.from_cache)
                plot = res.plot("tran")
                time_s = np.asarray(plot[plot.names[0]])
                traces = {name: np.asarray(plot[name]) for name in deck.saves}
                sp = spice_spike_table(time_s, traces, deck.widths, deck.n_samples, schedule, network.vdd_v)
                sp["sample"] += b * plan.batch_size
                sp["neuron"] = plan.column
                spikes.append(sp)
                if "v(m0_0)" in deck.saves:
                    mb = membrane_table(time_s, traces, deck.widths, deck.n_samples, schedule, char.v0,
                                        char.v_th_circ)
                    mb["sample"] += b * plan.batch_size
                    mb["neuron"] = plan.column
                    membranes.append(mb)
                if deck.supplies:
                    en = supply_energy(time_s, traces, deck.supplies, schedule, deck.n_samples, 1)
                    energy.append(en.assign(sample=en["sample"] + b * plan.batch_size))
            yield ColumnRun(plan.column, pd.concat(spikes, ignore_index=True),
                            pd.concat(membranes, ignore_index=True) if membranes else None,
                            pd.concat(energy, ignore_index=True) if energy else None, ngspice_s,
                            None if None in analysis else sum(analysis),
                            wall / len(group), cpu / len(group) if executor is None else None, n_cached,
                            plan.n_sources)


def map_layer(network: Network, w: np.ndarray, char: Characterization | dict, scales: CurrentScales,
              t_phase_s: float, discharger_scale: float = 1.0) -> tuple[dict, np.ndarray, int]:
    """The weight mapping of a single layer for its column decks: (mapping, the weights mapped,
    how many were switched off).

    Weights below the characterized current range are switched off first
    (:func:`switch_off_unmappable`); the rest map as for a whole network
    (:func:`~imcpnn.circuits.simulate.run.map_network`), whose errors name the scale that fits.
    """
    if isinstance(char, dict):
        char = Characterization.from_dict(char)
    w = np.asarray(w, dtype=float)
    if w.ndim != 2 or w.shape != tuple(network.widths):
        raise ConfigError(f"layer weights have shape {w.shape}, the network {tuple(network.widths)} (n_in, n_out)")
    w_mapped, n_off = switch_off_unmappable(w, char, network.membrane_f(0), t_phase_s, scales)
    return map_network(network, [w_mapped], char, scales, t_phase_s, discharger_scale), w_mapped, n_off
