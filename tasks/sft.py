"""Stage sft: fine-tune the base model on labeler demonstrations of the SFT prompts."""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from tasks import inputs
from tasks.common import Stage, main, write_jsonl
from tasks.gates import Table
from tasks.pii import pii_detector, pii_types

MAX_RESPONSE_CHARS = 2000


def body(stage: Stage) -> None:
    from instructgpt.train.sft import SFTConfig

    cfg = stage.config(SFTConfig)
    prompts = inputs.prompts("sft", ("train", "valid"))
    demos = inputs.read_jsonl(inputs.raw("demonstrations"))
    known = known_prompt_ids()
    joined = prompts.merge(demos, on="prompt_id", how="left", validate="one_to_many")
    stage.gate(gate_tables(prompts, demos, joined, known, pii_detector(stage.params)))

    train = _pairs(joined[joined["split"] == "train"])
    valid = _pairs(joined[joined["split"] == "valid"])
    model_dir = stage.path("outputs/sft/model")
    stage.metrics.update(run_sft(cfg, train, valid, model_dir, stage))
    stage.metrics["data/train_pairs"] = len(train)
    stage.metrics["data/valid_pairs"] = len(valid)
    samples = sample_valid(model_dir, [p for p, _ in valid[:32]], cfg.seed)
    write_jsonl(stage.path("outputs/sft/samples.jsonl"), samples)
    if stage.run is not None:
        import mlflow

        mlflow.log_table(pd.DataFrame(samples), "sft/samples.json")
        mlflow.log_artifacts(str(model_dir), "model")


def run_sft(cfg, train, valid, model_dir, stage: Stage) -> dict:
    from instructgpt.models import load_causal_lm, save_model
    from instructgpt.train.sft import train_sft

    model, tokenizer = load_causal_lm("outputs/base/model", dropout=cfg.dropout)
    metrics = train_sft(model, tokenizer, train, valid, cfg, stage.log)
    save_model(model, tokenizer, model_dir)
    stage.save_config(model_dir)
    return metrics


def sample_valid(model_dir, prompts: list[str], seed: int) -> list[dict]:
    """A few responses of the new model to validation prompts, for people to read."""
    from instructgpt.generation import sample
    from instructgpt.models import load_causal_lm

    model, tokenizer = load_causal_lm(model_dir)
    out = sample(model, tokenizer, prompts, max_new_tokens=48, temperature=0.7, batch_size=32, seed=seed)
    return [{"prompt": s.prompt, "response": s.response, "ended_with_eos": s.ended_with_eos} for s in out]


def known_prompt_ids() -> set[str]:
    """Every prompt id of the raw log, JSONL or Parquet (demonstrations may refer to prompts
    ingestion removed, or did not read under ``ingest.limit_rows``)."""
    from instructgpt.ingest.schema import read_rows

    rows, malformed, _ = read_rows(inputs.raw("prompts"), None)
    ids = [*rows.get("prompt_id", []), *malformed.get("prompt_id", [])]
    return {pid for pid in ids if isinstance(pid, str)}


def gate_tables(prompts, demos, joined, known: set[str], detector) -> list[Table]:
    """Demonstrations joined to prompts, lengths in bounds, no PII."""
    demo_ids = demos.get("prompt_id", pd.Series(dtype=str)).astype(str)
    demo_table = pd.DataFrame({"prompt_id": demo_ids, "prompt_known": demo_ids.isin(known)})
    has_demo = prompts[["prompt_id"]].copy()
    has_demo["has_demonstration"] = has_demo["prompt_id"].isin(set(demo_ids))
    used = joined.dropna(subset=["response"])
    responses = pd.DataFrame(
        {
            "prompt_id": used["prompt_id"],
            "labeler_id": used.get("labeler_id"),
            "response": used["response"],
            "pii_types": pii_types(detector, used["response"]),
        }
    )
    return [
        Table("demonstrations", demo_table, [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="prompt_known", value_set=[True]),
        ]),
        Table("sft_prompts", has_demo, [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="has_demonstration", value_set=[True]),
        ]),
        Table("responses", responses, [
            gxe.ExpectColumnValuesToNotBeNull(column="labeler_id"),
            gxe.ExpectColumnValueLengthsToBeBetween(column="response", min_value=1, max_value=MAX_RESPONSE_CHARS),
            gxe.ExpectColumnValuesToBeInSet(column="pii_types", value_set=[""]),
        ]),
    ]


def _pairs(df: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(df["text"].astype(str), df["response"].astype(str)))


if __name__ == "__main__":
    raise SystemExit(main("sft", body))
