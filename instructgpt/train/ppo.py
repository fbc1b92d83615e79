"""Step 3: PPO / PPO-ptx against the reward model with a per-token KL penalty (paper section 3.5).

Bandit episodes: a prompt, one sampled response, the RM score on its last real token, minus
β·KL(π^RL ‖ π^SFT) per token. Value model initialised from the RM (paper) when the RM shares the
policy's tokenizer; an RM from another base with another tokenizer (``rm.model_path``) scores the
rollout's TEXT in its own format instead, and the value model then starts from the SFT policy's
weights with a fresh scalar head (it must read the policy's tokens; see ``train_ppo``). PPO-ptx adds
γ·(pretraining LM loss) to the SAME backward pass (one backward of ppo loss + ptx_coef·lm loss).
Conventions from the paper's successors (lm-human-preferences, TRL), see docs/RECIPE.md:
temperature-scaled logits for sampling AND log-probabilities, no top-k/top-p, responses end at
the first EOS (later tokens are padding, masked everywhere), fixed penalty score when a response
never emits EOS, dropout off in all four models.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.config import ConfigError, to_dict
from instructgpt.data import collate_prompts, epoch_permutation, make_blocks
from instructgpt.generation import generate_ids
from instructgpt.losses import (
    AdaptiveKLController,
    FixedKLController,
    entropy_from_logits,
    gae,
    kl_k1,
    kl_k3,
    lm_loss,
    masked_mean,
    masked_var,
    masked_whiten,
    per_token_rewards,
    ppo_policy_loss,
    ppo_value_loss,
)
from instructgpt.models import RewardModel, position_ids_from_mask, same_tokenizer, set_dropout
from instructgpt.progress import progress
from instructgpt.scoring import context_length, score_pairs
from instructgpt.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from instructgpt.train.common import LogFn, check_finite, device_of, distributed, make_optimizer, no_log

SampleLog = Callable[[list[dict[str, Any]], int], None]


@dataclass
class KLConfig:
    """The KL penalty β·KL(π^RL ‖ π^SFT) and its controller."""

    kl_coef: float = 0.02
    """β at the start (successors of the paper: 0.02)."""
    adaptive: bool = False
    """Adapt β towards ``target`` (Ziegler et al. 2019) instead of keeping it fixed."""
    target: float = 6.0
    """Target KL per response, in nats (adaptive only)."""
    horizon: int = 10000
    """Adaptation horizon in episodes (adaptive only)."""
    estimator: str = "k1"
    """Per-token KL estimate in the reward: "k1" (log-ratio, as the paper) or "k3"."""

    def __post_init__(self) -> None:
        if self.kl_coef < 0:
            raise ConfigError(f"ppo.kl.kl_coef={self.kl_coef} must be >= 0")
        if self.estimator not in ("k1", "k3"):
            raise ConfigError(f"ppo.kl.estimator={self.estimator!r}: choose 'k1' or 'k3'")
        if self.adaptive and (self.target <= 0 or self.horizon <= 0):
            raise ConfigError("ppo.kl.adaptive needs ppo.kl.target > 0 and ppo.kl.horizon > 0")


@dataclass
class PPOConfig:
    """PPO (ptx_coef = 0) or PPO-ptx (ptx_coef > 0) fine-tuning of the SFT policy."""

    steps: int = 100
    """PPO iterations; each = one rollout batch + ppo_epochs of updates."""
    batch_size: int = 64
    """Rollouts (prompt, response) per iteration."""
    mini_batch_size: int = 16
    """Rollouts per gradient step; must divide batch_size."""
    ppo_epochs: int = 4
    """Passes over each rollout batch."""
    lr: float = 1e-5
    """AdamW learning rate of policy and value model (constant)."""
    weight_decay: float = 0.0
    """AdamW weight decay on weight matrices."""
    grad_clip: float = 1.0
    """Max global gradient norm (0 = no clipping)."""
    cliprange: float = 0.2
    """ε of the clipped policy ratio."""
    cliprange_value: float = 0.2
    """ε of the clipped value prediction."""
    vf_coef: float = 0.1
    """Weight of the value loss (the value model is a separate network, so this acts like its
    learning-rate scale)."""
    gamma: float = 1.0
    """GAE discount (bandit episode: 1)."""
    lam: float = 0.95
    """GAE λ."""
    temperature: float = 1.0
    """Sampling temperature; also divides the logits for logprobs/ref_logprobs."""
    max_new_tokens: int = 48
    """Response length cap; a response without EOS within it gets ``no_eos_penalty``."""
    max_prompt_len: int = 128
    """Prompt tokens kept (from the end)."""
    no_eos_penalty: float | None = -1.0
    """Score given to a response that never emits EOS (None = use the RM score). The RM is
    normalised so demonstrations score 0; pick a value below typical scores."""
    whiten_rewards: bool = False
    """Scale per-token rewards to unit variance (mean kept) before GAE."""
    ptx_coef: float = 0.0
    """γ: weight of the pretraining LM loss (0 = PPO, > 0 = PPO-ptx). Successors used 27.8 with
    their loss normalisation; here both losses are per-token means, so γ ≈ 0.5–2 is the useful
    range for the tiny models (27.8 would swamp the PPO term)."""
    ptx_batch_size: int = 8
    """Pretraining blocks per gradient step (PPO-ptx)."""
    ptx_block_size: int = 128
    """Tokens per pretraining block (PPO-ptx)."""
    ema_decay: float = 0.0
    """EMA of the policy weights (0 = off; successors: 0.992). When on, the RETURNED policy holds
    the EMA weights; rollouts always use the live policy."""
    kl: KLConfig = field(default_factory=KLConfig)
    """KL penalty settings."""
    seed: int = 0
    """Seeds prompt order, sampling, minibatch order and ptx data order."""
    sample_every: int = 10
    """Every N steps (and at the last), the policy answers the monitor prompts (held-out
    prompts given to ``train_ppo``) and ``sample_log`` receives the samples with their KL from
    SFT and RM score: the reward over-optimisation curve (0 = never)."""
    monitor_prompts: int = 8
    """How many validation-split prompts the monitor samples (the same prompts at every step)."""
    show_progress: bool = True
    """Progress bar (a few log lines when stderr is not a terminal)."""
    checkpoint_dir: str | None = None
    """Resumable checkpoint directory (None = none); an existing checkpoint is resumed."""
    checkpoint_every: int = 0
    """Checkpoint every N steps (0 = never)."""

    def __post_init__(self) -> None:
        if self.batch_size % self.mini_batch_size:
            raise ConfigError(
                f"ppo.batch_size={self.batch_size} must be a multiple of ppo.mini_batch_size={self.mini_batch_size}"
            )
        if self.temperature <= 0:
            raise ConfigError("ppo.temperature must be > 0 (logprobs are computed at that temperature)")
        if self.ptx_coef < 0:
            raise ConfigError("ppo.ptx_coef must be >= 0 (0 = PPO, > 0 = PPO-ptx)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("ppo.ema_decay must be in [0, 1)")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ConfigError("ppo.checkpoint_every > 0 needs ppo.checkpoint_dir")


def response_mask(response: torch.Tensor, eos_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask of real response tokens: 1 up to and including the first EOS. Returns (mask (B, T),
    ended_with_eos (B,))."""
    is_eos = response == eos_token_id  # (B, T)
    ended = is_eos.any(1)  # (B,)
    T = response.shape[1]
    first = torch.where(ended, is_eos.int().argmax(1), torch.full_like(ended, T - 1, dtype=torch.long))  # (B,)
    mask = torch.arange(T, device=response.device)[None, :] <= first[:, None]  # (B, T)
    return mask, ended


def response_logits(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    position_ids: torch.Tensor, query_len: int, temperature: float) -> torch.Tensor:
    """Temperature-scaled logits that predict each response token. (B, T_r, V)"""
    n_keep = input_ids.shape[1] - query_len + 1  # positions query_len-1 .. T-1
    kwargs = {"logits_to_keep": n_keep} if _accepts(model, "logits_to_keep") else {}
    # unembedding only where it is needed: the prompt positions' logits are never used
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs).logits
    logits = logits[:, -n_keep:]  # (B, T_r + 1, V)
    return logits[:, :-1].float() / temperature  # (B, T_r, V)


def _accepts(model: PreTrainedModel, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


def gather_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token]. (B, T, V), (B, T) -> (B, T)"""
    return F.log_softmax(logits, dim=-1).gather(-1, tokens[..., None]).squeeze(-1)


def _nth(n: int, seed: int, g: int) -> int:
    """Item of the g-th draw in an endless sequence of seeded epoch permutations of range(n)."""
    return epoch_permutation(n, seed, g // n)[g % n]


@torch.no_grad()
def monitor_samples(policy: PreTrainedModel, ref_policy: PreTrainedModel, reward_model: RewardModel,
                    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], cfg: PPOConfig,
                    step: int, reward_tokenizer: PreTrainedTokenizerBase | None = None,
                    reward_max_len: int | None = None) -> list[dict[str, Any]]:
    """One response of the policy per monitor prompt, at the PPO temperature, with its KL from
    SFT (the training penalty's estimator, summed over the response) and its RM score (raw,
    without the no-EOS penalty; through ``reward_tokenizer`` as text when the RM has its own). The
    generator is seeded by (seed, step) alone: the training's generators and the global RNG are
    left untouched, and a resumed run samples the same."""
    device = device_of(policy)
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + 7_919 * step + 1)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    out: list[dict[str, Any]] = []
    for start in range(0, len(prompts), cfg.mini_batch_size):
        chunk = list(prompts[start: start + cfg.mini_batch_size])
        q = collate_prompts(tokenizer, chunk, cfg.max_prompt_len)
        query_len = q.input_ids.shape[1]
        response = generate_ids(policy, q.input_ids.to(device), q.attention_mask.to(device),
                                q.position_ids.to(device), cfg.max_new_tokens, cfg.temperature, eos, pad, gen)
        mask, ended = response_mask(response, eos)  # (B, T_r), (B,)
        response = torch.where(mask, response, torch.full_like(response, pad))
        input_ids = torch.cat([q.input_ids.to(device), response], 1)
        attention = torch.cat([q.attention_mask.to(device), mask.long()], 1)
        position_ids = position_ids_from_mask(attention)
        logprobs = gather_logprobs(response_logits(policy, input_ids, attention, position_ids, query_len,
                                                   cfg.temperature), response)
        ref_logprobs = gather_logprobs(response_logits(ref_policy, input_ids, attention, position_ids, query_len,
                                                       cfg.temperature), response)
        kl = kl_k1(logprobs, ref_logprobs) if cfg.kl.estimator == "k1" else kl_k3(logprobs, ref_logprobs)
        kl = (kl * mask).sum(1)  # (B,)
        texts = [tokenizer.decode(response[i][mask[i]], skip_special_tokens=True) for i in range(len(chunk))]
        if reward_tokenizer is None:
            rm = reward_model(input_ids, attention, position_ids)  # (B,)
        else:
            rm = score_pairs(reward_model, reward_tokenizer, list(zip(chunk, texts)),
                             batch_size=cfg.mini_batch_size, max_len=reward_max_len)
        for i, prompt in enumerate(chunk):
            out.append({"prompt": prompt, "response": texts[i],
                        "kl": float(kl[i]), "rm_score": float(rm[i]), "ended_with_eos": bool(ended[i])})
    return out


def train_ppo(
    policy: PreTrainedModel,
    ref_policy: PreTrainedModel | None,
    value_model: RewardModel | None,
    reward_model: RewardModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    pretrain_texts: Sequence[str],
    cfg: PPOConfig,
    log: LogFn = no_log,
    sample_log: SampleLog | None = None,
    monitor_prompts: Sequence[str] = (),
    reward_tokenizer: PreTrainedTokenizerBase | None = None,
) -> dict[str, float]:
    """Optimise ``policy`` in place; ``ref_policy`` (π^SFT) defaults to a frozen copy of the policy
    and ``value_model`` to a copy of the reward model. Returns the last step's metrics.

    Every ``cfg.sample_every`` steps (and at the last) the policy answers ``monitor_prompts``
    (held-out prompts, never trained on) and ``sample_log(samples, step)`` receives them
    (``monitor_samples``); the monitor draws from its own seeded generator, so training is the
    same with or without it.

    ``reward_tokenizer`` is the RM's own tokenizer. None, or one that tokenizes like the policy's
    (``same_tokenizer``): the RM reads the rollout's token ids directly (the paper's setting).
    Otherwise each rollout's response is decoded (up to its first EOS, special tokens dropped)
    and (prompt, response) is scored as text with the RM's tokenizer and prompt format
    (``instructgpt.scoring.score_pairs``, the same encoding the RM was trained on); a missing
    ``value_model`` then starts from the policy's weights with a fresh scalar head, because a
    copy of the RM could not read the policy's tokens."""
    if not prompts:
        raise ValueError("train_ppo: no prompts")
    if reward_tokenizer is not None and same_tokenizer(reward_tokenizer, tokenizer):
        reward_tokenizer = None  # same ids: no re-encoding (bit-identical to the paper's path)
    device = device_of(policy)
    # Data parallel under torchrun: every rank runs the SAME rollout (same generator, same
    # weights: the single-process batch, no gather needed) and takes its shard of each
    # minibatch for the update, most of a step's compute; gradients are summed across ranks.
    ctx = distributed()
    if ctx.world_size > min(cfg.mini_batch_size, cfg.ptx_batch_size if cfg.ptx_coef > 0 else cfg.mini_batch_size):
        raise ConfigError(f"ppo.mini_batch_size (and ppo.ptx_batch_size with PPO-ptx) must be >= the "
                          f"{ctx.world_size} processes: each needs rows of every minibatch")
    if not ctx.is_main:
        log, sample_log = no_log, None
    ref_policy = ref_policy if ref_policy is not None else copy.deepcopy(policy)
    if value_model is None:
        value_model = (copy.deepcopy(reward_model) if reward_tokenizer is None
                       else RewardModel.from_causal_lm(policy, seed=cfg.seed).to(device))
    reward_max_len = context_length(reward_model) if reward_tokenizer is not None else None
    for m in (policy, ref_policy, value_model, reward_model):
        set_dropout(m, 0.0)  # dropout off everywhere during RL: logprobs must be deterministic
        m.eval()
    for m in (ref_policy, reward_model):
        m.requires_grad_(False)
    for m in (policy, value_model):  # a value model copied from a frozen RM must train
        m.requires_grad_(True)
    if value_model is reward_model or ref_policy is policy:
        raise ValueError("train_ppo: value_model/ref_policy must be separate copies of reward_model/policy")
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    ptx_blocks = None
    if cfg.ptx_coef > 0:
        if not pretrain_texts:
            raise ConfigError("ppo.ptx_coef > 0 (PPO-ptx) needs pretraining texts")
        ptx_blocks = make_blocks(tokenizer, pretrain_texts, cfg.ptx_block_size)  # (N, block)
    params = list(policy.parameters()) + list(value_model.parameters())
    optimizer = make_optimizer(params, cfg.lr, cfg.weight_decay)
    kl_ctl = (AdaptiveKLController(cfg.kl.kl_coef, cfg.kl.target, cfg.kl.horizon) if cfg.kl.adaptive
              else FixedKLController(cfg.kl.kl_coef))
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    ema = {k: v.detach().clone() for k, v in policy.state_dict().items()} if cfg.ema_decay > 0 else None
    step, prompt_pos, ptx_pos = 0, 0, 0
    state = load_checkpoint(cfg.checkpoint_dir, {"policy": policy, "value": value_model})
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        kl_ctl.load_state_dict(state["kl_ctl"])
        gen.set_state(state["gen"])
        set_rng_state(state["rng"])
        step, prompt_pos, ptx_pos = int(state["step"]), int(state["prompt_pos"]), int(state["ptx_pos"])
        ema = state["ema"]
    metrics: dict[str, float] = {}
    bar = progress(total=cfg.steps, initial=step, desc="ppo", unit="step",
                   disable=not (cfg.show_progress and ctx.is_main))
    while step < cfg.steps:
        # 1. rollout: sample responses with the KV cache at the PPO temperature
        b_prompts = [prompts[_nth(len(prompts), cfg.seed, prompt_pos + i)] for i in range(cfg.batch_size)]
        prompt_pos += cfg.batch_size
        q = collate_prompts(tokenizer, b_prompts, cfg.max_prompt_len)
        query_len = q.input_ids.shape[1]
        response = generate_ids(policy, q.input_ids.to(device), q.attention_mask.to(device), q.position_ids.to(device),
                                cfg.max_new_tokens, cfg.temperature, eos, pad, gen)  # (B, T_r)
        # 2. EOS truncation, logprobs, ref_logprobs, values
        mask, ended = response_mask(response, eos)  # (B, T_r), (B,)
        response = torch.where(mask, response, torch.full_like(response, pad))
        b_input_ids = torch.cat([q.input_ids.to(device), response], 1)  # (B, T_q + T_r)
        b_attention_mask = torch.cat([q.attention_mask.to(device), mask.long()], 1)  # (B, T_q + T_r)
        b_position_ids = position_ids_from_mask(b_attention_mask)  # (B, T_q + T_r)
        with torch.no_grad():
            logits = response_logits(policy, b_input_ids, b_attention_mask, b_position_ids, query_len, cfg.temperature)
            logprobs = gather_logprobs(logits, response)  # (B, T_r)
            entropy = masked_mean(entropy_from_logits(logits), mask)
            del logits
            ref_logits = response_logits(ref_policy, b_input_ids, b_attention_mask, b_position_ids, query_len,
                                         cfg.temperature)
            ref_logprobs = gather_logprobs(ref_logits, response)  # (B, T_r)
            del ref_logits
            # the value of the state before response token t sits where token t is predicted
            values = value_model.per_token(b_input_ids, b_attention_mask, b_position_ids)  # (B, T_q + T_r)
            values = values[:, query_len - 1: -1]  # (B, T_r)
            # 3. scores: RM at the last real token (the rollout's ids, or its text re-encoded for an RM
            # with its own tokenizer); fixed penalty without EOS
            texts = [tokenizer.decode(r[m], skip_special_tokens=True) for r, m in zip(response, mask)]
            if reward_tokenizer is None:
                rm_scores = reward_model(b_input_ids, b_attention_mask, b_position_ids)  # (B,)
            else:
                rm_scores = score_pairs(reward_model, reward_tokenizer, list(zip(b_prompts, texts)),
                                        batch_size=cfg.batch_size, max_len=reward_max_len).to(device)  # (B,)
            scores = rm_scores
            if cfg.no_eos_penalty is not None:
                scores = torch.where(ended, rm_scores, torch.full_like(rm_scores, cfg.no_eos_penalty))
            # 4. per-token rewards: −β·KL on every token, score on the last real one
            rewards, non_score_reward = per_token_rewards(scores, logprobs, ref_logprobs, mask, kl_ctl.value,
                                                          cfg.kl.estimator)  # (B, T_r)
            if cfg.whiten_rewards:
                rewards = masked_whiten(rewards, mask, shift_mean=False)
            # 5. GAE, advantages whitened over the batch
            advantages, returns = gae(values, rewards, mask, cfg.gamma, cfg.lam)  # (B, T_r)
            advantages = masked_whiten(advantages, mask)
        for name, t in (("scores", scores), ("logprobs", logprobs), ("ref_logprobs", ref_logprobs),
                        ("values", values), ("advantages", advantages)):
            check_finite(t, step, f"ppo/{name}")
        # 6. PPO epochs over minibatches (one backward of ppo loss + γ·ptx loss)
        stats: dict[str, list[float]] = {}
        for ppo_epoch in range(cfg.ppo_epochs):
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 101 + ppo_epoch)
            perm = torch.randperm(cfg.batch_size, generator=g).to(device)
            for start in range(0, cfg.batch_size, cfg.mini_batch_size):
                b_mb = perm[start: start + cfg.mini_batch_size]  # (M,) the minibatch
                mb = b_mb[ctx.rank:: ctx.world_size]  # this rank's rows (all of them in a single process)
                mb_mask = mask[mb]  # (M, T_r)
                mb_logits = response_logits(policy, b_input_ids[mb], b_attention_mask[mb], b_position_ids[mb],
                                            query_len, cfg.temperature)  # (M, T_r, V)
                mb_logprobs = gather_logprobs(mb_logits, response[mb])  # (M, T_r)
                vpred = value_model.per_token(b_input_ids[mb], b_attention_mask[mb],
                                              b_position_ids[mb])[:, query_len - 1: -1]  # (M, T_r)
                pg_loss, pg_stats = ppo_policy_loss(mb_logprobs, logprobs[mb], advantages[mb], mb_mask, cfg.cliprange)
                vf_loss, vf_stats = ppo_value_loss(vpred, values[mb], returns[mb], mb_mask, cfg.cliprange_value)
                # a shard's share of the minibatch's token means / of its ptx blocks (all equally long)
                share = float(mb_mask.sum()) / float(mask[b_mb].sum()) if ctx.enabled else 1.0
                loss = pg_loss + cfg.vf_coef * vf_loss
                loss = loss * share if ctx.enabled else loss
                mb_stats = {"policy/loss": pg_stats["loss"], "policy/clipfrac": pg_stats["clipfrac"],
                            "policy/approxkl": pg_stats["approxkl"], "val/loss": vf_stats["loss"],
                            "val/clipfrac": vf_stats["clipfrac"], "val/vpred": vf_stats["vpred"]}
                shares = dict.fromkeys(mb_stats, share)
                if ptx_blocks is not None:
                    idx = [_nth(len(ptx_blocks), cfg.seed + 1, ptx_pos + i) for i in range(cfg.ptx_batch_size)]
                    ptx_pos += cfg.ptx_batch_size
                    idx = ctx.shard(idx)
                    mb_ptx = ptx_blocks[idx].to(device)  # (P, block)
                    ptx_loss, _ = lm_loss(policy(input_ids=mb_ptx).logits, mb_ptx, torch.ones_like(mb_ptx))
                    shares["ptx/loss"] = len(idx) / cfg.ptx_batch_size
                    loss = loss + cfg.ptx_coef * (ptx_loss * shares["ptx/loss"] if ctx.enabled else ptx_loss)
                    mb_stats["ptx/loss"] = ptx_loss.detach()
                loss_sum = loss
                if ctx.enabled:  # the ranks' weighted shares add up to the minibatch's statistics
                    summed = ctx.all_sum(torch.stack([v.float() * shares[k] for k, v in mb_stats.items()]))
                    mb_stats = dict(zip(mb_stats, summed))
                    loss_sum = ctx.all_sum(loss.detach())
                check_finite(loss_sum, step, "ppo/loss (policy + value + ptx)")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                ctx.sync_gradients(params)
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                if ema is not None:
                    with torch.no_grad():
                        for k, v in policy.state_dict().items():
                            if v.dtype.is_floating_point:
                                ema[k].mul_(cfg.ema_decay).add_(v, alpha=1 - cfg.ema_decay)
                for k, v in mb_stats.items():
                    stats.setdefault(k, []).append(float(v))
        # 7. KL controller update with the batch's mean KL per response
        kl = (kl_k1(logprobs, ref_logprobs) if cfg.kl.estimator == "k1" else kl_k3(logprobs, ref_logprobs))
        mean_kl = float((kl * mask).sum(1).mean())
        kl_coef_used = kl_ctl.value
        kl_ctl.update(mean_kl, cfg.batch_size)
        step += 1
        bar.update(1)
        lengths = mask.sum(1).float()
        metrics = {f"ppo/{k}": sum(v) / len(v) for k, v in stats.items()}
        metrics.update({
            "ppo/objective/kl": mean_kl,
            "ppo/objective/kl_coef": kl_coef_used,
            "ppo/objective/scores": float(scores.mean()),
            "ppo/objective/rm_scores": float(rm_scores.mean()),
            "ppo/objective/non_score_reward": float(non_score_reward.sum(1).mean()),
            "ppo/objective/rlhf_reward": float((scores + non_score_reward.sum(1)).mean()),
            "ppo/policy/entropy": float(entropy),
            "ppo/val/var_explained": float(
                1 - masked_var(returns - values, mask) / masked_var(returns, mask).clamp(min=1e-8)),
            "ppo/returns/mean": float(masked_mean(returns, mask)),
            "ppo/eos_rate": float(ended.float().mean()),
            "ppo/lengths/mean": float(lengths.mean()),
        })
        log(metrics, step)
        if (sample_log is not None and monitor_prompts and cfg.sample_every
                and (step % cfg.sample_every == 0 or step == cfg.steps)):
            sample_log(monitor_samples(policy, ref_policy, reward_model, tokenizer, monitor_prompts, cfg, step,
                                       reward_tokenizer, reward_max_len), step)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and ctx.is_main:
            save_checkpoint(cfg.checkpoint_dir, {"policy": policy, "value": value_model}, {
                "optimizer": optimizer.state_dict(), "kl_ctl": kl_ctl.state_dict(), "gen": gen.get_state(),
                "rng": rng_state(), "step": step, "prompt_pos": prompt_pos, "ptx_pos": ptx_pos, "ema": ema},
                to_dict(cfg))
    bar.close()
    if ema is not None:
        policy.load_state_dict(ema)
    metrics["ppo/steps"] = float(step)
    metrics["ppo/reward_retokenised"] = float(reward_tokenizer is not None)
    metrics["ppo/objective/kl_coef_final"] = kl_ctl.value
    return metrics
