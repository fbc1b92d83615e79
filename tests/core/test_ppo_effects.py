"""Tiny PPO runs that check the recipe's effects, not only that weights move."""

from __future__ import annotations

import copy

import torch

from instructgpt.evaluation import corpus_loss
from instructgpt.models import RewardModel
from instructgpt.train.ppo import KLConfig, PPOConfig, train_ppo

from .conftest import make_pairs


def _run(tiny_model, tokenizer, model_dir, ptx_coef: float, steps: int = 12, lr: float = 3e-3):
    torch.manual_seed(0)
    policy = copy.deepcopy(tiny_model)
    rm = RewardModel.from_causal_lm(model_dir, seed=3)
    logged: list[dict] = []
    cfg = PPOConfig(steps=steps, batch_size=8, mini_batch_size=4, ppo_epochs=2, lr=lr, max_new_tokens=6,
                    ptx_coef=ptx_coef, ptx_batch_size=4, ptx_block_size=16, kl=KLConfig(kl_coef=0.05),
                    show_progress=False, seed=0)
    prompts = [p for p, _ in make_pairs(16, 1)]
    texts = [f"{p}\n{r}" for p, r in make_pairs(40, 2)]
    train_ppo(policy, copy.deepcopy(tiny_model), copy.deepcopy(rm), rm, tokenizer, prompts, texts, cfg,
              lambda d, s: logged.append(d))
    return policy, logged, texts


def test_ppo_raises_reward_with_bounded_kl(tiny_model, tokenizer, model_dir):
    # An untrained policy rarely ends within 6 tokens, so most rollouts get the no-EOS penalty;
    # PPO must learn to raise the score (the RM score plus that penalty) while the KL stays bounded.
    _, logged, _ = _run(tiny_model, tokenizer, model_dir, ptx_coef=0.0, steps=30, lr=1e-2)
    scores = [d["ppo/objective/scores"] for d in logged]
    assert sum(scores[-8:]) / 8 > sum(scores[:8]) / 8 + 0.2
    assert max(d["ppo/objective/kl"] for d in logged) < 20.0  # the KL penalty keeps it near π^SFT


def test_ptx_limits_the_pretraining_loss_regression(tiny_model, tokenizer, model_dir):
    ppo, _, texts = _run(tiny_model, tokenizer, model_dir, ptx_coef=0.0)
    ptx, _, _ = _run(tiny_model, tokenizer, model_dir, ptx_coef=1.0)
    start = corpus_loss(tiny_model, tokenizer, texts)
    assert corpus_loss(ptx, tokenizer, texts) - start < corpus_loss(ppo, tokenizer, texts) - start
