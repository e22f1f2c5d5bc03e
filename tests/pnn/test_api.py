"""Public model-math API: shapes, dtypes, tensor E values, and every validation error."""

from __future__ import annotations

import math

import pytest
import torch

from imcpnn.pnn import (
    METHODS,
    firing_trace,
    membrane_at_end,
    membrane_trace,
    spike_times,
    ttfs_spike_times,
)


def layer(dtype=torch.float32, batch=3, n_in=5, n_out=4):
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, n_in, generator=g).to(dtype), (0.3 * torch.randn(n_in, n_out, generator=g)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method,steps", [("exact", None), ("dstd", 10)])
def test_shapes_and_dtype_follow_input(dtype, method, steps):
    t_in, w = layer(dtype)
    for fn in (membrane_at_end, spike_times):
        out = fn(t_in, w, 2.8, -1.53, method=method, steps=steps)
        assert out.shape == (3, 4) and out.dtype == dtype
    assert ttfs_spike_times(t_in, w, 2.8, -1.53, method=method, steps=steps).shape == (3, 4)
    t_eval = torch.linspace(0, 1, 7)
    assert membrane_trace(t_in, w, 2.8, -1.53, t_eval).shape == (3, 4, 7)
    assert firing_trace(torch.zeros(3, 4, dtype=dtype), t_eval, e_dis=3.0).dtype == dtype


def test_e_100_is_close_to_ideal_ann():
    t_in, w = layer(torch.float64)
    ideal = ((1 - t_in).unsqueeze(-1) * w).sum(1)
    # |v| < 1 here, so the reversal correction v^2/(2E) stays below 5e-3
    torch.testing.assert_close(membrane_at_end(t_in, w, 100.0, -100.0), ideal, atol=5e-3, rtol=0)


def test_tensor_e_values_get_gradients():
    t_in, w = layer(torch.float64)
    e_plus = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    e_minus = torch.tensor(-1.5, dtype=torch.float64, requires_grad=True)
    spike_times(t_in, w, e_plus, e_minus).sum().backward()
    assert e_plus.grad is not None and e_minus.grad is not None and e_plus.grad != 0
    membrane_trace(t_in, w, e_plus, e_minus, torch.tensor([0.5, 1.0])).sum().backward()
    assert torch.isfinite(e_minus.grad)


def test_exact_and_trace_agree_at_end():
    t_in, w = layer(torch.float64)
    end = membrane_trace(t_in, w, 2.0, -1.0, torch.tensor([1.0], dtype=torch.float64))[..., 0]
    torch.testing.assert_close(end, membrane_at_end(t_in, w, 2.0, -1.0), rtol=0, atol=1e-15)


def test_inf_e_dis_is_ideal_ramp():
    t_in, w = layer()
    torch.testing.assert_close(spike_times(t_in, w, 2.0, -2.0, e_dis=math.inf), spike_times(t_in, w, 2.0, -2.0))


def _bad(name):
    t_in, w = layer()
    cases = {
        "nan_t": (dict(t_in=t_in.clone().fill_(math.nan)), "t_in contains NaN or inf"),
        "inf_w": (dict(w=w.clone().fill_(math.inf)), "w contains NaN or inf"),
        "t_above": (dict(t_in=t_in + 1.0), r"t_in must lie in \[0, 1\]"),
        "t_below": (dict(t_in=t_in - 1.0), r"t_in must lie in \[0, 1\]"),
        "shape": (dict(w=w.T.contiguous()), "shape mismatch"),
        "ndim": (dict(t_in=t_in[0]), "t_in must have 2 dimension"),
        "not_tensor": (dict(w=w.tolist()), "w must be a torch.Tensor"),
        "int_dtype": (dict(t_in=torch.zeros(3, 5, dtype=torch.int64)), "floating tensor"),
        "dtype_mix": (dict(w=w.double()), "must share dtype and device"),
        "e_plus": (dict(e_plus=0.0), "e_plus must be > 0"),
        "e_plus_nan": (dict(e_plus=math.nan), "e_plus must be > 0"),
        "e_minus": (dict(e_minus=1.0), "e_minus must be < 0"),
        "e_vector": (dict(e_plus=torch.ones(2)), "e_plus must be a float, a 0-d tensor or a tensor shaped like w"),
        "method": (dict(method="rk4"), "unknown method 'rk4'; valid methods: exact, dstd"),
        "no_steps": (dict(method="dstd"), "needs steps"),
        "steps0": (dict(method="dstd", steps=0), "steps must be an integer >= 1"),
        "steps_float": (dict(method="dstd", steps=2.5), "steps must be an integer >= 1"),
        "offset": (dict(method="dstd", steps=10, offset=0.1), r"offset must lie in \[0, 1/steps\)"),
        "offset_neg": (dict(method="dstd", steps=10, offset=-0.01), r"offset must lie in \[0, 1/steps\)"),
    }
    kwargs, message = cases[name]
    args = dict(t_in=t_in, w=w, e_plus=2.0, e_minus=-2.0)
    args.update(kwargs)
    return args, message


@pytest.mark.parametrize("case", [
    "nan_t", "inf_w", "t_above", "t_below", "shape", "ndim", "not_tensor", "int_dtype", "dtype_mix",
    "e_plus", "e_plus_nan", "e_minus", "e_vector", "method", "no_steps", "steps0", "steps_float",
    "offset", "offset_neg",
])
def test_bad_input_raises(case):
    args, message = _bad(case)
    with pytest.raises(ValueError, match=message):
        membrane_at_end(**args)
    with pytest.raises(ValueError, match=message):
        spike_times(**args)


@pytest.mark.parametrize("e_dis", [1.0, 0.5, -3.0, math.nan])
def test_bad_e_dis_raises(e_dis):
    t_in, w = layer()
    with pytest.raises(ValueError, match="e_dis must be > 1"):
        spike_times(t_in, w, 2.0, -2.0, e_dis=e_dis)
    with pytest.raises(ValueError, match="e_dis must be > 1"):
        firing_trace(torch.zeros(1, 1), torch.zeros(1), e_dis=e_dis)


def test_bad_trace_inputs_raise():
    t_in, w = layer()
    with pytest.raises(ValueError, match=r"t_eval must lie in \[0, 1\]"):
        membrane_trace(t_in, w, 2.0, -2.0, torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="t_eval must have 1 dimension"):
        firing_trace(torch.zeros(1, 1), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="v_end contains NaN"):
        firing_trace(torch.full((1, 1), math.nan), torch.zeros(1))
    with pytest.raises(ValueError, match="e_minus must be < 0"):
        ttfs_spike_times(t_in, w, 2.0, 0.0)
    with pytest.raises(ValueError, match="needs steps"):
        ttfs_spike_times(t_in, w, 2.0, -2.0, method="dstd")


def test_methods_registry():
    assert METHODS == ("exact", "dstd")


@pytest.mark.parametrize("method", ["exact", "dstd"])
def test_tensor_e_dis_gets_gradient(method):
    """E_dis as a 0-d tensor keeps its graph (the trace fitter fits it): gradcheck in float64."""
    gen = torch.Generator().manual_seed(3)
    t_in = torch.rand(4, 5, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    w = torch.rand(5, 3, generator=gen, dtype=torch.float64) * 0.3
    e_dis = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    steps = 30 if method == "dstd" else None
    assert torch.autograd.gradcheck(
        lambda e: spike_times(t_in, w, 3.0, -1.5, method=method, steps=steps, offset=0.011, e_dis=e), (e_dis,)
    )


def test_per_synapse_reversal_potentials_equal_per_column_scalars():
    """E shaped like w (one per synapse): a neuron whose synapses all share (E_plus, E_minus)
    fires exactly as with those scalars, in the exact solver and in DSTD."""
    g = torch.Generator().manual_seed(3)
    t_in = torch.rand(6, 7, generator=g, dtype=torch.float64)
    w = torch.randn(7, 3, generator=g, dtype=torch.float64)
    pairs = [(2.9, -1.5), (4.0, -2.5), (100.0, -100.0)]
    e_plus = torch.tensor([p for p, _ in pairs], dtype=torch.float64).expand(7, 3).clone()
    e_minus = torch.tensor([m for _, m in pairs], dtype=torch.float64).expand(7, 3).clone()
    for kw in ({}, {"method": "dstd", "steps": 10}):
        together = spike_times(t_in, w, e_plus, e_minus, e_dis=3.0, **kw)
        for j, (ep, em) in enumerate(pairs):
            alone = spike_times(t_in, w[:, j : j + 1], ep, em, e_dis=3.0, **kw)
            torch.testing.assert_close(together[:, j : j + 1], alone, rtol=0, atol=1e-12)


def test_per_synapse_reversal_potentials_are_checked():
    t_in, w = torch.zeros(2, 3), torch.ones(3, 2)
    with pytest.raises(ValueError, match="shaped like w"):
        spike_times(t_in, w, torch.full((2, 3), 3.0), -1.5)
    bad = torch.full((3, 2), -1.5)
    bad[1, 1] = 0.5
    with pytest.raises(ValueError, match="e_minus must be < 0"):
        spike_times(t_in, w, 3.0, bad)
