"""Reading rankings: plain JSONL and Label Studio exports, every bad line reported."""

from __future__ import annotations

import json

from instructgpt.labeling.formats import read_rankings, task_id
from tests.helpers import write_jsonl

GOOD = {"prompt_id": "p0000", "responses": ["a", "b", "c"], "ranking": [2, 0, 1], "labeler_id": "alice"}


def test_task_id_is_stable_and_depends_on_prompt_and_responses_in_order():
    tid = task_id("p1", ["a", "b"])
    assert tid == task_id("p1", ["a", "b"]) and len(tid) == 16
    assert len({tid, task_id("p1", ["b", "a"]), task_id("p2", ["a", "b"]), task_id("p1", ["a", "b", "c"])}) == 4


def test_jsonl_rankings_are_read_from_every_file_and_bad_lines_named(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [GOOD, {**GOOD, "labeler_id": "bob", "task_id": "t1"}])
    bad = tmp_path / "b.jsonl"
    bad.write_text("\n".join([
        json.dumps(GOOD),
        "{not json",
        json.dumps({k: v for k, v in GOOD.items() if k != "ranking"}),
        json.dumps({**GOOD, "ranking": ["0", "1", "2"]}),
        json.dumps({**GOOD, "responses": "abc"}),
        json.dumps({**GOOD, "labeler_id": ""}),
        json.dumps([1, 2]),
    ]) + "\n")
    (tmp_path / "README.md").write_text("# not read\n")
    records, rejected = read_rankings(tmp_path)
    assert [(r["_source"]["file"].rsplit("/", 1)[1], r["_source"]["line"]) for r in records] == [
        ("a.jsonl", 1), ("a.jsonl", 2), ("b.jsonl", 1)]
    assert records[1]["task_id"] == "t1" and records[0]["ranking"] == [2, 0, 1]
    assert all(r["reason"] == "malformed" for r in rejected)
    assert [(r["line"], r.get("field")) for r in rejected] == [
        (2, None), (3, "ranking"), (4, "ranking"), (5, "responses"), (6, "labeler_id"), (7, "(line)")]
    assert rejected[1]["detail"].endswith("b.jsonl:3: field 'ranking' is missing")
    assert "not a JSON object" in rejected[0]["detail"] and rejected[0]["file"].endswith("b.jsonl")


def ls_task(task_pk, data, annotations):
    return {"id": task_pk, "data": data, "annotations": annotations}


def ranker(ids, name="rank"):
    return [{"from_name": name, "to_name": "responses", "type": "ranker", "value": {"ranker": {name: ids}}}]


def test_label_studio_export_gives_one_ranking_per_annotation(tmp_path):
    data = {"task_id": task_id("p0001", ["x", "y", "z"]), "prompt_id": "p0001", "prompt": "q",
            "responses": ["x", "y", "z"], "items": []}
    export = [
        ls_task(5, data, [{"completed_by": 2, "result": ranker(["r2", "r0", "r1"])},
                          {"completed_by": {"id": 3, "email": "b@x"}, "result": ranker(["r0", "r1", "r2"])},
                          {"completed_by": 4, "result": [], "was_cancelled": True},
                          {"completed_by": 4, "result": [{"type": "choices", "value": {"choices": ["a"]}}]},
                          {"completed_by": 4, "result": ranker(["r0", "r9", "r1"])}]),
        ls_task(6, {**data, "responses": "xyz"}, [{"completed_by": 2, "result": ranker(["r0"])}]),
        "not a task",
    ]
    (tmp_path / "label_studio.json").write_text(json.dumps(export))
    records, rejected = read_rankings(tmp_path)
    assert [(r["labeler_id"], r["ranking"]) for r in records] == [("label-studio:2", [2, 0, 1]),
                                                                  ("label-studio:3", [0, 1, 2])]
    assert records[0]["task_id"] == data["task_id"] and records[0]["prompt_id"] == "p0001"
    assert records[0]["_source"]["where"] == "task 0 (Label Studio id 5), annotation 0"
    assert [(r["reason"], r.get("field")) for r in rejected] == [
        ("cancelled", None), ("malformed", "result"), ("malformed", "result"), ("malformed", "responses"),
        ("malformed", None)]
    assert "annotation 4" in rejected[2]["detail"] and "['r9']" in rejected[2]["detail"]


def test_a_json_file_that_is_not_an_export_is_one_rejection(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"tasks": []}))
    (tmp_path / "y.json").write_text("{")
    records, rejected = read_rankings(tmp_path)
    assert records == [] and [r["reason"] for r in rejected] == ["malformed", "malformed"]
    assert "list of tasks" in rejected[0]["detail"]
