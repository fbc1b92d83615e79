"""Pure loss functions: tensors and masks in, ``(loss, stats)`` out. No model, no I/O.

Notation follows the paper: r_θ(x, y) the reward model, π^RL_φ the policy, π^SFT the reference,
β the KL coefficient (``kl_coef``), γ the pretraining coefficient (``ptx_coef``).
Masks are 0/1 (or bool) tensors with the shape of the value they mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Stats = dict[str, torch.Tensor]


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (over ``dim`` or over everything)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over masked positions (Bessel-corrected when ``unbiased``)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        var = var * n / (n - 1).clamp(min=1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over masked positions; ``shift_mean=False`` scales but keeps the mean."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


def lm_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Stats]:
    """Next-token loss  L = −(1/N) Σ_t m_t · log π(labels_t | labels_<t).

    ``logits`` (B, T, V) and ``labels`` (B, T) are aligned as the model returns them: the logits
    at position t predict ``labels[:, t+1]`` (the shift happens here). ``mask`` (B, T) marks the
    label positions that count; default ``labels != -100``. Used for pretraining, SFT (mask =
    response tokens) and the PPO-ptx term.
    """
    if mask is None:
        mask = labels != -100
    shift_logits = logits[:, :-1].float()  # (B, T-1, V)
    shift_labels = labels[:, 1:].clamp(min=0)  # (B, T-1)
    shift_mask = mask[:, 1:].to(shift_logits.dtype)  # (B, T-1)
    nll = F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), reduction="none")
    nll = nll.view_as(shift_mask)  # (B, T-1)
    n_tokens = shift_mask.sum()
    loss = (nll * shift_mask).sum() / n_tokens.clamp(min=1)
    return loss, {"loss": loss.detach(), "n_tokens": n_tokens.detach()}


def ranking_to_order_positions(ranking: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pos[b, i] = place of response i in ``ranking[b]`` (0 = best). ``ranking`` (B, K) lists
    response indices best first; entries at masked-out places are ignored. (B, K)"""
    B, K = ranking.shape
    places = torch.arange(K, device=ranking.device).expand(B, K)  # (B, K)
    big = torch.full((B, K), K, dtype=torch.long, device=ranking.device)
    valid = mask.bool()
    # scatter place j to response ranking[b, j]; padded slots scatter K into a dummy column
    idx = torch.where(valid, ranking.long(), torch.full_like(ranking.long(), K))
    pos = torch.cat([big, big[:, :1]], dim=1).scatter(1, idx, torch.where(valid, places, big))
    return pos[:, :K]  # (B, K)


def ranking_loss(
    rewards: torch.Tensor, mask: torch.Tensor | None = None, ranking: torch.Tensor | None = None
) -> tuple[torch.Tensor, Stats]:
    """K-way comparison loss (paper eq. 1), all C(K,2) pairs of a prompt in one batch element:

        loss(θ) = −1/C(K,2) · E_x [ Σ_{(y_w, y_l)} log σ( r_θ(x, y_w) − r_θ(x, y_l) ) ]

    ``rewards`` (B, K): r_θ(x, y_k) for the K responses of each prompt (K may vary: padded, and
    ``mask`` (B, K) marks the real responses). Without ``ranking`` the columns are ordered best
    first; with ``ranking`` (B, K) row b lists response indices best first. Each prompt's loss is
    the mean over its own C(K_b, 2) pairs; the batch loss is the mean over prompts.
    """
    B, K = rewards.shape
    if mask is None:
        mask = torch.ones(B, K, dtype=torch.bool, device=rewards.device)
    mask = mask.bool()
    if ranking is None:
        pos = torch.arange(K, device=rewards.device).expand(B, K)  # (B, K)
    else:
        pos = ranking_to_order_positions(ranking, mask)  # (B, K)
    diff = rewards[:, :, None] - rewards[:, None, :]  # (B, K, K): r_i − r_j
    pair_mask = mask[:, :, None] & mask[:, None, :] & (pos[:, :, None] < pos[:, None, :])  # i preferred to j
    pair_mask_f = pair_mask.to(rewards.dtype)
    n_pairs = pair_mask_f.sum((1, 2))  # (B,) = C(K_b, 2)
    per_prompt = -(F.logsigmoid(diff) * pair_mask_f).sum((1, 2)) / n_pairs.clamp(min=1)  # (B,)
    has_pairs = n_pairs > 0
    loss = masked_mean(per_prompt, has_pairs)
    correct = ((diff > 0).to(rewards.dtype) * pair_mask_f).sum()
    stats = {
        "loss": loss.detach(),
        "accuracy": (correct / pair_mask_f.sum().clamp(min=1)).detach(),  # pairwise
        "n_pairs": pair_mask_f.sum().detach(),
        "reward_margin": ((diff * pair_mask_f).sum() / pair_mask_f.sum().clamp(min=1)).detach(),
    }
    return loss, stats


def pairwise_ranking_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    """Reference for one (y_w, y_l) pair per element: mean of −log σ(r_w − r_l). (P,) in."""
    losses = -F.logsigmoid(chosen - rejected)  # (P,)
    loss = losses.mean()
    return loss, {"loss": loss.detach(), "accuracy": (chosen > rejected).float().mean().detach()}


def n_pairs(k: int) -> int:
    """C(K, 2)."""
    return math.comb(k, 2)


def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate k1 = log π(y_t) − log π_ref(y_t) (unbiased, can be negative)."""
    return logprobs - ref_logprobs


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate k3 = (ρ − 1) − log ρ with ρ = π_ref/π (unbiased, never negative)."""
    log_ratio = ref_logprobs - logprobs
    return torch.expm1(log_ratio) - log_ratio


def per_token_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    kl_estimator: str = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards of the bandit episode (paper step 3 objective, without γ):

        r_t = −β · (log π^RL(y_t|x, y_<t) − log π^SFT(y_t|x, y_<t))     for every response token
        r_T += r_θ(x, y)                                                  on the last real token

    ``scores`` (B,), ``logprobs``/``ref_logprobs``/``mask`` (B, T) over response tokens (mask 1
    up to and including the first EOS). Returns ``(rewards, non_score_reward)``, both (B, T),
    zero where masked.
    """
    mask_f = mask.to(logprobs.dtype)
    kl = kl_k1(logprobs, ref_logprobs) if kl_estimator == "k1" else kl_k3(logprobs, ref_logprobs)  # (B, T)
    non_score_reward = -kl_coef * kl * mask_f  # (B, T)
    rewards = non_score_reward.clone()
    T = mask.shape[1]
    last = T - 1 - mask.long().flip(1).argmax(1)  # (B,) last real response token
    rewards[torch.arange(len(scores)), last] += scores.to(rewards.dtype)
    return rewards, non_score_reward


def gae(
    values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over response tokens (B, T):

        δ_t = r_t + γ·V_{t+1} − V_t,   A_t = δ_t + γλ·A_{t+1},   returns_t = A_t + V_t

    with V and A beyond the last real token taken as 0 (the episode ends there).
    Returns ``(advantages, returns)``, zero where masked.
    """
    mask_f = mask.to(values.dtype)
    values = values * mask_f
    B, T = values.shape
    lastgaelam = torch.zeros(B, dtype=values.dtype, device=values.device)
    advantages_reversed = []
    for t in reversed(range(T)):
        next_mask = mask_f[:, t + 1] if t + 1 < T else torch.zeros_like(lastgaelam)  # (B,)
        nextvalues = values[:, t + 1] * next_mask if t + 1 < T else torch.zeros_like(lastgaelam)
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lam * next_mask * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1) * mask_f  # (B, T)
    returns = (advantages + values) * mask_f  # (B, T)
    return advantages, returns


def ppo_policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
    cliprange: float = 0.2,
) -> tuple[torch.Tensor, Stats]:
    """Clipped surrogate  L^CLIP = −E_t[ min(ρ_t A_t, clip(ρ_t, 1−ε, 1+ε) A_t) ],  ρ_t = π/π_old."""
    log_ratio = logprobs - old_logprobs  # (B, T)
    ratio = torch.exp(log_ratio)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(pg_losses, pg_losses2), mask)
    stats = {
        "loss": loss.detach(),
        "clipfrac": masked_mean((pg_losses2 > pg_losses).float(), mask).detach(),
        "approxkl": (0.5 * masked_mean(log_ratio**2, mask)).detach(),
        "ratio": masked_mean(ratio, mask).detach(),
    }
    return loss, stats


def ppo_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
    cliprange_value: float = 0.2,
) -> tuple[torch.Tensor, Stats]:
    """Clipped value loss  ½·E_t[ max((V_t − R_t)², (clip(V_t, V_old ± ε) − R_t)²) ]."""
    vpredclipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    vf_losses1 = (values - returns) ** 2  # (B, T)
    vf_losses2 = (vpredclipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
    stats = {
        "loss": loss.detach(),
        "clipfrac": masked_mean((vf_losses2 > vf_losses1).float(), mask).detach(),
        "vpred": masked_mean(values, mask).detach(),
    }
    return loss, stats


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution at each position. (..., V) -> (...)"""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


class FixedKLController:
    """Constant β."""

    def __init__(self, kl_coef: float) -> None:
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """β ← β·(1 + clip(KL/target − 1, −0.2, 0.2)·n_steps/horizon)  (Ziegler et al., 2019)."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        super().__init__(init_kl_coef)
        self.target, self.horizon = target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
