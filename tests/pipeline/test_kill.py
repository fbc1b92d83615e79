"""A real stage process killed with SIGKILL mid-training resumes and ends with the same weights.

The in-process resume tests (tests/core/test_resume.py) raise an exception at a chosen step; this
one kills `python -m tasks.base` from outside, as the OOM killer or a pre-empted machine would,
so nothing in the process gets to clean up or flush.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.helpers import same_weights
from tests.workspace import make_workspace

pytestmark = pytest.mark.e2e  # real stage processes in a copy of the repository, ~1 min

MAX_STEPS, CHECKPOINT_EVERY = 16, 4
# Short enough to run three times in about a minute, long enough to be killed mid-way.
BASE_OVERRIDES = {
    "max_documents": 300,
    "nlp_task_items": 8,
    "train": {"max_steps": MAX_STEPS, "checkpoint_every": CHECKPOINT_EVERY, "log_every": 1, "batch_size": 8,
              "block_size": 64, "warmup": 2},
}


def _merge(node: dict, override: dict) -> None:
    for key, value in override.items():
        if isinstance(value, dict):
            _merge(node[key], value)
        else:
            node[key] = value


def _start(ws: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["INSTRUCTGPT_NO_MLFLOW"] = "1"
    log = open(ws / "stage.log", "ab")  # a file, not a pipe: a full pipe would stall the stage
    return subprocess.Popen([sys.executable, "-m", "tasks.base"], cwd=ws, env=env, stdout=log, stderr=log)


def _finish(ws: Path) -> None:
    proc = _start(ws)
    assert proc.wait(timeout=300) == 0, (ws / "stage.log").read_text()[-3000:]


def _train_steps(ws: Path) -> list[int]:
    import pandas as pd

    curve = pd.read_csv(ws / "outputs/base/curve.csv")
    return curve.loc[curve["train_loss"].notna(), "step"].astype(int).tolist()


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory) -> tuple[Path, Path]:
    ws = make_workspace(tmp_path_factory.mktemp("kill"))
    params = yaml.safe_load((ws / "params.yaml").read_text())
    _merge(params["base"], BASE_OVERRIDES)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    other = tmp_path_factory.mktemp("uninterrupted") / "ws"
    shutil.copytree(ws, other, symlinks=True)
    return ws, other


def test_sigkilled_stage_resumes_to_the_same_weights(workspaces):
    killed, reference = workspaces
    _finish(reference)
    assert _train_steps(reference)[0] == 1

    proc = _start(killed)
    deadline = time.time() + 240
    states: list[Path] = []
    while not states:
        assert proc.poll() is None, "the stage ended before it wrote a checkpoint: " + (
            (killed / "stage.log").read_text()[-3000:])
        assert time.time() < deadline, "no checkpoint within 240 s"
        states = list((killed / "outputs/.checkpoints").glob("*/last/trainer_state.pt"))
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (killed / "outputs/base/model").exists()  # killed before its outputs were committed
    [state] = [p for p in (killed / "outputs/.checkpoints").glob("*/last/trainer_state.pt")]
    saved_step = int(torch.load(state, weights_only=True)["step"])
    assert 0 < saved_step < MAX_STEPS

    _finish(killed)
    # it resumed from the checkpoint instead of starting again (first logged step after it) ...
    assert f"resuming from the checkpoint at step {saved_step}" in (killed / "stage.log").read_text()
    # its curve covers the whole run once: steps before the kill come from the checkpoint's journal
    assert _train_steps(killed) == _train_steps(reference)
    assert sorted(set(_train_steps(killed))) == list(range(1, MAX_STEPS + 1))
    assert not list((killed / "outputs/.checkpoints").iterdir())  # removed once the stage succeeded
    # ... and ended bit for bit where the uninterrupted run did
    a = load_file(killed / "outputs/base/model/model.safetensors")
    b = load_file(reference / "outputs/base/model/model.safetensors")
    assert same_weights(a, b)
