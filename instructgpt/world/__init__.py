"""The simulated world standing in for API users, labelers and the pretraining distribution.

Only this package reads `data/world/` (the gold files). See README.md here for the files.
"""
from __future__ import annotations

from instructgpt.world.families import FAMILIES, Judgement
from instructgpt.world.world import World, load_world

__all__ = ["FAMILIES", "Judgement", "World", "load_world"]
