"""Exchange formats between the pipeline and people: rankings and ranking tasks (the judge's tasks
and judgements: `instructgpt.judging.human`).

**Ranking** (JSONL, one object a line; files in ``inputs.rankings``, e.g. ``labels/rankings/``)::

    {"prompt_id": "p0000042", "responses": ["...", "...", "..."], "ranking": [2, 0, 1],
     "labeler_id": "alice", "task_id": "3f9c0a1e5b7d2c48"}

- ``responses``: the K (2..9, `instructgpt.preferences.K_MIN`..``K_MAX``) responses that were
  ranked, all different strings;
- ``ranking``: indices into ``responses``, best first, a permutation of 0..K-1;
- ``labeler_id``: who ranked (any string; agreement is reported per labeler);
- ``task_id`` (optional): the exported task this answers; when given it must equal
  ``task_id(prompt_id, responses)``; ``prompt`` (optional) is ignored: training uses the text of
  the prompt log.

**Ranking task** (``labels/outbox/rank_tasks.jsonl``, written by the label stage)::

    {"task_id": "...", "prompt_id": "...", "prompt": "...", "responses": [...],
     "labelers_needed": 1, "answered_by": []}

``labelers_needed`` is 2 for the overlap share (``label.overlap``): two *different* labelers
rank the same responses so that their agreement can be measured; ``answered_by`` lists who
already did. Answer a task with a ranking line that copies ``task_id``, ``prompt_id`` and
``responses`` and adds ``ranking`` and ``labeler_id``.

**Label Studio JSON export** (``*.json`` next to the JSONL files; ``python -m
instructgpt.labeling pull`` writes ``label_studio.json``): a list of tasks ``{"id", "data":
{...task fields...}, "annotations": [{"completed_by", "result": [...], "was_cancelled"}]}``.
Each annotation becomes one ranking (Ranker result: item ids ``r0..r{K-1}`` in the order the
labeler left them, best first); the labeler id is ``label-studio:<user id>`` (`studio_user`, which
the human judge's reader uses too). Skipped (cancelled) annotations are rejected as ``cancelled``.

Reading never raises on bad content: every line or annotation is either a record or a
rejection naming the file, the line (JSONL) or the task and annotation (JSON export), the field
and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

RANKER = "rank"  # name of the Ranker control in the Label Studio ranking project
RESPONSES_LIST = "responses"  # name of its List object
SUFFIXES = (".jsonl", ".json")

Record = dict[str, Any]


def task_id(prompt_id: str, responses: Iterable[str]) -> str:
    """Stable id of a ranking task: a hash of the prompt id and the responses, in order."""
    payload = json.dumps([str(prompt_id), list(responses)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(payload.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def item_id(index: int) -> str:
    """Id of response ``index`` in a Label Studio List (``r0``, ``r1``, ...)."""
    return f"r{index}"


def rejection(reason: str, detail: str, source: dict[str, Any], record: Record | None = None,
              field: str | None = None) -> Record:
    """One rejected answer: why, and where it came from (file and line, or task and annotation)."""
    out: Record = {"reason": reason, "detail": detail, "file": source.get("file"), "line": source.get("line")}
    if source.get("where"):
        out["where"] = source["where"]
    if field:
        out["field"] = field
    for key in ("prompt_id", "labeler_id", "task_id"):
        if record and isinstance(record.get(key), (str, int)) and not isinstance(record.get(key), bool):
            out[key] = str(record[key])
    return out


def where(source: dict[str, Any]) -> str:
    """'labels/rankings/a.jsonl:12' or 'labels/rankings/label_studio.json, task 3 (...)'."""
    if source.get("line") is not None:
        return f"{source['file']}:{source['line']}"
    return f"{source['file']}, {source.get('where', '')}".rstrip(", ")


# -- reading rankings -------------------------------------------------------------------------
ROUND2_DIR = "round2"
"""The subdirectory of the rankings directory that holds the second round's answers (``rounds.n:
2``): read by the label_round2 stage only, so that they never join round 1's comparisons."""


def answer_files(path: str | Path) -> list[Path]:
    """The JSONL and JSON files under ``path`` (a file or a directory), sorted by name; not those
    in hidden directories or in its `ROUND2_DIR` (the second round's own)."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(root).parts)
                  and p.relative_to(root).parts[0] != ROUND2_DIR)


def read_rankings(path: str | Path) -> tuple[list[Record], list[Record]]:
    """Every ranking in ``path`` (JSONL files and Label Studio exports), checked field by field.

    Returns (records, rejected). Records carry ``_source`` ({file, line} or {file, where}); the
    checks against the prompt log are `instructgpt.labeling.validation`'s."""
    records: list[Record] = []
    rejected: list[Record] = []
    for file in answer_files(path):
        if file.suffix == ".jsonl":
            recs, rej = _read_jsonl_rankings(file)
        else:
            recs, rej = _read_label_studio_rankings(file)
        records += recs
        rejected += rej
    return records, rejected


def _read_jsonl_rankings(file: Path) -> tuple[list[Record], list[Record]]:
    records, rejected = [], []
    with open(file, encoding="utf-8", errors="surrogateescape") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            source = {"file": str(file), "line": line_no}
            try:
                rec = json.loads(line)
            except ValueError as exc:
                rejected.append(rejection("malformed", f"{file}:{line_no}: not a JSON object ({exc})", source))
                continue
            problem = check_ranking_fields(rec)
            if problem:
                field, what = problem
                rejected.append(rejection("malformed", f"{file}:{line_no}: field '{field}' {what}", source,
                                          rec if isinstance(rec, dict) else None, field))
                continue
            records.append(normalise_ranking(rec, source))
    return records, rejected


def check_ranking_fields(rec: Any) -> tuple[str, str] | None:
    """(field, what is wrong) for the first bad field of a ranking record, or None."""
    if not isinstance(rec, dict):
        return "(line)", f"must be a JSON object, got {type(rec).__name__}"
    for key in ("prompt_id", "labeler_id"):
        if key not in rec:
            return key, "is missing"
        if not isinstance(rec[key], str) or not rec[key].strip():
            return key, f"must be a non-empty string, got {rec[key]!r}"[:200]
    if "responses" not in rec:
        return "responses", "is missing"
    if not isinstance(rec["responses"], list) or not all(isinstance(r, str) for r in rec["responses"]):
        return "responses", "must be a list of strings"
    if "ranking" not in rec:
        return "ranking", "is missing"
    if not isinstance(rec["ranking"], list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                       for i in rec["ranking"]):
        return "ranking", f"must be a list of integer indices into responses, got {rec['ranking']!r}"[:200]
    for key in ("task_id", "prompt"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            return key, f"must be a string when given, got {type(rec[key]).__name__}"
    return None


def normalise_ranking(rec: Record, source: dict[str, Any]) -> Record:
    """The fields the pipeline uses, plus where the record came from."""
    out = {"prompt_id": rec["prompt_id"], "responses": list(rec["responses"]),
           "ranking": [int(i) for i in rec["ranking"]], "labeler_id": rec["labeler_id"], "_source": source}
    if rec.get("task_id"):
        out["task_id"] = rec["task_id"]
    return out


def _load_export(file: Path) -> tuple[list[Any] | None, Record | None]:
    """A Label Studio JSON export (a list of tasks), or a rejection for the whole file."""
    source = {"file": str(file), "line": None, "where": "whole file"}
    try:
        export = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return None, rejection("malformed", f"{file}: not a JSON document ({exc})", source)
    if not isinstance(export, list):
        return None, rejection("malformed", f"{file}: a Label Studio JSON export is a list of tasks, "
                                            f"got {type(export).__name__}", source)
    return export, None


def _annotations(file: Path, export: list[Any]) -> Iterable[tuple[Record | None, Record, dict[str, Any]]]:
    """(task data, annotation, source) for every annotation of a Label Studio export; a task that
    is not an object yields (None, {}, source) so that the caller rejects it."""
    for t, task in enumerate(export):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            yield None, {}, {"file": str(file), "line": None, "where": f"task {t}"}
            continue
        for a, ann in enumerate(task.get("annotations") or []):
            source = {"file": str(file), "line": None,
                      "where": f"task {t} (Label Studio id {task.get('id')}), annotation {a}"}
            yield task["data"], ann if isinstance(ann, dict) else {}, source


def studio_user(annotation: Record) -> str | None:
    """``label-studio:<user id>`` of the person who completed an annotation."""
    user = annotation.get("completed_by")
    if isinstance(user, dict):
        user = user.get("id", user.get("email"))
    return None if user is None else f"label-studio:{user}"


def _read_label_studio_rankings(file: Path) -> tuple[list[Record], list[Record]]:
    export, problem = _load_export(file)
    if problem:
        return [], [problem]
    records, rejected = [], []
    for data, ann, source in _annotations(file, export):
        if data is None:
            rejected.append(rejection("malformed", f"{where(source)}: not a task with a 'data' object", source))
            continue
        rec = {"prompt_id": data.get("prompt_id"), "responses": data.get("responses"),
               "labeler_id": studio_user(ann), "task_id": data.get("task_id")}
        if ann.get("was_cancelled"):
            rejected.append(rejection("cancelled", f"{where(source)}: the labeler skipped this task", source, rec))
            continue
        bad = check_ranking_fields({**rec, "ranking": []})  # the task's fields, before the result
        if bad:
            field, what = bad
            rejected.append(rejection("malformed", f"{where(source)}: field '{field}' {what}", source, rec, field))
            continue
        order = _ranker_order(ann.get("result"))
        if order is None:
            rejected.append(rejection("malformed", f"{where(source)}: no Ranker result "
                                                   f"(from_name '{RANKER}') in the annotation", source, rec, "result"))
            continue
        index = {item_id(i): i for i in range(len(rec["responses"]))}
        unknown = [x for x in order if x not in index]
        if unknown:
            rejected.append(rejection("malformed", f"{where(source)}: ranked item ids {unknown} are not "
                                                   f"responses of the task", source, rec, "result"))
            continue
        rec["ranking"] = [index[x] for x in order]
        records.append(normalise_ranking(rec, source))
    return records, rejected


def _ranker_order(result: Any) -> list[str] | None:
    """Item ids best first from a Ranker result (rank-only: one column named like the Ranker)."""
    for item in result or []:
        if isinstance(item, dict) and item.get("type") == "ranker":
            columns = (item.get("value") or {}).get("ranker") or {}
            order = columns.get(item.get("from_name") or RANKER)
            if order is None and len(columns) == 1:
                order = next(iter(columns.values()))
            if isinstance(order, list):
                return [str(x) for x in order]
    return None


# -- writing ----------------------------------------------------------------------------------
def write_jsonl(path: str | Path, rows: Iterable[Record]) -> None:
    """Rows as JSONL (UTF-8, one object a line), written to a temporary file then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps({k: v for k, v in row.items() if not k.startswith("_")}, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_rankings(path: str | Path, records: Sequence[dict]) -> None:
    """Write rankings.jsonl records ({prompt_id, responses, ranking, labeler_id}) in order."""
    with Path(path).open("w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps({"prompt_id": r["prompt_id"], "responses": list(r["responses"]),
                                "ranking": list(r["ranking"]), "labeler_id": r["labeler_id"]},
                               ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[Record]:
    """A JSONL file (tasks the pipeline wrote) as dicts; a missing file is empty."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
