"""The bottom-up model's circuit terms (discharge rate, firing delay, end-of-accumulation kick):
closed forms against a numerical integration of the firing-phase ODE as the circuit defines it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from imcpnn.pnn import LayerPhysics, membrane_at_end, spike_times
from imcpnn.pnn.solver import edge_kick, firing_times
from imcpnn.errors import ConfigError


def ode_firing_time(v0: float, e_dis: float | None, rate: float, t_delay: float) -> float:
    """dv/dt = rate (1 - v/e_dis) from v0, first crossing of v = 1, plus the delay; 1 if never."""
    beta = 0.0 if e_dis is None else 1.0 / e_dis
    if v0 >= 1:
        return min(t_delay, 1.0)
    hit = lambda t, v: v[0] - 1.0  # noqa: E731
    hit.terminal, hit.direction = True, 1
    sol = solve_ivp(lambda t, v: rate * (1 - beta * v), (0.0, 5.0), [v0], events=hit,
                    rtol=1e-12, atol=1e-14, method="DOP853")
    t = sol.t_events[0][0] if sol.t_events[0].size else math.inf
    return min(max(t, 0.0) + t_delay, 1.0)


@pytest.mark.parametrize("e_dis", [None, 2.97, 8.0])
@pytest.mark.parametrize("rate,t_delay", [(1.0, 0.0), (0.94, 0.0), (0.94, 0.04), (1.2, 0.1)])
def test_firing_time_matches_the_integrated_ramp(e_dis, rate, t_delay):
    v_end = torch.tensor([[-0.3, 0.0, 0.2, 0.5, 0.8, 0.97, 1.0, 1.3]], dtype=torch.float64)
    got = firing_times(v_end, e_dis, rate, t_delay)[0].numpy()
    want = [ode_firing_time(float(v), e_dis, rate, t_delay) for v in v_end[0]]
    assert np.allclose(got, want, atol=1e-9), (got, want)


def test_rate_none_keeps_the_one_window_design():
    """Without a measured rate the discharger is the old design: v = 0 reaches 1 at t = 1."""
    v = torch.tensor([[0.0, 0.4]], dtype=torch.float64)
    beta = 1 / 2.97
    a = -math.log1p(-beta) / beta
    assert firing_times(v, 2.97)[0, 0].item() == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(firing_times(v, 2.97), firing_times(v, 2.97, rate=a))
    assert torch.allclose(firing_times(v), (1 - v).clamp(0, 1))


def test_kick_counts_active_synapses_by_sign():
    t_in = torch.tensor([[0.0, 0.5, 1.0], [1.0, 1.0, 0.2]], dtype=torch.float64)  # 1.0 = silent
    w = torch.tensor([[0.3, -0.2], [0.1, 0.0], [-0.4, 0.5]], dtype=torch.float64)
    got = edge_kick(t_in, w, 0.01, -0.02)
    # sample 0: inputs 0, 1 active; neuron 0: w>0, w>0; neuron 1: w<0, w=0 (no source, no kick)
    # sample 1: input 2 active; neuron 0: w<0; neuron 1: w>0
    assert torch.allclose(got, torch.tensor([[0.02, -0.02], [-0.02, 0.01]], dtype=torch.float64))


def test_spike_times_add_the_kick_before_the_ramp():
    g = torch.Generator().manual_seed(3)
    t_in = torch.rand(4, 5, generator=g, dtype=torch.float64)
    t_in[:, 1] = 1.0
    w = 0.4 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    v = membrane_at_end(t_in, w, 2.9, -1.6) + edge_kick(t_in, w, 0.004, -0.003)
    want = firing_times(v, 2.97, 0.94, 0.04)
    got = spike_times(t_in, w, 2.9, -1.6, e_dis=2.97, dis_rate=0.94, t_delay=0.04, q_plus=0.004,
                      q_minus=-0.003)
    assert torch.allclose(got, want)
    # gradients reach the circuit terms given as tensors (the trace fit needs them)
    td = torch.tensor(0.04, dtype=torch.float64, requires_grad=True)
    spike_times(t_in, w, 2.9, -1.6, e_dis=2.97, dis_rate=0.94, t_delay=td).sum().backward()
    assert td.grad is not None and td.grad.item() > 0


def test_bad_circuit_terms_are_named():
    t_in, w = torch.zeros(1, 2), torch.ones(2, 1)
    with pytest.raises(ValueError, match="dis_rate"):
        spike_times(t_in, w, 2.0, -2.0, dis_rate=0.0)
    with pytest.raises(ValueError, match="t_delay"):
        spike_times(t_in, w, 2.0, -2.0, t_delay=1.5)
    with pytest.raises(ConfigError, match="dis_rate"):
        LayerPhysics(dis_rate=-1.0)
    with pytest.raises(ConfigError, match="t_delay"):
        LayerPhysics(t_delay=2.0)


def test_per_neuron_delay_and_rate_equal_each_neuron_alone():
    """t_delay and rate_factor given per neuron (n_out,): neuron j's spikes are those of a
    one-neuron layer with its own scalar delay and rate (the firing ramp is per neuron)."""
    g = torch.Generator().manual_seed(5)
    t_in = torch.rand(6, 4, generator=g, dtype=torch.float64)
    w = 0.5 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    delay = torch.tensor([0.03, 0.05, 0.12], dtype=torch.float64)
    factor = torch.tensor([0.97, 1.0, 1.04], dtype=torch.float64)
    got = spike_times(t_in, w, 2.9, -1.6, e_dis=2.97, dis_rate=1.27, t_delay=delay, rate_factor=factor,
                      q_plus=0.004, q_minus=-0.003)
    for j in range(3):
        alone = spike_times(t_in, w[:, j:j + 1], 2.9, -1.6, e_dis=2.97, dis_rate=1.27 * factor[j].item(),
                            t_delay=delay[j].item(), q_plus=0.004, q_minus=-0.003)
        assert torch.allclose(got[:, j:j + 1], alone, atol=1e-12)
    with pytest.raises(ValueError, match="t_delay"):
        spike_times(t_in, w, 2.0, -2.0, t_delay=torch.tensor([0.0, 1.2, 0.0]))
    with pytest.raises(ValueError, match="rate_factor"):
        spike_times(t_in, w, 2.0, -2.0, rate_factor=torch.tensor([1.0, -1.0, 1.0]))


def test_layers_after_the_first_add_the_driven_kick():
    """dq_driven moves the kick of every neuron layer after the first (its inputs are neurons'
    outputs), not the first's (the encoder's); a pooling layer is not a neuron layer; the network
    equals the layers chained by hand with q and q + dq."""
    from imcpnn.pnn import PNN

    physics = LayerPhysics(e_plus=2.9, e_minus=-1.6, e_dis=2.97, dis_rate=1.27, t_delay=0.04, q_plus=0.004,
                           q_minus=-0.003, dq_plus_driven=0.002, dq_minus_driven=-0.0005, noise_sigma=0.0)
    assert physics.for_layer(0) is physics
    second = physics.for_layer(1)
    assert (second.q_plus, second.q_minus) == pytest.approx((0.006, -0.0035))
    assert second.dq_plus_driven == second.dq_minus_driven == 0.0 and second.for_layer(2) == second
    plain = LayerPhysics(q_plus=0.004)
    assert plain.for_layer(3) is plain
    with pytest.raises(ConfigError, match="dq_plus_driven"):
        LayerPhysics(dq_plus_driven=math.nan)

    torch.manual_seed(0)
    model = PNN("mlp:4,3", (5,), 2, physics)
    assert [layer.physics.q_plus for layer in model.layers] == pytest.approx([0.004, 0.006, 0.006])
    x = torch.rand(6, 5, dtype=torch.float64)
    t = x
    for layer, q in zip(model.layers, ((0.004, -0.003), (0.006, -0.0035), (0.006, -0.0035))):
        t = spike_times(t, layer.weight.detach().double(), 2.9, -1.6, e_dis=2.97, dis_rate=1.27, t_delay=0.04,
                        q_plus=q[0], q_minus=q[1])
    with torch.no_grad():
        got = model.double().layer_spike_times(x, method="exact", noise=False)[-1]
    assert torch.allclose(got, t, atol=1e-12)
    conv = PNN("vgg7", (1, 28, 28), 10, physics)
    kicks = [layer.physics.q_plus for layer in conv.layers if hasattr(layer, "physics")]
    assert len(kicks) < len(conv.layers)  # the pooling layers have none
    assert kicks == pytest.approx([0.004] + [0.006] * (len(kicks) - 1))
