"""The value model's own learning rate and gradient clipping; the PPO step functions: the sampling
pass's log-probabilities in place of a second forward pass, and train_ppo as their composition.

The reward model here reads the k of "repeat the word w k times" (``CountsTimes``): the score
differs from prompt to prompt and a value model that reads the prompt can learn it, so how much
of the returns' variance it explains is a real measure.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from instructgpt.reward_model import RewardModel
from instructgpt.train.ppo import (
    KLConfig,
    PPOConfig,
    advantages,
    make_ppo_optimizer,
    ppo_update,
    response_logits,
    rollout,
    score,
    train_ppo,
)
from instructgpt.train.ppo.rollout import token_logprobs
from tests.helpers import same_weights

from .conftest import tol
from .test_ppo_effects import PROMPTS, PrefersTokens

# the bf16 tier: every test here also runs inside a bf16 autocast scope (conftest.precision)
pytestmark = pytest.mark.usefixtures("precision")


class CountsTimes(nn.Module):
    """r(x, y) = Σ over real tokens of k for every token " k" (k = 1, 2, 3): the prompt's k, plus
    the rare digit a response samples."""

    def __init__(self, tokenizer) -> None:
        super().__init__()
        w = torch.zeros(len(tokenizer))
        for k in (1, 2, 3):
            (i,) = tokenizer.encode(f" {k}")
            w[i] = float(k)
        self.register_buffer("w", w)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        return (self.w[input_ids] * attention_mask).sum(1)  # (B,)


def _state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _moved(before: dict[str, torch.Tensor], m: torch.nn.Module) -> float:
    """Euclidean distance between ``m``'s floating-point weights and ``before``."""
    return float(sum(((v - before[k]) ** 2).sum() for k, v in m.state_dict().items()
                     if v.is_floating_point()) ** 0.5)


def _run(tiny_model, tokenizer, model_dir, steps: int, lr: float, vf_lr: float | None, ptx_coef: float = 0.0,
         grad_clip: float = 1.0):
    policy = copy.deepcopy(tiny_model)
    value = RewardModel.from_causal_lm(model_dir, seed=3)
    logged: list[dict] = []
    cfg = PPOConfig(steps=steps, batch_size=8, mini_batch_size=8, ppo_epochs=2, lr=lr, vf_lr=vf_lr,
                    max_new_tokens=6, no_eos_penalty=None, ptx_coef=ptx_coef, ptx_batch_size=4, ptx_block_size=16,
                    grad_clip=grad_clip, kl=KLConfig(kl_coef=0.1), show_progress=False, seed=0)
    texts = [" ".join(p.split()[::-1]) for p in PROMPTS] * 4
    train_ppo(policy, copy.deepcopy(tiny_model), value, CountsTimes(tokenizer), tokenizer, PROMPTS, texts, cfg,
              lambda d, s: logged.append(d))
    return policy, value, logged


def test_vf_lr_zero_freezes_the_value_model_while_the_policy_moves(tiny_model, tokenizer, model_dir):
    value_init = _state(RewardModel.from_causal_lm(model_dir, seed=3))
    policy_init = _state(tiny_model)
    policy, value, _ = _run(tiny_model, tokenizer, model_dir, steps=2, lr=1e-3, vf_lr=0.0)
    assert same_weights(value_init, value)
    assert _moved(policy_init, policy) > 1e-3


def test_the_policy_update_does_not_depend_on_the_value_learning_rate(tiny_model, tokenizer, model_dir):
    # one PPO step: the rollout, and so the advantages, are the same; only vf_lr differs
    slow, slow_value, _ = _run(tiny_model, tokenizer, model_dir, steps=1, lr=1e-3, vf_lr=1e-5)
    fast, fast_value, _ = _run(tiny_model, tokenizer, model_dir, steps=1, lr=1e-3, vf_lr=1e-1)
    assert same_weights(slow, fast)
    assert not same_weights(slow_value, fast_value)


def test_the_value_update_is_not_throttled_by_the_policy_gradient(tiny_model, tokenizer, model_dir):
    # PPO-ptx with a huge γ multiplies the policy's gradient norm; with one clip over both networks
    # it would shrink the value model's step, with a clip per network it leaves it as it is
    _, plain, _ = _run(tiny_model, tokenizer, model_dir, steps=1, lr=1e-3, vf_lr=1e-3, grad_clip=0.5)
    _, ptx, logged = _run(tiny_model, tokenizer, model_dir, steps=1, lr=1e-3, vf_lr=1e-3, grad_clip=0.5,
                          ptx_coef=100.0)
    assert logged[0]["ppo/policy/grad_norm"] > 10 * 0.5  # the policy's norm is far above the clip ...
    assert same_weights(plain, ptx)


def test_a_larger_value_learning_rate_fits_the_returns_better(tiny_model, tokenizer, model_dir):
    # the policy is frozen (lr 0): the returns' distribution stays put while the value model learns
    init = _state(RewardModel.from_causal_lm(model_dir, seed=3))
    _, slow, slow_log = _run(tiny_model, tokenizer, model_dir, steps=16, lr=0.0, vf_lr=1e-4)
    _, fast, fast_log = _run(tiny_model, tokenizer, model_dir, steps=16, lr=0.0, vf_lr=3e-3)
    assert _moved(init, fast) > 5 * _moved(init, slow)

    def explained(log: list[dict]) -> float:  # measured on each rollout, before that step's update
        return sum(d["ppo/val/var_explained"] for d in log[-3:]) / 3

    # measured: 0.81 against -0.81 (1e-4 has not yet undone the value head's random start)
    assert explained(fast_log) > 0.5 and explained(fast_log) > explained(slow_log) + 0.5


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_rollout_logprobs_and_entropy_equal_a_full_forward(tiny_model, tokenizer, temperature, precision):
    """The sampling pass's log-probabilities and entropies, which replace a second forward pass of
    the policy, match that forward pass to 1e-5 (bf16: 5e-3; measured up to 1.5e-3)."""
    cfg = PPOConfig(batch_size=8, mini_batch_size=8, max_new_tokens=8, temperature=temperature)
    roll = rollout(tiny_model, tokenizer, PROMPTS[:8], cfg, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = response_logits(tiny_model, roll.input_ids, roll.attention_mask, roll.position_ids,
                                 roll.query_len, temperature)  # (B, T_r, V)
        logprobs = token_logprobs(tiny_model, roll, temperature)  # (B, T_r)
    logp = torch.log_softmax(logits, -1)
    entropy = -(logp.exp() * logp).sum(-1)  # (B, T_r)
    assert (logprobs - roll.logprobs)[roll.mask].abs().max() < tol(precision, 1e-5, 5e-3)
    assert (entropy - roll.entropy)[roll.mask].abs().max() < tol(precision, 1e-5, 5e-3)


def test_the_step_functions_compose_to_train_ppo(tiny_model, tokenizer, model_dir):
    """rollout → score → advantages → ppo_update, called by hand, land on train_ppo's weights."""
    cfg = PPOConfig(steps=1, batch_size=8, mini_batch_size=4, ppo_epochs=2, lr=1e-3, max_new_tokens=6,
                    no_eos_penalty=None, kl=KLConfig(kl_coef=0.1), show_progress=False, seed=0)
    by_hand, value = copy.deepcopy(tiny_model), RewardModel.from_causal_lm(model_dir, seed=3)
    ref, rm = copy.deepcopy(tiny_model), PrefersTokens()
    from instructgpt.train.ppo.update import nth

    torch.manual_seed(cfg.seed)
    prompts = [PROMPTS[nth(len(PROMPTS), cfg.seed, i)] for i in range(cfg.batch_size)]
    roll = rollout(by_hand, tokenizer, prompts, cfg, torch.Generator().manual_seed(cfg.seed))
    scored = score(roll, ref, value, rm, tokenizer, cfg, cfg.kl.kl_coef)
    adv, returns = advantages(scored.values, scored.rewards, roll.mask, cfg)
    ppo_update(by_hand, value, make_ppo_optimizer(by_hand, value, cfg), roll, scored.values, adv, returns, cfg,
               step=0)
    trained = copy.deepcopy(tiny_model)
    train_ppo(trained, copy.deepcopy(tiny_model), RewardModel.from_causal_lm(model_dir, seed=3), rm, tokenizer,
              PROMPTS, [], cfg)
    assert same_weights(by_hand, trained)


def test_a_value_model_copied_from_the_rm_learns_at_its_own_rate_not_the_rms_gain(tiny_model, tokenizer, model_dir,
                                                                                  precision):
    """The RM's normalising gain is a frozen buffer; a value model that kept it would see every
    head gradient scaled by it. build_models folds it into the head: same values, gain 1."""
    from instructgpt.train.ppo.models import build_models

    rm = RewardModel.from_causal_lm(model_dir, seed=3)
    with torch.no_grad():
        rm.gain.fill_(0.36)
        rm.bias.fill_(0.5)
    kept = copy.deepcopy(rm)  # what a value model was before: the RM as it is
    models = build_models(tiny_model, None, None, rm, None, PPOConfig(), torch.device("cpu"))
    value = models.value_model
    assert float(value.gain) == 1.0 and float(rm.gain) == pytest.approx(0.36)  # the RM keeps its own
    batch = tokenizer(["the cat sat on the mat", "the dog ran"], return_tensors="pt", padding=True)
    kept.requires_grad_(True)
    out_kept = kept.per_token(batch["input_ids"], batch["attention_mask"])
    out_value = value.per_token(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(out_value, out_kept, atol=tol(precision, 1e-5, 1e-5))  # the same values (head in fp32)
    out_kept.sum().backward()
    out_value.sum().backward()
    ratio = value.head.weight.grad / kept.head.weight.grad
    assert torch.allclose(ratio, torch.full_like(ratio, 1 / 0.36), rtol=tol(precision, 1e-4, 2e-2))
