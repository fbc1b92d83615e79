"""Shared pieces of the labeling tests: a small prompt log, a deterministic sampler, tiny models."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.core.conftest import model_dir, tiny_cfg, tokenizer  # noqa: F401 - fixtures
from tests.world.conftest import tiny_dir, tiny_world  # noqa: F401 - fixtures

WORDS = ["cat", "dog", "red", "blue", "sun", "tree", "fish", "bird", "milk", "rain"]


def kept_prompts(n: int = 24, test_every: int = 0) -> pd.DataFrame:
    """A kept prompt log: RM prompts 'repeat the word w k times' (train, every 4th valid), plus
    one SFT and one PPO prompt in train and one RM prompt in test."""
    rows = []
    for i in range(n):
        w, k = WORDS[i % len(WORDS)], 1 + i % 3
        rows.append({"prompt_id": f"p{i:04d}", "user_id": f"u{i % 6}", "text": f"repeat the word {w} {k} times",
                     "dataset": "rm", "split": "valid" if i % 4 == 3 else "train"})
    rows += [
        {"prompt_id": "s0001", "user_id": "u1", "text": "repeat the word sun 2 times", "dataset": "sft", "split": "train"},
        {"prompt_id": "o0001", "user_id": "u2", "text": "repeat the word dog 1 times", "dataset": "ppo", "split": "valid"},
        {"prompt_id": "t0001", "user_id": "u9", "text": "repeat the word cat 3 times", "dataset": "rm", "split": "test"},
    ]
    return pd.DataFrame(rows)


def quarantine() -> pd.DataFrame:
    return pd.DataFrame([
        {"line": "7", "reason": "pii:EMAIL", "detail": "PII EMAIL[10:30]", "prompt_id": "q0001", "user_id": "u1"},
        {"line": "8", "reason": "duplicate", "detail": "same normalised prefix as kept prompt p0001",
         "prompt_id": "q0002", "user_id": "u1"},
        {"line": "9", "reason": "user_cap", "detail": "user has more than 200 prompts", "prompt_id": "q0003",
         "user_id": "u3"},
    ])


def candidates(text: str) -> list[str]:
    """Responses to 'repeat the word w k times', best first: right, one off, wrong word, empty-ish."""
    words = text.split()
    w, k = words[3], int(words[4])
    other = "fish" if w != "fish" else "milk"
    return [" ".join([w] * k), " ".join([w] * (k + 1)), " ".join([other] * k), "no", "the", "a b", "x y z",
            "sun sun sun sun", "tree"]


def quality(text: str, response: str) -> int:
    """Rank of ``response`` among `candidates` (0 = best)."""
    return candidates(text).index(response)


def sampler(texts: list[str]) -> list[str]:
    """Stands in for the SFT model: the j-th copy of a prompt in a row answers its j-th candidate,
    in a shuffled but fixed order (so that K distinct ones come out and the best is not first)."""
    out, run, prev = [], 0, None
    for t in texts:
        run = run + 1 if t == prev else 0
        prev = t
        order = [3, 0, 5, 1, 4, 2, 6, 8, 7]
        out.append(candidates(t)[order[run % len(order)]])
    return out


def best_first(text: str, responses: list[str]) -> list[int]:
    """A careful labeler's ranking: indices into ``responses``, best first (responses of a real
    model, not from `candidates`: the shortest first)."""
    if not all(r in candidates(text) for r in responses):
        return sorted(range(len(responses)), key=lambda i: (len(responses[i]), responses[i]))
    return sorted(range(len(responses)), key=lambda i: quality(text, responses[i]))


@pytest.fixture
def index():
    from instructgpt.labeling.validation import PromptIndex

    return PromptIndex.from_frames(kept_prompts(), quarantine())
