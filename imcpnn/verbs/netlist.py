"""``imcpnn netlist``: weights -> full sky130 testbench netlist(s) and the weight mapping JSON."""

from __future__ import annotations

import argparse

from imcpnn.verbs._common import add_corner_argument, positive_int

SUMMARY = "weights (npz or random) -> sky130 testbench netlist(s) + JSON of the weight mapping"

DESCRIPTION = """\
Generate the RC-Spike network on sky130 as ngspice netlists, without simulating them.

Weights come from an .npz file (arrays w0, w1, ... of shape (n_in, n_out), normalized units) or
are drawn at random (--random 5,5,5 = widths). Each weight becomes a current
I = C_m V_th_circ |w| / T_circ * scale * scale_plus|minus and then a gate bias through the
characterized I_D(V_G) (run `imcpnn characterize` first and pass its JSON, or let this verb run
it). Inputs (--inputs, .npy or .csv of (n_samples, n_in) normalized spike times) default to
random ones. Writes OUT/batch_<k>.cir (netlist body, models are added by the runner), and
OUT/mapping.json (gate biases, C_m, scales).

Example:
  imcpnn netlist --random 5,5,5 --out runs/net --characterization runs/char/characterization.json
  imcpnn netlist --weights trained.npz --inputs t_in.npy --out runs/net --parasitic-estimate
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_shared_arguments(parser, parser.add_mutually_exclusive_group(required=True))


def add_shared_arguments(parser: argparse.ArgumentParser, source: argparse._MutuallyExclusiveGroup) -> None:
    """Options shared with `imcpnn simulate`; ``source`` is the group the weight source goes in."""
    source.add_argument("--weights", help=".npz with arrays w0, w1, ... each (n_in, n_out)")
    source.add_argument("--random",
                        help="comma-separated widths (at least 2), e.g. 5,5,5: random weights in [-1, 1]")
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--characterization", default=None, help="characterization.json (default: run it)")
    parser.add_argument("--inputs", default=None, help=".npy/.csv (n_samples, n_in) normalized input spike times")
    parser.add_argument("--samples", type=positive_int, default=4,
                        help="number of random input samples without --inputs (>= 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for --random weights and inputs")
    parser.add_argument("--scale", type=float, default=1.0, help="global current scale factor")
    parser.add_argument("--scale-plus", type=float, default=1.0, help="extra current scale for w > 0")
    parser.add_argument("--scale-minus", type=float, default=1.0, help="extra current scale for w < 0")
    parser.add_argument("--batch-size", type=positive_int, default=50, help="samples per ngspice run (>= 1)")
    parser.add_argument("--parasitic-estimate", action="store_true", help="add wire capacitance estimates")
    add_corner_argument(parser, "tt", "sky130 corner: %(choices)s (default %(default)s); the corner characterized "
                        "when no --characterization is given, and for `simulate` the corner of the run")
    parser.add_argument("--cache-dir", default=None, help="SPICE result cache")


_INPUTS_FIX = "give a .npy or a .csv (numbers only, no header) of (n_samples, n_in) normalized spike times"


def read_inputs(path: str) -> "np.ndarray":
    """Input spike times from --inputs: a .npy array, else a comma-separated text file."""
    from pathlib import Path

    import numpy as np

    from imcpnn.errors import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--inputs {path} {'is a folder' if path.is_dir() else 'does not exist'}; {_INPUTS_FIX}")
    if path.suffix == ".npy":
        try:
            t_in = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            raise ConfigError(f"--inputs {path} is not a numpy .npy array of numbers; {_INPUTS_FIX}") from None
        if not isinstance(t_in, np.ndarray) or t_in.dtype.kind not in "biuf":
            raise ConfigError(f"--inputs {path} does not hold one numeric array; {_INPUTS_FIX}")
        return t_in
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"--inputs {path} cannot be read as text ({err}); {_INPUTS_FIX}") from None
    rows, width = [], None
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = [float(v) for v in line.split(",")]
        except ValueError:
            hint = "a header row? remove it" if not rows else "every value must be a number (nan = no spike)"
            raise ConfigError(f"--inputs {path}: line {number} ({line.strip()[:40]!r}) is not numbers, "
                              f"{hint}; {_INPUTS_FIX}") from None
        if width is not None and len(row) != width:
            raise ConfigError(f"--inputs {path}: line {number} has {len(row)} values, the first row {width}; "
                              "give the same number of values (n_in) on every row")
        width = len(row)
        rows.append(row)
    if not rows:
        raise ConfigError(f"--inputs {path} holds no rows; {_INPUTS_FIX}")
    return np.asarray(rows, dtype=float)


def load_problem(args: argparse.Namespace):
    """(network, weights, t_in, characterization dict, scales) from the shared options.

    Every file and value is checked (and --out created) before the characterization runs."""
    import numpy as np

    from imcpnn.circuits.characterization.fit import read_characterization
    from imcpnn.circuits.characterization.sweeps import CharacterizationConfig, characterize
    from imcpnn.circuits.netlist.network import Network, ParasiticEstimate, check_inputs
    from imcpnn.circuits.simulate.weights import CurrentScales, load_weights
    from imcpnn.verbs._common import layer_widths, prepare_out_dir

    rng = np.random.default_rng(args.seed)
    if args.weights:
        weights = load_weights(args.weights)
    else:
        widths = layer_widths(args.random)
        weights = [rng.uniform(-1, 1, (a, b)) for a, b in zip(widths[:-1], widths[1:])]
    widths = tuple(w.shape[0] for w in weights) + (weights[-1].shape[1],)
    network = Network(widths, parasitic=ParasiticEstimate() if args.parasitic_estimate else None)
    if args.inputs:
        t_in = read_inputs(args.inputs)
    else:
        t_in = rng.uniform(0, 1, (args.samples, widths[0]))
    t_in = check_inputs(network, t_in)
    scales = CurrentScales(args.scale, args.scale_plus, args.scale_minus)
    char = read_characterization(args.characterization, "--characterization") if args.characterization else None
    prepare_out_dir(args.out)
    if char is None:
        char = characterize(CharacterizationConfig(corner=args.corner), cache_dir=args.cache_dir)[0]
    return network, weights, t_in, char, scales


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from imcpnn.circuits.characterization.fit import Characterization
    from imcpnn.circuits.netlist.network import PhaseSchedule
    from imcpnn.circuits.simulate.run import build_testbenches, map_network

    network, weights, t_in, char, scales = load_problem(args)
    schedule = PhaseSchedule()
    mapping = map_network(network, weights, Characterization.from_dict(char), scales, schedule.t_phase_s)
    out = Path(args.out)
    tbs = build_testbenches(network, mapping, t_in, schedule, args.batch_size, save_membranes=True)
    for k, tb in enumerate(tbs):
        (out / f"batch_{k}.cir").write_text(tb.text)
    (out / "mapping.json").write_text(json.dumps(mapping, indent=1) + "\n")
    print(f"wrote {len(tbs)} netlist(s) ({network.netlist_kind}, widths {network.widths}) and mapping.json to {out}")
    return 0
