"""Step 6 of a PPO iteration: ``ppo_update``, epochs × minibatches of one backward pass of the
policy + value (+ ptx) loss, and the optimizer it steps (policy and value model in their own
AdamW parameter groups, learning rates and gradient clipping)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from instructgpt.data import epoch_permutation
from instructgpt.losses import lm_loss, ppo_policy_loss, ppo_value_loss
from instructgpt.reward_model import RewardModel
from instructgpt.train.common import DistContext, check_finite
from instructgpt.train.ppo.config import PPOConfig
from instructgpt.train.ppo.rollout import Rollout, token_logprobs, token_values


def nth(n: int, seed: int, g: int) -> int:
    """Item of the g-th draw in an endless sequence of seeded epoch permutations of range(n)."""
    return epoch_permutation(n, seed, g // n)[g % n]


@dataclass
class PtxStream:
    """The pretraining blocks of the ptx term, drawn ``batch_size`` at a time from seeded epoch
    permutations; ``pos`` (draws so far) is what a checkpoint keeps."""

    blocks: torch.Tensor
    """(N, L) token blocks of the pretraining corpus."""
    batch_size: int
    """Blocks per gradient step (the GLOBAL batch under data parallelism)."""
    seed: int
    """Seeds the permutations."""
    pos: int = 0
    """Blocks drawn so far."""

    def next(self) -> list[int]:
        """Indices of the next global batch of blocks."""
        idx = [nth(len(self.blocks), self.seed, self.pos + i) for i in range(self.batch_size)]
        self.pos += self.batch_size
        return idx


def _decay_groups(module: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups of ``module``: weight decay on matrices only (not biases, norms, heads' biases)."""
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay, "lr": lr},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, "lr": lr}]
    return [g for g in groups if g["params"]]


def make_ppo_optimizer(policy: PreTrainedModel, value_model: RewardModel, cfg: PPOConfig) -> torch.optim.AdamW:
    """One AdamW over the policy (``cfg.lr``) and the value model (``cfg.value_lr``), each in its
    own parameter groups; betas (0.9, 0.95), eps 1e-8 and the fused kernel as the other stages
    (``instructgpt.train.common.make_optimizer``, which has one learning rate for all)."""
    groups = (_decay_groups(policy, cfg.lr, cfg.weight_decay)
              + _decay_groups(value_model, cfg.value_lr, cfg.weight_decay))
    params = [p for g in groups for p in g["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=fused or None)


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """The global gradient norm of ``params``, clipped in place to ``max_norm`` (0 = not clipped)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norm = torch.nn.utils.get_total_norm(grads)
    if max_norm:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


class PPOLoss(nn.Module):
    """The losses of one minibatch as ONE forward of a module that holds the policy and the value
    model: the unit ``DistributedDataParallel`` wraps (DDP hooks a module's forward and wants one
    forward per backward; the policy runs twice per minibatch with PPO-ptx)."""

    def __init__(self, policy: PreTrainedModel, value_model: RewardModel, cfg: PPOConfig) -> None:
        super().__init__()
        self.policy = policy
        self.value_model = value_model
        self.cfg = cfg

    def forward(self, roll: Rollout, mb: torch.Tensor, old_values: torch.Tensor, advantages: torch.Tensor,
                returns: torch.Tensor, mb_ptx: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, dict, dict]:
        """(pg_loss, vf_loss, ptx_loss or None, pg_stats, vf_stats) of rows ``mb`` of ``roll``."""
        cfg = self.cfg
        mb_mask = roll.mask[mb]  # (M, T_r)
        mb_logprobs = token_logprobs(self.policy, roll, cfg.temperature, mb)  # (M, T_r)
        vpred = token_values(self.value_model, roll, mb)  # (M, T_r)
        pg_loss, pg_stats = ppo_policy_loss(mb_logprobs, roll.logprobs[mb], advantages[mb], mb_mask, cfg.cliprange)
        vf_loss, vf_stats = ppo_value_loss(vpred, old_values[mb], returns[mb], mb_mask, cfg.cliprange_value)
        ptx_loss = None
        if mb_ptx is not None:  # (P, L) pretraining blocks
            ptx_loss, _ = lm_loss(self.policy(input_ids=mb_ptx).logits, mb_ptx, torch.ones_like(mb_ptx))
        return pg_loss, vf_loss, ptx_loss, pg_stats, vf_stats


def ppo_update(policy: PreTrainedModel, value_model: RewardModel, optimizer: torch.optim.Optimizer,
               roll: Rollout, old_values: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor,
               cfg: PPOConfig, step: int, ctx: DistContext = DistContext(), ptx: PtxStream | None = None,
               ema: dict[str, torch.Tensor] | None = None, forward: nn.Module | None = None) -> dict[str, float]:
    """Step 6: ``cfg.ppo_epochs`` passes over the rollout in seeded minibatches; each minibatch
    is ONE backward pass of policy loss + value loss (+ γ·ptx loss), then the policy's and the
    value model's gradients are clipped separately (neither network's norm throttles the other)
    and AdamW steps both. ``roll.logprobs`` and ``old_values`` are the old policy's and value
    model's; ``ema`` (the policy's state dict, or with LoRA its adapter's part) follows the policy
    when given. Returns the minibatches' mean statistics (``policy/...``, ``val/...``, ``ptx/loss``).

    Data parallel (``ctx``): every rank holds the whole (gathered) rollout and takes its rows of
    each minibatch; losses are weighted by the rank's share and ``forward`` (``PPOLoss`` in DDP,
    ``ctx.wrap``) sums the ranks' gradients, so they equal the single-process ones."""
    if forward is None:
        forward = ctx.wrap(PPOLoss(policy, value_model, cfg))
    policy_params = [p for p in policy.parameters() if p.requires_grad]
    value_params = [p for p in value_model.parameters() if p.requires_grad]
    B = roll.response.shape[0]
    stats: dict[str, list[float]] = {}
    for ppo_epoch in range(cfg.ppo_epochs):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 101 + ppo_epoch)
        perm = torch.randperm(B, generator=g).to(roll.response.device)  # (B,)
        for start in range(0, B, cfg.mini_batch_size):
            b_mb = perm[start: start + cfg.mini_batch_size]  # (M,) the minibatch
            mb = b_mb[ctx.rank:: ctx.world_size]  # this rank's rows (all of them in a single process)
            mb_ptx, ptx_share = None, 1.0
            if ptx is not None:
                idx = ctx.shard(ptx.next())
                mb_ptx = ptx.blocks[idx].to(roll.response.device)  # (P, L)
                ptx_share = len(idx) / ptx.batch_size
            pg_loss, vf_loss, ptx_loss, pg_stats, vf_stats = forward(roll, mb, old_values, advantages, returns,
                                                                     mb_ptx)
            # a shard's share of the minibatch's token means / of its ptx blocks (all equally long)
            share = float(roll.mask[mb].sum()) / float(roll.mask[b_mb].sum()) if ctx.enabled else 1.0
            # no weight on the value loss: the networks share no parameter, so each gradient is its
            # own loss's, and AdamW (own lr, own clipping) would undo any scale
            loss = pg_loss + vf_loss
            loss = loss * share if ctx.enabled else loss
            mb_stats = {"policy/loss": pg_stats["loss"], "policy/clipfrac": pg_stats["clipfrac"],
                        "policy/approxkl": pg_stats["approxkl"], "val/loss": vf_stats["loss"],
                        "val/clipfrac": vf_stats["clipfrac"], "val/vpred": vf_stats["vpred"]}
            shares = dict.fromkeys(mb_stats, share)
            if ptx_loss is not None:
                shares["ptx/loss"] = ptx_share
                loss = loss + cfg.ptx_coef * (ptx_loss * ptx_share if ctx.enabled else ptx_loss)
                mb_stats["ptx/loss"] = ptx_loss.detach()
            loss_sum = loss
            if ctx.enabled:  # the ranks' weighted shares add up to the minibatch's statistics (one all-reduce)
                summed = ctx.all_sum(torch.stack([v.float() * shares[k] for k, v in mb_stats.items()]
                                                 + [loss.detach().float()]))
                mb_stats, loss_sum = dict(zip(mb_stats, summed[:-1])), summed[-1]
            check_finite(loss_sum, step, "ppo/loss (policy + value + ptx)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP: the ranks' gradients summed during the backward
            # every rank clips the same summed gradients
            mb_stats["policy/grad_norm"] = clip_grad_norm(policy_params, cfg.grad_clip)
            mb_stats["val/grad_norm"] = clip_grad_norm(value_params, cfg.grad_clip)
            optimizer.step()
            if ema is not None:
                with torch.no_grad():
                    state = policy.state_dict()
                    for k, e in ema.items():  # every tensor of the policy, or (LoRA) its adapter's
                        if e.dtype.is_floating_point:
                            e.mul_(cfg.ema_decay).add_(state[k], alpha=1 - cfg.ema_decay)
            for k, v in mb_stats.items():
                stats.setdefault(k, []).append(float(v))
    return {k: sum(v) / len(v) for k, v in stats.items()}
