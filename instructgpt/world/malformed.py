"""Malformed log rows: real defects in the file bytes that ingestion must quarantine."""
from __future__ import annotations

import json
import random
from collections.abc import Callable

_TS = "2021-06-01T12:00:00Z"
KINDS: tuple[str, ...] = (
    "not_json", "invalid_utf8", "int_user_id", "list_text", "missing_user_id", "empty_text",
    "control_chars", "too_long", "bad_timestamp",
)


def _row(pid: str, **fields: object) -> dict[str, object]:
    row: dict[str, object] = {"prompt_id": pid, "user_id": "u999999", "text": "", "timestamp": _TS,
                              "source": "api", "style": "plain"}
    row.update(fields)
    return row


def _line(row: dict[str, object]) -> bytes:
    return json.dumps(row, ensure_ascii=False).encode("utf-8")


def _make(kind: str, text: str, rng: random.Random) -> Callable[[str], bytes]:
    def build(pid: str) -> bytes:
        if kind == "not_json":  # a row cut off mid-write
            full = _line(_row(pid, text=text))
            return full[: max(20, len(full) // 2)]
        if kind == "invalid_utf8":  # latin-1 bytes pasted into a utf-8 file
            marker = "\ue000"
            return _line(_row(pid, text=text + marker)).replace(marker.encode("utf-8"), b" caf\xe9 \xff\xfe")
        if kind == "int_user_id":
            return _line(_row(pid, user_id=rng.randrange(1, 10**6), text=text))
        if kind == "list_text":
            return _line(_row(pid, text=text.split(" ")[:6]))
        if kind == "missing_user_id":
            row = _row(pid, text=text)
            del row["user_id"]
            return _line(row)
        if kind == "empty_text":
            return _line(_row(pid, text=rng.choice(("", "   "))))
        if kind == "control_chars":
            return _line(_row(pid, text="\x00\x1b[31m" + text + "\x07\x08"))
        if kind == "too_long":
            reps = 20000 // max(1, len(text)) + 2
            return _line(_row(pid, text=" ".join([text] * reps)[:24000]))
        if kind == "bad_timestamp":
            return _line(_row(pid, text=text, timestamp=rng.choice(("yesterday", 1622548800))))
        raise ValueError(kind)
    return build


def malformed_lines(rng: random.Random, n: int, texts: list[str]) -> list[Callable[[str], bytes]]:
    """n builders (prompt_id -> line bytes), cycling through every kind of defect."""
    kinds = [KINDS[i % len(KINDS)] for i in range(n)]
    rng.shuffle(kinds)
    return [_make(k, texts[i], rng) for i, k in enumerate(kinds)]
