"""Step 1: supervised fine-tuning on labeler demonstrations (paper section 3.5).

Paper: 16 epochs, cosine decay, residual dropout 0.2; validation loss overfits after one epoch
while the RM score keeps rising, so the paper selects the final SFT model by RM score on
validation prompts. That needs a reward model from an EARLIER iteration of the recipe: in this
pipeline the sft stage runs before any RM exists (sft -> label -> rm), so selection by RM score
is not offered; the checkpoint with the lowest validation loss (or the last one) is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.config import ConfigError
from instructgpt.data import collate_sft, epoch_permutation, length_grouped_permutation
from instructgpt.device import weights_changed
from instructgpt.lora import LoRAConfig, add_adapter, check_lora, merge_adapter
from instructgpt.losses import lm_loss
from instructgpt.models import set_dropout
from instructgpt.train.common import LogFn, device_of, no_log
from instructgpt.train.config import TrainConfig
from instructgpt.train.loop import Stage, Stat, keep_best, main_process_log, train_loop

# No "reward" selection (the paper's): the sft stage runs before the first reward model exists.
SELECTIONS = ("valid_loss", "last")  # (keep_best also knows valid_accuracy: the RM's)


@dataclass
class SFTConfig(TrainConfig):
    """Supervised fine-tuning on (prompt, demonstration) pairs; the shared fields are documented
    in ``TrainConfig`` (here ``eval_every`` = 0 evaluates after each epoch)."""

    epochs: int = 16
    """Passes over the demonstrations (paper: 16)."""
    lr: float = 3e-4
    """Peak AdamW learning rate."""
    batch_size: int = 16
    """Demonstrations per optimizer step."""
    min_lr_ratio: float = 0.0
    """Final learning rate as a fraction of ``lr`` (cosine decay to 0, paper)."""
    eval_batch_size: int = 32
    """Examples per forward pass during evaluation."""
    dropout: float = 0.2
    """Residual/attention/embedding dropout during SFT (paper: 0.2); the saved model keeps the
    dropout it came with, later stages choose their own."""
    max_len: int = 256
    """Tokens per example (prompt + response + EOS); longer ones are cut."""
    group_by_length: bool = True
    """Batch demonstrations of similar length together (less padding, same data; batches stay random)."""
    selection: str = "valid_loss"
    """Which evaluated checkpoint to keep: "valid_loss" (lowest validation loss) or "last".
    (The paper's RM-score selection needs an RM that does not exist yet when SFT runs.)"""
    lora: LoRAConfig | None = None
    """Train a LoRA adapter instead of every weight (``instructgpt.lora``; null = full fine-tuning,
    the paper's). The saved model is the merged full model either way."""

    section: ClassVar[str] = "sft"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.selection not in SELECTIONS:
            raise ConfigError(f"sft.selection={self.selection!r}: choose one of {SELECTIONS}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"sft.dropout={self.dropout} must be in [0, 1)")
        check_lora(self.lora, "sft.lora")


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


class _SFT(Stage):
    """Items are the demonstrations; the loss is the mean NLL over a batch's response tokens;
    evaluation is the validation loss, and the stage keeps the selected checkpoint."""

    name = "sft"
    eval_before = True  # valid/loss_before
    eval_at_end = True  # the last checkpoint is a candidate too

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 train: Sequence[tuple[str, str]], valid: Sequence[tuple[str, str]], cfg: SFTConfig) -> None:
        super().__init__(model, len(train), cfg.seed)
        self.tokenizer, self.train, self.valid, self.cfg = tokenizer, train, valid, cfg
        self.lengths = [len(p) + len(r) for p, r in train]  # characters: a cheap proxy for tokens
        self.best: dict | None = None

    def order(self, epoch: int) -> list[int]:
        if self.cfg.group_by_length:
            return length_grouped_permutation(self.lengths, self.cfg.batch_size, self.cfg.seed, epoch)
        return epoch_permutation(len(self.train), self.cfg.seed, epoch)

    def loss(self, idx: list[int]) -> tuple[torch.Tensor, float, dict[str, Stat]]:
        b = collate_sft(self.tokenizer, [self.train[j] for j in idx], self.cfg.max_len)
        device = device_of(self.model)
        logits = self.model(**{k: v.to(device) for k, v in b.model_inputs().items()}).logits  # (B, T, V)
        loss, stats = lm_loss(logits, b.labels.to(device))
        return loss, float(stats["n_tokens"]), {}

    def default_eval_every(self, steps_per_epoch: int) -> int:
        return steps_per_epoch

    def evaluate(self, step: int) -> dict[str, float]:
        if not self.valid:
            return {}
        return {"valid/loss": sft_loss(self.model, self.tokenizer, self.valid, self.cfg.max_len,
                                       self.cfg.eval_batch_size)}

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.best = keep_best(self.best, metrics, step, self.model, self.cfg.selection, self.full_state)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]


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
    original_dropout = _dropout_of(model)
    set_dropout(model, cfg.dropout)
    # LoRA: the base weights frozen, only the adapter trains (the checkpoints hold the adapter too)
    adapter = add_adapter(model, cfg.lora, cfg.seed, "sft.lora") if cfg.lora is not None else None
    stage = _SFT(model, tokenizer, train, valid, cfg)
    result = train_loop(cfg, stage, main_process_log(log))
    best = stage.best
    if best is not None:
        model.load_state_dict(best["state"], strict=adapter is None)  # LoRA: the adapter's tensors alone
        weights_changed()  # written in place: autocast's copies of the last step's weights are stale
    if adapter is not None:
        merge_adapter(adapter)  # a plain model again, W + (α/r)·B·A: what the later stages load
    set_dropout(model, original_dropout)
    metrics = result.train_metrics()
    metrics.update({f"{k}_before": v for k, v in result.before.items()})
    if best is not None:
        metrics.update({k: float(v) for k, v in best["metrics"].items()})
        metrics["best/step"] = float(best["step"])
    return metrics


def _dropout_of(model: PreTrainedModel) -> float:
    for attr in ("resid_pdrop", "hidden_dropout", "attention_dropout"):
        v = getattr(model.config, attr, None)
        if isinstance(v, (int, float)):
            return float(v)
    return 0.0
