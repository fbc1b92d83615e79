"""Tiny end-to-end runs of each training loop: something real must move."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from instructgpt.reward_model import RewardModel
from instructgpt.train import TrainingDiverged
from instructgpt.train.pretrain import PretrainConfig, pretrain
from instructgpt.train.ppo import KLConfig, PPOConfig, train_ppo
from instructgpt.train.reward import Comparison, RewardConfig, score_pairs, train_reward_model
from instructgpt.train.sft import SFTConfig, sft_loss, train_sft
from tests.helpers import same_weights

from .conftest import WORDS, make_pairs, tol

# the bf16 tier: every test here also runs inside a bf16 autocast scope (conftest.precision)
pytestmark = pytest.mark.usefixtures("precision")


def make_comparisons(n: int, seed: int) -> list[Comparison]:
    """Toy rankings: the correct repetition is best, then responses with more wrong words."""
    rng = random.Random(seed)
    out = []
    for prompt, good in make_pairs(n, seed):
        k = rng.randint(4, 6)
        words = good.split()
        responses = [good] + [" ".join(words + [rng.choice(WORDS)] * (j + 1)) for j in range(k - 1)]
        order = list(range(k))
        rng.shuffle(order)
        shuffled = [responses[i] for i in order]
        ranking = sorted(range(k), key=lambda i: order[i])  # best (original index 0) first
        out.append(Comparison(prompt, shuffled, ranking))
    return out


def test_pretrain_runs_and_logs(tiny_model, tokenizer):
    logged = []
    texts = [f"{p}\n{r}" for p, r in make_pairs(60, 5)]
    cfg = PretrainConfig(epochs=3, lr=3e-3, batch_size=8, block_size=32, warmup=2, max_steps=6, log_every=2,
                         show_progress=False)
    m = pretrain(tiny_model, tokenizer, texts, texts[:8], cfg, lambda d, s: logged.append((s, d)))
    assert m["steps"] == 6 and "valid/loss" in m
    assert any("train/loss" in d for _, d in logged)


def test_sft_lowers_valid_loss(tiny_model, tokenizer):
    train, valid = make_pairs(64, 1), make_pairs(16, 2)
    cfg = SFTConfig(epochs=3, lr=3e-3, batch_size=16, warmup=2, dropout=0.1, max_len=64, show_progress=False)
    m = train_sft(tiny_model, tokenizer, train, valid, cfg)
    assert m["valid/loss"] < m["valid/loss_before"] - 0.5
    assert tiny_model.config.resid_pdrop == 0.0  # dropout restored for later stages


def test_sft_keeps_the_checkpoint_with_the_lowest_valid_loss(tiny_model, tokenizer):
    # A constant high learning rate on 8 demonstrations: valid loss falls, then rises as the model
    # overfits and destabilises, so the last evaluated checkpoint is not the best one.
    valid = make_pairs(16, 2)
    cfg = SFTConfig(epochs=12, lr=3e-2, batch_size=8, warmup=1, min_lr_ratio=1.0, dropout=0.0, max_len=64,
                    eval_every=2, show_progress=False)
    logged = []
    m = train_sft(tiny_model, tokenizer, make_pairs(8, 1), valid, cfg, lambda d, s: logged.append((s, d)))
    curve = {s: d["valid/loss"] for s, d in logged if "valid/loss" in d and s > 0}
    assert sorted(curve) == [2, 4, 6, 8, 10, 12]
    best_step = min(curve, key=curve.get)
    assert curve[12] > curve[best_step] + 0.5  # the case this test is about: the last is not the best
    assert m["best/step"] == best_step and m["valid/loss"] == curve[best_step]
    # the returned model holds those weights, not only their metrics
    assert sft_loss(tiny_model, tokenizer, valid, 64) == pytest.approx(curve[best_step], rel=1e-5)


def test_reward_model_learns_and_demo_mean_is_zero(model_dir, tokenizer):
    rm = RewardModel.from_causal_lm(model_dir, seed=0)
    train, valid = make_comparisons(48, 3), make_comparisons(12, 4)
    demos = make_pairs(10, 9)
    cfg = RewardConfig(epochs=3, lr=3e-3, batch_size=8, max_len=64, warmup=1, show_progress=False)
    m = train_reward_model(rm, tokenizer, train, valid, demos, cfg)
    assert m["valid/accuracy"] > 0.7
    assert abs(m["demo/mean_reward"]) < 1e-4
    scores = score_pairs(rm, tokenizer, demos, max_len=64)
    assert abs(float(scores.mean())) < 1e-4
    # the bias is minus the demonstrations' mean score of the head alone (bias removed), and it
    # shifts every reward by the same amount
    raw = copy.deepcopy(rm)
    raw.bias.zero_()
    raw_scores = score_pairs(raw, tokenizer, demos, max_len=64)
    assert abs(float(raw_scores.mean())) > 1e-2  # normalising had something to do
    assert m["bias"] == pytest.approx(-float(raw_scores.mean()), abs=1e-5)
    assert torch.allclose(scores, raw_scores + m["bias"], atol=1e-5)


@pytest.mark.parametrize("selection", ["valid_loss", "valid_accuracy"])
def test_reward_model_keeps_the_epoch_selection_picks(model_dir, tokenizer, selection):
    # 6 training prompts whose rankings are half reversed (label noise), a constant high learning
    # rate, 10 epochs: the RM fits the noise, so the last epoch is not the best on clean valid data.
    train = make_comparisons(6, 3)
    train = [c if i % 2 else Comparison(c.prompt, c.responses, c.ranking[::-1]) for i, c in enumerate(train)]
    valid = make_comparisons(16, 4)
    cfg = RewardConfig(epochs=10, lr=1e-2, batch_size=3, max_len=64, warmup=1, min_lr_ratio=1.0, selection=selection,
                       normalize_scale=False, normalize_bias=False, show_progress=False)
    rm = RewardModel.from_causal_lm(model_dir, seed=0)
    logged = []
    m = train_reward_model(rm, tokenizer, train, valid, [], cfg, lambda d, s: logged.append((s, d)))
    curve = {s: (d["valid/loss"], d["valid/accuracy"]) for s, d in logged if "valid/loss" in d and s < m["steps"]}
    curve[m["steps"]] = next(v for s, d in logged if "valid/loss" in d and s == m["steps"]
                             for v in [(d["valid/loss"], d["valid/accuracy"])])
    assert sorted(curve) == [2 * e for e in range(1, 11)]  # validated after every epoch
    key = (lambda s: curve[s][0]) if selection == "valid_loss" else (lambda s: -curve[s][1])
    best_step = min(sorted(curve), key=key)  # the earliest of equals
    assert best_step != 20  # the case this test is about
    assert m["best/step"] == best_step and m["best/epoch"] == best_step / 2
    # the returned RM holds that epoch's weights: its metrics are measured again on them
    assert m["valid/loss"] == pytest.approx(curve[best_step][0], rel=1e-4, abs=1e-5)
    assert m["valid/accuracy"] == pytest.approx(curve[best_step][1])


def test_training_diverged_names_step_and_quantity(tiny_model, tokenizer):
    with torch.no_grad():
        tiny_model.transformer.wte.weight[:] = float("nan")
    cfg = SFTConfig(epochs=1, batch_size=4, max_len=32, show_progress=False)
    with pytest.raises(TrainingDiverged, match=r"step 0: sft/loss is not finite"):
        train_sft(tiny_model, tokenizer, make_pairs(8, 1), [], cfg)


@pytest.mark.parametrize("ptx_coef", [0.0, 1.0])
def test_ppo_step_changes_weights(tiny_model, tokenizer, model_dir, ptx_coef, precision):
    rm = RewardModel.from_causal_lm(model_dir, seed=1)
    value = copy.deepcopy(rm)
    ref = copy.deepcopy(tiny_model)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    v_before = {k: v.clone() for k, v in value.state_dict().items()}
    rm_before = {k: v.clone() for k, v in rm.state_dict().items()}
    logged = []
    cfg = PPOConfig(steps=2, batch_size=4, mini_batch_size=2, ppo_epochs=1, lr=1e-3, max_new_tokens=6,
                    ptx_coef=ptx_coef, ptx_batch_size=2, ptx_block_size=16, kl=KLConfig(adaptive=True, target=1.0,
                                                                                        horizon=100),
                    show_progress=False)
    prompts = [p for p, _ in make_pairs(8, 1)]
    texts = [f"{p}\n{r}" for p, r in make_pairs(20, 2)]
    m = train_ppo(tiny_model, ref, value, rm, tokenizer, prompts, texts, cfg, lambda d, s: logged.append((s, d)))
    assert [s for s, _ in logged] == [1, 2]
    assert not same_weights(before, tiny_model)
    assert not same_weights(v_before, value)
    assert same_weights(rm_before, rm)  # RM frozen
    for key in ("ppo/objective/kl", "ppo/objective/kl_coef", "ppo/objective/scores", "ppo/policy/clipfrac",
                "ppo/policy/approxkl", "ppo/policy/entropy", "ppo/val/vpred", "ppo/val/clipfrac",
                "ppo/val/var_explained", "ppo/eos_rate", "ppo/lengths/mean"):
        assert key in m, key
    assert ("ppo/ptx/loss" in m) == (ptx_coef > 0)
    # first rollout: π == π_ref (bf16: the sampling pass and π_ref's full forward round differently, 3.7e-4)
    assert logged[0][1]["ppo/objective/kl"] == pytest.approx(0.0, abs=tol(precision, 1e-5, 2e-3))
    assert m["ppo/objective/kl_coef_final"] != 0.02  # adaptive controller moved


def test_ppo_diverged_and_config_errors(tiny_model, tokenizer, model_dir):
    from instructgpt.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="multiple of ppo.mini_batch_size"):
        PPOConfig(batch_size=6, mini_batch_size=4)
    cfg = from_dict(PPOConfig, {"steps": 1, "batch_size": 2, "mini_batch_size": 1, "ppo_epochs": 1,
                                "max_new_tokens": 3, "show_progress": False, "kl": {"kl_coef": 0.05}}, "ppo")
    assert cfg.kl.kl_coef == 0.05 and not cfg.kl.adaptive
    rm = RewardModel.from_causal_lm(model_dir)
    with torch.no_grad():
        rm.head.weight.fill_(float("inf"))
    with pytest.raises(TrainingDiverged, match=r"step 0: ppo/\w+ is not finite"):
        train_ppo(tiny_model, None, None, rm, tokenizer, ["hi"], [], cfg)
