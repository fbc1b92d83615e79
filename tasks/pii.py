"""The ingest stage's PII detector and the PII column of the gates (ingest, sft, ppo): they find
exactly what the ingest filter removed.

A module of its own so that only the stages that run a PII gate depend on the PII code.
"""

from __future__ import annotations

from typing import Any


def pii_detector(params: dict[str, Any]):
    """The ingest stage's PII detector (same settings as params.yaml's ``ingest.pii``)."""
    from instructgpt.config import from_dict
    from instructgpt.ingest import IngestConfig, PiiDetector

    return PiiDetector(from_dict(IngestConfig, params.get("ingest"), "ingest").pii)


def pii_types(detector, texts) -> list[str]:
    """Per text, the comma-joined PII types the ingest stage's detector finds ('' when none).
    One `find_many` over the column: the very function (and text normalisation) the ingest
    filter used, so a gate flags only what the filter would have removed."""
    return [",".join(sorted({s.type for s in spans})) for spans in detector.find_many([str(t) for t in texts])]
