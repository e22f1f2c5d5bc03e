"""``imcpnn characterize``: sky130 device sweeps -> lambda -> E_plus, E_minus, E_dis."""

from __future__ import annotations

import argparse

from imcpnn.verbs._common import add_corner_argument

SUMMARY = "sky130 device sweeps -> lambda, I_D(V_G) tables, V_switch -> E_plus, E_minus, E_dis"

DESCRIPTION = """\
Characterize the RC-Spike circuit's devices on sky130 with ngspice (method section 5):

  * synapse current sources (nfet_01v8 / pfet_01v8), each behind its spike switch turned on as
    in the synapse (--bare-sources: the bare devices, as the method does), and the neuron's
    discharger: I_D against the drain (membrane) voltage at several gate biases; lambda = slope / I_D(V0) from a line fitted
    over the membrane window (default 0.46-1.36 V, V0 = 1.3 V); the value used is the median
    over the gate biases;
  * I_D(V_G) at V_D = V0, finely tabulated: the weight -> gate-bias map inverts it;
  * the neuron's sensing stage: its switching point V_switch, so V_th_circ = V0 - V_switch.

Then E_plus = 1/(V_th_circ lambda_n), E_minus = -1/(V_th_circ lambda_p),
E_dis = 1/(V_th_circ lambda_dis). Writes characterization.json (the contract other verbs read),
lambda_fits.csv, id_vg.csv and plots (id_vd.png, lambda_vs_current.png, switch_transfer.png).
Runs take seconds (only the models used are loaded) and are cached.

Example:
  imcpnn characterize --out runs/char --corner tt --temp 27
  imcpnn characterize --out runs/char_l05 --l-um 0.5
  imcpnn characterize --out runs/char_bare --bare-sources
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    add_corner_argument(parser, "tt", "process corner: %(choices)s (default %(default)s)")
    parser.add_argument("--temp", type=float, default=27.0, help="temperature in deg C (default 27)")
    parser.add_argument("--json", default=None, help="where to write the JSON (default OUT/characterization.json)")
    parser.add_argument("--l-um", type=float, default=None, help="synapse current-source length in um (default 0.25)")
    parser.add_argument("--w-um", type=float, default=None, help="synapse current-source width in um (default 1)")
    parser.add_argument("--l-dis-um", type=float, default=None, help="discharger length in um (default 0.25)")
    parser.add_argument("--bare-sources", action="store_true",
                        help="sweep the synapse current sources without their series switch (the method's "
                             "device-level characterization; default: in situ, behind the switch)")
    parser.add_argument("--cache-dir", default=None, help="SPICE result cache (default $IMCPNN_CACHE or ~/.cache/imcpnn)")


def config_from_args(args: argparse.Namespace):
    """CharacterizationConfig from the command line (sizes converted from um to m)."""
    import dataclasses

    from imcpnn.circuits.characterization.sweeps import CharacterizationConfig

    cfg = CharacterizationConfig(corner=args.corner, temp_c=args.temp, in_situ=not args.bare_sources)
    syn = cfg.synapse
    if args.l_um is not None:
        syn = dataclasses.replace(syn, l_m=args.l_um * 1e-6)
    if args.w_um is not None:
        syn = dataclasses.replace(syn, w_m=args.w_um * 1e-6)
    neu = cfg.neuron
    if args.l_dis_um is not None:
        neu = dataclasses.replace(neu, l_dis_m=args.l_dis_um * 1e-6)
    return dataclasses.replace(cfg, synapse=syn, neuron=neu)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from imcpnn.circuits.characterization.sweeps import characterize, write_outputs
    from imcpnn.errors import ConfigError
    from imcpnn.verbs._common import prepare_out_dir

    cfg = config_from_args(args)
    prepare_out_dir(args.out)
    if args.json:
        if Path(args.json).is_dir():
            raise ConfigError(f"--json {args.json} is a folder: give the path of the JSON file to write, "
                              f"e.g. {Path(args.json) / 'characterization.json'}")
        prepare_out_dir(Path(args.json).parent, "--json (its folder)")
    summary, fits, curves = characterize(cfg, cache_dir=args.cache_dir)
    path = write_outputs(Path(args.out), summary, fits, curves, cfg, Path(args.json) if args.json else None)
    print(fits.to_string(index=False))
    keys = ("lambda_n", "lambda_p", "lambda_dis", "v_switch", "v_th_circ", "e_plus", "e_minus", "e_dis")
    print("  ".join(f"{k}={summary[k]:.4g}" for k in keys))
    print(f"models: {summary['models']['source']} {summary['models']['version']}; wrote {path}")
    return 0
