"""Imported rankings against the prompt log: each rejection reason, K = 2..9, other datasets."""

from __future__ import annotations

import pytest

from instructgpt.labeling.formats import read_rankings, task_id
from instructgpt.labeling.validation import rejection_metrics, validate_rankings
from tests.helpers import write_jsonl

OK = {"prompt_id": "p0000", "responses": ["a", "b", "c", "d"], "ranking": [3, 1, 0, 2], "labeler_id": "alice"}


def check(tmp_path, index, rows, k_min=2, k_max=9):
    records, malformed = read_rankings(write_jsonl(tmp_path / "r.jsonl", rows))
    usable, rejected = validate_rankings(records, index, k_min, k_max)
    return usable, malformed + rejected


@pytest.mark.parametrize("change,reason,needle", [
    ({"prompt_id": "nope"}, "unknown_prompt", "'nope' is not in the prompt log"),
    ({"prompt_id": "q0001"}, "prompt_removed", "removed by ingestion: pii:EMAIL (PII EMAIL[10:30])"),
    ({"prompt_id": "q0002"}, "prompt_removed", "removed by ingestion: duplicate"),
    ({"prompt_id": "q0003"}, "prompt_removed", "removed by ingestion: user_cap"),
    ({"prompt_id": "t0001"}, "test_split", "in the 'test' split"),
    ({"ranking": [0, 1, 1, 2]}, "not_permutation", "not a permutation of 0..3"),
    ({"ranking": [0, 1, 2]}, "not_permutation", "not a permutation of 0..3"),
    ({"responses": ["a", "b", "a", "c"]}, "duplicate_responses", "'a' appears 2 times"),
    ({"responses": ["a"] * 10, "ranking": list(range(10))}, "wrong_k", "K = 10"),
    ({"responses": ["a"], "ranking": [0]}, "wrong_k", "K = 1"),
    ({"task_id": "0123456789abcdef"}, "task_mismatch", "is not the id of prompt 'p0000'"),
    ({"ranking": [0, 1, "2", 3]}, "malformed", "field 'ranking'"),
])
def test_each_rejection_reason_names_file_line_and_what(tmp_path, index, change, reason, needle):
    usable, rejected = check(tmp_path, index, [{"prompt_id": "p0001", **{k: v for k, v in OK.items()
                                                                         if k != "prompt_id"}},
                                               {**OK, **change}])
    assert len(usable) == 1 and usable[0]["prompt_id"] == "p0001"
    assert [r["reason"] for r in rejected] == [reason]
    assert needle in rejected[0]["detail"], rejected[0]["detail"]
    assert rejected[0]["file"].endswith("r.jsonl") and rejected[0]["line"] == 2
    assert rejected[0]["detail"].startswith(f"{rejected[0]['file']}:2: ")


def test_prompt_removed_says_why_in_metrics(tmp_path, index):
    rows = [{**OK, "prompt_id": p} for p in ("q0001", "q0002", "q0003", "q0001")]
    rows[3]["labeler_id"] = "bob"
    _, rejected = check(tmp_path, index, rows)
    assert rejected[0]["ingest_reason"] == "pii:EMAIL"
    assert rejection_metrics(rejected) == {"rejected/total": 4, "rejected/prompt_removed": 4,
                                           "rejected/prompt_removed_pii": 2, "rejected/prompt_removed_duplicate": 1,
                                           "rejected/prompt_removed_user_cap": 1}


def test_duplicate_ranking_same_labeler_prompt_and_set_keeps_the_first(tmp_path, index):
    rows = [OK, {**OK, "responses": ["d", "c", "b", "a"], "ranking": [0, 1, 2, 3]}, {**OK, "labeler_id": "bob"},
            {**OK, "responses": ["a", "b", "c", "e"]}]
    usable, rejected = check(tmp_path, index, rows)
    assert [(u["labeler_id"], u["responses"][-1]) for u in usable] == [("alice", "d"), ("bob", "d"), ("alice", "e")]
    assert [(r["reason"], r["line"], r["labeler_id"]) for r in rejected] == [("duplicate_ranking", 2, "alice")]


@pytest.mark.parametrize("k", range(2, 10))
def test_k_from_2_to_9_is_accepted(tmp_path, index, k):
    responses = [f"r{i}" for i in range(k)]
    usable, rejected = check(tmp_path, index, [{**OK, "responses": responses, "ranking": list(range(k))[::-1],
                                                "task_id": task_id("p0000", responses)}])
    assert rejected == [] and usable[0]["ranking"] == list(range(k))[::-1]


def test_k_outside_the_configured_range_is_rejected(tmp_path, index):
    rows = [{**OK, "responses": ["a", "b"], "ranking": [1, 0]}, OK,
            {**OK, "responses": list("abcdef"), "ranking": [0, 1, 2, 3, 4, 5]}]
    usable, rejected = check(tmp_path, index, rows, k_min=3, k_max=5)
    assert len(usable) == 1 and [(r["reason"], r["line"]) for r in rejected] == [("wrong_k", 1), ("wrong_k", 3)]
    assert "outside label.k_min..k_max = 3..5" in rejected[0]["detail"]


def test_prompts_of_other_datasets_are_used_in_train_and_valid(tmp_path, index):
    usable, rejected = check(tmp_path, index, [{**OK, "prompt_id": "s0001"}, {**OK, "prompt_id": "o0001"}])
    assert rejected == []
    assert [(u["dataset"], u["split"], u["prompt"]) for u in usable] == [
        ("sft", "train", "repeat the word sun 2 times"), ("ppo", "valid", "repeat the word dog 1 times")]
