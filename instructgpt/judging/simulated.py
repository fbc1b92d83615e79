"""The simulated judge: the seeded world's held-out labelers and its gold judgements.

The only place where the evaluation (and the PPO monitor's scoring) reads the simulated world
(``instructgpt.world``); it is imported only when params select ``evaluate.judge: simulated``.

- win rates: the world's HELD-OUT labeler pool (never used for training data) compares the two
  responses of each pair, one labeler picked per prompt, seeded by ``seed + index``;
- gold: the world's gold judgement of every response (helpful, hallucinated on closed-domain
  tasks, truthful on open QA, toxic, complied with a harmful request, well-formed: only words
  of the world and a proper ending) and the held-out pool's mean noise-free utility ("gold
  utility");
- monitor: the world's gold judgement alone, helpful + honest + harmless (0 to 3), with no
  labeler's weights, length taste or noise: neither the training labelers behind the reward
  model nor the held-out labelers behind the win rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from instructgpt.judging.base import Comparisons, Gold, Pair
from instructgpt.progress import progress


class SimulatedJudge:
    """Judge backed by the simulated world read from ``world_dir`` (``inputs.judgements``)."""

    name = "simulated"
    sources = {
        "win_rate": "simulated: the world's held-out labelers (never used for training data)",
        "gold": "simulated: the world's gold judgements; gold utility = mean utility of the held-out labelers",
        "monitor": "simulated: the world's gold judgement, helpful + honest + harmless (0-3), no labeler",
    }

    def __init__(self, world_dir: str | Path, seed: int = 0) -> None:
        from instructgpt.world import load_world

        try:
            self.world = load_world(world_dir)
        except FileNotFoundError as exc:
            from instructgpt.config import ConfigError

            raise ConfigError(f"evaluate.judge: simulated needs the simulated world at inputs.judgements "
                              f"({world_dir}): {exc}. With your own data choose evaluate.judge: human "
                              f"(inputs.judgements: labels/judgements) or none") from None
        self.seed = seed
        self.heldout = self.world.heldout_labelers()

    def compare(self, pairs: Sequence[Pair]) -> Comparisons:
        """Held-out labelers' preferences; identical responses are a tie."""
        outcomes: list[float | None] = []
        rows = []
        for p in progress(pairs, total=len(pairs), desc="evaluate: held-out labelers", unit="pair"):
            if p.candidate == p.baseline:
                outcome, judge_id = 0.5, None
            else:
                pref = self.heldout.prefer(p.prompt_id, p.prompt, p.candidate, p.baseline, seed=self.seed + p.index)
                outcome, judge_id = float(pref.winner == 0), pref.labeler_id
            outcomes.append(outcome)
            rows.append({"comparison": p.comparison, "prompt_id": p.prompt_id, "outcome": outcome,
                         "identical": p.candidate == p.baseline, "judges": [judge_id] if judge_id else []})
        return Comparisons(list(pairs), outcomes, rows=rows, counts={"pairs": len(pairs)})

    def gold(self, prompt_ids: Sequence[str], responses: dict[str, list[str]]) -> Gold:
        """Gold judgements and gold utility of every model's responses (keys ``<model>/<figure>``).
        A response None (no labeler's demonstration for that prompt) is left out of its model's
        figures: counted as an empty answer it would drag them down."""
        world = self.world
        metrics: dict[str, float] = {}
        fam_rows = []
        for name, texts in progress(responses.items(), total=len(responses), desc="evaluate: gold", unit="model"):
            answered = [(pid, r) for pid, r in zip(prompt_ids, texts) if r is not None]
            if not answered:
                continue
            judgements = [world.judge(pid, r) for pid, r in answered]
            util = [self.heldout.utility(pid, r) for pid, r in answered]
            closed = [j for j in judgements if j.family in world.closed_domain]
            open_qa = [j for j in judgements if j.family == "open_qa"]
            harmful = [j for j in judgements if j.family == "harmful"]
            metrics[f"{name}/gold_utility"] = float(np.mean(util))
            metrics[f"{name}/helpful"] = float(np.mean([j.helpful for j in judgements]))
            metrics[f"{name}/hallucination_rate"] = float(np.mean([j.hallucinated for j in closed])) if closed else 0.0
            metrics[f"{name}/truthful_open_qa"] = float(np.mean([j.honest for j in open_qa])) if open_qa else 0.0
            metrics[f"{name}/toxic_rate"] = float(np.mean([j.toxic for j in judgements]))
            metrics[f"{name}/well_formed_rate"] = float(np.mean([j.well_formed for j in judgements]))
            metrics[f"{name}/harmful_compliance_rate"] = (
                float(np.mean([j.complied_harmful for j in harmful])) if harmful else 0.0)
            fam_rows += [{"model": name, "family": j.family, "utility": u} for j, u in zip(judgements, util)]
        per_family = pd.DataFrame(fam_rows).pivot_table(index="family", columns="model", values="utility",
                                                         aggfunc="mean")
        return Gold(metrics, per_family)

    def monitor(self, rows: Sequence[dict[str, Any]]) -> list[float]:
        """helpful + honest + harmless of each monitored sample (its ``prompt_id``, ``response``)."""
        out = []
        for r in rows:
            j = self.world.judge(str(r["prompt_id"]), str(r["response"]))
            out.append(float(j.helpful + j.honest + j.harmless))
        return out
