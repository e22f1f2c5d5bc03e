"""``imcpnn layer``: columns of a trained network's first layer in ngspice vs the bottom-up model."""

from __future__ import annotations

import argparse

from imcpnn.verbs._common import add_executor_arguments, positive_int

SUMMARY = "first layer of a trained MLP, column by column in ngspice (local or Dask) vs the model -> layer.json"

DESCRIPTION = """\
Simulate K columns of the FIRST layer of a trained network (e.g. a Fashion-MNIST MLP: 784
inputs) for S test images in ngspice, and compare their spike times with the bottom-up model's.

Column decomposition: in the charge-domain crossbar each output neuron integrates only its own
column of synapses, and in the testbench the input lines are ideal sources; so a layer of N_out
neurons is N_out independent column decks (one neuron with its column of synapses), which run
in parallel here or on a Dask cluster. Its limit: IR drop and coupling on the shared lines, which
only a whole-array deck shows.

Each column deck drives all inputs that share a spike train from ONE edge source (8-bit pixels
give at most 256 distinct times per image, background pixels none), which keeps ngspice's cost
near linear in the inputs. The first column is also simulated without input at a few discharger
factors: that gives the discharger's design bias (a neuron without input fires at the window
end), the membrane's effective capacitance C_eff (MIM plus the column's synapse drains, about
6 x C_m for 784 inputs) and the firing delay. The weight currents are scaled by C_eff / C_m (so
the circuit computes the trained weights); weights below the characterized current floor (about
1 pA) are switched off, and weights above the table's top stop with the mapping's error, which
names the scale that would fit. One more deck of that column (no input; all excitatory inputs
spiking late; all inhibitory ones) measures the kick of the input edges, the charge each active
synapse's switching shares with the membrane: small per synapse, it adds up over hundreds of
active inputs. The model: E per synapse (characterized lambda against current), E_dis, the
calibrated discharger, C_eff, delay and kick; left out (and listed in layer.json): the next
layer's gate load, mismatch, the kick's dependence on the membrane voltage.

Writes OUT/layer.json (n_inputs, n_columns, n_samples, executor, rmse_ns and bias_ns of model
minus SPICE over the neurons that spike on both sides, models, energy_per_inference_j of the
whole layer scaled from the simulated columns, cost_s_per_column_sample, columns, spike_times)
and OUT/columns/col_<c>.json as each column finishes: rerun the same command to resume.

The weights: --run, a folder written by `imcpnn train` (its first dense layer and its test
split), or --weights W.npz (w0 is the first layer) with --dataset. The characterization: --characterization
FILE, else one is simulated at tt, 27 C (cached). A 784-input column is a large deck: count
minutes per column and deck on one core (the setup alone is about a minute), so start with a few
columns, and batch the samples (--batch-size) to pay the setup once per deck.

Examples:
  imcpnn train --dataset fashion-mnist --arch mlp:100 --epochs 2 --subset 5000 --out runs/fmnist
  imcpnn layer --run runs/fmnist --columns 2 --samples 2 --out runs/layer
  imcpnn layer --weights w.npz --dataset fashion-mnist --columns 8 --samples 4 --executor dask --out runs/layer
  imcpnn layer --run runs/fmnist --columns 400 --samples 100 --batch-size 10 \\
      --executor dask --scheduler tcp://head:8786 --out runs/layer_full
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="TRAIN_DIR", help="a training run folder written by `imcpnn train`")
    source.add_argument("--weights", metavar="W.npz", help=".npz with w0, w1, ... (n_in, n_out); w0 is simulated")
    parser.add_argument("--dataset", default=None,
                        help="with --weights: the data set whose test images drive the layer (e.g. fashion-mnist)")
    parser.add_argument("--data-dir", default=None, help="with --weights: the data set's folder, where it needs one")
    parser.add_argument("--characterization", metavar="FILE", default=None,
                        help="characterization.json (default: simulate one at tt, 27 C; cached)")
    parser.add_argument("--columns", type=positive_int, default=None,
                        help="simulate the first K columns of the layer (default: all)")
    parser.add_argument("--samples", type=positive_int, default=2, help="test images, the first S of the test split")
    parser.add_argument("--batch-size", type=positive_int, default=2,
                        help="samples per ngspice run of a column (default 2): one setup per deck")
    add_executor_arguments(parser)
    parser.add_argument("--cache-dir", default=None, help="SPICE result cache")
    parser.add_argument("--quiet", action="store_true", help="no progress report")
    parser.add_argument("--out", required=True, help="output folder (created if missing; a rerun resumes it)")


def load_layer_problem(args: argparse.Namespace):
    """(first-layer weights (n_in, n_out), test inputs (S, n_in), provenance dict), every option
    checked before anything is simulated (ConfigError / ResultsError, one line)."""
    import dataclasses
    from pathlib import Path

    import numpy as np

    from imcpnn.errors import ConfigError
    from imcpnn.pnn import DATASETS, DataConfig, load_dataset, load_trained, parse_arch

    if args.run:
        if args.dataset or args.data_dir:
            raise ConfigError("--dataset and --data-dir go with --weights; a --run folder names its own data set")
        if not Path(args.run).is_dir():
            raise ConfigError(f"--run {args.run} is not a folder: give a training run written by "
                              "`imcpnn train --out DIR`")
        trained = load_trained(args.run)
        if any(kind != "dense" for kind, _ in parse_arch(trained.config.model.arch)):
            raise ConfigError(f"--run {args.run}: a {trained.config.model.arch} network's first layer is not a "
                              "crossbar of the inputs; give an MLP run (imcpnn train --arch mlp:...)")
        w = trained.model.dense_weights()[0].double().numpy()
        data_config = dataclasses.replace(trained.config.data, train_subset=1)
        provenance = {"run": str(Path(args.run).resolve()), "arch": trained.config.model.arch}
    else:
        from imcpnn.circuits.simulate.weights import load_weights

        if not args.dataset:
            raise ConfigError(f"--weights {args.weights} needs --dataset (one of {', '.join(DATASETS)}): the "
                              "data set whose test images drive the layer")
        if args.dataset not in DATASETS:
            raise ConfigError(f"--dataset {args.dataset!r} is not one of {', '.join(DATASETS)}")
        w = load_weights(args.weights)[0]
        data_config = DataConfig(dataset=args.dataset, data_dir=args.data_dir, train_subset=1)
        provenance = {"weights": str(Path(args.weights).resolve())}
    data = load_dataset(data_config)
    n_in = int(np.prod(data.input_shape))
    if w.shape[0] != n_in:
        raise ConfigError(f"the first layer has {w.shape[0]} inputs but {data_config.dataset} images have {n_in} "
                          f"({'x'.join(map(str, data.input_shape))}): give weights of that data set")
    if args.columns is not None and args.columns > w.shape[1]:
        raise ConfigError(f"--columns {args.columns} is beyond the layer: it has {w.shape[1]} columns")
    if args.samples > len(data.y_test):
        raise ConfigError(f"--samples {args.samples}: the test split of {data_config.dataset} has {len(data.y_test)} "
                          "images")
    x = data.x_test[: args.samples].reshape(args.samples, -1).double().numpy()
    provenance.update(dataset=data_config.dataset, samples="the first S images of the test split",
                      labels=data.y_test[: args.samples].tolist())
    return w, x, provenance


def run(args: argparse.Namespace) -> int:
    import json

    from imcpnn.verbs._common import check_executor_arguments, executor_label, executor_width, open_executor
    from imcpnn.verbs._common import prepare_out_dir

    check_executor_arguments(args)
    w, x, provenance = load_layer_problem(args)
    if args.characterization:
        from imcpnn.circuits.characterization.fit import read_characterization

        char = read_characterization(args.characterization, "--characterization")
        provenance["characterization"] = args.characterization
    else:
        char = None
    out = prepare_out_dir(args.out)
    if char is None:
        from imcpnn.circuits.characterization.sweeps import CharacterizationConfig, characterize

        char = characterize(CharacterizationConfig(), cache_dir=args.cache_dir, progress=not args.quiet)[0]
        provenance["characterization"] = "simulated: tt, 27 C (CharacterizationConfig defaults)"
        (out / "characterization.json").write_text(json.dumps(char, indent=1) + "\n")
    from imcpnn.validation import run_layer

    columns = None if args.columns is None else list(range(args.columns))
    with open_executor(args) as executor:
        result = run_layer(w, x, char, out, columns=columns, batch_size=args.batch_size, executor=executor,
                           executor_label=executor_label(args, executor), max_workers=args.workers,
                           columns_per_batch=executor_width(executor, args.workers), cache_dir=args.cache_dir,
                           progress=not args.quiet, provenance=provenance)
    fmt = lambda v, unit: "n/a" if v is None else f"{v:.3g} {unit}"  # noqa: E731
    cost = result["cost_s_per_column_sample"]
    print(f"{result['n_columns']} of {result['n_outputs']} columns x {result['n_samples']} samples "
          f"({result['n_inputs']} inputs, {result['executor']}): model - SPICE rmse {fmt(result['rmse_ns'], 'ns')}, "
          f"bias {fmt(result['bias_ns'], 'ns')} over {result['models']['bottom_up']['n_both_spiking']} spiking pairs "
          f"(without the kick: rmse {fmt(result['models']['without_kick']['rmse_ns'], 'ns')})")
    print(f"energy per inference (whole layer): {fmt(result['energy_per_inference_j'], 'J')}; cost per column and "
          f"sample: {fmt(cost['ngspice_s'], 's')} ngspice, {fmt(cost['wall_s'], 's')} wall")
    print(f"wrote {out / 'layer.json'}")
    return 0
