"""Step 2: reward model from K-way rankings (paper section 3.5).

Each batch element is ONE prompt with its K ranked responses (K = 4..9, varying within a
batch): the K·B responses go through the model in one forward pass and the loss averages the
C(K,2) pairs of each prompt — K forward passes per prompt instead of 2·C(K,2), and no overfitting
from shuffling correlated pairs into separate elements. The prompt itself runs once for its K
responses, which continue its KV cache (``instructgpt.prefix_sharing``). After training the
rewards are normalised (``normalize_rewards``): a gain so that the policy's own samples have
standard deviation 1, then a bias so that the demonstrations have mean 0 (the loss only sees
reward differences, so neither changes what the RM prefers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from transformers import PreTrainedTokenizerBase

from instructgpt.config import ConfigError
from instructgpt.device import weights_changed
from instructgpt.lora import LoRAConfig, add_adapter, check_lora, merge_adapter
from instructgpt.losses import ranking_loss
from instructgpt.models import set_dropout
from instructgpt.preferences import is_permutation
from instructgpt.prefix_sharing import pair_rewards
from instructgpt.reward_model import RewardModel
from instructgpt.scoring import score_pairs  # noqa: F401  (re-exported: scoring strings lives there)
from instructgpt.train.common import LogFn, device_of, no_log
from instructgpt.train.config import TrainConfig
from instructgpt.train.loop import Stage, Stat, keep_best, main_process_log, train_loop


RM_SELECTIONS = ("valid_loss", "valid_accuracy", "last")


class Comparison(NamedTuple):
    """One labelled prompt: K responses and their ranking (indices into ``responses``, best first)."""

    prompt: str
    responses: list[str]
    ranking: list[int]


@dataclass
class RewardConfig(TrainConfig):
    """Reward-model training on K-way comparisons; the shared fields are documented in
    ``TrainConfig`` (``batch_size`` counts PROMPTS, each with its K responses, all C(K,2) pairs)."""

    model_path: str | None = None
    """Where the RM starts: null = the SFT model (the paper: same family as the policy), or a
    local Hugging Face causal-LM directory inside ``inputs.models`` (its backbone gets the scalar
    head). That model may have another tokenizer and chat template than the policy: the RM then
    reads text in its own format everywhere (training, ``instructgpt.scoring``), and PPO
    re-encodes each rollout for it and starts the value function from the SFT policy instead of
    the RM (``instructgpt.train.ppo.train_ppo``)."""
    max_len: int = 256
    """Tokens per (prompt + response + EOS) sequence."""
    dropout: float = 0.0
    """Dropout in the backbone while training the RM."""
    normalize_bias: bool = True
    """After training set the bias so demonstrations have mean reward 0 (paper)."""
    normalize_scale: bool = True
    """After training (before the bias) set the gain so that the rewards of the policy's own
    samples, the responses of the training comparisons, have standard deviation 1
    (lm-human-preferences): the no-EOS penalty score and the KL coefficient β are in RM units."""
    selection: str = "valid_loss"
    """Which checkpoint the stage keeps: the RM is validated after every epoch (and at the end)
    and keeps the one with the lowest validation loss ("valid_loss"), the highest pairwise
    accuracy ("valid_accuracy", noisier on a few hundred prompts) or the last ("last"). An RM
    that trains several epochs fits its labelers' noise; selection stops where that starts."""
    lora: LoRAConfig | None = None
    """Train a LoRA adapter on the backbone (plus the scalar head, trained in full) instead of every
    weight (``instructgpt.lora``; null = full fine-tuning). The saved RM is merged: a plain backbone."""

    section: ClassVar[str] = "rm"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_lora(self.lora, "rm.lora")
        if self.selection not in RM_SELECTIONS:
            raise ConfigError(f"rm.selection={self.selection!r}: choose one of {RM_SELECTIONS}")


def comparison_batch(
    comparisons: Sequence[Comparison],
) -> tuple[list[tuple[str, str]], torch.Tensor, torch.Tensor, torch.Tensor]:
    """All responses of ``comparisons`` as one flat list of (prompt, response) pairs.

    Returns (pairs (N = Σ K_b), owner (N, 2) = (prompt b, slot k), ranking (B, K_max) padded
    with 0, mask (B, K_max) of real responses)."""
    pairs, owner = [], []
    for b, c in enumerate(comparisons):
        if not is_permutation(c.ranking, len(c.responses)):
            raise ValueError(
                f"comparison {b}: ranking {c.ranking} is not a permutation of {len(c.responses)} responses")
        for k, r in enumerate(c.responses):
            pairs.append((c.prompt, r))
            owner.append((b, k))
    B, K = len(comparisons), max(len(c.responses) for c in comparisons)
    ranking = torch.zeros(B, K, dtype=torch.long)
    mask = torch.zeros(B, K, dtype=torch.bool)
    for b, c in enumerate(comparisons):
        ranking[b, : len(c.ranking)] = torch.tensor(c.ranking)
        mask[b, : len(c.responses)] = True
    return pairs, torch.tensor(owner), ranking, mask


def kway_forward(rm: RewardModel, tokenizer: PreTrainedTokenizerBase, comparisons: Sequence[Comparison],
                 max_len: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The rewards of every response of the batch, each prompt run once for its K responses
    (``instructgpt.prefix_sharing``), then the K-way ranking loss."""
    device = device_of(rm)
    pairs, owner, ranking, mask = comparison_batch(comparisons)
    flat = pair_rewards(rm, tokenizer, pairs, max_len)  # (N,)
    rewards = torch.zeros(mask.shape, dtype=flat.dtype, device=device)  # (B, K_max)
    rewards = rewards.index_put((owner[:, 0].to(device), owner[:, 1].to(device)), flat)  # (B, K_max)
    return ranking_loss(rewards, mask.to(device), ranking.to(device))


@torch.no_grad()
def evaluate_rm(rm: RewardModel, tokenizer: PreTrainedTokenizerBase, comparisons: Sequence[Comparison],
                batch_size: int, max_len: int) -> dict[str, float]:
    """Pairwise accuracy and loss over ``comparisons`` (each prompt weighted equally in the loss)."""
    was_training = rm.training
    rm.eval()
    loss_sum, correct, pairs = 0.0, 0.0, 0.0
    for start in range(0, len(comparisons), batch_size):
        chunk = comparisons[start: start + batch_size]
        loss, stats = kway_forward(rm, tokenizer, chunk, max_len)
        loss_sum += loss.item() * len(chunk)
        correct += float(stats["accuracy"]) * float(stats["n_pairs"])
        pairs += float(stats["n_pairs"])
    rm.train(was_training)
    return {"loss": loss_sum / max(len(comparisons), 1), "accuracy": correct / max(pairs, 1.0)}


def normalize_bias(rm: RewardModel, tokenizer: PreTrainedTokenizerBase, demonstrations: Sequence[tuple[str, str]],
                   batch_size: int = 16, max_len: int = 256) -> float:
    """Set ``rm.bias`` so the demonstrations' mean reward is 0; returns the bias."""
    with torch.no_grad():
        rm.bias.zero_()
        mean = float(score_pairs(rm, tokenizer, demonstrations, batch_size, max_len).mean())
        rm.bias.fill_(-mean)
    return -mean


def normalize_gain(rm: RewardModel, tokenizer: PreTrainedTokenizerBase, samples: Sequence[tuple[str, str]],
                   batch_size: int = 16, max_len: int = 256) -> float:
    """Set ``rm.gain`` so the rewards of ``samples`` have (population) standard deviation 1;
    returns the gain. Fewer than two samples, or samples that all score the same, give gain 1
    (no scale can be read from them)."""
    with torch.no_grad():
        rm.gain.fill_(1.0)
        if len(samples) < 2:
            return 1.0
        std = float(score_pairs(rm, tokenizer, samples, batch_size, max_len).std(unbiased=False))
        if std > 1e-8:
            rm.gain.fill_(1.0 / std)
    return float(rm.gain)


def normalize_rewards(rm: RewardModel, tokenizer: PreTrainedTokenizerBase, samples: Sequence[tuple[str, str]],
                      demonstrations: Sequence[tuple[str, str]], cfg: RewardConfig) -> dict[str, float]:
    """Gain, then bias, of a trained RM (``cfg.normalize_scale``, ``cfg.normalize_bias``).

    r = gain · head(h) + bias. The gain makes the rewards of the policy's own samples (``samples``:
    the training comparisons' responses, which the label stage sampled from the SFT policy)
    have standard deviation 1; then the bias makes the demonstrations' mean 0 (paper), in that
    order because the gain rescales the demonstrations' mean too. Why the scale: the ranking loss
    fixes rewards only up to a positive affine map, and an RM's spread is an accident of its
    training, yet PPO mixes rewards with numbers in RM units (the no-EOS penalty score, β·KL);
    without the gain those numbers mean something different for every RM. Both maps are
    positive affine, so the RM's preferences (pairwise accuracy) do not change.

    Returns ``gain``, ``bias`` and, after normalising, ``samples/std_reward`` (≈ 1) and
    ``demo/mean_reward`` (≈ 0) when there are samples and demonstrations."""
    bs, n = cfg.eval_batch_size, cfg.max_len
    if cfg.normalize_scale and samples:
        normalize_gain(rm, tokenizer, samples, bs, n)
    if cfg.normalize_bias and demonstrations:
        normalize_bias(rm, tokenizer, demonstrations, bs, n)
    metrics = {"gain": float(rm.gain), "bias": float(rm.bias)}
    if len(samples) > 1:
        metrics["samples/std_reward"] = float(score_pairs(rm, tokenizer, samples, bs, n).std(unbiased=False))
    if demonstrations:
        metrics["demo/mean_reward"] = float(score_pairs(rm, tokenizer, demonstrations, bs, n).mean())
    return metrics


def comparison_samples(comparisons: Sequence[Comparison]) -> list[tuple[str, str]]:
    """Every distinct (prompt, response) of ``comparisons``, in order (a prompt ranked twice
    counts once)."""
    return list(dict.fromkeys((c.prompt, r) for c in comparisons for r in c.responses))


class _Reward(Stage):
    """Items are the prompts with their K ranked responses; the loss is the K-way ranking loss,
    a mean over the prompts that have a pair; ``accuracy`` is pairwise. Validated every epoch
    (and at the end); the stage keeps the checkpoint ``cfg.selection`` picks."""

    name = "rm"
    desc = "reward"
    stats = ("accuracy",)
    eval_at_end = True
    # prefix sharing runs each block twice (the prompt, then the responses continuing its KV
    # cache): FSDP's per-block backward hooks would miss the first call, so one unit
    fsdp_per_block = False

    def __init__(self, rm: RewardModel, tokenizer: PreTrainedTokenizerBase, train: Sequence[Comparison],
                 valid: Sequence[Comparison], cfg: RewardConfig) -> None:
        super().__init__(rm, len(train), cfg.seed, checkpoint_name="rm")
        self.tokenizer, self.train, self.valid, self.cfg = tokenizer, train, valid, cfg
        self.best: dict | None = None

    def default_eval_every(self, steps_per_epoch: int) -> int:
        return steps_per_epoch

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.best = keep_best(self.best, metrics, step, self.model, self.cfg.selection, self.full_state)

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]

    def loss(self, idx: list[int]) -> tuple[torch.Tensor, float, dict[str, Stat]]:
        chunk = [self.train[j] for j in idx]
        loss, stats = kway_forward(self.model, self.tokenizer, chunk, self.cfg.max_len)
        n_prompts = float(sum(len(c.responses) > 1 for c in chunk))  # the loss is a mean over these
        return loss, n_prompts, {"accuracy": (float(stats["accuracy"]), float(stats["n_pairs"]))}

    def evaluate(self, step: int) -> dict[str, float]:
        if not self.valid:
            return {}
        m = evaluate_rm(self.model, self.tokenizer, self.valid, self.cfg.eval_batch_size, self.cfg.max_len)
        return {f"valid/{k}": v for k, v in m.items()}


def train_reward_model(
    rm: RewardModel,
    tokenizer: PreTrainedTokenizerBase,
    train: Sequence[Comparison],
    valid: Sequence[Comparison],
    demonstrations: Sequence[tuple[str, str]],
    cfg: RewardConfig,
    log: LogFn = no_log,
) -> dict[str, float]:
    """Train ``rm`` in place, keep the checkpoint ``cfg.selection`` picks among the epochs'
    (``best/step``, ``best/epoch``), then normalise it (``normalize_rewards``); returns
    valid/accuracy (pairwise) and valid/loss of that checkpoint, train/*, gain, bias,
    samples/std_reward, demo/mean_reward."""
    train = [Comparison(*c) for c in train]
    valid = [Comparison(*c) for c in valid]
    if not train:
        raise ValueError("train_reward_model: no training comparisons")
    log = main_process_log(log)
    set_dropout(rm.backbone, cfg.dropout)
    adapter = add_adapter(rm.backbone, cfg.lora, cfg.seed, "rm.lora") if cfg.lora is not None else None
    stage = _Reward(rm, tokenizer, train, valid, cfg)
    result = train_loop(cfg, stage, log)
    best = stage.best
    if best is not None and best["step"] != result.step:
        rm.load_state_dict(best["state"], strict=adapter is None)  # LoRA: the adapter's tensors alone
        weights_changed()  # written in place: autocast's copies of the last step's weights are stale
    if adapter is not None:  # merged before the evaluation and the normalisation: they measure what is saved
        merge_adapter(adapter)
    step = result.step
    metrics = result.train_metrics()
    if best is not None:
        metrics["best/step"] = float(best["step"])
        metrics["best/epoch"] = best["step"] / math.ceil(len(train) / cfg.batch_size)
    if valid:
        metrics.update({f"valid/{k}": v for k, v in evaluate_rm(rm, tokenizer, valid, cfg.eval_batch_size,
                                                                cfg.max_len).items()})
    metrics.update(normalize_rewards(rm, tokenizer, comparison_samples(train), demonstrations, cfg))
    log({k: v for k, v in metrics.items() if k != "steps"}, step)
    return metrics
