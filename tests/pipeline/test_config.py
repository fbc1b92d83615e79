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


@pytest.mark.parametrize("section, cls, data, message", [
    ("label", "LabelConfig", {"temperatures": [1.0, 0]}, r"label.temperatures=\[1.0, 0\]"),
    ("label", "LabelConfig", {"temperatures": []}, r"label.temperatures=\[\]"),
    ("label", "LabelConfig", {"temperatures": "hot"}, r"label.temperatures='hot'"),
    ("label", "LabelConfig", {"demonstration_prompts": -1}, r"label.demonstration_prompts=-1"),
    ("evaluate", "EvaluateConfig", {"best_of_n": 1}, r"evaluate.best_of_n=1"),
    ("rm", "RewardConfig", {"selection": "best"}, r"rm.selection='best'"),
    ("rounds", "RoundsConfig", {"n": 3}, r"rounds.n=3"),
    ("rounds", "RoundsConfig", {"policy_share": 0}, r"rounds.policy_share=0"),
    ("rounds", "RoundsConfig", {"max_prompts": 0}, r"rounds.max_prompts=0"),
])
def test_the_recipes_new_knobs_refuse_what_cannot_work(section, cls, data, message):
    import instructgpt.judging.config as evaluate
    import instructgpt.labeling.config as label
    import instructgpt.rounds as rounds
    import instructgpt.train.pretrain as base
    import instructgpt.train.reward as reward

    modules = (base, label, evaluate, reward, rounds)
    with pytest.raises(ConfigError, match=message):
        from_dict(next(getattr(m, cls) for m in modules if hasattr(m, cls)), data, section)


def test_label_temperatures_become_floats():
    from instructgpt.labeling.config import LabelConfig

    assert from_dict(LabelConfig, {"temperatures": [1, 0.7]}, "label").temperatures == [1.0, 0.7]
