"""Coupled membranes (imcpnn.pnn.coupling): the exact matrix-exponential solver against an
independent ODE integration, its limits, its gradients and its input checks."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from imcpnn.pnn import membrane_trace, spike_times

E_PLUS, E_MINUS, E_DIS, RATE = 2.9, -1.5, 3.0, 1.4
Q = (0.004, -0.003)
DELAY = torch.tensor([0.10, 0.12, 0.13], dtype=torch.float64)
RATE_FACTOR = torch.tensor([1.0, 0.98, 1.02], dtype=torch.float64)


def capacitances(c_own=(130e-15, 125e-15, 133e-15), c_12=1.8e-15, c_23=2.0e-15, c_13=0.1e-15):
    """K of three membranes in a row (1-2 and 2-3 neighbours, 1-3 a little), as in a layout."""
    mutual = np.array([[0, c_12, c_13], [c_12, 0, c_23], [c_13, c_23, 0]])
    own = np.array(c_own)
    k = -mutual / own[:, None]
    k[np.diag_indices(3)] = mutual.sum(1) / own
    return torch.tensor(k)


def layer(seed=1, batch=6):
    g = torch.Generator().manual_seed(seed)
    t_in = torch.rand(batch, 4, generator=g, dtype=torch.float64) * 0.9
    t_in[0, 1] = 1.0  # a silent input
    w = (torch.rand(4, 3, generator=g, dtype=torch.float64) - 0.45) * 1.2
    w[:, 1] = -w[:, 1].abs()  # neuron 1 inhibited: far from its neighbours, which it drags
    return t_in, w


def kw(**extra):
    return dict(e_dis=E_DIS, dis_rate=RATE, t_delay=DELAY, q_plus=Q[0], q_minus=Q[1], rate_factor=RATE_FACTOR,
                **extra)


def ode_spike_times(t_in, w, k):
    """M dv/dt = uncoupled right-hand side, integrated by solve_ivp between input events, kick
    M^-1 (charge steps), then the firing phase with a crossing event per neuron."""
    m_inv = np.linalg.inv(np.eye(3) + k)
    beta = np.where(w >= 0, 1 / E_PLUS, 1 / E_MINUS)
    r = RATE * RATE_FACTOR.numpy()
    out = np.ones((len(t_in), 3))
    for s, ti in enumerate(t_in):
        v = np.zeros(3)
        points = np.concatenate([[0.0], np.unique(ti[ti < 1]), [1.0]])
        for a, b in zip(points[:-1], points[1:]):
            on = (ti <= 0.5 * (a + b)).astype(float)
            rhs = lambda t, y: m_inv @ ((on @ w) - (on @ (beta * w)) * y)  # noqa: E731
            v = solve_ivp(rhs, (a, b), v, method="DOP853", rtol=1e-12, atol=1e-14).y[:, -1] if b > a else v
        on = (ti < 1).astype(float)
        v = v + m_inv @ (on @ np.where(w > 0, Q[0], np.where(w < 0, Q[1], 0.0)))
        for i in range(3):
            if v[i] >= 1:
                out[s, i] = DELAY[i].item()
                continue
            event = lambda t, y, i=i: y[i] - 1  # noqa: E731
            event.terminal, event.direction = True, 1
            sol = solve_ivp(lambda t, y: m_inv @ (r * (1 - y / E_DIS)), (0, 2), v, method="DOP853",
                            rtol=1e-12, atol=1e-14, events=event)
            if len(sol.t_events[0]):
                out[s, i] = min(sol.t_events[0][0] + DELAY[i].item(), 1.0)
    return out


def test_no_coupling_is_the_uncoupled_model():
    t_in, w = layer()
    zero = torch.zeros(3, 3, dtype=torch.float64)
    torch.testing.assert_close(spike_times(t_in, w, E_PLUS, E_MINUS, **kw(coupling=zero)),
                               spike_times(t_in, w, E_PLUS, E_MINUS, **kw()), atol=1e-12, rtol=0)
    t_eval = torch.linspace(0, 1, 7, dtype=torch.float64)
    torch.testing.assert_close(membrane_trace(t_in, w, E_PLUS, E_MINUS, t_eval, coupling=zero),
                               membrane_trace(t_in, w, E_PLUS, E_MINUS, t_eval), atol=1e-12, rtol=0)


def test_coupled_spike_times_match_an_ode_integration():
    """Exact to the ODE's tolerance, and the coupling matters here by more than 100 times that."""
    t_in, w = layer()
    k = capacitances()
    got = spike_times(t_in, w, E_PLUS, E_MINUS, **kw(coupling=k)).numpy()
    want = ode_spike_times(t_in.numpy(), w.numpy(), k.numpy())
    np.testing.assert_allclose(got, want, atol=1e-8)
    uncoupled = spike_times(t_in, w, E_PLUS, E_MINUS, **kw()).numpy()
    assert np.abs(got - uncoupled).max() > 1e-6 * 100
    assert ((got > 0.2) & (got < 1)).sum() >= 6  # crossings inside the window, not only clipped ones


def test_a_neighbour_drags_the_membrane_by_the_capacitance_ratio():
    """Ideal synapses (E huge), no conductance: v = M^-1 u exactly, so a membrane next to one
    that moves by u_2 while it stays at 0 moves by about c_12 / C_1 of u_2."""
    k = capacitances(c_13=0.0)
    t_in = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    w = torch.tensor([[0.0, 0.5, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    v = membrane_trace(t_in, w, 1e9, -1e9, torch.tensor([1.0], dtype=torch.float64), coupling=k)[0, :, -1]
    expected = torch.linalg.solve(torch.eye(3, dtype=torch.float64) + k, torch.tensor([0.0, 0.5, 0.0],
                                                                                       dtype=torch.float64))
    torch.testing.assert_close(v, expected, atol=1e-9, rtol=0)
    assert v[0] == pytest.approx(0.5 * 1.8e-15 / 130e-15, rel=0.05)


def test_gradients_flow_through_both_phases():
    t_in, w = layer(batch=3)
    k = capacitances()
    w = w.clone().requires_grad_(True)
    e_dis = torch.tensor(E_DIS, dtype=torch.float64, requires_grad=True)

    def f(w, e_dis):
        return spike_times(t_in, w, E_PLUS, E_MINUS, e_dis=e_dis, dis_rate=RATE, t_delay=DELAY, q_plus=Q[0],
                           q_minus=Q[1], rate_factor=RATE_FACTOR, coupling=k)

    assert torch.autograd.gradcheck(f, (w, e_dis), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 2, dtype=torch.float64), r"\(n_out, n_out\) = \(3, 3\)"),
    (torch.zeros(3, 3, dtype=torch.float32), "dtype"),
    (-2 * torch.eye(3, dtype=torch.float64), "eigenvalues"),
])
def test_bad_coupling_names_the_problem(bad, match):
    t_in, w = layer()
    with pytest.raises(ValueError, match=match):
        spike_times(t_in, w, E_PLUS, E_MINUS, coupling=bad)


def test_coupling_needs_the_exact_method():
    t_in, w = layer()
    with pytest.raises(ValueError, match="method='exact'"):
        spike_times(t_in, w, E_PLUS, E_MINUS, method="dstd", steps=10, coupling=capacitances())


def test_ideal_ramp_coupled():
    """The ideal ramp (e_dis None: dv/dt = r for every neuron) moves all membranes alike, so
    the firing phase adds nothing: the coupling acts through the accumulation only."""
    t_in, w = layer()
    k = capacitances()
    got = spike_times(t_in, w, math.inf, -math.inf, coupling=k)
    v = membrane_trace(t_in, w, math.inf, -math.inf, torch.tensor([1.0], dtype=torch.float64), coupling=k)[..., 0]
    torch.testing.assert_close(got, (1 - v).clamp(0, 1), atol=1e-9, rtol=0)
