"""Choosing a judge, and the over-optimisation curve from monitor samples."""

from __future__ import annotations

import math

import pandas as pd
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


def test_simulated_gold_reports_the_well_formed_rate_of_every_model(tmp_path):
    from instructgpt.world.generate import generate
    from tasks.report import LABELS, render_report

    generate(tmp_path, "tiny", seed=0)
    judge = make_judge("simulated", tmp_path / "world")
    world = judge.world
    pids = [pid for pid in world.prompt_ids() if world.family(pid) != "classification"][:8]
    golds = [world.gold(pid) for pid in pids]  # all end with " ." (a bare label would survive the cut)
    assert all(g.endswith(" .") for g in golds)
    # half cut before their ending, a quarter garbage: 1/4 well-formed
    mixed = [g.rsplit(" ", 1)[0] if i % 2 else g for i, g in enumerate(golds)]
    mixed = [m if i % 4 != 2 else "porosforolf ." for i, m in enumerate(mixed)]
    gold = judge.gold(pids, {"sft": golds, "ppo": mixed})
    assert gold.metrics["sft/well_formed_rate"] == 1.0
    assert gold.metrics["ppo/well_formed_rate"] == 0.25
    report = render_report(gold.metrics, [], gold.per_family, ["sft", "ppo"], "simulated", judge.sources, {},
                           pd.DataFrame())
    section = report.split("## Gold judgements per model")[1].split("\n## ")[0]
    table = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    column = table[0].index("well-formed")
    assert {row[0]: row[column] for row in table[2:]} == {LABELS["sft"]: "100.0%", LABELS["ppo"]: "25.0%"}


def test_simulated_gold_leaves_out_prompts_without_a_demonstration(tmp_path):
    """Issue 22: the labelers' demonstrations row counted test prompts without one as empty answers."""
    from instructgpt.world.generate import generate

    generate(tmp_path, "tiny", seed=0)
    judge = make_judge("simulated", tmp_path / "world")
    world = judge.world
    pids = [pid for pid in world.prompt_ids() if world.family(pid) != "classification"][:8]
    golds = [world.gold(pid) for pid in pids]
    some = [g if i % 2 else None for i, g in enumerate(golds)]  # half the prompts have a demonstration
    gold = judge.gold(pids, {"all": golds, "demonstration": some})
    subset = judge.gold(pids[1::2], {"demonstration": golds[1::2]})
    assert gold.metrics["demonstration/well_formed_rate"] == 1.0
    assert {k: v for k, v in gold.metrics.items() if k.startswith("demonstration/")} == subset.metrics
    assert gold.per_family["demonstration"].dropna().equals(subset.per_family["demonstration"].dropna())
