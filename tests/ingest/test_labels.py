"""`ingest.datasets.assign: labels` and the readers of what people already labeled: demonstrations
(file or directory, JSONL/Parquet) and the prompt ids of human rankings (JSONL, Label Studio)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from instructgpt.config import ConfigError, InputError, from_dict
from instructgpt.ingest import IngestConfig, ingest
from instructgpt.ingest.labeled import Labeled, labeled_prompt_ids, read_demonstrations

from tests.helpers import write_jsonl

from .conftest import row

TOPICS = ["owls", "rivers", "volcanoes", "bread", "chess", "tides", "comets", "bees", "glass", "maps"]


def log(tmp_path) -> Path:
    """Ten API prompts of ten users and two labeler-written prompts."""
    rows = [row(f"p{i}", f"u{i}", text=f"Explain how {t} work, briefly.") for i, t in enumerate(TOPICS)]
    rows += [row("l0", "labeler-1", text="Write a limerick about a tired cat.", source="labeler"),
             row("l1", "labeler-2", text="List five uses of a paperclip.", source="labeler")]
    return write_jsonl(tmp_path / "prompts.jsonl", rows)


def labels_cfg(**shares) -> IngestConfig:
    return from_dict(IngestConfig, {"datasets": {"assign": "labels", **shares}}, "ingest")


def test_labels_decide_first_then_the_shares(tmp_path):
    labeled = Labeled(demonstrated=frozenset({"p0", "p1", "l1"}), ranked=frozenset({"p1", "p2", "p3", "nowhere"}))
    res = ingest(log(tmp_path), labels_cfg(sft=0, rm=0, ppo=1), progress=False, labeled=labeled)
    ds = dict(zip(res.kept["prompt_id"], res.kept["dataset"]))
    assert ds["p0"] == "sft" and ds["l1"] == "sft"  # demonstration
    assert ds["p1"] == "sft"  # demonstration and ranking
    assert ds["p2"] == "rm" and ds["p3"] == "rm"  # ranking only
    assert all(ds[f"p{i}"] == "ppo" for i in range(4, 10))  # unlabeled API prompts: share 0/0/1
    assert ds["l0"] == "rm"  # unlabeled labeler prompt: PPO takes API prompts only
    assert res.report["datasets_assign"] == "labels"
    assert res.report["assigned_by_reason"] == {
        "share": 6, "demonstration": 2, "demonstration_and_ranking": 1, "ranking": 2, "labeler_prompt_to_rm": 1}


def test_labels_mode_rest_by_nonzero_shares(tmp_path):
    labeled = Labeled(demonstrated=frozenset({"p0"}), ranked=frozenset())
    res = ingest(log(tmp_path), labels_cfg(sft=0.5, rm=0.5, ppo=0), progress=False, labeled=labeled)
    ds = dict(zip(res.kept["prompt_id"], res.kept["dataset"]))
    assert ds["p0"] == "sft"
    assert "ppo" not in set(ds.values()) and {"sft", "rm"} <= set(ds.values())
    assert res.report["assigned_by_reason"]["share"] == 11


def test_share_mode_is_unchanged_by_labels(tmp_path):
    path = log(tmp_path)
    share = ingest(path, IngestConfig(), progress=False)
    with_labels = ingest(path, IngestConfig(), progress=False,
                         labeled=Labeled(frozenset({"p0", "p1"}), frozenset({"p2"})))
    assert share.kept.equals(with_labels.kept)
    assert share.report["assigned_by_reason"]["share"] == 12
    with pytest.raises(ConfigError, match="needs the labeled prompt ids"):
        ingest(path, labels_cfg(), progress=False)


@pytest.mark.parametrize(
    "datasets, words",
    [
        ({"sft": 0, "rm": 0, "ppo": 1}, "assign: labels"),  # share mode: SFT and RM would get nothing
        ({"assign": "labels", "sft": 0, "rm": 0, "ppo": 0}, "sum to 1"),
        ({"assign": "labels", "sft": -0.5, "rm": 0.5, "ppo": 1}, ">= 0"),
        ({"assign": "labels", "sft": float("nan"), "rm": 0, "ppo": 1}, "sum to 1"),
        ({"assign": "humans"}, "ingest.datasets.assign"),
    ],
)
def test_bad_dataset_params(datasets, words):
    with pytest.raises(ConfigError, match=words):
        from_dict(IngestConfig, {"datasets": datasets}, "ingest")


def test_labels_mode_accepts_zero_shares():
    cfg = labels_cfg(sft=0, rm=0, ppo=1)
    assert (cfg.datasets.assign, cfg.datasets.ppo) == ("labels", 1.0)


def test_ranking_ids_from_jsonl_and_label_studio_exports(tmp_path):
    d = tmp_path / "rankings"
    d.mkdir()
    (d / "README.md").write_text("# rankings\n")
    ranking = {"responses": ["a", "b"], "ranking": [1, 0], "labeler_id": "ann"}
    (d / "batch1.jsonl").write_text(json.dumps({"prompt_id": "p1", **ranking}) + "\n\n"
                                    + json.dumps({"prompt_id": "p2", **ranking}) + "\n")
    export = [
        {"id": 1, "data": {"prompt_id": "p3", "responses": ["a", "b"]},
         "annotations": [{"completed_by": 1, "result": [{"value": {"ranker": {}}}]}]},
        {"id": 2, "data": {"prompt_id": "p4"}, "annotations": []},  # nobody answered
        {"id": 3, "data": {"prompt_id": "p5"}, "annotations": [{"was_cancelled": True, "result": [{"x": 1}]}]},
    ]
    (d / "project-1-export.json").write_text(json.dumps(export))
    assert labeled_prompt_ids(d) == {"p1", "p2", "p3"}


def test_malformed_ranking_files_name_file_and_line(tmp_path):
    d = tmp_path / "rankings"
    d.mkdir()
    bad = d / "r.jsonl"
    bad.write_text(json.dumps({"prompt_id": "p1"}) + "\n" + json.dumps({"prompt": "no id"}) + "\n")
    with pytest.raises(InputError, match=rf"{bad}:2: field 'prompt_id'"):
        labeled_prompt_ids(d)
    bad.unlink()
    (d / "export.json").write_text(json.dumps({"tasks": []}))
    with pytest.raises(InputError, match="a list of tasks"):
        labeled_prompt_ids(d)


def test_demonstrations_from_a_directory_of_jsonl_and_parquet(tmp_path):
    d = tmp_path / "demos"
    d.mkdir()
    (d / "b.jsonl").write_text(json.dumps({"prompt_id": "p2", "labeler_id": "l2", "response": "two", "extra": 1}) + "\n")
    pd.DataFrame([{"prompt_id": "p1", "labeler_id": "l1", "response": "one"}]).to_parquet(d / "a.parquet")
    (d / ".gitkeep").write_text("")
    demos = read_demonstrations(d)
    assert demos[["prompt_id", "labeler_id", "response"]].values.tolist() == [["p1", "l1", "one"], ["p2", "l2", "two"]]
    assert list(demos["where"]) == [f"{d / 'a.parquet'}:1", f"{d / 'b.jsonl'}:1"]


@pytest.mark.parametrize(
    "line, words",
    [
        ({"prompt_id": "p", "labeler_id": "l"}, "field 'response' is missing or null"),
        ({"prompt_id": "p", "labeler_id": 7, "response": "r"}, "field 'labeler_id' is a int"),
        (["p", "l", "r"], "must be a JSON object"),
        ("{not json", "not a JSON object"),
    ],
)
def test_malformed_demonstration_names_file_line_and_field(tmp_path, line, words):
    path = tmp_path / "demonstrations.jsonl"
    good = json.dumps({"prompt_id": "p0", "labeler_id": "l0", "response": "fine"})
    path.write_text(good + "\n" + (line if isinstance(line, str) else json.dumps(line)) + "\n")
    with pytest.raises(InputError, match=rf"{path}:2: .*{words}"):
        read_demonstrations(path)


def _duplicated_log(tmp_path) -> Path:
    """Requests repeated in the log, the labels written for a later copy (issue 22: a team lost
    103 of 148 demonstrations to dedup keeping the earliest copy)."""
    day = "2022-01-0{}T00:00:00Z".format
    return write_jsonl(tmp_path / "prompts.jsonl", [
        row("a1", "u1", text="Explain how owls hunt at night.", ts=day(1)),
        row("a2", "u2", text="explain how owls hunt at night.", ts=day(2)),  # demonstration
        row("b1", "u3", text="Write a poem about the sea, please.", ts=day(1)),
        row("b2", "u4", text="Write a poem about the sea, please.", ts=day(2)),  # ranking
        row("b3", "u5", text="Write a poem about the sea, please.", ts=day(3)),  # demonstration and ranking
        row("c1", "u6", text="List five uses of a paperclip.", ts=day(1)),  # demonstration
        row("c2", "u7", text="List five uses of a paperclip.", ts=day(2)),  # demonstration, as many labels
        row("d1", "u8", text="Mail me at ann@example.com about the owls.", ts=day(1)),  # demonstration, PII
        row("e1", "u9", text="Name three rivers in Europe.", ts=day(1)),
    ])


DUPLICATED_LABELS = Labeled(demonstrated=frozenset({"a2", "b3", "c1", "c2", "d1", "gone"}),
                            ranked=frozenset({"b2", "b3"}))


@pytest.mark.parametrize("cfg", [IngestConfig(), labels_cfg(sft=0, rm=0, ppo=1)], ids=["share", "labels"])
def test_dedup_keeps_the_labeled_copy_and_counts_every_label(tmp_path, cfg):
    res = ingest(_duplicated_log(tmp_path), cfg, progress=False, labeled=DUPLICATED_LABELS)
    assert sorted(res.kept["prompt_id"]) == ["a2", "b3", "c1", "e1"]  # most labels, then earliest
    dup = res.quarantine[res.quarantine["reason"] == "duplicate"].set_index("prompt_id")["detail"]
    assert dup.to_dict() == {"a1": "same normalised prefix as kept prompt a2",
                             "b1": "same normalised prefix as kept prompt b3",
                             "b2": "same normalised prefix as kept prompt b3",
                             "c2": "same normalised prefix as kept prompt c1"}
    assert res.report["labels"] == {
        "demonstration": {"prompts": 6, "kept": 3, "kept_over_earlier_copy": 2,
                          "dropped": {"duplicate": 1, "pii:EMAIL": 1}, "not_in_log": 1},
        "ranking": {"prompts": 2, "kept": 1, "kept_over_earlier_copy": 1,
                    "dropped": {"duplicate": 1}, "not_in_log": 0},
    }
    assert res.report["accounting_ok"] and res.report["deduplicated"] == 4


def test_dedup_without_labels_keeps_the_earliest(tmp_path):
    res = ingest(_duplicated_log(tmp_path), IngestConfig(), progress=False)
    assert sorted(res.kept["prompt_id"]) == ["a1", "b1", "c1", "e1"]
    assert "labels" not in res.report
