"""Label Studio as a separate local service, in its own venv (never the project's).

    python -m instructgpt.labeling.service      # what `make labelstudio` runs

creates ``.labelstudio/venv`` with ``label-studio==1.23.2`` when it is missing (about a minute
from the package index), then starts it in the foreground bound to 127.0.0.1 only (port
``LABEL_STUDIO_PORT``, default 8080), offline (no version check, no analytics), with its SQLite
database and files in ``.labelstudio/data``.

Its account is made at the first start: the user ``LABEL_STUDIO_USERNAME`` (default
admin@example.com) with a password and a legacy API token generated then and written to
``labelstudio.env`` in the secrets folder (``.secrets/``, mode 0600, git-ignored;
``instructgpt.credentials``), which ``make labels-push`` / ``labels-pull`` read. They reach Label
Studio through its environment, never its command line (which any local user can list). Legacy
tokens are off by default in Label Studio 1.23; it is started with ``--enable-legacy-api-token`` so
that the generated token works at once. A personal access token from Account & Settings works too
(`instructgpt.labeling.studio`).

A data folder that has a database but no credentials file (one made before they were generated,
with the token every copy of this project once shared, or one whose file was deleted to rotate
them) gets new ones at the next start: the account's password and token are replaced, and any
account still holding the formerly published token gets a random one.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

from instructgpt import credentials

VERSION = "1.23.2"
HOME = Path(".labelstudio")
DEFAULT_PORT = 8080
DEFAULT_USERNAME = "admin@example.com"
# the token every Label Studio of this project was started with before tokens were generated
PUBLISHED_API_KEY = "instructgpt-local-token"
DATABASE = "label_studio.sqlite3"  # Label Studio's SQLite file in its data folder


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


def server_env(data_dir: str | Path, port: int, account: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the server: its data directory, offline, nothing of the project's, and the
    account ``account`` (``load_credentials``) that its first start creates."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LABEL_STUDIO_", "VIRTUAL_ENV", "PYTHON")) and k not in ("HOST", "PORT")}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(Path(data_dir).resolve()),
        "LABEL_STUDIO_HOST": f"http://127.0.0.1:{port}",
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",  # would ask the package index at every start
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
    })
    if account:  # what `label-studio start` reads for --username / --password / --user-token
        env.update({"LABEL_STUDIO_USERNAME": account["LABEL_STUDIO_USERNAME"],
                    "LABEL_STUDIO_PASSWORD": account["LABEL_STUDIO_PASSWORD"],
                    "LABEL_STUDIO_USER_TOKEN": account["LABEL_STUDIO_API_KEY"]})
    return env


def server_command(exe: str | Path, port: int) -> list[str]:
    """``label-studio start`` bound to 127.0.0.1 (``--internal-host``; ``--host`` only names the URL)."""
    return [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
            "--enable-legacy-api-token"]


def credentials_file() -> Path:
    """Where the account and token live: ``labelstudio.env`` in the secrets folder."""
    return credentials.secrets_dir() / credentials.LABEL_STUDIO


# Run by the Label Studio venv's Python on a data folder whose account predates its credentials
# file: Label Studio's start only creates a missing user, it never changes an existing one.
_ROTATE = f"""
import os
from label_studio.server import _apply_database_migrations, _setup_env
_setup_env()
_apply_database_migrations()
from rest_framework.authtoken.models import Token
from users.models import User
user = User.objects.filter(email=os.environ["LABEL_STUDIO_USERNAME"]).first()
if user is not None:
    user.set_password(os.environ["LABEL_STUDIO_PASSWORD"])
    user.save()
    Token.objects.filter(user=user).delete()
    Token.objects.create(user=user, key=os.environ["LABEL_STUDIO_USER_TOKEN"])
for token in Token.objects.filter(key={PUBLISHED_API_KEY!r}):
    token.user.reset_token()
"""


def load_credentials(data_dir: str | Path, venv: str | Path = HOME / "venv", path: Path | None = None) -> dict[str, str]:
    """The account Label Studio starts with: read from ``path`` (``credentials_file()``), or at the
    first start generated, set on an existing database (see the module's docstring) and written."""
    path = Path(path) if path is not None else credentials_file()
    if path.exists():
        return credentials.read_env(path)
    account = {"LABEL_STUDIO_USERNAME": os.environ.get("LABEL_STUDIO_USERNAME") or DEFAULT_USERNAME,
               "LABEL_STUDIO_PASSWORD": credentials.new_secret(18),
               # a legacy token is a DRF Token key: 40 characters
               "LABEL_STUDIO_API_KEY": secrets.token_hex(20)}
    if (Path(data_dir) / DATABASE).exists():
        proc = subprocess.run([str(Path(venv) / "bin" / "python"), "-c", _ROTATE], env=server_env(data_dir, 0, account),
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:  # the file is written only once the database holds the same values
            raise ServiceError(f"could not set the new credentials on {data_dir}: {proc.stderr[-2000:]}")
    credentials.write_env(path, account, "Label Studio's account and API token (make labelstudio), generated at its "
                                         "first start;\nmake labels-push / labels-pull read the token from here")
    return account


def start(port: int, data_dir: str | Path, venv: str | Path = HOME / "venv", log: Path | None = None,
          credentials_path: Path | None = None) -> subprocess.Popen:
    """Start Label Studio in the background and wait until it answers; the caller stops it."""
    exe = ensure_venv(venv)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    account = load_credentials(data_dir, venv, credentials_path)
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(server_command(exe, port), env=server_env(data_dir, port, account),
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
    venv, data = HOME / "venv", HOME / "data"
    if not (venv / f".installed-{VERSION}").exists():
        print(f"[labelstudio] installing label-studio=={VERSION} into {venv} (about a minute) ...", flush=True)
    try:
        exe = ensure_venv(venv, quiet=False)
        account = load_credentials(data, venv)
    except ServiceError as exc:
        print(f"[labelstudio] {exc}", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{port}"
    print(f"""[labelstudio] starting Label Studio {VERSION} on {url} (data: {data}); Ctrl-C stops it.
  log in        : {account['LABEL_STUDIO_USERNAME']}, the password LABEL_STUDIO_PASSWORD in {credentials_file()}
  API token     : LABEL_STUDIO_API_KEY in the same file (generated at the first start, mode 0600, not in git);
                  make labels-push / labels-pull read it. Or a personal access token: Account & Settings
  then          : make labels-push   (export tasks from labels/outbox/ into projects)
                  make labels-pull   (answers into labels/rankings/ and labels/judgements/)
  labelers      : Organization > Add people (invite link), or as the admin, via the API""", flush=True)
    cmd = server_command(exe, port)
    os.execve(cmd[0], cmd, server_env(data, port, account))  # the server takes this process: signals reach it


if __name__ == "__main__":
    raise SystemExit(main())
