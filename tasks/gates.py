"""Great Expectations gates: each stage validates its inputs before doing any work.

A gate is a list of (table name, DataFrame, expectations). Derived tables (one row per user
with its number of splits, one row per ranking with a validity flag, ...) let plain GX column
expectations state cross-row rules. The full validation result goes to
``reports/gates/<stage>.json``; a failure raises ``GateFailed`` whose message names every failed
expectation with an example of the failing values.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

REPORT_DIR = Path("reports/gates")


class GateFailed(RuntimeError):
    """The stage's inputs failed their Great Expectations suite; nothing was written."""


@dataclass
class Table:
    """One DataFrame and the expectations it must meet."""

    name: str
    frame: pd.DataFrame
    expectations: list[Any] = field(default_factory=list)


@dataclass
class GateResult:
    """What the gate found: overall success, per-expectation lines, and the saved report path."""

    success: bool
    checks: list[dict[str, Any]]
    report_path: Path

    def summary(self) -> str:
        """One line per expectation, failures first, for logs and the Prefect artifact."""
        lines = []
        for c in sorted(self.checks, key=lambda c: c["success"]):
            mark = "PASS" if c["success"] else "FAIL"
            example = "" if c["success"] else f" e.g. {c['examples']!r}"
            lines.append(f"{mark} {c['table']}: {c['expectation']}({c['column'] or ''}){example}")
        return "\n".join(lines)


def _quiet_gx() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.ERROR)


def run_gate(stage: str, tables: list[Table], part: str = "inputs") -> GateResult:
    """Validate every table with GX, save the full result, raise GateFailed on any failure.

    ``part`` names the suite within the stage ("inputs", or "outputs" for checks a stage runs on
    what it is about to write); each part has its own report file.
    """
    _quiet_gx()
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    try:  # progress bars are on by default; they would clutter the stage log
        ctx.variables.progress_bars = {"globally": False}
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    source = ctx.data_sources.add_pandas(f"{stage}_{part}")
    checks: list[dict[str, Any]] = []
    full: dict[str, Any] = {"stage": stage, "part": part, "tables": {}}
    for table in tables:
        asset = source.add_dataframe_asset(table.name)
        batch = asset.add_batch_definition_whole_dataframe(f"{table.name}_all")
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"{stage}.{table.name}"))
        for expectation in table.expectations:
            suite.add_expectation(expectation)
        definition = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=f"{stage}.{table.name}", data=batch, suite=suite)
        )
        result = definition.run(batch_parameters={"dataframe": table.frame})
        full["tables"][table.name] = result.to_json_dict()
        for r in result.results:
            cfg = r.expectation_config
            res = r.result or {}
            examples = res.get("partial_unexpected_list") or []
            if not examples and "observed_value" in res:
                examples = [res["observed_value"]]
            checks.append(
                {
                    "table": table.name,
                    "expectation": cfg.type,
                    "column": cfg.kwargs.get("column"),
                    "success": bool(r.success),
                    "unexpected_count": res.get("unexpected_count"),
                    "examples": [_short(x) for x in examples[:3]],
                }
            )
    success = all(c["success"] for c in checks)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    path = REPORT_DIR / f"{stage}.{part}.json"
    full.update(success=success, checks=checks)
    path.write_text(json.dumps(full, indent=2, default=str))
    gate = GateResult(success=success, checks=checks, report_path=path)
    if not success:
        failed = [c for c in checks if not c["success"]]
        lines = [f"gate '{stage}.{part}' failed {len(failed)} of {len(checks)} expectations:"]
        for c in failed:
            count = f", {c['unexpected_count']} unexpected" if c["unexpected_count"] else ""
            lines.append(
                f"  - {c['expectation']} on {c['table']}.{c['column'] or '*'}{count}; "
                f"example: {c['examples']!r}"
            )
        lines.append(f"full validation result: {path}")
        raise GateFailed("\n".join(lines))
    return gate


def pii_types(detector, texts) -> list[str]:
    """Per text, the comma-joined PII types the ingest stage's detector finds ('' when none).
    One `find_many` over the column: the very function (and text normalisation) the ingest
    filter used, so a gate flags only what the filter would have removed."""
    return [",".join(sorted({s.type for s in spans})) for spans in detector.find_many([str(t) for t in texts])]


def _short(value: Any, limit: int = 120) -> Any:
    """Keep examples readable in messages: long strings are cut."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    return value
