"""Pretraining of the base causal LM on the corpus (the paper starts from GPT-3; we train ours),
and ``BaseConfig``, the config of the ``base`` stage (params.yaml section ``base``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.config import ConfigError
from instructgpt.data import make_blocks
from instructgpt.evaluation import corpus_loss
from instructgpt.losses import lm_loss
from instructgpt.models import ModelConfig
from instructgpt.train.common import LogFn, device_of, no_log
from instructgpt.train.config import TrainConfig
from instructgpt.train.loop import Stage, Stat, main_process_log, train_loop


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


@dataclass
class BaseConfig:
    """The ``base`` stage: a tokenizer and a causal LM "pretrained" on the corpus, or your own."""

    model_path: str | None = None
    """A local Hugging Face causal-LM directory to use instead of training one (then no training
    happens; the directory is copied to outputs/base/model). It must lie inside ``inputs.models``
    (what DVC tracks for this stage). Any ``AutoModelForCausalLM`` architecture, safetensors, no
    remote code; a tokenizer without a pad token gets one; a chat template in its tokenizer
    becomes the prompt format of every later stage (``instructgpt.text``). null: train on the
    corpus (``inputs.corpus``)."""
    vocab_size: int = 2048
    """Size of the byte-level BPE vocabulary trained on the corpus."""
    max_documents: int | None = None
    """Use only the first N corpus documents (the tiny profile); null: all."""
    heldout_fraction: float = 0.05
    """Share of corpus documents held out (by a stable hash of doc_id) to measure corpus loss and
    the alignment tax; never trained on, by base or by PPO-ptx."""
    nlp_task_items: int = 500
    """How many items of ``inputs.nlp_task`` to score (multiple choice by log-likelihood). With
    no items (0 here, or ``inputs.nlp_task: none``) the accuracy is absent, with the reason."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Shape of the freshly initialised model."""
    train: PretrainConfig = field(default_factory=PretrainConfig)
    """Optimisation of the pretraining run."""

    def __post_init__(self) -> None:
        if not 0.0 < self.heldout_fraction < 0.5:
            raise ConfigError(f"base.heldout_fraction={self.heldout_fraction}: choose a value in (0, 0.5)")
        if self.vocab_size < 300:
            raise ConfigError(f"base.vocab_size={self.vocab_size}: a byte-level BPE needs at least 300")
        if self.nlp_task_items < 0:
            raise ConfigError(f"base.nlp_task_items={self.nlp_task_items}: items to score, >= 0 (0: not measured)")


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
