"""A shared tracking server: `mlflow server` on a real PostgreSQL, artifacts served by the server.

The tiny pipeline ran through the Prefect flow with MLFLOW_TRACKING_URI pointing at the server and
the pipeline's account in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD
(conftest.trained_workspace): every stage is real project code, and the evaluate stage registers
the models. What lands where is read back from the server (logged in as the pipeline), its
database and its artifact folder. Requests without the account: test_auth.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services.conftest import STAGES

pytestmark = pytest.mark.services


def test_runs_and_artifacts_live_on_the_server(trained_workspace, mlflow_login, mlflow_server, postgres):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url)
    exp = client.get_experiment_by_name("instructgpt")
    # the experiment was created by tasks.tracking.setup() with the server's artifact root, not a
    # path on the machine that ran the flow
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    [parent] = client.search_runs([exp.experiment_id], "tags.mlflow.runName = 'pipeline'")
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_stage = {r.data.tags["stage"]: r for r in children}
    assert sorted(by_stage) == sorted(STAGES)
    for stage, r in by_stage.items():
        assert r.info.status == "FINISHED", stage
        assert r.data.params and r.data.metrics, stage
    assert len(client.get_metric_history(by_stage["sft"].info.run_id, "train/loss")) > 1
    # a model logged by a stage is in the server's artifact folder, uploaded through the server
    sft = by_stage["sft"].info.run_id
    listed = [f.path for f in client.list_artifacts(sft, "model")]
    weights = [p for p in listed if p.endswith(".safetensors")]
    assert weights, listed
    on_server = mlflow_server.artifacts / exp.experiment_id / sft / "artifacts" / weights[0]
    assert on_server.stat().st_size > 0
    assert "pipeline/dvc.lock" in [f.path for f in client.list_artifacts(parent.info.run_id, "pipeline")]
    # ... and nothing was written to a local store in the workspace
    assert not (trained_workspace / "mlflow/mlflow.db").exists()
    assert not (trained_workspace / "mlflow/artifacts").exists()
    # the server keeps runs, metrics and the registry in PostgreSQL
    with postgres.connect() as conn:
        ids = [parent.info.run_id, *(r.info.run_id for r in children)]
        runs = conn.execute("SELECT count(*) FROM runs WHERE run_uuid = ANY(%s)", (ids,)).fetchone()[0]
        aliases = dict(conn.execute("SELECT name, alias FROM registered_model_aliases WHERE alias = 'champion'").fetchall())
    assert runs == len(STAGES) + 1
    assert aliases == {"instructgpt-policy": "champion", "instructgpt-reward-model": "champion"}


def test_registry_on_the_server_loads_and_generates(trained_workspace, mlflow_login, mlflow_server, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url)
    for name in ("instructgpt-policy", "instructgpt-reward-model"):
        assert client.get_model_version_by_alias(name, "champion").version == "1"
        assert client.get_model_version_by_alias(name, "candidate").version == "1"
    decision = json.loads((trained_workspace / "outputs/evaluate/registry.json").read_text())
    assert decision["champion_moved"] == 1 and decision["rule"] == "no champion yet"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    mlflow.set_tracking_uri(mlflow_server.url)
    policy = mlflow.pyfunc.load_model("models:/instructgpt-policy@champion")  # downloaded through the server
    out = policy.predict(["write a short story about a fox ."], params={"max_new_tokens": 8})
    assert len(out) == 1 and isinstance(out[0], str)


def test_second_workspace_evaluates_against_the_shared_champion(trained_workspace, mlflow_login, mlflow_server,
                                                                postgres, tmp_path):
    """A teammate's copy of the workspace re-runs evaluate against the same server: its policy is
    registered as version 2 (`candidate`), compared with the champion the server holds (version 1,
    loaded through the server), and `champion` moves only if the rule says so."""
    other = tmp_path / "ws-copy"
    shutil.copytree(trained_workspace, other, symlinks=True)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(mlflow_server.env)
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro", "-f", "-s", "evaluate"], cwd=other, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Running stage 'evaluate'" in proc.stdout
    decision = json.loads((other / "outputs/evaluate/registry.json").read_text())
    assert decision["candidate_version"] == 2 and decision["previous_champion_version"] == 1
    assert decision["comparisons"] > 0 and 0.0 <= decision["win_rate_vs_champion"] <= 1.0
    # the same policy weights as the champion: it cannot beat it with an interval clear of 50 %
    assert decision["champion_moved"] == 0 and decision["champion_version"] == 1

    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url)
    assert client.get_model_version_by_alias("instructgpt-policy", "candidate").version == "2"
    assert client.get_model_version_by_alias("instructgpt-policy", "champion").version == "1"
    assert client.get_model_version_by_alias("instructgpt-reward-model", "candidate").version == "2"
    with postgres.connect() as conn:
        versions = conn.execute("SELECT count(*) FROM model_versions WHERE name = 'instructgpt-policy'").fetchone()[0]
    assert versions == 2


def test_make_ui_points_at_the_server(mlflow_login, mlflow_server, tmp_path):
    """`make ui` (flows.ui) starts no local UI against a tracking server: it prints the server's runs table."""
    from mlflow import MlflowClient

    from tests.services import servers

    repo = Path(__file__).resolve().parents[2]
    env = servers.clean_env(**mlflow_server.env, PYTHONPATH=str(repo))
    proc = subprocess.run([sys.executable, "-m", "flows.ui"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    exp_id = MlflowClient(mlflow_server.url).get_experiment_by_name("instructgpt").experiment_id
    assert f"MLflow UI: {mlflow_server.url}/#/experiments/{exp_id}/runs" in proc.stdout
    assert not (tmp_path / "mlflow").exists()
