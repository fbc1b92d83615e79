"""Helpers shared by the training loops: optimizer, schedule, divergence check, logging."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

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
    """AdamW; weight decay on matrices only (not on biases, norms, the reward bias)."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=eps)


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
