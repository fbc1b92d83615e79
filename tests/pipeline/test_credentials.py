"""The services' secrets (instructgpt/credentials.py): generated once, private, out of git, never
printed; and where the Label Studio client finds its token. The servers refusing requests without
them: tests/services/test_auth.py and tests/labeling/test_studio.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from instructgpt import credentials
from instructgpt.labeling import service
from instructgpt.labeling.studio import Studio, StudioError

REPO = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_service_secrets_are_generated_once_and_private(tmp_path):
    folder = tmp_path / ".secrets"
    files = credentials.service_secrets(folder)
    assert set(files) == {"services.env", "pipeline.env", "mlflow-auth.ini"}
    assert _mode(folder) == 0o700 and all(_mode(p) == 0o600 for p in files.values())
    server, client = credentials.read_env(files["services.env"]), credentials.read_env(files["pipeline.env"])
    # MLflow: an admin password of its own (at least MLflow's 12 characters, never its old default), the
    # pipeline's non-admin account; Prefect: one auth string on the server and the clients
    assert len(server["MLFLOW_AUTH_ADMIN_PASSWORD"]) >= 40 and server["MLFLOW_AUTH_ADMIN_PASSWORD"] != "password1234"
    assert len(server["MLFLOW_FLASK_SERVER_SECRET_KEY"]) >= 40
    assert client["MLFLOW_TRACKING_USERNAME"] == "pipeline" and len(client["MLFLOW_TRACKING_PASSWORD"]) >= 40
    assert server["PREFECT_SERVER_API_AUTH_STRING"] == client["PREFECT_API_AUTH_STRING"]
    assert client["PREFECT_API_AUTH_STRING"].startswith("instructgpt:")
    assert server["MLFLOW_AUTH_CONFIG_PATH"] == str(files["mlflow-auth.ini"].resolve())
    ini = files["mlflow-auth.ini"].read_text()
    assert "default_permission = READ" in ini and f"sqlite:///{folder.resolve()}/mlflow-auth.db" in ini
    assert "admin_password" not in ini
    # another set-up draws other values; running it again keeps every file as it is
    other = credentials.read_env(credentials.service_secrets(tmp_path / "other")["services.env"])
    assert other["MLFLOW_AUTH_ADMIN_PASSWORD"] != server["MLFLOW_AUTH_ADMIN_PASSWORD"]
    before = {name: p.read_text() for name, p in files.items()}
    credentials.service_secrets(folder, mlflow_auth_db="postgresql+psycopg://db/other")
    assert {name: p.read_text() for name, p in files.items()} == before
    # a lost pipeline.env comes back with a new MLflow password and the server's Prefect string
    files["pipeline.env"].unlink()
    again = credentials.read_env(credentials.service_secrets(folder)["pipeline.env"])
    assert again["PREFECT_API_AUTH_STRING"] == server["PREFECT_SERVER_API_AUTH_STRING"]
    assert again["MLFLOW_TRACKING_PASSWORD"] != client["MLFLOW_TRACKING_PASSWORD"]


def test_the_auth_database_url_goes_into_mlflows_config(tmp_path):
    files = credentials.service_secrets(tmp_path, mlflow_auth_db="postgresql+psycopg://mlflow@db-host:5432/mlflow_auth")
    assert "database_uri = postgresql+psycopg://mlflow@db-host:5432/mlflow_auth" in files["mlflow-auth.ini"].read_text()


def test_make_secrets_names_the_files_and_prints_no_secret(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(credentials.DIR_ENV, str(tmp_path / "s"))
    assert credentials.main(["services"]) == 0
    out = capsys.readouterr().out
    server, client = (credentials.read_env(tmp_path / "s" / name) for name in ("services.env", "pipeline.env"))
    secrets = [server["MLFLOW_AUTH_ADMIN_PASSWORD"], server["MLFLOW_FLASK_SERVER_SECRET_KEY"],
               client["MLFLOW_TRACKING_PASSWORD"], client["PREFECT_API_AUTH_STRING"].split(":", 1)[1]]
    assert "services.env" in out and "pipeline.env" in out
    assert not [s for s in secrets if s in out]


def test_mlflow_user_without_the_secrets_says_to_run_make_secrets(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(credentials.DIR_ENV, str(tmp_path / "none"))
    assert credentials.main(["mlflow-user", "http://127.0.0.1:9"]) == 1
    assert "make secrets" in capsys.readouterr().err


def test_the_secrets_folder_is_ignored_by_git():
    for path in (".secrets/services.env", ".secrets/pipeline.env", ".secrets/labelstudio.env"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0, path


def test_label_studio_credentials_generated_at_first_start_then_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_USERNAME", raising=False)
    path = tmp_path / ".secrets" / "labelstudio.env"
    account = service.load_credentials(tmp_path / "data", path=path)  # no database yet: nothing to rotate
    assert _mode(path) == 0o600 and credentials.read_env(path) == account
    assert account["LABEL_STUDIO_USERNAME"] == service.DEFAULT_USERNAME
    assert account["LABEL_STUDIO_API_KEY"] != service.PUBLISHED_API_KEY and len(account["LABEL_STUDIO_API_KEY"]) == 40
    assert len(account["LABEL_STUDIO_PASSWORD"]) >= 20 and account["LABEL_STUDIO_PASSWORD"] != "instructgpt"
    assert service.load_credentials(tmp_path / "data", path=path) == account
    # they reach Label Studio through its environment, not its command line
    env = service.server_env(tmp_path / "data", 8080, account)
    assert env["LABEL_STUDIO_PASSWORD"] == account["LABEL_STUDIO_PASSWORD"]
    assert env["LABEL_STUDIO_USER_TOKEN"] == account["LABEL_STUDIO_API_KEY"]
    assert not set(account.values()) & set(service.server_command("label-studio", 8080))


def test_studio_client_takes_the_local_token_for_a_local_server_only(tmp_path, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    monkeypatch.setenv(credentials.DIR_ENV, str(tmp_path))
    with pytest.raises(StudioError, match="make labelstudio"):
        Studio("http://127.0.0.1:8080")
    credentials.write_env(tmp_path / "labelstudio.env", {"LABEL_STUDIO_API_KEY": "a" * 40}, "test")
    assert Studio("http://127.0.0.1:8080").http.headers["Authorization"] == f"Token {'a' * 40}"
    assert Studio("http://localhost:8080").http.headers["Authorization"] == f"Token {'a' * 40}"
    with pytest.raises(StudioError, match="no API key"):  # never sent to another server
        Studio("https://labels.example.com")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "b" * 40)  # the variable wins
    assert Studio("http://127.0.0.1:8080").http.headers["Authorization"] == f"Token {'b' * 40}"
