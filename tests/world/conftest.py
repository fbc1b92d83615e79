"""Shared generated worlds: one tiny and one demo world per test session (generation is seeded)."""
from __future__ import annotations

from pathlib import Path

import pytest

from instructgpt.world.generate import generate


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    generate(out, "tiny", seed=0)
    return out


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate(out, "demo", seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_world(tiny_dir: Path):
    from instructgpt.world import load_world
    return load_world(tiny_dir)
