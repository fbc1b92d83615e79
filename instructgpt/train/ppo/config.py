"""The PPO stage's config: ``PPOConfig`` (params.yaml section ``ppo``) and its KL penalty ``KLConfig``."""

from __future__ import annotations

from dataclasses import dataclass, field

from instructgpt.config import ConfigError
from instructgpt.lora import LoRAConfig, check_lora
from instructgpt.train.config import OptimConfig


@dataclass
class KLConfig:
    """The KL penalty β·KL(π^RL ‖ π^SFT) and its controller."""

    kl_coef: float = 0.02
    """β at the start (successors of the paper: 0.02)."""
    adaptive: bool = False
    """Adapt β towards ``target`` (Ziegler et al. 2019) instead of keeping it fixed."""
    target: float = 6.0
    """Target KL per response, in nats (adaptive only)."""
    horizon: int = 10000
    """Adaptation horizon in episodes (adaptive only)."""
    estimator: str = "k1"
    """Per-token KL estimate in the reward: "k1" (log-ratio, as the paper) or "k3"."""

    def __post_init__(self) -> None:
        if self.kl_coef < 0:
            raise ConfigError(f"ppo.kl.kl_coef={self.kl_coef} must be >= 0")
        if self.estimator not in ("k1", "k3"):
            raise ConfigError(f"ppo.kl.estimator={self.estimator!r}: choose 'k1' or 'k3'")
        if self.adaptive and (self.target <= 0 or self.horizon <= 0):
            raise ConfigError("ppo.kl.adaptive needs ppo.kl.target > 0 and ppo.kl.horizon > 0")


@dataclass
class PPOConfig(OptimConfig):
    """PPO (ptx_coef = 0) or PPO-ptx (ptx_coef > 0) fine-tuning of the SFT policy.

    The optimiser fields are ``OptimConfig``'s. Here ``weight_decay`` and ``grad_clip`` apply to
    the policy and to the value model separately, and ``seed`` seeds prompt order, sampling,
    minibatch order and the ptx data order."""

    steps: int = 100
    """PPO iterations; each = one rollout batch + ppo_epochs of updates."""
    batch_size: int = 64
    """Rollouts (prompt, response) per iteration."""
    mini_batch_size: int = 16
    """Rollouts per gradient step; must divide batch_size."""
    ppo_epochs: int = 4
    """Passes over each rollout batch."""
    lr: float = 1e-5
    """AdamW learning rate of the policy (constant)."""
    vf_lr: float | None = None
    """AdamW learning rate of the value model (constant; None = ``lr``). The value model is a
    separate network in its own parameter group with its own gradient clipping, so this sets how
    fast it fits the returns; a weight on the value loss would not (AdamW ignores a loss's scale)."""
    cliprange: float = 0.2
    """ε of the clipped policy ratio."""
    cliprange_value: float = 0.2
    """ε of the clipped value prediction."""
    gamma: float = 1.0
    """GAE discount (bandit episode: 1)."""
    lam: float = 0.95
    """GAE λ."""
    temperature: float = 1.0
    """Sampling temperature; also divides the logits for logprobs/ref_logprobs."""
    max_new_tokens: int = 48
    """Response length cap; a response without EOS within it gets ``no_eos_penalty``."""
    max_prompt_len: int = 128
    """Prompt tokens kept (from the end)."""
    no_eos_penalty: float | None = -1.0
    """Score given to a response that never emits EOS (None = use the RM score). The RM is
    normalised so demonstrations score 0; pick a value below typical scores."""
    whiten_rewards: bool = False
    """Scale per-token rewards to unit variance (mean kept) before GAE."""
    ptx_coef: float = 0.0
    """γ: weight of the pretraining LM loss (0 = PPO, > 0 = PPO-ptx). Successors used 27.8 with
    their loss normalisation; here both losses are per-token means, so γ ≈ 0.5–2 is the useful
    range for the tiny models (27.8 would swamp the PPO term)."""
    ptx_batch_size: int = 8
    """Pretraining blocks per gradient step (PPO-ptx)."""
    ptx_block_size: int = 128
    """Tokens per pretraining block (PPO-ptx)."""
    ema_decay: float = 0.0
    """EMA of the policy weights (0 = off; successors: 0.992). When on, the RETURNED policy holds
    the EMA weights; rollouts always use the live policy."""
    kl: KLConfig = field(default_factory=KLConfig)
    """KL penalty settings."""
    lora: LoRAConfig | None = None
    """LoRA adapters instead of full fine-tuning (``instructgpt.train.ppo.models``; null = full, the
    paper's): the policy trains an adapter and π^SFT is the same module with it disabled (no second
    copy); the value model is the RM's own backbone with another adapter and a copy of its head.
    The policy is merged at the end. ``lora.dropout`` must be 0 (RL runs without dropout)."""
    row_keyed_sampling: bool = False
    """Sample each rollout row from its own uniforms (drawn for the global batch, inverse CDF)
    instead of ``torch.multinomial`` over the batch: a row's response then does not depend on
    how the batch is split across processes. Always on with several processes; off by default
    so that single-process runs keep their samples."""
    sample_every: int = 10
    """Every N steps (and at the last), the policy answers the monitor prompts (held-out
    prompts given to ``train_ppo``) and ``sample_log`` receives the samples with their KL from
    SFT and RM score: the reward over-optimisation curve (0 = never)."""
    monitor_prompts: int = 8
    """How many validation-split prompts the monitor samples (the same prompts at every step)."""

    def __post_init__(self) -> None:
        if self.batch_size % self.mini_batch_size:
            raise ConfigError(
                f"ppo.batch_size={self.batch_size} must be a multiple of ppo.mini_batch_size={self.mini_batch_size}"
            )
        if self.temperature <= 0:
            raise ConfigError("ppo.temperature must be > 0 (logprobs are computed at that temperature)")
        if self.ptx_coef < 0:
            raise ConfigError("ppo.ptx_coef must be >= 0 (0 = PPO, > 0 = PPO-ptx)")
        if self.vf_lr is not None and self.vf_lr < 0:
            raise ConfigError(f"ppo.vf_lr={self.vf_lr} must be >= 0 (or null: the policy's ppo.lr)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("ppo.ema_decay must be in [0, 1)")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ConfigError("ppo.checkpoint_every > 0 needs ppo.checkpoint_dir")
        check_lora(self.lora, "ppo.lora")
        if self.lora is not None and self.lora.dropout:
            raise ConfigError(f"ppo.lora.dropout={self.lora.dropout} must be 0: PPO runs without dropout, so "
                              "that the update's log-probabilities are the rollout's")

    @property
    def value_lr(self) -> float:
        """The value model's learning rate: ``vf_lr``, or ``lr`` when unset."""
        return self.lr if self.vf_lr is None else self.vf_lr
