"""Trace fitter: recover known physical parameters from model-generated traces (no SPICE)."""

import dataclasses

import numpy as np
import pytest
import torch

from imcpnn.validation import PARAMETER_NAMES, PhysicalParameters, TraceSet, fit_traces, predict_traces

TRUE = PhysicalParameters(e_plus=3.0, e_minus=-2.0, e_dis=4.0, current_scale=1.2, v_th_circ_v=0.85,
                          dis_rate=0.9, t_delay=0.03, q_plus=0.02, q_minus=-0.015)
CIRCUIT_TERMS = ("dis_rate", "t_delay", "q_plus", "q_minus")


def synthetic_traces(params, *, noise_v=5e-4, noise_t=2e-3, seed=0):
    """Traces from the model itself with Gaussian noise: the fit must give ``params`` back."""
    rng = np.random.default_rng(seed)
    batch, n_in, n_out = 16, 5, 4
    t_in = rng.uniform(0.0, 0.8, (batch, n_in))
    t_in[rng.uniform(size=t_in.shape) < 0.3] = 1.0  # silent inputs: the count of active synapses varies
    t_in[:, 0] = 0.0  # bias input at t = 0, as in the Iris encoding
    w = rng.uniform(-0.4, 0.9, (n_in, n_out))
    t_eval = np.linspace(0.0, 1.0, 21)
    skeleton = TraceSet(t_in, w, t_eval, np.zeros((batch, n_out, 21)), np.zeros((batch, n_out)),
                        np.ones((batch, n_out), bool))
    with torch.no_grad():
        v, t = predict_traces(torch.tensor(params.vector(), dtype=torch.float64), skeleton)
    v = v.numpy() + rng.normal(0, noise_v, v.shape)
    t = t.numpy() + rng.normal(0, noise_t, t.shape)
    return TraceSet(t_in, w, t_eval, v, t, (t > 0) & (t < 1))


def test_fit_recovers_known_parameters_within_uncertainty():
    traces = synthetic_traces(TRUE)
    assert traces.spiked.sum() >= 20  # enough spike times to pin V_th_circ (see _fit docstring)
    start = PhysicalParameters(e_plus=10.0, e_minus=-10.0, e_dis=10.0, current_scale=1.0,
                               v_th_circ_v=0.9)
    result = fit_traces(traces, start, sigma_v_v=5e-4, sigma_t=2e-3)
    assert result.free == PARAMETER_NAMES
    for name in PARAMETER_NAMES:
        fitted, true, err = getattr(result.parameters, name), getattr(TRUE, name), result.stderr[name]
        assert err > 0
        assert abs(fitted - true) < 5 * err, (name, fitted, true, err)
        assert abs(fitted - true) < 0.15 * abs(true), (name, fitted, true)
    # Noise of 0.5 mV: the fitted model should explain the traces down to that noise floor.
    assert 0.35 < result.rms_v_membrane_mv < 0.7


def test_several_trace_sets_pool_their_residuals():
    """A network's layers are trace sets with their own inputs and weights: one parameter set
    explains them all, and pooling them pins it better than either alone."""
    a, b = synthetic_traces(TRUE, seed=3), synthetic_traces(TRUE, seed=4)
    kwargs = dict(fixed=("v_th_circ_v",), sigma_v_v=5e-4, sigma_t=2e-3)
    start = PhysicalParameters(e_plus=5.0, e_minus=-5.0, e_dis=6.0, current_scale=1.0, v_th_circ_v=0.85)
    alone = [fit_traces(s, start, **kwargs) for s in (a, b)]
    joint = fit_traces([a, b], start, **kwargs)
    assert joint.n_residuals == sum(r.n_residuals for r in alone)
    for name in joint.free:
        fitted, err = getattr(joint.parameters, name), joint.stderr[name]
        assert abs(fitted - getattr(TRUE, name)) < 5 * err, (name, fitted, err)
        assert err < min(r.stderr[name] for r in alone), name
    one = fit_traces([a], start, **kwargs)  # a list of one set is that set
    assert one.parameters == alone[0].parameters and one.rms_t_spike == alone[0].rms_t_spike


def test_fixed_parameters_are_held_and_have_zero_stderr():
    traces = synthetic_traces(TRUE, seed=1)
    start = PhysicalParameters(e_plus=5.0, e_minus=-5.0, e_dis=4.0, current_scale=1.0,
                               v_th_circ_v=0.85)
    start = PhysicalParameters(**{**start.__dict__, **{n: getattr(TRUE, n) for n in CIRCUIT_TERMS}})
    result = fit_traces(traces, start, fixed=("e_dis", "v_th_circ_v", *CIRCUIT_TERMS), sigma_v_v=5e-4,
                        sigma_t=2e-3)
    assert result.parameters.e_dis == 4.0 and result.stderr["e_dis"] == 0.0
    assert result.free == ("e_plus", "e_minus", "current_scale")
    assert abs(result.parameters.e_plus - 3.0) < 0.3


def test_fit_rejects_unknown_fixed_name():
    with pytest.raises(ValueError, match="cannot fix"):
        fit_traces(synthetic_traces(TRUE), TRUE, fixed=("e_pluss",))


def test_fit_rejects_nonpositive_sigma():
    with pytest.raises(ValueError, match="must both be > 0"):
        fit_traces(synthetic_traces(TRUE), TRUE, sigma_v_v=0.0)


def test_fit_rejects_too_few_residuals():
    traces = synthetic_traces(TRUE)
    tiny = TraceSet(traces.t_in[:1, :], traces.w[:, :1], traces.t_eval[:2],
                    traces.v_membrane_v[:1, :1, :2], traces.t_spike[:1, :1],
                    np.zeros((1, 1), bool))
    with pytest.raises(ValueError, match="cannot determine"):
        fit_traces(tiny, TRUE)


def test_unconstrained_parameter_is_named():
    traces = synthetic_traces(TRUE)
    silent = TraceSet(traces.t_in, traces.w, traces.t_eval, traces.v_membrane_v, traces.t_spike,
                      np.zeros_like(traces.spiked))  # no spike times: nothing pins E_dis
    with pytest.raises(ValueError, match=r"do not depend on \['e_dis', 'dis_rate', 't_delay', 'q_plus', 'q_minus'\]"):
        fit_traces(silent, TRUE)
    inhibitory = TraceSet(traces.t_in, -np.abs(traces.w), traces.t_eval, traces.v_membrane_v,
                          traces.t_spike, traces.spiked)  # no w > 0: nothing pins E_plus
    with pytest.raises(ValueError, match=r"do not depend on \['e_plus'"):
        fit_traces(inhibitory, TRUE, residuals="membrane")


def test_membrane_only_fit_measures_the_current_scale():
    """A charge measurement: E values known, the membrane alone gives the current scale C_m/C_eff."""
    traces = synthetic_traces(TRUE, seed=3)
    start = PhysicalParameters(**{**TRUE.__dict__, "current_scale": 1.0})
    fixed = tuple(n for n in PARAMETER_NAMES if n != "current_scale")
    result = fit_traces(traces, start, fixed=fixed, residuals="membrane", sigma_v_v=5e-4)
    assert result.parameters.current_scale == pytest.approx(TRUE.current_scale, rel=0.01)
    assert np.isnan(result.rms_t_spike) and result.rms_v_membrane_mv < 0.7
    with pytest.raises(ValueError, match="residuals="):
        fit_traces(traces, start, residuals="all")


def test_traceset_shape_mismatch_is_named():
    traces = synthetic_traces(TRUE)
    with pytest.raises(ValueError, match="v_membrane_v has shape"):
        TraceSet(traces.t_in, traces.w, traces.t_eval, traces.v_membrane_v[:, :, :3],
                 traces.t_spike, traces.spiked)


def test_parameters_out_of_range_are_rejected():
    with pytest.raises(ValueError, match=r"PhysicalParameters.e_minus=1.0 is invalid: allowed \[-10000.0, -0.05\]"):
        PhysicalParameters(e_plus=3.0, e_minus=1.0, e_dis=4.0)


@pytest.mark.parametrize("kwargs, match", [({"n_patterns": 0}, "n_patterns"),
                                           ({"n_times": 2}, "n_times"),
                                           ({"sigma_v_v": 0.0}, "sigma_v_v"),
                                           ({"source": "circuit"}, "source")])
def test_trace_fit_config_rejects_bad_values(kwargs, match):
    from imcpnn.errors import ConfigError
    from imcpnn.validation import TraceFitConfig

    with pytest.raises(ConfigError, match=match):
        TraceFitConfig(**kwargs)


def test_e_shapes_spread_the_fitted_level_over_the_synapses():
    """With per-synapse E shapes (bias-dependent lambda), the model uses E_plus * shape for each
    synapse: the traces equal those of the per-synapse E given to pnn directly, and a fit of
    traces made with shapes recovers the scalar level."""
    from imcpnn.pnn import membrane_trace

    base = synthetic_traces(TRUE, noise_v=0.0, noise_t=0.0)
    rng = np.random.default_rng(7)
    shape_p, shape_m = rng.uniform(0.9, 1.1, base.w.shape), rng.uniform(0.85, 1.05, base.w.shape)
    shaped = TraceSet(base.t_in, base.w, base.t_eval, base.v_membrane_v, base.t_spike, base.spiked,
                      e_shape_plus=shape_p, e_shape_minus=shape_m)
    params = torch.tensor(TRUE.vector(), dtype=torch.float64)
    with torch.no_grad():
        v, _ = predict_traces(params, shaped)
        w = torch.tensor(base.w) * TRUE.current_scale
        direct = membrane_trace(torch.tensor(base.t_in), w, torch.tensor(TRUE.e_plus * shape_p),
                                torch.tensor(TRUE.e_minus * shape_m), torch.tensor(base.t_eval))
    np.testing.assert_allclose(v.numpy(), shaped.v_reset_v - TRUE.v_th_circ_v * direct.numpy(), atol=1e-12)
    with torch.no_grad():
        v, t = predict_traces(params, shaped)
    data = TraceSet(base.t_in, base.w, base.t_eval, v.numpy(), t.numpy(), (t.numpy() > 0) & (t.numpy() < 1),
                    e_shape_plus=shape_p, e_shape_minus=shape_m)
    start = dataclasses.replace(TRUE, e_plus=5.0, e_minus=-4.0)
    fit = fit_traces(data, start, fixed=tuple(n for n in PARAMETER_NAMES if n not in ("e_plus", "e_minus")))
    assert fit.parameters.e_plus == pytest.approx(TRUE.e_plus, rel=1e-4)
    assert fit.parameters.e_minus == pytest.approx(TRUE.e_minus, rel=1e-4)
    with pytest.raises(ValueError, match="e_shape_plus"):
        TraceSet(base.t_in, base.w, base.t_eval, base.v_membrane_v, base.t_spike, base.spiked,
                 e_shape_plus=shape_p[:, :2])


def test_neuron_offsets_make_the_fitted_terms_the_layers_mean():
    """Each neuron's own delay offset and capacitance factor (stage_neurons): its column of
    charge and its discharge rate scale by c_j, its spike comes delay_offset_j later; traces
    made with them give back the layer's mean terms, where a fit that ignores them is pulled
    off (the post-layout testbench's neurons differ by about 1 % in capacitance)."""
    from imcpnn.pnn import spike_times

    base = synthetic_traces(TRUE, noise_v=0.0, noise_t=0.0)
    offset, c = np.array([0.01, -0.005, 0.0, -0.005]), np.array([0.99, 1.0, 1.015, 0.995])
    own = dataclasses.replace(base, delay_offset=offset, c_factor=c)
    params = torch.tensor(TRUE.vector(), dtype=torch.float64)
    with torch.no_grad():
        v, t = predict_traces(params, own)
        w = torch.tensor(base.w * TRUE.current_scale * c)
        direct = spike_times(torch.tensor(base.t_in), w, TRUE.e_plus, TRUE.e_minus, e_dis=TRUE.e_dis,
                             dis_rate=TRUE.dis_rate, rate_factor=torch.tensor(c), t_delay=TRUE.t_delay + torch.tensor(offset),
                             q_plus=TRUE.q_plus, q_minus=TRUE.q_minus)
    np.testing.assert_allclose(t.numpy(), direct.numpy(), atol=1e-12)
    data = dataclasses.replace(own, v_membrane_v=v.numpy(), t_spike=t.numpy(), spiked=(t.numpy() > 0) & (t.numpy() < 1))
    free = ("t_delay", "q_plus", "q_minus")
    fixed = tuple(n for n in PARAMETER_NAMES if n not in free)
    start = dataclasses.replace(TRUE, t_delay=0.0, q_plus=0.0, q_minus=0.0)
    fit = fit_traces(data, start, fixed=fixed, residuals="spikes")
    for name in free:
        assert getattr(fit.parameters, name) == pytest.approx(getattr(TRUE, name), abs=1e-6), name
    blind = fit_traces(dataclasses.replace(data, delay_offset=None, c_factor=None), start, fixed=fixed,
                       residuals="spikes")
    assert blind.rms_t_spike > 100 * fit.rms_t_spike
    with pytest.raises(ValueError, match="c_factor"):
        dataclasses.replace(base, c_factor=c[:2])


def test_a_driven_layer_fits_the_encoders_kick():
    """A trace set of a layer fed by neurons (dq_driven, stage_driven_kick) predicts with the kick
    q + dq; a fit pooling it with an encoder-driven layer gives back the encoder's q (the one
    its parameters hold), where a fit that ignores dq is pulled off."""
    encoder = synthetic_traces(TRUE, noise_v=0.0, noise_t=0.0)
    dq = (0.006, -0.004)
    driven_truth = dataclasses.replace(TRUE, q_plus=TRUE.q_plus + dq[0], q_minus=TRUE.q_minus + dq[1])
    driven = dataclasses.replace(synthetic_traces(driven_truth, noise_v=0.0, noise_t=0.0, seed=1), dq_driven=dq)
    with torch.no_grad():
        _, t = predict_traces(torch.tensor(TRUE.vector(), dtype=torch.float64), driven)
    np.testing.assert_allclose(t.numpy(), driven.t_spike, atol=1e-12)
    free = ("t_delay", "q_plus", "q_minus")
    fixed = tuple(n for n in PARAMETER_NAMES if n not in free)
    start = dataclasses.replace(TRUE, t_delay=0.0, q_plus=0.0, q_minus=0.0)
    fit = fit_traces([encoder, driven], start, fixed=fixed, residuals="spikes")
    for name in free:
        assert getattr(fit.parameters, name) == pytest.approx(getattr(TRUE, name), abs=1e-6), name
    blind = fit_traces([encoder, dataclasses.replace(driven, dq_driven=None)], start, fixed=fixed, residuals="spikes")
    assert abs(blind.parameters.q_plus - TRUE.q_plus) > 1e-3


def row_coupling(n: int, kappa: float = 0.015) -> np.ndarray:
    """K of n membranes in a row, each coupled by kappa of its own capacitance to its neighbours."""
    k = np.zeros((n, n))
    for i in range(n - 1):
        k[i, i + 1] = k[i + 1, i] = -kappa
    k[np.diag_indices(n)] = -k.sum(1)
    return k


def test_a_coupled_layer_fits_the_neurons_apart_from_their_neighbours():
    """Traces of coupled membranes (TraceSet.coupling): the fit that models the coupling gives the
    true terms back; one that ignores it is pulled off by more than a measurement's worth."""
    skeleton = synthetic_traces(TRUE, noise_v=0.0, noise_t=0.0)
    coupled = dataclasses.replace(skeleton, coupling=row_coupling(skeleton.w.shape[1]))
    with torch.no_grad():
        v, t = predict_traces(torch.tensor(TRUE.vector(), dtype=torch.float64), coupled)
    coupled = dataclasses.replace(coupled, v_membrane_v=v.numpy(), t_spike=t.numpy(),
                                  spiked=(t.numpy() > 0) & (t.numpy() < 1))
    assert np.abs(v.numpy() - skeleton.v_membrane_v).max() > 2e-3  # the coupling is visible in the traces
    free = ("current_scale", "t_delay", "q_plus", "q_minus")
    fixed = tuple(n for n in PARAMETER_NAMES if n not in free)
    start = dataclasses.replace(TRUE, current_scale=1.0, t_delay=0.0, q_plus=0.0, q_minus=0.0)
    fit = fit_traces(coupled, start, fixed=fixed)
    for name in free:
        assert getattr(fit.parameters, name) == pytest.approx(getattr(TRUE, name), abs=1e-6), name
    blind = fit_traces(dataclasses.replace(coupled, coupling=None), start, fixed=fixed)
    assert max(abs(getattr(blind.parameters, n) - getattr(TRUE, n)) for n in ("t_delay", "q_plus", "q_minus")) > 1e-3


def test_trace_set_checks_the_coupling_shape():
    traces = synthetic_traces(TRUE)
    with pytest.raises(ValueError, match="coupling"):
        dataclasses.replace(traces, coupling=np.zeros((2, 2)))
