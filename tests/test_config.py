"""The generic config machinery: JSON round trip, strict keys, typed values."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from imcpnn.config import (from_dict, is_real, load_json, non_default_fields, require, require_positive, to_dict,
                           to_json)
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


@dataclass(frozen=True)
class _Sizes:
    width_m: float = 1e-6
    length_m: float = 1e-6


def test_require_names_owner_field_value_and_what_is_allowed():
    require(_Sizes(), "width_m", 1e-6, True, "anything")  # ok: nothing raised
    with pytest.raises(ConfigError) as info:
        require(_Sizes(), "width_m", -1.0, False, "a size > 0 m")
    assert str(info.value) == "_Sizes.width_m=-1.0 is invalid: allowed a size > 0 m"
    with pytest.raises(ConfigError, match=r"^discharger.scale='x' is invalid: allowed a number$"):
        require("discharger", "scale", "x", False, "a number")  # a name string as owner


@pytest.mark.parametrize("value", [0, -1e-6, float("nan"), float("inf"), True, "1e-6", None])
def test_require_positive_refuses_what_is_not_a_finite_number_above_zero(value):
    with pytest.raises(ConfigError) as info:
        require_positive(_Sizes(length_m=value), "width_m", "length_m", unit="m")
    assert str(info.value) == f"_Sizes.length_m={value!r} is invalid: allowed a finite number > 0 m"
    assert "\n" not in str(info.value)


def test_require_positive_accepts_positive_ints_and_floats():
    require_positive(_Sizes(width_m=2, length_m=0.5e-6), "width_m", "length_m")
    assert [is_real(v) for v in (1, 2.5, -3, True, float("nan"), float("inf"), "1")] == [
        True, True, True, False, False, False, False]
