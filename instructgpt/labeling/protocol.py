"""The labeler interfaces: what the label stage and the evaluation ask of labelers.

Two levels:

- `Labelers` answers one question at a time, synchronously (`rank` K responses, `prefer` one of
  two). The simulated pools of `instructgpt.world` implement it (`world.training_labelers()`,
  `world.heldout_labelers()`), and so does `HumanRankings`, which answers from rankings people
  already gave (it cannot rank new outputs).
- `RankingLabelers` is what the label stage selects with ``label.labelers``: given the candidate
  sets (K distinct SFT samples per RM prompt) it *collects* rankings and reports what it could
  not (tasks still waiting for people, rejected answers). `instructgpt.labeling.simulated` and
  `instructgpt.labeling.human` implement it.

Rankings file format (one JSON object per line; more in `instructgpt.labeling.formats`)::

    {"prompt_id": "p0000042", "responses": ["...", "...", "..."], "ranking": [2, 0, 1],
     "labeler_id": "alice"}

`ranking` lists indices into `responses`, best first, and must be a permutation of 0..K-1
(K = 2..9: `instructgpt.preferences`, which also holds the answers `Ranking` and `Preference`). Responses are decoded model
outputs with the EOS token stripped; they may be empty. A prompt may appear on several lines
(several response sets, or several labelers).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from instructgpt.labeling.formats import read_rankings, where
from instructgpt.preferences import Preference, Ranking, is_permutation

__all__ = ["Labelers", "RankingLabelers", "CandidateSet", "Collection",
           "HumanRankings", "RankingNotFound"]


@runtime_checkable
class Labelers(Protocol):
    def rank(self, prompt_id: str, prompt: str, responses: Sequence[str], seed: int) -> Ranking:
        """Rank `responses` to `prompt`, best first. Deterministic in all arguments."""
        ...

    def prefer(self, prompt_id: str, prompt: str, a: str, b: str, seed: int) -> Preference:
        """Say which of two responses to `prompt` is better. Deterministic in all arguments."""
        ...


@dataclass(frozen=True)
class CandidateSet:
    """K distinct responses to one prompt, waiting to be ranked (one ranking task)."""

    prompt_id: str
    prompt: str
    responses: list[str]
    task_id: str
    """Stable hash of prompt_id and responses (`instructgpt.labeling.formats.task_id`)."""
    overlap: bool = False
    """Ranked by a second labeler too, to measure inter-labeler agreement (``label.overlap``)."""
    position: int = 0
    """Index of the prompt among the sampled ones (seeds the simulated labelers)."""


@dataclass
class Collection:
    """What a `RankingLabelers` gathered for the candidate sets (and from imported files)."""

    rankings: list[dict[str, Any]] = field(default_factory=list)
    """Usable rankings (training data): prompt_id, responses, ranking, labeler_id."""
    rejected: list[dict[str, Any]] = field(default_factory=list)
    """Answers that cannot be used: reason, detail, file, line (``outputs/label/rejected.jsonl``)."""
    tasks: list[dict[str, Any]] = field(default_factory=list)
    """Ranking tasks still waiting for people (``labels/outbox/rank_tasks.jsonl``)."""
    answered: int = 0
    """Tasks that have all the rankings they need."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Agreement and counts to report (``agreement/...``, ``rankings/...``, ``rejected/...``)."""

    @property
    def pending(self) -> int:
        return len(self.tasks)


@runtime_checkable
class RankingLabelers(Protocol):
    """The labelers ``label.labelers`` selects: simulated or human."""

    def collect(self, sets: Sequence[CandidateSet]) -> Collection:
        """Rankings of ``sets`` (and any other usable rankings this source holds)."""
        ...


class RankingNotFound(KeyError):
    """The imported rankings hold no ranking for this prompt and response set."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class HumanRankings:
    """`Labelers` backed by an imported `rankings.jsonl` (format in the module docstring).

    Human data cannot rank new outputs, so `rank` only answers for a prompt id and a response
    set present in the file (in any order: the ranking is mapped onto the order asked for);
    `prefer` answers when both responses were ranked together. `seed` is ignored.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._by_prompt: dict[str, list[tuple[list[str], list[int], str]]] = {}
        if not self.path.exists():
            raise FileNotFoundError(f"no rankings file {self.path}")
        records, rejected = read_rankings(self.path)
        if rejected:
            raise ValueError(rejected[0]["detail"])
        for rec in records:
            responses, ranking = rec["responses"], rec["ranking"]
            if not is_permutation(ranking, len(responses)):
                raise ValueError(
                    f"{where(rec['_source'])}: ranking {ranking} is not a permutation of "
                    f"0..{len(responses) - 1} for prompt {rec['prompt_id']!r}")
            self._by_prompt.setdefault(rec["prompt_id"], []).append((responses, ranking, rec["labeler_id"]))

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_prompt.values())

    def prompt_ids(self) -> list[str]:
        return sorted(self._by_prompt)

    def _entries(self, prompt_id: str) -> list[tuple[list[str], list[int], str]]:
        if prompt_id not in self._by_prompt:
            raise RankingNotFound(f"no human ranking for prompt_id {prompt_id!r} in {self.path}")
        return self._by_prompt[prompt_id]

    def rank(self, prompt_id: str, prompt: str, responses: Sequence[str], seed: int) -> Ranking:
        asked = list(responses)
        for stored, ranking, labeler in self._entries(prompt_id):
            if sorted(stored) == sorted(asked):
                # Map "best stored index first" onto the caller's positions.
                positions: dict[str, list[int]] = {}
                for i, r in enumerate(asked):
                    positions.setdefault(r, []).append(i)
                return Ranking([positions[stored[j]].pop(0) for j in ranking], labeler)
        raise RankingNotFound(
            f"prompt_id {prompt_id!r} is in {self.path} but not with this set of "
            f"{len(asked)} responses; human rankings can only answer for ranked response sets")

    def prefer(self, prompt_id: str, prompt: str, a: str, b: str, seed: int) -> Preference:
        for stored, ranking, labeler in self._entries(prompt_id):
            if a in stored and b in stored and a != b:
                place = {stored[j]: pos for pos, j in enumerate(ranking)}
                return Preference(0 if place[a] < place[b] else 1, labeler)
        raise RankingNotFound(
            f"prompt_id {prompt_id!r}: these two responses were never ranked together in {self.path}")

