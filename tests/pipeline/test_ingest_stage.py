"""The ingest stage with `ingest.datasets.assign: labels`: it reads the demonstrations and, with
human labelers, the rankings directory, and sends labeled prompts to SFT and RM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tasks.shell.run import main
from tests.workspace import REPO, stage_dir

TOPICS = ["owls", "rivers", "volcanoes", "bread", "chess", "tides", "comets", "bees"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")  # params.yaml: each test's `_params`
    (tmp_path / "log").mkdir()
    rows = [{"prompt_id": f"p{i}", "user_id": f"u{i}", "text": f"explain how {t} work ."} for i, t in enumerate(TOPICS)]
    pd.DataFrame(rows).to_json(tmp_path / "log/day1.jsonl", orient="records", lines=True)
    (tmp_path / "demonstrations.jsonl").write_text(
        "".join(json.dumps({"prompt_id": p, "labeler_id": "ann", "response": "ok ."}) + "\n" for p in ("p0", "p1")))
    rankings = tmp_path / "labels/rankings"
    rankings.mkdir(parents=True)
    (rankings / "README.md").write_text("# rankings\n")
    ranking = {"responses": ["a", "b"], "ranking": [0, 1], "labeler_id": "ann"}
    (rankings / "batch.jsonl").write_text(
        "".join(json.dumps({"prompt_id": p, **ranking}) + "\n" for p in ("p1", "p2", "p3")))
    with stage_dir(tmp_path, monkeypatch):
        yield tmp_path


def _params(project: Path, labelers: str) -> None:
    params = {
        "inputs": {"prompts": "log", "demonstrations": "demonstrations.jsonl", "corpus": "corpus.jsonl",
                   "nlp_task": "nlp_task.jsonl", "models": "models", "rankings": "labels/rankings",
                   "judgements": "labels/judgements"},
        # a test split every stage can use: ingest stops when a later stage would find none
        "ingest": {"datasets": {"assign": "labels", "sft": 0, "rm": 0, "ppo": 1},
                   "split": {"train": 0.5, "valid": 0.2, "test": 0.3}},
        "label": {"labelers": labelers},
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def _ingest() -> tuple[dict, dict]:
    from tasks.ingest import body

    assert main("ingest", body) == 0
    kept = pd.read_json("outputs/ingest/prompts.jsonl", lines=True, dtype=False)
    return dict(zip(kept["prompt_id"], kept["dataset"])), json.loads(Path("outputs/ingest/report.json").read_text())


def test_labels_mode_with_human_rankings(project):
    _params(project, "human")
    ds, report = _ingest()
    assert ds == {"p0": "sft", "p1": "sft", "p2": "rm", "p3": "rm", "p4": "ppo", "p5": "ppo", "p6": "ppo", "p7": "ppo"}
    assert report["assigned_by_reason"] == {"share": 4, "demonstration": 1, "demonstration_and_ranking": 1,
                                            "ranking": 2, "labeler_prompt_to_rm": 0}


def test_labels_mode_with_simulated_labelers_reads_no_rankings(project):
    _params(project, "simulated")  # inputs.rankings would be the world: no human ranking exists yet
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ingest"]["datasets"].update(ppo=0.5, rm=0.5)  # 0/0/1 would leave RM empty (next test)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    ds, report = _ingest()
    assert ds["p0"] == ds["p1"] == "sft" and report["assigned_by_reason"]["ranking"] == 0


def _set(project: Path, **datasets) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ingest"]["datasets"].update(datasets)
    (project / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.parametrize("case", ["no_rankings", "no_ppo_share"])
def test_ingest_stops_when_a_later_stage_would_find_its_dataset_empty(project, case, capsys):
    """Shares sft 0 / rm 0 / ppo 1 (tests/fixtures/byod/params.yaml) with demonstrations but no
    ranking yet send no prompt to RM: ingest says so, and what to change, before any training
    (it passed, and the label stage's gate failed after base and SFT had trained). A PPO share
    of 0 with share-assignment leaves PPO empty the same way."""
    from tasks.ingest import body

    _params(project, "human")
    if case == "no_rankings":
        for f in (project / "labels/rankings").glob("*.jsonl"):
            f.unlink()
        stage, setting = "label", "ingest.datasets.rm (now 0"
    else:
        _set(project, assign="share", sft=0.5, rm=0.5, ppo=0)
        stage, setting = "ppo", "ingest.datasets.ppo (now 0"
    assert main("ingest", body) == 2  # a config error: not retried, nothing trained
    err = capsys.readouterr().err
    [line] = [ln for ln in err.splitlines() if ln.startswith("- ")]  # the one starved stage
    assert line.startswith(f"- {stage}: ") and setting in line, err
    assert not Path("outputs/ingest/prompts.jsonl").exists()  # nothing written


@pytest.mark.parametrize("assign", ["labels", "share"])
def test_labels_survive_earlier_duplicates(project, assign):
    """A day-0 partition repeats p0-p3 (labeled in the fixture) earlier, under other ids and users:
    dedup keeps the labeled copies, in either assign mode, and the report counts every label."""
    earlier = [{"prompt_id": f"e{i}", "user_id": f"v{i}", "text": f"Explain how {t} work ."}
               for i, t in enumerate(TOPICS[:4])]
    pd.DataFrame(earlier).to_json(project / "log/day0.jsonl", orient="records", lines=True)
    _params(project, "human")
    if assign == "share":
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["ingest"]["datasets"] = {"assign": "share", "sft": 0.3, "rm": 0.5, "ppo": 0.2}
        (project / "params.yaml").write_text(yaml.safe_dump(params))
    ds, report = _ingest()
    assert sorted(ds) == [f"p{i}" for i in range(8)]  # no e*: each is an earlier copy of a labeled prompt
    assert report["deduplicated"] == 4
    assert report["labels"] == {
        "demonstration": {"prompts": 2, "kept": 2, "kept_over_earlier_copy": 2, "dropped": {}, "not_in_log": 0},
        "ranking": {"prompts": 3, "kept": 3, "kept_over_earlier_copy": 3, "dropped": {}, "not_in_log": 0},
    }
    quarantine = pd.read_json("outputs/ingest/quarantine.jsonl", lines=True, dtype=False)
    assert sorted(quarantine["prompt_id"]) == ["e0", "e1", "e2", "e3"]
    assert set(quarantine["reason"]) == {"duplicate"}
