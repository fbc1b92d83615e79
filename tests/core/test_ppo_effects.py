"""Tiny PPO runs that check the recipe's effects, not only that weights move.

The reward model here has a KNOWN preference, so the direction PPO must move in is known: it
counts the tokens whose id ends in 7 (about a tenth of the vocabulary). Responses that miss EOS
keep their score (``no_eos_penalty=None``), so learning to stop early earns nothing: it only
leaves fewer tokens to be rewarded.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch
from torch import nn

from instructgpt.evaluation import corpus_loss
from instructgpt.generation import sample
from instructgpt.reward_model import RewardModel
from instructgpt.train.ppo import KLConfig, PPOConfig, train_ppo

from .conftest import WORDS, make_pairs

# the bf16 tier: every test here also runs inside a bf16 autocast scope (conftest.precision)
pytestmark = pytest.mark.usefixtures("precision")

PROMPTS = [p for p, _ in make_pairs(16, 1)]


def preferred(ids: torch.Tensor) -> torch.Tensor:
    return ids % 10 == 7


class PrefersTokens(nn.Module):
    """r(x, y) = number of preferred tokens in prompt + response (the prompt's add a constant per prompt)."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        return (preferred(input_ids) & attention_mask.bool()).sum(1).float()  # (B,)


def corpus(n: int, seed: int) -> list[str]:
    """Pretraining documents: sentences of random words."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 10))) + " ." for _ in range(n)]


PTX_TEXTS = corpus(60, 0)


def _run(tiny_model, tokenizer, model_dir, kl_coef: float, ptx_coef: float = 0.0, seed: int = 0):
    torch.manual_seed(seed)
    policy = copy.deepcopy(tiny_model)
    logged: list[dict] = []
    cfg = PPOConfig(steps=20, batch_size=8, mini_batch_size=4, ppo_epochs=2, lr=1e-2, max_new_tokens=6,
                    no_eos_penalty=None, ptx_coef=ptx_coef, ptx_batch_size=4, ptx_block_size=16,
                    kl=KLConfig(kl_coef=kl_coef), show_progress=False, seed=seed)
    train_ppo(policy, copy.deepcopy(tiny_model), RewardModel.from_causal_lm(model_dir, seed=3), PrefersTokens(),
              tokenizer, PROMPTS, PTX_TEXTS, cfg, lambda d, s: logged.append(d))
    return policy, logged


def preferred_share(model, tokenizer) -> float:
    """Share of preferred tokens among the sampled response tokens, EOS included."""
    out = sample(model, tokenizer, PROMPTS * 4, max_new_tokens=6, temperature=1.0, batch_size=64, seed=123)
    ids = torch.tensor([i for s in out for i in s.response_ids])
    return float(preferred(ids).float().mean())


def final_kl(logged: list[dict]) -> float:
    return sum(d["ppo/objective/kl"] for d in logged[-5:]) / 5


def test_ppo_moves_toward_the_rm_preference_with_kl_bounded_by_beta(tiny_model, tokenizer, model_dir):
    """Over seeds, not one: 20 steps at lr 1e-2 are noisy, and a run's path depends on the CPU's
    float rounding (bf16 most: on a Xeon with AMX seed 0 reaches 0.23, seed 2 0.56). Measured on
    seeds 0-11 (Xeon, AMX): the share goes from 0.12 to 0.37 (bf16, sd 0.11 per run) or 0.41 (fp32,
    sd 0.08); the mean of 8 runs has an sd under 0.05, so "more than doubled" (0.23) sits 3 sd
    below it. The mean KL at the end is 2.9 (bf16) to 3.2 nats (fp32) at β 0.3 and 17 at β 0.03."""
    before = preferred_share(tiny_model, tokenizer)
    runs = [_run(tiny_model, tokenizer, model_dir, kl_coef=0.3, seed=seed) for seed in range(8)]
    after = sum(preferred_share(policy, tokenizer) for policy, _ in runs) / len(runs)
    assert after > 2 * before, f"the preferred share went from {before:.3f} to {after:.3f} (mean of 8 seeds)"
    # A policy that emits only preferred tokens is at least ln(1 / before) ≈ 2.1 nats per token
    # (≈ 13 per 6-token response) from π^SFT: the KL penalty stops well short of that ...
    tight = sum(final_kl(logged) for _, logged in runs) / len(runs)
    assert tight < 10.0
    # ... and it is β that holds it back: a tenth of it lets the policy run much further
    loose = sum(final_kl(_run(tiny_model, tokenizer, model_dir, kl_coef=0.03, seed=seed)[1]) for seed in range(4)) / 4
    assert loose > 2 * tight


def test_ptx_limits_the_pretraining_loss_regression_on_heldout_documents(tiny_model, tokenizer, model_dir):
    heldout = corpus(40, 1)  # the same kind of documents, never trained on
    assert not set(heldout) & set(PTX_TEXTS)
    start = corpus_loss(tiny_model, tokenizer, heldout)
    ppo, _ = _run(tiny_model, tokenizer, model_dir, kl_coef=0.3)
    ptx, _ = _run(tiny_model, tokenizer, model_dir, kl_coef=0.3, ptx_coef=1.0)
    assert corpus_loss(ppo, tokenizer, heldout) > start  # PPO alone drifts away from the corpus
    assert corpus_loss(ptx, tokenizer, heldout) < corpus_loss(ppo, tokenizer, heldout) - 0.5

