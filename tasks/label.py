"""Stage label: K distinct SFT samples per RM prompt, ranked by the labelers ``label.labelers``
selects (simulated or human; the library is `instructgpt.labeling`); on ``label.demonstration_prompts``
SFT prompts, K - 1 samples with the labelers' demonstration among them.

Human labelers: the open ranking tasks go to ``labels/outbox/rank_tasks.jsonl``; while any is open
and ``label.wait`` is true the stage stops with exit code 5 (awaiting labels).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd

from tasks import inputs
from tasks.common import AwaitingLabels, Stage, main, write_jsonl
from tasks.gates import Table
from tasks.rankings import ranking_tables

SFT_MODEL = "outputs/sft/model"
OUTBOX = Path("labels/outbox")
RANK_TASKS = OUTBOX / "rank_tasks.jsonl"
RANK_REJECTED = OUTBOX / "rank_rejected.jsonl"  # what people sent that cannot be used, while waiting


def body(stage: Stage) -> None:
    from instructgpt.labeling.run import label
    from instructgpt.labeling.validation import PromptIndex
    from instructgpt.stages import LabelConfig

    cfg = stage.config(LabelConfig)
    prompts = inputs.prompts("rm", ("train", "valid"))
    stage.gate(input_tables(prompts))
    index = PromptIndex.from_frames(inputs.prompts(), inputs.read_jsonl(inputs.QUARANTINE))
    result = label(cfg, prompts, index, inputs.raw("rankings"), SFT_MODEL, device=str(stage.compute.device),
                   demonstrated=demonstrated_prompts() if cfg.demonstration_prompts else None)
    if cfg.labelers == "human":
        hand_over(stage, cfg, result)
    rows = result.comparisons
    stage.gate(ranking_tables(rows, cfg.k_min, cfg.k_max), part="outputs")
    write_jsonl(stage.path("outputs/label/comparisons.jsonl"), rows)
    write_jsonl(stage.path("outputs/label/rejected.jsonl"), result.rejected)
    stage.metrics.update(result.metrics)
    if result.rejected:
        print(f"[label] {len(result.rejected)} ranking(s) rejected ({summary(result.rejected)}): "
              f"outputs/label/rejected.jsonl")
    if stage.run is not None:
        import mlflow

        mlflow.log_table(pd.DataFrame(rows[:30]), "label/sample_rankings.json")
        if result.rejected:
            mlflow.log_table(pd.DataFrame(result.rejected[:200]), "label/rejected.json")


def demonstrated_prompts() -> pd.DataFrame:
    """SFT prompts (train and valid splits) with their demonstration (the first, when several):
    prompt_id, text, response."""
    from instructgpt.ingest.labeled import read_demonstrations

    demos = read_demonstrations(inputs.raw("demonstrations")).drop_duplicates("prompt_id")
    prompts = inputs.prompts("sft", ("train", "valid"))
    return prompts.merge(demos[["prompt_id", "response"]], on="prompt_id", how="inner")


def hand_over(stage: Stage, cfg, result) -> None:
    """Export the open ranking tasks; stop while people have not answered them (``label.wait``)."""
    from instructgpt.labeling.formats import write_jsonl as write_tasks

    write_tasks(RANK_TASKS, result.tasks)
    pending, answered = len(result.tasks), result.collection.answered
    if pending and cfg.wait:
        write_tasks(RANK_REJECTED, result.rejected)
        rejected = (f" {len(result.rejected)} answer(s) were rejected ({summary(result.rejected)}; "
                    f"each with its file, line and reason in {RANK_REJECTED})." if result.rejected else "")
        raise AwaitingLabels(
            "label", "ranking", RANK_TASKS, pending, answered, inputs.raw("rankings"),
            how=f"Or set label.wait: false to train on the {len(result.comparisons)} usable ranking(s) "
                f"there are.{rejected}")
    if pending:
        print(f"[label] {pending} ranking task(s) still open in {RANK_TASKS} (label.wait is false): "
              f"training on the {len(result.comparisons)} usable ranking(s) there are")
    RANK_REJECTED.unlink(missing_ok=True)
    (OUTBOX / "label.waiting.json").unlink(missing_ok=True)  # no longer waiting


def summary(rejected: list[dict]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in Counter(r["reason"] for r in rejected).most_common())


def input_tables(prompts: pd.DataFrame) -> list[Table]:
    return [
        Table("rm_prompts", prompts, [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="prompt_id"),
            gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        ])
    ]


if __name__ == "__main__":
    raise SystemExit(main("label", body))
