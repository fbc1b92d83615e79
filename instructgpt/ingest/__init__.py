"""Ingestion rules of paper section 3.2: schema and quarantine, PII, dedup, per-user cap,
split by user, SFT / RM / PPO datasets. Pure library: no Prefect, MLflow, DVC or GX here."""

from instructgpt.ingest.config import PII_TYPES, DatasetConfig, IngestConfig, PiiConfig, SplitConfig
from instructgpt.ingest.pii import PiiDetector, PiiSpan, redact
from instructgpt.ingest.pipeline import IngestResult, ingest

__all__ = [
    "PII_TYPES",
    "DatasetConfig",
    "IngestConfig",
    "IngestResult",
    "PiiConfig",
    "PiiDetector",
    "PiiSpan",
    "SplitConfig",
    "ingest",
    "redact",
]
