"""Helpers shared by the training loops: optimizer, schedule, divergence check, logging,
data-parallel context."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")

LogFn = Callable[[dict[str, float], int], None]


class TrainingDiverged(RuntimeError):
    """A loss or statistic became NaN/inf; the message names the step and the quantity."""


def check_finite(value: torch.Tensor | float, step: int, name: str) -> None:
    """Raise ``TrainingDiverged`` when ``value`` is not finite."""
    v = value if isinstance(value, torch.Tensor) else torch.tensor(float(value))
    if not bool(torch.isfinite(v).all()):
        raise TrainingDiverged(
            f"step {step}: {name} is not finite ({v.detach().flatten()[:4].tolist()}); "
            "lower the learning rate or check the inputs"
        )


def no_log(metrics: dict[str, float], step: int) -> None:
    """Default ``log`` callback: drop the metrics."""


def as_floats(stats: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{'loss': tensor(1.)} -> {'prefix/loss': 1.0}"""
    return {f"{prefix}{k}": float(v) for k, v in stats.items()}


def make_optimizer(params: Iterable[nn.Parameter], lr: float, weight_decay: float,
                   betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on biases, norms, the reward bias).

    The fused kernel where torch has one (float parameters on CPU or CUDA): one pass over each
    tensor instead of a dozen, 3.4x faster on the CPU at the demo's sizes (it is a per-step cost:
    with small batches, ~10 % of a reward-model step); same update up to float rounding."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=eps, fused=fused or None)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_lr_ratio: float = 0.1, cosine: bool = True) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup then cosine decay to ``min_lr_ratio``·lr (or constant when ``cosine=False``)."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _sum_gradients_hook(state, bucket):  # no annotations: DDP checks them, and this module's are strings
    """DDP communication hook: SUM the ranks' gradients (DDP's default averages them). Each
    rank's loss is already its weighted term of the global mean (``DistContext.share``), so the
    sum is the single-process gradient whatever the shards' sizes."""
    return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda fut: fut.value()[0])


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    """This process's rank."""
    world_size: int = 1
    """Number of processes sharing every global batch."""
    device: torch.device = torch.device("cpu")
    """Where collectives' tensors must be: the process's GPU under NCCL, the CPU under gloo."""
    parallel: str = "ddp"
    """How the training loop shares the model: "ddp" (``wrap``) or "fsdp" (``instructgpt.train.fsdp``)."""

    @property
    def enabled(self) -> bool:
        """More than one process: shard, reduce and sync (else every helper is a no-op)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only rank 0 logs, shows progress and writes checkpoints."""
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's part of a global batch: every world_size-th item from ``rank``.

        Strided so that the shards of a length-grouped batch stay balanced; a rank may get an
        empty shard (a last batch smaller than the world) and must still join the collectives."""
        return list(items[self.rank:: self.world_size])

    def all_sum(self, value: torch.Tensor | float) -> torch.Tensor:
        """Σ over ranks of a scalar or tensor (float64 for scalars: counts stay exact)."""
        t = value.detach().clone() if isinstance(value, torch.Tensor) else torch.tensor(float(value),
                                                                                   dtype=torch.float64)
        if self.enabled:
            t = t.to(self.device)
            dist.all_reduce(t)
        return t

    def share(self, local_mean: torch.Tensor, local_count: float) -> tuple[torch.Tensor, float]:
        """This rank's term of a mean over the GLOBAL batch, and the global count.

        A loss that is a mean over n items (tokens, prompts) of the global batch splits into
        Σ_ranks local_mean·n_local/n_global; summing the ranks' gradients (``wrap``'s DDP sums)
        then gives exactly the single-process gradient, whatever the shards' sizes. Single
        process: ``local_mean`` untouched (bit-identical to a run without this helper)."""
        if not self.enabled:
            return local_mean, float(local_count)
        n_global = float(self.all_sum(local_count))
        return local_mean * (float(local_count) / max(n_global, 1.0)), n_global

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in torch's ``DistributedDataParallel`` when there are several processes
        (gradients summed across ranks in buckets, overlapped with the backward pass), else
        ``module`` itself: one process never meets a wrapper, its numerics stay as they were.

        Call the wrapper's forward exactly once before each backward, on every rank (an empty
        shard runs one row at weight 0): DDP's reducer expects every parameter that requires a
        gradient to get one (``find_unused_parameters`` stays off: all our losses touch every
        parameter, and the check costs a graph walk per step). The loops step once per backward,
        so there is no gradient accumulation to guard with ``no_sync``. Buffers (the RM's gain
        and bias) are equal on every rank: synced once at the start, not at every forward."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = DDP(module, device_ids=device_ids, forward_sync_buffers=False)
        ddp.register_comm_hook(None, _sum_gradients_hook)
        return ddp

    def gather_rows(self, t: torch.Tensor, n_rows: int, pad_value: float = 0, left: bool = False) -> torch.Tensor:
        """The GLOBAL batch of a per-row tensor whose rows were sharded with ``shard``: every
        rank's rows in global order (row g from rank g % world_size), dim 1 padded to the
        longest shard's (``left``: on the left, as prompts are). (n_rows, ...) on every rank."""
        if not self.enabled:
            return t
        shape = torch.tensor([t.shape[0], *t.shape[1:2]], dtype=torch.long, device=self.device)
        sizes = [torch.zeros_like(shape) for _ in range(self.world_size)]
        dist.all_gather(sizes, shape)  # gloo/nccl all_gather needs equal shapes: pad to the largest
        rows_max = max(int(s[0]) for s in sizes)
        width = max(int(s[1]) for s in sizes) if t.ndim > 1 else 0
        padded = t
        if t.ndim > 1 and t.shape[1] < width:
            fill = t.new_full((t.shape[0], width - t.shape[1], *t.shape[2:]), pad_value)
            padded = torch.cat([fill, t] if left else [t, fill], 1)
        if padded.shape[0] < rows_max:
            padded = torch.cat([padded, padded.new_full((rows_max - padded.shape[0], *padded.shape[1:]), pad_value)])
        parts = [torch.empty_like(padded, device=self.device) for _ in range(self.world_size)]
        dist.all_gather(parts, padded.to(self.device).contiguous())
        out = padded.new_empty((n_rows, *padded.shape[1:]))
        for r, part in enumerate(parts):
            out[r::self.world_size] = part[: int(sizes[r][0])].to(out.device)
        return out


def distributed() -> DistContext:
    """The data-parallel context from torchrun's environment; initialises the process group once.

    Every trainer calls this: with ``WORLD_SIZE`` > 1 (set by ``torchrun`` /
    ``python -m torch.distributed.run``, together with ``RANK``, ``MASTER_ADDR``, ``MASTER_PORT``)
    each process takes its shard of every global batch (``batch_size`` is the GLOBAL batch, as
    in a single-process run), gradients are summed across processes by DDP during backward
    (``DistContext.wrap``), and only rank 0 logs, shows progress and writes checkpoints; metrics
    are reduced over ranks first. The backend is whatever initialised the group first (a stage
    shell: NCCL for CUDA devices, gloo otherwise, see ``instructgpt.device``); gloo when this
    function does it. Run a stage on 2 CPU processes with ``compute.launcher: torchrun`` and
    ``compute.nproc_per_node: 2`` in params.yaml (``python -m tasks.launch sft``).

    Results match a single-process run with the same seed and global batch up to float
    reduction order: the ranks' partial sums are added in another order than one process adds
    them (~1e-6 relative); with dropout the masks differ too (each rank draws its own)."""
    from instructgpt.device import parallel_mode

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    return DistContext(dist.get_rank(), dist.get_world_size(), device, parallel_mode())
