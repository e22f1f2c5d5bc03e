"""Scale search vs an exhaustive grid on a finished demo: does the economical search end where
an exhaustive search of the same objective ends?

Claim measured (issue: speed): the scale search (the model-guided Gauss-Newton search by default)
finds the minimum an exhaustive search finds: the same scales to the resolution and the same
calibration RMSE within its tolerance (0.1 ns), with a fraction of the candidates. For one
pipeline of a finished ``imcpnn demo`` folder it simulates every point of the resolution grid
within ``--half-width`` steps of the search's best point (plus ``--extra`` points), through the
pipeline's own candidate evaluation: the same calibration samples and the same SPICE decks, so
the SPICE cache answers every point the search already simulated. It compares the grid's lowest
calibration RMSE (and where) with the search's, and counts both.

How: a copy of the folder (``--work``) without the pipeline's search stage is resumed
(:func:`imcpnn.validation.run_validation` with its own config) with the search replaced by the
grid (``run_validation(..., search=...)``); the copy stops there, so nothing else is recomputed
and the folder itself is not touched.

Usage: .venv/bin/python benchmarks/search_vs_grid.py --demo-dir runs/demo [--pipeline top_down]
       [--half-width 2] [--extra "1.30,1.12;1.29,1.11"] [--work /tmp/search-vs-grid] [--name latest]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import _record

PIPELINES = ("top_down", "bottom_up", "trace_fitted")


class _GridDone(Exception):
    """Raised by the grid in place of the search: the resumed run stops there."""


def grid_points(best: tuple[float, ...], res: float, half_width: int) -> list[tuple[float, ...]]:
    """Every point of the resolution grid within ``half_width`` steps of ``best`` (max-norm)."""
    axes = [[round(b + res * k, 6) for k in range(-half_width, half_width + 1)] for b in best]
    return [tuple(p) for p in np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(best), -1).T.tolist()]


def parse_points(text: str, n_dims: int) -> list[tuple[float, ...]]:
    """``--extra``: points separated by ";", coordinates by ","."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        values = tuple(float(v) for v in part.split(","))
        if len(values) != n_dims:
            raise ValueError(f"point {part!r} has {len(values)} coordinates; the search has {n_dims}")
        out.append(values)
    return out


def compare(search_best, search_rmse: float, grid: dict, res: float) -> dict:
    """The headline numbers: where the grid's lowest RMSE lies, how far (grid steps, max-norm) and
    how much lower (ns) than the search's answer."""
    finite = {p: v for p, v in grid.items() if v is not None and np.isfinite(v)}
    grid_best = min(finite, key=lambda p: (finite[p], p))
    steps = max(abs(a - b) for a, b in zip(grid_best, search_best)) / res
    # the RMSEs as text with 3 decimals: the table's 3 significant digits would hide the difference
    return {"grid best": list(grid_best), "grid RMSE ns": f"{finite[grid_best]:.3f}",
            "search best": list(search_best), "search RMSE ns": f"{search_rmse:.3f}",
            "search - grid ns": round(search_rmse - finite[grid_best], 4), "grid steps apart": round(steps)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = _record.parser(__file__, __doc__)
    ap.add_argument("--demo-dir", type=_record.existing_dir, required=True, help="finished `imcpnn demo` folder")
    ap.add_argument("--pipeline", choices=PIPELINES, default="top_down", help="whose search to check")
    ap.add_argument("--half-width", type=_record.positive_int, default=2,
                    help="grid steps on each side of the search's best point (default 2: a 5 x 5 box in 2-D)")
    ap.add_argument("--extra", default="", help='more points, e.g. "1.30,1.12;1.29,1.11"')
    ap.add_argument("--work", default="/tmp/imcpnn-search-vs-grid", help="where the folder's copy is resumed")
    _record.add_arguments(ap)
    args = ap.parse_args(argv)
    stages = args.demo_dir / "stages"
    found = stages / f"search_{args.pipeline}.json"
    log = stages / f"search_{args.pipeline}.log.csv"
    if not found.is_file() or not log.is_file() or not (args.demo_dir / "config.json").is_file():
        ap.error(f"argument --demo-dir: {args.demo_dir} holds no finished {args.pipeline} search "
                 f"({found.name}, {log.name}, config.json); run `imcpnn demo --out {args.demo_dir}` first")
    searched = json.loads(found.read_text())
    search_best = tuple(searched["best"])
    n_dims = len(search_best)
    try:
        extra = parse_points(args.extra, n_dims)
    except ValueError as err:
        ap.error(f"argument --extra: {err}")
    recorder = _record.Recorder(__file__, args, argv)

    from imcpnn.validation import load_results, run_validation

    config = load_results(args.demo_dir).config
    res = config.search.steps[-1]
    table = pd.read_csv(log)
    on_best = np.all([np.isclose(table[f"x{i}"], v) for i, v in enumerate(search_best)], axis=0)
    search_rmse = float(table.loc[on_best, "rmse_t_spike_ns"].iloc[0])
    points = list(dict.fromkeys(grid_points(search_best, res, args.half_width) + extra))

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(args.demo_dir, work)
    for name in (found.name, log.name):
        (work / "stages" / name).unlink()
    grid: dict[tuple[float, ...], float | None] = {}

    def grid_instead_of_search(evaluate, n, cfg, log_path, start=None, model_errors=None):
        if Path(log_path).name != log.name or n != n_dims:
            raise RuntimeError(f"the resumed run asked for another search ({Path(log_path).name}) "
                               f"before the {args.pipeline} one")
        for p, value in zip(points, evaluate(points)):
            r = np.asarray(value, dtype=float)
            grid[p] = float(np.sqrt(np.mean(r ** 2))) if r.size and np.all(np.isfinite(r)) else None
        raise _GridDone

    try:
        run_validation(config, work, search=grid_instead_of_search, command="benchmarks/search_vs_grid.py")
    except _GridDone:
        pass
    if not grid:
        ap.error(f"the resumed run in {work} did not reach the {args.pipeline} search")
    head = {"pipeline": args.pipeline, "search candidates": int(searched["n_candidates"]),
            "grid points": len(grid), **compare(search_best, search_rmse, grid, res)}
    print(f"{args.pipeline}: search {head['search best']} {search_rmse:.3f} ns in {head['search candidates']} "
          f"candidates; grid ({len(grid)} points) {head['grid best']} {head['grid RMSE ns']} ns; "
          f"search - grid {head['search - grid ns']:+.3f} ns, {head['grid steps apart']} grid steps apart")
    path = recorder.write(machine=_record.machine(spice=True), headline=head, repeats={},
                          results={"resolution": res, "search_log": table.to_dict(orient="records"),
                                   "grid": [{"point": list(p), "rmse_ns": v} for p, v in grid.items()]})
    print(f"result: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
