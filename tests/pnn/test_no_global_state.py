"""No global state in library code: seeded generators in train(), no matplotlib.use/pyplot, safe torch.load."""

import dataclasses
import importlib
import re
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from imcpnn.pnn.data import DataConfig
from imcpnn.pnn.training import ModelConfig, OptimConfig, TrainConfig, build_model, load_trained, train

train_module = importlib.import_module("imcpnn.pnn.training")
REPO = Path(__file__).resolve().parents[2]
TINY = TrainConfig(
    data=DataConfig("iris", train_subset=24, test_subset=10),
    model=ModelConfig(arch="mlp:3", n_outputs=4),
    optim=OptimConfig(lr=1e-2, batch_size=8, epochs=2),
    seed=7,
)


def _no_global_seeding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("library code reseeded the global torch RNG")

    monkeypatch.setattr(torch, "manual_seed", refuse)
    monkeypatch.setattr(torch.random, "manual_seed", refuse)


def test_train_is_reproducible_and_leaves_the_global_rngs_alone(tmp_path, monkeypatch):
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    _no_global_seeding(monkeypatch)
    a = train(TINY, tmp_path / "a", progress=False, stop_after_epoch=1)
    b = train(TINY, tmp_path / "b", progress=False, stop_after_epoch=1)
    assert torch.equal(torch.get_rng_state(), torch_state), "train() changed the global torch RNG"
    assert all(np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
               for x, y in zip(np.random.get_state(), np_state)), "train() changed numpy's global RNG"  # fmt: skip
    for wa, wb in zip(a.model.dense_weights(), b.model.dense_weights()):
        assert torch.equal(wa, wb)
    strip = [{k: v for k, v in h.items() if k != "train_seconds"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k != "train_seconds"} for h in b.history]
    other = train(dataclasses.replace(TINY, seed=8), tmp_path / "c", progress=False, stop_after_epoch=1)
    assert not torch.equal(other.model.dense_weights()[0], a.model.dense_weights()[0])


def test_init_generator_gives_the_former_global_seed_draws():
    """build_model with a seeded CPU generator draws what torch.manual_seed(seed) used to give."""
    from imcpnn.pnn.data import load_dataset

    data = load_dataset(TINY.data)
    state = torch.get_rng_state()
    try:
        torch.manual_seed(TINY.seed)
        legacy = build_model(TINY, data)
    finally:
        torch.set_rng_state(state)
    seeded = build_model(TINY, data, torch.Generator().manual_seed(TINY.seed))
    for wa, wb in zip(legacy.dense_weights(), seeded.dense_weights()):
        assert torch.equal(wa, wb)


def test_checkpoints_load_with_weights_only(tmp_path, monkeypatch):
    real, calls = torch.load, []

    def recording_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    train(TINY, tmp_path, progress=False, stop_after_epoch=1)
    resumed = train(TINY, tmp_path, progress=False)  # resumes from checkpoint.pt
    assert len(resumed.history) == 2
    assert load_trained(tmp_path).history == resumed.history
    assert calls and all(flag is True for flag in calls), calls


def test_learning_curve_needs_no_pyplot_or_backend_switch(tmp_path, monkeypatch):
    backend = matplotlib.get_backend()

    def refuse(*args, **kwargs):
        raise AssertionError("library code called matplotlib.use")

    monkeypatch.setattr(matplotlib, "use", refuse)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # any `import matplotlib.pyplot` fails
    history = [{"epoch": e, "train_loss": 1.0 / e, "test_loss": 1.1 / e, "train_accuracy": 0.5,
                "test_accuracy": 0.4, "test_accuracy_exact": 0.4} for e in (1, 2)]  # fmt: skip
    train_module._plot_learning_curve(tmp_path, TINY, history)
    assert (tmp_path / train_module.CURVE_FILE).stat().st_size > 1000
    assert matplotlib.get_backend() == backend


@pytest.mark.parametrize("package", ["pnn", "circuits", "spice", "imcpnn"])
def test_library_code_has_no_backend_switch_or_pyplot(package):
    offenders = []
    for path in sorted((REPO / package).rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot", code):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "use matplotlib.figure.Figure + FigureCanvasAgg instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize("package", ["pnn", "circuits", "spice", "imcpnn"])
def test_library_code_does_not_seed_the_global_rng(package):
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted((REPO / package).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\btorch\.manual_seed\(|\bnp\.random\.seed\(|\btorch\.load\([^)]*weights_only=False",
                     line.split("#", 1)[0])
    ]  # fmt: skip
    assert not offenders, offenders
