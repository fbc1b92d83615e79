"""The champion moves only on the configured judge's verdict; never with judge none."""

from __future__ import annotations

import pytest

from instructgpt.judging import Comparisons, Pair
from instructgpt.judging.decision import RULE_FIRST, RULE_INCOMPLETE, RULE_NO_JUDGE, RULE_VERSUS, champion_decision
from instructgpt.winrate import win_rate


def test_rule():
    clear_win = win_rate([1.0] * 40 + [0.0] * 10)
    coin = win_rate([1.0, 0.0] * 20)
    assert champion_decision("none", False, None, 0).move is False
    assert champion_decision("none", True, clear_win, 0).rule == RULE_NO_JUDGE
    assert champion_decision("simulated", False, None, 0) == champion_decision("simulated", False, None, 0)
    assert champion_decision("simulated", False, None, 0).move and champion_decision("human", False, None, 0).rule == RULE_FIRST
    assert not champion_decision("human", False, None, 3).move  # first candidate, tasks still pending
    assert champion_decision("human", True, clear_win, 2).rule == RULE_INCOMPLETE
    assert champion_decision("human", True, clear_win, 0).move and champion_decision("human", True, clear_win, 0).rule == RULE_VERSUS
    assert not champion_decision("simulated", True, coin, 0).move


@pytest.fixture
def registry_store(workspace, tmp_path, monkeypatch):
    """A fresh MLflow store and an active run in the judging workspace (tiny policy and RM)."""
    import mlflow
    import mlflow.tracking._tracking_service.utils as tracking_utils

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    exp = mlflow.create_experiment("decision-test", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp):
        yield mlflow.MlflowClient()


@pytest.mark.slow  # the ppo and evaluate stages run for real
def test_registry_does_not_move_with_judge_none(registry_store):
    from tasks import registry
    from tasks.answers import VERSUS_CHAMPION
    from tasks.registry import registry_decision

    # no champion yet, no judge: the candidate is registered, nobody becomes champion
    decision = registry_decision("none", None, None)
    assert decision["candidate_version"] == 1 and decision["champion_moved"] == 0
    assert decision["champion_version"] is None and decision["rule"] == RULE_NO_JUDGE
    assert registry.champion_version(registry.POLICY) is None
    assert str(registry_store.get_model_version_by_alias(registry.POLICY, "candidate").version) == "1"
    # a champion exists; the candidate beats it clearly, but by no judge: it stays
    registry.promote(registry.POLICY, "1")
    decision = registry_decision("none", None, ("1", ["old answer"] * 3))
    assert decision["candidate_version"] == 2 and decision["champion_moved"] == 0
    assert registry.champion_version(registry.POLICY) == "1"
    # the same with a human judge whose answers say the candidate won everything: it moves
    pairs = [Pair(VERSUS_CHAMPION, f"p{i}", "q", "new", "old", i) for i in range(30)]
    verdict = Comparisons(pairs, [1.0] * 30)
    decision = registry_decision("human", verdict, ("1", ["old"] * 30))
    assert decision["champion_moved"] == 1 and registry.champion_version(registry.POLICY) == "3"
    assert decision["win_rate_vs_champion"] == 1.0 and decision["comparisons"] == 30
