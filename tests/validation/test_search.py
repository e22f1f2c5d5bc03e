"""Scale searches (Gauss-Newton and quadratic trust regions, coarse-to-fine stencil) on analytic test
surfaces (no SPICE)."""

import numpy as np
import pandas as pd
import pytest

from imcpnn.errors import ConfigError, ResultsError
from imcpnn.validation import SearchConfig
import math

from imcpnn.validation._search import (coarse_to_fine, gauss_newton_search, quadratic_search, search,
                                      stencil)


class Bowl:
    """RMSE-like bowl sqrt(1 + 100 |x - x*|^2) with a call counter (counts simulated candidates)."""

    def __init__(self, minimum):
        self.minimum = np.asarray(minimum)
        self.calls = 0
        self.batches = 0

    def __call__(self, points):
        self.batches += 1
        self.calls += len(points)
        return [float(np.sqrt(1 + 100 * np.sum((np.asarray(p) - self.minimum) ** 2))) for p in points]


def test_1d_search_reaches_one_percent_with_few_runs(tmp_path):
    bowl = Bowl([1.234])
    best, table = coarse_to_fine(bowl, 1, SearchConfig(), tmp_path / "log.csv")
    assert abs(best[0] - 1.234) <= 0.005 + 1e-9  # 1 % grid: nearest point within half a step
    assert bowl.calls <= 20  # a dense 1 % grid over [0.2, 5] would be 481 runs
    assert len(table) == bowl.calls


def test_2d_search_finds_separate_plus_minus_scales(tmp_path):
    bowl = Bowl([0.83, 1.17])
    best, _ = coarse_to_fine(bowl, 2, SearchConfig(), tmp_path / "log.csv")
    assert np.allclose(best, [0.83, 1.17], atol=0.005 + 1e-9)
    assert bowl.calls <= 40


def test_resumed_search_repeats_no_candidate(tmp_path):
    log = tmp_path / "log.csv"
    first = Bowl([0.9])
    best1, _ = coarse_to_fine(first, 1, SearchConfig(), log)
    again = Bowl([0.9])
    best2, table = coarse_to_fine(again, 1, SearchConfig(), log)
    assert again.calls == 0 and best1 == best2 and len(table) == first.calls


def test_stencil_respects_range():
    points = stencil((0.25,), 0.1, 2, (0.2, 5.0))
    assert sorted(points) == [(0.25,), (0.35,), (0.45,)]


def test_2d_stencil_is_an_axis_cross():
    points = stencil((1.0, 1.0), 0.1, 1, (0.2, 5.0))
    assert sorted(points) == [(0.9, 1.0), (1.0, 0.9), (1.0, 1.0), (1.0, 1.1), (1.1, 1.0)]


def test_corrupt_log_is_named(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("a,b\n1,2\n")
    with pytest.raises(ResultsError, match="does not match a 1-D search"):
        coarse_to_fine(Bowl([1.0]), 1, SearchConfig(), log)


def test_empty_log_is_named(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("")
    with pytest.raises(ResultsError, match="is corrupt"):
        coarse_to_fine(Bowl([1.0]), 1, SearchConfig(), log)


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": (0.01, 0.1)}, "steps"), ({"half_width": 0}, "half_width"), ({"half_width": 11}, "half_width"),
    ({"max_recentre": -1}, "max_recentre"), ({"scale_range": (1.2, 5.0)}, "scale_range"),
    ({"ray_levels": 4}, "ray_levels"), ({"ray_levels": -1}, "ray_levels"),
    ({"n_samples": -1}, "n_samples"), ({"n_samples": 2.5}, "n_samples"),
    ({"method": "grid"}, "method"), ({"tol_ns": -0.1}, "tol_ns"), ({"max_candidates": 2}, "max_candidates")])
def test_search_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SearchConfig(**kwargs)


def test_2d_search_walks_the_ray_then_refines_apart(tmp_path):
    # Optimum 20 % beyond the start on both scales, then a little apart: the demo's situation.
    start = (1.38, 1.21)
    minimum = [1.38 * 1.24, 1.21 * 1.19]
    ray, axes = Bowl(minimum), Bowl(minimum)
    best_ray, table = coarse_to_fine(ray, 2, SearchConfig(), tmp_path / "ray.csv", start=start)
    best_axes, _ = coarse_to_fine(axes, 2, SearchConfig(ray_levels=0), tmp_path / "axes.csv", start=start)
    assert np.allclose(best_ray, minimum, atol=0.005 + 1e-9)
    opening = table.iloc[:3]  # the first stencil: both scales times 0.9, 1, 1.1
    assert np.allclose(opening["x1"] / opening["x0"], 1.21 / 1.38, atol=0.01)
    assert ray.calls < axes.calls


def test_ray_stencil_scales_both_axes_on_the_final_grid():
    points = stencil((1.38, 1.21), 0.1, 1, (0.2, 5.0), directions=[(1.38, 1.21)], grid=0.01)
    assert points == [(1.38, 1.21), (1.24, 1.09), (1.52, 1.33)]


class Surface:
    """An RMSE-like test surface f(x) with a call counter (each point is one simulated candidate)."""

    def __init__(self, f):
        self.f = f
        self.calls = 0

    def __call__(self, points):
        self.calls += len(points)
        return [float(self.f(np.asarray(p))) for p in points]


def hyperbola(minimum, slopes, floor, cross=0.0):
    """sqrt(floor^2 + |A (x - x*)|^2): what a spike-time RMSE looks like against a current scale
    (each error linear in the scale plus a part no scale removes); ``cross`` couples the axes."""
    minimum, slopes = np.asarray(minimum, float), np.asarray(slopes, float)

    def f(x):
        d = slopes * (x - minimum)
        return math.sqrt(floor ** 2 + float(d @ d) + (2 * cross * d[0] * d[1] if len(d) == 2 else 0.0))
    return f


def grid_minimum(f, n_dims, lo=0.2, hi=5.0, res=0.01, around=None, span=0.6):
    """The exhaustive answer: the lowest value of ``f`` on the resolution grid near ``around``."""
    axes = [np.round(np.arange(max(lo, c - span), min(hi, c + span) + res / 2, res), 6) for c in around]
    points = np.array(np.meshgrid(*axes, indexing="ij")).reshape(n_dims, -1).T
    return min(f(p) for p in points)


# The goal these check (issue: speed): the quadratic search finds the grid minimum (within the
# resolution, within tol_ns of RMSE) with a bounded number of candidates, fewer than the stencil's.
SURFACES = {
    # the demo's bottom-up landscape: a sharp 1-D bottom just below 1 (RMSE 1.5 ns, 150 ns per unit)
    "1-D bowl": (1, hyperbola([0.9913], [150.0], 1.49), 8),
    # an optimum 60 % away from the start, beyond the stencil search's recentring budget
    "1-D far": (1, hyperbola([1.63], [40.0], 2.0), 10),
    # the demo's top-down landscape: optimum (1.35, 1.19) from (1, 1), axes coupled
    "2-D bowl": (2, hyperbola([1.352, 1.187], [60.0, 40.0], 23.8, cross=0.5), 16),
}


@pytest.mark.parametrize("name", list(SURFACES))
def test_quadratic_search_finds_the_grid_minimum_in_few_candidates(tmp_path, name):
    n_dims, f, budget = SURFACES[name]
    fast, reference = Surface(f), Surface(f)
    best, table = quadratic_search(fast, n_dims, SearchConfig(), tmp_path / "q.csv")
    _, stencil_table = coarse_to_fine(reference, n_dims, SearchConfig(), tmp_path / "s.csv")
    exhaustive = grid_minimum(f, n_dims, around=best)
    assert f(np.asarray(best)) <= exhaustive + SearchConfig().tol_ns
    assert fast.calls <= budget and fast.calls < reference.calls
    assert len(table) == fast.calls and table["rmse_t_spike_ns"].min() == pytest.approx(f(np.asarray(best)))


def test_quadratic_search_in_a_flat_valley_stops_on_the_valley_floor(tmp_path):
    """Every point of the line x0 - x1 = 0.1 is optimal: the search must reach the floor and stop,
    not wander along it (the model sees no gain there)."""
    f = lambda x: math.sqrt(1.0 + (100 * (x[0] - x[1] - 0.1)) ** 2)  # noqa: E731
    surface = Surface(f)
    best, _ = quadratic_search(surface, 2, SearchConfig(), tmp_path / "q.csv")
    assert f(np.asarray(best)) <= 1.0 + SearchConfig().tol_ns
    assert surface.calls <= 20


def test_quadratic_search_on_a_noisy_surface_ends_within_the_noise(tmp_path):
    """SPICE landscapes are not smooth (a neuron that turns silent moves the RMSE by a step): with
    +-0.3 ns of deterministic ripple the search still ends within ripple + tolerance of the floor."""
    smooth = hyperbola([1.352, 1.187], [60.0, 40.0], 23.8, cross=0.5)
    ripple = lambda x: 0.3 * math.sin(917 * x[0]) * math.cos(613 * x[1])  # noqa: E731
    surface = Surface(lambda x: smooth(x) + ripple(x))
    best, _ = quadratic_search(surface, 2, SearchConfig(), tmp_path / "q.csv")
    assert smooth(np.asarray(best)) <= 23.8 + 2 * 0.3 + SearchConfig().tol_ns
    assert surface.calls <= SearchConfig().max_candidates


def test_quadratic_search_avoids_unmappable_candidates(tmp_path):
    """Candidates that cannot be mapped (inf: a current outside the device tables) are skipped by
    the model; the optimum next to that region is still found."""
    smooth = hyperbola([1.15], [80.0], 1.0)
    surface = Surface(lambda x: math.inf if x[0] > 1.18 else smooth(x))
    best, _ = quadratic_search(surface, 1, SearchConfig(), tmp_path / "q.csv")
    assert best == pytest.approx((1.15,))


def test_quadratic_search_resumes_without_repeating_a_candidate(tmp_path):
    f = SURFACES["2-D bowl"][1]
    first, again = Surface(f), Surface(f)
    best1, _ = quadratic_search(first, 2, SearchConfig(), tmp_path / "q.csv")
    best2, table = quadratic_search(again, 2, SearchConfig(), tmp_path / "q.csv")
    assert again.calls == 0 and best1 == best2 and len(table) == first.calls


def test_quadratic_search_respects_its_candidate_budget(tmp_path):
    surface = Surface(hyperbola([3.7, 0.4], [60.0, 40.0], 1.0))
    quadratic_search(surface, 2, SearchConfig(max_candidates=9), tmp_path / "q.csv")
    assert surface.calls <= 9 + 4  # the last step may add one point's grid neighbours


def test_search_dispatches_on_the_method(tmp_path):
    f = SURFACES["1-D bowl"][1]
    by_name = {m: Surface(f) for m in ("quadratic", "stencil")}
    for method, surface in by_name.items():
        search(surface, 1, SearchConfig(method=method), tmp_path / f"{method}.csv")
    assert by_name["quadratic"].calls < by_name["stencil"].calls
    residuals = Residuals([0.9913], [150.0], 1.49)
    best, _ = search(residuals, 1, SearchConfig(), tmp_path / "gn.csv")  # the default method
    assert best == pytest.approx((0.99,)) and residuals.calls < by_name["quadratic"].calls


# ----------------------------------------------------------------------- Gauss-Newton search
class Residuals:
    """Spike-time errors r(x) = f + A (x - x*) + c (A (x - x*))^2 of m spikes (ns), with a call
    counter: what the SPICE candidates return, each error close to linear in the scales, f the
    part no scale removes (orthogonal to A's columns, so x* is the exact least-squares optimum when
    c = 0), c a curvature (spike time ~ 1 / current is not linear)."""

    def __init__(self, minimum, slopes, floor, m=20, curvature=0.0, seed=0, unmappable=None):
        rng = np.random.default_rng(seed)
        self.minimum = np.asarray(minimum, float)
        self.a = rng.normal(size=(m, len(minimum))) * np.asarray(slopes, float)
        f = rng.normal(size=m)
        q, _ = np.linalg.qr(self.a)
        f -= q @ (q.T @ f)
        self.f = f * floor / np.sqrt(np.mean(f ** 2))
        self.curvature, self.unmappable, self.calls = curvature, unmappable, 0

    def r(self, x) -> np.ndarray:
        lin = self.a @ (np.asarray(x, float) - self.minimum)
        return self.f + lin + self.curvature * lin ** 2

    def rmse(self, x) -> float:
        return float(np.sqrt(np.mean(self.r(x) ** 2)))

    def __call__(self, points):
        self.calls += len(points)
        return [math.inf if self.unmappable and self.unmappable(p) else self.r(p) for p in points]


# name: (minimum, slopes, floor, curvature, candidate budget); slopes and floors as in SURFACES.
# The budgets are the counts measured with the grounding skipped where the model predicted its
# last step within tol_ns (3, 6, 5, 9; with the grounding always: 4, 8, 9, 11), plus one.
RESIDUAL_CASES = {
    "1-D bowl": ([0.9913], [150.0], 1.49, 0.0, 4),
    "1-D far, curved": ([1.63], [40.0], 2.0, 0.01, 7),
    "2-D bowl": ([1.352, 1.187], [60.0, 40.0], 23.8, 0.0, 6),
    "2-D curved": ([1.352, 1.187], [60.0, 40.0], 23.8, 0.02, 10),
}


@pytest.mark.parametrize("name", list(RESIDUAL_CASES))
def test_gauss_newton_search_finds_the_grid_minimum_in_fewer_candidates(tmp_path, name):
    """The goal (issue: speed): the grid minimum (within tol_ns of RMSE) in fewer candidates than
    the quadratic search on the same surface, because every candidate gives m errors, not one RMSE."""
    minimum, slopes, floor, curvature, budget = RESIDUAL_CASES[name]
    fast, slow = (Residuals(minimum, slopes, floor, curvature=curvature) for _ in range(2))
    n_dims = len(minimum)
    best, table = gauss_newton_search(fast, n_dims, SearchConfig(), tmp_path / "gn.csv")
    quadratic_search(lambda pts: [slow.rmse(p) for p in pts] if slow(pts) else [], n_dims,
                     SearchConfig(), tmp_path / "q.csv")
    exhaustive = grid_minimum(fast.rmse, n_dims, around=best)
    assert fast.rmse(best) <= exhaustive + SearchConfig().tol_ns
    assert fast.calls <= budget and fast.calls < slow.calls
    assert len(table) == fast.calls and table["rmse_t_spike_ns"].min() == pytest.approx(fast.rmse(best))


def test_gauss_newton_search_in_a_flat_valley_stops_on_the_valley_floor(tmp_path):
    """Every point of the line x0 - x1 = 0.1 is optimal (one error depends on x0 - x1 only)."""
    class Valley(Residuals):
        def r(self, x):
            return np.array([100 * (x[0] - x[1] - 0.1), 1.0])

    valley = Valley([1.0, 1.0], [1.0, 1.0], 1.0)
    best, _ = gauss_newton_search(valley, 2, SearchConfig(), tmp_path / "gn.csv")
    assert valley.rmse(best) <= math.sqrt(0.5) + SearchConfig().tol_ns
    assert valley.calls <= 12


def test_gauss_newton_search_on_noisy_errors_ends_within_the_noise(tmp_path):
    """Every error with +-0.3 ns of deterministic ripple (SPICE's step control, a neuron turning
    silent): the search still ends within ripple + tolerance of the smooth floor."""
    class Noisy(Residuals):
        def r(self, x):
            ripple = 0.3 * np.sin(917 * x[0] + np.arange(len(self.f))) * np.cos(613 * x[1])
            return super().r(x) + ripple

    noisy = Noisy([1.352, 1.187], [60.0, 40.0], 23.8)
    best, _ = gauss_newton_search(noisy, 2, SearchConfig(), tmp_path / "gn.csv")
    assert Residuals([1.352, 1.187], [60.0, 40.0], 23.8).rmse(best) <= 23.8 + 2 * 0.3 + SearchConfig().tol_ns
    assert noisy.calls <= SearchConfig().max_candidates


def test_gauss_newton_search_avoids_unmappable_candidates(tmp_path):
    residuals = Residuals([1.15], [80.0], 1.0, unmappable=lambda p: p[0] > 1.18)
    best, _ = gauss_newton_search(residuals, 1, SearchConfig(), tmp_path / "gn.csv")
    assert best == pytest.approx((1.15,))


def test_gauss_newton_search_resumes_from_its_log_with_the_residuals(tmp_path):
    """The log keeps every candidate's errors and a resumed search replays it: a finished search
    simulates nothing again, and one stopped early walks on exactly as the search in one go."""
    case = RESIDUAL_CASES["2-D curved"][:4]
    whole, first, rest = (Residuals(*case[:3], curvature=case[3]) for _ in range(3))
    best_whole, _ = gauss_newton_search(whole, 2, SearchConfig(), tmp_path / "whole.csv")
    gauss_newton_search(first, 2, SearchConfig(max_candidates=6), tmp_path / "parts.csv")
    best_parts, table = gauss_newton_search(rest, 2, SearchConfig(), tmp_path / "parts.csv")
    assert best_parts == best_whole and first.calls + rest.calls == len(table) == whole.calls
    again = Residuals(*case[:3], curvature=case[3])
    assert gauss_newton_search(again, 2, SearchConfig(), tmp_path / "parts.csv")[0] == best_whole
    assert again.calls == 0


# ------------------------------------------------------------ model-guided Gauss-Newton search
def model_of(residuals: Residuals, slope_error: float = 0.0, curvature=None, seed: int = 1):
    """What a pipeline's model gives the search: the errors it predicts at x, up to a constant
    (here r - f: the model does not know the circuit's offsets f), every slope off by a random
    factor 1 + slope_error N(0, 1) per spike and scale, and its own ``curvature`` (default the
    circuit's)."""
    rng = np.random.default_rng(seed)
    factor = 1 + slope_error * rng.normal(size=residuals.a.shape)
    c = residuals.curvature if curvature is None else curvature

    def errors(x):
        lin = (residuals.a * factor) @ (np.asarray(x, float) - residuals.minimum)
        return lin + c * lin ** 2
    return errors


# name: candidates the model-guided search needed with an exact model and with slopes 30 % off
# (each plus one is the test's budget); the unguided search's counts are in RESIDUAL_CASES.
GUIDED_COUNTS = {"1-D bowl": (2, 2), "1-D far, curved": (6, 6), "2-D bowl": (6, 6), "2-D curved": (7, 6)}


@pytest.mark.parametrize("name", list(RESIDUAL_CASES))
@pytest.mark.parametrize("slope_error", [0.0, 0.3])
def test_a_model_guided_search_finds_the_grid_minimum(tmp_path, name, slope_error):
    """The goal (issue: speed): with the model's prediction of how the errors move, the search
    starts from one candidate instead of n + 1 and, at a minimum the model predicts, checks one
    grid neighbour per axis instead of two; it still ends within tol_ns of the exhaustive grid
    minimum when the model's slopes are 30 % off."""
    minimum, slopes, floor, curvature, _ = RESIDUAL_CASES[name]
    residuals = Residuals(minimum, slopes, floor, curvature=curvature)
    n_dims = len(minimum)
    best, table = gauss_newton_search(residuals, n_dims, SearchConfig(), tmp_path / "gn.csv",
                                      model_errors=model_of(residuals, slope_error))
    assert residuals.rmse(best) <= grid_minimum(residuals.rmse, n_dims, around=best) + SearchConfig().tol_ns
    assert residuals.calls <= GUIDED_COUNTS[name][slope_error > 0] + 1 and len(table) == residuals.calls


def test_a_model_guided_search_at_the_minimum_needs_two_candidates(tmp_path):
    """The demo's bottom-up and trace-fitted case: the start is the grid minimum. The start and
    the one neighbour the model predicts lowest, whose RMSE it predicted within tol_ns, settle it
    (the unguided search simulates the start, a probe 10 % away and both neighbours)."""
    guided, plain = (Residuals([1.0], [300.0], 0.5, curvature=0.002) for _ in range(2))
    best, _ = gauss_newton_search(guided, 1, SearchConfig(), tmp_path / "g.csv",
                                  model_errors=model_of(guided, 0.05))
    plain_best, _ = gauss_newton_search(plain, 1, SearchConfig(), tmp_path / "p.csv")
    assert best == plain_best == pytest.approx((1.0,))
    assert guided.calls == 2 and plain.calls == 4


def test_a_wrong_model_costs_candidates_not_the_minimum(tmp_path):
    """A model whose slope has the wrong sign in a 1-D bowl: its first step goes the wrong way and
    its predictions do not confirm, so the SPICE candidates take over and ground the minimum."""
    residuals = Residuals([1.12], [150.0], 1.49)
    best, _ = gauss_newton_search(residuals, 1, SearchConfig(), tmp_path / "g.csv",
                                  model_errors=lambda x: -model_of(residuals)(x))
    assert best == pytest.approx((1.12,))
    assert residuals.calls <= RESIDUAL_CASES["1-D bowl"][4] + 4


def test_a_model_guided_search_in_a_flat_valley_and_on_noise(tmp_path):
    """The flat valley and the noisy surface of the unguided tests, guided by a model that knows
    the valley's slope but not the ripple: the same answers within the same bounds."""
    class Valley(Residuals):
        def r(self, x):
            return np.array([100 * (x[0] - x[1] - 0.1), 1.0])

    valley = Valley([1.0, 1.0], [1.0, 1.0], 1.0)
    best, _ = gauss_newton_search(valley, 2, SearchConfig(), tmp_path / "v.csv",
                                  model_errors=lambda x: np.array([100 * (x[0] - x[1]), 0.0]))
    assert valley.rmse(best) <= math.sqrt(0.5) + SearchConfig().tol_ns and valley.calls <= 12

    class Noisy(Residuals):
        def r(self, x):
            ripple = 0.3 * np.sin(917 * x[0] + np.arange(len(self.f))) * np.cos(613 * x[1])
            return super().r(x) + ripple

    noisy = Noisy([1.352, 1.187], [60.0, 40.0], 23.8)
    best, _ = gauss_newton_search(noisy, 2, SearchConfig(), tmp_path / "n.csv", model_errors=model_of(noisy, 0.3))
    assert Residuals([1.352, 1.187], [60.0, 40.0], 23.8).rmse(best) <= 23.8 + 2 * 0.3 + SearchConfig().tol_ns
    assert noisy.calls <= 20


def test_a_model_that_cannot_say_falls_back_to_the_plain_search(tmp_path):
    """Model errors of None (or of another length than the candidates') are no guide: after the
    start alone, the search polls the plain design and finds the same minimum."""
    for bad in (lambda x: None, lambda x: np.zeros(3)):
        residuals = Residuals([1.352, 1.187], [60.0, 40.0], 23.8)
        best, _ = gauss_newton_search(residuals, 2, SearchConfig(), tmp_path / f"{id(bad)}.csv", model_errors=bad)
        plain = Residuals([1.352, 1.187], [60.0, 40.0], 23.8)
        assert best == gauss_newton_search(plain, 2, SearchConfig(), tmp_path / f"p{id(bad)}.csv")[0]
        assert residuals.calls <= plain.calls + 1


def test_a_model_guided_search_resumes_from_its_log(tmp_path):
    case = RESIDUAL_CASES["2-D curved"][:4]
    whole, first, rest = (Residuals(*case[:3], curvature=case[3]) for _ in range(3))
    guide = model_of(whole, 0.3)
    best_whole, _ = gauss_newton_search(whole, 2, SearchConfig(), tmp_path / "whole.csv", model_errors=guide)
    gauss_newton_search(first, 2, SearchConfig(max_candidates=3), tmp_path / "parts.csv", model_errors=guide)
    best_parts, table = gauss_newton_search(rest, 2, SearchConfig(), tmp_path / "parts.csv", model_errors=guide)
    assert best_parts == best_whole and first.calls + rest.calls == len(table) == whole.calls


def test_a_config_of_an_earlier_version_keeps_its_stencil_search():
    """config.json files written before the quadratic search hold no search method: they ran the
    stencil search, and a resumed run or a redrawn report must say so, not the new default."""
    from imcpnn.config import from_dict, to_dict
    from imcpnn.validation import ValidationConfig
    from imcpnn.validation._config import upgrade_config_data

    old = to_dict(ValidationConfig())
    del old["search"]["method"]
    assert from_dict(ValidationConfig, upgrade_config_data(old)).search.method == "stencil"
    assert from_dict(ValidationConfig, upgrade_config_data(to_dict(ValidationConfig()))).search.method == "gauss-newton"
    named = to_dict(ValidationConfig())
    named["search"]["method"] = "quadratic"  # a config of the quadratic search's time names it
    assert from_dict(ValidationConfig, upgrade_config_data(named)).search.method == "quadratic"
    # before the model guide: a resumed Gauss-Newton search walks on unguided, as it began
    unguided = to_dict(ValidationConfig())
    del unguided["search"]["model_guide"]
    assert from_dict(ValidationConfig, upgrade_config_data(unguided)).search.model_guide is False
    assert from_dict(ValidationConfig, upgrade_config_data(to_dict(ValidationConfig()))).search.model_guide is True


def test_quadratic_search_stops_in_a_shallow_tilted_valley(tmp_path):
    """A valley whose floor keeps descending by 0.01 ns per grid step towards the range's edge:
    walking on would change the reported RMSE by less than tol_ns per step for hundreds of
    candidates, so the search stops after SMALL_GAINS_TO_STOP such gains, on the valley floor."""
    from imcpnn.validation._search import SMALL_GAINS_TO_STOP

    floor = lambda x: 5.0 + 1.0 * (x[0] + x[1])  # noqa: E731  (lower towards small scales)
    f = lambda x: math.sqrt(floor(x) ** 2 + (200 * (x[0] - x[1] - 0.1)) ** 2)  # noqa: E731
    surface = Surface(f)
    best, table = quadratic_search(surface, 2, SearchConfig(), tmp_path / "q.csv")
    assert surface.calls <= 30 and SMALL_GAINS_TO_STOP == 2
    assert abs(best[0] - best[1] - 0.1) <= 0.02  # on the floor, not somewhere on the wall
    assert f(np.asarray(best)) < f(np.array([1.0, 1.0]))


def test_a_log_of_an_earlier_version_gets_rows_in_its_own_columns(tmp_path):
    """A log written before the residuals column: its candidates are simulated again (the model
    needs their errors) and appended in its columns (the residuals dropped, the RMSEs kept), so
    the file stays one table."""
    log = tmp_path / "old.csv"
    log.write_text("x0,level,rmse_t_spike_ns\n1.0,0,2.3\n")
    residuals = Residuals([0.9913], [150.0], 1.49)
    best, _ = gauss_newton_search(residuals, 1, SearchConfig(), log)
    frame = pd.read_csv(log)
    assert list(frame.columns) == ["x0", "level", "rmse_t_spike_ns"] and len(frame) == residuals.calls + 1
    assert best == pytest.approx((0.99,))
