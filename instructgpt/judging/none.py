"""No judge: no win rates, no gold figures, no monitoring judgement; proxy figures only.

For a first run on your own data before anyone judges, or a run whose figures must not depend
on people. The registry's champion never moves without a judge's verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from instructgpt.judging.base import Comparisons, Gold, Pair


class NoJudge:
    """The judge that judges nothing (module docstring)."""

    name = "none"
    sources: dict[str, str] = {}

    def compare(self, pairs: Sequence[Pair]) -> Comparisons | None:
        return None

    def gold(self, prompt_ids: Sequence[str], responses: dict[str, list[str]]) -> Gold | None:
        return None

    def monitor(self, rows: Sequence[dict[str, Any]]) -> list[float] | None:
        return None
