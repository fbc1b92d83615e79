"""Readers for the files stages pass to each other (formats: docs/ARCHITECTURE.md).

The raw inputs are named once, in params.yaml's ``inputs`` section; dvc.yaml takes its deps from
the same keys (``${inputs.prompts}``), so what a stage reads is what DVC tracks.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import pandas as pd

PROMPTS = Path("outputs/ingest/prompts.jsonl")
QUARANTINE = Path("outputs/ingest/quarantine.jsonl")
RAW_INPUTS = ("prompts", "demonstrations", "corpus", "nlp_task", "models", "rankings", "judgements")


@functools.cache
def _inputs_section() -> dict[str, str]:
    from tasks.common import load_params

    section = load_params().get("inputs") or {}
    missing = [k for k in RAW_INPUTS if not section.get(k)]
    if missing:
        from instructgpt.config import ConfigError

        raise ConfigError(f"params.yaml 'inputs' lacks {missing}: name the path of each raw input there")
    return section


def raw(name: str) -> Path:
    """Path of raw input ``name`` (one of RAW_INPUTS) from params.yaml."""
    return Path(_inputs_section()[name])


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
    df = read_jsonl(raw("corpus"))
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
