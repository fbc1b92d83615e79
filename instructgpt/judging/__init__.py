"""Judges behind one interface: who says which model is better (``evaluate.judge``).

- ``simulated`` (``instructgpt.judging.simulated``): the seeded world's held-out labelers give
  the win rates, its gold judgements give helpfulness, well-formedness, hallucination,
  truthfulness, toxicity, compliance with harmful requests and gold utility; it also judges the PPO monitor's samples
  with the world's gold judgement (not the held-out labelers). The only way the evaluation
  reaches ``instructgpt.world``, imported only when selected.
- ``human`` (``instructgpt.judging.human``): blind pairwise tasks exported for people, answers
  imported from JSONL or Label Studio exports; win rates only.
- ``none``: no judge; proxy figures only, and the registry's champion does not move.

Proxy figures (reward-model score, KL from SFT, lengths, EOS rate, held-out demonstration loss,
alignment tax) need no judge: ``instructgpt.judging.proxy``. The champion rule:
``instructgpt.judging.decision``. The interface: ``instructgpt.judging.base``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from instructgpt.judging.base import JUDGES, Comparisons, Gold, Judge, Pair, win_rate_rows

__all__ = ["JUDGES", "Comparisons", "Gold", "Judge", "Pair", "make_judge", "win_rate_rows"]


def make_judge(kind: str, judgements: str | Path, seed: int = 0,
               training_labelers: Iterable[str] = ()) -> Judge:
    """The judge ``kind`` (``evaluate.judge``). ``judgements`` is ``inputs.judgements``: the
    simulated world's directory, or the directory of human answers; ``training_labelers`` are
    the ids of everyone who labeled training data (the human judge rejects their judgements)."""
    if kind == "simulated":
        from instructgpt.judging.simulated import SimulatedJudge

        return SimulatedJudge(judgements, seed)
    if kind == "human":
        from instructgpt.judging.human import HumanJudge

        return HumanJudge(judgements, training_labelers, seed)
    if kind == "none":
        from instructgpt.judging.none import NoJudge

        return NoJudge()
    from instructgpt.config import ConfigError

    raise ConfigError(f"evaluate.judge={kind!r}: choose one of {list(JUDGES)}")
