"""``python -m tasks.launch <stage> [args]``: run a stage the way params.yaml ``compute`` says.

Every command in dvc.yaml goes through this launcher, so that going from one process to several
is a params change (``compute.launcher: torchrun``, ``compute.nproc_per_node: 2``, or the same
under ``compute.stages.<stage>``), never a hand edit of dvc.yaml; DVC sees the change as a
params change and re-runs the stages it concerns.

- ``plain``: the stage's module runs in this very process (``runpy``), as ``python -m
  tasks.<stage>`` would: the default, one process, nothing in between.
- ``torchrun``: this process becomes ``python -m torch.distributed.run --standalone
  --nproc_per_node=N -m tasks.<stage> [args]`` (``os.execv``): N local processes with
  ``RANK``/``WORLD_SIZE`` set; the stage shell initialises the process group (NCCL on CUDA,
  gloo on CPU) and only rank 0 writes outputs and logs. Several machines: run torchrun yourself
  with ``--nnodes``/``--rdzv-endpoint`` on each (the stage code is the same).

A wrong ``compute`` value stops here with exit code 2 and a message, before any process starts.
"""

from __future__ import annotations

import os
import runpy
import sys

import yaml

from instructgpt.config import ConfigError, from_dict, read_yaml
from instructgpt.device import ComputeConfig

EXIT_CONFIG = 2


def command(module: str, args: list[str], cfg: ComputeConfig) -> list[str] | None:
    """The argv that runs ``tasks.<module>`` under ``cfg``'s launcher; None = run in-process."""
    if cfg.launcher == "plain":
        return None
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.nproc_per_node}",
            "-m", f"tasks.{module}", *args]


def compute_config(module: str, params_file: str = "params.yaml") -> ComputeConfig:
    """params.yaml ``compute`` with the stage's overrides (``compute.stages.<module>``)."""
    params = read_yaml(params_file) or {}
    return from_dict(ComputeConfig, params.get("compute") or {}, "compute").for_stage(module)


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print("usage: python -m tasks.launch <stage module, e.g. sft> [stage args]", file=sys.stderr)
        return EXIT_CONFIG
    module, args = argv[0], argv[1:]
    try:
        cfg = compute_config(module)
    except (ConfigError, OSError, yaml.YAMLError) as exc:
        print(f"[{module}] FAILED: bad params: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    argv_out = command(module, args, cfg)
    if argv_out is None:
        sys.argv = [f"tasks/{module}.py", *args]
        try:
            runpy.run_module(f"tasks.{module}", run_name="__main__", alter_sys=True)
        except SystemExit as exc:  # the stage's own exit code
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return 0
    print(f"[{module}] launching {cfg.nproc_per_node} processes: {' '.join(argv_out[1:])}", flush=True)
    os.execv(argv_out[0], argv_out)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
