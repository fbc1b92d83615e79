"""Win rates with confidence intervals (paper section 4: labeler preference against a baseline)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Sequence


@dataclass(frozen=True)
class WinRate:
    """Share of comparisons the candidate won, with a 95 % Wilson score interval."""

    wins: float
    n: int
    rate: float
    low: float
    high: float

    def excludes(self, value: float) -> bool:
        """True when ``value`` lies outside the interval (e.g. 0.5: a real difference)."""
        return not (self.low <= value <= self.high)


def wilson_interval(wins: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion wins/n (ties count half a win)."""
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def win_rate(outcomes: Sequence[float]) -> WinRate:
    """Outcomes are 1 (candidate preferred), 0 (baseline preferred) or 0.5 (tie)."""
    n = len(outcomes)
    wins = float(sum(outcomes))
    low, high = wilson_interval(wins, n)
    return WinRate(wins=wins, n=n, rate=wins / n if n else 0.0, low=low, high=high)


def should_promote(vs_champion: WinRate | None) -> bool:
    """The champion rule: promote when there is no champion yet, or when the candidate's win rate
    against the champion is above 50 % with its interval excluding 50 % (a tie never promotes)."""
    if vs_champion is None:
        return True
    return vs_champion.rate > 0.5 and vs_champion.low > 0.5
