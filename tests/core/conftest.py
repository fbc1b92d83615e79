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


@pytest.fixture(params=["fp32", "bf16"])
def precision(request):
    """The bf16 tier: the test body runs inside this precision's ``Compute.scope()`` on the CPU, as a
    stage body runs (bf16 autocast is the GPU default). A module opts in with
    ``pytestmark = pytest.mark.usefixtures("precision")``; a test that needs a precision's own
    tolerance asks for the fixture by name."""
    from instructgpt.device import Compute

    with Compute(torch.device("cpu"), None if request.param == "fp32" else torch.bfloat16).scope():
        yield request.param


def tol(precision: str, fp32: float, bf16: float) -> float:
    """A test's tolerance in ``precision``. bf16 keeps 8 significant bits: one rounding is up to
    2^-9 ≈ 0.2 % of a value, and a quantity computed two ways (KV cache vs full forward, shared
    prompt vs plain, adapter vs merged weights) differs by a few such roundings of its inputs."""
    return fp32 if precision == "fp32" else bf16


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
