"""Coarse-to-fine search of current scales against SPICE, economical and resumable.

Why a stencil (pattern) search rather than a 1 % grid over the whole range: one candidate costs
one batched ngspice run (all calibration samples), and the RMSE is a smooth,
roughly bowl-shaped function of the scales near its minimum. So each level simulates a small
axis-aligned stencil around the best point so far (centre +- k steps along each axis, k <=
half_width: a compass / coordinate pattern search, Kolda, Lewis and Torczon, SIAM Review 2003),
all candidates of a stencil in parallel; it recentres while the best lies on the stencil's edge,
then shrinks the step (10 % -> 3 % -> 1 %). With half_width 1 a 1-D search to 1 % costs about
3 + 2 + 2 = 7 runs instead of 100 for a dense +-50 % grid, the 2-D top-down search about
3 + 4 + 4 + 4 = 15 instead of 10^4. The result is a local minimum at the final resolution; the
search curves in the report show the landscape around it.

Why the 2-D search's coarse level steps along a ray: an axis stencil walks a diagonal valley one
axis at a time, recentring at every level, when the optimum lies off in both scales by a similar
factor (the overall current level is wrong, not the ratio of the two scales). So the coarse level
first steps both scales by one common factor (a 1-D search for the level), then walks the axes
at the same step as before; the finer levels refine the two scales apart.

Every evaluated candidate is appended to a CSV log as soon as its batch finishes; a resumed search
replays the log and simulates only what is missing (the SPICE layer's own cache is a second line).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from imcpnn.errors import ResultsError
from imcpnn.validation._config import SearchConfig

Point = tuple[float, ...]


def _key(point: Sequence[float]) -> Point:
    # Rounded so that a stencil point reached twice (from different centres) is one candidate.
    return tuple(round(float(x), 6) for x in point)


def stencil(centre: Point, step: float, half_width: int, scale_range: tuple[float, ...],
            directions: Sequence[Point] | None = None, grid: float = 1e-6) -> list[Point]:
    """Stencil: centre, and centre + k step d for 1 <= |k| <= half_width, each direction d.

    ``directions`` default to the axes e_d. Steps are absolute in scale units (the nominal scale
    is 1, so 0.01 is a 1 % step); points are rounded to multiples of ``grid``, and points outside
    [low, high] on any axis are dropped.
    """
    low, high = scale_range
    if directions is None:
        directions = [tuple(float(i == d) for i in range(len(centre))) for d in range(len(centre))]
    points = [_key(centre)]
    for direction in directions:
        for k in range(-half_width, half_width + 1):
            if k:
                points.append(_key(round((c + k * step * u) / grid) * grid for c, u in zip(centre, direction)))
    return [p for p in points if all(low <= x <= high for x in p)]


def _load_log(path: Path, n_dims: int) -> dict[Point, float]:
    if not path.is_file():
        return {}
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ResultsError(f"search log {path} is corrupt ({err}); delete it to restart the "
                           "search (cached SPICE runs are reused)") from None
    columns = [f"x{i}" for i in range(n_dims)]
    if any(c not in frame.columns for c in [*columns, "rmse_t_spike_ns"]):
        raise ResultsError(f"search log {path} does not match a {n_dims}-D search; delete it")
    return {_key(row[columns]): float(row["rmse_t_spike_ns"]) for _, row in frame.iterrows()}


def _append_log(path: Path, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows)
    frame.to_csv(path, mode="a", header=not path.is_file(), index=False)


def coarse_to_fine(
    evaluate: Callable[[list[Point]], list[float]],
    n_dims: int,
    config: SearchConfig,
    log_path: Path,
    start: Point | None = None,
) -> tuple[Point, pd.DataFrame]:
    """Minimize ``evaluate`` (RMSE in ns, inf for a candidate that cannot be mapped) over scales.

    **Arguments:** ``evaluate`` takes a list of candidate points and returns their RMSEs (it should
    run them in parallel); ``n_dims`` 1 (global scale) or 2 (scale_plus, scale_minus);
    ``log_path`` the resumable CSV log; ``start`` the first centre (default all ones). In 2-D the
    first ``config.ray_levels`` levels walk along the ray through ``start`` first (both scales
    times one factor 1 + k step; points on the final resolution's grid), then along the axes.
    **Returns:** (best point, table of every candidate with columns x0.., level, rmse_t_spike_ns).
    """
    known = _load_log(log_path, n_dims)
    level_of: dict[Point, int] = {}
    centre = _key(start or (1.0,) * n_dims)
    ray = [centre]
    half = config.half_width
    for level, step in enumerate(config.steps):
        walks = [ray, None] if n_dims > 1 and level < config.ray_levels else [None]
        for directions in walks:
            for _ in range(config.max_recentre + 1):
                grid = stencil(centre, step, half, config.scale_range, directions, config.steps[-1])
                new = [p for p in grid if p not in known]
                if new:
                    values = evaluate(new)
                    known.update(zip(new, values))
                    _append_log(log_path, [{**{f"x{i}": x for i, x in enumerate(p)}, "level": level,
                                            "rmse_t_spike_ns": v} for p, v in zip(new, values)])
                for p in grid:
                    level_of.setdefault(p, level)
                best = min(grid, key=lambda p: (known[p], p))
                inner = stencil(centre, step, half - 1, config.scale_range, directions, config.steps[-1])
                centre = best
                if best in inner or math.isinf(known[best]):
                    break
    table = pd.DataFrame([{**{f"x{i}": x for i, x in enumerate(p)}, "level": level_of.get(p, -1),
                           "rmse_t_spike_ns": v} for p, v in known.items()])
    return centre, table
