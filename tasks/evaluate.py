"""Stage evaluate: what the paper measures (section 4), by the judge params choose, and the
registry decision.

Every model answers the test-split prompts (users never seen in training). The judge
(``evaluate.judge``, instructgpt.judging) compares them pairwise (win rates with 95 % intervals)
and, where ground truth exists (the simulated world), judges them absolutely (hallucination,
toxicity, compliance with harmful requests, gold utility). Proxy figures need no judge and are
always reported, labelled as proxies: reward-model score, KL from SFT, length, EOS rate, loss on
held-out demonstrations, and the alignment tax (held-out corpus loss, public NLP task accuracy).
The PPO monitor's samples are scored by the judge's MONITORING judgement (never the one behind
the win rates) for the over-optimisation curve. The policy is registered and becomes `champion`
only on the judge's verdict (instructgpt.judging.decision).

With the human judge, the blind tasks go to labels/outbox/judge_tasks.jsonl; while some are
unanswered and ``evaluate.wait`` is true the stage stops with exit code 5 (awaiting labels).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd

from tasks import inputs
from tasks.answers import (BEST_OF_N, BEST_OF_N_COMPARISONS, COMPARISONS, FEWSHOT, MONITORS, REFERENCE,
                           VERSUS_CHAMPION, Sources, best_of_n, fewshot_shots, generate_all, models_after)
from tasks.gates import Table
from tasks.jsonl import write_jsonl
from tasks.report import plot_alignment_tax, plot_overoptimisation, plot_win_rates, render_report
from tasks.shell.awaiting import AwaitingLabels
from tasks.shell.outputs import nest
from tasks.shell.run import main
from tasks.shell.stage import Stage

TASKS_FILE = Path("labels/outbox/judge_tasks.jsonl")


def body(stage: Stage) -> None:
    from instructgpt.ingest.labeled import read_demonstrations
    from instructgpt.judging import make_judge, win_rate_rows
    from instructgpt.judging.proxy import SOURCES as PROXY_SOURCES
    from instructgpt.rounds import RoundsConfig
    from instructgpt.judging.config import EvaluateConfig

    cfg = stage.config(EvaluateConfig)
    src = models_after(stage.config(RoundsConfig, section="rounds").n)
    test = inputs.prompts(None, ("test",))
    stage.gate([Table("test_prompts", test, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
    ])])
    nlp_task = inputs.nlp_task(cfg.nlp_task_items, "evaluate.nlp_task_items")  # a malformed file fails first
    if len(test) > cfg.n_prompts:
        test = test.sample(n=cfg.n_prompts, random_state=cfg.seed).sort_values("prompt_id")
    ids, texts = test["prompt_id"].astype(str).tolist(), test["text"].astype(str).tolist()
    demos = read_demonstrations(inputs.raw("demonstrations")).drop_duplicates("prompt_id").set_index("prompt_id")["response"]
    generated, responses = generate_all(cfg, texts, fewshot_shots(demos), stage.place, src.models)
    if cfg.best_of_n:
        responses[BEST_OF_N] = best_of_n(cfg, texts, stage.place, src)
    # None where a test prompt has no demonstration: left out of the reference's figures, not an empty answer
    responses[REFERENCE] = [str(demos[pid]) if pid in demos.index else None for pid in ids]
    comparisons = src.comparisons + (BEST_OF_N_COMPARISONS if cfg.best_of_n else [])
    champion = None
    if stage.run is not None:  # the registry is MLflow's
        from tasks.registry import champion_answers

        champion = champion_answers(cfg, texts)

    judge = make_judge(cfg.judge, inputs.raw("judgements"), cfg.seed,
                       training_labelers() if cfg.judge == "human" else ())
    verdict = judge.compare(judge_pairs(ids, texts, responses, champion, comparisons))
    if verdict is not None and judge.name == "human":
        from instructgpt.judging.human import write_tasks

        write_tasks(TASKS_FILE, verdict.tasks)
        report_rejected(verdict.judgements)
        print(f"[evaluate] human judge: {verdict.answered_tasks} of {len(verdict.tasks)} task(s) answered, "
              f"{verdict.pending_tasks} pending ({TASKS_FILE})")
        if verdict.pending_tasks and cfg.wait:
            raise AwaitingLabels("evaluate", "judge", TASKS_FILE, verdict.pending_tasks, verdict.answered_tasks,
                                 inputs.raw("judgements"), how=rejected_summary(verdict.counts)
                                 + " Or set evaluate.wait: false to report what is answered.")

    names = [*src.models, FEWSHOT, *([BEST_OF_N] if cfg.best_of_n else []), REFERENCE]
    metrics: dict[str, float] = {"n_prompts": len(ids)}
    win_rows = win_rate_rows(verdict, [f"{c}_vs_{b}" for c, b in comparisons], judge.name)
    for r in win_rows:
        if r["n"]:
            key = r["comparison"]
            metrics.update({f"win_rate/{key}": r["win_rate"], f"win_rate/{key}_low": r["low"],
                            f"win_rate/{key}_high": r["high"]})
        metrics[f"win_rate/{r['comparison']}_pending"] = r["pending"]
    if verdict is not None:
        metrics.update({f"judging/{k}": v for k, v in verdict.counts.items()})
    gold = judge.gold(ids, responses)
    if gold is not None:
        metrics.update(gold.metrics)
    heldout = float((stage.params.get("base") or {}).get("heldout_fraction", 0.05))
    metrics.update(proxy_figures(cfg, texts, generated, responses, [(t, str(demos[pid])) for pid, t in zip(ids, texts)
                                                                     if pid in demos.index], heldout,
                                   nlp_task, stage.place, src))
    curve = overoptimisation(judge, src.monitors)
    decision = {}
    if stage.run is not None:
        from tasks.registry import registry_decision

        decision = registry_decision(judge.name, verdict, champion, src)
    stage.metrics.update(metrics)
    stage.metrics.update({f"registry/{k}": v for k, v in decision.items() if isinstance(v, (int, float))})
    sources = {**judge.sources, **PROXY_SOURCES}
    if judge.name == "none":
        sources["win_rate"] = sources["gold"] = "none: evaluate.judge is none (no judge)"
    if nlp_task.absent:  # no figure for any model, and the report and metrics.json say why
        stage.absent["nlp_task_accuracy"] = nlp_task.absent
        sources["nlp_task_accuracy"] = f"absent: {nlp_task.absent}"

    pd.DataFrame(win_rows, columns=["comparison", "win_rate", "low", "high", "n", "pending", "judge"]).to_csv(
        stage.path("outputs/evaluate/win_rates.csv"), index=False)
    curve.to_csv(stage.path("outputs/evaluate/overoptimisation.csv"), index=False)
    judged = stage.path("outputs/evaluate/judge")
    judged.mkdir(parents=True, exist_ok=True)
    rows = verdict.rows if verdict is not None else []
    # the pairs against the champion depend on the registry's history: apart from the others
    write_jsonl(judged / "pairs.jsonl", [r for r in rows if r["comparison"] != VERSUS_CHAMPION])
    write_jsonl(stage.path("outputs/evaluate/champion_pairs.jsonl"),
                [r for r in rows if r["comparison"] == VERSUS_CHAMPION])
    write_jsonl(judged / "judgements.jsonl", verdict.judgements if verdict is not None else [])
    plots = stage.path("outputs/evaluate/plots")
    plots.mkdir(parents=True, exist_ok=True)
    if any(r["n"] for r in win_rows):
        plot_win_rates(win_rows, plots / "win_rates.png", judge.name)
    plot_alignment_tax(metrics, list(src.models), plots / "alignment_tax.png", nlp_task.absent)
    plot_overoptimisation(curve, plots / "overoptimisation.png", judge.sources.get("monitor"))
    samples = [
        {"prompt_id": pid, "prompt": p, **{m: responses[m][i] for m in names}}
        for i, (pid, p) in enumerate(zip(ids, texts))
    ]
    write_jsonl(stage.path("outputs/evaluate/samples.jsonl"), samples)
    report = render_report(metrics, win_rows, gold.per_family if gold is not None else None, names, judge.name,
                           sources, verdict.counts if verdict is not None else {}, curve)
    stage.path("outputs/evaluate/report.md").write_text(report)
    stage.path("outputs/evaluate/registry.json").write_text(json.dumps(decision, indent=2))
    write_metrics(stage, judge.name, sources)
    if stage.run is not None:
        import mlflow

        mlflow.set_tag("judge", judge.name)
        mlflow.log_artifacts(str(plots), "plots")
        mlflow.log_text(report, "report.md")
        mlflow.log_dict(decision, "registry.json")
        mlflow.log_table(pd.DataFrame(samples[:50]), "evaluate/samples.json")


def write_metrics(stage: Stage, judge: str, sources: dict[str, str]) -> None:
    """metrics.json: the figures, the judge, per family of figures what produced it
    (``simulated``, ``human``, ``none``, ``proxy`` or ``absent``; the report says it in words), and
    ``absent``: why each family with no figure has none (an input the team does not have)."""
    payload = {k: float(v) for k, v in stage.metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    payload = nest(payload)
    payload["judge"] = judge
    payload["sources"] = {family: source.split(":")[0] for family, source in sources.items()}
    if stage.absent:
        payload["absent"] = dict(stage.absent)
    stage.path("outputs/evaluate/metrics.json").write_text(json.dumps(payload, indent=2, sort_keys=True))


def training_labelers() -> set[str]:
    """Everyone who labeled training data: labeler ids of the rankings and of the demonstrations."""
    ids: set[str] = set()
    from instructgpt.ingest.labeled import read_demonstrations

    comps = inputs.read_jsonl(Path("outputs/label/comparisons.jsonl"))
    demos = read_demonstrations(inputs.raw("demonstrations"))
    for df in (comps, demos):
        if "labeler_id" in df:
            ids |= set(df["labeler_id"].dropna().astype(str))
    return ids


def judge_pairs(ids: list[str], texts: list[str], responses: dict[str, list[str]],
                champion: tuple[str, list[str]] | None, comparisons: list[tuple[str, str]] = COMPARISONS):
    """Every pair the judge is asked about: each comparison on each prompt, and the candidate
    (PPO-ptx) against the current champion when there is one."""
    from instructgpt.judging import Pair

    pairs = [Pair(f"{cand}_vs_{base}", pid, text, responses[cand][i], responses[base][i], i)
             for cand, base in comparisons for i, (pid, text) in enumerate(zip(ids, texts))]
    if champion is not None:
        pairs += [Pair(VERSUS_CHAMPION, pid, text, responses["ppo"][i], champion[1][i], i)
                  for i, (pid, text) in enumerate(zip(ids, texts))]
    return pairs


def report_rejected(records: list[dict], limit: int = 20) -> None:
    """Print the rejected judgements (all are in outputs/evaluate/judge/judgements.jsonl)."""
    rejected = [r for r in records if r["status"] == "rejected"]
    for r in rejected[:limit]:
        print(f"[evaluate] judgement rejected: {r['where']}: {r['reason']}")
    if len(rejected) > limit:
        print(f"[evaluate] ... and {len(rejected) - limit} more rejected judgement(s)")


def rejected_summary(counts: dict[str, float]) -> str:
    """'3 imported judgement(s) rejected: 2 unknown_task, 1 duplicate.' or ''."""
    parts = [f"{int(v)} {k.split('/', 1)[1]}" for k, v in counts.items() if k.startswith("rejected/") and v]
    return f"{int(counts.get('judgements_rejected', 0))} imported judgement(s) rejected: {', '.join(parts)}." if parts else ""


def proxy_figures(cfg, prompts: list[str], generated: dict, responses: dict[str, list[str]],
                  demo_pairs: list[tuple[str, str]], heldout_fraction: float, nlp_task: inputs.NlpTask,
                  place: Callable = lambda m: m, src: Sources | None = None) -> dict[str, float]:
    """Figures that need no judge (instructgpt.judging.proxy), for every model; NLP task accuracy
    only where ``nlp_task`` has items (``nlp_task_items``: how many were scored)."""
    from instructgpt.evaluation import choice_accuracy, corpus_loss
    from instructgpt.judging import proxy
    from instructgpt.models import load_causal_lm
    from instructgpt.progress import progress

    src = src or Sources()
    out: dict[str, float] = {"demo_loss_prompts": len(demo_pairs)}
    rm, rm_tokenizer = proxy.load_reward_scorer(src.rm)
    place(rm)
    scores = {}
    for name, texts in responses.items():
        answered = [i for i, t in enumerate(texts) if t is not None]  # (the reference: prompts with a demonstration)
        if answered:
            got = iter(proxy.rm_scores(rm, rm_tokenizer, [prompts[i] for i in answered], [texts[i] for i in answered]))
            scores[name] = [next(got) if t is not None else None for t in texts]
            out[f"{name}/rm_score"] = sum(x for x in scores[name] if x is not None) / len(answered)
            out[f"{name}/response_words"] = proxy.response_words([texts[i] for i in answered])
    del rm
    out.update(rm_orders_demonstrations(scores, responses))
    if cfg.best_of_n:  # the analytic KL of best-of-N from its sampler (Stiennon et al. 2020), an upper bound
        out[f"{BEST_OF_N}/kl_from_sft"] = math.log(cfg.best_of_n) - (cfg.best_of_n - 1) / cfg.best_of_n
    _, heldout_texts = inputs.split_corpus(inputs.corpus(), heldout_fraction)
    if not nlp_task.absent:
        out["nlp_task_items"] = len(nlp_task.items)
    sft, _ = load_causal_lm(src.models["sft"])
    place(sft)
    for name, path in progress(src.models.items(), total=len(src.models), desc="evaluate: proxy figures",
                               unit="model"):
        model, tokenizer = load_causal_lm(path)
        place(model)
        n_pos = proxy.model_context(model)
        max_prompt_len = n_pos - cfg.max_new_tokens if n_pos else None  # as generation.sample encodes them
        out[f"{name}/kl_from_sft"] = proxy.kl_from_reference(model, sft, tokenizer, generated[name], cfg.temperature,
                                                             max_prompt_len, cfg.batch_size)
        out[f"{name}/eos_rate"] = proxy.eos_rate(generated[name])
        out[f"{name}/demo_loss"] = proxy.demonstration_loss(model, tokenizer, demo_pairs)
        out[f"{name}/corpus_loss"] = corpus_loss(model, tokenizer, heldout_texts[: cfg.corpus_docs])
        if not nlp_task.absent:
            out[f"{name}/nlp_task_accuracy"] = choice_accuracy(model, tokenizer, nlp_task.items)
    return out


def rm_orders_demonstrations(scores: dict[str, list[float | None]],
                             responses: dict[str, list[str | None]]) -> dict[str, float]:
    """``rm/demonstration_over_<model>``: how often the reward model scores the labelers'
    demonstration of a test prompt above the model's answer (prompts with a demonstration, ties
    half), for SFT and PPO-ptx. Demonstrations are what the labelers wrote as the answer they
    want, so an RM that sees quality puts them first; a human team has these pairs too."""
    out: dict[str, float] = {}
    with_demo = [i for i, d in enumerate(responses.get(REFERENCE, [])) if d is not None]
    for name in ("sft", "ppo"):
        if name not in scores or not with_demo:
            continue
        demo, other = scores[REFERENCE], scores[name]
        wins = [1.0 if demo[i] > other[i] else 0.5 if demo[i] == other[i] else 0.0 for i in with_demo]
        out[f"rm/demonstration_over_{name}"] = sum(wins) / len(wins)
    if with_demo:
        out["rm/demonstration_pairs"] = len(with_demo)
    return out


def overoptimisation(judge, monitors: dict[str, str] = MONITORS) -> pd.DataFrame:
    """The PPO monitor's samples, judged by the judge's monitoring judgement where it has one,
    averaged per model and step (instructgpt.judging.monitor)."""
    from instructgpt.judging.monitor import overoptimisation_curve

    rows = {m: inputs.read_jsonl(Path(p)).to_dict("records") for m, p in monitors.items()}
    gold = {m: (judge.monitor(r) if r else None) for m, r in rows.items()}
    return overoptimisation_curve(rows, gold)



if __name__ == "__main__":
    raise SystemExit(main("evaluate", body))