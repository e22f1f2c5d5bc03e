"""Generated layouts through the real tools: magic DRC + extraction, netgen LVS, ngspice.

Expected values come from the rules and closed forms, not from earlier runs: DRC 0 errors;
device counts from the schematic; the MiM plate C = 2 fF/um^2 (W + 0.15)(L + 0.15) = 102.245 fF
for 7 um x 7 um plus a few fF of wiring; an inverter's output
follows its input.
"""

from __future__ import annotations

import numpy as np
import pytest

from imcpnn.circuits.layout import layout_cells
from imcpnn.circuits.layout.cells import inverter_layout, mim_cap_layout
from imcpnn.circuits.layout.flow import run_layout_flow
from imcpnn.circuits.layout.lvs import run_lvs
from imcpnn.circuits.layout.magic import MagicSetup, magic_drc, magic_extract, magic_gds
from imcpnn.errors import NetlistError

pytestmark = pytest.mark.slow

MIM_7X7_F = 2e-15 / 1e-12 * (7e-6 + 0.15e-6) ** 2  # 102.245 fF
#: Wiring on the top plate: the met5 plate's fringe to the met4 bottom plate outside the cap.
#: Bound: met5-met4 overlap cap 68 aF/um^2 (tech file) on at most the 1 um met4 tab and a
#: 0.14 um ring: well under 5 fF.
WIRING_MAX_F = 5e-15


@pytest.fixture(scope="module")
def setup(pdk_root) -> MagicSetup:
    return MagicSetup.discover(pdk_root)


@pytest.mark.parametrize("name", sorted(layout_cells()))
def test_generated_cells_are_drc_clean(name, setup, tmp_path):
    result = magic_drc(layout_cells()[name], setup=setup, build_dir=tmp_path)
    assert result.n_errors == 0, result.violations


def test_drc_reports_a_real_violation(setup, tmp_path):
    from dataclasses import replace

    from imcpnn.circuits.layout.cells import Rect

    inv = inverter_layout()
    # A 0.1 um wide met1 sliver: below met1 width 0.14 um (met1.1).
    bad = replace(inv, name="inv_bad", rects=inv.rects + (Rect("metal1", 2000, 0, 2020, 400),))
    result = magic_drc(bad, setup=setup, build_dir=tmp_path)
    assert result.n_errors > 0
    assert any("met1" in rule for rule, _ in result.violations)
    with pytest.raises(NetlistError, match="DRC of inv_bad"):
        result.raise_if_errors()


def test_inverter_flow_lvs_match_and_parasitics(setup, tmp_path):
    report = run_layout_flow(inverter_layout(), tmp_path, setup=setup)
    net = report.netlist
    assert report.is_clean and report.lvs.is_match
    # The trimmed tech copy fits this magic's device-type table (the full file does not).
    assert "Ran out of space" not in (report.extraction.build_dir / "magic.log").read_text()
    assert net.device_counts == {"sky130_fd_pr__nfet_01v8": 1, "sky130_fd_pr__pfet_01v8": 1}
    assert len(net.capacitors) > 0 and len(net.resistors) == 0
    # Capacitance to the substrate net (vss, through the p-tap) must survive extraction.
    assert any(set(c.nodes) == {"out", "vss"} and c.value > 0 for c in net.capacitors)
    # Junction areas are the drawn 0.29 um x W diffusions (not ext2spice garbage).
    nfet = next(e for e in net.elements if e.model == "sky130_fd_pr__nfet_01v8")
    assert nfet.param("ad") == pytest.approx(0.29e-6 * 1e-6, rel=1e-6)
    for key in ("mag", "png", "pex_netlist", "lvs_netlist", "schematic", "lvs_report"):
        assert report.files[key].exists()
    assert (tmp_path / "inv_layout.json").exists()


@pytest.mark.parametrize("name", ["tgate", "nand2"])
def test_library_cells_match_their_schematics(name, setup, tmp_path):
    from imcpnn.circuits.netlist import cells

    cell = {"tgate": cells.TGate, "nand2": cells.Nand2}[name]
    report = run_layout_flow(layout_cells()[name], tmp_path, setup=setup)
    assert report.is_clean
    assert report.netlist.ports == cell.ports


def test_nand2_truth_table_post_layout(setup, tmp_path):
    from imcpnn.circuits.layout.cells import nand2_layout
    from imcpnn.spice import Op, Sim, run

    body = magic_extract(nand2_layout(), setup=setup, build_dir=tmp_path / "x").netlist_path.read_text()
    devices = ("sky130_fd_pr__nfet_01v8", "sky130_fd_pr__pfet_01v8")
    for a in (0, 1):
        for b in (0, 1):
            deck = body + f"XN a b out vdd 0 nand2\nVDD vdd 0 1.8\nVA a 0 {1.8 * a}\nVB b 0 {1.8 * b}\n"
            v_out = float(run(Sim(deck, Op(), devices=devices), cache_dir=tmp_path / "c").trace("out")[0])
            assert (v_out > 1.7) == (not (a and b)) and (v_out < 0.1) == bool(a and b)


def test_synapse_post_layout_matches_schematic_current(setup, tmp_path):
    """LVS against netlists/synapse.spice, then the same DC bias on both netlists: the membrane
    current of the extracted synapse equals the schematic one (parasitic C carry no DC current;
    only junction areas differ, whose leakage is far below 1 %)."""
    from imcpnn.circuits.netlist.cells import Synapse, cell_text
    from imcpnn.circuits.layout.cells import synapse_layout
    from imcpnn.spice import Op, Sim, run

    report = run_layout_flow(synapse_layout(), tmp_path, setup=setup)
    assert report.is_clean
    assert report.netlist.device_counts == {"sky130_fd_pr__nfet_01v8": 2, "sky130_fd_pr__pfet_01v8": 2}
    assert report.netlist.ports == Synapse.ports  # drop-in replacement for netlists/synapse.spice
    bias = (
        "XS mem spk spkb vgn vgp vdd 0 synapse\nVDD vdd 0 1.8\nVM mem 0 0.9\nVS spk 0 1.8\n"
        "VSB spkb 0 0\nVGN vgn 0 0.7\nVGP vgp 0 1.8\n"
    )
    devices = ("sky130_fd_pr__nfet_01v8", "sky130_fd_pr__pfet_01v8")
    currents = [
        float(run(Sim(body + bias, Op(), devices=devices), cache_dir=tmp_path / "c").trace("i(vm)")[0])
        for body in (report.extraction.netlist_path.read_text(), cell_text(Synapse))
    ]
    assert abs(currents[1]) > 1e-7  # the NMOS branch conducts: a meaningful comparison
    assert currents[0] == pytest.approx(currents[1], rel=1e-2)


def test_lvs_flags_a_wrong_width(setup, tmp_path):
    extraction = magic_extract(inverter_layout(), setup=setup, build_dir=tmp_path / "x")
    wrong = tmp_path / "wrong.spice"
    wrong.write_text(inverter_layout().schematic.replace("wp=2", "wp=3"))
    result = run_lvs(extraction.lvs_netlist_path, "inv", wrong, "inv", tmp_path / "lvs")
    assert not result.is_match
    assert any("delta" in line for line in result.mismatches)


def test_mim_capacitance_within_plate_plus_wiring(setup, tmp_path):
    report = run_layout_flow(mim_cap_layout(name="mim"), tmp_path, setup=setup)
    net = report.netlist
    assert net.device_counts == {"sky130_fd_pr__cap_mim_m3_2": 1}
    assert len(net.capacitors) > 0
    c_top = net.node_capacitance_f("top")
    assert MIM_7X7_F < c_top < MIM_7X7_F + WIRING_MAX_F


def test_resistance_extraction(setup, tmp_path):
    extraction = magic_extract(inverter_layout(), use_resistance=True, setup=setup, build_dir=tmp_path)
    net = extraction.parsed()
    assert len(net.resistors) > 0 and all(r.value > 0 for r in net.resistors)
    # Bodies are real nets (magic 8.3.105 writes "error" without the substrate fix).
    bodies = {e.model: e.nodes[3] for e in net.elements if e.model}
    assert bodies == {"sky130_fd_pr__nfet_01v8": "vss", "sky130_fd_pr__pfet_01v8": "vdd"}


def test_neuron_resistance_extraction_keeps_mim_and_hvt_and_simulates(setup, tmp_path):
    """The neuron (MiM + HVT/LVT fets): R > 0, the schematic's device counts, every split node
    hangs on a resistor, no resistor joins two nets; under reset (rst high) the DC membrane sits
    at v0, which needs the reset transmission gate wired through the R network."""
    from imcpnn.circuits.netlist.extracted import schematic_device_counts
    from imcpnn.circuits.layout.blocks import neuron_layout
    from imcpnn.spice import Op, Sim, run

    layout = neuron_layout()
    extraction = magic_extract(layout, use_resistance=True, setup=setup, build_dir=tmp_path / "x")
    net = extraction.parsed()
    assert len(net.resistors) > 0 and all(r.value > 0 for r in net.resistors)
    assert net.device_counts == schematic_device_counts(layout.schematic, layout.name)
    base = lambda n: n.split(".")[0].rstrip("#")  # noqa: E731
    assert all(base(r.nodes[0]) == base(r.nodes[1]) for r in net.resistors)
    on_r = {n for r in net.resistors for n in r.nodes[:2]}
    terminals = {n for e in net.elements if e.model for n in e.nodes[:4]}
    assert {n for n in terminals if "." in n} <= on_r and "error" not in terminals
    bias = (
        "XN mem vg_dis vb_sense v0 rst rst_b fire fire_b out out_b vdd 0 neuron\nVDD vdd 0 1.8\n"
        "VG vg_dis 0 0\nVB vb_sense 0 1.2\nV0 v0 0 0.5\nVR rst 0 1.8\nVRB rst_b 0 0\nVF fire 0 0\n"
        "VFB fire_b 0 1.8\n"
    )
    devices = tuple(sorted(net.device_counts))
    sim = Sim(extraction.netlist_path.read_text() + bias, Op(), devices=devices)
    assert float(run(sim, cache_dir=tmp_path / "c").trace("mem")[0]) == pytest.approx(0.5, abs=1e-3)


def test_extresist_failure_is_reported(setup, tmp_path, monkeypatch):
    # Unfiltered, the MiM's `s` line stops extresist's .sim reader: no .res.ext.
    monkeypatch.setattr("imcpnn.circuits.layout.magic.sim_for_extresist", lambda sim: sim)
    with pytest.raises(NetlistError, match="extresist wrote no mim.res.ext .*Error in sim file s"):
        magic_extract(mim_cap_layout(name="mim"), use_resistance=True, setup=setup, build_dir=tmp_path)


def test_extresist_input_repairs():
    from imcpnn.circuits.layout.magic import drop_broken_res_nets, nodes_for_extresist, sim_for_extresist

    sim = "| units: 0.5 tech: sky130A format: MIT\np g vdd a 30 200 0 0\ns top bot 1400 1400 0 0\nC a b 1.0\n"
    assert sim_for_extresist(sim) == "| units: 0.5 tech: sky130A format: MIT\np g vdd a 30 200 0 0\nC a b 1.0\n"
    # (2245, 987) internal = (1122.5, 493.5) in 0.5-unit .sim coordinates; ext2sim wrote 1122 493.
    ext = 'node "rst_b" 545 69.1 2245 987 m1 0 0\n'
    assert nodes_for_extresist("94 rst_b 1122 493 m1;\n", sim, ext) == "94 rst_b 1122.5 493.5 m1;\n"
    # a_1's walk leaked into vdd: its network goes, its device terminal gets the lumped name back.
    res = "\n".join([
        'killnode "a_1#"', 'rnode "a_1.n0" 0 0 5 5 0', 'resist "vdd" "a_1.n0" 6.9',
        'rnode "out.t0" 0 0 9 9 0', 'resist "out" "out.t0" 12.0',
        'device msubckt m 0 0 1 1  "error" "g" 60 0 "vdd" 200 0 "a_1.t0" 200 0',
        'device msubckt m 4 0 5 1  "error" "g" 60 0 "a_1#" 200 0 "out.t0" 200 0',
    ])
    fixed, dropped = drop_broken_res_nets(res)
    assert dropped == ("a_1#",)
    assert fixed.splitlines() == [
        'rnode "out.t0" 0 0 9 9 0', 'resist "out" "out.t0" 12.0',
        'device msubckt m 0 0 1 1  "error" "g" 60 0 "vdd" 200 0 "a_1#" 200 0',
        'device msubckt m 4 0 5 1  "error" "g" 60 0 "a_1#" 200 0 "out.t0" 200 0',
    ]


def test_extracted_netlists_simulate_in_the_project_runner(setup, tmp_path):
    from imcpnn.spice import Ac, Op, Sim, run

    mim = magic_extract(mim_cap_layout(name="mim"), setup=setup, build_dir=tmp_path / "mim")
    deck = mim.netlist_path.read_text() + "XC top 0 mim\nV1 top 0 DC 0 AC 1\n"
    res = run(Sim(deck, Ac(1e6, 1e6, 1, "lin"), devices=("sky130_fd_pr__cap_mim_m3_2",)), cache_dir=tmp_path / "c")
    c_f = float(np.abs(np.imag(res.trace("i(v1)")))[0]) / (2 * np.pi * 1e6)
    assert MIM_7X7_F < c_f < MIM_7X7_F + WIRING_MAX_F

    inv = magic_extract(inverter_layout(), setup=setup, build_dir=tmp_path / "inv")
    devices = ("sky130_fd_pr__nfet_01v8", "sky130_fd_pr__pfet_01v8")
    for v_in, low, high in ((0.0, 1.7, 1.81), (1.8, -0.01, 0.1)):
        deck = inv.netlist_path.read_text() + f"XI in out vdd 0 inv\nVDD vdd 0 1.8\nVIN in 0 {v_in}\n"
        v_out = float(run(Sim(deck, Op(), devices=devices), cache_dir=tmp_path / "c").trace("out")[0])
        assert low < v_out < high


def test_gds_export(setup, tmp_path):
    path = magic_gds(inverter_layout(), tmp_path / "inv.gds", setup=setup, build_dir=tmp_path / "b")
    assert path.read_bytes()[:4] == b"\x00\x06\x00\x02"  # GDSII HEADER record


def test_layout_verb_end_to_end(tmp_path, monkeypatch, pdk_root):
    from imcpnn.cli import main

    monkeypatch.setenv("PDK_ROOT", str(pdk_root))
    assert main(["layout", "--cells", "inv", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "inv_layout.json").exists() and (tmp_path / "inv.png").exists()
