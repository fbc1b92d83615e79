"""The human judge: blind pairwise comparisons answered by people.

Export. For every pair (comparison x test prompt, and the candidate vs the current champion)
the evaluation builds one task; model names are hidden and the order of the two responses is
shuffled (seeded). Tasks go to ``labels/outbox/judge_tasks.jsonl``, one per line::

    {"task_id": "j3f2a...", "prompt_id": "p0000042", "prompt": "...", "a": "...", "b": "..."}

``task_id`` is a hash of the prompt id and the two responses in their shown order, and that
order depends only on the seed, the prompt id and the two texts: the same models with the same
seed give the same responses and the same ids, so answers given after a stop match on the next
run. Two pairs showing the same two texts for a prompt share one task. Identical responses are
a tie without a task. Which model is ``a`` and which ``b`` (the hidden mapping) is kept in the
evaluate stage's outputs (``outputs/evaluate/judge/pairs.jsonl``), never in the exported file.

Answers. ``inputs.judgements`` is a directory (e.g. ``labels/judgements``); every ``*.jsonl``
file in it (subdirectories included) holds judgements, one per line::

    {"task_id": "j3f2a...", "choice": "a", "judge_id": "carol"}     # choice: a | b | tie

and every ``*.json`` file is a Label Studio JSON export of the judge project (``make
labels-push`` creates it with the interface `instructgpt.labeling.studio.JUDGE_CONFIG`): a list
of tasks ``{"id", "data": {our task fields}, "annotations": [{"id", "completed_by", "result":
[...], "was_cancelled"}]}``. Its Choices result holds ``a``, ``b`` or ``tie`` (the aliases, or
the choices' text ``A is better`` ...). A Pairwise tag's result, from a project set up by hand
with ``<Pairwise toName="a,b">``, is read too: ``{"type": "pairwise", "from_name": ...,
"to_name": "a,b", "value": {"selected": "left"}}``: ``left`` is the first object named in
``to_name``, ``right`` the second. ``completed_by`` is the Label Studio user id (or an object
with ``email``/``id``), used as the judge id. Other files
(README.md ...) are ignored and listed.

Judges must not have labeled training data: a judge id found among the training labelers
(``labeler_id`` of the rankings and of the demonstrations) is rejected. Every imported
judgement is either used or rejected with its reason (unknown task, duplicate, judge who
labeled training data, bad choice value, missing field, not JSON, skipped in Label Studio),
and counted. Several judges on one task: the task's outcome is the mean of their choices
(a = 1, b = 0, tie = 0.5 from ``a``'s side), and their agreement is reported.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructgpt.judging.base import Comparisons, Gold, Pair

CHOICES = ("a", "b", "tie")
TASK_FIELDS = ("task_id", "prompt_id", "prompt", "a", "b")


def _digest(*parts: str, size: int = 8) -> bytes:
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=size).digest()


def shown_order(prompt_id: str, x: str, y: str, seed: int) -> tuple[str, str]:
    """The two texts in the order a judge sees them: seeded by the prompt and the texts only,
    never by which model wrote which (so the order tells nothing about the models)."""
    lo, hi = sorted((x, y))
    return (lo, hi) if _digest("judge-order", str(seed), prompt_id, lo, hi)[0] & 1 else (hi, lo)


def task_id(prompt_id: str, a: str, b: str) -> str:
    """Stable id of the task showing ``a`` then ``b`` for ``prompt_id``."""
    return "j" + _digest("judge-task", prompt_id, a, b).hex()


def build_tasks(pairs: Sequence[Pair], seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(tasks to export, one mapping row per pair). Tasks are sorted by id (a hash: no trace of
    the comparison they come from); identical responses give a mapping row without a task."""
    tasks: dict[str, dict[str, Any]] = {}
    rows = []
    for p in pairs:
        row: dict[str, Any] = {"comparison": p.comparison, "prompt_id": p.prompt_id}
        if p.candidate == p.baseline:
            rows.append({**row, "task_id": None, "candidate_shown_as": None, "identical": True})
            continue
        a, b = shown_order(p.prompt_id, p.candidate, p.baseline, seed)
        tid = task_id(p.prompt_id, a, b)
        tasks.setdefault(tid, {"task_id": tid, "prompt_id": p.prompt_id, "prompt": p.prompt, "a": a, "b": b})
        rows.append({**row, "task_id": tid, "candidate_shown_as": "a" if a == p.candidate else "b",
                     "identical": False})
    return [tasks[k] for k in sorted(tasks)], rows


def write_tasks(path: str | Path, tasks: Iterable[dict[str, Any]]) -> None:
    """The exported task file: JSONL, exactly the task fields, one task a line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for t in tasks:
            f.write(json.dumps({k: t[k] for k in TASK_FIELDS}, ensure_ascii=False) + "\n")
    tmp.replace(path)


@dataclass
class Judgement:
    """One imported answer, before validation; ``where`` names its file and line (or task)."""

    where: str
    task_id: Any
    choice: Any
    judge_id: Any
    problem: str | None = None
    """Why it cannot be used before it is even matched to a task (not JSON, missing field ...)."""
    kind: str | None = None
    """Short name of the problem (a metric key: ``rejected/<kind>``)."""


def read_jsonl_judgements(path: Path) -> list[Judgement]:
    """Judgements of a JSONL file; a malformed line becomes a judgement with its problem."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                out.append(Judgement(where, None, None, None, f"not JSON ({exc.msg})", "not_json"))
                continue
            if not isinstance(rec, dict):
                out.append(Judgement(where, None, None, None, "not a JSON object", "not_json"))
                continue
            missing = [k for k in ("task_id", "choice", "judge_id") if rec.get(k) in (None, "")]
            out.append(Judgement(where, rec.get("task_id"), rec.get("choice"), rec.get("judge_id"),
                                 f"missing field {', '.join(repr(m) for m in missing)}" if missing else None,
                                 "missing_field" if missing else None))
    return out


def _ls_user(completed_by: Any) -> Any:
    """``label-studio:<user id>``, the id the labeling side gives the same person
    (``instructgpt.labeling.formats.studio_user``), so the judge-id check sees one name."""
    from instructgpt.labeling.formats import studio_user

    return studio_user({"completed_by": completed_by})


def _ls_choice(result: Sequence[Any]) -> tuple[str | None, str | None]:
    """(choice a|b|tie, problem) from one annotation's result list."""
    picked: list[str] = []
    for item in result or []:
        if not isinstance(item, dict):
            continue
        value = item.get("value") or {}
        kind = item.get("type")
        if kind == "pairwise" or "selected" in value:
            side = value.get("selected")
            names = [n.strip() for n in str(item.get("to_name") or "a,b").split(",")]
            # left is the first object of to_name; objects named otherwise than a, b: left = a
            first, second = names if sorted(names) == ["a", "b"] else ("a", "b")
            if side == "left":
                picked.append(first)
            elif side == "right":
                picked.append(second)
            else:
                return None, "bad choice value: pairwise selected {!r} (left or right)".format(side)
        elif kind == "choices" or "choices" in value:
            # aliases a / b / tie, or the choices' text in the pipeline's judge project
            words = {"a is better": "a", "b is better": "b"}
            chosen = [words.get(str(c).strip().lower(), str(c).strip().lower()) for c in value.get("choices") or []]
            picked += [c for c in chosen if c in CHOICES]
    picked = list(dict.fromkeys(picked))
    if not picked:
        return None, "no pairwise choice in the annotation"
    if len(picked) > 1:
        return None, f"bad choice value: several choices {picked} in one annotation"
    return picked[0], None


def read_label_studio_judgements(path: Path) -> list[Judgement]:
    """Judgements of a Label Studio JSON export (module docstring); one per annotation."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [Judgement(str(path), None, None, None, f"not a Label Studio JSON export: {exc}", "not_json")]
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        return [Judgement(str(path), None, None, None, "not a Label Studio JSON export (a list of tasks)", "not_json")]
    out = []
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            out.append(Judgement(f"{path} task #{i}", None, None, None, "not a Label Studio task object", "not_json"))
            continue
        data = task.get("data") or {}
        tid = data.get("task_id") if isinstance(data, dict) else None
        for ann in task.get("annotations") or []:
            where = f"{path} task {task.get('id', '#' + str(i))} annotation {ann.get('id', '?')}"
            judge = _ls_user(ann.get("completed_by"))
            if tid in (None, ""):
                out.append(Judgement(where, None, None, judge, "missing field 'data.task_id' (not one of our tasks)",
                                     "missing_field"))
            elif ann.get("was_cancelled"):
                out.append(Judgement(where, tid, None, judge, "skipped in Label Studio (cancelled annotation)",
                                     "skipped"))
            elif judge in (None, ""):
                out.append(Judgement(where, tid, None, None, "missing field 'completed_by'", "missing_field"))
            else:
                choice, problem = _ls_choice(ann.get("result") or [])
                out.append(Judgement(where, tid, choice, judge, problem,
                                     None if problem is None else "bad_choice"))
    return out


def read_judgements(directory: str | Path) -> tuple[list[Judgement], list[str]]:
    """(every judgement under ``directory``, files ignored). Files in sorted order."""
    root = Path(directory)
    if not root.is_dir():
        from instructgpt.config import ConfigError

        raise ConfigError(f"evaluate.judge: human reads answers from the directory inputs.judgements, "
                          f"but {root} is not a directory (e.g. labels/judgements)")
    found, ignored = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".jsonl":
            found += read_jsonl_judgements(path)
        elif path.suffix == ".json":
            found += read_label_studio_judgements(path)
        else:
            ignored.append(str(path))
    return found, ignored


def _norm(judge_id: Any) -> str:
    return str(judge_id).strip().casefold()


class HumanJudge:
    """Blind pairwise judgements by people (module docstring). Gives win rates, no gold."""

    name = "human"
    sources = {"win_rate": "human: blind pairwise judgements (judges who did not label training data)"}

    def __init__(self, answers: str | Path, training_labelers: Iterable[str], seed: int = 0) -> None:
        self.answers = Path(answers)
        self.training_labelers = {_norm(x) for x in training_labelers if str(x).strip()}
        self.seed = seed

    def compare(self, pairs: Sequence[Pair]) -> Comparisons:
        """Tasks for ``pairs`` and the outcomes their answers give (None: not answered yet)."""
        tasks, rows = build_tasks(pairs, self.seed)
        known = {t["task_id"]: t for t in tasks}
        imported, ignored = read_judgements(self.answers)
        votes, records = self.validate(imported, known)
        score = {tid: sum(v.values()) / len(v) for tid, v in votes.items()}
        outcomes: list[float | None] = []
        for p, row in zip(pairs, rows):
            if row["identical"]:
                outcome = 0.5
            elif row["task_id"] in score:
                s = score[row["task_id"]]  # a's share of the vote
                outcome = s if row["candidate_shown_as"] == "a" else 1.0 - s
            else:
                outcome = None
            row["outcome"] = outcome
            row["judges"] = sorted(votes.get(row["task_id"], {})) if row["task_id"] else []
            outcomes.append(outcome)
        reasons = Counter(r["reason_kind"] for r in records if r["status"] == "rejected")
        counts: dict[str, float] = {
            "pairs": len(pairs), "tasks": len(tasks), "tasks_answered": len(score),
            "tasks_pending": len(tasks) - len(score), "ties_identical": sum(r["identical"] for r in rows),
            "judgements_imported": len(records), "judgements_used": sum(r["status"] == "used" for r in records),
            "judgements_rejected": sum(reasons.values()), "files_ignored": len(ignored),
            "judges": len({j for v in votes.values() for j in v}),
            **{f"rejected/{k}": float(n) for k, n in sorted(reasons.items())},
        }
        counts.update(agreement(votes))
        return Comparisons(list(pairs), outcomes, pending_tasks=len(tasks) - len(score), answered_tasks=len(score),
                           rows=rows, tasks=tasks, judgements=records, counts=counts)

    def validate(self, imported: Sequence[Judgement], known: dict[str, dict]) -> tuple[dict[str, dict[str, float]], list[dict]]:
        """(task_id -> {judge_id: a's score}, one record per imported judgement: used or rejected)."""
        votes: dict[str, dict[str, float]] = defaultdict(dict)
        first_seen: dict[tuple[str, str], str] = {}
        records = []
        for j in imported:
            kind, reason = j.kind, j.problem
            if reason is not None:  # unusable as read (not JSON, missing field, skipped ...)
                kind = kind or "malformed"
            elif str(j.task_id) not in known:
                kind, reason = "unknown_task", (f"unknown task_id {j.task_id!r}: not among this evaluation's "
                                                f"tasks (from another run, or mistyped)")
            elif str(j.choice).strip().lower() not in CHOICES:
                kind, reason = "bad_choice", f"bad choice value {j.choice!r} in field 'choice' (a, b or tie)"
            elif _norm(j.judge_id) in self.training_labelers:
                kind, reason = "training_labeler", (
                    f"judge {j.judge_id!r} labeled training data (rankings or demonstrations): judges must "
                    f"be people who did not")
            elif (str(j.task_id), _norm(j.judge_id)) in first_seen:
                kind, reason = "duplicate", (f"duplicate: judge {j.judge_id!r} already answered this task "
                                             f"({first_seen[(str(j.task_id), _norm(j.judge_id))]})")
            record = {"where": j.where, "task_id": j.task_id, "choice": j.choice, "judge_id": j.judge_id}
            if reason is not None:
                records.append({**record, "status": "rejected", "reason_kind": kind, "reason": reason})
                continue
            tid, judge = str(j.task_id), str(j.judge_id).strip()
            first_seen[(tid, _norm(judge))] = j.where
            votes[tid][judge] = {"a": 1.0, "b": 0.0, "tie": 0.5}[str(j.choice).strip().lower()]
            records.append({**record, "status": "used", "reason_kind": None, "reason": None})
        return dict(votes), records

    def gold(self, prompt_ids: Sequence[str], responses: dict[str, list[str]]) -> Gold | None:
        return None  # people give preferences here, not absolute gold judgements

    def monitor(self, rows: Sequence[dict[str, Any]]) -> list[float] | None:
        return None  # the PPO monitor is never shown to the evaluation's judges: proxy figures only


def agreement(votes: dict[str, dict[str, float]]) -> dict[str, float]:
    """Share of judge pairs that agree on tasks answered by two or more judges."""
    agree = total = 0
    tasks = 0
    for v in votes.values():
        scores = list(v.values())
        if len(scores) < 2:
            continue
        tasks += 1
        for i in range(len(scores)):
            for k in range(i + 1, len(scores)):
                total += 1
                agree += scores[i] == scores[k]
    out = {"tasks_with_several_judges": float(tasks)}
    if total:
        out["agreement"] = agree / total
    return out
