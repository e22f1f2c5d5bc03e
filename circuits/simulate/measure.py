"""Spike times and membrane waveforms from the raw traces of a batched testbench (pure).

The spike times come out as the *spike table* (:data:`SPIKE_TABLE_COLUMNS`), the long format the
model side writes too (:func:`imcpnn.validation.model_spike_table`), so that
:func:`imcpnn.validation.compare_spike_tables` joins the two on (sample, layer, neuron).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from imcpnn.circuits.netlist.network import PhaseSchedule
from imcpnn.circuits.netlist.operating_point import DESIGN_POINT

#: Key of a spike table: one row per sample, layer (from 0) and neuron.
SPIKE_TABLE_KEYS = ("sample", "layer", "neuron")
#: Columns every spike table holds: the key, ``t_spike`` (normalized to the neuron's firing
#: window: 0 its start, 1 its end) and ``spiked`` (False: the neuron stayed silent in its window).
#: The SPICE table adds ``t_spike_s``, the absolute time.
SPIKE_TABLE_COLUMNS = (*SPIKE_TABLE_KEYS, "t_spike", "spiked")


def rising_crossing_s(time_s: np.ndarray, v: np.ndarray, level_v: float, t0_s: float, t1_s: float) -> float:
    """First rising crossing of ``level_v`` by ``v`` inside [t0, t1] (s), linearly interpolated.

    NaN when the trace does not cross upwards inside the window. ``time_s``, ``v``: (n_points,).
    """
    k0, k1 = np.searchsorted(time_s, [t0_s, t1_s])
    k0 = max(k0 - 1, 0)
    t, y = time_s[k0 : k1 + 1], v[k0 : k1 + 1] - level_v
    idx = np.nonzero((y[:-1] < 0) & (y[1:] >= 0))[0]
    idx = idx[(t[idx + 1] >= t0_s) & (t[idx] <= t1_s)]
    if idx.size == 0:
        return float("nan")
    k = idx[0]
    return float(t[k] + (t[k + 1] - t[k]) * (-y[k]) / (y[k + 1] - y[k]))


def spice_spike_table(
    time_s: np.ndarray,
    traces: Mapping[str, np.ndarray],
    widths: tuple[int, ...],
    n_samples: int,
    schedule: PhaseSchedule,
    vdd_v: float = DESIGN_POINT.vdd_v,
) -> pd.DataFrame:
    """The spike table (:data:`SPIKE_TABLE_COLUMNS`) of a batched testbench, from its raw traces.

    Columns: sample, layer, neuron, t_spike_s (absolute crossing of V_dd/2 by the neuron's output
    ``v(s<l+1>_<i>)``), t_spike (normalized: (t_spike_s - firing window start)/T), spiked (bool;
    False with NaN times when no crossing lies inside the firing window).
    """
    rows = []
    T = schedule.t_phase_s
    for l in range(len(widths) - 1):
        for i in range(widths[l + 1]):
            v = np.asarray(traces[f"v(s{l + 1}_{i})"])
            for s in range(n_samples):
                t0 = schedule.window_start_s(s, l, "firing")
                t = rising_crossing_s(time_s, v, vdd_v / 2, t0, t0 + T)
                rows.append((s, l, i, t, (t - t0) / T, bool(np.isfinite(t))))
    return pd.DataFrame(rows, columns=[*SPIKE_TABLE_KEYS, "t_spike_s", "t_spike", "spiked"])



def membrane_table(
    time_s: np.ndarray,
    traces: Mapping[str, np.ndarray],
    widths: tuple[int, ...],
    n_samples: int,
    schedule: PhaseSchedule,
    v0_v: float,
    v_th_circ_v: float,
) -> pd.DataFrame:
    """Membrane waveforms per sample, layer, neuron over accumulation + firing windows.

    Columns: sample, layer, neuron, t_s (relative to the accumulation start), t (normalized,
    0..2: accumulation then firing), v_mem_v, v (normalized, v = -(V - V0)/V_th_circ).
    """
    frames = []
    T = schedule.t_phase_s
    for l in range(len(widths) - 1):
        for i in range(widths[l + 1]):
            name = f"v(m{l}_{i})"
            if name not in traces:
                continue
            v = np.asarray(traces[name])
            for s in range(n_samples):
                t0 = schedule.window_start_s(s, l, "accumulation")
                sel = (time_s >= t0) & (time_s <= t0 + 2 * T)
                frames.append(
                    pd.DataFrame(
                        {
                            "sample": s, "layer": l, "neuron": i,
                            "t_s": time_s[sel] - t0, "t": (time_s[sel] - t0) / T,
                            "v_mem_v": v[sel], "v": -(v[sel] - v0_v) / v_th_circ_v,
                        }  # fmt: skip
                    )
                )
    cols = ["sample", "layer", "neuron", "t_s", "t", "v_mem_v", "v"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
