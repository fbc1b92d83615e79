"""The ingest stage's PII detector, for the gates of later stages that must find no PII.

A module of its own so that only the stages that run a PII gate depend on the PII code.
"""

from __future__ import annotations

from typing import Any


def pii_detector(params: dict[str, Any]):
    """The ingest stage's PII detector (same settings as params.yaml's ``ingest.pii``)."""
    from instructgpt.config import from_dict
    from instructgpt.ingest import IngestConfig, PiiDetector

    return PiiDetector(from_dict(IngestConfig, params.get("ingest"), "ingest").pii)
