"""Human labelers (``label.labelers: human``): rankings people gave, and tasks for what is missing.

Rankings come from ``inputs.rankings`` (a directory such as ``labels/rankings/`` of JSONL files
and Label Studio JSON exports; formats in `instructgpt.labeling.formats`) and are checked against
the prompt log (`instructgpt.labeling.validation`). Every candidate set (K distinct SFT samples of
an RM prompt, the same ones the simulated labelers would rank) becomes a ranking task unless
it already has its rankings:

- a task needs one labeler, or two different labelers on the overlap share (``label.overlap``);
- a prompt that already has a usable ranking of *other* responses (rankings a team brought
  along) gets no task: it is labelled;
- the tasks still open go to ``labels/outbox/rank_tasks.jsonl`` (written by the label stage).

Every usable ranking is training data, both rankings of an overlap task included; the overlap
rankings also give the agreement figures (`instructgpt.labeling.agreement`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from instructgpt.config import ConfigError
from instructgpt.labeling.agreement import agreement_metrics
from instructgpt.labeling.formats import read_rankings
from instructgpt.labeling.protocol import CandidateSet, Collection
from instructgpt.labeling.validation import PromptIndex, rejection_metrics, validate_rankings


class HumanLabelers:
    """`RankingLabelers` answering from the rankings in ``rankings_dir``."""

    def __init__(self, rankings_dir: str | Path, index: PromptIndex, k_min: int, k_max: int,
                 missing_ok: bool = False) -> None:
        self.path = Path(rankings_dir)
        if not self.path.exists() and not missing_ok:
            raise ConfigError(f"inputs.rankings ({self.path}) does not exist: create the directory "
                              f"(e.g. labels/rankings/) that people's rankings go into")
        if (self.path / "world.json").exists() or (self.path / "world" / "world.json").exists():
            raise ConfigError(f"label.labelers is 'human' but inputs.rankings ({self.path}) is the simulated "
                              f"world: point inputs.rankings at the directory of human rankings "
                              f"(labels/rankings), or set label.labelers: simulated")
        self.index, self.k_min, self.k_max = index, k_min, k_max

    def brought_along(self) -> set[str]:
        """Prompts with a usable ranking that answers no exported task: rankings the team brought.
        They need no SFT samples, so the label stage does not sample for them. Answers to
        exported tasks (with ``task_id``) do not count here: the prompts sampled, and therefore
        the task ids, stay the same while people answer."""
        records, _ = read_rankings(self.path)
        usable, _ = validate_rankings(records, self.index, self.k_min, self.k_max)
        return {r["prompt_id"] for r in usable if not r.get("task_id")}

    def collect(self, sets: Sequence[CandidateSet]) -> Collection:
        records, rejected = read_rankings(self.path)
        usable, invalid = validate_rankings(records, self.index, self.k_min, self.k_max)
        out = Collection(rankings=usable, rejected=rejected + invalid)
        labelers_of: dict[tuple[str, frozenset], set[str]] = defaultdict(set)
        for r in usable:
            labelers_of[(r["prompt_id"], frozenset(r["responses"]))].add(r["labeler_id"])
        ranked_prompts = {r["prompt_id"] for r in usable}
        covered = 0
        for s in sets:
            done = sorted(labelers_of.get((s.prompt_id, frozenset(s.responses)), set()))
            needed = 2 if s.overlap else 1
            if not done and s.prompt_id in ranked_prompts:
                covered += 1  # ranked on other responses (brought along): labelled, no task
                continue
            if len(done) >= needed:
                out.answered += 1
                continue
            out.tasks.append({"task_id": s.task_id, "prompt_id": s.prompt_id, "prompt": s.prompt,
                              "responses": list(s.responses), "labelers_needed": needed, "answered_by": done})
        out.metrics.update({
            "rankings/read": len(records) + sum(1 for r in rejected),
            "rankings/used": len(usable),
            "rankings/used_other_dataset": sum(1 for r in usable if r["dataset"] != "rm"),
            "tasks/total": len(sets),
            "tasks/answered": out.answered,
            "tasks/pending": len(out.tasks),
            "tasks/covered_by_other_rankings": covered,
            "labelers": len({r["labeler_id"] for r in usable}),
        })
        out.metrics.update(rejection_metrics(out.rejected))
        out.metrics.update(agreement_metrics(usable))
        return out
