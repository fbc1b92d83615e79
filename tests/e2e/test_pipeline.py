"""The whole pipeline on the tiny profile: real Prefect flow, real DVC, real MLflow store, real gates.

The tests of this module share one workspace and run in order: the first runs everything,
the next ones check skipping, partial re-runs, the MLflow store and a gate failure. That plain
`dvc repro` gives the same outputs as the flow is an acceptance test (test_flow_vs_repro.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import STAGES, cached_outs, run_flow
from tests.workspace import run

pytestmark = pytest.mark.e2e


def test_first_run_runs_every_stage(workspace, prefect_server, monkeypatch, audit_dir):
    monkeypatch.setenv("INSTRUCTGPT_AUDIT_OPENS", str(audit_dir))  # what each stage reads: see below
    outcomes = run_flow(workspace, monkeypatch)
    assert [o["stage"] for o in outcomes] == STAGES
    assert all(o["ran"] for o in outcomes), outcomes
    for path in ["outputs/ingest/prompts.jsonl", "outputs/base/model/config.json", "outputs/sft/model",
                 "outputs/label/comparisons.jsonl", "outputs/rm/model", "outputs/ppo/model",
                 "outputs/evaluate/report.md", "outputs/evaluate/plots/win_rates.png"]:
        assert (workspace / path).exists(), path
    # every gate passed and its report is on disk (the round-2 stages skipped: rounds.n is 1)
    for stage in [s for s in STAGES if not s.endswith("_round2")]:
        reports = list((workspace / "reports/gates").glob(f"{stage}.*.json"))
        assert reports and all(json.loads(r.read_text())["success"] for r in reports), stage
    # the report has the headline table and its images open
    report = (workspace / "outputs/evaluate/report.md").read_text()
    assert "| comparison | win rate | 95% CI | n | pending | judge | paper |" in report
    assert "| ppo vs base_fewshot |" in report and "| simulated |" in report and "| RM score (proxy) |" in report
    metrics = json.loads((workspace / "outputs/evaluate/metrics.json").read_text())
    assert metrics["judge"] == "simulated" and metrics["sources"]["rm_score"].startswith("proxy")
    # the best-of-N reference row: judged like a model, and the RM's pick scores above one SFT sample
    assert "| sft_best_of_n vs sft |" in report and "| ppo vs sft_best_of_n |" in report
    assert metrics["sft_best_of_n"]["rm_score"] > metrics["sft"]["rm_score"]
    assert 0.0 <= metrics["sft_best_of_n"]["gold_utility"] and "demonstration_over_sft" in metrics["rm"]
    import matplotlib.image

    for png in ["win_rates.png", "alignment_tax.png", "overoptimisation.png"]:
        image = matplotlib.image.imread(workspace / "outputs/evaluate/plots" / png)
        assert image.shape[0] > 100 and image.shape[1] > 100
    # PPO sampled its monitor prompts (validation split) at every step without reading the world;
    # evaluate judged them with the world's gold judgement: the over-optimisation curve
    import pandas as pd

    monitor = pd.read_json(workspace / "outputs/ppo/monitor.jsonl", lines=True)
    prompts = pd.read_json(workspace / "outputs/ingest/prompts.jsonl", lines=True)
    valid = prompts[(prompts["dataset"] == "ppo") & (prompts["split"] == "valid")]
    assert set(monitor["prompt_id"]) <= set(valid["prompt_id"]) and monitor["step"].nunique() >= 2
    curve = pd.read_csv(workspace / "outputs/evaluate/overoptimisation.csv")
    assert set(curve["model"]) == {"ppo", "ppo_noptx"} and curve["gold_utility"].notna().all()
    # rounds.n is 1: the round-2 stages ran as DVC stages but trained nothing, and said why
    marker = json.loads((workspace / "outputs/ppo_round2/model/ROUND.json").read_text())
    assert marker["trained"] is False and "rounds.n is 1" in marker["reason"]
    assert (workspace / "outputs/label_round2/comparisons.jsonl").read_text() == ""
    assert "win_rate/ppo_vs_ppo_round1" not in (workspace / "outputs/evaluate/metrics.json").read_text()
    # DVC agrees that everything is up to date
    assert "up to date" in run(workspace, "dvc", "status").stdout.lower()


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("audit")


# Read by every stage without being a dep: DVC's and git's own files (run tags), the params
# (declared per key), the stage's resumable checkpoints, the tracking store and gate reports.
NOT_LINEAGE = ["params.yaml", "dvc.yaml", "dvc.lock", ".dvc", ".git", "mlflow", "reports", "outputs/.checkpoints"]


def _as_source(path: str) -> str:
    """`pkg/__pycache__/mod.cpython-311.pyc` -> `pkg/mod.py`: an import reads its module's code."""
    import re

    return re.sub(r"__pycache__/([^/.]+)\.[^/]+\.pyc$", r"\1.py", path)


def test_stages_read_only_declared_files(workspace, audit_dir):
    """Every file a stage opened while the flow ran is a declared dep (or its own output)."""
    import re

    from tasks.params import dvc_stages
    from tasks.lineage import covered

    specs = dvc_stages(workspace / "dvc.yaml", workspace / "params.yaml")
    seen = set()
    for record in audit_dir.glob("*.txt"):
        stage = record.name.split(".")[0]
        seen.add(stage)
        spec = specs[stage]
        declared = [next(iter(d)) if isinstance(d, dict) else d
                    for key in ("deps", "outs", "metrics", "plots") for d in spec.get(key, [])]
        opened = {_as_source(re.sub(rf"^outputs/\.staging-{stage}-[^/]+/", "", p)) for p in record.read_text().split()}
        files = [p for p in opened if (workspace / p).is_file()]  # not folders, not probes that found nothing
        undeclared = sorted(p for p in files if not covered(p, declared + NOT_LINEAGE))
        assert not undeclared, f"stage {stage} read files dvc.yaml does not declare: {undeclared}"
        assert any(p.startswith("tasks/") for p in files)  # the record is not empty
    assert seen == set(STAGES)


def test_prefect_artifacts_per_stage(workspace, prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    import asyncio

    async def keys():
        async with get_client() as client:
            arts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"stage-{s.replace('_', '-')}" for s in STAGES]))
            )
            return {a.key: a.data for a in arts}

    found = asyncio.run(keys())
    assert set(found) == {f"stage-{s.replace('_', '-')}" for s in STAGES}
    assert "ran" in found["stage-sft"] and "Gate: passed" in found["stage-sft"]
    assert "MLflow run: http://127.0.0.1:5000/#/experiments/" in found["stage-rm"]


def test_mlflow_parent_and_children(workspace, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.chdir(workspace)
    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlflow/mlflow.db'}")
    client = MlflowClient()
    exp = client.get_experiment_by_name("instructgpt")
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    parents = client.search_runs([exp.experiment_id], "tags.mlflow.runName = 'pipeline'")
    assert len(parents) == 1
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    by_stage = {r.data.tags["stage"]: r for r in children}
    assert sorted(by_stage) == sorted(STAGES)
    for stage, r in by_stage.items():
        assert r.info.status == "FINISHED", stage
        assert r.data.params, stage
        assert r.data.metrics, stage
        assert r.data.tags["git_commit"] != "unknown"
    for stage in ["base", "sft", "rm", "ppo", "ppo_noptx"]:
        files = [f.path for f in client.list_artifacts(by_stage[stage].info.run_id, "model")]
        assert any(f.endswith(".safetensors") for f in files), (stage, files)
    # the parent run keeps the workspace's dvc.lock (it is not committed to git)
    parent_files = [f.path for f in client.list_artifacts(parents[0].info.run_id, "pipeline")]
    assert "pipeline/dvc.lock" in parent_files
    # what ppo_noptx records is what it trained with (γ = 0), in MLflow and next to the model
    assert float(by_stage["ppo_noptx"].data.params["ppo.ptx_coef"]) == 0.0
    assert float(by_stage["ppo"].data.params["ppo.ptx_coef"]) > 0.0
    saved = json.loads((workspace / "outputs/ppo_noptx/model/instructgpt_config.json").read_text())
    assert saved["ppo"]["ptx_coef"] == 0.0
    # step-wise training curve
    history = client.get_metric_history(by_stage["sft"].info.run_id, "train/loss")
    assert len(history) > 1
    # evaluation artefacts
    eval_files = [f.path for f in client.list_artifacts(by_stage["evaluate"].info.run_id)]
    assert "report.md" in eval_files and "plots" in eval_files


def test_registry_champion_loads_and_generates(workspace, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.chdir(workspace)
    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlflow/mlflow.db'}")
    client = MlflowClient()
    champion = client.get_model_version_by_alias("instructgpt-policy", "champion")
    assert str(champion.version) == str(client.get_model_version_by_alias("instructgpt-policy", "candidate").version) == "1"
    assert str(client.get_model_version_by_alias("instructgpt-reward-model", "champion").version) == "1"
    decision = json.loads((workspace / "outputs/evaluate/registry.json").read_text())
    assert decision["champion_moved"] == 1 and decision["rule"] == "no champion yet"
    policy = mlflow.pyfunc.load_model("models:/instructgpt-policy@champion")
    out = policy.predict(["write a short story about a fox ."], params={"max_new_tokens": 8})
    assert len(out) == 1 and isinstance(out[0], str)
    rm = mlflow.pyfunc.load_model("models:/instructgpt-reward-model@champion")
    import pandas as pd

    scores = rm.predict(pd.DataFrame({"prompt": ["list three colors ."] * 2, "response": ["red , blue , green .", ""]}))
    assert len(scores) == 2 and all(isinstance(x, float) for x in scores)
    proc = run(workspace, "python", "-m", "flows.generate", "write a short story about a fox .", "--max-new-tokens", "8")
    assert proc.stdout.startswith("> write a short story about a fox .")


def test_second_run_skips_everything(workspace, prefect_server, monkeypatch):
    t0 = time.time()
    outcomes = run_flow(workspace, monkeypatch)
    assert not any(o["ran"] for o in outcomes), outcomes
    assert time.time() - t0 < 60


def test_cached_run_adds_no_mlflow_parent_run(workspace, prefect_server, monkeypatch):
    """A run in which every stage was cached leaves the runs table as it was; its Prefect overview
    links the pipeline run that produced the outputs."""
    import asyncio

    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from tasks.tracking import run_url

    client = MlflowClient(f"sqlite:///{workspace / 'mlflow/mlflow.db'}")
    exp_id = client.get_experiment_by_name("instructgpt").experiment_id

    def table() -> list[str]:
        return sorted(r.info.run_id for r in client.search_runs([exp_id], max_results=1000))

    before = table()
    outcomes = run_flow(workspace, monkeypatch)
    assert not any(o["ran"] for o in outcomes), outcomes
    assert table() == before
    [producer] = client.search_runs([exp_id], "tags.mlflow.runName = 'pipeline'")

    async def overview() -> str:
        async with get_client() as prefect:
            [art] = await prefect.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["pipeline-overview"])),
                sort=ArtifactSort.CREATED_DESC, limit=1,
            )
            return art.data

    text = asyncio.run(overview())
    assert "Every stage was cached" in text
    assert f"The outputs come from MLflow run: {run_url(exp_id, producer.info.run_id)}" in text


def test_run_cache_through_a_remote_skips_training(workspace, tmp_path_factory):
    """docs/SCALE.md, section 5: `dvc push --run-cache` here, `dvc fetch --run-cache` in a second
    workspace, and its `dvc repro --pull` restores every stage's outputs instead of training again."""
    from tests.e2e.conftest import share_run_cache

    # the same path over S3-compatible storage: tests/services/test_dvc_s3.py
    remote = tmp_path_factory.mktemp("shared-remote")
    other, out = share_run_cache(workspace, tmp_path_factory.mktemp("second"), str(remote))
    assert out.count("is cached - skipping run") == len(STAGES), out
    assert "Running stage" not in out
    assert cached_outs(other) == cached_outs(workspace)


def test_ppo_param_change_reruns_only_ppo_and_evaluate(workspace, prefect_server, monkeypatch):
    from ruamel.yaml import YAML

    params = workspace / "params.yaml"
    y = YAML()
    doc = y.load(params.read_text())
    doc["ppo"]["seed"] = int(doc["ppo"]["seed"]) + 1
    with open(params, "w") as f:
        y.dump(doc, f)
    outcomes = run_flow(workspace, monkeypatch)
    # (label_round2 reads the round-1 policy and ppo_round2 the ppo params: with rounds.n 1 they re-run
    # to skip again, a few seconds each; label_round2 writes the same bytes, so rm_round2 stays cached)
    assert [o["stage"] for o in outcomes if o["ran"]] == ["ppo", "ppo_noptx", "label_round2", "ppo_round2",
                                                          "evaluate"]
    # the new policy is the candidate; the champion moved only if the rule says so
    decision = json.loads((workspace / "outputs/evaluate/registry.json").read_text())
    assert decision["candidate_version"] == 2 and decision["previous_champion_version"] == 1
    # recount the comparison from what the evaluate stage wrote: the candidate's answers
    # (samples.jsonl), the old champion's (version 1 asked as the stage asks it), the held-out labelers
    import math

    import mlflow
    import yaml
    from mlflow import MlflowClient

    from instructgpt.config import from_dict
    from instructgpt.judging.config import EvaluateConfig
    from instructgpt.world import load_world

    cfg = from_dict(EvaluateConfig, yaml.safe_load((workspace / "params.yaml").read_text())["evaluate"], "evaluate")
    rows = [json.loads(line) for line in (workspace / "outputs/evaluate/samples.jsonl").read_text().splitlines()]
    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlflow/mlflow.db'}")
    old = mlflow.pyfunc.load_model("models:/instructgpt-policy/1").predict(
        [r["prompt"] for r in rows], params={"temperature": cfg.temperature, "seed": cfg.seed,
                                             "max_new_tokens": cfg.max_new_tokens, "batch_size": cfg.batch_size})
    labelers = load_world(workspace / "data").heldout_labelers()
    wins = sum(0.5 if r["ppo"] == o else float(labelers.prefer(r["prompt_id"], r["prompt"], r["ppo"], o,
                                                                 seed=cfg.seed + i).winner == 0)
               for i, (r, o) in enumerate(zip(rows, old)))
    n, z = len(rows), 1.96
    rate = wins / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)  # Wilson score interval
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert decision["comparisons"] == n and decision["win_rate_vs_champion"] == pytest.approx(rate)
    assert decision["win_rate_vs_champion_low"] == pytest.approx(max(0.0, centre - half))
    assert decision["win_rate_vs_champion_high"] == pytest.approx(min(1.0, centre + half))
    moved = rate > 0.5 and centre - half > 0.5  # the champion rule (docs/PIPELINE.md)
    assert decision["champion_moved"] == int(moved)
    assert decision["champion_version"] == (2 if moved else 1)
    assert int(MlflowClient().get_model_version_by_alias("instructgpt-policy", "champion").version) == (2 if moved else 1)


def test_second_round_ranks_the_policy_retrains_the_rm_and_ppo_from_sft(workspace, prefect_server, monkeypatch):
    """rounds.n: 2 (the paper's second round): label_round2 ranks PPO prompts' candidates that mix
    the round-1 policy's samples with SFT's, rm_round2 trains on both rounds, ppo_round2 starts again
    from SFT against it, and evaluate judges the round-2 policy (as "ppo") against round 1's."""
    import pandas as pd
    from ruamel.yaml import YAML

    from instructgpt.models import load_causal_lm
    from tests.helpers import same_weights

    params = workspace / "params.yaml"
    y = YAML()
    doc = y.load(params.read_text())
    doc["rounds"]["n"] = 2
    with open(params, "w") as f:
        y.dump(doc, f)
    outcomes = run_flow(workspace, monkeypatch)
    assert [o["stage"] for o in outcomes if o["ran"]] == ["label_round2", "rm_round2", "ppo_round2", "evaluate"]
    # round 2's comparisons: PPO prompts of the train and valid splits, some answers the round-1 policy's
    prompts = pd.read_json(workspace / "outputs/ingest/prompts.jsonl", lines=True).set_index("prompt_id")
    round1 = pd.read_json(workspace / "outputs/label/comparisons.jsonl", lines=True)
    round2 = pd.read_json(workspace / "outputs/label_round2/comparisons.jsonl", lines=True)
    assert len(round2) and set(prompts.loc[round2["prompt_id"], "dataset"]) == {"ppo"}
    assert set(round2["split"]) == {"train", "valid"}
    rm = json.loads((workspace / "outputs/rm_round2/metrics.json").read_text())
    assert rm["data"]["round2_comparisons"] == len(round2)
    assert rm["data"]["train_comparisons"] == (round1["split"] == "train").sum() + (round2["split"] == "train").sum()
    # PPO round 2 started from SFT (not from round 1's policy) and moved
    sft, _ = load_causal_lm(workspace / "outputs/sft/model")
    one, _ = load_causal_lm(workspace / "outputs/ppo/model")
    two, _ = load_causal_lm(workspace / "outputs/ppo_round2/model")
    assert not same_weights(two, sft) and not same_weights(two, one)
    saved = json.loads((workspace / "outputs/ppo_round2/model/instructgpt_config.json").read_text())
    assert saved["ppo"]["steps"] == doc["ppo"]["steps"]
    for stage in ("label_round2", "rm_round2", "ppo_round2"):  # gated like round 1's stages
        reports = list((workspace / "reports/gates").glob(f"{stage}.*.json"))
        assert reports and all(json.loads(r.read_text())["success"] for r in reports), stage
    # evaluate: the round-2 policy is "ppo", judged against round 1's too
    metrics = json.loads((workspace / "outputs/evaluate/metrics.json").read_text())
    assert 0.0 <= metrics["win_rate"]["ppo_vs_ppo_round1"] <= 1.0 and "ppo_round1" in metrics
    samples = [json.loads(line) for line in (workspace / "outputs/evaluate/samples.jsonl").read_text().splitlines()]
    assert {"ppo", "ppo_round1"} <= set(samples[0])
    assert "| ppo vs ppo_round1 |" in (workspace / "outputs/evaluate/report.md").read_text()


def test_gate_failure_stops_stage_and_writes_nothing(workspace, monkeypatch):
    demos = workspace / "data/demonstrations.jsonl"
    original = demos.read_text()
    sft_out = workspace / "outputs/sft"
    before = sorted(p.name for p in sft_out.iterdir())
    model_mtime = (sft_out / "model/config.json").stat().st_mtime
    try:
        demos.write_text(original + json.dumps({"prompt_id": "no-such-prompt", "labeler_id": "l0", "response": "hi"}) + "\n")
        proc = run(workspace, "python", "-m", "tasks.sft", check=False)
    finally:
        demos.write_text(original)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "expect_column_values_to_be_in_set on demonstrations.prompt_known" in proc.stderr
    assert "example: [False]" in proc.stderr
    assert "reports/gates/sft.inputs.json" in proc.stderr
    assert sorted(p.name for p in sft_out.iterdir()) == before
    assert (sft_out / "model/config.json").stat().st_mtime == model_mtime
    assert not list((workspace / "outputs").glob(".staging-sft-*"))
