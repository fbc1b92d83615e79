"""The label step: candidate sets from the SFT model, ranked by the labelers params select; its
config is `LabelConfig` (params.yaml section ``label``).

`label` is what the ``label`` stage calls (tasks/label.py only reads params, gates and writes):

1. at most ``label.max_prompts`` RM prompts (train and valid splits), K in [k_min, k_max];
2. K distinct SFT samples per prompt (`instructgpt.labeling.sampling`), and on up to
   ``label.demonstration_prompts`` SFT prompts K - 1 samples with the labelers' demonstration;
3. ``label.labelers`` ranks them: ``simulated`` (`instructgpt.labeling.simulated`) or
   ``human`` (`instructgpt.labeling.human`: imported rankings, tasks for what is missing);
4. the usable rankings become the comparisons the reward model trains on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from instructgpt.config import ConfigError
from instructgpt.labeling.protocol import Collection, RankingLabelers
from instructgpt.labeling.sampling import Sampler, candidate_sets, demonstration_sets, select_prompts, sft_sampler
from instructgpt.labeling.validation import PromptIndex


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
    """Most responses ranked for one prompt (paper: 9, the most the formats take); K is drawn
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
        if not 2 <= self.k_min <= self.k_max <= 9:
            raise ConfigError(f"label.k_min={self.k_min}, k_max={self.k_max}: need 2 <= k_min <= k_max <= 9")
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


@dataclass
class LabelResult:
    """Comparisons for the reward model, and everything to report about how they were collected."""

    comparisons: list[dict[str, Any]]
    """prompt_id, user_id, split, prompt, responses, ranking, labeler_id (outputs/label/comparisons.jsonl)."""
    collection: Collection
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return self.collection.tasks

    @property
    def rejected(self) -> list[dict[str, Any]]:
        return self.collection.rejected


def make_labelers(cfg: LabelConfig, rankings: str | Path, index: PromptIndex) -> RankingLabelers:
    """The `RankingLabelers` ``label.labelers`` names (``simulated`` or ``human``)."""
    if cfg.labelers == "simulated":
        from instructgpt.labeling.simulated import SimulatedLabelers

        return SimulatedLabelers(rankings, cfg.seed)
    if cfg.labelers == "human":
        from instructgpt.labeling.human import HumanLabelers

        return HumanLabelers(rankings, index, cfg.k_min, cfg.k_max)
    raise ConfigError(f"label.labelers={cfg.labelers!r}: choose 'simulated' or 'human'")


def label(cfg: LabelConfig, rm_prompts: pd.DataFrame, index: PromptIndex, rankings: str | Path,
          sft_model: str | Path = "outputs/sft/model", sampler: Sampler | None = None,
          device: str = "cpu", demonstrated: pd.DataFrame | None = None,
          labelers: RankingLabelers | None = None) -> LabelResult:
    """Rank K distinct SFT samples of the RM prompts with the configured labelers (``cfg``: a
    `LabelConfig`), and on at most ``cfg.demonstration_prompts`` prompts of
    ``demonstrated`` (prompt_id, text, response: SFT prompts and their demonstrations) K - 1 SFT
    samples with the demonstration among them. ``sampler`` replaces the SFT model (round 2: a mix
    with the policy's; tests), ``labelers`` the ones ``cfg`` names (round 2's people)."""
    labelers = labelers or make_labelers(cfg, rankings, index)  # a wrong inputs.rankings fails before sampling
    selected = select_prompts(rm_prompts, cfg.max_prompts, cfg.seed)
    brought = labelers.brought_along() if hasattr(labelers, "brought_along") else set()
    n_brought = int(selected["prompt_id"].isin(brought).sum()) if brought else 0
    if n_brought:  # ranked already (human rankings brought along): nothing to sample or ask
        selected = selected[~selected["prompt_id"].isin(brought)].reset_index(drop=True)
    sampler = sampler or sft_sampler(str(sft_model), cfg.max_new_tokens, cfg.temperatures or cfg.temperature,
                                     cfg.batch_size, cfg.seed, device)
    sets, dropped = candidate_sets(selected, cfg.k_min, cfg.k_max, cfg.seed, sampler, cfg.overlap)
    with_demo: list = []
    if cfg.demonstration_prompts and demonstrated is not None and len(demonstrated):
        chosen = select_prompts(demonstrated, cfg.demonstration_prompts, cfg.seed)
        if brought:
            chosen = chosen[~chosen["prompt_id"].isin(brought)].reset_index(drop=True)
        with_demo, dropped_demo = demonstration_sets(chosen, cfg.k_min, cfg.k_max, cfg.seed, sampler, cfg.overlap,
                                                     first_position=len(selected))
        dropped += dropped_demo
    collection = labelers.collect(sets + with_demo)
    rows = [comparison_row(r, index) for r in collection.rankings]
    ks = [len(r["responses"]) for r in rows]
    metrics: dict[str, float] = {
        "comparisons": len(rows),
        "pairs": int(sum(k * (k - 1) // 2 for k in ks)),
        "mean_k": float(np.mean(ks)) if ks else 0.0,
        "prompts_in": len(rm_prompts),
        "dropped_too_few_distinct": dropped,
        "overlap_sets": sum(1 for s in sets + with_demo if s.overlap),
        "sets_with_demonstration": len(with_demo),
        "tasks/skipped_ranked_already": n_brought,
        "rejected/total": 0,
        **collection.metrics,
    }
    if hasattr(labelers, "ceiling"):  # where a ground truth exists (the simulated world)
        metrics.update(labelers.ceiling(rows))
    return LabelResult(rows, collection, metrics)


def comparison_row(ranking: dict[str, Any], index: PromptIndex) -> dict[str, Any]:
    """A ranking as a comparisons.jsonl row, with the prompt's user, split and text from the log."""
    kept = index.kept[ranking["prompt_id"]]
    return {"prompt_id": ranking["prompt_id"], "user_id": kept["user_id"], "split": kept["split"],
            "prompt": kept["text"], "responses": list(ranking["responses"]),
            "ranking": [int(i) for i in ranking["ranking"]], "labeler_id": ranking["labeler_id"]}
