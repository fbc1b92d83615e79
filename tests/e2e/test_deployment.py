"""The scheduled deployment end to end: a real `prefect server start`, `make deploy` from a
workspace, flow runs of the deployment picked up by a process worker whose PATH does not hold
the virtual environment (`.venv/bin/prefect worker start`, as docs/SCALE.md says to start it).
A real server and worker: `make test-services`, with the other shared services.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.workspace import make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.services]
VENV_BIN = Path(sys.executable).parent
DEPLOYMENT = "instructgpt-pipeline/nightly"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _path_without_venv() -> str:
    """The test's PATH less the virtual environment (tests/workspace.py puts it first)."""
    venv = VENV_BIN.resolve()
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p).resolve() != venv)


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prefect server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"prefect server not healthy after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def prefect_api(tmp_path):
    """A `prefect server start` of its own (own PREFECT_HOME and port), stopped at the end.

    Yields the API URL and the environment that points at it; the URL is never put in
    os.environ, so nothing else in the session talks to this server.
    """
    prefect = VENV_BIN / "prefect"
    if not prefect.exists():
        pytest.skip(f"no prefect executable at {prefect}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=url)
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(url, proc, log)
        yield url, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_deployment_runs_on_a_worker_without_the_venv_on_path(prefect_api, tmp_path_factory):
    from prefect.client.orchestration import SyncPrefectClient

    url, env = prefect_api
    ws = make_workspace(tmp_path_factory.mktemp("deploy-ws"))
    (ws / ".venv").symlink_to(VENV_BIN.parent)  # as `make` would have created it
    # `make deploy` as a user runs it; -o: the shared environment is installed already, do not
    # let a newer pyproject.toml in the copy trigger a reinstall.
    deploy = subprocess.run(["make", "-o", ".venv/.installed", "deploy"], cwd=ws, env=env,
                            capture_output=True, text=True, timeout=300)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]

    with SyncPrefectClient(url) as client:
        deployment = client.read_deployment_by_name(DEPLOYMENT)
        # the pull step's {{ $PWD }} recorded the workspace make ran in
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ws)}}
        ]
        # one run at a time; a second one waits for the slot
        assert deployment.global_concurrency_limit is not None
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
        runs = [client.create_flow_run_from_deployment(deployment.id, parameters={"stages": ["ingest"]})
                for _ in range(2)]

    worker_env = {**env, "PATH": _path_without_venv()}
    worker = subprocess.run([str(ws / ".venv/bin/prefect"), "worker", "start", "--pool", "local", "--run-once"],
                            cwd=tmp_path_factory.mktemp("elsewhere"), env=worker_env,
                            capture_output=True, text=True, timeout=600)
    output = worker.stdout[-4000:] + worker.stderr[-4000:]
    assert worker.returncode == 0, output

    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with SyncPrefectClient(url) as client:
        states = {run.id: client.read_flow_run(run.id).state for run in runs}
        done = [run_id for run_id, state in states.items() if state.name == "Completed"]
        logs = [log.message for log in client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=done)), limit=200)] if done else []
    by_name = sorted(s.name for s in states.values())
    # one run went through; the other waited for the deployment's slot instead of colliding
    # with it on DVC's lock
    assert by_name == ["AwaitingConcurrencySlot", "Completed"], (by_name, output)
    # the stage's output is in the run's logs, its progress bars as a few lines each
    print("\n".join(logs))
    assert any("Running stage 'ingest'" in m for m in logs), logs
    assert any(m.startswith("ingest: 100%") for m in logs), logs
    assert len(logs) < 60, logs

    assert (ws / "outputs/ingest/prompts.jsonl").stat().st_size > 0
    assert json.loads((ws / "outputs/ingest/report.json").read_text())["kept"] > 0
    # the stage ran under the flow's MLflow parent run, in the workspace's own store
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{ws / 'mlflow/mlflow.db'}")
    exp = client.get_experiment_by_name("instructgpt")
    stage_runs = client.search_runs([exp.experiment_id], "tags.stage = 'ingest'")
    assert len(stage_runs) == 1 and "mlflow.parentRunId" in stage_runs[0].data.tags
