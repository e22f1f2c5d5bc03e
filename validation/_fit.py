"""Trace fitting: the model's physical parameters from transient waveforms, with uncertainties.

The DC characterization derives E_plus, E_minus, E_dis from lambda at one operating point. Here the
same parameters are fitted to *transient* traces (membrane waveforms and spike times of a layer
testbench) by weighted least squares through the differentiable exact model of :mod:`imcpnn.pnn`.

Model of a trace set (one layer, inputs t_in (batch, n_in), nominal weights w (n_in, n_out)):

    v(t)        = membrane_trace(t_in, s w, E_plus, E_minus, t)         normalized, accumulation
    V_pred(t)   = V0 - V_th_circ v(t)                                   volts (polarity inverted)
    t_pred      = spike_times(t_in, s w, E_plus, E_minus, e_dis=E_dis)  normalized firing time

Several trace sets (e.g. every layer of a network, each with its own inputs and weights) pool
their residuals: one parameter set explains them all.

s is the effective current scale (true w / nominal w = C_nom V_th_nom / (C_m V_th_circ), so it
absorbs C_m and parasitics). The membrane alone cannot separate (V_th, s, E): (c V_th, s/c, E/c)
gives the same V(t); the spike times break that degeneracy, so fit both (or fix V_th_circ).

Residuals r = [(V_pred - V_spice) / sigma_v, (t_pred - t_spice) / sigma_t] (spike terms only for
neurons that spiked inside their window). Solver: scipy ``least_squares`` (trust region,
bounded), Jacobian from torch autograd (one double-backward jvp per parameter, float64).
Uncertainty at the optimum: covariance = s^2 (J^T J)^-1 with s^2 = sum(r^2) / (n - k), the usual
Gauss-Newton estimate (valid when residuals are independent and the model is locally linear).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.optimize import least_squares

from imcpnn.circuits.netlist.operating_point import DESIGN_POINT
from imcpnn.config import is_real, require

#: Fit parameters, their order in vectors, and their bounds (lower, upper).
PARAMETER_NAMES = ("e_plus", "e_minus", "e_dis", "current_scale", "v_th_circ_v", "dis_rate", "t_delay",
                   "q_plus", "q_minus")
_BOUNDS = {"e_plus": (0.05, 1e4), "e_minus": (-1e4, -0.05), "e_dis": (1.001, 1e4),
           "current_scale": (1e-3, 1e3), "v_th_circ_v": (1e-3, 1.8), "dis_rate": (0.05, 20.0),
           "t_delay": (-0.9, 0.9), "q_plus": (-0.5, 0.5), "q_minus": (-0.5, 0.5)}
#: Which residuals a fit uses: membrane traces, spike times, or both.
RESIDUALS = ("both", "membrane", "spikes")


@dataclass(frozen=True)
class PhysicalParameters:
    """What the model needs from the circuit, in the units of the method's section 5 (Sakemi et al., arXiv 2412.09010)."""

    e_plus: float
    """Excitatory reversal potential E_plus = 1 / (V_th_circ lambda_N), normalized, > 0."""
    e_minus: float
    """Inhibitory reversal potential E_minus = -1 / (V_th_circ lambda_P), normalized, < 0."""
    e_dis: float
    """Discharger reversal potential E_dis = 1 / (V_th_circ lambda_dis), normalized, > 1."""
    current_scale: float = 1.0
    """True weight / nominal weight (absorbs C_m and parasitic capacitance), > 0."""
    v_th_circ_v: float = 0.87
    """Circuit threshold V0 - V_switch (V), > 0."""
    dis_rate: float = 1.0
    """Discharge rate at v = 0 with the discharger at its design current: C_m / C_eff when the
    discharger draws its tabulated current (normalized units per window)."""
    t_delay: float = 0.0
    """Firing-path delay from the membrane crossing to the output edge (normalized)."""
    q_plus: float = 0.0
    """Membrane step per active excitatory synapse at the end of accumulation (normalized)."""
    q_minus: float = 0.0
    """Membrane step per active inhibitory synapse at the end of accumulation (normalized)."""

    def __post_init__(self):
        for name in PARAMETER_NAMES:
            low, high = _BOUNDS[name]
            value = getattr(self, name)
            require(self, name, value, is_real(value) and low <= value <= high, f"[{low}, {high}]")

    def vector(self) -> np.ndarray:
        """The values in :data:`PARAMETER_NAMES` order (the fit's parameter vector)."""
        return np.array([getattr(self, n) for n in PARAMETER_NAMES], dtype=float)


@dataclass(frozen=True)
class TraceSet:
    """Transient traces of one layer testbench (SPICE, or synthetic for tests).

    Shapes: t_in (batch, n_in) and t_eval (n_times,) normalized to the phase window; w (n_in, n_out)
    nominal weights; v_membrane_v (batch, n_out, n_times) in volts; t_spike and spiked
    (batch, n_out), t_spike normalized to the firing window; v_reset_v the membrane's reset
    voltage V0 (V) the traces start from (the design operating point's by default);
    e_shape_plus and e_shape_minus (n_in, n_out) the bias dependence of each synapse's E relative
    to the fitted scalar (E_plus of synapse (i, j) = e_plus * e_shape_plus[i, j]; None: 1, one E
    for every synapse; see :func:`imcpnn.validation._pipeline.reversal_shapes`); delay_offset and
    c_factor (n_out,) each neuron's own firing-delay offset and capacitance factor against the
    layer's mean (None: 0 and 1; see :func:`imcpnn.validation._pipeline.stage_neurons`): neuron
    j's column of charge and its discharge rate scale by c_factor[j], its delay is t_delay +
    delay_offset[j], so the fitted terms are the layer's mean ones; dq_driven (dq_plus,
    dq_minus) what a layer fed by neurons adds to the fitted kick (None: 0, a layer fed by the
    encoder; see :func:`imcpnn.validation._pipeline.stage_driven_kick`), so the fitted kick is
    the encoder-driven one; coupling (n_out, n_out) the layer's membrane coupling K (None: the
    neurons are independent; see :mod:`imcpnn.pnn.coupling`), so the fitted terms are those of
    a neuron apart from its neighbours.
    """

    t_in: np.ndarray
    w: np.ndarray
    t_eval: np.ndarray
    v_membrane_v: np.ndarray
    t_spike: np.ndarray
    spiked: np.ndarray
    v_reset_v: float = DESIGN_POINT.v0_v
    e_shape_plus: np.ndarray | None = None
    e_shape_minus: np.ndarray | None = None
    delay_offset: np.ndarray | None = None
    c_factor: np.ndarray | None = None
    dq_driven: tuple | None = None
    coupling: np.ndarray | None = None

    def __post_init__(self):
        batch, n_in = np.shape(self.t_in)
        n_out = np.shape(self.w)[1]
        expected = {"w": (n_in, n_out), "t_eval": (len(self.t_eval),),
                    "v_membrane_v": (batch, n_out, len(self.t_eval)),
                    "t_spike": (batch, n_out), "spiked": (batch, n_out),
                    "e_shape_plus": (n_in, n_out), "e_shape_minus": (n_in, n_out),
                    "delay_offset": (n_out,), "c_factor": (n_out,), "coupling": (n_out, n_out)}
        for name, shape in expected.items():
            if getattr(self, name) is None and name in ("e_shape_plus", "e_shape_minus", "delay_offset", "c_factor",
                                                        "coupling"):
                continue
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"TraceSet.{name} has shape {np.shape(getattr(self, name))}, "
                                 f"expected {shape} from t_in {np.shape(self.t_in)} and w")


@dataclass(frozen=True)
class FitResult:
    """Fitted parameters with 1-sigma standard errors and fit diagnostics."""

    parameters: PhysicalParameters
    stderr: dict
    """name -> standard error (0.0 for parameters held fixed)."""
    free: tuple
    covariance: np.ndarray
    """(k, k) covariance of the free parameters, in the order of ``free``."""
    rms_v_membrane_mv: float
    rms_t_spike: float
    n_residuals: int
    message: str

    def table(self, initial: PhysicalParameters | None = None) -> list[dict]:
        """Rows (parameter, value, stderr[, dc_value]) for reports."""
        rows = []
        for name in PARAMETER_NAMES:
            row = {"parameter": name, "fitted": getattr(self.parameters, name),
                   "stderr": self.stderr[name], "fixed": name not in self.free}
            if initial is not None:
                row["dc_derived"] = getattr(initial, name)
            rows.append(row)
        return rows


def predict_traces(params: torch.Tensor, traces: TraceSet) -> tuple[torch.Tensor, torch.Tensor]:
    """What the model predicts for the testbench of ``traces`` at the parameters ``params``: the
    membrane (V, (batch, n_out, n_times)) and the spike times ((batch, n_out)) that
    :func:`fit_traces` compares with the measured ones.

    ``params`` is a float64 tensor ordered as :data:`PARAMETER_NAMES` (differentiable: the fit's
    Jacobian comes from it); the scalar E values are spread over the synapses by the traces'
    E shapes, where given.
    """
    from imcpnn.pnn import membrane_trace, spike_times

    e_plus, e_minus, e_dis, scale, v_th, rate, t_delay, q_plus, q_minus = params
    if traces.e_shape_plus is not None:
        e_plus = e_plus * torch.as_tensor(traces.e_shape_plus, dtype=torch.float64)
    if traces.e_shape_minus is not None:
        e_minus = e_minus * torch.as_tensor(traces.e_shape_minus, dtype=torch.float64)
    t_in = torch.as_tensor(traces.t_in, dtype=torch.float64)
    w = torch.as_tensor(traces.w, dtype=torch.float64) * scale
    c = None if traces.c_factor is None else torch.as_tensor(traces.c_factor, dtype=torch.float64)
    if c is not None:
        w = w * c
    if traces.delay_offset is not None:
        t_delay = t_delay + torch.as_tensor(traces.delay_offset, dtype=torch.float64)
    if traces.dq_driven is not None:
        q_plus, q_minus = q_plus + traces.dq_driven[0], q_minus + traces.dq_driven[1]
    t_eval = torch.as_tensor(traces.t_eval, dtype=torch.float64)
    k = None if traces.coupling is None else torch.as_tensor(traces.coupling, dtype=torch.float64)
    v = membrane_trace(t_in, w, e_plus, e_minus, t_eval, coupling=k)
    t_out = spike_times(t_in, w, e_plus, e_minus, e_dis=e_dis, dis_rate=rate, t_delay=t_delay,
                        q_plus=q_plus, q_minus=q_minus, rate_factor=c, coupling=k)
    return traces.v_reset_v - v_th * v, t_out


def fit_traces(traces: TraceSet | Sequence[TraceSet], initial: PhysicalParameters, *,
               fixed: tuple[str, ...] = (), sigma_v_v: float = 1e-3,
               sigma_t: float = 1e-2, residuals: str = "both") -> FitResult:
    """Least-squares fit of :class:`PhysicalParameters` to ``traces``, starting at ``initial``.

    **Arguments:** ``traces`` one :class:`TraceSet` or several (e.g. every layer of a network,
    each with its own inputs and weights), whose residuals the fit pools: one parameter set
    explains them all; ``fixed`` names parameters held at their initial value; ``sigma_v_v`` and
    ``sigma_t`` weight membrane (V) against spike-time (normalized) residuals; ``residuals``
    "membrane" or "spikes" fits to one kind only (e.g. the current scale to the membrane alone: a
    charge measurement, known currents against the measured voltage change).
    **Returns:** :class:`FitResult` with covariance = s^2 (J^T J)^-1 over the free parameters.
    **Raises:** ValueError for an unknown fixed name, non-positive sigmas, too few residuals, or a
    free parameter the residuals do not depend on.
    """
    unknown = [n for n in fixed if n not in PARAMETER_NAMES]
    if unknown:
        raise ValueError(f"cannot fix {unknown}: fit parameters are {list(PARAMETER_NAMES)}")
    if residuals not in RESIDUALS:
        raise ValueError(f"residuals={residuals!r} is unknown; use one of {', '.join(RESIDUALS)}")
    if sigma_v_v <= 0 or sigma_t <= 0:
        raise ValueError(f"sigma_v_v={sigma_v_v} and sigma_t={sigma_t} must both be > 0")
    free = tuple(n for n in PARAMETER_NAMES if n not in fixed)
    free_idx = [PARAMETER_NAMES.index(n) for n in free]
    base = torch.as_tensor(initial.vector(), dtype=torch.float64)
    sets = [traces] if isinstance(traces, TraceSet) else list(traces)
    v_obs = [torch.as_tensor(s.v_membrane_v, dtype=torch.float64) for s in sets]
    t_obs = [torch.as_tensor(s.t_spike, dtype=torch.float64) for s in sets]
    # A spike time at a window edge is clipped (no spike, or fired at once): it has no gradient.
    use_t = [torch.as_tensor(np.asarray(s.spiked, bool) & (s.t_spike > 0) & (s.t_spike < 1)
                             & (residuals != "membrane")) for s in sets]
    use_v = residuals != "spikes"

    def residuals_of(x: torch.Tensor) -> torch.Tensor:
        # every set's membrane residuals, then every set's spike residuals
        params = base.clone()
        params[free_idx] = x
        predicted = [predict_traces(params, s) for s in sets]
        r_v = [((v - obs) / sigma_v_v).reshape(-1) for (v, _), obs in zip(predicted, v_obs)] if use_v else []
        r_t = [((t - obs) / sigma_t)[use] for (_, t), obs, use in zip(predicted, t_obs, use_t)]
        return torch.cat(r_v + r_t)

    def fun(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return residuals_of(torch.as_tensor(x, dtype=torch.float64)).numpy()

    def column(x_t: torch.Tensor, k: int) -> torch.Tensor:
        direction = torch.zeros_like(x_t)
        direction[k] = 1.0
        return torch.autograd.functional.jvp(residuals_of, x_t, direction)[1]

    def jac(x: np.ndarray) -> np.ndarray:
        x_t = torch.as_tensor(x, dtype=torch.float64)
        return torch.stack([column(x_t, k) for k in range(len(x))], dim=1).numpy()

    x0 = base[free_idx].numpy()
    lower = np.array([_BOUNDS[n][0] for n in free])
    upper = np.array([_BOUNDS[n][1] for n in free])
    if len(fun(x0)) <= len(free):
        raise ValueError(f"{len(fun(x0))} residuals cannot determine {len(free)} parameters; "
                         "give more time points or spiking neurons")
    flat = [n for n, column in zip(free, jac(np.clip(x0, lower, upper)).T) if not np.any(column)]
    if flat:
        raise ValueError(f"the residuals do not depend on {flat} (zero Jacobian column): fix them "
                         "(fixed=...) or give traces that constrain them (E_dis needs spiking "
                         "neurons)")
    sol = least_squares(fun, np.clip(x0, lower, upper), jac=jac, bounds=(lower, upper),
                        x_scale="jac", method="trf")
    r, j = sol.fun, jac(sol.x)
    dof = len(r) - len(free)
    covariance = float(r @ r) / dof * np.linalg.pinv(j.T @ j)
    values = initial.vector()
    values[free_idx] = sol.x
    stderr = {n: 0.0 for n in PARAMETER_NAMES}
    stderr.update({n: float(np.sqrt(covariance[i, i])) for i, n in enumerate(free)})
    n_v = sum(v.numel() for v in v_obs) if use_v else 0
    r_t = r[n_v:] * sigma_t
    return FitResult(
        parameters=PhysicalParameters(**dict(zip(PARAMETER_NAMES, map(float, values)))),
        stderr=stderr, free=free, covariance=covariance,
        rms_v_membrane_mv=float(np.sqrt(np.mean((r[:n_v] * sigma_v_v) ** 2)) * 1e3) if n_v else float("nan"),
        rms_t_spike=float(np.sqrt(np.mean(r_t ** 2))) if len(r_t) else float("nan"),
        n_residuals=len(r), message=str(sol.message))

