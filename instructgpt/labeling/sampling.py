"""The candidate sets labelers rank: K distinct SFT samples per RM prompt (paper section 3.5).

Simulated and human labelers rank the same sets: for a given SFT model, params and prompt set,
a prompt's K responses (and so its task id) are the same whichever labelers answer. The sampler
draws 2K responses per prompt in one seeded pass over all prompts (the outputs depend on the
batch composition, so the whole selection is always sampled) and keeps the first K distinct.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pandas as pd

from instructgpt.labeling.formats import task_id
from instructgpt.labeling.protocol import CandidateSet

OVERSAMPLE = 2  # draw 2K candidates and keep the first K distinct ones (paper: K distinct outputs)


def select_prompts(prompts: pd.DataFrame, max_prompts: int | None, seed: int) -> pd.DataFrame:
    """At most ``max_prompts`` RM prompts, a seeded sample in prompt-id order (all when fewer)."""
    if max_prompts is not None and len(prompts) > max_prompts:
        prompts = prompts.sample(n=max_prompts, random_state=seed).sort_values("prompt_id")
    return prompts


def in_overlap(prompt_id: str, share: float, seed: int) -> bool:
    """Whether a prompt is in the overlap share (ranked by two labelers): a stable hash of its id,
    so adding prompts never moves another prompt in or out."""
    if share <= 0:
        return False
    h = hashlib.blake2b(f"overlap:{seed}:{prompt_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64 < share


Sampler = Callable[[list[str]], list[str]]
"""Prompt texts in, one response per text out (in order)."""


def candidate_sets(prompts: pd.DataFrame, k_min: int, k_max: int, seed: int, sampler: Sampler,
                   overlap: float = 0.0) -> tuple[list[CandidateSet], int]:
    """(candidate sets, prompts dropped because fewer than ``k_min`` distinct responses came out).

    K is drawn uniformly in [k_min, k_max] per prompt (seeded); ``sampler`` answers 2K copies of
    each prompt in one call."""
    rng = np.random.default_rng(seed)
    ks = rng.integers(k_min, k_max + 1, size=len(prompts))
    texts = prompts["text"].astype(str).tolist()
    flat = [t for t, k in zip(texts, ks) for _ in range(OVERSAMPLE * int(k))]
    responses_flat = sampler(flat) if flat else []
    sets, dropped, pos = [], 0, 0
    for i, (pid, text, k) in enumerate(zip(prompts["prompt_id"].astype(str), texts, ks)):
        candidates = responses_flat[pos: pos + OVERSAMPLE * int(k)]
        pos += OVERSAMPLE * int(k)
        responses = list(dict.fromkeys(candidates))[: int(k)]
        if len(responses) < k_min:
            dropped += 1
            continue
        sets.append(CandidateSet(pid, text, responses, task_id(pid, responses), in_overlap(pid, overlap, seed), i))
    return sets, dropped


def demonstration_sets(prompts: pd.DataFrame, k_min: int, k_max: int, seed: int, sampler: Sampler,
                       overlap: float = 0.0, first_position: int = 0) -> tuple[list[CandidateSet], int]:
    """Candidate sets with the labelers' demonstration among them: K - 1 distinct SFT samples and
    the prompt's demonstration (``prompts``: prompt_id, text, response), at a seeded place.

    The paper's labelers ranked the outputs of several models; samples of one SFT model alone
    never show the reward model anything better than SFT, so it cannot learn what a better answer
    looks like. A team has these answers: the demonstrations it wrote. Returns (sets, prompts
    dropped because fewer than ``k_min`` distinct responses came out); ``position`` continues
    from ``first_position`` (it seeds the simulated labelers)."""
    rng = np.random.default_rng([seed, 1])
    ks = rng.integers(k_min, k_max + 1, size=len(prompts))
    texts = prompts["text"].astype(str).tolist()
    flat = [t for t, k in zip(texts, ks) for _ in range(OVERSAMPLE * (int(k) - 1))]
    responses_flat = sampler(flat) if flat else []
    sets, dropped, pos = [], 0, 0
    rows = zip(prompts["prompt_id"].astype(str), texts, prompts["response"].astype(str), ks)
    for i, (pid, text, demo, k) in enumerate(rows):
        candidates = responses_flat[pos: pos + OVERSAMPLE * (int(k) - 1)]
        pos += OVERSAMPLE * (int(k) - 1)
        responses = [r for r in dict.fromkeys(candidates) if r != demo][: int(k) - 1]
        responses.insert(int(rng.integers(0, len(responses) + 1)), demo)
        if len(responses) < k_min:
            dropped += 1
            continue
        sets.append(CandidateSet(pid, text, responses, task_id(pid, responses), in_overlap(pid, overlap, seed),
                                 first_position + i))
    return sets, dropped


def sft_sampler(model_dir: str, max_new_tokens: int, temperature: float | list[float], batch_size: int, seed: int,
                device: str = "cpu") -> Sampler:
    """A sampler answering with the SFT model in ``model_dir`` (loaded on first use, on ``device``).

    ``temperature`` a list: the copies of a prompt (consecutive in the texts) are sampled at its
    temperatures in turn, so each candidate set mixes them; each temperature's rows are sampled
    together, in order."""
    temperatures = temperature if isinstance(temperature, list) else [temperature]

    def answer(texts: list[str]) -> list[str]:
        from instructgpt.generation import sample
        from instructgpt.models import load_causal_lm

        model, tokenizer = load_causal_lm(model_dir)
        model.to(device)
        copy = [0] * len(texts)  # index of each text among the consecutive copies of its prompt
        for i in range(1, len(texts)):
            copy[i] = copy[i - 1] + 1 if texts[i] == texts[i - 1] else 0
        out = [""] * len(texts)
        for t_index, t in enumerate(temperatures):
            rows = [i for i in range(len(texts)) if copy[i] % len(temperatures) == t_index]
            label = f" (T {t:g})" if len(temperatures) > 1 else ""
            samples = sample(model, tokenizer, [texts[i] for i in rows], max_new_tokens=max_new_tokens,
                             temperature=t, batch_size=batch_size, seed=seed, show_progress=True,
                             desc=f"label: sample{label}")
            for i, s in zip(rows, samples):
                out[i] = s.response
        return out

    return answer


def mixed_sampler(policy: Sampler, sft: Sampler, policy_share: float) -> Sampler:
    """A sampler whose copies of a prompt (consecutive in the texts) come from ``policy`` at the
    rate ``policy_share`` and from ``sft`` otherwise, interleaved (copy i is the policy's when
    floor((i + 1)·share) > floor(i·share)): each candidate set mixes both models, as the paper's
    later comparisons mixed the outputs of several models. Each model answers its rows in one call."""

    def answer(texts: list[str]) -> list[str]:
        copy = [0] * len(texts)
        for i in range(1, len(texts)):
            copy[i] = copy[i - 1] + 1 if texts[i] == texts[i - 1] else 0
        from_policy = [int((c + 1) * policy_share) > int(c * policy_share) for c in copy]
        out = [""] * len(texts)
        for use_policy, sampler in ((True, policy), (False, sft)):
            rows = [i for i, p in enumerate(from_policy) if p == use_policy]
            if rows:
                for i, response in zip(rows, sampler([texts[i] for i in rows])):
                    out[i] = response
        return out

    return answer
