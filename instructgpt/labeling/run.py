"""The label step: candidate sets from the SFT model, ranked by the labelers params select.

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
from instructgpt.labeling.config import LabelConfig
from instructgpt.labeling.protocol import Collection, RankingLabelers
from instructgpt.labeling.sampling import Sampler, candidate_sets, demonstration_sets, select_prompts, sft_sampler
from instructgpt.labeling.validation import PromptIndex


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
    """Rank K distinct SFT samples of the RM prompts with the configured labelers (``cfg``: the
    ``label`` section), and on at most ``cfg.demonstration_prompts`` prompts of
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
