"""The network as column decks, layer by layer: the CPU it saves and the spike-time error it costs.

Claim measured: whether splitting the 5-5-5 network's transient into one deck per neuron (a
column of :mod:`imcpnn.circuits.simulate.column`), layer after layer, halves the SPICE cost of a
sample at unchanged spike times: within 0.1 ns RMS of the converged whole-deck reference of
``network_tran_settings.py``, the budget that benchmark holds every setting to.

Why it could: every time point of the whole deck evaluates every device, and the neurons' own
spikes take most of the time points (``network_tran_settings.py`` charges the points to the
events before them); in a column deck a spike costs only its own column's devices.

How: the hidden layer's columns run first (the library's column decks,
:func:`~imcpnn.circuits.simulate.column.plan_columns`, all samples in one deck each), every
neuron's output loaded as in the network: the next layer's row of synapses with their mapped gate
biases (their membrane side held at V0) and the spike line's wire estimate. The output layer's
columns then run with each input line and its complement driven by an ideal source that
reproduces the hidden neuron's recorded output, one phase earlier (a one-layer deck's phases start
one phase before the second layer's in the network). How closely the source follows the recorded
waveform is the knob (``--drives``):

- ``ramps``: each edge a straight ramp through its 10 % and 90 % crossings, extended to the rails
  (two breakpoints per edge);
- ``replay:TOL``: the recorded waveform where it is off the rails, thinned (Ramer-Douglas-Peucker)
  to within TOL volts; ``replay:0`` keeps every recorded point. Every kept point is a breakpoint
  of the output deck's transient, so a closer drive costs time points.

The decks use the library's default step control (``PhaseSchedule()``) and save the spike lines
only (no membranes, no supply ammeters), the whole deck and its reference (``network_tran_settings.py``'s
reference setting) included, so that both sides run with the same knobs. A rerun with the same
``--cache`` reuses every finished run and its recorded CPU time. Cost is the CPU time of the
ngspice processes as in ``network_tran_settings.py`` (one run at a time); errors are taken against
the reference and pooled over the weight sets, the whole deck's default beside them.

Not measured here: what the split cannot show. The column decks have ideal rails and ideal input
sources, so IR drop and coupling between columns (a post-layout core's) are outside them; the
hidden neurons' outputs see the next layer's gates, but not its membranes' motion.

Usage: .venv/bin/python benchmarks/network_column_split.py --demo-dir runs/demo [--n-random 1]
       [--n-samples 7] [--drives "ramps,replay:0.01,replay:0"] [--cache DIR] [--name latest]
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

import _record
import network_tran_settings as nts

#: Levels (fractions of V_dd) of the crossings a ramp goes through, and the share of the rail
#: swing a replayed point must be off the rails to be kept.
RAMP_LEVELS = (0.1, 0.9)
OFF_RAIL = 0.002


def thin(time_s: np.ndarray, v: np.ndarray, tol_v: float) -> np.ndarray:
    """Ramer-Douglas-Peucker: a boolean mask of the points of (time_s, v) to keep so that the
    straight lines between kept points stay within ``tol_v`` of every dropped one (first and last
    always kept; ``tol_v`` = 0 keeps every point off the line). Shapes (n,)."""
    keep = np.zeros(len(time_s), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(time_s) - 1)]
    while stack:
        a, b = stack.pop()
        if b <= a + 1:
            continue
        line = v[a] + (v[b] - v[a]) * (time_s[a + 1:b] - time_s[a]) / (time_s[b] - time_s[a])
        dist = np.abs(v[a + 1:b] - line)
        k = int(np.argmax(dist))
        if dist[k] > tol_v:
            m = a + 1 + k
            keep[m] = True
            stack += [(a, m), (m, b)]
    return keep


def _level_crossing(time_s: np.ndarray, v: np.ndarray, level: float, k: int) -> float:
    """The crossing of ``level`` by v nearest to segment k (linear interpolation)."""
    for d in range(len(v)):
        for j in {k - d, k + d}:
            if 0 <= j < len(v) - 1 and (v[j] - level) * (v[j + 1] - level) <= 0 and v[j] != v[j + 1]:
                return float(time_s[j] + (time_s[j + 1] - time_s[j]) * (level - v[j]) / (v[j + 1] - v[j]))
    raise ValueError(f"v never crosses {level} V")


def ramp_edges(time_s: np.ndarray, v: np.ndarray, vdd_v: float) -> list[tuple[bool, float, float]]:
    """(rising, start s, end s) of every edge of a digital trace: the straight ramp through its
    :data:`RAMP_LEVELS` crossings, extended to 0 and V_dd. Edges are the crossings of V_dd/2."""
    high = v > vdd_v / 2
    out = []
    for k in np.nonzero(high[1:] != high[:-1])[0]:
        lo, hi = (_level_crossing(time_s, v, f * vdd_v, int(k)) for f in RAMP_LEVELS)
        rising = bool(high[k + 1])
        start, end = (lo, hi) if rising else (hi, lo)
        extend = (end - start) * RAMP_LEVELS[0] / (RAMP_LEVELS[1] - RAMP_LEVELS[0])
        out.append((rising, start - extend, end + extend))
    return out


def ramp_points(edges: list[tuple[bool, float, float]], high_at_0: bool, vdd_v: float,
                shift_s: float) -> list[tuple[float, float]]:
    """PWL points (s, V) of the ramps ``edges``, all ``shift_s`` earlier. Where two ramps overlap
    (a spike so late that its rise runs into the fall at the window's end) a point moves to
    1 fs after the one before it: PWL times must increase."""
    pts = [(0.0, vdd_v if high_at_0 else 0.0)]
    for rising, start, end in edges:
        a, b = (0.0, vdd_v) if rising else (vdd_v, 0.0)
        for t, level in ((start - shift_s, a), (end - shift_s, b)):
            pts.append((max(t, pts[-1][0] + 1e-15), level))
    return pts


def replay_points(time_s: np.ndarray, v: np.ndarray, vdd_v: float, tol_v: float,
                  shift_s: float) -> list[tuple[float, float]]:
    """PWL points (s, V) of a recorded trace, ``shift_s`` earlier: its points off the rails by
    more than :data:`OFF_RAIL` of V_dd and their neighbours, thinned to ``tol_v`` (:func:`thin`);
    the first point moves to t = 0 (its level holds until the first edge)."""
    off = (v > OFF_RAIL * vdd_v) & (v < (1 - OFF_RAIL) * vdd_v)
    keep = off.copy()
    keep[:-1] |= off[1:]
    keep[1:] |= off[:-1]
    keep[0] = True
    t, y = time_s[keep] - shift_s, np.clip(v[keep], 0.0, vdd_v)
    t[0] = 0.0
    distinct = np.concatenate([[True], np.diff(t) > 0])
    t, y = t[distinct], y[distinct]
    kept = thin(t, y, tol_v)
    return list(zip(t[kept].tolist(), y[kept].tolist()))


def parse_drive(text: str) -> tuple[str, float | None]:
    """``ramps`` -> ("ramps", None); ``replay:TOL`` -> ("replay", TOL volts >= 0)."""
    if text == "ramps":
        return "ramps", None
    if text.startswith("replay:"):
        try:
            tol = float(text[len("replay:"):])
        except ValueError:
            tol = -1.0
        if tol >= 0:
            return "replay", tol
    raise ValueError(f"unknown drive {text!r}: give ramps or replay:TOL (TOL in volts, >= 0)")


def _pwl(points: list[tuple[float, float]]) -> str:
    return "PWL(" + " ".join(f"{t:.12e} {v:.6g}" for t, v in points) + ")"


def load_lines(network, vg_n: np.ndarray, vg_p: np.ndarray, row: int) -> list[str]:
    """Deck lines that load a hidden column deck's output (``s1_0``, ``sb1_0``) as ``network``
    (the whole 5-5-5 network) does: its second layer's synapses of input ``row`` (its cell) with
    their gate biases ``vg_n``/``vg_p`` (n_hidden, n_out; off sources tied to the rails as the
    network deck ties them), membrane side on the V0 node, and the spike line's wire estimate
    (``network.parasitic`` over n_out cells) on both lines."""
    from imcpnn.circuits.netlist.network import num

    lines = []
    for k in range(vg_n.shape[1]):
        gate_n = "0" if vg_n[row, k] <= 0 else f"vloadn{k}"
        gate_p = "vdd" if vg_p[row, k] >= network.vdd_v else f"vloadp{k}"
        lines.append(network.synapse.instance(f"LOAD{k}", ("v0", "s1_0", "sb1_0", gate_n, gate_p, "vdd", "0")))
        lines += [f"V{gate_n} {gate_n} 0 {num(vg_n[row, k])}"] if gate_n != "0" else []
        lines += [f"V{gate_p} {gate_p} 0 {num(vg_p[row, k])}"] if gate_p != "vdd" else []
    line_f = network.parasitic.line_f(vg_n.shape[1])
    return lines + [f"CLOAD s1_0 0 {num(line_f)}", f"CLOADB sb1_0 0 {num(line_f)}"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = _record.parser(__file__, __doc__)
    nts.add_network_arguments(ap, n_samples=7, n_random_with_demo=1)
    ap.add_argument("--drives", default="ramps,replay:0.05,replay:0.02,replay:0.01,replay:0",
                    help="comma-separated ways to drive the output columns' inputs: ramps, replay:TOL")
    ap.add_argument("--cache", default="/tmp/imcpnn-tran-settings",
                    help="private SPICE cache (reruns reuse runs and their CPU times)")
    _record.add_arguments(ap)
    args = ap.parse_args(argv)

    drives = [d.strip() for d in args.drives.split(",") if d.strip()]
    try:
        parsed = {d: parse_drive(d) for d in drives}
    except ValueError as exc:
        ap.error(f"argument --drives: {exc}")
    if not drives:
        ap.error("argument --drives: give at least one of ramps, replay:TOL")
    n_random = args.n_random if args.n_random is not None else (1 if args.demo_dir else 2)
    if not args.demo_dir and n_random == 0:
        ap.error("argument --n-random: 0 weight sets (give --demo-dir or --n-random >= 1)")
    if args.demo_dir and not (Path(args.demo_dir) / nts.DEMO_STAGE.format("bottom_up")).is_file():
        ap.error(f"argument --demo-dir: {args.demo_dir} has no {nts.DEMO_STAGE.format('bottom_up')}: "
                 "give a finished `imcpnn demo` folder")
    recorder = _record.Recorder(__file__, args, argv)

    from imcpnn.circuits.characterization.fit import Characterization
    from imcpnn.circuits.netlist.network import Network, ParasiticEstimate, PhaseSchedule, network_deck
    from imcpnn.circuits.simulate import spice_spike_table
    from imcpnn.circuits.simulate.column import plan_columns
    from imcpnn.circuits.simulate.run import build_testbenches, map_network, network_sim
    from imcpnn.pnn import DataConfig, load_dataset
    from imcpnn.spice import Corner
    from imcpnn.validation import compare_spike_tables, layer_metrics

    char_path = args.characterization or (
        args.demo_dir and Path(args.demo_dir) / "characterization" / "characterization.json")
    if char_path:
        char = Characterization.from_dict(json.loads(Path(char_path).read_text()))
    else:
        from imcpnn.circuits.characterization.sweeps import characterize

        char = Characterization.from_dict(characterize(cache_dir=args.cache, progress=False)[0])
    sets = nts.weight_sets(args.demo_dir, n_random)
    x = load_dataset(DataConfig(dataset="iris", seed=0)).x_test.double().numpy()[: args.n_samples]
    network = Network((5, 5, 5), parasitic=ParasiticEstimate())
    layer = Network((5, 5), parasitic=ParasiticEstimate())
    schedule = PhaseSchedule()
    T, vdd = schedule.t_phase_s, network.vdd_v
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)

    def run(decks, options=None):
        """[(CPU s, time points, time_s, traces)] of each deck, one ngspice at a time."""
        sims = [network_sim(d, Corner.TT, 27.0, schedule.trtol) if options is None
                else nts.setting_sim(d, options) for d in decks]
        out = [None] * len(decks)
        for i, cpu_s, run_dir in nts.timed_runs(sims, cache, jobs=1):
            time_s, traces = nts.read_traces(run_dir, decks[i].saves)
            out[i] = (cpu_s, len(time_s), time_s, traces)
        return out

    def column_table(results, layer_index):
        parts = []
        for i, (_, _, time_s, traces) in enumerate(results):
            tab = spice_spike_table(time_s, traces, (5, 1), len(x), schedule, vdd)
            parts.append(tab.assign(layer=layer_index, neuron=i))
        return parts

    rows, tables = [], {}
    ref_step, ref_options = nts.SETTINGS["reference"]
    for k, (name, weights, scales, discharger) in enumerate(sets):
        mapping = map_network(network, weights, char, scales, T, discharger)
        # spike times only on both sides: no membranes, no supply ammeters (the column decks' knobs)
        (whole,) = build_testbenches(network, mapping, x, schedule, len(x), save_membranes=False,
                                     save_supplies=False)
        (ref,) = build_testbenches(network, mapping, x, PhaseSchedule(t_step_max_s=ref_step), len(x),
                                   save_membranes=False, save_supplies=False)
        for label, deck, options in (("reference", ref, ref_options), ("whole deck", whole, None)):
            ((cpu_s, points, time_s, traces),) = run([deck], options)
            tables[label, k] = spice_spike_table(time_s, traces, deck.widths, len(x), schedule, vdd)
            rows.append({"set": k, "drive": label, "cpu_s": cpu_s, "points": points})
        whole_cpu_s = rows[-1]["cpu_s"]
        hidden_map, out_map = mapping["layers"]
        vg_n1, vg_p1 = np.asarray(out_map["vg_n_v"]), np.asarray(out_map["vg_p_v"])
        hidden_decks = []
        for plan in plan_columns(layer, {"layers": [hidden_map]}, x, range(5), schedule, batch_size=len(x),
                                 save_supplies=False):
            deck = plan.decks[0]
            extra = load_lines(network, vg_n1, vg_p1, plan.column)
            hidden_decks.append(replace(deck, text=deck.text.rstrip("\n") + "\n" + "\n".join(extra) + "\n",
                                        saves=tuple(deck.saves) + ("v(sb1_0)",)))
        hidden = run(hidden_decks)
        hidden_cpu, hidden_points = sum(h[0] for h in hidden), sum(h[1] for h in hidden)
        hidden_tables = column_table(hidden, 0)
        for drive in drives:
            kind, tol = parsed[drive]
            sources = {}
            for i, (_, _, time_s, traces) in enumerate(hidden):
                for src, node, high_at_0 in ((f"VIN{i}", "v(s1_0)", False), (f"VINB{i}", "v(sb1_0)", True)):
                    v = traces[node]
                    pts = (ramp_points(ramp_edges(time_s, v, vdd), high_at_0, vdd, T) if kind == "ramps"
                           else replay_points(time_s, v, vdd, tol, T))
                    sources[src] = _pwl(pts)
            out_decks = []
            for c in range(5):
                deck = network_deck(Network((5, 1), parasitic=ParasiticEstimate()), [(vg_n1[:, [c]], vg_p1[:, [c]])],
                                    [out_map["vg_dis_v"]], np.full((len(x), 5), np.nan), schedule, False, False)
                lines = [f"{t[0]} {t[1]} {t[2]} {sources[t[0]]}" if (t := line.split()) and t[0] in sources
                         else line for line in deck.text.splitlines()]
                out_decks.append(replace(deck, text="\n".join(lines) + "\n"))
            outs = run(out_decks)
            tables[drive, k] = pd.concat(hidden_tables + column_table(outs, 1), ignore_index=True)
            rows.append({"set": k, "drive": drive, "cpu_s": hidden_cpu + sum(o[0] for o in outs),
                         "points": hidden_points + sum(o[1] for o in outs), "hidden_cpu_s": hidden_cpu,
                         "output_cpu_s": sum(o[0] for o in outs), "output_points": sum(o[1] for o in outs)})
            print(f"set {k} {drive:<14} CPU {rows[-1]['cpu_s']:6.2f} s (hidden {hidden_cpu:.2f}), whole deck "
                  f"{whole_cpu_s:.2f} s", flush=True)

    runs = pd.DataFrame(rows)
    whole_cpu = runs[runs["drive"] == "whole deck"]["cpu_s"].sum()
    summary = []
    for label in ["whole deck", *drives]:
        per_set = [compare_spike_tables(tables["reference", k], tables[label, k], T) for k in range(len(sets))]
        cmp = pd.concat([c.assign(sample=c["sample"] + 10_000 * k) for k, c in enumerate(per_set)])
        lm = layer_metrics(cmp).set_index("layer")
        r = runs[runs["drive"] == label]
        summary.append({"drive": label, "cpu_s_per_sample": r["cpu_s"].sum() / (len(sets) * len(x)),
                        "cpu_vs_whole": r["cpu_s"].sum() / whole_cpu,
                        "points_per_sample": r["points"].sum() / (len(sets) * len(x)),
                        "out_rmse_ns": lm.loc[1, "rmse_t_spike_ns"], "out_max_ns": lm.loc[1, "max_abs_err_t_spike_ns"],
                        "hid_rmse_ns": lm.loc[0, "rmse_t_spike_ns"],
                        "spiked_mismatch": int((cmp["spiked_model"] != cmp["spiked_spice"]).sum())})

    machine = _record.machine(spice=True)
    print(f"\n{_record.machine_line(machine)}; load avg now {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"5-5-5 + parasitic estimate, tt 27 C, {len(x)} Iris test samples per deck, {len(sets)} weight sets: "
          f"{'; '.join(s[0] for s in sets)}; errors vs the whole-deck reference, pooled over the sets")
    print(f"{'drive':<16}{'CPU s/smp':>10}{'vs whole':>9}{'pts/smp':>9}{'out RMSE':>10}{'out max':>9}"
          f"{'hid RMSE':>10}{'mism':>6}")
    for o in summary:
        print(f"{o['drive']:<16}{o['cpu_s_per_sample']:>10.3g}{o['cpu_vs_whole']:>9.2f}{o['points_per_sample']:>9.0f}"
              f"{o['out_rmse_ns']:>10.3f}{o['out_max_ns']:>9.3f}{o['hid_rmse_ns']:>10.3f}{o['spiked_mismatch']:>6}")
    by = {o["drive"]: o for o in summary}
    headline = {"sets x samples": f"{len(sets)} x {len(x)}",
                "whole deck CPU s/sample": by["whole deck"]["cpu_s_per_sample"],
                "whole deck out RMSE ns": by["whole deck"]["out_rmse_ns"]}
    if "ramps" in by:
        headline["ramps CPU / whole"] = by["ramps"]["cpu_vs_whole"]
        headline["ramps out RMSE ns"] = by["ramps"]["out_rmse_ns"]
    within = [o for o in summary[1:] if o["out_rmse_ns"] <= nts.ACCURACY_NS and o["spiked_mismatch"] == 0]
    if within:
        best = min(within, key=lambda o: o["cpu_vs_whole"])
        headline.update({"cheapest split within 0.1 ns": best["drive"], "its CPU / whole": best["cpu_vs_whole"],
                         "its out RMSE ns": best["out_rmse_ns"]})
    repeats = {label: [r["cpu_s"] for r in rows if r["drive"] == label] for label in ["whole deck", *drives]}
    path = recorder.write(machine=machine, headline=headline, repeats=repeats,
                          results={"weight_sets": [s[0] for s in sets], "runs": rows, "summary": summary})
    print(f"result: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
