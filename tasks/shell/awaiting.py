"""The stop of a stage that waits for people's answers (exit code 5)."""

from __future__ import annotations

import json
from pathlib import Path


class AwaitingLabels(RuntimeError):
    """People have not yet answered the tasks this stage exported: stop, say what and how to go on.

    ``tasks_file`` lists the exported tasks (JSONL, one task per line); ``answers`` is the
    directory their answers go into (a DVC dependency of the stage, so the next `dvc repro`
    re-runs it). A marker ``labels/outbox/<stage>.waiting.json`` tells the Prefect flow what it
    waits for (flows/pipeline.py pauses the flow run until it is resumed from the UI)."""

    def __init__(self, stage: str, kind: str, tasks_file: Path, pending: int, answered: int,
                 answers: Path, how: str = "") -> None:
        self.stage, self.kind, self.tasks_file, self.answers = stage, kind, Path(tasks_file), Path(answers)
        self.pending, self.answered = pending, answered
        super().__init__(
            f"awaiting labels: {pending} {kind} task(s) not yet answered ({answered} answered) - "
            f"exported to {tasks_file}. Answer them (Label Studio: `make labels-push`, label, then "
            f"`make labels-pull`; or write answers as JSONL into {answers}/, format in README), then "
            f"run `dvc repro` again (the Prefect flow waits: resume it from its UI)." + (f" {how}" if how else ""))

    @staticmethod
    def marker_of(stage: str) -> Path:
        return Path("labels/outbox") / f"{stage}.waiting.json"

    def marker(self) -> Path:
        return self.marker_of(self.stage)

    def write_marker(self) -> None:
        path = self.marker()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "stage": self.stage, "kind": self.kind, "tasks_file": str(self.tasks_file),
            "pending": self.pending, "answered": self.answered, "answers": str(self.answers),
            "message": str(self)}, indent=2))
