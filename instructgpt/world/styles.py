"""The paper's three prompt styles (section 3.2): plain, few-shot, user-based."""
from __future__ import annotations

import random

from instructgpt.world.facts import FactTable
from instructgpt.world.families import FAMILIES, Family, Spec

STYLES: tuple[str, ...] = ("plain", "few_shot", "user_based")

# Use cases an API applicant might describe; a user-based prompt is a task framed by one.
USE_CASES: tuple[str, ...] = (
    "i am making a quiz for kids .",
    "this is for my travel blog .",
    "i teach english to children .",
    "i run a small food shop .",
    "this is for my school project .",
    "i am writing a game about a small town .",
    "i help people learn about animals .",
    "i write a weekly news letter .",
)


def render(family: Family, spec: Spec, style: str, rng: random.Random, facts: FactTable,
           use_case: int = 0) -> str:
    """Phrase the task `spec` of `family` in `style`. Never ends in a response marker
    other than the few-shot "output :" slot, which is part of the user's own prompt."""
    if style == "plain":
        return family.plain(spec, rng)
    if style == "user_based":
        return f"{USE_CASES[use_case % len(USE_CASES)]} {family.plain(spec, rng)}"
    if style != "few_shot":
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    shots = FAMILIES[family.shot_family] if family.shot_family else family
    like = None if family.shot_family else spec
    lines = [shots.header(like or spec) if like else shots.shot_header]
    for _ in range(2):
        ex = shots.sample_spec(rng, facts, like=like)
        lines += [f"input : {shots.shot_input(ex)}", f"output : {shots.gold(ex, facts, 0)}"]
    lines += [f"input : {family.shot_input(spec)}", "output :"]
    return "\n".join(lines)
