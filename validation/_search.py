"""Searches of current scales against SPICE, economical and resumable.

Three methods (``SearchConfig.method``). The default, :func:`gauss_newton_search`, is a
trust-region search on a linear model of every output spike-time error (a candidate's SPICE run
gives all of them, not just their RMSE), whose slope the pipeline's own model can give (the
model-guided search: SPICE then corrects what the model gets wrong), so it needs fewer candidates than
:func:`quadratic_search`, the same trust region on a quadratic model of the mean squared error,
which itself needs about half the candidates of the stencil search below for the same grid
minimum. The stencil search, :func:`coarse_to_fine`, is the reference they are checked against:

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

Every evaluated candidate (its RMSE, and its errors where the search got them) is appended to a
CSV log as soon as its batch finishes; a resumed search replays the log and simulates only what is
missing (the SPICE layer's own cache is a second line).
"""

from __future__ import annotations

import json
import math
from itertools import product
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
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


def _load_log(path: Path, n_dims: int, residuals: dict | None = None) -> dict[Point, float]:
    """{point: RMSE} of a search log; its residual vectors (column ``residuals_ns``, JSON lists,
    written by a Gauss-Newton search) go into ``residuals`` when given."""
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
    known = {}
    for _, row in frame.iterrows():
        point = _key(row[columns])
        known[point] = float(row["rmse_t_spike_ns"])
        text = row.get("residuals_ns")
        if residuals is not None and isinstance(text, str) and text:
            try:
                residuals[point] = np.asarray(json.loads(text), dtype=float)
            except ValueError:
                raise ResultsError(f"search log {path} is corrupt (residuals of {point}); delete it "
                                   "to restart the search (cached SPICE runs are reused)") from None
    return known


def _append_log(path: Path, rows: list[dict]) -> None:
    """Append candidate rows; a new log has a ``residuals_ns`` column (empty for an RMSE-only
    candidate), a log of an earlier version keeps its own columns."""
    frame = pd.DataFrame(rows)
    if path.is_file():
        frame.reindex(columns=pd.read_csv(path, nrows=0).columns).to_csv(path, mode="a", header=False, index=False)
    else:
        frame.reindex(columns=[*frame.columns.drop("residuals_ns", errors="ignore"), "residuals_ns"]).to_csv(
            path, index=False)


def _row(point: Point, level: int, rmse_ns: float) -> dict:
    """One candidate as a log / table row: x0.., level, rmse_t_spike_ns."""
    return {**{f"x{i}": x for i, x in enumerate(point)}, "level": level, "rmse_t_spike_ns": rmse_ns}


def _outcome(value) -> tuple[float, np.ndarray | None]:
    """(RMSE, residual vector or None) of one value ``evaluate`` returned: an RMSE (inf: not
    mappable), or the vector of spike-time errors r (ns) whose RMSE is sqrt(mean(r^2))."""
    if np.ndim(value) == 0:
        return float(value), None
    r = np.asarray(value, dtype=float).ravel()
    ok = r.size > 0 and bool(np.all(np.isfinite(r)))
    return (float(np.sqrt(np.mean(r ** 2))) if ok else math.inf), (r if ok else None)


def _simulate(evaluate: Callable[[list[Point]], list], points: list[Point], level: int,
              known: dict[Point, float], level_of: dict[Point, int], log_path: Path,
              residuals: dict[Point, np.ndarray] | None = None) -> None:
    """Evaluate the ``points`` not in ``known`` in one call (run in parallel), add them to
    ``known`` (and their residual vectors to ``residuals``) and append them to the log; every
    point of ``points`` keeps its first level."""
    new = [p for p in dict.fromkeys(points) if p not in known]
    if new:
        rows = []
        for p, value in zip(new, evaluate(new)):
            rmse, r = _outcome(value)
            known[p] = rmse
            row = _row(p, level, rmse)
            if r is not None:
                if residuals is not None:
                    residuals[p] = r
                row["residuals_ns"] = json.dumps([round(float(x), 6) for x in r])
            rows.append(row)
        _append_log(log_path, rows)
    for p in points:
        level_of.setdefault(p, level)


def _table(known: dict[Point, float], level_of: dict[Point, int]) -> pd.DataFrame:
    """Every candidate (those replayed from a log at level -1 unless simulated again)."""
    return pd.DataFrame([_row(p, level_of.get(p, -1), v) for p, v in known.items()])


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
                _simulate(evaluate, grid, level, known, level_of, log_path)
                best = min(grid, key=lambda p: (known[p], p))
                inner = stencil(centre, step, half - 1, config.scale_range, directions, config.steps[-1])
                centre = best
                if best in inner or math.isinf(known[best]):
                    break
    return centre, _table(known, level_of)


def _fit_quadratic(points: np.ndarray, values: np.ndarray, centre: np.ndarray, scale: float,
                   weights: np.ndarray) -> np.ndarray | None:
    """Weighted least-squares quadratic in u = (x - centre) / scale: coefficients of
    [1, u_i, u_i u_j (i <= j)] (1-D: 3, 2-D: 6), or None when the points do not determine them."""
    u = (points - centre) / scale
    design = _quadratic_features(u)
    if len(u) < design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]:
        return None
    root_w = np.sqrt(weights)
    coef, *_ = np.linalg.lstsq(design * root_w[:, None], values * root_w, rcond=None)
    return coef


def _quadratic_features(u: np.ndarray) -> np.ndarray:
    """(m, n) points -> (m, 1 + n + n (n + 1) / 2) columns [1, u_i, u_i u_j (i <= j)]."""
    n = u.shape[1]
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    return np.column_stack([np.ones(len(u)), u, *[u[:, i] * u[:, j] for i, j in pairs]])


def quadratic_search(
    evaluate: Callable[[list[Point]], list[float]],
    n_dims: int,
    config: SearchConfig,
    log_path: Path,
    start: Point | None = None,
) -> tuple[Point, pd.DataFrame]:
    """Minimize ``evaluate`` (RMSE in ns, inf where a candidate cannot be mapped) over scales with a
    quadratic model of the mean squared error and a trust region; same arguments and returns as
    :func:`coarse_to_fine` (the table's ``level`` column is the iteration that simulated a point).

    Why a quadratic in MSE = RMSE^2: near the optimum every spike-time error is close to linear in
    the scales, so the MSE is close to a quadratic (the RMSE itself is a hyperbola with a sharp
    bottom that a parabola fits badly). The search:

    1. simulates a design around ``start`` at the first step h = ``config.steps[0]``: centre, centre
       +- h along each axis, and in 2-D the point centre + h (1, 1), so that the six coefficients of a
       2-D quadratic are determined (three in 1-D);
    2. fits the quadratic to the finite candidates nearest the best one (weights
       1 / (1 + (d / radius)^2)) and takes its minimum over the points of the resolution grid
       (``config.steps[-1]``) inside the trust box |x - best| <= radius, radius = h at first;
    3. simulates that point if it is new; the radius doubles (up to 4 h) after a step that improved
       on the box's edge and halves (down to the resolution) after one that did not;
    4. where the model's minimum is a point already simulated, simulates the best point's missing
       grid neighbours (+- resolution along each axis) instead, which grounds the model there;
    5. stops once the best point is a local minimum of the grid (its axis neighbours simulated and
       worse) and the model predicts less than ``config.tol_ns`` of RMSE to gain inside the box
       (the Gauss-Newton search also stops without the neighbours where its model predicted the
       RMSE of the step it last simulated within ``config.tol_ns``: a model that good there says
       what the neighbours would add, less than the tolerance);
       or once :data:`SMALL_GAINS_TO_STOP` improvements in a row each gained less than
       ``config.tol_ns`` (a long shallow valley, where walking on changes the reported RMSE by
       less than the tolerance); or after ``config.max_candidates`` candidates.

    The result is a grid local minimum like the stencil search's, or a point within the tolerance
    of one along the valley it was descending, usually reached in fewer candidates because step 2
    jumps to the model's minimum instead of walking to it. Where the model fits badly (far from
    the optimum, silent neurons switching) it still points downhill and the trust region bounds
    the damage.
    """
    return _trust_region_search(evaluate, n_dims, config, log_path, start, gauss_newton=False)


def gauss_newton_search(
    evaluate: Callable[[list[Point]], list],
    n_dims: int,
    config: SearchConfig,
    log_path: Path,
    start: Point | None = None,
    model_errors: Callable[[Point], np.ndarray | None] | None = None,
) -> tuple[Point, pd.DataFrame]:
    """:func:`quadratic_search` with a Gauss-Newton model of the residuals instead of a quadratic of
    the MSE; ``evaluate`` returns, per candidate, the vector r of its spike-time errors (ns), the
    same spikes in the same order for every candidate (inf where it cannot be mapped).

    Why: a candidate's SPICE run tells much more than its RMSE: every output spike's error. Near
    the optimum each error is close to linear in the scales, r(x) ~ r(b) + J (x - b), so one
    Jacobian J (m spikes x n scales) predicts the whole MSE surface, mean |r(b) + J u|^2 (the
    Gauss-Newton model), where a quadratic of the MSE needs 1 + n + n (n + 1) / 2 candidates (6 in
    2-D) before it predicts anything. J is the weighted least-squares slope of the residual
    vectors of the candidates near the best point b (their differences from r(b) against their
    offsets), so the initial design is only b and b + h along each axis (n + 1 candidates) and
    every new candidate refines J. The trust region, the grid, the grounding of the result on its
    grid neighbours and the stopping rules are the quadratic search's, except that the grounding
    is skipped where the model just predicted a step's RMSE within the tolerance. A candidate of a log
    without residuals (an RMSE-only log) is simulated again (from the SPICE cache, usually).

    ``model_errors(x)``: the same errors as the pipeline's own model predicts them at x, up to a
    constant (its spike times at its own scales minus those at x: the model knows how its spike
    times move with the currents, not the circuit's offsets r(x), which only SPICE gives). With it
    the search is model-guided:

    - the initial design is ``start`` alone (the model stands in for the n probes at b + h);
    - J is the model's slope at b (central differences at the resolution) plus a correction C for
      what the model gets wrong: C is the least-squares solution (minimum-norm, where the
      candidates do not determine it) of C u_k ~ d_k - (r_m(x_k) - r_m(b)) over the candidates
      near b, i.e. SPICE's differences less the model's own (curvature included); a model that
      moves like the circuit gives C = 0 however curved, and one whose slope is off is corrected
      along every direction the candidates cover;
    - where the model's minimum is b itself, it simulates, along each axis in turn, the one grid
      neighbour of b that it predicts lowest, instead of both: a neighbour whose RMSE it
      predicted within the tolerance confirms the model as a step does. The search stops without
      the other neighbours once it predicts no gain, its last prediction was confirmed, and every
      axis has a simulated neighbour of b (so that J is SPICE's along every axis there, not the
      model's guess); otherwise the remaining neighbours ground it as before.

    Model errors of None or of another length (the model cannot say) fall back to the plain
    search's probes.
    """
    return _trust_region_search(evaluate, n_dims, config, log_path, start, gauss_newton=True,
                                model_errors=model_errors)


def _trust_region_search(evaluate, n_dims: int, config: SearchConfig, log_path: Path, start: Point | None,
                         gauss_newton: bool, model_errors=None) -> tuple[Point, pd.DataFrame]:
    """The loop of :func:`quadratic_search` and :func:`gauss_newton_search` (their docstrings)."""
    # A resumed search replays its log: the candidates it asks for are read from the log while
    # they are there, so it walks the same path as the run it resumes and simulates only past it
    # (the model, the trust radius and the stopping rules see what they saw then).
    logged_residuals: dict[Point, np.ndarray] = {}
    logged = _load_log(log_path, n_dims, logged_residuals)
    residuals: dict[Point, np.ndarray] = {}
    known: dict[Point, float] = {}
    level_of: dict[Point, int] = {}
    res, h = config.steps[-1], config.steps[0]
    low, high = config.scale_range
    max_radius = 4 * h

    def on_grid(x) -> Point:
        return _key(min(max(round(float(v) / res) * res, low), high) for v in x)

    def simulate(points: list[Point], iteration: int) -> None:
        for p in points:  # (the Gauss-Newton model needs errors: a log row without them is rerun)
            if p in logged and p not in known and (p in logged_residuals or not gauss_newton
                                                   or not math.isfinite(logged[p])):
                known[p] = logged[p]
                if p in logged_residuals:
                    residuals[p] = logged_residuals[p]
        _simulate(evaluate, points, iteration, known, level_of, log_path, residuals)

    def neighbours(p: Point) -> list[Point]:
        out = []
        for d, sign in product(range(n_dims), (-1, 1)):
            q = list(p)
            q[d] += sign * res
            if low <= q[d] <= high:
                out.append(_key(q))
        return out

    def axes_checked(p: Point) -> set[int]:
        return {_axis(q, p) for q in neighbours(p) if q in residuals}

    def design_around(centre: Point, step: float) -> list[Point]:
        # Gauss-Newton: centre and centre + step along each axis (a Jacobian); quadratic: centre,
        # +- step along each axis and (2-D) one diagonal (a quadratic's coefficients)
        signs = (1,) if gauss_newton else (-1, 1)
        points = [centre]
        for d, sign in product(range(n_dims), signs):
            points.append(on_grid([c + sign * step * (i == d) for i, c in enumerate(centre)]))
        if n_dims == 2 and not gauss_newton:
            points.append(on_grid([c + step for c in centre]))
        return list(dict.fromkeys(points))

    model_cache: dict[Point, np.ndarray | None] = {}

    def model_at(p: Point) -> np.ndarray | None:
        if p not in model_cache:
            value = model_errors(p)
            model_cache[p] = None if value is None else np.asarray(value, dtype=float).ravel()
        return model_cache[p]

    def guided(best: Point) -> bool:
        # whether the model says how the errors move at best (else the plain search's rules)
        return model_errors is not None and best in residuals and all(
            model_at(q) is not None and len(model_at(q)) == len(residuals[best]) for q in _central_points(best, res))

    def jacobian_t(finite: dict[Point, float], best: Point, radius: float) -> np.ndarray | None:
        return _jacobian_t(residuals, finite, best, radius, res, model_at if guided(best) else None)

    first = on_grid(start or (1.0,) * n_dims)
    simulate([first] if model_errors is not None else design_around(first, h), 0)
    radius = h
    small_gains = 0  # consecutive improvements of the best RMSE by less than tol_ns
    best_before = None
    confirmed = False  # Gauss-Newton: the model predicted its last step's RMSE within tol_ns
    for iteration in range(1, config.max_candidates + 1):
        finite = {p: v for p, v in known.items() if math.isfinite(v)}
        if not finite or len(known) >= config.max_candidates:
            break
        best = min(finite, key=lambda p: (finite[p], p))
        if best_before is not None and best != best_before:
            small_gains = small_gains + 1 if finite[best_before] - finite[best] < config.tol_ns else 0
        best_before = best
        if small_gains >= SMALL_GAINS_TO_STOP:
            break
        jac_t = jacobian_t(finite, best, radius) if gauss_newton else None
        step, gain = (_gauss_newton_step(residuals, finite, best, radius, res, (low, high), jac_t)
                      if gauss_newton else _model_step(finite, best, radius, res, (low, high)))
        grounded = all(q in known for q in neighbours(best))
        # model-guided, a confirmation counts once a neighbour along every axis checked the slope
        checked = not guided(best) or len(axes_checked(best)) == n_dims
        if (grounded or confirmed and checked) and gain < config.tol_ns:
            break
        if step is None:  # too few candidates near the best: a local design at the radius
            poll = [q for q in design_around(best, radius) if q not in known]
            if poll:
                simulate(poll, iteration)
            elif radius > res:
                radius = max(radius / 2, res)
            else:
                break
        elif step not in known:
            simulate([step], iteration)
            confirmed = gauss_newton and abs(known[step] - (finite[best] - gain)) < config.tol_ns
            improved = known[step] < finite[best]
            edge = max(abs(a - b) for a, b in zip(step, best)) >= radius - res / 2
            radius = min(2 * radius, max_radius) if improved and edge else (
                radius if improved else max(radius / 2, res))
        elif not grounded:
            missing = [q for q in neighbours(best) if q not in known]
            new_axes = ([q for q in missing if _axis(q, best) not in axes_checked(best)]
                        if guided(best) and jac_t is not None else [])
            if new_axes:  # model-guided: probe the lowest predicted neighbour along an axis not yet checked
                predicted = {q: _predicted_rmse(residuals[best], jac_t, best, q) for q in new_axes}
                q = min(new_axes, key=lambda p: (predicted[p], p))
                simulate([q], iteration)
                confirmed = abs(known[q] - predicted[q]) < config.tol_ns
            else:
                simulate(missing, iteration)
        else:
            break
    known = {**logged, **known}  # log entries off this path (another config's) stay in the table
    finite = {p: v for p, v in known.items() if math.isfinite(v)}
    best = min(finite, key=lambda p: (finite[p], p)) if finite else on_grid(start or (1.0,) * n_dims)
    return best, _table(known, level_of)


#: Consecutive improvements below ``SearchConfig.tol_ns`` after which the quadratic search stops.
SMALL_GAINS_TO_STOP = 2
#: The quadratic model is fitted to candidates within this many trust radii of the best one: far
#: ones (silent neurons, clipped times) follow another law and would bend the model.
LOCAL_RADII = 3


def _model_step(finite: dict[Point, float], best: Point, radius: float, res: float,
                scale_range: tuple[float, float]) -> tuple[Point | None, float]:
    """(the grid point inside the trust box where the quadratic MSE model is lowest, the RMSE (ns)
    the model predicts to gain there over ``best``); (None, inf) when the candidates near
    ``best`` (:data:`LOCAL_RADII`) do not determine a quadratic."""
    points = np.array(list(finite), dtype=float)
    values = np.array([finite[p] for p in finite], dtype=float) ** 2
    centre = np.array(best, dtype=float)
    n = len(best)
    n_coef = 1 + n + n * (n + 1) // 2
    distance = np.linalg.norm(points - centre, axis=1)
    local = np.flatnonzero(np.max(np.abs(points - centre), axis=1) <= LOCAL_RADII * radius + res / 2)
    nearest = local[np.argsort(distance[local], kind="stable")][:2 * n_coef]
    coef = _fit_quadratic(points[nearest], values[nearest], centre, radius,
                          1.0 / (1.0 + (distance[nearest] / radius) ** 2))
    if coef is None:
        return None, math.inf
    grid = _box_grid(centre, radius, res, scale_range)
    predicted = _quadratic_features((grid - centre) / radius) @ coef
    i = int(np.argmin(predicted))
    gain = finite[best] - math.sqrt(max(float(predicted[i]), 0.0))
    return _key(grid[i]), max(gain, 0.0)


def _box_grid(centre: np.ndarray, radius: float, res: float, scale_range: tuple[float, float]) -> np.ndarray:
    """(G, n) points of the resolution grid inside the trust box |x - centre| <= radius and the range."""
    k = int(round(radius / res))
    offsets = np.arange(-k, k + 1) * res
    grid = np.array(list(product(*[c + offsets for c in centre])))
    low, high = scale_range
    return grid[np.all((grid >= low - 1e-12) & (grid <= high + 1e-12), axis=1)]


def _axis(neighbour: Point, centre: Point) -> int:
    """The axis along which the grid neighbour ``neighbour`` of ``centre`` lies."""
    return next(d for d, (a, b) in enumerate(zip(neighbour, centre)) if a != b)


def _central_points(best: Point, res: float) -> list[Point]:
    """``best`` and best +- ``res`` along each axis: where a model's central differences look."""
    out = [best]
    for d, sign in product(range(len(best)), (-1, 1)):
        out.append(_key([b + sign * res * (i == d) for i, b in enumerate(best)]))
    return out


def _jacobian_t(residuals: dict[Point, np.ndarray], finite: dict[Point, float], best: Point, radius: float,
                res: float, model_at: Callable[[Point], np.ndarray] | None = None) -> np.ndarray | None:
    """J^T (n, m): the slope of the residuals at ``best`` from the candidates near it (with residual
    vectors, :data:`LOCAL_RADII`); None when they do not determine it and no model guides it.

    J solves min sum_k w_k |r_k - r(b) - J u_k|^2 over those candidates (u_k = x_k - b,
    w_k = 1 / (1 + (|u_k| / radius)^2)); shapes: U (K, n), D (K, m), J^T = lstsq(U, D) (n, m).
    With ``model_at`` (x -> the model's errors r_m(x), (m,)): J^T = J_m^T + C^T, J_m the model's
    central differences at ``best`` over ``res``, C^T = lstsq(U, D - M) with M_k = r_m(x_k) -
    r_m(b): the minimum-norm correction where U has rank < n (K = 0: J_m itself).
    """
    if best not in residuals:
        return None
    n = len(best)
    centre = np.array(best, dtype=float)
    r0 = residuals[best]
    near = [p for p in residuals if p != best and p in finite and len(residuals[p]) == len(r0)
            and max(abs(a - b) for a, b in zip(p, best)) <= LOCAL_RADII * radius + res / 2
            and (model_at is None or model_at(p) is not None and len(model_at(p)) == len(r0))]
    if model_at is None and len(near) < n:
        return None
    prior_t = None
    if model_at is not None:
        _, *pairs = _central_points(best, res)
        prior_t = np.array([(model_at(pairs[2 * d + 1]) - model_at(pairs[2 * d])) / (2 * res) for d in range(n)])
        if not near:
            return prior_t
    u = np.array(near, dtype=float) - centre
    d = np.array([residuals[p] - r0 for p in near])
    root_w = np.sqrt(1.0 / (1.0 + (np.linalg.norm(u, axis=1) / radius) ** 2))[:, None]
    if prior_t is None:
        if np.linalg.matrix_rank(u) < n:
            return None
        return np.linalg.lstsq(u * root_w, d * root_w, rcond=None)[0]
    expected = np.array([model_at(p) - model_at(best) for p in near])
    return prior_t + np.linalg.lstsq(u * root_w, (d - expected) * root_w, rcond=None)[0]


def _predicted_rmse(r0: np.ndarray, jac_t: np.ndarray, best: Point, point: Point) -> float:
    """RMSE (ns) of the linearized residuals r(b) + J (x - b) at ``point``."""
    u = np.asarray(point, dtype=float) - np.asarray(best, dtype=float)
    return float(np.sqrt(np.mean((r0 + u @ jac_t) ** 2)))


def _gauss_newton_step(residuals: dict[Point, np.ndarray], finite: dict[Point, float], best: Point,
                       radius: float, res: float, scale_range: tuple[float, float],
                       jac_t: np.ndarray | None) -> tuple[Point | None, float]:
    """(the grid point inside the trust box where the linearized residuals r(b) + J (x - b) have
    the lowest mean square, the RMSE (ns) that predicts to gain over ``best``); (None, inf) when
    J (``jac_t``, :func:`_jacobian_t`) is not determined."""
    if jac_t is None:
        return None, math.inf
    centre = np.array(best, dtype=float)
    grid = _box_grid(centre, radius, res, scale_range)
    mse = np.mean((residuals[best][None, :] + (grid - centre) @ jac_t) ** 2, axis=1)
    i = int(np.argmin(mse))
    gain = finite[best] - math.sqrt(float(mse[i]))
    return _key(grid[i]), max(gain, 0.0)


def search(evaluate: Callable[[list[Point]], list[float]], n_dims: int, config: SearchConfig,
           log_path: Path, start: Point | None = None,
           model_errors: Callable[[Point], np.ndarray | None] | None = None) -> tuple[Point, pd.DataFrame]:
    """The search ``config.method`` names (:func:`gauss_newton_search`, :func:`quadratic_search` or
    :func:`coarse_to_fine`); ``model_errors`` guides the Gauss-Newton search (the others do not
    use it)."""
    if config.method == "gauss-newton":
        return gauss_newton_search(evaluate, n_dims, config, log_path, start, model_errors)
    method = {"quadratic": quadratic_search, "stencil": coarse_to_fine}[config.method]
    return method(evaluate, n_dims, config, log_path, start)
