"""Atomic, resumable training checkpoints.

One directory ``<checkpoint_dir>/last`` holds: each module's weights as safetensors, and
``trainer_state.pt`` (optimizer, scheduler, RNG states, step, data position, KL controller ...)
loaded with ``weights_only=True`` (plain tensors/numbers only, no pickled code). The directory is
written beside and swapped in with ``os.replace``, so a crash leaves the previous checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from instructgpt.device import weights_changed
from instructgpt.models import swap_in_dir

LAST = "last"
STATE_FILE = "trainer_state.pt"
STEP_FILE = "step.json"  # the step alone, readable without loading the trainer state


def rng_state() -> dict[str, Any]:
    """Global torch RNG state (dropout, any torch.rand* without a generator)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(checkpoint_dir: str | os.PathLike, modules: dict[str, nn.Module],
                    state: dict[str, Any], config: dict[str, Any] | None = None) -> Path:
    """Write ``modules`` (safetensors) + ``state`` (torch.save) to ``checkpoint_dir/last`` atomically."""
    root = Path(checkpoint_dir)
    root.mkdir(parents=True, exist_ok=True)
    final, tmp = root / LAST, root / (LAST + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for name, module in modules.items():
        save_model(module, str(tmp / f"{name}.safetensors"))  # handles tied weights
    torch.save(state, tmp / STATE_FILE)
    if "step" in state:
        (tmp / STEP_FILE).write_text(json.dumps({"step": int(state["step"])}))
    if config is not None:
        (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str))
    swap_in_dir(final, tmp)
    return final


def checkpoint_step(checkpoint_dir: str | os.PathLike | None) -> int | None:
    """The step a trainer would resume from in ``checkpoint_dir``; None when there is no checkpoint."""
    if not checkpoint_dir:
        return None
    final = Path(checkpoint_dir) / LAST
    if not (final / STATE_FILE).is_file() or not (final / STEP_FILE).is_file():
        return None
    return int(json.loads((final / STEP_FILE).read_text())["step"])


def load_checkpoint(checkpoint_dir: str | os.PathLike | None, modules: dict[str, nn.Module]) -> dict[str, Any] | None:
    """Load ``checkpoint_dir/last`` into ``modules`` and return the trainer state; None if absent."""
    if not checkpoint_dir:
        return None
    final = Path(checkpoint_dir) / LAST
    if not (final / STATE_FILE).is_file():
        return None
    for name, module in modules.items():
        load_model(module, str(final / f"{name}.safetensors"))
    weights_changed()  # written in place: autocast must not feed a forward its copies of the old ones
    return torch.load(final / STATE_FILE, weights_only=True)
