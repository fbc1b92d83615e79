"""Labeler pools (agreement calibration) and the human-rankings importer."""
from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pytest

from instructgpt.labeling import HumanRankings, Labelers, RankingNotFound, write_rankings


def _agreement(world, a, b, n_prompts: int = 300) -> float:
    agree = total = 0
    for pid in world.prompt_ids()[:n_prompts]:
        for seed in (0, 1):
            cands = world.candidates(pid, 4, seed)
            pa = {x: i for i, x in enumerate(a.rank(pid, "", cands, seed).order)}
            pb = {x: i for i, x in enumerate(b.rank(pid, "", cands, seed).order)}
            for i, j in combinations(range(4), 2):
                total += 1
                agree += (pa[i] < pa[j]) == (pb[i] < pb[j])
    return agree / total


def test_training_labelers_agree_like_the_paper(tiny_world) -> None:
    pool = tiny_world.training_labelers()
    rate = _agreement(tiny_world, pool.labelers[0], pool.labelers[1])
    assert 0.68 <= rate <= 0.78, rate


def test_heldout_labelers_agree_with_training_at_a_similar_rate(tiny_world) -> None:
    train, held = tiny_world.training_labelers(), tiny_world.heldout_labelers()
    tt = _agreement(tiny_world, train.labelers[2], train.labelers[3])
    th = _agreement(tiny_world, train.labelers[2], held.labelers[0])
    assert 0.68 <= th <= 0.78 and abs(tt - th) < 0.06, (tt, th)
    assert {lab.spec.w_honest for lab in held.labelers}.isdisjoint({lab.spec.w_honest for lab in train.labelers})


def test_pools_are_deterministic_labelers(tiny_world) -> None:
    pool = tiny_world.training_labelers()
    assert isinstance(pool, Labelers) and isinstance(pool.labelers[0], Labelers)
    pid = tiny_world.prompt_ids()[0]
    cands = tiny_world.candidates(pid, 6, 7)
    r1, r2 = pool.rank(pid, "x", cands, 7), pool.rank(pid, "x", cands, 7)
    assert r1 == r2 and sorted(r1.order) == list(range(6))
    assert pool.prefer(pid, "x", cands[0], cands[1], 7).winner in (0, 1)
    # Garbage and empty responses are ranked, not rejected.
    assert sorted(pool.rank(pid, "x", ["", "\x00\ufffd", "zzz"], 0).order) == [0, 1, 2]
    gold = tiny_world.gold(pid)
    assert pool.utility(pid, gold) > pool.utility(pid, "")
    assert tiny_world.heldout_labelers().utility(pid, gold) > tiny_world.heldout_labelers().utility(pid, "")


def test_prefer_follows_quality_mostly(tiny_world) -> None:
    pool = tiny_world.training_labelers()
    wins = sum(pool.prefer(pid, "", tiny_world.gold(pid), "", s).winner == 0
               for pid in tiny_world.prompt_ids()[:100] for s in range(2))
    assert wins >= 150


def test_unknown_prompt_is_a_clear_key_error(tiny_world) -> None:
    with pytest.raises(KeyError, match="unknown prompt_id 'nope'"):
        tiny_world.judge("nope", "x")
    with pytest.raises(KeyError, match="unknown prompt_id"):
        tiny_world.training_labelers().rank("nope", "", ["a", "b"], 0)


def test_candidates_are_distinct_and_mixed(tiny_world) -> None:
    helpful = []
    for pid in tiny_world.prompt_ids()[:50]:
        cands = tiny_world.candidates(pid, 9, 0)
        assert len(cands) == 9 and len(set(cands)) == 9
        assert cands == tiny_world.candidates(pid, 9, 0)
        helpful += [tiny_world.judge(pid, c).helpful for c in cands]
    assert min(helpful) == 0.0 and max(helpful) == 1.0


def test_human_rankings_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "rankings.jsonl"
    write_rankings(path, [{"prompt_id": "p1", "responses": ["a", "b", "c"], "ranking": [2, 0, 1], "labeler_id": "alice"}])
    human = HumanRankings(path)
    assert isinstance(human, Labelers) and len(human) == 1
    r = human.rank("p1", "prompt", ["a", "b", "c"], seed=0)
    assert r.order == [2, 0, 1] and r.labeler_id == "alice"
    # Same set, other order: the ranking follows the responses.
    assert human.rank("p1", "prompt", ["c", "a", "b"], seed=0).order == [0, 1, 2]
    assert human.prefer("p1", "prompt", "a", "c", 0).winner == 1
    with pytest.raises(RankingNotFound, match="no human ranking for prompt_id 'p2'"):
        human.rank("p2", "", ["a"], 0)
    with pytest.raises(RankingNotFound, match="not with this set"):
        human.rank("p1", "", ["a", "b", "d"], 0)


def test_human_rankings_rejects_a_non_permutation(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt_id": "p1", "responses": ["a", "b"], "ranking": [0, 0], "labeler_id": "x"}) + "\n")
    with pytest.raises(ValueError, match="not a permutation"):
        HumanRankings(path)
