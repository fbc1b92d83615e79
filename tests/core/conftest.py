"""Tiny fixtures for the training-library tests: a 300-token BPE and 2-layer, 32-dim models."""

from __future__ import annotations

import random

import pytest
import torch

from instructgpt.models import ModelConfig, build_causal_lm
from instructgpt.tokenizer import train_tokenizer

torch.set_num_threads(1)

WORDS = ["cat", "dog", "red", "blue", "sun", "tree", "fish", "bird", "milk", "rain"]


def make_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """Deterministic toy demonstrations: 'repeat the word w n times' -> 'w w w'."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        w, k = rng.choice(WORDS), rng.randint(1, 3)
        out.append((f"repeat the word {w} {k} times", " ".join([w] * k)))
    return out


@pytest.fixture(scope="session")
def tokenizer():
    texts = [f"{p}\n{r}" for p, r in make_pairs(200, 0)] + ["the cat sat on the mat and the dog ran."] * 20
    return train_tokenizer(texts, vocab_size=300)


@pytest.fixture(scope="session")
def tiny_cfg() -> ModelConfig:
    return ModelConfig(arch="gpt2", n_layer=2, n_embd=32, n_head=2, n_positions=128, dropout=0.0)


@pytest.fixture()
def tiny_model(tokenizer, tiny_cfg):
    return build_causal_lm(tiny_cfg, tokenizer, seed=0)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tokenizer, tiny_cfg):
    from instructgpt.models import save_model

    path = tmp_path_factory.mktemp("tiny") / "model"
    save_model(build_causal_lm(tiny_cfg, tokenizer, seed=0), tokenizer, path)
    return path
