"""Energy per inference from a network transient: every supply's v i over each phase (pure).

The network deck (:func:`imcpnn.circuits.netlist.network.network_deck`, ``save_supplies=True``)
gives every source that feeds the circuit as a :class:`~imcpnn.circuits.netlist.network.Supply`
with its branch current saved; a source belongs to one layer (its VDD, V0 and sensing-bias
ammeters, discharger and synapse gate biases, phase drivers; the input drivers to layer 0) or,
in a post-layout core, is shared by all. :func:`supply_energy` integrates the power each source
delivers over each phase window of the :class:`~imcpnn.circuits.netlist.network.PhaseSchedule`
and sums it per group; :func:`energy_summary` turns that into energy per inference, per layer,
per phase, per group and per synaptic operation (:func:`count_synops`).

Sign convention: energy delivered by a source is positive. A source that takes charge back
(V0 during reset when the membrane ended above V0; a gate-bias source when its gate couples
charge into it) counts negative in that window. A DC source that feeds only gates delivers no
net charge over a whole cycle, so its per-cycle energy is close to zero while its per-phase
entries are not.

What the groups hold (:data:`~imcpnn.circuits.netlist.network.SUPPLY_GROUPS`): the synapses'
NMOS path (w > 0) takes its charge from the membrane to ground, and the reset switch puts it
back from V0 in the next reset phase: that computing energy shows up in ``neuron_bias`` (V0) in
the reset phase, not in ``array_neurons``. The PMOS path (w < 0) draws from VDD during
accumulation (``array_neurons``). Drivers (``input_drivers``, ``phase_drivers``) and bias
generators (``neuron_bias``, ``synapse_bias``) are the periphery a chip would build otherwise
(ideal sources here).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from imcpnn.circuits.netlist.network import SUPPLY_GROUPS, PhaseSchedule, Supply, input_spiked

#: The phases of one layer's cycle, in time order (:meth:`PhaseSchedule.window_start_s`).
PHASES = ("reset", "accumulation", "firing")
#: Layer and phase of a source shared by every layer (post-layout core rails): it is integrated
#: over each sample's 3T slot (:func:`supply_energy`), not per layer or phase.
SHARED_LAYER, SHARED_PHASE = -1, "cycle"
#: Columns of :func:`supply_energy`'s table.
ENERGY_COLUMNS = ("sample", "layer", "phase", "group", "energy_j")


def _integral_at(time_s: np.ndarray, power_w: np.ndarray, at_s: np.ndarray) -> np.ndarray:
    """Integral from time_s[0] to each ``at_s`` of the piecewise-linear interpolant of each row
    of ``power_w`` (trapezoidal rule, exact for it). ``time_s`` (n_points,) non-decreasing,
    ``power_w`` (n_rows, n_points), ``at_s`` (n_at,) inside [time_s[0], time_s[-1]];
    returns (n_rows, n_at)."""
    dt = np.diff(time_s)
    cum = np.concatenate([np.zeros((power_w.shape[0], 1)),
                          np.cumsum(dt * (power_w[:, 1:] + power_w[:, :-1]) / 2, axis=1)], axis=1)
    k = np.clip(np.searchsorted(time_s, at_s, side="right") - 1, 0, len(time_s) - 2)
    step = time_s[k + 1] - time_s[k]
    into = at_s - time_s[k]
    frac = np.divide(into, step, out=np.zeros_like(into), where=step > 0)
    p_at = power_w[:, k] + (power_w[:, k + 1] - power_w[:, k]) * frac
    return cum[:, k] + into * (power_w[:, k] + p_at) / 2


def _boundaries_s(layer: int | None, schedule: PhaseSchedule, n_samples: int, t_end_s: float) -> np.ndarray:
    """Window edges (s) of a source: per layer the 3 n_samples phase windows, which tile
    [l T, l T + 3 T n_samples]; shared, the n_samples slots [o_s, o_s + 3T], the last to t_end_s."""
    if layer is None:
        return np.array([schedule.sample_offset_s(s) for s in range(n_samples)] + [t_end_s])
    starts = [schedule.window_start_s(s, layer, phase) for s in range(n_samples) for phase in PHASES]
    return np.array(starts + [schedule.window_start_s(n_samples - 1, layer, "firing") + schedule.t_phase_s])


def supply_energy(
    time_s: np.ndarray,
    traces: Mapping[str, np.ndarray],
    supplies: Sequence[Supply],
    schedule: PhaseSchedule,
    n_samples: int,
    n_layers: int,
) -> pd.DataFrame:
    """Energy each group of sources delivers in each phase window of each layer and sample.

    For source k with node voltage v_k(t) and ngspice branch current i_k(t) (positive from its +
    node through it), the power it delivers is p_k = -v_k i_k, and in window [a, b]

        E_k = integral_a^b p_k dt        (trapezoidal rule on the transient's own time points,
                                          the window edges linearly interpolated)

    summed over the sources of one group. Layer l's windows, for sample s (o_s = 3 T s):
    reset [o_s + l T, o_s + (l+1) T], accumulation and firing the next two T; they tile
    [l T, l T + 3 T n_samples], so the time before a layer's first reset (its reset hold from
    t = 0) and after its last firing is not counted. A shared source (``layer`` None) is
    integrated over sample slots [o_s, o_s + 3T] (the last one to the end of the transient) and
    reported as layer :data:`SHARED_LAYER`, phase :data:`SHARED_PHASE`.

    **Arguments:** ``time_s`` (n_points,) the transient's time axis, non-decreasing from at most
    0 to at least the last window's end; ``traces`` name -> (n_points,) arrays holding every
    ``supply.current`` (A) and, for PWL drivers (``voltage_v`` None), ``supply.voltage`` (V);
    ``supplies`` the deck's :class:`Supply` list; ``n_samples``, ``n_layers`` of the deck.

    **Returns:** a DataFrame with :data:`ENERGY_COLUMNS`, one row per (sample, layer, phase,
    group) that has a source, ``energy_j`` in J.

    **Raises:** ValueError when the time axis is not 1-D non-decreasing, a trace has another
    length, a window lies outside it, or a supply's layer is out of range; KeyError naming a
    missing trace.
    """
    time_s = np.asarray(time_s, dtype=float)
    if time_s.ndim != 1 or time_s.size < 2 or np.any(np.diff(time_s) < 0):
        raise ValueError(f"time_s must be a 1-D non-decreasing axis of >= 2 points, got shape {time_s.shape}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples={n_samples!r} must be an integer >= 1")
    rows = []
    by_layer: dict[int | None, list[Supply]] = {}
    for supply in supplies:
        if supply.layer is not None and not 0 <= supply.layer < n_layers:
            raise ValueError(f"supply {supply.source} is on layer {supply.layer}, the deck has {n_layers}")
        by_layer.setdefault(supply.layer, []).append(supply)
    for layer, group_supplies in by_layer.items():
        edges = _boundaries_s(layer, schedule, n_samples, float(time_s[-1]))
        if edges[0] < time_s[0] or edges[-1] > time_s[-1]:
            raise ValueError(f"windows [{edges[0]:g}, {edges[-1]:g}] s of layer {layer} lie outside the "
                             f"transient [{time_s[0]:g}, {time_s[-1]:g}] s: give the whole transient of "
                             "this deck's n_samples and schedule")
        power = np.stack([_power_w(supply, traces, time_s.size) for supply in group_supplies])
        energy = np.diff(_integral_at(time_s, power, edges), axis=1)  # (n_supplies, n_windows)
        groups = [s.group for s in group_supplies]
        phases = (SHARED_PHASE,) if layer is None else PHASES
        for group in SUPPLY_GROUPS:
            mask = np.array([g == group for g in groups])
            if not mask.any():
                continue
            per_window = energy[mask].sum(axis=0).reshape(n_samples, len(phases))
            rows += [(s, SHARED_LAYER if layer is None else layer, phase, group, float(per_window[s, k]))
                     for s in range(n_samples) for k, phase in enumerate(phases)]
    table = pd.DataFrame(rows, columns=list(ENERGY_COLUMNS))
    return table.sort_values(["sample", "layer", "phase", "group"], key=_phase_order, ignore_index=True)


def _phase_order(column: pd.Series) -> pd.Series:
    """Sort key: phases in time order, other columns as they are."""
    order = {p: k for k, p in enumerate((*PHASES, SHARED_PHASE))}
    return column.map(order) if column.name == "phase" else column


def _power_w(supply: Supply, traces: Mapping[str, np.ndarray], n_points: int) -> np.ndarray:
    """p = -v i of one supply (W), (n_points,)."""
    current = _trace(traces, supply.current, n_points)
    voltage = supply.voltage_v if supply.voltage_v is not None else _trace(traces, supply.voltage, n_points)
    return -voltage * current


def _trace(traces: Mapping[str, np.ndarray], name: str, n_points: int) -> np.ndarray:
    if name not in traces:
        raise KeyError(f"no trace {name!r} for the energy accounting; the deck saves it with "
                       f"network_deck(..., save_supplies=True) (have {len(traces)} traces)")
    values = np.asarray(traces[name], dtype=float)
    if values.shape != (n_points,):
        raise ValueError(f"trace {name} has shape {values.shape}, the time axis ({n_points},)")
    return values


def spiked_inputs(t_in: np.ndarray, spikes: pd.DataFrame, schedule: PhaseSchedule,
                  widths: Sequence[int]) -> list[np.ndarray]:
    """Which inputs of each layer spiked, per sample: a list of (n_samples, widths[l]) bool.

    Layer 0: the network inputs the deck drives (``t_in`` (n_samples, n_in), normalized, NaN =
    none; :func:`~imcpnn.circuits.netlist.network.input_spiked`); layer l > 0: the neurons of
    layer l-1 whose ``spiked`` is True in the spike table ``spikes`` (columns sample, layer,
    neuron, spiked; every (sample, neuron) of the layer present).
    """
    first = input_spiked(t_in, schedule)
    out = [first]
    for layer in range(1, len(widths) - 1):
        part = spikes[spikes["layer"] == layer - 1]
        grid = part.pivot(index="sample", columns="neuron", values="spiked")
        grid = grid.reindex(index=range(first.shape[0]), columns=range(widths[layer]))
        if grid.isna().to_numpy().any():
            raise ValueError(f"the spike table lacks (sample, neuron) rows of layer {layer - 1}")
        out.append(grid.to_numpy(dtype=bool))
    return out


def count_synops(weights: Sequence[np.ndarray], spiked: Sequence[np.ndarray]) -> np.ndarray:
    """Synaptic operations per sample and layer, (n_samples, n_layers) int.

    A synaptic operation is one input spike reaching one synapse whose weight is nonzero (a
    synapse with w = 0 has both current sources off and does nothing): for layer l and sample s,

        n_synops[s, l] = sum_j spiked_l[s, j] * #{i : w_l[j, i] != 0}

    ``weights[l]`` (n_l, n_{l+1}); ``spiked[l]`` (n_samples, n_l) bool (:func:`spiked_inputs`).
    """
    if len(weights) != len(spiked):
        raise ValueError(f"{len(weights)} weight matrices but {len(spiked)} spike masks: one per layer")
    counts = []
    for l, (w, s) in enumerate(zip(weights, spiked)):
        w, s = np.asarray(w), np.asarray(s, dtype=bool)
        if w.ndim != 2 or s.ndim != 2 or s.shape[1] != w.shape[0]:
            raise ValueError(f"layer {l}: spike mask {s.shape} does not fit weights {w.shape} "
                             "((n_samples, n_in) and (n_in, n_out))")
        counts.append(s.astype(np.int64) @ np.count_nonzero(w, axis=1))
    return np.stack(counts, axis=1)


def energy_summary(table: pd.DataFrame, synops: np.ndarray) -> dict:
    """Energy per inference, per synaptic operation and its breakdown, as a JSON-able dict.

    ``table``: :func:`supply_energy`'s rows for samples 0..n_samples-1; ``synops``
    (n_samples, n_layers) from :func:`count_synops`. Per inference means summed over a sample's
    windows and averaged over samples: E_inf = sum(energy_j) / n_samples. Per synaptic
    operation: E_synop = sum(energy_j) / sum(synops) (NaN without any). Keys:
    ``energy_per_inference_j``, ``energy_per_synop_j``, ``n_synops_per_inference``,
    ``n_samples``; ``per_layer`` (layer, energy_j, n_synops per inference, energy_per_synop_j;
    the shared sources as layer -1), ``per_phase``, ``per_group`` and ``table`` (layer, phase,
    group, energy_j), all per inference.
    """
    synops = np.asarray(synops)
    if synops.ndim != 2:
        raise ValueError(f"synops must be (n_samples, n_layers), got shape {synops.shape}")
    n_samples = synops.shape[0]
    if not table.empty and not table["sample"].between(0, n_samples - 1).all():
        raise ValueError(f"the energy table has samples outside 0..{n_samples - 1} (synops has {n_samples} rows)")
    total = float(table["energy_j"].sum())
    n_synops = int(synops.sum())

    def per(columns: list[str]) -> pd.DataFrame:
        return (table.groupby(columns, sort=False)["energy_j"].sum() / n_samples).reset_index()

    layers = per(["layer"]).sort_values("layer")
    layer_synops = {l: synops[:, l].sum() / n_samples for l in range(synops.shape[1])}
    layers["n_synops"] = layers["layer"].map(layer_synops).fillna(0.0)
    layers["energy_per_synop_j"] = [e / n if n > 0 else float("nan")
                                    for e, n in zip(layers["energy_j"], layers["n_synops"])]
    return {
        "energy_per_inference_j": total / n_samples,
        "energy_per_synop_j": total / n_synops if n_synops > 0 else float("nan"),
        "n_synops_per_inference": n_synops / n_samples,
        "n_samples": int(n_samples),
        "per_layer": layers.to_dict(orient="records"),
        "per_phase": per(["phase"]).to_dict(orient="records"),
        "per_group": per(["group"]).to_dict(orient="records"),
        "table": per(["layer", "phase", "group"]).to_dict(orient="records"),
    }
