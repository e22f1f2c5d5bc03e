"""Fashion-MNIST MLP 784-400-400-10 RC-Spike PNN benchmark (method.md section 3; paper ~90.5 %).

Trains with DSTD M = 10 (random grid offset per layer and mini-batch), evaluates at M = 30, finite
reversal potentials (default E_plus = 2.8, E_minus = -1.53), spike-time noise 0.01 (`--noise-sigma`), Adam lr 1e-4,
batch 32, and prints test accuracy and seconds per epoch. The run is resumable (rerun the same
command) and ends with one summary line starting with ``SUMMARY``; the summary, every epoch's
training seconds and accuracies are recorded in ``benchmarks/results/fashion_mnist_mlp_<--name>.json``
(the epochs' times are those of the runs that made them: a resumed run's load average covers only
its own epochs).

    python benchmarks/fashion_mnist_mlp.py --epochs 50 --device cuda --out runs/fmnist_mlp
    python benchmarks/fashion_mnist_mlp.py --epochs 1 --subset 10000 --out /tmp/fm   # quick CPU look

``--time-budget-s S`` trains whole epochs only while the next one is expected to end within S
seconds of the training's start (the last epoch's wall time as the estimate); the record then holds
the epochs done of ``--epochs`` (``summary.stopped_by_budget``), and rerunning continues the run.

``--eval-variants`` then evaluates the trained model at other evaluation grids M, without the
inference noise and with the exact solver (rerun a finished run's command with it: the training is
not repeated), so that what the evaluation costs in accuracy is measured apart from the training.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

import _record
from imcpnn.errors import ConfigError
from imcpnn.pnn import (DataConfig, LayerPhysics, LossConfig, ModelConfig, OptimConfig, TrainConfig, evaluate,
                        load_dataset, train)

#: How the trained model is evaluated by ``--eval-variants`` (name: solver keywords of
#: :func:`imcpnn.pnn.evaluate`): the evaluation grid M and the inference noise, the training's own
#: evaluation (M = 30, noise) among them.
EVAL_VARIANTS = {
    "dstd M=10, noise": {"steps": 10},
    "dstd M=30, noise": {"steps": 30},
    "dstd M=100, noise": {"steps": 100},
    "dstd M=30, no noise": {"steps": 30, "noise": False},
    "exact, no noise": {"method": "exact", "noise": False},
}


def evaluation_variants(result, config: TrainConfig, seed: int) -> dict:
    """Test accuracy of the trained model per :data:`EVAL_VARIANTS` (the same weights, only the
    evaluation differs), so that the evaluation grid and the noise are measured apart from the
    training."""
    data = load_dataset(config.data)
    out = {}
    for name, solver in EVAL_VARIANTS.items():
        out[name] = evaluate(result.model, data.x_test, data.y_test, data.n_classes, config.loss,
                             seed=seed, **solver)[1]
    return out


def e_rev(text: str) -> tuple[float, float]:
    """argparse type of ``--e-rev``: ``E_PLUS,E_MINUS``, two numbers."""
    try:
        e_plus, e_minus = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected E_PLUS,E_MINUS (two numbers), got {text!r}") from None
    return e_plus, e_minus


def train_within(config: TrainConfig, out: str, budget_s: float | None):
    """:func:`imcpnn.pnn.train` to ``config.optim.epochs``, or, with a budget, while the next epoch
    is expected to end within ``budget_s`` seconds of now (``train``'s ``time_budget_s``: the
    previous epoch's wall time, evaluation and checkpoint included, as the estimate; the first
    epoch always runs). Returns (the result, whether the budget stopped it)."""
    result = train(config, out, time_budget_s=budget_s)
    return result, len(result.history) < config.optim.epochs


def main(argv=None, *, script_file: str = __file__, doc: str | None = __doc__, arch: str = "mlp:400,400") -> int:
    """The command line of this benchmark, also for other architectures (``fashion_mnist_cnn.py``
    calls it with its own file, docstring and ``arch``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _record.parser(script_file, doc)
    parser.add_argument("--epochs", type=_record.positive_int, default=50, help="epochs (paper: 50)")
    parser.add_argument("--e-rev", type=e_rev, default="2.8,-1.53", help="E_PLUS,E_MINUS (default 2.8,-1.53)")
    parser.add_argument("--subset", type=_record.positive_int, help="training samples (default all 60000)")
    parser.add_argument("--test-subset", type=_record.positive_int, help="test samples (default all 10000)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (paper: 1e-4)")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                        help="constant (paper) or cosine from --lr towards 0 over the epochs")
    parser.add_argument("--noise-sigma", type=float, default=None,
                        help="spike-time noise in training and evaluation (default the paper's 0.01; 0 = none)")
    parser.add_argument("--tau-soft", type=float, default=None,
                        help="the loss's softmax temperature over -t (default the paper's 0.07)")
    parser.add_argument("--gamma", type=float, default=None,
                        help="the weight of the loss's temporal penalty sum (t - 0.9)^2 (default the paper's 2.6)")
    parser.add_argument("--silent-gradient", action="store_true",
                        help="train with a one-sided straight-through gradient at the output layer's window "
                             "end (a silent output neuron still learns to fire; LayerPhysics.silent_gradient); "
                             "same spike times")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device")
    parser.add_argument("--threads", type=_record.positive_int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--data-dir", type=_record.existing_dir,
                        help="Fashion-MNIST idx folder (default the Debian package's)")
    parser.add_argument("--seed", type=int, default=0, help="seed")
    parser.add_argument("--eval-variants", action="store_true",
                        help="also evaluate the trained model at M = 10, 30, 100 with noise, M = 30 without, "
                             "and the exact solver (test accuracy of each in the summary)")
    parser.add_argument("--time-budget-s", type=float, default=None,
                        help="train whole epochs while the next is expected to end within this many seconds "
                             "(rerun to continue); default: all --epochs")
    parser.add_argument("--out", required=True, help="run directory (resumable)")
    _record.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.lr <= 0:
        parser.error(f"argument --lr: must be > 0, got {args.lr}")
    noise_sigma = 0.01 if args.noise_sigma is None else args.noise_sigma
    if not 0 <= noise_sigma < 1:
        parser.error(f"argument --noise-sigma: must be in [0, 1), got {noise_sigma}")
    if args.tau_soft is not None and not args.tau_soft > 0:
        parser.error(f"argument --tau-soft: must be > 0, got {args.tau_soft}")
    if args.gamma is not None and not args.gamma >= 0:
        parser.error(f"argument --gamma: must be >= 0, got {args.gamma}")
    if args.time_budget_s is not None and not args.time_budget_s > 0:
        parser.error(f"argument --time-budget-s: must be > 0 seconds, got {args.time_budget_s}")
    e_plus, e_minus = args.e_rev
    loss = {k: v for k, v in (("tau_soft", args.tau_soft), ("gamma", args.gamma)) if v is not None}
    try:  # what the checks above leave to the configs (an infinite value, say) in one line too
        config = TrainConfig(
            data=DataConfig("fashion-mnist", data_dir=args.data_dir and str(args.data_dir), train_subset=args.subset,
                            test_subset=args.test_subset, seed=args.seed),
            model=ModelConfig(arch=arch, physics=LayerPhysics(
                e_plus=e_plus, e_minus=e_minus, train_steps=10, test_steps=30, random_offset=True,
                noise_sigma=noise_sigma, silent_gradient=args.silent_gradient)),
            optim=OptimConfig(lr=args.lr, batch_size=32, epochs=args.epochs, lr_schedule=args.lr_schedule),
            loss=LossConfig(**loss),
            seed=args.seed,
            device=args.device,
        )  # fmt: skip
    except ConfigError as err:
        parser.error(" ".join(str(err).split()))
    recorder = _record.Recorder(script_file, args, argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result, stopped = train_within(config, args.out, args.time_budget_s)
    seconds = [h["train_seconds"] for h in result.history]
    machine = _record.machine(torch=True)
    device = machine["gpu"] if args.device == "cuda" else machine["processor"]
    summary = {
        "test_accuracy": result.test_accuracy,
        "best_test_accuracy": max(h["test_accuracy"] for h in result.history),
        "epochs": len(result.history),
        "epochs_planned": args.epochs,
        "stopped_by_budget": stopped,
        "arch": arch,
        "train_seconds_per_epoch": sum(seconds) / len(seconds),
        "device": f"{args.device} ({device}, {torch.get_num_threads()} threads)",
        "n_train": args.subset or 60000,
        "e_plus": e_plus,
        "e_minus": e_minus,
        "noise_sigma": noise_sigma,
        "tau_soft": config.loss.tau_soft,
        "gamma": config.loss.gamma,
        "silent_gradient": args.silent_gradient,
    }
    headline = {"test accuracy": summary["test_accuracy"], "best test accuracy": summary["best_test_accuracy"],
                "epochs": summary["epochs"], "n_train": summary["n_train"],
                "train s / epoch": summary["train_seconds_per_epoch"], "device": args.device}
    if args.eval_variants:
        summary["evaluation_variants"] = evaluation_variants(result, config, args.seed)
        headline |= {f"acc {name}": acc for name, acc in summary["evaluation_variants"].items()
                     if name in ("dstd M=100, noise", "exact, no noise")}
    path = recorder.write(machine=machine, headline=headline, repeats={"train_seconds_per_epoch": seconds},
                          results={"summary": summary, "history": result.history, "run_dir": str(args.out)})
    print(f"result: {path}")
    print("SUMMARY " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
