"""The generic config machinery: JSON round trip, strict keys, typed values."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from imcpnn.config import from_dict, load_json, non_default_fields, to_dict, to_json
from imcpnn.errors import ConfigError


@dataclass(frozen=True)
class _Inner:
    scale_range: tuple[float, float] = (0.5, 2.0)
    steps: tuple[int, ...] = (10, 30)


@dataclass(frozen=True)
class _Outer:
    epochs: int = 5
    name: str = "iris"
    inner: _Inner = field(default_factory=_Inner)


def test_round_trip_through_json(tmp_path):
    cfg = _Outer(epochs=7, inner=_Inner(scale_range=(0.8, 1.25), steps=(4,)))
    to_json(cfg, tmp_path / "c.json")
    assert load_json(_Outer, tmp_path / "c.json") == cfg
    assert to_dict(cfg)["inner"]["scale_range"] == [0.8, 1.25]


def test_non_default_fields_are_flat_and_minimal():
    assert non_default_fields(_Outer(epochs=7, inner=_Inner(steps=(4,)))) == {"epochs": 7, "inner.steps": [4]}


@pytest.mark.parametrize(
    "data, match",
    [
        ({"epoch": 3}, "unknown key 'epoch'.*Did you mean 'epochs'"),
        ({"epochs": 2.5}, "expected an integer"),
        ({"inner": {"scale_range": [1.0]}}, "expected 2 values"),
        ({"inner": {"scale_range": ["a", 1.0]}}, "expected a number"),
        ({"inner": 3}, "expected a mapping"),
    ],
)
def test_bad_values_raise_config_error(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(_Outer, data)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_json(_Outer, tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_json(_Outer, tmp_path / "bad.json")
