"""The reward over-optimisation curve from the PPO monitor's samples.

During PPO the policy answers a few validation-split prompts of the PPO dataset every
``ppo.sample_every`` steps (``outputs/<ppo>/monitor.jsonl``: prompt_id, response, step, kl,
rm_score). The evaluation adds a MONITORING judgement of each sample when the judge has one
(simulated: the world's gold judgement, never the held-out labelers behind the win rates) and
averages per step: when the RM score keeps rising with the KL while the gold judgement stalls or
falls, the policy exploits the reward model: that is where to stop (or raise the KL penalty).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

COLUMNS = ["model", "step", "n", "kl", "rm_score", "gold_utility"]


def overoptimisation_curve(rows_by_model: dict[str, Sequence[dict[str, Any]]],
                           gold_by_model: dict[str, Sequence[float] | None]) -> pd.DataFrame:
    """Per model and step: samples, mean KL, mean RM score, mean gold utility (NaN without one)."""
    frames = []
    for model, rows in rows_by_model.items():
        if not rows:
            continue
        df = pd.DataFrame(list(rows))[["step", "kl", "rm_score"]].astype(float)
        gold = gold_by_model.get(model)
        df["gold_utility"] = list(gold) if gold is not None else float("nan")
        agg = df.groupby("step").agg(n=("kl", "size"), kl=("kl", "mean"), rm_score=("rm_score", "mean"),
                                     gold_utility=("gold_utility", "mean")).reset_index()
        agg.insert(0, "model", model)
        frames.append(agg)
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(frames, ignore_index=True)[COLUMNS]
    out["step"] = out["step"].astype(int)
    return out
