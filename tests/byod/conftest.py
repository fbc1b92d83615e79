"""The bring-your-own-data fixture (tests/fixtures/byod): its scripts and the team's tiny models."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

BYOD = Path(__file__).resolve().parents[1] / "fixtures" / "byod"

torch.set_num_threads(1)


def load_script(name: str) -> ModuleType:
    """tests/fixtures/byod/<name>.py as a module (the fixture folder is no package: it is copied
    into workspaces as the team's own folder)."""
    spec = importlib.util.spec_from_file_location(f"byod_{name}", BYOD / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def team_models(tmp_path_factory) -> dict[str, Path]:
    """{"policy": support-llama dir, "rm": support-rm dir} under a ``models`` folder."""
    make_model = load_script("make_model")
    models = tmp_path_factory.mktemp("team") / "models"
    made = make_model.make_models(models)
    return {"policy": made[make_model.POLICY], "rm": made[make_model.REWARD], "models": models}


@pytest.fixture(scope="session")
def log_prompts() -> list[str]:
    """A few prompts of the fixture's log (its own column name: ``input``)."""
    import json

    rows = [json.loads(line) for line in (BYOD / "log/2026-11-02.jsonl").read_text().splitlines()]
    return [r["input"] for r in rows if r["input"]][:40]
