"""A workspace on the tiny profile per module (tests/workspace.py), the flow, DVC remotes and the run
cache between workspaces, and one Prefect server per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workspace import make_workspace, run

STAGES = ["ingest", "base", "sft", "label", "rm", "ppo", "ppo_noptx", "label_round2", "rm_round2", "ppo_round2",
          "evaluate"]


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
