"""Labelers behind one interface: simulated or human, with Label Studio as the human front end.

- `protocol`: the interfaces (`Labelers`: rank/prefer one question; `RankingLabelers`: collect
  rankings for candidate sets) and `HumanRankings`;
- `formats`: the exchange formats (rankings, ranking tasks, Label Studio exports; the judge's
  tasks and judgements are `instructgpt.judging.human`'s);
- `validation`: imported rankings checked against the prompt log, each rejection with a reason;
- `agreement`: inter-labeler agreement, overall and per labeler;
- `sampling`: K distinct SFT samples per RM prompt (what every labeler ranks);
- `simulated`, `human`: the two `RankingLabelers` (``label.labelers``);
- `config`: `LabelConfig`, the ``label`` stage's params;
- `run`: the label step the ``label`` stage calls;
- `studio`, `service`, ``python -m instructgpt.labeling push|pull``: Label Studio (a separate
  local service in its own venv) as the labelers' interface.

This package imports only `protocol` and `formats` on import; `instructgpt.world` is imported by
`simulated` alone.
"""
from instructgpt.labeling.formats import write_rankings
from instructgpt.labeling.protocol import (
    CandidateSet,
    Collection,
    HumanRankings,
    Labelers,
    RankingLabelers,
    RankingNotFound,
)

__all__ = ["CandidateSet", "Collection", "HumanRankings", "Labelers", "RankingLabelers", "RankingNotFound",
           "write_rankings"]
