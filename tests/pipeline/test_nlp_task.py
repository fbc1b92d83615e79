"""A team without a public NLP task (issue 22): `inputs.nlp_task: none` (the project's directory
that holds no items) leaves the NLP task accuracy absent, with the reason, instead of the "0.0 %"
an empty file gave for every model; a malformed item file still stops the stage, naming the file,
the line and the field, before anything is trained or written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from instructgpt.config import InputError
from tasks import inputs
from tasks.shell.run import EXIT_CONFIG, main
from tests.core.conftest import model_dir, tiny_cfg, tokenizer  # noqa: F401 - fixtures
from tests.helpers import write_jsonl
from tests.workspace import REPO, stage_dir, write_project

ITEM = {"item_id": "q1", "context": "the cat", "choices": [" sat", " flew"], "answer": 0}


@pytest.fixture
def project(tmp_path, monkeypatch, model_dir):  # noqa: F811 - the fixture imported above
    """The repository's dvc.yaml and none/, a small corpus, a team model in models/, and the NLP
    task at data/nlp_task.jsonl (the test points inputs.nlp_task elsewhere as it needs)."""
    write_project(tmp_path, {
        "inputs": {"prompts": "data/log", "demonstrations": "data/demos", "corpus": "data/corpus.jsonl",
                   "nlp_task": "data/nlp_task.jsonl", "models": "models", "rankings": "labels/rankings",
                   "judgements": "none"},
        "base": {"model_path": "models/team-lm", "nlp_task_items": 3}})
    shutil.copytree(REPO / "none", tmp_path / "none")
    shutil.copytree(model_dir, tmp_path / "models/team-lm")
    write_jsonl(tmp_path / "data/corpus.jsonl", [{"doc_id": f"d{i}", "text": f"the cat sat on mat number {i} ."}
                                                 for i in range(40)])
    write_jsonl(tmp_path / "data/nlp_task.jsonl", [{**ITEM, "item_id": f"q{i}"} for i in range(5)])
    with stage_dir(tmp_path, monkeypatch):
        yield tmp_path


def _params(params: dict) -> None:
    Path("params.yaml").write_text(yaml.safe_dump(params))
    inputs._inputs_section.cache_clear()


def _set(section: str, **values) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    params[section].update(values)
    _params(params)


def _run_base() -> int:
    from tasks.base import body

    return main("base", body)


def test_the_shipped_none_holds_no_item_file():
    assert not list((REPO / "none").rglob("*.jsonl")) and (REPO / "none/README.md").exists()


def test_items_are_read_in_order_up_to_the_setting(project):
    task = inputs.nlp_task(3, "base.nlp_task_items")
    assert task.absent is None and [i["item_id"] for i in task.items] == ["q0", "q1", "q2"]
    # a directory: every *.jsonl under it in sorted path order; other and hidden files are not read
    write_jsonl(project / "task/b.jsonl", [{**ITEM, "item_id": "b"}])
    write_jsonl(project / "task/a/x.jsonl", [{**ITEM, "item_id": "a"}])
    write_jsonl(project / "task/.hidden.jsonl", ["not json"])
    (project / "task/README.md").write_text("our task\n")
    _set("inputs", nlp_task="task")
    assert [i["item_id"] for i in inputs.nlp_task(10, "base.nlp_task_items").items] == ["a", "b"]


@pytest.mark.parametrize("where, setting, reason", [
    ("none", 3, "no NLP task given (inputs.nlp_task: none, no *.jsonl file in it)"),
    ("empty.jsonl", 3, "no NLP task given (inputs.nlp_task: empty.jsonl holds no items)"),
    ("data/nlp_task.jsonl", 0, "not measured (base.nlp_task_items is 0)"),
])
def test_no_items_is_absent_with_the_reason(project, where, setting, reason):
    Path("empty.jsonl").write_text("")
    _set("inputs", nlp_task=where)
    task = inputs.nlp_task(setting, "base.nlp_task_items")
    assert task.items == [] and task.absent == reason


@pytest.mark.parametrize("line, words", [
    ("{not json", "not a JSON object on one line"),
    ([1, 2], "a JSON list, not an object"),
    ({**ITEM, "context": None}, "field 'context' is missing or null"),
    ({k: v for k, v in ITEM.items() if k != "item_id"}, "field 'item_id' is missing or null"),
    ({**ITEM, "choices": " sat"}, "field 'choices' is not a list of at least two strings"),
    ({**ITEM, "choices": [" sat"]}, "field 'choices' is not a list of at least two strings"),
    ({**ITEM, "answer": 2}, "field 'answer' is 2, not an index into the 2 choices"),
    ({**ITEM, "answer": "0"}, "field 'answer' is '0', not an index"),
    ({**ITEM, "answer": True}, "field 'answer' is True, not an index"),
])
def test_a_malformed_item_names_file_line_and_field(project, line, words):
    path = write_jsonl(project / "data/nlp_task.jsonl", [ITEM, line])
    with pytest.raises(InputError, match=rf"^{path.relative_to(project)}:2: .*{words.replace('(', '.')}"):
        inputs.nlp_task(3, "base.nlp_task_items")


def test_a_missing_path_says_how_to_give_none(project):
    _set("inputs", nlp_task="data/nlp.jsonl")
    with pytest.raises(InputError, match="data/nlp.jsonl does not exist .*`none` when you have no NLP task"):
        inputs.nlp_task(3, "base.nlp_task_items")
    _set("inputs", nlp_task=None)
    with pytest.raises(Exception, match=r"lacks \['nlp_task'\].*`nlp_task: none`"):
        inputs.raw("nlp_task")


def test_base_stage_without_nlp_task_reports_the_accuracy_absent(project, capsys):
    assert _run_base() == 0
    scored = json.loads(Path("outputs/base/metrics.json").read_text())
    assert 0 <= scored["nlp_task"]["accuracy"] <= 1 and scored["nlp_task"]["items"] == 3
    assert "absent" not in scored

    _set("inputs", nlp_task="none")
    assert _run_base() == 0
    metrics = json.loads(Path("outputs/base/metrics.json").read_text())
    assert "nlp_task" not in metrics and metrics["heldout"]["loss"] > 0
    assert metrics["absent"] == {"nlp_task/accuracy": "no NLP task given (inputs.nlp_task: none, no *.jsonl file in it)"}
    assert "NLP task accuracy absent: no NLP task given" in capsys.readouterr().out


def test_base_stage_stops_on_a_malformed_item_before_writing_anything(project, capsys):
    write_jsonl(project / "data/nlp_task.jsonl", [ITEM, {**ITEM, "answer": 5}])
    assert _run_base() == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "bad input: data/nlp_task.jsonl:2: field 'answer' is 5, not an index into the 2 choices" in err
    assert not Path("outputs/base").exists()


def test_the_flow_artifact_shows_the_reason_for_an_absent_figure():
    from flows.artifacts import stage_markdown
    from flows.repro import StageOutcome, flatten

    why = "no NLP task given (inputs.nlp_task: none, no *.jsonl file in it)"
    metrics = flatten({"valid": {"loss": 2.5}, "absent": {"nlp_task/accuracy": why}})
    text = stage_markdown(StageOutcome("base", True, 1.0, metrics, None, None), None)
    assert "| valid/loss | 2.5 |" in text and f"| nlp_task/accuracy | absent: {why} |" in text
