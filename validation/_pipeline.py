"""The headline experiment (method section 5): top-down vs bottom-up vs trace-fitted, against SPICE.

Stages, each saved under ``out_dir`` as soon as it finishes so that a rerun skips it:

0. layout            post-layout only, first (missing tools stop the run before any SPICE):
                     network layouts -> DRC, extraction, LVS (:mod:`._post_layout`)
1. characterization  sky130 DC sweeps -> lambda -> E_plus, E_minus, E_dis (or a given JSON)
2. train_top_down    ideal model, |E| = e_ideal, ideal firing ramp
3. train_bottom_up   E values from the characterization (E_dis included)
4. trace_fit         one SPICE transient of a single-layer testbench (chosen weights and input
                     times) -> least-squares fit of E_plus, E_minus, E_dis, current scale,
                     V_th_circ (with standard errors) -> train_trace_fitted with them
5. search_<pipeline> current scales against SPICE output spike times, bottom-up first (1-D,
                     global scale k from 1), then top-down (2-D scale_plus, scale_minus, from
                     the model-surrogate optimum times k), then trace-fitted (1-D, from the
                     fit's inverse current scale)
6. evaluate_<pipeline> metrics at the best scales, tables for the report; post-layout: also
   compare_netlists  the bottom-up network on the schematic netlist with the same gate biases
7. summary.json, then report.md / report.html

SPICE side (``ValidationConfig.netlist_kind``): by default the schematic netlist plus a
wire-capacitance estimate on every membrane and spike line
(:class:`imcpnn.circuits.network.ParasiticEstimate`: met1 line over the crossbar, 5 um synapse
pitch, C = c_area L w + 2 c_fringe L); or the plain schematic; or "post-layout", the netlist
extracted from the generated layout (:mod:`imcpnn.validation._post_layout`).
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from imcpnn.config import to_dict, to_json
from imcpnn.errors import ConfigError, NetlistError, ResultsError
from imcpnn.validation._config import ValidationConfig
from imcpnn.validation._fit import PhysicalParameters, TraceSet, fit_traces
from imcpnn.validation._metrics import (accuracy, compare_spike_tables, layer_metrics,
                                        membrane_rmse_v, output_rmse_ns, output_times, spike_table, worst_sample)
from imcpnn.validation._post_layout import (layout_networks, netlist_comparison, post_layout_network,
                                            post_layout_summary, recovered_capacitance)
from imcpnn.validation._search import coarse_to_fine
from imcpnn.validation.report import (PIPELINES, check_summary, render_report, table_name,
                                      write_csv, write_json)

N_CLASSES_IRIS = 3


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


def _stage_path(out_dir: Path, name: str) -> Path:
    return out_dir / "stages" / f"{name}.json"


def _cached_stage(out_dir: Path, name: str, compute, progress: bool) -> dict:
    """Result of stage ``name``: read back if saved, else computed and saved (atomically)."""
    path = _stage_path(out_dir, name)
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            raise ResultsError(f"{path} is corrupt; delete it to redo stage {name!r}") from None
    if progress:
        print(f"[imcpnn] stage {name} ...", flush=True)
    result = compute()
    write_json(path, result)
    return result


# ------------------------------------------------------------------------------------- stages
def stage_characterization(config: ValidationConfig, out_dir: Path, given: Path | None,
                           cache_dir, progress: bool) -> dict:
    """characterization.json (copied from ``given`` or simulated) and its figures under out_dir."""
    from imcpnn.circuits.characterize import CharacterizationConfig, characterize, write_outputs

    char_dir = out_dir / "characterization"

    def compute():
        if given is not None:
            if not Path(given).is_file():
                raise ConfigError(f"characterization file {given} does not exist; create it with "
                                  "`imcpnn characterize --out DIR` or leave the option out")
            char_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(given, char_dir / "characterization.json")
            for png in Path(given).parent.glob("*.png"):
                shutil.copy(png, char_dir / png.name)
        else:
            cfg = CharacterizationConfig(corner=config.corner, temp_c=config.temp_c)
            summary, fits, curves = characterize(cfg, cache_dir=cache_dir, progress=progress)
            write_outputs(char_dir, summary, fits, curves, cfg)
        return {"json": "characterization/characterization.json",
                "figures": sorted(f"characterization/{p.name}" for p in char_dir.glob("*.png"))}

    return _cached_stage(out_dir, "characterization", compute, progress)


def _train_config(config: ValidationConfig, e_plus: float, e_minus: float, e_dis: float | None):
    from imcpnn.pnn import DataConfig, LayerPhysics, ModelConfig, OptimConfig, TrainConfig

    return TrainConfig(
        data=DataConfig(dataset="iris", seed=config.seed,
                        test_subset=config.n_test if config.n_test < 50 else None),
        model=ModelConfig(arch=f"mlp:{config.hidden}", n_outputs=config.n_outputs,
                          physics=LayerPhysics(e_plus=e_plus, e_minus=e_minus, e_dis=e_dis)),
        optim=OptimConfig(lr=config.lr, batch_size=config.batch_size, epochs=config.epochs),
        seed=config.seed)


def train_pipeline_model(ctx: Context, pipeline: str, physics: PhysicalParameters | None):
    """Train (or resume, or reload) the model of ``pipeline``; physics None = ideal top-down."""
    from imcpnn.pnn import train

    if physics is None:
        cfg = _train_config(ctx.config, ctx.config.e_ideal, -ctx.config.e_ideal, None)
    else:
        cfg = _train_config(ctx.config, physics.e_plus, physics.e_minus, physics.e_dis)
    return train(cfg, ctx.out_dir / f"train_{pipeline}", progress=ctx.progress).model


def fit_testbench(config: ValidationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Input times (n_patterns, 5) and weights (5, 4) of the trace-fit testbench.

    Input 0 is the bias (t = 0); the other inputs spike at random times. The four neurons see
    different weight mixes (mostly excitatory to clearly inhibitory) so that E_plus and E_minus
    both shape the waveforms; weights stay small enough that most neurons spike inside the
    firing window (their spike times pin E_dis, and V_th_circ when it is fitted, see
    :mod:`imcpnn.validation._fit`).
    """
    rng = np.random.default_rng(config.seed + 1000)
    t_in = rng.uniform(0.0, 0.9, (config.fit.n_patterns, 5))
    t_in[:, 0] = 0.0
    w = np.array([[0.30, 0.45, 0.60, 0.50],
                  [0.25, 0.35, -0.20, 0.30],
                  [0.20, -0.15, 0.40, -0.35],
                  [0.15, 0.30, -0.30, 0.40],
                  [0.10, -0.25, 0.25, -0.30]])
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


def stage_trace_fit(ctx: Context) -> dict:
    """Simulate the single-layer testbench once and fit the physical parameters to it."""
    from imcpnn.circuits.simulate import simulate_network

    def compute():
        t_in, w = fit_testbench(ctx.config)
        run = simulate_network([w], t_in, ctx.char, network=ctx.fit_network, schedule=ctx.schedule,
                               corner=ctx.config.corner, temp_c=ctx.config.temp_c,
                               cache_dir=ctx.cache_dir, progress=ctx.progress)
        t_eval = np.linspace(0.0, 1.0, ctx.config.fit.n_times)
        spikes = run.spikes.sort_values(["sample", "neuron"])
        shape = (len(t_in), 4)
        traces = TraceSet(t_in, w, t_eval,
                          accumulation_traces(run.membranes, t_eval, 0, *shape),
                          np.nan_to_num(spikes["t_spike"].to_numpy().reshape(shape), nan=1.0),
                          spikes["spiked"].to_numpy().reshape(shape), v_reset_v=ctx.char["v0"])
        dc = dc_parameters(ctx.char)
        result = fit_traces(traces, dc, sigma_v_v=ctx.config.fit.sigma_v_v,
                            sigma_t=ctx.config.fit.sigma_t,
                            fixed=() if ctx.config.fit.fit_v_th_circ else ("v_th_circ_v",))
        rows = result.table(dc)
        write_csv(ctx.out_dir / "tables" / "fitted_parameters.csv", pd.DataFrame(rows))
        return {"fitted": to_dict(result.parameters), "stderr": result.stderr,
                "rms_v_membrane_mv": result.rms_v_membrane_mv, "rms_t_spike": result.rms_t_spike,
                "n_residuals": result.n_residuals, "message": result.message,
                "n_spiking": int(traces.spiked.sum())}

    return _cached_stage(ctx.out_dir, "trace_fit", compute, ctx.progress)


def dc_parameters(char: dict) -> PhysicalParameters:
    """The DC-derived parameters (current scale 1: the mapping's own C_m and V_th_circ)."""
    return PhysicalParameters(e_plus=char["e_plus"], e_minus=char["e_minus"], e_dis=char["e_dis"],
                              current_scale=1.0, v_th_circ_v=char["v_th_circ"])


def model_layer_times(model, x: np.ndarray) -> list[np.ndarray]:
    """Exact, noise-free spike times of every layer: the model's prediction to compare with SPICE."""
    model.eval()
    with torch.no_grad():
        times = model.layer_spike_times(torch.as_tensor(x, dtype=torch.float32), method="exact",
                                        noise=False)
    return [t.double().numpy() for t in times]


def _scales(pipeline: str, point: tuple[float, ...]):
    from imcpnn.circuits.weights import CurrentScales

    if pipeline == "top_down":
        return CurrentScales(scale_plus=point[0], scale_minus=point[1])
    return CurrentScales(scale=point[0])


def _simulate(ctx: Context, weights, scales_list, progress: bool, n_samples: int | None = None,
              **networks):
    """Batched SPICE runs of ``ctx.network`` on the first ``n_samples`` test samples (None = all;
    ``networks``: other ``network``/``mapping_network``)."""
    from imcpnn.circuits.simulate import simulate_scales

    return simulate_scales(weights, ctx.x_test[:n_samples], ctx.char, scales_list,
                           **({"network": ctx.network} | networks), schedule=ctx.schedule,
                           corner=ctx.config.corner, temp_c=ctx.config.temp_c,
                           batch_size=ctx.config.spice_batch, cache_dir=ctx.cache_dir, progress=progress)


def mappable(ctx: Context, weights, scales) -> bool:
    """Whether every current of ``weights`` at ``scales`` lies in the characterized range."""
    from imcpnn.circuits.characterize_fit import Characterization
    from imcpnn.circuits.simulate import map_network

    try:
        map_network(ctx.network, weights, Characterization.from_dict(ctx.char), scales,
                    ctx.schedule.t_phase_s)
    except NetlistError:
        return False
    return True


def surrogate_top_down_scales(model, x: np.ndarray, dc: PhysicalParameters,
                              scale_range: tuple[float, float]) -> tuple[float, float]:
    """(scale_plus, scale_minus) at which the circuit, pictured by the DC-parameter model, best
    reproduces the ideal model's output spike times: the start of the top-down SPICE search.

    The circuit behaves like the bottom-up model (finite E_plus, E_minus, E_dis); mapping the ideal
    weights W at scales (a, b) feeds it W_a,b = a W+ + b W-. The surrogate RMSE(a, b) = RMS over
    samples and output neurons of t_DC(x; W_a,b) - t_ideal(x; W) costs milliseconds per point, so
    a 0.05 grid over ``scale_range`` (clipped to [0.5, 2.5]) and a 0.01 grid around its best run
    in about a second, where every SPICE candidate costs a batched transient.
    """
    from imcpnn.pnn import spike_times

    inputs = torch.as_tensor(x, dtype=torch.float64)
    weights = [w.detach().double() for w in model.dense_weights()]
    target = torch.as_tensor(model_layer_times(model, x)[-1])

    def rmse(a: float, b: float) -> float:
        t = inputs
        for w in weights:
            t = spike_times(t, torch.where(w > 0, a * w, b * w), dc.e_plus, dc.e_minus, e_dis=dc.e_dis)
        return float(torch.sqrt(torch.mean((t - target) ** 2)))

    low, high = max(scale_range[0], 0.5), min(scale_range[1], 2.5)
    grid = np.round(np.arange(low, high + 1e-9, 0.05), 2)
    _, a0, b0 = min((rmse(a, b), a, b) for a in grid for b in grid)
    fine = np.round(np.arange(-0.04, 0.041, 0.01), 2)
    _, a1, b1 = min((rmse(a0 + da, b0 + db), a0 + da, b0 + db) for da in fine for db in fine)
    return round(float(a1), 2), round(float(b1), 2)


def stage_search(ctx: Context, pipeline: str, weights, model_table: pd.DataFrame,
                 start: tuple[float, ...]) -> dict:
    """Coarse-to-fine current-scale search; every candidate = one batched SPICE run of the first
    ``config.search.n_samples`` test samples (the evaluation at the best scales uses all)."""
    n_dims = 2 if pipeline == "top_down" else 1
    n_samples = ctx.config.search.n_samples or None
    model_table = model_table[model_table["sample"] < (n_samples or len(ctx.x_test))]

    def evaluate(points):
        ok = [p for p in points if mappable(ctx, weights, _scales(pipeline, p))]
        runs = (_simulate(ctx, weights, [_scales(pipeline, p) for p in ok], ctx.progress, n_samples)
                if ok else [])
        rmse = {p: output_rmse_ns(compare_spike_tables(model_table, r.spikes,
                                                       ctx.schedule.t_phase_s))
                for p, r in zip(ok, runs)}
        return [rmse.get(p, math.inf) for p in points]

    def compute():
        log = ctx.out_dir / "stages" / f"search_{pipeline}.log.csv"
        log.parent.mkdir(parents=True, exist_ok=True)
        best, table = coarse_to_fine(evaluate, n_dims, ctx.config.search, log, start=start)
        if n_dims == 1:
            table = table.assign(scale=table["x0"], scale_plus=1.0, scale_minus=1.0)
        else:
            table = table.assign(scale=1.0, scale_plus=table["x0"], scale_minus=table["x1"])
        write_csv(ctx.out_dir / "tables" / table_name("search", pipeline),
                  table[["scale", "scale_plus", "scale_minus", "level", "rmse_t_spike_ns"]])
        return {"best": list(best), "n_candidates": len(table)}

    return _cached_stage(ctx.out_dir, f"search_{pipeline}", compute, ctx.progress)


def model_membranes_v(model, x: np.ndarray, layer_times: list[np.ndarray], params: PhysicalParameters,
                      v0_v: float, t_eval: np.ndarray) -> list[np.ndarray]:
    """Model membrane (V) per layer: V0 - V_th_circ v(t), (n_samples, n_out, n_times) each."""
    from imcpnn.pnn import membrane_trace

    out = []
    inputs = [x, *layer_times[:-1]]
    for t_in, w in zip(inputs, model.dense_weights()):
        v = membrane_trace(torch.as_tensor(t_in, dtype=torch.float64), w.double(),
                           params.e_plus, params.e_minus, torch.as_tensor(t_eval))
        out.append(v0_v - params.v_th_circ_v * v.numpy())
    return out


def stage_evaluate(ctx: Context, pipeline: str, model, physics: PhysicalParameters,
                   best: tuple[float, ...]) -> dict:
    """Metrics at the best scales (the SPICE run is a cache hit of the search)."""

    def compute():
        weights = [w.double().numpy() for w in model.dense_weights()]
        layer_times = model_layer_times(model, ctx.x_test)
        model_table = spike_table(layer_times)
        run = _simulate(ctx, weights, [_scales(pipeline, tuple(best))], False)[0]
        cmp = compare_spike_tables(model_table, run.spikes, ctx.schedule.t_phase_s)
        t_eval = np.linspace(0.0, 1.0, 51)
        model_v = model_membranes_v(model, ctx.x_test, layer_times, physics, ctx.char["v0"], t_eval)
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
        layers = layer_metrics(cmp).assign(pipeline=pipeline)
        out_layer = layers.iloc[-1]
        scales = _scales(pipeline, tuple(best))
        return {
            "pipeline": pipeline, "rmse_t_spike_ns": output_rmse_ns(cmp),
            "max_abs_err_t_spike_ns": float(out_layer["max_abs_err_t_spike_ns"]),
            "rmse_v_membrane_mv": rmse_v * 1e3, "scale": scales.scale,
            "scale_plus": scales.scale_plus, "scale_minus": scales.scale_minus,
            "e_plus": physics.e_plus, "e_minus": physics.e_minus, "e_dis": physics.e_dis,
            "accuracy_model": accuracy(output_times(cmp, "model"), ctx.y_test, N_CLASSES_IRIS),
            "accuracy_spice": accuracy(output_times(cmp, "spice"), ctx.y_test, N_CLASSES_IRIS),
            "worst_sample": worst, "layers": layers.to_dict(orient="records"),
            "mapping": {k: v for k, v in run.mapping.items() if k != "layers"}
            | {"c_m_f_per_layer": [layer["c_m_f"] for layer in run.mapping["layers"]],
               "vg_dis_v_per_layer": [layer["vg_dis_v"] for layer in run.mapping["layers"]]},
        }

    return _cached_stage(ctx.out_dir, f"evaluate_{pipeline}", compute, ctx.progress)


def stage_networks(config: ValidationConfig, out_dir: Path, n_in: int,
                   progress: bool) -> tuple[dict, dict | None]:
    """(networks, layout stage) of ``config.netlist_kind``: "network" (n_in, hidden, n_outputs)
    and "trace_fit" (the trace-fit testbench's shape). Post-layout: the cached ``layout`` stage
    lays them out and extracts them first (ToolNotFoundError when magic, netgen or PDK_ROOT is
    missing); the stage result is returned too, else None."""
    from imcpnn.circuits.network import Network, ParasiticEstimate

    estimate = ParasiticEstimate() if config.netlist_kind == "schematic+parasitic-estimate" else None
    networks = {"network": Network((n_in, config.hidden, config.n_outputs), parasitic=estimate),
                "trace_fit": Network(fit_testbench(config)[1].shape, parasitic=estimate)}
    if config.netlist_kind != "post-layout":
        return networks, None
    layout = _cached_stage(out_dir, "layout", lambda: layout_networks(networks, out_dir), progress)
    return {k: post_layout_network(net, layout["layouts"][k], out_dir) for k, net in networks.items()}, layout


def stage_compare_netlists(ctx: Context, model, best: tuple[float, ...]) -> dict:
    """Post-layout: the bottom-up network at its tuned scale on the schematic netlist, (a) with the
    post-layout gate biases and (b) with its own mapping (C_m = MIM), next to the post-layout run
    (a cache hit of the search)."""
    from imcpnn.circuits.network import Network

    def compute():
        weights = [w.double().numpy() for w in model.dense_weights()]
        scales = [_scales("bottom_up", tuple(best))]
        post = _simulate(ctx, weights, scales, False)[0]
        schematic = Network(ctx.network.widths)
        same = _simulate(ctx, weights, scales, ctx.progress, network=schematic,
                         mapping_network=ctx.network)[0]
        own = _simulate(ctx, weights, scales, ctx.progress, network=schematic)[0]
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
                **recovered_capacitance([L["c_m_f"] for L in post.mapping["layers"]], best[0]),
                "c_m_schematic_f": schematic.membrane_f(0), "t_phase_s": ctx.schedule.t_phase_s}

    return _cached_stage(ctx.out_dir, "compare_netlists", compute, ctx.progress)


def _versions(char: dict) -> dict:
    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {"imcpnn": version("imcpnn"), "ngspice": str(char.get("ngspice_version", "unknown")),
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def run_validation(config: ValidationConfig, out_dir: str | Path, *,
                   characterization: str | Path | None = None, cache_dir: str | Path | None = None,
                   progress: bool = True) -> dict:
    """Run (or resume) every stage and write summary.json and the report; returns the summary.

    **Arguments:** ``characterization`` an existing characterization.json (else simulated);
    ``cache_dir`` the SPICE result cache (None = the SPICE layer's default).
    **Raises:** ConfigError when ``out_dir`` holds a run with another config; post-layout:
    ToolNotFoundError (before any simulation) when magic, netgen or PDK_ROOT is missing.
    """
    from imcpnn.circuits.network import PhaseSchedule
    from imcpnn.pnn import load_dataset

    start_s = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = out_dir / "config.json"
    if config_path.is_file() and json.loads(config_path.read_text()) != to_dict(config):
        raise ConfigError(f"{out_dir} holds a run with a different config ({config_path}); use "
                          "another --out folder, or delete it to start afresh")
    to_json(config, config_path)
    elapsed_before = 0.0
    if (out_dir / "stages" / "elapsed.json").is_file():
        elapsed_before = json.loads((out_dir / "stages" / "elapsed.json").read_text())["elapsed_s"]

    data = load_dataset(_train_config(config, 2.0, -2.0, None).data)
    networks, layout = stage_networks(config, out_dir, data.x_test.shape[1], progress)
    network = networks["network"]
    char_stage = stage_characterization(config, out_dir, characterization, cache_dir, progress)
    char = json.loads((out_dir / char_stage["json"]).read_text())
    ctx = Context(config=config, out_dir=out_dir, cache_dir=cache_dir, progress=progress,
                  char=char, network=network, fit_network=networks["trace_fit"],
                  schedule=PhaseSchedule(t_step_max_s=config.t_step_max_s, trtol=config.trtol),
                  x_test=data.x_test.double().numpy(), y_test=data.y_test.numpy())

    dc = dc_parameters(char)
    fit = stage_trace_fit(ctx)
    fitted = PhysicalParameters(**fit["fitted"])
    ideal = PhysicalParameters(e_plus=config.e_ideal, e_minus=-config.e_ideal, e_dis=1e4,
                               current_scale=1.0, v_th_circ_v=char["v_th_circ"])
    physics = {"top_down": ideal, "bottom_up": dc, "trace_fitted": fitted}
    # Bottom-up first: its global scale k is what the circuit needs beyond the DC model, and it
    # multiplies the surrogate start of the top-down search (which sees only the E non-ideality).
    # The trace fit measured true w / nominal w: the circuit needs the inverse scale.
    starts = {"bottom_up": (1.0,), "trace_fitted": (round(1.0 / fitted.current_scale, 2),)}
    results = {}
    for pipeline in ("bottom_up", "top_down", "trace_fitted"):
        model = train_pipeline_model(ctx, pipeline, None if pipeline == "top_down" else physics[pipeline])
        weights = [w.double().numpy() for w in model.dense_weights()]
        model_table = spike_table(model_layer_times(model, ctx.x_test))
        if pipeline == "top_down":
            k = results["bottom_up"]["scale"]
            a, b = surrogate_top_down_scales(model, ctx.x_test, dc, config.search.scale_range)
            starts["top_down"] = (round(a * k, 2), round(b * k, 2))
        search = stage_search(ctx, pipeline, weights, model_table, starts[pipeline])
        results[pipeline] = stage_evaluate(ctx, pipeline, model, physics[pipeline],
                                           tuple(search["best"]))
        if pipeline == "bottom_up" and layout is not None:
            post_layout = post_layout_summary(layout, stage_compare_netlists(ctx, model, search["best"]))
    results = {p: results[p] for p in PIPELINES}

    tables = out_dir / "tables"
    write_csv(tables / "pipelines.csv", pd.DataFrame(
        [{k: v for k, v in r.items() if k not in ("layers", "mapping")} for r in results.values()]))
    write_csv(tables / "layers.csv", pd.DataFrame(
        [row for r in results.values() for row in r["layers"]]))
    elapsed = elapsed_before + time.perf_counter() - start_s
    summary = {
        "rmse_top_down_ns": results["top_down"]["rmse_t_spike_ns"],
        "rmse_bottom_up_ns": results["bottom_up"]["rmse_t_spike_ns"],
        "rmse_trace_fitted_ns": results["trace_fitted"]["rmse_t_spike_ns"],
        "n_test_samples": int(len(ctx.x_test)),
        "netlist_kind": network.netlist_kind,
        "e_plus": float(char["e_plus"]), "e_minus": float(char["e_minus"]),
        "e_dis": float(char["e_dis"]),
        "scale_bottom_up": results["bottom_up"]["scale"],
        "scale_top_down": [results["top_down"]["scale_plus"], results["top_down"]["scale_minus"]],
        "scale_trace_fitted": results["trace_fitted"]["scale"],
        "test_accuracy_model": results["bottom_up"]["accuracy_model"],
        "test_accuracy_spice": results["bottom_up"]["accuracy_spice"],
        "test_accuracy_by_pipeline": {p: {"model": r["accuracy_model"], "spice": r["accuracy_spice"]}
                                      for p, r in results.items()},
        "search_starts": {p: list(starts[p]) for p in PIPELINES},
        "models": char.get("models", {}),
        "elapsed_s": float(elapsed),
        "ratio_bottom_up_over_top_down": results["bottom_up"]["rmse_t_spike_ns"]
        / results["top_down"]["rmse_t_spike_ns"],
        "trace_fit": fit,
        "mapping": {p: r["mapping"] for p, r in results.items()}
        | {"parasitic_estimate": to_dict(network.parasitic),
           "parasitic_method": "wire capacitance per line: C = c_area L w + 2 c_fringe L, met1, "
                               "L = cells crossed x pitch (ParasiticEstimate)"
                               if network.parasitic is not None else None},
        "versions": _versions(char),
        "characterization_figures": char_stage["figures"],
    }
    if layout is not None:
        summary["post_layout"] = post_layout
    check_summary(summary, "summary")
    write_json(out_dir / "summary.json", summary)
    write_json(out_dir / "stages" / "elapsed.json", {"elapsed_s": elapsed})
    render_report(out_dir)
    return summary
