"""What a killed process leaves behind is cleaned up: real processes, real signals.

- A stage killed with SIGKILL cannot end its MLflow run, which would stay RUNNING forever; the
  next start of that stage marks it KILLED with a tag saying why (tasks/tracking.py).
- A flow killed with SIGTERM (`kill`, a container stop) used to die at once, leaving the
  ephemeral Prefect server it had started running; it now unwinds and the server stops
  (flows/pipeline.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.workspace import make_workspace

pytestmark = pytest.mark.e2e


def _env(ws: Path) -> dict[str, str]:
    """The workspace's own MLflow store, and no Prefect API: the flow starts an ephemeral server."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "INSTRUCTGPT_NO_MLFLOW", "PREFECT_API_URL")}
    env["PREFECT_HOME"] = str(ws / ".prefect")
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while text not in (log.read_text(errors="replace") if log.exists() else ""):
        assert proc.poll() is None, f"ended (exit {proc.returncode}) before {text!r}:\n{log.read_text()[-3000:]}"
        assert time.time() < deadline, f"no {text!r} within {timeout} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def _start_stage(ws: Path, log: Path) -> subprocess.Popen:
    out = open(log, "wb")  # a file, not a pipe: a full pipe would stall the stage
    return subprocess.Popen([sys.executable, "-m", "tasks.base"], cwd=ws, env=_env(ws), stdout=out, stderr=out)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("faults"))


def test_sigkilled_stage_run_is_marked_killed_when_the_stage_next_starts(workspace):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workspace / 'mlflow/mlflow.db'}")
    first = _start_stage(workspace, workspace / "first.log")
    _wait_for(workspace / "first.log", "[base] compute:", first, 180)  # printed inside its MLflow run
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    [orphan] = client.search_runs(client.get_experiment_by_name("instructgpt").experiment_id, "tags.stage = 'base'")
    assert orphan.info.status == "RUNNING"  # nothing in the killed process could end it

    second = _start_stage(workspace, workspace / "second.log")
    try:
        _wait_for(workspace / "second.log", "[base] compute:", second, 180)
    finally:
        second.kill()
        second.wait(timeout=30)
    closed = client.get_run(orphan.info.run_id)
    assert closed.info.status == "KILLED"
    assert closed.info.end_time is not None
    assert "SIGKILL" in closed.data.tags["killed_reason"]
    assert f"{orphan.info.run_id} of an earlier 'base' process that was killed" in (workspace / "second.log").read_text()
    # the second run, whose process was alive while it looked, was not touched by its own start
    [new] = [r for r in client.search_runs([closed.info.experiment_id], "tags.stage = 'base'")
             if r.info.run_id != orphan.info.run_id]
    assert new.info.status == "RUNNING"


def _servers(pid: int) -> list[psutil.Process]:
    """The ephemeral Prefect servers (uvicorn ... prefect.server.api.server:create_app) under ``pid``."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if any("prefect.server.api.server:create_app" in a for a in c.cmdline())]


def test_sigterm_stops_the_flow_and_its_ephemeral_prefect_server(workspace):
    log = workspace / "flow.log"
    with open(log, "wb") as out:
        flow = subprocess.Popen([sys.executable, "-m", "flows.pipeline", "--stages", "ingest", "base"], cwd=workspace,
                                env=_env(workspace), stdout=out, stderr=out)
    servers: list[psutil.Process] = []
    try:
        _wait_for(log, "Running stage", flow, 300)  # the server is up: a task runs
        servers = _servers(flow.pid)
        assert len(servers) == 1, log.read_text()[-3000:]
        stages = [c for c in psutil.Process(flow.pid).children(recursive=True) if c not in servers]
        flow.send_signal(signal.SIGTERM)
        code = flow.wait(timeout=60)
        gone, alive = psutil.wait_procs(servers + stages, timeout=30)
        assert not alive, f"left running after SIGTERM: {[p.cmdline()[:6] for p in alive]}"
        assert code == 128 + signal.SIGTERM, log.read_text()[-3000:]
        assert "pipeline stopped: terminated (SIGTERM)" in log.read_text()
    finally:
        for proc in [flow, *servers]:
            try:
                proc.kill()
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
