"""Weights + input spike times -> batched sky130 transients -> spike-time table (the entry point).

:func:`simulate_network` is what the validation pipeline calls. Samples are split into batches of
at most ``batch_size``, as even as they can be (:func:`batch_starts`); each batch is one ngspice run (samples back to back, 3 T apart, see
:mod:`imcpnn.circuits.netlist.network`), so the model load is paid once per batch. Batches and candidate
current scales (:func:`simulate_scales`) run in parallel through :func:`imcpnn.spice.run_many`,
which also caches finished runs: a rerun with the same inputs reads them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from imcpnn.circuits.characterization.fit import Characterization
from imcpnn.circuits.simulate.energy import supply_energy
from imcpnn.circuits.simulate.measure import membrane_table, spice_spike_table
from imcpnn.circuits.netlist.network import Network, NetworkDeck, PhaseSchedule, check_inputs, check_weights, network_deck
from imcpnn.circuits.netlist.operating_point import OperatingPoint
from imcpnn.circuits.simulate.weights import CurrentScales, discharger_bias_v, weights_to_biases
from imcpnn.errors import ConfigError
from imcpnn.spice import Corner, Sim, Tran, device_uses, run_many


@dataclass(frozen=True)
class NetworkRun:
    """Result of simulating one set of weights and scales over all samples.

    ``spikes``: the spike table, one row per (sample, layer, neuron) (see
    :func:`imcpnn.circuits.simulate.measure.spice_spike_table`);
    ``membranes``: waveforms (or None); ``mapping``: gate biases per layer and the constants used;
    ``traces``: per batch, (time_s, {name: trace}) if requested; ``energy``: the energy each
    supply group delivered per sample, layer and phase
    (:func:`imcpnn.circuits.simulate.energy.supply_energy`), None when the supplies were not saved.
    """

    spikes: pd.DataFrame
    membranes: pd.DataFrame | None
    mapping: dict
    netlists: tuple[str, ...]
    traces: tuple = field(default=(), repr=False)
    energy: pd.DataFrame | None = field(default=None, repr=False)


#: Absolute tolerance (V, deg C) of the operating-point comparison (JSON round trips are exact).
OP_TOL = 1e-6


def check_operating_point(network: Network, char: Characterization, corner: str = "tt",
                          temp_c: float = 27.0, *, role: str = "network") -> None:
    """Refuse a run whose operating point differs from the characterization that maps its weights.

    The gate biases come from I_D(V_G) tables measured at the characterization's operating point
    (V0, VDD, sensing bias), corner and temperature; a deck run at another point would use biases
    for currents that are not the intended ones. Compared: ``network.operating_point`` with
    ``char.operating_point(...)``, the corner and the temperature. A characterization value of None
    (not recorded, e.g. built by hand without ``settings``) takes the run's value. Raises
    ConfigError naming every mismatch, both values and the fix.
    """
    run_corner = Corner.parse(corner)
    run_point = network.operating_point
    char_point = char.operating_point(unrecorded=run_point)
    diffs, fixes = [], []
    for name in run_point.mismatches(char_point, OP_TOL):
        run_value, char_value = getattr(run_point, name), getattr(char_point, name)
        diffs.append(f"{OperatingPoint.LABELS[name]} {run_value:g} V ({role}.{name}) vs {char_value:g} V "
                     "(characterization)")
        fixes.append(f"Network(..., {name}={char_value:g})")
    if char.corner is not None and Corner.parse(char.corner) != run_corner:
        char_corner = Corner.parse(char.corner).value
        diffs.append(f"corner {run_corner.value} (run) vs {char_corner} (characterization)")
        fixes.append(f"corner={char_corner!r}")
    if char.temp_c is not None and not math.isclose(char.temp_c, temp_c, rel_tol=0, abs_tol=OP_TOL):
        diffs.append(f"temperature {temp_c:g} C (run) vs {char.temp_c:g} C (characterization)")
        fixes.append(f"temp_c={char.temp_c:g}")
    if diffs:
        raise ConfigError(
            "operating point mismatch between the network run and the characterization that maps its "
            f"weights: {'; '.join(diffs)}. The gate biases are only right at the characterized point: "
            "re-characterize at the run's point (imcpnn characterize with the same corner, temperature "
            f"and voltages) or run at the characterization's: {', '.join(fixes)}"
        )


def map_network(
    network: Network, weights: list[np.ndarray], char: Characterization, scales: CurrentScales, t_phase_s: float,
    discharger_scale: float = 1.0,
) -> dict:
    """Gate biases of every layer and the discharger biases (the JSON-able weight mapping).

    The weight currents follow ``scales``; the discharger sits at its design current (see
    :func:`imcpnn.circuits.simulate.weights.discharger_current_a`) times ``discharger_scale``.
    """
    weights = check_weights(network, weights)
    layers = []
    for l, w in enumerate(weights):
        c_m = network.membrane_f(l)
        vg_n, vg_p = weights_to_biases(w, char, c_m, t_phase_s, scales, network.vdd_v)
        layers.append(
            {"c_m_f": c_m, "vg_n_v": vg_n.tolist(), "vg_p_v": vg_p.tolist(),
             "vg_dis_v": discharger_bias_v(char, c_m, t_phase_s, discharger_scale)}
        )  # fmt: skip
    return {
        "widths": list(network.widths), "netlist_kind": network.netlist_kind, "t_phase_s": t_phase_s,
        "scales": {"scale": scales.scale, "scale_plus": scales.scale_plus, "scale_minus": scales.scale_minus},
        "discharger_scale": discharger_scale,
        "v0": char.v0, "v_switch": char.v_switch, "v_th_circ": char.v_th_circ, "layers": layers,
    }  # fmt: skip


def batch_starts(n_samples: int, batch_size: int) -> list[int]:
    """First sample of each batch when ``n_samples`` are split into the fewest batches of at most
    ``batch_size``, their sizes differing by at most one (50 by 7: 7, 7, 6, 6, 6, 6, 6, 6, not
    seven 7s and a 1), so that batches running side by side finish together."""
    n_batches = -(-n_samples // batch_size)
    return [k * (n_samples // n_batches) + min(k, n_samples % n_batches) for k in range(n_batches)]


def build_testbenches(
    network: Network, mapping: dict, t_in: np.ndarray, schedule: PhaseSchedule, batch_size: int, save_membranes: bool,
    save_supplies: bool = True,
) -> list[NetworkDeck]:
    """One testbench per batch of at most ``batch_size`` samples (``t_in``: (n_samples, n_in)),
    the batches as even as they can be (:func:`batch_starts`)."""
    biases = [(np.asarray(L["vg_n_v"]), np.asarray(L["vg_p_v"])) for L in mapping["layers"]]
    vg_dis = [L["vg_dis_v"] for L in mapping["layers"]]
    starts = batch_starts(len(t_in), batch_size)
    return [
        network_deck(network, biases, vg_dis, t_in[a:b], schedule, save_membranes, save_supplies)
        for a, b in zip(starts, starts[1:] + [len(t_in)])
    ]


def network_sim(tb: NetworkDeck, corner: Corner, temp_c: float, trtol: float,
                mismatch_seed: int | None = None) -> Sim:
    """The ngspice transient of a network testbench: max step from the deck, ``.options trtol``,
    only the deck's saved vectors, a model set of just the device sizes in use; with
    ``mismatch_seed`` the chip of that seed (Monte Carlo device mismatch, see
    :class:`imcpnn.spice.Sim`): every batch of a network is one deck structure, so all batches
    run on the same chip."""
    # device_uses gives the sizes in use: the model set keeps only their bins (fast subckt expansion)
    return Sim(
        tb.text,
        (Tran(tb.t_step_max_s, tb.t_stop_s, tb.t_step_max_s),),
        corner=corner, temp_c=temp_c, devices=device_uses(tb.text), save=tb.saves,
        options={"trtol": trtol}, mismatch_seed=mismatch_seed,
    )  # fmt: skip


def simulate_scales(
    weights: list[np.ndarray],
    t_in: np.ndarray,
    char: Characterization | dict,
    scales_list: list[CurrentScales],
    *,
    network: Network | None = None,
    mapping_network: Network | None = None,
    schedule: PhaseSchedule = PhaseSchedule(),
    corner: str = "tt",
    temp_c: float = 27.0,
    batch_size: int = 50,
    save_membranes: bool = True,
    keep_traces: bool = False,
    discharger_scales: list[float] | None = None,
    cache_dir=None,
    max_workers: int | None = None,
    executor=None,
    progress: bool = True,
    mismatch_seed: int | None = None,
    mapping_point: bool = False,
    save_supplies: bool = True,
) -> list[NetworkRun]:
    """Simulate the same weights and inputs for several current scales, all batches in parallel.

    ``weights``: list of (n_l, n_{l+1}) arrays (normalized); ``t_in``: (n_samples, n_in) normalized
    spike times in [0, 1] (NaN = no spike); ``char``: the characterization (dict from its JSON or
    :class:`Characterization`). All inputs are checked (shapes, ranges, corner) before anything runs;
    the network's V0, VDD and sense bias, ``corner`` and ``temp_c`` must be the characterization's
    (:func:`check_operating_point`), else ConfigError.
    ``discharger_scales``: one discharger current factor per candidate (default 1: the design
    current). ``mapping_network``: the network whose membrane capacitances the weight mapping assumes
    (default ``network``); e.g. the post-layout network, to drive the schematic netlist with the
    very gate biases of the post-layout one.
    ``executor``: where the batches run (:func:`imcpnn.spice.run_many`): None, a local pool of
    ``max_workers`` processes; a ``concurrent.futures`` executor; or a ``distributed.Client``,
    whose Dask cluster runs them (docs/distributed.md).
    ``mismatch_seed``: run every candidate on the Monte Carlo chip of that seed (None: nominal).
    ``mapping_point``: let ``corner``/``temp_c`` differ from the characterization's: the gate
    biases stay those mapped at the characterization's corner and temperature (a chip calibrated
    at one point and operated at another); the voltages must still match.
    ``save_supplies``: separate and save the supplies so that each run carries its ``energy``
    table (:func:`imcpnn.circuits.netlist.network.network_deck`); False: spike times only,
    smaller raw files.
    """
    if isinstance(char, dict):
        char = Characterization.from_dict(char)
    corner_enum = Corner.parse(corner)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be an integer >= 1")
    weights = [np.asarray(w, dtype=float) for w in weights]
    if network is None:
        if not weights:
            raise ConfigError("weights is empty: pass one (n_in, n_out) matrix per layer")
        network = Network(tuple(w.shape[0] for w in weights) + (weights[-1].shape[-1],))
    t_in = check_inputs(network, t_in)
    if mapping_network is not None and mapping_network.widths != network.widths:
        raise ConfigError(f"mapping_network widths {mapping_network.widths} differ from the simulated "
                          f"network's {network.widths}: map for a network of the same shape")
    map_corner = (char.corner or corner) if mapping_point else corner
    map_temp = (temp_c if char.temp_c is None else char.temp_c) if mapping_point else temp_c
    check_operating_point(network, char, map_corner, map_temp)
    if mapping_network is not None:
        check_operating_point(mapping_network, char, map_corner, map_temp, role="mapping_network")
    plans = []
    if discharger_scales is None:
        discharger_scales = [1.0] * len(scales_list)
    if len(discharger_scales) != len(scales_list):
        raise ConfigError(f"{len(discharger_scales)} discharger scales for {len(scales_list)} current scales; "
                          "give one per candidate")
    for scales, k_dis in zip(scales_list, discharger_scales):
        mapping = map_network(mapping_network or network, weights, char, scales, schedule.t_phase_s, k_dis)
        plans.append((mapping, build_testbenches(network, mapping, t_in, schedule, batch_size, save_membranes,
                                                 save_supplies)))
    sims = [network_sim(tb, corner_enum, temp_c, schedule.trtol, mismatch_seed) for _, tbs in plans for tb in tbs]
    results = iter(run_many(sims, executor=executor, cache_dir=cache_dir, max_workers=max_workers, progress=progress,
                            desc="network tran"))
    runs = []
    for mapping, tbs in plans:
        spikes, membranes, traces, energy = [], [], [], []
        for first, tb in zip(batch_starts(len(t_in), batch_size), tbs):
            plot = next(results).plot("tran")
            time_s = np.asarray(plot[plot.names[0]])
            tr = {name: np.asarray(plot[name]) for name in tb.saves}
            sp = spice_spike_table(time_s, tr, tb.widths, tb.n_samples, schedule, network.vdd_v)
            sp["sample"] += first
            spikes.append(sp)
            if save_membranes:
                mb = membrane_table(time_s, tr, tb.widths, tb.n_samples, schedule, char.v0, char.v_th_circ)
                mb["sample"] += first
                membranes.append(mb)
            if keep_traces:
                traces.append((time_s, tr))
            if tb.supplies:
                en = supply_energy(time_s, tr, tb.supplies, schedule, tb.n_samples, len(tb.widths) - 1)
                energy.append(en.assign(sample=en["sample"] + first))
        runs.append(
            NetworkRun(
                spikes=pd.concat(spikes, ignore_index=True),
                membranes=pd.concat(membranes, ignore_index=True) if save_membranes else None,
                mapping=mapping,
                netlists=tuple(tb.text for tb in tbs),
                traces=tuple(traces),
                energy=pd.concat(energy, ignore_index=True) if energy else None,
            )
        )
    return runs


def simulate_network(
    weights: list[np.ndarray],
    t_in: np.ndarray,
    char: Characterization | dict,
    scales: CurrentScales = CurrentScales(),
    **kwargs,
) -> NetworkRun:
    """:func:`simulate_scales` for one set of scales (same keyword arguments)."""
    return simulate_scales(weights, t_in, char, [scales], **kwargs)[0]
