"""What evaluate judges: the models (round 1's, or round 2's policy against round 1's), the
comparisons between them, and their answers to the test prompts, few-shot and best-of-N included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from tasks import inputs

MODELS = {
    "base": "outputs/base/model",
    "sft": "outputs/sft/model",
    "ppo": "outputs/ppo/model",  # PPO-ptx: the paper's InstructGPT
    "ppo_noptx": "outputs/ppo_noptx/model",  # PPO without pretraining mix
}
FEWSHOT = "base_fewshot"  # the base model prompted with demonstrations (paper: few-shot GPT-3)
REFERENCE = "demonstration"  # labelers' own answers, judged like a model (not generated)
BEST_OF_N = "sft_best_of_n"  # SFT's best of evaluate.best_of_n samples by the RM (a reference row)
COMPARISONS = [("sft", "base"), ("ppo", "sft"), ("ppo", "base_fewshot"), ("ppo", "base"), ("ppo_noptx", "ppo")]
BEST_OF_N_COMPARISONS = [(BEST_OF_N, "sft"), ("ppo", BEST_OF_N)]
VERSUS_CHAMPION = "ppo_vs_champion"  # the candidate against the registry's current champion
MONITORS = {"ppo": "outputs/ppo/monitor.jsonl", "ppo_noptx": "outputs/ppo_noptx/monitor.jsonl"}
RM = "outputs/rm/model"
ROUND1 = "ppo_round1"  # with rounds.n: 2, round 1's PPO-ptx policy, judged against round 2's
N_SHOTS = 2


@dataclass(frozen=True)
class Sources:
    """The models evaluate reads: round 1's, or (``rounds.n: 2``) round 2's PPO-ptx policy as "ppo"
    with round 2's RM, and round 1's policy as ``ppo_round1`` judged against it."""

    models: dict[str, str] = field(default_factory=lambda: dict(MODELS))
    monitors: dict[str, str] = field(default_factory=lambda: dict(MONITORS))
    rm: str = RM
    comparisons: list[tuple[str, str]] = field(default_factory=lambda: list(COMPARISONS))


def models_after(rounds: int) -> Sources:
    """What evaluate judges after ``rounds`` rounds."""
    if rounds < 2:
        return Sources()
    return Sources(models={**MODELS, "ppo": "outputs/ppo_round2/model", ROUND1: MODELS["ppo"]},
                   monitors={**MONITORS, "ppo": "outputs/ppo_round2/monitor.jsonl", ROUND1: MONITORS["ppo"]},
                   rm="outputs/rm_round2/model", comparisons=[*COMPARISONS, ("ppo", ROUND1)])

def fewshot_shots(demos: pd.Series) -> list[tuple[str, str]]:
    """N_SHOTS short (prompt, demonstration) pairs of SFT training prompts; the sampler shows them
    before each prompt in the model's own format (``instructgpt.text.prompt_context``: earlier
    turns of its chat template, or plain ``prompt\nresponse\n\n`` blocks)."""
    sft = inputs.prompts("sft", ("train",))
    sft = sft[sft["style"] == "plain"] if "style" in sft else sft
    pairs = [(t, str(demos[pid])) for pid, t in zip(sft["prompt_id"], sft["text"]) if pid in demos.index]
    return sorted(pairs, key=lambda pr: (len(pr[0]) + len(pr[1]), pr[0]))[:N_SHOTS]


def generate_all(cfg, prompts: list[str], shots: list[tuple[str, str]], place: Callable = lambda m: m,
                 models: dict[str, str] = MODELS):
    """Every model answers every prompt with the same sampling settings and seed (``place``: onto
    the stage's device).
    Returns (samples of each model in ``models``, response texts of every model and of few-shot)."""
    from instructgpt.generation import sample
    from instructgpt.models import load_causal_lm

    def run(name: str, path: str, shots: list[tuple[str, str]] = ()):
        model, tokenizer = load_causal_lm(path)
        place(model)
        return sample(model, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens,
                      temperature=cfg.temperature, batch_size=cfg.batch_size, seed=cfg.seed,
                      show_progress=True, desc=f"evaluate: sample {name}", shots=shots)

    generated = {name: run(name, path) for name, path in models.items()}
    responses = {name: [s.response for s in got] for name, got in generated.items()}
    # Few-shot: the answer ends where the next example would start.
    fewshot = run(FEWSHOT, models["base"], shots)
    responses[FEWSHOT] = [s.response.split("\n")[0].strip() for s in fewshot]
    return generated, responses


def best_of_n(cfg, prompts: list[str], place: Callable = lambda m: m, src: Sources | None = None) -> list[str]:
    """SFT's best of ``cfg.best_of_n`` samples per prompt by the reward model (ties: the first
    drawn). Sampled with the evaluation's settings and a seed of their own, so the SFT row's
    samples are untouched."""
    from instructgpt.generation import sample
    from instructgpt.judging import proxy
    from instructgpt.models import load_causal_lm

    src = src or Sources()
    n = cfg.best_of_n
    model, tokenizer = load_causal_lm(src.models["sft"])
    place(model)
    flat = [p for p in prompts for _ in range(n)]
    drawn = [s.response for s in sample(model, tokenizer, flat, max_new_tokens=cfg.max_new_tokens,
                                        temperature=cfg.temperature, batch_size=cfg.batch_size, seed=cfg.seed + 1,
                                        show_progress=True, desc=f"evaluate: sample SFT x{n}")]
    del model
    rm, rm_tokenizer = proxy.load_reward_scorer(src.rm)
    place(rm)
    scores = proxy.rm_scores(rm, rm_tokenizer, flat, drawn)
    out = []
    for i in range(len(prompts)):
        block = scores[i * n: (i + 1) * n]
        out.append(drawn[i * n + max(range(n), key=lambda j: (block[j], -j))])
    return out

