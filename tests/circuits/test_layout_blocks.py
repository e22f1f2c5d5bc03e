"""Neuron and synapse-array layouts: geometry and schematics (fast), then magic DRC, extraction
and netgen LVS (slow).

Expected values come from the netlists and closed forms, not from earlier runs: the neuron's
device list is read off ``netlists/neuron.spice`` by hand (19 devices: 1 MiM; nfet: reset tgate,
discharger, enable, disable pull-down, nand2 x2, inv, output tgate = 8; pfet: reset tgate,
enable, bias, nand2 x2, inv, output tgate = 7; one LVT nfet, one HVT pfet); an array holds
4 devices per synapse; the MiM plate is C = 2 fF/um^2 (W + 0.15)(L + 0.15) = 102.245 fF.
"""

from __future__ import annotations

import pytest

from imcpnn.circuits.netlist.cells import Neuron
from imcpnn.circuits.netlist.extracted import parse_extracted, schematic_device_counts
from imcpnn.circuits.layout.cells import GRID_M, mosfet_layout, pfet_top, tgate_layout
from imcpnn.circuits.layout.blocks import (
    array_ports,
    neuron_layout,
    synapse_array_layout,
    via_stack,
)
from imcpnn.circuits.layout.magic import _res_net, add_substrate_caps, restore_substrate_caps, substrate_caps_f
from imcpnn.errors import NetlistError

NFET, PFET = "sky130_fd_pr__nfet_01v8", "sky130_fd_pr__pfet_01v8"
NEURON_DEVICES = {
    "sky130_fd_pr__cap_mim_m3_2": 1,
    NFET: 8,
    "sky130_fd_pr__nfet_01v8_lvt": 1,
    PFET: 7,
    "sky130_fd_pr__pfet_01v8_hvt": 1,
}
MIM_7X7_F = 2e-15 / 1e-12 * (7e-6 + 0.15e-6) ** 2  # 102.245 fF
#: Wiring bound on the membrane: ~12 um of met2 track, ~20 um of met1 jogs and bridges, a
#: 1.6 um x 2.9 um met5 bar over the met4 bottom plate and the via ladder. At <= 0.1 fF/um for a
#: narrow line (area + fringe + coupling) and ~0.07 fF/um^2 met5-met4 that is a few fF plus the
#: gate overlaps: 15 fF bounds it generously; 1 fF is a floor that shows wiring was counted.
MEM_WIRING_MIN_F, MEM_WIRING_MAX_F = 1e-15, 15e-15


def _layers(layout, layer):
    return [r for r in layout.rects if r.layer == layer]


# --- fast: geometry and schematics --------------------------------------------------------------


def test_neuron_layout_ports_devices_and_membrane():
    lay = neuron_layout()
    assert lay.ports == Neuron.ports
    assert schematic_device_counts(lay.schematic, "neuron") == NEURON_DEVICES
    assert lay.area_m2("mimcap2") == pytest.approx(49e-12)
    # The met4 bottom plate (vss) lies under the whole met5 membrane plate: the shield.
    (cap,) = _layers(lay, "mimcap2")
    plate = max(_layers(lay, "metal4"), key=lambda r: (r.x1 - r.x0) * (r.y1 - r.y0))
    assert plate.x0 < cap.x0 and plate.y0 < cap.y0 and plate.x1 > cap.x1 and plate.y1 > cap.y1
    # Every MOSFET model of the netlist is drawn with its own gate type.
    assert {"nmos", "nmoslvt", "pmos", "pmoshvt"} <= {r.layer for r in lay.rects}


def test_neuron_layout_follows_sizes_and_rejects_a_wide_discharger():
    lay = neuron_layout(Neuron(cm_w_m=5e-6, cm_l_m=6e-6, l_dis_m=0.5e-6), name="neuron_b")
    assert lay.area_m2("mimcap2") == pytest.approx(30e-12)
    assert ".subckt neuron_b" in lay.schematic and "cm_w=5 cm_l=6 w_dis=1 l_dis=0.5" in lay.schematic
    # The discharger gate is 0.5 um long now: one nmos region 0.5 um x 1 um.
    assert any((r.x1 - r.x0, r.y1 - r.y0) == (100, 200) for r in _layers(lay, "nmos"))
    with pytest.raises(NetlistError, match="draws w_dis_m = 1e-6 only"):
        neuron_layout(Neuron(w_dis_m=2e-6))


def test_stack_with_per_gate_lengths():
    lay = mosfet_layout(NFET, 1e-6, (0.15e-6, 0.25e-6), n_gates=2)
    assert lay.area_m2("nmos") == pytest.approx(1e-6 * (0.15e-6 + 0.25e-6))
    assert "L=0.15" in lay.schematic and "L=0.25" in lay.schematic
    with pytest.raises(NetlistError, match="give one per gate"):
        mosfet_layout(NFET, 1e-6, (0.15e-6,), n_gates=2)


def test_row_height_aligns_pfets_and_rejects_overlap():
    a = tgate_layout(height_m=6.5e-6)
    pdiff = _layers(a, "pdiff")
    assert max(r.y1 for r in pdiff) * GRID_M == pytest.approx(6.5e-6)
    assert pfet_top(1e-6, 2e-6, 1.2, None) * GRID_M == pytest.approx(4.2e-6)
    with pytest.raises(NetlistError, match="at least Wn \\+ Wp"):
        pfet_top(1e-6, 2e-6, 1.2, 3e-6)


def test_via_stack_pads_meet_the_rules():
    stack = via_stack(0, 0, 1, 5)
    widths = {r.layer: (r.x1 - r.x0) * GRID_M for r in stack}
    assert widths["via4"] >= 1.18e-6 and widths["metal5"] >= 1.6e-6  # via4.1 + 2 via4.4; met5.1
    assert widths["metal3"] ** 2 >= 0.24e-12 and widths["metal4"] ** 2 >= 0.24e-12  # met3.6, met4.4a
    with pytest.raises(NetlistError, match="need 1 <= bottom < top <= 5"):
        via_stack(0, 0, 3, 3)


def test_synapse_array_layers_ports_and_schematic():
    n_in, n_out = 3, 2
    lay = synapse_array_layout(n_in, n_out)
    assert lay.ports == array_ports(n_in, n_out)
    assert len(lay.ports) == n_out + 2 * n_in + 2 * n_in * n_out + 2
    counts = schematic_device_counts(lay.schematic, lay.name)
    assert sum(counts.values()) == 4 * n_in * n_out
    layer = {lb.text: lb.layer for lb in lay.labels}
    assert layer["spk0"] == "metal2" and layer["mem1"] == "metal3" and layer["vg_n2_1"] == "metal4"
    spk, mem = lay.port_rect("spk0"), lay.port_rect("mem0")
    assert spk.x1 - spk.x0 > 10 * (spk.y1 - spk.y0)  # spike lines run horizontally
    assert mem.y1 - mem.y0 > 10 * (mem.x1 - mem.x0)  # dendrites run vertically
    with pytest.raises(NetlistError, match="need n_in >= 1"):
        synapse_array_layout(0, 5)


EXT = """timestamp 0
scale 1000 1 0.5
node "vdd" 16178 2715.86 20 1360 m1 0 0
substrate "vss" 0 0 20 -106 m1 0 0
node "mem" 3343 3815.3 3090 234 m1 0 0
node "a_1_2#" 10 0 0 0 m1 0 0
"""


def test_substrate_caps_from_ext_are_added_to_the_netlist():
    sub, caps = substrate_caps_f(EXT)
    assert sub == "vss"
    assert caps == pytest.approx({"vdd": 2715.86e-18, "mem": 3815.3e-18})
    text = add_substrate_caps(".subckt a mem vdd vss\nC0 mem vdd 1fF\n.ends\n", sub, caps)
    net = parse_extracted(text)
    assert net.node_capacitance_f("mem", include_mim=False) == pytest.approx(1e-15 + 3815.3e-18)
    assert text.rstrip().endswith(".ends")
    with pytest.raises(NetlistError, match="lacks its `scale` or `substrate`"):
        substrate_caps_f("node \"a\" 1 2 0 0 m1\n")


def test_substrate_caps_of_an_r_split_net_keep_the_record_total():
    # vdd's 2715.86 aF is shared 1:3 by its split nodes as the netlist had it; mem got no
    # substrate line from ext2spice, so its 3815.3 aF goes on the node named like the net.
    spice = (".subckt a mem vdd vss\nR0 vdd vdd.t0 1\nR1 vdd.t0 vdd.n1 1\nC0 vdd.t0 vss 0.1fF\n"
             "C1 vdd.n1 vss 0.3fF\nC2 mem vdd 1fF\nR2 mem mem.t0 2\n.ends\n")
    net = parse_extracted(restore_substrate_caps(spice, EXT, _res_net))
    to_sub = {c.nodes[0]: c.value for c in net.capacitors if "vss" in c.nodes}
    assert to_sub == pytest.approx({"vdd.t0": 2715.86e-18 / 4, "vdd.n1": 2715.86e-18 * 3 / 4,
                                    "mem": 3815.3e-18})
    assert net.node_capacitance_f("mem", include_mim=False) == pytest.approx(1e-15 + 3815.3e-18)


def test_substrate_caps_of_internal_r_nets_land_on_their_own_nodes():
    # Internal nets are recorded as "a_1#" but split into a_1.t0, a_1.n0: the record total
    # replaces their lines (1:1 here); b_2# has only b_2.t0 in the netlist and no line.
    ext = ('scale 1000 1 5\nsubstrate "vss" 0 0 0 0 m1 0 0\nnode "a_1#" 1 2000 0 0 m1 0 0\n'
           'node "b_2#" 1 500 0 0 m1 0 0\n')
    spice = (".subckt c x vss\nR0 a_1.t0 a_1.n0 1\nR1 a_1.n0 b_2.t0 1\nR2 b_2.t0 x 1\n"
             "C0 a_1.t0 vss 0.3fF\nC1 a_1.n0 vss 0.3fF\n.ends\n")
    net = parse_extracted(restore_substrate_caps(spice, ext, _res_net))
    to_sub = {c.nodes[0]: c.value for c in net.capacitors if "vss" in c.nodes}
    assert to_sub == pytest.approx({"a_1.t0": 1e-15, "a_1.n0": 1e-15, "b_2.t0": 0.5e-15})


# --- slow: magic and netgen --------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(pdk_root):
    from imcpnn.circuits.layout.magic import MagicSetup

    return MagicSetup.discover(pdk_root)


@pytest.mark.slow
def test_neuron_drc_lvs_and_membrane_capacitance(setup, tmp_path):
    from imcpnn.circuits.layout.flow import run_layout_flow

    report = run_layout_flow(neuron_layout(), tmp_path, setup=setup)
    net = report.netlist
    assert report.drc.n_errors == 0 and report.lvs.is_match
    assert net.device_counts == NEURON_DEVICES
    assert net.ports == Neuron.ports  # drop-in for netlists/neuron.spice
    assert len(net.capacitors) > 0
    wiring_f = net.node_capacitance_f("mem") - MIM_7X7_F
    assert MEM_WIRING_MIN_F < wiring_f < MEM_WIRING_MAX_F
    # The membrane's capacitance to the substrate (vss) survives extraction.
    assert any(set(c.nodes) == {"mem", "vss"} and c.value > 0 for c in net.capacitors)


@pytest.mark.slow
def test_synapse_array_5x5_drc_lvs_and_device_count(setup, tmp_path):
    from imcpnn.circuits.layout.flow import run_layout_flow
    from imcpnn.circuits.layout.lvs import run_lvs

    lay = synapse_array_layout(5, 5)
    report = run_layout_flow(lay, tmp_path, setup=setup)
    assert report.drc.n_errors == 0 and report.lvs.is_match
    assert sum(report.netlist.device_counts.values()) == 4 * 5 * 5
    assert len(report.netlist.capacitors) > 0
    # LVS is not vacuous: a schematic with one synapse on the wrong spike line mismatches.
    wrong = tmp_path / "wrong.spice"
    wrong.write_text(lay.schematic.replace("X0_0 mem0 spk0 spk_b0", "X0_0 mem0 spk1 spk_b0"))
    result = run_lvs(report.extraction.lvs_netlist_path, lay.name, wrong, lay.name, tmp_path / "lvs_wrong")
    assert not result.is_match


@pytest.mark.slow
def test_neuron_post_layout_fires_later_than_schematic(setup, tmp_path):
    """Reset to V0 = 1.3 V, then the firing phase: the discharger ramps the membrane down and the
    neuron spikes. dV/dt = -I_dis(V)/C, so the ramp time between two voltages scales with the
    membrane capacitance: post-layout it is longer by the wiring share, 1 < ratio <
    1 + 15 fF / 102 fF; the spike comes later; both outputs stay complementary."""
    import numpy as np

    from imcpnn.circuits.netlist.cells import Inv, Nand2, TGate, cell_text
    from imcpnn.circuits.layout.magic import magic_extract
    from imcpnn.spice import Sim, Tran, run

    pex = magic_extract(neuron_layout(), setup=setup, build_dir=tmp_path / "x").netlist_path.read_text()
    schematic = "".join(cell_text(c) for c in (Inv, Nand2, TGate, Neuron))
    stimulus = (
        "XN mem vgd vbs v0 rst rstb fire fireb out outb vdd 0 neuron\nVDD vdd 0 1.8\nVGD vgd 0 0.55\n"
        "VBS vbs 0 0.95\nV0 v0 0 1.3\nVR rst 0 PWL(0 1.8 100n 1.8 101n 0)\n"
        "VRB rstb 0 PWL(0 0 100n 0 101n 1.8)\nVF fire 0 PWL(0 0 150n 0 151n 1.8)\n"
        "VFB fireb 0 PWL(0 1.8 150n 1.8 151n 0)\n"
    )
    devices = (NFET, "sky130_fd_pr__nfet_01v8_lvt", PFET, "sky130_fd_pr__pfet_01v8_hvt",
               "sky130_fd_pr__cap_mim_m3_2")
    ramp_s, spike_s = {}, {}
    for kind, body in (("schematic", schematic), ("post-layout", pex)):
        res = run(Sim(body + stimulus, Tran(0.5e-9, 1.5e-6), devices=devices), cache_dir=tmp_path / "c")
        t, mem, out, out_b = (res.trace(n) for n in ("time", "mem", "out", "outb"))
        assert mem[np.searchsorted(t, 140e-9)] == pytest.approx(1.3, abs=0.01)  # reset to V0
        ramp = t > 151e-9
        ramp_s[kind] = np.interp(-0.8, -mem[ramp], t[ramp]) - np.interp(-1.2, -mem[ramp], t[ramp])
        assert out[-1] > 1.7 and out_b[-1] < 0.1
        spike_s[kind] = t[np.argmax(out > 0.9)]
    ratio = ramp_s["post-layout"] / ramp_s["schematic"]
    assert 1.0 < ratio < 1 + MEM_WIRING_MAX_F / MIM_7X7_F
    assert spike_s["post-layout"] > spike_s["schematic"]


def test_junction_params_found_by_nets_when_extresist_renumbers():
    from imcpnn.circuits.netlist.extracted import take_junction_params

    flat = f".subckt a d g s b\nX7 d.t1 g.t0 s.n2 b {NFET} ad=-6.5p pd=0u as=3e4p ps=0u w=1u l=0.15u\n.ends\n"
    good = f".subckt a d g s b\nX0 s g d# b {NFET} ad=0.29p pd=2.58u as=0.31p ps=2.6u w=1u l=0.15u\n.ends\n"
    assert "ad=0.29p pd=2.58u as=0.31p ps=2.6u w=1u" in take_junction_params(flat, good)
    twin = good.replace(".ends", f"X1 d g s b {NFET} ad=1p pd=1u as=1p ps=1u w=1u l=0.15u\n.ends")
    with pytest.raises(NetlistError, match="has no twin"):
        take_junction_params(flat, twin)  # two candidates: ambiguous
