"""Pretraining of the base causal LM on the corpus (the paper starts from GPT-3; we train ours)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.config import ConfigError, to_dict
from instructgpt.data import epoch_permutation, make_blocks
from instructgpt.evaluation import corpus_loss
from instructgpt.losses import lm_loss
from instructgpt.progress import progress
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


@dataclass
class PretrainConfig:
    """Next-token pretraining of the base model."""

    epochs: int = 1
    """Passes over the corpus blocks."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    batch_size: int = 32
    """Blocks per optimizer step."""
    block_size: int = 128
    """Tokens per block; must not exceed the model's n_positions."""
    warmup: int = 50
    """Linear warmup steps before cosine decay."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of ``lr``."""
    weight_decay: float = 0.1
    """AdamW weight decay on weight matrices."""
    grad_clip: float = 1.0
    """Max global gradient norm (0 = no clipping)."""
    seed: int = 0
    """Seeds the data order and dropout."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = run all epochs)."""
    log_every: int = 10
    """Log train metrics every this many steps."""
    eval_batch_size: int = 32
    """Texts per forward pass for the validation loss."""
    show_progress: bool = True
    """Progress bar (a few log lines when stderr is not a terminal)."""
    checkpoint_dir: str | None = None
    """Where to keep a resumable checkpoint (None = no checkpoints); an existing one is resumed."""
    checkpoint_every: int = 0
    """Checkpoint every this many steps (0 = never)."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "block_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"pretrain.{name}={getattr(self, name)} must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"pretrain.lr={self.lr} must be > 0")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ConfigError("pretrain.checkpoint_every > 0 needs pretrain.checkpoint_dir")


def pretrain(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_texts: Sequence[str],
    valid_texts: Sequence[str],
    cfg: PretrainConfig,
    log: LogFn = no_log,
) -> dict[str, float]:
    """Train ``model`` in place on blocks of ``train_texts``; returns final train/valid loss."""
    n_pos = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    if n_pos and cfg.block_size > n_pos:
        raise ConfigError(f"pretrain.block_size={cfg.block_size} exceeds the model's context {n_pos}")
    device = device_of(model)
    ctx = distributed()  # data parallel under torchrun: this rank's shard of each global batch
    log = log if ctx.is_main else no_log
    blocks = make_blocks(tokenizer, train_texts, cfg.block_size)  # (N, block_size)
    steps_per_epoch = math.ceil(len(blocks) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    optimizer = make_optimizer(model.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, cfg.warmup, total, cfg.min_lr_ratio)
    torch.manual_seed(cfg.seed + ctx.rank)  # dropout masks: each rank draws its own
    step, loss_ema = 0, None
    state = load_checkpoint(cfg.checkpoint_dir, {"model": model})
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        step, loss_ema = int(state["step"]), state["loss_ema"]
    model.train()
    bar = progress(total=total, initial=step, desc="pretrain", unit="step",
                   disable=not (cfg.show_progress and ctx.is_main))
    for epoch in range(cfg.epochs):
        if step >= total:
            break
        perm = epoch_permutation(len(blocks), cfg.seed, epoch)
        for i in range(steps_per_epoch):
            if epoch * steps_per_epoch + i < step:
                continue  # resumed: this batch was already trained on
            if step >= total:
                break
            idx = ctx.shard(perm[i * cfg.batch_size: (i + 1) * cfg.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss, n_tokens = torch.zeros((), device=device), 0.0
            if idx:
                b_ids = blocks[idx].to(device)  # (B, block_size)
                logits = model(input_ids=b_ids).logits  # (B, block_size, V)
                loss, stats = lm_loss(logits, b_ids, torch.ones_like(b_ids))
                n_tokens = float(stats["n_tokens"])
            loss, _ = ctx.share(loss, n_tokens)  # mean over the global batch's tokens
            if idx:
                loss.backward()
            ctx.sync_gradients(model.parameters())
            loss = ctx.all_sum(loss.detach())
            check_finite(loss, step, "pretrain/loss")
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            loss_ema = loss.item() if loss_ema is None else 0.9 * loss_ema + 0.1 * loss.item()
            bar.update(1)
            if step % cfg.log_every == 0 or step == total:
                log({"train/loss": loss.item(), "train/loss_ema": loss_ema, "train/lr": scheduler.get_last_lr()[0],
                     "train/epoch": epoch + (i + 1) / steps_per_epoch}, step)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and ctx.is_main:
                save_checkpoint(cfg.checkpoint_dir, {"model": model}, {
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state(), "step": step, "loss_ema": loss_ema}, to_dict(cfg))
    bar.close()
    model.eval()
    metrics = {"train/loss": float(loss_ema) if loss_ema is not None else float("nan"), "steps": float(step)}
    if valid_texts:
        metrics["valid/loss"] = corpus_loss(model, tokenizer, valid_texts, cfg.eval_batch_size, max_len=cfg.block_size)
    log({k: v for k, v in metrics.items() if k != "steps"}, step)
    return metrics
