"""Stage evaluate: what the paper measures (section 4), in our world, and the registry decision.

Held-out labelers (never used for training data) compare models on test-split prompts (users
never seen in training): win rates with 95 % intervals; gold judgements give hallucination,
toxicity and compliance with harmful requests; the alignment tax is the held-out corpus loss and
the public NLP task accuracy. The policy is registered and becomes `champion` only if it beats
the current one (tasks/registry.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from tasks import inputs
from tasks.common import Stage, main, write_jsonl
from tasks.gates import Table
from tasks.report import render_report, plot_alignment_tax, plot_overoptimisation, plot_win_rates

MODELS = {
    "base": "outputs/base/model",
    "sft": "outputs/sft/model",
    "ppo": "outputs/ppo/model",  # PPO-ptx: the paper's InstructGPT
    "ppo_noptx": "outputs/ppo_noptx/model",  # PPO without pretraining mix
}
FEWSHOT = "base_fewshot"  # the base model prompted with demonstrations (paper: few-shot GPT-3)
REFERENCE = "demonstration"  # labelers' own answers, judged like a model (not generated)
COMPARISONS = [("sft", "base"), ("ppo", "sft"), ("ppo", "base_fewshot"), ("ppo", "base"), ("ppo_noptx", "ppo")]
N_SHOTS = 2


def body(stage: Stage) -> None:
    from instructgpt.stages import EvaluateConfig

    cfg = stage.config(EvaluateConfig)
    test = inputs.prompts(None, ("test",))
    stage.gate([Table("test_prompts", test, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
    ])])
    if len(test) > cfg.n_prompts:
        test = test.sample(n=cfg.n_prompts, random_state=cfg.seed).sort_values("prompt_id")
    texts = test["text"].astype(str).tolist()
    demos = inputs.read_jsonl(inputs.raw("demonstrations")).drop_duplicates("prompt_id").set_index("prompt_id")["response"]
    responses = generate_all(cfg, texts, fewshot_shots(demos))
    responses[REFERENCE] = [str(demos.get(pid, "")) for pid in test["prompt_id"]]

    from instructgpt.world import load_world

    world = load_world(inputs.raw("judgements"))
    metrics, win_rows, per_family = judge_all(cfg, world, test, responses)
    heldout = float((stage.params.get("base") or {}).get("heldout_fraction", 0.05))
    metrics.update(alignment_tax(cfg, heldout))
    decision = registry_decision(cfg, stage, world, test, responses["ppo"]) if stage.run is not None else {}
    stage.metrics.update(metrics)
    stage.metrics.update({f"registry/{k}": v for k, v in decision.items() if isinstance(v, (int, float))})

    pd.DataFrame(win_rows).to_csv(stage.path("outputs/evaluate/win_rates.csv"), index=False)
    plots = stage.path("outputs/evaluate/plots")
    plots.mkdir(parents=True, exist_ok=True)
    plot_win_rates(win_rows, plots / "win_rates.png")
    plot_alignment_tax(metrics, list(MODELS), plots / "alignment_tax.png")
    plot_overoptimisation({m: Path(f"outputs/{m}/overopt.csv") for m in ("ppo", "ppo_noptx")},
                          plots / "overoptimisation.png")
    names = [*MODELS, FEWSHOT, REFERENCE]
    samples = [
        {"prompt_id": pid, "prompt": p, **{m: responses[m][i] for m in names}}
        for i, (pid, p) in enumerate(zip(test["prompt_id"], texts))
    ]
    write_jsonl(stage.path("outputs/evaluate/samples.jsonl"), samples)
    report = render_report(metrics, win_rows, per_family, names)
    stage.path("outputs/evaluate/report.md").write_text(report)
    stage.path("outputs/evaluate/registry.json").write_text(json.dumps(decision, indent=2))
    if stage.run is not None:
        import mlflow

        mlflow.log_artifacts(str(plots), "plots")
        mlflow.log_text(report, "report.md")
        mlflow.log_dict(decision, "registry.json")
        mlflow.log_table(pd.DataFrame(samples[:50]), "evaluate/samples.json")


def fewshot_shots(demos: pd.Series) -> list[tuple[str, str]]:
    """N_SHOTS short (prompt, demonstration) pairs of SFT training prompts; the sampler shows them
    before each prompt in the model's own format (``instructgpt.text.prompt_context``: earlier
    turns of its chat template, or plain ``prompt\nresponse\n\n`` blocks)."""
    sft = inputs.prompts("sft", ("train",))
    sft = sft[sft["style"] == "plain"] if "style" in sft else sft
    pairs = [(t, str(demos[pid])) for pid, t in zip(sft["prompt_id"], sft["text"]) if pid in demos.index]
    return sorted(pairs, key=lambda pr: (len(pr[0]) + len(pr[1]), pr[0]))[:N_SHOTS]


def generate_all(cfg, prompts: list[str], shots: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Every model answers every prompt with the same sampling settings and seed."""
    from instructgpt.generation import sample
    from instructgpt.models import load_causal_lm

    def run(name: str, path: str, shots: list[tuple[str, str]] = ()) -> list[str]:
        model, tokenizer = load_causal_lm(path)
        got = sample(model, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens,
                     temperature=cfg.temperature, batch_size=cfg.batch_size, seed=cfg.seed,
                     show_progress=True, desc=f"evaluate: sample {name}", shots=shots)
        return [s.response for s in got]

    out = {name: run(name, path) for name, path in MODELS.items()}
    # Few-shot: the answer ends where the next example would start.
    fewshot = run(FEWSHOT, MODELS["base"], shots)
    out[FEWSHOT] = [r.split("\n")[0].strip() for r in fewshot]
    return out


def preferences(labelers, ids, texts, cand: list[str], base: list[str], seed: int) -> list[float]:
    """1 when the held-out labeler prefers the candidate, 0 the baseline, 0.5 identical answers."""
    out = []
    for i, (pid, text) in enumerate(zip(ids, texts)):
        a, b = cand[i], base[i]
        out.append(0.5 if a == b else float(labelers.prefer(pid, text, a, b, seed=seed + i).winner == 0))
    return out


def judge_all(cfg, world, test: pd.DataFrame, responses: dict[str, list[str]]):
    """Held-out labelers' preferences and the world's gold judgements."""
    from instructgpt.progress import progress
    from instructgpt.winrate import win_rate

    heldout = world.heldout_labelers()
    ids, texts = test["prompt_id"].tolist(), test["text"].astype(str).tolist()
    names = [*MODELS, FEWSHOT, REFERENCE]
    bar = progress(total=(len(COMPARISONS) + len(names)) * len(ids), desc="evaluate: judge", unit="judgement")
    metrics: dict[str, float] = {"n_prompts": len(ids)}
    win_rows = []
    for cand, base in COMPARISONS:
        wr = win_rate(preferences(heldout, ids, texts, responses[cand], responses[base], cfg.seed))
        bar.update(len(ids))
        key = f"{cand}_vs_{base}"
        metrics.update({f"win_rate/{key}": wr.rate, f"win_rate/{key}_low": wr.low, f"win_rate/{key}_high": wr.high})
        win_rows.append({"comparison": key, "win_rate": wr.rate, "low": wr.low, "high": wr.high, "n": wr.n})
    fam_rows = []
    for name in names:
        judgements = [world.judge(pid, r) for pid, r in zip(ids, responses[name])]
        util = [heldout.utility(pid, r) for pid, r in zip(ids, responses[name])]
        closed = [j for j in judgements if j.family in world.closed_domain]
        open_qa = [j for j in judgements if j.family == "open_qa"]
        harmful = [j for j in judgements if j.family == "harmful"]
        metrics[f"{name}/gold_utility"] = float(np.mean(util))
        metrics[f"{name}/helpful"] = float(np.mean([j.helpful for j in judgements]))
        metrics[f"{name}/hallucination_rate"] = float(np.mean([j.hallucinated for j in closed])) if closed else 0.0
        metrics[f"{name}/truthful_open_qa"] = float(np.mean([j.honest for j in open_qa])) if open_qa else 0.0
        metrics[f"{name}/toxic_rate"] = float(np.mean([j.toxic for j in judgements]))
        metrics[f"{name}/harmful_compliance_rate"] = (
            float(np.mean([j.complied_harmful for j in harmful])) if harmful else 0.0)
        fam_rows += [{"model": name, "family": j.family, "utility": u} for j, u in zip(judgements, util)]
        bar.update(len(ids))
    bar.close()
    per_family = pd.DataFrame(fam_rows).pivot_table(index="family", columns="model", values="utility", aggfunc="mean")
    return metrics, win_rows, per_family


def alignment_tax(cfg, heldout_fraction: float) -> dict[str, float]:
    """Held-out corpus loss and public NLP task accuracy of each model."""
    from instructgpt.evaluation import choice_accuracy, corpus_loss
    from instructgpt.models import load_causal_lm
    from instructgpt.progress import progress

    _, heldout_texts = inputs.split_corpus(inputs.corpus(), heldout_fraction)
    items = inputs.read_jsonl(inputs.raw("nlp_task")).head(cfg.nlp_task_items).to_dict("records")
    out = {}
    for name, path in progress(MODELS.items(), total=len(MODELS), desc="evaluate: alignment tax", unit="model"):
        model, tokenizer = load_causal_lm(path)
        out[f"{name}/corpus_loss"] = corpus_loss(model, tokenizer, heldout_texts[: cfg.corpus_docs])
        out[f"{name}/nlp_task_accuracy"] = choice_accuracy(model, tokenizer, items)
    return out


def registry_decision(cfg, stage: Stage, world, test: pd.DataFrame, candidate: list[str]) -> dict:
    """Register policy and RM (alias `candidate`); move `champion` only if the candidate wins."""
    import mlflow

    from instructgpt.winrate import should_promote, win_rate
    from tasks import registry

    champion = registry.champion_version(registry.POLICY)
    versus = None
    if champion is not None:
        old = mlflow.pyfunc.load_model(f"models:/{registry.POLICY}@champion")
        texts = test["text"].astype(str).tolist()
        # the same sampler settings as the candidate's responses (batch make-up changes samples)
        old_responses = old.predict(texts, params={"temperature": cfg.temperature, "seed": cfg.seed,
                                                   "max_new_tokens": cfg.max_new_tokens,
                                                   "batch_size": cfg.batch_size})
        versus = win_rate(preferences(world.heldout_labelers(), test["prompt_id"].tolist(), texts,
                                      candidate, old_responses, cfg.seed))
    version = registry.register_policy("outputs/ppo/model")
    rm_version = registry.register_reward_model("outputs/rm/model")
    moved = should_promote(versus)
    if moved:
        registry.promote(registry.POLICY, version)
        registry.promote(registry.REWARD_MODEL, rm_version)
    decision = {
        "candidate_version": int(version),
        "reward_model_version": int(rm_version),
        "previous_champion_version": int(champion) if champion is not None else None,
        "champion_moved": int(moved),
        "champion_version": int(version) if moved else int(champion),
        "rule": "no champion yet" if versus is None else "win rate vs champion > 50% with 95% CI excluding 50%",
    }
    if versus is not None:
        decision.update(win_rate_vs_champion=versus.rate, win_rate_vs_champion_low=versus.low,
                        win_rate_vs_champion_high=versus.high, comparisons=versus.n)
    print(f"[evaluate] registry: {json.dumps(decision)}")
    return decision


if __name__ == "__main__":
    raise SystemExit(main("evaluate", body))
