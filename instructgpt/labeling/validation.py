"""Check imported rankings against the prompt log: which are training data, which are rejected.

A ranking is *usable* when its prompt is one ingestion kept in the train or valid split, its K
(``label.k_min``..``label.k_max``, within 2..9) responses are all different, its ranking is a
permutation of them, and the same labeler has not already ranked the same responses for that
prompt. Every other ranking is rejected with one reason (the first that applies, in this order):

| reason | what is wrong |
| --- | --- |
| ``malformed`` | not JSON, or a field is missing or of the wrong type (file, line, field named) |
| ``cancelled`` | a Label Studio annotation the labeler skipped |
| ``task_mismatch`` | ``task_id`` given, but not the id of this prompt and these responses |
| ``unknown_prompt`` | the prompt id is not in the prompt log |
| ``prompt_removed`` | ingestion removed the prompt (``ingest_reason``: ``pii:<TYPE>``, ``duplicate``, ``user_cap``, ...) |
| ``test_split`` | the prompt is in the test split: training on it would leak into the evaluation |
| ``wrong_k`` | K outside ``label.k_min``..``label.k_max`` |
| ``duplicate_responses`` | two of the K responses are the same string |
| ``not_permutation`` | ``ranking`` is not a permutation of 0..K-1 |
| ``duplicate_ranking`` | the same labeler already ranked the same response set for this prompt (first kept) |

Prompts that ingestion assigned to another dataset (SFT or PPO) are *used* when they are in the
train or valid split: a ranking is labelled data whatever the prompt was set aside for, and the
split (by user) is what keeps evaluation clean. They are counted as ``rankings/used_other_dataset``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from instructgpt.labeling.formats import Record, rejection, task_id, where
from instructgpt.preferences import K_MAX, K_MIN, is_permutation

TRAIN_SPLITS = ("train", "valid")


@dataclass
class PromptIndex:
    """What ingestion did with each prompt id: kept (split, dataset, user, text) or removed (why)."""

    kept: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_frames(cls, kept: pd.DataFrame, quarantine: pd.DataFrame | None = None) -> PromptIndex:
        """From ``outputs/ingest/prompts.jsonl`` and ``outputs/ingest/quarantine.jsonl`` as frames."""
        index = cls()
        if len(kept):
            for row in kept[["prompt_id", "split", "dataset", "user_id", "text"]].itertuples(index=False):
                index.kept[str(row.prompt_id)] = {"split": row.split, "dataset": row.dataset,
                                                  "user_id": row.user_id, "text": row.text}
        if quarantine is not None and len(quarantine) and "prompt_id" in quarantine:
            for row in quarantine.itertuples(index=False):
                pid = getattr(row, "prompt_id", None)
                if isinstance(pid, str) and pid and pid not in index.kept and pid not in index.removed:
                    index.removed[pid] = {"reason": str(getattr(row, "reason", "")),
                                          "detail": str(getattr(row, "detail", "") or "")}
        return index


def validate_rankings(records: list[Record], index: PromptIndex, k_min: int = K_MIN,
                      k_max: int = K_MAX) -> tuple[list[Record], list[Record]]:
    """(usable, rejected) in input order; usable records gain ``split``, ``user_id``, ``prompt``
    (the log's text) and ``dataset``; rejected ones are `formats.rejection` rows."""
    usable, rejected = [], []
    seen: set[tuple[str, str, frozenset]] = set()
    for rec in records:
        problem = _problem(rec, index, k_min, k_max)
        if problem is None:
            key = (rec["labeler_id"], rec["prompt_id"], frozenset(rec["responses"]))
            if key in seen:
                problem = ("duplicate_ranking", f"labeler {rec['labeler_id']!r} already ranked these "
                                                f"{len(rec['responses'])} responses for prompt {rec['prompt_id']!r}",
                           None)
            seen.add(key)
        if problem is not None:
            reason, detail, extra = problem
            row = rejection(reason, f"{where(rec['_source'])}: {detail}", rec["_source"], rec)
            row.update(extra or {})
            rejected.append(row)
            continue
        kept = index.kept[rec["prompt_id"]]
        usable.append({**rec, "split": kept["split"], "user_id": kept["user_id"], "prompt": kept["text"],
                       "dataset": kept["dataset"]})
    return usable, rejected


def _problem(rec: Record, index: PromptIndex, k_min: int, k_max: int) -> tuple[str, str, dict | None] | None:
    pid, responses, ranking = rec["prompt_id"], rec["responses"], rec["ranking"]
    if rec.get("task_id") and rec["task_id"] != task_id(pid, responses):
        return ("task_mismatch", f"task_id {rec['task_id']!r} is not the id of prompt {pid!r} with these "
                                 f"responses ({task_id(pid, responses)!r}): copy prompt_id and responses "
                                 f"from the task unchanged", {"field": "task_id"})
    if pid not in index.kept:
        if pid in index.removed:
            why = index.removed[pid]
            return ("prompt_removed", f"prompt {pid!r} was removed by ingestion: {why['reason']}"
                                      + (f" ({why['detail']})" if why["detail"] else ""),
                    {"ingest_reason": why["reason"]})
        return "unknown_prompt", f"prompt {pid!r} is not in the prompt log", {"field": "prompt_id"}
    if index.kept[pid]["split"] not in TRAIN_SPLITS:
        return ("test_split", f"prompt {pid!r} is in the {index.kept[pid]['split']!r} split: its rankings "
                              f"would leak into the evaluation", None)
    k = len(responses)
    if not k_min <= k <= k_max:
        return "wrong_k", f"K = {k} responses, outside label.k_min..k_max = {k_min}..{k_max}", {"field": "responses"}
    if len(set(responses)) != k:
        dup = [r for r, n in Counter(responses).items() if n > 1][0]
        return ("duplicate_responses", f"responses are not all different ({dup[:60]!r} appears "
                                       f"{responses.count(dup)} times)", {"field": "responses"})
    if not is_permutation(ranking, k):
        return ("not_permutation", f"ranking {ranking} is not a permutation of 0..{k - 1}",
                {"field": "ranking"})
    return None


def rejection_metrics(rejected: list[Record]) -> dict[str, float]:
    """``rejected/total``, ``rejected/<reason>`` and ``rejected/prompt_removed_<kind>`` counts."""
    out: dict[str, float] = {"rejected/total": len(rejected)}
    for reason, n in Counter(r["reason"] for r in rejected).items():
        out[f"rejected/{reason}"] = n
    kinds = Counter(str(r.get("ingest_reason", "")).split(":")[0] or "other"
                    for r in rejected if r["reason"] == "prompt_removed")
    for kind, n in kinds.items():
        out[f"rejected/prompt_removed_{kind}"] = n
    return out
