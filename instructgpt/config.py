"""Typed stage configs filled from a section of params.yaml.

Every stage has a dataclass whose fields are documented one by one; `from_dict` builds it
from the plain mapping that YAML gives, recursing into nested dataclasses, and refuses
unknown keys with a message that names the section and the fields it does know.
Cross-field rules live in each config's ``__post_init__`` and raise ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A params.yaml value is missing, unknown or inconsistent; the message says what to change."""


class InputError(ConfigError):
    """A raw input (``inputs`` in params.yaml) cannot be read as configured: a missing path, an
    unreadable file, a column the mapping names but the file lacks, a malformed line where no
    quarantine can take it. The message names the file (and line and field). A ConfigError, so
    the stage exits with code 2 (not retried: re-running cannot fix the file)."""

    kind = "bad input"


class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading numbers as YAML 1.2 does, as DVC and ruamel.yaml do: PyYAML
    (YAML 1.1) takes ``5e-05`` and ``1e3`` for strings because their mantissa has no dot, and
    ruamel writes small floats that way, so a profile's ``lr: 0.00005`` came back as a string."""


ParamsLoader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
                                        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def read_yaml(path: str | Path) -> Any:
    """A YAML file with YAML 1.2 numbers (``ParamsLoader``)."""
    with open(path) as f:
        return yaml.load(f, Loader=ParamsLoader)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def from_dict(cls: type[T], data: Mapping[str, Any] | None, section: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclass fields take nested mappings."""
    data = dict(data or {})
    where = section or cls.__name__
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"params.yaml section '{where}': unknown key(s) {unknown}; known keys are {sorted(fields)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        tp = hints[name]
        # Optional[X] / X | None: unwrap to X for nested dataclasses.
        if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
        if _is_dataclass_type(tp) and isinstance(value, Mapping):
            kwargs[name] = from_dict(tp, value, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(value, tp, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field without default is missing
        raise ConfigError(f"params.yaml section '{where}': {exc}") from exc


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Accept ints for float fields (YAML writes 1 for 1.0) and check simple scalar types."""
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and value is not None and not isinstance(value, tp):
        raise ConfigError(f"params.yaml '{where}': expected {tp.__name__}, got {value!r}")
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"params.yaml '{where}': expected int, got {value!r}")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as a plain dict (saved with every checkpoint and run)."""
    return dataclasses.asdict(cfg)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, for logging params to MLflow."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
