"""The fair, held-out protocol of the validation pipeline (no SPICE: the simulator is replaced).

- fairness: the top-down pipeline reads no fitted model parameter: with the E values, lambdas,
  C_eff, delay and kick replaced by absurd ones its model, mapping and discharger are identical;
- held out: the scale searches simulate calibration samples only, never a test sample;
- honest metrics: spiking-only RMSE and one-sided silences are counted per layer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from imcpnn.circuits.characterization.fit import Characterization, IdVgTable
from imcpnn.circuits.netlist.network import Network, PhaseSchedule
from imcpnn.circuits.simulate.run import map_network
from imcpnn.pnn import DataConfig
from imcpnn.validation import SearchConfig, ValidationConfig, layer_metrics
from imcpnn.validation._metrics import compare_spike_tables, output_errors_ns
from imcpnn.validation import _pipeline as pipe
from imcpnn.validation._fit import PhysicalParameters


def char_dict(**over) -> dict:
    v = np.linspace(0.0, 1.0, 201)
    tn = IdVgTable(tuple(v), tuple(1e-12 * np.exp(v / 0.04)))
    vp = np.linspace(0.8, 1.8, 201)
    tp = IdVgTable(tuple(vp), tuple(1e-5 * np.exp(-(vp - 0.8) / 0.04)))
    data = dict(v0=1.3, v_switch=0.4575, v_th_circ=0.8425, lambda_n=0.40, lambda_p=0.76,
                lambda_dis=0.40, e_plus=2.94, e_minus=-1.56, e_dis=2.97,
                id_vg_n=tn.to_dict(), id_vg_p=tp.to_dict(), id_vg_dis=tn.to_dict())
    return data | over


ABSURD = dict(lambda_n=9.0, lambda_p=0.001, lambda_dis=7.0, e_plus=0.11, e_minus=-333.0, e_dis=1.01)
ABSURD_DYNAMICS = PhysicalParameters(e_plus=0.2, e_minus=-50.0, e_dis=1.5, current_scale=0.3,
                                     v_th_circ_v=0.8425, dis_rate=7.0, t_delay=0.4, q_plus=0.3,
                                     q_minus=-0.3)


def test_top_down_reads_no_fitted_parameter():
    config = ValidationConfig()
    real, absurd = char_dict(), char_dict(**ABSURD)
    p_real, p_absurd = pipe.ideal_parameters(config, real), pipe.ideal_parameters(config, absurd)
    assert p_real == p_absurd
    assert (p_real.dis_rate, p_real.t_delay, p_real.q_plus, p_real.q_minus) == (1.0, 0.0, 0.0, 0.0)
    # its model: ideal whatever the discharger factor, and whatever parameters it is handed
    ideal = pipe.layer_physics("top_down", p_real)
    assert ideal.e_dis is None and ideal.dis_rate is None and ideal.t_delay == 0 and ideal.q_plus == 0
    assert pipe.layer_physics("top_down", p_real, 1.7) == ideal
    assert pipe.layer_physics("top_down", p_real, 1.0, (0.3, -0.3)) == ideal  # nor the driven kick
    # its mapping: same gate and discharger biases (the I_D tables and V_th_circ are design data)
    net = Network((5, 5, 5))
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-0.8, 0.8, (5, 5)) for _ in range(2)]
    maps = [map_network(net, weights, Characterization.from_dict(c),
                        pipe.mapping_scales("top_down", p, (1.1, 0.9)), 1e-6)
            for c, p in ((real, p_real), (absurd, p_absurd))]
    assert maps[0]["layers"] == maps[1]["layers"]
    # and its search start does not come from another pipeline or a fitted model
    assert pipe.mapping_scales("top_down", ABSURD_DYNAMICS, (1.1, 0.9)) == \
        pipe.mapping_scales("top_down", p_real, (1.1, 0.9))


def test_bottom_up_maps_with_its_measured_capacitance():
    params = dataclasses.replace(ABSURD_DYNAMICS, current_scale=0.94)
    assert pipe.mapping_scales("bottom_up", params, (1.0,)).scale == pytest.approx(1 / 0.94)
    physics = pipe.layer_physics("bottom_up", params, 1.1)
    assert physics.dis_rate == pytest.approx(7.0 * 1.1) and physics.t_delay == 0.4


CURVES = {"n": {"i_a": [1e-9, 1e-7], "lambda_per_v": [0.42, 0.38]},
          "p": {"i_a": [1e-9, 1e-7], "lambda_per_v": [0.80, 0.67]},
          "dis": {"i_a": [1e-9], "lambda_per_v": [0.40]}}


def _reversal_ctx(char: dict):
    return pipe.Context(config=ValidationConfig(), out_dir=None, cache_dir=None, progress=False, char=char,
                        network=Network((5, 5, 5)), fit_network=None, schedule=PhaseSchedule(),
                        x_test=None, y_test=None, x_cal=None, n_classes=3, data_config=None)


def test_bottom_up_gives_each_synapse_the_e_of_its_mapped_current():
    """E per synapse from lambda(I) at the current the model's mapping gives its weight (C_eff,
    k = 1): bottom-up's are the DC values themselves; trace-fitted keeps the DC shape and scales
    it by its fitted E level; top-down (ideal) keeps scalar E, and so does a characterization
    without the curves."""
    from imcpnn.circuits.simulate.weights import unit_current_a

    char = char_dict(lambda_vs_current=CURVES)
    c = Characterization.from_dict(char)
    dc = dataclasses.replace(ABSURD_DYNAMICS, e_plus=c.e_plus, e_minus=c.e_minus, current_scale=0.9)
    fitted = dataclasses.replace(dc, e_plus=1.1 * c.e_plus, e_minus=0.8 * c.e_minus)
    rng = np.random.default_rng(4)
    weights = [rng.uniform(-0.8, 0.8, (5, 5)) for _ in range(2)]
    ctx = _reversal_ctx(char)
    reversal = pipe.synapse_reversals(ctx, "bottom_up", dc, weights)
    traced = pipe.synapse_reversals(ctx, "trace_fitted", fitted, weights)
    for layer, (w, (e_plus, e_minus), (f_plus, f_minus)) in enumerate(zip(weights, reversal, traced)):
        i = np.abs(w) * unit_current_a(ctx.network.membrane_f(layer), c.v_th_circ, 1e-6) / 0.9
        np.testing.assert_allclose(e_plus[w > 0], c.synapse_reversal(i[w > 0], "n"))
        np.testing.assert_allclose(e_minus[w < 0], c.synapse_reversal(i[w < 0], "p"))
        assert (e_plus[w <= 0] == c.e_plus).all() and (e_minus[w >= 0] == c.e_minus).all()
        assert np.ptp(e_plus[w > 0]) > 0  # the curve makes them differ
        np.testing.assert_allclose(f_plus, 1.1 * e_plus)
        np.testing.assert_allclose(f_minus, 0.8 * e_minus)
    assert pipe.synapse_reversals(ctx, "top_down", dc, weights) is None
    assert pipe.synapse_reversals(_reversal_ctx(char_dict()), "bottom_up", dc, weights) is None


def test_load_delay_is_reported_by_hidden_layers_and_not_fed_forward():
    """The readout term: a hidden layer's reported times move by fan-out x delay per gate; the
    next layer's inputs, hence the output layer, do not move; the circuit models (bottom-up,
    trace-fitted) carry it, the ideal top-down model does not."""
    from imcpnn.pnn import PNN, LayerPhysics

    ctx = dataclasses.replace(_reversal_ctx(char_dict()), load_delay_per_fanout=0.001)
    assert pipe.readout_delays(ctx, "bottom_up") == [pytest.approx(0.005), 0.0]
    assert pipe.readout_delays(ctx, "trace_fitted") == pipe.readout_delays(ctx, "bottom_up")
    assert pipe.readout_delays(ctx, "top_down") is None
    assert pipe.readout_delays(dataclasses.replace(ctx, load_delay_per_fanout=None), "bottom_up") is None
    torch.manual_seed(0)
    model = PNN("mlp:5", (5,), 5, LayerPhysics(e_plus=3.0, e_minus=-1.5))
    x = np.random.default_rng(5).uniform(size=(8, 5))
    bare = pipe.model_layer_times(model, x)
    read = pipe.model_layer_times(model, x, readout=pipe.readout_delays(ctx, "bottom_up"))
    np.testing.assert_allclose(read[0], bare[0] + 0.005)
    np.testing.assert_array_equal(read[1], bare[1])


def test_each_neuron_gets_its_own_delay_and_capacitance_against_its_layer(monkeypatch, tmp_path):
    """stage_neurons fits t = t_0 + K / k per neuron of the network without input (here rows
    made from known t_0, K) and keeps each neuron's offset from its layer's mean: delay
    t_0 - mean t_0, capacitance factor mean K / K; a neuron firing at fewer than two factors
    keeps 0 and 1. The model then moves that neuron alone: its column of charge and its ramp
    scale by c, its spike by the delay offset; the ideal top-down model takes none of it."""
    from imcpnn.pnn import PNN, LayerPhysics

    t0 = {(0, j): 0.04 + 0.01 * j for j in range(5)} | {(1, j): 0.05 for j in range(5)}
    big_k = {(0, j): 1.3 * (1 + 0.02 * j) for j in range(5)} | {(1, j): 1.3 for j in range(5)}
    grid = pipe.DISCHARGER_GRID
    rows = [(k, layer, j, t0[layer, j] + big_k[layer, j] / k) for (layer, j) in t0 for k in grid
            if not (layer == 1 and j == 4 and k != grid[0])]  # (1, 4): one factor only
    rows_tb = [(k, 0, j, 0.03 + 0.02 * j + 1.3 / k) for j in range(4) for k in grid]
    monkeypatch.setattr(pipe, "no_input_firing", lambda ctx, network, weights, g: (
        list(g), rows if network.widths == (5, 5, 5) else rows_tb))
    monkeypatch.setattr(pipe, "stage_discharger", lambda ctx: {"grid": [[1.5, 0.9]]})
    ctx = dataclasses.replace(_reversal_ctx(char_dict()), out_dir=tmp_path, fit_network=Network((5, 4)))
    got = pipe.stage_neurons(ctx)
    # the testbench's neurons too (for its fits): delays 0.03 + 0.02 j about their mean
    np.testing.assert_allclose(got["testbench"]["delay_offset"], [-0.03, -0.01, 0.01, 0.03], atol=1e-12)
    np.testing.assert_allclose(got["testbench"]["c_factor"], 1.0)
    mean_t0, mean_k = np.mean([t0[0, j] for j in range(5)]), np.mean([big_k[0, j] for j in range(5)])
    np.testing.assert_allclose(got["layers"][0]["delay_offset"], [t0[0, j] - mean_t0 for j in range(5)], atol=1e-12)
    np.testing.assert_allclose(got["layers"][0]["c_factor"], [mean_k / big_k[0, j] for j in range(5)])
    np.testing.assert_allclose(got["layers"][1]["delay_offset"], 0.0, atol=1e-12)
    np.testing.assert_allclose(got["layers"][1]["c_factor"], 1.0)
    assert got["n_unfitted"] == 1 and got["grid"] == list(grid)

    ctx = dataclasses.replace(ctx, neuron_terms=got["layers"])
    assert pipe.neuron_terms(ctx, "top_down") is None and pipe.neuron_terms(ctx, "bottom_up") is got["layers"]
    torch.manual_seed(0)
    model = PNN("mlp:5", (5,), 5, LayerPhysics(e_plus=3.0, e_minus=-1.5, dis_rate=1.2, t_delay=0.04))
    x = np.random.default_rng(5).uniform(0.0, 0.5, size=(8, 5))
    bare = pipe.model_layer_times(model, x)
    own = pipe.model_layer_times(model, x, neurons=[
        {"delay_offset": [0.0, 0.02, 0.0, 0.0, 0.0], "c_factor": [1.0] * 5},
        {"delay_offset": [0.0] * 5, "c_factor": [1.0, 1.0, 1.1, 1.0, 1.0]}])
    spiking = bare[0][:, 1] < 0.97
    np.testing.assert_allclose(own[0][spiking, 1], bare[0][spiking, 1] + 0.02)
    np.testing.assert_array_equal(np.delete(own[0], 1, axis=1), np.delete(bare[0], 1, axis=1))
    w1 = model.dense_weights()[1].detach().double()
    scaled = w1.clone()
    scaled[:, 2] *= 1.1
    from imcpnn.pnn import spike_times
    want = spike_times(torch.as_tensor(own[0]), scaled, 3.0, -1.5, dis_rate=1.2 * 1.1, t_delay=0.04)
    np.testing.assert_allclose(own[1][:, 2], want[:, 2].numpy(), atol=1e-12)


def test_coupled_membranes_enter_the_circuit_models_and_the_budget(monkeypatch, tmp_path):
    """stage_neurons gives each layer its membranes' coupling (None on a schematic, whose
    wiring estimate has none); model_layer_times then solves the layer's membranes together
    (each layer is spike_times(..., coupling=K) of the layer before), top-down takes none of it,
    and the error budget's last row is the coupling's (skipped where nothing was measured)."""
    from imcpnn.pnn import PNN, LayerPhysics, spike_times

    k = np.diag([0.015, 0.03, 0.03, 0.03, 0.015])
    for i in range(4):
        k[i, i + 1] = k[i + 1, i] = -0.015
    rows = [(f, layer, j, 0.05 + 1.3 / f) for layer in range(2) for j in range(5) for f in pipe.DISCHARGER_GRID]
    monkeypatch.setattr(pipe, "no_input_firing", lambda ctx, network, weights, g: (list(g), rows))
    monkeypatch.setattr(pipe, "stage_discharger", lambda ctx: {"grid": [[1.5, 0.9]]})
    ctx = dataclasses.replace(_reversal_ctx(char_dict()), out_dir=tmp_path / "schematic", fit_network=Network((5, 5)))
    schematic = pipe.stage_neurons(ctx)
    assert [r["coupling"] for r in schematic["layers"]] == [None, None] and schematic["coupling_max"] == 0.0
    monkeypatch.setattr(pipe, "coupling_of", lambda network, layer: k)
    got = pipe.stage_neurons(dataclasses.replace(ctx, out_dir=tmp_path / "laid-out"))
    np.testing.assert_array_equal(got["layers"][1]["coupling"], k)
    np.testing.assert_array_equal(got["testbench"]["coupling"], k)
    assert got["coupling_max"] == pytest.approx(0.015)

    torch.manual_seed(0)
    model = PNN("mlp:5", (5,), 5, LayerPhysics(e_plus=3.0, e_minus=-1.5, e_dis=3.0, dis_rate=1.2, t_delay=0.04))
    x = np.random.default_rng(5).uniform(0.0, 0.5, size=(8, 5))
    coupled = pipe.model_layer_times(model, x, neurons=got["layers"])
    t = torch.as_tensor(x)
    for layer, w in enumerate(model.dense_weights()):
        t = spike_times(t, w.detach().double(), 3.0, -1.5, e_dis=3.0, dis_rate=1.2, t_delay=torch.full((5,), 0.04, dtype=torch.float64),
                        rate_factor=torch.ones(5, dtype=torch.float64), coupling=torch.tensor(k))
        np.testing.assert_allclose(coupled[layer], t.numpy(), atol=1e-12)
    bare = pipe.model_layer_times(model, x, neurons=schematic["layers"])
    assert np.abs(coupled[1] - bare[1]).max() > 1e-4
    ctx = dataclasses.replace(ctx, neuron_terms=got["layers"])
    assert pipe.neuron_terms(ctx, "top_down") is None
    assert pipe.BUDGET_TERMS[-1][1].get("coupling") and not pipe.BUDGET_TERMS[-2][1].get("coupling")


def test_driven_kick_is_the_neuron_driven_probe_against_the_encoder_probe(monkeypatch, tmp_path):
    """stage_driven_kick on a "circuit" that is the bottom-up model with known kicks: q_enc per
    synapse where the encoder drives it (the testbench layer), q_drv where a neuron does (the
    loaded testbench's second layer), a firing delay the model gets wrong by 5 ns (the two-sample
    difference leaves it out). The probes' first layer is silent in sample 0 and fires in sample
    1; the stage recovers both kicks per sign and their difference, which the bottom-up and
    trace-fitted models add to their layers after the first and top-down does not."""
    from imcpnn.circuits.simulate import run as run_module
    from imcpnn.pnn import spike_times

    params = PhysicalParameters(e_plus=2.9, e_minus=-1.6, e_dis=3.0, current_scale=0.95, v_th_circ_v=0.8425,
                                dis_rate=1.27, t_delay=0.04, q_plus=0.0046, q_minus=-0.0029)
    q_enc, q_drv = (0.0048, -0.0036), (0.0066, -0.0037)
    calls = []

    class Run:
        def __init__(self, spikes):
            self.spikes = spikes

    def fake_simulate_network(weights, t_in, char, network=None, discharger_scales=None, **kw):
        factor = discharger_scales[0] / 1.5
        calls.append((network.widths, factor))
        times, t = [], torch.as_tensor(t_in, dtype=torch.float64)
        for layer, w in enumerate(weights):
            q = q_enc if layer == 0 else q_drv
            t = spike_times(t, torch.as_tensor(w) * 0.95, 2.9, -1.6, e_dis=3.0, dis_rate=1.27 * factor,
                            t_delay=0.045, q_plus=q[0], q_minus=q[1])
            times.append(t.numpy())
        return Run(pipe.model_spike_table(times))

    monkeypatch.setattr(run_module, "simulate_network", fake_simulate_network)
    ctx = dataclasses.replace(_reversal_ctx(char_dict()), out_dir=tmp_path, fit_network=Network((5, 4)),
                              loaded_fit_network=Network((5, 4, 5)), discharger_design=1.5)
    got = pipe.stage_driven_kick(ctx, params)
    assert calls == [((5, 4, 5), pytest.approx(pipe.DRIVEN_PROBE_DISCHARGER)),
                     ((5, 4), pytest.approx(pipe.DRIVEN_PROBE_DISCHARGER))]
    assert got["note"] is None and 0.8 < got["t_input"] < 1.0
    assert (got["encoder"]["plus"], got["encoder"]["minus"]) == pytest.approx(q_enc, abs=1e-7)
    assert (got["driven"]["plus"], got["driven"]["minus"]) == pytest.approx(q_drv, abs=1e-7)
    assert (got["dq_plus"], got["dq_minus"]) == pytest.approx((0.0018, -0.0001), abs=1e-7)

    ctx = dataclasses.replace(ctx, driven_kick=(got["dq_plus"], got["dq_minus"]))
    assert pipe.driven_kicks(ctx, "bottom_up") == pipe.driven_kicks(ctx, "trace_fitted") == ctx.driven_kick
    assert pipe.driven_kicks(ctx, "top_down") is None
    physics = pipe.layer_physics("bottom_up", params, 1.0, pipe.driven_kicks(ctx, "bottom_up"))
    assert physics.for_layer(1).q_plus == pytest.approx(0.0046 + 0.0018, abs=1e-7)
    assert physics.for_layer(0).q_plus == 0.0046
    # no hidden layer: nothing to measure, no term
    bare = dataclasses.replace(ctx, loaded_fit_network=None, out_dir=tmp_path / "bare")
    assert pipe.stage_driven_kick(bare, params)["dq_plus"] is None


def test_calibration_samples_are_never_test_samples():
    rng = np.random.default_rng(1)
    x_train, x_test = rng.uniform(size=(100, 5)), rng.uniform(size=(50, 5))
    cal = pipe.calibration_inputs(ValidationConfig(), x_train, x_test)
    assert len(cal) == 14 and np.array_equal(cal, x_train[:14])
    assert not any((row == x_test).all(axis=1).any() for row in cal)
    # the labelled in-sample variant, for comparison with the method's reference
    assert np.array_equal(pipe.calibration_inputs(ValidationConfig(calibration="test"), x_train, x_test),
                          x_test[:14])


def _search_ctx(monkeypatch, fake_simulate, config, tmp_path, x_train, x_test):
    """A Context for a scale search whose SPICE runs are ``fake_simulate`` (every point mappable)."""
    monkeypatch.setattr(pipe, "simulate_candidates", fake_simulate)
    monkeypatch.setattr(pipe, "mappable", lambda *a, **k: True)
    return pipe.Context(config=config, out_dir=tmp_path, cache_dir=None, progress=False, char={},
                        network=None, fit_network=None, schedule=PhaseSchedule(), x_test=x_test,
                        y_test=np.zeros(len(x_test)), x_cal=pipe.calibration_inputs(config, x_train, x_test),
                        n_classes=3, data_config=DataConfig())


def test_search_simulates_only_calibration_samples(tmp_path, monkeypatch):
    from imcpnn.pnn import PNN, LayerPhysics

    torch.manual_seed(0)
    model = PNN("mlp:5", (5,), 5, LayerPhysics(e_plus=100.0, e_minus=-100.0))
    rng = np.random.default_rng(2)
    x_train, x_test = rng.uniform(size=(30, 5)), rng.uniform(size=(10, 5))
    x_train[:, 0] = x_test[:, 0] = 0.0
    config = ValidationConfig(search=SearchConfig(steps=(0.1,), max_recentre=1, n_samples=7))
    seen = []

    class Run:
        def __init__(self, spikes):
            self.spikes = spikes

    def fake_simulate(ctx, weights, x, scales_list, progress, discharger_scales=None, **networks):
        seen.append(np.array(x))
        out = []
        for scales in scales_list:  # a "circuit" whose spikes move with the plus scale
            times = pipe.model_layer_times(model, x)
            out.append(Run(pipe.model_spike_table([t * (0.5 + 0.5 * scales.scale_plus) for t in times])))
        return out

    ctx = _search_ctx(monkeypatch, fake_simulate, config, tmp_path, x_train, x_test)
    params = pipe.ideal_parameters(config, char_dict())
    result = pipe.stage_search(ctx, "top_down", None, params, model, (1.2, 1.0))
    assert seen and all(np.array_equal(x, x_train[:7]) for x in seen)
    assert not any((row == x_test).all(axis=1).any() for x in seen for row in x)
    assert result["best"][0] == pytest.approx(1.0) and result["n_calibration_samples"] == 7


@pytest.mark.parametrize("pipeline", ["top_down", "bottom_up"])
def test_the_search_guide_is_the_pipelines_own_model_at_scaled_currents(tmp_path, monkeypatch, pipeline):
    """The model guide (issue: speed) predicts a candidate's errors as the pipeline's own model
    at the currents the circuit gets there: top-down's positive weights times scale_plus and its
    negative ones times scale_minus, the others' all times k; none at its own point. With
    ``model_guide=False`` the search gets no guide."""
    from imcpnn.pnn import PNN, LayerPhysics

    torch.manual_seed(0)
    model = PNN("mlp:5", (5,), 5, LayerPhysics(e_plus=100.0, e_minus=-100.0))
    rng = np.random.default_rng(2)
    x_train, x_test = rng.uniform(size=(30, 5)), rng.uniform(size=(10, 5))
    x_train[:, 0] = x_test[:, 0] = 0.0
    weights = [w.detach().double().numpy() for w in model.dense_weights()]
    guides = {}

    def fake_search(evaluate, n_dims, config, log_path, start=None, model_errors=None):
        guides[config.model_guide] = model_errors
        return start, pd.DataFrame({"x0": [start[0]], "x1": [start[-1]], "level": [0], "rmse_t_spike_ns": [1.0]})

    monkeypatch.setattr(pipe, "search", fake_search)
    for name in ("synapse_reversals", "driven_kicks", "readout_delays", "neuron_terms"):  # no circuit here
        monkeypatch.setattr(pipe, name, lambda *a, **k: None)
    params = pipe.ideal_parameters(ValidationConfig(), char_dict())
    start = (1.0, 1.0) if pipeline == "top_down" else (1.0,)
    for guided in (True, False):
        config = ValidationConfig(search=SearchConfig(n_samples=7, model_guide=guided))
        ctx = _search_ctx(monkeypatch, None, config, tmp_path / str(guided), x_train, x_test)
        pipe.stage_search(ctx, pipeline, weights, params, model, start)
    assert guides[False] is None
    guide = guides[True]
    assert np.all(guide(start) == 0)
    point = (1.2, 0.7) if pipeline == "top_down" else (1.2,)
    scaled = [np.where(w > 0, w * point[0], w * point[-1]) for w in weights]
    physics = pipe.layer_physics(pipeline, params)
    own = pipe.model_spike_table(pipe.model_layer_times(model, ctx.x_cal, physics))
    there = pipe.model_spike_table(pipe.model_layer_times(model, ctx.x_cal, physics, weights=scaled))
    expected = output_errors_ns(compare_spike_tables(own, there, ctx.schedule.t_phase_s))
    assert np.allclose(guide(point), expected) and np.abs(expected).max() > 1.0
    assert guide((0.0,) * len(start)) is None  # no currents: no prediction


def test_a_search_given_to_the_run_replaces_the_configs(tmp_path, monkeypatch):
    """``run_validation(..., search=f)`` (through Context.search) hands f each pipeline's own
    candidate evaluation in place of the config's search: what benchmarks/search_vs_grid.py uses
    to simulate a grid of chosen points."""
    from imcpnn.pnn import PNN, LayerPhysics

    torch.manual_seed(0)
    model = PNN("mlp:5", (5,), 5, LayerPhysics(e_plus=100.0, e_minus=-100.0))
    rng = np.random.default_rng(2)
    x_train, x_test = rng.uniform(size=(30, 5)), rng.uniform(size=(10, 5))
    x_train[:, 0] = x_test[:, 0] = 0.0
    simulated = []

    class Run:
        def __init__(self, spikes):
            self.spikes = spikes

    def fake_simulate(ctx, weights, x, scales_list, progress, discharger_scales=None, **networks):
        simulated.extend(scales_list)
        return [Run(pipe.model_spike_table(pipe.model_layer_times(model, x))) for _ in scales_list]

    calls = []

    def grid(evaluate, n_dims, config, log_path, start=None, model_errors=None):
        points = [(1.0, 1.0), (1.1, 0.9)]
        calls.append((Path(log_path).name, [np.sqrt(np.mean(np.square(r))) for r in evaluate(points)]))
        return points[0], pd.DataFrame({"x0": [1.0], "x1": [1.0], "level": [0], "rmse_t_spike_ns": [0.0]})

    config = ValidationConfig(search=SearchConfig(n_samples=7))
    ctx = dataclasses.replace(_search_ctx(monkeypatch, fake_simulate, config, tmp_path, x_train, x_test), search=grid)
    result = pipe.stage_search(ctx, "top_down", None, pipe.ideal_parameters(config, char_dict()), model, (1.0, 1.0))
    assert result["best"] == [1.0, 1.0] and calls[0][0] == "search_top_down.log.csv"
    assert [(s.scale_plus, s.scale_minus) for s in simulated] == [(1.0, 1.0), (1.1, 0.9)]


def test_searched_discharger_never_goes_below_its_design_bias(tmp_path, monkeypatch):
    """Below the design factor neurons without net input fall silent on both sides, which an RMSE
    counts as agreement: a "circuit" whose error shrinks as the discharger weakens must not pull
    the search there."""
    from imcpnn.pnn import PNN, LayerPhysics

    torch.manual_seed(0)
    model = PNN("mlp:5", (5,), 5, LayerPhysics(e_plus=100.0, e_minus=-100.0))
    rng = np.random.default_rng(2)
    x_train, x_test = rng.uniform(size=(30, 5)), rng.uniform(size=(10, 5))
    config = ValidationConfig(search=SearchConfig(steps=(0.1, 0.03), max_recentre=2, n_samples=7),
                              discharger="searched")
    factors = []

    class Run:
        def __init__(self, spikes):
            self.spikes = spikes

    def fake_simulate(ctx, weights, x, scales_list, progress, discharger_scales=None, **networks):
        ks = discharger_scales or [1.0] * len(scales_list)
        factors.extend(ks)
        times = pipe.model_layer_times(model, x)
        return [Run(pipe.model_spike_table([t * (1.0 + 0.3 * k) for t in times])) for k in ks]

    ctx = _search_ctx(monkeypatch, fake_simulate, config, tmp_path, x_train, x_test)
    params = pipe.ideal_parameters(config, char_dict())
    result = pipe.stage_search(ctx, "top_down", None, params, model, (1.0, 1.0))
    assert min(factors) == pytest.approx(pipe.DISCHARGER_SEARCH_MIN) and max(factors) > 1.0
    assert result["discharger_scale"] == pytest.approx(pipe.DISCHARGER_SEARCH_MIN)


def test_layer_metrics_count_spiking_pairs_and_one_sided_silences():
    cmp = pd.DataFrame({"sample": [0, 0, 1, 1], "layer": 1, "neuron": [0, 1, 0, 1],
                        "spiked_model": [True, True, False, False],
                        "spiked_spice": [True, False, True, False],
                        "err_t_spike_ns": [3.0, 40.0, -50.0, 0.0]})
    row = layer_metrics(cmp).iloc[0]
    assert row["rmse_spiking_ns"] == pytest.approx(3.0)
    assert row["n_silent_mismatch"] == 2
    assert row["mean_err_t_spike_ns"] == pytest.approx(-7.0 / 4)
    assert row["rmse_t_spike_ns"] == pytest.approx(np.sqrt((9 + 1600 + 2500) / 4))


def test_discharger_design_factor_puts_a_silent_neuron_at_the_window_end():
    """t(k) = t_0 + K / k (ramp time ~ 1/current plus the firing delay): the design factor k*
    is where t = 1, recovered from points that all fire earlier."""
    t0, big_k = 0.04, 1.29
    k = np.array([1.5, 1.7, 2.0, 2.5, 3.3])
    k_star, t0_fit, k_fit, rms = pipe.discharger_factor(k, t0 + big_k / k)
    assert k_star == pytest.approx(big_k / (1 - t0), rel=1e-9)
    assert (t0_fit, k_fit) == (pytest.approx(t0), pytest.approx(big_k)) and rms < 1e-12
    assert t0 + big_k / k_star == pytest.approx(1.0)


def test_trace_fit_on_the_network_uses_calibration_samples_and_chains_the_layers(tmp_path, monkeypatch):
    """The trace fit's network traces (``fit.source="network"``): the bottom-up network's run on
    the calibration samples only, at its searched scale; each later layer's inputs are the SPICE
    spike times of the layer before, less that layer's load delay (what the model feeds forward),
    and so are that layer's targets; the weights are the currents as mapped (w k / s)."""
    from imcpnn.pnn import PNN, LayerPhysics

    torch.manual_seed(0)
    model = PNN("mlp:5", (5,), 5, LayerPhysics(e_plus=3.0, e_minus=-1.5))
    weights = [w.double().numpy() for w in model.dense_weights()]
    rng = np.random.default_rng(4)
    x_train, x_test = rng.uniform(size=(30, 5)), rng.uniform(size=(10, 5))
    x_train[:, 0] = x_test[:, 0] = 0.0
    config = ValidationConfig(search=SearchConfig(n_samples=7))
    seen, t_eval = [], np.linspace(0.0, 1.0, 11)

    class Run:
        def __init__(self, spikes, membranes):
            self.spikes, self.membranes = spikes, membranes

    def fake_simulate(ctx, w, x, scales_list, progress, discharger_scales=None, **kw):
        seen.append((np.array(x), [s.scale for s in scales_list], discharger_scales))
        times = pipe.model_layer_times(model, x)
        membranes = pd.DataFrame([{"sample": s, "layer": layer, "neuron": j, "t": t, "v_mem_v": 1.3 - 0.1 * t}
                                  for layer, tl in enumerate(times) for s in range(len(x))
                                  for j in range(tl.shape[1]) for t in t_eval])
        return [Run(pipe.model_spike_table(times), membranes)]

    ctx = dataclasses.replace(_search_ctx(monkeypatch, fake_simulate, config, tmp_path, x_train, x_test),
                              network=Network((5, 5, 5)), load_delay_per_fanout=0.001, char=char_dict(),
                              driven_kick=(0.002, -0.001))
    params = PhysicalParameters(e_plus=3.0, e_minus=-1.5, e_dis=3.0, current_scale=0.95)
    sets = pipe.network_traces(ctx, params, weights, {"best": [0.99]})
    assert sets[0].dq_driven is None and sets[1].dq_driven == (0.002, -0.001)  # the driven kick: layer 2 on
    (x, scales, discharger), = seen
    assert np.array_equal(x, x_train[:7]) and scales == [pytest.approx(0.99 / 0.95)] and discharger == [1.0]
    assert len(sets) == 2 and np.array_equal(sets[0].t_in, x_train[:7])
    assert np.allclose(sets[0].w, weights[0] * 0.99 / 0.95) and np.allclose(sets[1].w, weights[1] * 0.99 / 0.95)
    hidden = pipe.model_layer_times(model, x_train[:7])[0]
    fired = hidden < 1
    load = 5 * 0.001  # the hidden layer drives 5 gates per output
    assert np.allclose(sets[0].t_spike[fired], hidden[fired] - load) and np.all(sets[0].t_spike[~fired] == 1)
    assert np.array_equal(sets[1].t_in, sets[0].t_spike)
    assert np.allclose(sets[1].v_membrane_v[0, 0], 1.3 - 0.1 * np.linspace(0.0, 1.0, config.fit.n_times))


def test_trace_fitted_parameters_predict_the_bottom_up_network_as_the_fit_saw_it(tmp_path, monkeypatch):
    """trace_fit_on_bottom_up: the bottom-up network's SPICE test run predicted with the fitted
    parameters, its weights as the circuit got them (w k / s_bottom_up) seen through the fitted
    current scale, with the fitted model's load delay. A "circuit" that is exactly the fitted model
    on those weights is predicted with zero error; leaving out the searched k is not."""
    from imcpnn.pnn import PNN, LayerPhysics

    torch.manual_seed(0)
    model = PNN("mlp:5", (5,), 5, LayerPhysics(e_plus=3.0, e_minus=-1.5))
    rng = np.random.default_rng(4)
    x_test = rng.uniform(size=(10, 5))
    x_test[:, 0] = 0.0
    ctx = dataclasses.replace(_search_ctx(monkeypatch, None, ValidationConfig(), tmp_path, x_test, x_test),
                              network=Network((5, 5, 5)), load_delay_per_fanout=0.002, char={})
    bottom_up = PhysicalParameters(e_plus=3.0, e_minus=-1.5, e_dis=3.0, current_scale=0.95, t_delay=0.03)
    fitted = PhysicalParameters(e_plus=2.6, e_minus=-1.7, e_dis=3.3, current_scale=0.9, t_delay=0.05, q_plus=0.004)
    evaluation = {"scale": 1.02, "discharger_scale": 1.0, "rmse_t_spike_ns": 1.5}
    seen = [w.double() * 1.02 * 0.9 / 0.95 for w in model.dense_weights()]
    fed = pipe.model_layer_times(model, x_test, pipe.layer_physics("trace_fitted", fitted), weights=seen)
    circuit = pipe.model_spike_table(pipe.reported_times(fed, pipe.readout_delays(ctx, "trace_fitted")))
    cmp = pipe.compare_spike_tables(circuit, circuit, ctx.schedule.t_phase_s)  # its t_spice columns: the circuit
    (tmp_path / "tables").mkdir()
    cmp.to_csv(tmp_path / "tables" / "spikes_bottom_up.csv", index=False)
    cross = pipe.trace_fit_on_bottom_up(ctx, model, bottom_up, fitted, evaluation)
    assert cross["rmse_ns"] == pytest.approx(0.0, abs=1e-9) and cross["rmse_per_layer_ns"] == [pytest.approx(0.0, abs=1e-9)] * 2
    assert cross["rmse_bottom_up_ns"] == 1.5
    wrong = pipe.trace_fit_on_bottom_up(ctx, model, bottom_up, fitted, {**evaluation, "scale": 1.0})
    assert wrong["rmse_ns"] > 0.1


def test_refitted_parameters_predict_the_trace_fitted_circuit_mapped_as_searched(tmp_path, monkeypatch):
    """stage_evaluate with ``refit``: the circuit is mapped with the parameters the network trained
    with at its searched k (the test samples, simulated once), and predicted with the refitted
    parameters on the weights as the circuit got them (w k / s_trained, seen through the refitted
    current scale). A "circuit" that is exactly the refitted model there is predicted with zero
    error; the parameters it trained with are reported beside it and are off."""
    from imcpnn.pnn import PNN, LayerPhysics

    torch.manual_seed(0)
    model = PNN("mlp:5", (5,), 5, LayerPhysics(e_plus=3.0, e_minus=-1.5))
    rng = np.random.default_rng(5)
    x_test = rng.uniform(size=(10, 5))
    x_test[:, 0] = 0.0
    trained = PhysicalParameters(e_plus=3.0, e_minus=-1.5, e_dis=3.0, current_scale=0.95, t_delay=0.03)
    refit = PhysicalParameters(e_plus=2.7, e_minus=-1.6, e_dis=3.4, current_scale=0.9, t_delay=0.05, q_plus=0.004)
    k, seen, t_eval = 1.03, [], np.linspace(0.0, 1.0, 11)

    class Run:
        energy = None
        mapping = {"widths": [5, 5, 5], "layers": [{"c_m_f": 1e-12, "vg_dis_v": 0.5}] * 2}

        def __init__(self, spikes, membranes):
            self.spikes, self.membranes = spikes, membranes

    def fake_simulate(ctx, w, x, scales_list, progress, discharger_scales=None, **kw):
        seen.append((np.array(x), [s.scale for s in scales_list]))
        weights = [torch.as_tensor(layer) * k * refit.current_scale / trained.current_scale for layer in w]
        fed = pipe.model_layer_times(model, x, pipe.layer_physics("trace_fitted", refit), weights=weights)
        times = pipe.reported_times(fed, pipe.readout_delays(ctx, "trace_fitted"))
        membranes = pd.DataFrame([{"sample": s, "layer": layer, "neuron": j, "t": t, "v_mem_v": 1.3 - 0.1 * t}
                                  for layer in range(2) for s in range(len(x)) for j in range(5) for t in t_eval])
        return [Run(pipe.model_spike_table(times), membranes)]

    ctx = dataclasses.replace(_search_ctx(monkeypatch, fake_simulate, ValidationConfig(), tmp_path, x_test, x_test),
                              network=Network((5, 5, 5)), load_delay_per_fanout=0.002, char={"v0": 1.3})
    result = pipe.stage_evaluate(ctx, "trace_fitted", model, trained, {"best": [k]}, refit)
    (x, scales), = seen
    assert np.array_equal(x, x_test) and scales == [pytest.approx(k / 0.95)]
    assert result["refit"] and result["rmse_t_spike_ns"] == pytest.approx(0.0, abs=1e-9)
    assert result["rmse_before_refit_ns"] > 1.0 and result["e_dis"] == 3.4


def test_the_refit_fits_the_trace_fitted_network_after_its_search(tmp_path, monkeypatch):
    """_run_pipelines: the trace-fitted parameters are fitted on the searched bottom-up network,
    then refitted from them on the trace-fitted network's own weights and search, and its
    evaluation predicts with the refitted ones (mapped with those it trained with); no refit
    with ``fit.refit=False``."""
    calls = []
    first = PhysicalParameters(e_plus=2.5, e_minus=-1.4, e_dis=3.1)
    second = PhysicalParameters(e_plus=2.6, e_minus=-1.3, e_dis=3.2)

    class Model:
        def __init__(self, pipeline):
            self.pipeline = pipeline

        def dense_weights(self):
            return [torch.full((2, 2), float(len(self.pipeline)))]

    monkeypatch.setattr(pipe, "train_pipeline_model", lambda ctx, p, params: Model(p))
    monkeypatch.setattr(pipe, "stage_search", lambda ctx, p, w, params, model, start: {"best": [len(p) / 10]})
    monkeypatch.setattr(pipe, "stage_trace_fit", lambda ctx, start, net: {"fitted": dataclasses.asdict(first)})
    monkeypatch.setattr(pipe, "stage_trace_refit", lambda ctx, start, w, search: (
        calls.append(("refit", start, float(w[0][0, 0]), search["best"])) or {"fitted": dataclasses.asdict(second)}))
    monkeypatch.setattr(pipe, "stage_evaluate", lambda ctx, p, model, params, search, refit=None: (
        calls.append((p, params, refit)) or {"rmse_t_spike_ns": 1.0}))
    params = {"top_down": PhysicalParameters(100.0, -100.0, 1e4), "bottom_up": PhysicalParameters(2.9, -1.5, 3.0)}
    for refit in (True, False):
        calls.clear()
        config = ValidationConfig(fit=dataclasses.replace(ValidationConfig().fit, refit=refit))
        ctx = _search_ctx(monkeypatch, None, config, tmp_path, np.zeros((3, 2)), np.zeros((3, 2)))
        _, _, _, fit = pipe._run_pipelines(ctx, params, None)
        if refit:
            assert calls[2] == ("refit", first, len("trace_fitted"), [len("trace_fitted") / 10])
            assert calls[3] == ("trace_fitted", first, second) and fit["refit"]["fitted"] == dataclasses.asdict(second)
        else:
            assert calls[2] == ("trace_fitted", first, None) and "refit" not in fit
