"""Model vs SPICE on columns of one trained layer (``imcpnn layer``): the column decomposition.

The layer (n_in, n_out) of a trained network is simulated column by column
(:mod:`imcpnn.circuits.simulate.column`): in the charge-domain crossbar each output neuron
integrates only its own column, and the testbench's input lines are ideal sources, so the layer
is n_out independent decks; what that leaves out is IR drop and coupling on the shared lines.
:func:`run_layer` simulates K columns for S samples (locally or on a Dask cluster) and compares
their spike times with the bottom-up model's prediction for the same columns.

The bottom-up model here uses the terms that are cheap at this size, each stated in layer.json
(``models``):

1. **E per synapse**: the characterization's E_plus, E_minus times each synapse's bias
   dependence (:func:`~imcpnn.validation._pipeline.reversal_shapes`, from the characterized
   lambda against current; one E per sign where the characterization has no curves), and its
   E_dis for the discharge;
2. **the discharger design and the membrane's real capacitance** (:func:`calibrate_discharger`):
   a neuron of the layer with no input spike, simulated at a few discharger factors k (on the unit
   current C_m V_th_circ / T) until two fire, gives t(k) = t_0 + K / k
   (:func:`~imcpnn.validation._pipeline.discharger_factor`, as the validation's discharger
   stage). The design factor k* = K / (1 - t_0) makes a neuron with no input fire at the window
   end (the method's design); K = C_eff / C_m * ln(1 - 1/E_dis) / (-1/E_dis) gives the
   membrane's effective capacitance C_eff (the MIM plus the drain side of n_in synapses: about
   6 C_m for 784 inputs); t_0 is the firing-path delay. Four sims of one column without input
   edges: cheap next to the layer.

   The mapping then scales every weight current by C_eff / C_m (the synapses move a membrane of
   C_eff as the trained weights say) and drives the discharger at k*; the model's discharge rate
   is k* C_m / C_eff and its delay t_0, so the model's neuron without input fires at the window
   end as the circuit's does. Weights below the characterized current floor are switched off
   (:func:`~imcpnn.circuits.simulate.weights.switch_off_unmappable`; counted in layer.json);
   weights above the table's top keep the mapping's own error, naming a scale that fits.

3. **the kick of the input edges** (:func:`calibrate_kick`): every synapse whose input spikes
   shares charge with the membrane at its edges (its switch's channel charge, its internal node
   connected to the membrane), q_plus per excitatory and q_minus per inhibitory synapse, applied
   at the end of accumulation as in the validation's model (which fits it on its testbench).
   Small per synapse, it adds up in a 784-input column, hundreds of active synapses on a
   membrane of about 6 C_m. One deck of three samples of one column measures it (no input;
   every excitatory synapse spiking late; every inhibitory one).

Left out (each could be added from its own testbench): the delay the next layer's gates add to
the outputs (the column decks drive nothing), C_eff's dependence on the gate biases (calibrated
at unit current scale), the kick's dependence on the membrane voltage at the edges, device
mismatch, and what the column decomposition leaves out.

Resumable: every column's result is saved as ``columns/col_<c>.json`` the moment its group of
decks finishes, keyed by a hash of its decks; a rerun (same inputs) skips those columns, and
cached SPICE runs make the calibration free.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from imcpnn.circuits.characterization.fit import Characterization
from imcpnn.circuits.netlist.network import Network, PhaseSchedule, input_spiked
from imcpnn.circuits.simulate.column import ColumnRun, map_layer, plan_columns, run_columns
from imcpnn.circuits.simulate.energy import count_synops
from imcpnn.circuits.simulate.weights import CurrentScales, unit_current_a
from imcpnn.errors import ConfigError
from imcpnn.pnn import PNN, LayerPhysics
from imcpnn.progress import progress_bar
from imcpnn.rundir import RunDirLock, write_json_atomic
from imcpnn.spice import find_ngspice
from imcpnn.validation._metrics import compare_spike_tables, model_spike_table
from imcpnn.validation._pipeline import E_INFINITE, discharger_factor, model_layer_times, reversal_shapes

#: The result file of :func:`run_layer` in its output folder.
LAYER_JSON = "layer.json"
#: Folder of the per-column results (resume).
COLUMNS_DIR = "columns"
#: First discharger factors (on the unit current) of the calibration; each later pair doubles.
DISCHARGER_START = (2.0, 4.0)
#: Largest discharger factor the calibration tries before giving up.
DISCHARGER_MAX = 256.0
#: Statement of the decomposition, written into layer.json.
ASSUMPTION = ("column decomposition: in the charge-domain crossbar each output neuron integrates only its own "
              "column and the testbench's input lines are ideal sources, so a layer of n_out neurons is n_out "
              "independent column decks; not modelled: IR drop and coupling on the shared lines")
TERMS = ("E per synapse (characterized lambda against current) and E_dis",
         "discharger at its design factor k* (a neuron without input fires at the window end)",
         "membrane capacitance C_eff (MIM plus n_in synapse drains), from the same no-input runs",
         "firing-path delay t_0, from the same no-input runs",
         "kick of the input edges q_plus/q_minus per active synapse, from one deck of late input spikes")
LEFT_OUT = ("load of the next layer's gates on the outputs (the column decks drive nothing)",
            "C_eff's dependence on the gate biases (calibrated at unit current scale)",
            "the kick's dependence on the membrane voltage at the edges (calibrated near V0)",
            "device mismatch", "IR drop and coupling on shared lines (column decomposition)")
#: The kick calibration's input spikes rise this many edge times before the accumulation ends: the
#: synapses then conduct so briefly that the membrane's step is mostly their edges' charge (a
#: longer conduction puts more of the step on the model's own integration, and its error into
#: the kick), while the pulse stays longer than the two edges an input spike needs.
KICK_EDGES = 5.0
#: Discharger factor of the kick calibration, on the design factor k*: a neuron without input then
#: fires near mid-window, so that a step of either sign moves its spike inside the window.
KICK_DISCHARGER = 2.0
#: Largest total kick (normalized membrane units) the calibration's root search considers.
KICK_MAX = 1.0


def _corner_temp(char: Characterization) -> tuple[str, float]:
    """The corner and temperature of a characterization (tt, 27 C where not recorded)."""
    return char.corner or "tt", 27.0 if char.temp_c is None else char.temp_c


def calibrate_discharger(network: Network, w: np.ndarray, char: Characterization | dict, column: int, *,
                         schedule: PhaseSchedule = PhaseSchedule(), executor: Any = None,
                         max_workers: int | None = None, cache_dir=None) -> dict:
    """Discharger design factor, C_eff / C_m and firing delay of one column of the layer.

    The column (weights ``w[:, column]`` mapped at unit current scale) with no input spike is
    simulated at discharger factors k = 2, 4, then 8, 16, ... (pairs, up to
    :data:`DISCHARGER_MAX`) until at least two fire inside the window. The spike time of a
    membrane ramped from V0 at the rate r = k C_m / C_eff is t(k) = t_0 + K / k with
    K = (C_eff / C_m) k_e / beta (beta = 1 / E_dis, k_e = -ln(1 - beta), the discharge the
    model's firing equation integrates); a least-squares fit
    (:func:`~imcpnn.validation._pipeline.discharger_factor`) gives t_0, K and k* = K / (1 - t_0).

    **Returns:** {"factor": k*, "t_0", "K", "c_eff_over_c_m", "fit_rms_ns", "grid": [[k, t], ...]}
    (t normalized to the firing window; only the factors that fired). Raises ConfigError when
    fewer than two factors up to the maximum fire.
    """
    if isinstance(char, dict):
        char = Characterization.from_dict(char)
    corner, temp_c = _corner_temp(char)
    t_in = np.ones((1, network.widths[0]))  # no input spike: the membrane stays at V0
    rows, tried = [], []
    pair = DISCHARGER_START
    while len(rows) < 2 and pair[0] <= DISCHARGER_MAX:
        plans = []
        for k in pair:
            mapping, _, _ = map_layer(network, w, char, CurrentScales(), schedule.t_phase_s, k)
            plans += plan_columns(network, mapping, t_in, [column], schedule, 1, save_membranes=False,
                                  save_supplies=False)
        runs = list(run_columns(plans, char, network, schedule=schedule, corner=corner, temp_c=temp_c,
                                columns_per_batch=len(plans), executor=executor, max_workers=max_workers,
                                cache_dir=cache_dir, progress=False))
        for k, run in zip(pair, runs):
            t, fired = float(run.spikes["t_spike"].iloc[0]), bool(run.spikes["spiked"].iloc[0])
            tried.append(k)
            if fired and 0 < t < 1:
                rows.append((k, t))
        pair = (2 * pair[1], 4 * pair[1])
    if len(rows) < 2:
        raise ConfigError(
            f"a neuron of this layer without input fires at fewer than two of the discharger factors {tried}: "
            "its membrane is too large for the discharger's characterized range; check the characterization's "
            "discharger table (vg_table_n_v) or the neuron's discharger size")
    k, t = np.array(rows).T
    k_star, t0, big_k, rms = discharger_factor(k, t)
    beta = 1.0 / char.e_dis
    ratio = big_k * beta / -math.log1p(-beta)
    return {"factor": k_star, "t_0": t0, "K": big_k, "c_eff_over_c_m": ratio,
            "fit_rms_ns": rms * schedule.t_phase_s * 1e9, "grid": [list(map(float, r)) for r in rows],
            "column": int(column)}


def bottom_up_physics(char: Characterization, calibration: dict, *, kick: bool = True,
                      factor: float | None = None) -> LayerPhysics:
    """The model of :func:`run_layer`: the characterization's E values and E_dis, the discharge
    rate k C_m / C_eff (k: ``factor``, default the design k*) and the firing delay t_0 of the
    calibration, and its kick (``kick=False`` or a calibration without one: none)."""
    factor = calibration["factor"] if factor is None else factor
    return LayerPhysics(e_plus=char.e_plus, e_minus=char.e_minus, e_dis=char.e_dis,
                        dis_rate=factor / calibration["c_eff_over_c_m"], t_delay=calibration["t_0"],
                        q_plus=calibration.get("q_plus", 0.0) if kick else 0.0,
                        q_minus=calibration.get("q_minus", 0.0) if kick else 0.0)


def column_reversal(char_data: dict, w_cols: np.ndarray, c_m_f: float, t_phase_s: float, calibration: dict):
    """Per-synapse (E_plus, E_minus) arrays of the columns ``w_cols`` (n_in, n_cols, mapped
    weights) at the calibration's current scale, or None for a characterization without lambda
    curves (the scalar E then)."""
    char = Characterization.from_dict(char_data)
    shapes = reversal_shapes(char_data, w_cols, c_m_f, t_phase_s, CurrentScales(scale=calibration["c_eff_over_c_m"]))
    return None if shapes is None else (char.e_plus * shapes[0], char.e_minus * shapes[1])


def kick_input_time(schedule: PhaseSchedule) -> float:
    """Normalized input time of the kick calibration's spikes: :data:`KICK_EDGES` edge times
    before the end of the accumulation phase."""
    return 1.0 - KICK_EDGES * schedule.t_edge_s / schedule.t_phase_s


def calibrate_kick(network: Network, w: np.ndarray, char_data: dict, column: int, calibration: dict, *,
                   schedule: PhaseSchedule = PhaseSchedule(), executor: Any = None,
                   max_workers: int | None = None, cache_dir=None, progress: bool = False) -> dict:
    """The kick of the input edges per active synapse, q_plus and q_minus, of one column
    (``progress``: a bar for its deck, minutes long for 784 inputs).

    ``w``: the layer's weights as :func:`run_layer` maps them (at the calibration's current scale
    C_eff / C_m, weights below the current floor switched off). One deck of the column at the
    discharger factor :data:`KICK_DISCHARGER` k* holds three samples: no input; every synapse
    with w > 0 spiking at :func:`kick_input_time`; every synapse with w < 0 likewise. Each signed kick
    q solves, by a root search of the model,

        t_model(q; sample) - t_model(0; no input) = t_spice(sample) - t_spice(no input),

    a difference that leaves out what the discharger calibration already holds (t_0, C_eff): the
    model integrates the synapses' short conduction itself, so q is what is left, the charge of
    the edges over C_eff (normalized membrane units), n q the step of n active synapses.

    **Returns:** {"q_plus", "q_minus", "kick_grid": {"t_in", "factor", "t_spice": [none, plus,
    minus], "n_active": [n_plus, n_minus]}}. Raises ConfigError where a sample stays silent or
    no kick up to :data:`KICK_MAX` reproduces it.
    """
    from scipy.optimize import brentq

    char = Characterization.from_dict(char_data)
    corner, temp_c = _corner_temp(char)
    w = np.asarray(w, dtype=float)
    n_in = w.shape[0]
    w_col = w[:, [column]]
    factor = KICK_DISCHARGER * calibration["factor"]
    signs = (w_col[:, 0] > 0, w_col[:, 0] < 0)
    t_late = kick_input_time(schedule)
    t_in = np.ones((3, n_in))
    for row, active in enumerate(signs, start=1):
        t_in[row, active] = t_late
    mapping, _, _ = map_layer(network, w, char, CurrentScales(scale=calibration["c_eff_over_c_m"]),
                              schedule.t_phase_s, factor)
    plans = plan_columns(network, mapping, t_in, [column], schedule, 3, save_membranes=False, save_supplies=False)
    run = next(iter(run_columns(plans, char, network, schedule=schedule, corner=corner, temp_c=temp_c,
                                columns_per_batch=1, executor=executor, max_workers=max_workers,
                                cache_dir=cache_dir, progress=progress)))
    sp = run.spikes.sort_values("sample")
    t_spice = [float(t) if ok and 0 < t < 1 else None for t, ok in zip(sp["t_spike"], sp["spiked"])]
    if None in t_spice:
        raise ConfigError(
            f"the kick calibration of column {column} stays silent in sample(s) "
            f"{[i for i, t in enumerate(t_spice) if t is None]} (0: no input, 1: excitatory, 2: inhibitory "
            f"inputs spiking at {t_late:.4g}) at discharger factor {factor:.3g}: the column's weights move "
            "its membrane out of the firing range; check the layer's weights or the characterization")
    reversal = column_reversal(char_data, w_col, network.membrane_f(0), schedule.t_phase_s, calibration)
    base = bottom_up_physics(char, calibration, kick=False, factor=factor)

    def t_model(row: int, q: float) -> float:
        # a kick sample's spiking synapses are all of one sign: q is that sign's kick
        physics = dataclasses.replace(base, q_plus=q, q_minus=q)
        return float(predict_columns(w_col, t_in[[row]], physics, reversal)[0, 0])

    offset = t_spice[0] - t_model(0, 0.0)
    kicks = []
    for row, active in enumerate(signs, start=1):
        n = int(active.sum())
        if n == 0:  # no synapse of this sign: its kick never enters the model
            kicks.append(0.0)
            continue
        f = lambda q: t_model(row, q) + offset - t_spice[row]  # noqa: E731
        lo, hi = -KICK_MAX / n, KICK_MAX / n
        if f(lo) * f(hi) > 0:
            raise ConfigError(
                f"no kick up to {KICK_MAX} (normalized) per column reproduces the spike of the "
                f"{'excitatory' if row == 1 else 'inhibitory'} kick sample of column {column}: the model and "
                "the circuit disagree beyond the edges' charge; check the characterization")
        kicks.append(float(brentq(f, lo, hi, xtol=1e-12)))
    return {"q_plus": kicks[0], "q_minus": kicks[1],
            "kick_grid": {"t_in": t_late, "factor": factor, "t_spice": t_spice,
                          "n_active": [int(a.sum()) for a in signs]}}


def calibrate_layer(network: Network, w: np.ndarray, char_data: dict, column: int, *,
                    calibration: dict | None = None, schedule: PhaseSchedule = PhaseSchedule(),
                    executor: Any = None, max_workers: int | None = None, cache_dir=None,
                    progress: bool = False) -> dict:
    """The calibration :func:`run_layer` needs, from SPICE runs of one ``column`` of the layer
    ``w`` (n_in, n_out, trained weights): :func:`calibrate_discharger` (unless ``calibration``
    already holds it) and then :func:`calibrate_kick` on the weights as the layer maps them
    (``progress``: its bar)."""
    if calibration is None:
        calibration = calibrate_discharger(network, w, char_data, column, schedule=schedule, executor=executor,
                                           max_workers=max_workers, cache_dir=cache_dir)
    _, w_mapped, _ = map_layer(network, w, char_data, CurrentScales(scale=calibration["c_eff_over_c_m"]),
                               schedule.t_phase_s, calibration["factor"])
    return {**calibration, **calibrate_kick(network, w_mapped, char_data, column, calibration, schedule=schedule,
                                            executor=executor, max_workers=max_workers, cache_dir=cache_dir,
                                            progress=progress)}


def predict_columns(w: np.ndarray, x: np.ndarray, physics: LayerPhysics, reversal=None) -> np.ndarray:
    """Exact model spike times (n_samples, n_columns) of a one-layer network of weights ``w``
    (n_in, n_columns) on inputs ``x`` (n_samples, n_in), through the validation's
    :func:`~imcpnn.validation._pipeline.model_layer_times` (``reversal``: one (E_plus, E_minus)
    pair of (n_in, n_columns) arrays, or None for the physics' scalars)."""
    model = PNN("mlp:", (w.shape[0],), w.shape[1], physics)
    with torch.no_grad():  # its one dense layer takes the columns' weights
        model.layers[0].weight.copy_(torch.as_tensor(w, dtype=model.layers[0].weight.dtype))
    return model_layer_times(model, x, physics, None if reversal is None else [reversal])[0]


def _fingerprint(plan, corner: str, temp_c: float, trtol: float) -> str:
    """What a column's SPICE result depends on: its decks, the corner, temperature and trtol."""
    digest = hashlib.sha256(f"{corner}\n{temp_c!r}\n{trtol!r}\n".encode())
    for deck in plan.decks:
        digest.update(deck.text.encode())
    return digest.hexdigest()[:24]


def _column_record(run: ColumnRun, plan, fingerprint: str, n_samples: int) -> dict:
    """The JSON record of one simulated column (``columns/col_<c>.json``)."""
    sp = run.spikes.sort_values("sample")
    record = {
        "column": run.column, "fingerprint": fingerprint,
        "t_spike": [None if not ok else float(t) for t, ok in zip(sp["t_spike"], sp["spiked"])],
        "ngspice_s": run.ngspice_s, "ngspice_analysis_s": run.analysis_s, "wall_s": run.wall_s, "cpu_s": run.cpu_s, "n_cached_decks": run.n_cached,
        "n_sources": list(plan.n_sources), "n_sources_unshared": list(plan.n_sources_unshared),
        "energy_j": None, "energy_by_group_j": None,
    }
    if run.energy is not None:
        per_sample = run.energy.groupby("sample")["energy_j"].sum().reindex(range(n_samples), fill_value=0.0)
        record["energy_j"] = [float(e) for e in per_sample]
        by_group = run.energy.groupby("group")["energy_j"].sum() / n_samples
        record["energy_by_group_j"] = {str(g): float(e) for g, e in by_group.items()}
    return record


def _read_column(path: Path, fingerprint: str) -> dict | None:
    """A saved column record if it belongs to these decks, else None (absent, other inputs,
    or unreadable: then it is simulated again)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("fingerprint") == fingerprint else None


def check_layer_inputs(w: np.ndarray, x: np.ndarray, columns) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Weights (n_in, n_out), inputs (n_samples, n_in) and column indices, checked; ConfigError
    naming the mismatch otherwise."""
    w, x = np.asarray(w, dtype=float), np.asarray(x, dtype=float)
    if w.ndim != 2 or not np.all(np.isfinite(w)):
        raise ConfigError(f"layer weights must be a finite (n_in, n_out) matrix, got shape {w.shape}")
    if x.ndim != 2 or x.shape[1] != w.shape[0] or len(x) < 1:
        raise ConfigError(f"the layer has {w.shape[0]} inputs but the samples have shape {x.shape}: "
                          f"give (n_samples, {w.shape[0]}) input spike times")
    n_out = w.shape[1]
    columns = list(range(n_out)) if columns is None else [int(c) for c in columns]
    bad = [c for c in columns if not 0 <= c < n_out]
    if bad or not columns or len(set(columns)) != len(columns):
        raise ConfigError(f"columns {columns[:8]}: give distinct indices in 0 ... {n_out - 1} (the layer has "
                          f"{n_out} columns)")
    return w, x, columns


def run_layer(w: np.ndarray, x: np.ndarray, char_data: dict, out_dir: str | Path, *,
              columns=None, batch_size: int = 2, schedule: PhaseSchedule = PhaseSchedule(),
              executor: Any = None, executor_label: str = "local", max_workers: int | None = None,
              columns_per_batch: int = 2, cache_dir=None, progress: bool = True,
              provenance: dict | None = None, calibration: dict | None = None) -> dict:
    """Simulate ``columns`` of the layer ``w`` (n_in, n_out) for the samples ``x`` (n_samples,
    n_in, normalized spike times) and compare them with the bottom-up model; writes
    ``out_dir/layer.json`` and returns its content.

    ``char_data``: the characterization's JSON dict (its corner and temperature are the run's);
    ``batch_size``:
    samples per column deck; ``executor``: None (a local pool of ``max_workers``), an executor or
    a ``distributed.Client`` (``executor_label`` says which, for layer.json);
    ``columns_per_batch``: columns per batch of runs (a saved unit: choose the executor's width);
    ``provenance``: where the weights and samples came from (written as given);
    ``calibration``: a :func:`calibrate_layer` result of this layer to reuse (another batch of
    samples of the same layer, a benchmark timing the columns alone); one of
    :func:`calibrate_discharger` alone gets its kick measured; None: simulate both.

    layer.json: ``n_inputs``, ``n_outputs`` (the layer's columns), ``n_columns``, ``columns``,
    ``n_samples``, ``executor``, ``rmse_ns`` / ``bias_ns`` (model - SPICE over the neurons that
    spike on both sides), ``models`` (terms, parameters, metrics), ``energy_per_inference_j``
    (the whole layer, scaled from the simulated columns), ``energy_per_synop_j`` (the simulated
    columns' energy over their synaptic operations: input spikes x synapses with a nonzero mapped
    weight), ``cost_s_per_column_sample``,
    ``spike_times`` (normalized, null = silent), the calibration, mapping and deck statistics.
    """
    char = Characterization.from_dict(char_data)
    w, x, columns = check_layer_inputs(w, x, columns)
    n_samples, (n_in, n_out) = len(x), w.shape
    network = Network((n_in, n_out))
    corner, temp_c = _corner_temp(char)
    out = Path(out_dir)
    with RunDirLock(out, "imcpnn layer"):
        if calibration is None or "q_plus" not in calibration:
            calibration = calibrate_layer(network, w, char_data, columns[0], calibration=calibration,
                                          schedule=schedule, executor=executor, max_workers=max_workers,
                                          cache_dir=cache_dir, progress=progress)
        scales = CurrentScales(scale=calibration["c_eff_over_c_m"])
        mapping, w_mapped, n_off = map_layer(network, w, char, scales, schedule.t_phase_s, calibration["factor"])
        plans = plan_columns(network, mapping, x, columns, schedule, batch_size, save_membranes=False)
        prints = {p.column: _fingerprint(p, corner, temp_c, schedule.trtol) for p in plans}
        folder = out / COLUMNS_DIR
        records = {c: _read_column(folder / f"col_{c}.json", prints[c]) for c in columns}
        pending = [p for p in plans if records[p.column] is None]
        resumed = [c for c in columns if records[c] is not None]
        with progress_bar(total=len(columns), desc="layer columns", enabled=progress, unit="column") as bar:
            bar.update(len(resumed))
            for run in run_columns(pending, char, network, schedule=schedule, corner=corner, temp_c=temp_c,
                                   columns_per_batch=columns_per_batch, executor=executor, max_workers=max_workers,
                                   cache_dir=cache_dir, progress=False):
                plan = next(p for p in pending if p.column == run.column)
                records[run.column] = _column_record(run, plan, prints[run.column], n_samples)
                write_json_atomic(folder / f"col_{run.column}.json", records[run.column])
                bar.update(1)
        result = _summary(w_mapped, x, char_data, columns, records, calibration, mapping, n_off, schedule, n_out)
        result.update(executor=executor_label, resumed_columns=resumed, batch_size=batch_size,
                      provenance=provenance or {}, corner=corner, temp_c=temp_c,
                      ngspice_version=find_ngspice()[1], assumption=ASSUMPTION)
        write_json_atomic(out / LAYER_JSON, result)
    return result


def _spice_table(columns: list[int], records: dict) -> pd.DataFrame:
    """The spike table of the simulated columns from their records (each holds every sample: its
    fingerprint covers the decks, hence the samples)."""
    rows = [(s, 0, c, np.nan if t is None else t, t is not None)
            for c in columns for s, t in enumerate(records[c]["t_spike"])]
    return pd.DataFrame(rows, columns=["sample", "layer", "neuron", "t_spike", "spiked"])


def _metrics(t_model: np.ndarray, spice: pd.DataFrame, columns: list[int], t_phase_s: float) -> dict:
    """rmse_ns and bias_ns (model - SPICE, ns) over the neurons spiking on both sides, and counts."""
    table = model_spike_table([t_model]).assign(neuron=lambda d: np.asarray(columns)[d["neuron"]])
    cmp = compare_spike_tables(table, spice, t_phase_s)
    both = (cmp["spiked_model"] & cmp["spiked_spice"]).to_numpy()
    err = cmp["err_t_spike_ns"].to_numpy()
    return {"rmse_ns": float(np.sqrt(np.mean(err[both] ** 2))) if both.any() else None,
            "bias_ns": float(np.mean(err[both])) if both.any() else None,
            "rmse_all_ns": float(np.sqrt(np.mean(err ** 2))),
            "n_both_spiking": int(both.sum()), "n_pairs": int(len(cmp)),
            "n_silent_model": int((~cmp["spiked_model"]).sum()),
            "n_silent_spice": int((~cmp["spiked_spice"]).sum()),
            "n_silent_mismatch": int((cmp["spiked_model"] != cmp["spiked_spice"]).sum())}


def _summary(w: np.ndarray, x: np.ndarray, char_data: dict, columns: list[int], records: dict,
             calibration: dict, mapping: dict, n_off: int, schedule: PhaseSchedule, n_out: int) -> dict:
    """layer.json's content (less what :func:`run_layer` adds)."""
    char = Characterization.from_dict(char_data)
    n_samples, n_in = x.shape
    T = schedule.t_phase_s
    spice = _spice_table(columns, records)
    w_cols = w[:, columns]
    physics = bottom_up_physics(char, calibration)
    reversal = column_reversal(char_data, w_cols, mapping["layers"][0]["c_m_f"], T, calibration)
    t_bottom_up = predict_columns(w_cols, x, physics, reversal)
    t_no_kick = predict_columns(w_cols, x, dataclasses.replace(physics, q_plus=0.0, q_minus=0.0), reversal)
    ideal = dataclasses.replace(physics, e_plus=E_INFINITE, e_minus=-E_INFINITE)
    t_ideal = predict_columns(w_cols, x, ideal)
    bottom_up = _metrics(t_bottom_up, spice, columns, T)
    models = {
        "bottom_up": {**bottom_up, "terms": list(TERMS), "left_out": list(LEFT_OUT),
                      "per_synapse_e": reversal is not None,
                      "parameters": {"e_plus": char.e_plus, "e_minus": char.e_minus, "e_dis": char.e_dis,
                                     "dis_rate": physics.dis_rate, "t_delay": physics.t_delay,
                                     "q_plus": physics.q_plus, "q_minus": physics.q_minus}},
        "without_kick": {**_metrics(t_no_kick, spice, columns, T),
                         "terms": ["as bottom_up, without the kick of the input edges"]},
        "ideal_synapses": {**_metrics(t_ideal, spice, columns, T),
                           "terms": ["as bottom_up, but ideal synapse current sources (|E| = 1e6)"]},
    }
    # synaptic operations of the simulated columns per inference: inputs that spike x the
    # synapses they reach with a nonzero (mapped) weight (circuits.simulate.energy.count_synops)
    synops = float(count_synops([w_cols], [input_spiked(x, schedule)]).mean())
    energy = [records[c]["energy_j"] for c in columns]
    if all(e is not None for e in energy):
        per_column = float(np.mean(energy))  # J per column and inference
        groups = {g: float(np.mean([records[c]["energy_by_group_j"][g] for c in columns])) * n_out
                  for g in records[columns[0]]["energy_by_group_j"]}
        energy_j, energy_note = per_column * n_out, (
            f"whole layer: {n_out} columns x the mean over the {len(columns)} simulated columns and {n_samples} "
            "samples of each column deck's supply energy (circuits.simulate.energy; ideal sources; the input "
            "drivers of a column deck charge that column's gates, so the sum over columns is the row drivers' "
            "energy)")
    else:
        energy_j, groups, energy_note = None, None, "the column decks saved no supply currents"
    per_synop = None if energy_j is None or synops == 0 else float(np.sum(energy)) / synops
    cost = {k: sum(records[c][k] for c in columns) for k in ("wall_s", "ngspice_s")}
    cpu = [records[c]["cpu_s"] for c in columns]
    analysis = [records[c]["ngspice_analysis_s"] for c in columns]
    n_decks = sum(len(records[c]["n_sources"]) for c in columns)
    n_col_samples = len(columns) * n_samples
    mean = lambda key: float(np.mean([np.mean(records[c][key]) for c in columns]))  # noqa: E731
    return {
        "n_inputs": n_in, "n_outputs": n_out, "n_columns": len(columns), "columns": columns,
        "n_samples": n_samples, "t_phase_s": T,
        "rmse_ns": bottom_up["rmse_ns"], "bias_ns": bottom_up["bias_ns"], "models": models,
        "energy_per_inference_j": energy_j, "energy_by_group_j": groups, "energy_note": energy_note,
        "energy_per_synop_j": per_synop, "n_synops_per_inference_simulated_columns": synops,
        "cost_s_per_column_sample": {
            "wall_s": cost["wall_s"] / n_col_samples,
            "cpu_s": None if any(c is None for c in cpu) else sum(cpu) / n_col_samples,
            "ngspice_s": cost["ngspice_s"] / n_col_samples,
            "ngspice_analysis_s": None if None in analysis else sum(analysis) / n_col_samples,
            "ngspice_setup_s_per_deck": None if None in analysis else (cost["ngspice_s"] - sum(analysis)) / n_decks,
            "note": ("wall: each batch of runs' wall time shared over its columns (parallel runs overlap); "
                     "cpu: this process and its local pool with every ngspice (null on a Dask cluster); "
                     "ngspice: one ngspice's own wall time per deck, summed (the serial cost), of which "
                     "ngspice_analysis_s the transient itself and the rest parsing and setting up the deck "
                     "(ngspice_setup_s_per_deck, paid once per deck of batch_size samples)"),
            "n_cached_decks": sum(records[c]["n_cached_decks"] for c in columns)},
        "spike_times": {"unit": "normalized to the firing window (x t_phase_s for seconds); null = no spike",
                        "columns": [{"column": c, "model": [None if t >= 1 else float(t) for t in t_bottom_up[:, k]],
                                     "spice": records[c]["t_spike"]} for k, c in enumerate(columns)]},
        "calibration": calibration,
        "mapping": {"current_scale": calibration["c_eff_over_c_m"], "discharger_factor": calibration["factor"],
                    "i_unit_a": unit_current_a(mapping["layers"][0]["c_m_f"], char.v_th_circ, T),
                    "n_switched_off": n_off,
                    "rule": ("weight currents scaled by C_eff / C_m; weights below the characterized current "
                             "floor switched off")},
        "sources_per_deck": {"shared": mean("n_sources"), "unshared": mean("n_sources_unshared")},
    }


