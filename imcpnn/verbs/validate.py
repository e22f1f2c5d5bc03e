"""``imcpnn validate``: model vs SPICE for the top-down, bottom-up and trace-fitted pipelines."""

from __future__ import annotations

import argparse

from imcpnn.verbs._common import add_corner_argument, add_executor_arguments

#: ``SearchConfig.method``'s values (imcpnn.validation._config.SEARCH_METHODS, which a test checks
#: this equals), spelled out so that building the parser does not import torch.
SEARCH_METHOD_CHOICES = ("gauss-newton", "quadratic", "stencil")

SUMMARY = "model vs SPICE: top-down vs bottom-up vs trace-fitted, scale searches, report"

DESCRIPTION = """\
Run the method's headline experiment (the paper's Iris circuit) and write a report folder:

  1. characterize sky130 devices (or read --characterization FILE) -> E_plus, E_minus, E_dis;
  2. measure the bottom-up model's circuit terms on a single-layer testbench transient: the
     membrane's effective capacitance C_eff (charge measurement), the firing-path delay and the
     end-of-accumulation charge kick;
  3. train three Iris models: ideal (|E| = 100, top-down), bottom-up, trace-fitted (every
     parameter fitted jointly, with standard errors, to the membranes and spike times of every
     layer of the searched bottom-up network on the calibration samples; --trace-fit-source
     testbench: to the step 2 testbench's), then, after its own search, refitted to its own
     network's calibration runs to predict its test run (--no-trace-refit: not);
  4. map weights to gate biases; search the current scales against ngspice (a trust-region
     search on a linear model of every spike-time error, Gauss-Newton, its slope the pipeline's
     own model's, corrected by the SPICE candidates; --search-method
     quadratic: a quadratic model of the MSE; stencil: the coarse-to-fine compass search both
     are checked against) on held-out calibration samples (training samples; --calibration test for the method's
     in-sample protocol): top-down scale_plus and scale_minus, the others one global scale;
     the discharger sits at its design current for all (--discharger searched: all search it);
  5. simulate the test samples at the best scales; write summary.json (with the protocol, the
     honest metrics and the error budget), CSV tables, PNG figures, report.md and report.html.

Every stage is saved when it finishes: rerun the same command to resume after an interruption.
`imcpnn report DIR` redraws the report from the saved results without simulating.

SPICE netlist: by default the schematic plus a wire-capacitance estimate. --post-layout first
lays out the network (and the trace-fit testbench), runs magic DRC, extracts devices and parasitic
capacitances and checks LVS with netgen (files in DIR/layout/), then simulates every pipeline on
the extracted netlist, mapping weights with the extracted membrane capacitance; the report adds
the layouts, the checks, schematic vs post-layout spike times (bottom-up network, same gate
biases) and the membrane capacitance the bottom-up scale recovers vs the extracted one. It needs
magic and netgen-lvs (Debian: apt-get install magic netgen-lvs) and PDK_ROOT pointing at an
open_pdks install holding sky130A/libs.tech/magic/sky130A.tech (e.g. ~/.ciel after `ciel
enable`); without them it stops at once, saying what is missing.

Examples:
  imcpnn validate --out runs/val
  imcpnn validate --out runs/quick --n-test 10 --epochs 30 --coarse
  imcpnn validate --out runs/val_ff --corner ff --characterization runs/char_ff/characterization.json
  PDK_ROOT=~/.ciel imcpnn validate --out runs/val_pl --post-layout
  imcpnn validate --out runs/val --executor dask --scheduler tcp://head:8786

--executor dask sends the network batches to a Dask cluster (a LocalCluster here, or the one at
--scheduler; docs/distributed.md); results come back into this machine's cache, so a rerun
resumes from them with either executor.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="result folder (created; rerun to resume)")
    parser.add_argument("--config", default=None,
                        help="ValidationConfig JSON file (e.g. a previous run's config.json); "
                             "options given below override it")
    parser.add_argument("--characterization", default=None,
                        help="existing characterization.json to use instead of simulating one")
    parser.add_argument("--n-test", type=int, default=None, help="test samples simulated (default 50)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per model (default 100)")
    parser.add_argument("--search-steps", default=None,
                        help="relative steps of the scale search, coarse to fine, comma separated "
                             "(default 0.1,0.03,0.01: 1 %% resolution; the trust-region searches "
                             "use the first and the last)")
    parser.add_argument("--search-method", choices=SEARCH_METHOD_CHOICES, default=None,
                        help="scale search: gauss-newton (linear model of every spike-time error, "
                             "guided by the pipeline's own model, trust region; default), quadratic (quadratic model of the MSE, trust "
                             "region) or stencil (coarse-to-fine compass search, the reference)")
    parser.add_argument("--no-model-guide", action="store_true",
                        help="gauss-newton search without the pipeline's model as its guide (the "
                             "slope from the SPICE candidates alone, n + 1 candidates to start)")
    parser.add_argument("--coarse", action="store_true",
                        help="scale searches on a 10 %% grid (fast, for CI and a first look)")
    add_corner_argument(parser, None, "sky130 corner: %(choices)s (default: the config's, tt)")
    parser.add_argument("--temp", type=float, default=None, help="temperature in deg C (default 27)")
    parser.add_argument("--seed", type=int, default=None, help="seed of split, init and testbench (default 0)")
    parser.add_argument("--post-layout", action="store_true",
                        help="simulate the netlist extracted from the generated layout (needs magic, "
                             "netgen-lvs and PDK_ROOT with the sky130A tech file; adds a layout "
                             "stage before the others; see the description)")
    parser.add_argument("--cache-dir", default=None,
                        help="SPICE result cache (default $IMCPNN_CACHE or ~/.cache/imcpnn)")
    parser.add_argument("--calibration", choices=("train", "test"), default=None,
                        help="samples the scale searches simulate: train (held out, default) or test "
                             "(in-sample, the method's reference protocol)")
    parser.add_argument("--trace-fit-source", choices=("network", "testbench"), default=None,
                        help="what the trace-fitted parameters are fitted to: network (every layer "
                             "of the bottom-up network on the calibration samples, default) or "
                             "testbench (the single-layer testbench of the bottom-up terms)")
    parser.add_argument("--no-trace-refit", action="store_true",
                        help="predict the trace-fitted network with the parameters it trained with, "
                             "not refitted to its own calibration runs (the default refits)")
    parser.add_argument("--discharger", choices=("fixed", "searched"), default=None,
                        help="discharger at its design current for every pipeline (fixed, default) "
                             "or one factor on it searched by every pipeline")
    add_executor_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace):
    """ValidationConfig from --config (if any) with the command-line overrides applied."""
    import dataclasses

    from imcpnn.config import load_json
    from imcpnn.errors import ConfigError
    from imcpnn.validation import ValidationConfig

    config = load_json(ValidationConfig, args.config) if args.config else ValidationConfig()
    changes = {name: getattr(args, arg) for name, arg in
               (("n_test", "n_test"), ("epochs", "epochs"), ("corner", "corner"),
                ("temp_c", "temp"), ("seed", "seed"), ("calibration", "calibration"),
                ("discharger", "discharger")) if getattr(args, arg, None) is not None}
    if args.post_layout:
        changes["netlist_kind"] = "post-layout"
    search = config.search
    if args.search_steps:
        try:
            steps = tuple(float(s) for s in args.search_steps.split(","))
        except ValueError:
            raise ConfigError(f"--search-steps {args.search_steps!r} must be comma-separated "
                              "numbers, e.g. 0.1,0.03,0.01") from None
        search = dataclasses.replace(search, steps=steps)
    if args.coarse:
        search = dataclasses.replace(search, steps=(0.1,))
    if args.search_method:
        search = dataclasses.replace(search, method=args.search_method)
    if getattr(args, "no_model_guide", False):
        search = dataclasses.replace(search, model_guide=False)
    fit = config.fit
    if getattr(args, "trace_fit_source", None):
        fit = dataclasses.replace(fit, source=args.trace_fit_source)
    if getattr(args, "no_trace_refit", False):
        fit = dataclasses.replace(fit, refit=False)
    return dataclasses.replace(config, search=search, fit=fit, **changes)


def headline(summary: dict) -> str:
    """The line ``validate`` and ``demo`` print from a result folder's ``summary.json``: the three
    pipelines' held-out output spike-time RMSE, the test accuracies and the run's own seconds (the
    README quotes it for a recorded run; tests/test_benchmarks.py checks the quote)."""
    return (f"output spike-time RMSE (ns): top-down {summary['rmse_top_down_ns']:.2f}, bottom-up "
            f"{summary['rmse_bottom_up_ns']:.2f}, trace-fitted {summary['rmse_trace_fitted_ns']:.2f}"
            f"; test accuracy model {summary['test_accuracy_model']:.3f}, SPICE "
            f"{summary['test_accuracy_spice']:.3f}; {summary['elapsed_s']:.0f} s")


def run(args: argparse.Namespace) -> int:
    from imcpnn.validation import run_validation
    from imcpnn.verbs._common import check_executor_arguments, open_executor, prepare_out_dir

    config = config_from_args(args)  # run_validation checks --characterization before writing
    check_executor_arguments(args)
    prepare_out_dir(args.out)
    with open_executor(args) as executor:
        summary = run_validation(config, args.out,
                                 characterization=args.characterization, cache_dir=args.cache_dir,
                                 progress=not args.quiet, command=f"imcpnn {args.verb}", executor=executor,
                                 max_workers=args.workers)
    print(headline(summary))
    if "post_layout" in summary:
        post = summary["post_layout"]
        print(f"post-layout: schematic vs post-layout output spike times, RMSE "
              f"{post['rmse_schematic_vs_post_layout_ns']:.2f} ns; membrane C extracted "
              f"{post['c_m_extracted_f'] * 1e15:.1f} fF, recovered by the bottom-up scale "
              f"{post['c_m_recovered_f'] * 1e15:.1f} fF")
    print(f"report: {args.out}/report.html")
    return 0
