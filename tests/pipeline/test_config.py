"""Stage configs fill from params sections, refuse unknown keys and wrong types."""

from dataclasses import dataclass, field

import pytest

from instructgpt.config import ConfigError, flatten, from_dict, to_dict


@dataclass
class Inner:
    coef: float = 0.02
    """A coefficient."""


@dataclass
class Outer:
    epochs: int = 1
    """Epochs."""
    name: str | None = None
    """Optional name."""
    inner: Inner = field(default_factory=Inner)
    """Nested part."""

    def __post_init__(self):
        if self.epochs < 1:
            raise ConfigError("sft.epochs must be >= 1")


def test_nested_and_int_to_float():
    cfg = from_dict(Outer, {"epochs": 3, "inner": {"coef": 1}}, "sft")
    assert cfg.epochs == 3 and cfg.inner.coef == 1.0 and isinstance(cfg.inner.coef, float)
    assert flatten(to_dict(cfg)) == {"epochs": 3, "name": None, "inner.coef": 1.0}


def test_unknown_key_names_section_and_known_keys():
    with pytest.raises(ConfigError, match=r"'sft.inner': unknown key\(s\) \['cof'\].*'coef'"):
        from_dict(Outer, {"inner": {"cof": 1}}, "sft")


def test_wrong_type_and_cross_field_rule():
    with pytest.raises(ConfigError, match="sft.epochs': expected int"):
        from_dict(Outer, {"epochs": "many"}, "sft")
    with pytest.raises(ConfigError, match="must be >= 1"):
        from_dict(Outer, {"epochs": 0}, "sft")
