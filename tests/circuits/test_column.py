"""Column decks without ngspice: inputs that share a spike train share one edge source (groups and
source counts), the deck transform keeps every synapse on its input's waveform, the supplies and
saves of removed sources go, the mapping switches off weights below the current floor, and the
discharger calibration refuses a membrane it cannot fire."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from imcpnn.circuits.characterization.fit import Characterization, IdVgTable
from imcpnn.circuits.netlist.network import Network, NetworkDeck, PhaseSchedule, PostLayoutCore, network_deck
from imcpnn.circuits.simulate.column import (column_network, count_pwl_sources, input_groups, map_layer,
                                             plan_columns, share_edge_sources, switch_off_unmappable)
from imcpnn.circuits.simulate.weights import CurrentScales
from imcpnn.errors import ConfigError, NetlistError

#: Phase signals of a one-layer deck: rst, rstb, fire, fireb (PWL sources besides the inputs).
N_PHASE_SOURCES = 4


def _mapping(n_in: int, n_out: int, rng) -> dict:
    """Gate biases of a layer by hand: about half the synapses excitatory, half inhibitory."""
    w = rng.uniform(-1, 1, (n_in, n_out))
    return {"layers": [{"vg_n_v": np.where(w > 0, 0.45, 0.0).tolist(), "vg_p_v": np.where(w < 0, 1.3, 1.8).tolist(),
                        "vg_dis_v": 0.5, "c_m_f": 1e-13}]}


def _char() -> Characterization:
    """Exponential I_D(V_G) tables from 1 pA (no SPICE)."""
    v = np.linspace(0.0, 1.0, 101)
    tn = IdVgTable(tuple(v), tuple(np.minimum(1e-12 * np.exp(v / 0.05), 1e-3)))
    vp = np.linspace(0.8, 1.8, 101)
    tp = IdVgTable(tuple(vp), tuple(1e-5 * np.exp(-(vp - 0.8) / 0.05)))
    return Characterization(v0=1.3, v_switch=0.45, v_th_circ=0.85, lambda_n=0.4, lambda_p=0.8, lambda_dis=0.4,
                            e_plus=2.9, e_minus=-1.5, e_dis=2.9, id_vg_n=tn, id_vg_p=tp, id_vg_dis=tn)


def test_inputs_with_equal_times_form_one_group():
    t = 1 - np.array([[0, 10, 10, 255, 0, 128, 10, 255]]) / 255  # 8-bit pixels; 0 -> t = 1: no spike
    groups = input_groups(t, PhaseSchedule())
    assert groups == [(0, 4), (1, 2, 6), (3, 7), (5,)]


def test_groups_need_the_same_train_in_every_sample_and_nan_is_silent():
    t = np.array([[0.2, 0.2, 0.5, np.nan, 1.0],
                  [0.3, 0.7, 0.3, 1.0, np.nan]])
    assert input_groups(t, PhaseSchedule()) == [(0,), (1,), (2,), (3, 4)]
    assert input_groups(t[:1], PhaseSchedule()) == [(0, 1), (2,), (3, 4)]


def test_a_column_deck_has_one_source_pair_per_group():
    rng = np.random.default_rng(0)
    n_in, n_out = 40, 3
    pixels = rng.choice([0, 0, 0, 51, 102, 255], size=(2, n_in))  # few distinct values, many zeros
    t_in = 1 - pixels / 255
    plans = plan_columns(Network((n_in, n_out)), _mapping(n_in, n_out, rng), t_in, [0, 2], PhaseSchedule(),
                         batch_size=1)
    assert [p.column for p in plans] == [0, 2]
    for plan in plans:
        assert len(plan.decks) == 2  # one per sample
        for s, deck in enumerate(plan.decks):
            n_groups = len(input_groups(t_in[s:s + 1], PhaseSchedule()))
            assert count_pwl_sources(deck.text) == plan.n_sources[s] == 2 * n_groups + N_PHASE_SOURCES
            assert plan.n_sources_unshared[s] == 2 * n_in + N_PHASE_SOURCES
            assert n_groups <= 4 and len(re.findall(r"^XS0_\d+_0 ", deck.text, re.M)) == n_in


def test_sharing_keeps_every_synapse_on_its_inputs_waveform():
    """Each synapse's spike nodes must carry the same PWL after sharing as before, and the
    removed sources leave the saves and the supplies."""
    rng = np.random.default_rng(1)
    n_in = 12
    t_in = 1 - rng.choice([0, 64, 128], size=(1, n_in)) / 255
    mapping = _mapping(n_in, 1, rng)
    layer = mapping["layers"][0]
    deck = network_deck(Network((n_in, 1)), [(np.asarray(layer["vg_n_v"]), np.asarray(layer["vg_p_v"]))],
                        [layer["vg_dis_v"]], t_in)
    shared = share_edge_sources(deck)

    def waves(d: NetworkDeck) -> dict[int, tuple[str, str]]:
        value = {m.group(1): m.group(2) for m in re.finditer(r"^V\S+ (\S+) 0 (PWL\(.*\))$", d.text, re.M)}
        syn = {int(m.group(1)): (m.group(2), m.group(3))
               for m in re.finditer(r"^XS0_(\d+)_0 \S+ (\S+) (\S+) ", d.text, re.M)}
        return {j: (value[s], value[sb]) for j, (s, sb) in syn.items()}

    assert waves(shared) == waves(deck)
    assert count_pwl_sources(shared.text) < count_pwl_sources(deck.text)
    kept = {s.source for s in shared.supplies}
    gone = {s.source for s in deck.supplies} - kept
    assert gone and all(name.startswith("VIN") for name in gone)
    assert all(f"i({name.lower()})" not in shared.saves for name in gone)
    assert {f"v({s.node})" for s in shared.supplies if s.voltage_v is None} <= set(shared.saves)
    assert set(shared.saves) <= set(deck.saves) and "v(s1_0)" in shared.saves


def test_pwl_sources_read_back_what_the_deck_writes():
    """Every PWL source to ground of a network deck, its corners exact (written back, the same
    text), and none from inside a subcircuit."""
    from imcpnn.circuits.netlist import pwl_sources
    from imcpnn.circuits.netlist.network import _pwl

    rng = np.random.default_rng(2)
    t_in = 1 - rng.choice([0, 64, 128], size=(2, 5)) / 255
    mapping = _mapping(5, 2, rng)
    layer = mapping["layers"][0]
    deck = network_deck(Network((5, 2)), [(np.asarray(layer["vg_n_v"]), np.asarray(layer["vg_p_v"]))],
                        [layer["vg_dis_v"]], t_in)
    sources = pwl_sources(deck.text)
    assert len(sources) == count_pwl_sources(deck.text) == len(re.findall(r"^V\S+ \S+ 0 PWL\(", deck.text, re.M))
    assert {f"VIN{j}" for j in range(5)} <= {src.name for src in sources}
    for src in sources:
        assert f"{src.name} {src.node} 0 {src.value}" in deck.text and _pwl(src.points) == src.value
    assert [src.name for src in pwl_sources(".subckt c a\nV1 a 0 PWL(0 1)\n.ends\nV2 b 0 PWL(0 0 1e-9 1.8)")] == ["V2"]


def test_sharing_refuses_a_node_driven_twice():
    text = "\n".join(["* t", "VIN0 a 0 PWL(0.0 0.0 1e-9 1.8)", "VIN1 b 0 PWL(0.0 0.0 1e-9 1.8)", "VX b 0 1.8",
                      "R1 a b 1k"])
    with pytest.raises(NetlistError, match="node b"):
        share_edge_sources(NetworkDeck(text, (), 1e-6, 1e-8, 1, (2, 1), "schematic"))


def test_subcircuit_bodies_are_left_alone():
    text = "\n".join(["* t", ".subckt cell a b", "V1 a 0 PWL(0 1)", "V2 b 0 PWL(0 1)", ".ends cell",
                      "VIN0 x 0 PWL(0 1)", "VIN1 y 0 PWL(0 1)", "X1 x y cell"])
    shared = share_edge_sources(NetworkDeck(text, (), 1e-6, 1e-8, 1, (2, 1), "schematic"))
    assert "V2 b 0 PWL(0 1)" in shared.text and "VIN1" not in shared.text and "X1 x x cell" in shared.text
    assert count_pwl_sources(shared.text) == 1


def test_column_network_and_plan_refusals():
    assert column_network(Network((784, 100))).widths == (784, 1)
    with pytest.raises(ConfigError, match="2 layers"):
        column_network(Network((4, 3, 2)))
    with pytest.raises(ConfigError, match="post-layout"):
        column_network(Network((2, 2), core=PostLayoutCore.schematic(Network((2, 2)))))
    rng = np.random.default_rng(2)
    t_in = np.full((1, 5), 0.5)
    with pytest.raises(ConfigError, match=r"column 3 .*0 \.\.\. 2"):
        plan_columns(Network((5, 3)), _mapping(5, 3, rng), t_in, [3])
    with pytest.raises(ConfigError, match="batch_size"):
        plan_columns(Network((5, 3)), _mapping(5, 3, rng), t_in, [0], batch_size=0)
    with pytest.raises(ConfigError, match="map this very layer"):
        plan_columns(Network((5, 3)), _mapping(5, 2, rng), t_in, [0])


def test_weights_below_the_current_floor_are_switched_off():
    char = _char()
    w = np.array([[0.5, -0.3], [1e-7, -1e-7], [0.0, 2e-5]])
    mapped, n_off = switch_off_unmappable(w, char, 1e-13, 1e-6, CurrentScales())
    # unit current 1e-13 * 0.85 / 1e-6 = 85 nA: 1e-7 -> 8.5 fA (< 1 pA floor), 2e-5 -> 1.7 pA (kept)
    assert n_off == 2 and mapped[1].tolist() == [0.0, 0.0] and mapped[2, 1] == 2e-5 and mapped[0].tolist() == [0.5, -0.3]
    mapping, w_mapped, n = map_layer(Network((3, 2)), w, char, CurrentScales(), 1e-6)
    assert n == 2 and np.array_equal(w_mapped, mapped)
    assert mapping["layers"][0]["vg_n_v"][1][0] == 0.0 and mapping["layers"][0]["vg_p_v"][1][1] == 1.8
    with pytest.raises(ConfigError, match="shape"):
        map_layer(Network((2, 2)), w, char, CurrentScales(), 1e-6)


def test_calibration_refuses_a_discharger_that_never_fires(monkeypatch):
    """A membrane the discharger cannot bring to threshold at any factor: one error line naming
    the factors tried (run_columns stubbed: every run stays silent)."""
    from imcpnn.circuits.simulate.column import ColumnRun
    from imcpnn.validation import _layer

    def silent(plans, *args, **kwargs):
        spikes = pd.DataFrame({"sample": [0], "layer": [0], "neuron": [0], "t_spike_s": [np.nan],
                               "t_spike": [np.nan], "spiked": [False]})
        return [ColumnRun(p.column, spikes, None, None, 1.0, 0.5, 1.0, None, 0, p.n_sources) for p in plans]

    monkeypatch.setattr(_layer, "run_columns", silent)
    with pytest.raises(ConfigError, match=r"fewer than two of the discharger factors \[2.0, 4.0, 8.0, .*256.0\]"):
        _layer.calibrate_discharger(Network((3, 2)), np.full((3, 2), 0.2), _char(), 0)


def _char_dict() -> dict:
    """:func:`_char` as its JSON dict (what run_layer and calibrate_kick take)."""
    from imcpnn.circuits.characterization.fit import CONTRACT_KEYS

    c = _char()
    return {**{k: getattr(c, k) for k in CONTRACT_KEYS},
            **{k: getattr(c, k).to_dict() for k in ("id_vg_n", "id_vg_p", "id_vg_dis")}}


def _model_as_spice(monkeypatch, w: np.ndarray, calibration: dict, q: tuple[float, float], offset: float):
    """Stub run_columns with the layer model itself, kicks ``q`` and a constant ``offset`` (a lag
    the discharger calibration missed); returns the list of the t_in each deck was asked for."""
    import dataclasses

    from imcpnn.circuits.simulate.column import ColumnRun
    from imcpnn.validation import _layer

    asked = []

    def fake(plans, char, network, **kwargs):
        (plan,) = plans
        t_in = asked[-1]
        physics = dataclasses.replace(_layer.bottom_up_physics(char, calibration, kick=False,
                                                               factor=_layer.KICK_DISCHARGER * calibration["factor"]),
                                      q_plus=q[0], q_minus=q[1])
        t = _layer.predict_columns(w[:, [plan.column]], t_in, physics)[:, 0] + offset
        spikes = pd.DataFrame({"sample": range(len(t)), "layer": 0, "neuron": plan.column, "t_spike_s": t * 1e-6,
                               "t_spike": t, "spiked": t < 1})
        return [ColumnRun(plan.column, spikes, None, None, 1.0, 0.5, 1.0, None, 0, plan.n_sources)]

    real_plan = _layer.plan_columns

    def plan(network, mapping, t_in, columns, *args, **kwargs):
        asked.append(np.array(t_in))
        return real_plan(network, mapping, t_in, columns, *args, **kwargs)

    monkeypatch.setattr(_layer, "run_columns", fake)
    monkeypatch.setattr(_layer, "plan_columns", plan)
    return asked


def test_the_kick_calibration_recovers_known_kicks(monkeypatch):
    """calibrate_kick on a circuit that is the model with q_plus = 2e-3, q_minus = -1.5e-3 per
    active synapse and a 0.01 lag the discharger calibration missed: the difference to the
    no-input sample cancels the lag and the root search returns the kicks (the model has no
    scalar E curves here, so the same model is inverted exactly)."""
    from imcpnn.validation import _layer

    rng = np.random.default_rng(3)
    w = rng.uniform(-0.02, 0.03, (40, 2))
    calibration = {"factor": 1.4, "t_0": 0.03, "K": 1.0, "c_eff_over_c_m": 1.2}
    asked = _model_as_spice(monkeypatch, w, calibration, (2e-3, -1.5e-3), 0.01)
    kick = _layer.calibrate_kick(Network((40, 2)), w, _char_dict(), 1, calibration)
    assert kick["q_plus"] == pytest.approx(2e-3, rel=1e-6) and kick["q_minus"] == pytest.approx(-1.5e-3, rel=1e-6)
    (t_in,) = asked  # one deck: no input; the excitatory inputs late; the inhibitory ones late
    assert np.all(t_in[0] == 1)
    assert np.array_equal(t_in[1] < 1, w[:, 1] > 0) and np.array_equal(t_in[2] < 1, w[:, 1] < 0)
    assert np.all(t_in[t_in < 1] == 1 - 5e-9 / 1e-6)  # 5 edges of 1 ns before a 1 us phase ends
    assert kick["kick_grid"]["n_active"] == [int((w[:, 1] > 0).sum()), int((w[:, 1] < 0).sum())]
    # the model of the layer then carries them
    physics = _layer.bottom_up_physics(_char(), {**calibration, **kick})
    assert (physics.q_plus, physics.q_minus) == (kick["q_plus"], kick["q_minus"])
    assert _layer.bottom_up_physics(_char(), {**calibration, **kick}, kick=False).q_plus == 0.0


def test_the_kick_calibration_refuses_a_silent_sample(monkeypatch):
    """An inhibitory kick so large that the neuron stays silent: one error line naming the sample."""
    from imcpnn.validation import _layer

    w = np.full((10, 1), -0.01)
    calibration = {"factor": 1.4, "t_0": 0.03, "K": 1.0, "c_eff_over_c_m": 1.2}
    _model_as_spice(monkeypatch, w, calibration, (0.0, -0.2), 0.0)
    with pytest.raises(ConfigError, match=r"kick calibration of column 0 stays silent in sample\(s\) \[2\]"):
        _layer.calibrate_kick(Network((10, 1)), w, _char_dict(), 0, calibration)
