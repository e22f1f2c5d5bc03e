"""A trained MLP's first layer as column decks: SPICE cost per column and sample, model vs SPICE,
1 vs 2 Dask workers, and what the full layer would cost.

Claims measured, through the library's own ``imcpnn.validation.run_layer`` (what ``imcpnn layer``
runs), on K columns x S test images of a trained network's first layer (``--run``, an
``imcpnn train`` folder; for Fashion-MNIST 784 inputs per column):

1. the cost of one column deck per sample: ngspice's own time (serial cost; split into the
   transient and the parsing/setup of the deck, paid once per deck), the CPU time of every
   process of the run (``getrusage``: this process and its local Dask cluster's workers with
   their ngspice, counted when the cluster closes) and the wall time;
2. the bottom-up model's spike-time RMSE and bias against SPICE on those columns (neurons
   spiking on both sides; the terms are layer.json's);
3. the wall-time ratio of a LocalCluster of 1 vs 2 Dask workers on the same batch, each from an
   empty SPICE cache (the layer's calibration, discharger and kick, runs once before, cached, untimed);
4. a projection for ``--full-columns`` columns x ``--full-samples`` images on a cluster of
   ``--cluster-cores`` single-threaded workers: serial cost from (1) with the setup amortized
   over ``--full-batch`` samples per deck, divided by the workers at the parallel efficiency
   measured in (3) (and at efficiency 1).

With ``--work-dir`` (kept; default a temporary folder, removed) each worker count's timed run is
saved there as it finishes (``timing_<n>.json`` beside its ``out_<n>/layer.json``): a rerun with
the same folder and arguments reuses the finished ones (``resumed_runs``: their timing as
measured, their summary redone from the saved columns by the current code, nothing simulated)
and times the rest, each again from an empty cache.

Usage: .venv/bin/python benchmarks/layer_columns.py --run runs/fmnist [--columns 2] [--samples 2]
       [--batch-size 1] [--workers 1,2] [--characterization FILE] [--cluster-cores 1024]
       [--work-dir DIR] [--name latest]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


import _record


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load_problem(run_dir: Path, samples: int, columns: int):
    """(first-layer weights (n_in, n_out), the first ``samples`` test inputs (S, n_in), arch), read
    and checked as ``imcpnn layer --run`` does (:func:`imcpnn.verbs.layer.load_layer_problem`)."""
    import argparse

    from imcpnn.verbs.layer import load_layer_problem

    w, x, provenance = load_layer_problem(argparse.Namespace(run=run_dir, dataset=None, data_dir=None, weights=None,
                                                             columns=columns, samples=samples))
    return w, x, provenance["arch"]


def projection(cost: dict, efficiency: float, args) -> dict:
    """Wall time of the full job on the cluster from the measured cost per column and sample."""
    setup = cost["ngspice_setup_s_per_deck"] or 0.0
    analysis = cost["ngspice_analysis_s"] if cost["ngspice_analysis_s"] is not None else cost["ngspice_s"]
    per_column_sample = analysis + setup / args.full_batch
    serial_s = per_column_sample * args.full_columns * args.full_samples
    return {"columns": args.full_columns, "samples": args.full_samples, "cluster_cores": args.cluster_cores,
            "samples_per_deck": args.full_batch, "s_per_column_sample": per_column_sample,
            "serial_core_h": serial_s / 3600, "efficiency": efficiency,
            "wall_h": serial_s / (args.cluster_cores * efficiency) / 3600,
            "wall_h_ideal": serial_s / args.cluster_cores / 3600,
            "note": ("ngspice's measured time per column and sample (transient) plus its measured setup per deck "
                     f"over {args.full_batch} samples per deck; one single-threaded ngspice per core at the "
                     "measured 2-worker efficiency (wall_h) or perfectly parallel (wall_h_ideal); each worker "
                     "holds one deck in memory (about 1 GB for 784 inputs)")}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = _record.parser(__file__, __doc__)
    ap.add_argument("--run", type=_record.existing_dir, required=True,
                    help="an `imcpnn train` folder (e.g. a Fashion-MNIST MLP): its first layer is simulated")
    ap.add_argument("--characterization", type=_record.existing_file, default=None,
                    help="characterization.json (default: simulate one at tt, 27 C into --cache)")
    ap.add_argument("--columns", type=_record.positive_int, default=2, help="K, the first K columns (default 2)")
    ap.add_argument("--samples", type=_record.positive_int, default=2, help="S test images (default 2)")
    ap.add_argument("--batch-size", type=_record.positive_int, default=1, help="samples per column deck (default 1)")
    ap.add_argument("--workers", type=_record.int_list, default=[1, 2],
                    help="LocalCluster sizes to time on the same batch, e.g. 1,2 (default)")
    ap.add_argument("--cluster-cores", type=_record.positive_int, default=1024,
                    help="workers of the projected cluster (default 1024)")
    ap.add_argument("--full-columns", type=_record.positive_int, default=400,
                    help="columns of the projected layer (default 400: the paper's 784-400 first layer)")
    ap.add_argument("--full-samples", type=_record.positive_int, default=10000,
                    help="images of the projection (default 10000: the Fashion-MNIST test set)")
    ap.add_argument("--full-batch", type=_record.positive_int, default=50,
                    help="samples per deck in the projection (default 50)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="SPICE cache of the characterization and the calibration (default: in --work-dir)")
    ap.add_argument("--work-dir", type=Path, default=None,
                    help="folder of the timed runs, kept so that a rerun resumes them (default: temporary)")
    _record.add_arguments(ap)
    args = ap.parse_args(argv)
    recorder = _record.Recorder(__file__, args, argv)

    from imcpnn.circuits.characterization.fit import read_characterization
    from imcpnn.circuits.characterization.sweeps import CharacterizationConfig, characterize
    from imcpnn.circuits.netlist.network import Network
    from imcpnn.errors import ImcpnnError
    from imcpnn.spice import dask_client
    from imcpnn.validation import calibrate_layer, run_layer

    try:
        w, x, arch = load_problem(args.run, args.samples, args.columns)
    except ImcpnnError as err:
        ap.error(f"argument --run: {err}")
    machine = _record.machine(spice=True)
    print(_record.machine_line(machine) + f", load avg {os.getloadavg()[0]:.1f}")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="imcpnn-bench-layer-"))
    cache = args.cache or work / "cache"
    work.mkdir(parents=True, exist_ok=True)
    identity = json.loads(json.dumps({k: getattr(args, k) for k in ("run", "characterization", "columns", "samples",
                                                                    "batch_size")}, default=str))
    try:
        char = (read_characterization(args.characterization) if args.characterization
                else characterize(CharacterizationConfig(), cache_dir=cache, progress=False)[0])
        t0 = time.perf_counter()
        calibration = calibrate_layer(Network(w.shape), w, char, 0, cache_dir=cache)
        calibration_s = time.perf_counter() - t0
        print(f"layer {w.shape[0]} x {w.shape[1]} ({arch}); calibration {calibration_s:.0f} s: C_eff/C_m "
              f"{calibration['c_eff_over_c_m']:.2f}, discharger k* {calibration['factor']:.2f}, t_0 "
              f"{calibration['t_0']:.3f}, kick q_plus {calibration['q_plus']:.2e}, q_minus "
              f"{calibration['q_minus']:.2e}")
        columns = list(range(args.columns))
        runs, raw, resumed = {}, {}, []
        for n in args.workers:
            timing = work / f"timing_{n}.json"
            if timing.is_file():
                done = json.loads(timing.read_text())
                # OUT/columns/col_<c>.json: where run_layer saves each column (docs/distributed.md)
                saved = all((work / f"out_{n}" / "columns" / f"col_{c}.json").is_file() for c in columns)
                if done.get("arguments") == identity and saved:
                    # its timing as measured; its summary redone by this code from the saved
                    # columns (run_layer resumes every column: nothing is simulated)
                    done["layer"] = run_layer(w, x, char, work / f"out_{n}", columns=columns,
                                              batch_size=args.batch_size, executor_label=done["layer"]["executor"],
                                              cache_dir=work / f"cache_{n}", progress=False, calibration=calibration,
                                              provenance={"run": str(args.run), "arch": arch})
                    timing.write_text(json.dumps(done, indent=1) + "\n")
                    runs[n], raw[f"dask_{n}_workers_wall_s"] = done, [done["wall_s"]]
                    resumed.append(n)
                    print(f"{n} worker(s): resumed from {timing} ({done['wall_s']:.0f} s wall)")
                    continue
            fresh = work / f"cache_{n}"
            for stale in (fresh, work / f"out_{n}"):  # an empty cache, and no saved column to resume
                shutil.rmtree(stale, ignore_errors=True)
            cpu0, load0 = _children_cpu_s(), list(os.getloadavg())
            with dask_client(None, n_workers=n) as client:
                client.wait_for_workers(n)
                t0 = time.perf_counter()
                layer = run_layer(w, x, char, work / f"out_{n}", columns=columns, batch_size=args.batch_size,
                                  executor=client, executor_label=f"dask LocalCluster ({n} workers)",
                                  columns_per_batch=len(columns), cache_dir=fresh, progress=False,
                                  calibration=calibration, provenance={"run": str(args.run), "arch": arch})
                wall = time.perf_counter() - t0
            cpu = _children_cpu_s() - cpu0  # the cluster's workers (and their ngspice) are reaped at close
            raw[f"dask_{n}_workers_wall_s"] = [wall]
            runs[n] = {"wall_s": wall, "cpu_s": cpu, "layer": layer, "load_average_before": load0,
                       "load_average": list(os.getloadavg()), "arguments": identity}
            timing.write_text(json.dumps(runs[n], indent=1) + "\n")
            shutil.rmtree(fresh, ignore_errors=True)
            print(f"{n} worker(s): {wall:.0f} s wall, {cpu:.0f} s CPU for {len(columns)} columns x {args.samples} "
                  f"samples")
        first = runs[args.workers[0]]["layer"]
        same = all(r["layer"]["spike_times"] == first["spike_times"] for r in runs.values())
        n_col_samples = len(columns) * args.samples
        cost = dict(first["cost_s_per_column_sample"])
        cost["cpu_s_measured"] = runs[args.workers[0]]["cpu_s"] / n_col_samples
        cost["wall_s_measured"] = runs[args.workers[0]]["wall_s"] / n_col_samples
        ratio = (runs[1]["wall_s"] / runs[2]["wall_s"]) if {1, 2} <= set(runs) else None
        efficiency = min(1.0, ratio / 2) if ratio else 1.0
        proj = projection(cost, efficiency, args)
        results = {"n_inputs": first["n_inputs"], "n_outputs": first["n_outputs"], "columns": columns,
                   "n_samples": args.samples, "batch_size": args.batch_size, "calibration": calibration,
                   "calibration_wall_s": calibration_s, "cost_s_per_column_sample": cost,
                   "rmse_ns": first["rmse_ns"], "bias_ns": first["bias_ns"], "models": first["models"],
                   "energy_per_inference_j": first["energy_per_inference_j"], "energy_note": first["energy_note"],
                   "energy_per_synop_j": first.get("energy_per_synop_j"),
                   "spike_times": first["spike_times"], "same_spike_times_every_run": same,
                   "runs": {str(n): {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "executor": r["layer"]["executor"],
                                     "load_average_after": r["load_average"]} for n, r in runs.items()},
                   "resumed_runs": resumed,
                   "wall_ratio_1_to_2_workers": ratio, "projection": proj,
                   "sources_per_deck": first["sources_per_deck"], "mapping": first["mapping"]}
        headline = {"inputs x columns x samples": f"{first['n_inputs']} x {len(columns)} x {args.samples}",
                    "ngspice s / column-sample": cost["ngspice_s"],
                    "of it setup s / deck": cost["ngspice_setup_s_per_deck"],
                    "CPU s / column-sample": cost["cpu_s_measured"],
                    "rmse ns": first["rmse_ns"], "bias ns": first["bias_ns"],
                    "both spiking": first["models"]["bottom_up"]["n_both_spiking"],
                    "wall 1 / 2 workers": ratio,
                    f"{args.full_columns} x {args.full_samples} on {args.cluster_cores} cores h": proj["wall_h"]}
        print(f"cost per column and sample: {cost['ngspice_s']:.0f} s ngspice ({cost['ngspice_analysis_s'] or 0:.0f} s "
              f"transient, setup {cost['ngspice_setup_s_per_deck'] or 0:.0f} s per deck), "
              f"{cost['cpu_s_measured']:.0f} s CPU")
        rmse = "n/a" if first["rmse_ns"] is None else f"{first['rmse_ns']:.2f} ns"
        print(f"model - SPICE: rmse {rmse} over {first['models']['bottom_up']['n_both_spiking']} pairs; "
              f"1 / 2 workers wall ratio: {ratio if ratio is None else round(ratio, 2)}")
        print(f"projection: {args.full_columns} columns x {args.full_samples} images = {proj['serial_core_h']:.0f} "
              f"core-hours; on {args.cluster_cores} cores {proj['wall_h']:.1f} h (ideal {proj['wall_h_ideal']:.1f} h)")
        # the load before the measurement: the first timed run's (resumed runs were timed earlier)
        load_before = runs[args.workers[0]].get("load_average_before")
        path = recorder.write(machine=machine, headline=headline, results=results, repeats=raw,
                              **({"load_average_before": load_before} if load_before else {}))
        print(f"result: {path}")
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
