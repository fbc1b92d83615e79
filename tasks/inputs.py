"""Readers for the files stages pass to each other (formats: docs/ARCHITECTURE.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

RAW_PROMPTS = Path("data/prompts.jsonl")
PROMPTS = Path("outputs/ingest/prompts.jsonl")
QUARANTINE = Path("outputs/ingest/quarantine.jsonl")
DEMONSTRATIONS = Path("data/demonstrations.jsonl")
CORPUS = Path("data/corpus.jsonl")
NLP_TASK = Path("data/nlp_task.jsonl")


def read_jsonl(path: Path) -> pd.DataFrame:
    """A JSONL file as a DataFrame (strings stay strings)."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_json(path, lines=True, dtype=False)


def prompts(dataset: str | None = None, splits: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Kept prompts of the ingest stage, optionally one dataset and some splits."""
    df = read_jsonl(PROMPTS)
    if dataset is not None:
        df = df[df["dataset"] == dataset]
    if splits is not None:
        df = df[df["split"].isin(splits)]
    return df.reset_index(drop=True)


def corpus(max_documents: int | None = None) -> pd.DataFrame:
    """The pretraining corpus with a ``heldout`` flag column left to the caller."""
    df = read_jsonl(CORPUS)
    if max_documents is not None:
        df = df.head(max_documents)
    return df.reset_index(drop=True)


def is_heldout(doc_id: str, fraction: float) -> bool:
    """Stable corpus hold-out by doc_id: the same documents are held out in every stage."""
    h = hashlib.blake2b(f"heldout:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64 < fraction


def split_corpus(df: pd.DataFrame, fraction: float) -> tuple[list[str], list[str]]:
    """(train texts, held-out texts)."""
    mask = df["doc_id"].astype(str).map(lambda d: is_heldout(d, fraction))
    return df.loc[~mask, "text"].tolist(), df.loc[mask, "text"].tolist()


def pii_detector(params: dict):
    """The ingest stage's PII detector (same settings), for gates that must find no PII."""
    from instructgpt.config import from_dict
    from instructgpt.ingest import IngestConfig, PiiDetector

    return PiiDetector(from_dict(IngestConfig, params.get("ingest"), "ingest").pii)
