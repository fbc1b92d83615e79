"""Issue 22's acceptance: a team's own data run as docs/OWN_DATA.md ("Bring your own data") says.

The outside data set of tests/fixtures/byod/, whose log now repeats every labeled prompt earlier
(another account asked the same the day before; the demonstrations and rankings were written for
the later copy), the team's models in `models/` (the default `inputs.models`), the demo model never
pulled, no NLP task (`inputs.nlp_task: none`) and no judge (`evaluate.judge: none`). The page's
steps: the demo's model pointer removed (`dvc remove models/demo-base.dvc`), plain `dvc repro`,
which stops for the labelers' rankings, answered, `dvc repro` again. Then: no label lost to
deduplication (the ingest report's `labels`, SFT's and the label stage's counts), no demo pointer
needed, and the figures of the absent inputs absent, saying why (metrics, report, MLflow).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from ruamel.yaml import YAML

from tests.workspace import git, make_workspace, run
from tests.e2e.test_demo_pointer import own_data_step
from tests.e2e.test_own_data import answer_rank_tasks

pytestmark = [pytest.mark.e2e, pytest.mark.acceptance]  # ~6 min on 2 busy cores: make test-acceptance

EARLIER = "byod/log/2026-10-31.jsonl"  # sorts, and is dated, before the fixture's two partitions


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def repeat_labeled_prompts_earlier(ws: Path) -> dict[str, set[str]]:
    """An earlier partition holding a copy of every labeled prompt of the log, under another id and
    account: dedup keeping the earliest copy would drop every label. The labeled ids per kind."""
    log = pd.concat([pd.read_parquet(ws / "byod/log/2026-11-01.parquet"),
                     pd.read_json(ws / "byod/log/2026-11-02.jsonl", lines=True, dtype=False)])
    labeled = {"demonstration": {d["prompt_id"] for d in _jsonl(ws / "byod/demonstrations.jsonl")},
               "ranking": {r["prompt_id"] for r in _jsonl(ws / "byod/rankings/rankings.jsonl")}}
    rows = log[log["request_id"].isin(labeled["demonstration"] | labeled["ranking"])]
    assert len(rows) == len(labeled["demonstration"] | labeled["ranking"])  # every label's prompt is logged
    copies = pd.DataFrame({"request_id": "early_" + rows["request_id"], "account": "early-" + rows["account"],
                           "input": rows["input"], "created_at": "2026-10-31T09:00:00Z", "channel": "api"})
    copies.to_json(ws / EARLIER, orient="records", lines=True, force_ascii=False)
    return labeled


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> tuple[Path, dict[str, set[str]], list[str]]:
    """The workspace after docs/OWN_DATA.md's steps and both `dvc repro` runs; the labeled prompt ids
    per kind and what each `dvc repro` printed."""
    ws = make_workspace(tmp_path_factory.mktemp("team") / "ws", byod=True, models="models")
    labeled = repeat_labeled_prompts_earlier(ws)
    y = YAML()
    params = y.load((ws / "params.yaml").read_text())
    params["inputs"].update(nlp_task="none", judgements="none")  # docs/OWN_DATA.md: an input you do not have
    params["evaluate"]["judge"] = "none"
    with open(ws / "params.yaml", "w") as f:
        y.dump(params, f)
    run(ws, *own_data_step())  # docs/OWN_DATA.md, "Your model": the demo's model pointer
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "our log, models and params; no demo model")

    outputs = []
    first = run(ws, "dvc", "repro", check=False)  # stops for the labelers' rankings
    outputs.append(first.stdout + first.stderr)
    assert first.returncode != 0 and "awaiting labels" in outputs[-1], outputs[-1][-3000:]
    assert json.loads((ws / "labels/outbox/label.waiting.json").read_text())["kind"] == "ranking"
    assert answer_rank_tasks(ws) > 0
    second = run(ws, "dvc", "repro", check=False)
    outputs.append(second.stdout + second.stderr)
    assert second.returncode == 0, outputs[-1][-4000:]
    return ws, labeled, outputs


def test_no_demo_pointer_needed(team):
    ws, _, outputs = team
    assert not (ws / "models/demo-base.dvc").exists() and not (ws / "models/demo-base").exists()
    assert not any("demo-base" in out for out in outputs)
    assert (ws / "outputs/base/model/config.json").read_text() == (ws / "models/support-llama/config.json").read_text()
    assert json.loads((ws / "outputs/evaluate/registry.json").read_text())["candidate_version"] == 1


def test_no_label_lost_to_deduplication(team):
    ws, copied, _ = team
    report = json.loads((ws / "outputs/ingest/report.json").read_text())
    all_copied = copied["demonstration"] | copied["ranking"]
    n_copies = len(all_copied)
    assert report["accounting_ok"] and report["rows_by_partition"][EARLIER] == n_copies
    quarantine = pd.read_json(ws / "outputs/ingest/quarantine.jsonl", lines=True, dtype=False)
    assert quarantine["prompt_id"].str.startswith("early_").sum() == n_copies  # every earlier copy removed
    kept = set(pd.read_json(ws / "outputs/ingest/prompts.jsonl", lines=True, dtype=False)["prompt_id"])
    # now: the fixture's labels and the rankings the labelers answered the tasks with (no earlier copy)
    labeled = {"demonstration": {d["prompt_id"] for d in _jsonl(ws / "byod/demonstrations.jsonl")},
               "ranking": {r["prompt_id"] for f in sorted((ws / "byod/rankings").glob("*.jsonl")) for r in _jsonl(f)}}
    assert labeled["ranking"] > copied["ranking"]
    for kind, ids in labeled.items():
        went = report["labels"][kind]
        assert "duplicate" not in went["dropped"], went
        assert went["prompts"] == len(ids) and went["not_in_log"] == 0
        assert went["kept"] == len(ids & kept) and went["kept"] + sum(went["dropped"].values()) == len(ids)
        assert went["kept_over_earlier_copy"] == len(ids & kept & all_copied) > 0.9 * len(copied[kind])

    # the later stages agree: SFT finds no demonstration whose prompt ingestion left out (beyond those
    # the report counts as dropped), the label stage rejects no ranking for a removed prompt
    sft = json.loads((ws / "outputs/sft/metrics.json").read_text())["data"]
    assert sft["demonstrations_unused"]["prompt_not_kept"] == sum(report["labels"]["demonstration"]["dropped"].values())
    assert sft["demonstrations"] == len(_jsonl(ws / "byod/demonstrations.jsonl"))
    label = json.loads((ws / "outputs/label/metrics.json").read_text())
    assert not any(k.startswith("prompt_removed") for k in label["rejected"]), label["rejected"]
    assert label["rankings"]["used"] + label["rejected"]["total"] == label["rankings"]["read"]


def test_figures_of_absent_inputs_absent_saying_why(team):
    from mlflow import MlflowClient

    ws, _, _ = team
    why = "no NLP task given (inputs.nlp_task: none, no *.jsonl file in it)"
    base = json.loads((ws / "outputs/base/metrics.json").read_text())
    assert "nlp_task" not in base and base["absent"] == {"nlp_task/accuracy": why}
    metrics = json.loads((ws / "outputs/evaluate/metrics.json").read_text())
    assert metrics["absent"] == {"nlp_task_accuracy": why} and metrics["sources"]["nlp_task_accuracy"] == "absent"
    for model in ("base", "sft", "ppo", "ppo_noptx"):
        assert "nlp_task_accuracy" not in metrics[model] and metrics[model]["corpus_loss"] > 0
    assert metrics["judge"] == "none" and "win_rate" not in metrics  # no judge: no win rates either
    report = (ws / "outputs/evaluate/report.md").read_text()
    assert f"NLP task accuracy: absent: {why}." in report
    assert "No win rates: none: evaluate.judge is none (no judge)." in report
    proxy = report.split("## Proxy figures per model")[1].split("\n\n")[1].splitlines()[2:]
    assert [row.rsplit(" | ", 1)[1] for row in proxy[:4]] == ["absent |"] * 4

    # MLflow: a tag saying why, no metric standing in for it
    client = MlflowClient(tracking_uri=f"sqlite:///{ws / 'mlflow/mlflow.db'}")
    [exp] = [e for e in client.search_experiments() if e.name == "instructgpt"]
    for stage, figure in (("base", "nlp_task/accuracy"), ("evaluate", "nlp_task_accuracy")):
        runs = client.search_runs([exp.experiment_id], f"tags.stage = '{stage}' and attributes.status = 'FINISHED'")
        assert runs, stage
        assert runs[0].data.tags[f"absent/{figure}"] == why
        assert not [k for k in runs[0].data.metrics if "nlp_task" in k], runs[0].data.metrics
