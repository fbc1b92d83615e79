"""The ``label`` stage's config (params.yaml section ``label``): who ranks, how many responses,
and how they are sampled. Read by the label stage, and by the rm stage for the K bounds its gate
checks the comparisons against."""

from __future__ import annotations

from dataclasses import dataclass

from instructgpt.config import ConfigError
from instructgpt.preferences import K_MAX, K_MIN


@dataclass
class LabelConfig:
    """The ``label`` stage: K samples per RM prompt from the SFT model, ranked by labelers
    (`instructgpt.labeling`)."""

    labelers: str = "simulated"
    """Who ranks: ``simulated`` (the world's training labelers; ``inputs.rankings`` is the world,
    data/world) or ``human`` (rankings imported from ``inputs.rankings``, e.g. labels/rankings:
    JSONL files and Label Studio exports; prompts without one get ranking tasks in
    labels/outbox/rank_tasks.jsonl)."""
    k_min: int = 4
    """Fewest responses a labeler ranks for one prompt (paper: 4; 2 = chosen/rejected pairs)."""
    k_max: int = 9
    """Most responses ranked for one prompt (paper: 9, the most the formats take: ``K_MAX``); K is drawn
    uniformly in [k_min, k_max]. Imported rankings with K outside the range are rejected."""
    overlap: float = 0.25
    """Share of the ranked prompts that a second labeler ranks too, to measure inter-labeler
    agreement (agreement/overall, agreement/labeler/<id>). Simulated: a second training labeler
    and a held-out labeler (agreement/train_vs_train, agreement/heldout_vs_train); human: the
    task asks for two different labelers (each costs a second ranking, and both train the RM).
    Chosen by a stable hash of the prompt id. On the demo 0.25 gives 213 sets and a standard
    error of 1.4 points on the agreement (0.1: 83 sets, 2.4 points)."""
    wait: bool = True
    """Human labelers: stop with exit code 5 (awaiting labels) while ranking tasks are open;
    false: train on the rankings there are and report how many tasks are pending."""
    max_prompts: int | None = 3000
    """Rank at most this many RM prompts (train and valid splits); null: all."""
    demonstration_prompts: int = 0
    """Also rank this many SFT prompts (train and valid splits, a seeded choice) with their
    demonstration among K - 1 SFT samples: comparisons that show the reward model an answer
    better than SFT's (the paper's labelers ranked several models' outputs). 0 = off."""
    temperature: float = 1.0
    """Sampling temperature for the K responses."""
    temperatures: list[float] | None = None
    """Sample each prompt's candidates at these temperatures in turn (overrides ``temperature``),
    e.g. [1.0, 0.7]: the RM then also ranks answers like the ones PPO and the evaluation sample at
    0.7, not only the rougher ones at 1."""
    max_new_tokens: int = 48
    """Longest response sampled."""
    batch_size: int = 64
    """Prompts sampled together (KV cache, left padding)."""
    seed: int = 0
    """Seed of K, sampling, the overlap share and the simulated labelers."""

    def __post_init__(self) -> None:
        if self.labelers not in ("simulated", "human"):
            raise ConfigError(f"label.labelers={self.labelers!r}: choose 'simulated' or 'human'")
        if not K_MIN <= self.k_min <= self.k_max <= K_MAX:
            raise ConfigError(f"label.k_min={self.k_min}, k_max={self.k_max}: "
                              f"need {K_MIN} <= k_min <= k_max <= {K_MAX}")
        if not 0.0 <= self.overlap <= 1.0:
            raise ConfigError(f"label.overlap={self.overlap}: a share of prompts, in [0, 1]")
        if self.temperature <= 0:
            raise ConfigError(f"label.temperature={self.temperature} must be > 0")
        if self.temperatures is not None:
            if not isinstance(self.temperatures, list) or not self.temperatures or not all(
                    isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in self.temperatures):
                raise ConfigError(f"label.temperatures={self.temperatures!r}: a list of temperatures > 0, or null")
            self.temperatures = [float(t) for t in self.temperatures]
        if self.demonstration_prompts < 0:
            raise ConfigError(f"label.demonstration_prompts={self.demonstration_prompts} must be >= 0")
