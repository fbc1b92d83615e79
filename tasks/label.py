"""Stage label: K distinct SFT samples per RM prompt, ranked by the labelers ``label.labelers``
selects (simulated or human; the library is `instructgpt.labeling`); on ``label.demonstration_prompts``
SFT prompts, K - 1 samples with the labelers' demonstration among them.

Human labelers: the open ranking tasks go to ``labels/outbox/rank_tasks.jsonl``; while any is open
and ``label.wait`` is true the stage stops with exit code 5 (awaiting labels).

``python -m tasks.label --round 2`` is stage label_round2 (``rounds.n: 2``, tasks/rounds.py): the
same with candidate sets on PPO prompts that mix the round-1 PPO-ptx policy's samples with SFT's,
ranked by the same labelers (people: tasks in ``labels/outbox/rank_tasks_round2.jsonl``, answers in
the ``round2/`` subdirectory of ``inputs.rankings``, which round 1 does not read).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd

from tasks import inputs
from tasks.gates import Table
from tasks.jsonl import write_jsonl
from tasks.rankings import ranking_tables
from tasks.shell.awaiting import AwaitingLabels
from tasks.shell.run import main
from tasks.shell.stage import Stage

SFT_MODEL = "outputs/sft/model"
POLICY_ROUND1 = "outputs/ppo/model"  # round 2 samples the round-1 PPO-ptx policy
OUTBOX = Path("labels/outbox")
RANK_TASKS = OUTBOX / "rank_tasks.jsonl"
RANK_REJECTED = OUTBOX / "rank_rejected.jsonl"  # what people sent that cannot be used, while waiting


def body(stage: Stage) -> None:
    from instructgpt.labeling.run import label
    from instructgpt.labeling.validation import PromptIndex
    from instructgpt.labeling.config import LabelConfig

    cfg = stage.config(LabelConfig)
    prompts = inputs.prompts("rm", ("train", "valid"))
    stage.gate(input_tables(prompts, "rm_prompts"))
    index = PromptIndex.from_frames(inputs.prompts(), inputs.read_jsonl(inputs.QUARANTINE))
    result = label(cfg, prompts, index, inputs.raw("rankings"), SFT_MODEL, device=str(stage.compute.device),
                   demonstrated=demonstrated_prompts() if cfg.demonstration_prompts else None)
    if cfg.labelers == "human":
        hand_over(stage, cfg, result, RANK_TASKS, inputs.raw("rankings"))
    finish(stage, cfg, result, "outputs/label")


def body_round2(stage: Stage) -> None:
    """label_round2: candidate sets of PPO prompts, the round-1 policy's samples among SFT's."""
    from instructgpt.labeling.run import label, make_labelers
    from instructgpt.labeling.sampling import mixed_sampler, sft_sampler
    from instructgpt.labeling.validation import PromptIndex
    from instructgpt.rounds import RoundsConfig
    from instructgpt.labeling.config import LabelConfig

    rounds = stage.config(RoundsConfig, section="rounds")
    cfg = stage.config(LabelConfig, overrides={"max_prompts": rounds.max_prompts, "demonstration_prompts": 0})
    prompts = inputs.prompts("ppo", ("train", "valid"))
    stage.gate(input_tables(prompts, "round2_prompts"))
    index = PromptIndex.from_frames(inputs.prompts(), inputs.read_jsonl(inputs.QUARANTINE))
    device = str(stage.compute.device)
    temperatures = cfg.temperatures or cfg.temperature
    sampler = mixed_sampler(
        sft_sampler(POLICY_ROUND1, cfg.max_new_tokens, temperatures, cfg.batch_size, cfg.seed, device),
        sft_sampler(SFT_MODEL, cfg.max_new_tokens, temperatures, cfg.batch_size, cfg.seed, device),
        rounds.policy_share)
    labelers = None
    if cfg.labelers == "human":  # people answer round 2 in inputs.rankings/round2/ (round 1 never reads it)
        from instructgpt.labeling.formats import ROUND2_DIR
        from instructgpt.labeling.human import HumanLabelers

        make_labelers(cfg, inputs.raw("rankings"), index)  # the checks of inputs.rankings
        answers = inputs.raw("rankings") / ROUND2_DIR
        labelers = HumanLabelers(answers, index, cfg.k_min, cfg.k_max, missing_ok=True)
    result = label(cfg, prompts, index, inputs.raw("rankings"), sampler=sampler, labelers=labelers)
    if cfg.labelers == "human":
        hand_over(stage, cfg, result, OUTBOX / "rank_tasks_round2.jsonl", answers)
    finish(stage, cfg, result, "outputs/label_round2")


def finish(stage: Stage, cfg, result, out_dir: str) -> None:
    """Gate the usable rankings, write them (comparisons.jsonl) and the rejected ones, log."""
    rows = result.comparisons
    stage.gate(ranking_tables(rows, cfg.k_min, cfg.k_max), part="outputs")
    write_jsonl(stage.path(f"{out_dir}/comparisons.jsonl"), rows)
    write_jsonl(stage.path(f"{out_dir}/rejected.jsonl"), result.rejected)
    stage.metrics.update(result.metrics)
    if result.rejected:
        print(f"[{stage.name}] {len(result.rejected)} ranking(s) rejected ({summary(result.rejected)}): "
              f"{out_dir}/rejected.jsonl")
    if stage.run is not None:
        import mlflow

        mlflow.log_table(pd.DataFrame(rows[:30]), f"{stage.name}/sample_rankings.json")
        if result.rejected:
            mlflow.log_table(pd.DataFrame(result.rejected[:200]), f"{stage.name}/rejected.json")


def demonstrated_prompts() -> pd.DataFrame:
    """SFT prompts (train and valid splits) with their demonstration (the first, when several):
    prompt_id, text, response."""
    from instructgpt.ingest.labeled import read_demonstrations

    demos = read_demonstrations(inputs.raw("demonstrations")).drop_duplicates("prompt_id")
    prompts = inputs.prompts("sft", ("train", "valid"))
    return prompts.merge(demos[["prompt_id", "response"]], on="prompt_id", how="inner")


def hand_over(stage: Stage, cfg, result, tasks_file: Path, answers: Path) -> None:
    """Export the open ranking tasks to ``tasks_file``; stop while people have not answered them
    (``label.wait``); their answers go into ``answers``."""
    from instructgpt.labeling.formats import write_jsonl as write_tasks

    write_tasks(tasks_file, result.tasks)
    pending, answered = len(result.tasks), result.collection.answered
    if pending and cfg.wait:
        write_tasks(RANK_REJECTED, result.rejected)
        rejected = (f" {len(result.rejected)} answer(s) were rejected ({summary(result.rejected)}; "
                    f"each with its file, line and reason in {RANK_REJECTED})." if result.rejected else "")
        raise AwaitingLabels(
            stage.name, "ranking", tasks_file, pending, answered, answers,
            how=f"Or set label.wait: false to train on the {len(result.comparisons)} usable ranking(s) "
                f"there are.{rejected}")
    if pending:
        print(f"[{stage.name}] {pending} ranking task(s) still open in {tasks_file} (label.wait is false): "
              f"training on the {len(result.comparisons)} usable ranking(s) there are")
    RANK_REJECTED.unlink(missing_ok=True)
    AwaitingLabels.marker_of(stage.name).unlink(missing_ok=True)  # no longer waiting


def summary(rejected: list[dict]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in Counter(r["reason"] for r in rejected).most_common())


def input_tables(prompts: pd.DataFrame, name: str) -> list[Table]:
    return [
        Table(name, prompts, [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="prompt_id"),
            gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        ])
    ]


if __name__ == "__main__":
    if "--round" in sys.argv[1:]:  # label_round2 (tasks/rounds.py)
        from tasks.rounds import second_round

        raise SystemExit(main("label_round2", second_round(body_round2), section="label"))
    raise SystemExit(main("label", body))
