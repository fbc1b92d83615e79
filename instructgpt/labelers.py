"""Moved to `instructgpt.labeling.protocol`; this alias keeps old imports working.

No project module imports it any more: import from `instructgpt.labeling` instead.
"""
from instructgpt.labeling.protocol import (  # noqa: F401
    HumanRankings,
    Labelers,
    Preference,
    Ranking,
    RankingNotFound,
    write_rankings,
)
