"""Shared scheduling: one `prefect server`, one process work pool, two workers, two workspaces.

Each workspace registers its own deployment with `make deploy DEPLOYMENT=<name>` (its working
directory and a concurrency limit of one run). Two runs of each are queued at once; two workers
(`prefect worker start --pool local --limit 1`) take them. Both workers run flow runs, the two
workspaces run side by side, and two runs of one workspace never overlap: the second waits for its
deployment's slot. Every stage is cached (the workspaces come trained), so a run is the flow
walking eight cached `dvc repro` calls, tracked on the shared MLflow server. The server takes only
requests carrying its auth string: `make deploy`, the workers and the flow runs they start hold it
in PREFECT_API_AUTH_STRING (pipeline.env), as docs/SCALE.md says.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.services import servers
from tests.services.conftest import STAGES, flow_env

pytestmark = pytest.mark.services
RUNS_PER_WORKSPACE = 2
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _deploy(ws: Path, name: str, env: dict[str, str]) -> None:
    if not (ws / ".venv").exists():
        (ws / ".venv").symlink_to(servers.VENV_BIN.parent)  # as `make` would have created it
    # -o: the shared environment is installed already; a newer pyproject.toml must not reinstall it
    proc = subprocess.run(["make", "-o", ".venv/.installed", "deploy", f"DEPLOYMENT={name}"], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [str(servers.VENV_BIN / "prefect"), "worker", "start", "--pool", "local", "--name", name, "--limit", "1"]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=log.parent, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stage_logs(client, flow_run_id, wait_s: float = 120.0) -> list[str]:
    """A finished flow run's log messages, once its last stage's line has arrived: a flow process
    ships its logs in batches in the background, and on a loaded machine the last batch can reach
    the server after the run is already marked Completed."""
    deadline = time.time() + wait_s
    while True:
        messages = servers.flow_run_logs(client, flow_run_id)
        if any(m.startswith(f"{STAGES[-1]}: ") for m in messages) or time.time() > deadline:
            return messages
        time.sleep(2)


def test_two_workers_share_the_pool_one_run_per_workspace(trained_workspace, restored_workspace, prefect,
                                                          mlflow_server, tmp_path):
    from prefect.client.orchestration import SyncPrefectClient

    workspaces = {"ws-a": trained_workspace, "ws-b": restored_workspace[0]}
    env = flow_env(prefect, mlflow_server)
    for name, ws in workspaces.items():
        _deploy(ws, name, env)
    with SyncPrefectClient(prefect.url, auth_string=prefect.auth_string) as client:
        runs: dict[str, list] = {}
        for name, ws in workspaces.items():
            deployment = client.read_deployment_by_name(f"instructgpt-pipeline/{name}")
            assert deployment.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(ws)}}]
            assert deployment.global_concurrency_limit.limit == 1
            runs[name] = [client.create_flow_run_from_deployment(deployment.id)
                          for _ in range(RUNS_PER_WORKSPACE)]

    # workers poll every 2 s rather than 10; they need not have the venv on PATH (flows/repro.py)
    worker_env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "2"}
    workers = [_worker(f"worker-{i}", worker_env, tmp_path / f"worker-{i}.log") for i in (1, 2)]
    ids = [run.id for rs in runs.values() for run in rs]
    try:
        with SyncPrefectClient(prefect.url, auth_string=prefect.auth_string) as client:
            deadline = time.time() + 900
            while time.time() < deadline:
                states = {i: client.read_flow_run(i).state for i in ids}
                if all(s.type.value in TERMINAL for s in states.values()):
                    break
                assert all(w.poll() is None for w in workers), [p.read_text()[-2000:] for p in tmp_path.glob("*.log")]
                time.sleep(2)
            flow_runs = {i: client.read_flow_run(i) for i in ids}
            histories = {i: [s.name for s in client.read_flow_run_states(i)] for i in ids}
            logs = {i: _stage_logs(client, i) for i in ids}
    finally:
        for w in workers:
            servers.stop(w)
    worker_logs = "\n".join(p.read_text()[-2000:] for p in sorted(tmp_path.glob("worker-*.log")))
    assert all(fr.state.name == "Completed" for fr in flow_runs.values()), (
        {i: fr.state.name for i, fr in flow_runs.items()}, worker_logs)

    # the pipeline ran: every stage walked, each one cached
    for i in ids:
        said = [m for m in logs[i] if m.split(":")[0] in STAGES]
        for stage in STAGES:
            assert any(m.startswith(f"{stage}: skipped in ") for m in said), (stage, said)

    # both workers ran flow runs (the last worker that submitted a run is the one that ran it)
    ran_by = {}
    for i in ids:
        submitted = [m.group(1) for line in logs[i] if (m := re.match(r"Worker '([^']+)' submitting flow run", line))]
        assert submitted, logs[i]
        ran_by[i] = submitted[-1]
    assert set(ran_by.values()) == {"worker-1", "worker-2"}, ran_by

    # one run per workspace at a time; the workspaces ran side by side
    spans = {i: (fr.start_time, fr.end_time) for i, fr in flow_runs.items()}
    for name, rs in runs.items():
        (s1, e1), (s2, e2) = (spans[r.id] for r in rs)
        assert e1 <= s2 or e2 <= s1, (name, spans)
    overlaps = [(a.id, b.id) for a in runs["ws-a"] for b in runs["ws-b"]
                if spans[a.id][0] < spans[b.id][1] and spans[b.id][0] < spans[a.id][1]]
    assert overlaps, spans
    # ... because a run that came to a busy workspace waited for its deployment's slot
    assert any("AwaitingConcurrencySlot" in h for h in histories.values()), histories
