"""Preferences: what a labeler answers, and the rule every ranking obeys.

On the ground floor (it imports nothing of the project) so that the simulated world, which
answers, and the labeling, training and stage code, which ask and read, share one definition.

A ranking of K responses lists indices into them, best first: a permutation of 0..K-1, with K
in ``K_MIN..K_MAX`` (``label.k_min..label.k_max`` narrow it). K = 2 is chosen/rejected data; the
paper ranked 4..9, and 9 is the most the formats take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

K_MIN, K_MAX = 2, 9


@dataclass(frozen=True)
class Ranking:
    """A labeler's ranking of K responses: `order` holds indices into them, best first."""

    order: list[int]
    labeler_id: str


@dataclass(frozen=True)
class Preference:
    """A pairwise choice: `winner` is 0 when response a is preferred, 1 when b is."""

    winner: int
    labeler_id: str


def is_permutation(ranking: Sequence[int], k: int) -> bool:
    """Whether ``ranking`` orders all ``k`` responses, each once: a permutation of 0..k-1."""
    return sorted(ranking) == list(range(k))
