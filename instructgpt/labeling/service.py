"""Label Studio as a separate local service, in its own venv (never the project's).

    python -m instructgpt.labeling.service      # what `make labelstudio` runs

creates ``.labelstudio/venv`` with ``label-studio==1.23.2`` when it is missing (about a minute
from the package index), then starts it in the foreground bound to 127.0.0.1 only (port
``LABEL_STUDIO_PORT``, default 8080), offline (no version check, no analytics), with its SQLite
database and files in ``.labelstudio/data``. The first start creates the account
``LABEL_STUDIO_USERNAME`` / ``LABEL_STUDIO_PASSWORD`` and an organisation whose legacy API token
is ``LABEL_STUDIO_API_KEY`` (legacy tokens are off by default in Label Studio 1.23; this starts
it with ``--enable-legacy-api-token`` so that the known token works at once). A personal access
token from Account & Settings works too (`instructgpt.labeling.studio`).

The defaults are for a service on your own machine, reachable from it only; set the three
variables to your own values before the first start (they are kept in ``.labelstudio/data``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

VERSION = "1.23.2"
HOME = Path(".labelstudio")
DEFAULT_PORT = 8080
DEFAULT_USERNAME = "admin@example.com"
DEFAULT_PASSWORD = "instructgpt"
DEFAULT_API_KEY = "instructgpt-local-token"  # legacy token: more than 5 characters, as Label Studio wants


class ServiceError(RuntimeError):
    """Label Studio could not be installed or started (the message says why)."""


def executable(venv: Path) -> Path:
    return venv / "bin" / "label-studio"


def ensure_venv(venv: str | Path = HOME / "venv", python: str | None = None, quiet: bool = True) -> Path:
    """The ``label-studio`` executable of ``venv``, installing label-studio there first if needed."""
    venv = Path(venv)
    marker = venv / f".installed-{VERSION}"
    if marker.exists() and executable(venv).exists():
        return executable(venv)
    python = python or os.environ.get("LABEL_STUDIO_PYTHON") or sys.executable
    steps = [[python, "-m", "venv", "--clear", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", *(["--quiet"] if quiet else []),
              "--disable-pip-version-check", f"label-studio=={VERSION}"]]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=quiet, text=True)
        if proc.returncode != 0:
            raise ServiceError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                               f"{(proc.stderr or '')[-2000:] if quiet else 'see above'}")
    marker.touch()
    return executable(venv)


def server_env(data_dir: str | Path, port: int) -> dict[str, str]:
    """Environment of the server: its data directory, offline, and nothing of the project's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LABEL_STUDIO_", "VIRTUAL_ENV", "PYTHON")) and k not in ("HOST", "PORT")}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(Path(data_dir).resolve()),
        "LABEL_STUDIO_HOST": f"http://127.0.0.1:{port}",
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",  # would ask the package index at every start
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
    })
    return env


def server_command(exe: str | Path, port: int, username: str, password: str, api_key: str) -> list[str]:
    """``label-studio start`` bound to 127.0.0.1 (``--internal-host``; ``--host`` only names the URL)."""
    return [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
            "--username", username, "--password", password, "--user-token", api_key, "--enable-legacy-api-token"]


def start(port: int, data_dir: str | Path, username: str = DEFAULT_USERNAME, password: str = DEFAULT_PASSWORD,
          api_key: str = DEFAULT_API_KEY, venv: str | Path = HOME / "venv", log: Path | None = None) -> subprocess.Popen:
    """Start Label Studio in the background and wait until it answers; the caller stops it."""
    exe = ensure_venv(venv)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(server_command(exe, port, username, password, api_key), env=server_env(data_dir, port),
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}", proc, log=log)
    return proc


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 180.0, log: Path | None = None) -> None:
    """Poll ``/health`` until Label Studio answers (it migrates its database on the first start)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise ServiceError(f"Label Studio exited with code {proc.returncode} while starting\n{tail}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ServiceError(f"Label Studio did not answer at {url}/health within {timeout:.0f} s")


def main() -> int:
    """Install if needed, then become Label Studio in the foreground (Ctrl-C stops it)."""
    port = int(os.environ.get("LABEL_STUDIO_PORT") or DEFAULT_PORT)
    username = os.environ.get("LABEL_STUDIO_USERNAME") or DEFAULT_USERNAME
    password = os.environ.get("LABEL_STUDIO_PASSWORD") or DEFAULT_PASSWORD
    api_key = os.environ.get("LABEL_STUDIO_API_KEY") or DEFAULT_API_KEY
    venv = HOME / "venv"
    if not (venv / f".installed-{VERSION}").exists():
        print(f"[labelstudio] installing label-studio=={VERSION} into {venv} (about a minute) ...", flush=True)
    try:
        exe = ensure_venv(venv, quiet=False)
    except ServiceError as exc:
        print(f"[labelstudio] {exc}", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{port}"
    print(f"""[labelstudio] starting Label Studio {VERSION} on {url} (data: {HOME / 'data'}); Ctrl-C stops it.
  log in        : {username} / {'(LABEL_STUDIO_PASSWORD)' if os.environ.get('LABEL_STUDIO_PASSWORD') else password}
  API token     : LABEL_STUDIO_API_KEY={'(yours)' if os.environ.get('LABEL_STUDIO_API_KEY') else api_key} (legacy token, enabled at the first start);
                  or a personal access token: Account & Settings > Personal Access Token
  then          : make labels-push   (export tasks from labels/outbox/ into projects)
                  make labels-pull   (answers into labels/rankings/ and labels/judgements/)
  labelers      : Organization > Add people (invite link), or as the admin, via the API""", flush=True)
    cmd = server_command(exe, port, username, password, api_key)
    os.execve(cmd[0], cmd, server_env(HOME / "data", port))  # the server takes this process: signals reach it


if __name__ == "__main__":
    raise SystemExit(main())
