"""The metrics a stage logged, and how a killed stage resumes: keyed checkpoint folders and a
journal of the metrics logged before the kill."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any


class Journal:
    """Every metrics row a stage logs (its curve) and, for a resumable run, its checkpoint folders.

    A stage killed mid-training resumes from its last checkpoint when re-run with the same params
    and inputs; changed params or inputs start afresh. The folder's key hashes file contents, not
    modification times, so a `dvc checkout` or a fresh clone still finds the checkpoint. The folder
    lives under ``outputs/.checkpoints`` (not a DVC output) and is removed once the stage succeeds
    (`finish`). A resumed stage says so (stdout, MLflow tag ``resumed_from_step``) and restores the
    metrics logged before the kill from the folder's journal, so its curves cover the whole run."""

    def __init__(self, stage: str, deps: list[str], run: Any | None, is_main: bool) -> None:
        self.stage, self.deps, self.run, self.is_main = stage, deps, run, is_main
        self.rows: list[dict[str, float]] = []
        self.checkpoints: list[Path] = []
        self.file: Path | None = None
        self.resumed_from_step: int | None = None

    def append(self, row: dict[str, float]) -> None:
        """One logged row: to the curve, and to the journal file of a resumable run."""
        self.rows.append(row)
        if self.file is not None:
            with open(self.file, "a") as f:
                f.write(json.dumps(row) + "\n")

    def with_checkpoint_dirs(self, data: dict[str, Any]) -> dict[str, Any]:
        """Give every (nested) section with ``checkpoint_every`` a ``checkpoint_dir`` keyed by the
        section's params and the content of the stage's inputs (see the class docstring)."""
        keys: list[str] = []

        def key() -> str:  # hashing the inputs costs a read of them: only when a section checkpoints
            if not keys:
                signature = {"params": data, "inputs": self._inputs_signature()}
                keys.append(hashlib.sha256(json.dumps(signature, sort_keys=True, default=str).encode()).hexdigest()[:12])
            return keys[0]

        def fill(node: Any, path: str) -> Any:
            if not isinstance(node, dict):
                return node
            node = {k: fill(v, f"{path}-{k}") for k, v in node.items()}
            if node.get("checkpoint_every") and not node.get("checkpoint_dir"):
                directory = Path("outputs/.checkpoints") / f"{path}-{key()}"
                self.checkpoints.append(directory)
                node["checkpoint_dir"] = str(directory)
                self._open(directory)
            return node

        return fill(dict(data), self.stage)

    def _inputs_signature(self) -> list[tuple[str, str]]:
        """(path, content hash) of every file this stage depends on, per dvc.yaml."""
        sig = []
        for dep in self.deps:
            paths = sorted(Path(dep).rglob("*")) if Path(dep).is_dir() else [Path(dep)]
            for p in paths:
                if p.is_file() and "__pycache__" not in p.parts:
                    with open(p, "rb") as f:
                        sig.append((str(p), hashlib.file_digest(f, "blake2b").hexdigest()[:32]))
        return sig

    def _open(self, directory: Path) -> None:
        """Metrics journal of a resumable run: restored (up to the checkpoint's step) on resume."""
        if not self.is_main or self.file is not None:
            return
        from instructgpt.train.checkpoint import checkpoint_step

        directory.mkdir(parents=True, exist_ok=True)
        self.file = directory / "journal.jsonl"
        step = checkpoint_step(directory)
        if step is None:  # a fresh start: a journal left by a run killed before its first checkpoint is stale
            self.file.unlink(missing_ok=True)
            return
        self.resumed_from_step = step
        rows = [json.loads(line) for line in self.file.read_text().splitlines()] if self.file.exists() else []
        self.rows = [r for r in rows if r["step"] <= step]  # later steps are trained (and logged) again
        with open(self.file, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in self.rows)
        print(f"[{self.stage}] resuming from the checkpoint at step {step} ({directory}); "
              f"{len(self.rows)} logged steps restored")
        if self.run is not None:
            import mlflow

            mlflow.set_tag("resumed_from_step", str(step))
            mlflow.log_param("resume.from_step", step)
            for row in self.rows:
                mlflow.log_metrics({k: v for k, v in row.items() if k != "step"}, step=int(row["step"]))

    def finish(self) -> None:
        """The stage succeeded: nothing left to resume."""
        for directory in self.checkpoints:
            shutil.rmtree(directory, ignore_errors=True)
