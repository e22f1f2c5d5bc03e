"""Energy accounting: window integrals on synthetic waveforms, synaptic-operation counts by hand,
the deck's separated supplies, and a 2-2 network in real ngspice."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from imcpnn.circuits.netlist.network import (
    SUPPLY_GROUPS,
    Network,
    PhaseSchedule,
    PostLayoutCore,
    Supply,
    network_deck,
    network_saves,
)
from imcpnn.circuits.simulate.energy import (
    ENERGY_COLUMNS,
    PHASES,
    SHARED_LAYER,
    SHARED_PHASE,
    count_synops,
    energy_summary,
    spiked_inputs,
    supply_energy,
)

SCHED = PhaseSchedule()
T = SCHED.t_phase_s


def _axis(n_samples: int, n_layers: int, n_points: int = 4001) -> np.ndarray:
    """A time axis over the whole deck (0 to t_stop) whose points miss the window edges."""
    t = np.linspace(0.0, SCHED.t_stop_s(n_samples, n_layers), n_points)
    return np.unique(np.concatenate([t, t[1:-1] + 0.37 * (t[1] - t[0])]))


def _energy(table: pd.DataFrame, **where) -> np.ndarray:
    sel = np.ones(len(table), dtype=bool)
    for k, v in where.items():
        sel &= table[k].to_numpy() == v
    return table[sel]["energy_j"].to_numpy()


# ---------------------------------------------------------------------- integrals, synthetic
def test_constant_current_gives_v_i_t_in_every_window():
    t = _axis(2, 2)
    supplies = [Supply("VI_vdd0", "vdd0", "array_neurons", 0, 1.8),
                Supply("VI_vdd1", "vdd1", "array_neurons", 1, 1.8)]
    # ngspice's branch current flows from the + node through the source: drawn current is negative
    traces = {"i(vi_vdd0)": np.full_like(t, -2e-6), "i(vi_vdd1)": np.full_like(t, -1e-6)}
    table = supply_energy(t, traces, supplies, SCHED, 2, 2)
    assert list(table.columns) == list(ENERGY_COLUMNS) and len(table) == 2 * 2 * 3
    assert np.allclose(_energy(table, layer=0), 1.8 * 2e-6 * T, rtol=1e-12)
    assert np.allclose(_energy(table, layer=1), 1.8 * 1e-6 * T, rtol=1e-12)
    assert list(table[(table["sample"] == 0) & (table["layer"] == 0)]["phase"]) == list(PHASES)
    summary = energy_summary(table, np.array([[4, 2], [0, 2]]))
    per_inference = 3 * T * 1.8 * 3e-6
    assert summary["energy_per_inference_j"] == pytest.approx(per_inference, rel=1e-12)
    # 8 synaptic operations over 2 samples
    assert summary["energy_per_synop_j"] == pytest.approx(2 * per_inference / 8, rel=1e-12)
    assert summary["n_synops_per_inference"] == 4.0
    assert sum(r["energy_j"] for r in summary["per_phase"]) == pytest.approx(per_inference, rel=1e-12)
    assert sum(r["energy_j"] for r in summary["table"]) == pytest.approx(per_inference, rel=1e-12)
    layers = {r["layer"]: r for r in summary["per_layer"]}
    assert layers[0]["energy_j"] == pytest.approx(3 * T * 1.8 * 2e-6) and layers[0]["n_synops"] == 2.0
    assert layers[1]["energy_per_synop_j"] == pytest.approx(3 * T * 1.8e-6 / 2)


def test_pulse_lands_in_its_window_and_a_straddling_one_splits_at_the_edge():
    t = _axis(2, 1)
    acc1 = SCHED.window_start_s(1, 0, "accumulation")
    a, b = acc1 + 0.2 * T, acc1 + 0.5 * T  # inside sample 1's accumulation
    c = acc1 - 0.25 * T  # from the last quarter of sample 1's reset to the accumulation's first half
    t = np.unique(np.concatenate([t, [a, b, c, acc1 + 0.5 * T]]))
    pulse = np.where((t >= a) & (t <= b), -3e-6, 0.0)
    straddle = np.where((t >= c) & (t <= acc1 + 0.5 * T), -1e-6, 0.0)
    supplies = [Supply("VP0_0_0", "vp0_0_0", "synapse_bias", 0, 1.2),
                Supply("VGDIS0", "vgdis0", "neuron_bias", 0, 0.5)]
    table = supply_energy(t, {"i(vp0_0_0)": pulse, "i(vgdis0)": straddle}, supplies, SCHED, 2, 1)
    e = table.set_index(["sample", "phase", "group"])["energy_j"]
    # the pulse's edges are sample points: a trapezoid with ramps of one step each side
    k = np.searchsorted(t, [a, b])
    step = (t[k[0]] - t[k[0] - 1] + t[k[1] + 1] - t[k[1]]) / 2
    assert e[(1, "accumulation", "synapse_bias")] == pytest.approx(1.2 * 3e-6 * (b - a + step), rel=1e-9)
    assert e.xs("synapse_bias", level="group").drop((1, "accumulation")).abs().max() < 1e-30
    # the window edge acc1 lies between two sample points: split exactly where it falls
    kc, kd = np.searchsorted(t, [c, acc1 + 0.5 * T])
    ramp_up, ramp_down = (t[kc] - t[kc - 1]) / 2, (t[kd + 1] - t[kd]) / 2
    assert e[(1, "reset", "neuron_bias")] == pytest.approx(0.5e-6 * (0.25 * T + ramp_up), rel=1e-9)
    assert e[(1, "accumulation", "neuron_bias")] == pytest.approx(0.5e-6 * (0.5 * T + ramp_down), rel=1e-9)


def test_pwl_driver_uses_its_saved_voltage_and_energy_taken_back_is_negative():
    t = _axis(1, 1)
    v = 1.8 * t / t[-1]
    supplies = [Supply("Vrst0", "rst0", "phase_drivers", 0), Supply("VI_v0_0", "v0_0", "neuron_bias", 0, 1.3)]
    traces = {"i(vrst0)": np.full_like(t, -1e-6), "v(rst0)": v, "i(vi_v0_0)": np.full_like(t, 1e-6)}
    table = supply_energy(t, traces, supplies, SCHED, 1, 1)
    drivers = _energy(table, group="phase_drivers")
    exact = [1e-6 * 1.8 * ((k + 1) ** 2 - k**2) * T**2 / 2 / t[-1] for k in range(3)]
    assert drivers == pytest.approx(exact, rel=1e-9)  # -v i with v a ramp: a linear product
    assert np.all(_energy(table, group="neuron_bias") < 0)  # a source that takes current back


def test_shared_supply_is_integrated_per_sample_slot():
    t = _axis(2, 2)
    supplies = [Supply("VDD", "vdd", "array_neurons", None, 1.8)]
    table = supply_energy(t, {"i(vdd)": np.full_like(t, -1e-6)}, supplies, SCHED, 2, 2)
    assert set(table["layer"]) == {SHARED_LAYER} and set(table["phase"]) == {SHARED_PHASE}
    assert _energy(table, sample=0) == pytest.approx([1.8e-6 * 3 * T], rel=1e-12)
    assert _energy(table, sample=1) == pytest.approx([1.8e-6 * (t[-1] - 3 * T)], rel=1e-12)


def test_energy_input_errors():
    t = _axis(1, 1)
    vdd = Supply("VI_vdd0", "vdd0", "array_neurons", 0, 1.8)
    with pytest.raises(KeyError, match=r"i\(vi_vdd0\).*save_supplies=True"):
        supply_energy(t, {}, [vdd], SCHED, 1, 1)
    with pytest.raises(ValueError, match="outside the transient"):
        supply_energy(t[: len(t) // 2], {"i(vi_vdd0)": np.zeros(len(t) // 2)}, [vdd], SCHED, 1, 1)
    with pytest.raises(ValueError, match="has shape"):
        supply_energy(t, {"i(vi_vdd0)": np.zeros(3)}, [vdd], SCHED, 1, 1)
    with pytest.raises(ValueError, match="on layer 0, the deck has 0"):
        supply_energy(t, {"i(vi_vdd0)": np.zeros_like(t)}, [vdd], SCHED, 1, 0)
    with pytest.raises(ValueError, match="non-decreasing"):
        supply_energy(t[::-1], {"i(vi_vdd0)": np.zeros_like(t)}, [vdd], SCHED, 1, 1)
    with pytest.raises(ValueError, match="n_samples"):
        supply_energy(t, {"i(vi_vdd0)": np.zeros_like(t)}, [vdd], SCHED, 0, 1)
    with pytest.raises(ValueError, match="group"):
        Supply("VX", "x", "lighting", 0, 1.0)
    with pytest.raises(ValueError, match="samples outside"):
        energy_summary(supply_energy(t, {"i(vi_vdd0)": np.zeros_like(t)}, [vdd], SCHED, 1, 1),
                       np.zeros((0, 1)))


# ---------------------------------------------------------------------- synaptic operations
def test_synops_counted_by_hand():
    w0 = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [3.0, -1.0, 0.0]])  # nonzero per row: 2, 0, 2
    w1 = np.array([[0.5, 0.0], [0.0, 0.0], [-0.2, 0.1]])  # 1, 0, 2
    spiked0 = np.array([[True, True, False], [False, True, True]])
    spiked1 = np.array([[True, False, True], [False, False, False]])
    # sample 0: layer 0 rows 0, 1 -> 2 + 0; layer 1 rows 0, 2 -> 1 + 2. sample 1: 0 + 2; nothing
    assert count_synops([w0, w1], [spiked0, spiked1]).tolist() == [[2, 3], [2, 0]]
    summary = energy_summary(pd.DataFrame(columns=list(ENERGY_COLUMNS)).astype({"energy_j": float}),
                             np.zeros((2, 2), dtype=int))
    assert math.isnan(summary["energy_per_synop_j"]) and summary["energy_per_inference_j"] == 0.0
    with pytest.raises(ValueError, match="one per layer"):
        count_synops([w0], [spiked0, spiked1])
    with pytest.raises(ValueError, match="does not fit"):
        count_synops([w1], [spiked0[:, :2]])


def test_spiked_inputs_read_the_deck_inputs_and_the_previous_layer():
    t_in = np.array([[0.0, np.nan, 0.999], [0.5, 1.0, 0.2]])  # 0.999 T: pulse shorter than 2 edges
    spikes = pd.DataFrame({"sample": [0, 0, 1, 1, 0, 1], "layer": [0, 0, 0, 0, 1, 1],
                           "neuron": [0, 1, 0, 1, 0, 0], "spiked": [True, False, False, True, True, True]})
    first, second = spiked_inputs(t_in, spikes, SCHED, (3, 2, 1))
    assert first.tolist() == [[True, False, False], [True, False, True]]
    assert second.tolist() == [[True, False], [False, True]]
    with pytest.raises(ValueError, match="lacks"):
        spiked_inputs(t_in, spikes[spikes["sample"] == 0], SCHED, (3, 2, 1))


# ---------------------------------------------------------------------- the deck's supplies
def _biases(widths, rng):
    return [(np.where(rng.random((a, b)) > 0.5, 0.5, 0.0), np.where(rng.random((a, b)) > 0.5, 1.1, 1.8))
            for a, b in zip(widths[:-1], widths[1:])]


def test_every_source_of_the_deck_is_a_supply_with_its_saves():
    rng = np.random.default_rng(0)
    net = Network((3, 2, 2))
    biases = _biases(net.widths, rng)
    deck = network_deck(net, biases, [0.5, 0.55], rng.random((2, 3)))
    sources = {line.split()[0] for line in deck.text.splitlines() if line.startswith("V")}
    assert sources - {s.source for s in deck.supplies} == {"VDD", "VV0", "VBS"}  # fed through ammeters
    assert {s.group for s in deck.supplies} == set(SUPPLY_GROUPS)
    assert set(deck.saves) == set(network_saves(net.widths)) | {s.current for s in deck.supplies} | {
        s.voltage for s in deck.supplies if s.voltage_v is None}
    # layer l's cells hang on its own rails; the shared rails only feed the ammeters
    for l in range(2):
        cells = [line.split() for line in deck.text.splitlines() if line.startswith((f"XS{l}_", f"XN{l}_"))]
        assert all(f"vdd{l}" in c and "vdd" not in c for c in cells)
        assert f"VI_vdd{l} vdd{l} vdd 0" in deck.text and f"VI_v0_{l} v0_{l} v0 0" in deck.text
    by_source = {s.source: s for s in deck.supplies}
    assert by_source["VI_vbsense1"] == Supply("VI_vbsense1", "vbsense1", "neuron_bias", 1, net.vb_sense_v)
    assert by_source["VINB2"] == Supply("VINB2", "sb0_2", "input_drivers", 0)


def test_without_supplies_the_deck_has_no_ammeters_and_only_the_spike_saves():
    rng = np.random.default_rng(1)
    net = Network((3, 2))
    biases, t_in = _biases(net.widths, rng), rng.random((2, 3))
    plain = network_deck(net, biases, [0.5], t_in, save_supplies=False)
    assert plain.supplies == () and plain.saves == network_saves(net.widths)
    assert "VI_" not in plain.text and " vdd0 " not in plain.text
    full = network_deck(net, biases, [0.5], t_in)
    # the same circuit: drop the ammeters and rename the layer rails back, the texts agree
    back = "\n".join(line for line in full.text.splitlines() if not line.startswith("VI_"))
    for new, old in ((" vdd0", " vdd"), (" v0_0 ", " v0 "), (" vbsense0 ", " vbsense ")):
        back = back.replace(new, old)
    assert back + "\n" == plain.text


def test_post_layout_core_rails_are_shared_supplies():
    net = Network((2, 2), core=PostLayoutCore.schematic(Network((2, 2))))
    deck = network_deck(net, _biases(net.widths, np.random.default_rng(2)), [0.5], np.zeros((1, 2)))
    shared = {s.source for s in deck.supplies if s.layer is None}
    assert shared == {"VDD", "VV0", "VBS"} and "VI_" not in deck.text


# ---------------------------------------------------------------------- real ngspice
@pytest.mark.slow
def test_2_2_network_energy_in_ngspice(characterization, spice_cache):
    """A 2-2 network at 1x and 2x current, the same without neuron 0's weights (the baseline) and
    a deck without supplies. Neuron 0 has negative weights (PMOS sources: their current comes
    from VDD during accumulation), neuron 1 positive ones (it spikes)."""
    from imcpnn.circuits.simulate.run import build_testbenches, simulate_network, simulate_scales
    from imcpnn.circuits.simulate.weights import CurrentScales

    char = characterization[0]
    w = np.array([[-0.1, 0.5], [-0.1, 0.4]])
    t_in = np.array([[0.0, 0.3], [0.2, 0.0]])
    kw = dict(cache_dir=spice_cache, progress=False)
    one, two = simulate_scales([w], t_in, char, [CurrentScales(), CurrentScales(scale=2.0)],
                               discharger_scales=[1.35, 1.35], keep_traces=True, **kw)
    base_one, base_two = simulate_scales([w * [0, 1]], t_in, char, [CurrentScales(), CurrentScales(scale=2.0)],
                                         discharger_scales=[1.35, 1.35], **kw)
    plain = simulate_network([w], t_in, char, discharger_scales=[1.35], save_supplies=False, **kw)
    assert plain.energy is None

    # spike times: the ammeters grow the matrix, whose rounding moves ngspice's accepted steps;
    # 1e-4 T is far below the ns-level model-vs-SPICE errors the validation reports
    assert one.spikes["spiked"].tolist() == plain.spikes["spiked"].tolist() == [False, False, True, True]
    assert np.max(np.abs(one.spikes["t_spike_s"] - plain.spikes["t_spike_s"])[2:]) < 1e-4 * T

    table = one.energy
    synops = count_synops([w], spiked_inputs(t_in, one.spikes, SCHED, (2, 2)))
    assert synops.tolist() == [[4], [4]]  # both inputs spike, two nonzero weights each
    summary = energy_summary(table, synops)
    total = summary["energy_per_inference_j"]
    groups = {r["group"]: r["energy_j"] for r in summary["per_group"]}
    assert total > 0 and all(groups[g] > 0 for g in ("array_neurons", "neuron_bias", "input_drivers",
                                                      "phase_drivers"))
    # the gate-bias sources feed only gates: over whole cycles they deliver next to nothing
    assert abs(groups["synapse_bias"]) < 0.01 * total
    assert sum(r["energy_j"] for r in summary["per_phase"]) == pytest.approx(total, rel=1e-12)
    assert summary["energy_per_synop_j"] == pytest.approx(total / 4)

    # the windows tile [0, 3 T n]: their sum is the direct integral of -v i over that span
    time_s, traces = one.traces[0]
    span = time_s <= 3 * T * 2
    supplies = build_testbenches(Network((2, 2)), one.mapping, t_in, SCHED, 2, True)[0].supplies
    direct = sum(-np.trapezoid((s.voltage_v if s.voltage_v is not None else traces[s.voltage][span])
                               * traces[s.current][span], time_s[span]) for s in supplies)
    assert table["energy_j"].sum() == pytest.approx(direct, rel=1e-3)

    # doubled currents: the accumulation-phase VDD energy above the baseline is neuron 0's
    # PMOS charge V_dd Q, and Q follows the model's membrane swing E (1 - exp(-|w| (1 - t) / |E|))
    # summed over the spikes: doubling |w| gives the ratio below (< 2: the reversal potential).
    # 5 %: the selector's switch charge does not scale and lambda is a linear fit.
    def accumulation(run):
        e = run.energy
        return e[(e["phase"] == "accumulation") & (e["group"] == "array_neurons")]["energy_j"].sum()

    a = 0.1 / abs(char["e_minus"])
    spikes_t = np.array([0.0, 0.3, 0.2, 0.0])  # the four (sample, input) spikes into neuron 0
    expected = np.sum(1 - np.exp(-2 * a * (1 - spikes_t))) / np.sum(1 - np.exp(-a * (1 - spikes_t)))
    ratio = (accumulation(two) - accumulation(base_two)) / (accumulation(one) - accumulation(base_one))
    assert ratio == pytest.approx(expected, rel=0.05)
    assert 1.7 < ratio < 2.0


@pytest.mark.slow
def test_rc_deck_in_ngspice_takes_c_v_squared_from_its_supply(spice_cache):
    """A supply stepping from 0 to 1.8 V (1 ps edge) in the first window charges 1 pF through
    10 kOhm (tau = 10 ns, fully charged within the window): it delivers C V^2 (half stored, half
    burnt in the resistor), whatever R, to about 1e-5 for an edge 1e-4 tau long; supply_energy on
    ngspice's own time points must get it within 1e-4 (the trapezoidal rule on the points of a
    trapezoidal transient: charge is conserved step by step), and nothing in the windows after."""
    from imcpnn.spice import Sim, Tran, run

    c_f, v, r_ohm = 1e-12, 1.8, 1e4
    deck = f"VDD vdd 0 PWL(0 0 100n 0 100.001n {v})\nR1 vdd out {r_ohm:g}\nC1 out 0 {c_f:g}\n"
    sim = Sim(deck, (Tran(1e-10, 3 * T, 1e-9),), devices=(), save=("v(vdd)", "i(vdd)"))
    plot = run(sim, cache_dir=spice_cache).plot("tran")
    time_s = np.asarray(plot[plot.names[0]])
    traces = {name: np.asarray(plot[name]) for name in ("v(vdd)", "i(vdd)")}
    table = supply_energy(time_s, traces, [Supply("VDD", "vdd", "array_neurons", 0)], SCHED, 1, 1)
    e = table.set_index("phase")["energy_j"]
    assert e["reset"] == pytest.approx(c_f * v**2, rel=1e-4)
    assert abs(e["accumulation"]) < 1e-6 * c_f * v**2 and abs(e["firing"]) < 1e-6 * c_f * v**2
