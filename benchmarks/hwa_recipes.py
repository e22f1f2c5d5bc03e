"""Which hardware-aware training recipe to use, judged by the model on training samples only.

Claim measured: how much of the accuracy that mismatch costs the Iris network each
hardware-aware recipe (``imcpnn.validation.HwaTraining``: fine-tune or retrain, epochs, learning
rate, the loss's t_ref and gamma) wins back, in the bottom-up model with the variation model of a
finished ``imcpnn variation`` folder. Every recipe is scored on the run's **training** samples
over ``--chips`` chips drawn from the variation model (seeds other than the report's):
``imcpnn.validation.score_hwa_recipes``. No SPICE run and no test sample enters the score, so
the recipe chosen here (the default of ``HwaTraining``) is not chosen on what ``imcpnn
variation`` then reports (SPICE Monte Carlo on the test samples).

    .venv/bin/imcpnn variation --out runs/var --n-test 14
    .venv/bin/python benchmarks/hwa_recipes.py --run runs/var --work-dir runs/hwa_recipes --name default

Records ``benchmarks/results/hwa_recipes_<--name>.json``: per recipe its fields, the model's mean
accuracy over the chips and its nominal accuracy on the training samples, the training seconds,
and the recovered fraction (mean - plain mean) / (plain nominal - plain mean).
"""

from __future__ import annotations

import json
import sys

import _record

#: The recipes compared by default: the earlier default (lr 0.003) and one change at a time.
RECIPES = {
    "lr0.003 (earlier default)": {"lr": 0.003},
    "lr0.003, 1500 epochs": {"lr": 0.003, "epochs": 1500},
    "lr0.003, t_ref 0.3": {"lr": 0.003, "t_ref": 0.3},
    "lr0.003, gamma 3": {"lr": 0.003, "gamma": 3.0},
    "lr0.003, from scratch, 1500 epochs": {"lr": 0.003, "from_plain": False, "epochs": 1500},
    "lr0.01": {"lr": 0.01},
    "lr0.01, 1500 epochs": {"lr": 0.01, "epochs": 1500},
    "lr0.01, gamma 3": {"lr": 0.01, "gamma": 3.0},
    "lr0.03": {"lr": 0.03},
}


def recovered(row: dict, plain: dict) -> float | None:
    """Share of the plain network's mismatch loss (on the training samples) the recipe wins back."""
    loss = plain["accuracy_nominal_model_train"] - plain["mean_accuracy_model_train"]
    return None if loss <= 0 else (row["mean_accuracy_model_train"] - plain["mean_accuracy_model_train"]) / loss


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _record.parser(__file__, __doc__)
    parser.add_argument("--run", type=_record.existing_dir, required=True,
                        help="a finished `imcpnn variation` folder (its network and variation model)")
    parser.add_argument("--work-dir", required=True, help="where each recipe trains (resumable)")
    parser.add_argument("--recipes", default=None,
                        help="JSON object name -> HwaTraining fields (default: the RECIPES of this script)")
    parser.add_argument("--chips", type=_record.positive_int, default=200, help="model chips per network")
    _record.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        spec = RECIPES if args.recipes is None else json.loads(args.recipes)
        if not isinstance(spec, dict) or not all(isinstance(v, dict) for v in spec.values()):
            raise ValueError("not an object of objects")
    except ValueError as err:
        parser.error(f"argument --recipes: expected a JSON object name -> HwaTraining fields ({err})")
    recorder = _record.Recorder(__file__, args, argv)

    from imcpnn.config import from_dict
    from imcpnn.errors import ConfigError
    from imcpnn.validation import HwaTraining, score_hwa_recipes

    try:
        recipes = {name: from_dict(HwaTraining, fields) for name, fields in spec.items()}
        rows = score_hwa_recipes(args.run, recipes, args.work_dir, n_chips=args.chips, progress=True)
    except ConfigError as err:
        parser.error(str(err))
    plain = rows[0]
    for row in rows:
        row["recovered"] = recovered(row, plain) if row["recipe"] != "plain" else None
        print(f"{row['recipe']:<36} chips {row['mean_accuracy_model_train']:.3f}  nominal "
              f"{row['accuracy_nominal_model_train']:.3f}  recovered "
              f"{'-' if row['recovered'] is None else format(row['recovered'], '.2f')}", flush=True)
    best = max(rows[1:], key=lambda r: r["mean_accuracy_model_train"])
    headline = {"plain on chips (train)": plain["mean_accuracy_model_train"],
                "best recipe": best["recipe"], "best on chips (train)": best["mean_accuracy_model_train"],
                "best recovered (train)": best["recovered"]}
    path = recorder.write(machine=_record.machine(torch=True), headline=headline, results=rows,
                          repeats={r["recipe"]: [r["train_s"]] for r in rows[1:]})
    print(f"result: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
