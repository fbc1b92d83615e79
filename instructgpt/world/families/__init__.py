"""Registry of task families, after the paper's use-case categories (Table 1)."""
from __future__ import annotations

from instructgpt.world.families.base import Family, Judgement, Spec, words
from instructgpt.world.families.closed_domain import Classification, Extraction, Rewrite, Summarization
from instructgpt.world.families.harmful import Harmful
from instructgpt.world.families.open_domain import Brainstorming, Generation, OpenQA

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (Generation(), OpenQA(), Brainstorming(), Rewrite(), Summarization(),
              Classification(), Extraction(), Harmful())
}
# Share of each family in API traffic. The paper's mix is dominated by generation (46 %); ours
# is flatter so that every family gets enough examples at CPU scale.
FAMILY_MIX: dict[str, float] = {
    "generation": 0.28, "open_qa": 0.15, "brainstorming": 0.12, "rewrite": 0.10,
    "summarization": 0.10, "classification": 0.08, "extraction": 0.10, "harmful": 0.07,
}

__all__ = ["FAMILIES", "FAMILY_MIX", "Family", "Judgement", "Spec", "words"]
