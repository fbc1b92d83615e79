"""The judge interface: what the evaluation asks of whoever judges the models.

A judge answers three questions, each optional (``None``: this judge cannot say):

- ``compare(pairs)``: which of two responses to a prompt is better, for every pair of every
  comparison (candidate vs baseline) -> per comparison the outcomes 1 (candidate preferred),
  0 (baseline preferred), 0.5 (tie), and how many pairs still wait for a verdict;
- ``gold(prompt_ids, responses)``: absolute judgements per model (helpfulness, well-formedness,
  hallucination, truthfulness, toxicity, compliance with harmful requests, utility) where
  ground truth exists;
- ``monitor(rows)``: a judgement of the PPO monitor's samples (over-optimisation curve) that is
  NOT the judge producing the win rates, so that watching training never uses the evaluation's
  judge.

Figures that need no judge (reward-model score, KL from SFT, lengths, losses) are proxies,
computed in ``instructgpt.judging.proxy`` whatever the judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from instructgpt.winrate import WinRate, win_rate

JUDGES = ("simulated", "human", "none")


@dataclass(frozen=True)
class Pair:
    """One pairwise question: the candidate's and the baseline's response to one prompt."""

    comparison: str
    """Name of the comparison, ``<candidate>_vs_<baseline>`` (e.g. ``ppo_vs_sft``)."""
    prompt_id: str
    prompt: str
    candidate: str
    baseline: str
    index: int
    """Position of the prompt in the evaluation's prompt list (the simulated labelers' seed
    offset, as before the judges existed: the same models give the same win rates)."""


@dataclass
class Comparisons:
    """A judge's verdicts on a list of pairs.

    ``outcomes[i]`` belongs to ``pairs[i]``: 1.0 candidate preferred, 0.0 baseline preferred,
    0.5 tie (identical responses are always a tie), None not judged yet (human judge, pending)."""

    pairs: list[Pair]
    outcomes: list[float | None]
    pending_tasks: int = 0
    """Exported tasks without a usable answer (human judge); 0 for judges that answer at once."""
    answered_tasks: int = 0
    """Exported tasks with at least one usable answer (human judge)."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """One audit row per pair: comparison, prompt_id, outcome, who judged; for the human judge
    also the hidden mapping (task_id, which side the candidate was shown on)."""
    tasks: list[dict[str, Any]] = field(default_factory=list)
    """Blind tasks to export for people (human judge); empty otherwise."""
    judgements: list[dict[str, Any]] = field(default_factory=list)
    """Every imported judgement with its status (used / rejected) and reason (human judge)."""
    counts: dict[str, float] = field(default_factory=dict)
    """Figures about the judging itself for the stage's metrics (imported, used, rejected by
    reason, agreement between judges ...)."""

    def pending(self, comparison: str | None = None) -> int:
        """Pairs of ``comparison`` (all when None) without a verdict."""
        return sum(1 for p, o in zip(self.pairs, self.outcomes)
                   if o is None and (comparison is None or p.comparison == comparison))

    def win_rate(self, comparison: str) -> WinRate:
        """The candidate's win rate over the judged pairs of ``comparison`` (ties count half)."""
        return win_rate([o for p, o in zip(self.pairs, self.outcomes)
                         if p.comparison == comparison and o is not None])


@dataclass
class Gold:
    """Absolute judgements per model: ``metrics`` keyed ``<model>/<figure>``, and the mean
    utility per task family (rows: family, columns: model)."""

    metrics: dict[str, float]
    per_family: pd.DataFrame


@runtime_checkable
class Judge(Protocol):
    """What the evaluate stage asks of a judge (module docstring)."""

    name: str
    """``simulated``, ``human`` or ``none`` (params.yaml ``evaluate.judge``)."""
    sources: dict[str, str]
    """What produced each family of figures, for metrics.json and the report: keys
    ``win_rate``, ``gold`` and ``monitor``; a family this judge cannot give is absent."""

    def compare(self, pairs: Sequence[Pair]) -> Comparisons | None: ...

    def gold(self, prompt_ids: Sequence[str], responses: dict[str, list[str | None]]) -> Gold | None:
        """Absolute figures per model; a response None (no answer for that prompt, e.g. no
        labeler's demonstration) is left out of that model's figures."""
        ...

    def monitor(self, rows: Sequence[dict[str, Any]]) -> list[float] | None: ...


def win_rate_rows(result: Comparisons | None, comparisons: Sequence[str], judge: str) -> list[dict[str, Any]]:
    """One row per comparison: win rate, 95 % interval, judged pairs, pending pairs, judge."""
    if result is None:
        return []
    rows = []
    for key in comparisons:
        wr = result.win_rate(key)
        rows.append({"comparison": key, "win_rate": wr.rate, "low": wr.low, "high": wr.high, "n": wr.n,
                     "pending": result.pending(key), "judge": judge})
    return rows
