"""Resumable training: crash after a checkpoint, resume, and land on the same final weights."""

from __future__ import annotations

import copy

import pytest

from instructgpt.reward_model import RewardModel
from instructgpt.train.checkpoint import LAST
from instructgpt.train.ppo import KLConfig, PPOConfig, train_ppo
from instructgpt.train.pretrain import PretrainConfig, pretrain
from instructgpt.train.reward import RewardConfig, train_reward_model
from instructgpt.train.sft import SFTConfig, train_sft
from tests.helpers import same_weights

from .conftest import make_pairs
from .test_train import make_comparisons


class Crash(Exception):
    pass


def crash_at(step: int):
    def log(metrics: dict[str, float], s: int) -> None:
        if s == step:
            raise Crash(f"simulated crash at step {s}")
    return log


def run_resumed(make, train_fn, crash_step: int, tmp_path):
    """Reference run without checkpoints; then a run that crashes at ``crash_step`` and a fresh
    process-like resume from the checkpoint. Returns (reference, resumed) modules."""
    ref = make()
    train_fn(ref, None, lambda m, s: None)
    crashed = make()
    with pytest.raises(Crash):
        train_fn(crashed, tmp_path / "ckpt", crash_at(crash_step))
    assert (tmp_path / "ckpt" / LAST).is_dir()
    resumed = make()  # fresh weights: everything must come from the checkpoint
    train_fn(resumed, tmp_path / "ckpt", lambda m, s: None)
    return ref, resumed


def test_pretrain_resume_same_weights(tiny_model, tokenizer, tmp_path):
    texts = [f"{p}\n{r}" for p, r in make_pairs(60, 5)]
    init = copy.deepcopy(tiny_model)

    def fn(model, ckpt, log):
        cfg = PretrainConfig(epochs=3, lr=3e-3, batch_size=8, block_size=32, warmup=2, log_every=1,
                             show_progress=False, checkpoint_dir=str(ckpt) if ckpt else None,
                             checkpoint_every=2 if ckpt else 0)
        pretrain(model, tokenizer, texts, [], cfg, log)

    ref, resumed = run_resumed(lambda: copy.deepcopy(init), fn, crash_step=5, tmp_path=tmp_path)
    assert same_weights(ref, resumed)


def test_sft_resume_same_weights_with_dropout(tiny_model, tokenizer, tmp_path):
    train, valid = make_pairs(40, 1), make_pairs(8, 2)
    init = copy.deepcopy(tiny_model)

    def fn(model, ckpt, log):
        cfg = SFTConfig(epochs=3, lr=3e-3, batch_size=8, warmup=2, dropout=0.2, max_len=64, log_every=1,
                        show_progress=False, checkpoint_dir=str(ckpt) if ckpt else None,
                        checkpoint_every=4 if ckpt else 0)
        train_sft(model, tokenizer, train, valid, cfg, log)

    ref, resumed = run_resumed(lambda: copy.deepcopy(init), fn, crash_step=10, tmp_path=tmp_path)
    assert same_weights(ref, resumed)


def test_reward_resume_same_weights(model_dir, tokenizer, tmp_path):
    train = make_comparisons(24, 3)

    def fn(rm, ckpt, log):
        cfg = RewardConfig(epochs=2, lr=3e-3, batch_size=4, max_len=64, warmup=1, dropout=0.1, log_every=1,
                           show_progress=False, checkpoint_dir=str(ckpt) if ckpt else None,
                           checkpoint_every=3 if ckpt else 0)
        train_reward_model(rm, tokenizer, train, [], make_pairs(4, 9), cfg, log)

    ref, resumed = run_resumed(lambda: RewardModel.from_causal_lm(model_dir, seed=0), fn, crash_step=8,
                               tmp_path=tmp_path)
    assert same_weights(ref, resumed)


def test_ppo_resume_same_weights(tiny_model, tokenizer, model_dir, tmp_path):
    rm = RewardModel.from_causal_lm(model_dir, seed=1)
    init = copy.deepcopy(tiny_model)
    prompts = [p for p, _ in make_pairs(8, 1)]
    texts = [f"{p}\n{r}" for p, r in make_pairs(20, 2)]
    values = {}

    def fn(policy, ckpt, log):
        cfg = PPOConfig(steps=4, batch_size=4, mini_batch_size=2, ppo_epochs=2, lr=1e-3, max_new_tokens=5,
                        ptx_coef=0.5, ptx_batch_size=2, ptx_block_size=16, ema_decay=0.9,
                        kl=KLConfig(adaptive=True, target=0.5, horizon=50), show_progress=False,
                        checkpoint_dir=str(ckpt) if ckpt else None, checkpoint_every=2 if ckpt else 0)
        value = copy.deepcopy(rm)
        m = train_ppo(policy, copy.deepcopy(init), value, rm, tokenizer, prompts, texts, cfg, log)
        values[ckpt] = (value, m)

    ref, resumed = run_resumed(lambda: copy.deepcopy(init), fn, crash_step=3, tmp_path=tmp_path)
    assert same_weights(ref, resumed)
    assert same_weights(values[None][0], values[tmp_path / "ckpt"][0])
    assert values[None][1]["ppo/objective/kl_coef_final"] == values[tmp_path / "ckpt"][1]["ppo/objective/kl_coef_final"]
