"""Exact solver of the RC-Spike neuron with reversal potentials (method.md section 1).

Accumulation phase, t in [0, 1], membrane v_i(0) = 0:

    dv_i/dt = -f_i(t) v_i + g_i(t),   f_i = sum_j beta_ij w_ij H(t - t_j) >= 0,   g_i = sum_j w_ij H(t - t_j)
    beta_ij = 1/E_plus if w_ij >= 0 else 1/E_minus

Between consecutive sorted input spikes f and g are constant, so each interval of length d has the
closed form v_end = v_start exp(-f d) + g d h(f d) with h(x) = (1 - exp(-x))/x (h(0) = 1: the f -> 0
limit is the plain integral g d, evaluated by a series near 0, never by g/f). These functions take
already validated tensors; the public, validating entry points are in ``_api.py``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_SERIES_BELOW = 1e-3  # |x| below which the Taylor series is used (error x^4/120 < 1e-14)


def relax_factor(x: Tensor) -> Tensor:
    """h(x) = (1 - exp(-x)) / x for x >= 0, with h(0) = 1.

    Series 1 - x/2 + x^2/6 - x^3/24 below 1e-3 so that neither the value nor its gradient divides
    by a vanishing x (f exactly 0 and tiny f are both smooth).
    """
    x_safe = x.clamp(min=_SERIES_BELOW)  # the unused branch stays finite, so where's gradient does too
    series = 1 - x * (0.5 - x * (1.0 / 6 - x / 24))
    return torch.where(x < _SERIES_BELOW, series, -torch.expm1(-x_safe) / x_safe)


def log_ratio_factor(y: Tensor) -> Tensor:
    """l(y) = log(1 + y) / y for y >= 0, with l(0) = 1 (series to y^4/5 near 0, error < y^5/6)."""
    y_safe = y.clamp(min=_SERIES_BELOW)
    series = 1 - y * (0.5 - y * (1.0 / 3 - y * (0.25 - y / 5)))
    return torch.where(y < _SERIES_BELOW, series, torch.log1p(y_safe) / y_safe)


def reversal_beta(w: Tensor, e_plus, e_minus) -> Tensor:
    """beta_ij = 1/E_plus where w_ij >= 0, else 1/E_minus; shape (n_in, n_out).

    E values may be floats (``math.inf`` gives beta = 0, the ideal ANN) or 0-d tensors (gradients flow).
    """
    e_plus = torch.as_tensor(e_plus, dtype=w.dtype, device=w.device)
    e_minus = torch.as_tensor(e_minus, dtype=w.dtype, device=w.device)
    return torch.where(w >= 0, 1.0 / e_plus, 1.0 / e_minus)


def integrate_intervals(f: Tensor, g: Tensor, durations: Tensor) -> Tensor:
    """Membrane at the end of K consecutive intervals with constant f, g, starting from v = 0.

    v_end = sum_k g_k d_k h(f_k d_k) exp(-sum_{q>k} f_q d_q)     (exponential integrator, exact)

    **Arguments:** f, g (batch, K, n_out); durations d (batch or 1, K, 1), all >= 0.
    **Returns:** (batch, n_out). Shared by the exact solver (intervals between sorted spikes) and DSTD
    (grid intervals), so both use the same closed form.
    """
    decay = f * durations
    charge = g * durations * relax_factor(decay)
    # exclusive suffix sum by a reversed cumsum: exact, unlike (total - prefix) in float32
    suffix = torch.flip(torch.cumsum(torch.flip(decay, (-2,)), -2), (-2,)) - decay
    return (charge * torch.exp(-suffix)).sum(-2)


def sorted_drives(t_in: Tensor, w: Tensor, beta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Sort the input spikes and accumulate the drives.

    **Returns:** t_sorted (batch, n_in); F, G (batch, n_in, n_out): f and g on the interval that
    starts at the k-th earliest spike (cumulative sums of beta*w and w over the spikes so far).
    Memory O(batch n_in n_out).
    """
    t_sorted, order = torch.sort(t_in, dim=1)
    f_cum = torch.cumsum((beta * w)[order], dim=1)
    g_cum = torch.cumsum(w[order], dim=1)
    return t_sorted, f_cum, g_cum


def membrane_from_sorted(t_sorted: Tensor, f_cum: Tensor, g_cum: Tensor, t_end) -> Tensor:
    """Exact v(t_end), t_end in [0, 1], from :func:`sorted_drives`; shape (batch, n_out).

    Interval k runs from t_(k) to t_(k+1) (t_(n_in+1) = t_end), each truncated at t_end.
    """
    t_end = torch.as_tensor(t_end, dtype=t_sorted.dtype, device=t_sorted.device)
    stops = torch.cat([t_sorted[:, 1:], t_end.expand(t_sorted.shape[0], 1)], dim=1)
    durations = (torch.minimum(stops, t_end) - torch.minimum(t_sorted, t_end)).clamp(min=0)
    return integrate_intervals(f_cum, g_cum, durations.unsqueeze(-1))


def exact_membrane(t_in: Tensor, w: Tensor, beta: Tensor) -> Tensor:
    """Exact v(1): (batch, n_in), (n_in, n_out), (n_in, n_out) -> (batch, n_out). Cost O(batch n_in n_out)."""
    return membrane_from_sorted(*sorted_drives(t_in, w, beta), 1.0)


def _discharge_rate(beta_dis):
    """-ln(1 - beta_dis): the decay constant a*beta_dis of the firing ramp (v reaches 1 at t = 1 from v = 0).

    A 0-d tensor beta_dis keeps its graph, so E_dis can be fitted by autograd."""
    if isinstance(beta_dis, Tensor):
        return -torch.log1p(-beta_dis)
    return -math.log1p(-beta_dis)


class _ReviveSilent(torch.autograd.Function):
    """clip(t, 0, 1) whose backward passes, where t > 1, only the gradient that moves t down."""

    @staticmethod
    def forward(ctx, t):
        ctx.save_for_backward(t)
        return t.clamp(0, 1)

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        inside = (t >= 0) & (t <= 1)
        return torch.where(inside | ((t > 1) & (grad > 0)), grad, torch.zeros_like(grad))


def to_window(t: Tensor, silent_gradient: bool = False) -> Tensor:
    """clip(t, 0, 1): a spike time inside the phase window, t = 1 for a neuron that stays silent.

    ``silent_gradient``: the same values, but where t > 1 (a silent neuron, t its unclipped ramp
    crossing) the backward pass lets through the gradient that would make it fire earlier
    (dL/dt > 0, so that descent lowers t), and only that one: a one-sided straight-through
    estimator. Why: with the plain clip a neuron silent on every sample gets no gradient at all
    and stays silent for good (a dead output neuron is a class never predicted); a two-sided
    straight-through gradient would also push silent neurons deeper into silence, where nothing
    in the forward pass changes, and they drift off for good (measured: most of a first hidden
    layer). Shapes: any.
    """
    if not silent_gradient:
        return t.clamp(0, 1)
    return _ReviveSilent.apply(t)


def firing_times(v_end: Tensor, e_dis=None, rate=None, t_delay=0.0, *, threshold_shift=None,
                 rate_factor=None, silent_gradient: bool = False) -> Tensor:
    """Firing phase (shifted to [0, 1]): time at which the ramp starting at v(1) reaches threshold.

    The discharger moves the membrane at dv/dt = r (1 - beta_dis v), beta_dis = 1/e_dis (0 for the
    ideal ramp, e_dis None), towards the threshold theta = 1 + d (d = ``threshold_shift``, 0 by
    default: V_th = 1). Crossing time from v0 = min(v(1), theta) (v0 >= theta fires at once):

        ideal:    t_c = (theta - v0) / r
        e_dis:    t_c = [ln(1 - beta_dis v0) - ln(1 - beta_dis theta)] / (beta_dis r)
                      = [k + ln(1 - beta_dis v0) - ln(1 - beta_dis d / (1 - beta_dis))] / (beta_dis r)

    with k = -ln(1 - beta_dis); the second form is what is computed, so d = 0 gives the nominal
    result bit for bit. For the ideal ramp the shift is exactly the membrane shift v(1) -> v(1) - d.
    With e_dis a threshold at or above the ramp's asymptote (theta >= e_dis) is never reached: the
    neuron gives t = 1, like a neuron that never fires inside the window.

    ``rate`` None is the design that reaches threshold 1 from v = 0 in exactly one window
    (r = 1 ideal, r = -ln(1 - beta_dis)/beta_dis with e_dis); a number is the measured rate at
    v = 0 (the discharger's current at V0 over the unit current C_eff V_th_circ / T).
    ``rate_factor`` (1 + eps) scales that rate per neuron (a mismatched discharger). The spike
    comes ``t_delay`` after the crossing (the firing path): t = min(max(t_c, 0) + t_delay, 1).
    ``silent_gradient``: past the window end, the gradient that lowers t passes (:func:`to_window`).

    **Arguments:** v_end (batch, n_out); threshold_shift d and rate_factor: None, or numbers or
    tensors that broadcast against v_end, e.g. one value per neuron (n_out,).
    **Returns:** (batch, n_out).
    """
    if threshold_shift is None:
        v0 = v_end.clamp(max=1)
    else:
        threshold_shift = torch.as_tensor(threshold_shift, dtype=v_end.dtype, device=v_end.device)
        theta = 1 + threshold_shift
        v0 = torch.minimum(v_end, theta)
    if e_dis is None:
        r = 1.0 if rate is None else rate
        if rate_factor is not None:
            r = r * rate_factor
        t_cross = (1 - v0 if threshold_shift is None else theta - v0) / r
        return to_window(t_cross.clamp(min=0) + t_delay, silent_gradient)
    beta_dis = 1.0 / e_dis
    k = _discharge_rate(beta_dis)  # -ln(1 - beta_dis) > 0
    beta_rate = k if rate is None else beta_dis * rate
    if rate_factor is not None:
        beta_rate = beta_rate * rate_factor
    if threshold_shift is None:
        t_cross = (k + torch.log1p(-beta_dis * v0)) / beta_rate
        return to_window(t_cross.clamp(min=0) + t_delay, silent_gradient)
    y = beta_dis * threshold_shift / (1 - beta_dis)  # 1 - beta_dis theta = (1 - beta_dis)(1 - y)
    reached = y < 1
    # unreached neurons compute on safe values, so neither the value nor the gradient is NaN
    y_safe = torch.where(reached, y, torch.zeros_like(y))
    v0_safe = torch.where(reached, v0, torch.zeros_like(v0))
    t_cross = (k + torch.log1p(-beta_dis * v0_safe) - torch.log1p(-y_safe)) / beta_rate
    t = to_window(t_cross.clamp(min=0) + t_delay, silent_gradient)
    return torch.where(reached, t, torch.ones_like(t))


def edge_kick(t_in: Tensor, w: Tensor, q_plus, q_minus) -> Tensor:
    """Membrane step at the end of accumulation from the synapses whose input spiked (t_j < 1).

    When an input line falls at the end of the phase its selector opens and the current source's
    internal node recharges from the membrane (charge sharing), one step per active synapse:
    kick_i = sum_j [t_j < 1] (q_plus [w_ij > 0] + q_minus [w_ij < 0]) (normalized membrane units).
    Shapes: t_in (batch, n_in), w (n_in, n_out) -> (batch, n_out).
    """
    active = (t_in < 1).to(w.dtype)
    per_synapse = torch.where(w > 0, torch.as_tensor(q_plus, dtype=w.dtype, device=w.device),
                              torch.where(w < 0, torch.as_tensor(q_minus, dtype=w.dtype, device=w.device),
                                          torch.zeros((), dtype=w.dtype, device=w.device)))
    return active @ per_synapse


def firing_ramp(v_end: Tensor, t_eval: Tensor, e_dis=None) -> Tensor:
    """Firing-phase membrane v(t) for t in [0, 1] (shifted), before any clipping at threshold.

    Ideal: v = v0 + t. With e_dis: v = 1/beta_dis + (v0 - 1/beta_dis) exp(-k t), k = -ln(1 - beta_dis).
    **Arguments:** v_end (batch, n_out); t_eval (n_times,). **Returns:** (batch, n_out, n_times).
    """
    v0 = v_end.unsqueeze(-1)
    if e_dis is None:
        return v0 + t_eval
    return e_dis + (v0 - e_dis) * torch.exp(-_discharge_rate(1.0 / e_dis) * t_eval)


def first_crossing(starts: Tensor, durations: Tensor, f: Tensor, g: Tensor, v_th: float = 1.0) -> Tensor:
    """First time v reaches v_th over K consecutive intervals with constant f, g (v = 0 at the start).

    Inside interval k (start t_k, membrane v_s < v_th) v moves monotonically towards g/f, so it
    crosses iff the interval's end value is >= v_th, at
    t_k + (1/f) ln[(g - f v_s)/(g - f v_th)] = t_k + u/(g - f v_th) * l(f u/(g - f v_th)),
    u = v_th - v_s, l(y) = log(1+y)/y (the f -> 0 limit u/g is l = 1). No crossing gives t = 1.
    **Arguments:** starts, durations (batch or 1, K); f, g (batch, K, n_out). **Returns:** (batch, n_out).
    Loops over the K intervals on (batch, n_out) tensors; shared by exact and DSTD TTFS.
    """
    v = torch.zeros_like(f[:, 0])
    t_out = torch.ones_like(v)
    fired = torch.zeros_like(v, dtype=torch.bool)
    for k in range(f.shape[1]):
        f_k, g_k, d = f[:, k], g[:, k], durations[:, k : k + 1]
        v_next = v * torch.exp(-f_k * d) + g_k * d * relax_factor(f_k * d)
        crossing = ~fired & (v_next >= v_th)
        excess = torch.where(crossing, (g_k - f_k * v_th).clamp(min=torch.finfo(v.dtype).tiny), torch.ones_like(g_k))
        u = torch.where(crossing, v_th - v, torch.zeros_like(v))
        tau = u / excess * log_ratio_factor(f_k * u / excess)
        t_out = torch.where(crossing, starts[:, k : k + 1] + tau, t_out)
        fired = fired | crossing
        v = v_next
    return t_out


def exact_ttfs(t_in: Tensor, w: Tensor, beta: Tensor, v_th: float = 1.0) -> Tensor:
    """TTFS variant, exact: :func:`first_crossing` over the intervals between sorted input spikes.

    (batch, n_in), (n_in, n_out), (n_in, n_out) -> (batch, n_out); O(n_in) steps on (batch, n_out).
    """
    t_sorted, f_cum, g_cum = sorted_drives(t_in, w, beta)
    stops = torch.cat([t_sorted[:, 1:], torch.ones_like(t_sorted[:, :1])], dim=1)
    return first_crossing(t_sorted, stops - t_sorted, f_cum, g_cum, v_th)
