"""A stage's declared outputs: written to a staging folder, moved into place only on success, so
that a failed stage writes nothing; the DVC metrics file and plot CSV written from what it logged."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


class Outputs:
    """The staging folder of stage ``name`` for the outputs dvc.yaml declares (``declared``:
    `tasks.params.declared_outputs`)."""

    def __init__(self, name: str, declared: dict[str, list[str]]) -> None:
        self.name = name
        self.declared = declared
        self.staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir="outputs"))

    @property
    def targets(self) -> list[str]:
        return self.declared["outs"] + self.declared["metrics"] + self.declared["plots"]

    def path(self, target: str) -> Path:
        """Staging location for declared output ``target``; moved into place on success."""
        known = self.targets
        if target not in known:
            raise ValueError(f"{target} is not an output of stage '{self.name}' in dvc.yaml: {known}")
        p = self.staging / target
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_metrics_and_curve(self, metrics: dict[str, float], absent: dict[str, str], t0: float,
                                curve: list[dict[str, float]]) -> None:
        """The DVC metrics file (unless the body wrote it) and the plot CSVs from the logged rows."""
        metrics_files = self.declared["metrics"]
        if metrics_files and not (self.staging / metrics_files[0]).exists():  # else the body wrote it
            payload = {k: v for k, v in metrics.items() if finite(v)}
            payload["duration_s"] = round(time.time() - t0, 2)
            nested = nest(payload)
            if absent:
                nested["absent"] = dict(absent)
            self.path(metrics_files[0]).write_text(json.dumps(nested, indent=2, sort_keys=True))
        for plot in self.declared["plots"]:
            if plot.endswith(".csv") and not self.path(plot).exists():
                write_curve(self.path(plot), curve)

    def move_into_place(self) -> None:
        """Move every staged output into place (rename: atomic per output)."""
        missing = [t for t in self.targets if not (self.staging / t).exists()]
        if missing:
            raise RuntimeError(f"stage '{self.name}' did not produce declared outputs: {missing}")
        for target in self.targets:
            dest = Path(target)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            elif dest.exists():
                dest.unlink()
            os.replace(self.staging / target, dest)

    def cleanup(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def finite(v: Any) -> bool:
    """A real number that is neither inf nor NaN (bools are not numbers here)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def nest(flat: dict[str, float]) -> dict[str, Any]:
    """{'valid/loss': 1} -> {'valid': {'loss': 1}} so `dvc metrics show` reads well."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # a scalar already sits at that key
                break
        else:
            node[parts[-1]] = value
    return out


def write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    """Step-wise metrics as CSV (DVC plots); metrics missing at a step are left empty."""
    keys: list[str] = ["step"]
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[k.replace("/", "_") for k in keys])
        writer.writeheader()
        for row in rows:
            writer.writerow({k.replace("/", "_"): row.get(k, "") for k in keys})
