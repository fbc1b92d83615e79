"""Where the models run and in which precision: one decision for every trainer, generation and
evaluation path.

``ComputeConfig`` (params.yaml section ``compute``) names a device and a precision, ``auto`` by
default; ``resolve`` turns it into a ``Compute`` (a ``torch.device`` and an autocast dtype or
None), refusing what this machine cannot do. The stage shell moves its models with
``Compute.place`` and runs the library call inside ``Compute.scope()``: autocast is a
thread-local context, so every forward pass inside (training loops, PPO rollouts, sampling,
evaluation) runs in the chosen precision without the library threading a flag through.

Autocast keeps the low-precision copy of every trainable weight (a leaf that requires grad) from
its first use until the OUTERMOST autocast region exits. A region around a whole stage would feed
every forward after the first the starting weights while the fp32 weights move: bf16 training
that does not learn. ``scope()`` therefore drops those copies after every optimizer step (a
global ``torch.optim`` post-step hook, held only while the scope is open), and code that writes
weights in place outside an optimizer (loading a checkpoint or EMA weights, merging a LoRA
adapter) calls ``weights_changed()``. Within a step the copies
are still shared: a rollout's decode steps, the K answers of a ranking and a minibatch's
forward and backward cast each weight once (turning the cache off cost 3-12 % of GPU throughput).

torch is imported when a config is resolved, not with this module: ``ComputeConfig`` is read by
the launcher and by stages (ingest) that never touch a model.

On a CPU the default resolves to fp32 with autocast off: ``scope()`` is then a null context and
the numerics are bit-identical to code that never heard of it. GPUs only where present: the
project never needs one.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from instructgpt.config import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

M = TypeVar("M", bound="nn.Module")

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
LAUNCHERS = ("plain", "torchrun")
PARALLELS = ("ddp", "fsdp")

# how the training loops split a model over the data-parallel processes; set by ``Compute.scope``
# (as autocast is) so that the library reads one decision without a flag threaded through
_PARALLEL: contextvars.ContextVar[str] = contextvars.ContextVar("instructgpt_parallel", default="ddp")


def parallel_mode() -> str:
    """The data-parallel strategy of the enclosing ``parallelism`` scope: "ddp" (default) or "fsdp"."""
    return _PARALLEL.get()


@contextlib.contextmanager
def parallelism(mode: str):
    """Run the training loops inside with ``mode`` ("ddp" or "fsdp") when several processes run."""
    if mode not in PARALLELS:
        raise ConfigError(f"compute.parallel={mode!r}: choose one of {', '.join(PARALLELS)}")
    token = _PARALLEL.set(mode)
    try:
        yield
    finally:
        _PARALLEL.reset(token)


@dataclass
class ComputeConfig:
    """params.yaml ``compute``: device, precision and how a stage is launched."""

    device: str = "auto"
    """"auto" (CUDA, then MPS, then CPU), or "cpu", "cuda", "cuda:N", "mps"."""
    precision: str = "auto"
    """"auto" (bf16 autocast on a GPU that supports it, else fp32), "fp32", or "bf16" (autocast;
    accepted on a CPU too, where torch has bf16 kernels: slower there, for checking a GPU run)."""
    launcher: str = "plain"
    """"plain" (one process) or "torchrun" (``nproc_per_node`` processes of data parallelism)."""
    nproc_per_node: int = 1
    """Processes a torchrun launch starts (each takes its shard of every global batch)."""
    parallel: str = "ddp"
    """How several processes share the model: "ddp" (every process holds the whole model, the
    gradients are summed) or "fsdp" (torch FSDP2 ``fully_shard`` per transformer block: each
    process holds 1/N of every weight, gradient and optimizer state; the full weights are gathered
    for evaluation and saving). "fsdp" needs ``launcher: torchrun`` and ``nproc_per_node`` >= 2;
    pretraining, SFT and the RM only (PPO and LoRA: ddp)."""
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-stage overrides of the fields above, keyed by the stage's module (``tasks.<name>``),
    e.g. ``{ppo: {launcher: torchrun, nproc_per_node: 2}}``."""

    def __post_init__(self) -> None:
        known = {f.name for f in fields(self)} - {"stages"}
        for stage, over in self.stages.items():
            if not isinstance(over, dict) or set(over) - known:
                raise ConfigError(f"compute.stages.{stage}: a mapping of {sorted(known)}, got {over!r}")
        if self.device.split(":")[0] not in DEVICES:
            raise ConfigError(f"compute.device={self.device!r}: choose one of {', '.join(DEVICES)} (or cuda:N)")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"compute.precision={self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.launcher not in LAUNCHERS:
            raise ConfigError(f"compute.launcher={self.launcher!r}: choose one of {', '.join(LAUNCHERS)}")
        if self.nproc_per_node < 1:
            raise ConfigError(f"compute.nproc_per_node={self.nproc_per_node} must be >= 1")
        if self.launcher == "plain" and self.nproc_per_node != 1:
            raise ConfigError("compute.nproc_per_node > 1 needs compute.launcher: torchrun")
        if self.parallel not in PARALLELS:
            raise ConfigError(f"compute.parallel={self.parallel!r}: choose one of {', '.join(PARALLELS)}")
        if self.parallel == "fsdp" and self.nproc_per_node < 2:
            raise ConfigError("compute.parallel=fsdp shards the model over several processes: set "
                              "compute.launcher: torchrun and compute.nproc_per_node >= 2 (or compute.parallel: ddp)")

    def for_stage(self, stage: str) -> "ComputeConfig":
        """This config with ``stages[stage]``'s overrides applied (and checked)."""
        return replace(self, **self.stages.get(stage, {}), stages={})


@dataclass(frozen=True)
class Compute:
    """A resolved ``ComputeConfig``: the device and the autocast dtype (None = full fp32)."""

    device: torch.device
    """Where models and tensors live."""
    dtype: torch.dtype | None = None
    """Autocast dtype of forward passes; None = no autocast (fp32 weights and activations)."""
    parallel: str = "ddp"
    """``ComputeConfig.parallel``: what the training loops inside ``scope`` do with several processes."""

    def place(self, model: M) -> M:
        """``model`` moved to ``device`` (in place for modules, returned for chaining)."""
        return model.to(self.device)

    def scope(self) -> contextlib.AbstractContextManager:
        """Autocast for the forward passes run inside (none without a dtype) and the data-parallel
        strategy (``parallel_mode``) of the training loops run inside."""
        stack = contextlib.ExitStack()
        if self.parallel != "ddp":
            stack.enter_context(parallelism(self.parallel))
        if self.dtype is not None:
            import torch

            stack.enter_context(torch.autocast(device_type=self.device.type, dtype=self.dtype))
            stack.enter_context(_casts_follow_steps())
        return stack

    @property
    def backend(self) -> str:
        """The collective backend of data parallelism on this device: NCCL on CUDA, gloo elsewhere."""
        return "nccl" if self.device.type == "cuda" else "gloo"


def weights_changed() -> None:
    """Forget the low-precision copies autocast keeps of the weights: the next forward casts the
    weights as they are now. Call it after writing weights in place outside an optimizer step
    (``scope`` covers those); a no-op cost outside autocast."""
    import torch

    torch.clear_autocast_cache()


@contextlib.contextmanager
def _casts_follow_steps():
    """``weights_changed`` after every optimizer step taken inside (any optimizer: the trainers',
    peft's, a caller's own)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    handle = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: weights_changed())
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def full_precision(device_type: str = "cpu"):
    """Autocast off inside, on ``device_type`` (weight arithmetic such as a LoRA merge stays fp32)."""
    import torch

    with torch.autocast(device_type=device_type, enabled=False):
        yield


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve(cfg: ComputeConfig = ComputeConfig(), local_rank: int = 0) -> Compute:
    """The device and autocast dtype ``cfg`` asks for on this machine; ``ConfigError`` (exit 2
    in a stage) when it asks for a device or precision the machine lacks. ``local_rank`` picks
    this process's GPU under torchrun (``cuda`` without an index)."""
    import torch

    name = cfg.device
    if name == "auto":
        name = "cuda" if cuda_available() else "mps" if mps_available() else "cpu"
    kind = name.split(":")[0]
    if kind == "cuda":
        if not cuda_available():
            raise ConfigError(f"compute.device={cfg.device!r} but torch sees no CUDA device on this machine "
                              "(torch.cuda.is_available() is False): set compute.device: auto or cpu")
        index = int(name.split(":")[1]) if ":" in name else local_rank % torch.cuda.device_count()
        device = torch.device("cuda", index)
    elif kind == "mps":
        if not mps_available():
            raise ConfigError(f"compute.device={cfg.device!r} but MPS is not available here: "
                              "set compute.device: auto or cpu")
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    return Compute(device, _dtype(cfg.precision, device), cfg.parallel)


def _dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: bf16 where asked (or, with "auto", on a GPU that supports it), else None."""
    import torch

    if precision == "fp32":
        return None
    supported = bf16_supported(device)
    if precision == "bf16":
        if not supported:
            raise ConfigError(f"compute.precision=bf16 but {device} has no bf16 support: "
                              "set compute.precision: fp32 or auto")
        return torch.bfloat16
    # auto: bf16 on GPUs only; a CPU keeps fp32 (bit-identical to the default, and faster there)
    return torch.bfloat16 if device.type != "cpu" and supported else None


def bf16_supported(device: torch.device) -> bool:
    """Whether autocast to bf16 has kernels on ``device`` (CUDA: the GPU's capability)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type in ("cpu", "mps")
