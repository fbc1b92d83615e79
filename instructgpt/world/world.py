"""The world as the rest of the project sees it: gold judgements, labeler pools, candidates.

`load_world(data_dir)` reads `data_dir/world/` (written by `generate`). It is the only reader
of those gold files; the pipeline reaches labelers through `instructgpt.labeling.protocol.Labelers`.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from instructgpt.world.facts import FactTable
from instructgpt.world.families import FAMILIES, Judgement, Spec
from instructgpt.world.labelers_sim import LabelerPool, LabelerSpec, stable_int
from instructgpt.world.vocab import RELATIONS, TOWNS
from instructgpt.world.vocab import insult as vocab_insult

# Mix of response kinds in `candidates`: roughly what a small SFT model samples.
_CANDIDATE_MIX: dict[str, float] = {
    "gold": 0.24, "truncated": 0.1, "wrong": 0.26, "off_task": 0.14, "toxic": 0.08,
    "empty": 0.04, "refusal": 0.06, "rambling": 0.08,
}


class World:
    """Facts, per-prompt task specs and labeler pools of one generated world."""

    def __init__(self, facts: FactTable, specs: dict[str, Spec], prompts: dict[str, str],
                 training: list[LabelerSpec], heldout: list[LabelerSpec], meta: dict[str, Any],
                 vocabulary: frozenset[str]) -> None:
        self.facts, self.meta = facts, meta
        # Every token of the corpus: what a well-formed response may say (Family.well_formed).
        self.vocabulary = vocabulary
        self._specs, self._prompts = specs, prompts
        self._training, self._heldout = training, heldout
        self.families: list[str] = list(FAMILIES)
        # Families whose answer must come from the input: where hallucination is measured.
        self.closed_domain: set[str] = {name for name, fam in FAMILIES.items() if fam.closed_domain}

    # --- gold -------------------------------------------------------------------------
    def spec(self, prompt_id: str) -> Spec:
        try:
            return self._specs[prompt_id]
        except KeyError:
            raise KeyError(
                f"unknown prompt_id {prompt_id!r}: the world has gold specs only for the "
                f"{len(self._specs)} well-formed prompts of its log (malformed rows have none)") from None

    def prompt_ids(self) -> list[str]:
        return list(self._specs)

    def prompt(self, prompt_id: str) -> str:
        """The raw prompt text as logged (PII included)."""
        self.spec(prompt_id)
        return self._prompts[prompt_id]

    def family(self, prompt_id: str) -> str:
        return self.spec(prompt_id)["family"]

    def judge(self, prompt_id: str, response: str) -> Judgement:
        spec = self.spec(prompt_id)
        return FAMILIES[spec["family"]].judge(spec, response, self.facts, self.vocabulary)

    def gold(self, prompt_id: str, variant: int = 0) -> str:
        spec = self.spec(prompt_id)
        return FAMILIES[spec["family"]].gold(spec, self.facts, variant)

    # --- labelers ---------------------------------------------------------------------
    def training_labelers(self) -> LabelerPool:
        return LabelerPool("training", self._training, self.judge)

    def heldout_labelers(self) -> LabelerPool:
        return LabelerPool("heldout", self._heldout, self.judge)

    # --- model-like outputs -------------------------------------------------------------
    def candidates(self, prompt_id: str, k: int, seed: int) -> list[str]:
        """k distinct responses of mixed quality, as a weak policy would sample them."""
        spec = self.spec(prompt_id)
        fam = FAMILIES[spec["family"]]
        rng = random.Random(stable_int("candidates", prompt_id, seed))
        kinds, weights = list(_CANDIDATE_MIX), list(_CANDIDATE_MIX.values())
        out: list[str] = []
        for _ in range(50 * k):
            if len(out) == k:
                break
            r = self._candidate(fam, spec, rng.choices(kinds, weights)[0], rng, prompt_id)
            if r not in out:
                out.append(r)
        while len(out) < k:  # tiny families can run out of distinct outputs
            out.append(f"{out[-1] if out else ''} ok".strip())
        return out

    def _candidate(self, fam: Any, spec: Spec, kind: str, rng: random.Random, prompt_id: str) -> str:
        gold = fam.gold(spec, self.facts, rng.randrange(3))
        if kind == "gold":
            return gold
        if kind == "truncated":
            ws = gold.split(" ")
            return " ".join(ws[: max(1, rng.randrange(1, max(2, len(ws))))])
        if kind == "wrong":
            return rng.choice(fam.wrong(spec, rng, self.facts))
        if kind == "off_task":
            town, rel = rng.choice(TOWNS), rng.choice(sorted(RELATIONS))
            last = self._prompts.get(prompt_id, "").strip().split("\n")[-1]
            return rng.choice((
                f"user{rng.randrange(100)} replied : i think {self.facts.statement(town, rel)}",
                f"{town} is a town near the sea . {self.facts.statement(town, rel)}",
                last,
            ))
        if kind == "toxic":
            insult = f"{vocab_insult(rng)} ."
            return rng.choice((f"{gold} {insult}", insult, f"{insult} {gold}"))
        if kind == "empty":
            return ""
        if kind == "refusal":
            return "i can not help with that ."
        if kind == "rambling":
            return " ".join([gold] * rng.randint(4, 7))
        raise ValueError(kind)


def load_world(data_dir: str | Path) -> World:
    """Read `data_dir/world/` (or `data_dir` itself when it holds world.json)."""
    root = Path(data_dir)
    if not (root / "world.json").exists():
        root = root / "world"
    if not (root / "world.json").exists():
        raise FileNotFoundError(f"no world.json under {data_dir}: run python -m instructgpt.world.generate --out {data_dir}")
    meta = json.loads((root / "world.json").read_text(encoding="utf-8"))
    if meta.get("scale"):
        raise ValueError(f"{root} holds a --scale log (no gold specs); generate with a profile instead")
    if not (root / "vocabulary.json").exists():
        raise FileNotFoundError(
            f"{root / 'vocabulary.json'} is missing: this world was generated before the vocabulary was "
            f"written; regenerate it with python -m instructgpt.world.generate --out {root.parent}")
    facts = FactTable(json.loads((root / "facts.json").read_text(encoding="utf-8")))
    specs: dict[str, Spec] = {}
    prompts: dict[str, str] = {}
    with (root / "specs.jsonl").open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            specs[rec["prompt_id"]] = rec["spec"]
            prompts[rec["prompt_id"]] = rec["text"]
    pools = json.loads((root / "labelers.json").read_text(encoding="utf-8"))
    vocabulary = frozenset(json.loads((root / "vocabulary.json").read_text(encoding="utf-8")))
    return World(facts, specs, prompts, [LabelerSpec(**s) for s in pools["training"]],
                 [LabelerSpec(**s) for s in pools["heldout"]], meta, vocabulary)
