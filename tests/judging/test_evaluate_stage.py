"""The evaluate stage with the human judge and with none, on tiny models, without the simulated
world: stop until answered (exit 5), stable task ids across runs, win rates from the answers,
judges who labeled training data rejected, proxy figures always, `wait: false`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tasks.shell.run import EXIT_AWAITING, main
from tests.workspace import set_params

pytestmark = pytest.mark.slow  # the evaluate stage runs for real, 5-10 s a test

TASKS = Path("labels/outbox/judge_tasks.jsonl")
REPO = Path(__file__).resolve().parents[2]


def run_evaluate() -> int:
    from tasks.evaluate import body

    return main("evaluate", body)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def test_human_judge_waits_then_uses_the_answers(workspace):
    # 1. nothing answered: the stage stops with exit code 5, exports the tasks, writes no outputs
    assert run_evaluate() == EXIT_AWAITING
    tasks = read_jsonl(TASKS)
    assert tasks and all(list(t) == ["task_id", "prompt_id", "prompt", "a", "b"] for t in tasks)
    marker = json.loads(Path("labels/outbox/evaluate.waiting.json").read_text())
    assert marker["pending"] == len(tasks) and marker["answered"] == 0 and marker["tasks_file"] == str(TASKS)
    assert not Path("outputs/evaluate").exists()
    # 2. people answer: "a" everywhere by a new judge; one judgement by a training labeler
    answers = [{"task_id": t["task_id"], "choice": "a", "judge_id": "judge-7"} for t in tasks]
    answers.append({"task_id": tasks[0]["task_id"], "choice": "b", "judge_id": "t01"})  # ranked training data
    answers.append({"task_id": tasks[1]["task_id"], "choice": "b", "judge_id": "t03"})  # wrote demonstrations
    Path("labels/judgements/batch.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    assert run_evaluate() == 0
    assert read_jsonl(TASKS) == tasks  # same models, same seed: same tasks, same ids
    metrics = json.loads(Path("outputs/evaluate/metrics.json").read_text())
    assert metrics["judge"] == "human" and metrics["sources"]["win_rate"].startswith("human")
    assert "gold" not in metrics["sources"] and "helpful" not in metrics["ppo"]  # no gold from people
    assert metrics["judging"]["tasks_answered"] == len(tasks) and metrics["judging"]["tasks_pending"] == 0
    assert metrics["judging"]["rejected"]["training_labeler"] == 2
    # every judgement accounted for: the training labeler's one rejected with its reason
    records = read_jsonl("outputs/evaluate/judge/judgements.jsonl")
    assert [r["status"] for r in records].count("used") == len(tasks)
    rejected = [r for r in records if r["status"] == "rejected"]
    assert [(r["judge_id"], r["reason_kind"]) for r in rejected] == [("t01", "training_labeler"),
                                                                   ("t03", "training_labeler")]
    # win rates: "a" always won, so each pair's outcome says where the candidate was shown
    pairs = pd.DataFrame(read_jsonl("outputs/evaluate/judge/pairs.jsonl"))
    win_rates = pd.read_csv("outputs/evaluate/win_rates.csv").set_index("comparison")
    for comparison, group in pairs.groupby("comparison"):
        expected = group.apply(lambda r: 0.5 if r["identical"] else float(r["candidate_shown_as"] == "a"),
                               axis=1).mean()
        assert win_rates.loc[comparison, "win_rate"] == expected
        assert win_rates.loc[comparison, "n"] == len(group) and win_rates.loc[comparison, "judge"] == "human"
        assert metrics["win_rate"][comparison] == expected
    # proxy figures whatever the judge, labelled as proxies in the report
    for model in ("base", "sft", "ppo", "ppo_noptx"):
        for key in ("rm_score", "kl_from_sft", "response_words", "eos_rate", "demo_loss", "corpus_loss",
                    "nlp_task_accuracy"):
            assert key in metrics[model], (model, key)
    assert metrics["sft"]["kl_from_sft"] == 0.0
    report = Path("outputs/evaluate/report.md").read_text()
    assert "Judge: **human**" in report and "| RM score (proxy) |" in report
    assert "| comparison | win rate | 95% CI | n | pending | judge | paper |" in report


def test_wait_false_reports_what_is_answered(workspace):
    set_params(workspace, "evaluate", wait=False)
    assert run_evaluate() == 0  # nothing answered yet, and the stage goes on
    tasks = read_jsonl(TASKS)
    first = tasks[: len(tasks) // 2]
    Path("labels/judgements/some.jsonl").write_text(
        "".join(json.dumps({"task_id": t["task_id"], "choice": "tie", "judge_id": "judge-7"}) + "\n" for t in first))
    assert run_evaluate() == 0
    metrics = json.loads(Path("outputs/evaluate/metrics.json").read_text())
    assert metrics["judging"]["tasks_answered"] == len(first)
    assert metrics["judging"]["tasks_pending"] == len(tasks) - len(first)
    win_rates = pd.read_csv("outputs/evaluate/win_rates.csv")
    pairs = pd.DataFrame(read_jsonl("outputs/evaluate/judge/pairs.jsonl"))
    assert win_rates["pending"].sum() == pairs["outcome"].isna().sum() > 0
    assert (win_rates["n"] + win_rates["pending"]).tolist() == pairs.groupby("comparison", sort=False).size().tolist()
    assert "pending" in Path("outputs/evaluate/report.md").read_text()


def test_judge_none_gives_proxy_figures_only(workspace):
    set_params(workspace, "evaluate", judge="none")
    assert run_evaluate() == 0
    assert not TASKS.exists()
    metrics = json.loads(Path("outputs/evaluate/metrics.json").read_text())
    assert metrics["judge"] == "none" and "win_rate" not in metrics and "gold_utility" not in metrics["ppo"]
    assert metrics["sources"]["win_rate"].startswith("none")
    assert "rm_score" in metrics["ppo"] and "kl_from_sft" in metrics["ppo"]
    assert pd.read_csv("outputs/evaluate/win_rates.csv").empty
    report = Path("outputs/evaluate/report.md").read_text()
    assert "No win rates" in report and "Judge: **none**" in report


def test_the_rm_orders_demonstrations_over_answers_only_where_a_demonstration_exists():
    from tasks.answers import REFERENCE
    from tasks.evaluate import rm_orders_demonstrations

    responses = {REFERENCE: ["demo a", None, "demo c", "demo d"], "sft": ["x", "y", "z", "w"], "ppo": list("pqrs")}
    scores = {REFERENCE: [1.0, None, 0.0, 2.0], "sft": [0.0, 0.0, 1.0, 2.0], "ppo": [-1.0, 0.0, -1.0, -1.0]}
    m = rm_orders_demonstrations(scores, responses)
    # prompt 1 has no demonstration (no pair); the tie on prompt 4 counts half
    assert m == {"rm/demonstration_over_sft": 1.5 / 3, "rm/demonstration_over_ppo": 1.0, "rm/demonstration_pairs": 3}
    assert rm_orders_demonstrations(scores, {**responses, REFERENCE: [None] * 4}) == {}


def test_best_of_n_picks_the_rms_favourite_of_n_sft_samples(workspace, monkeypatch):
    """Each prompt's N samples are scored by the RM; the highest wins (the first drawn on a tie)."""
    import tasks.answers as answers
    from instructgpt.judging import proxy
    from instructgpt.judging.config import EvaluateConfig

    prompts = ["Say hi.", "Name a colour."]
    cfg = EvaluateConfig(best_of_n=3, max_new_tokens=8, temperature=1.0)
    seen = {}

    def scores(rm, tokenizer, flat, drawn, **kw):  # the real RM's scores, kept to check the pick against
        seen["flat"], seen["drawn"] = flat, drawn
        seen["scores"] = real(rm, tokenizer, flat, drawn, **kw)
        return seen["scores"]

    real = proxy.rm_scores
    monkeypatch.setattr(proxy, "rm_scores", scores)
    picked = answers.best_of_n(cfg, prompts)
    assert seen["flat"] == [p for p in prompts for _ in range(3)]
    for i, response in enumerate(picked):
        block = seen["scores"][3 * i: 3 * i + 3]
        assert response == seen["drawn"][3 * i + block.index(max(block))]


def test_demonstration_figures_only_over_prompts_that_have_one(workspace):
    """Issue 22: test prompts without a demonstration counted as empty answers in the labelers'
    demonstrations row ("words 0.7"); they are left out, and the report says how many count."""
    set_params(workspace, "evaluate", judge="none")
    test_ids = {p["prompt_id"] for p in read_jsonl("outputs/ingest/prompts.jsonl") if p["split"] == "test"}
    without = set(sorted(test_ids)[::2])
    demos = [d for d in read_jsonl("data/demonstrations.jsonl") if d["prompt_id"] not in without]
    Path("data/demonstrations.jsonl").write_text("".join(json.dumps(d) + "\n" for d in demos))
    assert run_evaluate() == 0
    samples = read_jsonl("outputs/evaluate/samples.jsonl")
    answered = [s["demonstration"] for s in samples if s["prompt_id"] not in without]
    assert 0 < len(answered) < len(samples)  # some sampled test prompts have none
    assert all(s["demonstration"] is None for s in samples if s["prompt_id"] in without)
    metrics = json.loads(Path("outputs/evaluate/metrics.json").read_text())
    words = sum(len(a.split()) for a in answered) / len(answered)
    assert metrics["demonstration"]["response_words"] == pytest.approx(words)
    assert metrics["demo_loss_prompts"] == len(answered)
    report = Path("outputs/evaluate/report.md").read_text()
    assert f"| labelers' demonstrations ({len(answered)} of {len(samples)} prompts have one) |" in report


@pytest.mark.parametrize("nlp_task", ["none", "empty.jsonl"])
def test_no_nlp_task_leaves_its_accuracy_absent_and_says_why(workspace, nlp_task):
    """Issue 22: an empty NLP task file gave "NLP task accuracy 0.0 %" for every model, as if
    measured. With `inputs.nlp_task: none` (the project's directory that holds no items), or an
    empty file, no model has the figure, metrics.json and the report say why."""
    shutil.copytree(REPO / "none", workspace / "none")
    Path("empty.jsonl").write_text("")
    set_params(workspace, "inputs", nlp_task=nlp_task, judgements="none")
    set_params(workspace, "evaluate", judge="none")
    assert run_evaluate() == 0
    metrics = json.loads(Path("outputs/evaluate/metrics.json").read_text())
    reason = {"none": "no NLP task given (inputs.nlp_task: none, no *.jsonl file in it)",
              "empty.jsonl": "no NLP task given (inputs.nlp_task: empty.jsonl holds no items)"}[nlp_task]
    assert metrics["absent"] == {"nlp_task_accuracy": reason}
    assert metrics["sources"]["nlp_task_accuracy"] == "absent" and "nlp_task_items" not in metrics
    for model in ("base", "sft", "ppo", "ppo_noptx"):
        assert "nlp_task_accuracy" not in metrics[model] and "corpus_loss" in metrics[model]
    report = Path("outputs/evaluate/report.md").read_text()
    table = report.split("## Proxy figures per model")[1].split("\n\n")[1].splitlines()
    nlp = {row.split(" | ")[0].strip("| "): row.split(" | ")[-1].strip("| ") for row in table[2:]}
    assert table[0].endswith("| NLP task accuracy (proxy) |")
    for model in ("base (pretrained only)", "SFT", "PPO-ptx (InstructGPT)", "PPO (no ptx)"):
        assert nlp[model] == "absent", nlp
    assert f"NLP task accuracy: absent: {reason}." in report
    assert f"- nlp_task_accuracy: absent: {reason}" in report


def test_nlp_task_items_are_counted_in_the_report(workspace):
    set_params(workspace, "evaluate", judge="none")
    assert run_evaluate() == 0
    metrics = json.loads(Path("outputs/evaluate/metrics.json").read_text())
    assert metrics["nlp_task_items"] == 6 and "absent" not in metrics
    assert metrics["sources"]["nlp_task_accuracy"] == "proxy"
    assert "NLP task accuracy: 6 items." in Path("outputs/evaluate/report.md").read_text()
