"""Rewards of many responses to few prompts, each prompt run through the model once.

The reward model reads K responses per prompt (training and evaluating on K-way rankings). The
plain forward runs the prompt K times, once per (prompt, response) sequence. Here each distinct
prompt runs once and keeps its KV cache; the cache is expanded to the prompt's responses, and only
the response tokens run, attending to the cached prompt (attention mask = prompt mask ++
response mask, positions continuing after the prompt's last real token). The reward is read at
each response's last real token, as ``RewardModel.forward`` reads it, and gradients flow into the
prompt's computation through the cache (summed over its responses).

Same tokens as ``instructgpt.data.collate_pairs`` (``encode_sft``, truncation included: pairs
whose cut left different prompt tokens are different prompts here). Prompts are left-padded,
responses right-padded, so every response continues its prompt without a gap.

Backbones not known to take a cache with explicit positions this way fall back to the plain
forward (``pair_rewards`` chooses). With dropout, a prompt shares one dropout mask among its
responses (the plain forward draws one per sequence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from instructgpt.data import (
    IGNORE_INDEX,
    collate_pairs,
    encode_prompt,
    encode_responses,
    encode_sft,
    left_pad,
)
from instructgpt.models import cache_kwarg, position_ids_from_mask
from instructgpt.reward_model import RewardModel

# Architectures whose backbone is tested to give the plain forward's rewards from a shared prompt
# cache (tests/core/test_prefix_sharing.py): a DynamicCache, explicit position ids, a 2-D mask.
SHARED_PREFIX_ARCHS = ("gpt2", "llama", "gpt_neox", "qwen2")


@dataclass
class PrefixBatch:
    """(prompt, response) pairs grouped by prompt: each distinct prompt once, responses after it."""

    prompt_ids: torch.Tensor  # (U, Tp) left-padded
    prompt_mask: torch.Tensor  # (U, Tp)
    response_ids: torch.Tensor  # (N, Tr) right-padded
    response_mask: torch.Tensor  # (N, Tr)
    owner: torch.Tensor  # (N,) the prompt row each response continues


def supports_shared_prefix(rm: RewardModel) -> bool:
    """True when ``rm``'s backbone can continue a shared prompt cache: an architecture of
    ``SHARED_PREFIX_ARCHS``, and no gradient checkpointing (which turns the cache off)."""
    backbone = rm.backbone
    checkpointing = getattr(backbone, "is_activation_checkpointing", None)  # transformers >= 5.2x
    if checkpointing is None:
        checkpointing = getattr(backbone, "is_gradient_checkpointing", False)
    return getattr(backbone.config, "model_type", None) in SHARED_PREFIX_ARCHS and not checkpointing


def collate_prefix(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]],
                   max_len: int) -> PrefixBatch | None:
    """The pairs' tokens (as ``collate_pairs`` makes them) split into distinct prompts and their
    responses; None when a pair kept no prompt or no response token (use the plain forward)."""
    encoded: dict[str, list[int]] = {}  # each prompt text tokenized once
    prompts: dict[tuple[int, ...], int] = {}
    responses, owner = [], []
    for (prompt, response), r_ids in zip(pairs, encode_responses(tokenizer, [r for _, r in pairs])):
        if prompt not in encoded:
            encoded[prompt] = encode_prompt(tokenizer, prompt)
        p_ids = encoded[prompt]
        if len(p_ids) + len(r_ids) > max_len:  # too long: cut exactly as collate_pairs does
            ids, labels = encode_sft(tokenizer, prompt, response, max_len)
            n_prompt = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
            p_ids, r_ids = ids[:n_prompt], ids[n_prompt:]
        if not p_ids or not r_ids:
            return None
        owner.append(prompts.setdefault(tuple(p_ids), len(prompts)))
        responses.append(r_ids)
    prompt_ids, prompt_mask = left_pad(list(prompts), tokenizer.pad_token_id)  # (U, Tp)
    response_ids, response_mask = _right_pad(responses, tokenizer.pad_token_id)  # (N, Tr)
    return PrefixBatch(prompt_ids, prompt_mask, response_ids, response_mask, torch.tensor(owner, dtype=torch.long))


def _right_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad lists of ids to the longest: (ids (B, T), attention_mask (B, T))."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def prefix_rewards(rm: RewardModel, batch: PrefixBatch) -> torch.Tensor:
    """r_θ(x, y) at each response's last real token, each prompt run once. (N,)"""
    device = next(rm.parameters()).device
    prompt_ids, prompt_mask = batch.prompt_ids.to(device), batch.prompt_mask.to(device)
    owner = batch.owner.to(device)
    out = rm.backbone(input_ids=prompt_ids, attention_mask=prompt_mask,
                      position_ids=position_ids_from_mask(prompt_mask), use_cache=True)
    cache = out[cache_kwarg(rm.backbone)]
    cache.reorder_cache(owner)  # (U, ...) -> (N, ...): each response gets its prompt's keys/values
    response_mask = batch.response_mask.to(device)
    mask = torch.cat([prompt_mask[owner], response_mask], 1)  # (N, Tp + Tr)
    positions = position_ids_from_mask(mask)[:, prompt_ids.shape[1]:]  # (N, Tr) continuing the prompt
    values = rm.per_token(batch.response_ids.to(device), mask, positions, past_key_values=cache)  # (N, Tr)
    last = response_mask.sum(1) - 1  # (N,) right padding: the last real token's column
    return values.gather(1, last[:, None]).squeeze(1)  # (N,)


def pair_rewards(rm: RewardModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]],
                 max_len: int) -> torch.Tensor:
    """r_θ(x, y) for (prompt, response) pairs (with gradients): prompts shared among their
    responses where the backbone allows it, else one plain forward over every sequence. (N,)"""
    batch = collate_prefix(tokenizer, pairs, max_len) if supports_shared_prefix(rm) else None
    if batch is None:
        device = next(rm.parameters()).device
        inputs = collate_pairs(tokenizer, pairs, max_len).model_inputs()
        return rm(**{k: v.to(device) for k, v in inputs.items()})  # (N,)
    return prefix_rewards(rm, batch)
