"""Stages ppo and ppo_noptx: RL from the SFT policy against the reward model.

`python -m tasks.ppo` trains PPO-ptx (the paper's InstructGPT: ptx_coef = γ from params.yaml);
`python -m tasks.ppo --no-ptx` trains plain PPO (γ = 0) from the same params, so that the
evaluation can show what the pretraining mix buys (alignment tax, paper section 4).
Both read the `ppo` section of params.yaml. `python -m tasks.ppo --round 2` is stage ppo_round2
(``rounds.n: 2``, tasks/rounds.py): PPO-ptx again from SFT, against round 2's RM.

Before its first step (the SFT policy: KL 0), every `sample_every` steps and at the last, the
policy also answers a few validation-split prompts of the PPO dataset (never trained on; its own
seeded generator, so training is unchanged): the samples with their KL from SFT and RM score go
to `outputs/<variant>/monitor.jsonl` and the step's means to the curve (`ppo/monitor/*`). The
stage reads no judge: the evaluate stage scores these samples with its monitoring judge and draws
the reward over-optimisation curve.

The value function starts from the RM (paper) when the RM tokenizes like the policy; an RM from
another base with its own tokenizer (`rm.model_path`) scores each rollout's text in its own
format and the value function then starts from the SFT policy with a fresh scalar head
(`load_models`; metric `ppo.reward_retokenised` says which).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd

from tasks import inputs
from tasks.gates import Table
from tasks.jsonl import read_jsonl, write_jsonl
from tasks.pii import pii_detector, pii_types
from tasks.shell.run import main
from tasks.shell.stage import Stage

SFT_MODEL = "outputs/sft/model"
RM_MODEL = "outputs/rm/model"
RM_ROUND2 = "outputs/rm_round2/model"


def make_body(variant: str, rm_model: str = RM_MODEL):
    """The stage body for ``variant`` "ppo" (PPO-ptx), "ppo_noptx" (γ = 0) or "ppo_round2"
    (PPO-ptx against ``rm_model``, round 2's RM)."""

    def body(stage: Stage) -> None:
        from instructgpt.train.ppo import PPOConfig

        cfg = stage.config(PPOConfig, overrides={"ptx_coef": 0.0} if variant == "ppo_noptx" else None)
        prompts = inputs.prompts("ppo", ("train",))
        monitored = monitor_prompts(inputs.prompts("ppo", ("valid",)), cfg.monitor_prompts, cfg.seed)
        stage.gate(gate_tables(prompts, monitored, pii_detector(stage.params)))
        heldout = float((stage.params.get("base") or {}).get("heldout_fraction", 0.05))
        ptx_texts, _ = inputs.split_corpus(inputs.corpus(), heldout)  # never the held-out documents
        out = stage.path(f"outputs/{variant}/model")
        monitor = Monitor(monitored, stage, cfg.checkpoint_dir)
        metrics, samples = run_ppo(cfg, prompts["text"].astype(str).tolist(), ptx_texts, out, stage, monitor,
                                   rm_model)
        stage.metrics.update(metrics)
        stage.metrics["ptx_coef"] = cfg.ptx_coef
        stage.metrics["monitor/prompts"] = len(monitored)
        stage.metrics["monitor/samples"] = len(monitor.rows)
        write_jsonl(stage.path(f"outputs/{variant}/samples.jsonl"), samples)
        write_jsonl(stage.path(f"outputs/{variant}/monitor.jsonl"), monitor.rows)
        if stage.run is not None:
            import mlflow

            mlflow.log_table(pd.DataFrame(samples), f"{variant}/samples.json")
            mlflow.log_artifacts(str(out), "model")

    return body


def monitor_prompts(valid: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` validation-split prompts (a seeded choice, the same at every step); none when the
    split is empty or ``n`` is 0 (then no monitor)."""
    if valid.empty or n <= 0:
        return pd.DataFrame({"prompt_id": pd.Series(dtype=str), "text": pd.Series(dtype=str)})
    valid = valid.sort_values("prompt_id")
    return valid.sample(n=min(n, len(valid)), random_state=seed).sort_values("prompt_id").reset_index(drop=True)


class Monitor:
    """Collects the trainer's monitor samples: rows for ``monitor.jsonl`` and per-step means
    (KL from SFT, RM score, EOS rate) through ``stage.log`` (MLflow, curve.csv).

    With checkpoints, the rows are journaled next to them, so that a resumed run's
    ``monitor.jsonl`` still starts at step 0 (rows after the checkpoint's step are sampled again)."""

    def __init__(self, prompts: pd.DataFrame, stage: Stage, checkpoint_dir: str | None) -> None:
        self.stage = stage
        self.texts = prompts["text"].astype(str).tolist()
        self.ids = dict(zip(self.texts, prompts["prompt_id"].astype(str)))
        self.rows: list[dict] = []
        self.journal = Path(checkpoint_dir) / "monitor.jsonl" if checkpoint_dir and stage.is_main else None
        if self.journal is not None:
            resumed = stage.resumed_from_step
            if resumed is not None and self.journal.exists():
                self.rows = [r for r in read_jsonl(self.journal) if r["step"] <= resumed]
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            write_jsonl(self.journal, self.rows)

    def samples(self, samples: list[dict], step: int) -> None:
        """The trainer's sample callback (instructgpt.train.ppo.monitor_samples)."""
        if not samples:
            return
        rows = [{"prompt_id": self.ids[s["prompt"]], "step": step, "response": s["response"], "kl": s["kl"],
                 "rm_score": s["rm_score"], "ended_with_eos": s["ended_with_eos"]} for s in samples]
        self.rows += rows
        if self.journal is not None:
            with open(self.journal, "a", encoding="utf-8") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        n = len(rows)
        self.stage.log({"ppo/monitor/kl": sum(r["kl"] for r in rows) / n,
                        "ppo/monitor/rm_score": sum(r["rm_score"] for r in rows) / n,
                        "ppo/monitor/eos_rate": sum(r["ended_with_eos"] for r in rows) / n}, step)


def run_ppo(cfg, prompts: list[str], ptx_texts: list[str], out: Path, stage: Stage,
            monitor: Monitor, rm_model: str = RM_MODEL) -> tuple[dict, list[dict]]:
    from instructgpt.generation import sample
    from instructgpt.models import save_model
    from instructgpt.train.ppo import train_ppo

    policy, ref_policy, value_model, reward_model, tokenizer, reward_tokenizer = load_models(
        cfg.seed, lora=cfg.lora is not None, rm_model=rm_model)
    for m in (policy, ref_policy, value_model, reward_model):
        if m is not None:  # LoRA: no reference/value copies (the adapters stand in for them)
            stage.place(m)
    metrics = train_ppo(policy, ref_policy, value_model, reward_model, tokenizer, prompts, ptx_texts, cfg,
                        stage.log, sample_log=monitor.samples, monitor_prompts=monitor.texts,
                        reward_tokenizer=reward_tokenizer)
    save_model(policy, tokenizer, out)
    stage.save_config(out)
    shown = sample(policy, tokenizer, prompts[:32], max_new_tokens=cfg.max_new_tokens,
                   temperature=cfg.temperature, batch_size=32, seed=cfg.seed)
    samples = [{"prompt": s.prompt, "response": s.response, "ended_with_eos": s.ended_with_eos} for s in shown]
    return metrics, samples


def load_models(seed: int, lora: bool = False, rm_model: str = RM_MODEL):
    """(policy, π^SFT, value model, RM, policy tokenizer, RM tokenizer or None).

    With ``lora`` (``ppo.lora``) π^SFT is None (the trainer reads the policy with its adapter
    disabled) and so is the value model when the RM reads the policy's tokens (the trainer puts
    it on the RM's own backbone): the SFT and RM weights are each loaded once.

    The RM's tokenizer is None when it tokenizes like the policy's (the RM trained from the SFT
    model, or an ``rm.model_path`` of the same family): the value function then starts from the
    RM (paper). An RM with its own tokenizer scores each rollout's text re-encoded in its format,
    and the value function starts from the SFT policy's weights with a fresh scalar head (seeded
    by ``ppo.seed``): a copy of the RM could not read the policy's tokens."""
    from instructgpt.models import load_causal_lm, load_tokenizer, same_tokenizer
    from instructgpt.reward_model import RewardModel

    policy, tokenizer = load_causal_lm(SFT_MODEL, dropout=0.0)
    ref_policy = None if lora else load_causal_lm(SFT_MODEL, dropout=0.0)[0]
    reward_model = RewardModel.from_pretrained(rm_model)
    reward_tokenizer = load_tokenizer(rm_model)
    if same_tokenizer(reward_tokenizer, tokenizer):
        value_model = None if lora else RewardModel.from_pretrained(rm_model)
        return policy, ref_policy, value_model, reward_model, tokenizer, None
    value_model = RewardModel.from_causal_lm(SFT_MODEL, seed=seed)
    return policy, ref_policy, value_model, reward_model, tokenizer, reward_tokenizer


def gate_tables(prompts: pd.DataFrame, monitored: pd.DataFrame, detector) -> list[Table]:
    """PPO prompts non-empty; they and the monitor's prompts free of PII."""
    texts = pd.concat([prompts.get("text", pd.Series(dtype=str)), monitored.get("text", pd.Series(dtype=str))])
    pii = pd.DataFrame({"pii_types": pii_types(detector, texts)})
    return [
        Table("ppo_prompts", prompts, [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="text"),
            gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        ]),
        Table("ppo_pii", pii, [gxe.ExpectColumnValuesToBeInSet(column="pii_types", value_set=[""])]),
    ]


if __name__ == "__main__":
    if "--round" in sys.argv[1:]:  # ppo_round2 (tasks/rounds.py)
        from tasks.rounds import second_round

        raise SystemExit(main("ppo_round2", second_round(make_body("ppo_round2", RM_ROUND2)), section="ppo"))
    variant = "ppo_noptx" if "--no-ptx" in sys.argv[1:] else "ppo"
    raise SystemExit(main(variant, make_body(variant), section="ppo"))
