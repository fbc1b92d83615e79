"""The pipeline as a Prefect flow: one task per DVC stage, in DAG order.

Each task runs `dvc repro <stage>` (flows/repro.py): DVC alone decides whether the stage is stale
and owns the cache; Prefect owns when, retries, logs and the run's overview (flows/artifacts.py:
one markdown artifact per stage: ran or skipped, gate result, key metrics, MLflow link). DVC calls
are serialised (one workspace, one `dvc repro` at a time): the tasks run one after another, and
the deployment allows one flow run at a time (prefect.yaml).

When a stage stops because people have not yet answered the tasks it exported (exit 5), the flow
run pauses until someone resumes it from the Prefect UI (flows/labels.py).

    python -m flows.pipeline                 # the flow, against PREFECT_API_URL or an ephemeral server
    python -m flows.pipeline --profile tiny  # the same in profiles/tiny/, a workspace of its own
                                             # (flows/profiles.py; params.yaml stays untouched)
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

import tasks  # noqa: F401  (offline environment variables)
from flows.artifacts import child_run, overview, stage_markdown
from flows.labels import until_labelled
from flows.profiles import DEMO, profile_workspace
from flows.repro import NOT_RETRIED, StageFailed, StageOutcome, run_dvc_stage
from tasks import tracking

STAGES = list(yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())["stages"])
"""dvc.yaml's stages in the order written there (an order DVC's graph allows)."""


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only failures that re-running could fix (not bad params, gates or divergence)."""
    try:
        state.result(raise_on_failure=True)
    except StageFailed as exc:
        return exc.code not in NOT_RETRIED
    except Exception:  # noqa: BLE001
        return True
    return False


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
        outcome.mlflow_run = child_run(parent_run_id, stage) if outcome.ran else None
        link = tracking.run_url(experiment_id, outcome.mlflow_run) if outcome.mlflow_run else None
        create_markdown_artifact(
            markdown=stage_markdown(outcome, link),
            key=f"stage-{stage.replace('_', '-')}",  # keys: lowercase letters, digits, dashes
            description=f"{stage}: {'ran' if outcome.ran else 'skipped'}",
        )
        logger.info("%s: %s in %.1fs", stage, "ran" if outcome.ran else "skipped", outcome.seconds)
        return outcome

    def stage_with_labels(stage: str, parent_run_id: str | None, exp_id: str) -> StageOutcome:
        """Run the stage; while it waits for labels, pause the flow run until someone resumes it."""
        return until_labelled(stage, lambda: stage_task(stage, parent_run_id, exp_id))

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
        create_markdown_artifact(markdown=overview(outcomes, exp_id, parent_id), key="pipeline-overview")
        return [o.__dict__ for o in outcomes]

    return pipeline


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
