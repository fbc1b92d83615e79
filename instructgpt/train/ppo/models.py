"""The four networks of a PPO run: the policy π (trained), the reference π^SFT (frozen), the value
model V (trained) and the reward model r_θ (frozen); how ``train_ppo`` builds them, and what it
does with them at the end.

Full fine-tuning (``ppo.lora`` null, the paper's): π^SFT is a copy of the policy, V a copy of the
RM: four copies of the weights, and gradients plus AdamW's two moments for the two trained ones.

LoRA (``ppo.lora``): π trains an adapter on the SFT weights and π^SFT is the SAME module with the
adapter disabled (``instructgpt.lora.adapter_disabled``, exact: a disabled LoRA layer calls its
base layer alone); V is the RM's own backbone module with a second adapter, plus a copy of the
RM's head (trained in full), and r_θ is that backbone with the adapter disabled. Two copies of
the weights instead of four, and gradients and optimizer state for the adapters and the value
head only. At the end the policy's adapter is merged into its weights (what the stage saves) and
the value model's is dropped (the RM is itself again).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.lora import Adapter, add_adapter, drop_adapter, merge_adapter
from instructgpt.models import fuse_activations, set_dropout
from instructgpt.reward_model import RewardModel
from instructgpt.train.ppo.config import PPOConfig


@dataclass
class PPOModels:
    """The networks of one PPO run, ready to train."""

    policy: PreTrainedModel
    """π: trained (all its weights, or its adapter)."""
    ref_policy: nn.Module
    """π^SFT: a frozen copy, or (LoRA) the policy itself, read with its adapter disabled."""
    value_model: nn.Module
    """V: trained (all its weights, or its adapter and its head)."""
    reward_model: nn.Module
    """r_θ: frozen; (LoRA) its backbone may carry the value model's adapter, read disabled."""
    policy_adapter: Adapter | None = None
    """The policy's LoRA adapter (None: full fine-tuning)."""
    value_adapter: Adapter | None = None
    """The value model's LoRA adapter (None: full fine-tuning, or a value model without a backbone)."""
    value_shares_rm: bool = False
    """The value model's backbone IS the RM's (LoRA): its adapter is dropped at the end."""


def value_model_on(reward_model: RewardModel) -> RewardModel:
    """A value model that shares ``reward_model``'s backbone module (not a copy) with copies of its
    head, gain and bias, so V starts as the RM (paper). Only an adapter on that backbone may then
    train it, and the RM must be read with the adapter disabled (``reward_scores`` does)."""
    value = RewardModel(reward_model.backbone)
    with torch.no_grad():
        value.head.load_state_dict(reward_model.head.state_dict())
        value.gain.copy_(reward_model.gain)
        value.bias.copy_(reward_model.bias)
    return value.to(reward_model.gain.device)


def fold_gain(value: nn.Module) -> None:
    """Move a value model's gain into its head's weights (gain 1 after; the same outputs).

    A value model copied from the RM inherits the RM's normalising gain, a frozen buffer: its
    outputs are gain·head(h) + bias, so every gradient on the head is scaled by the gain (0.36 on
    the demo) and the head learns that many times slower than ``ppo.vf_lr`` says, while the
    returns it must fit are in reward units. Folded, the head's own weights carry the scale."""
    if not isinstance(value, RewardModel):
        return
    with torch.no_grad():
        gain = value.gain.to(value.head.weight.dtype)
        value.head.weight.mul_(gain)
        value.head.bias.mul_(gain)
        value.gain.fill_(1.0)


def build_models(policy: PreTrainedModel, ref_policy: nn.Module | None, value_model: nn.Module | None,
                 reward_model: nn.Module, reward_tokenizer: PreTrainedTokenizerBase | None, cfg: PPOConfig,
                 device: torch.device) -> PPOModels:
    """The four networks with dropout off, GPT-2's GELU fused, the frozen ones frozen.

    ``ref_policy`` None: a frozen copy of the policy, or (LoRA) the policy itself. ``value_model``
    None: a copy of the RM when ``reward_tokenizer`` is None (it reads the policy's tokens), else
    the policy's weights with a fresh scalar head; with LoRA and an RM of the policy's tokenizer,
    the RM's own backbone (``value_model_on``). With ``cfg.lora`` the policy and a value model
    with a backbone get their adapters last: they freeze the base weights they sit on."""
    lora = cfg.lora
    if ref_policy is None:
        ref_policy = policy if lora is not None else copy.deepcopy(policy)
    shares = False
    if value_model is None:
        if reward_tokenizer is not None:
            value_model = RewardModel.from_causal_lm(policy, seed=cfg.seed).to(device)
        elif lora is not None and isinstance(reward_model, RewardModel):
            value_model, shares = value_model_on(reward_model), True
        else:
            value_model = copy.deepcopy(reward_model)
    fold_gain(value_model)
    for m in (policy, ref_policy, value_model, reward_model):
        set_dropout(m, 0.0)  # dropout off everywhere during RL: logprobs must be deterministic
        m.eval()
        fuse_activations(m)  # also for models built elsewhere: GPT-2's GELU in one kernel, same function
    for m in (ref_policy, reward_model):
        m.requires_grad_(False)
    for m in (policy, value_model):  # a value model copied from a frozen RM must train
        m.requires_grad_(True)
    if value_model is reward_model or (ref_policy is policy and lora is None):
        raise ValueError("train_ppo: value_model/ref_policy must be separate copies of reward_model/policy")
    out = PPOModels(policy, ref_policy, value_model, reward_model, value_shares_rm=shares)
    if lora is not None:
        out.policy_adapter = add_adapter(policy, lora, cfg.seed, "ppo.lora")
        if isinstance(value_model, RewardModel):  # its head stays trainable: it sits outside the backbone
            out.value_adapter = add_adapter(value_model.backbone, lora, cfg.seed + 1, "ppo.lora")
    return out


def finish_models(models: PPOModels) -> None:
    """After training: the policy's adapter merged into its weights (a plain model, what the stage
    saves); the value model's merged too, or dropped when its backbone is the RM's (the RM is
    itself again, frozen)."""
    if models.policy_adapter is not None:
        merge_adapter(models.policy_adapter)
    if models.value_adapter is not None:
        if models.value_shares_rm:
            drop_adapter(models.value_adapter)
            models.reward_model.requires_grad_(False)
        else:
            merge_adapter(models.value_adapter)
