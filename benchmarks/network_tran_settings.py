"""Network transient settings: ngspice CPU time vs spike-time error against a converged reference.

Claim measured: which ngspice transient settings (max step, ``.options`` trtol / reltol / method)
make one scale-search candidate of the demo cheap without moving its spike times. Every setting
simulates the same 5-5-5 network (schematic + parasitic estimate, sky130 tt) on the same Iris test
samples and weight sets, in one run, side by side; errors are taken against a reference with a
50x smaller max step and a 10x tighter local error and Newton tolerance (``reference``), whose
own convergence is checked by a second, differently tightened one (``check 2ns trtol0.01``).
Cost is the CPU time (user + sys) of the ngspice processes (``getrusage(RUSAGE_CHILDREN)`` around
each run in its worker), not wall time, so that a shared machine inflates it less; it is also
counted in accepted time points. Reruns with the same ``--cache`` reuse finished runs and their
recorded CPU times.

Two more questions it answers: whether ngspice's device bypass (``.options bypass``: a device
whose terminal voltages barely moved reuses its last evaluation) buys CPU at the same spike times,
and where the default setting's CPU time goes: the ``acct`` setting is the default with ngspice's
accounting on (same numerics, so its errors equal the default's), and its log splits the analysis
time into device evaluation (load), matrix solve and the rest (step control, truncation error,
breakpoints, output), with Newton iterations and rejected time points per time point. The default
setting's time points are also charged to the events before them (:func:`points_by_event`): phase
and input edges, and the neurons' spikes; a handful of slightly loosened settings
(``50ns trtol0.07`` and the like) measure what a setting inside the 0.1 ns budget can still save.

Weight sets: with ``--demo-dir`` (a finished ``imcpnn demo`` folder) its trained bottom-up and
top-down networks mapped as its evaluation mapped them (the current scales and discharger factor
that ``stages/evaluate_<pipeline>.json`` records: the demo's own circuits); ``--n-random`` more
sets of random weights U(-0.3, 0.6) at scale 1 and discharger factor 1 (inside the mapped range).

The per-run rows (CPU seconds, points) and the per-setting summary are recorded in
``benchmarks/results/network_tran_settings_<--name>.json`` (``repeats``: every run's CPU seconds
per setting, one per weight set).

Usage: .venv/bin/python benchmarks/network_tran_settings.py [--demo-dir DIR] [--n-random 2]
       [--n-samples 25] [--settings "reference,20ns trtol1"] [--jobs 2] [--cache DIR] [--name latest]
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import resource
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

import _record
from imcpnn.circuits.netlist.network import PhaseSchedule, pwl_sources

_D = PhaseSchedule()  # the library's default step control (what simulate_network uses)
DEFAULT = f"{_D.t_step_max_s * 1e9:g}ns trtol{_D.trtol:g} (default)"
PROFILE = f"{_D.t_step_max_s * 1e9:g}ns trtol{_D.trtol:g} acct"
#: name: (max step s, .options). The old default had no options (ngspice: trtol 7, reltol 1e-3, trap).
SETTINGS: dict[str, tuple[float, dict]] = {
    "reference": (1e-9, {"trtol": 0.01, "reltol": 1e-4}),
    "check 2ns trtol0.01": (2e-9, {"trtol": 0.01}),
    "5ns (old default)": (5e-9, {}),
    "20ns": (20e-9, {}),
    "20ns trtol1": (20e-9, {"trtol": 1}),
    "50ns trtol0.3": (50e-9, {"trtol": 0.3}),
    "50ns trtol0.1": (50e-9, {"trtol": 0.1}),
    DEFAULT: (_D.t_step_max_s, {"trtol": _D.trtol}),
    "100ns trtol0.05": (100e-9, {"trtol": 0.05}),
    # ngspice's device bypass (off by default): a device whose terminal voltages moved less than
    # the Newton tolerances since its last evaluation reuses that evaluation
    "50ns trtol0.05 bypass": (50e-9, {"trtol": 0.05, "bypass": 1}),
    "50ns trtol0.1 bypass": (50e-9, {"trtol": 0.1, "bypass": 1}),
    # the default with ngspice's accounting on (same numerics): where its CPU time goes
    PROFILE: (_D.t_step_max_s, {"trtol": _D.trtol, "acct": None}),
    # the default loosened a little in each tolerance the local error and Newton tests use: how
    # much CPU a setting still inside the 0.1 ns budget can save
    "50ns trtol0.07": (50e-9, {"trtol": 0.07}),
    "50ns trtol0.05 reltol1.5e-3": (50e-9, {"trtol": 0.05, "reltol": 1.5e-3}),
    "50ns trtol0.05 chgtol3e-14": (50e-9, {"trtol": 0.05, "chgtol": 3e-14}),
    # what the other step-control knobs do, each alone on the default: a 10x looser Newton
    # voltage tolerance (not used by the local error test); at most 5 Newton iterations per point
    # (the same time points as the default mean that no point was cut for non-convergence, so
    # every rejected point is a local-error rejection); Gear-2 instead of trapezoidal; and
    # breakpoints closer than 2 ns merged (one per 1 ns PWL edge instead of one per corner)
    "50ns trtol0.05 vntol1e-5": (50e-9, {"trtol": 0.05, "vntol": 1e-5}),
    "50ns trtol0.05 itl4=5": (50e-9, {"trtol": 0.05, "itl4": 5}),
    "50ns trtol0.05 gear": (50e-9, {"trtol": 0.05, "method": "gear"}),
    "50ns trtol0.05 minbreak2ns": (50e-9, {"trtol": 0.05, "minbreak": 2e-9}),
    # a 100x looser current tolerance, which both the Newton test and the local error test use
    # (as the floor under reltol times a capacitor's current)
    "50ns trtol0.05 abstol1e-10": (50e-9, {"trtol": 0.05, "abstol": 1e-10}),
}
BASELINE = "5ns (old default)"
#: ngspice's accounting (``.options acct``) lines the profile reads from a run's log, by name.
ACCT_LINES = {"analysis_s": "Total analysis time (seconds)", "load_s": "Transient load time",
              "solve_s": "Transient solve time", "iterations": "Transient iterations",
              "timepoints": "Transient timepoints", "accepted": "Accepted timepoints",
              "rejected": "Rejected timepoints"}


def points_by_event(deck_text: str, time_s: np.ndarray, spike_traces: dict[str, np.ndarray],
                    vdd_v: float, merge_s: float = 5e-9) -> dict:
    """Where a transient's time points go: each accepted point is charged to the last event before
    it, an event being a cluster of source breakpoints (the PWL corners of the phase signals and
    input spikes, corners closer than ``merge_s`` merged) or a neuron's output crossing VDD/2
    (the spikes, which no breakpoint announces). Returns, per kind (``phase or input edges``,
    ``input edges only``, ``neuron spikes``), the number of events and of points, and the points
    per event: a cost that a step control setting can only trim, since every event restarts the
    step from a fraction of the edge time (ngspice cuts the step after a breakpoint to a tenth of
    the gap to the next one and grows it by at most 2x per point)."""
    corners: dict[float, set[str]] = {}
    for src in pwl_sources(deck_text):
        for t, _ in src.points:
            corners.setdefault(t, set()).add(src.name)
    clusters: list[list[float]] = []
    for t in sorted(corners):
        if clusters and t - clusters[-1][-1] <= merge_s:
            clusters[-1].append(t)
        else:
            clusters.append([t])
    events = []
    for c in clusters:
        sources = set().union(*(corners[t] for t in c))
        events.append((c[0], "input edges only" if all(n.upper().startswith("VIN") for n in sources)
                       else "phase or input edges"))
    for v in spike_traces.values():
        v = np.asarray(v)
        up = np.flatnonzero((v[:-1] < vdd_v / 2) & (v[1:] >= vdd_v / 2))
        events += [(float(time_s[i + 1]), "neuron spikes") for i in up]
    events.sort()
    starts = np.array([e[0] for e in events])
    owner = np.searchsorted(starts, time_s, side="right") - 1
    out = {}
    for kind in ("phase or input edges", "input edges only", "neuron spikes"):
        ids = [i for i, e in enumerate(events) if e[1] == kind]
        points = int(np.isin(owner, ids).sum())
        out[kind] = {"events": len(ids), "points": points, "points_per_event": points / len(ids) if ids else None}
    out["total_points"] = int(len(time_s))
    since = time_s - np.where(owner >= 0, starts[np.clip(owner, 0, None)], -np.inf)
    out["points_within_2ns_of_an_event"] = int((since < 2e-9).sum())
    return out


def _cpu_children_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed_run(sim, cache: str) -> tuple[float, str, bool]:
    """(ngspice CPU s, run dir, from cache) of one run in this worker (its only child processes)."""
    from imcpnn.spice import run

    before = _cpu_children_s()
    result = run(sim, cache_dir=cache, timeout_s=7200.0)
    return _cpu_children_s() - before, str(result.run_dir), result.from_cache


def accounting(log: str) -> dict:
    """ngspice's ``.options acct`` figures of one run (:data:`ACCT_LINES`; seconds and counts) from
    its log, and the rest of the analysis time (step control, truncation error, breakpoints,
    output): ``other_s`` = analysis - load (device evaluation) - solve (LU)."""
    out = {}
    for key, label in ACCT_LINES.items():
        hits = [line for line in log.splitlines() if line.split("=")[0].strip() == label]
        if hits:
            out[key] = float(hits[-1].split("=")[-1])
    if {"analysis_s", "load_s", "solve_s"} <= out.keys():
        out["other_s"] = out["analysis_s"] - out["load_s"] - out["solve_s"]
    return out


def profile_totals(rows: list[dict]) -> dict | None:
    """:func:`accounting` figures summed over the profiled runs of ``rows`` (None: none profiled)."""
    profiled = [r["acct"] for r in rows if r.get("acct", {}).get("analysis_s")]
    if not profiled:
        return None
    return {k: sum(a.get(k, 0.0) for a in profiled) for k in (*ACCT_LINES, "other_s")}


def _run_log(run_dir: str) -> str:
    done = Path(run_dir) / "done.json"
    return json.loads(done.read_text()).get("log", "") if done.is_file() else ""


def _warm_worker() -> None:
    from imcpnn.spice import find_ngspice

    find_ngspice()  # its `ngspice -v` child must not count in the first run's CPU time


def timed_runs(sims: list, cache: Path, jobs: int):
    """Run ``sims`` through the SPICE cache ``cache``, ``jobs`` side by side, each in a worker whose
    only child processes are its ngspice runs; yield (index into ``sims``, ngspice CPU s, run dir)
    as each finishes. A run's CPU seconds are written to ``cache/cpu_seconds.json`` when it ran and
    read back from there when the cache answered, so a rerun reuses both (nan: a cached run whose
    time was never recorded)."""
    cpu_file = cache / "cpu_seconds.json"
    record = json.loads(cpu_file.read_text()) if cpu_file.is_file() else {}
    with cf.ProcessPoolExecutor(max_workers=jobs, initializer=_warm_worker) as pool:
        futures = {pool.submit(_timed_run, sim, str(cache)): i for i, sim in enumerate(sims)}
        for fut in cf.as_completed(futures):
            cpu_s, run_dir, from_cache = fut.result()
            if not from_cache:
                record[Path(run_dir).name] = cpu_s
                cpu_file.write_text(json.dumps(record, indent=1))
            yield futures[fut], record.get(Path(run_dir).name, float("nan")), run_dir


def setting_sim(deck, options: dict):
    """The library's transient of network deck ``deck`` (tt, 27 C) with ``options`` (a setting of
    :data:`SETTINGS`) in place of its ``.options``, the library's trtol included."""
    from imcpnn.circuits.simulate.run import network_sim
    from imcpnn.spice import Corner

    return replace(network_sim(deck, Corner.TT, 27.0, trtol=7.0), options=options)


def read_traces(run_dir: str, saves) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(time s, {saved vector: values}) of a finished transient run."""
    from imcpnn.spice import RawFile

    plot = RawFile(Path(run_dir) / "out.raw").plot("tran")
    return np.asarray(plot[plot.names[0]]), {n: np.asarray(plot[n]) for n in saves}


#: The demo pipelines whose networks ``--demo-dir`` adds, and where a finished demo folder
#: records how each one's evaluation mapped its network.
DEMO_PIPELINES = ("bottom_up", "top_down")
DEMO_STAGE = "stages/evaluate_{}.json"


def weight_sets(demo_dir: str | None, n_random: int) -> list[tuple[str, list[np.ndarray], object, float]]:
    """(name, weights, CurrentScales, discharger factor) for every weight set: a demo pipeline's
    trained weights mapped as its evaluation mapped them (the scales and discharger factor its
    ``stages/evaluate_<pipeline>.json`` records), or random weights at scale 1 and discharger
    factor 1."""
    from imcpnn.circuits.simulate.weights import CurrentScales

    sets = []
    if demo_dir:
        from imcpnn.pnn import load_trained

        for pipeline in DEMO_PIPELINES:
            mapping = json.loads((Path(demo_dir) / DEMO_STAGE.format(pipeline)).read_text())["mapping"]
            model = load_trained(Path(demo_dir) / f"train_{pipeline}").model
            scales = CurrentScales(**mapping["scales"])
            name = f"{pipeline} scales {scales.scale:.4g}/{scales.scale_plus:.4g}/{scales.scale_minus:.4g}"
            sets.append((name, [w.double().numpy() for w in model.dense_weights()], scales,
                         float(mapping["discharger_scale"])))
    for seed in range(n_random):
        rng = np.random.default_rng(seed)
        sets.append((f"random seed {seed}", [rng.uniform(-0.3, 0.6, (5, 5)) for _ in range(2)], CurrentScales(), 1.0))
    return sets


BYPASS = "50ns trtol0.05 bypass"


def headline(summary: list[dict], n_sets: int, n_samples: int, rows: list[dict] = ()) -> dict:
    """The README's numbers: CPU time and output error of the default setting, of the old one and
    of the default with device bypass; the device-evaluation share of the profiled runs."""
    by_name = {o["setting"]: o for o in summary}
    out = {"sets x samples": f"{n_sets} x {n_samples}"}
    for label, name in (("default", DEFAULT), ("old default", BASELINE), ("bypass", BYPASS)):
        if name in by_name:
            out[f"{label} CPU s/sample"] = by_name[name]["cpu_s_per_sample"]
            out[f"{label} out RMSE ns"] = by_name[name]["out_rmse_ns"]
    if DEFAULT in by_name and BASELINE in by_name:
        out["CPU old / default"] = by_name[BASELINE]["cpu_s_per_sample"] / by_name[DEFAULT]["cpu_s_per_sample"]
    total = profile_totals(list(rows))
    if total:
        out["device evaluation share"] = total["load_s"] / total["analysis_s"]
    events = event_totals(list(rows))
    if events:
        out["default points per event"] = events["points_per_event"]
        out["default events per sample"] = events["events"] / (n_sets * n_samples)
        out["share of points within 2 ns of an event"] = events["share_within_2ns"]
    cheaper = [o for o in summary if o["setting"] not in (DEFAULT, PROFILE, "reference") and DEFAULT in by_name
               and o["out_rmse_ns"] <= ACCURACY_NS]
    if cheaper:  # the cheapest setting that keeps the spike times within the budget
        best = min(cheaper, key=lambda o: o["cpu_s_per_sample"])
        out["cheapest within 0.1 ns"] = best["setting"]
        out["its CPU / default"] = best["cpu_s_per_sample"] / by_name[DEFAULT]["cpu_s_per_sample"]
    return out


#: The spike-time budget a cheaper setting must keep (ns RMS of the output layer vs the reference).
ACCURACY_NS = 0.1


def event_totals(rows: list[dict]) -> dict | None:
    """:func:`points_by_event` summed over the default setting's runs: events, the points charged
    to them and points per event (None: no run has the breakdown)."""
    parts = [r["points_by_event"] for r in rows if r.get("points_by_event")]
    if not parts:
        return None
    kinds = ("phase or input edges", "input edges only", "neuron spikes")
    events = sum(p[k]["events"] for p in parts for k in kinds)
    points = sum(p[k]["points"] for p in parts for k in kinds)
    return {"events": events, "points": points, "points_per_event": points / events,
            "share_within_2ns": sum(p["points_within_2ns_of_an_event"] for p in parts)
            / sum(p["total_points"] for p in parts)}


def add_network_arguments(ap, n_samples: int, n_random_with_demo: int) -> None:
    """The arguments that pick the weight sets and samples (:func:`weight_sets`), shared with
    ``network_column_split.py``: ``--demo-dir``, ``--characterization``, ``--n-random`` (default
    ``n_random_with_demo`` with a demo folder, else 2) and ``--n-samples`` (default ``n_samples``)."""
    ap.add_argument("--demo-dir", type=_record.existing_dir, default=None,
                    help="finished `imcpnn demo` folder (models, scales, characterization)")
    ap.add_argument("--characterization", type=_record.existing_file, default=None,
                    help="characterization.json (default: the demo's, else simulated)")
    ap.add_argument("--n-random", type=_record.non_negative_int, default=None,
                    help=f"random weight sets (default {n_random_with_demo} with --demo-dir, else 2)")
    ap.add_argument("--n-samples", type=_record.positive_int, default=n_samples,
                    help=f"Iris test samples, all in one deck (default {n_samples})")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = _record.parser(__file__, __doc__)
    add_network_arguments(ap, n_samples=25, n_random_with_demo=0)
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names of SETTINGS to run")
    ap.add_argument("--reference", default="reference", help="the setting the errors are taken against")
    ap.add_argument("--jobs", type=_record.positive_int, default=2, help="ngspice runs side by side")
    ap.add_argument("--cache", default="/tmp/imcpnn-tran-settings",
                    help="private SPICE cache (reruns reuse runs and their CPU times)")
    ap.add_argument("--json", default=None, help="also write the per-run rows to this JSON file")
    _record.add_arguments(ap)
    args = ap.parse_args(argv)

    names = [s.strip() for s in args.settings.split(",")]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown or args.reference not in names:
        ap.error(f"argument --settings: unknown settings {unknown} or no {args.reference!r}; known: {list(SETTINGS)}")
    n_random = args.n_random if args.n_random is not None else (0 if args.demo_dir else 2)
    if not args.demo_dir and n_random == 0:
        ap.error("argument --n-random: 0 weight sets (give --demo-dir or --n-random >= 1)")
    stages = [DEMO_STAGE.format(p) for p in DEMO_PIPELINES] if args.demo_dir else []
    missing = [stage for stage in stages if not (Path(args.demo_dir) / stage).is_file()]
    if missing:
        ap.error(f"argument --demo-dir: {args.demo_dir} has no {missing[0]}: give a finished `imcpnn demo` folder")
    recorder = _record.Recorder(__file__, args, argv)

    from imcpnn.circuits.characterization.fit import Characterization
    from imcpnn.circuits.simulate import spice_spike_table
    from imcpnn.circuits.netlist.network import Network, ParasiticEstimate
    from imcpnn.circuits.simulate.run import build_testbenches, map_network
    from imcpnn.pnn import DataConfig, load_dataset
    from imcpnn.validation import compare_spike_tables, layer_metrics, output_rmse_ns

    char_path = args.characterization or (
        args.demo_dir and Path(args.demo_dir) / "characterization" / "characterization.json")
    if char_path:
        char = json.loads(Path(char_path).read_text())
    else:
        from imcpnn.circuits.characterization.sweeps import characterize

        char = characterize(cache_dir=args.cache, progress=False)[0]
    sets = weight_sets(args.demo_dir, n_random)
    x = load_dataset(DataConfig(dataset="iris", seed=0)).x_test.double().numpy()[: args.n_samples]
    network = Network((5, 5, 5), parasitic=ParasiticEstimate())
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)

    jobs = []  # (setting, set index, schedule, deck, Sim)
    for name in names:
        step, options = SETTINGS[name]
        schedule = PhaseSchedule(t_step_max_s=step)
        for k, (_, weights, scales, discharger) in enumerate(sets):
            mapping = map_network(network, weights, Characterization.from_dict(char), scales, schedule.t_phase_s,
                                  discharger)
            (deck,) = build_testbenches(network, mapping, x, schedule, len(x), save_membranes=False)
            jobs.append((name, k, schedule, deck, setting_sim(deck, options)))

    rows, tables = [], {}
    for done, (i, cpu_s, run_dir) in enumerate(timed_runs([job[4] for job in jobs], cache, args.jobs), 1):
        name, k, schedule, deck, _ = jobs[i]
        time_s, traces = read_traces(run_dir, deck.saves)
        tables[name, k] = spice_spike_table(time_s, traces, deck.widths, deck.n_samples, schedule, network.vdd_v)
        row = {"setting": name, "set": k, "cpu_s": cpu_s, "points": len(time_s)}
        if name == DEFAULT:
            spikes = {n: traces[n] for n in deck.saves if n.lower().startswith("v(s")}
            row["points_by_event"] = points_by_event(deck.text, time_s, spikes, network.vdd_v)
        if "acct" in SETTINGS[name][1]:
            row["acct"] = accounting(_run_log(run_dir))
        rows.append(row)
        print(f"[{done}/{len(jobs)}] {name:<30} set {k}: {cpu_s:7.1f} CPU s, {len(time_s)} points", flush=True)

    runs = pd.DataFrame(rows)
    T = PhaseSchedule().t_phase_s
    out = []
    for name in names:
        per_set = [compare_spike_tables(tables[args.reference, k], tables[name, k], T) for k in range(len(sets))]
        # compare_spike_tables' "model" side is the reference here: err = reference - setting
        cmp = pd.concat([c.assign(sample=c["sample"] + 10_000 * k) for k, c in enumerate(per_set)])  # pool the sets
        lm = layer_metrics(cmp).set_index("layer")
        mismatch = int((cmp["spiked_model"] != cmp["spiked_spice"]).sum())
        r = runs[runs["setting"] == name]
        row = {"setting": name, "t_step_max_ns": SETTINGS[name][0] * 1e9, "options": SETTINGS[name][1],
               "cpu_s_per_sample": r["cpu_s"].sum() / (len(sets) * len(x)),
               "points_per_sample": r["points"].sum() / (len(sets) * len(x)),
               "out_rmse_ns": lm.loc[1, "rmse_t_spike_ns"], "out_max_ns": lm.loc[1, "max_abs_err_t_spike_ns"],
               "out_bias_ns": -lm.loc[1, "mean_err_t_spike_ns"],
               "hid_rmse_ns": lm.loc[0, "rmse_t_spike_ns"], "hid_max_ns": lm.loc[0, "max_abs_err_t_spike_ns"],
               "spiked_mismatch": mismatch,
               "out_rmse_ns_per_set": [output_rmse_ns(c) for c in per_set]}
        out.append(row)

    machine = _record.machine(spice=True)
    print(f"\n{_record.machine_line(machine)}; load avg now {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"5-5-5 + parasitic estimate, tt 27 C, T = {T * 1e9:.0f} ns, {len(x)} Iris test samples in one deck, "
          f"{len(sets)} weight sets: {'; '.join(s[0] for s in sets)}; {args.jobs} runs side by side")
    print(f"spike-time errors in ns vs {args.reference!r} {SETTINGS[args.reference]}, pooled over all sets "
          "(bias = mean of setting - reference; mism = neurons spiking in one only); CPU = ngspice user+sys")
    # "vs old": CPU of the old default over each setting's, "-" where the old default did not run
    old_cpu = next((o["cpu_s_per_sample"] for o in out if o["setting"] == BASELINE), None)
    head = (f"{'setting':<30}{'CPU s/smp':>10}{'vs old':>9}{'pts/smp':>9}{'out RMSE':>10}{'out max':>9}{'out bias':>10}"
            f"{'hid RMSE':>10}{'hid max':>9}{'mism':>6}  out RMSE per set (ns)")
    print(head)
    for o in out:
        vs_old = f"{'-':>9}" if old_cpu is None else f"{old_cpu / o['cpu_s_per_sample']:>8.2f}x"
        line = (f"{o['setting']:<30}{o['cpu_s_per_sample']:>10.3g}{vs_old}"
                f"{o['points_per_sample']:>9.0f}{o['out_rmse_ns']:>10.3f}{o['out_max_ns']:>9.3f}{o['out_bias_ns']:>10.3f}"
                f"{o['hid_rmse_ns']:>10.3f}{o['hid_max_ns']:>9.3f}{o['spiked_mismatch']:>6}  "
                + " ".join(f"{v:.3f}" for v in o["out_rmse_ns_per_set"]))
        print(line)
    total = profile_totals(rows)
    if total:
        print(f"\nwhere ngspice's time goes ({PROFILE!r}, all sets): device evaluation (load) "
              f"{total['load_s'] / total['analysis_s']:.0%}, matrix solve {total['solve_s'] / total['analysis_s']:.0%}, "
              f"the rest (step control, truncation error, output) {total['other_s'] / total['analysis_s']:.0%}; "
              f"{total['iterations'] / total['timepoints']:.2f} Newton iterations per time point, "
              f"{total['rejected'] / total['timepoints']:.0%} of the time points rejected")
    events = event_totals(rows)
    if events:
        print(f"where its time points go ({DEFAULT!r}, all sets): {events['points_per_event']:.0f} points per event "
              f"(a phase or input edge, or a neuron's spike; {events['events']} events), "
              f"{events['share_within_2ns']:.0%} of all points within 2 ns after one")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "summary": out}, indent=1, default=str))
    repeats = {name: [r["cpu_s"] for r in sorted(rows, key=lambda r: r["set"]) if r["setting"] == name]
               for name in names}
    path = recorder.write(machine=machine, headline=headline(out, len(sets), len(x), rows), repeats=repeats,
                          results={"weight_sets": [s[0] for s in sets], "runs": rows, "summary": out})
    print(f"result: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
