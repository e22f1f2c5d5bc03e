"""``imcpnn train``: train an RC-Spike PNN (DSTD, finite reversal potentials) on a data set."""

from __future__ import annotations

from imcpnn.verbs._common import positive_seconds

SUMMARY = "train an RC-Spike PNN with reversal potentials (DSTD) on iris/digits/fashion-mnist/cifar10"

DESCRIPTION = """\
Train a physical neural network whose neurons follow the RC-Spike circuit model with finite
reversal potentials E_plus, E_minus (and optionally the discharge non-ideality E_dis), using the
differentiable spike-time discretization (DSTD) with M grid points in training and M_test in
evaluation, a random grid offset per layer and mini-batch, and Gaussian spike-time noise.

Loss: cross-entropy of softmax(-t/0.07) + 2.6 * sum_i (t_i - 0.9)^2; Adam (paper defaults:
lr 1e-4, batch 32). A neuron that stays silent (t = 1, the window's end) gets no gradient from
the method's clip, and one silent on every sample never learns again (an output neuron that
does is a class never predicted); --silent-gradient lets through the output layer's clip the
gradient that would make a silent output neuron fire (one-sided straight-through; the spike
times are the same). The run directory gets config.json, checkpoint.pt (every epoch), history.csv,
results.json, model.pt and learning_curve.png. Rerun the same command to resume an interrupted
run, or one that --time-budget-s paused between epochs (time-boxed jobs); a different config in
the same --out is refused unless --overwrite.

E values come from --e-rev / --e-dis, or from a characterization JSON (keys e_plus, e_minus,
e_dis) written by `imcpnn characterize`. |E| = 100 stands in for the ideal ANN; add
--scaled-ann E_PLUS,E_MINUS to then evaluate that model at finite E after a grid search over the
positive/negative weight scales (written to scaled_ann.json).

Device variation (hardware-aware training): --variation FILE reads a JSON of mismatch spreads in
model units (keys w_abs, sigma_rel_plus, sigma_rel_minus: relative current spread of w > 0 / w < 0
on a |w| grid; sigma_e_plus_rel, sigma_e_minus_rel: relative spread of each synapse's E;
sigma_threshold: spread of each neuron's threshold; sigma_ramp_rel: relative spread of its
discharger; source: where the numbers come from), e.g.
  {"w_abs": [0.1, 1.0], "sigma_rel_plus": [0.05, 0.02], "sigma_rel_minus": [0.06, 0.03],
   "sigma_threshold": 0.01, "source": "my Monte Carlo run"}
Every mini-batch then runs on a freshly drawn chip (dense networks only); the evaluation after
each epoch stays nominal. At the end the model is scored on 20 reproducible chips (noise off):
variation_eval.json holds accuracy_nominal, accuracy_chips, their mean and std (sample, n - 1).

Examples:
  imcpnn train --dataset iris --arch mlp:5 --n-outputs 5 --lr 1e-2 --batch-size 8 --epochs 60 --out runs/iris
  imcpnn train --dataset fashion-mnist --arch mlp:400,400 --e-rev 2.8,-1.53 --epochs 50 --out runs/fmnist
  imcpnn train --dataset cifar10 --data-dir ~/cifar-10-batches-py --arch vgg7 --device cuda --out runs/c10
  imcpnn train --dataset iris --arch mlp:5 --characterization char/characterization.json --out runs/iris_pnn
  imcpnn train --dataset iris --arch mlp:5 --n-outputs 5 --lr 1e-2 --batch-size 8 --epochs 60 --variation mismatch.json --out runs/iris_hwa
"""


def _pair(text: str) -> tuple[float, float]:
    import argparse

    try:
        e_plus, e_minus = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not 'E_PLUS,E_MINUS' (two numbers, e.g. 2.8,-1.53)"
        ) from None
    return e_plus, e_minus


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", choices=("iris", "digits", "fashion-mnist", "cifar10"),
                        help="data set (default iris)")  # fmt: skip
    parser.add_argument("--arch", help="mlp:W1,W2,... (hidden widths), mlp: (none) or vgg7 (default mlp:400,400)")
    parser.add_argument("--n-outputs", type=int, help="output neurons (>= classes; default = classes)")
    parser.add_argument("--e-rev", type=_pair, metavar="E_PLUS,E_MINUS",
                        help="reversal potentials (default 2.8,-1.53; 100,-100 = ideal ANN)")  # fmt: skip
    parser.add_argument("--e-dis", type=float, help="discharge non-ideality E_dis > 1 (default none)")
    parser.add_argument("--characterization", metavar="FILE",
                        help="JSON with keys e_plus, e_minus, e_dis (from imcpnn characterize)")  # fmt: skip
    parser.add_argument("--dstd-steps", type=int, help="DSTD grid size M in training (default 10)")
    parser.add_argument("--test-steps", type=int, help="DSTD grid size M in evaluation (default 30)")
    parser.add_argument("--fixed-offset", action="store_true", help="grid offset 0 instead of random")
    parser.add_argument("--noise", type=float, help="spike-time noise sigma (default 0.01; 0 = off)")
    parser.add_argument("--silent-gradient", action="store_true",
                        help="one-sided straight-through gradient at the output layer's window end: an "
                             "output neuron silent on every sample still learns to fire (same spike times; "
                             "default: the method's clip, no gradient)")
    parser.add_argument("--eval-exact", action="store_true", help="also evaluate with the exact solver")
    parser.add_argument("--epochs", type=int, help="epochs (default 50)")
    parser.add_argument("--batch-size", type=int, help="mini-batch size (default 32)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default 1e-4)")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"),
                        help="learning rate over the epochs: constant (default, the paper's) or cosine "
                             "(from --lr down towards 0 in the last epoch)")
    parser.add_argument("--seed", type=int, help="seed of split, init, shuffling, offsets, noise (default 0)")
    parser.add_argument("--subset", type=int, metavar="N", help="use only N training samples (fast runs)")
    parser.add_argument("--test-subset", type=int, metavar="N", help="use only N test samples")
    parser.add_argument("--data-dir", help="folder of the Fashion-MNIST idx / CIFAR-10 pickle files")
    parser.add_argument("--config", metavar="FILE.json",
                        help="TrainConfig JSON (e.g. a run's config.json); flags override it")  # fmt: skip
    parser.add_argument("--device", choices=("cpu", "cuda"), help="torch device (default cpu)")
    parser.add_argument("--variation", metavar="FILE",
                        help="JSON of device-variation spreads: train on a fresh chip per mini-batch, "
                             "then score 20 chips (variation_eval.json)")  # fmt: skip
    parser.add_argument("--scaled-ann", type=_pair, metavar="E_PLUS,E_MINUS",
                        help="after training, grid-search weight scales for these finite E")  # fmt: skip
    parser.add_argument("--time-budget-s", type=positive_seconds, metavar="SECONDS",
                        help="train whole epochs while the next is expected to end within SECONDS of "
                             "the start (the last epoch's time as the estimate); rerun to continue")
    parser.add_argument("--overwrite", action="store_true", help="discard a previous run in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--out", required=True, help="run directory")


def _physics_overrides(args) -> dict:
    import json
    from pathlib import Path

    from imcpnn.errors import ConfigError

    out = {}
    if args.characterization:
        path = Path(args.characterization)
        try:
            data = json.loads(path.read_text())
            out = {"e_plus": float(data["e_plus"]), "e_minus": float(data["e_minus"])}
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(
                f"--characterization {path}: needs a JSON file with numeric keys e_plus, e_minus "
                f"(and optionally e_dis), as written by imcpnn characterize ({err!r})"
            ) from None
        if data.get("e_dis") is not None:
            out["e_dis"] = float(data["e_dis"])
    if args.e_rev:
        out["e_plus"], out["e_minus"] = args.e_rev
    for flag, key in (("e_dis", "e_dis"), ("dstd_steps", "train_steps"),
                      ("test_steps", "test_steps"), ("noise", "noise_sigma")):  # fmt: skip
        if getattr(args, flag) is not None:
            out[key] = getattr(args, flag)
    if args.fixed_offset:
        out["random_offset"] = False
    if args.silent_gradient:
        out["silent_gradient"] = True
    return out


def config_from_args(args):
    """The TrainConfig of the command line: --config file (or defaults), then the flags on top."""
    from imcpnn.config import from_dict, load_json, to_dict
    from imcpnn.errors import ConfigError
    from imcpnn.pnn.training import TrainConfig

    base = load_json(TrainConfig, args.config) if args.config else TrainConfig()
    data = to_dict(base)
    sections = {
        "data": {"dataset": args.dataset, "data_dir": args.data_dir, "train_subset": args.subset,
                 "test_subset": args.test_subset, "seed": args.seed},
        "model": {"arch": args.arch, "n_outputs": args.n_outputs},
        "optim": {"lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs,
                  "lr_schedule": args.lr_schedule},
        "": {"seed": args.seed, "device": args.device, "eval_exact": args.eval_exact or None},
    }  # fmt: skip
    for section, values in sections.items():
        target = data[section] if section else data
        target.update({k: v for k, v in values.items() if v is not None})
    data["model"]["physics"].update(_physics_overrides(args))
    if args.variation:
        from imcpnn.pnn.variation import VariationModel

        try:
            data["variation"] = VariationModel.load(args.variation).to_dict()
        except ConfigError as err:
            raise ConfigError(f"--variation: {err}") from None
    return from_dict(TrainConfig, data)


#: Chips scored after hardware-aware training (variation_eval.json).
N_EVAL_CHIPS = 20


def _variation_eval(result, data) -> dict:
    """Nominal and per-chip test accuracies of a run trained with a variation (noise off)."""
    import statistics

    from imcpnn.pnn.training import LossConfig, evaluate, evaluate_chips

    config = result.config
    nominal = evaluate(result.model, data.x_test, data.y_test, data.n_classes, LossConfig(), noise=False)[1]
    chips = evaluate_chips(result.model, data.x_test, data.y_test, data.n_classes, config.variation,
                           N_EVAL_CHIPS, config.seed)  # fmt: skip
    return {"variation": config.variation.to_dict(), "n_chips": N_EVAL_CHIPS, "accuracy_nominal": nominal,
            "accuracy_chips": chips, "mean": statistics.fmean(chips), "std": statistics.stdev(chips)}  # fmt: skip


def run(args) -> int:
    import json
    from pathlib import Path

    from imcpnn.pnn.data import load_dataset
    from imcpnn.pnn.training import scaled_ann_search, train
    from imcpnn.verbs._common import prepare_out_dir

    config = config_from_args(args)
    prepare_out_dir(args.out)
    data = load_dataset(config.data)
    result = train(config, args.out, progress=not args.quiet, overwrite=args.overwrite, data=data,
                   time_budget_s=args.time_budget_s)
    last = result.history[-1]
    print(f"{config.data.dataset} {config.model.arch}: test accuracy {last['test_accuracy']:.4f} "
          f"after {last['epoch']} epochs; results in {args.out}")  # fmt: skip
    if len(result.history) < config.optim.epochs:
        print(f"stopped by --time-budget-s after epoch {last['epoch']} of {config.optim.epochs}: "
              "rerun the same command to continue")
        return 0
    if args.scaled_ann:
        e_plus, e_minus = args.scaled_ann
        found = scaled_ann_search(result.model, data, e_plus, e_minus, loss=config.loss,
                                  steps=config.model.physics.test_steps, seed=config.seed)  # fmt: skip
        from imcpnn.config import to_dict

        (Path(args.out) / "scaled_ann.json").write_text(
            json.dumps({"e_plus": e_plus, "e_minus": e_minus, **to_dict(found)}, indent=2)
        )
        print(f"scaled ANN at E = ({e_plus}, {e_minus}): alpha_plus {found.alpha_plus}, "
              f"alpha_minus {found.alpha_minus}, test accuracy {found.accuracy:.4f}")  # fmt: skip
    if config.variation is not None:
        from imcpnn.rundir import write_json_atomic

        report = _variation_eval(result, data)
        write_json_atomic(Path(args.out) / "variation_eval.json", report)
        print(f"device variation: nominal accuracy {report['accuracy_nominal']:.4f}, "
              f"{N_EVAL_CHIPS} chips {report['mean']:.4f} +- {report['std']:.4f} (variation_eval.json)")
    return 0
