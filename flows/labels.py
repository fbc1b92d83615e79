"""The flow's wait for labels: a stage that stops because people have not yet answered the tasks
it exported (exit 5: human rankings or judgements, tasks/shell/awaiting.py `AwaitingLabels`)
pauses the flow run. With Label Studio configured (LABEL_STUDIO_URL) the tasks are first pushed
there; someone resumes the run from the Prefect UI ("Resume", a small form) once the answers are
in; the flow pulls them from Label Studio and runs the stage again. Without a Prefect server to
resume from (an ephemeral API), the flow stops with the stage's message instead, like `dvc repro`.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.artifacts import waiting_markdown
from flows.repro import StageFailed, StageOutcome, dvc_command

EXIT_AWAITING = 5
LABELS_TIMEOUT_S = int(float(os.environ.get("INSTRUCTGPT_LABELS_TIMEOUT_H", "168")) * 3600)
"""How long a paused flow run waits for labels before it fails (INSTRUCTGPT_LABELS_TIMEOUT_H, default a week)."""


def waiting_marker(stage: str) -> dict[str, Any] | None:
    """What a stage stopped with exit 5 waits for (written by tasks.shell.awaiting.AwaitingLabels)."""
    path = Path("labels/outbox") / f"{stage}.waiting.json"
    return json.loads(path.read_text()) if path.exists() else None


def can_pause() -> bool:
    """A flow run can only be resumed from a Prefect server's UI or API, not an ephemeral one."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def label_studio_sync(action: str, log: Callable[[str], None]) -> None:
    """`python -m instructgpt.labeling push|pull` when Label Studio is configured (LABEL_STUDIO_URL);
    a failure is logged, not raised: the flow still pauses, and JSONL answers work without it."""
    if not os.environ.get("LABEL_STUDIO_URL"):
        return
    _, env = dvc_command()
    proc = subprocess.run([sys.executable, "-m", "instructgpt.labeling", action], env=env,
                          capture_output=True, text=True)
    for line in (proc.stdout + proc.stderr).splitlines():
        log(line)
    if proc.returncode != 0:  # not fatal: people can still answer with JSONL files
        log(f"WARNING: Label Studio {action} failed (exit {proc.returncode}) at {os.environ['LABEL_STUDIO_URL']}: "
            f"is it running (make labelstudio)? The tasks stay in labels/outbox/ for a JSONL answer.")


@functools.cache
def _labels_answered() -> type:
    """The form shown when resuming a flow run that waits for labels (defined lazily: importing
    prefect starts nothing, but it takes seconds)."""
    from prefect.input import RunInput

    class LabelsAnswered(RunInput):
        """The form shown when resuming a flow run that waits for labels."""

        pull_from_label_studio: bool = True
        note: str = ""

    return LabelsAnswered


def until_labelled(stage: str, run_stage: Callable[[], StageOutcome]) -> StageOutcome:
    """Run the stage (``run_stage``, in a Prefect flow); while it waits for labels, pause the flow
    run until someone resumes it, then run it again."""
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact
    from prefect.flow_runs import pause_flow_run

    logger = get_run_logger()
    for attempt in range(1, 1000):
        try:
            return run_stage()
        except StageFailed as exc:
            marker = waiting_marker(stage)
            if exc.code != EXIT_AWAITING or marker is None or not can_pause():
                raise
        label_studio_sync("push", logger.info)
        create_markdown_artifact(
            markdown=waiting_markdown(stage, marker), key=f"waiting-{stage.replace('_', '-')}",
            description=f"{stage}: waiting for {marker['kind']}")
        logger.warning("%s waits for %s %s task(s) (%s): resume this flow run once they are answered",
                       stage, marker["pending"], marker["kind"], marker["tasks_file"])
        answer = pause_flow_run(wait_for_input=_labels_answered(), timeout=LABELS_TIMEOUT_S,
                                poll_interval=5, key=f"labels-{stage}-{attempt}")
        logger.info("resumed%s", f": {answer.note}" if answer is not None and answer.note else "")
        if answer is None or answer.pull_from_label_studio:
            label_studio_sync("pull", logger.info)
    raise RuntimeError(f"{stage}: still waiting for labels after 999 resumptions")
