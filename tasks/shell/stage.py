"""`Stage`: what a stage body is handed (tasks/shell/__init__.py says how a body uses it)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, TypeVar

from instructgpt.config import flatten, from_dict, to_dict
from instructgpt.device import Compute, resolve
from tasks import tracking
from tasks.gates import GateFailed, GateResult, Table, run_gate
from tasks.params import declared_outputs
from tasks.shell.journal import Journal
from tasks.shell.outputs import Outputs, finite

T = TypeVar("T")
M = TypeVar("M")
# Under torchrun every rank runs the stage; only rank 0 writes outputs and logs to MLflow.
RANK = int(os.environ.get("RANK", "0"))


class Stage:
    """Everything a stage body needs; see tasks/shell/__init__.py."""

    def __init__(self, name: str, params: dict[str, Any], run: Any | None, section: str | None = None,
                 compute: Compute | None = None) -> None:
        self.name = name
        self.compute = compute or resolve()
        """Device and autocast dtype of params.yaml ``compute`` (``instructgpt.device``)."""
        self.params = params
        self.section_name = section or name
        self.section: dict[str, Any] = params.get(self.section_name) or {}
        self.run = run
        self.metrics: dict[str, float] = {}
        self.absent: dict[str, str] = {}
        """Figures not measured because their input is absent: metric name -> why. They go to the
        metrics file's ``absent`` section and to MLflow tags ``absent/<name>``, never as a number."""
        self.gate_result: GateResult | None = None
        declared = declared_outputs(name)
        self.outputs = Outputs(name, declared)
        self.journal = Journal(name, declared["deps"], run, self.is_main)
        self._configs: dict[str, Any] = {}
        self.t0 = time.time()
        if self.is_main:
            for old in Path("reports/gates").glob(f"{name}.*.json"):  # reports of an earlier run
                old.unlink(missing_ok=True)

    @property
    def is_main(self) -> bool:
        """False on the other ranks of a torchrun launch: they train, rank 0 writes and logs."""
        return RANK == 0

    @property
    def resumed_from_step(self) -> int | None:
        """The step training resumed from (None: started afresh)."""
        return self.journal.resumed_from_step

    def place(self, model: M) -> M:
        """``model`` on the stage's device (``compute.device``)."""
        return self.compute.place(model)

    # -- params -------------------------------------------------------------------------------
    def config(self, cls: type[T], key: str | None = None, overrides: dict[str, Any] | None = None,
               section: str | None = None) -> T:
        """Fill ``cls`` from ``params[stage]`` (or ``params[stage][key]``, or another top-level
        ``section`` such as ``rounds``) and record it.

        ``overrides`` replace params values before anything is recorded, so that the logged and
        saved config is exactly the one the trainer receives (e.g. ppo_noptx's ``ptx_coef: 0``).
        A section with ``checkpoint_every`` gets a ``checkpoint_dir`` to resume from (`Journal`)."""
        own = self.section if section is None else (self.params.get(section) or {})
        data = own if key is None else (own.get(key) or {})
        data = {**data, **(overrides or {})}
        where = section or self.section_name
        where = where if key is None else f"{where}.{key}"
        cfg = from_dict(cls, self.journal.with_checkpoint_dirs(data), where)
        self._configs[where] = to_dict(cfg)
        if self.run is not None:
            import mlflow

            mlflow.log_params({k: tracking.param_value(v) for k, v in flatten(to_dict(cfg), f"{where}.").items()})
            mlflow.log_dict(to_dict(cfg), f"config/{where}.json")
        return cfg

    def save_config(self, directory: Path) -> None:
        """Write the resolved config(s) of this stage next to a checkpoint."""
        def portable(node: Any) -> Any:  # the checkpoint folder is a detail of this machine and run
            if isinstance(node, dict):
                return {k: portable(v) for k, v in node.items() if k != "checkpoint_dir"}
            return node

        (directory / "instructgpt_config.json").write_text(json.dumps(portable(self._configs), indent=2, default=str))

    # -- gate ---------------------------------------------------------------------------------
    def gate(self, tables: list[Table], part: str = "inputs") -> GateResult:
        """Run the GX suite; a failure stops the stage before any output is written."""
        if not self.is_main:  # rank 0 validates and reports; the others wait for it in training
            return GateResult(True, [], Path("reports/gates") / f"{self.name}.{part}.json")
        try:
            result = run_gate(self.name, tables, part)
        except GateFailed:
            self._log_gate_report(part, False)
            raise
        self.gate_result = result
        self._log_gate_report(part, True)
        print(f"[{self.name}] gate '{part}' passed: {len(result.checks)} expectations ({result.report_path})")
        return result

    def _log_gate_report(self, part: str, success: bool) -> None:
        path = Path("reports/gates") / f"{self.name}.{part}.json"
        if self.run is not None and path.exists():
            import mlflow

            mlflow.log_artifact(str(path), "gate")
            mlflow.set_tag(f"gate.{part}", "passed" if success else "failed")

    # -- outputs ------------------------------------------------------------------------------
    def path(self, target: str) -> Path:
        """Staging location for declared output ``target``; moved into place on success."""
        return self.outputs.path(target)

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Progress callback for the library: step-wise metrics to MLflow and the DVC plot."""
        clean = {k: float(v) for k, v in metrics.items() if finite(v)}
        if self.run is not None and clean:
            import mlflow

            mlflow.log_metrics(clean, step=step)
        self.journal.append({"step": step, **clean})

    @property
    def curve(self) -> list[dict[str, float]]:
        """Every metrics row logged in this run, steps before a resume included."""
        return list(self.journal.rows)

    def commit(self) -> None:
        """Write the metrics file and curve, move every staged output into place, log to MLflow."""
        self.outputs.write_metrics_and_curve(self.metrics, self.absent, self.t0, self.journal.rows)
        self.outputs.move_into_place()
        self.journal.finish()
        if self.run is not None:
            import mlflow

            clean = {k: float(v) for k, v in self.metrics.items() if finite(v)}
            if clean:
                mlflow.log_metrics(clean)
            if self.absent:
                mlflow.set_tags({f"absent/{k}": v for k, v in self.absent.items()})
            for metrics_file in self.outputs.declared["metrics"]:
                mlflow.log_artifact(metrics_file, "dvc")

    def cleanup(self) -> None:
        self.outputs.cleanup()
