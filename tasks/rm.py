"""Stage rm: reward model from the K-way rankings, initialised from the SFT model (the paper) or
from a team's own model (``rm.model_path``, inside ``inputs.models``; its own tokenizer).

``python -m tasks.rm --round 2`` is stage rm_round2 (``rounds.n: 2``, tasks/rounds.py): a new RM,
from the same start, on both rounds' comparisons (round 1's and label_round2's)."""

from __future__ import annotations

import sys

import great_expectations.expectations as gxe
import pandas as pd

from tasks import inputs
from tasks.gates import Table
from tasks.rankings import ranking_tables
from tasks.shell.run import main
from tasks.shell.stage import Stage

COMPARISONS = "outputs/label/comparisons.jsonl"
COMPARISONS_ROUND2 = "outputs/label_round2/comparisons.jsonl"


def make_body(files: tuple[str, ...], out_dir: str):
    """The stage body training on the comparisons in ``files`` into ``out_dir``/model."""

    def body(stage: Stage) -> None:
        from pathlib import Path

        from instructgpt.config import from_dict
        from instructgpt.labeling.config import LabelConfig
        from instructgpt.train.reward import RewardConfig

        cfg = stage.config(RewardConfig)
        if cfg.model_path:
            from instructgpt.models import check_model_path

            check_model_path(cfg.model_path, inputs.raw("models"), "rm.model_path")
        per_file = [inputs.read_jsonl(Path(f)) for f in files]
        comps = pd.concat(per_file, ignore_index=True)
        rows = comps.to_dict("records")
        label = from_dict(LabelConfig, stage.params.get("label"), "label")  # the K bounds the label stage kept
        tables = ranking_tables(rows, label.k_min, label.k_max)
        tables.append(split_table(comps))
        stage.gate(tables)

        train = [_comparison(r) for r in rows if r["split"] == "train"]
        valid = [_comparison(r) for r in rows if r["split"] == "valid"]
        demos = demonstrations()
        out = stage.path(f"{out_dir}/model")
        stage.metrics.update(run_rm(cfg, train, valid, demos, out, stage))
        stage.metrics["data/train_comparisons"] = len(train)
        stage.metrics["data/valid_comparisons"] = len(valid)
        if len(per_file) > 1:  # round 2: how many comparisons each round brought
            stage.metrics["data/round2_comparisons"] = len(per_file[1])
        # what the labels allow: two labelers' agreement, and (the world) the noise-free truth's
        for key, name in (("agreement/heldout_vs_train", "valid/agreement_ceiling"),
                          ("ceiling/noise_free_valid", "valid/noise_free_ceiling")):
            for label_dir, suffix in (("outputs/label", ""), ("outputs/label_round2", "_round2"))[:len(files)]:
                value = _label_metric(key, label_dir)
                if value is not None:
                    stage.metrics[name + suffix] = value
        if stage.run is not None:
            import mlflow

            mlflow.log_artifacts(str(out), "model")

    return body


body = make_body((COMPARISONS,), "outputs/rm")


def run_rm(cfg, train, valid, demos, out, stage: Stage) -> dict:
    """Train from ``rm.model_path`` or the SFT model; the RM directory keeps the tokenizer it was
    trained with (PPO and the scorers read text through it)."""
    from instructgpt.models import load_tokenizer
    from instructgpt.reward_model import RewardModel
    from instructgpt.train.reward import train_reward_model

    start = cfg.model_path or "outputs/sft/model"
    tokenizer = load_tokenizer(start)
    rm = stage.place(RewardModel.from_causal_lm(start))
    metrics = train_reward_model(rm, tokenizer, train, valid, demos, cfg, stage.log)
    rm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    stage.save_config(out)
    return metrics


def demonstrations() -> list[tuple[str, str]]:
    """(prompt, demonstration) of the SFT training prompts: their mean reward is set to 0."""
    prompts = inputs.prompts("sft", ("train",))
    from instructgpt.ingest.labeled import read_demonstrations

    demos = read_demonstrations(inputs.raw("demonstrations"))
    joined = prompts.merge(demos, on="prompt_id", how="inner")
    return list(zip(joined["text"].astype(str), joined["response"].astype(str)))


def split_table(comps: pd.DataFrame) -> Table:
    """Train and valid comparisons come from disjoint users."""
    users = comps.groupby("user_id")["split"].nunique().rename("n_splits").reset_index()
    return Table("comparison_users", users, [
        gxe.ExpectColumnValuesToBeBetween(column="n_splits", min_value=1, max_value=1),
    ])


def _comparison(row: dict):
    from instructgpt.train.reward import Comparison

    return Comparison(prompt=row["prompt"], responses=list(row["responses"]), ranking=[int(x) for x in row["ranking"]])


def _label_metric(key: str, label_dir: str = "outputs/label") -> float | None:
    import json
    from pathlib import Path

    p = Path(label_dir) / "metrics.json"
    if not p.exists():
        return None
    node = json.loads(p.read_text())
    for part in key.split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, (int, float)) else None


if __name__ == "__main__":
    if "--round" in sys.argv[1:]:  # rm_round2 (tasks/rounds.py)
        from tasks.rounds import second_round

        raise SystemExit(main("rm_round2", second_round(make_body((COMPARISONS, COMPARISONS_ROUND2),
                                                                  "outputs/rm_round2")), section="rm"))
    raise SystemExit(main("rm", make_body((COMPARISONS,), "outputs/rm")))
