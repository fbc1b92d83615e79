"""Stage ppo: PPO (ptx_coef = 0) or PPO-ptx (ptx_coef > 0) from the SFT policy against the RM."""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from tasks import inputs
from tasks.common import Stage, main, write_jsonl
from tasks.gates import Table


def body(stage: Stage) -> None:
    from instructgpt.train.ppo import PPOConfig

    cfg = stage.config(PPOConfig)
    prompts = inputs.prompts("ppo", ("train",))
    detector = inputs.pii_detector(stage.params)
    stage.gate(gate_tables(prompts, detector))
    heldout = float((stage.params.get("base") or {}).get("heldout_fraction", 0.05))
    ptx_texts, _ = inputs.split_corpus(inputs.corpus(), heldout)  # never the held-out documents
    out = stage.path("outputs/ppo/model")
    metrics, samples = run_ppo(cfg, prompts["text"].astype(str).tolist(), ptx_texts, out, stage)
    stage.metrics.update(metrics)
    write_jsonl(stage.path("outputs/ppo/samples.jsonl"), samples)
    if stage.run is not None:
        import mlflow

        mlflow.log_table(pd.DataFrame(samples), "ppo/samples.json")
        mlflow.log_artifacts(str(out), "model")


def run_ppo(cfg, prompts: list[str], ptx_texts: list[str], out, stage: Stage) -> tuple[dict, list[dict]]:
    from instructgpt.generation import sample
    from instructgpt.models import RewardModel, load_causal_lm, save_model
    from instructgpt.train.ppo import train_ppo

    policy, tokenizer = load_causal_lm("outputs/sft/model", dropout=0.0)
    ref_policy, _ = load_causal_lm("outputs/sft/model", dropout=0.0)
    value_model = RewardModel.from_pretrained("outputs/rm/model")  # value function initialised from the RM
    reward_model = RewardModel.from_pretrained("outputs/rm/model")
    metrics = train_ppo(policy, ref_policy, value_model, reward_model, tokenizer, prompts, ptx_texts, cfg, stage.log)
    save_model(policy, tokenizer, out)
    stage.save_config(out)
    shown = sample(policy, tokenizer, prompts[:32], max_new_tokens=cfg.max_new_tokens,
                   temperature=cfg.temperature, batch_size=32, seed=cfg.seed)
    samples = [{"prompt": s.prompt, "response": s.response, "ended_with_eos": s.ended_with_eos} for s in shown]
    return metrics, samples


def gate_tables(prompts: pd.DataFrame, detector) -> list[Table]:
    """PPO prompts non-empty and free of PII."""
    pii = pd.DataFrame(
        {"pii_types": [",".join(sorted({s.type for s in detector.find(t)})) for t in prompts.get("text", [])]}
    )
    return [
        Table("ppo_prompts", prompts, [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="text"),
            gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        ]),
        Table("ppo_pii", pii, [gxe.ExpectColumnValuesToBeInSet(column="pii_types", value_set=[""])]),
    ]


if __name__ == "__main__":
    raise SystemExit(main("ppo", body))
