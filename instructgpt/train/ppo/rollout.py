"""Steps 1–5 of a PPO iteration, as functions: ``rollout`` (sample, truncate at EOS, masks),
``score`` (π^SFT log-probabilities, values, RM scores, per-token rewards) and ``advantages``
(GAE, whitening); plus the monitor's samples, made by the same functions.

Every tensor covers the response positions only, ``(B, T_r)``: position t holds the token
y_t, the log-probability of y_t given x, y_<t, and the value of the state before y_t.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.data import collate_prompts
from instructgpt.generation import generate
from instructgpt.lora import adapter_disabled
from instructgpt.losses import gae, kl_k1, kl_k3, masked_whiten, per_token_rewards
from instructgpt.models import position_ids_from_mask
from instructgpt.reward_model import RewardModel
from instructgpt.scoring import score_pairs
from instructgpt.text import strip_lead
from instructgpt.train.common import DistContext, device_of
from instructgpt.train.ppo.config import PPOConfig


def response_mask(response: torch.Tensor, eos_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask of real response tokens: 1 up to and including the first EOS. Returns (mask (B, T),
    ended_with_eos (B,))."""
    is_eos = response == eos_token_id  # (B, T)
    ended = is_eos.any(1)  # (B,)
    T = response.shape[1]
    first = torch.where(ended, is_eos.int().argmax(1), torch.full_like(ended, T - 1, dtype=torch.long))  # (B,)
    mask = torch.arange(T, device=response.device)[None, :] <= first[:, None]  # (B, T)
    return mask, ended


def _accepts(model: nn.Module, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


def response_logits(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    position_ids: torch.Tensor, query_len: int, temperature: float) -> torch.Tensor:
    """Temperature-scaled logits that predict each response token. (B, T_r, V)"""
    n_keep = input_ids.shape[1] - query_len + 1  # positions query_len-1 .. T-1
    kwargs = {"logits_to_keep": n_keep} if _accepts(model, "logits_to_keep") else {}
    # unembedding only where it is needed: the prompt positions' logits are never used
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs).logits
    logits = logits[:, -n_keep:-1].float()  # (B, T_r, V)
    # a division by 1 would still cost a pass over (B, T_r, V) forward and backward
    return logits if temperature == 1.0 else logits / temperature


def gather_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] = logits[token] − logsumexp(logits), without materialising
    the (B, T, V) log-softmax. (B, T, V), (B, T) -> (B, T)"""
    return logits.gather(-1, tokens[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)  # (B, T)


@dataclass
class Rollout:
    """A batch of episodes: prompts, the policy's sampled responses, and the sampling pass's
    log-probabilities. Index a minibatch with ``rollout.input_ids[mb]`` etc."""

    prompts: list[str]
    """The prompts, in batch order."""
    input_ids: torch.Tensor
    """(B, T_q + T_r) left-padded prompt + response; pad after the response's first EOS."""
    attention_mask: torch.Tensor
    """(B, T_q + T_r) 1 on real prompt and response tokens."""
    position_ids: torch.Tensor
    """(B, T_q + T_r) positions over real tokens (left padding does not shift them)."""
    query_len: int
    """T_q, the padded prompt length."""
    response: torch.Tensor
    """(B, T_r) response ids, pad after the first EOS."""
    mask: torch.Tensor
    """(B, T_r) bool: real response tokens, up to and including the first EOS."""
    ended: torch.Tensor
    """(B,) bool: the response emitted EOS."""
    logprobs: torch.Tensor
    """(B, T_r) log π(y_t | x, y_<t) at the PPO temperature, from the sampling pass."""
    entropy: torch.Tensor
    """(B, T_r) entropy of π at each response position, from the sampling pass."""

    def texts(self, tokenizer: PreTrainedTokenizerBase) -> list[str]:
        """Decoded responses up to their first EOS, special tokens dropped."""
        return [strip_lead(tokenizer, tokenizer.decode(r[m], skip_special_tokens=True))
                for r, m in zip(self.response, self.mask)]


@torch.no_grad()
def rollout(policy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], cfg: PPOConfig,
            generator: torch.Generator, uniforms: torch.Tensor | None = None) -> Rollout:
    """Step 1: one response per prompt, sampled with the KV cache at ``cfg.temperature``; tokens
    after the first EOS become padding.

    The log-probabilities and entropies come from the logits the sampling loop already computed
    (no second forward pass of the policy). They equal a full forward pass over prompt + response
    (``response_logits``) up to float rounding: at bench/ppo_vs_trl.py's shapes (GPT-2 4×256,
    64 left-padded prompts, 32 tokens) max |Δ| 1.4e-6 for log-probabilities and 3.3e-6 for
    entropies; tests/core/test_ppo_value.py holds them to 1e-5, test_archs.py checks the other
    architectures. ``uniforms`` (B, max_new_tokens): per-row sampling noise (``generate``) in
    place of ``generator``."""
    device = device_of(policy)
    q = collate_prompts(tokenizer, list(prompts), cfg.max_prompt_len)
    query_ids, query_mask = q.input_ids.to(device), q.attention_mask.to(device)  # (B, T_q)
    gen = generate(policy, query_ids, query_mask, q.position_ids.to(device), cfg.max_new_tokens, cfg.temperature,
                   tokenizer.eos_token_id, tokenizer.pad_token_id, generator, uniforms=uniforms)
    mask, ended = response_mask(gen.response, tokenizer.eos_token_id)  # (B, T_r), (B,)
    response = torch.where(mask, gen.response, torch.full_like(gen.response, tokenizer.pad_token_id))  # (B, T_r)
    input_ids = torch.cat([query_ids, response], 1)  # (B, T_q + T_r)
    attention_mask = torch.cat([query_mask, mask.long()], 1)  # (B, T_q + T_r)
    return Rollout(list(prompts), input_ids, attention_mask, position_ids_from_mask(attention_mask),
                   query_ids.shape[1], response, mask, ended, gen.logprobs, gen.entropy)


def token_logprobs(model: PreTrainedModel, roll: Rollout, temperature: float,
                   rows: torch.Tensor | slice = slice(None)) -> torch.Tensor:
    """log π(y_t | x, y_<t) of ``model`` for the response tokens of ``rows`` of ``roll``, from a
    full forward pass (gradients flow when enabled). (M, T_r)"""
    logits = response_logits(model, roll.input_ids[rows], roll.attention_mask[rows], roll.position_ids[rows],
                             roll.query_len, temperature)  # (M, T_r, V)
    return gather_logprobs(logits, roll.response[rows])  # (M, T_r)


def reference_logprobs(ref_policy: nn.Module, roll: Rollout, temperature: float) -> torch.Tensor:
    """log π^SFT(y_t | x, y_<t) for the response tokens of ``roll``: ``ref_policy``'s, with any LoRA
    adapter in it disabled (with ``ppo.lora`` π^SFT is the policy module itself). (B, T_r)"""
    with adapter_disabled(ref_policy):
        return token_logprobs(ref_policy, roll, temperature)  # (B, T_r)


def token_values(value_model: RewardModel, roll: Rollout, rows: torch.Tensor | slice = slice(None)) -> torch.Tensor:
    """V(x, y_<t) for the response positions of ``rows``: the value of the state before token t
    sits where token t is predicted. (M, T_r)"""
    values = value_model.per_token(roll.input_ids[rows], roll.attention_mask[rows],
                                   roll.position_ids[rows])  # (M, T_q + T_r)
    return values[:, roll.query_len - 1: -1]  # (M, T_r)


@torch.no_grad()
def reward_scores(reward_model: nn.Module, roll: Rollout, tokenizer: PreTrainedTokenizerBase,
                  reward_tokenizer: PreTrainedTokenizerBase | None, reward_max_len: int | None,
                  batch_size: int) -> torch.Tensor:
    """r_θ(x, y) at the last real token: on the rollout's ids, or (``reward_tokenizer``) on its
    text re-encoded in the RM's own format. With ``ppo.lora`` the RM's backbone may carry the
    value model's adapter: it is disabled here. (B,)"""
    with adapter_disabled(reward_model):
        if reward_tokenizer is None:
            return reward_model(roll.input_ids, roll.attention_mask, roll.position_ids)  # (B,)
        pairs = list(zip(roll.prompts, roll.texts(tokenizer)))
        return score_pairs(reward_model, reward_tokenizer, pairs, batch_size=batch_size,
                           max_len=reward_max_len).to(roll.input_ids.device)  # (B,)


@dataclass
class Scores:
    """What the frozen models and the value model say about a rollout (step 2–4)."""

    ref_logprobs: torch.Tensor
    """(B, T_r) log π^SFT(y_t | x, y_<t) at the PPO temperature."""
    values: torch.Tensor
    """(B, T_r) value model's V before each response token (the 'old' values of the update)."""
    rm_scores: torch.Tensor
    """(B,) raw reward-model scores."""
    scores: torch.Tensor
    """(B,) scores used: ``no_eos_penalty`` in place of the RM score for a response without EOS."""
    rewards: torch.Tensor
    """(B, T_r) per-token rewards: −β·KL on every token, the score added on the last real one."""
    non_score_reward: torch.Tensor
    """(B, T_r) the −β·KL part alone."""


@torch.no_grad()
def score(roll: Rollout, ref_policy: PreTrainedModel, value_model: RewardModel, reward_model: nn.Module,
          tokenizer: PreTrainedTokenizerBase, cfg: PPOConfig, kl_coef: float,
          reward_tokenizer: PreTrainedTokenizerBase | None = None, reward_max_len: int | None = None) -> Scores:
    """Steps 2–4: π^SFT log-probabilities, values, RM scores with the fixed penalty for a
    response that never emits EOS, and per-token rewards at β = ``kl_coef``."""
    ref_logprobs = reference_logprobs(ref_policy, roll, cfg.temperature)  # (B, T_r)
    values = token_values(value_model, roll)  # (B, T_r)
    rm_scores = reward_scores(reward_model, roll, tokenizer, reward_tokenizer, reward_max_len, len(roll.prompts))
    scores = rm_scores
    if cfg.no_eos_penalty is not None:
        scores = torch.where(roll.ended, rm_scores, torch.full_like(rm_scores, cfg.no_eos_penalty))  # (B,)
    rewards, non_score_reward = per_token_rewards(scores, roll.logprobs, ref_logprobs, roll.mask, kl_coef,
                                                  cfg.kl.estimator)  # (B, T_r)
    return Scores(ref_logprobs, values, rm_scores, scores, rewards, non_score_reward)


@torch.no_grad()
def advantages(values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor,
               cfg: PPOConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 5: optional reward whitening (scale only), GAE, advantages whitened over the batch.
    Returns ``(advantages, returns)``, (B, T_r) each, zero where masked."""
    if cfg.whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False)
    adv, returns = gae(values, rewards, mask, cfg.gamma, cfg.lam)  # (B, T_r)
    return masked_whiten(adv, mask), returns


def response_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, estimator: str) -> torch.Tensor:
    """KL(π ‖ π^SFT) of each response: the per-token estimate summed over real tokens. (B,)"""
    kl = kl_k1(logprobs, ref_logprobs) if estimator == "k1" else kl_k3(logprobs, ref_logprobs)  # (B, T_r)
    return (kl * mask).sum(1)  # (B,)


@torch.no_grad()
def monitor_samples(policy: PreTrainedModel, ref_policy: PreTrainedModel, reward_model: nn.Module,
                    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], cfg: PPOConfig,
                    step: int, reward_tokenizer: PreTrainedTokenizerBase | None = None,
                    reward_max_len: int | None = None) -> list[dict[str, Any]]:
    """One response of the policy per monitor prompt, at the PPO temperature, with its KL from
    SFT (the training penalty's estimator, summed over the response) and its RM score (raw,
    without the no-EOS penalty; through ``reward_tokenizer`` as text when the RM has its own). The
    generator is seeded by (seed, step) alone: the training's generators and the global RNG are
    left untouched, and a resumed run samples the same."""
    gen = torch.Generator(device=device_of(policy)).manual_seed(cfg.seed * 1_000_003 + 7_919 * step + 1)
    out: list[dict[str, Any]] = []
    for start in range(0, len(prompts), cfg.mini_batch_size):
        roll = rollout(policy, tokenizer, prompts[start: start + cfg.mini_batch_size], cfg, gen)
        kl = response_kl(roll.logprobs, reference_logprobs(ref_policy, roll, cfg.temperature), roll.mask,
                         cfg.kl.estimator)  # (B,)
        rm = reward_scores(reward_model, roll, tokenizer, reward_tokenizer, reward_max_len, cfg.mini_batch_size)
        for i, (prompt, text) in enumerate(zip(roll.prompts, roll.texts(tokenizer))):
            out.append({"prompt": prompt, "response": text, "kl": float(kl[i]), "rm_score": float(rm[i]),
                        "ended_with_eos": bool(roll.ended[i])})
    return out


def gather_rollout(ctx: DistContext, roll: Rollout, scored: Scores, prompts: list[str], pad_token_id: int
                   ) -> tuple[Rollout, Scores]:
    """The global batch of a rollout sharded with ``ctx.shard`` (row g sampled by rank g % world):
    every rank's rows gathered in global order, prompts left-padded and responses right-padded to
    the longest shard's, which are the lengths one process sampling the whole batch gets. The
    tensors are a few (B, T) rows: cheap next to the sampling they spare. ``prompts``: the global
    batch's. Single process: ``roll`` and ``scored`` themselves."""
    if not ctx.enabled:
        return roll, scored
    B, q = len(prompts), roll.query_len
    # packed per shape, so that the gather is 4 collectives, not one per tensor (each is a point
    # where the processes wait for each other); padding ids are restored from the masks below
    query = ctx.gather_rows(torch.stack([roll.input_ids[:, :q], roll.attention_mask[:, :q]], -1), B,
                            left=True)  # (B, T_q, 2) ids, mask
    tokens = ctx.gather_rows(torch.stack([roll.response, roll.mask.long()], -1), B)  # (B, T_r, 2) ids, mask
    floats = ctx.gather_rows(torch.stack([t.float() for t in (roll.logprobs, roll.entropy, scored.ref_logprobs,
                                          scored.values, scored.rewards, scored.non_score_reward)], -1),
                             B)  # (B, T_r, 6) fp32 (bf16 values under autocast are widened)
    per_row = ctx.gather_rows(torch.stack([roll.ended.float(), scored.rm_scores.float(), scored.scores.float()], -1),
                              B)  # (B, 3)
    query_mask = query[..., 1]  # (B, T_q)
    query_ids = torch.where(query_mask.bool(), query[..., 0], pad_token_id)  # (B, T_q) left pad, as collated
    mask = tokens[..., 1].bool()  # (B, T_r)
    response = torch.where(mask, tokens[..., 0], pad_token_id)  # (B, T_r) pad after the first EOS, as sampled
    input_ids = torch.cat([query_ids, response], 1)  # (B, T_q + T_r)
    attention_mask = torch.cat([query_mask, mask.long()], 1)  # (B, T_q + T_r)
    logprobs, entropy, ref_logprobs, values, rewards, non_score_reward = floats.unbind(-1)  # (B, T_r) each
    glob = Rollout(list(prompts), input_ids, attention_mask, position_ids_from_mask(attention_mask),
                   query_ids.shape[1], response, mask, per_row[:, 0].bool(), logprobs, entropy)
    return glob, Scores(ref_logprobs, values, per_row[:, 1].to(scored.rm_scores.dtype),
                        per_row[:, 2].to(scored.scores.dtype), rewards, non_score_reward)
