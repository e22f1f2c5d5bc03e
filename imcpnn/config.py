"""Nested-dataclass configuration: JSON round trip, strict keys, short diffable summaries.

Configs in imcpnn are frozen dataclasses composed of smaller dataclasses (one level per concern),
in the style of aihwkit's RPUConfig. This module holds the generic machinery only; each subpackage
defines its own config classes next to the code that uses them.

- :func:`to_dict` / :func:`from_dict` convert any such dataclass to and from plain JSON data
  (enums by value, tuples as lists). An unknown key raises :class:`ConfigError` naming the key and
  the closest valid one.
- :func:`non_default_fields` lists what differs from the defaults, for report headers.
- :func:`require` and :func:`require_positive` are the one way a config class checks its fields in
  ``__post_init__``: one line naming the owner, the field, the value and what is allowed.

This module is a leaf: standard library only, no toolkit imports.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from imcpnn.errors import ConfigError

T = TypeVar("T")


def to_dict(config: Any) -> Any:
    """Plain JSON-able data of a (nested) dataclass: enums by value, tuples and Paths converted."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, enum.Enum):
        return config.value
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {str(k): to_dict(v) for k, v in config.items()}
    if isinstance(config, Path):
        return str(config)
    return config


def _convert(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: {value!r} fits none of {annotation}: " + "; ".join(errors))
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {annotation.__name__}, got {value!r}")
        return from_dict(annotation, value, _where=where)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            valid = ", ".join(repr(m.value) for m in annotation)
            raise ConfigError(f"{where}: {value!r} is not one of {valid}") from None
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (list, dict) or annotation in (list, dict):
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if annotation is Path:
        return Path(value)
    return value


def from_dict(cls: type[T], data: dict, *, _where: str | None = None) -> T:
    """Build dataclass ``cls`` from plain data; missing keys keep their defaults.

    Raises:
        ConfigError: an unknown key (the message names the closest valid key), or a value whose
            type does not fit the field, or a value the dataclass itself rejects.
    """
    where = _where or cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{where}: unknown key {key!r} (wrong attribute name?).{hint} "
                f"Valid keys: {', '.join(names)}"
            )
        kwargs[key] = _convert(value, hints[key], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def to_json(config: Any, path: str | Path | None = None) -> str:
    """JSON text of ``config`` (indented, stable key order); also written to ``path`` if given."""
    text = json.dumps(to_dict(config), indent=2)
    if path is not None:
        Path(path).write_text(text + "\n")
    return text


def load_json(cls: type[T], path: str | Path) -> T:
    """Read a JSON config file into ``cls``; errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"config file {path} is not valid JSON: {err}") from None
    return from_dict(cls, data, _where=f"{path.name}")


def non_default_fields(config: Any, _prefix: str = "") -> dict[str, Any]:
    """Flat ``{"train.epochs": 10, ...}`` of the fields that differ from their defaults."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        name = f"{_prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(non_default_fields(value, name + "."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        if value != default:
            out[name] = to_dict(value)
    return out


def require(owner: object, name: str, value: Any, ok: bool, allowed: str) -> None:
    """Raise ConfigError ``Owner.name=value is invalid: allowed <allowed>`` unless ``ok``.

    ``owner`` is the config object (its class name is used) or a name string.
    """
    if not ok:
        who = owner if isinstance(owner, str) else type(owner).__name__
        raise ConfigError(f"{who}.{name}={value!r} is invalid: allowed {allowed}")


def is_real(value: Any) -> bool:
    """A finite int or float (bools are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def require_positive(owner: object, *names: str, unit: str = "") -> None:
    """Each field ``names`` of ``owner`` must be a finite number > 0 (``unit`` only for the message)."""
    for name in names:
        value = getattr(owner, name)
        require(owner, name, value, is_real(value) and value > 0,
                f"a finite number > 0{' ' + unit if unit else ''}")
