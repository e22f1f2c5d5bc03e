"""The headline experiment (method section 5): top-down vs bottom-up vs trace-fitted, against SPICE.

Stages, each saved under ``out_dir`` as soon as it finishes so that a rerun skips it:

0. layout            post-layout only, first (missing tools stop the run before any SPICE):
                     network layouts -> DRC, extraction, LVS (:mod:`._post_layout`)
1. characterization  sky130 DC sweeps -> lambda -> E_plus, E_minus, E_dis (or a given JSON)
   discharger        the discharger's design bias, one for every pipeline (:func:`stage_discharger`)
   neurons           each neuron's firing delay and capacitance against its layer's, network
                     and testbench, from runs without input (:func:`stage_neurons`)
2. dynamics          bottom-up circuit terms from one transient of a single-layer testbench of
                     the same netlist kind: C_eff (charge measurement), discharge rate, firing
                     delay, end-of-accumulation kick (:func:`stage_dynamics`); each synapse's
                     E carries its bias dependence (:func:`reversal_shapes`)
3. load_delay        the hidden outputs' delay per driven gate (:func:`stage_load_delay`)
   driven_kick       the kick of synapses driven by neurons, against the encoder's
                     (:func:`stage_driven_kick`)
4. train_<pipeline>  top-down: ideal model; bottom-up: DC E values + dynamics terms;
                     trace-fitted: the fitted parameters of
   trace_fit         every parameter fitted jointly to SPICE traces, after bottom-up's search:
                     by default every layer of the bottom-up network on the calibration
                     samples (:func:`network_traces`), or the dynamics testbench's
5. search_<pipeline> current scales against SPICE output spike times on the calibration samples
                     (training samples by default): top-down 2-D (scale_plus, scale_minus) from
                     (1, 1), the others a 1-D global k from 1; with ``discharger="searched"``
                     also a discharger factor (:func:`._search.search`: a Gauss-Newton model
                     of the spike-time errors in a trust region by default)
   trace_refit       after trace-fitted's search: its parameters refitted to its own network's
                     calibration runs (:func:`stage_trace_refit`), which predict its test run
6. evaluate_<pipeline> metrics on the test samples at the best scales, and the energy the
                     test run's supplies delivered (:func:`run_energy`; summary.json reports the
                     bottom-up network's); post-layout: also
   compare_netlists  the bottom-up network on the schematic netlist with the same gate biases
7. error budget, summary.json, then report.md / report.html

The result folder (:func:`run_validation`): locked while a run writes into it
(:class:`imcpnn.rundir.RunDirLock`: a second command on it stops with the owner's PID); config.json
is written only once the inputs check out (the characterization file reads, the post-layout tools
exist where the layout is still to do), so a refused option blocks no corrected rerun; a stage
whose JSON or one of its files (tables, the characterization copy, layout files) is missing or
corrupt is recomputed with a note naming the file (cached SPICE runs make that cheap); the
characterization is part of the run's identity by content hash (a different ``characterization``
file on a rerun is refused); ``elapsed_s`` is the wall time summed over every run of the folder,
interrupted ones included (stages/elapsed.json).

The data set and the network shape come from the config (``ValidationConfig.data``, ``hidden``,
``n_outputs``; Iris on 5-5-5 by default): :func:`load_data` loads them through pnn's loader and
checks them against the network (test split size, classes); nothing here is specific to Iris.

The protocol (:func:`protocol_text`, written into summary.json): every pipeline uses the same
netlist, I_D(V_G) tables, V_th_circ and discharger; the top-down pipeline reads no fitted model
parameter; nothing is calibrated on the samples it is reported on (unless ``calibration="test"``).

SPICE side (``ValidationConfig.netlist_kind``): by default the schematic netlist plus a
wire-capacitance estimate on every membrane and spike line
(:class:`imcpnn.circuits.netlist.network.ParasiticEstimate`: met1 line over the crossbar, 5 um synapse
pitch, C = c_area L w + 2 c_fringe L); or the plain schematic; or "post-layout", the netlist
extracted from the generated layout (:mod:`imcpnn.validation._post_layout`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import shutil
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from imcpnn.config import from_dict, to_dict
from imcpnn.errors import ConfigError, NetlistError, ResultsError
from imcpnn.pnn.data import DataConfig, DataSplits, load_dataset
from imcpnn.rundir import (RunClock, RunDirLock, file_sha256, holds_results, note,
                           write_json_atomic)
from imcpnn.validation._config import ValidationConfig, upgrade_config_data
from imcpnn.validation._fit import PARAMETER_NAMES, PhysicalParameters, TraceSet, fit_traces
from imcpnn.validation._metrics import (accuracy, compare_spike_tables, layer_metrics,
                                        membrane_rmse_v, model_spike_table, output_errors_ns,
                                        output_rmse_ns, output_times, worst_sample)
from imcpnn.validation._post_layout import (check_layout_tools, layout_networks, netlist_comparison,
                                            post_layout_network, post_layout_summary,
                                            recovered_capacitance)
from imcpnn.validation._search import search
from imcpnn.validation.report import (PIPELINES, check_summary, render_report, table_name,
                                      write_csv, write_json)

#: E_dis of the top-down model's parameter set: an ideal, current-independent discharger (its
#: current does not depend on the membrane voltage, E_dis -> infinity; the top-down LayerPhysics
#: ramps ideally and reads no E_dis). The largest E_dis PhysicalParameters accepts.
E_DIS_IDEAL = 1e4
#: |E| standing in for infinity (an ideal synapse) in the error budget's rows without the E term.
E_INFINITE = 1e6
#: Normalized time points (over one phase, 0 to 1) at which the evaluation compares model and
#: SPICE membranes (tables/membrane_<pipeline>.csv).
MEMBRANE_POINTS = 51


@dataclass(frozen=True)
class Context:
    """What every stage needs: config, folders, characterization, circuit objects, test data."""

    config: ValidationConfig
    out_dir: Path
    cache_dir: Path | None
    progress: bool
    char: dict
    network: object
    fit_network: object
    """The trace-fit testbench's single-layer network, of the same netlist kind."""
    schedule: object
    x_test: np.ndarray
    y_test: np.ndarray
    x_cal: np.ndarray
    """Samples the scale searches simulate (:func:`calibration_inputs`)."""
    n_classes: int
    """Classes of the data set (the first n_classes output neurons vote)."""
    data_config: DataConfig
    """pnn's DataConfig the samples came from (:func:`load_data`); the models train on it."""
    loaded_fit_network: object = None
    """That testbench with a second layer of off synapses loading its outputs
    (:func:`stage_load_delay`); None when the network has no hidden layer."""
    discharger_design: float = 1.0
    """Design factor k* on the discharger's unit current, the same for every pipeline
    (:func:`stage_discharger`); searched factors multiply it."""
    neuron_terms: list | None = None
    """Per layer the network's neurons' delay offsets and capacitance factors against their
    layer's mean (:func:`stage_neurons`); None where not measured."""
    testbench_terms: dict | None = None
    """The same of the testbench's neurons (:func:`stage_neurons`), for its fits."""
    load_delay_per_fanout: float | None = None
    """Later output crossing (units of T) per synapse gate a neuron's output drives
    (:func:`stage_load_delay`); None where not measured."""
    driven_kick: tuple | None = None
    """(dq_plus, dq_minus): the kick per synapse a layer driven by neurons adds to the testbench's
    (:func:`stage_driven_kick`); None where not measured."""
    executor: Any = None
    """Where the network batches run: None for the local process pool, or a
    ``distributed.Client`` (:func:`imcpnn.spice.run_many`). Not part of the config: the results
    and their cache keys do not depend on it."""
    max_workers: int | None = None
    """Size of the local process pool (None: one per CPU); unused with a Dask client."""

    search: Any = None
    """A replacement of the scale search, with :func:`imcpnn.validation.search`'s signature (see
    :func:`run_validation`); None: the config's search."""

    def runner(self) -> dict:
        """The keywords every SPICE batch of a stage takes: the cache, and where the runs go."""
        return {"cache_dir": self.cache_dir, "executor": self.executor, "max_workers": self.max_workers}


def _stage_path(out_dir: Path, name: str) -> Path:
    return out_dir / "stages" / f"{name}.json"


def _output_problem(out_dir: Path, rel: str) -> str | None:
    """Why the stage output ``out_dir/rel`` cannot be used, or None: missing, or not readable as
    what its suffix says (JSON, a CSV with rows, any other file non-empty)."""
    path = out_dir / rel
    if not path.is_file():
        return f"{path} is missing"
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            if pd.read_csv(path).empty:
                return f"{path} is corrupt (no rows)"
        elif path.stat().st_size == 0:
            return f"{path} is corrupt (empty)"
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError, pandas' errors
        return f"{path} is corrupt ({type(err).__name__}: {str(err)[:120]})"
    return None


def _saved_stage(out_dir: Path, name: str, outputs=(), check=None) -> tuple[dict | None, str | None]:
    """(result, None) when stage ``name`` is saved and whole, else (None, what is wrong) -- (None,
    None) when it was never saved. See :func:`cached_stage` for ``outputs`` and ``check``."""
    path = _stage_path(out_dir, name)
    if not path.is_file():
        return None, None
    try:
        result = json.loads(path.read_text())
        if not isinstance(result, dict):
            raise ValueError("not a JSON object")
        files = outputs(result) if callable(outputs) else outputs
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as err:
        return None, f"{path} is corrupt ({type(err).__name__}: {str(err)[:120]})"
    for rel in files:
        problem = _output_problem(out_dir, rel)
        if problem:
            return None, problem
    problem = check(result) if check is not None else None
    return (None, problem) if problem else (result, None)


def cached_stage(out_dir: Path, name: str, compute, progress: bool, outputs=(), check=None) -> dict:
    """Result of stage ``name``: read back if saved and whole, else computed and saved (atomically).

    ``outputs``: the files (relative to ``out_dir``) the stage writes besides its JSON, or a
    function of the stage result that lists them; ``check``: a function of the result that says
    what is wrong with it (None: nothing). When the stage JSON, one of its files or the check
    fails, the stage is computed again with a :class:`imcpnn.rundir.RunDirNote` naming the file
    (the SPICE cache makes that cheap), so that no rerun stops at a damaged file.
    """
    result, problem = _saved_stage(out_dir, name, outputs, check)
    if result is not None:
        return result
    if problem:
        note(f"{problem}; redoing stage {name!r}")
    if progress:
        print(f"[imcpnn] stage {name} ...", flush=True)
    result = compute()
    write_json(_stage_path(out_dir, name), result)
    return result


# ------------------------------------------------------------------------------------- stages
#: The characterization the run uses, relative to the result folder.
CHAR_JSON = "characterization/characterization.json"


def _recorded_characterization(out_dir: Path) -> dict | None:
    """What the result folder says its characterization was: ``source`` ("given", "simulated" or
    None = unknown, a folder of an older imcpnn), ``given`` (the file's path then) and ``sha256``
    (of its bytes); None when the folder has none yet."""
    stage, _ = _saved_stage(out_dir, "characterization")
    if stage is not None and stage.get("sha256"):
        return {"source": stage.get("source"), "given": stage.get("given"), "sha256": stage["sha256"]}
    if _output_problem(out_dir, CHAR_JSON) is None:
        return {"source": None, "given": None, "sha256": file_sha256(out_dir / CHAR_JSON)}
    return None


def check_characterization_input(out_dir: Path, given: str | Path | None) -> None:
    """Refuse a ``characterization`` file that is missing, unreadable or lacks a key, or that
    differs (by content) from the one the results in ``out_dir`` were computed with; also refuse
    leaving the option out where the folder's run had it. Raises ConfigError; writes nothing."""
    from imcpnn.circuits.characterization.fit import read_characterization

    given_sha = None
    if given is not None:
        read_characterization(given, "--characterization")
        given_sha = file_sha256(given)
    recorded = _recorded_characterization(out_dir)
    if recorded is None:
        return
    sha = recorded["sha256"]
    if given is not None and given_sha != sha:
        was = (f"--characterization {recorded['given']}" if recorded["source"] == "given" else
               "simulated by its first run" if recorded["source"] == "simulated" else
               f"{out_dir / CHAR_JSON}")
        raise ConfigError(
            f"--characterization {given} (sha256 {given_sha[:12]}) differs from the characterization "
            f"the results in {out_dir} were computed with ({was}, sha256 {sha[:12]}); give that "
            "one again, or use another --out for the new file")
    if given is None and recorded["source"] == "given":
        raise ConfigError(
            f"{out_dir} was run with --characterization {recorded['given']} (sha256 {sha[:12]}); "
            "its results depend on it: rerun with that option, or use another --out")


def stage_characterization(config: ValidationConfig, out_dir: Path, given: Path | None,
                           cache_dir, progress: bool) -> dict:
    """characterization.json (copied from ``given`` or simulated) and its figures under out_dir.

    The stage records the file's SHA-256: a copy in the folder that went missing or changed is
    restored (copied again, or simulated again: the SPICE cache answers), and a simulation that no
    longer gives the recorded file raises ResultsError, since the later stages used the old one.
    :func:`check_characterization_input` compares a ``given`` file with the record first.
    """
    from imcpnn.circuits.characterization.sweeps import CharacterizationConfig, characterize, write_outputs

    char_dir = out_dir / "characterization"
    recorded = _recorded_characterization(out_dir)

    def compute():
        if given is not None:
            if not Path(given).is_file():
                raise ConfigError(f"characterization file {given} does not exist; create it with "
                                  "`imcpnn characterize --out DIR` or leave the option out")
            char_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / CHAR_JSON
            if not (target.exists() and target.samefile(given)):  # given may be the folder's copy
                shutil.copy(given, target)
            for png in Path(given).parent.glob("*.png"):
                if not ((char_dir / png.name).exists() and (char_dir / png.name).samefile(png)):
                    shutil.copy(png, char_dir / png.name)
        else:
            cfg = CharacterizationConfig(corner=config.corner, temp_c=config.temp_c)
            summary, fits, curves = characterize(cfg, cache_dir=cache_dir, progress=progress)
            write_outputs(char_dir, summary, fits, curves, cfg)
        sha = file_sha256(out_dir / CHAR_JSON)
        if recorded is not None and sha != recorded["sha256"]:
            raise ResultsError(
                f"{out_dir / CHAR_JSON} came out different (sha256 {sha[:12]}) from the one the later "
                f"stages in {out_dir} were computed with ({recorded['sha256'][:12]}): they are stale; "
                f"use another --out, or delete {out_dir} to start afresh")
        return {"json": CHAR_JSON,
                "figures": sorted(f"characterization/{p.name}" for p in char_dir.glob("*.png")),
                "source": "simulated" if given is None else "given",
                "given": None if given is None else str(given), "sha256": sha}

    def check(result):
        sha = result.get("sha256")
        if sha and file_sha256(out_dir / result["json"]) != sha:
            return (f"{out_dir / result['json']} differs from the one the run used "
                    f"(sha256 {sha[:12]})")
        return None

    return cached_stage(out_dir, "characterization", compute, progress,
                         outputs=lambda r: [r["json"], *r["figures"]], check=check)


# ---------------------------------------------------------------------------------- data
def run_data_config(config: ValidationConfig, n_test_split: int) -> DataConfig:
    """pnn's DataConfig of the run: ``config.data`` split by ``config.seed``, the test split
    (``n_test_split`` samples) cut to ``config.n_test`` where it holds more (no cut otherwise)."""
    return config.data.loader_config(config.seed,
                                     config.n_test if config.n_test < n_test_split else None)


def check_data(config: ValidationConfig, splits: DataSplits) -> None:
    """Refuse (ConfigError) a data set the configured network cannot take: more test samples
    asked than its test split holds, fewer outputs than classes."""
    name = config.data.dataset
    if config.n_test > len(splits.y_test):
        raise ConfigError(f"ValidationConfig.n_test={config.n_test} is more than the "
                          f"{len(splits.y_test)} test samples of {name}; ask for at most that many")
    if config.n_outputs < splits.n_classes:
        raise ConfigError(f"ValidationConfig.n_outputs={config.n_outputs} is fewer than the "
                          f"{splits.n_classes} classes of {name}; give at least {splits.n_classes}")


def load_data(config: ValidationConfig) -> tuple[DataConfig, DataSplits]:
    """(pnn DataConfig, DataSplits) of the run, through pnn's loader (:func:`run_data_config`),
    checked against the network (:func:`check_data`). Raises ConfigError, or ToolNotFoundError
    where the data set's files are missing."""
    whole = config.data.loader_config(config.seed)
    splits = load_dataset(whole)
    check_data(config, splits)
    chosen = run_data_config(config, len(splits.y_test))
    return chosen, (splits if chosen == whole else load_dataset(chosen))


def network_widths(config: ValidationConfig, n_in: int) -> tuple[int, ...]:
    """Neurons per layer of the validated network, inputs first: (n_in, *hidden, n_outputs)."""
    return (n_in, *config.hidden, config.n_outputs)


def _train_config(config: ValidationConfig, data: DataConfig, physics):
    """The TrainConfig of one pipeline's model: data ``data`` (pnn's DataConfig), the config's
    hidden widths and outputs, LayerPhysics ``physics``."""
    from imcpnn.pnn import ModelConfig, OptimConfig, TrainConfig

    arch = "mlp:" + ",".join(str(w) for w in config.hidden)
    return TrainConfig(
        data=data, model=ModelConfig(arch=arch, n_outputs=config.n_outputs, physics=physics),
        optim=OptimConfig(lr=config.lr, batch_size=config.batch_size, epochs=config.epochs),
        seed=config.seed)


# ---------------------------------------------------------------------------------- models
def ideal_parameters(config: ValidationConfig, char: dict) -> PhysicalParameters:
    """The top-down pipeline's model: |E| = e_ideal, ideal ramp, no circuit term. It reads only
    design data from the characterization (V_th_circ, for the membrane plots), no fitted one."""
    return PhysicalParameters(e_plus=config.e_ideal, e_minus=-config.e_ideal, e_dis=E_DIS_IDEAL,
                              current_scale=1.0, v_th_circ_v=char["v_th_circ"])


def layer_physics(pipeline: str, params: PhysicalParameters, discharger_scale: float = 1.0, driven=None):
    """The :class:`imcpnn.pnn.LayerPhysics` a pipeline trains and predicts with.

    Top-down: the ideal model (E = +-e_ideal, ideal ramp reaching threshold in one window, no
    delay, no kick), whatever the discharger does or ``driven`` holds. Bottom-up and
    trace-fitted: every circuit term of ``params``, and the driven kick ``driven`` (dq_plus,
    dq_minus; :func:`driven_kicks`) of the layers after the first; their model knows the
    discharger current, so ``discharger_scale`` multiplies the discharge rate.
    """
    from imcpnn.pnn import LayerPhysics

    if pipeline == "top_down":
        return LayerPhysics(e_plus=params.e_plus, e_minus=params.e_minus)
    return budget_physics(params, BUDGET_TERMS[-1][1], discharger_scale, driven)


def train_pipeline_model(ctx: Context, pipeline: str, params: PhysicalParameters, *,
                         variation=None, epochs: int | None = None, lr: float | None = None,
                         loss: dict | None = None, init_weights=None):
    """Train (or resume, or reload) the model of ``pipeline`` with :func:`layer_physics`;
    ``variation`` (an :class:`imcpnn.pnn.VariationModel`) trains it hardware-aware (a fresh chip
    per mini-batch); ``epochs``/``lr`` replace the config's, ``loss`` fields of the LossConfig;
    ``init_weights`` fine-tunes from those dense weights."""
    from imcpnn.pnn import train

    cfg = _train_config(ctx.config, ctx.data_config,
                        layer_physics(pipeline, params, driven=driven_kicks(ctx, pipeline)))
    optim = dataclasses.replace(cfg.optim, epochs=epochs or cfg.optim.epochs, lr=lr or cfg.optim.lr)
    cfg = dataclasses.replace(cfg, optim=optim, variation=variation,
                              loss=dataclasses.replace(cfg.loss, **(loss or {})))
    return train(cfg, ctx.out_dir / f"train_{pipeline}", progress=ctx.progress,
                 init_weights=init_weights).model


#: Weights (inputs x neurons) of the characterization testbench layer (:func:`fit_testbench`):
#: row 0 is the bias input; the four neurons go from mostly excitatory to clearly inhibitory.
TESTBENCH_WEIGHTS = ((0.30, 0.45, 0.60, 0.50),
                     (0.25, 0.35, -0.20, 0.30),
                     (0.20, -0.15, 0.40, -0.35),
                     (0.15, 0.30, -0.30, 0.40),
                     (0.10, -0.25, 0.25, -0.30))
#: Added to ``ValidationConfig.seed`` to seed the testbench patterns: a random stream of their own,
#: apart from the data split's and the initialisation's.
TESTBENCH_SEED_OFFSET = 1000
#: Latest input spike time of a testbench pattern (normalized), so every active input lands
#: inside the accumulation window.
TESTBENCH_LAST_INPUT = 0.95
#: Probability that a testbench input stays silent (t = 1) in a pattern.
TESTBENCH_P_SILENT = 0.3


def fit_testbench(config: ValidationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Input times (n_patterns, 5) and weights (5, 4) of the characterization testbench.

    Input 0 is the bias (t = 0); the others spike at random times in [0,
    :data:`TESTBENCH_LAST_INPUT`] or, with probability :data:`TESTBENCH_P_SILENT`, not at all
    (t = 1), so that the number of active synapses per neuron varies (it sets the
    end-of-accumulation charge kick). The four neurons see different weight mixes
    (:data:`TESTBENCH_WEIGHTS`) so that E_plus and E_minus both shape the waveforms, and end the
    accumulation between about 0 and 0.9 (the network's range), most of them spiking inside the
    firing window. The testbench is a circuit characterization: it does not depend on the data set.
    """
    w = np.array(TESTBENCH_WEIGHTS)
    rng = np.random.default_rng(config.seed + TESTBENCH_SEED_OFFSET)
    t_in = rng.uniform(0.0, TESTBENCH_LAST_INPUT, (config.fit.n_patterns, w.shape[0]))
    t_in[rng.uniform(size=t_in.shape) < TESTBENCH_P_SILENT] = 1.0
    t_in[:, 0] = 0.0
    return t_in, w


def accumulation_traces(membranes: pd.DataFrame, t_eval: np.ndarray, layer: int,
                        n_samples: int, n_out: int) -> np.ndarray:
    """SPICE membrane (V) of one layer on the normalized grid t_eval: (n_samples, n_out, n_times)."""
    part = membranes[membranes["layer"] == layer]
    out = np.full((n_samples, n_out, len(t_eval)), np.nan)
    for (sample, neuron), trace in part.groupby(["sample", "neuron"]):
        trace = trace.sort_values("t")
        out[int(sample), int(neuron)] = np.interp(t_eval, trace["t"], trace["v_mem_v"])
    if np.isnan(out).any():
        raise ResultsError("SPICE membrane table lacks some (sample, neuron) traces; rerun with "
                           "save_membranes=True")
    return out


def testbench_traces(ctx: Context) -> TraceSet:
    """SPICE traces of the characterization testbench (:func:`fit_testbench`): one batched run of
    a single layer of the network's netlist kind, weights mapped with the design C_m, discharger
    at its design bias (a cache hit after the first call); each synapse carries its E shape
    (:func:`reversal_shapes`) at the current the testbench maps its weight to, each neuron its
    delay offset and capacitance factor (:attr:`Context.testbench_terms`) where measured."""
    from imcpnn.circuits.simulate.run import simulate_network
    from imcpnn.circuits.simulate.weights import CurrentScales

    t_in, w = fit_testbench(ctx.config)
    run = simulate_network([w], t_in, ctx.char, network=ctx.fit_network, schedule=ctx.schedule,
                           corner=ctx.config.corner, temp_c=ctx.config.temp_c,
                           batch_size=ctx.config.spice_batch, **ctx.runner(),
                           discharger_scales=[ctx.discharger_design], progress=ctx.progress)
    t_eval = np.linspace(0.0, 1.0, ctx.config.fit.n_times)
    spikes = run.spikes.sort_values(["sample", "neuron"])
    shape = (len(t_in), w.shape[1])
    e_shapes = reversal_shapes(ctx.char, w, ctx.fit_network.membrane_f(0), ctx.schedule.t_phase_s,
                               CurrentScales())
    own = ctx.testbench_terms
    return TraceSet(t_in, w, t_eval, accumulation_traces(run.membranes, t_eval, 0, *shape),
                    np.nan_to_num(spikes["t_spike"].to_numpy().reshape(shape), nan=1.0),
                    spikes["spiked"].to_numpy().reshape(shape), v_reset_v=ctx.char["v0"],
                    **dict(zip(("e_shape_plus", "e_shape_minus"), e_shapes or (None, None))),
                    delay_offset=None if own is None else np.array(own["delay_offset"]),
                    c_factor=None if own is None else np.array(own["c_factor"]),
                    coupling=own_coupling(own))


def reversal_shapes(char: dict, w: np.ndarray, c_m_f: float, t_phase_s: float,
                    scales) -> tuple[np.ndarray, np.ndarray] | None:
    """Bias dependence of each synapse's reversal potential, relative to the characterization's
    single E: (E_plus(I) / E_plus, E_minus(I) / E_minus), each shaped like ``w`` (n_in, n_out).

    Channel-length modulation depends on the bias (the characterization's lambda against current,
    ``lambda_vs_current``), and a synapse's current follows its weight: I = |w| I_1 s with the
    unit current I_1 = C_m V_th_circ / T of a membrane of ``c_m_f`` and the current ``scales``.
    A model multiplies its scalar E by these shapes: the bottom-up model's are the DC values
    themselves, the trace fit's keep the DC shape and fit the level. Entries of the other sign
    (and w = 0) are 1. None for a characterization that predates the curves.
    """
    from imcpnn.circuits.characterization.fit import Characterization
    from imcpnn.circuits.simulate.weights import unit_current_a, weight_currents_a

    if not char.get("lambda_vs_current"):
        return None
    c = Characterization.from_dict(char)
    i_n, i_p = weight_currents_a(w, unit_current_a(c_m_f, c.v_th_circ, t_phase_s), scales)
    return (np.where(w > 0, c.synapse_reversal(i_n, "n") / c.e_plus, 1.0),
            np.where(w < 0, c.synapse_reversal(i_p, "p") / c.e_minus, 1.0))


#: Smallest factor a ``--discharger searched`` search may try on the design bias. The design current
#: is, by its definition (stage ``discharger``), the weakest at which a neuron with zero net input
#: still crosses threshold by the window's end; below it such neurons, and all the inhibited ones,
#: stay silent, in the model and in SPICE alike. Silent neurons agree trivially (both count at the
#: window end), so an unbounded search drifts towards a silent output layer: RMSE 0, chance
#: accuracy. The bound keeps the search among circuits that compute.
DISCHARGER_SEARCH_MIN = 1.0

#: Discharger factors (on the unit current C_m V_th_circ / T) simulated to place the design bias.
DISCHARGER_GRID = (1.2, 1.35, 1.5, 1.7, 2.0, 2.5, 3.3)
#: Larger factors, simulated only when fewer than two of :data:`DISCHARGER_GRID` fire inside the
#: window: a slow firing path (a cold corner's sensing stage) leaves the ramp less of the window.
DISCHARGER_EXTENSION = (5.0, 8.0, 12.0)


def stage_discharger(ctx: Context) -> dict:
    """The discharger's design bias, one for every pipeline (no model parameter, no network
    search): the factor k* on the unit current C_m V_th_circ / T at which a neuron with no input
    crosses threshold exactly at the end of its firing window ("chosen so that a neuron with no
    input does not fire", method section 4).

    Measured on the testbench layer (same netlist kind) with no input spike at the factors of
    :data:`DISCHARGER_GRID` (then :data:`DISCHARGER_EXTENSION` if fewer than two fire), in
    parallel (:func:`no_input_firing`): the ramp time of a fixed voltage swing scales as 1/k, so
    the spike times follow t(k) = t_0 + K / k (t_0 the firing-path delay); a least-squares fit
    over the neurons that fire gives k* = K / (1 - t_0).
    """

    def firing(grid, w: np.ndarray) -> tuple[list[float], list[tuple[float, float]]]:
        ks, rows = no_input_firing(ctx, ctx.fit_network, [w], grid)
        return ks, [(k, t) for k, _, _, t in rows]

    def compute():
        w = fit_testbench(ctx.config)[1]
        ks, rows = firing(DISCHARGER_GRID, w)
        if len({k for k, _ in rows}) < 2:
            more, more_rows = firing(DISCHARGER_EXTENSION, w)
            ks, rows = ks + more, rows + more_rows
        if len({k for k, _ in rows}) < 2:
            raise ConfigError(
                f"a neuron with no input fires at fewer than two of the discharger factors {ks}: "
                "the discharger cannot reach the sensing threshold in one phase at this corner; "
                "check vb_sense_v, the discharger size or the characterized gate range")
        k, t = np.array(rows).T
        k_star, t0, big_k, rms = discharger_factor(k, t)
        return {"factor": k_star, "t_0": t0, "K": big_k, "fit_rms_ns": rms * ctx.schedule.t_phase_s * 1e9,
                "grid": [list(map(float, r)) for r in rows]}

    return cached_stage(ctx.out_dir, "discharger", compute, ctx.progress)


def no_input_firing(ctx: Context, network, weights, grid) -> tuple[list[float], list[tuple]]:
    """(the factors of ``grid`` at which ``weights`` map, (factor, layer, neuron, spike time) of
    every neuron firing inside its window): ``network`` without any input spike, so that every
    membrane enters its firing phase at V0, its discharger at each factor (absolute, on the unit
    current C_m V_th_circ / T), one batch of one sample per factor, in parallel."""
    from imcpnn.circuits.simulate.run import simulate_scales
    from imcpnn.circuits.simulate.weights import CurrentScales

    t_in = np.ones((1, weights[0].shape[0]))  # no input spike: the membranes stay at V0
    ks = [k for k in grid if mappable(ctx, weights, CurrentScales(), k / ctx.discharger_design, network)]
    runs = simulate_scales(weights, t_in, ctx.char, [CurrentScales()] * len(ks), network=network,
                           schedule=ctx.schedule, corner=ctx.config.corner, temp_c=ctx.config.temp_c,
                           discharger_scales=ks, batch_size=1, **ctx.runner(),
                           progress=ctx.progress, save_membranes=False) if ks else []
    return ks, [(k, int(row.layer), int(row.neuron), float(row.t_spike)) for k, r in zip(ks, runs)
                for row in r.spikes.itertuples() if row.spiked and 0 < row.t_spike < 1]


def stage_neurons(ctx: Context) -> dict:
    """How each neuron of the validated network fires against the others of its layer.

    The circuit terms come from the testbench's neurons, and a layer's mapping uses its mean
    membrane capacitance; post-layout every neuron has its own extracted wiring (membrane,
    sensing node, output line), so each fires with its own delay and ramp. Measured without any
    data sample: the network's netlist with every weight 0 (every synapse off) and no input
    spike, so that each membrane enters its firing phase at V0, the discharger at the factors of
    :data:`DISCHARGER_GRID` (and the extension where the discharger stage needed it). A
    least-squares fit t = t_0 + K / k per neuron (:func:`discharger_factor`) gives its firing
    delay t_0 and ramp time K, K proportional to its membrane capacitance (every discharger of
    a layer has one bias). Against its layer's mean, neuron j gets the delay offset
    t_0,j - mean t_0 and the capacitance factor c_j = mean K / K_j: its discharge rate and its
    column of weights (the charge its synapses deliver, over its own capacitance) scale by c_j.
    A neuron that fires at fewer than two factors keeps offset 0 and factor 1 (``n_unfitted``).
    On a schematic netlist every neuron of a layer is the same: offset 0 and factor 1. Each layer
    also gets its membranes' ``coupling`` (:func:`coupling_of`; None on a schematic): these runs
    move every membrane alike, so they see each neuron's own capacitance without its neighbours.
    """

    def layer_terms(network, grid) -> list[dict]:
        zeros = [np.zeros((a, b)) for a, b in zip(network.widths[:-1], network.widths[1:])]
        rows = no_input_firing(ctx, network, zeros, grid)[1]
        return [{**neuron_offsets([(k, t) for k, l, n, t in rows if l == layer and n == j] for j in range(width)),
                 "coupling": None if (k := coupling_of(network, layer)) is None else k.tolist()}
                for layer, width in enumerate(network.widths[1:])]

    def compute():
        extended = any(k > max(DISCHARGER_GRID) for k, _ in stage_discharger(ctx)["grid"])
        grid = DISCHARGER_GRID + (DISCHARGER_EXTENSION if extended else ())
        layers, (testbench,) = layer_terms(ctx.network, grid), layer_terms(ctx.fit_network, grid)
        t_ns = ctx.schedule.t_phase_s * 1e9
        offsets = np.concatenate([r["delay_offset"] for r in layers]) * t_ns
        factors = np.concatenate([r["c_factor"] for r in layers])
        couplings = [np.abs(np.array(r["coupling"])) for r in layers if r["coupling"] is not None]
        return {"layers": layers, "testbench": testbench, "grid": list(grid),
                "n_unfitted": sum(r["n_unfitted"] for r in layers),
                "coupling_max": max((float((c - np.diag(np.diag(c))).max()) for c in couplings), default=0.0),
                "delay_offset_ns_rms": float(np.sqrt(np.mean(offsets ** 2))),
                "delay_offset_ns_range": [float(offsets.min()), float(offsets.max())],
                "c_factor_range": [float(factors.min()), float(factors.max())]}

    return cached_stage(ctx.out_dir, "neurons", compute, ctx.progress)


def coupling_of(network, layer: int) -> np.ndarray | None:
    """The coupling matrix K of ``layer``'s membranes (:meth:`Network.membrane_coupling
    <imcpnn.circuits.netlist.network.Network.membrane_coupling>`: the extracted capacitances
    between neighbouring membranes over each one's own), None where it is zero (a schematic)."""
    k = network.membrane_coupling(layer)
    return k if np.any(k) else None


def own_coupling(own: dict | None) -> np.ndarray | None:
    """The coupling matrix (float64) of one layer's :func:`stage_neurons` terms, None without one."""
    return None if own is None or own.get("coupling") is None else np.array(own["coupling"], dtype=float)


def neuron_offsets(points) -> dict:
    """One layer's neurons against their mean (:func:`stage_neurons`): ``points`` per neuron its
    (factor, spike time) firing points; returns ``delay_offset`` t_0,j - mean t_0 and
    ``c_factor`` mean K / K_j (0 and 1 for a neuron with fewer than two factors), the fits'
    ``t_0`` and ``K`` (None there) and ``n_unfitted``."""
    fits = [discharger_factor(*np.array(p).T)[1:3] if len({k for k, _ in p}) >= 2 else (np.nan, np.nan)
            for p in map(list, points)]
    t0, big_k = np.array(fits, dtype=float).reshape(-1, 2).T
    fitted = np.isfinite(t0)
    delay = np.where(fitted, t0 - np.nanmean(t0), 0.0) if fitted.any() else np.zeros(len(t0))
    factor = np.where(fitted, np.nanmean(big_k) / big_k, 1.0) if fitted.any() else np.ones(len(t0))
    return {"delay_offset": delay.tolist(), "c_factor": factor.tolist(),
            "t_0": [float(x) if ok else None for x, ok in zip(t0, fitted)],
            "K": [float(x) if ok else None for x, ok in zip(big_k, fitted)], "n_unfitted": int((~fitted).sum())}


def neuron_terms(ctx: Context, pipeline: str) -> list | None:
    """Per layer the delay offsets and capacitance factors a circuit model gives the network's
    neurons (:func:`stage_neurons`); None for top-down (ideal model) or where not measured."""
    if pipeline == "top_down" or ctx.neuron_terms is None:
        return None
    return ctx.neuron_terms


def discharger_factor(k: np.ndarray, t: np.ndarray) -> tuple[float, float, float, float]:
    """(k*, t_0, K, rms): least squares t = t_0 + K / k over the firing points (k, t), each
    (n,), and the factor at which the spike comes at the window end, k* = K / (1 - t_0)."""
    k, t = np.asarray(k, float), np.asarray(t, float)
    (t0, big_k), *_ = np.linalg.lstsq(np.stack([np.ones_like(k), 1 / k], axis=1), t, rcond=None)
    rms = float(np.sqrt(np.mean((t0 + big_k / k - t) ** 2)))
    return float(big_k / (1 - t0)), float(t0), float(big_k), rms


#: Circuit terms of the bottom-up model beyond the DC E values, measured on the testbench.
FIRING_TERMS = ("t_delay", "q_plus", "q_minus")


def stage_dynamics(ctx: Context) -> dict:
    """Bottom-up circuit terms, each measured from the testbench with the DC E values held:

    1. C_eff (charge measurement): the accumulation membrane traces against the known currents
       (membrane residuals only, current scale s = C_m / C_eff free), so C_eff = C_m / s;
    2. discharge rate r = k* s: the discharger draws its design current k* C_m V_th_circ / T
       (:func:`stage_discharger`), which moves a membrane of C_eff at r = k* C_m / C_eff;
    3. firing-path delay t_delay and end-of-accumulation kick q_plus, q_minus: the spike times
       (spike residuals only) with everything above held.
    """

    def compute():
        traces = testbench_traces(ctx)
        dc = dc_parameters(ctx.char)
        everything_but = lambda *free: tuple(n for n in PARAMETER_NAMES if n not in free)  # noqa: E731
        charge = fit_traces(traces, dc, fixed=everything_but("current_scale"), residuals="membrane",
                            sigma_v_v=ctx.config.fit.sigma_v_v)
        s = charge.parameters.current_scale
        held = PhysicalParameters(**{**to_dict(dc), "current_scale": s,
                                     "dis_rate": s * ctx.discharger_design})
        firing = fit_traces(traces, held, fixed=everything_but(*FIRING_TERMS), residuals="spikes",
                            sigma_t=ctx.config.fit.sigma_t)
        c_m = ctx.fit_network.membrane_f(0)
        return {"parameters": to_dict(firing.parameters),
                "stderr": {"current_scale": charge.stderr["current_scale"],
                           **{n: firing.stderr[n] for n in FIRING_TERMS}},
                "c_m_design_f": c_m, "c_eff_f": c_m / s,
                "rms_v_membrane_mv": charge.rms_v_membrane_mv,
                "rms_t_spike_ns": firing.rms_t_spike * ctx.schedule.t_phase_s * 1e9,
                "n_spiking": int(np.sum(traces.spiked)), "n_patterns": int(len(traces.t_in))}

    return cached_stage(ctx.out_dir, "dynamics", compute, ctx.progress)


def stage_load_delay(ctx: Context) -> dict:
    """How much later a neuron's measured spike comes when its output drives synapse gates.

    A hidden neuron's output line drives the switch gates of the next layer's synapses (fan-out
    F = that layer's width); the characterization testbench's outputs drive nothing. The same
    testbench (same patterns, weights and discharger) is simulated once more with a second layer
    of F neurons whose synapses are all off (weight 0, :attr:`Context.loaded_fit_network`; its own
    extracted layout post-layout): their gates load each first-layer output and nothing else
    changes. The mean shift of the crossing over the neurons that spike in both runs, divided by
    F, is the delay per driven gate (assumed linear in F). It is a readout term: it moves where
    the circuit's spike is measured, not when the next layer's synapses turn on, so it is added
    to a hidden layer's reported times and not to the inputs of the next layer (the output layer,
    which drives nothing, is unchanged by it). ``per_fanout`` is None when no layer drives another.
    """
    from imcpnn.circuits.simulate.run import simulate_network

    loaded = ctx.loaded_fit_network
    fan_out = loaded.widths[-1] if loaded is not None else 0

    def compute():
        if loaded is None:
            return {"fan_out": 0, "per_fanout": None, "n_pairs": 0, "mean_shift_ns": None}
        t_in, w = fit_testbench(ctx.config)
        run = simulate_network([w, np.zeros((w.shape[1], fan_out))], t_in, ctx.char, network=loaded,
                               schedule=ctx.schedule, corner=ctx.config.corner, temp_c=ctx.config.temp_c,
                               batch_size=ctx.config.spice_batch, **ctx.runner(),
                               discharger_scales=[ctx.discharger_design], progress=ctx.progress)
        first = run.spikes[run.spikes["layer"] == 0].sort_values(["sample", "neuron"])
        t_loaded = first["t_spike"].to_numpy().reshape(len(t_in), w.shape[1])
        spiked_loaded = first["spiked"].to_numpy().reshape(t_loaded.shape)
        bare = testbench_traces(ctx)
        both = spiked_loaded & bare.spiked
        shift = float(np.mean((t_loaded - bare.t_spike)[both])) if both.any() else 0.0
        return {"fan_out": fan_out, "per_fanout": shift / fan_out, "n_pairs": int(both.sum()),
                "mean_shift_ns": shift * ctx.schedule.t_phase_s * 1e9,
                "c_m_f": [loaded.membrane_f(0), ctx.fit_network.membrane_f(0)]}

    return cached_stage(ctx.out_dir, "load_delay", compute, ctx.progress)


#: Discharger factor (on the design k*) of the driven-kick probe (:func:`stage_driven_kick`). An
#: inhibited membrane cannot rise past the supply, so the latest a first-layer neuron can fire is
#: bounded; at this factor a neuron inhibited up to the supply stays silent (the probe's reference
#: sample has no hidden spike) and one inhibited a little fires late in the window.
DRIVEN_PROBE_DISCHARGER = 1.3
#: First-layer weights of the driven probe: input 0 inhibits up to the supply (sample 0, silent),
#: input 1 a little (sample 1: every first-layer neuron fires late).
DRIVEN_PROBE_SILENCE, DRIVEN_PROBE_DELAY = -1.5, -0.3
#: Weights of the probed synapses: probed neuron j has every input at ``DRIVEN_PROBE_WEIGHTS[j % 4]``.
DRIVEN_PROBE_WEIGHTS = (0.2, -0.2, 0.5, -0.5)
#: Largest kick per synapse (normalized) the probe's root search considers.
DRIVEN_PROBE_MAX_Q = 0.05


def stage_driven_kick(ctx: Context, params: PhysicalParameters) -> dict:
    """How much more a synapse kicks the membrane when its input is a neuron's output stage
    instead of the input encoder: the term ``dq_plus_driven``, ``dq_minus_driven`` of
    :class:`imcpnn.pnn.LayerPhysics` for every layer after the first.

    The end-of-accumulation kick (:func:`stage_dynamics`) is fitted on the testbench, whose
    inputs are the encoder's sources. A hidden layer's outputs drive the next layer's switches
    with slower edges, and the charge their channels inject into the membrane differs. Two probes
    measure the kick per synapse the same way, at the discharger factor
    :data:`DRIVEN_PROBE_DISCHARGER`, each with two samples:

    - driven: the loaded testbench (:attr:`Context.loaded_fit_network`). Its first layer is silent
      in sample 0 and fires late in sample 1. Each second-layer neuron has all its synapses at one
      weight of :data:`DRIVEN_PROBE_WEIGHTS`.
    - encoder: the testbench layer, its synapses at the same weights, with no input in sample 0
      and every input at the driven first layer's mean spike time in sample 1.

    Per probed neuron, q solves ``t_model(q; 1) - t_model(0; 0) = t_spice(1) - t_spice(0)``, with
    ``params`` (the bottom-up model, discharge rate at the probe's factor), every synapse's E,
    and the layer's SPICE input times: the driven layer's are the first layer's spike times less
    their load delay. The difference of one neuron's two samples leaves out its delay and what
    the discharger calibration holds; the model integrates the short conduction itself. The kick
    per sign is the mean over its neurons; the term is driven minus encoder.

    **Returns:** {"dq_plus", "dq_minus" (None where not measured), "encoder", "driven" (the kicks
    per sign), "per_neuron", "t_input", "factor", "note"}.
    """
    from imcpnn.circuits.simulate.run import simulate_network

    loaded = ctx.loaded_fit_network

    def run(network, weights, t_in):
        return simulate_network(weights, t_in, ctx.char, network=network, schedule=ctx.schedule,
                                corner=ctx.config.corner, temp_c=ctx.config.temp_c, batch_size=2, **ctx.runner(),
                                discharger_scales=[DRIVEN_PROBE_DISCHARGER * ctx.discharger_design],
                                save_supplies=False, progress=ctx.progress)

    def probed(n_in: int, n_out: int) -> np.ndarray:
        return np.tile([DRIVEN_PROBE_WEIGHTS[j % len(DRIVEN_PROBE_WEIGHTS)] for j in range(n_out)], (n_in, 1))

    def compute():
        if loaded is None:
            return {"dq_plus": None, "dq_minus": None, "note": "no hidden layer: no layer is driven by neurons"}
        first = np.zeros((loaded.widths[0], loaded.widths[1]))
        first[0], first[1] = DRIVEN_PROBE_SILENCE, DRIVEN_PROBE_DELAY
        t_first = np.ones((2, loaded.widths[0]))
        t_first[0, 0] = t_first[1, 1] = 0.0
        second = probed(loaded.widths[1], loaded.widths[2])
        driven = run(loaded, [first, second], t_first)
        hidden = probe_times(driven.spikes, 0, 2, loaded.widths[1])
        if not (np.isnan(hidden[0]).all() and np.isfinite(hidden[1]).all()):
            return {"dq_plus": None, "dq_minus": None, "t_hidden": hidden.tolist(),
                    "note": "the driven probe's first layer did not stay silent in sample 0 and fire in sample 1"}
        t_in = np.vstack([np.ones(loaded.widths[1]), hidden[1] - (ctx.load_delay_per_fanout or 0.0) * loaded.widths[2]])
        t_late = float(np.mean(t_in[1]))
        n_enc = ctx.fit_network.widths[0]
        encoder_w = probed(n_enc, ctx.fit_network.widths[1])
        encoder_w[0] = 0.0  # the testbench's input 0 is its bias input; the probe leaves it off
        t_enc = np.ones((2, n_enc))
        t_enc[1, 1:] = t_late
        encoder = run(ctx.fit_network, [encoder_w], t_enc)
        kicks = {name: probe_kicks(ctx, params, w, t, probe_times(r.spikes, layer, 2, w.shape[1]), c_m,
                                   coupling_of(network, layer))
                 for name, w, t, r, layer, c_m, network in (
                     ("encoder", encoder_w, t_enc, encoder, 0, ctx.fit_network.membrane_f(0), ctx.fit_network),
                     ("driven", second, t_in, driven, 1, loaded.membrane_f(1), loaded))}
        per_sign = {name: kick_per_sign(w, k) for name, w, k in (
            ("encoder", encoder_w, kicks["encoder"]), ("driven", second, kicks["driven"]))}
        dq = {sign: (None if None in (per_sign["driven"][sign], per_sign["encoder"][sign])
                     else per_sign["driven"][sign] - per_sign["encoder"][sign]) for sign in ("plus", "minus")}
        missing = [n for n, k in kicks.items() if any(q is None for q in k)]
        return {"dq_plus": dq["plus"], "dq_minus": dq["minus"], **per_sign, "per_neuron": kicks,
                "weights": {"encoder": encoder_w[1].tolist(), "driven": second[0].tolist()},
                "t_input": t_late, "factor": DRIVEN_PROBE_DISCHARGER,
                "note": f"no kick reproduces some neurons of the {' and '.join(missing)} probe" if missing else None}

    return cached_stage(ctx.out_dir, "driven_kick", compute, ctx.progress)


def probe_times(spikes: pd.DataFrame, layer: int, n_samples: int, width: int) -> np.ndarray:
    """(n_samples, width) spike times of one layer of a probe run, NaN where silent."""
    part = spikes[spikes["layer"] == layer].sort_values(["sample", "neuron"])
    t = part["t_spike"].to_numpy(dtype=float).reshape(n_samples, width)
    return np.where(part["spiked"].to_numpy().reshape(n_samples, width), t, np.nan)


def probe_kicks(ctx: Context, params: PhysicalParameters, w: np.ndarray, t_in: np.ndarray,
                t_spice: np.ndarray, c_m_f: float, coupling: np.ndarray | None = None) -> list[float | None]:
    """Per neuron of a two-sample kick probe (:func:`stage_driven_kick`): the kick per synapse q
    at which the model's shift between the samples is SPICE's; None where a sample is silent or
    no |q| <= :data:`DRIVEN_PROBE_MAX_Q` reproduces it. ``w`` (n_in, n_out) as mapped on the
    design C_m ``c_m_f``, ``t_in`` (2, n_in), ``t_spice`` (2, n_out); ``coupling`` the probed
    layer's membrane coupling (:func:`coupling_of`), None where there is none."""
    from scipy.optimize import brentq

    from imcpnn.circuits.simulate.weights import CurrentScales
    from imcpnn.pnn import spike_times

    shapes = reversal_shapes(ctx.char, w, c_m_f, ctx.schedule.t_phase_s, CurrentScales())
    e_plus, e_minus = ((params.e_plus, params.e_minus) if shapes is None
                       else (torch.as_tensor(params.e_plus * shapes[0]), torch.as_tensor(params.e_minus * shapes[1])))
    seen = torch.as_tensor(w, dtype=torch.float64) * params.current_scale

    def t_model(q: float, sample: int) -> np.ndarray:
        return spike_times(torch.as_tensor(t_in[sample:sample + 1], dtype=torch.float64), seen, e_plus, e_minus,
                           e_dis=params.e_dis, dis_rate=params.dis_rate * DRIVEN_PROBE_DISCHARGER,
                           t_delay=params.t_delay, q_plus=q, q_minus=q,
                           coupling=None if coupling is None else torch.as_tensor(coupling)).numpy()[0]

    base = t_model(0.0, 0)
    out = []
    for j in range(w.shape[1]):
        shift = t_spice[1, j] - t_spice[0, j]
        g = lambda q: t_model(q, 1)[j] - base[j] - shift  # noqa: E731
        if not np.isfinite(shift) or g(-DRIVEN_PROBE_MAX_Q) * g(DRIVEN_PROBE_MAX_Q) > 0:
            out.append(None)
            continue
        out.append(float(brentq(g, -DRIVEN_PROBE_MAX_Q, DRIVEN_PROBE_MAX_Q, xtol=1e-9)))
    return out


def kick_per_sign(w: np.ndarray, kicks: list) -> dict:
    """{"plus", "minus"}: the mean kick of the probed neurons whose synapses are excitatory /
    inhibitory (a probed neuron's are all of one sign; None where none was measured)."""
    signs = np.sign(w.sum(axis=0))
    out = {}
    for name, sign in (("plus", 1), ("minus", -1)):
        got = [q for q, s in zip(kicks, signs) if s == sign and q is not None]
        out[name] = float(np.mean(got)) if got else None
    return out


def driven_kicks(ctx: Context, pipeline: str) -> tuple[float, float] | None:
    """(dq_plus, dq_minus) a circuit model adds to its kick in every layer after the first
    (:func:`stage_driven_kick`): a measured circuit term, so the trace-fitted model, whose kick
    comes from the same kind of encoder-driven runs, adds it too. None for top-down (ideal
    model) or where it was not measured."""
    if pipeline == "top_down" or ctx.driven_kick is None:
        return None
    return ctx.driven_kick


def readout_delays(ctx: Context, pipeline: str) -> list[float] | None:
    """Per layer, the load delay a circuit model adds to its reported spike times
    (:func:`stage_load_delay`): fan-out (next layer's width) times the delay per gate; the output
    layer drives nothing. A measured circuit term (two testbench runs), so the trace-fitted model,
    whose other terms come from the same testbench, adds it too. None for top-down (ideal model),
    or where it was not measured."""
    if pipeline == "top_down" or ctx.load_delay_per_fanout is None:
        return None
    widths = ctx.network.widths
    return [widths[layer + 2] * ctx.load_delay_per_fanout if layer + 2 < len(widths) else 0.0
            for layer in range(len(widths) - 1)]


def stage_trace_fit(ctx: Context, start: PhysicalParameters, network: tuple | None = None) -> dict:
    """Every model parameter fitted jointly to SPICE traces (membranes and spike times), from the
    bottom-up values ``start``; V_th_circ held at the DC switch point unless
    ``fit.fit_v_th_circ``. The traces (``fit.source``): the characterization testbench's
    (:func:`testbench_traces`), or those of every layer of the bottom-up network on the
    calibration samples (:func:`network_traces`; ``network`` = its (weights, search stage))."""

    def compute():
        sets = ([testbench_traces(ctx)] if ctx.config.fit.source == "testbench"
                else network_traces(ctx, start, *network))
        return {**fitted_stage(ctx, sets, start, "fitted_parameters.csv"), "source": ctx.config.fit.source}

    return cached_stage(ctx.out_dir, "trace_fit", compute, ctx.progress,
                         outputs=["tables/fitted_parameters.csv"])


def stage_trace_refit(ctx: Context, start: PhysicalParameters, weights: list[np.ndarray], search: dict) -> dict:
    """The trace-fitted parameters ``start`` refitted to the trace-fitted network's own traces:
    every layer on the calibration samples at the scale its search found (:func:`network_traces`,
    the runs its search made), ``fit.refit``. The network trained with ``start`` is another
    circuit than the one they were fitted to; the test samples stay unseen."""
    return cached_stage(ctx.out_dir, "trace_refit",
                        lambda: fitted_stage(ctx, network_traces(ctx, start, weights, search), start,
                                             "refitted_parameters.csv", "trace_fit"),
                        ctx.progress, outputs=["tables/refitted_parameters.csv"])


def fitted_stage(ctx: Context, sets: list[TraceSet], start: PhysicalParameters, table: str,
                 start_column: str = "dc_derived") -> dict:
    """:func:`fit_traces` of ``sets`` from ``start`` with the config's weighting, its table of
    values and standard errors (beside ``start`` in column ``start_column``) written to
    ``tables/<table>``; the stage's JSON result."""
    result = fit_traces(sets, start, sigma_v_v=ctx.config.fit.sigma_v_v, sigma_t=ctx.config.fit.sigma_t,
                        fixed=() if ctx.config.fit.fit_v_th_circ else ("v_th_circ_v",))
    rows = pd.DataFrame(result.table(start)).rename(columns={"dc_derived": start_column})
    write_csv(ctx.out_dir / "tables" / table, rows)
    return {"fitted": to_dict(result.parameters), "stderr": result.stderr,
            "rms_v_membrane_mv": result.rms_v_membrane_mv, "rms_t_spike": result.rms_t_spike,
            "n_residuals": result.n_residuals, "message": result.message,
            "n_spiking": int(sum(s.spiked.sum() for s in sets)), "n_patterns": int(len(sets[0].t_in))}


def network_traces(ctx: Context, params: PhysicalParameters, weights: list[np.ndarray],
                   search: dict) -> list[TraceSet]:
    """SPICE traces of every layer of a network mapped with its model's C_eff (bottom-up's, or
    trace-fitted's for the refit: ``weights``, its model's ``params``) on the calibration
    samples, mapped at the scale its search found, the discharger at its design bias: the run
    its search made there (a cache hit; a new run when it searched the discharger too). One
    :class:`TraceSet` per layer: the weights as the circuit got them (w k / s, in units of the
    design C_m's unit current, each synapse with its E shape), the layer's inputs the times that
    drove it (the samples for the first layer, the SPICE spike times of the layer before for the
    others, less its load delay: the model's convention of :func:`model_layer_times`), its
    targets its own spike times less its load delay, each neuron's own terms where measured,
    and the driven kick of the layers after the first (:func:`stage_driven_kick`). Never a test sample (unless ``calibration="test"``)."""
    from imcpnn.circuits.simulate.weights import CurrentScales

    scales = mapping_scales("bottom_up", params, tuple(search["best"]))
    run = simulate_candidates(ctx, weights, ctx.x_cal, [scales], ctx.progress, [1.0], save_supplies=False)[0]
    readout = readout_delays(ctx, "bottom_up") or [0.0] * len(weights)
    t_eval = np.linspace(0.0, 1.0, ctx.config.fit.n_times)
    n, t_in, sets = len(ctx.x_cal), np.asarray(ctx.x_cal, dtype=float), []
    for layer, w in enumerate(weights):
        shape = (n, w.shape[1])
        spikes = run.spikes[run.spikes["layer"] == layer].sort_values(["sample", "neuron"])
        spiked = spikes["spiked"].to_numpy().reshape(shape)
        t_out = np.where(spiked, np.nan_to_num(spikes["t_spike"].to_numpy().reshape(shape), nan=1.0)
                         - readout[layer], 1.0)
        nominal = w * scales.scale
        e_shapes = reversal_shapes(ctx.char, nominal, ctx.network.membrane_f(layer), ctx.schedule.t_phase_s,
                                   CurrentScales())
        own = ctx.neuron_terms[layer] if ctx.neuron_terms else None
        sets.append(TraceSet(t_in, nominal, t_eval, accumulation_traces(run.membranes, t_eval, layer, *shape),
                             t_out, spiked, v_reset_v=ctx.char["v0"],
                             **dict(zip(("e_shape_plus", "e_shape_minus"), e_shapes or (None, None))),
                             delay_offset=None if own is None else np.array(own["delay_offset"]),
                             c_factor=None if own is None else np.array(own["c_factor"]),
                             coupling=own_coupling(own),
                             dq_driven=ctx.driven_kick if layer > 0 else None))
        t_in = t_out
    return sets


def dc_parameters(char: dict) -> PhysicalParameters:
    """The DC-derived parameters (E from lambda; no circuit term: current scale 1, ideal rate)."""
    return PhysicalParameters(e_plus=char["e_plus"], e_minus=char["e_minus"], e_dis=char["e_dis"],
                              current_scale=1.0, v_th_circ_v=char["v_th_circ"])


def model_layer_times(model, x: np.ndarray, physics=None, reversal=None,
                      readout=None, neurons=None, weights=None) -> list[np.ndarray]:
    """Exact, noise-free spike times of every layer (float64): the model's prediction to compare
    with SPICE; ``physics`` (a LayerPhysics) replaces the model's own, e.g. for the error budget;
    ``reversal`` (per layer (E_plus, E_minus), each a float or an (n_in, n_out) array, see
    :func:`synapse_reversals`) replaces its E values; ``readout`` (per layer, units of T, see
    :func:`readout_delays`) is added to the times a layer reports, not to the next layer's inputs;
    ``neurons`` (per layer a dict of ``delay_offset`` and ``c_factor``, one value per neuron, and
    ``coupling``, see :func:`stage_neurons`) gives each neuron its own firing delay and
    capacitance, and couples the membranes of a layer that has a coupling; ``weights``
    (per layer (n_in, n_out)) replaces the model's dense weights (another network's, as this
    model's parameters see its currents: :func:`trace_fit_on_bottom_up`)."""
    from imcpnn.pnn import spike_times

    physics = physics or model.physics
    t = torch.as_tensor(x, dtype=torch.float64)
    out = []
    with torch.no_grad():
        for layer, w in enumerate(model.dense_weights() if weights is None else weights):
            p = physics.for_layer(layer)  # layers after the first: the driven kick
            e_plus, e_minus = layer_reversal(p, reversal, layer)
            w = torch.as_tensor(w).detach().double()
            own = neurons[layer] if neurons else None
            if own is not None:
                c = torch.tensor(own["c_factor"], dtype=torch.float64)
                w = w * c  # a neuron's own capacitance scales the charge of its whole column
                delay = p.t_delay + torch.tensor(own["delay_offset"], dtype=torch.float64)
            coupling = own_coupling(own)
            coupling = None if coupling is None else torch.from_numpy(coupling)
            t = spike_times(t, w, e_plus, e_minus, e_dis=p.e_dis, dis_rate=p.dis_rate, q_plus=p.q_plus,
                            q_minus=p.q_minus, t_delay=p.t_delay if own is None else delay,
                            rate_factor=None if own is None else c, coupling=coupling)
            out.append(t.numpy())
    return reported_times(out, readout)


def reported_times(layer_times: list[np.ndarray], readout) -> list[np.ndarray]:
    """The spike times each layer reports: ``layer_times`` (what drives the next layer) plus the
    layer's ``readout`` delay (:func:`readout_delays`; None: none)."""
    if not readout:
        return layer_times
    return [t + r for t, r in zip(layer_times, readout)]


def layer_reversal(physics, reversal, layer: int):
    """(E_plus, E_minus) of one layer: the physics' scalars, or the layer's entry of ``reversal``."""
    if reversal is None:
        return physics.e_plus, physics.e_minus
    return tuple(torch.as_tensor(e, dtype=torch.float64) for e in reversal[layer])


def synapse_reversals(ctx: Context, pipeline: str, params: PhysicalParameters, weights) -> list | None:
    """Per-synapse (E_plus, E_minus) arrays of every layer for the bottom-up and trace-fitted
    models, else None: the model's scalar E times :func:`reversal_shapes` of each layer's weights
    in the model's own mapping (C_eff, k = 1; the searched k moves the currents by about a
    percent). Bottom-up's scalar E is the DC one, so its synapses get the DC E of their currents;
    trace-fitted's is fitted with the same shapes (:func:`testbench_traces`). None for top-down
    (ideal model) and for a characterization that predates the curves.
    """
    if pipeline == "top_down":
        return None
    scales = mapping_scales(pipeline, params, (1.0,))
    out = []
    for layer, w in enumerate(weights):
        shapes = reversal_shapes(ctx.char, w, ctx.network.membrane_f(layer), ctx.schedule.t_phase_s, scales)
        if shapes is None:
            return None
        out.append((params.e_plus * shapes[0], params.e_minus * shapes[1]))
    return out


def seen_at_point(pipeline: str, weights, point: tuple[float, ...]) -> list[np.ndarray]:
    """The weights (per layer (n_in, n_out)) that a pipeline's model sees in the circuit mapped at a
    search point (:func:`mapping_scales`): top-down's positive weights times scale_plus and its
    negative ones times scale_minus; bottom-up's and trace-fitted's all times k (k = 1: the
    currents its own parameters expect)."""
    out = []
    for w in weights:
        w = np.asarray(w, dtype=float)
        out.append(np.where(w > 0, w * point[0], w * point[1]) if pipeline == "top_down" else w * point[0])
    return out


def mapping_scales(pipeline: str, params: PhysicalParameters, point: tuple[float, ...]):
    """Current scales of a search point: top-down (scale_plus, scale_minus) = point on the design
    C_m; bottom-up and trace-fitted k / current_scale, i.e. mapped with C_eff = C_m / s and a
    searched global factor k (1 when the model is right)."""
    from imcpnn.circuits.simulate.weights import CurrentScales

    if pipeline == "top_down":
        return CurrentScales(scale_plus=point[0], scale_minus=point[1])
    return CurrentScales(scale=point[0] / params.current_scale)


def simulate_candidates(ctx: Context, weights, x: np.ndarray, scales_list, progress: bool,
              discharger_scales=None, **networks):
    """Batched SPICE runs of ``ctx.network`` on inputs ``x``; ``discharger_scales``: searched
    factors on the design discharger, one per candidate (``networks``: other
    ``network``/``mapping_network``, or other keywords of :func:`simulate_scales` such as
    ``mismatch_seed``)."""
    from imcpnn.circuits.simulate.run import simulate_scales

    factors = discharger_scales or [1.0] * len(scales_list)
    discharger_scales = [ctx.discharger_design * k for k in factors]
    return simulate_scales(weights, x, ctx.char, scales_list,
                           **({"network": ctx.network} | networks), schedule=ctx.schedule,
                           corner=ctx.config.corner, temp_c=ctx.config.temp_c,
                           batch_size=ctx.config.spice_batch, **ctx.runner(),
                           discharger_scales=discharger_scales, progress=progress)


def mappable(ctx: Context, weights, scales, discharger_scale: float = 1.0, network=None) -> bool:
    """Whether every current of ``weights`` at ``scales`` (and the discharger's at its design
    factor times ``discharger_scale``) lies in the characterized range; ``network`` defaults to
    the validated network."""
    from imcpnn.circuits.characterization.fit import Characterization
    from imcpnn.circuits.simulate.run import map_network

    try:
        map_network(network or ctx.network, weights, Characterization.from_dict(ctx.char), scales,
                    ctx.schedule.t_phase_s, ctx.discharger_design * discharger_scale)
    except (NetlistError, ConfigError):
        return False
    return True


def calibration_inputs(config: ValidationConfig, x_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Samples the scale searches simulate: the first ``search.n_samples`` training samples
    (held out from the reported test metrics), or, with ``calibration="test"``, the first test
    samples (in-sample, the method's reference protocol, labelled so in the summary)."""
    pool = x_train if config.calibration == "train" else x_test
    n = config.search.n_samples or len(pool)
    return pool[:n]


def stage_search(ctx: Context, pipeline: str, weights, params: PhysicalParameters, model,
                 start: tuple[float, ...]) -> dict:
    """Coarse-to-fine current-scale search on the calibration samples (one batched SPICE run per
    candidate); then, with ``discharger="searched"``, a 1-D search of the discharger factor at
    the best scales. No test sample is simulated here. The candidates need spike times only:
    their decks save no supply currents (smaller raw files, no energy table)."""
    n_dims = 2 if pipeline == "top_down" else 1
    x_cal = ctx.x_cal
    T = ctx.schedule.t_phase_s

    model_tables = {}  # (discharger factor, search point or None) -> the model's spike table on x_cal
    reversal = synapse_reversals(ctx, pipeline, params, weights)

    def model_table(k_dis: float, point: tuple[float, ...] | None = None) -> pd.DataFrame:
        # point: the model's prediction of the circuit mapped at that search point (its weights
        # as the circuit's currents would make them, see seen_at_point); None: its own prediction
        if (k_dis, point) not in model_tables:
            physics = layer_physics(pipeline, params, k_dis, driven_kicks(ctx, pipeline))
            model_tables[k_dis, point] = model_spike_table(
                model_layer_times(model, x_cal, physics, reversal, readout_delays(ctx, pipeline),
                                  neuron_terms(ctx, pipeline),
                                  weights=None if point is None else seen_at_point(pipeline, own_weights(), point)))
        return model_tables[k_dis, point]

    def own_weights():  # the simulated weights, which are the model's (its dense weights if not given)
        return weights if weights is not None else [w.detach().double().numpy() for w in model.dense_weights()]

    def model_errors(point) -> np.ndarray | None:
        # what the Gauss-Newton search's model guide needs: the errors the model predicts for a
        # candidate (its own times less its times at the point), up to a constant
        if min(point) <= 0:
            return None
        return output_errors_ns(compare_spike_tables(model_table(1.0), model_table(1.0, tuple(point)), T))

    def errors_of(points, k_dis_of, scales_of):
        # per candidate its output spike-time errors (ns; the searches take their RMSE, the
        # Gauss-Newton search the vector itself), inf where it cannot be mapped
        ok = [p for p in points if mappable(ctx, weights, scales_of(p), k_dis_of(p))]
        runs = (simulate_candidates(ctx, weights, x_cal, [scales_of(p) for p in ok], ctx.progress,
                                    [k_dis_of(p) for p in ok], save_supplies=False) if ok else [])
        out = {p: output_errors_ns(compare_spike_tables(model_table(k_dis_of(p)), r.spikes, T))
               for p, r in zip(ok, runs)}
        return [out.get(p, math.inf) for p in points]

    def compute():
        log = ctx.out_dir / "stages" / f"search_{pipeline}.log.csv"
        log.parent.mkdir(parents=True, exist_ok=True)
        best, table = (ctx.search or search)(
            lambda pts: errors_of(pts, lambda p: 1.0, lambda p: mapping_scales(pipeline, params, p)),
            n_dims, ctx.config.search, log, start=start,
            model_errors=model_errors if ctx.config.search.model_guide else None)
        if n_dims == 1:
            table = table.assign(scale=table["x0"], scale_plus=1.0, scale_minus=1.0)
        else:
            table = table.assign(scale=1.0, scale_plus=table["x0"], scale_minus=table["x1"])
        table = table.assign(discharger_scale=1.0)
        k_dis = 1.0
        if ctx.config.discharger == "searched":
            scales = mapping_scales(pipeline, params, tuple(best))
            high = ctx.config.search.scale_range[1]
            dis_search = dataclasses.replace(ctx.config.search, scale_range=(DISCHARGER_SEARCH_MIN, high))
            (k_dis,), dis_table = (ctx.search or search)(
                lambda pts: errors_of(pts, lambda p: p[0], lambda p: scales),
                1, dis_search, ctx.out_dir / "stages" / f"search_{pipeline}_discharger.log.csv",
                start=(1.0,))
            dis_table = dis_table.assign(scale=best[0] if n_dims == 1 else 1.0,
                                         scale_plus=best[0] if n_dims == 2 else 1.0,
                                         scale_minus=best[1] if n_dims == 2 else 1.0,
                                         discharger_scale=dis_table["x0"])
            table = pd.concat([table, dis_table], ignore_index=True)
        write_csv(ctx.out_dir / "tables" / table_name("search", pipeline),
                  table[["scale", "scale_plus", "scale_minus", "discharger_scale", "level",
                         "rmse_t_spike_ns"]])
        return {"best": list(best), "discharger_scale": float(k_dis), "n_candidates": len(table),
                "n_calibration_samples": int(len(x_cal))}

    return cached_stage(ctx.out_dir, f"search_{pipeline}", compute, ctx.progress,
                         outputs=[f"tables/{table_name('search', pipeline)}"])


def model_membranes_v(model, x: np.ndarray, layer_times: list[np.ndarray], params: PhysicalParameters,
                      v0_v: float, t_eval: np.ndarray, reversal=None, weights=None) -> list[np.ndarray]:
    """Model membrane (V) per layer: V0 - V_th_circ v(t), (n_samples, n_out, n_times) each
    (``reversal`` and ``weights`` as in :func:`model_layer_times`)."""
    from imcpnn.pnn import membrane_trace

    out = []
    inputs = [x, *layer_times[:-1]]
    for layer, (t_in, w) in enumerate(zip(inputs, model.dense_weights() if weights is None else weights)):
        e_plus, e_minus = layer_reversal(params, reversal, layer)
        v = membrane_trace(torch.as_tensor(t_in, dtype=torch.float64), w.double(),
                           e_plus, e_minus, torch.as_tensor(t_eval))
        out.append(v0_v - params.v_th_circ_v * v.numpy())
    return out


def seen_weights(model, mapped: PhysicalParameters, scale: float, fitted: PhysicalParameters) -> list:
    """``model``'s weights (per layer (n_in, n_out) float64 tensors) as a circuit mapped with
    ``mapped`` at the searched ``scale`` k got them (w k / s_mapped, in units of the design C_m's
    unit current), seen through ``fitted``'s current scale: what the trace fit saw of that
    circuit (:func:`network_traces`), so ``fitted`` predicts it as it was fitted."""
    factor = scale * fitted.current_scale / mapped.current_scale
    return [w.detach().double() * factor for w in model.dense_weights()]


def predicted_times(ctx: Context, pipeline: str, model, params: PhysicalParameters, x: np.ndarray,
                    discharger_scale: float, weights=None) -> tuple[list, list, list | None]:
    """The pipeline's prediction of ``model``'s circuit on inputs ``x`` with ``params``: (times
    each layer feeds the next, times it reports (plus the load delay), per-synapse E) per layer,
    with each neuron's own terms; ``weights`` replaces the model's (:func:`seen_weights`)."""
    w = weights if weights is not None else [w.detach().double() for w in model.dense_weights()]
    reversal = synapse_reversals(ctx, pipeline, params, [layer.numpy() for layer in w])
    physics = layer_physics(pipeline, params, discharger_scale, driven_kicks(ctx, pipeline))
    fed = model_layer_times(model, x, physics, reversal, neurons=neuron_terms(ctx, pipeline), weights=weights)
    return fed, reported_times(fed, readout_delays(ctx, pipeline)), reversal


def stage_evaluate(ctx: Context, pipeline: str, model, params: PhysicalParameters,
                   search: dict, refit: PhysicalParameters | None = None) -> dict:
    """Metrics on the test samples at the searched scales (never seen by the search when the
    calibration uses training samples). ``refit``: parameters refitted to this network's own
    calibration runs (:func:`stage_trace_refit`): the circuit is mapped with ``params`` as
    searched and predicted with ``refit`` (:func:`seen_weights`); the prediction with ``params``
    is reported beside it (``rmse_before_refit_ns``)."""
    best, k_dis = tuple(search["best"]), float(search.get("discharger_scale", 1.0))

    def compute():
        weights = [w.double().numpy() for w in model.dense_weights()]
        predict = params if refit is None else refit
        seen = None if refit is None else seen_weights(model, params, best[0], refit)
        fed, layer_times, reversal = predicted_times(ctx, pipeline, model, predict, ctx.x_test, k_dis, seen)
        # ``fed`` drive the next layer; ``layer_times`` are what each layer reports
        model_table = model_spike_table(layer_times)
        scales = mapping_scales(pipeline, params, best)
        run = simulate_candidates(ctx, weights, ctx.x_test, [scales], ctx.progress, [k_dis])[0]
        cmp = compare_spike_tables(model_table, run.spikes, ctx.schedule.t_phase_s)
        before = None if refit is None else output_rmse_ns(compare_spike_tables(
            model_spike_table(predicted_times(ctx, pipeline, model, params, ctx.x_test, k_dis)[1]),
            run.spikes, ctx.schedule.t_phase_s))
        t_eval = np.linspace(0.0, 1.0, MEMBRANE_POINTS)
        model_v = model_membranes_v(model, ctx.x_test, fed, predict, ctx.char["v0"], t_eval, reversal, seen)
        n = len(ctx.x_test)
        spice_v = [accumulation_traces(run.membranes, t_eval, layer, n, mv.shape[1])
                   for layer, mv in enumerate(model_v)]
        rmse_v = membrane_rmse_v(model_v, spice_v)
        worst = worst_sample(cmp)
        t_s = t_eval * ctx.schedule.t_phase_s
        rows = [pd.DataFrame({"t_s": t_s, "layer": layer, "neuron": i,
                              "v_model_v": model_v[layer][worst, i],
                              "v_spice_v": spice_v[layer][worst, i]})
                for layer in range(len(model_v)) for i in range(model_v[layer].shape[1])]
        tables = ctx.out_dir / "tables"
        write_csv(tables / table_name("membrane", pipeline), pd.concat(rows, ignore_index=True))
        write_csv(tables / table_name("spikes", pipeline), cmp)
        energy = run_energy(run, weights, ctx.x_test, ctx.schedule)
        if energy is not None:
            write_csv(tables / table_name("energy", pipeline), pd.DataFrame(energy["table"]))
        layers = layer_metrics(cmp).assign(pipeline=pipeline)
        out_layer = layers.iloc[-1]
        return {
            "pipeline": pipeline, "rmse_t_spike_ns": output_rmse_ns(cmp),
            "max_abs_err_t_spike_ns": float(out_layer["max_abs_err_t_spike_ns"]),
            "rmse_spiking_ns": float(out_layer["rmse_spiking_ns"]),
            "bias_ns": float(out_layer["mean_err_t_spike_ns"]),
            "n_silent_mismatch": int(out_layer["n_silent_mismatch"]),
            "rmse_v_membrane_mv": rmse_v * 1e3, "scale": best[0] if len(best) == 1 else 1.0,
            "scale_plus": scales.scale_plus, "scale_minus": scales.scale_minus,
            "discharger_scale": k_dis, "refit": refit is not None, "rmse_before_refit_ns": before,
            "e_plus": predict.e_plus, "e_minus": predict.e_minus, "e_dis": predict.e_dis,
            "accuracy_model": accuracy(output_times(cmp, "model"), ctx.y_test, ctx.n_classes),
            "accuracy_spice": accuracy(output_times(cmp, "spice"), ctx.y_test, ctx.n_classes),
            "worst_sample": worst, "layers": layers.to_dict(orient="records"),
            "mapping": {k: v for k, v in run.mapping.items() if k != "layers"}
            | {"c_m_f_per_layer": [layer["c_m_f"] for layer in run.mapping["layers"]],
               "vg_dis_v_per_layer": [layer["vg_dis_v"] for layer in run.mapping["layers"]]},
            "energy_per_inference_j": None if energy is None else energy["energy_per_inference_j"],
            "energy_per_synop_j": None if energy is None else energy["energy_per_synop_j"],
            "energy": energy,
        }

    def outputs(result: dict) -> list[str]:
        # a stage saved before the energy accounting has no energy and no energy table
        kinds = ("membrane", "spikes") + (("energy",) if result.get("energy") else ())
        return [f"tables/{table_name(kind, pipeline)}" for kind in kinds]

    return cached_stage(ctx.out_dir, f"evaluate_{pipeline}", compute, ctx.progress, outputs=outputs)


def run_energy(run, weights, t_in: np.ndarray, schedule) -> dict | None:
    """Energy per inference, per synaptic operation and per layer, phase and supply group of a
    network run (:func:`imcpnn.circuits.simulate.energy.energy_summary`), or None when the run
    saved no supply currents. ``weights``: the run's (n_l, n_{l+1}) matrices; ``t_in`` its
    (n_samples, n_in) input spike times."""
    from imcpnn.circuits.simulate.energy import count_synops, energy_summary, spiked_inputs

    if run.energy is None:
        return None
    widths = run.mapping["widths"]
    synops = count_synops(weights, spiked_inputs(t_in, run.spikes, schedule, widths))
    return energy_summary(run.energy, synops)


#: The bottom-up model's terms in the order the error budget adds them.
BUDGET_TERMS = (
    ("ideal model (E = inf, ideal ramp)", {}),
    ("+ E_plus, E_minus (synapse lambda, DC sweeps)", {"e": True}),
    ("+ E_dis (discharger lambda, DC sweeps)", {"e": True, "e_dis": True}),
    ("+ C_eff (charge measurement: discharge rate k* C_m / C_eff)", {"e": True, "e_dis": True, "rate": True}),
    ("+ firing-path delay t_delay", {"e": True, "e_dis": True, "rate": True, "t_delay": True}),
    ("+ end-of-accumulation kick q_plus, q_minus", {"e": True, "e_dis": True, "rate": True,
                                                    "t_delay": True, "kick": True}),
    ("+ bias-dependent lambda (E per synapse from its current, DC sweeps)",
     {"e": True, "e_dis": True, "rate": True, "t_delay": True, "kick": True, "e_per_synapse": True}),
    ("+ load delay of hidden outputs (fan-out, loaded testbench)",
     {"e": True, "e_dis": True, "rate": True, "t_delay": True, "kick": True, "e_per_synapse": True,
      "load_delay": True}),
    ("+ kick of neuron-driven inputs (layers after the first, two-layer probe)",
     {"e": True, "e_dis": True, "rate": True, "t_delay": True, "kick": True, "e_per_synapse": True,
      "load_delay": True, "driven_kick": True}),
    ("+ each neuron's own firing delay and capacitance (the network without input)",
     {"e": True, "e_dis": True, "rate": True, "t_delay": True, "kick": True, "e_per_synapse": True,
      "load_delay": True, "driven_kick": True, "neurons": True}),
    ("+ coupling of neighbouring membranes (extracted mutual capacitance)",
     {"e": True, "e_dis": True, "rate": True, "t_delay": True, "kick": True, "e_per_synapse": True,
      "load_delay": True, "driven_kick": True, "neurons": True, "coupling": True}),
)


def budget_physics(params: PhysicalParameters, terms: dict, discharger_scale: float = 1.0, driven=None):
    """The bottom-up LayerPhysics with only ``terms`` switched on (the others ideal; the
    discharger's design current k* is known without any term, C_eff sets the rate with "rate";
    "driven_kick" adds ``driven`` = (dq_plus, dq_minus) to the layers after the first)."""
    from imcpnn.pnn import LayerPhysics

    return LayerPhysics(
        e_plus=params.e_plus if terms.get("e") else E_INFINITE,
        e_minus=params.e_minus if terms.get("e") else -E_INFINITE,
        e_dis=params.e_dis if terms.get("e_dis") else None,
        dis_rate=params.dis_rate / (1.0 if terms.get("rate") else params.current_scale) * discharger_scale,
        t_delay=params.t_delay if terms.get("t_delay") else 0.0,
        q_plus=params.q_plus if terms.get("kick") else 0.0,
        q_minus=params.q_minus if terms.get("kick") else 0.0,
        dq_plus_driven=driven[0] if terms.get("driven_kick") and driven else 0.0,
        dq_minus_driven=driven[1] if terms.get("driven_kick") and driven else 0.0)


def bottom_up_spice(ctx: Context) -> pd.DataFrame:
    """The bottom-up network's SPICE spike table of its test run, as its evaluation saved it
    (``tables/spikes_bottom_up.csv``), in the columns a model table compares against."""
    spice = pd.read_csv(ctx.out_dir / "tables" / table_name("spikes", "bottom_up"))
    return spice.rename(columns={"t_spice": "t_spike", "spiked_spice": "spiked"})


def error_budget(ctx: Context, model, params: PhysicalParameters, evaluation: dict) -> list[dict]:
    """Held-out output RMSE (and per layer, inputs first) of the bottom-up network's SPICE test run
    against its model with the terms of :data:`BUDGET_TERMS` added in turn (same weights, same
    SPICE run, same scales: the last row is the bottom-up RMSE itself)."""
    spice = bottom_up_spice(ctx)
    rows = []
    weights = [w.double().numpy() for w in model.dense_weights()]
    per_synapse = synapse_reversals(ctx, "bottom_up", params, weights)
    driven = driven_kicks(ctx, "bottom_up")
    for term, switches in BUDGET_TERMS:
        readout = readout_delays(ctx, "bottom_up") if switches.get("load_delay") else None
        neurons = neuron_terms(ctx, "bottom_up") if switches.get("neurons") else None
        if neurons is not None and not switches.get("coupling"):
            neurons = [{**own, "coupling": None} for own in neurons]
        if ((switches.get("e_per_synapse") and per_synapse is None) or (switches.get("load_delay") and readout is None)
                or (switches.get("neurons") and neurons is None)
                or (switches.get("coupling") and not any(own.get("coupling") is not None for own in neurons or []))
                or (switches.get("driven_kick") and driven is None and not switches.get("neurons"))):
            continue  # a term that was not measured (older characterization, no hidden layer): no row
        physics = budget_physics(params, switches, evaluation["discharger_scale"], driven)
        reversal = per_synapse if switches.get("e_per_synapse") else None
        table = model_spike_table(model_layer_times(model, ctx.x_test, physics, reversal, readout, neurons))
        cmp = compare_spike_tables(table, spice, ctx.schedule.t_phase_s)
        rows.append({"term": term, "rmse_bottom_up_ns": output_rmse_ns(cmp),
                     "rmse_per_layer_ns": [float(x) for x in layer_metrics(cmp)["rmse_t_spike_ns"]]})
    return rows


def trace_fit_on_bottom_up(ctx: Context, model, bottom_up: PhysicalParameters, fitted: PhysicalParameters,
                           evaluation: dict) -> dict:
    """The bottom-up network's SPICE test run predicted with the trace-fitted parameters: the same
    network and SPICE run as bottom-up's own RMSE, another parameter set, so the two parameter
    sets compare on one circuit (the trace-fitted pipeline's own RMSE also holds its own
    training and search). The weights as the circuit got them (w k / s_bottom_up, the search's
    k), seen through the fitted current scale, exactly as :func:`network_traces` gave them to the
    fit, on the test samples, which the fit never saw (calibration samples only)."""
    spice = bottom_up_spice(ctx)
    seen = seen_weights(model, bottom_up, evaluation["scale"], fitted)
    _, reported, _ = predicted_times(ctx, "trace_fitted", model, fitted, ctx.x_test,
                                     evaluation["discharger_scale"], seen)
    cmp = compare_spike_tables(model_spike_table(reported), spice, ctx.schedule.t_phase_s)
    layers = layer_metrics(cmp)
    return {"rmse_ns": output_rmse_ns(cmp), "bias_ns": float(layers.iloc[-1]["mean_err_t_spike_ns"]),
            "rmse_per_layer_ns": [float(x) for x in layers["rmse_t_spike_ns"]],
            "rmse_bottom_up_ns": evaluation["rmse_t_spike_ns"],
            "what": ("the bottom-up network's SPICE test run predicted with the trace-fitted parameters "
                     "(rmse_ns) beside its own bottom-up model (rmse_bottom_up_ns): one circuit, two "
                     "parameter sets")}


def _layout_outputs(stage: dict) -> list[str]:
    """Files of the layout stage that later stages and the report read."""
    return [*(rec["files"][key] for rec in stage["layouts"].values() for key in ("pex_netlist", "png")),
            *stage["cell_figures"]]


def stage_networks(config: ValidationConfig, out_dir: Path, n_in: int,
                   progress: bool) -> tuple[dict, dict | None]:
    """(networks, layout stage) of ``config.netlist_kind``: "network" (:func:`network_widths`),
    "trace_fit" (the trace-fit testbench's shape) and "trace_fit_loaded" (that testbench with a
    second layer of F neurons loading its outputs, F the network's largest fan-out; None when no
    layer drives another: :func:`stage_load_delay`). Post-layout: the cached ``layout`` stage lays
    them out and extracts them first (ToolNotFoundError when magic, netgen or PDK_ROOT is
    missing); the stage result is returned too, else None."""
    from imcpnn.circuits.netlist.network import Network, ParasiticEstimate

    estimate = ParasiticEstimate() if config.netlist_kind == "schematic+parasitic-estimate" else None
    widths = network_widths(config, n_in)
    fan_out = max(widths[2:], default=0)
    shape = fit_testbench(config)[1].shape
    networks = {"network": Network(widths, parasitic=estimate),
                "trace_fit": Network(shape, parasitic=estimate),
                "trace_fit_loaded": Network((*shape, fan_out), parasitic=estimate) if fan_out else None}
    if config.netlist_kind != "post-layout":
        return networks, None
    drawn = {k: net for k, net in networks.items() if net is not None}
    layout = cached_stage(out_dir, "layout", lambda: layout_networks(drawn, out_dir), progress,
                          outputs=_layout_outputs,
                          check=lambda stage: next((f"the saved layout stage has no {k!r} layout"
                                                    for k in drawn if k not in stage["layouts"]), None))
    return networks | {k: post_layout_network(net, layout["layouts"][k], out_dir)
                       for k, net in drawn.items()}, layout


def stage_compare_netlists(ctx: Context, model, params: PhysicalParameters, search: dict) -> dict:
    """Post-layout: the bottom-up network at its tuned scale on the schematic netlist, (a) with the
    post-layout gate biases and (b) with its own mapping (C_m = MIM), next to the post-layout run
    (a cache hit of the search)."""
    from imcpnn.circuits.netlist.network import Network

    def compute():
        weights = [w.double().numpy() for w in model.dense_weights()]
        scales = [mapping_scales("bottom_up", params, tuple(search["best"]))]
        k_dis = [float(search.get("discharger_scale", 1.0))]
        x = ctx.x_test
        post = simulate_candidates(ctx, weights, x, scales, False, k_dis)[0]
        schematic = Network(ctx.network.widths)
        same = simulate_candidates(ctx, weights, x, scales, ctx.progress, k_dis, network=schematic,
                         mapping_network=ctx.network)[0]
        own = simulate_candidates(ctx, weights, x, scales, ctx.progress, k_dis, network=schematic)[0]
        table, layers = netlist_comparison(same.spikes, post.spikes, ctx.schedule.t_phase_s)
        own_table, own_layers = netlist_comparison(own.spikes, post.spikes, ctx.schedule.t_phase_s)
        table["t_schematic_own_mapping"] = own_table["t_schematic"].to_numpy()  # same row order
        write_csv(ctx.out_dir / "tables" / "post_layout_spikes.csv", table)
        out, own_out = layers.iloc[-1], own_layers.iloc[-1]
        return {"rmse_schematic_vs_post_layout_ns": float(out["rmse_diff_ns"]),
                "max_abs_diff_schematic_vs_post_layout_ns": float(out["max_abs_diff_ns"]),
                "mean_diff_post_layout_minus_schematic_ns": float(out["mean_diff_ns"]),
                "rmse_schematic_own_mapping_vs_post_layout_ns": float(own_out["rmse_diff_ns"]),
                "mean_diff_post_layout_minus_schematic_own_mapping_ns": float(own_out["mean_diff_ns"]),
                "layers": layers.to_dict(orient="records"),
                **recovered_capacitance([L["c_m_f"] for L in post.mapping["layers"]],
                                        scales[0].scale),
                "c_m_schematic_f": schematic.membrane_f(0), "t_phase_s": ctx.schedule.t_phase_s}

    return cached_stage(ctx.out_dir, "compare_netlists", compute, ctx.progress,
                         outputs=["tables/post_layout_spikes.csv"])


def _finite_or_none(x) -> float | None:
    """JSON's null for a missing metric (saved NaN reads back as None)."""
    return None if x is None or not math.isfinite(x) else float(x)


def protocol_text(config: ValidationConfig) -> str:
    """The comparison protocol in words, for summary.json and the report."""
    cal = (f"the first {config.search.n_samples or 'all'} training samples (held out: no test sample is "
           "simulated before the evaluation)" if config.calibration == "train" else
           f"the first {config.search.n_samples or 'all'} test samples (in-sample, as in the method's "
           "reference; the reported RMSE includes them)")
    dis = ("fixed at its design bias for every pipeline (the current k* C_m V_th_circ / T at which a "
           "neuron with no input fires exactly at the end of its window, placed by a SPICE run of "
           "the neuron layer, not by any model)" if config.discharger == "fixed"
           else "searched by every pipeline (one factor in [1, 5] on its design bias, 1-D, after the "
                "scales)")
    fitted_to = ("the membranes and spike times of every layer of the bottom-up network on the same "
                 "calibration samples at its searched scale" if config.fit.source == "network"
                 else "the testbench traces")
    refit = ("; the network it trains with them is mapped at its searched scale and predicted with "
             "them refitted to the same traces of that network (every layer, the calibration samples)"
             if config.fit.refit else "")
    return (f"Scales are calibrated on {cal}; metrics are on the {config.n_test} test samples. "
            f"Discharger: {dis}. Top-down may tune (scale_plus, scale_minus) of an ideal model "
            "(E = +-e_ideal, ideal ramp, no delay, mapped with the design C_m); bottom-up one global "
            "scale k of the circuit model characterized from SPICE (DC E values, per synapse from "
            "lambda against its current where the characterization has it; C_eff from a charge "
            "measurement, firing delay and end-of-accumulation kick from a testbench, the hidden "
            "outputs' load delay from the same testbench loaded, the extra kick of neuron-driven "
            "inputs from two-sample probes, each neuron's delay and capacitance from the network "
            "without input, and post-layout the coupling of neighbouring membranes from the "
            "extraction; mapped with C_eff); trace-fitted one global scale of the same model (the "
            "same per-synapse E shapes, load delay, driven kick and per-neuron terms) "
            f"with every other parameter, the E levels included, fitted jointly to {fitted_to}"
            f"{refit}. All use the same I_D(V_G) tables, V_th_circ and netlist.")


def _versions(char: dict) -> dict:
    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {"imcpnn": version("imcpnn"), "ngspice": str(char.get("ngspice_version", "unknown")),
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _flat(data, prefix: str = "") -> dict:
    if not isinstance(data, dict):
        return {prefix or "(config)": data}
    out = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return out


def _config_diff(old, new: dict, limit: int = 4) -> str:
    """``n_test 7 -> 1, search.steps [0.1] -> [0.1, 0.03]`` (the first ``limit`` differences)."""
    a, b = _flat(old), _flat(new)
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k, "(unset)") != b.get(k, "(unset)")]
    parts = [f"{k.rstrip('.')} {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}" for k in keys[:limit]]
    return ", ".join(parts) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


#: A copy of config.json among the stages: it restores a deleted or corrupt config.json.
CONFIG_COPY = "stages/run_config.json"
#: Revision of what the stages measure and model. A folder's saved stages are reused as they
#: are, so results of an earlier revision would mix with this one's: such a folder is refused
#: (:func:`_check_revision`). 2: synapse sources swept in situ, per-neuron terms, the loaded
#: post-layout testbench (1: every folder without the file). 3: the trace fit on the bottom-up
#: network's calibration runs. 4: the trace-fitted network predicted with its refitted parameters.
#: 5: the kick of neuron-driven inputs in the layers after the first. 6: coupled membranes.
MODEL_REVISION = 6
REVISION_FILE = "stages/model_revision.json"
#: Files of a result folder that are not results of its run.
_NOT_RESULTS = ("config.json", CONFIG_COPY, "stages/elapsed.json", REVISION_FILE)


def _as_written_now(recorded):
    """The config data ``recorded`` (read from a config.json, perhaps of an earlier version) as
    this version writes the same config: fields it lacks at their defaults, older spellings in
    today's form (``"hidden": 5`` -> ``[5]``; :func:`upgrade_config_data`). Data that does not load as a ValidationConfig
    (unknown keys, invalid values) is returned unchanged, so it compares as different."""
    try:
        return to_dict(from_dict(ValidationConfig, upgrade_config_data(recorded)))
    except ConfigError:
        return recorded


def _check_config(config: ValidationConfig, out_dir: Path) -> str | None:
    """Refuse ``out_dir`` when its results belong to another config (ConfigError), or when they
    belong to a config that can no longer be read (ResultsError naming config.json); writes
    nothing. The recorded config is config.json, else its copy :data:`CONFIG_COPY`, compared
    as this version would write it (:func:`_as_written_now`: a field added since, at its
    default, is no difference). A config alone (a run that saved no result) is no reason to
    refuse. Returns the note to give when config.json is written over something else than
    itself, else None."""
    wanted = to_dict(config)
    recorded, problems = None, []
    for rel in ("config.json", CONFIG_COPY):
        path = out_dir / rel
        if not path.is_file():
            problems.append(f"{path} is missing")
            continue
        try:
            recorded = _as_written_now(json.loads(path.read_text()))
            break
        except (ValueError, UnicodeDecodeError) as err:
            problems.append(f"{path} is corrupt ({err})")
    config_problem = next((p for p in problems if p.startswith(f"{out_dir / 'config.json'} ")), None)
    if recorded == wanted:
        return None if config_problem is None else f"{config_problem}; rewriting it from {CONFIG_COPY}"
    if not holds_results(out_dir, ignore=_NOT_RESULTS):
        if recorded is None and not (out_dir / "config.json").exists():
            return None  # a fresh folder
        return (f"{out_dir} holds only the config.json of a run that saved no result; replacing it "
                "with this run's config")
    if recorded is None:
        raise ResultsError(f"{'; '.join(problems)}: nothing says which config the results in "
                           f"{out_dir} belong to; restore {out_dir / 'config.json'}, or use another "
                           f"--out folder (or delete {out_dir} to start afresh)")
    raise ConfigError(f"{out_dir} holds a run with a different config ({out_dir / 'config.json'}: "
                      f"{_config_diff(recorded, wanted)}); use another --out folder, or delete it "
                      "to start afresh")


def run_validation(config: ValidationConfig, out_dir: str | Path, *,
                   characterization: str | Path | None = None, cache_dir: str | Path | None = None,
                   progress: bool = True, command: str = "imcpnn validate", executor: Any = None,
                   max_workers: int | None = None, search: Any = None) -> dict:
    """Run (or resume) every stage and write summary.json and the report; returns the summary.

    **Arguments:** ``characterization`` an existing characterization.json (else simulated);
    ``cache_dir`` the SPICE result cache (None = the SPICE layer's default); ``command`` how the
    folder's lock names this run to a second command on ``out_dir``; ``executor`` where the
    network batches run (None: a local pool of ``max_workers`` processes; a
    ``distributed.Client``: its cluster, results cached here; the device characterization's four
    small decks always run here); ``search`` replaces the scale search (a callable with
    :func:`imcpnn.validation.search`'s signature, handed each pipeline's own candidate
    evaluation: how ``benchmarks/search_vs_grid.py`` simulates a grid of chosen points; None:
    the config's search).
    **Raises:** RunDirBusyError (a ConfigError) when another process is writing into ``out_dir``;
    ConfigError when ``out_dir`` holds a run with another config, the characterization file
    is unreadable or differs from the one the folder's run used, or the data set does not fit the
    network (:func:`check_data`); post-layout: ToolNotFoundError (before any simulation, and
    before config.json is written) when magic, netgen or PDK_ROOT is missing. Nothing is
    written into ``out_dir`` before these checks pass.
    """
    start_s = time.perf_counter()
    out_dir = Path(out_dir)
    with RunDirLock(out_dir, command):
        replacing = _check_inputs(config, out_dir, characterization)
        data = load_data(config)
        _write_config(config, out_dir, replacing)
        clock = RunClock(out_dir / "stages" / "elapsed.json", start_s)
        try:
            return _run_stages(config, out_dir, characterization, cache_dir, progress, data, clock,
                               {"executor": executor, "max_workers": max_workers, "search": search})
        finally:
            clock.save()  # also when interrupted: elapsed_s is the total over every run


def _check_inputs(config: ValidationConfig, out_dir: Path, characterization) -> str | None:
    """Every check that may refuse the run before it writes: the folder's config
    (:func:`_check_config`, whose note this returns), the characterization file, the post-layout
    tools where the layout is still to do."""
    replacing = _check_config(config, out_dir)
    _check_revision(out_dir)
    check_characterization_input(out_dir, characterization)
    if config.netlist_kind == "post-layout" and _saved_stage(out_dir, "layout", _layout_outputs)[0] is None:
        check_layout_tools()
    return replacing


def _check_revision(out_dir: Path) -> None:
    """Refuse (ResultsError) a folder whose saved results an earlier :data:`MODEL_REVISION` made."""
    if not holds_results(out_dir, ignore=_NOT_RESULTS):
        return
    try:
        revision = json.loads((out_dir / REVISION_FILE).read_text())["model_revision"]
    except (OSError, ValueError, KeyError, TypeError):
        revision = 1
    if revision != MODEL_REVISION:
        raise ResultsError(
            f"{out_dir} holds results of imcpnn's model revision {revision} (this version's is "
            f"{MODEL_REVISION}: in-situ synapse sweeps, per-neuron terms, the trace fit on the "
            "network and its refit, the kick of neuron-driven inputs, coupled membranes), which would mix with this "
            f"version's; give another --out, or delete {out_dir} to redo the run")


def _write_config(config: ValidationConfig, out_dir: Path, replacing: str | None) -> None:
    """config.json and its copy :data:`CONFIG_COPY`, with the note ``replacing`` first if any."""
    if replacing:
        note(replacing)
    write_json_atomic(out_dir / "config.json", to_dict(config))
    write_json_atomic(out_dir / CONFIG_COPY, to_dict(config))
    write_json_atomic(out_dir / REVISION_FILE, {"model_revision": MODEL_REVISION})


def _run_stages(config: ValidationConfig, out_dir: Path, characterization, cache_dir, progress: bool,
                data: tuple[DataConfig, DataSplits], clock: RunClock, runner: dict) -> dict:
    """The stages of :func:`run_validation`, in a locked folder whose config is written; ``data``
    is :func:`load_data`'s (DataConfig, DataSplits); ``runner`` the executor keywords."""
    ctx, char_stage, layout = prepare_context(config, out_dir, characterization, cache_dir, progress, data,
                                              **runner)
    discharger = stage_discharger(ctx)
    ctx = dataclasses.replace(ctx, discharger_design=discharger["factor"])
    neurons = stage_neurons(ctx)
    ctx = dataclasses.replace(ctx, neuron_terms=neurons["layers"], testbench_terms=neurons["testbench"])
    params, dynamics = pipeline_parameters(ctx)
    load_delay = stage_load_delay(ctx)
    ctx = dataclasses.replace(ctx, load_delay_per_fanout=load_delay["per_fanout"])
    driven = stage_driven_kick(ctx, params["bottom_up"])
    if driven["dq_plus"] is not None and driven["dq_minus"] is not None:
        ctx = dataclasses.replace(ctx, driven_kick=(driven["dq_plus"], driven["dq_minus"]))
    dynamics = {**dynamics, "load_delay": load_delay, "driven_kick": driven, "neurons": neurons}
    results, models, post_layout, fit = _run_pipelines(ctx, params, layout)
    budget = error_budget(ctx, models["bottom_up"], params["bottom_up"], results["bottom_up"])
    _write_tables(out_dir, results, budget)
    if "refit" in fit:
        fit["refit"] = {**fit["refit"], "rmse_ns": results["trace_fitted"]["rmse_t_spike_ns"],
                        "rmse_before_ns": results["trace_fitted"]["rmse_before_refit_ns"]}
    fit = {**fit, "on_bottom_up_network": trace_fit_on_bottom_up(
        ctx, models["bottom_up"], params["bottom_up"], PhysicalParameters(**fit["fitted"]), results["bottom_up"])}
    summary = build_summary(ctx, results, {"discharger": discharger, "dynamics": dynamics,
                                           "trace_fit": fit, "error_budget": budget},
                            char_stage["figures"], clock.total_s())
    if layout is not None:
        summary["post_layout"] = post_layout
    check_summary(summary, "summary")
    write_json(out_dir / "summary.json", summary)
    render_report(out_dir)
    return summary


def prepare_context(config: ValidationConfig, out_dir: Path, characterization, cache_dir, progress: bool,
                    data: tuple[DataConfig, DataSplits], *, executor: Any = None,
                    max_workers: int | None = None, search: Any = None) -> tuple[Context, dict, dict | None]:
    """(Context, characterization stage, layout stage or None): the networks (laid out first
    for post-layout), the characterization, the samples; ``executor``/``max_workers`` and
    ``search`` go into the Context (:attr:`Context.executor`, :attr:`Context.search`)."""
    from imcpnn.circuits.netlist.network import PhaseSchedule

    data_cfg, splits = data
    x_train = splits.x_train.double().numpy().reshape(len(splits.x_train), -1)
    x_test = splits.x_test.double().numpy().reshape(len(splits.x_test), -1)
    networks, layout = stage_networks(config, out_dir, x_test.shape[1], progress)
    char_stage = stage_characterization(config, out_dir, characterization, cache_dir, progress)
    ctx = Context(config=config, out_dir=out_dir, cache_dir=cache_dir, progress=progress,
                  char=json.loads((out_dir / char_stage["json"]).read_text()),
                  network=networks["network"], fit_network=networks["trace_fit"],
                  loaded_fit_network=networks["trace_fit_loaded"],
                  schedule=PhaseSchedule(t_step_max_s=config.t_step_max_s, trtol=config.trtol),
                  x_test=x_test, y_test=splits.y_test.numpy(),
                  x_cal=calibration_inputs(config, x_train, x_test),
                  n_classes=splits.n_classes, data_config=data_cfg, executor=executor, max_workers=max_workers,
                  search=search)
    return ctx, char_stage, layout


def pipeline_parameters(ctx: Context) -> tuple[dict, dict]:
    """(PhysicalParameters of top-down and bottom-up, dynamics stage): top-down the ideal model,
    bottom-up the measured circuit terms. Trace-fitted's come from :func:`stage_trace_fit`, once
    the bottom-up network it may fit to is searched (:func:`_run_pipelines`)."""
    dynamics = stage_dynamics(ctx)
    params = {"top_down": ideal_parameters(ctx.config, ctx.char),
              "bottom_up": PhysicalParameters(**dynamics["parameters"])}
    return params, dynamics


#: Where each pipeline's scale search starts: the mapping's own answer, k = 1 (bottom-up and
#: trace-fitted, mapped with their C_eff) and (1, 1) (top-down, design C_m); no search reads
#: another pipeline's result.
SEARCH_STARTS = {"top_down": (1.0, 1.0), "bottom_up": (1.0,), "trace_fitted": (1.0,)}


def _run_pipelines(ctx: Context, params: dict, layout: dict | None) -> tuple[dict, dict, dict | None, dict]:
    """(evaluation per pipeline, model per pipeline, post-layout summary or None, trace_fit
    stage): each pipeline trains, searches its scales and is evaluated; trace-fitted's
    parameters are fitted (:func:`stage_trace_fit`) after bottom-up is searched, and refitted to
    its own network's calibration runs after its search (``fit.refit``); post-layout,
    the bottom-up network is also compared across netlists."""
    results, models, searches, post_layout, fit = {}, {}, {}, None, None
    params = dict(params)
    for pipeline in PIPELINES:
        refit = None
        if pipeline == "trace_fitted":
            bottom_up = [w.double().numpy() for w in models["bottom_up"].dense_weights()]
            fit = stage_trace_fit(ctx, params["bottom_up"], (bottom_up, searches["bottom_up"]))
            params[pipeline] = PhysicalParameters(**fit["fitted"])
        models[pipeline] = model = train_pipeline_model(ctx, pipeline, params[pipeline])
        weights = [w.double().numpy() for w in model.dense_weights()]
        searches[pipeline] = search = stage_search(ctx, pipeline, weights, params[pipeline], model,
                                                   SEARCH_STARTS[pipeline])
        if pipeline == "trace_fitted" and ctx.config.fit.refit:
            fit = {**fit, "refit": stage_trace_refit(ctx, params[pipeline], weights, search)}
            refit = PhysicalParameters(**fit["refit"]["fitted"])
        results[pipeline] = stage_evaluate(ctx, pipeline, model, params[pipeline], search, refit)
        if pipeline == "bottom_up" and layout is not None:
            post_layout = post_layout_summary(
                layout, stage_compare_netlists(ctx, model, params[pipeline], search))
    return results, models, post_layout, fit


def _write_tables(out_dir: Path, results: dict, budget: list[dict]) -> None:
    """tables/error_budget.csv, pipelines.csv (one row per pipeline) and layers.csv."""
    tables = out_dir / "tables"
    write_csv(tables / "error_budget.csv", pd.DataFrame(budget))
    write_csv(tables / "pipelines.csv", pd.DataFrame(
        [{k: v for k, v in r.items() if k not in ("layers", "mapping", "energy")} for r in results.values()]))
    write_csv(tables / "layers.csv", pd.DataFrame(
        [row for r in results.values() for row in r["layers"]]))


def build_summary(ctx: Context, results: dict, stages: dict, char_figures: list[str],
                  elapsed_s: float) -> dict:
    """summary.json (without ``post_layout``): the pipelines' metrics, the protocol, the circuit
    terms and the provenance. ``stages``: the discharger, dynamics and trace_fit stage results
    and the error budget."""
    char = ctx.char
    return {
        **_headline(results),
        "n_test_samples": int(len(ctx.x_test)),
        "netlist_kind": ctx.network.netlist_kind,
        "e_plus": float(char["e_plus"]), "e_minus": float(char["e_minus"]),
        "e_dis": float(char["e_dis"]),
        **_scales_and_accuracy(results),
        "search_starts": {p: list(SEARCH_STARTS[p]) for p in PIPELINES},
        "calibration": {"source": ctx.config.calibration, "n_samples": int(len(ctx.x_cal))},
        "discharger": ctx.config.discharger,
        "discharger_design": stages["discharger"],
        "discharger_scale": {p: r["discharger_scale"] for p, r in results.items()},
        **{f"rmse_spiking_{p}_ns": _finite_or_none(r["rmse_spiking_ns"]) for p, r in results.items()},
        **{f"bias_{p}_ns": r["bias_ns"] for p, r in results.items()},
        **{f"n_silent_mismatch_{p}": r["n_silent_mismatch"] for p, r in results.items()},
        "error_budget": stages["error_budget"],
        "dynamics": stages["dynamics"],
        "protocol": protocol_text(ctx.config),
        "models": char.get("models", {}),
        "elapsed_s": float(elapsed_s),
        "ratio_bottom_up_over_top_down": results["bottom_up"]["rmse_t_spike_ns"]
        / results["top_down"]["rmse_t_spike_ns"],
        "trace_fit": stages["trace_fit"],
        "mapping": _mapping_summary(ctx.network, results),
        "versions": _versions(char),
        "characterization_figures": char_figures,
        **_energy(results["bottom_up"]),
    }


def _energy(result: dict) -> dict:
    """The bottom-up network's energy per inference and per synaptic operation (J) and its
    breakdown per layer, phase and supply group, from its SPICE test run; None where the stage
    predates the energy accounting."""
    return {key: result.get(key) for key in ("energy_per_inference_j", "energy_per_synop_j", "energy")}


def _headline(results: dict) -> dict:
    """The output spike-time RMSE of each pipeline (ns): the experiment's headline numbers."""
    return {f"rmse_{p}_ns": results[p]["rmse_t_spike_ns"] for p in PIPELINES}


def _scales_and_accuracy(results: dict) -> dict:
    """The searched scales of each pipeline and the test accuracies (bottom-up's in front)."""
    return {
        "scale_bottom_up": results["bottom_up"]["scale"],
        "scale_top_down": [results["top_down"]["scale_plus"], results["top_down"]["scale_minus"]],
        "scale_trace_fitted": results["trace_fitted"]["scale"],
        "test_accuracy_model": results["bottom_up"]["accuracy_model"],
        "test_accuracy_spice": results["bottom_up"]["accuracy_spice"],
        "test_accuracy_by_pipeline": {p: {"model": r["accuracy_model"], "spice": r["accuracy_spice"]}
                                      for p, r in results.items()},
    }


def _mapping_summary(network, results: dict) -> dict:
    """Each pipeline's weight mapping, and the wire-capacitance estimate the netlist carries."""
    return {p: r["mapping"] for p, r in results.items()} | {
        "parasitic_estimate": to_dict(network.parasitic),
        "parasitic_method": "wire capacitance per line: C = c_area L w + 2 c_fringe L, met1, "
                            "L = cells crossed x pitch (ParasiticEstimate)"
                            if network.parasitic is not None else None}
