"""Post-layout validation: lay out and extract the networks, and compare the two netlists.

With ``ValidationConfig.netlist_kind = "post-layout"`` every SPICE run of every pipeline uses the
netlist extracted from the generated layout (magic, sky130A tech file, parasitic C; LVS-checked
against the schematic by netgen). The extracted core replaces the cell instances of the schematic
testbench (:class:`imcpnn.circuits.netlist.network.PostLayoutCore`), and the weight mapping uses the
extracted membrane capacitance (MiM plus wiring, mean per layer).

**Recovered membrane capacitance.** The mapping turns weight w into I = C_m V_th |w| / T x k,
C_m the capacitance it assumes (here the extracted one) and k the global current scale. The
circuit integrates I on its true, effective capacitance C_eff; model and circuit agree when
I / C_eff = C_m V_th |w| / T, i.e. when C_eff = k C_m. So the bottom-up search's best k measures
C_eff / C_m: the recovered capacitance is k C_m, its ratio to the extracted one is k. k also
absorbs every other current-scale error (source current at V_D != V0, switch charge), so
"effective" is the honest word.

**Schematic vs post-layout.** The bottom-up network at its tuned scale is simulated once more on
the schematic netlist (no parasitics), driven by the very same gate biases: the difference in
spike times is what the layout's parasitics do to this circuit (the classic pre- vs post-layout
comparison; mostly the larger membrane C, which slows every ramp). A second schematic run maps
the weights with the schematic's own C_m (the MIM) at the same scale: what remains of the
difference is the part of the layout's effect that the extracted C_m in the mapping does not
capture.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from imcpnn.errors import ResultsError
from imcpnn.validation._metrics import compare_spike_tables, layer_metrics

#: Folder below the run folder that holds the layouts, extractions and LVS reports.
LAYOUT_DIR = "layout"

#: Columns of :func:`netlist_comparison` (normalized times; difference in ns).
COMPARISON_COLUMNS = ("sample", "layer", "neuron", "t_schematic", "t_post_layout",
                      "spiked_schematic", "spiked_post_layout", "diff_t_spike_ns")
#: Columns of tables/post_layout_spikes.csv: the comparison with the post-layout gate biases,
#: plus the schematic's spike times under its own mapping (C_m = MIM).
SPIKES_CSV_COLUMNS = (*COMPARISON_COLUMNS, "t_schematic_own_mapping")


def check_layout_tools() -> None:
    """Raise ToolNotFoundError, saying what to install, unless magic, netgen and the sky130A tech
    file (PDK_ROOT) are found: the validation checks this before it writes anything."""
    from imcpnn.circuits.layout.magic import MagicSetup, find_netgen

    MagicSetup.discover()
    find_netgen()


def layout_networks(networks: dict, out_dir: Path) -> dict:
    """Lay out, DRC-check, extract and LVS-check each network into ``out_dir/layout/<key>/``.

    ``networks``: key -> :class:`imcpnn.circuits.netlist.network.Network` (schematic, no parasitic
    estimate). The tools are looked up first: without magic, netgen or the sky130A tech file
    (PDK_ROOT) this raises ToolNotFoundError saying what to install, before any work. A dirty
    layout (DRC errors, LVS mismatch, lost devices or parasitics) raises NetlistError after the
    files are written. Also draws the neuron and synapse-array cells (PNG). Returns JSON-able
    ``layouts`` (key -> flow record, paths relative to ``out_dir``), ``cell_figures``, ``elapsed_s``.
    """
    from imcpnn.circuits.layout.magic import MagicSetup, find_netgen

    start_s = time.perf_counter()
    setup = MagicSetup.discover()
    find_netgen()
    from imcpnn.circuits.layout.cells import plot_layout
    from imcpnn.circuits.layout.blocks import neuron_layout, synapse_array_layout
    from imcpnn.circuits.layout.flow import run_layout_flow
    from imcpnn.circuits.layout.network import network_layout
    from imcpnn.circuits.netlist.network import extracted_membrane_f

    out_dir = Path(out_dir)
    layouts: dict = {}
    for key, network in networks.items():
        report = run_layout_flow(network_layout(network, name=f"imcpnn_{key}"),
                                 out_dir / LAYOUT_DIR / key, setup=setup)
        summary = report.to_dict()
        del summary["port_capacitance_f"]  # hundreds of ports; the membranes are kept below
        summary["files"] = {k: str(Path(v).relative_to(out_dir)) for k, v in report.files.items()}
        summary["membrane_f_per_layer"] = list(extracted_membrane_f(report.netlist, network.widths))
        summary["widths"] = list(network.widths)
        layouts[key] = summary
    figures = []
    shapes = sorted({(n_in, n_out) for net in networks.values()
                     for n_in, n_out in zip(net.widths[:-1], net.widths[1:])})
    cells = [("neuron", neuron_layout())] + [
        (f"synapse_array_{a}x{b}", synapse_array_layout(a, b)) for a, b in shapes]
    for name, layout in cells:
        path = plot_layout(layout, out_dir / LAYOUT_DIR / f"{name}.png", title=f"{name} cell")
        figures.append(str(path.relative_to(out_dir)))
    return {"layouts": layouts, "cell_figures": figures, "elapsed_s": time.perf_counter() - start_s}


def post_layout_network(network, stage: dict, out_dir: Path):
    """``network`` with the extracted core that :func:`layout_networks` wrote for it (``stage`` =
    its record in ``layouts``)."""
    import dataclasses

    from imcpnn.circuits.netlist.network import PostLayoutCore

    path = Path(out_dir) / stage["files"]["pex_netlist"]
    if not path.is_file():
        raise ResultsError(f"extracted netlist {path} is missing; delete {Path(out_dir) / 'stages'}"
                           "/layout.json and rerun to redo the layout stage")
    text = path.read_text()
    core = PostLayoutCore(text, stage["cell"], tuple(stage["membrane_f_per_layer"]))
    return dataclasses.replace(network, parasitic=None, core=core)


def netlist_comparison(schematic: pd.DataFrame, post_layout: pd.DataFrame,
                       t_phase_s: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spike times of one circuit on both netlists, side by side, and per-layer statistics.

    Inputs: SPICE spike tables (sample, layer, neuron, t_spike, spiked) of the same samples and
    network. Silent neurons count at the window end (t = 1, the validation's rule).
    Returns (table with :data:`COMPARISON_COLUMNS`, where diff_t_spike_ns = (t_post_layout -
    t_schematic) T, positive when the layout delays a spike; per layer: rmse_diff_ns,
    max_abs_diff_ns, mean_diff_ns, n_silent_schematic, n_silent_post_layout).
    """
    cmp = compare_spike_tables(post_layout, schematic, t_phase_s)  # err = post-layout - schematic
    layers = layer_metrics(cmp).rename(columns={
        "rmse_t_spike_ns": "rmse_diff_ns", "max_abs_err_t_spike_ns": "max_abs_diff_ns",
        "mean_err_t_spike_ns": "mean_diff_ns", "n_silent_model": "n_silent_post_layout",
        "n_silent_spice": "n_silent_schematic"})
    table = cmp.rename(columns={
        "t_model": "t_post_layout", "t_spice": "t_schematic", "spiked_model": "spiked_post_layout",
        "spiked_spice": "spiked_schematic", "err_t_spike_ns": "diff_t_spike_ns"})
    return table[list(COMPARISON_COLUMNS)], layers


def recovered_capacitance(c_mapped_f_per_layer: list[float], scale: float) -> dict:
    """Effective membrane capacitance the bottom-up scale ``scale`` = k implies: C_eff = k C_m.

    ``c_mapped_f_per_layer``: the C_m the mapping assumed (the extracted one), F per layer.
    Returns per-layer lists, their means over layers, and the ratio recovered / extracted = k.
    """
    c_m = np.asarray(c_mapped_f_per_layer, dtype=float)
    return {"c_m_extracted_f": float(c_m.mean()), "c_m_recovered_f": float(scale * c_m.mean()),
            "c_m_extracted_f_per_layer": c_m.tolist(),
            "c_m_recovered_f_per_layer": (scale * c_m).tolist(),
            "ratio_recovered_over_extracted": float(scale)}


def post_layout_summary(layout: dict, comparison: dict) -> dict:
    """summary.json's ``post_layout``: the netlist comparison and recovered C (``comparison``, the
    compare_netlists stage), and per layout its DRC/LVS/extraction record (``layout`` stage)."""
    keys = ("cell", "widths", "drc_errors", "lvs_match", "lvs_mismatches", "device_counts",
            "schematic_device_counts", "n_parasitic_capacitors", "n_parasitic_resistors",
            "parasitic_capacitance_total_f", "membrane_f_per_layer", "files")
    layouts = {name: {k: rec[k] for k in keys} for name, rec in layout["layouts"].items()}
    return comparison | {"layouts": layouts, "cell_figures": layout["cell_figures"],
                         "layout_elapsed_s": layout["elapsed_s"]}
