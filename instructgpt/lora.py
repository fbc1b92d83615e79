"""LoRA adapters (peft) for the training stages: a low-rank update ΔW = (α/r)·B·A trained in
place of the full weights (Hu et al. 2021).

The adapter is injected INTO the model in place (``peft.get_peft_model`` replaces the target
layers by LoRA layers that wrap them): the model keeps its class and its ``forward``, so the KV
cache, ``logits_to_keep``, prefix sharing and the fused activations work as without an adapter.
peft's ``PeftModel`` (``Adapter.peft``) is kept only to merge or drop the adapter at the end.

    add_adapter       inject, freeze the base weights, train only A and B (B = 0: same outputs)
    adapter_disabled  the frozen base inside a ``with`` block (PPO's π^SFT, the RM beside its value model)
    merge_adapter     W + (α/r)·B·A written into the base weights, LoRA layers gone: a plain model
    held_memory       the bytes a set of modules holds (weights, gradients, AdamW state)
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from instructgpt.config import ConfigError
from instructgpt.device import full_precision, weights_changed

ALL_LINEAR = "all-linear"


@dataclass
class LoRAConfig:
    """A LoRA adapter for one training stage (params.yaml ``<stage>.lora``; null = full fine-tuning)."""

    r: int = 8
    """Rank of the update B·A (B is d_out×r, A is r×d_in)."""
    alpha: float = 16.0
    """Scale: the update is (alpha / r)·B·A (peft's ``lora_alpha``)."""
    dropout: float = 0.0
    """Dropout on the adapter's input (peft's ``lora_dropout``); PPO needs 0 (RL runs without dropout)."""
    target_modules: list[str] | None = None
    """Layers that get an adapter, by name suffix (e.g. [c_attn, c_proj] for gpt2, [q_proj, k_proj,
    v_proj, o_proj] for llama/qwen2), or [all-linear] (every linear layer but the output head);
    null = peft's default for the architecture: gpt2 c_attn, llama and qwen2 q_proj + v_proj,
    gpt_neox query_key_value."""

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"lora.r={self.r} must be >= 1 (the rank of the update)")
        if self.alpha <= 0:
            raise ConfigError(f"lora.alpha={self.alpha} must be > 0 (the update is scaled by alpha / r)")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora.dropout={self.dropout} must be in [0, 1)")
        if self.target_modules is not None and (
                isinstance(self.target_modules, str) or not self.target_modules
                or not all(isinstance(t, str) and t for t in self.target_modules)):
            raise ConfigError(f"lora.target_modules={self.target_modules!r}: give a non-empty list of layer "
                              f"names (e.g. [c_attn]), [{ALL_LINEAR}], or null for the architecture's default")


def check_lora(value: object, where: str) -> None:
    """A stage config's ``lora`` field is null or a LoRAConfig (params.yaml gave a mapping)."""
    if value is not None and not isinstance(value, LoRAConfig):
        raise ConfigError(f"{where}={value!r}: give a mapping such as {{r: 8, alpha: 16}} (LoRA adapters), "
                          "or null (full fine-tuning)")


@dataclass
class Adapter:
    """A LoRA adapter injected into ``model`` and peft's handle on it."""

    model: nn.Module
    """The module the adapter lives in (the same object as before, now with LoRA layers)."""
    peft: nn.Module
    """peft's ``PeftModel`` around ``model``: what merges or removes the adapter."""
    requires_grad: dict[str, bool]
    """Each parameter's ``requires_grad`` before the adapter froze it, restored when it goes."""


def add_adapter(model: nn.Module, cfg: LoRAConfig, seed: int = 0, where: str = "lora") -> Adapter:
    """Inject a LoRA adapter into ``model`` in place: its base weights frozen, only the adapter's
    A and B trainable. B starts at 0, so the model computes what it computed before; A's random
    init is seeded by ``seed`` alone (the caller's RNG is left untouched). ``where`` names the
    params key in error messages (``sft.lora``)."""
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    targets = cfg.target_modules
    if targets is not None and ALL_LINEAR in targets:
        targets = ALL_LINEAR if len(targets) == 1 else None
        if targets is None:
            raise ConfigError(f"{where}.target_modules: [{ALL_LINEAR}] stands alone, not with other names")
    peft_cfg = LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets, bias="none",
        # GPT-2 keeps its projections as Conv1D (weights stored transposed); peft must know
        fan_in_fan_out=any(isinstance(m, Conv1D) for m in model.modules()),
    )
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # peft 0.21 reads transformers' deprecated ``is_gradient_checkpointing``: not ours to fix
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            torch.manual_seed(seed)
            handle = get_peft_model(model, peft_cfg)
    except ValueError as exc:  # peft: target modules not found / no default for this architecture
        model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        raise ConfigError(f"{where}.target_modules={cfg.target_modules!r} does not fit this {model_type} "
                          f"model: {exc}") from exc
    return Adapter(model, handle, before)


def merge_adapter(adapter: Adapter) -> nn.Module:
    """Write the adapter into the base weights (W ← W + (α/r)·B·A) and remove the LoRA layers:
    ``adapter.model`` is again a plain model of its class (what ``save_pretrained`` and every
    later stage read), with its parameters' ``requires_grad`` as before ``add_adapter``.

    The update is computed in fp32 even inside a bf16 scope: under autocast B·A would be a bf16
    matmul (and read autocast's cached copy of B), rounding the learned update to 8 bits."""
    with full_precision(next(adapter.model.parameters()).device.type):
        merged = adapter.peft.merge_and_unload(safe_merge=True)
    weights_changed()  # the base weights were rewritten in place
    return _restore(adapter, merged)


def drop_adapter(adapter: Adapter) -> nn.Module:
    """Remove the LoRA layers without merging: ``adapter.model`` computes as before ``add_adapter``."""
    return _restore(adapter, adapter.peft.unload())


def _restore(adapter: Adapter, model: nn.Module) -> nn.Module:
    if model is not adapter.model:  # peft unloads in place for LoRA; anything else would be a surprise
        raise RuntimeError("peft returned another module than the one the adapter was injected into")
    for n, p in model.named_parameters():
        p.requires_grad_(adapter.requires_grad.get(n, True))
    return model


def _lora_layers(model: nn.Module) -> list[nn.Module]:
    if "peft" not in sys.modules:  # never imported: no adapter anywhere (and the default path never imports it)
        return []
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def has_adapter(model: nn.Module) -> bool:
    """True when ``model`` holds LoRA layers (``add_adapter``)."""
    return bool(_lora_layers(model))


@contextmanager
def adapter_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block ``model`` computes as its frozen base: every LoRA layer in it is switched
    off, exactly what peft's ``PeftModel.disable_adapter()`` does (each layer's
    ``enable_adapters(False)``), here on the module itself so that any module that contains the
    layers (a policy, a reward model whose backbone carries its value model's adapter) can be
    given. A model without an adapter is left as it is (the default path: nothing changes)."""
    layers = _lora_layers(model)
    enabled = [not layer.disable_adapters for layer in layers]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield model
    finally:
        for layer, on in zip(layers, enabled):
            if on:
                layer.enable_adapters(True)


def held_memory(modules: Iterable[nn.Module], unit: nn.Module | None = None) -> dict[str, float]:
    """What ``modules`` hold together, each tensor counted once however many modules share it:
    ``weights_bytes`` (parameters and buffers), ``trainable_params``, ``grad_bytes`` and
    ``adam_bytes`` (what backward and AdamW's two moments add: one and two copies of the trainable
    parameters), ``total_bytes``; with ``unit`` (one plain model), ``weights_copies`` and
    ``total_copies``: the same in multiples of that model's weights."""
    seen: set[int] = set()
    weights, trainable, trainable_bytes = 0, 0, 0
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            key = t.untyped_storage().data_ptr()
            if key in seen:
                continue
            seen.add(key)
            weights += t.untyped_storage().nbytes()
            if isinstance(t, nn.Parameter) and t.requires_grad:
                trainable += t.numel()
                trainable_bytes += t.numel() * t.element_size()
    out = {"weights_bytes": float(weights), "trainable_params": float(trainable),
           "grad_bytes": float(trainable_bytes), "adam_bytes": float(2 * trainable_bytes)}
    out["total_bytes"] = out["weights_bytes"] + out["grad_bytes"] + out["adam_bytes"]
    if unit is not None:
        one = held_memory([unit])["weights_bytes"]
        out["weights_copies"] = out["weights_bytes"] / one
        out["total_copies"] = out["total_bytes"] / one
    return out
