"""Shared services for one session: PostgreSQL + an MLflow server on it, an S3 endpoint, a Prefect
server, MLflow and Prefect locked with the secrets `make secrets` generates; a tiny-profile workspace
trained once through the flow against them with the pipeline's credentials, and a second workspace
restored from the first one's run cache through S3.

The services tests are marked `services` and run by `make test-services` (.ci/run runs it after
`make test`): they train the tiny profile once (~5 min on 2 busy cores) and start four servers.
A test that skips for a missing server fails under CI=true (tests/services/ci.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from instructgpt import credentials
from tests.e2e.conftest import share_run_cache
from tests.services import servers
from tests.services.ci import pytest_runtest_makereport  # noqa: F401  (a skip fails under CI=true)
from tests.workspace import make_workspace

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # boto never asks a cloud for credentials
STAGES = ["ingest", "base", "sft", "label", "rm", "ppo", "ppo_noptx", "label_round2", "rm_round2", "ppo_round2",
          "evaluate"]
# a flow run whose deployment has no free slot is retried after this many seconds (default 30)
SLOT_WAIT_S = "2"


@pytest.fixture(scope="session")
def postgres() -> Iterator[servers.Postgres]:
    with servers.postgres() as db:
        yield db


@pytest.fixture(scope="session")
def service_secrets(postgres, tmp_path_factory) -> Path:
    """`make secrets MLFLOW_AUTH_DB=...` on the servers' host: the secrets folder, with MLflow's
    users in a PostgreSQL database of their own (docs/SCALE.md, section 7)."""
    folder = tmp_path_factory.mktemp("host") / ".secrets"
    credentials.service_secrets(folder, mlflow_auth_db=postgres.create_database("mlflow_auth"))
    return folder


@pytest.fixture(scope="session")
def mlflow_server(postgres, service_secrets, tmp_path_factory) -> Iterator[servers.MlflowServer]:
    with servers.mlflow_server(postgres.url, tmp_path_factory.mktemp("mlflow-server"), service_secrets) as srv:
        yield srv


@pytest.fixture
def mlflow_login(mlflow_server, monkeypatch) -> servers.MlflowServer:
    """This test process logs in to the tracking server as the pipeline does (its environment)."""
    for key, value in mlflow_server.env.items():
        monkeypatch.setenv(key, value)
    return mlflow_server


@pytest.fixture(scope="session")
def s3(tmp_path_factory) -> Iterator[servers.S3]:
    with servers.s3_server(tmp_path_factory.mktemp("s3")) as s3:
        yield s3


@pytest.fixture(scope="session")
def prefect(service_secrets, tmp_path_factory) -> Iterator[servers.PrefectServer]:
    with servers.prefect_server(tmp_path_factory.mktemp("prefect"), service_secrets,
                                PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS=SLOT_WAIT_S) as srv:
        yield srv


def flow_env(prefect: servers.PrefectServer, mlflow_server: servers.MlflowServer) -> dict[str, str]:
    """What a machine of the cluster sets: the shared Prefect API and the shared tracking server, and
    pipeline.env's credentials for both."""
    return {**prefect.env, **mlflow_server.env}


@pytest.fixture(scope="session")
def trained_workspace(mlflow_server, prefect, tmp_path_factory) -> Path:
    """The tiny profile through the Prefect flow (`python -m flows.pipeline`), tracked on the server
    with the pipeline's account."""
    ws = make_workspace(tmp_path_factory.mktemp("ws-a"))
    proc = subprocess.run([sys.executable, "-m", "flows.pipeline"], cwd=ws, env=flow_env(prefect, mlflow_server),
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return ws


@pytest.fixture(scope="session")
def s3_remote(s3) -> tuple[str, dict[str, str], dict[str, str]]:
    """A DVC remote on the S3 endpoint: url, config options, secrets (kept in .dvc/config.local)."""
    return (f"s3://{s3.bucket}/dvc", {"endpointurl": s3.endpoint, "region": servers.S3_ENV["AWS_DEFAULT_REGION"]},
            {"access_key_id": servers.S3_ENV["AWS_ACCESS_KEY_ID"],
             "secret_access_key": servers.S3_ENV["AWS_SECRET_ACCESS_KEY"]})


@pytest.fixture(scope="session")
def restored_workspace(trained_workspace, s3_remote, tmp_path_factory) -> tuple[Path, str]:
    """A second workspace that took every stage's outputs from the first one's run cache on S3;
    returns it and its `dvc repro --pull` output."""
    url, config, secrets = s3_remote
    return share_run_cache(trained_workspace, tmp_path_factory.mktemp("ws-b"), url, config, secrets)
