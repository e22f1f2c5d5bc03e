"""Training of RC-Spike PNNs (method.md section 3): config, loss, resumable loop, results, scaled ANN.

Loss per mini-batch of B samples with output spike times t (B, n_outputs):

    L = mean_b CE(softmax(-t_b[:n_classes] / tau_soft), y_b) + gamma * mean_b sum_i (t_bi - t_ref)^2

Reading of the paper's penalty ``gamma * sum_i (t_i - t_ref)^2``: i runs over *all* output neurons
of one sample (a sum, like the paper writes it, also over the extra neurons when n_outputs >
n_classes), and the batch is averaged like the cross-entropy, so that gamma keeps its meaning for
any batch size.

Hardware-aware (HWA) training: with ``TrainConfig.variation`` set, every mini-batch runs on a
fresh chip drawn from that device-variation model (:mod:`imcpnn.pnn.variation`), so the weights
learn to work on any chip; the chips come from their own generator (seeded from ``config.seed``,
saved in the checkpoint), and the evaluation after each epoch stays nominal.
:func:`evaluate_chips` then scores the trained weights on a set of reproducible chips.

A run directory holds ``config.json`` (the full :class:`TrainConfig`), ``checkpoint.pt`` (model,
optimizer, RNG states, history, config; rewritten after every epoch), ``history.csv``,
``results.json``, ``learning_curve.png``, ``model.pt`` and ``elapsed.json`` (wall time summed over
the runs that resumed it). Rerunning :func:`train` on the same directory with the same config
resumes from the checkpoint and gives the same history as an uninterrupted run.

The run directory is locked while :func:`train` writes into it (:class:`imcpnn.rundir.RunDirLock`:
a second command on it stops with the owner's PID). config.json is written only once the inputs
are checked (data loaded, model built), so a refused option blocks no corrected rerun. Repairs: a
deleted history.csv, results.json, model.pt or learning curve is rewritten from the checkpoint; a
corrupt checkpoint is set aside (``checkpoint.pt.corrupt``) and training restarts from epoch 1,
with a note; a deleted or corrupt config.json is checked against the checkpoint's copy.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from imcpnn.config import from_dict, is_real, require, to_dict
from imcpnn.errors import ConfigError, ResultsError, TrainingError
from imcpnn.rundir import RunClock, RunDirLock, note, write_json_atomic
from imcpnn.pnn.data import DataConfig, DataSplits, load_dataset
from imcpnn.pnn.layers import PNN, LayerPhysics, RCSpikeDense, parse_arch
from imcpnn.pnn.variation import LayerDraw, VariationModel, draw_chip

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
HISTORY_FILE = "history.csv"
RESULTS_FILE = "results.json"
CURVE_FILE = "learning_curve.png"
ELAPSED_FILE = "elapsed.json"
#: Where a checkpoint that cannot be read is set aside.
CORRUPT_CHECKPOINT_FILE = "checkpoint.pt.corrupt"
#: Keys every checkpoint holds (``config`` only from this version on).
_CHECKPOINT_KEYS = ("model", "optimizer", "history", "shuffle_rng", "model_rng", "input_shape",
                    "n_outputs", "n_classes")


def _is_count(value: object) -> bool:
    """An int >= 1 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Network shape and physics.

    Attributes:
        arch: ``mlp:400,400`` (hidden widths), ``mlp:`` (no hidden layer) or ``vgg7``.
        n_outputs: output neurons, >= the number of classes (None = as many as classes).
        physics: E values, DSTD grid sizes, grid offset and spike-time noise of every layer.
    """

    arch: str = "mlp:400,400"
    n_outputs: int | None = None
    physics: LayerPhysics = dataclasses.field(default_factory=LayerPhysics)

    def __post_init__(self):
        parse_arch(self.arch)
        require(self, "n_outputs", self.n_outputs, self.n_outputs is None or _is_count(self.n_outputs),
                "an integer >= 1, or None (as many as classes)")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss terms (paper's RC-Spike values): softmax temperature and temporal penalty."""

    tau_soft: float = 0.07
    gamma: float = 2.6
    t_ref: float = 0.9

    def __post_init__(self):
        require(self, "tau_soft", self.tau_soft, is_real(self.tau_soft) and self.tau_soft > 0,
                "a finite number > 0 (paper: 0.07)")
        require(self, "gamma", self.gamma, is_real(self.gamma) and self.gamma >= 0, "a finite number >= 0 (paper: 2.6)")
        require(self, "t_ref", self.t_ref, is_real(self.t_ref) and 0 <= self.t_ref <= 1, "[0, 1] (paper: 0.9)")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Adam settings and schedule (paper: lr 1e-4, batch 32, 50 epochs on Fashion-MNIST, a constant
    learning rate).

    ``lr_schedule``: "constant" (the paper's), or "cosine": epoch e of E trains at
    lr (1 + cos(pi (e - 1) / E)) / 2, from lr down to lr (1 + cos(pi (E - 1) / E)) / 2 in the
    last epoch (:func:`epoch_lr`; set at each epoch's start, so a resumed run continues it).
    """

    lr: float = 1e-4
    batch_size: int = 32
    epochs: int = 50
    lr_schedule: str = "constant"

    def __post_init__(self):
        require(self, "lr", self.lr, is_real(self.lr) and self.lr > 0, "a finite number > 0 (paper: 1e-4)")
        require(self, "batch_size", self.batch_size, _is_count(self.batch_size), "an integer >= 1 (paper: 32)")
        require(self, "epochs", self.epochs, _is_count(self.epochs), "an integer >= 1")
        require(self, "lr_schedule", self.lr_schedule, self.lr_schedule in LR_SCHEDULES,
                f"one of {', '.join(LR_SCHEDULES)}")


#: Learning-rate schedules of :class:`OptimConfig` (see :func:`epoch_lr`).
LR_SCHEDULES = ("constant", "cosine")


def epoch_lr(optim: OptimConfig, epoch: int) -> float:
    """The learning rate of epoch ``epoch`` (1-based) under ``optim.lr_schedule``."""
    if optim.lr_schedule == "cosine":
        return optim.lr * (1 + math.cos(math.pi * (epoch - 1) / optim.epochs)) / 2
    return optim.lr


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved as config.json in the run directory).

    Attributes:
        seed: seeds weight init, shuffling, grid offsets, noise and the chips of HWA training.
        device: "cpu" or "cuda".
        eval_exact: also evaluate the test set with the exact solver after every epoch (slow).
        variation: device variation for hardware-aware training (a fresh chip per mini-batch;
            dense networks only); None = nominal training.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    seed: int = 0
    device: str = "cpu"
    eval_exact: bool = False
    variation: VariationModel | None = None

    def __post_init__(self):
        require(self, "device", self.device, self.device in ("cpu", "cuda"), "'cpu' or 'cuda'")
        require(self, "variation", self.variation,
                self.variation is None or isinstance(self.variation, VariationModel),
                "a VariationModel or None")  # fmt: skip
        if self.variation is not None and any(kind == "conv" for kind, _ in parse_arch(self.model.arch)):
            raise ConfigError(f"TrainConfig.variation is supported for dense layers; model.arch="
                              f"{self.model.arch!r} has conv layers (use an mlp: architecture)")


@dataclasses.dataclass
class TrainResult:
    """A finished (or reloaded) run: its model, config, per-epoch history and final metrics."""

    out_dir: Path
    config: TrainConfig
    model: PNN
    history: list[dict]
    n_classes: int
    elapsed_s: float | None = None
    """Wall time of the run in seconds, summed over the calls that resumed it (None: unknown)."""

    @property
    def test_accuracy(self) -> float:
        """Test accuracy after the last epoch (DSTD at test_steps)."""
        return self.history[-1]["test_accuracy"]


def pnn_loss(t_out: Tensor, labels: Tensor, n_classes: int, loss: LossConfig) -> Tensor:
    """Cross-entropy of softmax(-t/tau_soft) over the first n_classes outputs + temporal penalty.

    t_out (batch, n_outputs), labels (batch,) -> scalar (see the module docstring for the reading).
    """
    ce = F.cross_entropy(-t_out[:, :n_classes] / loss.tau_soft, labels)
    penalty = ((t_out - loss.t_ref) ** 2).sum(dim=1).mean()
    return ce + loss.gamma * penalty


def predict(t_out: Tensor | np.ndarray, n_classes: int) -> Tensor | np.ndarray:
    """The class decision: the earliest spike among the first ``n_classes`` outputs (ties: the
    lowest index), t_out (batch, n_out) -> (batch,).

    A tensor gives a tensor (on its device), anything else (numpy arrays, nested lists: the
    validation's model and SPICE times) a numpy integer array. The extra outputs beyond
    ``n_classes`` (when n_outputs > n_classes) take no part in the decision. Raises ValueError for
    a shape that cannot hold ``n_classes`` outputs.
    """
    if not isinstance(t_out, Tensor):
        t_out = np.asarray(t_out, dtype=float)
    if t_out.ndim != 2 or n_classes < 1 or t_out.shape[1] < n_classes:
        raise ValueError(f"output spike times of shape {tuple(t_out.shape)} cannot decode {n_classes} "
                         "classes; expected (batch, n_out) with n_out >= n_classes >= 1")
    if isinstance(t_out, Tensor):
        return t_out[:, :n_classes].argmin(dim=1)
    return np.argmin(t_out[:, :n_classes], axis=1)


def build_model(config: TrainConfig, data: DataSplits, generator: torch.Generator | None = None) -> PNN:
    """The network for ``config`` on ``data``; weights drawn from ``generator`` (a CPU one; None =
    the global torch RNG)."""
    n_outputs = config.model.n_outputs or data.n_classes
    if n_outputs < data.n_classes:
        raise ConfigError(
            f"ModelConfig.n_outputs={n_outputs} is below the {data.n_classes} classes of "
            f"{config.data.dataset}; use n_outputs >= {data.n_classes}"
        )
    return PNN(config.model.arch, data.input_shape, n_outputs, config.model.physics, generator)


@torch.no_grad()
def evaluate(
    model: PNN, x: Tensor, y: Tensor, n_classes: int, loss: LossConfig, *,
    method: str = "dstd", steps: int | None = None, batch_size: int = 256, seed: int = 0,
    noise: bool = True, chips: list[LayerDraw] | None = None,
) -> tuple[float, float]:  # fmt: skip
    """(mean loss, accuracy) on (x, y) in eval mode, with inference noise from a seeded generator
    (``noise=False``: none), on the nominal model or on one fixed chip (``chips``, see
    :meth:`PNN.layer_spike_times`)."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    total_loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
        t_out = model(xb, method=method, steps=steps, noise=noise, generator=gen, chips=chips)
        total_loss += pnn_loss(t_out, yb, n_classes, loss).item() * len(yb)
        correct += (predict(t_out, n_classes) == yb).sum().item()
    return total_loss / len(y), correct / len(y)


def chip_seed(seed: int, k: int) -> int:
    """Seed of chip k of a set seeded ``seed``: numpy's SeedSequence of (seed, k), so chips are
    independent streams and chip k does not depend on how many chips are drawn."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1, dtype=np.uint64)[0])


def evaluate_chips(model: PNN, x: Tensor, y: Tensor, n_classes: int, variation: VariationModel, n_chips: int,
                   seed: int, method: str = "dstd", steps: int | None = None) -> list[float]:  # fmt: skip
    """Test accuracy of ``model`` on each of ``n_chips`` chips with device ``variation``.

    Chip k is :func:`imcpnn.pnn.variation.draw_chip` of the model's dense weights from a CPU
    generator seeded by :func:`chip_seed` (seed, k): reproducible, the same on CPU and CUDA (for one
    dtype), and independent of ``n_chips``. Each chip is fixed over the whole of (x, y); spike-time
    noise is off, so the spread of the accuracies is the chips' alone. ``method``/``steps`` as
    :func:`evaluate` (None = the layers' test_steps). Dense networks only.

    **Returns:** n_chips accuracies in [0, 1], chip 0 first.
    **Raises:** ConfigError for n_chips < 1, a seed that is not an integer >= 0, or conv layers.
    """
    require("evaluate_chips", "n_chips", n_chips, _is_count(n_chips), "an integer >= 1")
    require("evaluate_chips", "seed", seed, isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
            "an integer >= 0")  # fmt: skip
    weights = model.dense_weights()
    accuracies = []
    for k in range(n_chips):
        chips = draw_chip(variation, weights, torch.Generator().manual_seed(chip_seed(seed, k)))
        accuracies.append(evaluate(model, x, y, n_classes, LossConfig(), method=method, steps=steps,
                                   noise=False, chips=chips)[1])  # fmt: skip
    return accuracies


def _short(err: BaseException) -> str:
    """``Type: first sentence`` of an exception (torch's messages run to paragraphs)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text.split(". ")[0][:160]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _load_checkpoint(path: Path) -> dict:
    """A checkpoint's state, on the CPU.

    Raises:
        ResultsError: the file cannot be read or lacks a key (names the file).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"holds a {type(state).__name__}, not a checkpoint")
        missing = [k for k in _CHECKPOINT_KEYS if k not in state]
        if missing:
            raise KeyError(f"lacks {', '.join(missing)}")
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise ResultsError(
            f"{path} is corrupt ({_short(err)}); rerun the same `imcpnn train` command to retrain "
            "(it sets the file aside), or delete it"
        ) from None
    return state


@dataclasses.dataclass
class _RunPlan:
    """What :func:`_check_run_dir` found in a run directory (nothing written yet)."""

    state: dict | None = None
    """Checkpoint to resume (None: start at epoch 1)."""
    corrupt_checkpoint: str | None = None
    """Why the checkpoint cannot be resumed (it is set aside when the run starts)."""
    notes: list[str] = dataclasses.field(default_factory=list)


def _check_run_dir(config: TrainConfig, out_dir: Path, overwrite: bool) -> _RunPlan:
    """Refuse ``out_dir`` when its results belong to another config; writes nothing.

    The config the results belong to is config.json, or, where that is missing or corrupt, the
    copy in the checkpoint. A config.json alone (a run that saved no epoch) is no result.
    """
    plan = _RunPlan()
    if overwrite:
        return plan
    config_path, ckpt_path = out_dir / CONFIG_FILE, out_dir / CHECKPOINT_FILE
    if ckpt_path.is_file():
        try:
            plan.state = _load_checkpoint(ckpt_path)
        except ResultsError as err:
            plan.corrupt_checkpoint = str(err).split("; rerun")[0]
    recorded, config_problem = None, None
    if config_path.is_file():
        try:
            recorded = json.loads(config_path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            config_problem = f"{config_path} is corrupt ({_short(err)})"
    else:
        config_problem = f"{config_path} is missing"
    if recorded is None and plan.state is not None:
        recorded = plan.state.get("config")
        if recorded is None:
            raise ResultsError(
                f"{config_problem} and {ckpt_path} (written by an older imcpnn) does not record its "
                f"config, so the run in {out_dir} cannot be checked against this one; delete "
                f"{ckpt_path} to retrain here, or use another --out directory"
            )
        if _same_config(recorded, config):
            plan.notes.append(f"{config_problem}; rewriting it from the checkpoint's copy (same config)")
    outputs = [name for name in (MODEL_FILE, HISTORY_FILE, RESULTS_FILE) if (out_dir / name).is_file()]
    has_results = plan.state is not None or plan.corrupt_checkpoint is not None or bool(outputs)
    if recorded is not None and not _same_config(recorded, config):
        if has_results:
            raise ConfigError(
                f"{out_dir} holds a run with a different config ({config_path}); use another --out "
                "directory, or overwrite=True (CLI: --overwrite) to start afresh there"
            )
        plan.notes.append(f"{out_dir} holds only the config.json of a run that saved no epoch; "
                          "replacing it with this run's config")
    if plan.corrupt_checkpoint:
        plan.notes.append(f"{plan.corrupt_checkpoint}; it is set aside as {CORRUPT_CHECKPOINT_FILE} "
                          "and training restarts from epoch 1")
    elif plan.state is None and outputs:
        plan.notes.append(f"{ckpt_path} is missing, so the epochs in {out_dir} cannot be resumed; "
                          "training restarts from epoch 1")
    return plan


def _same_config(recorded, config: TrainConfig) -> bool:
    """Whether recorded config data (config.json or the checkpoint's copy) describes ``config``.

    A record written before a field existed (an older imcpnn: no ``variation`` key) means that
    field's default, so it is compared after loading it.
    """
    if recorded == to_dict(config):
        return True
    try:
        return from_dict(TrainConfig, recorded) == config
    except ConfigError:
        return False


def _start_run_dir(config: TrainConfig, out_dir: Path, overwrite: bool, plan: _RunPlan) -> None:
    """Clear the directory on ``overwrite``, set a corrupt checkpoint aside, write config.json
    (called once the inputs are checked, so a refused run leaves nothing behind)."""
    if overwrite:
        for name in (CHECKPOINT_FILE, MODEL_FILE, HISTORY_FILE, RESULTS_FILE, CURVE_FILE,
                     ELAPSED_FILE, CORRUPT_CHECKPOINT_FILE):
            (out_dir / name).unlink(missing_ok=True)
    for text in plan.notes:
        note(text)
    if plan.corrupt_checkpoint:
        (out_dir / CHECKPOINT_FILE).replace(out_dir / CORRUPT_CHECKPOINT_FILE)
    write_json_atomic(out_dir / CONFIG_FILE, to_dict(config))


def _save_checkpoint(path: Path, config, model, optimizer, epoch, history, shuffle_gen, model_gen,
                     chip_gen, n_classes) -> None:  # fmt: skip
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history,
        "shuffle_rng": shuffle_gen.get_state(),
        "model_rng": model_gen.get_state(),
        "chip_rng": chip_gen.get_state(),
        "input_shape": model.input_shape,
        "n_outputs": model.n_outputs,
        "n_classes": n_classes,
        "config": to_dict(config),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: an interruption never leaves a half-written checkpoint


def _write_outputs(out_dir: Path, config: TrainConfig, model: PNN, history: list[dict],
                   elapsed_s: float) -> None:  # fmt: skip
    """history.csv, model.pt and results.json (cheap: written after every epoch), each atomically."""
    tmp = out_dir / (HISTORY_FILE + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    tmp.replace(out_dir / HISTORY_FILE)
    tmp = out_dir / (MODEL_FILE + ".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(out_dir / MODEL_FILE)
    write_json_atomic(out_dir / RESULTS_FILE, {"final": history[-1], "epochs_done": len(history),
                                               "elapsed_s": elapsed_s, "config": to_dict(config)})


def _plot_learning_curve(out_dir: Path, config: TrainConfig, history: list[dict]) -> None:
    """learning_curve.png (drawn once per call of :func:`train`, it is slow).

    A bare Figure on an Agg canvas: no pyplot, no ``matplotlib.use`` (the caller's backend and
    open figures stay untouched).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9, 3.5))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax_loss.plot(epochs, [h["test_loss"] for h in history], label="test")
    ax_loss.set(xlabel="epoch", ylabel="loss")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], label="train")
    ax_acc.plot(epochs, [h["test_accuracy"] for h in history], label="test (DSTD)")
    if "test_accuracy_exact" in history[0]:
        ax_acc.plot(epochs, [h["test_accuracy_exact"] for h in history], label="test (exact)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
    fig.suptitle(f"{config.data.dataset} {config.model.arch}")
    fig.tight_layout()
    fig.savefig(out_dir / CURVE_FILE, dpi=120)


def train(
    config: TrainConfig, out_dir: str | Path, *, progress: bool = True, overwrite: bool = False,
    stop_after_epoch: int | None = None, time_budget_s: float | None = None,
    data: DataSplits | None = None, command: str = "imcpnn train",
    init_weights: list[Tensor] | None = None,
) -> TrainResult:  # fmt: skip
    """Train (or resume) the run that ``config`` describes in ``out_dir``.

    Args:
        config: the run; saved as ``out_dir/config.json`` once the data loaded and the model built.
        out_dir: run directory; an existing checkpoint with the same config is resumed. It is
            locked while this call writes into it.
        progress: on a terminal, a batch bar with loss and accuracy
            (:func:`imcpnn.progress.progress_bar`) and a line per epoch; in a log, no bars and an
            epoch line at most every ``imcpnn.progress.LINE_INTERVAL_S`` seconds, plus the last.
        overwrite: discard a previous run in ``out_dir`` (even with another config).
        stop_after_epoch: return after this epoch (time-boxed jobs); rerun to continue.
        time_budget_s: return before an epoch that is expected to end more than this many
            seconds after the call began (the last epoch's wall time, evaluation and checkpoint
            included, as the estimate); the first epoch of a call always runs. Rerun to continue;
            ``len(result.history) < config.optim.epochs`` tells that the budget stopped it.
        data: already loaded data (else loaded from ``config.data``).
        command: how the lock file names this run to a second command on ``out_dir``.
        init_weights: start from these dense weights (one (n_in, n_out) tensor per dense layer,
            e.g. a plainly trained model's :meth:`PNN.dense_weights`) instead of a random
            initialisation: fine-tuning, e.g. hardware-aware training of a trained network. A
            resumed run continues from its checkpoint whatever is given here.

    Raises:
        ConfigError: ``out_dir`` holds a run with a different config (and not ``overwrite``), or
            ``config.device`` is "cuda" where torch finds no CUDA device.
        imcpnn.rundir.RunDirBusyError: another process is writing into ``out_dir``.
        TrainingError: the loss became NaN/inf (names epoch and batch; the last good checkpoint
            stays in ``out_dir``).
    """
    start_s = time.perf_counter()
    out_dir = Path(out_dir)
    if time_budget_s is not None and not time_budget_s > 0:
        raise ConfigError(f"time_budget_s={time_budget_s!r}: give a positive number of seconds, or None for no budget")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "TrainConfig.device='cuda' but torch finds no CUDA device (torch.cuda.is_available() is "
            "False); train with device='cpu' (CLI: --device cpu) or install a CUDA build of torch"
        )
    with RunDirLock(out_dir, command):
        plan = _check_run_dir(config, out_dir, overwrite)
        data = data or load_dataset(config.data)
        device = torch.device(config.device)
        # explicit generators, no global RNG state: init (CPU, the same draws torch.manual_seed(seed)
        # gave), shuffling (CPU), grid offsets and noise (on the device, saved in the checkpoint)
        init_gen = torch.Generator().manual_seed(config.seed)
        model = build_model(config, data, init_gen).to(device)
        if init_weights is not None:
            _set_dense_weights(model, init_weights)
        _start_run_dir(config, out_dir, overwrite, plan)
        clock = RunClock(out_dir / ELAPSED_FILE, start_s)
        try:
            deadline_s = None if time_budget_s is None else start_s + time_budget_s
            history = _train_epochs(config, out_dir, model, data, plan.state, clock, progress,
                                    stop_after_epoch, deadline_s)  # fmt: skip
        finally:
            elapsed_s = clock.save()
        return TrainResult(out_dir, config, model, history, data.n_classes, elapsed_s)


def _set_dense_weights(model: PNN, weights: list[Tensor]) -> None:
    """Copy ``weights`` into the model's dense layers (ConfigError naming a count or shape that
    does not fit)."""
    layers = [m for m in model.layers if type(m) is RCSpikeDense]
    if len(weights) != len(layers):
        raise ConfigError(f"init_weights holds {len(weights)} matrices for {len(layers)} dense layers")
    with torch.no_grad():
        for k, (layer, w) in enumerate(zip(layers, weights)):
            if tuple(w.shape) != tuple(layer.weight.shape):
                raise ConfigError(f"init_weights[{k}] has shape {tuple(w.shape)}, the layer "
                                  f"{tuple(layer.weight.shape)}: give the weights of the same architecture")
            layer.weight.copy_(w.to(layer.weight))


def _train_epochs(config: TrainConfig, out_dir: Path, model: PNN, data: DataSplits,
                  state: dict | None, clock: RunClock, progress: bool,
                  stop_after_epoch: int | None, deadline_s: float | None) -> list[dict]:  # fmt: skip
    """The epochs of :func:`train` still to do (resuming ``state``), until ``stop_after_epoch`` or
    until the next epoch is expected to end after ``deadline_s`` (``time.perf_counter()``), then
    the outputs; the history."""
    from tqdm.auto import tqdm

    from imcpnn.progress import LINE_INTERVAL_S, is_interactive, progress_bar

    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr)
    shuffle_gen = torch.Generator().manual_seed(config.seed)
    model_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    chip_gen = torch.Generator(device=device).manual_seed(config.seed + 2)  # HWA training's chips
    history: list[dict] = []
    ckpt_path = out_dir / CHECKPOINT_FILE
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        # RNG states are CPU byte tensors even for a CUDA generator
        shuffle_gen.set_state(state["shuffle_rng"].cpu())
        model_gen.set_state(state["model_rng"].cpu())
        if "chip_rng" in state:  # absent in checkpoints of older imcpnn (no variation then)
            chip_gen.set_state(state["chip_rng"].cpu())
        history = state["history"]
    n_classes, n_train = data.n_classes, len(data.y_train)
    batch_size = config.optim.batch_size
    n_batches = math.ceil(n_train / batch_size)
    # On a terminal: a batch bar per epoch and a line per epoch. In a log: no bars, and an epoch
    # line at most every LINE_INTERVAL_S seconds (and the last epoch's), not one per epoch.
    interactive = progress and is_interactive(sys.stderr)
    last_line_s = -math.inf
    for epoch in range(len(history) + 1, config.optim.epochs + 1):
        model.train()
        lr = epoch_lr(config.optim, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        start_s = time.perf_counter()
        order = torch.randperm(n_train, generator=shuffle_gen)
        loss_sum, correct = 0.0, 0
        bar = progress_bar(range(n_batches), desc=f"epoch {epoch}/{config.optim.epochs}",
                           enabled=interactive, unit="batch", leave=False)  # fmt: skip
        for batch in bar:
            idx = order[batch * batch_size : (batch + 1) * batch_size]
            xb, yb = data.x_train[idx].to(device), data.y_train[idx].to(device)
            t_out = model(xb, generator=model_gen, variation=config.variation, chip_generator=chip_gen)
            loss = pnn_loss(t_out, yb, n_classes, config.loss)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss is {loss.item()} at epoch {epoch}, batch {batch + 1}/{n_batches}; "
                    f"training stopped. The last good checkpoint (epoch {len(history)}) is kept in "
                    f"{ckpt_path}; lower the learning rate (--lr) and rerun with --overwrite"
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(yb)
            correct += (predict(t_out.detach(), n_classes) == yb).sum().item()
            done = min((batch + 1) * batch_size, n_train)
            bar.set_postfix(loss=f"{loss_sum / done:.4f}", acc=f"{correct / done:.3f}")
        train_s = time.perf_counter() - start_s
        test_loss, test_acc = evaluate(model, data.x_test, data.y_test, n_classes, config.loss,
                                       seed=config.seed)  # fmt: skip
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / n_train,
            "train_accuracy": correct / n_train,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "train_seconds": train_s,
            "lr": lr,
        }
        if config.eval_exact:
            record["test_accuracy_exact"] = evaluate(
                model, data.x_test, data.y_test, n_classes, config.loss, method="exact",
                seed=config.seed,
            )[1]  # fmt: skip
        history.append(record)
        _save_checkpoint(ckpt_path, config, model, optimizer, epoch, history, shuffle_gen, model_gen,
                         chip_gen, n_classes)  # fmt: skip
        _write_outputs(out_dir, config, model, history, clock.total_s())
        now_s = time.perf_counter()
        out_of_time = deadline_s is not None and now_s + (now_s - start_s) > deadline_s
        stop = out_of_time or (stop_after_epoch is not None and epoch >= stop_after_epoch)
        last = epoch == config.optim.epochs or stop
        if progress and (interactive or last or now_s - last_line_s >= LINE_INTERVAL_S):
            tqdm.write(
                f"epoch {epoch}: train loss {record['train_loss']:.4f} acc "
                f"{record['train_accuracy']:.4f} | test acc {test_acc:.4f} ({train_s:.1f} s)"
            )
            last_line_s = now_s
        if stop:
            break
    if history:  # also rewrites outputs deleted since the last epoch, and the total time
        _write_outputs(out_dir, config, model, history, clock.total_s())
        _plot_learning_curve(out_dir, config, history)
    return history


def load_trained(out_dir: str | Path, *, device: str = "cpu") -> TrainResult:
    """Reload a run written by :func:`train` (config, final weights, history).

    Raises:
        ResultsError: ``out_dir`` lacks config.json or checkpoint.pt, or one of them is corrupt
            (the message names the file).
    """
    out_dir = Path(out_dir)
    config_path, ckpt_path = out_dir / CONFIG_FILE, out_dir / CHECKPOINT_FILE
    if not config_path.is_file() or not ckpt_path.is_file():
        raise ResultsError(
            f"{out_dir} is not a finished training run (needs {CONFIG_FILE} and {CHECKPOINT_FILE}); "
            "train one with: imcpnn train --out DIR"
        )
    try:
        config = from_dict(TrainConfig, json.loads(config_path.read_text()))
    except (ValueError, UnicodeDecodeError) as err:  # ConfigError is a ValueError
        raise ResultsError(
            f"{config_path} is corrupt ({_short(err)}); rerun the same `imcpnn train` command to "
            "rewrite it from the checkpoint"
        ) from None
    state = _load_checkpoint(ckpt_path)
    model = PNN(config.model.arch, state["input_shape"], state["n_outputs"], config.model.physics)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    elapsed_s = None
    try:
        elapsed_s = float(json.loads((out_dir / ELAPSED_FILE).read_text())["elapsed_s"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return TrainResult(out_dir, config, model, state["history"], state["n_classes"], elapsed_s)


@dataclasses.dataclass(frozen=True)
class ScaledAnnResult:
    """Grid search of the scaled-ANN baseline.

    Attributes:
        alpha_plus, alpha_minus: best scales of the positive and negative weights.
        accuracy: test accuracy of the rescaled model at the target E with the best scales.
        alphas_plus, alphas_minus: the grid axes.
        grid: (len(alphas_plus), len(alphas_minus)) training-set accuracy of every pair.
    """

    alpha_plus: float
    alpha_minus: float
    accuracy: float
    alphas_plus: tuple[float, ...]
    alphas_minus: tuple[float, ...]
    grid: tuple[tuple[float, ...], ...]


def rescaled_model(model: PNN, physics: LayerPhysics, alpha_plus: float, alpha_minus: float) -> PNN:
    """Copy of ``model`` with new physics and weights w -> alpha_plus w (w >= 0), alpha_minus w (w < 0)."""
    new = PNN(model.arch, model.input_shape, model.n_outputs, physics)
    new.load_state_dict(
        {k: torch.where(v >= 0, alpha_plus * v, alpha_minus * v) for k, v in model.state_dict().items()}
    )
    return new.to(next(model.parameters()).device).eval()


def scaled_ann_search(
    model: PNN, data: DataSplits, e_plus: float, e_minus: float, *,
    alphas_plus=None, alphas_minus=None, loss: LossConfig = LossConfig(), steps: int = 30,
    seed: int = 0,
) -> ScaledAnnResult:  # fmt: skip
    """The "scaled ANN" baseline: a model trained at |E| = 100 run at finite E after rescaling.

    Every (alpha_plus, alpha_minus) of the grid (default 0.5 ... 2.0 in steps of 0.1) is scored by
    training-set accuracy at (e_plus, e_minus) with DSTD at ``steps``; the best pair is then scored
    on the test set (so the test set never chooses the scales).
    """
    alphas_plus = tuple(alphas_plus or [round(0.5 + 0.1 * i, 2) for i in range(16)])
    alphas_minus = tuple(alphas_minus or alphas_plus)
    physics = dataclasses.replace(model.physics, e_plus=e_plus, e_minus=e_minus)
    grid = []
    for a_plus in alphas_plus:
        row = []
        for a_minus in alphas_minus:
            scaled = rescaled_model(model, physics, a_plus, a_minus)
            row.append(evaluate(scaled, data.x_train, data.y_train, data.n_classes, loss,
                                steps=steps, seed=seed)[1])  # fmt: skip
        grid.append(tuple(row))
    flat = [(acc, i, j) for i, row in enumerate(grid) for j, acc in enumerate(row)]
    _, i, j = max(flat, key=lambda item: (item[0], -item[1], -item[2]))
    best = rescaled_model(model, physics, alphas_plus[i], alphas_minus[j])
    accuracy = evaluate(best, data.x_test, data.y_test, data.n_classes, loss, steps=steps, seed=seed)[1]
    return ScaledAnnResult(alphas_plus[i], alphas_minus[j], accuracy, alphas_plus, alphas_minus,
                           tuple(grid))  # fmt: skip
