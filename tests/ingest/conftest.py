"""Hand-made prompt rows for the ingest rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def row(pid: str, uid: str = "u1", text: str | None = None, ts: str = "2022-01-01T00:00:00Z",
        source: str = "api", style: str = "plain") -> dict:
    """A valid row; override any field."""
    return {
        "prompt_id": pid,
        "user_id": uid,
        "text": text if text is not None else f"Write a short story about a fox, number {pid}.",
        "timestamp": ts,
        "source": source,
        "style": style,
    }


@pytest.fixture
def write_jsonl(tmp_path: Path):
    """write_jsonl(items) -> path; dict items are JSON-encoded, bytes items written as is."""

    def _write(items, name: str = "prompts.jsonl") -> Path:
        path = tmp_path / name
        with open(path, "wb") as f:
            for it in items:
                f.write(it if isinstance(it, bytes) else json.dumps(it).encode() + b"\n")
        return path

    return _write
