"""Pretraining of the base causal LM on the corpus (the paper starts from GPT-3; we train ours)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.config import ConfigError
from instructgpt.data import make_blocks
from instructgpt.evaluation import corpus_loss
from instructgpt.losses import lm_loss
from instructgpt.train.common import LogFn, device_of, no_log
from instructgpt.train.loop import Stage, Stat, TrainConfig, main_process_log, train_loop


@dataclass
class PretrainConfig(TrainConfig):
    """Next-token pretraining of the base model (params.yaml ``base.train``); the shared fields
    are documented in ``TrainConfig``."""

    lr: float = 1e-3
    """Peak AdamW learning rate (a fresh small model takes a larger one than fine-tuning)."""
    batch_size: int = 32
    """Blocks per optimizer step."""
    warmup: int = 50
    """Linear warmup steps before the cosine decay."""
    weight_decay: float = 0.1
    """AdamW weight decay on weight matrices (regularises training from scratch)."""
    eval_batch_size: int = 32
    """Texts per forward pass for the validation loss."""
    block_size: int = 128
    """Tokens per block; must not exceed the model's n_positions."""

    section: ClassVar[str] = "base.train"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.block_size < 1:
            raise ConfigError(f"base.train.block_size={self.block_size} must be >= 1")


class _Pretrain(Stage):
    """Items are the corpus blocks; the loss is the mean next-token NLL over a batch's tokens."""

    name = "pretrain"

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, blocks: torch.Tensor,
                 valid_texts: Sequence[str], cfg: PretrainConfig) -> None:
        super().__init__(model, len(blocks), cfg.seed)
        self.tokenizer, self.blocks, self.valid_texts, self.cfg = tokenizer, blocks, valid_texts, cfg

    def loss(self, idx: list[int]) -> tuple[torch.Tensor, float, dict[str, Stat]]:
        b_ids = self.blocks[idx].to(device_of(self.model))  # (B, block_size)
        logits = self.model(input_ids=b_ids).logits  # (B, block_size, V)
        loss, stats = lm_loss(logits, b_ids, torch.ones_like(b_ids))
        return loss, float(stats["n_tokens"]), {}

    def evaluate(self, step: int) -> dict[str, float]:
        if not self.valid_texts:
            return {}
        return {"valid/loss": corpus_loss(self.model, self.tokenizer, self.valid_texts, self.cfg.eval_batch_size,
                                          max_len=self.cfg.block_size)}


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
        raise ConfigError(f"base.train.block_size={cfg.block_size} exceeds the model's context {n_pos}")
    log = main_process_log(log)
    stage = _Pretrain(model, tokenizer, make_blocks(tokenizer, train_texts, cfg.block_size), valid_texts, cfg)
    result = train_loop(cfg, stage, log)
    metrics = result.train_metrics()
    metrics.update(stage.evaluate(result.step))
    log({k: v for k, v in metrics.items() if k != "steps"}, result.step)
    return metrics
