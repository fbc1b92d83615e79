"""Simulated labelers (``label.labelers: simulated``): the world's training labelers rank.

The only module of `instructgpt.labeling` that imports `instructgpt.world`. Each candidate set
is ranked by one training labeler (picked from the prompt id and seed). On the overlap share
(``label.overlap``) a second, different training labeler and a held-out labeler rank the same
responses too: the training labelers' agreement (``agreement/train_vs_train``, also
``agreement/overall`` and ``agreement/labeler/<id>``) and the held-out labelers' agreement with
the first ranking (``agreement/heldout_vs_train``; paper: 72.6 ± 1.5 %). Both training labelers'
rankings are training data, as a human team's two rankings of an overlap task are; the held-out
labeler's only measures agreement.

Where the world is, the noise-free ceiling is measured too (``ceiling_metrics``): how often the
pool's noise-free utility orders a ranked pair as the labeler did. No reward model can agree with
noisy labels more often than the noise-free truth does; two noisy labelers agree less often.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from instructgpt.config import ConfigError
from instructgpt.labeling.agreement import agreement_metrics, pairwise_agreement
from instructgpt.labeling.protocol import CandidateSet, Collection
from instructgpt.progress import progress

SECOND_LABELER_SEED = 10**6  # seed offset of the second training labeler's ranking


class SimulatedLabelers:
    """`RankingLabelers` backed by the simulated world's labeler pools (``inputs.rankings``)."""

    def __init__(self, world_dir: str | Path, seed: int) -> None:
        from instructgpt.world import load_world

        try:
            world = load_world(world_dir)
        except FileNotFoundError as exc:
            raise ConfigError(
                f"label.labelers is 'simulated' but inputs.rankings ({world_dir}) holds no simulated world "
                f"({exc}); point inputs.rankings at the world (data/world), or set label.labelers: human "
                f"to import rankings from that directory") from exc
        self.train_pool, self.heldout_pool = world.training_labelers(), world.heldout_labelers()
        self.seed = seed

    def collect(self, sets: Sequence[CandidateSet]) -> Collection:
        from instructgpt.world.labelers_sim import stable_int

        out = Collection()
        overlap_rankings, train_vs_train, heldout_vs_train = [], [], []
        for s in progress(sets, total=len(sets), desc="label: rank", unit="prompt"):
            first = self.train_pool.rank(s.prompt_id, s.prompt, s.responses, seed=self.seed + s.position)
            record = {"prompt_id": s.prompt_id, "responses": s.responses, "ranking": list(first.order),
                      "labeler_id": first.labeler_id}
            out.rankings.append(record)
            if not s.overlap:
                continue
            others = [lab for lab in self.train_pool.labelers if lab.labeler_id != first.labeler_id]
            second_labeler = others[stable_int("overlap", s.prompt_id, self.seed) % len(others)]
            second = second_labeler.rank(s.prompt_id, s.prompt, s.responses,
                                         seed=self.seed + s.position + SECOND_LABELER_SEED)
            held = self.heldout_pool.rank(s.prompt_id, s.prompt, s.responses, seed=self.seed + s.position)
            second_record = {**record, "ranking": list(second.order), "labeler_id": second.labeler_id}
            out.rankings.append(second_record)
            overlap_rankings += [record, second_record]
            train_vs_train.append(pairwise_agreement(first.order, second.order))
            heldout_vs_train.append(pairwise_agreement(first.order, held.order))
        out.answered = len(sets)
        out.metrics.update(agreement_metrics(overlap_rankings))
        if train_vs_train:
            out.metrics["agreement/train_vs_train"] = float(np.mean(train_vs_train))
            out.metrics["agreement/heldout_vs_train"] = float(np.mean(heldout_vs_train))
        return out

    def ceiling(self, rows: Sequence[dict]) -> dict[str, float]:
        """The noise-free ceiling of ``rows`` (``ceiling_metrics``) by the training pool's utility."""
        return ceiling_metrics(self.train_pool.utility, rows)


def ceiling_metrics(utility, rows: Sequence[dict], prefix: str = "ceiling") -> dict[str, float]:
    """``<prefix>/noise_free_<split>``: the share of the ranked pairs of ``rows`` (comparisons.jsonl
    rows) whose order the labelers' noise-free utility ``utility(prompt_id, response)`` agrees with,
    per split and overall (ties count half). A reward model is measured on the same pairs against
    the same labels, so this is the accuracy it would reach if it knew the truth exactly."""
    by_split: dict[str, list[float]] = {}
    for r in rows:
        u = [utility(r["prompt_id"], resp) for resp in r["responses"]]
        order = r["ranking"]
        for i in range(len(order)):
            for j in range(i + 1, len(order)):
                a, b = u[order[i]], u[order[j]]
                by_split.setdefault(r.get("split", "all"), []).append(1.0 if a > b else 0.5 if a == b else 0.0)
    out = {f"{prefix}/noise_free_{split}": float(np.mean(v)) for split, v in by_split.items()}
    if by_split:
        out[f"{prefix}/noise_free"] = float(np.mean([x for v in by_split.values() for x in v]))
    return out
