"""Stage base: a tokenizer and a small causal LM "pretrained" on the corpus (or your own model)."""

from __future__ import annotations

import shutil
from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd

from tasks import inputs
from tasks.gates import Table
from tasks.shell.run import main
from tasks.shell.stage import Stage


def body(stage: Stage) -> None:
    from instructgpt.train.pretrain import BaseConfig

    cfg = stage.config(BaseConfig)
    if cfg.model_path:
        from instructgpt.models import check_model_path

        check_model_path(cfg.model_path, inputs.raw("models"), "base.model_path")
    docs = inputs.corpus(cfg.max_documents)
    task = inputs.nlp_task(cfg.nlp_task_items, "base.nlp_task_items")  # a malformed file fails before training
    stage.gate(gate_tables(docs, cfg.model_path))
    out = stage.path("outputs/base/model")
    train_texts, heldout_texts = inputs.split_corpus(docs, cfg.heldout_fraction)
    if cfg.model_path:
        # Your own model: nothing to train, the directory becomes the stage's output.
        shutil.copytree(cfg.model_path, out)
        stage.metrics["trained"] = 0
    else:
        stage.metrics.update(pretrain(cfg, train_texts, heldout_texts, out, stage))
        stage.metrics["trained"] = 1
    if stage.is_main:  # reads the saved model back: transformers writes it on rank 0 only under torchrun
        stage.metrics.update(score(out, heldout_texts, task, stage))
    stage.metrics["corpus/train_docs"] = len(train_texts)
    stage.metrics["corpus/heldout_docs"] = len(heldout_texts)
    if stage.run is not None:
        import mlflow

        mlflow.log_artifacts(str(out), "model")


def pretrain(cfg, train_texts: list[str], heldout_texts: list[str], out: Path, stage: Stage) -> dict:
    from instructgpt.models import build_causal_lm, save_model
    from instructgpt.tokenizer import train_tokenizer
    from instructgpt.train.pretrain import pretrain as run_pretrain

    tokenizer = train_tokenizer(train_texts, cfg.vocab_size)
    model = stage.place(build_causal_lm(cfg.model, tokenizer, seed=cfg.train.seed))
    metrics = run_pretrain(model, tokenizer, train_texts, heldout_texts, cfg.train, stage.log)
    save_model(model, tokenizer, out)
    stage.save_config(out)
    return metrics


def score(model_dir: Path, heldout_texts: list[str], task: inputs.NlpTask, stage: Stage) -> dict[str, float]:
    """Held-out corpus loss and public-NLP-task accuracy of the base model (alignment tax baseline);
    without NLP task items the accuracy is absent (``stage.absent`` says why), never 0."""
    from instructgpt.evaluation import choice_accuracy, corpus_loss
    from instructgpt.models import load_causal_lm

    model, tokenizer = load_causal_lm(model_dir)
    stage.place(model)
    out = {"heldout/loss": corpus_loss(model, tokenizer, heldout_texts[:500])}
    if task.absent:
        stage.absent["nlp_task/accuracy"] = task.absent
        print(f"[base] NLP task accuracy absent: {task.absent}")
    else:
        out["nlp_task/accuracy"] = choice_accuracy(model, tokenizer, task.items)
        out["nlp_task/items"] = len(task.items)
    return out


def gate_tables(docs: pd.DataFrame, model_path: str | None) -> list[Table]:
    """Corpus non-empty, ids unique, every text a non-empty decodable string; own model present."""
    checks = pd.DataFrame(
        {
            "doc_id": docs.get("doc_id", pd.Series(dtype=str)),
            "text_is_str": docs.get("text", pd.Series(dtype=object)).map(lambda t: isinstance(t, str)),
            "text_len": docs.get("text", pd.Series(dtype=object)).map(lambda t: len(t) if isinstance(t, str) else 0),
        }
    )
    tables = [
        Table("corpus", checks, [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="doc_id"),
            gxe.ExpectColumnValuesToBeUnique(column="doc_id"),
            gxe.ExpectColumnValuesToBeInSet(column="text_is_str", value_set=[True]),
            gxe.ExpectColumnValuesToBeBetween(column="text_len", min_value=1),
        ])
    ]
    if model_path:
        files = pd.DataFrame({"file": ["config.json"], "present": [(Path(model_path) / "config.json").exists()]})
        tables.append(Table("own_model", files, [gxe.ExpectColumnValuesToBeInSet(column="present", value_set=[True])]))
    return tables


if __name__ == "__main__":
    raise SystemExit(main("base", body))
