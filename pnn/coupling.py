"""Capacitively coupled membranes: the neurons of a layer that see each other's membranes.

In a laid-out array the membrane wires of neighbouring neurons run side by side, so a mutual
capacitance c_ij joins membranes i and j. With C_i the capacitance of membrane i to everything
else, charge conservation gives C_i dv_i/dt + sum_j c_ij (dv_i/dt - dv_j/dt) = I_i, i.e.

    M dv/dt = u'(t, v),   M = 1 + K,   K_ij = -c_ij / C_i (i != j),   K_ii = sum_j c_ij / C_i,

where u'(t, v) is the uncoupled right-hand side of every neuron (the model of :mod:`solver`: the
synapses' drives in accumulation, the discharger in the firing phase). A neuron whose neighbour
moves further than itself is dragged along by about c_ij / C_i of the difference; the firing
ramp, faster for a membrane further from threshold (the discharger's own reversal potential),
drags the other way. ``coupling`` below is K (n_out, n_out); its rows sum to 0.

Both phases are linear in v with drives that are constant between events, so the coupled
solution is exact: one (n_out + 1)-square matrix exponential per interval (the affine system
[v; 1]' = [[-A, b], [0, 0]] [v; 1], which needs no inverse of A where a drive is 0). The cost is
O(batch n_in n_out^3) in accumulation: meant for the layers of the small post-layout networks
whose coupling is extracted, not for training wide layers (their layers are uncoupled).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .solver import edge_kick, sorted_drives

#: Points of the firing phase's first coarse crossing search, over [0, FIRING_SPAN].
FIRING_GRID = 256
#: The firing search runs to this time (units of the phase): far enough that a crossing after
#: the window (a spike clipped to t = 1) is still found, for any t_delay in (-1, 1).
FIRING_SPAN = 2.0
#: Newton steps that refine each crossing from the coarse grid's linear interpolation.
NEWTON_STEPS = 3


def _affine_step(a: Tensor, b: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """exp([[-a, b], [0, 0]] d) split into (Phi, psi): v(d) = Phi v(0) + psi for v' = b - a v.

    a (..., n, n), b (..., n), d (...) -> Phi (..., n, n), psi (..., n)."""
    n = a.shape[-1]
    top = torch.cat([-a, b.unsqueeze(-1)], dim=-1) * d[..., None, None]
    z = torch.cat([top, torch.zeros_like(top[..., :1, :])], dim=-2)
    e = torch.linalg.matrix_exp(z)
    return e[..., :n, :n], e[..., :n, n]


def coupled_membrane(t_in: Tensor, w: Tensor, beta: Tensor, coupling: Tensor, t_end=1.0) -> Tensor:
    """Membrane v(t_end) of coupled neurons: M dv/dt = g(t) - f(t) v (f, g: :mod:`solver`'s drives).

    Between consecutive sorted inputs of a sample f and g are constant, so each interval of
    length d maps v -> Phi v + psi with the matrix exponential of [[-M^-1 diag(f), M^-1 g], [0, 0]] d
    (:func:`coupled_membrane_trace` at the one time t_end).
    Shapes: t_in (batch, n_in), w and beta (n_in, n_out), coupling K (n_out, n_out) -> (batch, n_out).
    With K = 0 it equals :func:`imcpnn.pnn.solver.exact_membrane`.
    """
    t_end = torch.as_tensor(t_end, dtype=t_in.dtype, device=t_in.device).reshape(1)
    return coupled_membrane_trace(t_in, w, beta, coupling, t_end)[..., 0]


def coupled_membrane_trace(t_in: Tensor, w: Tensor, beta: Tensor, coupling: Tensor, t_eval: Tensor) -> Tensor:
    """The coupled membrane (:func:`coupled_membrane`) at every time of ``t_eval`` (n_times,) in one
    pass: the inputs and the times, merged and sorted per sample, are the breakpoints of the
    piecewise-constant drive.
    Shapes: t_in (batch, n_in), w and beta (n_in, n_out), coupling (n_out, n_out) ->
    (batch, n_out, n_times)."""
    t_sorted, f_cum, g_cum = sorted_drives(t_in, w, beta)
    batch, n_in = t_sorted.shape
    n = w.shape[1]
    m_inv = torch.linalg.inv(torch.eye(n, dtype=w.dtype, device=w.device) + coupling)
    points = torch.cat([t_sorted, t_eval.expand(batch, len(t_eval))], dim=1)
    order = torch.argsort(points, dim=1, stable=True)  # an input before a time at the same instant
    times = points.gather(1, order)
    seen = torch.cumsum((order < n_in).long(), dim=1)  # inputs at or before each breakpoint
    zero = torch.zeros(batch, 1, n, dtype=w.dtype, device=w.device)
    f_all, g_all = torch.cat([zero, f_cum], dim=1), torch.cat([zero, g_cum], dim=1)  # index = inputs seen
    v = torch.zeros(batch, n, dtype=w.dtype, device=w.device)
    previous, active, states = torch.zeros_like(times[:, 0]), torch.zeros_like(seen[:, 0]), []
    rows = torch.arange(batch, device=w.device)
    for p in range(points.shape[1]):
        f, g = f_all[rows, active], g_all[rows, active]
        phi, psi = _affine_step(m_inv * f[:, None, :], g @ m_inv.T, times[:, p] - previous)
        v = (phi @ v.unsqueeze(-1)).squeeze(-1) + psi
        states.append(v)
        previous, active = times[:, p], seen[:, p]
    slots = torch.argsort(order, dim=1)[:, n_in:]  # where each time of t_eval sits among the breakpoints
    return torch.stack(states, dim=1).gather(1, slots.unsqueeze(-1).expand(-1, -1, n)).transpose(1, 2)


def coupled_kick(t_in: Tensor, w: Tensor, q_plus, q_minus, coupling: Tensor) -> Tensor:
    """The end-of-accumulation kick (:func:`imcpnn.pnn.solver.edge_kick`) shared over the coupled
    membranes: the steps are charges, so the membranes move by M^-1 kick. (batch, n_out)."""
    m = torch.eye(w.shape[1], dtype=w.dtype, device=w.device) + coupling
    return torch.linalg.solve(m, edge_kick(t_in, w, q_plus, q_minus).T).T


def coupled_firing_times(v_end: Tensor, coupling: Tensor, e_dis=None, rate=None, t_delay=0.0,
                         rate_factor=None) -> Tensor:
    """Firing phase of coupled neurons: first time each v_i reaches threshold 1, plus t_delay.

    M dv/dt = R (1 - beta_dis v), R = diag(r rate_factor) (r: ``rate``, or the design rate as in
    :func:`imcpnn.pnn.solver.firing_times`; beta_dis = 1/e_dis, 0 for the ideal ramp), a constant
    linear system: v(t) = Phi(t) v_end + psi(t). Each neuron's first crossing is bracketed on
    :data:`FIRING_GRID` points of [0, :data:`FIRING_SPAN`], then refined by :data:`NEWTON_STEPS`
    Newton steps from the bracket's linear interpolation; the last step keeps the graph, so the
    time is differentiable in v_end, e_dis and rate (the implicit-function derivative). A
    membrane at or past threshold at the start fires at once; a membrane that does not cross
    gives t = 1. t = min(max(t_c, 0) + t_delay, 1), as uncoupled.
    **Arguments:** v_end (batch, n_out); coupling K (n_out, n_out); rate_factor None or (n_out,).
    **Returns:** (batch, n_out).
    """
    n = v_end.shape[1]
    dtype, device = v_end.dtype, v_end.device
    if e_dis is None:
        beta_dis, r = torch.zeros((), dtype=dtype, device=device), 1.0 if rate is None else rate
    else:
        beta_dis = 1.0 / torch.as_tensor(e_dis, dtype=dtype, device=device)
        r = -torch.log1p(-beta_dis) / beta_dis if rate is None else rate
    r = torch.as_tensor(r, dtype=dtype, device=device) * (
        torch.ones(n, dtype=dtype, device=device) if rate_factor is None
        else torch.as_tensor(rate_factor, dtype=dtype, device=device))
    m_inv = torch.linalg.inv(torch.eye(n, dtype=dtype, device=device) + coupling)
    b = m_inv @ r  # M^-1 R 1
    a = m_inv * (r * beta_dis)  # M^-1 R beta_dis
    grid = torch.linspace(0.0, FIRING_SPAN, FIRING_GRID + 1, dtype=dtype, device=device)
    with torch.no_grad():
        phi, psi = _affine_step(a.expand(len(grid), n, n), b.expand(len(grid), n), grid)
        v = torch.einsum("kij,bj->bki", phi, v_end) + psi  # (batch, grid, n)
        above = v >= 1
        crossed = above.any(dim=1)
        first = above.to(torch.int8).argmax(dim=1).clamp(min=1)  # (batch, n); 0 = at once
        at_once = above[:, 0, :]
        lo, hi = grid[first - 1], grid[first]
        v_lo = v.gather(1, (first - 1).unsqueeze(1)).squeeze(1)
        v_hi = v.gather(1, first.unsqueeze(1)).squeeze(1)
        t = lo + (hi - lo) * ((1 - v_lo) / (v_hi - v_lo).clamp(min=1e-300))
    rows = torch.arange(n, device=device)
    for step in range(NEWTON_STEPS):
        last = step == NEWTON_STEPS - 1
        with torch.set_grad_enabled(last and torch.is_grad_enabled()):
            phi, psi = _affine_step(a.expand(*t.shape, n, n), b.expand(*t.shape, n), t.detach())
            v_t = torch.einsum("bkij,bj->bki", phi, v_end) + psi  # (batch, n, n): row k at t[:, k]
            v_own = v_t[:, rows, rows]
            slope = (b - torch.einsum("ij,bkj->bki", a, v_t))[:, rows, rows]
            live = crossed & ~at_once  # the others keep a finite t (masked below), NaN-free gradients
            t = t.detach() - torch.where(live, v_own - 1, 0.0) / torch.where(live, slope, 1.0)
    t_cross = torch.where(at_once, torch.zeros_like(t), t)
    spike = (t_cross.clamp(min=0) + t_delay).clamp(0, 1)
    return torch.where(crossed | at_once, spike, torch.ones_like(spike))
