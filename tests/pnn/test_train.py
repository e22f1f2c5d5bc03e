"""Training: loss, config round trip, resume, NaN stop, Iris/Fashion-MNIST accuracy, scaled ANN, CLI."""

import dataclasses
import importlib
import json
import math

import numpy as np
import pytest
import torch

from imcpnn.cli import main
from imcpnn.config import load_json, to_json
from imcpnn.errors import ConfigError, ResultsError, TrainingError
from imcpnn.pnn.data import DataConfig
from imcpnn.pnn.layers import PNN, LayerPhysics
from imcpnn.pnn.training import (
    LossConfig, ModelConfig, OptimConfig, TrainConfig, evaluate, load_trained, pnn_loss, predict,
    rescaled_model, scaled_ann_search, train,
)  # fmt: skip

train_module = importlib.import_module("imcpnn.pnn.training")

TINY = TrainConfig(
    data=DataConfig("iris", train_subset=24, test_subset=10),
    model=ModelConfig(arch="mlp:3", n_outputs=4),
    optim=OptimConfig(lr=1e-2, batch_size=8, epochs=3),
)
IRIS = TrainConfig(
    data=DataConfig("iris"),
    model=ModelConfig(arch="mlp:5", n_outputs=5),  # the circuit's 5-5-5 network, 3 outputs used
    optim=OptimConfig(lr=1e-2, batch_size=8, epochs=60),
)


def test_loss_closed_forms():
    loss = LossConfig()
    labels = torch.tensor([1])
    # equal spike times: CE = ln 3, penalty 0
    t = torch.full((1, 3), 0.9)
    assert math.isclose(pnn_loss(t, labels, 3, loss).item(), math.log(3), rel_tol=1e-6)
    # an extra (4th) neuron counts in the penalty only: 2.6 * 0.4^2
    t4 = torch.tensor([[0.9, 0.9, 0.9, 0.5]])
    assert math.isclose(pnn_loss(t4, labels, 3, loss).item(), math.log(3) + 2.6 * 0.16, rel_tol=1e-6)
    # penalty is summed over neurons, averaged over the batch
    t2 = torch.tensor([[0.9, 0.9, 0.5], [0.9, 0.9, 0.5]])
    expected_ce = math.log(2 + math.exp(0.4 / 0.07)) - 0.0  # label 1 at t = 0.9, one rival at 0.5
    expected = expected_ce + 2.6 * 0.16
    assert math.isclose(pnn_loss(t2, torch.tensor([1, 1]), 3, loss).item(), expected, rel_tol=1e-5)


def test_predict_uses_first_classes_only():
    t = torch.tensor([[0.5, 0.3, 0.4, 0.1, 0.0]])
    assert predict(t, 3).tolist() == [1]


def test_predict_decodes_tensors_and_arrays_alike():
    """One class decision for training (tensors) and validation (numpy times of model and SPICE)."""
    from imcpnn.validation import predicted_class

    t = [[0.5, 0.2, 0.9, 0.0], [0.1, 0.3, 0.1, 0.0], [1.0, 1.0, 1.0, 1.0]]  # ties: the lowest index
    tensor = predict(torch.tensor(t, dtype=torch.float64), 3)
    assert isinstance(tensor, torch.Tensor) and tensor.tolist() == [1, 0, 0]
    array = predict(np.array(t), 3)
    assert isinstance(array, np.ndarray) and array.tolist() == [1, 0, 0]
    assert predict(t, 3).tolist() == [1, 0, 0]
    assert predicted_class is predict
    for bad, n in ((np.zeros(4), 3), (np.zeros((2, 2)), 3), (torch.zeros(2, 4), 0)):
        with pytest.raises(ValueError, match="cannot decode"):
            predict(bad, n)


def test_config_json_round_trip_and_unknown_keys(tmp_path):
    config = dataclasses.replace(
        TINY, model=ModelConfig(arch="vgg7", physics=LayerPhysics(e_plus=3.0, e_minus=-3.0, e_dis=5.0))
    )
    to_json(config, tmp_path / "c.json")
    assert load_json(TrainConfig, tmp_path / "c.json") == config
    data = json.loads((tmp_path / "c.json").read_text())
    data["model"]["physics"]["e_pluss"] = 1.0
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="unknown key 'e_pluss'.*Did you mean 'e_plus'"):
        load_json(TrainConfig, tmp_path / "bad.json")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LossConfig(tau_soft=0), r"LossConfig.tau_soft=0 is invalid: allowed a finite number > 0 \(paper: 0.07\)"),
        (lambda: LossConfig(gamma=-1), r"LossConfig.gamma=-1 is invalid: allowed a finite number >= 0"),
        (lambda: LossConfig(t_ref=2), r"LossConfig.t_ref=2 is invalid: allowed \[0, 1\]"),
        (lambda: OptimConfig(lr=0), r"OptimConfig.lr=0 is invalid: allowed a finite number > 0"),
        (lambda: OptimConfig(batch_size=0), r"OptimConfig.batch_size=0 is invalid: allowed an integer >= 1"),
        (lambda: OptimConfig(epochs=0), r"OptimConfig.epochs=0 is invalid: allowed an integer >= 1"),
        (lambda: ModelConfig(arch="mlp:x"), "arch='mlp:x' is unknown"),
        (lambda: ModelConfig(n_outputs=0), r"ModelConfig.n_outputs=0 is invalid: allowed an integer >= 1, or None"),
        (lambda: TrainConfig(device="tpu"), r"TrainConfig.device='tpu' is invalid: allowed 'cpu' or 'cuda'"),
    ],
)
def test_config_errors(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_fewer_outputs_than_classes(tmp_path):
    config = dataclasses.replace(TINY, model=ModelConfig(arch="mlp:", n_outputs=2))
    with pytest.raises(ConfigError, match="n_outputs=2 is below the 3 classes"):
        train(config, tmp_path, progress=False)


def _strip_times(history):
    return [{k: v for k, v in h.items() if k != "train_seconds"} for h in history]


@pytest.mark.slow
def test_resume_gives_the_same_history(tmp_path):
    full = train(TINY, tmp_path / "full", progress=False)
    part = train(TINY, tmp_path / "resumed", progress=False, stop_after_epoch=1)
    assert len(part.history) == 1
    resumed = train(TINY, tmp_path / "resumed", progress=False)
    assert len(resumed.history) == 3
    assert _strip_times(resumed.history) == _strip_times(full.history)
    for a, b in zip(full.model.dense_weights(), resumed.model.dense_weights()):
        assert torch.equal(a, b)
    for name in ("config.json", "history.csv", "results.json", "learning_curve.png", "model.pt"):
        assert (tmp_path / "full" / name).is_file()
    assert json.loads((tmp_path / "full" / "results.json").read_text())["epochs_done"] == 3
    reloaded = load_trained(tmp_path / "full")
    assert reloaded.config == TINY and reloaded.n_classes == 3
    assert torch.equal(reloaded.model.dense_weights()[0], full.model.dense_weights()[0])


def test_cosine_schedule_decays_and_resumes_where_it_stopped(tmp_path):
    """The cosine schedule (issue: speed, the Fashion-MNIST gap) trains epoch e of E at
    lr (1 + cos(pi (e - 1) / E)) / 2; a run stopped after one epoch and resumed follows it exactly."""
    from imcpnn.pnn.training import epoch_lr

    cosine = dataclasses.replace(TINY, optim=dataclasses.replace(TINY.optim, lr_schedule="cosine"))
    assert [epoch_lr(cosine.optim, e) for e in (1, 2, 3)] == pytest.approx([1e-2, 0.75e-2, 0.25e-2])
    assert epoch_lr(TINY.optim, 3) == 1e-2
    full = train(cosine, tmp_path / "full", progress=False)
    assert [h["lr"] for h in full.history] == pytest.approx([1e-2, 0.75e-2, 0.25e-2])
    train(cosine, tmp_path / "resumed", progress=False, stop_after_epoch=1)
    resumed = train(cosine, tmp_path / "resumed", progress=False)
    assert _strip_times(resumed.history) == _strip_times(full.history)
    with pytest.raises(ConfigError, match="lr_schedule"):
        OptimConfig(lr_schedule="step")


def test_other_config_in_same_dir(tmp_path):
    train(dataclasses.replace(TINY, optim=OptimConfig(lr=1e-2, batch_size=8, epochs=1)), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="holds a run with a different config.*--overwrite"):
        train(TINY, tmp_path, progress=False, stop_after_epoch=1)
    result = train(TINY, tmp_path, progress=False, overwrite=True, stop_after_epoch=1)
    assert len(result.history) == 1


def test_nan_loss_stops_and_keeps_checkpoint(tmp_path, monkeypatch):
    real = train_module.pnn_loss
    calls = {"n": 0}

    def nan_in_second_epoch(t_out, labels, n_classes, loss):
        calls["n"] += 1
        value = real(t_out, labels, n_classes, loss)
        return value * float("nan") if calls["n"] == 3 + 1 + 1 else value  # 3 train + 1 eval batch

    monkeypatch.setattr(train_module, "pnn_loss", nan_in_second_epoch)
    with pytest.raises(TrainingError, match=r"loss is nan at epoch 2, batch 1/3.*epoch 1\) is kept"):
        train(TINY, tmp_path, progress=False)
    assert len(load_trained(tmp_path).history) == 1


def test_load_trained_missing(tmp_path):
    with pytest.raises(ResultsError, match="not a finished training run"):
        load_trained(tmp_path)


def test_rescaled_model_scales_signs_separately():
    model = PNN("mlp:", (2,), 2, LayerPhysics(e_plus=100.0, e_minus=-100.0))
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([[0.4, -0.2], [-0.6, 0.1]]))
    scaled = rescaled_model(model, LayerPhysics(e_plus=3.0, e_minus=-2.0), 1.5, 0.5)
    assert torch.allclose(scaled.dense_weights()[0], torch.tensor([[0.6, -0.1], [-0.3, 0.15]]))
    assert scaled.physics.e_minus == -2.0


@pytest.mark.slow
def test_iris_reaches_90_percent(tmp_path):
    result = train(IRIS, tmp_path, progress=False)
    assert result.test_accuracy >= 0.90
    # the exact solver agrees with the DSTD evaluation on the trained net
    data = train_module.load_dataset(IRIS.data)
    _, exact_acc = evaluate(result.model, data.x_test, data.y_test, 3, IRIS.loss, method="exact")
    assert exact_acc >= 0.86
    found = scaled_ann_search(result.model, data, 2.8, -1.53, alphas_plus=(0.9, 1.0, 1.1),
                              alphas_minus=(1.0, 1.1))  # fmt: skip
    assert len(found.grid) == 3 and len(found.grid[0]) == 2
    assert found.grid[1][0] == evaluate(result.model, data.x_train, data.y_train, 3, IRIS.loss)[1]


FASHION = TrainConfig(
    data=DataConfig("fashion-mnist", train_subset=3000, test_subset=500),
    model=ModelConfig(arch="mlp:100"),
    optim=OptimConfig(lr=3e-4, batch_size=32, epochs=1),
)


@pytest.mark.slow
def test_fashion_mnist_short_run_learns(tmp_path):
    result = train(FASHION, tmp_path, progress=False)
    assert result.test_accuracy > 0.5  # chance: 0.1


def test_cli_train_and_characterization(tmp_path, capsys):
    char = tmp_path / "char.json"
    char.write_text(json.dumps({"e_plus": 3.5, "e_minus": -2.5, "e_dis": 4.0, "other": 1}))
    out = tmp_path / "run"
    argv = ["train", "--dataset", "iris", "--arch", "mlp:3", "--epochs", "1", "--subset", "16",
            "--test-subset", "8", "--batch-size", "8", "--characterization", str(char),
            "--dstd-steps", "4", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    config = load_json(TrainConfig, out / "config.json")
    assert config.model.physics == LayerPhysics(e_plus=3.5, e_minus=-2.5, e_dis=4.0, train_steps=4)
    assert "test accuracy" in capsys.readouterr().out
    # --config reuses a run's config; flags override it
    assert main(["train", "--config", str(out / "config.json"), "--e-rev", "100,-100", "--quiet",
                 "--out", str(tmp_path / "run2")]) == 0  # fmt: skip
    config2 = load_json(TrainConfig, tmp_path / "run2" / "config.json")
    assert (config2.model.physics.e_plus, config2.model.physics.e_dis) == (100.0, 4.0)
    assert not config2.model.physics.silent_gradient
    assert main(["train", "--config", str(out / "config.json"), "--silent-gradient", "--quiet",
                 "--out", str(tmp_path / "run3")]) == 0  # fmt: skip
    assert load_json(TrainConfig, tmp_path / "run3" / "config.json").model.physics.silent_gradient


def test_cli_bad_characterization(tmp_path, capsys):
    char = tmp_path / "char.json"
    char.write_text(json.dumps({"e_plus": 3.5}))
    assert main(["train", "--characterization", str(char), "--out", str(tmp_path / "r")]) == 2
    assert "needs a JSON file with numeric keys e_plus, e_minus" in capsys.readouterr().err


def test_cli_bad_e_rev(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--e-rev", "2.8", "--out", str(tmp_path)])
    assert "is not 'E_PLUS,E_MINUS'" in capsys.readouterr().err


def test_progress_in_a_log_is_a_few_lines_not_one_per_epoch(tmp_path, capsys):
    """stderr not a terminal (as under pytest's capture): no batch bars, and the epoch lines are
    rate-limited (these epochs take far less than the interval): the first and the last only."""
    config = dataclasses.replace(TINY, optim=dataclasses.replace(TINY.optim, epochs=6))
    train(config, tmp_path / "run", progress=True)
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.startswith("epoch")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 6"]
