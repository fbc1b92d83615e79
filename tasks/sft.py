"""Stage sft: fine-tune the base model on labeler demonstrations of the SFT prompts.

Which demonstrations it trains on (docs/ARCHITECTURE.md, "Datasets"): those of the SFT prompts in
the train and valid splits of the ingest stage. A demonstration of a prompt that ingestion put in
another dataset or in the test split, or removed, is not used and is counted per reason in the
metrics (`data/demonstrations_unused/<reason>`). An SFT prompt without a demonstration is
exported as a "write the ideal response" task to labels/outbox/demo_tasks.jsonl and counted
(`data/sft_prompts_without_demonstration`); SFT trains on the others. The gate fails only on
what people must fix: a demonstration of a prompt the log does not hold, a bad response, or no
training pair at all (the message says what to do).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd

from tasks import inputs
from tasks.gates import GateFailed, Table
from tasks.jsonl import write_jsonl
from tasks.pii import pii_detector, pii_types
from tasks.shell.run import main
from tasks.shell.stage import Stage

MAX_RESPONSE_CHARS = 2000
DEMO_TASKS = Path("labels/outbox/demo_tasks.jsonl")
UNUSED_REASONS = ("dataset_rm", "dataset_ppo", "test_split", "prompt_not_kept")


def body(stage: Stage) -> None:
    from instructgpt.train.sft import SFTConfig

    cfg = stage.config(SFTConfig)
    kept = inputs.prompts()
    prompts = inputs.prompts("sft", ("train", "valid"))
    demos = demonstrations()
    known = known_prompt_ids(stage.params)
    joined = prompts.merge(demos[["prompt_id", "labeler_id", "response"]], on="prompt_id", how="inner",
                           validate="one_to_many")
    train = _pairs(joined[joined["split"] == "train"])
    valid = _pairs(joined[joined["split"] == "valid"])
    missing = prompts[~prompts["prompt_id"].isin(set(demos["prompt_id"]))]
    if stage.is_main:
        export_demo_tasks(missing, DEMO_TASKS)
    unused = unused_demonstrations(demos, kept, known)
    stage.metrics.update(data_metrics(prompts, demos, missing, unused, len(train), len(valid)))
    unknown = demos[~demos["prompt_id"].isin(known)]
    if len(unknown):
        print(f"[sft] {len(unknown)} demonstration(s) refer to a prompt the log does not hold, e.g. "
              + ", ".join(f"{w} (prompt_id {p!r})" for w, p in zip(unknown["where"][:3], unknown["prompt_id"][:3])))
    try:
        stage.gate(gate_tables(demos, joined, known, len(train), pii_detector(stage.params)))
    except GateFailed as exc:
        if not train:
            raise GateFailed(f"{exc}\n{no_pairs_hint(prompts, missing)}") from exc
        raise

    model_dir = stage.path("outputs/sft/model")
    stage.metrics.update(run_sft(cfg, train, valid, model_dir, stage))
    if not stage.is_main:  # the samples read the saved model back: transformers writes it on rank 0 only
        return
    samples = sample_valid(model_dir, [p for p, _ in valid[:32]], cfg.seed, stage)
    write_jsonl(stage.path("outputs/sft/samples.jsonl"), samples)
    if stage.run is not None:
        import mlflow

        mlflow.log_table(pd.DataFrame(samples), "sft/samples.json")
        mlflow.log_artifacts(str(model_dir), "model")


def demonstrations() -> pd.DataFrame:
    """Every demonstration of inputs.demonstrations (a file or a directory of JSONL/Parquet
    partitions): prompt_id, labeler_id, response, where ("file:line"); a malformed line stops
    the stage with an error naming the file, the line and the field."""
    from instructgpt.ingest.labeled import read_demonstrations

    return read_demonstrations(inputs.raw("demonstrations"))


def export_demo_tasks(missing: pd.DataFrame, path: Path) -> None:
    """SFT prompts without a demonstration as tasks for people, one JSON object a line:
    {"task_id", "prompt_id", "prompt"} (task_id: a stable hash of the prompt id). The answers
    are demonstrations: add them to inputs.demonstrations. No such prompt: no file."""
    if missing.empty:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, [
        {"task_id": demo_task_id(pid), "prompt_id": pid, "prompt": text}
        for pid, text in zip(missing["prompt_id"].astype(str), missing["text"].astype(str))
    ])
    print(f"[sft] {len(missing)} SFT prompt(s) have no demonstration: exported to {path} "
          "(write the ideal response to each; add them to inputs.demonstrations)")


def demo_task_id(prompt_id: str) -> str:
    """Stable id of the "write the ideal response" task for a prompt."""
    return "demo-" + hashlib.blake2b(f"demo:{prompt_id}".encode(), digest_size=8).hexdigest()


def unused_demonstrations(demos: pd.DataFrame, kept: pd.DataFrame, known: set[str]) -> pd.Series:
    """Why each demonstration that SFT does not train on is left out (index: demos'): its prompt
    is in the RM or PPO dataset, in the test split, or was removed by ingestion (or not read under
    ingest.limit_rows); a prompt unknown to the log is the gate's (NA here, like a used one)."""
    where = kept.drop_duplicates("prompt_id").set_index("prompt_id")
    dataset = demos["prompt_id"].map(where["dataset"]) if len(where) else pd.Series(pd.NA, index=demos.index)
    split = demos["prompt_id"].map(where["split"]) if len(where) else pd.Series(pd.NA, index=demos.index)
    reason = pd.Series(pd.NA, index=demos.index, dtype=object)
    reason[dataset.isin(["rm", "ppo"])] = "dataset_" + dataset[dataset.isin(["rm", "ppo"])].astype(str)
    reason[(dataset == "sft") & (split == "test")] = "test_split"
    reason[dataset.isna() & demos["prompt_id"].isin(known)] = "prompt_not_kept"
    return reason


def data_metrics(prompts, demos, missing, unused: pd.Series, n_train: int, n_valid: int) -> dict[str, float]:
    """What SFT trained on and what it left out, each with its reason."""
    counts = unused.value_counts()
    out = {
        "data/train_pairs": n_train,
        "data/valid_pairs": n_valid,
        "data/sft_prompts": len(prompts),
        "data/sft_prompts_without_demonstration": len(missing),
        "data/demonstrations": len(demos),
        "data/demonstrations_used": n_train + n_valid,
    }
    out.update({f"data/demonstrations_unused/{r}": int(counts.get(r, 0)) for r in UNUSED_REASONS})
    print("[sft] " + ", ".join(f"{k.removeprefix('data/')} {v}" for k, v in out.items()))
    return out


def no_pairs_hint(prompts: pd.DataFrame, missing: pd.DataFrame) -> str:
    """What to do when SFT has nothing to train on."""
    if prompts.empty:
        return ("SFT has no training pairs: ingestion put no prompt in the SFT dataset's train split. "
                "Raise ingest.datasets.sft, or set ingest.datasets.assign: labels so that prompts with "
                "a demonstration go to SFT, then run dvc repro again.")
    return (f"SFT has no training pairs: none of the {len(prompts)} SFT train/valid prompts has a "
            f"demonstration. {len(missing)} 'write the ideal response' tasks are in {DEMO_TASKS}: "
            "write a response to each and add them to inputs.demonstrations as JSONL "
            '{"prompt_id", "labeler_id", "response"}, or set ingest.datasets.assign: labels so that '
            "the prompts you have demonstrations for go to SFT; then run dvc repro again.")


def run_sft(cfg, train, valid, model_dir, stage: Stage) -> dict:
    from instructgpt.models import load_causal_lm, save_model
    from instructgpt.train.sft import train_sft

    model, tokenizer = load_causal_lm("outputs/base/model", dropout=cfg.dropout)
    stage.place(model)
    metrics = train_sft(model, tokenizer, train, valid, cfg, stage.log)
    save_model(model, tokenizer, model_dir)
    stage.save_config(model_dir)
    return metrics


def sample_valid(model_dir, prompts: list[str], seed: int, stage: Stage) -> list[dict]:
    """A few responses of the new model to validation prompts, for people to read."""
    from instructgpt.generation import sample
    from instructgpt.models import load_causal_lm

    model, tokenizer = load_causal_lm(model_dir)
    stage.place(model)
    out = sample(model, tokenizer, prompts, max_new_tokens=48, temperature=0.7, batch_size=32, seed=seed)
    return [{"prompt": s.prompt, "response": s.response, "ended_with_eos": s.ended_with_eos} for s in out]


def known_prompt_ids(params: dict) -> set[str]:
    """Every prompt id of the raw log (a file or partitions, with ingest.columns), as ingestion
    reads it: demonstrations may refer to prompts ingestion removed, or did not read under
    ``ingest.limit_rows``."""
    from instructgpt.ingest import IngestConfig
    from instructgpt.ingest.schema import read_rows

    columns = IngestConfig(columns=(params.get("ingest") or {}).get("columns") or {}).columns
    log = read_rows(inputs.raw("prompts"), None, columns)
    ids = [*log.rows["prompt_id"], *log.quarantine["prompt_id"]]
    return {pid for pid in ids if isinstance(pid, str)}


def gate_tables(demos, joined, known: set[str], n_train: int, detector) -> list[Table]:
    """Every demonstration refers to a logged prompt; the used responses are in bounds and free
    of PII; at least one training pair."""
    demo_table = pd.DataFrame({"prompt_id": demos["prompt_id"], "where": demos["where"],
                               "prompt_known": demos["prompt_id"].isin(known)})
    responses = pd.DataFrame(
        {
            "prompt_id": joined["prompt_id"],
            "labeler_id": joined["labeler_id"],
            "response": joined["response"],
            "pii_types": pii_types(detector, joined["response"]),
        }
    )
    return [
        Table("demonstrations", demo_table, [
            gxe.ExpectColumnValuesToBeInSet(column="prompt_known", value_set=[True]),
        ]),
        Table("responses", responses, [
            gxe.ExpectColumnValuesToNotBeNull(column="labeler_id"),
            gxe.ExpectColumnValueLengthsToBeBetween(column="response", min_value=1, max_value=MAX_RESPONSE_CHARS),
            gxe.ExpectColumnValuesToBeInSet(column="pii_types", value_set=[""]),
        ]),
        Table("training", pd.DataFrame([{"train_pairs": n_train}]), [
            gxe.ExpectColumnValuesToBeBetween(column="train_pairs", min_value=1),
        ]),
    ]


def _pairs(df: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(df["text"].astype(str), df["response"].astype(str)))


if __name__ == "__main__":
    raise SystemExit(main("sft", body))
