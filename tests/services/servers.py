"""Real services for the scale-out tests, each started in a temp dir on 127.0.0.1 and a free port,
and stopped (with everything it started) when its context ends.

- PostgreSQL: Debian's server binaries (PATH, then /usr/lib/postgresql/*/bin). initdb refuses to
  run as root, so as root the server runs as the ``postgres`` user (``nobody`` without one).
- MLflow: `mlflow server --app-name basic-auth` on that database, serving artifacts from a folder of
  its own, with the secrets `make secrets` generates (instructgpt/credentials.py) and the
  pipeline's account made as docs/SCALE.md says.
- S3: moto's standalone server (`moto_server`), an S3-compatible endpoint with a bucket.
- Prefect: `prefect server start` with a PREFECT_HOME of its own and the generated auth string.

A missing binary skips the test with a message that says what to install.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
# Never a credential or region lookup outside this machine (the instance metadata endpoint).
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true"}


def flow_run_logs(client, flow_run_id, page: int = 200) -> list[str]:
    """Every log message of one flow run, oldest first. The server answers at most ``page`` per
    call, and a run that waited for its deployment's slot logs each aborted submission, so one
    call can end before the pipeline's stages do."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    messages: list[str] = []
    while True:
        batch = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                 sort=LogSort.TIMESTAMP_ASC, limit=page, offset=len(messages))
        messages += [log.message for log in batch]
        if len(batch) < page:
            return messages


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# what points a process at a service or logs it in (docs/SCALE.md): never inherited from the test's own
SERVICE_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PREFECT_API_URL",
                "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING")


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without the address or credentials of another service."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env.update(extra)
    return env


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen, log: Path, what: str, timeout: float) -> None:
    """Poll ``ready`` until it is true; fail with the service's log if it exits or times out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def http_ok(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200
    return ready


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, group: bool = True) -> None:
    """Stop a service (its whole process group when it was started in a session of its own)."""
    def send(signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signum)
            else:
                proc.send_signal(signum)

    if proc.poll() is not None:
        return
    send(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def service(cmd: list[str], log: Path, env: dict[str, str], ready: Callable[[], bool], what: str,
            timeout: float = 180.0, **popen) -> Iterator[subprocess.Popen]:
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **popen)
    try:
        wait_until(ready, proc, log, what, timeout)
        yield proc
    finally:
        stop(proc)


# --- PostgreSQL ----------------------------------------------------------------------------------

def postgres_bindir() -> Path | None:
    """The folder holding initdb and postgres: PATH first, then Debian's versioned folders."""
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "postgres").exists():
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                        if Path(p).parent.name.isdigit() else 0)
    for cand in reversed(candidates):
        if (Path(cand) / "initdb").exists() and (Path(cand) / "postgres").exists():
            return Path(cand)
    return None


def _unprivileged() -> dict:
    """Popen arguments that drop root for PostgreSQL (initdb and postgres refuse to run as root)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pw = pwd.getpwnam(name)
            return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    pytest.skip("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as")


@dataclass
class Postgres:
    port: int
    user: str = "instructgpt"
    database: str = "mlflow"

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver), what `mlflow server --backend-store-uri` takes."""
        return self.url_of(self.database)

    def url_of(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        with self.connect("postgres") as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url_of(name)

    def connect(self, database: str | None = None):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                               dbname=database or self.database, connect_timeout=3, autocommit=True)


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster in a temp dir (trust auth, 127.0.0.1 only) with an empty database."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[services]')")
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin "
                    "(Debian: apt-get install postgresql)")
    drop = _unprivileged()
    # Not under pytest's tmp_path: that folder is root's alone, the server's user must own its dir.
    root = Path(tempfile.mkdtemp(prefix="instructgpt-pg-"))
    if drop:
        os.chown(root, drop["user"], drop["group"])
    db = Postgres(port=free_port())
    try:
        init = subprocess.run([str(bindir / "initdb"), "-D", str(root / "data"), "-U", db.user, "--auth=trust",
                               "-E", "UTF8", "--no-locale", "--no-sync"],
                              cwd=root, capture_output=True, text=True, **drop)
        assert init.returncode == 0, f"initdb failed:\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}"
        cmd = [str(bindir / "postgres"), "-D", str(root / "data"), "-h", "127.0.0.1", "-p", str(db.port),
               "-k", str(root), "-c", "fsync=off"]

        def ready() -> bool:
            with db.connect("postgres"):
                return True

        with open(root / "postgres.log", "w") as out:
            proc = subprocess.Popen(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    **drop)
        try:
            wait_until(ready, proc, root / "postgres.log", "postgres", 60)
            with db.connect("postgres") as conn:
                conn.execute(f"CREATE DATABASE {db.database}")
            yield db
        finally:
            stop(proc, signal.SIGINT, group=False)  # SIGINT: PostgreSQL's fast shutdown
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- MLflow ----------------------------------------------------------------------------------------

@dataclass
class MlflowServer:
    url: str
    artifacts: Path
    env: dict[str, str]
    """What a machine that runs stages sets: MLFLOW_TRACKING_URI and the pipeline's account."""
    log: Path

    @property
    def login(self) -> tuple[str, str]:
        return self.env["MLFLOW_TRACKING_USERNAME"], self.env["MLFLOW_TRACKING_PASSWORD"]


@contextlib.contextmanager
def mlflow_server(backend_uri: str, workdir: Path, secrets: Path) -> Iterator[MlflowServer]:
    """`mlflow server --app-name basic-auth` on ``backend_uri`` that serves artifacts from
    ``workdir/artifacts``, started with ``secrets/services.env`` as docs/SCALE.md starts it; the
    pipeline's account of ``secrets/pipeline.env`` is made once it answers."""
    from instructgpt import credentials

    exe = VENV_BIN / "mlflow"
    if not exe.exists():
        pytest.skip(f"no mlflow executable at {exe}")
    port = free_port()
    artifacts = workdir / "artifacts"
    artifacts.mkdir(parents=True)
    cmd = [str(exe), "server", "--app-name", "basic-auth", "--backend-store-uri", backend_uri, "--serve-artifacts",
           "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    url, log = f"http://127.0.0.1:{port}", workdir / "mlflow-server.log"
    with service(cmd, log, clean_env(**credentials.read_env(secrets / credentials.SERVICES)), http_ok(f"{url}/health"),
                 "mlflow server", cwd=workdir):
        credentials.mlflow_pipeline_user(url, secrets)
        client = credentials.read_env(secrets / credentials.PIPELINE)
        yield MlflowServer(url, artifacts, {"MLFLOW_TRACKING_URI": url, **{k: client[k] for k in (
            "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}}, log)


# --- S3 (moto) -----------------------------------------------------------------------------------

@dataclass
class S3:
    endpoint: str
    bucket: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
                            region_name=S3_ENV["AWS_DEFAULT_REGION"])

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


@contextlib.contextmanager
def s3_server(workdir: Path, bucket: str = "instructgpt-dvc") -> Iterator[S3]:
    """moto's S3-compatible server with one empty bucket."""
    exe = VENV_BIN / "moto_server"
    if not exe.exists():
        pytest.skip(f"no moto_server at {exe} (pip install 'moto[server]', part of the test extra)")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with service([str(exe), "-H", "127.0.0.1", "-p", str(port)], workdir / "moto.log", clean_env(**S3_ENV),
                 http_ok(f"{endpoint}/moto-api/"), "moto_server", timeout=60):
        s3 = S3(endpoint, bucket)
        s3.client().create_bucket(Bucket=bucket)
        yield s3


# --- Prefect ---------------------------------------------------------------------------------------

@dataclass
class PrefectServer:
    url: str
    env: dict[str, str]
    """An environment pointing at this server and holding its auth string (never put in os.environ:
    nothing else talks to it)."""
    log: Path

    @property
    def auth_string(self) -> str:
        return self.env["PREFECT_API_AUTH_STRING"]


@contextlib.contextmanager
def prefect_server(workdir: Path, secrets: Path, **settings: str) -> Iterator[PrefectServer]:
    """`prefect server start` with its own PREFECT_HOME and the auth string of ``secrets/services.env``
    (the clients' is in ``secrets/pipeline.env``); ``settings`` go to the server's environment."""
    from instructgpt import credentials

    exe = VENV_BIN / "prefect"
    if not exe.exists():
        pytest.skip(f"no prefect executable at {exe}")
    port = free_port()
    url, log = f"http://127.0.0.1:{port}/api", workdir / "prefect-server.log"
    auth = credentials.read_env(secrets / credentials.SERVICES)["PREFECT_SERVER_API_AUTH_STRING"]
    env = clean_env(PREFECT_HOME=str(workdir / "prefect-home"), PREFECT_API_URL=url,
                    PREFECT_API_AUTH_STRING=credentials.read_env(secrets / credentials.PIPELINE)["PREFECT_API_AUTH_STRING"])
    cmd = [str(exe), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server_env = {**{k: v for k, v in env.items() if k != "PREFECT_API_AUTH_STRING"},
                  "PREFECT_SERVER_API_AUTH_STRING": auth, **settings}
    with service(cmd, log, server_env, http_ok(f"{url}/health"), "prefect server"):
        yield PrefectServer(url, env, log)
