"""The run's overview in Prefect: one markdown artifact per stage (ran or skipped, gate result, key
metrics, MLflow link), one per stage waiting for labels, and one for the whole pipeline run.

A run in which every stage was cached leaves no MLflow parent run: its overview links the run
that produced the outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.repro import StageOutcome
from tasks import tracking

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


def waiting_markdown(stage: str, marker: dict[str, Any]) -> str:
    """The Prefect artifact of a stage that waits for labels (``marker``: flows.labels.waiting_marker)."""
    return "\n".join([
        f"# `{stage}` waits for {marker['kind']}", "",
        f"- tasks: `{marker['tasks_file']}` ({marker['pending']} unanswered, {marker['answered']} answered)",
        f"- answers go to: `{marker['answers']}/` (JSONL or a Label Studio export)", "",
        "Label Studio: the tasks were pushed when LABEL_STUDIO_URL is set; label them there.",
        "Then resume this flow run (Resume, keep *pull from Label Studio* ticked to fetch the answers).",
        "", f"> {marker['message']}"])


def overview(outcomes: list[StageOutcome], exp_id: str, parent_id: str | None) -> str:
    """The Prefect artifact of the whole pipeline run."""
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


def child_run(parent_run_id: str | None, stage: str) -> str | None:
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
