"""Layout geometry and text-level post-layout helpers (no magic/netgen run here)."""

from __future__ import annotations

import pytest

from imcpnn.circuits.netlist.cells import Inv, Nand2, Synapse, TGate
from imcpnn.circuits.netlist.extracted import (
    check_extraction,
    parse_extracted,
    parse_spice_number,
    schematic_device_counts,
    take_junction_params,
    to_runner_units,
)
from imcpnn.circuits.layout.cells import (
    CONTACT_LAYERS,
    GRID_M,
    Rect,
    inverter_layout,
    library_schematic,
    mim_cap_layout,
    mosfet_layout,
    nand2_layout,
    plot_layout,
    synapse_layout,
    tgate_layout,
    to_grid,
    to_mag,
)
from imcpnn.circuits.layout import layout_cells
from imcpnn.circuits.layout.lvs import netgen_setup_text, parse_lvs_report
from imcpnn.circuits.layout.magic import fix_res_ext_substrate, trim_tech_text
from imcpnn.errors import NetlistError

NFET = "sky130_fd_pr__nfet_01v8"


# --- geometry -------------------------------------------------------------------------------


def test_grid_conversion_is_exact_and_rejects_off_grid():
    assert to_grid(0.15e-6) == 30  # 150 nm / 5 nm
    with pytest.raises(NetlistError, match="5 nm manufacturing grid"):
        to_grid(0.152e-6)


def test_empty_rect_rejected():
    with pytest.raises(NetlistError, match="empty metal1 rectangle"):
        Rect("metal1", 0, 0, 0, 10)


def test_mosfet_gate_area_and_ports():
    lay = mosfet_layout(NFET, 1e-6, 0.15e-6)
    gate = [r for r in lay.rects if r.layer == "nmos"]
    assert len(gate) == 1
    assert lay.area_m2("nmos") == pytest.approx(1e-6 * 0.15e-6, rel=1e-12)
    assert lay.ports == ("d", "g", "s", "b")
    assert "nwell" not in {r.layer for r in lay.rects}
    pmos = mosfet_layout("sky130_fd_pr__pfet_01v8_hvt", 1e-6, 0.15e-6)
    assert {"nwell", "pmoshvt", "nsubdiff"} <= {r.layer for r in pmos.rects}
    # n-well encloses every p-diffusion by at least 0.18 um (diff/tap.8).
    nwell = next(r for r in pmos.rects if r.layer == "nwell")
    for r in pmos.rects:
        if r.layer in ("pdiff", "pmoshvt", "nsubdiff"):
            assert min(r.x0 - nwell.x0, r.y0 - nwell.y0, nwell.x1 - r.x1, nwell.y1 - r.y1) * GRID_M >= 0.18e-6 - 1e-12


def test_series_stack_geometry_and_schematic():
    lay = mosfet_layout(NFET, 1e-6, 0.25e-6, n_gates=2)
    assert lay.ports == ("d", "g1", "g2", "s", "b")
    assert lay.area_m2("nmos") == pytest.approx(2 * 1e-6 * 0.25e-6)
    assert schematic_device_counts(lay.schematic, lay.name) == {NFET: 2}
    assert "X0 n1 g1 s b" in lay.schematic and "X1 d g2 n1 b" in lay.schematic
    fingers = mosfet_layout(NFET, 1e-6, 0.15e-6, n_gates=3, parallel=True)
    assert fingers.ports == ("d", "d2", "g1", "g2", "g3", "s", "s2", "b")
    assert "X2 d2 g3 s2 b" in fingers.schematic  # third finger: source on the left
    with pytest.raises(NetlistError, match="at least one gate"):
        mosfet_layout(NFET, 1e-6, 0.25e-6, n_gates=0)


def test_mosfet_rejects_unknown_model_and_small_sizes():
    with pytest.raises(NetlistError, match="no layout generator for model"):
        mosfet_layout("sky130_fd_pr__nfet_g5v0d10v5", 1e-6, 0.5e-6)
    with pytest.raises(NetlistError, match="below the sky130 minimum"):
        mosfet_layout(NFET, 0.3e-6, 0.15e-6)


def test_mim_plate_area_and_minimum():
    lay = mim_cap_layout(7e-6, 7e-6)
    assert lay.area_m2("mimcap2") == pytest.approx(49e-12)
    assert lay.ports == ("top", "bot")
    with pytest.raises(NetlistError, match="each side must be"):
        mim_cap_layout(1.5e-6, 7e-6)


def test_mag_text_writes_contacts_after_routing_layers():
    text = to_mag(mosfet_layout(NFET, 1e-6, 0.15e-6))
    assert text.startswith("magic\ntech sky130A\nmagscale 1 2\n")
    layers = [line[3:-3] for line in text.splitlines() if line.startswith("<< ") and line != "<< labels >>"]
    layers.remove("end")
    first_contact = min(i for i, name in enumerate(layers) if name in CONTACT_LAYERS)
    assert all(name in CONTACT_LAYERS for name in layers[first_contact:])
    assert "rlabel metal1 s" in text and "port 4 nsew" in text


def test_cell_ports_follow_the_cell_library():
    assert tgate_layout().ports == TGate.ports
    assert synapse_layout().ports == Synapse.ports
    assert nand2_layout().ports == Nand2.ports
    assert schematic_device_counts(tgate_layout().schematic, "tgate") == {NFET: 1, "sky130_fd_pr__pfet_01v8": 1}
    lay = inverter_layout()
    assert lay.ports == Inv.ports
    with pytest.raises(NetlistError, match="has no port 'clk'"):
        lay.port_rect("clk")
    assert schematic_device_counts(lay.schematic, "inv") == {NFET: 1, "sky130_fd_pr__pfet_01v8": 1}


def test_library_schematic_renames_and_sets_sizes():
    text = inverter_layout(2e-6, 4e-6, name="inv_x2").schematic
    assert ".subckt inv_x2 in out vdd vss wn=2 wp=4 l=0.15" in text
    with pytest.raises(NetlistError, match="no parameter 'wx'"):
        library_schematic(Inv, "x", {"wx": 1e-6})


def test_plot_layout_writes_png(tmp_path):
    path = plot_layout(layout_cells()["inv"], tmp_path / "inv.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- extracted netlist text -------------------------------------------------------------------

MIM_NETLIST = """* NGSPICE file created from mim.ext - technology: sky130A
.subckt mim top bot
X0 top bot sky130_fd_pr__cap_mim_m3_2 l=7u w=7u
C0 bot top 1.93fF
C1 bot $SUB 0.68fF
.ends
"""


@pytest.mark.parametrize(
    ("token", "value"),
    [("0.19fF", 0.19e-15), ("2u", 2e-6), ("1meg", 1e6), ("-0.00fF", 0.0), ("129.767", 129.767), ("0.29p", 0.29e-12)],
)
def test_parse_spice_number(token, value):
    assert parse_spice_number(token) == pytest.approx(value, abs=1e-30)


def test_parse_spice_number_rejects_words():
    with pytest.raises(NetlistError, match="not a SPICE number"):
        parse_spice_number("abc")


def test_mim_node_capacitance_is_plate_plus_wiring():
    net = parse_extracted(MIM_NETLIST)
    plate_f = 2e-15 / 1e-12 * (7.15e-6) ** 2  # 2 fF/um^2 (W + 0.15 um)(L + 0.15 um) = 102.245 fF
    assert net.node_capacitance_f("top") == pytest.approx(plate_f + 1.93e-15, rel=1e-9)
    assert net.node_capacitance_f("top", include_mim=False) == pytest.approx(1.93e-15)
    assert net.node_capacitance_f("bot") == pytest.approx(plate_f + 1.93e-15 + 0.68e-15, rel=1e-9)
    with pytest.raises(NetlistError, match="node 'mem' not in mim"):
        net.node_capacitance_f("mem")
    with pytest.raises(NetlistError, match="has no parameter 'ad'"):
        net.elements[0].param("ad")


def test_parse_errors():
    with pytest.raises(NetlistError, match="no .subckt in the extracted netlist"):
        parse_extracted("* empty\n")
    with pytest.raises(NetlistError, match="no .subckt 'inv'"):
        parse_extracted(MIM_NETLIST, "inv")
    with pytest.raises(NetlistError, match="unexpected line"):
        parse_extracted(".subckt a x\nL1 x 0 1n\n.ends\n")


def test_check_extraction_catches_lost_devices_and_parasitics():
    net = parse_extracted(MIM_NETLIST)
    check_extraction(net, {"sky130_fd_pr__cap_mim_m3_2": 1})
    with pytest.raises(NetlistError, match="a device type was not recognized"):
        check_extraction(net, {"sky130_fd_pr__cap_mim_m3_2": 2})
    bare = parse_extracted(".subckt a x y\nX0 x y sky130_fd_pr__cap_mim_m3_2 l=7u w=7u\n.ends\n")
    with pytest.raises(NetlistError, match="cthresh 0"):
        check_extraction(bare)
    with pytest.raises(NetlistError, match="no parasitic resistors"):
        check_extraction(net, require_resistors=True)
    with pytest.raises(NetlistError, match="above 1 nF"):
        check_extraction(parse_extracted(".subckt a x\nC0 x 0 2u\n.ends\n"))
    with pytest.raises(NetlistError, match="non-positive resistances"):
        check_extraction(parse_extracted(".subckt a x\nC0 x 0 1f\nR0 x y 0\n.ends\n"))
    garbage = f".subckt a d g s b\nX0 d g s b {NFET} ad=-40453.3p pd=1u as=0.1p ps=1u w=1u l=0.15u\nC0 d 0 1f\n.ends\n"
    with pytest.raises(NetlistError, match="garbage from ext2spice"):
        check_extraction(parse_extracted(garbage))


def test_runner_units_and_substrate_rename():
    text = to_runner_units(f"X0 d g s b {NFET} ad=0.29p pd=2.58u as=0.29p ps=2.58u w=1u l=0.15u\nC1 d $SUB 0.5fF\n")
    assert f"{NFET} ad=0.29 pd=2.58 as=0.29 ps=2.58 w=1 l=0.15" in text
    assert "C1 d 0 0.5fF" in text


def test_take_junction_params_from_the_lvs_netlist():
    flat = f".subckt a d g s b\nX0 d g s b {NFET} ad=-6.5p pd=0u as=3e4p ps=0u w=1u l=0.15u\nC0 d 0 1f\n.ends\n"
    good = f".subckt a d g s b\nX0 d g s b {NFET} ad=0.29p pd=2.58u as=0.29p ps=2.58u w=1u l=0.15u\n.ends\n"
    merged = take_junction_params(flat, good)
    assert "ad=0.29p pd=2.58u as=0.29p ps=2.58u w=1u" in merged and "C0 d 0 1f" in merged
    with pytest.raises(NetlistError, match="has no twin"):
        take_junction_params(flat, good.replace("w=1u", "w=2u"))


def test_schematic_device_counts_flattens_hierarchy():
    text = (
        ".subckt inv a y vdd vss\nXP y a vdd vdd sky130_fd_pr__pfet_01v8 W=2 L=0.15\n"
        f"XN y a vss vss {NFET} W=1 L=0.15\n.ends inv\n"
        ".subckt buf a y vdd vss\nX1 a m vdd vss inv\nX2 m y vdd vss inv\n.ends buf\n"
    )
    assert schematic_device_counts(text, "buf") == {NFET: 2, "sky130_fd_pr__pfet_01v8": 2}
    with pytest.raises(NetlistError, match="no .subckt 'nand2'"):
        schematic_device_counts(text, "nand2")
    with pytest.raises(NetlistError, match="instantiates itself"):
        schematic_device_counts(".subckt loop a\nX1 a loop\n.ends\n", "loop")


# --- tool text: tech trimming, extresist fix, netgen report -------------------------------------

TECH = """version
 version 1.0.255
 requires magic-8.3.111
end
extract
 device msubcircuit sky130_fd_pr__nfet_01v8 nfet \\
\t*ndiff *ndiff pwell error l=l w=w
 device msubcircuit sky130_fd_pr__npn_05v5 npn *ndiff dnwell space/w \\
\terror a2=area
 device msubcircuit sky130_fd_pr__pnp_05v5 pnp *pdiff pwell,space/w a2=area
end
"""


def test_trim_tech_text_keeps_our_devices_only():
    text = trim_tech_text(TECH, "8.3.105")
    assert "requires magic-8.3.105" in text
    assert "sky130_fd_pr__nfet_01v8 nfet" in text and "*ndiff *ndiff pwell error" in text
    assert "npn" not in text and "pnp" not in text and "a2=area" not in text


def test_fix_res_ext_substrate_matches_devices_by_position():
    ext = (
        'device msubckt sky130_fd_pr__nfet_01v8 0 0 1 1 l=30 w=200 "vss" "in" 60 0 "vss" 200 0 "out" 200 0\n'
        'device msubckt sky130_fd_pr__pfet_01v8 0 440 1 441 l=30 w=400 "vdd" "in" 60 0 "vdd" 400 0 "out" 400 0\n'
    )
    res = (
        'device msubckt sky130_fd_pr__pfet_01v8 0 440 1 441  "error" "in.t1" 60 0 "vdd.t0" 400 0 "out.t1" 400 0\n'
        'device msubckt sky130_fd_pr__nfet_01v8 0 0 1 1  "error" "in.t0" 60 0 "vss.t0" 200 0 "out.t0" 200 0\n'
    )
    fixed = fix_res_ext_substrate(res, ext).splitlines()
    assert fixed[0].split()[7] == '"vdd"' and fixed[1].split()[7] == '"vss"'
    with pytest.raises(NetlistError, match="no counterpart"):
        fix_res_ext_substrate(res, ext.replace("0 440 1 441", "5 440 6 441"))


def test_lvs_report_parsing():
    ok = "Netlists match uniquely.\nCells have no pins in common\nCircuits match uniquely.\n"
    assert parse_lvs_report(ok) == (True, ())
    prop = ok + " w circuit1: 2   circuit2: 3   (delta=40%, cutoff=1%)\nProperty errors were found.\n"
    match, lines = parse_lvs_report(prop)
    assert not match and any("delta=40%" in line for line in lines)
    assert parse_lvs_report("Netlists do not match.\n")[0] is False
    assert "permute" in netgen_setup_text() and "sky130_fd_pr__cap_mim_m3_2" in netgen_setup_text()
