"""The human judge: blind export, stable ids, import of JSONL and Label Studio answers, the
judge-id check, and win rates from a known answer file."""

from __future__ import annotations

import json
import math

import pytest

from instructgpt.judging import Pair
from instructgpt.judging.human import HumanJudge, TASK_FIELDS, read_label_studio_judgements, write_tasks

MODELS = ("ppo", "sft", "base", "ppo_noptx")
COMPARISONS = [("sft", "base"), ("ppo", "sft"), ("ppo", "base")]


def make_pairs(n_prompts: int = 12) -> list[Pair]:
    """Each model answers each prompt differently, except ppo and sft on prompt 0 (identical)."""
    answers = {m: [f"answer {k} of model {m} ." for k in range(n_prompts)] for m in MODELS}
    answers["sft"][0] = answers["ppo"][0]
    return [Pair(f"{c}_vs_{b}", f"p{k:03d}", f"prompt number {k} ?", answers[c][k], answers[b][k], k)
            for c, b in COMPARISONS for k in range(n_prompts)]


@pytest.fixture
def answers(tmp_path):
    d = tmp_path / "judgements"
    d.mkdir()
    (d / "README.md").write_text("not an answer file")
    return d


def write_answers(path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_export_is_blind_shuffled_and_stable(answers, tmp_path):
    pairs = make_pairs()
    result = HumanJudge(answers, [], seed=0).compare(pairs)
    out = tmp_path / "outbox/judge_tasks.jsonl"
    write_tasks(out, result.tasks)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    # one task per pair with different responses; identical responses are a tie without a task;
    # two pairs showing the same two texts (sft and ppo agree on p000) share one task
    assert len(lines) == len(pairs) - 2
    shared = [r for r in result.rows if r["prompt_id"] == "p000" and r["comparison"] in ("sft_vs_base", "ppo_vs_base")]
    assert shared[0]["task_id"] == shared[1]["task_id"] is not None
    assert [r for r in result.rows if r["identical"]] == [
        {"comparison": "ppo_vs_sft", "prompt_id": "p000", "task_id": None, "candidate_shown_as": None,
         "identical": True, "outcome": 0.5, "judges": []}]
    # blind: exactly the task fields, no model or comparison names anywhere
    text = out.read_text()
    assert all(list(t) == list(TASK_FIELDS) for t in lines)
    for secret in ["ppo_vs_sft", "sft_vs_base", "candidate", "baseline", "comparison"]:
        assert secret not in text
    for t in lines:
        assert not any(f"model {m} " in t["prompt"] for m in MODELS)
    # shuffled: the candidate is shown first about half the time, and the file is not grouped
    shown = [r["candidate_shown_as"] for r in result.rows if not r["identical"]]
    assert 0.25 < shown.count("a") / len(shown) < 0.75
    by_line = {t["task_id"]: i for i, t in enumerate(lines)}
    first_comparison = [by_line[r["task_id"]] for r in result.rows[:12] if r["task_id"]]
    assert first_comparison != sorted(first_comparison)
    # stable: the same responses give the same tasks in the same order, in a fresh judge
    again = HumanJudge(answers, [], seed=0).compare(make_pairs())
    assert again.tasks == result.tasks
    # the mapping (not in the export) says where the candidate was shown
    for r in result.rows:
        if r["task_id"]:
            task = next(t for t in lines if t["task_id"] == r["task_id"])
            pair = next(p for p in pairs if p.comparison == r["comparison"] and p.prompt_id == r["prompt_id"])
            assert task[r["candidate_shown_as"]] == pair.candidate


def test_unanswered_tasks_are_pending(answers):
    result = HumanJudge(answers, [], seed=0).compare(make_pairs())
    assert result.pending_tasks == len(result.tasks) and result.answered_tasks == 0
    assert result.pending("ppo_vs_sft") == 11  # the identical pair is judged (a tie)
    assert result.counts["files_ignored"] == 1  # README.md, listed not read


def test_win_rates_from_a_known_answer_file(answers):
    pairs = make_pairs()
    tasks = HumanJudge(answers, [], seed=0).compare(pairs)
    rows = {(r["comparison"], r["prompt_id"]): r for r in tasks.rows}
    lines = []
    # sft_vs_base: the candidate wins prompts 0-8, loses 9-10, tie on 11 -> (9 + 0.5) / 12
    for k in range(12):
        r = rows[("sft_vs_base", f"p{k:03d}")]
        cand, other = r["candidate_shown_as"], "b" if r["candidate_shown_as"] == "a" else "a"
        choice = cand if k < 9 else other if k < 11 else "tie"
        lines.append({"task_id": r["task_id"], "choice": choice, "judge_id": "judge-1"})
    # ppo_vs_base prompt 1: two judges disagree -> half a win
    r = rows[("ppo_vs_base", "p001")]
    lines += [{"task_id": r["task_id"], "choice": "a", "judge_id": "judge-1"},
              {"task_id": r["task_id"], "choice": "b", "judge_id": "judge-2"}]
    write_answers(answers / "batch1.jsonl", lines)
    result = HumanJudge(answers, [], seed=0).compare(pairs)
    wr = result.win_rate("sft_vs_base")
    assert wr.n == 12 and wr.wins == 9.5 and wr.rate == pytest.approx(9.5 / 12)
    p, n, z = 9.5 / 12, 12, 1.96  # Wilson score interval, as instructgpt.winrate
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (wr.low, wr.high) == pytest.approx((centre - half, centre + half))
    assert result.pending("sft_vs_base") == 0
    # ppo_vs_base: p001 half a win; p000 shows the same two texts as sft_vs_base p000 (one task), won
    assert result.win_rate("ppo_vs_base").n == 2 and result.win_rate("ppo_vs_base").wins == 1.5
    assert result.counts["agreement"] == 0.0 and result.counts["tasks_with_several_judges"] == 1
    assert result.counts["judgements_used"] == 14 and result.counts["judges"] == 2


def test_every_judgement_used_or_rejected_with_reason(answers):
    pairs = make_pairs()
    tid = [t["task_id"] for t in HumanJudge(answers, [], seed=0).compare(pairs).tasks]
    write_answers(answers / "a.jsonl", [
        {"task_id": tid[0], "choice": "a", "judge_id": "carol"},       # used
        {"task_id": tid[0], "choice": "b", "judge_id": "carol"},       # duplicate (same judge, same task)
        {"task_id": "j0000000000000000", "choice": "a", "judge_id": "carol"},  # unknown task
        {"task_id": tid[1], "choice": "left", "judge_id": "carol"},    # bad choice value
        {"task_id": tid[2], "choice": "tie", "judge_id": "T07"},       # labeled training data (case-insensitive)
        {"task_id": tid[3], "choice": "tie"},                          # missing judge_id
        "{not json",
    ])
    result = HumanJudge(answers, ["t07", "t08"], seed=0).compare(pairs)
    status = [(j["where"].rsplit(":", 1)[1], j["status"], j["reason_kind"]) for j in result.judgements]
    assert status == [("1", "used", None), ("2", "rejected", "duplicate"), ("3", "rejected", "unknown_task"),
                      ("4", "rejected", "bad_choice"), ("5", "rejected", "training_labeler"),
                      ("6", "rejected", "missing_field"), ("7", "rejected", "not_json")]
    assert "a.jsonl:1" in result.judgements[1]["reason"]  # the duplicate names the judgement it repeats
    assert "'T07' labeled training data" in result.judgements[4]["reason"]
    assert result.counts["judgements_imported"] == 7 and result.counts["judgements_used"] == 1
    assert result.counts["rejected/training_labeler"] == 1 and result.counts["judgements_rejected"] == 6
    assert result.answered_tasks == 1


def ls_task(n: int, data: dict, *annotations: dict) -> dict:
    return {"id": n, "data": data, "annotations": list(annotations), "predictions": []}


def pairwise(selected: str, to_name: str = "a,b") -> list[dict]:
    return [{"id": "x1", "from_name": "choice", "to_name": to_name, "type": "pairwise",
             "origin": "manual", "value": {"selected": selected}}]


def test_label_studio_pairwise_export(answers):
    pairs = make_pairs()
    tasks = HumanJudge(answers, [], seed=0).compare(pairs).tasks
    t = tasks[:7]
    export = [
        ls_task(1, t[0], {"id": 11, "completed_by": 3, "result": pairwise("left"), "was_cancelled": False}),
        ls_task(2, t[1], {"id": 12, "completed_by": {"id": 4, "email": "dana@example.org"},
                          "result": pairwise("right"), "was_cancelled": False}),
        # objects named in the other order: left is b
        ls_task(3, t[2], {"id": 13, "completed_by": 3, "result": pairwise("left", "b,a")}),
        ls_task(4, t[3], {"id": 14, "completed_by": 3, "result": [
            {"from_name": "tie", "to_name": "prompt", "type": "choices", "value": {"choices": ["tie"]}}]}),
        ls_task(5, t[4], {"id": 15, "completed_by": 3, "result": [], "was_cancelled": True}),
        ls_task(6, t[5], {"id": 16, "completed_by": 3, "result": []}),
        ls_task(7, {"text": "someone else's task"}, {"id": 17, "completed_by": 3, "result": pairwise("left")}),
        ls_task(8, t[6]),  # not annotated yet: no judgement
    ]
    (answers / "label_studio.json").write_text(json.dumps(export))
    result = HumanJudge(answers, [], seed=0).compare(pairs)
    got = [(j["task_id"], j["choice"], j["judge_id"], j["status"], j["reason_kind"]) for j in result.judgements]
    assert got == [
        (t[0]["task_id"], "a", "label-studio:3", "used", None),
        (t[1]["task_id"], "b", "label-studio:4", "used", None),
        (t[2]["task_id"], "b", "label-studio:3", "used", None),
        (t[3]["task_id"], "tie", "label-studio:3", "used", None),
        (t[4]["task_id"], None, "label-studio:3", "rejected", "skipped"),
        (t[5]["task_id"], None, "label-studio:3", "rejected", "bad_choice"),
        (None, None, "label-studio:3", "rejected", "missing_field"),
    ]
    assert result.answered_tasks == 4 and result.pending_tasks == len(tasks) - 4
    assert "label_studio.json task 5 annotation 15" in result.judgements[4]["where"]
    # the outcomes follow the hidden mapping: "a" chosen = the model shown as a wins
    row = next(r for r in result.rows if r["task_id"] == t[0]["task_id"])
    assert row["outcome"] == (1.0 if row["candidate_shown_as"] == "a" else 0.0)


@pytest.mark.parametrize("value,choice", [("a", "a"), ("b", "b"), ("tie", "tie"), ("A is better", "a"),
                                          ("Tie", "tie")])
def test_label_studio_export_of_the_pushed_judge_project(tmp_path, value, choice):
    """The Choices interface `make labels-push` creates (instructgpt.labeling.studio.JUDGE_CONFIG)."""
    export = [ls_task(1, {"task_id": "j1", "prompt_id": "p", "prompt": "q", "a": "x", "b": "y"},
                      {"completed_by": 7, "result": [{"from_name": "choice", "to_name": "prompt", "type": "choices",
                                                      "value": {"choices": [value]}}]},
                      {"completed_by": 8, "result": [], "was_cancelled": True},
                      {"completed_by": 8, "result": [{"type": "choices", "value": {"choices": ["maybe"]}}]})]
    path = tmp_path / "label_studio.json"
    path.write_text(json.dumps(export))
    judgements = read_label_studio_judgements(path)
    assert [(j.task_id, j.choice, j.judge_id) for j in judgements if j.problem is None] == [
        ("j1", choice, "label-studio:7")]
    assert [j.kind for j in judgements if j.problem is not None] == ["skipped", "bad_choice"]


def test_label_studio_user_who_labeled_training_data_is_rejected(answers):
    pairs = make_pairs()
    t = HumanJudge(answers, [], seed=0).compare(pairs).tasks[0]
    (answers / "ls.json").write_text(json.dumps([ls_task(1, t, {"id": 1, "completed_by": {"id": 9, "email": "t03"},
                                                                "result": pairwise("left")})]))
    # the same person ranked through Label Studio: the labeling side names them label-studio:9
    result = HumanJudge(answers, ["label-studio:9"], seed=0).compare(pairs)
    assert result.judgements[0]["reason_kind"] == "training_labeler" and result.answered_tasks == 0
