"""``train_ppo``: the PPO loop around the step functions (``rollout``, ``score``, ``advantages``,
``ppo_update``), with the KL controller, checkpoint/resume, metrics and the monitor."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.config import ConfigError, to_dict
from instructgpt.data import make_blocks
from instructgpt.device import weights_changed
from instructgpt.losses import AdaptiveKLController, FixedKLController, masked_mean, masked_var
from instructgpt.models import same_tokenizer
from instructgpt.progress import progress
from instructgpt.reward_model import RewardModel
from instructgpt.scoring import context_length
from instructgpt.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from instructgpt.train.common import LogFn, check_finite, device_of, distributed, no_log
from instructgpt.train.ppo.config import PPOConfig
from instructgpt.train.ppo.models import build_models, finish_models
from instructgpt.train.ppo.rollout import (
    Rollout,
    Scores,
    advantages,
    gather_rollout,
    monitor_samples,
    response_kl,
    rollout,
    score,
)
from instructgpt.train.ppo.update import PPOLoss, PtxStream, make_ppo_optimizer, nth, ppo_update

SampleLog = Callable[[list[dict[str, Any]], int], None]


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

    With ``cfg.lora`` the policy trains a LoRA adapter, merged into its weights on return;
    ``ref_policy`` then defaults to the policy itself with the adapter disabled and ``value_model``
    to the RM's own backbone with an adapter of its own (``instructgpt.train.ppo.models``).

    Before the first step (step 0: π^SFT itself, where the over-optimisation curve starts), every
    ``cfg.sample_every`` steps and at the last, the policy answers ``monitor_prompts`` (held-out
    prompts, never trained on) and ``sample_log(samples, step)`` receives them
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
    # Data parallel under torchrun: each rank samples and scores its shard of the batch's prompts
    # (rows rank, rank + W, ...), with per-row noise drawn for the GLOBAL batch so that a row's
    # response does not depend on the split; the shards are gathered (a few (B, T) tensors) so
    # that whitening, the KL controller and the metrics see the global batch, and each rank takes
    # its rows of every minibatch for the update; DDP sums the gradients.
    ctx = distributed()
    if ctx.enabled and ctx.parallel == "fsdp":
        raise ConfigError("compute.parallel=fsdp is not supported yet for PPO: use compute.parallel: ddp "
                          "(e.g. compute.stages.ppo: {parallel: ddp}) or LoRA (ppo.lora)")
    if ctx.world_size > min(cfg.mini_batch_size, cfg.ptx_batch_size if cfg.ptx_coef > 0 else cfg.mini_batch_size):
        raise ConfigError(f"ppo.mini_batch_size (and ppo.ptx_batch_size with PPO-ptx) must be >= the "
                          f"{ctx.world_size} processes: each needs rows of every minibatch")
    if not ctx.is_main:
        log, sample_log = no_log, None
    # π^SFT, V, dropout off, frozen ones frozen; with ppo.lora the adapters (instructgpt.train.ppo.models)
    models = build_models(policy, ref_policy, value_model, reward_model, reward_tokenizer, cfg, device)
    ref_policy, value_model = models.ref_policy, models.value_model
    reward_max_len = context_length(reward_model) if reward_tokenizer is not None else None
    ptx = None
    if cfg.ptx_coef > 0:
        if not pretrain_texts:
            raise ConfigError("ppo.ptx_coef > 0 (PPO-ptx) needs pretraining texts")
        ptx = PtxStream(make_blocks(tokenizer, pretrain_texts, cfg.ptx_block_size), cfg.ptx_batch_size,
                        cfg.seed + 1)  # blocks (N, L)
    optimizer = make_ppo_optimizer(policy, value_model, cfg)
    forward = ctx.wrap(PPOLoss(policy, value_model, cfg))  # the minibatch losses; in DDP when distributed
    row_keyed = cfg.row_keyed_sampling or ctx.enabled
    kl_ctl = (AdaptiveKLController(cfg.kl.kl_coef, cfg.kl.target, cfg.kl.horizon) if cfg.kl.adaptive
              else FixedKLController(cfg.kl.kl_coef))
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    ema = None
    if cfg.ema_decay > 0:  # LoRA: only the adapter moves, so only its tensors are averaged (no full copy)
        lora = models.policy_adapter is not None
        trainable = {k for k, p in policy.named_parameters() if p.requires_grad}
        ema = {k: v.detach().clone() for k, v in policy.state_dict().items() if not lora or k in trainable}
    step, prompt_pos = 0, 0
    state = load_checkpoint(cfg.checkpoint_dir, {"policy": policy, "value": value_model})
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        kl_ctl.load_state_dict(state["kl_ctl"])
        gen.set_state(state["gen"])
        set_rng_state(state["rng"])
        step, prompt_pos = int(state["step"]), int(state["prompt_pos"])
        if ptx is not None:
            ptx.pos = int(state["ptx_pos"])
        ema = state["ema"]
    metrics: dict[str, float] = {}
    monitoring = sample_log is not None and bool(monitor_prompts) and bool(cfg.sample_every)

    def sample_monitor() -> None:
        sample_log(monitor_samples(policy, ref_policy, reward_model, tokenizer, monitor_prompts, cfg, step,
                                   reward_tokenizer, reward_max_len), step)

    if monitoring and step == 0:  # a resumed run has its step-0 rows in the monitor's journal
        sample_monitor()
    bar = progress(total=cfg.steps, initial=step, desc="ppo", unit="step",
                   disable=not (cfg.show_progress and ctx.is_main))
    while step < cfg.steps:
        # 1. rollout: sample responses with the KV cache at the PPO temperature, EOS truncation
        b_prompts = [prompts[nth(len(prompts), cfg.seed, prompt_pos + i)] for i in range(cfg.batch_size)]
        prompt_pos += cfg.batch_size
        uniforms = None
        if row_keyed:  # noise of the global batch's rows, every rank draws all: gen stays in step
            uniforms = torch.rand(cfg.batch_size, cfg.max_new_tokens, generator=gen, device=device)  # (B, T_max)
            uniforms = uniforms[ctx.rank:: ctx.world_size]  # (B_local, T_max) this rank's rows, as ctx.shard
        roll = rollout(policy, tokenizer, ctx.shard(b_prompts), cfg, gen, uniforms)
        # 2.–4. ref_logprobs, values, RM scores (fixed penalty without EOS), per-token rewards
        kl_coef_used = kl_ctl.value
        scored = score(roll, ref_policy, value_model, reward_model, tokenizer, cfg, kl_coef_used,
                       reward_tokenizer, reward_max_len)
        roll, scored = gather_rollout(ctx, roll, scored, b_prompts, tokenizer.pad_token_id)  # the global batch
        # 5. GAE, advantages whitened over the batch
        b_advantages, b_returns = advantages(scored.values, scored.rewards, roll.mask, cfg)  # (B, T_r)
        for name, t in (("scores", scored.scores), ("logprobs", roll.logprobs),
                        ("ref_logprobs", scored.ref_logprobs), ("values", scored.values),
                        ("advantages", b_advantages)):
            check_finite(t, step, f"ppo/{name}")
        # 6. PPO epochs over minibatches (one backward of policy + value + γ·ptx loss)
        stats = ppo_update(policy, value_model, optimizer, roll, scored.values, b_advantages, b_returns, cfg,
                           step, ctx, ptx, ema, forward)
        # 7. KL controller update with the batch's mean KL per response
        mean_kl = float(response_kl(roll.logprobs, scored.ref_logprobs, roll.mask, cfg.kl.estimator).mean())
        kl_ctl.update(mean_kl, cfg.batch_size)
        step += 1
        bar.update(1)
        metrics = {f"ppo/{k}": v for k, v in stats.items()}
        metrics.update(rollout_metrics(roll, scored, b_returns, mean_kl, kl_coef_used))
        log(metrics, step)
        if monitoring and (step % cfg.sample_every == 0 or step == cfg.steps):
            sample_monitor()
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and ctx.is_main:
            save_checkpoint(cfg.checkpoint_dir, {"policy": policy, "value": value_model}, {
                "optimizer": optimizer.state_dict(), "kl_ctl": kl_ctl.state_dict(), "gen": gen.get_state(),
                "rng": rng_state(), "step": step, "prompt_pos": prompt_pos,
                "ptx_pos": ptx.pos if ptx is not None else 0, "ema": ema}, to_dict(cfg))
    bar.close()
    if ema is not None:
        policy.load_state_dict(ema, strict=models.policy_adapter is None)
        weights_changed()
    finish_models(models)  # LoRA: the policy's adapter merged into its weights
    metrics["ppo/steps"] = float(step)
    metrics["ppo/reward_retokenised"] = float(reward_tokenizer is not None)
    metrics["ppo/objective/kl_coef_final"] = kl_ctl.value
    return metrics


def rollout_metrics(roll: Rollout, scored: Scores, returns: torch.Tensor, mean_kl: float,
                    kl_coef: float) -> dict[str, float]:
    """The iteration's objective and rollout statistics (``ppo/objective/...``, entropy, value
    fit before the update, EOS rate, lengths)."""
    mask = roll.mask
    return {
        "ppo/objective/kl": mean_kl,
        "ppo/objective/kl_coef": kl_coef,
        "ppo/objective/scores": float(scored.scores.mean()),
        "ppo/objective/rm_scores": float(scored.rm_scores.mean()),
        "ppo/objective/non_score_reward": float(scored.non_score_reward.sum(1).mean()),
        "ppo/objective/rlhf_reward": float((scored.scores + scored.non_score_reward.sum(1)).mean()),
        "ppo/policy/entropy": float(masked_mean(roll.entropy, mask)),
        "ppo/val/var_explained": float(
            1 - masked_var(returns - scored.values, mask) / masked_var(returns, mask).clamp(min=1e-8)),
        "ppo/returns/mean": float(masked_mean(returns, mask)),
        "ppo/eos_rate": float(roll.ended.float().mean()),
        "ppo/lengths/mean": float(mask.sum(1).float().mean()),
    }
