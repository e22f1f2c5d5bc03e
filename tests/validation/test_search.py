"""Coarse-to-fine scale search on analytic bowls (no SPICE)."""

import numpy as np
import pytest

from imcpnn.errors import ConfigError, ResultsError
from imcpnn.validation import SearchConfig
from imcpnn.validation._search import coarse_to_fine, stencil


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
    ({"n_samples": -1}, "n_samples"), ({"n_samples": 2.5}, "n_samples")])
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
