"""Loss functions, GAE, KL penalty and controllers against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from instructgpt.losses import (
    AdaptiveKLController,
    FixedKLController,
    gae,
    kl_k1,
    kl_k3,
    lm_loss,
    masked_mean,
    masked_var,
    masked_whiten,
    pairwise_ranking_loss,
    per_token_rewards,
    ppo_policy_loss,
    ppo_value_loss,
    ranking_loss,
)
from instructgpt.train.ppo import response_mask


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_ranking_loss_k4_by_hand():
    rewards = torch.tensor([[3.0, 2.0, 1.0, 0.0]])  # best first
    loss, stats = ranking_loss(rewards)
    # 6 pairs, margins 1,2,3,1,2,1: loss = (3·softplus(−1) + 2·softplus(−2) + softplus(−3)) / C(4,2)
    expected = (3 * softplus(-1) + 2 * softplus(-2) + softplus(-3)) / 6
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.207038, abs=1e-6)
    assert stats["accuracy"].item() == 1.0 and stats["n_pairs"].item() == 6
    # the same rewards stored in another order with an explicit ranking
    shuffled = torch.tensor([[0.0, 2.0, 3.0, 1.0]])
    loss2, _ = ranking_loss(shuffled, ranking=torch.tensor([[2, 1, 3, 0]]))
    assert loss2.item() == pytest.approx(expected, abs=1e-6)


def test_kway_equals_pairwise_values_and_gradients():
    torch.manual_seed(0)
    ks = [4, 9, 6]
    base = torch.randn(3, 9)
    rankings = [torch.randperm(k).tolist() for k in ks]
    mask = torch.zeros(3, 9, dtype=torch.bool)
    ranking = torch.zeros(3, 9, dtype=torch.long)
    for b, k in enumerate(ks):
        mask[b, :k] = True
        ranking[b, :k] = torch.tensor(rankings[b])
    r1 = base.clone().requires_grad_(True)
    loss, stats = ranking_loss(r1, mask, ranking)
    loss.backward()
    # reference: every pair separately, per-prompt mean over its C(K,2) pairs, mean over prompts
    r2 = base.clone().requires_grad_(True)
    per_prompt = []
    for b, k in enumerate(ks):
        order = rankings[b]
        chosen = torch.stack([r2[b, order[i]] for i in range(k) for j in range(i + 1, k)])
        rejected = torch.stack([r2[b, order[j]] for i in range(k) for j in range(i + 1, k)])
        assert len(chosen) == math.comb(k, 2)
        per_prompt.append(pairwise_ranking_loss(chosen, rejected)[0])
    ref = torch.stack(per_prompt).mean()
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), abs=1e-6)
    assert torch.allclose(r1.grad, r2.grad, atol=1e-7)
    assert r1.grad[~mask].abs().sum() == 0  # padded slots get no gradient
    assert stats["n_pairs"].item() == sum(math.comb(k, 2) for k in ks)


def test_gae_matches_python_loop():
    torch.manual_seed(1)
    B, T, gamma, lam = 3, 6, 0.9, 0.95
    values, rewards = torch.randn(B, T), torch.randn(B, T)
    lengths = [6, 3, 1]
    mask = torch.tensor([[1 if t < n else 0 for t in range(T)] for n in lengths])
    advantages, returns = gae(values, rewards, mask, gamma, lam)
    for b, n in enumerate(lengths):
        adv = [0.0] * n
        last = 0.0
        for t in reversed(range(n)):
            next_v = values[b, t + 1].item() if t + 1 < n else 0.0
            delta = rewards[b, t].item() + gamma * next_v - values[b, t].item()
            last = delta + gamma * lam * last
            adv[t] = last
        assert advantages[b, :n].tolist() == pytest.approx(adv, abs=1e-5)
        assert returns[b, :n].tolist() == pytest.approx([a + values[b, t].item() for t, a in enumerate(adv)], abs=1e-5)
        assert advantages[b, n:].abs().sum() == 0 and returns[b, n:].abs().sum() == 0


def test_kl_penalty_placement_and_eos_masking():
    eos, pad = 2, 0
    response = torch.tensor([[5, 6, eos, 7], [5, 6, 7, 8]])  # row 0 ends at its first EOS, row 1 never does
    mask, ended = response_mask(response, eos)
    assert mask.tolist() == [[True, True, True, False], [True, True, True, True]]
    assert ended.tolist() == [True, False]
    logprobs = torch.tensor([[-1.0, -2.0, -0.5, -9.0], [-1.0, -1.0, -1.0, -1.0]])
    ref_logprobs = torch.tensor([[-1.5, -1.0, -0.5, -1.0], [-2.0, -1.0, -3.0, -1.0]])
    scores = torch.tensor([2.0, -1.0])
    rewards, non_score_reward = per_token_rewards(scores, logprobs, ref_logprobs, mask, kl_coef=0.1)
    # r_t = −β (logπ − logπ_ref); the score only on the last real token; nothing after EOS
    assert non_score_reward.tolist()[0] == pytest.approx([-0.05, 0.1, 0.0, 0.0])
    assert rewards.tolist()[0] == pytest.approx([-0.05, 0.1, 2.0, 0.0])
    assert rewards.tolist()[1] == pytest.approx([-0.1, 0.0, -0.2, -1.0])
    assert kl_k1(logprobs, ref_logprobs)[0, 0].item() == pytest.approx(0.5)
    assert kl_k3(torch.tensor([-1.0]), torch.tensor([-1.0])).item() == 0.0
    assert bool((kl_k3(logprobs, ref_logprobs) >= 0).all())


def test_adaptive_kl_controller():
    ctl = AdaptiveKLController(0.02, target=6.0, horizon=10000)
    ctl.update(current_kl=12.0, n_steps=64)  # error 1.0 clipped to 0.2
    assert ctl.value == pytest.approx(0.02 * (1 + 0.2 * 64 / 10000))
    v = ctl.value
    ctl.update(current_kl=6.6, n_steps=100)  # error 0.1, inside the clip
    assert ctl.value == pytest.approx(v * (1 + 0.1 * 100 / 10000))
    v = ctl.value
    ctl.update(current_kl=0.0, n_steps=1000)  # error −1 clipped to −0.2
    assert ctl.value == pytest.approx(v * (1 - 0.2 * 1000 / 10000))
    fixed = FixedKLController(0.02)
    fixed.update(100.0, 64)
    assert fixed.value == 0.02


def test_masked_helpers_and_whitening():
    x = torch.tensor([1.0, 2.0, 3.0, 100.0])
    mask = torch.tensor([1, 1, 1, 0])
    assert masked_mean(x, mask).item() == pytest.approx(2.0)
    assert masked_var(x, mask).item() == pytest.approx(1.0)  # unbiased: (1+0+1)/2
    assert masked_var(x, mask, unbiased=False).item() == pytest.approx(2 / 3)
    assert masked_whiten(x, mask).tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)
    # shift_mean=False scales to unit variance but keeps the mean (reward whitening)
    y = torch.tensor([2.0, 4.0, 6.0, -50.0])
    assert masked_whiten(y, mask, shift_mean=False).tolist() == pytest.approx([3.0, 4.0, 5.0, 0.0], abs=1e-6)


def test_ppo_policy_loss_clipping_by_hand():
    old = torch.zeros(1, 3)
    logprobs = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))  # ratios 1.5, 0.5, 1.1
    adv = torch.tensor([[1.0, 1.0, -1.0]])
    mask = torch.tensor([[1, 1, 1]])
    loss, stats = ppo_policy_loss(logprobs, old, adv, mask, cliprange=0.2)
    # max(−A ρ, −A clip(ρ)): [max(−1.5, −1.2), max(−0.5, −0.8), max(1.1, 1.1)] = [−1.2, −0.5, 1.1]
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.1) / 3, abs=1e-6)
    assert stats["clipfrac"].item() == pytest.approx(1 / 3)


def test_ppo_value_loss_takes_max():
    old = torch.tensor([[0.0, 0.0]])
    values = torch.tensor([[1.0, -0.1]])
    returns = torch.tensor([[2.0, -1.0]])
    loss, stats = ppo_value_loss(values, old, returns, torch.tensor([[1, 1]]), cliprange_value=0.2)
    # token 0: unclipped (1−2)²=1, clipped (0.2−2)²=3.24 -> 3.24; token 1: 0.81 vs 0.81
    assert loss.item() == pytest.approx(0.5 * (3.24 + 0.81) / 2, abs=1e-6)
    assert stats["clipfrac"].item() == pytest.approx(0.5)


def test_lm_loss_masks_and_shifts():
    V = 5
    logits = torch.zeros(1, 3, V)
    logits[0, 0, 3] = 10.0  # position 0 predicts token 3 well
    labels = torch.tensor([[1, 3, 4]])
    loss_all, stats = lm_loss(logits, labels, torch.tensor([[1, 1, 1]]))
    loss_first, _ = lm_loss(logits, labels, torch.tensor([[0, 1, 0]]))
    assert stats["n_tokens"].item() == 2
    assert loss_first.item() == pytest.approx(-torch.log_softmax(logits[0, 0], -1)[3].item(), abs=1e-6)
    assert loss_all.item() == pytest.approx((loss_first.item() + math.log(V)) / 2, abs=1e-6)
    loss_ignore, _ = lm_loss(logits, torch.tensor([[-100, 3, -100]]))
    assert loss_ignore.item() == pytest.approx(loss_first.item())
