"""The pipeline as a Prefect flow: one task per DVC stage, in DAG order.

Each task runs `dvc repro <stage>`: DVC alone decides whether the stage is stale and owns the
cache; Prefect owns when, retries, logs and the run's overview (one markdown artifact per
stage: ran or skipped, gate result, key metrics, MLflow link). DVC calls are serialised (one
workspace, one `dvc repro` at a time): the tasks run one after another, and the deployment
allows one flow run at a time (prefect.yaml).

DVC runs on the flow's own interpreter (`python -m dvc`), and so do the stages, whatever the
PATH of the process worker. Each line a stage writes goes to the Prefect run logger, progress
bars as a few lines rather than one per redraw. A run in which every stage was cached leaves no
MLflow parent run: its overview links the run that produced the outputs.

When a stage stops because people have not yet answered the tasks it exported (exit 5: human
rankings or judgements, tasks/shell/awaiting.py `AwaitingLabels`), the flow run pauses: with Label Studio
configured (LABEL_STUDIO_URL) it first pushes the tasks there; someone resumes the run from the
Prefect UI ("Resume", a small form) once the answers are in; the flow pulls them from Label Studio
and runs the stage again. Without a Prefect server to resume from (an ephemeral API), the flow
stops with the stage's message instead, like `dvc repro`.

    python -m flows.pipeline                 # the flow, against PREFECT_API_URL or an ephemeral server
    python -m flows.pipeline --profile tiny  # the same in profiles/tiny/, a workspace of its own
                                             # (flows/profiles.py; params.yaml stays untouched)
"""

from __future__ import annotations

import argparse
import codecs
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import tasks  # noqa: F401  (offline environment variables)
from flows.profiles import DEMO, profile_workspace
from tasks import tracking

STAGES = list(yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())["stages"])
"""dvc.yaml's stages in the order written there (an order DVC's graph allows)."""
NOT_RETRIED = {2: "bad params", 3: "gate failed", 4: "training diverged", 5: "awaiting labels"}
KEY_METRICS = {
    "ingest": ["rows_in", "kept", "removed"],
    "base": ["valid/loss", "nlp_task/accuracy"],
    "sft": ["valid/loss", "valid/loss_before"],
    "label": ["comparisons", "mean_k", "agreement/heldout_vs_train"],
    "rm": ["valid/accuracy", "gain", "bias"],
    "ppo": ["ppo/objective/scores", "ppo/objective/kl", "ptx_coef"],
    "ppo_noptx": ["ppo/objective/scores", "ppo/objective/kl", "ptx_coef"],
    "label_round2": ["comparisons", "mean_k"],
    "rm_round2": ["valid/accuracy", "data/round2_comparisons"],
    "ppo_round2": ["ppo/objective/scores", "ppo/objective/kl"],
    "evaluate": ["win_rate/sft_vs_base", "win_rate/ppo_vs_sft", "win_rate/ppo_vs_base_fewshot",
                 "win_rate/ppo_noptx_vs_ppo", "registry/champion_moved"],
}


EXIT_AWAITING = 5
LABELS_TIMEOUT_S = int(float(os.environ.get("INSTRUCTGPT_LABELS_TIMEOUT_H", "168")) * 3600)
"""How long a paused flow run waits for labels before it fails (INSTRUCTGPT_LABELS_TIMEOUT_H, default a week)."""


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


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only failures that re-running could fix (not bad params, gates or divergence)."""
    try:
        state.result(raise_on_failure=True)
    except StageFailed as exc:
        return exc.code not in NOT_RETRIED
    except Exception:  # noqa: BLE001
        return True
    return False


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


def stage_markdown(o: StageOutcome, run_link: str | None) -> str:
    """The Prefect artifact of one stage."""
    lines = [f"# Stage `{o.stage}`", ""]
    lines.append(f"**{'ran' if o.ran else 'skipped (unchanged, DVC cache)'}** in {o.seconds} s")
    if o.gate is not None:
        checks = o.gate["checks"]
        passed = sum(c["success"] for c in checks)
        lines += ["", f"Gate: {'passed' if o.gate['success'] else 'FAILED'} ({passed}/{len(checks)})"]
    # a figure its stage left unmeasured (an absent input) is shown with the reason, not left out
    keys = [k for k in KEY_METRICS.get(o.stage, []) if k in o.metrics or f"absent/{k}" in o.metrics]
    if keys:
        lines += ["", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {o.metrics[k] if k in o.metrics else 'absent: ' + o.metrics[f'absent/{k}']} |"
                  for k in keys]
    if run_link:
        lines += ["", f"MLflow run: {run_link}"]
    report = Path("outputs/evaluate/report.md")
    if o.stage == "evaluate" and report.exists():
        # The headline table, without the images (they live in MLflow and outputs/evaluate/plots).
        body = report.read_text().split("## Reward over-optimisation")[0]
        lines += ["", *[ln for ln in body.splitlines() if not ln.startswith("![")]]
    return "\n".join(lines)


def build_flow():
    """Define the Prefect flow and task lazily (importing prefect starts nothing)."""
    from prefect import flow, get_run_logger, task
    from prefect.artifacts import create_markdown_artifact
    from prefect.cache_policies import NO_CACHE
    from prefect.runtime import flow_run

    @task(
        name="dvc-stage",
        retries=2,
        retry_delay_seconds=5,
        retry_condition_fn=_retry_transient,
        cache_policy=NO_CACHE,
        task_run_name="{stage}",
    )
    def stage_task(stage: str, parent_run_id: str | None, experiment_id: str) -> StageOutcome:
        logger = get_run_logger()
        outcome = run_dvc_stage(stage, parent_run_id, logger.info)
        outcome.mlflow_run = _child_run(parent_run_id, stage) if outcome.ran else None
        link = tracking.run_url(experiment_id, outcome.mlflow_run) if outcome.mlflow_run else None
        create_markdown_artifact(
            markdown=stage_markdown(outcome, link),
            key=f"stage-{stage.replace('_', '-')}",  # keys: lowercase letters, digits, dashes
            description=f"{stage}: {'ran' if outcome.ran else 'skipped'}",
        )
        logger.info("%s: %s in %.1fs", stage, "ran" if outcome.ran else "skipped", outcome.seconds)
        return outcome

    from prefect.flow_runs import pause_flow_run
    from prefect.input import RunInput

    class LabelsAnswered(RunInput):
        """The form shown when resuming a flow run that waits for labels."""

        pull_from_label_studio: bool = True
        note: str = ""

    def stage_with_labels(stage: str, parent_run_id: str | None, exp_id: str) -> StageOutcome:
        """Run the stage; while it waits for labels, pause the flow run until someone resumes it."""
        logger = get_run_logger()
        for attempt in range(1, 1000):
            try:
                return stage_task(stage, parent_run_id, exp_id)
            except StageFailed as exc:
                marker = waiting_marker(stage)
                if exc.code != EXIT_AWAITING or marker is None or not can_pause():
                    raise
            label_studio_sync("push", logger.info)
            create_markdown_artifact(
                markdown=_waiting_markdown(stage, marker), key=f"waiting-{stage.replace('_', '-')}",
                description=f"{stage}: waiting for {marker['kind']}")
            logger.warning("%s waits for %s %s task(s) (%s): resume this flow run once they are answered",
                           stage, marker["pending"], marker["kind"], marker["tasks_file"])
            answer = pause_flow_run(wait_for_input=LabelsAnswered, timeout=LABELS_TIMEOUT_S,
                                    poll_interval=5, key=f"labels-{stage}-{attempt}")
            logger.info("resumed%s", f": {answer.note}" if answer is not None and answer.note else "")
            if answer is None or answer.pull_from_label_studio:
                label_studio_sync("pull", logger.info)
        raise RuntimeError(f"{stage}: still waiting for labels after 999 resumptions")

    @flow(name="instructgpt-pipeline", log_prints=True)
    def pipeline(stages: list[str] | None = None) -> list[dict[str, Any]]:
        """Run the DVC stages in order under one MLflow parent run."""
        import mlflow

        exp_id = tracking.setup()
        tags = {
            "git_commit": tracking.git_commit(),
            "dvc_lock": tracking.dvc_lock_hash(),
            "prefect_flow_run_id": str(flow_run.get_id() or ""),
            tracking.PROCESS_TAG: tracking.process_tag(),
        }
        tracking.close_orphaned_runs(exp_id, "attributes.run_name = 'pipeline'")
        outcomes: list[StageOutcome] = []
        with mlflow.start_run(experiment_id=exp_id, run_name="pipeline", tags=tags) as parent:
            for stage in stages or STAGES:
                outcomes.append(stage_with_labels(stage, parent.info.run_id, exp_id))
            ran = any(o.ran for o in outcomes)
            if ran:
                mlflow.set_tag("dvc_lock_after", tracking.dvc_lock_hash())
                mlflow.log_dict([o.__dict__ for o in outcomes], "pipeline/outcomes.json")
                if Path("dvc.lock").exists():  # the workspace's record of what ran (not in git)
                    mlflow.log_artifact("dvc.lock", "pipeline")
        parent_id: str | None = parent.info.run_id
        if not ran:
            # Every stage was cached: the parent would be an empty row in the runs table. The
            # overview links the pipeline run that produced the current outputs instead.
            mlflow.MlflowClient().delete_run(parent.info.run_id)
            parent_id = None
        create_markdown_artifact(markdown=_overview(outcomes, exp_id, parent_id), key="pipeline-overview")
        return [o.__dict__ for o in outcomes]

    return pipeline


def _child_run(parent_run_id: str | None, stage: str) -> str | None:
    """The MLflow run the stage process created under the parent (found by tag)."""
    if not parent_run_id:
        return None
    import mlflow

    runs = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.stage = '{stage}'",
        output_format="list",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def producing_run(exp_id: str) -> str | None:
    """The latest pipeline run that left dvc.lock as it is now: the one whose stages produced the
    current outputs (None when plain `dvc repro` or no pipeline run did)."""
    import mlflow

    runs = mlflow.search_runs(
        experiment_ids=[exp_id],
        filter_string=f"tags.dvc_lock_after = '{tracking.dvc_lock_hash()}'",
        order_by=["attributes.start_time DESC"],
        output_format="list",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def _waiting_markdown(stage: str, marker: dict[str, Any]) -> str:
    return "\n".join([
        f"# `{stage}` waits for {marker['kind']}", "",
        f"- tasks: `{marker['tasks_file']}` ({marker['pending']} unanswered, {marker['answered']} answered)",
        f"- answers go to: `{marker['answers']}/` (JSONL or a Label Studio export)", "",
        "Label Studio: the tasks were pushed when LABEL_STUDIO_URL is set; label them there.",
        "Then resume this flow run (Resume, keep *pull from Label Studio* ticked to fetch the answers).",
        "", f"> {marker['message']}"])


def _overview(outcomes: list[StageOutcome], exp_id: str, parent_id: str | None) -> str:
    lines = ["# InstructGPT pipeline", "", "| stage | status | seconds |", "| --- | --- | --- |"]
    lines += [f"| {o.stage} | {'ran' if o.ran else 'skipped'} | {o.seconds} |" for o in outcomes]
    if parent_id is not None:
        lines += ["", f"MLflow parent run: {tracking.run_url(exp_id, parent_id)}"]
    else:
        lines += ["", "Every stage was cached: no MLflow run was recorded for this pipeline run."]
        producer = producing_run(exp_id)
        if producer is not None:
            lines += [f"The outputs come from MLflow run: {tracking.run_url(exp_id, producer)}"]
    return "\n".join(lines)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the flow is (``_stop_on_sigterm``)."""


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM (`kill`, a scheduler, a container stop) as Ctrl-C: unwind the flow instead of dying.

    By default SIGTERM ends the process at once, and nothing registered to clean up runs: the
    ephemeral Prefect server this process started (a uvicorn child, stopped by an atexit hook)
    keeps running with no one to stop it, the flow run stays Running, the MLflow parent run
    stays RUNNING. Raised as KeyboardInterrupt, Prefect marks the flow run crashed, the MLflow
    run ends, the running `dvc repro` is terminated, and the atexit hook stops the server."""
    raise Terminated(f"signal {signum} (SIGTERM)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=DEMO,
                        help="demo (params.yaml, here) or a profiles/<name>.yaml, run in profiles/<name>/")
    parser.add_argument("--stages", nargs="*", help=f"subset of {STAGES} (default: all, in order)")
    args = parser.parse_args(argv)
    if args.profile != DEMO:
        workspace = profile_workspace(args.profile)
        print(f"profile '{args.profile}': running in {workspace} (its params.yaml has the profile merged in)")
        cmd = [sys.executable, "-m", "flows.pipeline"] + (["--stages", *args.stages] if args.stages else [])
        return subprocess.run(cmd, cwd=workspace).returncode
    t0 = time.time()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        outcomes = build_flow()(stages=args.stages)
    except StageFailed as exc:
        print(f"\npipeline stopped: {exc}", file=sys.stderr)
        return exc.code or 1
    except Terminated:
        print("\npipeline stopped: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    ran = [o["stage"] for o in outcomes if o["ran"]]
    print(f"\npipeline finished in {time.time() - t0:.0f}s; ran: {ran or 'nothing (all up to date)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
