"""Public, validating entry points of the RC-Spike model math (method.md sections 1-2).

Conventions: ``t_in`` (batch, n_in) spike times in [0, 1]; ``w`` (n_in, n_out); results
(batch, n_out) with the dtype and device of the inputs. ``e_plus > 0`` and ``e_minus < 0`` are floats
(``math.inf`` = ideal ANN; E = 100 is the paper's stand-in for it), 0-d tensors (gradients flow to
them) or tensors shaped like ``w`` (one E per synapse: channel-length modulation depends on each
synapse's bias, so its reversal potential does too; only the entry of the synapse's sign is used). Inputs are validated once here and raise ValueError naming the problem and the fix.

The validation of tensor values (finite entries, spike times in [0, 1]) costs a device sync per
check, so it lives only in these public functions. The layers (:mod:`imcpnn.pnn.layers`), whose
settings are checked when the layer is built and whose inputs come from the previous layer, call
the unchecked math (:func:`_membrane_at_end`, :func:`spike_times_unchecked`, :func:`_ttfs_spike_times`)
in the training hot path.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from .coupling import coupled_firing_times, coupled_kick, coupled_membrane, coupled_membrane_trace
from .dstd import dstd_membrane, dstd_ttfs
from .dstd import sample_offset as sample_offset
from .solver import (
    exact_membrane,
    exact_ttfs,
    edge_kick,
    firing_ramp,
    firing_times,
    membrane_from_sorted,
    reversal_beta,
    sorted_drives,
)

METHODS = ("exact", "dstd")


def _check_finite_tensor(name: str, x, ndim: int) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}; wrap it with torch.as_tensor")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor (float32 or float64), got {x.dtype}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values; every entry must be finite")


def _check_times(name: str, t: Tensor, ndim: int) -> None:
    _check_finite_tensor(name, t, ndim)
    if t.numel() and (t.min() < 0 or t.max() > 1):
        raise ValueError(
            f"{name} must lie in [0, 1] (normalized phase window), got range "
            f"[{t.min().item():.4g}, {t.max().item():.4g}]; clip or rescale the spike times"
        )


def _check_reversal(name: str, e, sign: int, w_shape: tuple[int, ...] | None = None) -> None:
    """A float, a 0-d tensor, or (per synapse) a tensor shaped like ``w``; every value of the right
    sign (``math.inf`` allowed), none NaN."""
    if isinstance(e, Tensor) and e.numel() != 1 and (w_shape is None or tuple(e.shape) != tuple(w_shape)):
        per = "" if w_shape is None else f" or a tensor shaped like w {tuple(w_shape)} (one E per synapse)"
        raise ValueError(f"{name} must be a float, a 0-d tensor{per}, got shape {tuple(e.shape)}")
    values = e.detach() if isinstance(e, Tensor) else torch.tensor(float(e))
    if bool(torch.isnan(values).any()) or bool((values * sign <= 0).any()):
        need = "> 0 (excitatory)" if sign > 0 else "< 0 (inhibitory)"
        bad = values[torch.isnan(values) | (values * sign <= 0)].flatten()[0].item()
        raise ValueError(f"{name} must be {need}, got {bad}; use math.inf or 100 for the ideal ANN")


def _check_layer(t_in, w, e_plus, e_minus) -> None:
    _check_times("t_in", t_in, 2)
    _check_finite_tensor("w", w, 2)
    if t_in.shape[1] != w.shape[0]:
        raise ValueError(
            f"shape mismatch: t_in is (batch, n_in) = {tuple(t_in.shape)} but w is (n_in, n_out) = "
            f"{tuple(w.shape)}; w needs {t_in.shape[1]} rows (transpose it if it is (n_out, n_in))"
        )
    if t_in.dtype != w.dtype or t_in.device != w.device:
        raise ValueError(
            f"t_in ({t_in.dtype}, {t_in.device}) and w ({w.dtype}, {w.device}) must share dtype and "
            "device; convert one with .to(other)"
        )
    _check_reversal("e_plus", e_plus, +1, tuple(w.shape))
    _check_reversal("e_minus", e_minus, -1, tuple(w.shape))


def _check_grid(method: str, steps, offset) -> float:
    """Validate method/steps/offset; return the offset as a float (0 when None)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    if method == "exact":
        return 0.0
    if steps is None:
        raise ValueError("method='dstd' needs steps (the grid size M, e.g. steps=10 to train, 30 to test)")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    offset = 0.0 if offset is None else float(offset)
    if not 0 <= offset < 1 / steps:
        raise ValueError(
            f"offset must lie in [0, 1/steps) = [0, {1 / steps:.4g}), got {offset}; "
            "use sample_offset(steps) for a random one"
        )
    return offset


def _check_e_dis(e_dis):
    """Return None for the ideal ramp (None or inf), else e_dis (> 1; a tensor keeps its graph)."""
    if e_dis is None or (not isinstance(e_dis, Tensor) and math.isinf(e_dis) and e_dis > 0):
        return None
    value = float(e_dis.detach()) if isinstance(e_dis, Tensor) else float(e_dis)
    if math.isnan(value) or value <= 1:
        raise ValueError(
            f"e_dis must be > 1 (beta_dis = 1/e_dis < 1, else the ramp never reaches threshold), got "
            f"{value}; pass e_dis=None for the ideal discharge"
        )
    return e_dis if isinstance(e_dis, Tensor) else value


def _checked_layer_and_grid(t_in, w, e_plus, e_minus, method, steps, offset) -> float:
    """Validate a layer call once at entry; return the grid offset (0 when None or exact)."""
    _check_layer(t_in, w, e_plus, e_minus)
    return _check_grid(method, steps, offset)


def membrane_at_end(t_in: Tensor, w: Tensor, e_plus, e_minus, method: str = "exact",
                    steps: int | None = None, offset: float | None = None) -> Tensor:
    """Membrane v(1) at the end of the accumulation phase.

    dv_i/dt = sum_j w_ij (1 - beta_ij v_i) H(t - t_j), v_i(0) = 0, beta = 1/E_plus (w >= 0) or 1/E_minus.

    **Arguments:** t_in (batch, n_in) in [0, 1]; w (n_in, n_out); e_plus > 0, e_minus < 0 (float,
    math.inf, or 0-d tensor); method "exact" (sorted spikes, closed form per interval, cost
    O(batch n_in n_out) memory plus a sort) or "dstd" (grid of ``steps`` intervals, fixed ``offset``
    in [0, 1/steps), None = 0; error O(steps^-2 |E|^-1)); ``steps``/``offset`` are ignored by "exact".
    **Returns:** (batch, n_out), dtype/device of t_in. **Raises:** ValueError on bad input.
    """
    offset = _checked_layer_and_grid(t_in, w, e_plus, e_minus, method, steps, offset)
    return _membrane_at_end(t_in, w, e_plus, e_minus, method, steps, offset)


def _membrane_at_end(t_in: Tensor, w: Tensor, e_plus, e_minus, method: str = "exact",
                     steps: int | None = None, offset: float | None = None) -> Tensor:
    """:func:`membrane_at_end` without input validation (no device sync): for callers whose inputs
    are valid by construction (the layers). ``offset`` None = 0."""
    beta = reversal_beta(w, e_plus, e_minus)
    if method == "exact":
        return exact_membrane(t_in, w, beta)
    return dstd_membrane(t_in, w, beta, int(steps), 0.0 if offset is None else float(offset))


def _check_firing(rate, t_delay, q_plus, q_minus, rate_factor=None) -> None:
    if rate is not None:
        value = float(rate.detach()) if isinstance(rate, Tensor) else float(rate)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"dis_rate must be a finite number > 0 (the discharge rate at v = 0), got {value}")
    for name, x in (("t_delay", t_delay), ("q_plus", q_plus), ("q_minus", q_minus)):
        value = float(x.detach()) if isinstance(x, Tensor) and x.numel() == 1 else x
        if name == "t_delay" and isinstance(value, Tensor):  # one delay per neuron
            bad = ~torch.isfinite(value) | (value.abs() >= 1)
            if bool(bad.any()):
                raise ValueError(f"t_delay must be finite and in (-1, 1), got {value[bad].flatten()[0].item()}")
            continue
        value = float(value)
        if not math.isfinite(value) or (name == "t_delay" and abs(value) >= 1):
            raise ValueError(f"{name} must be finite{' and in (-1, 1)' if name == 't_delay' else ''}, got {value}")
    if rate_factor is not None:
        factor = torch.as_tensor(rate_factor).detach()
        if not bool((torch.isfinite(factor) & (factor > 0)).all()):
            raise ValueError(f"rate_factor must be finite and > 0, got {factor.flatten().tolist()[:5]}")


def _check_coupling(coupling, w, method: str = "exact") -> None:
    """None, or K (n_out, n_out) of w's dtype and device: finite, 1 + K with eigenvalues > 0, only
    with the exact method."""
    if coupling is None:
        return
    n_out = w.shape[1]
    if not isinstance(coupling, Tensor) or tuple(coupling.shape) != (n_out, n_out):
        got = tuple(coupling.shape) if isinstance(coupling, Tensor) else type(coupling).__name__
        raise ValueError(f"coupling must be a tensor (n_out, n_out) = ({n_out}, {n_out}) (the membranes' "
                         f"coupling matrix K), got {got}; pass None for uncoupled neurons")
    if coupling.dtype != w.dtype or coupling.device != w.device:
        raise ValueError(f"coupling ({coupling.dtype}, {coupling.device}) must share w's dtype and device "
                         f"({w.dtype}, {w.device}); convert it with .to(w)")
    if method != "exact":
        raise ValueError("coupling needs method='exact' (the coupled solver integrates the sorted inputs); "
                         "train uncoupled layers with dstd and predict the coupled circuit exactly")
    m = torch.eye(n_out, dtype=w.dtype, device=w.device) + coupling.detach()
    if not bool(torch.isfinite(m).all()) or float(torch.linalg.eigvals(m).real.min()) <= 0:
        raise ValueError("coupling must be finite with 1 + K's eigenvalues > 0 (K_ij = -c_ij / C_i, "
                         "K_ii = sum_j c_ij / C_i: a capacitance matrix); check the capacitances it was built from")


def spike_times(t_in: Tensor, w: Tensor, e_plus, e_minus, method: str = "exact",
                steps: int | None = None, offset: float | None = None, e_dis=None, *,
                dis_rate=None, t_delay=0.0, q_plus=0.0, q_minus=0.0, rate_factor=None,
                coupling=None) -> Tensor:
    """Output spike times (batch, n_out) in [0, 1] of an RC-Spike layer: accumulation then firing.

    t = clip(1 - v(1), 0, 1) for the ideal ramp (e_dis None or inf); with the discharge non-ideality
    (e_dis > 1, beta_dis = 1/e_dis): t = [ln(1 - beta_dis) - ln(1 - beta_dis v0)]/ln(1 - beta_dis),
    clipped. Circuit terms (all off by default, see :func:`imcpnn.pnn.solver.firing_times` and
    :func:`imcpnn.pnn.solver.edge_kick`): ``dis_rate`` the measured discharge rate at v = 0,
    ``t_delay`` the firing-path delay, ``q_plus``/``q_minus`` the membrane step per active
    excitatory/inhibitory synapse at the end of accumulation (v0 = v(1) + kick). ``t_delay`` and
    ``rate_factor`` (a factor on the discharge rate) may differ per neuron: numbers or tensors that
    broadcast against (batch, n_out), e.g. (n_out,) for neurons whose firing paths differ.
    ``coupling`` (None, or K (n_out, n_out), exact method only) couples the layer's membranes
    through their mutual capacitances, in both phases (:mod:`imcpnn.pnn.coupling`).
    Other arguments as :func:`membrane_at_end`.
    """
    e_dis = _check_e_dis(e_dis)
    _check_firing(dis_rate, t_delay, q_plus, q_minus, rate_factor)
    offset = _checked_layer_and_grid(t_in, w, e_plus, e_minus, method, steps, offset)
    _check_coupling(coupling, w, method)
    return spike_times_unchecked(t_in, w, e_plus, e_minus, method, steps, offset, e_dis, dis_rate=dis_rate,
                        t_delay=t_delay, q_plus=q_plus, q_minus=q_minus, rate_factor=rate_factor,
                        coupling=coupling)  # fmt: skip


def spike_times_unchecked(t_in: Tensor, w: Tensor, e_plus, e_minus, method: str = "exact",
                 steps: int | None = None, offset: float | None = None, e_dis=None, *,
                 dis_rate=None, t_delay=0.0, q_plus=0.0, q_minus=0.0, threshold_shift=None,
                 rate_factor=None, coupling=None, silent_gradient: bool = False) -> Tensor:
    """:func:`spike_times` without input validation (no device sync): for the layers, whose
    settings were checked when built. ``e_dis`` must already be None (ideal ramp) or > 1.
    ``threshold_shift`` and ``rate_factor`` (None, or per neuron (n_out,)) are a chip's threshold
    and discharger errors, see :func:`imcpnn.pnn.solver.firing_times` and
    :func:`imcpnn.pnn.variation.chip_spike_times`. ``coupling`` (exact method, no threshold
    shift) solves the coupled membranes (:mod:`imcpnn.pnn.coupling`). ``silent_gradient`` (uncoupled
    only): past the window end, the gradient that lowers t passes (:func:`imcpnn.pnn.solver.to_window`)."""
    if coupling is not None:
        if threshold_shift is not None:
            raise ValueError("a threshold shift (a chip's variation) is not modelled on coupled membranes")
        v_end = coupled_membrane(t_in, w, reversal_beta(w, e_plus, e_minus), coupling)
        v_end = v_end + coupled_kick(t_in, w, q_plus, q_minus, coupling)
        return coupled_firing_times(v_end, coupling, e_dis, dis_rate, t_delay, rate_factor)
    v_end = _membrane_at_end(t_in, w, e_plus, e_minus, method, steps, offset)
    if not (isinstance(q_plus, (int, float)) and isinstance(q_minus, (int, float)) and q_plus == q_minus == 0):
        v_end = v_end + edge_kick(t_in, w, q_plus, q_minus)
    return firing_times(v_end, e_dis, dis_rate, t_delay, threshold_shift=threshold_shift, rate_factor=rate_factor,
                        silent_gradient=silent_gradient)


def membrane_trace(t_in: Tensor, w: Tensor, e_plus, e_minus, t_eval: Tensor, *, coupling=None) -> Tensor:
    """Exact accumulation-phase membrane v(t) at the times ``t_eval`` (n_times,) in [0, 1].

    **Returns:** (batch, n_out, n_times); differentiable w.r.t. t_in, w and tensor E values (for
    fitting E_plus, E_minus to a measured trace). Sorts once, then one closed-form pass per time;
    with ``coupling`` (K, as :func:`spike_times`) one coupled pass over the inputs and the times.
    """
    _check_layer(t_in, w, e_plus, e_minus)
    _check_times("t_eval", t_eval, 1)
    _check_coupling(coupling, w)
    t_eval = t_eval.to(dtype=t_in.dtype, device=t_in.device)
    beta = reversal_beta(w, e_plus, e_minus)
    if coupling is not None:
        return coupled_membrane_trace(t_in, w, beta, coupling, t_eval)
    drives = sorted_drives(t_in, w, beta)
    return torch.stack([membrane_from_sorted(*drives, t) for t in t_eval], dim=-1)


def firing_trace(v_end: Tensor, t_eval: Tensor, e_dis=None) -> Tensor:
    """Firing-phase ramp v(t), t in [0, 1] (shifted window), rising from v_end towards threshold 1.

    Ideal: v = v_end + t; with e_dis > 1: v = e_dis + (v_end - e_dis) exp(ln(1 - 1/e_dis) t).
    Not clipped at threshold: the neuron fires where the ramp crosses 1.
    **Arguments:** v_end (batch, n_out); t_eval (n_times,). **Returns:** (batch, n_out, n_times).
    """
    _check_finite_tensor("v_end", v_end, 2)
    _check_times("t_eval", t_eval, 1)
    return firing_ramp(v_end, t_eval.to(dtype=v_end.dtype, device=v_end.device), _check_e_dis(e_dis))


def ttfs_spike_times(t_in: Tensor, w: Tensor, e_plus, e_minus, method: str = "exact",
                     steps: int | None = None, offset: float | None = None) -> Tensor:
    """TTFS variant: first time v reaches V_th = 1 during accumulation (no firing phase).

    "exact" loops over the sorted inputs (O(n_in) vectorized steps); "dstd" over the ``steps`` grid
    intervals (same grid and drives as :func:`membrane_at_end`). The crossing time inside an interval
    is closed form, so gradients flow through it. **Returns:** (batch, n_out); neurons that never
    reach threshold get t = 1.
    """
    offset = _checked_layer_and_grid(t_in, w, e_plus, e_minus, method, steps, offset)
    return _ttfs_spike_times(t_in, w, e_plus, e_minus, method, steps, offset)


def _ttfs_spike_times(t_in: Tensor, w: Tensor, e_plus, e_minus, method: str = "exact",
                      steps: int | None = None, offset: float | None = None) -> Tensor:
    """:func:`ttfs_spike_times` without input validation (no device sync)."""
    beta = reversal_beta(w, e_plus, e_minus)
    if method == "exact":
        return exact_ttfs(t_in, w, beta)
    return dstd_ttfs(t_in, w, beta, int(steps), 0.0 if offset is None else float(offset))
