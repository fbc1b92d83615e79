"""Rule 1: parse every input row against the prompt-log schema; bad rows go to quarantine.

Schema (docs/ARCHITECTURE.md, "The prompt log"): prompt_id, user_id, text (required),
timestamp (ISO 8601, UTC), source ("api" | "labeler"), style ("plain" | "few_shot" |
"user_based") (optional: a log without the column gets `OPTIONAL_DEFAULTS`), all strings, under
the column names `ingest.columns` gives. The log is one file or a directory of partitions
(JSONL and Parquet mixed, `instructgpt.ingest.sources`), read in sorted order and concatenated.
JSONL is read as bytes, line by line, so that invalid UTF-8 is caught per line; Parquet rows are
numbered from 1 too. Each row has a global number `line` (1-based over the concatenated
partitions: its identity in quarantine, equal to the file's line for a one-file log) and a
`where` ("file:line") for people. Quarantine details never quote the row's text (it may hold PII).

A column the mapping names (or a required field's own name) that a partition lacks is not a row
problem but a configuration one: `InputError` naming the file and the column. So is a partition
that cannot be read at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from instructgpt.config import InputError
from instructgpt.ingest.config import LOG_FIELDS, OPTIONAL_DEFAULTS, REQUIRED_FIELDS
from instructgpt.ingest.sources import Partition, list_partitions

FIELDS = LOG_FIELDS
SOURCES = ("api", "labeler")
STYLES = ("plain", "few_shot", "user_based")
QUARANTINE_COLUMNS = ("line", "reason", "detail", "prompt_id", "user_id")

# C0 controls except tab, LF, CR (legitimate in prompt text), DEL and C1 controls.
_TEXT_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
# Identifiers and enums may not hold any control character.
_FIELD_CONTROL = r"[\x00-\x1f\x7f-\x9f]"
# Rows read from a partition without an optional column carry its default under this key.
_DEFAULT_KEY = "\x00default:"
_NOT_OBJECT = ("empty_line", "invalid_utf8", "invalid_json", "not_an_object")


@dataclass
class RawLog:
    """What `read_rows` returns."""

    rows: pd.DataFrame
    """The six fields (strings) and `line`, for rows that passed the per-row type checks."""
    quarantine: pd.DataFrame
    """QUARANTINE_COLUMNS of the rows that failed them."""
    rows_in: int
    """Rows read over all partitions (at most `limit_rows`)."""
    partitions: list[tuple[str, int]] = field(default_factory=list)
    """(file, rows read from it) in reading order; 0 for a partition after `limit_rows`."""
    ignored: list[str] = field(default_factory=list)
    """Files (and hidden directories) of a partition directory that were not read."""

    def where(self, line: np.ndarray | pd.Series) -> np.ndarray:
        """"file:line" for global row numbers (the line within the partition that holds it)."""
        line = np.asarray(line, dtype=np.int64)
        sizes = np.asarray([n for _, n in self.partitions], dtype=np.int64)
        ends = np.cumsum(sizes)  # global number of each partition's last row
        idx = np.searchsorted(ends, line, side="left")  # (n,) partition of each row
        starts = ends - sizes
        names = np.asarray([f for f, _ in self.partitions] or [""], dtype=object)
        idx = np.minimum(idx, max(len(self.partitions) - 1, 0))
        local = line - (starts[idx] if len(starts) else 0)
        return np.asarray([f"{f}:{n}" for f, n in zip(names[idx], local.tolist())], dtype=object)


@dataclass
class _Spec:
    """How to read one field: its column, and whether the user named that column."""

    name: str
    column: str
    explicit: bool


def read_rows(path: str | Path, limit_rows: int | None = None,
              columns: Mapping[str, str | None] | None = None, what: str = "inputs.prompts") -> RawLog:
    """Parse the prompt log at `path` (a JSONL or Parquet file, or a directory of them) with
    the column mapping `columns` (field -> column; `IngestConfig.columns`) -> `RawLog`."""
    partitions, ignored = list_partitions(path, what=what)
    if not partitions:
        raise InputError(f"{what}: the directory {path} holds no *.jsonl or *.parquet partition "
                         f"(not read: {ignored[:10]})")
    columns = dict(columns or {})
    specs = []
    for name in FIELDS:
        column = columns.get(name, name)
        specs.append(_Spec(name, _DEFAULT_KEY + name if column is None else column, name in columns))
    cols: list[list[str]] = [[] for _ in FIELDS]
    lines: list[int] = []
    bad: list[tuple[int, str, str, object, object]] = []
    stats: list[tuple[str, int]] = []
    offset = 0
    for part in partitions:
        left = None if limit_rows is None else limit_rows - offset
        if left is not None and left <= 0:
            stats.append((str(part.path), 0))
            continue
        p_cols, p_lines, p_bad, n = _read_partition(part, left, specs)
        for col, values in zip(cols, p_cols):
            col.extend(values)
        lines.extend(x + offset for x in p_lines)
        bad.extend((b[0] + offset, *b[1:]) for b in p_bad)
        stats.append((str(part.path), n))
        offset += n
    rows, quarantine = _frames(cols, lines, bad)
    return RawLog(rows, quarantine, offset, stats, ignored)


def _read_partition(part: Partition, limit: int | None, specs: list[_Spec]):
    """One partition -> (columns, lines, quarantine tuples, rows read), lines local to the file.

    A column missing from the whole partition: a required field's or a named one is an
    InputError; an optional field's (not named in the mapping) takes the default."""
    try:
        if part.format == "parquet":
            return _read_parquet(part.path, limit, specs)
        result = _read_jsonl(part.path, limit, specs)
        unseen = [s for s in specs if not result[4][FIELDS.index(s.name)] and not s.column.startswith(_DEFAULT_KEY)]
        if not unseen or not result[5]:  # every column seen, or no JSON object at all
            return result[:4]
        keys = _jsonl_keys(part.path, limit)
        absent = [s for s in unseen if s.column not in keys]
        if not absent:
            return result[:4]
        _check_absent(part.path, absent, keys)
        specs = [_Spec(s.name, _DEFAULT_KEY + s.name, False) if s in absent else s for s in specs]
        return _read_jsonl(part.path, limit, specs)[:4]
    except (OSError, pa.ArrowException) as exc:  # unreadable or not the format its name says
        raise InputError(f"{part.path}: cannot be read as {part.format.upper()}: {exc}") from exc


def _check_absent(path: Path, absent: list[_Spec], present) -> None:
    """Raise for absent columns that are required or named in the mapping."""
    fatal = [s for s in absent if s.explicit or s.name in REQUIRED_FIELDS]
    if not fatal:
        return
    s = fatal[0]
    how = (f"ingest.columns.{s.name} names it" if s.explicit
           else f"map field '{s.name}' to your column with ingest.columns.{s.name}")
    if s.name in OPTIONAL_DEFAULTS:
        how += f", or map it to null for the default {OPTIONAL_DEFAULTS[s.name]!r}"
    shown = sorted(c for c in present if not c.startswith(_DEFAULT_KEY))
    raise InputError(
        f"{path}: no column '{s.column}' for field '{s.name}' ({how}); the file's columns are "
        f"{shown[:30]}" + (" ..." if len(shown) > 30 else "")
    )


def _read_jsonl(path: Path, limit: int | None, specs: list[_Spec]):
    """-> (columns, lines, quarantine tuples, rows read, seen per field, any JSON object)."""
    cols: list[list[str]] = [[] for _ in FIELDS]
    lines: list[int] = []
    bad: list[tuple[int, str, str, object, object]] = []
    seen = [False] * len(FIELDS)
    defaults = [(s.column, OPTIONAL_DEFAULTS[s.name]) for s in specs if s.column.startswith(_DEFAULT_KEY)]
    check = _checker(specs, defaults, cols, lines, bad, seen)
    n = 0
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):  # noqa: B007  (n is the count after the loop)
            if limit is not None and n > limit:
                n -= 1
                break
            try:
                obj = loads(raw)
            except decode_error as exc:
                if not raw.strip():
                    bad.append((n, "empty_line", "blank line", None, None))
                    continue
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as uexc:
                    bad.append((n, "invalid_utf8", f"invalid UTF-8 at byte {uexc.start}", None, None))
                else:
                    bad.append((n, "invalid_json", f"not JSON: {str(exc)[:80]}", None, None))
                continue
            check(obj, n)
    if lines:
        seen[:] = [True] * len(FIELDS)
    any_object = bool(lines) or any(b[1] not in _NOT_OBJECT for b in bad)
    return cols, lines, bad, n, seen, any_object


def _jsonl_keys(path: Path, limit: int | None) -> set[str]:
    """Every key of the JSON objects among the first `limit` lines."""
    keys: set[str] = set()
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if limit is not None and n > limit:
                break
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if type(obj) is dict:
                keys.update(obj)
    return keys


def _checker(specs: list[_Spec], defaults, cols, lines, bad, seen):
    """The per-row type checks (the vectorised value checks come later, in `validate`):
    check(obj, n) appends the row's fields to `cols` or a quarantine tuple to `bad`."""
    names = [s.column for s in specs]
    pid_col, uid_col = names[0], names[1]

    def check(obj, n) -> None:
        if type(obj) is not dict:
            bad.append((n, "not_an_object", f"JSON {type(obj).__name__}, expected an object", None, None))
            return
        for key, value in defaults:
            obj[key] = value
        vals = []
        for i, column in enumerate(names):
            v = obj.get(column)
            if type(v) is not str:
                name = FIELDS[i]
                seen[:i] = [True] * i
                pid, uid = obj.get(pid_col), obj.get(uid_col)
                pid = pid if type(pid) is str else None
                uid = uid if type(uid) is str else None
                if v is None:
                    seen[i] = seen[i] or column in obj
                    bad.append((n, f"missing_field:{name}", f"field '{name}' missing or null", pid, uid))
                    return
                seen[i] = True
                if isinstance(v, (bytes, bytearray)):  # Parquet binary column
                    try:
                        v = bytes(v).decode("utf-8")
                    except UnicodeDecodeError as uexc:
                        bad.append((n, "invalid_utf8", f"field '{name}': invalid UTF-8 at byte {uexc.start}", pid, uid))
                        return
                    vals.append(v)
                    continue
                bad.append((n, f"wrong_type:{name}", f"field '{name}' is {type(v).__name__}, expected str", pid, uid))
                return
            vals.append(v)
        for col, v in zip(cols, vals):
            col.append(v)
        lines.append(n)

    return check


def _read_parquet(path: Path, limit: int | None, specs: list[_Spec]):
    table = pq.read_table(path)
    if limit is not None:
        table = table.slice(0, limit)
    absent = [s for s in specs if not s.column.startswith(_DEFAULT_KEY) and s.column not in table.column_names]
    _check_absent(path, absent, table.column_names)
    specs = [_Spec(s.name, _DEFAULT_KEY + s.name, False) if s in absent else s for s in specs]
    defaults = [(s.column, OPTIONAL_DEFAULTS[s.name]) for s in specs if s.column.startswith(_DEFAULT_KEY)]
    present = list(dict.fromkeys(s.column for s in specs if s.column in table.column_names))
    records = table.select(present).to_pylist()
    cols: list[list[str]] = [[] for _ in FIELDS]
    lines: list[int] = []
    bad: list[tuple[int, str, str, object, object]] = []
    check = _checker(specs, defaults, cols, lines, bad, [False] * len(FIELDS))
    for n, obj in enumerate(records, 1):
        check(obj, n)
    return cols, lines, bad, len(records)


def _frames(cols, lines, bad) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = pd.DataFrame({name: pd.array(col, dtype="str") for name, col in zip(FIELDS, cols)})
    rows["line"] = np.asarray(lines, dtype=np.int64)
    quarantine = pd.DataFrame(bad, columns=list(QUARANTINE_COLUMNS))
    return rows, quarantine


def validate(rows: pd.DataFrame, max_text_chars: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Vectorised value checks on rows whose fields are all strings -> (valid rows with a
    parsed `ts` column, quarantined rows). A row fails on its first broken rule, in this order:
    empty field, control characters, too long, timestamp, enum values, duplicate prompt_id."""
    reason = pd.Series(pd.NA, index=rows.index, dtype="object")
    detail = pd.Series(pd.NA, index=rows.index, dtype="object")

    def flag(mask: pd.Series, code: str, text: str | pd.Series) -> None:
        mask = mask & reason.isna()
        if mask.any():
            reason[mask] = code
            detail[mask] = text if isinstance(text, str) else text[mask]

    flag(rows["text"].str.strip().str.len() == 0, "empty_text", "text is empty or whitespace")
    for name in FIELDS:
        if name != "text":
            flag(rows[name].str.strip().str.len() == 0, f"empty_field:{name}", f"field '{name}' is empty")
    flag(rows["text"].str.contains(_TEXT_CONTROL, regex=True), "control_chars", "text holds control characters")
    for name in FIELDS:
        if name != "text":
            flag(
                rows[name].str.contains(_FIELD_CONTROL, regex=True),
                "control_chars",
                f"field '{name}' holds control characters",
            )
    n_chars = rows["text"].str.len()
    flag(n_chars > max_text_chars, "too_long", "text has " + n_chars.astype(str) + f" chars > {max_text_chars}")
    ts = pd.to_datetime(rows["timestamp"], format="ISO8601", utc=True, errors="coerce")
    flag(ts.isna(), "invalid_timestamp", "timestamp is not ISO 8601")
    flag(~rows["source"].isin(SOURCES), "invalid_value:source", f"source not in {list(SOURCES)}")
    flag(~rows["style"].isin(STYLES), "invalid_value:style", f"style not in {list(STYLES)}")
    # Unique ids (gate rule): the first occurrence among otherwise valid rows wins.
    dup = rows["prompt_id"].where(reason.isna()).duplicated()
    flag(dup, "duplicate_id", "prompt_id seen on an earlier line")

    bad = reason.notna()
    quarantine = pd.DataFrame(
        {
            "line": rows["line"][bad],
            "reason": reason[bad].astype(str),
            "detail": detail[bad].astype(str),
            "prompt_id": rows["prompt_id"][bad],
            "user_id": rows["user_id"][bad],
        }
    )
    valid = rows[~bad].copy()
    valid["ts"] = ts[~bad]
    return valid, quarantine
