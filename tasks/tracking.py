"""MLflow plumbing shared by the stages and the flow: one experiment, a local SQLite store by
default, or the tracking server ``MLFLOW_TRACKING_URI`` names (docs/SCALE.md, section 4).

The flow opens one parent run per pipeline run and passes its id to the stage processes in
``INSTRUCTGPT_PARENT_RUN_ID``; a stage run by plain `dvc repro` has no parent.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

EXPERIMENT = os.environ.get("INSTRUCTGPT_EXPERIMENT", "instructgpt")
PARENT_ENV = "INSTRUCTGPT_PARENT_RUN_ID"
STORE_DIR = Path("mlflow")
PROCESS_TAG = "instructgpt.process"
"""Tag of a run: ``host:pid:start time`` of the process that opened it (see ``close_orphaned_runs``)."""


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the SQLite store in ``mlflow/`` of the working directory."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    STORE_DIR.mkdir(exist_ok=True)
    return f"sqlite:///{(STORE_DIR / 'mlflow.db').resolve()}"


def is_server(uri: str) -> bool:
    """A tracking server (``http(s)://``) rather than a store this process opens itself."""
    return uri.startswith(("http://", "https://"))


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: the server's own default root for a tracking
    server (``mlflow-artifacts:/`` when it serves artifacts, so every client uploads through it
    and none needs the server's disk), else an absolute path under ``mlflow/artifacts``."""
    if is_server(uri):
        return None
    artifacts = (STORE_DIR / "artifacts").resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    return artifacts.as_uri()


def setup() -> str:
    """Point mlflow at the store and return the experiment id, creating the experiment once.

    The experiment's artifact root is given by ``artifact_location`` and it carries
    ``mlflow.experimentKind=custom_model_development`` so that MLflow 3's UI opens it on the
    runs table rather than the GenAI overview.
    """
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        mlflow.set_experiment(experiment_id=exp.experiment_id)
        return exp.experiment_id
    exp_id = mlflow.create_experiment(
        EXPERIMENT,
        artifact_location=artifact_location(uri),
        tags={"mlflow.experimentKind": "custom_model_development"},
    )
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def git_commit() -> str:
    """HEAD of the working directory's git repository, or 'unknown' outside one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def dvc_lock_hash() -> str:
    """Short hash of dvc.lock: identifies the exact data/params/code state DVC recorded."""
    lock = Path("dvc.lock")
    if not lock.exists():
        return "none"
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:16]


def run_url(experiment_id: str, run_id: str, host: str | None = None) -> str:
    """Link to a run in the MLflow UI: the tracking server's own when ``MLFLOW_TRACKING_URI``
    names one, else the one `make ui` starts."""
    if host is None:
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        host = uri.rstrip("/") if is_server(uri) else "http://127.0.0.1:5000"
    return f"{host}/#/experiments/{experiment_id}/runs/{run_id}"


def process_tag() -> str:
    """``host:pid:start time`` of this process. The start time tells a reused pid from the one
    that opened the run."""
    import psutil

    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.3f}"


def _process_gone(tag: str) -> bool:
    """True when the process a ``process_tag`` names has ended on this host; False when it runs,
    or ran on another host (a shared tracking server: nothing here can tell whether it lives)."""
    import psutil

    host, pid, started = tag.rsplit(":", 2)
    if host != socket.gethostname():
        return False
    try:
        proc = psutil.Process(int(pid))
        return abs(proc.create_time() - float(started)) > 0.01 or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def close_orphaned_runs(experiment_id: str, filter_string: str) -> list[str]:
    """Mark as KILLED the RUNNING runs matching ``filter_string`` whose process is gone; their ids.

    A process killed with SIGKILL (the OOM killer, a pre-empted machine, `kill -9`) never ends
    its MLflow run, which then shows as RUNNING forever and looks like a live stage. The stage
    that starts next in its place closes it, with the tag ``killed_reason`` saying why. Runs
    without ``PROCESS_TAG`` (older runs) and runs of live processes are left alone."""
    from mlflow import MlflowClient

    client = MlflowClient()
    closed = []
    for run in client.search_runs([experiment_id], f"{filter_string} and attributes.status = 'RUNNING'"):
        tag = run.data.tags.get(PROCESS_TAG)
        if tag is None or not _process_gone(tag):
            continue
        client.set_tag(run.info.run_id, "killed_reason",
                       f"its process ({tag}) ended without closing the run (killed, e.g. SIGKILL); "
                       f"marked KILLED when the next run started")
        client.set_terminated(run.info.run_id, status="KILLED")
        closed.append(run.info.run_id)
    return closed


def start_stage_run(name: str):
    """An MLflow run for stage ``name``, child of the flow's parent run when there is one
    (``PARENT_ENV``); a run of the same stage left RUNNING by a killed process is closed first."""
    import mlflow

    exp_id = setup()
    parent = os.environ.get(PARENT_ENV) or None
    tags = {
        "stage": name,
        "git_commit": git_commit(),
        "dvc_lock": dvc_lock_hash(),
        "mlflow.source.git.commit": git_commit(),
    }
    if os.environ.get("PREFECT__FLOW_RUN_ID"):
        tags["prefect_flow_run_id"] = os.environ["PREFECT__FLOW_RUN_ID"]
    tags[PROCESS_TAG] = process_tag()
    for run_id in close_orphaned_runs(exp_id, f"tags.stage = '{name}'"):
        print(f"[{name}] MLflow run {run_id} of an earlier '{name}' process that was killed: marked KILLED")
    return mlflow.start_run(experiment_id=exp_id, run_name=name, parent_run_id=parent, tags=tags)


def param_value(v: Any) -> Any:
    """A config value as an MLflow param: lists and dicts as JSON, cut to MLflow's 500 characters."""
    s = json.dumps(v) if isinstance(v, (list, dict)) else v
    return s if not isinstance(s, str) or len(s) < 500 else s[:497] + "..."
