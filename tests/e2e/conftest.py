"""A temporary copy of the repository on the tiny profile, and one Prefect server per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAGES = ["ingest", "base", "sft", "label", "rm", "ppo", "ppo_noptx", "label_round2", "rm_round2", "ppo_round2",
          "evaluate"]
# Stage commands run `python` and `dvc` from the environment running the tests.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def git(ws: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=ws, check=True, capture_output=True,
    )


def make_workspace(dest: Path, profile: str = "tiny") -> Path:
    """Copy what git would see of the repo (tracked + untracked, not ignored), commit it, pull the
    demo data and base model, merge the profile into its params.yaml."""
    from flows.profiles import apply_profile, copy_project

    copy_project(REPO, dest)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "workspace")
    # the demo data and the demo's base model: `dvc repro` checks every .dvc file upstream of a
    # stage (the base stage depends on inputs.models, which holds models/demo-base), as make data does
    run(dest, "dvc", "pull", "-q", "data.dvc", *sorted(str(p.relative_to(dest)) for p in dest.glob("models/*.dvc")))
    if profile:
        apply_profile(profile, dest / "params.yaml", dest / "profiles")
    return dest


BYOD = REPO / "tests/fixtures/byod"


def _merge(base: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def byod_workspace(ws: Path, models: str = "byod/models", edit=None) -> Path:
    """A copy of the project with the outside data set tests/fixtures/byod/ as its data (byod/; the
    partition that lands later kept aside), its tiny models built into ``models`` (the fixture's
    own folder, or ``models``: the default ``inputs.models``), the fixture's params.yaml merged in
    (the model paths following ``models``), then ``edit(ws, params)`` when given, committed to git.
    No demo data, no world, the demo model never pulled."""
    from ruamel.yaml import YAML

    from flows.profiles import copy_project

    copy_project(REPO, ws)
    shutil.rmtree(ws / "data", ignore_errors=True)  # no demo data, no world
    shutil.copytree(BYOD, ws / "byod", ignore=shutil.ignore_patterns("*.py", "params.yaml", "__pycache__"))
    shutil.rmtree(ws / "byod/later")  # the partition that lands afterwards
    sys.path.insert(0, str(BYOD))
    try:
        import make_model
    finally:
        sys.path.remove(str(BYOD))
    built = make_model.make_models(ws / models)  # weights are built here, never committed
    y = YAML()
    params = y.load((ws / "params.yaml").read_text())
    _merge(params, y.load((BYOD / "params.yaml").read_text()))
    if models != "byod/models":
        params["inputs"]["models"] = models
        params["base"]["model_path"] = str(built[make_model.POLICY].relative_to(ws))
        params["rm"]["model_path"] = str(built[make_model.REWARD].relative_to(ws))
    if edit is not None:
        edit(ws, params)
    with open(ws / "params.yaml", "w") as f:
        y.dump(params, f)
    git(ws, "init", "-q")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "a team's workspace")
    assert not (ws / "data/world").exists() and not (ws / "models/demo-base").exists()
    return ws


def run(ws: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """A command in workspace ``ws``; its MLflow store is the workspace's own (mlflow.set_tracking_uri
    in this process exports MLFLOW_TRACKING_URI, which must not leak into another workspace)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(cmd, cwd=ws, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def run_flow(ws: Path, monkeypatch) -> list[dict]:
    """The Prefect flow (flows.pipeline) in workspace ``ws``, in this process; its stage outcomes."""
    from flows.pipeline import build_flow

    monkeypatch.chdir(ws)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the workspace's own store
    return build_flow()()


def add_remote(ws: Path, name: str, url: str, default: bool = False, config: dict[str, str] | None = None,
               secrets: dict[str, str] | None = None) -> None:
    """`dvc remote add` (and `modify` per option); ``secrets`` go to .dvc/config.local, never to git."""
    run(ws, "dvc", "remote", "add", "-f", *(["-d"] if default else []), name, url)
    for key, value in (config or {}).items():
        run(ws, "dvc", "remote", "modify", name, key, value)
    for key, value in (secrets or {}).items():
        run(ws, "dvc", "remote", "modify", "--local", name, key, value)


def share_run_cache(ws: Path, dest: Path, url: str, config: dict[str, str] | None = None,
                    secrets: dict[str, str] | None = None) -> tuple[Path, str]:
    """README, scaling out: `dvc push --run-cache` from ``ws`` to the remote at ``url``; a fresh
    workspace ``dest`` fetches the run cache and runs `dvc repro --pull`. Returns it and repro's output."""
    add_remote(ws, "shared", url, config=config, secrets=secrets)
    run(ws, "dvc", "push", "-q", "-r", "shared", "--run-cache")
    other = make_workspace(dest)
    add_remote(other, "shared", url, default=True, config=config, secrets=secrets)
    run(other, "dvc", "fetch", "-q", "--run-cache")
    return other, run(other, "dvc", "repro", "--pull").stdout


def cached_outs(ws: Path) -> dict[str, str]:
    """md5 of every cached stage output recorded in dvc.lock (metrics carry timings: excluded)."""
    import yaml

    lock = yaml.safe_load((ws / "dvc.lock").read_text())
    return {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        # metrics carry timings; the registry decision (and the pairs against the champion) depend on
        # the store's history
        if not out["path"].endswith(("metrics.json", "report.json", "curve.csv", "win_rates.csv", "registry.json",
                                     "champion_pairs.jsonl"))
    }


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server for the whole session (it takes seconds to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("ws"))
