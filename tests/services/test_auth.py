"""The shared servers let no one in without the credentials `make secrets` generated (docs/SCALE.md,
section 7): MLflow runs its basic-auth app (its users in a PostgreSQL database of their own), the
Prefect server its auth string.

The pipeline ran through both with pipeline.env's credentials (conftest.trained_workspace; the other
services tests read what it left, logged in the same way). Here, what someone who reaches the ports
would want is refused (401) without them, with a wrong password, or with MLflow's former default
admin password: the runs, a model's weights, the UI, the registry's ``champion`` alias, scheduling a
flow run. The pipeline's account is not an admin, and only it, not any logged-in reader, moves the
champion. No secret lands in a server's log.
"""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from instructgpt import credentials

pytestmark = pytest.mark.services
NOBODY = [None, ("pipeline", "not-the-password-0"), ("admin", "password1234"), ("admin", "")]


def _basic(auth_string: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode()}


def _server_secrets(folder) -> dict[str, str]:
    return credentials.read_env(folder / credentials.SERVICES)


def test_mlflow_refuses_requests_without_the_pipelines_account(trained_workspace, mlflow_server, service_secrets,
                                                               postgres):
    url, login = mlflow_server.url, mlflow_server.login
    admin = (credentials.MLFLOW_ADMIN, _server_secrets(service_secrets)["MLFLOW_AUTH_ADMIN_PASSWORD"])
    # what the pipeline left on the server: its experiment, the SFT run's weights, the champion
    with httpx.Client(base_url=url, auth=login, timeout=60) as http:
        exp_id = http.get("/api/2.0/mlflow/experiments/get-by-name",
                          params={"experiment_name": "instructgpt"}).json()["experiment"]["experiment_id"]
        [sft] = http.post("/api/2.0/mlflow/runs/search", json={
            "experiment_ids": [exp_id], "filter": "tags.stage = 'sft'"}).json()["runs"]
        sft = sft["info"]["run_id"]
        files = http.get("/api/2.0/mlflow/artifacts/list", params={"run_id": sft, "path": "model"}).json()["files"]
        weights = next(f["path"] for f in files if f["path"].endswith(".safetensors"))
        alias = {"name": "instructgpt-policy", "alias": "champion"}
        champion = http.get("/api/2.0/mlflow/registered-models/alias", params=alias).json()["model_version"]["version"]
    wanted = [("POST", "/api/2.0/mlflow/runs/search", {"json": {"experiment_ids": [exp_id]}}),  # the runs
              ("GET", f"/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{sft}/artifacts/{weights}", {}),  # a model
              ("GET", "/", {}),  # the UI
              ("POST", "/api/2.0/mlflow/registered-models/alias", {"json": {**alias, "version": champion}})]
    for who in NOBODY:
        with httpx.Client(base_url=url, auth=who, timeout=60) as http:
            for method, path, kwargs in wanted:
                assert http.request(method, path, **kwargs).status_code == 401, (who and who[0], method, path)
    # the same requests with the pipeline's account (the alias set to the version it already names)
    with httpx.Client(base_url=url, auth=login, timeout=60) as http:
        for method, path, kwargs in wanted:
            resp = http.request(method, path, **kwargs)
            assert resp.status_code == 200, (method, path, resp.status_code, resp.text[:300])
        weights_size = len(http.get(wanted[1][1]).content)
        # the pipeline's account is no admin: it cannot make users
        made = http.post("/api/2.0/mlflow/users/create", json={"username": "mallory", "password": "m" * 16})
        assert made.status_code == 403, made.text[:300]
    assert weights_size > 0
    # a teammate's own account (made by the admin) reads the runs but cannot move the champion: the
    # pipeline's account created the registered model, and MLflow's default permission is READ
    with httpx.Client(base_url=url, auth=admin, timeout=60) as http:
        resp = http.post("/api/2.0/mlflow/users/create", json={"username": "reader", "password": "r" * 16})
        assert resp.status_code == 200, resp.text[:300]
    with httpx.Client(base_url=url, auth=("reader", "r" * 16), timeout=60) as http:
        assert http.post("/api/2.0/mlflow/runs/search", json={"experiment_ids": [exp_id]}).status_code == 200
        assert http.post("/api/2.0/mlflow/registered-models/alias",
                         json={**alias, "version": champion}).status_code == 403
        assert http.delete("/api/2.0/mlflow/registered-models/alias", params=alias).status_code == 403
    with httpx.Client(base_url=url, auth=login, timeout=60) as http:
        now = http.get("/api/2.0/mlflow/registered-models/alias", params=alias).json()["model_version"]["version"]
    assert now == champion
    # the users live in PostgreSQL, as password hashes
    with postgres.connect("mlflow_auth") as conn:
        users = dict(conn.execute("SELECT username, is_admin FROM users").fetchall())
        hashes = [h for (h,) in conn.execute("SELECT password_hash FROM users").fetchall()]
    assert users == {"admin": True, "pipeline": False, "reader": False}
    assert not {admin[1], login[1]} & set(hashes) and all(admin[1] not in h and login[1] not in h for h in hashes)


def test_prefect_refuses_requests_without_the_auth_string(prefect):
    from prefect.client.orchestration import SyncPrefectClient

    deployment = uuid.uuid4()  # any id: a request refused at the door never learns whether it exists
    wanted = [("POST", "/flow_runs/filter", {"json": {}}),  # what ran, with its parameters and logs
              ("POST", "/deployments/filter", {"json": {}}),
              ("POST", f"/deployments/{deployment}/create_flow_run", {"json": {}}),  # work for the workers
              ("POST", "/work_pools/", {"json": {"name": "mallory", "type": "process"}})]
    secret = prefect.auth_string.split(":", 1)[1]
    for headers in ({}, _basic("instructgpt:not-the-secret"), _basic(f"admin:{secret}"), _basic(secret),
                    {"Authorization": f"Bearer {secret}"}):
        with httpx.Client(base_url=prefect.url, headers=headers, timeout=60) as http:
            for method, path, kwargs in wanted:
                assert http.request(method, path, **kwargs).status_code == 401, (headers, method, path)
            assert http.get("/health").status_code == 200  # health probes stay open
    with httpx.Client(base_url=prefect.url, headers=_basic(prefect.auth_string), timeout=60) as http:
        assert http.post("/flow_runs/filter", json={}).status_code == 200
        assert http.post(f"/deployments/{deployment}/create_flow_run", json={}).status_code == 404  # reached the API
    # a Prefect client (a worker, `prefect deployment run`) without PREFECT_API_AUTH_STRING is refused too
    with SyncPrefectClient(prefect.url) as client, pytest.raises(httpx.HTTPStatusError, match="401"):
        client.read_flow_runs(limit=1)
    with SyncPrefectClient(prefect.url, auth_string=prefect.auth_string) as client:
        client.read_flow_runs(limit=1)


def test_no_secret_in_the_servers_logs(trained_workspace, mlflow_server, prefect, service_secrets):
    """The servers' logs after the pipeline ran through them hold none of the generated secrets."""
    server = _server_secrets(service_secrets)
    client = credentials.read_env(service_secrets / credentials.PIPELINE)
    secrets = [server["MLFLOW_AUTH_ADMIN_PASSWORD"], server["MLFLOW_FLASK_SERVER_SECRET_KEY"],
               client["MLFLOW_TRACKING_PASSWORD"], client["PREFECT_API_AUTH_STRING"].split(":", 1)[1]]
    for log in (mlflow_server.log, prefect.log):
        text = log.read_text()
        assert text and not [s for s in secrets if s in text], log.name
