"""Stage label: K distinct SFT samples per RM prompt, ranked by (simulated or human) labelers."""

from __future__ import annotations

from itertools import combinations

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from tasks import inputs
from tasks.common import Stage, main, write_jsonl
from tasks.gates import Table
from tasks.rankings import ranking_tables

OVERSAMPLE = 2  # draw 2K candidates and keep the first K distinct ones (paper: K distinct outputs)


def body(stage: Stage) -> None:
    from instructgpt.stages import LabelConfig

    cfg = stage.config(LabelConfig)
    prompts = inputs.prompts("rm", ("train", "valid"))
    stage.gate(input_tables(prompts))
    if cfg.rankings:
        rows = imported_rankings(cfg.rankings, prompts)
        agreement = {}
    else:
        rows, agreement = simulated_rankings(cfg, prompts)
    stage.gate(ranking_tables(rows, cfg.k_min, cfg.k_max), part="outputs")
    write_jsonl(stage.path("outputs/label/comparisons.jsonl"), rows)
    ks = [len(r["responses"]) for r in rows]
    stage.metrics.update(
        {
            "comparisons": len(rows),
            "pairs": int(sum(k * (k - 1) // 2 for k in ks)),
            "mean_k": float(np.mean(ks)) if ks else 0.0,
            "prompts_in": len(prompts),
            **agreement,
        }
    )
    if stage.run is not None:
        import mlflow

        mlflow.log_table(pd.DataFrame(rows[:30]), "label/sample_rankings.json")


def simulated_rankings(cfg, prompts: pd.DataFrame) -> tuple[list[dict], dict[str, float]]:
    """Sample K distinct responses per prompt from the SFT model; training labelers rank them.

    On the validation split a second training labeler and a held-out labeler rank the same
    responses too: their pairwise agreement with the first ranking is the ceiling a reward
    model can reach (paper: 72.6 ± 1.5 %).
    """
    from instructgpt.generation import sample
    from instructgpt.models import load_causal_lm
    from instructgpt.progress import progress
    from instructgpt.world import load_world

    if cfg.max_prompts is not None and len(prompts) > cfg.max_prompts:
        prompts = prompts.sample(n=cfg.max_prompts, random_state=cfg.seed).sort_values("prompt_id")
    rng = np.random.default_rng(cfg.seed)
    ks = rng.integers(cfg.k_min, cfg.k_max + 1, size=len(prompts))
    model, tokenizer = load_causal_lm("outputs/sft/model")
    texts = prompts["text"].astype(str).tolist()
    flat = [t for t, k in zip(texts, ks) for _ in range(OVERSAMPLE * int(k))]
    samples = sample(model, tokenizer, flat, max_new_tokens=cfg.max_new_tokens,
                     temperature=cfg.temperature, batch_size=cfg.batch_size, seed=cfg.seed,
                     show_progress=True, desc="label: sample")
    world = load_world(inputs.raw("rankings"))
    train_pool, heldout_pool = world.training_labelers(), world.heldout_labelers()
    rows, agree_train, agree_heldout, dropped = [], [], [], 0
    pos = 0
    ranked = progress(zip(prompts.itertuples(index=False), ks), total=len(prompts), desc="label: rank",
                      unit="prompt")
    for i, (row, k) in enumerate(ranked):
        candidates = [s.response for s in samples[pos : pos + OVERSAMPLE * int(k)]]
        pos += OVERSAMPLE * int(k)
        responses = list(dict.fromkeys(candidates))[: int(k)]
        if len(responses) < cfg.k_min:
            dropped += 1
            continue
        ranking = train_pool.rank(row.prompt_id, row.text, responses, seed=cfg.seed + i)
        rows.append(
            {
                "prompt_id": row.prompt_id,
                "user_id": row.user_id,
                "split": row.split,
                "prompt": row.text,
                "responses": responses,
                "ranking": list(ranking.order),
                "labeler_id": ranking.labeler_id,
            }
        )
        if row.split == "valid":
            other = train_pool.rank(row.prompt_id, row.text, responses, seed=cfg.seed + i + 10**6)
            held = heldout_pool.rank(row.prompt_id, row.text, responses, seed=cfg.seed + i)
            agree_train.append(pairwise_agreement(ranking.order, other.order))
            agree_heldout.append(pairwise_agreement(ranking.order, held.order))
    metrics = {"dropped_too_few_distinct": dropped}
    if agree_train:
        metrics["agreement/train_vs_train"] = float(np.mean(agree_train))
        metrics["agreement/heldout_vs_train"] = float(np.mean(agree_heldout))
    return rows, metrics


def imported_rankings(path: str, prompts: pd.DataFrame) -> list[dict]:
    """Human rankings (rankings.jsonl) for the RM prompts that ingestion kept."""
    human = inputs.read_jsonl(__import__("pathlib").Path(path))
    merged = human.merge(prompts[["prompt_id", "user_id", "split", "text"]], on="prompt_id", how="inner")
    return [
        {
            "prompt_id": r.prompt_id, "user_id": r.user_id, "split": r.split, "prompt": r.text,
            "responses": list(r.responses), "ranking": [int(x) for x in r.ranking], "labeler_id": r.labeler_id,
        }
        for r in merged.itertuples(index=False)
    ]


def pairwise_agreement(a: list[int], b: list[int]) -> float:
    """Share of the C(K,2) pairs that two best-first rankings order the same way."""
    pos_a = {x: i for i, x in enumerate(a)}
    pos_b = {x: i for i, x in enumerate(b)}
    pairs = list(combinations(range(len(a)), 2))
    same = sum((pos_a[x] < pos_a[y]) == (pos_b[x] < pos_b[y]) for x, y in pairs)
    return same / len(pairs)


def input_tables(prompts: pd.DataFrame) -> list[Table]:
    return [
        Table("rm_prompts", prompts, [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="prompt_id"),
            gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        ])
    ]


if __name__ == "__main__":
    raise SystemExit(main("label", body))
