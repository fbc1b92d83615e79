"""Hand-made prompt rows for the ingest rules."""

from __future__ import annotations


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
