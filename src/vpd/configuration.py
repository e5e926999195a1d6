"""Typed dataclass configs <-> plain dicts, YAML files and ``key=value`` overrides.

Every config in vpd is a dataclass with defaults. A recipe file only lists what differs from the defaults;
``--set a.b=value`` overrides any field. Unknown keys and ill-typed values fail with one line naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override does not fit the typed defaults."""


def check_range(
    field: str,
    value: float | None,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    optional: bool = False,
) -> None:
    """Raises ConfigError naming ``field`` unless ``value`` is a finite number in the range (None if ``optional``).

    ``low`` is inclusive unless ``low_open``; ``high`` is inclusive. Configs call this from ``__post_init__`` so a
    value is checked where it enters (YAML, ``--set``, ``config.json``, ``dataclasses.replace``).
    """
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low  # type: ignore[operator]
    if ok and high is not None:
        ok = value <= high  # type: ignore[operator]
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"<= {high:g}")
        expected = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")
        raise ConfigError(f"{field}: expected {expected}{' (or null)' if optional else ''}, got {value!r}")


def to_dict(config: Any) -> Any:
    """A dataclass (nested) as plain JSON-able python: dicts, lists, scalars."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {str(k): to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    return config


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Converts ``value`` (from JSON/YAML/CLI) to ``annotation``; raises ConfigError naming ``where``."""
    origin = get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: cannot be {value!r}")
    if origin is typing.Literal:
        if isinstance(value, bool):  # YAML 1.1 reads a bare no / off / yes / on as a bool
            spelled = [w for w in (("no", "off", "false") if not value else ("yes", "on", "true"))
                       if w in get_args(annotation)]  # fmt: skip
            value = spelled[0] if spelled else value
        if value not in get_args(annotation):
            raise ConfigError(f"{where}: expected one of {list(get_args(annotation))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if isinstance(annotation, type) and isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, where)
    if origin in (tuple, list, Sequence) or annotation in (tuple, list):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(annotation)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            items = [_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_type = args[0] if args else Any
            items = [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or annotation is tuple else items
    if origin in (dict, Mapping) or annotation is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads "1e-3" as a string; it is a number to anyone typing it
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Builds dataclass ``cls`` from a mapping, coercing types and rejecting unknown keys."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown config key {prefix}{unknown[0]!r}; known: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field without default is missing
        raise ConfigError(f"{where or cls.__name__}: {err}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=3"`` -> (["a", "b"], 3); the value is read as YAML (numbers, booleans, lists, null)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. train.max_steps=100")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def merge(cls: type, base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` over ``base`` for dataclass ``cls``: nested config sections merge key by key, every other value
    (free-form dicts such as a dataset's ``args`` included) is replaced whole. Returns a new dict."""
    hints = get_type_hints(cls)
    out = dict(base)
    for key, value in update.items():
        section = _dataclass_of(hints.get(key))
        if section is not None and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(section, out[key], value)
        else:
            out[key] = value
    return out


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass an annotation names (``X`` or ``X | None``), else None."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        annotation = options[0] if len(options) == 1 else None
    return annotation if dataclasses.is_dataclass(annotation) and isinstance(annotation, type) else None


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = (), base: Mapping[str, Any] | None = None
) -> T:
    """Typed defaults of ``cls`` (or ``base``, a full dict of them), then the YAML file at ``path``, then each
    ``key=value`` override."""
    data: dict[str, Any] = dict(base) if base is not None else to_dict(cls())
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"config file {path}: expected a mapping at the top level")
        data = merge(cls, data, loaded)
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(keys[: depth + 1])} is not a config section")
            node = child
        if keys[-1] not in node and not _is_open_mapping(cls, keys[:-1]):
            raise ConfigError(f"override {text!r}: unknown key {'.'.join(keys)!r}")
        node[keys[-1]] = value
    return from_dict(cls, data)


def _is_open_mapping(cls: type, path: list[str]) -> bool:
    """True when the field at ``path`` is a free-form dict (its keys are not checked here)."""
    annotation: Any = cls
    for key in path:
        if not (dataclasses.is_dataclass(annotation) and isinstance(annotation, type)):
            return False
        annotation = get_type_hints(annotation).get(key)
        origin = get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
    return annotation is dict or get_origin(annotation) in (dict, Mapping)


def save_yaml(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
