"""Post-layout core in the testbench: one core instance, biases by port, extracted membrane C."""

from __future__ import annotations

import numpy as np
import pytest

from imcpnn.circuits.netlist.extracted import parse_extracted
from imcpnn.circuits.netlist.network import (
    Network,
    ParasiticEstimate,
    PhaseSchedule,
    PostLayoutCore,
    extracted_membrane_f,
    membrane_coupling,
    network_core_ports,
    network_core_schematic,
    network_deck,
)
from imcpnn.circuits.simulate.run import map_network, simulate_network
from imcpnn.circuits.simulate.weights import CurrentScales
from imcpnn.errors import ConfigError, NetlistError
from test_cells_and_mapping import _char  # a synthetic characterization (exponential tables)

#: 7 um x 7 um MiM, sky130 area rule 2 fF/um^2 (W + 0.15 um)(L + 0.15 um) = 2 x 7.15^2 fF.
MIM_7X7_F = 2 * 7.15**2 * 1e-15


def _deck(net: Network, vg_n: list[np.ndarray], vg_p: list[np.ndarray]):
    return network_deck(net, list(zip(vg_n, vg_p)), [0.55] * len(vg_n), np.zeros((1, net.widths[0])))


def test_schematic_core_makes_a_post_layout_network():
    flat = Network((2, 3, 2))
    net = Network((2, 3, 2), core=PostLayoutCore.schematic(flat))
    assert net.netlist_kind == "post-layout"
    assert net.membrane_f(0) == net.membrane_f(1) == pytest.approx(MIM_7X7_F)
    assert set(net.core.ports) == set(network_core_ports((2, 3, 2)))


def test_core_deck_ties_off_gates_by_port_and_sources_the_rest():
    widths = (2, 3)
    net = Network(widths, core=PostLayoutCore.schematic(Network(widths)))
    vg_n = np.array([[0.5, 0.0, 0.6], [0.0, 0.0, 0.7]])  # 3 on
    vg_p = np.array([[1.8, 1.1, 1.8], [1.2, 1.8, 1.8]])  # 2 on
    tb = _deck(net, [vg_n], [vg_p])
    lines = tb.text.splitlines()
    core_lines = [l for l in lines if l.startswith("XCORE ")]
    assert len(core_lines) == 1 and core_lines[0].split()[-1] == "imcpnn_network"
    node = dict(zip(net.core.ports, core_lines[0].split()[1:-1]))
    assert len(node) == len(network_core_ports(widths)) == len(core_lines[0].split()) - 2
    assert node["vss"] == "0"
    for j in range(2):
        for i in range(3):
            assert node[f"vn0_{j}_{i}"] == ("0" if vg_n[j, i] <= 0 else f"vn0_{j}_{i}")
            assert node[f"vp0_{j}_{i}"] == ("vdd" if vg_p[j, i] >= 1.8 else f"vp0_{j}_{i}")
    assert sum(l.startswith("VN0_") for l in lines) == 3
    assert sum(l.startswith("VP0_") for l in lines) == 2
    assert sum(l.startswith("VGDIS0 ") for l in lines) == 1
    # no cell instance outside the core: the layers live only inside the core subckt
    top = tb.text.split(".ends imcpnn_network")[1]
    assert not any(l.startswith(("XS", "XN")) for l in top.splitlines())
    assert tb.netlist_kind == "post-layout"


def test_extracted_membrane_is_the_mean_node_capacitance_per_layer():
    text = (".subckt core " + " ".join(network_core_ports((1, 2, 1))) + "\n"
            "X0 m0_0 vss sky130_fd_pr__cap_mim_m3_2 w=7u l=7u\n"
            "X1 m0_1 vss sky130_fd_pr__cap_mim_m3_2 w=7u l=7u\n"
            "X2 m1_0 vss sky130_fd_pr__cap_mim_m3_2 w=7u l=7u\n"
            "C0 m0_0 vss 4fF\nC1 m0_1 s1_0 2fF\nC2 m1_0 vss 1fF\nC3 m1_0 m0_0 3fF\n.ends\n")
    netlist = parse_extracted(text)
    c = extracted_membrane_f(netlist, (1, 2, 1))
    assert c[0] == pytest.approx(MIM_7X7_F + ((4 + 3) + 2) / 2 * 1e-15)
    assert c[1] == pytest.approx(MIM_7X7_F + (1 + 3) * 1e-15)
    core = PostLayoutCore.extracted(text, netlist, (1, 2, 1))
    assert core.name == "core" and core.membrane_f_per_layer == c
    assert map_network(Network((1, 2, 1), core=core), [np.full((1, 2), 0.5), np.full((2, 1), 0.5)],
                       _char(), CurrentScales(), 1e-6)["layers"][1]["c_m_f"] == pytest.approx(c[1])


def test_membrane_coupling_is_the_mutual_over_the_own_capacitance():
    """K_ij = -c_ij / C_i and K_ii = sum_j c_ij / C_i, C_i the node's capacitance to everything
    but the layer's other membranes; a capacitor to another layer's membrane is C_i's; a
    resistor-split node is its net; a schematic has none."""
    ports = " ".join(network_core_ports((1, 3, 1)))
    text = (f".subckt core {ports}\n"
            "X0 m0_0 vss sky130_fd_pr__cap_mim_m3_2 w=7u l=7u\n"
            "X1 m0_1 vss sky130_fd_pr__cap_mim_m3_2 w=7u l=7u\n"
            "X2 m0_2 vss sky130_fd_pr__cap_mim_m3_2 w=7u l=7u\n"
            "X3 m1_0 vss sky130_fd_pr__cap_mim_m3_2 w=7u l=7u\n"
            "C0 m0_0 m0_1 2fF\nC1 m0_1.t1 m0_2 1fF\nC2 m0_0 vss 5fF\nC3 m0_2 m1_0 3fF\n.ends\n")
    netlist = parse_extracted(text)
    own = np.array([MIM_7X7_F + 5e-15, MIM_7X7_F, MIM_7X7_F + 3e-15])
    mutual = np.array([[0, 2, 0], [2, 0, 1], [0, 1, 0]]) * 1e-15
    expected = -mutual / own[:, None] + np.diag(mutual.sum(1) / own)
    np.testing.assert_allclose(membrane_coupling(netlist, 0, 3), expected, rtol=1e-12)
    np.testing.assert_allclose(membrane_coupling(netlist, 1, 1), [[0.0]])
    # the same from the MiM's capacitance given apart (a core's text is in the runner's units)
    np.testing.assert_allclose(membrane_coupling(netlist, 0, 3, mim_f=MIM_7X7_F), expected, rtol=1e-12)
    core = PostLayoutCore.extracted(text, netlist, (1, 3, 1))
    np.testing.assert_allclose(Network((1, 3, 1), core=core).membrane_coupling(0), expected, rtol=1e-12)
    assert not Network((1, 3, 1), parasitic=ParasiticEstimate()).membrane_coupling(0).any()


def test_bad_cores_are_rejected():
    widths = (2, 2)
    good = PostLayoutCore.schematic(Network(widths))
    with pytest.raises(ConfigError, match="parasitic estimate"):
        Network(widths, parasitic=ParasiticEstimate(), core=good)
    with pytest.raises(NetlistError, match=r"does not fit widths \(2, 3\).*missing ports"):
        Network((2, 3), core=good)
    with pytest.raises(NetlistError, match="2 membrane capacitances for 1 layers"):
        Network(widths, core=PostLayoutCore(good.text, good.name, (1e-13, 1e-13)))
    with pytest.raises(ConfigError, match="membrane_f_per_layer"):
        PostLayoutCore(good.text, good.name, (1e-3,))
    with pytest.raises(ConfigError, match="membrane_f_per_layer"):
        PostLayoutCore(good.text, good.name, ())
    with pytest.raises(NetlistError, match="no .subckt 'other'"):
        PostLayoutCore(network_core_schematic(Network(widths)), "other", (1e-13,))


def test_mapping_network_must_have_the_same_widths(tmp_path):
    with pytest.raises(ConfigError, match="mapping_network widths"):
        simulate_network([np.ones((2, 2))], np.zeros((1, 2)), _char(), network=Network((2, 2)),
                         mapping_network=Network((2, 3)), cache_dir=tmp_path, progress=False)


@pytest.mark.slow
def test_schematic_core_spikes_like_the_flat_schematic_deck(characterization, spice_cache):
    """The same circuit written as one core subckt or as flat cell instances: same spike times.

    Also: mapping for another network (mapping_network) uses that network's membrane C.
    """
    rng = np.random.default_rng(1)
    w = [rng.uniform(-0.3, 0.8, (3, 3)), rng.uniform(-0.3, 0.8, (3, 2))]
    t_in = np.column_stack([rng.uniform(0, 0.8, (2, 2)), np.zeros(2)])
    flat = Network((3, 3, 2))
    post = Network((3, 3, 2), core=PostLayoutCore.schematic(flat))
    kw = dict(schedule=PhaseSchedule(t_step_max_s=20e-9), cache_dir=spice_cache, progress=False)
    runs = [simulate_network(w, t_in, characterization[0], network=n, **kw) for n in (flat, post)]
    a, b = (r.spikes.sort_values(["sample", "layer", "neuron"]) for r in runs)
    assert a["spiked"].sum() >= 6  # enough spiking neurons for a meaningful comparison
    assert (a["spiked"].to_numpy() == b["spiked"].to_numpy()).all()
    fired = a["spiked"].to_numpy()
    # identical circuits: equal up to ngspice's step control, far below 1 ns (T = 1 us)
    assert np.abs(a["t_spike_s"].to_numpy()[fired] - b["t_spike_s"].to_numpy()[fired]).max() < 1e-9
    assert runs[1].mapping["netlist_kind"] == "post-layout"

    bigger = Network((3, 3, 2), core=PostLayoutCore(post.core.text, post.core.name,
                                                    (1.1 * MIM_7X7_F, 1.2 * MIM_7X7_F)))
    run = simulate_network(w, t_in, characterization[0], network=flat, mapping_network=bigger, **kw)
    assert [L["c_m_f"] for L in run.mapping["layers"]] == pytest.approx([1.1 * MIM_7X7_F, 1.2 * MIM_7X7_F])
