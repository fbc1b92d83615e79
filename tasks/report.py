"""The evaluation report: the headline table next to the paper's figures, and its plots (PNG)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# What the paper reports for the same comparison (docs/RECIPE.md; 175B models, human labelers).
PAPER_WIN_RATES = {
    "ppo_vs_base": "85 ± 3 % (InstructGPT vs GPT-3)",
    "ppo_vs_base_fewshot": "71 ± 4 % (vs few-shot GPT-3)",
    "ppo_noptx_vs_ppo": "≈ 50 % (ptx keeps labeler preference)",
}
LABELS = {
    "base": "base (pretrained only)",
    "base_fewshot": "base, few-shot prompted",
    "sft": "SFT",
    "ppo": "PPO-ptx (InstructGPT)",
    "ppo_noptx": "PPO (no ptx)",
    "demonstration": "labelers' demonstrations",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_win_rates(rows: list[dict], path: Path) -> None:
    """Horizontal bars with 95 % intervals and the 50 % line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.55 * len(rows)))
    names = [r["comparison"].replace("_vs_", " vs ") for r in rows]
    rates = [r["win_rate"] for r in rows]
    err = [[r["win_rate"] - r["low"] for r in rows], [r["high"] - r["win_rate"] for r in rows]]
    ax.barh(names, rates, xerr=err, color="#4878a8", capsize=4)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("win rate of the first model (held-out labelers, 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_alignment_tax(metrics: dict[str, float], models: list[str], path: Path) -> None:
    """Held-out corpus loss and public NLP task accuracy per model."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].bar(models, [metrics[f"{m}/corpus_loss"] for m in models], color="#a86848")
    axes[0].set_title("held-out corpus loss (lower is better)", fontsize=9)
    axes[1].bar(models, [metrics[f"{m}/nlp_task_accuracy"] for m in models], color="#48a878")
    axes[1].set_title("public NLP task accuracy", fontsize=9)
    axes[1].set_ylim(0, 1)
    for ax in axes:
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_overoptimisation(curves: dict[str, Path], path: Path) -> None:
    """RM score and gold utility of policy samples against KL from SFT, during PPO.

    When the RM score keeps rising while the gold utility stalls or falls, the policy is
    exploiting the reward model: that is where to stop (or raise the KL coefficient)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), sharex=False)
    for name, csv in curves.items():
        if not csv.exists():
            continue
        df = pd.read_csv(csv).dropna()
        if df.empty:
            continue
        df = df.sort_values("step")
        smooth = df[["kl", "rm_score", "gold_utility"]].rolling(5, min_periods=1).mean()
        axes[0].plot(smooth["kl"], smooth["rm_score"], label=LABELS.get(name, name))
        axes[1].plot(smooth["kl"], smooth["gold_utility"], label=LABELS.get(name, name))
    axes[0].set_title("reward model score", fontsize=9)
    axes[1].set_title("gold utility (held-out labelers)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("KL(policy || SFT) per response, nats")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_report(metrics: dict[str, float], win_rows: list[dict], per_family: pd.DataFrame,
                  models: list[str]) -> str:
    """The headline table as Markdown, the paper's figures beside ours, the plots under it."""
    lines = ["# Evaluation report", "",
             "Held-out labelers (never used for training data) on test-split prompts (users never seen in training).",
             "", "## Win rates", "",
             "| comparison | win rate | 95% CI | n | paper |", "| --- | --- | --- | --- | --- |"]
    for r in win_rows:
        lines.append(f"| {r['comparison'].replace('_vs_', ' vs ')} | {r['win_rate']:.1%} | "
                     f"{r['low']:.1%} – {r['high']:.1%} | {r['n']} | {PAPER_WIN_RATES.get(r['comparison'], '–')} |")
    lines += ["", "![win rates](plots/win_rates.png)", "", "## Per model", "",
              "| model | gold utility | helpful | hallucination (closed domain) | truthful (open QA) | toxic | "
              "complies with harmful request | held-out corpus loss | NLP task accuracy |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in models:
        tax = (f"{metrics[f'{m}/corpus_loss']:.3f} | {metrics[f'{m}/nlp_task_accuracy']:.1%}"
               if f"{m}/corpus_loss" in metrics else "– | –")
        lines.append(
            f"| {LABELS.get(m, m)} | {metrics[f'{m}/gold_utility']:.3f} | {metrics[f'{m}/helpful']:.3f} | "
            f"{metrics[f'{m}/hallucination_rate']:.1%} | {metrics[f'{m}/truthful_open_qa']:.1%} | "
            f"{metrics[f'{m}/toxic_rate']:.1%} | {metrics[f'{m}/harmful_compliance_rate']:.1%} | {tax} |"
        )
    lines += ["", "Paper (175B): hallucination 21 % (InstructGPT) vs 41 % (GPT-3); about 25 % fewer toxic "
              "outputs; PPO regresses on public NLP tasks and PPO-ptx recovers most of it.",
              "", "![alignment tax](plots/alignment_tax.png)", "",
              "## Reward over-optimisation", "",
              "RM score and gold utility of PPO samples against the KL from the SFT model (rolling mean).",
              "", "![over-optimisation](plots/overoptimisation.png)", "",
              "## Mean gold utility per task family", ""]
    lines.append(per_family.round(3).to_markdown() if _has_tabulate() else per_family.round(3).to_string())
    return "\n".join(lines) + "\n"


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
