"""Device variation (pnn/variation.py) and hardware-aware training: zero spread is the nominal model
bit for bit, the draws have the requested statistics, the threshold and ramp errors match a
numerical integration of the firing ramp, chips are reproducible, training resumes exactly."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from pnn_ode_reference import ode_membrane
from scipy.integrate import solve_ivp

from imcpnn.cli import main
from imcpnn.errors import ConfigError
from imcpnn.pnn import (PNN, LayerDraw, LayerPhysics, VariationModel, chip_spike_times, draw_chip, draw_layer,
                        evaluate_chips, load_dataset, spike_times)  # fmt: skip
from imcpnn.pnn.data import DataConfig
from imcpnn.pnn.solver import firing_times
from imcpnn.pnn.training import LossConfig, ModelConfig, OptimConfig, TrainConfig, evaluate, load_trained, train

#: A variation with every error on (values for the tests only, not measured).
FULL = VariationModel(w_abs=(0.1, 0.5, 2.0), sigma_rel_plus=(0.3, 0.1, 0.05), sigma_rel_minus=(0.2, 0.15, 0.02),
                      sigma_e_plus_rel=0.1, sigma_e_minus_rel=0.1, sigma_threshold=0.05, sigma_ramp_rel=0.05,
                      source="test values")  # fmt: skip
TINY = TrainConfig(
    data=DataConfig("iris", train_subset=24, test_subset=10),
    model=ModelConfig(arch="mlp:3", n_outputs=4),
    optim=OptimConfig(lr=1e-2, batch_size=8, epochs=3),
)
HWA = dataclasses.replace(TINY, variation=FULL)


def _layer(seed=0, batch=6, n_in=5, n_out=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    t_in = torch.rand(batch, n_in, generator=g, dtype=dtype)
    t_in[0, 1] = 1.0  # a silent input
    w = 0.6 * torch.randn(n_in, n_out, generator=g, dtype=dtype)
    w[2, 1] = 0.0
    return t_in, w


def _strip_times(history):
    return [{k: v for k, v in h.items() if k != "train_seconds"} for h in history]


# ------------------------------------------------------------------------- zero spread == nominal
def test_zero_draw_is_exactly_ones_and_zeros():
    _, w = _layer()
    d = draw_layer(VariationModel(), w, torch.Generator().manual_seed(1))
    assert VariationModel().is_zero and not FULL.is_zero
    for factor in (d.w_factor, d.e_plus_factor, d.e_minus_factor, d.ramp_factor):
        assert torch.equal(factor, torch.ones_like(factor))
    assert torch.equal(d.threshold, torch.zeros(w.shape[1], dtype=w.dtype))


@pytest.mark.parametrize("method,steps", [("exact", None), ("dstd", 7)])
@pytest.mark.parametrize("e_dis,dis_rate", [(None, None), (2.97, None), (2.97, 0.94), (None, 1.2)])
@pytest.mark.parametrize("per_synapse_e", [False, True])
def test_zero_variation_is_the_nominal_layer_bit_for_bit(method, steps, e_dis, dis_rate, per_synapse_e):
    t_in, w = _layer(dtype=torch.float32)
    e_plus, e_minus = 2.8, -1.53
    if per_synapse_e:
        e_plus = 2.8 + 0.1 * torch.rand(w.shape, generator=torch.Generator().manual_seed(5))
        e_minus = -1.53 - 0.1 * torch.rand(w.shape, generator=torch.Generator().manual_seed(6))
    kw = dict(e_dis=e_dis, dis_rate=dis_rate, t_delay=0.02, q_plus=0.003, q_minus=-0.002)
    nominal = spike_times(t_in, w, e_plus, e_minus, method, steps, **kw)
    zero = draw_layer(VariationModel(), w, torch.Generator().manual_seed(2))
    for draw in (None, zero):
        assert torch.equal(chip_spike_times(t_in, w, e_plus, e_minus, draw, method=method, steps=steps, **kw), nominal)


def test_zero_variation_is_the_nominal_network_in_training_and_evaluation():
    physics = LayerPhysics(e_dis=3.0, noise_sigma=0.01)
    model = PNN("mlp:6,5", (4,), 3, physics, torch.Generator().manual_seed(0))
    x = torch.rand(9, 4, generator=torch.Generator().manual_seed(1))
    for mode in (model.train, model.eval):
        mode()
        nominal = model.layer_spike_times(x, generator=torch.Generator().manual_seed(3))
        zero = model.layer_spike_times(x, generator=torch.Generator().manual_seed(3), variation=VariationModel(),
                                       chip_generator=torch.Generator().manual_seed(4))  # fmt: skip
        fixed = model.layer_spike_times(x, generator=torch.Generator().manual_seed(3),
                                        chips=draw_chip(VariationModel(), model.dense_weights(),
                                                        torch.Generator()))  # fmt: skip
        for a, b, c in zip(nominal, zero, fixed):
            assert torch.equal(a, b) and torch.equal(a, c)


# ------------------------------------------------------------------------------ draw statistics
def test_current_spread_follows_the_table_by_sign_and_size():
    """std(w_factor - 1) per column = the interpolated sigma of its |w| and sign, within 5 standard
    errors of the std estimator (sigma / sqrt(2 (n - 1)) for normal samples); mean within 5 sigma/sqrt(n)."""
    n = 20_000
    w_abs = [0.05, 0.1, 0.3, 0.5, 1.25, 2.0, 3.0]  # below the grid, on it, between, beyond
    column = torch.tensor(w_abs + [-a for a in w_abs], dtype=torch.float64)
    w = column.expand(n, -1).clone()
    d = draw_layer(FULL, w, torch.Generator().manual_seed(11))
    expected = np.concatenate([np.interp(w_abs, FULL.w_abs, FULL.sigma_rel_plus),
                               np.interp(w_abs, FULL.w_abs, FULL.sigma_rel_minus)])  # fmt: skip
    err = (d.w_factor - 1).numpy()
    std, mean = err.std(axis=0, ddof=1), err.mean(axis=0)
    assert np.all(np.abs(std - expected) < 5 * expected / math.sqrt(2 * (n - 1))), (std, expected)
    assert np.all(np.abs(mean) < 5 * expected / math.sqrt(n)), mean
    # the effective weights keep their sign, and a zero weight stays zero on every chip
    zero = torch.zeros(3, 2, dtype=torch.float64)
    assert torch.equal(zero * draw_layer(FULL, zero, torch.Generator().manual_seed(1)).w_factor, zero)
    assert torch.all(w * d.w_factor * w.sign() >= 0)


def test_sign_selects_the_plus_or_minus_spread():
    w = torch.tensor([[0.5, -0.5]], dtype=torch.float64).expand(2000, -1)
    plus_only = VariationModel(w_abs=(1.0,), sigma_rel_plus=(0.1,), sigma_rel_minus=(0.0,))
    minus_only = VariationModel(w_abs=(1.0,), sigma_rel_plus=(0.0,), sigma_rel_minus=(0.1,))
    a = draw_layer(plus_only, w, torch.Generator().manual_seed(0)).w_factor
    b = draw_layer(minus_only, w, torch.Generator().manual_seed(0)).w_factor
    assert torch.all(a[:, 1] == 1) and a[:, 0].std() > 0.09
    assert torch.all(b[:, 0] == 1) and b[:, 1].std() > 0.09
    flipped = draw_layer(minus_only, -w, torch.Generator().manual_seed(0)).w_factor
    assert torch.equal(flipped, a)  # flipping every sign swaps the spreads: same z, same factors


def test_neuron_and_reversal_spreads():
    n_out = 20_000
    w = torch.full((2, n_out), 0.3, dtype=torch.float64)
    d = draw_layer(FULL, w, torch.Generator().manual_seed(4))
    for values, sigma in ((d.threshold, FULL.sigma_threshold), (d.ramp_factor - 1, FULL.sigma_ramp_rel),
                          (d.e_plus_factor - 1, FULL.sigma_e_plus_rel), (d.e_minus_factor - 1, FULL.sigma_e_minus_rel)):
        n = values.numel()
        assert abs(values.std().item() - sigma) < 5 * sigma / math.sqrt(2 * (n - 1))
        assert abs(values.mean().item()) < 5 * sigma / math.sqrt(n)
    assert d.threshold.shape == (n_out,) and d.ramp_factor.shape == (n_out,)
    assert d.e_plus_factor.shape == w.shape and torch.all(d.e_minus_factor > 0)  # E_minus stays < 0


def test_same_seed_same_chip_other_seed_other_chip():
    weights = [torch.randn(5, 4, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)]
    a = draw_chip(FULL, weights, torch.Generator().manual_seed(7))
    b = draw_chip(FULL, weights, torch.Generator().manual_seed(7))
    c = draw_chip(FULL, weights, torch.Generator().manual_seed(8))
    for la, lb, lc in zip(a, b, c):
        for f in dataclasses.fields(LayerDraw):
            assert torch.equal(getattr(la, f.name), getattr(lb, f.name))
        assert not torch.equal(la.w_factor, lc.w_factor)
    assert [tuple(d.w_factor.shape) for d in a] == [(5, 4), (4, 3)]


# -------------------------------------------------------------------- firing with a chip's neuron
def ode_crossing(v0: float, e_dis: float | None, rate: float, theta: float) -> float:
    """dv/dt = rate (1 - v/e_dis) from v0 integrated numerically; first time v reaches theta,
    clipped to [0, 1]; 1 if never."""
    beta = 0.0 if e_dis is None else 1.0 / e_dis
    if v0 >= theta:
        return 0.0
    hit = lambda t, v: v[0] - theta  # noqa: E731
    hit.terminal, hit.direction = True, 1
    sol = solve_ivp(lambda t, v: rate * (1 - beta * v), (0.0, 5.0), [v0], events=hit, rtol=1e-12, atol=1e-14,
                    method="DOP853")  # fmt: skip
    return min(sol.t_events[0][0], 1.0) if sol.t_events[0].size else 1.0


@pytest.mark.parametrize("e_dis", [None, 2.97, 8.0])
@pytest.mark.parametrize("rate", [None, 0.94])
def test_threshold_and_ramp_errors_match_the_integrated_ramp(e_dis, rate):
    v_end = torch.tensor([[-0.3, 0.0, 0.2, 0.5, 0.8, 0.97, 1.02, 1.3]], dtype=torch.float64)
    shift = torch.tensor([0.05, -0.08, 0.1, 0.0, -0.15, 0.04, 0.04, -0.2], dtype=torch.float64)
    factor = torch.tensor([1.05, 0.9, 1.0, 1.1, 0.97, 1.02, 0.95, 1.0], dtype=torch.float64)
    design = 1.0 if e_dis is None else -math.log1p(-1 / e_dis) * e_dis  # reaches 1 from 0 in one window
    r = design if rate is None else rate
    got = firing_times(v_end, e_dis, rate, threshold_shift=shift, rate_factor=factor)[0].numpy()
    want = [ode_crossing(float(v), e_dis, r * float(c), 1 + float(d)) for v, d, c in zip(v_end[0], shift, factor)]
    assert np.allclose(got, want, atol=1e-9), (got, want)


def test_threshold_beyond_the_ramp_asymptote_never_fires():
    v_end = torch.tensor([[0.5, 0.5]], dtype=torch.float64, requires_grad=True)
    shift = torch.tensor([2.5, 0.0], dtype=torch.float64)  # theta = 3.5 > e_dis = 3: never reached
    t = firing_times(v_end, 3.0, threshold_shift=shift)
    assert t[0, 0].item() == 1.0 and t[0, 1].item() < 1
    t.sum().backward()
    assert torch.isfinite(v_end.grad).all() and v_end.grad[0, 0].item() == 0


def test_ramp_factor_scales_the_ideal_crossing_time():
    v_end = torch.tensor([[0.1, 0.4, 0.7, 0.95]], dtype=torch.float64)
    base = firing_times(v_end)
    for eps in (-0.08, 0.05, 0.2):
        scaled = firing_times(v_end, rate_factor=torch.full((4,), 1 + eps, dtype=torch.float64))
        assert torch.allclose(scaled, base / (1 + eps), rtol=1e-14)


def test_chip_layer_matches_the_integrated_odes():
    """chip_spike_times (exact solver) against scipy: the membrane ODE with the chip's w and E per
    synapse, then the firing ramp with the chip's threshold and rate."""
    t_in, w = _layer(seed=3, batch=3, n_in=4, n_out=3)
    d = draw_layer(FULL, w, torch.Generator().manual_seed(9))
    e_dis = 2.97
    got = chip_spike_times(t_in, w, 2.8, -1.53, d, e_dis=e_dis).numpy()
    w_eff = (w * d.w_factor).numpy()
    e_plus, e_minus = (2.8 * d.e_plus_factor).numpy(), (-1.53 * d.e_minus_factor).numpy()
    design = -math.log1p(-1 / e_dis) * e_dis
    for b in range(t_in.shape[0]):
        v1 = ode_membrane(t_in[b].numpy(), w_eff, e_plus, e_minus, np.array([1.0]))[:, 0]
        want = [ode_crossing(v1[i], e_dis, design * d.ramp_factor[i].item(), 1 + d.threshold[i].item())
                for i in range(w.shape[1])]  # fmt: skip
        assert np.allclose(got[b], want, atol=1e-8), (got[b], want)


@pytest.mark.parametrize("method,steps", [("exact", None), ("dstd", 5)])
def test_gradient_flows_to_w_through_the_chip(method, steps):
    t_in, w = _layer(seed=1, batch=3, n_in=4, n_out=3)
    w = (0.3 * w + 0.3).requires_grad_(True)  # spikes inside the window (no clipping kinks), one w < 0
    d = draw_layer(FULL, w, torch.Generator().manual_seed(2))

    def layer(w_):
        return chip_spike_times(t_in, w_, 2.8, -1.53, d, method=method, steps=steps, e_dis=2.97)

    t = layer(w)
    assert ((t > 0) & (t < 1)).all(), t
    assert torch.autograd.gradcheck(layer, (w,), atol=1e-7)
    t.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


# --------------------------------------------------------------------------------- errors named
@pytest.mark.parametrize("kwargs,match", [
    (dict(w_abs=(0.1, 1.0), sigma_rel_plus=(0.1,), sigma_rel_minus=(0.1, 0.1)), "sigma_rel_plus.*2 values"),
    (dict(w_abs=(1.0, 0.5), sigma_rel_plus=(0.1, 0.1), sigma_rel_minus=(0.1, 0.1)), "w_abs.*strictly ascending"),
    (dict(w_abs=(-0.1,)), "w_abs.*>= 0"),
    (dict(w_abs=()), "w_abs.*non-empty"),
    (dict(sigma_rel_minus=(-0.1,)), "sigma_rel_minus.*values >= 0"),
    (dict(sigma_rel_plus=(float("nan"),)), "sigma_rel_plus.*finite"),
    (dict(sigma_threshold=-0.01), "sigma_threshold.*>= 0"),
    (dict(sigma_ramp_rel=float("inf")), "sigma_ramp_rel.*finite"),
    (dict(sigma_e_plus_rel=True), "sigma_e_plus_rel"),
    (dict(source=3), "source.*a string"),
])  # fmt: skip
def test_bad_variation_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        VariationModel(**kwargs)


def test_json_round_trip_and_bad_files(tmp_path):
    path = tmp_path / "v.json"
    path.write_text(json.dumps(FULL.to_dict()))
    assert VariationModel.load(path) == FULL and VariationModel.from_dict(FULL.to_dict()) == FULL
    cases = {
        "missing.json": (None, "does not exist"),
        "broken.json": ("{\"w_abs\": [0.1,", "is not valid JSON"),
        "unknown.json": (json.dumps({"sigma_treshold": 0.1}), "unknown key 'sigma_treshold'.*Did you mean 'sigma_threshold'"),
        "bad.json": (json.dumps({"sigma_threshold": -1}), "bad value.*sigma_threshold=-1"),
        "list.json": (json.dumps([1, 2]), "expected a mapping"),
    }  # fmt: skip
    for name, (text, match) in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=match) as err:
            VariationModel.load(tmp_path / name)
        message = str(err.value)
        assert "\n" not in message and str(tmp_path / name) in message and "sigma_rel_plus" in message  # the fix
    with pytest.raises(ConfigError, match="is a folder"):
        VariationModel.load(tmp_path)


def test_unreadable_variation_file_is_named(tmp_path, monkeypatch):
    path = tmp_path / "v.json"
    path.write_text("{}")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(path), "read_text", refuse)
    with pytest.raises(ConfigError, match=f"variation file {path} cannot be read \\(Permission denied\\)"):
        VariationModel.load(path)


def test_bad_uses_are_named():
    t_in, w = _layer()
    model = PNN("mlp:3", (5,), 3, LayerPhysics(), torch.Generator().manual_seed(0))
    x, gen = t_in.float(), torch.Generator()
    chip = draw_chip(FULL, model.dense_weights(), gen)
    with pytest.raises(ConfigError, match="either variation.*or chips"):
        model(x, variation=FULL, chips=chip, generator=gen)
    with pytest.raises(ConfigError, match="needs an explicit generator"):
        model(x, variation=FULL)
    with pytest.raises(ConfigError, match="2 dense layers"):
        model(x, chips=chip[:1])
    conv = PNN("vgg7", (1, 8, 8), 3, LayerPhysics(), torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="variation is supported for dense layers"):
        conv(torch.rand(1, 1, 8, 8), variation=FULL, generator=gen)
    with pytest.raises(ConfigError, match="variation is supported for dense layers"):
        dataclasses.replace(TINY, model=ModelConfig(arch="vgg7"), variation=FULL)
    with pytest.raises(ConfigError, match="TrainConfig.variation=.*a VariationModel or None"):
        dataclasses.replace(TINY, variation={"sigma_threshold": 0.1})
    with pytest.raises(ValueError, match="explicit torch.Generator"):
        draw_layer(FULL, w, None)
    with pytest.raises(ValueError, match="floating \\(n_in, n_out\\)"):
        draw_layer(FULL, w[0], gen)
    with pytest.raises(ValueError, match="draw.w_factor has shape"):
        chip_spike_times(t_in, w, 2.8, -1.53, draw_layer(FULL, w[:, :2], gen))
    data = load_dataset(TINY.data)
    with pytest.raises(ConfigError, match="n_chips=0"):
        evaluate_chips(model, data.x_test, data.y_test, 3, FULL, 0, 0)
    with pytest.raises(ConfigError, match="seed=-1"):
        evaluate_chips(model, data.x_test, data.y_test, 3, FULL, 2, -1)


# ---------------------------------------------------------------------------- chips and training
def test_evaluate_chips_is_reproducible_and_chip_k_independent_of_n_chips():
    data = load_dataset(DataConfig("iris", test_subset=30))
    model = PNN("mlp:5", data.input_shape, 3, LayerPhysics(), torch.Generator().manual_seed(0))
    x, y = data.x_test, data.y_test
    four = evaluate_chips(model, x, y, 3, FULL, 4, seed=3)
    assert evaluate_chips(model, x, y, 3, FULL, 4, seed=3) == four
    assert evaluate_chips(model, x, y, 3, FULL, 2, seed=3) == four[:2]
    assert len(four) == 4 and all(0 <= a <= 1 for a in four)
    nominal = evaluate(model, x, y, 3, LossConfig(), noise=False)[1]
    assert evaluate_chips(model, x, y, 3, VariationModel(), 3, seed=3) == [nominal] * 3


def test_zero_variation_training_is_nominal_training(tmp_path):
    nominal = train(TINY, tmp_path / "nominal", progress=False, stop_after_epoch=1)
    zero = train(dataclasses.replace(TINY, variation=VariationModel()), tmp_path / "zero", progress=False,
                 stop_after_epoch=1)  # fmt: skip
    assert _strip_times(zero.history) == _strip_times(nominal.history)
    for a, b in zip(zero.model.dense_weights(), nominal.model.dense_weights()):
        assert torch.equal(a, b)


def test_hwa_training_resumes_exactly_and_differs_from_nominal(tmp_path):
    full = train(HWA, tmp_path / "full", progress=False)
    part = train(HWA, tmp_path / "resumed", progress=False, stop_after_epoch=1)
    assert len(part.history) == 1
    resumed = train(HWA, tmp_path / "resumed", progress=False)
    assert _strip_times(resumed.history) == _strip_times(full.history)
    for a, b in zip(full.model.dense_weights(), resumed.model.dense_weights()):
        assert torch.equal(a, b)
    reloaded = load_trained(tmp_path / "full")
    assert reloaded.config == HWA and reloaded.config.variation == FULL
    nominal = train(TINY, tmp_path / "nominal", progress=False, stop_after_epoch=1)
    assert not torch.equal(nominal.model.dense_weights()[0], part.model.dense_weights()[0])


def test_config_json_of_an_older_imcpnn_without_variation_still_loads_and_resumes(tmp_path):
    train(TINY, tmp_path, progress=False, stop_after_epoch=1)
    recorded = json.loads((tmp_path / "config.json").read_text())
    del recorded["variation"]
    (tmp_path / "config.json").write_text(json.dumps(recorded))
    assert load_trained(tmp_path).config == TINY
    assert len(train(TINY, tmp_path, progress=False).history) == 3  # resumed, not refused


def test_cli_variation_trains_and_scores_twenty_chips(tmp_path, capsys):
    vfile = tmp_path / "mismatch.json"
    vfile.write_text(json.dumps(FULL.to_dict()))
    out = tmp_path / "run"
    argv = ["train", "--dataset", "iris", "--arch", "mlp:3", "--epochs", "1", "--subset", "16", "--test-subset",
            "8", "--batch-size", "8", "--variation", str(vfile), "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "20 chips" in capsys.readouterr().out
    report = json.loads((out / "variation_eval.json").read_text())
    assert VariationModel.from_dict(report["variation"]) == FULL and report["n_chips"] == 20
    assert len(report["accuracy_chips"]) == 20
    assert report["mean"] == pytest.approx(np.mean(report["accuracy_chips"]))
    assert report["std"] == pytest.approx(np.std(report["accuracy_chips"], ddof=1))
    trained = load_trained(out)
    assert trained.config.variation == FULL
    # the nominal accuracy is the saved model's, noise off, on the run's own test samples
    from imcpnn.pnn.data import load_dataset

    data = load_dataset(trained.config.data)
    assert report["accuracy_nominal"] == evaluate(trained.model, data.x_test, data.y_test, data.n_classes,
                                                  LossConfig(), noise=False)[1]
