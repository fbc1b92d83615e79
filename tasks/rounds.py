"""The second round's stages (``label_round2``, ``rm_round2``, ``ppo_round2``) and what they share.

dvc.yaml always declares them, so that ``rounds.n`` is a params change DVC sees (no hand edit of
dvc.yaml). With ``rounds.n: 1`` each of them writes its declared outputs empty (`skip`) in a
second or two, with an MLflow run tagged ``skipped``, and evaluate judges round 1's policy.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tasks.params import declared_outputs
from tasks.shell.stage import Stage

MARKER = "ROUND.json"  # in a model directory a skipped stage leaves: why there is no model
REASON = "rounds.n is 1 in params.yaml: no second round"


def second_round(body: Callable[[Stage], None]) -> Callable[[Stage], None]:
    """A round-2 stage's body: ``body`` when ``rounds.n`` is 2, else `skip`."""

    def run(stage: Stage) -> None:
        from instructgpt.rounds import RoundsConfig

        if stage.config(RoundsConfig, section="rounds").n < 2:  # recorded (MLflow params) either way
            skip(stage)
        else:
            body(stage)

    return run


def skip(stage: Stage) -> None:
    """The stage's declared outputs, empty: JSONL files empty, model directories holding only
    `MARKER` (what evaluate and a reader see), metrics ``{"round2": 0}`` without a duration (so a re-run
    changes no byte and the stages after it stay cached), curves empty."""
    for target in declared_outputs(stage.name)["outs"]:
        path = stage.path(target)
        if path.suffix in (".jsonl", ".csv"):
            path.write_text("")
        else:  # a model directory
            path.mkdir()
            (path / MARKER).write_text(json.dumps({"trained": False, "reason": REASON}) + "\n")
    stage.metrics["round2"] = 0
    for metrics_file in declared_outputs(stage.name)["metrics"]:  # no duration: the same bytes every time,
        stage.path(metrics_file).write_text(json.dumps({"round2": 0, "skipped": REASON}, indent=2) + "\n")
    if stage.run is not None:
        import mlflow

        mlflow.set_tag("skipped", REASON)
    print(f"[{stage.name}] skipped: {REASON}", flush=True)
