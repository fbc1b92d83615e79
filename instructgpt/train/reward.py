"""Step 2: reward model from K-way rankings (paper section 3.5).

Each batch element is ONE prompt with its K ranked responses (K = 4..9, varying within a
batch): the K·B sequences go through the model in one forward pass and the loss averages the
C(K,2) pairs of each prompt — K forward passes per prompt instead of 2·C(K,2), and no overfitting
from shuffling correlated pairs into separate elements. After training the rewards are
normalised (``normalize_rewards``): a gain so that the policy's own samples have standard
deviation 1, then a bias so that the demonstrations have mean 0 (the loss only sees reward
differences, so neither changes what the RM prefers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from transformers import PreTrainedTokenizerBase

from instructgpt.config import ConfigError, to_dict
from instructgpt.data import collate_pairs, epoch_permutation
from instructgpt.losses import ranking_loss
from instructgpt.models import RewardModel, set_dropout
from instructgpt.progress import progress
from instructgpt.scoring import score_pairs  # noqa: F401  (re-exported: scoring strings lives there)
from instructgpt.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from instructgpt.train.common import (
    LogFn,
    check_finite,
    device_of,
    distributed,
    make_optimizer,
    no_log,
    warmup_cosine,
)


class Comparison(NamedTuple):
    """One labelled prompt: K responses and their ranking (indices into ``responses``, best first)."""

    prompt: str
    responses: list[str]
    ranking: list[int]


@dataclass
class RewardConfig:
    """Reward-model training on K-way comparisons."""

    model_path: str | None = None
    """Where the RM starts: null = the SFT model (the paper: same family as the policy), or a
    local Hugging Face causal-LM directory inside ``inputs.models`` (its backbone gets the scalar
    head). That model may have another tokenizer and chat template than the policy: the RM then
    reads text in its own format everywhere (training, ``instructgpt.scoring``), and PPO
    re-encodes each rollout for it and starts the value function from the SFT policy instead of
    the RM (``instructgpt.train.ppo.train_ppo``)."""
    epochs: int = 1
    """Passes over the comparisons (paper: one; the RM overfits after that)."""
    lr: float = 1e-4
    """Peak AdamW learning rate."""
    batch_size: int = 8
    """PROMPTS per optimizer step; each brings its K responses (all C(K,2) pairs)."""
    max_len: int = 256
    """Tokens per (prompt + response + EOS) sequence."""
    warmup: int = 10
    """Linear warmup steps before cosine decay."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of ``lr``."""
    weight_decay: float = 0.0
    """AdamW weight decay on weight matrices."""
    grad_clip: float = 1.0
    """Max global gradient norm (0 = no clipping)."""
    dropout: float = 0.0
    """Dropout in the backbone while training the RM."""
    seed: int = 0
    """Seeds data order and dropout (the head init uses the RewardModel's own seed)."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = all epochs)."""
    eval_every: int = 0
    """Evaluate on the validation comparisons every N steps (0 = at the end only)."""
    eval_batch_size: int = 16
    """Prompts (or demonstrations) per forward pass during evaluation."""
    normalize_bias: bool = True
    """After training set the bias so demonstrations have mean reward 0 (paper)."""
    normalize_scale: bool = True
    """After training (before the bias) set the gain so that the rewards of the policy's own
    samples, the responses of the training comparisons, have standard deviation 1
    (lm-human-preferences): the no-EOS penalty score and the KL coefficient β are in RM units."""
    log_every: int = 10
    """Log train metrics every N steps."""
    show_progress: bool = True
    """Progress bar (a few log lines when stderr is not a terminal)."""
    checkpoint_dir: str | None = None
    """Resumable checkpoint directory (None = none); an existing checkpoint is resumed."""
    checkpoint_every: int = 0
    """Checkpoint every N steps (0 = never)."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("rm.epochs and rm.batch_size must be >= 1")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ConfigError("rm.checkpoint_every > 0 needs rm.checkpoint_dir")


def comparison_batch(
    tokenizer: PreTrainedTokenizerBase, comparisons: Sequence[Comparison], max_len: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """All responses of ``comparisons`` as one flat left-padded batch.

    Returns (model inputs (N, T) with N = Σ K_b, owner (N, 2) = (prompt b, slot k),
    ranking (B, K_max) padded with 0, mask (B, K_max) of real responses)."""
    pairs, owner = [], []
    for b, c in enumerate(comparisons):
        if sorted(c.ranking) != list(range(len(c.responses))):
            raise ValueError(
                f"comparison {b}: ranking {c.ranking} is not a permutation of {len(c.responses)} responses")
        for k, r in enumerate(c.responses):
            pairs.append((c.prompt, r))
            owner.append((b, k))
    batch = collate_pairs(tokenizer, pairs, max_len)
    B, K = len(comparisons), max(len(c.responses) for c in comparisons)
    ranking = torch.zeros(B, K, dtype=torch.long)
    mask = torch.zeros(B, K, dtype=torch.bool)
    for b, c in enumerate(comparisons):
        ranking[b, : len(c.ranking)] = torch.tensor(c.ranking)
        mask[b, : len(c.responses)] = True
    return batch.model_inputs(), torch.tensor(owner), ranking, mask


def kway_forward(rm: RewardModel, tokenizer: PreTrainedTokenizerBase, comparisons: Sequence[Comparison],
                 max_len: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass over every response of the batch, then the K-way ranking loss."""
    device = device_of(rm)
    inputs, owner, ranking, mask = comparison_batch(tokenizer, comparisons, max_len)
    flat = rm(**{k: v.to(device) for k, v in inputs.items()})  # (N,)
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


def train_reward_model(
    rm: RewardModel,
    tokenizer: PreTrainedTokenizerBase,
    train: Sequence[Comparison],
    valid: Sequence[Comparison],
    demonstrations: Sequence[tuple[str, str]],
    cfg: RewardConfig,
    log: LogFn = no_log,
) -> dict[str, float]:
    """Train ``rm`` in place, then normalise it (``normalize_rewards``); returns valid/accuracy
    (pairwise), valid/loss, train/*, gain, bias, samples/std_reward, demo/mean_reward."""
    train = [Comparison(*c) for c in train]
    valid = [Comparison(*c) for c in valid]
    if not train:
        raise ValueError("train_reward_model: no training comparisons")
    ctx = distributed()  # data parallel under torchrun: this rank's shard of each global batch
    log = log if ctx.is_main else no_log
    set_dropout(rm.backbone, cfg.dropout)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    optimizer = make_optimizer(rm.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, cfg.warmup, total, cfg.min_lr_ratio)
    torch.manual_seed(cfg.seed + ctx.rank)  # dropout masks: each rank draws its own
    step, acc_ema, loss_ema = 0, None, None
    state = load_checkpoint(cfg.checkpoint_dir, {"rm": rm})
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        step, acc_ema, loss_ema = int(state["step"]), state["acc_ema"], state["loss_ema"]
    rm.train()
    bar = progress(total=total, initial=step, desc="reward", unit="step",
                   disable=not (cfg.show_progress and ctx.is_main))
    for epoch in range(cfg.epochs):
        if step >= total:
            break
        perm = epoch_permutation(len(train), cfg.seed, epoch)
        for i in range(steps_per_epoch):
            if epoch * steps_per_epoch + i < step:
                continue
            if step >= total:
                break
            chunk = [train[j] for j in ctx.shard(perm[i * cfg.batch_size: (i + 1) * cfg.batch_size])]
            optimizer.zero_grad(set_to_none=True)
            loss, n_correct, n_pairs = torch.zeros((), device=device_of(rm)), 0.0, 0.0
            if chunk:
                loss, stats = kway_forward(rm, tokenizer, chunk, cfg.max_len)
                n_correct = float(stats["accuracy"]) * float(stats["n_pairs"])
                n_pairs = float(stats["n_pairs"])
            # the loss is a mean over prompts that have at least one pair
            loss, _ = ctx.share(loss, sum(len(c.responses) > 1 for c in chunk))
            if chunk:
                loss.backward()
            ctx.sync_gradients(rm.parameters())
            loss = ctx.all_sum(loss.detach())
            check_finite(loss, step, "rm/loss")
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(rm.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)
            loss_ema = loss.item() if loss_ema is None else 0.9 * loss_ema + 0.1 * loss.item()
            acc = float(stats["accuracy"]) if not ctx.enabled else float(ctx.all_sum(n_correct) / ctx.all_sum(n_pairs))
            acc_ema = acc if acc_ema is None else 0.9 * acc_ema + 0.1 * acc
            if step % cfg.log_every == 0:
                log({"train/loss": loss.item(), "train/accuracy": acc, "train/lr": scheduler.get_last_lr()[0]}, step)
            if cfg.eval_every and step % cfg.eval_every == 0 and valid:
                m = evaluate_rm(rm, tokenizer, valid, cfg.eval_batch_size, cfg.max_len)
                log({f"valid/{k}": v for k, v in m.items()}, step)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and ctx.is_main:
                save_checkpoint(cfg.checkpoint_dir, {"rm": rm}, {
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state(),
                    "step": step, "acc_ema": acc_ema, "loss_ema": loss_ema}, to_dict(cfg))
    bar.close()
    rm.eval()
    metrics = {"train/loss": float(loss_ema), "train/accuracy": float(acc_ema), "steps": float(step)}
    if valid:
        metrics.update({f"valid/{k}": v for k, v in evaluate_rm(rm, tokenizer, valid, cfg.eval_batch_size,
                                                                cfg.max_len).items()})
    metrics.update(normalize_rewards(rm, tokenizer, comparison_samples(train), demonstrations, cfg))
    log({k: v for k, v in metrics.items() if k != "steps"}, step)
    return metrics
