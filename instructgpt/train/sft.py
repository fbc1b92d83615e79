"""Step 1: supervised fine-tuning on labeler demonstrations (paper section 3.5).

Paper: 16 epochs, cosine decay, residual dropout 0.2; validation loss overfits after one epoch
while the RM score keeps rising, so the paper selects the final SFT model by RM score on
validation prompts. That needs a reward model from an EARLIER iteration of the recipe: in this
pipeline the sft stage runs before any RM exists (sft -> label -> rm), so selection by RM score
is not offered; the checkpoint with the lowest validation loss (or the last one) is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.config import ConfigError, to_dict
from instructgpt.data import collate_sft, epoch_permutation, length_grouped_permutation
from instructgpt.losses import lm_loss
from instructgpt.models import set_dropout
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

# No "reward" selection (the paper's): the sft stage runs before the first reward model exists.
SELECTIONS = ("valid_loss", "last")


@dataclass
class SFTConfig:
    """Supervised fine-tuning on (prompt, demonstration) pairs."""

    epochs: int = 16
    """Passes over the demonstrations (paper: 16)."""
    lr: float = 3e-4
    """Peak AdamW learning rate."""
    batch_size: int = 16
    """Demonstrations per optimizer step."""
    warmup: int = 10
    """Linear warmup steps before the cosine decay."""
    min_lr_ratio: float = 0.0
    """Final learning rate as a fraction of ``lr`` (cosine decay, paper)."""
    weight_decay: float = 0.0
    """AdamW weight decay on weight matrices."""
    dropout: float = 0.2
    """Residual/attention/embedding dropout during SFT (paper: 0.2); the saved model keeps the
    dropout it came with, later stages choose their own."""
    max_len: int = 256
    """Tokens per example (prompt + response + EOS); longer ones are cut."""
    grad_clip: float = 1.0
    """Max global gradient norm (0 = no clipping)."""
    seed: int = 0
    """Seeds data order and dropout."""
    group_by_length: bool = True
    """Batch demonstrations of similar length together (less padding, same data; batches stay random)."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = run all epochs)."""
    eval_every: int = 0
    """Evaluate the validation loss every N steps; 0 = each epoch."""
    selection: str = "valid_loss"
    """Which evaluated checkpoint to keep: "valid_loss" (lowest validation loss) or "last".
    (The paper's RM-score selection needs an RM that does not exist yet when SFT runs.)"""
    eval_batch_size: int = 32
    """Examples per forward pass during evaluation."""
    log_every: int = 10
    """Log train metrics every N steps."""
    show_progress: bool = True
    """Progress bar (a few log lines when stderr is not a terminal)."""
    checkpoint_dir: str | None = None
    """Resumable checkpoint directory (None = none); an existing checkpoint is resumed."""
    checkpoint_every: int = 0
    """Checkpoint every N steps (0 = never)."""

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ConfigError(f"sft.selection={self.selection!r}: choose one of {SELECTIONS}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("sft.epochs and sft.batch_size must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"sft.dropout={self.dropout} must be in [0, 1)")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ConfigError("sft.checkpoint_every > 0 needs sft.checkpoint_dir")


@torch.no_grad()
def sft_loss(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]],
             max_len: int, batch_size: int = 32) -> float:
    """Mean per-token NLL of the responses (EOS included) given their prompts."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    total, count = 0.0, 0.0
    for start in range(0, len(pairs), batch_size):
        b = collate_sft(tokenizer, pairs[start: start + batch_size], max_len)
        logits = model(**{k: v.to(device) for k, v in b.model_inputs().items()}).logits
        loss, stats = lm_loss(logits, b.labels.to(device))
        total += loss.item() * float(stats["n_tokens"])
        count += float(stats["n_tokens"])
    model.train(was_training)
    return total / max(count, 1.0)


def train_sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: Sequence[tuple[str, str]],
    valid: Sequence[tuple[str, str]],
    cfg: SFTConfig,
    log: LogFn = no_log,
) -> dict[str, float]:
    """Fine-tune ``model`` in place on (prompt_text, response) pairs; on return it holds the
    selected checkpoint. Metrics: valid/loss_before, valid/loss (selected), best/step, ..."""
    if not train:
        raise ValueError("train_sft: no training demonstrations")
    device = device_of(model)
    ctx = distributed()  # data parallel under torchrun: this rank's shard of each global batch
    log = log if ctx.is_main else no_log
    original_dropout = _dropout_of(model)
    set_dropout(model, cfg.dropout)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    eval_every = cfg.eval_every or steps_per_epoch
    optimizer = make_optimizer(model.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, cfg.warmup, total, cfg.min_lr_ratio)
    lengths = [len(p) + len(r) for p, r in train]  # characters: a cheap proxy for tokens
    torch.manual_seed(cfg.seed + ctx.rank)  # dropout masks: each rank draws its own

    # every rank evaluates the whole validation set: identical metrics, so identical selection
    def evaluate(step: int) -> dict[str, float]:
        m = {"valid/loss": sft_loss(model, tokenizer, valid, cfg.max_len, cfg.eval_batch_size)} if valid else {}
        log(m, step)
        return m

    step, best, loss_ema = 0, None, None
    state = load_checkpoint(cfg.checkpoint_dir, {"model": model})
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        step, best, loss_ema = int(state["step"]), state["best"], state["loss_ema"]
        before = state["before"]
    else:
        before = evaluate(0)
    model.train()
    bar = progress(total=total, initial=step, desc="sft", unit="step",
                   disable=not (cfg.show_progress and ctx.is_main))
    for epoch in range(cfg.epochs):
        if step >= total:
            break
        perm = (length_grouped_permutation(lengths, cfg.batch_size, cfg.seed, epoch) if cfg.group_by_length
                else epoch_permutation(len(train), cfg.seed, epoch))
        for i in range(steps_per_epoch):
            if epoch * steps_per_epoch + i < step:
                continue  # resumed past this batch
            if step >= total:
                break
            shard = ctx.shard(perm[i * cfg.batch_size: (i + 1) * cfg.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss, n_tokens = torch.zeros((), device=device), 0.0
            if shard:
                b = collate_sft(tokenizer, [train[j] for j in shard], cfg.max_len)
                logits = model(**{k: v.to(device) for k, v in b.model_inputs().items()}).logits  # (B, T, V)
                loss, stats = lm_loss(logits, b.labels.to(device))
                n_tokens = float(stats["n_tokens"])
            loss, _ = ctx.share(loss, n_tokens)  # mean over the global batch's response tokens
            if shard:
                loss.backward()
            ctx.sync_gradients(model.parameters())
            loss = ctx.all_sum(loss.detach())
            check_finite(loss, step, "sft/loss")
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)
            loss_ema = loss.item() if loss_ema is None else 0.9 * loss_ema + 0.1 * loss.item()
            if step % cfg.log_every == 0:
                log({"train/loss": loss.item(), "train/lr": scheduler.get_last_lr()[0]}, step)
            if step % eval_every == 0 or step == total:
                m = evaluate(step)
                model.train()
                best = _keep_best(best, m, step, model, cfg.selection)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and ctx.is_main:
                save_checkpoint(cfg.checkpoint_dir, {"model": model}, {
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state(),
                    "step": step, "best": best, "loss_ema": loss_ema, "before": before}, to_dict(cfg))
    bar.close()
    model.eval()
    if best is not None:
        model.load_state_dict(best["state"])
    set_dropout(model, original_dropout)
    metrics = {"train/loss": float(loss_ema) if loss_ema is not None else float("nan"), "steps": float(step)}
    metrics.update({f"{k}_before": v for k, v in before.items()})
    if best is not None:
        metrics.update({k: float(v) for k, v in best["metrics"].items()})
        metrics["best/step"] = float(best["step"])
    return metrics


def _keep_best(best: dict | None, m: dict[str, float], step: int, model: PreTrainedModel, selection: str) -> dict:
    if selection == "valid_loss" and "valid/loss" not in m:
        selection = "last"  # no validation data: nothing to select on
    better = (
        best is None
        or selection == "last"
        or (selection == "valid_loss" and m["valid/loss"] < best["metrics"]["valid/loss"])
    )
    if not better:
        return best
    return {"step": step, "metrics": dict(m), "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}


def _dropout_of(model: PreTrainedModel) -> float:
    for attr in ("resid_pdrop", "hidden_dropout", "attention_dropout"):
        v = getattr(model.config, attr, None)
        if isinstance(v, (int, float)):
            return float(v)
    return 0.0
