"""Labels people already gave, as ingestion and the SFT stage read them: demonstrations, and the
prompt ids of human rankings (for `ingest.datasets.assign: labels`).

Demonstrations (`inputs.demonstrations`): a JSONL or Parquet file, or a directory of them
(`instructgpt.ingest.sources`), one demonstration per line/row with `prompt_id` (str),
`labeler_id` (str) and `response` (str); other fields are ignored. A line that is not a JSON
object or lacks one of the three (or holds another type) is an `InputError` naming the file, the
line and the field: a demonstration is written by a person and cannot be quarantined away.
Blank lines are skipped.

Rankings (`inputs.rankings` with `label.labelers: human`): a directory (or file) of JSONL
rankings, one `{"prompt_id", "responses", "ranking", "labeler_id", ...}` per line, and Label
Studio JSON exports, a list of tasks `{"id", "data": {"prompt_id", ...}, "annotations": [...]}`.
Only the prompt ids are read here (the label stage imports and validates the rankings): a JSONL
line's `prompt_id`; an export task's `data.prompt_id` when the task has an annotation that is not
cancelled and has a result (an exported task nobody answered is no ranking).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from instructgpt.config import InputError
from instructgpt.ingest.sources import TABLE_FORMATS, Partition, list_partitions

DEMONSTRATION_FIELDS = ("prompt_id", "labeler_id", "response")
RANKING_FORMATS = {".jsonl": "jsonl", ".json": "json"}


@dataclass(frozen=True)
class Labeled:
    """Prompt ids that people already labeled (`assign: labels`)."""

    demonstrated: frozenset[str]
    """Prompts with at least one demonstration."""
    ranked: frozenset[str]
    """Prompts with at least one human ranking."""


def read_demonstrations(path: str | Path, what: str = "inputs.demonstrations") -> pd.DataFrame:
    """All demonstrations under `path` in reading order: prompt_id, labeler_id, response
    (strings), `where` ("file:line")."""
    partitions, _ = list_partitions(path, TABLE_FORMATS, what)
    records: list[tuple[str, str, str, str]] = []
    for part in partitions:
        for line, obj in _records(part):
            records.append((*_demonstration(obj, part.path, line), f"{part.path}:{line}"))
    return pd.DataFrame(records, columns=[*DEMONSTRATION_FIELDS, "where"], dtype=object)


def _demonstration(obj, path: Path, line: int) -> tuple[str, str, str]:
    if type(obj) is not dict:
        raise InputError(f"{path}:{line}: a demonstration must be a JSON object, got {type(obj).__name__}")
    values = []
    for name in DEMONSTRATION_FIELDS:
        v = obj.get(name)
        if type(v) is not str:
            got = "missing or null" if v is None else f"a {type(v).__name__}"
            raise InputError(f"{path}:{line}: field '{name}' is {got}; a demonstration needs "
                             f"{list(DEMONSTRATION_FIELDS)} as strings")
        values.append(v)
    return values[0], values[1], values[2]


def _records(part: Partition):
    """(1-based line or row number, parsed object) of a JSONL or Parquet partition."""
    if part.format == "parquet":
        try:
            rows = pq.read_table(part.path).to_pylist()
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{part.path}: cannot be read as Parquet: {exc}") from exc
        yield from enumerate(rows, 1)
        return
    try:
        with open(part.path, "rb") as f:
            for n, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    yield n, orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise InputError(f"{part.path}:{n}: not a JSON object on one line ({exc})") from exc
    except OSError as exc:
        raise InputError(f"{part.path}: cannot be read: {exc}") from exc


def labeled_prompt_ids(path: str | Path, what: str = "inputs.rankings") -> set[str]:
    """Prompt ids that have a human ranking in the JSONL files and Label Studio exports under
    `path`. A JSONL line without a string `prompt_id`, or an answered export task without
    `data.prompt_id`, is an InputError naming the file and line (or task)."""
    partitions, _ = list_partitions(path, RANKING_FORMATS, what)
    ids: set[str] = set()
    for part in partitions:
        if part.format == "json":
            ids |= _label_studio_ids(part.path)
            continue
        for line, obj in _records(part):
            pid = obj.get("prompt_id") if type(obj) is dict else None
            if type(pid) is not str or not pid:
                raise InputError(f"{part.path}:{line}: field 'prompt_id' is missing or not a string "
                                 "(a ranking line needs prompt_id, responses, ranking, labeler_id)")
            ids.add(pid)
    return ids


def _label_studio_ids(path: Path) -> set[str]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a Label Studio JSON export: {exc}") from exc
    if not isinstance(tasks, list):
        raise InputError(f"{path}: a Label Studio JSON export is a list of tasks, got {type(tasks).__name__}")
    ids: set[str] = set()
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise InputError(f"{path}: task {i} is a {type(task).__name__}, expected an object")
        if "annotations" in task and not _answered(task["annotations"]):
            continue
        data = task.get("data") if isinstance(task.get("data"), dict) else task  # JSON-MIN: flat
        pid = data.get("prompt_id")
        if type(pid) is not str or not pid:
            raise InputError(f"{path}: task {i} (id {task.get('id')!r}) has no string data.prompt_id")
        ids.add(pid)
    return ids


def _answered(annotations) -> bool:
    return isinstance(annotations, list) and any(
        isinstance(a, dict) and not a.get("was_cancelled") and a.get("result") for a in annotations
    )
