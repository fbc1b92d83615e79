"""Choosing a judge, and the over-optimisation curve from monitor samples."""

from __future__ import annotations

import math

import pytest

from instructgpt.config import ConfigError
from instructgpt.judging import make_judge
from instructgpt.judging.monitor import overoptimisation_curve


def test_make_judge(tmp_path):
    assert make_judge("none", tmp_path).compare([]) is None
    assert make_judge("human", tmp_path, training_labelers=["t01"]).name == "human"
    with pytest.raises(ConfigError, match="choose one of"):
        make_judge("gpt-4", tmp_path)
    with pytest.raises(ConfigError, match="evaluate.judge: human"):  # no world there: say what to do instead
        make_judge("simulated", tmp_path)


def test_overoptimisation_curve():
    rows = {"ppo": [{"step": s, "kl": k, "rm_score": r} for s, k, r in [(1, 0.0, 1.0), (1, 2.0, 3.0), (2, 4.0, 5.0)]],
            "ppo_noptx": []}
    with_gold = overoptimisation_curve(rows, {"ppo": [1.0, 2.0, 0.5]})
    assert with_gold.to_dict("records") == [
        {"model": "ppo", "step": 1, "n": 2, "kl": 1.0, "rm_score": 2.0, "gold_utility": 1.5},
        {"model": "ppo", "step": 2, "n": 1, "kl": 4.0, "rm_score": 5.0, "gold_utility": 0.5}]
    proxy_only = overoptimisation_curve(rows, {"ppo": None})
    assert math.isnan(proxy_only["gold_utility"].iloc[0]) and list(proxy_only["rm_score"]) == [2.0, 5.0]
    assert overoptimisation_curve({"ppo": []}, {}).empty
