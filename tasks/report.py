"""The evaluation report: which judge produced which figure, the headline table next to the
paper's figures, proxy figures, and the plots (PNG)."""

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
    "sft_best_of_n": "SFT, best of N by the RM",
    "ppo_round1": "PPO-ptx, round 1 (rounds.n: 2)",
}
REGISTRY_RULE = {
    "none": "The policy is registered as `candidate`, but the `champion` does not move: "
            "`evaluate.judge` is none, and the champion moves only on a judge's verdict.",
    "simulated": "The policy is registered as `candidate`; `champion` moves only on the {judge} judge's "
                 "verdict: a win rate against the current champion above 50 % with its 95 % interval "
                 "excluding 50 % (with no champion yet, the first candidate a judge evaluated becomes champion).",
    "human": "The policy is registered as `candidate`; `champion` moves only on the {judge} judge's "
             "verdict: a win rate against the current champion above 50 % with its 95 % interval "
             "excluding 50 %, once every candidate-vs-champion task is answered (with no champion yet, the "
             "first candidate whose tasks are all answered becomes champion).",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_win_rates(rows: list[dict], path: Path, judge: str = "simulated") -> None:
    """Horizontal bars with 95 % intervals and the 50 % line (comparisons with judged pairs)."""
    plt = _pyplot()
    rows = [r for r in rows if r["n"]]
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.55 * len(rows)))
    names = [r["comparison"].replace("_vs_", " vs ") for r in rows]
    rates = [r["win_rate"] for r in rows]
    err = [[r["win_rate"] - r["low"] for r in rows], [r["high"] - r["win_rate"] for r in rows]]
    ax.barh(names, rates, xerr=err, color="#4878a8", capsize=4)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel(f"win rate of the first model (judge: {judge}, 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_alignment_tax(metrics: dict[str, float], models: list[str], path: Path, nlp_absent: str | None = None) -> None:
    """Held-out corpus loss and public NLP task accuracy per model; without an NLP task its panel
    says why (``nlp_absent``) instead of drawing bars."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].bar(models, [metrics[f"{m}/corpus_loss"] for m in models], color="#a86848")
    axes[0].set_title("held-out corpus loss (lower is better)", fontsize=9)
    axes[1].set_title("public NLP task accuracy", fontsize=9)
    if nlp_absent:
        axes[1].text(0.5, 0.5, "absent:\n" + nlp_absent.replace(" (", "\n("), ha="center", va="center",
                     fontsize=8, wrap=True, transform=axes[1].transAxes)
        axes[1].set_xticks([])
        axes[1].set_yticks([])
    else:
        axes[1].bar(models, [metrics[f"{m}/nlp_task_accuracy"] for m in models], color="#48a878")
        axes[1].set_ylim(0, 1)
    for ax in axes:
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_overoptimisation(curve: pd.DataFrame, path: Path, monitor: str | None) -> None:
    """RM score (a proxy) and, where a monitoring judge exists, gold utility of the PPO monitor's
    samples against their KL from SFT.

    When the RM score keeps rising while the gold utility stalls or falls, the policy is
    exploiting the reward model: that is where to stop (or raise the KL coefficient)."""
    plt = _pyplot()
    has_gold = bool(len(curve)) and curve["gold_utility"].notna().any()
    fig, axes = plt.subplots(1, 2 if has_gold else 1, figsize=(8 if has_gold else 4.5, 3), squeeze=False)
    axes = axes[0]
    for name, df in curve.groupby("model", sort=False):
        df = df.sort_values("step")
        # each monitor step as a point, and a centred rolling mean over 5 steps as the line (a
        # trailing one would shift an early peak to the right)
        smooth = df[["kl", "rm_score", "gold_utility"]].rolling(5, center=True, min_periods=1).mean()
        for ax, column in [(axes[0], "rm_score")] + ([(axes[1], "gold_utility")] if has_gold else []):
            [line] = ax.plot(smooth["kl"], smooth[column], label=LABELS.get(name, name))
            ax.plot(df["kl"], df[column], ".", color=line.get_color(), alpha=0.35)
    axes[0].set_title("reward model score (proxy)", fontsize=9)
    if has_gold:
        axes[1].set_title(f"gold utility ({(monitor or '').split(':')[0]} monitoring judge)", fontsize=9)
    if curve.empty:
        axes[0].text(0.5, 0.5, "no monitor samples", ha="center", va="center", transform=axes[0].transAxes)
    for ax in axes:
        ax.set_xlabel("KL(policy || SFT) per response, nats")
        if not curve.empty:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _row_label(model: str, metrics: dict[str, float]) -> str:
    """The model's name in a table; the labelers' demonstrations say on how many prompts they were
    measured, since only the test prompts that have one count (the others are no empty answer)."""
    label = LABELS.get(model, model)
    if model == "demonstration" and "demo_loss_prompts" in metrics and "n_prompts" in metrics:
        label += f" ({int(metrics['demo_loss_prompts'])} of {int(metrics['n_prompts'])} prompts have one)"
    return label


def _absent(sources: dict[str, str], family: str) -> str | None:
    """Why a family of figures is absent (its source reads ``absent: <why>``), or None."""
    source = sources.get(family, "")
    return source.split(":", 1)[1].strip() if source.startswith("absent:") else None


def _pct(metrics: dict[str, float], key: str) -> str:
    return f"{metrics[key]:.1%}" if key in metrics else "–"


def _num(metrics: dict[str, float], key: str, fmt: str = ".3f") -> str:
    return format(metrics[key], fmt) if key in metrics else "–"


def render_report(metrics: dict[str, float], win_rows: list[dict], per_family: pd.DataFrame | None,
                  models: list[str], judge: str, sources: dict[str, str], judging: dict[str, float],
                  curve: pd.DataFrame) -> str:
    """The report as Markdown: which judge produced what, win rates next to the paper's figures,
    gold judgements (where a judge gives them), proxy figures (always, labelled), over-optimisation,
    the registry's rule for this judge."""
    lines = ["# Evaluation report", "",
             f"Judge: **{judge}** (`evaluate.judge`), on test-split prompts (users never seen in training).", ""]
    lines += [f"- {family}: {source}" for family, source in sources.items()
              if family in ("win_rate", "gold", "monitor") or source.startswith("absent:")]
    lines += ["- every figure marked *proxy* needs no judge: it is computed from the models alone", ""]
    lines += ["## Win rates", ""]
    if not win_rows:
        lines += [f"No win rates: {sources.get('win_rate', 'no judge')}.", ""]
    else:
        lines += ["| comparison | win rate | 95% CI | n | pending | judge | paper |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in win_rows:
            rate = f"{r['win_rate']:.1%} | {r['low']:.1%} – {r['high']:.1%}" if r["n"] else "– | –"
            lines.append(f"| {r['comparison'].replace('_vs_', ' vs ')} | {rate} | {r['n']} | {r['pending']} | "
                         f"{r['judge']} | {PAPER_WIN_RATES.get(r['comparison'], '–')} |")
        lines.append("")
        if any(r["n"] for r in win_rows):
            lines += ["![win rates](plots/win_rates.png)", ""]
    if judge == "human" and judging:
        lines += ["Human judging: " + ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in judging.items()), ""]
    if per_family is not None:
        lines += [f"## Gold judgements per model (judge: {sources.get('gold', judge)})", "",
                  "| model | gold utility | helpful | well-formed | hallucination (closed domain) | "
                  "truthful (open QA) | toxic | complies with harmful request |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for m in models:
            lines.append(
                f"| {_row_label(m, metrics)} | {_num(metrics, f'{m}/gold_utility')} | {_num(metrics, f'{m}/helpful')} | "
                f"{_pct(metrics, f'{m}/well_formed_rate')} | {_pct(metrics, f'{m}/hallucination_rate')} | "
                f"{_pct(metrics, f'{m}/truthful_open_qa')} | {_pct(metrics, f'{m}/toxic_rate')} | "
                f"{_pct(metrics, f'{m}/harmful_compliance_rate')} |")
        lines += ["", "Well-formed: only words of the world's vocabulary and a proper ending (not garbage, "
                  "not cut off). Paper (175B): hallucination 21 % (InstructGPT) vs 41 % (GPT-3); about 25 % "
                  "fewer toxic outputs.", ""]
    lines += ["## Proxy figures per model (no judge)", "",
              "| model | RM score (proxy) | KL from SFT (proxy) | words (proxy) | EOS rate (proxy) | "
              "held-out demo loss (proxy) | held-out corpus loss (proxy) | NLP task accuracy (proxy) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    nlp_absent = _absent(sources, "nlp_task_accuracy")
    for m in models:
        # "absent" on the rows the alignment tax is measured on (those with a corpus loss)
        nlp = "absent" if nlp_absent and f"{m}/corpus_loss" in metrics else _pct(metrics, f"{m}/nlp_task_accuracy")
        lines.append(
            f"| {_row_label(m, metrics)} | {_num(metrics, f'{m}/rm_score')} | {_num(metrics, f'{m}/kl_from_sft')} | "
            f"{_num(metrics, f'{m}/response_words', '.1f')} | {_pct(metrics, f'{m}/eos_rate')} | "
            f"{_num(metrics, f'{m}/demo_loss')} | {_num(metrics, f'{m}/corpus_loss')} | {nlp} |")
    lines += ["", "RM score: the reward model PPO maximises, so it rises by construction. KL: per response, "
              "nats, at the evaluation's temperature. Demo loss: the labelers' demonstrations of the test "
              "prompts. The labelers' demonstrations row: only the test prompts that have one. Paper: PPO regresses on public NLP tasks and PPO-ptx recovers most of it.", "",
              f"NLP task accuracy: absent: {nlp_absent}." if nlp_absent
              else f"NLP task accuracy: {int(metrics.get('nlp_task_items', 0))} items.", "",
              "![alignment tax](plots/alignment_tax.png)", "",
              "## Reward over-optimisation", "",
              "The PPO monitor's samples (validation-split prompts, at step 0 = SFT and every `ppo.sample_every` "
              "steps) against their KL from SFT, each step's mean as a point and a centred 5-step rolling "
              "mean as the line: RM score (proxy) and "
              + (f"gold utility ({sources['monitor']})." if "monitor" in sources
                 else "no gold utility (this judge has no monitoring judgement)."),
              ""]
    if not curve.empty:
        lines += ["![over-optimisation](plots/overoptimisation.png)", ""]
    else:
        lines += ["No monitor samples (ppo.sample_every: 0, or no validation-split PPO prompts).", ""]
    if per_family is not None:
        lines += ["## Mean gold utility per task family", ""]
        lines.append(per_family.round(3).to_markdown() if _has_tabulate() else per_family.round(3).to_string())
        lines.append("")
    lines += ["## Registry", "", REGISTRY_RULE.get(judge, REGISTRY_RULE["simulated"]).format(judge=judge),
              "The decision and its numbers: `registry.json` (it depends on the registry's history, so it is "
              "not part of this report).", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
