"""Sharded data parallelism (``compute.parallel: fsdp``): torch FSDP2 ``fully_shard`` for the
shared training loop (pretraining, SFT, the reward model).

The loop trains a sharded COPY of the stage's model: every transformer block is its own FSDP unit
(its weights gathered just before its forward, freed after; its gradients reduce-scattered after
its backward), the rest (embeddings, final norm, heads, the RM's gain and bias) is the root unit.
Each process holds 1/N of every weight, gradient and AdamW state between uses. The plain model
waits on the CPU meanwhile and receives the gathered full weights at the end (``Sharded.finish``),
so everything after training (the RM's normalisation, saving with ``save_pretrained``, the later
stages) sees the usual module, and the saved directory is the usual HF directory. Resumable
checkpoints hold the full weights (written from ``original``) and the full optimizer state keyed
by parameter name (``gather``/``restore``): resume a run with the ``compute.parallel`` it had.

Every forward runs under the root unit (``Call``: its forward is the function it is given), so
FSDP's root hooks (lazy init, the root unit's gather) run for the loss and for the stage's
evaluation alike, whichever way the stage reaches its model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from instructgpt.config import ConfigError
from instructgpt.device import weights_changed
from instructgpt.train.common import DistContext, device_of

R = TypeVar("R")


class Call(nn.Module):
    """The FSDP root: holds the model so that its parameters are the root's, and runs whatever
    function it is called with inside the root's forward hooks."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        """The sharded model."""

    def forward(self, fn: Callable[[], R]) -> R:
        return fn()


def blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks: the children of the model's ``nn.ModuleList``s (GPT-2's ``h``,
    Llama's ``layers``); each becomes one FSDP unit."""
    return [m for lst in model.modules() if isinstance(lst, nn.ModuleList) for m in lst]


@dataclass
class Sharded:
    """A model trained sharded: the plain original parked on the CPU, the FSDP copy training."""

    original: nn.Module
    """The caller's model (on the CPU until ``finish``)."""
    home: torch.device
    """Where ``original`` lived (and returns to)."""
    root: Call
    """The FSDP root around the sharded copy."""

    @property
    def model(self) -> nn.Module:
        """The sharded copy (its parameters are DTensors, 1/N of each on this process)."""
        return self.root.model

    def run(self, fn: Callable[[], R]) -> R:
        """``fn()`` inside the root's forward: its FSDP units gather their weights as they run."""
        return self.root(fn)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The full (unsharded) state dict on EVERY process: a collective, call it on all ranks."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True))
        return {k: v.detach().clone() for k, v in state.items()}

    def gather(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """For a checkpoint (collective): the full weights copied into ``original`` (which the
        checkpoint saves, as a plain model's), and the full optimizer state dict, keyed by
        parameter name, on rank 0 ({} elsewhere)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        self.original.load_state_dict(self.full_state_dict())
        return get_optimizer_state_dict(self.model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def restore(self, optimizer: torch.optim.Optimizer, optimizer_state: dict[str, Any]) -> None:
        """Resume (every rank): ``original``'s weights (a checkpoint loaded into it) and the full
        optimizer state that ``gather`` saved, each rank keeping its shards."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        full = StateDictOptions(full_state_dict=True)
        set_model_state_dict(self.model, self.original.state_dict(), options=full)
        set_optimizer_state_dict(self.model, optimizer, optimizer_state, options=full)
        weights_changed()

    def finish(self) -> nn.Module:
        """The original model, back home, holding the trained full weights (collective)."""
        state = self.full_state_dict()
        self.original.to(self.home)
        self.original.load_state_dict(state)
        weights_changed()
        return self.original


def shard(model: nn.Module, ctx: DistContext, per_block: bool = True) -> Sharded:
    """``model`` copied and sharded over ``ctx``'s processes; the original moves to the CPU.

    ``per_block``: each transformer block its own unit (gathered one at a time: the peak holds
    one block's full weights); False: the whole model is one unit, gathered for every forward and
    backward (only gradients and optimizer state stay sharded throughout), for a model whose
    blocks run more than once per forward with tensors passed outside their outputs (the RM's
    prefix sharing: a KV cache), which per-block backward hooks would miss.

    Gradients are SUMMED over ranks (divide factor 1, a plain SUM reduce-scatter), as ``DistContext.wrap``'s DDP hook does:
    each rank's loss is already its term of the global batch's mean (``DistContext.share``)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if any(not p.requires_grad for p in model.parameters()):
        raise ConfigError("compute.parallel=fsdp with frozen weights (LoRA) is not supported yet: "
                          "set compute.parallel: ddp, or drop the stage's lora section")
    home = device_of(model)
    model.to("cpu")  # parked: the full weights return here at the end
    copy_ = copy.deepcopy(model).to(ctx.device)
    mesh = init_device_mesh(ctx.device.type, (ctx.world_size,))
    for block in blocks(copy_) if per_block else []:
        fully_shard(block, mesh=mesh)
    root = fully_shard(Call(copy_), mesh=mesh)
    for module in root.modules():
        if hasattr(module, "set_gradient_divide_factor"):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)  # a plain SUM: gloo has no PREMUL_SUM
    return Sharded(model, home, root)


def local_fraction(param: Any) -> float:
    """The fraction of a (DTensor) parameter's elements held by this process (1.0 when plain)."""
    local = param.to_local() if hasattr(param, "to_local") else param
    return local.numel() / max(param.numel(), 1)
