"""Stages ppo and ppo_noptx: RL from the SFT policy against the reward model.

`python -m tasks.ppo` trains PPO-ptx (the paper's InstructGPT: ptx_coef = γ from params.yaml);
`python -m tasks.ppo --no-ptx` trains plain PPO (γ = 0) from the same params, so that the
evaluation can show what the pretraining mix buys (alignment tax, paper section 4).
Both read the `ppo` section of params.yaml.

While training, the samples the trainer reports every `sample_every` steps are also scored by
the held-out labelers' gold utility (simulated world only): with the RM score and the KL from
SFT this gives the reward over-optimisation curve (`overopt.csv`), which tells when to stop.

The value function starts from the RM (paper) when the RM tokenizes like the policy; an RM from
another base with its own tokenizer (`rm.model_path`) scores each rollout's text in its own
format and the value function then starts from the SFT policy with a fresh scalar head
(`load_models`; metric `ppo.reward_retokenised` says which).
"""

from __future__ import annotations

import sys
from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd

from tasks import inputs
from tasks.common import Stage, main, write_jsonl
from tasks.gates import Table
from tasks.pii import pii_detector, pii_types

SFT_MODEL = "outputs/sft/model"
RM_MODEL = "outputs/rm/model"


def make_body(variant: str):
    """The stage body for ``variant`` "ppo" (PPO-ptx) or "ppo_noptx" (γ = 0)."""

    def body(stage: Stage) -> None:
        from instructgpt.train.ppo import PPOConfig

        cfg = stage.config(PPOConfig, overrides={"ptx_coef": 0.0} if variant == "ppo_noptx" else None)
        prompts = inputs.prompts("ppo", ("train",))
        stage.gate(gate_tables(prompts, pii_detector(stage.params)))
        heldout = float((stage.params.get("base") or {}).get("heldout_fraction", 0.05))
        ptx_texts, _ = inputs.split_corpus(inputs.corpus(), heldout)  # never the held-out documents
        out = stage.path(f"outputs/{variant}/model")
        overopt = OverOptimisation(prompts, stage)
        metrics, samples = run_ppo(cfg, prompts["text"].astype(str).tolist(), ptx_texts, out, stage, overopt)
        stage.metrics.update(metrics)
        stage.metrics["ptx_coef"] = cfg.ptx_coef
        write_jsonl(stage.path(f"outputs/{variant}/samples.jsonl"), samples)
        overopt.frame().to_csv(stage.path(f"outputs/{variant}/overopt.csv"), index=False)
        if stage.run is not None:
            import mlflow

            mlflow.log_table(pd.DataFrame(samples), f"{variant}/samples.json")
            mlflow.log_artifacts(str(out), "model")

    return body


class OverOptimisation:
    """Collects (step, KL, RM score, gold utility) from the trainer's periodic samples.

    The rows go through ``stage.log`` (MLflow and the stage's metrics journal), so that a resumed
    run's curve still starts at step 1."""

    def __init__(self, prompts: pd.DataFrame, stage: Stage) -> None:
        self.stage = stage
        self.ids = dict(zip(prompts["text"].astype(str), prompts["prompt_id"]))
        try:
            from instructgpt.world import load_world

            self.pool = load_world(inputs.raw("judgements")).heldout_labelers()
        except (FileNotFoundError, OSError):  # real data: no gold judge, no curve
            self.pool = None

    def samples(self, samples: list[dict], step: int) -> None:
        """The trainer's sample callback: gold utility of the samples, logged next to the RM score."""
        if self.pool is None or not samples:
            return
        utils = [self.pool.utility(self.ids[s["prompt"]], s["response"]) for s in samples if s["prompt"] in self.ids]
        if not utils:
            return
        self.stage.log({"ppo/gold/utility": sum(utils) / len(utils),
                        "ppo/gold/rm_score": sum(s["score"] for s in samples) / len(samples)}, step)

    def frame(self) -> pd.DataFrame:
        kl = {r["step"]: r["ppo/objective/kl"] for r in self.stage.curve if "ppo/objective/kl" in r}
        rows = [{"step": r["step"], "kl": kl.get(r["step"], float("nan")), "rm_score": r["ppo/gold/rm_score"],
                 "gold_utility": r["ppo/gold/utility"]} for r in self.stage.curve if "ppo/gold/utility" in r]
        return pd.DataFrame(rows, columns=["step", "kl", "rm_score", "gold_utility"])


def run_ppo(cfg, prompts: list[str], ptx_texts: list[str], out: Path, stage: Stage,
            overopt: OverOptimisation) -> tuple[dict, list[dict]]:
    from instructgpt.generation import sample
    from instructgpt.models import save_model
    from instructgpt.train.ppo import train_ppo

    policy, ref_policy, value_model, reward_model, tokenizer, reward_tokenizer = load_models(cfg.seed)
    metrics = train_ppo(policy, ref_policy, value_model, reward_model, tokenizer, prompts, ptx_texts, cfg,
                        stage.log, sample_log=overopt.samples, reward_tokenizer=reward_tokenizer)
    save_model(policy, tokenizer, out)
    stage.save_config(out)
    shown = sample(policy, tokenizer, prompts[:32], max_new_tokens=cfg.max_new_tokens,
                   temperature=cfg.temperature, batch_size=32, seed=cfg.seed)
    samples = [{"prompt": s.prompt, "response": s.response, "ended_with_eos": s.ended_with_eos} for s in shown]
    return metrics, samples


def load_models(seed: int):
    """(policy, π^SFT, value model, RM, policy tokenizer, RM tokenizer or None).

    The RM's tokenizer is None when it tokenizes like the policy's (the RM trained from the SFT
    model, or an ``rm.model_path`` of the same family): the value function then starts from the
    RM (paper). An RM with its own tokenizer scores each rollout's text re-encoded in its format,
    and the value function starts from the SFT policy's weights with a fresh scalar head (seeded
    by ``ppo.seed``): a copy of the RM could not read the policy's tokens."""
    from instructgpt.models import RewardModel, load_causal_lm, load_tokenizer, same_tokenizer

    policy, tokenizer = load_causal_lm(SFT_MODEL, dropout=0.0)
    ref_policy, _ = load_causal_lm(SFT_MODEL, dropout=0.0)
    reward_model = RewardModel.from_pretrained(RM_MODEL)
    reward_tokenizer = load_tokenizer(RM_MODEL)
    if same_tokenizer(reward_tokenizer, tokenizer):
        return policy, ref_policy, RewardModel.from_pretrained(RM_MODEL), reward_model, tokenizer, None
    value_model = RewardModel.from_causal_lm(SFT_MODEL, seed=seed)
    return policy, ref_policy, value_model, reward_model, tokenizer, reward_tokenizer


def gate_tables(prompts: pd.DataFrame, detector) -> list[Table]:
    """PPO prompts non-empty and free of PII."""
    pii = pd.DataFrame(
        {"pii_types": pii_types(detector, prompts.get("text", []))}
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
    variant = "ppo_noptx" if "--no-ptx" in sys.argv[1:] else "ppo"
    raise SystemExit(main(variant, make_body(variant), section="ppo"))
