"""Layers: dense/conv/pooling semantics, grid offset, noise, architectures, physics validation."""

import dataclasses

import pytest
import torch

from imcpnn.errors import ConfigError
from imcpnn.pnn import spike_times
from imcpnn.pnn.layers import PNN, LayerPhysics, MinPool2d, RCSpikeConv2d, RCSpikeDense, parse_arch

QUIET = LayerPhysics(e_plus=2.8, e_minus=-1.53, noise_sigma=0.0)


def test_dense_layer_is_spike_times_with_its_weights():
    torch.manual_seed(0)
    layer = RCSpikeDense(6, 4, QUIET).double().eval()
    t_in = torch.rand(3, 6, dtype=torch.float64)
    for method, steps in (("exact", None), ("dstd", QUIET.test_steps)):
        expected = spike_times(t_in, layer.weight, 2.8, -1.53, method=method, steps=steps)
        assert torch.equal(layer(t_in, method=method), expected)


def test_conv_equals_dense_math_per_patch():
    """Each output pixel = spike_times of its 3x3 patch (outside the image: t = 1, no spike)."""
    torch.manual_seed(1)
    conv = RCSpikeConv2d(2, 3, QUIET).double().eval()
    image = torch.rand(2, 2, 5, 4, dtype=torch.float64)
    out = conv(image, method="exact")
    assert out.shape == (2, 3, 5, 4)
    padded = torch.ones(2, 2, 7, 6, dtype=torch.float64)
    padded[:, :, 1:-1, 1:-1] = image
    for r in range(5):
        for c in range(4):
            patch = padded[:, :, r : r + 3, c : c + 3].reshape(2, -1)  # (channel, row, col) order
            expected = spike_times(patch, conv.weight, 2.8, -1.53, method="exact")
            assert torch.allclose(out[:, :, r, c], expected, atol=1e-12)


def test_conv_on_silent_image_stays_silent():
    conv = RCSpikeConv2d(1, 2, QUIET).eval()
    out = conv(torch.ones(1, 1, 4, 4))  # no input spike: no charge, every neuron fires at t = 1
    assert torch.equal(out, torch.ones(1, 2, 4, 4))


def test_min_pooling_takes_earliest_spike():
    t = torch.tensor([[[[0.9, 0.2, 1.0, 1.0], [0.5, 0.7, 1.0, 0.95]]]], dtype=torch.float64)
    assert MinPool2d(2)(t).tolist() == [[[[0.2, 0.95]]]]
    # = max-pooling of activations 1 - t
    assert torch.allclose(1 - MinPool2d(2)(t), torch.nn.functional.max_pool2d(1 - t, 2))


def _layer_pair(physics):
    torch.manual_seed(0)
    layer = RCSpikeDense(20, 5, physics).train()
    return layer, torch.rand(8, 20)


def test_random_offset_changes_per_batch_fixed_offset_does_not():
    layer, t_in = _layer_pair(QUIET)
    gen = torch.Generator().manual_seed(0)
    a, b = layer(t_in, generator=gen), layer(t_in, generator=gen)
    assert (a - b).abs().max() > 1e-4  # a fresh grid offset per call
    fixed = dataclasses.replace(QUIET, random_offset=False)
    layer, t_in = _layer_pair(fixed)
    assert torch.equal(layer(t_in, generator=gen), layer(t_in, generator=gen))
    expected = spike_times(t_in, layer.weight, 2.8, -1.53, method="dstd", steps=fixed.train_steps)
    assert torch.equal(layer(t_in), expected)  # fixed offset = offset 0 at train_steps


def test_noise_statistics_and_reproducibility():
    physics = dataclasses.replace(QUIET, noise_sigma=0.01)
    layer = RCSpikeDense(50, 400, physics).eval()
    with torch.no_grad():
        layer.weight.fill_(0.5 / 50)  # every neuron: v = 0.5 * mean(1 - t) ~ 0.25, far from clipping
        t_in = torch.rand(64, 50)
        clean = layer(t_in, noise=False)
        noisy = layer(t_in, generator=torch.Generator().manual_seed(3))
        again = layer(t_in, generator=torch.Generator().manual_seed(3))
    diff = noisy - clean
    assert torch.equal(noisy, again)
    assert abs(diff.mean().item()) < 0.001  # 25600 draws: standard error 6e-5
    assert abs(diff.std().item() - 0.01) < 0.0005


def test_noise_keeps_times_in_unit_interval():
    layer = RCSpikeDense(3, 100, dataclasses.replace(QUIET, noise_sigma=0.5)).eval()
    out = layer(torch.ones(10, 3), generator=torch.Generator().manual_seed(0))
    assert out.min() >= 0 and out.max() <= 1 and (out < 1).any()


def test_vgg7_shapes_and_layer_outputs():
    model = PNN("vgg7", (3, 32, 32), 10, QUIET)
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == ["RCSpikeConv2d"] * 2 + ["MinPool2d"] + ["RCSpikeConv2d"] * 2 + ["MinPool2d"] \
        + ["RCSpikeConv2d"] * 2 + ["MinPool2d"] + ["RCSpikeDense"] * 2
    assert model.layers[-2].weight.shape == (256 * 4 * 4, 512)
    small = PNN("vgg7", (1, 8, 8), 10, QUIET).eval()
    outs = small.layer_spike_times(torch.rand(2, 1, 8, 8), noise=False)
    assert [tuple(o.shape) for o in outs] == [(2, 64, 8, 8), (2, 64, 8, 8), (2, 128, 4, 4), (2, 128, 4, 4),
                                              (2, 256, 2, 2), (2, 256, 2, 2), (2, 512), (2, 10)]


def test_mlp_dense_weights_and_layer_times():
    model = PNN("mlp:7,6", (5,), 5, QUIET).eval()
    assert [tuple(w.shape) for w in model.dense_weights()] == [(5, 7), (7, 6), (6, 5)]
    t_in = torch.rand(4, 5)
    outs = model.layer_spike_times(t_in, method="exact", noise=False)
    w = model.dense_weights()
    hidden = spike_times(t_in, w[0], 2.8, -1.53, method="exact")
    assert torch.equal(outs[0], hidden)
    assert torch.equal(model(t_in, method="exact", noise=False), outs[-1])
    assert [tuple(w.shape) for w in PNN("mlp:", (1, 28, 28), 10, QUIET).dense_weights()] == [(784, 10)]


def test_init_places_spikes_inside_the_window():
    """At init most hidden neurons of a Fashion-MNIST-like input neither stay silent nor saturate."""
    torch.manual_seed(0)
    model = PNN("mlp:400", (784,), 10, QUIET).eval()
    hidden = model.layer_spike_times(torch.rand(64, 784) * 0.6 + 0.4, noise=False)[0]
    inside = ((hidden > 0) & (hidden < 1)).float().mean()
    assert inside > 0.5


@pytest.mark.parametrize("arch", ["mlp", "mlp:4,x", "mlp:0", "resnet"])
def test_bad_arch(arch):
    with pytest.raises(ConfigError, match="is unknown; use 'mlp:W1,W2"):
        parse_arch(arch)


def test_conv_arch_needs_images():
    with pytest.raises(ConfigError, match="needs image inputs"):
        PNN("vgg7", (5,), 3, QUIET)


def test_vgg7_image_too_small():
    with pytest.raises(ConfigError, match="too small to pool again"):
        PNN("vgg7", (1, 4, 4), 3, QUIET)


def test_unknown_method():
    with pytest.raises(ConfigError, match="method='euler' is unknown"):
        RCSpikeDense(2, 2, QUIET)(torch.rand(1, 2), method="euler")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"e_plus": 0.0}, "e_plus=0.0 is invalid: allowed a finite value > 0"),
        ({"e_minus": 1.0}, "e_minus=1.0 is invalid: allowed a finite value < 0"),
        ({"e_dis": 0.5}, "e_dis=0.5 is invalid: allowed a finite value > 1"),
        ({"train_steps": 0}, "train_steps=0 is invalid: allowed an integer >= 1"),
        ({"noise_sigma": -0.1}, "noise_sigma=-0.1 is invalid: allowed a finite value >= 0"),
        ({"silent_gradient": 1}, "silent_gradient=1 is invalid: allowed true or false"),
    ],
)
def test_physics_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        LayerPhysics(**kwargs)


@pytest.mark.parametrize("e_dis", [None, 5.0])
def test_silent_gradient_keeps_the_times_and_revives_silent_neurons(e_dis):
    """Same spike times with and without the one-sided straight-through window end. A neuron silent
    on every sample (strongly negative weights) gets no gradient from the clip; with it, a loss
    that wants it earlier reaches its weights (the unclipped ramp's slope, dt/dw = -(1 - t_in) for
    the ideal ramp at large |E|, where v(1) = w . (1 - t_in)), and one that wants it later does
    not (deeper silence changes nothing in the forward pass)."""
    t_in = torch.tensor([[0.1, 0.3], [0.2, 0.9]], dtype=torch.float64)
    w0 = torch.tensor([[-2.0, 0.6], [-1.0, 0.5]], dtype=torch.float64)  # neuron 0 silent, neuron 1 fires
    grads, times = {}, {}
    for silent_gradient in (False, True):
        for sign in (1.0, -1.0):  # loss sign * sum(t): +1 wants every neuron earlier, -1 later
            physics = LayerPhysics(e_plus=1e6, e_minus=-1e6, e_dis=e_dis, noise_sigma=0.0,
                                   silent_gradient=silent_gradient)
            layer = RCSpikeDense(2, 2, physics).double().eval()
            with torch.no_grad():
                layer.weight.copy_(w0)
            t = layer(t_in, method="exact")
            (sign * t.sum()).backward()
            times[silent_gradient] = t.detach()
            grads[silent_gradient, sign] = layer.weight.grad.clone()
    assert torch.equal(times[False], times[True])
    assert torch.all(times[False][:, 0] == 1.0) and torch.all(times[False][:, 1] < 1.0)
    for sign in (1.0, -1.0):
        assert torch.all(grads[False, sign][:, 0] == 0)  # the method's clip: a silent neuron learns nothing
        assert torch.equal(grads[False, sign][:, 1], grads[True, sign][:, 1])  # a firing one: unchanged
    assert torch.all(grads[True, 1.0][:, 0] < 0)  # wants it earlier: raising its weights does that
    assert torch.all(grads[True, -1.0][:, 0] == 0)  # wants it later: nothing passes
    if e_dis is None:
        assert torch.allclose(grads[True, 1.0][:, 0], -(1 - t_in).sum(dim=0), atol=1e-5)


def test_silent_gradient_through_the_noise_clip():
    """The noise's clip at the window end lets the gradient that lowers t through too (same values)."""
    from imcpnn.pnn.layers import add_spike_noise
    t = torch.tensor([0.5, 0.999, 1.0], dtype=torch.float64, requires_grad=True)
    values, grads = [], {}
    for silent_gradient in (False, True):
        for sign in (1.0, -1.0):
            out = add_spike_noise(t, 0.1, torch.Generator().manual_seed(3), silent_gradient)
            (g,) = torch.autograd.grad((sign * out).sum(), t)
            values.append(out.detach())
            grads[silent_gradient, sign] = g
    assert all(torch.equal(values[0], v) for v in values) and torch.all(values[0] <= 1)
    clipped = values[0] == 1
    assert clipped.any() and not clipped.all()
    assert torch.all(grads[False, 1.0][clipped] == 0) and torch.all(grads[True, 1.0] == 1)
    assert torch.all(grads[True, -1.0][clipped] == 0) and torch.all(grads[True, -1.0][~clipped] == -1)


def test_pnn_revives_silent_output_neurons_only():
    """A network's silent_gradient is its output layer's: hidden silence is the nonlinearity."""
    physics = LayerPhysics(noise_sigma=0.0, silent_gradient=True)
    net = PNN("mlp:4,3", (5,), 2, physics)
    assert [layer.physics.silent_gradient for layer in net.layers] == [False, False, True]
    assert [layer.physics for layer in PNN("mlp:4", (5,), 2, dataclasses.replace(physics, silent_gradient=False)).layers] \
        == [dataclasses.replace(physics, silent_gradient=False)] * 2
