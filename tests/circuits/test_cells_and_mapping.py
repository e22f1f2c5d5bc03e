"""Fast tests: cell files vs dataclasses, sky130 table, pure fits, weight mapping, generators."""

from __future__ import annotations

import importlib.resources
import math
import re

import numpy as np
import pytest

from imcpnn.circuits.netlist.cells import CELLS, Inv, Neuron, Synapse, cell_text
from imcpnn.circuits.characterization.fit import (
    Characterization,
    IdVgTable,
    crossing,
    fit_lambda,
    model_constants,
)
from imcpnn.circuits.simulate.measure import SPIKE_TABLE_COLUMNS, rising_crossing_s, spice_spike_table
from imcpnn.circuits.netlist.network import (
    Network,
    ParasiticEstimate,
    PhaseSchedule,
    SynapseArray,
    check_inputs,
    check_weights,
    input_windows,
    network_deck,
    network_saves,
)
from imcpnn.circuits.sky130 import MODELS, mim_capacitance_f, model, um
from imcpnn.circuits.simulate.weights import (
    CurrentScales,
    discharger_bias_v,
    discharger_current_a,
    unit_current_a,
    weights_to_biases,
)
from imcpnn.errors import ConfigError, NetlistError


def _subckt_ports(text: str) -> tuple[str, tuple[str, ...]]:
    joined = re.sub(r"\n\+", " ", text)
    line = next(l for l in joined.splitlines() if l.lower().startswith(".subckt"))
    words = [w for w in line.split()[1:] if "=" not in w]
    return words[0], tuple(words[1:])


def test_every_netlist_file_matches_its_cell_ports():
    files = {p.name for p in importlib.resources.files("imcpnn.netlists").iterdir() if p.name.endswith(".spice")}
    assert files == {f"{c.subckt}.spice" for c in CELLS}
    for cell in CELLS:
        text = cell_text(cell)
        name, ports = _subckt_ports(text)
        assert name == cell.subckt
        assert ports == cell.ports
        body = [l for l in text.lower().splitlines() if not l.startswith("*")]
        assert not any(l.startswith((".lib", ".include")) or "/" in l for l in body)
        assert text.startswith("*")  # header comment


def _devices_per_model(cell) -> dict[str, int]:
    """Flattened sky130 device count of a cell, following its sub-cells."""
    counts: dict[str, int] = {}
    sub = {c.subckt: c for c in CELLS}
    for line in cell_text(cell).splitlines():
        if not line.startswith("X"):
            continue
        target = next(w for w in line.split()[1:] if w.startswith("sky130_") or w in sub)
        inner = {target: 1} if target.startswith("sky130_") else _devices_per_model(sub[target])
        for k, v in inner.items():
            counts[k] = counts.get(k, 0) + v
    return counts


def test_cell_device_counts_follow_the_method():
    n, p = MODELS["syn_n"], MODELS["syn_p"]
    assert _devices_per_model(Synapse) == {n: 2, p: 2}
    neuron = _devices_per_model(Neuron)
    assert neuron[MODELS["cap_mim"]] == 1
    assert neuron[MODELS["sense_n"]] == 1 and neuron[MODELS["sense_p_hvt"]] == 1
    # reset tgate 1+1, discharger+enable 2, sense enable/bias 2 P + pull-down 1 N, nand 2+2, inv 1+1, tgate 1+1
    assert neuron[n] == 1 + 2 + 1 + 2 + 1 + 1 and neuron[p] == 1 + 2 + 2 + 1 + 1


def test_sky130_table_and_units():
    assert model("sense_n") == "sky130_fd_pr__nfet_01v8_lvt"
    assert um(0.25e-6) == 0.25
    # 2 fF/um^2 (W + 0.15)(L + 0.15): 7x7 um -> 2 * 7.15^2 fF
    assert mim_capacitance_f(7e-6, 7e-6) == pytest.approx(2e-15 * 7.15**2)
    with pytest.raises(NetlistError, match="unknown device role 'foo'"):
        model("foo")


def test_cell_sizes_are_validated_and_instances_checked():
    with pytest.raises(ConfigError, match=r"Synapse.l_m=1e-08 is invalid: allowed a size >= 1.5e-07 m \(sky130 minimum"):
        Synapse(l_m=1e-8)
    with pytest.raises(ConfigError, match="Neuron.cm_w_m"):
        Neuron(cm_w_m=-7e-6)
    assert Synapse(l_m=0.5e-6).instance("A", list("abcdefg")).endswith("synapse w=1 l=0.5")
    with pytest.raises(NetlistError, match="needs 4"):
        Inv().instance("I", ("a",))


def test_fit_lambda_recovers_a_known_line():
    v = np.linspace(0, 1.8, 181)
    i0, lam, v0 = 1e-7, 0.3, 1.3
    i = i0 * (1 + lam * (v - v0))
    i[v < 0.2] = 0  # outside the window: ignored
    fit = fit_lambda(v, i, (0.46, 1.36), v0)
    assert fit.lambda_per_v == pytest.approx(lam, rel=1e-9)
    assert fit.i_v0_a == pytest.approx(i0, rel=1e-9)
    assert fit.rms_rel_residual < 1e-9
    with pytest.raises(ConfigError, match="only 0 points in the fit window"):
        fit_lambda(v, i, (2.0, 3.0), v0)
    with pytest.raises(ConfigError, match="two 1-D arrays"):
        fit_lambda(v, i[:-1], (0.46, 1.36), v0)


def test_crossing_and_model_constants():
    x = np.linspace(0, 1, 11)
    assert crossing(x, 2 * x, 0.5) == pytest.approx(0.25)
    assert math.isnan(crossing(x, x + 5, 0.5))
    c = model_constants(1.3, 0.45, 0.4, 0.8, 0.5)
    assert c["v_th_circ"] == pytest.approx(0.85)
    assert c["e_plus"] == pytest.approx(1 / (0.85 * 0.4))
    assert c["e_minus"] == pytest.approx(-1 / (0.85 * 0.8))
    with pytest.raises(ConfigError, match="never fire"):
        model_constants(1.3, 1.4, 0.4, 0.8, 0.5)


def _exp_table(increasing=True):
    v = np.linspace(0.0, 1.0, 101)
    i = 1e-12 * np.exp(v / 0.05) if increasing else 1e-12 * np.exp((1.8 - v) / 0.05)
    return IdVgTable(tuple(v), tuple(np.minimum(i, 1e-3)))


def test_idvg_table_inverts_monotone_and_rejects_bad_tables():
    t = _exp_table()
    vg = np.array([0.3, 0.55, 0.77])
    assert np.allclose(t.gate_v(t.current_a(vg)), vg, atol=1e-9)
    tp = IdVgTable(tuple(np.linspace(0.8, 1.8, 101)), tuple(1e-6 * np.exp(-np.linspace(0, 10, 101))))
    assert np.allclose(tp.gate_v(tp.current_a([1.0, 1.5])), [1.0, 1.5])
    with pytest.raises(ConfigError, match="not strictly monotone"):
        IdVgTable((0.0, 0.1, 0.2), (1e-9, 2e-9, 1e-9))
    with pytest.raises(ConfigError, match="strictly ascending"):
        IdVgTable((0.0, 0.0), (1e-9, 2e-9))
    with pytest.raises(ConfigError, match="positive"):
        IdVgTable((0.0, 0.1), (0.0, 2e-9))
    with pytest.raises(ConfigError, match="equal length"):
        IdVgTable((0.0,), (1e-9,))


def _char(**over) -> Characterization:
    tn = _exp_table()
    tp = IdVgTable(tuple(np.linspace(0.8, 1.8, 101)), tuple(1e-5 * np.exp(-(np.linspace(0.8, 1.8, 101) - 0.8) / 0.05)))
    data = dict(v0=1.3, v_switch=0.45, v_th_circ=0.85, lambda_n=0.4, lambda_p=0.8, lambda_dis=0.4,
                e_plus=1 / 0.34, e_minus=-1 / 0.68, e_dis=1 / 0.34,
                id_vg_n=tn.to_dict(), id_vg_p=tp.to_dict(), id_vg_dis=tn.to_dict())  # fmt: skip
    data.update(over)
    return Characterization.from_dict(data)


def test_weights_to_biases_follows_the_current_formula():
    char = _char()
    c, T = 100e-15, 1e-6
    w = np.array([[0.5, -0.25, 0.0]])
    vg_n, vg_p = weights_to_biases(w, char, c, T, CurrentScales(scale=2.0, scale_plus=1.5))
    i_expected = c * 0.85 * 0.5 / T * 2.0 * 1.5
    assert char.id_vg_n.current_a(vg_n[0, 0]) == pytest.approx(i_expected, rel=1e-6)
    assert char.id_vg_p.current_a(vg_p[0, 1]) == pytest.approx(c * 0.85 * 0.25 / T * 2.0, rel=1e-6)
    assert vg_n[0, 1] == 0.0 and vg_n[0, 2] == 0.0 and vg_p[0, 0] == 1.8 and vg_p[0, 2] == 1.8
    # larger weight -> larger NMOS gate bias; larger |w| negative -> lower PMOS gate
    vg_n2, vg_p2 = weights_to_biases(np.array([[1.0, -1.0]]), char, c, T)
    assert vg_n2[0, 0] > weights_to_biases(np.array([[0.5, -0.5]]), char, c, T)[0][0, 0]
    assert vg_p2[0, 1] < weights_to_biases(np.array([[0.5, -0.5]]), char, c, T)[1][0, 1]


def test_a_current_below_the_table_is_a_source_switched_off():
    """A near-zero trained weight asks for less current than the table's least (the source's
    leakage at its sweep's end): its source is off, like an unused one, and the others map as
    before; a matrix whose every current of a sign is below the table is a scale error."""
    char = _char()
    c, t = 100e-15, 1e-6
    lo_n = char.id_vg_n.i_range_a[0] / unit_current_a(c, char.v_th_circ, t)
    lo_p = char.id_vg_p.i_range_a[0] / unit_current_a(c, char.v_th_circ, t)
    vg_n, vg_p = weights_to_biases(np.array([[0.5, lo_n / 10, -0.25, -lo_p / 10]]), char, c, t)
    alone_n, alone_p = weights_to_biases(np.array([[0.5, -0.25]]), char, c, t)
    assert vg_n[0, 1] == 0.0 and vg_p[0, 3] == 1.8 and not np.isnan(vg_n).any() and not np.isnan(vg_p).any()
    assert vg_n[0, 0] == alone_n[0, 0] and vg_p[0, 2] == alone_p[0, 1]
    with pytest.raises(NetlistError, match="scale_plus"):
        weights_to_biases(np.array([[lo_n / 10, lo_n / 20]]), char, c, t)


def test_weights_outside_range_name_range_and_scale():
    char = _char()
    with pytest.raises(NetlistError, match=r"outside the characterized range \[.*\] A.*current scale between"):
        weights_to_biases(np.array([[1e6]]), char, 100e-15, 1e-6)
    with pytest.raises(NetlistError, match="scale_minus"):
        weights_to_biases(np.array([[-1e6]]), char, 100e-15, 1e-6)
    with pytest.raises(NetlistError, match="2-D"):
        weights_to_biases(np.zeros(3), char, 100e-15, 1e-6)
    with pytest.raises(NetlistError, match="NaN"):
        weights_to_biases(np.array([[np.nan]]), char, 100e-15, 1e-6)
    with pytest.raises(ConfigError, match="c_m_f=-1e-13 F must be > 0"):
        weights_to_biases(np.array([[0.5]]), char, -100e-15, 1e-6)
    with pytest.raises(ConfigError, match="t_phase_s"):
        unit_current_a(1e-13, 0.85, 0.0)
    with pytest.raises(ConfigError, match="CurrentScales.scale_plus"):
        CurrentScales(scale_plus=-1.0)


def test_discharger_design_current_is_the_unit_current_and_reads_no_fitted_parameter():
    char = _char()
    c, T = 100e-15, 1e-6
    i = discharger_current_a(char, c, T)
    # the ideal ramp's design: dv/dt = 1 at v = 0, i.e. I = C_m V_th_circ / T
    assert i == pytest.approx(c * char.v_th_circ / T, rel=1e-12)
    assert discharger_current_a(char, c, T, 1.2) == pytest.approx(1.2 * i, rel=1e-12)
    # fairness: the discharger bias does not depend on E_dis (a fitted model parameter)
    assert discharger_bias_v(_char(e_dis=1.5), c, T) == discharger_bias_v(_char(e_dis=50.0), c, T)
    assert char.id_vg_dis.current_a(discharger_bias_v(char, c, T)) == pytest.approx(i, rel=1e-6)
    with pytest.raises(ConfigError, match=r"discharger.scale=0.0 is invalid"):
        discharger_current_a(char, c, T, 0.0)
    with pytest.raises(NetlistError, match="discharger current"):
        discharger_bias_v(char, 1.0, T)


def test_characterization_from_dict_names_missing_keys():
    with pytest.raises(ConfigError, match="lacks lambda_n.*imcpnn characterize"):
        Characterization.from_dict({"v0": 1.3})


def test_network_validation_errors():
    with pytest.raises(ConfigError, match="Network.widths"):
        Network((5,))
    with pytest.raises(ConfigError, match="v0_v"):
        Network((2, 2), v0_v=2.0)
    with pytest.raises(ConfigError, match="SynapseArray.n_in"):
        SynapseArray(0, 3)
    with pytest.raises(ConfigError, match="t_edge_s"):
        PhaseSchedule(t_edge_s=1e-6)
    with pytest.raises(ConfigError, match="t_grid"):
        PhaseSchedule(t_grid=1.5)
    with pytest.raises(ConfigError, match="ParasiticEstimate.pitch_m"):
        ParasiticEstimate(pitch_m=0)
    net = Network((3, 2))
    with pytest.raises(NetlistError, match=r"weights\[0\] has shape \(2, 2\)"):
        check_weights(net, [np.zeros((2, 2))])
    with pytest.raises(NetlistError, match="1 layers"):
        check_weights(net, [np.zeros((3, 2))] * 2)
    with pytest.raises(NetlistError, match="shape"):
        check_inputs(net, np.zeros((4, 2)))
    with pytest.raises(NetlistError, match=r"normalized to \[0, 1\]"):
        check_inputs(net, np.full((1, 3), 2.0))


def test_schedule_pipelines_layers_and_samples():
    s = PhaseSchedule()
    T = s.t_phase_s
    # layer l+1 accumulates exactly while layer l fires
    assert s.window_start_s(4, 2, "accumulation") == pytest.approx(s.window_start_s(4, 1, "firing"))
    # a layer's next reset starts right after its firing window
    assert s.window_start_s(1, 0, "reset") == pytest.approx(s.window_start_s(0, 0, "firing") + T)
    assert s.t_stop_s(2, 2) == pytest.approx(3 * T + 3 * T + T + s.t_edge_s)


def test_input_windows_and_no_spike():
    s = PhaseSchedule()
    win = input_windows(np.array([[0.25, np.nan, 1.0]]), s)
    assert win[0] == [(pytest.approx(1.25e-6), pytest.approx(2e-6))]
    assert win[1] == [] and win[2] == []
    grid = input_windows(np.array([[0.123]]), PhaseSchedule(t_grid=0.1))
    assert grid[0][0][0] == pytest.approx(1.1e-6)


def test_parasitic_estimate_formula():
    p = ParasiticEstimate()
    # 10 cells of 5 um: L = 50 um; 25.8 aF/um^2 * 50 um * 0.14 um + 2 * 40.6 aF/um * 50 um
    assert p.line_f(10) == pytest.approx((25.8 * 50 * 0.14 + 2 * 40.6 * 50) * 1e-18)
    net = Network((10, 3), parasitic=p)
    assert net.netlist_kind == "schematic+parasitic-estimate"
    assert net.membrane_f(0) == pytest.approx(Neuron().c_mim_f + p.line_f(10))
    assert Network((10, 3)).netlist_kind == "schematic"


def test_layer_netlist_has_the_expected_instances():
    n_in, n_out = 4, 3
    net = Network((n_in, n_out))
    w = np.array([[0.5, -0.5, 0.0]] * n_in)
    vg_n = np.where(w > 0, 0.5, 0.0)
    vg_p = np.where(w < 0, 1.1, 1.8)
    tb = network_deck(net, [(vg_n, vg_p)], [0.55], np.zeros((2, n_in)))
    body = tb.text.split(".ends neuron")[1]
    lines = body.splitlines()
    assert sum(1 for l in lines if l.startswith("XS0_") and l.split()[8] == "synapse") == n_in * n_out
    assert sum(1 for l in lines if l.startswith("XN0_") and " neuron " in l) == n_out
    # one gate source per used current source: n_in NMOS (col 0) + n_in PMOS (col 1); col 2 is off
    assert sum(1 for l in lines if l.startswith("VN0_")) == n_in
    assert sum(1 for l in lines if l.startswith("VP0_")) == n_in
    # off sources tie to the rails: the layer's own vdd0 (behind its ammeter, for the energy
    # accounting) and ground
    assert all(" 0 vdd0 vdd0 0 synapse" in l for l in lines if l.startswith("XS0_") and l.split()[0].endswith("_2"))
    # the cell definitions are in the deck exactly once each
    assert [tb.text.count(f".subckt {c.subckt} ") for c in CELLS] == [1] * len(CELLS)
    # spike lines and membranes, then one current per supply (3 ammeters, 8 gate biases, the
    # discharger bias, 4 phase drivers, 2 x 4 input drivers) and the 4 + 8 driver voltages
    assert tb.saves[: 2 * n_out] == network_saves(net.widths)
    assert len(tb.saves) == 2 * n_out + (3 + 2 * n_in + 1 + 4 + 2 * n_in) + (4 + 2 * n_in)
    assert tb.netlist_kind == "schematic"
    # flattened device count by sky130 model name: synapse 2 N + 2 P, neuron 8 N + 7 P + LVT + HVT + MIM
    sub = {c.subckt: c for c in CELLS}
    counts: dict[str, int] = {}
    for l in lines:
        if l.startswith("X"):
            cell = next(w for w in l.split() if w in sub)
            for k, v in _devices_per_model(sub[cell]).items():
                counts[k] = counts.get(k, 0) + v
    syn = n_in * n_out
    assert counts == {
        MODELS["syn_n"]: 2 * syn + 8 * n_out, MODELS["syn_p"]: 2 * syn + 7 * n_out,
        MODELS["sense_n"]: n_out, MODELS["sense_p_hvt"]: n_out, MODELS["cap_mim"]: n_out,
    }  # fmt: skip


def test_parasitic_caps_in_netlist():
    net = Network((3, 2), parasitic=ParasiticEstimate())
    tb = network_deck(net, [(np.full((3, 2), 0.5), np.full((3, 2), 1.8))], [0.55], np.zeros((1, 3)))
    caps = [l for l in tb.text.splitlines() if l.startswith("CP")]
    assert len(caps) == 2 + 2 * 3  # one per membrane, two per input line (spike + complement)


def test_784x400_layer_netlist_is_generated():
    """A Fashion-MNIST-sized layer's deck is generated whole (its generation time is a speed
    figure, not a test: it depends on the machine's load)."""
    rng = np.random.default_rng(1)
    net = Network((784, 400))
    vg_n = np.where(rng.random((784, 400)) > 0.5, 0.5, 0.0)
    vg_p = np.where(vg_n == 0, 1.1, 1.8)
    tb = network_deck(net, [(vg_n, vg_p)], [0.55], rng.random((1, 784)), save_membranes=False)
    assert tb.text.count(" synapse w=") == 784 * 400
    assert tb.text.count(" neuron cm_w=") == 400


def test_spike_table_measures_crossings_relative_to_window():
    s = PhaseSchedule()
    T = s.t_phase_s
    t = np.linspace(0, s.t_stop_s(2, 1), 20001)
    fire0, fire1 = s.window_start_s(0, 0, "firing"), s.window_start_s(1, 0, "firing")
    v = np.where((t > fire0 + 0.3 * T) & (t < fire0 + T), 1.8, 0.0)  # sample 1: never
    tab = spice_spike_table(t, {"v(s1_0)": v}, (1, 1), 2, s)
    assert tab.shape == (2, 6) and set(SPIKE_TABLE_COLUMNS) <= set(tab.columns)
    assert tab.t_spike.iloc[0] == pytest.approx(0.3, abs=2e-3)
    assert not tab.spiked.iloc[1] and math.isnan(tab.t_spike.iloc[1])
    assert math.isnan(rising_crossing_s(t, v, 0.9, fire1, fire1 + T))


def test_cli_input_errors_are_clear(tmp_path, capsys):
    from imcpnn.cli import main

    bad = tmp_path / "w.npz"
    np.savez(bad, weights=np.zeros((2, 2)))
    assert main(["netlist", "--weights", str(bad), "--out", str(tmp_path / "o"), "--characterization", "x"]) == 2
    assert "holds no arrays named w0, w1" in capsys.readouterr().err
    assert main(["simulate", "--netlist", str(tmp_path / "none.cir"), "--out", str(tmp_path / "s")]) == 2
    assert "written by `imcpnn netlist`" in capsys.readouterr().err


def test_network_core_subckt_exposes_exactly_the_testbench_nodes():
    from imcpnn.circuits.netlist.network import network_core_ports, network_core_schematic

    net = Network((3, 2, 2))
    text = network_core_schematic(net, "core")
    header, *body, end = text.strip().splitlines()
    ports = network_core_ports(net.widths)
    assert header.split()[2:] == list(ports) and end == ".ends core"
    # 3x2 + 2x2 synapses and 2 + 2 neurons; every node used is a port (no hidden core nets)
    assert sum(line.startswith("XS") for line in body) == 10 and sum(line.startswith("XN") for line in body) == 4
    used = {tok for line in body for tok in line.split()[1:] if "=" not in tok} - {"synapse", "neuron"}
    assert used == set(ports)


def test_deck_numbers_are_written_exactly():
    """PWL times of late samples keep every digit (6 significant digits moved sample 49's edges
    by up to 0.5 ns), and so do the bias sources."""
    import re

    from imcpnn.circuits.netlist.network import Network, PhaseSchedule, network_deck

    net = Network((2, 1))
    sched = PhaseSchedule()
    t_in = np.full((50, 2), 1.0)
    t_in[49] = [0.0, 0.123456789]
    vg = 0.512345678901
    deck = network_deck(net, [(np.array([[vg], [0.0]]), np.array([[1.8], [1.8]]))], [0.5432109876],
                        t_in, sched)
    line = next(l for l in deck.text.splitlines() if l.startswith("VIN1 "))
    times = [float(x) for x in re.findall(r"PWL\((.*)\)", line)[0].split()[0::2]]
    rise = sched.window_start_s(49, 0, "accumulation") + 0.123456789 * sched.t_phase_s
    assert rise in times
    assert f" {vg!r}" in deck.text and " 0.5432109876" in deck.text
