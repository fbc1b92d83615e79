"""The services' secrets: generated here, kept in one private folder, never in git or in a log.

The folder is ``INSTRUCTGPT_SECRETS`` (the Makefile sets it to the checkout's ``.secrets/``, an
absolute path, so a profile's workspace finds it too), else ``.secrets/`` of the working directory.
It is created mode 0700 and each file mode 0600; ``.gitignore`` lists ``/.secrets/``. The ``.env``
files are ``KEY=value`` lines that a shell loads with ``set -a; . FILE; set +a``.

- ``services.env`` (the host of the shared servers, docs/SCALE.md section 7): MLflow's admin
  password and Flask secret key, the path of MLflow's auth config, Prefect's server auth string.
- ``pipeline.env`` (every machine that runs stages, flows or workers): the pipeline's MLflow account
  (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``, not an admin) and
  ``PREFECT_API_AUTH_STRING``.
- ``mlflow-auth.ini``: MLflow's basic-auth config (``MLFLOW_AUTH_CONFIG_PATH``): its user database,
  default permission READ, the admin's name.
- ``labelstudio.env``: Label Studio's account and API token, written at its first start
  (``instructgpt.labeling.service``).

    python -m instructgpt.credentials services [--mlflow-auth-db URI]   # make secrets
    python -m instructgpt.credentials mlflow-user http://mlflow-host:5000  # the pipeline's account

Nothing here prints a secret: the commands name the files that hold them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import httpx

DIR_ENV = "INSTRUCTGPT_SECRETS"
DEFAULT_DIR = Path(".secrets")
SERVICES = "services.env"
PIPELINE = "pipeline.env"
MLFLOW_AUTH_INI = "mlflow-auth.ini"
LABEL_STUDIO = "labelstudio.env"
MLFLOW_ADMIN = "admin"
PIPELINE_USER = "pipeline"
# Prefect compares the whole decoded Basic credential with this string: a name and a secret
PREFECT_USER = "instructgpt"


class CredentialsError(RuntimeError):
    """A secrets file is missing or a service refused the set-up (the message says what to do)."""


def secrets_dir() -> Path:
    """Where the secrets live: ``INSTRUCTGPT_SECRETS``, else ``.secrets/`` here."""
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)


def new_secret(nbytes: int = 32) -> str:
    """A random URL-safe string of ``nbytes`` bytes of entropy (shell- and URL-safe characters)."""
    return secrets.token_urlsafe(nbytes)


def read_env(path: str | Path) -> dict[str, str]:
    """``KEY=value`` lines of ``path`` (comments and blank lines skipped)."""
    values = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def write_private(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (0600, in a 0700 folder made if missing);
    atomically, so that no reader ever sees half a file."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_env(path: str | Path, values: Mapping[str, str], comment: str) -> Path:
    """``values`` as ``KEY=value`` lines under a ``# comment`` header, via ``write_private``."""
    lines = [f"# {line}" for line in comment.splitlines()] + [f"{k}={v}" for k, v in values.items()]
    return write_private(path, "\n".join(lines) + "\n")


def _sqlite_default(folder: Path) -> str:
    return f"sqlite:///{(folder / 'mlflow-auth.db').resolve()}"


def service_secrets(folder: str | Path | None = None, mlflow_auth_db: str | None = None) -> dict[str, Path]:
    """Generate the shared services' secrets into ``folder`` (``secrets_dir()``); a file that exists
    is kept as it is, so running it again changes nothing. Returns the three files by name.

    ``mlflow_auth_db``: the SQLAlchemy URL of MLflow's user database (a PostgreSQL database of its
    own on a shared set-up), else a SQLite file in the folder."""
    folder = Path(folder) if folder is not None else secrets_dir()
    ini, services, pipeline = folder / MLFLOW_AUTH_INI, folder / SERVICES, folder / PIPELINE
    if not ini.exists():
        write_private(ini, "\n".join([
            "# MLflow's basic-auth app (mlflow server --app-name basic-auth), written by `make secrets`;",
            "# the admin's password is MLFLOW_AUTH_ADMIN_PASSWORD (services.env), read at its first start",
            "[mlflow]",
            "default_permission = READ",
            f"database_uri = {mlflow_auth_db or _sqlite_default(folder)}",
            f"admin_username = {MLFLOW_ADMIN}",
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth", ""]))
    # one Prefect string, on both sides: the server's setting and the clients' one
    prefect = (read_env(services).get("PREFECT_SERVER_API_AUTH_STRING") if services.exists() else None) \
        or (read_env(pipeline).get("PREFECT_API_AUTH_STRING") if pipeline.exists() else None) \
        or f"{PREFECT_USER}:{new_secret()}"
    if not services.exists():
        write_env(services, {
            "MLFLOW_AUTH_CONFIG_PATH": str(ini.resolve()),
            "MLFLOW_AUTH_ADMIN_PASSWORD": new_secret(),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": new_secret(),
            "PREFECT_SERVER_API_AUTH_STRING": prefect,
        }, "the shared servers' side (docs/SCALE.md, section 7): keep on the host that runs them\n"
           "MLflow's admin password only takes effect when its user database is new")
    if not pipeline.exists():
        write_env(pipeline, {
            "MLFLOW_TRACKING_USERNAME": PIPELINE_USER,
            "MLFLOW_TRACKING_PASSWORD": new_secret(),
            "PREFECT_API_AUTH_STRING": prefect,
        }, "every machine that runs stages, flows or workers (docs/SCALE.md, section 7);\n"
           "the MLflow account is made by `python -m instructgpt.credentials mlflow-user URL`")
    return {MLFLOW_AUTH_INI: ini, SERVICES: services, PIPELINE: pipeline}


def _read(folder: Path, name: str) -> dict[str, str]:
    path = folder / name
    if not path.exists():
        raise CredentialsError(f"{path} is missing: run `make secrets` (python -m instructgpt.credentials services) "
                               f"on the services' host first")
    return read_env(path)


def mlflow_pipeline_user(url: str, folder: str | Path | None = None, timeout: float = 30.0) -> str:
    """As MLflow's admin (``services.env``), make the pipeline's account of ``pipeline.env`` on the
    tracking server at ``url``, or set its password to the file's when it exists already.
    Returns ``"created"`` or ``"password updated"``."""
    folder = Path(folder) if folder is not None else secrets_dir()
    admin = _read(folder, SERVICES)["MLFLOW_AUTH_ADMIN_PASSWORD"]
    user = _read(folder, PIPELINE)
    name, password = user["MLFLOW_TRACKING_USERNAME"], user["MLFLOW_TRACKING_PASSWORD"]
    with httpx.Client(base_url=url.rstrip("/"), auth=(MLFLOW_ADMIN, admin), timeout=timeout) as http:
        found = http.get("/api/2.0/mlflow/users/get", params={"username": name})
        if found.status_code == 401:
            raise CredentialsError(f"{url} refused the admin password of {folder / SERVICES} (401): it applies only "
                                   f"to a new user database; change it with MLflow's users/update-password API")
        if found.status_code == 200:
            resp = http.patch("/api/2.0/mlflow/users/update-password", json={"username": name, "password": password})
            done = "password updated"
        elif found.status_code != 404:
            raise CredentialsError(f"{url}: looking up the MLflow user '{name}' failed ({found.status_code}): "
                                   f"{found.text[:300]}")
        else:
            resp = http.post("/api/2.0/mlflow/users/create", json={"username": name, "password": password})
            done = "created"
    if resp.status_code != 200:  # the body is MLflow's message, never the password
        raise CredentialsError(f"{url}: making the MLflow user '{name}' failed ({resp.status_code}): {resp.text[:300]}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m instructgpt.credentials", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("services", help="generate the shared services' secrets (kept if they exist)")
    gen.add_argument("--mlflow-auth-db", help="SQLAlchemy URL of MLflow's user database (default: a SQLite file "
                                              "in the secrets folder)")
    user = sub.add_parser("mlflow-user", help="as MLflow's admin, make the pipeline's account on the server")
    user.add_argument("url", help="the tracking server, e.g. http://mlflow-host:5000")
    args = parser.parse_args(argv)
    try:
        if args.command == "services":
            files = service_secrets(mlflow_auth_db=args.mlflow_auth_db)
            print(f"secrets in {secrets_dir()}/ (mode 0600, git-ignored):")
            print(f"  {files[SERVICES]}  the servers' host (set -a; . {files[SERVICES]}; set +a)")
            print(f"  {files[PIPELINE]}  every machine that runs stages or workers (copy it; load it the same way)")
            print(f"  {files[MLFLOW_AUTH_INI]}  MLflow's basic-auth config (MLFLOW_AUTH_CONFIG_PATH)")
        else:
            done = mlflow_pipeline_user(args.url)
            print(f"MLflow user '{PIPELINE_USER}' on {args.url}: {done} (password: {secrets_dir() / PIPELINE})")
    except (CredentialsError, httpx.HTTPError) as exc:
        print(f"credentials: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
