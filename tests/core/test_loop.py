"""The shared training loop on a toy stage: when it logs, evaluates and what it returns."""

from __future__ import annotations

import pytest
import torch

from instructgpt.config import ConfigError
from instructgpt.train.config import TrainConfig
from instructgpt.train.loop import Stage, train_loop
from instructgpt.train.pretrain import PretrainConfig
from instructgpt.train.reward import RewardConfig
from instructgpt.train.sft import SFTConfig

# the bf16 tier: every test here also runs inside a bf16 autocast scope (conftest.precision)
pytestmark = pytest.mark.usefixtures("precision")


class Toy(Stage):
    """Fit w to the items' values: loss = mean (w − x)²; stat "close" = share of |w − x| < 1."""

    name = "toy"
    stats = ("close",)
    eval_before = True

    def __init__(self, values: list[float], seed: int = 0, eval_at_end: bool = False) -> None:
        super().__init__(torch.nn.Linear(1, 1, bias=False), len(values), seed)
        with torch.no_grad():
            self.model.weight.zero_()
        self.values = torch.tensor(values)
        self.eval_at_end = eval_at_end
        self.evals: list[int] = []
        self.batches: list[list[int]] = []

    def loss(self, idx):
        self.batches.append(list(idx))
        err = self.model.weight[0, 0] - self.values[idx]  # (B,)
        close = float((err.abs() < 1).float().mean())
        return (err ** 2).mean(), float(len(idx)), {"close": (close, float(len(idx)))}

    def evaluate(self, step):
        self.evals.append(step)
        return {"valid/w": float(self.model.weight.detach())}


def run(cfg: TrainConfig, stage: Toy):
    logged = []
    result = train_loop(cfg, stage, lambda m, s: logged.append((s, m)))
    return result, logged


def test_logs_evaluates_and_returns_emas():
    stage = Toy([4.0, 4.0, 4.0, 4.0, 4.0], eval_at_end=True)  # 5 items, batch 2: 3 steps an epoch
    cfg = TrainConfig(epochs=2, lr=0.5, batch_size=2, warmup=0, log_every=4, eval_every=2, grad_clip=0,
                      show_progress=False)
    result, logged = run(cfg, stage)
    assert result.step == 6
    assert sorted(len(b) for b in stage.batches[:3]) == [1, 2, 2]  # every item once per epoch
    assert sorted(i for b in stage.batches[:3] for i in b) == [0, 1, 2, 3, 4]
    train = [(s, m) for s, m in logged if "train/loss" in m]
    assert [s for s, _ in train] == [4, 6]  # every log_every steps and the last
    assert stage.evals == [0, 2, 4, 6]  # before, every eval_every, (the last is one of them)
    assert result.before == {"valid/w": 0.0}
    # the EMAs: 0.9 on the past; the first step starts them
    losses = [m["train/loss"] for _, m in train]
    assert train[-1][1]["train/loss_ema"] == pytest.approx(result.ema["loss"])
    assert result.train_metrics()["train/loss"] == result.ema["loss"] and result.train_metrics()["steps"] == 6.0
    assert losses[0] > losses[1]  # w moved towards 4
    assert 0.0 <= result.ema["close"] <= 1.0 and "train/close" in train[0][1]
    assert not stage.model.training  # eval mode on return


def test_ema_by_hand():
    stage = Toy([2.0, 0.0])  # one item a step: losses (w − x)² with w moving
    cfg = TrainConfig(epochs=1, lr=0.1, batch_size=1, warmup=0, log_every=1, grad_clip=0, show_progress=False)
    result, logged = run(cfg, stage)
    l1, l2 = [m["train/loss"] for s, m in logged if "train/loss" in m]
    c1, c2 = [m["train/close"] for s, m in logged if "train/loss" in m]
    assert result.ema["loss"] == pytest.approx(0.9 * l1 + 0.1 * l2)
    assert result.ema["close"] == pytest.approx(0.9 * c1 + 0.1 * c2)


def test_eval_at_end_and_default_period():
    stage = Toy([1.0, 2.0, 3.0], eval_at_end=True)
    stage.default_eval_every = lambda steps_per_epoch: steps_per_epoch  # SFT's rule: each epoch
    cfg = TrainConfig(epochs=3, lr=0.1, batch_size=2, warmup=0, max_steps=5, show_progress=False)
    run(cfg, stage)
    assert stage.evals == [0, 2, 4, 5]


def test_non_finite_loss_stops_with_the_step():
    from instructgpt.train import TrainingDiverged

    stage = Toy([float("nan"), 1.0])
    cfg = TrainConfig(epochs=1, batch_size=1, warmup=0, seed=0, show_progress=False)
    with pytest.raises(TrainingDiverged, match=r"step \d: toy/loss is not finite"):
        run(cfg, stage)


@pytest.mark.parametrize("cls, kwargs, message", [
    (PretrainConfig, {"log_every": 0}, r"base\.train\.log_every=0 must be >= 1"),
    (SFTConfig, {"lr": 0.0}, r"sft\.lr=0\.0 must be > 0"),
    (RewardConfig, {"checkpoint_every": 5}, r"rm\.checkpoint_every > 0 needs rm\.checkpoint_dir"),
    (RewardConfig, {"batch_size": 0}, r"rm\.batch_size=0 must be >= 1"),
    (SFTConfig, {"min_lr_ratio": 1.5}, r"sft\.min_lr_ratio=1\.5 must be in \[0, 1\]"),
])
def test_config_errors_name_the_stage(cls, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        cls(**kwargs)


def test_stage_configs_share_the_loop_fields_with_their_own_defaults():
    assert issubclass(PretrainConfig, TrainConfig) and issubclass(SFTConfig, TrainConfig)
    assert issubclass(RewardConfig, TrainConfig)
    assert (PretrainConfig().lr, SFTConfig().lr, RewardConfig().lr) == (1e-3, 3e-4, 1e-4)
    assert (SFTConfig().epochs, SFTConfig().min_lr_ratio, PretrainConfig().weight_decay) == (16, 0.0, 0.1)
