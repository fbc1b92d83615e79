"""`main`: run one stage in its MLflow run, commit its outputs, map failures to exit codes.

Exit codes: 0 ok, 1 unexpected error (retried by the flow), 2 bad params, 3 gate failed,
4 training diverged, 5 awaiting labels (2-5 are not retried: re-running cannot fix them; on 5 the
Prefect flow pauses until people have answered the exported tasks, instructgpt.labeling).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import yaml

from instructgpt.config import ConfigError, from_dict
from instructgpt.device import Compute, ComputeConfig, resolve
from tasks import lineage, tracking
from tasks.gates import GateFailed
from tasks.params import load_params
from tasks.shell.awaiting import AwaitingLabels
from tasks.shell.stage import RANK, Stage

EXIT_ERROR, EXIT_CONFIG, EXIT_GATE, EXIT_DIVERGED, EXIT_AWAITING = 1, 2, 3, 4, 5


def main(name: str, body: Callable[[Stage], None], section: str | None = None) -> int:
    """Run one stage: MLflow child run, body, atomic commit; map failures to exit codes.

    ``section`` is the params.yaml section to read when it differs from the stage name (two
    stages sharing one section, e.g. ppo and ppo_noptx)."""
    Path("outputs").mkdir(exist_ok=True)
    lineage.record_opens(name)
    if RANK == 0:
        # The marker says "this stage stopped for labels" to the flow and to scripts (README, "In a
        # script"): one left by an earlier stop would make any later failure read as waiting.
        AwaitingLabels.marker_of(name).unlink(missing_ok=True)
    try:
        params = load_params()
    except (OSError, yaml.YAMLError) as exc:
        print(f"[{name}] cannot read params.yaml: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        compute = resolve_compute(params, module_name(name))
    except ConfigError as exc:
        print(f"[{name}] FAILED: bad params: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if os.environ.get("INSTRUCTGPT_NO_MLFLOW") == "1" or RANK != 0:
        run_ctx = nullcontext(None)
    else:
        run_ctx = tracking.start_stage_run(name)
    with run_ctx as run:
        stage = Stage(name, params, run, section, compute)
        if stage.is_main:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            precision = "fp32" if compute.dtype is None else f"{str(compute.dtype).removeprefix('torch.')} autocast"
            print(f"[{name}] compute: {compute.device}, {precision}, {world} process{'es' if world > 1 else ''}",
                  flush=True)
        try:
            with compute.scope():  # autocast (bf16) for every forward pass of the stage, when asked
                body(stage)
            if stage.is_main:
                stage.commit()
        except ConfigError as exc:
            return _fail(name, run, f"{getattr(exc, 'kind', 'bad params')}: {exc}", EXIT_CONFIG)
        except GateFailed as exc:
            return _fail(name, run, str(exc), EXIT_GATE)
        except AwaitingLabels as exc:
            exc.write_marker()
            return _fail(name, run, str(exc), EXIT_AWAITING, verb="STOPPED")
        except Exception as exc:  # noqa: BLE001 - any other failure: report, exit non-zero
            if type(exc).__name__ == "TrainingDiverged":  # the library's non-finite-loss error
                return _fail(name, run, f"{exc}; no model was written", EXIT_DIVERGED)
            return _fail(name, run, traceback.format_exc(), EXIT_ERROR)
        finally:
            stage.cleanup()
    if stage.is_main:
        print(f"[{name}] done in {time.time() - stage.t0:.1f}s")
    return 0


def module_name(stage: str) -> str:
    """The ``tasks.<name>`` module that runs a DVC stage (ppo_noptx is ``tasks.ppo --no-ptx``,
    label_round2 ``tasks.label --round 2``, the same for rm and ppo)."""
    stage = stage.removesuffix("_round2")
    return "ppo" if stage == "ppo_noptx" else stage


def resolve_compute(params: dict[str, Any], module: str) -> Compute:
    """params.yaml ``compute`` (with ``compute.stages.<module>``) resolved on this machine; under
    torchrun also the process group: NCCL on CUDA devices (one GPU per local rank), gloo
    otherwise. ConfigError when the machine lacks what it asks for."""
    cfg = from_dict(ComputeConfig, params.get("compute") or {}, "compute").for_stage(module)
    compute = resolve(cfg, int(os.environ.get("LOCAL_RANK", "0")))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist

        if compute.device.type == "cuda":
            import torch

            torch.cuda.set_device(compute.device)
        if not dist.is_initialized():
            dist.init_process_group(backend=compute.backend)
    return compute


def _fail(name: str, run: Any, message: str, code: int, verb: str = "FAILED") -> int:
    print(f"[{name}] {verb}: {message}", file=sys.stderr)
    if run is not None:
        import mlflow

        mlflow.set_tag("failure", message[:5000])
        mlflow.end_run(status="FAILED")
    return code
