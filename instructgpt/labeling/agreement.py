"""Inter-labeler agreement as the paper measured it (section 3.4 and appendix B.1).

Two labelers who ranked the same K responses to the same prompt agree on a pair of responses
when both put the same one first; their agreement is the share of the C(K,2) pairs they order
the same way. The paper reports 72.6 ± 1.5 % between training labelers and 77.3 ± 1.3 % between
held-out labelers (and held-out with training labelers at a similar rate).

The label stage has a share ``label.overlap`` of the ranked prompts ranked by a second labeler.
Every pair of rankings of one response set by two different labelers counts once:

- ``agreement/overall``: the mean over all such pairs;
- ``agreement/labeler/<id>``: the mean over the pairs that involve labeler ``<id>`` (who agrees
  least with the others: a labeler to retrain, or instructions to clarify);
- ``agreement/sets`` and ``agreement/pairs``: how many response sets and pairs were compared.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from typing import Any


def pairwise_agreement(a: Sequence[int], b: Sequence[int]) -> float:
    """Share of the C(K,2) pairs that two best-first rankings of the same K items order the same way."""
    if sorted(a) != sorted(b):
        raise ValueError(f"rankings {list(a)} and {list(b)} do not rank the same items")
    pos_a = {x: i for i, x in enumerate(a)}
    pos_b = {x: i for i, x in enumerate(b)}
    pairs = list(combinations(sorted(pos_a), 2))
    if not pairs:
        raise ValueError("agreement needs at least two ranked items")
    same = sum((pos_a[x] < pos_a[y]) == (pos_b[x] < pos_b[y]) for x, y in pairs)
    return same / len(pairs)


def ranking_by_text(responses: Sequence[str], ranking: Sequence[int]) -> list[str]:
    """The responses best first: comparable across two rankings that listed them in other orders."""
    return [responses[i] for i in ranking]


def agreement_pairs(rankings: Sequence[dict[str, Any]]) -> list[tuple[str, str, float]]:
    """(labeler a, labeler b, agreement) for every pair of rankings of one response set to one
    prompt by two different labelers."""
    groups: dict[tuple[str, frozenset], list[dict[str, Any]]] = defaultdict(list)
    for r in rankings:
        groups[(str(r["prompt_id"]), frozenset(r["responses"]))].append(r)
    out = []
    for members in groups.values():
        for x, y in combinations(members, 2):
            if x["labeler_id"] == y["labeler_id"]:
                continue
            order_x = ranking_by_text(x["responses"], x["ranking"])
            order_y = ranking_by_text(y["responses"], y["ranking"])
            index = {text: i for i, text in enumerate(order_x)}
            out.append((x["labeler_id"], y["labeler_id"],
                        pairwise_agreement(list(range(len(order_x))), [index[t] for t in order_y])))
    return out


def agreement_metrics(rankings: Sequence[dict[str, Any]]) -> dict[str, float]:
    """``agreement/overall``, ``agreement/labeler/<id>``, ``agreement/sets``, ``agreement/pairs``
    (only the counts when no response set was ranked twice)."""
    pairs = agreement_pairs(rankings)
    sets = {(str(r["prompt_id"]), frozenset(r["responses"])) for r in rankings}
    shared = defaultdict(set)
    for r in rankings:
        shared[(str(r["prompt_id"]), frozenset(r["responses"]))].add(r["labeler_id"])
    out: dict[str, float] = {"agreement/pairs": len(pairs),
                             "agreement/sets": sum(1 for s in sets if len(shared[s]) > 1)}
    if not pairs:
        return out
    out["agreement/overall"] = sum(a for _, _, a in pairs) / len(pairs)
    per: dict[str, list[float]] = defaultdict(list)
    for x, y, a in pairs:
        per[x].append(a)
        per[y].append(a)
    for labeler in sorted(per):
        out[f"agreement/labeler/{metric_name(labeler)}"] = sum(per[labeler]) / len(per[labeler])
    return out


def metric_name(labeler_id: str) -> str:
    """A labeler id as a metric-name part (MLflow: letters, digits, ``_ - . :``; no ``/``)."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", str(labeler_id))[:100] or "_"
