"""The registry's champion rule: the champion moves only on the configured judge's verdict.

- judge ``none``: the champion never moves (no verdict; the candidate is still registered);
- a verdict still incomplete (human judge with ``evaluate.wait: false`` and pending tasks):
  no move until every task the decision needs is answered;
- no champion yet: the first candidate that a judge evaluated becomes champion (there is no
  older policy to beat; the win rates against SFT and base are in the report);
- otherwise: the candidate's win rate against the current champion, from the configured
  judge, must be above 50 % with its 95 % interval excluding 50 % (a tie never promotes).
"""

from __future__ import annotations

from dataclasses import dataclass

from instructgpt.winrate import WinRate, should_promote

RULE_NO_JUDGE = "no judge: the champion does not move"
RULE_INCOMPLETE = "judge's verdict incomplete: the champion does not move"
RULE_FIRST = "no champion yet"
RULE_VERSUS = "win rate vs champion > 50% with 95% CI excluding 50%"


@dataclass(frozen=True)
class Decision:
    """Whether the champion moves, the rule applied and why, in words."""

    move: bool
    rule: str
    reason: str


def champion_decision(judge: str, has_champion: bool, versus: WinRate | None, pending: int) -> Decision:
    """Apply the rule (module docstring). ``versus``: the candidate's win rate against the
    champion by ``judge`` (None without a champion or a judge); ``pending``: pairs the decision
    needs that have no verdict yet (vs the champion; everything when there is no champion)."""
    if judge == "none":
        return Decision(False, RULE_NO_JUDGE,
                        "evaluate.judge is none: no judge compared the candidate with anything, so the "
                        "champion stays where it is (none yet, or the current one)")
    if pending:
        return Decision(False, RULE_INCOMPLETE,
                        f"{pending} comparison(s) the decision needs are not judged yet (evaluate.wait: false); "
                        f"answer them and run again")
    if not has_champion:
        return Decision(True, RULE_FIRST, f"there is no champion yet: the first candidate evaluated by a judge "
                                          f"({judge}) becomes champion")
    if versus is None or versus.n == 0:
        return Decision(False, RULE_INCOMPLETE, "no judged comparison with the champion")
    moved = should_promote(versus)
    return Decision(moved, RULE_VERSUS,
                    f"{judge} judge: candidate wins {versus.rate:.1%} against the champion "
                    f"(95% CI {versus.low:.1%} - {versus.high:.1%}, n = {versus.n}): "
                    + ("above 50% with the interval excluding 50%" if moved else "not clearly better"))
