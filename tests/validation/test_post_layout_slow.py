"""Reduced post-layout demo end to end: real layout, magic DRC + extraction, netgen LVS, ngspice."""

import json
import math
import os
import subprocess
import sys

import pandas as pd
import pytest

from imcpnn.validation.report import POST_LAYOUT_KEYS, SUMMARY_KEYS
# A cheaper run than the schematic demo test's (which asserts the model's accuracy): this one
# checks the post-layout plumbing, so 2 test samples, short training, a loose transient tolerance.
POST_LAYOUT_REDUCED = {"n_test": 2, "epochs": 20, "t_step_max_s": 5e-8, "trtol": 1.0, "spice_batch": 7,
                       "fit": {"n_patterns": 7, "n_times": 11},
                       "search": {"steps": [0.1], "max_recentre": 1, "n_samples": 2}}

MIM_7X7_F = 2 * 7.15**2 * 1e-15  # sky130 MiM area rule, 7 um x 7 um


@pytest.mark.slow
def test_reduced_post_layout_demo(tmp_path, pdk_root):
    config = tmp_path / "reduced.json"
    config.write_text(json.dumps(POST_LAYOUT_REDUCED))
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "imcpnn", "demo", "--post-layout", "--out", str(out), "--config",
         str(config), "--cache-dir", str(tmp_path / "cache"), "--quiet"],
        capture_output=True, text=True, env=os.environ | {"PDK_ROOT": str(pdk_root)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "post-layout: schematic vs post-layout" in proc.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(summary) and summary["netlist_kind"] == "post-layout"
    post = summary["post_layout"]
    assert set(POST_LAYOUT_KEYS) <= set(post)
    for name, rec in post["layouts"].items():
        assert rec["drc_errors"] == 0 and rec["lvs_match"], (name, rec)
        assert rec["device_counts"] == rec["schematic_device_counts"]
        assert rec["n_parasitic_capacitors"] > 0
        for rel in rec["files"].values():
            assert (out / rel).is_file(), rel
        # MiM plus wiring: above the plate value, and wiring well below the plate's own 102 fF
        assert all(MIM_7X7_F < c < 1.5 * MIM_7X7_F for c in rec["membrane_f_per_layer"]), rec
    assert set(post["layouts"]) == {"network", "trace_fit", "trace_fit_loaded"}
    # the loaded testbench's first layer is the testbench's layout: the same membrane (0.1 %)
    dyn = summary["dynamics"]
    c_loaded, c_bare = dyn["load_delay"]["c_m_f"]
    assert c_loaded == pytest.approx(c_bare, rel=1e-3)
    assert dyn["load_delay"]["per_fanout"] is not None and dyn["load_delay"]["n_pairs"] > 0
    # each extracted neuron has its own wiring: fitted on every neuron, its capacitance within a
    # few % of its layer's mean (the wiring is a few % of the MiM), its delay offset well inside
    # the firing-path delay (measured on the default demo: factors 0.99-1.015, offsets < 0.5 ns)
    neurons = dyn["neurons"]
    assert neurons["n_unfitted"] == 0
    assert 0.95 < neurons["c_factor_range"][0] <= 1.0 <= neurons["c_factor_range"][1] < 1.05
    assert max(map(abs, neurons["delay_offset_ns_range"])) < dyn["parameters"]["t_delay"] * 1e3
    # neighbouring membranes run side by side: a mutual capacitance of about 1.5 % of a membrane's
    # own on the default demo's layout (1.8-2.0 fF against about 122 fF); it enters the budget
    assert 0.005 < neurons["coupling_max"] < 0.05
    assert summary["error_budget"][-1]["term"].startswith("+ coupling of neighbouring membranes")
    extracted = post["layouts"]["network"]["membrane_f_per_layer"]
    assert post["c_m_extracted_f_per_layer"] == pytest.approx(extracted)
    # recovered C = the bottom-up current factor (k / s: searched k over the measured C_m / C_eff)
    # x the C the mapping assumed (the extracted one)
    s = summary["dynamics"]["parameters"]["current_scale"]
    assert post["c_m_recovered_f"] == pytest.approx(summary["scale_bottom_up"] / s * post["c_m_extracted_f"])
    # Same gate biases and inputs, larger membrane C: every hidden membrane moves less, so no
    # hidden neuron spikes earlier post-layout (5 ns: step-control noise), and spiking ones later.
    spikes = pd.read_csv(out / "tables" / "post_layout_spikes.csv")
    hidden = spikes[spikes["layer"] == 0]
    assert (hidden["diff_t_spike_ns"] > -5.0).all(), hidden
    if hidden["spiked_schematic"].any():
        assert hidden["diff_t_spike_ns"].mean() > 0
    for key in ("rmse_schematic_vs_post_layout_ns", "rmse_schematic_own_mapping_vs_post_layout_ns"):
        assert math.isfinite(post[key])
    print("measured: schematic vs post-layout RMSE (ns)", post["rmse_schematic_vs_post_layout_ns"],
          "own mapping", post["rmse_schematic_own_mapping_vs_post_layout_ns"],
          "C extracted / recovered (fF)", post["c_m_extracted_f"] * 1e15, post["c_m_recovered_f"] * 1e15,
          "layout s", post["layout_elapsed_s"])

    text = (out / "report.md").read_text()
    assert "## Post-layout" in text and "Netlist kind: post-layout" in text
    assert (out / "tables" / "post_layout_spikes.csv").is_file()
    assert (out / "figures" / "schematic_vs_post_layout.png").is_file()
    for rel in post["cell_figures"]:
        assert (out / rel).is_file() and rel in text
