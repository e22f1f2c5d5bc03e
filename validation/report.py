"""The validation report: one folder per run, re-renderable from its saved results alone.

Folder layout (every file is written atomically: a temporary name, then a rename):

    summary.json                   headline numbers (keys in SUMMARY_KEYS) + versions, mapping
    config.json                    the full ValidationConfig
    tables/pipelines.csv           one row per pipeline: RMSE, max error, membrane RMSE, scales, E
    tables/layers.csv              per pipeline and layer: spike-time RMSE, max error, silent neurons
    tables/spikes_<pipeline>.csv   every neuron of every test sample: model vs SPICE
    tables/search_<pipeline>.csv   every simulated candidate of the scale search
    tables/membrane_<pipeline>.csv membrane waveforms of the worst sample (model and SPICE)
    tables/fitted_parameters.csv   trace fit: fitted values, standard errors, DC-derived values
    tables/refitted_parameters.csv the refit on the trace-fitted network (summary trace_fit.refit):
                                   refitted values, standard errors, the trace fit's values
    tables/energy_<pipeline>.csv   energy per inference (J) of the SPICE test run, per layer,
                                   phase and supply group (runs saved before it have none)
    figures/*.png                  drawn from the tables by render_report (characterization
                                   figures are copied in by the run and listed in summary.json)
    post-layout runs only (summary.json has ``post_layout``):
    layout/<network>/              layout (.mag, PNG), extracted and LVS netlists, LVS report
    layout/*.png                   neuron and synapse-array cells
    tables/post_layout_spikes.csv  bottom-up network, schematic vs post-layout spike times
    report.md, report.html         rendered last, only once every input above has been read

:func:`render_report` checks the whole folder first and raises :class:`ResultsError` naming the
first missing or corrupt file, so a broken folder never yields half a report.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imcpnn.config import from_dict, non_default_fields
from imcpnn.errors import ConfigError, ResultsError
from imcpnn.rundir import write_json_atomic
from imcpnn.validation._config import ValidationConfig, upgrade_config_data
from imcpnn.validation._document import Code, Heading, Image, Paragraph, Table, to_html, to_markdown
from imcpnn.validation._metrics import require_columns
from imcpnn.validation._post_layout import SPIKES_CSV_COLUMNS

PIPELINES = ("top_down", "bottom_up", "trace_fitted")
PIPELINE_TITLES = {"top_down": "top-down (ideal ANN, E = 100)",
                   "bottom_up": "bottom-up (characterized circuit model)",
                   "trace_fitted": "trace-fitted (transient fit)"}

#: summary.json contract: key -> allowed JSON types (other tools read these keys).
SUMMARY_KEYS = {
    "rmse_top_down_ns": (float,), "rmse_bottom_up_ns": (float,), "rmse_trace_fitted_ns": (float,),
    "n_test_samples": (int,), "netlist_kind": (str,), "e_plus": (float,), "e_minus": (float,),
    "e_dis": (float,), "scale_bottom_up": (float,), "scale_top_down": (list,),
    "test_accuracy_model": (float,), "test_accuracy_spice": (float,), "models": (dict,),
    "elapsed_s": (float,), "calibration": (dict,), "discharger": (str,),
    **{f"{k}_{p}{unit}": types for p in ("top_down", "bottom_up", "trace_fitted")
       for k, unit, types in (("rmse_spiking", "_ns", (float, type(None))), ("bias", "_ns", (float,)),
                              ("n_silent_mismatch", "", (int,)))},
    "error_budget": (list,),
    "energy_per_inference_j": (float, type(None)), "energy_per_synop_j": (float, type(None)),
}

# rmse_spiking_<pipeline>_ns is null when no output neuron spikes on both sides.

#: Keys of SUMMARY_KEYS added after runs were saved without them: a summary may lack them (read
#: as not measured); null means not measured too (energy: the supplies were not saved; per
#: synaptic operation: no input spike reached a nonzero weight).
OPTIONAL_SUMMARY_KEYS = frozenset({"energy_per_inference_j", "energy_per_synop_j"})

#: summary.json's ``post_layout`` (post-layout runs only): key -> allowed JSON types.
POST_LAYOUT_KEYS = {
    "rmse_schematic_vs_post_layout_ns": (float,), "max_abs_diff_schematic_vs_post_layout_ns": (float,),
    "mean_diff_post_layout_minus_schematic_ns": (float,), "layers": (list,), "t_phase_s": (float,),
    "rmse_schematic_own_mapping_vs_post_layout_ns": (float,),
    "mean_diff_post_layout_minus_schematic_own_mapping_ns": (float,),
    "c_m_extracted_f": (float,), "c_m_recovered_f": (float,), "c_m_schematic_f": (float,),
    "c_m_extracted_f_per_layer": (list,), "c_m_recovered_f_per_layer": (list,),
    "ratio_recovered_over_extracted": (float,), "layouts": (dict,), "cell_figures": (list,),
    "layout_elapsed_s": (float,),
}

TABLE_COLUMNS = {
    "pipelines.csv": ("pipeline", "rmse_t_spike_ns", "max_abs_err_t_spike_ns", "rmse_v_membrane_mv",
                      "scale", "scale_plus", "scale_minus", "e_plus", "e_minus", "e_dis",
                      "accuracy_model", "accuracy_spice", "worst_sample"),
    "layers.csv": ("pipeline", "layer", "rmse_t_spike_ns", "max_abs_err_t_spike_ns",
                   "n_silent_model", "n_silent_spice"),
    "spikes": ("sample", "layer", "neuron", "t_model", "t_spice", "err_t_spike_ns"),
    "search": ("scale", "scale_plus", "scale_minus", "level", "rmse_t_spike_ns"),
    "membrane": ("t_s", "layer", "neuron", "v_model_v", "v_spice_v"),
    "fitted_parameters.csv": ("parameter", "fitted", "stderr", "fixed", "dc_derived"),
    "refitted_parameters.csv": ("parameter", "fitted", "stderr", "fixed", "trace_fit"),
    "post_layout_spikes.csv": SPIKES_CSV_COLUMNS,
}


def _strict(value):
    """JSON-safe copy: NaN and infinities become null (strict JSON readers reject NaN)."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path: Path, data: dict) -> None:
    """Write strict JSON (NaN and inf as null) atomically, so an interruption never leaves half a file."""
    write_json_atomic(path, _strict(data))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write a CSV atomically (tmp + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def table_name(kind: str, pipeline: str) -> str:
    """File name of a per-pipeline table: ``spikes_bottom_up.csv``."""
    return f"{kind}_{pipeline}.csv"


@dataclass(frozen=True)
class Results:
    """Everything a report is drawn from, as read back from a run folder."""

    run_dir: Path
    summary: dict
    config: ValidationConfig
    tables: dict
    """file name -> DataFrame."""


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ResultsError(f"{path} is missing: the run did not finish; rerun the same command "
                           "to resume it")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsError(f"{path} is corrupt ({err}); delete it and rerun to regenerate") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path} is corrupt: expected a JSON object")
    return data


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise ResultsError(f"{path} is missing: the run did not finish; rerun the same command "
                           "to resume it")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ResultsError(f"{path} is corrupt ({err}); delete it and rerun to regenerate") from None
    require_columns(frame, columns, str(path))
    if frame.empty:
        raise ResultsError(f"{path} is corrupt: it has no rows; delete it and rerun")
    return frame


def check_summary(summary: dict, source: str, keys: dict = SUMMARY_KEYS,
                  optional: frozenset = OPTIONAL_SUMMARY_KEYS) -> None:
    """Raise ResultsError unless ``summary`` has every key of ``keys`` (those in ``optional``
    may be absent) with a sane type."""
    for key, types in keys.items():
        if key not in summary:
            if key in optional:
                continue
            raise ResultsError(f"{source} is corrupt: key {key!r} is missing")
        value = summary[key]
        ok = isinstance(value, types) and not isinstance(value, bool)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ResultsError(f"{source} is corrupt: {key}={value!r} should be of type "
                               f"{'/'.join(t.__name__ for t in types)}")


def load_results(run_dir: str | Path) -> Results:
    """Read and check every input of the report; ResultsError names the first bad file."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir} is not a folder; give the --out folder of "
                           "`imcpnn validate` or `imcpnn demo`")
    summary = _read_json(run_dir / "summary.json")
    check_summary(summary, str(run_dir / "summary.json"))
    try:
        config = from_dict(ValidationConfig, upgrade_config_data(_read_json(run_dir / "config.json")))
    except ConfigError as err:
        raise ResultsError(f"{run_dir / 'config.json'} is corrupt: {err}") from None
    tables = {}
    for name in ("pipelines.csv", "layers.csv", "fitted_parameters.csv"):
        tables[name] = _read_csv(run_dir / "tables" / name, TABLE_COLUMNS[name])
    for pipeline in PIPELINES:
        for kind in ("spikes", "search", "membrane"):
            name = table_name(kind, pipeline)
            tables[name] = _read_csv(run_dir / "tables" / name, TABLE_COLUMNS[kind])
    if (summary.get("trace_fit") or {}).get("refit"):
        name = "refitted_parameters.csv"
        tables[name] = _read_csv(run_dir / "tables" / name, TABLE_COLUMNS[name])
    for rel in summary.get("characterization_figures", []):
        if not (run_dir / rel).is_file():
            raise ResultsError(f"{run_dir / rel} is missing (a characterization figure listed in "
                               "summary.json); rerun the same command to resume")
    if "post_layout" in summary:
        post = summary["post_layout"]
        if not isinstance(post, dict):
            raise ResultsError(f"{run_dir / 'summary.json'} is corrupt: post_layout is not an object")
        check_summary(post, f"{run_dir / 'summary.json'} (post_layout)", POST_LAYOUT_KEYS)
        name = "post_layout_spikes.csv"
        tables[name] = _read_csv(run_dir / "tables" / name, TABLE_COLUMNS[name])
        pngs = [rec.get("files", {}).get("png") for rec in post["layouts"].values()]
        for rel in [*pngs, *post["cell_figures"]]:
            if not rel or not (run_dir / rel).is_file():
                raise ResultsError(f"layout figure {run_dir / str(rel)} listed in summary.json is "
                                   "missing; delete stages/layout.json and rerun to redo the layout")
    return Results(run_dir=run_dir, summary=summary, config=config, tables=tables)


# ----------------------------------------------------------------------------------------- figures
def _subplots(*args, figsize, **kwargs):
    """(figure, axes) on a bare Agg Figure: no pyplot, no ``matplotlib.use`` (the caller's
    backend and open figures stay untouched)."""
    from imcpnn.circuits.characterization import agg_figure

    fig = agg_figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def _save(fig, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    return f"figures/{path.name}"


def _histograms(results: Results) -> str:
    fig, axes = _subplots(1, len(PIPELINES), figsize=(4 * len(PIPELINES), 3), sharey=True)
    for ax, pipeline in zip(axes, PIPELINES):
        table = results.tables[table_name("spikes", pipeline)]
        err = table[table["layer"] == table["layer"].max()]["err_t_spike_ns"]
        ax.hist(err, bins=30, color="tab:blue")
        ax.set_title(PIPELINE_TITLES[pipeline], fontsize=9)
        ax.set_xlabel("t_model - t_SPICE (ns), output layer")
    axes[0].set_ylabel("neurons x samples")
    return _save(fig, results.run_dir / "figures" / "spike_time_differences.png")


def _membrane_overlay(results: Results, pipeline: str, worst: int) -> str:
    table = results.tables[table_name("membrane", pipeline)]
    layers = sorted(table["layer"].unique())
    fig, axes = _subplots(1, len(layers), figsize=(5 * len(layers), 3.2), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        part = table[table["layer"] == layer]
        for k, (neuron, trace) in enumerate(part.groupby("neuron")):
            color = f"C{k}"
            ax.plot(trace["t_s"] * 1e6, trace["v_spice_v"], color=color, lw=1.2,
                    label=f"neuron {neuron}")
            ax.plot(trace["t_s"] * 1e6, trace["v_model_v"], color=color, ls="--", lw=1.2)
        ax.set_title(f"layer {layer}: SPICE solid, model dashed", fontsize=9)
        ax.set_xlabel("time in accumulation window (us)")
        ax.set_ylabel("membrane (V)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{PIPELINE_TITLES[pipeline]}: worst test sample {worst}", fontsize=10)
    return _save(fig, results.run_dir / "figures" / f"membrane_{pipeline}.png")


def _search_words(search) -> str:
    """How the scale search chose its candidates, in words (method, steps, resolution)."""
    steps = list(search.steps)
    if search.method == "gauss-newton":
        guide = ("; its slope is the pipeline's own model's, corrected by the candidates"
                 if getattr(search, "model_guide", False) else "")
        return (f"the search fits a linear model of every output spike-time error to the candidates "
                f"(Gauss-Newton{guide}) and simulates the minimum of its mean square inside a trust region "
                f"(initial step {steps[0]}, resolution {steps[-1]}, stopping when the model predicts "
                f"less than {search.tol_ns} ns to gain)")
    if search.method == "quadratic":
        return (f"the search fits a quadratic model of the MSE to the candidates and simulates its "
                f"minimum inside a trust region (initial step {steps[0]}, resolution {steps[-1]}, "
                f"stopping when the model predicts less than {search.tol_ns} ns to gain)")
    return f"the search refines coarse-to-fine to the last step of {steps} (relative)"


def _search_curve(results: Results, pipeline: str) -> str:
    table = results.tables[table_name("search", pipeline)]
    fig, ax = _subplots(figsize=(5, 3.2))
    if pipeline == "top_down":
        sc = ax.scatter(table["scale_plus"], table["scale_minus"], c=table["rmse_t_spike_ns"],
                        cmap="viridis", s=25)
        best = table.loc[table["rmse_t_spike_ns"].idxmin()]
        ax.plot(best["scale_plus"], best["scale_minus"], "r*", ms=12, label="best")
        fig.colorbar(sc, ax=ax, label="output RMSE (ns)")
        ax.set_xlabel("scale_plus")
        ax.set_ylabel("scale_minus")
        ax.legend(fontsize=7)
    else:
        ordered = table.sort_values("scale")
        ax.plot(ordered["scale"], ordered["rmse_t_spike_ns"], "o-", ms=3)
        ax.set_xlabel("global current scale")
        ax.set_ylabel("output RMSE (ns)")
    ax.set_title(f"scale search: {PIPELINE_TITLES[pipeline]}", fontsize=9)
    return _save(fig, results.run_dir / "figures" / f"search_{pipeline}.png")


def _netlist_scatter(results: Results) -> str:
    """Post-layout vs schematic spike times (ns in the firing window), one colour per layer:
    left the schematic with the same gate biases, right with its own mapping (C_m = MIM)."""
    table = results.tables["post_layout_spikes.csv"]
    t_ns = results.summary["post_layout"]["t_phase_s"] * 1e9
    fig, axes = _subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, column, title in ((axes[0], "t_schematic", "schematic with the same gate biases"),
                              (axes[1], "t_schematic_own_mapping", "schematic with its own mapping")):
        for layer, part in table.groupby("layer"):
            ax.scatter(part[column] * t_ns, part["t_post_layout"] * t_ns, s=14, alpha=0.7,
                       label=f"layer {layer}")
        ax.plot([0, t_ns], [0, t_ns], color="0.5", lw=0.8, ls="--", label="equal")
        ax.set_xlabel("schematic spike time (ns in firing window)")
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("post-layout spike time (ns)")
    axes[0].legend(fontsize=7)
    return _save(fig, results.run_dir / "figures" / "schematic_vs_post_layout.png")


def _post_layout_blocks(results: Results) -> list:
    """The post-layout section: layouts, checks, schematic vs post-layout, recovered C."""
    p = results.summary["post_layout"]
    fF = 1e15
    checks = pd.DataFrame([
        {"layout": name, "cell": rec.get("cell"), "widths": rec.get("widths"),
         "drc_errors": rec.get("drc_errors"), "lvs": "match" if rec.get("lvs_match") else "MISMATCH",
         "devices": sum((rec.get("device_counts") or {}).values()),
         "devices_as_schematic": rec.get("device_counts") == rec.get("schematic_device_counts"),
         "parasitic_C": rec.get("n_parasitic_capacitors"), "parasitic_R": rec.get("n_parasitic_resistors"),
         "parasitic_C_total_fF": rec.get("parasitic_capacitance_total_f", math.nan) * fF,
         "membrane_fF_per_layer": [round(c * fF, 2) for c in rec.get("membrane_f_per_layer", [])]}
        for name, rec in p["layouts"].items()])
    blocks = [
        Heading("Post-layout: generated layout, DRC, extraction, LVS"),
        Paragraph("Every SPICE run of this report used the netlist extracted from the generated sky130 "
                  "layout (magic: devices and parasitic capacitances), checked by magic's DRC and by "
                  "netgen LVS against the schematic; the weight mapping used the extracted membrane "
                  f"capacitance (MiM plus wiring). Layout, checks and extraction took "
                  f"{_fmt_float(p['layout_elapsed_s'])} s."),
        Table(checks, "Layout checks: DRC errors, LVS verdict, extracted devices and parasitics, "
                      "membrane capacitance per layer (mean over the layer's neurons)"),
    ]
    for name, rec in p["layouts"].items():
        blocks.append(Image(rec["files"]["png"], f"Layout of {name} ({rec.get('cell')}), layers coloured"))
    for rel in p["cell_figures"]:
        blocks.append(Image(rel, f"Cell layout: {Path(rel).stem.replace('_', ' ')}"))
    table = results.tables["post_layout_spikes.csv"]
    t_ns = p["t_phase_s"] * 1e9
    last = table[table["layer"] == table["layer"].max()]
    first = last[last["sample"] < 5]
    side = pd.DataFrame({"sample": first["sample"], "neuron": first["neuron"],
                         "t_schematic_ns": first["t_schematic"] * t_ns,
                         "t_post_layout_ns": first["t_post_layout"] * t_ns,
                         "diff_ns": first["diff_t_spike_ns"],
                         "t_schematic_own_mapping_ns": first["t_schematic_own_mapping"] * t_ns})
    c_rows = pd.DataFrame({
        "layer": range(len(p["c_m_extracted_f_per_layer"])),
        "C_MIM_schematic_fF": p["c_m_schematic_f"] * fF,
        "C_extracted_fF": [c * fF for c in p["c_m_extracted_f_per_layer"]],
        "C_recovered_fF": [c * fF for c in p["c_m_recovered_f_per_layer"]],
        "recovered_over_extracted": p["ratio_recovered_over_extracted"]})
    blocks += [
        Heading("Schematic vs post-layout spike times", 3),
        Paragraph("The bottom-up network at its tuned scale, simulated on the schematic netlist (no "
                  "parasitics) and on the post-layout one with identical gate biases: the difference "
                  "is what the layout's parasitics do to this circuit. Output layer: RMSE between the "
                  f"two {_fmt_float(p['rmse_schematic_vs_post_layout_ns'])} ns, mean shift "
                  f"(post-layout - schematic) {_fmt_float(p['mean_diff_post_layout_minus_schematic_ns'])} "
                  f"ns, largest {_fmt_float(p['max_abs_diff_schematic_vs_post_layout_ns'])} ns "
                  "(tables/post_layout_spikes.csv has every neuron). With the schematic's own "
                  "mapping (C_m = MIM) at the same scale instead, the RMSE is "
                  f"{_fmt_float(p['rmse_schematic_own_mapping_vs_post_layout_ns'])} ns (mean shift "
                  f"{_fmt_float(p['mean_diff_post_layout_minus_schematic_own_mapping_ns'])} ns): the "
                  "part of the layout's effect that mapping with the extracted C_m does not capture."),
        Table(pd.DataFrame(p["layers"]), "Per layer: post-layout - schematic spike time (ns), "
                                         "silent neurons on each netlist"),
        Image(_netlist_scatter(results), "Spike times, post-layout vs schematic netlist: same gate "
                                         "biases (left), schematic's own mapping (right)"),
        Table(side, "Output spike times of the first test samples, side by side (ns in the firing "
                    "window; silent neurons at the window end)"),
        Heading("Membrane capacitance: recovered vs extracted", 3),
        Paragraph("The mapping sets I = C_m V_th |w| / T x k with C_m the extracted capacitance and k "
                  "the bottom-up scale. The circuit integrates I on its effective capacitance C_eff, "
                  "so model and circuit agree when C_eff = k C_m: the scale search recovers "
                  f"C_eff = {_fmt_float(p['c_m_recovered_f'] * fF)} fF against the extracted "
                  f"{_fmt_float(p['c_m_extracted_f'] * fF)} fF (mean over layers; ratio "
                  f"{_fmt_float(p['ratio_recovered_over_extracted'])} = k). The extraction counts the "
                  "MiM and the wiring; the device capacitances on the membrane (synapse drain "
                  "junctions, the sensing gate, the reset and discharger junctions) live in the "
                  "transistor models, so C_eff above the extracted value is expected. k also absorbs "
                  "any other current-scale error (source current away from V_D = V0, switch charge), "
                  "so C_eff is an effective value; the schematic's MIM alone is "
                  f"{_fmt_float(p['c_m_schematic_f'] * fF)} fF."),
        Table(c_rows, "Membrane capacitance per layer"),
    ]
    return blocks


# ------------------------------------------------------------------------------------------ energy
def _energy_blocks(s: dict) -> list:
    """The Energy section: the bottom-up network's energy per inference and per synaptic
    operation and its breakdown (summary['energy']), or a note that it was not measured."""
    energy = s.get("energy")
    if not isinstance(energy, dict) or not isinstance(s.get("energy_per_inference_j"), (int, float)):
        return [Heading("Energy"),
                Paragraph("Energy: not measured (this run was saved before imcpnn accounted for "
                          "energy, or its SPICE runs did not save the supply currents).")]
    pj, fj = 1e12, 1e15
    table = pd.DataFrame(energy.get("table", []))
    per_synop = s.get("energy_per_synop_j")
    per_synop = (f"{_fmt_float(per_synop * fj)} fJ per synaptic operation"
                 if isinstance(per_synop, (int, float)) and math.isfinite(per_synop)
                 else "no energy per synaptic operation (no input spike reached a nonzero weight)")
    blocks = [
        Heading("Energy"),
        Paragraph(f"Bottom-up network, SPICE test run: {_fmt_float(s['energy_per_inference_j'] * pj)} pJ "
                  f"per inference, {per_synop} ({_fmt_float(energy.get('n_synops_per_inference'))} "
                  f"synaptic operations per inference on average over {energy.get('n_samples')} "
                  "samples). Measured by integrating the power v i that every source of the "
                  "testbench delivers (its branch current saved, trapezoidal rule on ngspice's time "
                  "points) over each layer's reset, accumulation and firing windows; a synaptic "
                  "operation is one input spike reaching "
                  "one synapse with a nonzero weight. The synapses' NMOS currents (w > 0) discharge "
                  "the membrane, whose charge V0 restores in the next reset (neuron_bias, reset)."),
    ]
    if not table.empty and {"layer", "phase", "group", "energy_j"} <= set(table.columns):
        wide = (table.assign(energy_pj=table["energy_j"] * pj)
                .pivot_table(index=["layer", "group"], columns="phase", values="energy_pj",
                             aggfunc="sum", sort=False)
                .reset_index())
        wide.columns = [c if c in ("layer", "group") else f"{c}_pJ" for c in wide.columns]
        wide["total_pJ"] = wide[[c for c in wide.columns if c.endswith("_pJ")]].sum(axis=1)
        shared = "; layer -1: rails shared by every layer (post-layout core)" if (wide["layer"] < 0).any() else ""
        blocks.append(Table(wide, "Energy per inference (pJ) per layer and supply group, per phase: "
                                  "array_neurons is the layer's VDD (synapse array and neurons), the "
                                  f"other groups are bias generators and drivers (ideal sources){shared}"))
    per_layer = pd.DataFrame(energy.get("per_layer", []))
    if not per_layer.empty:
        blocks.append(Table(pd.DataFrame({
            "layer": per_layer["layer"], "energy_pJ": per_layer["energy_j"] * pj,
            "synops_per_inference": per_layer["n_synops"],
            "energy_per_synop_fJ": pd.to_numeric(per_layer["energy_per_synop_j"], errors="coerce") * fj}),
            "Per layer: energy per inference and per synaptic operation"))
    return blocks


# ------------------------------------------------------------------------------------------ report
def _fmt_float(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and math.isfinite(value) else str(value)


def _fit_source(fit: dict) -> str:
    """What the trace fit fitted (summary['trace_fit']['source']; the testbench before it was saved)."""
    return ("the bottom-up network's transients on the calibration samples" if fit.get("source") == "network"
            else "transient testbench")


def _refit_clause(fit: dict) -> str:
    """The headline's note that the trace-fitted RMSE is the refitted parameters', with the one
    before the refit (empty where the run did not refit)."""
    refit = fit.get("refit")
    return "" if not refit else (f", refitted to its own network's calibration runs "
                                 f"({_fmt_float(refit['rmse_before_ns'])} ns before)")


def _cross_sentence(fit: dict) -> str:
    """The headline's clause on the trace-fitted parameters predicting the bottom-up network
    (empty where the summary predates it)."""
    cross = fit.get("on_bottom_up_network")
    return "" if not cross else (f"; the trace-fitted parameters on the bottom-up network's SPICE run "
                                 f"{_fmt_float(cross['rmse_ns'])} ns")


def _refit_paragraph(fit: dict) -> str:
    """What the refit on the trace-fitted network did (summary['trace_fit']['refit'])."""
    refit = fit["refit"]
    t_ns = (refit.get("rms_t_spike") or math.nan) * 1e3
    return (f"Refit: the trace-fitted network (trained with the parameters above, mapped at its "
            f"searched scale) is another circuit than the one they were fitted to. From them, the "
            f"parameters were refitted to the same traces of that network on the calibration "
            f"samples (residuals: membrane {_fmt_float(refit.get('rms_v_membrane_mv'))} mV RMS, "
            f"spike time {_fmt_float(t_ns)} ns RMS over {refit.get('n_spiking')} spikes). Its test "
            f"run, unseen by either fit, is predicted at {_fmt_float(refit['rmse_ns'])} ns output "
            f"RMSE with the refitted parameters and at {_fmt_float(refit['rmse_before_ns'])} ns "
            "with the parameters it trained with.")


def _fit_paragraph(fit: dict) -> str:
    """Residual summary of the trace fit (summary['trace_fit'])."""
    if not fit:
        return "No trace-fit diagnostics were saved."
    t_ns = (fit.get("rms_t_spike") or math.nan) * 1e3  # normalized to a 1 us phase -> ns
    text = (f"Trace-fit residuals: membrane {_fmt_float(fit.get('rms_v_membrane_mv'))} mV RMS, "
            f"spike time {_fmt_float(t_ns)} ns RMS (T = 1 us) over {fit.get('n_spiking')} "
            f"spikes; {fit.get('n_residuals')} residuals; solver: {str(fit.get('message')).rstrip('.')}")
    cross = fit.get("on_bottom_up_network")
    if cross:  # saved since the trace fit on the network: one circuit, two parameter sets
        text += (f". On one circuit, the bottom-up network's SPICE test run (held out from the fit): the "
                 f"trace-fitted parameters predict its output spikes at {_fmt_float(cross['rmse_ns'])} ns RMSE "
                 f"(per layer {', '.join(_fmt_float(x) for x in cross['rmse_per_layer_ns'])} ns), its DC "
                 f"parameters (the bottom-up model) at {_fmt_float(cross['rmse_bottom_up_ns'])} ns; the "
                 "trace-fitted pipeline's own RMSE above also holds its own training and scale search")
    return text


def _mapping_table(mapping: dict) -> pd.DataFrame:
    """One row per pipeline from summary['mapping'] (empty frame when absent)."""
    rows = []
    for pipeline in PIPELINES:
        m = mapping.get(pipeline)
        if not isinstance(m, dict):
            continue
        rows.append({"pipeline": pipeline, **m.get("scales", {}),
                     "c_m_fF": [round(c * 1e15, 2) for c in m.get("c_m_f_per_layer", [])],
                     "v_th_circ_v": m.get("v_th_circ"), "v_switch_v": m.get("v_switch"),
                     "vg_dis_v": [round(v, 4) for v in m.get("vg_dis_v_per_layer", [])],
                     "t_phase_us": m.get("t_phase_s", math.nan) * 1e6})
    return pd.DataFrame(rows)


def _dynamics_paragraph(d: dict) -> str:
    if not d:
        return "Bottom-up circuit terms: not recorded."
    p, e = d.get("parameters", {}), d.get("stderr", {})
    T_ns = 1000.0

    def pm(name, scale=1.0, unit=""):
        return f"{_fmt_float(p.get(name, math.nan) * scale)} +- {_fmt_float(e.get(name, math.nan) * scale)}{unit}"

    return ("Bottom-up circuit terms, measured on the characterization testbench "
            f"({d.get('n_patterns')} patterns, {d.get('n_spiking')} spiking neurons): C_eff = "
            f"{_fmt_float(d.get('c_eff_f', math.nan) * 1e15)} fF against a design C_m of "
            f"{_fmt_float(d.get('c_m_design_f', math.nan) * 1e15)} fF (charge measurement, membrane "
            f"residual {_fmt_float(d.get('rms_v_membrane_mv'))} mV RMS); discharge rate "
            f"{_fmt_float(p.get('dis_rate', math.nan))} = k* C_m / C_eff; firing delay "
            f"{pm('t_delay', T_ns, ' ns')} (at T = 1 us); kick per active synapse q_plus {pm('q_plus')}, "
            f"q_minus {pm('q_minus')} (normalized membrane units); spike residual "
            f"{_fmt_float(d.get('rms_t_spike_ns'))} ns RMS." + _fanout_and_neurons(d))


def _fanout_and_neurons(d: dict) -> str:
    """The load delay and the per-neuron terms of summary.json's ``dynamics``, where measured."""
    text = ""
    load = d.get("load_delay") or {}
    if load.get("per_fanout") is not None:
        text += (f" Load delay of a hidden output: {_fmt_float(load.get('mean_shift_ns'))} ns for "
                 f"fan-out {load.get('fan_out')} (the testbench with a loading second layer).")
    driven = d.get("driven_kick") or {}
    if driven.get("dq_plus") is not None and driven.get("dq_minus") is not None:
        enc, drv = driven.get("encoder") or {}, driven.get("driven") or {}
        text += (f" Kick per active synapse driven by a neuron instead of the input encoder (two-sample "
                 f"probes at discharger factor {_fmt_float(driven.get('factor'))}): q_plus "
                 f"{_fmt_float(drv.get('plus'))} against {_fmt_float(enc.get('plus'))}, q_minus "
                 f"{_fmt_float(drv.get('minus'))} against {_fmt_float(enc.get('minus'))}; the layers after "
                 f"the first add dq_plus {_fmt_float(driven['dq_plus'])}, dq_minus "
                 f"{_fmt_float(driven['dq_minus'])} to their kick.")
    elif driven.get("note"):
        text += f" Kick of neuron-driven inputs not measured: {driven['note']}."
    neurons = d.get("neurons") or {}
    if neurons.get("c_factor_range"):
        lo, hi = neurons["c_factor_range"]
        d_lo, d_hi = neurons["delay_offset_ns_range"]
        text += (f" Each network neuron against its layer's mean (no-input runs over the discharger grid): "
                 f"capacitance factor {_fmt_float(lo)} to {_fmt_float(hi)}, firing-delay offset "
                 f"{_fmt_float(d_lo)} to {_fmt_float(d_hi)} ns ({neurons.get('n_unfitted')} neurons not fitted).")
    if neurons.get("coupling_max"):
        text += (f" Neighbouring membranes are coupled by their extracted mutual capacitance, up to "
                 f"{_fmt_float(100 * neurons['coupling_max'])} % of a membrane's own: the bottom-up and "
                 "trace-fitted models solve each layer's membranes together (both phases), and fit the "
                 "testbench's neurons apart from their neighbours.")
    return text


def build_document(results: Results) -> list:
    """The report as blocks (figures are drawn into ``run_dir/figures`` on the way)."""
    s, t = results.summary, results.tables
    pipelines = t["pipelines.csv"].set_index("pipeline")
    ratio = s["rmse_top_down_ns"] / s["rmse_bottom_up_ns"] if s["rmse_bottom_up_ns"] > 0 else math.nan
    blocks = [
        Heading("imcpnn validation report: model vs SPICE", 1),
        Paragraph(f"Test samples: {s['n_test_samples']}. Netlist kind: {s['netlist_kind']}. "
                  f"Output-layer spike-time RMSE: top-down {_fmt_float(s['rmse_top_down_ns'])} ns, "
                  f"bottom-up {_fmt_float(s['rmse_bottom_up_ns'])} ns, trace-fitted "
                  f"{_fmt_float(s['rmse_trace_fitted_ns'])} ns{_refit_clause(s.get('trace_fit') or {})}; "
                  f"top-down / bottom-up = {_fmt_float(ratio)}{_cross_sentence(s.get('trace_fit') or {})}. "
                  "Test accuracy: model "
                  f"{_fmt_float(s['test_accuracy_model'])}, "
                  f"SPICE {_fmt_float(s['test_accuracy_spice'])} (bottom-up network; every pipeline's in the "
                  "table below). "
                  f"Run time {_fmt_float(s['elapsed_s'])} s."),
        Heading("Protocol"),
        Paragraph(str(s.get("protocol", "(not recorded)"))),
        Paragraph("How errors count: a spike time is compared in its own firing window "
                  "(normalized to the phase length, reported in ns). A neuron that does not spike "
                  "in its window counts at the window end (t = 1), where the model puts a neuron "
                  "that never reaches threshold; silent neurons are counted in the layer table. "
                  "rmse_spiking_ns is over neurons that spike on both sides only, n_silent_mismatch "
                  "counts neurons silent on one side only, mean_err_t_spike_ns is the bias "
                  "(model - SPICE)."),
        Heading("Model vs SPICE: spike-time error"),
        Table(pipelines.reset_index()[list(TABLE_COLUMNS["pipelines.csv"])],
              "One row per pipeline: output-layer RMSE and max error (ns), membrane RMSE over the "
              "accumulation window (mV), tuned current scales, E values, accuracies"),
        Table(t["layers.csv"], "Per layer (0 = hidden, last = output)"),
        Table(pd.DataFrame(s.get("error_budget", [])),
              "Error budget: held-out output RMSE of the bottom-up network's SPICE test run against "
              "its model with the circuit terms added in turn (same weights, run and scales; the "
              "last row is the bottom-up RMSE)"),
        Paragraph(_dynamics_paragraph(s.get("dynamics", {}))),
        Image(_histograms(results), "Histograms of output spike-time differences, model - SPICE"),
        Heading("Membrane waveforms of the worst sample"),
    ]
    for pipeline in PIPELINES:
        worst = int(pipelines.loc[pipeline, "worst_sample"])
        blocks.append(Image(_membrane_overlay(results, pipeline, worst),
                            f"{PIPELINE_TITLES[pipeline]}: membrane voltage, model (dashed) vs SPICE "
                            f"(solid), worst test sample {worst}"))
    blocks.append(Heading("Current-scale searches"))
    n_search = results.config.search.n_samples
    cal = s.get("calibration", {})
    blocks.append(Paragraph("Every candidate below is one batched ngspice run over the "
                            f"{cal.get('n_samples', n_search)} calibration samples (source: "
                            f"{cal.get('source', '?')}; RMSE on those, the tables above use the test "
                            "samples at the best scales); "
                            f"{_search_words(results.config.search)}. Start points "
                            f"{json.dumps(s.get('search_starts', {}))}: each pipeline from its own "
                            "mapping (k = 1, or (1, 1) for top-down); none reads another's result."))
    for pipeline in PIPELINES:
        blocks.append(Image(_search_curve(results, pipeline),
                            f"Output RMSE vs current scale, {PIPELINE_TITLES[pipeline]}"))
    if "post_layout" in s:
        blocks += _post_layout_blocks(results)
    blocks += _energy_blocks(s)
    blocks += [
        Heading("Device characterization and E values"),
        Paragraph(f"DC-derived: E_plus = {_fmt_float(s['e_plus'])}, E_minus = "
                  f"{_fmt_float(s['e_minus'])}, E_dis = {_fmt_float(s['e_dis'])}."),
    ]
    for rel in s.get("characterization_figures", []):
        blocks.append(Image(rel, f"Characterization: {Path(rel).stem.replace('_', ' ')}"))
    blocks += [
        Table(t["fitted_parameters.csv"], f"Trace fit ({_fit_source(s.get('trace_fit', {}))}): fitted values with "
              "1-sigma standard errors from s^2 (J^T J)^-1, next to the DC-derived values (rows "
              "marked fixed are held at them: V_th_circ by default, the DC switch point)"),
        Paragraph(_fit_paragraph(s.get("trace_fit", {}))),
    ]
    if (s.get("trace_fit") or {}).get("refit"):
        blocks += [Table(t["refitted_parameters.csv"], "Refit on the trace-fitted network's calibration "
                         "runs: refitted values with 1-sigma standard errors, next to the trace fit's"),
                   Paragraph(_refit_paragraph(s["trace_fit"]))]
    blocks += [
        Heading("Mapping settings"),
        Paragraph("Weight w -> current I = C_m V_th_circ |w| / T x scale x scale_plus (w > 0, NMOS "
                  "source) or x scale_minus (w < 0, PMOS source); I -> gate bias by inverting the "
                  "characterized I_D(V_G) at V_D = V0."),
        Table(_mapping_table(s.get("mapping", {})), "Mapping per pipeline, at the tuned scales"),
        Paragraph("Parasitic estimate: " + str(s.get("mapping", {}).get("parasitic_method", "none"))
                  + "; parameters " + json.dumps(s.get("mapping", {}).get("parasitic_estimate"))),
        Heading("Configuration"),
        Paragraph("Fields that differ from the defaults:"),
        Code(json.dumps(non_default_fields(results.config), indent=2) or "{}"),
        Paragraph("Full configuration (config.json):"),
        Code((results.run_dir / "config.json").read_text().strip()),
        Heading("Tools and models"),
        Code(json.dumps({"models": s["models"], **s.get("versions", {})}, indent=2)),
    ]
    return blocks


def render_report(run_dir: str | Path) -> Path:
    """(Re)draw figures and write report.md and report.html from the saved results; no simulation.

    Raises:
        ResultsError: a missing or corrupt file in ``run_dir`` (named in the message); nothing is
            written in that case.
    """
    results = load_results(run_dir)
    blocks = build_document(results)
    md_path, html_path = results.run_dir / "report.md", results.run_dir / "report.html"
    for path, text in ((md_path, to_markdown(blocks)),
                       (html_path, to_html(blocks, results.run_dir, "imcpnn validation report"))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return md_path

