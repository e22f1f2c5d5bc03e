"""Model fidelity on the demo: held-out model-vs-SPICE RMSE per pipeline, as data.

Records a finished `imcpnn demo` / `imcpnn validate` run folder (its summary.json and config)
together with the machine, the load average and the wall time, as
``benchmarks/results/demo_fidelity_<name>.json``; ``--table`` prints the README's fidelity table
from every such file, so the README quotes data, not hand-typed numbers.

    .venv/bin/imcpnn demo --out runs/demo                                   # the measurement
    .venv/bin/python benchmarks/demo_fidelity.py record runs/demo --name schematic \
        --wall-s 1234 --load-before 0.1
    .venv/bin/python benchmarks/demo_fidelity.py table                      # README table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PIPELINES = ("top_down", "bottom_up", "trace_fitted")


def record(run_dir: Path, name: str, wall_s: float | None, load_before: float | None) -> Path:
    summary = json.loads((run_dir / "summary.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    out = {
        "name": name, "run_dir": str(run_dir), "summary": summary, "config": config,
        "wall_s": wall_s, "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"demo_fidelity_{name}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    return path


def _f(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def table() -> str:
    rows = ["| run | netlist | calibration | discharger | pipeline | output RMSE ns | RMSE spiking ns "
            "| bias ns | one-sided silent | accuracy model / SPICE |",
            "|---|---|---|---|---|---:|---:|---:|---:|---|"]
    for path in sorted(RESULTS.glob("demo_fidelity_*.json")):
        d = json.loads(path.read_text())
        s = d["summary"]
        cal = s["calibration"]
        for p in PIPELINES:
            acc = s["test_accuracy_by_pipeline"][p]
            rows.append(f"| {d['name']} | {s['netlist_kind']} | {cal['source']} ({cal['n_samples']}) | "
                        f"{s['discharger']} | {p} | {_f(s[f'rmse_{p}_ns'])} | "
                        f"{_f(s[f'rmse_spiking_{p}_ns'])} | {_f(s[f'bias_{p}_ns'])} | "
                        f"{s[f'n_silent_mismatch_{p}']} | {acc['model']:.2f} / {acc['spice']:.2f} |")
    budget = ["", "| run | bottom-up model | held-out output RMSE ns |", "|---|---|---:|"]
    for path in sorted(RESULTS.glob("demo_fidelity_*.json")):
        d = json.loads(path.read_text())
        budget += [f"| {d['name']} | {row['term']} | {_f(row['rmse_bottom_up_ns'])} |"
                   for row in d["summary"]["error_budget"]]
    return "\n".join(rows + budget)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="store a finished run's summary as benchmark data")
    rec.add_argument("run_dir", type=Path)
    rec.add_argument("--name", required=True)
    rec.add_argument("--wall-s", type=float, default=None, help="wall time of the run (s)")
    rec.add_argument("--load-before", type=float, default=None, help="1-min load average before the run")
    sub.add_parser("table", help="print the README's fidelity tables from benchmarks/results")
    args = parser.parse_args(argv)
    if args.cmd == "record":
        if not (args.run_dir / "summary.json").is_file():
            print(f"demo_fidelity: error: {args.run_dir}/summary.json not found; run the demo first",
                  file=sys.stderr)
            return 2
        print(record(args.run_dir, args.name, args.wall_s, args.load_before))
    else:
        print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
