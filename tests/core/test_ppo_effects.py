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


def _run(tiny_model, tokenizer, model_dir, kl_coef: float, ptx_coef: float = 0.0):
    torch.manual_seed(0)
    policy = copy.deepcopy(tiny_model)
    logged: list[dict] = []
    cfg = PPOConfig(steps=20, batch_size=8, mini_batch_size=4, ppo_epochs=2, lr=1e-2, max_new_tokens=6,
                    no_eos_penalty=None, ptx_coef=ptx_coef, ptx_batch_size=4, ptx_block_size=16,
                    kl=KLConfig(kl_coef=kl_coef), show_progress=False, seed=0)
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
    before = preferred_share(tiny_model, tokenizer)
    policy, logged = _run(tiny_model, tokenizer, model_dir, kl_coef=0.3)
    # from 0.12 to 0.36 at this seed; 20 steps at lr 1e-2 are noisy (0.25 to 0.49 over seeds 0-5),
    # so the bar (a share more than doubled) sits below the typical run
    assert preferred_share(policy, tokenizer) > before + 0.2
    # A policy that emits only preferred tokens is at least ln(1 / before) ≈ 2.1 nats per token
    # (≈ 13 per 6-token response) from π^SFT: the KL penalty stops well short of that ...
    assert final_kl(logged) < 10.0
    # ... and it is β that holds it back: a tenth of it lets the policy run much further
    _, loose = _run(tiny_model, tokenizer, model_dir, kl_coef=0.03)
    assert final_kl(loose) > 2 * final_kl(logged)


def test_ptx_limits_the_pretraining_loss_regression_on_heldout_documents(tiny_model, tokenizer, model_dir):
    heldout = corpus(40, 1)  # the same kind of documents, never trained on
    assert not set(heldout) & set(PTX_TEXTS)
    start = corpus_loss(tiny_model, tokenizer, heldout)
    ppo, _ = _run(tiny_model, tokenizer, model_dir, kl_coef=0.3)
    ptx, _ = _run(tiny_model, tokenizer, model_dir, kl_coef=0.3, ptx_coef=1.0)
    assert corpus_loss(ppo, tokenizer, heldout) > start  # PPO alone drifts away from the corpus
    assert corpus_loss(ptx, tokenizer, heldout) < corpus_loss(ppo, tokenizer, heldout) - 0.5

