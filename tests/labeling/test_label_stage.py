"""The label stage with human labelers: exit 5 with the tasks exported, then train on the answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tasks.shell.run import EXIT_AWAITING, EXIT_GATE, main
from tests.helpers import write_jsonl
from tests.labeling.conftest import kept_prompts, quarantine
from tests.labeling.test_labelers import answer
from tests.workspace import repo_params, stage_dir, write_project


@pytest.fixture
def project(tmp_path, monkeypatch, model_dir):
    """A project with ingest outputs, a tiny SFT model and label.labelers: human."""
    params = repo_params()
    params["inputs"]["rankings"] = "labels/rankings"
    params["label"].update(labelers="human", k_min=2, k_max=3, overlap=0.3, max_prompts=None, max_new_tokens=6,
                           batch_size=32, wait=True)
    write_project(tmp_path, params)
    write_jsonl(tmp_path / "outputs/ingest/prompts.jsonl", kept_prompts().to_dict("records"))
    write_jsonl(tmp_path / "outputs/ingest/quarantine.jsonl", quarantine().to_dict("records"))
    shutil.copytree(model_dir, tmp_path / "outputs/sft/model")
    (tmp_path / "labels/rankings").mkdir(parents=True)
    with stage_dir(tmp_path, monkeypatch):
        yield tmp_path


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def set_param(project: Path, **label) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["label"].update(label)
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def test_human_labelers_stop_with_tasks_then_train_on_the_answers(project, capsys):
    from tasks.label import body

    assert main("label", body) == EXIT_AWAITING
    tasks = read(project / "labels/outbox/rank_tasks.jsonl")
    assert len(tasks) == 24 and not (project / "outputs/label").exists()
    marker = json.loads((project / "labels/outbox/label.waiting.json").read_text())
    assert marker["pending"] == 24 and marker["tasks_file"] == "labels/outbox/rank_tasks.jsonl"
    assert "label.wait: false" in capsys.readouterr().err

    # alice answers all, one of them badly; the overlap tasks still need a second labeler
    overlap = [t for t in tasks if t["labelers_needed"] == 2]
    rows = answer(tasks, "alice")
    rows.append({**rows[0], "ranking": [0, 0]})
    write_jsonl(project / "labels/rankings/alice.jsonl", rows)
    assert main("label", body) == EXIT_AWAITING
    assert [t["task_id"] for t in read(project / "labels/outbox/rank_tasks.jsonl")] == [t["task_id"] for t in overlap]
    rejected = read(project / "labels/outbox/rank_rejected.jsonl")
    assert [(r["reason"], r["line"]) for r in rejected] == [("not_permutation", 25)]

    # bob takes the overlap tasks: the stage trains, reports agreement and every rejection
    write_jsonl(project / "labels/rankings/bob.jsonl", answer(overlap, "bob", flip=True))
    assert main("label", body) == 0
    comparisons = read(project / "outputs/label/comparisons.jsonl")
    assert len(comparisons) == 24 + len(overlap)
    assert [r["reason"] for r in read(project / "outputs/label/rejected.jsonl")] == ["not_permutation"]
    metrics = json.loads((project / "outputs/label/metrics.json").read_text())
    assert metrics["tasks"]["pending"] == 0 and metrics["rejected"]["not_permutation"] == 1
    assert 0 <= metrics["agreement"]["overall"] < 1 and set(metrics["agreement"]["labeler"]) == {"alice", "bob"}
    assert read(project / "labels/outbox/rank_tasks.jsonl") == []
    assert not (project / "labels/outbox/label.waiting.json").exists()


def test_wait_false_trains_on_what_is_there(project, capsys):
    from tasks.label import body

    set_param(project, wait=False, overlap=1.0)
    assert main("label", body) == EXIT_GATE  # no ranking at all: nothing to train on, the gate says so
    tasks = read(project / "labels/outbox/rank_tasks.jsonl")
    assert len(tasks) == 24 and not (project / "outputs/label").exists()
    write_jsonl(project / "labels/rankings/alice.jsonl", answer(tasks[:5], "alice"))
    assert main("label", body) == 0
    metrics = json.loads((project / "outputs/label/metrics.json").read_text())
    assert metrics["tasks"]["pending"] == 24 and metrics["comparisons"] == 5
    assert "24 ranking task(s) still open" in capsys.readouterr().out
    assert len(read(project / "labels/outbox/rank_tasks.jsonl")) == 24
