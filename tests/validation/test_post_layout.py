"""Post-layout validation without tools: config switch, tool errors, comparison math, report section."""

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from imcpnn.cli import main
from imcpnn.errors import ConfigError, ResultsError, ToolNotFoundError
from imcpnn.validation import ValidationConfig, render_report, run_validation
from imcpnn.validation._pipeline import stage_networks
from imcpnn.validation._post_layout import (COMPARISON_COLUMNS, netlist_comparison, post_layout_network,
                                            post_layout_summary, recovered_capacitance)
from imcpnn.validation.report import POST_LAYOUT_KEYS, SUMMARY_KEYS, write_csv, write_json
from imcpnn.verbs.validate import add_arguments, config_from_args
from test_report import PNG_1PX, make_results

MIM_7X7_F = 2 * 7.15**2 * 1e-15  # sky130 MiM area rule, 7 um x 7 um


def test_config_switch_and_cli_flag():
    assert ValidationConfig().netlist_kind == "schematic+parasitic-estimate"
    assert ValidationConfig(netlist_kind="post-layout").netlist_kind == "post-layout"
    with pytest.raises(ConfigError, match="netlist_kind='layout'.*post-layout"):
        ValidationConfig(netlist_kind="layout")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--out", "x", "--post-layout"])).netlist_kind == "post-layout"
    assert config_from_args(parser.parse_args(["--out", "x"])).netlist_kind == ValidationConfig().netlist_kind


@pytest.mark.parametrize("kind, estimate", [("schematic", False), ("schematic+parasitic-estimate", True)])
def test_networks_of_the_schematic_kinds_need_no_layout(tmp_path, kind, estimate):
    networks, layout = stage_networks(ValidationConfig(netlist_kind=kind), tmp_path, 5, False)
    assert layout is None and not (tmp_path / "stages").exists()
    assert networks["network"].widths == (5, 5, 5) and networks["trace_fit"].widths == (5, 4)
    assert networks["trace_fit_loaded"].widths == (5, 4, 5)  # loaded by the network's fan-out
    assert all(n.netlist_kind == kind and (n.parasitic is not None) == estimate for n in networks.values())


@pytest.mark.parametrize("env, match", [
    ({"PDK_ROOT": None}, "PDK_ROOT is not set"),
    ({"PATH": "EMPTY"}, "magic not found on PATH.*apt-get install magic"),
])
def test_missing_layout_tools_stop_the_run_before_any_spice(tmp_path, monkeypatch, env, match, pdk_root):
    monkeypatch.setenv("PDK_ROOT", str(pdk_root))
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            (tmp_path / "empty").mkdir()
            monkeypatch.setenv(name, str(tmp_path / "empty"))
    out, cache = tmp_path / "run", tmp_path / "cache"
    with pytest.raises(ToolNotFoundError, match=match):
        run_validation(ValidationConfig(netlist_kind="post-layout", n_test=1), out, cache_dir=cache,
                       progress=False)
    assert not (out / "characterization").exists() and not cache.exists()  # nothing simulated


def test_cached_layout_stage_reads_the_core_back_or_names_the_missing_netlist(tmp_path):
    from imcpnn.circuits.netlist.network import Network, PostLayoutCore

    schematic = Network((2, 2))
    (tmp_path / "layout").mkdir()
    (tmp_path / "layout" / "core.spice").write_text(PostLayoutCore.schematic(schematic, "core").text)
    stage = {"cell": "core", "membrane_f_per_layer": [1.2e-13], "files": {"pex_netlist": "layout/core.spice"}}
    net = post_layout_network(schematic, stage, tmp_path)
    assert net.netlist_kind == "post-layout" and net.membrane_f(0) == 1.2e-13
    (tmp_path / "layout" / "core.spice").unlink()
    with pytest.raises(ResultsError, match="core.spice is missing; delete .*layout.json and rerun"):
        post_layout_network(schematic, stage, tmp_path)


def _spikes(t, spiked):
    keys = pd.MultiIndex.from_product([range(2), range(2), range(2)],
                                      names=["sample", "layer", "neuron"]).to_frame(index=False)
    return keys.assign(t_spike=t, spiked=spiked)


def test_netlist_comparison_differences_and_silent_rule():
    t_sch = np.linspace(0.1, 0.8, 8)
    t_post = t_sch + 0.01 * np.arange(8)
    spiked = np.ones(8, bool)
    spiked_post = spiked.copy()
    spiked_post[7] = False  # silent on the post-layout netlist: counts at t = 1
    table, layers = netlist_comparison(_spikes(t_sch, spiked), _spikes(t_post, spiked_post), 1e-6)
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    expected = (np.where(spiked_post, t_post, 1.0) - t_sch) * 1e3  # ns at T = 1 us
    by_key = table.set_index(["sample", "layer", "neuron"]).sort_index()
    order = _spikes(t_sch, spiked).set_index(["sample", "layer", "neuron"]).index
    assert by_key.loc[order, "diff_t_spike_ns"].to_numpy() == pytest.approx(expected)
    out = expected[_spikes(t_sch, spiked)["layer"].to_numpy() == 1]
    last = layers.set_index("layer").loc[1]
    assert last["rmse_diff_ns"] == pytest.approx(np.sqrt(np.mean(out**2)))
    assert last["mean_diff_ns"] == pytest.approx(out.mean())
    assert last["n_silent_post_layout"] == 1 and last["n_silent_schematic"] == 0


def test_recovered_capacitance_is_scale_times_mapped():
    c = recovered_capacitance([110e-15, 120e-15], 1.07)
    assert c["c_m_extracted_f"] == pytest.approx(115e-15)
    assert c["c_m_recovered_f"] == pytest.approx(1.07 * 115e-15)
    assert c["c_m_recovered_f_per_layer"] == pytest.approx([117.7e-15, 128.4e-15])
    assert c["ratio_recovered_over_extracted"] == pytest.approx(1.07)


def add_post_layout(root):
    """Turn make_results' folder into a post-layout run folder (layout PNGs, comparison table)."""
    (root / "layout" / "network").mkdir(parents=True)
    (root / "layout" / "network" / "imcpnn_network.png").write_bytes(PNG_1PX)
    (root / "layout" / "neuron.png").write_bytes(PNG_1PX)
    layout = {"layouts": {"network": {
        "cell": "imcpnn_network", "widths": [2, 2, 2], "drc_errors": 0, "drc_violations": [],
        "lvs_match": True, "lvs_mismatches": [], "device_counts": {"nfet": 30, "pfet": 26},
        "schematic_device_counts": {"nfet": 30, "pfet": 26},
        "n_parasitic_capacitors": 321, "n_parasitic_resistors": 0,
        "parasitic_capacitance_total_f": 2.5e-13, "membrane_f_per_layer": [1.15e-13, 1.12e-13],
        "files": {"png": "layout/network/imcpnn_network.png",
                  "pex_netlist": "layout/network/imcpnn_network_pex.spice"}}},
        "cell_figures": ["layout/neuron.png"], "elapsed_s": 42.0}
    comparison = {"rmse_schematic_vs_post_layout_ns": 12.5, "max_abs_diff_schematic_vs_post_layout_ns": 20.0,
                  "mean_diff_post_layout_minus_schematic_ns": 11.0, "t_phase_s": 1e-6,
                  "rmse_schematic_own_mapping_vs_post_layout_ns": 3.25,
                  "mean_diff_post_layout_minus_schematic_own_mapping_ns": -1.5,
                  "layers": [{"layer": 0, "rmse_diff_ns": 9.0}, {"layer": 1, "rmse_diff_ns": 12.5}],
                  **recovered_capacitance([1.15e-13, 1.12e-13], 1.04), "c_m_schematic_f": MIM_7X7_F}
    summary = json.loads((root / "summary.json").read_text())
    summary["netlist_kind"] = "post-layout"
    summary["post_layout"] = post_layout_summary(layout, comparison)
    write_json(root / "summary.json", summary)
    keys = pd.MultiIndex.from_product([range(2), range(2), range(2)],
                                      names=["sample", "layer", "neuron"]).to_frame(index=False)
    write_csv(root / "tables" / "post_layout_spikes.csv", keys.assign(
        t_schematic=0.5, t_post_layout=0.512, spiked_schematic=True, spiked_post_layout=True,
        diff_t_spike_ns=12.0, t_schematic_own_mapping=0.51))
    return root


def test_summary_keeps_issue_keys_and_adds_post_layout(tmp_path):
    root = add_post_layout(make_results(tmp_path))
    summary = json.loads((root / "summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(summary) and summary["netlist_kind"] == "post-layout"
    post = summary["post_layout"]
    assert set(POST_LAYOUT_KEYS) <= set(post)
    for key in ("c_m_extracted_f", "c_m_recovered_f", "rmse_schematic_vs_post_layout_ns"):
        assert isinstance(post[key], float)
    assert post["layouts"]["network"]["files"]["pex_netlist"].endswith("_pex.spice")
    assert post["layouts"]["network"]["lvs_match"] is True


def test_report_has_the_post_layout_section_and_rerenders(tmp_path):
    root = add_post_layout(make_results(tmp_path))
    assert main(["report", str(root)]) == 0
    text = (root / "report.md").read_text()
    for needle in ("Netlist kind: post-layout", "## Post-layout", "Schematic vs post-layout spike times",
                   "RMSE between the two 12.5 ns", "the RMSE is 3.25 ns", "layout/network/imcpnn_network.png",
                   "layout/neuron.png", "figures/schematic_vs_post_layout.png",
                   "recovered vs extracted", f"{1.04 * 113.5:.4g} fF", "113.5 fF", "ratio 1.04"):
        assert needle in text, needle
    assert (root / "figures" / "schematic_vs_post_layout.png").stat().st_size > 1000
    html = (root / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 + 7


@pytest.mark.parametrize("damage, match", [
    ("table", "post_layout_spikes.csv is missing"),
    ("png", "imcpnn_network.png listed in summary.json is missing"),
    ("key", r"\(post_layout\) is corrupt: key 'c_m_recovered_f' is missing"),
    ("type", "post_layout is not an object"),
])
def test_partial_post_layout_folder_gives_named_error(tmp_path, damage, match):
    root = add_post_layout(make_results(tmp_path))
    summary = json.loads((root / "summary.json").read_text())
    if damage == "table":
        (root / "tables" / "post_layout_spikes.csv").unlink()
    elif damage == "png":
        (root / "layout" / "network" / "imcpnn_network.png").unlink()
    elif damage == "key":
        del summary["post_layout"]["c_m_recovered_f"]
    else:
        summary["post_layout"] = [1]
    write_json(root / "summary.json", summary)
    with pytest.raises(ResultsError, match=match):
        render_report(root)
    assert not (root / "report.md").exists()


def test_a_saved_layout_stage_without_every_network_is_redone(tmp_path, monkeypatch):
    """Post-layout lays out the network, the testbench and the loaded testbench in one stage; a
    saved stage that lacks one of them is redone with a note naming the missing layout."""
    from imcpnn.rundir import RunDirNote
    from imcpnn.validation import _pipeline as pipe

    calls = []

    def fake_layouts(networks, out_dir):
        calls.append(sorted(networks))
        files = {"pex_netlist": "layout/core.spice", "png": "layout/core.png"}
        for rel in files.values():
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (out_dir / rel).write_text("x")
        return {"layouts": {k: {"files": files} for k in networks}, "cell_figures": [], "elapsed_s": 0.0}

    monkeypatch.setattr(pipe, "layout_networks", fake_layouts)
    monkeypatch.setattr(pipe, "post_layout_network", lambda net, stage, out_dir: net)
    config = ValidationConfig(netlist_kind="post-layout")
    networks, layout = stage_networks(config, tmp_path, 5, False)
    assert calls == [["network", "trace_fit", "trace_fit_loaded"]] and set(layout["layouts"]) == set(calls[0])
    saved = json.loads((tmp_path / "stages" / "layout.json").read_text())
    del saved["layouts"]["trace_fit_loaded"]
    (tmp_path / "stages" / "layout.json").write_text(json.dumps(saved))
    with pytest.warns(RunDirNote, match="no 'trace_fit_loaded' layout; redoing stage 'layout'"):
        stage_networks(config, tmp_path, 5, False)
    assert len(calls) == 2
    stage_networks(config, tmp_path, 5, False)  # whole now: read back
    assert len(calls) == 2
