"""The launcher is a params setting: ``python -m tasks.launch <stage>`` runs the stage in-process
(``compute.launcher: plain``) or as N torchrun processes, and a wrong value stops it with exit 2.

The end-to-end check runs the real base stage (tiny data, a few steps) through the launcher on 2
CPU processes: both train (each on its shard), rank 0 alone writes the model, the metrics and
the curve (one row per step, not one per process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from tasks.launch import command
from instructgpt.device import ComputeConfig
from tests.workspace import make_workspace

pytestmark = pytest.mark.e2e  # the base stage on 2 torchrun processes in a copy of the repository

STEPS = 6


def test_plain_runs_in_process_and_torchrun_starts_n_processes():
    assert command("sft", [], ComputeConfig()) is None
    argv = command("ppo", ["--no-ptx"], ComputeConfig(launcher="torchrun", nproc_per_node=2))
    assert argv[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "tasks.ppo",
                        "--no-ptx"]


def _launch(ws: Path, stage: str, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RANK", "WORLD_SIZE")}
    env.update(INSTRUCTGPT_NO_MLFLOW="1", OMP_NUM_THREADS="1")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-m", "tasks.launch", stage], cwd=ws, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("launch"))
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["base"].update(max_documents=200, nlp_task_items=4)
    params["base"]["train"].update(max_steps=STEPS, log_every=1, batch_size=8, block_size=64, warmup=1,
                                   eval_every=0)
    params["compute"] = {"stages": {"base": {"launcher": "torchrun", "nproc_per_node": 2}}}
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return ws


def test_a_wrong_compute_value_stops_with_exit_2(tmp_path):
    (tmp_path / "params.yaml").write_text("compute:\n  launcher: mpirun\n")
    proc = _launch(tmp_path, "base", pythonpath=str(Path(__file__).resolve().parents[2]))
    assert proc.returncode == 2 and "compute.launcher='mpirun'" in proc.stderr


@pytest.fixture(scope="module")
def ddp_base(workspace) -> tuple[subprocess.CompletedProcess, dict[str, torch.Tensor]]:
    """The base stage on 2 DDP processes: the launch and the saved weights."""
    proc = _launch(workspace, "base")
    model = workspace / "outputs/base/model/model.safetensors"
    return proc, (load_file(model) if proc.returncode == 0 and model.is_file() else {})


def test_base_stage_on_two_processes_through_the_launcher(workspace, ddp_base):
    proc = ddp_base[0]
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "[base] launching 2 processes" in out and "[base] compute: cpu, fp32, 2 processes" in out
    assert out.count("[base] done in") == 1  # rank 0 alone reports (and writes)
    assert (workspace / "outputs/base/model/model.safetensors").is_file()
    curve = pd.read_csv(workspace / "outputs/base/curve.csv")
    steps = curve.loc[curve["train_loss"].notna(), "step"].astype(int).tolist()
    # every step logged, by rank 0 alone (two ranks would give each step twice; the last step also
    # carries the final train metrics, as in a single process)
    assert sorted(set(steps)) == list(range(1, STEPS + 1)) and len(steps) <= STEPS + 1, steps
    assert not list((workspace / "outputs").glob(".staging-*"))  # no rank left a staging folder behind


def test_base_stage_sharded_with_fsdp_through_the_launcher(workspace, ddp_base):
    """``compute: {launcher: torchrun, nproc_per_node: 2, parallel: fsdp}``: the same stage, its
    weights sharded over the 2 processes, saves a plain HF directory (the full weights gathered)
    that transformers loads, holding the DDP run's weights up to float reduction order (as
    tests/core/test_fsdp.py bounds it; measured here: max |Δ| 5e-7)."""
    assert ddp_base[1], "the DDP run of the base stage failed (see the test above)"
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["compute"] = {"stages": {"base": {"launcher": "torchrun", "nproc_per_node": 2, "parallel": "fsdp"}}}
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = _launch(workspace, "base")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "[base] launching 2 processes" in out and out.count("[base] done in") == 1
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(workspace / "outputs/base/model", local_files_only=True)
    state = model.state_dict()
    for k, ddp in ddp_base[1].items():
        assert not hasattr(state[k], "to_local"), f"{k} was saved as a shard"
        assert state[k].shape == ddp.shape and torch.allclose(state[k], ddp, rtol=1e-4, atol=2e-4), (
            f"{k}: the FSDP run's weight differs from the DDP run's by {float((state[k] - ddp).abs().max()):.1e}")
