"""Exact RC-Spike solver vs independent references (solve_ivp, closed forms, limits)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pnn_ode_reference import ode_firing_time, ode_membrane, ode_ttfs

from imcpnn.pnn._api import firing_trace, membrane_at_end, membrane_trace, spike_times, ttfs_spike_times
from imcpnn.pnn.solver import firing_times, log_ratio_factor, relax_factor

F64 = torch.float64


def random_layer(seed, batch=3, n_in=12, n_out=4, scale=0.6, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    t_in = torch.rand(batch, n_in, generator=g, dtype=dtype)
    w = torch.randn(n_in, n_out, generator=g, dtype=dtype) * scale
    return t_in, w


@pytest.mark.parametrize("seed,e_plus,e_minus", [(0, 2.8, -1.53), (1, 0.7, -0.5), (2, 5.0, -3.0)])
def test_exact_matches_solve_ivp(seed, e_plus, e_minus):
    t_in, w = random_layer(seed)
    t_in[0, 3] = t_in[0, 5]  # a tie
    t_in[1, 0], t_in[1, 1] = 0.0, 1.0  # spikes on both window edges
    t_eval = torch.tensor([0.0, 0.13, 0.5, 0.77, 1.0], dtype=F64)
    trace = membrane_trace(t_in, w, e_plus, e_minus, t_eval)
    v_end = membrane_at_end(t_in, w, e_plus, e_minus)
    for b in range(t_in.shape[0]):
        ref = ode_membrane(t_in[b].numpy(), w.numpy(), e_plus, e_minus, t_eval.numpy())
        np.testing.assert_allclose(trace[b].numpy(), ref, atol=1e-6, rtol=0)
        np.testing.assert_allclose(v_end[b].numpy(), ref[:, -1], atol=1e-6, rtol=0)


def test_large_e_gives_weighted_sum():
    t_in, w = random_layer(3, batch=5, n_in=40, n_out=6)
    ideal = ((1 - t_in).unsqueeze(-1) * w.unsqueeze(0)).sum(1)
    for e in (1e9, math.inf):
        # correction is O(v^2 / E): < 1e-7 for |v| ~ 3
        torch.testing.assert_close(membrane_at_end(t_in, w, e, -e), ideal, atol=1e-7, rtol=0)


@pytest.mark.parametrize("w_value,t0", [(0.9, 0.2), (-1.4, 0.05), (3.0, 0.6)])
def test_single_input_closed_form(w_value, t0):
    e_plus, e_minus = 1.5, -0.8
    e = e_plus if w_value >= 0 else e_minus
    # dv/dt = w (1 - v/E) from t0: v(1) = E (1 - exp(-w (1 - t0)/E))
    expected = e * (1 - math.exp(-w_value * (1 - t0) / e))
    v = membrane_at_end(torch.tensor([[t0]], dtype=F64), torch.tensor([[w_value]], dtype=F64), e_plus, e_minus)
    assert v.item() == pytest.approx(expected, rel=1e-13)


def test_f_to_zero_limit_is_continuous():
    """Across the series/expm1 switch of h(x) (x = 1e-3) and down to f = 0 the single-input closed
    form E (1 - exp(-w d/E)) (numpy expm1, float64) is matched to 1e-14 relative."""
    w_value, t0 = 0.5, 0.0
    for e in np.logspace(-2.0, 12.0, 57).tolist() + [1 / 2.0e-3, 1 / 1.999e-3, 1 / 2.001e-3]:
        expected = -e * np.expm1(-w_value / e)
        v = membrane_at_end(torch.tensor([[t0]], dtype=F64), torch.tensor([[w_value]], dtype=F64), e, -e)
        assert v.item() == pytest.approx(expected, rel=1e-14)
    v_inf = membrane_at_end(torch.tensor([[t0]], dtype=F64), torch.tensor([[w_value]], dtype=F64), math.inf, -math.inf)
    assert v_inf.item() == w_value


def test_relax_and_log_factors_smooth_at_switch():
    x = torch.tensor([0.0, 1e-12, 0.999e-3, 1.001e-3, 0.5, 30.0], dtype=F64, requires_grad=True)
    x64 = x.detach().numpy()
    expected_h = np.where(x64 == 0, 1.0, -np.expm1(-x64) / np.where(x64 == 0, 1, x64))
    expected_l = np.where(x64 == 0, 1.0, np.log1p(x64) / np.where(x64 == 0, 1, x64))
    np.testing.assert_allclose(relax_factor(x).detach().numpy(), expected_h, rtol=1e-13)
    np.testing.assert_allclose(log_ratio_factor(x).detach().numpy(), expected_l, rtol=1e-13)
    (grad,) = torch.autograd.grad(relax_factor(x).sum(), x)
    assert grad[0].item() == pytest.approx(-0.5, rel=1e-9)  # h'(0) = -1/2
    assert grad[2].item() == pytest.approx(grad[3].item(), rel=1e-5)


@pytest.mark.parametrize("e_dis", [1.2, 3.0, 50.0])
def test_firing_phase_with_discharge_matches_solve_ivp(e_dis):
    v0 = torch.tensor([[-0.7, -0.2, 0.0, 0.35, 0.8, 0.999, 1.0, 1.6]], dtype=F64)
    ref = [ode_firing_time(v, e_dis) for v in v0[0].tolist()]
    np.testing.assert_allclose(firing_times(v0, e_dis)[0].numpy(), ref, atol=1e-8)
    # through the public path: a neuron with no input starts the ramp at 0 and fires at t = 1
    t = spike_times(torch.zeros(1, 1, dtype=F64), torch.zeros(1, 1, dtype=F64), 1.0, -1.0, e_dis=e_dis)
    assert t.item() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("e_dis", [None, 2.5])
def test_firing_trace_reaches_threshold_at_spike_time(e_dis):
    v_end = torch.tensor([[0.1, 0.6, -0.3]], dtype=F64)
    t_fire = firing_times(v_end, e_dis)[0]
    for i in range(2):  # the third neuron starts too low to fire within the window
        ramp = firing_trace(v_end[:, i : i + 1], t_fire[i : i + 1], e_dis)
        assert ramp.item() == pytest.approx(1.0, abs=1e-12)
    start = firing_trace(v_end, torch.zeros(1, dtype=F64), e_dis)[0, :, 0]
    torch.testing.assert_close(start, v_end[0], rtol=0, atol=1e-15)
    assert t_fire[2].item() == 1.0


def test_ideal_firing_is_hard_sigmoid():
    t_in, w = random_layer(4, batch=6, n_in=10, n_out=5, scale=1.0)
    v = membrane_at_end(t_in, w, 2.0, -2.0)
    t_out = spike_times(t_in, w, 2.0, -2.0)
    torch.testing.assert_close(t_out, (1 - v).clamp(0, 1), rtol=0, atol=0)
    assert ((t_out == 0) | (t_out == 1)).any()  # both clip regions are exercised by this layer
    silent = spike_times(t_in, torch.zeros_like(w), 2.0, -2.0)
    assert (silent == 1).all()


def test_ttfs_matches_event_driven_reference():
    t_in, w = random_layer(5, batch=3, n_in=10, n_out=5, scale=1.5)
    w = w + 0.5
    t_out = ttfs_spike_times(t_in, w, 2.0, -1.5)
    assert (t_out < 1).sum() >= 4 and (t_out == 1).sum() >= 1  # both firing and silent neurons
    for b in range(t_in.shape[0]):
        ref = ode_ttfs(t_in[b].numpy(), w.numpy(), 2.0, -1.5)
        np.testing.assert_allclose(t_out[b].numpy(), ref, atol=1e-7)


def test_ttfs_ideal_limit_is_linear_crossing():
    # one input at t0 with weight w > 1 and E = inf: v = w (t - t0) crosses 1 at t0 + 1/w
    t_out = ttfs_spike_times(torch.tensor([[0.2]], dtype=F64), torch.tensor([[2.5]], dtype=F64), math.inf, -math.inf)
    assert t_out.item() == pytest.approx(0.2 + 1 / 2.5, rel=1e-14)


def test_float32_agrees_with_float64():
    t_in, w = random_layer(6, batch=8, n_in=300, n_out=20, scale=0.1)
    v64 = membrane_at_end(t_in, w, 2.0, -1.5)
    v32 = membrane_at_end(t_in.float(), w.float(), 2.0, -1.5)
    assert v32.dtype == torch.float32
    torch.testing.assert_close(v32.double(), v64, atol=2e-5, rtol=0)


def test_gradcheck_exact():
    t_in, w = random_layer(7, batch=2, n_in=6, n_out=3)
    t_in.requires_grad_(True)
    w.requires_grad_(True)
    e_plus = torch.tensor(1.7, dtype=F64, requires_grad=True)
    e_minus = torch.tensor(-1.2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, ww, ep, em: membrane_at_end(t, ww, ep, em), (t_in, w, e_plus, e_minus))
    t_eval = torch.tensor([0.3, 0.9], dtype=F64)
    assert torch.autograd.gradcheck(
        lambda ww, ep, em: membrane_trace(t_in.detach(), ww, ep, em, t_eval), (w, e_plus, e_minus)
    )
    assert torch.autograd.gradcheck(lambda t, ww: ttfs_spike_times(t, ww * 3, 2.0, -1.5), (t_in, w))
