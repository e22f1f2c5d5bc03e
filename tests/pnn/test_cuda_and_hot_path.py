"""CUDA training path (grid offsets drawn on the generator's device) and the unchecked layer hot path."""

import dataclasses
import importlib
import math

import pytest
import torch

from imcpnn.pnn import membrane_at_end, sample_offset, spike_times, ttfs_spike_times
from imcpnn.pnn.data import DataConfig
from imcpnn.pnn.layers import PNN, LayerPhysics, RCSpikeConv2d, RCSpikeDense
from imcpnn.pnn.training import ModelConfig, OptimConfig, TrainConfig, load_trained, pnn_loss, train

api = importlib.import_module("imcpnn.pnn._api")

HAS_CUDA = torch.cuda.is_available()
QUIET = LayerPhysics(noise_sigma=0.0)
TINY = TrainConfig(
    data=DataConfig("iris", train_subset=24, test_subset=10),
    model=ModelConfig(arch="mlp:3", n_outputs=4),
    optim=OptimConfig(lr=1e-2, batch_size=8, epochs=2),
)


# --- 1. grid offsets from the generator on its own device --------------------------------------


def test_generator_driven_offset_is_reproducible_on_cpu():
    """Same generator state -> same offsets; the draws advance the generator (fresh per batch)."""
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = [sample_offset(10, gen_a) for _ in range(4)]
    b = [sample_offset(10, gen_b) for _ in range(4)]
    assert a == b and len(set(a)) == 4 and all(isinstance(x, float) and 0 <= x < 0.1 for x in a)
    # a training-mode layer: the same seeded generator gives the same offset and noise, hence output
    torch.manual_seed(0)
    layer = RCSpikeDense(6, 3, LayerPhysics()).double().train()
    t_in = torch.rand(4, 6, dtype=torch.float64)
    out_a = layer(t_in, generator=torch.Generator().manual_seed(9))
    out_b = layer(t_in, generator=torch.Generator().manual_seed(9))
    assert torch.equal(out_a, out_b)
    # and the offset is the generator's first draw: the quiet layer equals spike_times at that offset
    quiet = RCSpikeDense(6, 3, QUIET).double().train()
    quiet.weight.data.copy_(layer.weight.data)
    offset = sample_offset(QUIET.train_steps, torch.Generator().manual_seed(9))
    expected = spike_times(t_in, layer.weight, QUIET.e_plus, QUIET.e_minus, "dstd", QUIET.train_steps, offset)
    assert torch.equal(quiet(t_in, generator=torch.Generator().manual_seed(9)), expected)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False)")
def test_cuda_training_step_and_resume(tmp_path):
    """A CUDA generator draws the offsets and the noise; a training step runs; train() runs and resumes."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    offset = sample_offset(10, gen)
    assert isinstance(offset, float) and 0 <= offset < 0.1
    model = PNN("mlp:5", (4,), 3, LayerPhysics(), generator=torch.Generator().manual_seed(0)).cuda().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.rand(8, 4, device="cuda"), torch.randint(0, 3, (8,), device="cuda")
    loss = pnn_loss(model(x, generator=gen), y, 3, TINY.loss)
    loss.backward()
    optimizer.step()
    assert math.isfinite(loss.item()) and all(p.grad.is_cuda for p in model.parameters())
    # the full loop, with a checkpoint written on CUDA and resumed (RNG states back to CPU tensors)
    config = dataclasses.replace(TINY, device="cuda")
    part = train(config, tmp_path, progress=False, stop_after_epoch=1)
    assert len(part.history) == 1
    done = train(config, tmp_path, progress=False)
    assert len(done.history) == 2 and math.isfinite(done.history[-1]["train_loss"])
    assert load_trained(tmp_path, device="cuda").model.dense_weights()[0].is_cuda


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False)")
def test_cuda_generator_offsets_are_reproducible():
    a = [sample_offset(10, torch.Generator(device="cuda").manual_seed(s)) for s in range(5)]
    b = [sample_offset(10, torch.Generator(device="cuda").manual_seed(s)) for s in range(5)]
    assert a == b and all(0 <= x < 0.1 for x in a)


# --- 2. layers call the unchecked math; the public API keeps validating --------------------------

VALIDATORS = ("_check_finite_tensor", "_check_times", "_check_reversal", "_check_layer", "_check_grid",
              "_check_e_dis", "_check_firing", "_checked_layer_and_grid")  # fmt: skip


def _forbid_validators(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a layer called an input validator (a device sync) in the hot path")

    for name in VALIDATORS:
        monkeypatch.setattr(api, name, boom)


def test_layers_skip_the_validators_and_match_the_public_api(monkeypatch):
    physics = dataclasses.replace(QUIET, e_dis=4.0, dis_rate=1.2, t_delay=0.01, q_plus=0.02, q_minus=-0.01)
    torch.manual_seed(0)
    dense = RCSpikeDense(6, 3, physics).double()
    conv = RCSpikeConv2d(2, 3, physics).double()
    mlp = PNN("mlp:4", (6,), 3, physics).double()
    t_in, image = torch.rand(5, 6, dtype=torch.float64), torch.rand(2, 2, 4, 4, dtype=torch.float64)
    kw = dict(e_dis=4.0, dis_rate=1.2, t_delay=0.01, q_plus=0.02, q_minus=-0.01)
    expected = {
        "exact": spike_times(t_in, dense.weight, physics.e_plus, physics.e_minus, "exact", **kw),
        "dstd": spike_times(t_in, dense.weight, physics.e_plus, physics.e_minus, "dstd", physics.test_steps, **kw),
    }
    offset = sample_offset(physics.train_steps, torch.Generator().manual_seed(2))
    expected["train"] = spike_times(t_in, dense.weight, physics.e_plus, physics.e_minus, "dstd",
                                    physics.train_steps, offset, **kw)  # fmt: skip

    _forbid_validators(monkeypatch)
    dense.eval()
    assert torch.equal(dense(t_in, method="exact"), expected["exact"])
    assert torch.equal(dense(t_in), expected["dstd"])
    dense.train()
    assert torch.equal(dense(t_in, generator=torch.Generator().manual_seed(2)), expected["train"])
    # a training step of a network and a conv layer, all without a validator call
    out = mlp.train()(t_in, generator=torch.Generator().manual_seed(0))
    out.sum().backward()
    assert mlp.layers[0].weight.grad is not None
    assert conv.train()(image, generator=torch.Generator().manual_seed(0)).shape == (2, 3, 4, 4)
    # the public API is the validating boundary: with the validators stubbed it now trips them
    with pytest.raises(AssertionError, match="input validator"):
        spike_times(t_in, dense.weight, 2.8, -1.53)


def test_layer_steps_are_checked_without_the_tensor_validators(monkeypatch):
    _forbid_validators(monkeypatch)
    layer = RCSpikeDense(3, 2, QUIET).eval()
    with pytest.raises(ValueError, match=r"steps=2.5 must be an integer >= 1"):
        layer(torch.rand(1, 3), steps=2.5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda t, w: spike_times(t.clone().fill_(float("nan")), w, 2.8, -1.53),
         "t_in contains NaN or inf values; every entry must be finite"),
        (lambda t, w: spike_times(t + 1.5, w, 2.8, -1.53), r"t_in must lie in \[0, 1\]"),
        (lambda t, w: membrane_at_end(t, w * float("inf"), 2.8, -1.53), "w contains NaN or inf"),
        (lambda t, w: ttfs_spike_times(t - 2, w, 2.8, -1.53, "dstd", 10), r"t_in must lie in \[0, 1\]"),
        (lambda t, w: spike_times(t, w, -2.8, -1.53), r"e_plus must be > 0 \(excitatory\)"),
        (lambda t, w: spike_times(t, w, 2.8, -1.53, "dstd", 10, offset=0.5), r"offset must lie in \[0, 1/steps\)"),
        (lambda t, w: spike_times(t, w, 2.8, -1.53, e_dis=0.5), "e_dis must be > 1"),
        (lambda t, w: spike_times(t, w, 2.8, -1.53, t_delay=2.0), r"t_delay must be finite and in \(-1, 1\)"),
    ],
)
def test_public_api_keeps_its_errors(call, match):
    t_in, w = torch.rand(2, 3, dtype=torch.float64), torch.rand(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=match):
        call(t_in, w)


def test_cuda_run_without_a_device_is_a_config_error(tmp_path, monkeypatch):
    from imcpnn.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"device='cuda' but torch finds no CUDA device.*--device cpu"):
        train(dataclasses.replace(TINY, device="cuda"), tmp_path, progress=False)
    assert not (tmp_path / "config.json").exists()
