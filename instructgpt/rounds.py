"""The ``rounds`` section of params.yaml: the paper's second round of comparisons.

A module of its own (it imports only `instructgpt.config`) because every stage module that has a
round-2 variant reads it: label, rm and ppo (tasks/rounds.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from instructgpt.config import ConfigError


@dataclass
class RoundsConfig:
    """``rounds``: the paper's second round of comparisons (section 3.5: the RM's comparisons
    include outputs of earlier PPO policies). With ``n: 2`` three more stages run after ppo:
    ``label_round2`` ranks candidate sets that mix the round-1 PPO-ptx policy's samples with
    SFT's (so the labelers see what PPO learned to do, and where it exploits the RM),
    ``rm_round2`` trains a new RM from the SFT model on both rounds' comparisons, and
    ``ppo_round2`` trains PPO-ptx again from SFT against it; evaluate then judges the round-2
    policy as the final one (and it against round 1's). The round-2 stages read the ``label``,
    ``rm`` and ``ppo`` sections too. With ``n: 1`` those stages write empty outputs and stop."""

    n: int = 1
    """1: one round (the default, what the demo measures); 2: a second round."""
    max_prompts: int | None = 1000
    """PPO prompts (train and valid splits, a seeded choice) ranked in round 2; null: all. PPO's
    own prompts, where its answers drift; the RM's prompts were ranked in round 1."""
    policy_share: float = 0.5
    """Share of each round-2 candidate set sampled from the round-1 PPO-ptx policy (copies of a
    prompt alternate between the policy and SFT); the rest from SFT."""

    def __post_init__(self) -> None:
        if self.n not in (1, 2):
            raise ConfigError(f"rounds.n={self.n}: 1 (one round) or 2 (the paper's second round)")
        if not 0.0 < self.policy_share <= 1.0:
            raise ConfigError(f"rounds.policy_share={self.policy_share}: a share in (0, 1]")
        if self.max_prompts is not None and self.max_prompts < 1:
            raise ConfigError(f"rounds.max_prompts={self.max_prompts}: at least 1, or null for all")
