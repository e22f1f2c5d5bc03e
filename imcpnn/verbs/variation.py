"""``imcpnn variation``: corners, temperature and Monte Carlo mismatch, in SPICE and in the model."""

from __future__ import annotations

import argparse

from imcpnn.verbs._common import add_executor_arguments, positive_int

SUMMARY = "process variation: corner/temperature sweep, SPICE Monte Carlo vs the model, hardware-aware training"

DESCRIPTION = """\
How does the trained network survive the silicon? On the validation's network (Iris 5-5-5,
bottom-up model, trained and calibrated at sky130 tt, 27 C) this verb:

  1. characterizes device mismatch by SPICE Monte Carlo (the sky130 *_mm models, each device
     its own threshold offset): sigma(I)/I of the synapse NMOS/PMOS and the discharger against
     the current, the spread of lambda (hence E) and of the sensing threshold V_switch;
  2. turns it into a variation model in model units (DIR/variation_model.json; `imcpnn train
     --variation DIR/variation_model.json` trains any network hardware-aware with it);
  3. trains the network plainly and hardware-aware (a fresh random chip per mini-batch);
  4. simulates both on --mc Monte Carlo chips in ngspice (chip k: seed S + k, the same chips for
     both networks) and predicts their accuracy distribution with the model on chips drawn from
     the variation model: mean, spread and histograms side by side;
  5. for every corner x temperature: runs the plain network with the nominal gate biases,
     re-mapped with the devices re-characterized there, and re-mapped with everything the
     bottom-up pipeline measures (devices, discharger design factor, C_eff, delay, kick)
     measured there; compares the bottom-up model with both re-mapped runs.

Writes DIR/variation.json (corners, mismatch, mc, models), figures, report.md and report.html.
Each stage is saved when it finishes: rerun the same command to resume. Cost: ngspice runs of
--n-test samples, 3 per corner point (plus its testbench runs) and 2 per Monte Carlo chip (tens
of minutes on 2 cores with the defaults; --mc 4 --n-test 10 --corners tt,ss for a first look).

Examples:
  imcpnn variation --out runs/var
  imcpnn variation --out runs/var_quick --corners tt,ss --mc 4 --n-test 10 --coarse
  imcpnn variation --out runs/var_temp --corners tt --temps -40,27,85
  imcpnn variation --out runs/var --mc 100 --executor dask --scheduler tcp://head:8786
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="result folder (created; rerun to resume)")
    parser.add_argument("--corners", default=None,
                        help="comma-separated sky130 corners (tt, ss, ff, sf, fs; default all five)")
    parser.add_argument("--temps", default=None,
                        help="comma-separated temperatures in deg C, within -40..125 (default 27)")
    parser.add_argument("--mc", type=int, default=None, help="Monte Carlo chips per network (default 20)")
    parser.add_argument("--n-test", type=int, default=None, help="test samples per chip and corner (default 30)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the first Monte Carlo chip (default 1)")
    parser.add_argument("--mismatch-instances", type=int, default=None,
                        help="device copies per mismatch Monte Carlo deck (default 100)")
    parser.add_argument("--model-chips", type=positive_int, default=None,
                        help="chips drawn from the variation model (default 200)")
    parser.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default 100)")
    parser.add_argument("--coarse", action="store_true", help="scale searches on a 10 %% grid")
    parser.add_argument("--config", default=None, help="VariationConfig JSON (e.g. a previous run's config.json)")
    parser.add_argument("--cache-dir", default=None,
                        help="SPICE result cache (default $IMCPNN_CACHE or ~/.cache/imcpnn)")
    add_executor_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace):
    """VariationConfig from --config (if any) with the command-line overrides applied."""
    import dataclasses

    from imcpnn.config import load_json
    from imcpnn.validation import VariationConfig, parse_list

    config = load_json(VariationConfig, args.config) if args.config else VariationConfig()
    changes = {name: getattr(args, arg) for name, arg in
               (("mc", "mc"), ("n_test", "n_test"), ("seed", "seed"),
                ("mismatch_instances", "mismatch_instances"), ("model_chips", "model_chips"))
               if getattr(args, arg, None) is not None}
    if args.corners is not None:
        changes["corners"] = parse_list(args.corners, lambda c: c.lower(), "--corners")
    if args.temps is not None:
        changes["temps_c"] = parse_list(args.temps, float, "--temps")
    validation = config.validation
    if args.epochs is not None:
        validation = dataclasses.replace(validation, epochs=args.epochs)
    if args.coarse:
        validation = dataclasses.replace(validation, search=dataclasses.replace(validation.search, steps=(0.1,)))
    return dataclasses.replace(config, validation=validation, **changes)


def run(args: argparse.Namespace) -> int:
    from imcpnn.validation import run_variation
    from imcpnn.verbs._common import check_executor_arguments, open_executor, prepare_out_dir

    config = config_from_args(args)
    check_executor_arguments(args)
    prepare_out_dir(args.out)
    with open_executor(args) as executor:
        result = run_variation(config, args.out, cache_dir=args.cache_dir, progress=not args.quiet,
                               command=f"imcpnn {args.verb}", executor=executor, max_workers=args.workers)
    mc = result["mc"]
    for net, label in (("plain", "plain"), ("hwa", "hardware-aware")):
        print(f"{label}: accuracy over {mc['n']} SPICE chips {mc[f'mean_accuracy_spice_{net}']:.3f} "
              f"+- {mc[f'std_accuracy_spice_{net}']:.3f}, model {mc[f'mean_accuracy_model_{net}']:.3f} "
              f"+- {mc[f'std_accuracy_model_{net}']:.3f} (nominal model {mc[f'accuracy_nominal_model_{net}']:.3f})")
    if "mean_accuracy_model_loss_only" in mc:
        print(f"plain + the hardware-aware loss, no chips (model only): {mc['mean_accuracy_model_loss_only']:.3f}")
    print("model, plain network, one variation term at a time: " + ", ".join(
        f"{row['term']} {row['mean_accuracy_model']:.3f}" for row in mc["term_budget_plain"]))
    for row in result["corners"]:
        def fmt(x):
            return "n/a" if x is None else f"{x:.3f}"
        print(f"{row['corner']} {row['temp_c']:g} C: accuracy SPICE nominal mapping "
              f"{fmt(row['accuracy_spice_nominal_mapping'])}, devices re-characterized "
              f"{fmt(row.get('accuracy_spice_devices_only'))}, everything re-measured "
              f"{fmt(row['accuracy_spice_recharacterized'])}; bottom-up RMSE "
              f"{fmt(row.get('rmse_bottom_up_devices_only_ns'))} / {fmt(row['rmse_bottom_up_ns'])} ns")
    print(f"report: {args.out}/report.html")
    return 0
