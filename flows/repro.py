"""`dvc repro <stage>` as the flow runs it: on the flow's own interpreter, its output line by line
to a logger, its exit code and what the stage wrote read back as a `StageOutcome`.

DVC runs on the flow's own interpreter (`python -m dvc`), and so do the stages, whatever the
PATH of the process worker. Each line a stage writes goes to the Prefect run logger, progress
bars as a few lines rather than one per redraw.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tasks  # noqa: F401  (offline environment variables)
from tasks import tracking

NOT_RETRIED = {2: "bad params", 3: "gate failed", 4: "training diverged", 5: "awaiting labels"}


class StageFailed(RuntimeError):
    """`dvc repro <stage>` exited non-zero; ``code`` is the stage's exit code."""

    def __init__(self, stage: str, code: int, tail: str) -> None:
        self.stage, self.code = stage, code
        why = NOT_RETRIED.get(code, "error")
        super().__init__(f"stage '{stage}' failed ({why}, exit {code}):\n{tail}")


@dataclass
class StageOutcome:
    """What one stage did in this flow run."""

    stage: str
    ran: bool
    seconds: float
    metrics: dict[str, Any]
    gate: dict[str, Any] | None
    mlflow_run: str | None


class StageLog:
    """A stage's output, line by line, to a logger (the Prefect run logger in the flow).

    A newline ends a line. A carriage return alone redraws the current line (what a tqdm bar
    writes): only the latest redraw counts, logged at most once per ``interval`` seconds, so a bar
    refreshing ten times a second does not become ten log lines a second. The state a bar ends
    on, followed by a newline, is always logged.
    """

    def __init__(self, emit: Callable[[str], None], interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.emit, self.interval, self.clock = emit, interval, clock
        self._buf = ""
        self._last_redraw = -math.inf

    def feed(self, text: str) -> None:
        self._buf += text
        while True:
            ends = [i for i in (self._buf.find("\r"), self._buf.find("\n")) if i >= 0]
            if not ends:
                return
            i = min(ends)
            if self._buf[i] == "\r" and i == len(self._buf) - 1:
                return  # a "\r\n" may be split across two reads: wait for the next one
            segment = self._buf[:i]
            if self._buf[i] == "\n" or self._buf[i + 1] == "\n":
                self._buf = self._buf[i + (1 if self._buf[i] == "\n" else 2):]
                if segment.strip():
                    self.emit(segment.rstrip())
                continue
            self._buf = self._buf[i + 1:]
            if segment.strip() and self.clock() - self._last_redraw >= self.interval:
                self._last_redraw = self.clock()
                self.emit(segment.rstrip())

    def close(self) -> None:
        if self._buf.strip():
            self.emit(self._buf.strip("\r").rstrip())
        self._buf = ""


def dvc_command(*args: str) -> tuple[list[str], dict[str, str]]:
    """DVC through the interpreter running the flow, and an environment in which the stages'
    `python -m tasks.<stage>` finds the same interpreter: a worker started as
    `.venv/bin/prefect worker start` does not have the virtual environment on its PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return [sys.executable, "-m", "dvc", *args], env


def run_dvc_stage(stage: str, parent_run_id: str | None, log: Callable[[str], None] = print) -> StageOutcome:
    """`dvc repro <stage>` with the MLflow parent run id in the environment; its output to ``log``."""
    cmd, env = dvc_command("repro", stage)
    if parent_run_id:
        env[tracking.PARENT_ENV] = parent_run_id
    t0 = time.time()
    # Read bytes, not text: text mode would turn every "\r" of a progress bar into a line.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
    assert proc.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    stage_log = StageLog(log)
    chunks = []
    try:
        while data := proc.stdout.read(65536):
            text = decoder.decode(data)
            stage_log.feed(text)
            chunks.append(text)
    finally:  # the flow stopped (SIGTERM, Ctrl-C): `dvc repro` must not go on alone, holding the workspace's lock
        if proc.poll() is None and sys.exc_info()[0] is not None:
            proc.terminate()
    stage_log.feed(decoder.decode(b"", final=True))
    stage_log.close()
    proc.wait()
    output = "".join(chunks)
    if proc.returncode != 0:
        code = _stage_exit_code(output, proc.returncode)
        raise StageFailed(stage, code, output[-4000:])
    ran = f"Running stage '{stage}'" in output
    return StageOutcome(
        stage=stage,
        ran=ran,
        seconds=round(time.time() - t0, 1),
        metrics=_read_metrics(stage),
        gate=_read_gate(stage) if ran else None,
        mlflow_run=None,
    )


def _stage_exit_code(output: str, dvc_code: int) -> int:
    """DVC reports the command's exit code as "failed to reproduce ...: exited with N"."""
    import re

    m = re.search(r"exited with (?:code )?(\d+)", output)
    return int(m.group(1)) if m else dvc_code


def _read_metrics(stage: str) -> dict[str, Any]:
    for name in ("metrics.json", "report.json"):
        p = Path("outputs") / stage / name
        if p.exists():
            return flatten(json.loads(p.read_text()))
    return {}


def _read_gate(stage: str) -> dict[str, Any] | None:
    """All gate parts of the stage (inputs, outputs) merged."""
    reports = sorted(Path("reports/gates").glob(f"{stage}.*.json"))
    if not reports:
        return None
    data = [json.loads(p.read_text()) for p in reports]
    return {"success": all(d.get("success") for d in data), "checks": [c for d in data for c in d.get("checks", [])]}


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics as one level, keys joined by "/" (``{"valid": {"accuracy": x}}`` -> ``valid/accuracy``)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out
