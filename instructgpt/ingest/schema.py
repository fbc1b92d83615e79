"""Rule 1: parse every input row against the prompt-log schema; bad rows go to quarantine.

Schema (docs/ARCHITECTURE.md, `data/prompts.jsonl`): prompt_id, user_id, text, timestamp
(ISO 8601, UTC), source ("api" | "labeler"), style ("plain" | "few_shot" | "user_based"), all
strings. JSONL is read as bytes, line by line, so that invalid UTF-8 is caught per line; the
1-based line number is the row's identity in quarantine. Parquet rows are numbered from 1 too.
Quarantine details never quote the row's text (it may hold PII).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow.parquet as pq

FIELDS = ("prompt_id", "user_id", "text", "timestamp", "source", "style")
SOURCES = ("api", "labeler")
STYLES = ("plain", "few_shot", "user_based")
QUARANTINE_COLUMNS = ("line", "reason", "detail", "prompt_id", "user_id")

# C0 controls except tab, LF, CR (legitimate in prompt text), DEL and C1 controls.
_TEXT_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
# Identifiers and enums may not hold any control character.
_FIELD_CONTROL = r"[\x00-\x1f\x7f-\x9f]"


def read_rows(path: Path, limit_rows: int | None) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Parse `path` (JSONL or Parquet by suffix) -> (rows with the 6 fields + `line`,
    quarantine of rows that failed the per-row checks, number of rows read)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path, limit_rows)
    return _read_jsonl(path, limit_rows)


def _read_jsonl(path: Path, limit_rows: int | None) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    cols: list[list[str]] = [[] for _ in FIELDS]
    lines: list[int] = []
    bad: list[tuple[int, str, str, object, object]] = []
    n = 0
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):  # noqa: B007  (n is the count after the loop)
            if limit_rows is not None and n > limit_rows:
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
            _check_and_append(obj, n, cols, lines, bad)
    return _frames(cols, lines, bad, n)


def _check_and_append(obj, n, cols, lines, bad) -> None:
    """Per-row type checks (the vectorised value checks come later, in `validate`)."""
    if type(obj) is not dict:
        bad.append((n, "not_an_object", f"JSON {type(obj).__name__}, expected an object", None, None))
        return
    vals = []
    for name in FIELDS:
        v = obj.get(name)
        if type(v) is not str:
            pid, uid = obj.get("prompt_id"), obj.get("user_id")
            pid = pid if type(pid) is str else None
            uid = uid if type(uid) is str else None
            if v is None:
                bad.append((n, f"missing_field:{name}", f"field '{name}' missing or null", pid, uid))
            elif isinstance(v, (bytes, bytearray)):  # Parquet binary column
                try:
                    v = bytes(v).decode("utf-8")
                except UnicodeDecodeError as uexc:
                    bad.append((n, "invalid_utf8", f"field '{name}': invalid UTF-8 at byte {uexc.start}", pid, uid))
                    return
                vals.append(v)
                continue
            else:
                bad.append((n, f"wrong_type:{name}", f"field '{name}' is {type(v).__name__}, expected str", pid, uid))
            return
        vals.append(v)
    for col, v in zip(cols, vals):
        col.append(v)
    lines.append(n)


def _read_parquet(path: Path, limit_rows: int | None) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    table = pq.read_table(path)
    if limit_rows is not None:
        table = table.slice(0, limit_rows)
    present = [c for c in FIELDS if c in table.column_names]
    records = table.select(present).to_pylist()
    cols: list[list[str]] = [[] for _ in FIELDS]
    lines: list[int] = []
    bad: list[tuple[int, str, str, object, object]] = []
    for n, obj in enumerate(records, 1):
        _check_and_append(obj, n, cols, lines, bad)
    return _frames(cols, lines, bad, len(records))


def _frames(cols, lines, bad, n_in: int) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    rows = pd.DataFrame({name: pd.array(col, dtype="str") for name, col in zip(FIELDS, cols)})
    rows["line"] = np.asarray(lines, dtype=np.int64)
    quarantine = pd.DataFrame(bad, columns=list(QUARANTINE_COLUMNS))
    return rows, quarantine, n_in


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
