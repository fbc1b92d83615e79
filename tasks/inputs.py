"""Readers for the files stages pass to each other (formats: docs/ARCHITECTURE.md).

The raw inputs are named once, in params.yaml's ``inputs`` section; dvc.yaml takes its deps from
the same keys (``${inputs.prompts}``), so what a stage reads is what DVC tracks.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

PROMPTS = Path("outputs/ingest/prompts.jsonl")
QUARANTINE = Path("outputs/ingest/quarantine.jsonl")
RAW_INPUTS = ("prompts", "demonstrations", "corpus", "nlp_task", "models", "rankings", "judgements")


@functools.cache
def _inputs_section() -> dict[str, str]:
    from tasks.params import load_params

    section = load_params().get("inputs") or {}
    missing = [k for k in RAW_INPUTS if not section.get(k)]
    if missing:
        from instructgpt.config import ConfigError

        hint = " (no NLP task: `nlp_task: none`, the project's directory none/, which holds no items)" \
            if "nlp_task" in missing else ""
        raise ConfigError(f"params.yaml 'inputs' lacks {missing}: name the path of each raw input there{hint}")
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


@dataclass(frozen=True)
class NlpTask:
    """The public NLP task's items to score, or why none are scored (the figure is then absent,
    never 0 %)."""

    items: list[dict] = field(default_factory=list)
    """The first ``n_items`` items, each with ``item_id``, ``context``, ``choices``, ``answer``."""
    absent: str | None = None
    """Why no item is scored (no NLP task given, or the setting asks for none); None when scored."""


def nlp_task(n_items: int, setting: str) -> NlpTask:
    """The first ``n_items`` items of ``inputs.nlp_task``; ``setting`` is the params key of
    ``n_items`` (``base.nlp_task_items``), named in the reason when it is 0.

    ``inputs.nlp_task`` is a JSONL file or a directory of them (every ``*.jsonl`` under it, in
    sorted path order; other and hidden files are not read). A team without an NLP task points
    it at ``none``, the project's directory that holds no items: DVC needs a path that exists
    for every dep, and an empty file would draw DVC's "is empty" warning."""
    path = raw("nlp_task")
    files = _item_files(path)
    items = [item for f in files for item in _read_items(f)]
    if not items:
        where = f"{path}, no *.jsonl file in it" if path.is_dir() and not files else f"{path} holds no items"
        return NlpTask(absent=f"no NLP task given (inputs.nlp_task: {where})")
    if n_items < 1:
        return NlpTask(absent=f"not measured ({setting} is {n_items})")
    return NlpTask(items[:n_items])


def _item_files(path: Path) -> list[Path]:
    from instructgpt.config import InputError

    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"inputs.nlp_task: {path} does not exist (params.yaml names it; give a JSONL file, "
                         "a directory of them, or `none` when you have no NLP task)")
    files = [f for f in path.rglob("*.jsonl")
             if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts)]
    return sorted(files, key=lambda f: f.relative_to(path).as_posix())


def _read_items(path: Path) -> list[dict]:
    """Every item of one JSONL file; a malformed line is an InputError naming file, line and field."""
    from instructgpt.config import InputError

    items = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}:{n}: not a JSON object on one line ({exc})") from exc
            problem = _item_problem(item)
            if problem:
                raise InputError(f"{path}:{n}: {problem}; an NLP task item is {{\"item_id\": str, \"context\": str, "
                                 "\"choices\": [str, str, ...], \"answer\": index of the right choice}")
            items.append(item)
    return items


def _item_problem(item) -> str | None:
    if type(item) is not dict:
        return f"a JSON {type(item).__name__}, not an object"
    for name in ("item_id", "context"):
        if type(item.get(name)) is not str:
            return f"field '{name}' is {'missing or null' if item.get(name) is None else 'not a string'}"
    choices, answer = item.get("choices"), item.get("answer")
    if type(choices) is not list or len(choices) < 2 or not all(type(c) is str for c in choices):
        return "field 'choices' is not a list of at least two strings"
    if type(answer) is not int or not 0 <= answer < len(choices):
        return f"field 'answer' is {answer!r}, not an index into the {len(choices)} choices"
    return None
