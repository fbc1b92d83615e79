"""MLflow plumbing shared by the stages and the flow: one experiment, a local SQLite store.

The flow opens one parent run per pipeline run and passes its id to the stage processes in
``INSTRUCTGPT_PARENT_RUN_ID``; a stage run by plain `dvc repro` has no parent.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

EXPERIMENT = os.environ.get("INSTRUCTGPT_EXPERIMENT", "instructgpt")
PARENT_ENV = "INSTRUCTGPT_PARENT_RUN_ID"
STORE_DIR = Path("mlflow")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the SQLite store in ``mlflow/`` of the working directory."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    STORE_DIR.mkdir(exist_ok=True)
    return f"sqlite:///{(STORE_DIR / 'mlflow.db').resolve()}"


def setup() -> str:
    """Point mlflow at the store and return the experiment id, creating the experiment once.

    The experiment's artifact root is an absolute path under ``mlflow/artifacts`` and it carries
    ``mlflow.experimentKind=custom_model_development`` so that MLflow 3's UI opens it on the
    runs table rather than the GenAI overview.
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        mlflow.set_experiment(experiment_id=exp.experiment_id)
        return exp.experiment_id
    artifacts = (STORE_DIR / "artifacts").resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    exp_id = mlflow.create_experiment(
        EXPERIMENT,
        artifact_location=artifacts.as_uri(),
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


def run_url(experiment_id: str, run_id: str, host: str = "http://127.0.0.1:5000") -> str:
    """Link to a run in the MLflow UI started by `make ui`."""
    return f"{host}/#/experiments/{experiment_id}/runs/{run_id}"
