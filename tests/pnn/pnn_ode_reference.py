"""Independent float64 references for the RC-Spike model: scipy solve_ivp of the ODEs as written in
method.md section 1 (right-hand sides coded directly, no closed forms), tight tolerances."""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

RTOL, ATOL = 1e-11, 1e-13


def _rhs(t_in, w, e_plus, e_minus):
    beta = np.where(w >= 0, 1.0 / e_plus, 1.0 / e_minus)

    def rhs(t, v):
        on = (t_in <= t).astype(float)[:, None]  # H(t - t_j), (n_in, 1)
        return (on * w * (1.0 - beta * v[None, :])).sum(0)

    return rhs


def _breakpoints(t_in, t_stop):
    """Integrate piece by piece between spikes so the solver never steps over a discontinuity."""
    inner = np.unique(t_in[(t_in > 0) & (t_in < t_stop)])
    return np.concatenate([[0.0], inner, [t_stop]])


def ode_membrane(t_in, w, e_plus, e_minus, t_eval):
    """v at times t_eval (sorted, in [0, 1]) for one sample: t_in (n_in,), w (n_in, n_out) -> (n_out, n_times)."""
    rhs = _rhs(t_in, w, e_plus, e_minus)
    v = np.zeros(w.shape[1])
    out = np.empty((w.shape[1], len(t_eval)))
    points = _breakpoints(t_in, 1.0)
    for a, b in zip(points[:-1], points[1:]):
        mask = (t_eval >= a) & (t_eval <= b)
        mid = 0.5 * (a + b)  # the set of active inputs is constant on (a, b)
        sol = solve_ivp(lambda t, y: rhs(mid, y), (a, b), v,
                        method="DOP853", rtol=RTOL, atol=ATOL, dense_output=True)
        if mask.any():
            out[:, mask] = sol.sol(t_eval[mask])
        v = sol.y[:, -1]
    return out


def ode_ttfs(t_in, w, e_plus, e_minus, v_th=1.0):
    """First time each neuron's v reaches v_th during [0, 1] (event-driven), 1 if never: (n_out,)."""
    rhs = _rhs(t_in, w, e_plus, e_minus)
    t_out = np.ones(w.shape[1])
    for i in range(w.shape[1]):
        v = np.zeros(1)
        points = _breakpoints(t_in, 1.0)
        for a, b in zip(points[:-1], points[1:]):
            mid = 0.5 * (a + b)

            def event(t, y):
                return y[0] - v_th

            event.terminal, event.direction = True, 1
            sol = solve_ivp(lambda t, y: rhs(mid, np.full(w.shape[1], y[0]))[i:i + 1], (a, b), v,
                            method="DOP853", rtol=RTOL, atol=ATOL, events=event)
            if sol.t_events[0].size:
                t_out[i] = sol.t_events[0][0]
                break
            v = sol.y[:, -1]
    return t_out


def ode_firing_time(v0, e_dis):
    """Firing phase dv/dt = a (1 - beta_dis v), a = -ln(1 - beta_dis)/beta_dis, from v0: time v hits 1, clipped to [0, 1]."""
    beta = 1.0 / e_dis
    a = -np.log1p(-beta) / beta
    if v0 >= 1:
        return 0.0

    def event(t, y):
        return y[0] - 1.0

    event.terminal = True
    sol = solve_ivp(lambda t, y: a * (1 - beta * y), (0.0, 1.0), [v0], method="DOP853",
                    rtol=RTOL, atol=ATOL, events=event)
    return sol.t_events[0][0] if sol.t_events[0].size else 1.0
