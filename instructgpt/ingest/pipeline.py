"""`ingest(path, cfg)`: raw prompt log -> kept prompts with dataset and split, quarantine, report.

Order of the rules, and why:
1. schema  -- nothing else can read a broken row.
2. PII     -- before dedup, so that a PII prompt that is the earliest of a duplicate group is
              dropped and its clean later copy survives (dedup first would discard the clean
              copy and then drop the PII one); in redact mode, prompts that differ only in
              their PII become equal and are merged by dedup. Filtering happens before the
              split, so every split (not only train) is PII-free.
3. dedup   -- before the cap, so that duplicates do not use up a user's 200 prompts. Of each
              group of duplicates the copy that people labeled is kept (a demonstration or a
              ranking belongs to one prompt id), else the earliest.
4. cap     -- per user, on distinct prompts (paper 3.2).
5. split, then datasets -- labels only; nothing is removed after the cap.
Every removed row is in the quarantine with one reason and its `file:line`: kept + quarantined
== rows read. Every labeled prompt is accounted for in the report (`labels`): kept, or dropped
with the reason of its quarantine row, or not in the log. The log may be a directory of partitions: the rules see their concatenation (a
duplicate or a user's 201st prompt in another partition counts like one in the same file).
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from instructgpt.config import ConfigError
from instructgpt.ingest.config import PII_TYPES, IngestConfig
from instructgpt.ingest.labeled import Labeled
from instructgpt.ingest.pii import PiiDetector, redact
from instructgpt.ingest.rules import (
    ASSIGN_REASONS,
    DATASETS,
    SPLITS,
    assign_by_labels,
    assign_dataset,
    assign_split,
    cap_per_user,
    find_duplicates,
)
from instructgpt.ingest.schema import FIELDS, QUARANTINE_COLUMNS, read_rows, validate

KEPT_COLUMNS = (*FIELDS, "dataset", "split")


@dataclass
class IngestResult:
    """What `ingest` returns; the stage writes `kept`, `quarantine` and `report` to disk."""

    kept: pd.DataFrame
    """prompt_id, user_id, text, timestamp, source, style, dataset, split (input order)."""
    quarantine: pd.DataFrame
    """line, reason, detail, prompt_id, user_id, where: one row per removed input row, by line
    (`line` numbers the rows of all partitions in reading order; `where` is "file:line")."""
    report: dict
    """Counts, timings and the accounting check (JSON-serialisable)."""


def ingest(path: str | Path, cfg: IngestConfig, progress: bool = True,
           labeled: Labeled | None = None) -> IngestResult:
    """Apply rules 1-6 of the ingest stage to the prompt log at `path` (a JSONL or Parquet
    file, or a directory of them). `labeled` (the prompts people already labeled) is needed
    with `cfg.datasets.assign == 'labels'`; with any assign, dedup keeps a labeled copy of a
    duplicated prompt over an earlier unlabeled one, and the report accounts for every label."""
    if cfg.datasets.assign == "labels" and labeled is None:
        raise ConfigError("ingest.datasets.assign: labels needs the labeled prompt ids (demonstrations, rankings)")
    path = Path(path)
    timings: dict[str, float] = {}
    removed: list[pd.DataFrame] = []
    bar = _Steps(progress)

    @contextmanager
    def step(name: str):
        bar.set(name)
        t0 = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - t0, 4)
        bar.done()

    with step("schema"):
        log = read_rows(path, cfg.limit_rows, cfg.columns)
        rows, bad_values = validate(log.rows, cfg.max_text_chars)
        removed += [log.quarantine, bad_values]

    with step("pii"):
        detector = PiiDetector(cfg.pii)
        all_spans = detector.find_many(rows["text"].tolist(), progress=progress)
        has = np.fromiter((bool(s) for s in all_spans), dtype=bool, count=len(all_spans))
        prompts_by_type: Counter[str] = Counter()
        spans_by_type: Counter[str] = Counter()
        for spans in (all_spans[i] for i in np.flatnonzero(has)):
            spans_by_type.update(s.type for s in spans)
            prompts_by_type.update({s.type for s in spans})
        if cfg.pii.mode == "drop":
            removed.append(_pii_quarantine(rows[has], [all_spans[i] for i in np.flatnonzero(has)]))
            rows = rows[~has]
        else:
            texts = rows["text"].to_numpy(dtype=object).copy()
            for i in np.flatnonzero(has):
                texts[i] = redact(texts[i], all_spans[i])
            rows = rows.assign(text=pd.array(texts, dtype="str"))

    with step("dedup"):
        n_labels = None
        if labeled is not None:
            n_labels = (rows["prompt_id"].isin(labeled.demonstrated).to_numpy(dtype=np.int64)
                        + rows["prompt_id"].isin(labeled.ranked).to_numpy(dtype=np.int64))
        drop, kept_pid, won = find_duplicates(rows, cfg.dedup_prefix_chars, cfg.dedup_min_chars, n_labels)
        kept_for_labels = set(rows.loc[won, "prompt_id"])
        removed.append(
            _quarantine(rows[drop], "duplicate", "same normalised prefix as kept prompt " + kept_pid[drop])
        )
        n_dedup = int(drop.sum())
        rows = rows[~drop]

    with step("cap"):
        drop = cap_per_user(rows, cfg.max_prompts_per_user)
        removed.append(
            _quarantine(rows[drop], "user_cap", f"user has more than {cfg.max_prompts_per_user} prompts")
        )
        n_capped = int(drop.sum())
        rows = rows[~drop]

    with step("split_datasets"):
        rows = rows.assign(split=assign_split(rows["user_id"], cfg.split))
        if cfg.datasets.assign == "labels":
            dataset, reason, ppo_api_share = assign_by_labels(
                rows, cfg.datasets, set(labeled.demonstrated), set(labeled.ranked))
        else:
            dataset, ppo_api_share = assign_dataset(rows, cfg.datasets)
            reason = pd.Series("share", index=rows.index, dtype=object)
        rows = rows.assign(dataset=dataset)
        assigned = {r: int(n) for r, n in reason.value_counts().items()}

    bar.close()
    kept = rows.sort_values("line")[list(KEPT_COLUMNS)].reset_index(drop=True)
    quarantine = (
        pd.concat([q for q in removed if len(q)] or [_empty_quarantine()], ignore_index=True)
        .sort_values("line", kind="stable")
        .reset_index(drop=True)
    )
    quarantine["line"] = quarantine["line"].astype(np.int64)
    quarantine["where"] = log.where(quarantine["line"]) if len(quarantine) else pd.Series(dtype="str")
    report = _report(
        log.rows_in, kept, quarantine, cfg, timings, prompts_by_type, spans_by_type,
        n_dedup, n_capped, ppo_api_share, detector,
    )
    report["datasets_assign"] = cfg.datasets.assign
    report["assigned_by_reason"] = {r: assigned.get(r, 0) for r in ASSIGN_REASONS}
    report["rows_by_partition"] = dict(log.partitions)
    report["partitions_read"] = sum(1 for _, n in log.partitions if n)
    report["ignored_files"] = log.ignored
    if labeled is not None:
        report["labels"] = _label_outcomes(labeled, kept, quarantine, kept_for_labels)
    return IngestResult(kept=kept, quarantine=quarantine, report=report)


def _label_outcomes(labeled: Labeled, kept: pd.DataFrame, quarantine: pd.DataFrame,
                    kept_for_labels: set[str]) -> dict:
    """Where each labeled prompt went, per kind of label: `kept` (of which
    `kept_over_earlier_copy`: dedup kept it, not the earlier unlabeled copy of its text),
    `dropped` by the reason of its quarantine row (a duplicate of a copy with as many labels,
    PII, the user cap, a broken row), or `not_in_log`. The three add up to `prompts`: no label
    is lost without a count."""
    kept_ids = set(kept["prompt_id"])
    first_reason = (quarantine.dropna(subset=["prompt_id"]).drop_duplicates("prompt_id")
                    .set_index("prompt_id")["reason"])
    out = {}
    for kind, ids in (("demonstration", labeled.demonstrated), ("ranking", labeled.ranked)):
        lost = sorted(ids - kept_ids)
        reasons = first_reason.reindex(lost)
        dropped = {str(r): int(n) for r, n in reasons.value_counts().sort_index().items()}
        n_kept, n_missing = len(ids & kept_ids), int(reasons.isna().sum())
        out[kind] = {
            "prompts": len(ids),
            "kept": n_kept,
            "kept_over_earlier_copy": len(ids & kept_for_labels & kept_ids),
            "dropped": dropped,
            "not_in_log": n_missing,
        }
    return out


def _pii_quarantine(rows: pd.DataFrame, spans: list) -> pd.DataFrame:
    """Dropped PII prompts: reason names the first type in PII_TYPES order; the detail lists
    types and offsets, never the values."""
    reasons, details = [], []
    for sp in spans:
        types = sorted({s.type for s in sp}, key=PII_TYPES.index)
        reasons.append(f"pii:{types[0]}")
        details.append("PII " + ", ".join(f"{s.type}[{s.start}:{s.end}]" for s in sp))
    q = _quarantine(rows, "", "")
    q["reason"] = reasons
    q["detail"] = details
    return q


def _quarantine(rows: pd.DataFrame, reason: str, detail) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "line": rows["line"].to_numpy(),
            "reason": reason,
            "detail": detail.to_numpy() if isinstance(detail, pd.Series) else detail,
            "prompt_id": rows["prompt_id"].to_numpy(),
            "user_id": rows["user_id"].to_numpy(),
        }
    )


def _empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "line" else "str") for c in QUARANTINE_COLUMNS})


def _report(rows_in, kept, quarantine, cfg, timings, prompts_by_type, spans_by_type,
            n_dedup, n_capped, ppo_api_share, detector) -> dict:
    by_reason = {k: int(v) for k, v in quarantine["reason"].value_counts().sort_index().items()}
    table = pd.crosstab(kept["dataset"], kept["split"]) if len(kept) else pd.DataFrame()
    kept_by = {
        d: {s: int(table.at[d, s]) if d in table.index and s in table.columns else 0 for s in SPLITS}
        for d in DATASETS
    }
    users_by_split = {s: int(kept.loc[kept["split"] == s, "user_id"].nunique()) for s in SPLITS}
    n_kept, n_removed = len(kept), len(quarantine)
    accounting_ok = (
        n_kept + n_removed == rows_in
        and sum(by_reason.values()) == n_removed
        and sum(v for d in kept_by.values() for v in d.values()) == n_kept
        and not quarantine["line"].duplicated().any()
    )
    return {
        "rows_in": int(rows_in),
        "kept": n_kept,
        "removed": n_removed,
        "quarantined_by_reason": by_reason,
        "pii_mode": cfg.pii.mode,
        "pii_by_type": {t: int(prompts_by_type.get(t, 0)) for t in cfg.pii.types},
        "pii_spans_by_type": {t: int(spans_by_type.get(t, 0)) for t in cfg.pii.types},
        "pii_candidates": int(detector.n_screened),
        "deduplicated": n_dedup,
        "capped": n_capped,
        "kept_by_dataset_split": kept_by,
        "kept_users_by_split": users_by_split,
        "ppo_api_share": round(float(ppo_api_share), 6),
        "timings_s": timings,
        "accounting_ok": bool(accounting_ok),
    }


class _Steps:
    """A progress bar over the rules (or nothing when progress is off)."""

    NAMES = ("schema", "pii", "dedup", "cap", "split_datasets")

    def __init__(self, progress: bool) -> None:
        self.bar = None
        if progress:
            from instructgpt.progress import progress as bar

            self.bar = bar(total=len(self.NAMES), desc="ingest", unit="rule")

    def set(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name)

    def done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
