"""Network layout: geometry, ports and schematic (fast), then DRC, extraction and LVS of a 2-2-2 and
the 5-5-5 demo network (slow, real magic and netgen, a PDK from the pdk_root fixture).

Expected values come from hand counts and physics, not from earlier runs:

- devices: 4 per synapse (2 nfet, 2 pfet), 19 per neuron (1 MiM, 8 nfet, 1 LVT nfet, 7 pfet,
  1 HVT pfet; read off ``netlists/neuron.spice``, as in test_layout_blocks).
- membrane capacitance of neuron i of layer l: C = C_MiM + C_neuron + C_route + C_array with
  C_MiM = 2 fF/um^2 (7 + 0.15 um)^2 = 102.245 fF (sky130 model area rule); C_neuron in
  [1, 15] fF (the neuron's own membrane wiring, bounded in test_layout_blocks); C_route from the
  length L of the membrane's met2/met3 wires (found by following them in the layout's rectangles)
  at [0.03, 0.35] fF/um; C_array <= n_in x 2.1 fF (each synapse's ~6 um of met1 membrane column
  and step at the same <= 0.35 fF/um). Per-length bounds: a 0.3 um wire >= 2.8 um over the
  substrate has 2 pi eps / ln(4 h / w) ~ 0.06 fF/um with a ground plane alone, and any other
  conductor only adds (0.03 is half of that); the most it can see is met2 below and met4 above
  over its full width ((86 + 84) aF/um^2 x 0.3 um = 0.05 fF/um, the tech file's overlap values),
  fringe on both edges (2 x 41 aF/um) and a neighbour at minimum spacing on both sides
  (< 0.1 fF/um each): < 0.35 fF/um.
"""

from __future__ import annotations

import argparse

import pytest

from imcpnn.circuits.netlist.extracted import parse_extracted, schematic_device_counts
from imcpnn.circuits.layout.cells import GRID_M, Layout
from imcpnn.circuits.layout.network import _assign_slots, network_layout
from imcpnn.circuits.layout.magic import restore_substrate_caps
from imcpnn.circuits.netlist.network import Network, network_core_ports
from imcpnn.errors import ConfigError

NFET, PFET = "sky130_fd_pr__nfet_01v8", "sky130_fd_pr__pfet_01v8"
MIM_7X7_F = 2e-15 / 1e-12 * (7e-6 + 0.15e-6) ** 2
NEURON_WIRING_F = (1e-15, 15e-15)
ROUTE_F_PER_M = (0.03e-15 / 1e-6, 0.35e-15 / 1e-6)
SYNAPSE_WIRING_MAX_F = 2.1e-15


def expected_devices(widths: tuple[int, ...]) -> dict[str, int]:
    """Hand count: 4 devices per synapse, 19 per neuron (see module docstring)."""
    n_syn = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    n_neu = sum(widths[1:])
    return {
        "sky130_fd_pr__cap_mim_m3_2": n_neu,
        NFET: 2 * n_syn + 8 * n_neu,
        "sky130_fd_pr__nfet_01v8_lvt": n_neu,
        PFET: 2 * n_syn + 7 * n_neu,
        "sky130_fd_pr__pfet_01v8_hvt": n_neu,
    }


def _touch(a, b) -> bool:
    return a.x0 <= b.x1 and b.x0 <= a.x1 and a.y0 <= b.y1 and b.y0 <= a.y1


def route_length_m(layout: Layout, port: str) -> float:
    """Summed length (m) of the met2/met3 rectangles connected to ``port``'s label through
    overlaps and via2 cuts: the membrane's wires from the array to the neuron's via ladder."""
    pool = [r for r in layout.rects if r.layer in ("metal2", "metal3", "via2")]
    seen = {layout.port_rect(port)}
    todo = list(seen)
    while todo:
        a = todo.pop()
        for b in pool:
            if b not in seen and _touch(a, b) and (a.layer == b.layer or "via2" in (a.layer, b.layer)):
                seen.add(b)
                todo.append(b)
    return sum(max(r.x1 - r.x0, r.y1 - r.y0) for r in seen if r.layer != "via2") * GRID_M


# --- fast: geometry, ports, schematic ----------------------------------------------------------


def test_ports_schematic_and_metal_roles():
    widths = (2, 3, 2)
    lay = network_layout(Network(widths))
    assert lay.ports == network_core_ports(widths)
    assert schematic_device_counts(lay.schematic, "imcpnn_network") == expected_devices(widths)
    layer = {lb.text: lb.layer for lb in lay.labels}
    assert {layer[p] for p in ("s0_0", "sb0_1", "s1_2", "sb1_0")} == {"metal2"}  # spike lines
    assert {layer[p] for p in ("m0_0", "m0_2", "m1_1")} == {"metal3"}  # dendrites
    assert {layer[p] for p in ("vn0_1_2", "vp1_2_1", "rst0", "fireb1", "vgdis1")} == {"metal4"}
    spk, mem, rst = lay.port_rect("s1_2"), lay.port_rect("m1_0"), lay.port_rect("rst1")
    assert spk.x1 - spk.x0 > 10 * (spk.y1 - spk.y0)  # spike lines horizontal
    assert mem.y1 - mem.y0 > 10 * (mem.x1 - mem.x0)  # dendrites vertical
    assert rst.y1 - rst.y0 > 10 * (rst.x1 - rst.x0)  # control lines run over the neuron column
    # Membrane wiring starts on the array column and ends on the neuron's ladder (met5 up to the MiM).
    assert route_length_m(lay, "m0_0") > (lay.port_rect("m0_0").y1 - lay.port_rect("m0_0").y0) * GRID_M


def test_name_sets_both_layout_and_schematic():
    lay = network_layout(Network((1, 1)), name="core_b")
    assert lay.name == "core_b" and ".subckt core_b " in lay.schematic and ".ends core_b" in lay.schematic
    assert "\n.subckt neuron mem " in lay.schematic and "\n.subckt synapse mem " in lay.schematic


def test_slot_assignment_keeps_order_and_minimizes_length():
    # Targets 9 and 12: (10, 20) costs 1 + 8 = 9, better than (0, 10): 9 + 2 = 11.
    assert _assign_slots([0, 10, 20, 30], [9, 12]) == [1, 2]
    # Order is kept even where crossing would be shorter: targets 25, 26 on slots 0, 30.
    assert _assign_slots([0, 30], [25, 26]) == [0, 1]
    assert _assign_slots([5, 6, 7], [6]) == [1]


def test_substrate_caps_are_replaced_by_the_ext_records():
    ext = 'scale 1000 1 0.5\nsubstrate "vss" 0 0\nnode "mem" 10 4202.3 0 0 m3\nnode "a" 10 0 0 0 m1\n'
    spice = ".subckt t mem a vss\nC0 mem vss 0.59fF\nC1 mem a 0.2fF\nC2 a vss 0.1fF\n.ends\n"
    net = parse_extracted(restore_substrate_caps(spice, ext))
    assert net.node_capacitance_f("mem", include_mim=False) == pytest.approx(4.2023e-15 + 0.2e-15)
    # "a" has no substrate capacitance on record: its netlist capacitor stays.
    assert net.node_capacitance_f("a", include_mim=False) == pytest.approx(0.3e-15)


@pytest.mark.parametrize("widths", ["5", "5,0", "5,x,3"])
def test_layout_verb_rejects_bad_network_widths(tmp_path, widths):
    from imcpnn.verbs import layout as verb

    parser = argparse.ArgumentParser()
    verb.add_arguments(parser)
    args = parser.parse_args(["--network", widths, "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="write the layer widths as >= 2 positive integers"):
        verb.run(args)


# --- slow: magic and netgen --------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(pdk_root):
    from imcpnn.circuits.layout.magic import MagicSetup

    return MagicSetup.discover(pdk_root)


@pytest.fixture(scope="module")
def flow_555(setup, tmp_path_factory):
    """The demo network through the whole flow, once for the module: (layout, report)."""
    from imcpnn.circuits.layout.flow import run_layout_flow

    lay = network_layout(Network((5, 5, 5)))
    return lay, run_layout_flow(lay, tmp_path_factory.mktemp("net555"), setup=setup)


def _check_network_report(lay, report, widths):
    net = report.netlist
    assert report.drc.n_errors == 0 and report.lvs.is_match
    assert net.device_counts == report.expected_devices == expected_devices(widths)
    assert net.subckt == "imcpnn_network" and net.ports == network_core_ports(widths)
    assert len(net.capacitors) > 0
    n_in = dict(zip(range(len(widths) - 1), widths[:-1]))
    for port in (p for p in net.ports if p.startswith("m")):
        length_m = route_length_m(lay, port)
        low = MIM_7X7_F + NEURON_WIRING_F[0] + ROUTE_F_PER_M[0] * length_m
        high = MIM_7X7_F + NEURON_WIRING_F[1] + ROUTE_F_PER_M[1] * length_m
        high += n_in[int(port[1:].split("_")[0])] * SYNAPSE_WIRING_MAX_F
        assert low < net.node_capacitance_f(port) < high, port
    assert report.files["png"].exists() and report.files["png"].stat().st_size > 10_000
    # The ngspice-ready core: same subckt and ports, W/L in um like netlists/.
    pex = parse_extracted(report.files["pex_netlist"].read_text(), "imcpnn_network")
    assert pex.ports == network_core_ports(widths)
    assert report.files["pex_netlist"].name == "imcpnn_network_pex.spice"


@pytest.mark.slow
def test_network_555_drc_lvs_devices_and_membranes(flow_555):
    lay, report = flow_555
    _check_network_report(lay, report, (5, 5, 5))


@pytest.mark.slow
def test_network_222_flow_and_lvs_sees_the_inter_layer_wiring(setup, tmp_path):
    from imcpnn.circuits.layout.flow import run_layout_flow
    from imcpnn.circuits.layout.lvs import run_lvs

    lay = network_layout(Network((2, 2, 2)))
    report = run_layout_flow(lay, tmp_path, setup=setup)
    _check_network_report(lay, report, (2, 2, 2))
    # Not vacuous: a schematic where neuron 0 of layer 0 drove layer 1's second spike line
    # (its synapse XS1_0_0 on s1_1) does not match the layout.
    wrong = tmp_path / "wrong.spice"
    wrong.write_text(lay.schematic.replace("XS1_0_0 m1_0 s1_0 ", "XS1_0_0 m1_0 s1_1 "))
    assert wrong.read_text() != lay.schematic
    result = run_lvs(report.extraction.lvs_netlist_path, lay.name, wrong, lay.name, tmp_path / "lvs_wrong")
    assert not result.is_match


@pytest.mark.slow
def test_layout_verb_network(tmp_path, monkeypatch, pdk_root):
    import json

    from imcpnn.cli import main

    monkeypatch.setenv("PDK_ROOT", str(pdk_root))
    assert main(["layout", "--network", "1,1", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "imcpnn_network_layout.json").read_text())
    assert summary["drc_errors"] == 0 and summary["lvs_match"]
    assert summary["device_counts"] == expected_devices((1, 1))
    assert (tmp_path / "imcpnn_network_pex.spice").exists() and (tmp_path / "imcpnn_network.png").exists()
    assert not (tmp_path / "inv_layout.json").exists()  # --network alone lays out no cells
