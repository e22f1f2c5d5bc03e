"""Report rendering from a saved results folder; corrupt or partial folders raise ResultsError."""

import base64
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from imcpnn.config import to_json
from imcpnn.errors import ResultsError
from imcpnn.validation import ValidationConfig, render_report
from imcpnn.validation.report import PIPELINES, SUMMARY_KEYS, table_name, write_csv, write_json


#: summary["energy"]["table"] of make_results: 2 layers x 3 phases x 2 groups of 0.1 pJ.
ENERGY_TABLE = [{"layer": l, "phase": ph, "group": g, "energy_j": 1e-13}
                for l in range(2) for ph in ("reset", "accumulation", "firing")
                for g in ("array_neurons", "neuron_bias")]


def make_results(root):
    root.mkdir(parents=True, exist_ok=True)
    """A complete, small results folder as the pipeline writes it (2 samples, 2 layers of 2)."""
    rng = np.random.default_rng(0)
    to_json(ValidationConfig(n_test=2, epochs=3), root / "config.json")
    summary = {"rmse_top_down_ns": 40.0, "rmse_bottom_up_ns": 4.0, "rmse_trace_fitted_ns": 3.0,
               "n_test_samples": 2, "netlist_kind": "schematic+parasitic-estimate",
               "e_plus": 2.9, "e_minus": -1.6, "e_dis": 3.0, "scale_bottom_up": 1.05,
               "scale_top_down": [0.9, 1.1], "test_accuracy_model": 1.0,
               "test_accuracy_spice": 0.5, "models": {"source": "test", "version": "0"},
               "elapsed_s": 1.5, "characterization_figures": ["characterization/id_vd.png"],
               "mapping": {"t_phase_s": 1e-6}, "versions": {"ngspice": "39"},
               "calibration": {"source": "train", "n_samples": 14}, "discharger": "fixed",
               "error_budget": [{"term": "ideal", "rmse_bottom_up_ns": 9.0},
                                {"term": "+ E", "rmse_bottom_up_ns": 4.0}],
               **{f"{k}_{p}_ns": 1.0 for k in ("rmse_spiking", "bias") for p in PIPELINES},
               **{f"n_silent_mismatch_{p}": 0 for p in PIPELINES},
               "energy_per_inference_j": 1.2e-12, "energy_per_synop_j": 1e-13,
               "energy": {"n_synops_per_inference": 12.0, "n_samples": 2, "table": ENERGY_TABLE,
                          "per_layer": [{"layer": l, "energy_j": 6e-13, "n_synops": 6.0,
                                         "energy_per_synop_j": 1e-13} for l in range(2)]}}
    write_json(root / "summary.json", summary)
    (root / "characterization").mkdir()
    (root / "characterization" / "id_vd.png").write_bytes(PNG_1PX)
    tables = root / "tables"
    rows = []
    for p in PIPELINES:
        rows.append({"pipeline": p, "rmse_t_spike_ns": 4.0, "max_abs_err_t_spike_ns": 9.0,
                     "rmse_v_membrane_mv": 3.0, "scale": 1.0, "scale_plus": 1.0, "scale_minus": 1.0,
                     "e_plus": 2.9, "e_minus": -1.6, "e_dis": 3.0, "accuracy_model": 1.0,
                     "accuracy_spice": 0.5, "worst_sample": 1})
        keys = pd.MultiIndex.from_product([range(2), range(2), range(2)],
                                          names=["sample", "layer", "neuron"]).to_frame(index=False)
        write_csv(tables / table_name("spikes", p), keys.assign(
            t_model=0.5, t_spice=0.5 + rng.normal(0, 0.01, len(keys)), err_t_spike_ns=1.0))
        write_csv(tables / table_name("search", p), pd.DataFrame(
            {"scale": [0.9, 1.0, 1.1], "scale_plus": [0.9, 1.0, 1.1], "scale_minus": 1.0,
             "level": 0, "rmse_t_spike_ns": [5.0, 4.0, 6.0]}))
        t = np.linspace(0, 1e-6, 5)
        write_csv(tables / table_name("membrane", p), pd.concat(
            [pd.DataFrame({"t_s": t, "layer": l, "neuron": i, "v_model_v": 1.3 - 0.3 * t / 1e-6,
                           "v_spice_v": 1.3 - 0.31 * t / 1e-6}) for l in range(2) for i in range(2)]))
    write_csv(tables / "pipelines.csv", pd.DataFrame(rows))
    write_csv(tables / "layers.csv", pd.DataFrame(
        [{"pipeline": p, "layer": l, "rmse_t_spike_ns": 1.0, "max_abs_err_t_spike_ns": 2.0,
          "n_silent_model": 0, "n_silent_spice": 0} for p in PIPELINES for l in range(2)]))
    write_csv(tables / "fitted_parameters.csv", pd.DataFrame(
        [{"parameter": "e_plus", "fitted": 2.8, "stderr": 0.1, "fixed": False, "dc_derived": 2.9}]))
    return root


# A valid 1x1 PNG (so that the HTML inlining can be checked byte for byte).
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def test_render_writes_markdown_and_self_contained_html(tmp_path):
    root = make_results(tmp_path)
    md = render_report(root)
    text = md.read_text()
    html = (root / "report.html").read_text()
    for needle in ("top-down", "bottom-up", "trace-fitted", "schematic+parasitic-estimate",
                   "E_plus = 2.9", "n_test"):
        assert needle in text, needle
    assert "data:image/png;base64," + base64.b64encode(PNG_1PX).decode() in html
    assert "src='figures/" not in html and "figures/membrane_bottom_up.png" in text
    for p in PIPELINES:
        assert (root / "figures" / f"membrane_{p}.png").stat().st_size > 1000
        assert (root / "figures" / f"search_{p}.png").is_file()
    assert (root / "figures" / "spike_time_differences.png").is_file()
    assert '"epochs": 3' in text  # non-default config fields are listed


def test_energy_section_reports_the_measurement_or_says_it_was_not_made(tmp_path):
    """A new run shows energy per inference, per synaptic operation and the breakdown; a run
    saved before the energy accounting (no energy keys), or without it (null), still renders."""
    root = make_results(tmp_path)
    text = render_report(root).read_text()
    assert "1.2 pJ per inference, 100 fJ per synaptic operation (12 synaptic operations" in text
    assert "| 0 | array_neurons | 0.1 | 0.1 | 0.1 | 0.3 |" in text and "energy_per_synop_fJ" in text
    summary = json.loads((root / "summary.json").read_text())
    summary["energy_per_synop_j"] = float("nan")  # no synaptic operation: written as null
    write_json(root / "summary.json", summary)
    assert "no energy per synaptic operation" in render_report(root).read_text()
    write_json(root / "summary.json", summary | {"energy_per_inference_j": None, "energy": None})
    assert "Energy: not measured" in render_report(root).read_text()
    for key in ("energy_per_inference_j", "energy_per_synop_j", "energy"):
        del summary[key]
    write_json(root / "summary.json", summary)
    assert "Energy: not measured" in render_report(root).read_text()
    summary["energy_per_inference_j"] = "1e-12"
    write_json(root / "summary.json", summary)
    with pytest.raises(ResultsError, match="energy_per_inference_j='1e-12' should be of type float/NoneType"):
        render_report(root)


def test_the_refit_is_reported_beside_the_fit_it_started_from(tmp_path):
    """A run that refitted the trace-fitted parameters on its own network says so in the headline
    (with the RMSE before the refit) and shows the refitted table; its table is required then."""
    root = make_results(tmp_path)
    summary = json.loads((root / "summary.json").read_text())
    summary["trace_fit"] = {"fitted": {}, "refit": {"fitted": {}, "rms_v_membrane_mv": 1.5, "rms_t_spike": 0.001,
                                                    "n_spiking": 70, "rmse_ns": 1.2, "rmse_before_ns": 1.9}}
    write_json(root / "summary.json", summary)
    with pytest.raises(ResultsError, match="refitted_parameters.csv"):
        render_report(root)
    write_csv(root / "tables" / "refitted_parameters.csv", pd.DataFrame(
        [{"parameter": "e_plus", "fitted": 3.1, "stderr": 0.1, "fixed": False, "trace_fit": 2.8}]))
    text = render_report(root).read_text()
    assert "trace-fitted 3 ns, refitted to its own network's calibration runs (1.9 ns before); top-down / bottom-up = 10" in text
    assert "predicted at 1.2 ns output RMSE with the refitted parameters and at 1.9 ns" in text
    assert "| e_plus | 3.1 | 0.1 | False | 2.8 |" in text


@pytest.mark.parametrize("victim, damage, match", [
    ("summary.json", None, "summary.json is missing"),
    ("summary.json", "{not json", "summary.json is corrupt"),
    ("config.json", '{"n_tset": 3}', "config.json is corrupt"),
    ("tables/spikes_bottom_up.csv", None, "spikes_bottom_up.csv is missing"),
    ("tables/layers.csv", "pipeline,layer\nx,0\n", "layers.csv is corrupt: missing columns"),
    ("tables/search_top_down.csv", "", "search_top_down.csv is corrupt"),
    ("tables/membrane_trace_fitted.csv", "t_s,layer,neuron,v_model_v,v_spice_v\n",
     "membrane_trace_fitted.csv is corrupt: it has no rows"),
    ("characterization/id_vd.png", None, "id_vd.png is missing"),
])
def test_partial_or_corrupt_folder_gives_named_error_and_no_report(tmp_path, victim, damage, match):
    root = make_results(tmp_path)
    path = root / victim
    if damage is None:
        path.unlink()
    else:
        path.write_text(damage)
    with pytest.raises(ResultsError, match=match):
        render_report(root)
    assert not (root / "report.md").exists() and not (root / "report.html").exists()


@pytest.mark.parametrize("key, value, match", [
    ("rmse_bottom_up_ns", "4", "should be of type float"),
    ("scale_top_down", 1.0, "should be of type list"),
    ("n_test_samples", True, "should be of type int")])
def test_summary_with_wrong_types_is_rejected(tmp_path, key, value, match):
    root = make_results(tmp_path)
    summary = json.loads((root / "summary.json").read_text())
    summary[key] = value
    write_json(root / "summary.json", summary)
    with pytest.raises(ResultsError, match=match):
        render_report(root)


def test_summary_missing_key_is_named(tmp_path):
    root = make_results(tmp_path)
    summary = json.loads((root / "summary.json").read_text())
    del summary["elapsed_s"]
    write_json(root / "summary.json", summary)
    with pytest.raises(ResultsError, match="'elapsed_s' is missing"):
        render_report(root)


def test_not_a_folder(tmp_path):
    with pytest.raises(ResultsError, match="is not a folder"):
        render_report(tmp_path / "nope")


@pytest.mark.slow
def test_cli_report_verb_rerenders_and_reports_errors(tmp_path):
    root = make_results(tmp_path / "run")
    ok = subprocess.run([sys.executable, "-m", "imcpnn", "report", str(root)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and (root / "report.html").is_file(), ok.stderr
    (root / "tables" / "pipelines.csv").unlink()
    bad = subprocess.run([sys.executable, "-m", "imcpnn", "report", str(root)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "pipelines.csv is missing" in bad.stderr


def test_summary_contract_lists_issue_keys():
    assert set(SUMMARY_KEYS) == {
        "rmse_top_down_ns", "rmse_bottom_up_ns", "rmse_trace_fitted_ns", "n_test_samples",
        "netlist_kind", "e_plus", "e_minus", "e_dis", "scale_bottom_up", "scale_top_down",
        "test_accuracy_model", "test_accuracy_spice", "models", "elapsed_s",
        # the fidelity issue's additions: protocol, honest metrics, error budget
        "calibration", "discharger", "error_budget",
        *(f"{k}_{p}_ns" for k in ("rmse_spiking", "bias") for p in PIPELINES),
        *(f"n_silent_mismatch_{p}" for p in PIPELINES),
        # the scale issue's energy (optional: older summaries lack it)
        "energy_per_inference_j", "energy_per_synop_j"}


def test_the_driven_kick_is_described_or_why_it_is_missing():
    """The circuit-terms paragraph gives the driven and encoder kicks and the difference the
    model adds, or the stage's note where the probes could not measure it."""
    from imcpnn.validation.report import _fanout_and_neurons

    measured = {"driven_kick": {"dq_plus": 0.0018, "dq_minus": -0.0001, "factor": 1.3, "note": None,
                                "encoder": {"plus": 0.0049, "minus": -0.0036},
                                "driven": {"plus": 0.0067, "minus": -0.0037}}}
    text = _fanout_and_neurons(measured)
    assert "q_plus 0.0067 against 0.0049" in text and "dq_plus 0.0018, dq_minus -0.0001" in text
    missing = {"driven_kick": {"dq_plus": None, "dq_minus": None, "note": "no hidden layer: no layer is driven by neurons"}}
    assert "not measured: no hidden layer" in _fanout_and_neurons(missing)
    assert _fanout_and_neurons({}) == ""


def test_the_membrane_coupling_is_described_where_extracted():
    """Post-layout the paragraph says how strongly neighbouring membranes are coupled; a
    schematic (coupling_max 0) says nothing of it."""
    from imcpnn.validation.report import _fanout_and_neurons

    neurons = {"c_factor_range": [0.99, 1.01], "delay_offset_ns_range": [-0.2, 0.2], "n_unfitted": 0}
    text = _fanout_and_neurons({"neurons": {**neurons, "coupling_max": 0.0168}})
    assert "up to 1.68 % of a membrane's own" in text
    assert "coupled" not in _fanout_and_neurons({"neurons": {**neurons, "coupling_max": 0.0}})
