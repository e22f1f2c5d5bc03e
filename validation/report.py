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
    figures/*.png                  drawn from the tables by render_report (characterization
                                   figures are copied in by the run and listed in summary.json)
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
from imcpnn.validation._config import ValidationConfig
from imcpnn.validation._document import Code, Heading, Image, Paragraph, Table, to_html, to_markdown
from imcpnn.validation._metrics import require_columns

PIPELINES = ("top_down", "bottom_up", "trace_fitted")
PIPELINE_TITLES = {"top_down": "top-down (ideal ANN, E = 100)",
                   "bottom_up": "bottom-up (DC characterization)",
                   "trace_fitted": "trace-fitted (transient fit)"}

#: summary.json contract: key -> allowed JSON types (other tools read these keys).
SUMMARY_KEYS = {
    "rmse_top_down_ns": (float,), "rmse_bottom_up_ns": (float,), "rmse_trace_fitted_ns": (float,),
    "n_test_samples": (int,), "netlist_kind": (str,), "e_plus": (float,), "e_minus": (float,),
    "e_dis": (float,), "scale_bottom_up": (float,), "scale_top_down": (list,),
    "test_accuracy_model": (float,), "test_accuracy_spice": (float,), "models": (dict,),
    "elapsed_s": (float,),
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
    """Write strict JSON atomically (tmp + rename) so an interruption never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_strict(data), indent=2) + "\n")
    os.replace(tmp, path)


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


def check_summary(summary: dict, source: str) -> None:
    """Raise ResultsError unless ``summary`` has every key of SUMMARY_KEYS with a sane type."""
    for key, types in SUMMARY_KEYS.items():
        if key not in summary:
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
        config = from_dict(ValidationConfig, _read_json(run_dir / "config.json"))
    except ConfigError as err:
        raise ResultsError(f"{run_dir / 'config.json'} is corrupt: {err}") from None
    tables = {}
    for name in ("pipelines.csv", "layers.csv", "fitted_parameters.csv"):
        tables[name] = _read_csv(run_dir / "tables" / name, TABLE_COLUMNS[name])
    for pipeline in PIPELINES:
        for kind in ("spikes", "search", "membrane"):
            name = table_name(kind, pipeline)
            tables[name] = _read_csv(run_dir / "tables" / name, TABLE_COLUMNS[kind])
    for rel in summary.get("characterization_figures", []):
        if not (run_dir / rel).is_file():
            raise ResultsError(f"{run_dir / rel} is missing (a characterization figure listed in "
                               "summary.json); rerun the same command to resume")
    return Results(run_dir=run_dir, summary=summary, config=config, tables=tables)


# ----------------------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    os.replace(tmp, path)
    return f"figures/{path.name}"


def _histograms(results: Results) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, len(PIPELINES), figsize=(4 * len(PIPELINES), 3), sharey=True)
    for ax, pipeline in zip(axes, PIPELINES):
        table = results.tables[table_name("spikes", pipeline)]
        err = table[table["layer"] == table["layer"].max()]["err_t_spike_ns"]
        ax.hist(err, bins=30, color="tab:blue")
        ax.set_title(PIPELINE_TITLES[pipeline], fontsize=9)
        ax.set_xlabel("t_model - t_SPICE (ns), output layer")
    axes[0].set_ylabel("neurons x samples")
    return _save(fig, results.run_dir / "figures" / "spike_time_differences.png")


def _membrane_overlay(results: Results, pipeline: str, worst: int) -> str:
    plt = _plt()
    table = results.tables[table_name("membrane", pipeline)]
    layers = sorted(table["layer"].unique())
    fig, axes = plt.subplots(1, len(layers), figsize=(5 * len(layers), 3.2), squeeze=False)
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


def _search_curve(results: Results, pipeline: str) -> str:
    plt = _plt()
    table = results.tables[table_name("search", pipeline)]
    fig, ax = plt.subplots(figsize=(5, 3.2))
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


# ------------------------------------------------------------------------------------------ report
def _fmt_float(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and math.isfinite(value) else str(value)


def _fit_paragraph(fit: dict) -> str:
    """Residual summary of the trace fit (summary['trace_fit'])."""
    if not fit:
        return "No trace-fit diagnostics were saved."
    t_ns = (fit.get("rms_t_spike") or math.nan) * 1e3  # normalized to a 1 us phase -> ns
    return (f"Trace-fit residuals: membrane {_fmt_float(fit.get('rms_v_membrane_mv'))} mV RMS, "
            f"spike time {_fmt_float(t_ns)} ns RMS (T = 1 us) over {fit.get('n_spiking')} "
            f"spiking neurons; {fit.get('n_residuals')} residuals; solver: {fit.get('message')}")


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


def build_document(results: Results) -> list:
    """The report as blocks (figures are drawn into ``run_dir/figures`` on the way)."""
    s, t = results.summary, results.tables
    pipelines = t["pipelines.csv"].set_index("pipeline")
    ratio = s["rmse_bottom_up_ns"] / s["rmse_top_down_ns"] if s["rmse_top_down_ns"] > 0 else math.nan
    blocks = [
        Heading("imcpnn validation report: model vs SPICE", 1),
        Paragraph(f"Test samples: {s['n_test_samples']}. Netlist kind: {s['netlist_kind']}. "
                  f"Output-layer spike-time RMSE: top-down {_fmt_float(s['rmse_top_down_ns'])} ns, "
                  f"bottom-up {_fmt_float(s['rmse_bottom_up_ns'])} ns, trace-fitted "
                  f"{_fmt_float(s['rmse_trace_fitted_ns'])} ns (bottom-up / top-down = "
                  f"{_fmt_float(ratio)}). Test accuracy: model {_fmt_float(s['test_accuracy_model'])}, "
                  f"SPICE {_fmt_float(s['test_accuracy_spice'])} (bottom-up network; every pipeline's in the "
                  "table below). "
                  f"Run time {_fmt_float(s['elapsed_s'])} s."),
        Paragraph("How errors count: a spike time is compared in its own firing window "
                  "(normalized to the phase length, reported in ns). A neuron that does not spike "
                  "in its window counts at the window end (t = 1), where the model puts a neuron "
                  "that never reaches threshold; silent neurons are counted in the layer table."),
        Heading("Model vs SPICE: spike-time error"),
        Table(pipelines.reset_index()[list(TABLE_COLUMNS["pipelines.csv"])],
              "One row per pipeline: output-layer RMSE and max error (ns), membrane RMSE over the "
              "accumulation window (mV), tuned current scales, E values, accuracies"),
        Table(t["layers.csv"], "Per layer (0 = hidden, last = output)"),
        Image(_histograms(results), "Histograms of output spike-time differences, model - SPICE"),
        Heading("Membrane waveforms of the worst sample"),
    ]
    for pipeline in PIPELINES:
        worst = int(pipelines.loc[pipeline, "worst_sample"])
        blocks.append(Image(_membrane_overlay(results, pipeline, worst),
                            f"{PIPELINE_TITLES[pipeline]}: membrane voltage, model (dashed) vs SPICE "
                            f"(solid), worst test sample {worst}"))
    blocks.append(Heading("Current-scale searches"))
    blocks.append(Paragraph("Every candidate below is one batched ngspice run over all test "
                            "samples; the search refines coarse-to-fine to the last step of "
                            f"{list(results.config.search.steps)} (relative). Start points "
                            f"{json.dumps(s.get('search_starts', {}))}: bottom-up from 1; top-down "
                            "from the scales at which the DC-parameter model best reproduces the "
                            "ideal model (a cheap surrogate of the circuit) times the bottom-up "
                            "scale; trace-fitted from the fit's inverse current scale."))
    for pipeline in PIPELINES:
        blocks.append(Image(_search_curve(results, pipeline),
                            f"Output RMSE vs current scale, {PIPELINE_TITLES[pipeline]}"))
    blocks += [
        Heading("Device characterization and E values"),
        Paragraph(f"DC-derived: E_plus = {_fmt_float(s['e_plus'])}, E_minus = "
                  f"{_fmt_float(s['e_minus'])}, E_dis = {_fmt_float(s['e_dis'])}."),
    ]
    for rel in s.get("characterization_figures", []):
        blocks.append(Image(rel, f"Characterization: {Path(rel).stem.replace('_', ' ')}"))
    blocks += [
        Table(t["fitted_parameters.csv"], "Trace fit (transient testbench): fitted values with "
              "1-sigma standard errors from s^2 (J^T J)^-1, next to the DC-derived values"),
        Paragraph(_fit_paragraph(s.get("trace_fit", {}))),
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

