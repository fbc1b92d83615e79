"""The configs every trainer shares: ``OptimConfig`` (optimiser, seed, progress, checkpoints:
pretraining, SFT, the reward model and PPO) and ``TrainConfig`` (the one loop of pretraining, SFT
and the reward model, ``instructgpt.train.loop``). Each stage's config extends one of them, and
keeps the params.yaml keys these fields give it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from instructgpt.config import ConfigError


@dataclass
class OptimConfig:
    """AdamW, seed, progress bar and checkpoints: the fields of every trainer's config. A stage
    overrides a default by declaring the field again (``PPOConfig.lr``)."""

    lr: float = 1e-4
    """Peak AdamW learning rate."""
    batch_size: int = 8
    """Items per optimizer step (the GLOBAL batch when data parallel); each stage says what an item is."""
    weight_decay: float = 0.0
    """AdamW weight decay on weight matrices (never on biases and norms)."""
    grad_clip: float = 1.0
    """Max global gradient norm (0 = no clipping)."""
    seed: int = 0
    """Seeds the data order and dropout."""
    show_progress: bool = True
    """Progress bar (a few log lines when stderr is not a terminal)."""
    checkpoint_dir: str | None = None
    """Where to keep a resumable checkpoint (None = no checkpoints); an existing one is resumed."""
    checkpoint_every: int = 0
    """Checkpoint every this many steps (0 = never)."""


@dataclass
class TrainConfig(OptimConfig):
    """Optimisation, logging, evaluation and checkpointing shared by pretraining, SFT and the RM
    (``OptimConfig``'s fields, and the epochs, schedule and evaluation knobs below)."""

    epochs: int = 1
    """Passes over the training data."""
    warmup: int = 10
    """Linear warmup steps before the cosine decay."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of ``lr``."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = run all epochs)."""
    log_every: int = 10
    """Log train metrics every this many steps (and at the last step)."""
    eval_every: int = 0
    """Evaluate on the validation data every this many steps; 0 = the stage's default (SFT: each
    epoch; pretraining and the RM: once, after training)."""
    eval_batch_size: int = 16
    """Items per forward pass during evaluation."""

    section: ClassVar[str] = "train"  # the params.yaml section that error messages name

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "log_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{self.section}.{name}={getattr(self, name)} must be >= 1")
        for name in ("warmup", "max_steps", "eval_every", "checkpoint_every", "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{self.section}.{name}={getattr(self, name)} must be >= 0")
        if self.lr <= 0:
            raise ConfigError(f"{self.section}.lr={self.lr} must be > 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"{self.section}.min_lr_ratio={self.min_lr_ratio} must be in [0, 1]")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ConfigError(f"{self.section}.checkpoint_every > 0 needs {self.section}.checkpoint_dir")
