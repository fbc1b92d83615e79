"""Stage ingest: raw prompt log -> SFT/RM/PPO prompts split by user, quarantine, report."""

from __future__ import annotations

import json
from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd

from instructgpt.config import ConfigError
from tasks import inputs
from tasks.gates import Table
from tasks.pii import pii_types
from tasks.shell.run import main
from tasks.shell.stage import Stage

COLUMNS = ["prompt_id", "user_id", "text", "timestamp", "source", "style", "dataset", "split"]


def body(stage: Stage) -> None:
    from instructgpt.ingest import IngestConfig, PiiDetector, ingest

    cfg = stage.config(IngestConfig)
    labeled = labeled_prompts(stage)
    result = ingest(inputs.raw("prompts"), cfg, progress=True, labeled=labeled)
    kept, report = result.kept, result.report
    starved = starved_stages(kept, labeled, cfg)
    if starved:
        raise StarvedStage("these stages would find no data (nothing was written):\n" + "\n".join(starved))
    detector = PiiDetector(cfg.pii)
    stage.gate(gate_tables(kept, report, cfg.max_prompts_per_user, detector), part="outputs")

    _write_frame(stage.path("outputs/ingest/prompts.jsonl"), kept[COLUMNS])
    _write_frame(stage.path("outputs/ingest/quarantine.jsonl"), result.quarantine)
    if report["ignored_files"]:
        print(f"[ingest] not read (not *.jsonl / *.parquet, or hidden): {report['ignored_files']}")
    for kind, went in report["labels"].items():
        print(f"[ingest] prompts with a {kind}: {went['kept']} of {went['prompts']} kept "
              f"({went['kept_over_earlier_copy']} instead of an earlier copy), dropped {went['dropped']}, "
              f"not in the log {went['not_in_log']}")
    stage.metrics.update(_flat_report(report))
    stage.path("outputs/ingest/report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    if stage.run is not None:
        import mlflow

        mlflow.log_dict(report, "ingest/report.json")
        reasons = result.quarantine["reason"].value_counts().rename_axis("reason").reset_index()
        mlflow.log_table(reasons, "ingest/quarantine_reasons.json")
        mlflow.log_table(kept.sample(min(50, len(kept)), random_state=0)[COLUMNS], "ingest/sample.json")


class StarvedStage(ConfigError):
    """Ingest's datasets would leave a later stage with nothing to read. Raised before any output
    and any training: otherwise the pipeline trains the base and SFT models for minutes and only
    the label (or PPO, or evaluate) stage's gate says that its table is empty, without saying
    which setting emptied it. A ConfigError (exit 2, not retried): the settings or labels must change."""

    kind = "a later stage would starve"


def starved_stages(kept: pd.DataFrame, labeled, cfg) -> list[str]:
    """One line per later stage whose input ingest leaves empty: the stage, the dataset and splits
    it reads (the same tables its gate requires non-empty), and the setting to change."""
    datasets = cfg.datasets
    by_labels = datasets.assign == "labels"

    def rows(dataset: str | None, splits: tuple[str, ...]) -> pd.DataFrame:
        chosen = kept["split"].isin(splits)
        return kept[chosen & (kept["dataset"] == dataset)] if dataset else kept[chosen]

    out = []
    sft_train = rows("sft", ("train",))
    if not sft_train["prompt_id"].isin(labeled.demonstrated).any():
        hint = ("give log prompts a demonstration (inputs.demonstrations): with assign: labels they go to SFT"
                if by_labels else f"raise ingest.datasets.sft (now {datasets.sft}) or add demonstrations "
                                  "(inputs.demonstrations) for more log prompts")
        out.append(f"- sft: no SFT train prompt has a demonstration ({len(sft_train)} SFT train prompts, "
                   f"{len(labeled.demonstrated)} prompt ids in inputs.demonstrations): {hint}")
    if rows("rm", ("train", "valid")).empty:
        hint = f"raise ingest.datasets.rm (now {datasets.rm})"
        if by_labels:
            hint += (" or give prompts a human ranking (inputs.rankings with label.labelers: human): "
                     "with assign: labels they go to RM")
        out.append(f"- label: no RM prompt in the train/valid splits to rank: {hint}")
    if rows("ppo", ("train",)).empty:
        api = int((kept["source"] == "api").sum())
        out.append(f"- ppo: no PPO prompt in the train split ({api} kept API prompts; PPO takes API prompts "
                   f"only): raise ingest.datasets.ppo (now {datasets.ppo})")
    if rows(None, ("test",)).empty:
        out.append(f"- evaluate: no prompt in the test split ({len(kept)} kept prompts): raise "
                   f"ingest.split.test (now {cfg.split.test}) or bring prompts from more users (the split is by user)")
    return out


def labeled_prompts(stage: Stage):
    """The prompts people already labeled: those with a demonstration, and those with a human
    ranking in `inputs.rankings` when `label.labelers` is human (with simulated labelers
    `inputs.rankings` is the world: no ranking exists yet). Read with any `ingest.datasets.assign`:
    dedup keeps the labeled copy of a duplicated prompt, and the report counts where each went;
    `assign: labels` also sends them to SFT and RM."""
    from instructgpt.ingest.labeled import Labeled, labeled_prompt_ids, read_demonstrations

    demonstrated = frozenset(read_demonstrations(inputs.raw("demonstrations"))["prompt_id"])
    human = (stage.params.get("label") or {}).get("labelers", "simulated") == "human"
    ranked = frozenset(labeled_prompt_ids(inputs.raw("rankings")) if human else ())
    print(f"[ingest] labels: {len(demonstrated)} prompts with a demonstration, "
          f"{len(ranked)} with a human ranking" + ("" if human else " (label.labelers is not human)"))
    return Labeled(demonstrated, ranked)


def gate_tables(kept: pd.DataFrame, report: dict, cap: int, detector) -> list[Table]:
    """The output suite: schema, non-empty text, unique ids, users in one split, cap, no PII, counts."""
    users = kept.groupby("user_id").agg(n_splits=("split", "nunique"), n_prompts=("prompt_id", "size"))
    users = users.reset_index()
    pii = pd.DataFrame(
        {"prompt_id": kept["prompt_id"], "pii_types": pii_types(detector, kept["text"])}
    )
    accounting = pd.DataFrame(
        [{"rows_in": report["rows_in"], "kept_plus_removed": report["kept"] + report["removed"], "kept_rows": len(kept)}]
    )
    prompts_checks = [gxe.ExpectTableRowCountToBeBetween(min_value=1)]
    prompts_checks += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in COLUMNS]
    prompts_checks += [
        gxe.ExpectColumnValuesToBeUnique(column="prompt_id"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="dataset", value_set=["sft", "rm", "ppo"]),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "valid", "test"]),
        gxe.ExpectColumnValuesToBeInSet(column="source", value_set=["api", "labeler"]),
    ]
    return [
        Table("prompts", kept, prompts_checks),
        Table("users", users, [
            gxe.ExpectColumnValuesToBeBetween(column="n_splits", min_value=1, max_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="n_prompts", min_value=1, max_value=cap),
        ]),
        Table("pii", pii, [gxe.ExpectColumnValuesToBeInSet(column="pii_types", value_set=[""])]),
        Table("accounting", accounting, [
            gxe.ExpectColumnPairValuesToBeEqual(column_A="rows_in", column_B="kept_plus_removed"),
            gxe.ExpectColumnValuesToBeBetween(column="kept_rows", min_value=report["kept"], max_value=report["kept"]),
        ]),
    ]


def _flat_report(report: dict) -> dict[str, float]:
    out = {k: v for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for ds, splits in (report.get("kept_by_dataset_split") or {}).items():
        for split, n in splits.items():
            out[f"kept/{ds}/{split}"] = n
    for reason, n in (report.get("quarantined_by_reason") or {}).items():
        out[f"removed/{reason.replace(':', '_')}"] = n
    for reason, n in (report.get("assigned_by_reason") or {}).items():
        out[f"assigned/{reason}"] = n
    for kind, went in (report.get("labels") or {}).items():
        out[f"labels/{kind}/kept"] = went["kept"]
        out[f"labels/{kind}/kept_over_earlier_copy"] = went["kept_over_earlier_copy"]
        out[f"labels/{kind}/dropped"] = sum(went["dropped"].values())
        out[f"labels/{kind}/not_in_log"] = went["not_in_log"]
    out["ignored_files"] = len(report.get("ignored_files") or [])
    return out


def _write_frame(path: Path, frame: pd.DataFrame) -> None:
    frame.to_json(path, orient="records", lines=True, force_ascii=False)


if __name__ == "__main__":
    raise SystemExit(main("ingest", body))
