"""Pipeline workspaces for the tests, built in one place.

- `make_workspace`: a copy of the repository as a team's clone is (git-committed), on the demo data
  and base model with a profile, or on the outside data set tests/fixtures/byod/; stages run in it
  as processes (`run`: dvc, python -m ...).
- `write_project` and `stage_dir`: a small project folder (dvc.yaml, params.yaml, whatever files a
  test adds) that one stage runs in inside the test process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BYOD = REPO / "tests/fixtures/byod"
# Stage commands run `python` and `dvc` from the environment running the tests.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def git(ws: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=ws, check=True, capture_output=True,
    )


def run(ws: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """A command in workspace ``ws``; its MLflow store is the workspace's own (mlflow.set_tracking_uri
    in this process exports MLFLOW_TRACKING_URI, which must not leak into another workspace)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(cmd, cwd=ws, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def merge(base: dict, over: dict) -> None:
    """``over`` into ``base`` in place, section by section (a nested dict updates the one it meets)."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v


def make_workspace(dest: Path, profile: str = "tiny", *, demo_model: bool = True, byod: bool = False,
                   models: str = "byod/models", edit: Callable[[Path, dict], None] | None = None) -> Path:
    """A copy of what git would see of the repo (tracked + untracked, not ignored) at ``dest``, committed
    to a fresh git repository.

    On the demo (``byod=False``): after the commit, the demo data and base model (not the model with
    ``demo_model=False``: a team's own model) are pulled and ``profile`` (none when empty) is merged
    into params.yaml, then ``edit(ws, params)`` when given.

    On a team's own data (``byod=True``, ``profile`` unused): tests/fixtures/byod/ is the data (byod/;
    the partition that lands later kept aside), its tiny models are built into ``models`` (the
    fixture's own folder, or ``models``: the default ``inputs.models``), the fixture's params.yaml is
    merged in (the model paths following ``models``), then ``edit(ws, params)`` when given, all
    before the commit. No demo data, no world, the demo model never pulled."""
    from flows.profiles import apply_profile, copy_project

    copy_project(REPO, dest)
    if byod:
        _byod_data(dest, models, edit)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "workspace" if demo_model and not byod else "a team's workspace")
    if byod:
        assert not (dest / "data/world").exists() and not (dest / "models/demo-base").exists()
        return dest
    # the demo data and the demo's base model: `dvc repro` checks every .dvc file upstream of a
    # stage (the base stage depends on inputs.models, which holds models/demo-base), as make data does
    pointers = sorted(str(p.relative_to(dest)) for p in dest.glob("models/*.dvc")) if demo_model else []
    run(dest, "dvc", "pull", "-q", "data.dvc", *pointers)
    if profile:
        apply_profile(profile, dest / "params.yaml", dest / "profiles")
    if edit is not None:
        _edit_params(dest, edit)
    return dest


def _byod_data(ws: Path, models: str, edit: Callable[[Path, dict], None] | None) -> None:
    shutil.rmtree(ws / "data", ignore_errors=True)  # no demo data, no world
    shutil.copytree(BYOD, ws / "byod", ignore=shutil.ignore_patterns("*.py", "params.yaml", "__pycache__"))
    shutil.rmtree(ws / "byod/later")  # the partition that lands afterwards
    sys.path.insert(0, str(BYOD))
    try:
        import make_model
    finally:
        sys.path.remove(str(BYOD))
    built = make_model.make_models(ws / models)  # weights are built here, never committed

    def byod_params(ws: Path, params: dict) -> None:
        from ruamel.yaml import YAML

        merge(params, YAML().load((BYOD / "params.yaml").read_text()))
        if models != "byod/models":
            params["inputs"]["models"] = models
            params["base"]["model_path"] = str(built[make_model.POLICY].relative_to(ws))
            params["rm"]["model_path"] = str(built[make_model.REWARD].relative_to(ws))
        if edit is not None:
            edit(ws, params)

    _edit_params(ws, byod_params)


def _edit_params(ws: Path, edit: Callable[[Path, dict], None]) -> None:
    """``edit(ws, params)`` on the workspace's params.yaml, its comments kept (ruamel)."""
    from ruamel.yaml import YAML

    y = YAML()
    params = y.load((ws / "params.yaml").read_text())
    edit(ws, params)
    with open(ws / "params.yaml", "w") as f:
        y.dump(params, f)


def repo_params() -> dict:
    """The repository's params.yaml, for a test to edit and write with `write_project`."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


def write_project(dest: Path, params: dict | str, *, dvc_yaml: str | None = None, sort_keys: bool = True) -> Path:
    """A project's two files in ``dest``: the repository's dvc.yaml (or the text ``dvc_yaml``) and
    ``params`` as params.yaml (a dict dumped as YAML, or the file's text)."""
    dest.mkdir(parents=True, exist_ok=True)
    if dvc_yaml is None:
        shutil.copy(REPO / "dvc.yaml", dest / "dvc.yaml")
    else:
        (dest / "dvc.yaml").write_text(dvc_yaml)
    (dest / "params.yaml").write_text(params if isinstance(params, str) else yaml.safe_dump(params, sort_keys=sort_keys))
    return dest


@contextmanager
def stage_dir(path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``path`` as the working directory of a stage run in this process, MLflow off, and the inputs
    section of params.yaml re-read (tasks.inputs caches it per process) on entry and on exit."""
    from tasks import inputs

    monkeypatch.chdir(path)
    monkeypatch.setenv("INSTRUCTGPT_NO_MLFLOW", "1")
    inputs._inputs_section.cache_clear()
    try:
        yield path
    finally:
        inputs._inputs_section.cache_clear()


def set_params(ws: Path, section: str, **values) -> None:
    """Update one section of ``ws``'s params.yaml (key order kept)."""
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params[section].update(values)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
