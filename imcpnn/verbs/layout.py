"""``imcpnn layout``: generated sky130 layout -> DRC, extraction, LVS, netlist, PNG."""

from __future__ import annotations

import argparse

SUMMARY = "generate sky130 cell layouts (.mag) and check them: magic DRC + extraction, netgen LVS, PNG"

DESCRIPTION = """\
Generate the layout of cells (magic .mag files, optionally GDS), run magic's full DRC on each,
extract the post-layout netlist (devices + parasitic capacitances, --resistance adds parasitic
resistances), compare it with the cell's schematic in netgen (LVS) and draw a PNG of the layers.

Needs magic and netgen (Debian: apt-get install magic netgen-lvs) and the sky130A magic tech file
below PDK_ROOT (PDK_ROOT/sky130A/libs.tech/magic/sky130A.tech; --pdk-root overrides). Per cell,
OUT holds CELL.mag, CELL.png, CELL_pex.spice (ngspice-ready: W/L in um like netlists/, R and C
in SI), CELL_lvs.spice, CELL_schematic.spice, CELL_lvs_report.txt and CELL_layout.json (DRC
errors, device counts, parasitic R/C counts, port capacitances in F, LVS verdict). Exit code 0
only when every cell has 0 DRC errors, an LVS match and parasitics were extracted.

Cells: nfet, nfet_lvt, pfet, pfet_hvt (W 1 um, L 0.15 um), mim (7 um x 7 um MiM, met4/met5),
inv, tgate, nand2, synapse (LVS against netlists/inv.spice, tgate.spice, nand2.spice,
synapse.spice), neuron (all 19 devices of netlists/neuron.spice with its 7 um x 7 um MiM
membrane; the JSON's port_capacitance_f.mem is the extracted membrane capacitance), and
synapse_array (--array-size N_INxN_OUT synapses: spike lines horizontal on met2, membrane lines
vertical on met3, per-synapse bias pins on met4; LVS against N_IN*N_OUT synapse instances).
With --resistance, extresist splits each net into a resistor tree between its device terminals
and its port (net, net.t0, net.n1...); the lone mim cell has no device terminals to split
between and is extracted without R. Nets that magic 8.3.105's extresist walks wrongly (a
run-dependent bug, seen on nodes between two series pfets) stay lumped; their names are listed in
OUT/build/<cell>-*/extract/<cell>.res.dropped.

--network WIDTHS (e.g. 5,5,5) lays out a whole network core instead (or as well, with --cells):
every layer's synapse array and neuron column, wired (imcpnn.circuits.layout.network), checked
by LVS against the network core schematic; OUT/imcpnn_network_pex.spice is its extracted core
(ports: the network core's node names, so it drops into the post-layout testbench) and the
JSON's port_capacitance_f.m<l>_<i> are the extracted membrane capacitances.

Example:
  PDK_ROOT=~/.ciel imcpnn layout --cells inv,mim --out runs/layout
  PDK_ROOT=~/.ciel imcpnn layout --cells neuron,synapse_array --array-size 4x3 --out runs/layout
  imcpnn layout --cells all --resistance --gds --out runs/layout_rc
  PDK_ROOT=~/.ciel imcpnn layout --network 5,5,5 --out runs/layout_net
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cells", default=None,
        help="comma-separated cell names, or 'all' (see list above; default all, none with --network)",
    )
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--resistance", action="store_true", help="also extract parasitic resistances (extresist)")
    parser.add_argument("--gds", action="store_true", help="also write CELL.gds (via magic) for KLayout")
    parser.add_argument("--array-size", default="5x5", help="synapse_array size N_INxN_OUT (default 5x5)")
    parser.add_argument(
        "--network", default=None, metavar="WIDTHS",
        help="also lay out a network core of these layer widths, e.g. 5,5,5 (n_in,...,n_out)",
    )
    parser.add_argument("--pdk-root", default=None, help="open_pdks root holding sky130A (default: $PDK_ROOT)")


def run(args: argparse.Namespace) -> int:
    from imcpnn.circuits.netlist.extracted import MIM_MODELS, schematic_device_counts
    from imcpnn.circuits.layout import layout_cells
    from imcpnn.circuits.layout.flow import run_layout_flow
    from imcpnn.circuits.layout.magic import MagicSetup, magic_gds
    from imcpnn.errors import ConfigError, NetlistError
    from imcpnn.verbs._common import prepare_out_dir

    size = args.array_size.lower().split("x")
    if len(size) != 2 or not all(part.isdigit() and int(part) > 0 for part in size):
        raise ConfigError(f"--array-size {args.array_size!r}: write N_INxN_OUT with positive integers, e.g. 5x5")
    available = layout_cells((int(size[0]), int(size[1])))
    cells = args.cells if args.cells is not None else ("all" if args.network is None else "")
    names = list(available) if cells == "all" else [c.strip() for c in cells.split(",") if c.strip()]
    unknown = [n for n in names if n not in available]
    if unknown or (not names and args.cells is not None):
        raise ConfigError(f"--cells {args.cells!r}: unknown {unknown}; choose from {', '.join(available)} or 'all'")
    if args.network is not None:
        from imcpnn.circuits.layout.network import network_layout
        from imcpnn.circuits.netlist.network import Network

        parts = [p.strip() for p in args.network.split(",")]
        if len(parts) < 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ConfigError(
                f"--network {args.network!r}: write the layer widths as >= 2 positive integers "
                "separated by commas, e.g. 5,5,5"
            )
        layout = network_layout(Network(tuple(int(p) for p in parts)))
        available[layout.name] = layout
        names.append(layout.name)
    out = prepare_out_dir(args.out)
    setup = MagicSetup.discover(args.pdk_root)
    failed = []
    for name in names:
        layout = available[name]
        # extresist builds R trees between device terminals and ports: a cell of MiMs only has none.
        use_r = args.resistance and not set(schematic_device_counts(layout.schematic, layout.name)) <= MIM_MODELS
        try:
            report = run_layout_flow(layout, out, use_resistance=use_r, setup=setup)
        except NetlistError as err:
            failed.append(name)
            print(f"{name}: FAILED\n{err}")
            continue
        d = report.to_dict()
        print(
            f"{name}: DRC {d['drc_errors']} errors, LVS {'match' if d['lvs_match'] else 'MISMATCH'}, "
            f"devices {d['device_counts']}, {d['n_parasitic_capacitors']} C "
            f"({d['parasitic_capacitance_total_f'] * 1e15:.2f} fF), {d['n_parasitic_resistors']} R"
        )
        if args.gds:
            magic_gds(layout, out / f"{name}.gds", setup=setup, build_dir=out / "build" / f"{name}-gds")
    print(f"results in {out}")
    return 1 if failed else 0
