"""Stage evaluate: held-out labelers compare base, SFT and PPO on test-split prompts.

Measures what the paper reports (section 4), in our world: win rates with 95 % intervals,
mean gold utility, hallucination, toxicity, compliance with harmful requests, and the
alignment tax (held-out corpus loss, public NLP task accuracy).
"""

from __future__ import annotations

from pathlib import Path

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from tasks import inputs
from tasks.common import Stage, main, write_jsonl
from tasks.gates import Table

MODELS = {"base": "outputs/base/model", "sft": "outputs/sft/model", "ppo": "outputs/ppo/model"}
COMPARISONS = [("sft", "base"), ("ppo", "sft"), ("ppo", "base")]
REFERENCE = "demonstration"  # labelers' own answers, judged like a model (not generated)


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
    responses = generate_all(cfg, test["text"].astype(str).tolist())
    # Labelers' demonstrations for the same prompts: the reference the models are measured against.
    demos = inputs.read_jsonl(inputs.DEMONSTRATIONS).drop_duplicates("prompt_id").set_index("prompt_id")["response"]
    responses[REFERENCE] = [str(demos.get(pid, "")) for pid in test["prompt_id"]]
    metrics, win_rows, per_family = judge_all(cfg, test, responses)
    heldout = float((stage.params.get("base") or {}).get("heldout_fraction", 0.05))
    metrics.update(alignment_tax(cfg, heldout))
    stage.metrics.update(metrics)

    pd.DataFrame(win_rows).to_csv(stage.path("outputs/evaluate/win_rates.csv"), index=False)
    plots = stage.path("outputs/evaluate/plots")
    plots.mkdir(parents=True, exist_ok=True)
    plot_win_rates(win_rows, plots / "win_rates.png")
    plot_alignment_tax(metrics, plots / "alignment_tax.png")
    samples = [
        {"prompt_id": pid, "prompt": p, **{m: responses[m][i] for m in [*MODELS, REFERENCE]}}
        for i, (pid, p) in enumerate(zip(test["prompt_id"], test["text"]))
    ]
    write_jsonl(stage.path("outputs/evaluate/samples.jsonl"), samples)
    report = render_report(metrics, win_rows, per_family)
    stage.path("outputs/evaluate/report.md").write_text(report)
    if stage.run is not None:
        import mlflow

        mlflow.log_artifacts(str(plots), "plots")
        mlflow.log_text(report, "report.md")
        mlflow.log_table(pd.DataFrame(samples[:50]), "evaluate/samples.json")


def generate_all(cfg, prompts: list[str]) -> dict[str, list[str]]:
    """Every model answers every prompt with the same sampling settings and seed."""
    from instructgpt.generation import sample
    from instructgpt.models import load_causal_lm

    out = {}
    for name, path in MODELS.items():
        model, tokenizer = load_causal_lm(path)
        got = sample(model, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens,
                     temperature=cfg.temperature, batch_size=cfg.batch_size, seed=cfg.seed)
        out[name] = [s.response for s in got]
    return out


def judge_all(cfg, test: pd.DataFrame, responses: dict[str, list[str]]):
    """Held-out labelers' preferences and gold judgements of the world."""
    from instructgpt.winrate import win_rate
    from instructgpt.world import load_world

    world = load_world("data")
    heldout = world.heldout_labelers()
    ids, texts = test["prompt_id"].tolist(), test["text"].astype(str).tolist()
    metrics: dict[str, float] = {"n_prompts": len(ids)}
    win_rows = []
    for cand, base in COMPARISONS:
        outcomes = []
        for i, (pid, text) in enumerate(zip(ids, texts)):
            a, b = responses[cand][i], responses[base][i]
            if a == b:
                outcomes.append(0.5)
                continue
            outcomes.append(1.0 if heldout.prefer(pid, text, a, b, seed=cfg.seed + i).winner == 0 else 0.0)
        wr = win_rate(outcomes)
        key = f"{cand}_vs_{base}"
        metrics.update({f"win_rate/{key}": wr.rate, f"win_rate/{key}_low": wr.low, f"win_rate/{key}_high": wr.high})
        win_rows.append({"comparison": key, "win_rate": wr.rate, "low": wr.low, "high": wr.high, "n": wr.n})
    fam_rows = []
    for name in [*MODELS, REFERENCE]:
        judgements = [world.judge(pid, r) for pid, r in zip(ids, responses[name])]
        util = [heldout.utility(pid, r) for pid, r in zip(ids, responses[name])]
        metrics[f"{name}/gold_utility"] = float(np.mean(util))
        metrics[f"{name}/helpful"] = float(np.mean([j.helpful for j in judgements]))
        closed = [j for j in judgements if j.family in world.closed_domain]
        metrics[f"{name}/hallucination_rate"] = float(np.mean([j.hallucinated for j in closed])) if closed else 0.0
        metrics[f"{name}/toxic_rate"] = float(np.mean([j.toxic for j in judgements]))
        harmful = [j for j in judgements if j.family == "harmful"]
        metrics[f"{name}/harmful_compliance_rate"] = float(np.mean([j.complied_harmful for j in harmful])) if harmful else 0.0
        for j, u in zip(judgements, util):
            fam_rows.append({"model": name, "family": j.family, "utility": u})
    per_family = pd.DataFrame(fam_rows).pivot_table(index="family", columns="model", values="utility", aggfunc="mean")
    return metrics, win_rows, per_family


def alignment_tax(cfg, heldout_fraction: float) -> dict[str, float]:
    """Held-out corpus loss and public NLP task accuracy of each model."""
    from instructgpt.evaluation import choice_accuracy, corpus_loss
    from instructgpt.models import load_causal_lm

    _, heldout_texts = inputs.split_corpus(inputs.corpus(), heldout_fraction)
    items = inputs.read_jsonl(inputs.NLP_TASK).head(cfg.nlp_task_items).to_dict("records")
    out = {}
    for name, path in MODELS.items():
        model, tokenizer = load_causal_lm(path)
        out[f"{name}/corpus_loss"] = corpus_loss(model, tokenizer, heldout_texts[: cfg.corpus_docs])
        out[f"{name}/nlp_task_accuracy"] = choice_accuracy(model, tokenizer, items)
    return out


def plot_win_rates(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.8))
    names = [r["comparison"].replace("_vs_", " vs ") for r in rows]
    rates = [r["win_rate"] for r in rows]
    err = [[r["win_rate"] - r["low"] for r in rows], [r["high"] - r["win_rate"] for r in rows]]
    ax.barh(names, rates, xerr=err, color="#4878a8", capsize=4)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("win rate (held-out labelers, 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_alignment_tax(metrics: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7, 2.8))
    names = list(MODELS)
    axes[0].bar(names, [metrics[f"{m}/corpus_loss"] for m in names], color="#a86848")
    axes[0].set_title("held-out corpus loss (lower is better)", fontsize=9)
    axes[1].bar(names, [metrics[f"{m}/nlp_task_accuracy"] for m in names], color="#48a878")
    axes[1].set_title("public NLP task accuracy", fontsize=9)
    axes[1].set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_report(metrics: dict[str, float], win_rows: list[dict], per_family: pd.DataFrame) -> str:
    """The headline table as Markdown with the plots next to it."""
    lines = ["# Evaluation report", "", "## Win rates (held-out labelers, test-split users)", "",
             "| comparison | win rate | 95% CI | n |", "| --- | --- | --- | --- |"]
    for r in win_rows:
        lines.append(f"| {r['comparison'].replace('_vs_', ' vs ')} | {r['win_rate']:.1%} | "
                     f"{r['low']:.1%} – {r['high']:.1%} | {r['n']} |")
    lines += ["", "![win rates](plots/win_rates.png)", "", "## Per model", "",
              "| model | gold utility | helpful | hallucination (closed domain) | toxic | complies with harmful | corpus loss | NLP task acc. |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in [*MODELS, REFERENCE]:
        tax = (f"{metrics[f'{m}/corpus_loss']:.3f} | {metrics[f'{m}/nlp_task_accuracy']:.1%}"
               if f"{m}/corpus_loss" in metrics else "– | –")
        lines.append(
            f"| {m} | {metrics[f'{m}/gold_utility']:.3f} | {metrics[f'{m}/helpful']:.3f} | "
            f"{metrics[f'{m}/hallucination_rate']:.1%} | {metrics[f'{m}/toxic_rate']:.1%} | "
            f"{metrics[f'{m}/harmful_compliance_rate']:.1%} | {tax} |"
        )
    lines += ["", "![alignment tax](plots/alignment_tax.png)", "", "## Mean gold utility per task family", ""]
    lines.append(per_family.round(3).to_markdown() if _has_tabulate() else per_family.round(3).to_string())
    return "\n".join(lines) + "\n"


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main("evaluate", body))
