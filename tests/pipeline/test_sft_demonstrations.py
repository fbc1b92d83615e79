"""The sft stage on what a team brings: SFT prompts without a demonstration become tasks for people
and SFT trains on the rest; demonstrations it does not use are counted per reason; only "no
training pair at all" stops it, with a message that says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.shell.run import EXIT_GATE, main
from tests.workspace import stage_dir, write_project

TOPICS = ["owls", "rivers", "volcanoes", "bread", "chess", "tides", "comets", "bees", "glass", "maps", "kites", "snow"]


def _prompt(i: int, dataset: str, split: str) -> dict:
    return {"prompt_id": f"p{i}", "user_id": f"u{i}", "text": f"explain how {TOPICS[i]} work .",
            "timestamp": "2024-01-01T00:00:00Z", "source": "api", "style": "plain", "dataset": dataset, "split": split}


# p0-p5 SFT train, p6 SFT valid, p7 SFT test, p8 RM, p9 PPO; p10 in the log but removed by ingestion.
KEPT = [_prompt(i, "sft", "train") for i in range(6)] + [
    _prompt(6, "sft", "valid"), _prompt(7, "sft", "test"), _prompt(8, "rm", "train"), _prompt(9, "ppo", "train")]


def _demo(i: int) -> dict:
    return {"prompt_id": f"p{i}", "labeler_id": "ann", "response": f"{TOPICS[i]} work well ."}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project with the repository's dvc.yaml, a raw log under foreign column names, the ingest
    stage's prompts and a tiny base model; demonstrations in a directory (JSONL + Parquet)."""
    from instructgpt.models import ModelConfig, build_causal_lm, save_model
    from instructgpt.tokenizer import train_tokenizer

    params = {
        "inputs": {"prompts": "data/log", "demonstrations": "data/demos", "corpus": "data/corpus.jsonl",
                   "nlp_task": "data/nlp_task.jsonl", "models": "models", "rankings": "labels/rankings",
                   "judgements": "labels/judgements"},
        "ingest": {"columns": {"prompt_id": "request_id", "text": "input"}},
        "sft": {"epochs": 1, "batch_size": 4, "max_len": 64, "warmup": 1, "show_progress": False},
    }
    write_project(tmp_path, params)
    raw = [{"request_id": p["prompt_id"], "user_id": p["user_id"], "input": p["text"]} for p in KEPT]
    raw.append({"request_id": "p10", "user_id": "u10", "input": "my email is a@b.example ."})
    (tmp_path / "data/log").mkdir(parents=True)
    pd.DataFrame(raw[:5]).to_parquet(tmp_path / "data/log/day1.parquet")
    pd.DataFrame(raw[5:]).to_json(tmp_path / "data/log/day2.jsonl", orient="records", lines=True)
    (tmp_path / "outputs/ingest").mkdir(parents=True)
    pd.DataFrame(KEPT).to_json(tmp_path / "outputs/ingest/prompts.jsonl", orient="records", lines=True)
    (tmp_path / "data/demos").mkdir()
    tokenizer = train_tokenizer([p["text"] + " " + _demo(i)["response"] for i, p in enumerate(KEPT)] * 5, vocab_size=300)
    cfg = ModelConfig(arch="gpt2", n_layer=1, n_embd=16, n_head=2, n_positions=128, dropout=0.0)
    save_model(build_causal_lm(cfg, tokenizer, seed=0), tokenizer, tmp_path / "outputs/base/model")
    with stage_dir(tmp_path, monkeypatch):
        yield tmp_path


def _write_demos(project: Path, ids: list[int]) -> None:
    demos = [_demo(i) for i in ids]
    pd.DataFrame(demos[:2]).to_parquet(project / "data/demos/a.parquet")
    (project / "data/demos/b.jsonl").write_text("".join(json.dumps(d) + "\n" for d in demos[2:]))


def _run_sft() -> int:
    from tasks.sft import body

    return main("sft", body)


def test_prompts_without_demonstration_become_tasks_and_sft_trains_on_the_rest(project):
    # demonstrations for p0, p2, p3 (train), p6 (valid); p1, p4, p5 lack one; p7-p10 are not SFT's
    _write_demos(project, [0, 2, 3, 6, 7, 8, 9, 10])
    assert _run_sft() == 0
    metrics = json.loads((project / "outputs/sft/metrics.json").read_text())["data"]
    assert (metrics["train_pairs"], metrics["valid_pairs"]) == (3, 1)
    assert metrics["sft_prompts"] == 7 and metrics["sft_prompts_without_demonstration"] == 3
    assert metrics["demonstrations"] == 8 and metrics["demonstrations_used"] == 4
    assert metrics["demonstrations_unused"] == {"dataset_rm": 1, "dataset_ppo": 1, "test_split": 1, "prompt_not_kept": 1}
    tasks = [json.loads(line) for line in (project / "labels/outbox/demo_tasks.jsonl").read_text().splitlines()]
    assert [t["prompt_id"] for t in tasks] == ["p1", "p4", "p5"]
    assert tasks[0]["prompt"] == "explain how rivers work ." and set(tasks[0]) == {"task_id", "prompt_id", "prompt"}
    assert len({t["task_id"] for t in tasks}) == 3
    assert (project / "outputs/sft/model/config.json").exists()

    # every SFT prompt answered: the task file goes, nothing is left to do
    _write_demos(project, [0, 1, 2, 3, 4, 5, 6])
    assert _run_sft() == 0
    assert not (project / "labels/outbox/demo_tasks.jsonl").exists()
    assert json.loads((project / "outputs/sft/metrics.json").read_text())["data"]["train_pairs"] == 6


def test_no_training_pair_fails_the_gate_saying_what_to_do(project, capsys):
    _write_demos(project, [6, 8, 9])  # a valid-split demonstration only
    assert _run_sft() == EXIT_GATE
    err = capsys.readouterr().err
    assert "SFT has no training pairs" in err and "labels/outbox/demo_tasks.jsonl" in err
    assert "inputs.demonstrations" in err
    tasks = (project / "labels/outbox/demo_tasks.jsonl").read_text().splitlines()
    assert len(tasks) == 6  # p0-p5, exported although the stage stopped
    assert not (project / "outputs/sft/model").exists()


def test_a_demonstration_of_an_unknown_prompt_still_fails_and_names_its_line(project, capsys):
    _write_demos(project, [0, 1, 2])
    with open(project / "data/demos/b.jsonl", "a") as f:
        f.write(json.dumps({"prompt_id": "nowhere", "labeler_id": "ann", "response": "hi"}) + "\n")
    assert _run_sft() == EXIT_GATE
    captured = capsys.readouterr()
    assert "demonstrations.prompt_known" in captured.err
    assert "data/demos/b.jsonl:2 (prompt_id 'nowhere')" in captured.out
